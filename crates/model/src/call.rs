//! The call: the [`LanguageModel`] trait, and the [`Model`] that sends a request through its
//! protocol adapter and the HTTP layer, for a whole answer or a stream of events.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use futures::StreamExt;

use super::adapters::{Adapter, adapter};
use super::decode::{ResponseCollector, StreamDecoder, StructuredToolUnwrap};
use super::error::ModelError;
use super::http::{self, CallSite, HttpClient, HttpOptions};
use super::redact::Secrets;
use super::resolve::{ModelBuilder, Resolved};
use super::types::{EventStream, ModelRequest, ModelResponse, StreamEvent};

/// A language model: anything that answers a [`ModelRequest`]. Object-safe, so agents and the
/// bindings can hold `Arc<dyn LanguageModel>`.
#[async_trait]
pub trait LanguageModel: Send + Sync {
    /// One complete answer.
    async fn generate(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError>;
    /// A stream of normalized events.
    async fn stream(&self, req: &ModelRequest) -> Result<EventStream, ModelError>;
}

struct Inner {
    resolved: Resolved,
    client: HttpClient,
    options: HttpOptions,
}

/// A model reachable over HTTP through a protocol adapter. Cheap to clone.
#[derive(Clone)]
pub struct Model {
    inner: Arc<Inner>,
}

impl fmt::Debug for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Model")
            .field("resolved", &self.inner.resolved)
            .finish()
    }
}

impl Model {
    /// A model over a resolved configuration, its HTTP client and options.
    pub(super) fn new(resolved: Resolved, client: HttpClient, options: HttpOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                resolved,
                client,
                options,
            }),
        }
    }

    /// A builder for `"provider/model"`.
    pub fn builder(spec: impl Into<String>) -> ModelBuilder {
        ModelBuilder::new(spec)
    }

    /// What the model resolved to.
    pub fn resolved(&self) -> &Resolved {
        &self.inner.resolved
    }

    /// `"provider/model"`.
    pub fn id(&self) -> String {
        format!(
            "{}/{}",
            self.inner.resolved.provider, self.inner.resolved.model
        )
    }

    fn adapter(&self) -> &'static dyn Adapter {
        adapter(self.inner.resolved.protocol)
    }

    fn site<'a>(&'a self, secrets: &'a Secrets) -> CallSite<'a> {
        CallSite {
            provider: &self.inner.resolved.provider,
            model: &self.inner.resolved.model,
            secrets,
        }
    }

    fn price(&self, resp: &mut ModelResponse) {
        if let Some(p) = self.inner.resolved.info.as_ref().and_then(|m| m.pricing) {
            resp.cost_usd = p.cost(&resp.usage);
        }
    }
}

#[async_trait]
impl LanguageModel for Model {
    async fn generate(&self, req: &ModelRequest) -> Result<ModelResponse, ModelError> {
        let r = &self.inner.resolved;
        let mut secrets = r.secrets.clone();
        self.generate_with(req, &mut secrets)
            .await
            .map_err(|e| e.redacted(&secrets))
    }

    async fn stream(&self, req: &ModelRequest) -> Result<EventStream, ModelError> {
        let r = &self.inner.resolved;
        let mut secrets = r.secrets.clone();
        self.stream_with(req, &mut secrets)
            .await
            .map_err(|e| e.redacted(&secrets))
    }
}

