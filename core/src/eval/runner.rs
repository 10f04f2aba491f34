//! The [`Evaluator`]: runs a target over a dataset (with a concurrency limit and repeats),
//! scores every sample with every metric, summarises with statistics, checks gates, and
//! compares two result sets on the same cases.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::metric::{Metric, Outcome, Sample};
use super::stats::{self, Interval, McNemar, Paired, Verdict};
use super::target::{Target, Trace};
use super::{Case, Dataset, EvalError};

/// The schema tag of a JSON results document.
pub const SCHEMA: &str = "miyabi.eval/v1";
/// The schema tag of a JSON comparison document.
pub const COMPARE_SCHEMA: &str = "miyabi.eval.compare/v1";

/// The default bootstrap resamples and seed.
const RESAMPLES: usize = 2000;
const SEED: u64 = 0x6d69_7961_6269;

/// A gate: a condition on a metric's summary that must hold for [`EvalResults::passed`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "min", rename_all = "snake_case")]
pub enum Gate {
    /// The mean score is at least this.
    MinMean(f64),
    /// The pass rate is at least this.
    MinPassRate(f64),
}

struct Entry {
    name: String,
    metric: Arc<dyn Metric>,
    weight: f64,
    pass_threshold: f64,
    gates: Vec<Gate>,
}

/// Runs targets over datasets and scores them.
///
/// ```
/// use miyabi::eval::{Case, Dataset, Evaluator, metrics::{Contains, Exact}};
/// use serde_json::{json, Value};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dataset = Dataset::from_cases("ops", [
///     Case::new("a", "ship it").expected("deploy"),
///     Case::new("b", "roll back").expected("rollback"),
/// ])?;
/// let target = |input: Value| async move {
///     Ok::<_, std::convert::Infallible>(json!(if input == "ship it" { "deploy" } else { "wait" }))
/// };
/// let evaluator = Evaluator::new()
///     .add_metric("exact", Exact::new())
///     .add_metric("contains", Contains::any(["deploy"]))
///     .gate_pass_rate("exact", 0.5);
/// let results = evaluator.evaluate(&target, &dataset).await?;
/// assert_eq!(results.metric("exact").unwrap().mean, Some(0.5));
/// assert!(results.passed());
/// # Ok(()) }
/// ```
pub struct Evaluator {
    name: String,
    entries: Vec<Entry>,
    concurrency: usize,
    epochs: u32,
    resamples: usize,
    seed: u64,
    overall_threshold: f64,
    config_error: Option<String>,
    progress: Option<ProgressFn>,
}

type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// How far an evaluation has got, reported after every sample to the function given to
/// [`Evaluator::on_progress`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Progress {
    /// Samples (case × epoch) finished.
    pub done: usize,
    /// Samples in all.
    pub total: usize,
    /// Finished samples whose target failed.
    pub errors: usize,
    /// Finished samples whose weighted overall score passed.
    pub passed: usize,
    /// Time since the evaluation started.
    pub elapsed: Duration,
}

impl Progress {
    /// The share of scored samples that passed so far.
    pub fn pass_rate(&self) -> Option<f64> {
        let scored = self.done.saturating_sub(self.errors);
        (scored > 0).then(|| self.passed as f64 / scored as f64)
    }

    /// The expected time left, from the mean time per finished sample.
    pub fn eta(&self) -> Option<Duration> {
        if self.done == 0 {
            return None;
        }
        let left = self.total.saturating_sub(self.done) as f64 / self.done as f64;
        Duration::try_from_secs_f64(self.elapsed.as_secs_f64() * left).ok()
    }

    /// One line for a terminal: `12/40 samples, pass rate 75.0%, 1 error, ETA 5s`.
    pub fn line(&self) -> String {
        let rate = self
            .pass_rate()
            .map_or_else(|| "-".to_string(), |r| format!("{:.1}%", r * 100.0));
        let eta = self.eta().map_or_else(
            || "-".to_string(),
            |d| format!("{:.0}s", d.as_secs_f64().ceil()),
        );
        format!(
            "{}/{} samples, pass rate {rate}, {} error{}, ETA {eta}",
            self.done,
            self.total,
            self.errors,
            if self.errors == 1 { "" } else { "s" }
        )
    }
}

