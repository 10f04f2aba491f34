//! Statistics: means with standard errors and 95% confidence intervals (CLT and a seeded
//! percentile bootstrap), cluster-robust standard errors, Wilson intervals for pass rates,
//! and paired A/B comparison (per-case differences, paired bootstrap, McNemar's test,
//! win/loss/tie counts, a verdict).
//!
//! Everything is deterministic: the bootstrap draws from `fastrand` with a given seed.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// The two-sided 95% normal quantile, Φ⁻¹(0.975).
pub const Z95: f64 = 1.959_963_984_540_054;

/// The significance level of verdicts (two-sided): 0.05, matching the 95% intervals.
pub const ALPHA: f64 = 0.05;

/// A closed interval `[low, high]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
}

impl Interval {
    /// Whether `x` lies in the interval.
    pub fn contains(&self, x: f64) -> bool {
        self.low <= x && x <= self.high
    }
}

/// The arithmetic mean; `None` for no values.
pub fn mean(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() {
        None
    } else {
        Some(xs.iter().sum::<f64>() / xs.len() as f64)
    }
}

/// The sample standard deviation (n − 1 denominator); `None` below two values.
pub fn std_dev(xs: &[f64]) -> Option<f64> {
    if xs.len() < 2 {
        return None;
    }
    let m = mean(xs)?;
    let ss: f64 = xs.iter().map(|x| (x - m) * (x - m)).sum();
    Some((ss / (xs.len() - 1) as f64).sqrt())
}

/// The standard error of the mean, `s / √n`; `None` below two values.
pub fn std_error(xs: &[f64]) -> Option<f64> {
    Some(std_dev(xs)? / (xs.len() as f64).sqrt())
}

/// The 95% CLT interval of the mean, `mean ± 1.96·SE`; `None` below two values.
pub fn clt_interval(xs: &[f64]) -> Option<Interval> {
    let m = mean(xs)?;
    let se = std_error(xs)?;
    Some(Interval {
        low: m - Z95 * se,
        high: m + Z95 * se,
    })
}

/// The value at quantile `q` of sorted values (linear interpolation between order statistics).
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    sorted[lo] * (1.0 - frac) + sorted[hi.min(sorted.len() - 1)] * frac
}

/// The 95% percentile-bootstrap interval of the mean: `resamples` resamples of the values
/// with replacement, drawn from a `fastrand` generator seeded with `seed`; the 2.5% and 97.5%
/// quantiles of the resampled means. `None` below two values or with no resample.
pub fn bootstrap_interval(xs: &[f64], resamples: usize, seed: u64) -> Option<Interval> {
    if xs.len() < 2 || resamples == 0 {
        return None;
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let n = xs.len();
    let mut means: Vec<f64> = (0..resamples)
        .map(|_| (0..n).map(|_| xs[rng.usize(..n)]).sum::<f64>() / n as f64)
        .collect();
    means.sort_by(f64::total_cmp);
    Some(Interval {
        low: quantile_sorted(&means, 0.025),
        high: quantile_sorted(&means, 0.975),
    })
}

/// The cluster-robust (CR1) standard error of the mean: with residuals `e_i = x_i − mean`,
/// cluster sums `S_g = Σ_{i∈g} e_i` and G clusters, `SE = √(G/(G−1) · Σ_g S_g²) / n`.
/// `clusters[i]` is the cluster of `xs[i]`. `None` with fewer than two clusters or when the
/// lengths differ.
pub fn clustered_std_error(xs: &[f64], clusters: &[&str]) -> Option<f64> {
    if xs.len() != clusters.len() {
        return None;
    }
    let m = mean(xs)?;
    let mut sums: HashMap<&str, f64> = HashMap::new();
    for (x, c) in xs.iter().zip(clusters) {
        *sums.entry(c).or_insert(0.0) += x - m;
    }
    let g = sums.len() as f64;
    if g < 2.0 {
        return None;
    }
    let ss: f64 = sums.values().map(|s| s * s).sum();
    Some((g / (g - 1.0) * ss).sqrt() / xs.len() as f64)
}

/// The 95% Wilson score interval of a proportion `successes / n`; `None` for `n = 0` or
/// `successes > n`.
pub fn wilson_interval(successes: usize, n: usize) -> Option<Interval> {
    if n == 0 || successes > n {
        return None;
    }
    let n_f = n as f64;
    let p = successes as f64 / n_f;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n_f;
    let centre = (p + z2 / (2.0 * n_f)) / denom;
    let half = Z95 * (p * (1.0 - p) / n_f + z2 / (4.0 * n_f * n_f)).sqrt() / denom;
    Some(Interval {
        low: (centre - half).max(0.0),
        high: (centre + half).min(1.0),
    })
}

/// The complementary error function, `erfc(x) = 1 − erf(x)`, with a fractional error below
/// 1.2·10⁻⁷ everywhere (the Chebyshev fit of Press et al., *Numerical Recipes*, §6.2).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// The result of McNemar's test on paired pass/fail outcomes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct McNemar {
    /// Cases A passed and B failed.
    pub a_only: usize,
    /// Cases B passed and A failed.
    pub b_only: usize,
    /// The two-sided p-value.
    pub p_value: f64,
    /// Whether the exact binomial test was used (fewer than 25 discordant pairs); otherwise
    /// the χ² test with continuity correction.
    pub exact: bool,
}

