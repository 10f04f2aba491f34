//! Every protocol's stream decoder (OpenAI chat and Responses, Anthropic, Gemini, Cohere,
//! Bedrock, Ollama): the first byte picks the protocol and the split size. No panic; errors are
//! typed decode or provider errors; the same events whatever the split; a stream that decodes
//! without error has finished.
#![no_main]

use libfuzzer_sys::fuzz_target;
use miyabi::ModelError;
use miyabi::model::internals::decoder;
use miyabi::model::{Protocol, StreamEvent};

fn run(protocol: Protocol, pieces: &[&[u8]]) -> (Vec<StreamEvent>, bool) {
    let mut d = decoder(protocol, "fuzz");
    let mut events = Vec::new();
    let typed = |e: &ModelError| {
        matches!(
            e,
            ModelError::Decode(_)
                | ModelError::Auth(_)
                | ModelError::RateLimited { .. }
                | ModelError::ContextLength(_)
                | ModelError::InvalidRequest(_)
                | ModelError::ContentFiltered(_)
                | ModelError::Server(_)
        )
    };
    for p in pieces {
        if let Err(e) = d.feed(p, &mut events) {
            assert!(typed(&e), "untyped error {e:?}");
            return (events, true);
        }
    }
    match d.finish(&mut events) {
        Ok(()) => (events, false),
        Err(e) => {
            assert!(typed(&e), "untyped error {e:?}");
            (events, true)
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let protocol = Protocol::ALL[usize::from(sel) % Protocol::ALL.len()];
    let step = usize::from(sel / 16) + 1;
    let pieces: Vec<&[u8]> = body.chunks(step).collect();
    let (whole, whole_failed) = run(protocol, &[body]);
    let (split, split_failed) = run(protocol, &pieces);
    if !whole_failed && !split_failed {
        assert_eq!(whole, split, "{protocol}: events depend on the split");
    }
    if !whole_failed {
        assert!(
            whole
                .iter()
                .any(|e| matches!(e, StreamEvent::Finish { .. })),
            "{protocol}: a clean stream without Finish"
        );
    }
});
