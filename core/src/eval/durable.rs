//! Durable evaluation runs: an evaluation as a workflow run on an [`Engine`], one step per
//! case × epoch (a `foreach` over the samples) and a final `summary` step, so a process killed
//! half-way continues — in the same or another process on the same store — without re-running
//! the samples already committed. Each sample's step record holds its output, trace and every
//! metric's score; the summary step's output (the run's output) is the `miyabi.eval/v1`
//! results, so eval runs are listed and read back like any run.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::runner::{Evaluator, SampleResult};
use super::target::Target;
use super::{Case, Dataset, EvalError, EvalResults};
use crate::{CommittedWorkflow, Engine, RunFilter, RunStatus, StepContext, StepError, Workflow};

/// One job of an eval run: a case and an epoch.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job {
    case: Case,
    epoch: u32,
}

/// The run's input: the dataset's name, its number of cases and the jobs in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Plan {
    dataset: String,
    cases: usize,
    started_at_ms: i64,
    jobs: Vec<Job>,
}

/// What the summary needs from the plan, kept in the run's state.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PlanMeta {
    dataset: String,
    cases: usize,
    started_at_ms: i64,
}

const PLAN_STATE: &str = "eval.plan";

/// An evaluation that runs as a durable workflow on an engine (see the module docs). The
/// workflow's id is `eval.<evaluator name>`; build the same `DurableEval` in a new process and
/// call [`recover`](Self::recover) to finish interrupted runs.
#[derive(Clone)]
pub struct DurableEval {
    engine: Engine,
    workflow: CommittedWorkflow,
    evaluator: Arc<Evaluator>,
}

impl std::fmt::Debug for DurableEval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DurableEval")
            .field("workflow", &self.workflow.id())
            .finish_non_exhaustive()
    }
}

fn engine_err(e: impl std::fmt::Display) -> EvalError {
    EvalError::Engine(e.to_string())
}

impl DurableEval {
    /// The evaluation `evaluator` of `target` as a workflow on `engine` (registered there).
    /// Fails on a configuration error of the evaluator.
    pub fn new(
        engine: &Engine,
        evaluator: Evaluator,
        target: Arc<dyn Target>,
    ) -> Result<Self, EvalError> {
        evaluator.check()?;
        let evaluator = Arc::new(evaluator);
        let (concurrency, _) = evaluator.shape();
        let ev = Arc::clone(&evaluator);
        let sample = crate::step_fn(move |_ctx: StepContext, job: Value| {
            let ev = Arc::clone(&ev);
            let target = Arc::clone(&target);
            async move {
                let job: Job = serde_json::from_value(job)
                    .map_err(|e| StepError::fatal(format!("eval job: {e}")))?;
                let s = ev.run_one(target.as_ref(), &job.case, job.epoch).await;
                serde_json::to_value(s).map_err(|e| StepError::fatal(format!("eval sample: {e}")))
            }
        });
        let ev = Arc::clone(&evaluator);
        let summary = crate::step_fn(move |ctx: StepContext, samples: Value| {
            let ev = Arc::clone(&ev);
            async move {
                let samples: Vec<SampleResult> = serde_json::from_value(samples)
                    .map_err(|e| StepError::fatal(format!("eval samples: {e}")))?;
                let meta = ctx
                    .state(PLAN_STATE)
                    .ok_or_else(|| StepError::fatal("eval run: the plan's state is missing"))?;
                let plan: PlanMeta = serde_json::from_value(meta)
                    .map_err(|e| StepError::fatal(format!("eval plan: {e}")))?;
                let now = super::runner::unix_ms();
                let results = ev.assemble(
                    &plan.dataset,
                    plan.cases,
                    samples,
                    plan.started_at_ms,
                    (now - plan.started_at_ms).max(0) as f64,
                );
                serde_json::to_value(results)
                    .map_err(|e| StepError::fatal(format!("eval results: {e}")))
            }
        });
        // Keeps the plan's dataset name, size and start time in the run's state and hands the
        // jobs on to the foreach.
        let plan = crate::step_fn(|ctx: StepContext, plan: Value| async move {
            let plan: Plan = serde_json::from_value(plan)
                .map_err(|e| StepError::fatal(format!("eval plan: {e}")))?;
            let meta = PlanMeta {
                dataset: plan.dataset,
                cases: plan.cases,
                started_at_ms: plan.started_at_ms,
            };
            ctx.set_state(
                PLAN_STATE,
                serde_json::to_value(meta)
                    .map_err(|e| StepError::fatal(format!("eval plan: {e}")))?,
            );
            serde_json::to_value(plan.jobs).map_err(|e| StepError::fatal(format!("eval plan: {e}")))
        });
        let workflow = Workflow::new(format!("eval.{}", evaluator.eval_name()))
            .step("plan", plan)
            .foreach("samples", sample, concurrency)
            .step("summary", summary)
            .commit()
            .map_err(|e| EvalError::Config(format!("eval workflow: {e}")))?;
        engine.register(&workflow);
        Ok(Self {
            engine: engine.clone(),
            workflow,
            evaluator,
        })
    }

