//! A step's logs carry its name and the event's id at `debug`, on both executors, and no span
//! is made under an `info` filter. Its own test binary: a subscriber's level is process-wide.

use graphc_runtime::*;
use serde_json::{Value, json};
use std::io::Write;
use std::sync::{Arc, Mutex};
use tracing_subscriber::fmt::MakeWriter;

/// Whatever the subscriber writes, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

fn logging_step() -> Body<impl Fn(Value) -> Value + Send + Sync + 'static> {
    Body(|body: Value| {
        tracing::info!("inside the step");
        body
    })
}

fn logs_at(level: tracing::Level, run: impl FnOnce()) -> String {
    let captured = Captured::default();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(level).with_ansi(false).with_writer(captured.clone()).finish();
    tracing::subscriber::with_default(subscriber, run);
    captured.text()
}

/// What one event with this id logs through a one-step sync pipeline at `level`.
fn sync_logs(level: tracing::Level, id: &str) -> String {
    let sync = SyncPipeline::new(StepNode::new("greet", logging_step(), End), Context::new("spans"));
    logs_at(level, || {
        sync.process(Event::new(json!({})).with_id(id));
    })
}

#[test]
fn at_debug_a_steps_log_names_the_step_and_the_event_on_both_executors() {
    let logs = sync_logs(tracing::Level::DEBUG, "sync-event");
    assert!(logs.contains("inside the step"), "{logs}");
    assert!(logs.contains("step{step=\"greet\" event_id=sync-event}"), "{logs}");

    let asynchronous =
        AsyncPipeline::new(StepNode::new("greet", logging_step(), End).responding(), Context::new("spans"), true);
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let logs = logs_at(tracing::Level::DEBUG, || {
        runtime.block_on(asynchronous.process(Event::new(json!({})).with_id("async-event")));
    });
    assert!(logs.contains("step{step=\"greet\" event_id=async-event}"), "{logs}");
}

#[test]
fn at_info_a_step_logs_without_a_span() {
    let logs = sync_logs(tracing::Level::INFO, "quiet-event");
    assert!(logs.contains("inside the step"), "{logs}");
    assert!(!logs.contains("step{"), "{logs}");
}
