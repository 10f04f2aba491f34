//! An AgentBench-style operating-system environment: each task runs in its own temporary
//! directory (prepared by its setup commands); the agent acts turn by turn — a shell command,
//! whose output it sees, or a final answer — within a turn limit; the task is then checked (the
//! answer against the expected one, or a check command's exit status in the directory).
//!
//! ```no_run
//! # async fn demo(model: std::sync::Arc<dyn miyabi::LanguageModel>) -> Result<(), miyabi_code::harness::HarnessError> {
//! use miyabi_code::harness::osbench::{ModelOsAgent, OsBench, OsCheck, OsTask};
//! let tasks = vec![OsTask {
//!     id: "count".into(),
//!     description: "How many .txt files are in the current directory?".into(),
//!     setup: vec!["touch a.txt b.txt c.log".into()],
//!     check: OsCheck::Answer { expected: "2".into() },
//!     max_turns: 5,
//! }];
//! let report = OsBench::new().run(&tasks, |_| Box::new(ModelOsAgent::new(model.clone()))).await?;
//! println!("{} of {} tasks", report.succeeded(), report.outcomes.len());
//! # Ok(()) }
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use miyabi::LanguageModel;
use miyabi::model::{Message, ModelRequest};
use serde::{Deserialize, Serialize};

use super::{HarnessError, LocalRunner, TestRunner};

/// One task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OsTask {
    /// Unique id.
    pub id: String,
    /// What the agent is asked.
    pub description: String,
    /// Shell commands preparing the task's directory, run in order before the agent starts.
    #[serde(default)]
    pub setup: Vec<String>,
    /// How success is decided.
    pub check: OsCheck,
    /// Most actions the agent may take (default 8).
    #[serde(default = "default_turns")]
    pub max_turns: u32,
}

fn default_turns() -> u32 {
    8
}

/// How a task is checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum OsCheck {
    /// The answer, trimmed, equals this.
    Answer {
        /// The expected answer.
        expected: String,
    },
    /// This command exits 0 in the task's directory after the agent is done (the agent
    /// changed the system as asked).
    Command {
        /// The check.
        command: String,
    },
}

/// What the agent does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OsAction {
    /// Run this shell command in the task's directory.
    Bash(String),
    /// Finish with this answer (for tasks checked by a command: any text).
    Answer(String),
}

/// One turn: the command and what it printed (with its exit status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OsTurn {
    /// The command.
    pub command: String,
    /// Its output and exit status, as the agent saw them.
    pub observation: String,
}

/// An agent in the environment.
#[async_trait]
pub trait OsAgent: Send {
    /// The next action, given the task and the turns so far.
    async fn act(&mut self, task: &OsTask, history: &[OsTurn]) -> Result<OsAction, String>;
}

/// How a task ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OsOutcome {
    /// The task.
    pub task_id: String,
    /// The check passed.
    pub success: bool,
    /// Commands run.
    pub turns: Vec<OsTurn>,
    /// The final answer, if the agent gave one.
    pub answer: Option<String>,
    /// `answered`, `turn-limit` or `agent-error`.
    pub ended: String,
    /// The agent's error, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// All tasks' outcomes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OsReport {
    /// Per task, in order.
    pub outcomes: Vec<OsOutcome>,
}

impl OsReport {
    /// Tasks that passed their check.
    pub fn succeeded(&self) -> usize {
        self.outcomes.iter().filter(|o| o.success).count()
    }

    /// Succeeded / all (0 for none).
    pub fn success_rate(&self) -> f64 {
        if self.outcomes.is_empty() {
            0.0
        } else {
            self.succeeded() as f64 / self.outcomes.len() as f64
        }
    }
}

/// The environment: how commands run and how long each may take.
pub struct OsBench {
    runner: Arc<dyn TestRunner>,
    timeout: Duration,
    root: PathBuf,
}

impl Default for OsBench {
    fn default() -> Self {
        Self::new()
    }
}

/// A task directory, removed when dropped.
struct TaskDir(PathBuf);

impl Drop for TaskDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl OsBench {
    /// Commands run with `sh -c` in a directory under the system's temporary directory, 30 s each.
    pub fn new() -> Self {
        Self {
            runner: Arc::new(LocalRunner),
            timeout: Duration::from_secs(30),
            root: std::env::temp_dir(),
        }
    }

    /// Runs commands with this runner (a container or sandbox runner goes here).
    pub fn runner(mut self, runner: impl TestRunner + 'static) -> Self {
        self.runner = Arc::new(runner);
        self
    }

