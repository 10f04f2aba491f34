//! Byte-level framing of streamed responses: server-sent events and newline-delimited JSON.
//!
//! Both decoders are incremental: bytes arrive in arbitrary chunks (a line, an event or even a
//! UTF-8 character may be split across chunks) and complete events are handed to a callback as
//! borrowed `&str`s, so the hot path allocates nothing per event.

/// An incremental server-sent-events parser (the WHATWG `text/event-stream` rules: `event:`,
/// `data:` with or without the space, multi-line data, `\n` / `\r\n` / `\r` line ends, `:`
/// comments, `id:` and `retry:` ignored).
#[derive(Debug, Default)]
pub struct SseDecoder {
    buf: Vec<u8>,
    pos: usize,
    /// `buf[pos..scanned]` holds no line end: a long line fed in small chunks is scanned once,
    /// not once per chunk.
    scanned: usize,
    event: String,
    data: String,
    has_data: bool,
    skip_lf: bool,
}

/// Error for bytes that are not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramingError(pub String);

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FramingError {}

impl SseDecoder {
    /// A new decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; calls `on_event(event_name, data)` for every complete event. An error from
    /// the callback stops decoding and is returned.
    pub fn feed<E, F>(&mut self, chunk: &[u8], on_event: &mut F) -> Result<(), E>
    where
        E: From<FramingError>,
        F: FnMut(Option<&str>, &str) -> Result<(), E>,
    {
        self.buf.extend_from_slice(chunk);
        loop {
            let rest = &self.buf[self.pos..];
            if self.skip_lf {
                if rest.is_empty() {
                    break;
                }
                if rest[0] == b'\n' {
                    self.pos += 1;
                }
                self.skip_lf = false;
                continue;
            }
            let from = self.scanned.max(self.pos);
            let Some(nl) = self.buf[from..]
                .iter()
                .position(|&b| b == b'\n' || b == b'\r')
            else {
                self.scanned = self.buf.len();
                break;
            };
            let line_end = from + nl;
            if self.buf[line_end] == b'\r' {
                self.skip_lf = true;
            }
            let start = self.pos;
            self.pos = line_end + 1;
            let line = std::str::from_utf8(&self.buf[start..line_end])
                .map_err(|e| E::from(FramingError(format!("SSE line is not UTF-8: {e}"))))?;
            if line.is_empty() {
                if self.has_data {
                    let event = if self.event.is_empty() {
                        None
                    } else {
                        Some(self.event.as_str())
                    };
                    let result = on_event(event, &self.data);
                    self.data.clear();
                    self.event.clear();
                    self.has_data = false;
                    result?;
                } else {
                    self.event.clear();
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.find(':') {
                Some(i) => {
                    let v = &line[i + 1..];
                    (&line[..i], v.strip_prefix(' ').unwrap_or(v))
                }
                None => (line, ""),
            };
            match field {
                "data" => {
                    if self.has_data {
                        self.data.push('\n');
                    }
                    self.data.push_str(value);
                    self.has_data = true;
                }
                "event" => {
                    self.event.clear();
                    self.event.push_str(value);
                }
                _ => {}
            }
        }
        // Compact the buffer once the consumed prefix is large.
        if self.pos > 0 && (self.pos == self.buf.len() || self.pos > 64 * 1024) {
            self.buf.drain(..self.pos);
            self.scanned = self.scanned.saturating_sub(self.pos);
            self.pos = 0;
        }
        Ok(())
    }

    /// Ends the stream: a final event without its blank line is still delivered (some servers
    /// close right after the last `data:` line).
    pub fn finish<E, F>(&mut self, on_event: &mut F) -> Result<(), E>
    where
        E: From<FramingError>,
        F: FnMut(Option<&str>, &str) -> Result<(), E>,
    {
        if self.pos < self.buf.len() {
            self.feed(b"\n", on_event)?;
        }
        if self.has_data {
            self.feed(b"\n", on_event)?;
        }
        Ok(())
    }
}

/// An incremental newline-delimited JSON splitter (Ollama).
#[derive(Debug, Default)]
pub struct NdjsonDecoder {
    buf: Vec<u8>,
    pos: usize,
    /// `buf[pos..scanned]` holds no newline (see [`SseDecoder`]).
    scanned: usize,
}

impl NdjsonDecoder {
    /// A new decoder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; calls `on_line` for every non-empty line.
    pub fn feed<E, F>(&mut self, chunk: &[u8], on_line: &mut F) -> Result<(), E>
    where
        E: From<FramingError>,
        F: FnMut(&str) -> Result<(), E>,
    {
        self.buf.extend_from_slice(chunk);
        loop {
            let from = self.scanned.max(self.pos);
            let Some(nl) = self.buf[from..].iter().position(|&b| b == b'\n') else {
                self.scanned = self.buf.len();
                break;
            };
            let start = self.pos;
            let end = from + nl;
            self.pos = end + 1;
            let line = std::str::from_utf8(&self.buf[start..end])
                .map_err(|e| E::from(FramingError(format!("NDJSON line is not UTF-8: {e}"))))?
                .trim();
            if !line.is_empty() {
                on_line(line)?;
            }
        }
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
            self.scanned = 0;
        } else if self.pos > 64 * 1024 {
            self.buf.drain(..self.pos);
            self.scanned = self.scanned.saturating_sub(self.pos);
            self.pos = 0;
        }
        Ok(())
    }

    /// Ends the stream, delivering a last line without a newline.
    pub fn finish<E, F>(&mut self, on_line: &mut F) -> Result<(), E>
    where
        E: From<FramingError>,
        F: FnMut(&str) -> Result<(), E>,
    {
        if self.pos < self.buf.len() {
            self.feed(b"\n", on_line)?;
        }
        Ok(())
    }
}
