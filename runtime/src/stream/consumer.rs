//! The consumer loop a child function runs: its group, batches processed concurrently,
//! acknowledgement after the steps, records of stopped consumers taken over, and its counters.
//!
//! Effects happen once: what a batch's events write to streams on the consumer's own Redis
//! (the next queue, an output stream, a trigger's answers) is not written as the steps run but
//! collected, and written in one transaction (MULTI/EXEC) with the marks that its events were
//! processed and the acknowledgement of their records. A Redis restart or a killed consumer
//! finds either all of a batch's effects or none of them; with none, the records are still
//! pending and run again.
//!
//! On a Redis Cluster one transaction cannot span slots, so the same guarantee is kept in two
//! steps: each record's writes to each stream go in one script on that stream's slot, with a
//! mark that they were made (a record run again after a crash finds the mark and writes
//! nothing twice); then the processed marks and the acknowledgement, which live in the slot of
//! the stream read (`server::key_beside`), in one script there. Each shard is read on its own,
//! as XREADGROUP cannot read streams of several slots at once.

use super::StreamQueue;
#[cfg(feature = "streams")]
use super::server::{Connection, connection, key_beside, open};
#[cfg(feature = "streams")]
use crate::envelope::Envelope;
#[cfg(feature = "streams")]
use crate::error::RunError;
#[cfg(feature = "streams")]
use crate::pipeline::Handler;
#[cfg(feature = "streams")]
use redis::Value as Reply;
#[cfg(feature = "streams")]
use std::collections::BTreeMap;
#[cfg(feature = "streams")]
use std::future::Future;
#[cfg(feature = "streams")]
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// How a consumer reads its stream.
#[derive(Clone, Debug)]
pub struct ConsumeOptions {
    /// The consumer's name in its group; unique per process (default: host and process id).
    pub consumer: String,
    /// Records read at once; they are processed concurrently.
    pub batch: usize,
    /// How long one read waits for records.
    pub block: Duration,
    /// A record pending this long with another consumer is taken over (its consumer is
    /// presumed dead).
    pub claim_idle: Duration,
    /// How often to look for such records.
    pub claim_every: Duration,
    /// For this long after an event id was processed, a record with the same id is
    /// acknowledged without being processed again: a retry after an ambiguous 503, or a record
    /// an upstream consumer wrote twice. Zero turns it off.
    pub dedupe_window: Duration,
}

impl Default for ConsumeOptions {
    fn default() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string());
        ConsumeOptions {
            consumer: format!("{}-{}", host.unwrap_or_else(|_| "host".to_string()), std::process::id()),
            batch: 64,
            block: Duration::from_millis(500),
            claim_idle: Duration::from_secs(30),
            claim_every: Duration::from_secs(5),
            dedupe_window: Duration::from_secs(600),
        }
    }
}

/// What a consumer has done, for `/metrics` and the readiness probe of a child function.
#[derive(Debug, Default)]
pub struct ConsumerStats {
    read: AtomicU64,
    acknowledged: AtomicU64,
    retried: AtomicU64,
    claimed: AtomicU64,
    redis_errors: AtomicU64,
    duplicates: AtomicU64,
    ready: AtomicBool,
}

impl ConsumerStats {
    /// True once the consumer's groups exist and its last round with Redis succeeded.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Records acknowledged so far.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged.load(Ordering::Relaxed)
    }

    #[cfg(feature = "streams")]
    fn add(counter: &AtomicU64, count: usize) {
        counter.fetch_add(count as u64, Ordering::Relaxed);
    }

    /// The counters in Prometheus' text format, labelled with the group.
    pub fn render(&self, group: &str) -> String {
        let group = group.replace('\\', "\\\\").replace('"', "\\\"");
        let mut out = String::new();
        for (name, help, counter) in [
            ("graphc_stream_records_read_total", "Records read from the function's stream.", &self.read),
            (
                "graphc_stream_records_acknowledged_total",
                "Records acknowledged after their steps finished.",
                &self.acknowledged,
            ),
            ("graphc_stream_records_retried_total", "Records left pending for a retry (503).", &self.retried),
            ("graphc_stream_records_claimed_total", "Records taken over from stopped consumers.", &self.claimed),
            (
                "graphc_stream_redis_errors_total",
                "Failed rounds with Redis (retried with backoff).",
                &self.redis_errors,
            ),
            (
                "graphc_stream_records_duplicate_total",
                "Records of an event processed already within the dedupe window (acknowledged, not run).",
                &self.duplicates,
            ),
        ] {
            let value = counter.load(Ordering::Relaxed);
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{group=\"{group}\"}} {value}\n"
            ));
        }
        out
    }
}

