//! Finding every command a shell line would run, with tree-sitter's bash grammar.
//!
//! The walk visits the whole syntax tree, so a command is found wherever it sits: in a list
//! (`&&`, `||`, `;`), a pipeline, a subshell, a `{ }` group, a `$(...)` or backtick
//! substitution, a process substitution, a function body, a loop, a heredoc. Each command's
//! words are resolved statically (quotes removed, escapes applied); a word that only has a value
//! at run time is kept as a dynamic word. Wrappers (`sudo`, `env`, `xargs`, `timeout`, ...) add
//! the wrapped command as another form of the same command; `bash -c '...'`, `sh -c` and `eval`
//! have their script parsed in turn; `find -exec` adds the executed command.

use std::cell::RefCell;

use tree_sitter::{Node, Parser};

/// How deep `bash -c "bash -c '...'"` may nest before the rest counts as unresolved.
const MAX_DEPTH: usize = 8;

/// One word of a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Word {
    /// Known before running: quotes removed, escapes applied.
    Static(String),
    /// Only known at run time (`$X`, `$(...)`, `{a,b}`); the source text, for messages.
    Dynamic(String),
}

impl Word {
    fn as_static(&self) -> Option<&str> {
        match self {
            Word::Static(s) => Some(s),
            Word::Dynamic(_) => None,
        }
    }
}

/// A command the line would run.
#[derive(Clone, Debug)]
pub(crate) struct FoundCommand {
    /// The command's source text (for messages).
    pub(crate) text: String,
    /// The command as written, then the command it wraps, and so on (`sudo env rm x`,
    /// `env rm x`, `rm x`); a git command with global options also in its canonical form.
    pub(crate) forms: Vec<Vec<Word>>,
    /// Only explicit rules apply to it, not the default: a `bash -c` whose script's commands
    /// are judged themselves.
    pub(crate) explicit_only: bool,
}

/// Something the analysis cannot resolve statically.
#[derive(Clone, Debug)]
pub(crate) struct Unresolved {
    pub(crate) text: String,
    pub(crate) reason: String,
}

/// Everything found in a line.
#[derive(Clone, Debug, Default)]
pub(crate) struct Analysis {
    pub(crate) commands: Vec<FoundCommand>,
    pub(crate) unresolved: Vec<Unresolved>,
}

thread_local! {
    static PARSER: RefCell<Option<Parser>> = const { RefCell::new(None) };
}

/// Analyses a shell line.
pub(crate) fn analyse(line: &str) -> Analysis {
    let mut out = Analysis::default();
    analyse_into(line, 0, &mut out);
    out
}

fn analyse_into(line: &str, depth: usize, out: &mut Analysis) {
    if depth > MAX_DEPTH {
        out.unresolved.push(Unresolved {
            text: clip(line),
            reason: format!("shell scripts nested more than {MAX_DEPTH} deep"),
        });
        return;
    }
    let tree = PARSER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let mut p = Parser::new();
            if p.set_language(&tree_sitter_bash::LANGUAGE.into()).is_err() {
                return None;
            }
            *slot = Some(p);
        }
        slot.as_mut().and_then(|p| p.parse(line, None))
    });
    let Some(tree) = tree else {
        out.unresolved.push(Unresolved {
            text: clip(line),
            reason: "the bash parser could not run".into(),
        });
        return;
    };
    let src = line.as_bytes();
    let mut walker = Walker {
        src,
        depth,
        out,
        reported_error: false,
    };
    walker.walk(tree.root_node());
}

struct Walker<'a, 'o> {
    src: &'a [u8],
    depth: usize,
    out: &'o mut Analysis,
    reported_error: bool,
}

impl Walker<'_, '_> {
    fn text(&self, node: Node) -> String {
        node.utf8_text(self.src).unwrap_or_default().to_owned()
    }

