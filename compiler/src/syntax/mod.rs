//! Parsing: the pest grammar, its errors as diagnostics, and the lowering of pairs to the AST.

pub mod ast;
pub mod lexer;
mod lower;

use crate::diagnostic::{Code, Diagnostic};
use crate::source::Span;
use lexer::{LexError, Token};
use pest::Parser as _;

mod grammar {
    #![allow(missing_docs, reason = "the Rule enum is generated from graph.pest, where each rule is documented")]
    #[derive(pest_derive::Parser)]
    #[grammar = "syntax/graph.pest"]
    pub(crate) struct GraphParser;
}
use grammar::{GraphParser, Rule};

/// Parses one graph. A syntax error stops at the first one (pest does not recover); errors found
/// while lowering (bad literals) are all reported. The graph is parsed item by item, each item
/// lowered before the next is parsed, so that memory follows the largest item, not the file;
/// on a syntax error the whole file is parsed again for pest's error at the right place.
pub fn parse(text: &str) -> Result<ast::Graph, Vec<Diagnostic>> {
    if text.len() > crate::source::MAX_SOURCE_BYTES {
        return Err(vec![
            Diagnostic::error(Code::Syntax, "the file is larger than 4 GiB", Span::default(), "this file")
                .with_help("split the graph into several files, one per function, joined by stream queues"),
        ]);
    }
    lex(text)?;
    let whole_file_error = || {
        let error = match GraphParser::parse(Rule::file, text) {
            Ok(_) => {
                return Diagnostic::error(
                    Code::Syntax,
                    "internal error: the file parses whole but not by items",
                    Span::default(),
                    "",
                )
                .with_help("this is a bug in graphc; please report it with this file");
            }
            Err(error) => error,
        };
        syntax_error(text, &detailed(text).unwrap_or(error))
    };
    let Some(head) = GraphParser::parse(Rule::graph_head, text).ok().and_then(|mut pairs| pairs.next()) else {
        return Err(vec![whole_file_error()]);
    };
    let mut at = head.as_span().end();
    let mut graph = lower::GraphLowerer::new(head)?;
    loop {
        // pest indexes the lines of the text it is given: each piece gets only a window that
        // holds it, so that reading the file stays linear.
        if text.as_bytes().get(skip_trivia(text, at)) == Some(&b'}') {
            let rest = text.get(at..).unwrap_or_default();
            let Ok(end) = GraphParser::parse(Rule::graph_end, rest) else { return Err(vec![whole_file_error()]) };
            let close = end.flatten().find(|pair| pair.as_rule() == Rule::graph_close);
            return graph.finish(close.map_or(text.len(), |pair| at + pair.as_span().end()));
        }
        let window = text.get(at..item_window_end(text, at)).unwrap_or_default();
        let Some(item) = GraphParser::parse(Rule::one_item, window).ok().and_then(|mut pairs| pairs.next()) else {
            return Err(vec![whole_file_error()]);
        };
        let end = at + item.as_span().end();
        graph.item(item, at)?;
        at = end;
    }
}

/// The first byte from `at` that is not whitespace or a comment.
fn skip_trivia(text: &str, at: usize) -> usize {
    lexer::tokens_from(text, at)
        .find(|(token, _)| !token.as_ref().is_ok_and(|token| token.is_trivia()))
        .map_or(text.len(), |(_, range)| range.start)
}

/// An end past the item that starts at `at`: after its first `;` at the graph's level, or its
/// second block closed back to that level (`choice { ... } { respond; }`), or the graph's own
/// `}`. A window longer than the item is harmless (pest reads one item from it).
fn item_window_end(text: &str, at: usize) -> usize {
    let (mut depth, mut blocks) = (0usize, 0);
    for (token, range) in lexer::tokens_from(text, at) {
        let Ok(token) = token else { continue };
        match token {
            Token::OpenParen | Token::OpenBracket | Token::OpenBrace => depth += 1,
            _ if token.is_closer() && depth == 0 => return range.start,
            _ if token.is_closer() => {
                depth -= 1;
                if depth == 0 && token == Token::CloseBrace {
                    blocks += 1;
                    if blocks == 2 {
                        return range.end;
                    }
                }
            }
            Token::Punct if depth == 0 && text.get(range.clone()) == Some(";") => return range.end,
            _ => {}
        }
    }
    text.len()
}

/// How deeply brackets may nest. Real graphs stay far below it; the limit keeps the parser's
/// and checker's recursion from exhausting the stack on hostile input.
pub const MAX_NESTING: usize = 32;

