//! The handlers of examples/streaming/streaming.graph: a stand-in for a language model that
//! streams its answer a word at a time, and the store its transcripts go to.

use graphc_runtime::StepError;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long the "model" takes per word: long enough that a caller sees the words arrive one by
/// one, as it would from a real model.
const PER_WORD: Duration = Duration::from_millis(40);

/// `{prompt, max_tokens}`: up to `max_tokens` words of a canned answer about the prompt's
/// subject, each `{index, text, produced_ms}` (when it was produced, in milliseconds since the
/// Unix epoch), made only when the one before has been taken. An empty prompt is refused before
/// any word.
pub fn generate(body: Value) -> Box<dyn Iterator<Item = Result<Value, StepError>> + Send> {
    let prompt = body["prompt"].as_str().unwrap_or_default().trim().to_string();
    if prompt.is_empty() {
        return Box::new(std::iter::once(Err(StepError::invalid_input("`prompt` must be a non-empty string"))));
    }
    let max_tokens = body["max_tokens"].as_u64().unwrap_or(16);
    let subject = prompt.split_whitespace().last().unwrap_or("that").to_string();
    let answer = format!("{} are steps wired into a flow darn quickly and served by graphc", capitalised(&subject));
    let words: Vec<String> = answer.split_whitespace().map(str::to_string).collect();
    Box::new(words.into_iter().take(max_tokens as usize).enumerate().map(|(index, text)| {
        std::thread::sleep(PER_WORD);
        Ok(json!({ "index": index, "text": text, "produced_ms": now_ms() }))
    }))
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}

/// Transcripts stored: what the `collect()` branch hands over.
pub static STORED: AtomicUsize = AtomicUsize::new(0);

/// Stores a whole transcript (the array of every word the model produced).
pub fn store(transcript: Value) -> Value {
    STORED.fetch_add(1, Ordering::SeqCst);
    json!({ "words": transcript.as_array().map_or(0, Vec::len) })
}
