//! Stream queues on a Redis Cluster (one node serving every slot, which a cluster client sees
//! as any cluster): a consumer reads each shard, and a record run again after its writes were
//! made (as after a crash between its writes and its acknowledgement) writes nothing twice;
//! with `--wait-replicas`, a write no replica confirms fails with 503 instead of counting.

#[path = "common/redis_server.rs"]
mod redis_server;

use graphc_runtime::stream::{Sink, StreamQueue, StreamWriter, wait_for_replicas};
use graphc_runtime::trigger::SharedHandler;
use graphc_runtime::{Event, Handler, Response};
use redis_server::{RedisServer, consume_orders};
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Answers each event with its body, and remembers the orders it ran.
#[derive(Default)]
struct Echo {
    orders: Mutex<Vec<String>>,
}

impl Handler for Echo {
    async fn handle(&self, event: Event) -> Response {
        self.orders.lock().unwrap().push(event.body["order"].as_str().unwrap_or_default().to_string());
        Response::json(200, &json!({ "order": event.body["order"] }))
    }

    async fn drain(&self) {}
}

#[derive(Clone)]
struct Shared(Arc<Echo>);

impl Handler for Shared {
    async fn handle(&self, event: Event) -> Response {
        self.0.handle(event).await
    }

    async fn drain(&self) {}
}

fn cluster_connection(redis: &RedisServer) -> redis::cluster::ClusterConnection {
    redis::cluster::ClusterClient::new(vec![format!("redis://127.0.0.1:{}", redis.port)])
        .and_then(|client| client.get_connection())
        .expect("connects to the cluster")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_record_run_again_writes_nothing_twice_and_unconfirmed_writes_fail() {
    let redis = RedisServer::start_cluster_of_one();
    let mut connection = cluster_connection(&redis);
    // Two shards; the record on shard 0 comes back as after a crash: an earlier run made its
    // writes (the mark says so) and died before its acknowledgement.
    for (stream, entry, order) in [("incoming:0", "1-1", "a"), ("incoming:1", "1-1", "b"), ("incoming:1", "1-2", "c")] {
        let _: String =
            redis::cmd("XADD").arg(stream).arg(entry).arg("order").arg(order).query(&mut connection).unwrap();
    }
    let _: () =
        redis::cmd("SET").arg("graphc:wrote:{scores}:scoring:incoming:0:1-1").arg(1).query(&mut connection).unwrap();
    let echo = Arc::new(Echo::default());
    let (stop, running) = consume_orders(&redis.url(), 2, SharedHandler::new(Shared(Arc::clone(&echo))));
    let pending = |connection: &mut redis::cluster::ClusterConnection, stream: &str| -> i64 {
        match redis::cmd("XPENDING").arg(stream).arg("scoring").query::<redis::Value>(connection) {
            Ok(redis::Value::Array(summary)) => match summary.first() {
                Some(redis::Value::Int(count)) => *count,
                _ => -1,
            },
            _ => -1,
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while echo.orders.lock().unwrap().len() < 3
        || pending(&mut connection, "incoming:0") != 0
        || pending(&mut connection, "incoming:1") != 0
    {
        assert!(Instant::now() < deadline, "the records were not all run and acknowledged");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    running.await.unwrap().unwrap();
    let mut ran = echo.orders.lock().unwrap().clone();
    ran.sort();
    assert_eq!(ran, ["a", "b", "c"], "every record ran, once");
    let answered: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg("scores").arg("-").arg("+").query(&mut connection).unwrap();
    let orders: Vec<String> = answered
        .iter()
        .filter_map(|(_, fields)| fields.iter().find(|(name, _)| name == "body").map(|(_, body)| body.clone()))
        .collect();
    assert_eq!(orders.len(), 2, "the answer `a`'s earlier run wrote is not written again: {orders:?}");
    assert!(orders.iter().all(|body| !body.contains("\"a\"")), "{orders:?}");
    // Each record that wrote left its mark beside the stream it wrote to.
    for entry in ["incoming:1:1-1", "incoming:1:1-2"] {
        let marked: bool = redis::cmd("EXISTS")
            .arg(format!("graphc:wrote:{{scores}}:scoring:{entry}"))
            .query(&mut connection)
            .unwrap();
        assert!(marked, "{entry}");
    }

    // A write that must reach a replica, on a node that has none: refused, not counted.
    let writer = StreamWriter::new(StreamQueue::new("jobs", &redis.url(), "jobs", 1), Sink::Redis);
    let event = Event::new(json!({"n": 1}));
    wait_for_replicas(1);
    let refused = writer.write(&event).await;
    wait_for_replicas(0);
    let failure = refused.expect_err("no replica confirms the write");
    assert_eq!(failure.status(), 503);
    assert!(failure.message.contains("0 of 1") && failure.message.contains("--wait-replicas"), "{}", failure.message);
    // The entry is on the master: written once however often the confirmation was retried.
    let length: usize = redis::cmd("XLEN").arg("jobs").query(&mut connection).unwrap();
    assert_eq!(length, 1);
    assert!(writer.write(&event).await.is_ok(), "without --wait-replicas the write counts");
}
