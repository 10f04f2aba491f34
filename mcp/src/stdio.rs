//! MCP's stdio transport (newline-delimited JSON-RPC over a pair of pipes), for the client's
//! child process ([`ChildProcess`]) and for `miyabi mcp` ([`LineTransport`] over the process's
//! own standard streams).
//!
//! Every message is parsed by rmcp's own codec, except the two of a tool call: the request
//! `tools/call` on the server and its result on the client, which are read straight into their
//! types. rmcp reads a message into an untagged union of every request (or result) type and
//! tries them in turn, `tools/call` (`CallToolResult`) 14th (16th), which costs about 4.6 µs a
//! message where the direct path costs under 1 µs (`docs/benchmarks.md`, "MCP"). A message the
//! direct path does not take, or cannot read, goes to rmcp's codec, so what a peer may send and
//! how it is understood is unchanged.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use process_wrap::tokio::{ChildWrapper, CommandWrap};
use rmcp::model::{
    CallToolRequest, CallToolResult, ClientNotification, ClientRequest, ErrorData, JsonRpcMessage,
    JsonRpcRequest, JsonRpcResponse, JsonRpcVersion2_0, RequestId, ServerResult,
};
use rmcp::service::{RoleClient, RoleServer, RxJsonRpcMessage, ServiceRole, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::transport::async_rw::{
    DEFAULT_MAX_LINE_LENGTH, JsonRpcMessageCodec, JsonRpcMessageCodecError,
};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};
use tokio_util::codec::Decoder;

/// How many tool calls in flight the client's direct path keeps track of; beyond, results go
/// through rmcp's codec (only slower).
const TRACKED_CALLS: usize = 4096;

/// How long closing waits for the child to exit, after closing its stdin and after `SIGTERM`.
const EXIT_WAIT: Duration = Duration::from_secs(3);

/// The direct path of one side of the connection.
pub(crate) trait DirectPath: ServiceRole {
    /// What the direct path remembers of the connection.
    type State: Default + Send + 'static;

    /// Notes a message about to be sent.
    fn sent(state: &mut Self::State, message: &TxJsonRpcMessage<Self>);

    /// Reads `line` straight into its type, if it is the message this side expects most.
    /// `None` hands it to rmcp's codec.
    fn parse(state: &Self::State, line: &[u8]) -> Option<RxJsonRpcMessage<Self>>;

    /// Notes a message received (however it was parsed).
    fn received(state: &mut Self::State, message: &RxJsonRpcMessage<Self>);
}

/// Marks a field as present, whatever its value (even `null`), as rmcp's check of a message's
/// shape does.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// A request's keys: whether it is a `tools/call` request.
#[derive(Deserialize)]
struct RequestShape<'a> {
    #[serde(borrow)]
    method: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, deserialize_with = "present")]
    id: bool,
    #[serde(default, deserialize_with = "present")]
    result: bool,
    #[serde(default, deserialize_with = "present")]
    error: bool,
}

/// A response's keys: its id and its raw result.
#[derive(Deserialize)]
struct ResponseShape<'a> {
    jsonrpc: Option<JsonRpcVersion2_0>,
    #[serde(default, deserialize_with = "present")]
    method: bool,
    id: Option<RequestId>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "present")]
    error: bool,
}

impl DirectPath for RoleServer {
    type State = ();

    fn sent(_state: &mut (), _message: &TxJsonRpcMessage<Self>) {}

    fn parse(_state: &(), line: &[u8]) -> Option<RxJsonRpcMessage<Self>> {
        let shape: RequestShape = serde_json::from_slice(line).ok()?;
        if shape.method.as_deref() != Some("tools/call") || !shape.id || shape.result || shape.error
        {
            return None;
        }
        let request: JsonRpcRequest<CallToolRequest> = serde_json::from_slice(line).ok()?;
        Some(JsonRpcMessage::Request(JsonRpcRequest {
            jsonrpc: request.jsonrpc,
            id: request.id,
            request: ClientRequest::CallToolRequest(request.request),
        }))
    }

    fn received(_state: &mut (), _message: &RxJsonRpcMessage<Self>) {}
}

impl DirectPath for RoleClient {
    /// The ids of the `tools/call` requests waiting for their result.
    type State = HashSet<RequestId>;

    fn sent(calls: &mut HashSet<RequestId>, message: &TxJsonRpcMessage<Self>) {
        match message {
            JsonRpcMessage::Request(r)
                if matches!(r.request, ClientRequest::CallToolRequest(_))
                    && calls.len() < TRACKED_CALLS =>
            {
                calls.insert(r.id.clone());
            }
            JsonRpcMessage::Notification(n) => {
                if let ClientNotification::CancelledNotification(c) = &n.notification
                    && let Some(id) = &c.params.request_id
                {
                    calls.remove(id);
                }
            }
            _ => {}
        }
    }

