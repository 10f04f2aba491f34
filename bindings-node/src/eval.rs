//! Evaluation pieces for JS: embedding models, LLM judges (the Rust judges' prompts, parsing
//! and cache), the pairwise A/B judge, and the paired comparison of two results documents.

use std::sync::Arc;

use miyabi::EmbeddingModel;
use miyabi::eval::{
    Case, EvalResults, Evaluator, Judge, JudgeCache, JudgeMetric, Metric, Outcome, PairwiseJudge,
    Sample, Trace,
};
use miyabi::model::{EmbeddingInput, EmbeddingRequest};
use napi_derive::napi;
use serde_json::{Value, json};

use crate::model::{NativeModel, NativeModelOptions, build_embedding};
use crate::stream::{Item, NativeError, NativeStream};

fn words(e: impl std::fmt::Display) -> String {
    crate::js_words(e.to_string())
}

fn err(code: &str, message: impl Into<String>) -> Box<NativeError> {
    Box::new(NativeError::new(code, message.into()))
}

/// An embedding model (or the reason it cannot be used, reported by every call).
#[napi]
pub struct NativeEmbeddingModel {
    model: Result<Arc<dyn EmbeddingModel>, String>,
    id: String,
}

impl NativeEmbeddingModel {
    fn get(&self) -> Result<Arc<dyn EmbeddingModel>, Box<NativeError>> {
        self.model
            .clone()
            .map_err(|m| err("CONFIG", format!("embedding model `{}`: {m}", self.id)))
    }
}

/// Options of one embedding call.
#[napi(object)]
#[derive(Default)]
pub struct NativeEmbedOptions {
    /// Output dimensions, where the model supports choosing them.
    pub dimensions: Option<u32>,
    /// `document` (default) or `query`.
    pub input_type: Option<String>,
}

#[napi]
impl NativeEmbeddingModel {
    /// Resolves `"provider/model"` as an embedding model.
    #[napi(factory)]
    pub fn create(spec: String, options: Option<NativeModelOptions>) -> Self {
        let model = build_embedding(&spec, options.unwrap_or_default());
        Self { model, id: spec }
    }

    /// `"provider/model"` as given.
    #[napi(getter)]
    pub fn id(&self) -> String {
        self.id.clone()
    }

    /// Embeds texts: one `embeddings` part (`{vectors, usage, costUsd}`).
    #[napi]
    pub fn embed(&self, texts: Vec<String>, options: Option<NativeEmbedOptions>) -> NativeStream {
        let model = self.get();
        let o = options.unwrap_or_default();
        NativeStream::spawn(|tx| async move {
            let r = async {
                let model = model?;
                let mut req = EmbeddingRequest::new(texts);
                req.dimensions = o.dimensions;
                req.input = match o.input_type.as_deref() {
                    None | Some("document") => EmbeddingInput::Document,
                    Some("query") => EmbeddingInput::Query,
                    Some(other) => {
                        return Err(err(
                            "INVALID_ARGUMENT",
                            format!("`inputType` must be \"document\" or \"query\", got {other:?}"),
                        ));
                    }
                };
                model
                    .embed_request(&req)
                    .await
                    .map_err(|e| Box::new(NativeError::from_model(&e)))
            }
            .await;
            let _ = tx
                .send(match r {
                    Ok(e) => Item::Part(json!({
                        "type": "embeddings",
                        "vectors": e.vectors,
                        "usage": e.usage.map(|u| json!({ "tokens": u.input_tokens })),
                        "costUsd": e.cost_usd,
                    })),
                    Err(e) => Item::Fail(*e),
                })
                .await;
        })
    }
}

/// Settings of a judge.
#[napi(object)]
#[derive(Default)]
pub struct NativeJudgeOptions {
    /// For `rubric`: what is judged.
    pub criteria: Option<String>,
    /// For `rubric`: the scale (default 1–5).
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// A prompt template of one's own (`{{input}}`, `{{output}}`, `{{expected}}`, `{{context}}`, `{{criteria}}`).
    pub prompt: Option<String>,
    /// A SQLite file caching the judge's answers (a cached question is not asked again).
    pub cache: Option<String>,
    /// Sampling temperature (default 0).
    pub temperature: Option<f64>,
    /// Ask the provider for structured output (default true).
    pub structured_output: Option<bool>,
}