impl Default for Evaluator {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Evaluator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Evaluator")
            .field("name", &self.name)
            .field(
                "metrics",
                &self.entries.iter().map(|e| &e.name).collect::<Vec<_>>(),
            )
            .field("concurrency", &self.concurrency)
            .field("epochs", &self.epochs)
            .finish_non_exhaustive()
    }
}

impl Evaluator {
    /// An evaluator with no metric, concurrency 8, one epoch, 2,000 bootstrap resamples.
    pub fn new() -> Self {
        Self {
            name: "eval".into(),
            entries: Vec::new(),
            concurrency: 8,
            epochs: 1,
            resamples: RESAMPLES,
            seed: SEED,
            overall_threshold: 0.5,
            config_error: None,
            progress: None,
        }
    }

    /// Calls `f` after every finished sample with how far the evaluation has got (for a
    /// progress line on a terminal).
    pub fn on_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.progress = Some(Arc::new(f));
        self
    }

    fn fail(&mut self, msg: String) {
        if self.config_error.is_none() {
            self.config_error = Some(msg);
        }
    }

    fn entry(&mut self, name: &str) -> Option<&mut Entry> {
        let found = self.entries.iter_mut().find(|e| e.name == name);
        if found.is_none() && self.config_error.is_none() {
            self.config_error = Some(format!("no metric named {name:?} (add it first)"));
        }
        self.entries.iter_mut().find(|e| e.name == name)
    }

    /// Names the evaluation (reports, JUnit suite name).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Adds a metric under a name (weight 1, pass threshold 0.5, no gate). A second metric
    /// with the same name is a configuration error, reported by [`evaluate`](Self::evaluate).
    pub fn add_metric(mut self, name: impl Into<String>, metric: impl Metric + 'static) -> Self {
        let name = name.into();
        if name.is_empty() || self.entries.iter().any(|e| e.name == name) {
            self.fail(format!("metric name {name:?} is empty or used twice"));
            return self;
        }
        self.entries.push(Entry {
            name,
            metric: Arc::new(metric),
            weight: 1.0,
            pass_threshold: 0.5,
            gates: Vec::new(),
        });
        self
    }

    /// The weight of a metric in the weighted overall score (finite, > 0; default 1).
    pub fn weight(mut self, metric: &str, weight: f64) -> Self {
        if !(weight.is_finite() && weight > 0.0) {
            self.fail(format!(
                "weight {weight} of {metric:?} must be finite and > 0"
            ));
        } else if let Some(e) = self.entry(metric) {
            e.weight = weight;
        }
        self
    }

    /// The score at or above which a sample passes this metric (in [0, 1]; default 0.5).
    pub fn pass_threshold(mut self, metric: &str, threshold: f64) -> Self {
        if !(0.0..=1.0).contains(&threshold) {
            self.fail(format!(
                "pass threshold {threshold} of {metric:?} must be in [0, 1]"
            ));
        } else if let Some(e) = self.entry(metric) {
            e.pass_threshold = threshold;
        }
        self
    }

    /// A gate: the metric's mean must be at least `min` (in [0, 1]).
    pub fn gate_mean(self, metric: &str, min: f64) -> Self {
        self.gate(metric, Gate::MinMean(min))
    }

    /// A gate: the metric's pass rate must be at least `min` (in [0, 1]).
    pub fn gate_pass_rate(self, metric: &str, min: f64) -> Self {
        self.gate(metric, Gate::MinPassRate(min))
    }

    /// Adds a gate on a metric.
    pub fn gate(mut self, metric: &str, gate: Gate) -> Self {
        let (Gate::MinMean(min) | Gate::MinPassRate(min)) = gate;
        if !(0.0..=1.0).contains(&min) {
            self.fail(format!(
                "gate minimum {min} of {metric:?} must be in [0, 1]"
            ));
        } else if let Some(e) = self.entry(metric) {
            e.gates.push(gate);
        }
        self
    }

    /// The weighted overall score at or above which a sample passes overall (in [0, 1];
    /// default 0.5).
    pub fn overall_pass_threshold(mut self, threshold: f64) -> Self {
        if !(0.0..=1.0).contains(&threshold) {
            self.fail(format!(
                "overall pass threshold {threshold} must be in [0, 1]"
            ));
        } else {
            self.overall_threshold = threshold;
        }
        self
    }

    /// How many samples run at once (≥ 1; default 8).
    pub fn concurrency(mut self, n: usize) -> Self {
        if n == 0 {
            self.fail("concurrency must be at least 1".into());
        } else {
            self.concurrency = n;
        }
        self
    }

    /// How many times each case is run (≥ 1; default 1). Scores are averaged per case over
    /// the epochs before the statistics, which treat cases (not samples) as independent.
    pub fn epochs(mut self, n: u32) -> Self {
        if n == 0 {
            self.fail("epochs must be at least 1".into());
        } else {
            self.epochs = n;
        }
        self
    }

    /// Bootstrap resamples (0 turns the bootstrap off) and the seed of its generator.
    pub fn bootstrap(mut self, resamples: usize, seed: u64) -> Self {
        self.resamples = resamples;
        self.seed = seed;
        self
    }

    /// Runs `target` on every case × epoch, scores each output with every metric and
    /// summarises. Fails only on a configuration error; a failing target is recorded as an
    /// error sample.
    pub async fn evaluate<T: Target + ?Sized>(
        &self,
        target: &T,
        dataset: &Dataset,
    ) -> Result<EvalResults, EvalError> {
        self.check()?;
        let started_at = unix_ms();
        let clock = Instant::now();
        let jobs = dataset
            .cases()
            .iter()
            .enumerate()
            .flat_map(|(i, _)| (0..self.epochs).map(move |e| (i, e)));
        let total = dataset.len() * self.epochs as usize;
        let mut seen = Progress {
            done: 0,
            total,
            errors: 0,
            passed: 0,
            elapsed: Duration::ZERO,
        };
        let mut samples: Vec<(usize, SampleResult)> = futures::stream::iter(jobs)
            .map(|(i, epoch)| {
                let case = &dataset.cases()[i];
                async move { (i, self.run_one(target, case, epoch).await) }
            })
            .buffer_unordered(self.concurrency)
            .inspect(|(_, s)| {
                if let Some(f) = &self.progress {
                    seen.done += 1;
                    seen.errors += usize::from(s.error.is_some());
                    seen.passed +=
                        usize::from(s.scores.get(OVERALL).and_then(|x| x.passed) == Some(true));
                    seen.elapsed = clock.elapsed();
                    f(&seen);
                }
            })
            .collect()
            .await;
        samples.sort_by_key(|(i, s)| (*i, s.epoch));
        let samples: Vec<SampleResult> = samples.into_iter().map(|(_, s)| s).collect();
        Ok(self.assemble(
            &dataset.name,
            dataset.len(),
            samples,
            started_at,
            clock.elapsed().as_secs_f64() * 1000.0,
        ))
    }

    /// Checks the configuration (what [`evaluate`](Self::evaluate) refuses).
    pub(crate) fn check(&self) -> Result<(), EvalError> {
        if let Some(e) = &self.config_error {
            return Err(EvalError::Config(e.clone()));
        }
        if self.entries.is_empty() {
            return Err(EvalError::Config("the evaluator has no metric".into()));
        }
        Ok(())
    }

    /// The evaluator's name.
    pub(crate) fn eval_name(&self) -> &str {
        &self.name
    }

    /// The configured concurrency and epochs.
    pub(crate) fn shape(&self) -> (usize, u32) {
        (self.concurrency, self.epochs)
    }

    /// Summarises finished samples (in dataset order) into results: statistics, gates.
    pub(crate) fn assemble(
        &self,
        dataset: &str,
        cases: usize,
        samples: Vec<SampleResult>,
        started_at: i64,
        duration_ms: f64,
    ) -> EvalResults {
        let mut results = EvalResults {
            schema: SCHEMA.into(),
            name: self.name.clone(),
            dataset: dataset.to_string(),
            started_at_ms: started_at,
            duration_ms,
            epochs: self.epochs,
            cases,
            errors: samples.iter().filter(|s| s.error.is_some()).count(),
            metrics: Vec::new(),
            overall: None,
            gates: Vec::new(),
            passed: false,
            usage: UsageSummary::of(&samples),
            samples,
        };
        for e in &self.entries {
            let summary = summarize(
                &results.samples,
                &e.name,
                e.weight,
                e.pass_threshold,
                self.resamples,
                self.seed,
            );
            for gate in &e.gates {
                let (actual, min) = match gate {
                    Gate::MinMean(m) => (summary.mean, *m),
                    Gate::MinPassRate(m) => (summary.pass_rate, *m),
                };
                results.gates.push(GateResult {
                    metric: e.name.clone(),
                    gate: *gate,
                    actual,
                    passed: actual.is_some_and(|a| a >= min),
                });
            }
            results.metrics.push(summary);
        }
        results.overall = Some(summarize(
            &results.samples,
            OVERALL,
            1.0,
            self.overall_threshold,
            self.resamples,
            self.seed,
        ));
        results.passed = results.gates.iter().all(|g| g.passed);
        results
    }

    pub(crate) async fn run_one<T: Target + ?Sized>(
        &self,
        target: &T,
        case: &Case,
        epoch: u32,
    ) -> SampleResult {
        let start = Instant::now();
        let scope = super::response_cache::SampleScope {
            epoch,
            cached: std::cell::Cell::new(false),
        };
        let (out, cached) = super::response_cache::SAMPLE
            .scope(scope, async {
                let out = target.run(case.input.clone()).await;
                let cached = super::response_cache::SAMPLE
                    .try_with(|s| s.cached.get())
                    .unwrap_or(false);
                (out, cached)
            })
            .await;
        let latency = start.elapsed();
        let mut sample = SampleResult {
            case_id: case.id.clone(),
            epoch,
            cluster: case.cluster.clone(),
            tags: case.tags.clone(),
            latency_ms: latency.as_secs_f64() * 1000.0,
            output: None,
            error: None,
            trace: None,
            cached,
            scores: BTreeMap::new(),
        };
        let (output, trace) = match out {
            Ok(o) => (o.output, o.trace),
            Err(e) => {
                sample.error = Some(e.0);
                return sample;
            }
        };
        let mut view = Sample::new(case, &output)
            .with_epoch(epoch)
            .with_latency(latency)
            .with_cached(cached);
        if let Some(t) = &trace {
            view = view.with_trace(t);
        }
        let outcomes = futures::future::join_all(self.entries.iter().map(|e| async move {
            let view = view.with_metric(&e.name);
            e.metric.score(&view).await
        }))
        .await;
        let (mut wsum, mut wtot, mut any) = (0.0, 0.0, false);
        for (e, outcome) in self.entries.iter().zip(outcomes) {
            let s = SampleScore::from_outcome(outcome, e.pass_threshold);
            if let Some(v) = s.value {
                wsum += e.weight * v;
                wtot += e.weight;
                any = true;
            }
            sample.scores.insert(e.name.clone(), s);
        }
        if any {
            let overall = Outcome::from_value(
                (wsum / wtot).clamp(0.0, 1.0),
                "weighted mean of the scored metrics",
            );
            sample.scores.insert(
                OVERALL.into(),
                SampleScore::from_outcome(overall, self.overall_threshold),
            );
        } else {
            sample.scores.insert(
                OVERALL.into(),
                SampleScore::from_outcome(Outcome::unscored("no metric scored this sample"), 1.0),
            );
        }
        sample.output = Some(output);
        sample.trace = trace;
        sample
    }

    /// Paired A/B comparison of B against A on the cases both ran, with the default bootstrap
    /// (2,000 resamples, fixed seed). See [`compare_with`](Self::compare_with).
    pub fn compare(a: &EvalResults, b: &EvalResults) -> Result<Comparison, EvalError> {
        Self::compare_with(a, b, RESAMPLES, SEED)
    }

    /// Paired A/B comparison of B against A. For each metric both have, the per-case scores
    /// (averaged over epochs) of the cases scored on both sides are paired; the result has
    /// the mean difference B − A with its CLT and paired-bootstrap 95% intervals, win/loss/tie
    /// counts, McNemar's test when every paired score is 0 or 1 (pass/fail metrics), a
    /// verdict (McNemar's for pass/fail metrics, otherwise whether the bootstrap interval —
    /// or the CLT one without bootstrap — excludes 0), and the cases that regressed (B lower
    /// than A).
    pub fn compare_with(
        a: &EvalResults,
        b: &EvalResults,
        resamples: usize,
        seed: u64,
    ) -> Result<Comparison, EvalError> {
        let a_ids: BTreeSet<&str> = a.samples.iter().map(|s| s.case_id.as_str()).collect();
        let b_ids: BTreeSet<&str> = b.samples.iter().map(|s| s.case_id.as_str()).collect();
        let common: Vec<&str> = a_ids.intersection(&b_ids).copied().collect();
        if common.is_empty() {
            return Err(EvalError::Compare(
                "the two runs have no case in common".into(),
            ));
        }
        let mut metrics = Vec::new();
        for ma in &a.metrics {
            let Some(_) = b.metric(&ma.name) else {
                continue;
            };
            let ca = case_means(&a.samples, &ma.name);
            let cb = case_means(&b.samples, &ma.name);
            let (mut ids, mut xa, mut xb) = (Vec::new(), Vec::new(), Vec::new());
            for id in &common {
                if let (Some(x), Some(y)) = (ca.get(*id), cb.get(*id)) {
                    ids.push(id.to_string());
                    xa.push(*x);
                    xb.push(*y);
                }
            }
            let Some(paired) = stats::paired(&xa, &xb, resamples, seed) else {
                continue;
            };
            let binary = xa.iter().chain(&xb).all(|v| *v == 0.0 || *v == 1.0);
            let mcnemar = binary.then(|| {
                let a_only = xa
                    .iter()
                    .zip(&xb)
                    .filter(|(x, y)| **x == 1.0 && **y == 0.0)
                    .count();
                let b_only = xa
                    .iter()
                    .zip(&xb)
                    .filter(|(x, y)| **x == 0.0 && **y == 1.0)
                    .count();
                stats::mcnemar(a_only, b_only)
            });
            let verdict = match (&mcnemar, &paired.ci_bootstrap, &paired.ci_clt) {
                (Some(m), _, _) => Verdict::from_mcnemar(m),
                (None, Some(ci), _) | (None, None, Some(ci)) => Verdict::from_interval(ci),
                (None, None, None) => Verdict::NoDetectableDifference,
            };
            let regressed = ids
                .iter()
                .zip(xa.iter().zip(&xb))
                .filter(|(_, (x, y))| **y < **x - 1e-12)
                .map(|(id, (x, y))| RegressedCase {
                    case_id: id.clone(),
                    a: *x,
                    b: *y,
                })
                .collect();
            metrics.push(MetricComparison {
                metric: ma.name.clone(),
                paired,
                mcnemar,
                verdict,
                regressed,
            });
        }
        if metrics.is_empty() {
            return Err(EvalError::Compare(
                "no metric was scored on both sides for a common case".into(),
            ));
        }
        Ok(Comparison {
            schema: COMPARE_SCHEMA.into(),
            a: a.name.clone(),
            b: b.name.clone(),
            cases_compared: common.len(),
            only_in_a: a_ids.difference(&b_ids).map(|s| s.to_string()).collect(),
            only_in_b: b_ids.difference(&a_ids).map(|s| s.to_string()).collect(),
            metrics,
        })
    }
}

