//! The Open Inference Protocol over gRPC (the `grpc` feature), driven by a tonic client built
//! from the same proto: health, metadata, and infer with raw and typed tensors, one row and 150,
//! errors as gRPC codes, all through the pipeline REST runs.

use graphc_runtime::http::{Connections, ServeOptions};
use graphc_runtime::model::{Features, Model};
use graphc_runtime::oip::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use graphc_runtime::oip::grpc::proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use graphc_runtime::oip::grpc::proto::{
    InferParameter, InferTensorContents, ModelInferRequest, ModelMetadataRequest, ModelReadyRequest, ServerLiveRequest,
    ServerMetadataRequest, ServerReadyRequest, infer_parameter::ParameterChoice,
};
use graphc_runtime::oip::grpc::serve;
use graphc_runtime::router::{Mode, Route, Router};
use graphc_runtime::streaming::ChunkIter;
use graphc_runtime::*;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tonic::Code;

/// Predicts each row's class (`sum > 10`), or with the parameter `sum`, the sum itself.
struct SumModel;

impl Model for SumModel {
    fn predict(&self, features: Features) -> Result<Vec<Value>, StepError> {
        Ok((0..features.rows).map(|r| json!(u32::from(features.row(r).iter().sum::<f64>() > 10.0))).collect())
    }
    fn predict_with(&self, features: Features, parameters: &Map<String, Value>) -> Result<Vec<Value>, StepError> {
        if parameters.get("offset").and_then(Value::as_i64) == Some(100) {
            return Ok((0..features.rows).map(|_| json!(100)).collect());
        }
        self.predict(features)
    }
    fn input_width(&self) -> Option<usize> {
        Some(2)
    }
}

/// The graph every test serves: a router with the model `m` (and `m:v2`).
fn summing_router() -> SyncPipeline<StepNode<Router, End>> {
    let model: Arc<dyn Model> = Arc::new(SumModel);
    let router = Router::new(
        "router",
        "/v2/models",
        vec![("m".into(), Route::Model(Arc::clone(&model))), ("m:v2".into(), Route::Model(model))],
        Mode::Model,
    );
    SyncPipeline::new(StepNode::new("router", router, End).responding(), Context::new("g"))
}

/// A gRPC server on a free loopback port: its address, how to stop it, and its task.
struct Served {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn serve_with(options: ServeOptions, connections: Arc<Connections>) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = ServeOptions { addr, ..options };
    let task = tokio::spawn(serve(listener, summing_router(), options, connections, async move {
        let _ = stopped.await;
    }));
    Served { addr, stop, task }
}

async fn client(addr: std::net::SocketAddr) -> GrpcInferenceServiceClient<tonic::transport::Channel> {
    GrpcInferenceServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("the client connects")
        .max_decoding_message_size(64 << 20)
        .max_encoding_message_size(64 << 20)
}

async fn start() -> (GrpcInferenceServiceClient<tonic::transport::Channel>, tokio::sync::oneshot::Sender<()>) {
    let options =
        ServeOptions { deadline: Duration::from_secs(5), concurrency: 64, body_limit: 4 << 20, ..Default::default() };
    let served = serve_with(options, Connections::new(1000)).await;
    (client(served.addr).await, served.stop)
}

fn fp32_rows(rows: &[[f32; 2]]) -> Vec<u8> {
    rows.iter().flatten().flat_map(|v| v.to_le_bytes()).collect()
}

fn int64s(bytes: &[u8]) -> Vec<i64> {
    bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()
}

fn raw_request(name: &str, version: &str, rows: &[[f32; 2]]) -> ModelInferRequest {
    ModelInferRequest {
        model_name: name.into(),
        model_version: version.into(),
        id: "call-1".into(),
        inputs: vec![InferInputTensor {
            name: "x".into(),
            datatype: "FP32".into(),
            shape: vec![rows.len() as i64, 2],
            ..Default::default()
        }],
        raw_input_contents: vec![fp32_rows(rows)],
        ..Default::default()
    }
}