/// McNemar's test of "A and B pass equally often" from the discordant counts. With fewer
/// than 25 discordant pairs the exact two-sided binomial test (`2·P(X ≤ min)`, X ~
/// Bin(a_only + b_only, ½), capped at 1); otherwise χ² = (|a_only − b_only| − 1)² /
/// (a_only + b_only) on one degree of freedom. No discordant pair gives p = 1.
pub fn mcnemar(a_only: usize, b_only: usize) -> McNemar {
    let n = a_only + b_only;
    if n == 0 {
        return McNemar {
            a_only,
            b_only,
            p_value: 1.0,
            exact: true,
        };
    }
    if n < 25 {
        let k = a_only.min(b_only);
        // Σ_{i ≤ k} C(n, i) / 2ⁿ, in logs.
        let mut log_c = 0.0f64; // log C(n, 0)
        let mut sum = 0.0f64;
        let log_half_n = n as f64 * 0.5f64.ln();
        for i in 0..=k {
            if i > 0 {
                log_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
            }
            sum += (log_c + log_half_n).exp();
        }
        McNemar {
            a_only,
            b_only,
            p_value: (2.0 * sum).min(1.0),
            exact: true,
        }
    } else {
        let d = (a_only as f64 - b_only as f64).abs() - 1.0;
        let chi2 = d.max(0.0).powi(2) / n as f64;
        McNemar {
            a_only,
            b_only,
            p_value: erfc((chi2 / 2.0).sqrt()).clamp(0.0, 1.0),
            exact: false,
        }
    }
}

/// The verdict of an A/B comparison on one metric, for B against A.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// B is significantly better.
    Better,
    /// B is significantly worse.
    Worse,
    /// No detectable difference at the 5% level.
    NoDetectableDifference,
}

impl Verdict {
    /// From a 95% interval of the mean difference B − A: better when it lies above 0, worse
    /// when below, else no detectable difference.
    pub fn from_interval(ci: &Interval) -> Self {
        if ci.low > 0.0 {
            Self::Better
        } else if ci.high < 0.0 {
            Self::Worse
        } else {
            Self::NoDetectableDifference
        }
    }

    /// From McNemar's test: significant at [`ALPHA`], in the direction of the larger
    /// discordant count.
    pub fn from_mcnemar(m: &McNemar) -> Self {
        if m.p_value >= ALPHA || m.a_only == m.b_only {
            Self::NoDetectableDifference
        } else if m.b_only > m.a_only {
            Self::Better
        } else {
            Self::Worse
        }
    }

    /// A short label for reports.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Better => "better",
            Self::Worse => "worse",
            Self::NoDetectableDifference => "no detectable difference",
        }
    }
}

/// Paired statistics of B − A over the same cases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    /// The number of pairs.
    pub n: usize,
    /// The mean of A.
    pub mean_a: f64,
    /// The mean of B.
    pub mean_b: f64,
    /// The mean difference B − A.
    pub mean_diff: f64,
    /// The standard error of the mean difference (`None` below two pairs).
    pub std_error: Option<f64>,
    /// The 95% CLT interval of the mean difference.
    pub ci_clt: Option<Interval>,
    /// The 95% paired percentile-bootstrap interval of the mean difference.
    pub ci_bootstrap: Option<Interval>,
    /// Pairs where B scored higher.
    pub wins: usize,
    /// Pairs where B scored lower.
    pub losses: usize,
    /// Pairs with equal scores.
    pub ties: usize,
}

/// Paired statistics of `b[i] − a[i]`; `bootstrap_resamples` = 0 skips the bootstrap.
/// `None` when the lengths differ or there is no pair.
pub fn paired(a: &[f64], b: &[f64], bootstrap_resamples: usize, seed: u64) -> Option<Paired> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    let (mut wins, mut losses, mut ties) = (0, 0, 0);
    for x in &d {
        if *x > 1e-12 {
            wins += 1;
        } else if *x < -1e-12 {
            losses += 1;
        } else {
            ties += 1;
        }
    }
    Some(Paired {
        n: d.len(),
        mean_a: mean(a)?,
        mean_b: mean(b)?,
        mean_diff: mean(&d)?,
        std_error: std_error(&d),
        ci_clt: clt_interval(&d),
        ci_bootstrap: bootstrap_interval(&d, bootstrap_resamples, seed),
        wins,
        losses,
        ties,
    })
}