/// The name of the weighted overall score in [`SampleResult::scores`].
pub const OVERALL: &str = "overall";

pub(crate) fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Per case id: the mean of the scored values of a metric over the case's epochs.
fn case_means(samples: &[SampleResult], metric: &str) -> HashMap<String, f64> {
    let mut acc: HashMap<&str, (f64, usize)> = HashMap::new();
    for s in samples {
        if let Some(v) = s.scores.get(metric).and_then(|x| x.value) {
            let e = acc.entry(&s.case_id).or_insert((0.0, 0));
            e.0 += v;
            e.1 += 1;
        }
    }
    acc.into_iter()
        .map(|(k, (sum, n))| (k.to_string(), sum / n as f64))
        .collect()
}

fn summarize(
    samples: &[SampleResult],
    name: &str,
    weight: f64,
    pass_threshold: f64,
    resamples: usize,
    seed: u64,
) -> MetricSummary {
    let mut scored = 0;
    let mut unscored = 0;
    let mut errored = 0;
    // Case order as in the samples (dataset order).
    let mut order: Vec<&str> = Vec::new();
    let mut acc: HashMap<&str, (f64, usize, Option<&str>)> = HashMap::new();
    for s in samples {
        if s.error.is_some() {
            errored += 1;
            continue;
        }
        match s.scores.get(name).and_then(|x| x.value) {
            Some(v) => {
                scored += 1;
                let e = acc.entry(&s.case_id).or_insert_with(|| {
                    order.push(&s.case_id);
                    (0.0, 0, s.cluster.as_deref())
                });
                e.0 += v;
                e.1 += 1;
            }
            None => unscored += 1,
        }
    }
    let mut values = Vec::with_capacity(order.len());
    let mut clusters: Vec<&str> = Vec::with_capacity(order.len());
    let mut any_cluster = false;
    for id in &order {
        if let Some((sum, n, cluster)) = acc.get(id) {
            values.push(sum / *n as f64);
            any_cluster |= cluster.is_some();
            clusters.push(cluster.unwrap_or(id));
        }
    }
    let passes = values.iter().filter(|v| **v >= pass_threshold).count();
    let (clustered_std_error, n_clusters) = if any_cluster {
        (
            stats::clustered_std_error(&values, &clusters),
            Some(clusters.iter().collect::<BTreeSet<_>>().len()),
        )
    } else {
        (None, None)
    };
    MetricSummary {
        name: name.to_string(),
        weight,
        pass_threshold,
        scored,
        unscored,
        errored,
        cases: values.len(),
        mean: stats::mean(&values),
        std_error: stats::std_error(&values),
        ci_clt: stats::clt_interval(&values),
        ci_bootstrap: stats::bootstrap_interval(&values, resamples, seed),
        clustered_std_error,
        clusters: n_clusters,
        passes,
        pass_rate: (!values.is_empty()).then(|| passes as f64 / values.len() as f64),
        pass_rate_ci: stats::wilson_interval(passes, values.len()),
    }
}