/// The stream a child function reads, and its consumer group (the function's name).
#[derive(Clone, Debug)]
pub struct StreamSource {
    /// The queue.
    pub queue: StreamQueue,
    /// The consumer group: the reading function's name.
    pub group: String,
}

#[cfg(feature = "streams")]
/// A record's fields, as Redis returns them.
type Fields = Vec<(String, Vec<u8>)>;

#[cfg(feature = "streams")]
/// A record read: its stream (shared by the records of a read), its entry id, its fields.
type Entry = (Arc<str>, String, Fields);

#[cfg(feature = "streams")]
/// Reads `source` with `handler` until `shutdown` resolves: every record is processed by the
/// function's steps and acknowledged once they have finished. A record whose processing failed
/// for want of a stream (`503`) stays pending and is retried; other failures were answered to
/// the error stream and are acknowledged, so one bad record cannot block a stream. On shutdown
/// the records being processed finish first.
pub async fn consume<H: Handler>(
    handler: H,
    source: StreamSource,
    options: ConsumeOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    consume_with_stats(handler, source, options, Arc::default(), shutdown).await
}

#[cfg(feature = "streams")]
/// [`consume`], counting what it does in `stats`.
pub async fn consume_with_stats<H: Handler>(
    handler: H,
    source: StreamSource,
    options: ConsumeOptions,
    stats: Arc<ConsumerStats>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), RunError> {
    let streams = source.queue.streams();
    let commands = connection(&source.queue.url)?;
    let read_timeout = options.block + Duration::from_secs(5);
    let consumer = Consumer { handler, source, options, commands, stats };
    let result = if !consumer.commands.is_cluster() || streams.len() == 1 {
        let reads = open(&consumer.source.queue.url, read_timeout)?;
        consumer.run(&streams, &reads, shutdown).await
    } else {
        // A loop per shard, each with its own reading connection; the shutdown reaches them all,
        // and each finishes its batch first.
        let mut reads = Vec::with_capacity(streams.len());
        for _ in &streams {
            reads.push(open(&consumer.source.queue.url, read_timeout)?);
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let loops = futures_join_all(streams.iter().zip(&reads).map(|(stream, reads)| {
            let mut stopped = stopped.clone();
            let shutdown = async move {
                let _ = stopped.wait_for(|stopped| *stopped).await;
            };
            consumer.run(std::slice::from_ref(stream), reads, shutdown)
        }));
        tokio::pin!(loops);
        let results = tokio::select! {
            results = &mut loops => results,
            () = shutdown => {
                let _ = stop.send(true);
                loops.await
            }
        };
        results.into_iter().collect::<Result<Vec<()>, RunError>>().map(drop)
    };
    consumer.handler.drain().await;
    result
}

#[cfg(feature = "streams")]
impl<H: Handler> Consumer<H> {
    /// Groups first; then this consumer's own pending records (left by an earlier run under the
    /// same name); then new records, with a look for abandoned ones every `claim_every`. Only a
    /// read waiting for records is cut short by the shutdown; records being processed finish
    /// and are acknowledged first.
    async fn run(
        &self,
        streams: &[String],
        reads: &Connection,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), RunError> {
        tokio::pin!(shutdown);
        let mut backoff = Duration::from_millis(100);
        let mut ready = false;
        // Where the walk through this consumer's own pending records has got to; once it is
        // through, new records. Each pending record is tried once here: one that fails again
        // stays pending and comes back through XAUTOCLAIM after `claim_idle`.
        let mut own_pending: Option<Vec<String>> = Some(streams.iter().map(|_| "0".to_string()).collect());
        let new_records: Vec<String> = streams.iter().map(|_| ">".to_string()).collect();
        // The first look is at start-up: a consumer that replaces a dead one takes over its
        // records as soon as they have been idle long enough.
        let mut next_claim = tokio::time::Instant::now();
        // New records read while the previous batch was processed (see below).
        let mut read_ahead: Option<Result<Vec<Entry>, redis::RedisError>> = None;
        loop {
            let round: Result<(), redis::RedisError> = async {
                if !ready {
                    self.create_groups(streams).await?;
                    ready = true;
                    self.stats.ready.store(true, Ordering::Relaxed);
                }
                if tokio::time::Instant::now() >= next_claim {
                    self.claim(streams).await?;
                    next_claim = tokio::time::Instant::now() + self.options.claim_every;
                }
                Ok(())
            }
            .await;
            let entries = match round {
                // A batch read ahead waits out a failed round: its records are this consumer's.
                Ok(()) => match read_ahead.take() {
                    Some(entries) => entries,
                    None => {
                        tokio::select! {
                            biased;
                            () = &mut shutdown => return Ok(()),
                            entries = self.read(streams, reads, own_pending.as_ref().unwrap_or(&new_records)) => entries,
                        }
                    }
                },
                Err(error) => Err(error),
            };
            let processed = match entries {
                Ok(entries) => {
                    if let Some(cursors) = own_pending.as_mut() {
                        // Past the last record each stream returned; when none returns any, the
                        // walk is over.
                        for (stream, id, _) in &entries {
                            if let Some(index) = streams.iter().position(|s| s.as_str() == &**stream) {
                                cursors[index] = id.clone();
                            }
                        }
                        if entries.is_empty() {
                            own_pending = None;
                        }
                    }
                    if own_pending.is_some() || entries.is_empty() {
                        self.process(entries).await
                    } else {
                        // While a batch of new records is processed and acknowledged, the next
                        // one is read on the reading connection: its round trip to Redis
                        // overlaps the batch's work instead of following it. Records read are
                        // pending for this consumer until acknowledged, as they are once read
                        // in any case; a shutdown cuts only the read, never the batch.
                        let (processed, next) = tokio::join!(self.process(entries), async {
                            tokio::select! {
                                biased;
                                () = &mut shutdown => None,
                                next = self.read(streams, reads, &new_records) => Some(next),
                            }
                        });
                        match next {
                            Some(next) => read_ahead = Some(next),
                            None => return Ok(()),
                        }
                        processed
                    }
                }
                Err(error) => Err(error),
            };
            self.stats.ready.store(processed.is_ok(), Ordering::Relaxed);
            match processed {
                Ok(()) => backoff = Duration::from_millis(100),
                Err(error) => {
                    ConsumerStats::add(&self.stats.redis_errors, 1);
                    // The stream or the group may be gone (deleted, or Redis restarted without
                    // persistence): the next round makes them again (XGROUP CREATE ... MKSTREAM
                    // leaves existing ones alone).
                    ready = false;
                    if error.code() == Some("NOGROUP") {
                        own_pending = None;
                    }
                    let error = crate::error::redact_credentials(&error.to_string()).into_owned();
                    tracing::warn!(group = %self.source.group, "stream read failed, retrying in {backoff:?}: {error}");
                    tokio::select! {
                        biased;
                        () = &mut shutdown => return Ok(()),
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// A stream record to write: the stream and the record's fields.
#[cfg(feature = "streams")]
type Write = (String, Vec<(&'static str, String)>);

/// The writes of the records a consumer is processing, when they go to the Redis it reads.
#[cfg(feature = "streams")]
#[derive(Debug)]
pub(crate) struct Deferred {
    url: String,
    writes: std::sync::Mutex<Vec<Write>>,
}

#[cfg(feature = "streams")]
tokio::task_local! {
    static DEFERRED: std::sync::Arc<Deferred>;
}

/// Keeps a record a writer would write for the consumer processing this event, when it goes to
/// the consumer's own Redis (`url`); `Some` gives the fields back to write now.
#[cfg(feature = "streams")]
pub(crate) fn defer(
    url: &str,
    stream: &str,
    fields: Vec<(&'static str, String)>,
) -> Option<Vec<(&'static str, String)>> {
    let mut fields = Some(fields);
    let _ = DEFERRED.try_with(|deferred| {
        if deferred.url == url
            && let Ok(mut writes) = deferred.writes.lock()
            && let Some(fields) = fields.take()
        {
            writes.push((stream.to_string(), fields));
        }
    });
    fields
}

#[cfg(feature = "streams")]
struct Consumer<H> {
    handler: H,
    source: StreamSource,
    options: ConsumeOptions,
    commands: Connection,
    stats: Arc<ConsumerStats>,
}

#[cfg(feature = "streams")]
impl<H: Handler> Consumer<H> {
    async fn create_groups(&self, streams: &[String]) -> Result<(), redis::RedisError> {
        for stream in streams {
            let created = redis::cmd("XGROUP")
                .arg("CREATE")
                .arg(stream)
                .arg(&self.source.group)
                .arg("0")
                .arg("MKSTREAM")
                .query_async::<()>(&mut self.commands.clone())
                .await;
            match created {
                Err(error) if error.code() == Some("BUSYGROUP") => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Reads from each stream after its id in `from`: `>` for new records (waiting up to
    /// `block`), an entry id for this consumer's own pending records after it.
    async fn read(
        &self,
        streams: &[String],
        reads: &Connection,
        from: &[String],
    ) -> Result<Vec<Entry>, redis::RedisError> {
        let mut command = redis::cmd("XREADGROUP");
        command.arg("GROUP").arg(&self.source.group).arg(&self.options.consumer).arg("COUNT").arg(self.options.batch);
        if from.iter().all(|id| id == ">") {
            command.arg("BLOCK").arg(self.options.block.as_millis() as u64);
        }
        command.arg("STREAMS").arg(streams).arg(from);
        let reply = command.query_async::<Reply>(&mut reads.clone()).await?;
        let mut entries = Vec::new();
        for (stream, stream_entries) in pairs(reply) {
            let stream: Arc<str> = text(&stream).into();
            for entry in items(stream_entries) {
                if let Some((id, fields)) = entry_of(entry) {
                    entries.push((Arc::clone(&stream), id, fields));
                }
            }
        }
        Ok(entries)
    }

    /// Takes over records another consumer left pending for longer than `claim_idle`.
    async fn claim(&self, streams: &[String]) -> Result<(), redis::RedisError> {
        for stream in streams {
            let name: Arc<str> = stream.as_str().into();
            let mut cursor = "0-0".to_string();
            loop {
                let reply = redis::cmd("XAUTOCLAIM")
                    .arg(stream)
                    .arg(&self.source.group)
                    .arg(&self.options.consumer)
                    .arg(self.options.claim_idle.as_millis() as u64)
                    .arg(&cursor)
                    .arg("COUNT")
                    .arg(self.options.batch)
                    .query_async::<Reply>(&mut self.commands.clone())
                    .await?;
                let mut parts = items(reply).into_iter();
                let next = parts.next().map(|next| text(&next)).unwrap_or_else(|| "0-0".to_string());
                let claimed: Vec<Entry> = parts
                    .next()
                    .map(items)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(entry_of)
                    .map(|(id, fields)| (Arc::clone(&name), id, fields))
                    .collect();
                ConsumerStats::add(&self.stats.claimed, claimed.len());
                if !claimed.is_empty() {
                    tracing::info!(stream = %stream, count = claimed.len(), "took over records of a stopped consumer");
                }
                self.process(claimed).await?;
                if next == "0-0" {
                    break;
                }
                cursor = next;
            }
        }
        Ok(())
    }

    /// The key that marks an event id as processed by this function, in the slot of the
    /// stream its record was read from.
    fn seen_key(&self, stream: &str, id: &str) -> String {
        key_beside("seen", stream, &format!("{}:{id}", self.source.group))
    }

    /// Which of these records' event ids this function processed within the dedupe window.
    async fn seen(&self, records: &[(Arc<str>, Option<String>)]) -> Result<Vec<bool>, redis::RedisError> {
        let keys: Vec<String> =
            records.iter().filter_map(|(stream, id)| Some(self.seen_key(stream, id.as_deref()?))).collect();
        if self.options.dedupe_window.is_zero() || keys.is_empty() {
            return Ok(vec![false; records.len()]);
        }
        // On a cluster the client splits the keys by slot and puts the answers back in order.
        let found: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query_async(&mut self.commands.clone()).await?;
        let mut found = found.into_iter();
        Ok(records.iter().map(|(_, id)| id.is_some() && found.next().flatten().is_some()).collect())
    }

    /// Runs a batch concurrently, then writes what its events wrote to streams, marks them
    /// processed and acknowledges their records (see the module's comment for how, on one
    /// server and on a cluster). An event processed already within the dedupe window (or
    /// earlier in the batch) is acknowledged without running again; one that failed with `503`
    /// is left pending, to run again, and what it wrote meanwhile is dropped: it writes it again
    /// then.
    async fn process(&self, entries: Vec<Entry>) -> Result<(), redis::RedisError> {
        if entries.is_empty() {
            return Ok(());
        }
        ConsumerStats::add(&self.stats.read, entries.len());
        let window = self.options.dedupe_window.as_millis() as u64;
        let envelopes: Vec<(Arc<str>, String, Envelope)> =
            entries.into_iter().map(|(stream, id, fields)| (stream, id, Envelope::from_record(fields))).collect();
        // Only an envelope carries an event id; a plain field map's event gets a fresh one.
        let ids: Vec<(Arc<str>, Option<String>)> = envelopes
            .iter()
            .map(|(stream, _, envelope)| {
                (Arc::clone(stream), envelope.id.clone().filter(|id| window > 0 && !id.is_empty()))
            })
            .collect();
        let mut seen = self.seen(&ids).await?;
        // A record written twice upstream may arrive twice in one batch: it runs once.
        let mut in_batch = std::collections::HashSet::new();
        for ((_, id), seen) in ids.iter().zip(seen.iter_mut()) {
            if let Some(id) = id
                && !in_batch.insert(id.as_str())
            {
                *seen = true;
            }
        }
        let runs = envelopes.into_iter().zip(ids).zip(seen).map(
            |(((stream, entry, envelope), (_, event_id)), seen)| async move {
                let mut outcome = Outcome { stream, entry, event_id, done: true, writes: Vec::new() };
                if seen {
                    ConsumerStats::add(&self.stats.duplicates, 1);
                    return outcome;
                }
                let deferred = Arc::new(Deferred { url: self.source.queue.url.clone(), writes: Default::default() });
                let response = DEFERRED.scope(Arc::clone(&deferred), self.handler.handle(envelope.into_event())).await;
                outcome.done = response.status != 503;
                if outcome.done {
                    outcome.writes =
                        deferred.writes.lock().map(|mut writes| std::mem::take(&mut *writes)).unwrap_or_default();
                } else {
                    ConsumerStats::add(&self.stats.retried, 1);
                }
                outcome
            },
        );
        let outcomes = futures_join_all(runs).await;
        let done: Vec<&Outcome> = outcomes.iter().filter(|outcome| outcome.done).collect();
        if self.commands.is_cluster() {
            self.commit_on_cluster(&done).await?;
        } else {
            self.commit(&done).await?;
        }
        ConsumerStats::add(&self.stats.acknowledged, done.len());
        Ok(())
    }

    /// On one server: the batch's writes, marks and acknowledgements in one MULTI/EXEC.
    async fn commit(&self, done: &[&Outcome]) -> Result<(), redis::RedisError> {
        let Some(first) = done.first() else { return Ok(()) };
        let window = self.options.dedupe_window.as_millis() as u64;
        let mut transaction = redis::pipe();
        transaction.atomic();
        for outcome in done {
            for (stream, fields) in &outcome.writes {
                let add = transaction.cmd("XADD").arg(stream).arg("*");
                for (field, value) in fields {
                    add.arg(*field).arg(value);
                }
                add.ignore();
            }
            if let Some(id) = &outcome.event_id {
                transaction.cmd("SET").arg(self.seen_key(&outcome.stream, id)).arg(1).arg("PX").arg(window).ignore();
            }
        }
        for (stream, entries) in entries_by_stream(done) {
            transaction.cmd("XACK").arg(stream).arg(&self.source.group).arg(&entries).ignore();
        }
        transaction.query_async::<()>(&mut self.commands.clone()).await?;
        self.commands.wait_for_replicas(&first.stream).await
    }

    /// On a cluster, where one transaction cannot span slots: first each record's writes to
    /// each stream, once, by script on that stream's slot (`WRITE_ONCE`); then, per stream read,
    /// the marks and acknowledgements of its records by script on its slot (`MARK_AND_ACK`).
    /// A crash between the two runs the records again, and finds their writes made. Scripts
    /// are single commands, whose redirects and failovers the cluster client follows.
    async fn commit_on_cluster(&self, done: &[&Outcome]) -> Result<(), redis::RedisError> {
        let window = self.options.dedupe_window.as_millis() as u64;
        let mut writes = Vec::new();
        for outcome in done.iter().filter(|outcome| !outcome.writes.is_empty()) {
            let mut by_stream: BTreeMap<&str, Vec<&Vec<(&'static str, String)>>> = BTreeMap::new();
            for (stream, fields) in &outcome.writes {
                by_stream.entry(stream).or_default().push(fields);
            }
            for (stream, records) in by_stream {
                let mark =
                    key_beside("wrote", stream, &format!("{}:{}:{}", self.source.group, outcome.stream, outcome.entry));
                let mut script = redis::cmd("EVAL");
                script.arg(WRITE_ONCE).arg(2).arg(stream).arg(mark).arg(window);
                for fields in records {
                    script.arg(fields.len());
                    for (field, value) in fields {
                        script.arg(*field).arg(value);
                    }
                }
                writes.push(async move {
                    script.query_async::<()>(&mut self.commands.clone()).await?;
                    self.commands.wait_for_replicas(stream).await
                });
            }
        }
        futures_join_all(writes).await.into_iter().collect::<Result<Vec<()>, _>>()?;
        let acknowledgements = entries_by_stream(done).into_iter().map(|(stream, entries)| {
            let marks: Vec<String> = done
                .iter()
                .filter(|outcome| &*outcome.stream == stream)
                .filter_map(|outcome| Some(self.seen_key(stream, outcome.event_id.as_deref()?)))
                .collect();
            let mut script = redis::cmd("EVAL");
            script.arg(MARK_AND_ACK).arg(1 + marks.len()).arg(stream).arg(&marks);
            script.arg(&self.source.group).arg(window).arg(&entries);
            async move {
                script.query_async::<()>(&mut self.commands.clone()).await?;
                self.commands.wait_for_replicas(stream).await
            }
        });
        futures_join_all(acknowledgements).await.into_iter().collect::<Result<Vec<()>, _>>().map(drop)
    }
}

/// The entries of these records, by the stream they were read from.
#[cfg(feature = "streams")]
fn entries_by_stream<'a>(done: &[&'a Outcome]) -> BTreeMap<&'a str, Vec<&'a str>> {
    let mut entries: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for outcome in done {
        entries.entry(&outcome.stream).or_default().push(&outcome.entry);
    }
    entries
}

/// Writes a record's entries to one stream once: KEYS[1] the stream, KEYS[2] the mark that
/// they were written; ARGV[1] how long the mark is kept (ms; 0: no mark), then per entry its
/// number of fields and the fields' names and values, in pairs.
#[cfg(feature = "streams")]
const WRITE_ONCE: &str = r#"
local window = tonumber(ARGV[1])
if window > 0 and redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local i = 2
local written = 0
while i <= #ARGV do
  local fields = tonumber(ARGV[i])
  local entry = {'XADD', KEYS[1], '*'}
  for j = 1, 2 * fields do entry[#entry + 1] = ARGV[i + j] end
  redis.call(unpack(entry))
  i = i + 1 + 2 * fields
  written = written + 1
end
if window > 0 then redis.call('SET', KEYS[2], 1, 'PX', window) end
return written
"#;

/// Marks events processed and acknowledges their records, at once: KEYS[1] the stream read,
/// KEYS[2..] the marks; ARGV[1] the group, ARGV[2] how long marks are kept (ms), ARGV[3..] the
/// entries, acknowledged a thousand at a time (Lua's `unpack` takes only so many).
#[cfg(feature = "streams")]
const MARK_AND_ACK: &str = r#"
for i = 2, #KEYS do redis.call('SET', KEYS[i], 1, 'PX', ARGV[2]) end
local entries = {}
for i = 3, #ARGV do
  entries[#entries + 1] = ARGV[i]
  if #entries == 1000 or i == #ARGV then
    redis.call('XACK', KEYS[1], ARGV[1], unpack(entries))
    entries = {}
  end
end
return #ARGV - 2
"#;

/// A record read and run: where it came from, its event id (when duplicates are looked for),
/// whether it is done with (to acknowledge), and what it wrote to streams on this Redis.
#[cfg(feature = "streams")]
struct Outcome {
    stream: Arc<str>,
    entry: String,
    event_id: Option<String>,
    done: bool,
    writes: Vec<Write>,
}

#[cfg(feature = "streams")]
/// Awaits every future, concurrently, on the current task.
async fn futures_join_all<F: Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(|future| Some(Box::pin(future))).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    std::task::Poll::Pending => waiting = true,
                }
            }
        }
        if waiting { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[cfg(feature = "streams")]
fn items(reply: Reply) -> Vec<Reply> {
    match reply {
        Reply::Array(items) | Reply::Set(items) => items,
        Reply::Map(pairs) => pairs.into_iter().flat_map(|(key, value)| [key, value]).collect(),
        _ => Vec::new(),
    }
}

#[cfg(feature = "streams")]
/// `[[name, value], ...]` (RESP2) or a map (RESP3), as pairs.
fn pairs(reply: Reply) -> Vec<(Reply, Reply)> {
    match reply {
        Reply::Map(pairs) => pairs,
        other => items(other)
            .into_iter()
            .filter_map(|pair| {
                let mut pair = items(pair).into_iter();
                Some((pair.next()?, pair.next()?))
            })
            .collect(),
    }
}

#[cfg(feature = "streams")]
fn text(reply: &Reply) -> String {
    match reply {
        Reply::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        Reply::SimpleString(text) => text.clone(),
        Reply::Int(number) => number.to_string(),
        _ => String::new(),
    }
}

#[cfg(feature = "streams")]
/// `[id, [field, value, ...]]`; a pending record deleted meanwhile (`[id, nil]`) is skipped.
fn entry_of(entry: Reply) -> Option<(String, Fields)> {
    let mut parts = items(entry).into_iter();
    let id = into_text(parts.next()?);
    let flat = parts.next()?;
    if matches!(flat, Reply::Nil) {
        return None;
    }
    let mut flat = items(flat).into_iter();
    let mut fields = Vec::with_capacity(flat.len() / 2);
    while let (Some(name), Some(value)) = (flat.next(), flat.next()) {
        let value = match value {
            Reply::BulkString(bytes) => bytes,
            other => into_text(other).into_bytes(),
        };
        fields.push((into_text(name), value));
    }
    Some((id, fields))
}

#[cfg(feature = "streams")]
/// A reply as text, its bytes moved rather than copied when they are UTF-8.
fn into_text(reply: Reply) -> String {
    match reply {
        Reply::BulkString(bytes) => {
            String::from_utf8(bytes).unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned())
        }
        Reply::SimpleString(text) => text,
        other => text(&other),
    }
}
