//! A redis-server of a test's own on a free loopback port: plaintext, or TLS only with a
//! certificate the test made. The README's test command installs redis-server.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running redis-server, killed when dropped.
pub struct RedisServer {
    /// Its port on 127.0.0.1.
    pub port: u16,
    tls: bool,
    cluster: bool,
    process: Child,
}

impl RedisServer {
    /// A plaintext server.
    #[allow(dead_code, reason = "the trigger tests use it; the TLS tests start a TLS server")]
    pub fn start() -> RedisServer {
        let port = free_port();
        RedisServer::spawn(port, false, &["--port", &port.to_string()])
    }

    /// A server that takes only TLS, with `server.pem`, `server.key` and `ca.pem` from `pki`.
    #[allow(dead_code, reason = "the TLS tests use it; the trigger tests speak plaintext")]
    pub fn start_tls(pki: &Path) -> RedisServer {
        let port = free_port();
        let file = |name: &str| pki.join(name).display().to_string();
        let (cert, key, ca) = (file("server.pem"), file("server.key"), file("ca.pem"));
        let args = ["--port", "0", "--tls-port", &port.to_string(), "--tls-cert-file", &cert, "--tls-key-file", &key];
        let mut all = args.to_vec();
        all.extend(["--tls-ca-cert-file", &ca, "--tls-auth-clients", "no"]);
        RedisServer::spawn(port, true, &all)
    }

    /// A Redis Cluster of one node that serves every slot: what a cluster client sees, on one
    /// process. Its cluster state lives in a directory of its own.
    #[allow(dead_code, reason = "the cluster tests use it")]
    pub fn start_cluster_of_one() -> RedisServer {
        RedisServer::cluster_of_one(None)
    }

    /// The same, speaking only TLS (its cluster bus too), with the certificates of `pki`.
    #[allow(dead_code, reason = "the TLS tests use it")]
    pub fn start_tls_cluster_of_one(pki: &Path) -> RedisServer {
        RedisServer::cluster_of_one(Some(pki))
    }

    fn cluster_of_one(pki: Option<&Path>) -> RedisServer {
        // The cluster bus listens 10000 above the port: both must be free.
        let port = loop {
            let port = free_port();
            if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
                break port;
            }
        };
        let dir = std::env::temp_dir().join(format!("graphc-redis-cluster-{port}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a directory for the node");
        let dir = dir.display().to_string();
        let port_text = port.to_string();
        let file = |name: &str| pki.map(|pki| pki.join(name).display().to_string()).unwrap_or_default();
        let (cert, key, ca) = (file("server.pem"), file("server.key"), file("ca.pem"));
        let mut args = vec!["--cluster-enabled", "yes", "--dir", &dir];
        let mut cli_tls: Vec<&str> = Vec::new();
        match pki {
            None => args.extend(["--port", &port_text]),
            Some(_) => {
                args.extend(["--port", "0", "--tls-port", &port_text, "--tls-cluster", "yes"]);
                args.extend(["--tls-cert-file", &cert, "--tls-key-file", &key, "--tls-ca-cert-file", &ca]);
                args.extend(["--tls-auth-clients", "no"]);
                // Only the setup talks to it this way; the client under test verifies its certificate.
                cli_tls.extend(["--tls", "--insecure"]);
            }
        }
        let mut server = RedisServer::spawn(port, pki.is_some(), &args);
        let cli = |args: &[&str]| {
            Command::new("redis-cli")
                .args(["-p", &port_text])
                .args(&cli_tls)
                .args(args)
                .output()
                .expect("redis-cli runs")
        };
        cli(&["CLUSTER", "ADDSLOTSRANGE", "0", "16383"]);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !String::from_utf8_lossy(&cli(&["CLUSTER", "INFO"]).stdout).contains("cluster_state:ok") {
            assert!(Instant::now() < deadline, "the cluster of one did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        server.cluster = true;
        server
    }

    fn spawn(port: u16, tls: bool, args: &[&str]) -> RedisServer {
        let process = Command::new("redis-server")
            .args(args)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server is installed (the README's test command installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start on port {port}");
            std::thread::sleep(Duration::from_millis(20));
        }
        RedisServer { port, tls, cluster: false, process }
    }

    /// `redis://` or `rediss://`, as it speaks; `redis+cluster://` or `rediss+cluster://` for a
    /// cluster.
    pub fn url(&self) -> String {
        let scheme = match (self.tls, self.cluster) {
            (true, true) => "rediss+cluster",
            (true, false) => "rediss",
            (false, true) => "redis+cluster",
            (false, false) => "redis",
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or(0)
}

/// The stream trigger the Redis tests run: `orders`, whose group `scoring` reads `incoming` (in
/// `shards` streams) at `url` and writes each answer to `scores`, handled by `handler` until the
/// sender is used. Blocking reads are short, so that a test's records are read promptly.
#[allow(dead_code, reason = "each test file that includes this module uses what it needs")]
pub fn consume_orders<H: graphc_runtime::Handler>(
    url: &str,
    shards: u32,
    handler: graphc_runtime::trigger::SharedHandler<H>,
) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<Result<(), graphc_runtime::RunError>>) {
    use graphc_runtime::stream::{ConsumeOptions, Sink, StreamQueue, StreamSource, StreamWriter};
    use graphc_runtime::trigger::{StreamTrigger, Trigger};
    let answers = StreamWriter::new(StreamQueue::new("orders", url, "scores", 1), Sink::Redis);
    let triggers = vec![Trigger::Stream(StreamTrigger {
        name: "orders".to_string(),
        source: StreamSource { queue: StreamQueue::new("orders", url, "incoming", shards), group: "scoring".into() },
        answers: Some(answers),
    })];
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let consume = ConsumeOptions { block: Duration::from_millis(100), ..ConsumeOptions::default() };
    let running = tokio::spawn(graphc_runtime::trigger::run(handler, triggers, consume, async move {
        let _ = stopped.await;
    }));
    (stop, running)
}
