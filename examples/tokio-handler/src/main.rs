//! An async pipeline driven on a tokio runtime: the answer comes from the scorer while an audit
//! branch goes on behind a bounded queue.

use graphc_runtime::{Context, Event, Flow, Handler, Step, StepError};
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Events the audit branch has seen.
pub static AUDITED: AtomicUsize = AtomicUsize::new(0);

/// A step built once from the graph's arguments: `new crate::Scorer(weight = ...)`.
#[derive(Deserialize)]
pub struct Scorer {
    weight: f64,
}

impl Step for Scorer {
    fn process(&self, event: &mut Event, _context: &Context) -> Result<Flow, StepError> {
        let value = event.body["value"].as_f64().ok_or_else(|| StepError::invalid_input("`value` must be a number"))?;
        event.body = json!({ "score": value * self.weight });
        Ok(Flow::Next)
    }
}

/// The audit branch's handler.
pub fn audit(body: serde_json::Value) -> serde_json::Value {
    AUDITED.fetch_add(1, Ordering::SeqCst);
    body
}

graphc_macros::graph! {
    graph scoring {
        topology = flow;
        engine = async;

        step accept = filter(body.value >= 0);
        step score = new crate::Scorer(weight = 0.5) { respond; }
        queue audit_queue = memory(capacity = 16);
        step audit = fn crate::audit;

        accept -> [score, audit_queue];
        audit_queue -> audit;
    }
}

#[tokio::main]
async fn main() {
    let pipeline = scoring::pipeline(&graphc_runtime::Options::default()).expect("starts");
    for value in [4.0, -1.0] {
        let response = pipeline.handle(Event::new(json!({ "value": value }))).await;
        println!("{} {}", response.status, String::from_utf8_lossy(&response.body));
    }
    pipeline.drain().await;
    println!("audited: {}", AUDITED.load(Ordering::SeqCst));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answers_from_the_scorer_and_audits_in_the_background() {
        let pipeline = scoring::pipeline(&graphc_runtime::Options::default()).unwrap();
        let response = pipeline.handle(Event::new(json!({ "value": 4.0 }))).await;
        assert_eq!(response.json_body(), json!({ "score": 2.0 }));
        assert_eq!(pipeline.handle(Event::new(json!({ "value": -1 }))).await.status, 204);
        assert_eq!(
            pipeline.handle(Event::new(json!({ "value": "x" }))).await.status,
            422,
            "a value that is not a number fails validation"
        );
        pipeline.drain().await;
        assert_eq!(AUDITED.load(Ordering::SeqCst), 1, "the audit branch saw the one accepted event");
    }
}