fn judge_of(model: &NativeModel, o: &NativeJudgeOptions) -> Result<Judge, Box<NativeError>> {
    let m = model.get()?;
    let mut j = Judge::new(m, model.id());
    if let Some(path) = &o.cache {
        j = j.cache(JudgeCache::open(path).map_err(|e| err("CONFIG", words(e)))?);
    }
    if o.temperature.is_some() {
        j = j.temperature(o.temperature);
    }
    if let Some(s) = o.structured_output {
        j = j.structured_output(s);
    }
    Ok(j)
}

/// A sample as JS sends it: `{case: {id, input, expected?, context?, metadata?}, output, epoch?, trace?}`.
fn sample_parts(v: Value) -> Result<(Case, Value, u32, Option<Trace>), Box<NativeError>> {
    let bad = |what: &str, e: String| {
        err(
            "INVALID_ARGUMENT",
            format!("{what}: {}", crate::words::serde_words(e)),
        )
    };
    let case: Case = serde_json::from_value(v.get("case").cloned().unwrap_or(Value::Null))
        .map_err(|e| bad("the sample's case", e.to_string()))?;
    let output = v.get("output").cloned().unwrap_or(Value::Null);
    let epoch = v.get("epoch").and_then(Value::as_u64).unwrap_or(0) as u32;
    let trace = match v.get("trace") {
        None | Some(Value::Null) => None,
        Some(t) => Some(
            serde_json::from_value(t.clone())
                .map_err(|e| bad("the sample's trace", e.to_string()))?,
        ),
    };
    Ok((case, output, epoch, trace))
}

fn outcome_part(o: Outcome) -> Value {
    match o {
        Outcome::Scored(s) => {
            json!({ "type": "judge-score", "score": s.value(), "reason": s.reason, "metadata": s.metadata })
        }
        Outcome::Unscored { reason, .. } => json!({ "type": "judge-score", "unscored": reason }),
    }
}

/// A metric of `miyabi::eval` that needs a model: an LLM judge or embedding similarity.
#[napi]
pub struct NativeMetric {
    metric: Result<Arc<dyn Metric>, Box<NativeError>>,
}

#[napi]
impl NativeMetric {
    /// The cosine similarity of the output's and the expected answer's embeddings, in [0, 1].
    #[napi(factory)]
    pub fn embedding_similarity(model: &NativeEmbeddingModel) -> Self {
        Self {
            metric: model.get().map(|m| {
                Arc::new(miyabi::eval::metrics::EmbeddingSimilarity::from_arc(m)) as Arc<dyn Metric>
            }),
        }
    }

    /// An LLM judge. `kind`: `rubric`, `factuality`, `answer-relevancy`, `faithfulness`,
    /// `hallucination`, `toxicity` or `goal-success`.
    #[napi(factory)]
    pub fn judge(kind: String, model: &NativeModel, options: Option<NativeJudgeOptions>) -> Self {
        let o = options.unwrap_or_default();
        let metric = (|| {
            let j = judge_of(model, &o)?;
            let mut m = match kind.as_str() {
                "rubric" => {
                    let criteria = o.criteria.clone().ok_or_else(|| {
                        err(
                            "INVALID_ARGUMENT",
                            "a rubric judge needs `criteria`: what a good output does",
                        )
                    })?;
                    JudgeMetric::rubric(&j, criteria)
                }
                "factuality" => JudgeMetric::factuality(&j),
                "answer-relevancy" => JudgeMetric::answer_relevancy(&j),
                "faithfulness" => JudgeMetric::faithfulness(&j),
                "hallucination" => JudgeMetric::hallucination(&j),
                "toxicity" => JudgeMetric::toxicity(&j),
                "goal-success" => JudgeMetric::goal_success(&j),
                other => {
                    return Err(err(
                        "INVALID_ARGUMENT",
                        format!(
                            "unknown judge `{other}` (rubric, factuality, answer-relevancy, faithfulness, hallucination, toxicity, goal-success)"
                        ),
                    ));
                }
            };
            if o.min.is_some() || o.max.is_some() {
                m = m
                    .scale(o.min.unwrap_or(1.0), o.max.unwrap_or(5.0))
                    .map_err(|e| err("INVALID_ARGUMENT", words(e)))?;
            }
            if let Some(p) = &o.prompt {
                m = m
                    .prompt(p.clone())
                    .map_err(|e| err("INVALID_ARGUMENT", words(e)))?;
            }
            Ok(Arc::new(m) as Arc<dyn Metric>)
        })();
        Self { metric }
    }

