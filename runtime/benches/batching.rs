//! Dynamic batching against the same route unbatched, in the same run.
//!
//! `fixed_cost_c32` and `_c64`: a model whose every call costs 1 ms on one device (a lock held
//! for the call, as one GPU serves one call at a time), 32 or 64 clients sending one-row
//! requests at once; the
//! result is the throughput ratio, and the p99 latency of each is printed. `iris_c1`: the iris
//! logistic regression, one client: what batching costs a request that is alone.

use criterion::{Criterion, criterion_group, criterion_main};
use graphc_runtime::model::{Features, Model, ModelKind, SmartcoreModel};
use graphc_runtime::router::{Mode, Route, Router};
use graphc_runtime::*;
use serde_json::{Value, json};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

/// One device: a call holds it for 1 ms, whatever the rows.
struct OneDevice(Mutex<()>);

impl Model for OneDevice {
    fn predict(&self, features: Features) -> Result<Vec<Value>, StepError> {
        let _device = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let until = Instant::now() + Duration::from_millis(1);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        Ok((0..features.rows).map(|r| json!(features.row(r).iter().sum::<f64>())).collect())
    }
}

type Server = MockServer<SyncPipeline<StepNode<Router, End>>>;

fn server(route: Route) -> Arc<Server> {
    let router = Router::new("router", "/v2/models", vec![("m".into(), route)], Mode::Model);
    Arc::new(MockServer::new(SyncPipeline::new(StepNode::new("router", router, End).responding(), Context::new("g"))))
}

const REQUESTS: usize = 10;

/// `clients` clients, 10 requests each; every request's latency. A sample is one round's wall
/// time.
fn round(server: &Arc<Server>, clients: usize) -> Vec<Duration> {
    let barrier = Arc::new(Barrier::new(clients));
    let threads: Vec<_> = (0..clients)
        .map(|client| {
            let (server, barrier) = (Arc::clone(server), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                (0..REQUESTS)
                    .map(|i| {
                        let started = Instant::now();
                        let answer = server.test("/v2/models/m/infer", json!({ "inputs": [[client, i]] }));
                        assert_eq!(answer.status, 200);
                        started.elapsed()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    threads.into_iter().flat_map(|thread| thread.join().expect("a client")).collect()
}

fn p99(mut latencies: Vec<Duration>) -> Duration {
    latencies.sort();
    latencies.get(latencies.len() * 99 / 100).copied().unwrap_or_default()
}

fn batching(c: &mut Criterion) {
    let mut group = c.benchmark_group("batching");
    group.sample_size(10);
    let device = || Route::Model(Arc::new(OneDevice(Mutex::new(()))));
    for (name, clients, server) in [
        ("fixed_cost_c32/unbatched", 32, server(device())),
        ("fixed_cost_c32/batched_32_2ms", 32, server(device().batched(32, Duration::from_millis(2)))),
        ("fixed_cost_c64/unbatched", 64, server(device())),
        ("fixed_cost_c64/batched_32_2ms", 64, server(device().batched(32, Duration::from_millis(2)))),
    ] {
        eprintln!("{name}: p99 {:?} over {} requests", p99(round(&server, clients)), clients * REQUESTS);
        group.bench_function(name, |b| {
            b.iter_custom(|iterations| {
                (0..iterations)
                    .map(|_| {
                        let started = Instant::now();
                        round(&server, clients);
                        started.elapsed()
                    })
                    .sum()
            })
        });
    }
    let path =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/iris/models/logistic_regression.json");
    let iris = || -> Arc<dyn Model> {
        Arc::new(SmartcoreModel::load("iris", &path, ModelKind::LogisticRegression).expect("the iris model"))
    };
    let body = json!({ "inputs": [[5.1, 3.5, 1.4, 0.2]] });
    for (name, server) in [
        ("iris_c1/unbatched", server(Route::Model(iris()))),
        ("iris_c1/batched_32_2ms", server(Route::Model(iris()).batched(32, Duration::from_millis(2)))),
    ] {
        group.bench_function(name, |b| b.iter(|| server.test("/v2/models/m/infer", body.clone()).status));
    }
    group.finish();
}

criterion_group!(benches, batching);
criterion_main!(benches);
