//! `$remote` steps: an HTTP or HTTPS call per event over a shared connection pool (the upstream
//! roots of `upstream.rs`), the event's named headers forwarded when the graph says so, a timeout per
//! attempt, retries with exponential backoff and jitter, the event's id and path forwarded, and
//! failures mapped to 502 (the remote answered non-2xx) and 504 (it did not answer in time).

use crate::context::Context;
use crate::error::StepError;
use crate::event::Event;
use crate::node::{Catcher, NoCatcher, Node, entry_copy, fail_or_catch};
use crate::run::Run;
use crate::step::Entry;
use crate::step::value_at;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::Value;
use std::sync::OnceLock;
use std::time::Duration;

/// Where a remote step sends events.
#[derive(Clone, Debug)]
pub enum Target {
    /// A URL.
    Url(String),
    /// A function's endpoint, from `Context::get_remote_endpoint`.
    Function(String),
}

/// The client of one step: `http://` and `https://`, connections kept for the next event.
type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An HTTP call made for each event.
pub struct Remote {
    target: Target,
    method: Method,
    headers: Vec<(String, String)>,
    forwarded: Vec<HeaderName>,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    /// Made on the first call, inside the runtime that serves the step: its connections live
    /// there, and the upstream roots are read after start-up set them.
    client: OnceLock<HttpClient>,
}

impl Remote {
    /// A call to `target` with `method` (an unknown method is POST).
    pub fn new(target: Target, method: &str) -> Self {
        Remote {
            target,
            method: Method::from_bytes(method.as_bytes()).unwrap_or(Method::POST),
            headers: Vec::new(),
            forwarded: Vec::new(),
            timeout: Duration::from_secs(10),
            retries: 0,
            backoff: Duration::from_millis(100),
            client: OnceLock::new(),
        }
    }

    /// Adds a header to every call.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Forwards the event's header `name`, when it has one (a caller's `authorization`, say).
    /// The checker accepts only valid names; an invalid one here is never sent.
    pub fn forward(mut self, name: &str) -> Self {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            self.forwarded.push(name);
        }
        self
    }

    /// Sets the timeout of each attempt.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the retries after the first attempt and the first backoff (doubled each retry).
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    fn url(&self, context: &Context) -> Result<String, StepError> {
        match &self.target {
            Target::Url(url) => Ok(url.clone()),
            Target::Function(function) => context
                .get_remote_endpoint(function)
                .map(str::to_string)
                .ok_or_else(|| StepError::new(format!("no endpoint is configured for function `{function}`"))),
        }
    }

    fn client(&self) -> Result<&HttpClient, StepError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let tls = crate::upstream::client_config()
            .map_err(|error| StepError::bad_gateway(format!("no TLS for upstreams: {error}")))?;
        let mut http = HttpConnector::new();
        // The scheme is the TLS layer's to check: it takes http:// and https://.
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector);
        Ok(self.client.get_or_init(|| client))
    }

    /// The request of one attempt.
    fn request(
        &self,
        url: &str,
        event: &Event,
        body: &Value,
        timeout: Duration,
    ) -> Result<Request<Full<Bytes>>, StepError> {
        let mut request = Request::builder()
            .method(self.method.clone())
            .uri(url)
            .header("x-event-id", event.id.text())
            .header("x-event-path", event.path.as_ref())
            .header("x-request-timeout-ms", timeout.as_millis().to_string());
        for name in &self.forwarded {
            for value in event.headers.get_all(name) {
                request = request.header(name, value);
            }
        }
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let body = if self.method == Method::GET {
            Full::default()
        } else {
            request = request.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Full::new(Bytes::from(serde_json::to_vec(body).unwrap_or_default()))
        };
        request
            .body(body)
            .map_err(|error| StepError::bad_gateway(format!("{url}: the request cannot be made: {error}")))
    }

    /// Calls the endpoint with `body`; the answer as JSON (or as a string when it is not JSON).
    pub async fn call(&self, event: &Event, body: &Value, context: &Context) -> Result<Value, StepError> {
        let url = self.url(context)?;
        let client = self.client()?;
        let mut last = StepError::bad_gateway(format!("{url}: no attempt was made"));
        for attempt in 0..=self.retries {
            if attempt > 0 {
                tokio::time::sleep(backoff(self.backoff, attempt)).await;
            }
            // An attempt gets what is left of the caller's deadline, at most its own timeout: a
            // call the caller no longer waits for is not made, nor retried.
            let timeout = match event.time_left() {
                Some(left) if left.is_zero() => {
                    return Err(StepError::timeout(format!("the deadline passed before {url} was called")));
                }
                Some(left) => left.min(self.timeout),
                None => self.timeout,
            };
            let request = self.request(&url, event, body, timeout)?;
            let exchange = async {
                let response = client.request(request).await.map_err(|error| causes(&error))?;
                let status = response.status();
                let bytes = response.into_body().collect().await.map_err(|error| causes(&error))?.to_bytes();
                Ok::<_, String>((status, bytes))
            };
            match tokio::time::timeout(timeout, exchange).await {
                Ok(Ok((status, bytes))) if status.is_success() => {
                    return Ok(serde_json::from_slice(&bytes)
                        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned())));
                }
                Ok(Ok((status, bytes))) => {
                    let text = String::from_utf8_lossy(&bytes);
                    last = StepError::bad_gateway(format!("{url} answered {status}: {text}"));
                    // Client errors will not change on a retry.
                    if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
                        return Err(last);
                    }
                }
                Ok(Err(why)) => last = StepError::bad_gateway(format!("{url}: {why}")),
                Err(_) => last = StepError::timeout(format!("{url} did not answer within {timeout:?}")),
            }
        }
        Err(last)
    }
}

