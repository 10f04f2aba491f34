//! Group commit for the tokio driver: runs that want to commit while another commit is in
//! progress queue their batches, and whoever is committing writes them all in one store call
//! ([`Store::commit_group`]; for SQLite, one transaction) before it goes back to its own run.
//!
//! A commit costs mostly its fixed part (locks, WAL frames, syscalls), so under concurrency
//! (thousands of runs finishing steps at once) this turns N commits into a few. An uncontended
//! commit goes straight to [`Store::commit`], as before: the queue is only used when a commit
//! is already in progress, and the waiting run's task yields its worker thread until the
//! committer answers.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

use crate::error::StoreError;
use crate::store::{Batch, Store};

struct Job {
    run: Arc<str>,
    batch: Batch,
    done: Reply,
}

/// Where a queued batch's result goes: an awaiting task, or a thread blocked in
/// [`GroupCommit::commit_blocking`].
enum Reply {
    Task(oneshot::Sender<Result<(), StoreError>>),
    Thread(std::sync::mpsc::SyncSender<Result<(), StoreError>>),
}

impl Reply {
    fn send(self, r: Result<(), StoreError>) {
        // The receiver gone means its run stopped waiting; nothing else needs the result.
        let _ = match self {
            Reply::Task(tx) => tx.send(r).map_err(|_| ()),
            Reply::Thread(tx) => tx.send(r).map_err(|_| ()),
        };
    }
}

fn lost() -> StoreError {
    StoreError::Indeterminate {
        path: "(the engine's store)".into(),
        message: "the task committing this batch's group stopped before answering".into(),
    }
}

/// The queue of batches waiting for the committer (one per engine).
#[derive(Default)]
pub(crate) struct GroupCommit {
    queue: Mutex<Vec<Job>>,
    /// Set while some task is committing (it drains the queue before it clears this).
    busy: AtomicBool,
}

impl GroupCommit {
    /// Commits `batch` for `run`: at once when nobody is committing, else with the group
    /// the current committer writes next.
    pub(crate) async fn commit(
        &self,
        store: &dyn Store,
        run: &Arc<str>,
        batch: Batch,
    ) -> Result<(), StoreError> {
        if self.take_lead() {
            return self.commit_and_drain(store, run, batch);
        }
        let (tx, rx) = oneshot::channel();
        self.enqueue(store, run, batch, Reply::Task(tx));
        rx.await.unwrap_or_else(|_| Err(lost()))
    }

