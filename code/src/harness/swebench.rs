//! SWE-bench-style evaluation: for each instance, a solver works in a git worktree of the
//! repository at `base_commit`; its changes (as a patch) are applied to a clean checkout with
//! the instance's test patch, and the instance is **resolved** only if every `FAIL_TO_PASS` test
//! now passes and every `PASS_TO_PASS` test still does.
//!
//! ```no_run
//! # async fn demo() -> Result<(), miyabi_code::harness::HarnessError> {
//! use miyabi_code::harness::swebench::{GoldSolver, SweBench, read_instances};
//! let instances = read_instances("instances.jsonl")?;
//! let report = SweBench::new("swe-run").model_name("gold").run(&instances, &GoldSolver).await?;
//! println!("resolved {}/{}", report.resolved(), report.results.len());
//! # Ok(()) }
//! ```
//!
//! Progress is kept in `<workdir>/results.jsonl` (one line per finished instance, written when it
//! finishes): a run that crashed starts again where it stopped, without re-running finished
//! instances. `<workdir>/predictions.jsonl` holds the predictions in the official format
//! (`instance_id`, `model_name_or_path`, `model_patch`).

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Deserializer, Serialize};

use super::{HarnessError, LocalRunner, TestRunner};

/// One instance, in SWE-bench's fields (`FAIL_TO_PASS`/`PASS_TO_PASS` as lists or as the
/// JSON-encoded strings the official datasets use) plus `test_cmd`: the command that runs one
/// test, with `{test}` where the test's id goes (shell-quoted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweInstance {
    /// Unique id.
    pub instance_id: String,
    /// The repository: a local git repository's path (no network here).
    pub repo: String,
    /// The commit the solver starts from.
    pub base_commit: String,
    /// The issue text.
    pub problem_statement: String,
    /// Tests that fail before the fix and must pass after it.
    #[serde(rename = "FAIL_TO_PASS", deserialize_with = "list_or_json")]
    pub fail_to_pass: Vec<String>,
    /// Tests that pass before and must still pass.
    #[serde(rename = "PASS_TO_PASS", default, deserialize_with = "list_or_json")]
    pub pass_to_pass: Vec<String>,
    /// The reference fix (what [`GoldSolver`] applies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// Tests added by the fix, applied before the tests run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_patch: Option<String>,
    /// The command running one test, with `{test}` for its id (e.g. `cargo test -- --exact {test}`).
    pub test_cmd: String,
}

fn list_or_json<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        List(Vec<String>),
        Text(String),
    }
    match Either::deserialize(d)? {
        Either::List(v) => Ok(v),
        Either::Text(t) => serde_json::from_str(&t).map_err(serde::de::Error::custom),
    }
}

/// Reads instances from a JSONL file (one instance per line), or a JSON array.
pub fn read_instances(path: impl AsRef<Path>) -> Result<Vec<SweInstance>, HarnessError> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|source| HarnessError::Io {
        what: format!("reading {}", path.display()),
        source,
    })?;
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(&text).map_err(|e| HarnessError::Data {
            place: path.display().to_string(),
            message: e.to_string(),
        });
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| HarnessError::Data {
                place: format!("{} line {}", path.display(), i + 1),
                message: e.to_string(),
            })
        })
        .collect()
}

/// Makes the change for an instance in `checkout` (a worktree at its base commit); whatever it
/// leaves changed there — edits, new files — is the patch.
#[async_trait]
pub trait Solver: Send + Sync {
    /// Works on the instance.
    async fn solve(&self, instance: &SweInstance, checkout: &Path) -> Result<(), String>;
}

/// Applies the instance's reference patch (the "gold" baseline: should resolve every instance).
pub struct GoldSolver;

#[async_trait]
impl Solver for GoldSolver {
    async fn solve(&self, instance: &SweInstance, checkout: &Path) -> Result<(), String> {
        match &instance.patch {
            Some(p) if !p.trim().is_empty() => git_apply(checkout, p).await,
            _ => Err("the instance has no reference patch".into()),
        }
    }
}

/// Changes nothing (the floor: should resolve no instance).
pub struct EmptySolver;

#[async_trait]
impl Solver for EmptySolver {
    async fn solve(&self, _: &SweInstance, _: &Path) -> Result<(), String> {
        Ok(())
    }
}

/// An agent as the solver: `make` builds it for the checkout (e.g. a `CodingAgent` over a
/// `Workspace` of that directory), and it is asked to fix the problem statement.
pub struct AgentSolver<F> {
    make: F,
}

impl<F> AgentSolver<F>
where
    F: Fn(&Path) -> Result<miyabi::Agent, String> + Send + Sync,
{
    /// A solver from an agent factory.
    pub fn new(make: F) -> Self {
        Self { make }
    }
}

