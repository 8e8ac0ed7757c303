//! The spanned syntax tree of a `.graph` file, as written: nothing resolved, nothing checked.

use crate::source::Span;

pub use crate::ir::Name;

/// A name as written, with where.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    /// The text, inline when short (as names are).
    pub name: Name,
    /// Where it stands.
    pub span: Span,
}

/// A whole graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Graph {
    /// `graph NAME`.
    pub name: Ident,
    /// Declarations, settings and wiring, in source order.
    pub items: Vec<Item>,
    /// The whole declaration.
    pub span: Span,
}

/// One top-level item of a graph. Declarations are boxed: a large graph holds many, and the
/// enum stays small.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `key = value;`
    Setting(Box<Opt>),
    /// `param NAME: TYPE = DEFAULT;`
    Param(Box<ParamDecl>),
    /// `secret NAME;`
    Secret(Ident),
    /// `function NAME;`
    Function(Ident),
    /// `record NAME { ... }`
    Record(Box<RecordDecl>),
    /// `step NAME = ...`
    Step(Box<StepDecl>),
    /// `router NAME = KIND { ... }`
    Router(Box<RouterDecl>),
    /// `queue NAME = ...`
    Queue(Box<QueueDecl>),
    /// `a -> b -> c;`
    Wiring(Wiring),
    /// `test NAME { ... }`
    Test(Box<TestDecl>),
    /// `trigger NAME = stream(...);` or `schedule(...)`
    Trigger(Box<TriggerDecl>),
    /// `model NAME = model(...);`
    Model(Box<ModelDecl>),
}

/// `model NAME = model(...);`: a model loaded once and shared by the routes that name it.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelDecl {
    /// Its name, which routes refer to.
    pub name: Ident,
    /// The model: `model(kind = ..., model_path = ...)` or `model(new Type(...), ...)`.
    pub implementation: StepImpl,
    /// The whole declaration.
    pub span: Span,
}

/// `key = value` or a bare flag `key`.
#[derive(Clone, Debug, PartialEq)]
pub struct Opt {
    /// The option's name.
    pub key: Ident,
    /// The value; `None` for a flag.
    pub value: Option<OptValue>,
    /// The whole option.
    pub span: Span,
}

/// The value of an option.
#[derive(Clone, Debug, PartialEq)]
pub enum OptValue {
    /// `*` (any function).
    Star(Span),
    /// An expression.
    Expr(Expr),
    /// `fn path`: a Rust function (a runner's selector).
    Function(RustPath),
}

/// `param NAME: TYPE = DEFAULT;`
#[derive(Clone, Debug, PartialEq)]
pub struct ParamDecl {
    /// The parameter's name.
    pub name: Ident,
    /// Its declared type.
    pub ty: TypeExpr,
    /// Its default value.
    pub default: Option<Expr>,
    /// The whole declaration.
    pub span: Span,
}

/// `record NAME { field: type, ... }`
#[derive(Clone, Debug, PartialEq)]
pub struct RecordDecl {
    /// The record's name.
    pub name: Ident,
    /// Its fields in order.
    pub fields: Vec<(Ident, TypeExpr)>,
    /// The whole declaration.
    pub span: Span,
}

/// A type as written.
#[derive(Clone, Debug, PartialEq)]
pub enum TypeExpr {
    /// `int`, `str`, a record name, ...
    Named(Ident),
    /// `[T]`
    Array(Box<TypeExpr>, Span),
    /// `T?`
    Optional(Box<TypeExpr>, Span),
}

impl TypeExpr {
    /// Where the type stands.
    pub fn span(&self) -> Span {
        match self {
            TypeExpr::Named(ident) => ident.span,
            TypeExpr::Array(_, span) | TypeExpr::Optional(_, span) => *span,
        }
    }
}

/// `step NAME[: IN -> OUT] = IMPL { options }`
#[derive(Clone, Debug, PartialEq)]
pub struct StepDecl {
    /// The step's name.
    pub name: Ident,
    /// Declared input and output types.
    pub signature: Option<(TypeExpr, TypeExpr)>,
    /// What it runs.
    pub implementation: StepImpl,
    /// Its options.
    pub options: Vec<Opt>,
    /// The whole declaration.
    pub span: Span,
}

/// What a step or route runs.
#[derive(Clone, Debug, PartialEq)]
pub enum StepImpl {
    /// `fn path`
    Function(RustPath),
    /// `new path(args)`
    Construct(RustPath, Vec<Arg>, Span),
    /// `$remote(args)`
    Remote(Vec<Arg>, Span),
    /// `choice { cond => outlet, ... }`
    Choice(Vec<ChoiceArm>, Span),
    /// `model(new path(args), model_path = "...")`: a model type of the user's, on a route.
    UserModel(Box<UserModel>),
    /// A built-in: `extend(...)`, `map(...)`, `model(...)`, ...
    Call(Call),
    /// `route r = NAME;`: a shared model, by name (routes only).
    SharedModel(Ident),
}

/// `model(new path::Type(class args), model args)`
#[derive(Clone, Debug, PartialEq)]
pub struct UserModel {
    /// The model type.
    pub path: RustPath,
    /// The type's arguments, deserialised into its `LoadModel::Args` at start-up.
    pub class_args: Vec<Arg>,
    /// `new path(...)`.
    pub class_span: Span,
    /// The model's own arguments (`model_path`).
    pub args: Vec<Arg>,
    /// The whole `model(...)`.
    pub span: Span,
}

