//! The store conformance suite: the same tests against every first-party store (in memory,
//! SQLite, Postgres). The Postgres ones need `MIYABI_TEST_POSTGRES_URL` (and the `postgres`
//! feature); without it they print why they skip and pass. Each Postgres test has its own
//! schema, so the tests run in parallel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use miyabi::approval::{
    Approval, ApprovalFilter, ApprovalStatus, AuditFilter, AuditRecord, Delivery, DeliveryStatus,
    GateUpdate, NewGate,
};
use miyabi::store::*;
use miyabi::{EventKind, RunEvent};
use serde_json::{Value, json};

/// A UUID v7 run id for a creation time (`n` keeps ids of one millisecond apart).
fn run_id(at: i64, n: u8) -> String {
    uuid::Builder::from_unix_timestamp_millis(at as u64, &[n; 10])
        .into_uuid()
        .to_string()
}

fn record(id: &str, workflow: &str, at: i64, owner: Option<&str>) -> RunRecord {
    RunRecord {
        id: id.into(),
        workflow: workflow.into(),
        fingerprint: format!("fp-{workflow}"),
        status: RunStatus::Running,
        input: Arc::new(json!({"in": id})),
        output: None,
        error: None,
        created_at: at,
        updated_at: at,
        owner: owner.map(str::to_string),
        lease_until: owner.map(|_| at + 30_000),
    }
}

fn event(run: &str, seq: u64, name: &str) -> RunEvent {
    RunEvent {
        run_id: run.into(),
        seq,
        at: seq as i64 * 10,
        kind: EventKind::Custom {
            path: "p".into(),
            name: name.into(),
            data: json!(seq),
        },
    }
}

fn step(path: &str, status: StepStatus, output: Option<Value>, at: i64) -> StepRecord {
    StepRecord {
        path: path.into(),
        kind: RecordKind::Step,
        status,
        output: output.map(Arc::new),
        error: None,
        payload: None,
        resume: None,
        attempt: 1,
        updated_at: at,
    }
}

/// Creates a run owned by `owner` (one commit, with its first event).
fn create(s: &dyn Store, id: &str, workflow: &str, at: i64, owner: Option<&str>) {
    s.commit(
        id,
        Batch {
            create: Some(record(id, workflow, at, owner)),
            events: vec![event(id, 1, "started")],
            ..Batch::default()
        },
    )
    .unwrap();
}

fn finish(s: &dyn Store, id: &str, status: RunStatus, at: i64) {
    s.commit(
        id,
        Batch {
            update: Some(RunUpdate {
                status,
                output: (status == RunStatus::Succeeded).then(|| Arc::new(json!("done"))),
                error: (status != RunStatus::Succeeded).then(|| "stopped".to_string()),
                updated_at: at,
                release: true,
            }),
            ..Batch::default()
        },
    )
    .unwrap();
}

/// `Store::claim_lapsed` for `owner` at `now` (lease 30 s), at most `limit` runs.
fn claim_waiting(
    s: &dyn Store,
    fingerprints: &[String],
    owner: &str,
    now: i64,
    limit: usize,
    limits: &ConcurrencyLimits,
) -> Vec<RunRecord> {
    s.claim_lapsed(&LapsedClaim {
        fingerprints,
        new_owner: owner,
        now,
        lease_until: now + 30_000,
        limit,
        limits,
    })
    .unwrap()
}

fn ids_of(runs: &[RunRecord]) -> Vec<&str> {
    runs.iter().map(|r| r.id.as_str()).collect()
}

/// Creates a run with the given status, owner and lease (one commit).
fn create_as(
    s: &dyn Store,
    id: &str,
    workflow: &str,
    at: i64,
    status: RunStatus,
    owner: Option<&str>,
    lease_until: Option<i64>,
) {
    let mut r = record(id, workflow, at, owner);
    r.status = status;
    r.lease_until = lease_until;
    s.commit(
        id,
        Batch {
            create: Some(r),
            ..Batch::default()
        },
    )
    .unwrap();
}

fn sorted_steps(s: &dyn Store, run: &str) -> Vec<StepRecord> {
    let mut v = s.steps(run).unwrap();
    v.sort_by(|a, b| a.path.cmp(&b.path));
    v
}

// ---------------------------------------------------------------------------------------------
// The tests, each against a fresh store.

fn runs_round_trip(s: &dyn Store) {
    let id = run_id(1_700_000_000_000, 1);
    create(s, &id, "wf", 1_700_000_000_000, Some("engine-a"));
    let r = s.run(&id).unwrap().unwrap();
    assert_eq!(r, record(&id, "wf", 1_700_000_000_000, Some("engine-a")));
    assert!(s.run("missing").unwrap().is_none());
    // A status change without release keeps the owner; with release drops it.
    s.commit(
        &id,
        Batch {
            update: Some(RunUpdate {
                status: RunStatus::Suspended,
                output: None,
                error: None,
                updated_at: 1_700_000_000_500,
                release: false,
            }),
            ..Batch::default()
        },
    )
    .unwrap();
    let r = s.run(&id).unwrap().unwrap();
    assert_eq!(r.status, RunStatus::Suspended);
    assert_eq!(r.owner.as_deref(), Some("engine-a"));
    finish(s, &id, RunStatus::Succeeded, 1_700_000_001_000);
    let r = s.run(&id).unwrap().unwrap();
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!(r.output.as_deref(), Some(&json!("done")));
    assert_eq!(r.updated_at, 1_700_000_001_000);
    assert_eq!((r.owner, r.lease_until), (None, None));
    // Values keep their JSON exactly (unicode, nesting, big integers).
    let id2 = run_id(1_700_000_000_001, 2);
    let mut rec = record(&id2, "wf", 1_700_000_000_001, None);
    rec.input = Arc::new(json!({"ü": ["😀", 9007199254740991i64, -0.5, null, {"a": {}}]}));
    s.commit(
        &id2,
        Batch {
            create: Some(rec.clone()),
            ..Batch::default()
        },
    )
    .unwrap();
    assert_eq!(s.run(&id2).unwrap().unwrap(), rec);
}

fn a_run_created_and_finished_in_one_commit_is_stored_finished(s: &dyn Store) {
    let id = run_id(1_700_000_000_000, 3);
    s.commit(
        &id,
        Batch {
            create: Some(record(&id, "wf", 1_700_000_000_000, Some("e"))),
            update: Some(RunUpdate {
                status: RunStatus::Succeeded,
                output: Some(Arc::new(json!(42))),
                error: None,
                updated_at: 1_700_000_000_010,
                release: true,
            }),
            ..Batch::default()
        },
    )
    .unwrap();
    let r = s.run(&id).unwrap().unwrap();
    assert_eq!(r.status, RunStatus::Succeeded);
    assert_eq!(r.output.as_deref(), Some(&json!(42)));
    assert_eq!(r.owner, None);
}

fn steps_are_one_row_per_path(s: &dyn Store) {
    let id = run_id(1_700_000_000_000, 4);
    create(s, &id, "wf", 1_700_000_000_000, Some("e"));
    s.commit(
        &id,
        Batch {
            steps: vec![
                step("a", StepStatus::Running, None, 1),
                step("b", StepStatus::Succeeded, Some(json!({"b": 1})), 2),
            ],
            ..Batch::default()
        },
    )
    .unwrap();
    let mut suspended = step("a", StepStatus::Suspended, None, 3);
    suspended.payload = Some(json!({"ask": "why"}));
    suspended.resume = Some(json!({"because": true}));
    suspended.attempt = 3;
    suspended.error = Some("first try failed".into());
    let mut branch = step("c", StepStatus::Succeeded, Some(json!({"arm": "x"})), 4);
    branch.kind = RecordKind::Branch;
    s.commit(
        &id,
        Batch {
            steps: vec![suspended.clone(), branch.clone()],
            ..Batch::default()
        },
    )
    .unwrap();
    assert_eq!(
        sorted_steps(s, &id),
        vec![
            suspended,
            step("b", StepStatus::Succeeded, Some(json!({"b": 1})), 2),
            branch
        ]
    );
    assert!(s.steps("other").unwrap().is_empty());
}

