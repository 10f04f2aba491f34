//! The permission policy: rules `deny > ask > allow` for shell commands and for file edits.
//!
//! A command line is parsed with tree-sitter's bash grammar and **every** command it would run
//! is judged on its own — the parts of `a && b`, `a | b`, `a; b`, subshells, `{ }` groups,
//! `$(...)` and backticks, process substitutions, the script of `bash -c '...'`, the command
//! behind `sudo`, `env`, `xargs`, `timeout`... The line's verdict is the most restrictive of
//! its parts, so no composition gets a denied or asked command through. What cannot be known
//! before running (a variable as the command name, `eval`, a line that does not parse, setting
//! `PATH`) is at least `ask`, never `allow`.
//!
//! ```
//! use miyabi_code::policy::{Policy, Verdict};
//!
//! let policy = Policy::new()
//!     .allow("cargo test:*").unwrap()
//!     .ask("git push*").unwrap()
//!     .deny("rm -rf*").unwrap();
//! assert_eq!(policy.check_command("cargo test --all").verdict, Verdict::Allow);
//! assert_eq!(policy.check_command("cargo test && git push").verdict, Verdict::Ask);
//! assert_eq!(policy.check_command("true && echo $(rm -rf /)").verdict, Verdict::Deny);
//! ```
//!
//! The file format (`.miyabi/permissions.toml`) is described in `docs/coding.md` and at
//! [`Policy::from_toml`].

mod parse;
mod pattern;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use globset::GlobMatcher;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use pattern::{CommandPattern, DYNAMIC};

/// A rule's or a decision's verdict, ordered from the least to the most restrictive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Runs without asking.
    Allow,
    /// A human must approve it first.
    Ask,
    /// Refused.
    Deny,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Allow => "allow",
            Verdict::Ask => "ask",
            Verdict::Deny => "deny",
        })
    }
}

/// Where a rule comes from, for messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum RuleSource {
    /// Built into [`Policy::recommended`].
    BuiltIn,
    /// Added in code.
    Code,
    /// Read from a config file.
    File {
        /// The file.
        path: PathBuf,
    },
    /// Added by a human's "always" answer to an approval.
    Approval,
}

impl fmt::Display for RuleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleSource::BuiltIn => f.write_str("built-in rules"),
            RuleSource::Code => f.write_str("code"),
            RuleSource::File { path } => write!(f, "{}", path.display()),
            RuleSource::Approval => f.write_str("an approval"),
        }
    }
}

/// A rule as data: its verdict, its pattern as written and its source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// What a match means.
    pub verdict: Verdict,
    /// The pattern (a command pattern or a path glob).
    pub pattern: String,
    /// Where it comes from.
    pub source: RuleSource,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} rule `{}` (from {})",
            self.verdict, self.pattern, self.source
        )
    }
}

/// What went wrong building or loading a policy.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A command pattern or a path glob is not valid.
    #[error("invalid pattern `{pattern}`: {reason}")]
    BadPattern {
        /// The pattern as given.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// The config file cannot be read.
    #[error("cannot read the permission file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("invalid permission file {path}: {message}")]
    BadFile {
        /// The file (or `<string>`).
        path: PathBuf,
        /// What is wrong, with its position.
        message: String,
    },
    /// An approval's "always" answer is not valid.
    #[error("invalid \"always\" in an approval decision: {0}")]
    BadAlways(String),
}

#[derive(Clone, Debug)]
struct CommandRule {
    rule: Rule,
    pattern: CommandPattern,
}

#[derive(Clone, Debug)]
struct PathRule {
    rule: Rule,
    glob: GlobMatcher,
}

/// Rules for commands and edits, with a default verdict for each when no rule matches.
#[derive(Clone, Debug)]
pub struct Policy {
    commands: Vec<CommandRule>,
    edits: Vec<PathRule>,
    default_command: Verdict,
    default_edit: Verdict,
}

impl Default for Policy {
    fn default() -> Self {
        Self::new()
    }
}

/// Why a part of a command line got its verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Reason {
    /// A rule matches.
    Rule {
        /// The rule.
        rule: Rule,
        /// The rule matches only for some values of words known at run time (a deny or ask
        /// rule that may match becomes `ask`).
        possibly: bool,
    },
    /// No rule matches: the policy's default.
    Default,
    /// The analysis cannot know what would run.
    Unresolved {
        /// Why.
        why: String,
    },
}

