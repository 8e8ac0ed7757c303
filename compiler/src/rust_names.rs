//! Rust's keywords, for the names a graph hands to generated code as identifiers (the graph's
//! module, records and their fields, handler paths): the checker rejects what Rust cannot
//! spell, and codegen writes keywords as raw identifiers (`r#match`).

/// How a name can stand as a Rust identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RustName {
    /// An ordinary identifier.
    Plain,
    /// A keyword, written as a raw identifier (`r#type`).
    Keyword,
    /// A keyword that cannot be a raw identifier: `self`, `Self`, `super`, `crate`.
    Reserved,
}

/// Every keyword of Rust 2024, strict and reserved, that cannot be a plain identifier.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "do", "dyn", "else", "enum",
    "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "macro", "match", "mod", "move",
    "mut", "override", "priv", "pub", "ref", "return", "static", "struct", "trait", "true", "try", "type", "typeof",
    "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
];

/// The path keywords, which no raw identifier may be.
pub const RESERVED: &[&str] = &["self", "Self", "super", "crate"];

/// How `name` can stand as a Rust identifier.
pub fn classify(name: &str) -> RustName {
    if RESERVED.contains(&name) {
        RustName::Reserved
    } else if KEYWORDS.contains(&name) {
        RustName::Keyword
    } else {
        RustName::Plain
    }
}
