//! Stream records and shards, without a server: what an event becomes in a Redis stream and
//! back, what other producers may write, and which shard a key lands on.

use graphc_runtime::stream::StreamQueue;
use graphc_runtime::{Envelope, Event};
use serde_json::json;

fn as_read(fields: Vec<(&'static str, String)>) -> Vec<(String, Vec<u8>)> {
    fields.into_iter().map(|(name, value)| (name.to_string(), value.into_bytes())).collect()
}

fn record_fields(event: &Event) -> Vec<(&'static str, String)> {
    Envelope::of(event).record_fields()
}

fn event_from_record(fields: Vec<(String, Vec<u8>)>) -> Event {
    Envelope::from_record(fields).into_event()
}

#[test]
fn an_event_survives_the_stream_record() {
    let mut event = Event::new(json!({"n": 1, "tags": ["a"]}))
        .with_id("e-1")
        .with_path("/orders")
        .with_header("x-tenant", "acme")
        .with_header("x-tag", "a")
        .with_header("x-tag", "b")
        .with_header("content-length", "99");
    event.key = "customer-7".to_string();
    let fields = record_fields(&event);
    let names: Vec<&str> = fields.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, ["id", "key", "path", "method", "body", "headers"]);
    let back = event_from_record(as_read(fields));
    assert_eq!(back.id.to_string(), "e-1");
    assert_eq!((back.key.as_str(), &*back.path), ("customer-7", "/orders"));
    assert_eq!(back.body, json!({"n": 1, "tags": ["a"]}));
    assert_eq!(back.header("x-tenant"), Some("acme"));
    assert_eq!(back.header("x-tag"), Some("a, b"), "repeated headers are combined");
    assert_eq!(back.header("content-length"), None, "the request's length is not the record's");
}

#[test]
fn records_from_other_producers_may_leave_fields_out_and_plain_maps_are_bodies_whole() {
    let only_body = event_from_record(vec![("body".to_string(), br#"{"x": 1}"#.to_vec())]);
    assert_eq!(only_body.body, json!({"x": 1}));
    assert_eq!(only_body.id.to_string().len(), 32, "a fresh id");
    assert_eq!(&*only_body.path, "/");
    let text = event_from_record(vec![("body".to_string(), b"plain words".to_vec())]);
    assert_eq!(text.body, json!("plain words"));
    // An order with its own `id`, `key`, `path` and `headers`: all the body's, none the event's.
    let order = event_from_record(as_read(vec![
        ("id", "42".into()),
        ("key", "k".into()),
        ("path", "/x".into()),
        ("headers", "not json".into()),
        ("qty", "3".into()),
    ]));
    assert_eq!(order.body, json!({"id": "42", "key": "k", "path": "/x", "headers": "not json", "qty": "3"}));
    assert_ne!(order.id.to_string(), "42");
    // Bytes that are not UTF-8 are kept as text, not dropped with the record.
    let not_utf8 = event_from_record(vec![("id".to_string(), vec![0xff, 0xfe])]);
    assert_eq!(not_utf8.body["id"], "\u{fffd}\u{fffd}");
}

#[test]
fn a_key_always_lands_on_one_shard_and_keys_spread() {
    let queue = StreamQueue::new("jobs", "redis://127.0.0.1:6379", "jobs", 4);
    assert_eq!(queue.streams(), ["jobs:0", "jobs:1", "jobs:2", "jobs:3"]);
    let keyed = |key: &str| {
        let mut event = Event::new(json!(null));
        event.key = key.to_string();
        queue.stream_for(&event)
    };
    assert_eq!(keyed("customer-7"), keyed("customer-7"));
    // FNV-1a of the key, modulo the shards: the same in every process and every build.
    assert_eq!(keyed("a"), "jobs:0");
    assert_eq!(keyed("b"), "jobs:1");
    let used: std::collections::BTreeSet<String> = (0..100).map(|i| keyed(&format!("k{i}"))).collect();
    assert_eq!(used.len(), 4, "{used:?}");
    let single = StreamQueue::new("one", "redis://h:1", "one", 1);
    assert_eq!(
        (single.streams(), single.stream_for(&Event::new(json!(1)))),
        (vec!["one".to_string()], "one".to_string())
    );
    let moved = single.on_server(Some("redis://elsewhere:6380/"));
    assert_eq!(moved.url, "redis://elsewhere:6380");
}
