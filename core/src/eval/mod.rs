//! Evaluation (feature `eval`): datasets of [`Case`]s, [`Metric`]s that score a target's
//! outputs in [0, 1] (or leave a sample explicitly *unscored*), an [`Evaluator`] that runs a
//! [`Target`] (a closure, an [`Agent`](crate::Agent), a workflow) over a [`Dataset`] with a
//! concurrency limit and repeats, [`stats`] with confidence intervals, paired A/B comparison
//! ([`Evaluator::compare`]) and reports (JSON, JUnit XML, Markdown). See docs/evals.md.
//!
//! ```
//! use miyabi::eval::{Case, Dataset, Evaluator, metrics::{Contains, Exact}};
//! use serde_json::{json, Value};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dataset = Dataset::from_cases("deploys", [
//!     Case::new("1", "ship the release").expected("deploy"),
//!     Case::new("2", "undo the release").expected("rollback"),
//! ])?;
//! let target = |input: Value| async move {
//!     let answer = if input.as_str().unwrap_or("").contains("ship") { "deploy" } else { "rollback" };
//!     Ok::<_, std::convert::Infallible>(json!(answer))
//! };
//! let evaluator = Evaluator::new()
//!     .add_metric("exact", Exact::new())
//!     .add_metric("contains", Contains::any(["deploy"]));
//! let results = evaluator.evaluate(&target, &dataset).await?;
//! assert_eq!(results.metric("exact").unwrap().mean, Some(1.0));
//! assert_eq!(results.metric("contains").unwrap().pass_rate, Some(0.5));
//! println!("{}", results.to_markdown());
//! # Ok(()) }
//! ```

mod cache;
#[cfg(feature = "cli")]
pub mod cli;
#[cfg(feature = "server")]
mod comparer;
mod data;
mod durable;
mod error;
mod html;
pub mod judge;
mod metric;
pub mod metrics;
mod report;
mod response_cache;
mod runner;
pub mod stats;
pub mod suite;
mod target;

pub use cache::{CachedAnswer, JudgeCache};
#[cfg(feature = "server")]
pub use comparer::Comparer;
pub use data::{Case, Dataset};
pub use durable::DurableEval;
pub use error::EvalError;
pub use judge::{Judge, JudgeMetric, PairwiseJudge};
pub use metric::{Metric, Outcome, Sample, Score, value_text};
pub use response_cache::{CachedModel, ResponseCache};
pub use runner::{
    COMPARE_SCHEMA, Comparison, EvalResults, Evaluator, Gate, GateResult, MetricComparison,
    MetricSummary, OVERALL, Progress, RegressedCase, SCHEMA, SampleResult, SampleScore,
    UsageSummary,
};
pub use stats::{Interval, McNemar, Paired, Verdict};
pub use suite::{Suite, SuiteOutcome};
pub use target::{
    CommandTarget, ModelTarget, Target, TargetError, TargetOutput, Trace, WorkflowTarget,
};

/// The Rust examples of docs/evals.md, run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../../docs/evals.md")]
pub struct EvalsMd;
