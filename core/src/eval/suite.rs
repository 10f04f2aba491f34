//! Suite files: an evaluation described as data (YAML or JSON) — dataset, target, metrics with
//! weights, pass thresholds and gates, repeats, concurrency, the judge and embedding models,
//! an optional baseline — so that `miyabi eval run <suite>` can run it from CI.
//!
//! ```yaml
//! name: support-bot
//! dataset: cases.jsonl            # relative to the suite file
//! target:
//!   command: ["python3", "bot.py"] # input JSON on stdin, output on stdout
//! judge: { model: openai/gpt-4o-mini, cache: .miyabi/judge-cache.db }
//! repeats: 1
//! concurrency: 4
//! metrics:
//!   - { type: exact, trim: true, gate: { pass_rate: 0.8 } }
//!   - { name: helpful, type: rubric, criteria: "Polite and actionable", weight: 2 }
//! baseline: baseline.json         # optional: fail on a significant regression against it
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::judge::{Judge, JudgeMetric};
use super::metrics::{
    Bleu, Contains, CostBudget, EmbeddingSimilarity, Exact, ExpectedCall, JsonDiff, JsonSchema,
    LatencyBudget, Levenshtein, NumericDiff, Regex, RougeL, StepBudget, TokenBudget, ToolCalls,
    ToolScore, Trajectory, ValidJson,
};
use super::target::{CommandTarget, ModelTarget, Target};
use super::{Comparison, Dataset, EvalError, EvalResults, Evaluator, JudgeCache, Metric, Progress};
use crate::LanguageModel;
use crate::model::{EmbeddingModel, ModelBuilder, Protocol};

/// A model named in a suite: `"provider/model"`, optionally with a base URL and protocol (for
/// a custom or local endpoint) and the environment variable holding its key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// `"provider/model"`.
    pub model: String,
    /// A base URL overriding the catalogue's.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The protocol family (`openai-chat`, `anthropic`, ...); with `base_url`, makes a custom
    /// provider.
    #[serde(default)]
    pub protocol: Option<String>,
    /// The environment variable holding the API key (default: the provider's own).
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// (judge only) The judge cache file, relative to the suite file.
    #[serde(default)]
    pub cache: Option<String>,
}

impl ModelSpec {
    fn builder(&self) -> Result<ModelBuilder, String> {
        let mut b = match (&self.protocol, &self.base_url) {
            (Some(p), Some(url)) => {
                let protocol =
                    Protocol::parse(p).ok_or_else(|| format!("unknown protocol {p:?}"))?;
                let (provider, model) = self
                    .model
                    .split_once('/')
                    .ok_or_else(|| format!("model {:?} is not \"provider/model\"", self.model))?;
                ModelBuilder::custom(provider, model, protocol, url)
            }
            (Some(_), None) => return Err("`protocol` needs `base_url`".into()),
            (None, Some(url)) => ModelBuilder::new(&self.model).base_url(url.clone()),
            (None, None) => ModelBuilder::new(&self.model),
        };
        if let Some(var) = &self.api_key_env {
            let key = std::env::var(var)
                .map_err(|_| format!("the environment variable {var} (api_key_env) is not set"))?;
            b = b.api_key(key);
        }
        Ok(b)
    }

    fn language_model(&self) -> Result<crate::model::Model, String> {
        self.builder()?.build().map_err(|e| e.to_string())
    }

    fn embedding_model(&self) -> Result<crate::model::Embedder, String> {
        self.builder()?.build_embedding().map_err(|e| e.to_string())
    }
}

/// The target of a suite: exactly one of `command` or `model`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSpec {
    /// A program and its arguments (no shell): input JSON on stdin, output on stdout. Run in
    /// the suite file's directory.
    #[serde(default)]
    pub command: Option<Vec<String>>,
    /// A model called once per case.
    #[serde(default)]
    pub model: Option<String>,
    /// The model's base URL.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The model's protocol (with `base_url`).
    #[serde(default)]
    pub protocol: Option<String>,
    /// The environment variable holding the model's key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// The model's system message.
    #[serde(default)]
    pub system: Option<String>,
    /// The user message template (`{{input}}`).
    #[serde(default)]
    pub prompt: Option<String>,
    /// The model's temperature.
    #[serde(default)]
    pub temperature: Option<f64>,
    /// A response cache file (relative to the suite file) for the model's answers, keyed by
    /// the request and the epoch: a re-run replays them (and flags the samples cached).
    #[serde(default)]
    pub cache: Option<String>,
}

