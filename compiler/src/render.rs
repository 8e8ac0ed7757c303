//! Diagrams of a checked graph, as MLRun's plot draws them: Graphviz DOT and Mermaid. They
//! print the IR: the error edges are the catchers the checker resolved, and the edges that close
//! loops the ones it found, as codegen wires them.

use crate::ir::{Graph, NodeId, NodeKind, Placement, Queue, Schedule, Trigger, TriggerSource};
use std::fmt::Write;

/// Graphviz DOT: a start node, tasks as ellipses, routers as clusters with their routes, queues
/// as `cds`, dashed edges to error handlers.
pub fn to_dot(graph: &Graph) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quote(&graph.name));
    out.push_str("  compound=true;\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    out.push_str("  \"_start\" [label=\"start\", shape=egg, style=filled, fillcolor=lightgrey];\n");
    for id in graph.node_ids() {
        let node = graph.node(id);
        match &node.kind {
            NodeKind::Router(router) => {
                let _ = writeln!(
                    out,
                    "  subgraph {} {{\n    label={};\n    style=rounded;",
                    quote(&format!("cluster_{}", node.name)),
                    quote(&node.name)
                );
                let _ = writeln!(out, "    {} [label={}, shape=doubleoctagon];", quote(&node.name), quote(&node.name));
                for route in &router.routes {
                    let route_id = format!("{}/{}", node.name, route.key());
                    let _ = writeln!(out, "    {} [label={}, shape=ellipse];", quote(&route_id), quote(&route.key()));
                    let _ = writeln!(out, "    {} -> {};", quote(&node.name), quote(&route_id));
                }
                out.push_str("  }\n");
            }
            NodeKind::Queue(queue) => {
                let detail = match &**queue {
                    Queue::Memory { capacity } => format!("memory, {capacity}"),
                    Queue::Stream { stream, .. } => format!("stream {stream}"),
                };
                let _ = writeln!(
                    out,
                    "  {} [label={}, shape=cds];",
                    quote(&node.name),
                    quote(&format!("{}\n({detail})", node.name))
                );
            }
            _ => {
                let _ = writeln!(out, "  {} [label={}, shape=ellipse];", quote(&node.name), quote(&placed(node)));
            }
        }
    }
    for trigger in &graph.triggers {
        let id = quote(&format!("_trigger_{}", trigger.name));
        let _ = writeln!(out, "  {id} [label={}, shape=house];", quote(&trigger_label(trigger)));
        let _ = writeln!(out, "  {id} -> \"_start\";");
    }
    for id in graph.entry_nodes() {
        let _ = writeln!(out, "  \"_start\" -> {}{};", quote(&graph.node(id).name), cluster_head(graph, id));
    }
    for id in graph.node_ids() {
        let node = graph.node(id);
        for &child in &node.children {
            let _ = writeln!(
                out,
                "  {} -> {}{};",
                quote(&node.name),
                quote(&graph.node(child).name),
                edge_attributes(graph, id, child)
            );
        }
        if let Some(handler) = node.catcher {
            let _ = writeln!(
                out,
                "  {} -> {} [style=dashed{}];",
                quote(&node.name),
                quote(&graph.node(handler).name),
                cluster_tail(graph, id)
            );
        }
    }
    out.push_str("}\n");
    out
}

