//! Graphs of a given size and shape, written as `.graph` text: the shapes that stress code
//! generation (a long chain, a wide choice, a lattice of joins). build.rs compiles them as run
//! fixtures, and the checker benchmarks reuse them.

/// `steps` map steps in one chain, then a responder; an event with `n: 0` leaves with
/// `n == steps`.
pub fn long_chain(name: &str, engine: &str, steps: usize) -> String {
    let mut text = format!("graph {name} {{\n    topology = flow;\n    engine = {engine};\n");
    for i in 0..steps {
        text.push_str(&format!("    step s{i} = map({{ n: body.n + 1 }});\n"));
    }
    text.push_str(&format!("    step last = map(body) {{ respond; after = s{}; }}\n", steps.saturating_sub(1)));
    for i in 1..steps {
        text.push_str(&format!("    s{} -> s{i};\n", i - 1));
    }
    text.push_str(&format!(
        "    test counts {{ request POST \"/\" {{ body = {{ n: 0 }}; }} expect body.n == {steps}; }}\n}}\n"
    ));
    text
}

/// One choice with `arms` outlets, each a chain of `depth` steps, all joining one responder;
/// the event with `k: i` takes arm `i` and leaves with `n == depth` and `arm == i`.
pub fn wide_choice(name: &str, arms: usize, depth: usize) -> String {
    let mut text = format!("graph {name} {{\n    topology = flow;\n    engine = async;\n    step pick = choice {{\n");
    for arm in 0..arms {
        if arm + 1 == arms {
            text.push_str(&format!("        _ => a{arm}_0,\n"));
        } else {
            text.push_str(&format!("        body.k == {arm} => a{arm}_0,\n"));
        }
    }
    text.push_str("    };\n    step join = map(body) { respond; }\n");
    for arm in 0..arms {
        for step in 0..depth {
            text.push_str(&format!("    step a{arm}_{step} = map({{ k: body.k, n: body.n + 1, arm: {arm} }});\n"));
        }
        let chain: Vec<String> = (0..depth).map(|step| format!("a{arm}_{step}")).collect();
        text.push_str(&format!("    {} -> join;\n", chain.join(" -> ")));
    }
    let last = arms.saturating_sub(1);
    text.push_str(&format!(
        "    test first_arm {{ request POST \"/\" {{ body = {{ k: 0, n: 0 }}; }} expect body == {{ k: 0, n: {depth}, arm: 0 }}; }}\n    test last_arm {{ request POST \"/\" {{ body = {{ k: {last}, n: 0 }}; }} expect body.arm == {last}; }}\n}}\n"
    ));
    text
}

/// A lattice of `layers` layers of `width` nodes: each node counts the event and sends it, by a
/// choice, to one of two nodes of the next layer, so that every inner node joins two parents;
/// the entry fans out to the whole first layer, and the last layer joins one responder. Each
/// copy of the event crosses one node per layer.
pub fn lattice(name: &str, layers: usize, width: usize) -> String {
    let mut text = format!("graph {name} {{\n    topology = flow;\n    engine = async;\n");
    text.push_str("    step enter = map({ n: 0, turn: body.turn });\n    step leave = map(body) { respond; }\n");
    let first: Vec<String> = (0..width).map(|column| format!("c0_{column}")).collect();
    text.push_str(&format!("    enter -> [{}];\n", first.join(", ")));
    for layer in 0..layers {
        for column in 0..width {
            text.push_str(&format!("    step c{layer}_{column} = map({{ n: body.n + 1, turn: body.turn }});\n"));
            if layer + 1 == layers {
                text.push_str(&format!("    c{layer}_{column} -> leave;\n"));
            } else {
                let (down, right) = (layer + 1, (column + 1) % width);
                text.push_str(&format!(
                    "    step t{layer}_{column} = choice {{ body.turn => c{down}_{right}, _ => c{down}_{column} }};\n    c{layer}_{column} -> t{layer}_{column};\n"
                ));
            }
        }
    }
    text.push_str(&format!(
        "    test crosses_every_layer {{ request POST \"/\" {{ body = {{ turn: true }}; }} expect body.n == {layers}; }}\n}}\n"
    ));
    text
}
