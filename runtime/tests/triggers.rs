//! Triggers at run time: schedules fire on time and do not overlap unless asked; a stream
//! trigger consumes records other producers wrote (plain field maps, as `redis-cli XADD` writes
//! them), loses none, acknowledges all, and keeps each answer; a consumer stopped under load
//! leaves acknowledged every record it ran.

#[path = "common/redis_server.rs"]
mod redis_server;

use graphc_runtime::stream::{ConsumeOptions, StreamQueue, StreamSource};
use graphc_runtime::trigger::{self, ScheduleStats, ScheduleTrigger, SharedHandler, Trigger, When};
use graphc_runtime::{Event, Handler, Response};
use redis_server::{RedisServer, consume_orders};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Counts events, remembers them, and takes `work` per event.
#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<Event>>,
    running: AtomicUsize,
    most_at_once: AtomicUsize,
    work: Duration,
}

impl Handler for Recorder {
    async fn handle(&self, event: Event) -> Response {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_at_once.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(self.work).await;
        let answer = json!({ "seen": event.body.clone() });
        self.events.lock().unwrap().push(event);
        self.running.fetch_sub(1, Ordering::SeqCst);
        Response::json(200, &answer)
    }

    async fn drain(&self) {}
}

fn schedule(when: When, overlap: bool, stats: &Arc<ScheduleStats>) -> Trigger {
    Trigger::Schedule(ScheduleTrigger {
        name: "tick".to_string(),
        when,
        body: json!({ "kind": "tick" }),
        overlap,
        answers: None,
        stats: Arc::clone(stats),
    })
}

#[tokio::test]
async fn an_interval_schedule_fires_on_time_with_its_body_and_firing_time() {
    let recorder = Arc::new(Recorder::default());
    let stats = Arc::new(ScheduleStats::default());
    let handler = SharedHandler::new(ArcHandler(Arc::clone(&recorder)));
    let started = SystemTime::now();
    let triggers = vec![schedule(When::Every(Duration::from_millis(50)), false, &stats)];
    trigger::run(handler, triggers, ConsumeOptions::default(), tokio::time::sleep(Duration::from_millis(530)))
        .await
        .unwrap();
    let events = recorder.events.lock().unwrap();
    // Ten firings in 530 ms at 50 ms; a loaded machine may wake late and fire fewer, never more.
    assert!((6..=10).contains(&events.len()), "{} firings", events.len());
    assert_eq!(stats.fired(), events.len() as u64);
    assert_eq!(stats.skipped(), 0);
    let mut previous = started;
    for event in events.iter() {
        assert_eq!(event.body, json!({ "kind": "tick" }));
        assert_eq!(event.headers.get(trigger::TRIGGER_HEADER).unwrap(), "tick");
        assert!(event.time > previous, "each firing is later than the one before, and carries its time");
        previous = event.time;
    }
}

#[tokio::test]
async fn a_firing_is_skipped_while_the_previous_run_is_going_unless_overlap_is_asked() {
    for overlap in [false, true] {
        let recorder = Arc::new(Recorder { work: Duration::from_millis(120), ..Recorder::default() });
        let stats = Arc::new(ScheduleStats::default());
        let handler = SharedHandler::new(ArcHandler(Arc::clone(&recorder)));
        let triggers = vec![schedule(When::Every(Duration::from_millis(30)), overlap, &stats)];
        trigger::run(handler, triggers, ConsumeOptions::default(), tokio::time::sleep(Duration::from_millis(400)))
            .await
            .unwrap();
        let most = recorder.most_at_once.load(Ordering::SeqCst);
        if overlap {
            assert!(most > 1, "overlapping runs were asked for: at most {most} at once");
            assert_eq!(stats.skipped(), 0);
        } else {
            assert_eq!(most, 1, "one run at a time");
            assert!(stats.skipped() > 0, "firings during a run are skipped");
        }
        // Runs in flight at shutdown finish before `run` returns.
        assert_eq!(recorder.running.load(Ordering::SeqCst), 0);
        assert_eq!(recorder.events.lock().unwrap().len() as u64, stats.fired());
    }
}