/// One metric's outcome on one sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleScore {
    /// The score in [0, 1]; `null` when unscored.
    pub value: Option<f64>,
    /// Whether the score reached the metric's pass threshold; `null` when unscored.
    pub passed: Option<bool>,
    /// The metric's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The metric's metadata.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// Why the sample could not be scored (only when unscored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unscored: Option<String>,
}

impl SampleScore {
    fn from_outcome(outcome: Outcome, pass_threshold: f64) -> Self {
        match outcome {
            Outcome::Scored(s) => Self {
                value: Some(s.value()),
                passed: Some(s.value() >= pass_threshold),
                reason: s.reason,
                metadata: s.metadata,
                unscored: None,
            },
            Outcome::Unscored { reason } => Self {
                value: None,
                passed: None,
                reason: None,
                metadata: Map::new(),
                unscored: Some(reason),
            },
        }
    }
}

/// One case × epoch: the output (or the target's error), the latency and every metric's
/// outcome (plus [`OVERALL`], the weighted mean of the scored metrics).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleResult {
    /// The case id.
    pub case_id: String,
    /// The repeat, from 0.
    pub epoch: u32,
    /// The case's cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The case's tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// How long the target took, in milliseconds.
    pub latency_ms: f64,
    /// The target's output (absent on error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// The target's error (the sample is then not scored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the target did (tool calls, turns, tokens, cost), when it reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<Trace>,
    /// Whether a model the target called answered from a [`ResponseCache`](super::ResponseCache)
    /// (its latency and cost are then not the target's).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub cached: bool,
    /// Per metric name.
    pub scores: BTreeMap<String, SampleScore>,
}

