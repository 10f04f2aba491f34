//! N-gram overlap metrics: BLEU and ROUGE-L.

use std::collections::HashMap;

use async_trait::async_trait;

use super::references;
use crate::eval::EvalError;
use crate::eval::metric::{Metric, Outcome, Sample};

/// The tokenizer of [`Bleu`] and [`RougeL`]: lower-cased runs of alphanumeric characters
/// (everything else separates tokens), as the reference ROUGE scripts do.
pub fn tokenize(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect()
}

fn ngrams(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut out = HashMap::new();
    if n == 0 || tokens.len() < n {
        return out;
    }
    for w in tokens.windows(n) {
        *out.entry(w).or_insert(0) += 1;
    }
    out
}

/// Sentence BLEU (Papineni et al. 2002): the geometric mean of the modified (clipped) n-gram
/// precisions for n = 1..=`max_n` (default 4) with uniform weights, times the brevity penalty
/// `exp(1 - r/c)` when the candidate is shorter than the reference closest in length. Several
/// references (an `expected` array of strings) clip against the highest count in any of them.
/// Without smoothing a precision of 0 makes BLEU 0; [`Bleu::smoothed`] adds one to the
/// numerator and denominator of every precision for n ≥ 2 (Lin & Och 2004). Unscored without
/// `expected`; 0 for an empty output.
#[derive(Debug, Clone)]
pub struct Bleu {
    max_n: usize,
    smooth: bool,
}

impl Default for Bleu {
    fn default() -> Self {
        Self {
            max_n: 4,
            smooth: false,
        }
    }
}

impl Bleu {
    /// BLEU-4, unsmoothed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses n-grams up to `n` (1..=8).
    pub fn max_n(mut self, n: usize) -> Result<Self, EvalError> {
        if !(1..=8).contains(&n) {
            return Err(EvalError::Config(format!(
                "BLEU max_n {n} must be in 1..=8"
            )));
        }
        self.max_n = n;
        Ok(self)
    }

    /// Add-one smoothing for n ≥ 2.
    pub fn smoothed(mut self) -> Self {
        self.smooth = true;
        self
    }

    /// BLEU of a candidate against references (already tokenized).
    pub fn compute(&self, candidate: &[String], references: &[Vec<String>]) -> f64 {
        if candidate.is_empty() || references.is_empty() {
            return 0.0;
        }
        let mut log_sum = 0.0;
        for n in 1..=self.max_n {
            let cand = ngrams(candidate, n);
            let mut max_ref: HashMap<&[String], usize> = HashMap::new();
            for r in references {
                for (g, c) in ngrams(r, n) {
                    let e = max_ref.entry(g).or_insert(0);
                    *e = (*e).max(c);
                }
            }
            let total: usize = cand.values().sum();
            let matched: usize = cand
                .iter()
                .map(|(g, c)| (*c).min(max_ref.get(g).copied().unwrap_or(0)))
                .sum();
            let (num, den) = if self.smooth && n > 1 {
                (matched as f64 + 1.0, total as f64 + 1.0)
            } else {
                (matched as f64, total as f64)
            };
            if num == 0.0 || den == 0.0 {
                return 0.0;
            }
            log_sum += (num / den).ln();
        }
        let c = candidate.len() as f64;
        // The reference length closest to the candidate's (the shorter on a tie).
        let r = references
            .iter()
            .map(|r| r.len() as f64)
            .min_by(|a, b| {
                ((a - c).abs(), *a)
                    .partial_cmp(&((b - c).abs(), *b))
                    .unwrap_or(std::cmp::Ordering::Equal)
            })
            .unwrap_or(c);
        let bp = if c >= r { 1.0 } else { (1.0 - r / c).exp() };
        bp * (log_sum / self.max_n as f64).exp()
    }
}

#[async_trait]
impl Metric for Bleu {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        let refs = match references(sample) {
            Ok(r) => r,
            Err(u) => return u,
        };
        let refs: Vec<Vec<String>> = refs.iter().map(|r| tokenize(r)).collect();
        let cand = tokenize(&sample.output_text());
        let v = self.compute(&cand, &refs);
        Outcome::from_value(v.clamp(0.0, 1.0), format!("BLEU-{} = {v:.4}", self.max_n))
    }
}

/// ROUGE-L (Lin 2004): from the longest common subsequence of candidate and reference tokens,
/// `P = LCS / |candidate|`, `R = LCS / |reference|` and the F-measure
/// `(1 + β²)·P·R / (R + β²·P)` with β = 1 by default (the F1 score). With several references
/// the best F is taken. Unscored without `expected`.
#[derive(Debug, Clone)]
pub struct RougeL {
    beta: f64,
}

impl Default for RougeL {
    fn default() -> Self {
        Self { beta: 1.0 }
    }
}

/// The length of the longest common subsequence of two token lists.
fn lcs(a: &[String], b: &[String]) -> usize {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    for x in a {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y {
                prev[j] + 1
            } else {
                prev[j + 1].max(cur[j])
            };
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

impl RougeL {
    /// ROUGE-L F1.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets β (finite, > 0): β > 1 weighs recall more.
    pub fn beta(mut self, beta: f64) -> Result<Self, EvalError> {
        if !(beta.is_finite() && beta > 0.0) {
            return Err(EvalError::Config(format!(
                "ROUGE-L beta {beta} must be finite and > 0"
            )));
        }
        self.beta = beta;
        Ok(self)
    }

    /// ROUGE-L F of a candidate against one reference (already tokenized).
    pub fn compute(&self, candidate: &[String], reference: &[String]) -> f64 {
        if candidate.is_empty() || reference.is_empty() {
            return 0.0;
        }
        let l = lcs(candidate, reference) as f64;
        if l == 0.0 {
            return 0.0;
        }
        let p = l / candidate.len() as f64;
        let r = l / reference.len() as f64;
        let b2 = self.beta * self.beta;
        (1.0 + b2) * p * r / (r + b2 * p)
    }
}

#[async_trait]
impl Metric for RougeL {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        let refs = match references(sample) {
            Ok(r) => r,
            Err(u) => return u,
        };
        let cand = tokenize(&sample.output_text());
        let best = refs
            .iter()
            .map(|r| self.compute(&cand, &tokenize(r)))
            .fold(0.0f64, f64::max);
        Outcome::from_value(best.clamp(0.0, 1.0), format!("ROUGE-L F = {best:.4}"))
    }
}
