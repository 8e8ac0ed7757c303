//! Right under load: many concurrent clients over real TCP on loopback, every answer checked.
//! A batched route answers each request with its own rows' outputs (or its own error) and
//! serves on after the burst; blocking user code leaves the health probes and the metrics
//! answering at once; and no 200 arrives after a request's deadline.

mod common;

use common::start;
use graphc_runtime::http::ServeOptions;
use graphc_runtime::model::{Batched, Features, Model, Schedule};
use graphc_runtime::router::{Mode, Route, Router};
use graphc_runtime::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Three values a row; answers `2 * sum + 1` per row. A call costs a millisecond whatever its
/// size, as a model on an accelerator does; a row holding 99 fails the whole call (so that a
/// batch holding it falls back to one call per request).
#[derive(Default)]
struct Affine {
    calls: AtomicUsize,
    widest: AtomicUsize,
}

impl Affine {
    fn expected(row: &[f64]) -> Value {
        json!(2.0 * row.iter().sum::<f64>() + 1.0)
    }
}

impl Model for Affine {
    fn predict(&self, features: Features) -> Result<Vec<Value>, StepError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.widest.fetch_max(features.rows, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1));
        if features.values.contains(&99.0) {
            return Err(StepError::invalid_input("99 is not a value this model takes"));
        }
        Ok((0..features.rows).map(|row| Affine::expected(features.row(row))).collect())
    }

    fn input_width(&self) -> Option<usize> {
        Some(3)
    }
}

/// A small deterministic generator, so that a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

/// What a request asks, and what it must get back.
enum Expect {
    Outputs(Vec<Value>),
    Status(u16),
}

fn request(rng: &mut Rng, batch_size: u64) -> (Value, Expect) {
    let rows = 1 + rng.next(2 * batch_size) as usize;
    match rng.next(20) {
        // Rows of the wrong width: the model's validation refuses the request alone.
        0 => (json!({ "inputs": vec![vec![1.0, 2.0]; rows] }), Expect::Status(422)),
        // A value the model fails on: a batch holding it is predicted again one by one.
        1 => (json!({ "inputs": vec![vec![99.0, 0.0, 0.0]; rows] }), Expect::Status(422)),
        _ => {
            // Whole numbers: JSON carries them exactly (serde_json may round a decimal a bit).
            let inputs: Vec<Vec<f64>> = (0..rows).map(|_| (0..3).map(|_| rng.next(90) as f64).collect()).collect();
            let outputs = inputs.iter().map(|row| Affine::expected(row)).collect();
            (json!({ "inputs": inputs }), Expect::Outputs(outputs))
        }
    }
}

fn router_pipeline(route: Route) -> Arc<AsyncPipeline<StepNode<Blocking<Router>, End>>> {
    let router = Router::new("router", "/v2/models", vec![("m".into(), route)], Mode::Model);
    AsyncPipeline::new(StepNode::new("router", Blocking::new(router), End).responding(), Context::new("load"), true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_route_answers_64_clients_each_with_its_own_rows() {
    const BATCH_SIZE: u64 = 8;
    const CLIENTS: u64 = 64;
    const REQUESTS_EACH: u64 = 6;
    let model = Arc::new(Affine::default());
    let schedule = Schedule { batch_size: BATCH_SIZE as usize, batch_delay: Duration::from_millis(2), instances: 1 };
    let batched = Arc::new(Batched::scheduled(Arc::clone(&model) as Arc<dyn Model>, schedule));
    let server =
        start(router_pipeline(Route::Model(Arc::clone(&batched) as Arc<dyn Model>)), ServeOptions::default()).await;
    let url = server.url("/v2/models/m/infer");
    let client = reqwest::Client::new();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|index| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (index + 1));
                let mut checked = 0;
                for _ in 0..REQUESTS_EACH {
                    let (body, expect) = request(&mut rng, BATCH_SIZE);
                    let response = client.post(&url).json(&body).send().await.expect("an answer");
                    let status = response.status().as_u16();
                    let answer: Value = response.json().await.expect("a JSON answer");
                    match expect {
                        Expect::Outputs(outputs) => {
                            assert_eq!(status, 200, "client {index}: {answer}");
                            assert_eq!(answer["outputs"], Value::Array(outputs), "client {index} got another's rows");
                        }
                        Expect::Status(expected) => {
                            assert_eq!(status, expected, "client {index}: {answer}");
                            assert!(answer["error"].is_string(), "a JSON error: {answer}");
                        }
                    }
                    checked += 1;
                }
                checked
            })
        })
        .collect();
    let mut answered = 0;
    for client in clients {
        answered += client.await.expect("a client");
    }
    assert_eq!(answered, CLIENTS * REQUESTS_EACH, "every request was answered and checked");
    let calls = model.calls.load(Ordering::SeqCst) as u64;
    assert!(calls < answered, "{answered} requests took {calls} calls: nothing was batched");
    assert!(model.widest.load(Ordering::SeqCst) > 1, "some call predicted several requests");
    // After the burst the route holds nothing and still serves a lone request.
    assert_eq!(batched.queued(), 0);
    let lone = client.post(&url).json(&json!({ "inputs": [[1, 2, 3]] })).send().await.unwrap();
    assert_eq!(lone.status(), 200);
    assert_eq!(lone.json::<Value>().await.unwrap()["outputs"], json!([13.0]));
    server.stop().await;
}

