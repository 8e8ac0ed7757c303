//! Diagnostics: one struct with a stable code per kind of problem, labels at every site, and help.

use crate::source::Span;
use miette::{LabeledSpan, Severity};
use std::fmt;

/// Whether a diagnostic stops compilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// The graph is rejected.
    Error,
    /// The graph compiles, but something is probably wrong.
    Warning,
}

macro_rules! codes {
    ($($variant:ident => $slug:literal, $doc:literal;)*) => {
        /// Every kind of problem the compiler reports, with a stable code for editors and CI.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code { $(#[doc = $doc] $variant,)* }

        impl Code {
            /// The stable code, as printed: `graphc::<slug>`.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => concat!("graphc::", $slug),)* }
            }

            /// Every code, in declaration order.
            pub const ALL: &'static [Code] = &[$(Code::$variant,)*];
        }
    };
}

codes! {
    Syntax => "syntax", "The text does not follow the grammar.";
    InvalidLiteral => "invalid_literal", "A number or string literal that cannot be read.";
    UnknownSetting => "unknown_setting", "A graph setting or step option that does not exist.";
    InvalidValue => "invalid_value", "A setting, option or argument with a value of the wrong form.";
    MissingArgument => "missing_argument", "A required argument or option is missing.";
    DuplicateName => "duplicate_name", "Two declarations share a name.";
    DuplicateSetting => "duplicate_setting", "A setting or option given twice.";
    UnknownStep => "unknown_step", "A reference to a step, router or queue that is not declared.";
    UnknownFunction => "unknown_function", "A step placed on a child function that is not declared.";
    UnknownType => "unknown_type", "A type name that is neither built in nor a declared record.";
    RecursiveRecord => "recursive_record", "A record that holds itself through fields that are always present.";
    UnknownParam => "unknown_param", "A parameter that the graph does not declare.";
    UnknownHandler => "unknown_handler", "An error handler that is not a declared step.";
    UnknownBuiltin => "unknown_builtin", "A step, queue or function name that is not built in.";
    Cycle => "cycle", "The flow's edges form a loop, and the graph does not allow loops (`allow_cycles`).";
    LoopWithoutExit => "loop_without_exit", "A loop no event can leave: no choice on it leads out and no filter on it drops.";
    LoopThroughQueue => "loop_through_queue", "A loop that passes through a queue.";
    TwoResponders => "two_responders", "More than one step answers the caller.";
    SyncBranch => "sync_branch", "The sync engine runs one chain; a step has several parents or children.";
    SyncStartSteps => "sync_start_steps", "The sync engine runs one chain; there are several start steps.";
    FullEventWithPath => "full_event_with_path", "full_event cannot be combined with input_path or result_path.";
    CrossFunctionEdge => "cross_function_edge", "An edge between two functions that is not a stream queue.";
    StepAfterQueueWithoutFunction => "step_after_queue_without_function", "A step after a stream queue must name the function it runs on.";
    FunctionReadsTwoQueues => "function_reads_two_queues", "A function may read from one stream queue only.";
    SyncStreams => "sync_streams", "Stream queues and child functions need the async engine.";
    GraphHandlerWithBefore => "graph_handler_with_before", "The graph-level error handler cannot have `before`.";
    RouterWithoutRoutes => "router_without_routes", "A router with no routes.";
    UnknownModel => "unknown_model", "A route names a shared model (`model NAME = ...`) the graph does not declare.";
    ModelWithoutPath => "model_without_path", "A model route without model_path.";
    ModelNotFound => "model_not_found", "A model route whose model_path names no file (checked by the CLI and build.rs).";
    OnnxUnreadable => "onnx_unreadable", "A `kind = onnx` model whose file is not an ONNX model.";
    OnnxOperator => "onnx_operator", "An ONNX model that uses operators tract does not run.";
    OnnxSignature => "onnx_signature", "An ONNX model whose inputs or outputs are not tensors of rows, or whose inputs are not numbers.";
    ModelInputMismatch => "model_input_mismatch", "An ONNX model route fed a body its model's inputs do not take.";
    InvalidWeights => "invalid_weights", "Ensemble weights that are negative, all zero, or name unknown routes.";
    TypeMismatch => "type_mismatch", "A step receives a body of a type it does not accept.";
    InvalidPath => "invalid_path", "An input_path or result_path that cannot exist on the body's record type.";
    ExprType => "expr_type", "A type error in a built-in step's expression.";
    Topology => "topology", "The declarations do not fit the graph's topology.";
    SelfHandler => "self_handler", "A step that is its own error handler.";
    InvalidQueue => "invalid_queue", "A queue whose engine, URL or capacity is invalid.";
    InvalidTest => "invalid_test", "A test block that cannot be run.";
    Io => "io", "A file that cannot be read.";
    Rustc => "rustc", "rustc's error in the generated code, shown at the graph line it came from.";
    Internal => "internal", "Code generation failed on a graph the checker accepted: a graphc bug.";
    NoStartStep => "no_start_step", "A flow that no step starts: every step follows a queue that nothing writes to.";
    Unreachable => "unreachable", "A step that no event can reach.";
    NoResponder => "no_responder", "A flow in which no step answers the caller.";
    UnusedFunction => "unused_function", "A child function that no step names, so it would run nothing.";
    ReservedName => "reserved_name", "A name that cannot become the Rust item the generated code needs.";
    HandlerLoop => "handler_loop", "Error handlers that, through their own handlers, catch themselves.";
    SyncRemote => "sync_remote", "`$remote` steps need the async engine.";
    RouteKind => "route_kind", "A route that runs something other than a model, `fn` or `new` step.";
    ResponderOnChildFunction => "responder_on_child_function", "A step on a child function marked `respond`: only the root answers the caller.";
    StarAfterStream => "star_after_stream", "A step right after a stream queue with `function = *`: no function would read the stream.";
    InvalidTrigger => "invalid_trigger", "A trigger whose source, schedule, time zone or answers stream is invalid.";
    UnknownHandlerItem => "unknown_handler_item", "A handler path that names no public function or type of the handler crate, or one of the wrong kind (checked by the CLI and build.rs).";
    HandlerArguments => "handler_arguments", "A handler function that takes a number of arguments its step cannot give (checked by the CLI and build.rs).";
    HandlerCrateNotFound => "handler_crate_not_found", "A handler crate folder that does not exist or has no Cargo.toml (checked by the CLI and build.rs).";
    TriggerReadsOwnStream => "trigger_reads_own_stream", "A stream trigger reading a stream the graph itself writes: a queue's, a shard of one, the error stream, or answers.";
    StreamingStep => "streaming_step", "`streaming` on a step that is not a Rust function of the body, or on a step of a loop.";
    SyncStreaming => "sync_streaming", "Streaming steps need the async engine.";
    CollectWithoutStream => "collect_without_stream", "A `collect()` step that does not follow exactly one streaming step.";
    SharedStream => "shared_stream", "A queue's stream that something else in the graph also writes: another queue, a trigger's answers or the error stream.";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One label: a span and what it says about it.
#[derive(Clone, Debug, PartialEq)]
pub struct Label {
    /// Where.
    pub span: Span,
    /// What about it; empty for an unlabelled underline.
    pub message: String,
}

/// One problem found in a graph.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// Error or warning.
    pub level: Level,
    /// Stable code.
    pub code: Code,
    /// The headline.
    pub message: String,
    /// Sites; the first is the primary one.
    pub labels: Vec<Label>,
    /// What to do about it.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error with its primary site.
    pub fn error(code: Code, message: impl Into<String>, span: Span, label: impl Into<String>) -> Self {
        Diagnostic {
            level: Level::Error,
            code,
            message: message.into(),
            labels: vec![Label { span, message: label.into() }],
            help: None,
        }
    }

    /// A warning with its primary site.
    pub fn warning(code: Code, message: impl Into<String>, span: Span, label: impl Into<String>) -> Self {
        Diagnostic { level: Level::Warning, ..Diagnostic::error(code, message, span, label) }
    }

    /// Adds a secondary site.
    pub fn with_label(mut self, span: Span, message: impl Into<String>) -> Self {
        self.labels.push(Label { span, message: message.into() });
        self
    }

    /// Sets the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets the help line when there is one.
    pub fn with_optional_help(mut self, help: Option<String>) -> Self {
        self.help = help.or(self.help);
        self
    }

    /// The replacement a "did you mean `x`?" help proposes for the primary place.
    ///
    /// `text` is the source the diagnostic is about: a name inside a string literal replaces
    /// what is between the quotes, so that applying the suggestion keeps them.
    pub fn suggestion(&self, text: &str) -> Option<(Span, String)> {
        let help = self.help.as_deref()?;
        let (_, rest) = help.split_once("did you mean `")?;
        let (name, _) = rest.split_once('`')?;
        let span = self.primary_span();
        let written = text.get(span.start_byte()..span.end_byte()).unwrap_or_default();
        let span = if written.len() >= 2 && written.starts_with('"') && written.ends_with('"') {
            Span::new(span.start_byte() + 1, span.end_byte() - 1)
        } else {
            span
        };
        Some((span, name.to_string()))
    }

    /// The primary span.
    pub fn primary_span(&self) -> Span {
        self.labels.first().map(|label| label.span).unwrap_or_default()
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Diagnostic {}

impl miette::Diagnostic for Diagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code.as_str()))
    }

    fn severity(&self) -> Option<Severity> {
        Some(match self.level {
            Level::Error => Severity::Error,
            Level::Warning => Severity::Warning,
        })
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help.as_ref().map(|help| Box::new(help) as Box<dyn fmt::Display>)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(self.labels.iter().enumerate().map(|(index, label)| {
            let text = (!label.message.is_empty()).then(|| label.message.clone());
            if index == 0 {
                LabeledSpan::new_primary_with_span(text, label.span)
            } else {
                LabeledSpan::new_with_span(text, label.span)
            }
        })))
    }
}

