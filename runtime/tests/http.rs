//! The HTTP server over real TCP on loopback: router paths and their errors, a hostile-input
//! corpus after which the server still serves, a panicking step, deadlines, metrics, and a
//! shutdown under load that loses no accepted request.

mod common;

use common::start;
use graphc_runtime::http::ServeOptions;
use graphc_runtime::model::{Model, ModelKind, SmartcoreModel};
use graphc_runtime::router::{Mode, Route, Router};
use graphc_runtime::*;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

fn iris_router() -> SyncPipeline<StepNode<Router, End>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/iris/models/logistic_regression.json");
    let model: Arc<dyn Model> = Arc::new(SmartcoreModel::load("model1", &path, ModelKind::LogisticRegression).unwrap());
    let router = Router::new("router", "/v2/models", vec![("model1".into(), Route::Model(model))], Mode::Model);
    SyncPipeline::new(StepNode::new("router", router, End).responding(), Context::new("iris"))
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

async fn post(url: &str, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, Value, Option<String>) {
    let response = client().post(url).header("content-type", content_type).body(body).send().await.unwrap();
    let status = response.status().as_u16();
    let id = response.headers().get("x-event-id").map(|v| v.to_str().unwrap().to_string());
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, body, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_paths_over_http() {
    let server = start(iris_router(), ServeOptions::default()).await;
    let infer = server.url("/v2/models/model1/infer");
    let (status, body, id) =
        post(&infer, "application/json", r#"{"inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}"#).await;
    assert_eq!((status, body["outputs"].clone()), (200, json!([0, 2])));
    assert_eq!(id.as_deref().map(str::len), Some(32), "a fresh id on the response");
    let oip = json!({ "id": "q", "inputs": [{ "name": "x", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2] }] });
    let (status, body, _) = post(&infer, "application/json", oip.to_string()).await;
    assert_eq!((status, body["id"].clone(), body["outputs"][0]["data"].clone()), (200, json!("q"), json!([0])));
    let response = client()
        .post(&infer)
        .header("x-event-id", "given")
        .json(&json!({ "inputs": [[1, 2, 3, 4]] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-event-id"], "given");
    for (method, path, status) in [
        ("GET", "/v2/models", 200),
        ("GET", "/v2/models/model1", 200),
        ("GET", "/v2/models/model1/ready", 200),
        ("GET", "/v2/health/live", 200),
        ("GET", "/v2/health/ready", 200),
        ("GET", "/v2", 200),
        ("GET", "/v2/models/model1/infer", 405),
        ("POST", "/v2/models/model1/ready", 405),
        ("POST", "/v2/models/nope/infer", 404),
        ("DELETE", "/elsewhere", 404),
    ] {
        let response = client()
            .request(method.parse().unwrap(), server.url(path))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        assert!(response.headers().contains_key("x-event-id"), "{method} {path}");
        let body: Value = response.json().await.unwrap();
        if status >= 400 {
            assert!(body["error"].is_string(), "{method} {path}: a JSON error");
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_the_right_4xx_and_the_server_keeps_serving() {
    let options = ServeOptions { body_limit: 64 * 1024, ..ServeOptions::default() };
    let server = start(iris_router(), options).await;
    let infer = server.url("/v2/models/model1/infer");
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let cases: Vec<(&str, &str, Vec<u8>, u16)> = vec![
        ("malformed JSON", "application/json", b"{\"inputs\": [[1, 2,".to_vec(), 400),
        ("truncated JSON", "application/json", b"{\"inputs\"".to_vec(), 400),
        ("not JSON at all", "application/json", b"\xff\xfe\x00garbage".to_vec(), 400),
        ("wrong content type", "application/xml", b"<inputs/>".to_vec(), 400),
        ("form content type", "application/x-www-form-urlencoded", b"inputs=1".to_vec(), 400),
        (
            "oversized body",
            "application/json",
            format!("{{\"inputs\": [[{}1]]}}", "1, ".repeat(40_000)).into_bytes(),
            413,
        ),
        ("wrong shape", "application/json", br#"{"inputs": [[1, 2]]}"#.to_vec(), 422),
        ("ragged rows", "application/json", br#"{"inputs": [[1, 2, 3, 4], [1]]}"#.to_vec(), 422),
        ("strings for numbers", "application/json", br#"{"inputs": [["a", "b", "c", "d"]]}"#.to_vec(), 422),
        (
            "wrong datatype",
            "application/json",
            br#"{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "BYTES", "data": [1, 2, 3, 4]}]}"#.to_vec(),
            422,
        ),
        (
            "shape and data disagree",
            "application/json",
            br#"{"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}"#.to_vec(),
            422,
        ),
        ("huge numbers", "application/json", br#"{"inputs": [[1e400, 2, 3, 4]]}"#.to_vec(), 400),
        (
            "huge shape",
            "application/json",
            br#"{"inputs": [{"name": "x", "shape": [18446744073709551615, 4], "datatype": "FP32", "data": [1]}]}"#
                .to_vec(),
            422,
        ),
        ("missing inputs", "application/json", br#"{"rows": []}"#.to_vec(), 422),
        ("deeply nested", "application/json", format!("{{\"inputs\": {deep}}}").into_bytes(), 400),
    ];
    for (name, content_type, body, status) in cases {
        let (got, answer, id) = post(&infer, content_type, body).await;
        assert_eq!(got, status, "{name}: {answer}");
        assert!(answer["error"].is_string() && id.is_some(), "{name}: a JSON error with an id: {answer}");
        let (ok, _, _) = post(&infer, "application/json", r#"{"inputs": [[5.1, 3.5, 1.4, 0.2]]}"#).await;
        assert_eq!(ok, 200, "still serving after {name}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_step_is_500_and_a_slow_one_hits_the_deadline() {
    let step = Body(|body: Value| {
        if body == json!("panic") {
            panic!("boom");
        }
        if body == json!("slow") {
            std::thread::sleep(Duration::from_millis(400));
        }
        body
    });
    struct Sleepy;
    impl Node for Sleepy {
        async fn push(&self, event: &mut Event, run: &run::Run) {
            if event.body == json!("slow") {
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            run.respond(&event.body);
        }
    }
    let pipeline = AsyncPipeline::new(StepNode::new("fragile", step, Sleepy), Context::new("g"), true);
    let options = ServeOptions { deadline: Duration::from_millis(150), ..ServeOptions::default() };
    let server = start(pipeline, options).await;
    let (status, body, _) = post(&server.url("/"), "application/json", "\"panic\"").await;
    assert_eq!((status, body["step"].clone()), (500, json!("fragile")));
    // The panic's text is the cause: it goes to the log, not to the caller.
    let message = body["error"].as_str().unwrap();
    assert!(!message.contains("boom") && message.contains("fragile") && body["id"].is_string(), "{body}");
    let (status, body, _) = post(&server.url("/"), "application/json", "\"fine\"").await;
    assert_eq!((status, body), (200, json!("fine")), "still serving after a panic");
    let (status, body, _) = post(&server.url("/"), "application/json", "\"slow\"").await;
    assert_eq!(status, 504, "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_in_past_the_deadline_is_504_counted_from_arrival() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let options = ServeOptions { deadline: Duration::from_millis(200), ..ServeOptions::default() };
    let server = start(iris_router(), options).await;
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let sent = std::time::Instant::now();
    stream
        .write_all(b"POST /v2/models/model1/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 40\r\nconnection: close\r\n\r\n{\"inputs\"")
        .await
        .unwrap();
    // The rest of the body never comes: the request waits, so it is under its deadline.
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut answer)).await.unwrap().unwrap();
    let waited = sent.elapsed();
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains("deadline"), "{answer}");
    assert!(waited >= Duration::from_millis(180) && waited < Duration::from_secs(2), "{waited:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_see_the_request_headers_path_and_method() {
    let step = FullEvent(|event: &mut Event, _: &Context| {
        event.body = json!({
            "tenant": event.header("X-Tenant"),
            "all": event.headers.get_all("x-tag").iter().map(|v| v.to_str().unwrap()).collect::<Vec<_>>(),
            "path": event.path,
            "method": event.method,
            "content_type": event.content_type,
            "key": event.key,
        });
        Ok::<_, StepError>(())
    });
    let server =
        start(SyncPipeline::new(StepNode::new("echo", step, End), Context::new("g")), ServeOptions::default()).await;
    let response = client()
        .put(server.url("/things/7"))
        .header("content-type", "application/json; charset=utf-8")
        .header("x-tenant", "acme")
        .header("x-tag", "a")
        .header("x-tag", "b")
        .header("x-event-key", "customer-7")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"tenant": "acme", "all": ["a", "b"], "path": "/things/7", "method": "PUT", "content_type": "application/json; charset=utf-8", "key": "customer-7"})
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_in_prometheus_text() {
    let server = start(iris_router(), ServeOptions::default()).await;
    post(&server.url("/v2/models/model1/infer"), "application/json", r#"{"inputs": [[5.1, 3.5, 1.4, 0.2]]}"#).await;
    post(&server.url("/v2/models/nope/infer"), "application/json", "{}").await;
    let text = client().get(server.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("graphc_requests_total{code=\"200\",class=\"2xx\"} 1"), "{text}");
    assert!(text.contains("graphc_requests_total{code=\"404\",class=\"4xx\"} 1"), "{text}");
    assert!(text.contains("graphc_request_errors_total 1"), "{text}");
    assert!(text.contains("graphc_request_duration_seconds_count 2"), "{text}");
    // Per step and per route, too (the registry is process-wide, so other tests may add to it).
    assert!(text.contains("graphc_step_duration_seconds_count{step=\"router\"}"), "{text}");
    assert!(text.contains("graphc_route_duration_seconds_bucket{route=\"model1\",le=\"+Inf\"}"), "{text}");
    // The unknown model is the caller's mistake, not the router's error.
    assert!(text.contains("graphc_step_errors_total{step=\"router\"} 0"), "{text}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_under_load_loses_no_accepted_request() {
    let processed = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&processed);
    struct Slow(Arc<AtomicUsize>);
    impl Node for Slow {
        async fn push(&self, event: &mut Event, run: &run::Run) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            self.0.fetch_add(1, Ordering::SeqCst);
            run.respond(&event.body);
        }
    }
    let pipeline = AsyncPipeline::new(Slow(counter), Context::new("g"), true);
    let server = start(pipeline, ServeOptions::default()).await;
    let url = server.url("/");
    let requests: Vec<_> = (0..40)
        .map(|n| {
            let url = url.clone();
            tokio::spawn(async move { client().post(url).json(&json!(n)).send().await.map(|r| r.status().as_u16()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    server.stop().await;
    let mut answered = 0;
    for request in requests {
        if let Ok(Ok(status)) = request.await {
            assert_eq!(status, 200, "an accepted request is answered in full");
            answered += 1;
        }
    }
    assert!(answered > 0, "requests were in flight when the shutdown began");
    assert_eq!(processed.load(Ordering::SeqCst), answered, "every answered request was processed, none half-way");
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_bodies_are_read_and_large_answers_compressed_for_callers_that_ask() {
    use std::io::{Read, Write};
    let server = start(iris_router(), ServeOptions { body_limit: 64 * 1024, ..ServeOptions::default() }).await;
    let infer = server.url("/v2/models/model1/infer");
    let rows = vec![json!([5.1, 3.5, 1.4, 0.2]); 500];
    let request = json!({ "inputs": rows }).to_string();
    let send = |encoding: &'static str, body: Vec<u8>, accept: Option<&'static str>| {
        let mut builder =
            client().post(&infer).header("content-type", "application/json").header("content-encoding", encoding);
        if let Some(accept) = accept {
            builder = builder.header("accept-encoding", accept);
        }
        async move {
            let response = builder.body(body).send().await.unwrap();
            let status = response.status().as_u16();
            let encoded = response.headers().get("content-encoding").map(|v| v.to_str().unwrap().to_string());
            (status, encoded, response.bytes().await.unwrap().to_vec())
        }
    };
    // gzip in, gzip out when asked: the same answer as plain JSON.
    let (status, encoded, body) = send("gzip", gzip(request.as_bytes()), Some("br;q=1.0, gzip;q=0.8")).await;
    assert_eq!((status, encoded.as_deref()), (200, Some("gzip")));
    let mut text = String::new();
    flate2::read::GzDecoder::new(&body[..]).read_to_string(&mut text).unwrap();
    let answer: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(answer["outputs"].as_array().unwrap().len(), 500);
    // deflate (zlib) in, plain out when not asked.
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    zlib.write_all(request.as_bytes()).unwrap();
    let (status, encoded, body) = send("deflate", zlib.finish().unwrap(), None).await;
    assert_eq!((status, encoded), (200, None));
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["outputs"], answer["outputs"]);
    // gzip;q=0 is a refusal.
    let (_, encoded, _) = send("gzip", gzip(request.as_bytes()), Some("gzip;q=0")).await;
    assert_eq!(encoded, None);
    // Not what it says it is: 400. An encoding the server does not read: 415.
    assert_eq!(send("gzip", request.clone().into_bytes(), None).await.0, 400);
    assert_eq!(send("br", request.clone().into_bytes(), None).await.0, 415);
    // A small body that expands past the limit is refused (413) without being held whole.
    let bomb = gzip(&vec![b' '; 10 * 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024);
    let (status, _, body) = send("gzip", bomb, None).await;
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    // The server still serves.
    let (status, _, _) = send("identity", request.into_bytes(), None).await;
    assert_eq!(status, 200);
    server.stop().await;
}

/// Two iris rows as the binary tensor extension sends them: the JSON head, asking for the output
/// in binary too, and the tensor's raw little-endian bytes.
fn binary_request() -> (String, Vec<u8>) {
    let rows: [[f32; 4]; 2] = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]];
    let data: Vec<u8> = rows.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
    let head = json!({
        "inputs": [{ "name": "x", "shape": [2, 4], "datatype": "FP32", "parameters": { "binary_data_size": data.len() } }],
        "outputs": [{ "name": "predict", "parameters": { "binary_data": true } }]
    })
    .to_string();
    (head, data)
}

/// What tritonclient's `InferInput.set_data_from_numpy` sends by default: a JSON head, then
/// the tensor's raw little-endian bytes; and, with `InferRequestedOutput(binary_data=True)`,
/// the output comes back the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_tensors_go_both_ways_as_tritonclient_sends_them() {
    let server = start(iris_router(), ServeOptions::default()).await;
    let infer = server.url("/v2/models/model1/infer");
    let (head, data) = binary_request();
    let send = |head: String, data: Vec<u8>| {
        let length = head.len();
        let mut body = head.into_bytes();
        body.extend_from_slice(&data);
        client()
            .post(&infer)
            .header("content-type", "application/octet-stream")
            .header("inference-header-content-length", length.to_string())
            .body(body)
            .send()
    };
    let response = send(head.clone(), data.clone()).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let head_length: usize = response.headers()["inference-header-content-length"].to_str().unwrap().parse().unwrap();
    assert_eq!(response.headers()["content-type"], "application/octet-stream");
    let body = response.bytes().await.unwrap();
    let answer: Value = serde_json::from_slice(&body[..head_length]).unwrap();
    let output = &answer["outputs"][0];
    assert_eq!((output["name"].clone(), output["datatype"].clone()), (json!("predict"), json!("INT64")));
    assert_eq!(output["parameters"]["binary_data_size"], json!(16));
    let classes: Vec<i64> =
        body[head_length..].chunks_exact(8).map(|chunk| i64::from_le_bytes(chunk.try_into().unwrap())).collect();
    assert_eq!(classes, vec![0, 2], "the same classes as the JSON form");
    // Without the binary output asked for, the answer is JSON.
    let json_head = head.replace(r#","outputs":[{"name":"predict","parameters":{"binary_data":true}}]"#, "");
    let response = send(json_head, data.clone()).await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap()["outputs"][0]["data"], json!([0, 2]));
    // Data that does not match what the head says is 400, not a crash.
    let response = send(head.clone(), data[..10].to_vec()).await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let mut extra = data.clone();
    extra.push(0);
    assert_eq!(send(head, extra).await.unwrap().status().as_u16(), 400);
    server.stop().await;
}

/// The mock server (what `graphc test` drives) and the HTTP server answer every request the
/// same way, byte for byte: one path from a request to its event and from the pipeline's answer
/// to what the caller asked for (binary tensors, gzip, the errors of the request itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_server_answers_every_request_as_the_http_server_does() {
    let server = start(iris_router(), ServeOptions::default()).await;
    let mock = std::thread::spawn(|| MockServer::new(iris_router())).join().unwrap();
    let (head, data) = binary_request();
    let binary = [head.as_bytes(), &data].concat();
    let many = json!({ "inputs": vec![json!([5.1, 3.5, 1.4, 0.2]); 500] }).to_string();
    let head_length = head.len().to_string();
    // Every request carries an id (so both answers name the same one) and JSON unless it says.
    let request = |method: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>| {
        let mut headers: Vec<(String, String)> =
            headers.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect();
        headers.push(("x-event-id".to_string(), "same".to_string()));
        if !headers.iter().any(|(name, _)| name == "content-type") {
            headers.push(("content-type".to_string(), "application/json".to_string()));
        }
        Request { method: method.to_string(), path: path.to_string(), headers, body }
    };
    let infer = "/v2/models/model1/infer";
    let requests = [
        request("POST", infer, &[], br#"{"inputs": [[5.1, 3.5, 1.4, 0.2]]}"#.to_vec()),
        request("POST", infer, &[("inference-header-content-length", &head_length)], binary.clone()),
        request("POST", infer, &[("inference-header-content-length", "twelve")], binary),
        request("POST", infer, &[("content-encoding", "gzip")], gzip(many.as_bytes())),
        request("POST", infer, &[("accept-encoding", "gzip")], many.clone().into_bytes()),
        request("POST", infer, &[("content-encoding", "br")], many.clone().into_bytes()),
        request("POST", infer, &[("content-encoding", "gzip")], gzip(&vec![b' '; 2 << 20])),
        request("POST", infer, &[], b"{not json".to_vec()),
        request("POST", infer, &[("content-type", "text/xml")], b"<a/>".to_vec()),
        request("POST", "/", &[("x-event-path", infer)], many.into_bytes()),
        request("POST", infer, &[("x-event-key", "k")], b"{}".to_vec()),
        request("OPTIONS", infer, &[], Vec::new()),
        request("GET", "/v2/models/model1", &[], Vec::new()),
        request("DELETE", "/v2/models/model1", &[], Vec::new()),
    ];
    for request in requests {
        let mut http =
            client().request(request.method.parse().unwrap(), server.url(&request.path)).body(request.body.clone());
        for (name, value) in &request.headers {
            http = http.header(name, value);
        }
        let http = http.send().await.unwrap();
        let header = |name: &str| http.headers().get(name).map(|v| v.to_str().unwrap().to_string());
        let http_answer = (
            http.status().as_u16(),
            header("content-type"),
            header("content-encoding"),
            header("inference-header-content-length"),
        );
        let http_body = http.bytes().await.unwrap().to_vec();
        let what = format!("{} {} {:?}", request.method, request.path, request.headers);
        let mock_answer = tokio::task::block_in_place(|| mock.send(request));
        let header = |name: &str| mock_answer.header(name).map(|v| v.to_string());
        assert_eq!(
            (
                mock_answer.status,
                header("content-type"),
                header("content-encoding"),
                header("inference-header-content-length")
            ),
            http_answer,
            "{what}"
        );
        assert_eq!(String::from_utf8_lossy(&mock_answer.body), String::from_utf8_lossy(&http_body), "{what}");
    }
    // A body over the limit, announced: the HTTP server answers before reading it, and may close
    // the connection under a client still sending, so only the mock's answer is compared here.
    let over = tokio::task::block_in_place(|| mock.send(request("POST", infer, &[], vec![b' '; (1 << 20) + 1])));
    assert_eq!(
        (over.status, over.json_body()["error"].clone()),
        (413, json!("the body is over the limit of 1048576 bytes"))
    );
    server.stop().await;
    std::thread::spawn(move || drop(mock)).join().unwrap();
}

/// The protocol's edges as clients meet them: tritonclient's asynchronous client sends JSON as
/// `application/octet-stream`; a percent-encoded model name is the name; `GET *` is no event;
/// two different binary head lengths are refused; a model with no explainer is 404, with no
/// empty `Allow`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_edges_are_answered_as_clients_expect() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = start(iris_router(), ServeOptions::default()).await;
    let rows = r#"{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}"#;
    let (status, body, _) = post(&server.url("/v2/models/model1/infer"), "application/octet-stream", rows).await;
    assert_eq!((status, &body["outputs"][0]["data"]), (200, &json!([0])), "{body}");
    let (status, body, _) =
        post(&server.url("/v2/models/model1/infer"), "application/octet-stream", "\u{1}\u{2}").await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().is_some_and(|e| e.contains("inference-header-content-length")), "{body}");
    let (status, body, _) = post(&server.url("/v2/models/model%31/infer"), "application/json", rows).await;
    assert_eq!((status, &body["model_name"]), (200, &json!("model1")), "{body}");
    let ready = client().get(server.url("/v2/models/%6Dodel1/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    // An encoded `/` stays inside its segment: no model has that name.
    let slash = client().get(server.url("/v2/models/model1%2Fready")).send().await.unwrap();
    assert_eq!(slash.status(), 404);
    let explain = client().post(server.url("/v2/models/model1/explain")).json(&json!({"inputs": [[1, 2, 3, 4]]}));
    let explain = explain.send().await.unwrap();
    assert_eq!(explain.status(), 200, "logistic regression explains itself");
    let twice = client()
        .post(server.url("/v2/models/model1/infer"))
        .header("content-type", "application/octet-stream")
        .header("inference-header-content-length", "10")
        .header("inference-header-content-length", "12")
        .body(rows)
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), 400);
    let body: Value = twice.json().await.unwrap();
    assert!(body["error"].as_str().is_some_and(|e| e.contains("twice")), "{body}");
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(b"GET * HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("is not a path"), "a JSON error says why: {answer}");
    server.stop().await;
}
