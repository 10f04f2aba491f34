//! Node.js binding of the Miyabi engine (napi-rs v3). Conversion and forwarding only: the
//! TypeScript facade (`bindings-node/ts`) drives runs on the JS event loop with these
//! synchronous calls — it polls a run for tasks, runs the JS functions the tasks name, and
//! hands the results back; each call commits to the store without a thread hop.
//!
//! Errors thrown from here carry a stable `code` (`NOT_FOUND`, `VALIDATION`, `CONFLICT`,
//! `NOT_SUSPENDED`, `INVALID_WORKFLOW`, `UNKNOWN_WORKFLOW`, `DEFINITION_CHANGED`,
//! `REPLAY_DIVERGED`, `STORE`, `SHUTDOWN`, `ENGINE`, `INVALID_ARGUMENT`) that the facade turns
//! into its error classes.

mod agent;
mod approval;
mod eval;
mod model;
mod stream;
mod words;

use std::sync::Arc;

use miyabi::external::{DecisionKind, ExternalRun, Task};
use miyabi::{
    CommittedWorkflow, Engine, EngineError, Run, RunFilter, RunStatus, SchemaViolation, Step,
    StepError,
};
use napi::bindgen_prelude::Either;
use napi_derive::napi;
use serde_json::Value;

use miyabi::spec::{SpecError, WorkflowSpec};

fn err(code: &str, message: impl ToString) -> napi::Error<String> {
    napi::Error::new(code.to_string(), js_words(message.to_string()))
}

/// Rust names in messages of the core (written for Rust users), with what a JS user writes
/// instead. Every message the binding hands to JS goes through this.
const JS_WORDS: &[(&str, &str)] = &[
    (
        "or pass ModelBuilder::api_key",
        "or pass `model(spec, { apiKey })`",
    ),
    (
        "(or ModelBuilder::api_key)",
        "(or `model(spec, { apiKey })`)",
    ),
    (
        "or use ModelBuilder::base_url",
        "or pass `model(spec, { baseURL })`",
    ),
    ("/ ModelBuilder::base_url", "/ `model(spec, { baseURL })`"),
    (
        "(or ModelBuilder::base_url)",
        "(or `model(spec, { baseURL })`)",
    ),
    (
        "for another endpoint use ModelBuilder::custom",
        "for another endpoint pass both `baseURL` and `protocol`: `model(spec, { baseURL, protocol })`",
    ),
    (" (or ModelBuilder::aws_credentials)", ""),
    (
        "pass a tool and ToolChoice::Tool instead",
        "pass a tool and `toolChoice: '<tool name>'` instead",
    ),
    ("sleep_until at", "sleepUntil at"),
    ("a loop's max_iterations", "a loop's `maxIterations`"),
    (
        "working_memory(true) needs memory(..)",
        "`workingMemory: true` needs a `memory` (new Agent({ memory, workingMemory: true }))",
    ),
    (
        "has no Rust code: drive this run with ExternalRun",
        "is a JavaScript function: start and resume this workflow's runs from JavaScript (engine.start, engine.resume), not through the HTTP API",
    ),
    ("serde_json::Number", "a finite number"),
    ("serde_json::Value", "JSON"),
];

/// `message` with the Rust names of [`JS_WORDS`] replaced (no copy when there is none).
pub(crate) fn js_words(message: String) -> String {
    if !message.contains("::") && !message.contains('_') && !message.contains("ExternalRun") {
        return message;
    }
    let mut out = message;
    for (rust, js) in JS_WORDS {
        if out.contains(rust) {
            out = out.replace(rust, js);
        }
    }
    out
}

/// An engine error as thrown to JS: its code from the crate's one table (`ErrorCode`), the
/// same the HTTP API and the CLI report.
fn engine_err(e: EngineError) -> napi::Error<String> {
    err(e.code().as_str(), e)
}

