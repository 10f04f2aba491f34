//! Embeddings against a loopback server answering with the documented response shapes
//! (tests/fixtures/embeddings, constructed): the exact request per provider family, vectors in
//! input order, usage and cost, batching, retries and typed errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod model_support;

use std::time::Duration;

use miyabi::model::{
    EmbeddingInput, EmbeddingModel, EmbeddingRequest, HttpOptions, ModelBuilder, ModelError,
    Protocol,
};
use model_support::{Reply, Server, read_fixture};
use serde_json::json;

const KEY: &str = "sk-embed-SECRET-42";

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

fn at(spec: &str, server: &Server, path: &str) -> miyabi::model::Embedder {
    ModelBuilder::new(spec)
        .env(|_| None)
        .api_key(KEY)
        .base_url(format!("{}{path}", server.url))
        .http_options(fast())
        .build_embedding()
        .unwrap()
}

#[tokio::test]
async fn openai_embeddings_exact_request_order_usage_and_cost() {
    let server = Server::start(vec![Reply::json(
        200,
        read_fixture("embeddings/openai-embeddings.json"),
    )])
    .await;
    let e = at("openai/text-embedding-3-small", &server, "/v1");
    let out = e
        .embed_request(&EmbeddingRequest::new(["first text", "second"]).with_dimensions(4))
        .await
        .unwrap();
    // Vectors come back in input order although the body lists index 1 first.
    assert_eq!(
        out.vectors,
        vec![
            vec![-0.0069, 0.0031, -0.0102, 0.0275],
            vec![0.0125, -0.0071, 0.0433, -0.0218]
        ]
    );
    assert_eq!(out.usage.unwrap().input_tokens, 9);
    // Catalogue price of text-embedding-3-small: $0.02 per million input tokens.
    let cost = out.cost_usd.unwrap();
    assert!((cost - 9.0 * 0.02 / 1e6).abs() < 1e-15, "{cost}");
    let r = &server.requests()[0];
    assert_eq!(r.path, "/v1/embeddings");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        r.json(),
        json!({"model": "text-embedding-3-small", "input": ["first text", "second"],
               "encoding_format": "float", "dimensions": 4})
    );
}

#[tokio::test]
async fn gemini_batch_and_single_requests() {
    let server = Server::start(vec![
        Reply::json(
            200,
            read_fixture("embeddings/gemini-batch-embed-contents.json"),
        ),
        Reply::json(200, read_fixture("embeddings/gemini-embed-content.json")),
    ])
    .await;
    let e = at("google/gemini-embedding-001", &server, "/v1beta");
    let out = e
        .embed_request(
            &EmbeddingRequest::new(["a", "b"])
                .with_input(EmbeddingInput::Query)
                .with_dimensions(3),
        )
        .await
        .unwrap();
    assert_eq!(
        out.vectors,
        vec![vec![0.0132, -0.0098, 0.0421], vec![-0.0217, 0.0054, 0.0188]]
    );
    assert_eq!(out.usage, None, "Gemini reports no token usage");
    let one = e.embed(&["only"]).await.unwrap();
    assert_eq!(one.vectors, vec![vec![0.0071, 0.0263, -0.0315]]);

    let reqs = server.requests();
    assert_eq!(
        reqs[0].path,
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(reqs[0].header("x-goog-api-key"), Some(KEY));
    assert_eq!(
        reqs[0].json(),
        json!({"requests": [
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]},
             "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 3},
            {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "b"}]},
             "taskType": "RETRIEVAL_QUERY", "outputDimensionality": 3}
        ]})
    );
    assert_eq!(
        reqs[1].path,
        "/v1beta/models/gemini-embedding-001:embedContent"
    );
    assert_eq!(
        reqs[1].json(),
        json!({"content": {"parts": [{"text": "only"}]}, "taskType": "RETRIEVAL_DOCUMENT"})
    );
}

#[tokio::test]
async fn cohere_v2_embed_request_and_billed_units() {
    let server = Server::start(vec![Reply::json(
        200,
        read_fixture("embeddings/cohere-embed-v2.json"),
    )])
    .await;
    let e = at("cohere/embed-v4.0", &server, "/v2");
    let out = e.embed(&["hello", "goodbye"]).await.unwrap();
    assert_eq!(out.vectors.len(), 2);
    assert_eq!(out.vectors[1], vec![-0.0094, 0.0201, 0.0337, -0.0412]);
    assert_eq!(out.usage.unwrap().input_tokens, 2);
    let r = &server.requests()[0];
    assert_eq!(r.path, "/v2/embed");
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(
        r.json(),
        json!({"model": "embed-v4.0", "texts": ["hello", "goodbye"],
               "input_type": "search_document", "embedding_types": ["float"]})
    );
}

