//! Several worker processes (core/examples/pg_worker.rs) on one Postgres store: chaos (SIGKILL
//! and restart), a zombie (SIGSTOP past its lease, SIGCONT after another worker finished its
//! runs), timers/deadlines with three workers, and concurrency limits (a workflow's and a
//! global one) held across three workers. Needs `MIYABI_TEST_POSTGRES_URL`; without it
//! each test prints why it skips. `MIYABI_CHAOS_RUNS` sets the chaos test's run count (default
//! 1,000).
//!
//! The workers are `target/<profile>/examples/pg_worker`: `cargo test` builds it with the
//! examples, but `cargo test --test postgres_workers` alone does not rebuild it, so after a
//! change run `cargo build -p miyabi --features postgres --example pg_worker` first.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The tests of this file run one at a time: each starts several worker processes, and on a
/// small machine running them together would starve the workers' lease heartbeats.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn url() -> Option<String> {
    match std::env::var("MIYABI_TEST_POSTGRES_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            eprintln!("skipped: MIYABI_TEST_POSTGRES_URL not set");
            None
        }
    }
}

/// The worker program, built by `cargo test` with the examples (built here if it is missing).
fn worker_bin() -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let bin = dir.join("examples").join("pg_worker");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "-p",
                "miyabi",
                "--example",
                "pg_worker",
                "--features",
                "postgres",
            ])
            .status()
            .unwrap();
        assert!(status.success(), "building the pg_worker example failed");
    }
    bin
}

fn client(url: &str) -> postgres::Client {
    postgres::Client::connect(url, postgres::NoTls).unwrap()
}

/// A fresh schema for one test.
fn fresh_schema(url: &str, test: &str) -> String {
    let name = format!("w{}_{test}", std::process::id());
    client(url)
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
        .unwrap();
    name
}

struct Worker {
    child: Child,
    owner: String,
    stderr: Arc<Mutex<Vec<String>>>,
}

