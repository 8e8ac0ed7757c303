//! The Redis a stream queue lives on: one server (`redis://`, `rediss://`) or a Redis Cluster
//! (`redis+cluster://HOST:PORT,HOST:PORT`, `rediss+cluster://`), behind one connection type, and
//! what the rest of the stream code must know about a cluster: which keys share a slot, and
//! whether writes wait for replicas.
//!
//! On a cluster every command goes to the master of its key's slot, and the client follows
//! MOVED and ASK redirects, and a failover's new masters, by itself, for single commands only: a
//! pipeline's redirects come back as its replies' errors. So on a cluster graphc sends single
//! commands, and what must be atomic is a script (see `consumer`).

use crate::error::RunError;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// A connection to one Redis server or to a cluster; either runs any command.
#[derive(Clone)]
pub enum Connection {
    /// One server, reconnected after it went away.
    Single(ConnectionManager),
    /// A Redis Cluster: a connection per master, commands routed by their keys' slots.
    Cluster(Cluster),
}

/// A cluster connection that is made anew when a command on it times out. After a master was
/// killed under load, redis-rs's cluster connection could stay wedged: every later command, on
/// any slot, timed out, and a consumer on it never worked again. A fresh connection learns the
/// cluster from its nodes again; the commands in flight on the old one fail as they would.
#[derive(Clone)]
pub struct Cluster(std::sync::Arc<ClusterLink>);

/// What a cluster connection is made from, and the one in use.
struct ClusterLink {
    client: redis::cluster::ClusterClient,
    config: ClusterConfig,
    /// How long one attempt of a command waits for its answer.
    attempt_timeout: Duration,
    current: Mutex<Generation>,
}

/// The connection a cluster's commands go over now, and how many were made before it.
struct Generation {
    number: u64,
    connection: ClusterConnection,
}

impl Cluster {
    /// The connection to use, and its generation (to replace that one only).
    fn current(&self) -> (u64, ClusterConnection) {
        let current = self.0.current.lock().unwrap_or_else(|e| e.into_inner());
        (current.number, current.connection.clone())
    }

    /// Replaces generation `number` after `error` if it is a timeout.
    fn after(&self, number: u64, error: &redis::RedisError) {
        if error.is_timeout() {
            self.replace(number);
        }
    }

    /// Replaces generation `number`, unless another command already did.
    fn replace(&self, number: u64) {
        let link = &self.0;
        let mut current = link.current.lock().unwrap_or_else(|e| e.into_inner());
        if current.number == number {
            tracing::warn!("a command on the Redis Cluster timed out: connecting to the cluster anew");
            current.number += 1;
            current.connection = link.client.get_pending_async_connection_with_config(link.config.clone());
        }
    }

    /// Runs `command` on the current connection, replacing it when the command timed out, or
    /// was given up by its caller after waiting longer than an attempt may (a root write's
    /// budget cuts a command short before the client's own deadline would).
    async fn run<T>(
        &self,
        command: impl AsyncFnOnce(&mut ClusterConnection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let (number, mut connection) = self.current();
        let mut given_up = GivenUp { cluster: self, number, started: tokio::time::Instant::now(), answered: false };
        let result = command(&mut connection).await;
        given_up.answered = true;
        if let Err(error) = &result {
            self.after(number, error);
        }
        result
    }
}

/// A command in flight on a cluster connection: dropped unanswered after longer than one
/// attempt's timeout, it counts as timed out.
struct GivenUp<'a> {
    cluster: &'a Cluster,
    number: u64,
    started: tokio::time::Instant,
    answered: bool,
}

impl Drop for GivenUp<'_> {
    fn drop(&mut self) {
        if !self.answered && self.started.elapsed() > self.cluster.0.attempt_timeout {
            self.cluster.replace(self.number);
        }
    }
}