#[test]
fn cron_schedules_follow_the_time_zone() {
    // 02:30 in Paris is 00:30 UTC in summer (CEST) and 01:30 UTC in winter (CET).
    let when = When::cron("30 2 * * *", "Europe/Paris").unwrap();
    let summer: SystemTime = chrono::DateTime::parse_from_rfc3339("2026-07-01T12:00:00Z").unwrap().into();
    let next: chrono::DateTime<chrono::Utc> = when.next_after(summer).unwrap().into();
    assert_eq!(next.to_rfc3339(), "2026-07-02T00:30:00+00:00");
    let winter: SystemTime = chrono::DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z").unwrap().into();
    let next: chrono::DateTime<chrono::Utc> = when.next_after(winter).unwrap().into();
    assert_eq!(next.to_rfc3339(), "2026-12-02T01:30:00+00:00");
    // POSIX weekdays: 1-5 is Monday to Friday. 2026-11-27 is a Friday.
    let weekdays = When::cron("0 9 * * 1-5", "UTC").unwrap();
    let friday_noon: SystemTime = chrono::DateTime::parse_from_rfc3339("2026-11-27T12:00:00Z").unwrap().into();
    let next: chrono::DateTime<chrono::Utc> = weekdays.next_after(friday_noon).unwrap().into();
    assert_eq!(next.to_rfc3339(), "2026-11-30T09:00:00+00:00", "the next weekday is Monday");
    assert!(When::cron("61 * * * *", "UTC").is_err());
    assert!(When::cron("* * * * *", "Mars/Olympus").is_err());
}

/// A `Recorder` shared with the test, as a handler.
struct ArcHandler(Arc<Recorder>);

impl Handler for ArcHandler {
    fn handle(&self, event: Event) -> impl std::future::Future<Output = Response> + Send {
        self.0.handle(event)
    }

