//! The [`Metric`] trait and what a metric returns: a [`Score`] in [0, 1], or an explicit
//! unscored outcome.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::target::Trace;
use super::{Case, EvalError};

/// What a metric sees: the case, the target's output, the epoch (repeat), the target's
/// latency, what the target did to get there (its [`Trace`], for agents) and the name the
/// metric was added under (for messages).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Sample<'a> {
    /// The case.
    pub case: &'a Case,
    /// The target's output.
    pub output: &'a Value,
    /// The repeat number, from 0.
    pub epoch: u32,
    /// How long the target took.
    pub latency: Duration,
    /// What the target did (tool calls, turns, tokens, cost), when it reports it (agents do).
    pub trace: Option<&'a Trace>,
    /// The name the metric being run was added under (`""` outside an evaluator).
    pub metric: &'a str,
    /// Whether a model the target called answered from a cache (latency and cost are then
    /// not the target's).
    pub cached: bool,
}

impl<'a> Sample<'a> {
    /// A sample of epoch 0, zero latency, no trace and no metric name; the `with_*` methods
    /// set the rest.
    pub fn new(case: &'a Case, output: &'a Value) -> Self {
        Self {
            case,
            output,
            epoch: 0,
            latency: Duration::ZERO,
            trace: None,
            metric: "",
            cached: false,
        }
    }

    /// Marks the sample as answered (at least in part) from a response cache.
    pub fn with_cached(mut self, cached: bool) -> Self {
        self.cached = cached;
        self
    }

    /// Sets the epoch.
    pub fn with_epoch(mut self, epoch: u32) -> Self {
        self.epoch = epoch;
        self
    }

    /// Sets the latency.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Sets the trace.
    pub fn with_trace(mut self, trace: &'a Trace) -> Self {
        self.trace = Some(trace);
        self
    }

    /// Sets the metric name.
    pub fn with_metric(mut self, metric: &'a str) -> Self {
        self.metric = metric;
        self
    }

    /// The metric's name for messages: the name it was added under, or `fallback`.
    pub fn metric_name<'b>(&'b self, fallback: &'b str) -> &'b str {
        if self.metric.is_empty() {
            fallback
        } else {
            self.metric
        }
    }

    /// The output as text: a JSON string's content, anything else as compact JSON.
    pub fn output_text(&self) -> String {
        value_text(self.output)
    }
}

/// A value as text: a JSON string's content, anything else as compact JSON.
pub fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A score: a finite number in [0, 1] (1 is best), with an optional reason and metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Score {
    value: f64,
    /// Why this score (shown in reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Anything the metric wants to keep (differences found, counts...).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
}

impl Score {
    /// A score; fails when `value` is not finite or outside [0, 1].
    pub fn new(value: f64) -> Result<Self, EvalError> {
        if value.is_finite() && (0.0..=1.0).contains(&value) {
            Ok(Self {
                value,
                reason: None,
                metadata: Map::new(),
            })
        } else {
            Err(EvalError::InvalidScore(value))
        }
    }

    /// 1.0 when `pass`, else 0.0.
    pub fn pass_fail(pass: bool) -> Self {
        Self {
            value: if pass { 1.0 } else { 0.0 },
            reason: None,
            metadata: Map::new(),
        }
    }

    /// The value, in [0, 1].
    pub fn value(&self) -> f64 {
        self.value
    }

    /// Sets the reason.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// Adds a metadata entry.
    pub fn with_meta(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }
}

/// What a metric returns for one sample: a score, or *unscored* with the reason (the case
/// had no expected value, a judge's answer could not be parsed...). An unscored sample is
/// never counted as 0: it is left out of the metric's denominator and counted apart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Scored.
    Scored(Score),
    /// Could not be scored.
    Unscored {
        /// Why not.
        reason: String,
    },
}

impl Outcome {
    /// An unscored outcome.
    pub fn unscored(reason: impl Into<String>) -> Self {
        Self::Unscored {
            reason: reason.into(),
        }
    }

    /// A scored outcome with this value and reason, or unscored (saying why) when the value
    /// is not a finite number in [0, 1].
    pub fn from_value(value: f64, reason: impl Into<String>) -> Self {
        match Score::new(value) {
            Ok(s) => Self::Scored(s.with_reason(reason)),
            Err(e) => Self::unscored(e.to_string()),
        }
    }

    /// Applies `f` to the score, when scored.
    pub fn map_score(self, f: impl FnOnce(Score) -> Score) -> Self {
        match self {
            Self::Scored(s) => Self::Scored(f(s)),
            other => other,
        }
    }

    /// The score, when scored.
    pub fn score(&self) -> Option<&Score> {
        match self {
            Self::Scored(s) => Some(s),
            Self::Unscored { .. } => None,
        }
    }

    /// The score's value, when scored.
    pub fn value(&self) -> Option<f64> {
        self.score().map(Score::value)
    }
}

impl From<Score> for Outcome {
    fn from(s: Score) -> Self {
        Self::Scored(s)
    }
}

/// A metric: scores one sample. Implement it for custom metrics; the built-ins are in
/// [`metrics`](super::metrics).
#[async_trait]
pub trait Metric: Send + Sync {
    /// Scores the sample. Return [`Outcome::Unscored`] (never 0, never NaN) when the sample
    /// cannot be scored.
    async fn score(&self, sample: &Sample<'_>) -> Outcome;
}

#[async_trait]
impl<M: Metric + ?Sized> Metric for std::sync::Arc<M> {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        (**self).score(sample).await
    }
}

#[async_trait]
impl<M: Metric + ?Sized> Metric for Box<M> {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        (**self).score(sample).await
    }
}