impl Connection {
    /// True on a cluster, where the keys of one transaction must share a slot.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Connection::Cluster(_))
    }
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Connection::Single(connection) => connection.req_packed_command(cmd),
            Connection::Cluster(cluster) => {
                Box::pin(cluster.run(async move |connection| connection.req_packed_command(cmd).await))
            }
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Connection::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Connection::Cluster(cluster) => Box::pin(
                cluster.run(async move |connection| connection.req_packed_commands(pipeline, offset, count).await),
            ),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(connection) => connection.get_db(),
            Connection::Cluster(cluster) => cluster.current().1.get_db(),
        }
    }
}

/// A connection to `url`, shared by everything in the process that talks to it. It connects
/// on first use and reconnects after a server went away.
pub fn connection(url: &str) -> Result<Connection, RunError> {
    static CONNECTIONS: OnceLock<Mutex<BTreeMap<String, Connection>>> = OnceLock::new();
    // A poisoned table still holds good connections: a panic cannot leave one half made.
    let mut connections = CONNECTIONS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(connection) = connections.get(url) {
        return Ok(connection.clone());
    }
    let connection = open(url, Duration::from_secs(5))?;
    connections.insert(url.to_string(), connection.clone());
    Ok(connection)
}

/// A connection of its own, for blocking reads: a blocked XREADGROUP would hold up every
/// other command on a shared connection. `timeout` must be longer than the blocking time.
pub(crate) fn open(url: &str, timeout: Duration) -> Result<Connection, RunError> {
    if let Some(cluster) = ClusterUrl::parse(url) {
        return open_cluster(url, cluster?, timeout);
    }
    let client = client(url)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(timeout))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(500));
    ConnectionManager::new_lazy_with_config(client, config)
        .map(Connection::Single)
        .map_err(|error| RunError::redis(url, error))
}

/// A client for `url`; over TLS for `rediss://`, trusting the upstream roots (the platform's and
/// `--upstream-ca`'s), as `$remote` does.
fn client(url: &str) -> Result<redis::Client, RunError> {
    if !url.starts_with("rediss://") {
        return redis::Client::open(url).map_err(|error| RunError::redis(url, error));
    }
    install_tls_provider();
    redis::Client::build_with_tls(url, upstream_roots()).map_err(|error| RunError::redis(url, error))
}

/// The Redis client builds its TLS configuration with rustls's process-wide provider: make it
/// ring, graphc's one provider, unless the program chose one already.
fn install_tls_provider() {
    let _ = crate::tls::ring_provider().install_default();
}

fn upstream_roots() -> redis::TlsCertificates {
    redis::TlsCertificates { client_tls: None, root_cert: Some(crate::upstream::roots_pem()) }
}

/// A cluster's connection: the nodes are where it starts; the client learns the rest of the
/// cluster from them, follows redirects, and retries a command a few times, briefly, while a
/// failover promotes a replica (the stream code retries further on its own terms).
///
/// Each command has a deadline for all of that together, [`RETRIES_BUDGET`] past its own
/// `timeout`: the client's per-attempt timeout covers only an answer awaited on a live
/// connection, and a command caught in its reconnection to a failed master could otherwise wait
/// for ever (a consumer did, silently, after a master was killed under load). The overall
/// deadline is the builder's: a `ClusterConfig` sets only the per-attempt one.
fn open_cluster(url: &str, cluster: ClusterUrl, timeout: Duration) -> Result<Connection, RunError> {
    let connection_timeout = Duration::from_secs(2);
    let mut builder = ClusterClientBuilder::new(cluster.nodes)
        .retries(6)
        .min_retry_wait(50)
        .max_retry_wait(1_000)
        .connection_timeout(connection_timeout)
        .response_timeout(timeout)
        .overall_response_timeout(Some(timeout + RETRIES_BUDGET));
    if cluster.tls {
        install_tls_provider();
        builder = builder.certs(upstream_roots());
    }
    let client = builder.build().map_err(|error| RunError::redis(url, error))?;
    let config = ClusterConfig::new().set_connection_timeout(connection_timeout).set_response_timeout(timeout);
    let connection = client.get_pending_async_connection_with_config(config.clone());
    let current = Mutex::new(Generation { number: 0, connection });
    let link = ClusterLink { client, config, attempt_timeout: timeout, current };
    Ok(Connection::Cluster(Cluster(std::sync::Arc::new(link))))
}

