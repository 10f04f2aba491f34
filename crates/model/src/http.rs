//! The one HTTP layer every adapter goes through: a shared reqwest client (rustls with the
//! `ring` provider, connection reuse), timeouts (connect, first byte, idle between chunks,
//! total), retries with exponential backoff and jitter honouring `retry-after`, and mapping of
//! HTTP failures to typed [`ModelError`]s.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use super::error::{ConfigError, ErrorContext, ModelError, TimeoutKind, classify};
use super::redact::Secrets;

/// Timeouts and retry policy.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpOptions {
    /// Establishing a connection (TCP + TLS).
    pub connect_timeout: Duration,
    /// From sending the request to the response headers. For a non-streamed call the provider
    /// sends headers only when the whole answer is ready, so keep this generous.
    pub first_byte_timeout: Duration,
    /// Longest silence between two chunks of a streamed body.
    pub idle_timeout: Duration,
    /// The whole call, retries included.
    pub total_timeout: Duration,
    /// Retries after the first attempt (0 disables retrying).
    pub max_retries: u32,
    /// First backoff; doubled per attempt, with jitter.
    pub initial_backoff: Duration,
    /// Longest backoff between attempts.
    pub max_backoff: Duration,
    /// Longest `retry-after` we are willing to wait; a longer one ends the call with the
    /// rate-limit error (which carries the provider's value, at most [`RETRY_AFTER_CAP`]).
    pub max_retry_after: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            first_byte_timeout: Duration::from_secs(180),
            idle_timeout: Duration::from_secs(90),
            total_timeout: Duration::from_secs(900),
            max_retries: 2,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

/// A request ready to send: the output of an adapter.
#[derive(Debug, Clone)]
pub struct WireRequest {
    /// Full URL.
    pub url: String,
    /// Headers (auth is added by the HTTP layer, not the adapter).
    pub headers: Vec<(String, String)>,
    /// JSON body.
    pub body: Bytes,
}

/// Computes headers for one attempt of a request (request signing: a signature covers the time,
/// so each attempt is signed anew).
pub(crate) type SignFn<'a> =
    &'a (dyn Fn(&WireRequest) -> Result<Vec<(HeaderName, HeaderValue)>, ModelError> + Sync);

/// The authentication of a call: fixed headers (API key, user headers) and, for signed
/// requests, headers computed per attempt.
#[derive(Clone, Copy)]
pub(crate) struct RequestAuth<'a> {
    pub headers: &'a [(HeaderName, HeaderValue)],
    pub sign: Option<SignFn<'a>>,
}

/// What the HTTP layer needs from an adapter to describe a failed response.
pub(crate) type ErrorParser = fn(&[u8]) -> ParsedError;

/// The provider's own description of an error body.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ParsedError {
    /// The provider's message.
    pub message: Option<String>,
    /// The provider's error type or code.
    pub code: Option<String>,
    /// A request id found in the body.
    pub request_id: Option<String>,
    /// A retry delay found in the body (Gemini's `RetryInfo`).
    pub retry_after: Option<Duration>,
}

fn install_crypto_provider() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Err means another provider was installed concurrently, which is fine.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
    });
}

/// A clonable HTTP client shared by models; clones share one connection pool.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: reqwest::Client,
}

impl HttpClient {
    /// A new client (its own connection pool) with this connect timeout.
    pub fn new(connect_timeout: Duration) -> Result<Self, ModelError> {
        Self::with_host_overrides(connect_timeout, &[])
    }

