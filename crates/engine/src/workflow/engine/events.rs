//! A run's event stream: stored events first, then live ones while the run executes here.

use super::*;

impl Engine {
    /// The run's events from sequence number `from` (1 for all): the stored ones, then live
    /// ones while the run executes in this engine. Ends when the run stops executing here.
    pub fn events(
        &self,
        run_id: &str,
        from: u64,
    ) -> impl Stream<Item = Result<RunEvent, EngineError>> + Send + 'static {
        let store = Arc::clone(&self.inner.store);
        let active = lock(&self.inner.active).get(run_id).cloned();
        let run_id = run_id.to_string();
        async_stream(store, active, run_id, from)
    }
}

pub(super) fn async_stream(
    store: Arc<dyn Store>,
    active: Option<Arc<Active>>,
    run_id: String,
    from: u64,
) -> impl Stream<Item = Result<RunEvent, EngineError>> + Send + 'static {
    // Subscribe before reading the log, so nothing falls between the two.
    let live = active.map(|a| a.live.subscribe());
    let stored = store.events(&run_id, from.max(1), usize::MAX);
    let (stored, err) = match stored {
        Ok(v) => (v, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let next = stored.last().map_or(from.max(1), |e| e.seq + 1);
    // A run that already finished or suspended has nothing more to say.
    let settled = stored.last().is_some_and(|e| {
        matches!(
            e.kind,
            crate::workflow::event::EventKind::RunFinished { .. }
                | crate::workflow::event::EventKind::RunSuspended { .. }
        )
    });
    let live = if settled { None } else { live };
    let head = futures::stream::iter(
        stored
            .into_iter()
            .map(Ok)
            .chain(err.map(|e| Err(EngineError::Store(e)))),
    );
    let tail = futures::stream::unfold((live, next), move |(live, mut next)| {
        let store = Arc::clone(&store);
        let run_id = run_id.clone();
        async move {
            let mut rx = live?;
            loop {
                match rx.recv().await {
                    Ok(ev) if ev.seq < next => continue,
                    Ok(ev) => {
                        // A gap (a batch committed while this subscription began) is filled
                        // from the log.
                        let mut out = Vec::new();
                        if ev.seq > next {
                            match store.events(&run_id, next, (ev.seq - next) as usize) {
                                Ok(evs) => out.extend(evs.into_iter().map(Ok)),
                                Err(e) => out.push(Err(EngineError::Store(e))),
                            }
                        }
                        next = ev.seq + 1;
                        let end = matches!(
                            ev.kind,
                            crate::workflow::event::EventKind::RunFinished { .. }
                                | crate::workflow::event::EventKind::RunSuspended { .. }
                        );
                        let rx = if end { None } else { Some(rx) };
                        out.push(Ok(ev));
                        return Some((out, (rx, next)));
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // Fell behind: fill the gap from the log.
                        match store.events(&run_id, next, usize::MAX) {
                            Ok(evs) => {
                                if let Some(l) = evs.last() {
                                    next = l.seq + 1;
                                }
                                let evs = evs.into_iter().map(Ok).collect();
                                return Some((evs, (Some(rx), next)));
                            }
                            Err(e) => {
                                return Some((vec![Err(EngineError::Store(e))], (None, next)));
                            }
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    })
    .flat_map(futures::stream::iter);
    head.chain(tail)
}