/// How much longer than one attempt a command on a cluster may take, retries and redirects
/// included: a failover's few seconds, then the command fails and the caller's own retry
/// (a consumer's next round, a root write's budget) takes over.
const RETRIES_BUDGET: Duration = Duration::from_secs(10);

/// A cluster URL taken apart: `redis+cluster://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]`, a
/// stream after a `/` ignored. Each node becomes a plain server URL with the same credentials.
#[derive(Debug, PartialEq, Eq)]
struct ClusterUrl {
    nodes: Vec<String>,
    tls: bool,
}

impl ClusterUrl {
    /// `None` for a URL that is not a cluster's; an error for a cluster URL that names no node.
    fn parse(url: &str) -> Option<Result<ClusterUrl, RunError>> {
        let (scheme, tls, rest) = if let Some(rest) = url.strip_prefix("redis+cluster://") {
            ("redis", false, rest)
        } else {
            ("rediss", true, url.strip_prefix("rediss+cluster://")?)
        };
        let authority = rest.split('/').next().unwrap_or_default();
        let (credentials, hosts) = match authority.rsplit_once('@') {
            Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
            None => (String::new(), authority),
        };
        let nodes: Vec<String> = hosts
            .split(',')
            .map(str::trim)
            .filter(|host| !host.is_empty())
            .map(|host| format!("{scheme}://{credentials}{host}"))
            .collect();
        if nodes.is_empty() {
            return Some(Err(RunError::redis(
                url,
                "a cluster URL names its nodes: redis+cluster://HOST:PORT,HOST:PORT",
            )));
        }
        Some(Ok(ClusterUrl { nodes, tls }))
    }
}

/// The part of `key` Redis Cluster hashes to pick its slot: the text between the first `{` and
/// the next `}` when there is some, else the whole key.
pub(crate) fn hash_tag(key: &str) -> &str {
    if let Some(open) = key.find('{')
        && let Some(length) = key.get(open + 1..).and_then(|after| after.find('}'))
        && length > 0
    {
        return key.get(open + 1..open + 1 + length).unwrap_or(key);
    }
    key
}

/// A key of graphc's own (`graphc:KIND:{TAG}:REST`) in the same slot as `stream`, so that one
/// script (or transaction) can touch both on a cluster.
pub(crate) fn key_beside(kind: &str, stream: &str, rest: &str) -> String {
    format!("graphc:{kind}:{{{}}}:{rest}", hash_tag(stream))
}

static WAIT_REPLICAS: AtomicU32 = AtomicU32::new(0);

/// How long a write waits for its replicas before it counts as failed.
pub(crate) const WAIT_TIMEOUT: Duration = Duration::from_secs(1);

/// Makes every write this process makes to Redis wait until `replicas` replicas have it
/// (`--wait-replicas N`): a write that fewer replicas confirm within [`WAIT_TIMEOUT`] counts as
/// failed (the caller gets 503; a consumer leaves its records pending and tries again). Zero,
/// the default, waits for none: a master that fails before its replicas copied a write loses it.
pub fn wait_for_replicas(replicas: u32) {
    WAIT_REPLICAS.store(replicas, Ordering::Relaxed);
}

/// The replicas a write waits for; zero for none.
pub(crate) fn replicas_to_wait_for() -> u32 {
    WAIT_REPLICAS.load(Ordering::Relaxed)
}

