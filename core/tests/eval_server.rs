//! The Evals API of the server over real durable eval runs on a SQLite file, on loopback:
//! `GET /api/evals` (suites, a page of eval runs with their results' summaries, cursors,
//! scope) and `GET /api/evals/compare` (the same comparison as `Evaluator::compare` of the
//! stored results, and its refusals, each naming the run).
#![cfg(all(feature = "server", feature = "eval"))]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use miyabi::approval::Approver;
use miyabi::eval::metrics::{Exact, Levenshtein};
use miyabi::eval::{Case, Dataset, DurableEval, Evaluator, Target};
use miyabi::server::{Identity, Role, ServerConfig, ServerHandle, serve};
use miyabi::{Engine, StepContext, StepError, Workflow, step_fn};
use serde_json::{Value, json};

const TOKEN: &str = "alice-token-0123456789abcdef";
const SCOPED: &str = "tess-token-0123456789abcdef";

struct Fixture {
    _dir: tempfile::TempDir,
    _server: ServerHandle,
    base: String,
    http: reqwest::Client,
    engine: Engine,
    support: DurableEval,
    /// The support runs, oldest first.
    runs: Vec<String>,
    triage: String,
    slow: String,
    plain: String,
}

fn dataset() -> Dataset {
    Dataset::from_cases(
        "questions",
        (1..=4).map(|i| Case::new(format!("c{i}"), json!(i)).expected(format!("answer {i}"))),
    )
    .unwrap()
}

/// Waits until the clock has passed the creation time of `run`, so the next run is newer.
async fn after(engine: &Engine, run: &str) {
    let t = engine.store().run(run).unwrap().unwrap().created_at;
    loop {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        if now > t {
            return;
        }
        tokio::task::yield_now().await;
    }
}