/// A gate in a suite: a minimum mean and/or pass rate.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSpec {
    /// The metric's mean must be at least this.
    #[serde(default)]
    pub mean: Option<f64>,
    /// The metric's pass rate must be at least this.
    #[serde(default)]
    pub pass_rate: Option<f64>,
}

/// A metric in a suite: its type, name (default: the type), weight, pass threshold, gate and
/// the type's own parameters.
#[derive(Debug, Clone, Deserialize)]
pub struct MetricSpec {
    /// The metric type (`exact`, `contains`, `regex`, `rubric`, ...; see docs/evals.md).
    #[serde(rename = "type")]
    pub kind: String,
    /// The name in the results (default: the type).
    #[serde(default)]
    pub name: Option<String>,
    /// Weight in the overall score.
    #[serde(default)]
    pub weight: Option<f64>,
    /// Pass threshold per sample.
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Gate.
    #[serde(default)]
    pub gate: Option<GateSpec>,
    /// The type's parameters.
    #[serde(flatten)]
    pub params: Map<String, Value>,
}

/// A suite file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuiteFile {
    /// The evaluation's name (default: the file's stem).
    #[serde(default)]
    pub name: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// The dataset file (`.jsonl`, `.csv`, `.yaml`), relative to the suite file.
    pub dataset: String,
    /// What is evaluated.
    pub target: TargetSpec,
    /// The metrics.
    pub metrics: Vec<MetricSpec>,
    /// The judge model of LLM-judge metrics.
    #[serde(default)]
    pub judge: Option<ModelSpec>,
    /// The embedding model of `embedding_similarity`.
    #[serde(default)]
    pub embedding: Option<ModelSpec>,
    /// Repeats per case (epochs).
    #[serde(default)]
    pub repeats: Option<u32>,
    /// Samples run at once.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// The overall (weighted) pass threshold.
    #[serde(default)]
    pub overall_threshold: Option<f64>,
    /// A stored results file (JSON) to compare against; a significant regression fails.
    #[serde(default)]
    pub baseline: Option<String>,
}

/// A loaded suite: the evaluator, the target and the dataset, ready to run.
pub struct Suite {
    /// The file.
    pub path: PathBuf,
    /// The evaluation's name.
    pub name: String,
    /// The dataset.
    pub dataset: Dataset,
    /// The target.
    pub target: Arc<dyn Target>,
    evaluator: Option<Evaluator>,
    /// The baseline results (from `baseline:`).
    pub baseline: Option<EvalResults>,
}

