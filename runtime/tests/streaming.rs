//! Streamed answers over real TCP on loopback: chunks reach the caller as they are produced
//! (the first before the last exists), 64 concurrent callers each get their own chunks in order
//! as JSON lines or server-sent events, a caller that goes away stops the producer, a failure
//! or a deadline mid-stream ends it with an error chunk, the probes answer while every stream
//! waits, `collect()` gathers a stream into one answer, and `ModelStreamInfer` streams over gRPC.

mod common;

use common::start;
use graphc_runtime::http::ServeOptions;
use graphc_runtime::streaming::{Chunk, ChunkIter, Collect, StreamNode, body_chunks};
use graphc_runtime::*;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::Duration;

/// Chunks produced so far, by the request's tag: how a test sees a producer stop.
static PRODUCED: LazyLock<Mutex<HashMap<String, usize>>> = LazyLock::new(Mutex::default);

/// Opened by a test once it holds a first chunk; a gated stream waits for it before its second.
static GATE: LazyLock<(Mutex<bool>, Condvar)> = LazyLock::new(|| (Mutex::new(false), Condvar::new()));

fn produced(tag: &str) -> usize {
    PRODUCED.lock().unwrap().get(tag).copied().unwrap_or(0)
}

fn wait_for_gate() -> bool {
    let (open, opened) = &*GATE;
    let open = open.lock().unwrap();
    let (open, _) = opened.wait_timeout_while(open, Duration::from_secs(20), |open| !*open).unwrap();
    *open
}

fn open_gate() {
    let (open, opened) = &*GATE;
    *open.lock().unwrap() = true;
    opened.notify_all();
}

/// `{"n", "tag", "sleep_ms"?, "fail_at"?, "gate"?}`: `n` chunks `{"tag", "i"}`, produced lazily,
/// one at a time.
fn tokens(body: Value) -> ChunkIter {
    let Some(n) = body["n"].as_u64() else {
        return Box::new(std::iter::once(Err(StepError::invalid_input("`n` must be a number of chunks"))));
    };
    let tag = body["tag"].as_str().unwrap_or_default().to_string();
    let sleep = Duration::from_millis(body["sleep_ms"].as_u64().unwrap_or(0));
    let fail_at = body["fail_at"].as_u64();
    let gated = body["gate"].as_bool().unwrap_or(false);
    Box::new((0..n).map(move |i| {
        if gated && i == 1 && !wait_for_gate() {
            return Err(StepError::new("the gate never opened: the first chunk did not reach the caller"));
        }
        std::thread::sleep(sleep);
        if fail_at == Some(i) {
            return Err(StepError::new(format!("chunk {i} failed")));
        }
        *PRODUCED.lock().unwrap().entry(tag.clone()).or_default() += 1;
        Ok(json!({ "tag": tag, "i": i }))
    }))
}

/// Each chunk, seen by the step after the streaming one.
fn mark(mut chunk: Value) -> Value {
    chunk["seen"] = json!(true);
    chunk
}

type Streaming = StreamNode<
    graphc_runtime::streaming::StreamingFn<fn(Value) -> ChunkIter>,
    StepNode<Body<fn(Value) -> Value>, End>,
    End,
>;

/// tokens -> mark (responds): every chunk, marked, answers.
fn streaming() -> Arc<AsyncPipeline<Streaming>> {
    streaming_in(Context::new("streaming"))
}

fn streaming_in(context: Context) -> Arc<AsyncPipeline<Streaming>> {
    let tokens: fn(Value) -> ChunkIter = tokens;
    let mark: fn(Value) -> Value = mark;
    let node = StreamNode::with(
        "tokens",
        body_chunks(tokens),
        StepNode::new("mark", Body(mark), End).responding(),
        End,
        false,
        true,
        NoCatcher,
    );
    AsyncPipeline::new(node, context, true)
}

fn options() -> ServeOptions {
    ServeOptions { concurrency: 256, ..ServeOptions::default() }
}

/// Reads a streamed answer to its end: each chunk's JSON, in order.
async fn read_lines(response: reqwest::Response) -> Vec<Value> {
    let text = response.text().await.unwrap();
    text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
}

