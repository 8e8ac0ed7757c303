//! The HTTP server: any pipeline behind axum, with a body size limit (413), a request deadline
//! (504), a concurrency limit (503 when no slot frees up before the deadline), JSON errors,
//! `x-event-id` on every response, Prometheus metrics at `/metrics`, and a graceful shutdown
//! that finishes accepted requests and drains background work.

use crate::error::StepError;
use crate::event::Event;
use crate::event::{EventId, Response};
use crate::metrics::Histogram;
use crate::pipeline::{Handler, parse_body};
use crate::run::error_response;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

const X_EVENT_ID: HeaderName = HeaderName::from_static("x-event-id");
const X_EVENT_PATH: HeaderName = HeaderName::from_static("x-event-path");
const X_EVENT_KEY: HeaderName = HeaderName::from_static("x-event-key");

/// How the server runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Where to listen.
    pub addr: SocketAddr,
    /// The largest request body, in bytes; larger ones are answered 413.
    pub body_limit: usize,
    /// How long a request may take, waiting for a slot included; then 504.
    pub deadline: Duration,
    /// Requests processed at once; others wait for a slot until the deadline, then 503.
    pub concurrency: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            body_limit: 1 << 20,
            deadline: Duration::from_secs(30),
            concurrency: 1024,
        }
    }
}

/// Request counters by status class, and the request latency histogram.
#[derive(Default)]
pub struct Metrics {
    by_class: [AtomicU64; 5],
    requests: Histogram,
}

impl Metrics {
    fn observe(&self, status: u16, elapsed: Duration) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        if let Some(counter) = self.by_class.get(class) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
        self.requests.observe(elapsed, status >= 400);
    }

    /// The request metrics in Prometheus' text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP graphc_requests_total Requests answered, by status class.\n# TYPE graphc_requests_total counter\n",
        );
        for (index, counter) in self.by_class.iter().enumerate() {
            out.push_str(&format!(
                "graphc_requests_total{{class=\"{}xx\"}} {}\n",
                index + 1,
                counter.load(Ordering::Relaxed)
            ));
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
    slots: Semaphore,
    metrics: Metrics,
}

/// Binds the listening socket (port 0 picks a free one).
pub async fn bind(options: &ServeOptions) -> std::io::Result<TcpListener> {
    TcpListener::bind(options.addr).await
}

/// Serves `handler` on `listener` until `shutdown` resolves; then stops accepting, finishes the
/// requests already accepted, and drains the pipeline's background work.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: H,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::metrics::enable();
    let server = Arc::new(Server {
        handler,
        slots: Semaphore::new(options.concurrency.max(1)),
        options,
        metrics: Metrics::default(),
    });
    let app = axum::Router::new().fallback(answer::<H>).with_state(Arc::clone(&server));
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    server.handler.drain().await;
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

async fn answer<H: Handler>(
    State(server): State<Arc<Server<H>>>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let started = Instant::now();
    let response = respond(&server, request).await;
    server.metrics.observe(response.status, started.elapsed());
    into_http(response)
}

async fn respond<H: Handler>(server: &Server<H>, request: axum::extract::Request) -> Response {
    let (parts, body) = request.into_parts();
    if parts.uri.path() == "/metrics" && parts.method == axum::http::Method::GET {
        return Response::new(200, "text/plain; version=0.0.4", server.metrics.render() + &crate::metrics::render());
    }
    let header = |name: &HeaderName| parts.headers.get(name).and_then(|value| value.to_str().ok());
    let id = header(&X_EVENT_ID)
        .filter(|id| !id.is_empty())
        .map_or_else(EventId::fresh, |id| EventId::Given(id.to_string()));
    let limit = server.options.body_limit;
    let too_large = || StepError {
        status: 413,
        kind: "too_large",
        message: format!("the body is over the limit of {limit} bytes"),
    };
    if header(&header::CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok()).is_some_and(|length| length > limit) {
        return error(too_large(), &id);
    }
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => bytes,
        Err(failure) if failure.to_string().contains("length limit") => return error(too_large(), &id),
        Err(failure) => return error(StepError::bad_request(format!("the body could not be read: {failure}")), &id),
    };
    let content_type = header(&header::CONTENT_TYPE).map(str::to_string);
    let body = match parse_body(&bytes, content_type.as_deref()) {
        Ok(body) => body,
        Err(failure) => return error(failure, &id),
    };
    let mut event = Event::new(body);
    event.id = id.clone();
    event.path = Cow::Owned(header(&X_EVENT_PATH).map_or_else(|| parts.uri.path().to_string(), str::to_string));
    event.method = match parts.method.as_str() {
        "GET" => Cow::Borrowed("GET"),
        "POST" => Cow::Borrowed("POST"),
        other => Cow::Owned(other.to_string()),
    };
    event.content_type = content_type;
    if let Some(key) = header(&X_EVENT_KEY) {
        event.key = key.to_string();
    }
    // Moved, not copied: the event owns the request's headers from here on.
    event.headers = parts.headers;
    let handled = async {
        let _slot = server.slots.acquire().await;
        server.handler.handle(event).await
    };
    match tokio::time::timeout(server.options.deadline, handled).await {
        Ok(response) => response,
        Err(_) => error(
            StepError::timeout(format!("the request took longer than its deadline of {:?}", server.options.deadline)),
            &id,
        ),
    }
}

fn error(error: StepError, id: &EventId) -> Response {
    error_response("request", &error, id)
}

fn into_http(response: Response) -> axum::response::Response {
    let Response { status, headers: extra, content_type, body, event_id } = response;
    let mut http = axum::response::Response::new(Body::from(body));
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
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    crate::metrics::enable();
    let probe = move |request: axum::extract::Request| {
        let (stats, group) = (Arc::clone(&stats), group.clone());
        async move {
            let (status, content_type, body) = match (request.method().as_str(), request.uri().path()) {
                ("GET", "/metrics") => {
                    (200, "text/plain; version=0.0.4", stats.render(&group) + &crate::metrics::render())
                }
                ("GET", "/v2/health/live") => (200, "application/json", r#"{"live":true}"#.to_string()),
                ("GET", "/v2/health/ready") if stats.ready() => {
                    (200, "application/json", r#"{"ready":true}"#.to_string())
                }
                ("GET", "/v2/health/ready") => (503, "application/json", r#"{"ready":false}"#.to_string()),
                _ => (
                    404,
                    "application/json",
                    r#"{"error":"a child function serves /metrics and /v2/health/{live,ready}"}"#.to_string(),
                ),
            };
            into_http(Response::new(status, content_type, body.into_bytes()))
        }
    };
    let app = axum::Router::new().fallback(probe);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}
