//! Batch runs: every event answered once, in input order whatever order they finish in,
//! failures counted and listed with their line, and events given as bodies or as events.

use graphc_runtime::jsonl::{JsonlOptions, run};
use graphc_runtime::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

/// Answers `{"n": n}` after a delay that makes later lines finish first; fails on `n < 0`.
struct Scrambled;

impl Node for Scrambled {
    async fn push(&self, event: &mut Event, run: &run::Run) {
        let n = event.body["n"].as_i64().unwrap_or(0);
        if n < 0 {
            run.fail("scrambled", &StepError::invalid_input("negative"));
            return;
        }
        tokio::time::sleep(Duration::from_micros(((100 - n % 100) * 20) as u64)).await;
        run.respond(&json!({ "n": n, "id": event.id.text() }));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_come_in_input_order_and_failures_are_listed_with_their_line() {
    let mut input = String::new();
    for n in 0..2_000 {
        let n = if n == 1_234 { -1 } else { n };
        input.push_str(&format!("{{\"n\": {n}}}\n"));
    }
    input.push_str("{\"body\": {\"n\": 7}, \"id\": \"given\", \"path\": \"/p\"}\n");
    input.push_str("{oops\n");
    let handler = Arc::new(AsyncPipeline::new(Scrambled, Context::new("batch"), true));
    let (mut output, mut errors) = (Vec::new(), Vec::new());
    let options = JsonlOptions { concurrency: 50, progress: false };
    let summary = run(handler, input.as_bytes(), Some(2_002), &mut output, &mut errors, &options).await.unwrap();
    assert_eq!((summary.events, summary.succeeded, summary.failed), (2_002, 2_000, 2));
    let answers: Vec<Value> =
        String::from_utf8(output).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(answers.len(), 2_002, "one answer per line");
    for (index, answer) in answers.iter().take(2_000).enumerate() {
        if index == 1_234 {
            assert_eq!(answer["status"], 422);
        } else {
            assert_eq!(answer["body"]["n"], index as i64, "line {} answered in order", index + 1);
        }
    }
    assert_eq!((answers[2_000]["id"].clone(), answers[2_000]["body"]["n"].clone()), (json!("given"), json!(7)));
    assert_eq!(answers[2_001]["status"], 400);
    let failures: Vec<Value> =
        String::from_utf8(errors).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let lines: Vec<Value> = failures.iter().map(|f| f["line"].clone()).collect();
    assert_eq!(lines, [json!(1_235), json!(2_002)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_thousand_events_all_answered() {
    let step: Body<fn(Value) -> Value> = Body(|body| body);
    let handler = Arc::new(SyncPipeline::new(StepNode::new("echo", step, End), Context::new("batch")));
    let input: String = (0..100_000).map(|n| format!("{{\"n\": {n}}}\n")).collect();
    let mut output = Vec::new();
    let summary =
        run(handler, input.as_bytes(), None, &mut output, std::io::sink(), &JsonlOptions::default()).await.unwrap();
    assert_eq!((summary.events, summary.succeeded, summary.failed), (100_000, 100_000, 0));
    let last: Value = serde_json::from_str(String::from_utf8(output).unwrap().lines().last().unwrap()).unwrap();
    assert_eq!(last["body"]["n"], 99_999);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_line_fails_alone_with_its_line_number_and_blank_lines_are_skipped() {
    let step: Body<fn(Value) -> Value> = Body(|body| body);
    let handler = Arc::new(SyncPipeline::new(StepNode::new("echo", step, End), Context::new("batch")));
    let mut input = b"\xEF\xBB\xBF{\"n\": 1}\r\n\n   \n{\"n\": 2}\n".to_vec();
    input.extend_from_slice(b"{\"n\": \xFF}\n{oops\n{\"n\": 3}");
    let (mut output, mut errors) = (Vec::new(), Vec::new());
    let summary =
        run(handler, input.as_slice(), None, &mut output, &mut errors, &JsonlOptions::default()).await.unwrap();
    assert_eq!((summary.events, summary.succeeded, summary.failed), (5, 3, 2));
    let answers: Vec<Value> =
        String::from_utf8(output).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    let bodies: Vec<Value> = answers.iter().map(|answer| answer["body"]["n"].clone()).collect();
    assert_eq!(bodies, [json!(1), json!(2), Value::Null, Value::Null, json!(3)]);
    let failures: Vec<Value> =
        String::from_utf8(errors).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(failures.len(), 2);
    assert_eq!((failures[0]["line"].clone(), failures[1]["line"].clone()), (json!(5), json!(6)));
    assert!(failures[0]["error"]["error"].as_str().unwrap().starts_with("not UTF-8"), "{}", failures[0]);
    assert!(failures[1]["error"]["error"].as_str().unwrap().starts_with("not JSON"), "{}", failures[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_past_the_worker_count_runs_that_many_blocking_events_at_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    static MOST: AtomicUsize = AtomicUsize::new(0);
    fn slow(body: Value) -> Value {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        MOST.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        RUNNING.fetch_sub(1, Ordering::SeqCst);
        body
    }
    let pipeline = AsyncPipeline::new(
        StepNode::new("slow", Blocking::new(Body(slow)), End).responding(),
        Context::new("batch"),
        true,
    );
    let input: String = (0..160).map(|n| format!("{{\"n\": {n}}}\n")).collect();
    let options = JsonlOptions { concurrency: 16, progress: false };
    let summary =
        run(Arc::new(pipeline), input.as_bytes(), None, std::io::sink(), std::io::sink(), &options).await.unwrap();
    assert_eq!(summary.succeeded, 160);
    assert_eq!(MOST.load(Ordering::SeqCst), 16, "16 events ran at once on 2 workers, and never more");
}