    fn walk(&mut self, root: Node) {
        // An explicit stack: a hostile, deeply nested line cannot overflow the call stack.
        let mut stack = vec![root];
        while let Some(node) = stack.pop() {
            if (node.is_error() || node.is_missing()) && !self.reported_error {
                self.reported_error = true;
                self.out.unresolved.push(Unresolved {
                    text: clip(&self.text(node)),
                    reason: "the line does not parse as bash".into(),
                });
            }
            match node.kind() {
                "command" => self.command(node),
                "variable_assignment" => self.assignment(node),
                _ => {}
            }
            for i in (0..node.child_count()).rev() {
                if let Some(child) = node.child(i) {
                    stack.push(child);
                }
            }
        }
    }

    /// `PATH=/tmp/x ls` or `export LD_PRELOAD=...` changes what later commands run.
    fn assignment(&mut self, node: Node) {
        let Some(name) = node.child_by_field_name("name") else {
            return;
        };
        let name = self.text(name);
        if is_hijacking_variable(&name) {
            self.out.unresolved.push(Unresolved {
                text: clip(&self.text(node)),
                reason: format!("setting `{name}` changes which programs run"),
            });
        }
    }

    fn command(&mut self, node: Node) {
        let Some(name) = node.child_by_field_name("name") else {
            return;
        };
        let mut words = vec![self.word(name)];
        for i in 0..node.child_count() {
            if node.field_name_for_child(i) == Some("argument")
                && let Some(arg) = node.child(i)
            {
                words.push(self.word(arg));
            }
        }
        let text = clip(&self.text(node));
        self.resolve(text, words);
    }

    /// Judges a command given by its words (from the tree, or from `find -exec`).
    fn resolve(&mut self, text: String, words: Vec<Word>) {
        let Some(Word::Static(name)) = words.first() else {
            self.out.unresolved.push(Unresolved {
                text,
                reason: "the command name is only known at run time".into(),
            });
            return;
        };
        if name.is_empty() || name.contains(['*', '?', '[']) {
            self.out.unresolved.push(Unresolved {
                text,
                reason: "the command name is only known at run time".into(),
            });
            return;
        }
        let mut forms = vec![words];
        let mut explicit_only = false;
        let mut scripts: Vec<String> = Vec::new();
        let mut execs: Vec<Vec<Word>> = Vec::new();
        while let Some(cur) = forms.last() {
            let base = basename(cur.first().and_then(Word::as_static).unwrap_or_default());
            match unwrap(base, &cur[1..]) {
                Unwrapped::Nothing => break,
                Unwrapped::Inner(inner) => {
                    if inner.is_empty() {
                        break;
                    }
                    if let Some(Word::Dynamic(_)) = inner.first() {
                        self.out.unresolved.push(Unresolved {
                            text: text.clone(),
                            reason: "the wrapped command is only known at run time".into(),
                        });
                        break;
                    }
                    forms.push(inner);
                }
                Unwrapped::Canonical(canon) => {
                    forms.push(canon);
                    break;
                }
                Unwrapped::Script(Word::Static(script)) => {
                    explicit_only = true;
                    scripts.push(script);
                    break;
                }
                Unwrapped::Script(Word::Dynamic(_)) => {
                    self.out.unresolved.push(Unresolved {
                        text: text.clone(),
                        reason: format!("the script given to `{base}` is only known at run time"),
                    });
                    break;
                }
                Unwrapped::Eval(args) => {
                    self.out.unresolved.push(Unresolved {
                        text: text.clone(),
                        reason: "`eval` runs a string as code".into(),
                    });
                    let stat: Option<Vec<&str>> = args.iter().map(Word::as_static).collect();
                    if let Some(parts) = stat {
                        scripts.push(parts.join(" "));
                    }
                    break;
                }
                Unwrapped::Opaque(reason) => {
                    self.out.unresolved.push(Unresolved {
                        text: text.clone(),
                        reason,
                    });
                    break;
                }
                Unwrapped::Execs(found) => {
                    execs = found;
                    break;
                }
            }
        }
        self.out.commands.push(FoundCommand {
            text: text.clone(),
            forms,
            explicit_only,
        });
        for script in scripts {
            analyse_into(&script, self.depth + 1, self.out);
        }
        for words in execs {
            let shown = clip(&render(&words));
            self.resolve(shown, words);
        }
    }

