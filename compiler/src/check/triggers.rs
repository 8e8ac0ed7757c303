//! Triggers: a stream or a schedule feeding the root function. Their arguments are closed and
//! checked here (the cron expression and the time zone included, so that a bad schedule is a
//! diagnostic at the expression, not a failure at start-up), and what their answers mean is
//! decided once the graph's answer is known.

use super::Checker;
use crate::diagnostic::{Code, Diagnostic, did_you_mean};
use crate::ir::{self, Answer, Schedule, StreamTarget, TriggerSource};
use crate::syntax::ast::{self, ExprKind};

use super::vocabulary::{SCHEDULE_TRIGGER_ARGS as SCHEDULE_ARGS, STREAM_TRIGGER_ARGS as STREAM_ARGS, TRIGGER_KINDS};

impl<'a> Checker<'a> {
    /// Checks a trigger's arguments and adds it to the graph.
    pub(super) fn resolve_trigger(&mut self, trigger: &'a ast::TriggerDecl) {
        let call = &trigger.source;
        let source = match call.name.name.as_str() {
            "stream" => self.stream_trigger(call),
            "schedule" => self.schedule_trigger(call),
            other => {
                let help = did_you_mean(other, TRIGGER_KINDS.iter().copied()).unwrap_or_else(|| {
                    "a trigger is `stream(url = \"redis://host:port/stream\")` or `schedule(cron = \"0 * * * *\")`; \
                     HTTP needs no trigger"
                        .to_string()
                });
                self.report(
                    Diagnostic::error(
                        Code::UnknownBuiltin,
                        format!("unknown trigger `{other}`"),
                        call.name.span,
                        "not a trigger",
                    )
                    .with_help(help),
                );
                None
            }
        };
        let answers = call
            .args
            .iter()
            .find(|arg| arg.name.as_ref().is_some_and(|name| name.name == "answers"))
            .and_then(|arg| self.redis_stream(&arg.value, None, Code::InvalidTrigger, "answers stream"))
            .map(|(url, stream)| StreamTarget { url, stream });
        if let Some(source) = source {
            self.graph.triggers.push(ir::Trigger {
                name: trigger.name.name.to_string(),
                span: trigger.name.span,
                source,
                answers,
            });
        }
    }

    fn stream_trigger(&mut self, call: &'a ast::Call) -> Option<TriggerSource> {
        let args = self.named_args(call, STREAM_ARGS);
        let get = |name: &str| args.iter().find(|(key, _)| *key == name).map(|(_, value)| *value);
        let Some(url) = get("url") else {
            self.report(
                Diagnostic::error(Code::MissingArgument, "a stream trigger needs a url", call.span, "no `url`")
                    .with_help("write `stream(url = \"redis://127.0.0.1:6379/orders\")`"),
            );
            return None;
        };
        let (url, stream) = self.redis_stream(url, get("stream"), Code::InvalidTrigger, "stream trigger")?;
        let shards = match get("shards") {
            Some(value) => self.positive_int(value, "shards")?,
            None => 1,
        };
        let group = match get("group") {
            None => self.graph.name.clone(),
            Some(ast::Expr { kind: ExprKind::Str(group), .. }) if !group.is_empty() => group.clone(),
            Some(other) => {
                self.report(
                    Diagnostic::error(Code::InvalidTrigger, "`group` takes a non-empty string", other.span, "here")
                        .with_help("write `group = \"scoring\"`; without it the group is the graph's name"),
                );
                return None;
            }
        };
        Some(TriggerSource::Stream { url, stream, shards: shards.min(u32::MAX as i64) as u32, group })
    }