/// One command of a line (or one thing in it that cannot be resolved) and its verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartDecision {
    /// The command as written (shortened when long).
    pub command: String,
    /// Its verdict.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason,
}

impl fmt::Display for PartDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reason {
            Reason::Rule { rule, possibly } => {
                let how = if *possibly { " may match" } else { "" };
                write!(f, "`{}`: {}{how} -> {}", self.command, rule, self.verdict)
            }
            Reason::Default => write!(
                f,
                "`{}`: no rule matches, default -> {}",
                self.command, self.verdict
            ),
            Reason::Unresolved { why } => {
                write!(f, "`{}`: {why} -> {}", self.command, self.verdict)
            }
        }
    }
}

/// The decision for a whole command line: the most restrictive of its parts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandDecision {
    /// The line's verdict.
    pub verdict: Verdict,
    /// Every command found (and every unresolved piece), in the order found.
    pub parts: Vec<PartDecision>,
}

impl CommandDecision {
    /// The first part with the line's verdict: the one to name in a message.
    pub fn deciding(&self) -> Option<&PartDecision> {
        self.parts.iter().find(|p| p.verdict == self.verdict)
    }

    /// Patterns a human could add with an "always" answer so that this line no longer asks:
    /// one `name sub:*` (or `name:*`) per asked command that a rule can cover. Empty when the
    /// line is denied or a part cannot be resolved.
    pub fn suggestions(&self) -> Vec<String> {
        if self.verdict == Verdict::Deny {
            return Vec::new();
        }
        let mut out: Vec<String> = Vec::new();
        for p in &self.parts {
            if p.verdict != Verdict::Ask {
                continue;
            }
            if matches!(p.reason, Reason::Unresolved { .. }) {
                return Vec::new();
            }
            let words: Vec<&str> = p.command.split_whitespace().collect();
            let suggestion = match words.as_slice() {
                [] => continue,
                [name] => format!("{name}:*"),
                [name, sub, ..] if is_subcommand(sub) => format!("{name} {sub}:*"),
                [name, ..] => format!("{name}:*"),
            };
            if !out.contains(&suggestion) {
                out.push(suggestion);
            }
        }
        out
    }
}

fn is_subcommand(w: &str) -> bool {
    !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        && !w.starts_with('-')
}

impl fmt::Display for CommandDecision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.deciding() {
            Some(p) => write!(f, "{}", p),
            None => write!(f, "{}", self.verdict),
        }
    }
}

/// The decision for editing a path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathDecision {
    /// The verdict.
    pub verdict: Verdict,
    /// The most restrictive matching rule, or `None` for the default.
    pub rule: Option<Rule>,
}

/// The TOML file, as read.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    #[serde(default)]
    commands: Section,
    #[serde(default)]
    edits: Section,
}

#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Section {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    default: Option<Verdict>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    allow: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ask: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    deny: Vec<String>,
}

impl Policy {
    /// No rules; commands default to `ask`, edits to `allow`.
    pub fn new() -> Self {
        Self {
            commands: Vec::new(),
            edits: Vec::new(),
            default_command: Verdict::Ask,
            default_edit: Verdict::Allow,
        }
    }

    /// A starting point: read-only commands allowed (`ls`, `cat`, `grep`, `rg`, `git status`,
    /// `git diff`, `git log`, ...), `git push*`, `sudo*` and `curl`/`wget` asked, wiping the root
    /// or home directory denied (`rm -rf /`, `rm -rf ~`, `rm -rf /*` and their `-fr` and
    /// `--no-preserve-root` spellings, `mkfs*`), edits of `.git/**` and `.env` files denied;
    /// everything else asks.
    pub fn recommended() -> Self {
        let mut p = Self::new();
        let allow = [
            "ls:*",
            "cat:*",
            "head:*",
            "tail:*",
            "wc:*",
            "pwd",
            "echo:*",
            "true",
            "false",
            "grep:*",
            "rg:*",
            "which:*",
            "file:*",
            "stat:*",
            "diff:*",
            "sort:*",
            "uniq:*",
            "git status:*",
            "git diff:*",
            "git log:*",
            "git show:*",
            "git branch",
            "git rev-parse:*",
        ];
        let ask = ["git push*", "sudo*", "curl:*", "wget:*"];
        let deny = [
            "rm -rf /",
            "rm -fr /",
            "rm -rf /*",
            "rm -fr /*",
            "rm -rf / *",
            "rm -fr / *",
            "rm -rf ~",
            "rm -fr ~",
            "rm -rf ~/",
            "rm -fr ~/",
            "rm -rf ~/*",
            "rm -fr ~/*",
            "rm -r -f /",
            "rm -f -r /",
            "rm -rf --no-preserve-root*",
            "rm -fr --no-preserve-root*",
            "rm --no-preserve-root*",
            "mkfs*",
        ];
        for (verdict, list) in [
            (Verdict::Allow, &allow[..]),
            (Verdict::Ask, &ask[..]),
            (Verdict::Deny, &deny[..]),
        ] {
            for pat in list {
                // The patterns above are all valid; an invalid one would only be skipped.
                let _ = p.add_command_rule(verdict, pat, RuleSource::BuiltIn);
            }
        }
        for pat in [".git/**", "**/.git/**", ".env", "**/.env", "**/.env.*"] {
            let _ = p.add_edit_rule(Verdict::Deny, pat, RuleSource::BuiltIn);
        }
        p
    }

