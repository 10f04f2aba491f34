//! Ownership of running runs: the lease heartbeat, and recovery of runs left by dead processes.

use super::*;

impl Engine {
    /// Takes over runs left `running` by a dead process or an expired lease, for every
    /// registered workflow, and drives them in the background. Returns their ids.
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
        let now = self.now_ms();
        let running = self.inner.store.list_runs(&RunFilter {
            status: Some(RunStatus::Running),
            ..RunFilter::default()
        })?;
        let mut cores = Vec::new();
        for r in running {
            if lock(&self.inner.active).contains_key(r.id.as_str()) {
                continue;
            }
            let claimable = match (&r.owner, r.lease_until) {
                (None, _) => true,
                (Some(o), _) if o.as_str() == &*self.inner.owner => true,
                (Some(_), Some(until)) if until < now => true,
                (Some(o), _) => owner_is_dead(o),
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
            if !self.inner.store.claim(&Claim {
                run: &r.id,
                status: RunStatus::Running,
                owner: r.owner.as_deref(),
                new_owner: &self.inner.owner,
                lease_until: crate::store::ms_after(now, self.inner.lease),
            })? {
                continue;
            }
            cores.push(RunCore::load(
                Arc::clone(&self.inner.store),
                graph,
                &r,
                RunStatus::Running,
                &self.inner.owner,
                self.inner.clock.clone(),
            )?);
        }
        Ok(cores)
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