    fn schedule_trigger(&mut self, call: &'a ast::Call) -> Option<TriggerSource> {
        let args = self.named_args(call, SCHEDULE_ARGS);
        let get = |name: &str| args.iter().find(|(key, _)| *key == name).map(|(_, value)| *value);
        let timezone = match get("timezone") {
            None => "UTC".to_string(),
            Some(ast::Expr { kind: ExprKind::Str(zone), span }) => {
                if zone.parse::<chrono_tz::Tz>().is_err() {
                    let help =
                        did_you_mean(zone, chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name())).unwrap_or_else(|| {
                            "time zones are IANA names: `UTC`, `Europe/Paris`, `America/New_York`".into()
                        });
                    self.report(
                        Diagnostic::error(Code::InvalidTrigger, format!("unknown time zone `{zone}`"), *span, "here")
                            .with_help(help),
                    );
                    return None;
                }
                zone.clone()
            }
            Some(other) => {
                self.report(
                    Diagnostic::error(Code::InvalidTrigger, "`timezone` takes a string", other.span, "here")
                        .with_help("write `timezone = \"Europe/Paris\"`"),
                );
                return None;
            }
        };
        let when = match (get("cron"), get("every_ms")) {
            (Some(cron), None) => Schedule::Cron { expression: self.cron(cron)?, timezone },
            (None, Some(every)) => {
                if get("timezone").is_some() {
                    self.report(
                        Diagnostic::error(
                            Code::InvalidTrigger,
                            "`timezone` applies to `cron` only",
                            call.span,
                            "an interval has no time zone",
                        )
                        .with_help("remove `timezone`, or fire at wall-clock times with `cron = \"...\"`"),
                    );
                    return None;
                }
                Schedule::Every { ms: self.positive_int(every, "every_ms")? as u64 }
            }
            (Some(_), Some(every)) => {
                self.report(
                    Diagnostic::error(
                        Code::InvalidTrigger,
                        "a schedule has either `cron` or `every_ms`, not both",
                        every.span,
                        "second schedule",
                    )
                    .with_help("keep one: `cron = \"*/5 * * * *\"` or `every_ms = 300000`"),
                );
                return None;
            }
            (None, None) => {
                self.report(
                    Diagnostic::error(
                        Code::MissingArgument,
                        "a schedule needs `cron` or `every_ms`",
                        call.span,
                        "no schedule",
                    )
                    .with_help("write `schedule(cron = \"0 * * * *\")` (hourly) or `schedule(every_ms = 60000)`"),
                );
                return None;
            }
        };
        let body = match get("body") {
            Some(body) => self.constant(body, None),
            None => ir::Expr::Object(Vec::new()),
        };
        let overlap = match get("overlap") {
            None => false,
            Some(ast::Expr { kind: ExprKind::Bool(overlap), .. }) => *overlap,
            Some(other) => {
                self.report(
                    Diagnostic::error(Code::InvalidTrigger, "`overlap` takes `true` or `false`", other.span, "here")
                        .with_help("`overlap = true` lets a firing start while the previous run is still going"),
                );
                return None;
            }
        };
        Some(TriggerSource::Schedule { when, body, overlap })
    }

    /// A cron expression that parses and fires at least once after 2000-01-01.
    fn cron(&mut self, expr: &ast::Expr) -> Option<String> {
        let ExprKind::Str(expression) = &expr.kind else {
            self.report(
                Diagnostic::error(Code::InvalidTrigger, "`cron` takes a string", expr.span, "here")
                    .with_help("write `cron = \"0 * * * *\"` (minute hour day-of-month month day-of-week)"),
            );
            return None;
        };
        let problem = match expression.parse::<croner::Cron>() {
            Err(error) => Some(format!("invalid cron expression: {error}")),
            Ok(cron) => {
                // A fixed instant, not the clock: the same text checks the same way every day.
                let start = chrono::DateTime::from_timestamp(946_684_800, 0).unwrap_or_default();
                cron.find_next_occurrence(&start, false)
                    .is_err()
                    .then(|| "this cron expression never fires".to_string())
            }
        };
        if let Some(message) = problem {
            self.report(Diagnostic::error(Code::InvalidTrigger, message, expr.span, "here").with_help(
                "cron takes 5 fields (minute hour day-of-month month day-of-week; 0 or 7 is Sunday), \
                     or 6 with seconds first: `0 9 * * 1-5` is 9:00 on weekdays",
            ));
            return None;
        }
        Some(expression.clone())
    }

    /// Trigger rules that need the whole graph: a stream trigger must not read a stream the
    /// graph's own queues carry (it would compete with the function that reads it, or read its
    /// own output), and keeping answers needs something that answers.
    pub(super) fn check_triggers(&mut self) {
        // A schedule's body, typed again now that the start steps' types are known (it typed
        // cleanly when it was resolved: this reports nothing twice).
        let bodies: Vec<&'a ast::Expr> = self
            .ast
            .items
            .iter()
            .filter_map(|item| match item {
                ast::Item::Trigger(trigger) if trigger.source.name.name == "schedule" => trigger
                    .source
                    .args
                    .iter()
                    .find(|arg| arg.name.as_ref().is_some_and(|name| name.name == "body"))
                    .map(|arg| &arg.value),
                _ => None,
            })
            .collect();
        for body in bodies {
            let (_, ty) = self.expr(body, super::types::Scope::Constant);
            self.check_entry_body(&ty, body.span, Code::InvalidTrigger, "this schedule's body");
        }
        self.check_stream_topology();
        let triggers = std::mem::take(&mut self.graph.triggers);
        for trigger in &triggers {
            if trigger.answers.is_some() && self.graph.answer == Answer::Accepted {
                self.report(
                    Diagnostic::error(
                        Code::InvalidTrigger,
                        format!("trigger `{}` keeps answers, but no step of the graph answers", trigger.name),
                        trigger.span,
                        "its answers would only be `{\"id\"}`",
                    )
                    .with_help("mark the step whose output is the answer with `respond`, or remove `answers`"),
                );
            }
        }
        self.graph.triggers = triggers;
    }

    /// Every stream the graph reads and writes, as a whole: a trigger reads only what other
    /// systems write (not a queue's stream or one of its shards, not the error stream, not the
    /// answers of a trigger, its own included: each would read the graph's own output, again and
    /// again), and a queue's stream is its own (no other queue, answers or error stream write
    /// into it, or its function would read them as events).
    fn check_stream_topology(&mut self) {
        struct Written {
            streams: Vec<(String, String)>,
            /// Who writes, and how: `queue `q` carries`.
            writes: String,
            span: crate::source::Span,
            is_queue: bool,
        }
        fn expand(url: &str, stream: &str, shards: u32) -> Vec<(String, String)> {
            let url = url.trim_end_matches('/').to_string();
            let mut streams = vec![(url.clone(), stream.to_string())];
            if shards > 1 {
                streams.extend((0..shards).map(|shard| (url.clone(), format!("{stream}:{shard}"))));
            }
            streams
        }
        let mut written: Vec<Written> = Vec::new();
        for node in &self.graph.nodes {
            if let ir::NodeKind::Queue(queue) = &node.kind
                && let ir::Queue::Stream { url, stream, shards, .. } = &**queue
            {
                written.push(Written {
                    streams: expand(url, stream, *shards),
                    writes: format!("queue `{}` carries", node.name),
                    span: node.span,
                    is_queue: true,
                });
            }
        }
        for trigger in &self.graph.triggers {
            if let Some(answers) = &trigger.answers {
                written.push(Written {
                    streams: expand(&answers.url, &answers.stream, 1),
                    writes: format!("trigger `{}` writes its answers to", trigger.name),
                    span: trigger.span,
                    is_queue: false,
                });
            }
        }
        if let Some(ir::ErrorStream::Stream { url, stream }) = &self.graph.error_stream {
            let span = self
                .ast
                .items
                .iter()
                .find_map(|item| match item {
                    ast::Item::Setting(opt) if opt.key.name == "error_stream" => Some(opt.span),
                    _ => None,
                })
                .unwrap_or_default();
            written.push(Written {
                streams: expand(url, stream, 1),
                writes: "the graph writes its failures to".to_string(),
                span,
                is_queue: false,
            });
        }
        let shared = |a: &[(String, String)], b: &[(String, String)]| {
            a.iter().find(|stream| b.contains(stream)).map(|(_, s)| s.clone())
        };
        let mut found = Vec::new();
        for trigger in &self.graph.triggers {
            let TriggerSource::Stream { url, stream, shards, .. } = &trigger.source else { continue };
            let read = expand(url, stream, *shards);
            for writer in &written {
                let Some(stream) = shared(&read, &writer.streams) else { continue };
                found.push(
                    Diagnostic::error(
                        Code::TriggerReadsOwnStream,
                        format!("trigger `{}` reads `{stream}`, but {} `{stream}`", trigger.name, writer.writes),
                        trigger.span,
                        "reads the graph's own output",
                    )
                    .with_label(writer.span, format!("{} `{stream}`", writer.writes))
                    .with_help("a trigger reads what other systems write: give one of them another stream"),
                );
            }
        }
        for (index, later) in written.iter().enumerate() {
            for earlier in written.iter().take(index).filter(|earlier| earlier.is_queue || later.is_queue) {
                let Some(stream) = shared(&later.streams, &earlier.streams) else { continue };
                found.push(
                    Diagnostic::error(
                        Code::SharedStream,
                        format!("{} `{stream}`, but {} `{stream}` too", later.writes, earlier.writes),
                        later.span,
                        format!("writes `{stream}`"),
                    )
                    .with_label(earlier.span, format!("{} `{stream}`", earlier.writes))
                    .with_help("a queue's stream carries only that queue's events: give each its own stream"),
                );
            }
        }
        for diagnostic in found {
            self.report(diagnostic);
        }
    }
}
