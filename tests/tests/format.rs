//! `graphc fmt` keeps meaning and comments: every example and fixture is formatted (the corpus is
//! kept in the canonical layout), formatting is idempotent, the formatted text means the same
//! graph (same IR, spans aside), and no comment is lost; over the corpus, every fail fixture that
//! parses, and random graphs of every construct laid out in many ways.

use graphc_tests::random::{self, Limits};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

fn graph_files(folder: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap_or_else(|e| panic!("{}: {e}", folder.display()))
        .map(|entry| entry.expect("a folder entry").path())
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            graph_files(&entry, out);
        } else if entry.extension().is_some_and(|e| e == "graph") {
            out.push(entry);
        }
    }
}

fn corpus(folders: &[&str]) -> Vec<(PathBuf, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    for folder in folders {
        graph_files(&root.join(folder), &mut files);
    }
    assert!(!files.is_empty());
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, text)
        })
        .collect()
}

fn format(name: &str, text: &str) -> String {
    graphc::format::format_source(text).unwrap_or_else(|d| panic!("{name} does not parse: {d:?}"))
}

/// A Debug print with every span (`start..end`) blanked: the tree or IR, wherever it was written.
fn without_spans(debug: String) -> String {
    let mut out = String::with_capacity(debug.len());
    let mut chars = debug.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            let mut number = c.to_string();
            while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                number.push(d);
                chars.next();
            }
            // `12..34` is a span; keep other numbers.
            let rest: String = chars.clone().take(2).collect();
            if rest == ".." && chars.clone().nth(2).is_some_and(|c| c.is_ascii_digit()) {
                chars.next();
                chars.next();
                while chars.peek().is_some_and(char::is_ascii_digit) {
                    chars.next();
                }
                out.push_str("<span>");
            } else {
                out.push_str(&number);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn comments(text: &str) -> Vec<String> {
    graphc::format::comments(text).into_iter().map(|span| text[span.range()].trim_end().to_string()).collect()
}

/// The formatted text parses to the same tree and checks to the same graph, with the same comments.
fn assert_same_meaning(name: &str, text: &str, formatted: &str) {
    let before = graphc::syntax::parse(text).unwrap_or_else(|d| panic!("{name}: {d:?}"));
    let after = graphc::syntax::parse(formatted).unwrap_or_else(|d| panic!("{name} formatted: {d:?}\n{formatted}"));
    assert_eq!(without_spans(format!("{after:#?}")), without_spans(format!("{before:#?}")), "{name}: the tree changed");
    let checked = |text: &str| match graphc::check_source(text) {
        Ok(checked) => without_spans(format!("{:#?}", checked.graph)),
        Err(diagnostics) => diagnostics.iter().map(|d| format!("{}: {}\n", d.code, d.message)).collect(),
    };
    assert_eq!(checked(formatted), checked(text), "{name}: the checked graph changed");
    assert_eq!(comments(formatted), comments(text), "{name}: comments changed\n{formatted}");
    assert_eq!(format(name, formatted), formatted, "{name}: formatting is not idempotent");
}

#[test]
fn the_examples_and_fixtures_are_formatted() {
    let mut unformatted = Vec::new();
    for (path, text) in corpus(&["examples", "tests/fixtures/pass", "tests/fixtures/run"]) {
        let name = path.display().to_string();
        let formatted = format(&name, &text);
        assert_same_meaning(&name, &text, &formatted);
        if formatted != text {
            unformatted.push(name);
        }
    }
    assert!(
        unformatted.is_empty(),
        "run `cargo run -p graphc -- fmt examples tests/fixtures/pass tests/fixtures/run`: {unformatted:?}"
    );
}

/// The fail fixtures are kept as written (their diagnostics point at lines and columns), but
/// they are the widest variety of layouts: each that parses formats to the same tree.
#[test]
fn formatting_a_fail_fixture_keeps_its_tree_and_its_diagnostics() {
    let mut formatted_count = 0;
    for (path, text) in corpus(&["tests/fixtures/fail"]) {
        let name = path.display().to_string();
        let Ok(formatted) = graphc::format::format_source(&text) else { continue };
        assert_same_meaning(&name, &text, &formatted);
        formatted_count += 1;
    }
    assert!(formatted_count > 100, "most fail fixtures parse: {formatted_count}");
}

/// The same graph written on one line, with every space doubled, or with comments between the
/// items, formats to one text.
fn relaid(text: &str, seed: u64) -> String {
    let mut out = String::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        match (seed + index as u64) % 4 {
            // Comments end at the line's end: such a line keeps its newline.
            _ if line.contains("//") => {
                out.push_str(line);
                out.push('\n');
            }
            0 => {
                out.push_str(line);
                out.push(' ');
            }
            1 => {
                out.push_str(&line.replace(' ', "  "));
                out.push('\n');
            }
            2 => {
                out.push_str("\n\n\t");
                out.push_str(line);
                out.push('\n');
            }
            _ => {
                out.push_str(line);
                out.push_str(" /* kept */\n");
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, .. ProptestConfig::default() })]

    #[test]
    fn a_random_graph_formats_to_the_same_graph(seed in any::<u64>(), size in 1usize..14) {
        let text = random::graph("random", seed, Limits { remote: true, ..Limits::new(size) });
        let formatted = format("random", &text);
        assert_same_meaning("random", &text, &formatted);
        // However it is laid out, it formats to one text (comments and kept blank lines aside).
        let relaid = relaid(&text, seed);
        let formatted_again = format("relaid", &relaid);
        assert_same_meaning("relaid", &relaid, &formatted_again);
        let strip = |t: &str| {
            t.lines()
                .filter(|l| !l.trim().is_empty() && !l.trim().starts_with("/*") && !l.trim().starts_with("//"))
                .map(|l| l.replace(" /* kept */", ""))
                .collect::<Vec<_>>()
                .join("\n")
        };
        prop_assert_eq!(strip(&formatted_again), strip(&formatted));
    }
}
