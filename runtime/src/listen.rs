//! The connection loop every port shares (REST, gRPC, a child function's probes): one cap on
//! open connections for the whole process, so that a flood on one port cannot use up the file
//! descriptors another needs; idle connections closed; and a shutdown that asks each connection
//! to finish what it accepted and waits for them no longer than it is told, whatever a peer
//! sends (or does not send).

use crate::tls::{ServerTls, Stream};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulConnection;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc, watch};

/// The process's open connections, over every port: at most `max` at once; beyond, a new
/// connection is closed at once and counted, and the open ones keep being served.
#[derive(Debug)]
pub struct Connections {
    open: Arc<Semaphore>,
    max: usize,
    refused: AtomicU64,
}

impl Connections {
    /// A cap of `max` open connections (at least 1), shared by every port given it.
    pub fn new(max: usize) -> Arc<Self> {
        let max = max.max(1);
        Arc::new(Connections { open: Arc::new(Semaphore::new(max)), max, refused: AtomicU64::new(0) })
    }

    /// Connections open now, over every port.
    pub fn open(&self) -> usize {
        self.max.saturating_sub(self.open.available_permits())
    }

    /// Connections closed at once because the cap was reached.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The cap's metrics in Prometheus' text format.
    pub fn render(&self) -> String {
        format!(
            "# HELP graphc_connections_open Connections open now, over every port.\n# TYPE graphc_connections_open gauge\ngraphc_connections_open {}\n\
             # HELP graphc_connections_refused_total Connections closed at once: the open-connection cap was reached.\n# TYPE graphc_connections_refused_total counter\ngraphc_connections_refused_total {}\n",
            self.open(),
            self.refused()
        )
    }
}

/// What a connection is doing, for closing it when idle: HTTP/2 has no header-read timeout to
/// do it, and a peer that answers pings can hold a connection with no stream open for ever.
#[derive(Debug)]
pub(crate) struct Activity {
    since: Instant,
    busy: AtomicUsize,
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity { since: Instant::now(), busy: AtomicUsize::new(0), last_ms: AtomicU64::new(0) })
    }

    /// A request begins; it ends when the guard is dropped.
    #[cfg_attr(not(feature = "grpc"), allow(dead_code, reason = "HTTP/1 closes idle connections itself"))]
    pub(crate) fn begin(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(Arc::clone(self))
    }

    /// How long the connection has had no request in flight (`None` while one is).
    fn idle_for(&self) -> Option<Duration> {
        if self.busy.load(Ordering::Acquire) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_ms.load(Ordering::Acquire));
        Some(self.since.elapsed().saturating_sub(last))
    }
}

/// A request in flight on a connection.
#[cfg_attr(not(feature = "grpc"), allow(dead_code, reason = "HTTP/1 closes idle connections itself"))]
pub(crate) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let now = u64::try_from(self.0.since.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_ms.store(now, Ordering::Release);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The connections a port accepted, for shutting them down.
pub(crate) struct Accepted {
    stop: watch::Sender<bool>,
    finished: mpsc::Receiver<()>,
}

impl Accepted {
    /// Asks every connection to finish what it accepted and close, then waits for them, no
    /// longer than `timeout`. False when some were still open then (they are dropped with the
    /// process).
    pub(crate) async fn close(mut self, timeout: Duration) -> bool {
        let _ = self.stop.send(true);
        tokio::time::timeout(timeout, self.finished.recv()).await.is_ok()
    }
}

/// How a port's connections begin: in plaintext, or with a TLS handshake that must finish
/// within the given time.
pub(crate) type Handshake = Option<(Arc<ServerTls>, Duration)>;

/// Serves connections from `listener` until `shutdown` resolves: each (after its TLS handshake,
/// when the port has TLS) through `connect`, with the process-wide cap `connections`. A
/// connection with no request in flight for `idle` is asked to close (`None`: the protocol closes
/// idle connections itself, as HTTP/1's header timeout does).
pub(crate) async fn accept<C, F>(
    listener: &TcpListener,
    connections: &Arc<Connections>,
    idle: Option<Duration>,
    tls: Handshake,
    connect: F,
    shutdown: impl Future<Output = ()>,
) -> Accepted
where
    C: GracefulConnection + Send + 'static,
    F: Fn(TokioIo<Stream>, Arc<Activity>) -> C + Clone + Send + 'static,
{
    let (stop, stopping) = watch::channel(false);
    // Each connection holds a sender; `recv` answers `None` once every one has been dropped.
    let (open, finished) = mpsc::channel::<()>(1);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                // Out of file descriptors, or a connection reset before it was accepted: the
                // server goes on; a short pause lets descriptors free up.
                Err(error) => {
                    tracing::warn!("cannot accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Accepted { stop, finished },
        };
        let Ok(permit) = Arc::clone(&connections.open).try_acquire_owned() else {
            connections.refused.fetch_add(1, Ordering::Relaxed);
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let stopping = stopping.clone();
        let open = open.clone();
        let connect = connect.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            // The handshake runs here, not in the loop: a peer that stalls it holds only its own
            // connection, and its place under the cap, for at most the handshake's time.
            let stream = match tls {
                None => Some(Stream::Plain(stream)),
                Some((tls, within)) => tls.accept(stream, within).await,
            };
            if let Some(stream) = stream {
                let activity = Activity::new();
                let connection = connect(TokioIo::new(stream), Arc::clone(&activity));
                run(connection, activity, idle, stopping).await;
            }
            drop(permit);
            drop(open);
        });
    }
}

/// Runs one connection until it ends, or closes it gracefully when the server stops or it has
/// been idle too long.
async fn run<C: GracefulConnection>(
    connection: C,
    activity: Arc<Activity>,
    idle: Option<Duration>,
    mut stopping: watch::Receiver<bool>,
) {
    let mut connection = std::pin::pin!(connection);
    let idle_check = async {
        let Some(limit) = idle else { return std::future::pending().await };
        let mut wait = limit;
        loop {
            tokio::time::sleep(wait).await;
            match activity.idle_for() {
                Some(idle) if idle >= limit => return,
                Some(idle) => wait = limit - idle,
                None => wait = limit,
            }
        }
    };
    let stop = async {
        // A sender dropped is a stop too.
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    tokio::select! {
        _ = connection.as_mut() => return,
        () = stop => {}
        () = idle_check => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}
