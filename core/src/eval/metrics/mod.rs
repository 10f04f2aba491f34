//! The built-in deterministic metrics. Each scores in [0, 1] and returns *unscored* (with the
//! reason) when a sample cannot be scored — for example a reference-based metric on a case
//! without `expected`.

mod agent;
mod embedding;
mod json;
mod numeric;
mod overlap;
mod text;

pub use agent::{
    CostBudget, EXPECTED_TOOLS, EXPECTED_TRAJECTORY, ExpectedCall, LatencyBudget, StepBudget,
    TokenBudget, ToolCalls, ToolScore, Trajectory, json_contains,
};
pub use embedding::{EmbeddingSimilarity, cosine};
pub use json::{JsonDiff, JsonSchema, ValidJson};
pub use numeric::NumericDiff;
pub use overlap::{Bleu, RougeL, tokenize};
pub use text::{Contains, Exact, Levenshtein, Regex, levenshtein};

use serde_json::Value;

use super::metric::{Outcome, Sample, value_text};

/// The references of a case: `expected` as text, or each string of an `expected` array
/// (several references); unscored when the case has none.
pub(crate) fn references(sample: &Sample<'_>) -> Result<Vec<String>, Outcome> {
    match sample.case.expected.as_ref() {
        None | Some(Value::Null) => Err(Outcome::unscored("the case has no expected value")),
        Some(Value::Array(items)) if !items.is_empty() && items.iter().all(Value::is_string) => {
            Ok(items.iter().map(value_text).collect())
        }
        Some(v) => Ok(vec![value_text(v)]),
    }
}