    fn parse(calls: &HashSet<RequestId>, line: &[u8]) -> Option<RxJsonRpcMessage<Self>> {
        if calls.is_empty() {
            return None;
        }
        let shape: ResponseShape = serde_json::from_slice(line).ok()?;
        let (Some(jsonrpc), Some(id), Some(result), false, false) = (
            shape.jsonrpc,
            shape.id,
            shape.result,
            shape.method,
            shape.error,
        ) else {
            return None;
        };
        if !calls.contains(&id) {
            return None;
        }
        let result: CallToolResult = serde_json::from_str(result.get()).ok()?;
        Some(JsonRpcMessage::Response(JsonRpcResponse {
            jsonrpc,
            id,
            result: ServerResult::CallToolResult(result),
        }))
    }

    fn received(calls: &mut HashSet<RequestId>, message: &RxJsonRpcMessage<Self>) {
        let id = match message {
            JsonRpcMessage::Response(r) => Some(&r.id),
            JsonRpcMessage::Error(e) => e.id.as_ref(),
            _ => None,
        };
        if let Some(id) = id {
            calls.remove(id);
        }
    }
}

/// rmcp's parse of one line (without its newline): `Ok(None)` for a message it ignores (a
/// notification outside MCP).
fn parse_generic<Role: ServiceRole>(
    line: &[u8],
) -> Result<Option<RxJsonRpcMessage<Role>>, JsonRpcMessageCodecError> {
    let mut buf = BytesMut::with_capacity(line.len() + 1);
    buf.extend_from_slice(line);
    buf.extend_from_slice(b"\n");
    JsonRpcMessageCodec::<RxJsonRpcMessage<Role>>::default().decode(&mut buf)
}

/// Parses one line (without its newline): the direct path, else rmcp's codec.
fn parse_line<Role: DirectPath>(
    state: &Role::State,
    line: &[u8],
) -> Result<Option<RxJsonRpcMessage<Role>>, JsonRpcMessageCodecError> {
    match Role::parse(state, line) {
        Some(message) => Ok(Some(message)),
        None => parse_generic::<Role>(line),
    }
}

/// The writing half, shared by the send futures (which run concurrently).
type Writer<W> = Arc<tokio::sync::Mutex<Option<W>>>;

/// One JSON-RPC message per line over `R` (in) and `W` (out). A message is written and flushed
/// in one go; reading keeps a partial line across cancellations of [`Transport::receive`].
pub(crate) struct LineTransport<Role: DirectPath, R, W> {
    read: BufReader<R>,
    line: Vec<u8>,
    /// Inside a line longer than the limit, which is being dropped.
    discarding: bool,
    write: Writer<W>,
    state: Role::State,
}

/// What reading a line gave.
enum LineRead {
    Line,
    Oversized,
    Eof,
}

impl<Role, R, W> LineTransport<Role, R, W>
where
    Role: DirectPath,
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    /// A transport reading `read` and writing `write`.
    pub(crate) fn new(read: R, write: W) -> Self {
        Self {
            read: BufReader::new(read),
            line: Vec::new(),
            discarding: false,
            write: Arc::new(tokio::sync::Mutex::new(Some(write))),
            state: Role::State::default(),
        }
    }

    /// Reads up to a newline into `self.line` (cancel-safe: bytes are moved from the buffer and
    /// kept in `self.line` with no await in between).
    async fn read_line(&mut self) -> std::io::Result<LineRead> {
        loop {
            let available = self.read.fill_buf().await?;
            if available.is_empty() {
                return Ok(LineRead::Eof);
            }
            let (take, complete) = match available.iter().position(|b| *b == b'\n') {
                Some(i) => (i + 1, true),
                None => (available.len(), false),
            };
            if self.discarding {
                self.read.consume(take);
                if complete {
                    self.discarding = false;
                }
                continue;
            }
            if self.line.len().saturating_add(take) > DEFAULT_MAX_LINE_LENGTH.saturating_add(1) {
                self.line.clear();
                self.read.consume(take);
                if !complete {
                    self.discarding = true;
                }
                return Ok(LineRead::Oversized);
            }
            self.line.extend_from_slice(&available[..take]);
            self.read.consume(take);
            if complete {
                return Ok(LineRead::Line);
            }
        }
    }

    /// The future writing `message` (serialised now).
    fn write_message(
        &self,
        message: &TxJsonRpcMessage<Role>,
    ) -> impl Future<Output = std::io::Result<()>> + Send + 'static + use<Role, R, W> {
        let bytes = serde_json::to_vec(message).map(|mut b| {
            b.push(b'\n');
            b
        });
        let write = Arc::clone(&self.write);
        async move {
            let bytes = bytes.map_err(std::io::Error::other)?;
            let mut guard = write.lock().await;
            let Some(w) = guard.as_mut() else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "the transport is closed",
                ));
            };
            w.write_all(&bytes).await?;
            w.flush().await
        }
    }
}

