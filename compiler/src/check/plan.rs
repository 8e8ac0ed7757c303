//! The plan: what the back ends print, decided once, on a graph that passed every other check.
//! Each node's catcher, which nodes answer the caller, the split into functions and how each
//! answers; and the rules that decide whether such a plan exists (loops of error handlers, a
//! responder that a deployed graph could not honour).

use super::Checker;
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{
    Answer, Engine, Function, NodeId, NodeKind, Placement, Queue, QueuePlan, QueueRealisation, RuntimeFeature, Topology,
};
use std::collections::BTreeSet;

impl Checker<'_> {
    pub(super) fn plan(&mut self) {
        self.resolve_catchers();
        if !self.check_handler_loops() {
            return;
        }
        self.resolve_answers();
        self.split_functions();
        self.realise_queues();
        self.graph.features = runtime_features(&self.graph);
        self.check_expected_statuses();
    }

    /// What each queue becomes: under the sync engine nothing (events pass straight on); in one
    /// process a memory queue, a stream queue included, unless nothing reads it (an output
    /// stream, written to Redis); in a function, a stream queue it runs is where the event
    /// leaves it, so a writer.
    fn realise_queues(&mut self) {
        let realise = |graph: &crate::ir::Graph, nodes: &[NodeId], split: bool| -> Vec<QueuePlan> {
            nodes
                .iter()
                .filter_map(|&id| {
                    let node = graph.node(id);
                    let NodeKind::Queue(queue) = &node.kind else { return None };
                    let realisation = match (graph.engine, &**queue) {
                        (Engine::Sync, _) => QueueRealisation::PassThrough,
                        (Engine::Async, Queue::Stream { .. }) if split || node.children.is_empty() => {
                            QueueRealisation::StreamWriter
                        }
                        (Engine::Async, Queue::Memory { capacity }) => QueueRealisation::Memory { capacity: *capacity },
                        (Engine::Async, Queue::Stream { .. }) => QueueRealisation::Memory { capacity: 1024 },
                    };
                    Some(QueuePlan { queue: id, realisation })
                })
                .collect()
        };
        let all: Vec<NodeId> = self.graph.node_ids().collect();
        let in_process = realise(&self.graph, &all, false);
        let per_function: Vec<Vec<QueuePlan>> =
            self.graph.functions.iter().map(|function| realise(&self.graph, &function.nodes, true)).collect();
        self.graph.in_process_queues = in_process;
        for (function, queues) in self.graph.functions.iter_mut().zip(per_function) {
            function.queues = queues;
        }
    }

    /// A test that expects a status the graph cannot answer fails whatever the handlers do:
    /// a graph that answers 202 (no responder) never answers 200 or 204, and a graph that
    /// answers with a responder never answers 202 unless a Rust step replies as it likes.
    fn check_expected_statuses(&mut self) {
        let replies_freely = self.graph.nodes.iter().any(|node| {
            matches!(
                node.kind,
                NodeKind::Function(_) | NodeKind::Construct(..) | NodeKind::Remote(_) | NodeKind::Router(_)
            )
        });
        let (impossible, answers): (&[i64], &str) = match self.graph.answer {
            Answer::Accepted => (&[200, 204], "202 at once, with the event id (no step responds)"),
            Answer::WhenDone => (&[200, 204], "202 once its output stream has the event (no step responds)"),
            Answer::Responder if !replies_freely => {
                (&[202], "with its responder's output (200), or 204 when an event is dropped")
            }
            Answer::Responder => (&[], ""),
        };
        let mut found = Vec::new();
        for item in &self.ast.items {
            let crate::syntax::ast::Item::Test(test) = item else { continue };
            for expect in &test.expects {
                if let Some(status) = expected_status(expect).filter(|status| impossible.contains(status)) {
                    found.push(
                        Diagnostic::error(
                            Code::InvalidTest,
                            format!(
                                "test `{}` expects status {status}, which this graph never answers",
                                test.name.name
                            ),
                            expect.span,
                            "cannot hold",
                        )
                        .with_label(self.ast.name.span, format!("this graph answers {answers}"))
                        .with_help(match self.graph.answer {
                            Answer::Responder => {
                                "expect `status == 200`, or 204 for an event the graph drops".to_string()
                            }
                            _ => "expect `status == 202`, or mark the step whose output answers with `respond`"
                                .to_string(),
                        }),
                    );
                }
            }
        }
        self.diagnostics.extend(found);
    }

    /// Nodes that run after an error handler: reachable from a catcher.
    fn error_path(&self) -> BTreeSet<NodeId> {
        self.reach(self.graph.catchers().into_iter().collect())
    }

    fn reach(&self, from: Vec<NodeId>) -> BTreeSet<NodeId> {
        let mut seen = BTreeSet::new();
        let mut work = from;
        while let Some(id) = work.pop() {
            if seen.insert(id) {
                work.extend(self.node(id).children.iter().copied());
            }
        }
        seen
    }

    /// A node's own handler wins; the graph's catches the rest, but not itself and not what runs
    /// after a handler.
    fn resolve_catchers(&mut self) {
        let error_path = self.error_path();
        let graph_handler = self.graph.on_error;
        for id in self.graph.node_ids().collect::<Vec<_>>() {
            let catcher = self
                .node(id)
                .on_error
                .or_else(|| graph_handler.filter(|&handler| handler != id && !error_path.contains(&id)));
            self.node_mut(id).catcher = catcher;
        }
    }

    /// A failure goes to the node's catcher and on through what follows it; if that path leads
    /// back to the node, one failure would run forever. Reports each loop once.
    fn check_handler_loops(&mut self) -> bool {
        let loops = super::find_cycles(self.graph.nodes.len(), |id| {
            let node = self.node(id);
            node.children.iter().copied().chain(node.catcher).collect()
        });
        let mut reported = false;
        for cycle in &loops {
            let names: Vec<&str> = cycle.iter().map(|&id| self.node(id).name.as_str()).collect();
            let path = names.iter().chain(names.first()).copied().collect::<Vec<_>>().join(" -> ");
            let mut labels = cycle.iter().filter(|&&id| self.node(id).catcher.is_some_and(|c| cycle.contains(&c)));
            let Some(&first) = labels.next() else { continue };
            let label_of = |checker: &Self, id: NodeId| {
                let node = checker.node(id);
                let handler = node.catcher.map(|c| checker.node(c).name.clone()).unwrap_or_default();
                let span = match node.on_error {
                    Some(_) => checker.syntax_of(id).option_span("on_error").unwrap_or(node.span),
                    None => checker.graph_on_error_span.unwrap_or(node.span),
                };
                (span, format!("failures of `{}` go to `{handler}`", node.name))
            };
            let (span, label) = label_of(self, first);
            let mut d = Diagnostic::error(
                Code::HandlerLoop,
                format!("error handlers lead back to where they started: {path}"),
                span,
                label,
            )
            .with_help("an error handler cannot, through its own handlers or the steps after it, catch itself: give one of these steps another handler, or none");
            for &id in labels {
                let (span, label) = label_of(self, id);
                d = d.with_label(span, label);
            }
            self.report(d);
            reported = true;
        }
        // A loop of the flow's own edges, with no handler on it, is the checker's to allow.
        !reported
    }

    /// The marked responder answers; so does the router of a router topology; and in a graph
    /// that answers (a responder, or the sync engine, whose chain end answers), the end of an
    /// error handler's path, so that a handled failure answers `200` on both engines.
    fn resolve_answers(&mut self) {
        let router = self.graph.topology == Topology::Router;
        let responds = self.graph.nodes.iter().any(|node| node.respond);
        let graph_answers = router || responds || self.graph.engine == Engine::Sync;
        let main_path = self.reach(self.graph.start_nodes());
        let error_path = self.error_path();
        for id in self.graph.node_ids().collect::<Vec<_>>() {
            let node = self.node(id);
            let error_end = graph_answers
                && node.children.is_empty()
                && error_path.contains(&id)
                && !main_path.contains(&id)
                && !matches!(node.kind, NodeKind::Queue(_));
            let answers = node.respond || (router && matches!(node.kind, NodeKind::Router(_))) || error_end;
            self.node_mut(id).answers = answers;
        }
        let writes_output = self.graph.nodes.iter().any(is_output_stream);
        self.graph.answer = if graph_answers {
            Answer::Responder
        } else if writes_output {
            // As when split: a graph that writes an output stream answers once it is written.
            Answer::WhenDone
        } else {
            Answer::Accepted
        };
    }

    /// The root runs what its start nodes reach without crossing a stream queue; each child
    /// function what the stream feeding it reaches. A responder must run on the root, which is
    /// what the caller talks to.
    fn split_functions(&mut self) {
        let root_name = self.graph.name.clone();
        if self.functions.is_empty() {
            let nodes = self.graph.node_ids().collect();
            let function = Function {
                name: root_name,
                reads: None,
                entries: self.graph.entry_nodes(),
                nodes,
                answer: self.graph.answer,
                queues: Vec::new(),
            };
            self.graph.functions = vec![function];
            return;
        }
        let root_nodes = self.scope(self.graph.entry_nodes());
        let writes = root_nodes.iter().any(|&id| is_stream(self.node(id)));
        let root_answer = match self.graph.answer {
            Answer::Responder => Answer::Responder,
            _ if writes => Answer::WhenDone,
            other => other,
        };
        let mut functions = vec![Function {
            name: root_name,
            reads: None,
            entries: self.graph.entry_nodes(),
            nodes: root_nodes.into_iter().collect(),
            answer: root_answer,
            queues: Vec::new(),
        }];
        for name in self.functions.clone() {
            let placed = Placement::Child(name.clone());
            let fed = self.graph.node_ids().find_map(|queue| {
                let node = self.node(queue);
                let entries: Vec<NodeId> =
                    node.children.iter().copied().filter(|&child| self.node(child).placement == placed).collect();
                (is_stream(node) && !entries.is_empty()).then_some((queue, entries))
            });
            // A function no stream feeds runs nothing (the checker warns of it): no process.
            let Some((queue, entries)) = fed else { continue };
            let nodes = self.scope(entries.clone());
            for &id in &nodes {
                let node = self.node(id);
                if node.respond {
                    let span = self.syntax_of(id).option_span("respond").unwrap_or(node.span);
                    self.report(
                        Diagnostic::error(
                            Code::ResponderOnChildFunction,
                            format!("`{}` responds, but it runs on child function `{name}`", node.name),
                            span,
                            "the caller never hears from a child function",
                        )
                        .with_label(self.node(queue).span, "the function is fed through this stream")
                        .with_help("mark a step of the root function as the responder; a child function's output goes to the streams after it"),
                    );
                }
            }
            functions.push(Function {
                name,
                reads: Some(queue),
                entries,
                nodes: nodes.into_iter().collect(),
                answer: Answer::WhenDone,
                queues: Vec::new(),
            });
        }
        self.graph.functions = functions;
    }

    /// Everything reachable from `entries` without crossing a stream queue, with the handlers
    /// of what is reached.
    fn scope(&self, entries: Vec<NodeId>) -> BTreeSet<NodeId> {
        let mut nodes = BTreeSet::new();
        let mut work = entries;
        while let Some(id) = work.pop() {
            if !nodes.insert(id) {
                continue;
            }
            let node = self.node(id);
            if !is_stream(node) {
                work.extend(node.children.iter().copied());
            }
            work.extend(node.catcher);
        }
        nodes
    }
}

