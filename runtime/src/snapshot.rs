//! A step's entry body kept for its error handler: written into a thread's reused buffer in a
//! compact tagged form, and read back only when the step fails.
//!
//! A body function must own its input, so keeping the entry costs a copy per step. A `Value`
//! clone allocates every string and map node and frees them again; JSON scans every string for
//! escapes and formats every number. This form writes a tag byte per value, lengths and numbers
//! as 8 little-endian bytes and strings' bytes as they are: the copy is a walk over the body
//! into a buffer that, once warm, is never allocated again, with a map's key and scalar value
//! written in one stretch and short strings copied without a call. It round-trips a
//! `Value` exactly (integers as integers, floats bit for bit, maps in their order), at any depth.

use serde_json::{Map, Number, Value};
use std::cell::Cell;

/// The body as it entered a step (see the module's comment): the first `len` bytes of a buffer
/// kept fully initialised, so that writes are plain stores at a position.
pub(crate) struct BodySnapshot {
    /// Always some; none only once dropped.
    #[allow(clippy::box_collection, reason = "one word to hand back to the thread: see `BUFFER`")]
    buffer: Option<Box<Vec<u8>>>,
    len: usize,
}

thread_local! {
    /// Boxed, so that it goes back and forth as one word: a `Vec`'s three words, stored by one
    /// step and loaded by the next moments later, stall the load on a store not yet written.
    #[allow(clippy::box_collection, reason = "one word, stored and loaded whole: see above")]
    static BUFFER: Cell<Option<Box<Vec<u8>>>> = const { Cell::new(None) };
}

/// A buffer larger than this is not kept for the next step: one huge body should not pin its
/// size in every thread.
const BUFFER_KEPT: usize = 256 * 1024;

/// The size a thread's buffer starts at: most bodies fit.
const BUFFER_START: usize = 1024;

/// Below this much stack left, a nested array or map is walked on a new stack segment.
const RED_ZONE: usize = 64 * 1024;
/// The size of each new segment.
const STACK_SEGMENT: usize = 1024 * 1024;

const NULL: u8 = 0;
const FALSE: u8 = 1;
const TRUE: u8 = 2;
const UNSIGNED: u8 = 3;
const SIGNED: u8 = 4;
const FLOAT: u8 = 5;
const STRING: u8 = 6;
const ARRAY: u8 = 7;
const OBJECT: u8 = 8;

impl BodySnapshot {
    /// Keeps `body` as it is now.
    pub(crate) fn of(body: &Value) -> Self {
        let mut buffer = BUFFER.with(Cell::take).unwrap_or_default();
        let mut out = Writer { buffer: &mut buffer, at: 0 };
        out.value(body, 0);
        let len = out.at;
        BodySnapshot { buffer: Some(buffer), len }
    }

    /// The body as it was kept.
    pub(crate) fn restore(&self) -> Value {
        let mut input = self.buffer.as_deref().map_or(&[][..], |buffer| &buffer[..self.len]);
        // `of` wrote it, so it reads back whole; `null` is unreachable.
        read(&mut input).unwrap_or(Value::Null)
    }
}

impl Drop for BodySnapshot {
    fn drop(&mut self) {
        let buffer = self.buffer.take();
        if buffer.as_ref().is_some_and(|buffer| buffer.len() <= BUFFER_KEPT) {
            BUFFER.with(|slot| slot.set(buffer));
        }
    }
}

/// Walks one level of nesting on a stack that grows as deep as the body goes.
fn nested<R>(walk: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(RED_ZONE, STACK_SEGMENT, walk)
}

/// How many levels the walk descends between looks at the stack: a look costs a thread-local
/// read, more than writing a small value, and this many levels take a few kilobytes of a red
/// zone of 64.
const LEVELS_PER_STACK_CHECK: usize = 16;

/// Writes at a position into a buffer whose bytes are all initialised: a write is a check of
/// room and a few stores, with no length kept in memory, and a short string is two
/// overlapping fixed-size copies rather than a call to `memcpy`.
struct Writer<'b> {
    buffer: &'b mut Vec<u8>,
    at: usize,
}