impl<Role, R, W> Transport<Role> for LineTransport<Role, R, W>
where
    Role: DirectPath,
    R: AsyncRead + Unpin + Send,
    W: AsyncWrite + Unpin + Send + 'static,
{
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<Role>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        Role::sent(&mut self.state, &item);
        self.write_message(&item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<Role>> {
        loop {
            match self.read_line().await {
                Ok(LineRead::Line) => {}
                Ok(LineRead::Oversized) => {
                    tracing::error!(
                        max_line_length = DEFAULT_MAX_LINE_LENGTH,
                        "an incoming MCP message exceeded the maximum line length; dropped"
                    );
                    continue;
                }
                Ok(LineRead::Eof) => return None,
                Err(e) => {
                    tracing::error!(error = %e, "reading the MCP stream failed");
                    return None;
                }
            }
            let mut line = self.line.as_slice();
            line = line.strip_suffix(b"\n").unwrap_or(line);
            line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.is_empty() {
                self.line.clear();
                continue;
            }
            let parsed = parse_line::<Role>(&self.state, line);
            self.line.clear();
            match parsed {
                Ok(Some(message)) => {
                    Role::received(&mut self.state, &message);
                    return Some(message);
                }
                // A notification outside MCP (rmcp ignores those).
                Ok(None) => {}
                Err(JsonRpcMessageCodecError::Serde(e)) => match e.classify() {
                    // Not JSON: nothing to answer (as rmcp and the other SDKs).
                    serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                        tracing::debug!(error = %e, "ignoring an unparsable MCP message");
                    }
                    // JSON but no JSON-RPC message: an Invalid Request error, as rmcp answers,
                    // written by a task of its own (a cancelled receive cannot cut it).
                    serde_json::error::Category::Data | serde_json::error::Category::Io => {
                        tracing::debug!(error = %e, "answering an invalid MCP message");
                        let answer = TxJsonRpcMessage::<Role>::error(
                            ErrorData::invalid_request("Invalid request", None),
                            None,
                        );
                        let write = self.write_message(&answer);
                        tokio::spawn(async move {
                            if let Err(e) = write.await {
                                tracing::debug!(error = %e, "could not answer an invalid MCP message");
                            }
                        });
                    }
                },
                Err(e) => {
                    tracing::error!(error = %e, "reading the MCP stream failed");
                    return None;
                }
            }
        }
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        drop(self.write.lock().await.take());
        Ok(())
    }
}

/// A server started as a child process, spoken to over its stdin and stdout; its stderr is
/// inherited. Closing follows the specification's stdio shutdown: close its stdin, wait, then
/// `SIGTERM`, wait, then kill. Dropped unclosed, it is killed.
pub(crate) struct ChildProcess {
    lines: LineTransport<RoleClient, ChildStdout, ChildStdin>,
    child: ChildGuard,
}

/// Kills the child when dropped, unless it was reaped.
struct ChildGuard(Option<Box<dyn ChildWrapper>>);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Err(e) = Box::into_pin(child.kill()).await {
                        tracing::warn!(error = %e, "could not kill an MCP server process");
                    }
                });
            } else if let Err(e) = child.start_kill() {
                tracing::warn!(error = %e, "could not kill an MCP server process");
            }
        }
    }
}

/// Waits up to [`EXIT_WAIT`] for the child to exit: `Some` once it has.
async fn wait_for_exit(
    child: &mut Box<dyn ChildWrapper>,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    match tokio::time::timeout(EXIT_WAIT, child.wait()).await {
        Ok(status) => status.map(Some),
        Err(_) => Ok(None),
    }
}

impl ChildProcess {
    /// Starts `command` with piped stdin and stdout and inherited stderr.
    pub(crate) fn spawn(command: tokio::process::Command) -> std::io::Result<Self> {
        let mut wrap = CommandWrap::from(command);
        wrap.command_mut()
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit());
        let mut child = wrap.spawn()?;
        let stdin = child.stdin().take();
        let stdout = child.stdout().take();
        let guard = ChildGuard(Some(child));
        let (Some(stdin), Some(stdout)) = (stdin, stdout) else {
            return Err(std::io::Error::other(
                "the child process has no piped stdin or stdout",
            ));
        };
        Ok(Self {
            lines: LineTransport::new(stdout, stdin),
            child: guard,
        })
    }
}

