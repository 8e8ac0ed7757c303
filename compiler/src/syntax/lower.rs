//! Pairs to AST, one function per grammar rule; the only file that touches pest pairs.
//!
//! The grammar guarantees the shape of every pair this file takes apart, so a missing child is
//! a bug in this file, not in the user's input; `expect_next` still turns it into a diagnostic
//! rather than a panic, since the compiler core never panics.

use super::ast::*;
use super::grammar::Rule;
use crate::diagnostic::{Code, Diagnostic};
use crate::source::Span;
use pest::iterators::{Pair, Pairs};
use pest::pratt_parser::{Assoc, Op, PrattParser};
use std::cell::RefCell;
use std::sync::OnceLock;

type Lowered<T> = Result<T, Diagnostic>;

/// Operators, operands and postfixes in one expression, nested ones included. Checking walks
/// expression trees recursively, so their size is bounded here, far above real expressions.
const MAX_EXPRESSION_PARTS: usize = 256;

/// Lowers a graph parsed piece by piece: its header (`graph NAME {`), then each item, parsed
/// from where it starts in the file (`base`), so that only one item's parse tree is alive at a
/// time.
pub(super) struct GraphLowerer {
    lowerer: Lowerer,
    /// Where `graph` is written.
    start: usize,
    name: Ident,
    items: Vec<Item>,
}

impl GraphLowerer {
    /// Starts from the header's parse (`graph_head`), at the file's start.
    pub(super) fn new(head: Pair<'_, Rule>) -> Result<Self, Vec<Diagnostic>> {
        let lowerer = Lowerer {
            base: std::cell::Cell::new(0),
            diagnostics: RefCell::new(Vec::new()),
            expression_parts: std::cell::Cell::new(0),
        };
        let span = lowerer.span(&head);
        let mut parts = head.into_inner();
        let start = parts.next().map_or(span.start_byte(), |keyword| lowerer.span(&keyword).start_byte());
        let name = parts
            .find(|pair| pair.as_rule() == Rule::ident)
            .map(|pair| lowerer.ident(pair))
            .ok_or_else(|| vec![internal(span)])?;
        Ok(GraphLowerer { lowerer, start, name, items: Vec::new() })
    }

    /// Lowers one item's parse (`one_item`), made from the text starting at `base`.
    pub(super) fn item(&mut self, one_item: Pair<'_, Rule>, base: usize) -> Result<(), Vec<Diagnostic>> {
        self.lowerer.base.set(base);
        let span = self.lowerer.span(&one_item);
        let item = one_item.into_inner().next().ok_or_else(|| vec![internal(span)])?;
        self.items.push(self.lowerer.item(item).map_err(|d| vec![d])?);
        Ok(())
    }

    /// The graph, from `graph` to its closing brace (which ends at `end`), or every error
    /// found while lowering.
    pub(super) fn finish(self, end: usize) -> Result<Graph, Vec<Diagnostic>> {
        let diagnostics = self.lowerer.diagnostics.into_inner();
        if !diagnostics.is_empty() {
            return Err(diagnostics);
        }
        Ok(Graph { name: self.name, items: exact(self.items), span: Span::new(self.start, end) })
    }
}

/// A vector without spare room: a collected vector of one or two elements would keep room for
/// four, and a large graph holds hundreds of thousands of them.
fn exact<T>(mut items: Vec<T>) -> Vec<T> {
    items.shrink_to_fit();
    items
}

fn internal(span: Span) -> Diagnostic {
    Diagnostic::error(Code::Syntax, "internal error: the parse tree has an unexpected shape", span, "here")
        .with_help("this is a bug in graphc; please report it with this file")
}

fn expect_next<'i>(pairs: &mut Pairs<'i, Rule>, span: Span) -> Lowered<Pair<'i, Rule>> {
    pairs.next().ok_or_else(|| internal(span))
}