/// The largest integer a JS number holds exactly (2^53 − 1). napi hands integers beyond it
/// back to JS as BigInt, so a whole float beyond it stays a float.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// JS numbers beyond 32 bits arrive as floats (`1795612677425.0`): store whole numbers as
/// integers, as JSON from JS would have them (timestamps, ids, sleep-until times), as long as
/// they are safe integers (so that they come back to JS as numbers, not BigInts).
fn ints(mut v: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Number(n) if n.is_f64() => {
                if let Some(f) = n.as_f64()
                    && f.fract() == 0.0
                    && f.abs() <= MAX_SAFE_INTEGER
                {
                    *v = Value::from(f as i64);
                }
            }
            Value::Array(a) => a.iter_mut().for_each(walk),
            Value::Object(m) => m.values_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

fn spec_err(e: SpecError) -> napi::Error<String> {
    err(e.code().as_str(), words::serde_words(e.to_string()))
}

/// A value that violates a schema when a run starts or resumes: returned instead of a run, so
/// that the facade's `ValidationError` can carry the violation as an issue (a thrown napi error
/// carries only a code and a message).
#[napi(object)]
pub struct NativeViolation {
    /// `workflow `<id>`` or `step `<path>``.
    pub place: String,
    /// `input` or `resume data`.
    pub direction: String,
    /// JSON pointer to the offending value (`""`: the whole value).
    pub pointer: String,
    /// The validator's reason.
    pub reason: String,
}

impl From<SchemaViolation> for NativeViolation {
    fn from(v: SchemaViolation) -> Self {
        Self {
            place: v.place,
            direction: v.direction,
            pointer: v.pointer,
            reason: v.reason,
        }
    }
}

/// A started or resumed run, or the schema violation that stopped it.
fn run_or_violation(
    r: Result<NativeRun, EngineError>,
) -> napi::Result<Either<NativeRun, NativeViolation>, String> {
    match r {
        Ok(run) => Ok(Either::A(run)),
        Err(EngineError::Schema(v)) => Ok(Either::B(v.into())),
        Err(e) => Err(engine_err(e)),
    }
}

/// A suspended path and what its step asked for.
#[napi(object)]
pub struct NativeSuspension {
    /// The path to resume.
    pub path: String,
    /// The step's suspension payload.
    #[napi(ts_type = "unknown")]
    pub payload: Value,
}

/// A run as stored: status, output or error, and its suspended paths.
#[napi(object)]
pub struct NativeRunInfo {
    /// Run id.
    pub id: String,
    /// Workflow id.
    pub workflow: String,
    /// `running`, `suspended`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// The run's input.
    #[napi(ts_type = "unknown")]
    pub input: Value,
    /// The output, once succeeded.
    #[napi(ts_type = "unknown")]
    pub output: Option<Value>,
    /// The error, once failed or cancelled.
    pub error: Option<String>,
    /// The suspended paths, while suspended.
    pub suspended: Vec<NativeSuspension>,
    /// Creation time, ms since the epoch.
    pub created_at: i64,
    /// Last status change, ms since the epoch.
    pub updated_at: i64,
}

impl From<Run> for NativeRunInfo {
    fn from(r: Run) -> Self {
        Self {
            id: r.id,
            workflow: r.workflow,
            status: r.status.as_str().to_string(),
            input: r.input,
            output: r.output,
            error: r.error.map(js_words),
            suspended: r
                .suspended
                .into_iter()
                .map(|s| NativeSuspension {
                    path: s.path,
                    payload: s.payload,
                })
                .collect(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

/// Which runs `list` returns.
#[napi(object)]
pub struct NativeListFilter {
    /// Only runs of this workflow.
    pub workflow: Option<String>,
    /// Only runs with this status.
    pub status: Option<String>,
    /// Only runs created at or after this time (ms).
    pub created_after: Option<i64>,
    /// Only runs created before this time (ms).
    pub created_before: Option<i64>,
    /// At most this many, newest first.
    pub limit: Option<u32>,
}

/// One thing a driven run needs done now.
///
/// `kind` is `step` (run the function `handle` on `input`, after `delayMs`), `eval` (evaluate
/// the function `handle` of kind `eval` — `select`, `condition`, `map` or `wakeAt` — on
/// `input`), or `sleep` (wait until `wakeAt`, then complete with null).
#[napi(object)]
pub struct NativeTask {
    /// `step`, `eval` or `sleep`.
    pub kind: String,
    /// The path to complete.
    pub path: String,
    /// The JS function's handle (step and eval).
    pub handle: Option<u32>,
    /// The function's input (step and eval).
    #[napi(ts_type = "unknown")]
    pub input: Option<Value>,
    /// Attempt number (step; absent for the first attempt).
    pub attempt: Option<u32>,
    /// Resume data, when a suspended step is resumed (step).
    #[napi(ts_type = "unknown")]
    pub resume: Option<Value>,
    /// Wait this long before running (retry backoff; step; absent for no wait).
    pub delay_ms: Option<i64>,
    /// The attempt's timeout (step; absent for none): past it, the driver calls
    /// `NativeRun.timeOut(path)` and aborts the step with the message it returns.
    pub timeout_ms: Option<i64>,
    /// `select`, `condition`, `map` or `wakeAt` (eval).
    pub eval: Option<String>,
    /// Wake time, ms since the epoch (sleep).
    pub wake_at: Option<i64>,
}

/// A task as the JS driver reads it. A task or decision this binding does not know (a newer
/// engine) is an error, never a dropped task: a dropped task would leave the run hanging.
fn task(t: Task) -> napi::Result<NativeTask, String> {
    let empty = |kind: &str, path: String| NativeTask {
        kind: kind.to_string(),
        path,
        handle: None,
        input: None,
        attempt: None,
        resume: None,
        delay_ms: None,
        timeout_ms: None,
        eval: None,
        wake_at: None,
    };
    Ok(match t {
        Task::Step {
            path,
            handle,
            input,
            attempt,
            resume,
            delay_ms,
            timeout_ms,
        } => NativeTask {
            handle: Some(handle),
            input: Some(input),
            // Left out when they hold their usual values: fewer properties to create per task.
            attempt: (attempt != 1).then_some(attempt),
            resume,
            delay_ms: (delay_ms > 0).then(|| i64::try_from(delay_ms).unwrap_or(i64::MAX)),
            timeout_ms: timeout_ms.map(|t| i64::try_from(t).unwrap_or(i64::MAX)),
            ..empty("step", path)
        },
        Task::Decide {
            path,
            handle,
            kind,
            input,
        } => NativeTask {
            handle: Some(handle),
            input: Some(input),
            eval: Some(
                match kind {
                    DecisionKind::Branch => "select",
                    DecisionKind::Loop => "condition",
                    DecisionKind::Map => "map",
                    DecisionKind::WakeTime => "wakeAt",
                    other => {
                        return Err(err(
                            "ENGINE",
                            format!("`{path}`: this binding cannot drive a {other:?} decision"),
                        ));
                    }
                }
                .to_string(),
            ),
            ..empty("eval", path)
        },
        Task::Sleep { path, wake_at } => NativeTask {
            wake_at: Some(wake_at),
            ..empty("sleep", path)
        },
        Task::Native { path } => empty("native", path),
        other => {
            return Err(err(
                "ENGINE",
                format!("this binding cannot drive the task {other:?}"),
            ));
        }
    })
}

/// A committed workflow definition (from a spec); register it with engines and start runs.
#[napi]
pub struct NativeWorkflow {
    wf: CommittedWorkflow,
}

#[napi]
impl NativeWorkflow {
    /// The workflow id.
    #[napi(getter)]
    pub fn id(&self) -> String {
        self.wf.id().to_string()
    }

    /// The definition's fingerprint (a run records it; resuming needs the same definition).
    #[napi(getter)]
    pub fn fingerprint(&self) -> String {
        self.wf.fingerprint().to_string()
    }

    /// The path template (`fix[*]/revise`) of every step whose function is JS, with its handle.
    #[napi]
    pub fn step_paths(&self) -> Vec<NativeStepPath> {
        let graph = self.wf.graph();
        let nodes = graph.get("nodes").and_then(Value::as_array);
        nodes
            .into_iter()
            .flatten()
            .filter(|n| n.get("kind").and_then(Value::as_str) == Some("step"))
            .filter_map(|n| {
                let path = n.get("path").and_then(Value::as_str)?;
                let handle = n.get("external").and_then(Value::as_u64)?;
                Some(NativeStepPath {
                    path: path.to_owned(),
                    handle: u32::try_from(handle).ok()?,
                })
            })
            .collect()
    }
}

/// Where a JS step runs: its path template and its function's handle.
#[napi(object)]
pub struct NativeStepPath {
    /// The path template (`[*]` for loop and foreach iterations).
    pub path: String,
    /// The function's handle.
    pub handle: u32,
}

/// The Rust steps (agents) a workflow spec names by index (`{kind: "native", index}`).
#[napi]
#[derive(Default)]
pub struct NativeSteps {
    steps: Vec<Arc<dyn Step>>,
}

#[napi]
impl NativeSteps {
    /// An empty list.
    #[napi(constructor)]
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an agent; returns its index.
    #[napi]
    pub fn add_agent(&mut self, agent: &agent::NativeAgent) -> u32 {
        self.steps.push(Arc::new(agent.agent.clone()));
        u32::try_from(self.steps.len() - 1).unwrap_or(u32::MAX)
    }

    /// Adds an approval gate; returns its index.
    #[napi]
    pub fn add_gate(&mut self, gate: &approval::NativeApprovalGate) -> u32 {
        self.steps.push(Arc::new(gate.gate.clone()));
        u32::try_from(self.steps.len() - 1).unwrap_or(u32::MAX)
    }
}

/// Validates a workflow spec (a plain object; see the facade's `workflow()`) and commits it.
/// Native nodes name a step of `natives` by index.
#[napi(ts_args_type = "spec: Record<string, unknown>, natives?: NativeSteps | undefined | null")]
pub fn compile_workflow(
    spec: Value,
    natives: Option<&NativeSteps>,
) -> napi::Result<NativeWorkflow, String> {
    let steps = natives.map(|n| n.steps.as_slice()).unwrap_or(&[]);
    // Whole numbers beyond 32 bits (a 60-day sleep) arrive as floats: integers again first.
    let wf = WorkflowSpec::from_value(ints(spec))
        .and_then(|s| s.commit(steps))
        .map_err(spec_err)?;
    Ok(NativeWorkflow { wf })
}

/// A JS function the engine's worker calls with `{ runId, gate }` (weak: it does not keep
/// the process alive).
type GateCallback = napi::threadsafe_function::ThreadsafeFunction<
    Value,
    napi::bindgen_prelude::Unknown<'static>,
    Value,
    napi::Status,
    false,
    true,
>;

/// A retention rule from its JS numbers (`olderThanMs`, `keepLast`, `workflow`).
fn retention(
    older_than_ms: Option<f64>,
    keep_last: Option<f64>,
    workflow: Option<String>,
) -> napi::Result<miyabi::Retention, String> {
    let mut rule = miyabi::Retention::default();
    rule.max_age = older_than_ms
        .map(|ms| whole("olderThanMs", ms).map(std::time::Duration::from_millis))
        .transpose()?;
    rule.keep_last = keep_last
        .map(|n| whole("keepLast", n).map(|n| usize::try_from(n).unwrap_or(usize::MAX)))
        .transpose()?;
    rule.workflow = workflow;
    if rule.is_empty() {
        return Err(err(
            "INVALID_ARGUMENT",
            "a retention rule needs `olderThanMs` and/or `keepLast`",
        ));
    }
    Ok(rule)
}

/// Sends the engine's log (its background worker's failures, above all) to stderr, once per
/// process: `MIYABI_LOG` is the filter (`warn` when unset; `off` silences it).
fn logging() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env("MIYABI_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .try_init();
    });
}

/// An engine over a store: `memory`, `sqlite:<path>` or a Postgres URL.
#[napi]
pub struct NativeEngine {
    engine: Engine,
}

#[napi]
impl NativeEngine {
    /// Opens an engine; `store` is `memory`, `sqlite:<path>` (the file is created if
    /// missing) or `postgres://user:password@host:port/database` (tables in the schema
    /// `miyabi`, created if missing). `options`: `retention` (`{ olderThanMs?, keepLast?, workflow?, intervalMs? }`)
    /// for the background retention pass (every `intervalMs`, default 60 000), and
    /// `workerIntervalMs` for the approvals worker (default 1000). The engine's worker (approval deadlines, notifications,
    /// retention; decided gates of JS workflows go to `onDecidedGate`) runs on the addon's
    /// threads from now on and logs its failures to stderr (`MIYABI_LOG`, default `warn`).
    #[napi(
        factory,
        ts_args_type = "store: string, options?: { retention?: { olderThanMs?: number; keepLast?: number; workflow?: string; intervalMs?: number }; workerIntervalMs?: number; maxActive?: number; limits?: { global?: number; workflows?: Record<string, number> } }"
    )]
    pub fn open(store: String, options: Option<Value>) -> napi::Result<Self, String> {
        #[derive(serde::Deserialize, Default)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct RetentionSpec {
            older_than_ms: Option<f64>,
            keep_last: Option<f64>,
            workflow: Option<String>,
            interval_ms: Option<f64>,
        }
        #[derive(serde::Deserialize, Default)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct LimitsSpec {
            global: Option<f64>,
            #[serde(default)]
            workflows: std::collections::BTreeMap<String, f64>,
        }
        #[derive(serde::Deserialize, Default)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        struct OpenSpec {
            retention: Option<RetentionSpec>,
            worker_interval_ms: Option<f64>,
            max_active: Option<f64>,
            limits: Option<LimitsSpec>,
        }
        let at_least_1 = |what: &str, ms: f64| match whole(what, ms)? {
            0 => Err(err(
                "INVALID_ARGUMENT",
                format!("`{what}` must be at least 1 (milliseconds), not 0"),
            )),
            ms => Ok(std::time::Duration::from_millis(ms)),
        };
        logging();
        let spec: OpenSpec = match options {
            None | Some(Value::Null) => OpenSpec::default(),
            Some(v) => approval::parse("engine options", v)?,
        };
        let mut builder = Engine::builder();
        if store == "memory" {
        } else if let Some(path) = store.strip_prefix("sqlite:") {
            let store = miyabi::SqliteStore::open(path).map_err(|e| engine_err(e.into()))?;
            builder = builder.store(store);
        } else if miyabi::store::is_postgres_url(&store) {
            // Shared with other processes (docs/scaling.md); its calls go to the store's own
            // connection threads, so the JS thread waits one database round trip per call.
            let store = miyabi::PostgresStore::open(&store).map_err(|e| engine_err(e.into()))?;
            builder = builder.store(store);
        } else {
            return Err(err(
                "INVALID_ARGUMENT",
                format!(
                    "unknown store `{}`: use `memory`, `sqlite:<path>` or `postgres://…`",
                    miyabi::store::shown_location(&store)
                ),
            ));
        }
        if let Some(r) = spec.retention {
            builder = builder.retention(retention(r.older_than_ms, r.keep_last, r.workflow)?);
            if let Some(ms) = r.interval_ms {
                builder = builder.retention_interval(at_least_1("retention.intervalMs", ms)?);
            }
        }
        if let Some(ms) = spec.worker_interval_ms {
            builder = builder.worker_interval(at_least_1("workerIntervalMs", ms)?);
        }
        // A count of runs: a whole number of at least 1, named in the error.
        let count = |what: &str, n: f64| match whole(what, n)? {
            0 => Err(err(
                "INVALID_ARGUMENT",
                format!("`{what}` must be at least 1, not 0"),
            )),
            n => usize::try_from(n)
                .map_err(|_| err("INVALID_ARGUMENT", format!("`{what}` is too large: {n}"))),
        };
        if let Some(n) = spec.max_active {
            builder = builder.max_active(count("maxActive", n)?);
        }
        if let Some(l) = spec.limits {
            if let Some(n) = l.global {
                builder = builder.global_limit(count("limits.global", n)?);
            }
            for (workflow, n) in l.workflows {
                let n = count(&format!("limits.workflows[\"{workflow}\"]"), n)?;
                builder = builder.workflow_limit(workflow, n);
            }
        }
        let engine = builder.build();
        // The worker runs on the addon's tokio runtime; it holds the engine weakly, so it stops
        // once the JS engine is collected, and it never keeps the process alive.
        napi::bindgen_prelude::within_runtime_if_available(|| engine.start_worker());
        Ok(Self { engine })
    }

    /// Where the engine's worker hands decided approval gates of JS workflows (the facade
    /// resumes and drives them if it has their workflow): `handoff({ runId, gate })`, called on
    /// the event loop. Weak: it does not keep the process alive. `null` removes it.
    #[napi(ts_args_type = "handoff: ((gate: { runId: string; gate: string }) => void) | null")]
    pub fn on_decided_gate(&self, handoff: Option<GateCallback>) {
        self.engine.hand_external_gates_to(handoff.map(|f| {
            let f = Arc::new(f);
            Arc::new(move |run: &str, gate: &str| {
                let status = f.call(
                    serde_json::json!({ "runId": run, "gate": gate }),
                    napi::threadsafe_function::ThreadsafeFunctionCallMode::NonBlocking,
                );
                if status != napi::Status::Ok {
                    tracing::warn!(%run, %gate, ?status, "could not hand a decided gate to the JavaScript engine");
                }
            }) as miyabi::external::GateHandoff
        }));
    }

    /// Registers a definition, so that runs started elsewhere can be resumed or recovered here.
    #[napi]
    pub fn register(&self, workflow: &NativeWorkflow) {
        self.engine.register(&workflow.wf);
    }

    /// Starts a run for the caller to drive: committed before this returns, or, with
    /// `deferred`, with the driver's first flush (one commit fewer per run). An input that
    /// violates the workflow's input schema is returned as a `NativeViolation` (no run).
    #[napi(ts_args_type = "workflow: NativeWorkflow, input: unknown, deferred?: boolean")]
    pub fn start_run(
        &self,
        workflow: &NativeWorkflow,
        input: Value,
        deferred: Option<bool>,
    ) -> napi::Result<Either<NativeRun, NativeViolation>, String> {
        // Inside the runtime, so that the engine's lease heartbeat can start.
        let run = napi::bindgen_prelude::within_runtime_if_available(|| {
            if deferred == Some(true) {
                self.engine
                    .start_external_deferred(&workflow.wf, ints(input))
            } else {
                self.engine.start_external(&workflow.wf, ints(input))
            }
        });
        run_or_violation(run.map(|r| NativeRun::new(r, workflow.wf.fingerprint().to_string())))
    }

    /// Gives resume data to a suspended path; the run is then the caller's to drive. Data
    /// that violate the step's resume schema are returned as a `NativeViolation` (nothing
    /// changes).
    #[napi(ts_args_type = "runId: string, path: string, data: unknown")]
    pub fn resume_run(
        &self,
        run_id: String,
        path: String,
        data: Value,
    ) -> napi::Result<Either<NativeRun, NativeViolation>, String> {
        let run = napi::bindgen_prelude::within_runtime_if_available(|| {
            self.engine.resume_external(&run_id, &path, ints(data))
        });
        match run {
            Ok(run) => Ok(Either::A(self.driven(run)?)),
            Err(e) => run_or_violation(Err(e)),
        }
    }

    /// Retries a failed run from its failed steps; the run is then the caller's to drive.
    #[napi]
    pub fn retry_run(&self, run_id: String) -> napi::Result<NativeRun, String> {
        let run = napi::bindgen_prelude::within_runtime_if_available(|| {
            self.engine.retry_external(&run_id)
        })
        .map_err(engine_err)?;
        self.driven(run)
    }

    /// Enqueues a run: committed without an owner, for a worker (`recoverRuns` in any process
    /// with the workflow registered) to take and drive; this engine runs none of it. An input
    /// that violates the workflow's input schema is returned as a `NativeViolation` (no run).
    #[napi(ts_args_type = "workflow: NativeWorkflow, input: unknown")]
    pub fn enqueue_run(
        &self,
        workflow: &NativeWorkflow,
        input: Value,
    ) -> napi::Result<Either<String, NativeViolation>, String> {
        let id = napi::bindgen_prelude::within_runtime_if_available(|| {
            self.engine.enqueue(&workflow.wf, ints(input))
        });
        match id {
            Ok(id) => Ok(Either::A(id)),
            Err(EngineError::Schema(v)) => Ok(Either::B(v.into())),
            Err(e) => Err(engine_err(e)),
        }
    }

    /// The fingerprint of the definition a run was started with, if the run is suspended at
    /// `path` (so that the facade can parse resume data with that step's schema first); null
    /// otherwise (resuming then reports why).
    #[napi]
    pub fn suspended_fingerprint(
        &self,
        run_id: String,
        path: String,
    ) -> napi::Result<Option<String>, String> {
        let Some(run) = self.get_run(&run_id)? else {
            return Ok(None);
        };
        if run.status != RunStatus::Suspended || !run.suspended.iter().any(|s| s.path == path) {
            return Ok(None);
        }
        let record = self
            .engine
            .store()
            .run(&run_id)
            .map_err(|e| engine_err(e.into()))?;
        Ok(record.map(|r| r.fingerprint))
    }

    /// Claims the runs a dead process left running (registered workflows only).
    #[napi]
    pub fn recover_runs(&self) -> napi::Result<Vec<NativeRun>, String> {
        let runs =
            napi::bindgen_prelude::within_runtime_if_available(|| self.engine.recover_external())
                .map_err(engine_err)?;
        runs.into_iter().map(|run| self.driven(run)).collect()
    }

    /// A wait for new work in the store (`work()`'s wait between passes): settles when the
    /// store reports work (Postgres: `LISTEN`/`NOTIFY`), after `timeout_ms`, or when cancelled.
    #[napi]
    pub fn work_wait(&self, timeout_ms: u32) -> NativeWorkWait {
        NativeWorkWait {
            engine: self.engine.clone(),
            timeout: std::time::Duration::from_millis(u64::from(timeout_ms)),
            cancelled: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            cancel: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Reads a run (a synchronous store read).
    fn get_run(&self, run_id: &str) -> napi::Result<Option<Run>, String> {
        self.engine.get_sync(run_id).map_err(engine_err)
    }

    /// Wraps a resumed or recovered run, with its definition's fingerprint from the store.
    fn driven(&self, run: ExternalRun) -> napi::Result<NativeRun, String> {
        let record = self
            .engine
            .store()
            .run(run.id())
            .map_err(|e| engine_err(e.into()))?
            .ok_or_else(|| engine_err(EngineError::UnknownRun(run.id().to_string())))?;
        Ok(NativeRun::new(run, record.fingerprint))
    }

    /// Reads a run (null if there is none).
    #[napi]
    pub fn get(&self, run_id: String) -> napi::Result<Option<NativeRunInfo>, String> {
        Ok(self.get_run(&run_id)?.map(NativeRunInfo::from))
    }

    /// Lists runs, newest first.
    #[napi]
    pub fn list(
        &self,
        filter: Option<NativeListFilter>,
    ) -> napi::Result<Vec<NativeRunInfo>, String> {
        let mut f = RunFilter::default();
        if let Some(nf) = filter {
            f.workflow = nf.workflow;
            if let Some(s) = nf.status {
                f.status =
                    Some(RunStatus::parse(&s).ok_or_else(|| {
                        err("INVALID_ARGUMENT", format!("unknown run status `{s}`"))
                    })?);
            }
            f.created_after = nf.created_after;
            f.created_before = nf.created_before;
            f.limit = nf.limit.map(|l| l as usize);
        }
        Ok(self
            .engine
            .list_sync(&f)
            .map_err(engine_err)?
            .into_iter()
            .map(NativeRunInfo::from)
            .collect())
    }

    /// Cancels a run that no driver in this process holds (suspended, or running elsewhere
    /// and left behind) and returns it. For a run driven here, it only raises the run's
    /// cancellation request (its driver sees the run cancelled on its next advance) and
    /// returns null.
    #[napi]
    pub fn cancel(&self, run_id: String) -> napi::Result<Option<NativeRunInfo>, String> {
        match self.engine.request_cancel(&run_id).map_err(engine_err)? {
            miyabi::CancelRequest::Cancelled(run) => Ok(Some(run.into())),
            // The driver that holds it commits the cancellation.
            miyabi::CancelRequest::Requested => Ok(None),
            _ => Err(err(
                "ENGINE",
                format!("run `{run_id}`: unknown cancellation outcome"),
            )),
        }
    }

    /// Deletes finished runs that ended more than `olderThanMs` ago and, per workflow, those
    /// beyond the newest `keepLast` (only `workflow`'s runs when given); never a running or
    /// suspended run. Returns how many runs were deleted.
    #[napi]
    pub fn prune(
        &self,
        older_than_ms: Option<f64>,
        keep_last: Option<f64>,
        workflow: Option<String>,
    ) -> napi::Result<f64, String> {
        let rule = retention(older_than_ms, keep_last, workflow)?;
        let deleted = self.engine.prune(&rule).map_err(engine_err)?;
        Ok(deleted as f64)
    }

    /// Stored events of a run with `seq >= fromSeq`, at most `limit`, as plain objects:
    /// `{type, runId, seq, at, ...}` with the fields of each event type.
    #[napi(ts_return_type = "Array<Record<string, unknown>>")]
    pub fn events(
        &self,
        run_id: String,
        from_seq: i64,
        limit: Option<u32>,
    ) -> napi::Result<Vec<Value>, String> {
        let from = u64::try_from(from_seq.max(1)).unwrap_or(1);
        let evs = self
            .engine
            .store()
            .events(&run_id, from, limit.map_or(usize::MAX, |l| l as usize))
            .map_err(|e| engine_err(e.into()))?;
        evs.into_iter()
            .map(|ev| {
                let mut v = camel_keys(serde_json::to_value(ev).map_err(|e| err("ENGINE", e))?);
                if let Some(Value::String(e)) = v.get_mut("error") {
                    *e = js_words(std::mem::take(e));
                }
                Ok(v)
            })
            .collect()
    }
}

/// A whole, non-negative JS number up to 2^53 − 1, or an error naming the option.
fn whole(what: &str, n: f64) -> napi::Result<u64, String> {
    if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= MAX_SAFE_INTEGER {
        Ok(n as u64)
    } else {
        Err(err(
            "INVALID_ARGUMENT",
            format!("`{what}` must be a whole number of at least 0, not {n}"),
        ))
    }
}

/// `run_id` → `runId` for the top-level keys of an event (user data inside is left alone).
fn camel_keys(v: Value) -> Value {
    let Value::Object(m) = v else { return v };
    Value::Object(
        m.into_iter()
            .map(|(k, v)| {
                if !k.contains('_') {
                    return (k, v);
                }
                let mut out = String::with_capacity(k.len());
                let mut up = false;
                for c in k.chars() {
                    if c == '_' {
                        up = true;
                    } else if up {
                        out.extend(c.to_uppercase());
                        up = false;
                    } else {
                        out.push(c);
                    }
                }
                (out, v)
            })
            .collect(),
    )
}

/// A run driven from JS: `poll()` for tasks, `complete()` each, until the status is no longer
/// `running`. Dropping it (garbage collection) stops driving; `recoverRuns` can take it over.
#[napi]
pub struct NativeRun {
    /// None once closed.
    run: Option<ExternalRun>,
    id: String,
    fingerprint: String,
}

impl NativeRun {
    fn new(run: ExternalRun, fingerprint: String) -> Self {
        Self {
            id: run.id().to_string(),
            run: Some(run),
            fingerprint,
        }
    }

    fn open(&self) -> napi::Result<&ExternalRun, String> {
        self.run
            .as_ref()
            .ok_or_else(|| err("CONFLICT", format!("run `{}` was closed", self.id)))
    }

    fn open_mut(&mut self) -> napi::Result<&mut ExternalRun, String> {
        let id = &self.id;
        self.run
            .as_mut()
            .ok_or_else(|| err("CONFLICT", format!("run `{id}` was closed")))
    }
}

#[napi]
impl NativeRun {
    /// The run id.
    #[napi(getter)]
    pub fn id(&self) -> String {
        self.id.clone()
    }

    /// The fingerprint of the definition the run was started with.
    #[napi(getter)]
    pub fn fingerprint(&self) -> String {
        self.fingerprint.clone()
    }

    /// The committed status: `running` while there is work to do.
    #[napi]
    pub fn status(&self) -> napi::Result<&'static str, String> {
        Ok(self.open()?.status().as_str())
    }

    /// Advances the run, commits what it produced, and returns the tasks to do now.
    #[napi]
    pub fn poll(&mut self) -> napi::Result<Vec<NativeTask>, String> {
        let tasks = self.open_mut()?.poll().map_err(engine_err)?;
        tasks.into_iter().map(task).collect()
    }

    /// Hands back a task's result: `ok` with the value (for an eval, the answer), or a failure
    /// with `{message, fatal?}` (a fatal failure is never retried).
    #[napi(ts_args_type = "path: string, ok: boolean, value: unknown")]
    pub fn complete(&mut self, path: String, ok: bool, value: Value) -> napi::Result<(), String> {
        let value = ints(value);
        let result = if ok {
            Ok(value)
        } else {
            let message = match &value {
                Value::String(s) => s.clone(),
                Value::Object(m) => match m.get("message") {
                    Some(Value::String(s)) => s.clone(),
                    _ => value.to_string(),
                },
                other => other.to_string(),
            };
            if value.get("fatal").and_then(Value::as_bool) == Some(true) {
                Err(StepError::fatal(message))
            } else {
                Err(StepError::retryable(message))
            }
        };
        self.open_mut()?.complete(&path, result);
        Ok(())
    }

    /// Completes the step at `path` by suspending the run there with `payload`.
    #[napi(ts_args_type = "path: string, payload: unknown")]
    pub fn suspend(&mut self, path: String, payload: Value) -> napi::Result<(), String> {
        self.open_mut()?
            .complete(&path, Err(StepError::suspended(ints(payload))));
        Ok(())
    }

    /// Like `poll`, without committing: the driver may go on at once with steps that finish
    /// without waiting, and calls `flush` before it waits for anything (coalesced commits).
    #[napi]
    pub fn advance(&mut self) -> napi::Result<Vec<NativeTask>, String> {
        let tasks = self.open_mut()?.advance().map_err(engine_err)?;
        tasks.into_iter().map(task).collect()
    }

    /// Commits what `advance` produced.
    #[napi]
    pub fn flush(&mut self) -> napi::Result<(), String> {
        self.open_mut()?.flush().map_err(engine_err)
    }

    /// Completes `path` with `value`, then advances (no commit): one call instead of two.
    #[napi(ts_args_type = "path: string, value: unknown")]
    pub fn complete_and_advance(
        &mut self,
        path: String,
        value: Value,
    ) -> napi::Result<Vec<NativeTask>, String> {
        self.open_mut()?.complete(&path, Ok(ints(value)));
        self.advance()
    }

    /// Completes `path` with `value`, then polls: one call instead of two on the hot path.
    #[napi(ts_args_type = "path: string, value: unknown")]
    pub fn complete_and_poll(
        &mut self,
        path: String,
        value: Value,
    ) -> napi::Result<Vec<NativeTask>, String> {
        self.open_mut()?.complete(&path, Ok(ints(value)));
        self.poll()
    }

    /// The step attempt at `path` ran past its `timeoutMs`: the core fails it (its retry
    /// policy decides what follows) and returns the message to abort the step's work with;
    /// null if it already completed.
    #[napi]
    pub fn time_out(&mut self, path: String) -> napi::Result<Option<String>, String> {
        Ok(self.open_mut()?.time_out(&path))
    }

    /// The run's deadline passed: the core fails the run and returns the message to abort
    /// the steps in flight with; null if the run has no timeout or already ended.
    #[napi]
    pub fn time_out_run(&mut self) -> napi::Result<Option<String>, String> {
        self.open_mut()?.time_out_run().map_err(engine_err)
    }

    /// Ends the run as cancelled; results of tasks still in flight are then ignored.
    #[napi]
    pub fn cancel(&mut self) -> napi::Result<(), String> {
        self.open_mut()?.cancel().map_err(engine_err)
    }

    /// Ends the run as failed with `error` (for example when its deadline passed).
    #[napi]
    pub fn fail_run(&mut self, error: String) -> napi::Result<(), String> {
        self.open_mut()?.fail(&error).map_err(engine_err)
    }

    /// The run's deadline (ms since the epoch) if its workflow has a timeout.
    #[napi]
    pub fn deadline(&self) -> napi::Result<Option<i64>, String> {
        Ok(self.open()?.deadline())
    }

    /// Whether the run finished or suspended (nothing left to drive).
    #[napi]
    pub fn is_settled(&self) -> napi::Result<bool, String> {
        Ok(self.open()?.is_settled())
    }

    /// The run as it stands.
    #[napi]
    pub fn outcome(&self) -> napi::Result<NativeRunInfo, String> {
        Ok(self.open()?.outcome().into())
    }

    /// Stops driving the run and returns it as it stands: the engine no longer counts it as
    /// executing here (a later `cancel` or `resume` goes through the store). Later calls on
    /// this object throw `CONFLICT`.
    ///
    /// With `withInput` false the returned `input` is null: a driver that started the run holds
    /// the input already, and converting it back to JS would be wasted work.
    #[napi]
    pub fn close(&mut self, with_input: Option<bool>) -> napi::Result<NativeRunInfo, String> {
        let run = self
            .run
            .take()
            .ok_or_else(|| err("CONFLICT", format!("run `{}` was closed", self.id)))?;
        let mut out = run.into_outcome();
        if with_input == Some(false) {
            out.input = Value::Null;
        }
        Ok(out.into())
    }

    /// Starts the Rust step of a `native` task at `path` on napi's tokio runtime. Await the
    /// call's `wait()`, then hand it back with `completeNative`.
    #[napi]
    pub fn native(&mut self, path: String) -> napi::Result<NativeStepCall, String> {
        let fut = self.open_mut()?.native(&path).ok_or_else(|| {
            err(
                "CONFLICT",
                format!("no native step is waiting to start at `{path}`"),
            )
        })?;
        let slot = Arc::new(std::sync::Mutex::new(None));
        let out = Arc::clone(&slot);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = napi::bindgen_prelude::spawn(async move {
            let r = fut.await;
            if let Ok(mut s) = out.lock() {
                *s = Some(r);
            }
            let _ = tx.send(());
        });
        Ok(NativeStepCall {
            path,
            slot,
            done: tokio::sync::Mutex::new(Some(rx)),
            task,
        })
    }

    /// Completes a native step with the result its call produced (after `wait()` settled).
    #[napi]
    pub fn complete_native(&mut self, call: &NativeStepCall) -> napi::Result<(), String> {
        let r = call
            .slot
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .unwrap_or_else(|| Err(StepError::fatal("the native step did not finish")));
        self.open_mut()?.complete(&call.path, r);
        Ok(())
    }

    /// Commits a custom event from the step at `path`.
    #[napi(ts_args_type = "path: string, name: string, data: unknown")]
    pub fn emit(&mut self, path: String, name: String, data: Value) -> napi::Result<(), String> {
        self.open_mut()?
            .emit(&path, &name, ints(data))
            .map_err(engine_err)
    }

    /// Reads a key of the run's shared state.
    #[napi(ts_return_type = "unknown")]
    pub fn get_state(&self, key: String) -> napi::Result<Option<Value>, String> {
        Ok(self.open()?.state(&key))
    }

    /// Writes a key of the run's shared state (committed with the next poll).
    #[napi(ts_args_type = "key: string, value: unknown")]
    pub fn set_state(&self, key: String, value: Value) -> napi::Result<(), String> {
        self.open()?.set_state(&key, ints(value));
        Ok(())
    }

    /// All of the run's shared state.
    #[napi(ts_return_type = "Record<string, unknown>")]
    pub fn state(&self) -> napi::Result<Value, String> {
        Ok(Value::Object(self.open()?.state_snapshot()))
    }
}

