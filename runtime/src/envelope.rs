//! The one form an event takes outside a request: in a stream record (a child function's queue,
//! a stream trigger's record, an output stream, a trigger's answers) and in a line of a file for
//! `graphc run`. One type, [`Envelope`], read and written the same way by every source, so that
//! an event's id, key, path, method, time, headers and deadline survive a hop, and a graph
//! answers the same in one process and split across processes.
//!
//! The reserved form: an envelope has a `body` and no field but the envelope's own (`id`,
//! `key`, `path`, `method`, `time`, `headers`, `deadline`), each of its own type. Anything else
//! (a plain field map as `redis-cli XADD` writes it, a JSON line of some other shape) is a body,
//! whole: its fields are never taken as the event's metadata, so an order's own `id` reaches the
//! steps as the order's id, and the event gets a fresh one.

use crate::event::{Event, EventId, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// An event outside a request. `time` and `deadline` are milliseconds since the Unix epoch,
/// so that they mean the same in every process. The body is owned when the envelope is read
/// (`Envelope<Value>`) and borrowed from the event when it is written (`Envelope<&Value>`), so
/// that a stream writer serialises the event's body without copying it first.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope<B = Value> {
    /// The payload.
    pub body: B,
    /// The event's id; a fresh one is made when it is missing or empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The record key (which shard an event goes to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The request path the event came in on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The request method the event came in with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// When the event arrived, where a step of its graph reads it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<u64>,
    /// The request's headers; a repeated header's values joined with `, `, as HTTP allows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<Map<String, Value>>,
    /// When the caller stops waiting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<u64>,
}

/// The envelope's field names: a record or line with `body` and only these is an envelope.
pub const FIELDS: &[&str] = &["body", "id", "key", "path", "method", "time", "headers", "deadline"];

impl<'e> Envelope<&'e Value> {
    /// The envelope of `event`, as it leaves for another process.
    pub fn of(event: &'e Event) -> Self {
        let mut headers = Map::new();
        for (name, value) in &event.headers {
            // The request's length says nothing about the record.
            if name == http::header::CONTENT_LENGTH {
                continue;
            }
            let Ok(value) = value.to_str() else { continue };
            match headers.get_mut(name.as_str()) {
                Some(Value::String(earlier)) => {
                    earlier.push_str(", ");
                    earlier.push_str(value);
                }
                _ => {
                    headers.insert(name.as_str().to_string(), Value::String(value.to_string()));
                }
            }
        }
        let deadline = event.time_left().map(|left| epoch_millis(SystemTime::now() + left));
        Envelope {
            body: &event.body,
            id: Some(event.id.text()),
            key: (!event.key.is_empty()).then(|| event.key.clone()),
            path: Some(event.path.to_string()),
            method: Some(event.method.to_string()),
            time: (event.time != UNIX_EPOCH).then(|| epoch_millis(event.time)),
            headers: (!headers.is_empty()).then_some(headers),
            deadline,
        }
    }
}

impl<B: Serialize> Envelope<B> {
    /// The envelope as a stream record's fields: the body and headers as JSON, the rest as text.
    pub fn record_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = Vec::with_capacity(8);
        let texts = [("id", &self.id), ("key", &self.key), ("path", &self.path), ("method", &self.method)];
        for (name, value) in texts {
            if let Some(value) = value {
                fields.push((name, value.clone()));
            }
        }
        fields.push(("body", serde_json::to_string(&self.body).unwrap_or_else(|_| "null".to_string())));
        if let Some(headers) = &self.headers {
            fields.push(("headers", serde_json::to_string(headers).unwrap_or_else(|_| "{}".to_string())));
        }
        if let Some(time) = self.time {
            fields.push(("time", time.to_string()));
        }
        if let Some(deadline) = self.deadline {
            fields.push(("deadline", deadline.to_string()));
        }
        fields
    }
}

impl Envelope {
    /// A JSON value as it arrives (a line of a file): an envelope in the reserved form, else
    /// the whole value as a body.
    pub fn from_json(value: Value) -> Envelope {
        let reserved = matches!(&value, Value::Object(fields)
            if fields.contains_key("body") && fields.keys().all(|name| FIELDS.contains(&name.as_str())));
        if reserved && let Ok(envelope) = Envelope::deserialize(&value) {
            return envelope;
        }
        Envelope { body: value, ..Envelope::default() }
    }

    /// A stream record's fields as they arrive. An envelope in the reserved form has a `body`
    /// (JSON, else taken as text), only envelope fields, each as written by
    /// [`Envelope::record_fields`]; any other record is a plain field map whose body is the
    /// object of all its fields, each value a string.
    pub fn from_record(fields: Vec<(String, Vec<u8>)>) -> Envelope {
        let reserved = fields.iter().any(|(name, _)| name == "body")
            && fields.iter().all(|(name, _)| FIELDS.contains(&name.as_str()));
        if reserved && let Some(envelope) = Envelope::read_record(&fields) {
            return envelope;
        }
        let body = fields
            .into_iter()
            .map(|(name, value)| {
                let value = String::from_utf8(value)
                    .unwrap_or_else(|bytes| String::from_utf8_lossy(bytes.as_bytes()).into_owned());
                (name, Value::String(value))
            })
            .collect();
        Envelope { body: Value::Object(body), ..Envelope::default() }
    }

