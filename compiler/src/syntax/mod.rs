//! Parsing: the pest grammar, its errors as diagnostics, and the lowering of pairs to the AST.

pub mod ast;
mod lower;

use crate::diagnostic::{Code, Diagnostic};
use crate::source::Span;
use pest::Parser as _;

mod grammar {
    #![allow(missing_docs, reason = "the Rule enum is generated from graph.pest, where each rule is documented")]
    #[derive(pest_derive::Parser)]
    #[grammar = "syntax/graph.pest"]
    pub(crate) struct GraphParser;
}
use grammar::{GraphParser, Rule};

/// Parses one graph. A syntax error stops at the first one (pest does not recover); errors found
/// while lowering (bad literals) are all reported.
pub fn parse(text: &str) -> Result<ast::Graph, Vec<Diagnostic>> {
    check_nesting(text)?;
    let mut pairs = match GraphParser::parse(Rule::file, text) {
        Ok(pairs) => pairs,
        Err(error) => return Err(vec![syntax_error(text, &detailed(text).unwrap_or(error))]),
    };
    let file = pairs.next().ok_or_else(|| vec![Diagnostic::error(Code::Syntax, "empty input", Span::default(), "")])?;
    lower::lower_file(file)
}

/// How deeply brackets may nest. Real graphs stay far below it; the limit keeps the parser's
/// and checker's recursion from exhausting the stack on hostile input.
pub const MAX_NESTING: usize = 32;

/// Rejects bracket nesting beyond [`MAX_NESTING`], skipping strings and comments as Rust lexes them.
fn check_nesting(text: &str) -> Result<(), Vec<Diagnostic>> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'/' if bytes.get(at + 1) == Some(&b'/') => at = text[at..].find('\n').map_or(bytes.len(), |n| at + n),
            b'/' if bytes.get(at + 1) == Some(&b'*') => {
                at = text[at + 2..].find("*/").map_or(bytes.len(), |n| at + n + 4)
            }
            b'"' => {
                at += 1;
                while let Some(&c) = bytes.get(at) {
                    match c {
                        b'\\' => at += 2,
                        b'"' => break,
                        _ => at += 1,
                    }
                }
                at += 1;
            }
            b'r' if matches!(bytes.get(at + 1), Some(b'"' | b'#'))
                && !bytes.get(at.wrapping_sub(1)).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') =>
            {
                let hashes = bytes.get(at + 1..).unwrap_or_default().iter().take_while(|c| **c == b'#').count();
                let closing = format!("\"{}", "#".repeat(hashes));
                let body = at + 2 + hashes;
                at = text
                    .get(body..)
                    .and_then(|rest| rest.find(&closing))
                    .map_or(bytes.len(), |n| body + n + closing.len());
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    let span = Span::new(at, at + 1);
                    return Err(vec![
                        Diagnostic::error(
                            Code::Syntax,
                            format!("brackets nest more than {MAX_NESTING} levels deep"),
                            span,
                            "too deep here",
                        )
                        .with_help("flatten the expression, or compute it in a Rust step"),
                    ]);
                }
                at += 1;
            }
            b')' | b']' | b'}' => {
                depth = depth.saturating_sub(1);
                at += 1;
            }
            _ => at += 1,
        }
    }
    Ok(())
}

/// Parses again with pest's error detail on, which also records the literal tokens (`;`, `->`)
/// that would have been accepted. The switch is process-wide and is never turned off again, so
/// that concurrent parses always see it on once any has failed; valid input never pays for it
/// until then.
fn detailed(text: &str) -> Option<pest::error::Error<Rule>> {
    pest::set_error_detail(true);
    GraphParser::parse(Rule::file, text).err()
}

const OPERATORS: &[&str] =
    &["`||`", "`&&`", "`==`", "`!=`", "`<=`", "`>=`", "`<`", "`>`", "`+`", "`-`", "`*`", "`/`", "`%`", "`.`", "`[`"];