/// Mermaid flowchart, with the same shapes as the DOT output where Mermaid has them.
pub fn to_mermaid(graph: &Graph) -> String {
    let mut out = String::from("flowchart LR\n  _start((start))\n");
    let id_of = |id: NodeId| format!("n{}", id.0);
    for id in graph.node_ids() {
        let node = graph.node(id);
        let name = mermaid_text(&node.name);
        match &node.kind {
            NodeKind::Router(router) => {
                let _ = writeln!(out, "  subgraph {}_cluster [\"{name}\"]", id_of(id));
                let _ = writeln!(out, "    {}{{{{\"{name}\"}}}}", id_of(id));
                for (index, route) in router.routes.iter().enumerate() {
                    let _ = writeln!(out, "    {}_r{index}([\"{}\"])", id_of(id), mermaid_text(&route.key()));
                    let _ = writeln!(out, "    {} --> {}_r{index}", id_of(id), id_of(id));
                }
                out.push_str("  end\n");
            }
            NodeKind::Queue(_) => {
                let _ = writeln!(out, "  {}[/\"{name}\"/]", id_of(id));
            }
            _ => {
                let _ = writeln!(out, "  {}([\"{}\"])", id_of(id), mermaid_text(&placed(node)).replace('\n', "<br/>"));
            }
        }
    }
    for (index, trigger) in graph.triggers.iter().enumerate() {
        let label = mermaid_text(&trigger_label(trigger)).replace('\n', "<br/>");
        let _ = writeln!(out, "  _t{index}>\"{label}\"] --> _start");
    }
    for id in graph.entry_nodes() {
        let _ = writeln!(out, "  _start --> {}", id_of(id));
    }
    for id in graph.node_ids() {
        let node = graph.node(id);
        for &child in &node.children {
            let arrow = if graph.is_back_edge(id, child) {
                "==>|loop|"
            } else if carries_chunks(graph, id, child) {
                "-->|chunks|"
            } else {
                "-->"
            };
            let _ = writeln!(out, "  {} {arrow} {}", id_of(id), id_of(child));
        }
        if let Some(handler) = node.catcher {
            let _ = writeln!(out, "  {} -.-> {}", id_of(id), id_of(handler));
        }
    }
    out
}

/// A trigger's label: its name and where its events come from.
fn trigger_label(trigger: &Trigger) -> String {
    let source = match &trigger.source {
        TriggerSource::Stream { stream, .. } => format!("stream {stream}"),
        TriggerSource::Schedule { when: Schedule::Cron { expression, timezone }, .. } => {
            format!("cron {expression} {timezone}")
        }
        TriggerSource::Schedule { when: Schedule::Every { ms }, .. } => format!("every {ms} ms"),
    };
    format!("{}\n({source})", trigger.name)
}

/// A step's label: its name, and the child function it runs on, if any.
fn placed(node: &crate::ir::Node) -> String {
    match &node.placement {
        Placement::Child(function) => format!("{}\n@{function}", node.name),
        Placement::Any => format!("{}\n@*", node.name),
        Placement::Root => node.name.to_string(),
    }
}

/// Whether the edge carries a streaming step's chunks one by one (not into a `collect()`).
fn carries_chunks(graph: &Graph, from: NodeId, to: NodeId) -> bool {
    graph.node(from).streaming && !matches!(graph.node(to).kind, NodeKind::Collect)
}

fn edge_attributes(graph: &Graph, from: NodeId, to: NodeId) -> String {
    let mut attributes = Vec::new();
    if matches!(graph.node(from).kind, NodeKind::Router(_)) {
        attributes.push(format!("ltail={}", quote(&format!("cluster_{}", graph.node(from).name))));
    }
    if matches!(graph.node(to).kind, NodeKind::Router(_)) {
        attributes.push(format!("lhead={}", quote(&format!("cluster_{}", graph.node(to).name))));
    }
    // An edge back: bold and labelled, and left out of the ranking, so that the flow still reads
    // left to right with the loop returning over it.
    if graph.is_back_edge(from, to) {
        attributes.extend(["style=bold".to_string(), "label=\"loop\"".to_string(), "constraint=false".to_string()]);
    }
    // A streaming step's chunks, each its own event: a doubled line.
    if carries_chunks(graph, from, to) {
        attributes.extend(["color=\"black:black\"".to_string(), "label=\"chunks\"".to_string()]);
    }
    if attributes.is_empty() { String::new() } else { format!(" [{}]", attributes.join(", ")) }
}

fn cluster_head(graph: &Graph, to: NodeId) -> String {
    match graph.node(to).kind {
        NodeKind::Router(_) => format!(" [lhead={}]", quote(&format!("cluster_{}", graph.node(to).name))),
        _ => String::new(),
    }
}

fn cluster_tail(graph: &Graph, from: NodeId) -> String {
    match graph.node(from).kind {
        NodeKind::Router(_) => format!(", ltail={}", quote(&format!("cluster_{}", graph.node(from).name))),
        _ => String::new(),
    }
}

/// A DOT string literal; names are identifiers, but labels may hold anything.
fn quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n"))
}

fn mermaid_text(text: &str) -> String {
    text.replace('"', "#quot;")
}