/// The graphc-runtime features the generated code of `graph` uses: a crate built for one graph
/// compiles no more of the runtime than that. The HTTP server, the executors and memory queues
/// need none.
fn runtime_features(graph: &crate::ir::Graph) -> Vec<RuntimeFeature> {
    use crate::ir::{ModelSource, RouteKind, TriggerSource};
    let routes = || {
        graph.nodes.iter().filter_map(|node| match &node.kind {
            NodeKind::Router(router) => Some(router.routes.iter()),
            _ => None,
        })
    };
    let kinds = || {
        graph.nodes.iter().map(|node| &node.kind).chain(routes().flatten().filter_map(|route| match &route.kind {
            RouteKind::Step(kind) => Some(&**kind),
            RouteKind::Model(_) => None,
        }))
    };
    let serves = |wanted: fn(&ModelSource) -> bool| {
        routes().flatten().any(|route| matches!(&route.kind, RouteKind::Model(model) if wanted(&model.source)))
    };
    let models = serves(|source| matches!(source, ModelSource::Smartcore(_)));
    let onnx = serves(|source| matches!(source, ModelSource::Onnx));
    let remote = kinds().any(|kind| matches!(kind, NodeKind::Remote(_)));
    let streams = graph.nodes.iter().any(|node| node.kind.is_stream_queue())
        || matches!(graph.error_stream, Some(crate::ir::ErrorStream::Stream { .. }))
        || graph
            .triggers
            .iter()
            .any(|trigger| trigger.answers.is_some() || matches!(trigger.source, TriggerSource::Stream { .. }));
    let schedule = graph.triggers.iter().any(|trigger| {
        matches!(trigger.source, TriggerSource::Schedule { when: crate::ir::Schedule::Cron { .. }, .. })
    });
    [
        (RuntimeFeature::Models, models),
        (RuntimeFeature::Onnx, onnx),
        (RuntimeFeature::Remote, remote),
        (RuntimeFeature::Streams, streams),
        (RuntimeFeature::Schedule, schedule),
    ]
    .into_iter()
    .filter_map(|(feature, used)| used.then_some(feature))
    .collect()
}

