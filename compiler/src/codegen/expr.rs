//! Expressions of the graph language as Rust over JSON values, calling the runtime's
//! `expr` operations. Strings from the DSL become string literals, never code.

use crate::ir::Expr;
use crate::ir::{BinaryOp, EventField, UnaryOp};
use proc_macro2::{Literal, TokenStream};
use quote::quote;

/// What the names of an expression mean where it is evaluated.
#[derive(Clone, Copy)]
pub(super) enum Scope {
    /// In a step: `event` and `context` are in scope.
    Step,
    /// While building the pipeline: `context` is in scope.
    Build,
    /// In a test's check: `status`, `headers` and `body` are in scope.
    Test,
}

/// Tokens that evaluate to a `Value`, inside a function returning `Result<_, StepError>`.
pub(super) fn value(expr: &Expr, scope: Scope) -> TokenStream {
    let rt = super::rt();
    if let Some(place) = place(expr, scope) {
        return quote!(::core::clone::Clone::clone(#place));
    }
    match expr {
        Expr::Null => quote!(#rt::Value::Null),
        Expr::Bool(b) => quote!(#rt::Value::Bool(#b)),
        Expr::Int(i) => {
            let i = Literal::i64_suffixed(*i);
            quote!(#rt::Value::from(#i))
        }
        Expr::Float(f) => {
            let f = Literal::f64_suffixed(*f);
            quote!(#rt::Value::from(#f))
        }
        Expr::Str(s) => {
            let s = Literal::string(s);
            quote!(#rt::Value::String(::std::string::String::from(#s)))
        }
        // Outside a step and a test there is no body to read.
        Expr::Body | Expr::Status | Expr::Headers | Expr::Chunks | Expr::Field(..) | Expr::Index(..) => {
            quote!(#rt::Value::Null)
        }
        // `context` is in scope wherever a parameter can be named.
        Expr::Param(name) => {
            let name = Literal::string(name);
            quote!(context.get_param::<#rt::Value>(#name).unwrap_or(#rt::Value::Null))
        }
        Expr::EventField(field) => match field {
            EventField::Id => quote!(#rt::Value::String(event.id.to_string())),
            EventField::Key => quote!(#rt::Value::String(event.key.clone())),
            EventField::Path => quote!(#rt::Value::String(event.path.to_string())),
            EventField::Method => quote!(#rt::Value::String(event.method.to_string())),
            EventField::Time => {
                quote!(#rt::Value::from(event.time.duration_since(::std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())))
            }
        },
        // A truth value: the condition, made a JSON bool.
        Expr::Unary(UnaryOp::Not, _)
        | Expr::Binary(
            BinaryOp::Or
            | BinaryOp::And
            | BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge,
            ..,
        ) => {
            let condition = condition(expr, scope);
            quote!(#rt::Value::Bool(#condition))
        }
        Expr::Unary(UnaryOp::Neg, inner) => {
            let inner = operand(inner, scope);
            quote!(#rt::expr::neg(#inner)?)
        }
        Expr::Binary(op, left, right) => {
            let symbol = Literal::character(op.symbol().chars().next().unwrap_or('+'));
            let (left, right) = (operand(left, scope), operand(right, scope));
            quote!(#rt::expr::arithmetic(#symbol, #left, #right)?)
        }
        Expr::Object(entries) => {
            let keys = entries.iter().map(|(key, _)| Literal::string(key));
            let values = entries.iter().map(|(_, v)| value(v, scope));
            quote!({
                let mut object = #rt::Map::new();
                #( object.insert(::std::string::String::from(#keys), #values); )*
                #rt::Value::Object(object)
            })
        }
        Expr::Array(items) => {
            let items = items.iter().map(|item| value(item, scope));
            quote!(#rt::Value::Array(::std::vec![#(#items),*]))
        }
        Expr::Len(inner) => {
            let inner = operand(inner, scope);
            quote!(#rt::expr::len(#inner)?)
        }
    }
}

/// Tokens for a `&Value` where the expression names a place in what is in scope (the body, a
/// field or an element of one, a test's status or headers): read where it lies, so that
/// `body.n + 1` copies one number, not the whole body.
fn place(expr: &Expr, scope: Scope) -> Option<TokenStream> {
    let rt = super::rt();
    match (expr, scope) {
        (Expr::Body, Scope::Step) => Some(quote!(&event.body)),
        (Expr::Body, Scope::Test) => Some(quote!(&body)),
        (Expr::Status, Scope::Test) => Some(quote!(&status)),
        (Expr::Headers, Scope::Test) => Some(quote!(&headers)),
        (Expr::Chunks, Scope::Test) => Some(quote!(&chunks)),
        (Expr::Field(base, name), Scope::Step | Scope::Test) => {
            let (base, name) = (operand(base, scope), Literal::string(name));
            Some(quote!(#rt::expr::field(#base, #name)))
        }
        (Expr::Index(base, index), Scope::Step | Scope::Test) => {
            let (base, index) = (operand(base, scope), operand(index, scope));
            Some(quote!(#rt::expr::index(#base, #index)))
        }
        _ => None,
    }
}

/// Tokens for a `&Value`: a place read where it lies, else the value computed and borrowed.
fn operand(expr: &Expr, scope: Scope) -> TokenStream {
    place(expr, scope).unwrap_or_else(|| {
        let value = value(expr, scope);
        quote!(&#value)
    })
}

/// A condition: tokens that evaluate to a `bool`. A comparison or a logical operator is the
/// `bool` itself, with no `Value::Bool` made only to be read back.
pub(super) fn condition(expr: &Expr, scope: Scope) -> TokenStream {
    let rt = super::rt();
    // Parentheses only where Rust's precedence differs from the tree: `||` under `&&`, and
    // either under `!`.
    let grouped = |expr: &Expr, around: &[BinaryOp]| {
        let tokens = condition(expr, scope);
        match expr {
            Expr::Binary(op, ..) if around.contains(op) => quote!((#tokens)),
            _ => tokens,
        }
    };
    match expr {
        Expr::Binary(BinaryOp::Or, left, right) => {
            let (left, right) = (condition(left, scope), condition(right, scope));
            quote!(#left || #right)
        }
        Expr::Binary(BinaryOp::And, left, right) => {
            let (left, right) = (grouped(left, &[BinaryOp::Or]), grouped(right, &[BinaryOp::Or]));
            quote!(#left && #right)
        }
        Expr::Binary(BinaryOp::Eq, left, right) => {
            let (left, right) = (operand(left, scope), operand(right, scope));
            quote!(#rt::expr::equal(#left, #right))
        }
        Expr::Binary(BinaryOp::Ne, left, right) => {
            let (left, right) = (operand(left, scope), operand(right, scope));
            quote!(!#rt::expr::equal(#left, #right))
        }
        Expr::Binary(op @ (BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge), left, right) => {
            let (symbol, left, right) = (op.symbol(), operand(left, scope), operand(right, scope));
            quote!(#rt::expr::compare(#symbol, #left, #right)?)
        }
        Expr::Unary(UnaryOp::Not, inner) => {
            let inner = grouped(inner, &[BinaryOp::Or, BinaryOp::And]);
            quote!(!#inner)
        }
        _ => {
            let operand = operand(expr, scope);
            quote!(#rt::expr::truth(#operand)?)
        }
    }
}