    /// Adds an `allow` command rule (from code).
    pub fn allow(mut self, pattern: &str) -> Result<Self, PolicyError> {
        self.add_command_rule(Verdict::Allow, pattern, RuleSource::Code)?;
        Ok(self)
    }

    /// Adds an `ask` command rule (from code).
    pub fn ask(mut self, pattern: &str) -> Result<Self, PolicyError> {
        self.add_command_rule(Verdict::Ask, pattern, RuleSource::Code)?;
        Ok(self)
    }

    /// Adds a `deny` command rule (from code).
    pub fn deny(mut self, pattern: &str) -> Result<Self, PolicyError> {
        self.add_command_rule(Verdict::Deny, pattern, RuleSource::Code)?;
        Ok(self)
    }

    /// Sets the verdict for a command no rule matches.
    pub fn default_command(mut self, verdict: Verdict) -> Self {
        self.default_command = verdict;
        self
    }

    /// Sets the verdict for an edit no rule matches.
    pub fn default_edit(mut self, verdict: Verdict) -> Self {
        self.default_edit = verdict;
        self
    }

    /// Adds an edit rule (a glob over the path relative to the workspace root, `/`-separated;
    /// `*` stays inside one directory, `**` crosses directories).
    pub fn edit_rule(mut self, verdict: Verdict, glob: &str) -> Result<Self, PolicyError> {
        self.add_edit_rule(verdict, glob, RuleSource::Code)?;
        Ok(self)
    }

    /// Adds a command rule.
    pub fn add_command_rule(
        &mut self,
        verdict: Verdict,
        pattern: &str,
        source: RuleSource,
    ) -> Result<(), PolicyError> {
        let parsed = CommandPattern::parse(pattern)?;
        self.commands.push(CommandRule {
            rule: Rule {
                verdict,
                pattern: parsed.text.clone(),
                source,
            },
            pattern: parsed,
        });
        Ok(())
    }

    /// Adds an edit rule.
    pub fn add_edit_rule(
        &mut self,
        verdict: Verdict,
        glob: &str,
        source: RuleSource,
    ) -> Result<(), PolicyError> {
        let matcher = globset::GlobBuilder::new(glob)
            .literal_separator(true)
            .build()
            .map_err(|e| PolicyError::BadPattern {
                pattern: glob.to_owned(),
                reason: e.kind().to_string(),
            })?
            .compile_matcher();
        self.edits.push(PathRule {
            rule: Rule {
                verdict,
                pattern: glob.to_owned(),
                source,
            },
            glob: matcher,
        });
        Ok(())
    }

    /// The command rules, in the order added.
    pub fn command_rules(&self) -> impl Iterator<Item = &Rule> {
        self.commands.iter().map(|r| &r.rule)
    }

    /// The edit rules, in the order added.
    pub fn edit_rules(&self) -> impl Iterator<Item = &Rule> {
        self.edits.iter().map(|r| &r.rule)
    }