#[tokio::test]
async fn health_and_metadata() {
    let (mut client, _stop) = start().await;
    assert!(client.server_live(ServerLiveRequest {}).await.expect("live").into_inner().live);
    assert!(client.server_ready(ServerReadyRequest {}).await.expect("ready").into_inner().ready);
    let server = client.server_metadata(ServerMetadataRequest {}).await.expect("metadata").into_inner();
    assert_eq!(server.name, "g", "the server is the graph");
    let ready = client.model_ready(ModelReadyRequest { name: "m".into(), version: String::new() }).await;
    assert!(ready.expect("ready").into_inner().ready);
    // A model the server does not have is not ready, as Triton answers: not an error.
    let unknown = client.model_ready(ModelReadyRequest { name: "nope".into(), version: String::new() }).await;
    assert!(!unknown.expect("an answer").into_inner().ready);
    let metadata = client
        .model_metadata(ModelMetadataRequest { name: "m".into(), version: String::new() })
        .await
        .expect("model metadata")
        .into_inner();
    assert_eq!(metadata.name, "m");
    assert_eq!(metadata.versions, ["v2"]);
    assert_eq!(metadata.inputs[0].shape, [-1, 2]);
    assert_eq!((metadata.outputs[0].name.as_str(), metadata.outputs[0].datatype.as_str()), ("predict", "INT64"));
}

#[tokio::test]
async fn infer_with_raw_tensors_one_row_and_150() {
    let (mut client, _stop) = start().await;
    let answer = client.model_infer(raw_request("m", "", &[[1.0, 2.0]])).await.expect("infer").into_inner();
    assert_eq!((answer.id.as_str(), answer.model_name.as_str()), ("call-1", "m"));
    assert_eq!(answer.outputs[0].name, "predict");
    assert_eq!(answer.outputs[0].datatype, "INT64");
    assert_eq!(answer.outputs[0].shape, [1]);
    assert_eq!(int64s(&answer.raw_output_contents[0]), [0]);

    let rows: Vec<[f32; 2]> = (0..150).map(|i| [i as f32 / 10.0, 1.0]).collect();
    let answer = client.model_infer(raw_request("m", "v2", &rows)).await.expect("infer").into_inner();
    assert_eq!(answer.model_version, "v2");
    let classes = int64s(&answer.raw_output_contents[0]);
    assert_eq!(classes.len(), 150);
    assert_eq!(classes.iter().filter(|c| **c == 1).count(), 59, "rows 91..150 sum over 10");
}

#[tokio::test]
async fn infer_with_typed_contents_and_parameters() {
    let (mut client, _stop) = start().await;
    let mut request = ModelInferRequest {
        model_name: "m".into(),
        inputs: vec![InferInputTensor {
            name: "x".into(),
            datatype: "FP64".into(),
            shape: vec![2, 2],
            contents: Some(InferTensorContents { fp64_contents: vec![1.0, 2.0, 9.0, 9.0], ..Default::default() }),
            ..Default::default()
        }],
        outputs: vec![InferRequestedOutputTensor { name: "predict".into(), ..Default::default() }],
        ..Default::default()
    };
    let answer = client.model_infer(request.clone()).await.expect("infer").into_inner();
    assert_eq!(int64s(&answer.raw_output_contents[0]), [0, 1]);
    // The request's parameters reach the model.
    request.parameters = HashMap::from([(
        "offset".to_string(),
        InferParameter { parameter_choice: Some(ParameterChoice::Int64Param(100)) },
    )]);
    let answer = client.model_infer(request).await.expect("infer").into_inner();
    assert_eq!(int64s(&answer.raw_output_contents[0]), [100, 100]);
}

#[tokio::test]
async fn errors_are_grpc_codes() {
    let (mut client, _stop) = start().await;
    let unknown = client.model_infer(raw_request("nope", "", &[[1.0, 2.0]])).await.expect_err("unknown model");
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(unknown.message().contains("available models"), "{}", unknown.message());
    let version = client.model_infer(raw_request("m", "v9", &[[1.0, 2.0]])).await.expect_err("unknown version");
    assert_eq!(version.code(), Code::NotFound);
    let mut wrong_shape = raw_request("m", "", &[[1.0, 2.0]]);
    wrong_shape.inputs[0].shape = vec![3, 2];
    assert_eq!(client.model_infer(wrong_shape).await.expect_err("shape").code(), Code::InvalidArgument);
    let mut unknown_output = raw_request("m", "", &[[1.0, 2.0]]);
    unknown_output.outputs = vec![InferRequestedOutputTensor { name: "probabilities".into(), ..Default::default() }];
    assert_eq!(client.model_infer(unknown_output).await.expect_err("output").code(), Code::InvalidArgument);
    let mut cut = raw_request("m", "", &[[1.0, 2.0]]);
    cut.raw_input_contents[0].truncate(5);
    assert_eq!(client.model_infer(cut).await.expect_err("cut").code(), Code::InvalidArgument);
}