impl SampleResult {
    /// The target's latency (a negative or NaN `latency_ms` is 0; one too large for a
    /// `Duration`, as a hostile results file may hold, is `Duration::MAX`).
    pub fn latency(&self) -> Duration {
        Duration::try_from_secs_f64(self.latency_ms.max(0.0) / 1000.0).unwrap_or(Duration::MAX)
    }
}

/// A metric's statistics over the cases (each case's score is its mean over epochs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    /// The metric's name.
    pub name: String,
    /// Its weight in the overall score.
    pub weight: f64,
    /// The per-sample pass threshold.
    pub pass_threshold: f64,
    /// Samples scored.
    pub scored: usize,
    /// Samples the metric could not score (left out of every statistic).
    pub unscored: usize,
    /// Samples whose target failed (left out of every statistic).
    pub errored: usize,
    /// Cases with at least one scored sample: the n of the statistics.
    pub cases: usize,
    /// Mean score.
    pub mean: Option<f64>,
    /// Standard error of the mean.
    pub std_error: Option<f64>,
    /// 95% CLT interval of the mean.
    pub ci_clt: Option<Interval>,
    /// 95% percentile-bootstrap interval of the mean.
    pub ci_bootstrap: Option<Interval>,
    /// Cluster-robust standard error (when cases carry a cluster; a case without one is its
    /// own cluster).
    pub clustered_std_error: Option<f64>,
    /// The number of clusters.
    pub clusters: Option<usize>,
    /// Cases whose score reached the pass threshold.
    pub passes: usize,
    /// `passes / cases`.
    pub pass_rate: Option<f64>,
    /// 95% Wilson interval of the pass rate.
    pub pass_rate_ci: Option<Interval>,
}