/// A Rust step running for a driven run (see `NativeRun.native`).
#[napi]
pub struct NativeStepCall {
    path: String,
    slot: Arc<std::sync::Mutex<Option<Result<Value, StepError>>>>,
    done: tokio::sync::Mutex<Option<tokio::sync::oneshot::Receiver<()>>>,
    task: tokio::task::JoinHandle<()>,
}

#[napi]
impl NativeStepCall {
    /// The step's path.
    #[napi(getter)]
    pub fn path(&self) -> String {
        self.path.clone()
    }

    /// Settles when the step has finished (its result stays here for `completeNative`).
    #[napi]
    pub async fn wait(&self) -> napi::Result<()> {
        let rx = self.done.lock().await.take();
        if let Some(rx) = rx {
            let _ = rx.await;
        }
        Ok(())
    }

    /// Stops the step (the run was cancelled or timed out).
    #[napi]
    pub fn abort(&self) {
        self.task.abort();
    }
}

impl Drop for NativeStepCall {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    /// The facade's `ErrorCode` type and its set of known codes list exactly the crate's
    /// table: one table for Rust, HTTP, the CLI and Node.
    #[test]
    fn the_ts_error_codes_are_the_crates() {
        let ts = include_str!("../ts/errors.ts");
        let union = &ts[ts.find("export type ErrorCode =").unwrap_or(0)..];
        let union = &union[..union.find(';').unwrap_or(union.len())];
        let set = &ts[ts.find("const CODES").unwrap_or(0)..];
        let set = &set[..set.find("]);").unwrap_or(set.len())];
        for part in [union, set] {
            let mut listed: Vec<&str> = part.split('\'').skip(1).step_by(2).collect();
            listed.sort_unstable();
            let mut table: Vec<&str> = miyabi::ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
            table.sort_unstable();
            assert_eq!(listed, table);
        }
    }

