//! An in-memory store for tests and ephemeral runs.

use std::collections::BTreeMap;

// Keys are engine-generated run ids and step paths: a fast non-keyed hash is enough.
use rustc_hash::FxHashMap as HashMap;
use std::sync::Mutex;

use serde_json::Value;

use super::{Batch, Claim, LapsedClaim, Room, RunFilter, RunRecord, StepRecord, Store};
use crate::error::StoreError;
use crate::workflow::RunEvent;

/// A step record keyed by its own path (so the set needs no second copy of the path).
struct ByPath(StepRecord);

impl std::hash::Hash for ByPath {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        (*self.0.path).hash(h);
    }
}

impl PartialEq for ByPath {
    fn eq(&self, other: &Self) -> bool {
        self.0.path == other.0.path
    }
}

impl Eq for ByPath {}

impl std::borrow::Borrow<str> for ByPath {
    fn borrow(&self) -> &str {
        &self.0.path
    }
}

#[derive(Default)]
struct RunData {
    run: Option<RunRecord>,
    steps: rustc_hash::FxHashSet<ByPath>,
    state: BTreeMap<String, Value>,
    events: Vec<RunEvent>,
}

/// Keeps everything in process memory; nothing survives the process.
///
/// ```
/// let store = miyabi_engine::MemoryStore::new();
/// # let _ = store;
/// ```
#[derive(Default)]
pub struct MemoryStore {
    runs: Mutex<HashMap<String, RunData>>,
    pub(super) gates: Mutex<super::memory_gates::GateData>,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, RunData>> {
        self.runs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Store for MemoryStore {
    fn commit(&self, run: &str, b: Batch) -> Result<(), StoreError> {
        let mut runs = self.lock();
        if let Some(fence) = b.fence.as_deref().filter(|_| b.create.is_none())
            && let Some(r) = runs.get(run).and_then(|d| d.run.as_ref())
            && r.owner.as_deref() != Some(fence)
        {
            return Err(StoreError::Fenced {
                run: run.to_string(),
                owner: r.owner.clone(),
            });
        }
        let data = match runs.get_mut(run) {
            Some(d) => d,
            None => runs.entry(run.to_string()).or_default(),
        };
        if let Some(r) = b.create {
            data.run = Some(r);
        }
        for path in &b.clear {
            data.steps.remove(path.as_str());
        }
        data.steps.reserve(b.steps.len());
        for s in b.steps {
            data.steps.replace(ByPath(s));
        }
        for (k, v) in b.state {
            data.state.insert(k, v);
        }
        if data.events.is_empty() {
            // The batch's vector becomes the log: no copy.
            data.events = b.events;
        } else {
            data.events.extend(b.events);
        }
        if !b.gates.is_empty() {
            self.gate_data().insert(b.gates);
        }
        if let (Some(u), Some(r)) = (b.update, data.run.as_mut()) {
            r.status = u.status;
            r.output = u.output;
            r.error = u.error;
            r.updated_at = u.updated_at;
            if u.release {
                r.owner = None;
                r.lease_until = None;
            }
        }
        Ok(())
    }

    fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        Ok(self.lock().get(id).and_then(|d| d.run.clone()))
    }

    fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
        let mut out: Vec<RunRecord> = self
            .lock()
            .values()
            .filter_map(|d| d.run.as_ref())
            .filter(|r| f.matches(r))
            .cloned()
            .collect();
        out.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
        if let Some(l) = f.limit {
            out.truncate(l);
        }
        Ok(out)
    }

    fn steps(&self, run: &str) -> Result<Vec<StepRecord>, StoreError> {
        Ok(self
            .lock()
            .get(run)
            .map(|d| d.steps.iter().map(|s| s.0.clone()).collect())
            .unwrap_or_default())
    }

