//! The handlers of examples/flow/flow.graph: the seed's catcher, which takes the full event.

use graphc_runtime::{Context, Event};
use serde_json::json;

/// The error handler: it receives the event as it entered the failed step, with the failed
/// step's name and the error, and records them in the body.
pub fn catcher(event: &mut Event, _context: &Context) {
    tracing_free_log(event);
    event.body = json!({
        "caught": true,
        "origin_state": event.origin_state.clone(),
        "error": event.error.as_ref().map(|e| e.message.clone()),
    });
}

fn tracing_free_log(event: &Event) {
    eprintln!("catcher: step {:?} failed for event {}", event.origin_state, event.id);
}
