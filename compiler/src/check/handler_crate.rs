//! The handler crate as the checker sees it: its modules, public functions (with their number of
//! arguments) and types, read from its source with syn, without building it. `graphc check` and
//! `graphc build` use it to report a handler path that names nothing before rustc does, with a
//! "did you mean" from the crate's own names.
//!
//! The reading is conservative: a module the checker cannot see through (a glob re-export, an
//! item-level macro, a `#[path]` module, a file that does not parse) may hold any name, and no
//! path into it is reported. What rustc would accept is never refused here.

use crate::diagnostic::{Code, Diagnostic, did_you_mean};
use crate::ir::{self, Graph, NodeKind, RouteKind, RouterKind};
use crate::source::Span;
use std::collections::BTreeMap;

/// The handler crate: its package name (as a path's first segment) and its root module.
#[derive(Debug)]
pub struct HandlerCrate {
    name: String,
    root: Module,
}

#[derive(Debug, Default)]
struct Module {
    items: BTreeMap<String, Item>,
    /// A glob re-export or an item-level macro: any name may be here.
    open: bool,
}

#[derive(Debug)]
struct Item {
    public: bool,
    kind: ItemKind,
}

#[derive(Debug)]
enum ItemKind {
    /// A module; `None` when its contents cannot be seen.
    Module(Option<Module>),
    /// A function and how many arguments it takes.
    Function { arguments: usize },
    /// A struct, enum, union or type alias, with the functions of its inherent `impl` blocks.
    Type { functions: BTreeMap<String, usize>, has_trait_impls: bool },
    /// A re-export, a constant or anything else whose kind is not followed.
    Other,
}

/// How the handler named by a path is used, which decides what the path must name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandlerUse {
    /// `fn path` taking the body: a function of one argument.
    Body,
    /// `fn path` with `full_event`: a function of the event and the context.
    FullEvent,
    /// `new path(...)`, a custom router or a user model: a type.
    Type,
}

impl HandlerUse {
    fn arguments(self) -> Option<usize> {
        match self {
            HandlerUse::Body => Some(1),
            HandlerUse::FullEvent => Some(2),
            HandlerUse::Type => None,
        }
    }
}

impl HandlerCrate {
    /// Reads the crate named `name` (its package name) from its source: `read` gives the text of
    /// a file by its path relative to the crate's folder (`src/lib.rs`, `src/orders.rs`), or
    /// `None`. The core does no IO: the caller reads.
    pub fn read(name: &str, read: &mut dyn FnMut(&str) -> Option<String>) -> HandlerCrate {
        let root = match read("src/lib.rs") {
            Some(text) => module_from_text(&text, "src", read),
            None => Module { open: true, ..Module::default() },
        };
        HandlerCrate { name: name.replace('-', "_"), root }
    }