fn cleared_paths_are_deleted_before_the_batch_writes_its_steps(s: &dyn Store) {
    let id = run_id(1_700_000_000_000, 14);
    create(s, &id, "wf", 1_700_000_000_000, Some("e"));
    let mut failed = step("b", StepStatus::Failed, None, 2);
    failed.error = Some("down".into());
    s.commit(
        &id,
        Batch {
            steps: vec![
                step("a", StepStatus::Succeeded, Some(json!(1)), 1),
                failed.clone(),
                step("c", StepStatus::Failed, None, 3),
            ],
            ..Batch::default()
        },
    )
    .unwrap();
    // A fenced batch clears nothing either.
    let refused = s.commit(
        &id,
        Batch {
            clear: vec!["b".into()],
            fence: Some("someone-else".into()),
            ..Batch::default()
        },
    );
    assert!(
        matches!(refused, Err(miyabi::StoreError::Fenced { .. })),
        "{refused:?}"
    );
    assert_eq!(sorted_steps(s, &id).len(), 3);
    // Cleared first, then written: `c` is replaced by the new record, `b` is gone, and a path
    // with no record is no error.
    s.commit(
        &id,
        Batch {
            clear: vec!["b".into(), "c".into(), "never-ran".into()],
            steps: vec![step("c", StepStatus::Running, None, 4)],
            fence: Some("e".into()),
            ..Batch::default()
        },
    )
    .unwrap();
    assert_eq!(
        sorted_steps(s, &id),
        vec![
            step("a", StepStatus::Succeeded, Some(json!(1)), 1),
            step("c", StepStatus::Running, None, 4)
        ]
    );
}

fn events_are_kept_in_order_and_read_by_range(s: &dyn Store) {
    let id = run_id(1_700_000_000_000, 5);
    create(s, &id, "wf", 1_700_000_000_000, Some("e"));
    let events: Vec<RunEvent> = (2..=41).map(|n| event(&id, n, &format!("e{n}"))).collect();
    for chunk in events.chunks(13) {
        s.commit(
            &id,
            Batch {
                events: chunk.to_vec(),
                ..Batch::default()
            },
        )
        .unwrap();
    }
    let all = s.events(&id, 2, usize::MAX).unwrap();
    assert_eq!(all, events);
    assert_eq!(s.events(&id, 17, 3).unwrap(), events[15..18].to_vec());
    assert_eq!(s.events(&id, 1, 1).unwrap()[0].seq, 1);
    assert!(s.events(&id, 42, 10).unwrap().is_empty());
    assert_eq!(s.last_seq(&id).unwrap(), 41);
    assert_eq!(s.last_seq("none").unwrap(), 0);
    assert_eq!(s.events(&id, 41, 5).unwrap()[0], events[39]);
}

fn state_keys_are_set_and_overwritten(s: &dyn Store) {
    let id = run_id(1_700_000_000_000, 6);
    create(s, &id, "wf", 1_700_000_000_000, Some("e"));
    s.commit(
        &id,
        Batch {
            state: vec![("a".into(), json!(1)), ("b".into(), json!({"x": [1]}))],
            ..Batch::default()
        },
    )
    .unwrap();
    s.commit(
        &id,
        Batch {
            state: vec![("a".into(), json!("two"))],
            ..Batch::default()
        },
    )
    .unwrap();
    let mut st = s.state(&id).unwrap();
    st.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        st,
        vec![("a".into(), json!("two")), ("b".into(), json!({"x": [1]}))]
    );
}

fn claims_are_conditional(s: &dyn Store) {
    let id = run_id(1_700_000_000_000, 7);
    create(s, &id, "wf", 1_700_000_000_000, Some("a"));
    let claim = |status, owner, new_owner| {
        s.claim(&Claim {
            run: &id,
            status,
            owner,
            new_owner,
            lease_until: 99,
        })
        .unwrap()
    };
    assert!(!claim(RunStatus::Running, Some("x"), "b"), "wrong owner");
    assert!(!claim(RunStatus::Suspended, Some("a"), "b"), "wrong status");
    assert!(!claim(RunStatus::Running, None, "b"), "it has an owner");
    assert!(claim(RunStatus::Running, Some("a"), "b"));
    let r = s.run(&id).unwrap().unwrap();
    assert_eq!((r.owner.as_deref(), r.lease_until), (Some("b"), Some(99)));
    assert!(!claim(RunStatus::Running, Some("a"), "c"), "a lost it");
    assert!(
        !s.claim(&Claim {
            run: "missing",
            status: RunStatus::Running,
            owner: None,
            new_owner: "x",
            lease_until: 1,
        })
        .unwrap()
    );
    // A suspended, released run is claimed with no owner, and becomes running.
    s.commit(
        &id,
        Batch {
            update: Some(RunUpdate {
                status: RunStatus::Suspended,
                output: None,
                error: None,
                updated_at: 5,
                release: true,
            }),
            fence: Some("b".into()),
            ..Batch::default()
        },
    )
    .unwrap();
    assert!(claim(RunStatus::Suspended, None, "d"));
    let r = s.run(&id).unwrap().unwrap();
    assert_eq!(r.status, RunStatus::Running);
    assert_eq!(r.owner.as_deref(), Some("d"));
}

fn renew_extends_only_the_owners_running_runs(s: &dyn Store) {
    let (a, b, c) = (
        run_id(1_700_000_000_000, 8),
        run_id(1_700_000_000_001, 8),
        run_id(1_700_000_000_002, 8),
    );
    create(s, &a, "wf", 1_700_000_000_000, Some("me"));
    create(s, &b, "wf", 1_700_000_000_001, Some("other"));
    create(s, &c, "wf", 1_700_000_000_002, Some("me"));
    finish(s, &c, RunStatus::Failed, 1_700_000_000_003);
    s.renew("me", 5_000_000_000_000).unwrap();
    assert_eq!(
        s.run(&a).unwrap().unwrap().lease_until,
        Some(5_000_000_000_000)
    );
    assert_eq!(
        s.run(&b).unwrap().unwrap().lease_until,
        Some(1_700_000_030_001)
    );
    assert_eq!(s.run(&c).unwrap().unwrap().lease_until, None);
}