impl Worker {
    fn start(url: &str, schema: &str, extra: &[&str]) -> Worker {
        let mut child = Command::new(worker_bin())
            .args(["--url", url, "--schema", schema])
            .args(extra)
            .arg("work")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let owner = line
            .trim()
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("worker said {line:?}"))
            .to_string();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&stderr);
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        Worker {
            child,
            owner,
            stderr,
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    fn lines_with(&self, needle: &str) -> usize {
        self.stderr
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn enqueue(url: &str, schema: &str, args: &[&str]) {
    let out = Command::new(worker_bin())
        .args(["--url", url, "--schema", schema])
        .args(args)
        .arg("enqueue")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "enqueue failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn count(c: &mut postgres::Client, sql: &str) -> i64 {
    c.query_one(sql, &[]).unwrap().get(0)
}

/// Waits (re-reading the database, which the workers change) until `done` holds; a generous
/// guard against a hang reports the state instead of waiting for ever.
fn wait_until(what: &str, mut done: impl FnMut() -> bool, report: impl Fn() -> String) {
    let guard = Instant::now() + Duration::from_secs(600);
    while !done() {
        assert!(
            Instant::now() < guard,
            "hung waiting for {what}: {}",
            report()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[test]
fn chaos_sigkilled_workers_lose_no_run_and_repeat_no_effect() {
    let Some(url) = url() else { return };
    let _serial = serial();
    let runs: i64 = std::env::var("MIYABI_CHAOS_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let steps = 5i64;
    let schema = fresh_schema(&url, "chaos");
    let worker_args = [
        "--lease-ms",
        "2000",
        "--poll-ms",
        "300",
        "--max-active",
        "64",
        "--steps",
        "5",
        "--step-ms",
        "10",
    ];
    // The first worker creates the schema before runs are enqueued.
    let mut workers: Vec<Worker> = vec![Worker::start(&url, &schema, &worker_args)];
    enqueue(
        &url,
        &schema,
        &[
            "--workflow",
            "chain",
            "--runs",
            &runs.to_string(),
            "--steps",
            "5",
        ],
    );
    for _ in 0..3 {
        workers.push(Worker::start(&url, &schema, &worker_args));
    }
    let mut db = client(&url);
    db.batch_execute(&format!("SET search_path TO \"{schema}\""))
        .unwrap();
    let started = Instant::now();
    let mut kills: Vec<(String, Instant, Option<Duration>)> = Vec::new();
    let mut next_kill = Instant::now() + Duration::from_secs(2);
    let mut rng = fastrand::Rng::with_seed(17);
    let guard = Instant::now() + Duration::from_secs(900);
    loop {
        let left = count(
            &mut db,
            "SELECT count(*) FROM runs WHERE status NOT IN ('succeeded', 'failed', 'cancelled')",
        );
        // Takeovers: a killed worker's runs all have another owner (or finished).
        for (owner, at, took) in kills.iter_mut().filter(|k| k.2.is_none()) {
            let held = db
                .query_one(
                    "SELECT count(*) FROM runs WHERE owner = $1 AND status = 'running'",
                    &[owner],
                )
                .unwrap()
                .get::<_, i64>(0);
            if held == 0 {
                *took = Some(at.elapsed());
            }
        }
        if left == 0 && kills.iter().all(|k| k.2.is_some()) {
            break;
        }
        assert!(
            Instant::now() < guard,
            "hung: {left} runs left, workers said: {:?}",
            workers
                .iter()
                .flat_map(|w| w.stderr.lock().unwrap().clone())
                .take(20)
                .collect::<Vec<_>>()
        );
        if left > 0 && Instant::now() >= next_kill {
            let i = rng.usize(..workers.len());
            let victim = workers.remove(i);
            let held = db
                .query_one(
                    "SELECT count(*) FROM runs WHERE owner = $1 AND status = 'running'",
                    &[&victim.owner],
                )
                .unwrap()
                .get::<_, i64>(0);
            let owner = victim.owner.clone();
            drop(victim); // SIGKILL, reaped
            if held > 0 {
                kills.push((owner, Instant::now(), None));
            }
            workers.push(Worker::start(&url, &schema, &worker_args));
            next_kill = Instant::now() + Duration::from_secs(2);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();

    // Every run completed with every step's output.
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM runs WHERE status = 'succeeded'"
        ),
        runs
    );
    assert_eq!(
        count(
            &mut db,
            &format!("SELECT count(*) FROM runs WHERE output::jsonb->>'n' = '{steps}'")
        ),
        runs
    );
    // Each step's record and output event committed exactly once.
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM steps WHERE status = 'succeeded'"
        ),
        runs * steps
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM (SELECT run_id, body::jsonb->>'path' FROM events
             WHERE body::jsonb->>'type' = 'step-output' GROUP BY 1, 2 HAVING count(*) > 1) d"
        ),
        0,
        "a step output was committed twice"
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM events WHERE body::jsonb->>'type' = 'step-output'"
        ),
        runs * steps
    );
    // One keyed effect per step: every key present once (the key is the primary key, so a
    // duplicate insert would have failed a step), and nothing else.
    assert_eq!(count(&mut db, "SELECT count(*) FROM ledger"), runs * steps);
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM steps s JOIN ledger l ON l.key = s.run_id || '/' || s.path"
        ),
        runs * steps
    );
    let executions = count(&mut db, "SELECT count(*) FROM executions");
    let mut took: Vec<Duration> = kills.iter().filter_map(|k| k.2).collect();
    took.sort();
    eprintln!(
        "chaos: {runs} runs x {steps} steps in {:.1}s with {} SIGKILLs; {} step executions \
         ({} re-executed after a takeover, absorbed by the ledger's key); takeover p50 {} ms, \
         p99 {} ms (lease 2000 ms, poll 300 ms)",
        elapsed.as_secs_f64(),
        kills.len(),
        executions,
        executions - runs * steps,
        percentile(&took, 0.5).as_millis(),
        percentile(&took, 0.99).as_millis()
    );
}

