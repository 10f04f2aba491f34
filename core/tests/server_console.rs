//! What the operations console asks of the API: cursors (newest first) for runs, the inbox,
//! every gate and the audit trail; search by run id and by input/output text; time ranges.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use miyabi::approval::{ApprovalGate, Approver};
use miyabi::server::{ServerConfig, ServerHandle, serve};
use miyabi::{Engine, StepContext, Workflow, step_fn};
use serde_json::{Value, json};

const TOKEN: &str = "console-token-0123456789";

struct Fixture {
    _dir: tempfile::TempDir,
    engine: Engine,
    server: ServerHandle,
    base: String,
    http: reqwest::Client,
}

impl Fixture {
    async fn new() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::sqlite(dir.path().join("runs.db")).unwrap();
        let config = ServerConfig::new()
            .token(TOKEN, Approver::new("alice"))
            .poll_interval(Duration::from_millis(20));
        let server = serve(engine.clone(), config, Some("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr());
        Fixture {
            _dir: dir,
            engine,
            server,
            base,
            http: reqwest::Client::new(),
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let s = r.status().as_u16();
        (s, r.json().await.unwrap_or(Value::Null))
    }

    /// Every item of a paged list, following `next_cursor`, checking no page repeats an item.
    async fn all_pages(&self, path: &str, key: &str, id: impl Fn(&Value) -> String) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut cursor = String::new();
        let sep = if path.contains('?') { '&' } else { '?' };
        for _ in 0..1000 {
            let (s, v) = self.get(&format!("{path}{sep}cursor={cursor}")).await;
            assert_eq!(s, 200, "{v}");
            for item in v[key].as_array().unwrap() {
                let k = id(item);
                assert!(!out.contains(&k), "{k} repeated");
                out.push(k);
            }
            match v["next_cursor"].as_str() {
                Some(c) => cursor = c.to_string(),
                None => return out,
            }
        }
        panic!("paging did not end");
    }
}

fn gated() -> miyabi::CommittedWorkflow {
    Workflow::new("gated")
        .await_approval("review", ApprovalGate::new().approvers(["alice"]))
        .commit()
        .unwrap()
}

fn echo() -> miyabi::CommittedWorkflow {
    Workflow::new("echo")
        .step(
            "double",
            step_fn(|_c: StepContext, v: Value| async move {
                Ok(json!({ "said": v["text"], "twice": true }))
            }),
        )
        .commit()
        .unwrap()
}

#[tokio::test]
async fn the_inbox_and_every_gate_page_newest_first_past_fifty() {
    let f = Fixture::new().await;
    let wf = gated();
    let mut runs = Vec::new();
    for _ in 0..61 {
        runs.push(f.engine.start(&wf, json!(1)).await.unwrap().id);
    }
    let key = |a: &Value| {
        format!(
            "{}/{}",
            a["run_id"].as_str().unwrap(),
            a["gate"].as_str().unwrap()
        )
    };
    let inbox = f
        .all_pages("/api/approvals?limit=25", "approvals", key)
        .await;
    let mut want: Vec<String> = runs.iter().map(|r| format!("{r}/review")).collect();
    want.reverse();
    assert_eq!(inbox, want);
    // Without a limit the first page holds 50 and says there is more.
    let (_, v) = f.get("/api/approvals").await;
    assert_eq!(v["approvals"].as_array().unwrap().len(), 50);
    assert!(v["next_cursor"].is_string());
    let every = f
        .all_pages("/api/approvals?all=1&limit=7", "approvals", key)
        .await;
    assert_eq!(every, want);
    let (s, _) = f.get("/api/approvals?cursor=%21%21").await;
    assert_eq!(s, 400);
    f.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_audit_trail_pages_newest_first() {
    let f = Fixture::new().await;
    let wf = gated();
    for _ in 0..30 {
        let run = f.engine.start(&wf, json!(1)).await.unwrap().id;
        f.engine
            .approvals()
            .decide(
                &run,
                "review",
                &Approver::new("alice"),
                miyabi::approval::Decision::approve(),
            )
            .await
            .unwrap();
    }
    let ids = f
        .all_pages("/api/audit?limit=11", "audit", |r| r["id"].to_string())
        .await;
    let ids: Vec<i64> = ids.iter().map(|i| i.parse().unwrap()).collect();
    let total = f
        .engine
        .approvals()
        .audit(&miyabi::approval::AuditFilter::default())
        .unwrap()
        .len();
    assert_eq!(ids.len(), total);
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    let (_, v) = f.get("/api/audit?order=oldest&limit=3").await;
    let first: Vec<i64> = v["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(first, [1, 2, 3]);
    let (s, _) = f.get("/api/audit?order=sideways").await;
    assert_eq!(s, 422);
    f.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn runs_are_found_by_id_and_by_input_or_output_text_within_a_time_range() {
    let f = Fixture::new().await;
    let wf = echo();
    let mut ids = Vec::new();
    for word in ["apple", "Banana split", "cherry", "banana bread", "date"] {
        ids.push(
            f.engine
                .start(&wf, json!({ "text": word }))
                .await
                .unwrap()
                .id,
        );
    }
    let found = |v: &Value| -> Vec<String> {
        v["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect()
    };
    // By id, and by an id prefix.
    let (s, v) = f.get(&format!("/api/runs?q={}", ids[2])).await;
    assert_eq!(s, 200);
    assert_eq!(found(&v), [ids[2].clone()]);
    // By text in the input (case-insensitive), newest first.
    let (_, v) = f.get("/api/runs?q=banana").await;
    assert_eq!(found(&v), [ids[3].clone(), ids[1].clone()]);
    // By text only in the output.
    let (_, v) = f.get("/api/runs?q=twice&limit=2").await;
    assert_eq!(found(&v), [ids[4].clone(), ids[3].clone()]);
    let rest = f
        .all_pages("/api/runs?q=twice&limit=2", "runs", |r| {
            r["id"].as_str().unwrap().to_string()
        })
        .await;
    let mut all = ids.clone();
    all.reverse();
    assert_eq!(rest, all);
    let (_, v) = f.get("/api/runs?q=nothing-like-this").await;
    assert!(found(&v).is_empty());
    // A time range: RFC 3339 or ms.
    let r2 = f.engine.get(&ids[2]).await.unwrap().unwrap();
    let (_, v) = f.get(&format!("/api/runs?from={}", r2.created_at)).await;
    assert!(found(&v).contains(&ids[2]));
    assert!(
        !found(&v).contains(&ids[0])
            || r2.created_at == f.engine.get(&ids[0]).await.unwrap().unwrap().created_at
    );
    let (_, v) = f.get("/api/runs?to=2000-01-01T00:00:00Z").await;
    assert!(found(&v).is_empty());
    let (_, v) = f.get("/api/runs?from=2000-01-01T00:00:00Z&q=apple").await;
    assert_eq!(found(&v), [ids[0].clone()]);
    let (s, v) = f.get("/api/runs?from=yesterday").await;
    assert_eq!(s, 422, "{v}");
    f.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn workflow_stats_and_reruns() {
    let f = Fixture::new().await;
    let wf = Workflow::new("flaky")
        .step(
            "work",
            step_fn(|_c: StepContext, v: Value| async move {
                if v["fail"] == json!(true) {
                    return Err(miyabi::StepError::fatal("asked to fail"));
                }
                Ok(v)
            }),
        )
        .commit()
        .unwrap();
    f.engine.register(&wf);
    let mut last = String::new();
    for i in 0..4 {
        last = f
            .engine
            .start(&wf, json!({ "fail": i == 3, "n": i }))
            .await
            .unwrap()
            .id;
    }
    let (s, v) = f.get("/api/workflows/flaky/stats").await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["runs"], 4);
    assert_eq!(v["by_status"]["succeeded"], 3);
    assert_eq!(v["by_status"]["failed"], 1);
    assert_eq!(v["success_rate"], json!(0.75));
    assert!(v["p50_ms"].as_i64().unwrap() >= 0);
    assert!(v["p95_ms"].as_i64().unwrap() >= v["p50_ms"].as_i64().unwrap());
    assert_eq!(v["recent"][0]["id"], json!(last));
    let (s, _) = f.get("/api/workflows/nope/stats").await;
    assert_eq!(s, 404);
    // Rerun the failed run with the same input (fails again), then with an edited one.
    let post = |path: String, body: Value| {
        let http = f.http.clone();
        let url = format!("{}{path}", f.base);
        async move {
            let r = http
                .post(url)
                .bearer_auth(TOKEN)
                .json(&body)
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap())
        }
    };
    let (s, v) = post(format!("/api/runs/{last}/rerun"), json!({})).await;
    assert_eq!(s, 202, "{v}");
    let again = f.engine.wait(v["id"].as_str().unwrap()).await.unwrap();
    assert_eq!(again.status.as_str(), "failed");
    assert_eq!(again.input, json!({ "fail": true, "n": 3 }));
    let (s, v) = post(
        format!("/api/runs/{last}/rerun"),
        json!({ "input": { "fail": false, "n": 3 } }),
    )
    .await;
    assert_eq!(s, 202, "{v}");
    let fixed = f.engine.wait(v["id"].as_str().unwrap()).await.unwrap();
    assert_eq!(fixed.status.as_str(), "succeeded");
    let (s, _) = post("/api/runs/nope/rerun".into(), json!({})).await;
    assert_eq!(s, 404);
    f.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_failed_run_is_retried_from_its_failed_step_through_the_api() {
    let f = Fixture::new().await;
    let broken = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let prepared = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (b, p) = (broken.clone(), prepared.clone());
    let wf = Workflow::new("deploy")
        .step(
            "build",
            step_fn(move |_c: StepContext, v: Value| {
                let p = p.clone();
                async move {
                    p.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Ok(v)
                }
            }),
        )
        .step(
            "push",
            step_fn(move |_c: StepContext, v: Value| {
                let b = b.clone();
                async move {
                    if b.load(std::sync::atomic::Ordering::SeqCst) {
                        return Err(miyabi::StepError::fatal("registry unreachable"));
                    }
                    Ok(json!({ "pushed": v }))
                }
            }),
        )
        .commit()
        .unwrap();
    f.engine.register(&wf);
    let run = f.engine.start(&wf, json!("v1")).await.unwrap();
    assert_eq!(run.status.as_str(), "failed");
    let post = |path: String| {
        let http = f.http.clone();
        let url = format!("{}{path}", f.base);
        async move {
            let r = http.post(url).bearer_auth(TOKEN).send().await.unwrap();
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.unwrap())
        }
    };
    broken.store(false, std::sync::atomic::Ordering::SeqCst);
    let (s, v) = post(format!("/api/runs/{}/retry", run.id)).await;
    assert_eq!(s, 202, "{v}");
    assert_eq!(v["id"], json!(run.id));
    let done = f.engine.wait(&run.id).await.unwrap();
    assert_eq!(done.status.as_str(), "succeeded");
    assert_eq!(done.output, Some(json!({ "pushed": "v1" })));
    assert_eq!(prepared.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The run's event stream (server-sent events; it ends, the run being finished).
    let sse = f
        .http
        .get(format!("{}/api/runs/{}/events", f.base, run.id))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let retried = sse.find("run-retried").expect(&sse);
    assert!(sse[..retried].contains("step-failed"), "{sse}");
    assert!(sse[retried..].contains("run-finished"), "{sse}");
    // `miyabi::web::follow_events` (the app's own SSE routes) goes past the first ending too.
    let followed: Vec<String> = {
        use futures::StreamExt;
        miyabi::web::follow_events(&f.engine, &run.id, 1)
            .map(|e| e.unwrap().type_name().to_string())
            .collect()
            .await
    };
    let at = followed.iter().position(|t| t == "run-retried").unwrap();
    assert_eq!(followed[at - 1], "run-finished", "{followed:?}");
    assert_eq!(followed.last().map(String::as_str), Some("run-finished"));
    // A succeeded run is not retried: 409 naming its status and what to do instead.
    let (s, v) = post(format!("/api/runs/{}/retry", run.id)).await;
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"]["code"], "CONFLICT", "{v}");
    let msg = v["error"]["message"].as_str().unwrap();
    assert!(msg.contains("succeeded") && msg.contains("rerun"), "{msg}");
    let (s, _) = post("/api/runs/nope/retry".into()).await;
    assert_eq!(s, 404);
    // The retry is in the audit trail with who did it.
    let (s, v) = f.get(&format!("/api/audit?run={}", run.id)).await;
    assert_eq!(s, 200, "{v}");
    assert!(v.to_string().contains("run.retry"), "{v}");
    f.server.shutdown().await.unwrap();
}
