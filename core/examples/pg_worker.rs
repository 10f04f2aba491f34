//! A worker process on a shared Postgres store, for the multi-worker tests
//! (core/tests/postgres_*.rs) and the benchmark (bench/pg.mjs).
//!
//! ```text
//! pg_worker --url postgres://… --schema s work    [--lease-ms 2000] [--poll-ms 500] [--max-active 64]
//!           [--workflow-limit span=2]… [--global-limit 3]
//! pg_worker --url postgres://… --schema s enqueue --workflow chain --runs 1000
//! ```
//!
//! `--workflow-limit id=n` (repeatable) and `--global-limit n` set the engine's concurrency
//! limits ([`EngineBuilder::workflow_limit`](miyabi::EngineBuilder::workflow_limit),
//! [`EngineBuilder::global_limit`](miyabi::EngineBuilder::global_limit)); give every worker
//! the same.
//!
//! Workflows (the same definitions, so the same fingerprints, in every process):
//! - `chain`: `--steps` steps (default 5); each waits `--step-ms` (default 10) and then writes
//!   its effect into the `ledger` table under the idempotency key `run/path` (a step executed
//!   again after a takeover finds its key and writes nothing), and records the execution in
//!   `executions` (no key: re-executions show there).
//! - `timers`: a step, a sleep of `--sleep-ms` (default 1500), then a step that records that
//!   the timer fired (`fired`).
//! - `deadline`: an approval gate nobody decides, with a deadline of `--sleep-ms` (rejected
//!   when it passes), then a step that records what it received (`fired`).
//! - `span` and `span2`: one step that records when it starts and when it ends (the database's
//!   `clock_timestamp()`, one clock for every worker) in the `spans` table, one row per
//!   execution, waiting `--step-ms` in between: how many runs executed at once.
//!
//! `--no-effects` leaves the ledger out (steps only wait: the benchmark's I/O-bound steps).
//!
//! A worker prints `ready <owner>` once it works; errors (such as a run this worker lost to
//! another, whose writes were refused) go to stderr.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use miyabi::approval::ApprovalGate;
use miyabi::{Engine, PostgresStore, StepContext, StepError, Workflow, step_fn};
use serde_json::{Value, json};

struct Args {
    url: String,
    schema: String,
    mode: String,
    workflow: String,
    runs: usize,
    steps: usize,
    step_ms: u64,
    sleep_ms: u64,
    lease_ms: u64,
    poll_ms: u64,
    max_active: usize,
    effects: bool,
    workflow_limits: Vec<(String, usize)>,
    global_limit: Option<usize>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        url: std::env::var("MIYABI_TEST_POSTGRES_URL").unwrap_or_default(),
        schema: "miyabi".into(),
        mode: String::new(),
        workflow: "chain".into(),
        runs: 100,
        steps: 5,
        step_ms: 10,
        sleep_ms: 1500,
        lease_ms: 2000,
        poll_ms: 500,
        max_active: 64,
        effects: true,
        workflow_limits: Vec::new(),
        global_limit: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().ok_or(format!("{k} needs a value"));
        let num = |s: String| s.parse::<u64>().map_err(|e| format!("{s}: {e}"));
        match k.as_str() {
            "--url" => a.url = v()?,
            "--schema" => a.schema = v()?,
            "--workflow" => a.workflow = v()?,
            "--runs" => a.runs = num(v()?)? as usize,
            "--steps" => a.steps = num(v()?)? as usize,
            "--step-ms" => a.step_ms = num(v()?)?,
            "--sleep-ms" => a.sleep_ms = num(v()?)?,
            "--lease-ms" => a.lease_ms = num(v()?)?,
            "--poll-ms" => a.poll_ms = num(v()?)?,
            "--max-active" => a.max_active = num(v()?)? as usize,
            "--no-effects" => a.effects = false,
            "--workflow-limit" => {
                let spec = v()?;
                let (id, n) = spec
                    .split_once('=')
                    .ok_or(format!("--workflow-limit {spec}: say `workflow=n`"))?;
                a.workflow_limits
                    .push((id.to_string(), num(n.to_string())? as usize));
            }
            "--global-limit" => a.global_limit = Some(num(v()?)? as usize),
            "work" | "enqueue" => a.mode = k,
            other => return Err(format!("unknown argument `{other}`")),
        }
    }
    if a.url.is_empty() {
        return Err("--url (or MIYABI_TEST_POSTGRES_URL) is required".into());
    }
    if a.mode.is_empty() {
        return Err("say `work` or `enqueue`".into());
    }
    Ok(a)
}

