//! `graphc-lsp` latency on a 10,000-step file: the time from `didChange` to the
//! `publishDiagnostics` it causes (a clean file and one with a mistake on every step), and of a
//! hover and a completion, over stdio as an editor sees it. The baseline is the analysis the
//! server must run anyway (`ide::analyze` in-process): the ratio is what the protocol costs.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;

#[path = "../tests/support/lsp_client.rs"]
mod lsp_client;
#[path = "../../compiler/benches/support/shapes.rs"]
#[allow(dead_code, reason = "the check benchmark's shapes; this one uses two")]
mod shapes;

const URI: &str = "file:///bench/large.graph";

fn lsp(c: &mut Criterion) {
    let (mut client, _) = lsp_client::Client::start(env!("CARGO_BIN_EXE_graphc-lsp"));
    let mut group = c.benchmark_group("lsp_10000_steps");
    group.sample_size(10);
    for (shape, text) in
        [("chain", shapes::generated_flow(10_000)), ("many_diagnostics", shapes::many_diagnostics(10_000))]
    {
        client.notify(
            "textDocument/didOpen",
            json!({ "textDocument": { "uri": URI, "languageId": "graph", "version": 0, "text": text } }),
        );
        let _ = client.diagnostics(URI);
        // Two texts in turn, so that every change is a change.
        let texts = [text.clone(), format!("{text}\n// edited\n")];
        let mut version = 0;
        group.bench_function(BenchmarkId::new("did_change_to_diagnostics", shape), |b| {
            b.iter(|| {
                version += 1;
                let text = &texts[version % 2];
                client.notify(
                    "textDocument/didChange",
                    json!({ "textDocument": { "uri": URI, "version": version }, "contentChanges": [{ "text": text }] }),
                );
                client.diagnostics(URI).len()
            })
        });
        group.bench_function(BenchmarkId::new("baseline_analyze_in_process", shape), |b| {
            b.iter(|| graphc::ide::analyze(black_box(&text)).diagnostics.len())
        });
        // Somewhere in the middle of the file.
        let line = text.lines().count() / 2;
        group.bench_function(BenchmarkId::new("hover", shape), |b| {
            b.iter(|| {
                client.request(
                    "textDocument/hover",
                    json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": 10 } }),
                )
            })
        });
        group.bench_function(BenchmarkId::new("completion", shape), |b| {
            b.iter(|| {
                client.request(
                    "textDocument/completion",
                    json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": 4 } }),
                )
            })
        });
        client.notify("textDocument/didClose", json!({ "textDocument": { "uri": URI } }));
        let _ = client.diagnostics(URI);
    }
    group.finish();
    assert!(client.shutdown().success());
}

criterion_group!(benches, lsp);
criterion_main!(benches);
