//! Numeric difference between the output and the expected number.

use async_trait::async_trait;
use serde_json::Value;

use crate::eval::EvalError;
use crate::eval::metric::{Metric, Outcome, Sample, Score};

/// A number from a JSON number or a string holding one (surrounding whitespace allowed).
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    }
    .filter(|x| x.is_finite())
}

/// How far the output number is from the expected one. With a tolerance
/// ([`NumericDiff::within`]), 1 when `|output - expected| <= tolerance`, else 0; by default
/// ([`NumericDiff::relative`]) `max(0, 1 - |output - expected| / |expected|)` (with
/// `|expected|` floored at 1e-12). The output may be a number or a string holding one; an
/// output that is not a number scores 0. Unscored when `expected` is missing or not a number.
/// Metadata: `absolute` and `relative` difference.
#[derive(Debug, Clone, Default)]
pub struct NumericDiff {
    tolerance: Option<f64>,
}

impl NumericDiff {
    /// The relative score.
    pub fn relative() -> Self {
        Self { tolerance: None }
    }

    /// Pass/fail within an absolute tolerance (finite, ≥ 0).
    pub fn within(tolerance: f64) -> Result<Self, EvalError> {
        if tolerance.is_finite() && tolerance >= 0.0 {
            Ok(Self {
                tolerance: Some(tolerance),
            })
        } else {
            Err(EvalError::Config(format!(
                "numeric tolerance {tolerance} must be finite and >= 0"
            )))
        }
    }
}

#[async_trait]
impl Metric for NumericDiff {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        let Some(expected) = sample.case.expected.as_ref() else {
            return Outcome::unscored("the case has no expected value");
        };
        let Some(e) = number(expected) else {
            return Outcome::unscored(format!("expected value {expected} is not a number"));
        };
        let Some(o) = number(sample.output) else {
            return Score::pass_fail(false)
                .with_reason("output is not a number")
                .into();
        };
        let abs = (o - e).abs();
        let rel = abs / e.abs().max(1e-12);
        let value = match self.tolerance {
            Some(t) => {
                if abs <= t {
                    1.0
                } else {
                    0.0
                }
            }
            None => (1.0 - rel).max(0.0),
        };
        match Score::new(value) {
            Ok(s) => s
                .with_reason(format!("|{o} - {e}| = {abs}"))
                .with_meta("absolute", abs)
                .with_meta("relative", rel)
                .into(),
            Err(err) => Outcome::unscored(err.to_string()),
        }
    }
}
