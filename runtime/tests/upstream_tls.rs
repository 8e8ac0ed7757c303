//! TLS to upstreams, with certificates made here: `$remote` over `https://` to a server whose
//! certificate a private CA signed (trusted the way `--upstream-ca` trusts it), many callers at
//! once with their own headers forwarded; an upstream no trusted CA signed refused with 502; and a
//! stream trigger reading from and answering to a redis-server that speaks only TLS (`rediss://`),
//! and to a Redis Cluster that does (`rediss+cluster://`).
//! The trusted CAs are the process's, so every test of this file shares one private CA.

mod common;
#[path = "common/redis_server.rs"]
mod redis_server;

use common::pki::Pki;
use graphc_runtime::http::ServeOptions;
use graphc_runtime::remote::{Remote, RemoteNode, Target};
use graphc_runtime::tls::ServerTls;
use graphc_runtime::trigger::SharedHandler;
use graphc_runtime::*;
use redis_server::{RedisServer, consume_orders};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// The CA the process trusts, and the PEM files of a server certificate it signed.
fn trusted() -> &'static Pki {
    static TRUSTED: OnceLock<Pki> = OnceLock::new();
    TRUSTED.get_or_init(|| {
        let pki = Pki::new("upstream-trusted");
        graphc_runtime::upstream::trust(&pki.dir.join("ca.pem")).unwrap();
        pki
    })
}

/// Answers with what it was sent: the body, the id, and the headers a forward may carry.
struct Echo;

impl Handler for Echo {
    async fn handle(&self, event: Event) -> Response {
        let header = |name: &str| event.header(name).unwrap_or("").to_string();
        let answer = json!({
            "got": event.body,
            "id": header("x-event-id"),
            "authorization": header("authorization"),
            "tenant": header("x-tenant"),
            "other": header("x-other"),
        });
        Response::json(200, &answer)
    }

    async fn drain(&self) {}
}

async fn https_upstream(pki: &Pki) -> common::Running {
    let tls = ServerTls::load(pki.files(false)).unwrap();
    common::start(Echo, ServeOptions { tls: Some(Arc::new(tls)), ..ServeOptions::default() }).await
}

