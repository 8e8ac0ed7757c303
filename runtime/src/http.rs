//! The HTTP server: any pipeline on hyper's HTTP/1 connections, hardened for
//! traffic it does not control: a header-read timeout (which also closes idle keep-alive
//! connections), header count and size limits, a cap on open connections (beyond it new ones
//! are closed at once and the open ones keep being served), a body size limit (413), a request
//! deadline that covers reading the body (504), a concurrency limit (503 with `Retry-After`),
//! JSON errors, `x-event-id` on every response, Prometheus metrics at `/metrics`, and a graceful
//! shutdown, bounded in time, that finishes accepted requests and drains background work.

use crate::error::StepError;
use crate::event::{EventId, Response};
pub use crate::listen::Connections;
use crate::listen::accept;
use crate::metrics::Histogram;
use crate::oip::paths;
use crate::pipeline::Handler;
use crate::request::{Head, RequestEvent, X_EVENT_ID, request_error, too_large};
use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Either, Full, LengthLimitError, Limited};
use hyper::body::{Frame, Incoming};
use std::borrow::Cow;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The largest request body, in bytes; larger ones are answered 413.
    pub body_limit: usize,
    /// How long a request may take, from its headers to its answer (reading the body
    /// included); then 504.
    pub deadline: Duration,
    /// Requests processed at once; beyond it, 503 with `Retry-After`.
    pub concurrency: usize,
    /// How long a client may take to send a request's headers; a keep-alive connection with no
    /// new request for this long is closed too.
    pub header_timeout: Duration,
    /// Open connections at most; beyond it, new connections are closed at once.
    pub max_connections: usize,
    /// Headers in a request at most (more: 431).
    pub max_headers: usize,
    /// The largest request head (request line and headers), in bytes (larger: 431).
    pub max_header_bytes: usize,
    /// How long shutdown may wait for requests in flight and background work.
    pub shutdown_timeout: Duration,
    /// Log one line per request (method, path, status, time, event id) at `info`.
    pub access_log: bool,
    /// The access tokens every request but a health probe must carry (`--auth-tokens-file`).
    pub auth: Option<Arc<crate::auth::Tokens>>,
    /// TLS on this port (and the gRPC port): `--tls-cert`, `--tls-key`, `--tls-client-ca`.
    pub tls: Option<Arc<crate::tls::ServerTls>>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit: 1 << 20,
            deadline: Duration::from_secs(30),
            concurrency: 1024,
            header_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            max_headers: 100,
            max_header_bytes: 64 * 1024,
            shutdown_timeout: Duration::from_secs(30),
            access_log: false,
            auth: None,
            tls: None,
        }
    }
}

/// Request counters by status code, and the request latency histogram.
pub struct Metrics {
    /// One counter per status code from 100 to 599: lock-free on the request path.
    by_code: Vec<AtomicU64>,
    requests: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics { by_code: (100..600).map(|_| AtomicU64::new(0)).collect(), requests: Histogram::default() }
    }
}

impl Metrics {
    fn observe(&self, status: u16, elapsed: Duration) {
        if let Some(counter) = self.by_code.get(usize::from(status.clamp(100, 599)) - 100) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.requests.observe(elapsed, status >= 400);
    }

    /// The request metrics in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP graphc_requests_total Requests answered, by status code (and class).\n# TYPE graphc_requests_total counter\n",
        );
        for (index, counter) in self.by_code.iter().enumerate() {
            let count = counter.load(Ordering::Relaxed);
            if count > 0 {
                let code = index + 100;
                out.push_str(&format!("graphc_requests_total{{code=\"{code}\",class=\"{}xx\"}} {count}\n", code / 100));
            }
        }
        out.push_str("# HELP graphc_request_errors_total Requests answered with a 4xx or 5xx status.\n# TYPE graphc_request_errors_total counter\n");
        out.push_str(&format!("graphc_request_errors_total {}\n", self.requests.errors()));
        out.push_str("# HELP graphc_request_duration_seconds Time to answer a request.\n# TYPE graphc_request_duration_seconds histogram\n");
        self.requests.render(&mut out, "graphc_request_duration", "");
        out
    }
}

struct Server<H> {
    handler: H,
    options: ServeOptions,
    slots: Arc<Semaphore>,
    metrics: Metrics,
    connections: Arc<Connections>,
}

/// Binds the listening socket (port 0 picks a free one).
pub async fn bind(options: &ServeOptions) -> std::io::Result<TcpListener> {
    TcpListener::bind(options.addr).await
}