impl std::fmt::Debug for Suite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Suite")
            .field("path", &self.path)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What running a suite gave: the results, the comparison with the baseline (when there is
/// one), and whether the gates (and "no significant regression") passed.
#[derive(Debug, Clone)]
pub struct SuiteOutcome {
    /// The results.
    pub results: EvalResults,
    /// The comparison against the baseline.
    pub comparison: Option<Comparison>,
}

impl SuiteOutcome {
    /// Every gate held and, with a baseline, no metric got significantly worse.
    pub fn passed(&self) -> bool {
        self.results.passed()
            && !self
                .comparison
                .as_ref()
                .is_some_and(Comparison::has_significant_regression)
    }
}

fn suite_err(path: &Path, message: impl Into<String>) -> EvalError {
    EvalError::Suite {
        file: path.display().to_string(),
        message: message.into(),
    }
}

impl Suite {
    /// Reads a suite file (`.yaml`/`.yml` or `.json`), its dataset and baseline, and builds
    /// its target and metrics. Errors name the file and what was wrong (the metric by its
    /// position and name).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, EvalError> {
        let path = path.as_ref().to_path_buf();
        let text = std::fs::read_to_string(&path).map_err(|e| EvalError::Io {
            path: path.clone(),
            source: e,
        })?;
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let file: SuiteFile = match ext.as_str() {
            "json" => serde_json::from_str(&text)
                .map_err(|e| suite_err(&path, format!("line {}: {e}", e.line())))?,
            "yaml" | "yml" => serde_saphyr::from_str(&text).map_err(|e| {
                let line = e.location().map(|l| l.line()).unwrap_or(0);
                let first = e.to_string();
                let first = first.lines().next().unwrap_or("invalid YAML").to_string();
                suite_err(&path, format!("line {line}: {first}"))
            })?,
            _ => {
                return Err(suite_err(
                    &path,
                    "unknown format (expected a .yaml, .yml or .json file)",
                ));
            }
        };
        Self::from_file(path, file)
    }

    /// Builds a suite from a parsed file; relative paths are resolved against `path`'s
    /// directory.
    pub fn from_file(path: PathBuf, file: SuiteFile) -> Result<Self, EvalError> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let rel = |p: &str| {
            let p = PathBuf::from(p);
            if p.is_absolute() { p } else { dir.join(p) }
        };
        let name = file.name.clone().unwrap_or_else(|| {
            path.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("eval")
                .trim_end_matches(".eval")
                .to_string()
        });
        let dataset = Dataset::load(rel(&file.dataset))?;
        let target = build_target(&path, &dir, &file.target)?;
        let judge = match &file.judge {
            Some(spec) => {
                let model = spec
                    .language_model()
                    .map_err(|e| suite_err(&path, format!("judge: {e}")))?;
                let mut judge = Judge::from_model(model);
                if let Some(c) = &spec.cache {
                    let cache_path = rel(c);
                    if let Some(parent) = cache_path.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| EvalError::Io {
                            path: parent.to_path_buf(),
                            source: e,
                        })?;
                    }
                    judge = judge.cache(JudgeCache::open(cache_path)?);
                }
                Some(judge)
            }
            None => None,
        };
        let embedder: Option<Arc<dyn EmbeddingModel>> = match &file.embedding {
            Some(spec) => Some(Arc::new(
                spec.embedding_model()
                    .map_err(|e| suite_err(&path, format!("embedding: {e}")))?,
            )),
            None => None,
        };
        let mut ev = Evaluator::new().name(name.clone());
        if let Some(n) = file.repeats {
            ev = ev.epochs(n);
        }
        if let Some(n) = file.concurrency {
            ev = ev.concurrency(n);
        }
        if let Some(t) = file.overall_threshold {
            ev = ev.overall_pass_threshold(t);
        }
        if file.metrics.is_empty() {
            return Err(suite_err(&path, "metrics: at least one metric is needed"));
        }
        for (i, spec) in file.metrics.iter().enumerate() {
            let mname = spec.name.clone().unwrap_or_else(|| spec.kind.clone());
            let here = |m: String| suite_err(&path, format!("metrics[{i}] ({mname}): {m}"));
            let metric = build_metric(spec, judge.as_ref(), embedder.as_ref()).map_err(here)?;
            ev = ev.add_metric(mname.clone(), ArcMetric(metric));
            if let Some(w) = spec.weight {
                ev = ev.weight(&mname, w);
            }
            if let Some(t) = spec.threshold {
                ev = ev.pass_threshold(&mname, t);
            }
            if let Some(g) = spec.gate {
                if g.mean.is_none() && g.pass_rate.is_none() {
                    return Err(here("gate: give `mean` or `pass_rate`".into()));
                }
                if let Some(m) = g.mean {
                    ev = ev.gate_mean(&mname, m);
                }
                if let Some(m) = g.pass_rate {
                    ev = ev.gate_pass_rate(&mname, m);
                }
            }
        }
        let baseline = match &file.baseline {
            Some(b) => {
                let p = rel(b);
                let text = std::fs::read_to_string(&p).map_err(|e| EvalError::Io {
                    path: p.clone(),
                    source: e,
                })?;
                Some(
                    EvalResults::from_json(&text)
                        .map_err(|e| suite_err(&path, format!("baseline {}: {e}", p.display())))?,
                )
            }
            None => None,
        };
        Ok(Self {
            path,
            name,
            dataset,
            target,
            evaluator: Some(ev),
            baseline,
        })
    }

    /// The evaluator the suite describes, with a progress function.
    pub fn on_progress(mut self, f: impl Fn(&Progress) + Send + Sync + 'static) -> Self {
        self.evaluator = self.evaluator.take().map(|e| e.on_progress(f));
        self
    }

    /// The evaluator the suite describes.
    pub fn evaluator(&self) -> Option<&Evaluator> {
        self.evaluator.as_ref()
    }

    /// Runs the suite: evaluates the target on the dataset and compares with the baseline.
    pub async fn run(&self) -> Result<SuiteOutcome, EvalError> {
        let ev = self
            .evaluator
            .as_ref()
            .ok_or_else(|| EvalError::Config("the suite has no evaluator".into()))?;
        let results = ev.evaluate(self.target.as_ref(), &self.dataset).await?;
        let comparison = match &self.baseline {
            Some(b) => Some(Evaluator::compare(b, &results)?),
            None => None,
        };
        Ok(SuiteOutcome {
            results,
            comparison,
        })
    }
}

