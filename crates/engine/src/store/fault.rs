//! A store wrapper that injects faults into commits, for testing durability.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::Value;

use super::{Batch, Claim, RunFilter, RunRecord, StepRecord, Store};
use crate::error::StoreError;
use crate::workflow::RunEvent;

/// A fault to inject into one commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// The write commits, but the call reports an error (its outcome looks unknown).
    CommitThenError,
    /// The database is busy: nothing is written.
    Busy,
    /// The disk is full: nothing is written.
    DiskFull,
}

/// Wraps a store and fails chosen commits (counted from 1) with a chosen [`Fault`].
///
/// ```
/// use std::sync::Arc;
/// use miyabi_engine::MemoryStore;
/// use miyabi_engine::store::{Fault, FaultInjectingStore};
/// let store = FaultInjectingStore::new(Arc::new(MemoryStore::new()));
/// store.fail_commit(3, Fault::DiskFull);
/// ```
pub struct FaultInjectingStore {
    inner: std::sync::Arc<dyn Store>,
    commits: AtomicUsize,
    plan: Mutex<Vec<(usize, Fault)>>,
}

impl std::fmt::Debug for FaultInjectingStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultInjectingStore")
            .field("commits", &self.commits.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl FaultInjectingStore {
    /// Wraps `inner`; no faults are planned yet.
    pub fn new(inner: std::sync::Arc<dyn Store>) -> Self {
        Self {
            inner,
            commits: AtomicUsize::new(0),
            plan: Mutex::new(Vec::new()),
        }
    }

    /// Makes the `n`-th commit from now on (1-based, counting every commit) fail with `fault`.
    pub fn fail_commit(&self, n: usize, fault: Fault) {
        let at = self.commits.load(Ordering::SeqCst) + n;
        self.plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((at, fault));
    }

    /// How many commits were attempted so far.
    pub fn commit_count(&self) -> usize {
        self.commits.load(Ordering::SeqCst)
    }
}

impl Store for FaultInjectingStore {
    fn commit(&self, run: &str, batch: Batch) -> Result<(), StoreError> {
        let n = self.commits.fetch_add(1, Ordering::SeqCst) + 1;
        let fault = {
            let mut plan = self
                .plan
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let pos = plan.iter().position(|(at, _)| *at == n);
            pos.map(|p| plan.remove(p).1)
        };
        let path = "fault-injection".to_string();
        match fault {
            None => self.inner.commit(run, batch),
            Some(Fault::CommitThenError) => {
                self.inner.commit(run, batch)?;
                Err(StoreError::Indeterminate {
                    path,
                    message: format!("injected: commit #{n} succeeded but reported failure"),
                })
            }
            Some(Fault::Busy) => Err(StoreError::Busy {
                path,
                message: format!("injected: database is locked (commit #{n})"),
            }),
            Some(Fault::DiskFull) => Err(StoreError::Full {
                path,
                message: format!("injected: database or disk is full (commit #{n})"),
            }),
        }
    }
    fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        self.inner.run(id)
    }
    fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        self.inner.list_runs(f)
    }
    fn list_run_summaries(&self, f: &RunFilter) -> Result<Vec<super::RunSummary>, StoreError> {
        self.inner.list_run_summaries(f)
    }
    fn steps(&self, run: &str) -> Result<Vec<StepRecord>, StoreError> {
        self.inner.steps(run)
    }
    fn state(&self, run: &str) -> Result<Vec<(String, Value)>, StoreError> {
        self.inner.state(run)
    }
    fn events(&self, run: &str, from: u64, limit: usize) -> Result<Vec<RunEvent>, StoreError> {
        self.inner.events(run, from, limit)
    }
    fn last_seq(&self, run: &str) -> Result<u64, StoreError> {
        self.inner.last_seq(run)
    }
    fn claim(&self, c: &Claim<'_>) -> Result<bool, StoreError> {
        self.inner.claim(c)
    }
    fn renew(&self, owner: &str, lease_until: i64) -> Result<(), StoreError> {
        self.inner.renew(owner, lease_until)
    }
    fn claim_lapsed(
        &self,
        claim: &super::LapsedClaim<'_>,
    ) -> Result<Vec<super::RunRecord>, StoreError> {
        self.inner.claim_lapsed(claim)
    }
    fn wakeups(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        self.inner.wakeups()
    }
    fn prune(&self, rule: &super::Retention, now: i64) -> Result<u64, StoreError> {
        self.inner.prune(rule, now)
    }
    fn gates(&self) -> Option<&dyn super::GateStore> {
        self.inner.gates()
    }
}