/// An error and its causes, outermost first: hyper's own words ("client error (Connect)") say
/// little without the certificate or connection failure under them.
fn causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// `base * 2^(attempt-1)`, plus up to `base` of jitter so that retries do not arrive together.
fn backoff(base: Duration, attempt: u32) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let exponential = base.saturating_mul(1 << (attempt - 1).min(16));
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(attempt);
    let jitter = base.mul_f64((hasher.finish() % 1000) as f64 / 1000.0);
    exponential + jitter
}

/// A remote step in a graph: the call, its paths, what follows it, and its error handler.
pub struct RemoteNode<N, C = NoCatcher> {
    /// The step's name.
    pub name: &'static str,
    /// The call.
    pub remote: Remote,
    /// The part of the body sent, as a dotted path.
    pub input_path: Option<&'static str>,
    /// Where the answer is written, as a dotted path.
    pub result_path: Option<&'static str>,
    /// What follows it.
    pub next: N,
    /// Its output answers the caller.
    pub respond: bool,
    /// Where its failures go.
    pub catcher: C,
}

fn split(path: &str) -> Vec<String> {
    path.split('.').map(str::to_string).collect()
}

impl<N: Node, C: Catcher> Node for RemoteNode<N, C> {
    /// The call sends the body and headers, not the time.
    fn reads_time(&self) -> bool {
        self.next.reads_time() || self.catcher.reads_time()
    }
    async fn push(&self, event: &mut Event, run: &Run) {
        let copy = entry_copy::<C>(Entry::Event, event, run.context());
        let input = self.input_path.map(split);
        let sent = match &input {
            Some(path) => value_at(&event.body, path).cloned().unwrap_or(Value::Null),
            None => event.body.clone(),
        };
        let result = match self.remote.call(event, &sent, run.context()).await {
            Ok(answer) => match self.result_path.map(split) {
                Some(path) => crate::step::write_result(self.name, &mut event.body, &path, answer),
                None => {
                    event.body = answer;
                    Ok(())
                }
            },
            Err(error) => Err(error),
        };
        match result {
            Ok(()) => {
                // Released before the event goes on: what follows takes its own.
                drop(copy);
                if self.respond {
                    run.respond(&event.body);
                }
                self.next.push(event, run).await;
            }
            Err(error) => {
                let entry = copy.map(|copy| copy.into_entry(event));
                fail_or_catch(self.name, entry, &error, &self.catcher, run).await;
            }
        }
    }
}