/// The children of a pair, keywords dropped.
fn children(pair: Pair<'_, Rule>) -> Pairs<'_, Rule> {
    pair.into_inner()
}

fn is_keyword(rule: Rule) -> bool {
    matches!(
        rule,
        Rule::kw_graph
            | Rule::kw_param
            | Rule::kw_secret
            | Rule::kw_function
            | Rule::kw_record
            | Rule::kw_step
            | Rule::kw_router
            | Rule::kw_route
            | Rule::kw_queue
            | Rule::kw_test
            | Rule::kw_trigger
            | Rule::kw_request
            | Rule::kw_expect
            | Rule::kw_choice
            | Rule::kw_custom
            | Rule::kw_fn
            | Rule::kw_new
            | Rule::kw_model
    )
}

struct Lowerer {
    /// Where the text being lowered starts in the file: items are parsed one at a time.
    base: std::cell::Cell<usize>,
    /// Errors that do not stop lowering, such as an integer too large.
    diagnostics: RefCell<Vec<Diagnostic>>,
    /// Parts of the expression being lowered, against `MAX_EXPRESSION_PARTS`.
    expression_parts: std::cell::Cell<usize>,
}

impl Lowerer {
    /// A pair's span in the whole file.
    fn span(&self, pair: &Pair<'_, Rule>) -> Span {
        let span = pair.as_span();
        let base = self.base.get();
        Span::new(base + span.start(), base + span.end())
    }

    fn ident(&self, pair: Pair<'_, Rule>) -> Ident {
        Ident { name: pair.as_str().into(), span: self.span(&pair) }
    }

    fn rust_path(&self, pair: Pair<'_, Rule>) -> RustPath {
        let span = self.span(&pair);
        let mut segments = Vec::new();
        for part in children(pair) {
            match part.as_rule() {
                Rule::path_sep if segments.is_empty() => segments.push(String::new()),
                Rule::ident => segments.push(part.as_str().to_string()),
                _ => {}
            }
        }
        RustPath { segments, span }
    }

    fn item(&self, pair: Pair<'_, Rule>) -> Lowered<Item> {
        let span = self.span(&pair);
        let rule = pair.as_rule();
        let mut inner = children(pair);
        if inner.peek().is_some_and(|p| is_keyword(p.as_rule())) {
            inner.next();
        }
        Ok(match rule {
            Rule::stray_route => {
                let name = children(expect_next(&mut inner, span)?).nth(1).map_or(span, |p| self.span(&p));
                return Err(Diagnostic::error(
                    Code::Syntax,
                    "a `route` belongs inside a router",
                    name,
                    "a route outside any router",
                )
                .with_help(
                    "put it in a router: `router models = model { route m = ...; }`; in a flow, declare a step instead",
                ));
            }
            Rule::setting => Item::Setting(Box::new(self.option(expect_next(&mut inner, span)?)?)),
            Rule::param_decl => {
                let name = self.ident(expect_next(&mut inner, span)?);
                let ty = self.type_expr(expect_next(&mut inner, span)?)?;
                let default = inner.next().map(|p| self.top_expr(p)).transpose()?;
                Item::Param(Box::new(ParamDecl { name, ty, default, span }))
            }
            Rule::secret_decl => Item::Secret(self.ident(expect_next(&mut inner, span)?)),
            Rule::function_decl => Item::Function(self.ident(expect_next(&mut inner, span)?)),
            Rule::record_decl => {
                let name = self.ident(expect_next(&mut inner, span)?);
                let fields = inner
                    .map(|field| {
                        let mut parts = children(field);
                        let name = self.ident(expect_next(&mut parts, span)?);
                        Ok((name, self.type_expr(expect_next(&mut parts, span)?)?))
                    })
                    .collect::<Lowered<_>>()?;
                Item::Record(Box::new(RecordDecl { name, fields, span }))
            }
            Rule::step_decl => Item::Step(Box::new(self.step(inner, span)?)),
            Rule::router_decl => Item::Router(Box::new(self.router(inner, span)?)),
            Rule::queue_decl => {
                let name = self.ident(expect_next(&mut inner, span)?);
                self.expression_parts.set(0);
                let engine = self.call(expect_next(&mut inner, span)?)?;
                let options = inner.next().map(|p| self.options(p)).transpose()?.unwrap_or_default();
                Item::Queue(Box::new(QueueDecl { name, engine, options, span }))
            }
            Rule::wiring => {
                let stages = exact(
                    inner
                        .filter(|p| p.as_rule() == Rule::wire_stage)
                        .map(|stage| exact(children(stage).map(|p| self.ident(p)).collect()))
                        .collect(),
                );
                Item::Wiring(Wiring { stages, span })
            }
            Rule::test_decl => Item::Test(Box::new(self.test(inner, span)?)),
            Rule::trigger_decl => {
                let name = self.ident(expect_next(&mut inner, span)?);
                self.expression_parts.set(0);
                let source = self.call(expect_next(&mut inner, span)?)?;
                Item::Trigger(Box::new(TriggerDecl { name, source, span }))
            }
            Rule::model_decl => {
                let name = self.ident(expect_next(&mut inner, span)?);
                let implementation = self.step_impl(expect_next(&mut inner, span)?)?;
                Item::Model(Box::new(ModelDecl { name, implementation, span }))
            }
            _ => return Err(internal(span)),
        })
    }

    fn step(&self, mut inner: Pairs<'_, Rule>, span: Span) -> Lowered<StepDecl> {
        let name = self.ident(expect_next(&mut inner, span)?);
        let mut signature = None;
        if inner.peek().is_some_and(|p| p.as_rule() == Rule::signature) {
            let mut types = children(expect_next(&mut inner, span)?).filter(|p| p.as_rule() == Rule::type_expr);
            let input = self.type_expr(types.next().ok_or_else(|| internal(span))?)?;
            let output = self.type_expr(types.next().ok_or_else(|| internal(span))?)?;
            signature = Some((input, output));
        }
        let implementation = self.step_impl(expect_next(&mut inner, span)?)?;
        let options = inner.next().map(|p| self.options(p)).transpose()?.unwrap_or_default();
        Ok(StepDecl { name, signature, implementation, options, span })
    }

    fn step_impl(&self, pair: Pair<'_, Rule>) -> Lowered<StepImpl> {
        self.expression_parts.set(0);
        let span = self.span(&pair);
        let implementation = expect_next(&mut children(pair), span)?;
        let impl_span = self.span(&implementation);
        let rule = implementation.as_rule();
        let mut inner = children(implementation).filter(|p| !is_keyword(p.as_rule()));
        Ok(match rule {
            Rule::fn_impl => StepImpl::Function(self.rust_path(inner.next().ok_or_else(|| internal(span))?)),
            Rule::new_impl => {
                let path = self.rust_path(inner.next().ok_or_else(|| internal(span))?);
                let args = inner.next().map(|p| self.args(p)).transpose()?.unwrap_or_default();
                StepImpl::Construct(path, args, impl_span)
            }
            Rule::remote_impl => {
                let args = inner.next().map(|p| self.args(p)).transpose()?.unwrap_or_default();
                StepImpl::Remote(args, impl_span)
            }
            Rule::choice_impl => {
                let arms = inner.map(|arm| self.choice_arm(arm)).collect::<Lowered<_>>()?;
                StepImpl::Choice(arms, impl_span)
            }
            Rule::model_impl => {
                let class = inner.next().ok_or_else(|| internal(span))?;
                let class_span = self.span(&class);
                let mut class_parts = children(class).filter(|p| !is_keyword(p.as_rule()));
                let path = self.rust_path(class_parts.next().ok_or_else(|| internal(span))?);
                let class_args = class_parts.next().map(|p| self.args(p)).transpose()?.unwrap_or_default();
                let args = inner.next().map(|p| self.args(p)).transpose()?.unwrap_or_default();
                StepImpl::UserModel(Box::new(UserModel { path, class_args, class_span, args, span: impl_span }))
            }
            Rule::call => StepImpl::Call(self.call_parts(impl_span, children_of_call(inner))?),
            _ => return Err(internal(span)),
        })
    }

    fn choice_arm(&self, pair: Pair<'_, Rule>) -> Lowered<ChoiceArm> {
        let span = self.span(&pair);
        let mut inner = children(pair);
        let first = expect_next(&mut inner, span)?;
        let condition = if first.as_rule() == Rule::wildcard { None } else { Some(self.top_expr(first)?) };
        let outlet = inner.find(|p| p.as_rule() == Rule::ident).map(|p| self.ident(p)).ok_or_else(|| internal(span))?;
        Ok(ChoiceArm { condition, outlet })
    }

    fn router(&self, mut inner: Pairs<'_, Rule>, span: Span) -> Lowered<RouterDecl> {
        let name = self.ident(expect_next(&mut inner, span)?);
        let kind_pair = expect_next(&mut children(expect_next(&mut inner, span)?), span)?;
        let kind = match kind_pair.as_rule() {
            Rule::custom_router => {
                let path =
                    children(kind_pair).find(|p| p.as_rule() == Rule::rust_path).ok_or_else(|| internal(span))?;
                RouterKindAst::Custom(self.rust_path(path))
            }
            _ => RouterKindAst::Named(self.ident(kind_pair)),
        };
        let mut routes = Vec::new();
        let mut options = Vec::new();
        for item in inner {
            let item_span = self.span(&item);
            match item.as_rule() {
                Rule::route_decl => {
                    let mut parts = children(item).filter(|p| !is_keyword(p.as_rule())).peekable();
                    let name = self.ident(parts.next().ok_or_else(|| internal(item_span))?);
                    let version = match parts.next_if(|p| p.as_rule() == Rule::route_version) {
                        Some(version) => Some(self.ident(children(version).next().ok_or_else(|| internal(item_span))?)),
                        None => None,
                    };
                    let implementation = parts.next().ok_or_else(|| internal(item_span))?;
                    let implementation = match implementation.as_rule() {
                        Rule::model_ref => StepImpl::SharedModel(
                            self.ident(children(implementation).next().ok_or_else(|| internal(item_span))?),
                        ),
                        _ => self.step_impl(implementation)?,
                    };
                    routes.push(RouteDecl { name, version, implementation, span: item_span });
                }
                _ => options.push(self.option(expect_next(&mut children(item), item_span)?)?),
            }
        }
        Ok(RouterDecl { name, kind, routes, options, span })
    }

    fn test(&self, mut inner: Pairs<'_, Rule>, span: Span) -> Lowered<TestDecl> {
        let name = self.ident(expect_next(&mut inner, span)?);
        let mut requests = Vec::new();
        let mut expects = Vec::new();
        for item in inner {
            let item_span = self.span(&item);
            let rule = item.as_rule();
            let mut parts = children(item).filter(|p| !is_keyword(p.as_rule()));
            if rule == Rule::expect {
                expects.push(self.top_expr(parts.next().ok_or_else(|| internal(item_span))?)?);
                continue;
            }
            let mut method = None;
            let mut path = None;
            let mut options = Vec::new();
            for part in parts {
                match part.as_rule() {
                    Rule::ident => method = Some(self.ident(part)),
                    Rule::string => path = Some(self.string(part)),
                    _ => options = self.options(part)?,
                }
            }
            let path = path.ok_or_else(|| internal(item_span))?;
            requests.push(Request { method, path, options, span: item_span });
        }
        Ok(TestDecl { name, requests, expects, span })
    }

    fn options(&self, pair: Pair<'_, Rule>) -> Lowered<Vec<Opt>> {
        children(pair).map(|option| self.option(option)).collect()
    }

    fn option(&self, pair: Pair<'_, Rule>) -> Lowered<Opt> {
        let span = self.span(&pair);
        let mut inner = children(pair);
        let key = self.ident(expect_next(&mut inner, span)?);
        let value = match inner.next() {
            None => None,
            Some(value) => {
                let value = expect_next(&mut children(value), span)?;
                Some(match value.as_rule() {
                    Rule::star => OptValue::Star(self.span(&value)),
                    Rule::fn_value => {
                        let path = children(value).find(|part| part.as_rule() == Rule::rust_path);
                        OptValue::Function(self.rust_path(path.ok_or_else(|| internal(span))?))
                    }
                    _ => OptValue::Expr(self.top_expr(value)?),
                })
            }
        };
        Ok(Opt { key, value, span })
    }

    fn type_expr(&self, pair: Pair<'_, Rule>) -> Lowered<TypeExpr> {
        let span = self.span(&pair);
        let mut inner = children(pair);
        let base = expect_next(&mut inner, span)?;
        let base_span = self.span(&base);
        let base = match base.as_rule() {
            Rule::array_type => {
                let element = expect_next(&mut children(base), base_span)?;
                TypeExpr::Array(Box::new(self.type_expr(element)?), base_span)
            }
            _ => TypeExpr::Named(self.ident(expect_next(&mut children(base), base_span)?)),
        };
        Ok(match inner.next() {
            Some(_optional) => TypeExpr::Optional(Box::new(base), span),
            None => base,
        })
    }

    fn args(&self, pair: Pair<'_, Rule>) -> Lowered<Vec<Arg>> {
        children(pair)
            .map(|arg| {
                let span = self.span(&arg);
                let mut parts: Vec<Pair<'_, Rule>> = children(arg).collect();
                let value = parts.pop().ok_or_else(|| internal(span))?;
                let name = parts.pop().map(|p| self.ident(p));
                Ok(Arg { name, value: self.expr(value)? })
            })
            .collect::<Lowered<Vec<_>>>()
            .map(exact)
    }

    fn call(&self, pair: Pair<'_, Rule>) -> Lowered<Call> {
        let span = self.span(&pair);
        self.call_parts(span, children_of_call(children(pair)))
    }

    fn call_parts<'i>(
        &self,
        span: Span,
        (name, args): (Option<Pair<'i, Rule>>, Option<Pair<'i, Rule>>),
    ) -> Lowered<Call> {
        let name = self.ident(name.ok_or_else(|| internal(span))?);
        let args = args.map(|p| self.args(p)).transpose()?.unwrap_or_default();
        Ok(Call { name, args, span })
    }

    fn string(&self, pair: Pair<'_, Rule>) -> StrLit {
        let span = self.span(&pair);
        match unescape(pair.as_str()) {
            Ok(value) => StrLit { value, span },
            Err(bad) => {
                let at = Span::new(span.start_byte() + bad.start, span.start_byte() + bad.end);
                self.diagnostics.borrow_mut().push(
                    Diagnostic::error(Code::InvalidLiteral, bad.message, at, "this escape")
                        .with_help("escapes are Rust's: \\n \\r \\t \\\\ \\0 \\\" \\' \\x41 \\u{1F600}; or write a raw string r\"...\""),
                );
                StrLit { value: String::new(), span }
            }
        }
    }

    /// Lowers an expression that is not inside another one, with a fresh size budget.
    fn top_expr(&self, pair: Pair<'_, Rule>) -> Lowered<Expr> {
        self.expression_parts.set(0);
        self.expr(pair)
    }

    fn expr(&self, pair: Pair<'_, Rule>) -> Lowered<Expr> {
        // Operators chain without brackets, so bracket nesting alone does not bound the depth
        // of the tree (`1 + 1 + ...` is left-deep); bound its length as well.
        let span = self.span(&pair);
        let parts = pair.clone().into_inner().len();
        let used = self.expression_parts.get() + parts;
        self.expression_parts.set(used);
        if used > MAX_EXPRESSION_PARTS {
            return Err(Diagnostic::error(
                Code::Syntax,
                format!("expression has more than {MAX_EXPRESSION_PARTS} operators and operands"),
                span,
                "too long",
            )
            .with_help("split it over several steps, or compute it in a Rust step"));
        }
        let pratt = pratt();
        let failure = RefCell::new(None);
        let expr = pratt
            .map_primary(|primary| match self.primary(primary) {
                Ok(expr) => expr,
                Err(diagnostic) => {
                    let span = diagnostic.primary_span();
                    failure.borrow_mut().get_or_insert(diagnostic);
                    Expr { kind: ExprKind::Null, span }
                }
            })
            .map_prefix(|op, operand| {
                let kind = if op.as_rule() == Rule::neg { UnaryOp::Neg } else { UnaryOp::Not };
                let span = self.span(&op).to(operand.span);
                Expr { kind: ExprKind::Unary(kind, Box::new(operand)), span }
            })
            .map_postfix(|operand, op| {
                let span = operand.span.to(self.span(&op));
                match op.as_rule() {
                    Rule::field => {
                        let field = children(op)
                            .next()
                            .map(|p| self.ident(p))
                            .unwrap_or(Ident { name: Default::default(), span });
                        Expr { kind: ExprKind::Field(Box::new(operand), field), span }
                    }
                    _ => {
                        let index = match children(op).next().map(|p| self.expr(p)) {
                            Some(Ok(index)) => index,
                            Some(Err(diagnostic)) => {
                                failure.borrow_mut().get_or_insert(diagnostic);
                                Expr { kind: ExprKind::Null, span }
                            }
                            None => Expr { kind: ExprKind::Null, span },
                        };
                        Expr { kind: ExprKind::Index(Box::new(operand), Box::new(index)), span }
                    }
                }
            })
            .map_infix(|left, op, right| {
                let span = left.span.to(right.span);
                Expr { kind: ExprKind::Binary(binary_op(op.as_rule()), Box::new(left), Box::new(right)), span }
            })
            .parse(children(pair));
        match failure.into_inner() {
            Some(diagnostic) => Err(diagnostic),
            None => Ok(expr),
        }
    }

    fn primary(&self, pair: Pair<'_, Rule>) -> Lowered<Expr> {
        let span = self.span(&pair);
        let text = pair.as_str();
        let kind = match pair.as_rule() {
            Rule::null => ExprKind::Null,
            Rule::boolean => ExprKind::Bool(text == "true"),
            Rule::int => match text.replace('_', "").parse::<i64>() {
                Ok(value) => ExprKind::Int(value),
                Err(_) => {
                    self.diagnostics.borrow_mut().push(
                        Diagnostic::error(
                            Code::InvalidLiteral,
                            "integer literal is too large",
                            span,
                            "does not fit in 64 bits",
                        )
                        .with_help(format!("the largest integer is {}; write a float for larger numbers", i64::MAX)),
                    );
                    ExprKind::Int(0)
                }
            },
            Rule::float => match text.replace('_', "").parse::<f64>() {
                Ok(value) if value.is_finite() => ExprKind::Float(value),
                _ => {
                    self.diagnostics.borrow_mut().push(
                        Diagnostic::error(
                            Code::InvalidLiteral,
                            "float literal is out of range",
                            span,
                            "not a finite number",
                        )
                        .with_help("a float is an f64: at most about 1.8e308"),
                    );
                    ExprKind::Float(0.0)
                }
            },
            Rule::string => ExprKind::Str(self.string(pair).value),
            Rule::name => ExprKind::Name(self.ident(expect_next(&mut children(pair), span)?)),
            Rule::call => ExprKind::Call(Box::new(self.call(pair)?)),
            Rule::array => ExprKind::Array(exact(children(pair).map(|item| self.expr(item)).collect::<Lowered<_>>()?)),
            Rule::object => ExprKind::Object(
                children(pair)
                    .map(|entry| {
                        let entry_span = self.span(&entry);
                        let mut parts = children(entry);
                        let key = expect_next(&mut parts, entry_span)?;
                        let key = match key.as_rule() {
                            Rule::string => self.string(key),
                            _ => StrLit { value: key.as_str().to_string(), span: self.span(&key) },
                        };
                        Ok((key, self.expr(expect_next(&mut parts, entry_span)?)?))
                    })
                    .collect::<Lowered<_>>()
                    .map(exact)?,
            ),
            Rule::expr => return self.expr(pair),
            _ => return Err(internal(span)),
        };
        Ok(Expr { kind, span })
    }
}

