//! The hand-written baseline of scripts/bench-http: an axum server doing the V2 infer work of
//! the iris graph by hand (parse, predict with the same smartcore model, answer with an id).
//! `cargo run --release -p graphc-runtime --example handwritten_server -- PORT`

use axum::body::Bytes;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use graphc_runtime::model::{Estimator, SmartcoreModel};
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::logistic_regression::LogisticRegression;
use std::sync::Arc;

type Model = LogisticRegression<f64, u32, DenseMatrix<f64>, Vec<u32>>;

async fn infer(model: Arc<Model>, body: Bytes) -> Response {
    let Ok(request) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "malformed JSON").into_response();
    };
    let Ok(rows) = serde_json::from_value::<Vec<Vec<f64>>>(request["inputs"].clone()) else {
        return (StatusCode::UNPROCESSABLE_ENTITY, "bad inputs").into_response();
    };
    let columns = rows.first().map_or(0, Vec::len);
    let Ok(x) = DenseMatrix::new(rows.len(), columns, rows.concat(), false) else {
        return (StatusCode::UNPROCESSABLE_ENTITY, "bad shape").into_response();
    };
    let Ok(outputs) = model.predict(&x) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "predict failed").into_response();
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let body = serde_json::to_vec(&serde_json::json!({ "id": id, "model_name": "model1", "outputs": outputs }))
        .unwrap_or_default();
    let mut response = body.into_response();
    response.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(id) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-event-id", id);
    }
    response
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::args().nth(1).unwrap_or_else(|| "8082".to_string());
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/iris/models/logistic_regression.json");
    let file: SmartcoreModel = serde_json::from_slice(&std::fs::read(path)?).map_err(std::io::Error::other)?;
    let Estimator::LogisticRegression(model) = file.estimator else {
        return Err(std::io::Error::other("not a logistic regression"));
    };
    let model = Arc::new(model);
    let app = axum::Router::new()
        .route("/v2/models/model1/infer", axum::routing::post(move |body: Bytes| infer(Arc::clone(&model), body)));
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    axum::serve(listener, app).await
}
