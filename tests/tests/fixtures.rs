//! The fixture corpus: pass fixtures check clean, fail fixtures report exactly their one error at
//! the right place, and both mean the same as text and as Rust tokens (the `graph!` path).

use graphc::report::{self, Style};
use graphc::source::LineIndex;
use graphc::{Diagnostic, Level};
use std::path::Path;
use std::str::FromStr;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Every label lies inside the text, on character boundaries.
fn assert_spans_in_bounds(text: &str, diagnostics: &[Diagnostic]) {
    for diagnostic in diagnostics {
        for label in &diagnostic.labels {
            assert!(label.span.start <= label.span.end, "{}: reversed span {:?}", diagnostic.message, label.span);
            assert!(label.span.end_byte() <= text.len(), "{}: span {:?} past the end", diagnostic.message, label.span);
            assert!(text.is_char_boundary(label.span.start_byte()) && text.is_char_boundary(label.span.end_byte()));
        }
    }
}

#[test]
fn pass_fixtures_check_and_draw() {
    insta::glob!(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures"), "pass/*.graph", |path| {
        let text = read(path);
        let checked = graphc::check_source(&text).unwrap_or_else(|diagnostics| {
            panic!(
                "{} should pass:\n{}",
                path.display(),
                report::render_human(&file_name(path), &text, &diagnostics, Style::PLAIN)
            )
        });
        assert_spans_in_bounds(&text, &checked.warnings);
        let warnings = report::render_human(&file_name(path), &text, &checked.warnings, Style::PLAIN);
        insta::assert_snapshot!(format!(
            "--- WARNINGS\n{warnings}\n--- DOT\n{}",
            graphc::render::to_dot(&checked.graph)
        ));
    });
}

#[test]
fn fail_fixtures_report_one_error_each() {
    insta::glob!(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures"), "fail/*.graph", |path| {
        let text = read(path);
        // A graph that checks may still fail on what it names beside it (its model files), as
        // `graphc check` finds.
        let diagnostics = match graphc::check_source(&text) {
            Ok(checked) => {
                // Relative to the crate (the tests' working directory): no machine's path in a snapshot.
                let relative = path.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap_or(path);
                graphc::surroundings::check(relative, &checked.graph, None).diagnostics
            }
            Err(diagnostics) => diagnostics,
        };
        assert!(!diagnostics.is_empty(), "{} should fail", path.display());
        assert_spans_in_bounds(&text, &diagnostics);
        // One mistake, one report: follow-on errors and warnings are suppressed.
        assert_eq!(diagnostics.len(), 1, "{}: one mistake, one report: {diagnostics:#?}", path.display());
        assert_eq!(diagnostics[0].level, Level::Error);
        assert!(diagnostics[0].help.is_some(), "{}: every error says how to fix it", path.display());
        insta::assert_snapshot!(report::render_human(&file_name(path), &text, &diagnostics, Style::PLAIN));
    });
}

/// Spans printed as line:column, so that trees from the file and from rebuilt token text (where
/// comments are gone and offsets shift) can be compared.
fn positions(debug: &str, text: &str) -> String {
    let lines = LineIndex::new(text);
    let mut out = String::with_capacity(debug.len());
    let mut rest = debug;
    while let Some(dots) = rest.find("..") {
        let before = &rest[..dots];
        let digits_start = before.rfind(|c: char| !c.is_ascii_digit()).map_or(0, |i| i + 1);
        let after = &rest[dots + 2..];
        let digits_end = after.find(|c: char| !c.is_ascii_digit()).unwrap_or(after.len());
        match (before[digits_start..].parse::<usize>(), after[..digits_end].parse::<usize>()) {
            (Ok(start), Ok(end)) => {
                out.push_str(&before[..digits_start]);
                let (sl, sc) = lines.line_column(start);
                let (el, ec) = lines.line_column(end);
                out.push_str(&format!("{sl}:{sc}-{el}:{ec}"));
                rest = &after[digits_end..];
            }
            _ => {
                out.push_str(&rest[..dots + 2]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn outcome(text: &str) -> String {
    match graphc::syntax::parse(text) {
        Ok(ast) => {
            let checked = graphc::check::check(&ast);
            let diagnostics = match &checked {
                Ok(c) => c.warnings.clone(),
                Err(d) => d.clone(),
            };
            positions(&format!("{ast:#?}\n{diagnostics:#?}"), text)
        }
        Err(diagnostics) => positions(&format!("{diagnostics:#?}"), text),
    }
}

#[test]
fn every_fixture_means_the_same_as_tokens() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut compared = 0;
    for kind in ["pass", "fail"] {
        for entry in std::fs::read_dir(root.join(kind)).expect("fixture folder") {
            let path = entry.expect("fixture entry").path();
            let text = read(&path);
            let Ok(tokens) = proc_macro2::TokenStream::from_str(&text) else {
                assert_eq!(kind, "fail", "{} does not lex as Rust tokens", path.display());
                continue;
            };
            let rebuilt = graphc::tokens::from_tokens(tokens);
            assert_eq!(
                outcome(&text),
                outcome(&rebuilt.text),
                "{} differs as tokens:\n{}",
                path.display(),
                rebuilt.text
            );
            compared += 1;
        }
    }
    assert!(compared >= 45, "only {compared} fixtures compared");
}

#[test]
fn tokens_without_positions_still_parse() {
    // Tokens made by other macros carry no line and column; they are then spaced out, and
    // joint punctuation (`->`, `::`, `==`) must stay whole.
    let text = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pass/flow_async_branches.graph"));
    let tokens = proc_macro2::TokenStream::from_str(&text).expect("lexes");
    let flat: proc_macro2::TokenStream = respan(tokens);
    let rebuilt = graphc::tokens::from_tokens(flat);
    assert!(!rebuilt.text.contains('\n'), "laid out on one line: {}", rebuilt.text);
    let reparsed = graphc::check_source(&rebuilt.text).expect("checks");
    let original = graphc::check_source(&text).expect("checks");
    assert_eq!(
        format!("{:?}", reparsed.graph.nodes.iter().map(|n| (&n.name, &n.children)).collect::<Vec<_>>()),
        format!("{:?}", original.graph.nodes.iter().map(|n| (&n.name, &n.children)).collect::<Vec<_>>())
    );
}

fn respan(tokens: proc_macro2::TokenStream) -> proc_macro2::TokenStream {
    use proc_macro2::{Group, Span, TokenTree};
    tokens
        .into_iter()
        .map(|tree| match tree {
            TokenTree::Group(group) => {
                let mut new = Group::new(group.delimiter(), respan(group.stream()));
                new.set_span(Span::call_site());
                TokenTree::Group(new)
            }
            mut other => {
                other.set_span(Span::call_site());
                other
            }
        })
        .collect()
}

#[test]
fn token_spans_map_back_to_the_users_tokens() {
    let text = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/fail/unknown_step_in_chain.graph"));
    let rebuilt = graphc::tokens::from_tokens(proc_macro2::TokenStream::from_str(&text).expect("lexes"));
    let diagnostics = graphc::check_source(&rebuilt.text).expect_err("fails");
    let (first, last) = rebuilt.token_spans(diagnostics[0].primary_span()).expect("a token");
    assert_eq!((first.start().line, first.start().column), (6, 4), "`enrch` starts at line 6, column 4");
    assert_eq!((last.end().line, last.end().column), (6, 9));
}

#[test]
fn pass_fixtures_generate_code() {
    insta::glob!(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures"), "pass/*.graph", |path| {
        let text = read(path);
        let options = graphc::codegen::CodegenOptions { span_of: None };
        // What checks must generate: a pass fixture that does not is a graphc bug.
        let generated = match graphc::compile(&text, &options) {
            Ok(compiled) => compiled.to_file(&file_name(path)).expect("generated code parses").text,
            Err(diagnostics) => panic!(
                "{} checks but does not generate:\n{}",
                path.display(),
                report::render_human(&file_name(path), &text, &diagnostics, Style::PLAIN)
            ),
        };
        insta::assert_snapshot!(generated);
    });
}

#[test]
fn generated_code_is_deterministic_and_free_of_machine_paths() {
    let text = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/run/iris_router.graph"));
    let generate = || {
        let compiled = graphc::compile(&text, &graphc::codegen::CodegenOptions { span_of: None }).expect("compiles");
        compiled.to_file("iris_router.graph").expect("parses").text
    };
    let first = generate();
    assert_eq!(first, generate());
    assert!(first.starts_with("// @generated by graphc from iris_router.graph. Do not edit."));
    assert!(!first.contains(env!("CARGO_MANIFEST_DIR")), "no machine paths");
}

#[test]
fn strings_from_the_dsl_cannot_inject_code() {
    let hostile = r#"graph g { topology = flow; engine = sync;
        step a = map({ "\"); panic!(\"": "\")); std::process::exit(1); (\"", x: "*/ } fn evil() { /*" });
        test t { request POST "/\"); std::process::exit(3); //" { headers = { "x-h": "\")); exit(\")" }; } expect body == "\"; }"; } }"#;
    let compiled = graphc::compile(hostile, &graphc::codegen::CodegenOptions { span_of: None }).expect("compiles");
    let code = compiled.to_file("hostile.graph").expect("still one valid module").text;
    let file: syn::File = syn::parse_str(&code).expect("parses");
    assert_eq!(file.items.len(), 1, "one module");
    // Every DSL string stays inside one string literal: outside literals, none of the hostile
    // words appear as code.
    fn words(tokens: proc_macro2::TokenStream, out: &mut Vec<String>) {
        for tree in tokens {
            match tree {
                proc_macro2::TokenTree::Group(group) => words(group.stream(), out),
                proc_macro2::TokenTree::Ident(ident) => out.push(ident.to_string()),
                _ => {}
            }
        }
    }
    let mut idents = Vec::new();
    words(code.parse().expect("lexes"), &mut idents);
    for word in ["evil", "exit", "panic"] {
        assert!(!idents.iter().any(|i| i == word), "`{word}` escaped into code:\n{code}");
    }
}
