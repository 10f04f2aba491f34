//! Every recorded provider response in tests/fixtures decodes to the result in expected.json
//! (text, reasoning, tool calls with assembled arguments, finish reason, usage, errors), whole and
//! split into small chunks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod model_support;

use miyabi::model::adapters::{Target, adapter, decoder};
use miyabi::model::decode::{ResponseCollector, decode_all};
use miyabi::model::{ModelResponse, Protocol};
use model_support::{assert_matches, expected, protocol_of, read_fixture, wire_body};
use serde_json::Value;

fn provider_for(path: &str) -> String {
    path.split('/').next().unwrap().to_owned()
}

fn decode_stream(
    protocol: Protocol,
    provider: &str,
    body: &[u8],
    piece: usize,
) -> Result<ModelResponse, miyabi::ModelError> {
    let mut dec = decoder(protocol, provider);
    let mut events = Vec::new();
    for chunk in body.chunks(piece) {
        dec.feed(chunk, &mut events)?;
    }
    dec.finish(&mut events)?;
    let mut c = ResponseCollector::new();
    for e in events {
        c.push(e);
    }
    assert!(c.finished(), "no finish event");
    Ok(c.into_response())
}

fn check_all(only: &[Protocol]) -> usize {
    let mut checked = 0;
    for (path, rec) in expected() {
        let family = rec["family"].as_str().unwrap();
        let Some(protocol) = protocol_of(family) else {
            continue;
        };
        if !only.contains(&protocol) {
            continue;
        }
        let kind = rec["kind"].as_str().unwrap();
        let want = &rec["assembled"];
        let provider = provider_for(&path);
        if protocol == Protocol::Bedrock && kind.starts_with("stream") {
            continue; // Bedrock streams are checked from their binary event-stream encodings.
        }
        if kind.starts_with("stream") {
            let body = wire_body(&path, protocol);
            if want.is_array() {
                continue; // multi-response recording, see responses_multi_step
            }
            let errors = want
                .get("errors")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            for piece in [body.len().max(1), 7, 1] {
                match decode_stream(protocol, &provider, &body, piece) {
                    Ok(got) => {
                        assert!(errors.is_empty(), "{path}: expected an error, got {got:?}");
                        assert_matches(&path, protocol, &got, want);
                    }
                    Err(e) => {
                        assert!(
                            !errors.is_empty(),
                            "{path} (pieces of {piece}): unexpected error {e}"
                        );
                        let msg = errors[0]["message"].as_str().unwrap();
                        assert!(
                            e.to_string().contains(msg),
                            "{path}: error {e} lacks {msg:?}"
                        );
                    }
                }
            }
            checked += 1;
        } else if kind == "json: error" {
            let body = read_fixture(&path);
            let parsed = (adapter(protocol).parse_error())(&body);
            let want_msg = want["error"]["message"]
                .as_str()
                .or_else(|| want["error"].as_str())
                .unwrap();
            assert_eq!(
                parsed.message.as_deref(),
                Some(want_msg),
                "{path}: error message"
            );
            checked += 1;
        } else {
            let body = read_fixture(&path);
            let target = Target {
                provider: provider.clone(),
                model: "m".into(),
                ..Target::default()
            };
            let got = adapter(protocol)
                .parse_response(&target, &body)
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_matches(&path, protocol, &got, want);
            checked += 1;
        }
    }
    checked
}

#[test]
fn openai_chat_fixtures() {
    let n = check_all(&[Protocol::OpenAiChat]);
    assert!(n >= 30, "only {n} openai-chat fixtures checked");
}

#[test]
fn anthropic_fixtures() {
    let n = check_all(&[Protocol::Anthropic]);
    assert!(n >= 11, "only {n} anthropic fixtures checked");
}

#[test]
fn recorded_raw_sse_file_with_done() {
    let body = read_fixture("openai-compatible/anthropic-fallback-tool-call.sse");
    let mut dec = decoder(Protocol::OpenAiChat, "openai-compatible");
    let events = decode_all(dec.as_mut(), &body).unwrap();
    let mut c = ResponseCollector::new();
    for e in events {
        c.push(e);
    }
    let r = c.into_response();
    assert_eq!(r.text(), "Reading it.");
    assert_eq!(
        r.tool_calls()[0].arguments,
        serde_json::json!({"path": "a.txt"})
    );
}

#[test]
fn anthropic_error_midstream_is_a_typed_error_after_partial_text() {
    let body = read_fixture("synthetic/synthetic-anthropic-overloaded-midstream.sse");
    let mut dec = decoder(Protocol::Anthropic, "anthropic");
    let mut events = Vec::new();
    let err = dec.feed(&body, &mut events).unwrap_err();
    assert!(matches!(err, miyabi::ModelError::Server(_)), "{err:?}");
    assert!(err.to_string().contains("Overloaded"));
    let text: String = events
        .iter()
        .filter_map(|e| {
            if let miyabi::model::StreamEvent::TextDelta { text } = e {
                Some(text.as_str())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(text, "Par");
}

#[test]
fn anthropic_http_error_body() {
    let parsed = (adapter(Protocol::Anthropic).parse_error())(&read_fixture(
        "synthetic/synthetic-anthropic-error.json",
    ));
    assert_eq!(
        parsed.message.as_deref(),
        Some("max_tokens: Field required")
    );
    assert_eq!(parsed.code.as_deref(), Some("invalid_request_error"));
    assert_eq!(
        parsed.request_id.as_deref(),
        Some("req_011CSynthetic0000000000")
    );
}
