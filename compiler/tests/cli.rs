//! The `graphc` binary as a user runs it: exit codes, where diagnostics point, JSON output, and
//! diagrams that Graphviz renders.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

// The random graph generator of the fixture corpus (tests/src/random.rs), shared with tests/build.rs.
#[path = "../../tests/src/random.rs"]
#[allow(dead_code)]
mod random;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root").to_path_buf()
}

fn graphc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graphc"))
        .args(args)
        .env("COLUMNS", "100")
        .current_dir(workspace())
        .output()
        .expect("graphc runs")
}

fn graph_files(folder: &str) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(workspace().join(folder))
        .expect("folder exists")
        .map(|entry| entry.expect("entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "graph"))
        .map(|path| path.strip_prefix(workspace()).expect("inside").display().to_string())
        .collect();
    files.sort();
    files
}

fn examples() -> Vec<String> {
    ["iris", "flow", "ensemble", "remote", "distributed", "churn", "loop", "runner"]
        .iter()
        .map(|name| format!("examples/{name}/{name}.graph"))
        .collect()
}

#[test]
fn examples_check_clean() {
    let files = examples();
    let mut args = vec!["check"];
    args.extend(files.iter().map(String::as_str));
    let output = graphc(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains('×'), "no errors expected: {stderr}");
}

#[test]
fn every_fail_fixture_exits_1_with_its_error_where_the_fixture_says() {
    let files = graph_files("tests/fixtures/fail");
    assert!(files.len() >= 30);
    for file in files {
        let text = std::fs::read_to_string(workspace().join(&file)).expect("fixture");
        let expect = text
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("// expect: "))
            .unwrap_or_else(|| panic!("{file}: no `// expect:` line"));
        let (code, place) = expect.split_once(" at ").expect("`CODE at LINE:COL`");
        let output = graphc(&["check", "--format", "json", &file]);
        assert_eq!(output.status.code(), Some(1), "{file}");
        let diagnostics = json_lines(&output.stdout);
        assert_eq!(diagnostics.len(), 1, "{file}: {diagnostics:#?}");
        let primary = &diagnostics[0]["spans"][0];
        assert_eq!(primary["is_primary"], true);
        assert_eq!(diagnostics[0]["code"], code, "{file}");
        assert_eq!(format!("{}:{}", primary["line_start"], primary["column_start"]), place, "{file}");
    }
}

#[test]
fn human_output_points_into_the_source() {
    let output = graphc(&["check", "tests/fixtures/fail/unknown_step_in_chain.graph"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("unknown step `enrch`"), "{stderr}");
    assert!(stderr.contains("did you mean `enrich`?"), "{stderr}");
    assert!(stderr.contains("unknown_step_in_chain.graph:6:5"), "{stderr}");
}

#[test]
fn warnings_alone_exit_0() {
    let output = graphc(&["check", "examples/flow/flow.graph"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stderr).contains("graphc::no_responder"));
    let unused = workspace().join("target/graphc-unused-function.graph");
    std::fs::write(&unused, "graph u { topology = flow; function idle; step a = map(body) { respond; } }")
        .expect("write");
    let output = graphc(&["check", "target/graphc-unused-function.graph"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("graphc::unused_function") && stderr.contains("function `idle` runs no step"), "{stderr}");
}

fn json_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}")))
        .collect()
}

#[test]
fn json_diagnostics_give_every_unit_and_the_suggestion() {
    // A non-ASCII name before the mistake: characters, bytes and UTF-16 units differ.
    let file = workspace().join("target/graphc-units.graph");
    std::fs::write(&file, "graph units {\n    topology = flow;\n    step größe = map(body) { respond; }\n    step 𠀀x = map(body); größe -> 𠀀x; größe -> grösse;\n}\n")
        .expect("write");
    let output = graphc(&["check", "--format", "json", "target/graphc-units.graph", "no/such/file.graph"]);
    assert_eq!(output.status.code(), Some(1));
    let diagnostics = json_lines(&output.stdout);
    assert_eq!(diagnostics.len(), 2, "{diagnostics:#?}");
    let unknown = &diagnostics[0];
    assert_eq!(unknown["code"], "graphc::unknown_step");
    let span = &unknown["spans"][0];
    let line = "    step 𠀀x = map(body); größe -> 𠀀x; größe -> ";
    assert_eq!(span["line_start"], 4);
    assert_eq!(span["column_start"], line.chars().count() + 1);
    assert_eq!(span["column_start_bytes"], line.len() + 1);
    assert_eq!(span["column_start_utf16"], line.encode_utf16().count());
    let text = std::fs::read_to_string(&file).expect("read");
    let (start, end) = (span["byte_start"].as_u64().unwrap() as usize, span["byte_end"].as_u64().unwrap() as usize);
    assert_eq!(&text[start..end], "grösse");
    assert_eq!(unknown["suggestion"]["replacement"], "größe");
    assert_eq!(unknown["suggestion"]["byte_start"], span["byte_start"]);
    // The unreadable file is one more diagnostic, after the readable one's.
    assert_eq!(diagnostics[1]["code"], "graphc::io");
    assert_eq!(diagnostics[1]["file"], "no/such/file.graph");
}