impl Suite {
    /// Runs the suite as a durable eval run on `engine` ([`DurableEval`](super::DurableEval)):
    /// an unfinished run of this suite left by a dead process is finished (without re-running
    /// its committed samples) instead of starting a new one.
    pub async fn run_durable(mut self, engine: &crate::Engine) -> Result<SuiteOutcome, EvalError> {
        let ev = self
            .evaluator
            .take()
            .ok_or_else(|| EvalError::Config("the suite has no evaluator".into()))?;
        let durable = super::DurableEval::new(engine, ev, Arc::clone(&self.target))?;
        let recovered = durable.recover().await?;
        let results = match recovered.first() {
            Some(id) => durable.wait(id).await?,
            None => {
                let id = durable.spawn(&self.dataset)?;
                durable.wait(&id).await?
            }
        };
        let comparison = match &self.baseline {
            Some(b) => Some(Evaluator::compare(b, &results)?),
            None => None,
        };
        Ok(SuiteOutcome {
            results,
            comparison,
        })
    }
}

struct ArcMetric(Arc<dyn Metric>);

#[async_trait::async_trait]
impl Metric for ArcMetric {
    async fn score(&self, sample: &super::Sample<'_>) -> super::Outcome {
        self.0.score(sample).await
    }
}

fn build_target(path: &Path, dir: &Path, t: &TargetSpec) -> Result<Arc<dyn Target>, EvalError> {
    match (&t.command, &t.model) {
        (Some(argv), None) => {
            if t.system.is_some() || t.prompt.is_some() || t.base_url.is_some() || t.cache.is_some()
            {
                return Err(suite_err(
                    path,
                    "target: `system`, `prompt`, `base_url` and `cache` go with `model`, not `command`",
                ));
            }
            Ok(Arc::new(
                CommandTarget::new(argv.clone())
                    .map_err(|e| suite_err(path, format!("target: {e}")))?
                    .current_dir(dir),
            ))
        }
        (None, Some(model)) => {
            let spec = ModelSpec {
                model: model.clone(),
                base_url: t.base_url.clone(),
                protocol: t.protocol.clone(),
                api_key_env: t.api_key_env.clone(),
                cache: None,
            };
            let mut m: Arc<dyn LanguageModel> = Arc::new(
                spec.language_model()
                    .map_err(|e| suite_err(path, format!("target: {e}")))?,
            );
            if let Some(c) = &t.cache {
                let p = PathBuf::from(c);
                let p = if p.is_absolute() { p } else { dir.join(p) };
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| EvalError::Io {
                        path: parent.to_path_buf(),
                        source: e,
                    })?;
                }
                m = Arc::new(super::CachedModel::new(
                    m,
                    model.clone(),
                    super::ResponseCache::open(p)?,
                ));
            }
            let mut target = ModelTarget::new(m);
            if let Some(s) = &t.system {
                target = target.system(s.clone());
            }
            if let Some(p) = &t.prompt {
                target = target.prompt(p.clone());
            }
            if let Some(temp) = t.temperature {
                target = target.sampling(crate::model::Sampling {
                    temperature: Some(temp),
                    ..Default::default()
                });
            }
            Ok(Arc::new(target))
        }
        _ => Err(suite_err(
            path,
            "target: give exactly one of `command` (a program) or `model` (\"provider/model\")",
        )),
    }
}

/// Reads a metric's parameters, refusing unknown ones.
struct Params<'a> {
    map: &'a Map<String, Value>,
    used: Vec<&'static str>,
}

