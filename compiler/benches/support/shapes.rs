//! Large graphs of four shapes, written as text: the check benchmark's inputs, and what
//! `cargo run --example large_graph` prints for measuring memory.

/// A flow of `steps` steps: built-ins with expressions, Rust handlers, options, and one chain
/// statement per step, as a large generated graph would be written.
pub fn generated_flow(steps: usize) -> String {
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
pub fn fan_out(steps: usize) -> String {
    let mut text = String::from("graph wide {\n    topology = flow;\n    step root = map(body) { respond; }\n");
    for i in 0..steps {
        text.push_str(&format!("    step s{i} = map(body);\n    root -> s{i};\n"));
    }
    text.push_str("}\n");
    text
}

/// Layers of 10 steps, each joined to two steps of the layer before.
pub fn lattice(steps: usize) -> String {
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
pub fn many_diagnostics(steps: usize) -> String {
    let mut text = String::from("graph mistakes {\n    topology = flow;\n    step root = map(body) { respond; }\n");
    for i in 0..steps {
        text.push_str(&format!("    root -> missing{i};\n"));
    }
    text.push_str("}\n");
    text
}