    /// Scores one sample: one `judge-score` part (`{score, reason}` or `{unscored}`).
    #[napi(ts_args_type = "sample: unknown")]
    pub fn score(&self, sample: Value) -> NativeStream {
        let metric = self.metric.clone();
        NativeStream::spawn(|tx| async move {
            let r = async {
                let metric = metric?;
                let (case, output, epoch, trace) = sample_parts(sample)?;
                let mut s = Sample::new(&case, &output).with_epoch(epoch);
                if let Some(t) = &trace {
                    s = s.with_trace(t);
                }
                Ok::<_, Box<NativeError>>(metric.score(&s).await)
            }
            .await;
            let _ = tx
                .send(match r {
                    Ok(o) => Item::Part(outcome_part(o)),
                    Err(e) => Item::Fail(*e),
                })
                .await;
        })
    }
}

/// The A/B judge: which of two outputs for a case is better (asked in both orders).
#[napi]
pub struct NativePairwiseJudge {
    judge: Result<PairwiseJudge, Box<NativeError>>,
}

#[napi]
impl NativePairwiseJudge {
    /// A pairwise judge on `model`, with what "better" means.
    #[napi(factory)]
    pub fn create(model: &NativeModel, options: Option<NativeJudgeOptions>) -> Self {
        let o = options.unwrap_or_default();
        let judge = judge_of(model, &o).map(|j| {
            let p = PairwiseJudge::new(&j);
            match &o.criteria {
                Some(c) => p.criteria(c.clone()),
                None => p,
            }
        });
        Self { judge }
    }

    /// Compares outputs `a` and `b` of `testCase`: one `pairwise` part (`{preferred, reason, cached}`).
    #[napi(ts_args_type = "testCase: unknown, a: unknown, b: unknown, epoch?: number")]
    pub fn compare(
        &self,
        test_case: Value,
        a: Value,
        b: Value,
        epoch: Option<u32>,
    ) -> NativeStream {
        let judge = self.judge.clone();
        NativeStream::spawn(|tx| async move {
            let r = async {
                let judge = judge?;
                let case: Case = serde_json::from_value(test_case).map_err(|e| {
                    err(
                        "INVALID_ARGUMENT",
                        format!("the case: {}", crate::words::serde_words(e.to_string())),
                    )
                })?;
                judge
                    .compare(&case, &a, &b, epoch.unwrap_or(0))
                    .await
                    .map_err(|e| err("PROVIDER", words(e)))
            }
            .await;
            let _ = tx
                .send(match r {
                    Ok(v) => Item::Part(json!({ "type": "pairwise", "preferred": v.preferred, "reason": v.reason, "cached": v.cached })),
                    Err(e) => Item::Fail(*e),
                })
                .await;
        })
    }
}

/// JS numbers arrive as floats: whole ones become integers again, so integer fields
/// (`started_at_ms`, counts) read back.
fn integral(v: Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 9.0e15 => Value::from(f as i64),
            _ => Value::Number(n),
        },
        Value::Array(a) => Value::Array(a.into_iter().map(integral).collect()),
        Value::Object(o) => Value::Object(o.into_iter().map(|(k, v)| (k, integral(v))).collect()),
        other => other,
    }
}

/// Paired A/B comparison of two `miyabi.eval/v1` results documents (B against A): the same as
/// `miyabi eval compare`.
#[napi(ts_args_type = "a: unknown, b: unknown", ts_return_type = "unknown")]
pub fn compare_eval_results(a: Value, b: Value) -> napi::Result<Value> {
    let read = |v: Value, which: &str| {
        serde_json::from_value::<EvalResults>(integral(v)).map_err(|e| {
            napi::Error::from_reason(format!(
                "INVALID_ARGUMENT: results {which} is not a miyabi.eval/v1 document: {}",
                crate::words::serde_words(e.to_string())
            ))
        })
    };
    let (a, b) = (read(a, "A")?, read(b, "B")?);
    let c = Evaluator::compare(&a, &b)
        .map_err(|e| napi::Error::from_reason(format!("INVALID_ARGUMENT: {}", words(e))))?;
    serde_json::to_value(c).map_err(|e| napi::Error::from_reason(format!("ENGINE: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn whole_floats_from_js_read_back_as_integers() {
        let v = integral(json!({"a": 1796296120690.0, "b": [2.0, 2.5], "c": "x"}));
        assert_eq!(v, json!({"a": 1796296120690i64, "b": [2, 2.5], "c": "x"}));
        assert!(v["a"].is_i64());
    }

    #[test]
    fn comparing_something_that_is_not_results_names_the_side() {
        let e = compare_eval_results(json!({"schema": "nope"}), json!({})).unwrap_err();
        assert!(
            e.reason
                .contains("results A is not a miyabi.eval/v1 document"),
            "{}",
            e.reason
        );
    }
}