/// Serves `handler` on `listener` until `shutdown` resolves; then stops accepting, finishes the
/// requests already accepted and drains the pipeline's background work, for at most the
/// shutdown timeout (connections still open then are dropped).
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: H,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections = Connections::new(options.max_connections);
    serve_sharing(listener, handler, options, connections, shutdown).await
}

/// [`serve`], with the open-connection cap shared with the process's other ports (gRPC, probes).
pub async fn serve_sharing<H: Handler>(
    listener: TcpListener,
    handler: H,
    options: ServeOptions,
    connections: Arc<Connections>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::metrics::enable();
    let server = Arc::new(Server {
        handler,
        slots: Arc::new(Semaphore::new(options.concurrency.max(1))),
        options: options.clone(),
        metrics: Metrics::default(),
        connections: Arc::clone(&connections),
    });
    // No routing: every request is the graph's (the metrics and probes are answered inside).
    let service = {
        let server = Arc::clone(&server);
        hyper::service::service_fn(move |request| {
            let server = Arc::clone(&server);
            async move { Ok::<_, Infallible>(answer(&server, request).await) }
        })
    };
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .max_buf_size(options.max_header_bytes.max(8192))
        .keep_alive(true);
    // hyper's own limit is the same 100 headers, kept in a fixed array; a limit set explicitly,
    // even to 100, makes it fill a vector of that many slots for every request it parses.
    if options.max_headers != HYPER_MAX_HEADERS {
        http.max_headers(options.max_headers);
    }
    // HTTP/1's header-read timeout closes idle keep-alive connections itself.
    let tls = options.tls.clone().map(|tls| (tls, options.header_timeout));
    let connect = move |io, _| http.serve_connection(io, service.clone());
    let accepted = accept(&listener, &connections, None, tls, connect, shutdown).await;
    drop(listener);
    let deadline = tokio::time::Instant::now() + options.shutdown_timeout;
    if !accepted.close(options.shutdown_timeout).await {
        tracing::warn!("shutdown: connections still open after {:?} are dropped", options.shutdown_timeout);
    }
    if tokio::time::timeout_at(deadline, server.handler.drain()).await.is_err() {
        tracing::warn!("shutdown: background work still running after {:?} is abandoned", options.shutdown_timeout);
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// The number of headers hyper takes when not told otherwise.
const HYPER_MAX_HEADERS: usize = 100;

/// What the server answers: a body of known length, so that hyper writes its `Content-Length`,
/// or a streamed answer's chunks, written as they come (chunked transfer encoding).
type HttpResponse = http::Response<Either<Full<Bytes>, ChunkBody>>;

/// A streamed answer's body: each chunk a frame, flushed as it comes.
pub struct ChunkBody {
    chunks: tokio::sync::mpsc::Receiver<crate::streaming::Chunk>,
    format: crate::streaming::ChunkFormat,
    /// What lives as long as the stream (the request's concurrency slot).
    _guard: Option<Box<dyn Send>>,
}

impl hyper::body::Body for ChunkBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let format = self.format;
        self.chunks.poll_recv(cx).map(|chunk| chunk.map(|chunk| Ok(Frame::data(Bytes::from(format.render(&chunk))))))
    }
}

async fn answer<H: Handler>(server: &Server<H>, request: http::Request<Incoming>) -> HttpResponse {
    let started = Instant::now();
    if let Some(tokens) = &server.options.auth
        && let Err(refused) = tokens.check(request.method().as_str(), request.uri().path(), request.headers())
    {
        return into_http(request_error(refused, &EventId::fresh()));
    }
    // A scrape is not a request the metrics count.
    if request.uri().path() == "/metrics" {
        return into_http(metrics_answer(server, request.method()));
    }
    let access = server.options.access_log.then(|| (request.method().clone(), request.uri().path().to_string()));
    let response = respond(server, request, started).await;
    let elapsed = started.elapsed();
    server.metrics.observe(response.status, elapsed);
    if let Some((method, path)) = access {
        let id = response.event_id.as_ref().map(EventId::text).unwrap_or_default();
        tracing::info!(target: "access", %method, path, status = response.status, ms = elapsed.as_secs_f64() * 1000.0, event_id = id, "request");
    }
    into_http(response)
}

fn metrics_answer<H>(server: &Server<H>, method: &http::Method) -> Response {
    match method.as_str() {
        "GET" | "HEAD" => Response::new(
            200,
            "text/plain; version=0.0.4",
            server.metrics.render()
                + &server.connections.render()
                + &crate::metrics::render()
                + &crate::pool::render()
                + &process_metrics(),
        ),
        _ => request_error(StepError::method_not_allowed("/metrics takes GET or HEAD", "GET, HEAD"), &EventId::fresh()),
    }
}