/// 64 clients at once on a batched route over gRPC, each request with its own number of rows
/// and one in seven malformed (a shape its data does not fill): every good answer holds its own
/// rows' classes, every bad one is INVALID_ARGUMENT and spoils no other, health calls made
/// meanwhile all answer, and the route still serves after the burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batched_route_answers_64_concurrent_callers_each_with_its_own_rows() {
    let schedule =
        graphc_runtime::model::Schedule { batch_size: 8, batch_delay: Duration::from_millis(2), instances: 1 };
    let route = Route::Model(Arc::new(SumModel)).scheduled(schedule);
    let router = Router::new("router", "/v2/models", vec![("b".into(), route)], Mode::Model);
    let pipeline =
        AsyncPipeline::new(StepNode::new("router", Blocking::new(router), End).responding(), Context::new("g"), true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = ServeOptions {
        addr,
        deadline: Duration::from_secs(10),
        concurrency: 128,
        body_limit: 4 << 20,
        ..Default::default()
    };
    tokio::spawn(serve(listener, pipeline, options, Connections::new(1000), async move {
        let _ = stopped.await;
    }));
    let client = GrpcInferenceServiceClient::connect(format!("http://{addr}")).await.expect("the client connects");
    let callers: Vec<_> = (0..64u32)
        .map(|caller| {
            let mut client = client.clone();
            tokio::spawn(async move {
                for call in 0..5u32 {
                    let rows: Vec<[f32; 2]> = (0..1 + (caller * 7 + call * 3) % 16)
                        .map(|r| [((caller + r) % 13) as f32, call as f32])
                        .collect();
                    let mut request = raw_request("b", "", &rows);
                    if (caller + call) % 7 == 0 {
                        request.inputs[0].shape = vec![rows.len() as i64 + 1, 2];
                        let refused = client.model_infer(request).await.expect_err("a malformed request");
                        assert_eq!(refused.code(), Code::InvalidArgument, "caller {caller}, call {call}");
                        continue;
                    }
                    let expected: Vec<i64> = rows.iter().map(|[a, b]| i64::from(a + b > 10.0)).collect();
                    let answer = client.model_infer(request).await.expect("infer").into_inner();
                    assert_eq!(int64s(&answer.raw_output_contents[0]), expected, "caller {caller}, call {call}");
                }
            })
        })
        .collect();
    // Health calls while the burst runs: each answers (within a generous bound, not a speed test).
    let health = {
        let mut client = client.clone();
        tokio::spawn(async move {
            for _ in 0..50 {
                let live = tokio::time::timeout(Duration::from_secs(5), client.server_live(ServerLiveRequest {})).await;
                assert!(live.expect("a health call answers meanwhile").expect("live").into_inner().live);
            }
        })
    };
    for caller in callers {
        caller.await.expect("a caller");
    }
    health.await.expect("the health calls");
    let mut client = client;
    let answer = client.model_infer(raw_request("b", "", &[[6.0, 6.0]])).await.expect("infer").into_inner();
    assert_eq!(int64s(&answer.raw_output_contents[0]), [1]);
}

/// The start of every HTTP/2 connection, and an empty SETTINGS frame.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

/// Reads from `stream` until the server closes it; how long that took, or `None` within `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let mut buffer = [0u8; 4096];
    tokio::time::timeout(limit, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
}