    /// The static value of a word node, or the node's text as a dynamic word.
    fn word(&self, node: Node) -> Word {
        let dynamic = || Word::Dynamic(self.text(node));
        match node.kind() {
            "command_name" => match node.child(0) {
                Some(c) => self.word(c),
                None => dynamic(),
            },
            "word" | "number" => {
                let raw = self.text(node);
                if is_brace_expansion(&raw) {
                    return dynamic();
                }
                Word::Static(unescape_bare(&raw))
            }
            "raw_string" => {
                let raw = self.text(node);
                Word::Static(strip_pair(&raw, '\'').to_owned())
            }
            "string" => {
                for i in 0..node.named_child_count() as u32 {
                    if let Some(c) = node.named_child(i)
                        && c.kind() != "string_content"
                    {
                        return dynamic();
                    }
                }
                let raw = self.text(node);
                Word::Static(unescape_double(strip_pair(&raw, '"')))
            }
            "translated_string" => match node.named_child(0) {
                Some(c) => self.word(c),
                None => dynamic(),
            },
            "ansi_c_string" => {
                let raw = self.text(node);
                let inner = raw
                    .strip_prefix("$'")
                    .and_then(|r| r.strip_suffix('\''))
                    .unwrap_or_default();
                match unescape_ansi_c(inner) {
                    Some(s) => Word::Static(s),
                    None => dynamic(),
                }
            }
            "concatenation" => {
                let mut s = String::new();
                for i in 0..node.child_count() {
                    let Some(c) = node.child(i) else { continue };
                    match self.word(c) {
                        Word::Static(part) => s.push_str(&part),
                        Word::Dynamic(_) => return dynamic(),
                    }
                }
                if is_brace_expansion(&self.text(node)) {
                    return dynamic();
                }
                Word::Static(s)
            }
            _ => dynamic(),
        }
    }
}

/// What a command wraps.
enum Unwrapped {
    /// Not a wrapper.
    Nothing,
    /// The command it runs (`sudo rm x` → `rm x`).
    Inner(Vec<Word>),
    /// The same command in a canonical form (`git -C d push` → `git push`).
    Canonical(Vec<Word>),
    /// A shell script it runs (`bash -c '...'`).
    Script(Word),
    /// `eval` with its arguments.
    Eval(Vec<Word>),
    /// Commands `find -exec` runs.
    Execs(Vec<Vec<Word>>),
    /// It runs something that cannot be known statically.
    Opaque(String),
}

fn st(w: &Word) -> &str {
    w.as_static().unwrap_or("\0")
}

/// Skips options: `with_arg` are short options that take the next word (or an attached value),
/// long options are `--x` or `--x=v`; `long_with_arg` take the next word when given without `=`.
fn skip_options<'w>(args: &'w [Word], with_arg: &[&str], long_with_arg: &[&str]) -> &'w [Word] {
    let mut i = 0;
    while i < args.len() {
        let a = st(&args[i]);
        if a == "--" {
            return &args[i + 1..];
        }
        if let Some(long) = a.strip_prefix("--") {
            if !long.contains('=') && long_with_arg.contains(&long) {
                i += 1;
            }
            i += 1;
            continue;
        }
        if a.len() > 1 && a.starts_with('-') {
            // Exactly `-u` takes the next word; `-uroot` has it attached.
            if with_arg.contains(&a) {
                i += 1;
            }
            i += 1;
            continue;
        }
        break;
    }
    &args[i.min(args.len())..]
}

