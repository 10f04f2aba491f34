//! Adapters through the real HTTP layer against a loopback server replaying recorded traffic:
//! the exact request sent (URL, headers, body), retries, timeouts and faults, and that API keys
//! never reach logs, traces or errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod model_support;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use miyabi::model::{
    FinishReason, HttpOptions, LanguageModel, Model, ModelBuilder, ModelError, ModelRequest,
    Protocol, ResponseFormat, StreamEvent, TimeoutKind, ToolChoice, ToolSpec, collect_stream,
};
use model_support::{Reply, Server, expected, frame, read_fixture, wire_body};
use serde_json::json;

const KEY: &str = "sk-test-SECRET-0123456789";

fn fast() -> HttpOptions {
    HttpOptions {
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        first_byte_timeout: Duration::from_secs(5),
        idle_timeout: Duration::from_secs(5),
        total_timeout: Duration::from_secs(20),
        ..HttpOptions::default()
    }
}

fn model_at(spec: &str, server: &Server, path: &str) -> Model {
    ModelBuilder::new(spec)
        .env(|_| None)
        .api_key(KEY)
        .base_url(format!("{}{path}", server.url))
        .http_options(fast())
        .build()
        .unwrap()
}

fn weather_request() -> ModelRequest {
    ModelRequest::user("Weather in SF?")
        .with_system("You are terse.")
        .with_tool(ToolSpec::new(
            "weather",
            "Get weather",
            json!({"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}),
        ))
        .with_max_tokens(256)
}

#[tokio::test]
async fn openai_compatible_stream_exact_request_and_result() {
    let body = wire_body(
        "deepseek/deepseek-tool-call.chunks.txt",
        Protocol::OpenAiChat,
    );
    let server = Server::start(vec![Reply::sse(body).split(64)]).await;
    let m = model_at("deepseek/deepseek-chat", &server, "/v1");
    let stream = m.stream(&weather_request()).await.unwrap();
    let got = collect_stream(stream).await.unwrap();
    let want = &expected()["deepseek/deepseek-tool-call.chunks.txt"]["assembled"];
    model_support::assert_matches("deepseek stream", Protocol::OpenAiChat, &got, want);
    assert_eq!(got.finish_reason, FinishReason::ToolCalls);

    let seen = server.requests();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("accept"), Some("text/event-stream"));
    assert_eq!(
        r.json(),
        json!({
            "model": "deepseek-chat",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Weather in SF?"}
            ],
            "tools": [{"type": "function", "function": {"name": "weather", "description": "Get weather",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}],
            "tool_choice": "auto",
            "max_tokens": 256,
            "stream": true,
            "stream_options": {"include_usage": true}
        })
    );
}

#[tokio::test]
async fn openai_chat_generate_with_tool_history_and_structured_output() {
    let server = Server::start(vec![
        Reply::json(200, read_fixture("groq/groq-tool-call.json")).header("x-request-id", "req_42"),
    ])
    .await;
    // `openai` defaults to the Responses API; force Chat Completions for this check.
    let m = ModelBuilder::new("openai/gpt-4.1")
        .env(|_| None)
        .api_key(KEY)
        .protocol(Protocol::OpenAiChat)
        .base_url(format!("{}/v1", server.url))
        .http_options(fast())
        .build()
        .unwrap();
    let mut req = weather_request();
    req.tool_choice = ToolChoice::Tool("weather".into());
    req.response_format = Some(ResponseFormat {
        name: "answer".into(),
        schema: json!({"type": "object"}),
        strict: true,
    });
    req.messages.push(miyabi::model::Message {
        role: miyabi::model::Role::Assistant,
        content: vec![miyabi::model::ContentPart::ToolCall(
            miyabi::model::ToolCall {
                id: "call_1".into(),
                name: "weather".into(),
                arguments: json!({"location": "SF"}),
            },
        )],
    });
    req.messages.push(miyabi::model::Message::tool_results(vec![
        miyabi::model::ToolResult {
            call_id: "call_1".into(),
            name: "weather".into(),
            content: json!({"tempC": 14}),
            is_error: false,
        },
    ]));
    let got = m.generate(&req).await.unwrap();
    assert_eq!(got.request_id.as_deref(), Some("req_42"));
    assert_eq!(got.tool_calls()[0].name, "weather");
    assert!(got.cost_usd.unwrap() > 0.0, "priced from the catalogue");
    let body = server.requests()[0].json();
    assert_eq!(body["max_completion_tokens"], 256);
    assert_eq!(
        body["tool_choice"],
        json!({"type": "function", "function": {"name": "weather"}})
    );
    assert_eq!(body["response_format"]["type"], "json_schema");
    assert_eq!(
        body["messages"][2],
        json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": "{\"location\":\"SF\"}"}}]})
    );
    assert_eq!(
        body["messages"][3],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "{\"tempC\":14}"})
    );
    assert!(body.get("stream").is_none());
}

