//! Text metrics: exact match, contains, regex, Levenshtein similarity.

use async_trait::async_trait;
use serde_json::Value;

use super::references;
use crate::eval::EvalError;
use crate::eval::metric::{Metric, Outcome, Sample, Score};

/// 1 when the output equals the expected value, else 0. Strings are compared as text
/// (optionally trimmed and case-insensitive); other JSON values structurally. Unscored
/// without `expected`.
#[derive(Debug, Clone, Default)]
pub struct Exact {
    trim: bool,
    ignore_case: bool,
}

impl Exact {
    /// Exact comparison.
    pub fn new() -> Self {
        Self::default()
    }

    /// Trims surrounding whitespace of both strings first.
    pub fn trim(mut self) -> Self {
        self.trim = true;
        self
    }

    /// Compares strings case-insensitively.
    pub fn ignore_case(mut self) -> Self {
        self.ignore_case = true;
        self
    }

    fn norm(&self, s: &str) -> String {
        let s = if self.trim { s.trim() } else { s };
        if self.ignore_case {
            s.to_lowercase()
        } else {
            s.to_string()
        }
    }
}

#[async_trait]
impl Metric for Exact {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        let Some(expected) = sample.case.expected.as_ref() else {
            return Outcome::unscored("the case has no expected value");
        };
        let equal = match (expected, sample.output) {
            (Value::String(e), Value::String(o)) => self.norm(e) == self.norm(o),
            (e, o) => e == o,
        };
        Score::pass_fail(equal)
            .with_reason(if equal {
                "output equals expected"
            } else {
                "output differs from expected"
            })
            .into()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Any,
    All,
}

/// Whether the output text contains the given strings — any of them, or all (the score is
/// then the fraction found). Case-insensitive unless [`case_sensitive`](Self::case_sensitive).
/// Without strings ([`Contains::expected`]), the case's expected text (or each of its
/// references) is looked for.
#[derive(Debug, Clone)]
pub struct Contains {
    needles: Vec<String>,
    mode: Mode,
    case_sensitive: bool,
}

impl Contains {
    /// 1 when the output contains at least one of `needles`, else 0.
    pub fn any<I, S>(needles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            needles: needles.into_iter().map(Into::into).collect(),
            mode: Mode::Any,
            case_sensitive: false,
        }
    }

    /// The fraction of `needles` the output contains (1 when it contains all).
    pub fn all<I, S>(needles: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            mode: Mode::All,
            ..Self::any(needles)
        }
    }

    /// 1 when the output contains the case's expected text (any of its references).
    pub fn expected() -> Self {
        Self::any(Vec::<String>::new())
    }

    /// Matches case-sensitively.
    pub fn case_sensitive(mut self) -> Self {
        self.case_sensitive = true;
        self
    }
}

#[async_trait]
impl Metric for Contains {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        let needles = if self.needles.is_empty() {
            match references(sample) {
                Ok(r) => r,
                Err(unscored) => return unscored,
            }
        } else {
            self.needles.clone()
        };
        let fold = |s: &str| {
            if self.case_sensitive {
                s.to_string()
            } else {
                s.to_lowercase()
            }
        };
        let hay = fold(&sample.output_text());
        let found: Vec<&String> = needles.iter().filter(|n| hay.contains(&fold(n))).collect();
        let missing: Vec<&String> = needles.iter().filter(|n| !found.contains(n)).collect();
        let value = match self.mode {
            Mode::Any => {
                if found.is_empty() {
                    0.0
                } else {
                    1.0
                }
            }
            Mode::All => found.len() as f64 / needles.len().max(1) as f64,
        };
        let reason = if missing.is_empty() {
            format!("found all of {needles:?}")
        } else {
            format!("found {found:?}, missing {missing:?}")
        };
        Outcome::from_value(value, reason)
    }
}

/// 1 when the output text matches a regular expression (the `regex` crate's syntax), else 0.
#[derive(Debug, Clone)]
pub struct Regex {
    re: regex::Regex,
}

impl Regex {
    /// Compiles the pattern; fails with [`EvalError::Config`] on a bad one.
    pub fn new(pattern: &str) -> Result<Self, EvalError> {
        regex::Regex::new(pattern)
            .map(|re| Self { re })
            .map_err(|e| EvalError::Config(format!("regex {pattern:?}: {e}")))
    }
}

#[async_trait]
impl Metric for Regex {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        let text = sample.output_text();
        let ok = self.re.is_match(&text);
        Score::pass_fail(ok)
            .with_reason(format!(
                "output {} /{}/",
                if ok { "matches" } else { "does not match" },
                self.re.as_str()
            ))
            .into()
    }
}

/// The Levenshtein edit distance between two strings, in Unicode scalar values.
pub fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Normalised Levenshtein similarity with the expected text: `1 - distance / max(len)` (the
/// best over several references; 1 for two empty strings). Unscored without `expected`.
#[derive(Debug, Clone, Default)]
pub struct Levenshtein;

impl Levenshtein {
    /// The metric.
    pub fn new() -> Self {
        Self
    }
}

#[async_trait]
impl Metric for Levenshtein {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        let refs = match references(sample) {
            Ok(r) => r,
            Err(u) => return u,
        };
        let out = sample.output_text();
        let mut best: Option<(f64, usize)> = None;
        for r in &refs {
            let d = levenshtein(&out, r);
            let len = out.chars().count().max(r.chars().count());
            let sim = if len == 0 {
                1.0
            } else {
                1.0 - d as f64 / len as f64
            };
            if best.is_none_or(|(b, _)| sim > b) {
                best = Some((sim, d));
            }
        }
        match best {
            Some((sim, d)) => match Score::new(sim) {
                Ok(s) => s
                    .with_reason(format!("edit distance {d}"))
                    .with_meta("distance", d)
                    .into(),
                Err(e) => Outcome::unscored(e.to_string()),
            },
            None => Outcome::unscored("no reference"),
        }
    }
}