    use super::ints;
    use serde_json::json;

    #[test]
    fn whole_floats_become_integers_deep_inside_values() {
        let v = ints(json!({"at": 1795612677425.0_f64, "xs": [1.5, 2.0, -3e15], "s": "1.0"}));
        assert_eq!(
            v.to_string(),
            r#"{"at":1795612677425,"s":"1.0","xs":[1.5,2,-3000000000000000]}"#
        );
        assert!(ints(json!(1e300)).is_f64());
        // 2^53 - 1 is the largest integer napi gives back to JS as a number (beyond: BigInt).
        assert!(ints(json!(9_007_199_254_740_991.0_f64)).is_i64());
        assert!(ints(json!(9_007_199_254_740_992.0_f64)).is_f64());
        assert!(ints(json!(-9_007_199_254_740_992.0_f64)).is_f64());
    }

    #[test]
    fn rust_names_become_what_js_users_write() {
        use super::js_words;
        let m = js_words(
            "no API key for provider \"openai\": set OPENAI_API_KEY, or pass ModelBuilder::api_key"
                .to_owned(),
        );
        assert_eq!(
            m,
            "no API key for provider \"openai\": set OPENAI_API_KEY, or pass `model(spec, { apiKey })`"
        );
        let m = js_words(
            "provider \"x\" has no known base URL: set X_BASE_URL or use ModelBuilder::base_url"
                .to_owned(),
        );
        assert!(m.ends_with("or pass `model(spec, { baseURL })`"), "{m}");
        let m = js_words("unknown provider \"acme\" (the catalogue has 223 providers); for another endpoint use ModelBuilder::custom".to_owned());
        assert!(m.contains("model(spec, { baseURL, protocol })"), "{m}");
        let m = js_words("b: SigV4 signing needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or ModelBuilder::aws_credentials)".to_owned());
        assert!(m.ends_with("AWS_SECRET_ACCESS_KEY"), "{m}");
        for m in [
            "Failed to convert js number to serde_json::Number",
            "a loop's max_iterations must be at least 1",
            "step `a` (external handle 0) has no Rust code: drive this run with ExternalRun",
            "sleep_until at `s` returned 1.5, not a time",
        ] {
            let out = js_words(m.to_owned());
            assert!(
                !out.contains("::")
                    && !out.contains("_iterations")
                    && !out.contains("ExternalRun")
                    && !out.contains("sleep_until"),
                "{out}"
            );
        }
        let plain = "run `r` not found".to_owned();
        assert_eq!(js_words(plain.clone()), plain);
    }
}

/// One wait of `work()` for new work in the store (see `NativeEngine::work_wait`).
#[napi]
pub struct NativeWorkWait {
    engine: Engine,
    timeout: std::time::Duration,
    cancelled: Arc<std::sync::atomic::AtomicBool>,
    cancel: Arc<tokio::sync::Notify>,
}

#[napi]
impl NativeWorkWait {
    /// Settles with true when the store reported new work, false after the timeout or once
    /// cancelled.
    #[napi]
    pub async fn wait(&self) -> bool {
        let cancel = Arc::clone(&self.cancel);
        let cancelled = cancel.notified();
        tokio::pin!(cancelled);
        cancelled.as_mut().enable();
        if self.cancelled.load(std::sync::atomic::Ordering::SeqCst) {
            return false;
        }
        tokio::select! {
            woken = self.engine.wait_for_work(self.timeout) => woken,
            _ = cancelled => false,
        }
    }

    /// Settles the wait now (an aborted worker, a closed engine): no timer outlives it.
    #[napi]
    pub fn cancel(&self) {
        self.cancelled
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.cancel.notify_waiters();
    }
}