#[tokio::test]
async fn anthropic_stream_exact_request_and_result() {
    let server = Server::start(vec![
        Reply::sse(wire_body(
            "anthropic/anthropic-json-tool.1.chunks.txt",
            Protocol::Anthropic,
        ))
        .split(50),
    ])
    .await;
    let m = model_at("anthropic/claude-haiku-4-5", &server, "/v1");
    let got = collect_stream(m.stream(&weather_request()).await.unwrap())
        .await
        .unwrap();
    let want = &expected()["anthropic/anthropic-json-tool.1.chunks.txt"]["assembled"];
    model_support::assert_matches("anthropic stream", Protocol::Anthropic, &got, want);
    let r = &server.requests()[0];
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some(KEY));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert!(r.header("authorization").is_none());
    assert_eq!(
        r.json(),
        json!({
            "model": "claude-haiku-4-5", "max_tokens": 256, "system": "You are terse.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Weather in SF?"}]}],
            "tools": [{"name": "weather", "description": "Get weather",
                "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}],
            "tool_choice": {"type": "auto"},
            "stream": true
        })
    );
}

#[tokio::test]
async fn anthropic_structured_output_through_forced_tool() {
    let mut req = ModelRequest::user("weather as json");
    req.response_format = Some(ResponseFormat {
        name: "weather".into(),
        schema: json!({"type": "object"}),
        strict: true,
    });
    // The recorded answer calls a tool named `json`; rename it as our forced tool would be named.
    let body = String::from_utf8(read_fixture("anthropic/anthropic-json-tool.1.json"))
        .unwrap()
        .replace("\"name\": \"json\"", "\"name\": \"json_response\"");
    let server = Server::start(vec![Reply::json(200, body)]).await;
    let m = model_at("anthropic/claude-haiku-4-5", &server, "/v1");
    let got = m.generate(&req).await.unwrap();
    assert_eq!(got.finish_reason, FinishReason::Stop);
    let v = got.json().unwrap();
    assert!(v["elements"].is_array(), "{v}");
    let sent = server.requests()[0].json();
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "tool", "name": "json_response"})
    );
    assert_eq!(sent["tools"][0]["input_schema"], json!({"type": "object"}));
}

