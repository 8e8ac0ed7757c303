//! The one lexer: the lexical rules of the graph language (whitespace, comments that nest,
//! plain and raw strings, words, numbers, punctuation), written once with logos. The parser's
//! lexical pass, the item windows it parses, the formatter's comments and the IDE queries all
//! read text through it; the pest grammar parses what it has already found well formed.

use logos::Logos;

/// Why a piece of text is not a token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LexError {
    /// A character no token starts with; the parser reports it in context.
    #[default]
    Unexpected,
    /// A `"` string with no closing quote.
    UnterminatedString,
    /// A raw string (`r#"...`) with no closing quote and hashes; the closing it needs.
    UnterminatedRawString {
        /// The text that would close it: `"` and as many `#` as opened it.
        closing: String,
    },
    /// A `/*` with no matching `*/` (block comments nest).
    UnterminatedComment,
}

/// A token of the graph language. Whitespace and comments are tokens too, so that the
/// formatter and the parser's windows see them; most readers skip them (`is_trivia`).
#[derive(Logos, Clone, Copy, Debug, PartialEq, Eq)]
#[logos(error = LexError)]
pub enum Token {
    /// Spaces, tabs, line ends (LF, CRLF or a lone CR), form feeds, byte order marks.
    #[regex(r"[ \t\r\n\x0C\u{FEFF}]+")]
    Whitespace,
    /// `//` to the end of the line.
    #[regex(r"//[^\r\n]*")]
    LineComment,
    /// `/* ... */`, nesting as in Rust.
    #[token("/*", block_comment)]
    BlockComment,
    /// `"..."` with backslash escapes.
    #[token("\"", plain_string)]
    Str,
    /// `r"..."`, `r#"..."#`: no escapes.
    #[regex(r#"r#*""#, raw_string)]
    RawStr,
    /// A name or keyword: a letter, `_` or any non-ASCII character, then those and digits.
    /// (The byte order mark, U+FEFF, is whitespace.)
    #[regex(r"[A-Za-z_\u{80}-\u{FEFE}\u{FF00}-\u{10FFFF}][A-Za-z0-9_\u{80}-\u{FEFE}\u{FF00}-\u{10FFFF}]*")]
    Word,
    /// An integer or float: `12`, `1_000`, `0.5`, `1e-3`.
    #[regex(r"[0-9][0-9_]*(\.[0-9][0-9_]*)?([eE][+-]?[0-9][0-9_]*)?")]
    Number,
    /// `(`
    #[token("(")]
    OpenParen,
    /// `)`
    #[token(")")]
    CloseParen,
    /// `[`
    #[token("[")]
    OpenBracket,
    /// `]`
    #[token("]")]
    CloseBracket,
    /// `{`
    #[token("{")]
    OpenBrace,
    /// `}`
    #[token("}")]
    CloseBrace,
    /// Any other punctuation: operators, `->`, `::`, `;`, ... (`punct` says which).
    #[token("->")]
    #[token("=>")]
    #[token("::")]
    #[token("==")]
    #[token("!=")]
    #[token("<=")]
    #[token(">=")]
    #[token("&&")]
    #[token("||")]
    #[regex(r"[;,:=.$<>+\-*/%!?#@&|^~]")]
    Punct,
}

impl Token {
    /// Whitespace and comments: what separates tokens and means nothing to the grammar.
    pub fn is_trivia(self) -> bool {
        matches!(self, Token::Whitespace | Token::LineComment | Token::BlockComment)
    }

    /// A string, raw string or number.
    pub fn is_literal(self) -> bool {
        matches!(self, Token::Str | Token::RawStr | Token::Number)
    }

    /// For an opening bracket, the token that closes it.
    pub fn closer(self) -> Option<Token> {
        match self {
            Token::OpenParen => Some(Token::CloseParen),
            Token::OpenBracket => Some(Token::CloseBracket),
            Token::OpenBrace => Some(Token::CloseBrace),
            _ => None,
        }
    }

    /// Whether it closes a bracket.
    pub fn is_closer(self) -> bool {
        matches!(self, Token::CloseParen | Token::CloseBracket | Token::CloseBrace)
    }
}

/// The tokens of `text` from its start, each with its byte range. A token that is not well
/// formed (an unterminated string or comment runs to the end of the text) comes as its error.
pub fn tokens(text: &str) -> impl Iterator<Item = (Result<Token, LexError>, std::ops::Range<usize>)> + '_ {
    Token::lexer(text).spanned()
}