/// The longest name "did you mean" is looked for.
pub const SUGGESTED_NAME_LENGTH: usize = 128;

/// "did you mean" for a misspelt name: the closest candidate within a small edit distance. The
/// distance costs the product of the two lengths, so it is measured only where it can help: for
/// names people type (up to [`SUGGESTED_NAME_LENGTH`] characters), against candidates whose length
/// differs by no more than the distance allowed.
pub fn did_you_mean<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let length = name.chars().count();
    if length > SUGGESTED_NAME_LENGTH {
        return None;
    }
    let limit = (length / 3).max(1);
    candidates
        .into_iter()
        .filter(|candidate| *candidate != name)
        .filter(|candidate| {
            candidate.len() <= SUGGESTED_NAME_LENGTH * 4 && candidate.chars().count().abs_diff(length) <= limit
        })
        .map(|candidate| (strsim::damerau_levenshtein(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= limit)
        .min()
        .map(|(_, candidate)| format!("did you mean `{candidate}`?"))
}

/// Sorts diagnostics by position, errors before warnings at the same place.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by_key(|d| (d.primary_span(), d.level, d.code));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_close_names_and_skips_what_cannot_be_close() {
        assert_eq!(did_you_mean("enrihc", ["parse", "enrich"]), Some("did you mean `enrich`?".to_string()));
        assert_eq!(did_you_mean("ab", ["abcdefgh"]), None);
        // Not measured at all (a distance between two 100,000-character names takes minutes).
        let long = "x".repeat(100_000);
        assert_eq!(did_you_mean(&long, [&"x".repeat(99_999), "x"]), None);
        assert_eq!(did_you_mean("step", [long.as_str()]), None);
    }
}
