//! `graphc check` speed by shape (a chain, a fan-out, a lattice of joins, a file of many
//! mistakes printed as diagnostics) at 10,000 and 100,000 steps, each against lexing the same
//! text with the Rust lexer (proc-macro2), the floor any front end pays: the result is a ratio,
//! and the growth from 10k to 100k shows whether a shape is linear.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::str::FromStr;

/// A flow of `steps` steps: built-ins with expressions, Rust handlers, options, and one chain
/// statement per step, as a large generated graph would be written.
fn generated_flow(steps: usize) -> String {
    let mut text =
        String::from("graph generated {\n    topology = flow;\n    engine = async;\n    param factor: float = 1.5;\n");
    for i in 0..steps {
        match i % 4 {
            0 => text
                .push_str(&format!("    step s{i} = map({{ value: body.value * param.factor + {i}, index: {i} }});\n")),
            1 => text.push_str(&format!("    step s{i} = filter(body.value > {i} && body.index != 0);\n")),
            2 => text.push_str(&format!(
                "    step s{i} = fn handlers::step_{i} {{ input_path = \"value\"; result_path = \"out.v{i}\"; }}\n"
            )),
            _ => text.push_str(&format!("    step s{i} = extend({{ tag: \"t{i}\" }});\n")),
        }
    }
    text.push_str(&format!("    step last = map(body) {{ respond; after = s{}; }}\n", steps - 1));
    for i in 1..steps {
        text.push_str(&format!("    s{} -> s{i};\n", i - 1));
    }
    text.push_str("}\n");
    text
}

/// One root with `steps` children.
fn fan_out(steps: usize) -> String {
    let mut text = String::from("graph wide {\n    topology = flow;\n    step root = map(body) { respond; }\n");
    for i in 0..steps {
        text.push_str(&format!("    step s{i} = map(body);\n    root -> s{i};\n"));
    }
    text.push_str("}\n");
    text
}

/// Layers of 10 steps, each joined to two steps of the layer before.
fn lattice(steps: usize) -> String {
    let width = 10;
    let mut text = String::from("graph lattice {\n    topology = flow;\n    step root = map(body) { respond; }\n");
    for i in 0..steps {
        text.push_str(&format!("    step s{i} = map(body);\n"));
        if i < width {
            text.push_str(&format!("    root -> s{i};\n"));
        } else {
            let (a, b) = (i - width, i - width + (i + 1) % width);
            text.push_str(&format!("    [s{a}, s{}] -> s{i};\n", b.min(i - 1)));
        }
    }
    text.push_str("}\n");
    text
}

/// One unknown step per line: every line a diagnostic, checked and printed.
fn many_diagnostics(steps: usize) -> String {
    let mut text = String::from("graph mistakes {\n    topology = flow;\n    step root = map(body) { respond; }\n");
    for i in 0..steps {
        text.push_str(&format!("    root -> missing{i};\n"));
    }
    text.push_str("}\n");
    text
}

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