/// A gate's outcome.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    /// The metric.
    pub metric: String,
    /// The condition.
    pub gate: Gate,
    /// The value checked (`None` when the metric scored nothing: the gate fails).
    pub actual: Option<f64>,
    /// Whether it held.
    pub passed: bool,
}

/// The results of one evaluation: every sample, per-metric statistics and gates. Serialises
/// to the documented JSON schema `miyabi.eval/v1` (docs/evals.md); a stored document can be
/// read back ([`EvalResults::from_json`]) and compared against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalResults {
    /// Always [`SCHEMA`].
    pub schema: String,
    /// The evaluator's name.
    pub name: String,
    /// The dataset's name.
    pub dataset: String,
    /// When the run started (Unix milliseconds).
    pub started_at_ms: i64,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// Repeats per case.
    pub epochs: u32,
    /// Cases in the dataset.
    pub cases: usize,
    /// Samples whose target failed.
    pub errors: usize,
    /// Per metric, in the order added.
    pub metrics: Vec<MetricSummary>,
    /// The weighted overall score's statistics (weighted mean of the scored metrics per sample).
    pub overall: Option<MetricSummary>,
    /// Every gate's outcome.
    pub gates: Vec<GateResult>,
    /// Whether every gate held.
    pub passed: bool,
    /// Turns, tool calls, tokens and cost over the samples whose target reported a trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageSummary>,
    /// Every case × epoch, in dataset order.
    pub samples: Vec<SampleResult>,
}