    fn drain(&self) -> impl std::future::Future<Output = ()> + Send {
        self.0.drain()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_trigger_consumes_ten_thousand_plain_records_losing_none() {
    let redis = RedisServer::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    // Written as another system would (`XADD incoming * order N amount A`), before and while
    // the trigger runs, over two shards.
    const RECORDS: usize = 10_000;
    let write = |connection: redis::aio::MultiplexedConnection, from: usize, to: usize| async move {
        let mut connection = connection;
        for chunk in (from..to).collect::<Vec<_>>().chunks(500) {
            let mut pipe = redis::pipe();
            for &n in chunk {
                pipe.cmd("XADD")
                    .arg(format!("incoming:{}", n % 2))
                    .arg("*")
                    .arg("order")
                    .arg(n)
                    .arg("amount")
                    .arg("3.5");
            }
            pipe.query_async::<()>(&mut connection).await.unwrap();
        }
    };
    write(connection.clone(), 0, RECORDS / 2).await;
    let recorder = Arc::new(Recorder::default());
    let (stop, running) = consume_orders(&redis.url(), 2, SharedHandler::new(ArcHandler(Arc::clone(&recorder))));
    write(connection.clone(), RECORDS / 2, RECORDS).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while recorder.events.lock().unwrap().len() < RECORDS {
        assert!(
            Instant::now() < deadline,
            "only {} of {RECORDS} records processed",
            recorder.events.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every answer written: wait for the last acknowledgements, then stop.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut pending = 0;
        for shard in ["incoming:0", "incoming:1"] {
            // XPENDING's summary starts with the number of records pending in the group.
            let summary: redis::Value =
                redis::cmd("XPENDING").arg(shard).arg("scoring").query_async(&mut connection).await.unwrap();
            if let redis::Value::Array(items) = summary
                && let Some(redis::Value::Int(count)) = items.first()
            {
                pending += *count;
            }
        }
        if pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{pending} records still pending");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    {
        let events = recorder.events.lock().unwrap();
        assert_eq!(events.len(), RECORDS, "each record processed once");
        let mut orders: Vec<u64> =
            events.iter().map(|event| event.body["order"].as_str().unwrap().parse::<u64>().unwrap()).collect();
        orders.sort_unstable();
        orders.dedup();
        assert_eq!(orders.len(), RECORDS, "none lost");
        assert_eq!(events[0].body["amount"], json!("3.5"), "a plain record's fields are the body, as strings");
        assert_eq!(events[0].headers.get(trigger::TRIGGER_HEADER).unwrap(), "orders");
    }
    let answered: usize = redis::cmd("XLEN").arg("scores").query_async(&mut connection).await.unwrap();
    assert_eq!(answered, RECORDS, "every answer kept");
    // XRANGE: [[entry id, [field, value, ...]]].
    let first: redis::Value = redis::cmd("XRANGE")
        .arg("scores")
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut connection)
        .await
        .unwrap();
    let fields = match first {
        redis::Value::Array(entries) => match entries.into_iter().next() {
            Some(redis::Value::Array(mut entry)) => entry.pop().unwrap(),
            other => panic!("an entry: {other:?}"),
        },
        other => panic!("entries: {other:?}"),
    };
    let fields: Vec<String> = redis::from_redis_value(fields).unwrap();
    let field = |name: &str| fields.iter().position(|f| f == name).map(|i| fields[i + 1].clone()).unwrap();
    let body: Value = serde_json::from_str(&field("body")).unwrap();
    assert!(body["seen"]["order"].is_string(), "the answer is the pipeline's: {body}");
    let headers = field("headers");
    assert!(headers.contains("\"x-graphc-status\":\"200\""), "{headers}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_stopped_under_load_acknowledges_every_record_it_ran_and_runs_none_twice() {
    // A consumer reads its next batch while the last one runs; stopping it must still leave
    // every record it ran acknowledged, including a batch read ahead when the stop came.
    const RECORDS: usize = 3_000;
    let redis = RedisServer::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let mut pipe = redis::pipe();
    for n in 0..RECORDS {
        pipe.cmd("XADD").arg("work").arg("*").arg("n").arg(n);
    }
    pipe.query_async::<()>(&mut connection).await.unwrap();

    let recorder = Arc::new(Recorder { work: Duration::from_millis(2), ..Recorder::default() });
    let stats = Arc::new(graphc_runtime::stream::ConsumerStats::default());
    let source = StreamSource { queue: StreamQueue::new("work", &redis.url(), "work", 1), group: "workers".into() };
    let options = ConsumeOptions { consumer: "w1".into(), batch: 32, ..ConsumeOptions::default() };
    let watched = Arc::clone(&recorder);
    // Stopped a third of the way, with batches in flight.
    let stop = async move {
        while watched.events.lock().unwrap().len() < RECORDS / 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    graphc_runtime::stream::consume_with_stats(
        ArcHandler(Arc::clone(&recorder)),
        source,
        options,
        Arc::clone(&stats),
        stop,
    )
    .await
    .unwrap();

    let ran: Vec<String> = recorder.events.lock().unwrap().iter().map(|event| event.body["n"].to_string()).collect();
    assert!(ran.len() >= RECORDS / 3 && ran.len() < RECORDS, "stopped partway: {} ran", ran.len());
    let mut once = ran.clone();
    once.sort_unstable();
    once.dedup();
    assert_eq!(once.len(), ran.len(), "no record ran twice");
    assert_eq!(stats.acknowledged(), ran.len() as u64, "every record that ran was acknowledged");
    // What is still pending with the consumer is only what a read cut short by the stop took
    // (at most one batch), never a record that ran.
    let summary: redis::Value =
        redis::cmd("XPENDING").arg("work").arg("workers").query_async(&mut connection).await.unwrap();
    let pending = match summary {
        redis::Value::Array(items) => match items.first() {
            Some(redis::Value::Int(count)) => *count,
            other => panic!("a count: {other:?}"),
        },
        other => panic!("a summary: {other:?}"),
    };
    assert!(pending <= 32, "{pending} records pending after the stop");
}