#[async_trait]
impl<F> Solver for AgentSolver<F>
where
    F: Fn(&Path) -> Result<miyabi::Agent, String> + Send + Sync,
{
    async fn solve(&self, instance: &SweInstance, checkout: &Path) -> Result<(), String> {
        let agent = (self.make)(checkout)?;
        let prompt = format!(
            "Fix this issue in the repository (your working directory). Change the code, not the tests.\n\n{}",
            instance.problem_statement
        );
        agent
            .generate(prompt)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// What happened to one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceResult {
    /// The instance.
    pub instance_id: String,
    /// Every FAIL_TO_PASS test passes and every PASS_TO_PASS test still does.
    pub resolved: bool,
    /// The solver's patch (empty: no change).
    pub model_patch: String,
    /// The patch applied to the clean checkout (false: it did not apply; nothing was tested).
    pub patch_applied: bool,
    /// FAIL_TO_PASS tests and whether each passed.
    pub fail_to_pass: BTreeMap<String, bool>,
    /// PASS_TO_PASS tests and whether each passed.
    pub pass_to_pass: BTreeMap<String, bool>,
    /// What went wrong (the solver's error, a patch that did not apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outcome of a run: one result per instance, in the dataset's order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweReport {
    /// The model name written into the predictions.
    pub model_name_or_path: String,
    /// Per instance.
    pub results: Vec<InstanceResult>,
}

impl SweReport {
    /// How many instances were resolved.
    pub fn resolved(&self) -> usize {
        self.results.iter().filter(|r| r.resolved).count()
    }

    /// Resolved / all (0 for no instances).
    pub fn resolved_rate(&self) -> f64 {
        if self.results.is_empty() {
            0.0
        } else {
            self.resolved() as f64 / self.results.len() as f64
        }
    }
}

/// A SWE-bench run: where it keeps its checkouts and results, how tests run.
pub struct SweBench {
    workdir: PathBuf,
    runner: Arc<dyn TestRunner>,
    timeout: Duration,
    model_name: String,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> HarnessError {
    let what = what.into();
    move |source| HarnessError::Io { what, source }
}

async fn git(dir: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new("git");
    cmd.args(args)
        .current_dir(dir)
        .stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        })
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("git {}: {e}", args.join(" ")))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .await
            .map_err(|e| format!("git {}: {e}", args.join(" ")))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| format!("git {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "git {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

async fn git_apply(dir: &Path, patch: &str) -> Result<(), String> {
    git(dir, &["apply", "--whitespace=nowarn", "-"], Some(patch))
        .await
        .map(|_| ())
}

/// A test id as one shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

impl SweBench {
    /// A run keeping its files in `workdir` (created if missing).
    pub fn new(workdir: impl Into<PathBuf>) -> Self {
        Self {
            workdir: workdir.into(),
            runner: Arc::new(LocalRunner),
            timeout: Duration::from_secs(600),
            model_name: "miyabi".into(),
        }
    }

    /// Runs tests with this runner (default [`LocalRunner`]; a container runner goes here).
    pub fn runner(mut self, runner: impl TestRunner + 'static) -> Self {
        self.runner = Arc::new(runner);
        self
    }

    /// Time limit of each test command (default 600 s).
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// The `model_name_or_path` of the predictions.
    pub fn model_name(mut self, name: impl Into<String>) -> Self {
        self.model_name = name.into();
        self
    }

    fn results_path(&self) -> PathBuf {
        self.workdir.join("results.jsonl")
    }

    /// The results already recorded (a previous, interrupted run).
    pub fn recorded(&self) -> Result<Vec<InstanceResult>, HarnessError> {
        let path = self.results_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
        };
        // A line cut short by a crash is not a result: that instance runs again.
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str::<InstanceResult>(l).ok())
            .collect())
    }

    /// Runs every instance not recorded yet with `solver`, then writes the predictions file.
    pub async fn run(
        &self,
        instances: &[SweInstance],
        solver: &dyn Solver,
    ) -> Result<SweReport, HarnessError> {
        std::fs::create_dir_all(self.workdir.join("checkouts"))
            .map_err(io(format!("creating {}", self.workdir.display())))?;
        let mut done: BTreeMap<String, InstanceResult> = self
            .recorded()?
            .into_iter()
            .map(|r| (r.instance_id.clone(), r))
            .collect();
        let mut seen = HashSet::new();
        for inst in instances {
            if !seen.insert(inst.instance_id.as_str()) {
                return Err(HarnessError::Data {
                    place: format!("instance `{}`", inst.instance_id),
                    message: "the id appears twice in the dataset".into(),
                });
            }
            if done.contains_key(&inst.instance_id) {
                continue;
            }
            let span = tracing::info_span!("swe.instance", id = %inst.instance_id);
            let result = tracing::Instrument::instrument(self.one(inst, solver), span).await?;
            let line = serde_json::to_string(&result).map_err(|e| HarnessError::Data {
                place: self.results_path().display().to_string(),
                message: e.to_string(),
            })?;
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.results_path())
                .map_err(io("opening results.jsonl"))?;
            writeln!(f, "{line}").map_err(io("writing results.jsonl"))?;
            f.sync_all().map_err(io("syncing results.jsonl"))?;
            done.insert(inst.instance_id.clone(), result);
        }
        let results: Vec<InstanceResult> = instances
            .iter()
            .filter_map(|i| done.get(&i.instance_id).cloned())
            .collect();
        let mut preds = String::new();
        for r in &results {
            let line = serde_json::json!({
                "instance_id": r.instance_id,
                "model_name_or_path": self.model_name,
                "model_patch": r.model_patch,
            });
            preds.push_str(&line.to_string());
            preds.push('\n');
        }
        std::fs::write(self.workdir.join("predictions.jsonl"), preds)
            .map_err(io("writing predictions.jsonl"))?;
        Ok(SweReport {
            model_name_or_path: self.model_name.clone(),
            results,
        })
    }

    async fn checkout(&self, inst: &SweInstance, kind: &str) -> Result<PathBuf, HarnessError> {
        let repo = Path::new(&inst.repo);
        let safe: String = inst
            .instance_id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let dir = self
            .workdir
            .join("checkouts")
            .join(format!("{safe}-{kind}"));
        let err = |message: String| HarnessError::Git {
            instance: inst.instance_id.clone(),
            message,
        };
        if dir.exists() {
            // Left by a crash: start it again from the base commit.
            let _ = git(
                repo,
                &["worktree", "remove", "--force", &dir.to_string_lossy()],
                None,
            )
            .await;
            let _ = std::fs::remove_dir_all(&dir);
        }
        let _ = git(repo, &["worktree", "prune"], None).await;
        git(
            repo,
            &[
                "worktree",
                "add",
                "--detach",
                &dir.to_string_lossy(),
                &inst.base_commit,
            ],
            None,
        )
        .await
        .map_err(err)?;
        Ok(dir)
    }

    async fn drop_checkout(&self, inst: &SweInstance, dir: &Path) {
        let _ = git(
            Path::new(&inst.repo),
            &["worktree", "remove", "--force", &dir.to_string_lossy()],
            None,
        )
        .await;
    }

    async fn one(
        &self,
        inst: &SweInstance,
        solver: &dyn Solver,
    ) -> Result<InstanceResult, HarnessError> {
        // 1. The solver works in its own checkout; whatever it changed is the patch.
        let work = self.checkout(inst, "solve").await?;
        let solved = solver.solve(inst, &work).await;
        let patch = match git(&work, &["add", "-A"], None).await {
            Ok(_) => git(&work, &["diff", "--cached", "--binary"], None).await,
            Err(e) => Err(e),
        };
        self.drop_checkout(inst, &work).await;
        let model_patch = patch.map_err(|message| HarnessError::Git {
            instance: inst.instance_id.clone(),
            message,
        })?;
        let mut result = InstanceResult {
            instance_id: inst.instance_id.clone(),
            resolved: false,
            model_patch: model_patch.clone(),
            patch_applied: false,
            fail_to_pass: BTreeMap::new(),
            pass_to_pass: BTreeMap::new(),
            error: solved.err().map(|e| format!("the solver failed: {e}")),
        };

        // 2. A clean checkout: the test patch, then the model's patch.
        let eval = self.checkout(inst, "eval").await?;
        if let Some(tp) = inst.test_patch.as_deref().filter(|p| !p.trim().is_empty())
            && let Err(e) = git_apply(&eval, tp).await
        {
            self.drop_checkout(inst, &eval).await;
            return Err(HarnessError::Git {
                instance: inst.instance_id.clone(),
                message: format!("the instance's test patch does not apply: {e}"),
            });
        }
        if !model_patch.trim().is_empty()
            && let Err(e) = git_apply(&eval, &model_patch).await
        {
            result.error = Some(format!("the patch does not apply: {e}"));
            self.drop_checkout(inst, &eval).await;
            return Ok(result);
        }
        result.patch_applied = true;

        // 3. The tests.
        for (tests, into) in [
            (&inst.fail_to_pass, &mut result.fail_to_pass),
            (&inst.pass_to_pass, &mut result.pass_to_pass),
        ] {
            for t in tests {
                let cmd = inst.test_cmd.replace("{test}", &quote(t));
                let out = self.runner.run(&eval, &cmd, self.timeout).await?;
                tracing::debug!(test = %t, ok = out.success(), "test ran");
                into.insert(t.clone(), out.success());
            }
        }
        self.drop_checkout(inst, &eval).await;
        result.resolved = !result.fail_to_pass.is_empty()
            && result.fail_to_pass.values().all(|ok| *ok)
            && result.pass_to_pass.values().all(|ok| *ok);
        Ok(result)
    }
}
