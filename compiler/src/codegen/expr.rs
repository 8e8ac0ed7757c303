//! Expressions of the graph language as Rust over JSON values, calling the runtime's
//! `expr` operations. Strings from the DSL become string literals, never code.

use crate::ir::Expr;
use crate::ir::{BinaryOp, UnaryOp};
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
        Expr::Body => match scope {
            Scope::Step => quote!(event.body.clone()),
            Scope::Test => quote!(body.clone()),
            Scope::Build => quote!(#rt::Value::Null),
        },
        Expr::Status => quote!(status.clone()),
        Expr::Headers => quote!(headers.clone()),
        Expr::Param(name) => {
            let name = Literal::string(name);
            match scope {
                Scope::Step => quote!(context.get_param::<#rt::Value>(#name).unwrap_or(#rt::Value::Null)),
                Scope::Build | Scope::Test => {
                    quote!(context.get_param::<#rt::Value>(#name).unwrap_or(#rt::Value::Null))
                }
            }
        }
        Expr::EventField(field) => match field.as_str() {
            "id" => quote!(#rt::Value::String(event.id.to_string())),
            "key" => quote!(#rt::Value::String(event.key.clone())),
            "path" => quote!(#rt::Value::String(event.path.to_string())),
            "method" => quote!(#rt::Value::String(event.method.to_string())),
            _ => {
                quote!(#rt::Value::from(event.time.duration_since(::std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())))
            }
        },
        Expr::Field(base, name) => {
            let base = value(base, scope);
            let name = Literal::string(name);
            quote!(#rt::expr::field(&#base, #name))
        }
        Expr::Index(base, index) => {
            let (base, index) = (value(base, scope), value(index, scope));
            quote!(#rt::expr::index(&#base, &#index))
        }
        Expr::Unary(UnaryOp::Not, operand) => {
            let operand = value(operand, scope);
            quote!(#rt::expr::not(&#operand)?)
        }
        Expr::Unary(UnaryOp::Neg, operand) => {
            let operand = value(operand, scope);
            quote!(#rt::expr::neg(&#operand)?)
        }
        Expr::Binary(op, left, right) => binary(*op, &value(left, scope), &value(right, scope)),
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
        Expr::Len(operand) => {
            let operand = value(operand, scope);
            quote!(#rt::expr::len(&#operand)?)
        }
    }
}

fn binary(op: BinaryOp, left: &TokenStream, right: &TokenStream) -> TokenStream {
    let rt = super::rt();
    match op {
        BinaryOp::Or => quote!(#rt::Value::Bool(#rt::expr::truth(&#left)? || #rt::expr::truth(&#right)?)),
        BinaryOp::And => quote!(#rt::Value::Bool(#rt::expr::truth(&#left)? && #rt::expr::truth(&#right)?)),
        BinaryOp::Eq => quote!(#rt::Value::Bool(#rt::expr::equal(&#left, &#right))),
        BinaryOp::Ne => quote!(#rt::Value::Bool(!#rt::expr::equal(&#left, &#right))),
        BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => {
            let symbol = op.symbol();
            quote!(#rt::Value::Bool(#rt::expr::compare(#symbol, &#left, &#right)?))
        }
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => {
            let symbol = Literal::character(op.symbol().chars().next().unwrap_or('+'));
            quote!(#rt::expr::arithmetic(#symbol, &#left, &#right)?)
        }
    }
}

/// A condition: tokens that evaluate to a `bool`.
pub(super) fn condition(expr: &Expr, scope: Scope) -> TokenStream {
    let rt = super::rt();
    let value = value(expr, scope);
    quote!(#rt::expr::truth(&#value)?)
}
