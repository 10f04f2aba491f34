//! Embeddings: one object-safe [`EmbeddingModel`] trait and [`Embedder`], which resolves
//! `"provider/model"` like [`model`](super::model) and speaks the provider's embeddings API:
//! OpenAI-compatible `POST {base}/embeddings` (OpenAI, Azure v1, Mistral, and the other
//! compatible providers), Gemini `:embedContent` / `:batchEmbedContents`, Cohere v2
//! `POST {base}/embed` and Ollama `POST {base}/api/embed`. Long inputs are sent in batches of the
//! provider's limit, in order.
//!
//! ```no_run
//! # async fn demo() -> Result<(), miyabi_model::ModelError> {
//! use miyabi_model::EmbeddingModel;
//! let e = miyabi_model::embedding("openai/text-embedding-3-small")?; // key from OPENAI_API_KEY
//! let out = e.embed(&["first text", "second text"]).await?;
//! assert_eq!(out.vectors.len(), 2);
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::adapters::{Target, adapter, merge_options, parse_json, to_body};
use super::catalog::Protocol;
use super::error::ModelError;
use super::http::{self, CallSite, HttpClient, HttpOptions, WireRequest};
use super::resolve::{ModelBuilder, Resolved};
use super::types::Usage;

/// What the texts are for, where the provider distinguishes (Gemini `taskType`, Cohere
/// `input_type`); ignored by OpenAI-compatible APIs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EmbeddingInput {
    /// Documents to store and search (the default).
    Document,
    /// Search queries against stored documents.
    Query,
    /// Texts to classify.
    Classification,
    /// Texts to cluster.
    Clustering,
}

/// An embeddings request.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingRequest {
    /// The texts, one vector each.
    pub texts: Vec<String>,
    /// Requested vector size, where the model supports shortening (OpenAI `dimensions`, Gemini
    /// `outputDimensionality`, Cohere `output_dimension`).
    pub dimensions: Option<u32>,
    /// What the texts are for.
    pub input: EmbeddingInput,
    /// Extra body fields, merged into every request body (they win over Miyabi's).
    pub provider_options: Option<Value>,
}

impl EmbeddingRequest {
    /// A request for these texts.
    pub fn new<S: Into<String>>(texts: impl IntoIterator<Item = S>) -> Self {
        Self {
            texts: texts.into_iter().map(Into::into).collect(),
            dimensions: None,
            input: EmbeddingInput::Document,
            provider_options: None,
        }
    }

    /// Sets the vector size.
    pub fn with_dimensions(mut self, dimensions: u32) -> Self {
        self.dimensions = Some(dimensions);
        self
    }

    /// Sets what the texts are for.
    pub fn with_input(mut self, input: EmbeddingInput) -> Self {
        self.input = input;
        self
    }
}

/// The vectors, in the order of the texts, with usage and cost where the provider reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// One vector per text.
    pub vectors: Vec<Vec<f32>>,
    /// Tokens used (`input_tokens`), summed over batches; `None` when the provider does not say
    /// (Gemini's API).
    pub usage: Option<Usage>,
    /// Cost in USD from the catalogue's input price, when usage and price are known.
    pub cost_usd: Option<f64>,
    /// The provider's request id (of the last batch).
    pub request_id: Option<String>,
}

/// Anything that turns texts into vectors. Object-safe.
#[async_trait]
pub trait EmbeddingModel: Send + Sync {
    /// Embeds a request.
    async fn embed_request(&self, req: &EmbeddingRequest) -> Result<Embeddings, ModelError>;

    /// Embeds texts as documents, at the model's default size.
    async fn embed(&self, texts: &[&str]) -> Result<Embeddings, ModelError> {
        self.embed_request(&EmbeddingRequest::new(texts.iter().copied()))
            .await
    }
}

/// Resolves `"provider/model"` to an embedding model with the catalogue and the environment.
pub fn embedding(spec: &str) -> Result<Embedder, ModelError> {
    ModelBuilder::new(spec).build_embedding()
}

/// The embeddings API family of a protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    OpenAi,
    Gemini,
    Cohere,
    Ollama,
}

impl Family {
    fn of(protocol: Protocol) -> Option<Self> {
        match protocol {
            Protocol::OpenAiChat | Protocol::OpenAiResponses => Some(Self::OpenAi),
            Protocol::Gemini => Some(Self::Gemini),
            Protocol::Cohere => Some(Self::Cohere),
            Protocol::Ollama => Some(Self::Ollama),
            _ => None,
        }
    }

    /// Most texts in one request (the providers' documented limits).
    fn max_batch(self) -> usize {
        match self {
            Self::OpenAi => 2048,
            Self::Gemini => 100,
            Self::Cohere => 96,
            Self::Ollama => 512,
        }
    }
}

struct Inner {
    resolved: Resolved,
    family: Family,
    client: HttpClient,
    options: HttpOptions,
    max_batch: usize,
}

/// An embedding model reachable over HTTP. Cheap to clone.
#[derive(Clone)]
pub struct Embedder {
    inner: Arc<Inner>,
}

