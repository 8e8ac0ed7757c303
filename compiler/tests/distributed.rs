//! A distributed graph as users run it: examples/distributed/distributed.graph built by
//! `graphc build`, its three functions as three OS processes (root -> stream -> enricher ->
//! stream -> scorer -> output stream), against a real redis-server this test starts on a free
//! loopback port. Every accepted event must arrive at the end: with all processes up, with the
//! enricher killed by SIGKILL halfway and replaced (by another consumer, or under its own name),
//! with Redis stopped and restarted, and on a Redis Cluster of three masters with replicas
//! through a master's failover.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

const GRAPH: &str = "examples/distributed/distributed.graph";

/// The graph's binary, built once per test process (cargo serialises concurrent builds).
fn binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY
        .get_or_init(|| {
            let output = Command::new(env!("CARGO_BIN_EXE_graphc"))
                .args(["build", GRAPH])
                .current_dir(workspace())
                .output()
                .expect("graphc runs");
            assert!(output.status.success(), "graphc build failed: {}", String::from_utf8_lossy(&output.stderr));
            PathBuf::from(String::from_utf8(output.stdout).expect("utf-8").trim())
        })
        .clone()
}

/// A redis-server of this test's own, on a free port, with its data in a directory of its own
/// (append-only file, fsync on every write), so that a restart keeps every acknowledged write.
struct Redis {
    port: u16,
    dir: PathBuf,
    /// A node of a Redis Cluster (restarted as one).
    cluster: bool,
    process: Child,
}

