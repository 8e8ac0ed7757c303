//! Triggers: what feeds a graph's root function besides HTTP. A stream trigger consumes a Redis
//! stream that any producer writes; a schedule trigger makes an event on a cron expression or a
//! fixed interval. Both run the root's one pipeline, next to its HTTP server.

use crate::error::RunError;
use crate::event::{Event, HeaderValue, Response};
use crate::pipeline::Handler;
use crate::stream::{ConsumeOptions, StreamSource, StreamWriter};
#[cfg(feature = "streams")]
use crate::stream::{ConsumerStats, consume_with_stats};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

/// One trigger of a graph's root function.
pub enum Trigger {
    /// Records of a Redis stream, each one event.
    Stream(StreamTrigger),
    /// Events made on a schedule.
    Schedule(ScheduleTrigger),
}

/// A stream the root consumes, as a child function consumes its stream: a consumer group,
/// acknowledgement after the steps, records of stopped consumers taken over, shards.
pub struct StreamTrigger {
    /// The trigger's name in the graph.
    pub name: String,
    /// The stream and the consumer group.
    pub source: StreamSource,
    /// Where each event's answer is written, if anywhere.
    pub answers: Option<StreamWriter>,
}

/// Events made on a schedule, with a body the graph declares.
pub struct ScheduleTrigger {
    /// The trigger's name in the graph.
    pub name: String,
    /// When it fires.
    pub when: When,
    /// Each event's body.
    pub body: Value,
    /// Whether a firing may start while the previous one is still running; when not, that
    /// firing is skipped (and counted).
    pub overlap: bool,
    /// Where each event's answer is written, if anywhere.
    pub answers: Option<StreamWriter>,
    /// Firings run and skipped.
    pub stats: Arc<ScheduleStats>,
}

/// When a schedule trigger fires.
#[derive(Clone, Debug)]
pub enum When {
    /// At the times a cron expression names, in a time zone.
    #[cfg(feature = "schedule")]
    Cron {
        /// The parsed expression.
        cron: Box<croner::Cron>,
        /// The zone its times are read in.
        zone: chrono_tz::Tz,
    },
    /// Every so often, the first time one interval after start-up.
    Every(Duration),
}

/// Why a cron schedule cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// The expression does not parse.
    #[error("invalid cron expression `{expression}`: {reason}")]
    Cron {
        /// The expression.
        expression: String,
        /// The parser's reason.
        reason: String,
    },
    /// The zone is not an IANA time zone.
    #[error("unknown time zone `{0}`")]
    Zone(String),
    /// The build has no cron support.
    #[error("cron schedule `{0}`: this build has no cron support (graphc-runtime's `schedule` feature)")]
    NotBuiltIn(String),
}

impl When {
    /// A cron expression (5 fields, or 6 with seconds first) read in the IANA time zone `zone`.
    #[cfg(feature = "schedule")]
    pub fn cron(expression: &str, zone: &str) -> Result<When, ScheduleError> {
        let cron: croner::Cron = expression.parse().map_err(|error: croner::errors::CronError| {
            ScheduleError::Cron { expression: expression.to_string(), reason: error.to_string() }
        })?;
        let zone: chrono_tz::Tz = zone.parse().map_err(|_| ScheduleError::Zone(zone.to_string()))?;
        Ok(When::Cron { cron: Box::new(cron), zone })
    }

    /// Without the `schedule` feature, a cron schedule cannot be set up.
    #[cfg(not(feature = "schedule"))]
    pub fn cron(expression: &str, _zone: &str) -> Result<When, ScheduleError> {
        Err(ScheduleError::NotBuiltIn(expression.to_string()))
    }

    /// The next firing strictly after `after`, if the schedule has one.
    pub fn next_after(&self, after: SystemTime) -> Option<SystemTime> {
        match self {
            When::Every(interval) => after.checked_add(*interval),
            #[cfg(feature = "schedule")]
            When::Cron { cron, zone } => {
                let after: chrono::DateTime<chrono::Utc> = after.into();
                let next = cron.find_next_occurrence(&after.with_timezone(zone), false).ok()?;
                Some(SystemTime::from(next.with_timezone(&chrono::Utc)))
            }
        }
    }
}

