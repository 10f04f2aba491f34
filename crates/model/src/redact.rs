//! Scrubbing configured secrets out of text built from what a provider (or a webhook receiver)
//! answered.
//!
//! A client knows the secrets it was configured with: API keys, bearer tokens, AWS secret keys
//! and session tokens, OAuth access tokens and assertions, sensitive custom headers, secret
//! parts of URLs. Providers sometimes echo them (OpenAI's 401 says `Incorrect API key provided:
//! sk-...`), so every error built from an HTTP answer or a stream error event goes through
//! [`Secrets::redact`] before anything else sees it.
//!
//! A secret is replaced wherever it occurs in full, and so is any run of at least
//! [`WINDOW`] characters copied from it, which also catches a secret cut short by a provider or
//! by our own truncation of long bodies, and one whose `/` or `+` were escaped. Values shorter
//! than [`MIN_SECRET`] characters are not treated as secrets (replacing them would mangle
//! ordinary text and they give no protection anyway).

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

/// Values shorter than this are not redacted.
pub(crate) const MIN_SECRET: usize = 6;
/// Any run of this many bytes copied from a secret is redacted.
pub(crate) const WINDOW: usize = 12;
/// What a redacted run becomes.
pub(crate) const REDACTED: &str = "[REDACTED]";

/// The secrets of one client. Cheap to clone; its `Debug` shows only how many there are.
#[derive(Clone, Default)]
pub struct Secrets {
    list: Arc<Vec<Entry>>,
}

#[derive(Clone, PartialEq, Eq)]
struct Entry {
    value: String,
    /// Also redact runs of [`WINDOW`] bytes copied from it (credentials); otherwise only whole
    /// occurrences (a whole URL, whose host and path words are public).
    partial: bool,
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secrets({})", self.list.len())
    }
}

/// Header names whose values are credentials.
pub(crate) fn is_sensitive_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "auth",
        "key",
        "token",
        "secret",
        "password",
        "passwd",
        "signature",
        "credential",
        "cookie",
        "session",
    ]
    .iter()
    .any(|w| n.contains(w))
}

impl Secrets {
    /// The given values (and their escaped forms), longest first; short ones are dropped.
    pub fn new<I, S>(values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut s = Self::default();
        for v in values {
            s.push(v.as_ref(), true);
        }
        s
    }

    /// These secrets plus `value`, redacted only where it occurs whole.
    pub fn with_exact(&self, value: &str) -> Self {
        let mut s = self.clone();
        s.push(value, false);
        s
    }

    fn push(&mut self, value: &str, partial: bool) {
        let list = Arc::make_mut(&mut self.list);
        let value = value.trim();
        let mut forms = vec![value.to_owned()];
        // How a value may come back escaped: JSON's `\/`, percent-encoding.
        if value.contains('/') {
            forms.push(value.replace('/', "\\/"));
        }
        let encoded = percent_encode(value);
        if encoded != value {
            forms.push(encoded);
        }
        // A credential header value such as `Bearer <token>`: the token alone too.
        if let Some((scheme, rest)) = value.split_once(' ')
            && !scheme.is_empty()
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            forms.push(rest.trim().to_owned());
        }
        for f in forms {
            if f.len() < MIN_SECRET {
                continue;
            }
            match list.iter_mut().find(|e| e.value == f) {
                Some(e) => e.partial |= partial,
                None => list.push(Entry { value: f, partial }),
            }
        }
        list.sort_by_key(|e| std::cmp::Reverse(e.value.len()));
    }

    /// These secrets plus `value` (a token obtained for one call).
    pub fn with(&self, value: &str) -> Self {
        let mut s = self.clone();
        s.push(value, true);
        s
    }

    /// These secrets plus the secret parts of `url`: the password of its user info and the
    /// values of query parameters whose names look like credentials (`key`, `token`, `sig`...).
    pub fn with_url(&self, url: &str) -> Self {
        let mut s = self.clone();
        for v in url_secrets(url) {
            s.push(&v, true);
        }
        s
    }

    /// Whether there is nothing to redact.
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// `text` with every secret, and every run of [`WINDOW`] bytes copied from one, replaced.
    /// A secret found whole becomes `[REDACTED ...abcd]` (its last four characters, to tell keys
    /// apart) when it is at least 20 characters long, `[REDACTED]` otherwise.
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.list.is_empty() || text.len() < MIN_SECRET {
            return Cow::Borrowed(text);
        }
        let bytes = text.as_bytes();
        // Byte ranges to replace, and whether each is a whole secret (for the hint).
        let mut spans: Vec<(usize, usize, Option<&str>)> = Vec::new();
        for entry in self.list.iter() {
            let s = entry.value.as_bytes();
            let mut from = 0;
            while let Some(i) = find(&bytes[from..], s) {
                spans.push((from + i, from + i + s.len(), Some(entry.value.as_str())));
                from += i + s.len();
            }
            if entry.partial && s.len() >= WINDOW && bytes.len() >= WINDOW {
                let windows: HashSet<&[u8]> = s.windows(WINDOW).collect();
                for (i, w) in bytes.windows(WINDOW).enumerate() {
                    if windows.contains(w) {
                        spans.push((i, i + WINDOW, None));
                    }
                }
            }
        }
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        spans.sort_by_key(|&(start, end, _)| (start, std::cmp::Reverse(end)));
        let mut merged: Vec<(usize, usize, Option<&str>)> = Vec::new();
        for (start, end, whole) in spans {
            match merged.last_mut() {
                Some(last) if start <= last.1 => {
                    if end > last.1 {
                        last.1 = end;
                        last.2 = None;
                    }
                }
                _ => merged.push((start, end, whole)),
            }
        }
        let mut out = String::with_capacity(text.len());
        let mut pos = 0;
        for (start, end, whole) in merged {
            // Widen to character boundaries (a window may cut a multi-byte character).
            let mut start = start.max(pos);
            while !text.is_char_boundary(start) {
                start -= 1;
            }
            let mut end = end.min(text.len());
            while !text.is_char_boundary(end) {
                end += 1;
            }
            if start < pos {
                start = pos;
            }
            out.push_str(&text[pos..start]);
            let exact = whole.filter(|w| w.len() == end - start);
            match exact {
                Some(w) if w.chars().count() >= 20 => {
                    let tail: String = w
                        .chars()
                        .rev()
                        .take(4)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    out.push_str("[REDACTED ...");
                    out.push_str(&tail);
                    out.push(']');
                }
                _ => out.push_str(REDACTED),
            }
            pos = end;
        }
        out.push_str(&text[pos..]);
        Cow::Owned(out)
    }

    /// Redacts a string in place.
    pub(crate) fn redact_in_place(&self, s: &mut String) {
        if let Cow::Owned(r) = self.redact(s) {
            *s = r;
        }
    }

    /// Redacts every string (and object key) inside a JSON value, in place.
    pub(crate) fn redact_json(&self, v: &mut serde_json::Value) {
        if self.list.is_empty() {
            return;
        }
        match v {
            serde_json::Value::String(s) => self.redact_in_place(s),
            serde_json::Value::Array(items) => items.iter_mut().for_each(|i| self.redact_json(i)),
            serde_json::Value::Object(map) => {
                let old = std::mem::take(map);
                for (mut k, mut item) in old {
                    self.redact_in_place(&mut k);
                    self.redact_json(&mut item);
                    map.insert(k, item);
                }
            }
            _ => {}
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The secret parts of a URL: the user-info password and credential-like query values, each
/// as written and decoded.
pub(crate) fn url_secrets(url: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Ok(parsed) = reqwest::Url::parse(url) else {
        return out;
    };
    if let Some(pw) = parsed.password() {
        out.push(pw.to_owned());
        if let Ok(decoded) = percent_decode(pw) {
            out.push(decoded);
        }
    }
    if let Some(q) = parsed.query() {
        for pair in q.split('&') {
            if let Some((name, value)) = pair.split_once('=')
                && (is_sensitive_name(name) || name.eq_ignore_ascii_case("sig"))
            {
                out.push(value.to_owned());
                if let Ok(decoded) = percent_decode(value) {
                    out.push(decoded);
                }
            }
        }
    }
    out
}

fn percent_decode(s: &str) -> Result<String, std::string::FromUtf8Error> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| char::from(c).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'%'));
            i += 3;
        } else if b[i] == b'+' {
            out.push(b' ');
            i += 1;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out)
}