    /// The name a handler path starts with to name this crate.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A file's module; `dir` is where its child modules' files are.
fn module_from_text(text: &str, dir: &str, read: &mut dyn FnMut(&str) -> Option<String>) -> Module {
    match syn::parse_file(text) {
        Ok(file) => module_from_items(&file.items, dir, read),
        Err(_) => Module { open: true, ..Module::default() },
    }
}

fn module_from_items(items: &[syn::Item], dir: &str, read: &mut dyn FnMut(&str) -> Option<String>) -> Module {
    let mut module = Module::default();
    let mut impls: Vec<&syn::ItemImpl> = Vec::new();
    for item in items {
        match item {
            syn::Item::Fn(function) => {
                let arguments = function.sig.inputs.len();
                module.add(&function.sig.ident, &function.vis, ItemKind::Function { arguments });
            }
            syn::Item::Struct(item) => module.add(&item.ident, &item.vis, ItemKind::new_type()),
            syn::Item::Enum(item) => module.add(&item.ident, &item.vis, ItemKind::new_type()),
            syn::Item::Union(item) => module.add(&item.ident, &item.vis, ItemKind::new_type()),
            syn::Item::Type(item) => module.add(&item.ident, &item.vis, ItemKind::new_type()),
            syn::Item::Const(item) => module.add(&item.ident, &item.vis, ItemKind::Other),
            syn::Item::Static(item) => module.add(&item.ident, &item.vis, ItemKind::Other),
            syn::Item::Trait(item) => module.add(&item.ident, &item.vis, ItemKind::Other),
            syn::Item::ExternCrate(item) => {
                let name = item.rename.as_ref().map_or(&item.ident, |(_, rename)| rename);
                module.add(name, &item.vis, ItemKind::Other);
            }
            syn::Item::Mod(item) => {
                let own_dir = format!("{dir}/{}", unraw(&item.ident.to_string()));
                let has_path = item.attrs.iter().any(|attr| attr.path().is_ident("path"));
                let contents = match (&item.content, has_path) {
                    (_, true) => None,
                    (Some((_, items)), false) => Some(module_from_items(items, &own_dir, read)),
                    (None, false) => {
                        let name = unraw(&item.ident.to_string());
                        let file = read(&format!("{dir}/{name}.rs"))
                            .map(|text| (text, own_dir.clone()))
                            .or_else(|| read(&format!("{own_dir}/mod.rs")).map(|text| (text, own_dir.clone())));
                        file.map(|(text, child_dir)| module_from_text(&text, &child_dir, read))
                    }
                };
                module.add(&item.ident, &item.vis, ItemKind::Module(contents));
            }
            syn::Item::Use(item) => module.add_use(&item.tree, &item.vis),
            syn::Item::Impl(item) => impls.push(item),
            syn::Item::Macro(item) if item.ident.is_none() => module.open = true,
            _ => {}
        }
    }
    for item in impls {
        let syn::Type::Path(self_ty) = &*item.self_ty else { continue };
        let Some(last) = self_ty.path.segments.last() else { continue };
        let Some(Item { kind: ItemKind::Type { functions, has_trait_impls }, .. }) =
            module.items.get_mut(&unraw(&last.ident.to_string()))
        else {
            continue;
        };
        if item.trait_.is_some() {
            *has_trait_impls = true;
            continue;
        }
        for impl_item in &item.items {
            if let syn::ImplItem::Fn(function) = impl_item
                && matches!(function.vis, syn::Visibility::Public(_))
            {
                let arguments =
                    function.sig.inputs.iter().filter(|input| matches!(input, syn::FnArg::Typed(_))).count();
                functions.insert(unraw(&function.sig.ident.to_string()), arguments);
            }
        }
    }
    module
}

impl ItemKind {
    fn new_type() -> Self {
        ItemKind::Type { functions: BTreeMap::new(), has_trait_impls: false }
    }
}

impl Module {
    fn add(&mut self, ident: &syn::Ident, vis: &syn::Visibility, kind: ItemKind) {
        let public = matches!(vis, syn::Visibility::Public(_));
        // A name in two namespaces (a function and a module of one name): keep what is public,
        // else the first.
        let name = unraw(&ident.to_string());
        match self.items.get(&name) {
            Some(existing) if existing.public || !public => {}
            _ => {
                self.items.insert(name, Item { public, kind });
            }
        }
    }