/// The lexical pass, before pest: the one lexer's tokens, so that a lexical mistake gets a
/// lexical message at its own place (an unterminated string at its opening quote, an unclosed
/// bracket at the opener) rather than a parse error where the parser gave up. Stops at the first
/// mistake: what follows an unterminated string or comment means nothing. A character no token
/// starts with is left to the parser, which says what it expected there.
fn lex(text: &str) -> Result<(), Vec<Diagnostic>> {
    let mut open: Vec<(Token, usize)> = Vec::new();
    // Every matched pair, for guessing which opener of an unclosed file lost its closer.
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    let error = |diagnostic: Diagnostic| Err(vec![diagnostic]);
    let bracket = |token: Token| match token {
        Token::OpenParen => '(',
        Token::CloseParen => ')',
        Token::OpenBracket => '[',
        Token::CloseBracket => ']',
        Token::OpenBrace => '{',
        _ => '}',
    };
    for (token, range) in lexer::tokens(text) {
        let at = range.start;
        let token = match token {
            Ok(token) => token,
            Err(LexError::Unexpected) => continue,
            Err(LexError::UnterminatedComment) => {
                return error(
                    Diagnostic::error(
                        Code::Syntax,
                        "unterminated block comment",
                        Span::new(at, at + 2),
                        "this comment is never closed",
                    )
                    .with_help("close it with `*/` (block comments nest: each `/*` needs its own `*/`)"),
                );
            }
            Err(LexError::UnterminatedString) => {
                return error(
                    Diagnostic::error(
                        Code::Syntax,
                        "unterminated string",
                        Span::new(at, at + 1),
                        "this string is never closed",
                    )
                    .with_help("close it with `\"`; a `\"` inside a string is written `\\\"`"),
                );
            }
            Err(LexError::UnterminatedRawString { closing }) => {
                return error(
                    Diagnostic::error(
                        Code::Syntax,
                        "unterminated raw string",
                        Span::new(at, at + 1 + closing.len()),
                        "this string is never closed",
                    )
                    .with_help(format!("close it with `{closing}`")),
                );
            }
        };
        if token.closer().is_some() {
            open.push((token, at));
            if open.len() > MAX_NESTING {
                return error(
                    Diagnostic::error(
                        Code::Syntax,
                        format!("brackets nest more than {MAX_NESTING} levels deep"),
                        Span::new(at, at + 1),
                        "too deep here",
                    )
                    .with_help("flatten the expression, or compute it in a Rust step"),
                );
            }
        } else if token.is_closer() {
            let closer = bracket(token);
            match open.pop() {
                Some((opener, from)) if opener.closer() == Some(token) => pairs.push((from, at)),
                Some((opener, from)) => {
                    let expected = opener.closer().map_or('}', bracket);
                    return error(
                        Diagnostic::error(
                            Code::Syntax,
                            format!("mismatched `{closer}`: `{}` is still open", bracket(opener)),
                            Span::new(at, at + 1),
                            format!("expected `{expected}` here"),
                        )
                        .with_label(Span::new(from, from + 1), "opened here")
                        .with_help(format!("close the `{}` before this `{closer}`", bracket(opener))),
                    );
                }
                None => {
                    return error(
                        Diagnostic::error(
                            Code::Syntax,
                            format!("unexpected `{closer}`"),
                            Span::new(at, at + 1),
                            "nothing is open here",
                        )
                        .with_help("remove it, or open what it closes"),
                    );
                }
            }
        }
    }
    if let Some(&(opener, from)) = open.last() {
        let closer = opener.closer().map_or('}', bracket);
        // A closer indented less than the line of the opener it matched most likely belongs to
        // an outer opener: the one it matched is the one left unclosed, as people indent.
        let indent = |at: usize| {
            let before = text.get(..at).unwrap_or_default();
            let line = before.rfind(['\n', '\r']).map_or(0, |n| n + 1);
            let rest = text.get(line..).unwrap_or_default();
            rest.len() - rest.trim_start_matches([' ', '\t']).len()
        };
        let misplaced =
            pairs.iter().filter(|&&(start, _)| start > from).find(|&&(start, end)| indent(end) < indent(start));
        let d = match misplaced {
            Some(&(start, end)) => Diagnostic::error(
                Code::Syntax,
                format!("unclosed `{}`", text.get(start..start + 1).unwrap_or("(")),
                Span::new(start, start + 1),
                "this is never closed",
            )
            .with_label(Span::new(end, end + 1), "this closer is indented as if it closed an outer one"),
            None => Diagnostic::error(
                Code::Syntax,
                format!("unclosed `{}`", bracket(opener)),
                Span::new(from, from + 1),
                "this is never closed",
            ),
        };
        return error(d.with_help(format!("add the `{closer}` that closes it")));
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
            } else if text.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
                // pest's own rules (`BUILTIN_RULE`, `ANY`): no word of the language.
            } else if !text.chars().all(|c| c.is_whitespace() || c == '\u{feff}')
                && !["//", "/*", "_"].contains(&text.as_str())
            {
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
    if let Some(slip) = common_slip(text, at, found) {
        return slip;
    }
    Diagnostic::error(Code::Syntax, message, span, label)
        .with_help("see docs/language.md for the grammar of every declaration")
}

