//! Ownership of running runs: the lease heartbeat, and recovery of runs left by dead processes.

use super::*;

impl Engine {
    /// Takes over runs left `running` by a dead process or an expired lease, and enqueued
    /// runs, for every registered workflow, and drives them in the background: at most
    /// [`EngineBuilder::max_active`] here, and within the concurrency limits
    /// ([`EngineBuilder::workflow_limit`], [`EngineBuilder::global_limit`]) across every
    /// engine on the store. Returns their ids.
    pub async fn recover(&self) -> Result<Vec<String>, EngineError> {
        let cores = self.claim_orphans()?;
        let mut taken = Vec::with_capacity(cores.len());
        for core in cores {
            self.activate(&core);
            let engine = self.clone();
            taken.push(core.run_id.to_string());
            tokio::spawn(async move {
                if let Err(e) = engine.drive(core).await {
                    tracing::error!(error = %e, "recovered run stopped");
                }
                // A slot under `max_active` is free again.
                engine.inner.work_wake.notify_one();
            });
        }
        self.ensure_heartbeat();
        Ok(taken)
    }

    /// Claims every run left `running` by a dead process, an expired lease or an earlier
    /// failure of this engine, whose workflow is registered; returns their rebuilt cores.
    // Boxed on purpose: each core is handed to its own driver, which keeps it boxed.
    #[allow(clippy::vec_box)]
    pub(crate) fn claim_orphans(&self) -> Result<Vec<Box<RunCore>>, EngineError> {
        // No other claim of this engine is between its claim and its activation meanwhile:
        // a run of ours that is not active is one nobody here drives.
        let _claiming = lock(&self.inner.claims);
        let now = self.now_ms();
        let lease_until = crate::store::ms_after(now, self.inner.lease);
        // Room under this engine's limit of runs executing at once.
        let mut room = match self.inner.max_active {
            Some(max) => max.saturating_sub(lock(&self.inner.active).len()),
            None => usize::MAX,
        };
        if room == 0 {
            return Ok(Vec::new());
        }
        let mut cores = Vec::new();
        // Runs nobody owns (enqueued) or whose lease lapsed: one claim for all of them (on
        // Postgres with `FOR UPDATE SKIP LOCKED`, so workers polling together do not queue).
        let fingerprints: Vec<String> = read(&self.inner.by_fingerprint).keys().cloned().collect();
        // Within the deployment's concurrency limits, which the store counts and checks.
        let lapsed = self.inner.store.claim_lapsed(&crate::store::LapsedClaim {
            fingerprints: &fingerprints,
            new_owner: &self.inner.owner,
            now,
            lease_until,
            limit: room,
            limits: &self.inner.limits,
        })?;
        let mut taken: std::collections::HashSet<String> = std::collections::HashSet::new();
        for r in lapsed {
            taken.insert(r.id.clone());
            if lock(&self.inner.active).contains_key(r.id.as_str()) {
                // Ours and driven here: its lease lapsed before a renewal reached it (a loaded
                // host). The claim renewed it; a second driver would run its steps twice.
                continue;
            }
            room = room.saturating_sub(1);
            let graph = match self.graph_for(&r) {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(run = %r.id, error = %e, "cannot recover run");
                    continue;
                }
            };
            // A run that cannot be loaded stays claimed by this engine and is tried again on a
            // later pass (it is not active here); the runs already loaded are driven.
            let core = match RunCore::load(
                Arc::clone(&self.inner.store),
                graph,
                &r,
                RunStatus::Running,
                &self.inner.owner,
                self.inner.clock.clone(),
            ) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(run = %r.id, error = %e, "cannot load a claimed run");
                    continue;
                }
            };
            self.activate(&core);
            cores.push(core);
        }
        if room == 0 {
            return Ok(cores);
        }
        // Runs of a dead process on this host (no need to wait for its lease), and runs this
        // engine claimed before but does not execute (an earlier failure).
        let running = match self.inner.store.list_runs(&RunFilter {
            status: Some(RunStatus::Running),
            ..RunFilter::default()
        }) {
            Ok(r) => r,
            Err(e) if !cores.is_empty() => {
                tracing::warn!(error = %e, "cannot list running runs");
                return Ok(cores);
            }
            Err(e) => return Err(e.into()),
        };
        for r in running {
            if room == 0 {
                break;
            }
            if taken.contains(&r.id) || lock(&self.inner.active).contains_key(r.id.as_str()) {
                continue;
            }
            // (Unowned and lapsed runs are `claim_lapsed`'s, within the concurrency limits:
            // those left are taken by another engine since, or wait for a slot.) The runs
            // taken here execute already as far as the store can tell (an owner, a lease), so
            // they take no new slot.
            let claimable = match &r.owner {
                None => false,
                Some(_) if !r.is_executing(now) => false,
                Some(o) if o.as_str() == &*self.inner.owner => true,
                Some(o) => owner_is_dead(o),
            };
            if !claimable {
                continue;
            }
            let graph = match self.graph_for(&r) {
                Ok(g) => g,
                Err(e) => {
                    tracing::warn!(run = %r.id, error = %e, "cannot recover run");
                    continue;
                }
            };
            match self.inner.store.claim(&Claim {
                run: &r.id,
                status: RunStatus::Running,
                owner: r.owner.as_deref(),
                new_owner: &self.inner.owner,
                lease_until,
            }) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) if !cores.is_empty() => {
                    tracing::warn!(error = %e, "cannot claim a run");
                    break;
                }
                Err(e) => return Err(e.into()),
            }
            room = room.saturating_sub(1);
            // A run that cannot be loaded stays claimed by this engine and is tried again on a
            // later pass (it is not active here); the runs already loaded are driven.
            let core = match RunCore::load(
                Arc::clone(&self.inner.store),
                graph,
                &r,
                RunStatus::Running,
                &self.inner.owner,
                self.inner.clock.clone(),
            ) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(run = %r.id, error = %e, "cannot load a claimed run");
                    continue;
                }
            };
            self.activate(&core);
            cores.push(core);
        }
        Ok(cores)
    }

    /// Waits until the store reports new work — an enqueued run, a decided approval gate
    /// (Postgres: `LISTEN`/`NOTIFY`) — or `timeout` passes; `true` when woken. For a driver that
    /// takes runs itself with [`Engine::recover_external`] (the Node binding's `work()`), in
    /// place of a fixed poll; the engine's worker looks at decided gates too when woken. On a
    /// store that cannot tell (SQLite, memory) it waits for the timeout.
    ///
    /// ```no_run
    /// # async fn f(engine: miyabi_engine::Engine) -> Result<(), miyabi_engine::EngineError> {
    /// loop {
    ///     for run in engine.recover_external()? {
    ///         // drive `run` ...
    /// #       drop(run);
    ///     }
    ///     engine.wait_for_work(std::time::Duration::from_secs(5)).await;
    /// }
    /// # }
    /// ```
    pub async fn wait_for_work(&self, timeout: Duration) -> bool {
        let Some(wake) = self.inner.store.wakeups() else {
            tokio::time::sleep(timeout).await;
            return false;
        };
        let woken = tokio::time::timeout(timeout, wake.notified()).await.is_ok();
        if woken {
            self.wake_worker();
        }
        woken
    }

    /// Works as one of several worker processes on a shared store: takes over runs that no
    /// engine executes (enqueued with [`Engine::enqueue`], released, or left by a worker whose
    /// lease lapsed or whose process died) for the workflows registered here, and drives them,
    /// at most [`EngineBuilder::max_active`] at once, and never beyond the concurrency limits
    /// ([`EngineBuilder::workflow_limit`], [`EngineBuilder::global_limit`]): runs beyond them
    /// wait, oldest first. Wakes when the store reports new work (Postgres:
    /// `LISTEN`/`NOTIFY`), when one of its runs ends, and every `poll` as the safety net (a
    /// slot freed under a limit by another process's run is seen there). Decided approval gates, deadlines and notifications are handled by the engine's
    /// worker as in any engine. Runs until the future is dropped.
    ///
    /// ```no_run
    /// # async fn f(engine: miyabi_engine::Engine) -> Result<(), miyabi_engine::EngineError> {
    /// engine.work(std::time::Duration::from_secs(2)).await
    /// # }
    /// ```
    pub async fn work(&self, poll: Duration) -> Result<(), EngineError> {
        let store_wake = self.inner.store.wakeups();
        self.ensure_heartbeat();
        loop {
            match self.recover().await {
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "worker pass failed"),
            }
            let local = Arc::clone(&self.inner.work_wake);
            tokio::select! {
                _ = local.notified() => {}
                _ = async {
                    match &store_wake {
                        Some(w) => w.notified().await,
                        None => std::future::pending().await,
                    }
                } => {
                    // Work elsewhere (a decided gate): the approvals worker looks too.
                    self.wake_worker();
                }
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    pub(crate) fn ensure_heartbeat(&self) {
        self.start_worker();
        if self.inner.heartbeat.get().is_some() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.heartbeat.set(()).is_err() {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        // Renew well within the lease, however short (a floor above lease/3 lets the lease
        // lapse between renewals, and another engine's `recover` takes over a live run).
        let every = (self.inner.lease / 3).max(Duration::from_millis(1));
        handle.spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(inner) = weak.upgrade() else { return };
                let until = crate::store::ms_after(inner.clock.now_ms(), inner.lease);
                if let Err(e) = inner.store.renew(&inner.owner, until) {
                    tracing::warn!(error = %e, "lease renewal failed");
                }
            }
        });
    }
}

pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

/// Whether the owner (`uuid@host:pid`) is a process on this host that no longer exists.
pub(super) fn owner_is_dead(owner: &str) -> bool {
    let Some((_, hp)) = owner.split_once('@') else {
        return false;
    };
    let Some((host, pid)) = hp.rsplit_once(':') else {
        return false;
    };
    if host != hostname() || !cfg!(target_os = "linux") {
        return false;
    }
    match pid.parse::<u32>() {
        Ok(pid) if pid == std::process::id() => false,
        Ok(pid) => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        Err(_) => false,
    }
}