impl Writer<'_> {
    /// The next `size` bytes, growing the buffer if they are past its end.
    #[inline(always)]
    fn room(&mut self, size: usize) -> &mut [u8] {
        let end = self.at + size;
        if end > self.buffer.len() {
            self.grow(end);
        }
        let room = &mut self.buffer[self.at..end];
        self.at = end;
        room
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, end: usize) {
        let size = end.max(self.buffer.len() * 2).max(BUFFER_START);
        self.buffer.resize(size, 0);
    }

    #[inline(always)]
    fn byte(&mut self, byte: u8) {
        self.room(1)[0] = byte;
    }

    /// A tag and a little-endian word.
    #[inline(always)]
    fn word(&mut self, tag: u8, word: u64) {
        let room = self.room(9);
        room[0] = tag;
        room[1..].copy_from_slice(&word.to_le_bytes());
    }

    /// A length (after a tag, if any) and the bytes, in one stretch of room.
    #[inline(always)]
    fn text(&mut self, tag: Option<u8>, text: &str) {
        let head = if tag.is_some() { 9 } else { 8 };
        put_text(self.room(head + text.len()), tag, text);
    }

    /// A map's key, with room for `value` bytes after it: the room returned.
    #[inline(always)]
    fn key(&mut self, key: &str, value: usize) -> &mut [u8] {
        let (name, value) = self.room(8 + key.len() + value).split_at_mut(8 + key.len());
        put_text(name, None, key);
        value
    }

    /// A scalar is written where it is found; only arrays and maps are calls (a call costs
    /// more than writing a number).
    #[inline(always)]
    fn value(&mut self, value: &Value, depth: usize) {
        match value {
            Value::Null => self.byte(NULL),
            Value::Bool(flag) => self.byte(if *flag { TRUE } else { FALSE }),
            Value::Number(number) => {
                let (tag, bits) = number_word(number);
                self.word(tag, bits);
            }
            Value::String(text) => self.text(Some(STRING), text),
            Value::Array(items) => self.array(items, depth + 1),
            Value::Object(fields) => self.object(fields, depth + 1),
        }
    }

    fn array(&mut self, items: &[Value], depth: usize) {
        self.word(ARRAY, items.len() as u64);
        descend(depth, || items.iter().for_each(|item| self.value(item, depth)));
    }

    fn object(&mut self, fields: &Map<String, Value>, depth: usize) {
        self.word(OBJECT, fields.len() as u64);
        descend(depth, || {
            for (key, field) in fields {
                match field {
                    // A key and a scalar in one stretch of room.
                    Value::Null => self.key(key, 1)[0] = NULL,
                    Value::Bool(flag) => self.key(key, 1)[0] = if *flag { TRUE } else { FALSE },
                    Value::Number(number) => {
                        let (tag, bits) = number_word(number);
                        let word = self.key(key, 9);
                        word[0] = tag;
                        word[1..].copy_from_slice(&bits.to_le_bytes());
                    }
                    Value::String(text) => put_text(self.key(key, 9 + text.len()), Some(STRING), text),
                    _ => {
                        self.text(None, key);
                        self.value(field, depth);
                    }
                }
            }
        });
    }
}

/// A number's tag and its 8 bytes.
#[inline(always)]
fn number_word(number: &Number) -> (u8, u64) {
    if let Some(unsigned) = number.as_u64() {
        (UNSIGNED, unsigned)
    } else if let Some(signed) = number.as_i64() {
        (SIGNED, signed as u64)
    } else {
        (FLOAT, number.as_f64().unwrap_or_default().to_bits())
    }
}

/// Writes `text` into `room`, which is exactly its size: the tag, if any, the length, the bytes.
#[inline(always)]
fn put_text(room: &mut [u8], tag: Option<u8>, text: &str) {
    let (head, bytes) = room.split_at_mut(room.len() - text.len());
    if let Some(tag) = tag {
        head[0] = tag;
    }
    let at = head.len() - 8;
    head[at..].copy_from_slice(&(text.len() as u64).to_le_bytes());
    copy_short(bytes, text.as_bytes());
}

/// Copies `bytes` into `room`, of the same length: the first and the last few bytes, which
/// overlap, cover any length of a short class without a call to `memcpy`.
#[inline(always)]
fn copy_short(room: &mut [u8], bytes: &[u8]) {
    let size = bytes.len();
    match size {
        0 => {}
        1..=3 => {
            room[0] = bytes[0];
            room[size / 2] = bytes[size / 2];
            room[size - 1] = bytes[size - 1];
        }
        4..=7 => {
            room[..4].copy_from_slice(&bytes[..4]);
            room[size - 4..].copy_from_slice(&bytes[size - 4..]);
        }
        8..=16 => {
            room[..8].copy_from_slice(&bytes[..8]);
            room[size - 8..].copy_from_slice(&bytes[size - 8..]);
        }
        _ => room.copy_from_slice(bytes),
    }
}

/// Walks the level below `depth`, on a grown stack when it is time to look.
#[inline(always)]
fn descend(depth: usize, walk: impl FnOnce()) {
    if depth.is_multiple_of(LEVELS_PER_STACK_CHECK) { nested(walk) } else { walk() }
}

