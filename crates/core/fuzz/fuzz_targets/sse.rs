//! The `text/event-stream` parser: `sse::Parser::with_limit("", 4096)` fed the input in two
//! pieces, split where byte 0 says (scaled to the input's length).
//!
//! Checks: events carry at most 4096 bytes of type and data together; once a push fails, every
//! later push fails too; and the split does not matter: fed in one piece the stream gives the
//! same events (those completed before a failure included) and the same outcome (last ID, retry).
#![no_main]

use hypersock_core::sse::{Parser, SseItem};
use libfuzzer_sys::fuzz_target;

const MAX: usize = 4096;

/// Feeds `pieces` in order; the events completed (before a failure too), and whether all pushes
/// succeeded.
fn feed(pieces: &[&[u8]]) -> (Vec<SseItem>, bool, Parser) {
    let mut p = Parser::with_limit("", MAX);
    let mut events = Vec::new();
    let mut failed = false;
    for piece in pieces {
        let mut items = Vec::new();
        let result = p.push_into(piece, &mut items);
        assert!(!failed || items.is_empty(), "events after a failure");
        for item in &items {
            match item {
                SseItem::Event { event, data, id } => {
                    assert!(data.len() <= MAX, "data of {} bytes", data.len());
                    // The type counts too (the default `message` is not the stream's).
                    let own = if event == "message" { 0 } else { event.len() };
                    assert!(
                        own + data.len() <= MAX,
                        "event of {} bytes",
                        own + data.len()
                    );
                    assert!(!id.contains('\0'));
                }
                other => panic!("the parser reported {other:?}"),
            }
        }
        events.extend(items);
        match result {
            Ok(()) => assert!(!failed, "a push succeeded after a failure"),
            Err(_) => failed = true,
        }
    }
    if failed {
        // Stays failed, also for an empty or harmless push.
        assert!(p.push(b"").is_err());
        assert!(p.push(b"\n\n").is_err());
    }
    (events, !failed, p)
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, stream)) = data.split_first() else {
        return;
    };
    let at = usize::from(cut) * stream.len() / 255;
    let (a, b) = stream.split_at(at);
    let (split_events, split_ok, split) = feed(&[a, b]);
    let (whole_events, whole_ok, whole) = feed(&[stream]);
    assert_eq!(split_ok, whole_ok, "the split changed the outcome");
    assert_eq!(split_events, whole_events, "the split changed the events");
    if whole_ok {
        assert_eq!(split.last_id(), whole.last_id());
        assert_eq!(split.retry, whole.retry);
    }
});