    /// Time limit of each command (default 30 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// Where task directories are made (default: the system's temporary directory).
    pub fn root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.root = dir.into();
        self
    }

    /// Runs every task with a fresh agent from `make`.
    pub async fn run(
        &self,
        tasks: &[OsTask],
        make: impl Fn(&OsTask) -> Box<dyn OsAgent>,
    ) -> Result<OsReport, HarnessError> {
        let mut outcomes = Vec::with_capacity(tasks.len());
        for t in tasks {
            let mut agent = make(t);
            outcomes.push(self.run_task(t, agent.as_mut()).await?);
        }
        Ok(OsReport { outcomes })
    }

    /// Runs one task.
    pub async fn run_task(
        &self,
        task: &OsTask,
        agent: &mut dyn OsAgent,
    ) -> Result<OsOutcome, HarnessError> {
        let span = tracing::info_span!("os.task", id = %task.id);
        tracing::Instrument::instrument(self.task(task, agent), span).await
    }

    async fn task(
        &self,
        task: &OsTask,
        agent: &mut dyn OsAgent,
    ) -> Result<OsOutcome, HarnessError> {
        let dir = self
            .root
            .join(format!("miyabi-os-{}-{}", std::process::id(), uuid_like()));
        std::fs::create_dir_all(&dir).map_err(|source| HarnessError::Io {
            what: format!("creating {}", dir.display()),
            source,
        })?;
        let dir = TaskDir(dir);
        for cmd in &task.setup {
            let out = self.runner.run(&dir.0, cmd, self.timeout).await?;
            if !out.success() {
                return Err(HarnessError::Data {
                    place: format!("task `{}` setup", task.id),
                    message: format!("`{cmd}` failed: {}", out.output.trim()),
                });
            }
        }
        let mut turns = Vec::new();
        let mut answer = None;
        let mut error = None;
        let mut ended = "turn-limit";
        for _ in 0..task.max_turns.max(1) {
            match agent.act(task, &turns).await {
                Ok(OsAction::Answer(a)) => {
                    answer = Some(a);
                    ended = "answered";
                    break;
                }
                Ok(OsAction::Bash(command)) => {
                    let out = self.runner.run(&dir.0, &command, self.timeout).await?;
                    let status = match out.code {
                        Some(c) => format!("[exit {c}]"),
                        None if out.timed_out => "[timed out]".to_string(),
                        None => "[killed]".to_string(),
                    };
                    turns.push(OsTurn {
                        command,
                        observation: format!("{}{status}", out.output),
                    });
                }
                Err(e) => {
                    error = Some(e);
                    ended = "agent-error";
                    break;
                }
            }
        }
        let success = match &task.check {
            OsCheck::Answer { expected } => {
                answer.as_deref().map(str::trim) == Some(expected.trim())
            }
            OsCheck::Command { command } => {
                ended != "agent-error"
                    && self
                        .runner
                        .run(&dir.0, command, self.timeout)
                        .await?
                        .success()
            }
        };
        Ok(OsOutcome {
            task_id: task.id.clone(),
            success,
            turns,
            answer,
            ended: ended.to_string(),
            error,
        })
    }
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{t:x}-{}", N.fetch_add(1, Ordering::Relaxed))
}

/// The instructions a model-driven agent follows.
pub const OS_AGENT_PROMPT: &str = "You are operating a Linux shell to complete a task. On each turn reply with exactly one of:\n\
- a single shell command in a fenced block: ```bash\\n<command>\\n```\n\
- your final answer on one line: `Answer: <answer>` (for tasks that change the system, answer `Answer: done`).\n\
You see each command's output and exit status on the next turn.";

/// A model driving the environment: the task and the turns so far go in as a conversation; its
/// reply is parsed as a fenced `bash` block (a command) or an `Answer:` line.
pub struct ModelOsAgent {
    model: Arc<dyn LanguageModel>,
}

impl ModelOsAgent {
    /// An agent on this model.
    pub fn new(model: Arc<dyn LanguageModel>) -> Self {
        Self { model }
    }
}

/// Reads an action out of a model's reply.
pub fn parse_action(reply: &str) -> Option<OsAction> {
    if let Some(start) = reply.find("```") {
        let rest = &reply[start + 3..];
        let body = rest
            .strip_prefix("bash")
            .or_else(|| rest.strip_prefix("sh"))
            .unwrap_or(rest);
        if let Some(end) = body.find("```") {
            let cmd = body[..end].trim();
            if !cmd.is_empty() {
                return Some(OsAction::Bash(cmd.to_string()));
            }
        }
    }
    reply
        .lines()
        .find_map(|l| l.trim().strip_prefix("Answer:"))
        .map(|a| OsAction::Answer(a.trim().to_string()))
}