impl Fixture {
    async fn new() -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::sqlite(dir.path().join("runs.db")).unwrap();
        // Version n answers the first n + 1 cases right; version 3 gets c2 wrong again.
        let version = Arc::new(AtomicUsize::new(0));
        let v = Arc::clone(&version);
        let target: Arc<dyn Target> = Arc::new(move |input: Value| {
            let n = v.load(Ordering::SeqCst);
            async move {
                let i = input.as_u64().unwrap() as usize;
                let right = if n == 3 { i != 2 } else { i <= n + 1 };
                Ok::<_, String>(json!(if right {
                    format!("answer {i}")
                } else {
                    "?".into()
                }))
            }
        });
        let support = DurableEval::new(
            &engine,
            Evaluator::new()
                .name("support")
                .add_metric("exact", Exact::new())
                .add_metric("similarity", Levenshtein::new()),
            target,
        )
        .unwrap();
        let mut runs: Vec<String> = Vec::new();
        for n in [0, 2, 3] {
            if let Some(last) = runs.last() {
                after(&engine, last).await;
            }
            version.store(n, Ordering::SeqCst);
            let id = support.spawn(&dataset()).unwrap();
            support.wait(&id).await.unwrap();
            runs.push(id);
        }
        after(&engine, runs.last().unwrap()).await;
        let triage = DurableEval::new(
            &engine,
            Evaluator::new()
                .name("triage")
                .add_metric("exact", Exact::new()),
            Arc::new(|i: Value| async move { Ok::<_, String>(json!(format!("answer {i}"))) }),
        )
        .unwrap();
        let triage_run = triage.spawn(&dataset()).unwrap();
        triage.wait(&triage_run).await.unwrap();
        after(&engine, &triage_run).await;
        let slow = DurableEval::new(
            &engine,
            Evaluator::new()
                .name("slow")
                .add_metric("exact", Exact::new()),
            Arc::new(|_i: Value| async move {
                std::future::pending::<()>().await;
                Ok::<_, String>(Value::Null)
            }),
        )
        .unwrap();
        let slow_run = slow.spawn(&dataset()).unwrap();
        after(&engine, &slow_run).await;
        let plain = Workflow::new("plain")
            .step(
                "one",
                step_fn(|_c: StepContext, v: Value| async move { Ok::<_, StepError>(v) }),
            )
            .commit()
            .unwrap();
        engine.register(&plain);
        let plain_run = engine.start(&plain, json!({"x": 1})).await.unwrap().id;
        let config = ServerConfig::new()
            .eval_comparer(std::sync::Arc::new(miyabi::eval::Comparer))
            .token(TOKEN, Approver::new("alice"))
            .identity(
                SCOPED,
                Identity::new("tess")
                    .roles([Role::Viewer])
                    .workflows(["eval.triage"]),
            );
        let server = serve(engine.clone(), config, Some("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr());
        Fixture {
            _dir: dir,
            _server: server,
            base,
            http: reqwest::Client::new(),
            engine,
            support,
            runs,
            triage: triage_run,
            slow: slow_run,
            plain: plain_run,
        }
    }

    async fn get_as(&self, token: &str, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.get_as(TOKEN, path).await
    }
}

fn ids(page: &Value) -> Vec<String> {
    page["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn eval_runs_are_listed_with_their_results_newest_first_in_pages() {
    let f = Fixture::new().await;
    let (s, page) = f.get("/api/evals?suite=support").await;
    assert_eq!(s, 200, "{page}");
    let mut newest_first = f.runs.clone();
    newest_first.reverse();
    assert_eq!(ids(&page), newest_first);
    for r in page["runs"].as_array().unwrap() {
        let id = r["id"].as_str().unwrap();
        let stored = f.support.results(id).await.unwrap().unwrap();
        assert_eq!(r["suite"], "support");
        assert_eq!(r["status"], "succeeded");
        let results = &r["results"];
        assert!(results.get("samples").is_none(), "no samples in a list");
        assert_eq!(results["schema"], "miyabi.eval/v1");
        assert_eq!(results["cases"], 4);
        for m in &stored.metrics {
            let listed = results["metrics"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["name"] == m.name.as_str())
                .unwrap();
            assert_eq!(listed["mean"].as_f64(), m.mean, "{id} {}", m.name);
        }
    }
    // Means by version: 1/4, 3/4, 3/4 on exact.
    let exact = |p: &Value, i: usize| p["runs"][i]["results"]["metrics"][0]["mean"].as_f64();
    assert_eq!(exact(&page, 2), Some(0.25));
    assert_eq!(exact(&page, 1), Some(0.75));
    assert_eq!(exact(&page, 0), Some(0.75));

    // Suites: every suite with runs, the one with the newest run first.
    let names: Vec<&str> = page["suites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["slow", "triage", "support"]);
    assert_eq!(page["suites"][2]["runs"], 3);

    // Pages of two with the cursor.
    let (_, p1) = f.get("/api/evals?suite=support&limit=2").await;
    assert_eq!(ids(&p1), newest_first[..2]);
    let cursor = p1["next_cursor"].as_str().unwrap();
    let (_, p2) = f
        .get(&format!("/api/evals?suite=support&limit=2&cursor={cursor}"))
        .await;
    assert_eq!(ids(&p2), newest_first[2..]);
    assert!(p2["next_cursor"].is_null());

    // Every suite: eval runs only (not the plain run), newest first, across pages.
    let mut all = Vec::new();
    let mut cursor = String::new();
    loop {
        let (s, p) = f.get(&format!("/api/evals?limit=2&cursor={cursor}")).await;
        assert_eq!(s, 200, "{p}");
        all.extend(ids(&p));
        match p["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    let mut want = vec![f.slow.clone(), f.triage.clone()];
    want.extend(newest_first.iter().cloned());
    assert_eq!(all, want);
    assert!(!all.contains(&f.plain));
    // The unfinished run is listed without results.
    let (_, p) = f.get("/api/evals?suite=slow").await;
    assert_eq!(p["runs"][0]["status"], "running");
    assert!(p["runs"][0]["results"].is_null());

    // A bad cursor is refused.
    let (s, _) = f.get("/api/evals?cursor=%21%21").await;
    assert_eq!(s, 400);
}

#[tokio::test]
async fn compare_answers_the_paired_comparison_of_the_stored_results() {
    let f = Fixture::new().await;
    let (a, b) = (&f.runs[1], &f.runs[2]);
    let (s, got) = f.get(&format!("/api/evals/compare?a={a}&b={b}")).await;
    assert_eq!(s, 200, "{got}");
    let ra = f.support.results(a).await.unwrap().unwrap();
    let rb = f.support.results(b).await.unwrap().unwrap();
    let want = serde_json::to_value(Evaluator::compare(&ra, &rb).unwrap()).unwrap();
    let mut without_runs = got.clone();
    let m = without_runs.as_object_mut().unwrap();
    assert_eq!(m.remove("a_run").unwrap()["id"], a.as_str());
    assert_eq!(m.remove("b_run").unwrap()["id"], b.as_str());
    assert_eq!(without_runs, want);
    // Version 3 against version 2: c2 regressed, c4 improved; the same mean.
    let exact = &got["metrics"][0];
    assert_eq!(exact["metric"], "exact");
    assert_eq!(exact["paired"]["mean_diff"], 0.0);
    assert_eq!(exact["regressed"][0]["case_id"], "c2");
    // The first run against the last: better by 0.5 on exact.
    let (_, up) = f
        .get(&format!("/api/evals/compare?a={}&b={b}", f.runs[0]))
        .await;
    assert_eq!(up["metrics"][0]["paired"]["mean_diff"], 0.5);
}

#[tokio::test]
async fn compare_refuses_what_it_cannot_compare_naming_the_run() {
    let f = Fixture::new().await;
    let a = &f.runs[0];
    let cases = [
        (format!("a={a}&b=nope"), 404, "nope".to_string(), TOKEN),
        (format!("a={}&b={a}", f.plain), 422, f.plain.clone(), TOKEN),
        (
            format!("a={a}&b={}", f.triage),
            422,
            f.triage.clone(),
            TOKEN,
        ),
        (format!("a={a}&b={}", f.slow), 409, f.slow.clone(), TOKEN),
        (format!("a={a}"), 400, "`b`".to_string(), TOKEN),
        (format!("b={a}"), 400, "`a`".to_string(), TOKEN),
        // Out of tess's scope: not found, as for any run.
        (format!("a={}&b={a}", f.triage), 404, a.clone(), SCOPED),
    ];
    for (query, status, needle, token) in cases {
        let (s, body) = f
            .get_as(token, &format!("/api/evals/compare?{query}"))
            .await;
        assert_eq!(s, status, "{query}: {body}");
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(&needle), "{query}: {msg}");
    }
    // In her scope it works, and her list holds her suite only.
    let (s, _) = f
        .get_as(
            SCOPED,
            &format!("/api/evals/compare?a={}&b={}", f.triage, f.triage),
        )
        .await;
    assert_eq!(s, 200);
    let (_, page) = f.get_as(SCOPED, "/api/evals").await;
    assert_eq!(ids(&page), vec![f.triage.as_str()]);
    assert_eq!(page["suites"].as_array().unwrap().len(), 1);
    let (_, page) = f.get_as(SCOPED, "/api/evals?suite=support").await;
    assert!(ids(&page).is_empty());
}

#[tokio::test]
async fn a_server_without_a_comparer_lists_eval_runs_and_says_it_cannot_compare_them() {
    let f = Fixture::new().await;
    let server = serve(
        f.engine.clone(),
        ServerConfig::new().token(TOKEN, Approver::new("alice")),
        Some("127.0.0.1:0".parse().unwrap()),
    )
    .await
    .unwrap();
    let base = format!("http://{}", server.local_addr());
    let get = |path: String| {
        let http = f.http.clone();
        async move {
            let r = http.get(path).bearer_auth(TOKEN).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let (s, page) = get(format!("{base}/api/evals?suite=support")).await;
    assert_eq!(s, 200, "{page}");
    assert_eq!(ids(&page).len(), f.runs.len());
    let (s, body) = get(format!(
        "{base}/api/evals/compare?a={}&b={}",
        f.runs[0], f.runs[1]
    ))
    .await;
    assert_eq!(s, 501, "{body}");
    assert_eq!(body["error"]["code"], "UNSUPPORTED", "{body}");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(msg.contains("eval_comparer"), "{msg}");
}