impl Connection {
    /// When the process asks for it, waits until enough replicas have this connection's writes
    /// so far, those to `key`'s master on a cluster: WAIT, on the connection (to that node) the
    /// writes went over, as WAIT requires. Too few in time is an error.
    pub(crate) async fn wait_for_replicas(&self, key: &str) -> redis::RedisResult<()> {
        let replicas = replicas_to_wait_for();
        if replicas == 0 {
            return Ok(());
        }
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(WAIT_TIMEOUT.as_millis() as u64);
        let confirmed: i64 = match self {
            Connection::Single(connection) => wait.query_async(&mut connection.clone()).await?,
            Connection::Cluster(cluster) => {
                // The client would ask every master and answer the least; only this key's counts.
                let route = Route::with_key(key, SlotAddr::Master);
                let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route));
                redis::from_redis_value(
                    cluster.run(async |connection| connection.route_command(wait, routing).await).await?,
                )?
            }
        };
        if confirmed < i64::from(replicas) {
            return Err(redis::RedisError::from((
                redis::ErrorKind::Io,
                "too few replicas confirmed the write",
                format!("{confirmed} of {replicas} within {} ms (--wait-replicas)", WAIT_TIMEOUT.as_millis()),
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A command that timed out replaces the connection it ran on, once however many commands
    /// on it time out; another failure (a refusal, a redirect) leaves it.
    #[tokio::test]
    async fn a_timed_out_command_makes_the_cluster_connection_anew_once() {
        // Nothing listens there: the pending connection is never used.
        let Ok(Connection::Cluster(cluster)) = open("redis+cluster://127.0.0.1:1", Duration::from_secs(1)) else {
            panic!("a cluster connection");
        };
        let timed_out = redis::RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        let refused = redis::RedisError::from((redis::ErrorKind::Server(redis::ServerErrorKind::ClusterDown), "down"));
        assert_eq!(cluster.current().0, 0);
        cluster.after(0, &refused);
        assert_eq!(cluster.current().0, 0, "only a timeout replaces the connection");
        cluster.after(0, &timed_out);
        assert_eq!(cluster.current().0, 1);
        // Commands that were in flight on the old one time out too: the new one stays.
        cluster.after(0, &timed_out);
        assert_eq!(cluster.current().0, 1);
    }

    /// A command its caller gives up on replaces the connection only when it waited longer
    /// than an attempt may: a consumer's shutdown cutting a blocked read short leaves it.
    #[tokio::test(start_paused = true)]
    async fn a_command_given_up_after_an_attempts_timeout_makes_the_connection_anew() {
        let Ok(Connection::Cluster(cluster)) = open("redis+cluster://127.0.0.1:1", Duration::from_millis(50)) else {
            panic!("a cluster connection");
        };
        let never = async |_: &mut ClusterConnection| std::future::pending::<redis::RedisResult<()>>().await;
        let cut_short = tokio::time::timeout(Duration::from_millis(10), cluster.run(never)).await;
        assert!(cut_short.is_err());
        assert_eq!(cluster.current().0, 0, "given up within an attempt's timeout");
        let given_up = tokio::time::timeout(Duration::from_millis(100), cluster.run(never)).await;
        assert!(given_up.is_err());
        assert_eq!(cluster.current().0, 1, "given up after longer than an attempt may take");
    }

    #[test]
    fn a_cluster_url_names_its_nodes_with_their_credentials() {
        let parsed = ClusterUrl::parse("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7001/orders");
        assert_eq!(
            parsed.map(|parsed| parsed.map_err(|error| error.to_string())),
            Some(Ok(ClusterUrl {
                nodes: vec!["redis://:pw@10.0.0.1:7000".to_string(), "redis://:pw@10.0.0.2:7001".to_string()],
                tls: false
            }))
        );
        let tls = ClusterUrl::parse("rediss+cluster://a:1").and_then(Result::ok);
        assert_eq!(tls, Some(ClusterUrl { nodes: vec!["rediss://a:1".to_string()], tls: true }));
        assert!(ClusterUrl::parse("redis://127.0.0.1:6379").is_none());
        assert!(matches!(ClusterUrl::parse("redis+cluster:///orders"), Some(Err(_))));
    }

    #[test]
    fn graphc_keys_share_their_streams_slot() {
        assert_eq!(hash_tag("orders:1"), "orders:1");
        assert_eq!(hash_tag("{user7}:events"), "user7");
        assert_eq!(hash_tag("a{}b"), "a{}b");
        assert_eq!(key_beside("seen", "orders:1", "enricher:e1"), "graphc:seen:{orders:1}:enricher:e1");
        assert_eq!(hash_tag(&key_beside("seen", "{user7}:events", "g:e1")), "user7");
    }
}