    fn add_use(&mut self, tree: &syn::UseTree, vis: &syn::Visibility) {
        match tree {
            syn::UseTree::Path(path) => self.add_use(&path.tree, vis),
            syn::UseTree::Name(name) if name.ident != "self" => self.add(&name.ident, vis, ItemKind::Other),
            syn::UseTree::Name(_) => {}
            syn::UseTree::Rename(rename) => self.add(&rename.rename, vis, ItemKind::Other),
            syn::UseTree::Glob(_) => {
                if matches!(vis, syn::Visibility::Public(_)) {
                    self.open = true;
                }
            }
            syn::UseTree::Group(group) => group.items.iter().for_each(|tree| self.add_use(tree, vis)),
        }
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.items.iter().filter(|(_, item)| item.public).map(|(name, _)| name.as_str())
    }
}

fn unraw(name: &str) -> String {
    name.strip_prefix("r#").unwrap_or(name).to_string()
}

/// Every handler path a graph names, with how it is used and where it is written.
pub fn handler_paths(graph: &Graph) -> Vec<(&str, HandlerUse, Span)> {
    fn step(kind: &NodeKind, full_event: bool) -> Option<(&str, HandlerUse)> {
        match kind {
            NodeKind::Function(path) => {
                Some((path.as_str(), if full_event { HandlerUse::FullEvent } else { HandlerUse::Body }))
            }
            NodeKind::Construct(path, _) => Some((path.as_str(), HandlerUse::Type)),
            _ => None,
        }
    }
    let mut paths = Vec::new();
    for node in &graph.nodes {
        if let Some((path, using)) = step(&node.kind, node.full_event) {
            paths.push((path, using, node.impl_span));
        }
        let NodeKind::Router(router) = &node.kind else { continue };
        if let RouterKind::Custom(path) = &router.kind {
            paths.push((path.as_str(), HandlerUse::Type, node.impl_span));
        }
        // A runner's selector is a function of the body, as a body step's is.
        if let Some(ir::Selector::Function { path, span }) = &router.select {
            paths.push((path.as_str(), HandlerUse::Body, *span));
        }
        for route in &router.routes {
            match &route.kind {
                RouteKind::Step(kind) => {
                    if let Some((path, using)) = step(kind, false) {
                        paths.push((path, using, route.impl_span));
                    }
                }
                RouteKind::Model(ir::Model { source: ir::ModelSource::User { path, .. }, .. }) => {
                    paths.push((path.as_str(), HandlerUse::Type, route.impl_span));
                }
                RouteKind::Model(_) => {}
            }
        }
    }
    paths
}

/// Handler paths whose crate is not given, and, when the handler crate is known, paths into it
/// that name nothing public of the right kind. `handlers` is the handler crate, if any.
pub fn check_handler_paths(graph: &Graph, handlers: Option<&HandlerCrate>) -> Vec<Diagnostic> {
    let name = handlers.map(HandlerCrate::name);
    let mut found = Vec::new();
    for (path, using, span) in handler_paths(graph) {
        let mut segments = path.split("::");
        let first = segments.next().unwrap_or_default();
        if matches!(first, "" | "crate" | "self" | "super") {
            continue;
        }
        match handlers {
            Some(handlers) if first == handlers.name => {
                let rest: Vec<&str> = segments.collect();
                if let Some(diagnostic) = resolve(handlers, path, &rest, using, span) {
                    found.push(diagnostic);
                }
            }
            _ => {
                let help = match name {
                    Some(name) => format!(
                        "the handler crate is `{name}`: write `{name}::...`, or `::{first}::...` for a dependency of it"
                    ),
                    None => format!(
                        "give the crate that holds it: `handlers = \"path/to/{first}\";` in the graph (relative to the file), or `--handlers DIR`"
                    ),
                };
                found.push(
                    Diagnostic::error(
                        Code::UnknownHandler,
                        format!("no crate `{first}` is given for the handler `{path}`"),
                        span,
                        format!("`{first}` names no crate this graph is built with"),
                    )
                    .with_help(help),
                );
            }
        }
    }
    found
}

/// Follows `rest` (the path after the crate's name) through the crate; a diagnostic when it
/// leads nowhere, to something private, or to the wrong kind of item.
fn resolve(handlers: &HandlerCrate, path: &str, rest: &[&str], using: HandlerUse, span: Span) -> Option<Diagnostic> {
    let mut module = &handlers.root;
    let mut walked = handlers.name.clone();
    for (index, segment) in rest.iter().enumerate() {
        let segment = segment.strip_prefix("r#").unwrap_or(segment);
        let last = index + 1 == rest.len();
        let Some(item) = module.items.get(segment) else {
            if module.open {
                return None;
            }
            let help = did_you_mean(segment, module.names())
                .map(|hint| format!("{hint} (a public item of `{walked}`)"))
                .unwrap_or_else(|| public_items(module, &walked));
            return Some(unknown_item(path, format!("`{walked}` has no `{segment}`"), span, help));
        };
        if !item.public {
            return Some(unknown_item(
                path,
                format!("`{walked}::{segment}` is private"),
                span,
                "mark it `pub` in the handler crate: the generated crate calls it from outside".to_string(),
            ));
        }
        walked = format!("{walked}::{segment}");
        match &item.kind {
            ItemKind::Module(Some(inner)) if !last => module = inner,
            ItemKind::Module(None) | ItemKind::Other => return None,
            ItemKind::Module(Some(_)) => {
                return Some(unknown_item(path, format!("`{walked}` is a module"), span, expected(using)));
            }
            ItemKind::Function { arguments } if last => {
                return match (using, using.arguments()) {
                    (HandlerUse::Type, _) => {
                        Some(unknown_item(path, format!("`{walked}` is a function"), span, expected(using)))
                    }
                    (_, Some(wanted)) if wanted != *arguments => Some(arguments_differ(path, *arguments, using, span)),
                    _ => None,
                };
            }
            ItemKind::Function { .. } => {
                return Some(unknown_item(
                    path,
                    format!("`{walked}` is a function, not a module"),
                    span,
                    expected(using),
                ));
            }
            ItemKind::Type { .. } if last => {
                return (using != HandlerUse::Type)
                    .then(|| unknown_item(path, format!("`{walked}` is a type"), span, expected(using)));
            }
            ItemKind::Type { functions, has_trait_impls } => {
                let function = rest.get(index + 1).copied().unwrap_or_default();
                if index + 2 != rest.len() {
                    return None;
                }
                return match functions.get(function) {
                    Some(arguments) => match using.arguments() {
                        Some(wanted) if wanted != *arguments => Some(arguments_differ(path, *arguments, using, span)),
                        None => Some(unknown_item(
                            path,
                            format!("`{walked}::{function}` is a function"),
                            span,
                            expected(using),
                        )),
                        _ => None,
                    },
                    None if *has_trait_impls => None,
                    None => {
                        let help = did_you_mean(function, functions.keys().map(String::as_str))
                            .unwrap_or_else(|| "name a `pub fn` of one of its `impl` blocks".to_string());
                        Some(unknown_item(path, format!("`{walked}` has no function `{function}`"), span, help))
                    }
                };
            }
        }
    }
    None
}

fn public_items(module: &Module, walked: &str) -> String {
    let names: Vec<&str> = module.names().take(8).collect();
    if names.is_empty() {
        format!("`{walked}` has no public items")
    } else {
        format!("`{walked}` has: {}", names.join(", "))
    }
}

fn expected(using: HandlerUse) -> String {
    match using {
        HandlerUse::Body => "`fn` steps name a function that takes the body: `pub fn step(body: Value) -> Value`".into(),
        HandlerUse::FullEvent => {
            "`full_event` steps name a function of the event and the context: `pub fn step(event: &mut Event, context: &Context)`".into()
        }
        HandlerUse::Type => "`new` steps, custom routers and user models name a type: `pub struct Step { ... }`".into(),
    }
}

fn unknown_item(path: &str, why: String, span: Span, help: String) -> Diagnostic {
    Diagnostic::error(
        Code::UnknownHandlerItem,
        format!("the handler `{path}` cannot be called: {why}"),
        span,
        "named here",
    )
    .with_help(help)
}

fn arguments_differ(path: &str, arguments: usize, using: HandlerUse, span: Span) -> Diagnostic {
    let plural = if arguments == 1 { "" } else { "s" };
    Diagnostic::error(
        Code::HandlerArguments,
        format!("the handler `{path}` takes {arguments} argument{plural}"),
        span,
        "called here",
    )
    .with_help(match (using, arguments) {
        (HandlerUse::Body, 2) => {
            "a function of the event and the context runs with `full_event`: `fn path { full_event; }`".to_string()
        }
        (HandlerUse::FullEvent, 1) => "a function of the body runs without `full_event`".to_string(),
        _ => expected(using),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crate_of(files: &[(&str, &str)]) -> HandlerCrate {
        let files: BTreeMap<String, String> =
            files.iter().map(|(path, text)| (path.to_string(), text.to_string())).collect();
        HandlerCrate::read("my-handlers", &mut |path| files.get(path).cloned())
    }

    fn check(handlers: &HandlerCrate, path: &str, using: HandlerUse) -> Option<String> {
        let rest: Vec<&str> = path.split("::").skip(1).collect();
        resolve(handlers, path, &rest, using, Span::default()).map(|d| format!("{}: {}", d.code, d.message))
    }

    #[test]
    fn paths_resolve_through_modules_files_and_impl_blocks() {
        let handlers = crate_of(&[
            (
                "src/lib.rs",
                "pub mod orders; pub mod inline { pub fn twice(body: Value) -> Value { body } } \
                 pub fn stamp(event: &mut Event, context: &Context) {} fn hidden(body: Value) -> Value { body } \
                 pub struct Scale; impl Scale { pub fn new(body: Value) -> Value { body } } \
                 pub use orders::parse as parse_order; pub mod glob { pub use super::*; }",
            ),
            ("src/orders.rs", "pub mod deep; pub fn parse(body: Value) -> Value { body }"),
            ("src/orders/deep/mod.rs", "pub fn r#async(body: Value) -> Value { body }"),
        ]);
        for (path, using) in [
            ("my_handlers::orders::parse", HandlerUse::Body),
            ("my_handlers::orders::deep::async", HandlerUse::Body),
            ("my_handlers::inline::twice", HandlerUse::Body),
            ("my_handlers::stamp", HandlerUse::FullEvent),
            ("my_handlers::Scale", HandlerUse::Type),
            ("my_handlers::Scale::new", HandlerUse::Body),
            ("my_handlers::parse_order", HandlerUse::Body),
            ("my_handlers::glob::anything", HandlerUse::Body),
        ] {
            assert_eq!(check(&handlers, path, using), None, "{path}");
        }
        let wrong = |path, using| check(&handlers, path, using).unwrap_or_default();
        assert!(wrong("my_handlers::orders::prase", HandlerUse::Body).contains("has no `prase`"));
        assert!(wrong("my_handlers::hidden", HandlerUse::Body).contains("is private"));
        assert!(wrong("my_handlers::stamp", HandlerUse::Body).starts_with("graphc::handler_arguments"));
        assert!(wrong("my_handlers::orders::parse", HandlerUse::Type).contains("is a function"));
        assert!(wrong("my_handlers::Scale", HandlerUse::Body).contains("is a type"));
        assert!(wrong("my_handlers::Scale::old", HandlerUse::Body).contains("has no function `old`"));
        assert!(wrong("my_handlers::nowhere::f", HandlerUse::Body).contains("has no `nowhere`"));
    }

    #[test]
    fn what_cannot_be_seen_through_is_never_reported() {
        let handlers = crate_of(&[("src/lib.rs", "some_macro! { pub fn made() {} } #[path = \"x.rs\"] pub mod odd;")]);
        assert_eq!(check(&handlers, "my_handlers::made", HandlerUse::Body), None);
        let unparsable = crate_of(&[("src/lib.rs", "pub fn (")]);
        assert_eq!(check(&unparsable, "my_handlers::anything", HandlerUse::Body), None);
        let missing = crate_of(&[]);
        assert_eq!(check(&missing, "my_handlers::anything", HandlerUse::Body), None);
    }
}