/// Idle gRPC connections hold the process's one connection cap: while they do, the REST port
/// refuses new connections too (no descriptors run out), and at the idle limit they are closed
/// and REST answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_at_the_idle_limit_and_the_cap_is_the_processs() {
    use tokio::io::AsyncWriteExt;
    let options = ServeOptions { header_timeout: Duration::from_millis(700), ..Default::default() };
    let connections = Connections::new(40);
    let grpc = serve_with(options.clone(), Arc::clone(&connections)).await;
    let rest_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let rest = rest_listener.local_addr().expect("addr");
    let (_rest_stop, rest_stopped) = tokio::sync::oneshot::channel::<()>();
    let shared = Arc::clone(&connections);
    tokio::spawn(graphc_runtime::http::serve_sharing(rest_listener, summing_router(), options, shared, async move {
        let _ = rest_stopped.await;
    }));
    let mut idle = Vec::new();
    for _ in 0..40 {
        let mut stream = tokio::net::TcpStream::connect(grpc.addr).await.expect("connect");
        stream.write_all(PREFACE).await.expect("the preface");
        idle.push(stream);
    }
    // Accepted (each holding one of the 40), one by one: wait until all are.
    let started = std::time::Instant::now();
    while connections.open() < 40 && started.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(connections.open(), 40);
    let live = format!("http://{rest}/v2/health/live");
    let refused = reqwest::Client::new().get(&live).send().await;
    assert!(refused.is_err(), "the cap is full: {refused:?}");
    assert!(connections.refused() >= 1);
    for stream in &mut idle {
        let closed = closed_within(stream, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "an idle connection was left open");
    }
    let answer = reqwest::Client::new().get(&live).send().await.expect("REST answers again");
    assert_eq!(answer.status(), 200);
    // A connection that keeps calling is not idle: calls 300 ms apart, over twice the limit.
    let mut client = client(grpc.addr).await;
    for _ in 0..5 {
        client.server_live(ServerLiveRequest {}).await.expect("live");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Shutdown ends within `--shutdown-timeout-ms` whatever peers send: a bare preface, a stream
/// left half open, a call in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_bounded_with_a_bare_preface_and_a_half_open_stream() {
    use tokio::io::AsyncWriteExt;
    let options = ServeOptions {
        header_timeout: Duration::from_secs(60),
        shutdown_timeout: Duration::from_millis(800),
        ..Default::default()
    };
    let grpc = serve_with(options, Connections::new(100)).await;
    let mut bare = tokio::net::TcpStream::connect(grpc.addr).await.expect("connect");
    bare.write_all(&PREFACE[..10]).await.expect("half a preface");
    let tcp = tokio::net::TcpStream::connect(grpc.addr).await.expect("connect");
    let (sender, connection) = h2::client::handshake(tcp).await.expect("an HTTP/2 connection");
    tokio::spawn(connection);
    let mut sender = sender.ready().await.expect("ready");
    let request = ::http::Request::post(format!("http://{}/inference.GRPCInferenceService/ModelInfer", grpc.addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("a request");
    let (_answer, mut half_open) = sender.send_request(request, false).expect("a stream");
    half_open.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 100, 1, 2]), false).expect("part of a message");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    let _ = grpc.stop.send(());
    let stopped = tokio::time::timeout(Duration::from_secs(5), grpc.task).await;
    assert!(stopped.is_ok(), "shutdown did not end");
    assert!(started.elapsed() < Duration::from_secs(3), "shutdown took {:?}", started.elapsed());
    drop(half_open);
}

/// The size limit is on the message's bytes as sent: a 320 KB tensor under a 400 KB limit is
/// served whole; 480 KB is RESOURCE_EXHAUSTED. A 64 KB model name comes back cut short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_size_limit_is_on_the_wire_and_echoed_names_are_cut_short() {
    let options = ServeOptions { body_limit: 400_000, ..Default::default() };
    let grpc = serve_with(options, Connections::new(100)).await;
    let mut client = client(grpc.addr).await;
    let rows: Vec<[f32; 2]> = (0..40_000).map(|i| [(i % 13) as f32, 0.0]).collect();
    let answer = client.model_infer(raw_request("m", "", &rows)).await.expect("served").into_inner();
    let expected: Vec<i64> = rows.iter().map(|[a, _]| i64::from(*a > 10.0)).collect();
    assert_eq!(int64s(&answer.raw_output_contents[0]), expected);
    let rows: Vec<[f32; 2]> = (0..60_000).map(|_| [1.0, 2.0]).collect();
    let over = client.model_infer(raw_request("m", "", &rows)).await.expect_err("over the limit");
    assert_eq!(over.code(), Code::ResourceExhausted, "{over:?}");
    assert!(over.message().contains("400000 bytes"), "{}", over.message());
    let long = "n".repeat(64 * 1024);
    let unknown = client.model_infer(raw_request(&long, "", &[[1.0, 2.0]])).await.expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound);
    assert!(unknown.message().len() < 1200, "{} bytes echoed", unknown.message().len());
    // The client and the server are still on speaking terms.
    assert!(client.server_ready(ServerReadyRequest {}).await.expect("ready").into_inner().ready);
}