/// Effects go through a thread with its own synchronous connection (the synchronous client
/// must not run inside the tokio runtime); steps wait for the answer without blocking it.
type Effect = (
    String,
    Vec<String>,
    tokio::sync::oneshot::Sender<Result<(), String>>,
);

fn effects(url: &str, schema: &str) -> Result<mpsc::Sender<Effect>, String> {
    let (tx, rx) = mpsc::channel::<Effect>();
    let (ready_tx, ready) = mpsc::sync_channel::<Result<(), String>>(1);
    let (url, schema) = (url.to_string(), schema.to_string());
    std::thread::spawn(move || {
        let setup = || -> Result<postgres::Client, String> {
            let mut client = postgres::Client::connect(&url, postgres::NoTls)
                .map_err(|e| format!("connect: {e}"))?;
            client
                .batch_execute(&format!(
                    "CREATE SCHEMA IF NOT EXISTS \"{schema}\";
                     SET search_path TO \"{schema}\";
                     CREATE TABLE IF NOT EXISTS ledger (key TEXT PRIMARY KEY, worker TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now());
                     CREATE TABLE IF NOT EXISTS executions (key TEXT NOT NULL, worker TEXT NOT NULL, at TIMESTAMPTZ NOT NULL DEFAULT now());
                     CREATE TABLE IF NOT EXISTS fired (run_id TEXT NOT NULL, what TEXT NOT NULL, worker TEXT NOT NULL, data TEXT);
                     CREATE TABLE IF NOT EXISTS spans (exec TEXT PRIMARY KEY, run_id TEXT NOT NULL, workflow TEXT NOT NULL, worker TEXT NOT NULL, started TIMESTAMPTZ NOT NULL, ended TIMESTAMPTZ);"
                ))
                .map_err(|e| format!("ledger tables: {e}"))?;
            Ok(client)
        };
        let mut client = match setup() {
            Ok(c) => {
                let _ = ready_tx.send(Ok(()));
                c
            }
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        for (sql, params, reply) in rx {
            let p: Vec<&(dyn postgres::types::ToSql + Sync)> = params
                .iter()
                .map(|s| s as &(dyn postgres::types::ToSql + Sync))
                .collect();
            let r = client
                .execute(&sql, &p)
                .map(|_| ())
                .map_err(|e| e.to_string());
            let _ = reply.send(r);
        }
    });
    ready
        .recv()
        .map_err(|_| "the effects thread stopped".to_string())??;
    Ok(tx)
}

async fn effect(
    fx: &mpsc::Sender<Effect>,
    sql: &str,
    params: Vec<String>,
) -> Result<(), StepError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    fx.send((sql.to_string(), params, tx))
        .map_err(|_| StepError::retryable("the effects thread stopped"))?;
    rx.await
        .map_err(|_| StepError::retryable("the effects thread stopped"))?
        .map_err(StepError::retryable)
}

