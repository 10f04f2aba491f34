//! The evaluation runner's overhead (issue 12, "Performance"): one JSON line per figure.
//!
//! - `eval.10k_cases.3_metrics.ms`: 10,000 cases against a zero-latency target (a closure that
//!   answers at once) scored by three deterministic metrics (exact, contains, Levenshtein),
//!   concurrency 8, wall time of `evaluate` including the statistics (2,000 bootstrap
//!   resamples per metric).
//! - `eval.1k_concurrent.overhead_us_per_case`: 1,000 cases at concurrency 1,000 against the
//!   same target: wall time / cases.
//!
//! Run: `cargo run --release -p miyabi --features eval --example eval_bench`.

use std::time::Instant;

use miyabi::eval::metrics::{Contains, Exact, Levenshtein};
use miyabi::eval::{Case, Dataset, Evaluator};
use serde_json::{Value, json};

fn dataset(n: usize) -> Result<Dataset, miyabi::eval::EvalError> {
    Dataset::from_cases(
        "bench",
        (0..n).map(|i| {
            Case::new(format!("c{i}"), json!(format!("question {i}")))
                .expected(if i.is_multiple_of(2) { "yes" } else { "no" })
        }),
    )
}

fn evaluator(concurrency: usize) -> Evaluator {
    Evaluator::new()
        .add_metric("exact", Exact::new())
        .add_metric("contains", Contains::any(["yes"]))
        .add_metric("levenshtein", Levenshtein::new())
        .concurrency(concurrency)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let target = |input: Value| async move {
        let n: usize = input
            .as_str()
            .and_then(|s| s.rsplit(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok::<_, std::convert::Infallible>(json!(if n.is_multiple_of(3) { "yes" } else { "no" }))
    };
    let big = dataset(10_000)?;
    // Warm-up.
    evaluator(8).evaluate(&target, &dataset(100)?).await?;
    let t = Instant::now();
    let r = evaluator(8).evaluate(&target, &big).await?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    assert_eq!(r.samples.len(), 10_000);
    println!(
        "{}",
        json!({"bench": "eval.10k_cases.3_metrics.ms", "value": (ms * 10.0).round() / 10.0, "unit": "ms"})
    );
    let k = dataset(1_000)?;
    let t = Instant::now();
    let r = evaluator(1_000).evaluate(&target, &k).await?;
    let us = t.elapsed().as_secs_f64() * 1e6 / 1_000.0;
    assert_eq!(r.samples.len(), 1_000);
    println!(
        "{}",
        json!({"bench": "eval.1k_concurrent.overhead_us_per_case", "value": (us * 10.0).round() / 10.0, "unit": "µs"})
    );
    Ok(())
}