    /// A new client that connects to the given addresses for the given host names instead of
    /// looking them up (private endpoints, split-horizon DNS, tests). The URL and the `Host`
    /// header keep the name, so TLS and request signing see it unchanged. A port of 0 in the
    /// address means the URL's port.
    pub fn with_host_overrides(
        connect_timeout: Duration,
        overrides: &[(&str, std::net::SocketAddr)],
    ) -> Result<Self, ModelError> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true);
        for (host, addr) in overrides {
            builder = builder.resolve(host, *addr);
        }
        let client = builder.build().map_err(|e| ConfigError::HttpClient {
            reason: error_chain(&e),
        })?;
        Ok(Self { client })
    }

    /// The process-wide client used by default, so all models reuse connections.
    pub fn shared() -> Result<Self, ModelError> {
        Self::shared_with(HttpOptions::default().connect_timeout)
    }

    /// The process-wide client for a connect timeout: models with the same connect timeout
    /// share one connection pool. (The connect timeout belongs to the client's connector, so a
    /// model whose [`HttpOptions::connect_timeout`] differs from the default gets the pool of
    /// that timeout.)
    pub fn shared_with(connect_timeout: Duration) -> Result<Self, ModelError> {
        static SHARED: OnceLock<std::sync::Mutex<Vec<(Duration, HttpClient)>>> = OnceLock::new();
        let pools = SHARED.get_or_init(|| std::sync::Mutex::new(Vec::new()));
        let mut pools = pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, c)) = pools.iter().find(|(d, _)| *d == connect_timeout) {
            return Ok(c.clone());
        }
        let c = Self::new(connect_timeout)?;
        pools.push((connect_timeout, c.clone()));
        Ok(c)
    }
}

/// Who is being called, for error messages and traces, and the secrets of the call, which are
/// scrubbed from every error built here.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallSite<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub secrets: &'a Secrets,
}

impl CallSite<'_> {
    fn ctx(&self, status: Option<u16>, message: String) -> Box<ErrorContext> {
        Box::new(ErrorContext {
            provider: self.provider.to_owned(),
            model: self.model.to_owned(),
            status,
            message: self.secrets.redact(&message).into_owned(),
            ..ErrorContext::default()
        })
    }

    pub fn timeout(&self, kind: TimeoutKind, after: Duration) -> ModelError {
        ModelError::Timeout {
            ctx: self.ctx(None, format!("no answer within {after:?}")),
            kind,
            after,
        }
    }

    pub fn network(&self, message: String) -> ModelError {
        ModelError::Network(self.ctx(None, message))
    }
}

const REQUEST_ID_HEADERS: [&str; 6] = [
    "x-request-id",
    "request-id",
    "x-amzn-requestid",
    "apim-request-id",
    "x-goog-request-id",
    "cf-ray",
];

/// The provider's request id from response headers.
pub(crate) fn request_id(headers: &HeaderMap) -> Option<String> {
    REQUEST_ID_HEADERS.iter().find_map(|h| {
        headers
            .get(*h)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    })
}

/// The longest wait a provider's retry hint (`retry-after`, `retry-after-ms`, an HTTP date,
/// Gemini's `RetryInfo.retryDelay`) is read as: a longer one (`retry-after: 1e20`, a date in the
/// year 9999, `"1e20s"`) becomes one day. Whether the call then waits is
/// [`HttpOptions::max_retry_after`]'s business (60 s by default; a longer hint ends the call with
/// the rate-limit error carrying the hint).
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(24 * 60 * 60);

/// A number of seconds from a provider as a duration: negative and NaN values mean nothing
/// (`None`); anything longer than [`RETRY_AFTER_CAP`], infinity included, is the cap.
fn hint_secs(secs: f64) -> Option<Duration> {
    if secs.is_nan() || secs < 0.0 {
        return None;
    }
    Some(Duration::try_from_secs_f64(secs).map_or(RETRY_AFTER_CAP, |d| d.min(RETRY_AFTER_CAP)))
}

/// A `retry-after` header value: seconds (`"30"`, `"1.5"`) or an IMF-fixdate
/// (`"Wed, 21 Oct 2026 07:28:00 GMT"`, read against the system clock; a past date is zero).
/// Never panics; `None` for anything else, negative or NaN; at most [`RETRY_AFTER_CAP`].
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<f64>() {
        return hint_secs(secs);
    }
    parse_http_date(value).map(|at| at.saturating_sub(unix_now()).min(RETRY_AFTER_CAP))
}

/// A `retry-after-ms` header value (milliseconds, OpenAI's and Azure's). Never panics; `None`
/// for anything that is not a non-negative number; at most [`RETRY_AFTER_CAP`].
pub fn parse_retry_after_ms(value: &str) -> Option<Duration> {
    let ms = value.trim().parse::<f64>().ok()?;
    hint_secs(ms / 1000.0)
}

