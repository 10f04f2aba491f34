//! The AWS event-stream frame decoder: no panic, and the same messages and the same verdict
//! whether the input arrives whole or split at the points the first byte chooses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use miyabi::model::internals::{EventMessage, EventStreamDecoder};

fn run(pieces: &[&[u8]]) -> (Vec<EventMessage>, bool, bool) {
    let mut d = EventStreamDecoder::new();
    let mut out = Vec::new();
    for p in pieces {
        if d.feed(p, &mut out).is_err() {
            return (out, true, false);
        }
    }
    let partial = d.has_partial();
    (out, false, partial)
}

fuzz_target!(|data: &[u8]| {
    let Some((&step, body)) = data.split_first() else {
        return;
    };
    let step = usize::from(step % 64) + 1;
    let pieces: Vec<&[u8]> = body.chunks(step).collect();
    let whole = run(&[body]);
    let split = run(&pieces);
    assert_eq!(whole.1, split.1, "the verdict depends on the split");
    if !whole.1 {
        assert_eq!(whole, split, "messages depend on the split");
    }
});
