//! The error stream on Redis.

use super::connection;
use crate::error::{ErrorRecord, ErrorStream, RunError};
use serde_json::json;
use std::sync::OnceLock;
use std::time::Duration;

/// The error stream on Redis: records are appended in the background, in order, retried while
/// Redis is away. Appending never fails or slows a request; if the backlog is full, the record
/// is logged in full instead.
pub struct RedisErrorStream {
    url: String,
    stream: String,
    sender: OnceLock<tokio::sync::mpsc::Sender<ErrorRecord>>,
}

impl RedisErrorStream {
    /// Records failures in `stream` at `url`.
    pub fn new(url: &str, stream: &str) -> Self {
        RedisErrorStream { url: url.to_string(), stream: stream.to_string(), sender: OnceLock::new() }
    }

    fn sender(&self) -> Option<&tokio::sync::mpsc::Sender<ErrorRecord>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        Some(self.sender.get_or_init(|| {
            let (sender, mut receiver) = tokio::sync::mpsc::channel::<ErrorRecord>(10_000);
            let (url, stream) = (self.url.clone(), self.stream.clone());
            runtime.spawn(async move {
                while let Some(record) = receiver.recv().await {
                    let mut delay = Duration::from_millis(100);
                    loop {
                        match append_error(&url, &stream, &record).await {
                            Ok(()) => break,
                            Err(error) => {
                                tracing::warn!(stream = %stream, "cannot append to the error stream, retrying: {error}");
                                tokio::time::sleep(delay).await;
                                delay = (delay * 2).min(Duration::from_secs(5));
                            }
                        }
                    }
                }
            });
            sender
        }))
    }
}

async fn append_error(url: &str, stream: &str, record: &ErrorRecord) -> Result<(), RunError> {
    let mut connection = connection(url)?;
    redis::cmd("XADD")
        .arg(stream)
        .arg("*")
        .arg("function")
        .arg(&record.function)
        .arg("source")
        .arg(&record.source)
        .arg("event")
        .arg(json!({ "id": record.event_id, "body": record.body }).to_string())
        .arg("message")
        .arg(&record.message)
        .arg("kind")
        .arg(record.kind.as_str())
        .arg("time")
        .arg(record.time)
        .query_async::<String>(&mut connection)
        .await
        .map(drop)
        .map_err(|error| RunError::redis(url, error))
}

impl ErrorStream for RedisErrorStream {
    fn append(&self, record: ErrorRecord) {
        let kept = match self.sender() {
            Some(sender) => sender.try_send(record).map_err(|error| match error {
                tokio::sync::mpsc::error::TrySendError::Full(record)
                | tokio::sync::mpsc::error::TrySendError::Closed(record) => record,
            }),
            None => Err(record),
        };
        if let Err(record) = kept {
            tracing::error!(stream = %self.stream, record = %record.to_json(), "error stream backlog full; the record is logged here instead");
        }
    }
}
