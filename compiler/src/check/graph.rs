//! Graph-level rules: topology, cycles, responders, the sync engine's single chain, placement
//! on functions and queues, and reachability.

use super::Checker;
use crate::diagnostic::{Code, Diagnostic};
use crate::ir::{self, Engine, NodeId, NodeKind, Placement, Topology};
use std::collections::{BTreeMap, BTreeSet};

impl Checker<'_> {
    /// Returns false when the graph has a cycle, so that typing (which walks it in order) is skipped.
    pub(super) fn check_structure(&mut self) -> bool {
        self.check_topology();
        let acyclic = self.check_cycles();
        self.check_streaming();
        self.check_responders();
        self.check_full_event_paths();
        if self.graph.engine == Engine::Sync && self.graph.topology == Topology::Flow && !self.wiring_incomplete {
            self.check_sync_chain();
        }
        self.check_choice_children();
        self.check_placement();
        if acyclic {
            self.check_reachability();
        }
        acyclic
    }

    fn check_topology(&mut self) {
        let routers: Vec<NodeId> =
            self.graph.node_ids().filter(|&id| matches!(self.node(id).kind, NodeKind::Router(_))).collect();
        if self.graph.topology == Topology::Flow || self.topology_invalid {
            return;
        }
        let topology_note = |d: Diagnostic, span: Option<crate::source::Span>| match span {
            Some(span) => d.with_label(span, "the topology is set here"),
            None => d,
        };
        if routers.is_empty() {
            let d = Diagnostic::error(
                Code::Topology,
                "a router topology needs a router",
                self.ast.name.span,
                "this graph declares no router",
            )
            .with_help("declare `router NAME = model { route ...; }`, or set `topology = flow;` for a graph of steps");
            self.report(topology_note(d, self.topology_span));
        }
        for (index, id) in routers.iter().enumerate().skip(1) {
            let first = routers.first().map(|&f| self.node(f).span).unwrap_or_default();
            let d = Diagnostic::error(
                Code::Topology,
                "a router topology has exactly one router",
                self.node(*id).span,
                format!("router number {}", index + 1),
            )
            .with_label(first, "the graph's router")
            .with_help("put the models in one router, or set `topology = flow;` and wire the routers");
            self.report(topology_note(d, self.topology_span));
        }
        for id in self.graph.node_ids().collect::<Vec<_>>() {
            let node = self.node(id);
            if !matches!(node.kind, NodeKind::Router(_)) {
                let d = Diagnostic::error(
                    Code::Topology,
                    {
                        let kind = node.kind.describe();
                        let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
                        format!("`{}` is {article} {kind} step in a router topology", node.name)
                    },
                    node.span,
                    "only a router belongs here",
                )
                .with_help("the default topology is `router`; add `topology = flow;` to build a graph of steps");
                self.report(topology_note(d, self.topology_span));
            }
        }
    }

    /// Without `allow_cycles`, reports each cycle once, with a label at every step on it. With
    /// it, every loop must have a way out and pass through no queue; the edges that close loops
    /// and the cap of each step on one are decided here (docs/semantics.md, "Loops"). False when
    /// the graph's loops are not all allowed, so that typing (which walks it in order) is skipped.
    fn check_cycles(&mut self) -> bool {
        let cycles = super::find_cycles(self.graph.nodes.len(), |id| self.node(id).children.to_vec());
        if !self.graph.allow_cycles {
            for cycle in &cycles {
                self.report_cycle(cycle);
            }
            self.check_caps_on_loops(&[]);
            return cycles.is_empty();
        }
        let loops = loops_of(&cycles);
        let mut sound = true;
        for members in &loops {
            sound &= self.check_loop(members, &cycles);
        }
        self.check_caps_on_loops(&loops);
        if sound {
            self.graph.back_edges = self.back_edges();
            for id in loops.iter().flatten().copied().collect::<Vec<_>>() {
                let cap = self.node(id).max_iterations.unwrap_or(self.graph.max_iterations);
                self.node_mut(id).iteration_cap = Some(cap);
            }
        }
        sound
    }

    /// One loop (the steps of cycles that share a step): a way out, and no queue on it.
    fn check_loop(&mut self, members: &BTreeSet<NodeId>, cycles: &[Vec<NodeId>]) -> bool {
        let cycle =
            cycles.iter().find(|cycle| cycle.iter().all(|id| members.contains(id))).cloned().unwrap_or_default();
        let path = || {
            let names: Vec<&str> = cycle.iter().map(|&id| self.node(id).name.as_str()).collect();
            names.iter().chain(names.first()).copied().collect::<Vec<_>>().join(" -> ")
        };
        if let Some(&queue) = members.iter().find(|&&id| matches!(self.node(id).kind, NodeKind::Queue(_))) {
            let d = Diagnostic::error(
                Code::LoopThroughQueue,
                format!("the loop {} passes through queue `{}`", path(), self.node(queue).name),
                self.node(queue).span,
                "a queue on the loop",
            )
            .with_help(
                "a loop runs within one event's path: an event that went back through a queue could wait on its own \
                 backlog; take the queue off the loop",
            );
            self.report(d);
            return false;
        }
        let leaves = members.iter().any(|&id| match &self.node(id).kind {
            NodeKind::Choice(_) => self.node(id).children.iter().any(|child| !members.contains(child)),
            NodeKind::Filter(_) => true,
            _ => false,
        });
        if leaves {
            return true;
        }
        let mut labels = Vec::new();
        for (index, &id) in cycle.iter().enumerate() {
            let next = cycle.get(index + 1).or(cycle.first()).copied().unwrap_or(id);
            labels.push((self.edge_span(id, next), format!("`{}` -> `{}`", self.node(id).name, self.node(next).name)));
        }
        let (first_span, first_label) = labels.first().cloned().unwrap_or_default();
        let mut d = Diagnostic::error(
            Code::LoopWithoutExit,
            format!("the loop {} never lets an event out", path()),
            first_span,
            first_label,
        )
        .with_help(
            "put a `choice` on the loop with an arm that leads out of it (`body.score >= 0.8 => done`), or a \
             `filter` that drops the event; `max_iterations` only turns an endless loop into a failure",
        );
        for (span, label) in labels.into_iter().skip(1) {
            d = d.with_label(span, label);
        }
        self.report(d);
        false
    }

    /// `max_iterations` on a step that is on no loop bounds nothing.
    fn check_caps_on_loops(&mut self, loops: &[BTreeSet<NodeId>]) {
        for id in self.graph.node_ids().collect::<Vec<_>>() {
            if self.node(id).max_iterations.is_none() || loops.iter().any(|members| members.contains(&id)) {
                continue;
            }
            let span = self.syntax_of(id).option_span("max_iterations").unwrap_or(self.node(id).span);
            let d = Diagnostic::error(
                Code::InvalidValue,
                format!("`{}` is on no loop, so `max_iterations` bounds nothing", self.node(id).name),
                span,
                "here",
            )
            .with_help(if self.graph.allow_cycles {
                "remove it, or put it on a step an edge back leads to"
            } else {
                "remove it; loops need `allow_cycles = true;` on the graph"
            });
            self.report(d);
        }
    }

    /// The edges that close loops, as a walk from the start steps meets them: an edge to a step
    /// still on the walk's path. Every step a loop holds is reached from a start step, or the
    /// reachability check says it is not.
    fn back_edges(&self) -> Vec<ir::BackEdge> {
        #[derive(Clone, Copy, PartialEq)]
        enum Walk {
            New,
            OnPath,
            Done,
        }
        let mut state = vec![Walk::New; self.graph.nodes.len()];
        let mut edges = Vec::new();
        // Each frame: a node and the index of its next child to visit.
        for start in self.graph.entry_nodes() {
            if state.get(start.index()) != Some(&Walk::New) {
                continue;
            }
            let mut stack = vec![(start, 0usize)];
            if let Some(slot) = state.get_mut(start.index()) {
                *slot = Walk::OnPath;
            }
            while let Some((id, next)) = stack.last().copied() {
                match self.node(id).children.get(next).copied() {
                    Some(child) => {
                        if let Some(top) = stack.last_mut() {
                            top.1 += 1;
                        }
                        match state.get(child.index()) {
                            Some(Walk::New) => {
                                if let Some(slot) = state.get_mut(child.index()) {
                                    *slot = Walk::OnPath;
                                }
                                stack.push((child, 0));
                            }
                            Some(Walk::OnPath) => edges.push(ir::BackEdge { from: id, to: child }),
                            _ => {}
                        }
                    }
                    None => {
                        if let Some(slot) = state.get_mut(id.index()) {
                            *slot = Walk::Done;
                        }
                        stack.pop();
                    }
                }
            }
        }
        edges
    }

    fn report_cycle(&mut self, cycle: &[NodeId]) {
        let names: Vec<&str> = cycle.iter().map(|&id| self.node(id).name.as_str()).collect();
        let path = names.iter().chain(names.first()).copied().collect::<Vec<_>>().join(" -> ");
        let mut labels = Vec::new();
        for (index, &id) in cycle.iter().enumerate() {
            let next = cycle.get(index + 1).or(cycle.first()).copied().unwrap_or(id);
            labels.push((self.edge_span(id, next), format!("`{}` -> `{}`", self.node(id).name, self.node(next).name)));
        }
        let (first_span, first_label) = labels.first().cloned().unwrap_or_default();
        let mut d = Diagnostic::error(Code::Cycle, format!("the flow has a cycle: {path}"), first_span, first_label)
            .with_help(
                "a flow is acyclic unless it allows loops: remove one of these edges, or set `allow_cycles = true;` \
                 and give the loop a way out (a `choice` arm that leads out of it)",
            );
        for (span, label) in labels.into_iter().skip(1) {
            d = d.with_label(span, label);
        }
        self.report(d);
    }

    fn check_responders(&mut self) {
        let responders: Vec<NodeId> = self.graph.node_ids().filter(|&id| self.node(id).respond).collect();
        if responders.len() < 2 {
            return;
        }
        let spans: Vec<_> = responders
            .iter()
            .map(|&id| {
                (self.syntax_of(id).option_span("respond").unwrap_or(self.node(id).span), self.node(id).name.clone())
            })
            .collect();
        let names = spans.iter().map(|(_, n)| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        let mut labels = spans.into_iter();
        let Some((first, first_name)) = labels.next() else { return };
        let mut d = Diagnostic::error(
            Code::TwoResponders,
            format!("more than one step responds: {names}"),
            first,
            format!("`{first_name}` responds"),
        )
        .with_help("the caller gets one answer: keep `respond` on one step");
        for (span, name) in labels {
            d = d.with_label(span, format!("`{name}` responds too"));
        }
        self.report(d);
    }

    fn check_full_event_paths(&mut self) {
        let mut found = Vec::new();
        for id in self.graph.node_ids() {
            let syntax = self.syntax_of(id);
            let Some(full_event) = syntax.option_span("full_event").filter(|_| self.node(id).full_event) else {
                continue;
            };
            for key in ["input_path", "result_path"] {
                if let Some(path) = syntax.option_span(key) {
                    let d = Diagnostic::error(
                        Code::FullEventWithPath,
                        format!("`full_event` cannot be combined with `{key}`"),
                        path,
                        format!("`{key}` given here"),
                    )
                    .with_label(full_event, "the step takes the whole event")
                    .with_help(format!(
                        "a full-event step reads and writes the event itself; drop `{key}` or `full_event`"
                    ));
                    found.push(d);
                }
            }
        }
        self.diagnostics.extend(found);
    }

    /// Streamed answers (docs/semantics.md, "Streamed answers"): `streaming` marks a Rust
    /// function of the body on the async engine, off every loop; `collect()` follows exactly one
    /// streaming step.
    fn check_streaming(&mut self) {
        let mut found = Vec::new();
        for id in self.graph.node_ids() {
            let node = self.node(id);
            let syntax = self.syntax_of(id);
            if let Some(marked) = syntax.option_span("streaming").filter(|_| node.streaming) {
                let refused = match &node.kind {
                    NodeKind::Function(_) if node.full_event => Some("a full-event function cannot stream"),
                    NodeKind::Function(_) if node.input_path.is_some() || node.result_path.is_some() => {
                        Some("a streaming step's chunks are whole bodies: it takes no `input_path` or `result_path`")
                    }
                    NodeKind::Function(_) if node.iteration_cap.is_some() => {
                        Some("a step of a loop cannot stream: each chunk would go round the loop on its own")
                    }
                    NodeKind::Function(_) => None,
                    _ => Some("only a Rust function of the body can stream"),
                };
                if let Some(reason) = refused {
                    found.push(
                        Diagnostic::error(
                            Code::StreamingStep,
                            format!("`{}` cannot stream: {reason}", node.name),
                            marked,
                            "`streaming` given here",
                        )
                        .with_label(node.impl_span, format!("`{}` runs a {}", node.name, node.kind.describe()))
                        .with_help(
                            "mark a `fn` step whose function returns an iterator of chunks: `step s = fn handlers::tokens { streaming; }`",
                        ),
                    );
                } else if self.graph.engine == Engine::Sync {
                    let mut d = Diagnostic::error(
                        Code::SyncStreaming,
                        format!("`{}` streams, but the sync engine answers once, when its chain returns", node.name),
                        marked,
                        "`streaming` given here",
                    )
                    .with_help("use `engine = async;`: each chunk then goes on, and to the caller, as it is produced");
                    if let Some(engine) = self.engine_span {
                        d = d.with_label(engine, "the sync engine is chosen here");
                    }
                    found.push(d);
                }
            }
            if matches!(node.kind, NodeKind::Collect) {
                let streams = |parent: &NodeId| self.node(*parent).streaming;
                if node.parents.len() != 1 || !node.parents.iter().all(streams) {
                    let d = match node.parents.iter().find(|parent| !streams(parent)) {
                        Some(&parent) => Diagnostic::error(
                            Code::CollectWithoutStream,
                            format!(
                                "`{}` collects chunks, but `{}` does not stream",
                                node.name,
                                self.node(parent).name
                            ),
                            self.edge_span(parent, id),
                            format!("`{}` sends one body per event", self.node(parent).name),
                        ),
                        None => Diagnostic::error(
                            Code::CollectWithoutStream,
                            format!("`{}` collects chunks, but no streaming step comes before it", node.name),
                            node.impl_span,
                            "collects nothing",
                        ),
                    };
                    found.push(d.with_help(
                        "put `collect()` right after one streaming step (`{ streaming; }`): it receives that step's chunks as one array",
                    ));
                }
            }
        }
        self.diagnostics.extend(found);
    }

    fn check_sync_chain(&mut self) {
        let engine = self.engine_span;
        let with_engine = |d: Diagnostic| match engine {
            Some(span) => d.with_label(span, "the sync engine is chosen here"),
            None => d,
        };
        let starts = self.graph.start_nodes();
        if starts.len() > 1 {
            let first = starts.first().map(|&id| self.node(id).span).unwrap_or_default();
            let mut d = Diagnostic::error(
                Code::SyncStartSteps,
                format!("the sync engine runs one chain, but {} steps start the flow", starts.len()),
                first,
                "starts the flow",
            );
            for &id in starts.iter().skip(1) {
                d = d.with_label(self.node(id).span, "starts the flow too");
            }
            self.report(with_engine(
                d.with_help("wire these steps into one chain, or use `engine = async;` to run them as branches"),
            ));
        }
        let mut found = Vec::new();
        for id in self.graph.node_ids() {
            let node = self.node(id);
            // The edge that closes a loop brings the event back along its own chain: not a join.
            let parents: ir::Edges = self.graph.forward_parents(id).collect();
            for (neighbours, what) in [(&parents, "parents"), (&node.children, "children")] {
                if neighbours.len() < 2 {
                    continue;
                }
                // A choice sends each event to one outlet, so it keeps a single chain per event.
                if what == "children" && matches!(node.kind, NodeKind::Choice(_)) {
                    continue;
                }
                // A fan-out into a join is one mistake: report it once, at the join.
                if what == "children" && neighbours.iter().any(|&child| self.graph.forward_parents(child).count() > 1) {
                    continue;
                }
                let mut d = Diagnostic::error(
                    Code::SyncBranch,
                    format!("the sync engine runs one chain, but `{}` has {} {what}", node.name, neighbours.len()),
                    node.span,
                    format!("has several {what}"),
                );
                for &other in neighbours {
                    let span = if what == "parents" { self.edge_span(other, id) } else { self.edge_span(id, other) };
                    d = d.with_label(span, format!("`{}`", self.node(other).name));
                }
                found.push(with_engine(d.with_help("use `engine = async;` for branches and joins")));
            }
        }
        self.diagnostics.extend(found);
    }

    fn check_choice_children(&mut self) {
        for id in self.graph.node_ids().collect::<Vec<_>>() {
            let Some(crate::syntax::ast::StepImpl::Choice(arms, _)) = self.syntax_of(id).implementation else {
                continue;
            };
            for &child in &self.node(id).children.clone() {
                if !arms.iter().any(|arm| arm.outlet.name == self.node(child).name) {
                    let d = Diagnostic::error(
                        Code::InvalidValue,
                        format!(
                            "choice `{}` is wired to `{}`, which is not one of its outlets",
                            self.node(id).name,
                            self.node(child).name
                        ),
                        self.edge_span(id, child),
                        "not an outlet",
                    )
                    .with_help(format!("add an arm `condition => {}` to the choice", self.node(child).name));
                    self.report(d);
                }
            }
        }
    }

    /// Edges between functions go through stream queues; a stream queue is read by steps on a
    /// named function, and a function reads from one queue.
    fn check_placement(&mut self) {
        if self.graph.engine == Engine::Sync {
            for id in self.graph.node_ids().collect::<Vec<_>>() {
                let node = self.node(id);
                if matches!(node.kind, NodeKind::Remote(_)) {
                    let mut d = Diagnostic::error(
                        Code::SyncRemote,
                        format!("`$remote` step `{}` needs the async engine", node.name),
                        node.impl_span,
                        "an HTTP call, awaited on tokio",
                    )
                    .with_help("use `engine = async;`: the sync engine runs plain calls on the caller's thread");
                    if let Some(engine) = self.engine_span {
                        d = d.with_label(engine, "the sync engine is chosen here");
                    }
                    self.report(d);
                }
            }
            // Stream writers and consumers run on tokio; under the sync engine a stream queue
            // would pass events on in-process, and an output stream would write nothing.
            let function = self.ast.items.iter().find_map(|item| match item {
                crate::syntax::ast::Item::Function(name) => {
                    Some((name.span, "child functions need", "a child function is declared here"))
                }
                _ => None,
            });
            let stream = self.graph.nodes.iter().find_map(|node| {
                node.kind.is_stream_queue().then_some((
                    node.span,
                    "stream queues need",
                    "a stream queue is declared here",
                ))
            });
            if let Some((span, what, label)) = function.or(stream) {
                let mut d = Diagnostic::error(Code::SyncStreams, format!("{what} the async engine"), span, label)
                    .with_help("use `engine = async;`: stream consumers and writers run on tokio");
                if let Some(engine) = self.engine_span {
                    d = d.with_label(engine, "the sync engine is chosen here");
                }
                self.report(d);
            }
        }
        let mut readers: BTreeMap<String, Vec<NodeId>> = BTreeMap::new();
        for parent in self.graph.node_ids().collect::<Vec<_>>() {
            let is_stream = self.node(parent).kind.is_stream_queue();
            for child in self.node(parent).children.clone() {
                if self.node(child).kind.is_stream_queue() {
                    continue; // any function may write to a stream
                }
                let (from, to) = (self.placement_of(parent), self.placement_of(child));
                if is_stream {
                    match to {
                        Placement::Child(function) => {
                            let queues = readers.entry(function).or_default();
                            if !queues.contains(&parent) {
                                queues.push(parent);
                            }
                        }
                        // An unknown function name is reported already, and placed anywhere.
                        Placement::Any if !self.written_star(child) => {}
                        Placement::Any => self.report(
                            Diagnostic::error(Code::StarAfterStream, format!("step `{}` follows stream queue `{}` with `function = *`", self.node(child).name, self.node(parent).name), self.syntax_of(child).option_span("function").unwrap_or(self.node(child).span), "`*` runs where its neighbours run, but a stream queue runs on no function")
                                .with_label(self.edge_span(parent, child), "after the stream queue here")
                                .with_help("name the child function that reads the stream: `{ function = child; }`, declared with `function child;`"),
                        ),
                        Placement::Root => self.report(
                            Diagnostic::error(Code::StepAfterQueueWithoutFunction, format!("step `{}` follows stream queue `{}` but names no function", self.node(child).name, self.node(parent).name), self.node(child).span, "which function reads the stream?")
                                .with_label(self.edge_span(parent, child), "after the stream queue here")
                                .with_help("place it on a child function: `{ function = child; }`, declared with `function child;`"),
                        ),
                    }
                    continue;
                }
                if let (Placement::Child(_) | Placement::Root, Placement::Child(_) | Placement::Root) = (&from, &to)
                    && from != to
                {
                    let d = Diagnostic::error(Code::CrossFunctionEdge, format!("`{}` and `{}` run on different functions but are joined directly", self.node(parent).name, self.node(child).name), self.edge_span(parent, child), "this edge crosses functions")
                        .with_label(self.node(parent).span, format!("runs on {}", describe_placement(&from)))
                        .with_label(self.node(child).span, format!("runs on {}", describe_placement(&to)))
                        .with_help("functions exchange events through a stream queue: `queue q = stream(url = \"redis://...\");` between them");
                    self.report(d);
                }
            }
        }
        // A child function that no step names has nothing to run (steps that name it but are
        // wired wrongly get their own errors).
        for item in &self.ast.items {
            if let crate::syntax::ast::Item::Function(name) = item
                && !self.graph.nodes.iter().any(|node| node.placement == Placement::Child(name.name.to_string()))
            {
                self.report(
                    Diagnostic::warning(
                        Code::UnusedFunction,
                        format!("function `{}` runs no step", name.name),
                        name.span,
                        "no step names this function",
                    )
                    .with_help(format!(
                        "put the steps after a stream queue on it (`{{ function = {}; }}`), or remove it",
                        name.name
                    )),
                );
            }
        }
        for (function, queues) in readers {
            if let [first, second, ..] = queues.as_slice() {
                let d = Diagnostic::error(
                    Code::FunctionReadsTwoQueues,
                    format!("function `{function}` reads from two stream queues"),
                    self.node(*second).span,
                    "second queue",
                )
                .with_label(self.node(*first).span, "first queue")
                .with_help(
                    "a function consumes one input stream; split the steps over two functions or merge the queues",
                );
                self.report(d);
            }
        }
    }

    /// True when the node's `function` option is written `*`.
    fn written_star(&self, id: NodeId) -> bool {
        self.syntax_of(id)
            .options
            .iter()
            .any(|opt| opt.key.name == "function" && matches!(opt.value, Some(crate::syntax::ast::OptValue::Star(_))))
    }

    /// A memory queue runs where its producers run; other nodes where they are placed.
    fn placement_of(&self, id: NodeId) -> Placement {
        let node = self.node(id);
        if node.kind.is_memory_queue()
            && let Some(&parent) = node.parents.first()
        {
            return self.placement_of(parent);
        }
        node.placement.clone()
    }

    fn check_reachability(&mut self) {
        if self.graph.topology != Topology::Flow {
            return;
        }
        let mut reached = vec![false; self.graph.nodes.len()];
        let mut work: Vec<NodeId> = self.graph.start_nodes();
        let orphan_queue =
            self.graph.nodes.iter().find(|node| node.parents.is_empty() && matches!(node.kind, NodeKind::Queue(_)));
        if work.is_empty()
            && let Some(first) = orphan_queue
        {
            let d = Diagnostic::error(
                Code::NoStartStep,
                "no step starts the flow: every step follows a queue that nothing writes to",
                first.span,
                "events enter nowhere",
            )
            .with_help("start the flow with a step (`step accept = map(body);`) and wire the queue after it");
            self.report(d);
            return;
        }
        work.extend(self.graph.catchers());
        while let Some(id) = work.pop() {
            match reached.get_mut(id.index()) {
                Some(seen @ false) => *seen = true,
                _ => continue,
            }
            work.extend(self.node(id).children.iter().copied());
        }
        for id in self.graph.node_ids().collect::<Vec<_>>() {
            if reached.get(id.index()) == Some(&false) {
                let node = self.node(id);
                let d = Diagnostic::warning(Code::Unreachable, format!("`{}` is unreachable", node.name), node.span, "no event reaches this step")
                    .with_help("it only follows steps that never receive events (such as a queue nothing writes to); wire it after a step of the flow");
                self.diagnostics.push(d);
            }
        }
        let responds = self.graph.nodes.iter().any(|n| n.respond);
        // A distributed graph's root answers 202 once the event is in its stream: by design.
        if self.graph.engine == Engine::Async && !responds && !self.graph.nodes.is_empty() && self.functions.is_empty()
        {
            let d = Diagnostic::warning(
                Code::NoResponder,
                format!("no step of flow `{}` responds", self.graph.name),
                self.ast.name.span,
                "callers get 202 with the event id",
            )
            .with_help("mark the step whose output answers the caller: `{ respond; }`");
            self.diagnostics.push(d);
        }
    }
}

fn describe_placement(placement: &Placement) -> String {
    match placement {
        Placement::Root => "the root function".to_string(),
        Placement::Child(name) => format!("function `{name}`"),
        Placement::Any => "any function".to_string(),
    }
}

/// The loops among `cycles`: the steps of cycles that share a step, each set once.
fn loops_of(cycles: &[Vec<NodeId>]) -> Vec<BTreeSet<NodeId>> {
    let mut loops: Vec<BTreeSet<NodeId>> = Vec::new();
    for cycle in cycles {
        let mut members: BTreeSet<NodeId> = cycle.iter().copied().collect();
        // Every loop this cycle touches merges into one.
        loops.retain(|other| {
            if other.is_disjoint(&members) {
                true
            } else {
                members.extend(other.iter().copied());
                false
            }
        });
        loops.push(members);
    }
    loops
}
