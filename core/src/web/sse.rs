//! A `text/event-stream` response body that writes every event its stream has ready into one
//! frame.
//!
//! axum's `Sse` hands the connection one frame per event, so a fast stream pays a write (and,
//! with the client on the same host, a wake-up on each side) per event. This body drains what
//! the stream has ready when it is polled — up to [`FRAME_CAP`] bytes — and writes it at once;
//! when the stream has nothing ready it answers with what it has, so a lone event (the first
//! token of an answer) goes out as soon as it is produced. A comment line keeps a quiet stream
//! open through proxies.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use futures::Stream;
use http_body::Frame;
use tokio::time::{Instant, Sleep};

/// The most bytes one frame gathers before it is handed to the connection.
const FRAME_CAP: usize = 64 * 1024;

/// How long a stream may stay quiet before a keep-alive comment is sent.
pub(crate) const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The optional `id:` and `event:` lines of an event.
fn write_fields(buf: &mut BytesMut, id: Option<u64>, event: Option<&str>) {
    if let Some(id) = id {
        // Written as digits straight into the frame (no string per event); writing into a
        // `BytesMut` cannot fail.
        let _ = std::io::Write::write_fmt(&mut buf.writer(), format_args!("id: {id}\n"));
    }
    if let Some(event) = event {
        buf.put_slice(b"event: ");
        buf.put_slice(event.as_bytes());
        buf.put_u8(b'\n');
    }
}

/// Writes one SSE event: optional `id:` and `event:` fields, then `data` (one `data:` line per
/// line of it), then the blank line that ends the event.
pub(crate) fn write_event(buf: &mut BytesMut, id: Option<u64>, event: Option<&str>, data: &[u8]) {
    write_fields(buf, id, event);
    for line in data.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        buf.put_slice(b"data: ");
        buf.put_slice(line);
        buf.put_u8(b'\n');
    }
    buf.put_u8(b'\n');
}

/// Writes one event whose data is `value` as JSON (compact JSON has no line breaks, so it is one
/// `data:` line, serialized straight into the frame).
pub(crate) fn write_json_event<T: serde::Serialize>(
    buf: &mut BytesMut,
    id: Option<u64>,
    event: Option<&str>,
    value: &T,
) {
    write_fields(buf, id, event);
    buf.put_slice(b"data: ");
    let mark = buf.len();
    if serde_json::to_writer(buf.writer(), value).is_err() {
        buf.truncate(mark);
        buf.put_slice(b"{}");
    }
    buf.put_slice(b"\n\n");
}

/// The body: `S` yields items, `write` appends each as one or more SSE events.
pub(crate) struct SseBody<S, F> {
    stream: Option<Pin<Box<S>>>,
    write: F,
    buf: BytesMut,
    keep_alive: Pin<Box<Sleep>>,
}

impl<S, F> SseBody<S, F>
where
    S: Stream,
    F: FnMut(S::Item, &mut BytesMut) + Unpin,
{
    pub(crate) fn new(stream: S, write: F) -> Self {
        SseBody {
            stream: Some(Box::pin(stream)),
            write,
            buf: BytesMut::with_capacity(8 * 1024),
            keep_alive: Box::pin(tokio::time::sleep(KEEP_ALIVE)),
        }
    }

    /// A `200 text/event-stream` response with this body.
    pub(crate) fn into_response(self) -> Response
    where
        S: Send + 'static,
        F: Send + 'static,
    {
        let mut res = Response::new(Body::new(self));
        let h = res.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        res
    }
}

