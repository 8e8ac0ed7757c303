//! `graphc fmt`: the one canonical layout of a `.graph` file, comments kept where they were.
//!
//! The layout is printed from the syntax tree (so every construct has one form, whatever the
//! spacing it was written with) by a Wadler-style printer: a group is laid out on one line when
//! it fits in [`WIDTH`] columns, else broken one element per line with a trailing comma, as
//! rustfmt and `gleam format` do. Literals are printed as written (raw strings stay raw,
//! `1_000` keeps its underscores); blank lines between items are kept, at most one.
//!
//! Comments are not in the tree, so they are found in the text and placed at the nearest line
//! break: before the item, route, option, argument or entry they precede, or after the one they
//! follow on its line. A comment inside an expression moves to the next such place. Every comment
//! is printed exactly once, in source order.

use crate::diagnostic::Diagnostic;
use crate::ir::UnaryOp;
use crate::source::Span;
use crate::syntax::lexer::Token;
use crate::syntax::{self, ast};

/// The column a line should not pass, as rustfmt's default.
pub const WIDTH: usize = 100;
const INDENT: usize = 4;

/// Formats a whole `.graph` file. A file that does not parse is left alone: the diagnostics say
/// why.
pub fn format_source(text: &str) -> Result<String, Vec<Diagnostic>> {
    let graph = syntax::parse(text)?;
    Ok(format_graph(text, &graph))
}

/// Formats a parsed graph, reading literals and comments from the text it was parsed from.
pub fn format_graph(text: &str, graph: &ast::Graph) -> String {
    let mut printer = Printer { text, comments: comment_places(text), next: 0 };
    let doc = printer.file(graph);
    // Lines end as the file's first line does (`\r\n` for a Windows file), everywhere: inside
    // block comments too, which keep their own text.
    let rendered = render(&doc).replace("\r\n", "\n").replace('\r', "\n");
    if text.find('\n').is_some_and(|at| at > 0 && text.as_bytes().get(at - 1) == Some(&b'\r')) {
        rendered.replace('\n', "\r\n")
    } else {
        rendered
    }
}

// ---- documents ----