    /// The reserved form's fields, or `None` when one is not of its type.
    fn read_record(fields: &[(String, Vec<u8>)]) -> Option<Envelope> {
        let mut envelope = Envelope::default();
        for (name, bytes) in fields {
            let text = || std::str::from_utf8(bytes).ok().map(str::to_string);
            let number = || std::str::from_utf8(bytes).ok()?.trim().parse::<u64>().ok();
            match name.as_str() {
                "body" => {
                    envelope.body = serde_json::from_slice(bytes)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()));
                }
                "id" => envelope.id = Some(text()?),
                "key" => envelope.key = Some(text()?),
                "path" => envelope.path = Some(text()?),
                "method" => envelope.method = Some(text()?),
                "time" => envelope.time = Some(number()?),
                "deadline" => envelope.deadline = Some(number()?),
                "headers" => envelope.headers = Some(serde_json::from_slice(bytes).ok()?),
                _ => return None,
            }
        }
        Some(envelope)
    }

    /// The event it carries: a fresh id when it has none.
    pub fn into_event(self) -> Event {
        let id = self.id.filter(|id| !id.is_empty()).map_or_else(EventId::fresh, EventId::Given);
        let mut event = Event::arrived(self.body, id);
        if let Some(key) = self.key {
            event.key = key;
        }
        if let Some(path) = self.path.filter(|path| !path.is_empty()) {
            event.path = Cow::Owned(path);
        }
        if let Some(method) = self.method.filter(|method| !method.is_empty()) {
            event.method = match method.as_str() {
                "POST" => Cow::Borrowed("POST"),
                "GET" => Cow::Borrowed("GET"),
                _ => Cow::Owned(method),
            };
        }
        if let Some(time) = self.time {
            event.time = UNIX_EPOCH + Duration::from_millis(time);
        }
        for (name, value) in self.headers.into_iter().flatten() {
            let value = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str()))
            {
                event.headers.append(name, value);
            }
        }
        event.deadline = self.deadline.map(instant_of_epoch_millis);
        event.content_type = Some(Cow::Borrowed("application/json"));
        event
    }
}

fn epoch_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
}

/// Milliseconds since the Unix epoch as an instant of this process (now, if it has passed).
fn instant_of_epoch_millis(millis: u64) -> Instant {
    let at = UNIX_EPOCH + Duration::from_millis(millis);
    let now = Instant::now();
    at.duration_since(SystemTime::now()).map_or(now, |left| now + left)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(fields: &[(&str, &[u8])]) -> Event {
        Envelope::from_record(fields.iter().map(|(name, value)| (name.to_string(), value.to_vec())).collect())
            .into_event()
    }

    #[test]
    fn a_plain_field_map_is_a_body_whole_with_a_fresh_id() {
        let order = read(&[("id", b"42"), ("key", b"k"), ("path", b"/p"), ("headers", b"not json"), ("qty", b"3")]);
        assert_eq!(order.body, json!({ "id": "42", "key": "k", "path": "/p", "headers": "not json", "qty": "3" }));
        assert!(matches!(order.id, EventId::Fresh(_)), "{:?}", order.id);
        assert_eq!((order.key.as_str(), &*order.path), ("", "/"));
        // Envelope names only, but one of the wrong type: a body all the same, nothing lost.
        let odd = read(&[("body", b"{}"), ("headers", b"[1]")]);
        assert_eq!(odd.body, json!({ "body": "{}", "headers": "[1]" }));
        let not_utf8 = read(&[("id", &[0xff, 0xfe]), ("body", b"1")]);
        assert_eq!(not_utf8.body["body"], "1");
    }

    #[test]
    fn every_field_survives_a_record_and_a_line() {
        let mut event = Event::new(json!({ "n": 1 }))
            .with_id("e-1")
            .with_path("/orders")
            .with_method("PUT")
            .with_header("x-tenant", "acme");
        event.key = "customer-7".into();
        event.time = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let envelope = Envelope::of(&event);
        let fields = envelope.record_fields().into_iter().map(|(n, v)| (n.to_string(), v.into_bytes())).collect();
        // Written with the event's body borrowed, read back owning it: the same envelope.
        let written = serde_json::to_value(&envelope).expect("JSON");
        let from_record = Envelope::from_record(fields);
        assert_eq!(serde_json::to_value(&from_record).expect("JSON"), written);
        let from_line = Envelope::from_json(written.clone());
        assert_eq!(serde_json::to_value(&from_line).expect("JSON"), written);
        let back = from_line.into_event();
        assert_eq!(
            (back.id.text(), back.key.as_str(), &*back.path, &*back.method),
            ("e-1".into(), "customer-7", "/orders", "PUT")
        );
        assert_eq!(back.time, event.time);
        assert_eq!(back.header("x-tenant"), Some("acme"));
        // A line of another shape is a body.
        let order = Envelope::from_json(json!({ "body": 1, "id": 2, "total": 3 }));
        assert_eq!(order.body, json!({ "body": 1, "id": 2, "total": 3 }));
    }
}