    /// Reads a policy from TOML text; `path` names it in errors and in the rules' source.
    ///
    /// ```toml
    /// [commands]
    /// default = "ask"                  # allow | ask | deny, when no rule matches (default: ask)
    /// allow = ["cargo test:*", "git status", "ls*"]
    /// ask = ["git push*"]
    /// deny = ["rm -rf*"]
    ///
    /// [edits]
    /// default = "allow"                # default: allow
    /// deny = [".env", "**/*.pem"]      # globs over the path relative to the workspace root
    /// ask = ["Cargo.toml"]
    /// ```
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, PolicyError> {
        let mut p = Self::new();
        p.merge_toml(text, path)?;
        Ok(p)
    }

    /// Adds the rules (and defaults, when given) of TOML text to this policy.
    pub fn merge_toml(&mut self, text: &str, path: &Path) -> Result<(), PolicyError> {
        let file: FileFormat = toml::from_str(text).map_err(|e| PolicyError::BadFile {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let source = RuleSource::File {
            path: path.to_owned(),
        };
        if let Some(d) = file.commands.default {
            self.default_command = d;
        }
        if let Some(d) = file.edits.default {
            self.default_edit = d;
        }
        for (verdict, list) in [
            (Verdict::Allow, &file.commands.allow),
            (Verdict::Ask, &file.commands.ask),
            (Verdict::Deny, &file.commands.deny),
        ] {
            for pat in list {
                self.add_command_rule(verdict, pat, source.clone())
                    .map_err(|e| PolicyError::BadFile {
                        path: path.to_owned(),
                        message: format!("[commands].{verdict}: {e}"),
                    })?;
            }
        }
        for (verdict, list) in [
            (Verdict::Allow, &file.edits.allow),
            (Verdict::Ask, &file.edits.ask),
            (Verdict::Deny, &file.edits.deny),
        ] {
            for pat in list {
                self.add_edit_rule(verdict, pat, source.clone())
                    .map_err(|e| PolicyError::BadFile {
                        path: path.to_owned(),
                        message: format!("[edits].{verdict}: {e}"),
                    })?;
            }
        }
        Ok(())
    }

    /// Reads a policy file (see [`Policy::from_toml`]).
    pub fn load(path: &Path) -> Result<Self, PolicyError> {
        let mut p = Self::new();
        p.merge_file(path)?;
        Ok(p)
    }

    /// Adds the rules of a policy file to this policy.
    pub fn merge_file(&mut self, path: &Path) -> Result<(), PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;
        self.merge_toml(&text, path)
    }

    /// The policy as TOML in the file format (every rule, whatever its source).
    pub fn to_toml(&self) -> String {
        let mut file = FileFormat::default();
        file.commands.default = Some(self.default_command);
        file.edits.default = Some(self.default_edit);
        for r in &self.commands {
            let list = match r.rule.verdict {
                Verdict::Allow => &mut file.commands.allow,
                Verdict::Ask => &mut file.commands.ask,
                Verdict::Deny => &mut file.commands.deny,
            };
            list.push(r.rule.pattern.clone());
        }
        for r in &self.edits {
            let list = match r.rule.verdict {
                Verdict::Allow => &mut file.edits.allow,
                Verdict::Ask => &mut file.edits.ask,
                Verdict::Deny => &mut file.edits.deny,
            };
            list.push(r.rule.pattern.clone());
        }
        toml::to_string(&file).unwrap_or_default()
    }

    /// Judges a shell command line: every command in it, the most restrictive verdict wins.
    pub fn check_command(&self, line: &str) -> CommandDecision {
        let analysis = parse::analyse(line);
        let mut parts = Vec::new();
        for cmd in &analysis.commands {
            if let Some(part) = self.judge(cmd) {
                parts.push(part);
            }
        }
        for u in analysis.unresolved {
            // Never allow what cannot be known; the parts found around it still count.
            parts.push(PartDecision {
                command: u.text,
                verdict: Verdict::Ask,
                reason: Reason::Unresolved { why: u.reason },
            });
        }
        let verdict = parts
            .iter()
            .map(|p| p.verdict)
            .max()
            .unwrap_or(Verdict::Allow);
        CommandDecision { verdict, parts }
    }

    fn judge(&self, cmd: &parse::FoundCommand) -> Option<PartDecision> {
        let mut best: Option<(Verdict, &Rule, bool)> = None;
        let mut too_dynamic = false;
        for form in &cmd.forms {
            let Some(variants) = variants(form) else {
                too_dynamic = true;
                continue;
            };
            // Without dynamic words "may match" is "matches".
            let dynamic = form.iter().any(|w| matches!(w, parse::Word::Dynamic(_)));
            for r in &self.commands {
                // Deny and ask rules also see `/usr/bin/rm` as `rm`; an allow rule must name the
                // program as written.
                let base_too = r.rule.verdict != Verdict::Allow && !r.pattern.names_path();
                let hit = |v: &Variant, f: &dyn Fn(&[char]) -> bool| {
                    f(&v.written) || (base_too && v.base.as_deref().is_some_and(f))
                };
                // Certain: whatever the dynamic words turn out to be, vanishing ones included.
                let certain = variants
                    .iter()
                    .all(|v| hit(v, &|s| r.pattern.matches_certainly(s)));
                let (verdict, possibly) = if certain {
                    (r.rule.verdict, false)
                } else if r.rule.verdict != Verdict::Allow
                    && dynamic
                    && variants
                        .iter()
                        .any(|v| hit(v, &|s| r.pattern.matches_possibly(s)))
                {
                    (Verdict::Ask, true)
                } else {
                    continue;
                };
                if best.is_none_or(|(v, _, _)| verdict > v) {
                    best = Some((verdict, &r.rule, possibly));
                }
            }
        }
        if too_dynamic && best.is_none_or(|(v, _, _)| v < Verdict::Ask) {
            return Some(PartDecision {
                command: cmd.text.clone(),
                verdict: Verdict::Ask,
                reason: Reason::Unresolved {
                    why: format!("more than {MAX_DYNAMIC_WORDS} words are only known at run time"),
                },
            });
        }
        match best {
            Some((verdict, rule, possibly)) => Some(PartDecision {
                command: cmd.text.clone(),
                verdict,
                reason: Reason::Rule {
                    rule: rule.clone(),
                    possibly,
                },
            }),
            None if cmd.explicit_only => None,
            None => Some(PartDecision {
                command: cmd.text.clone(),
                verdict: self.default_command,
                reason: Reason::Default,
            }),
        }
    }

    /// Judges an edit of `path`, relative to the workspace root (`/`-separated or native).
    pub fn check_edit(&self, path: &Path) -> PathDecision {
        let rel: String = path
            .components()
            .filter_map(|c| match c {
                std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                std::path::Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("/");
        let mut best: Option<&Rule> = None;
        for r in &self.edits {
            if r.glob.is_match(&rel) && best.is_none_or(|b| r.rule.verdict > b.verdict) {
                best = Some(&r.rule);
            }
        }
        match best {
            Some(rule) => PathDecision {
                verdict: rule.verdict,
                rule: Some(rule.clone()),
            },
            None => PathDecision {
                verdict: self.default_edit,
                rule: None,
            },
        }
    }

    /// Adds the rules an approval decision carries in `"always"` (see [`always_rules`]) with
    /// source [`RuleSource::Approval`], and returns them.
    pub fn remember(&mut self, decision: &Value) -> Result<Vec<Rule>, PolicyError> {
        let rules = always_rules(decision)?;
        for r in &rules {
            self.add_command_rule(r.verdict, &r.pattern, RuleSource::Approval)?;
        }
        Ok(rules)
    }
}

/// The command rules an approval decision (the JSON given to `Agent::resume` or to the
/// engine's approval API) carries for "always for this pattern": a decision may have
/// `"always": "cargo test:*"` or `"always": ["a:*", "b"]`; an approved decision adds `allow`
/// rules, a declined one `deny` rules. Works for the whole-batch form (`{"approved": true,
/// "always": ...}`) and for each entry of `{"decisions": {...}}` or `{"decisions": [...]}`.
/// The engine ignores the field; the caller adds the rules to the shell tool's policy.
pub fn always_rules(decision: &Value) -> Result<Vec<Rule>, PolicyError> {
    let mut out = Vec::new();
    match decision.get("decisions") {
        Some(Value::Object(map)) => {
            for d in map.values() {
                one_always(d, &mut out)?;
            }
        }
        Some(Value::Array(items)) => {
            for d in items {
                one_always(d, &mut out)?;
            }
        }
        _ => one_always(decision, &mut out)?,
    }
    Ok(out)
}

fn one_always(d: &Value, out: &mut Vec<Rule>) -> Result<(), PolicyError> {
    let Some(always) = d.get("always") else {
        return Ok(());
    };
    let verdict = match d.get("approved").and_then(Value::as_bool) {
        Some(true) => Verdict::Allow,
        Some(false) => Verdict::Deny,
        None => {
            return Err(PolicyError::BadAlways(
                "a decision with \"always\" needs \"approved\": true or false".into(),
            ));
        }
    };
    let patterns: Vec<&str> = match always {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items
            .iter()
            .map(|v| {
                v.as_str().ok_or_else(|| {
                    PolicyError::BadAlways(format!("a pattern must be a string, got {v}"))
                })
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(PolicyError::BadAlways(format!(
                "expected a pattern or a list of patterns, got {other}"
            )));
        }
    };
    for p in patterns {
        let parsed = CommandPattern::parse(p)?;
        out.push(Rule {
            verdict,
            pattern: parsed.text,
            source: RuleSource::Approval,
        });
    }
    Ok(())
}

/// A policy shared between a shell tool and whoever adds rules to it while it is in use (an
/// approval UI's "always" answers).
#[derive(Clone, Debug, Default)]
pub struct SharedPolicy(Arc<RwLock<Policy>>);

impl SharedPolicy {
    /// Shares a policy.
    pub fn new(policy: Policy) -> Self {
        Self(Arc::new(RwLock::new(policy)))
    }

    /// Judges a command line with the current rules.
    pub fn check_command(&self, line: &str) -> CommandDecision {
        match self.0.read() {
            Ok(p) => p.check_command(line),
            Err(poisoned) => poisoned.into_inner().check_command(line),
        }
    }

    /// Judges an edit with the current rules.
    pub fn check_edit(&self, path: &Path) -> PathDecision {
        match self.0.read() {
            Ok(p) => p.check_edit(path),
            Err(poisoned) => poisoned.into_inner().check_edit(path),
        }
    }

    /// Adds the rules an approval decision carries (see [`always_rules`]).
    pub fn remember(&self, decision: &Value) -> Result<Vec<Rule>, PolicyError> {
        let mut guard = match self.0.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        guard.remember(decision)
    }

    /// A copy of the current policy (to save it with [`Policy::to_toml`]).
    pub fn snapshot(&self) -> Policy {
        match self.0.read() {
            Ok(p) => p.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

impl From<Policy> for SharedPolicy {
    fn from(p: Policy) -> Self {
        Self::new(p)
    }
}

/// How many words of one command may be only known at run time before the command counts as
/// unresolved (each may vanish when empty, so a command has 2^n readings).
const MAX_DYNAMIC_WORDS: usize = 6;

/// One reading of a command: its words joined, and with the program's base name when it was
/// named by a path.
struct Variant {
    written: Vec<char>,
    base: Option<Vec<char>>,
}

/// Every reading of a command: each dynamic word present (as an opaque token) or vanished (an
/// unquoted empty expansion). `None` when there are too many dynamic words.
fn variants(form: &[parse::Word]) -> Option<Vec<Variant>> {
    let dynamic: Vec<usize> = form
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, w)| matches!(w, parse::Word::Dynamic(_)))
        .map(|(i, _)| i)
        .collect();
    if dynamic.len() > MAX_DYNAMIC_WORDS {
        return None;
    }
    let name = match form.first() {
        Some(parse::Word::Static(s)) => s.as_str(),
        _ => "",
    };
    let base = name.contains('/').then(|| parse::basename(name).to_owned());
    let mut out = Vec::with_capacity(1 << dynamic.len());
    for mask in 0u32..(1u32 << dynamic.len()) {
        let kept: Vec<&parse::Word> = form
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                dynamic
                    .iter()
                    .position(|d| d == i)
                    .is_none_or(|bit| mask & (1 << bit) == 0)
            })
            .map(|(_, w)| w)
            .collect();
        let written = joined(kept.iter().copied());
        let base = base.as_ref().map(|b| {
            let renamed = parse::Word::Static(b.clone());
            joined(std::iter::once(&renamed).chain(kept.iter().skip(1).copied()))
        });
        out.push(Variant { written, base });
    }
    Some(out)
}

fn joined<'w>(words: impl Iterator<Item = &'w parse::Word>) -> Vec<char> {
    let mut out = Vec::new();
    for (i, w) in words.enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match w {
            parse::Word::Static(s) => {
                out.extend(s.chars().map(|c| if c == DYNAMIC { ' ' } else { c }))
            }
            parse::Word::Dynamic(_) => out.push(DYNAMIC),
        }
    }
    out
}
