//! What a checked graph means: the rules of docs/language.md that fixtures show only as
//! diagrams, asserted on the IR.

use graphc::ir::{Engine, Graph, NodeKind, Placement, RouterKind, Topology, Type, Vote};

fn checked(text: &str) -> Graph {
    match graphc::check_source(text) {
        Ok(checked) => checked.graph,
        Err(diagnostics) => {
            panic!("{}", graphc::report::render_human("test.graph", text, &diagnostics, graphc::report::Style::PLAIN))
        }
    }
}

fn names(graph: &Graph, ids: &[graphc::ir::NodeId]) -> Vec<String> {
    ids.iter().map(|&id| graph.node(id).name.to_string()).collect()
}

fn node<'g>(graph: &'g Graph, name: &str) -> &'g graphc::ir::Node {
    graph.nodes.iter().find(|n| n.name == name).expect("node exists")
}

#[test]
fn defaults_are_mlruns_router_topology_and_async_engine() {
    let graph =
        checked(r#"graph g { router r = model { route m = model(kind = gaussian_nb, model_path = "m.json"); } }"#);
    assert_eq!(graph.topology, Topology::Router);
    assert_eq!(graph.engine, Engine::Async);
    let NodeKind::Router(router) = &graph.nodes[0].kind else { panic!("a router") };
    assert_eq!(router.url_prefix, "/v2/models");
}

#[test]
fn before_inserts_a_step_between_a_step_and_its_parents() {
    let graph = checked(
        "graph g { topology = flow; engine = sync; step a = map(body); step c = map(body); step b = map(body) { before = c; } a -> c; }",
    );
    assert_eq!(names(&graph, &node(&graph, "c").parents), ["b"]);
    assert_eq!(names(&graph, &node(&graph, "b").parents), ["a"]);
}

#[test]
fn a_catcher_is_not_a_start_step_and_its_before_only_adds_an_edge() {
    let graph = checked(
        "graph g { topology = flow; step a = fn h::a { on_error = c; } step b = map(body) { respond; } step c = fn h::c { before = b; } a -> b; }",
    );
    assert_eq!(names(&graph, &graph.start_nodes()), ["a"]);
    let mut parents = names(&graph, &node(&graph, "b").parents);
    parents.sort();
    assert_eq!(parents, ["a", "c"], "b keeps its parent and gains the catcher");
}

#[test]
fn chains_with_sets_fan_out_and_join() {
    let graph = checked(
        "graph g { topology = flow; step a = map(body); step b = map(body); step c = map(body); step d = map(body) { respond; } a -> [b, c] -> d; }",
    );
    assert_eq!(names(&graph, &node(&graph, "a").children), ["b", "c"]);
    assert_eq!(names(&graph, &node(&graph, "d").parents), ["b", "c"]);
}

#[test]
fn ensemble_weights_are_normalised_in_route_order_with_a_default_of_one() {
    let graph = checked(
        r#"graph g { router r = ensemble { vote = regression; weights = { b: 2 };
            route a = model(kind = linear_regression, model_path = "a.json");
            route b = model(kind = knn_regressor, model_path = "b.json");
            route c = model(kind = linear_regression, model_path = "c.json"); } }"#,
    );
    let NodeKind::Router(router) = &graph.nodes[0].kind else { panic!("a router") };
    let RouterKind::Ensemble { vote, weights, given_weights } = &router.kind else { panic!("an ensemble") };
    assert_eq!(*vote, Vote::Regression);
    assert_eq!(weights, &[0.25, 0.5, 0.25]);
    // The model list shows them as written: only `b`, unnormalised.
    assert_eq!(given_weights, &Some(vec![graphc::ir::RouteWeight { route: "b".into(), weight: 2.0 }]));
}

#[test]
fn types_flow_through_built_in_steps() {
    let graph = checked(
        "graph g { topology = flow; engine = sync; record R { xs: [int], name: str }
         step parse: json -> R = fn h::parse; step xs = flat_map(body.xs); step doubled = map(body * 2); step group = batch(size = 3);
         parse -> xs -> doubled -> group; }",
    );
    assert_eq!(node(&graph, "xs").output, Type::Int);
    assert_eq!(node(&graph, "doubled").output, Type::Int);
    assert_eq!(node(&graph, "group").output, Type::Array(Box::new(Type::Int)));
}

#[test]
fn stream_queues_split_functions_and_star_runs_anywhere() {
    let graph = checked(
        r#"graph g { topology = flow; function w; step a = map(body) { respond; } queue q = stream(url = "redis://h:1/s", shards = 3, key = body.id);
           step b = map(body) { function = w; } step c = map(body) { function = *; } a -> q -> b -> c; }"#,
    );
    assert_eq!(node(&graph, "b").placement, Placement::Child("w".into()));
    assert_eq!(node(&graph, "c").placement, Placement::Any);
    let NodeKind::Queue(queue) = &node(&graph, "q").kind else { panic!("a queue") };
    let graphc::ir::Queue::Stream { url, stream, shards, key } = &**queue else { panic!("a stream") };
    assert_eq!((url.as_str(), stream.as_str(), *shards), ("redis://h:1", "s", 3));
    assert!(matches!(key, Some(graphc::ir::Expr::Field(..))), "{key:?}");
}

#[test]
fn tests_blocks_are_kept_for_graphc_test() {
    let graph = checked(
        r#"graph g { topology = flow; engine = sync; step a = map(body); test t { request GET "/x" { event_id = "e1"; } expect status == 200; } }"#,
    );
    let test = &graph.tests[0];
    assert_eq!((test.method.as_str(), test.path.as_str(), test.event_id.as_deref()), ("GET", "/x", Some("e1")));
    assert_eq!(test.expects.len(), 1);
}