fn syntax_error(text: &str, error: &pest::error::Error<Rule>) -> Diagnostic {
    let at = match error.location {
        pest::error::InputLocation::Pos(pos) => pos,
        pest::error::InputLocation::Span((start, _)) => start,
    };
    let mut expected: Vec<String> = match &error.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            positives.iter().map(|rule| describe(*rule).to_string()).collect()
        }
        pest::error::ErrorVariant::CustomError { .. } => Vec::new(),
    };
    if let Some(attempts) = error.parse_attempts().filter(|attempts| attempts.max_position == at) {
        for token in attempts.expected_tokens() {
            let text = token.to_string();
            // pest does not export its token type; a character range displays as `a..z`.
            if text.chars().count() == 4 && text.get(1..3) == Some("..") {
                expected.push("a name".to_string());
            } else if !text.trim().is_empty() && !["//", "/*", "_"].contains(&text.as_str()) {
                expected.push(format!("`{text}`"));
            }
        }
    }
    expected.retain(|item| item != "more input");
    expected.sort_unstable();
    expected.dedup();
    if expected.iter().filter(|item| OPERATORS.contains(&item.as_str())).count() >= 3 {
        expected.retain(|item| !OPERATORS.contains(&item.as_str()));
        expected.push("an operator".to_string());
    }
    let found = found_token(text, at);
    let span = Span::new(at, at + found.len());
    let label = if found.is_empty() { "input ends here".to_string() } else { format!("unexpected `{found}`") };
    let message = if expected.is_empty() {
        "syntax error".to_string()
    } else {
        format!("syntax error: expected {}", one_of(&expected))
    };
    Diagnostic::error(Code::Syntax, message, span, label)
        .with_help("see docs/language.md for the grammar of every declaration")
}

/// The token at `at`, for the label: a word, or one character.
fn found_token(text: &str, at: usize) -> &str {
    let rest = text.get(at..).unwrap_or("");
    let word_len = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
    if word_len > 0 {
        return &rest[..word_len];
    }
    rest.char_indices().nth(1).map_or(rest, |(end, _)| &rest[..end])
}

fn one_of(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

/// Readable names for the rules pest says it expected.
fn describe(rule: Rule) -> &'static str {
    match rule {
        Rule::EOI => "end of input",
        Rule::graph | Rule::kw_graph => "`graph`",
        Rule::ident | Rule::name => "a name",
        Rule::rust_path => "a Rust path",
        Rule::path_sep => "`::`",
        Rule::kw_param => "`param`",
        Rule::kw_secret => "`secret`",
        Rule::kw_function => "`function`",
        Rule::kw_record => "`record`",
        Rule::kw_step => "`step`",
        Rule::kw_router => "`router`",
        Rule::kw_route => "`route`",
        Rule::kw_queue => "`queue`",
        Rule::kw_test => "`test`",
        Rule::kw_request => "`request`",
        Rule::kw_expect => "`expect`",
        Rule::kw_choice => "`choice`",
        Rule::kw_custom => "`custom`",
        Rule::kw_fn => "`fn`",
        Rule::kw_new => "`new`",
        Rule::param_decl | Rule::secret_decl | Rule::function_decl | Rule::record_decl | Rule::step_decl => {
            "a declaration"
        }
        Rule::router_decl | Rule::queue_decl | Rule::test_decl => "a declaration",
        Rule::setting | Rule::router_option | Rule::option => "an option",
        Rule::wiring => "a wiring statement (`a -> b;`)",
        Rule::route_decl => "`route`",
        Rule::type_expr | Rule::named_type | Rule::array_type => "a type",
        Rule::optional => "`?`",
        Rule::signature => "`:`",
        Rule::step_impl | Rule::fn_impl | Rule::new_impl | Rule::remote_impl | Rule::choice_impl => {
            "a step implementation"
        }
        Rule::call => "a call",
        Rule::choice_arm => "a choice arm (`condition => step`)",
        Rule::router_kind | Rule::custom_router => "a router kind",
        Rule::wire_stage => "a step name or `[a, b]`",
        Rule::request => "`request`",
        Rule::expect => "`expect`",
        Rule::options => "`{`",
        Rule::option_value | Rule::expr => "an expression",
        Rule::star => "`*`",
        Rule::args | Rule::arg => "an argument",
        Rule::neg | Rule::sub => "`-`",
        Rule::not => "`!`",
        Rule::or => "`||`",
        Rule::and => "`&&`",
        Rule::eq => "`==`",
        Rule::ne => "`!=`",
        Rule::le => "`<=`",
        Rule::ge => "`>=`",
        Rule::lt => "`<`",
        Rule::gt => "`>`",
        Rule::add => "`+`",
        Rule::mul => "`*`",
        Rule::div => "`/`",
        Rule::rem => "`%`",
        Rule::field => "`.`",
        Rule::index => "`[`",
        Rule::object | Rule::entry => "an object",
        Rule::array => "an array",
        Rule::null | Rule::boolean | Rule::float | Rule::int => "a literal",
        Rule::string | Rule::plain_string | Rule::raw_string => "a string",
        Rule::arrow => "`->`",
        Rule::fat_arrow => "`=>`",
        Rule::wildcard => "`_`",
        Rule::record_field => "a field",
        Rule::file | Rule::WHITESPACE | Rule::COMMENT | Rule::ident_char | Rule::digits | Rule::exponent => {
            "more input"
        }
        Rule::step_tail
        | Rule::item
        | Rule::router_item
        | Rule::prefix
        | Rule::infix
        | Rule::postfix
        | Rule::primary
        | Rule::literal => "more input",
        Rule::single_equals => "`=`",
    }
}
