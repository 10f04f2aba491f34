//! Workflows whose steps run outside Rust (`Node::external`, what the Node binding builds for JS
//! steps) through the HTTP API, on loopback over a real SQLite file: a server without an
//! external driver refuses to start or resume their runs before writing anything; a server with
//! one hands starts, resumes and decided approval gates to it.
#![cfg(feature = "server")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use miyabi::approval::{ApprovalGate, Approver};
use miyabi::external::{ExternalRun, Task};
use miyabi::server::{DriverError, ExternalDriver, ServerConfig, serve};
use miyabi::{
    CommittedWorkflow, Engine, Node, RunFilter, RunStatus, StepContext, StepError, Workflow,
    step_fn,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;

const TOKEN: &str = "alice-token-0123456789abcdef";

/// `ask` (external handle 0): suspends until resumed, then outputs the resume data.
fn external() -> CommittedWorkflow {
    Workflow::new("ext")
        .step("ask", Node::external(0))
        .commit()
        .unwrap()
}

fn rust_only() -> CommittedWorkflow {
    Workflow::new("plain")
        .step(
            "echo",
            step_fn(|_ctx: StepContext, v: Value| async move { Ok(v) }),
        )
        .commit()
        .unwrap()
}

/// Runs an external run's tasks until it settles: handle 0 (`ask`) suspends until resumed,
/// then outputs its input and the resume data; handle 1 outputs its input; Rust steps (an
/// approval gate) run as the engine gives them.
async fn drive(mut run: ExternalRun) -> miyabi::Run {
    while run.status() == RunStatus::Running {
        for task in run.poll().unwrap() {
            match task {
                Task::Step {
                    path,
                    handle,
                    input,
                    resume,
                    ..
                } => {
                    let result = match (handle, resume) {
                        (0, Some(data)) => Ok(json!({ "input": input, "answer": data })),
                        (0, None) => Err(StepError::suspended(json!({ "question": "go on?" }))),
                        _ => Ok(input),
                    };
                    run.complete(&path, result);
                }
                Task::Native { path } => {
                    let result = run.native(&path).unwrap().await;
                    run.complete(&path, result);
                }
                other => panic!("unexpected task {other:?}"),
            }
        }
    }
    run.into_outcome()
}

/// An external driver in Rust: drives runs on a blocking thread and reports every settled run.
struct TestDriver {
    engine: Engine,
    settled: mpsc::UnboundedSender<miyabi::Run>,
    calls: Mutex<Vec<String>>,
}

impl TestDriver {
    fn spawn(&self, run: ExternalRun) {
        let tx = self.settled.clone();
        tokio::spawn(async move {
            let _ = tx.send(drive(run).await);
        });
    }
}

fn driver_err(e: miyabi::EngineError) -> DriverError {
    DriverError::from(e)
}

#[async_trait]
impl ExternalDriver for TestDriver {
    async fn start(
        &self,
        workflow: CommittedWorkflow,
        input: Value,
    ) -> Result<String, DriverError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("start {}", workflow.id()));
        if input == json!("refuse") {
            return Err(DriverError::new(
                miyabi::ErrorCode::Validation,
                "input refused by the driver",
            ));
        }
        let run = self
            .engine
            .start_external(&workflow, input)
            .map_err(driver_err)?;
        let id = run.id().to_string();
        self.spawn(run);
        Ok(id)
    }

    async fn resume(&self, run_id: String, path: String, data: Value) -> Result<(), DriverError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("resume {run_id} {path}"));
        let run = self
            .engine
            .resume_external(&run_id, &path, data)
            .map_err(driver_err)?;
        self.spawn(run);
        Ok(())
    }

    async fn deliver(&self, run_id: String, gate: String) -> Result<(), DriverError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("deliver {run_id} {gate}"));
        let run = self
            .engine
            .approvals()
            .resume_external(&run_id, &gate)
            .map_err(|e| DriverError::new(miyabi::ErrorCode::Engine, e.to_string()))?;
        if let Some(run) = run {
            self.spawn(run);
        }
        Ok(())
    }

    async fn cancel(&self, run_id: String) -> Result<(), DriverError> {
        self.calls.lock().unwrap().push(format!("cancel {run_id}"));
        self.engine.cancel(&run_id).await.map_err(driver_err)?;
        Ok(())
    }
}

