//! The TextMate grammar (editors/vscode/syntaxes/graph.tmLanguage.json) against the examples and
//! fixtures: every character but spaces gets a scope, no region (string, comment) is left open at
//! the end of a file, and the main constructs get the scopes editors colour. A small TextMate
//! engine runs it: line by line, the earliest match wins, a region's end before its patterns on
//! a tie, back-references from a region's begin into its end, as vscode-textmate does.

use fancy_regex::Regex;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

struct Grammar {
    root: Vec<Value>,
    repository: Map<String, Value>,
    regexes: HashMap<String, Regex>,
}

/// A region being read: its end pattern (back-references filled in), its scope and its patterns.
struct Open {
    end: String,
    name: Option<String>,
    end_captures: Option<Value>,
    patterns: Vec<Value>,
}

enum Found {
    End,
    Rule(Value),
}

/// The earliest match so far: where it starts and ends, what matched, its groups.
type Best = (usize, usize, Found, Vec<Option<(usize, usize)>>);

impl Grammar {
    fn load() -> Grammar {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../editors/vscode/syntaxes/graph.tmLanguage.json");
        let grammar: Value = serde_json::from_str(&std::fs::read_to_string(path).expect("the grammar")).expect("JSON");
        assert_eq!(grammar["scopeName"], "source.graph");
        Grammar {
            root: grammar["patterns"].as_array().cloned().expect("patterns"),
            repository: grammar["repository"].as_object().cloned().expect("repository"),
            regexes: HashMap::new(),
        }
    }

    fn regex(&mut self, pattern: &str) -> Regex {
        self.regexes
            .entry(pattern.to_string())
            // Oniguruma's `$` is the end of a line, as `(?m)` makes it.
            .or_insert_with(|| Regex::new(&format!("(?m){pattern}")).unwrap_or_else(|e| panic!("{pattern}: {e}")))
            .clone()
    }

    /// The rules of `patterns`, includes expanded.
    fn rules(&self, patterns: &[Value], out: &mut Vec<Value>) {
        for pattern in patterns {
            match pattern["include"].as_str() {
                Some(include) => {
                    let name = include.strip_prefix('#').unwrap_or_else(|| panic!("only local includes: {include}"));
                    let rule = self.repository.get(name).unwrap_or_else(|| panic!("#{name} is not in the repository"));
                    if rule.get("match").is_none() && rule.get("begin").is_none() {
                        self.rules(rule["patterns"].as_array().expect("a pattern list"), out);
                    } else {
                        out.push(rule.clone());
                    }
                }
                None => out.push(pattern.clone()),
            }
        }
    }

    /// Each byte's scopes, and whether a region was still open at the end.
    fn scopes(&mut self, text: &str) -> (Vec<Vec<String>>, Vec<String>) {
        let mut scopes: Vec<Vec<String>> = Vec::with_capacity(text.len());
        let mut stack: Vec<Open> = Vec::new();
        for raw_line in text.split_inclusive('\n') {
            let line = if raw_line.ends_with('\n') { raw_line.to_string() } else { format!("{raw_line}\n") };
            let mut line_scopes: Vec<Vec<String>> = vec![Vec::new(); line.len()];
            let mut pos = 0;
            while pos < line.len() {
                let current: Vec<String> = stack.iter().filter_map(|o| o.name.clone()).collect();
                let patterns = stack.last().map_or_else(|| self.root.clone(), |o| o.patterns.clone());
                let mut rules = Vec::new();
                self.rules(&patterns, &mut rules);
                // The earliest match; the region's end wins a tie, then the first rule.
                let mut best: Option<Best> = None;
                let consider = |found: Found, regex: &Regex, best: &mut Option<Best>| {
                    if let Some(captures) = regex.captures_from_pos(&line, pos).expect("the regex runs") {
                        let whole = captures.get(0).expect("group 0");
                        let groups =
                            (0..captures.len()).map(|i| captures.get(i).map(|m| (m.start(), m.end()))).collect();
                        let better = match best {
                            Some((start, ..)) => whole.start() < *start,
                            None => true,
                        };
                        if better {
                            *best = Some((whole.start(), whole.end(), found, groups));
                        }
                    }
                };
                if let Some(open) = stack.last() {
                    let end = self.regex(&open.end.clone());
                    consider(Found::End, &end, &mut best);
                }
                for rule in rules {
                    let pattern =
                        rule.get("match").or_else(|| rule.get("begin")).and_then(Value::as_str).expect("a rule");
                    let regex = self.regex(pattern);
                    consider(Found::Rule(rule.clone()), &regex, &mut best);
                }
                let Some((start, end, found, groups)) = best else {
                    for slot in &mut line_scopes[pos..] {
                        slot.extend(current.iter().cloned());
                    }
                    break;
                };
                for slot in &mut line_scopes[pos..start] {
                    slot.extend(current.iter().cloned());
                }
                let captures_into = |captures: Option<&Value>, line_scopes: &mut [Vec<String>]| {
                    let Some(captures) = captures.and_then(Value::as_object) else { return };
                    for (index, capture) in captures {
                        let index: usize = index.parse().expect("a capture number");
                        if let (Some(Some(range)), Some(name)) = (groups.get(index), capture["name"].as_str()) {
                            mark(line_scopes, *range, name);
                        }
                    }
                };
                for slot in &mut line_scopes[start..end] {
                    slot.extend(current.iter().cloned());
                }
                match found {
                    Found::End => {
                        let open = stack.pop().expect("an open region");
                        captures_into(open.end_captures.as_ref(), &mut line_scopes);
                    }
                    Found::Rule(rule) => {
                        if let Some(name) = rule["name"].as_str() {
                            mark(&mut line_scopes, (start, end), name);
                        }
                        if rule.get("begin").is_some() {
                            captures_into(rule.get("beginCaptures"), &mut line_scopes);
                            // Back-references in the end pattern take the begin's text.
                            let mut end_pattern = rule["end"].as_str().expect("a region's end").to_string();
                            for (index, group) in groups.iter().enumerate().skip(1) {
                                let text = group.map_or("", |(s, e)| &line[s..e]);
                                end_pattern = end_pattern.replace(&format!("\\{index}"), &fancy_regex::escape(text));
                            }
                            stack.push(Open {
                                end: end_pattern,
                                name: rule["name"].as_str().map(str::to_string),
                                end_captures: rule.get("endCaptures").cloned(),
                                patterns: rule["patterns"].as_array().cloned().unwrap_or_default(),
                            });
                        } else {
                            captures_into(rule.get("captures"), &mut line_scopes);
                        }
                    }
                }
                // An empty match must not stop the reader.
                pos = if end > pos { end } else { pos + line[pos..].chars().next().map_or(1, char::len_utf8) };
            }
            line_scopes.truncate(raw_line.len());
            scopes.extend(line_scopes);
        }
        (scopes, stack.into_iter().filter_map(|o| o.name).collect())
    }
}