#[test]
fn a_zombie_worker_that_wakes_after_its_lease_writes_nothing() {
    let Some(url) = url() else { return };
    let _serial = serial();
    let schema = fresh_schema(&url, "zombie");
    let args = [
        "--lease-ms",
        "1000",
        "--poll-ms",
        "200",
        "--max-active",
        "100",
        "--steps",
        "3",
        "--step-ms",
        "400",
    ];
    let zombie = Worker::start(&url, &schema, &args);
    let mut db = client(&url);
    db.batch_execute(&format!("SET search_path TO \"{schema}\""))
        .unwrap();
    enqueue(
        &url,
        &schema,
        &[
            "--workflow",
            "chain",
            "--runs",
            "20",
            "--steps",
            "3",
            "--step-ms",
            "400",
        ],
    );
    // The zombie takes every run (the only worker), and has a first step in flight.
    wait_until(
        "the first worker to claim the runs",
        || {
            count(
                &mut client(&url),
                &format!(
                    "SELECT count(*) FROM \"{schema}\".runs WHERE owner = '{}'",
                    zombie.owner
                ),
            ) == 20
        },
        String::new,
    );
    zombie.signal("-STOP");
    let rescuer = Worker::start(&url, &schema, &args);
    wait_until(
        "the second worker to finish the runs",
        || {
            count(
                &mut client(&url),
                &format!("SELECT count(*) FROM \"{schema}\".runs WHERE status = 'succeeded'"),
            ) == 20
        },
        || rescuer.stderr.lock().unwrap().join("\n"),
    );
    let snapshot = |db: &mut postgres::Client| {
        (
            count(db, "SELECT count(*) FROM steps"),
            count(db, "SELECT count(*) FROM events"),
            count(db, "SELECT count(*) FROM ledger"),
            count(
                db,
                "SELECT count(*) FROM runs WHERE status = 'succeeded' AND owner IS NULL",
            ),
            db.query("SELECT id, output, updated_at FROM runs ORDER BY id", &[])
                .unwrap()
                .iter()
                .map(|r| {
                    format!(
                        "{}:{:?}:{}",
                        r.get::<_, String>(0),
                        r.get::<_, Option<String>>(1),
                        r.get::<_, i64>(2)
                    )
                })
                .collect::<Vec<_>>(),
        )
    };
    let before = snapshot(&mut db);
    assert_eq!(before.3, 20);
    drop(rescuer);
    // The zombie wakes: each of its 20 runs' next commit fails and it drops them: refused
    // because another engine owns the run now, or, for a commit it had begun when it was
    // stopped, because the server ended that session meanwhile (idle in a transaction).
    zombie.signal("-CONT");
    wait_until(
        "the zombie to give up its runs",
        || zombie.lines_with("recovered run stopped") >= 20,
        || zombie.stderr.lock().unwrap().join("\n"),
    );
    assert!(
        zombie.lines_with("owned by another engine") >= 1,
        "{}",
        zombie.stderr.lock().unwrap().join("\n")
    );
    let after = snapshot(&mut db);
    assert_eq!(before, after, "the zombie changed the store");
    // One keyed effect per step: the zombie's steps that finished after it woke found their
    // keys taken by the rescuer.
    assert_eq!(count(&mut db, "SELECT count(*) FROM ledger"), 60);
}

#[test]
fn timers_and_deadlines_fire_once_across_three_workers() {
    let Some(url) = url() else { return };
    let _serial = serial();
    let schema = fresh_schema(&url, "timers");
    // A lease long enough that no run changes hands on a loaded machine: then a step after a
    // timer that ran twice would be the timer firing twice.
    let args = [
        "--lease-ms",
        "10000",
        "--poll-ms",
        "200",
        "--sleep-ms",
        "1500",
    ];
    let workers: Vec<Worker> = (0..3)
        .map(|_| Worker::start(&url, &schema, &args))
        .collect();
    enqueue(
        &url,
        &schema,
        &["--workflow", "timers", "--runs", "30", "--sleep-ms", "1500"],
    );
    enqueue(
        &url,
        &schema,
        &[
            "--workflow",
            "deadline",
            "--runs",
            "10",
            "--sleep-ms",
            "1500",
        ],
    );
    let mut db = client(&url);
    db.batch_execute(&format!("SET search_path TO \"{schema}\""))
        .unwrap();
    wait_until(
        "every run to finish",
        || {
            count(
                &mut client(&url),
                &format!("SELECT count(*) FROM \"{schema}\".runs WHERE status = 'succeeded'"),
            ) == 40
        },
        || {
            workers
                .iter()
                .flat_map(|w| w.stderr.lock().unwrap().clone())
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
    // Each sleep's next step ran once, each deadline was applied once and its outcome
    // reached the run once.
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM fired WHERE what = 'timer'"),
        30
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(DISTINCT run_id) FROM fired WHERE what = 'timer'"
        ),
        30
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM fired WHERE what = 'deadline'"
        ),
        10
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(DISTINCT run_id) FROM fired WHERE what = 'deadline'"
        ),
        10
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM fired WHERE what = 'deadline' AND data::jsonb->>'approved' = 'false'"
        ),
        10
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM audit WHERE doc::jsonb->>'action' = 'timed-out'"
        ),
        10
    );
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM gates WHERE status = 'rejected' AND delivered"
        ),
        10
    );
    // The timers were spread over the workers (each fired by the run's owner).
    let firing_workers = count(&mut db, "SELECT count(DISTINCT worker) FROM fired");
    eprintln!("timers: fired by {firing_workers} of 3 workers");
}