fn children_of_call<'i>(
    mut inner: impl Iterator<Item = Pair<'i, Rule>>,
) -> (Option<Pair<'i, Rule>>, Option<Pair<'i, Rule>>) {
    (inner.next(), inner.next())
}

/// The expression parser's operator table, built from `BinaryOp::precedence`: each level's
/// operators together, loosest first; then the prefix and the postfix operators.
fn pratt() -> &'static PrattParser<Rule> {
    static PRATT: OnceLock<PrattParser<Rule>> = OnceLock::new();
    PRATT.get_or_init(|| {
        let mut levels: Vec<u8> = BinaryOp::ALL.iter().map(|op| op.precedence()).collect();
        levels.sort_unstable();
        levels.dedup();
        let mut parser = PrattParser::new();
        for level in levels {
            let mut ops = BinaryOp::ALL
                .into_iter()
                .filter(|op| op.precedence() == level)
                .map(|op| Op::infix(rule_of(op), Assoc::Left));
            if let Some(first) = ops.next() {
                parser = parser.op(ops.fold(first, |all, op| all | op));
            }
        }
        parser.op(Op::prefix(Rule::neg) | Op::prefix(Rule::not)).op(Op::postfix(Rule::field) | Op::postfix(Rule::index))
    })
}

/// The grammar's rule for an operator, and back.
const OPERATOR_RULES: [(BinaryOp, Rule); 13] = [
    (BinaryOp::Or, Rule::or),
    (BinaryOp::And, Rule::and),
    (BinaryOp::Eq, Rule::eq),
    (BinaryOp::Ne, Rule::ne),
    (BinaryOp::Lt, Rule::lt),
    (BinaryOp::Le, Rule::le),
    (BinaryOp::Gt, Rule::gt),
    (BinaryOp::Ge, Rule::ge),
    (BinaryOp::Add, Rule::add),
    (BinaryOp::Sub, Rule::sub),
    (BinaryOp::Mul, Rule::mul),
    (BinaryOp::Div, Rule::div),
    (BinaryOp::Rem, Rule::rem),
];

