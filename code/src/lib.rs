//! # miyabi-code
//!
//! The coding agent for [Miyabi](https://docs.rs/miyabi): tools that let an [`miyabi::Agent`]
//! work in a code repository — read, search and edit files confined to a workspace root, run
//! commands in a sandbox under a `deny > ask > allow` permission policy, use git and git
//! worktrees for parallel work, and see a ranked map of the repository's symbols.

pub mod agent;

// -- workspace tools, git, repository map
pub mod git;
pub mod instructions;
pub mod repomap;
pub mod workspace;
pub use git::{Git, GitError, Worktrees};
pub use repomap::{RepoIndex, RepoMap, RepoMapError};
pub use workspace::{Limits, Workspace, WorkspaceError};

// -- shell, sandbox and permission policy
pub mod policy;
pub mod shell;

// -- benchmark harnesses (SWE-bench-style instances, an AgentBench-style shell environment)
pub mod harness;