/// Answers one request that arrived at `started`.
async fn respond<H: Handler>(server: &Server<H>, request: http::Request<Incoming>, started: Instant) -> Response {
    let (parts, body) = request.into_parts();
    let limit = server.options.body_limit;
    let head = match Head::read(parts.method.as_str(), parts.uri.path(), &parts.headers, limit) {
        Ok(head) => head,
        Err(answer) => return answer,
    };
    // Beyond the concurrency limit the caller is told to come back, at once. A streamed answer
    // keeps its slot until its last chunk.
    let Ok(slot) = Arc::clone(&server.slots).try_acquire_owned() else {
        let message = match server.options.concurrency {
            1 => "1 request is in flight already".to_string(),
            many => format!("{many} requests are in flight already"),
        };
        return head.error(StepError::unavailable(message));
    };
    let deadline = match request_deadline(&parts.headers, server.options.deadline) {
        Ok(deadline) => deadline,
        Err(error) => return head.error(error),
    };
    let deadline_at = started + deadline;
    let id = head.id().clone();
    // The deadline covers reading the body: a slow body cannot hold the request past it.
    let handled = async {
        let bytes = match Limited::new(body, limit).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(failure) if failure.is::<LengthLimitError>() => return head.error(too_large(limit)),
            Err(failure) => {
                return head.error(StepError::bad_request(format!("the body could not be read: {failure}")));
            }
        };
        // Moved, not copied: the event owns the request's headers from here on.
        match head.into_event(parts.headers, bytes) {
            Ok(RequestEvent { mut event, form }) => {
                event.limit_deadline(deadline_at);
                form.apply(server.handler.handle(event).await)
            }
            Err(answer) => answer,
        }
    };
    // Most requests are answered in their first poll (the body came with the head, and the graph
    // never waits): those need no timer. Only a request that waits is put under its deadline:
    // dropped there, its work is cancelled where it waits (for the pool, a model's queue, an
    // upstream), and blocking work already running finishes in its thread, its result unused.
    let mut handled = std::pin::pin!(handled);
    let response = match std::future::poll_fn(|cx| Poll::Ready(handled.as_mut().poll(cx))).await {
        Poll::Ready(response) => late_answer(response, deadline_at, deadline, &id),
        Poll::Pending => match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline_at), handled).await {
            Ok(response) => late_answer(response, deadline_at, deadline, &id),
            Err(_) => past_deadline(deadline, &id),
        },
    };
    if let Some(chunks) = &response.chunks {
        chunks.hold(slot);
    }
    response
}

/// The request's deadline: the server's, or shorter when the caller asks with
/// `x-request-timeout-ms` (a caller may not lengthen it).
fn request_deadline(headers: &http::HeaderMap, server: Duration) -> Result<Duration, StepError> {
    let Some(value) = headers.get(X_REQUEST_TIMEOUT_MS) else { return Ok(server) };
    let millis = value.to_str().ok().and_then(|text| text.trim().parse::<u64>().ok()).ok_or_else(|| {
        StepError::bad_request(format!("`{X_REQUEST_TIMEOUT_MS}` takes a whole number of milliseconds"))
    })?;
    Ok(server.min(Duration::from_millis(millis)))
}

/// The header with which a caller shortens its request's deadline.
pub const X_REQUEST_TIMEOUT_MS: &str = "x-request-timeout-ms";

fn past_deadline(deadline: Duration, id: &EventId) -> Response {
    request_error(StepError::timeout(format!("the request took longer than its deadline of {deadline:?}")), id)
}

/// An answer that is ready only after the deadline (a step that blocked its poll) is a 504 all
/// the same: a caller never gets a 200 later than it was promised an answer.
fn late_answer(response: Response, deadline_at: Instant, deadline: Duration, id: &EventId) -> Response {
    if response.status < 400 && Instant::now() > deadline_at { past_deadline(deadline, id) } else { response }
}

/// The process's own gauges, read from /proc where there is one: resident memory, open file
/// descriptors and CPU seconds, as Prometheus' process collector names them.
fn process_metrics() -> String {
    let mut out = String::new();
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else { return out };
    if let Some(kb) = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    {
        out.push_str("# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\n");
        out.push_str(&format!("process_resident_memory_bytes {}\n", kb * 1024));
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        out.push_str("# HELP process_open_fds Open file descriptors.\n# TYPE process_open_fds gauge\n");
        out.push_str(&format!("process_open_fds {}\n", fds.count()));
    }
    // Fields 14 and 15 of /proc/self/stat: user and system time in clock ticks (100 a second).
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat")
        && let Some(after_name) = stat.rfind(')').and_then(|end| stat.get(end + 2..))
    {
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        let ticks = |index: usize| fields.get(index).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        out.push_str(
            "# HELP process_cpu_seconds_total User and system CPU time.\n# TYPE process_cpu_seconds_total counter\n",
        );
        out.push_str(&format!("process_cpu_seconds_total {}\n", (ticks(11) + ticks(12)) / 100.0));
    }
    out
}