/// A protobuf JSON duration such as Gemini's `RetryInfo.retryDelay` (`"34s"`, `"0.5s"`; the
/// unit may be missing). Never
/// panics; `None` for anything else, negative or NaN; at most [`RETRY_AFTER_CAP`].
pub fn parse_retry_delay(value: &str) -> Option<Duration> {
    let value = value.trim();
    let secs = value
        .strip_suffix('s')
        .unwrap_or(value)
        .parse::<f64>()
        .ok()?;
    hint_secs(secs)
}

/// `retry-after-ms`, or `retry-after` in seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(d) = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_retry_after_ms)
    {
        return Some(d);
    }
    parse_retry_after(headers.get("retry-after")?.to_str().ok()?)
}

fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Parses an IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) into time since the epoch. Fields
/// out of range are refused; a year after 9999 counts as 9999 (it only has to be "far away").
fn parse_http_date(s: &str) -> Option<Duration> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    if parts.len() != 6 || parts[5] != "GMT" {
        return None;
    }
    let day: i64 = parts[1].parse().ok()?;
    if !(1..=31).contains(&day) {
        return None;
    }
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| *m == parts[2])? as i64
        + 1;
    // Digits only: a huge year is still far away, not a parse failure.
    if parts[3].is_empty() || !parts[3].bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let year: i64 = parts[3].parse::<i64>().unwrap_or(i64::MAX).min(9999);
    let hms: Vec<i64> = parts[4]
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 || !(0..24).contains(&hms[0]) || !(0..60).contains(&hms[1]) {
        return None;
    }
    if !(0..=60).contains(&hms[2]) {
        return None;
    }
    // Days from civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    u64::try_from(secs).ok().map(Duration::from_secs)
}

/// Backoff before retry `attempt` (0-based): exponential with jitter in [d/2, d].
pub(crate) fn backoff(options: &HttpOptions, attempt: u32) -> Duration {
    let base = options
        .initial_backoff
        .saturating_mul(1u32 << attempt.min(16));
    let capped = base.min(options.max_backoff);
    let half = capped / 2;
    half + half.mul_f64(fastrand::f64())
}

/// Sends `req`, retrying retryable failures; returns a successful response (headers read, body
/// not yet consumed).
pub(crate) async fn send(
    client: &HttpClient,
    options: &HttpOptions,
    site: CallSite<'_>,
    req: &WireRequest,
    auth: RequestAuth<'_>,
    parse_error: ErrorParser,
    deadline: Instant,
) -> Result<reqwest::Response, ModelError> {
    let mut attempt: u32 = 0;
    loop {
        let err = match send_once(client, options, site, req, auth, parse_error, deadline).await {
            Ok(resp) => return Ok(resp),
            Err(e) => e.redacted(site.secrets),
        };
        let remaining = deadline.saturating_duration_since(Instant::now());
        if !err.is_retryable() || attempt >= options.max_retries {
            return Err(err);
        }
        let delay = match err.retry_after() {
            Some(d) if d > options.max_retry_after => return Err(err),
            Some(d) => d,
            None => backoff(options, attempt),
        };
        if delay >= remaining {
            return Err(err);
        }
        tracing::warn!(
            provider = site.provider,
            model = site.model,
            attempt = attempt + 1,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            status = err.status(),
            error = %err,
            "retrying model request"
        );
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

async fn send_once(
    client: &HttpClient,
    options: &HttpOptions,
    site: CallSite<'_>,
    req: &WireRequest,
    auth: RequestAuth<'_>,
    parse_error: ErrorParser,
    deadline: Instant,
) -> Result<reqwest::Response, ModelError> {
    let mut builder = client.client.post(&req.url).body(req.body.clone());
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    for (name, value) in auth.headers {
        builder = builder.header(name, value.clone());
    }
    if let Some(sign) = auth.sign {
        for (name, value) in sign(req)? {
            builder = builder.header(name, value);
        }
    }
    let remaining = deadline.saturating_duration_since(Instant::now());
    let wait = options.first_byte_timeout.min(remaining);
    let kind = if wait < options.first_byte_timeout {
        TimeoutKind::Total
    } else {
        TimeoutKind::FirstByte
    };
    tracing::debug!(provider = site.provider, model = site.model, url = %site.secrets.redact(&req.url), "model request");
    let resp = match tokio::time::timeout(wait, builder.send()).await {
        Err(_) => {
            return Err(site.timeout(
                kind,
                if kind == TimeoutKind::Total {
                    options.total_timeout
                } else {
                    wait
                },
            ));
        }
        Ok(Err(e)) => return Err(map_reqwest_error(site, options, &e)),
        Ok(Ok(resp)) => resp,
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let headers = resp.headers().clone();
    let remaining = deadline.saturating_duration_since(Instant::now());
    let body = match tokio::time::timeout(options.idle_timeout.min(remaining), resp.bytes()).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) | Err(_) => Bytes::new(),
    };
    Err(error_from_response(
        site,
        status.as_u16(),
        &headers,
        &body,
        parse_error,
    ))
}

/// Builds the typed error for a non-2xx response.
pub(crate) fn error_from_response(
    site: CallSite<'_>,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    parse_error: ErrorParser,
) -> ModelError {
    let parsed = parse_error(body);
    let message = parsed.message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(body);
        // Redact before cutting, so a secret cut in half cannot survive the cut.
        let text = site.secrets.redact(text.trim()).into_owned();
        if text.is_empty() {
            format!("HTTP {status}")
        } else {
            text.chars().take(500).collect()
        }
    });
    let mut code = parsed.code;
    if code.is_none() {
        code = headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|s| {
                let s = s.split(':').next().unwrap_or(s);
                s.to_owned()
            });
    }
    let ctx = ErrorContext {
        provider: site.provider.to_owned(),
        model: site.model.to_owned(),
        status: Some(status),
        message,
        code,
        request_id: request_id(headers).or(parsed.request_id),
    };
    classify(ctx, retry_after(headers).or(parsed.retry_after)).redacted(site.secrets)
}