/// `url` with its secret parts (see [`url_secrets`]) replaced, for `Debug` output and logs.
pub(crate) fn redact_url(url: &str) -> String {
    Secrets::new(url_secrets(url)).redact(url).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn whole_partial_escaped_and_multibyte_occurrences() {
        let key = "sk-live-0123456789abcdefghijKLMN";
        let s = Secrets::new([key]);
        assert_eq!(s.redact(&format!("bad {key}!")), "bad [REDACTED ...KLMN]!");
        // A prefix cut short, JSON-escaped and percent-encoded forms.
        let cut = &key[..20];
        assert_eq!(s.redact(&format!("key {cut}")), "key [REDACTED]");
        let aws = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        let s = Secrets::new([aws]);
        for shown in [aws.replace('/', "\\/"), aws.replace('/', "%2F")] {
            let out = s.redact(&shown);
            assert!(!out.contains("bPxRfiCYEXAMPLEKEY"), "{out}");
            assert!(!out.contains("wJalrXUtnFEMI"), "{out}");
        }
        // Non-ASCII secrets and text stay valid UTF-8.
        let s = Secrets::new(["пароль-очень-секретный"]);
        let out = s.redact("é пароль-очень-секретный é");
        assert_eq!(out, "é [REDACTED ...тный] é");
        let out = s.redact("x ароль-очень-сек y");
        assert!(out.contains("[REDACTED]") && out.starts_with("x ") && out.ends_with(" y"));
        // Short values are not secrets; unrelated text is untouched and borrowed.
        let s = Secrets::new(["abc", "Bearer tok-0123456789abcdef"]);
        assert!(matches!(s.redact("abc abc"), Cow::Borrowed(_)));
        assert_eq!(s.redact("t=tok-0123456789abcdef"), "t=[REDACTED ...cdef]");
    }

    #[test]
    fn exact_entries_only_match_whole() {
        let s = Secrets::default().with_exact("https://hooks.example.invalid/services/x");
        assert_eq!(
            s.redact("see https://hooks.example.invalid/docs"),
            "see https://hooks.example.invalid/docs"
        );
        assert_eq!(
            s.redact("at https://hooks.example.invalid/services/x."),
            "at [REDACTED ...es/x]."
        );
    }

    #[test]
    fn url_secrets_and_redacted_urls() {
        let url = "https://u:p%40ss-word-1@h.invalid/v1?api_key=k-0123456789&x=public-value";
        let got = url_secrets(url);
        assert!(got.contains(&"p%40ss-word-1".to_owned()));
        assert!(got.contains(&"p@ss-word-1".to_owned()));
        assert!(got.contains(&"k-0123456789".to_owned()));
        assert!(!got.iter().any(|v| v == "public-value"));
        let shown = redact_url(url);
        assert!(
            !shown.contains("ss-word-1") && !shown.contains("k-0123456789"),
            "{shown}"
        );
        assert!(
            shown.contains("h.invalid") && shown.contains("public-value"),
            "{shown}"
        );
    }
}
