//! Progress reports of the evaluator through the public API.
#![cfg(feature = "eval")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use miyabi::eval::metrics::Exact;
use miyabi::eval::{Case, Dataset, Evaluator, Progress};
use serde_json::{Value, json};

#[tokio::test]
async fn progress_is_reported_after_every_sample() {
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let s2 = Arc::clone(&seen);
    let dataset = Dataset::from_cases(
        "p",
        (0..5).map(|i| Case::new(format!("c{i}"), json!(i)).expected("even")),
    )
    .unwrap();
    let target = |v: Value| async move {
        let i = v.as_u64().unwrap();
        if i == 4 {
            return Err("broken".to_string());
        }
        Ok(json!(if i.is_multiple_of(2) { "even" } else { "odd" }))
    };
    Evaluator::new()
        .add_metric("exact", Exact::new())
        .epochs(2)
        .on_progress(move |p| s2.lock().unwrap().push(*p))
        .evaluate(&target, &dataset)
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 10);
    assert_eq!(
        seen.iter().map(|p| p.done).collect::<Vec<_>>(),
        (1..=10).collect::<Vec<_>>()
    );
    let last = seen.last().unwrap();
    assert_eq!((last.total, last.errors, last.passed), (10, 2, 4));
    assert_eq!(last.pass_rate(), Some(0.5));
    assert_eq!(last.eta(), Some(Duration::ZERO));
    assert!(
        last.line()
            .starts_with("10/10 samples, pass rate 50.0%, 2 errors, ETA 0s"),
        "{}",
        last.line()
    );
    let none = Progress {
        done: 0,
        total: 3,
        errors: 0,
        passed: 0,
        elapsed: Duration::ZERO,
    };
    assert_eq!((none.eta(), none.pass_rate()), (None, None));
    let huge = Progress {
        done: 1,
        total: usize::MAX,
        errors: 0,
        passed: 0,
        elapsed: Duration::from_secs(u64::MAX / 2),
    };
    assert_eq!(
        huge.eta(),
        None,
        "an ETA that does not fit a Duration is none, not a panic"
    );
}
