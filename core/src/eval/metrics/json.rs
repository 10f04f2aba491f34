//! JSON metrics: valid JSON, JSON Schema, JSON diff.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use crate::eval::EvalError;
use crate::eval::metric::{Metric, Outcome, Sample, Score};

/// The output as JSON: a string output is parsed (so a model's JSON text is checked), any
/// other value is JSON already.
fn output_json(sample: &Sample<'_>) -> Result<Value, String> {
    match sample.output {
        Value::String(s) => serde_json::from_str(strip_fence(s)).map_err(|e| e.to_string()),
        other => Ok(other.clone()),
    }
}

/// Strips one surrounding Markdown code fence (```` ```json ... ``` ````), as models often add.
fn strip_fence(s: &str) -> &str {
    let t = s.trim();
    if let Some(rest) = t.strip_prefix("```")
        && let Some(body) = rest.strip_suffix("```")
    {
        return match body.find('\n') {
            Some(i) => &body[i + 1..],
            None => body,
        };
    }
    t
}

/// 1 when the output is valid JSON (a string output is parsed; a Markdown code fence around
/// it is allowed), else 0 with the parse error.
#[derive(Debug, Clone, Default)]
pub struct ValidJson;

impl ValidJson {
    /// The metric.
    pub fn new() -> Self {
        Self
    }
}

#[async_trait]
impl Metric for ValidJson {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        match output_json(sample) {
            Ok(_) => Score::pass_fail(true).with_reason("valid JSON").into(),
            Err(e) => Score::pass_fail(false)
                .with_reason(format!("invalid JSON: {e}"))
                .into(),
        }
    }
}

/// 1 when the output (parsed as by [`ValidJson`]) is valid against a JSON Schema, else 0
/// with the violations (instance path and message, up to 10).
#[derive(Clone)]
pub struct JsonSchema {
    validator: Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSchema").finish_non_exhaustive()
    }
}

impl JsonSchema {
    /// Compiles the schema; fails with [`EvalError::Config`] on an invalid one.
    pub fn new(schema: &Value) -> Result<Self, EvalError> {
        jsonschema::validator_for(schema)
            .map(|v| Self {
                validator: Arc::new(v),
            })
            .map_err(|e| EvalError::Config(format!("JSON Schema: {e}")))
    }
}

#[async_trait]
impl Metric for JsonSchema {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        let value = match output_json(sample) {
            Ok(v) => v,
            Err(e) => {
                return Score::pass_fail(false)
                    .with_reason(format!("invalid JSON: {e}"))
                    .into();
            }
        };
        let errors: Vec<String> = self
            .validator
            .iter_errors(&value)
            .take(10)
            .map(|e| format!("{}: {}", e.instance_path(), e))
            .collect();
        if errors.is_empty() {
            Score::pass_fail(true)
                .with_reason("valid against the schema")
                .into()
        } else {
            Score::pass_fail(false)
                .with_reason(errors.join("; "))
                .with_meta("violations", errors)
                .into()
        }
    }
}

/// Flattens a JSON value into its leaves by JSON Pointer. Empty objects and arrays are
/// leaves themselves.
fn leaves(v: &Value, path: &mut String, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let len = path.len();
                path.push('/');
                path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                leaves(child, path, out);
                path.truncate(len);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, child) in a.iter().enumerate() {
                let len = path.len();
                path.push('/');
                path.push_str(&i.to_string());
                leaves(child, path, out);
                path.truncate(len);
            }
        }
        leaf => {
            out.insert(path.clone(), leaf.clone());
        }
    }
}

/// Structural similarity of the output (parsed as by [`ValidJson`]) with the expected JSON:
/// both are flattened into leaves by JSON Pointer, and the score is the number of leaves
/// equal on both sides over the number of distinct leaf paths. Metadata lists the `missing`,
/// `extra` and `changed` paths. An expected string holding JSON is parsed. Unscored without
/// `expected`; 0 when the output is not JSON.
#[derive(Debug, Clone, Default)]
pub struct JsonDiff;

impl JsonDiff {
    /// The metric.
    pub fn new() -> Self {
        Self
    }
}

#[async_trait]
impl Metric for JsonDiff {
    async fn score(&self, sample: &Sample<'_>) -> Outcome {
        let expected = match sample.case.expected.as_ref() {
            None => return Outcome::unscored("the case has no expected value"),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(strip_fence(s)) {
                Ok(v) => v,
                Err(_) => Value::String(s.clone()),
            },
            Some(v) => v.clone(),
        };
        let output = match output_json(sample) {
            Ok(v) => v,
            Err(e) => {
                return Score::pass_fail(false)
                    .with_reason(format!("output is not JSON: {e}"))
                    .into();
            }
        };
        let (mut e, mut o) = (BTreeMap::new(), BTreeMap::new());
        leaves(&expected, &mut String::new(), &mut e);
        leaves(&output, &mut String::new(), &mut o);
        let mut missing = Vec::new();
        let mut changed = Vec::new();
        let mut equal = 0usize;
        for (path, ev) in &e {
            match o.get(path) {
                None => missing.push(path.clone()),
                Some(ov) if ov == ev => equal += 1,
                Some(_) => changed.push(path.clone()),
            }
        }
        let extra: Vec<String> = o.keys().filter(|p| !e.contains_key(*p)).cloned().collect();
        let total = e.len() + extra.len();
        let value = if total == 0 {
            1.0
        } else {
            equal as f64 / total as f64
        };
        let reason = format!(
            "{equal}/{total} leaves equal ({} missing, {} extra, {} changed)",
            missing.len(),
            extra.len(),
            changed.len()
        );
        match Score::new(value) {
            Ok(s) => s
                .with_reason(reason)
                .with_meta("missing", missing)
                .with_meta("extra", extra)
                .with_meta("changed", changed)
                .into(),
            Err(err) => Outcome::unscored(err.to_string()),
        }
    }
}