impl EvalResults {
    /// Whether every gate held (an evaluation without gates passes). Target errors do not
    /// fail gates by themselves — they are counted in [`errors`](Self::errors) — but a gate
    /// on a metric that scored nothing fails.
    pub fn passed(&self) -> bool {
        self.passed
    }

    /// A metric's summary by name.
    pub fn metric(&self, name: &str) -> Option<&MetricSummary> {
        self.metrics.iter().find(|m| m.name == name)
    }
}

/// What the targets used, over the samples that reported a [`Trace`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageSummary {
    /// Samples with a trace.
    pub samples: usize,
    /// Model calls (turns).
    pub turns: usize,
    /// Tool calls.
    pub tool_calls: usize,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Total cost in USD over the samples whose cost is known.
    pub cost_usd: Option<f64>,
    /// Samples whose cost is known.
    pub priced_samples: usize,
    /// Mean cost per priced sample.
    pub mean_cost_usd: Option<f64>,
}

impl UsageSummary {
    fn of(samples: &[SampleResult]) -> Option<Self> {
        let traced: Vec<&Trace> = samples.iter().filter_map(|s| s.trace.as_ref()).collect();
        if traced.is_empty() {
            return None;
        }
        let costs: Vec<f64> = traced.iter().filter_map(|t| t.cost_usd).collect();
        let total: f64 = costs.iter().sum();
        Some(Self {
            samples: traced.len(),
            turns: traced.iter().map(|t| t.turns).sum(),
            tool_calls: traced.iter().map(|t| t.tool_calls.len()).sum(),
            input_tokens: traced
                .iter()
                .filter_map(|t| t.usage)
                .map(|u| u.input_tokens)
                .sum(),
            output_tokens: traced
                .iter()
                .filter_map(|t| t.usage)
                .map(|u| u.output_tokens)
                .sum(),
            cost_usd: (!costs.is_empty()).then_some(total),
            priced_samples: costs.len(),
            mean_cost_usd: (!costs.is_empty()).then(|| total / costs.len() as f64),
        })
    }
}

