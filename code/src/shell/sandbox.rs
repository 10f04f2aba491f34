//! The sandbox: bubblewrap (`bwrap`) namespaces and mounts around a command.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// How much a command may touch, like Codex's sandbox modes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SandboxMode {
    /// The whole file system read-only (a private, empty `/tmp` excepted), no network.
    ReadOnly,
    /// Writes only under the workspace (its `.git` read-only unless git writes are allowed),
    /// the extra writable directories, and a private `/tmp`; no network.
    #[default]
    WorkspaceWrite,
    /// No sandbox: the command runs as the agent's process would, with its network.
    FullAccess,
}

impl SandboxMode {
    /// The mode's name as written in configs and results.
    pub fn as_str(&self) -> &'static str {
        match self {
            SandboxMode::ReadOnly => "read-only",
            SandboxMode::WorkspaceWrite => "workspace-write",
            SandboxMode::FullAccess => "full-access",
        }
    }
}

/// What the bwrap command line needs.
pub(crate) struct Layout<'a> {
    pub(crate) mode: SandboxMode,
    pub(crate) workspace: &'a Path,
    pub(crate) writable: &'a [PathBuf],
    pub(crate) allow_git_writes: bool,
}

/// bwrap's arguments up to (not including) the command: a read-only view of `/`, fresh `/dev`,
/// `/proc` and `/tmp`, the workspace bound read-write (workspace-write) or read-only, its `.git`
/// re-bound read-only unless git writes are allowed, no network, a new session and PID
/// namespace, and death with the parent.
pub(crate) fn bwrap_args(l: &Layout<'_>) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |s: &str| a.push(OsString::from(s));
    push("--die-with-parent");
    push("--new-session");
    push("--unshare-pid");
    push("--unshare-ipc");
    push("--unshare-uts");
    push("--unshare-net");
    push("--ro-bind");
    push("/");
    push("/");
    push("--dev");
    push("/dev");
    push("--proc");
    push("/proc");
    push("--tmpfs");
    push("/tmp");
    let ws = l.workspace.as_os_str().to_owned();
    // After the tmpfs, so that a workspace under /tmp is still visible.
    let bind = if l.mode == SandboxMode::WorkspaceWrite {
        "--bind"
    } else {
        "--ro-bind"
    };
    a.push(bind.into());
    a.push(ws.clone());
    a.push(ws.clone());
    if l.mode == SandboxMode::WorkspaceWrite {
        for w in l.writable {
            a.push("--bind".into());
            a.push(w.as_os_str().to_owned());
            a.push(w.as_os_str().to_owned());
        }
        let git = l.workspace.join(".git");
        if !l.allow_git_writes && git.exists() {
            a.push("--ro-bind".into());
            a.push(git.as_os_str().to_owned());
            a.push(git.as_os_str().to_owned());
        }
    }
    a.push("--chdir".into());
    a.push(ws);
    a
}
