//! Agent-aware metrics, read from the target's [`Trace`](crate::eval::Trace): tool-call
//! correctness, trajectory, step (turn), token, cost and latency budgets. A sample without a
//! trace (a target that does not report one — agents do) is unscored, saying so.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use crate::eval::EvalError;
use crate::eval::metric::{Metric, Outcome, Sample, Score};
use crate::eval::target::Trace;

/// The case metadata key [`ToolCalls`] reads expected calls from.
pub const EXPECTED_TOOLS: &str = "expected_tools";
/// The case metadata key [`Trajectory`] reads the expected order of tools from.
pub const EXPECTED_TRAJECTORY: &str = "expected_trajectory";

fn trace<'a>(sample: &Sample<'a>) -> Result<&'a Trace, Outcome> {
    sample.trace.ok_or_else(|| {
        Outcome::unscored(
            "the target reported no trace (tool calls, turns, usage): only agent targets do",
        )
    })
}

/// A tool call a case expects: a tool name and, optionally, arguments the actual call must
/// contain (a JSON subset: every expected field present with an equal value; objects are
/// compared recursively).
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedCall {
    /// The tool.
    pub name: String,
    /// Arguments the call must contain.
    pub arguments: Option<Value>,
}

impl ExpectedCall {
    /// A call of `name` with any arguments.
    pub fn named(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            arguments: None,
        }
    }

    /// A call of `name` whose arguments contain `arguments`.
    pub fn with_arguments(name: impl Into<String>, arguments: Value) -> Self {
        Self {
            name: name.into(),
            arguments: Some(arguments),
        }
    }

    /// Reads `"name"` or `{"name": .., "arguments": ..}`.
    fn from_json(v: &Value) -> Result<Self, String> {
        match v {
            Value::String(s) => Ok(Self::named(s.clone())),
            Value::Object(m) => {
                let name = m
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or("an expected call object needs a \"name\" string")?;
                Ok(Self {
                    name: name.to_string(),
                    arguments: m.get("arguments").cloned(),
                })
            }
            other => Err(format!(
                "an expected call is a tool name or {{\"name\", \"arguments\"}}, not {other}"
            )),
        }
    }
}

/// Whether `actual` contains `expected`: equal scalars and arrays; for objects, every expected
/// key present with a contained value.
pub fn json_contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e
            .iter()
            .all(|(k, ev)| a.get(k).is_some_and(|av| json_contains(av, ev))),
        (Value::Number(a), Value::Number(e)) => a.as_f64() == e.as_f64(),
        (a, e) => a == e,
    }
}

fn expected_list(sample: &Sample<'_>, key: &str) -> Result<Vec<ExpectedCall>, Outcome> {
    let Some(v) = sample.case.metadata.get(key) else {
        return Err(Outcome::unscored(format!(
            "the case has no metadata {key:?} and the metric was given no expected calls"
        )));
    };
    let Value::Array(items) = v else {
        return Err(Outcome::unscored(format!(
            "case metadata {key:?} must be an array of tool names or {{\"name\", \"arguments\"}} objects"
        )));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, v)| {
            ExpectedCall::from_json(v)
                .map_err(|e| Outcome::unscored(format!("case metadata {key:?}[{i}]: {e}")))
        })
        .collect()
}

/// Which figure [`ToolCalls`] scores with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ToolScore {
    /// Harmonic mean of precision and recall.
    #[default]
    F1,
    /// Matched calls / calls made.
    Precision,
    /// Matched calls / calls expected.
    Recall,
    /// 1 when every expected call was made and nothing else, else 0.
    Exact,
}

/// Tool-call correctness: the calls made against the calls expected (given here, or in the
/// case's metadata under [`EXPECTED_TOOLS`]). Each expected call is matched with one call of
/// the same tool not matched yet whose arguments contain the expected arguments (when given;
/// [`ignore_arguments`](Self::ignore_arguments) compares names only). Scores F1 by default;
/// metadata: `precision`, `recall`, `f1`, `matched`, `missing`, `unexpected`, `called`.
#[derive(Debug, Clone, Default)]
pub struct ToolCalls {
    expected: Option<Vec<ExpectedCall>>,
    ignore_arguments: bool,
    measure: ToolScore,
}

impl ToolCalls {
    /// Expected calls from each case's metadata (`expected_tools`).
    pub fn from_case() -> Self {
        Self::default()
    }

    /// The same expected calls for every case.
    pub fn expect(calls: impl IntoIterator<Item = ExpectedCall>) -> Self {
        Self {
            expected: Some(calls.into_iter().collect()),
            ..Self::default()
        }
    }