/// What a schedule trigger has done.
#[derive(Debug, Default)]
pub struct ScheduleStats {
    fired: AtomicU64,
    skipped: AtomicU64,
}

impl ScheduleStats {
    /// Firings that ran the graph.
    pub fn fired(&self) -> u64 {
        self.fired.load(Ordering::Relaxed)
    }

    /// Firings skipped because the previous one was still running.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

/// One pipeline shared by the HTTP server and every trigger of the root.
pub struct SharedHandler<H>(Arc<H>);

impl<H> SharedHandler<H> {
    /// Shares `handler`.
    pub fn new(handler: H) -> Self {
        SharedHandler(Arc::new(handler))
    }
}

impl<H> Clone for SharedHandler<H> {
    fn clone(&self) -> Self {
        SharedHandler(Arc::clone(&self.0))
    }
}

impl<H: Handler> Handler for SharedHandler<H> {
    fn handle(&self, event: Event) -> impl Future<Output = Response> + Send {
        self.0.handle(event)
    }

    fn drain(&self) -> impl Future<Output = ()> + Send {
        self.0.drain()
    }
}

/// A trigger's pipeline: every event is marked with the trigger's name, and its answer, when
/// the trigger keeps answers, is written to their stream with the same event id.
struct Triggered<H> {
    handler: SharedHandler<H>,
    trigger: Arc<str>,
    /// The trigger's name as a header value, made once, not per event.
    header: Option<HeaderValue>,
    answers: Option<Arc<StreamWriter>>,
}

impl<H> Triggered<H> {
    fn new(handler: &SharedHandler<H>, name: &str, answers: Option<StreamWriter>) -> Self {
        Triggered {
            handler: handler.clone(),
            trigger: name.into(),
            header: HeaderValue::from_str(name).ok(),
            answers: answers.map(Arc::new),
        }
    }
}

impl<H> Clone for Triggered<H> {
    fn clone(&self) -> Self {
        Triggered {
            handler: self.handler.clone(),
            trigger: Arc::clone(&self.trigger),
            header: self.header.clone(),
            answers: self.answers.clone(),
        }
    }
}

impl<H: Handler> Handler for Triggered<H> {
    async fn handle(&self, mut event: Event) -> Response {
        if let Some(value) = &self.header {
            event.headers.insert(TRIGGER_HEADER, value.clone());
        }
        let id = event.id.clone();
        let key = event.key.clone();
        let response = self.handler.handle(event).await;
        if let Some(answers) = &self.answers {
            let body = serde_json::from_slice(&response.body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&response.body).into_owned()));
            let mut answer = Event::new(body);
            answer.id = id;
            answer.key = key;
            if let Some(value) = &self.header {
                answer.headers.insert(TRIGGER_HEADER, value.clone());
            }
            answer.headers.insert(STATUS_HEADER, HeaderValue::from(response.status));
            if let Err(error) = answers.write(&answer).await {
                // The answer could not be kept: a stream trigger leaves its record pending.
                tracing::error!(trigger = %self.trigger, "cannot write the answer: {}", error.message);
                return Response::json(503, &serde_json::json!({ "error": error.message }));
            }
        }
        response
    }

    fn drain(&self) -> impl Future<Output = ()> + Send {
        self.handler.drain()
    }
}

/// The header naming the trigger an event came from.
pub const TRIGGER_HEADER: &str = "x-graphc-trigger";
/// The header of an answer record carrying the answer's HTTP status.
pub const STATUS_HEADER: &str = "x-graphc-status";