impl Model {
    /// Builds the wire request (streamed or not), adds its authentication and sends it (with
    /// the HTTP layer's retries); returns the response, the call's deadline and the target.
    /// `secrets` grows by the access token when one is fetched for the call.
    async fn send(
        &self,
        req: &ModelRequest,
        stream: bool,
        secrets: &mut Secrets,
    ) -> Result<(reqwest::Response, Instant, super::adapters::Target), ModelError> {
        let r = &self.inner.resolved;
        let opts = &self.inner.options;
        let adapter = self.adapter();
        let target = r.target();
        let mut wire = adapter
            .build(&target, req, stream)
            .map_err(|e| e.with_target(&r.provider, &r.model))?;
        r.add_query(&mut wire);
        let mut auth = r.auth_headers()?;
        *secrets = r
            .add_google_token(&self.inner.client, opts, &mut auth)
            .await?;
        let deadline = deadline_after(opts.total_timeout);
        let resp = http::send(
            &self.inner.client,
            opts,
            self.site(secrets),
            &wire,
            http::RequestAuth {
                headers: &auth,
                sign: r
                    .signer
                    .is_some()
                    .then_some(&(|w: &http::WireRequest| r.sign_headers(w)) as _),
            },
            adapter.parse_error(),
            deadline,
        )
        .await?;
        Ok((resp, deadline, target))
    }

    /// `generate`; `secrets` grows by the access token when one is fetched for the call.
    async fn generate_with(
        &self,
        req: &ModelRequest,
        secrets: &mut Secrets,
    ) -> Result<ModelResponse, ModelError> {
        let r = &self.inner.resolved;
        let opts = &self.inner.options;
        let adapter = self.adapter();
        let (resp, deadline, target) = self.send(req, false, secrets).await?;
        let site = self.site(secrets);
        let request_id = http::request_id(resp.headers());
        let body = http::read_body(resp, opts, site, deadline).await?;
        let mut out = adapter
            .parse_response(&target, &body)
            .map_err(|e| with_request_id(e.with_target(&r.provider, &r.model), &request_id))?;
        if req.response_format.is_some() && !adapter.native_structured_output() {
            StructuredToolUnwrap::apply_response(&mut out);
        }
        out.request_id = request_id;
        self.price(&mut out);
        tracing::debug!(provider = %r.provider, model = %r.model, input = out.usage.input_tokens, output = out.usage.output_tokens, "model response");
        Ok(out)
    }

    /// `stream`; `secrets` grows by the access token when one is fetched for the call.
    async fn stream_with(
        &self,
        req: &ModelRequest,
        secrets: &mut Secrets,
    ) -> Result<EventStream, ModelError> {
        let r = &self.inner.resolved;
        let opts = self.inner.options.clone();
        let adapter = self.adapter();
        let (resp, deadline, target) = self.send(req, true, secrets).await?;
        let request_id = http::request_id(resp.headers());
        let state = StreamState {
            body: Box::pin(resp.bytes_stream()),
            decoder: adapter.decoder(&target, req.include_raw_events),
            pending: VecDeque::new(),
            scratch: Vec::new(),
            unwrap: (req.response_format.is_some() && !adapter.native_structured_output())
                .then(StructuredToolUnwrap::default),
            provider: r.provider.clone(),
            model: r.model.clone(),
            request_id,
            options: opts,
            deadline,
            done: false,
            pending_error: None,
            secrets: secrets.clone(),
            pricing: r.info.as_ref().and_then(|m| m.pricing),
        };
        Ok(Box::pin(futures::stream::unfold(
            state,
            |mut s| async move {
                let item = s.next_event().await?;
                Some((item, s))
            },
        )))
    }
}