impl<'a> Params<'a> {
    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.push(key);
        self.map.get(key)
    }

    fn flag(&mut self, key: &'static str) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(format!("`{key}` must be true or false, not {other}")),
        }
    }

    fn str(&mut self, key: &'static str) -> Result<Option<String>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(format!("`{key}` must be a string, not {other}")),
        }
    }

    fn need_str(&mut self, key: &'static str) -> Result<String, String> {
        self.str(key)?.ok_or_else(|| format!("`{key}` is required"))
    }

    fn num(&mut self, key: &'static str) -> Result<Option<f64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .map(Some)
                .ok_or_else(|| format!("`{key}` is not a number")),
            Some(other) => Err(format!("`{key}` must be a number, not {other}")),
        }
    }

    fn strings(&mut self, key: &'static str) -> Result<Option<Vec<String>>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| format!("`{key}` must be a list of strings"))
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(format!("`{key}` must be a list of strings, not {other}")),
        }
    }

    fn done(self) -> Result<(), String> {
        let unknown: Vec<&String> = self
            .map
            .keys()
            .filter(|k| !self.used.contains(&k.as_str()))
            .collect();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "unknown parameter{} {}",
                if unknown.len() == 1 { "" } else { "s" },
                unknown
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }
}

/// The metric types a suite knows.
pub const METRIC_TYPES: &[&str] = &[
    "exact",
    "contains",
    "regex",
    "valid_json",
    "json_schema",
    "json_diff",
    "numeric",
    "levenshtein",
    "bleu",
    "rouge_l",
    "embedding_similarity",
    "tool_calls",
    "trajectory",
    "steps",
    "tokens",
    "cost",
    "latency",
    "rubric",
    "factuality",
    "answer_relevancy",
    "faithfulness",
    "hallucination",
    "toxicity",
    "goal_success",
];