/// Runs every trigger with `handler` until `shutdown` resolves; stream triggers then finish the
/// records in hand and acknowledge them, and schedules stop firing.
pub async fn run<H: Handler>(
    handler: SharedHandler<H>,
    triggers: Vec<Trigger>,
    consume: ConsumeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    if triggers.is_empty() {
        return Ok(());
    }
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let mut tasks = tokio::task::JoinSet::new();
    for trigger in triggers {
        let mut stopped = stopped.clone();
        let until_stopped = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        match trigger {
            Trigger::Stream(trigger) => {
                let triggered = Triggered::new(&handler, &trigger.name, trigger.answers);
                // Logged, not printed: a closed standard error must not stop a trigger.
                tracing::info!(
                    trigger = %trigger.name,
                    streams = %trigger.source.queue.streams().join(", "),
                    server = %crate::error::redact_credentials(&trigger.source.queue.url),
                    group = %trigger.source.group,
                    "consuming"
                );
                let options = consume.clone();
                #[cfg(feature = "streams")]
                tasks.spawn(async move {
                    let stats = Arc::new(ConsumerStats::default());
                    consume_with_stats(triggered, trigger.source, options, stats, until_stopped).await
                });
                #[cfg(not(feature = "streams"))]
                tasks.spawn(async move {
                    let _ = (triggered, options, until_stopped);
                    Err(RunError::NotBuiltIn {
                        what: "Redis client for stream triggers",
                        how: "enable graphc-runtime's `streams` feature",
                    })
                });
            }
            Trigger::Schedule(trigger) => {
                let triggered = Triggered::new(&handler, &trigger.name, trigger.answers);
                let schedule =
                    Schedule { when: trigger.when, body: trigger.body, overlap: trigger.overlap, stats: trigger.stats };
                tasks.spawn(schedule.run(triggered, until_stopped));
            }
        }
    }
    // The first trigger to fail stops the others and is the answer: a root that silently lost
    // a trigger would look healthy while its stream piles up.
    while let Some(finished) = tasks.join_next().await {
        match finished {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(error),
            Err(error) => return Err(RunError::TriggerStopped(error)),
        }
    }
    Ok(())
}

struct Schedule {
    when: When,
    body: Value,
    overlap: bool,
    stats: Arc<ScheduleStats>,
}

impl Schedule {
    /// Fires until `stopped`; then waits for the runs in flight.
    async fn run<H: Handler>(self, handler: Triggered<H>, stopped: impl Future<Output = ()>) -> Result<(), RunError> {
        crate::metrics::register_schedule(&handler.trigger, Arc::clone(&self.stats));
        let running = Arc::new(AtomicUsize::new(0));
        let mut runs = tokio::task::JoinSet::new();
        tokio::pin!(stopped);
        let mut last = SystemTime::now();
        loop {
            let Some(next) = self.when.next_after(last) else {
                // (A cron expression limited to past years.) The trigger idles; it does not
                // end, which would stop the root.
                tracing::warn!(trigger = %handler.trigger, "the schedule has no further firing");
                (&mut stopped).await;
                break;
            };
            let wait = next.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = &mut stopped => break,
                _ = tokio::time::sleep(wait) => {}
            }
            // A late wake-up (a suspended machine) fires once, not once per missed time.
            last = next.max(SystemTime::now().checked_sub(Duration::from_millis(1)).unwrap_or(next));
            while runs.try_join_next().is_some() {}
            if !self.overlap && running.load(Ordering::Acquire) > 0 {
                self.stats.skipped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(trigger = %handler.trigger, "skipped a firing: the previous run is still going");
                continue;
            }
            self.stats.fired.fetch_add(1, Ordering::Relaxed);
            let mut event = Event::new(self.body.clone());
            event.time = next;
            event.method = "POST".into();
            event.content_type = Some(std::borrow::Cow::Borrowed("application/json"));
            let handler = handler.clone();
            let running = Arc::clone(&running);
            running.fetch_add(1, Ordering::AcqRel);
            runs.spawn(async move {
                let response = handler.handle(event).await;
                running.fetch_sub(1, Ordering::AcqRel);
                if response.status >= 400 {
                    tracing::warn!(trigger = %handler.trigger, status = response.status, "a scheduled run failed");
                }
            });
        }
        while runs.join_next().await.is_some() {}
        Ok(())
    }
}
