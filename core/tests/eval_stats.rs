//! Statistics: known values, and the simulation the issue requires (coverage of the 95%
//! intervals and the false-positive rate of the A/B verdict on synthetic paired experiments).
#![cfg(feature = "eval")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use miyabi::eval::Verdict;
use miyabi::eval::stats::{
    self, bootstrap_interval, clt_interval, clustered_std_error, erfc, mcnemar, mean, paired,
    std_error, wilson_interval,
};

fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() < tol, "{a} != {b} (±{tol})");
}

#[test]
fn mean_standard_error_and_clt_interval() {
    let xs = [1.0, 0.0, 1.0, 1.0];
    close(mean(&xs).unwrap(), 0.75, 1e-12);
    // s² = (3·0.0625 + 0.5625) / 3 = 0.25, s = 0.5, SE = 0.5 / 2 = 0.25.
    close(std_error(&xs).unwrap(), 0.25, 1e-12);
    let ci = clt_interval(&xs).unwrap();
    close(ci.low, 0.75 - 1.959964 * 0.25, 1e-6);
    close(ci.high, 0.75 + 1.959964 * 0.25, 1e-6);
    assert!(std_error(&[1.0]).is_none());
    assert!(mean(&[]).is_none());
}

#[test]
fn wilson_interval_known_values() {
    // 8 of 10, z = 1.96: centre (0.8 + 0.19208)/1.38415 = 0.71676, half-width
    // 1.96·√(0.016 + 0.0096040)/1.38415 = 0.22656 → [0.4902, 0.9433].
    let ci = wilson_interval(8, 10).unwrap();
    close(ci.low, 0.4902, 1e-4);
    close(ci.high, 0.9433, 1e-4);
    // 0 of 10 stays inside [0, 1] and is not degenerate.
    let ci = wilson_interval(0, 10).unwrap();
    assert_eq!(ci.low, 0.0);
    close(ci.high, 0.2775, 1e-4);
    assert!(wilson_interval(0, 0).is_none());
    assert!(wilson_interval(3, 2).is_none());
}

#[test]
fn erfc_and_mcnemar_known_values() {
    close(erfc(0.0), 1.0, 1e-7);
    close(erfc(1.959_963_984_540_054 / 2f64.sqrt()), 0.05, 1e-7);
    close(erfc(-1.0), 1.842_700_79, 1e-7);
    // Exact: 1 vs 9 discordant, P(X ≤ 1 | n = 10) = 11/1024, two-sided 22/1024.
    let m = mcnemar(1, 9);
    assert!(m.exact);
    close(m.p_value, 22.0 / 1024.0, 1e-12);
    assert_eq!(Verdict::from_mcnemar(&m), Verdict::Better);
    assert_eq!(Verdict::from_mcnemar(&mcnemar(9, 1)), Verdict::Worse);
    assert_eq!(mcnemar(3, 3).p_value, 1.0);
    assert_eq!(mcnemar(0, 0).p_value, 1.0);
    // χ² with continuity correction: 10 vs 25 → (15 − 1)²/35 = 5.6, p = erfc(√2.8) = 0.017961.
    let m = mcnemar(10, 25);
    assert!(!m.exact);
    close(m.p_value, 0.017_961, 1e-5);
}

#[test]
fn clustered_standard_error_by_hand() {
    // Values 1, 1, 0, 0 in clusters a, a, b, b: mean 0.5, cluster sums of residuals
    // +1 and −1, G = 2: SE = √(2/1 · 2) / 4 = 0.5 — twice the naive √(1/3)/2 = 0.2887,
    // because the clusters are perfectly correlated inside.
    let xs = [1.0, 1.0, 0.0, 0.0];
    close(
        clustered_std_error(&xs, &["a", "a", "b", "b"]).unwrap(),
        0.5,
        1e-12,
    );
    // Every case its own cluster: CR1 = √(n/(n−1) · Σe²)/n = the naive SE.
    close(
        clustered_std_error(&xs, &["1", "2", "3", "4"]).unwrap(),
        std_error(&xs).unwrap(),
        1e-12,
    );
    assert!(clustered_std_error(&xs, &["a", "a", "a", "a"]).is_none());
}

#[test]
fn bootstrap_is_seeded_and_sensible() {
    let xs: Vec<f64> = (0..200)
        .map(|i| if i % 4 == 0 { 0.0 } else { 1.0 })
        .collect();
    let a = bootstrap_interval(&xs, 1000, 7).unwrap();
    let b = bootstrap_interval(&xs, 1000, 7).unwrap();
    assert_eq!(a, b, "same seed, same interval");
    assert!(a.contains(0.75));
    let clt = clt_interval(&xs).unwrap();
    close(a.high - a.low, clt.high - clt.low, 0.03);
    assert!(bootstrap_interval(&xs, 0, 7).is_none());
}

