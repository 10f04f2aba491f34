//! The machine alone: no store, no runtime, no clock. A test harness plays the driver — it
//! executes the machine's actions against a scripted world, commits what the machine wrote
//! into a map keyed by path (as the store does) and keeps the time itself — so every test
//! feeds a history (records) in and checks the actions and records that come out.
//!
//! Three groups: one group per construct (live run, then a replay of its records), the golden
//! histories (`crates/engine/tests/golden/*.json`, recorded runs that must replay to the same status
//! without issuing anything), and divergence: mutated definitions and histories, and corrupt
//! records, each of which must stop the replay naming the first mismatching path.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{Action, DecisionKind, Machine, Status};
use crate::error::StepError;
use crate::store::{RecordKind, StepRecord, StepStatus};
use crate::workflow::builder::{CommittedWorkflow, Graph, Node, OnInterrupt, Workflow};
use crate::workflow::engine::evaluate;
use crate::workflow::event::EventKind;
use crate::workflow::step::{RetryPolicy, StepContext, step_fn};

/// The harness clock's start (ms since the epoch).
const T0: i64 = 1_700_000_000_000;

/// A step that is never executed here (the harness's world answers for it).
fn step() -> Node {
    step_fn(|_: StepContext, v: Value| async move { Ok(v) })
}

/// One execution of a step, as the world sees it.
struct Call<'a> {
    path: &'a str,
    input: &'a Value,
    attempt: u32,
    resume: Option<&'a Value>,
}

type World<'w> = &'w mut dyn FnMut(&Call) -> Result<Value, StepError>;

/// The default world: every step answers `{"at": path, "n": input.n + 1}`.
fn counting(c: &Call) -> Result<Value, StepError> {
    let n = c.input.get("n").and_then(Value::as_i64).unwrap_or(0);
    Ok(json!({ "at": c.path, "n": n + 1 }))
}

/// The driver of one run: a machine, the records committed so far, the actions in flight.
struct Harness {
    graph: Arc<Graph>,
    input: Value,
    m: Machine,
    now: i64,
    /// Committed records by path (a later write to a path replaces the earlier one).
    store: BTreeMap<String, StepRecord>,
    /// Every action the machine issued, in order, as text.
    trace: Vec<String>,
    events: Vec<EventKind>,
    /// Actions issued and not yet executed.
    pending: Vec<Action>,
    /// Inputs the world saw, by path.
    inputs: BTreeMap<String, Value>,
}

impl Harness {
    fn fresh(wf: &CommittedWorkflow, input: Value) -> Self {
        Self::replay(wf, input, Vec::new())
    }

    /// A machine built over `records`, as a recovering or resuming engine builds it.
    fn replay(wf: &CommittedWorkflow, input: Value, records: Vec<StepRecord>) -> Self {
        let graph = Arc::clone(&wf.graph);
        let store = records
            .iter()
            .map(|r| (r.path.to_string(), r.clone()))
            .collect();
        let m = Machine::new(
            Arc::clone(&graph),
            input.clone(),
            records,
            Default::default(),
        );
        Self {
            graph,
            input,
            m,
            now: T0,
            store,
            trace: Vec::new(),
            events: Vec::new(),
            pending: Vec::new(),
            inputs: BTreeMap::new(),
        }
    }

    /// The process dies: actions in flight are lost, a new machine is built from the store.
    fn crash(&mut self) {
        self.pending.clear();
        self.m = Machine::new(
            Arc::clone(&self.graph),
            self.input.clone(),
            self.records(),
            Default::default(),
        );
    }

    /// The machine is dropped and rebuilt from the store while its actions stay in flight
    /// (the engine's always-replay mode).
    fn rebuild(&mut self) {
        let issued = self.m.take_issued();
        self.m = Machine::new(
            Arc::clone(&self.graph),
            self.input.clone(),
            self.records(),
            issued,
        );
    }

    fn records(&self) -> Vec<StepRecord> {
        self.store.values().cloned().collect()
    }

    fn record(&self, path: &str) -> &StepRecord {
        match self.store.get(path) {
            Some(r) => r,
            None => panic!("no record at `{path}`; records: {:?}", self.store.keys()),
        }
    }

    fn commit(&mut self) {
        let mut recs = Vec::new();
        self.m.drain_records(&mut recs);
        for r in recs {
            self.store.insert(r.path.to_string(), r);
        }
        self.events.extend(self.m.drain_events());
    }

    fn poll(&mut self) -> Status {
        self.now += 1;
        let st = self.m.poll(self.now);
        let mut actions = Vec::new();
        self.m.drain_actions(&mut actions);
        for a in &actions {
            self.trace.push(describe(a));
        }
        self.pending.extend(actions);
        self.commit();
        st
    }

    /// Executes every action in flight and hands its result back.
    fn act(&mut self, world: World) {
        for a in std::mem::take(&mut self.pending) {
            self.now += 1;
            match a {
                Action::Run {
                    path,
                    input,
                    attempt,
                    resume,
                    delay,
                    ..
                } => {
                    self.now += delay.as_millis() as i64;
                    self.inputs.insert(path.to_string(), input.clone());
                    let r = world(&Call {
                        path: &path,
                        input: &input,
                        attempt,
                        resume: resume.as_ref(),
                    });
                    self.m.complete(&path, r, self.now);
                }
                Action::Decide {
                    path,
                    node,
                    kind,
                    input,
                } => {
                    let r = evaluate(&self.graph, node, kind, &input, &path);
                    self.m.complete(&path, r, self.now);
                }
                Action::Sleep { path, wake_at } => {
                    self.now = self.now.max(wake_at);
                    self.m.complete(&path, Ok(Value::Null), self.now);
                }
            }
        }
    }

    /// Polls and executes until the run is no longer running.
    fn drive(&mut self, world: World) -> Status {
        for _ in 0..10_000 {
            let st = self.poll();
            if st != Status::Running {
                return st;
            }
            assert!(
                !self.pending.is_empty(),
                "running with nothing in flight; trace: {:?}",
                self.trace
            );
            self.act(world);
        }
        panic!("the run did not settle; trace: {:?}", self.trace)
    }

    /// Polls and executes until an action for `path` is issued; leaves it in flight.
    fn drive_until_issued(&mut self, world: World, path: &str) {
        for _ in 0..10_000 {
            let st = self.poll();
            if self.pending.iter().any(|a| &**a.path() == path) {
                return;
            }
            assert_eq!(st, Status::Running, "`{path}` was never issued");
            self.act(world);
        }
        panic!("`{path}` was never issued");
    }

    /// Gives resume data to a suspended path, committing its record.
    fn resume(&mut self, path: &str, data: Value) {
        self.now += 1;
        let rec = self.m.resume(path, data, self.now);
        let Some(rec) = rec else {
            panic!("`{path}` is not suspended")
        };
        self.store.insert(rec.path.to_string(), rec);
        self.commit();
    }
}

/// An action as one line of the trace.
fn describe(a: &Action) -> String {
    match a {
        Action::Run {
            path,
            attempt,
            resume,
            delay,
            ..
        } => {
            let mut s = format!("run {path}");
            if *attempt > 1 {
                s.push_str(&format!(" #{attempt} after {}ms", delay.as_millis()));
            }
            if let Some(r) = resume {
                s.push_str(&format!(" resume={r}"));
            }
            s
        }
        Action::Decide { path, kind, .. } => {
            let k = match kind {
                DecisionKind::Branch => "select",
                DecisionKind::Loop => "condition",
                DecisionKind::Map => "map",
                DecisionKind::WakeTime => "wake-at",
            };
            format!("{k} {path}")
        }
        Action::Sleep { path, wake_at } => format!("sleep {path} until T0+{}", wake_at - T0),
    }
}

fn traced(h: &Harness) -> Vec<&str> {
    h.trace.iter().map(String::as_str).collect()
}