#[test]
fn every_problem_is_reported_not_only_the_first() {
    let errors =
        graphc::check_source("graph g { topology = flow; step a = map(body) { respnd; } step a = map(body); x -> y; }")
            .expect_err("fails");
    let codes: Vec<&str> = errors.iter().filter(|d| d.is_error()).map(|d| d.code.as_str()).collect();
    assert!(codes.contains(&"graphc::unknown_setting"), "{codes:?}");
    assert!(codes.contains(&"graphc::duplicate_name"), "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == "graphc::unknown_step").count(), 2, "{codes:?}");
}

#[test]
fn dsl_strings_are_data_in_diagrams() {
    let graph = checked(
        r#"graph g { topology = flow; engine = sync; description = "a \"quoted\" graph"; step a = map("x\"; rm -rf /"); }"#,
    );
    assert_eq!(graph.description.as_deref(), Some("a \"quoted\" graph"));
    assert!(graphc::render::to_dot(&graph).contains("\"a\" [label=\"a\""));
}

#[test]
fn hostile_nesting_and_length_are_diagnostics_not_crashes() {
    let deep = |open: &str, close: &str, n: usize| {
        format!("graph d {{ topology = flow; engine = sync; step a = map({}1{}); }}", open.repeat(n), close.repeat(n))
    };
    for text in [
        deep("(", ")", 100_000),
        deep("[", "]", 100_000),
        deep("{a: ", "}", 100_000),
        deep("-", "", 100_000),
        deep("len(", ")", 100_000),
        format!("graph d {{ topology = flow; engine = sync; step a = map(1{}); }}", " + 1".repeat(100_000)),
        format!("graph d {{ topology = flow; engine = sync; step a = map(body{}); }}", ".x".repeat(100_000)),
        // Just inside the limits: must be accepted and checked without exhausting a test thread's stack.
        deep("(", ")", graphc::syntax::MAX_NESTING - 3),
        format!("graph d {{ topology = flow; engine = sync; step a = map(1{}); }}", " + 1".repeat(100)),
    ] {
        let outcome = graphc::check_source(&text);
        if let Err(diagnostics) = outcome {
            assert!(diagnostics.iter().all(|d| d.code == graphc::Code::Syntax), "{diagnostics:?}");
            assert!(text.len() > 10_000, "small inputs within the limits are accepted: {diagnostics:?}");
        }
    }
}

fn id(graph: &Graph, name: &str) -> graphc::ir::NodeId {
    graphc::ir::NodeId(graph.nodes.iter().position(|n| n.name == name).expect("node exists") as u32)
}

#[test]
fn one_rule_decides_which_handler_catches_each_node() {
    let graph = checked(
        "graph g { topology = flow; on_error = all; step a = map(body); step b = map(body) { on_error = own; respond; } \
         step own = map(body); step all = map(body); step after_all = map(body); a -> b; all -> after_all; }",
    );
    assert_eq!(node(&graph, "a").catcher, Some(id(&graph, "all")), "the graph's handler");
    assert_eq!(node(&graph, "b").catcher, Some(id(&graph, "own")), "a step's own handler wins");
    assert_eq!(node(&graph, "own").catcher, None, "what runs after a handler is not caught by the graph's");
    assert_eq!(node(&graph, "all").catcher, None, "the graph's handler does not catch itself");
    assert_eq!(node(&graph, "after_all").catcher, None);
    // The diagram draws exactly those edges.
    let dot = graphc::render::to_dot(&graph);
    let dashed: Vec<&str> = dot.lines().filter(|line| line.contains("style=dashed")).collect();
    assert_eq!(dashed, [r#"  "a" -> "all" [style=dashed];"#, r#"  "b" -> "own" [style=dashed];"#], "{dot}");
}

#[test]
fn a_handlers_path_end_answers_in_a_graph_that_answers() {
    let graph = checked(
        "graph g { topology = flow; on_error = all; step a = map(body) { respond; } step all = map(body); \
         step after_all = map(body); all -> after_all; }",
    );
    assert!(node(&graph, "a").answers);
    assert!(!node(&graph, "all").answers, "the handler has a successor");
    assert!(node(&graph, "after_all").answers, "the end of the error path answers");
    assert_eq!(graph.answer, graphc::ir::Answer::Responder);
    // Without a responder, an async flow answers 202 at once and nothing else answers.
    let graph = checked("graph g { topology = flow; on_error = all; step a = map(body); step all = map(body); }");
    assert_eq!(graph.answer, graphc::ir::Answer::Accepted);
    assert!(graph.nodes.iter().all(|n| !n.answers));
}

#[test]
fn the_split_into_functions_is_in_the_ir() {
    let graph = checked(
        r#"graph split { topology = flow; function left; function right;
           step take = map(body);
           queue q = stream(url = "redis://127.0.0.1:6379/q");
           step l = map(body) { function = left; }
           step r = map(body) { function = right; }
           queue out = stream(url = "redis://127.0.0.1:6379/out");
           take -> q -> [l, r]; l -> out; }"#,
    );
    let functions: Vec<(&str, Vec<String>, Option<String>)> = graph
        .functions
        .iter()
        .map(|f| (f.name.as_str(), names(&graph, &f.entries), f.reads.map(|q| graph.node(q).name.to_string())))
        .collect();
    assert_eq!(
        functions,
        [
            ("split", vec!["take".to_string()], None),
            ("left", vec!["l".to_string()], Some("q".to_string())),
            ("right", vec!["r".to_string()], Some("q".to_string())),
        ],
        "each function reading the stream enters at its own steps"
    );
    assert!(graph.is_distributed());
    use graphc::ir::Answer;
    assert_eq!(graph.functions.iter().map(|f| f.answer).collect::<Vec<_>>(), [Answer::WhenDone; 3]);
}