#[async_trait]
impl OsAgent for ModelOsAgent {
    async fn act(&mut self, task: &OsTask, history: &[OsTurn]) -> Result<OsAction, String> {
        let mut messages = vec![
            Message::system(OS_AGENT_PROMPT),
            Message::user(task.description.clone()),
        ];
        for t in history {
            messages.push(Message::assistant(format!("```bash\n{}\n```", t.command)));
            messages.push(Message::user(format!("Output:\n{}", t.observation)));
        }
        let req = ModelRequest {
            messages,
            ..ModelRequest::default()
        };
        let res = self.model.generate(&req).await.map_err(|e| e.to_string())?;
        let text: String = res
            .content
            .iter()
            .filter_map(|p| match p {
                miyabi::model::ContentPart::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        parse_action(&text).ok_or_else(|| {
            format!("the reply is neither a ```bash block nor an `Answer:` line: {text}")
        })
    }
}

/// The task set of the environment's own tests and of `docs/evals.md`: file counting, text
/// search, permissions, archive, process of elimination — each with a setup and a check.
pub fn sample_tasks() -> Vec<OsTask> {
    vec![
        OsTask {
            id: "count-txt".into(),
            description: "How many files ending in .txt are in the current directory (not in subdirectories)?".into(),
            setup: vec!["touch a.txt b.txt c.log && mkdir d && touch d/e.txt".into()],
            check: OsCheck::Answer { expected: "2".into() },
            max_turns: 5,
        },
        OsTask {
            id: "find-word".into(),
            description: "Which file in the current directory contains the word 'needle'? Answer with its name.".into(),
            setup: vec!["echo hay > one && echo needle > two && echo hay > three".into()],
            check: OsCheck::Answer { expected: "two".into() },
            max_turns: 5,
        },
        OsTask {
            id: "make-executable".into(),
            description: "Make the script run.sh executable by its owner.".into(),
            setup: vec!["printf '#!/bin/sh\\necho ok\\n' > run.sh && chmod 600 run.sh".into()],
            check: OsCheck::Command { command: "test -x run.sh && ./run.sh | grep -q ok".into() },
            max_turns: 5,
        },
        OsTask {
            id: "sum-column".into(),
            description: "data.csv has a header and a numeric second column. What is the sum of that column?".into(),
            setup: vec!["printf 'name,n\\na,3\\nb,4\\nc,35\\n' > data.csv".into()],
            check: OsCheck::Answer { expected: "42".into() },
            max_turns: 5,
        },
        OsTask {
            id: "archive".into(),
            description: "Create a gzip-compressed tar archive named logs.tar.gz holding the directory logs.".into(),
            setup: vec!["mkdir logs && echo x > logs/a.log".into()],
            check: OsCheck::Command { command: "tar -tzf logs.tar.gz | grep -q 'logs/a.log'".into() },
            max_turns: 5,
        },
    ]
}

/// The commands that solve [`sample_tasks`] (a scripted oracle: scores 100%).
pub fn sample_oracle(task_id: &str) -> Vec<OsAction> {
    let bash = |s: &str| OsAction::Bash(s.to_string());
    let answer = |s: &str| OsAction::Answer(s.to_string());
    match task_id {
        "count-txt" => vec![bash("ls -1 | grep -c '\\.txt$'"), answer("2")],
        "find-word" => vec![bash("grep -l needle *"), answer("two")],
        "make-executable" => vec![bash("chmod u+x run.sh"), answer("done")],
        "sum-column" => vec![
            bash("tail -n +2 data.csv | cut -d, -f2 | awk '{ s += $1 } END { print s }'"),
            answer("42"),
        ],
        "archive" => vec![bash("tar -czf logs.tar.gz logs"), answer("done")],
        _ => vec![answer("")],
    }
}

/// An agent replaying a fixed list of actions (oracles and baselines in tests).
pub struct ScriptedOsAgent {
    actions: std::collections::VecDeque<OsAction>,
}

impl ScriptedOsAgent {
    /// Plays these actions in order (then answers empty).
    pub fn new(actions: Vec<OsAction>) -> Self {
        Self {
            actions: actions.into(),
        }
    }
}

#[async_trait]
impl OsAgent for ScriptedOsAgent {
    async fn act(&mut self, _: &OsTask, _: &[OsTurn]) -> Result<OsAction, String> {
        Ok(self
            .actions
            .pop_front()
            .unwrap_or_else(|| OsAction::Answer(String::new())))
    }
}