fn paths(h: &Harness) -> Vec<&str> {
    h.store.keys().map(String::as_str).collect()
}

/// Replays `records` in a new machine: the status it reaches on its first poll, and what
/// that poll issued and wrote (a replay of a settled run must issue and write nothing).
fn replay_once(wf: &CommittedWorkflow, input: Value, records: Vec<StepRecord>) -> Harness {
    let mut h = Harness::replay(wf, input, records);
    let before = h.store.clone();
    let st = h.poll();
    h.trace.push(format!("status {st:?}"));
    assert_eq!(h.store, before, "a replay wrote records");
    h
}

/// The status a replay reaches, asserting it issued and wrote nothing.
fn replays_to(wf: &CommittedWorkflow, input: Value, records: Vec<StepRecord>) -> Status {
    let mut h = Harness::replay(wf, input, records);
    let before = h.store.clone();
    let st = h.poll();
    assert!(h.pending.is_empty(), "a replay issued {:?}", h.trace);
    assert_eq!(h.store, before, "a replay wrote records");
    assert!(h.events.is_empty(), "a replay emitted {:?}", h.events);
    st
}

/// The divergence a replay stops at: (path, detail), after checking that the poll failed
/// with a message naming the path, issued nothing and wrote nothing.
fn diverges(wf: &CommittedWorkflow, input: Value, records: Vec<StepRecord>) -> (String, String) {
    let mut h = Harness::replay(wf, input, records);
    let before = h.store.clone();
    let st = h.poll();
    let Some((path, detail)) = h.m.divergence().cloned() else {
        panic!("no divergence; status {st:?}, trace {:?}", h.trace)
    };
    let Status::Failed(msg) = st else {
        panic!("diverged, but the status is {st:?}")
    };
    assert!(
        msg.contains(&format!(
            "replay diverged from the stored records at `{path}`"
        )),
        "{msg}"
    );
    assert!(
        h.pending.is_empty(),
        "a diverged replay issued {:?}",
        h.trace
    );
    assert_eq!(h.store, before, "a diverged replay wrote records");
    assert!(
        h.events.is_empty(),
        "a diverged replay emitted {:?}",
        h.events
    );
    (path, detail)
}

fn succeeded(st: Status) -> Value {
    match st {
        Status::Succeeded(v) => v,
        other => panic!("not succeeded: {other:?}"),
    }
}