/// Frames that are not HTTP/2 close their own connection; other callers are served throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_their_connection_and_others_are_served() {
    use tokio::io::AsyncWriteExt;
    let grpc = serve_with(ServeOptions::default(), Connections::new(100)).await;
    let mut client = client(grpc.addr).await;
    let garbage: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nhost: x\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\xff\xff\xff\x00\x00\x00\x00\x00\x00",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\x01\x05\x00\x00\x00\x01\xde\xad\xbe\xef",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    ];
    for bytes in garbage {
        let mut stream = tokio::net::TcpStream::connect(grpc.addr).await.expect("connect");
        stream.write_all(bytes).await.expect("write");
        let closed = closed_within(&mut stream, Duration::from_secs(5)).await;
        assert!(closed.is_some(), "left open after {:?}", String::from_utf8_lossy(bytes));
        let answer = client.model_infer(raw_request("m", "", &[[6.0, 6.0]])).await.expect("served").into_inner();
        assert_eq!(int64s(&answer.raw_output_contents[0]), [1]);
    }
}

#[tokio::test]
async fn tokens_are_asked_of_every_call_but_the_health_checks() {
    let file = std::env::temp_dir().join(format!("graphc-grpc-tokens-{}", std::process::id()));
    std::fs::write(&file, "s3cret\nreader r3ad metadata\n").unwrap();
    let tokens = Arc::new(graphc_runtime::auth::Tokens::read(&file, None).unwrap());
    let _ = std::fs::remove_file(&file);
    let options = ServeOptions { auth: Some(tokens), ..Default::default() };
    let served = serve_with(options, Connections::new(100)).await;
    let mut client = client(served.addr).await;
    fn with<T>(token: &str, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    }
    let rows = [[1.0, 2.0]];
    let refused = client.model_infer(raw_request("m", "", &rows)).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    let answered = client.model_infer(with("s3cret", raw_request("m", "", &rows))).await.unwrap().into_inner();
    assert_eq!(int64s(&answered.raw_output_contents[0]), [0]);
    let denied = client.model_infer(with("r3ad", raw_request("m", "", &rows))).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied, "{denied:?}");
    let metadata = ModelMetadataRequest { name: "m".into(), version: String::new() };
    assert!(client.model_metadata(with("r3ad", metadata.clone())).await.is_ok());
    assert_eq!(client.model_metadata(metadata).await.unwrap_err().code(), Code::Unauthenticated);
    let ready = ModelReadyRequest { name: "m".into(), version: String::new() };
    assert_eq!(client.model_ready(ready).await.unwrap_err().code(), Code::Unauthenticated);
    // Health stays open, as REST's probes do.
    assert!(client.server_live(ServerLiveRequest {}).await.unwrap().into_inner().live);
    let _ = served.stop.send(());
}

#[path = "common/pki.rs"]
mod pki;