#[tokio::test]
async fn retries_429_then_succeeds_honouring_retry_after() {
    let ok = Reply::json(200, read_fixture("groq/groq-text.json"));
    let limited = Reply::json(
        429,
        r#"{"error":{"message":"Rate limit reached","type":"rate_limit_error"}}"#,
    )
    .header("retry-after", "0.05");
    let server = Server::start(vec![limited, ok]).await;
    let m = model_at("groq/llama-3.3-70b-versatile", &server, "/openai/v1");
    let started = std::time::Instant::now();
    let got = m.generate(&ModelRequest::user("hi")).await.unwrap();
    assert!(got.text().starts_with("I'd like to introduce"));
    assert_eq!(server.requests().len(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(50),
        "retry-after honoured"
    );
}

#[tokio::test]
async fn server_errors_until_retries_give_up() {
    let server = Server::start(vec![
        Reply::json(500, r#"{"error":{"message":"boom","type":"server_error"}}"#)
            .header("x-request-id", "req_500"),
    ])
    .await;
    let m = model_at("groq/llama-3.3-70b-versatile", &server, "/v1");
    let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
    assert_eq!(server.requests().len(), 3, "1 attempt + 2 retries");
    match &err {
        ModelError::Server(ctx) => {
            assert_eq!(ctx.status, Some(500));
            assert_eq!(ctx.message, "boom");
            assert_eq!(ctx.request_id.as_deref(), Some("req_500"));
            assert_eq!(ctx.provider, "groq");
            assert_eq!(ctx.model, "llama-3.3-70b-versatile");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn client_errors_are_typed_and_not_retried() {
    let cases = [
        (
            401,
            r#"{"error":{"message":"Invalid API key","type":"invalid_request_error","code":"invalid_api_key"}}"#,
            "auth",
        ),
        (
            400,
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","code":"context_length_exceeded"}}"#,
            "context",
        ),
        (
            400,
            &String::from_utf8(read_fixture(
                "openai/chat/reasoning-model-legacy-parameter-error.json",
            ))
            .unwrap(),
            "invalid",
        ),
        (
            400,
            &String::from_utf8(read_fixture(
                "synthetic/synthetic-azure-content-filter-error.json",
            ))
            .unwrap(),
            "filter",
        ),
    ];
    for (status, body, kind) in cases {
        let server = Server::start(vec![Reply::json(status, body.to_owned())]).await;
        let m = model_at("groq/x", &server, "/v1");
        let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
        assert_eq!(server.requests().len(), 1, "{kind}: not retried");
        let ok = match kind {
            "auth" => matches!(err, ModelError::Auth(_)),
            "context" => matches!(err, ModelError::ContextLength(_)),
            "invalid" => matches!(err, ModelError::InvalidRequest(_)),
            _ => matches!(err, ModelError::ContentFiltered(_)),
        };
        assert!(ok, "{kind}: {err:?}");
        assert_eq!(err.status(), Some(status));
    }
}

#[tokio::test]
async fn long_retry_after_is_returned_not_waited() {
    let server = Server::start(vec![Reply::json(
        429,
        read_fixture("google/google-429-retry-info.json"),
    )])
    .await;
    let m = model_at("groq/x", &server, "/v1");
    let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
    assert_eq!(server.requests().len(), 1);
    assert_eq!(
        err.retry_after(),
        Some(Duration::from_secs_f64(34.4)),
        "{err:?}"
    );
    assert!(err.to_string().contains("You exceeded your current quota"));
}

#[tokio::test]
async fn dropped_connection_mid_stream_is_a_network_error_after_partial_events() {
    let body = wire_body("openai/chat/openai-text.chunks.txt", Protocol::OpenAiChat);
    let mut reply = Reply::sse(body[..4000].to_vec()).split(500);
    reply.drop_after_chunks = true;
    let server = Server::start(vec![reply]).await;
    let m = model_at("groq/llama-3.3-70b-versatile", &server, "/v1");
    let mut s = m.stream(&ModelRequest::user("hi")).await.unwrap();
    let mut texts = 0;
    let mut error = None;
    while let Some(ev) = s.next().await {
        match ev {
            Ok(StreamEvent::TextDelta { .. }) => texts += 1,
            Ok(_) => {}
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    assert!(texts > 3, "partial text delivered first");
    let e = error.expect("an error");
    assert!(
        matches!(e, ModelError::Network(_) | ModelError::Decode(_)),
        "{e:?}"
    );
    assert_eq!(
        server.requests().len(),
        1,
        "a stream is never retried after the first byte"
    );
}

#[tokio::test]
async fn malformed_sse_json_is_a_decode_error() {
    let server = Server::start(vec![Reply::sse(
        "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {not json\n\n",
    )])
    .await;
    let m = model_at("groq/x", &server, "/v1");
    let mut s = m.stream(&ModelRequest::user("hi")).await.unwrap();
    let first = s.next().await.unwrap().unwrap();
    assert_eq!(first, StreamEvent::TextDelta { text: "Hi".into() });
    let err = s.next().await.unwrap().unwrap_err();
    assert!(
        matches!(err, ModelError::Decode(ref c) if c.provider == "groq"),
        "{err:?}"
    );
    assert!(s.next().await.is_none());
}

#[tokio::test]
async fn stream_ending_without_finish_is_a_decode_error() {
    for (spec, body) in [
        (
            "groq/x",
            "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n".to_owned(),
        ),
        (
            "anthropic/claude-x",
            String::from_utf8(frame(
                Protocol::Anthropic,
                &read_fixture("anthropic/anthropic-text.chunks.txt"),
            ))
            .unwrap()
            .split("event: message_delta")
            .next()
            .unwrap()
            .to_owned(),
        ),
    ] {
        let server = Server::start(vec![Reply::sse(body)]).await;
        let m = model_at(spec, &server, "/v1");
        let err = collect_stream(m.stream(&ModelRequest::user("hi")).await.unwrap())
            .await
            .unwrap_err();
        assert!(matches!(err, ModelError::Decode(_)), "{spec}: {err:?}");
        assert!(err.to_string().contains("ended early, without"), "{err}");
    }
}

#[tokio::test]
async fn slow_first_byte_times_out_then_retries() {
    let mut slow = Reply::json(200, read_fixture("groq/groq-text.json"));
    slow.delay = Duration::from_millis(600);
    let fast_reply = Reply::json(200, read_fixture("groq/groq-text.json"));
    let server = Server::start(vec![slow.clone(), fast_reply]).await;
    let opts = HttpOptions {
        first_byte_timeout: Duration::from_millis(150),
        ..fast()
    };
    let m = ModelBuilder::new("groq/x")
        .env(|_| None)
        .api_key(KEY)
        .base_url(&server.url)
        .http_options(opts.clone())
        .build()
        .unwrap();
    let got = m.generate(&ModelRequest::user("hi")).await.unwrap();
    assert!(!got.text().is_empty());
    assert_eq!(server.requests().len(), 2);

    let server = Server::start(vec![slow]).await;
    let m = ModelBuilder::new("groq/x")
        .env(|_| None)
        .api_key(KEY)
        .base_url(&server.url)
        .http_options(HttpOptions {
            max_retries: 0,
            ..opts
        })
        .build()
        .unwrap();
    let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
    assert!(
        matches!(
            err,
            ModelError::Timeout {
                kind: TimeoutKind::FirstByte,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn idle_stream_times_out() {
    let body = wire_body("mistral/mistral-text.chunks.txt", Protocol::OpenAiChat);
    let mut reply = Reply::sse(body).split(40);
    reply.pause = Duration::from_millis(400);
    let server = Server::start(vec![reply]).await;
    let opts = HttpOptions {
        idle_timeout: Duration::from_millis(150),
        ..fast()
    };
    let m = ModelBuilder::new("mistral/x")
        .env(|_| None)
        .api_key(KEY)
        .base_url(&server.url)
        .http_options(opts)
        .build()
        .unwrap();
    let err = match m.stream(&ModelRequest::user("hi")).await {
        Ok(s) => collect_stream(s).await.unwrap_err(),
        Err(e) => e,
    };
    assert!(
        matches!(
            err,
            ModelError::Timeout {
                kind: TimeoutKind::Idle | TimeoutKind::FirstByte,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn connection_refused_is_a_network_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let m = ModelBuilder::new("groq/x")
        .env(|_| None)
        .api_key(KEY)
        .base_url(format!("http://{addr}"))
        .http_options(HttpOptions {
            max_retries: 1,
            ..fast()
        })
        .build()
        .unwrap();
    let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
    assert!(matches!(err, ModelError::Network(_)), "{err:?}");
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn api_keys_never_reach_traces_logs_or_errors() {
    let capture = Capture::default();
    let sink = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let replies = vec![
        Reply::json(
            429,
            r#"{"error":{"message":"slow down","type":"rate_limit_error"}}"#,
        )
        .header("retry-after", "0"),
        Reply::json(200, read_fixture("groq/groq-text.json")),
        Reply::json(
            401,
            r#"{"error":{"message":"bad key","type":"authentication_error"}}"#,
        ),
        Reply::sse(wire_body(
            "anthropic/anthropic-text.chunks.txt",
            Protocol::Anthropic,
        )),
    ];
    let server = Server::start(replies).await;
    let m = model_at("groq/x", &server, "/v1");
    m.generate(&ModelRequest::user("hi")).await.unwrap();
    let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
    let a = model_at("anthropic/claude-x", &server, "/v1");
    collect_stream(a.stream(&ModelRequest::user("hi")).await.unwrap())
        .await
        .unwrap();

    let logs = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("retrying model request"),
        "tracing was captured: {logs}"
    );
    for text in [
        logs,
        format!("{err:?}"),
        err.to_string(),
        format!("{m:?}"),
        format!("{a:?}"),
    ] {
        assert!(!text.contains(KEY), "key leaked into: {text}");
        assert!(!text.contains("SECRET"), "key leaked into: {text}");
    }
}

#[tokio::test]
async fn openai_responses_request_and_stream() {
    let server = Server::start(vec![
        Reply::sse(wire_body(
            "azure/azure-tool-call.1.chunks.txt",
            Protocol::OpenAiResponses,
        ))
        .split(80),
    ])
    .await;
    let m = model_at("openai/gpt-5", &server, "/v1");
    let got = collect_stream(m.stream(&weather_request()).await.unwrap())
        .await
        .unwrap();
    model_support::assert_matches(
        "responses",
        Protocol::OpenAiResponses,
        &got,
        &expected()["azure/azure-tool-call.1.chunks.txt"]["assembled"],
    );
    assert_eq!(got.finish_reason, FinishReason::ToolCalls);
    let r = &server.requests()[0];
    assert_eq!(r.path, "/v1/responses");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        r.json(),
        json!({
            "model": "gpt-5", "instructions": "You are terse.",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "Weather in SF?"}]}],
            "tools": [{"type": "function", "name": "weather", "description": "Get weather",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}],
            "tool_choice": "auto", "max_output_tokens": 256, "stream": true
        })
    );
}

#[tokio::test]
async fn azure_uses_api_key_header_and_resource_url_template() {
    let server = Server::start(vec![Reply::json(
        200,
        read_fixture("azure/azure-text.1.json"),
    )])
    .await;
    // The catalogue's azure base URL is https://${AZURE_RESOURCE_NAME}.openai.azure.com/openai/v1;
    // point it at the loopback server with the base-URL override variable.
    let url = format!("{}/openai/v1", server.url);
    let m = ModelBuilder::new("azure/gpt-4.1")
        .env(move |k| match k {
            "AZURE_API_KEY" => Some(KEY.to_owned()),
            "AZURE_BASE_URL" => Some(url.clone()),
            _ => None,
        })
        .http_options(fast())
        .build()
        .unwrap();
    let got = m.generate(&ModelRequest::user("hi")).await.unwrap();
    assert_eq!(got.text(), "Word");
    let r = &server.requests()[0];
    assert_eq!(r.path, "/openai/v1/responses");
    assert_eq!(r.header("api-key"), Some(KEY));
    assert!(r.header("authorization").is_none());
}

#[tokio::test]
async fn gemini_request_and_stream() {
    let server = Server::start(vec![
        Reply::sse(wire_body(
            "google/google-tool-call.chunks.txt",
            Protocol::Gemini,
        ))
        .split(100),
    ])
    .await;
    let m = model_at("google/gemini-2.5-flash", &server, "/v1beta");
    let got = collect_stream(m.stream(&weather_request()).await.unwrap())
        .await
        .unwrap();
    model_support::assert_matches(
        "gemini",
        Protocol::Gemini,
        &got,
        &expected()["google/google-tool-call.chunks.txt"]["assembled"],
    );
    let r = &server.requests()[0];
    assert_eq!(
        r.path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(r.header("x-goog-api-key"), Some(KEY));
    assert_eq!(
        r.json(),
        json!({
            "systemInstruction": {"parts": [{"text": "You are terse."}]},
            "contents": [{"role": "user", "parts": [{"text": "Weather in SF?"}]}],
            "tools": [{"functionDeclarations": [{"name": "weather", "description": "Get weather",
                "parametersJsonSchema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}]}],
            "toolConfig": {"functionCallingConfig": {"mode": "AUTO"}},
            "generationConfig": {"maxOutputTokens": 256}
        })
    );
}

#[tokio::test]
async fn cohere_request_and_generate() {
    let server = Server::start(vec![Reply::json(
        200,
        read_fixture("cohere/cohere-tool-call.json"),
    )])
    .await;
    let m = model_at("cohere/command-a-03-2025", &server, "/v2");
    let got = m.generate(&weather_request()).await.unwrap();
    model_support::assert_matches(
        "cohere",
        Protocol::Cohere,
        &got,
        &expected()["cohere/cohere-tool-call.json"]["assembled"],
    );
    let r = &server.requests()[0];
    assert_eq!(r.path, "/v2/chat");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let body = r.json();
    assert_eq!(
        body["messages"][0],
        json!({"role": "system", "content": "You are terse."})
    );
    assert_eq!(body["max_tokens"], 256);
    assert!(body.get("tool_choice").is_none(), "auto is the default");
}

#[tokio::test]
async fn ollama_native_request_and_ndjson_stream() {
    let mut reply = Reply::sse(read_fixture(
        "synthetic/synthetic-ollama-chat-tool-call.ndjson",
    ))
    .split(30);
    reply.headers = vec![("content-type".into(), "application/x-ndjson".into())];
    let server = Server::start(vec![reply]).await;
    let m = ModelBuilder::custom("ollama", "qwen3", Protocol::Ollama, &server.url)
        .http_options(fast())
        .build()
        .unwrap();
    let mut req = weather_request();
    req.sampling.temperature = Some(0.2);
    let got = collect_stream(m.stream(&req).await.unwrap()).await.unwrap();
    assert_eq!(
        got.tool_calls()[0].arguments,
        json!({"location": "San Francisco", "unit": "celsius"})
    );
    let r = &server.requests()[0];
    assert_eq!(r.path, "/api/chat");
    assert!(r.header("authorization").is_none());
    let body = r.json();
    assert_eq!(body["stream"], true);
    assert_eq!(
        body["options"],
        json!({"num_predict": 256, "temperature": 0.2})
    );
    assert_eq!(
        body["messages"][1],
        json!({"role": "user", "content": "Weather in SF?"})
    );
}

#[tokio::test]
async fn bedrock_converse_stream_over_http() {
    let mut reply = Reply::sse(read_fixture(
        "amazon-bedrock/derived-binary/amazon-bedrock-tool-call.1.eventstream.bin",
    ))
    .split(37);
    reply.headers = vec![
        (
            "content-type".into(),
            "application/vnd.amazon.eventstream".into(),
        ),
        ("x-amzn-requestid".into(), "rid-1".into()),
    ];
    let server = Server::start(vec![reply]).await;
    let m = model_at(
        "amazon-bedrock/anthropic.claude-3-haiku-20240307-v1:0",
        &server,
        "",
    );
    let got = collect_stream(m.stream(&weather_request()).await.unwrap())
        .await
        .unwrap();
    assert_eq!(
        got.tool_calls()[0].arguments,
        json!({"value": "Sparkle Day"})
    );
    let r = &server.requests()[0];
    assert_eq!(
        r.path,
        "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream"
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    let body = r.json();
    assert_eq!(body["system"], json!([{"text": "You are terse."}]));
    assert_eq!(body["inferenceConfig"], json!({"maxTokens": 256}));
    assert_eq!(body["toolConfig"]["toolChoice"], json!({"auto": {}}));
}

#[tokio::test]
async fn raw_events_escape_hatch() {
    let server = Server::start(vec![Reply::sse(wire_body(
        "mistral/mistral-text.chunks.txt",
        Protocol::OpenAiChat,
    ))])
    .await;
    let m = model_at("mistral/mistral-small-latest", &server, "/v1");
    let mut req = ModelRequest::user("hi");
    req.include_raw_events = true;
    let mut s = m.stream(&req).await.unwrap();
    let mut raw = 0;
    while let Some(ev) = s.next().await {
        if let StreamEvent::Raw { data, .. } = ev.unwrap() {
            assert!(data["choices"].is_array());
            raw += 1;
        }
    }
    assert!(raw >= 3);
    assert!(
        server.requests()[0].json().get("stream_options").is_none(),
        "mistral gets no stream_options"
    );
}

#[tokio::test]
async fn fallback_chain_moves_on_after_retryable_failure_only() {
    let down = Server::start(vec![Reply::json(
        503,
        r#"{"error":{"message":"unavailable"}}"#,
    )])
    .await;
    let up = Server::start(vec![Reply::json(200, read_fixture("groq/groq-text.json"))]).await;
    let opts = HttpOptions {
        max_retries: 0,
        ..fast()
    };
    let first: Arc<dyn LanguageModel> = Arc::new(
        ModelBuilder::new("groq/a")
            .env(|_| None)
            .api_key(KEY)
            .base_url(&down.url)
            .http_options(opts.clone())
            .build()
            .unwrap(),
    );
    let second: Arc<dyn LanguageModel> = Arc::new(
        ModelBuilder::new("groq/b")
            .env(|_| None)
            .api_key(KEY)
            .base_url(&up.url)
            .http_options(opts.clone())
            .build()
            .unwrap(),
    );
    let chain = miyabi::model::FallbackModel::new(vec![first, second.clone()]);
    let got = chain.generate(&ModelRequest::user("hi")).await.unwrap();
    assert!(got.text().starts_with("I'd like"));
    assert_eq!((down.requests().len(), up.requests().len()), (1, 1));

    let bad = Server::start(vec![Reply::json(401, r#"{"error":{"message":"bad key"}}"#)]).await;
    let first: Arc<dyn LanguageModel> = Arc::new(
        ModelBuilder::new("groq/a")
            .env(|_| None)
            .api_key(KEY)
            .base_url(&bad.url)
            .http_options(opts)
            .build()
            .unwrap(),
    );
    let chain = miyabi::model::FallbackModel::new(vec![first, second]);
    let err = chain.generate(&ModelRequest::user("hi")).await.unwrap_err();
    assert!(matches!(err, ModelError::Auth(_)), "{err:?}");
    assert_eq!(up.requests().len(), 1, "auth errors do not fall back");
}

#[tokio::test]
async fn azure_legacy_deployment_urls_with_api_version() {
    let server = Server::start(vec![
        Reply::json(200, read_fixture("groq/groq-text.json")),
        Reply::sse(wire_body(
            "groq/groq-tool-call.chunks.txt",
            Protocol::OpenAiChat,
        )),
        Reply::json(200, read_fixture("embeddings/openai-embeddings.json")),
    ])
    .await;
    let url = format!("{}/openai/v1", server.url);
    let env = move |k: &str| match k {
        "AZURE_API_KEY" => Some(KEY.to_owned()),
        "AZURE_BASE_URL" => Some(url.clone()),
        _ => None,
    };
    let m = ModelBuilder::new("azure/gpt-4o")
        .env(env.clone())
        .azure_deployment(Some("prod gpt4o"), "2024-10-21")
        .http_options(fast())
        .build()
        .unwrap();
    assert_eq!(m.resolved().protocol, Protocol::OpenAiChat);
    assert!(
        !m.generate(&ModelRequest::user("hi"))
            .await
            .unwrap()
            .text()
            .is_empty()
    );
    collect_stream(m.stream(&weather_request()).await.unwrap())
        .await
        .unwrap();
    // Embeddings through the same deployment URL scheme (deployment = the model part).
    let e = ModelBuilder::new("azure/text-embedding-3-small")
        .env(env)
        .azure_deployment(None, "2024-10-21")
        .http_options(fast())
        .build_embedding()
        .unwrap();
    use miyabi::model::EmbeddingModel;
    e.embed(&["a", "b"]).await.unwrap();
    let reqs = server.requests();
    assert_eq!(
        reqs[0].path,
        "/openai/deployments/prod%20gpt4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(reqs[1].path, reqs[0].path);
    assert_eq!(
        reqs[2].path,
        "/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21"
    );
    for r in &reqs {
        assert_eq!(r.header("api-key"), Some(KEY));
        assert!(r.header("authorization").is_none());
    }
    assert_eq!(reqs[1].json()["stream"], json!(true));
}

#[tokio::test]
async fn connect_timeout_of_the_options_is_honoured() {
    // A listener with a backlog of 1 that never accepts: once its queue is full the kernel
    // drops new SYNs, so a connect hangs until the client's connect timeout.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(s)) => fillers.push(s),
            _ => break,
        }
    }
    let m = ModelBuilder::new("openai/gpt-4.1")
        .env(|_| None)
        .api_key(KEY)
        .base_url(format!("http://{addr}/v1"))
        .http_options(HttpOptions {
            connect_timeout: Duration::from_millis(300),
            first_byte_timeout: Duration::from_secs(30),
            total_timeout: Duration::from_secs(30),
            max_retries: 0,
            ..HttpOptions::default()
        })
        .build()
        .unwrap();
    let started = std::time::Instant::now();
    let err = m.generate(&ModelRequest::user("hi")).await.unwrap_err();
    let took = started.elapsed();
    assert!(
        matches!(
            err,
            ModelError::Timeout {
                kind: TimeoutKind::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    // The error kind shows the connect timeout fired (no bound on the time: shared hosts).
    eprintln!("connect timeout reported after {took:?}");
    drop(fillers);
    drop(listener);
}
