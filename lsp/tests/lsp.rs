//! `graphc-lsp` driven over stdio by a client, as an editor drives it: initialize, didOpen,
//! publishDiagnostics (codes, related places, quick fixes), didChange, definition, references,
//! hover, completion, rename, outline, formatting, shutdown.

mod support {
    pub mod lsp_client;
}

use serde_json::{Value, json};
use support::lsp_client::Client;

const URI: &str = "file:///work/orders.graph";

/// A graph with two mistakes: a misspelt step in a chain, and a name declared twice.
const BROKEN: &str = "graph orders {
    topology = flow;
    step parse = map(body);
    step enrich = extend({ tag: \"x\" }) { on_error = catcher; }
    step catcher = map({ failed: true });
    step catcher = map(body);
    parse -> enrihc;
}
";

/// The same graph, fixed, and written loosely.
const FIXED: &str = "graph orders {
    topology = flow;
    step parse = map(body);
    step enrich =   extend({tag:\"x\"}) { on_error = catcher; respond; }
    step catcher = map({ failed: true });
    parse -> enrich;
}
";

/// The LSP position of the `nth` occurrence of `needle` in `text`, one character in.
fn position(text: &str, needle: &str, nth: usize) -> Value {
    let offset = text.match_indices(needle).nth(nth).map(|(i, _)| i).expect("the needle is there") + 1;
    let line = text[..offset].matches('\n').count();
    let character = text[..offset].rsplit('\n').next().map_or(0, |l| l.encode_utf16().count());
    json!({ "line": line, "character": character })
}

fn at(text: &str, needle: &str, nth: usize) -> Value {
    json!({ "textDocument": { "uri": URI }, "position": position(text, needle, nth) })
}

#[test]
fn an_editor_session() {
    let (mut client, initialized) = Client::start(env!("CARGO_BIN_EXE_graphc-lsp"));
    let capabilities = &initialized["capabilities"];
    for capability in [
        "definitionProvider",
        "referencesProvider",
        "renameProvider",
        "hoverProvider",
        "completionProvider",
        "documentSymbolProvider",
        "documentFormattingProvider",
        "codeActionProvider",
    ] {
        assert!(!capabilities[capability].is_null(), "{capability} in {capabilities}");
    }

    // Open: every problem, with its code, its other place, and its help.
    client.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": URI, "languageId": "graph", "version": 1, "text": BROKEN } }),
    );
    let diagnostics = client.diagnostics(URI);
    let codes: Vec<&str> = diagnostics.iter().filter_map(|d| d["code"].as_str()).collect();
    assert_eq!(codes, ["graphc::duplicate_name", "graphc::unknown_step"], "{diagnostics:#?}");
    let duplicate = &diagnostics[0];
    assert_eq!(duplicate["severity"], 1);
    assert_eq!(duplicate["range"]["start"], json!({ "line": 5, "character": 9 }));
    assert_eq!(duplicate["relatedInformation"][0]["location"]["range"]["start"], json!({ "line": 4, "character": 9 }));
    let unknown = &diagnostics[1];
    assert!(unknown["message"].as_str().is_some_and(|m| m.contains("did you mean `enrich`?")), "{unknown}");

    // The "did you mean" is a quick fix.
    let actions = client.request(
        "textDocument/codeAction",
        json!({
            "textDocument": { "uri": URI },
            "range": unknown["range"],
            "context": { "diagnostics": [unknown] },
        }),
    );
    assert_eq!(actions[0]["kind"], "quickfix", "{actions}");
    let edit = &actions[0]["edit"]["changes"][URI][0];
    assert_eq!(edit["newText"], "enrich");
    assert_eq!(edit["range"], unknown["range"]);

    // Change: the diagnostics follow the text.
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 2 }, "contentChanges": [{ "text": FIXED }] }),
    );
    assert_eq!(client.diagnostics(URI), Vec::<Value>::new());

    // Go to definition, from a chain and from a handler.
    let definition = client.request("textDocument/definition", at(FIXED, "enrich;", 0));
    assert_eq!(definition["uri"], URI);
    assert_eq!(
        definition["range"],
        json!({ "start": { "line": 3, "character": 9 }, "end": { "line": 3, "character": 15 } })
    );
    let definition = client.request("textDocument/definition", at(FIXED, "catcher;", 0));
    assert_eq!(definition["range"]["start"], json!({ "line": 4, "character": 9 }));

    // References, with and without the declaration.
    let mut params = at(FIXED, "catcher", 1);
    params["context"] = json!({ "includeDeclaration": true });
    let references = client.request("textDocument/references", params.clone());
    assert_eq!(references.as_array().map(Vec::len), Some(2), "{references}");
    params["context"] = json!({ "includeDeclaration": false });
    let references = client.request("textDocument/references", params);
    let handler_column = FIXED.lines().nth(3).and_then(|line| line.find("catcher")).expect("the handler");
    assert_eq!(references[0]["range"]["start"], json!({ "line": 3, "character": handler_column }));

    // Hover: the kind, the types, the function it runs on, its handler.
    let hover = client.request("textDocument/hover", at(FIXED, "enrich;", 0));
    let markdown = hover["contents"]["value"].as_str().unwrap_or_default();
    assert_eq!(hover["contents"]["kind"], "markdown");
    for expected in
        ["built-in `extend`", "input `json` → output `object`", "the root function `orders`", "errors go to `catcher`"]
    {
        assert!(markdown.contains(expected), "{expected} in {markdown}");
    }

    // Completion of step names in a chain, and of a built-in's arguments.
    let typing = FIXED.replace("parse -> enrich;", "parse -> ");
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 3 }, "contentChanges": [{ "text": typing }] }),
    );
    let _ = client.diagnostics(URI);
    let end_of_chain = typing.find("parse -> ").expect("typed") + "parse -> ".len();
    let line = typing[..end_of_chain].matches('\n').count();
    let completion = client.request(
        "textDocument/completion",
        json!({ "textDocument": { "uri": URI }, "position": { "line": line, "character": 13 } }),
    );
    let labels: Vec<&str> = completion.as_array().into_iter().flatten().filter_map(|c| c["label"].as_str()).collect();
    for name in ["parse", "enrich", "catcher"] {
        assert!(labels.contains(&name), "{name} in {labels:?}");
    }
    assert!(!labels.contains(&"topology"), "settings are not steps: {labels:?}");
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI, "version": 4 }, "contentChanges": [{ "text": FIXED }] }),
    );
    let _ = client.diagnostics(URI);

    // Rename across the file; a taken name is refused with a message.
    let mut params = at(FIXED, "catcher", 0);
    params["newName"] = json!("on_failure");
    let rename = client.request("textDocument/rename", params.clone());
    let edits = rename["changes"][URI].as_array().cloned().unwrap_or_default();
    assert_eq!(edits.len(), 2, "{rename}");
    assert!(edits.iter().all(|e| e["newText"] == "on_failure"));
    params["newName"] = json!("parse");
    let refused = client.request("textDocument/rename", params);
    assert!(refused["message"].as_str().is_some_and(|m| m.contains("already declared")), "{refused}");

    // The outline.
    let symbols = client.request("textDocument/documentSymbol", json!({ "textDocument": { "uri": URI } }));
    assert_eq!(symbols[0]["name"], "orders");
    let children: Vec<&str> =
        symbols[0]["children"].as_array().into_iter().flatten().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(children, ["parse", "enrich", "catcher"]);

    // Formatting is `graphc fmt`.
    let edits = client.request(
        "textDocument/formatting",
        json!({ "textDocument": { "uri": URI }, "options": { "tabSize": 4, "insertSpaces": true } }),
    );
    let formatted = edits[0]["newText"].as_str().unwrap_or_default();
    assert_eq!(formatted, graphc::format::format_source(FIXED).expect("formats"));
    assert!(formatted.contains("step enrich = extend({ tag: \"x\" }) { on_error = catcher; respond; }"), "{formatted}");

    // A request about a file that is not open is an error, not a crash.
    let unknown = client.request(
        "textDocument/hover",
        json!({ "textDocument": { "uri": "file:///nope.graph" }, "position": { "line": 0, "character": 0 } }),
    );
    assert!(unknown["message"].as_str().is_some_and(|m| m.contains("not open")), "{unknown}");

    assert!(client.shutdown().success());
}

