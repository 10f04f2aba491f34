//! Retry hints from providers: `retry-after` (seconds or an HTTP date), `retry-after-ms`,
//! Gemini's `RetryInfo.retryDelay`, and every adapter's error-body parser. No panic (no
//! `Duration` overflow, NaN or negative conversion, no date arithmetic overflow); every hint is
//! at most `RETRY_AFTER_CAP`; a hint the header parsers accept as seconds is also accepted inside
//! a Gemini error body, with the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use miyabi::model::Protocol;
use miyabi::model::internals::{
    RETRY_AFTER_CAP, adapter, parse_retry_after, parse_retry_after_ms, parse_retry_delay,
};

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fuzz_target!(|data: &[u8]| {
    // Raw bytes as an error body, for every protocol family.
    for p in Protocol::ALL {
        if let Some(d) = adapter(p).parse_error()(data).retry_after {
            assert!(d <= RETRY_AFTER_CAP, "{p}: {d:?}");
        }
    }
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    for d in [
        parse_retry_after(s),
        parse_retry_after_ms(s),
        parse_retry_delay(s),
    ]
    .into_iter()
    .flatten()
    {
        assert!(d <= RETRY_AFTER_CAP, "{s:?} gave {d:?}");
    }
    // The same text as Gemini's retryDelay inside a 429 body.
    let body = format!(
        r#"{{"error":{{"code":429,"status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":{}}}]}}}}"#,
        json_string(s)
    );
    let got = adapter(Protocol::Gemini).parse_error()(body.as_bytes()).retry_after;
    assert_eq!(got, parse_retry_delay(s), "{s:?}");
});
