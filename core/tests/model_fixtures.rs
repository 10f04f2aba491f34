//! Every recorded provider response in tests/fixtures decodes to the result in expected.json
//! (text, reasoning, tool calls with assembled arguments, finish reason, usage, errors), whole and
//! split into small chunks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod model_support;

use miyabi::model::internals::{ResponseCollector, Target, adapter, decode_all, decoder};
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

#[test]
fn openai_responses_fixtures() {
    let n = check_all(&[Protocol::OpenAiResponses]);
    assert!(n >= 14, "only {n} responses fixtures checked");
}

#[test]
fn gemini_fixtures() {
    let n = check_all(&[Protocol::Gemini]);
    assert!(n >= 11, "only {n} gemini fixtures checked");
}

#[test]
fn cohere_fixtures() {
    let n = check_all(&[Protocol::Cohere]);
    assert!(n >= 10, "only {n} cohere fixtures checked");
}

#[test]
fn bedrock_json_fixtures() {
    let n = check_all(&[Protocol::Bedrock]);
    assert!(n >= 4, "only {n} bedrock json fixtures checked");
}

#[test]
fn responses_multi_step_recording() {
    // Four consecutive responses of an agent loop in one file: split on response.created.
    let path = "openai/responses/openai-reasoning-encrypted-content.1.chunks.txt";
    let text = String::from_utf8(read_fixture(path)).unwrap();
    let mut steps: Vec<String> = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if line.contains("\"type\":\"response.created\"") {
            steps.push(String::new());
        }
        steps.last_mut().unwrap().push_str(line);
        steps.last_mut().unwrap().push('\n');
    }
    let want = expected()[path]["assembled"].as_array().unwrap().clone();
    assert_eq!(steps.len(), want.len());
    for (i, (step, w)) in steps.iter().zip(&want).enumerate() {
        let body = model_support::frame(Protocol::OpenAiResponses, step.as_bytes());
        let got = decode_stream(Protocol::OpenAiResponses, "openai", &body, 13).unwrap();
        assert_matches(
            &format!("{path} step {i}"),
            Protocol::OpenAiResponses,
            &got,
            w,
        );
    }
}

#[test]
fn bedrock_event_stream_fixtures() {
    let cases = [
        "amazon-bedrock/amazon-bedrock-text",
        "amazon-bedrock/amazon-bedrock-reasoning",
        "amazon-bedrock/amazon-bedrock-tool-call.1",
        "amazon-bedrock/amazon-bedrock-tool-no-args",
    ];
    let exp = expected();
    for name in cases {
        let file =
            name.replace("amazon-bedrock/", "amazon-bedrock/derived-binary/") + ".eventstream.bin";
        let body = read_fixture(&file);
        let want = &exp[&format!("{name}.chunks.txt")]["assembled"];
        for piece in [body.len(), 5, 1] {
            let got = decode_stream(Protocol::Bedrock, "amazon-bedrock", &body, piece).unwrap();
            assert_matches(&file, Protocol::Bedrock, &got, want);
        }
    }
}

#[test]
fn bedrock_exception_frame_and_corruption() {
    let body = read_fixture(
        "amazon-bedrock/derived-binary/synthetic-throttling-exception.eventstream.bin",
    );
    let err = decode_stream(Protocol::Bedrock, "amazon-bedrock", &body, 3).unwrap_err();
    assert!(
        matches!(err, miyabi::ModelError::RateLimited { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("Too many requests"));

    let mut corrupt =
        read_fixture("amazon-bedrock/derived-binary/amazon-bedrock-text.eventstream.bin");
    corrupt[40] ^= 0xff;
    let err = decode_stream(Protocol::Bedrock, "amazon-bedrock", &corrupt, 64).unwrap_err();
    assert!(err.to_string().contains("CRC"), "{err}");

    let whole = read_fixture("amazon-bedrock/derived-binary/amazon-bedrock-text.eventstream.bin");
    let err = decode_stream(
        Protocol::Bedrock,
        "amazon-bedrock",
        &whole[..whole.len() - 10],
        64,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("inside an event-stream frame"),
        "{err}"
    );
}

#[test]
fn ollama_ndjson_fixtures() {
    let got = decode_stream(
        Protocol::Ollama,
        "ollama",
        &read_fixture("synthetic/synthetic-ollama-chat-tool-call.ndjson"),
        9,
    )
    .unwrap();
    assert_eq!(
        got.reasoning(),
        "The user wants the weather; call the tool."
    );
    let calls = got.tool_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].name, "weather");
    assert_eq!(
        calls[0].arguments,
        serde_json::json!({"location": "San Francisco", "unit": "celsius"})
    );
    assert_eq!((got.usage.input_tokens, got.usage.output_tokens), (143, 31));
    assert_eq!(got.finish_reason, miyabi::model::FinishReason::ToolCalls);

    let got = decode_stream(
        Protocol::Ollama,
        "ollama",
        &read_fixture("synthetic/synthetic-ollama-chat-text.ndjson"),
        4,
    )
    .unwrap();
    assert_eq!(got.text(), "Paris is the capital of France.");
    assert_eq!((got.usage.input_tokens, got.usage.output_tokens), (12, 8));

    let parsed = (adapter(Protocol::Ollama).parse_error())(&read_fixture(
        "synthetic/synthetic-ollama-error.json",
    ));
    assert_eq!(
        parsed.message.as_deref(),
        Some("model \"llama9\" not found, try pulling it first")
    );
}

#[test]
fn derived_wire_files_decode() {
    let exp = expected();
    for (wire, chunks, protocol) in [
        (
            "derived-wire/anthropic-json-tool.1.wire.sse",
            "anthropic/anthropic-json-tool.1.chunks.txt",
            Protocol::Anthropic,
        ),
        (
            "derived-wire/azure-tool-call.1.wire.sse",
            "azure/azure-tool-call.1.chunks.txt",
            Protocol::OpenAiResponses,
        ),
        (
            "derived-wire/cohere-tool-call.wire.sse",
            "cohere/cohere-tool-call.chunks.txt",
            Protocol::Cohere,
        ),
        (
            "derived-wire/deepseek-tool-call.wire.sse",
            "deepseek/deepseek-tool-call.chunks.txt",
            Protocol::OpenAiChat,
        ),
        (
            "derived-wire/google-tool-call-gemini3.wire.sse",
            "google/google-tool-call-gemini3.chunks.txt",
            Protocol::Gemini,
        ),
    ] {
        let body = read_fixture(wire);
        let got = decode_stream(protocol, "x", &body, 11).unwrap();
        assert_matches(wire, protocol, &got, &exp[chunks]["assembled"]);
    }
}

#[test]
fn error_bodies_of_other_families() {
    let cohere = (adapter(Protocol::Cohere).parse_error())(&read_fixture(
        "synthetic/synthetic-cohere-error.json",
    ));
    assert_eq!(cohere.message.as_deref(), Some("invalid api token"));
    let bedrock = (adapter(Protocol::Bedrock).parse_error())(&read_fixture(
        "synthetic/synthetic-bedrock-validation-error.json",
    ));
    assert_eq!(
        bedrock.message.as_deref(),
        Some("The provided model identifier is invalid.")
    );
    let gemini = (adapter(Protocol::Gemini).parse_error())(&read_fixture(
        "google/google-429-retry-info.json",
    ));
    assert_eq!(gemini.code.as_deref(), Some("RESOURCE_EXHAUSTED"));
    assert_eq!(
        gemini.retry_after,
        Some(std::time::Duration::from_secs_f64(34.4))
    );
}