/// A layout to be decided: text, places that may break, and groups that break together.
#[derive(Clone, Debug)]
enum Doc {
    Text(String),
    /// A space on one line, a line break when the group breaks.
    Line,
    /// Nothing on one line, a line break when the group breaks.
    SoftLine,
    /// Always a line break; the groups around it break.
    HardLine,
    /// Makes the groups around it break (after a line comment).
    BreakParent,
    /// Text only when the group breaks: the trailing comma.
    IfBreak(&'static str),
    /// A comment at the end of a line: printed, but not measured, so that a comment never
    /// changes how the code around it is laid out.
    Trailing(String),
    Indent(Vec<Doc>),
    Group(Vec<Doc>),
    Seq(Vec<Doc>),
}

fn text(s: impl Into<String>) -> Doc {
    Doc::Text(s.into())
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Flat,
    Break,
}

/// Lays a document out: groups flat where they fit.
fn render(doc: &Doc) -> String {
    let mut out = String::new();
    let mut column = 0usize;
    // Indentation is written with the next text, so blank lines carry no trailing spaces.
    let mut pending_indent: Option<usize> = None;
    let mut stack: Vec<(usize, Mode, &Doc)> = vec![(0, Mode::Break, doc)];
    while let Some((indent, mode, doc)) = stack.pop() {
        match doc {
            Doc::Text(s) | Doc::Trailing(s) => {
                if let Some(spaces) = pending_indent.take() {
                    out.extend(std::iter::repeat_n(' ', spaces));
                    column = spaces;
                }
                out.push_str(s);
                column += s.chars().count();
            }
            Doc::Line | Doc::SoftLine | Doc::HardLine if mode == Mode::Break || matches!(doc, Doc::HardLine) => {
                out.push('\n');
                column = 0;
                pending_indent = Some(indent);
            }
            Doc::Line => {
                out.push(' ');
                column += 1;
            }
            Doc::SoftLine | Doc::HardLine | Doc::BreakParent => {}
            Doc::IfBreak(s) => {
                if mode == Mode::Break {
                    out.push_str(s);
                    column += s.len();
                }
            }
            Doc::Indent(docs) => stack.extend(docs.iter().rev().map(|d| (indent + INDENT, mode, d))),
            Doc::Seq(docs) => stack.extend(docs.iter().rev().map(|d| (indent, mode, d))),
            Doc::Group(docs) => {
                let start = pending_indent.unwrap_or(column);
                let fits = fits(docs, &stack, WIDTH.saturating_sub(start));
                let mode = if fits { Mode::Flat } else { Mode::Break };
                stack.extend(docs.iter().rev().map(|d| (indent, mode, d)));
            }
        }
    }
    // One newline at the end, none before it.
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    out.push('\n');
    out
}

/// True when `docs`, laid flat, and what follows them up to the next line break fit in `width`.
/// What follows is measured in its own mode, as Prettier does: a break there ends the line.
fn fits(docs: &[Doc], rest: &[(usize, Mode, &Doc)], width: usize) -> bool {
    let mut width = width as isize;
    let mut work: Vec<(Mode, &Doc)> = docs.iter().rev().map(|d| (Mode::Flat, d)).collect();
    let mut rest = rest.iter().rev();
    loop {
        let Some((mode, doc)) = work.pop().or_else(|| rest.next().map(|(_, mode, doc)| (*mode, *doc))) else {
            return true;
        };
        match doc {
            Doc::Text(s) => {
                if s.contains('\n') {
                    return false;
                }
                width -= s.chars().count() as isize;
            }
            Doc::Line | Doc::SoftLine if mode == Mode::Break => return true,
            Doc::HardLine if mode == Mode::Break => return true,
            Doc::Line => width -= 1,
            Doc::SoftLine | Doc::Trailing(_) => {}
            Doc::HardLine | Doc::BreakParent => {
                if mode == Mode::Flat {
                    return false;
                }
            }
            Doc::IfBreak(s) => {
                if mode == Mode::Break {
                    width -= s.len() as isize;
                }
            }
            Doc::Indent(docs) | Doc::Group(docs) | Doc::Seq(docs) => work.extend(docs.iter().rev().map(|d| (mode, d))),
        }
        if width < 0 {
            return false;
        }
    }
}

// ---- comments ----

/// A comment's place in the text.
#[derive(Clone, Copy, Debug)]
struct Comment {
    start: usize,
    end: usize,
}

/// Where every comment of `text` is, in order.
pub fn comments(text: &str) -> Vec<Span> {
    comment_places(text).into_iter().map(|c| Span::new(c.start, c.end)).collect()
}

/// Every comment of the text, in order, as the one lexer finds them.
fn comment_places(text: &str) -> Vec<Comment> {
    crate::syntax::lexer::tokens(text)
        .filter(|(token, _)| matches!(token, Ok(Token::LineComment | Token::BlockComment)))
        .map(|(_, range)| Comment { start: range.start, end: range.end })
        .collect()
}

// ---- the printer ----

struct Printer<'a> {
    text: &'a str,
    comments: Vec<Comment>,
    /// The first comment not yet printed.
    next: usize,
}

/// The lines of a `{ ... }` block being printed: items, each on its own line.
struct Block {
    parts: Vec<Doc>,
    /// The end of what was printed last, to see blank lines after it.
    cursor: usize,
    first: bool,
}

/// The elements of a one-line-or-one-per-line list being printed.
struct List {
    parts: Vec<Doc>,
    count: usize,
}