    fn state(&self, run: &str) -> Result<Vec<(String, Value)>, StoreError> {
        Ok(self
            .lock()
            .get(run)
            .map(|d| {
                d.state
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    fn events(&self, run: &str, from: u64, limit: usize) -> Result<Vec<RunEvent>, StoreError> {
        Ok(self
            .lock()
            .get(run)
            .map(|d| {
                d.events
                    .iter()
                    .filter(|e| e.seq >= from)
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    fn last_seq(&self, run: &str) -> Result<u64, StoreError> {
        Ok(self
            .lock()
            .get(run)
            .and_then(|d| d.events.last().map(|e| e.seq))
            .unwrap_or(0))
    }

    fn claim(&self, c: &Claim<'_>) -> Result<bool, StoreError> {
        let mut runs = self.lock();
        let Some(r) = runs.get_mut(c.run).and_then(|d| d.run.as_mut()) else {
            return Ok(false);
        };
        if r.status != c.status || r.owner.as_deref() != c.owner {
            return Ok(false);
        }
        r.status = super::RunStatus::Running;
        r.owner = Some(c.new_owner.to_string());
        r.lease_until = Some(c.lease_until);
        Ok(true)
    }

    /// Counts and claims under the store's one lock: exact for any number of engines sharing
    /// this store.
    fn claim_lapsed(&self, c: &LapsedClaim<'_>) -> Result<Vec<RunRecord>, StoreError> {
        if c.fingerprints.is_empty() || c.limit == 0 {
            return Ok(Vec::new());
        }
        let mut runs = self.lock();
        let mut room = Room::counting(
            c.limits,
            runs.values()
                .filter_map(|d| d.run.as_ref())
                .filter(|r| r.is_executing(c.now))
                .map(|r| r.workflow.as_str()),
        );
        let mut waiting: Vec<(i64, &str)> = runs
            .values()
            .filter_map(|d| d.run.as_ref())
            .filter(|r| r.is_waiting(c.now) && c.fingerprints.contains(&r.fingerprint))
            .map(|r| (r.created_at, r.id.as_str()))
            .collect();
        waiting.sort_unstable();
        let waiting: Vec<String> = waiting.into_iter().map(|(_, id)| id.to_string()).collect();
        let mut out = Vec::new();
        for id in waiting {
            if out.len() >= c.limit || room.exhausted() {
                break;
            }
            let Some(r) = runs.get_mut(&id).and_then(|d| d.run.as_mut()) else {
                continue;
            };
            if !room.take(&r.workflow) {
                continue;
            }
            r.owner = Some(c.new_owner.to_string());
            r.lease_until = Some(c.lease_until);
            out.push(r.clone());
        }
        Ok(out)
    }

    fn gates(&self) -> Option<&dyn super::GateStore> {
        Some(self)
    }

    fn prune(&self, rule: &super::Retention, now: i64) -> Result<u64, StoreError> {
        if rule.is_empty() {
            return Ok(0);
        }
        let cutoff = rule.cutoff(now);
        let mut runs = self.lock();
        // Finished runs by workflow, newest first (ids are UUID v7: creation order).
        let mut finished: HashMap<&str, Vec<(&str, i64)>> = HashMap::default();
        for d in runs.values() {
            if let Some(r) = &d.run
                && r.status.is_terminal()
                && rule.workflow.as_deref().is_none_or(|w| w == r.workflow)
            {
                finished
                    .entry(r.workflow.as_str())
                    .or_default()
                    .push((r.id.as_str(), r.updated_at));
            }
        }
        let mut doomed: Vec<String> = Vec::new();
        for list in finished.values_mut() {
            list.sort_unstable_by(|a, b| b.0.cmp(a.0));
            for (i, (id, ended)) in list.iter().enumerate() {
                let too_many = rule.keep_last.is_some_and(|k| i >= k);
                let too_old = cutoff.is_some_and(|c| *ended < c);
                if too_many || too_old {
                    doomed.push((*id).to_string());
                }
            }
        }
        for id in &doomed {
            runs.remove(id.as_str());
        }
        drop(runs);
        self.gate_data().remove_runs(&doomed);
        Ok(doomed.len() as u64)
    }

    fn renew(&self, owner: &str, lease_until: i64) -> Result<(), StoreError> {
        for d in self.lock().values_mut() {
            if let Some(r) = d.run.as_mut()
                && r.owner.as_deref() == Some(owner)
                && r.status == super::RunStatus::Running
            {
                r.lease_until = Some(lease_until);
            }
        }
        Ok(())
    }
}