fn calling(url: String) -> Arc<AsyncPipeline<RemoteNode<End>>> {
    let remote = Remote::new(Target::Url(url), "POST").forward("authorization").forward("X-Tenant");
    let node = RemoteNode {
        name: "call",
        remote,
        input_path: None,
        result_path: None,
        next: End,
        respond: true,
        catcher: NoCatcher,
    };
    let mut context = Context::new("upstream");
    context.expose_errors = true;
    AsyncPipeline::new(node, context, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_callers_reach_an_https_upstream_a_private_ca_signed_each_with_its_own_answer_and_headers() {
    let upstream = https_upstream(trusted()).await;
    // By address and by name: the certificate names both, and each is checked.
    for host in ["127.0.0.1", "localhost"] {
        let handler = calling(format!("https://{host}:{}/echo", upstream.addr.port()));
        let calls = (0..64).map(|n| {
            let handler = Arc::clone(&handler);
            tokio::spawn(async move {
                let event = Event::new(json!({ "n": n }))
                    .with_id(format!("event-{n}"))
                    .with_header("authorization", &format!("Bearer caller-{n}"))
                    .with_header("x-tenant", &format!("tenant-{}", n % 3))
                    .with_header("x-other", "not named, not sent");
                let response = handler.handle(event).await;
                (n, response.status, response.json_body())
            })
        });
        for call in calls.collect::<Vec<_>>() {
            let (n, status, body) = call.await.unwrap();
            assert_eq!(status, 200, "{host}, call {n}: {body}");
            assert_eq!(
                body,
                json!({
                    "got": { "n": n },
                    "id": format!("event-{n}"),
                    "authorization": format!("Bearer caller-{n}"),
                    "tenant": format!("tenant-{}", n % 3),
                    "other": "",
                }),
                "{host}, call {n}"
            );
        }
    }
    upstream.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_no_trusted_ca_signed_is_refused_with_502_saying_why() {
    trusted();
    let stranger = Pki::new("upstream-stranger");
    let upstream = https_upstream(&stranger).await;
    let handler = calling(format!("https://127.0.0.1:{}/echo", upstream.addr.port()));
    for n in 0..8 {
        let response = handler.handle(Event::new(json!({ "n": n }))).await;
        let body = response.json_body();
        assert_eq!(response.status, 502, "{body}");
        let why = body["error"].as_str().unwrap_or_default().to_string();
        assert!(why.contains("invalid peer certificate"), "the certificate's fault is named: {why}");
    }
    // The same server over plain http:// is a protocol mismatch, not an answer.
    let plain = calling(format!("http://127.0.0.1:{}/echo", upstream.addr.port()));
    let response = plain.handle(Event::new(json!({ "n": 0 }))).await;
    assert_eq!(response.status, 502, "{}", response.json_body());
    upstream.stop().await;
}

/// Remembers the orders it saw.
#[derive(Default)]
struct Orders {
    seen: Mutex<Vec<u64>>,
    calls: AtomicUsize,
}

struct Counting(Arc<Orders>);

impl Handler for Counting {
    async fn handle(&self, event: Event) -> Response {
        self.0.calls.fetch_add(1, Ordering::SeqCst);
        let order = event.body["order"].as_str().and_then(|n| n.parse().ok()).unwrap_or(u64::MAX);
        self.0.seen.lock().unwrap().push(order);
        Response::json(200, &json!({ "order": order, "score": order * 2 }))
    }

    async fn drain(&self) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_trigger_reads_and_answers_over_rediss_losing_nothing() {
    let pki = trusted();
    let redis = RedisServer::start_tls(&pki.dir);
    // A plain redis:// client is refused by a TLS-only server: the scheme is what asks for TLS.
    let plain = graphc_runtime::stream::connection(&format!("redis://127.0.0.1:{}", redis.port)).unwrap();
    let refused: Result<(), _> = redis::cmd("PING").query_async(&mut plain.clone()).await;
    assert!(refused.is_err(), "plaintext reached a TLS-only Redis");
    trigger_over_tls(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_trigger_reads_and_answers_over_a_tls_redis_cluster_losing_nothing() {
    let redis = RedisServer::start_tls_cluster_of_one(&trusted().dir);
    assert!(redis.url().starts_with("rediss+cluster://"));
    trigger_over_tls(&redis).await;
}

/// A thousand records read, answered and acknowledged by a stream trigger on `redis`, over TLS.
async fn trigger_over_tls(redis: &RedisServer) {
    let mut connection = graphc_runtime::stream::connection(&redis.url()).unwrap();
    const RECORDS: usize = 1_000;
    let mut pipe = redis::pipe();
    for n in 0..RECORDS {
        pipe.cmd("XADD").arg("incoming").arg("*").arg("order").arg(n);
    }
    pipe.query_async::<()>(&mut connection).await.unwrap();

    let orders = Arc::new(Orders::default());
    let (stop, running) = consume_orders(&redis.url(), 1, SharedHandler::new(Counting(Arc::clone(&orders))));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answered: usize = redis::cmd("XLEN").arg("scores").query_async(&mut connection).await.unwrap();
        if answered == RECORDS {
            break;
        }
        assert!(Instant::now() < deadline, "{answered} of {RECORDS} answers written");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    let mut seen = orders.seen.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..RECORDS as u64).collect::<Vec<_>>(), "each order once, none lost");
    assert_eq!(orders.calls.load(Ordering::SeqCst), RECORDS);
    let pending: Value =
        redis_value(redis::cmd("XPENDING").arg("incoming").arg("scoring").query_async(&mut connection).await.unwrap());
    assert_eq!(pending[0], json!(0), "every record acknowledged: {pending}");
}

/// A Redis reply as JSON, for assertions that print well.
fn redis_value(value: redis::Value) -> Value {
    match value {
        redis::Value::Int(n) => json!(n),
        redis::Value::Array(items) => Value::Array(items.into_iter().map(redis_value).collect()),
        redis::Value::BulkString(bytes) => json!(String::from_utf8_lossy(&bytes)),
        redis::Value::SimpleString(text) => json!(text),
        _ => Value::Null,
    }
}
