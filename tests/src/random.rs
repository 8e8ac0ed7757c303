//! Random valid graphs, drawn from every construct of the language: both topologies and engines,
//! routers of each kind with model and step routes, flows with fan-out, joins, choices, built-in
//! steps, Rust handlers, paths, memory and stream queues, child functions, step and graph error
//! handlers, parameters, records and test blocks. The generator writes only graphs the checker
//! must accept; the property tests and build.rs (which compiles a few dozen with rustc) use it.

/// A small, seedable generator (splitmix64): the same seed gives the same graph everywhere.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }

    /// True `percent` times in a hundred.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.get(self.below(items.len())).copied().unwrap_or_default()
    }
}

/// What a random graph may contain.
#[derive(Clone, Copy)]
pub struct Limits {
    /// Steps in the main part of a flow, or routes of a router (at least 1).
    pub size: usize,
    /// `$remote` steps, which need a server to answer: only where the graph is not run.
    pub remote: bool,
    /// The crate the graph's Rust handlers are in: `None` for `crate::handlers` (the test
    /// crate's re-export), or a handler crate's name (`fixture_handlers`, built by the CLI).
    pub handler_crate: Option<&'static str>,
}

impl Limits {
    /// Graphs of `size` steps or routes, with no `$remote` steps, naming `crate::handlers`.
    pub fn new(size: usize) -> Self {
        Limits { size, remote: false, handler_crate: None }
    }
}

/// The statuses a run of a random graph may answer, as docs/semantics.md allows them for
/// what the generator writes: an answer, 202 without a responder, 204 when dropped, 422 for a
/// body a step cannot take, 500 for an unhandled failure.
pub const ALLOWED_STATUSES: &[u16] = &[200, 202, 204, 422, 500];

/// The body every random graph's test sends.
pub const BODY: &str = "{ a: \"x\", n: 1, turn: true, k: 0, inputs: [[5.1, 3.5, 1.4, 0.2]] }";

const CLASSIFIERS: &[&str] =
    &["logistic_regression", "decision_tree_classifier", "random_forest_classifier", "knn_classifier", "gaussian_nb"];

/// A random valid graph named `name`.
pub fn graph(name: &str, seed: u64, limits: Limits) -> String {
    let mut rng = Rng::new(seed);
    let size = limits.size.max(1);
    let mut out = format!("// seed {seed}, size {size}\ngraph {name} {{\n");
    let router = rng.chance(20);
    let allowed = ALLOWED_STATUSES.iter().map(|s| format!("status == {s}")).collect::<Vec<_>>().join(" || ");
    if rng.chance(50) {
        out.push_str("    param bonus: int = 3;\n");
    }
    if rng.chance(40) {
        // Keyword field names: the record becomes a struct with raw identifiers.
        out.push_str("    record Shape { fn: str, type: int, tags: [str], inner: float? }\n");
    }
    if rng.chance(30) {
        // A record that holds itself through an optional field and a list: boxed where it must be.
        out.push_str("    record Tree { value: int, next: Tree?, kids: [Tree] }\n");
    }
    if rng.chance(20) {
        out.push_str("    error_stream = memory;\n");
    }
    let path = if router {
        let first = router_topology(&mut rng, &mut out, size);
        format!("/v2/models/{first}/infer")
    } else {
        flow_topology(&mut rng, &mut out, size, limits.remote, name);
        "/".to_string()
    };
    out.push_str(&format!(
        "    test answers {{\n        request POST \"{path}\" {{ body = {BODY}; }}\n        expect {allowed};\n    }}\n}}\n"
    ));
    match limits.handler_crate {
        Some(handler_crate) => out.replace("crate::handlers::", &format!("{handler_crate}::")),
        None => out,
    }
}

/// A router of a random kind; returns the name of its first route.
fn router_topology(rng: &mut Rng, out: &mut String, size: usize) -> String {
    let models = |rng: &mut Rng, count: usize| -> Vec<String> {
        (0..count)
            .map(|i| {
                let kind = rng.pick(CLASSIFIERS);
                format!(
                    "route m{i} = model(kind = {kind}, model_path = \"../../../examples/iris/models/{kind}.json\");"
                )
            })
            .collect()
    };
    let count = 1 + rng.below(size.min(3));
    let (kind, routes) = match rng.below(3) {
        0 => {
            let weights = (0..count).map(|i| format!("m{i}: {}", 1 + i)).collect::<Vec<_>>().join(", ");
            let options = if rng.chance(50) {
                format!(" vote = classification; weights = {{ {weights} }};")
            } else {
                String::new()
            };
            (format!("ensemble {{{options}"), models(rng, count))
        }
        1 => {
            let routes = (0..count)
                .map(|i| match rng.below(2) {
                    0 => format!("route m{i} = fn crate::handlers::echo;"),
                    _ => format!("route m{i} = new crate::handlers::Scale(factor = 2.0, field = \"n\");"),
                })
                .collect();
            ("parallel {".to_string(), routes)
        }
        _ => {
            let mut routes = models(rng, count);
            if rng.chance(50) {
                routes.push(format!("route m{count} = fn crate::handlers::echo;"));
            }
            ("model {".to_string(), routes)
        }
    };
    out.push_str(&format!("    router models = {kind}\n"));
    for route in routes {
        out.push_str(&format!("        {route}\n"));
    }
    out.push_str("    }\n");
    "m0".to_string()
}