impl Redis {
    fn start(name: &str) -> Redis {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
        let dir = std::env::temp_dir().join(format!("graphc-redis-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("redis directory");
        let process = Redis::spawn(port, &dir, false);
        Redis { port, dir, cluster: false, process }
    }

    /// A cluster node fails over after a second without it, and its replica syncs at once.
    fn spawn(port: u16, dir: &Path, cluster: bool) -> Child {
        let cluster_args: &[&str] = if cluster {
            &["--cluster-enabled", "yes", "--cluster-node-timeout", "1000", "--repl-diskless-sync-delay", "0"]
        } else {
            &[]
        };
        let process = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes"])
            .args(["--appendfsync", "always"])
            .args(cluster_args)
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (the README's test command installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        process
    }

    /// Stops it with `signal` (`TERM`: a graceful shutdown; `KILL`: a crash).
    fn stop(&mut self, signal: &str) {
        let _ = Command::new("kill").args([format!("-{signal}"), self.process.id().to_string()]).status();
        let _ = self.process.wait();
    }

    /// Starts it again from its files (a cluster node finds its slots served by another master
    /// and becomes that master's replica).
    fn restart(&mut self) {
        self.process = Redis::spawn(self.port, &self.dir, self.cluster);
    }
}

/// Where the graph's streams live, as the test reads them: one server or a cluster.
trait Store {
    /// The URL the functions get as `--redis`.
    fn url(&self) -> String;

    fn connection(&self) -> Box<dyn redis::ConnectionLike>;

    /// Every event id in the output stream, with how many times it arrived.
    fn arrived(&self) -> HashMap<String, usize> {
        let mut connection = self.connection();
        let mut counts = HashMap::new();
        let mut from = "-".to_string();
        loop {
            let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
                .arg("scored")
                .arg(&from)
                .arg("+")
                .arg("COUNT")
                .arg(5000)
                .query(connection.as_mut())
                .expect("XRANGE");
            let Some((last, _)) = entries.last().cloned() else { break };
            for (_, fields) in &entries {
                *counts.entry(fields.get("id").cloned().unwrap_or_default()).or_default() += 1;
            }
            from = format!("({last}");
        }
        counts
    }

    fn output_length(&self) -> usize {
        redis::cmd("XLEN").arg("scored").query(self.connection().as_mut()).unwrap_or(0)
    }
}

impl Store for Redis {
    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn connection(&self) -> Box<dyn redis::ConnectionLike> {
        Box::new(redis::Client::open(self.url()).expect("url").get_connection().expect("connects to redis"))
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One function of the graph, as its own process, with what it has logged: a test that fails
/// prints the end of each function's log, which is all a CI run leaves to read.
struct Function {
    child: Child,
    name: String,
    log: Arc<std::sync::Mutex<std::collections::VecDeque<String>>>,
}

impl Function {
    /// Starts it; the address it serves on (the root's HTTP, or a child's `--metrics-port`).
    fn start(function: &str, redis: &dyn Store, extra: &[&str]) -> (Function, Option<String>) {
        let mut child = Command::new(binary())
            .args(["serve", "--base", "examples/distributed", "--port", "0", "--function", function])
            .args(["--redis", &redis.url(), "--claim-idle-ms", "1000", "--claim-every-ms", "500"])
            .args(extra)
            .current_dir(workspace())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the function starts");
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut address = None;
        let mut line = String::new();
        // The root prints where it listens; a child function, what it consumes.
        while stderr.read_line(&mut line).expect("reads") > 0 {
            if let Some((_, at)) = line.trim().strip_prefix("serving ").and_then(|rest| rest.split_once(" on http://"))
            {
                address = Some(at.to_string());
                break;
            }
            if let Some(at) = line.trim().strip_prefix("metrics and health on http://") {
                address = Some(at.to_string());
            }
            if line.contains("consuming") {
                break;
            }
            line.clear();
        }
        // Keep draining its log so that it never blocks on a full pipe, keeping its last lines.
        let log = Arc::new(std::sync::Mutex::new(std::collections::VecDeque::new()));
        std::thread::spawn({
            let log = Arc::clone(&log);
            move || {
                for line in stderr.lines().map_while(Result::ok) {
                    let mut log = log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    if log.len() == 200 {
                        log.pop_front();
                    }
                    log.push_back(line);
                }
            }
        });
        (Function { child, name: function.to_string(), log }, address)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn stop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            let log = self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let lines: Vec<&str> = log.iter().map(String::as_str).collect();
            eprintln!("---- the last {} lines {} logged ----\n{}", lines.len(), self.name, lines.join("\n"));
        }
    }
}

/// Sends events `from..to` to the root, 16 at a time; returns the ids it accepted (202) and
/// how many it refused with a JSON error (so the caller knows).
async fn send(root: &str, from: usize, to: usize, pause_at: Option<(usize, Arc<AtomicUsize>)>) -> (Vec<String>, usize) {
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicUsize::new(from));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (client, next, root, pause_at) = (client.clone(), Arc::clone(&next), root.to_string(), pause_at.clone());
        workers.spawn(async move {
            let (mut accepted, mut refused) = (Vec::new(), 0);
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= to {
                    return (accepted, refused);
                }
                if let Some((at, reached)) = &pause_at
                    && n == *at
                {
                    reached.store(1, Ordering::SeqCst);
                }
                let id = format!("e{n}");
                let response = client
                    .post(format!("http://{root}/"))
                    .header("content-type", "application/json")
                    .header("x-event-id", &id)
                    .body(format!(r#"{{"n": {n}, "text": "event {n}"}}"#))
                    .send()
                    .await;
                match response {
                    Ok(response) if response.status() == 202 => accepted.push(id),
                    Ok(response) => {
                        let status = response.status();
                        let retry_after = response.headers().get("retry-after").cloned();
                        let body: serde_json::Value = response.json().await.expect("errors are JSON");
                        assert_eq!(status, 503, "only an unavailable stream may refuse an event: {body}");
                        // The caller hears that it may retry; Redis's own error is in the log.
                        assert!(body["error"].as_str().is_some_and(|e| e.contains("unavailable")), "{body}");
                        assert!(retry_after.is_some(), "a 503 says when to retry");
                        refused += 1;
                    }
                    Err(error) => panic!("the root must answer every request: {error}"),
                }
            }
        });
    }
    let (mut accepted, mut refused) = (Vec::new(), 0);
    while let Some(result) = workers.join_next().await {
        let (ids, count) = result.expect("sender");
        accepted.extend(ids);
        refused += count;
    }
    (accepted, refused)
}

/// Sends events `0..to` in the background, and returns once the `at`th is being sent: the load
/// to await for what it accepted and refused.
async fn load_reaching(root: &str, to: usize, at: usize) -> tokio::task::JoinHandle<(Vec<String>, usize)> {
    let reached = Arc::new(AtomicUsize::new(0));
    let load = tokio::spawn({
        let (root, reached) = (root.to_string(), Arc::clone(&reached));
        async move { send(&root, 0, to, Some((at, reached))).await }
    });
    while reached.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    load
}

/// `callers` concurrent callers, eight requests each: texts from empty to 60 KiB, and every
/// eighth body not JSON, which must be refused with 400 and a JSON error. The ids accepted
/// (202), with the length of the text each carried.
async fn mixed_callers(root: &str, callers: usize) -> HashMap<String, usize> {
    let client = reqwest::Client::new();
    let mut workers = tokio::task::JoinSet::new();
    for caller in 0..callers {
        let (client, root) = (client.clone(), root.to_string());
        workers.spawn(async move {
            let mut accepted = Vec::new();
            for request in 0..8 {
                let id = format!("m{caller}-{request}");
                let length = (caller * 8 + request) * 7_919 % 61_440;
                let body = if request == 7 {
                    r#"{"n": 1, "text": "#.to_string()
                } else {
                    serde_json::json!({"n": caller, "text": "x".repeat(length)}).to_string()
                };
                let response = client
                    .post(format!("http://{root}/"))
                    .header("content-type", "application/json")
                    .header("x-event-id", &id)
                    .body(body)
                    .send()
                    .await
                    .expect("the root answers every request");
                let status = response.status().as_u16();
                let answer: serde_json::Value = response.json().await.expect("every answer is JSON");
                if request == 7 {
                    assert_eq!(status, 400, "{answer}");
                    assert!(answer["error"].is_string(), "{answer}");
                } else {
                    assert_eq!((status, &answer["id"]), (202, &serde_json::json!(id)), "{answer}");
                    accepted.push((id, length));
                }
            }
            accepted
        });
    }
    let mut accepted = HashMap::new();
    while let Some(result) = workers.join_next().await {
        accepted.extend(result.expect("caller"));
    }
    accepted
}

/// The root's readiness probe, asked `times` times 50 ms apart: each status.
async fn probe_ready(root: &str, times: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..times {
        let status = reqwest::get(format!("http://{root}/v2/health/ready")).await.expect("probe").status().as_u16();
        statuses.push(status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    statuses
}

/// Asks a function's readiness probe until it answers 200, `tries` times 100 ms apart, as a
/// kubelet does; the last status.
async fn until_ready(probes: &str, tries: usize) -> u16 {
    let mut ready = 0;
    for _ in 0..tries {
        ready = reqwest::get(format!("http://{probes}/v2/health/ready")).await.expect("ready probe").status().as_u16();
        if ready == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    ready
}

/// Once Redis is back, sends events one at a time from `from` until the root takes one again
/// (within `within`), then the rest up to `to`, none of which may be refused; the ids accepted.
async fn resume(root: &str, from: usize, to: usize, within: Duration, why: &str) -> Vec<String> {
    let started = Instant::now();
    let mut accepted = Vec::new();
    let mut next = from;
    loop {
        let (more, refused) = send(root, next, next + 1, None).await;
        accepted.extend(more);
        next += 1;
        if refused == 0 {
            break;
        }
        assert!(started.elapsed() < within, "{why}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (more, refused_after) = send(root, next, to, None).await;
    assert_eq!(refused_after, 0);
    accepted.extend(more);
    accepted
}

/// The body of the record for `event_id` in the output stream.
fn scored_record(connection: &mut dyn redis::ConnectionLike, event_id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let entries: Vec<(String, HashMap<String, String>)> =
            redis::cmd("XRANGE").arg("scored").arg("-").arg("+").query(connection).expect("XRANGE");
        if let Some((_, fields)) =
            entries.iter().find(|(_, fields)| fields.get("id").map(String::as_str) == Some(event_id))
        {
            return serde_json::from_str(&fields["body"]).expect("JSON body");
        }
        assert!(Instant::now() < deadline, "no record for {event_id}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Both shards of `incoming` took more than a tenth of the 10,000 events, and the enricher
/// acknowledged everything it read.
fn shards_used_and_acknowledged(connection: &mut dyn redis::ConnectionLike) {
    for shard in ["incoming:0", "incoming:1"] {
        let length: usize = redis::cmd("XLEN").arg(shard).query(connection).expect("XLEN");
        assert!(length > 1000, "{shard} holds {length}");
        // XPENDING's summary starts with the number of unacknowledged records.
        let pending: Vec<redis::Value> =
            redis::cmd("XPENDING").arg(shard).arg("enricher").query(connection).expect("XPENDING");
        assert_eq!(pending.first(), Some(&redis::Value::Int(0)), "{shard} has unacknowledged records");
    }
}

/// Waits until every accepted id has arrived (or a minute has passed); returns lost ids and
/// duplicates, and prints both.
fn settle(redis: &dyn Store, accepted: &[String], case: &str) -> (Vec<String>, usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let missing = |arrived: &HashMap<String, usize>| accepted.iter().filter(|id| !arrived.contains_key(*id)).count();
    // Redeliveries count in the stream's length, so it is the ids that are waited for.
    while (redis.output_length() < accepted.len() || missing(&redis.arrived()) > 0) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    // Let redeliveries that are still in flight land, so that duplicates are counted.
    std::thread::sleep(Duration::from_millis(500));
    let arrived = redis.arrived();
    let mut lost: Vec<String> = accepted.iter().filter(|id| !arrived.contains_key(*id)).cloned().collect();
    lost.sort();
    let duplicates: usize = arrived.values().map(|count| count - 1).sum();
    eprintln!(
        "{case}: accepted {}, arrived {}, lost {}, duplicates {duplicates}",
        accepted.len(),
        arrived.len(),
        lost.len()
    );
    (lost, duplicates)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_cross_three_processes_and_all_arrive() {
    let redis = Redis::start("all");
    let (_root, address) = Function::start("distributed", &redis, &[]);
    // No takeovers here (that is the next test's case): under a loaded machine a batch may stay
    // pending past the default second, and its records would be counted twice below.
    let (_enricher, probes) = Function::start("enricher", &redis, &["--metrics-port", "0", "--claim-idle-ms", "60000"]);
    let (_scorer, _) = Function::start("scorer", &redis, &[]);
    let root = address.expect("the root listens");
    let probes = probes.expect("the enricher serves its probes");
    // As a readiness probe does: ask until ready (its consumer group exists), for a while.
    assert_eq!(until_ready(&probes, 50).await, 200, "the enricher becomes ready once its group exists");
    let (accepted, refused) = send(&root, 0, 10_000, None).await;
    assert_eq!((accepted.len(), refused), (10_000, 0));
    // An event the scorer cannot score (no text): the failure goes to the error stream on Redis.
    let bad = reqwest::Client::new()
        .post(format!("http://{root}/"))
        .header("x-event-id", "bad-1")
        .json(&serde_json::json!({"n": -1}))
        .send()
        .await
        .expect("answered");
    assert_eq!(bad.status(), 202);
    // The request's id, key, method and path reach the scorer two streams later as they were sent.
    let put = reqwest::Client::new()
        .put(format!("http://{root}/orders"))
        .header("x-event-id", "meta-1")
        .header("x-event-key", "customer-7")
        .json(&serde_json::json!({"n": 1, "text": "abc"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(put.status(), 202);
    let (lost, _duplicates) = settle(&redis, &accepted, "all up");
    assert!(lost.is_empty(), "lost: {lost:?}");
    let errors: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg("distributed-errors")
        .arg("-")
        .arg("+")
        .query(redis.connection().as_mut())
        .expect("XRANGE");
    assert_eq!(errors.len(), 1, "{errors:?}");
    let record = &errors[0].1;
    assert_eq!((record["function"].as_str(), record["source"].as_str()), ("scorer", "score"));
    let event: serde_json::Value = serde_json::from_str(&record["event"]).expect("JSON event");
    assert_eq!(event, serde_json::json!({"id": "bad-1", "body": {"n": -1, "text": null, "enriched": true}}));
    assert!(record["message"].contains("len()"), "{record:?}");
    // The enricher's own metrics: what it read and acknowledged, and its step's histogram.
    let metrics = reqwest::get(format!("http://{probes}/metrics")).await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("graphc_stream_records_acknowledged_total{group=\"enricher\"} 10002"), "{metrics}");
    assert!(metrics.contains("graphc_step_duration_seconds_count{step=\"enrich\"} 10002"), "{metrics}");
    // Each record carries what the steps of every function made of it.
    let mut connection = redis.connection();
    let first: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
        .arg("scored")
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query(connection.as_mut())
        .expect("XRANGE");
    let body: serde_json::Value = serde_json::from_str(&first[0].1["body"]).expect("JSON body");
    assert_eq!(body["enriched"], true);
    assert_eq!(body["score"], body["text"].as_str().map_or(0, str::len));
    let meta = scored_record(connection.as_mut(), "meta-1");
    assert_eq!(
        meta["seen"],
        serde_json::json!({"id": "meta-1", "key": "customer-7", "method": "PUT", "path": "/orders"}),
        "{meta}"
    );
    shards_used_and_acknowledged(connection.as_mut());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_killed_halfway_loses_nothing() {
    let redis = Redis::start("kill");
    let (_root, address) = Function::start("distributed", &redis, &[]);
    let (mut enricher, _) = Function::start("enricher", &redis, &["--consumer", "enricher-1"]);
    let (_scorer, _) = Function::start("scorer", &redis, &[]);
    let root = address.expect("the root listens");
    let (mut accepted, _) = send(&root, 0, 5_000, None).await;
    // SIGKILL: no shutdown, whatever it had read and not acknowledged stays pending.
    enricher.kill();
    let (more, refused) = send(&root, 5_000, 10_000, None).await;
    accepted.extend(more);
    assert_eq!((accepted.len(), refused), (10_000, 0), "the root takes events while no one consumes them");
    // A new enricher under another name: it reads what is new and takes over what was pending.
    let (_replacement, _) = Function::start("enricher", &redis, &["--consumer", "enricher-2"]);
    let (lost, duplicates) = settle(&redis, &accepted, "enricher killed");
    assert!(lost.is_empty(), "lost: {lost:?}");
    // The replacement runs again what the killed enricher had done but not acknowledged; the
    // scorer knows those event ids already and acknowledges them without running again.
    assert_eq!(duplicates, 0, "no event is processed twice downstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_under_load_refuses_loudly_and_resumes_with_no_duplicates() {
    redis_stopped_under_load("restart", "TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_under_load_loses_nothing_and_repeats_nothing() {
    redis_stopped_under_load("crash", "KILL").await;
}

/// Redis stopped with `signal` while events flow, and started again three seconds later: what
/// was accepted arrives exactly once (each function writes, marks and acknowledges in one
/// transaction, and Redis keeps every write with `appendfsync always`).
async fn redis_stopped_under_load(case: &str, signal: &str) {
    let mut redis = Redis::start(case);
    let (_root, address) = Function::start("distributed", &redis, &[]);
    let (_enricher, _) = Function::start("enricher", &redis, &[]);
    let (mut scorer, probes) = Function::start("scorer", &redis, &["--metrics-port", "0"]);
    let probes = probes.expect("the scorer serves its probes");
    let root = address.expect("the root listens");
    let load = load_reaching(&root, 6_000, 2_000).await;
    redis.stop(signal);
    let down = Instant::now();
    // The scorer's readiness probe says it cannot work while Redis is away.
    let mut readiness = Vec::new();
    while down.elapsed() < Duration::from_millis(2800) {
        let status = reqwest::get(format!("http://{probes}/v2/health/ready")).await.expect("probe").status().as_u16();
        readiness.push(status);
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(down.elapsed())).await;
    redis.restart();
    assert_eq!(readiness.last(), Some(&503), "not ready while Redis is down: {readiness:?}");
    let (mut accepted, refused) = load.await.expect("load");
    eprintln!("while Redis was down: {refused} requests refused with 503");
    assert!(refused > 0, "requests made while Redis was down are refused, not silently accepted");
    // Processing resumes: once the root has reconnected (Redis reloads its file first, which
    // takes longer on a busy machine), what comes after flows through as well, none refused.
    let why = "the root takes events again once Redis is back";
    accepted.extend(resume(&root, 6_000, 7_000, Duration::from_secs(20), why).await);
    let (lost, duplicates) = settle(&redis, &accepted, case);
    assert!(lost.is_empty(), "accepted but lost: {lost:?}");
    assert_eq!(duplicates, 0, "an event arrived twice after Redis was stopped with SIG{signal}");
    let ready = reqwest::get(format!("http://{probes}/v2/health/ready")).await.expect("probe").status();
    assert_eq!(ready, 200, "ready again once Redis is back");
    scorer.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_restarted_under_its_own_name_finishes_its_own_records_first() {
    let redis = Redis::start("own");
    let (_root, address) = Function::start("distributed", &redis, &[]);
    // Records are never taken over here (a minute's idle time, which overrides the flag given
    // before it): only the restarted consumer, reading its own pending records first, can
    // finish what the killed one had read.
    let own = ["--consumer", "enricher-1", "--claim-idle-ms", "60000"];
    let (mut enricher, _) = Function::start("enricher", &redis, &own);
    let (_scorer, _) = Function::start("scorer", &redis, &[]);
    let root = address.expect("the root listens");
    let (mut accepted, _) = send(&root, 0, 2_000, None).await;
    enricher.kill();
    let pending: Vec<redis::Value> = ["incoming:0", "incoming:1"]
        .iter()
        .map(|shard| {
            redis::cmd("XPENDING").arg(shard).arg("enricher").query(redis.connection().as_mut()).expect("XPENDING")
        })
        .collect();
    eprintln!("pending when killed: {pending:?}");
    let (more, _) = send(&root, 2_000, 3_000, None).await;
    accepted.extend(more);
    let (_restarted, _) = Function::start("enricher", &redis, &own);
    let (lost, _) = settle(&redis, &accepted, "restarted under its own name");
    assert!(lost.is_empty(), "lost: {lost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_whose_stream_and_group_are_deleted_makes_them_again_and_goes_on() {
    let redis = Redis::start("nogroup");
    let (_root, address) = Function::start("distributed", &redis, &[]);
    let (_enricher, probes) = Function::start("enricher", &redis, &["--metrics-port", "0"]);
    let (_scorer, _) = Function::start("scorer", &redis, &[]);
    let root = address.expect("the root listens");
    let probes = probes.expect("the enricher serves its probes");
    let _ = send(&root, 0, 500, None).await;
    // Deleting the streams takes their consumer groups with them: the enricher's next read
    // fails with NOGROUP.
    let mut connection = redis.connection();
    let _: () = redis::cmd("DEL").arg("incoming:0").arg("incoming:1").query(connection.as_mut()).expect("DEL");
    // Not ready while the group is missing, then ready again once it is made again.
    let deadline = Instant::now() + Duration::from_secs(15);
    tokio::time::sleep(Duration::from_millis(600)).await;
    loop {
        let ready = reqwest::get(format!("http://{probes}/v2/health/ready")).await.expect("probe").status();
        if ready == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the enricher never became ready again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (more, refused) = send(&root, 500, 1_000, None).await;
    assert_eq!(refused, 0);
    // What was in the deleted streams and not yet read is gone with them; what comes after
    // the deletion all arrives.
    let (lost, _) = settle(&redis, &more, "stream and group deleted");
    assert!(lost.is_empty(), "events sent after the deletion were lost: {lost:?}");
}

/// A Redis Cluster of this test's own: three masters and a replica of each, on free loopback
/// ports, each node with its data in a directory of its own; a master unreachable for a second
/// is failed over to its replica.
struct Cluster {
    nodes: Vec<Redis>,
}

impl Cluster {
    fn start(name: &str) -> Cluster {
        let mut nodes = Vec::new();
        for index in 0..6 {
            // The cluster bus listens 10000 above each node's port: both must be free.
            let port = loop {
                let port =
                    std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
                if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
                    break port;
                }
            };
            let dir = std::env::temp_dir().join(format!("graphc-cluster-{name}-{index}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).expect("node directory");
            let process = Redis::spawn(port, &dir, true);
            nodes.push(Redis { port, dir, cluster: true, process });
        }
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|node| format!("127.0.0.1:{}", node.port)))
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("redis-cli runs");
        assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stdout));
        let cluster = Cluster { nodes };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cluster.nodes.iter().all(|node| cluster.node_info(node.port, "INFO").contains("cluster_state:ok"))
            || !cluster.replicas_online()
        {
            assert!(Instant::now() < deadline, "the cluster did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// `CLUSTER INFO` or `CLUSTER NODES` as a node answers it (empty when it cannot).
    fn node_info(&self, port: u16, what: &str) -> String {
        redis::Client::open(format!("redis://127.0.0.1:{port}"))
            .and_then(|client| client.get_connection())
            .and_then(|mut connection| redis::cmd("CLUSTER").arg(what).query::<String>(&mut connection))
            .unwrap_or_default()
    }

    /// True when every master that answers has a replica in sync with it.
    fn replicas_online(&self) -> bool {
        self.nodes.iter().all(|node| {
            let replication = redis::Client::open(format!("redis://127.0.0.1:{}", node.port))
                .and_then(|client| client.get_connection())
                .and_then(|mut connection| redis::cmd("INFO").arg("replication").query::<String>(&mut connection))
                .unwrap_or_default();
            !replication.contains("role:master") || replication.contains("state=online")
        })
    }

    /// The port of the master that serves `key` now, as the first node that answers sees it.
    fn master_of(&self, key: &str) -> u16 {
        let (mut connection, alive) = self
            .nodes
            .iter()
            .find_map(|node| {
                let client = redis::Client::open(format!("redis://127.0.0.1:{}", node.port)).ok()?;
                Some((client.get_connection().ok()?, node.port))
            })
            .expect("a node answers");
        let slot: u16 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(&mut connection).expect("KEYSLOT");
        let nodes = self.node_info(alive, "NODES");
        // `ID HOST:PORT@BUS FLAGS MASTER PING PONG EPOCH STATE SLOTS...`
        nodes
            .lines()
            .find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let serves = fields.iter().skip(8).any(|range| {
                    let (from, to) = range.split_once('-').unwrap_or((range, range));
                    matches!((from.parse::<u16>(), to.parse::<u16>()), (Ok(from), Ok(to)) if (from..=to).contains(&slot))
                });
                let port = fields.get(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
                (serves && fields.get(2)?.contains("master")).then_some(port)
            })
            .expect("a master serves every slot")
    }

    fn node(&mut self, port: u16) -> &mut Redis {
        self.nodes.iter_mut().find(|node| node.port == port).expect("a node of the cluster")
    }

    /// Waits until the other nodes have failed `port` over: another master serves its slots.
    fn wait_for_failover(&self, port: u16, key: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.master_of(key) == port
            || !self
                .nodes
                .iter()
                .filter(|node| node.port != port)
                .all(|node| self.node_info(node.port, "INFO").contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "no replica took over from {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Store for Cluster {
    fn url(&self) -> String {
        let nodes: Vec<String> = self.nodes.iter().map(|node| format!("127.0.0.1:{}", node.port)).collect();
        format!("redis+cluster://{}", nodes.join(","))
    }

    fn connection(&self) -> Box<dyn redis::ConnectionLike> {
        let nodes: Vec<String> = self.nodes.iter().map(|node| format!("redis://127.0.0.1:{}", node.port)).collect();
        let client = redis::cluster::ClusterClient::new(nodes).expect("cluster client");
        Box::new(client.get_connection().expect("connects to the cluster"))
    }
}

/// The distributed example on a Redis Cluster, every write waiting for a replica
/// (`--wait-replicas 1`): the master that holds the first queue's shards is killed with SIGKILL
/// while 10,000 events flow, its replica takes over, and the old master comes back as the new
/// one's replica. Requests the root could not write meanwhile are refused with 503; every event
/// it accepted arrives, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_master_killed_under_load_loses_nothing_and_repeats_nothing() {
    let mut cluster = Cluster::start("failover");
    let mut flags = vec!["--wait-replicas", "1", "--claim-idle-ms", "3000"];
    let (_root, address) = Function::start("distributed", &cluster, &flags);
    let (_scorer, _) = Function::start("scorer", &cluster, &flags);
    flags.extend(["--metrics-port", "0"]);
    let (_enricher, probes) = Function::start("enricher", &cluster, &flags);
    let root = address.expect("the root listens");
    let probes = probes.expect("the enricher serves its probes");
    assert_eq!(until_ready(&probes, 100).await, 200, "the enricher becomes ready once its groups exist on the cluster");
    let victim = cluster.master_of("incoming:0");
    let load = load_reaching(&root, 10_000, 3_000).await;
    cluster.node(victim).stop("KILL");
    let killed = Instant::now();
    tokio::task::block_in_place(|| cluster.wait_for_failover(victim, "incoming:0"));
    eprintln!("failover: {} ms", killed.elapsed().as_millis());
    cluster.node(victim).restart();
    let (mut accepted, refused) = load.await.expect("load");
    eprintln!("during the failover: {refused} requests refused with 503");
    // Once the old master has caught up as a replica, writes are confirmed again: none refused.
    let why = "the root takes events again after the failover";
    accepted.extend(resume(&root, 10_000, 10_500, Duration::from_secs(30), why).await);
    // 64 callers at once on the recovered cluster, with texts of every size and some bodies
    // that are not JSON, while the root's readiness probe is asked over and over.
    let (probed, texts) = tokio::join!(probe_ready(&root, 20), mixed_callers(&root, 64));
    assert!(probed.iter().all(|status| *status == 200), "the root stays ready under load: {probed:?}");
    accepted.extend(texts.keys().cloned());
    let (lost, duplicates) = tokio::task::block_in_place(|| settle(&cluster, &accepted, "cluster failover"));
    assert!(lost.is_empty(), "accepted but lost: {lost:?}");
    assert_eq!(duplicates, 0, "an event arrived twice after a master failed over");
    let mut connection = cluster.connection();
    // Each caller's event arrived with its own text, scored by its length.
    let scored: Vec<(String, HashMap<String, String>)> =
        redis::cmd("XRANGE").arg("scored").arg("-").arg("+").query(connection.as_mut()).expect("XRANGE");
    let mut checked = 0;
    for (_, fields) in &scored {
        if let Some(length) = fields.get("id").and_then(|id| texts.get(id)) {
            let body: serde_json::Value = serde_json::from_str(&fields["body"]).expect("JSON body");
            assert_eq!(body["score"], *length, "{}", fields["id"]);
            assert_eq!(body["text"].as_str().map(str::len), Some(*length), "{}", fields["id"]);
            checked += 1;
        }
    }
    assert_eq!(checked, texts.len());
    // On the cluster's slots too.
    shards_used_and_acknowledged(connection.as_mut());
    assert!(cluster.node_info(victim, "NODES").contains("myself,slave"), "the old master rejoined as a replica");
}