/// `now + after`, or a point far in the future when that cannot be represented.
pub(crate) fn deadline_after(after: std::time::Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(after)
        .or_else(|| now.checked_add(std::time::Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

fn with_request_id(mut e: ModelError, id: &Option<String>) -> ModelError {
    let ctx = match &mut e {
        ModelError::Auth(c)
        | ModelError::ContextLength(c)
        | ModelError::InvalidRequest(c)
        | ModelError::ContentFiltered(c)
        | ModelError::Server(c)
        | ModelError::Network(c)
        | ModelError::Decode(c) => Some(c),
        ModelError::RateLimited { ctx, .. } | ModelError::Timeout { ctx, .. } => Some(ctx),
        _ => None,
    };
    if let Some(c) = ctx
        && c.request_id.is_none()
    {
        c.request_id.clone_from(id);
    }
    e
}

type ByteStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes, reqwest::Error>> + Send>>;

struct StreamState {
    body: ByteStream,
    decoder: Box<dyn StreamDecoder>,
    pending: VecDeque<StreamEvent>,
    scratch: Vec<StreamEvent>,
    unwrap: Option<StructuredToolUnwrap>,
    provider: String,
    model: String,
    request_id: Option<String>,
    options: HttpOptions,
    deadline: Instant,
    done: bool,
    pending_error: Option<ModelError>,
    /// Scrubbed from every error of the stream.
    secrets: Secrets,
    /// The model's prices: a `Cost` event follows every `Usage` event.
    pricing: Option<super::catalog::Pricing>,
}

impl StreamState {
    /// The next event; `None` once the stream is over. Never retries: the first byte of the
    /// answer has been delivered, so a retry could re-run (and re-bill) the generation.
    async fn next_event(&mut self) -> Option<Result<StreamEvent, ModelError>> {
        loop {
            if let Some(ev) = self.pending.pop_front() {
                return Some(Ok(ev));
            }
            if let Some(e) = self.pending_error.take() {
                return Some(Err(e));
            }
            if self.done {
                return None;
            }
            let site = CallSite {
                provider: &self.provider,
                model: &self.model,
                secrets: &self.secrets,
            };
            let chunk =
                match http::next_chunk(&mut self.body, &self.options, site, self.deadline).await {
                    Ok(c) => c,
                    Err(e) => {
                        self.done = true;
                        // The body broke off: calls still open stay unfinished (no
                        // `ToolCallEnd`), the error says the stream ended early.
                        let e = match e {
                            ModelError::Network(mut c) => {
                                c.message = format!("stream ended early: {}", c.message);
                                ModelError::Network(c)
                            }
                            other => other,
                        };
                        return Some(Err(
                            with_request_id(e, &self.request_id).redacted(&self.secrets)
                        ));
                    }
                };
            let result = match &chunk {
                Some(bytes) => self.decoder.feed(bytes, &mut self.scratch),
                None => {
                    self.done = true;
                    self.decoder.finish(&mut self.scratch)
                }
            };
            if let Some(u) = &mut self.unwrap {
                u.apply(&mut self.scratch);
            }
            let finished = self
                .scratch
                .iter()
                .any(|e| matches!(e, StreamEvent::Finish { .. }));
            for mut ev in self.scratch.drain(..) {
                // Raw provider events (opt-in) may carry an echoed key, like error events.
                if let StreamEvent::Raw { data, .. } = &mut ev {
                    self.secrets.redact_json(data);
                }
                // The same price `generate` puts on its response, after each usage report.
                let cost = match (&ev, &self.pricing) {
                    (StreamEvent::Usage { usage }, Some(p)) => p.cost(usage),
                    _ => None,
                };
                self.pending.push_back(ev);
                if let Some(usd) = cost {
                    self.pending.push_back(StreamEvent::Cost { usd });
                }
            }
            if finished {
                // The provider said it is done; do not wait for the socket to close.
                self.done = true;
            }
            if let Err(e) = result {
                self.done = true;
                let e =
                    with_request_id(e.with_target(&self.provider, &self.model), &self.request_id)
                        .redacted(&self.secrets);
                if self.pending.is_empty() {
                    return Some(Err(e));
                }
                // Deliver the events decoded before the error, then the error.
                self.pending_error = Some(e);
            }
        }
    }
}

/// Collects a stream into a response (what `generate` would have returned).
pub async fn collect_stream(mut stream: EventStream) -> Result<ModelResponse, ModelError> {
    let mut c = ResponseCollector::new();
    while let Some(ev) = stream.next().await {
        c.push(ev?);
    }
    if !c.finished() {
        return Err(ModelError::decode(
            "",
            "",
            "stream ended without a finish event",
        ));
    }
    Ok(c.into_response())
}
