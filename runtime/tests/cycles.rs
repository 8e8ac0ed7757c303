//! Loops, built as generated code builds them: a step that counts up, a choice that lets the
//! event out at its target or sends it back through a loop slot. Many callers at once each go
//! round their own number of times; the cap and the deadline end a loop that would not; a loop
//! a thousand rounds deep runs on a small stack on the sync engine.

use graphc_runtime::cycle::{Iterated, LoopBack, LoopBackSync, LoopSlot, LoopSlotSync};
use graphc_runtime::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

fn count_up(event: &Event, _: &Context) -> Result<Value, StepError> {
    let pause = event.body["pause_ms"].as_u64().unwrap_or(0);
    if pause > 0 {
        std::thread::sleep(Duration::from_millis(pause));
    }
    let mut body = event.body.clone();
    body["n"] = json!(body["n"].as_u64().unwrap_or(0) + 1);
    Ok(body)
}

fn at_target(event: &Event, _: &Context) -> Result<Option<usize>, StepError> {
    Ok(Some(if event.body["n"].as_u64() >= event.body["target"].as_u64() { 0 } else { 1 }))
}

fn context() -> Context {
    let mut context = Context::new("cycles");
    context.expose_errors = true;
    context
}

/// `count -> gate`, the gate letting the event out to `done` (the responder) at the target or
/// sending it back to `count`: async.
fn async_loop(cap: u32) -> Arc<AsyncPipeline<impl Node>> {
    let slot = LoopSlot::new();
    let done = StepNode::new("done", MapStep(|event: &Event, _: &Context| Ok(event.body.clone())), End).responding();
    let gate = StepNode::new("gate", Choice(at_target), Outlets(done, LoopBack::to(&slot)));
    let count = Arc::new(Iterated::new("count", cap, StepNode::new("count", MapStep(count_up), gate), NoCatcher));
    slot.bind(&count);
    AsyncPipeline::new(Shared(count), context(), true)
}

/// The same loop on the sync engine.
fn sync_loop(cap: u32) -> SyncPipeline<impl SyncNode> {
    let slot = LoopSlotSync::new();
    let gate = StepNode::new("gate", Choice(at_target), Outlets(End, LoopBackSync::to(&slot)));
    let count = Arc::new(Iterated::new("count", cap, StepNode::new("count", MapStep(count_up), gate), NoCatcher));
    slot.bind(&count);
    SyncPipeline::new(Shared(count), context())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_callers_each_go_round_their_own_number_of_times() {
    let handler = async_loop(100);
    let calls = (1..=64u64).map(|target| {
        let handler = Arc::clone(&handler);
        tokio::spawn(async move {
            let response = handler.handle(Event::new(json!({ "n": 0, "target": target }))).await;
            (target, response.status, response.json_body())
        })
    });
    for call in calls.collect::<Vec<_>>() {
        let (target, status, body) = call.await.unwrap();
        assert_eq!((status, body), (200, json!({ "n": target, "target": target })), "target {target}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_the_step_fails_with_max_iterations() {
    let handler = async_loop(100);
    let within = handler.handle(Event::new(json!({ "n": 0, "target": 100 }))).await;
    assert_eq!(within.json_body()["n"], json!(100), "a hundred entries are allowed");
    let over = handler.handle(Event::new(json!({ "n": 0, "target": 101 }))).await;
    let body = over.json_body();
    assert_eq!(over.status, 500, "{body}");
    assert_eq!(body["step"], json!("count"));
    assert!(body["error"].as_str().unwrap().contains("max_iterations is 100"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loop_that_outlives_the_callers_deadline_ends_with_504() {
    let handler = async_loop(1_000_000);
    let mut event = Event::new(json!({ "n": 0, "target": 1_000_000, "pause_ms": 2 }));
    event.limit_deadline(std::time::Instant::now() + Duration::from_millis(50));
    let started = std::time::Instant::now();
    let response = handler.handle(event).await;
    let body = response.json_body();
    assert_eq!(response.status, 504, "{body}");
    assert!(body["error"].as_str().unwrap().contains("went round the loop through `count`"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(5), "the loop ran on after its deadline");
}

#[test]
fn a_thousand_rounds_on_the_sync_engine_fit_a_small_stack() {
    // Each round nests the next call: the loop's edge back grows the stack as it needs.
    let answer = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(|| {
            let pipeline = sync_loop(1000);
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(pipeline.handle(Event::new(json!({ "n": 0, "target": 1000 }))))
        })
        .unwrap()
        .join()
        .unwrap();
    assert_eq!((answer.status, answer.json_body()), (200, json!({ "n": 1000, "target": 1000 })));
    let pipeline = sync_loop(1000);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let over = runtime.block_on(pipeline.handle(Event::new(json!({ "n": 0, "target": 1001 }))));
    assert_eq!(over.status, 500, "{}", over.json_body());
}
