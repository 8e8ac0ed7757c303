//! `graphc check` speed on generated flows of 1,000 and 10,000 steps, against lexing the same
//! text with the Rust lexer (proc-macro2), the floor any front end pays.

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

fn check(c: &mut Criterion) {
    let mut group = c.benchmark_group("check");
    group.sample_size(20);
    for steps in [1_000usize, 10_000] {
        let text = generated_flow(steps);
        assert!(graphc::check_source(&text).is_ok(), "the generated flow checks");
        group.throughput(Throughput::Elements(steps as u64));
        group.bench_with_input(BenchmarkId::new("graphc_check", steps), &text, |b, text| {
            b.iter(|| graphc::check_source(black_box(text)).map(|checked| checked.graph.nodes.len()))
        });
        group.bench_with_input(BenchmarkId::new("baseline_rust_lexer", steps), &text, |b, text| {
            b.iter(|| proc_macro2::TokenStream::from_str(black_box(text)).map(|tokens| tokens.into_iter().count()))
        });
    }
    group.finish();
}

criterion_group!(benches, check);
criterion_main!(benches);