    /// Compares tool names only.
    pub fn ignore_arguments(mut self) -> Self {
        self.ignore_arguments = true;
        self
    }

    /// Which figure is the score (default F1).
    pub fn measure(mut self, measure: ToolScore) -> Self {
        self.measure = measure;
        self
    }
}

#[async_trait]
impl Metric for ToolCalls {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        let trace = match trace(sample) {
            Ok(t) => t,
            Err(o) => return o,
        };
        let expected = match &self.expected {
            Some(e) => e.clone(),
            None => match expected_list(sample, EXPECTED_TOOLS) {
                Ok(e) => e,
                Err(o) => return o,
            },
        };
        let mut used = vec![false; trace.tool_calls.len()];
        let mut missing = Vec::new();
        for e in &expected {
            let hit = trace.tool_calls.iter().enumerate().position(|(i, c)| {
                !used[i]
                    && c.name == e.name
                    && (self.ignore_arguments
                        || e.arguments
                            .as_ref()
                            .is_none_or(|want| json_contains(&c.arguments, want)))
            });
            match hit {
                Some(i) => used[i] = true,
                None => missing.push(e.name.clone()),
            }
        }
        let matched = used.iter().filter(|u| **u).count();
        let unexpected: Vec<&str> = trace
            .tool_calls
            .iter()
            .zip(&used)
            .filter(|(_, u)| !**u)
            .map(|(c, _)| c.name.as_str())
            .collect();
        let made = trace.tool_calls.len();
        let precision = if made == 0 {
            if expected.is_empty() { 1.0 } else { 0.0 }
        } else {
            matched as f64 / made as f64
        };
        let recall = if expected.is_empty() {
            1.0
        } else {
            matched as f64 / expected.len() as f64
        };
        let f1 = if precision + recall == 0.0 {
            0.0
        } else {
            2.0 * precision * recall / (precision + recall)
        };
        let value = match self.measure {
            ToolScore::F1 => f1,
            ToolScore::Precision => precision,
            ToolScore::Recall => recall,
            ToolScore::Exact => {
                if missing.is_empty() && unexpected.is_empty() {
                    1.0
                } else {
                    0.0
                }
            }
        };
        let reason = if missing.is_empty() && unexpected.is_empty() {
            "every expected tool call was made, nothing else".to_string()
        } else {
            format!(
                "missing: [{}]; unexpected: [{}]",
                missing.join(", "),
                unexpected.join(", ")
            )
        };
        match Score::new(value) {
            Ok(s) => s
                .with_reason(reason)
                .with_meta("precision", precision)
                .with_meta("recall", recall)
                .with_meta("f1", f1)
                .with_meta("matched", matched)
                .with_meta("missing", json!(missing))
                .with_meta("unexpected", json!(unexpected))
                .with_meta("called", json!(trace.tool_names()))
                .into(),
            Err(e) => Outcome::unscored(e.to_string()),
        }
    }
}

/// The order of tool calls: the expected sequence of tool names (given here, or in the case's
/// metadata under [`EXPECTED_TRAJECTORY`], else the names under [`EXPECTED_TOOLS`]) against
/// the calls made. In order (default): the longest common subsequence / expected length —
/// extra calls in between cost nothing. [`exact`](Self::exact): LCS / the longer of the two,
/// so extra calls cost too, and only the identical sequence scores 1.
#[derive(Debug, Clone, Default)]
pub struct Trajectory {
    expected: Option<Vec<String>>,
    exact: bool,
}

impl Trajectory {
    /// The expected order from each case's metadata.
    pub fn from_case() -> Self {
        Self::default()
    }

    /// The same expected order for every case.
    pub fn expect<S: Into<String>>(names: impl IntoIterator<Item = S>) -> Self {
        Self {
            expected: Some(names.into_iter().map(Into::into).collect()),
            exact: false,
        }
    }

    /// Extra calls count against the score.
    pub fn exact(mut self) -> Self {
        self.exact = true;
        self
    }
}

fn lcs(a: &[&str], b: &[&str]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    for x in a {
        let mut cur = vec![0usize; b.len() + 1];
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        prev = cur;
    }
    prev[b.len()]
}

