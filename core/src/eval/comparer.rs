//! [`Comparer`]: the paired comparison of [`Evaluator::compare`] as the HTTP API's
//! [`EvalComparer`], so that `GET /api/evals/compare` (the dashboard's Evals view) compares
//! eval runs as `miyabi eval compare` does.

use serde::Deserialize;
use serde_json::Value;

use super::{EvalResults, Evaluator};
use crate::server::EvalComparer;

/// [`Evaluator::compare`] for the HTTP API (features `eval` and `server`): give it to
/// [`ServerConfig::eval_comparer`](crate::server::ServerConfig::eval_comparer); `miyabi serve`
/// does.
///
/// ```
/// use std::sync::Arc;
/// use miyabi::eval::Comparer;
/// use miyabi::server::ServerConfig;
///
/// let config = ServerConfig::new().eval_comparer(Arc::new(Comparer));
/// # let _ = config;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Comparer;

impl EvalComparer for Comparer {
    fn compare(&self, a: &Value, b: &Value) -> Result<Value, String> {
        let read = |which: &str, v: &Value| {
            EvalResults::deserialize(v)
                .map_err(|e| format!("the results of run {which} cannot be read: {e}"))
        };
        let (a, b) = (read("A", a)?, read("B", b)?);
        let cmp = Evaluator::compare(&a, &b).map_err(|e| e.to_string())?;
        serde_json::to_value(&cmp).map_err(|e| format!("the comparison cannot be written: {e}"))
    }
}

#[cfg(test)]
mod tests {
    /// The server recognises results documents by the schema this module writes.
    #[test]
    fn the_server_reads_the_schema_this_module_writes() {
        assert_eq!(crate::eval::SCHEMA, crate::server::EVAL_SCHEMA);
    }
}