#[tokio::test]
async fn ollama_native_embed() {
    let server = Server::start(vec![Reply::json(
        200,
        read_fixture("embeddings/ollama-embed.json"),
    )])
    .await;
    let e = ModelBuilder::custom("ollama", "nomic-embed-text", Protocol::Ollama, &server.url)
        .http_options(fast())
        .build_embedding()
        .unwrap();
    let out = e.embed(&["x", "y"]).await.unwrap();
    assert_eq!(out.vectors[0], vec![0.0101, -0.0419, 0.0087]);
    assert_eq!(out.usage.unwrap().input_tokens, 8);
    let r = &server.requests()[0];
    assert_eq!(r.path, "/api/embed");
    assert_eq!(
        r.json(),
        json!({"model": "nomic-embed-text", "input": ["x", "y"]})
    );
}

#[tokio::test]
async fn long_inputs_go_in_batches_in_order_with_summed_usage() {
    let body = |a: f32, b: f32, tokens: u64| {
        json!({"object": "list", "model": "m", "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
               "data": [{"index": 0, "embedding": [a]}, {"index": 1, "embedding": [b]}]})
        .to_string()
    };
    let server = Server::start(vec![
        Reply::json(200, body(1.0, 2.0, 3)),
        Reply::json(200, body(3.0, 4.0, 5)),
        Reply::json(
            200,
            json!({"data": [{"index": 0, "embedding": [5.0]}], "usage": {"prompt_tokens": 1}})
                .to_string(),
        ),
    ])
    .await;
    let e = at("openai/text-embedding-3-small", &server, "/v1").with_max_batch(2);
    let out = e.embed(&["a", "b", "c", "d", "e"]).await.unwrap();
    assert_eq!(
        out.vectors,
        vec![vec![1.0], vec![2.0], vec![3.0], vec![4.0], vec![5.0]]
    );
    assert_eq!(out.usage.unwrap().input_tokens, 9);
    let inputs: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.json()["input"].clone())
        .collect();
    assert_eq!(
        inputs,
        vec![json!(["a", "b"]), json!(["c", "d"]), json!(["e"])]
    );
}

#[tokio::test]
async fn retries_then_typed_errors() {
    let server = Server::start(vec![
        Reply::json(
            429,
            r#"{"error":{"message":"slow down","type":"rate_limit"}}"#,
        )
        .header("retry-after-ms", "10"),
        Reply::json(200, read_fixture("embeddings/openai-embeddings.json")),
        Reply::json(
            400,
            r#"{"error":{"message":"input too long","type":"invalid_request_error"}}"#,
        ),
        // A body whose vector count does not match the texts.
        Reply::json(
            200,
            r#"{"data":[{"index":0,"embedding":[1.0]}],"usage":{"prompt_tokens":1}}"#,
        ),
        Reply::json(200, r#"{"data":[{"index":0,"embedding":["x"]}]}"#),
    ])
    .await;
    let e = at("openai/text-embedding-3-small", &server, "/v1");
    assert_eq!(e.embed(&["a", "b"]).await.unwrap().vectors.len(), 2);
    assert_eq!(server.requests().len(), 2, "429 then success");
    let err = e.embed(&["a"]).await.unwrap_err();
    assert!(matches!(err, ModelError::InvalidRequest(_)), "{err:?}");
    assert!(err.to_string().contains("input too long"));
    let err = e.embed(&["a", "b"]).await.unwrap_err();
    assert!(matches!(err, ModelError::Decode(_)), "{err:?}");
    assert!(err.to_string().contains("1 vectors for 2 texts"), "{err}");
    let err = e.embed(&["a"]).await.unwrap_err();
    assert!(matches!(err, ModelError::Decode(_)), "{err:?}");
    assert!(!format!("{err:?} {e:?}").contains(KEY));
}

#[test]
fn resolution_from_the_catalogue() {
    // Through the crate-root entry point: either a key is set in this environment, or the error
    // says which variable to set.
    match miyabi::embedding("openai/text-embedding-3-small") {
        Ok(e) => assert_eq!(e.resolved().base_url, "https://api.openai.com/v1"),
        Err(err) => assert!(err.to_string().contains("OPENAI_API_KEY"), "{err}"),
    }
    let e = ModelBuilder::new("openai/text-embedding-3-small")
        .env(|k| (k == "OPENAI_API_KEY").then(|| KEY.to_owned()))
        .build_embedding()
        .unwrap();
    let r = e.resolved();
    assert_eq!(r.base_url, "https://api.openai.com/v1");
    assert_eq!(r.info.as_ref().unwrap().max_output_tokens, Some(1536));
    assert!(!format!("{e:?}").contains(KEY));
    let err = ModelBuilder::new("anthropic/claude-sonnet-4-5")
        .env(|k| (k == "ANTHROPIC_API_KEY").then(|| "k".to_owned()))
        .build_embedding()
        .unwrap_err();
    assert!(matches!(err, ModelError::Unsupported(_)), "{err:?}");
    assert!(miyabi::embedding("no-such-provider/x").is_err());
}
