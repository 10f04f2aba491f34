//! The repository's own commands (tests, lint, security scan, deploy, health check), run as
//! programs (no shell unless the command is one), with a timeout and the end of their output
//! kept. Configured per repository in `.miyabi/pipeline.toml`, with defaults for Cargo and npm
//! projects.

use std::path::{Path, PathBuf};
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Why the commands could not be configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandsError {
    /// `.miyabi/pipeline.toml` could not be read or parsed.
    #[error("{path}: {reason}")]
    Config {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
}

/// A command line: the program and its arguments.
pub type Argv = Vec<String>;

/// The repository's commands. `None` means "not configured": the check is reported as skipped,
/// never as passed by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RepoCommands {
    /// Runs the tests.
    #[serde(default)]
    pub test: Option<Argv>,
    /// Lints (warnings as errors).
    #[serde(default)]
    pub lint: Option<Argv>,
    /// Scans for vulnerabilities.
    #[serde(default)]
    pub security: Option<Argv>,
    /// Deploys.
    #[serde(default)]
    pub deploy: Option<Argv>,
    /// Checks that the deployment is healthy (exit 0).
    #[serde(default)]
    pub health: Option<Argv>,
    /// Rolls a failed deployment back.
    #[serde(default)]
    pub rollback: Option<Argv>,
    /// Seconds each command may run (default 600).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

fn argv(words: &[&str]) -> Option<Argv> {
    Some(words.iter().map(|s| s.to_string()).collect())
}

impl RepoCommands {
    /// The defaults for the repository at `root`: a Cargo project gets `cargo test`, `cargo
    /// clippy --all-targets -- -D warnings` and `cargo audit`; an npm project `npm test`,
    /// `npm run lint --if-present` and `npm audit --omit=dev`; anything else nothing. No
    /// default deploy.
    pub fn defaults_for(root: &Path) -> Self {
        if root.join("Cargo.toml").is_file() {
            Self {
                test: argv(&["cargo", "test", "--quiet"]),
                lint: argv(&["cargo", "clippy", "--all-targets", "--", "-D", "warnings"]),
                security: argv(&["cargo", "audit"]),
                ..Self::default()
            }
        } else if root.join("package.json").is_file() {
            Self {
                test: argv(&["npm", "test"]),
                lint: argv(&["npm", "run", "lint", "--if-present"]),
                security: argv(&["npm", "audit", "--omit=dev"]),
                ..Self::default()
            }
        } else {
            Self::default()
        }
    }

    /// The commands of the repository at `root`: `.miyabi/pipeline.toml`'s `[commands]` table
    /// over the defaults (a key given there replaces the default).
    pub fn load(root: &Path) -> Result<Self, CommandsError> {
        let defaults = Self::defaults_for(root);
        let path = root.join(".miyabi").join("pipeline.toml");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(defaults),
            Err(e) => {
                return Err(CommandsError::Config {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                });
            }
        };
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct File {
            #[serde(default)]
            commands: RepoCommands,
        }
        let file: File = toml::from_str(&text).map_err(|e| CommandsError::Config {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let c = file.commands;
        Ok(Self {
            test: c.test.or(defaults.test),
            lint: c.lint.or(defaults.lint),
            security: c.security.or(defaults.security),
            deploy: c.deploy.or(defaults.deploy),
            health: c.health.or(defaults.health),
            rollback: c.rollback.or(defaults.rollback),
            timeout_secs: c.timeout_secs.or(defaults.timeout_secs),
        })
    }

    /// The timeout of one command.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.unwrap_or(600))
    }

    /// The command named `name` (`test`, `lint`, `security`, `deploy`, `health`, `rollback`).
    pub fn get(&self, name: &str) -> Option<&Argv> {
        match name {
            "test" => self.test.as_ref(),
            "lint" => self.lint.as_ref(),
            "security" => self.security.as_ref(),
            "deploy" => self.deploy.as_ref(),
            "health" => self.health.as_ref(),
            "rollback" => self.rollback.as_ref(),
            _ => None,
        }
    }
}

/// What running one command gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CheckResult {
    /// The check's name (`test`, `lint`, ...).
    pub name: String,
    /// The command line, or empty when not configured.
    pub command: Vec<String>,
    /// Exit 0.
    pub passed: bool,
    /// Not configured, or its program is not installed: not run, and not counted as passed.
    pub skipped: bool,
    /// The exit code (`None`: killed, timed out or not run).
    pub exit_code: Option<i32>,
    /// The last 4 KB of standard output and error, interleaved as read.
    pub output: String,
}

/// How much of a command's output is kept.
const OUTPUT_TAIL: usize = 4096;

fn tail(s: &str) -> String {
    if s.len() <= OUTPUT_TAIL {
        return s.to_owned();
    }
    let mut start = s.len() - OUTPUT_TAIL;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &s[start..])
}

/// Runs the check `name` of `commands` in `dir`. A command that is not configured, or whose
/// program cannot be found, is `skipped`; a timeout kills it and fails the check.
pub async fn run_check(commands: &RepoCommands, name: &str, dir: &Path) -> CheckResult {
    let Some(argv) = commands.get(name).filter(|a| !a.is_empty()) else {
        return CheckResult {
            name: name.to_owned(),
            command: Vec::new(),
            passed: false,
            skipped: true,
            exit_code: None,
            output: format!("no `{name}` command is configured"),
        };
    };
    run_argv(name, argv, dir, commands.timeout()).await
}

/// Runs one command line in `dir` (see [`run_check`]).
pub async fn run_argv(name: &str, argv: &[String], dir: &Path, timeout: Duration) -> CheckResult {
    let mut result = CheckResult {
        name: name.to_owned(),
        command: argv.to_vec(),
        passed: false,
        skipped: false,
        exit_code: None,
        output: String::new(),
    };
    let Some((program, args)) = argv.split_first() else {
        result.skipped = true;
        return result;
    };
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let child = cmd.output();
    match tokio::time::timeout(timeout, child).await {
        Err(_) => {
            result.output = format!("`{name}` timed out after {} s", timeout.as_secs());
        }
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            result.skipped = true;
            result.output = format!("`{program}` is not installed");
        }
        Ok(Err(e)) => result.output = format!("`{program}` could not start: {e}"),
        Ok(Ok(out)) => {
            result.exit_code = out.status.code();
            result.passed = out.status.success();
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            result.output = tail(&text);
        }
    }
    result
}

/// The directory a command runs in, absolute.
pub fn absolute(dir: &Path) -> PathBuf {
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}
