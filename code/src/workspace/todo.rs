//! The agent's own todo list: the model writes the whole list each time (as Claude Code's
//! `TodoWrite`), and gets it back rendered.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::WorkspaceError;

/// Where a todo item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TodoStatus {
    /// Not started.
    Pending,
    /// Being worked on (at most one item at a time).
    InProgress,
    /// Done.
    Completed,
}

/// One item of the todo list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Todo {
    /// What to do, imperative ("Fix the failing test").
    pub content: String,
    /// Where it stands.
    pub status: TodoStatus,
}

/// At most this many items.
const MAX_ITEMS: usize = 100;

pub(crate) fn validate(todos: &[Todo]) -> Result<(), WorkspaceError> {
    if todos.len() > MAX_ITEMS {
        return Err(WorkspaceError::BadTodos {
            reason: format!("{} items, at most {MAX_ITEMS}", todos.len()),
        });
    }
    if let Some(i) = todos.iter().position(|t| t.content.trim().is_empty()) {
        return Err(WorkspaceError::BadTodos {
            reason: format!("item {} has no content", i + 1),
        });
    }
    let active = todos
        .iter()
        .filter(|t| t.status == TodoStatus::InProgress)
        .count();
    if active > 1 {
        return Err(WorkspaceError::BadTodos {
            reason: format!(
                "{active} items are in_progress; keep exactly one in progress at a time"
            ),
        });
    }
    Ok(())
}

pub(crate) fn render(todos: &[Todo]) -> String {
    if todos.is_empty() {
        return "[the todo list is empty]\n".to_owned();
    }
    let done = todos
        .iter()
        .filter(|t| t.status == TodoStatus::Completed)
        .count();
    let mut out = format!("todo list ({done}/{} done):\n", todos.len());
    for (i, t) in todos.iter().enumerate() {
        let mark = match t.status {
            TodoStatus::Pending => "[ ]",
            TodoStatus::InProgress => "[~]",
            TodoStatus::Completed => "[x]",
        };
        out.push_str(&format!("{}. {mark} {}\n", i + 1, t.content.trim()));
    }
    out
}