fn read(input: &mut &[u8]) -> Option<Value> {
    let (&tag, rest) = input.split_first()?;
    *input = rest;
    Some(match tag {
        NULL => Value::Null,
        FALSE => Value::Bool(false),
        TRUE => Value::Bool(true),
        UNSIGNED => Value::from(u64::from_le_bytes(read_word(input)?)),
        SIGNED => Value::from(i64::from_le_bytes(read_word(input)?)),
        FLOAT => Value::Number(Number::from_f64(f64::from_le_bytes(read_word(input)?))?),
        STRING => Value::String(read_text(input)?),
        ARRAY => {
            let length = read_length(input)?;
            Value::Array(nested(|| (0..length).map(|_| read(input)).collect::<Option<Vec<Value>>>())?)
        }
        OBJECT => {
            let length = read_length(input)?;
            let fields = nested(|| {
                let mut fields = Map::new();
                for _ in 0..length {
                    let key = read_text(input)?;
                    fields.insert(key, read(input)?);
                }
                Some(fields)
            })?;
            Value::Object(fields)
        }
        _ => return None,
    })
}

fn read_word(input: &mut &[u8]) -> Option<[u8; 8]> {
    let (word, rest) = input.split_first_chunk::<8>()?;
    *input = rest;
    Some(*word)
}

fn read_length(input: &mut &[u8]) -> Option<usize> {
    usize::try_from(u64::from_le_bytes(read_word(input)?)).ok()
}

fn read_text(input: &mut &[u8]) -> Option<String> {
    let length = read_length(input)?;
    let (bytes, rest) = input.split_at_checked(length)?;
    *input = rest;
    String::from_utf8(bytes.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::BodySnapshot;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_filter("JSON numbers are finite", |f| f.is_finite()).prop_map(Value::from),
            ".*".prop_map(Value::String),
        ];
        leaf.prop_recursive(6, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(".*", inner, 0..8)
                    .prop_map(|fields| Value::Object(fields.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_body_comes_back_exactly(body in any_value()) {
            let kept = BodySnapshot::of(&body);
            let back = kept.restore();
            // Floats bit for bit: `-0.0 == 0.0` would hide a lost sign.
            prop_assert_eq!(serde_json::to_string(&back).unwrap(), serde_json::to_string(&body).unwrap());
            prop_assert_eq!(back, body);
        }
    }

    #[test]
    fn strings_and_keys_of_every_short_length_come_back() {
        // Each length class is copied its own way (see `Writer::text`): cover each boundary.
        for length in 0..=40 {
            let text: String = "aé😀".chars().cycle().take(length).collect();
            // A key with each kind of scalar is written with it in one stretch (`Writer::key`).
            let scalars = (0..5).map(|kind| {
                let value = [json!(null), json!(true), json!(-3), json!(0.25), json!(text)][kind].clone();
                (format!("{text}{kind}"), value)
            });
            let body = json!({ text.clone(): [text.clone(), Value::Object(scalars.collect())] });
            assert_eq!(BodySnapshot::of(&body).restore(), body, "length {length}");
        }
    }

    #[test]
    fn snapshots_taken_in_turn_on_one_thread_each_keep_their_own_body() {
        let first = BodySnapshot::of(&json!({ "a": [1, -2, 0.5, "x"] }));
        let second = BodySnapshot::of(&json!("second"));
        assert_eq!(first.restore(), json!({ "a": [1, -2, 0.5, "x"] }));
        drop(first);
        let third = BodySnapshot::of(&json!({ "deep": { "er": [[[]]] } }));
        assert_eq!((second.restore(), third.restore()), (json!("second"), json!({ "deep": { "er": [[[]]] } })));
    }

    #[test]
    fn a_body_far_deeper_than_the_stack_would_take_comes_back() {
        let mut body = json!(u64::MAX);
        for depth in 0..20_000 {
            // Not `json!`, which would copy `body` through `to_value`, recursively.
            body = if depth % 2 == 0 {
                Value::Array(vec![body])
            } else {
                Value::Object(std::iter::once(("k".to_string(), body)).collect())
            };
        }
        // A small stack: the walk grows it where it needs to. `Value`'s own comparison and drop
        // recurse, so the test compares and drops level by level.
        let same = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                let back = BodySnapshot::of(&body).restore();
                flatten(back) == flatten(body)
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(same);
    }

    /// A value's nodes in order, each with its kind and scalar, without recursing.
    fn flatten(value: Value) -> Vec<String> {
        let mut nodes = Vec::new();
        let mut pending = vec![value];
        while let Some(value) = pending.pop() {
            match value {
                Value::Array(items) => {
                    nodes.push(format!("array {}", items.len()));
                    pending.extend(items.into_iter().rev());
                }
                Value::Object(fields) => {
                    nodes.push(format!("object {}", fields.len()));
                    for (key, field) in fields.into_iter().rev() {
                        pending.push(field);
                        nodes.push(format!("key {key}"));
                    }
                }
                scalar => nodes.push(scalar.to_string()),
            }
        }
        nodes
    }
}