/// The same from `at`, a token boundary, with ranges in `text`'s offsets.
pub fn tokens_from(
    text: &str,
    at: usize,
) -> impl Iterator<Item = (Result<Token, LexError>, std::ops::Range<usize>)> + '_ {
    tokens(text.get(at..).unwrap_or_default()).map(move |(token, range)| (token, range.start + at..range.end + at))
}

/// After `/*`: the rest of a block comment, counting nested ones.
fn block_comment(lexer: &mut logos::Lexer<'_, Token>) -> Result<(), LexError> {
    let rest = lexer.remainder().as_bytes();
    let mut depth = 1usize;
    let mut at = 0;
    while at < rest.len() {
        match (rest.get(at), rest.get(at + 1)) {
            (Some(b'/'), Some(b'*')) => {
                depth += 1;
                at += 2;
            }
            (Some(b'*'), Some(b'/')) => {
                depth -= 1;
                at += 2;
                if depth == 0 {
                    lexer.bump(at);
                    return Ok(());
                }
            }
            _ => at += 1,
        }
    }
    lexer.bump(rest.len());
    Err(LexError::UnterminatedComment)
}

/// After `"`: up to and including the closing quote, skipping escaped characters.
fn plain_string(lexer: &mut logos::Lexer<'_, Token>) -> Result<(), LexError> {
    let rest = lexer.remainder();
    let mut chars = rest.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '"' => {
                lexer.bump(at + 1);
                return Ok(());
            }
            _ => {}
        }
    }
    lexer.bump(rest.len());
    Err(LexError::UnterminatedString)
}

/// After `r`, its hashes and `"`: up to and including `"` and as many hashes.
fn raw_string(lexer: &mut logos::Lexer<'_, Token>) -> Result<(), LexError> {
    let hashes = lexer.slice().len() - 2;
    let closing = format!("\"{}", "#".repeat(hashes));
    let rest = lexer.remainder();
    match rest.find(&closing) {
        Some(at) => {
            lexer.bump(at + closing.len());
            Ok(())
        }
        None => {
            lexer.bump(rest.len());
            Err(LexError::UnterminatedRawString { closing })
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, reason = "a test stops at the first thing that is not so")]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<(Result<Token, LexError>, &str)> {
        tokens(text)
            .filter(|(t, _)| t.as_ref().map_or(true, |t| *t != Token::Whitespace))
            .map(|(t, r)| (t, &text[r]))
            .collect()
    }

    #[test]
    fn comments_nest_and_strings_hide_what_looks_like_comments() {
        assert_eq!(
            kinds(r##"a /* x /* y */ z */ "/* not */" r#"//"# // end"##),
            [
                (Ok(Token::Word), "a"),
                (Ok(Token::BlockComment), "/* x /* y */ z */"),
                (Ok(Token::Str), r#""/* not */""#),
                (Ok(Token::RawStr), r##"r#"//"#"##),
                (Ok(Token::LineComment), "// end"),
            ]
        );
    }

    #[test]
    fn a_word_ending_in_r_is_not_a_raw_string() {
        assert_eq!(kinds(r#"bar"x""#), [(Ok(Token::Word), "bar"), (Ok(Token::Str), r#""x""#)]);
        // `r#` not followed by a quote is no token the language has (the parser says what it expected).
        assert_eq!(kinds("r#x"), [(Err(LexError::Unexpected), "r#"), (Ok(Token::Word), "x")]);
        assert_eq!(kinds("r x"), [(Ok(Token::Word), "r"), (Ok(Token::Word), "x")]);
    }

    #[test]
    fn unterminated_literals_are_errors_that_run_to_the_end() {
        assert_eq!(kinds(r#"a "open"#), [(Ok(Token::Word), "a"), (Err(LexError::UnterminatedString), "\"open")]);
        assert_eq!(kinds("/* a /* b */"), [(Err(LexError::UnterminatedComment), "/* a /* b */")]);
        assert_eq!(
            kinds(r##"r#"x"##),
            [(Err(LexError::UnterminatedRawString { closing: "\"#".to_string() }), r##"r#"x"##)]
        );
    }

    #[test]
    fn operators_take_the_longest_match() {
        let texts: Vec<&str> = kinds("a->b::c<=1.5e3&&!d").into_iter().map(|(_, s)| s).collect();
        assert_eq!(texts, ["a", "->", "b", "::", "c", "<=", "1.5e3", "&&", "!", "d"]);
    }

    #[test]
    fn a_lone_carriage_return_and_a_byte_order_mark_are_whitespace() {
        assert_eq!(
            kinds("\u{feff}a\rb // c\rd"),
            [(Ok(Token::Word), "a"), (Ok(Token::Word), "b"), (Ok(Token::LineComment), "// c"), (Ok(Token::Word), "d"),]
        );
    }
}
