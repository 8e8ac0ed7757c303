//! Names that become Rust identifiers in the generated module: the graph's (the module), the
//! records and their fields, and the segments of handler paths. Keywords are fine (codegen
//! writes them raw); what Rust cannot spell at all, and names that would collide in the
//! generated code or its project, are reported here, at the name.

use super::Checker;
use crate::diagnostic::{Code, Diagnostic};
use crate::rust_names::{self, RustName};
use crate::source::Span;
use crate::syntax::ast::{self, Item, RouterKindAst, StepImpl};

/// The language's own type names, which a record cannot take.
use super::vocabulary::BUILTIN_TYPES;

impl Checker<'_> {
    pub(super) fn check_names(&mut self) {
        let graph = &self.ast.name;
        self.rust_name(&graph.name, graph.span, "graph");
        for item in &self.ast.items {
            match item {
                Item::Record(record) => {
                    self.rust_name(&record.name.name, record.name.span, "record");
                    if BUILTIN_TYPES.contains(&record.name.name.as_str()) {
                        self.report(
                            Diagnostic::error(
                                Code::DuplicateName,
                                format!("record `{}` has the name of a built-in type", record.name.name),
                                record.name.span,
                                "a type of the language is named so",
                            )
                            .with_help(format!(
                                "`{}` in a type always means the built-in; rename the record",
                                record.name.name
                            )),
                        );
                    }
                    for (field, _) in &record.fields {
                        self.rust_name(&field.name, field.span, "record field");
                    }
                }
                Item::Function(function) if function.name == graph.name => self.report(
                    Diagnostic::error(
                        Code::DuplicateName,
                        format!("child function `{}` has the graph's name", function.name),
                        function.span,
                        "a child function",
                    )
                    .with_label(graph.span, "the root function is named after the graph")
                    .with_help("rename the child function: the graph's name is its root function's"),
                ),
                Item::Step(step) => self.handler_paths(&step.implementation),
                Item::Router(router) => {
                    if let RouterKindAst::Custom(path) = &router.kind {
                        self.handler_path(path);
                    }
                    for route in &router.routes {
                        self.handler_paths(&route.implementation);
                    }
                }
                _ => {}
            }
        }
    }

    fn handler_paths(&mut self, implementation: &StepImpl) {
        match implementation {
            StepImpl::Function(path) | StepImpl::Construct(path, ..) => self.handler_path(path),
            StepImpl::UserModel(model) => self.handler_path(&model.path),
            _ => {}
        }
    }

    /// A path's anchors (`::`, `crate`, `self`, `super`) lead it; every other segment must be
    /// an identifier. A relative path starts at the crate root of the generated code, where
    /// the graph's own module stands: it cannot start with the graph's name.
    fn handler_path(&mut self, path: &ast::RustPath) {
        let leading_anchor = matches!(path.segments.first().map(String::as_str), Some("" | "crate" | "self" | "super"));
        let segments = path.segments.iter().skip(usize::from(leading_anchor)).skip_while(|s| *s == "super");
        for segment in segments {
            if rust_names::classify(segment) == RustName::Reserved {
                self.report(
                    Diagnostic::error(
                        Code::ReservedName,
                        format!("`{segment}` cannot stand inside the handler path `{path}`"),
                        path.span,
                        format!("`{segment}` is a path keyword in Rust"),
                    )
                    .with_help("`crate`, `self` and `super` may only lead a path; `Self` names no item"),
                );
                return;
            }
        }
        if !leading_anchor && path.segments.first().map(String::as_str) == Some(self.ast.name.name.as_str()) {
            self.report(
                Diagnostic::error(
                    Code::ReservedName,
                    format!("the handler path `{path}` starts with the graph's own name"),
                    path.span,
                    "resolves to the generated module, not to your crate",
                )
                .with_label(self.ast.name.span, "the graph's module has this name")
                .with_help("rename the graph, or anchor the path: `::crate_name::item` or `crate::item`"),
            );
        }
    }

    fn rust_name(&mut self, name: &str, span: Span, what: &str) {
        if rust_names::classify(name) == RustName::Reserved {
            self.report(
                Diagnostic::error(
                    Code::ReservedName,
                    format!("`{name}` cannot name a {what}"),
                    span,
                    "a Rust path keyword",
                )
                .with_help(format!(
                    "the {what} becomes a Rust item, and `{name}` is one of {}: choose another name",
                    rust_names::RESERVED.join(", ")
                )),
            );
        }
    }
}