impl<S, F> http_body::Body for SseBody<S, F>
where
    S: Stream,
    F: FnMut(S::Item, &mut BytesMut) + Unpin,
{
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let Some(stream) = this.stream.as_mut() else {
            return Poll::Ready(None);
        };
        let mut ended = false;
        while this.buf.len() < FRAME_CAP {
            match stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(item)) => (this.write)(item, &mut this.buf),
                Poll::Ready(None) => {
                    ended = true;
                    break;
                }
                Poll::Pending => break,
            }
        }
        if ended {
            this.stream = None;
        }
        if !this.buf.is_empty() {
            let frame = this.buf.split().freeze();
            if !ended {
                this.keep_alive.as_mut().reset(Instant::now() + KEEP_ALIVE);
            }
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }
        if ended {
            return Poll::Ready(None);
        }
        if this.keep_alive.as_mut().poll(cx).is_ready() {
            this.keep_alive.as_mut().reset(Instant::now() + KEEP_ALIVE);
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b":\n\n")))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.stream.is_none() && self.buf.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use futures::StreamExt;
    use http_body_util::BodyExt;

    fn body_of<S>(stream: S) -> SseBody<S, impl FnMut(u64, &mut BytesMut) + Unpin>
    where
        S: Stream<Item = u64>,
    {
        SseBody::new(stream, |n: u64, buf: &mut BytesMut| {
            write_json_event(buf, Some(n), Some("n"), &serde_json::json!({ "n": n }))
        })
    }

    #[test]
    fn events_have_id_event_and_one_data_line_per_line() {
        let mut buf = BytesMut::new();
        write_event(&mut buf, Some(7), Some("step"), b"a\nb\r\nc");
        assert_eq!(
            &buf[..],
            b"id: 7\nevent: step\ndata: a\ndata: b\ndata: c\n\n"
        );
        let mut buf = BytesMut::new();
        write_event(&mut buf, None, None, b"[DONE]");
        assert_eq!(&buf[..], b"data: [DONE]\n\n");
        let mut buf = BytesMut::new();
        write_json_event(&mut buf, None, None, &serde_json::json!({"t": "x\ny"}));
        assert_eq!(&buf[..], b"data: {\"t\":\"x\\ny\"}\n\n");
    }

    #[tokio::test]
    async fn ready_events_go_out_in_one_frame() {
        let mut body = body_of(futures::stream::iter(1..=3u64));
        let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
        let text = String::from_utf8(frame.to_vec()).unwrap();
        assert_eq!(text.matches("data: ").count(), 3, "{text}");
        assert!(text.starts_with("id: 1\nevent: n\ndata: {\"n\":1}\n\n"));
        assert!(body.frame().await.is_none());
        assert!(http_body::Body::is_end_stream(&body));
    }

    #[tokio::test]
    async fn a_frame_stops_at_the_cap_and_the_rest_follows() {
        let n = 20_000u64;
        let mut body = body_of(futures::stream::iter(1..=n));
        let mut frames = 0;
        let mut seen = 0;
        while let Some(f) = body.frame().await {
            let data = f.unwrap().into_data().unwrap();
            assert!(
                data.len() < FRAME_CAP + 256,
                "frame of {} bytes",
                data.len()
            );
            seen += String::from_utf8(data.to_vec())
                .unwrap()
                .matches("data: ")
                .count();
            frames += 1;
        }
        assert_eq!(seen as u64, n);
        assert!(frames > 1, "one frame for {n} events");
    }

    #[tokio::test]
    async fn an_event_that_arrives_later_is_sent_alone_when_it_comes() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        let stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|v| (v, rx)) });
        let mut body = body_of(stream);
        tx.send(1).unwrap();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"id: 1\nevent: n\ndata: {\"n\":1}\n\n");
        let later = tokio::spawn(async move {
            tokio::task::yield_now().await;
            tx.send(2).unwrap();
        });
        let second = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&second[..], b"id: 2\nevent: n\ndata: {\"n\":2}\n\n");
        later.await.unwrap();
        assert!(body.frame().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_stream_gets_a_keep_alive_comment() {
        let mut body = body_of(futures::stream::pending::<u64>());
        let frame = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&frame[..], b":\n\n");
        assert!(!http_body::Body::is_end_stream(&body));
    }

    #[tokio::test]
    async fn the_response_is_an_event_stream() {
        let res = body_of(futures::stream::iter([5u64]).boxed()).into_response();
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-cache");
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"id: 5\nevent: n\ndata: {\"n\":5}\n\n");
    }
}