/// `status == N` (either way round) in a test's expectation.
fn expected_status(expect: &crate::syntax::ast::Expr) -> Option<i64> {
    use crate::syntax::ast::ExprKind;
    let ExprKind::Binary(crate::ir::BinaryOp::Eq, left, right) = &expect.kind else { return None };
    let is_status = |e: &crate::syntax::ast::Expr| matches!(&e.kind, ExprKind::Name(name) if name.name == "status");
    match (&left.kind, &right.kind) {
        (_, ExprKind::Int(n)) if is_status(left) => Some(*n),
        (ExprKind::Int(n), _) if is_status(right) => Some(*n),
        _ => None,
    }
}

fn is_stream(node: &crate::ir::Node) -> bool {
    node.kind.is_stream_queue()
}

/// A stream queue nothing in the graph reads: its records are the graph's output.
fn is_output_stream(node: &crate::ir::Node) -> bool {
    is_stream(node) && node.children.is_empty()
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::indexing_slicing, reason = "a test stops at the first thing that is not so")]
mod tests {
    use crate::ir::{QueueRealisation, RuntimeFeature};

    #[test]
    fn the_plan_records_what_each_queue_becomes_in_one_process_and_in_each_function() {
        let text = r#"graph spread {
            topology = flow;
            function worker;
            step accept = map(body) { respond; }
            queue jobs = stream(url = "redis://127.0.0.1:6379/jobs");
            queue local = memory(capacity = 8);
            step work = map(body) { function = worker; }
            queue done = stream(url = "redis://127.0.0.1:6379", stream = "done");
            accept -> jobs -> work -> done;
            accept -> local;
        }"#;
        let graph = crate::check_source(text).expect("checks").graph;
        let id = |name: &str| graph.node_ids().find(|&id| graph.node(id).name == name).expect("declared");
        let (jobs, local, done) = (id("jobs"), id("local"), id("done"));
        // In one process a stream that something reads is a memory queue; an output stream is
        // written to Redis.
        assert_eq!(graph.queue_realisation(None, jobs), QueueRealisation::Memory { capacity: 1024 });
        assert_eq!(graph.queue_realisation(None, local), QueueRealisation::Memory { capacity: 8 });
        assert_eq!(graph.queue_realisation(None, done), QueueRealisation::StreamWriter);
        // Split, the root writes what it hands on; the worker runs neither `jobs` nor `local`.
        let (root, worker) = (&graph.functions[0], &graph.functions[1]);
        assert_eq!(graph.queue_realisation(Some(root), jobs), QueueRealisation::StreamWriter);
        assert_eq!(graph.queue_realisation(Some(worker), done), QueueRealisation::StreamWriter);
        assert!(worker.queues.iter().all(|plan| plan.queue != jobs && plan.queue != local));
        assert_eq!(graph.features, [RuntimeFeature::Streams]);
    }

    #[test]
    fn the_sync_engine_passes_events_straight_through_a_queue() {
        let text = "graph g { topology = flow; engine = sync; step a = map(body); queue q = memory(); step b = map(body) { respond; } a -> q -> b; }";
        let graph = crate::check_source(text).expect("checks").graph;
        let q = graph.node_ids().find(|&id| graph.node(id).name == "q").expect("declared");
        assert_eq!(graph.queue_realisation(None, q), QueueRealisation::PassThrough);
        assert!(graph.features.is_empty());
    }
}