fn unwrap(name: &str, args: &[Word]) -> Unwrapped {
    match name {
        "sudo" => {
            let rest = skip_options(
                args,
                &[
                    "-u", "-g", "-C", "-D", "-h", "-p", "-r", "-t", "-T", "-U", "-R",
                ],
                &[
                    "user",
                    "group",
                    "close-from",
                    "chdir",
                    "host",
                    "prompt",
                    "role",
                    "type",
                    "command-timeout",
                    "other-user",
                    "chroot",
                ],
            );
            if rest.is_empty() {
                let shell = args[..args.len() - rest.len()]
                    .iter()
                    .any(|a| matches!(st(a), "-s" | "-i" | "--shell" | "--login"));
                if shell {
                    return Opaque(
                        "`sudo` starts a shell that reads its commands from input".into(),
                    );
                }
                return Nothing;
            }
            Inner(rest.to_vec())
        }
        "doas" => Inner(skip_options(args, &["-u", "-C"], &[]).to_vec()),
        "env" => {
            let mut i = 0;
            while i < args.len() {
                let a = st(&args[i]);
                if matches!(a, "-S" | "--split-string")
                    || a.starts_with("--split-string=")
                    || (a.starts_with("-S") && a.len() > 2)
                {
                    return Opaque("`env -S` splits a string into a command".into());
                }
                if a == "--" {
                    i += 1;
                    break;
                }
                if matches!(a, "-u" | "-C" | "--unset" | "--chdir") {
                    i += 2;
                    continue;
                }
                if a.starts_with('-') && a.len() > 1 {
                    i += 1;
                    continue;
                }
                if let Some((var, _)) = a.split_once('=')
                    && !var.is_empty()
                {
                    if is_hijacking_variable(var) {
                        return Opaque(format!("setting `{var}` changes which programs run"));
                    }
                    i += 1;
                    continue;
                }
                break;
            }
            Inner(args[i.min(args.len())..].to_vec())
        }
        "xargs" => {
            let rest = skip_options(
                args,
                &["-I", "-L", "-n", "-P", "-s", "-E", "-d", "-a"],
                &[
                    "arg-file",
                    "delimiter",
                    "max-lines",
                    "max-args",
                    "max-procs",
                    "max-chars",
                    "replace",
                    "eof",
                ],
            );
            let mut inner = if rest.is_empty() {
                vec![Word::Static("echo".into())]
            } else {
                rest.to_vec()
            };
            inner.push(Word::Dynamic("<arguments from input>".into()));
            Inner(inner)
        }
        "nice" => Inner(skip_options(args, &["-n"], &["adjustment"]).to_vec()),
        "nohup" | "builtin" | "unbuffer" => Inner(args.to_vec()),
        "command" => {
            if args.first().is_some_and(|a| matches!(st(a), "-v" | "-V")) {
                return Nothing;
            }
            Inner(skip_options(args, &[], &[]).to_vec())
        }
        "exec" => Inner(skip_options(args, &["-a"], &[]).to_vec()),
        "time" => Inner(skip_options(args, &["-f", "-o"], &["format", "output"]).to_vec()),
        "stdbuf" => {
            Inner(skip_options(args, &["-i", "-o", "-e"], &["input", "output", "error"]).to_vec())
        }
        "setsid" => Inner(skip_options(args, &[], &[]).to_vec()),
        "ionice" => Inner(
            skip_options(
                args,
                &["-c", "-n", "-p", "-P", "-u"],
                &["class", "classdata", "pid", "pgid", "uid"],
            )
            .to_vec(),
        ),
        "timeout" => {
            let rest = skip_options(args, &["-s", "-k"], &["signal", "kill-after"]);
            // The duration, then the command.
            Inner(rest.get(1..).unwrap_or_default().to_vec())
        }
        "chroot" => {
            let rest = skip_options(args, &[], &["userspec", "groups"]);
            Inner(rest.get(1..).unwrap_or_default().to_vec())
        }
        "watch" => {
            let rest = skip_options(
                args,
                &["-n", "-d", "-q"],
                &["interval", "differences", "equexit"],
            );
            if rest.is_empty() {
                return Nothing;
            }
            let joined: Option<Vec<&str>> = rest.iter().map(Word::as_static).collect();
            match joined {
                Some(parts) => Script(Word::Static(parts.join(" "))),
                None => Script(Word::Dynamic(String::new())),
            }
        }
        "eval" => Eval(args.to_vec()),
        "bash" | "sh" | "dash" | "zsh" | "ksh" | "mksh" | "ash" | "busybox" => shell(name, args),
        "find" => {
            let mut execs = Vec::new();
            let mut i = 0;
            while i < args.len() {
                if matches!(st(&args[i]), "-exec" | "-execdir" | "-ok" | "-okdir") {
                    let mut words = Vec::new();
                    i += 1;
                    while i < args.len() && !matches!(st(&args[i]), ";" | "+") {
                        words.push(match &args[i] {
                            Word::Static(s) if s.contains("{}") => Word::Dynamic(s.clone()),
                            w => w.clone(),
                        });
                        i += 1;
                    }
                    if !words.is_empty() {
                        execs.push(words);
                    }
                }
                i += 1;
            }
            if execs.is_empty() {
                Nothing
            } else {
                Execs(execs)
            }
        }
        "git" => git_canonical(args),
        _ => Nothing,
    }
}