fn expected(tag: &str, n: u64) -> Vec<Value> {
    (0..n).map(|i| json!({ "tag": tag, "i": i, "seen": true })).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_chunk_reaches_the_caller_before_the_last_is_produced() {
    let server = start(streaming(), options()).await;
    let client = reqwest::Client::new();
    let mut response =
        client.post(server.url("/")).json(&json!({ "n": 5, "tag": "gated", "gate": true })).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    assert!(response.headers().get("content-length").is_none(), "a streamed answer has no length");
    let first = tokio::time::timeout(Duration::from_secs(10), response.chunk()).await.expect("the first chunk comes");
    let first: Value = serde_json::from_slice(&first.unwrap().unwrap()).unwrap();
    assert_eq!(first, json!({ "tag": "gated", "i": 0, "seen": true }));
    // The producer is held before its second chunk until now: the first came while the rest did
    // not yet exist.
    assert_eq!(produced("gated"), 1);
    open_gate();
    let mut rest = Vec::new();
    while let Some(bytes) = response.chunk().await.unwrap() {
        rest.extend_from_slice(&bytes);
    }
    let rest: Vec<Value> = String::from_utf8(rest).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rest, expected("gated", 5)[1..].to_vec());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_callers_each_get_their_own_chunks_in_order() {
    let server = start(streaming(), options()).await;
    let client = reqwest::Client::new();
    let calls = (0..64u64).map(|caller| {
        let (client, url) = (client.clone(), server.url("/"));
        async move {
            let tag = format!("caller-{caller}");
            let n = 1 + caller % 9;
            match caller % 4 {
                // Not a number of chunks: refused before any chunk, with its status.
                3 if caller % 8 == 3 => {
                    let response = client.post(&url).json(&json!({ "n": "many", "tag": tag })).send().await.unwrap();
                    assert_eq!(response.status(), 422, "{tag}");
                    assert_eq!(response.headers()["content-type"], "application/json");
                    let error: Value = response.json().await.unwrap();
                    assert!(error["error"].as_str().unwrap().contains("`n` must be a number"), "{error}");
                }
                // Server-sent events.
                1 => {
                    let response = client
                        .post(&url)
                        .header("accept", "text/event-stream")
                        .json(&json!({ "n": n, "tag": tag, "sleep_ms": caller % 3 }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200);
                    assert_eq!(response.headers()["content-type"], "text/event-stream");
                    let text = response.text().await.unwrap();
                    let events: Vec<Value> = text
                        .split("\n\n")
                        .filter(|event| !event.is_empty())
                        .map(|event| serde_json::from_str(event.strip_prefix("data: ").unwrap()).unwrap())
                        .collect();
                    assert_eq!(events, expected(&tag, n), "{tag}");
                }
                // JSON lines.
                _ => {
                    let response = client
                        .post(&url)
                        .json(&json!({ "n": n, "tag": tag, "sleep_ms": caller % 3 }))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(response.status(), 200);
                    assert_eq!(read_lines(response).await, expected(&tag, n), "{tag}");
                }
            }
        }
    });
    let all = futures_join(calls.collect()).await;
    assert_eq!(all, 64);
    server.stop().await;
}

/// Runs every future at once, on the runtime's threads; how many finished.
async fn futures_join<F: std::future::Future<Output = ()> + Send + 'static>(calls: Vec<F>) -> usize {
    let tasks: Vec<_> = calls.into_iter().map(tokio::spawn).collect();
    let mut finished = 0;
    for task in tasks {
        task.await.unwrap();
        finished += 1;
    }
    finished
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_goes_away_stops_the_producer() {
    let server = start(streaming(), options()).await;
    let client = reqwest::Client::new();
    let mut response =
        client.post(server.url("/")).json(&json!({ "n": 1000, "tag": "leaves", "sleep_ms": 5 })).send().await.unwrap();
    assert!(response.chunk().await.unwrap().is_some());
    drop(response);
    drop(client);
    // At 5 ms a chunk, the whole stream would take 5 s; once the caller is gone, the producer
    // stops at its next chunks (a few are in the channels between).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_leaving = produced("leaves");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(produced("leaves"), after_leaving, "the producer went on for a caller that had gone");
    assert!(after_leaving < 200, "{after_leaving} chunks were produced");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_mid_stream_is_the_last_chunk_with_its_status_and_kind() {
    let mut context = Context::new("streaming");
    context.expose_errors = true;
    let server = start(streaming_in(context), options()).await;
    let client = reqwest::Client::new();
    let response =
        client.post(server.url("/")).json(&json!({ "n": 5, "tag": "fails", "fail_at": 2 })).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let chunks = read_lines(response).await;
    assert_eq!(chunks[..2], expected("fails", 2)[..]);
    assert_eq!(chunks.len(), 3, "{chunks:?}");
    assert_eq!(chunks[2]["status"], 500);
    assert_eq!(chunks[2]["step"], "tokens");
    assert!(chunks[2]["error"].as_str().unwrap().contains("chunk 2 failed"), "{}", chunks[2]);
    // As an event, a failure is named.
    let response = client
        .post(server.url("/"))
        .header("accept", "text/event-stream")
        .json(&json!({ "n": 5, "tag": "fails-sse", "fail_at": 1 }))
        .send()
        .await
        .unwrap();
    let text = response.text().await.unwrap();
    assert!(text.ends_with("\n\n") && text.contains("event: error\ndata: {"), "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_bounds_a_stream_and_stops_its_producer() {
    let server = start(streaming(), options()).await;
    let client = reqwest::Client::new();
    let response = client
        .post(server.url("/"))
        .header("x-request-timeout-ms", "300")
        .json(&json!({ "n": 100, "tag": "late", "sleep_ms": 20 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let chunks = read_lines(response).await;
    let last = chunks.last().unwrap();
    assert_eq!(last["kind"], "timeout", "{last}");
    assert_eq!(last["status"], 504);
    assert!(chunks.len() < 50, "{} chunks in 300 ms at 20 ms each", chunks.len());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopped = produced("late");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(produced("late"), stopped, "the producer went on past the deadline");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_while_every_stream_waits_in_user_code() {
    let server = start(streaming(), options()).await;
    let client = reqwest::Client::new();
    let streams: Vec<_> = (0..16)
        .map(|caller| {
            let (client, url) = (client.clone(), server.url("/"));
            tokio::spawn(async move {
                let response = client
                    .post(&url)
                    .json(&json!({ "n": 3, "tag": format!("held-{caller}"), "sleep_ms": 400 }))
                    .send()
                    .await
                    .unwrap();
                read_lines(response).await.len()
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let live = client.get(server.url("/v2/health/live")).send().await.unwrap();
    assert_eq!(live.status(), 200);
    // Every stream is still producing: the probe did not wait for them.
    assert!((0..16).all(|caller| produced(&format!("held-{caller}")) < 3));
    for stream in streams {
        assert_eq!(stream.await.unwrap(), 3);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_answers_once_with_every_chunk() {
    let tokens: fn(Value) -> ChunkIter = tokens;
    let node = StreamNode::with(
        "tokens",
        body_chunks(tokens),
        End,
        StepNode::new("all", Collect, End).responding(),
        false,
        false,
        NoCatcher,
    );
    let server = start(AsyncPipeline::new(node, Context::new("collecting"), true), options()).await;
    let response =
        reqwest::Client::new().post(server.url("/")).json(&json!({ "n": 3, "tag": "whole" })).send().await.unwrap();
    assert_eq!(response.headers()["content-type"], "application/json");
    let whole: Value = response.json().await.unwrap();
    assert_eq!(whole, json!([{ "tag": "whole", "i": 0 }, { "tag": "whole", "i": 1 }, { "tag": "whole", "i": 2 }]));
    server.stop().await;
}

#[test]
fn the_mock_server_reads_a_stream_whole_and_a_test_reads_its_chunks() {
    let server = MockServer::new(streaming());
    let response = server.test("/", json!({ "n": 3, "tag": "mock" }));
    assert_eq!(response.status, 200);
    assert_eq!(response.chunk_bodies(), Some(expected("mock", 3)));
    let events = server
        .request("POST", "/")
        .header("accept", "text/event-stream")
        .json(&json!({ "n": 2, "tag": "mock-sse" }))
        .send();
    assert_eq!(events.chunk_bodies(), Some(expected("mock-sse", 2)));
    assert_eq!(server.test("/", json!({ "n": 1 })).chunk_bodies().map(|c| c.len()), Some(1));
    assert_eq!(server.test("/v2/health/live", json!({})).chunk_bodies(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_events_gets_one_line_per_chunk() {
    let input =
        "{\"n\": 2, \"tag\": \"a\"}\n{\"n\": 0, \"tag\": \"none\"}\n{\"n\": 3, \"tag\": \"b\", \"fail_at\": 1}\n";
    let (mut output, mut errors) = (Vec::new(), Vec::new());
    let options = graphc_runtime::jsonl::JsonlOptions::default();
    let summary =
        graphc_runtime::jsonl::run(Arc::new(streaming()), input.as_bytes(), None, &mut output, &mut errors, &options)
            .await
            .unwrap();
    assert_eq!((summary.events, summary.succeeded, summary.failed), (3, 2, 1));
    let lines: Vec<Value> =
        String::from_utf8(output).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len(), 5, "{lines:?}");
    assert_eq!(
        (lines[0]["chunk"].clone(), lines[0]["body"].clone()),
        (json!(0), json!({"tag": "a", "i": 0, "seen": true}))
    );
    assert_eq!(lines[1]["chunk"], 1);
    assert_eq!((lines[2]["status"].clone(), lines[2]["chunks"].clone()), (json!(200), json!(0)));
    assert_eq!(lines[3]["body"], json!({"tag": "b", "i": 0, "seen": true}));
    assert_eq!(lines[4]["status"], 500);
    let errors = String::from_utf8(errors).unwrap();
    assert!(errors.contains("\"line\":3"), "{errors}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunk_is_sent_once_whatever_clones_of_the_answer_exist() {
    let pipeline = streaming();
    let response = pipeline.handle(Event::new(json!({ "n": 2, "tag": "clone" }))).await;
    let copy = response.clone();
    let chunks = response.chunks.as_ref().unwrap().collect().await;
    assert_eq!(
        chunks,
        vec![Chunk::Data(expected("clone", 2)[0].clone()), Chunk::Data(expected("clone", 2)[1].clone())]
    );
    assert!(copy.chunks.unwrap().collect().await.is_empty());
}