fn into_http(response: Response) -> HttpResponse {
    let Response { status, headers: extra, content_type, body, event_id, chunks } = response;
    let streamed = chunks.and_then(|chunks| chunks.take()).map(|taken| ChunkBody {
        chunks: taken.chunks,
        format: crate::streaming::ChunkFormat::of_content_type(&content_type).unwrap_or_default(),
        _guard: taken.guard,
    });
    let body = match streamed {
        Some(streamed) => Either::Right(streamed),
        None => Either::Left(Full::new(Bytes::from(body))),
    };
    let mut http = http::Response::new(body);
    *http.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = http.headers_mut();
    let content_type = match content_type {
        Cow::Borrowed(text) => Ok(HeaderValue::from_static(text)),
        Cow::Owned(text) => HeaderValue::from_str(&text),
    };
    if let Ok(value) = content_type {
        headers.insert(header::CONTENT_TYPE, value);
    }
    if let Some(id) = event_id
        && let Ok(value) = HeaderValue::from_maybe_shared(Bytes::from(id.text()))
    {
        headers.insert(X_EVENT_ID, value);
    }
    for (name, value) in extra {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value)) {
            headers.append(name, value);
        }
    }
    http
}

/// A child function's own small server: `/metrics` (its steps, routes and stream counters) and
/// the health probes `/v2/health/live` and `/v2/health/ready` (ready while its consumer works
/// with Redis), until `shutdown` resolves.
pub async fn serve_probes(
    listener: TcpListener,
    stats: Arc<crate::stream::ConsumerStats>,
    group: String,
    security: PortSecurity,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::metrics::enable();
    let PortSecurity { tls, auth } = security;
    let probe = move |request: http::Request<Incoming>| {
        if let Some(tokens) = &auth
            && let Err(refused) = tokens.check(request.method().as_str(), request.uri().path(), request.headers())
        {
            return std::future::ready(Ok::<_, Infallible>(into_http(request_error(refused, &EventId::fresh()))));
        }
        let (status, content_type, body) = match (request.method().as_str(), request.uri().path()) {
            ("GET", "/metrics") => (200, "text/plain; version=0.0.4", stats.render(&group) + &crate::metrics::render()),
            ("GET", paths::LIVE) => (200, "application/json", r#"{"live":true}"#.to_string()),
            ("GET", paths::READY) if stats.ready() => (200, "application/json", r#"{"ready":true}"#.to_string()),
            ("GET", paths::READY) => (503, "application/json", r#"{"ready":false}"#.to_string()),
            _ => (
                404,
                "application/json",
                r#"{"error":"a child function serves /metrics and /v2/health/{live,ready}"}"#.to_string(),
            ),
        };
        std::future::ready(Ok::<_, Infallible>(into_http(Response::new(status, content_type, body.into_bytes()))))
    };
    let service = hyper::service::service_fn(probe);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(PROBE_HEADER_TIMEOUT);
    // A probe answers at once; a few scrapers at a time are all it serves.
    let connections = Connections::new(PROBE_CONNECTIONS);
    let handshake = tls.map(|tls| (tls, PROBE_HEADER_TIMEOUT));
    accept(&listener, &connections, None, handshake, move |io, _| http.serve_connection(io, service.clone()), shutdown)
        .await
        .close(PROBE_HEADER_TIMEOUT)
        .await;
    Ok(())
}

/// What guards a port beside the main one: the main port's certificate and tokens, so that no
/// port of a process is more open than the others.
#[derive(Clone, Debug, Default)]
pub struct PortSecurity {
    /// TLS, as `--tls-cert` set it.
    pub tls: Option<Arc<crate::tls::ServerTls>>,
    /// Access tokens, as `--auth-tokens-file` set them (`/metrics` needs the `metrics` group).
    pub auth: Option<Arc<crate::auth::Tokens>>,
}

impl PortSecurity {
    /// The TLS and tokens of `options`.
    pub fn of(options: &ServeOptions) -> PortSecurity {
        PortSecurity { tls: options.tls.clone(), auth: options.auth.clone() }
    }
}

/// Open connections a child function's probe server takes at most.
const PROBE_CONNECTIONS: usize = 64;

/// How long a probe's scraper may take to send its request, or keep an idle connection.
const PROBE_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