use Unwrapped::{Canonical, Eval, Execs, Inner, Nothing, Opaque, Script};

/// `bash -c 'script'`: the script; `bash file`: nothing to unwrap; `bash` alone or `bash -s`
/// reads commands from its input, which cannot be known.
fn shell(name: &str, args: &[Word]) -> Unwrapped {
    let args = if name == "busybox" {
        match args.first().map(st) {
            Some("sh" | "ash" | "bash") => &args[1..],
            _ => return Nothing,
        }
    } else {
        args
    };
    let mut i = 0;
    let mut dash_c = false;
    let mut stdin = false;
    while i < args.len() {
        let a = st(&args[i]);
        if a == "--" || a == "-" {
            i += 1;
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            if matches!(long, "rcfile" | "init-file") {
                i += 1;
            }
            i += 1;
            continue;
        }
        if (a.starts_with('-') || a.starts_with('+')) && a.len() > 1 {
            let flags = &a[1..];
            if flags.contains('c') {
                dash_c = true;
            }
            if flags.contains('s') {
                stdin = true;
            }
            if flags.contains('o') || flags.contains('O') {
                i += 1;
            }
            i += 1;
            continue;
        }
        break;
    }
    let first = args.get(i);
    if dash_c {
        return match first {
            Some(w) => Script(w.clone()),
            None => Opaque(format!("`{name} -c` without a script")),
        };
    }
    if stdin || first.is_none() {
        return Opaque(format!("`{name}` reads its commands from input"));
    }
    Nothing
}

/// `git -C dir -c k=v push` → `git push`, so a rule on `git push` sees it.
fn git_canonical(args: &[Word]) -> Unwrapped {
    let mut i = 0;
    while i < args.len() {
        let a = st(&args[i]);
        match a {
            "-C" | "-c" | "--git-dir" | "--work-tree" | "--namespace" | "--config-env"
            | "--super-prefix" | "--exec-path" => {
                i += if a == "--exec-path" { 1 } else { 2 };
            }
            _ if a.starts_with("--") && a.len() > 2 => i += 1,
            "-p" | "-P" => i += 1,
            _ => break,
        }
    }
    if i == 0 || i >= args.len() {
        return Nothing;
    }
    let mut canon = vec![Word::Static("git".into())];
    canon.extend_from_slice(&args[i..]);
    Canonical(canon)
}

/// Variables whose value decides which program a later command runs, or runs code itself.
pub(crate) fn is_hijacking_variable(name: &str) -> bool {
    matches!(
        name,
        "PATH"
            | "LD_PRELOAD"
            | "LD_LIBRARY_PATH"
            | "LD_AUDIT"
            | "BASH_ENV"
            | "ENV"
            | "IFS"
            | "SHELLOPTS"
            | "BASHOPTS"
            | "PROMPT_COMMAND"
            | "PS4"
            | "GIT_SSH_COMMAND"
            | "GIT_SSH"
            | "GIT_EXTERNAL_DIFF"
            | "GIT_EXEC_PATH"
    )
}

