//! A batch run (`graphc run`) over 100,000 events against a hand-written loop doing the same
//! work in the same run: read a line, parse it, three body steps, write the answer line with an
//! id and a status. Both on one thread of work; the batch runner keeps 64 events in flight.

use criterion::{Criterion, criterion_group, criterion_main};
use graphc_runtime::jsonl::{JsonlOptions, run};
use graphc_runtime::*;
use serde_json::{Value, json};
use std::io::{BufRead, Write};
use std::sync::Arc;

const EVENTS: usize = 100_000;

fn add_one(mut body: Value) -> Value {
    body["n"] = json!(body["n"].as_i64().unwrap_or(0) + 1);
    body
}

/// What a hand-written batch job does: each line parsed, changed, and written with its id and
/// status, in order.
fn hand_written(input: &[u8], output: &mut Vec<u8>) -> usize {
    let mut count = 0;
    for line in input.lines() {
        let body: Value = serde_json::from_str(&line.unwrap()).unwrap();
        let body = add_one(add_one(add_one(body)));
        let id = uuid::Uuid::new_v4().simple().to_string();
        writeln!(output, "{}", json!({ "id": id, "status": 200, "body": body })).unwrap();
        count += 1;
    }
    count
}

fn batch(c: &mut Criterion) {
    let input: Vec<u8> =
        (0..EVENTS).map(|n| format!("{{\"n\": {n}, \"name\": \"event\"}}\n")).collect::<String>().into_bytes();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut group = c.benchmark_group("batch_100k");
    group.sample_size(10);
    group.bench_function("hand_written_loop", |b| {
        b.iter(|| {
            let mut output = Vec::with_capacity(input.len() * 2);
            hand_written(&input, &mut output)
        })
    });
    let pipeline = Arc::new(SyncPipeline::new(
        StepNode::new("s1", Body(add_one), StepNode::new("s2", Body(add_one), StepNode::new("s3", Body(add_one), End))),
        Context::new("batch"),
    ));
    group.bench_function("graphc_batch_run", |b| {
        b.iter(|| {
            let mut output = Vec::with_capacity(input.len() * 2);
            let summary = runtime
                .block_on(run(
                    Arc::clone(&pipeline),
                    &input[..],
                    None,
                    &mut output,
                    std::io::sink(),
                    &JsonlOptions::default(),
                ))
                .unwrap();
            assert_eq!(summary.succeeded, EVENTS);
        })
    });
    group.finish();
}

criterion_group!(benches, batch);
criterion_main!(benches);
