//! The runtime under load, each case against its ideal measured in the same run.
//!
//! `run_blocking_2ms_c16`: `jsonl::run` (what `graphc run` calls) over 1,600 events, 16 at once,
//! through a graph whose one step is a synchronous handler that takes 2 ms; against 16 plain
//! threads that each sleep 2 ms per event (the ideal: the handler's cost, 16 at a time, nothing
//! else). `probe_under_blocking_load`: a health probe over HTTP while 64 requests hold every
//! thread of the blocking pool with a 200 ms step; against the same probe on an idle server.

use criterion::{Criterion, criterion_group, criterion_main};
use graphc_runtime::http::{ServeOptions, bind, serve};
use graphc_runtime::jsonl::{JsonlOptions, run};
use graphc_runtime::*;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const EVENTS: usize = 1_600;
const CONCURRENCY: usize = 16;

fn two_ms(body: Value) -> Value {
    std::thread::sleep(Duration::from_millis(2));
    body
}

fn blocking_run(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let pipeline = AsyncPipeline::new(
        StepNode::new("two_ms", Blocking::new(Body(two_ms)), End).responding(),
        Context::new("g"),
        true,
    );
    let input: String = (0..EVENTS).map(|n| format!("{{\"n\": {n}}}\n")).collect();
    let mut group = c.benchmark_group("load");
    group.sample_size(10);
    group.bench_function("run_blocking_2ms_c16/graphc", |b| {
        b.iter(|| {
            runtime.block_on(async {
                let options = JsonlOptions { concurrency: CONCURRENCY, progress: false };
                let summary = run(
                    Arc::new(Arc::clone(&pipeline)),
                    Box::new(std::io::Cursor::new(input.clone())),
                    Some(EVENTS),
                    Box::new(std::io::sink()),
                    Box::new(std::io::sink()),
                    &options,
                )
                .await
                .unwrap();
                assert_eq!(summary.succeeded, EVENTS);
            })
        })
    });
    group.bench_function("run_blocking_2ms_c16/ideal", |b| {
        b.iter(|| {
            let threads: Vec<_> = (0..CONCURRENCY)
                .map(|_| {
                    std::thread::spawn(|| {
                        for n in 0..EVENTS / CONCURRENCY {
                            std::hint::black_box(two_ms(json!({ "n": n })));
                        }
                    })
                })
                .collect();
            threads.into_iter().for_each(|thread| thread.join().unwrap());
        })
    });
    group.finish();
}

fn probe_under_load(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let slow = |body: Value| {
        std::thread::sleep(Duration::from_millis(200));
        body
    };
    let (addr, _stop) = runtime.block_on(async {
        let pipeline = AsyncPipeline::new(
            StepNode::new("slow", Blocking::new(Body(slow)), End).responding(),
            Context::new("g"),
            true,
        );
        let options = ServeOptions { addr: SocketAddr::from(([127, 0, 0, 1], 0)), ..ServeOptions::default() };
        let listener = bind(&options).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(serve(listener, pipeline, options, async move {
            let _ = stopped.await;
        }));
        (addr, stop)
    });
    let client = reqwest::Client::new();
    let probe = |client: &reqwest::Client| {
        let url = format!("http://{addr}/v2/health/live");
        let client = client.clone();
        async move {
            assert_eq!(client.get(url).send().await.unwrap().status(), 200);
        }
    };
    let mut group = c.benchmark_group("load");
    group.sample_size(50);
    let mut idle = Vec::new();
    group.bench_function("probe/idle", |b| {
        b.iter(|| {
            let started = Instant::now();
            runtime.block_on(probe(&client));
            idle.push(started.elapsed());
        })
    });
    print_p99("probe/idle", idle);
    // Keep the pool saturated for the whole measurement: 64 slow requests at a time, refilled.
    let saturating = runtime.spawn({
        let client = client.clone();
        async move {
            let url = format!("http://{addr}/");
            loop {
                let wave: Vec<_> = (0..64)
                    .map(|n| {
                        let (client, url) = (client.clone(), url.clone());
                        tokio::spawn(async move { client.post(url).json(&json!({ "n": n })).send().await })
                    })
                    .collect();
                for request in wave {
                    let _ = request.await;
                }
            }
        }
    });
    let metrics = runtime.block_on(async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        client.get(format!("http://{addr}/metrics")).send().await.unwrap().text().await.unwrap()
    });
    let gauge =
        |name: &str| metrics.lines().find_map(|line| line.strip_prefix(name)).map(str::trim).map(str::to_string);
    eprintln!(
        "probe/pool_saturated: {} of {} pool threads busy, {} calls waiting",
        gauge("graphc_blocking_busy ").unwrap_or_default(),
        gauge("graphc_blocking_threads ").unwrap_or_default(),
        gauge("graphc_blocking_waiting ").unwrap_or_default()
    );
    let mut latencies = Vec::new();
    group.bench_function("probe/pool_saturated", |b| {
        b.iter(|| {
            let started = Instant::now();
            runtime.block_on(probe(&client));
            latencies.push(started.elapsed());
        })
    });
    print_p99("probe/pool_saturated", latencies);
    saturating.abort();
    group.finish();
}

fn print_p99(case: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    if let Some(p99) = latencies.get(latencies.len() * 99 / 100) {
        eprintln!("{case}: p99 {p99:?} over {} probes", latencies.len());
    }
}

criterion_group!(benches, blocking_run, probe_under_load);
criterion_main!(benches);
