//! The server side (feature `ssr`): runs read from the engine while the page renders.

use leptos::prelude::{provide_context, use_context};
use serde_json::json;

use crate::model::RunView;

/// The engine the components read runs from while rendering on the server.
#[derive(Clone)]
pub struct MiyabiEngine(pub miyabi::Engine);

impl std::fmt::Debug for MiyabiEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MiyabiEngine")
    }
}

/// Gives the components `engine` for server-side rendering. Call it in the context function
/// of the Leptos handler (`leptos_axum::render_app_async_with_context(move ||
/// provide_engine(engine.clone()), ...)`).
pub fn provide_engine(engine: miyabi::Engine) {
    provide_context(MiyabiEngine(engine));
}

/// The engine given with [`provide_engine`], if any (read in the component's body: contexts
/// are not reachable from inside its futures).
pub(crate) fn engine() -> Option<miyabi::Engine> {
    use_context::<MiyabiEngine>().map(|e| e.0)
}

/// The run `id` as the API's `GET /api/runs/{id}` shows it, read from `engine`, with the
/// sequence number of its last event (read first: events after it that the snapshot already
/// shows are applied again harmlessly).
pub(crate) async fn load_run(
    engine: Option<miyabi::Engine>,
    id: String,
) -> Result<Option<RunView>, String> {
    let engine = engine.ok_or(
        "miyabi-leptos: no engine to render the run with: call `miyabi_leptos::provide_engine(engine)` in the Leptos handler's context",
    )?;
    let store_err = |e: miyabi::StoreError| format!("reading run `{id}`: {e}");
    let last_seq = engine.store().last_seq(&id).map_err(store_err)?;
    let Some(run) = engine
        .get(&id)
        .await
        .map_err(|e| format!("reading run `{id}`: {e}"))?
    else {
        return Ok(None);
    };
    let mut steps = engine.store().steps(&id).map_err(store_err)?;
    steps.sort_by(|a, b| (a.updated_at, &a.path).cmp(&(b.updated_at, &b.path)));
    let mut view = RunView::from_api(&json!({ "run": run, "steps": steps }))?;
    view.last_seq = last_seq;
    Ok(Some(view))
}