/// A synchronous handler that takes 300 ms: as a model on a CPU or a blocking client would.
fn slow(body: Value) -> Value {
    std::thread::sleep(Duration::from_millis(300));
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_and_metrics_answer_while_blocking_steps_saturate_the_pool() {
    let pipeline =
        AsyncPipeline::new(StepNode::new("slow", Blocking::new(Body(slow)), End).responding(), Context::new("g"), true);
    let server = start(pipeline, ServeOptions::default()).await;
    let client = reqwest::Client::new();
    let in_flight = 2 * graphc_runtime::pool::size();
    let finished = Arc::new(AtomicUsize::new(0));
    let slow_requests: Vec<_> = (0..in_flight)
        .map(|n| {
            let (client, url, finished) = (client.clone(), server.url("/"), Arc::clone(&finished));
            tokio::spawn(async move {
                let response = client.post(url).json(&json!({ "n": n })).send().await.unwrap();
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap();
                finished.fetch_add(1, Ordering::SeqCst);
                (n, status, body)
            })
        })
        .collect();
    // Let the slow requests fill the pool, then probe.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut slowest = Duration::ZERO;
    for path in ["/v2/health/live", "/v2/health/ready", "/v2", "/metrics"].into_iter().cycle().take(20) {
        let started = Instant::now();
        let response = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let text = response.text().await.unwrap();
        if path == "/metrics" {
            assert!(text.contains("graphc_blocking_busy"), "the pool's gauges are on /metrics");
        }
        slowest = slowest.max(started.elapsed());
    }
    // Probes never waited behind user code: all of them were answered while the first wave of
    // slow steps still ran.
    assert_eq!(finished.load(Ordering::SeqCst), 0, "probes answered only after slow steps finished ({slowest:?})");
    for request in slow_requests {
        let (n, status, body) = request.await.unwrap();
        assert_eq!((status, body), (200, json!({ "n": n })), "every slow request answered with its own body");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_200_arrives_after_the_deadline() {
    let deadline = Duration::from_millis(40);
    let pipeline = AsyncPipeline::new(
        StepNode::new(
            "maybe_slow",
            Blocking::new(Body(|body: Value| {
                std::thread::sleep(Duration::from_millis(body["ms"].as_u64().unwrap_or(0)));
                body
            })),
            End,
        )
        .responding(),
        Context::new("g"),
        true,
    );
    let server = start(pipeline, ServeOptions { deadline, ..ServeOptions::default() }).await;
    let client = reqwest::Client::new();
    let requests: Vec<_> = (0..100u64)
        .map(|n| {
            let (client, url) = (client.clone(), server.url("/"));
            // Half finish well within the deadline, half run far past it.
            let ms = if n % 2 == 0 { 1 } else { 1000 };
            tokio::spawn(async move {
                let started = Instant::now();
                let response = client.post(url).json(&json!({ "ms": ms })).send().await.unwrap();
                let status = response.status().as_u16();
                let body: Value = response.json().await.unwrap();
                (ms, status, body, started.elapsed())
            })
        })
        .collect();
    let mut slow_timed_out = 0;
    for request in requests {
        let (ms, status, body, took) = request.await.unwrap();
        match status {
            200 => {
                assert_eq!(body, json!({ "ms": ms }));
                assert!(ms < 40, "a step of {ms} ms answered 200 past a deadline of {deadline:?} ({took:?})");
            }
            // A fast step may have waited for a thread of the pool behind the slow ones: an honest
            // 504 too. A slow one is answered at its deadline, not when its step ends.
            504 => {
                assert!(body["error"].as_str().unwrap().contains("deadline"), "{body}");
                if ms == 1000 {
                    assert!(took < Duration::from_millis(700), "a 504 waited for its step: {took:?}");
                    slow_timed_out += 1;
                }
            }
            other => panic!("status {other}: {body}"),
        }
    }
    assert_eq!(slow_timed_out, 50, "every slow request is a 504");
    // A caller may shorten its own deadline, never lengthen it.
    let started = Instant::now();
    let response = client
        .post(server.url("/"))
        .header("x-request-timeout-ms", "5")
        .json(&json!({ "ms": 30 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504, "a shortened deadline holds ({:?})", started.elapsed());
    let response = client
        .post(server.url("/"))
        .header("x-request-timeout-ms", "60000")
        .json(&json!({ "ms": 100 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 504, "a caller cannot lengthen the server's deadline");
    let response =
        client.post(server.url("/")).header("x-request-timeout-ms", "soon").json(&json!({})).send().await.unwrap();
    assert_eq!(response.status(), 400);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waiting_for_a_busy_model_leaves_at_its_deadline() {
    // One instance, a model call of 200 ms: a second request waits for it, and its deadline
    // of 50 ms passes in the queue.
    struct Slow;
    impl Model for Slow {
        fn predict(&self, features: Features) -> Result<Vec<Value>, StepError> {
            std::thread::sleep(Duration::from_millis(200));
            Ok(vec![json!(1); features.rows])
        }
    }
    let schedule = Schedule { batch_size: 4, batch_delay: Duration::ZERO, instances: 1 };
    let route = Route::Model(Arc::new(Slow)).scheduled(schedule);
    let server =
        start(router_pipeline(route), ServeOptions { deadline: Duration::from_millis(300), ..ServeOptions::default() })
            .await;
    let client = reqwest::Client::new();
    let url = server.url("/v2/models/m/infer");
    let first = {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move { client.post(url).json(&json!({ "inputs": [[1]] })).send().await.unwrap().status() })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    let response =
        client.post(&url).header("x-request-timeout-ms", "50").json(&json!({ "inputs": [[1]] })).send().await.unwrap();
    assert_eq!(response.status(), 504);
    assert_eq!(first.await.unwrap(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_past_its_deadline_is_recorded_not_run() {
    let ran = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&ran);
    let errors = Arc::new(MemoryErrorStream::new());
    let context = Context::new("g").with_error_stream(Arc::clone(&errors) as Arc<dyn ErrorStream>);
    let step = Blocking::new(Body(move |body: Value| {
        counted.fetch_add(1, Ordering::SeqCst);
        body
    }));
    let pipeline = AsyncPipeline::new(StepNode::new("count", step, End).responding(), context, true);
    // As a stream record written by a caller who stopped waiting before it was read.
    let mut late = Event::new(json!({ "n": 1 }));
    late.deadline = Some(Instant::now());
    let answer = pipeline.process(late).await;
    assert_eq!(answer.status, 504);
    let mut on_time = Event::new(json!({ "n": 2 }));
    on_time.deadline = Some(Instant::now() + Duration::from_secs(5));
    assert_eq!(pipeline.process(on_time).await.json_body(), json!({ "n": 2 }));
    assert_eq!(ran.load(Ordering::SeqCst), 1, "the late event was not run");
    let records = errors.records();
    assert_eq!(records.len(), 1);
    assert_eq!((records[0].source.as_str(), records[0].body.clone()), ("deadline", json!({ "n": 1 })));
    assert_eq!(records[0].kind, graphc_runtime::error::ErrorKind::Deadline, "{}", records[0].message);
}

#[test]
fn a_deadline_crosses_a_stream_hop_in_its_envelope() {
    let mut event = Event::new(json!({ "order": 42 }));
    event.deadline = Some(Instant::now() + Duration::from_secs(10));
    let fields: Vec<(String, Vec<u8>)> = graphc_runtime::Envelope::of(&event)
        .record_fields()
        .into_iter()
        .map(|(name, value)| (name.to_string(), value.into_bytes()))
        .collect();
    let read = graphc_runtime::Envelope::from_record(fields).into_event();
    let left = read.time_left().expect("the deadline travelled with the record");
    assert!(left > Duration::from_secs(8) && left <= Duration::from_secs(10), "{left:?}");
    // A plain field map's fields are its body, a field named `deadline` too.
    let plain = vec![("deadline".to_string(), b"1".to_vec()), ("amount".to_string(), b"3".to_vec())];
    let read = graphc_runtime::Envelope::from_record(plain).into_event();
    assert_eq!(read.deadline, None);
    assert_eq!(read.body, json!({ "deadline": "1", "amount": "3" }));
}