fn fenced_batches_write_nothing(s: &dyn Store) {
    let id = run_id(1_700_000_000_000, 9);
    create(s, &id, "wf", 1_700_000_000_000, Some("old"));
    s.commit(
        &id,
        Batch {
            steps: vec![step("a", StepStatus::Succeeded, Some(json!(1)), 1)],
            events: vec![event(&id, 2, "a")],
            fence: Some("old".into()),
            ..Batch::default()
        },
    )
    .unwrap();
    assert!(
        s.claim(&Claim {
            run: &id,
            status: RunStatus::Running,
            owner: Some("old"),
            new_owner: "new",
            lease_until: 1,
        })
        .unwrap()
    );
    let err = s
        .commit(
            &id,
            Batch {
                steps: vec![step("b", StepStatus::Succeeded, Some(json!(2)), 2)],
                state: vec![("k".into(), json!(1))],
                events: vec![event(&id, 3, "b")],
                update: Some(RunUpdate {
                    status: RunStatus::Succeeded,
                    output: Some(Arc::new(json!("zombie"))),
                    error: None,
                    updated_at: 3,
                    release: true,
                }),
                fence: Some("old".into()),
                ..Batch::default()
            },
        )
        .unwrap_err();
    match err {
        miyabi::StoreError::Fenced { run, owner } => {
            assert_eq!(run, id);
            assert_eq!(owner.as_deref(), Some("new"));
        }
        other => panic!("expected Fenced, got {other}"),
    }
    assert_eq!(s.steps(&id).unwrap().len(), 1);
    assert!(s.state(&id).unwrap().is_empty());
    assert_eq!(s.last_seq(&id).unwrap(), 2);
    let r = s.run(&id).unwrap().unwrap();
    assert_eq!(
        (r.status, r.owner.as_deref()),
        (RunStatus::Running, Some("new"))
    );
    // The new owner writes; after it releases the run, any fenced write is refused.
    finish(s, &id, RunStatus::Succeeded, 4);
    let err = s
        .commit(
            &id,
            Batch {
                events: vec![event(&id, 3, "late")],
                fence: Some("new".into()),
                ..Batch::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(err, miyabi::StoreError::Fenced { owner: None, .. }),
        "{err}"
    );
}

fn a_group_commits_each_batch_on_its_own(s: &dyn Store) {
    let ids: Vec<String> = (0..3).map(|i| run_id(1_700_000_000_000 + i, 10)).collect();
    for (i, id) in ids.iter().enumerate() {
        create(s, id, "wf", 1_700_000_000_000 + i as i64, Some("me"));
    }
    s.claim(&Claim {
        run: &ids[1],
        status: RunStatus::Running,
        owner: Some("me"),
        new_owner: "thief",
        lease_until: 1,
    })
    .unwrap();
    let batches = ids
        .iter()
        .map(|id| {
            (
                Arc::<str>::from(id.as_str()),
                Batch {
                    steps: vec![step("s", StepStatus::Succeeded, Some(json!(id)), 1)],
                    events: vec![event(id, 2, "s")],
                    fence: Some("me".into()),
                    ..Batch::default()
                },
            )
        })
        .collect();
    let results = s.commit_group(batches);
    assert_eq!(results.len(), 3);
    assert!(results[0].is_ok() && results[2].is_ok(), "{results:?}");
    assert!(matches!(results[1], Err(miyabi::StoreError::Fenced { .. })));
    assert_eq!(s.steps(&ids[0]).unwrap().len(), 1);
    assert!(s.steps(&ids[1]).unwrap().is_empty());
    assert_eq!(s.steps(&ids[2]).unwrap().len(), 1);
    assert_eq!(s.last_seq(&ids[1]).unwrap(), 1);
}

fn lapsed_and_unowned_runs_are_claimed_once(s: &dyn Store) {
    let now = 1_700_000_100_000;
    let unowned = run_id(now - 5, 11);
    let lapsed = run_id(now - 4, 11);
    let live = run_id(now - 3, 11);
    let other_wf = run_id(now - 2, 11);
    let done = run_id(now - 1, 11);
    create(s, &unowned, "wf", now - 5, None);
    let mut r = record(&lapsed, "wf", now - 4, Some("dead"));
    r.lease_until = Some(now - 1);
    s.commit(
        &lapsed,
        Batch {
            create: Some(r),
            ..Batch::default()
        },
    )
    .unwrap();
    let mut r = record(&live, "wf", now - 3, Some("alive"));
    r.lease_until = Some(now + 10_000);
    s.commit(
        &live,
        Batch {
            create: Some(r),
            ..Batch::default()
        },
    )
    .unwrap();
    create(s, &other_wf, "other", now - 2, None);
    create(s, &done, "wf", now - 1, None);
    finish(s, &done, RunStatus::Succeeded, now);
    let fps = vec!["fp-wf".to_string()];
    let none = ConcurrencyLimits::default();
    let first = claim_waiting(s, &fps, "w1", now, 1, &none);
    assert_eq!(first.len(), 1, "the limit holds");
    assert_eq!(first[0].id, unowned, "oldest first");
    assert_eq!(first[0].owner.as_deref(), Some("w1"));
    let second = claim_waiting(s, &fps, "w2", now, 10, &none);
    assert_eq!(ids_of(&second), vec![lapsed.as_str()]);
    assert_eq!(second[0].lease_until, Some(now + 30_000));
    assert!(claim_waiting(s, &fps, "w3", now, 10, &none).is_empty());
    assert_eq!(
        s.run(&unowned).unwrap().unwrap().owner.as_deref(),
        Some("w1")
    );
    assert_eq!(
        s.run(&live).unwrap().unwrap().owner.as_deref(),
        Some("alive")
    );
    assert_eq!(s.run(&other_wf).unwrap().unwrap().owner, None);
    assert!(claim_waiting(s, &[], "w3", now, 10, &none).is_empty());
}

/// Claims respect the concurrency limits: executing runs (running, owned, lease not ended)
/// take slots, waiting and suspended ones do not; a workflow at its limit is passed over,
/// oldest first otherwise; a global limit bounds every workflow together.
fn claims_respect_concurrency_limits(s: &dyn Store) {
    let now = 1_700_000_200_000;
    let id = |at: i64| run_id(at, 12);
    let (a_busy, a_suspended, a_lapsed) = (id(now - 100), id(now - 99), id(now - 90));
    let a: Vec<String> = (0..4).map(|i| id(now - 80 + i)).collect();
    let b: Vec<String> = (0..3).map(|i| id(now - 70 + i)).collect();
    let (c_busy, a_done) = (id(now - 60), id(now - 50));
    create_as(
        s,
        &a_busy,
        "a",
        now - 100,
        RunStatus::Running,
        Some("busy"),
        Some(now + 10_000),
    );
    // Suspended runs take no slot, even with an owner.
    create_as(
        s,
        &a_suspended,
        "a",
        now - 99,
        RunStatus::Suspended,
        Some("busy"),
        Some(now + 10_000),
    );
    create_as(
        s,
        &a_lapsed,
        "a",
        now - 90,
        RunStatus::Running,
        Some("dead"),
        Some(now - 1),
    );
    for (i, r) in a.iter().enumerate() {
        create(s, r, "a", now - 80 + i as i64, None);
    }
    for (i, r) in b.iter().enumerate() {
        create(s, r, "b", now - 70 + i as i64, None);
    }
    // A run of a workflow the claimers cannot execute counts all the same.
    create_as(
        s,
        &c_busy,
        "c",
        now - 60,
        RunStatus::Running,
        Some("other"),
        Some(now + 10_000),
    );
    create(s, &a_done, "a", now - 50, None);
    finish(s, &a_done, RunStatus::Succeeded, now - 40);

    let fps = vec!["fp-a".to_string(), "fp-b".to_string()];
    let limits = ConcurrencyLimits::default().workflow("a", 2);
    // One slot of `a` is left (a_busy holds the other): its oldest waiting run takes it, and
    // the younger runs of `b`, which has no limit, are taken past the rest of `a`.
    let first = claim_waiting(s, &fps, "w1", now, 10, &limits);
    let mut want = vec![a_lapsed.as_str()];
    want.extend(b.iter().map(String::as_str));
    assert_eq!(ids_of(&first), want);
    assert!(first.iter().all(|r| r.owner.as_deref() == Some("w1")));
    for r in &a {
        assert_eq!(s.run(r).unwrap().unwrap().owner, None, "{r} still waits");
    }
    assert!(
        claim_waiting(s, &fps, "w2", now, 10, &limits).is_empty(),
        "`a` is full"
    );
    // A run of `a` ends: its slot goes to the oldest waiting run of `a`, and only to it.
    finish(s, &a_busy, RunStatus::Succeeded, now);
    let freed = claim_waiting(s, &fps, "w2", now, 10, &limits);
    assert_eq!(ids_of(&freed), vec![a[0].as_str()]);
    assert!(claim_waiting(s, &fps, "w3", now, 10, &limits).is_empty());

    // Later, every lease above has ended: those runs wait again and hold no slot.
    let later = now + 40_000;
    let mut want = vec![a_lapsed.as_str(), a[0].as_str()];
    want.extend(b.iter().map(String::as_str));
    // The engine's own room bounds the claim too.
    let one = claim_waiting(s, &fps, "w4", later, 1, &limits);
    assert_eq!(ids_of(&one), vec![a_lapsed.as_str()]);
    let rest = claim_waiting(s, &fps, "w4", later, 10, &limits);
    assert_eq!(ids_of(&rest), want[1..].to_vec());

    // A global limit of 6: w4's 5 runs execute, one slot is left. `a` is full, so it goes to
    // the lapsed run of `c` (for an engine that executes `c`); then nothing fits.
    let global = ConcurrencyLimits::default().global(6).workflow("a", 2);
    let fps_c = vec!["fp-a".to_string(), "fp-b".to_string(), "fp-c".to_string()];
    let taken = claim_waiting(s, &fps_c, "w5", later, 10, &global);
    assert_eq!(ids_of(&taken), vec![c_busy.as_str()]);
    assert!(claim_waiting(s, &fps_c, "w6", later, 10, &global).is_empty());
    // Without the per-workflow limit, the global one alone still admits nothing more.
    let global_only = ConcurrencyLimits::default().global(6);
    assert!(claim_waiting(s, &fps_c, "w6", later, 10, &global_only).is_empty());
    // One run ends: one more run (the oldest waiting one, of `a`) under the global limit only.
    finish(s, &b[0], RunStatus::Succeeded, later);
    let last = claim_waiting(s, &fps_c, "w6", later, 10, &global_only);
    assert_eq!(ids_of(&last), vec![a[1].as_str()]);
    // What executes now: exactly the limits' worth.
    let executing: Vec<RunRecord> = s
        .list_runs(&RunFilter {
            status: Some(RunStatus::Running),
            ..RunFilter::default()
        })
        .unwrap()
        .into_iter()
        .filter(|r| r.is_executing(later))
        .collect();
    assert_eq!(executing.len(), 6);
    assert_eq!(executing.iter().filter(|r| r.workflow == "a").count(), 3);
    for r in &a[2..] {
        assert_eq!(s.run(r).unwrap().unwrap().owner, None, "{r} still waits");
    }
}

/// Engines racing to claim through their own handles on one store never exceed a limit: 8
/// threads, 40 waiting runs of `a` (at most 3) and 10 of `b` (at most 5 runs in all), in 5
/// rounds (each with workflows of its own, when the leases of the rounds before have ended).
fn concurrent_claims_never_exceed_the_limits(open: &(dyn Fn() -> Arc<dyn Store> + Sync)) {
    let setup = open();
    for round in 0..5i64 {
        let now = 1_700_000_300_000 + round * 100_000;
        let (a, b) = (format!("a{round}"), format!("b{round}"));
        for i in 0..50 {
            let workflow = if i % 5 == 4 { &b } else { &a };
            create(
                &*setup,
                &run_id(now - 100 + i, 13),
                workflow,
                now - 100 + i,
                None,
            );
        }
        let fps = vec![format!("fp-{a}"), format!("fp-{b}")];
        let limits = ConcurrencyLimits::default()
            .global(5)
            .workflow(a.clone(), 3);
        let claimed: Vec<RunRecord> = std::thread::scope(|scope| {
            let start = Arc::new(std::sync::Barrier::new(8));
            let handles: Vec<_> = (0..8)
                .map(|t| {
                    let (store, start, fps, limits) = (open(), Arc::clone(&start), &fps, &limits);
                    scope.spawn(move || {
                        let owner = format!("w{t}");
                        start.wait();
                        let mut mine = Vec::new();
                        loop {
                            let got = claim_waiting(&*store, fps, &owner, now, 2, limits);
                            if got.is_empty() {
                                return mine;
                            }
                            mine.extend(got);
                        }
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
        let count = |runs: &[RunRecord], w: &str| runs.iter().filter(|r| r.workflow == w).count();
        assert!(
            claimed.len() <= 5,
            "round {round}: {} runs claimed",
            claimed.len()
        );
        assert!(
            count(&claimed, &a) <= 3,
            "round {round}: {} runs of `a`",
            count(&claimed, &a)
        );
        let mut ids: Vec<&str> = ids_of(&claimed);
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(
            ids.len(),
            claimed.len(),
            "round {round}: a run was claimed twice"
        );
        // A last claim alone fills what is left (a store may give runs back when claims race,
        // the trait's default does: which runs then hold the slots may differ, not how many).
        let last = claim_waiting(&*setup, &fps, "w-last", now, 50, &limits);
        let all: Vec<RunRecord> = claimed.into_iter().chain(last).collect();
        assert_eq!(all.len(), 5, "round {round}");
        assert!(count(&all, &a) <= 3, "round {round}");
        let executing = setup
            .list_runs(&RunFilter {
                status: Some(RunStatus::Running),
                ..RunFilter::default()
            })
            .unwrap()
            .into_iter()
            .filter(|r| r.is_executing(now))
            .count();
        assert_eq!(executing, 5, "round {round}");
    }
}

fn listings_filter_and_page_newest_first(s: &dyn Store) {
    let base = 1_700_000_000_000;
    let mut ids = Vec::new();
    for i in 0..10i64 {
        let id = run_id(base + i * 1000, 12);
        let wf = if i % 2 == 0 { "even" } else { "odd" };
        create(s, &id, wf, base + i * 1000, Some("e"));
        if i % 3 == 0 {
            finish(s, &id, RunStatus::Succeeded, base + i * 1000 + 1);
        }
        ids.push(id);
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    let list = |f: RunFilter| -> Vec<String> {
        let runs = s.list_runs(&f).unwrap();
        let sums = s.list_run_summaries(&f).unwrap();
        let a: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
        let b: Vec<String> = sums.iter().map(|r| r.id.clone()).collect();
        assert_eq!(a, b, "summaries list the same runs");
        for (r, sm) in runs.iter().zip(&sums) {
            assert_eq!(RunSummary::from(r.clone()), *sm);
        }
        a
    };
    assert_eq!(list(RunFilter::default()), newest_first);
    assert_eq!(
        list(RunFilter {
            workflow: Some("odd".into()),
            ..Default::default()
        }),
        newest_first
            .iter()
            .filter(|id| ids.iter().position(|x| x == *id).unwrap() % 2 == 1)
            .cloned()
            .collect::<Vec<_>>()
    );
    assert_eq!(
        list(RunFilter {
            status: Some(RunStatus::Succeeded),
            ..Default::default()
        }),
        vec![
            ids[9].clone(),
            ids[6].clone(),
            ids[3].clone(),
            ids[0].clone()
        ]
    );
    assert_eq!(
        list(RunFilter {
            status: Some(RunStatus::Running),
            workflow: Some("even".into()),
            limit: Some(2),
            ..Default::default()
        }),
        vec![ids[8].clone(), ids[4].clone()]
    );
    assert_eq!(
        list(RunFilter {
            created_after: Some(base + 3000),
            created_before: Some(base + 6000),
            ..Default::default()
        }),
        vec![ids[5].clone(), ids[4].clone(), ids[3].clone()]
    );
    // Keyset paging: pages of 3 follow each other without gaps or repeats.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = s
            .list_runs(&RunFilter {
                before: before.clone(),
                limit: Some(3),
                ..Default::default()
            })
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 3);
        let last = page.last().unwrap();
        before = Some((last.created_at, last.id.clone()));
        seen.extend(page.into_iter().map(|r| r.id));
    }
    assert_eq!(seen, newest_first);
    assert!(
        list(RunFilter {
            workflow: Some("none".into()),
            ..Default::default()
        })
        .is_empty()
    );
}

fn prune_deletes_only_finished_runs_and_their_rows(s: &dyn Store) {
    let base = 1_700_000_000_000;
    let mut ids = Vec::new();
    for i in 0..6i64 {
        let id = run_id(base + i, 13);
        create(s, &id, "wf", base + i, Some("e"));
        s.commit(
            &id,
            Batch {
                steps: vec![step("a", StepStatus::Succeeded, Some(json!(i)), 1)],
                state: vec![("k".into(), json!(i))],
                ..Batch::default()
            },
        )
        .unwrap();
        if i < 4 {
            finish(s, &id, RunStatus::Succeeded, base + 10 + i);
        }
        ids.push(id);
    }
    // Keep the newest 2 finished: ids[0], ids[1] go.
    let n = s
        .prune(&Retention::default().keep_last(2), base + 100)
        .unwrap();
    assert_eq!(n, 2);
    assert!(s.run(&ids[0]).unwrap().is_none());
    assert!(s.steps(&ids[0]).unwrap().is_empty());
    assert!(s.state(&ids[1]).unwrap().is_empty());
    assert_eq!(s.last_seq(&ids[1]).unwrap(), 0);
    assert!(s.run(&ids[2]).unwrap().is_some());
    // By age: everything finished before the cutoff goes; running runs stay.
    let n = s
        .prune(
            &Retention::older_than(std::time::Duration::from_millis(50)),
            base + 10_000,
        )
        .unwrap();
    assert_eq!(n, 2);
    assert!(s.run(&ids[3]).unwrap().is_none());
    assert!(s.run(&ids[4]).unwrap().is_some());
    assert_eq!(s.steps(&ids[5]).unwrap().len(), 1);
    assert_eq!(s.prune(&Retention::default(), base).unwrap(), 0);
}

fn approval(run: &str, gate: &str, at: i64, deadline: Option<i64>) -> Approval {
    serde_json::from_value(json!({
        "run_id": run, "workflow": "wf", "gate": gate, "status": "pending",
        "title": "Ship it?", "summary": "a change", "data": {"diff": "+1"},
        "approvers": ["alice", "team:leads"], "policy": "any",
        "deadline_at": deadline, "on_timeout": "reject", "created_at": at, "version": 1
    }))
    .unwrap()
}

fn audit(run: &str, gate: &str, at: i64, actor: &str, action: &str) -> AuditRecord {
    AuditRecord {
        id: 0,
        run_id: run.into(),
        gate: gate.into(),
        at,
        actor: actor.into(),
        action: action.into(),
        comment: None,
        diff: None,
        data: None,
    }
}

fn delivery(run: &str, gate: &str, notifier: &str, next_at: i64) -> Delivery {
    Delivery {
        run_id: run.into(),
        gate: gate.into(),
        notifier: notifier.into(),
        event: "requested".into(),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_at,
        last_error: None,
        updated_at: next_at,
    }
}

fn gates_audit_and_outbox(s: &dyn Store) {
    let g = s.gates().expect("first-party stores keep gates");
    let id = run_id(1_700_000_000_000, 14);
    create(s, &id, "wf", 1_700_000_000_000, Some("e"));
    let a = approval(&id, "review", 100, Some(500));
    let b = approval(&id, "legal", 200, None);
    s.commit(
        &id,
        Batch {
            gates: vec![
                NewGate {
                    approval: a.clone(),
                    audit: audit(&id, "review", 100, "system", "requested"),
                    deliveries: vec![delivery(&id, "review", "slack", 100)],
                },
                NewGate {
                    approval: b.clone(),
                    audit: audit(&id, "legal", 200, "system", "requested"),
                    deliveries: vec![],
                },
            ],
            fence: Some("e".into()),
            ..Batch::default()
        },
    )
    .unwrap();
    // A replayed suspension does not create the gate again.
    s.commit(
        &id,
        Batch {
            gates: vec![NewGate {
                approval: approval(&id, "review", 999, None),
                audit: audit(&id, "review", 999, "system", "requested"),
                deliveries: vec![],
            }],
            ..Batch::default()
        },
    )
    .unwrap();
    let got = g.gate(&id, "review").unwrap().unwrap();
    assert_eq!(got.created_at, 100);
    assert_eq!(got.deliveries, vec![delivery(&id, "review", "slack", 100)]);
    assert!(g.gate(&id, "nope").unwrap().is_none());
    let listed = g.list_gates(&ApprovalFilter::default()).unwrap();
    assert_eq!(
        listed.iter().map(|a| a.gate.as_str()).collect::<Vec<_>>(),
        vec!["legal", "review"],
        "newest first"
    );
    let due = g
        .list_gates(&ApprovalFilter {
            deadline_before: Some(600),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].gate, "review");
    let for_bob = g
        .list_gates(&ApprovalFilter {
            approver: Some(miyabi::approval::Approver::new("bob")),
            ..Default::default()
        })
        .unwrap();
    assert!(for_bob.is_empty());
    let for_alice = g
        .list_gates(&ApprovalFilter {
            approver: Some(miyabi::approval::Approver::new("alice")),
            limit: Some(1),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(for_alice.len(), 1);
    // Compare-and-set: a stale version changes nothing.
    let mut decided = a.clone();
    decided.status = ApprovalStatus::Approved;
    decided.version = 2;
    decided.output = Some(json!({"approved": true}));
    let update = GateUpdate {
        expected_version: 1,
        approval: decided.clone(),
        audit: vec![audit(&id, "review", 300, "alice", "approved")],
        deliveries: vec![{
            let mut d = delivery(&id, "review", "slack", 300);
            d.event = "decided".into();
            d
        }],
        before_deadline: None,
    };
    assert!(g.update_gate(&update).unwrap());
    assert!(!g.update_gate(&update).unwrap(), "version 1 is gone");
    let got = g.gate(&id, "review").unwrap().unwrap();
    assert_eq!(got.status, ApprovalStatus::Approved);
    assert_eq!(got.version, 2);
    assert_eq!(got.deliveries.len(), 2);
    let undelivered = g
        .list_gates(&ApprovalFilter {
            undelivered: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(undelivered.len(), 1);
    assert!(
        g.list_gates(&ApprovalFilter {
            deadline_before: Some(600),
            ..Default::default()
        })
        .unwrap()
        .is_empty()
    );
    // The audit trail, oldest first, filtered.
    let trail = g.audit(&AuditFilter::default()).unwrap();
    assert_eq!(
        trail.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(),
        vec!["requested", "requested", "approved"]
    );
    assert!(trail.windows(2).all(|w| w[0].id < w[1].id));
    let alice = g
        .audit(&AuditFilter {
            actor: Some("alice".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(alice.len(), 1);
    assert_eq!(
        g.audit(&AuditFilter {
            run_id: Some(id.clone()),
            gate: Some("legal".into()),
            ..Default::default()
        })
        .unwrap()
        .len(),
        1
    );
    assert_eq!(
        g.audit(&AuditFilter {
            limit: Some(2),
            ..Default::default()
        })
        .unwrap()
        .len(),
        2
    );
    // The outbox: due notifications, then their new state.
    let due = g.due_deliveries(400, 10).unwrap();
    assert_eq!(due.len(), 2);
    assert!(g.due_deliveries(50, 10).unwrap().is_empty());
    let mut sent = due[0].clone();
    sent.status = DeliveryStatus::Delivered;
    sent.attempts = 1;
    sent.updated_at = 401;
    g.update_delivery(
        &sent,
        Some(&audit(&id, "review", 401, "system:notifier", "notified")),
    )
    .unwrap();
    let got = g.gate(&id, "review").unwrap().unwrap();
    assert!(
        got.deliveries
            .iter()
            .any(|d| d.status == DeliveryStatus::Delivered && d.attempts == 1)
    );
    assert_eq!(g.audit(&AuditFilter::default()).unwrap().len(), 4);
    // Pruning the finished run deletes its gates and outbox, keeps the audit trail.
    finish(s, &id, RunStatus::Succeeded, 1_700_000_000_100);
    assert_eq!(
        s.prune(&Retention::default().keep_last(0), 1_700_000_000_200)
            .unwrap(),
        1
    );
    assert!(g.gate(&id, "review").unwrap().is_none());
    assert!(g.due_deliveries(i64::MAX, 10).unwrap().is_empty());
    assert_eq!(g.audit(&AuditFilter::default()).unwrap().len(), 4);
}

fn audit_pages_newest_first_appends_and_deadlines_hold(s: &dyn Store) {
    let g = s.gates().expect("first-party stores keep gates");
    let id = run_id(1_700_000_000_000, 15);
    create(s, &id, "wf", 1_700_000_000_000, Some("e"));
    // Audit records outside a gate change (a refused start, a cancel).
    for (i, actor) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        g.append_audit(&audit(&id, "", 1_000 + i as i64, actor, "cancel"))
            .unwrap();
    }
    let f = AuditFilter {
        run_id: Some(id.clone()),
        limit: Some(2),
        ..AuditFilter::default()
    };
    let first = g.audit_newest(&f, None).unwrap();
    assert_eq!(
        first.iter().map(|r| r.actor.as_str()).collect::<Vec<_>>(),
        ["e", "d"]
    );
    let next = g.audit_newest(&f, Some(first[1].id)).unwrap();
    assert_eq!(
        next.iter().map(|r| r.actor.as_str()).collect::<Vec<_>>(),
        ["c", "b"]
    );
    assert!(next[0].id < first[1].id);
    let oldest = g
        .audit(&AuditFilter {
            run_id: Some(id.clone()),
            ..AuditFilter::default()
        })
        .unwrap();
    assert_eq!(
        oldest.first().unwrap().actor,
        "a",
        "audit() stays oldest first"
    );

    // A decision is applied only before the gate's deadline, in the same compare-and-set.
    let a = approval(&id, "review", 100, Some(500));
    s.commit(
        &id,
        Batch {
            gates: vec![NewGate {
                approval: a.clone(),
                audit: audit(&id, "review", 100, "system", "requested"),
                deliveries: vec![],
            }],
            ..Batch::default()
        },
    )
    .unwrap();
    let mut decided = a.clone();
    decided.status = ApprovalStatus::Approved;
    decided.version = 2;
    let late = GateUpdate {
        expected_version: 1,
        approval: decided.clone(),
        audit: vec![],
        deliveries: vec![],
        before_deadline: Some(600),
    };
    assert!(!g.update_gate(&late).unwrap(), "past the deadline: refused");
    assert_eq!(
        g.gate(&id, "review").unwrap().unwrap().status,
        ApprovalStatus::Pending
    );
    let in_time = GateUpdate {
        before_deadline: Some(400),
        ..late
    };
    assert!(g.update_gate(&in_time).unwrap());
    assert_eq!(
        g.gate(&id, "review").unwrap().unwrap().status,
        ApprovalStatus::Approved
    );
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $( #[test] fn $name() { super::$name(&miyabi::MemoryStore::new()); } )*
        }
        mod sqlite {
            $( #[test] fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let store = miyabi::SqliteStore::open(dir.path().join("runs.db")).unwrap();
                super::$name(&store);
            } )*
        }
        mod postgres {
            $( #[test] fn $name() {
                let Some(store) = super::pg::fresh(stringify!($name)) else { return };
                super::$name(&*store);
            } )*
        }
        /// The `Store` trait's default methods (`claim_lapsed` above all), over SQLite.
        mod default_impl {
            $( #[test] fn $name() {
                let dir = tempfile::tempdir().unwrap();
                let store = miyabi::SqliteStore::open(dir.path().join("runs.db")).unwrap();
                super::$name(&super::Plain(std::sync::Arc::new(store)));
            } )*
        }
    };
}

/// Tests given a function that opens another handle on one store (for SQLite and Postgres a
/// separate store on the same database, as another process would have).
macro_rules! shared_conformance {
    ($($name:ident),* $(,)?) => {
        mod shared {
            mod memory {
                use crate::*;
                $( #[test] fn $name() {
                    let store: Arc<dyn Store> = Arc::new(miyabi::MemoryStore::new());
                    super::super::$name(&|| Arc::clone(&store));
                } )*
            }
            mod sqlite {
                use crate::*;
                $( #[test] fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let path = dir.path().join("runs.db");
                    super::super::$name(&|| -> Arc<dyn Store> {
                        Arc::new(miyabi::SqliteStore::open(&path).unwrap())
                    });
                } )*
            }
            mod postgres {
                $( #[test] fn $name() {
                    let Some(open) = super::super::pg::opener(stringify!($name)) else { return };
                    super::super::$name(&*open);
                } )*
            }
            mod default_impl {
                use crate::*;
                $( #[test] fn $name() {
                    let dir = tempfile::tempdir().unwrap();
                    let path = dir.path().join("runs.db");
                    super::super::$name(&|| -> Arc<dyn Store> {
                        Arc::new(super::super::Plain(Arc::new(
                            miyabi::SqliteStore::open(&path).unwrap(),
                        )))
                    });
                } )*
            }
        }
    };
}

/// A store that implements only what `Store` requires (and the gates), forwarding to another
/// store: the trait's default methods run over it.
struct Plain(Arc<dyn Store>);

impl Store for Plain {
    fn commit(&self, run: &str, batch: Batch) -> Result<(), miyabi::StoreError> {
        self.0.commit(run, batch)
    }
    fn run(&self, id: &str) -> Result<Option<RunRecord>, miyabi::StoreError> {
        self.0.run(id)
    }
    fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunRecord>, miyabi::StoreError> {
        self.0.list_runs(f)
    }
    fn steps(&self, run: &str) -> Result<Vec<StepRecord>, miyabi::StoreError> {
        self.0.steps(run)
    }
    fn state(&self, run: &str) -> Result<Vec<(String, Value)>, miyabi::StoreError> {
        self.0.state(run)
    }
    fn events(
        &self,
        run: &str,
        from: u64,
        limit: usize,
    ) -> Result<Vec<RunEvent>, miyabi::StoreError> {
        self.0.events(run, from, limit)
    }
    fn last_seq(&self, run: &str) -> Result<u64, miyabi::StoreError> {
        self.0.last_seq(run)
    }
    fn claim(&self, claim: &Claim<'_>) -> Result<bool, miyabi::StoreError> {
        self.0.claim(claim)
    }
    fn renew(&self, owner: &str, lease_until: i64) -> Result<(), miyabi::StoreError> {
        self.0.renew(owner, lease_until)
    }
    fn prune(&self, rule: &Retention, now: i64) -> Result<u64, miyabi::StoreError> {
        self.0.prune(rule, now)
    }
    fn gates(&self) -> Option<&dyn GateStore> {
        self.0.gates()
    }
}

conformance!(
    runs_round_trip,
    a_run_created_and_finished_in_one_commit_is_stored_finished,
    steps_are_one_row_per_path,
    cleared_paths_are_deleted_before_the_batch_writes_its_steps,
    events_are_kept_in_order_and_read_by_range,
    state_keys_are_set_and_overwritten,
    claims_are_conditional,
    renew_extends_only_the_owners_running_runs,
    fenced_batches_write_nothing,
    a_group_commits_each_batch_on_its_own,
    lapsed_and_unowned_runs_are_claimed_once,
    claims_respect_concurrency_limits,
    listings_filter_and_page_newest_first,
    prune_deletes_only_finished_runs_and_their_rows,
    gates_audit_and_outbox,
    audit_pages_newest_first_appends_and_deadlines_hold,
);

shared_conformance!(concurrent_claims_never_exceed_the_limits);

/// A fresh Postgres store per test (its own schema), or `None` (with the reason printed)
/// when no server is configured.
mod pg {
    use miyabi::store::Store;

    #[cfg(feature = "postgres")]
    pub fn url() -> Option<String> {
        match std::env::var("MIYABI_TEST_POSTGRES_URL") {
            Ok(u) if !u.is_empty() => Some(u),
            _ => {
                eprintln!("skipped: MIYABI_TEST_POSTGRES_URL not set");
                None
            }
        }
    }

    /// A schema name unique to this test and process, dropped first if it exists.
    #[cfg(feature = "postgres")]
    pub fn schema(test: &str) -> String {
        let mut name: String = format!("t{}_{test}", std::process::id());
        name.truncate(63);
        let mut c = postgres::Client::connect(&url().unwrap(), postgres::NoTls).unwrap();
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"))
            .unwrap();
        name
    }

    #[cfg(feature = "postgres")]
    pub fn fresh(test: &str) -> Option<Box<dyn Store>> {
        let url = url()?;
        let store = miyabi::PostgresStore::builder(url)
            .schema(schema(test))
            .connections(2)
            .open()
            .unwrap();
        Some(Box::new(store))
    }

    /// Opens stores (each with its own connections) on one fresh schema.
    #[cfg(feature = "postgres")]
    pub fn opener(test: &str) -> Option<Box<dyn Fn() -> std::sync::Arc<dyn Store> + Sync>> {
        let url = url()?;
        let schema = schema(test);
        Some(Box::new(move || -> std::sync::Arc<dyn Store> {
            std::sync::Arc::new(
                miyabi::PostgresStore::builder(&url)
                    .schema(&schema)
                    .connections(2)
                    .open()
                    .unwrap(),
            )
        }))
    }

    #[cfg(not(feature = "postgres"))]
    pub fn opener(_test: &str) -> Option<Box<dyn Fn() -> std::sync::Arc<dyn Store> + Sync>> {
        eprintln!("skipped: built without the `postgres` feature");
        None
    }

    /// `ANALYZE` of the `runs` table in the schema of `test`.
    #[cfg(feature = "postgres")]
    pub fn analyze(test: &str) {
        let mut name: String = format!("t{}_{test}", std::process::id());
        name.truncate(63);
        let mut c = postgres::Client::connect(&url().unwrap(), postgres::NoTls).unwrap();
        c.batch_execute(&format!("ANALYZE \"{name}\".runs"))
            .unwrap();
    }

    #[cfg(not(feature = "postgres"))]
    pub fn analyze(_test: &str) {}

    #[cfg(not(feature = "postgres"))]
    pub fn fresh(_test: &str) -> Option<Box<dyn Store>> {
        eprintln!("skipped: built without the `postgres` feature");
        None
    }
}

/// Postgres only: migrations from an empty schema and from the previous version, the
/// outbox claimed by one caller at a time, wake-ups through LISTEN/NOTIFY.
#[cfg(feature = "postgres")]
mod postgres_only {
    use super::*;

    #[test]
    fn migrations_from_empty_and_from_the_previous_version() {
        let Some(url) = pg::url() else { return };
        let schema = pg::schema("migrations");
        let fresh = miyabi::PostgresStore::builder(&url)
            .schema(&schema)
            .open()
            .unwrap();
        assert_eq!(fresh.schema_version().unwrap(), 2);
        drop(fresh);
        // Opening again finds nothing to do.
        let again = miyabi::PostgresStore::builder(&url)
            .schema(&schema)
            .open()
            .unwrap();
        assert_eq!(again.schema_version().unwrap(), 2);
        drop(again);

        let schema = pg::schema("migrations_prev");
        let old = miyabi::PostgresStore::builder(&url)
            .schema(&schema)
            .migrate_to(1)
            .open()
            .unwrap();
        assert_eq!(old.schema_version().unwrap(), 1);
        let id = run_id(1_700_000_000_000, 20);
        create(&old, &id, "wf", 1_700_000_000_000, Some("e"));
        drop(old);
        let new = miyabi::PostgresStore::builder(&url)
            .schema(&schema)
            .open()
            .unwrap();
        assert_eq!(new.schema_version().unwrap(), 2);
        assert_eq!(new.run(&id).unwrap().unwrap().workflow, "wf");
        assert!(new.gates().unwrap().gate(&id, "x").unwrap().is_none());

        // A schema from a newer build is refused, naming both versions.
        let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        c.batch_execute(&format!(
            "UPDATE \"{schema}\".schema_version SET version = 99"
        ))
        .unwrap();
        let err = miyabi::PostgresStore::builder(&url)
            .schema(&schema)
            .open()
            .unwrap_err();
        assert!(
            matches!(
                err,
                miyabi::StoreError::TooNew {
                    found: 99,
                    supported: 2,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_bad_url_or_schema_is_refused_without_showing_the_password() {
        let err = miyabi::PostgresStore::builder("postgres://u:hunter2@127.0.0.1:1/db")
            .schema("bad-name;")
            .open()
            .unwrap_err();
        assert!(err.to_string().contains("bad-name;"), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        let err = miyabi::PostgresStore::open("postgres://u:hunter2@127.0.0.1:1/db").unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    }

    #[test]
    fn a_due_notification_is_handed_to_one_caller_at_a_time() {
        let Some(url) = pg::url() else { return };
        let schema = pg::schema("outbox_claim");
        let a = miyabi::PostgresStore::builder(&url)
            .schema(&schema)
            .outbox_lease(std::time::Duration::from_secs(60))
            .open()
            .unwrap();
        let b = miyabi::PostgresStore::builder(&url)
            .schema(&schema)
            .open()
            .unwrap();
        let id = run_id(1_700_000_000_000, 21);
        create(&a, &id, "wf", 1_700_000_000_000, Some("e"));
        a.commit(
            &id,
            Batch {
                gates: vec![NewGate {
                    approval: approval(&id, "review", 100, None),
                    audit: audit(&id, "review", 100, "system", "requested"),
                    deliveries: vec![
                        delivery(&id, "review", "slack", 100),
                        delivery(&id, "review", "discord", 100),
                    ],
                }],
                ..Batch::default()
            },
        )
        .unwrap();
        let first = a.gates().unwrap().due_deliveries(1_000, 1).unwrap();
        let second = b.gates().unwrap().due_deliveries(1_000, 10).unwrap();
        assert_eq!((first.len(), second.len()), (1, 1));
        assert_ne!(first[0].notifier, second[0].notifier);
        assert!(
            b.gates()
                .unwrap()
                .due_deliveries(1_000, 10)
                .unwrap()
                .is_empty()
        );
        // Once the claim's lease has passed (a worker died while sending), it is due again.
        assert_eq!(
            a.gates()
                .unwrap()
                .due_deliveries(1_000 + 60_001, 10)
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn an_enqueued_run_wakes_listening_workers() {
        let Some(url) = pg::url() else { return };
        let schema = pg::schema("notify");
        let worker = miyabi::PostgresStore::builder(&url)
            .schema(&schema)
            .open()
            .unwrap();
        let web = miyabi::PostgresStore::builder(&url)
            .schema(&schema)
            .open()
            .unwrap();
        let wake = worker.wakeups().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // The listener's first wake-up (it looks once after connecting).
            wake.notified().await;
            let id = run_id(1_700_000_000_000, 22);
            create(&web, &id, "wf", 1_700_000_000_000, None);
            wake.notified().await;
        });
        // A run created with an owner is that owner's: no wake-up is sent for it (checked
        // through the listener's own connection: nothing queued).
        let id = run_id(1_700_000_000_001, 22);
        create(&web, &id, "wf", 1_700_000_000_001, Some("e"));
        let mut c = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        c.batch_execute(&format!("LISTEN \"miyabi_{schema}\""))
            .unwrap();
        let id = run_id(1_700_000_000_002, 22);
        create(&web, &id, "wf", 1_700_000_000_002, Some("e"));
        let enqueued = run_id(1_700_000_000_003, 22);
        create(&web, &enqueued, "wf", 1_700_000_000_003, None);
        let mut n = c.notifications();
        let mut it = n.timeout_iter(std::time::Duration::from_secs(30));
        let first = ::postgres::fallible_iterator::FallibleIterator::next(&mut it)
            .unwrap()
            .expect("a notification for the enqueued run");
        let got = vec![first.payload().to_string()];
        assert_eq!(got, vec![format!("run {enqueued}")]);
        // A run its owner lets go of while it is still running is work for any worker: that
        // commit notifies; the same release refused by the fence writes and sends nothing.
        let release = |fence: &str| Batch {
            update: Some(RunUpdate {
                status: RunStatus::Running,
                output: None,
                error: None,
                updated_at: 1_700_000_000_009,
                release: true,
            }),
            events: vec![event(&id, 50, "released")],
            fence: Some(fence.into()),
            ..Batch::default()
        };
        let before = web.events(&id, 0, 100).unwrap().len();
        let refused = web.commit(&id, release("someone-else"));
        assert!(
            matches!(refused, Err(miyabi::StoreError::Fenced { .. })),
            "{refused:?}"
        );
        assert_eq!(web.events(&id, 0, 100).unwrap().len(), before);
        web.commit(&id, release("e")).unwrap();
        let next = ::postgres::fallible_iterator::FallibleIterator::next(&mut it)
            .unwrap()
            .expect("a notification for the released run");
        assert_eq!(next.payload(), format!("run {id}"));
        let row = web.run(&id).unwrap().unwrap();
        assert_eq!((row.owner, row.lease_until), (None, None));
        assert_eq!(row.updated_at, 1_700_000_000_009);
        assert_eq!(web.events(&id, 0, 100).unwrap().len(), before + 1);
    }

    #[test]
    fn wait_for_work_returns_when_another_engine_enqueues() {
        let Some(url) = pg::url() else { return };
        let schema = pg::schema("wait_for_work");
        let open = || {
            miyabi::PostgresStore::builder(&url)
                .schema(&schema)
                .open()
                .unwrap()
        };
        let worker = miyabi::Engine::builder().store(open()).build();
        let web = miyabi::Engine::builder().store(open()).build();
        let wf = miyabi::Workflow::new("waited")
            .step(
                "a",
                miyabi::step_fn(|_ctx: miyabi::StepContext, v: Value| async move { Ok(v) }),
            )
            .commit()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let hour = std::time::Duration::from_secs(3600);
            // The listener's first wake-up (it looks once after connecting).
            assert!(worker.wait_for_work(hour).await);
            let id = web.enqueue(&wf, serde_json::json!(1)).unwrap();
            // Woken by the enqueue's NOTIFY, long before the hour.
            assert!(worker.wait_for_work(hour).await);
            worker.register(&wf);
            let taken = worker.recover_external().unwrap();
            assert_eq!(
                taken.iter().map(|r| r.id()).collect::<Vec<_>>(),
                vec![id.as_str()]
            );
        });
    }
}

/// The limits through engines: [`miyabi::Engine::work`] on two engines sharing one SQLite file
/// (two stores, as two processes would have), and what a started run does to the limits.
mod limits_in_engines {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use miyabi::{Engine, RunStatus, SqliteStore, StepContext, Workflow, step_fn};
    use serde_json::{Value, json};

    /// Runs inside their step right now, per workflow and in all, and the most seen at once.
    #[derive(Default)]
    struct Overlap {
        now: Mutex<(usize, usize, usize)>,
        most: Mutex<(usize, usize, usize)>,
    }

    impl Overlap {
        fn enter(&self, limited: bool) {
            let mut n = self.now.lock().unwrap();
            if limited {
                n.0 += 1
            } else {
                n.1 += 1
            }
            n.2 += 1;
            let mut m = self.most.lock().unwrap();
            *m = (m.0.max(n.0), m.1.max(n.1), m.2.max(n.2));
        }
        fn leave(&self, limited: bool) {
            let mut n = self.now.lock().unwrap();
            if limited {
                n.0 -= 1
            } else {
                n.1 -= 1
            }
            n.2 -= 1;
        }
    }

    fn workflow(
        id: &'static str,
        overlap: &Arc<Overlap>,
        done: &Arc<AtomicUsize>,
    ) -> miyabi::CommittedWorkflow {
        let (overlap, done) = (Arc::clone(overlap), Arc::clone(done));
        let limited = id == "limited";
        Workflow::new(id)
            .step(
                "work",
                step_fn(move |_ctx: StepContext, v: Value| {
                    let (overlap, done) = (Arc::clone(&overlap), Arc::clone(&done));
                    async move {
                        overlap.enter(limited);
                        // Work that takes a while (load, not synchronisation): runs that were
                        // claimed together are inside together.
                        tokio::time::sleep(Duration::from_millis(15)).await;
                        overlap.leave(limited);
                        done.fetch_add(1, Ordering::SeqCst);
                        Ok(v)
                    }
                }),
            )
            .commit()
            .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn wait_for_work_on_a_store_without_wake_ups_is_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::builder()
            .store(SqliteStore::open(dir.path().join("runs.db")).unwrap())
            .build();
        let before = tokio::time::Instant::now();
        assert!(!engine.wait_for_work(Duration::from_secs(3600)).await);
        assert!(before.elapsed() >= Duration::from_secs(3600));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_engines_on_one_file_execute_within_the_limits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("runs.db");
        let overlap = Arc::new(Overlap::default());
        let done = Arc::new(AtomicUsize::new(0));
        let limited = workflow("limited", &overlap, &done);
        let free = workflow("free", &overlap, &done);
        let engine = || {
            let e = Engine::builder()
                .store(SqliteStore::open(&path).unwrap())
                .workflow_limit("limited", 2)
                .global_limit(3)
                .build();
            e.register(&limited);
            e.register(&free);
            e
        };
        let (a, b) = (engine(), engine());
        let mut ids = Vec::new();
        for i in 0..16 {
            ids.push(a.enqueue(&limited, json!(i)).unwrap());
            ids.push(b.enqueue(&free, json!(i)).unwrap());
        }
        let workers: Vec<_> = [a.clone(), b.clone()]
            .into_iter()
            .map(|e| tokio::spawn(async move { e.work(Duration::from_millis(20)).await }))
            .collect();
        // Until every run has finished (re-reading the store; a guard reports a hang).
        let guard = std::time::Instant::now() + Duration::from_secs(300);
        loop {
            let finished = ids
                .iter()
                .filter(|id| {
                    a.get_sync(id)
                        .unwrap()
                        .is_some_and(|r| r.status == RunStatus::Succeeded)
                })
                .count();
            if finished == ids.len() {
                break;
            }
            assert!(
                std::time::Instant::now() < guard,
                "hung: {finished} of {} runs finished",
                ids.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for w in workers {
            w.abort();
        }
        assert_eq!(done.load(Ordering::SeqCst), 32, "each step ran once");
        let (most_limited, most_free, most_all) = *overlap.most.lock().unwrap();
        eprintln!("at once: {most_limited} limited, {most_free} free, {most_all} in all");
        assert!(
            most_limited <= 2,
            "{most_limited} runs of `limited` at once"
        );
        assert!(most_all <= 3, "{most_all} runs at once");
    }

    /// A slot freed by a run this engine started wakes its `work` loop at once: the waiting run
    /// is taken before any poll interval has passed. On tokio's paused clock, which moves only
    /// when every task waits, so a missed wake-up shows as a whole poll interval gone by
    /// (deterministic: no real time is measured).
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn a_slot_freed_by_a_started_run_wakes_the_worker() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::builder()
            .store(SqliteStore::open(dir.path().join("runs.db")).unwrap())
            .workflow_limit("gated", 1)
            .build();
        let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel::<i64>();
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let g = Arc::clone(&gate);
        let wf = Workflow::new("gated")
            .step(
                "wait",
                step_fn(move |_ctx: StepContext, v: Value| {
                    let (entered_tx, g) = (entered_tx.clone(), Arc::clone(&g));
                    async move {
                        let _ = entered_tx.send(v.as_i64().unwrap_or(-1));
                        g.acquire().await.unwrap().forget();
                        Ok(v)
                    }
                }),
            )
            .commit()
            .unwrap();
        engine.register(&wf);
        let started = engine.spawn(&wf, json!(1)).unwrap();
        assert_eq!(entered.recv().await, Some(1));
        let queued = engine.enqueue(&wf, json!(2)).unwrap();
        let poll = Duration::from_secs(3600);
        let worker = engine.clone();
        let work = tokio::spawn(async move { worker.work(poll).await });
        let t0 = tokio::time::Instant::now();
        gate.add_permits(1);
        assert_eq!(started.wait().await.unwrap().status, RunStatus::Succeeded);
        assert_eq!(entered.recv().await, Some(2), "the queued run is taken");
        assert!(
            t0.elapsed() < poll,
            "the worker waited for its poll ({:?} of paused time)",
            t0.elapsed()
        );
        gate.add_permits(1);
        assert_eq!(
            engine.wait(&queued).await.unwrap().status,
            RunStatus::Succeeded
        );
        work.abort();
    }

    /// A started run executes at once and takes a slot; the enqueued run waits until it ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_started_run_takes_a_slot_and_an_enqueued_run_waits_for_it() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::builder()
            .store(SqliteStore::open(dir.path().join("runs.db")).unwrap())
            .workflow_limit("gated", 1)
            .build();
        let (entered_tx, mut entered) = tokio::sync::mpsc::unbounded_channel::<i64>();
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let g = Arc::clone(&gate);
        let wf = Workflow::new("gated")
            .step(
                "wait",
                step_fn(move |_ctx: StepContext, v: Value| {
                    let (entered_tx, g) = (entered_tx.clone(), Arc::clone(&g));
                    async move {
                        let _ = entered_tx.send(v.as_i64().unwrap_or(-1));
                        g.acquire().await.unwrap().forget();
                        Ok(v)
                    }
                }),
            )
            .commit()
            .unwrap();
        engine.register(&wf);
        let started = engine.spawn(&wf, json!(1)).unwrap();
        assert_eq!(entered.recv().await, Some(1));
        let queued = engine.enqueue(&wf, json!(2)).unwrap();
        assert_eq!(
            engine.recover().await.unwrap(),
            Vec::<String>::new(),
            "the started run holds the slot"
        );
        let waiting = engine.get_sync(&queued).unwrap().unwrap();
        assert_eq!(waiting.status, RunStatus::Running);
        assert!(
            engine
                .store()
                .run(&queued)
                .unwrap()
                .unwrap()
                .owner
                .is_none(),
            "it waits unowned"
        );
        gate.add_permits(1);
        assert_eq!(started.wait().await.unwrap().status, RunStatus::Succeeded);
        assert_eq!(engine.recover().await.unwrap(), vec![queued.clone()]);
        assert_eq!(entered.recv().await, Some(2));
        gate.add_permits(1);
        assert_eq!(
            engine.wait(&queued).await.unwrap().status,
            RunStatus::Succeeded
        );
    }
}

/// The cost of a claim with and without concurrency limits (docs/benchmarks.md, "Claims with
/// concurrency limits"): one JSON line per figure. Ignored by default (a measurement, not a
/// check):
/// `cargo test -p miyabi --all-features --test store_conformance claim_cost -- --ignored --nocapture`
/// (Postgres figures with `MIYABI_TEST_POSTGRES_URL`). `.ci/run` skips it (`--skip claim_cost`).
#[test]
#[ignore = "a measurement (docs/benchmarks.md), not a check: run it on request"]
fn claim_cost() {
    let claims = 500usize;
    let waiting = 2_000i64;
    let shapes: [(&str, ConcurrencyLimits, bool); 3] = [
        ("no-limits", ConcurrencyLimits::default(), false),
        // Limits that never refuse: the cost of counting (and, on Postgres, the lock).
        (
            "limits",
            ConcurrencyLimits::default()
                .global(1_000_000)
                .workflow("b", 1_000_000),
            false,
        ),
        // `a` is at its limit and its 2,000 waiting runs are older than every run of `b`: each
        // claim passes over them.
        (
            "limits-full-workflow-first",
            ConcurrencyLimits::default()
                .workflow("a", 1)
                .workflow("b", 1_000_000),
            true,
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    type Open<'a> = Box<dyn Fn(&str) -> Option<Box<dyn Store>> + 'a>;
    let stores: Vec<(&str, Open<'_>)> = vec![
        (
            "sqlite",
            Box::new(|test: &str| -> Option<Box<dyn Store>> {
                let path = dir.path().join(format!("{test}.db"));
                Some(Box::new(miyabi::SqliteStore::open(path).unwrap()))
            }),
        ),
        ("postgres", Box::new(pg::fresh)),
    ];
    for (store_name, open) in &stores {
        for (shape, limits, full_first) in &shapes {
            let Some(s) = open(&format!("claim_cost_{}", shape.replace('-', "_"))) else {
                continue;
            };
            let now = 1_700_000_400_000i64;
            let mut n = 0i64;
            let mut add = |workflow: &str, owner: Option<&str>| {
                n += 1;
                let id = uuid::Builder::from_unix_timestamp_millis(
                    (now - 100_000 + n) as u64,
                    &[(n % 251) as u8; 10],
                )
                .into_uuid()
                .to_string();
                create(&*s, &id, workflow, now - 100_000 + n, owner);
            };
            if *full_first {
                add("a", Some("busy"));
            }
            for _ in 0..waiting {
                add("a", None);
            }
            for _ in 0..waiting {
                add("b", None);
            }
            if *store_name == "postgres" {
                // The planner's statistics of the filled table, as autovacuum keeps them.
                pg::analyze(&format!("claim_cost_{}", shape.replace('-', "_")));
            }
            let fps = vec!["fp-a".to_string(), "fp-b".to_string()];
            let started = std::time::Instant::now();
            for i in 0..claims {
                let got = claim_waiting(&*s, &fps, &format!("w{i}"), now, 1, limits);
                assert_eq!(got.len(), 1);
            }
            let per = started.elapsed().as_secs_f64() * 1e6 / claims as f64;
            println!(
                "{}",
                serde_json::json!({
                    "bench": format!("claim/{store_name}/{shape}"),
                    "value": (per * 10.0).round() / 10.0,
                    "unit": "µs per claim of 1 run",
                    "waiting_runs": 2 * waiting,
                    "claims": claims,
                })
            );
        }
    }
}