fn workflows(a: &Args, fx: &mpsc::Sender<Effect>, me: &str) -> Vec<miyabi::CommittedWorkflow> {
    let mut chain = Workflow::new("chain");
    for i in 0..a.steps {
        let (fx, me, ms, effects) = (fx.clone(), me.to_string(), a.step_ms, a.effects);
        let node = step_fn(move |ctx: StepContext, v: Value| {
            let (fx, me) = (fx.clone(), me.clone());
            async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                if !effects {
                    return Ok(json!({ "n": v["n"].as_i64().unwrap_or(0) + 1 }));
                }
                let key = format!("{}/{}", ctx.run_id(), ctx.path());
                effect(
                    &fx,
                    "INSERT INTO executions (key, worker) VALUES ($1, $2)",
                    vec![key.clone(), me.clone()],
                )
                .await?;
                effect(
                    &fx,
                    "INSERT INTO ledger (key, worker) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
                    vec![key, me],
                )
                .await?;
                Ok(json!({ "n": v["n"].as_i64().unwrap_or(0) + 1 }))
            }
        });
        chain = chain.step(format!("s{i}"), node);
    }
    let fired = |what: &'static str| {
        let (fx, me) = (fx.clone(), me.to_string());
        step_fn(move |ctx: StepContext, v: Value| {
            let (fx, me) = (fx.clone(), me.clone());
            async move {
                effect(
                    &fx,
                    "INSERT INTO fired (run_id, what, worker, data) VALUES ($1, $2, $3, $4)",
                    vec![
                        ctx.run_id().to_string(),
                        what.to_string(),
                        me,
                        v.to_string(),
                    ],
                )
                .await?;
                Ok(v)
            }
        })
    };
    let noop = step_fn(|_ctx: StepContext, v: Value| async move { Ok(v) });
    let timers = Workflow::new("timers")
        .step("before", noop)
        .sleep("nap", Duration::from_millis(a.sleep_ms))
        .step("after", fired("timer"));
    let deadline = Workflow::new("deadline")
        .await_approval(
            "review",
            ApprovalGate::new()
                .approvers(["nobody"])
                .deadline(Duration::from_millis(a.sleep_ms)),
        )
        .step("after", fired("deadline"));
    // One row per execution of the step: its key counts this process's executions.
    let executions = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let span = |id: &'static str| {
        let (fx, me, ms, executions) = (
            fx.clone(),
            me.to_string(),
            a.step_ms,
            Arc::clone(&executions),
        );
        Workflow::new(id).step(
            "s",
            step_fn(move |ctx: StepContext, v: Value| {
                let (fx, me) = (fx.clone(), me.clone());
                let n = executions.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                async move {
                    let exec = format!("{me}/{n}");
                    effect(
                        &fx,
                        "INSERT INTO spans (exec, run_id, workflow, worker, started)
                         VALUES ($1, $2, $3, $4, clock_timestamp())",
                        vec![exec.clone(), ctx.run_id().to_string(), id.to_string(), me],
                    )
                    .await?;
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    effect(
                        &fx,
                        "UPDATE spans SET ended = clock_timestamp() WHERE exec = $1",
                        vec![exec],
                    )
                    .await?;
                    Ok(v)
                }
            }),
        )
    };
    [chain, timers, deadline, span("span"), span("span2")]
        .into_iter()
        .filter_map(|w| match w.commit() {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!("pg_worker: {e}");
                None
            }
        })
        .collect()
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MIYABI_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pg_worker: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pg_worker: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(a)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pg_worker: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(a: Args) -> Result<(), String> {
    let store = PostgresStore::builder(&a.url)
        .schema(&a.schema)
        .connections(4)
        .open()
        .map_err(|e| e.to_string())?;
    let mut builder = Engine::builder()
        .store(store)
        .lease(Duration::from_millis(a.lease_ms))
        .max_active(a.max_active)
        .worker_interval(Duration::from_millis(a.poll_ms));
    for (id, n) in &a.workflow_limits {
        builder = builder.workflow_limit(id.clone(), *n);
    }
    if let Some(n) = a.global_limit {
        builder = builder.global_limit(n);
    }
    let engine = builder.build();
    let fx = effects(&a.url, &a.schema)?;
    let wfs = workflows(&a, &fx, engine.owner());
    for w in &wfs {
        engine.register(w);
    }
    match a.mode.as_str() {
        "enqueue" => {
            let wf = wfs
                .iter()
                .find(|w| w.id() == a.workflow)
                .ok_or(format!("no workflow `{}`", a.workflow))?;
            for i in 0..a.runs {
                engine
                    .enqueue(wf, json!({ "n": 0, "i": i }))
                    .map_err(|e| e.to_string())?;
            }
            println!("enqueued {}", a.runs);
            Ok(())
        }
        _ => {
            // The approvals worker (deadlines, decided gates, notifications) runs too.
            engine.start_worker();
            println!("ready {}", engine.owner());
            let engine = Arc::new(engine);
            engine
                .work(Duration::from_millis(a.poll_ms))
                .await
                .map_err(|e| e.to_string())
        }
    }
}