/// The slips people make most, each told in its own words, at the token that is wrong.
fn common_slip(text: &str, at: usize, found: &str) -> Option<Diagnostic> {
    let line_start = text.get(..at).and_then(|before| before.rfind('\n')).map_or(0, |n| n + 1);
    let before = text.get(line_start..at).unwrap_or_default().trim();
    let span = Span::new(at, at + found.len());
    if found == "=" && (before.starts_with("expect ") || before.contains(" expect ")) {
        return Some(
            Diagnostic::error(Code::Syntax, "syntax error: `expect` compares with `==`, not `=`", span, "write `==`")
                .with_help("an expectation is a condition: `expect status == 200;`"),
        );
    }
    if found == "{" && text.get(..at).is_some_and(|before| before.trim_end().ends_with('}')) {
        return Some(
            Diagnostic::error(Code::Syntax, "syntax error: a second option block", span, "another `{ ... }`")
                .with_help("a declaration takes one option block: put every option in the first `{ ... }`"),
        );
    }
    if found == "route" {
        // `route NAME:VERSION = ...` with a version that is not a word: point at the version.
        let statement = text.get(at..).unwrap_or_default();
        let head = statement.split(['=', ';', '\n']).next().unwrap_or_default();
        if let Some((_, version)) = head.split_once(':') {
            let version = version.trim();
            if !version.is_empty() && !version.chars().all(|c| c.is_alphanumeric() || c == '_') {
                let offset = head.find(version).unwrap_or(0);
                let span = Span::new(at + offset, at + offset + version.len());
                return Some(
                    Diagnostic::error(
                        Code::Syntax,
                        format!("syntax error: `{version}` is not a route version"),
                        span,
                        "letters, digits and `_` only",
                    )
                    .with_help("write the version as a word: `route churn:v1_0 = ...`"),
                );
            }
        }
    }
    None
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
        Rule::kw_trigger => "`trigger`",
        Rule::route_version => "a route version (`:v1`)",
        Rule::version_text => "a version (letters, digits, `_`)",
        Rule::kw_request => "`request`",
        Rule::kw_expect => "`expect`",
        Rule::kw_choice => "`choice`",
        Rule::kw_custom => "`custom`",
        Rule::kw_fn => "`fn`",
        Rule::kw_new => "`new`",
        Rule::kw_model => "`model`",
        Rule::model_impl => "a model",
        Rule::param_decl | Rule::secret_decl | Rule::function_decl | Rule::record_decl | Rule::step_decl => {
            "a declaration"
        }
        Rule::router_decl | Rule::queue_decl | Rule::test_decl | Rule::trigger_decl | Rule::model_decl => {
            "a declaration"
        }
        Rule::model_ref => "a shared model's name",
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
        Rule::fn_value => "a Rust function (`fn path`)",
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
        Rule::file
        | Rule::WHITESPACE
        | Rule::COMMENT
        | Rule::block_comment
        | Rule::stray_route
        | Rule::graph_head
        | Rule::one_item
        | Rule::graph_end
        | Rule::graph_close
        | Rule::ident_char
        | Rule::digits
        | Rule::exponent => "more input",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_order_mark_and_form_feeds_are_whitespace_as_in_rust() {
        let text = "\u{feff}graph g {\u{c}\n    topology = flow;\u{c}\n    step a = map(body) { respond; }\n}\n";
        assert!(parse(text).is_ok(), "{:?}", parse(text).err());
    }

    #[test]
    fn syntax_errors_name_no_rule_of_the_grammar() {
        let errors = parse("graph g { step a = map(body) { respond; } { respond; } }").err().unwrap_or_default();
        let messages: Vec<&str> = errors.iter().map(|d| d.message.as_str()).collect();
        assert!(messages.iter().all(|m| !m.contains("BUILTIN") && !m.contains("_RULE")), "{messages:?}");
        assert_eq!(messages, ["syntax error: a second option block"]);
        let errors = parse("graph g { step a = }").err().unwrap_or_default();
        assert!(errors.iter().all(|d| !d.message.chars().any(|c| c.is_ascii_uppercase())), "{errors:?}");
    }
}