fn map_reqwest_error(site: CallSite<'_>, options: &HttpOptions, e: &reqwest::Error) -> ModelError {
    if e.is_connect() && e.is_timeout() {
        return site.timeout(TimeoutKind::Connect, options.connect_timeout);
    }
    if e.is_timeout() {
        return site.timeout(TimeoutKind::FirstByte, options.first_byte_timeout);
    }
    if e.is_builder() {
        return ConfigError::BadRequest {
            provider: site.provider.to_owned(),
            model: site.model.to_owned(),
            reason: error_chain(e),
        }
        .into();
    }
    site.network(error_chain(e))
}

/// An error and its sources, on one line (reqwest's own Display omits the cause).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// Reads a whole body with the idle and total timeouts.
pub(crate) async fn read_body(
    resp: reqwest::Response,
    options: &HttpOptions,
    site: CallSite<'_>,
    deadline: Instant,
) -> Result<Vec<u8>, ModelError> {
    let mut body = Vec::new();
    let mut stream = resp.bytes_stream();
    loop {
        match next_chunk(&mut stream, options, site, deadline).await? {
            Some(chunk) => body.extend_from_slice(&chunk),
            None => return Ok(body),
        }
    }
}

/// The next chunk of a body, with the idle and total timeouts.
pub(crate) async fn next_chunk<S>(
    stream: &mut S,
    options: &HttpOptions,
    site: CallSite<'_>,
    deadline: Instant,
) -> Result<Option<Bytes>, ModelError>
where
    S: Stream<Item = Result<Bytes, reqwest::Error>> + Unpin,
{
    let remaining = deadline.saturating_duration_since(Instant::now());
    let (wait, kind) = if remaining < options.idle_timeout {
        (remaining, TimeoutKind::Total)
    } else {
        (options.idle_timeout, TimeoutKind::Idle)
    };
    match tokio::time::timeout(wait, stream.next()).await {
        Err(_) => Err(site.timeout(
            kind,
            if kind == TimeoutKind::Total {
                options.total_timeout
            } else {
                wait
            },
        )),
        Ok(None) => Ok(None),
        Ok(Some(Ok(b))) => Ok(Some(b)),
        Ok(Some(Err(e))) => Err(site.network(format!(
            "connection broke while reading the body: {}",
            error_chain(&e)
        ))),
    }
}
