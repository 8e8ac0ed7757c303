//! The Open Inference Protocol over gRPC (the `grpc` feature), driven by a tonic client built
//! from the same proto: health, metadata, and infer with raw and typed tensors, one row and 150,
//! errors as gRPC codes, all through the pipeline REST runs.

use graphc_runtime::grpc::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use graphc_runtime::grpc::proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use graphc_runtime::grpc::proto::{
    InferParameter, InferTensorContents, ModelInferRequest, ModelMetadataRequest, ModelReadyRequest, ServerLiveRequest,
    ServerMetadataRequest, ServerReadyRequest, infer_parameter::ParameterChoice,
};
use graphc_runtime::grpc::{GrpcOptions, serve};
use graphc_runtime::model::{Features, Model};
use graphc_runtime::router::{Mode, Route, Router};
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

async fn start() -> (GrpcInferenceServiceClient<tonic::transport::Channel>, tokio::sync::oneshot::Sender<()>) {
    let model: Arc<dyn Model> = Arc::new(SumModel);
    let router = Router::new(
        "router",
        "/v2/models",
        vec![("m".into(), Route::Model(Arc::clone(&model))), ("m:v2".into(), Route::Model(model))],
        Mode::Model,
    );
    let pipeline = SyncPipeline::new(StepNode::new("router", router, End).responding(), Context::new("g"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = GrpcOptions { addr, deadline: Duration::from_secs(5), concurrency: 64, body_limit: 4 << 20 };
    tokio::spawn(serve(listener, pipeline, options, async move {
        let _ = stopped.await;
    }));
    let client = GrpcInferenceServiceClient::connect(format!("http://{addr}")).await.expect("the client connects");
    (client, stop)
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
    let unknown = client.model_ready(ModelReadyRequest { name: "nope".into(), version: String::new() }).await;
    assert_eq!(unknown.expect_err("unknown").code(), Code::NotFound);
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

/// 64 clients at once on a batched route over gRPC, each request with its own number of rows:
/// every answer holds its own rows' classes, and the route still serves after the burst.
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
    let options = GrpcOptions { addr, deadline: Duration::from_secs(10), concurrency: 128, body_limit: 4 << 20 };
    tokio::spawn(serve(listener, pipeline, options, async move {
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
                    let expected: Vec<i64> = rows.iter().map(|[a, b]| i64::from(a + b > 10.0)).collect();
                    let answer = client.model_infer(raw_request("b", "", &rows)).await.expect("infer").into_inner();
                    assert_eq!(int64s(&answer.raw_output_contents[0]), expected, "caller {caller}, call {call}");
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await.expect("a caller");
    }
    let mut client = client;
    let answer = client.model_infer(raw_request("b", "", &[[6.0, 6.0]])).await.expect("infer").into_inner();
    assert_eq!(int64s(&answer.raw_output_contents[0]), [1]);
}
