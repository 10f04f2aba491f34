//! Streams cut off in the middle of a tool call: a call is ended (`ToolCallEnd`) only when the
//! provider said its arguments are complete (the end of that call, or the response's finish);
//! a stream that stops before that reports a typed error naming the provider and saying it
//! ended early, and never hands out the unfinished argument fragment as a finished call.
//!
//! Real recorded tool-call streams (tests/fixtures) are cut mid-arguments and replayed over
//! loopback, once with the body ending cleanly and once with the connection dropped; then every
//! streamed fixture is cut at every event boundary (and inside every event) and decoded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod model_support;

use std::time::Duration;

use futures::StreamExt;
use miyabi::model::internals::decoder;
use miyabi::model::{
    HttpOptions, LanguageModel, ModelBuilder, ModelError, ModelRequest, Protocol, StreamEvent,
    ToolCall, collect_stream,
};
use model_support::{Reply, Server, expected, protocol_of, read_fixture};

const KEY: &str = "sk-test-0123456789";

fn fast() -> HttpOptions {
    HttpOptions {
        first_byte_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(20),
        max_retries: 0,
        ..HttpOptions::default()
    }
}

/// The payload lines of a `.chunks.txt` fixture.
fn lines(rel: &str) -> Vec<String> {
    String::from_utf8(read_fixture(rel))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

/// Frames payload lines as the provider sends them, without any terminator (`[DONE]`).
fn frame_lines(protocol: Protocol, lines: &[String]) -> Vec<u8> {
    let mut out = String::new();
    for line in lines {
        match protocol {
            Protocol::OpenAiChat => out.push_str(&format!("data: {line}\n\n")),
            Protocol::Gemini | Protocol::VertexGemini => {
                out.push_str(&format!("data: {line}\r\n\r\n"))
            }
            _ => {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let ty = v["type"].as_str().unwrap_or("message");
                out.push_str(&format!("event: {ty}\ndata: {line}\n\n"));
            }
        }
    }
    out.into_bytes()
}

/// The lines up to and including the first one for which `cut_after` holds.
fn keep_through(lines: &[String], cut_after: impl Fn(&str) -> bool) -> Vec<String> {
    let i = lines
        .iter()
        .position(|l| cut_after(l))
        .expect("the cut point exists in the fixture");
    lines[..=i].to_vec()
}

/// Splits an AWS event-stream body into its frames (the first 4 bytes of a frame are its length).
fn frames(body: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = body;
    while rest.len() >= 4 {
        let len = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
        out.push(&rest[..len]);
        rest = &rest[len..];
    }
    assert!(rest.is_empty());
    out
}

struct Case {
    name: &'static str,
    spec: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    /// Calls the provider finished before the cut (their `ToolCallEnd` must arrive, complete).
    complete: Vec<ToolCall>,
    /// The call that was cut mid-arguments.
    unfinished: usize,
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();

    // OpenAI Chat Completions (DeepSeek's dialect): cut after `{"location": "San`.
    let l = lines("deepseek/deepseek-tool-call.chunks.txt");
    let kept = keep_through(&l, |l| l.contains(r#""arguments":"San""#));
    out.push(Case {
        name: "openai-chat",
        spec: "deepseek/deepseek-reasoner",
        path: "/v1",
        content_type: "text/event-stream",
        body: frame_lines(Protocol::OpenAiChat, &kept),
        complete: vec![],
        unfinished: 0,
    });

    // Anthropic Messages: cut after `{"elements": [ ... ]` (the closing brace never comes).
    let l = lines("anthropic/anthropic-json-tool.1.chunks.txt");
    let kept = keep_through(&l, |l| l.contains(r#""partial_json":"{\"elements\""#));
    out.push(Case {
        name: "anthropic",
        spec: "anthropic/claude-haiku-4-5",
        path: "/v1",
        content_type: "text/event-stream",
        body: frame_lines(Protocol::Anthropic, &kept),
        complete: vec![],
        unfinished: 0,
    });

    // OpenAI Responses (Azure recording): cut after the `San` argument delta.
    let l = lines("azure/azure-tool-call.1.chunks.txt");
    let kept = keep_through(&l, |l| {
        l.contains("function_call_arguments.delta") && l.contains(r#""delta":"San""#)
    });
    out.push(Case {
        name: "openai-responses",
        spec: "openai/gpt-4o",
        path: "/v1",
        content_type: "text/event-stream",
        body: frame_lines(Protocol::OpenAiResponses, &kept),
        complete: vec![],
        unfinished: 0,
    });

    // Cohere v2: the first call ends properly, the second is cut after `{"city": "San`.
    let l = lines("cohere/cohere-tool-call.chunks.txt");
    let kept = keep_through(&l, |l| {
        l.contains(r#""type":"tool-call-delta","index":1"#) && l.contains(r#""arguments":"San""#)
    });
    out.push(Case {
        name: "cohere",
        spec: "cohere/command-a-03-2025",
        path: "/v2",
        content_type: "text/event-stream",
        body: frame_lines(Protocol::Cohere, &kept),
        complete: vec![ToolCall {
            id: "weather_e8p4pn45zt0t".into(),
            name: "weather".into(),
            arguments: serde_json::json!({"location": "San Francisco"}),
        }],
        unfinished: 1,
    });

    // Gemini (Vertex streamed `partialArgs`): the first call is closed by its terminal part,
    // the second is cut after its first fragment.
    let l = lines("google/google-stream-tool-call-arguments.chunks.txt");
    let kept = keep_through(&l, |l| l.contains(r#""stringValue":"San Francisco""#));
    out.push(Case {
        name: "gemini",
        spec: "google/gemini-3.1-pro-preview",
        path: "/v1beta",
        content_type: "text/event-stream",
        body: frame_lines(Protocol::Gemini, &kept),
        complete: vec![ToolCall {
            id: "call_1".into(),
            name: "getWeather".into(),
            arguments: serde_json::json!({"location": "Boston"}),
        }],
        unfinished: 1,
    });

    // Bedrock ConverseStream: the binary frames up to the first argument fragment
    // (`{"value":`), before `"Sparkle Day"}` and contentBlockStop.
    let bin =
        read_fixture("amazon-bedrock/derived-binary/amazon-bedrock-tool-call.1.eventstream.bin");
    let f = frames(&bin);
    let body: Vec<u8> = f[..2].concat();
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains(r#"{\"value\":"#) && !text.contains("Sparkle"),
        "{text}"
    );
    out.push(Case {
        name: "bedrock",
        spec: "amazon-bedrock/anthropic.claude-3-haiku-20240307-v1:0",
        path: "",
        content_type: "application/vnd.amazon.eventstream",
        body,
        complete: vec![],
        unfinished: 0,
    });
    out
}

/// Replays `case` over loopback, the body ending cleanly or the connection dropping.
async fn replay(case: &Case, drop: bool) -> (Vec<StreamEvent>, Option<ModelError>, Server) {
    let mut reply = Reply::sse(case.body.clone()).split(97);
    reply.headers = vec![("content-type".into(), case.content_type.into())];
    reply.drop_after_chunks = drop;
    let server = Server::start(vec![reply]).await;
    let m = ModelBuilder::new(case.spec)
        .env(|_| None)
        .api_key(KEY)
        .base_url(format!("{}{}", server.url, case.path))
        .http_options(fast())
        .build()
        .unwrap();
    let mut s = m.stream(&ModelRequest::user("hi")).await.unwrap();
    let mut events = Vec::new();
    let mut error = None;
    while let Some(ev) = s.next().await {
        match ev {
            Ok(e) => events.push(e),
            Err(e) => {
                assert!(error.is_none(), "one error ends the stream");
                error = Some(e);
            }
        }
    }
    // `collect_stream` on the same stream returns the error.
    let got = collect_stream(m.stream(&ModelRequest::user("hi")).await.unwrap()).await;
    let err = got.expect_err("collect_stream reports the cut");
    assert_eq!(
        std::mem::discriminant(&err),
        std::mem::discriminant(error.as_ref().expect("an error")),
        "{}: {err:?}",
        case.name
    );
    (events, error, server)
}

#[tokio::test]
async fn a_stream_cut_mid_arguments_never_ends_the_unfinished_call() {
    for case in cases() {
        for drop in [false, true] {
            let what = format!(
                "{} ({})",
                case.name,
                if drop {
                    "connection dropped"
                } else {
                    "body ended"
                }
            );
            let (events, error, _server) = replay(&case, drop).await;
            let started: Vec<usize> = events
                .iter()
                .filter_map(|e| match e {
                    StreamEvent::ToolCallStart { index, .. } => Some(*index),
                    _ => None,
                })
                .collect();
            assert!(
                started.contains(&case.unfinished),
                "{what}: the cut call was started: {events:?}"
            );
            let ended: Vec<(usize, ToolCall)> = events
                .iter()
                .filter_map(|e| match e {
                    StreamEvent::ToolCallEnd { index, call } => Some((*index, call.clone())),
                    _ => None,
                })
                .collect();
            assert!(
                ended.iter().all(|(i, _)| *i != case.unfinished),
                "{what}: the unfinished call was ended: {ended:?}"
            );
            let finished: Vec<ToolCall> = ended.into_iter().map(|(_, c)| c).collect();
            assert_eq!(
                finished, case.complete,
                "{what}: calls the provider finished"
            );
            assert!(
                !events
                    .iter()
                    .any(|e| matches!(e, StreamEvent::Finish { .. })),
                "{what}: no finish"
            );
            let err = error.unwrap_or_else(|| panic!("{what}: the cut is reported"));
            let ctx = err.context().unwrap_or_else(|| panic!("{what}: {err:?}"));
            assert_eq!(
                ctx.provider,
                case.spec.split('/').next().unwrap(),
                "{what}: {err:?}"
            );
            assert!(err.to_string().contains("ended early"), "{what}: {err}");
            if drop {
                assert!(matches!(err, ModelError::Network(_)), "{what}: {err:?}");
            } else {
                assert!(matches!(err, ModelError::Decode(_)), "{what}: {err:?}");
                assert!(
                    err.to_string().contains("cut off before"),
                    "{what}: the error says a call was cut: {err}"
                );
            }
        }
    }
}

#[tokio::test]
async fn done_marker_without_a_finish_reason_does_not_end_calls() {
    // A proxy that cuts the upstream stream and still sends `[DONE]`.
    let l = lines("deepseek/deepseek-tool-call.chunks.txt");
    let kept = keep_through(&l, |l| l.contains(r#""arguments":"San""#));
    let mut body = frame_lines(Protocol::OpenAiChat, &kept);
    body.extend_from_slice(b"data: [DONE]\n\n");
    let server = Server::start(vec![Reply::sse(body)]).await;
    let m = ModelBuilder::new("deepseek/deepseek-reasoner")
        .env(|_| None)
        .api_key(KEY)
        .base_url(format!("{}/v1", server.url))
        .http_options(fast())
        .build()
        .unwrap();
    let mut s = m.stream(&ModelRequest::user("hi")).await.unwrap();
    let mut ended = 0;
    let mut err = None;
    while let Some(ev) = s.next().await {
        match ev {
            Ok(StreamEvent::ToolCallEnd { .. }) => ended += 1,
            Ok(_) => {}
            Err(e) => err = Some(e),
        }
    }
    assert_eq!(ended, 0);
    let err = err.expect("an error");
    assert!(
        matches!(err, ModelError::Decode(ref c) if c.provider == "deepseek"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("ended early, without a finish reason"),
        "{err}"
    );
}

/// Decodes `body` fed in one piece; the events and the result of `finish`.
fn decode(
    protocol: Protocol,
    provider: &str,
    body: &[u8],
) -> (Vec<StreamEvent>, Result<(), ModelError>) {
    let mut dec = decoder(protocol, provider);
    let mut events = Vec::new();
    let r = dec
        .feed(body, &mut events)
        .and_then(|()| dec.finish(&mut events));
    (events, r)
}

fn ends(events: &[StreamEvent]) -> Vec<(usize, ToolCall)> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallEnd { index, call } => Some((*index, call.clone())),
            _ => None,
        })
        .collect()
}

/// Checks one cut body: every call it ends is ended exactly as the whole stream ends it, and a
/// body that does not decode to a finish is an error.
fn check_prefix(
    name: &str,
    protocol: Protocol,
    provider: &str,
    body: &[u8],
    full: &[(usize, ToolCall)],
) -> usize {
    let (events, r) = decode(protocol, provider, body);
    for (i, call) in ends(&events) {
        let want = full.iter().find(|(j, _)| *j == i).map(|(_, c)| c);
        assert_eq!(
            Some(&call),
            want,
            "{name}: a cut stream ended call {i} with arguments the provider had not finished"
        );
    }
    let finished = events
        .iter()
        .any(|e| matches!(e, StreamEvent::Finish { .. }));
    assert!(
        finished || r.is_err(),
        "{name}: a cut stream without a finish must be an error: {events:?}"
    );
    usize::from(r.is_err())
}

#[test]
fn every_streamed_fixture_cut_anywhere_ends_only_complete_calls() {
    let mut cuts = 0;
    let mut errors = 0;
    for (path, rec) in expected() {
        let Some(protocol) = protocol_of(rec["family"].as_str().unwrap()) else {
            continue;
        };
        if !path.ends_with(".chunks.txt") || protocol == Protocol::Bedrock {
            continue;
        }
        let provider = path.split('/').next().unwrap();
        let l = lines(&path);
        let mut whole = frame_lines(protocol, &l);
        if protocol == Protocol::OpenAiChat {
            whole.extend_from_slice(b"data: [DONE]\n\n");
        }
        let (events, r) = decode(protocol, provider, &whole);
        if r.is_err() {
            continue; // recorded failures (error events) are covered by model_fixtures
        }
        let full = ends(&events);
        for k in 0..l.len() {
            // Cut after k whole events, and in the middle of event k.
            let head = frame_lines(protocol, &l[..k]);
            errors += check_prefix(
                &format!("{path} cut after {k} events"),
                protocol,
                provider,
                &head,
                &full,
            );
            let next = frame_lines(protocol, &l[k..=k]);
            let mut mid = head.clone();
            mid.extend_from_slice(&next[..next.len() / 2]);
            errors += check_prefix(
                &format!("{path} cut inside event {k}"),
                protocol,
                provider,
                &mid,
                &full,
            );
            cuts += 2;
        }
    }
    for name in [
        "amazon-bedrock-text",
        "amazon-bedrock-reasoning",
        "amazon-bedrock-tool-call.1",
        "amazon-bedrock-tool-no-args",
    ] {
        let bin = read_fixture(&format!(
            "amazon-bedrock/derived-binary/{name}.eventstream.bin"
        ));
        let (events, r) = decode(Protocol::Bedrock, "amazon-bedrock", &bin);
        r.unwrap();
        let full = ends(&events);
        let f = frames(&bin);
        let mut at = 0;
        for fr in &f {
            errors += check_prefix(name, Protocol::Bedrock, "amazon-bedrock", &bin[..at], &full);
            errors += check_prefix(
                name,
                Protocol::Bedrock,
                "amazon-bedrock",
                &bin[..at + fr.len() / 2],
                &full,
            );
            at += fr.len();
            cuts += 2;
        }
    }
    assert!(cuts > 500, "{cuts} cuts checked");
    assert!(
        errors > cuts / 2,
        "most cuts are errors ({errors} of {cuts})"
    );
}

#[tokio::test]
async fn a_failed_response_does_not_end_its_unfinished_calls() {
    // OpenAI Responses: the argument deltas stop and `response.failed` follows.
    let l = lines("azure/azure-tool-call.1.chunks.txt");
    let mut kept = keep_through(&l, |l| {
        l.contains("function_call_arguments.delta") && l.contains(r#""delta":"San""#)
    });
    kept.push(
        r#"{"type":"response.failed","response":{"id":"resp_1","status":"failed","error":{"code":"server_error","message":"The model failed mid-call."}}}"#
            .to_owned(),
    );
    let responses = (
        "openai/gpt-4o",
        "/v1",
        frame_lines(Protocol::OpenAiResponses, &kept),
        "The model failed mid-call.",
    );
    // Cohere: `message-end` with finish_reason ERROR in the middle of the second call.
    let l = lines("cohere/cohere-tool-call.chunks.txt");
    let mut kept = keep_through(&l, |l| {
        l.contains(r#""type":"tool-call-delta","index":1"#) && l.contains(r#""arguments":"San""#)
    });
    kept.push(
        r#"{"type":"message-end","delta":{"finish_reason":"ERROR","error":"generation aborted"}}"#
            .to_owned(),
    );
    let cohere = (
        "cohere/command-a-03-2025",
        "/v2",
        frame_lines(Protocol::Cohere, &kept),
        "generation aborted",
    );
    for (spec, path, body, says) in [responses, cohere] {
        let server = Server::start(vec![Reply::sse(body)]).await;
        let m = ModelBuilder::new(spec)
            .env(|_| None)
            .api_key(KEY)
            .base_url(format!("{}{path}", server.url))
            .http_options(fast())
            .build()
            .unwrap();
        let mut s = m.stream(&ModelRequest::user("hi")).await.unwrap();
        let mut ended = Vec::new();
        let mut err = None;
        while let Some(ev) = s.next().await {
            match ev {
                Ok(StreamEvent::ToolCallEnd { index, call }) => ended.push((index, call)),
                Ok(_) => {}
                Err(e) => err = Some(e),
            }
        }
        let err = err.unwrap_or_else(|| panic!("{spec}: the failure is reported"));
        assert!(err.to_string().contains(says), "{spec}: {err}");
        assert_eq!(
            err.context().unwrap().provider,
            spec.split('/').next().unwrap()
        );
        // Only Cohere's first call, which its provider ended, is ended.
        let unfinished_ended = ended
            .iter()
            .any(|(_, c)| !matches!(&c.arguments, serde_json::Value::Object(m) if !m.is_empty()));
        assert!(
            !unfinished_ended,
            "{spec}: an unfinished call was ended: {ended:?}"
        );
        assert!(
            ended.len() <= 1 && ended.iter().all(|(i, _)| *i == 0),
            "{spec}: {ended:?}"
        );
    }
}