/// A case whose score went down from A to B.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegressedCase {
    /// The case id.
    pub case_id: String,
    /// A's score (mean over epochs).
    pub a: f64,
    /// B's score.
    pub b: f64,
}

/// One metric's A/B comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricComparison {
    /// The metric.
    pub metric: String,
    /// Paired statistics of B − A.
    pub paired: Paired,
    /// McNemar's test (pass/fail metrics only).
    pub mcnemar: Option<McNemar>,
    /// The verdict for B.
    pub verdict: Verdict,
    /// Cases where B scored lower than A.
    pub regressed: Vec<RegressedCase>,
}

/// A paired A/B comparison (schema `miyabi.eval.compare/v1`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// Always [`COMPARE_SCHEMA`].
    pub schema: String,
    /// A's name.
    pub a: String,
    /// B's name.
    pub b: String,
    /// Cases present in both.
    pub cases_compared: usize,
    /// Cases only A ran.
    pub only_in_a: Vec<String>,
    /// Cases only B ran.
    pub only_in_b: Vec<String>,
    /// Per metric present in both.
    pub metrics: Vec<MetricComparison>,
}

impl Comparison {
    /// A metric's comparison by name.
    pub fn metric(&self, name: &str) -> Option<&MetricComparison> {
        self.metrics.iter().find(|m| m.metric == name)
    }

    /// Whether any metric's verdict is [`Verdict::Worse`] (the "no significant regression"
    /// gate fails).
    pub fn has_significant_regression(&self) -> bool {
        self.metrics.iter().any(|m| m.verdict == Verdict::Worse)
    }
}