impl fmt::Debug for Embedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Embedder")
            .field("resolved", &self.inner.resolved)
            .field("max_batch", &self.inner.max_batch)
            .finish()
    }
}

impl ModelBuilder {
    /// Resolves everything and returns an embedding model (OpenAI-compatible, Gemini, Cohere or
    /// Ollama protocol families; others are [`ModelError::Unsupported`]).
    pub fn build_embedding(self) -> Result<Embedder, ModelError> {
        let resolved = self.resolve()?;
        let Some(family) = Family::of(resolved.protocol) else {
            return Err(ModelError::Unsupported(format!(
                "embeddings for {}/{} (protocol {}): Miyabi speaks the OpenAI-compatible, Gemini (API key), Cohere and Ollama embeddings APIs",
                resolved.provider, resolved.model, resolved.protocol
            )));
        };
        let (client, options) = self.client_and_options()?;
        Ok(Embedder {
            inner: Arc::new(Inner {
                resolved,
                family,
                client,
                options,
                max_batch: family.max_batch(),
            }),
        })
    }
}

impl Embedder {
    /// What the model resolved to.
    pub fn resolved(&self) -> &Resolved {
        &self.inner.resolved
    }

    /// Sends at most `n` texts per request (default: the provider's limit).
    pub fn with_max_batch(self, n: usize) -> Self {
        let inner = Inner {
            resolved: self.inner.resolved.clone(),
            family: self.inner.family,
            client: self.inner.client.clone(),
            options: self.inner.options.clone(),
            max_batch: n.max(1),
        };
        Self {
            inner: Arc::new(inner),
        }
    }

    fn target(&self) -> Target {
        let r = &self.inner.resolved;
        Target {
            provider: r.provider.clone(),
            model: r.model.clone(),
            base_url: r.base_url.clone(),
            max_output_tokens: None,
        }
    }

    async fn batch(
        &self,
        req: &EmbeddingRequest,
        texts: &[String],
    ) -> Result<(Vec<Vec<f32>>, Option<u64>, Option<String>), ModelError> {
        let r = &self.inner.resolved;
        let opts = &self.inner.options;
        let site = CallSite {
            provider: &r.provider,
            model: &r.model,
            secrets: r.secrets(),
        };
        let t = self.target();
        let mut wire = build(self.inner.family, &t, req, texts);
        r.add_query(&mut wire);
        let auth = r.auth_headers()?;
        let deadline = super::call::deadline_after(opts.total_timeout);
        let resp = http::send(
            &self.inner.client,
            opts,
            site,
            &wire,
            http::RequestAuth {
                headers: &auth,
                sign: None,
            },
            adapter(r.protocol).parse_error(),
            deadline,
        )
        .await?;
        let request_id = http::request_id(resp.headers());
        let body = http::read_body(resp, opts, site, deadline).await?;
        let (vectors, tokens) = parse(self.inner.family, &t, &body)?;
        if vectors.len() != texts.len() {
            return Err(ModelError::decode(
                &r.provider,
                &r.model,
                format!("{} vectors for {} texts", vectors.len(), texts.len()),
            ));
        }
        Ok((vectors, tokens, request_id))
    }
}

#[async_trait]
impl EmbeddingModel for Embedder {
    async fn embed_request(&self, req: &EmbeddingRequest) -> Result<Embeddings, ModelError> {
        let mut out = Embeddings {
            vectors: Vec::with_capacity(req.texts.len()),
            usage: None,
            cost_usd: None,
            request_id: None,
        };
        let mut tokens: Option<u64> = None;
        let mut all_reported = true;
        for texts in req.texts.chunks(self.inner.max_batch) {
            let (vectors, used, id) = self
                .batch(req, texts)
                .await
                .map_err(|e| e.redacted(self.inner.resolved.secrets()))?;
            out.vectors.extend(vectors);
            match used {
                Some(n) => tokens = Some(tokens.unwrap_or(0).saturating_add(n)),
                None => all_reported = false,
            }
            out.request_id = id.or(out.request_id);
        }
        if let Some(n) = tokens.filter(|_| all_reported) {
            let usage = Usage {
                input_tokens: n,
                ..Usage::default()
            };
            out.cost_usd = self
                .inner
                .resolved
                .info
                .as_ref()
                .and_then(|m| m.pricing)
                .and_then(|p| {
                    p.cost(&usage)
                        .or_else(|| p.input.map(|i| n as f64 * i / 1e6))
                });
            out.usage = Some(usage);
        }
        Ok(out)
    }
}

fn gemini_task(input: EmbeddingInput) -> &'static str {
    match input {
        EmbeddingInput::Document => "RETRIEVAL_DOCUMENT",
        EmbeddingInput::Query => "RETRIEVAL_QUERY",
        EmbeddingInput::Classification => "CLASSIFICATION",
        EmbeddingInput::Clustering => "CLUSTERING",
    }
}