/// Everything `graphc build` would find before rustc, `graphc check` finds: handler paths are
/// followed into the handler crate's source (named by the graph or by `--handlers`).
#[test]
fn check_reads_the_handler_crate_and_reports_paths_that_name_nothing() {
    let dir = workspace().join("target/graphc-check-handlers");
    std::fs::create_dir_all(dir.join("handlers/src")).expect("dir");
    std::fs::write(dir.join("handlers/Cargo.toml"), "[package]\nname = \"shop-handlers\"\n").expect("manifest");
    std::fs::write(
        dir.join("handlers/src/lib.rs"),
        "pub mod orders;\npub fn stamp(event: &mut Event, context: &Context) {}\n",
    )
    .expect("lib");
    std::fs::write(dir.join("handlers/src/orders.rs"), "pub fn parse(body: Value) -> Value { body }\n")
        .expect("orders");
    let graph =
        |handlers: &str, steps: &str| format!("graph shop {{\n    {handlers}\n    topology = flow;\n{steps}}}\n");
    let cases = [
        (graph("handlers = \"handlers\";", "    step a = fn shop_handlers::orders::parse { respond; }\n"), None),
        (
            graph("handlers = \"handlers\";", "    step a = fn shop_handlers::orders::prase { respond; }\n"),
            Some(("graphc::unknown_handler_item", 4, "did you mean `parse`?")),
        ),
        (
            graph("handlers = \"handlers\";", "    step a = fn shop_handlers::stamp { respond; }\n"),
            Some(("graphc::handler_arguments", 4, "full_event")),
        ),
        (
            graph("handlers = \"nowhere\";", "    step a = fn shop_handlers::stamp { respond; }\n"),
            Some(("graphc::handler_crate_not_found", 2, "relative to the graph's file")),
        ),
        (
            graph("", "    step a = fn shop_handlers::orders::parse { respond; }\n"),
            Some(("graphc::unknown_handler", 4, "--handlers DIR")),
        ),
    ];
    for (index, (text, expected)) in cases.iter().enumerate() {
        let file = format!("target/graphc-check-handlers/case{index}.graph");
        std::fs::write(workspace().join(&file), text).expect("write");
        let output = graphc(&["check", "--format", "json", &file]);
        let diagnostics = json_lines(&output.stdout);
        match expected {
            None => assert_eq!(output.status.code(), Some(0), "{text}: {diagnostics:#?}"),
            Some((code, line, help)) => {
                assert_eq!(output.status.code(), Some(1), "{text}");
                assert_eq!(diagnostics.len(), 1, "{text}: {diagnostics:#?}");
                assert_eq!(diagnostics[0]["code"], *code, "{text}");
                assert_eq!(diagnostics[0]["spans"][0]["line_start"], *line, "{text}");
                let rendered = diagnostics[0].to_string();
                assert!(rendered.contains(help), "{text}: {rendered}");
            }
        }
    }
    // `--handlers` names the crate when the graph does not.
    let output = graphc(&[
        "check",
        "--handlers",
        "target/graphc-check-handlers/handlers",
        "target/graphc-check-handlers/case4.graph",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn a_model_file_that_does_not_exist_is_reported_at_check_time_with_the_resolved_path() {
    let dir = workspace().join("target/graphc-missing-model");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("missing.graph"),
        "graph missing_model {\n    router models = model {\n        route m = model(kind = gaussian_nb, model_path = \"models/nowhere.json\");\n    }\n}\n",
    )
    .expect("write");
    let output = graphc(&["check", "--format", "json", "target/graphc-missing-model/missing.graph"]);
    assert_eq!(output.status.code(), Some(1));
    let diagnostics = json_lines(&output.stdout);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert_eq!(diagnostics[0]["code"], "graphc::model_not_found");
    let label = diagnostics[0]["spans"][0]["label"].as_str().expect("a label");
    assert!(label.ends_with("target/graphc-missing-model/models/nowhere.json"), "{label}");
    assert_eq!(diagnostics[0]["spans"][0]["line_start"], 3);

    // A shared model's missing file is reported once, at its declaration, however many routes name it.
    std::fs::write(
        dir.join("shared.graph"),
        "graph missing_shared {\n    model m = model(kind = gaussian_nb, model_path = \"models/gone.json\");\n    router models = model {\n        route a = m;\n        route b = m;\n    }\n}\n",
    )
    .expect("write");
    let output = graphc(&["check", "--format", "json", "target/graphc-missing-model/shared.graph"]);
    assert_eq!(output.status.code(), Some(1));
    let diagnostics = json_lines(&output.stdout);
    assert_eq!(diagnostics.len(), 1, "{diagnostics:#?}");
    assert_eq!(diagnostics[0]["code"], "graphc::model_not_found");
    assert_eq!(diagnostics[0]["spans"][0]["line_start"], 2);
}

#[test]
fn color_follows_the_flag_and_no_color() {
    let file = "tests/fixtures/fail/unknown_step_in_chain.graph";
    let always = graphc(&["check", "--color", "always", file]);
    assert!(String::from_utf8_lossy(&always.stderr).contains("\u{1b}["), "ANSI colours with --color always");
    let never = graphc(&["check", "--color", "never", file]);
    assert!(!String::from_utf8_lossy(&never.stderr).contains("\u{1b}["));
    // Not a terminal: `auto` stays plain.
    let auto = graphc(&["check", file]);
    assert!(!String::from_utf8_lossy(&auto.stderr).contains("\u{1b}["));
    // The flag belongs to the commands that print diagnostics, and to no other.
    for command in ["check", "build", "test", "serve", "run", "fmt", "graph"] {
        let help = String::from_utf8_lossy(&graphc(&[command, "--help"]).stdout).into_owned();
        assert!(help.contains("--color"), "graphc {command} --help: {help}");
    }
    for command in ["lsp", "completions"] {
        let help = String::from_utf8_lossy(&graphc(&[command, "--help"]).stdout).into_owned();
        assert!(!help.contains("--color"), "graphc {command} --help offers a flag it ignores: {help}");
    }
}

#[test]
fn a_missing_file_is_an_error_not_a_panic() {
    let output = graphc(&["check", "no/such/file.graph"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read no/such/file.graph"));
}

fn render_with_dot(dot: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new("dot")
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("Graphviz `dot` is installed (scripts/test installs it)");
    child.stdin.take().expect("stdin").write_all(dot).expect("write");
    child.wait_with_output().expect("dot finishes")
}

#[test]
fn dot_output_renders_with_graphviz() {
    let mut files = examples();
    files.extend(graph_files("tests/fixtures/pass"));
    for file in files {
        let output = graphc(&["graph", &file, "--format", "dot"]);
        assert_eq!(output.status.code(), Some(0), "{file}");
        let rendered = render_with_dot(&output.stdout);
        assert!(rendered.status.success(), "{file}: {}", String::from_utf8_lossy(&rendered.stderr));
        let svg = String::from_utf8_lossy(&rendered.stdout);
        assert!(svg.contains("<svg") && svg.contains(">start<"), "{file}: no start node drawn");
    }
}

#[test]
fn diagrams_show_routers_as_clusters_queues_as_cds_and_dashed_handlers() {
    let dot = String::from_utf8(graphc(&["graph", "examples/flow/flow.graph"]).stdout).expect("utf-8");
    assert!(dot.contains("subgraph \"cluster_router\""), "{dot}");
    assert!(dot.contains("\"router/m1\""), "{dot}");
    assert!(dot.contains("\"enrich\" -> \"catcher\" [style=dashed]"), "{dot}");
    let queues = String::from_utf8(graphc(&["graph", "examples/distributed/distributed.graph"]).stdout).expect("utf-8");
    assert!(queues.contains("shape=cds"), "{queues}");
    assert!(queues.contains(r#""enrich" [label="enrich\n@enricher""#), "steps show their function: {queues}");
    let mermaid =
        String::from_utf8(graphc(&["graph", "examples/flow/flow.graph", "--format", "mermaid"]).stdout).expect("utf-8");
    assert!(mermaid.starts_with("flowchart LR"), "{mermaid}");
    assert!(mermaid.contains("-.->"), "{mermaid}");
}

/// Complete graphs shown in the documentation check clean, so the docs cannot drift from the
/// language.
#[test]
fn graphs_in_the_docs_check_clean() {
    let mut checked = 0;
    for doc in ["docs/language.md", "README.md"] {
        let text = std::fs::read_to_string(workspace().join(doc)).expect("doc exists");
        for block in text.split("```").skip(1).step_by(2) {
            let code = block.trim_start_matches(|c: char| c.is_alphanumeric()).trim_start();
            // Fragments elide parts with `...`; only whole graphs are checked.
            if !code.starts_with("graph ") || code.contains("...") {
                continue;
            }
            if let Err(diagnostics) = graphc::check_source(code) {
                panic!(
                    "{doc}:\n{}",
                    graphc::report::render_human(doc, code, &diagnostics, graphc::report::Style::PLAIN)
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} graphs found in the docs");
}

#[test]
fn build_emit_rust_prints_what_build_rs_writes() {
    let output = graphc(&["build", "examples/iris/iris.graph", "--emit", "rust"]);
    assert_eq!(output.status.code(), Some(0));
    let text = std::fs::read_to_string(workspace().join("examples/iris/iris.graph")).expect("example");
    let expected = graphc::builder::generate_file(&text, "iris.graph").expect("generates").file.text;
    assert_eq!(String::from_utf8_lossy(&output.stdout), expected);
}

#[test]
fn build_check_fails_on_a_stale_generated_file() {
    let out = std::env::temp_dir().join(format!("graphc-check-{}.rs", std::process::id()));
    let out_arg = out.display().to_string();
    let write = graphc(&["build", "examples/iris/iris.graph", "--emit", "rust", "--out", &out_arg]);
    assert_eq!(write.status.code(), Some(0));
    assert_eq!(
        graphc(&["build", "examples/iris/iris.graph", "--emit", "rust", "--out", &out_arg, "--check"]).status.code(),
        Some(0)
    );
    std::fs::write(&out, "// edited by hand\n").expect("write");
    let stale = graphc(&["build", "examples/iris/iris.graph", "--emit", "rust", "--out", &out_arg, "--check"]);
    assert_eq!(stale.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&stale.stderr).contains("is stale"));
    let _ = std::fs::remove_file(out);
}

/// Builds generated crates with cargo, so the cases share one test and one target directory.
#[test]
fn graphc_test_runs_the_examples_test_blocks() {
    let junit = std::env::temp_dir().join(format!("graphc-junit-{}.xml", std::process::id()));
    let junit_arg = junit.display().to_string();
    let iris = graphc(&["test", "examples/iris/iris.graph", "--junit", &junit_arg]);
    let stdout = String::from_utf8_lossy(&iris.stdout);
    assert_eq!(iris.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&iris.stderr));
    assert!(stdout.contains("test setosa ... ok") && stdout.ends_with("2 passed, 0 failed\n"), "{stdout}");
    let xml = std::fs::read_to_string(&junit).expect("JUnit written");
    // What the Jenkins JUnit schema requires: a suite's name, tests, failures and errors; a
    // case's name and classname.
    assert!(
        xml.contains("<testsuite name=\"iris\" tests=\"2\" failures=\"0\" errors=\"0\" skipped=\"0\" time=\""),
        "{xml}"
    );
    assert_eq!(xml.matches("<testcase name=\"").count(), 2, "{xml}");
    assert_eq!(xml.matches("classname=\"iris\" time=\"").count(), 2, "{xml}");
    // The built binary finds the graph's model files wherever it starts.
    let elsewhere = std::env::temp_dir();
    let binary = workspace().join("target/graphc/.target/debug/graphc-iris");
    let started_elsewhere =
        Command::new(&binary).arg("test").current_dir(&elsewhere).output().expect("the binary runs");
    let stdout = String::from_utf8_lossy(&started_elsewhere.stdout);
    assert_eq!(
        started_elsewhere.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&started_elsewhere.stderr)
    );
    assert!(stdout.ends_with("2 passed, 0 failed\n"), "{stdout}");
    // `--base` still wins: a folder without the models fails to start, naming the file.
    let based = Command::new(&binary).args(["test", "--base"]).arg(&elsewhere).output().expect("the binary runs");
    assert_eq!(based.status.code(), Some(2), "{}", String::from_utf8_lossy(&based.stderr));
    // A graph that serves a smartcore model builds the `num` crates it never calls unoptimised.
    let manifest = |name: &str| std::fs::read_to_string(workspace().join(format!("target/graphc/{name}/Cargo.toml")));
    let iris_manifest = manifest("iris").expect("the iris crate's manifest");
    assert!(iris_manifest.contains("[profile.release.package.num-bigint]\nopt-level = 0"), "{iris_manifest}");
    // In the checkout graphc was built from, its runtime is used in place: one copy to compile.
    let checkout_runtime = workspace().join("runtime").canonicalize().expect("the runtime");
    assert!(iris_manifest.contains(&checkout_runtime.display().to_string()), "{iris_manifest}");

    let flow = graphc(&["test", "examples/flow/flow.graph", "--handlers", "examples/flow/handlers"]);
    let stdout = String::from_utf8_lossy(&flow.stdout);
    assert_eq!(flow.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&flow.stderr));
    assert!(stdout.ends_with("1 passed, 0 failed\n"), "{stdout}");
    // Models beside a handler crate of the user's, which may do its own arithmetic with them.
    let flow_manifest = manifest("flow").expect("the flow crate's manifest");
    assert!(flow_manifest.contains("features = [\"models\"]"), "{flow_manifest}");
    assert!(!flow_manifest.contains("[profile.release"), "{flow_manifest}");
    // The graph says where its handler crate is (`handlers = "handlers";`): no flag needed.
    let flow = graphc(&["test", "examples/flow/flow.graph"]);
    let stdout = String::from_utf8_lossy(&flow.stdout);
    assert_eq!(flow.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&flow.stderr));
    assert!(stdout.ends_with("1 passed, 0 failed\n"), "{stdout}");

    // A model type of the user's: loaded, then infer, parameters, versions, its own operation,
    // explain and metadata, through the generated pipeline.
    let churn = graphc(&["test", "examples/churn/churn.graph"]);
    let stdout = String::from_utf8_lossy(&churn.stdout);
    assert_eq!(churn.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&churn.stderr));
    assert!(stdout.contains("test its_own_operation ... ok") && stdout.ends_with("9 passed, 0 failed\n"), "{stdout}");

    // A model runner over shared models: the selector chooses, per event, which run.
    let runner = graphc(&["test", "examples/runner/runner.graph"]);
    let stdout = String::from_utf8_lossy(&runner.stdout);
    assert_eq!(runner.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&runner.stderr));
    assert!(stdout.ends_with("3 passed, 0 failed\n"), "{stdout}");

    // Handlers of the wrong types: rustc's errors, each once, at the graph's lines.
    let wrong = graphc(&["build", "tests/fixtures/rustc/wrong_types.graph"]);
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert_eq!(wrong.status.code(), Some(1), "{stderr}");
    let start = stderr.find("graphc::rustc").unwrap_or_else(|| panic!("no mapped error:\n{stderr}"));
    let end = stderr.rfind("error: cargo build failed").unwrap_or(stderr.len());
    let mapped = &stderr[start..end];
    assert!(!mapped.contains("generated.rs"), "{mapped}");
    assert_eq!(mapped.matches("graphc::rustc").count(), 2, "one report per handler:\n{mapped}");
    insta::assert_snapshot!("rustc_errors_at_the_graph_lines", mapped);

    // A distributed graph's test blocks run the whole graph in one process, with no Redis.
    let distributed = graphc(&["test", "examples/distributed/distributed.graph"]);
    let stdout = String::from_utf8_lossy(&distributed.stdout);
    assert_eq!(distributed.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&distributed.stderr));
    assert!(stdout.ends_with("1 passed, 0 failed\n"), "{stdout}");

    // A failing expectation fails the run and says what the response was.
    let failing = workspace().join("target/graphc-failing.graph");
    std::fs::write(&failing, "graph failing { topology = flow; engine = sync; step a = map(body); test wrong { request POST \"/\" { body = 1; } expect body == 2; } }").expect("write");
    let failed = graphc(&["test", "target/graphc-failing.graph"]);
    let stdout = String::from_utf8_lossy(&failed.stdout);
    assert_eq!(failed.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("test wrong ... FAILED")
            && stdout.contains("expected body == 2")
            && stdout.ends_with("0 passed, 1 failed\n"),
        "{stdout}"
    );
    let failing_manifest = manifest("failing").expect("the failing crate's manifest");
    assert!(
        !failing_manifest.contains("[profile.release"),
        "no models, no release profile for their crates: {failing_manifest}"
    );
    assert!(failing_manifest.contains("[profile.dev]\ndebug = \"line-tables-only\""), "{failing_manifest}");
    let _ = std::fs::remove_file(junit);
}

#[test]
fn graphs_named_like_what_the_project_uses_build_and_test() {
    // `std` and `graphc_runtime` are names the written `main.rs` uses; `target` is a folder
    // beside the projects; `match` is a keyword (a raw identifier in the generated code).
    for name in ["std", "graphc_runtime", "target", "match"] {
        let file = format!("target/graphc-named-{name}.graph");
        std::fs::write(
            workspace().join(&file),
            format!("graph {name} {{ topology = flow; engine = sync; step a = map(body) {{ respond; }} test echoes {{ request POST \"/\" {{ body = 1; }} expect body == 1; }} }}"),
        )
        .expect("write");
        let output = graphc(&["test", &file]);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(0), "{name}: {stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        assert!(stdout.ends_with("1 passed, 0 failed\n"), "{name}: {stdout}");
    }
}

#[test]
fn check_takes_folders_and_build_refuses_out_without_emit_and_colour_follows_clicolor() {
    // A folder is the `.graph` files under it: every fail fixture, each failing.
    let fixtures = graph_files("tests/fixtures/fail").len();
    let output = graphc(&["check", "tests/fixtures/fail"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("Is a directory"), "{stderr}");
    assert!(stderr.matches("tests/fixtures/fail/").count() >= fixtures, "{fixtures} files: {stderr}");
    // `--out` says where `--emit rust` writes; alone it would be ignored, so it is refused.
    let out = graphc(&["build", "examples/iris/iris.graph", "--out", "target/graphc-ignored.rs"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--emit"), "{stderr}");
    // A server flag `serve` does not take is refused at once, before any build, with a guess.
    let typo = graphc(&["serve", "examples/iris/iris.graph", "--deadline-m", "5"]);
    let stderr = String::from_utf8_lossy(&typo.stderr);
    assert_eq!(typo.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("did you mean `--deadline-ms`?") && !stderr.contains("== building"), "{stderr}");
    let missing = graphc(&["serve", "examples/iris/iris.graph", "--port"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("`--port` takes a value"));
    // Completion scripts for the three shells, naming the subcommands and their flags.
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef graphc"), ("fish", "complete -c graphc")] {
        let script = graphc(&["completions", shell]);
        let text = String::from_utf8_lossy(&script.stdout);
        assert_eq!(script.status.code(), Some(0), "{shell}");
        assert!(text.contains(marker) && text.contains("check") && text.contains("handlers"), "{shell}: {text}");
    }
    // CLICOLOR_FORCE colours a pipe; CLICOLOR=0 and NO_COLOR keep it plain.
    let coloured = |env: &[(&str, &str)]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_graphc"));
        command.args(["check", "tests/fixtures/fail/add_str_and_int.graph"]).current_dir(workspace());
        for (name, value) in env {
            command.env(name, value);
        }
        String::from_utf8_lossy(&command.output().expect("runs").stderr).contains('\u{1b}')
    };
    assert!(coloured(&[("CLICOLOR_FORCE", "1")]));
    assert!(!coloured(&[("CLICOLOR", "0")]));
}

#[test]
fn a_handler_path_naming_no_given_crate_is_a_diagnostic_at_the_path() {
    let graph = workspace().join("target/graphc-unknown-crate.graph");
    std::fs::write(
        &graph,
        "graph unknown_crate {\n    topology = flow;\n    step a = fn nowhere::run { respond; }\n}\n",
    )
    .expect("write");
    let output = graphc(&["build", "target/graphc-unknown-crate.graph"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("graphc::unknown_handler")
            && stderr.contains("no crate `nowhere` is given")
            && stderr.contains("graphc-unknown-crate.graph:3:17"),
        "{stderr}"
    );
    assert!(!stderr.contains("== building"), "refused before cargo runs: {stderr}");
}

/// What a random graph names in its handler crate, one per kind of use: a body function, a
/// fallible one, a type built from arguments, a full-event function.
const HANDLER_USES: [&str; 4] = [
    "fn fixture_handlers::echo",
    "fn fixture_handlers::upper",
    "new fixture_handlers::Scale",
    "fn fixture_handlers::stamp { full_event",
];

#[test]
fn random_graphs_that_check_with_their_handler_crate_build_and_pass_their_tests() {
    // Files three folders down, as the generator's model paths (`../../../examples/...`) expect.
    let dir = workspace().join("target/random-graphs/cli");
    std::fs::create_dir_all(&dir).expect("a folder for the graphs");
    let limits = |size| random::Limits { handler_crate: Some("fixture_handlers"), ..random::Limits::new(size) };
    // The first seeds whose graphs, between them, name the crate in every way a graph can.
    let mut chosen = Vec::new();
    let mut covered = [false; HANDLER_USES.len()];
    for seed in 0..2000u64 {
        let name = format!("cli_random_{seed}");
        let text = random::graph(&name, seed, limits(3 + seed as usize % 6));
        let uses: Vec<usize> = (0..HANDLER_USES.len()).filter(|&i| text.contains(HANDLER_USES[i])).collect();
        if uses.iter().any(|&i| !covered[i]) {
            uses.iter().for_each(|&i| covered[i] = true);
            chosen.push((name, text));
        }
        if covered.iter().all(|&c| c) {
            break;
        }
    }
    assert!(covered.iter().all(|&c| c) && chosen.len() <= 4, "{} graphs cover {covered:?}", chosen.len());
    for (name, text) in &chosen {
        let file = format!("target/random-graphs/cli/{name}.graph");
        std::fs::write(workspace().join(&file), text).expect("write the graph");
        let checked = graphc(&["check", &file, "--handlers", "tests/handlers"]);
        let stderr = String::from_utf8_lossy(&checked.stderr);
        assert_eq!(checked.status.code(), Some(0), "{text}\n{stderr}");
        // What checks builds with rustc, and answers as its test block allows.
        let tested = graphc(&["test", &file, "--handlers", "tests/handlers"]);
        let stdout = String::from_utf8_lossy(&tested.stdout);
        let stderr = String::from_utf8_lossy(&tested.stderr);
        assert_eq!(tested.status.code(), Some(0), "{text}\n{stdout}\n{stderr}");
        assert!(stdout.ends_with("1 passed, 0 failed\n"), "{text}\n{stdout}");
    }
    // The same graphs with one handler path wrong are refused by `check`, at the path, before
    // any build: a misspelt function, a function where a type is needed, a full-event function
    // given the body.
    let mistakes = [
        (
            "fn fixture_handlers::echo",
            "fn fixture_handlers::ehco",
            "graphc::unknown_handler_item",
            "did you mean `echo`",
        ),
        ("new fixture_handlers::Scale", "new fixture_handlers::echo", "graphc::unknown_handler_item", "is a function"),
        (
            "fn fixture_handlers::stamp { full_event;",
            "fn fixture_handlers::stamp {",
            "graphc::handler_arguments",
            "takes 2 arguments",
        ),
    ];
    for (right, wrong, code, says) in mistakes {
        let (name, text) = chosen.iter().find(|(_, text)| text.contains(right)).expect("a graph that names it");
        let file = format!("target/random-graphs/cli/{name}_wrong.graph");
        std::fs::write(workspace().join(&file), text.replacen(right, wrong, 1)).expect("write the graph");
        for command in ["check", "build"] {
            let refused = graphc(&[command, &file, "--handlers", "tests/handlers"]);
            let stderr = String::from_utf8_lossy(&refused.stderr);
            assert_eq!(refused.status.code(), Some(1), "{command} {wrong}: {stderr}");
            assert!(stderr.contains(code) && stderr.contains(says), "{command} {wrong}: {stderr}");
            assert!(!stderr.contains("== building"), "refused before cargo runs: {stderr}");
        }
    }
}

#[test]
fn an_installed_graphc_builds_graphs_from_any_folder_without_its_checkout() {
    // The binary alone, copied out of the checkout, run from a folder outside it, with a cache
    // of its own: the runtime it builds with is the one embedded in it.
    let outside = std::env::temp_dir().join(format!("graphc-installed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&outside);
    std::fs::create_dir_all(outside.join("bin")).expect("a folder outside the checkout");
    let installed = outside.join("bin/graphc");
    std::fs::copy(env!("CARGO_BIN_EXE_graphc"), &installed).expect("copy the binary");
    std::fs::write(
        outside.join("hello.graph"),
        "graph hello { topology = flow; engine = sync; step greet = map({ hello: body.name }) { respond; } test greets { request POST \"/\" { body = { name: \"ada\" }; } expect body == { hello: \"ada\" }; } }",
    )
    .expect("write the graph");
    let output = Command::new(&installed)
        .args(["test", "hello.graph"])
        .current_dir(&outside)
        .env("GRAPHC_CACHE_DIR", outside.join("cache"))
        // Dependencies compiled by the other tests, so that this one builds only the runtime.
        .env("GRAPHC_TARGET_DIR", workspace().join("target/graphc/.target"))
        // As when its checkout is gone (here it is not, and would be used in place).
        .env("GRAPHC_RUNTIME", "embedded")
        .output()
        .expect("the installed graphc runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.ends_with("1 passed, 0 failed\n"), "{stdout}");
    let manifest = std::fs::read_to_string(outside.join("target/graphc/hello/Cargo.toml")).expect("the project");
    let cache = outside.join("cache").canonicalize().expect("the cache");
    assert!(manifest.contains(&cache.display().to_string()), "the runtime comes from the cache: {manifest}");
    let unpacked = std::fs::read_dir(&cache).expect("the cache").flatten().map(|e| e.path()).collect::<Vec<_>>();
    assert_eq!(unpacked.len(), 1, "{unpacked:?}");
    assert!(unpacked[0].join("src/lib.rs").is_file() && unpacked[0].join("Cargo.toml").is_file());
    let _ = std::fs::remove_dir_all(&outside);
}

/// A child process that is killed when dropped: a failing test must not leave a server
/// running, holding the test run's output open.
struct KillOnDrop(std::process::Child);

impl std::ops::Deref for KillOnDrop {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for KillOnDrop {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// A `graphc serve` running, once it listens.
struct Served {
    child: KillOnDrop,
    stderr: std::io::BufReader<std::process::ChildStderr>,
    addr: String,
}

/// Starts `graphc serve ARGS` and waits for its "serving GRAPH on" line.
fn serve(graph: &str, args: &[&str]) -> Served {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_graphc"))
        .arg("serve")
        .args(args)
        .current_dir(workspace())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("graphc serve starts");
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    let prefix = format!("serving {graph} on ");
    let addr = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).expect("reads") > 0, "the server exited before listening");
        if let Some(url) = line.trim().strip_prefix(prefix.as_str())
            && let Some((_, addr)) = url.split_once("://")
        {
            break addr.to_string();
        }
    };
    Served { child: KillOnDrop(child), stderr, addr }
}

/// The address of the gRPC server the process's next lines announce.
fn grpc_addr(stderr: &mut std::io::BufReader<std::process::ChildStderr>, graph: &str) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    let prefix = format!("serving {graph} over gRPC on ");
    loop {
        line.clear();
        assert!(stderr.read_line(&mut line).expect("reads") > 0, "no gRPC server");
        if let Some(addr) = line.trim().strip_prefix(prefix.as_str()) {
            return addr.to_string();
        }
    }
}

#[test]
fn graphc_serve_answers_over_http_and_stops_on_sigterm() {
    use std::io::{Read, Write};
    let Served { child: mut server, addr, .. } = serve("iris", &["examples/iris/iris.graph", "--port", "0", "--debug"]);
    let body = r#"{"inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}"#;
    let mut stream = std::net::TcpStream::connect(&addr).expect("connects");
    write!(stream, "POST /v2/models/model1/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-event-id: cli-1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).expect("sends");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("x-event-id: cli-1"), "{answer}");
    assert!(answer.ends_with(r#"{"id":"cli-1","model_name":"model1","outputs":[0,2]}"#), "{answer}");
    let killed = Command::new("kill").args(["-TERM", &server.id().to_string()]).status().expect("kill runs");
    assert!(killed.success());
    let status = server.wait().expect("exits");
    assert!(status.success(), "a graceful stop exits 0: {status:?}");
}

#[test]
fn graphc_serve_takes_tls_tokens_and_an_upstream_ca_from_its_flags() {
    use std::io::{Read, Write};
    let dir = workspace().join("target/graphc-serve-tls");
    std::fs::create_dir_all(&dir).expect("a folder");
    let key = rcgen::KeyPair::generate().expect("a key");
    let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("names")
        .self_signed(&key)
        .expect("a certificate");
    std::fs::write(dir.join("cert.pem"), cert.pem()).expect("write");
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).expect("write");
    std::fs::write(dir.join("tokens"), "s3cret\n").expect("write");
    // The iris graph under a name of its own: another test builds `iris` without TLS, and two
    // builds of one graph with different features at once would share its project.
    let iris = std::fs::read_to_string(workspace().join("examples/iris/iris.graph")).expect("the example");
    let graph = iris.replace("graph iris {", "graph iris_tls {").replace("models/", "../../examples/iris/models/");
    std::fs::write(dir.join("iris_tls.graph"), graph).expect("write");
    let path = |name: &str| dir.join(name).display().to_string();
    let (cert_file, key_file, tokens, graph_file) =
        (path("cert.pem"), path("key.pem"), path("tokens"), path("iris_tls.graph"));
    let Served { child: mut server, addr, mut stderr } = serve(
        "iris_tls",
        &[
            &graph_file,
            "--port",
            "0",
            "--grpc-port",
            "0",
            "--debug",
            "--tls-cert",
            &cert_file,
            "--tls-key",
            &key_file,
            "--auth-tokens-file",
            &tokens,
        ],
    );
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).expect("the certificate is a root");
    #[allow(deprecated, reason = "the server's provider, ring")]
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
    );
    let call = |token: Option<&str>| {
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("a name");
        let tls = rustls::ClientConnection::new(std::sync::Arc::clone(&config), name).expect("a connection");
        let mut stream = rustls::StreamOwned::new(tls, std::net::TcpStream::connect(&addr).expect("connects"));
        let body = r#"{"inputs": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}"#;
        let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
        write!(stream, "POST /v2/models/model1/infer HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{auth}x-event-id: tls-1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).expect("sends");
        let mut answer = Vec::new();
        // rustls reports a peer that closes without close_notify; the answer is whole by then.
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    };
    let answered = call(Some("s3cret"));
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    assert!(answered.ends_with(r#"{"id":"tls-1","model_name":"model1","outputs":[0,2]}"#), "{answered}");
    let refused = call(None);
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    assert!(refused.to_ascii_lowercase().contains("www-authenticate: bearer"), "{refused}");

    // tritonclient over HTTPS and over gRPC with TLS, as its users set them up.
    let grpc = grpc_addr(&mut stderr, "iris_tls");
    let output = Command::new(clients_python())
        .arg(workspace().join("tests/clients/oip_clients.py"))
        .args(["triton-tls", &addr, &grpc, "model1", "4", "0", &cert_file, "s3cret"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.trim_end().ends_with("checks"),
        "tritonclient over TLS: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // A gateway graph in front of it calls it over https://, trusting its certificate through
    // --upstream-ca, and passes each caller's own token on.
    std::fs::write(
        dir.join("tls_gateway.graph"),
        format!(
            "graph tls_gateway {{ topology = flow; step call = $remote(url = \"https://{addr}/v2/models/model1/infer\", \
             forward_headers = [\"authorization\"]) {{ respond; }} }}"
        ),
    )
    .expect("write");
    let Served { child: mut gateway, addr: gateway_addr, .. } =
        serve("tls_gateway", &[&path("tls_gateway.graph"), "--port", "0", "--debug", "--upstream-ca", &cert_file]);
    let through_gateway = |token: Option<&str>| {
        let mut stream = std::net::TcpStream::connect(&gateway_addr).expect("connects");
        let body = r#"{"inputs": [[5.1, 3.5, 1.4, 0.2]]}"#;
        let auth = token.map(|t| format!("authorization: Bearer {t}\r\n")).unwrap_or_default();
        write!(stream, "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n{auth}content-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).expect("sends");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("an answer");
        answer
    };
    for _ in 0..3 {
        let answered = through_gateway(Some("s3cret"));
        assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
        assert!(answered.contains(r#""model_name":"model1","outputs":[0]"#), "{answered}");
    }
    let unauthorised = through_gateway(None);
    assert!(unauthorised.starts_with("HTTP/1.1 502"), "the upstream's 401 is the gateway's 502: {unauthorised}");
    for child in [&mut gateway, &mut server] {
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let _ = child.wait();
    }
}

#[test]
fn a_failure_is_logged_with_its_id_and_no_credentials_and_its_cause_stays_out_of_the_body() {
    use std::io::{BufRead, Read, Write};
    let file = workspace().join("target/graphc-logged.graph");
    std::fs::write(
        &file,
        "graph logged { topology = flow; step call = $remote(url = \"http://user:hunter2@127.0.0.1:1/score\", timeout_ms = 500) { respond; } }",
    )
    .expect("write");
    let Served { child: mut server, mut stderr, addr } =
        serve("logged", &["target/graphc-logged.graph", "--port", "0", "--debug", "--log-format", "json"]);
    let mut line = String::new();
    let mut stream = std::net::TcpStream::connect(&addr).expect("connects");
    write!(stream, "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-event-id: logged-1\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}").expect("sends");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    assert!(
        !answer.contains("hunter2") && !answer.contains("127.0.0.1:1"),
        "the cause stays out of the body: {answer}"
    );
    // The log line: JSON, with the event id, the step and the cause, the password redacted.
    let logged = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).expect("reads") > 0, "no failure was logged");
        if line.contains("unhandled failure") {
            break line.clone();
        }
    };
    let record: serde_json::Value = serde_json::from_str(&logged).expect("a JSON log line");
    assert_eq!(record["event_id"], "logged-1", "{logged}");
    assert_eq!(record["step"], "call", "{logged}");
    assert!(logged.contains("user:***@127.0.0.1:1") && !logged.contains("hunter2"), "{logged}");
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();
}

#[test]
fn graphc_serve_function_names_the_functions_when_given_another() {
    let output =
        graphc(&["serve", "examples/distributed/distributed.graph", "--function", "nope", "--port", "0", "--debug"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("the graph has no function `nope`; its functions are: distributed, enricher, scorer"),
        "{stderr}"
    );
}

#[test]
fn every_code_is_documented_and_shown_by_a_fail_fixture() {
    let docs = std::fs::read_to_string(workspace().join("docs/language.md")).expect("docs");
    let fixtures: Vec<String> = graph_files("tests/fixtures/fail")
        .iter()
        .map(|file| std::fs::read_to_string(workspace().join(file)).expect("fixture"))
        .map(|text| text.lines().next().unwrap_or_default().to_string())
        .collect();
    // Codes no single file shows: warnings (a fail fixture holds an error), IO, rustc's errors
    // (built with cargo in `graphc_test_runs_the_examples_test_blocks`), handler crates, and
    // graphc's own bugs.
    let not_in_the_corpus = [
        "graphc::unreachable",
        "graphc::no_responder",
        "graphc::unused_function",
        "graphc::io",
        "graphc::rustc",
        "graphc::unknown_handler_item",
        "graphc::handler_arguments",
        "graphc::handler_crate_not_found",
        "graphc::internal",
    ];
    for code in graphc::Code::ALL {
        let code = code.as_str();
        assert!(docs.contains(&format!("| `{code}` |")), "{code} is not in docs/language.md's table");
        if !not_in_the_corpus.contains(&code) {
            assert!(
                fixtures.iter().any(|first| first.starts_with(&format!("// expect: {code} at"))),
                "no fail fixture shows {code}"
            );
        }
    }
}

#[test]
fn graphc_run_answers_a_file_of_events_in_order_and_exits_1_on_a_failure() {
    let dir = workspace().join("target/graphc-batch");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("batch.graph"),
        "graph batch_run { topology = flow; step double = map({ n: body.n * 2 }) { respond; } }",
    )
    .expect("write");
    let input: String = (0..500).map(|n| format!("{{\"n\": {n}}}\n")).collect::<String>() + "{\"n\": \"x\"}\n";
    std::fs::write(dir.join("events.jsonl"), input).expect("write");
    let output = graphc(&[
        "run",
        "target/graphc-batch/batch.graph",
        "--input",
        "target/graphc-batch/events.jsonl",
        "--output",
        "target/graphc-batch/answers.jsonl",
        "--errors",
        "target/graphc-batch/errors.jsonl",
        "--debug",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "an event failed: {stderr}");
    assert!(stderr.contains("501 events: 500 succeeded, 1 failed"), "{stderr}");
    let answers = std::fs::read_to_string(dir.join("answers.jsonl")).expect("answers");
    let answers: Vec<serde_json::Value> = answers.lines().map(|l| serde_json::from_str(l).expect("JSON")).collect();
    assert_eq!(answers.len(), 501);
    for (n, answer) in answers.iter().take(500).enumerate() {
        assert_eq!(answer["body"]["n"], 2 * n as i64, "in input order");
    }
    let errors = std::fs::read_to_string(dir.join("errors.jsonl")).expect("errors");
    let failure: serde_json::Value = serde_json::from_str(errors.trim()).expect("one failure");
    assert_eq!((failure["line"].clone(), failure["status"].clone()), (serde_json::json!(501), serde_json::json!(422)));
}

/// The README's trigger example, as a user runs it: `graphc serve` consumes a record that
/// `redis-cli XADD` wrote and keeps the answer in the answers stream, while serving HTTP. The
/// server's standard error is closed once it listens (`..` drops the reader), as when a log
/// collector goes away: logging must not stop it.
#[test]
fn a_served_graph_answers_records_of_its_stream_trigger() {
    use std::io::{Read, Write};
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let mut redis = KillOnDrop(
        Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (the README's test command installs it)"),
    );
    let redis_url = format!("redis://127.0.0.1:{port}");
    let client = redis::Client::open(redis_url.as_str()).expect("a client");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut connection = loop {
        match client.get_connection() {
            Ok(connection) => break connection,
            Err(_) if std::time::Instant::now() < deadline => std::thread::sleep(std::time::Duration::from_millis(20)),
            Err(error) => panic!("redis-server did not start: {error}"),
        }
    };
    let Served { child: mut server, addr, .. } =
        serve("orders", &["examples/triggers/orders.graph", "--port", "0", "--debug", "--redis", &redis_url]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let _: String = redis::cmd("XADD")
        .arg("incoming-orders")
        .arg("*")
        .arg("order")
        .arg("7")
        .arg("amount")
        .arg("250")
        .query(&mut connection)
        .expect("XADD");
    let answer = loop {
        let entries: redis::Value =
            redis::cmd("XRANGE").arg("order-scores").arg("-").arg("+").query(&mut connection).expect("XRANGE");
        if let redis::Value::Array(entries) = entries
            && let Some(redis::Value::Array(entry)) = entries.into_iter().next()
        {
            let fields: Vec<String> = redis::from_redis_value(entry[1].clone()).expect("fields");
            let body = fields.iter().position(|f| f == "body").map(|i| fields[i + 1].clone()).expect("a body");
            break body;
        }
        assert!(std::time::Instant::now() < deadline, "no answer in order-scores");
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&answer).expect("JSON"),
        serde_json::json!({"order": "7", "amount": "250", "desk": "eu-1", "via": "/"})
    );
    // Orders that have an `id` of their own (and a `headers` field that is not JSON): plain
    // field maps, their fields all the body's. Two with the same id are two events, both answered.
    for _ in 0..2 {
        let _: String = redis::cmd("XADD")
            .arg("incoming-orders")
            .arg("*")
            .arg("id")
            .arg("42")
            .arg("headers")
            .arg("not json")
            .arg("order")
            .arg("9")
            .query(&mut connection)
            .expect("XADD");
    }
    let answers = loop {
        let entries: Vec<(String, std::collections::HashMap<String, String>)> =
            redis::cmd("XRANGE").arg("order-scores").arg("-").arg("+").query(&mut connection).expect("XRANGE");
        if entries.len() >= 3 {
            break entries;
        }
        assert!(std::time::Instant::now() < deadline, "{} answers in order-scores", entries.len());
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    for (_, fields) in &answers[1..] {
        let body: serde_json::Value = serde_json::from_str(&fields["body"]).expect("JSON");
        assert_eq!(body["order"], "9", "{body}");
        assert_ne!(fields["id"], "42", "the event's id is its own, not the order's");
    }
    assert_ne!(answers[1].1["id"], answers[2].1["id"], "two records, two events");
    // Every record was acknowledged, and HTTP is served by the same process.
    loop {
        let pending: redis::Value =
            redis::cmd("XPENDING").arg("incoming-orders").arg("orders").query(&mut connection).expect("XPENDING");
        if matches!(&pending, redis::Value::Array(items) if items.first() == Some(&redis::Value::Int(0))) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still pending: {pending:?}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let mut stream = std::net::TcpStream::connect(&addr).expect("connects");
    let body = r#"{"order":"8","amount":"1"}"#;
    write!(stream, "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len()).expect("sends");
    let mut http = String::new();
    stream.read_to_string(&mut http).expect("answer");
    assert!(http.starts_with("HTTP/1.1 200") && http.contains(r#""order":"8""#), "{http}");
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    assert!(server.wait().expect("exits").success(), "a graceful stop exits 0");
    let _ = redis.kill();
    let _ = redis.wait();
}

#[test]
fn fmt_check_prints_a_diff_and_exits_1_then_fmt_rewrites_the_file() {
    let dir = std::env::temp_dir().join(format!("graphc-fmt-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("nested")).expect("temp dir");
    let loose = "graph g {   step a=map(body){respond;} // kept\n}\n";
    let file = dir.join("nested/loose.graph");
    std::fs::write(&file, loose).expect("write");
    let folder = dir.display().to_string();

    let check = graphc(&["fmt", "--check", &folder]);
    let diff = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{diff}");
    assert!(diff.contains("-graph g {   step a=map(body){respond;} // kept"), "{diff}");
    assert!(diff.contains("+    step a = map(body) { respond; } // kept"), "{diff}");
    assert_eq!(std::fs::read_to_string(&file).expect("read"), loose, "--check changes nothing");

    let rewrite = graphc(&["fmt", &folder]);
    assert_eq!(rewrite.status.code(), Some(0), "{}", String::from_utf8_lossy(&rewrite.stderr));
    let formatted = std::fs::read_to_string(&file).expect("read");
    assert_eq!(formatted, "graph g {\n    step a = map(body) { respond; } // kept\n}\n");
    assert_eq!(graphc(&["fmt", "--check", &folder]).status.code(), Some(0));

    // A file that does not parse is left alone, with its diagnostic.
    let broken = dir.join("broken.graph");
    std::fs::write(&broken, "graph g { step a = ; }").expect("write");
    let output = graphc(&["fmt", &broken.display().to_string()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("graphc::syntax"));
    assert_eq!(std::fs::read_to_string(&broken).expect("read"), "graph g { step a = ; }");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn fmt_reads_standard_input_for_editors() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_graphc"))
        .args(["fmt", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("graphc runs");
    std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), b"graph g{step a=map(body);}").expect("write");
    let output = child.wait_with_output().expect("graphc ends");
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&output.stdout), "graph g {\n    step a = map(body);\n}\n");
}

#[test]
fn the_examples_and_fixtures_pass_fmt_check() {
    let output = graphc(&["fmt", "--check", "examples", "tests/fixtures/pass", "tests/fixtures/run"]);
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stdout));
}

/// The Python of a virtual environment with tritonclient and kserve: `GRAPHC_CLIENTS_PYTHON` (scripts/test
/// makes one), else `target/clients-venv`, made here from PyPI when missing.
fn clients_python() -> PathBuf {
    venv_python(
        "GRAPHC_CLIENTS_PYTHON",
        "target/clients-venv",
        "import tritonclient.grpc, tritonclient.http, kserve",
        &["tritonclient[grpc,http]", "kserve"],
    )
}

/// A virtual environment's Python: the one `variable` names, else `folder`'s, made there from
/// PyPI with `packages` when `imports` fails in it.
fn venv_python(variable: &str, folder: &str, imports: &str, packages: &[&str]) -> PathBuf {
    if let Some(python) = std::env::var_os(variable) {
        return PathBuf::from(python);
    }
    let venv = workspace().join(folder);
    let python = venv.join("bin/python");
    let ready = || {
        Command::new(&python).args(["-c", imports]).stderr(Stdio::null()).status().is_ok_and(|status| status.success())
    };
    if !ready() {
        if !python.exists() {
            let made = Command::new("python3").args(["-m", "venv"]).arg(&venv).status().expect("python3 runs");
            assert!(made.success(), "python3 -m venv failed");
        }
        let installed =
            Command::new(&python).args(["-m", "pip", "install", "-q"]).args(packages).status().expect("pip runs");
        assert!(installed.success(), "pip install {packages:?} failed");
    }
    python
}

#[test]
fn tritonclient_and_kserve_speak_to_a_served_graph_over_rest_and_grpc() {
    let python = clients_python();
    let script = workspace().join("tests/clients/oip_clients.py");
    // The iris graph (smartcore) and a model type of the user's (examples/churn).
    for (graph, file, model, width) in
        [("iris", "examples/iris/iris.graph", "model1", "4"), ("churn", "examples/churn/churn.graph", "churn", "3")]
    {
        let Served { child: mut server, mut stderr, addr } =
            serve(graph, &[file, "--port", "0", "--grpc-port", "0", "--debug"]);
        let grpc = grpc_addr(&mut stderr, graph);
        for family in ["triton", "kserve"] {
            let output = Command::new(&python)
                .arg(&script)
                .args([family, &addr, &grpc, model, width, "0"])
                .output()
                .expect("runs");
            let stdout = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success() && stdout.trim_end().ends_with("checks"),
                "{graph}, {family}: {stdout}\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
        assert!(server.wait().expect("exits").success());
    }
}

/// A folder holding a copy of the graphc binary and, when `server` is given, a stand-in
/// `graphc-lsp` script beside it.
fn graphc_alone(name: &str, server: Option<&str>) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("graphc-lsp-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::copy(env!("CARGO_BIN_EXE_graphc"), dir.join("graphc")).expect("copy graphc");
    if let Some(script) = server {
        write_script(&dir.join("graphc-lsp"), script);
    }
    dir
}

fn write_script(path: &Path, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, script).expect("write the stand-in");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("make it executable");
}

/// Runs `program lsp` with `input` on its standard input.
fn lsp_through(program: &Path, env: &[(&str, &str)], input: &str) -> Output {
    use std::io::Write;
    let mut command = Command::new(program);
    command.arg("lsp").env_remove("GRAPHC_LSP").stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("graphc runs");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write");
    child.wait_with_output().expect("graphc exits")
}

/// Echoes its arguments' count and its input, and exits 3: what graphc hands over is visible.
const STAND_IN: &str = "#!/bin/sh\necho \"stand-in with $# arguments\"\n/bin/cat\nexit 3\n";

#[test]
fn graphc_lsp_hands_its_input_output_and_exit_status_to_the_server_beside_it() {
    let dir = graphc_alone("beside", Some(STAND_IN));
    let out = lsp_through(&dir.join("graphc"), &[("PATH", "")], "Content-Length: 2\r\n\r\n{}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "stand-in with 0 arguments\nContent-Length: 2\r\n\r\n{}");
    assert_eq!(out.status.code(), Some(3), "the server's status: {}", String::from_utf8_lossy(&out.stderr));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn graphc_lsp_runs_the_server_graphc_lsp_names() {
    let dir = graphc_alone("named", None);
    let other = dir.join("my-server");
    write_script(&other, STAND_IN);
    let named = other.display().to_string();
    let out = lsp_through(&dir.join("graphc"), &[("GRAPHC_LSP", &named)], "hello");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "stand-in with 0 arguments\nhello");
    assert_eq!(out.status.code(), Some(3));

    let missing = dir.join("no-such-server").display().to_string();
    let out = lsp_through(&dir.join("graphc"), &[("GRAPHC_LSP", &missing)], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot start the language server") && stderr.contains("no-such-server"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn graphc_lsp_without_a_server_says_how_to_install_it() {
    let dir = graphc_alone("missing", None);
    let out = lsp_through(&dir.join("graphc"), &[("PATH", "")], "");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    let install = format!("cargo install --path {}", workspace().join("lsp").display());
    assert!(stderr.contains("`graphc-lsp` is not installed") && stderr.contains(&install), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}

/// One streamed answer read off a raw connection: the status line and headers, then each
/// chunk of the chunked body with the wall-clock time (ms since the epoch) it arrived.
fn read_streamed(addr: &str, accept: &str, body: &str) -> (String, Vec<(u64, String)>) {
    use std::io::{BufRead, Read, Write};
    let now_ms =
        || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    write!(
        stream,
        "POST / HTTP/1.1\r\nhost: x\r\naccept: {accept}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("sends");
    let mut reader = std::io::BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("reads the head");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line);
    }
    let mut chunks = Vec::new();
    if !head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        let mut rest = String::new();
        reader.read_to_string(&mut rest).expect("reads the body");
        chunks.push((now_ms(), rest));
        return (head, chunks);
    }
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).expect("reads a chunk's size");
        let size = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if size == 0 {
            break;
        }
        let mut data = vec![0; size + 2];
        reader.read_exact(&mut data).expect("reads a chunk");
        chunks.push((now_ms(), String::from_utf8_lossy(&data[..size]).into_owned()));
    }
    (head, chunks)
}

#[test]
fn the_streaming_example_passes_its_tests_and_serves_each_word_as_it_is_produced() {
    let tested = graphc(&["test", "examples/streaming/streaming.graph"]);
    let stdout = String::from_utf8_lossy(&tested.stdout);
    assert_eq!(tested.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&tested.stderr));
    assert!(stdout.ends_with("4 passed, 0 failed\n"), "{stdout}");

    let served = serve("chat", &["examples/streaming/streaming.graph", "--port", "0", "--debug"]);
    let addr = served.addr.clone();
    // Sixteen callers at once, JSON lines and events, some with a prompt that is refused: each
    // gets its own words, in order, or its own error.
    let callers: Vec<_> = (0..16usize)
        .map(|caller| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let words = 1 + caller % 6;
                let subject = format!("topic{caller}");
                let accept = if caller % 2 == 0 { "application/json" } else { "text/event-stream" };
                if caller % 5 == 4 {
                    let (head, body) = read_streamed(&addr, accept, r#"{"prompt": " ", "max_tokens": 3}"#);
                    assert!(head.starts_with("HTTP/1.1 422"), "{head}");
                    assert!(body[0].1.contains("`prompt` must be a non-empty string"), "{body:?}");
                    return;
                }
                let request = format!(r#"{{"prompt": "about {subject}", "max_tokens": {words}}}"#);
                let (head, chunks) = read_streamed(&addr, accept, &request);
                assert!(head.starts_with("HTTP/1.1 200"), "{head}");
                let texts: Vec<String> = chunks.iter().map(|(_, text)| text.clone()).collect();
                let values: Vec<serde_json::Value> = texts
                    .iter()
                    .map(|text| {
                        let json = if caller % 2 == 0 {
                            text.trim_end()
                        } else {
                            text.trim_start_matches("data: ").trim_end()
                        };
                        serde_json::from_str(json).unwrap_or_else(|_| panic!("not a chunk: {text:?}"))
                    })
                    .collect();
                let mut expected: Vec<String> =
                    format!("Topic{caller} are steps wired into a").split_whitespace().map(str::to_string).collect();
                expected.truncate(words);
                let tokens: Vec<&str> = values.iter().map(|value| value["token"].as_str().unwrap_or("?")).collect();
                assert_eq!(tokens, expected, "caller {caller}");
                // The first word reached this caller before the last was produced.
                let first_arrived = chunks[0].0;
                let last_produced = values.last().and_then(|value| value["produced_ms"].as_u64()).unwrap_or(0);
                if words > 1 {
                    assert!(first_arrived <= last_produced, "caller {caller}: {first_arrived} > {last_produced}");
                }
            })
        })
        .collect();
    for caller in callers {
        caller.join().expect("each caller's answer is right");
    }
}

/// The Python of a virtual environment with scikit-learn, skl2onnx, onnxruntime, onnxmltools and
/// XGBoost: `GRAPHC_ONNX_PYTHON` (scripts/test makes one), else `target/onnx-venv`, made here
/// from PyPI when missing.
fn onnx_python() -> PathBuf {
    venv_python(
        "GRAPHC_ONNX_PYTHON",
        "target/onnx-venv",
        "import sklearn, skl2onnx, onnxruntime, onnxmltools, xgboost",
        &["scikit-learn", "skl2onnx", "onnxruntime", "onnx", "onnxmltools", "xgboost-cpu"],
    )
}

/// One request on its own connection: the status and the JSON answer.
fn exchange(addr: &str, method: &str, path: &str, body: &str) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("sends");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("answer");
    let status = answer.get(9..12).and_then(|code| code.parse().ok()).unwrap_or(0);
    let (_, json) = answer.split_once("\r\n\r\n").unwrap_or_default();
    (status, serde_json::from_str(json).unwrap_or_else(|_| panic!("not JSON: {answer}")))
}

/// The models trained afresh in Python, exported to ONNX and served by `graphc serve` from the
/// example's graph, answer 64 concurrent callers (rows and OIP tensors, one row to twenty, some
/// refused) as onnxruntime answers the same files: every row's class equal, every probability
/// within 1e-5.
#[test]
fn models_exported_from_python_answer_as_onnxruntime_does_under_concurrent_callers() {
    let dir = workspace().join("target/graphc-onnx");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a folder");
    let made = Command::new(onnx_python())
        .arg(workspace().join("examples/onnx/make_models.py"))
        .arg(dir.join("models"))
        .status()
        .expect("python runs");
    assert!(made.success(), "make_models.py failed");
    std::fs::copy(workspace().join("examples/onnx/onnx.graph"), dir.join("onnx.graph")).expect("copies the graph");
    let graph = "target/graphc-onnx/onnx.graph";
    let checked = graphc(&["check", graph]);
    assert_eq!(checked.status.code(), Some(0), "{}", String::from_utf8_lossy(&checked.stderr));
    let reference: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("models/reference.json")).expect("reference")).expect("JSON");
    let reference = std::sync::Arc::new(reference);

    // The example's own test blocks, and its ensemble of shared ONNX models.
    for (example, passed) in [(graph, "5 passed, 0 failed\n"), ("examples/onnx/ensemble.graph", "2 passed, 0 failed\n")]
    {
        let tested = graphc(&["test", example]);
        let stdout = String::from_utf8_lossy(&tested.stdout);
        assert_eq!(tested.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&tested.stderr));
        assert!(stdout.ends_with(passed), "{example}: {stdout}");
    }

    // The debug build the test blocks ran on: tract in release took minutes of the suite.
    let served = serve("onnx_iris", &[graph, "--port", "0", "--debug"]);
    let (status, metadata) = exchange(&served.addr, "GET", "/v2/models/logistic", "");
    assert_eq!(status, 200, "{metadata}");
    assert_eq!(metadata["inputs"], serde_json::json!([{"name": "features", "datatype": "FP32", "shape": [-1, 4]}]));
    assert_eq!(
        metadata["outputs"][1],
        serde_json::json!({"name": "output_probability", "datatype": "FP32", "shape": [-1, 3]})
    );

    const MODELS: [&str; 5] = ["logistic", "forest", "boosting", "xgboost", "mlp"];
    let callers: Vec<_> = (0..64usize)
        .map(|caller| {
            let (addr, reference) = (served.addr.clone(), reference.clone());
            std::thread::spawn(move || {
                let model = MODELS[caller % MODELS.len()];
                let path = format!("/v2/models/{model}/infer");
                let rows: Vec<Vec<f64>> = serde_json::from_value(reference["rows"].clone()).expect("rows");
                let (first, count) = ((caller * 7) % 130, 1 + caller % 20);
                let picked = &rows[first..first + count];
                let tensor = caller % 2 == 1;
                if caller % 9 == 8 {
                    // Refused, naming what the model takes: a row too short, or a tensor misnamed.
                    let body = if tensor {
                        serde_json::json!({"inputs": [{"name": "pixels", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]})
                    } else {
                        serde_json::json!({"inputs": [[1.0, 2.0, 3.0]]})
                    };
                    let (status, answer) = exchange(&addr, "POST", &path, &body.to_string());
                    assert_eq!(status, 422, "caller {caller}: {answer}");
                    let error = answer["error"].as_str().unwrap_or_default();
                    assert!(error.contains("features"), "caller {caller}: {error}");
                    return;
                }
                let body = if tensor {
                    let data: Vec<f64> = picked.concat();
                    serde_json::json!({"inputs": [{"name": "features", "shape": [count, 4], "datatype": "FP32", "data": data}]})
                } else {
                    serde_json::json!({"inputs": picked})
                };
                let (status, answer) = exchange(&addr, "POST", &path, &body.to_string());
                assert_eq!(status, 200, "caller {caller}: {answer}");
                // Each row's label and probabilities, from either form of answer.
                let answered: Vec<(i64, Vec<f64>)> = if tensor {
                    let outputs = answer["outputs"].as_array().expect("tensors");
                    assert_eq!(outputs.len(), 2, "caller {caller}: {answer}");
                    assert_eq!(outputs[1]["shape"], serde_json::json!([count, 3]), "caller {caller}");
                    let labels = outputs[0]["data"].as_array().expect("labels");
                    let probabilities = outputs[1]["data"].as_array().expect("probabilities");
                    (0..count)
                        .map(|row| {
                            let p = &probabilities[row * 3..row * 3 + 3];
                            (labels[row].as_i64().unwrap_or(-1), p.iter().filter_map(|v| v.as_f64()).collect())
                        })
                        .collect()
                } else {
                    answer["outputs"]
                        .as_array()
                        .expect("rows")
                        .iter()
                        .map(|row| {
                            let fields: Vec<&serde_json::Value> = row.as_object().expect("an object").values().collect();
                            let p = fields[1].as_array().expect("probabilities");
                            (fields[0].as_i64().unwrap_or(-1), p.iter().filter_map(|v| v.as_f64()).collect())
                        })
                        .collect()
                };
                assert_eq!(answered.len(), count, "caller {caller}: {answer}");
                let expected = &reference["models"][model];
                for (offset, (label, probabilities)) in answered.iter().enumerate() {
                    let row = first + offset;
                    assert_eq!(Some(*label), expected["label"][row].as_i64(), "caller {caller} {model} row {row}");
                    let want: Vec<f64> =
                        expected["probabilities"][row].as_array().expect("row").iter().filter_map(|v| v.as_f64()).collect();
                    assert_eq!(probabilities.len(), want.len(), "caller {caller} {model} row {row}");
                    for (got, want) in probabilities.iter().zip(&want) {
                        assert!((got - want).abs() <= 1e-5, "caller {caller} {model} row {row}: {got} vs onnxruntime's {want}");
                    }
                }
            })
        })
        .collect();
    // The health probe answers while the callers keep the models busy.
    let probe = {
        let addr = served.addr.clone();
        std::thread::spawn(move || {
            for _ in 0..20 {
                let (status, ready) = exchange(&addr, "GET", "/v2/health/ready", "");
                assert_eq!((status, &ready), (200, &serde_json::json!({"ready": true})));
            }
        })
    };
    for caller in callers {
        caller.join().expect("each caller's answer is onnxruntime's");
    }
    probe.join().expect("the probe answers ready throughout");
}

#[test]
fn graphc_deploy_hands_its_arguments_to_the_writer_graphc_deploy_names() {
    let dir = graphc_alone("deploy", None);
    let writer = dir.join("my-deploy");
    write_script(&writer, "#!/bin/sh\necho \"writer with $# arguments: $*\"\nexit 0\n");
    let output = Command::new(dir.join("graphc"))
        .args(["deploy", "shop.graph", "--out", "k8s", "--namespace", "shop"])
        .env("GRAPHC_DEPLOY", &writer)
        .output()
        .expect("graphc runs");
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "writer with 5 arguments: shop.graph --out k8s --namespace shop\n"
    );
    let missing = Command::new(dir.join("graphc"))
        .args(["deploy", "shop.graph"])
        .env_remove("GRAPHC_DEPLOY")
        .env("PATH", "")
        .output()
        .expect("graphc runs");
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`graphc-deploy` is not installed"), "{stderr}");
    let _ = std::fs::remove_dir_all(dir);
}
