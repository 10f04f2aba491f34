//! JSON Schemas for step inputs, outputs and resume data.

use std::sync::Arc;

use serde_json::Value;

use crate::error::SchemaViolation;

/// A compiled JSON Schema.
///
/// ```
/// use miyabi_engine::Schema;
/// use serde_json::json;
/// let s = Schema::new(json!({"type": "object", "required": ["n"]}))?;
/// assert!(s.check(&json!({"n": 1})).is_ok());
/// let Err((pointer, _reason)) = s.check(&json!({})) else { panic!("must fail") };
/// assert_eq!(pointer, "");
/// # Ok::<(), String>(())
/// ```
#[derive(Clone)]
pub struct Schema {
    json: Arc<Value>,
    validator: Arc<jsonschema::Validator>,
}

impl std::fmt::Debug for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Schema({})", self.json)
    }
}

impl Schema {
    /// Compiles a JSON Schema; the error is the compiler's message.
    pub fn new(json: Value) -> Result<Self, String> {
        let validator = jsonschema::validator_for(&json).map_err(|e| e.to_string())?;
        Ok(Self {
            json: Arc::new(json),
            validator: Arc::new(validator),
        })
    }

    /// The schema document.
    pub fn json(&self) -> &Value {
        &self.json
    }

    /// Checks a value; on failure returns the JSON pointer of the offending value and the reason.
    pub fn check(&self, value: &Value) -> Result<(), (String, String)> {
        self.validator
            .validate(value)
            .map_err(|e| (e.instance_path().to_string(), e.to_string()))
    }

    pub(crate) fn validate(
        &self,
        value: &Value,
        place: &str,
        direction: &str,
    ) -> Result<(), SchemaViolation> {
        self.check(value)
            .map_err(|(pointer, reason)| SchemaViolation {
                place: place.to_string(),
                direction: direction.to_string(),
                pointer,
                reason,
            })
    }
}