/// What a step of the main flow runs, and the options that come with it.
fn step_impl(rng: &mut Rng, sync: bool, remote: bool, param: bool) -> (String, Vec<String>) {
    let bonus = if param { " + param.bonus" } else { "" };
    let choices = if remote && !sync { 10 } else { 9 };
    let plain = |text: &str| (text.to_string(), Vec::new());
    let paths =
        |input: &str, result: &str| vec![format!("input_path = \"{input}\";"), format!("result_path = \"{result}\";")];
    match rng.below(choices) {
        // A declared signature: the expression is compiled, as it is without one.
        0 if rng.chance(50) => {
            plain(&format!(": json -> json = map({{ a: body.a, n: body.n + 1{bonus}, turn: body.turn, k: body.k }})"))
        }
        0 => plain(&format!("map({{ a: body.a, n: body.n + 1{bonus}, turn: body.turn, k: body.k }})")),
        1 => plain("extend({ tagged: true, path: event.path })"),
        2 => plain("filter(body.n < 100)"),
        3 => ("fn crate::handlers::echo".to_string(), paths("a", "echo")),
        4 => ("fn crate::handlers::upper".to_string(), paths("a", "a")),
        5 => plain("new crate::handlers::Scale(factor = 2.0, field = \"n\")"),
        6 => plain("flat_map([body])"),
        7 => ("fn crate::handlers::stamp".to_string(), vec!["full_event;".to_string()]),
        8 => plain("map(body)"),
        _ => plain("$remote(url = \"http://127.0.0.1:9/score\", timeout_ms = 100)"),
    }
}

/// A declaration's tail: `;`, or its options in braces.
fn tail(options: &[String]) -> String {
    if options.is_empty() { ";".to_string() } else { format!(" {{ {} }}", options.join(" ")) }
}

fn flow_topology(rng: &mut Rng, out: &mut String, size: usize, remote: bool, name: &str) {
    let sync = rng.chance(30);
    out.push_str(&format!("    topology = flow;\n    engine = {};\n", if sync { "sync" } else { "async" }));
    let param = out.contains("param bonus");
    // The main part: a chain under sync; under async a DAG whose every node after the first
    // has one or two earlier parents.
    let mut parents: Vec<Vec<usize>> = vec![Vec::new()];
    for i in 1..size {
        let mut own = vec![if sync { i - 1 } else { rng.below(i) }];
        if !sync && i > 1 && rng.chance(25) {
            let other = rng.below(i);
            if !own.contains(&other) {
                own.push(other);
            }
        }
        parents.push(own);
    }
    let children = |node: usize| -> Vec<usize> { (0..size).filter(|&c| parents[c].contains(&node)).collect() };
    // Outlets of a choice are its arms, not chain edges.
    let responder = if rng.chance(70) { Some(rng.below(size)) } else { None };
    let step_catcher = rng.chance(30).then(|| rng.below(size));
    let graph_catcher = rng.chance(30);
    let mut choices = Vec::new();
    for node in 0..size {
        let mut options = Vec::new();
        if responder == Some(node) {
            options.push("respond;".to_string());
        }
        if step_catcher == Some(node) {
            options.push("on_error = caught;".to_string());
        }
        let kids = children(node);
        // A choice needs outlets; a memory queue passes events on (under sync, in place).
        if !kids.is_empty() && rng.chance(20) {
            let mut arms: Vec<String> = kids
                .iter()
                .enumerate()
                .map(|(index, kid)| match index + 1 == kids.len() {
                    true => format!("_ => s{kid}"),
                    false => format!("body.n > {index} => s{kid}"),
                })
                .collect();
            if rng.chance(40) {
                // Several arms may name one target.
                arms.insert(0, format!("body.k < 0 => s{}", kids[rng.below(kids.len())]));
            }
            choices.push(node);
            out.push_str(&format!("    step s{node} = choice {{ {} }}{}\n", arms.join(", "), tail(&options)));
            continue;
        }
        // Not first: a flow starts with a step.
        if node > 0 && !kids.is_empty() && options.is_empty() && rng.chance(10) {
            out.push_str(&format!("    queue s{node} = memory(capacity = {});\n", 1 + rng.below(64)));
        } else {
            let (implementation, mut own) = step_impl(rng, sync, remote, param);
            own.extend(options);
            // A signature comes before `=`: `step s0: json -> json = map(...)`.
            let separator = if implementation.starts_with(':') { "" } else { " = " };
            out.push_str(&format!("    step s{node}{separator}{implementation}{}\n", tail(&own)));
        }
        for kid in kids {
            out.push_str(&format!("    s{node} -> s{kid};\n"));
        }
    }
    if step_catcher.is_some() {
        out.push_str("    step caught = fn crate::handlers::record_failure { full_event; }\n");
        if rng.chance(50) {
            out.push_str("    step after_caught = map({ caught: body });\n    caught -> after_caught;\n");
        }
    }
    if graph_catcher {
        out.push_str(
            "    on_error = catch_all;\n    step catch_all = fn crate::handlers::record_failure { full_event; }\n",
        );
        if rng.chance(50) {
            out.push_str("    step after_all = map({ handled: true, was: body });\n    catch_all -> after_all;\n");
        }
    }
    // A child function fed by a stream queue from a node of the main part, and maybe an
    // output stream after it.
    let feeders: Vec<usize> = (0..size).filter(|node| !choices.contains(node)).collect();
    if !sync && !feeders.is_empty() && rng.chance(25) {
        let from = feeders[rng.below(feeders.len())];
        out.push_str(&format!(
            "    function worker;\n    queue to_worker = stream(url = \"redis://127.0.0.1:6379/{name}_in\");\n    step w0 = map({{ worked: true, n: body.n }}) {{ function = worker; }}\n    step w1 = map(body) {{ function = worker; }}\n    s{from} -> to_worker -> w0 -> w1;\n"
        ));
        if rng.chance(50) {
            out.push_str(&format!(
                "    queue results = stream(url = \"redis://127.0.0.1:6379/{name}_out\");\n    w1 -> results;\n"
            ));
        }
    }
}