    /// [`GroupCommit::commit`] for synchronous callers (`Engine::spawn`): the thread blocks
    /// until its batch is committed, alone or in the current committer's next group. No
    /// deadlock: the committer never waits for anything while it holds the queue.
    pub(crate) fn commit_blocking(
        &self,
        store: &dyn Store,
        run: &Arc<str>,
        batch: Batch,
    ) -> Result<(), StoreError> {
        if self.take_lead() {
            return self.commit_and_drain(store, run, batch);
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.enqueue(store, run, batch, Reply::Thread(tx));
        rx.recv().unwrap_or_else(|_| Err(lost()))
    }

    /// Becomes the committer if nobody is committing.
    fn take_lead(&self) -> bool {
        !self.busy.swap(true, Ordering::AcqRel)
    }

    /// As the committer: commits this batch, then whatever queued meanwhile.
    fn commit_and_drain(
        &self,
        store: &dyn Store,
        run: &str,
        batch: Batch,
    ) -> Result<(), StoreError> {
        let r = store.commit(run, batch);
        self.drain(store);
        r
    }

    fn enqueue(&self, store: &dyn Store, run: &Arc<str>, batch: Batch, done: Reply) {
        self.jobs().push(Job {
            run: Arc::clone(run),
            batch,
            done,
        });
        // The committer may have emptied the queue and stepped down between the caller's
        // check and the push: then take over.
        if self.take_lead() {
            self.drain(store);
        }
    }

    /// Writes queued batches until the queue is empty, then steps down.
    fn drain(&self, store: &dyn Store) {
        /// Steps down if the store panics mid-group, so later commits are not queued forever.
        struct OnPanic<'a>(&'a AtomicBool);
        impl Drop for OnPanic<'_> {
            fn drop(&mut self) {
                if std::thread::panicking() {
                    self.0.store(false, Ordering::Release);
                }
            }
        }
        let _guard = OnPanic(&self.busy);
        loop {
            let jobs = std::mem::take(&mut *self.jobs());
            if jobs.is_empty() {
                self.busy.store(false, Ordering::Release);
                // A batch queued after the take whose owner saw `busy` still set: unless
                // someone else has taken over meanwhile, write it too.
                if self.jobs().is_empty() || !self.take_lead() {
                    return;
                }
                continue;
            }
            let (items, senders): (Vec<_>, Vec<_>) =
                jobs.into_iter().map(|j| ((j.run, j.batch), j.done)).unzip();
            tracing::trace!(batches = items.len(), "group commit");
            for (r, done) in store.commit_group(items).into_iter().zip(senders) {
                done.send(r);
            }
        }
    }

    fn jobs(&self) -> std::sync::MutexGuard<'_, Vec<Job>> {
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::store::{MemoryStore, RunFilter, RunRecord, StepRecord};
    use serde_json::Value;

    /// A store whose first commit waits until the test lets it go, and which records the
    /// size of every group it is given.
    struct Gated {
        inner: MemoryStore,
        hold: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
        groups: Mutex<Vec<usize>>,
    }

    impl Store for Gated {
        fn commit(&self, run: &str, batch: Batch) -> Result<(), StoreError> {
            let hold = self.hold.lock().unwrap().take();
            if let Some(rx) = hold {
                rx.recv().unwrap();
            }
            self.inner.commit(run, batch)
        }
        fn commit_group(&self, batches: Vec<(Arc<str>, Batch)>) -> Vec<Result<(), StoreError>> {
            self.groups.lock().unwrap().push(batches.len());
            batches
                .into_iter()
                .map(|(r, b)| self.inner.commit(&r, b))
                .collect()
        }
        fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
            self.inner.run(id)
        }
        fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunRecord>, StoreError> {
            self.inner.list_runs(f)
        }
        fn steps(&self, run: &str) -> Result<Vec<StepRecord>, StoreError> {
            self.inner.steps(run)
        }
        fn state(&self, run: &str) -> Result<Vec<(String, Value)>, StoreError> {
            self.inner.state(run)
        }
        fn events(
            &self,
            run: &str,
            from: u64,
            limit: usize,
        ) -> Result<Vec<crate::workflow::RunEvent>, StoreError> {
            self.inner.events(run, from, limit)
        }
        fn last_seq(&self, run: &str) -> Result<u64, StoreError> {
            self.inner.last_seq(run)
        }
        fn claim(&self, c: &crate::store::Claim<'_>) -> Result<bool, StoreError> {
            self.inner.claim(c)
        }
        fn renew(&self, owner: &str, lease_until: i64) -> Result<(), StoreError> {
            self.inner.renew(owner, lease_until)
        }
        fn prune(&self, rule: &crate::store::Retention, now: i64) -> Result<u64, StoreError> {
            self.inner.prune(rule, now)
        }
    }

    fn state_batch(key: &str) -> Batch {
        Batch {
            state: vec![(key.to_string(), Value::Bool(true))],
            ..Batch::default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_queued_behind_a_commit_are_written_as_one_group() {
        let (release, hold) = std::sync::mpsc::channel();
        let store = Arc::new(Gated {
            inner: MemoryStore::new(),
            hold: Mutex::new(Some(hold)),
            groups: Mutex::new(Vec::new()),
        });
        let group = Arc::new(GroupCommit::default());
        let spawn = |run: &str| {
            let (store, group, run) = (Arc::clone(&store), Arc::clone(&group), Arc::from(run));
            tokio::spawn(async move { group.commit(&*store, &run, state_batch("k")).await })
        };
        // The first commit holds the store (on a blocking thread, as a long commit would).
        let first = {
            let (store, group) = (Arc::clone(&store), Arc::clone(&group));
            tokio::task::spawn_blocking(move || {
                futures::executor::block_on(group.commit(
                    &*store,
                    &Arc::from("r0"),
                    state_batch("k"),
                ))
            })
        };
        while !group.busy.load(Ordering::Acquire) {
            tokio::task::yield_now().await;
        }
        let others: Vec<_> = ["r1", "r2", "r3"].into_iter().map(spawn).collect();
        while group.jobs().len() < 3 {
            tokio::task::yield_now().await;
        }
        release.send(()).unwrap();
        first.await.unwrap().unwrap();
        for o in others {
            o.await.unwrap().unwrap();
        }
        assert_eq!(*store.groups.lock().unwrap(), vec![3]);
        for r in ["r0", "r1", "r2", "r3"] {
            assert_eq!(store.state(r).unwrap().len(), 1, "{r}");
        }
        assert!(!group.busy.load(Ordering::Acquire));
    }
}