    /// The workflow an eval run is a run of.
    pub fn workflow(&self) -> &CommittedWorkflow {
        &self.workflow
    }

    fn plan(&self, dataset: &Dataset) -> Value {
        let (_, epochs) = self.evaluator.shape();
        let jobs = dataset
            .cases()
            .iter()
            .flat_map(|c| {
                (0..epochs).map(move |epoch| Job {
                    case: c.clone(),
                    epoch,
                })
            })
            .collect();
        serde_json::to_value(Plan {
            dataset: dataset.name.clone(),
            cases: dataset.len(),
            started_at_ms: super::runner::unix_ms(),
            jobs,
        })
        .unwrap_or(Value::Null)
    }

    /// Starts an eval run in the background (committed before this returns); its id.
    pub fn spawn(&self, dataset: &Dataset) -> Result<String, EvalError> {
        let handle = self
            .engine
            .spawn(&self.workflow, self.plan(dataset))
            .map_err(engine_err)?;
        Ok(handle.id().to_string())
    }

    /// Runs the evaluation as a durable run to its end and returns the results.
    pub async fn evaluate(&self, dataset: &Dataset) -> Result<EvalResults, EvalError> {
        let run = self
            .engine
            .start(&self.workflow, self.plan(dataset))
            .await
            .map_err(engine_err)?;
        Self::results_of(&run)
    }

    fn results_of(run: &crate::Run) -> Result<EvalResults, EvalError> {
        match (&run.status, &run.output) {
            (RunStatus::Succeeded, Some(out)) => serde_json::from_value(out.clone())
                .map_err(|e| EvalError::Report(format!("eval run {}: {e}", run.id))),
            (status, _) => Err(EvalError::Engine(format!(
                "eval run {} ended {status}{}",
                run.id,
                run.error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ))),
        }
    }

    /// Waits for an eval run to end and returns its results.
    pub async fn wait(&self, run_id: &str) -> Result<EvalResults, EvalError> {
        let run = self.engine.wait(run_id).await.map_err(engine_err)?;
        Self::results_of(&run)
    }

    /// Takes over this evaluation's runs left unfinished by a dead process (and any other
    /// orphaned run of a registered workflow), finishes them without re-running the samples
    /// already committed, and returns the ids of this evaluation's recovered runs.
    pub async fn recover(&self) -> Result<Vec<String>, EvalError> {
        let ids = self.engine.recover().await.map_err(engine_err)?;
        let mine: Vec<String> = self
            .runs()
            .await?
            .into_iter()
            .map(|r| r.id)
            .filter(|id| ids.contains(id))
            .collect();
        Ok(mine)
    }

    /// This evaluation's runs on the engine, newest first.
    pub async fn runs(&self) -> Result<Vec<crate::Run>, EvalError> {
        self.engine
            .list(&RunFilter {
                workflow: Some(self.workflow.id().to_string()),
                ..RunFilter::default()
            })
            .await
            .map_err(engine_err)
    }

    /// The results of a finished eval run (`None` while it is not finished).
    pub async fn results(&self, run_id: &str) -> Result<Option<EvalResults>, EvalError> {
        match self.engine.get(run_id).await.map_err(engine_err)? {
            Some(run) if run.status == RunStatus::Succeeded => Self::results_of(&run).map(Some),
            Some(_) => Ok(None),
            None => Err(EvalError::Engine(format!("no eval run {run_id}"))),
        }
    }
}