impl Transport<RoleClient> for ChildProcess {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleClient>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.lines.send(item)
    }

    fn receive(&mut self) -> impl Future<Output = Option<RxJsonRpcMessage<RoleClient>>> + Send {
        self.lines.receive()
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.lines.close().await?;
        let Some(child) = self.child.0.as_mut() else {
            return Ok(());
        };
        if wait_for_exit(child).await?.is_some() {
            self.child.0 = None;
            return Ok(());
        }
        #[cfg(unix)]
        match child.signal(libc::SIGTERM) {
            Ok(()) => {
                if wait_for_exit(child).await?.is_some() {
                    self.child.0 = None;
                    return Ok(());
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not send SIGTERM to an MCP server"),
        }
        Box::into_pin(child.kill()).await?;
        self.child.0 = None;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use futures::FutureExt;
    use serde_json::{Value, json};
    use tokio::io::AsyncWriteExt;

    use super::*;

    fn as_json<T: serde::Serialize>(m: &T) -> Value {
        serde_json::to_value(m).unwrap()
    }

    const CALLS: &[&str] = &[
        r#"{"jsonrpc":"2.0","id":79,"method":"tools/call","params":{"name":"echo","arguments":{"message":"hi"},"_meta":{"progressToken":79}}}"#,
        r#"{"jsonrpc":"2.0","id":"a-string-id","method":"tools/call","params":{"name":"echo"}}"#,
        r#"{"method":"tools/call","params":{"name":"deep","arguments":{"a":[1,{"b":null}],"c":"\u00e9\n"}},"id":3,"jsonrpc":"2.0","extra":true}"#,
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"x","arguments":{},"_meta":{"progressToken":"p","other":1}}}"#,
    ];

    #[test]
    fn the_servers_direct_path_reads_tool_calls_as_rmcp_does() {
        for line in CALLS {
            let direct = RoleServer::parse(&(), line.as_bytes()).expect(line);
            let generic = parse_generic::<RoleServer>(line.as_bytes())
                .unwrap()
                .unwrap();
            let JsonRpcMessage::Request(r) = &direct else {
                panic!("{line}")
            };
            assert!(matches!(r.request, ClientRequest::CallToolRequest(_)));
            assert_eq!(as_json(&direct), as_json(&generic), "{line}");
        }
    }

    #[test]
    fn the_servers_direct_path_leaves_other_messages_to_rmcp() {
        for line in [
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"},"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"},"error":null}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","method":"ping","params":{"name":"x"}}"#,
            "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}",
            "not json",
        ] {
            assert!(RoleServer::parse(&(), line.as_bytes()).is_none(), "{line}");
        }
    }

    const RESULTS: &[&str] = &[
        r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"hi"}],"isError":false}}"#,
        r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"text","text":"no"}],"isError":true}}"#,
        r#"{"result":{"content":[],"structuredContent":{"a":1},"_meta":{"k":"v"},"resultType":"complete"},"id":7,"jsonrpc":"2.0"}"#,
        r#"{"jsonrpc":"2.0","id":7,"result":{"content":[{"type":"image","data":"AAAA","mimeType":"image/png"},{"type":"resource_link","uri":"file:///x","name":"x"}]}}"#,
        r#"{"jsonrpc":"2.0","id":7,"result":{"structuredContent":null}}"#,
    ];

    #[test]
    fn the_clients_direct_path_reads_tool_results_as_rmcp_does() {
        let calls = HashSet::from([RequestId::Number(7)]);
        for line in RESULTS {
            let direct = RoleClient::parse(&calls, line.as_bytes()).expect(line);
            let generic = parse_generic::<RoleClient>(line.as_bytes())
                .unwrap()
                .unwrap();
            let (JsonRpcMessage::Response(d), JsonRpcMessage::Response(g)) = (&direct, &generic)
            else {
                panic!("{line}")
            };
            assert!(matches!(d.result, ServerResult::CallToolResult(_)));
            assert!(
                matches!(g.result, ServerResult::CallToolResult(_)),
                "{line}"
            );
            assert_eq!(as_json(&direct), as_json(&generic), "{line}");
        }
    }

    #[test]
    fn the_clients_direct_path_takes_only_results_of_its_tool_calls() {
        let none = HashSet::new();
        assert!(RoleClient::parse(&none, RESULTS[0].as_bytes()).is_none());
        let calls = HashSet::from([RequestId::Number(8)]);
        assert!(RoleClient::parse(&calls, RESULTS[0].as_bytes()).is_none());
        let calls = HashSet::from([RequestId::Number(7)]);
        for line in [
            r#"{"jsonrpc":"2.0","id":7,"result":{"tools":[]}}"#,
            r#"{"jsonrpc":"2.0","id":7,"result":{"resultType":"input_required","inputRequests":{}}}"#,
            r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"no"}}"#,
            r#"{"jsonrpc":"2.0","id":7,"method":"x","result":{"content":[]}}"#,
            r#"{"jsonrpc":"1.0","id":7,"result":{"content":[]}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":7,"progress":1}}"#,
        ] {
            assert!(
                RoleClient::parse(&calls, line.as_bytes()).is_none(),
                "{line}"
            );
        }
    }

    #[test]
    fn the_client_tracks_its_calls_until_answered_or_cancelled() {
        let mut calls = HashSet::new();
        let call: TxJsonRpcMessage<RoleClient> = JsonRpcMessage::request(
            ClientRequest::CallToolRequest(CallToolRequest::new(
                rmcp::model::CallToolRequestParams::new("echo"),
            )),
            RequestId::Number(7),
        );
        RoleClient::sent(&mut calls, &call);
        assert!(calls.contains(&RequestId::Number(7)));
        let answer = RoleClient::parse(&calls, RESULTS[0].as_bytes()).unwrap();
        RoleClient::received(&mut calls, &answer);
        assert!(calls.is_empty());
        RoleClient::sent(&mut calls, &call);
        let cancel: TxJsonRpcMessage<RoleClient> = JsonRpcMessage::notification(
            ClientNotification::CancelledNotification(rmcp::model::CancelledNotification::new(
                rmcp::model::CancelledNotificationParam::new(Some(RequestId::Number(7)), None),
            )),
        );
        RoleClient::sent(&mut calls, &cancel);
        assert!(calls.is_empty());
    }

    #[tokio::test]
    async fn lines_survive_a_cancelled_receive_and_bad_lines_are_answered_or_skipped() {
        // One pipe each way, as a child's stdin and stdout.
        let (mut client_write, server_read) = tokio::io::duplex(1 << 16);
        let (server_write, client_read) = tokio::io::duplex(1 << 16);
        let mut server = LineTransport::<RoleServer, _, _>::new(server_read, server_write);
        let mut answers = BufReader::new(client_read);

        // Half a request, then a receive that cannot finish, dropped; then the rest.
        let (head, tail) = CALLS[0].split_at(40);
        client_write.write_all(head.as_bytes()).await.unwrap();
        assert!(server.receive().now_or_never().is_none());
        client_write.write_all(tail.as_bytes()).await.unwrap();
        client_write.write_all(b"\r\n").await.unwrap();
        let m = server.receive().await.unwrap();
        assert_eq!(
            as_json(&m),
            as_json(
                &parse_generic::<RoleServer>(CALLS[0].as_bytes())
                    .unwrap()
                    .unwrap()
            )
        );

        // Not JSON: skipped. JSON that is no message: an Invalid Request error. An empty line:
        // skipped. Another method's notification: as rmcp reads it.
        client_write
            .write_all(b"not json\n{\"hello\":1}\n\n{\"jsonrpc\":\"2.0\",\"method\":\"x/y\"}\n")
            .await
            .unwrap();
        client_write.write_all(CALLS[1].as_bytes()).await.unwrap();
        client_write.write_all(b"\n").await.unwrap();
        let m = server.receive().await.unwrap();
        assert_eq!(as_json(&m)["method"], json!("x/y"));
        let m = server.receive().await.unwrap();
        assert_eq!(as_json(&m)["id"], json!("a-string-id"));
        let mut line = String::new();
        answers.read_line(&mut line).await.unwrap();
        let error: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(error["error"]["code"], json!(-32600), "{line}");

        // A result goes out as one line; after close, sends fail and the peer sees the end.
        let result: TxJsonRpcMessage<RoleServer> = JsonRpcMessage::response(
            ServerResult::CallToolResult(CallToolResult::success(vec![
                rmcp::model::ContentBlock::text("hi"),
            ])),
            RequestId::Number(79),
        );
        server.send(result.clone()).await.unwrap();
        line.clear();
        answers.read_line(&mut line).await.unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&line).unwrap(),
            as_json(&result)
        );
        server.close().await.unwrap();
        assert!(server.send(result).await.is_err());
        line.clear();
        assert_eq!(answers.read_line(&mut line).await.unwrap(), 0);
        drop(client_write);
        assert!(server.receive().await.is_none());
    }
}