/// The last path component of a command name (`/usr/bin/rm` → `rm`).
pub(crate) fn basename(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Words for messages.
pub(crate) fn render(words: &[Word]) -> String {
    words
        .iter()
        .map(|w| match w {
            Word::Static(s) => s.as_str(),
            Word::Dynamic(s) => s.as_str(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn clip(s: &str) -> String {
    const MAX: usize = 200;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn strip_pair(s: &str, q: char) -> &str {
    s.strip_prefix(q)
        .and_then(|r| r.strip_suffix(q))
        .unwrap_or(s)
}

/// `{a,b}` or `{1..3}` outside quotes: bash expands it into several words.
fn is_brace_expansion(raw: &str) -> bool {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    let mut seen = false;
    let mut prev = '\0';
    for c in raw.chars() {
        if escaped {
            escaped = false;
            prev = c;
            continue;
        }
        match (quote, c) {
            (None, '\\') => escaped = true,
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), _) if q == c => quote = None,
            (None, '{') => depth += 1,
            (None, '}') => depth = depth.saturating_sub(1),
            (None, ',') if depth > 0 => seen = true,
            (None, '.') if depth > 0 && prev == '.' => seen = true,
            _ => {}
        }
        prev = c;
    }
    seen
}

/// An unquoted word: a backslash keeps the next character literally.
fn unescape_bare(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('\n') | None => {}
                Some(n) => out.push(n),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Inside double quotes a backslash only escapes `$`, `` ` ``, `"`, `\` and a newline.
fn unescape_double(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.peek() {
                Some('$' | '`' | '"' | '\\') => {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                }
                Some('\n') => {
                    chars.next();
                }
                _ => out.push(c),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `$'...'` with the common escapes; `None` for anything else (the word is then dynamic).
fn unescape_ansi_c(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            'n' => out.push('\n'),
            't' => out.push('\t'),
            'r' => out.push('\r'),
            '\\' => out.push('\\'),
            '\'' => out.push('\''),
            '"' => out.push('"'),
            ' ' => out.push(' '),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(line: &str) -> Vec<String> {
        analyse(line)
            .commands
            .iter()
            .map(|c| render(c.forms.last().map(Vec::as_slice).unwrap_or_default()))
            .collect()
    }

    #[test]
    fn finds_commands_everywhere() {
        assert_eq!(names("a && b || c; d | e"), ["a", "b", "c", "d", "e"]);
        assert_eq!(names("(a; { b; })"), ["a", "b"]);
        assert_eq!(
            names("echo $(rm -rf /) `ls`"),
            ["echo $(rm -rf /) `ls`", "rm -rf /", "ls"]
        );
        assert_eq!(
            names("diff <(ls a) <(ls b)"),
            ["diff <(ls a) <(ls b)", "ls a", "ls b"]
        );
        assert_eq!(names("X=1 Y=2 cargo test"), ["cargo test"]);
        assert_eq!(names("'r'\"m\" -rf /"), ["rm -rf /"]);
        assert_eq!(names("\\rm -rf /"), ["rm -rf /"]);
        assert_eq!(names("f() { rm x; }"), ["rm x"]);
        assert_eq!(names("for i in 1; do rm $i; done"), ["rm $i"]);
    }

    #[test]
    fn wrappers_and_scripts() {
        assert_eq!(names("sudo -u root rm -rf /"), ["rm -rf /"]);
        assert_eq!(names("env -i A=1 rm x"), ["rm x"]);
        assert_eq!(names("timeout 5 rm x"), ["rm x"]);
        assert_eq!(names("xargs -n1 rm"), ["rm <arguments from input>"]);
        assert_eq!(names("bash -lc 'a && b'"), ["bash -lc a && b", "a", "b"]);
        assert_eq!(
            names("find . -exec rm {} \\;"),
            ["find . -exec rm {} ;", "rm {}"]
        );
        assert_eq!(names("git -C /x -c a=b push"), ["git push"]);
    }

    #[test]
    fn unresolved_things() {
        for line in [
            "$X foo",
            "eval ls",
            "echo x | bash",
            "bash -c \"$S\"",
            "PATH=/tmp ls",
            "if (",
            "{a,b} x",
        ] {
            assert!(!analyse(line).unresolved.is_empty(), "{line}");
        }
        for line in ["ls -la", "cargo test -- --nocapture", "X=1 ls"] {
            assert!(analyse(line).unresolved.is_empty(), "{line}");
        }
    }
}