#[async_trait]
impl Metric for Trajectory {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        let trace = match trace(sample) {
            Ok(t) => t,
            Err(o) => return o,
        };
        let expected: Vec<String> = match &self.expected {
            Some(e) => e.clone(),
            None => {
                let key = if sample.case.metadata.contains_key(EXPECTED_TRAJECTORY) {
                    EXPECTED_TRAJECTORY
                } else {
                    EXPECTED_TOOLS
                };
                match expected_list(sample, key) {
                    Ok(e) => e.into_iter().map(|c| c.name).collect(),
                    Err(o) => return o,
                }
            }
        };
        let want: Vec<&str> = expected.iter().map(String::as_str).collect();
        let got = trace.tool_names();
        let common = lcs(&want, &got);
        let denom = if self.exact {
            want.len().max(got.len())
        } else {
            want.len()
        };
        let value = if denom == 0 {
            1.0
        } else {
            common as f64 / denom as f64
        };
        Outcome::from_value(
            value,
            format!("{common} of {} expected calls in order", want.len()),
        )
        .map_score(|s| {
            s.with_meta("expected", json!(want))
                .with_meta("called", json!(got))
                .with_meta("in_order", common)
        })
    }
}

/// 1 when the target made at most `max` model calls (an agent's turns), else 0; metadata
/// `turns`.
#[derive(Debug, Clone, Copy)]
pub struct StepBudget {
    max: usize,
}

impl StepBudget {
    /// At most `max` turns.
    pub fn at_most(max: usize) -> Self {
        Self { max }
    }
}

#[async_trait]
impl Metric for StepBudget {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        let trace = match trace(sample) {
            Ok(t) => t,
            Err(o) => return o,
        };
        Score::pass_fail(trace.turns <= self.max)
            .with_reason(format!("{} turns (budget {})", trace.turns, self.max))
            .with_meta("turns", trace.turns)
            .into()
    }
}

/// 1 when the target used at most `max` tokens (input + output over all model calls), else
/// 0; metadata `input_tokens`, `output_tokens`, `tokens`. Unscored when usage is unknown.
#[derive(Debug, Clone, Copy)]
pub struct TokenBudget {
    max: u64,
}

impl TokenBudget {
    /// At most `max` tokens.
    pub fn at_most(max: u64) -> Self {
        Self { max }
    }
}

#[async_trait]
impl Metric for TokenBudget {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        let trace = match trace(sample) {
            Ok(t) => t,
            Err(o) => return o,
        };
        let Some(u) = trace.usage else {
            return Outcome::unscored("the target reported no token usage");
        };
        let total = u.input_tokens.saturating_add(u.output_tokens);
        Score::pass_fail(total <= self.max)
            .with_reason(format!("{total} tokens (budget {})", self.max))
            .with_meta("input_tokens", u.input_tokens)
            .with_meta("output_tokens", u.output_tokens)
            .with_meta("tokens", total)
            .into()
    }
}

/// 1 when the target cost at most `max_usd`, else 0; metadata `cost_usd`. Unscored when the
/// cost is unknown (a model without a price in the catalogue) or the sample was answered from
/// a response cache.
#[derive(Debug, Clone, Copy)]
pub struct CostBudget {
    max_usd: f64,
}

impl CostBudget {
    /// At most `max_usd` (finite, ≥ 0).
    pub fn at_most(max_usd: f64) -> Result<Self, EvalError> {
        if max_usd.is_finite() && max_usd >= 0.0 {
            Ok(Self { max_usd })
        } else {
            Err(EvalError::Config(format!(
                "cost budget {max_usd}: must be a finite number ≥ 0"
            )))
        }
    }
}

#[async_trait]
impl Metric for CostBudget {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        let trace = match trace(sample) {
            Ok(t) => t,
            Err(o) => return o,
        };
        if sample.cached {
            return Outcome::unscored(
                "a cached sample: the cost is not the target's (answered from the response cache)",
            );
        }
        let Some(cost) = trace.cost_usd else {
            return Outcome::unscored("the cost is unknown (no price for the model)");
        };
        Score::pass_fail(cost <= self.max_usd)
            .with_reason(format!("${cost:.6} (budget ${})", self.max_usd))
            .with_meta("cost_usd", cost)
            .into()
    }
}

/// 1 when the target answered within `max`, else 0; metadata `latency_ms`. Needs no trace;
/// unscored on a sample answered from a response cache.
#[derive(Debug, Clone, Copy)]
pub struct LatencyBudget {
    max: Duration,
}

impl LatencyBudget {
    /// At most `max`.
    pub fn at_most(max: Duration) -> Self {
        Self { max }
    }
}

#[async_trait]
impl Metric for LatencyBudget {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        if sample.cached {
            return Outcome::unscored(
                "a cached sample: the latency is not the target's (answered from the response cache)",
            );
        }
        let ms = sample.latency.as_secs_f64() * 1000.0;
        Score::pass_fail(sample.latency <= self.max)
            .with_reason(format!(
                "{ms:.1} ms (budget {} ms)",
                self.max.as_secs_f64() * 1000.0
            ))
            .with_meta("latency_ms", ms)
            .into()
    }
}
