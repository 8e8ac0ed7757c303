//! The server against traffic it does not control, over real TCP on loopback (bounded in count
//! and time): half-open connections by the thousand, a client that trickles its headers, a
//! shutdown with a request half sent, methods a path does not take, the concurrency limit, and
//! causes and credentials that must not reach the caller.

mod common;

use common::start;
use graphc_runtime::http::ServeOptions;
use graphc_runtime::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A pipeline that answers with its body.
type Echo = SyncPipeline<StepNode<Body<fn(Value) -> Value>, End>>;

fn echo() -> Echo {
    let step: Body<fn(Value) -> Value> = Body(|body| body);
    SyncPipeline::new(StepNode::new("echo", step, End), Context::new("g"))
}

/// One request over a raw socket; the status line's code.
async fn raw(addr: SocketAddr, request: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).split_whitespace().nth(1)?.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_half_open_connections_do_not_stop_a_good_request() {
    let options = ServeOptions { header_timeout: Duration::from_secs(3), ..ServeOptions::default() };
    let server = start(echo(), options).await;
    let mut idle = Vec::new();
    for _ in 0..3_000 {
        if let Ok(mut stream) = TcpStream::connect(server.addr).await {
            let _ = stream.write_all(b"POST / HT").await;
            idle.push(stream);
        }
    }
    assert!(idle.len() >= 2_900, "{} connections opened", idle.len());
    let started = Instant::now();
    let answer = reqwest::Client::new().post(server.url("/")).json(&json!({"ok": true})).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    assert!(started.elapsed() < Duration::from_secs(1), "answered in {:?} under the flood", started.elapsed());
    drop(idle);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_trickles_its_headers_is_cut_off_at_the_header_timeout() {
    let options = ServeOptions { header_timeout: Duration::from_millis(600), ..ServeOptions::default() };
    let server = start(echo(), options).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    let request = b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-slow: aaaaaaaaaaaaaaaaaaaaaa\r\n";
    let mut closed_after = None;
    for byte in request.iter().cycle().take(200) {
        if stream.write_all(&[*byte]).await.is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut probe = [0u8; 256];
        if let Ok(Ok(0 | 1..)) = tokio::time::timeout(Duration::from_millis(1), stream.read(&mut probe)).await {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let closed_after = closed_after.expect("the connection was closed");
    assert!(closed_after < Duration::from_secs(3), "cut off after {closed_after:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_in_time_with_a_half_sent_request_and_answers_every_complete_one() {
    let options = ServeOptions { shutdown_timeout: Duration::from_millis(800), ..ServeOptions::default() };
    let server = start(echo(), options).await;
    // Half a request: its blank line never comes.
    let mut half = TcpStream::connect(server.addr).await.unwrap();
    half.write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n").await.unwrap();
    let complete = tokio::spawn(raw(
        server.addr,
        "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
    ));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    server.stop().await;
    assert!(started.elapsed() < Duration::from_secs(3), "shut down in {:?}", started.elapsed());
    assert_eq!(complete.await.unwrap(), Some(200), "the complete request was answered");
    drop(half);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_a_path_does_not_take_are_405_with_allow() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/iris/models/gaussian_nb.json");
    let model: std::sync::Arc<dyn model::Model> =
        std::sync::Arc::new(model::SmartcoreModel::load("m", &path, model::ModelKind::GaussianNb).unwrap());
    let router =
        router::Router::new("r", "/v2/models", vec![("m".into(), router::Route::Model(model))], router::Mode::Model);
    let server = start(
        SyncPipeline::new(StepNode::new("r", router, End).responding(), Context::new("g")),
        ServeOptions::default(),
    )
    .await;
    let client = reqwest::Client::new();
    for (method, path, status, allow) in [
        ("PUT", "/v2/models/m/infer", 405, Some("POST")),
        ("DELETE", "/v2/models/m/infer", 405, Some("POST")),
        ("PATCH", "/v2/models/m/infer", 405, Some("POST")),
        ("POST", "/v2/health/ready", 405, Some("GET, HEAD")),
        ("HEAD", "/v2/health/ready", 200, None),
        ("HEAD", "/v2/models/m", 200, None),
        ("OPTIONS", "/v2/models/m/infer", 405, Some("GET, HEAD, POST, PUT, PATCH, DELETE")),
        ("TRACE", "/v2/models/m/infer", 405, Some("GET, HEAD, POST, PUT, PATCH, DELETE")),
        ("POST", "/metrics", 405, Some("GET, HEAD")),
        ("HEAD", "/metrics", 200, None),
    ] {
        let answer = client
            .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), server.url(path))
            .header("content-type", "application/json")
            .body(r#"{"inputs": [[5.1, 3.5, 1.4, 0.2]]}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().as_u16(), status, "{method} {path}");
        assert_eq!(answer.headers().get("allow").map(|v| v.to_str().unwrap()), allow, "{method} {path}");
    }
    // A scrape does not count itself; the process's own gauges are there.
    let scrape = || async { client.get(server.url("/metrics")).send().await.unwrap().text().await.unwrap() };
    let first = scrape().await;
    let second = scrape().await;
    let count = |text: &str| -> String {
        text.lines().filter(|l| l.starts_with("graphc_requests_total")).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(count(&first), count(&second), "scrapes are not counted");
    assert!(first.contains("process_resident_memory_bytes") && first.contains("process_open_fds"), "{first}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_concurrency_limit_the_answer_is_503_with_retry_after() {
    struct Slow;
    impl Node for Slow {
        async fn push(&self, event: &mut Event, run: &run::Run) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            run.respond(&event.body);
        }
    }
    let pipeline = AsyncPipeline::new(Slow, Context::new("g"), true);
    let server = start(pipeline, ServeOptions { concurrency: 1, ..ServeOptions::default() }).await;
    let client = reqwest::Client::new();
    let busy = tokio::spawn(client.post(server.url("/")).json(&json!(1)).send());
    tokio::time::sleep(Duration::from_millis(100)).await;
    let refused = client.post(server.url("/")).json(&json!(2)).send().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers().get("retry-after").map(|v| v.to_str().unwrap()), Some("1"));
    assert_eq!(busy.await.unwrap().unwrap().status(), 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_shows_neither_its_cause_nor_credentials_unless_exposed() {
    fn failing(_: Value) -> Result<Value, StepError> {
        Err(StepError::unavailable("cannot use Redis at `redis://:hunter2@10.0.0.9:6379`: refused; secret cause"))
    }
    let run = |expose: bool| async move {
        let step: Body<fn(Value) -> Result<Value, StepError>> = Body(failing);
        let mut context = Context::new("g");
        context.expose_errors = expose;
        let errors = std::sync::Arc::new(MemoryErrorStream::new());
        let context = context.with_error_stream(errors.clone());
        let server =
            start(SyncPipeline::new(StepNode::new("writer", step, End), context), ServeOptions::default()).await;
        let answer = reqwest::Client::new().post(server.url("/")).json(&json!(1)).send().await.unwrap();
        let status = answer.status().as_u16();
        let body = answer.text().await.unwrap();
        server.stop().await;
        let records: Vec<String> = errors.records().iter().map(|r| r.to_json().to_string()).collect();
        (status, body, records)
    };
    let (status, body, records) = run(false).await;
    assert_eq!(status, 503);
    assert!(!body.contains("secret cause") && !body.contains("hunter2"), "{body}");
    assert!(body.contains("writer") && body.contains("\"id\""), "{body}");
    assert!(records.iter().all(|r| !r.contains("hunter2")) && !records.is_empty(), "{records:?}");
    let (_, exposed, _) = run(true).await;
    assert!(exposed.contains("secret cause") && !exposed.contains("hunter2"), "{exposed}");
    assert!(exposed.contains("redis://:***@10.0.0.9:6379"), "{exposed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_probes_and_server_metadata_are_answered_not_turned_into_events() {
    // A flow that takes every event (as a distributed root writes each into its stream).
    #[derive(Clone, Default)]
    struct Counting(std::sync::Arc<std::sync::atomic::AtomicUsize>);
    impl Node for Counting {
        async fn push(&self, _event: &mut Event, _run: &run::Run) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
    let seen = Counting::default();
    let server =
        start(AsyncPipeline::answered_at_end(seen.clone(), Context::new("root")), ServeOptions::default()).await;
    let client = reqwest::Client::new();
    let metadata = json!({"name": "root", "version": env!("CARGO_PKG_VERSION"), "extensions": []});
    for (path, body) in
        [("/v2/health/live", json!({"live": true})), ("/v2/health/ready", json!({"ready": true})), ("/v2", metadata)]
    {
        let answer = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(answer.status(), 200, "{path}");
        assert_eq!(answer.json::<Value>().await.unwrap(), body, "{path}");
        assert_eq!(client.head(server.url(path)).send().await.unwrap().status(), 200, "HEAD {path}");
    }
    assert_eq!(seen.0.load(std::sync::atomic::Ordering::SeqCst), 0, "no probe became an event");
    let event = client.post(server.url("/")).json(&json!({"n": 1})).send().await.unwrap();
    assert_eq!(event.status(), 202);
    assert_eq!(seen.0.load(std::sync::atomic::Ordering::SeqCst), 1);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_and_oversized_heads_are_431() {
    let options =
        ServeOptions { header_timeout: Duration::from_millis(500), max_headers: 20, ..ServeOptions::default() };
    let server = start(echo(), options).await;
    // A complete request on a keep-alive connection, then nothing: closed after the timeout.
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
        .await
        .unwrap();
    let mut buffer = [0u8; 1024];
    let read = stream.read(&mut buffer).await.unwrap();
    assert!(String::from_utf8_lossy(&buffer[..read]).starts_with("HTTP/1.1 200"));
    let started = Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await;
    assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "the idle connection was closed: {closed:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "closed after {:?}", started.elapsed());
    // More headers than allowed: 431.
    let headers: String = (0..40).map(|n| format!("x-h{n}: v\r\n")).collect();
    let request = format!("POST / HTTP/1.1\r\nhost: x\r\n{headers}content-length: 2\r\nconnection: close\r\n\r\n{{}}");
    assert_eq!(raw(server.addr, &request).await, Some(431));
    server.stop().await;
    // The default limit of 100 is hyper's own: 100 headers pass, 102 do not.
    let server = start(echo(), ServeOptions::default()).await;
    let request = |count: usize| {
        let headers: String = (0..count).map(|n| format!("x-h{n}: v\r\n")).collect();
        format!("POST / HTTP/1.1\r\nhost: x\r\n{headers}content-length: 2\r\nconnection: close\r\n\r\n{{}}")
    };
    // With host, content-length and connection: 97 + 3 = 100, and 99 + 3 = 102.
    assert_eq!(raw(server.addr, &request(97)).await, Some(200));
    assert_eq!(raw(server.addr, &request(99)).await, Some(431));
    server.stop().await;
}
