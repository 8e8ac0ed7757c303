//! Rebuilding `.graph` text from Rust tokens, for `graph!{...}`, with a map back to token spans.
//!
//! Tokens are laid out at their original lines and columns when the spans carry them, so a
//! file's text and the same text passed through the Rust lexer parse to the same tree with the
//! same offsets. Where spans carry no position, tokens are separated by one space, except after
//! a joint punctuation mark (`-` of `->`), so that operators stay whole either way.

use crate::source::Span;
use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// Text rebuilt from tokens, and the token span behind each byte range.
pub struct TokenSource {
    /// The text the parser reads.
    pub text: String,
    /// For each token, its byte range in `text` and its span.
    pub spans: Vec<(Span, proc_macro2::Span)>,
}

impl TokenSource {
    /// The first and last token spans covering `span`, for errors at the user's tokens.
    pub fn token_spans(&self, span: Span) -> Option<(proc_macro2::Span, proc_macro2::Span)> {
        let mut covering =
            self.spans.iter().filter(|(range, _)| range.end > span.start && range.start < span.end.max(span.start + 1));
        let first = covering
            .clone()
            .next()
            .or_else(|| self.spans.iter().find(|(range, _)| range.start >= span.start))
            .or(self.spans.last())?;
        let last = covering.next_back().unwrap_or(first);
        Some((first.1, last.1))
    }
}

/// Lays out the tokens as text.
pub fn from_tokens(tokens: TokenStream) -> TokenSource {
    let mut writer =
        Writer { out: TokenSource { text: String::new(), spans: Vec::new() }, line: 1, column: 0, glue: false };
    writer.stream(tokens);
    writer.out
}

struct Writer {
    out: TokenSource,
    line: usize,
    column: usize,
    /// The previous token was a joint punctuation mark: write the next one right after it.
    glue: bool,
}

impl Writer {
    fn stream(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        let mut index = 0;
        while let Some(tree) = trees.get(index) {
            // Doc comments (`///`) arrive as `#[doc = "..."]`; in a graph they are comments.
            if is_doc_attribute(tree, trees.get(index + 1)) {
                index += 2;
                continue;
            }
            self.tree(tree);
            index += 1;
        }
    }

    fn tree(&mut self, tree: &TokenTree) {
        match tree {
            TokenTree::Group(group) => {
                let (open, close) = match group.delimiter() {
                    Delimiter::Parenthesis => ("(", ")"),
                    Delimiter::Brace => ("{", "}"),
                    Delimiter::Bracket => ("[", "]"),
                    Delimiter::None => ("", ""),
                };
                if !open.is_empty() {
                    self.token(open, group.span_open());
                }
                self.stream(group.stream());
                if !close.is_empty() {
                    self.token(close, group.span_close());
                }
            }
            TokenTree::Ident(ident) => self.token(&ident.to_string(), ident.span()),
            TokenTree::Literal(literal) => self.token(&literal.to_string(), literal.span()),
            TokenTree::Punct(punct) => {
                let mut buffer = [0u8; 4];
                self.token(punct.as_char().encode_utf8(&mut buffer), punct.span());
                self.glue = punct.spacing() == Spacing::Joint;
                return;
            }
        }
        self.glue = false;
    }

    fn token(&mut self, text: &str, span: proc_macro2::Span) {
        let start = span.start();
        let positioned = start.line > 0;
        if positioned && start.line > self.line {
            self.out.text.extend(std::iter::repeat_n('\n', start.line - self.line));
            self.out.text.extend(std::iter::repeat_n(' ', start.column));
            self.line = start.line;
            self.column = start.column;
        } else if positioned && start.line == self.line && start.column > self.column {
            self.out.text.extend(std::iter::repeat_n(' ', start.column - self.column));
            self.column = start.column;
        } else if positioned && start.line == self.line && start.column == self.column {
            // Right where the previous token ended, as in the source.
        } else if !self.glue && !self.out.text.is_empty() {
            self.out.text.push(' ');
            self.column += 1;
        }
        let begin = self.out.text.len();
        self.out.text.push_str(text);
        self.out.spans.push((Span::new(begin, self.out.text.len()), span));
        match text.rfind('\n') {
            Some(newline) => {
                self.line += text.matches('\n').count();
                self.column = text.get(newline + 1..).map_or(0, |rest| rest.chars().count());
            }
            None => self.column += text.chars().count(),
        }
    }
}

fn is_doc_attribute(tree: &TokenTree, next: Option<&TokenTree>) -> bool {
    let (TokenTree::Punct(hash), Some(TokenTree::Group(group))) = (tree, next) else { return false };
    hash.as_char() == '#'
        && group.delimiter() == Delimiter::Bracket
        && matches!(group.stream().into_iter().next(), Some(TokenTree::Ident(ident)) if ident == "doc")
}