#[test]
fn paired_counts_wins_losses_ties() {
    let a = [1.0, 0.0, 0.5, 1.0];
    let b = [1.0, 1.0, 0.25, 1.0];
    let p = paired(&a, &b, 200, 1).unwrap();
    assert_eq!((p.wins, p.losses, p.ties), (1, 1, 2));
    close(p.mean_diff, 0.1875, 1e-12);
    assert!(paired(&a, &b[..3], 0, 1).is_none());
}

/// One synthetic paired experiment: `n` items; item i has a latent uniform U_i; A passes
/// when U_i < p_a; B's uniform is U_i itself with probability `rho` (the same item is easy
/// or hard for both) or a fresh draw, and B passes when it is < p_b. So P(A) = p_a,
/// P(B) = p_b exactly, the items are positively correlated, and the true difference of the
/// pass rates is p_b − p_a.
fn experiment(
    rng: &mut fastrand::Rng,
    n: usize,
    p_a: f64,
    p_b: f64,
    rho: f64,
) -> (Vec<f64>, Vec<f64>) {
    let mut a = Vec::with_capacity(n);
    let mut b = Vec::with_capacity(n);
    for _ in 0..n {
        let u = rng.f64();
        let v = if rng.f64() < rho { u } else { rng.f64() };
        a.push(f64::from(u < p_a));
        b.push(f64::from(v < p_b));
    }
    (a, b)
}

fn discordant(a: &[f64], b: &[f64]) -> (usize, usize) {
    let a_only = a
        .iter()
        .zip(b)
        .filter(|(x, y)| **x == 1.0 && **y == 0.0)
        .count();
    let b_only = a
        .iter()
        .zip(b)
        .filter(|(x, y)| **x == 0.0 && **y == 1.0)
        .count();
    (a_only, b_only)
}

/// The simulation of issue 12: 2 × 2,000 paired A/B experiments of 500 pass/fail items
/// (p_A = 0.70, p_B ∈ {0.70, 0.73}, correlated items), seeded. Checks:
/// - the 95% paired-difference CLT interval (what `Evaluator::compare` reports as `ci_clt`)
///   covers the true difference in 94–96% of the 4,000 experiments (with 4,000 the
///   simulation's own standard error is 0.34 points);
/// - under the null (p_B = p_A) the verdict the evaluator gives for pass/fail metrics
///   (McNemar's test at 5%) is "better" or "worse" in at most 5% of the 2,000 experiments;
/// - the paired bootstrap interval, which costs a resampling loop per experiment, is checked
///   on fewer experiments (200, 400 resamples each) to keep this debug-build test fast: its
///   coverage must be in 90–99% (with 200 experiments the sampling error alone is ±3 points).
#[test]
fn simulated_ab_experiments_have_nominal_coverage_and_false_positive_rate() {
    const N: usize = 500;
    const EXPERIMENTS: usize = 2000;
    const P_A: f64 = 0.70;
    const RHO: f64 = 0.5;
    let mut rng = fastrand::Rng::with_seed(20_240_612);
    let mut covered = 0usize;
    let mut total = 0usize;
    let mut false_positives = 0usize;
    let mut detected = 0usize;
    for p_b in [0.70, 0.73] {
        let truth = p_b - P_A;
        for _ in 0..EXPERIMENTS {
            let (a, b) = experiment(&mut rng, N, P_A, p_b, RHO);
            let p = paired(&a, &b, 0, 0).unwrap();
            let ci = p.ci_clt.unwrap();
            total += 1;
            covered += usize::from(ci.contains(truth));
            let (a_only, b_only) = discordant(&a, &b);
            let verdict = Verdict::from_mcnemar(&mcnemar(a_only, b_only));
            if p_b == P_A {
                false_positives += usize::from(verdict != Verdict::NoDetectableDifference);
            } else {
                detected += usize::from(verdict == Verdict::Better);
            }
        }
    }
    let coverage = covered as f64 / total as f64;
    let fpr = false_positives as f64 / EXPERIMENTS as f64;
    let power = detected as f64 / EXPERIMENTS as f64;
    eprintln!(
        "CLT coverage {coverage:.4}, false-positive rate {fpr:.4}, power at +3 points {power:.4}"
    );
    assert!((0.94..=0.96).contains(&coverage), "coverage {coverage}");
    assert!(fpr <= stats::ALPHA, "false-positive rate {fpr}");
    // Sanity: with 500 items and +3 points the test detects the improvement sometimes.
    assert!(power > 0.1, "power {power}");

    let mut boot_covered = 0usize;
    let boot_runs = 200;
    for i in 0..boot_runs {
        let p_b = if i % 2 == 0 { 0.70 } else { 0.73 };
        let (a, b) = experiment(&mut rng, N, P_A, p_b, RHO);
        let p = paired(&a, &b, 400, i as u64).unwrap();
        boot_covered += usize::from(p.ci_bootstrap.unwrap().contains(p_b - P_A));
    }
    let boot = boot_covered as f64 / boot_runs as f64;
    eprintln!("bootstrap coverage {boot:.4} over {boot_runs} experiments");
    assert!((0.90..=0.99).contains(&boot), "bootstrap coverage {boot}");
}