impl StepImpl {
    /// Where the implementation stands.
    pub fn span(&self) -> Span {
        match self {
            StepImpl::Function(path) => path.span,
            StepImpl::Construct(_, _, span) | StepImpl::Remote(_, span) | StepImpl::Choice(_, span) => *span,
            StepImpl::UserModel(model) => model.span,
            StepImpl::Call(call) => call.span,
            StepImpl::SharedModel(name) => name.span,
        }
    }
}

/// `a::b::C`
#[derive(Clone, Debug, PartialEq)]
pub struct RustPath {
    /// The segments, a leading `::` kept as an empty first segment.
    pub segments: Vec<String>,
    /// Where.
    pub span: Span,
}

impl std::fmt::Display for RustPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.segments.join("::"))
    }
}

/// One arm of a choice: `condition => outlet`, or `_ => outlet`.
#[derive(Clone, Debug, PartialEq)]
pub struct ChoiceArm {
    /// `None` for the `_` arm.
    pub condition: Option<Expr>,
    /// The step the event goes to.
    pub outlet: Ident,
}

/// `name(args)`
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The function's name.
    pub name: Ident,
    /// Its arguments.
    pub args: Vec<Arg>,
    /// The whole call.
    pub span: Span,
}

/// A positional or named argument.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    /// `Some` for `name = value`.
    pub name: Option<Ident>,
    /// The value.
    pub value: Expr,
}

/// `router NAME = KIND { routes and options }`
#[derive(Clone, Debug, PartialEq)]
pub struct RouterDecl {
    /// The router's name.
    pub name: Ident,
    /// `model`, `ensemble`, `parallel` or `custom path`.
    pub kind: RouterKindAst,
    /// Its routes in order.
    pub routes: Vec<RouteDecl>,
    /// Its options.
    pub options: Vec<Opt>,
    /// The whole declaration.
    pub span: Span,
}

/// The kind of a router, as written.
#[derive(Clone, Debug, PartialEq)]
pub enum RouterKindAst {
    /// A built-in kind.
    Named(Ident),
    /// `custom path`
    Custom(RustPath),
}

/// `route NAME = IMPL;`
#[derive(Clone, Debug, PartialEq)]
pub struct RouteDecl {
    /// The route's name: the model's, in `/v2/models/{name}`.
    pub name: Ident,
    /// Its version, in `/v2/models/{name}/versions/{version}`.
    pub version: Option<Ident>,
    /// What it runs.
    pub implementation: StepImpl,
    /// The whole declaration.
    pub span: Span,
}

/// `trigger NAME = stream(...);` or `trigger NAME = schedule(...);`
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerDecl {
    /// The trigger's name.
    pub name: Ident,
    /// Its kind and arguments.
    pub source: Call,
    /// The whole declaration.
    pub span: Span,
}

/// `queue NAME = memory(...)` or `stream(...)`
#[derive(Clone, Debug, PartialEq)]
pub struct QueueDecl {
    /// The queue's name.
    pub name: Ident,
    /// The engine and its arguments.
    pub engine: Call,
    /// Its options.
    pub options: Vec<Opt>,
    /// The whole declaration.
    pub span: Span,
}

/// `a -> [b, c] -> d;`
#[derive(Clone, Debug, PartialEq)]
pub struct Wiring {
    /// Each stage is one name or a bracketed set.
    pub stages: Vec<Vec<Ident>>,
    /// The whole statement.
    pub span: Span,
}

/// `test NAME { request ...; expect ...; }`
#[derive(Clone, Debug, PartialEq)]
pub struct TestDecl {
    /// The test's name.
    pub name: Ident,
    /// The requests, in order (one is usual).
    pub requests: Vec<Request>,
    /// The assertions.
    pub expects: Vec<Expr>,
    /// The whole block.
    pub span: Span,
}

/// `request METHOD "path" { body = ...; headers = ...; }`
#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    /// The HTTP method.
    pub method: Option<Ident>,
    /// The request path.
    pub path: StrLit,
    /// `body`, `headers`, `event_id`.
    pub options: Vec<Opt>,
    /// The whole request.
    pub span: Span,
}

/// A string literal, unescaped.
#[derive(Clone, Debug, PartialEq)]
pub struct StrLit {
    /// The value.
    pub value: String,
    /// Where, quotes included.
    pub span: Span,
}

/// An expression with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What it is.
    pub kind: ExprKind,
    /// Where.
    pub span: Span,
}

/// Expression forms.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// `null`
    Null,
    /// `true`, `false`
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A bare name: `body`, `param`, `flow`, a step name.
    Name(Ident),
    /// `e.field`
    Field(Box<Expr>, Ident),
    /// `e[i]`
    Index(Box<Expr>, Box<Expr>),
    /// `-e`, `!e`
    Unary(UnaryOp, Box<Expr>),
    /// `a op b`
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `{ key: value, ... }`
    Object(Vec<(StrLit, Expr)>),
    /// `[a, b]`
    Array(Vec<Expr>),
    /// `f(args)`, boxed: it is the largest form and the rarest inside expressions.
    Call(Box<Call>),
}

/// The operators are the IR's: the AST and the checked graph share one vocabulary.
pub use crate::ir::{BinaryOp, UnaryOp};