impl<'a> Printer<'a> {
    fn slice(&self, span: Span) -> &'a str {
        self.text.get(span.range()).unwrap_or_default()
    }

    fn comment_text(&self, comment: Comment) -> String {
        self.text.get(comment.start..comment.end).unwrap_or_default().trim_end().to_string()
    }

    /// True when the text between `from` and `to` holds an empty line.
    fn blank_between(&self, from: usize, to: usize) -> bool {
        let Some(between) = self.text.get(from.min(to)..to) else { return false };
        between
            .split('\n')
            .skip(1)
            .collect::<Vec<_>>()
            .split_last()
            .is_some_and(|(_, middle)| middle.iter().any(|line| line.trim().is_empty()))
    }

    /// The next comment, when it starts before `limit`.
    fn comment_before(&mut self, limit: usize) -> Option<Comment> {
        let comment = *self.comments.get(self.next)?;
        (comment.start < limit).then(|| {
            self.next += 1;
            comment
        })
    }

    /// The next comment, when it follows `end` on the same line (after at most `,` or `;`).
    fn trailing_comment(&mut self, end: usize) -> Option<Comment> {
        let comment = *self.comments.get(self.next)?;
        let between = self.text.get(end..comment.start)?;
        between.chars().all(|c| c == ' ' || c == '\t' || c == ',' || c == ';').then(|| {
            self.next += 1;
            comment
        })
    }

    // -- blocks --

    fn block(&self) -> Block {
        Block { parts: Vec::new(), cursor: 0, first: true }
    }

    /// Starts a line of a block at `start`: the comments before it, a kept blank line.
    fn block_line(&mut self, block: &mut Block, start: usize) {
        while let Some(comment) = self.comment_before(start) {
            self.block_break(block, comment.start);
            block.parts.push(text(self.comment_text(comment)));
            block.cursor = comment.end;
        }
        self.block_break(block, start);
    }

    fn block_break(&mut self, block: &mut Block, next: usize) {
        if !block.first && self.blank_between(block.cursor, next) {
            block.parts.push(Doc::HardLine);
        }
        block.parts.push(Doc::HardLine);
        block.first = false;
    }

    /// Ends a line of a block whose text ended at `end`: a comment after it on the line.
    fn block_line_end(&mut self, block: &mut Block, end: usize) {
        block.cursor = end;
        if let Some(comment) = self.trailing_comment(end) {
            block.parts.push(Doc::Trailing(format!(" {}", self.comment_text(comment))));
            block.cursor = comment.end;
        }
    }

    /// Closes a block at its `}` (at `close`): `{` and `}` around the lines, or `{}`.
    fn close_block(&mut self, mut block: Block, close: usize) -> Doc {
        while let Some(comment) = self.comment_before(close) {
            self.block_break(&mut block, comment.start);
            block.parts.push(text(self.comment_text(comment)));
            block.cursor = comment.end;
        }
        if block.parts.is_empty() {
            return text("{}");
        }
        Doc::Seq(vec![text("{"), Doc::Indent(block.parts), Doc::HardLine, text("}")])
    }

    /// A `{ ... }` block of `entries` in source order, one per line, each printed by `print`;
    /// `declaration` ends at the block's `}`.
    fn block_of<T>(
        &mut self,
        mut entries: Vec<(Span, T)>,
        declaration: Span,
        mut print: impl FnMut(&mut Self, T) -> Doc,
    ) -> Doc {
        entries.sort_by_key(|(span, _)| *span);
        let mut block = self.block();
        for (span, entry) in entries {
            self.block_line(&mut block, span.start_byte());
            let doc = print(self, entry);
            block.parts.push(doc);
            self.block_line_end(&mut block, span.end_byte());
        }
        self.close_block(block, declaration.end_byte().saturating_sub(1))
    }

    // -- lists --

    fn list(&self) -> List {
        List { parts: Vec::new(), count: 0 }
    }

    /// Starts an element of a list at `start`, after the comments before it.
    fn list_item(&mut self, list: &mut List, start: usize, spaced: bool) {
        list.parts.push(if list.count == 0 && !spaced { Doc::SoftLine } else { Doc::Line });
        while let Some(comment) = self.comment_before(start) {
            list.parts.push(text(self.comment_text(comment)));
            list.parts.push(Doc::HardLine);
        }
        list.count += 1;
    }

    /// Ends an element that ended at `end`, with its separator: always, or only when broken.
    fn list_item_end(&mut self, list: &mut List, end: usize, separator: Separator) {
        list.parts.push(match separator {
            Separator::Always(s) => text(s),
            Separator::WhenBroken(s) => Doc::IfBreak(s),
        });
        if let Some(comment) = self.trailing_comment(end) {
            list.parts.push(Doc::Trailing(format!(" {}", self.comment_text(comment))));
            list.parts.push(Doc::BreakParent);
        }
    }

    /// Closes a list at `close`: one group, `open` and `close_text` around it.
    fn close_list(&mut self, mut list: List, close: usize, open: &str, close_text: &str, spaced: bool) -> Doc {
        let mut trailing = Vec::new();
        while let Some(comment) = self.comment_before(close) {
            trailing.push(Doc::HardLine);
            trailing.push(text(self.comment_text(comment)));
        }
        if list.count == 0 && trailing.is_empty() {
            return text(format!("{open}{close_text}"));
        }
        list.parts.extend(trailing);
        Doc::Group(vec![
            text(open),
            Doc::Indent(list.parts),
            if spaced { Doc::Line } else { Doc::SoftLine },
            text(close_text),
        ])
    }

    /// A comma-separated list of `items`, each printed by `print`.
    fn comma_list<T>(
        &mut self,
        items: &[T],
        span_of: impl Fn(&T) -> Span,
        mut print: impl FnMut(&mut Self, &T) -> Doc,
        (open, close_text, spaced): (&str, &str, bool),
        close: usize,
    ) -> Doc {
        let mut list = self.list();
        let last = items.len().saturating_sub(1);
        for (index, item) in items.iter().enumerate() {
            let span = span_of(item);
            self.list_item(&mut list, span.start_byte(), spaced);
            let doc = print(self, item);
            list.parts.push(doc);
            let separator = if index == last { Separator::WhenBroken(",") } else { Separator::Always(",") };
            self.list_item_end(&mut list, span.end_byte(), separator);
        }
        self.close_list(list, close, open, close_text, spaced)
    }

    // -- the file --

    fn file(&mut self, graph: &ast::Graph) -> Doc {
        let mut parts = Vec::new();
        let start = graph.span.start_byte();
        let mut cursor = 0;
        while let Some(comment) = self.comment_before(start) {
            if !parts.is_empty() && self.blank_between(cursor, comment.start) {
                parts.push(Doc::HardLine);
            }
            parts.push(text(self.comment_text(comment)));
            parts.push(Doc::HardLine);
            cursor = comment.end;
        }
        if !parts.is_empty() && self.blank_between(cursor, start) {
            parts.push(Doc::HardLine);
        }
        parts.push(text(format!("graph {} ", graph.name.name)));
        let items = graph.items.iter().map(|item| (item_span(item), item)).collect();
        parts.push(self.block_of(items, graph.span, |printer, item| printer.item(item)));
        // Comments after the graph.
        while let Some(comment) = self.comment_before(usize::MAX) {
            parts.push(Doc::HardLine);
            parts.push(text(self.comment_text(comment)));
        }
        Doc::Seq(parts)
    }

    fn item(&mut self, item: &ast::Item) -> Doc {
        match item {
            ast::Item::Setting(opt) => Doc::Seq(vec![self.opt(opt), text(";")]),
            ast::Item::Param(param) => {
                let mut parts = vec![text(format!("param {}: ", param.name.name)), type_expr(&param.ty)];
                if let Some(default) = &param.default {
                    parts.push(text(" = "));
                    parts.push(self.expr(default, 0));
                }
                parts.push(text(";"));
                Doc::Seq(parts)
            }
            ast::Item::Secret(name) => text(format!("secret {};", name.name)),
            ast::Item::Function(name) => text(format!("function {};", name.name)),
            ast::Item::Record(record) => {
                let fields = self.comma_list(
                    &record.fields,
                    |(name, ty)| name.span.to(ty.span()),
                    |_, (name, ty)| Doc::Seq(vec![text(format!("{}: ", name.name)), type_expr(ty)]),
                    ("{", "}", true),
                    record.span.end_byte().saturating_sub(1),
                );
                Doc::Seq(vec![text(format!("record {} ", record.name.name)), fields])
            }
            ast::Item::Step(step) => self.step(step),
            ast::Item::Router(router) => self.router(router),
            ast::Item::Queue(queue) => {
                let engine = self.call(&queue.engine);
                let tail = self.options_tail(&queue.options, queue.span);
                Doc::Seq(vec![text(format!("queue {} = ", queue.name.name)), engine, tail])
            }
            ast::Item::Wiring(wiring) => self.wiring(wiring),
            ast::Item::Test(test) => self.test(test),
            ast::Item::Trigger(trigger) => {
                let source = self.call(&trigger.source);
                Doc::Seq(vec![text(format!("trigger {} = ", trigger.name.name)), source, text(";")])
            }
            ast::Item::Model(model) => {
                let implementation = self.implementation(&model.implementation);
                Doc::Seq(vec![text(format!("model {} = ", model.name.name)), implementation, text(";")])
            }
        }
    }

    fn step(&mut self, step: &ast::StepDecl) -> Doc {
        let mut parts = vec![text(format!("step {}", step.name.name))];
        if let Some((input, output)) = &step.signature {
            parts.extend([text(": "), type_expr(input), text(" -> "), type_expr(output)]);
        }
        parts.push(text(" = "));
        parts.push(self.implementation(&step.implementation));
        parts.push(self.options_tail(&step.options, step.span));
        Doc::Seq(parts)
    }

    /// `;` or ` { option; ... }` after a declaration.
    fn options_tail(&mut self, options: &[ast::Opt], declaration: Span) -> Doc {
        if options.is_empty() {
            return text(";");
        }
        let mut list = self.list();
        for opt in options {
            self.list_item(&mut list, opt.span.start_byte(), true);
            let doc = self.opt(opt);
            list.parts.push(doc);
            self.list_item_end(&mut list, opt.span.end_byte(), Separator::Always(";"));
        }
        let block = self.close_list(list, declaration.end_byte().saturating_sub(1), "{", "}", true);
        Doc::Seq(vec![text(" "), block])
    }

    fn router(&mut self, router: &ast::RouterDecl) -> Doc {
        let kind = match &router.kind {
            ast::RouterKindAst::Named(name) => name.name.to_string(),
            ast::RouterKindAst::Custom(path) => format!("custom {path}"),
        };
        // Routes and options in the order they were written.
        enum Entry<'r> {
            Route(&'r ast::RouteDecl),
            Opt(&'r ast::Opt),
        }
        let entries = router
            .routes
            .iter()
            .map(|route| (route.span, Entry::Route(route)))
            .chain(router.options.iter().map(|opt| (opt.span, Entry::Opt(opt))))
            .collect();
        let body = self.block_of(entries, router.span, |printer, entry| match entry {
            Entry::Route(route) => {
                let version = route.version.as_ref().map(|v| format!(":{}", v.name)).unwrap_or_default();
                let implementation = printer.implementation(&route.implementation);
                Doc::Seq(vec![text(format!("route {}{version} = ", route.name.name)), implementation, text(";")])
            }
            Entry::Opt(opt) => Doc::Seq(vec![printer.opt(opt), text(";")]),
        });
        Doc::Seq(vec![text(format!("router {} = {kind} ", router.name.name)), body])
    }

    fn wiring(&mut self, wiring: &ast::Wiring) -> Doc {
        let mut stages = wiring.stages.iter().map(|stage| match stage.as_slice() {
            [one] => text(one.name.as_str()),
            many => Doc::Group(vec![
                text("["),
                Doc::Indent(
                    many.iter()
                        .enumerate()
                        .flat_map(|(index, name)| {
                            let separator = if index + 1 == many.len() { Doc::IfBreak(",") } else { text(",") };
                            [if index == 0 { Doc::SoftLine } else { Doc::Line }, text(name.name.as_str()), separator]
                        })
                        .collect(),
                ),
                Doc::SoftLine,
                text("]"),
            ]),
        });
        let first = stages.next().unwrap_or_else(|| text(""));
        let rest: Vec<Doc> = stages.flat_map(|stage| [Doc::Line, text("-> "), stage]).collect();
        Doc::Seq(vec![Doc::Group(vec![first, Doc::Indent(rest)]), text(";")])
    }

    fn test(&mut self, test: &ast::TestDecl) -> Doc {
        enum Entry<'t> {
            Request(&'t ast::Request),
            Expect(&'t ast::Expr),
        }
        let entries = test
            .requests
            .iter()
            .map(|request| (request.span, Entry::Request(request)))
            .chain(test.expects.iter().map(|expect| (expect.span, Entry::Expect(expect))))
            .collect();
        let body = self.block_of(entries, test.span, |printer, entry| match entry {
            Entry::Request(request) => {
                let method = request.method.as_ref().map(|m| format!("{} ", m.name)).unwrap_or_default();
                let head = text(format!("request {method}{}", printer.slice(request.path.span)));
                let tail = printer.options_tail(&request.options, request.span);
                Doc::Seq(vec![head, tail])
            }
            Entry::Expect(expect) => Doc::Seq(vec![text("expect "), printer.expr(expect, 0), text(";")]),
        });
        Doc::Seq(vec![text(format!("test {} ", test.name.name)), body])
    }

    fn opt(&mut self, opt: &ast::Opt) -> Doc {
        match &opt.value {
            None => text(opt.key.name.as_str()),
            Some(ast::OptValue::Star(_)) => text(format!("{} = *", opt.key.name)),
            Some(ast::OptValue::Expr(expr)) => Doc::Seq(vec![text(format!("{} = ", opt.key.name)), self.expr(expr, 0)]),
            Some(ast::OptValue::Function(path)) => text(format!("{} = fn {path}", opt.key.name)),
        }
    }

    fn implementation(&mut self, implementation: &ast::StepImpl) -> Doc {
        match implementation {
            ast::StepImpl::Function(path) => text(format!("fn {path}")),
            ast::StepImpl::Construct(path, args, span) => {
                // `new T` and `new T()` are the same: the canonical form has no empty brackets.
                if args.is_empty() && !self.has_comment_within(*span) {
                    return text(format!("new {path}"));
                }
                let args = self.args(args, span.end_byte().saturating_sub(1));
                Doc::Seq(vec![text(format!("new {path}")), args])
            }
            ast::StepImpl::Remote(args, span) => {
                let args = self.args(args, span.end_byte().saturating_sub(1));
                Doc::Seq(vec![text("$remote"), args])
            }
            ast::StepImpl::Choice(arms, span) => {
                let arms = self.comma_list(
                    arms,
                    |arm| arm.condition.as_ref().map_or(arm.outlet.span, |c| c.span.to(arm.outlet.span)),
                    |printer, arm| {
                        let condition = match &arm.condition {
                            Some(condition) => printer.expr(condition, 0),
                            None => text("_"),
                        };
                        Doc::Seq(vec![condition, text(format!(" => {}", arm.outlet.name))])
                    },
                    ("{", "}", true),
                    span.end_byte().saturating_sub(1),
                );
                Doc::Seq(vec![text("choice "), arms])
            }
            ast::StepImpl::UserModel(model) => {
                // `model(` the type and its arguments, then the model's arguments `)`.
                enum Part<'m> {
                    Class(&'m ast::UserModel),
                    Arg(&'m ast::Arg),
                }
                let parts: Vec<Part<'_>> =
                    std::iter::once(Part::Class(model)).chain(model.args.iter().map(Part::Arg)).collect();
                let list = self.comma_list(
                    &parts,
                    |part| match part {
                        Part::Class(model) => model.class_span,
                        Part::Arg(arg) => arg_span(arg),
                    },
                    |printer, part| match part {
                        Part::Class(model) => {
                            if model.class_args.is_empty() && !printer.has_comment_within(model.class_span) {
                                return text(format!("new {}", model.path));
                            }
                            let args = printer.args(&model.class_args, model.class_span.end_byte().saturating_sub(1));
                            Doc::Seq(vec![text(format!("new {}", model.path)), args])
                        }
                        Part::Arg(arg) => printer.arg(arg),
                    },
                    ("(", ")", false),
                    model.span.end_byte().saturating_sub(1),
                );
                Doc::Seq(vec![text("model"), list])
            }
            ast::StepImpl::Call(call) => self.call(call),
            ast::StepImpl::SharedModel(name) => text(name.name.to_string()),
        }
    }

    fn arg(&mut self, arg: &ast::Arg) -> Doc {
        let value = self.expr(&arg.value, 0);
        match &arg.name {
            Some(name) => Doc::Seq(vec![text(format!("{} = ", name.name)), value]),
            None => value,
        }
    }

    fn has_comment_within(&self, span: Span) -> bool {
        self.comments.get(self.next).is_some_and(|c| c.start < span.end_byte())
    }

    fn call(&mut self, call: &ast::Call) -> Doc {
        let args = self.args(&call.args, call.span.end_byte().saturating_sub(1));
        Doc::Seq(vec![text(call.name.name.as_str()), args])
    }

    fn args(&mut self, args: &[ast::Arg], close: usize) -> Doc {
        // One object or array argument hugs the brackets: `map({` ... `})`.
        if let [ast::Arg { name: None, value }] = args
            && matches!(value.kind, ast::ExprKind::Object(_) | ast::ExprKind::Array(_))
            && !self.has_comment_within(Span::new(0, value.span.start_byte()))
            && self.comments.get(self.next).is_none_or(|c| c.start < value.span.end_byte() || c.start > close)
        {
            return Doc::Seq(vec![text("("), self.expr(value, 0), text(")")]);
        }
        self.comma_list(args, arg_span, |printer, arg| printer.arg(arg), ("(", ")", false), close)
    }

    /// An expression, in brackets when it binds less tightly than `context` asks.
    fn expr(&mut self, expr: &ast::Expr, context: u8) -> Doc {
        use ast::ExprKind;
        let own = precedence(&expr.kind);
        let doc = match &expr.kind {
            ExprKind::Null | ExprKind::Bool(_) | ExprKind::Int(_) | ExprKind::Float(_) | ExprKind::Str(_) => {
                text(self.slice(expr.span))
            }
            ExprKind::Name(name) => text(name.name.as_str()),
            ExprKind::Field(operand, field) => {
                Doc::Seq(vec![self.expr(operand, POSTFIX), text(format!(".{}", field.name))])
            }
            ExprKind::Index(operand, index) => {
                Doc::Seq(vec![self.expr(operand, POSTFIX), text("["), self.expr(index, 0), text("]")])
            }
            ExprKind::Unary(op, operand) => {
                let symbol = match op {
                    UnaryOp::Neg => "-",
                    UnaryOp::Not => "!",
                };
                Doc::Seq(vec![text(symbol), self.expr(operand, UNARY)])
            }
            ExprKind::Binary(op, left, right) => {
                let level = op.precedence();
                Doc::Seq(vec![self.expr(left, level), text(format!(" {} ", op.symbol())), self.expr(right, level + 1)])
            }
            ExprKind::Object(entries) => self.comma_list(
                entries,
                |(key, value)| key.span.to(value.span),
                |printer, (key, value)| {
                    Doc::Seq(vec![text(format!("{}: ", printer.slice(key.span))), printer.expr(value, 0)])
                },
                ("{", "}", true),
                expr.span.end_byte().saturating_sub(1),
            ),
            ExprKind::Array(items) => self.comma_list(
                items,
                |item| item.span,
                |printer, item| printer.expr(item, 0),
                ("[", "]", false),
                expr.span.end_byte().saturating_sub(1),
            ),
            ExprKind::Call(call) => self.call(call),
        };
        if own < context { Doc::Seq(vec![text("("), doc, text(")")]) } else { doc }
    }
}

enum Separator {
    Always(&'static str),
    WhenBroken(&'static str),
}

const UNARY: u8 = 6;
const POSTFIX: u8 = 7;
const PRIMARY: u8 = 8;

fn precedence(kind: &ast::ExprKind) -> u8 {
    match kind {
        ast::ExprKind::Binary(op, _, _) => op.precedence(),
        ast::ExprKind::Unary(_, _) => UNARY,
        ast::ExprKind::Field(_, _) | ast::ExprKind::Index(_, _) => POSTFIX,
        _ => PRIMARY,
    }
}

fn type_expr(ty: &ast::TypeExpr) -> Doc {
    fn write(ty: &ast::TypeExpr, out: &mut String) {
        match ty {
            ast::TypeExpr::Named(name) => out.push_str(&name.name),
            ast::TypeExpr::Array(inner, _) => {
                out.push('[');
                write(inner, out);
                out.push(']');
            }
            ast::TypeExpr::Optional(inner, _) => {
                write(inner, out);
                out.push('?');
            }
        }
    }
    let mut out = String::new();
    write(ty, &mut out);
    text(out)
}

fn arg_span(arg: &ast::Arg) -> Span {
    arg.name.as_ref().map_or(arg.value.span, |name| name.span.to(arg.value.span))
}

fn item_span(item: &ast::Item) -> Span {
    match item {
        ast::Item::Setting(opt) => opt.span,
        ast::Item::Param(param) => param.span,
        ast::Item::Secret(name) | ast::Item::Function(name) => name.span,
        ast::Item::Record(record) => record.span,
        ast::Item::Step(step) => step.span,
        ast::Item::Router(router) => router.span,
        ast::Item::Queue(queue) => queue.span,
        ast::Item::Wiring(wiring) => wiring.span,
        ast::Item::Test(test) => test.span,
        ast::Item::Trigger(trigger) => trigger.span,
        ast::Item::Model(model) => model.span,
    }
}

#[cfg(test)]
mod tests {
    use super::format_source;

    #[test]
    fn a_windows_file_keeps_its_line_endings_inside_block_comments_too() {
        let text = "graph g {\r\n    /* a\r\n       b */\r\n    topology = flow;\r\n    step a = map(body);\r\n}\r\n";
        let formatted = format(text);
        assert_eq!(formatted.matches("\r\n").count(), formatted.matches('\n').count(), "{formatted:?}");
        assert!(!formatted.contains("\r\r"), "{formatted:?}");
        assert_eq!(format(&formatted), formatted, "formatting is stable");
        // A Unix file stays a Unix file, whatever its comments hold.
        let unix = format("graph g {\n    /* a\r\n b */\n    topology = flow;\n    step a = map(body);\n}\n");
        assert!(!unix.contains('\r'), "{unix:?}");
    }

    fn format(text: &str) -> String {
        match format_source(text) {
            Ok(formatted) => formatted,
            Err(diagnostics) => format!("error: {diagnostics:?}"),
        }
    }

    #[test]
    fn spacing_is_canonical_and_literals_are_kept() {
        let text = "graph  g{step a=map({x:body.x+1_000,y:r#\"raw\"#});a->b;step b=fn h::b{respond;}}";
        assert_eq!(
            format(text),
            "graph g {\n    step a = map({ x: body.x + 1_000, y: r#\"raw\"# });\n    a -> b;\n    step b = fn h::b { respond; }\n}\n"
        );
    }

    #[test]
    fn brackets_are_where_precedence_needs_them() {
        let text = "graph g { step a = choice { (body.x + 1) * 2 > 3 && !(body.y == 1) => b, _ => b }; step b = map(-(body.x).y); }";
        assert_eq!(
            format(text),
            "graph g {\n    step a = choice { (body.x + 1) * 2 > 3 && !(body.y == 1) => b, _ => b };\n    step b = map(-body.x.y);\n}\n"
        );
    }

    #[test]
    fn long_lists_break_one_element_per_line_with_a_trailing_comma() {
        let text = "graph g { trigger t = stream(url = \"redis://127.0.0.1:6379/incoming-orders\", answers = \"redis://127.0.0.1:6379/order-scores\"); }";
        assert_eq!(
            format(text),
            "graph g {\n    trigger t = stream(\n        url = \"redis://127.0.0.1:6379/incoming-orders\",\n        answers = \"redis://127.0.0.1:6379/order-scores\",\n    );\n}\n"
        );
    }

    #[test]
    fn comments_stay_where_they_were() {
        let text = "// head\n\ngraph g { // after the brace\n    step a = map(body); // trailing\n\n\n    // leading\n    a -> b; step b = map({ x: 1, // in a list\n y: 2 });\n    /* before the end */ }\n// tail\n";
        let formatted = format(text);
        assert_eq!(
            formatted,
            "// head\n\ngraph g {\n    // after the brace\n    step a = map(body); // trailing\n\n    // leading\n    a -> b;\n    step b = map({\n        x: 1, // in a list\n        y: 2,\n    });\n    /* before the end */\n}\n// tail\n"
        );
        assert_eq!(format(&formatted), formatted);
    }

    #[test]
    fn a_file_that_does_not_parse_is_refused() {
        assert!(format("graph g { step a = ; }").starts_with("error:"));
    }
}