/// What `graphc check` reads beside a file, the editor shows too: a model file that is not
/// there, and a handler path that names nothing in the handler crate.
#[test]
fn the_editor_shows_what_the_cli_finds_beside_the_file() {
    let dir = std::env::temp_dir().join(format!("graphc lsp {}", std::process::id()));
    std::fs::create_dir_all(dir.join("handlers/src")).expect("dir");
    std::fs::write(dir.join("handlers/Cargo.toml"), "[package]\nname = \"my-handlers\"\n").expect("manifest");
    std::fs::write(dir.join("handlers/src/lib.rs"), "pub fn parse(body: Value) -> Value { body }").expect("lib");
    let text = "graph beside {
    handlers = \"handlers\";
    topology = flow;
    step parse = fn my_handlers::prase;
    router models = model { route m = model(kind = gaussian_nb, model_path = \"nowhere.json\"); }
    parse -> models;
}
";
    // A space in the folder's name: the URI escapes it, as editors do.
    let uri = format!("file://{}/beside.graph", dir.display().to_string().replace(' ', "%20"));
    let (mut client, _) = Client::start(env!("CARGO_BIN_EXE_graphc-lsp"));
    client.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": uri, "languageId": "graph", "version": 1, "text": text } }),
    );
    let diagnostics: Vec<Value> = client.diagnostics(&uri).into_iter().filter(|d| d["severity"] == 1).collect();
    let codes: Vec<&str> = diagnostics.iter().filter_map(|d| d["code"].as_str()).collect();
    assert_eq!(codes, ["graphc::unknown_handler_item", "graphc::model_not_found"], "{diagnostics:#?}");
    assert!(diagnostics[0]["message"].as_str().unwrap_or_default().contains("did you mean `parse`?"));
    assert!(client.shutdown().success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn malformed_notifications_are_logged_and_the_server_goes_on_and_lone_carriage_returns_end_lines() {
    let (mut client, _) = Client::start(env!("CARGO_BIN_EXE_graphc-lsp"));
    // A change without `version`, an open whose document is a number, a close with nothing.
    client.notify(
        "textDocument/didChange",
        json!({ "textDocument": { "uri": URI }, "contentChanges": [{ "text": "x" }] }),
    );
    client.notify("textDocument/didOpen", json!({ "textDocument": 7 }));
    client.notify("textDocument/didClose", json!({}));
    // Still serving: a file with old Mac line endings, its mistake on its third line.
    let text = "graph orders {\r    topology = flow;\r    step parse = map(nothing_here) { respond; }\r}\r";
    client.notify(
        "textDocument/didOpen",
        json!({ "textDocument": { "uri": URI, "languageId": "graph", "version": 1, "text": text } }),
    );
    let diagnostics = client.diagnostics(URI);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert_eq!(diagnostics[0]["range"]["start"]["line"], 2, "{diagnostics:#?}");
    let logged: Vec<&Value> = client.notifications.iter().filter(|m| m["method"] == "window/logMessage").collect();
    assert_eq!(logged.len(), 3, "one line in the editor's log per malformed notification: {logged:#?}");
    assert!(logged[0]["params"]["message"].as_str().is_some_and(|m| m.contains("didChange")), "{logged:#?}");
    assert!(client.shutdown().success());
}

#[test]
fn a_lone_surrogate_is_read_as_a_replacement_character_and_a_frame_that_is_not_json_is_skipped() {
    let (mut client, _) = Client::start(env!("CARGO_BIN_EXE_graphc-lsp"));
    // An editor that splits a character's surrogate pair sends half of it, escaped: valid JSON,
    // and no Rust string can hold it. The step's name holds it, so the diagnostic quotes it.
    let text = r"graph orders {\n    topology = flow;\n    step a = map(body) { respond; }\n    a -> b\ud800;\n}\n";
    let open = format!(
        r#"{{"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {{"textDocument": {{"uri": "{URI}", "languageId": "graph", "version": 1, "text": "{text}"}}}}}}"#
    );
    client.send_text(&open);
    let diagnostics = client.diagnostics(URI);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert!(
        diagnostics[0]["message"].as_str().is_some_and(|m| m.contains('\u{fffd}')),
        "the lone half is read as U+FFFD: {diagnostics:#?}"
    );
    // Not JSON at all: said in the editor's log, and the session goes on.
    client.send_text("{ this is not json");
    let hover = client.request("textDocument/hover", at(FIXED, "parse", 0));
    assert!(hover.is_null() || hover.get("contents").is_some(), "{hover}");
    let logged: Vec<&Value> = client.notifications.iter().filter(|m| m["method"] == "window/logMessage").collect();
    assert!(
        logged.iter().any(|m| m["params"]["message"].as_str().is_some_and(|m| m.contains("not JSON-RPC"))),
        "{logged:#?}"
    );
    assert!(client.shutdown().success());
}
