//! The SSE and NDJSON framers: no panic, and the same events whether the input arrives whole or
//! split at the points the first byte chooses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use miyabi::model::internals::{FramingError, NdjsonDecoder, SseDecoder};

type Events = Vec<(Option<String>, String)>;

fn sse(pieces: &[&[u8]]) -> (Events, bool) {
    let mut d = SseDecoder::new();
    let mut events = Vec::new();
    let mut push = |e: Option<&str>, data: &str| -> Result<(), FramingError> {
        events.push((e.map(str::to_owned), data.to_owned()));
        Ok(())
    };
    for p in pieces {
        if d.feed(p, &mut push).is_err() {
            return (events, true);
        }
    }
    let failed = d.finish(&mut push).is_err();
    (events, failed)
}

fn ndjson(pieces: &[&[u8]]) -> (Vec<String>, bool) {
    let mut d = NdjsonDecoder::new();
    let mut lines = Vec::new();
    let mut push = |l: &str| -> Result<(), FramingError> {
        lines.push(l.to_owned());
        Ok(())
    };
    for p in pieces {
        if d.feed(p, &mut push).is_err() {
            return (lines, true);
        }
    }
    let failed = d.finish(&mut push).is_err();
    (lines, failed)
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 32) + 1;
    let pieces: Vec<&[u8]> = body.chunks(step).collect();
    let (whole, whole_failed) = sse(&[body]);
    let (split, split_failed) = sse(&pieces);
    if !whole_failed && !split_failed {
        assert_eq!(whole, split, "SSE events depend on the split");
    }
    let (whole, whole_failed) = ndjson(&[body]);
    let (split, split_failed) = ndjson(&pieces);
    if !whole_failed && !split_failed {
        assert_eq!(whole, split, "NDJSON lines depend on the split");
    }
});
