//! The mock server: drive any pipeline in-process, with no network, and get exactly what HTTP
//! would answer: a request becomes its event, and the answer takes its form, on the HTTP
//! server's own path (`request`), under the server's default body limit.

use crate::event::Response;
use crate::pipeline::Handler;
use crate::request::{Request, RequestEvent};
use serde_json::Value;

/// Runs a pipeline in-process on its own single-threaded tokio runtime.
///
/// ```
/// use graphc_runtime::{Body, Context, End, MockServer, StepNode, SyncPipeline};
/// let pipeline = SyncPipeline::new(StepNode::new("echo", Body(|body: serde_json::Value| body), End), Context::new("g"));
/// let server = MockServer::new(pipeline);
/// let response = server.test("/", serde_json::json!({"x": 1}));
/// assert_eq!(response.status, 200);
/// assert_eq!(response.json_body(), serde_json::json!({"x": 1}));
/// ```
pub struct MockServer<H> {
    handler: H,
    runtime: tokio::runtime::Runtime,
}

impl<H: Handler> MockServer<H> {
    /// A mock server for `handler`.
    pub fn new(handler: H) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap_or_else(|error| {
            // Building a current-thread runtime fails only when the OS refuses its resources.
            panic!("cannot start the mock server's runtime: {error}")
        });
        MockServer { handler, runtime }
    }

    /// `POST path` with a JSON body.
    pub fn test(&self, path: &str, body: Value) -> Response {
        self.request("POST", path).json(&body).send()
    }

    /// A request to build: method, headers, event id, body.
    pub fn request(&self, method: &str, path: &str) -> MockRequest<'_, H> {
        MockRequest {
            server: self,
            request: Request {
                method: method.to_string(),
                path: path.to_string(),
                headers: Vec::new(),
                body: Vec::new(),
            },
        }
    }

    /// Sends a request as HTTP would deliver it.
    pub fn send(&self, request: Request) -> Response {
        let body_limit = crate::http::ServeOptions::default().body_limit;
        self.runtime.block_on(async {
            let response = match request.into_event(body_limit) {
                Ok(RequestEvent { event, form }) => form.apply(self.handler.handle(event).await),
                Err(response) => response,
            };
            read_whole(response).await
        })
    }

    /// Waits until background work has drained.
    pub fn wait_for_completion(&self) {
        self.runtime.block_on(self.handler.drain());
    }

    /// The pipeline.
    pub fn handler(&self) -> &H {
        &self.handler
    }
}

/// A streamed answer read to its end, its chunks written into the body as HTTP would send
/// them ([`Response::chunk_bodies`] reads them back).
async fn read_whole(mut response: Response) -> Response {
    if let Some(chunks) = response.chunks.take() {
        let format = crate::streaming::ChunkFormat::of_content_type(&response.content_type).unwrap_or_default();
        for chunk in chunks.collect().await {
            response.body.extend_from_slice(&format.render(&chunk));
        }
    }
    response
}

/// A request being built for the mock server.
pub struct MockRequest<'s, H> {
    server: &'s MockServer<H>,
    request: Request,
}

impl<H: Handler> MockRequest<'_, H> {
    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.request.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the event id (`x-event-id`).
    pub fn event_id(self, id: &str) -> Self {
        self.header("x-event-id", id)
    }

    /// A JSON body.
    pub fn json(mut self, body: &Value) -> Self {
        self.request.body = serde_json::to_vec(body).unwrap_or_default();
        self.header("content-type", "application/json")
    }

    /// Raw body bytes, with whatever content type headers say.
    pub fn body(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.request.body = bytes.into();
        self
    }

    /// Sends it.
    pub fn send(self) -> Response {
        self.server.send(self.request)
    }
}
