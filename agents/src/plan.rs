//! CoordinatorAgent's plan: tasks with dependencies (a DAG), split into levels that run one
//! after the other, the tasks of a level in parallel.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Which agent a task is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TaskAgent {
    /// CodeGenAgent: changes code and tests in a worktree.
    Codegen,
    /// ReviewAgent: reviews what the tasks before it changed.
    Review,
    /// DeploymentAgent: deploys.
    Deployment,
}

/// One task of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// A short id unique in the plan (`t1`, `fix-parser`).
    pub id: String,
    /// What to do, in one line.
    pub title: String,
    /// The details an agent needs: where, what, how to check.
    pub description: String,
    /// The agent that does it.
    pub agent: TaskAgent,
    /// Ids of the tasks that must be done first.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// Files it is expected to touch (a hint).
    #[serde(default)]
    pub files: Vec<String>,
}

/// CoordinatorAgent's output: the tasks and their dependencies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The approach, in two or three sentences.
    pub summary: String,
    /// The tasks; `depends_on` makes them a DAG.
    #[schemars(length(min = 1))]
    pub tasks: Vec<Task>,
}

/// Why a plan is not a DAG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// Two tasks share an id.
    #[error("plan: two tasks have the id `{0}`")]
    DuplicateId(String),
    /// A dependency names no task.
    #[error("plan: task `{task}` depends on `{missing}`, which is not a task of the plan")]
    UnknownDependency {
        /// The task.
        task: String,
        /// The id it names.
        missing: String,
    },
    /// The dependencies form a cycle.
    #[error("plan: the dependencies of {0:?} form a cycle")]
    Cycle(Vec<String>),
    /// No tasks.
    #[error("plan: it has no tasks")]
    Empty,
}

impl Plan {
    /// The levels of the DAG: level 0 holds the tasks without dependencies, level `k` the tasks
    /// whose dependencies are all in earlier levels. Tasks keep their plan order in a level.
    pub fn levels(&self) -> Result<Vec<Vec<Task>>, PlanError> {
        if self.tasks.is_empty() {
            return Err(PlanError::Empty);
        }
        let mut ids = BTreeSet::new();
        for t in &self.tasks {
            if !ids.insert(t.id.as_str()) {
                return Err(PlanError::DuplicateId(t.id.clone()));
            }
        }
        for t in &self.tasks {
            for d in &t.depends_on {
                if !ids.contains(d.as_str()) {
                    return Err(PlanError::UnknownDependency {
                        task: t.id.clone(),
                        missing: d.clone(),
                    });
                }
            }
        }
        let mut level_of: BTreeMap<&str, usize> = BTreeMap::new();
        let mut levels: Vec<Vec<Task>> = Vec::new();
        while level_of.len() < self.tasks.len() {
            let ready: Vec<&Task> = self
                .tasks
                .iter()
                .filter(|t| !level_of.contains_key(t.id.as_str()))
                .filter(|t| {
                    t.depends_on
                        .iter()
                        .all(|d| level_of.contains_key(d.as_str()))
                })
                .collect();
            if ready.is_empty() {
                let stuck = self
                    .tasks
                    .iter()
                    .filter(|t| !level_of.contains_key(t.id.as_str()))
                    .map(|t| t.id.clone())
                    .collect();
                return Err(PlanError::Cycle(stuck));
            }
            let k = levels.len();
            for t in &ready {
                level_of.insert(&t.id, k);
            }
            levels.push(ready.into_iter().cloned().collect());
        }
        Ok(levels)
    }
}