/// The gRPC port takes the REST port's certificate: many calls at once over TLS (HTTP/2 agreed by
/// ALPN), each answered with its own rows, and a plaintext client gets no answer from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_calls_over_grpc_with_tls_each_get_their_own_answer() {
    use tokio_rustls::rustls;
    let pki = pki::Pki::new("grpc");
    let tls = Arc::new(graphc_runtime::tls::ServerTls::load(pki.files(false)).expect("the certificate loads"));
    let options =
        ServeOptions { tls: Some(tls), deadline: Duration::from_secs(5), concurrency: 64, ..Default::default() };
    let served = serve_with(options, Connections::new(1000)).await;
    let addr = served.addr;
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.clone()).expect("the CA is a root");
    #[allow(deprecated, reason = "the server's provider, ring")]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("an endpoint")
        .connect_with_connector(tower::service_fn(move |_| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("a name");
                let tls = connector.connect(name, tcp).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .expect("the client connects over TLS");
    let client = GrpcInferenceServiceClient::new(channel);
    let calls = (0..32usize).map(|n| {
        let mut client = client.clone();
        tokio::spawn(async move {
            let rows: Vec<[f32; 2]> = (0..=n).map(|i| [i as f32, 0.0]).collect();
            let answer = client.model_infer(raw_request("m", "", &rows)).await.expect("infer").into_inner();
            (n, answer)
        })
    });
    for call in calls.collect::<Vec<_>>() {
        let (n, answer) = call.await.expect("the call's task");
        let expected: Vec<i64> = (0..=n).map(|i| i64::from(i > 10)).collect();
        assert_eq!(answer.outputs[0].shape, [n as i64 + 1], "call {n}");
        assert_eq!(int64s(&answer.raw_output_contents[0]), expected, "call {n}");
    }
    let mut plain = client_unchecked(addr).await;
    let refused = match plain.as_mut() {
        Ok(plain) => plain.server_live(ServerLiveRequest {}).await.is_err(),
        Err(_) => true,
    };
    assert!(refused, "a plaintext gRPC client was answered on the TLS port");
    let _ = served.stop.send(());
    served.task.await.expect("the server's task").expect("the server stops cleanly");
}

/// A plaintext client, which may fail to connect at all.
async fn client_unchecked(
    addr: std::net::SocketAddr,
) -> Result<GrpcInferenceServiceClient<tonic::transport::Channel>, tonic::transport::Error> {
    GrpcInferenceServiceClient::connect(format!("http://{addr}")).await
}

/// `POST /v2/models/counter/infer` with one INT64 `n`: `n` chunks, each an inference response
/// whose output `count` is the chunk's index, produced one at a time.
fn counting(body: Value) -> ChunkIter {
    let Some(n) = body["inputs"][0]["data"][0].as_i64() else {
        return Box::new(std::iter::once(Err(StepError::invalid_input("`n` must be an INT64"))));
    };
    Box::new((0..n).map(|i| {
        std::thread::sleep(Duration::from_millis(2));
        Ok(json!({
            "model_name": "counter",
            "outputs": [{ "name": "count", "datatype": "INT64", "shape": [1], "data": [i] }],
        }))
    }))
}

fn count_request(n: i64) -> ModelInferRequest {
    ModelInferRequest {
        model_name: "counter".into(),
        id: format!("count-{n}"),
        inputs: vec![InferInputTensor {
            name: "n".into(),
            datatype: "INT64".into(),
            shape: vec![1],
            contents: Some(InferTensorContents { int64_contents: vec![n], ..Default::default() }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_stream_infer_sends_each_chunk_as_a_response_in_order() {
    use graphc_runtime::streaming::{StreamNode, body_chunks};
    let counting: fn(Value) -> ChunkIter = counting;
    let node = StreamNode::with("counter", body_chunks(counting), End, End, true, true, NoCatcher);
    let pipeline = AsyncPipeline::new(node, Context::new("counter"), true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = ServeOptions { addr, deadline: Duration::from_secs(5), concurrency: 64, ..Default::default() };
    let task = tokio::spawn(serve(listener, pipeline, options, Connections::new(100), async move {
        let _ = stopped.await;
    }));
    // Eight callers at once, each with its own stream of requests: each gets its own answers,
    // request by request and chunk by chunk, a request that fails in its place.
    let callers = (0..8i64).map(|caller| {
        tokio::spawn(async move {
            let mut client = client(addr).await;
            let mut requests = vec![count_request(caller + 1), count_request(2)];
            let mut bad = count_request(1);
            bad.inputs[0].contents = None;
            requests.push(bad);
            let mut answers =
                client.model_stream_infer(tokio_stream_of(requests)).await.expect("the call is taken").into_inner();
            let mut counts = Vec::new();
            let mut errors = Vec::new();
            while let Some(answer) = answers.message().await.expect("the stream goes on") {
                match answer.infer_response {
                    Some(response) => counts.push((response.id, int64s(&response.raw_output_contents[0]))),
                    None => errors.push(answer.error_message),
                }
            }
            let mut expected: Vec<(String, Vec<i64>)> =
                (0..=caller).map(|i| (format!("count-{}", caller + 1), vec![i])).collect();
            expected.extend((0..2).map(|i| ("count-2".to_string(), vec![i])));
            assert_eq!(counts, expected, "caller {caller}");
            assert_eq!(errors.len(), 1, "{errors:?}");
            assert!(errors[0].contains("`n` must be an INT64"), "{errors:?}");
        })
    });
    for caller in callers.collect::<Vec<_>>() {
        caller.await.expect("the caller's checks pass");
    }
    // A graph that does not stream answers each request of a stream once.
    let _ = stop.send(());
    task.await.expect("joins").expect("serves");
    let (mut client, stop) = start().await;
    let mut answers = client
        .model_stream_infer(tokio_stream_of(vec![raw_request("m", "", &[[5.0, 6.0]])]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().expect("one answer");
    assert_eq!(int64s(&answer.infer_response.expect("a response").raw_output_contents[0]), vec![1]);
    assert!(answers.message().await.unwrap().is_none());
    let _ = stop.send(());
}

/// Requests as the stream a client sends.
fn tokio_stream_of(requests: Vec<ModelInferRequest>) -> impl tonic::IntoStreamingRequest<Message = ModelInferRequest> {
    tonic::codegen::tokio_stream::iter(requests)
}