fn build_metric(
    spec: &MetricSpec,
    judge: Option<&Judge>,
    embedder: Option<&Arc<dyn EmbeddingModel>>,
) -> Result<Arc<dyn Metric>, String> {
    let mut p = Params {
        map: &spec.params,
        used: Vec::new(),
    };
    let need_judge = || {
        judge.ok_or_else(|| {
            format!(
                "a `{}` metric needs a `judge:` model in the suite",
                spec.kind
            )
        })
    };
    let cfg = |e: EvalError| e.to_string();
    let m: Arc<dyn Metric> = match spec.kind.as_str() {
        "exact" => {
            let mut m = Exact::new();
            if p.flag("trim")? {
                m = m.trim();
            }
            if p.flag("ignore_case")? {
                m = m.ignore_case();
            }
            Arc::new(m)
        }
        "contains" => {
            let any = p.strings("any")?;
            let all = p.strings("all")?;
            let mut m = match (any, all) {
                (Some(a), None) => Contains::any(a),
                (None, Some(a)) => Contains::all(a),
                (None, None) => Contains::expected(),
                (Some(_), Some(_)) => return Err("give `any` or `all`, not both".into()),
            };
            if p.flag("case_sensitive")? {
                m = m.case_sensitive();
            }
            Arc::new(m)
        }
        "regex" => Arc::new(Regex::new(&p.need_str("pattern")?).map_err(cfg)?),
        "valid_json" => Arc::new(ValidJson::new()),
        "json_schema" => {
            let schema = p.get("schema").ok_or("`schema` is required")?;
            Arc::new(JsonSchema::new(schema).map_err(cfg)?)
        }
        "json_diff" => Arc::new(JsonDiff::new()),
        "numeric" => match p.num("tolerance")? {
            Some(t) => Arc::new(NumericDiff::within(t).map_err(cfg)?),
            None => Arc::new(NumericDiff::relative()),
        },
        "levenshtein" => Arc::new(Levenshtein::new()),
        "bleu" => {
            let mut m = Bleu::new();
            if let Some(n) = p.num("max_n")? {
                m = m.max_n(n as usize).map_err(cfg)?;
            }
            if p.flag("smoothed")? {
                m = m.smoothed();
            }
            Arc::new(m)
        }
        "rouge_l" => {
            let mut m = RougeL::new();
            if let Some(b) = p.num("beta")? {
                m = m.beta(b).map_err(cfg)?;
            }
            Arc::new(m)
        }
        "embedding_similarity" => {
            Arc::new(EmbeddingSimilarity::from_arc(embedder.cloned().ok_or(
                "an `embedding_similarity` metric needs an `embedding:` model in the suite",
            )?))
        }
        "tool_calls" => {
            let mut m = match p.get("expected") {
                None => ToolCalls::from_case(),
                Some(Value::Array(items)) => {
                    let mut calls = Vec::new();
                    for item in items {
                        calls.push(match item {
                            Value::String(s) => ExpectedCall::named(s.clone()),
                            Value::Object(o) => {
                                let name = o
                                    .get("name")
                                    .and_then(Value::as_str)
                                    .ok_or("each `expected` call needs a `name`")?;
                                match o.get("arguments") {
                                    Some(a) => ExpectedCall::with_arguments(name, a.clone()),
                                    None => ExpectedCall::named(name),
                                }
                            }
                            _ => return Err("`expected` items are names or {name, arguments}".into()),
                        });
                    }
                    ToolCalls::expect(calls)
                }
                Some(_) => return Err("`expected` must be a list".into()),
            };
            if p.flag("ignore_arguments")? {
                m = m.ignore_arguments();
            }
            if let Some(s) = p.str("score")? {
                m = m.measure(match s.as_str() {
                    "f1" => ToolScore::F1,
                    "precision" => ToolScore::Precision,
                    "recall" => ToolScore::Recall,
                    "exact" => ToolScore::Exact,
                    other => {
                        return Err(format!(
                            "`score` {other:?}: one of f1, precision, recall, exact"
                        ));
                    }
                });
            }
            Arc::new(m)
        }
        "trajectory" => {
            let mut m = match p.strings("expected")? {
                Some(names) => Trajectory::expect(names),
                None => Trajectory::from_case(),
            };
            if p.flag("exact")? {
                m = m.exact();
            }
            Arc::new(m)
        }
        "steps" => Arc::new(StepBudget::at_most(
            p.num("max")?.ok_or("`max` is required")? as usize,
        )),
        "tokens" => Arc::new(TokenBudget::at_most(
            p.num("max")?.ok_or("`max` is required")? as u64,
        )),
        "cost" => Arc::new(
            CostBudget::at_most(p.num("max_usd")?.ok_or("`max_usd` is required")?).map_err(cfg)?,
        ),
        "latency" => {
            let ms = p.num("max_ms")?.ok_or("`max_ms` is required")?;
            if !(ms.is_finite() && ms >= 0.0) {
                return Err("`max_ms` must be a finite number ≥ 0".into());
            }
            let max = Duration::try_from_secs_f64(ms / 1000.0)
                .map_err(|_| format!("`max_ms` {ms} is too large for a duration"))?;
            Arc::new(LatencyBudget::at_most(max))
        }
        "rubric" | "factuality" | "answer_relevancy" | "faithfulness" | "hallucination"
        | "toxicity" | "goal_success" => {
            let judge = need_judge()?;
            let mut m = match spec.kind.as_str() {
                "rubric" => JudgeMetric::rubric(judge, p.need_str("criteria")?),
                "factuality" => JudgeMetric::factuality(judge),
                "answer_relevancy" => JudgeMetric::answer_relevancy(judge),
                "faithfulness" => JudgeMetric::faithfulness(judge),
                "hallucination" => JudgeMetric::hallucination(judge),
                "goal_success" => JudgeMetric::goal_success(judge),
                _ => JudgeMetric::toxicity(judge),
            };
            if let Some(scale) = p.get("scale") {
                let pair = scale
                    .as_array()
                    .filter(|a| a.len() == 2)
                    .and_then(|a| Some((a[0].as_f64()?, a[1].as_f64()?)))
                    .ok_or("`scale` must be [min, max]")?;
                m = m.scale(pair.0, pair.1).map_err(cfg)?;
            }
            if let Some(t) = p.str("prompt")? {
                m = m.prompt(t).map_err(cfg)?;
            }
            Arc::new(m)
        }
        other => {
            return Err(format!(
                "unknown metric type {other:?} (known: {})",
                METRIC_TYPES.join(", ")
            ));
        }
    };
    p.done()?;
    Ok(m)
}
