//! A human's input in the middle of a tool call: the question a tool asks
//! ([`InputRequest`]), the answer ([`InputAnswer`]) and the two together ([`ToolInput`]).
//!
//! A tool asks by returning [`super::ToolError::InputRequired`]; the agent loop then waits for a
//! human (inside a workflow the run suspends with `{"kind": "tool-input", ..}`), and once the
//! answer is given it calls the tool again with the same arguments, the answers so far in
//! [`super::ToolContext::inputs`]. This is how an MCP server's elicitation becomes a durable
//! suspension (`miyabi-mcp`, `McpClientBuilder::elicitation_suspends`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::workflow::Schema;

/// A question a tool asks a human during a call: a message and the JSON Schema of the answer's
/// content (form mode), or a URL the human should open (URL mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRequest {
    /// What the tool asks.
    pub message: String,
    /// The JSON Schema the content of an `accept` answer must follow (form mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<Value>,
    /// The URL the human should open (URL mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Where the question comes from, shown with it (an MCP tool gives `{"server": "<name>"}`).
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

impl InputRequest {
    /// A form question: `message`, and the JSON Schema of the answer's content.
    pub fn form(message: impl Into<String>, schema: Value) -> Self {
        Self {
            message: message.into(),
            schema: Some(schema),
            url: None,
            details: Map::new(),
        }
    }

    /// A URL question: `message`, and the URL the human should open.
    pub fn url(message: impl Into<String>, url: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            schema: None,
            url: Some(url.into()),
            details: Map::new(),
        }
    }

    /// Adds a detail shown with the question (`("server", "everything")`).
    pub fn detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// Whether `other` asks the same thing (message, schema and URL; details aside).
    pub fn same_question(&self, other: &Self) -> bool {
        self.message == other.message && self.schema == other.schema && self.url == other.url
    }

    /// The compiled content schema, when there is one and it compiles.
    fn content_schema(&self) -> Option<Schema> {
        self.schema.clone().and_then(|s| Schema::new(s).ok())
    }

    /// The JSON Schema of an answer to this question: `{"action": "accept" | "decline" |
    /// "cancel", "content"?}`, where an `accept` of a form question needs `content` following
    /// the question's schema. A question schema that does not compile is left out (the content
    /// is then not checked).
    pub fn answer_schema(&self) -> Value {
        let content = match self.content_schema() {
            Some(s) => s.json().clone(),
            None => json!({}),
        };
        let mut schema = json!({
            "type": "object",
            "required": ["action"],
            "additionalProperties": false,
            "properties": {
                "action": {"enum": ["accept", "decline", "cancel"]},
                "content": content,
            },
        });
        if self.schema.is_some()
            && let Some(o) = schema.as_object_mut()
        {
            o.insert(
                "if".into(),
                json!({"properties": {"action": {"const": "accept"}}}),
            );
            o.insert("then".into(), json!({"required": ["content"]}));
        }
        schema
    }

    /// Checks an answer against this question: the content of an `accept` of a form question
    /// must be there and follow the schema. The error names the offending field.
    pub fn check(&self, answer: &InputAnswer) -> Result<(), String> {
        let InputAnswer::Accept { content } = answer else {
            return Ok(());
        };
        if self.schema.is_none() {
            return Ok(());
        }
        if content.is_null() {
            return Err("an `accept` answer to a form question needs `content`".into());
        }
        match self.content_schema() {
            Some(s) => s.check(content).map_err(|(pointer, reason)| {
                if pointer.is_empty() {
                    format!("`content`: {reason}")
                } else {
                    format!("`content{pointer}`: {reason}")
                }
            }),
            None => Ok(()),
        }
    }
}

/// A human's answer to an [`InputRequest`]: `{"action": "accept", "content": {..}}`,
/// `{"action": "decline"}` or `{"action": "cancel"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum InputAnswer {
    /// The human answered; for a form question the content follows its schema.
    Accept {
        /// The answer (null for a URL question).
        #[serde(default, skip_serializing_if = "Value::is_null")]
        content: Value,
    },
    /// The human said no.
    Decline,
    /// The human dismissed the question.
    Cancel,
}