fn cohere_input(input: EmbeddingInput) -> &'static str {
    match input {
        EmbeddingInput::Document => "search_document",
        EmbeddingInput::Query => "search_query",
        EmbeddingInput::Classification => "classification",
        EmbeddingInput::Clustering => "clustering",
    }
}

/// The request for one batch.
fn build(family: Family, t: &Target, req: &EmbeddingRequest, texts: &[String]) -> WireRequest {
    let json_header = vec![("content-type".to_owned(), "application/json".to_owned())];
    let (url, mut body) = match family {
        Family::OpenAi => {
            let mut body = json!({"model": t.model, "input": texts, "encoding_format": "float"});
            if let Some(d) = req.dimensions {
                body["dimensions"] = json!(d);
            }
            (format!("{}/embeddings", t.base_url), body)
        }
        Family::Gemini => {
            let model = t.model.strip_prefix("models/").unwrap_or(&t.model);
            let one = |text: &String| {
                let mut r = json!({
                    "content": {"parts": [{"text": text}]},
                    "taskType": gemini_task(req.input),
                });
                if let Some(d) = req.dimensions {
                    r["outputDimensionality"] = json!(d);
                }
                r
            };
            if let [text] = texts {
                (
                    format!("{}/models/{model}:embedContent", t.base_url),
                    one(text),
                )
            } else {
                let requests: Vec<Value> = texts
                    .iter()
                    .map(|text| {
                        let mut r = one(text);
                        r["model"] = json!(format!("models/{model}"));
                        r
                    })
                    .collect();
                (
                    format!("{}/models/{model}:batchEmbedContents", t.base_url),
                    json!({"requests": requests}),
                )
            }
        }
        Family::Cohere => {
            let mut body = json!({
                "model": t.model,
                "texts": texts,
                "input_type": cohere_input(req.input),
                "embedding_types": ["float"],
            });
            if let Some(d) = req.dimensions {
                body["output_dimension"] = json!(d);
            }
            (format!("{}/embed", t.base_url), body)
        }
        Family::Ollama => {
            let mut body = json!({"model": t.model, "input": texts});
            if let Some(d) = req.dimensions {
                body["dimensions"] = json!(d);
            }
            (format!("{}/api/embed", t.base_url), body)
        }
    };
    merge_options(&mut body, &req.provider_options);
    WireRequest {
        url,
        headers: json_header,
        body: to_body(&body),
    }
}

fn vector(t: &Target, v: &Value) -> Result<Vec<f32>, ModelError> {
    let bad = || {
        ModelError::decode(
            &t.provider,
            &t.model,
            "an embedding is not a list of numbers",
        )
    };
    v.as_array()
        .ok_or_else(bad)?
        .iter()
        .map(|x| x.as_f64().map(|f| f as f32).ok_or_else(bad))
        .collect()
}

fn vectors<'a>(
    t: &Target,
    items: impl Iterator<Item = &'a Value>,
) -> Result<Vec<Vec<f32>>, ModelError> {
    items.map(|v| vector(t, v)).collect()
}

/// Vectors and input tokens of one response body.
fn parse(
    family: Family,
    t: &Target,
    body: &[u8],
) -> Result<(Vec<Vec<f32>>, Option<u64>), ModelError> {
    let v: Value = parse_json(t, body)?;
    let missing =
        |what: &str| ModelError::decode(&t.provider, &t.model, format!("response has no {what}"));
    match family {
        Family::OpenAi => {
            let data = v["data"].as_array().ok_or_else(|| missing("data"))?;
            let mut items: Vec<(u64, &Value)> = data
                .iter()
                .enumerate()
                .map(|(i, d)| (d["index"].as_u64().unwrap_or(i as u64), &d["embedding"]))
                .collect();
            items.sort_by_key(|(i, _)| *i);
            let tokens = v["usage"]["prompt_tokens"]
                .as_u64()
                .or_else(|| v["usage"]["total_tokens"].as_u64());
            Ok((vectors(t, items.into_iter().map(|(_, e)| e))?, tokens))
        }
        Family::Gemini => {
            let list = if let Some(one) = v.get("embedding") {
                vec![&one["values"]]
            } else {
                v["embeddings"]
                    .as_array()
                    .ok_or_else(|| missing("embeddings"))?
                    .iter()
                    .map(|e| &e["values"])
                    .collect()
            };
            Ok((vectors(t, list.into_iter())?, None))
        }
        Family::Cohere => {
            let e = &v["embeddings"];
            // v2: {"embeddings": {"float": [[...]]}}; v1-style: {"embeddings": [[...]]}.
            let list = e["float"]
                .as_array()
                .or_else(|| e.as_array())
                .ok_or_else(|| missing("float embeddings"))?;
            let tokens = v["meta"]["billed_units"]["input_tokens"].as_u64();
            Ok((vectors(t, list.iter())?, tokens))
        }
        Family::Ollama => {
            let list = v["embeddings"]
                .as_array()
                .ok_or_else(|| missing("embeddings"))?;
            Ok((vectors(t, list.iter())?, v["prompt_eval_count"].as_u64()))
        }
    }
}
