//! The `graph!` macro: the DSL as Rust tokens, compiled by the same compiler as files, and the
//! same graph through build.rs and the macro answering identically.

use graphc_runtime::Options;
use serde_json::json;
use std::path::PathBuf;

graphc_macros::graph! {
    /// Doc comments are comments in a graph.
    graph chain_macro {
        topology = flow;
        engine = sync;
        param bonus: int = 10;

        step inc = map({ n: body.n + 1, name: body.name });
        step keep = filter(body.n > 0);
        step scale = map({ n: body.n * 2 + param.bonus, label: "n=" + body.name, size: len(body.name) });
        step tag = extend({ tagged: true, path: event.path });
        inc -> keep -> scale -> tag;

        test computes {
            request POST "/work" { body = { n: 1, name: "abc" }; }
            expect status == 200;
            expect body == { n: 14, label: "n=abc", size: 3, tagged: true, path: "/work" };
        }
    }
}

graphc_macros::graph! {
    graph handlers_macro {
        topology = flow;
        engine = async;
        step echo = fn ::graphc_tests::handlers::echo { respond; }
    }
}

#[test]
fn a_graph_written_inline_runs_its_test_blocks() {
    let server = chain_macro::mock(&Options::default()).unwrap();
    let outcomes = graphc_runtime::generated::run_tests(&server, &chain_macro::tests());
    assert_eq!(outcomes.len(), 1);
    assert!(outcomes.iter().all(|o| o.failure.is_none()), "{outcomes:?}");
    assert_eq!(chain_macro::ENGINE, "sync");
}

#[test]
fn inline_graphs_call_user_handlers_by_path() {
    let server = handlers_macro::mock(&Options::default()).unwrap();
    assert_eq!(server.test("/", json!({ "a": 1 })).json_body(), json!({ "echoed": { "a": 1 } }));
}

#[test]
fn build_rs_and_the_macro_answer_identically() {
    let from_file =
        graphc_tests::run::chain::mock(&Options::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/run")))
            .unwrap();
    let from_macro = chain_macro::mock(&Options::default()).unwrap();
    let requests = [
        ("/", json!({ "n": 1, "name": "abc" })),
        ("/x/y", json!({ "n": 41, "name": "" })),
        ("/", json!({ "n": -3, "name": "dropped" })),
        ("/", json!({ "n": "not a number", "name": "x" })),
        ("/", json!(null)),
    ];
    for (path, body) in requests {
        let a = from_file.request("POST", path).event_id("same").json(&body).send();
        let b = from_macro.request("POST", path).event_id("same").json(&body).send();
        assert_eq!((a.status, a.json_body()), (b.status, b.json_body()), "{path} {body}");
    }
}

graphc_macros::graph! {
    graph remote_macro {
        topology = flow;
        engine = async;
        step call = $remote(function = scorer, retries = 1, backoff_ms = 1) { result_path = "score"; respond; }
    }
}

#[test]
fn generated_remote_steps_call_the_function_endpoint() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let addr = listener.local_addr().unwrap();
    // A scoring service: answers the length of the body's text.
    runtime.spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 4096];
                let read = socket.read(&mut buffer).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buffer[..read]).to_string();
                let body = request.split("\r\n\r\n").nth(1).unwrap_or("");
                let value: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
                let answer = value["text"].as_str().map_or(0, str::len).to_string();
                let _ = socket.write_all(format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}", answer.len()).as_bytes()).await;
            });
        }
    });
    let server = remote_macro::mock(&Options::default().endpoint("scorer", format!("http://{addr}/score"))).unwrap();
    let response = server.test("/", json!({ "text": "hello" }));
    assert_eq!(response.json_body(), json!({ "text": "hello", "score": 5 }));
}
