//! `collect_stream` returns what `generate` returns for the same answer: the same content, the
//! same usage and the same `cost_usd` (from the catalogue's prices). Recordings of one answer
//! given both streamed and whole are replayed over loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod model_support;

use std::time::Duration;

use futures::StreamExt;
use miyabi::model::{
    HttpOptions, LanguageModel, Model, ModelBuilder, ModelRequest, Protocol, StreamEvent,
    collect_stream,
};
use model_support::{Reply, Server, read_fixture, wire_body};

fn model(spec: &str, server: &Server, path: &str) -> Model {
    ModelBuilder::new(spec)
        .env(|_| None)
        .api_key("sk-test-0123456789")
        .base_url(format!("{}{path}", server.url))
        .http_options(HttpOptions {
            first_byte_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(5),
            max_retries: 0,
            ..HttpOptions::default()
        })
        .build()
        .unwrap()
}

struct Case {
    spec: &'static str,
    path: &'static str,
    stream: Reply,
    whole: Reply,
}

fn cases() -> Vec<Case> {
    let sse = |rel: &str, p: Protocol| Reply::sse(wire_body(rel, p)).split(211);
    let json = |rel: &str| Reply::json(200, read_fixture(rel));
    let mut bedrock = Reply::sse(read_fixture(
        "amazon-bedrock/derived-binary/amazon-bedrock-tool-no-args.eventstream.bin",
    ))
    .split(61);
    bedrock.headers = vec![(
        "content-type".into(),
        "application/vnd.amazon.eventstream".into(),
    )];
    vec![
        Case {
            spec: "mistral/mistral-large-latest",
            path: "/v1",
            stream: sse("mistral/mistral-tool-call.chunks.txt", Protocol::OpenAiChat),
            whole: json("mistral/mistral-tool-call.json"),
        },
        Case {
            spec: "alibaba/qwen-plus",
            path: "/v1",
            stream: sse("alibaba/alibaba-tool-call.chunks.txt", Protocol::OpenAiChat),
            whole: json("alibaba/alibaba-tool-call.json"),
        },
        Case {
            spec: "azure/gpt-4o",
            path: "/openai/v1",
            stream: sse(
                "azure/azure-tool-call.1.chunks.txt",
                Protocol::OpenAiResponses,
            ),
            whole: json("azure/azure-tool-call.1.json"),
        },
        Case {
            spec: "openai/gpt-4.1",
            path: "/v1",
            stream: sse(
                "openai/responses/openai-custom-tool.1.chunks.txt",
                Protocol::OpenAiResponses,
            ),
            whole: json("openai/responses/openai-custom-tool.1.json"),
        },
        Case {
            spec: "cohere/command-a-03-2025",
            path: "/v2",
            stream: sse("cohere/cohere-text.chunks.txt", Protocol::Cohere),
            whole: json("cohere/cohere-text.json"),
        },
        Case {
            spec: "amazon-bedrock/anthropic.claude-haiku-4-5-20251001-v1:0",
            path: "",
            stream: bedrock,
            whole: json("amazon-bedrock/amazon-bedrock-tool-no-args.json"),
        },
    ]
}

#[tokio::test]
async fn collect_stream_reports_the_usage_and_cost_generate_reports() {
    for case in cases() {
        let streamed = Server::start(vec![case.stream]).await;
        let whole = Server::start(vec![case.whole]).await;
        let req = ModelRequest::user("hi");
        let g = model(case.spec, &whole, case.path)
            .generate(&req)
            .await
            .unwrap();
        let s = collect_stream(
            model(case.spec, &streamed, case.path)
                .stream(&req)
                .await
                .unwrap(),
        )
        .await
        .unwrap();
        let spec = case.spec;
        assert!(g.usage.input_tokens > 0, "{spec}: {g:?}");
        assert_eq!(s.usage, g.usage, "{spec}: usage");
        assert!(
            g.cost_usd.is_some_and(|c| c > 0.0),
            "{spec}: generate prices the answer: {g:?}"
        );
        assert_eq!(s.cost_usd, g.cost_usd, "{spec}: cost_usd");
        // (The two recordings carry different call ids.)
        let calls = |r: &miyabi::model::ModelResponse| {
            r.tool_calls()
                .into_iter()
                .map(|c| (c.name.clone(), c.arguments.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(calls(&s), calls(&g), "{spec}: tool calls");
        assert_eq!(s.text(), g.text(), "{spec}: text");
    }
}

#[tokio::test]
async fn every_usage_event_is_followed_by_its_cost() {
    let server = Server::start(vec![Reply::sse(wire_body(
        "mistral/mistral-tool-call.chunks.txt",
        Protocol::OpenAiChat,
    ))])
    .await;
    let m = model("mistral/mistral-large-latest", &server, "/v1");
    let events: Vec<StreamEvent> = m
        .stream(&ModelRequest::user("hi"))
        .await
        .unwrap()
        .map(Result::unwrap)
        .collect()
        .await;
    let at = events
        .iter()
        .position(|e| matches!(e, StreamEvent::Usage { .. }))
        .expect("a usage event");
    let StreamEvent::Usage { usage } = &events[at] else {
        unreachable!()
    };
    // mistral-large-latest: $0.5 / $1.5 per million input / output tokens.
    let want = usage.input_tokens as f64 * 0.5 / 1e6 + usage.output_tokens as f64 * 1.5 / 1e6;
    match &events[at + 1] {
        StreamEvent::Cost { usd } => assert!((usd - want).abs() < 1e-12, "{usd} vs {want}"),
        other => panic!("expected the cost after the usage, got {other:?}"),
    }

    // A model without prices sends no cost event.
    let server = Server::start(vec![Reply::sse(wire_body(
        "mistral/mistral-tool-call.chunks.txt",
        Protocol::OpenAiChat,
    ))])
    .await;
    let m = ModelBuilder::custom(
        "local",
        "m",
        Protocol::OpenAiChat,
        &format!("{}/v1", server.url),
    )
    .build()
    .unwrap();
    let got = collect_stream(m.stream(&ModelRequest::user("hi")).await.unwrap())
        .await
        .unwrap();
    assert_eq!(got.cost_usd, None);
    assert!(got.usage.input_tokens > 0);
}
