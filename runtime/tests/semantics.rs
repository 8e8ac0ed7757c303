//! One test per rule of the graph semantics (docs/language.md and the design's semantics page),
//! on pipelines composed by hand, driven through the mock server as HTTP would drive them.

use graphc_runtime::router::{Mode, Route, Router};
use graphc_runtime::*;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn ctx() -> Context {
    Context::new("test")
}

fn inc(field: &'static str) -> Body<impl Fn(Value) -> Value + Send + Sync + 'static> {
    Body(move |mut body: Value| {
        body[field] = json!(body[field].as_i64().unwrap_or(0) + 1);
        body
    })
}

fn sync_server<N: SyncNode>(root: N) -> MockServer<SyncPipeline<N>> {
    MockServer::new(SyncPipeline::new(root, ctx()))
}

fn async_server<N: Node>(root: N, responds: bool) -> MockServer<Arc<AsyncPipeline<N>>> {
    MockServer::new(AsyncPipeline::new(root, ctx(), responds))
}

/// Records every body that reaches it.
#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<Value>>>);

impl Sink {
    fn bodies(&self) -> Vec<Value> {
        self.0.lock().unwrap().clone()
    }
}

impl Step for Sink {
    fn process(&self, event: &mut Event, _: &Context) -> Result<Flow, StepError> {
        self.0.lock().unwrap().push(event.body.clone());
        Ok(Flow::Next)
    }
}

fn fail_with(message: &'static str) -> Body<impl Fn(Value) -> Result<Value, StepError> + Send + Sync + 'static> {
    Body(move |_: Value| Err(StepError::new(message)))
}

// ---- 1. Event ----

#[test]
fn event_id_comes_from_x_event_id_else_fresh_32_hex() {
    let server = sync_server(StepNode::new(
        "echo",
        FullEvent(|e: &mut Event, _: &Context| e.body = json!(e.id.to_string())),
        End,
    ));
    let given = server.request("POST", "/").event_id("abc-1").json(&json!({})).send();
    assert_eq!(given.json_body(), json!("abc-1"));
    assert_eq!(given.header("x-event-id").as_deref(), Some("abc-1"));
    let fresh = server.test("/", json!({})).json_body();
    let fresh = fresh.as_str().unwrap();
    assert_eq!(fresh.len(), 32);
    assert!(fresh.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
    assert_ne!(server.test("/", json!({})).json_body(), json!(fresh), "ids are fresh per event");
}

#[test]
fn event_path_is_the_request_path_unless_x_event_path_overrides_it() {
    let server = sync_server(StepNode::new(
        "path",
        FullEvent(|e: &mut Event, _: &Context| e.body = json!(e.path.to_string())),
        End,
    ));
    assert_eq!(server.test("/a/b", json!(null)).json_body(), json!("/a/b"));
    assert_eq!(
        server.request("POST", "/a").header("x-event-path", "/elsewhere").send().json_body(),
        json!("/elsewhere")
    );
}

#[test]
fn event_time_is_arrival_and_key_is_empty_until_set() {
    let before = std::time::SystemTime::now();
    let server = sync_server(StepNode::new(
        "fields",
        FullEvent(move |e: &mut Event, _: &Context| e.body = json!({ "key": e.key, "fresh": e.time >= before })),
        End,
    ));
    assert_eq!(server.test("/", json!({})).json_body(), json!({ "key": "", "fresh": true }));
}

/// A step that answers whether the event's time is its arrival: after `before`, not later than now.
fn arrival_check(before: std::time::SystemTime) -> FullEvent<impl Fn(&mut Event, &Context) + Send + Sync + 'static> {
    FullEvent(move |e: &mut Event, _: &Context| {
        e.body = json!({ "arrival": e.time >= before && e.time <= std::time::SystemTime::now() })
    })
}

#[test]
fn event_time_is_arrival_wherever_the_step_that_reads_it_is() {
    let before = std::time::SystemTime::now();
    // After a body step, and on an error handler's path: either executor.
    let after_a_body_step =
        || StepNode::new("a", inc("n"), StepNode::new("time", arrival_check(before), End).responding());
    assert_eq!(sync_server(after_a_body_step()).test("/", json!({})).json_body(), json!({ "arrival": true }));
    assert_eq!(async_server(after_a_body_step(), true).test("/", json!({})).json_body(), json!({ "arrival": true }));
    let handled = || {
        let handler = CatchWith(Arc::new(StepNode::new("time", arrival_check(before), End).responding()));
        StepNode::new("fails", fail_with("no"), End).catching(handler)
    };
    assert_eq!(sync_server(handled()).test("/", json!({})).json_body(), json!({ "arrival": true }));
    assert_eq!(async_server(handled(), true).test("/", json!({})).json_body(), json!({ "arrival": true }));
}

/// Makes two new events of its own from each event, as a user's step may.
struct Split;

impl Step for Split {
    fn process(&self, _event: &mut Event, _context: &Context) -> Result<Flow, StepError> {
        Ok(Flow::Many(vec![Event::new(json!(1)), Event::new(json!(2))]))
    }
}

#[test]
fn events_a_step_makes_arrived_when_the_event_they_came_from_did() {
    let before = std::time::SystemTime::now();
    let graph = || StepNode::new("split", Split, StepNode::new("time", arrival_check(before), End).responding());
    assert_eq!(sync_server(graph()).test("/", json!({})).json_body(), json!({ "arrival": true }));
    assert_eq!(async_server(graph(), true).test("/", json!({})).json_body(), json!({ "arrival": true }));
}

#[test]
fn a_time_set_before_the_pipeline_is_kept() {
    let set = std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let step = || {
        FullEvent(|e: &mut Event, _: &Context| {
            e.body = json!(e.time.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs())
        })
    };
    let mut event = Event::new(json!({}));
    event.time = set;
    assert_eq!(
        SyncPipeline::new(StepNode::new("t", step(), End), ctx()).process(event.clone()).json_body(),
        json!(1_700_000_000)
    );
    let pipeline = AsyncPipeline::new(StepNode::new("t", step(), End).responding(), ctx(), true);
    let answer = tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(pipeline.process(event));
    assert_eq!(answer.json_body(), json!(1_700_000_000));
}

#[test]
fn a_graph_reads_the_clock_only_when_a_step_can_read_the_time() {
    let body_only = StepNode::new("a", inc("n"), Fork(StepNode::new("b", inc("n"), End), Shared(Arc::new(End))));
    assert!(!Node::reads_time(&body_only));
    let models = Router::new("r", "", vec![("echo".into(), echo_route("e"))], Mode::Model);
    assert!(!SyncNode::reads_time(&StepNode::new("r", models, End)));
    // A full-event step anywhere, an expression step (it may name `event.time`), an error
    // handler's path, or a router whose routes or chooser get the event.
    let full = StepNode::new("a", inc("n"), StepNode::new("t", arrival_check(std::time::SystemTime::now()), End));
    assert!(SyncNode::reads_time(&full));
    assert!(SyncNode::reads_time(&StepNode::new("m", MapStep(|e: &Event, _: &Context| Ok(e.body.clone())), End)));
    let handler = CatchWith(Arc::new(StepNode::new("t", arrival_check(std::time::SystemTime::now()), End)));
    assert!(SyncNode::reads_time(&StepNode::new("a", inc("n"), End).catching(handler)));
    let step_route = Route::Step(Arc::new(arrival_check(std::time::SystemTime::now())));
    let router = Router::new("r", "", vec![("t".into(), step_route)], Mode::Model);
    assert!(SyncNode::reads_time(&StepNode::new("r", router, End)));
    assert!(SyncNode::reads_time(&BoxedSync::new(full)));
}

// ---- 2. Steps ----

#[test]
fn a_body_step_receives_the_body_and_returns_the_new_body() {
    let server = sync_server(StepNode::new("a", inc("n"), End));
    assert_eq!(server.test("/", json!({ "n": 41 })).json_body(), json!({ "n": 42 }));
}

#[test]
fn a_full_event_step_receives_and_returns_the_whole_event() {
    let step = FullEvent(|e: &mut Event, _: &Context| {
        e.key = "k1".into();
        e.body = json!({ "method": e.method.to_string(), "key": e.key.clone() });
    });
    let server = sync_server(StepNode::new("full", step, End));
    assert_eq!(server.request("PUT", "/").send().json_body(), json!({ "method": "PUT", "key": "k1" }));
}

#[test]
fn input_path_gives_the_value_there_and_null_when_missing() {
    let seen = Sink::default();
    let step = WithPaths::new("s", seen.clone(), Some("req.body"), Some("resp"));
    let server = sync_server(StepNode::new("s", step, End));
    let answer = server.test("/", json!({ "req": { "body": "x" } })).json_body();
    assert_eq!(answer, json!({ "req": { "body": "x" }, "resp": "x" }), "the seed's example");
    server.test("/", json!({ "other": 1 }));
    assert_eq!(seen.bodies(), vec![json!("x"), Value::Null]);
}

#[test]
fn result_path_creates_objects_on_the_way() {
    let step = WithPaths::new("s", Body(|_: Value| json!(7)), None, Some("a.b.c"));
    let server = sync_server(StepNode::new("s", step, End));
    assert_eq!(
        server.test("/", json!({ "keep": true })).json_body(),
        json!({ "keep": true, "a": { "b": { "c": 7 } } })
    );
}

#[test]
fn result_path_on_a_non_object_body_fails_naming_the_step_and_path() {
    let step = WithPaths::new("scorer", Body(|_: Value| json!(7)), None, Some("score"));
    let server = sync_server(StepNode::new("scorer", step, End));
    let response = server.test("/", json!([1, 2]));
    assert_eq!(response.status, 500);
    let error = response.json_body()["error"].as_str().unwrap().to_string();
    assert!(error.contains("scorer") && error.contains("score"), "{error}");
}

#[test]
fn extend_merges_an_object_into_the_body() {
    let step = Extend(|_: &Event, _: &Context| Ok(json!({ "tag": "something" })));
    let server = sync_server(StepNode::new("enrich", step, End));
    assert_eq!(server.test("/", json!({ "x": 3 })).json_body(), json!({ "x": 3, "tag": "something" }));
}

#[test]
fn map_replaces_the_body_and_filter_drops_events() {
    let map = MapStep(|e: &Event, _: &Context| Ok(json!(e.body.as_i64().unwrap_or(0) * 10)));
    let filter = Filter(|e: &Event, _: &Context| Ok(e.body.as_i64().unwrap_or(0) > 0));
    let server = sync_server(StepNode::new("keep", filter, StepNode::new("times10", map, End)));
    assert_eq!(server.test("/", json!(4)).json_body(), json!(40));
    assert_eq!(server.test("/", json!(-4)).status, 204, "a dropped event answers 204");
}

#[test]
fn flat_map_makes_one_event_per_element_and_the_first_answers() {
    let sink = Sink::default();
    let step = FlatMap(|e: &Event, _: &Context| Ok(e.body["items"].clone()));
    let server =
        async_server(StepNode::new("explode", step, StepNode::new("sink", sink.clone(), End)).responding(), true);
    assert_eq!(server.test("/", json!({ "items": [1, 10, 100] })).json_body(), json!(1));
    server.wait_for_completion();
    assert_eq!(sink.bodies(), vec![json!(1), json!(10), json!(100)]);
}

#[test]
fn choice_routes_to_the_first_matching_outlet_and_drops_otherwise() {
    let choice = Choice(|e: &Event, _: &Context| {
        Ok(match e.body.as_i64() {
            Some(n) if n % 2 == 0 => Some(0),
            Some(_) => Some(1),
            None => None,
        })
    });
    let even = StepNode::new("even", Body(|b: Value| json!({ "even": b })), End);
    let odd = StepNode::new("odd", Body(|b: Value| json!({ "odd": b })), End);
    let server = sync_server(StepNode::new("choose", choice, Outlets(even, odd)));
    assert_eq!(server.test("/", json!(2)).json_body(), json!({ "even": 2 }));
    assert_eq!(server.test("/", json!(3)).json_body(), json!({ "odd": 3 }));
    assert_eq!(server.test("/", json!("x")).status, 204);
}

#[test]
fn batch_groups_bodies_and_flushes_a_partial_batch() {
    let batch = Arc::new(Batch::new(3, None));
    let sink = Sink::default();
    struct Shared(Arc<Batch>);
    impl Step for Shared {
        fn process(&self, e: &mut Event, c: &Context) -> Result<Flow, StepError> {
            self.0.process(e, c)
        }
    }
    let server =
        sync_server(StepNode::new("batch", Shared(Arc::clone(&batch)), StepNode::new("sink", sink.clone(), End)));
    for n in 0..7 {
        server.test("/", json!(n));
    }
    assert_eq!(sink.bodies(), vec![json!([0, 1, 2]), json!([3, 4, 5])]);
    assert_eq!(batch.flush().map(|e| e.body), Some(json!([6])));
}

// ---- 3. Topologies and engines ----

#[test]
fn fan_out_gives_each_branch_its_own_copy() {
    let left = Sink::default();
    let right = Sink::default();
    let mutate = Body(|mut b: Value| {
        b["touched"] = json!(true);
        b
    });
    let branches = Fork(
        StepNode::new("left", mutate, StepNode::new("l", left.clone(), End)),
        StepNode::new("right", right.clone(), End),
    );
    let server = async_server(StepNode::new("split", inc("n"), branches), false);
    server.test("/", json!({ "n": 0 }));
    server.wait_for_completion();
    assert_eq!(left.bodies(), vec![json!({ "n": 1, "touched": true })]);
    assert_eq!(right.bodies(), vec![json!({ "n": 1 })], "the left branch's change is not seen on the right");
}

#[test]
fn a_step_with_several_parents_runs_once_per_arriving_event() {
    let join = Sink::default();
    let shared = Shared(Arc::new(StepNode::new("join", join.clone(), End)));
    let graph = StepNode::new(
        "s1",
        inc("n"),
        Fork(StepNode::new("a", inc("a"), shared.clone()), StepNode::new("b", inc("b"), shared)),
    );
    let server = async_server(graph, false);
    server.test("/", json!({ "n": 0 }));
    server.wait_for_completion();
    let mut bodies = join.bodies();
    bodies.sort_by_key(|b| b.to_string());
    assert_eq!(bodies, vec![json!({ "n": 1, "a": 1 }), json!({ "n": 1, "b": 1 })]);
}

#[test]
fn the_sync_engine_answers_with_the_last_step_unless_a_responder_is_marked() {
    let chain = StepNode::new("s1", inc("n"), StepNode::new("s2", inc("n"), End));
    assert_eq!(sync_server(chain).test("/", json!({ "n": 0 })).json_body(), json!({ "n": 2 }));
    let marked = StepNode::new("s1", inc("n"), StepNode::new("s2", inc("n"), End)).responding();
    assert_eq!(sync_server(marked).test("/", json!({ "n": 0 })).json_body(), json!({ "n": 1 }));
}

#[test]
fn the_caller_gets_the_responders_output_before_later_steps_finish() {
    let finished = Arc::new(AtomicUsize::new(0));
    let done = Arc::clone(&finished);
    struct Slow(Arc<AtomicUsize>);
    impl Node for Slow {
        async fn push(&self, _event: &mut Event, _run: &run::Run) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let server = async_server(StepNode::new("respond", inc("n"), Slow(done)).responding(), true);
    let response = server.test("/", json!({ "n": 1 }));
    assert_eq!(response.json_body(), json!({ "n": 2 }));
    assert_eq!(finished.load(Ordering::SeqCst), 0, "answered before the slow step finished");
    server.wait_for_completion();
    assert_eq!(finished.load(Ordering::SeqCst), 1, "the slow step still ran");
}

#[test]
fn with_no_responder_the_caller_gets_202_with_the_id_and_the_event_goes_on() {
    let sink = Sink::default();
    let server = async_server(StepNode::new("a", inc("n"), StepNode::new("sink", sink.clone(), End)), false);
    let response = server.request("POST", "/").event_id("e-202").json(&json!({ "n": 0 })).send();
    assert_eq!(response.status, 202);
    assert_eq!(response.json_body(), json!({ "id": "e-202" }));
    server.wait_for_completion();
    assert_eq!(sink.bodies(), vec![json!({ "n": 1 })]);
    // An id the caller chose is written as JSON text, escapes and all; a fresh one as 32 hex digits.
    let odd = r#"q"\x"#;
    let response = server.request("POST", "/").event_id(odd).json(&json!({ "n": 0 })).send();
    assert_eq!(response.json_body(), json!({ "id": odd }));
    let fresh = server.test("/", json!({ "n": 0 }));
    assert_eq!(fresh.json_body()["id"].as_str().map(str::len), Some(32));
    assert_eq!(fresh.json_body()["id"].as_str(), fresh.header("x-event-id").as_deref());
}

#[test]
fn an_event_dropped_before_the_responder_answers_204_and_never_hangs() {
    let never = Filter(|_: &Event, _: &Context| Ok(false));
    let graph = StepNode::new("drop", never, StepNode::new("answer", inc("n"), End).responding());
    let response = async_server(graph, true).test("/", json!({ "n": 0 }));
    assert_eq!(response.status, 204);
    assert!(response.body.is_empty());
}

// ---- 4. Errors ----

#[test]
fn a_failure_stops_the_events_path_through_the_failed_step() {
    let after = Sink::default();
    let graph = StepNode::new("bad", fail_with("boom"), StepNode::new("after", after.clone(), End));
    let response = sync_server(graph).test("/", json!({}));
    assert_eq!(response.status, 500);
    assert!(after.bodies().is_empty());
}

#[test]
fn an_unhandled_failure_answers_500_with_error_id_and_step() {
    let response = sync_server(StepNode::new("bad", fail_with("boom"), End))
        .request("POST", "/")
        .event_id("e1")
        .json(&json!({}))
        .send();
    assert_eq!(response.status, 500);
    // The cause (`boom`) goes to the log; the caller gets the id and the step.
    assert_eq!(
        response.json_body(),
        json!({ "error": "step `bad` failed; the cause is logged under this id", "id": "e1", "step": "bad" })
    );
    let response = async_server(StepNode::new("bad", fail_with("boom"), End).responding(), true).test("/", json!({}));
    assert_eq!((response.status, response.json_body()["step"].clone()), (500, json!("bad")));
}

#[test]
fn the_catcher_gets_the_event_as_it_entered_with_origin_state_and_error() {
    let catcher = StepNode::new(
        "catcher",
        FullEvent(|e: &mut Event, _: &Context| {
            e.body = json!({ "caught": true, "origin_state": e.origin_state.clone(), "error": e.error.as_ref().map(|x| x.message.clone()), "body": e.body.clone() });
        }),
        End,
    )
    .responding();
    let catch = CatchWith(Arc::new(catcher));
    let graph = StepNode::new("s1", inc("n"), StepNode::new("bad", fail_with("boom!"), End).catching(catch));
    let answer = async_server(graph, true).test("/", json!({ "n": 1 })).json_body();
    assert_eq!(answer, json!({ "caught": true, "origin_state": "bad", "error": "boom!", "body": { "n": 2 } }));
}

#[test]
fn a_step_level_catcher_wins_over_the_graph_level_one() {
    let graph_catcher =
        CatchWith(Arc::new(StepNode::new("graph_catcher", Body(|_: Value| json!("graph")), End).responding()));
    let step_catcher =
        CatchWith(Arc::new(StepNode::new("step_catcher", Body(|_: Value| json!("step")), End).responding()));
    // Generated code gives each step its own handler if it names one, else the graph's.
    let graph = StepNode::new("a", inc("n"), StepNode::new("bad", fail_with("x"), End).catching(step_catcher))
        .catching(graph_catcher.clone());
    assert_eq!(async_server(graph, true).test("/", json!({})).json_body(), json!("step"));
    let graph = StepNode::new("bad", fail_with("x"), End).catching(graph_catcher);
    assert_eq!(async_server(graph, true).test("/", json!({})).json_body(), json!("graph"));
}

#[test]
fn the_catchers_output_flows_to_its_successors() {
    let after = StepNode::new("after", Body(|b: Value| json!({ "after_catcher": b })), End).responding();
    let catcher = CatchWith(Arc::new(StepNode::new("catcher", Body(|_: Value| json!("recovered")), after)));
    let graph = StepNode::new("bad", fail_with("x"), End).catching(catcher);
    assert_eq!(sync_server(graph).test("/", json!({})).json_body(), json!({ "after_catcher": "recovered" }));
}

#[test]
fn a_catcher_that_fails_is_an_unhandled_failure() {
    let catcher = CatchWith(Arc::new(StepNode::new("catcher", fail_with("catcher broke"), End)));
    let graph = StepNode::new("bad", fail_with("x"), End).catching(catcher);
    let response = async_server(graph, true).test("/", json!({}));
    assert_eq!(response.status, 500);
    assert_eq!(response.json_body()["step"], "catcher");
}

#[test]
fn a_panicking_step_is_a_500_and_the_server_keeps_serving() {
    let step = Body(|b: Value| {
        if b == json!("panic") {
            panic!("the step fell over");
        }
        b
    });
    let server = async_server(StepNode::new("fragile", step, End).responding(), true);
    let response = server.test("/", json!("panic"));
    assert_eq!(response.status, 500);
    assert!(
        !response.json_body()["error"].as_str().unwrap().contains("the step fell over"),
        "the panic's text is logged, not sent"
    );
    assert_eq!(server.test("/", json!("fine")).json_body(), json!("fine"));
}

#[test]
fn an_explicit_response_is_sent_as_is() {
    let step = Body(|_: Value| Response::new(201, "text/plain", "made").with_header("location", "/things/1"));
    let response = sync_server(StepNode::new("create", step, End)).test("/", json!({}));
    assert_eq!(
        (response.status, response.content_type.as_ref(), response.body.as_slice()),
        (201, "text/plain", b"made".as_slice())
    );
    assert_eq!(response.header("location").as_deref(), Some("/things/1"));
}

#[test]
fn every_failure_handled_or_not_is_recorded_in_the_error_stream() {
    let stream = Arc::new(MemoryErrorStream::new());
    let catcher = CatchWith(Arc::new(StepNode::new("catcher", Body(|_: Value| json!("ok")), End).responding()));
    let handled = StepNode::new("handled", fail_with("first"), End).catching(catcher);
    let context = ctx().with_error_stream(stream.clone()).with_function("fn1");
    let server = MockServer::new(SyncPipeline::new(handled, context));
    server.request("POST", "/").event_id("e1").json(&json!({ "n": 1 })).send();
    let unhandled = MockServer::new(SyncPipeline::new(
        StepNode::new("unhandled", fail_with("second"), End),
        ctx().with_error_stream(stream.clone()),
    ));
    unhandled.test("/", json!(2));
    let records: Vec<Value> = stream.records().iter().map(ErrorRecord::to_json).collect();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["function"], "fn1");
    assert_eq!(records[0]["source"], "handled");
    assert_eq!(records[0]["event"], json!({ "id": "e1", "body": { "n": 1 } }));
    assert_eq!(records[0]["message"], "first");
    assert!(records[0]["time"].as_f64().unwrap() > 1.6e9);
    assert_eq!((records[1]["source"].clone(), records[1]["message"].clone()), (json!("unhandled"), json!("second")));
}

#[test]
fn malformed_json_and_unsupported_content_types_answer_400() {
    let server = sync_server(StepNode::new("echo", Body(|b: Value| b), End));
    let malformed = server.request("POST", "/").header("content-type", "application/json").body("{\"a\": ").send();
    assert_eq!(malformed.status, 400);
    assert!(malformed.json_body()["error"].as_str().unwrap().contains("malformed JSON"));
    assert_eq!(server.request("POST", "/").header("content-type", "application/xml").body("<a/>").send().status, 400);
    assert_eq!(
        server.request("POST", "/").header("content-type", "text/plain").body("hi").send().json_body(),
        json!("hi")
    );
}

// ---- 5. Routers and models ----

fn echo_route(tag: &'static str) -> Route {
    Route::Step(Arc::new(Body(move |b: Value| json!({ "route": tag, "body": b }))))
}

fn router_server(router: Router) -> MockServer<SyncPipeline<StepNode<Router, End>>> {
    sync_server(StepNode::new("router", router, End).responding())
}

#[test]
fn model_router_paths_list_route_and_answer_health() {
    let router = Router::new(
        "router",
        "/v2/models",
        vec![("a".into(), echo_route("a")), ("b".into(), echo_route("b"))],
        Mode::Model,
    );
    let server = router_server(router);
    assert_eq!(server.request("GET", "/v2/models").send().json_body(), json!({ "models": ["a", "b"] }));
    assert_eq!(server.test("/v2/models/b/infer", json!(1)).json_body()["route"], "b");
    assert_eq!(server.test("/v2/models/b", json!(1)).json_body()["route"], "b", "op defaults to infer");
    // A route without versions has none to pick: asking for one is 404, not an echo.
    assert_eq!(server.test("/v2/models/b/versions/3/predict", json!(1)).status, 404);
    assert_eq!(server.test("/", json!(1)).json_body()["route"], "a", "/ goes to the first route");
    assert_eq!(server.test("/", json!({ "model": "b" })).json_body()["route"], "b", "the body's `model` key picks");
    assert_eq!(server.request("GET", "/v2/models/a/ready").send().json_body(), json!({ "name": "a", "ready": true }));
    assert_eq!(server.request("GET", "/v2/models/a").send().json_body()["name"], "a");
    assert_eq!(server.request("GET", "/v2/health/live").send().json_body(), json!({ "live": true }));
    assert_eq!(server.request("GET", "/v2/health/ready").send().json_body(), json!({ "ready": true }));
    // The server's metadata names the graph: the server it is.
    assert_eq!(server.request("GET", "/v2").send().json_body()["name"], ctx().root);
}

#[test]
fn versions_of_a_model_are_routes_and_unknown_versions_are_404() {
    let router = Router::new(
        "router",
        "/v2/models",
        vec![("m:v1".into(), echo_route("m v1")), ("m:v2".into(), echo_route("m v2")), ("n".into(), echo_route("n"))],
        Mode::Model,
    );
    let server = router_server(router);
    assert_eq!(server.test("/v2/models/m/versions/v1/infer", json!(1)).json_body()["route"], "m v1");
    assert_eq!(server.test("/v2/models/m/versions/v2/infer", json!(1)).json_body()["route"], "m v2");
    assert_eq!(server.test("/v2/models/m/infer", json!(1)).json_body()["route"], "m v2", "the last declared");
    assert_eq!(server.test("/", json!({ "model": "m:v1" })).json_body()["route"], "m v1", "a key given whole");
    let unknown = server.test("/v2/models/m/versions/v9/infer", json!(1));
    assert_eq!(unknown.status, 404);
    assert!(
        unknown.json_body()["error"].as_str().unwrap().contains("its versions: v1, v2"),
        "{:?}",
        unknown.json_body()
    );
    let metadata = server.request("GET", "/v2/models/m/versions/v1").send().json_body();
    assert_eq!(metadata["name"], "m");
    assert_eq!(metadata["versions"], json!(["v1", "v2"]));
    assert_eq!(metadata["version"], "v1", "the version this metadata describes");
    let ready = server.request("GET", "/v2/models/m/versions/v2/ready").send();
    assert_eq!((ready.status, ready.json_body()["name"].clone()), (200, json!("m")));
    assert_eq!(server.request("GET", "/v2/models/m/versions/v3/ready").send().status, 404);
    // A version is not a model: the list names models, and their versions beside them.
    assert_eq!(
        server.request("GET", "/v2/models").send().json_body(),
        json!({ "models": ["m", "n"], "versions": { "m": ["v1", "v2"] } })
    );
}

#[test]
fn model_router_errors_have_their_status_codes() {
    let router = Router::new("router", "/v2/models", vec![("a".into(), echo_route("a"))], Mode::Model);
    let server = router_server(router);
    let unknown = server.test("/v2/models/zzz/infer", json!(1));
    assert_eq!(unknown.status, 404);
    assert!(unknown.json_body()["error"].as_str().unwrap().contains("available models: a"));
    assert_eq!(server.request("GET", "/v2/models/a/infer").send().status, 405);
    assert_eq!(server.test("/v2/models/a/ready", json!(1)).status, 405);
    assert_eq!(server.test("/v2/models/a/unknown_op", json!(1)).status, 404);
    assert_eq!(server.test("/elsewhere", json!(1)).status, 404);
}

/// A model that predicts the sum of each row, or its class (`sum > 10`).
struct SumModel {
    regressor: bool,
    width: usize,
}

impl model::Model for SumModel {
    fn predict(&self, features: model::Features) -> Result<Vec<Value>, StepError> {
        Ok((0..features.rows)
            .map(|r| {
                let sum: f64 = features.row(r).iter().sum();
                if self.regressor { json!(sum) } else { json!(u32::from(sum > 10.0)) }
            })
            .collect())
    }
    fn input_width(&self) -> Option<usize> {
        Some(self.width)
    }
    fn is_regressor(&self) -> bool {
        self.regressor
    }
}

fn sum_router() -> MockServer<SyncPipeline<StepNode<Router, End>>> {
    let model: Arc<dyn model::Model> = Arc::new(SumModel { regressor: false, width: 2 });
    router_server(Router::new("router", "/v2/models", vec![("m".into(), Route::Model(model))], Mode::Model))
}

#[test]
fn a_loose_request_gets_a_loose_answer() {
    let model: Arc<dyn model::Model> = Arc::new(SumModel { regressor: false, width: 2 });
    let versioned = Router::new("router", "/v2/models", vec![("m:v1".into(), Route::Model(model))], Mode::Model);
    let answer = router_server(versioned)
        .request("POST", "/v2/models/m/versions/v1/infer")
        .event_id("e1")
        .json(&json!({ "inputs": [[1, 2], [9, 9]] }))
        .send();
    assert_eq!(answer.json_body(), json!({ "id": "e1", "model_name": "m", "outputs": [0, 1], "model_version": "v1" }));
}

/// A router whose answer only goes to the caller writes it straight to bytes; a step after the
/// router gets it as JSON instead. Both give the caller the same bytes, on both executors, and a
/// run answered at its end (a function that writes to a stream) still answers 202.
#[test]
fn a_routers_answer_is_the_same_whether_it_ends_its_path_or_a_step_follows_it() {
    let router = || {
        let model: Arc<dyn model::Model> = Arc::new(SumModel { regressor: false, width: 2 });
        Router::new("router", "/v2/models", vec![("m:v1".into(), Route::Model(model))], Mode::Model)
    };
    let same = || Body(|body: Value| body);
    let ends = || StepNode::new("router", router(), End).responding();
    let followed = || StepNode::new("router", router(), StepNode::new("same", same(), End)).responding();
    fn send<H: Handler>(server: &MockServer<H>, path: &str, body: &Value) -> Response {
        server.request("POST", path).event_id("e1").json(body).send()
    }
    let (sync_ends, sync_followed) = (sync_server(ends()), sync_server(followed()));
    let (tokio_ends, tokio_followed) = (async_server(ends(), true), async_server(followed(), true));
    let requests = [
        ("/v2/models/m/versions/v1/infer", json!({ "inputs": [[1, 2], [9, 9]] })),
        (
            "/v2/models/m/infer",
            json!({ "id": "req-7", "inputs": [{ "name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 9, 9] }] }),
        ),
        (
            "/v2/models/m/infer",
            json!({ "inputs": [{ "name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2] }], "id": 7 }),
        ),
        ("/v2/models/m/infer", json!({ "inputs": [[1]] })),
        ("/v2/models/m/ready", json!(null)),
    ];
    for (path, body) in &requests {
        let expected = send(&sync_ends, path, body);
        assert_eq!(send(&sync_followed, path, body), expected, "{path} {body}: sync, followed");
        assert_eq!(send(&tokio_ends, path, body), expected, "{path} {body}: tokio, ends");
        assert_eq!(send(&tokio_followed, path, body), expected, "{path} {body}: tokio, followed");
    }
    let versioned = send(&sync_ends, "/v2/models/m/versions/v1/infer", &requests[0].1);
    assert_eq!(
        std::str::from_utf8(&versioned.body).unwrap(),
        r#"{"id":"e1","model_name":"m","model_version":"v1","outputs":[0,1]}"#
    );
    let at_end = MockServer::new(AsyncPipeline::answered_at_end(ends(), ctx()));
    let answer = at_end.request("POST", "/v2/models/m/infer").event_id("e1").json(&requests[0].1).send();
    assert_eq!((answer.status, answer.json_body()), (202, json!({ "id": "e1" })));
}

#[test]
fn an_oip_tensor_request_gets_oip_tensors_back() {
    let request = json!({ "id": "req-7", "inputs": [{ "name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 9, 9] }] });
    let answer = sum_router().test("/v2/models/m/infer", request).json_body();
    assert_eq!(
        answer,
        json!({ "id": "req-7", "model_name": "m", "outputs": [{ "name": "predict", "shape": [2], "datatype": "INT64", "data": [0, 1] }] })
    );
}

#[test]
fn several_input_tensors_are_read_side_by_side_and_bools_as_numbers() {
    let server = sum_router();
    // Row i of the features is row i of `a` then row i of `b`: [1, 2] and [9, 9].
    let split = json!({ "inputs": [
        { "name": "a", "shape": [2, 1], "datatype": "FP32", "data": [1, 9] },
        { "name": "b", "shape": [2, 1], "datatype": "INT64", "data": [[2], [9]] }
    ] });
    let answer = server.test("/v2/models/m/infer", split).json_body();
    assert_eq!(answer["outputs"][0]["data"], json!([0, 1]), "{answer}");
    let flags = json!({ "inputs": [{ "name": "x", "shape": [1, 2], "datatype": "BOOL", "data": [true, false] }] });
    assert_eq!(server.test("/v2/models/m/infer", flags).json_body()["outputs"][0]["data"], json!([0]));
    let uneven = json!({ "inputs": [
        { "name": "a", "shape": [2, 1], "datatype": "FP32", "data": [1, 9] },
        { "name": "b", "shape": [1, 1], "datatype": "FP32", "data": [2] }
    ] });
    let refused = server.test("/v2/models/m/infer", uneven);
    assert_eq!(refused.status, 422);
    assert!(refused.json_body()["error"].as_str().unwrap().contains("rows"), "{:?}", refused.json_body());
    let bytes = json!({ "inputs": [{ "name": "x", "shape": [1, 2], "datatype": "BYTES", "data": ["a", "b"] }] });
    assert_eq!(server.test("/v2/models/m/infer", bytes).status, 422);
}

#[test]
fn requested_outputs_are_honoured_and_unknown_ones_are_a_bad_request() {
    let server = sum_router();
    let inputs = json!([{ "name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2] }]);
    let named = server.test("/v2/models/m/infer", json!({ "inputs": inputs, "outputs": [{ "name": "predict" }] }));
    assert_eq!(named.status, 200);
    assert_eq!(named.json_body()["outputs"][0]["name"], "predict");
    let unknown =
        server.test("/v2/models/m/infer", json!({ "inputs": inputs, "outputs": [{ "name": "probabilities" }] }));
    assert_eq!(unknown.status, 400);
    assert!(unknown.json_body()["error"].as_str().unwrap().contains("`predict`"), "{:?}", unknown.json_body());
    // What infer returns is what the metadata says.
    let metadata = server.request("GET", "/v2/models/m").send().json_body();
    assert_eq!(metadata["outputs"][0]["name"], named.json_body()["outputs"][0]["name"]);
}

#[test]
fn shape_mismatches_and_missing_inputs_answer_422_saying_what_was_expected() {
    let server = sum_router();
    let mismatch = server.test(
        "/v2/models/m/infer",
        json!({ "inputs": [{ "name": "x", "shape": [2, 2], "datatype": "FP32", "data": [1, 2, 3] }] }),
    );
    assert_eq!(mismatch.status, 422);
    assert!(mismatch.json_body()["error"].as_str().unwrap().contains("expects 4 values"));
    let missing = server.test("/v2/models/m/infer", json!({ "rows": [] }));
    assert_eq!(missing.status, 422);
    assert!(missing.json_body()["error"].as_str().unwrap().contains("no `inputs`"));
    let width = server.test("/v2/models/m/infer", json!({ "inputs": [[1, 2, 3]] }));
    assert_eq!(width.status, 422);
    assert!(width.json_body()["error"].as_str().unwrap().contains("2 values"));
    assert_eq!(server.test("/v2/models/m/infer", json!({ "inputs": [["a", 1]] })).status, 422);
    assert_eq!(
        server
            .test(
                "/v2/models/m/infer",
                json!({ "inputs": [{ "name": "x", "shape": [1, 2], "datatype": "BYTES", "data": [1, 2] }] })
            )
            .status,
        422
    );
}

#[test]
fn an_ensemble_votes_by_weighted_majority_with_ties_to_the_smallest_class() {
    let class = |c: u32| Value::from(c);
    let predictions = vec![vec![class(2), class(1)], vec![class(1), class(2)], vec![class(2), class(0)]];
    assert_eq!(router::vote(&predictions, &[1.0 / 3.0; 3], false).unwrap(), vec![json!(2), json!(0)]);
    assert_eq!(router::vote(&predictions, &[0.2, 0.6, 0.2], false).unwrap(), vec![json!(1), json!(2)]);
    assert_eq!(router::vote(&[vec![json!(1.0)], vec![json!(3.0)]], &[0.25, 0.75], true).unwrap(), vec![json!(2.5)]);
}

#[test]
fn an_ensemble_runs_every_route_and_answers_as_the_router() {
    let classes = |answer: u32| -> Arc<dyn model::Model> {
        struct Fixed(u32);
        impl model::Model for Fixed {
            fn predict(&self, f: model::Features) -> Result<Vec<Value>, StepError> {
                Ok(vec![json!(self.0); f.rows])
            }
        }
        Arc::new(Fixed(answer))
    };
    let routes = vec![
        ("a".into(), Route::Model(classes(1))),
        ("b".into(), Route::Model(classes(2))),
        ("c".into(), Route::Model(classes(2))),
    ];
    let server = router_server(
        Router::new("vote", "/v2/models", routes, Mode::Ensemble { regression: false, weights: vec![0.6, 0.2, 0.2] })
            .with_given_weights(&[("a", 3.0), ("b", 1.0), ("c", 1.0)]),
    );
    assert_eq!(server.test("/v2/models/vote/infer", json!({ "inputs": [[0]] })).json_body()["outputs"], json!([1]));
    assert_eq!(
        server.test("/", json!({ "inputs": [[0]] })).json_body()["model_name"],
        "vote",
        "/ goes to the ensemble"
    );
    assert_eq!(
        server.test("/v2/models/b/infer", json!({ "inputs": [[0]] })).json_body()["outputs"],
        json!([2]),
        "a route is still addressable"
    );
    // `/v2/models/infer` is the default model: the ensemble.
    let default = server.test("/v2/models/infer", json!({ "inputs": [[0]] })).json_body();
    assert_eq!((default["model_name"].clone(), default["outputs"].clone()), (json!("vote"), json!([1])));
    // The list shows the routes, then the ensemble, with the weights as the graph gave them (MLRun's).
    assert_eq!(
        server.request("GET", "/v2/models").send().json_body(),
        json!({ "models": ["a", "b", "c", "vote"], "weights": { "a": 3.0, "b": 1.0, "c": 1.0 } })
    );
    // A tensor request of three rows gets one class per row, in a tensor of three.
    let tensor = json!({ "inputs": [{ "name": "x", "shape": [3, 1], "datatype": "FP32", "data": [0, 1, 2] }] });
    let answer = server.test("/v2/models/vote/infer", tensor).json_body();
    assert_eq!(answer["outputs"], json!([{ "name": "predict", "datatype": "INT64", "shape": [3], "data": [1, 1, 1] }]));
    // Its metadata says what infer returns: a class per row, named as infer names it.
    let metadata = server.request("GET", "/v2/models/vote").send().json_body();
    assert_eq!(metadata["outputs"], json!([{ "name": "predict", "datatype": "INT64", "shape": [-1] }]));
}

#[test]
fn metadata_names_the_output_infer_returns_and_a_loose_id_is_echoed() {
    let server = sum_router();
    let metadata = server.request("GET", "/v2/models/m").send().json_body();
    let tensor = server
        .test(
            "/v2/models/m/infer",
            json!({ "inputs": [{ "name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, 2] }] }),
        )
        .json_body();
    assert_eq!(
        metadata["outputs"][0]["name"], tensor["outputs"][0]["name"],
        "a client reads the output metadata names"
    );
    assert_eq!(metadata["outputs"][0]["datatype"], tensor["outputs"][0]["datatype"]);
    assert_eq!(metadata["inputs"][0]["shape"], json!([-1, 2]));
    // MLRun's loose body may carry its own id, and gets it back.
    let loose = server.test("/v2/models/m/infer", json!({ "id": "mine", "inputs": [[1, 2]] })).json_body();
    assert_eq!(loose["id"], "mine");
}

#[test]
fn a_tensor_answer_says_the_datatype_its_data_is_when_the_model_declared_another() {
    // A classifier of labels that keeps the default declaration (INT64): a client decodes by the
    // answer's datatype, so the answer says BYTES.
    struct Labels;
    impl model::Model for Labels {
        fn predict(&self, f: model::Features) -> Result<Vec<Value>, StepError> {
            Ok(vec![json!("stays"); f.rows])
        }
    }
    let server = router_server(Router::new(
        "r",
        "/v2/models",
        vec![("labels".into(), Route::Model(Arc::new(Labels)))],
        Mode::Model,
    ));
    let tensor = json!({ "inputs": [{ "name": "x", "shape": [2, 1], "datatype": "FP32", "data": [0, 1] }] });
    let answer = server.test("/v2/models/labels/infer", tensor).json_body();
    assert_eq!(answer["outputs"][0]["datatype"], "BYTES", "{answer}");
    assert_eq!(answer["outputs"][0]["data"], json!(["stays", "stays"]));
}

#[test]
fn parallel_run_merges_object_outputs() {
    let routes = vec![
        ("x".into(), Route::Step(Arc::new(Body(|_: Value| json!({ "x": 1 }))))),
        ("y".into(), Route::Step(Arc::new(Body(|_: Value| json!({ "y": 2 }))))),
        ("z".into(), Route::Step(Arc::new(Body(|_: Value| json!(3))))),
    ];
    let server = router_server(Router::new("all", "/v2/models", routes.clone(), Mode::Parallel));
    assert_eq!(server.test("/", json!({ "kept": false })).json_body(), json!({ "x": 1, "y": 2, "z": 3 }));
    // With `extend_event`, into the request's body, as MLRun's ParallelRun does.
    let extending = router_server(Router::new("all", "/v2/models", routes, Mode::Parallel).with_extend_event());
    assert_eq!(
        extending.test("/", json!({ "kept": true, "x": 0 })).json_body(),
        json!({ "kept": true, "x": 1, "y": 2, "z": 3 })
    );
}

#[test]
fn health_probes_answer_under_the_routers_health_prefix() {
    let router = Router::new("router", "/v2/models", vec![("a".into(), echo_route("a"))], Mode::Model)
        .with_health_prefix("/health/");
    let server = router_server(router);
    assert_eq!(server.request("GET", "/health/live").send().json_body(), json!({ "live": true }));
    assert_eq!(server.request("GET", "/health/ready").send().json_body(), json!({ "ready": true }));
    assert_eq!(server.request("POST", "/health/ready").send().status, 405);
    // Any other path under the prefix is no probe (MLRun answers 200 there: docs/semantics.md).
    let misspelt = server.request("GET", "/health/lve").send();
    assert_eq!(misspelt.status, 404);
    assert!(misspelt.json_body()["error"].as_str().unwrap().contains("/health/live and /health/ready"));
    assert_eq!(server.request("GET", "/health").send().status, 404);
    assert_eq!(server.request("GET", "/healthy").send().status, 404, "not under the prefix either way");
}

#[test]
fn a_custom_router_chooses_the_route() {
    struct ByHeader;
    impl router::CustomRouter for ByHeader {
        fn select(&self, event: &Event, routes: &[&str]) -> Result<usize, StepError> {
            let wanted = event.header("x-canary").map_or("stable", |_| "canary");
            routes.iter().position(|r| *r == wanted).ok_or_else(|| StepError::not_found("no such route"))
        }
    }
    let routes = vec![("stable".into(), echo_route("stable")), ("canary".into(), echo_route("canary"))];
    let server = router_server(Router::new("split", "/v2/models", routes, Mode::Custom(Arc::new(ByHeader))));
    assert_eq!(server.test("/", json!(1)).json_body()["route"], "stable");
    assert_eq!(
        server.request("POST", "/").header("x-canary", "1").json(&json!(1)).send().json_body()["route"],
        "canary"
    );
}

// ---- 6. Queues ----

#[test]
fn a_full_memory_queue_applies_backpressure_and_never_drops() {
    let sink = Sink::default();
    struct SlowSink(Sink);
    impl Node for SlowSink {
        async fn push(&self, event: &mut Event, _run: &run::Run) {
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.0.0.lock().unwrap().push(event.body.clone());
        }
    }
    let graph = StepNode::new("accept", inc("n"), MemoryQueue::new(2, SlowSink(sink.clone()))).responding();
    let server = async_server(graph, true);
    for n in 0..50 {
        assert_eq!(server.test("/", json!({ "n": n })).status, 200);
    }
    server.wait_for_completion();
    let bodies = sink.bodies();
    assert_eq!(bodies.len(), 50, "nothing dropped");
    assert_eq!(
        bodies.iter().map(|b| b["n"].as_i64().unwrap()).collect::<Vec<_>>(),
        (1..=50).collect::<Vec<_>>(),
        "in order"
    );
}

// ---- 7. Context ----

#[test]
fn context_params_are_typed() {
    let context = ctx().with_param("x", json!(5)).with_param("name", json!("n"));
    assert_eq!(context.get_param::<i64>("x"), Some(5));
    assert_eq!(context.get_param::<String>("x"), None);
    assert_eq!(context.get_param_or::<f64>("missing", 1.5), 1.5);
}

#[test]
fn context_secrets_come_from_the_environment_or_a_file_and_only_if_declared() {
    let dir = std::env::temp_dir().join(format!("graphc-secrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("secrets");
    std::fs::write(&file, "# comment\nFROM_FILE = s3cret\n").unwrap();
    // SAFETY: this test alone sets this variable, before any thread reads it.
    unsafe { std::env::set_var("GRAPHC_TEST_SECRET_ENV", "from-env") };
    let context =
        ctx().with_secrets_file(&file).unwrap().with_allowed_secrets(&["FROM_FILE", "GRAPHC_TEST_SECRET_ENV"]);
    assert_eq!(context.get_secret("FROM_FILE").as_deref(), Some("s3cret"));
    assert_eq!(context.get_secret("GRAPHC_TEST_SECRET_ENV").as_deref(), Some("from-env"));
    assert_eq!(context.get_secret("PATH"), None, "undeclared secrets are refused");
    assert!(!format!("{context:?}").contains("s3cret"), "never shown");
}

#[test]
fn context_store_resources_and_remote_endpoints() {
    let dir = std::env::temp_dir().join(format!("graphc-store-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("models")).unwrap();
    std::fs::write(dir.join("models/a.txt"), "artifact").unwrap();
    let context = ctx().with_store_dir(&dir).with_endpoint("scorer", "http://10.0.0.9:8080");
    assert_eq!(context.get_store_resource("store://models/a.txt").unwrap(), b"artifact");
    assert_eq!(context.get_store_resource("models/missing.txt").unwrap_err().status(), 404);
    assert_eq!(context.get_store_resource("../etc/passwd").unwrap_err().status(), 400);
    assert_eq!(context.get_remote_endpoint("scorer"), Some("http://10.0.0.9:8080"));
    assert_eq!(context.get_remote_endpoint("other"), None);
}

// ---- 8. Mock server ----

#[test]
fn the_mock_server_answers_exactly_as_http_would() {
    let server = async_server(StepNode::new("a", inc("n"), End).responding(), true);
    let response = server.request("POST", "/x").event_id("mock-1").json(&json!({ "n": 1 })).send();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type").as_deref(), Some("application/json"));
    assert_eq!(response.header("x-event-id").as_deref(), Some("mock-1"));
    assert_eq!(response.body, br#"{"n":2}"#);
}

#[test]
fn an_event_id_reads_the_same_as_text_and_displayed() {
    for id in [EventId::fresh(), EventId::Given("order-7".to_string())] {
        assert_eq!(id.text(), id.to_string());
    }
    let fresh = EventId::fresh().text();
    assert!(fresh.len() == 32 && fresh.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()), "{fresh}");
}

/// The handler gets the event as it entered the failed step, whatever the step took or changed
/// before failing, and whether it returned an error or panicked: each kind of step keeps only
/// what it may change (nothing for built-ins, the body for body functions, the whole event for
/// full-event functions).
#[test]
fn a_handler_gets_the_event_as_it_entered_whatever_the_step_did() {
    fn caught<S: Step>(step: S) -> Value {
        // The handler answers what it was given: the body, the key and the failed step.
        let catcher = StepNode::new(
            "catcher",
            FullEvent(|event: &mut Event, _: &Context| {
                event.body = json!({ "body": event.body.clone(), "key": event.key.clone(), "failed": event.origin_state.clone() });
            }),
            End,
        )
        .responding();
        let graph = StepNode::new("bad", step, End).catching(CatchWith(Arc::new(catcher)));
        let server = sync_server(graph);
        server.request("POST", "/").header("x-event-key", "k1").json(&json!({ "n": 1 })).send().json_body()
    }
    let expected = json!({ "body": { "n": 1 }, "key": "k1", "failed": "bad" });
    // A body function that fails, and one that panics, after taking the body.
    assert_eq!(caught(Body(|_: Value| -> Result<Value, StepError> { Err(StepError::new("no")) })), expected);
    assert_eq!(caught(Body(|_: Value| -> Value { panic!("a bug") })), expected);
    // The same inside input and result paths.
    let pathed = WithPaths::new("bad", Body(|_: Value| -> Value { panic!("a bug") }), Some("n"), Some("out"));
    assert_eq!(caught(pathed), expected);
    // A built-in whose expression fails leaves the event as it was.
    assert_eq!(caught(MapStep(|_: &Event, _: &Context| Err(StepError::new("no")))), expected);
    // A full-event function that changes the key and the body, then fails.
    let full = FullEvent(|event: &mut Event, _: &Context| -> Result<(), StepError> {
        event.key = "changed".into();
        event.body = json!("changed");
        Err(StepError::new("no"))
    });
    assert_eq!(caught(full), expected);
    // A typed function reads its input in place: it fails, or panics, with the body untouched.
    #[derive(serde::Deserialize, serde::Serialize)]
    struct Input {
        n: i64,
    }
    let typed_error = Typed::new(|_: Input, _: &Context| -> Result<Input, StepError> { Err(StepError::new("no")) });
    assert_eq!(caught(typed_error), expected);
    let typed_panic = Typed::new(|_: Input, _: &Context| -> Result<Input, StepError> { panic!("a bug") });
    assert_eq!(caught(typed_panic), expected);
}

#[test]
fn a_handler_gets_any_body_back_exactly_whatever_its_depth() {
    // The entry of a body function is kept as JSON text and read back only on failure: floats,
    // big integers, unicode, escapes and a nesting far deeper than a request may bring.
    let mut deep = json!("bottom");
    // Past serde_json's limit of 128 levels, which a parsed request never exceeds.
    for level in 0..300 {
        deep = json!({ "level": level, "inner": deep });
    }
    let body = json!({
        "float": 0.1, "tiny": 5e-324, "big": u64::MAX, "negative": i64::MIN, "text": "é\"\n\u{1F600}",
        "deep": deep, "list": [1, 2.5, null, true, {}], "empty": ""
    });
    let given = body.clone();
    let failing = Body(move |_: Value| -> Value { panic!("a bug") });
    // The step before builds the body, so the catcher's copy is of what a step made, not of a
    // parsed request (which serde_json would refuse past 128 levels).
    let graph = StepNode::new(
        "make",
        Body(move |_: Value| given.clone()),
        StepNode::new("bad", failing, End)
            .catching(CatchWith(Arc::new(StepNode::new("catcher", Body(|body: Value| body), End).responding()))),
    );
    let answer = SyncPipeline::new(graph, ctx()).process(Event::new(Value::Null));
    let mut reader = serde_json::Deserializer::from_slice(&answer.body);
    reader.disable_recursion_limit();
    let answered: Value = serde::Deserialize::deserialize(&mut reader).expect("JSON");
    assert!(answered == body, "the handler got another body");
}

#[test]
fn graphs_of_steps_run_in_place_on_tokio_and_graphs_that_wait_do_not() {
    type Steps = StepNode<Body<fn(Value) -> Value>, StepNode<Body<fn(Value) -> Value>, End>>;
    const { assert!(!<Steps as Node>::WAITS) };
    const { assert!(!<Outlets<Steps, Shared<Steps>> as Node>::WAITS) };
    const { assert!(<StepNode<Body<fn(Value) -> Value>, MemoryQueue<End>> as Node>::WAITS) };
    const { assert!(<Outlets<Steps, Boxed> as Node>::WAITS) };
}

/// What a server moves and boxes for each request is the event, not the graph's nested node
/// futures: an event's processing holds the event until it is first polled, then only what a
/// graph that waits needs.
#[test]
fn an_events_processing_future_holds_the_event_and_not_the_graph() {
    let deep = || {
        let leaf = StepNode::new("c", inc("n"), End).responding();
        StepNode::new("a", inc("n"), Fork(StepNode::new("b", inc("n"), leaf), StepNode::new("d", inc("n"), End)))
    };
    let in_place = AsyncPipeline::new(deep(), ctx(), true);
    let waits = AsyncPipeline::new(StepNode::new("q", inc("n"), MemoryQueue::new(4, deep())), ctx(), true);
    let limit = std::mem::size_of::<Event>() + 2 * std::mem::size_of::<usize>();
    assert!(std::mem::size_of_val(&in_place.process(Event::new(json!({})))) <= limit);
    assert!(std::mem::size_of_val(&waits.process(Event::new(json!({})))) <= limit);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    assert_eq!(runtime.block_on(in_place.process(Event::new(json!({ "n": 0 })))).json_body()["n"], 3);
    assert_eq!(runtime.block_on(waits.process(Event::new(json!({ "n": 0 })))).json_body()["n"], 4);
}

#[test]
fn a_runner_runs_the_routes_each_event_selects_and_many_callers_get_their_own() {
    let times = |factor: f64| -> Route {
        struct Times(f64);
        impl model::Model for Times {
            fn predict(&self, f: model::Features) -> Result<Vec<Value>, StepError> {
                Ok((0..f.rows).map(|row| json!(f.row(row)[0] * self.0)).collect())
            }
        }
        Route::Model(Arc::new(Times(factor)))
    };
    let routes = vec![("one".into(), times(1.0)), ("two".into(), times(2.0)), ("three".into(), times(3.0))];
    let router = Router::new("runner", "/v2/models", routes, Mode::Parallel)
        .with_selector(|event: &Event, _: &Context| Ok(event.body["models"].clone()));
    let server = router_server(router);
    let names = ["one", "two", "three"];
    std::thread::scope(|scope| {
        for caller in 0..24u32 {
            let server = &server;
            scope.spawn(move || {
                // Each caller its own subset (by the bits of its number) and its own input.
                let chosen: Vec<&str> =
                    names.iter().enumerate().filter(|(i, _)| caller >> i & 1 == 1).map(|(_, n)| *n).collect();
                let input = f64::from(caller);
                let answer = server.test("/", json!({ "models": chosen, "inputs": [[input]] }));
                let expected: serde_json::Map<String, Value> = chosen
                    .iter()
                    .map(|name| {
                        let factor = names.iter().position(|n| n == name).unwrap() as f64 + 1.0;
                        (name.to_string(), json!([input * factor]))
                    })
                    .collect();
                assert_eq!((answer.status, answer.json_body()), (200, Value::Object(expected)), "caller {caller}");
            });
        }
    });
    let unknown = server.test("/", json!({ "models": ["four"], "inputs": [[1]] }));
    assert_eq!(unknown.status, 400);
    assert!(unknown.json_body()["error"].as_str().unwrap().contains("the routes are one, two, three"));
    assert_eq!(server.test("/", json!({ "models": 3, "inputs": [[1]] })).status, 400, "not names");
}