fn rule_of(op: BinaryOp) -> Rule {
    OPERATOR_RULES.iter().find(|(o, _)| *o == op).map_or(Rule::rem, |(_, rule)| *rule)
}

fn binary_op(rule: Rule) -> BinaryOp {
    // The grammar's `infix` rule admits only these operators.
    OPERATOR_RULES.iter().find(|(_, r)| *r == rule).map_or(BinaryOp::Rem, |(op, _)| *op)
}

/// A bad escape in a string literal: what is wrong, and where (bytes within the literal).
struct BadEscape {
    message: String,
    start: usize,
    end: usize,
}

/// Reads a Rust string literal (plain or raw), quotes included.
fn unescape(literal: &str) -> Result<String, BadEscape> {
    if let Some(raw) = literal.strip_prefix('r') {
        let hashes = raw.len() - raw.trim_start_matches('#').len();
        let body = raw.get(hashes + 1..raw.len().saturating_sub(hashes + 1)).unwrap_or("");
        return Ok(body.to_string());
    }
    let body = literal.get(1..literal.len().saturating_sub(1)).unwrap_or("");
    let mut out = String::with_capacity(body.len());
    let mut chars = body.char_indices().peekable();
    // Offsets within the literal: one past the opening quote.
    let bad = |message: String, start: usize, end: usize| BadEscape { message, start: start + 1, end: end + 1 };
    while let Some((at, c)) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escape_end = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>| {
            chars.peek().map_or(body.len(), |(next, _)| *next)
        };
        match chars.next().map(|(_, c)| c) {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('\'') => out.push('\''),
            Some('\n') => {
                while chars.peek().is_some_and(|(_, c)| c.is_whitespace()) {
                    chars.next();
                }
            }
            Some('x') => {
                let hex: String = chars.by_ref().take(2).map(|(_, c)| c).collect();
                match u8::from_str_radix(&hex, 16) {
                    Ok(byte) if byte < 0x80 => out.push(char::from(byte)),
                    _ => {
                        let end = escape_end(&mut chars);
                        return Err(bad(
                            format!("invalid escape `\\x{hex}`: expected two hex digits up to 7F"),
                            at,
                            end,
                        ));
                    }
                }
            }
            Some('u') => {
                let digits: String =
                    chars.by_ref().map(|(_, c)| c).skip_while(|c| *c == '{').take_while(|c| *c != '}').collect();
                match u32::from_str_radix(&digits, 16).ok().and_then(char::from_u32) {
                    Some(c) => out.push(c),
                    None => {
                        let end = escape_end(&mut chars);
                        return Err(bad(format!("invalid unicode escape `\\u{{{digits}}}`"), at, end));
                    }
                }
            }
            Some(other) => {
                let end = escape_end(&mut chars);
                return Err(bad(format!("unknown escape `\\{other}` in string"), at, end));
            }
            None => return Err(bad("string ends with a lone `\\`".to_string(), at, at + 1)),
        }
    }
    Ok(out)
}
