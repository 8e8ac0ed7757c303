//! `graphc check` speed by shape (a chain, a fan-out, a lattice of joins, a file of many
//! mistakes printed as diagnostics) at 10,000 and 100,000 steps, each against lexing the same
//! text with the Rust lexer (proc-macro2), the floor any front end pays: the result is a ratio,
//! and the growth from 10k to 100k shows whether a shape is linear.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::str::FromStr;

#[path = "support/shapes.rs"]
mod shapes;
use shapes::{fan_out, generated_flow, lattice, many_diagnostics};

/// Makes a graph of a shape with N steps.
type Shape = fn(usize) -> String;

fn check_and_print(text: &str) -> usize {
    match graphc::check_source(text) {
        Ok(checked) => checked.graph.nodes.len(),
        Err(diagnostics) => {
            graphc::report::render_human("bench.graph", text, &diagnostics, graphc::report::Style::PLAIN).len()
        }
    }
}

fn check(c: &mut Criterion) {
    let shapes: [(&str, Shape); 4] =
        [("chain", generated_flow), ("fan_out", fan_out), ("lattice", lattice), ("many_diagnostics", many_diagnostics)];
    for (shape, make) in shapes {
        let mut group = c.benchmark_group(format!("check_{shape}"));
        group.sample_size(10);
        for steps in [10_000usize, 100_000] {
            let text = make(steps);
            group.throughput(Throughput::Elements(steps as u64));
            group.bench_with_input(BenchmarkId::new("graphc_check", steps), &text, |b, text| {
                b.iter(|| check_and_print(black_box(text)))
            });
            group.bench_with_input(BenchmarkId::new("baseline_rust_lexer", steps), &text, |b, text| {
                b.iter(|| proc_macro2::TokenStream::from_str(black_box(text)).map(|tokens| tokens.into_iter().count()))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, check);
criterion_main!(benches);