async fn post(http: &reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let r = http
        .post(url)
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn get(http: &reqwest::Client, url: String) -> Value {
    let r = http.get(url).bearer_auth(TOKEN).send().await.unwrap();
    r.json().await.unwrap()
}

fn config() -> ServerConfig {
    ServerConfig::new().token(TOKEN, Approver::new("alice"))
}

#[tokio::test]
async fn a_server_without_a_driver_refuses_external_workflows_before_writing() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::sqlite(dir.path().join("runs.db")).unwrap();
    engine.register(&external());
    engine.register(&rust_only());
    let server = serve(
        engine.clone(),
        config(),
        Some("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    let base = format!("http://{}", server.local_addr());
    let http = reqwest::Client::new();

    let (status, body) = post(
        &http,
        format!("{base}/api/workflows/ext/runs"),
        json!({ "input": 1 }),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "CONFLICT");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("workflow `ext`"), "{message}");
    assert!(message.contains("outside Rust"), "{message}");
    assert!(
        engine
            .store()
            .list_run_summaries(&RunFilter::default())
            .unwrap()
            .is_empty(),
        "no run row was written"
    );

    // A run of it suspended by its own driver (another process) is not resumed here either:
    // the run stays suspended and unclaimed, its log unchanged.
    let run = drive(engine.start_external(&external(), json!(2)).unwrap()).await;
    assert_eq!(run.status, RunStatus::Suspended);
    let before = engine.store().events(&run.id, 1, usize::MAX).unwrap().len();
    let (status, body) = post(
        &http,
        format!("{base}/api/runs/{}/resume", run.id),
        json!({ "path": "ask", "data": "yes" }),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("workflow `ext`"),
        "{body}"
    );
    let stored = engine.store().run(&run.id).unwrap().unwrap();
    assert_eq!(stored.status, RunStatus::Suspended);
    assert_eq!(stored.owner, None);
    assert_eq!(
        engine.store().events(&run.id, 1, usize::MAX).unwrap().len(),
        before
    );

    // Rust workflows are unaffected.
    let (status, body) = post(
        &http,
        format!("{base}/api/workflows/plain/runs"),
        json!({ "input": 3 }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_driver_gets_starts_resumes_and_decided_gates_of_external_runs() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::sqlite(dir.path().join("runs.db")).unwrap();
    engine.register(&external());
    let gated = Workflow::new("ext-gate")
        .step("prepare", Node::external(1))
        .await_approval("review", ApprovalGate::new().approvers(["alice"]))
        .commit()
        .unwrap();
    engine.register(&gated);
    let (tx, mut settled) = mpsc::unbounded_channel();
    let driver = Arc::new(TestDriver {
        engine: engine.clone(),
        settled: tx,
        calls: Mutex::new(Vec::new()),
    });
    let server = serve(
        engine.clone(),
        config().external_driver(driver.clone()),
        Some("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    let base = format!("http://{}", server.local_addr());
    let http = reqwest::Client::new();

    let (status, body) = post(
        &http,
        format!("{base}/api/workflows/ext/runs"),
        json!({ "input": 5 }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    let last_call = || driver.calls.lock().unwrap().last().cloned();
    assert_eq!(
        last_call().as_deref(),
        Some("start ext"),
        "the driver started it"
    );
    let run = settled.recv().await.unwrap();
    assert_eq!(run.id, id);
    assert_eq!(run.status, RunStatus::Suspended);

    let (status, body) = post(
        &http,
        format!("{base}/api/runs/{id}/resume"),
        json!({ "path": "ask", "data": "yes" }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(
        last_call(),
        Some(format!("resume {id} ask")),
        "the driver resumed it"
    );
    let run = settled.recv().await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    let detail = get(&http, format!("{base}/api/runs/{id}")).await;
    assert_eq!(detail["run"]["status"], "succeeded");
    assert_eq!(
        detail["run"]["output"],
        json!({ "input": 5, "answer": "yes" })
    );

    // The driver's refusals keep their kind; a resume of a finished run is the driver's
    // conflict.
    let (status, body) = post(
        &http,
        format!("{base}/api/workflows/ext/runs"),
        json!({ "input": "refuse" }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["message"], "input refused by the driver");
    let (status, _) = post(
        &http,
        format!("{base}/api/runs/{id}/resume"),
        json!({ "path": "ask", "data": "again" }),
    )
    .await;
    assert_eq!(status, 409);

    // A gate decided over HTTP: the driver continues the run at once.
    let run = drive(engine.start_external(&gated, json!("patch")).unwrap()).await;
    assert_eq!(run.status, RunStatus::Suspended);
    let gated_id = run.id;
    let (status, body) = post(
        &http,
        format!("{base}/api/approvals/{gated_id}/review/decision"),
        json!({ "action": "approve" }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        last_call(),
        Some(format!("deliver {gated_id} review")),
        "the driver continued it"
    );
    assert_eq!(body["approval"]["delivered"], true, "{body}");
    let run = settled.recv().await.unwrap();
    assert_eq!(run.id, gated_id);
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(run.output.unwrap()["approved"], true);

    // A cancellation goes to the driver too (a suspended run: cancelled in the store).
    let (status, body) = post(
        &http,
        format!("{base}/api/workflows/ext/runs"),
        json!({ "input": 6 }),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    let to_cancel = body["id"].as_str().unwrap().to_string();
    assert_eq!(settled.recv().await.unwrap().status, RunStatus::Suspended);
    let (status, body) = post(
        &http,
        format!("{base}/api/runs/{to_cancel}/cancel"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["run"]["status"], "cancelled");
    assert_eq!(last_call(), Some(format!("cancel {to_cancel}")));

    let calls = driver.calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![
            "start ext".to_string(),
            format!("resume {id} ask"),
            "start ext".to_string(),
            format!("resume {id} ask"),
            format!("deliver {gated_id} review"),
            "start ext".to_string(),
            format!("cancel {to_cancel}"),
        ]
    );
    server.shutdown().await.unwrap();
}