/// A question a tool asked during a call, with the answer it got.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInput {
    /// The question.
    pub request: InputRequest,
    /// The answer.
    pub answer: InputAnswer,
}

/// A tool call waiting for a human's input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingInput {
    /// The call id (the key of its answer in the resume data).
    pub call_id: String,
    /// The tool's name.
    pub tool: String,
    /// The arguments the call ran with (it runs again with them once answered).
    pub arguments: Value,
    /// The question.
    #[serde(flatten)]
    pub request: InputRequest,
}

/// The JSON Schema of resume data answering `pending`: an object with an answer per waiting
/// call id (and no other key).
pub(crate) fn answers_schema(pending: &[PendingInput]) -> Value {
    let properties: Map<String, Value> = pending
        .iter()
        .map(|p| (p.call_id.clone(), p.request.answer_schema()))
        .collect();
    json!({
        "type": "object",
        "minProperties": 1,
        "additionalProperties": false,
        "properties": properties,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn form() -> InputRequest {
        InputRequest::form(
            "Who are you?",
            json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
        )
        .detail("server", "s")
    }

    #[test]
    fn answers_serialize_with_their_action() {
        let a: InputAnswer =
            serde_json::from_value(json!({"action": "accept", "content": {"name": "Ada"}}))
                .unwrap();
        assert_eq!(
            a,
            InputAnswer::Accept {
                content: json!({"name": "Ada"})
            }
        );
        assert_eq!(
            serde_json::to_value(InputAnswer::Decline).unwrap(),
            json!({"action": "decline"})
        );
        assert!(serde_json::from_value::<InputAnswer>(json!({"action": "maybe"})).is_err());
    }

    #[test]
    fn a_check_names_the_field() {
        let q = form();
        assert!(
            q.check(&InputAnswer::Accept {
                content: json!({"name": "Ada"})
            })
            .is_ok()
        );
        let e = q
            .check(&InputAnswer::Accept {
                content: json!({"name": 3}),
            })
            .unwrap_err();
        assert!(e.contains("content/name"), "{e}");
        let e = q
            .check(&InputAnswer::Accept {
                content: Value::Null,
            })
            .unwrap_err();
        assert!(e.contains("needs `content`"), "{e}");
        assert!(q.check(&InputAnswer::Decline).is_ok());
        // A URL question has no content to check.
        assert!(
            InputRequest::url("Open", "https://example.com")
                .check(&InputAnswer::Accept {
                    content: Value::Null
                })
                .is_ok()
        );
    }

    #[test]
    fn the_answer_schema_follows_the_question() {
        let s = Schema::new(answers_schema(&[PendingInput {
            call_id: "c1".into(),
            tool: "t".into(),
            arguments: json!({}),
            request: form(),
        }]))
        .unwrap();
        assert!(
            s.check(&json!({"c1": {"action": "accept", "content": {"name": "Ada"}}}))
                .is_ok()
        );
        assert!(s.check(&json!({"c1": {"action": "decline"}})).is_ok());
        let (pointer, _) = s
            .check(&json!({"c1": {"action": "accept", "content": {"name": 3}}}))
            .unwrap_err();
        assert_eq!(pointer, "/c1/content/name");
        let (pointer, _) = s.check(&json!({"c1": {"action": "accept"}})).unwrap_err();
        assert_eq!(pointer, "/c1");
        assert!(s.check(&json!({"c2": {"action": "decline"}})).is_err());
        assert!(s.check(&json!({})).is_err());
        // The details are flattened into the question as shown.
        let shown = serde_json::to_value(form()).unwrap();
        assert_eq!(shown["server"], "s");
        let back: InputRequest = serde_json::from_value(shown).unwrap();
        assert_eq!(back, form());
    }
}
