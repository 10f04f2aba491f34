//! A server with durable eval runs, for the Evals view's browser test
//! (`tests/dashboard_evals.test.mjs`) and for trying the view by hand:
//!
//! ```sh
//! cargo run -p miyabi --features server,eval --example dashboard_evals
//! ```
//!
//! On a SQLite store in a temporary directory it runs, for real, as [`DurableEval`]s:
//!
//! - three runs of the suite `support` (six cases, metrics `exact` and `similarity`
//!   (Levenshtein), a gate `exact` mean ≥ 0.6) against a deterministic target whose answers
//!   change between runs: the first run answers cases c1–c3 right, the second c1–c5, the third
//!   c1, c2, c4 and c5 (c3 regresses);
//! - one run of the suite `triage` (another suite);
//! - one run of the suite `slow` whose target never answers (an eval run that is not finished);
//! - one run of the plain workflow `report` (not an eval run).
//!
//! Identities: `alice` (admin) and `tess` (viewer, scope `eval.triage` only). Prints one JSON
//! line:
//!
//! ```json
//! {"url": "http://127.0.0.1:PORT", "token": "<alice's>", "scoped": "<tess's>",
//!  "support": ["<run 1>", "<run 2>", "<run 3>"], "triage": "<run>", "slow": "<run>", "report": "<run>"}
//! ```
//!
//! and serves until its standard input closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use miyabi::approval::Approver;
use miyabi::eval::metrics::{Exact, Levenshtein};
use miyabi::eval::{Case, Dataset, DurableEval, Evaluator, Target};
use miyabi::server::{Identity, Role, ServerConfig, generate_token, router};
use miyabi::{Engine, SqliteStore, StepContext, StepError, Workflow, step_fn};
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The answers of each version of the target, by case number (1–6).
fn answer(version: usize, case: usize) -> &'static str {
    let right: &[usize] = match version {
        0 => &[1, 2, 3],
        1 => &[1, 2, 3, 4, 5],
        _ => &[1, 2, 4, 5],
    };
    if right.contains(&case) {
        ANSWERS[case - 1]
    } else if case.is_multiple_of(2) {
        "answer ?"
    } else {
        "no idea"
    }
}

const ANSWERS: [&str; 6] = [
    "answer 1", "answer 2", "answer 3", "answer 4", "answer 5", "answer 6",
];

/// Waits until the clock has moved past `ms`, so runs started one after the other have
/// distinct creation times (the listing's order).
async fn past(ms: i64) {
    while now_ms() <= ms {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let engine = Engine::builder()
        .store(SqliteStore::open(dir.path().join("runs.db"))?)
        .public_url(&url)
        .build();

    // The suite `support`: one target whose version changes between runs.
    let cases: Vec<Case> = (1..=6)
        .map(|i| Case::new(format!("c{i}"), json!(i)).expected(ANSWERS[i - 1]))
        .collect();
    let dataset = Dataset::from_cases("support-questions", cases)?;
    let version = Arc::new(AtomicUsize::new(0));
    let v = Arc::clone(&version);
    let target: Arc<dyn Target> = Arc::new(move |input: Value| {
        let version = v.load(Ordering::SeqCst);
        async move {
            let case = input.as_u64().unwrap_or(0) as usize;
            if !(1..=6).contains(&case) {
                return Err(format!("no case {input}"));
            }
            Ok(json!(answer(version, case)))
        }
    });
    let support = DurableEval::new(
        &engine,
        Evaluator::new()
            .name("support")
            .add_metric("exact", Exact::new())
            .add_metric("similarity", Levenshtein::new())
            .gate_mean("exact", 0.6)
            .concurrency(2),
        target,
    )?;
    let mut support_runs = Vec::new();
    let mut last = 0;
    for n in 0..3 {
        past(last).await;
        version.store(n, Ordering::SeqCst);
        let id = support.spawn(&dataset)?;
        support.wait(&id).await?;
        last = engine
            .store()
            .run(&id)?
            .map(|r| r.created_at)
            .unwrap_or(last);
        support_runs.push(id);
    }

    // Another suite.
    let triage = DurableEval::new(
        &engine,
        Evaluator::new()
            .name("triage")
            .add_metric("exact", Exact::new()),
        Arc::new(|_input: Value| async move { Ok::<_, String>(json!("answer 1")) }),
    )?;
    past(last).await;
    let triage_run = triage.spawn(&Dataset::from_cases(
        "triage-questions",
        [Case::new("c1", json!(1)).expected("answer 1")],
    )?)?;
    triage.wait(&triage_run).await?;

    // An eval run that never finishes.
    let slow = DurableEval::new(
        &engine,
        Evaluator::new()
            .name("slow")
            .add_metric("exact", Exact::new()),
        Arc::new(|_input: Value| async move {
            std::future::pending::<()>().await;
            Ok::<_, String>(Value::Null)
        }),
    )?;
    let slow_run = slow.spawn(&Dataset::from_cases(
        "slow-questions",
        [Case::new("c1", json!(1)).expected("answer 1")],
    )?)?;

    // A run that is not an eval run.
    let report = Workflow::new("report")
        .step(
            "collect",
            step_fn(|_ctx: StepContext, input: Value| async move {
                Ok::<_, StepError>(json!({ "rows": 42, "day": input["day"] }))
            }),
        )
        .commit()?;
    engine.register(&report);
    let report_run = engine
        .start(&report, json!({ "day": "2025-06-01" }))
        .await?;

    let token = generate_token()?;
    let scoped = generate_token()?;
    let config = ServerConfig::new()
        .eval_comparer(std::sync::Arc::new(miyabi::eval::Comparer))
        .token(&token, Approver::new("alice"))
        .identity(
            &scoped,
            Identity::new("tess")
                .roles([Role::Viewer])
                .workflows(["eval.triage"]),
        )
        .poll_interval(Duration::from_millis(200));
    let app = router(engine.clone(), config);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    println!(
        "{}",
        json!({
            "url": url,
            "token": token,
            "scoped": scoped,
            "support": support_runs,
            "triage": triage_run,
            "slow": slow_run,
            "report": report_run.id,
        })
    );

    // Stop when standard input closes.
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        let _ = tx.send(());
    });
    let _ = rx.await;
    server.abort();
    Ok(())
}