/// The most executions of the `span` step that overlapped (by the database's clock), among
/// those of `workflow` (all workflows when `None`).
fn most_at_once(db: &mut postgres::Client, workflow: Option<&str>) -> i64 {
    db.query_one(
        "SELECT COALESCE(max(n), 0) FROM (
           SELECT (SELECT count(*) FROM spans o
                   WHERE ($1::text IS NULL OR o.workflow = $1)
                     AND o.started <= s.started AND (o.ended IS NULL OR o.ended > s.started)) AS n
           FROM spans s WHERE $1::text IS NULL OR s.workflow = $1) x",
        &[&workflow],
    )
    .unwrap()
    .get(0)
}

/// Starts three workers with `limits`, enqueues `runs` (workflow, count), waits until every
/// run has succeeded and returns a connection on the schema.
fn run_limited(url: &str, test: &str, limits: &[&str], runs: &[(&str, usize)]) -> postgres::Client {
    let schema = fresh_schema(url, test);
    // A lease long enough that no run changes hands on a loaded machine (a run taken over
    // while its step still runs would be two executions at once, legitimately).
    let mut args = vec!["--lease-ms", "10000", "--poll-ms", "200", "--step-ms", "40"];
    args.extend_from_slice(limits);
    let workers: Vec<Worker> = (0..3).map(|_| Worker::start(url, &schema, &args)).collect();
    let total: usize = runs.iter().map(|r| r.1).sum();
    for (workflow, n) in runs {
        enqueue(
            url,
            &schema,
            &["--workflow", workflow, "--runs", &n.to_string()],
        );
    }
    wait_until(
        "every run to finish",
        || {
            count(
                &mut client(url),
                &format!("SELECT count(*) FROM \"{schema}\".runs WHERE status = 'succeeded'"),
            ) == total as i64
        },
        || {
            workers
                .iter()
                .flat_map(|w| w.stderr.lock().unwrap().clone())
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
    drop(workers);
    let mut db = client(url);
    db.batch_execute(&format!("SET search_path TO \"{schema}\""))
        .unwrap();
    // Every run's step executed once, to its end.
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM spans WHERE ended IS NOT NULL"
        ),
        total as i64
    );
    assert_eq!(
        count(&mut db, "SELECT count(DISTINCT run_id) FROM spans"),
        total as i64
    );
    db
}

#[test]
fn a_workflow_limit_holds_across_three_workers() {
    let Some(url) = url() else { return };
    let _serial = serial();
    let mut db = run_limited(
        &url,
        "wf_limit",
        &["--workflow-limit", "span=2"],
        &[("span", 40)],
    );
    let most = most_at_once(&mut db, Some("span"));
    let workers = count(&mut db, "SELECT count(DISTINCT worker) FROM spans");
    eprintln!("workflow limit 2: at most {most} runs at once, executed by {workers} of 3 workers");
    assert!(
        most <= 2,
        "{most} runs of `span` executed at once (limit 2)"
    );
}

#[test]
fn a_global_limit_holds_across_three_workers() {
    let Some(url) = url() else { return };
    let _serial = serial();
    let mut db = run_limited(
        &url,
        "global_limit",
        &["--global-limit", "3", "--workflow-limit", "span2=1"],
        &[("span", 20), ("span2", 20)],
    );
    let (all, span2) = (
        most_at_once(&mut db, None),
        most_at_once(&mut db, Some("span2")),
    );
    eprintln!("global limit 3 (span2 at most 1): at most {all} runs at once, {span2} of span2");
    assert!(all <= 3, "{all} runs executed at once (global limit 3)");
    assert!(
        span2 <= 1,
        "{span2} runs of `span2` executed at once (limit 1)"
    );
}