/// Adds `name` to the scopes of the bytes in `range`.
fn mark(line_scopes: &mut [Vec<String>], range: (usize, usize), name: &str) {
    for slot in &mut line_scopes[range.0..range.1] {
        slot.push(name.to_string());
    }
}

fn files() -> Vec<PathBuf> {
    fn walk(folder: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(folder).expect("a folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "graph") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut out = Vec::new();
    for folder in ["examples", "tests/fixtures/pass", "tests/fixtures/run"] {
        walk(&root.join(folder), &mut out);
    }
    out.sort();
    out
}

#[test]
fn every_token_of_every_example_is_scoped_and_no_region_is_left_open() {
    let mut grammar = Grammar::load();
    let files = files();
    assert!(files.len() > 30);
    for path in files {
        let text = std::fs::read_to_string(&path).expect("the file");
        let (scopes, open) = grammar.scopes(&text);
        assert!(open.is_empty(), "{}: left open at the end: {open:?}", path.display());
        for (offset, c) in text.char_indices() {
            if !c.is_whitespace() && scopes[offset].is_empty() {
                let line = text[..offset].matches('\n').count() + 1;
                panic!("{}:{line}: `{c}` has no scope", path.display());
            }
        }
    }
}

#[test]
fn the_main_constructs_get_the_scopes_editors_colour() {
    let mut grammar = Grammar::load();
    let text = "graph g { // note\n    step enrich = map({ x: 1.5, s: \"a\\n\", r: r#\"raw \"quoted\"\"# }) { respond; } /* a /* nested */ comment */\n    router r = model { route m:v2 = model(kind = knn_classifier); }\n    enrich -> r;\n    test t { request POST \"/\"; expect status == 200 && true; }\n}\n";
    let (scopes, open) = grammar.scopes(text);
    assert!(open.is_empty(), "{open:?}");
    let scope_of = |needle: &str| -> Vec<String> {
        let offset = text.find(needle).unwrap_or_else(|| panic!("{needle}"));
        scopes[offset].clone()
    };
    let expect = |needle: &str, scope: &str| {
        let found = scope_of(needle);
        assert!(found.iter().any(|s| s.starts_with(scope)), "`{needle}`: {found:?}, expected {scope}");
    };
    expect("graph", "storage.type");
    expect("step", "storage.type");
    expect("enrich =", "entity.name.function");
    expect("map(", "support.function");
    expect("1.5", "constant.numeric");
    expect("\"a", "string.quoted.double");
    expect("\\n", "constant.character.escape");
    expect("r#\"", "string.quoted.raw");
    expect("quoted", "string.quoted.raw");
    expect("// note", "comment.line");
    expect("nested", "comment.block");
    expect("comment */", "comment.block");
    expect("respond", "variable.other");
    expect("v2", "constant.other.version");
    expect("->", "keyword.operator.arrow");
    expect("POST", "constant.other.http-method");
    expect("request", "keyword.control");
    expect("true", "constant.language");
    expect("==", "keyword.operator.comparison");
}