fn failed(st: Status) -> String {
    match st {
        Status::Failed(e) => e,
        other => panic!("not failed: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Constructs
// ---------------------------------------------------------------------------------------

fn three_steps() -> CommittedWorkflow {
    Workflow::new("steps")
        .step("a", step())
        .then("b", step())
        .then("c", step())
        .commit()
        .unwrap()
}

#[test]
fn a_sequence_runs_its_steps_in_order_each_on_the_previous_output() {
    let wf = three_steps();
    let mut h = Harness::fresh(&wf, json!({"n": 10}));
    // The first poll issues the first step only.
    assert_eq!(h.poll(), Status::Running);
    assert_eq!(traced(&h), ["run a"]);
    assert!(
        h.store.is_empty(),
        "a step is recorded only when it completes"
    );
    let out = succeeded(h.drive(&mut counting));
    assert_eq!(out, json!({"at": "c", "n": 13}));
    assert_eq!(traced(&h), ["run a", "run b", "run c"]);
    assert_eq!(h.inputs["b"], json!({"at": "a", "n": 11}));
    assert_eq!(paths(&h), ["a", "b", "c"]);
    for p in ["a", "b", "c"] {
        let r = h.record(p);
        assert_eq!(
            (r.kind, r.status, r.attempt),
            (RecordKind::Step, StepStatus::Succeeded, 1)
        );
    }
    // Started and output events, in order.
    let kinds: Vec<String> = h
        .events
        .iter()
        .map(|e| match e {
            EventKind::StepStarted { path, .. } => format!("started {path}"),
            EventKind::StepOutput { path, .. } => format!("output {path}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "started a",
            "output a",
            "started b",
            "output b",
            "started c",
            "output c"
        ]
    );
    // Replay: the same output from the records, nothing issued.
    assert_eq!(
        replays_to(&wf, json!({"n": 10}), h.records()),
        Status::Succeeded(out)
    );
}

#[test]
fn a_crash_between_steps_resumes_after_the_last_committed_step() {
    let wf = three_steps();
    let mut h = Harness::fresh(&wf, json!({"n": 0}));
    h.drive_until_issued(&mut counting, "c");
    h.crash();
    // Only `c`, whose result was never committed, runs again.
    h.trace.clear();
    let out = succeeded(h.drive(&mut counting));
    assert_eq!(traced(&h), ["run c"]);
    assert_eq!(h.inputs["c"], json!({"at": "b", "n": 2}));
    assert_eq!(out, json!({"at": "c", "n": 3}));
}

#[test]
fn a_rebuilt_machine_keeps_the_actions_in_flight_and_issues_nothing_twice() {
    let wf = Workflow::new("w")
        .step("a", step())
        .sleep("nap", Duration::from_secs(5))
        .then("b", step())
        .commit()
        .unwrap();
    let mut h = Harness::fresh(&wf, json!({}));
    h.drive_until_issued(&mut counting, "nap");
    h.rebuild();
    h.trace.clear();
    // The sleep is in flight (handed over), its running record is not a divergence.
    assert_eq!(h.poll(), Status::Running);
    assert!(h.trace.is_empty(), "{:?}", h.trace);
    h.act(&mut counting);
    let out = succeeded(h.drive(&mut counting));
    assert_eq!(traced(&h), ["run b"]);
    assert_eq!(out["at"], "b");
}

#[test]
fn parallel_children_are_issued_together_and_their_outputs_keyed_by_id() {
    let wf = Workflow::new("w")
        .step("a", step())
        .parallel([("p", step()), ("q", step())])
        .then("z", step())
        .commit()
        .unwrap();
    let mut h = Harness::fresh(&wf, json!({}));
    h.poll();
    h.act(&mut counting);
    assert_eq!(h.poll(), Status::Running);
    assert_eq!(traced(&h), ["run a", "run p", "run q"]);
    let out = succeeded(h.drive(&mut counting));
    assert_eq!(
        h.inputs["z"],
        json!({"p": {"at": "p", "n": 2}, "q": {"at": "q", "n": 2}})
    );
    assert_eq!(out["at"], "z");
    assert_eq!(paths(&h), ["a", "p", "q", "z"]);
    assert_eq!(
        replays_to(&wf, json!({}), h.records()),
        Status::Succeeded(out)
    );
}

#[test]
fn a_failed_parallel_child_fails_the_run_and_parallel_all_collects_it() {
    let mut boom = |c: &Call| {
        if c.path == "q" {
            Err(StepError::fatal("no"))
        } else {
            counting(c)
        }
    };
    let fail_fast = Workflow::new("w")
        .parallel([("p", step()), ("q", step())])
        .then("z", step())
        .commit()
        .unwrap();
    let mut h = Harness::fresh(&fail_fast, json!({}));
    assert_eq!(failed(h.drive(&mut boom)), "step `q` failed: no");
    assert_eq!(h.record("q").status, StepStatus::Failed);
    assert!(!h.store.contains_key("z"));
    // The failure replays as the same failure, issuing nothing.
    assert_eq!(
        replays_to(&fail_fast, json!({}), h.records()),
        Status::Failed("step `q` failed: no".into())
    );

    let all = Workflow::new("w")
        .parallel_all([("p", step()), ("q", step())])
        .then("z", step())
        .commit()
        .unwrap();
    let mut h = Harness::fresh(&all, json!({}));
    succeeded(h.drive(&mut boom));
    assert_eq!(
        h.inputs["z"],
        json!({"p": {"at": "p", "n": 1}, "q": {"error": "step `q` failed: no"}})
    );
}

#[test]
fn parallel_all_collects_failures_but_never_a_divergence() {
    let all = Workflow::new("w")
        .parallel_all([("p", step()), ("q", step())])
        .then("z", step())
        .commit()
        .unwrap();
    let mut h = Harness::fresh(&all, json!({}));
    succeeded(h.drive(&mut counting));
    // A child's record that is corrupt (failed, without an error) is not a failure to collect
    // as data: the replay stops there, naming it.
    let records = with(&h.records(), "q", |r| {
        r.status = StepStatus::Failed;
        r.output = None;
        r.error = None;
    });
    let (path, detail) = diverges(&all, json!({}), records);
    assert_eq!(path, "q");
    assert!(detail.contains("without an error"), "{detail}");
}

#[test]
fn a_branch_records_its_choice_and_a_replay_keeps_it_whatever_the_selector_says_now() {
    let pick_yes = Arc::new(AtomicBool::new(true));
    let flag = Arc::clone(&pick_yes);
    let wf = Workflow::new("w")
        .step("a", step())
        .branch(
            "b",
            move |_: &Value| {
                if flag.load(Ordering::SeqCst) {
                    "yes"
                } else {
                    "no"
                }
            },
            [("yes", step()), ("no", step())],
        )
        .then("c", step())
        .commit()
        .unwrap();
    let mut h = Harness::fresh(&wf, json!({}));
    let out = succeeded(h.drive(&mut counting));
    assert_eq!(traced(&h), ["run a", "select b", "run b/yes", "run c"]);
    let b = h.record("b");
    assert_eq!(
        (b.kind, b.status),
        (RecordKind::Branch, StepStatus::Succeeded)
    );
    assert_eq!(b.output.as_deref(), Some(&json!({"arm": "yes"})));
    // The arm gets the branch's input; the branch's output is the arm's.
    assert_eq!(h.inputs["b/yes"], json!({"at": "a", "n": 1}));
    assert_eq!(h.inputs["c"], json!({"at": "b/yes", "n": 2}));
    pick_yes.store(false, Ordering::SeqCst);
    assert_eq!(
        replays_to(&wf, json!({}), h.records()),
        Status::Succeeded(out)
    );
    // A crash after the choice: the recorded arm runs, the selector is not asked again.
    let mut h2 = Harness::fresh(&wf, json!({}));
    pick_yes.store(true, Ordering::SeqCst);
    h2.drive_until_issued(&mut counting, "b/yes");
    h2.crash();
    pick_yes.store(false, Ordering::SeqCst);
    h2.trace.clear();
    succeeded(h2.drive(&mut counting));
    assert_eq!(traced(&h2), ["run b/yes", "run c"]);
}

#[test]
fn a_selector_naming_no_arm_fails_the_branch() {
    let wf = Workflow::new("w")
        .branch("b", |_: &Value| "maybe", [("yes", step()), ("no", step())])
        .commit()
        .unwrap();
    let mut h = Harness::fresh(&wf, json!({}));
    let e = failed(h.drive(&mut counting));
    assert_eq!(
        e,
        "branch `b` selected `maybe`, which is not one of its arms (yes, no)"
    );
    assert_eq!(h.record("b").status, StepStatus::Failed);
}

fn counting_loop(until: bool) -> CommittedWorkflow {
    let body = Workflow::new("body")
        .step("inc", step())
        .then("check", step());
    let w = Workflow::new("w").step("a", step());
    let w = if until {
        w.dountil("l", body, |v: &Value| v["n"].as_i64() >= Some(7), 10)
    } else {
        w.dowhile("l", body, |v: &Value| v["n"].as_i64() < Some(7), 10)
    };
    w.then("z", step()).commit().unwrap()
}

#[test]
fn a_loop_records_a_decision_after_every_iteration_and_replays_them() {
    for until in [true, false] {
        let wf = counting_loop(until);
        let mut h = Harness::fresh(&wf, json!({"n": 0}));
        let out = succeeded(h.drive(&mut counting));
        // a: n=1; iterations add 2 each: 3, 5, 7 -> three iterations.
        assert_eq!(
            traced(&h),
            [
                "run a",
                "run l[0]/inc",
                "run l[0]/check",
                "condition l#0",
                "run l[1]/inc",
                "run l[1]/check",
                "condition l#1",
                "run l[2]/inc",
                "run l[2]/check",
                "condition l#2",
                "run z",
            ],
            "until={until}"
        );
        let decisions: Vec<Value> = (0..3)
            .map(|i| (*h.record(&format!("l#{i}")).output.clone().unwrap()).clone())
            .collect();
        assert_eq!(
            decisions,
            [
                json!({"continue": true}),
                json!({"continue": true}),
                json!({"continue": false})
            ]
        );
        // Each iteration runs on the previous one's output.
        assert_eq!(h.inputs["l[1]/inc"], json!({"at": "l[0]/check", "n": 3}));
        assert_eq!(out, json!({"at": "z", "n": 8}));
        assert_eq!(
            replays_to(&wf, json!({"n": 0}), h.records()),
            Status::Succeeded(out)
        );
    }
}

#[test]
fn a_loop_that_reaches_its_limit_fails() {
    let wf = Workflow::new("w")
        .dowhile("l", step(), |_: &Value| true, 3)
        .commit()
        .unwrap();
    let mut h = Harness::fresh(&wf, json!({}));
    let e = failed(h.drive(&mut counting));
    assert_eq!(e, "loop `l` reached its limit of 3 iterations");
    assert_eq!(paths(&h), ["l#0", "l#1", "l#2", "l[0]", "l[1]", "l[2]"]);
}

#[test]
fn foreach_runs_one_body_per_item_at_most_concurrency_at_a_time() {
    let body = Workflow::new("body")
        .step("double", step())
        .then("label", step());
    let wf = Workflow::new("w")
        .foreach("each", body, 2)
        .then("sum", step())
        .commit()
        .unwrap();
    let mut world = |c: &Call| match c.path.rsplit('/').next() {
        Some("double") => Ok(json!(c.input.as_i64().unwrap() * 2)),
        Some("label") => Ok(json!(format!("#{}", c.input))),
        _ => Ok(c.input.clone()),
    };
    let mut h = Harness::fresh(&wf, json!([1, 2, 3]));
    h.poll();
    assert_eq!(traced(&h), ["run each[0]/double", "run each[1]/double"]);
    let out = succeeded(h.drive(&mut world));
    assert_eq!(out, json!(["#2", "#4", "#6"]));
    assert!(
        h.trace.iter().position(|t| t == "run each[2]/double")
            > h.trace.iter().position(|t| t == "run each[0]/label"),
        "the third item waits for a free slot: {:?}",
        h.trace
    );
    assert_eq!(
        replays_to(&wf, json!([1, 2, 3]), h.records()),
        Status::Succeeded(out)
    );
    // Not an array: the foreach fails, naming what it got.
    let mut h = Harness::fresh(&wf, json!({"not": "a list"}));
    assert_eq!(
        failed(h.drive(&mut world)),
        "foreach `each` expects an array as input, got an object"
    );
}

#[test]
fn a_sleep_records_its_wake_time_and_a_replay_waits_only_for_that_time() {
    let wf = Workflow::new("w")
        .step("a", step())
        .sleep("nap", Duration::from_secs(5))
        .then("b", step())
        .commit()
        .unwrap();
    let mut h = Harness::fresh(&wf, json!({}));
    h.drive_until_issued(&mut counting, "nap");
    let wake = h.record("nap").clone();
    assert_eq!(
        (wake.kind, wake.status),
        (RecordKind::Sleep, StepStatus::Running)
    );
    let wake_at = wake.output.as_deref().unwrap()["wake_at"].as_i64().unwrap();
    assert_eq!(
        traced(&h),
        ["run a", &format!("sleep nap until T0+{}", wake_at - T0)]
    );
    // A new machine much later: the sleep is issued again with the stored time.
    h.crash();
    h.now += 60_000;
    h.trace.clear();
    h.poll();
    assert_eq!(traced(&h), [format!("sleep nap until T0+{}", wake_at - T0)]);
    let out = succeeded(h.drive(&mut counting));
    let done = h.record("nap");
    assert_eq!(done.status, StepStatus::Succeeded);
    assert_eq!(done.output.as_deref(), Some(&json!({"wake_at": wake_at})));
    // The sleep passes its input on.
    assert_eq!(h.inputs["b"], json!({"at": "a", "n": 1}));
    assert_eq!(
        replays_to(&wf, json!({}), h.records()),
        Status::Succeeded(out)
    );
}

#[test]
fn sleep_until_evaluates_the_wake_time_once_and_records_it() {
    let wf = Workflow::new("w")
        .step("a", step())
        .sleep_until("until", |v: &Value| {
            UNIX_EPOCH + Duration::from_millis(v["wake"].as_u64().unwrap_or(0))
        })
        .commit()
        .unwrap();
    let at = T0 + 90_000;
    let mut world = |c: &Call| Ok(json!({"wake": at, "from": c.path}));
    let mut h = Harness::fresh(&wf, json!({}));
    let out = succeeded(h.drive(&mut world));
    assert_eq!(
        traced(&h),
        ["run a", "wake-at until", "sleep until until T0+90000"]
    );
    assert_eq!(
        h.record("until").output.as_deref(),
        Some(&json!({"wake_at": at}))
    );
    assert_eq!(out, json!({"wake": at, "from": "a"}));
    assert_eq!(
        replays_to(&wf, json!({}), h.records()),
        Status::Succeeded(out)
    );
}

#[test]
fn a_map_records_its_result_and_a_replay_does_not_call_it_again() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c2 = Arc::clone(&calls);
    let wf = Workflow::new("w")
        .step("a", step())
        .map("m", move |v: &Value| {
            c2.fetch_add(1, Ordering::SeqCst);
            json!({"mapped": v["n"]})
        })
        .then("b", step())
        .commit()
        .unwrap();
    let mut h = Harness::fresh(&wf, json!({}));
    let out = succeeded(h.drive(&mut counting));
    assert_eq!(traced(&h), ["run a", "map m", "run b"]);
    let m = h.record("m");
    assert_eq!((m.kind, m.status), (RecordKind::Map, StepStatus::Succeeded));
    assert_eq!(m.output.as_deref(), Some(&json!({"mapped": 1})));
    assert_eq!(h.inputs["b"], json!({"mapped": 1}));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(
        replays_to(&wf, json!({}), h.records()),
        Status::Succeeded(out)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_nested_workflow_runs_under_its_path_and_checks_its_schemas() {
    let inner = Workflow::new("inner")
        .step("x", step())
        .then("y", step())
        .input_schema(json!({"type": "object", "required": ["n"]}))
        .commit()
        .unwrap();
    let wf = Workflow::new("w")
        .step("a", step())
        .then("sub", inner)
        .then("b", step())
        .commit()
        .unwrap();
    let mut h = Harness::fresh(&wf, json!({}));
    let out = succeeded(h.drive(&mut counting));
    assert_eq!(traced(&h), ["run a", "run sub/x", "run sub/y", "run b"]);
    assert_eq!(h.inputs["b"], json!({"at": "sub/y", "n": 3}));
    assert_eq!(
        replays_to(&wf, json!({}), h.records()),
        Status::Succeeded(out)
    );
    // The inner workflow's input schema is checked where it starts.
    let mut bad = |c: &Call| Ok(json!({"at": c.path}));
    let mut h = Harness::fresh(&wf, json!({}));
    let e = failed(h.drive(&mut bad));
    assert!(e.contains("nested workflow `inner` at `sub`"), "{e}");
    assert_eq!(traced(&h), ["run a"]);
}

#[test]
fn a_retryable_failure_is_retried_with_backoff_and_recorded_once() {
    let wf = Workflow::new("w")
        .step(
            "flaky",
            step().retry(
                RetryPolicy::attempts(3)
                    .initial_delay(Duration::from_millis(100))
                    .jitter(false),
            ),
        )
        .then("b", step())
        .commit()
        .unwrap();
    let mut world = |c: &Call| {
        if c.path == "flaky" && c.attempt < 3 {
            Err(StepError::retryable(format!("try {}", c.attempt)))
        } else {
            counting(c)
        }
    };
    let mut h = Harness::fresh(&wf, json!({"n": 5}));
    let out = succeeded(h.drive(&mut world));
    assert_eq!(
        traced(&h),
        [
            "run flaky",
            "run flaky #2 after 100ms",
            "run flaky #3 after 200ms",
            "run b"
        ]
    );
    // Each retry gets the original input again.
    assert_eq!(h.inputs["flaky"], json!({"n": 5}));
    let r = h.record("flaky");
    assert_eq!((r.status, r.attempt), (StepStatus::Succeeded, 3));
    let retries: Vec<(u32, u64, String)> = h
        .events
        .iter()
        .filter_map(|e| match e {
            EventKind::StepRetrying {
                attempt,
                delay_ms,
                error,
                ..
            } => Some((*attempt, *delay_ms, error.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(
        retries,
        [(2, 100, "try 1".to_string()), (3, 200, "try 2".to_string())]
    );
    assert_eq!(out, json!({"at": "b", "n": 7}));
    assert_eq!(
        replays_to(&wf, json!({"n": 5}), h.records()),
        Status::Succeeded(out)
    );
}

#[test]
fn retries_end_with_the_last_error_and_a_fatal_error_is_not_retried() {
    let wf = Workflow::new("w")
        .step(
            "flaky",
            step().retry(RetryPolicy::attempts(2).initial_delay(Duration::ZERO)),
        )
        .commit()
        .unwrap();
    let mut always = |c: &Call| Err(StepError::retryable(format!("try {}", c.attempt)));
    let mut h = Harness::fresh(&wf, json!({}));
    assert_eq!(
        failed(h.drive(&mut always)),
        "step `flaky` failed after 2 attempts: try 2"
    );
    assert_eq!(h.record("flaky").attempt, 2);
    let mut fatal = |_: &Call| Err(StepError::fatal("bad input"));
    let mut h = Harness::fresh(&wf, json!({}));
    assert_eq!(
        failed(h.drive(&mut fatal)),
        "step `flaky` failed: bad input"
    );
    assert_eq!(traced(&h), ["run flaky"]);
}

fn gated() -> CommittedWorkflow {
    Workflow::new("gated")
        .step("a", step())
        .then("gate", step())
        .then("b", step())
        .commit()
        .unwrap()
}

/// Suspends at `gate` until it has resume data, then outputs it with its input.
fn gate_world(c: &Call) -> Result<Value, StepError> {
    if c.path.ends_with("gate") {
        return match c.resume {
            None => Err(StepError::suspended(json!({"ask": "approve?"}))),
            Some(r) => Ok(json!({"decision": r, "n": c.input["n"]})),
        };
    }
    counting(c)
}

#[test]
fn a_suspended_step_resumes_in_a_new_machine_with_its_input_and_the_resume_data() {
    let wf = gated();
    let mut h = Harness::fresh(&wf, json!({"n": 0}));
    assert_eq!(
        h.drive(&mut gate_world),
        Status::Suspended(vec!["gate".into()])
    );
    let g = h.record("gate").clone();
    assert_eq!(g.status, StepStatus::Suspended);
    assert_eq!(g.payload, Some(json!({"ask": "approve?"})));
    // Replaying the suspended history issues nothing and reports the same suspension.
    assert_eq!(
        replays_to(&wf, json!({"n": 0}), h.records()),
        Status::Suspended(vec!["gate".into()])
    );
    // Resume as the engine does: a new machine replayed from the records.
    h.crash();
    assert_eq!(h.poll(), Status::Suspended(vec!["gate".into()]));
    h.resume("gate", json!("yes"));
    h.trace.clear();
    let out = succeeded(h.drive(&mut gate_world));
    assert_eq!(traced(&h), [r#"run gate resume="yes""#, "run b"]);
    assert_eq!(h.inputs["gate"], json!({"at": "a", "n": 1}));
    assert_eq!(out, json!({"at": "b", "n": 2}));
    let g = h.record("gate");
    assert_eq!((g.status, g.resume.clone()), (StepStatus::Succeeded, None));
    assert_eq!(
        replays_to(&wf, json!({"n": 0}), h.records()),
        Status::Succeeded(out)
    );
}

#[test]
fn a_run_suspends_only_once_its_parallel_siblings_have_finished() {
    let wf = Workflow::new("w")
        .parallel([("gate", step()), ("work", step())])
        .commit()
        .unwrap();
    let mut h = Harness::fresh(&wf, json!({"n": 0}));
    h.poll();
    // Complete the gate first: `work` is still in flight, so the run is still running.
    let gate = h.pending.remove(0);
    assert_eq!(&**gate.path(), "gate");
    h.m.complete(
        "gate",
        Err(StepError::suspended(json!({"ask": 1}))),
        h.now + 1,
    );
    assert_eq!(h.poll(), Status::Running);
    h.act(&mut counting);
    assert_eq!(h.poll(), Status::Suspended(vec!["gate".into()]));
    assert_eq!(h.record("work").status, StepStatus::Succeeded);
}

#[test]
fn resume_data_on_a_path_that_is_not_suspended_is_refused() {
    let wf = three_steps();
    let mut h = Harness::fresh(&wf, json!({}));
    succeeded(h.drive(&mut counting));
    assert!(h.m.resume("a", json!(1), h.now).is_none());
    assert!(h.m.resume("nowhere", json!(1), h.now).is_none());
}

fn charging(on: OnInterrupt) -> CommittedWorkflow {
    Workflow::new("charging")
        .step("a", step())
        .then("charge", step().non_idempotent(on))
        .then("b", step())
        .commit()
        .unwrap()
}

#[test]
fn a_non_idempotent_step_records_its_start_before_it_is_issued() {
    let wf = charging(OnInterrupt::Fail);
    let mut h = Harness::fresh(&wf, json!({}));
    h.drive_until_issued(&mut counting, "charge");
    let r = h.record("charge");
    assert_eq!(
        (r.kind, r.status, r.attempt),
        (RecordKind::Step, StepStatus::Running, 1)
    );
    assert_eq!(r.payload, Some(json!({"on_interrupt": "Fail"})));
    let out = succeeded(h.drive(&mut counting));
    assert_eq!(h.record("charge").status, StepStatus::Succeeded);
    assert_eq!(
        replays_to(&wf, json!({}), h.records()),
        Status::Succeeded(out)
    );
}

#[test]
fn an_interrupted_non_idempotent_step_fails_the_run_instead_of_running_again() {
    let wf = charging(OnInterrupt::Fail);
    let mut h = Harness::fresh(&wf, json!({}));
    h.drive_until_issued(&mut counting, "charge");
    h.crash();
    h.trace.clear();
    let e = failed(h.drive(&mut counting));
    assert!(h.trace.is_empty(), "re-ran: {:?}", h.trace);
    assert!(
        e.contains("non-idempotent step `charge` was interrupted after it started (attempt 1)"),
        "{e}"
    );
    assert_eq!(h.record("charge").status, StepStatus::Failed);
}

#[test]
fn an_interrupted_non_idempotent_step_can_suspend_and_run_again_when_resumed() {
    let wf = charging(OnInterrupt::Suspend);
    let mut h = Harness::fresh(&wf, json!({}));
    h.drive_until_issued(&mut counting, "charge");
    h.crash();
    h.trace.clear();
    assert_eq!(
        h.drive(&mut counting),
        Status::Suspended(vec!["charge".into()])
    );
    assert!(h.trace.is_empty(), "re-ran: {:?}", h.trace);
    let r = h.record("charge");
    assert_eq!(r.status, StepStatus::Suspended);
    assert_eq!(r.payload.as_ref().unwrap()["interrupted"], true);
    h.crash();
    h.poll();
    h.resume("charge", json!({"retry": true}));
    let out = succeeded(h.drive(&mut counting));
    assert_eq!(traced(&h), [r#"run charge resume={"retry":true}"#, "run b"]);
    assert_eq!(out["at"], "b");
}

#[test]
fn a_stray_running_record_of_an_idempotent_step_runs_it_again() {
    let wf = three_steps();
    let mut h = Harness::fresh(&wf, json!({}));
    succeeded(h.drive(&mut counting));
    let mut records = h.records();
    records.retain(|r| &*r.path != "c");
    let b = records.iter_mut().find(|r| &*r.path == "b").unwrap();
    b.status = StepStatus::Running;
    b.output = None;
    let mut h = Harness::replay(&wf, json!({}), records);
    succeeded(h.drive(&mut counting));
    assert_eq!(traced(&h), ["run b", "run c"]);
}

// ---------------------------------------------------------------------------------------
// Golden histories
// ---------------------------------------------------------------------------------------

/// A recorded run: what the harness produced for a definition, checked in.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Golden {
    workflow: String,
    input: Value,
    /// `succeeded`, `failed` or `suspended`.
    status: String,
    /// The output (succeeded), the error (failed) or the suspended paths.
    result: Value,
    records: Vec<StepRecord>,
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn status_json(st: &Status) -> (String, Value) {
    match st {
        Status::Succeeded(v) => ("succeeded".into(), v.clone()),
        Status::Failed(e) => ("failed".into(), json!(e)),
        Status::Suspended(p) => ("suspended".into(), json!(p)),
        Status::Running => ("running".into(), Value::Null),
    }
}

fn status_from(g: &Golden) -> Status {
    match g.status.as_str() {
        "succeeded" => Status::Succeeded(g.result.clone()),
        "failed" => Status::Failed(g.result.as_str().unwrap_or_default().to_string()),
        "suspended" => Status::Suspended(serde_json::from_value(g.result.clone()).unwrap()),
        other => panic!("golden status `{other}`"),
    }
}

/// One golden case: a definition, an input, and how the recorded run went.
struct Case {
    name: &'static str,
    wf: CommittedWorkflow,
    input: Value,
    record: fn(&CommittedWorkflow, Value) -> Harness,
}

fn run_with(
    world: fn(&Call) -> Result<Value, StepError>,
) -> impl Fn(&CommittedWorkflow, Value) -> Harness {
    move |wf, input| {
        let mut h = Harness::fresh(wf, input);
        let mut w = world;
        h.drive(&mut w);
        h
    }
}

fn live(wf: &CommittedWorkflow, input: Value) -> Harness {
    run_with(counting)(wf, input)
}

fn live_gate(wf: &CommittedWorkflow, input: Value) -> Harness {
    run_with(gate_world)(wf, input)
}

fn live_failing(wf: &CommittedWorkflow, input: Value) -> Harness {
    run_with(|c| {
        if c.path == "boom" {
            Err(StepError::fatal("disk on fire"))
        } else {
            counting(c)
        }
    })(wf, input)
}

fn live_flaky(wf: &CommittedWorkflow, input: Value) -> Harness {
    run_with(|c| {
        if c.path == "flaky" && c.attempt < 3 {
            Err(StepError::retryable(format!("try {}", c.attempt)))
        } else {
            counting(c)
        }
    })(wf, input)
}

fn live_foreach(wf: &CommittedWorkflow, input: Value) -> Harness {
    run_with(|c| match c.path.rsplit('/').next() {
        Some("double") => Ok(json!(c.input.as_i64().unwrap_or(0) * 2)),
        Some("label") => Ok(json!(format!("#{}", c.input))),
        _ => counting(c),
    })(wf, input)
}

fn live_sleep_until(wf: &CommittedWorkflow, input: Value) -> Harness {
    run_with(|c| Ok(json!({"at": c.path, "wake": T0 + 90_000})))(wf, input)
}

/// Suspends at the gate, then resumes it in a new machine and finishes.
fn live_resumed(wf: &CommittedWorkflow, input: Value) -> Harness {
    let mut h = Harness::fresh(wf, input);
    h.drive(&mut gate_world);
    h.crash();
    h.poll();
    h.resume("gate", json!("approved"));
    h.drive(&mut gate_world);
    h
}

/// Crashes while `charge` runs; the new machine suspends it; resumed, it runs again.
fn live_interrupted(wf: &CommittedWorkflow, input: Value) -> Harness {
    let mut h = Harness::fresh(wf, input);
    h.drive_until_issued(&mut counting, "charge");
    h.crash();
    h.drive(&mut counting);
    h.crash();
    h.poll();
    h.resume("charge", json!({"retry": true}));
    h.drive(&mut counting);
    h
}

fn golden_cases() -> Vec<Case> {
    let frag = |id: &str| Workflow::new(id).step("one", step()).then("two", step());
    let inner = Workflow::new("inner")
        .step("x", step())
        .then("y", step())
        .commit()
        .unwrap();
    vec![
        Case {
            name: "steps",
            wf: three_steps(),
            input: json!({"n": 0}),
            record: live,
        },
        Case {
            name: "parallel",
            wf: Workflow::new("parallel")
                .step("a", step())
                .parallel([("p", step()), ("q", step())])
                .parallel_all([("r", step()), ("boom", step())])
                .then("z", step())
                .commit()
                .unwrap(),
            input: json!({"n": 0}),
            record: live_failing,
        },
        Case {
            name: "branch",
            wf: Workflow::new("branch")
                .step("a", step())
                .branch(
                    "b",
                    |v: &Value| {
                        if v["n"].as_i64() > Some(0) {
                            "yes"
                        } else {
                            "no"
                        }
                    },
                    [("yes", frag("yes")), ("no", frag("no"))],
                )
                .then("c", step())
                .commit()
                .unwrap(),
            input: json!({"n": 0}),
            record: live,
        },
        Case {
            name: "loop",
            wf: counting_loop(true),
            input: json!({"n": 0}),
            record: live,
        },
        Case {
            name: "foreach",
            wf: Workflow::new("foreach")
                .foreach(
                    "each",
                    Workflow::new("body")
                        .step("double", step())
                        .then("label", step()),
                    2,
                )
                .then("z", step())
                .commit()
                .unwrap(),
            input: json!([1, 2, 3, 4, 5]),
            record: live_foreach,
        },
        Case {
            name: "sleep",
            wf: Workflow::new("sleep")
                .step("a", step())
                .sleep("nap", Duration::from_secs(5))
                .then("b", step())
                .commit()
                .unwrap(),
            input: json!({"n": 0}),
            record: live,
        },
        Case {
            name: "sleep-until",
            wf: Workflow::new("sleep-until")
                .step("a", step())
                .sleep_until("until", |v: &Value| {
                    UNIX_EPOCH + Duration::from_millis(v["wake"].as_u64().unwrap_or(0))
                })
                .then("b", step())
                .commit()
                .unwrap(),
            input: json!({}),
            record: live_sleep_until,
        },
        Case {
            name: "map",
            wf: Workflow::new("map")
                .step("a", step())
                .map("m", |v: &Value| json!({"n": v["n"], "mapped": true}))
                .then("b", step())
                .commit()
                .unwrap(),
            input: json!({"n": 0}),
            record: live,
        },
        Case {
            name: "nested",
            wf: Workflow::new("nested")
                .step("a", step())
                .then("sub", inner)
                .then("b", step())
                .commit()
                .unwrap(),
            input: json!({"n": 0}),
            record: live,
        },
        Case {
            name: "retries",
            wf: Workflow::new("retries")
                .step(
                    "flaky",
                    step().retry(
                        RetryPolicy::attempts(3)
                            .initial_delay(Duration::from_millis(100))
                            .jitter(false),
                    ),
                )
                .then("b", step())
                .commit()
                .unwrap(),
            input: json!({"n": 0}),
            record: live_flaky,
        },
        Case {
            name: "suspended",
            wf: gated(),
            input: json!({"n": 0}),
            record: live_gate,
        },
        Case {
            name: "resumed",
            wf: gated(),
            input: json!({"n": 0}),
            record: live_resumed,
        },
        Case {
            name: "non-idempotent",
            wf: charging(OnInterrupt::Fail),
            input: json!({"n": 0}),
            record: live,
        },
        Case {
            name: "interrupted",
            wf: charging(OnInterrupt::Suspend),
            input: json!({"n": 0}),
            record: live_interrupted,
        },
        Case {
            name: "failed",
            wf: Workflow::new("failed")
                .step("a", step())
                .then("boom", step())
                .then("never", step())
                .commit()
                .unwrap(),
            input: json!({"n": 0}),
            record: live_failing,
        },
    ]
}

fn load_golden(name: &str) -> Golden {
    let file = golden_dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (record it with MIYABI_BLESS_GOLDEN=1 cargo test -p miyabi-engine --lib golden)",
            file.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn golden_case(name: &str) -> (CommittedWorkflow, Golden) {
    let case = golden_cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no golden case `{name}`"));
    (case.wf, load_golden(name))
}

/// Every golden history replays to its recorded status and output without issuing,
/// writing or emitting anything; and the machine, run live, still records exactly that
/// history (so a change to what the machine records shows up here and needs a new file).
/// `MIYABI_BLESS_GOLDEN=1` writes the files instead.
#[test]
fn golden_histories_replay_to_their_recorded_result_and_issue_nothing() {
    let bless = std::env::var("MIYABI_BLESS_GOLDEN").is_ok_and(|v| v == "1");
    let cases = golden_cases();
    let mut files: Vec<String> = std::fs::read_dir(golden_dir())
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut names: Vec<String> = cases.iter().map(|c| format!("{}.json", c.name)).collect();
    names.sort();
    if !bless {
        assert_eq!(files, names, "golden files and cases differ");
    }
    for case in cases {
        let h = (case.record)(&case.wf, case.input.clone());
        let st = {
            // The status the live run settled in, from a replay of its own records.
            let mut r = Harness::replay(&case.wf, case.input.clone(), h.records());
            r.poll()
        };
        let (status, result) = status_json(&st);
        let recorded = Golden {
            workflow: case.wf.id().to_string(),
            input: case.input.clone(),
            status,
            result,
            records: h.records(),
        };
        if bless {
            std::fs::create_dir_all(golden_dir()).unwrap();
            let text = serde_json::to_string_pretty(&recorded).unwrap() + "\n";
            std::fs::write(golden_dir().join(format!("{}.json", case.name)), text).unwrap();
            continue;
        }
        let g = load_golden(case.name);
        assert_eq!(g.workflow, case.wf.id(), "{}", case.name);
        // The checked-in history replays, alone, to its recorded result.
        let got = replays_to(&case.wf, g.input.clone(), g.records.clone());
        assert_eq!(
            got,
            status_from(&g),
            "{}: replay of the golden history",
            case.name
        );
        // And today's machine records the same history.
        assert_eq!(recorded, g, "{}: the live run's history changed", case.name);
    }
}

// ---------------------------------------------------------------------------------------
// Divergence: mutated definitions
// ---------------------------------------------------------------------------------------

/// The golden `steps` history, cut after its step `b` (a run that crashed while `c` ran).
fn steps_until_b() -> Vec<StepRecord> {
    let (_, g) = golden_case("steps");
    g.records.into_iter().filter(|r| &*r.path != "c").collect()
}

#[test]
fn a_renamed_step_diverges_at_the_new_name() {
    let (_, g) = golden_case("steps");
    let renamed = Workflow::new("steps")
        .step("a", step())
        .then("b2", step())
        .then("c", step())
        .commit()
        .unwrap();
    let (path, detail) = diverges(&renamed, g.input.clone(), g.records.clone());
    assert_eq!(path, "b2");
    assert!(
        detail.contains("the definition runs a step here, which has no record, while the records go on with `b` and 1 more record"),
        "{detail}"
    );
}

#[test]
fn an_inserted_step_diverges_where_it_was_inserted() {
    let (_, g) = golden_case("steps");
    let inserted = Workflow::new("steps")
        .step("a", step())
        .then("audit", step())
        .then("b", step())
        .then("c", step())
        .commit()
        .unwrap();
    let (path, detail) = diverges(&inserted, g.input.clone(), g.records);
    assert_eq!(path, "audit");
    assert!(detail.contains("go on with `b`"), "{detail}");
    // Also in a history that stops before the end (the run crashed while `c` ran).
    let (path, _) = diverges(&inserted, g.input, steps_until_b());
    assert_eq!(path, "audit");
}

#[test]
fn reordered_steps_diverge_at_the_first_moved_step() {
    let (_, g) = golden_case("steps");
    let reordered = Workflow::new("steps")
        .step("a", step())
        .then("c", step())
        .then("b", step())
        .commit()
        .unwrap();
    // The run crashed while `c` ran: the definition now wants `c` before `b`, whose record
    // exists.
    let (path, detail) = diverges(&reordered, g.input.clone(), steps_until_b());
    assert_eq!(path, "c");
    assert!(detail.contains("go on with `b`"), "{detail}");
    // A step moved into a parallel block diverges the same way.
    let moved = Workflow::new("steps")
        .parallel([("a", step()), ("c", step())])
        .then("b", step())
        .commit()
        .unwrap();
    let (path, _) = diverges(&moved, g.input, steps_until_b());
    assert_eq!(path, "c");
}

/// The limit of what records keyed by path can show: when every reordered step already has
/// its record, no path is missing and none is left over, so the machine cannot see the
/// order. The engine refuses such a replay before the machine sees it: a run keeps the
/// fingerprint it started with, and a reordered definition has another
/// (`EngineError::DefinitionChanged`).
#[test]
fn a_reorder_of_completed_steps_changes_the_fingerprint() {
    let reordered = Workflow::new("steps")
        .step("a", step())
        .then("c", step())
        .then("b", step())
        .commit()
        .unwrap();
    assert_ne!(reordered.fingerprint(), three_steps().fingerprint());
}

#[test]
fn a_step_replaced_by_another_kind_diverges_naming_both_kinds() {
    let (_, g) = golden_case("steps");
    let changed = Workflow::new("steps")
        .step("a", step())
        .map("b", |v: &Value| v.clone())
        .then("c", step())
        .commit()
        .unwrap();
    let (path, detail) = diverges(&changed, g.input, g.records);
    assert_eq!(path, "b");
    assert_eq!(detail, "the definition has a map here, the records a step");
}

#[test]
fn a_removed_step_leaves_its_record_over_and_diverges_there() {
    let (_, g) = golden_case("steps");
    let removed = Workflow::new("steps")
        .step("a", step())
        .then("c", step())
        .commit()
        .unwrap();
    let (path, detail) = diverges(&removed, g.input, g.records);
    assert_eq!(path, "b");
    assert_eq!(
        detail,
        "a stored record that the definition does not produce"
    );
}

#[test]
fn a_branch_arm_removed_from_the_definition_diverges_at_the_branch() {
    let (_, g) = golden_case("branch");
    let fewer = Workflow::new("branch")
        .step("a", step())
        .branch("b", |_: &Value| "no", [("no", step())])
        .then("c", step())
        .commit()
        .unwrap();
    let (path, detail) = diverges(&fewer, g.input, g.records);
    assert_eq!(path, "b");
    assert_eq!(
        detail,
        "the records chose arm `yes`, which the definition does not have"
    );
}

// ---------------------------------------------------------------------------------------
// Divergence: mutated histories
// ---------------------------------------------------------------------------------------

fn with(records: &[StepRecord], path: &str, f: impl FnOnce(&mut StepRecord)) -> Vec<StepRecord> {
    let mut out = records.to_vec();
    let Some(r) = out.iter_mut().find(|r| &*r.path == path) else {
        panic!("no record `{path}`")
    };
    f(r);
    out
}

#[test]
fn a_changed_branch_choice_diverges_at_the_arm_the_history_did_not_take() {
    let (wf, g) = golden_case("branch");
    assert_eq!(
        g.records
            .iter()
            .find(|r| &*r.path == "b")
            .unwrap()
            .output
            .as_deref(),
        Some(&json!({"arm": "yes"}))
    );
    // Point the choice at the other arm: its steps have no records, the taken arm's are left.
    let flipped = with(&g.records, "b", |r| {
        r.output = Some(Arc::new(json!({"arm": "no"})))
    });
    let (path, detail) = diverges(&wf, g.input.clone(), flipped);
    assert_eq!(path, "b/no/one");
    assert!(
        detail.contains("go on with `b/yes/one` and 2 more records"),
        "{detail}"
    );
    // An arm the definition lacks.
    let unknown = with(&g.records, "b", |r| {
        r.output = Some(Arc::new(json!({"arm": "maybe"})))
    });
    let (path, detail) = diverges(&wf, g.input, unknown);
    assert_eq!(path, "b");
    assert_eq!(
        detail,
        "the records chose arm `maybe`, which the definition does not have"
    );
}

#[test]
fn a_changed_loop_decision_diverges_where_the_loop_ends_early() {
    let (wf, g) = golden_case("loop");
    let stop = with(&g.records, "l#0", |r| {
        r.output = Some(Arc::new(json!({"continue": false})))
    });
    // The loop now ends after its first iteration; `z`'s record is there, so the run ends,
    // and the later iterations' records are left over.
    let (path, detail) = diverges(&wf, g.input.clone(), stop.clone());
    assert_eq!(path, "l#1");
    assert_eq!(
        detail,
        "a stored record that the definition does not produce"
    );
    // Had the run crashed before `z`, the replay would stop where it wants to run `z`.
    let cut: Vec<StepRecord> = stop.into_iter().filter(|r| &*r.path != "z").collect();
    let (path, detail) = diverges(&wf, g.input, cut);
    assert_eq!(path, "z");
    assert!(
        detail.contains("go on with `l#1` and 5 more records"),
        "{detail}"
    );
}

#[test]
fn a_renamed_record_diverges_at_the_path_it_no_longer_covers() {
    let (wf, g) = golden_case("steps");
    let renamed = with(&g.records, "b", |r| r.path = "bb".into());
    let (path, detail) = diverges(&wf, g.input, renamed);
    assert_eq!(path, "b");
    assert!(
        detail.contains("go on with `bb` and 1 more record"),
        "{detail}"
    );
}

#[test]
fn an_inserted_record_diverges_at_its_path() {
    let (wf, g) = golden_case("steps");
    let mut more = g.records.clone();
    let mut extra = more[1].clone();
    extra.path = "b-extra".into();
    more.push(extra);
    let (path, detail) = diverges(&wf, g.input.clone(), more.clone());
    assert_eq!(path, "b-extra");
    assert_eq!(
        detail,
        "a stored record that the definition does not produce"
    );
    // In a suspended history too: the replay does not wait for the end to notice.
    let (gwf, gg) = golden_case("suspended");
    let mut more = gg.records.clone();
    let mut extra = more[0].clone();
    extra.path = "zz".into();
    more.push(extra);
    let (path, _) = diverges(&gwf, gg.input, more);
    assert_eq!(path, "zz");
}

#[test]
fn a_history_out_of_order_diverges_at_the_first_missing_record() {
    // `c` is recorded but `b` is not: the history claims `c` ran before `b` finished.
    let (wf, g) = golden_case("steps");
    let out_of_order: Vec<StepRecord> = g.records.into_iter().filter(|r| &*r.path != "b").collect();
    let (path, detail) = diverges(&wf, g.input, out_of_order);
    assert_eq!(path, "b");
    assert!(detail.contains("go on with `c`"), "{detail}");
}

#[test]
fn swapped_record_kinds_diverge_at_the_first_one() {
    let (wf, g) = golden_case("map");
    // The records of `a` (a step) and `m` (a map) trade paths.
    let swapped: Vec<StepRecord> = g
        .records
        .iter()
        .cloned()
        .map(|mut r| {
            r.path = match &*r.path {
                "a" => "m".into(),
                "m" => "a".into(),
                p => p.into(),
            };
            r
        })
        .collect();
    let (path, detail) = diverges(&wf, g.input, swapped);
    assert_eq!(path, "a");
    assert_eq!(detail, "the definition has a step here, the records a map");
}

#[test]
fn a_diverged_replay_issues_nothing_even_when_it_started_siblings_first() {
    // The parallel block issues `p` (no record) before it meets `q`'s record of another kind.
    let wf = Workflow::new("w")
        .parallel([
            ("p", step().non_idempotent(OnInterrupt::Fail)),
            ("q", step()),
        ])
        .commit()
        .unwrap();
    let q = StepRecord {
        path: "q".into(),
        kind: RecordKind::Map,
        status: StepStatus::Succeeded,
        output: Some(Arc::new(json!(1))),
        error: None,
        payload: None,
        resume: None,
        attempt: 1,
        updated_at: T0,
    };
    let (path, _) = diverges(&wf, json!({}), vec![q]);
    assert_eq!(path, "q");
}

// ---------------------------------------------------------------------------------------
// Corrupt records: a divergence naming the path, never a default
// ---------------------------------------------------------------------------------------

fn corrupt(case: &str, path: &str, f: impl FnOnce(&mut StepRecord)) -> (String, String) {
    let (wf, g) = golden_case(case);
    let records = with(&g.records, path, f);
    diverges(&wf, g.input, records)
}

#[test]
fn a_running_sleep_record_without_wake_at_is_a_divergence() {
    let (wf, g) = golden_case("sleep");
    // The history of a run that crashed while it slept.
    let mut records: Vec<StepRecord> = g.records.into_iter().filter(|r| &*r.path != "b").collect();
    let nap = records.iter_mut().find(|r| &*r.path == "nap").unwrap();
    nap.status = StepStatus::Running;
    let good = replay_once(&wf, g.input.clone(), records.clone());
    assert_eq!(good.pending.len(), 1, "{:?}", good.trace);
    for bad in [None, Some(json!({})), Some(json!({"wake_at": "soon"}))] {
        let broken = with(&records, "nap", |r| r.output = bad.map(Arc::new));
        let (path, detail) = diverges(&wf, g.input.clone(), broken);
        assert_eq!(path, "nap");
        assert!(
            detail.starts_with(
                "the stored record is corrupt: a running sleep record without a `wake_at` time"
            ),
            "{detail}"
        );
    }
}

#[test]
fn a_finished_sleep_record_without_wake_at_is_a_divergence() {
    let (path, detail) = corrupt("sleep", "nap", |r| r.output = Some(Arc::new(json!(null))));
    assert_eq!(path, "nap");
    assert_eq!(
        detail,
        "the stored record is corrupt: a succeeded sleep record without a `wake_at` time (its output is null)"
    );
}

#[test]
fn a_loop_decision_without_continue_is_a_divergence() {
    for bad in [None, Some(json!({})), Some(json!({"continue": "yes"}))] {
        let (path, detail) = corrupt("loop", "l#1", |r| r.output = bad.map(Arc::new));
        assert_eq!(path, "l#1");
        assert!(
            detail.starts_with(
                "the stored record is corrupt: a loop decision record without a `continue` bool"
            ),
            "{detail}"
        );
    }
}

#[test]
fn a_branch_record_without_arm_is_a_divergence() {
    for bad in [None, Some(json!({"choice": "no"})), Some(json!({"arm": 1}))] {
        let (path, detail) = corrupt("branch", "b", |r| r.output = bad.map(Arc::new));
        assert_eq!(path, "b");
        assert!(
            detail
                .starts_with("the stored record is corrupt: a branch record without an `arm` name"),
            "{detail}"
        );
    }
}

#[test]
fn a_map_record_of_the_wrong_shape_is_a_divergence() {
    let (path, detail) = corrupt("map", "m", |r| r.output = None);
    assert_eq!(path, "m");
    assert_eq!(
        detail,
        "the stored record is corrupt: a succeeded map record without an output"
    );
    let (path, detail) = corrupt("map", "m", |r| r.status = StepStatus::Suspended);
    assert_eq!(path, "m");
    assert_eq!(
        detail,
        "the stored record is corrupt: a map record cannot be suspended"
    );
    let (path, detail) = corrupt("map", "m", |r| r.error = Some("oops".into()));
    assert_eq!(path, "m");
    assert_eq!(
        detail,
        "the stored record is corrupt: a succeeded map record with an error"
    );
}

#[test]
fn a_step_record_with_an_impossible_status_combination_is_a_divergence() {
    type Edit = Box<dyn Fn(&mut StepRecord)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "a succeeded step record without an output",
            Box::new(|r| r.output = None),
        ),
        (
            "a succeeded step record with an error",
            Box::new(|r| r.error = Some("x".into())),
        ),
        (
            "a failed step record without an error",
            Box::new(|r| r.status = StepStatus::Failed),
        ),
        (
            "a failed step record with an output",
            Box::new(|r| {
                r.status = StepStatus::Failed;
                r.error = Some("x".into());
            }),
        ),
        (
            "a suspended step record without a suspension payload",
            Box::new(|r| r.status = StepStatus::Suspended),
        ),
        (
            "a step record with attempt 0 (attempts count from 1)",
            Box::new(|r| r.attempt = 0),
        ),
    ];
    for (want, f) in cases {
        let (path, detail) = corrupt("steps", "b", |r| f(r));
        assert_eq!(path, "b", "{want}");
        assert_eq!(detail, format!("the stored record is corrupt: {want}"));
    }
}

#[test]
fn decision_records_in_a_state_they_never_have_are_a_divergence() {
    let (path, detail) = corrupt("branch", "b", |r| r.status = StepStatus::Running);
    assert_eq!(
        (path.as_str(), detail.as_str()),
        (
            "b",
            "the stored record is corrupt: a branch record cannot be running"
        )
    );
    let (path, detail) = corrupt("loop", "l#0", |r| r.status = StepStatus::Suspended);
    assert_eq!(
        (path.as_str(), detail.as_str()),
        (
            "l#0",
            "the stored record is corrupt: a loop record cannot be suspended"
        )
    );
    let (path, detail) = corrupt("sleep", "nap", |r| r.status = StepStatus::Suspended);
    assert_eq!(
        (path.as_str(), detail.as_str()),
        (
            "nap",
            "the stored record is corrupt: a sleep record cannot be suspended"
        )
    );
}

#[test]
fn a_failed_record_replays_as_its_failure() {
    let (wf, g) = golden_case("failed");
    let st = replays_to(&wf, g.input.clone(), g.records.clone());
    assert_eq!(
        st,
        Status::Failed("step `boom` failed: disk on fire".into())
    );
    let (path, detail) = corrupt("failed", "boom", |r| r.error = None);
    assert_eq!(path, "boom");
    assert_eq!(
        detail,
        "the stored record is corrupt: a failed step record without an error"
    );
}
