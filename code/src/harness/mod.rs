//! Benchmark harnesses for coding agents: SWE-bench-style instances ([`swebench`]) — a patch
//! made in a worktree at the instance's base commit, applied to a clean checkout, judged by its
//! FAIL_TO_PASS and PASS_TO_PASS tests — and an AgentBench-style operating-system environment
//! ([`osbench`]) — multi-turn shell tasks in a temporary directory with a turn limit.
//!
//! Tests run in local checkouts through a [`TestRunner`]; a container runner plugs in there (see
//! [`TestRunner`]).

pub mod osbench;
pub mod swebench;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;

/// What a command did: exit status and its (capped) output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    /// Exit code (`None`: killed by a signal or timed out).
    pub code: Option<i32>,
    /// Standard output and error, interleaved by stream, capped at 64 KiB each.
    pub output: String,
    /// The command ran past its timeout and was killed.
    pub timed_out: bool,
}

impl CommandOutcome {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.timed_out
    }
}

/// Errors of the harnesses.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A git command failed.
    #[error("instance `{instance}`: {message}")]
    Git {
        /// The instance.
        instance: String,
        /// Git's message.
        message: String,
    },
    /// A dataset line or results file could not be read.
    #[error("{place}: {message}")]
    Data {
        /// Which file and line.
        place: String,
        /// What was wrong.
        message: String,
    },
    /// The solver failed.
    #[error("instance `{instance}`: the solver failed: {message}")]
    Solver {
        /// The instance.
        instance: String,
        /// Its error.
        message: String,
    },
}

/// Runs a test command in a checkout. [`LocalRunner`] runs it with `sh -c` in the directory; a
/// container runner implements the same trait — e.g. `docker run --rm -v <dir>:/repo -w /repo
/// <image> sh -c <command>` with the instance's image — and is given to
/// [`swebench::SweBench::runner`].
#[async_trait]
pub trait TestRunner: Send + Sync {
    /// Runs `command` in `dir` with a time limit.
    async fn run(
        &self,
        dir: &Path,
        command: &str,
        timeout: Duration,
    ) -> Result<CommandOutcome, HarnessError>;
}

/// Runs commands with `sh -c` in the checkout, on this machine (no container), with a clean
/// environment apart from `PATH`, `HOME`, `CARGO_HOME`, `RUSTUP_HOME` and `CARGO_TARGET_DIR`.
#[derive(Debug, Clone, Default)]
pub struct LocalRunner;

const CAP: usize = 64 * 1024;

fn capped(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(bytes);
    if s.len() <= CAP {
        return s.into_owned();
    }
    let mut end = CAP;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n[... {} more bytes]", &s[..end], s.len() - end)
}

#[async_trait]
impl TestRunner for LocalRunner {
    async fn run(
        &self,
        dir: &Path,
        command: &str,
        timeout: Duration,
    ) -> Result<CommandOutcome, HarnessError> {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .current_dir(dir)
            .env_clear()
            .kill_on_drop(true);
        for key in [
            "PATH",
            "HOME",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "CARGO_TARGET_DIR",
            "LANG",
        ] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        cmd.stdin(std::process::Stdio::null());
        let child = cmd.output();
        match tokio::time::timeout(timeout, child).await {
            Ok(Ok(out)) => Ok(CommandOutcome {
                code: out.status.code(),
                output: format!("{}{}", capped(&out.stdout), capped(&out.stderr)),
                timed_out: false,
            }),
            Ok(Err(source)) => Err(HarnessError::Io {
                what: format!("running `{command}` in {}", dir.display()),
                source,
            }),
            Err(_) => Ok(CommandOutcome {
                code: None,
                output: format!("timed out after {} ms", timeout.as_millis()),
                timed_out: true,
            }),
        }
    }
}
