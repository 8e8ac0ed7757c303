//! Generated pipelines against the same pipelines composed by hand from the runtime, in the
//! same run: the flow of three body steps on both engines, and one V2 inference through the
//! model router. And the language's expressions against the same work written in Rust.

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, criterion_group, criterion_main};
use graphc_runtime::model::{Model, ModelKind, SmartcoreModel};
use graphc_runtime::router::{Mode, Route, Router};
use graphc_runtime::*;
use serde_json::{Value, json};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

fn add_one(mut body: Value) -> Value {
    body["n"] = json!(body["n"].as_i64().unwrap_or(0) + 1);
    body
}

graphc_macros::graph! {
    graph flow_sync {
        topology = flow;
        engine = sync;
        step s1 = fn crate::add_one;
        step s2 = fn crate::add_one;
        step s3 = fn crate::add_one;
        s1 -> s2 -> s3;
    }
}

graphc_macros::graph! {
    graph flow_async {
        topology = flow;
        engine = async;
        step s1 = fn crate::add_one;
        step s2 = fn crate::add_one;
        step s3 = fn crate::add_one { respond; }
        s1 -> s2 -> s3;
    }
}

graphc_macros::graph! {
    graph iris {
        engine = sync;
        router router = model {
            route model1 = model(kind = logistic_regression, model_path = "examples/iris/models/logistic_regression.json");
        }
    }
}

graphc_macros::graph! {
    graph expressions {
        topology = flow;
        engine = sync;
        step score = extend({ n: body.n + 1, size: len(body.features) });
        step keep = filter(body.n > 0 && body.size > 0);
        score -> keep;
    }
}

/// `score` written in Rust.
fn score_by_hand(mut body: Value) -> Value {
    let size = body["features"].as_array().map_or(0, Vec::len);
    body["n"] = json!(body["n"].as_i64().unwrap_or(0) + 1);
    body["size"] = json!(size);
    body
}

/// `keep` written in Rust.
fn keep_by_hand(body: Value) -> Option<Value> {
    (body["n"].as_i64().unwrap_or(0) > 0 && body["size"].as_i64().unwrap_or(0) > 0).then_some(body)
}

fn answered(response: Response) -> (String, Vec<u8>) {
    (response.header("x-event-id").map(|id| id.into_owned()).unwrap_or_default(), response.body)
}

/// Times two handlers answering the same events, one after the other, in one runtime (as a
/// server runs them): `names[0]` is `first`'s case, `names[1]` is `second`'s.
fn side_by_side<A: Handler, B: Handler>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &tokio::runtime::Runtime,
    names: [&str; 2],
    (first, second): (&A, &B),
    event: impl Fn() -> Event,
) {
    for (which, name) in names.into_iter().enumerate() {
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                runtime.block_on(async {
                    let start = std::time::Instant::now();
                    for _ in 0..iterations {
                        let response =
                            if which == 0 { first.handle(event()).await } else { second.handle(event()).await };
                        black_box(answered(response));
                    }
                    start.elapsed()
                })
            })
        });
    }
}

fn flow(c: &mut Criterion) {
    let input = json!({ "n": 0, "name": "event" });
    let mut group = c.benchmark_group("generated_flow_3_steps");

    let by_hand = SyncPipeline::new(
        StepNode::new("s1", Body(add_one), StepNode::new("s2", Body(add_one), StepNode::new("s3", Body(add_one), End))),
        Context::new("bench"),
    );
    group.bench_function("hand_composed_sync", |b| {
        b.iter(|| answered(by_hand.process(Event::new(black_box(input.clone())))))
    });
    let generated = flow_sync::pipeline(&Options::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(runtime.block_on(generated.handle(Event::new(input.clone()))).json_body()["n"], 3);
    let event = || Event::new(black_box(input.clone()));
    side_by_side(
        &mut group,
        &runtime,
        ["generated_sync", "hand_composed_sync_via_handler"],
        (&generated, &by_hand),
        event,
    );

    let by_hand = AsyncPipeline::new(
        StepNode::new(
            "s1",
            Body(add_one),
            StepNode::new("s2", Body(add_one), StepNode::new("s3", Body(add_one), End).responding()),
        ),
        Context::new("bench"),
        true,
    );
    let generated = flow_async::pipeline(&Options::default()).unwrap();
    let event = || Event::new(black_box(input.clone()));
    side_by_side(&mut group, &runtime, ["hand_composed_tokio", "generated_tokio"], (&by_hand, &generated), event);
    group.finish();
}

fn infer(c: &mut Criterion) {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let request = || Request {
        method: "POST".into(),
        path: "/v2/models/model1/infer".into(),
        headers: Vec::new(),
        body: br#"{"inputs": [[5.1, 3.5, 1.4, 0.2]]}"#.to_vec(),
    };
    let model: Arc<dyn Model> = Arc::new(
        SmartcoreModel::load(
            "model1",
            &root.join("examples/iris/models/logistic_regression.json"),
            ModelKind::LogisticRegression,
        )
        .unwrap(),
    );
    let router = Router::new("router", "/v2/models", vec![("model1".into(), Route::Model(model))], Mode::Model);
    let by_hand = SyncPipeline::new(StepNode::new("router", router, End).responding(), Context::new("iris"));
    let generated = iris::pipeline(&Options::new(&root)).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    assert_eq!(
        runtime.block_on(generated.handle(request().into_event(usize::MAX).unwrap().event)).json_body()["outputs"],
        json!([0])
    );
    let mut group = c.benchmark_group("generated_router_infer_1_row");
    let event = || request().into_event(usize::MAX).unwrap().event;
    side_by_side(&mut group, &runtime, ["hand_composed", "generated"], (&by_hand, &generated), event);
    group.finish();
}

/// Steps of the language's expressions over a body of 256 features: each reads a few fields,
/// and the whole body goes on. Against the same steps written in Rust.
fn expressions(c: &mut Criterion) {
    let input = json!({ "n": 0, "features": (0..256).map(|i| f64::from(i) / 7.0).collect::<Vec<_>>() });
    let by_hand = SyncPipeline::new(
        StepNode::new("score", Body(score_by_hand), StepNode::new("keep", Body(keep_by_hand), End)),
        Context::new("bench"),
    );
    let generated = expressions::pipeline(&Options::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let by_hand_answer = by_hand.process(Event::new(input.clone())).json_body();
    assert_eq!(runtime.block_on(generated.handle(Event::new(input.clone()))).json_body(), by_hand_answer);
    assert_eq!((by_hand_answer["n"].clone(), by_hand_answer["size"].clone()), (json!(1), json!(256)));
    let mut group = c.benchmark_group("expressions_256_features");
    let event = || Event::new(black_box(input.clone()));
    side_by_side(&mut group, &runtime, ["hand_written", "generated"], (&by_hand, &generated), event);
    group.finish();
}

criterion_group!(benches, flow, infer, expressions);
criterion_main!(benches);
