//! A request turned into its event, and the pipeline's answer into the form the request asked
//! for: the one path from a request to an event, taken by the HTTP server, the mock server
//! (so `graphc test` answers as `graphc serve` does) and the gRPC service.

use crate::error::StepError;
use crate::event::{Event, EventId, Response};
use crate::run::error_response;
use crate::streaming::ChunkFormat;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use serde_json::Value;
use std::borrow::Cow;

pub(crate) const X_EVENT_ID: HeaderName = HeaderName::from_static("x-event-id");
const X_EVENT_PATH: HeaderName = HeaderName::from_static("x-event-path");
const X_EVENT_KEY: HeaderName = HeaderName::from_static("x-event-key");
/// The header of the binary tensor extension: the length of the JSON head.
const BINARY_HEAD_LENGTH: HeaderName = HeaderName::from_static(crate::oip::binary::HEADER_LENGTH);

/// Methods no pipeline takes: answered 405 before anything runs.
const NOT_EVENTS: &[&str] = &["OPTIONS", "TRACE", "CONNECT"];

/// A request as a test or a call gives it: method, path, headers and body, unchecked.
#[derive(Clone, Debug, Default)]
pub struct Request {
    /// `GET`, `POST`, ... (any case; empty is `POST`).
    pub method: String,
    /// The path, without the query (empty is `/`).
    pub path: String,
    /// Headers; names are matched without regard to case.
    pub headers: Vec<(String, String)>,
    /// The raw body.
    pub body: Vec<u8>,
}

impl Request {
    /// The request's event and the form of its answer, made as the HTTP server makes them once
    /// it has the body: the id from `x-event-id` (else fresh), the path from `x-event-path`
    /// (else the request's), the key from `x-event-key`, the body decompressed and read as
    /// JSON, text or binary tensors. A body over `body_limit` bytes (as sent, or once
    /// decompressed) is `413`; a method no pipeline takes `405`, an encoding the server does not
    /// read `415`, a body that is not what it says `400`. What goes wrong is the answer to give.
    pub fn into_event(self, body_limit: usize) -> Result<RequestEvent, Response> {
        let mut headers = HeaderMap::with_capacity(self.headers.len());
        // A name or value HTTP does not allow could not have arrived over HTTP: left out.
        for (name, value) in &self.headers {
            if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str()))
            {
                headers.append(name, value);
            }
        }
        let method = if self.method.is_empty() { "POST".to_string() } else { self.method.to_ascii_uppercase() };
        let head = Head::read(&method, &self.path, &headers, body_limit)?;
        if Method::from_bytes(method.as_bytes()).is_err() {
            return Err(head.error(StepError::bad_request(format!("`{method}` is not an HTTP method"))));
        }
        head.into_event(headers, Bytes::from(self.body))
    }
}

/// An event made from a request, and the form its answer takes.
#[derive(Debug)]
pub struct RequestEvent {
    /// The event the pipeline runs.
    pub event: Event,
    /// What the request asked of its answer.
    pub form: AnswerForm,
}

/// What a request asked of its answer's form, besides JSON: tensor outputs in binary (the
/// protocol's binary extension), gzip, and a streamed answer's chunks as server-sent events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AnswerForm {
    binary: bool,
    gzip: bool,
    chunks: ChunkFormat,
}

impl AnswerForm {
    /// The pipeline's answer in this form. A streamed answer is written as the caller accepts
    /// (JSON lines, or events), never compressed: each chunk must reach it as it comes.
    pub fn apply(self, mut response: Response) -> Response {
        if response.chunks.is_some() {
            response.content_type = Cow::Borrowed(self.chunks.content_type());
            response.headers.push(("cache-control".to_string(), "no-cache".to_string()));
            return response;
        }
        if self.binary {
            response = binary_outputs(response);
        }
        if self.gzip { compress(response) } else { response }
    }
}

/// What a request's head says, read in one pass over its headers: the event's id, path, key
/// and content type, and how to read the body and write the answer.
pub(crate) struct Head {
    id: EventId,
    method: Cow<'static, str>,
    path: String,
    key: Option<String>,
    content_type: Option<Cow<'static, str>>,
    body_limit: usize,
    encoding: ContentEncoding,
    binary_head: Option<usize>,
    gzip: bool,
    chunks: ChunkFormat,
}

impl Head {
    /// Reads a request's head: the id from `x-event-id` (else fresh), the path from
    /// `x-event-path` (else the request's), the key from `x-event-key`. A method no pipeline
    /// takes is `405`, a body encoding the server does not read `415`, a binary head length that
    /// is not a number `400`, a `Content-Length` over `body_limit` `413` (before the body is
    /// read).
    pub(crate) fn read(method: &str, path: &str, headers: &HeaderMap, body_limit: usize) -> Result<Head, Response> {
        let read = ReadHeaders::of(headers);
        let id = read
            .get(&X_EVENT_ID)
            .filter(|id| !id.is_empty())
            .map_or_else(EventId::fresh, |id| EventId::Given(id.to_string()));
        let fail = |failure: StepError| request_error(failure, &id);
        if NOT_EVENTS.contains(&method) {
            let message = format!("{method} is not a method the graph takes");
            return Err(fail(StepError::method_not_allowed(message, "GET, HEAD, POST, PUT, PATCH, DELETE")));
        }
        // `*` is OPTIONS' target alone; any other request names a path.
        if !path.is_empty() && !path.starts_with('/') {
            let message = format!("the request target `{}` is not a path", path.chars().take(64).collect::<String>());
            return Err(fail(StepError::bad_request(message)));
        }
        let encoding = ContentEncoding::of(read.get(&header::CONTENT_ENCODING)).map_err(fail)?;
        // Two lengths for the JSON head cannot both be right.
        let mut lengths = headers.get_all(&BINARY_HEAD_LENGTH).iter();
        if let Some(first) = lengths.next()
            && lengths.any(|other| other != first)
        {
            let message = format!("{} is given twice, with different values", crate::oip::binary::HEADER_LENGTH);
            return Err(fail(StepError::bad_request(message)));
        }
        let binary_head = match read.get(&BINARY_HEAD_LENGTH).map(str::parse::<usize>) {
            None => None,
            Some(Ok(length)) => Some(length),
            Some(Err(_)) => {
                let message = format!("{} must be a number of bytes", crate::oip::binary::HEADER_LENGTH);
                return Err(fail(StepError::bad_request(message)));
            }
        };
        if read
            .get(&header::CONTENT_LENGTH)
            .and_then(|length| length.parse::<usize>().ok())
            .is_some_and(|length| length > body_limit)
        {
            return Err(fail(too_large(body_limit)));
        }
        let path = read.get(&X_EVENT_PATH).unwrap_or(path);
        let method = match method {
            "GET" => Cow::Borrowed("GET"),
            "POST" => Cow::Borrowed("POST"),
            other => Cow::Owned(other.to_string()),
        };
        Ok(Head {
            method,
            path: if path.is_empty() { "/".to_string() } else { path.to_string() },
            key: read.get(&X_EVENT_KEY).map(str::to_string),
            content_type: read.get(&header::CONTENT_TYPE).map(|value| match value {
                // Most requests' content type: kept without an allocation.
                "application/json" => Cow::Borrowed("application/json"),
                other => Cow::Owned(other.to_string()),
            }),
            body_limit,
            encoding,
            binary_head,
            gzip: read.get(&header::ACCEPT_ENCODING).is_some_and(accepts_gzip),
            chunks: ChunkFormat::accepted(read.get(&header::ACCEPT)),
            id,
        })
    }

    /// The event's id.
    pub(crate) fn id(&self) -> &EventId {
        &self.id
    }

    /// The answer for a request that fails before it is an event: the server's own message.
    pub(crate) fn error(&self, failure: StepError) -> Response {
        request_error(failure, &self.id)
    }

    /// The event: the body decompressed (no more than `limit` bytes), read (binary tensors
    /// into the JSON request they stand for, else JSON, or text for `text/plain`), with the
    /// head's fields and the request's headers, moved in.
    pub(crate) fn into_event(self, headers: HeaderMap, body: Bytes) -> Result<RequestEvent, Response> {
        let limit = self.body_limit;
        if body.len() > limit {
            return Err(self.error(too_large(limit)));
        }
        let bytes = self.encoding.decode(body, limit).map_err(|failure| self.error(failure))?;
        let parsed = match self.binary_head {
            Some(length) => crate::oip::binary::read_request(&bytes, length),
            None => parse_body(&bytes, self.content_type.as_deref()),
        };
        let body = parsed.map_err(|failure| self.error(failure))?;
        Ok(self.with_body(headers, body))
    }

    /// The event, with a body that arrived already decoded.
    fn with_body(self, headers: HeaderMap, body: Value) -> RequestEvent {
        let form = AnswerForm { binary: crate::oip::binary::wants_binary(&body), gzip: self.gzip, chunks: self.chunks };
        let mut event = Event::arrived(body, self.id);
        event.path = Cow::Owned(self.path);
        event.method = self.method;
        event.content_type = self.content_type;
        if let Some(key) = self.key {
            event.key = key;
        }
        event.headers = headers;
        RequestEvent { event, form }
    }
}

/// The event of a call whose body arrived already decoded, within the transport's own size
/// limit (a gRPC message): its head read from `headers` as an HTTP request's is (`x-event-id`,
/// `x-event-key`, ...), the body as given, with no bytes in between.
#[cfg_attr(not(feature = "grpc"), allow(dead_code, reason = "only the gRPC service decodes its own bodies"))]
pub(crate) fn decoded_event(method: &str, path: &str, headers: HeaderMap, body: Value) -> Result<Event, Response> {
    let head = Head::read(method, path, &headers, usize::MAX)?;
    Ok(head.with_body(headers, body).event)
}

/// An answer about the request itself, not the graph: its messages are the server's own, never
/// a cause, so they are shown whatever the server's settings.
pub(crate) fn request_error(failure: StepError, id: &EventId) -> Response {
    error_response("request", &failure, id, true)
}

/// The failure of a body over the limit.
pub(crate) fn too_large(limit: usize) -> StepError {
    StepError::too_large(format!("the body is over the limit of {limit} bytes"))
}

/// A request body as JSON (or text for `text/plain`): a malformed body or an unsupported
/// content type is a `400`.
pub fn parse_body(bytes: &[u8], content_type: Option<&str>) -> Result<Value, StepError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    let essence = content_type.map_or("", |ct| ct.split(';').next().unwrap_or("").trim());
    let is = |name: &str| essence.eq_ignore_ascii_case(name);
    let json = essence.is_empty()
        || is("application/json")
        || essence.get(essence.len().saturating_sub(5)..).is_some_and(|suffix| suffix.eq_ignore_ascii_case("+json"));
    if json {
        serde_json::from_slice(bytes).map_err(|error| StepError::bad_request(format!("malformed JSON body: {error}")))
    } else if is("application/octet-stream") {
        // tritonclient's asynchronous HTTP client sends a request with no binary tensors as
        // JSON under this type, without the binary extension's header.
        serde_json::from_slice(bytes).map_err(|_| {
            StepError::bad_request(format!(
                "an application/octet-stream body is binary tensors only with the {} header; without it, it must be JSON",
                crate::oip::binary::HEADER_LENGTH
            ))
        })
    } else if is("text/plain") {
        std::str::from_utf8(bytes)
            .map(|text| Value::String(text.to_string()))
            .map_err(|_| StepError::bad_request("the text body is not UTF-8"))
    } else {
        Err(StepError::bad_request(format!(
            "unsupported content type `{}`: send application/json",
            essence.to_ascii_lowercase()
        )))
    }
}

/// The request headers a head is read from, found in one pass over the header map (about 4
/// headers in a typical request, against 8 hashed lookups); each is its first value, if that is
/// text.
struct ReadHeaders<'h> {
    values: [Option<Option<&'h str>>; READ_HEADERS.len()],
}

/// What [`ReadHeaders`] keeps, in this order.
static READ_HEADERS: [HeaderName; 9] = [
    X_EVENT_ID,
    header::CONTENT_LENGTH,
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::ACCEPT_ENCODING,
    BINARY_HEAD_LENGTH,
    X_EVENT_PATH,
    X_EVENT_KEY,
    header::ACCEPT,
];

impl<'h> ReadHeaders<'h> {
    fn of(headers: &'h HeaderMap) -> Self {
        let mut values = [None; READ_HEADERS.len()];
        for (name, value) in headers {
            if let Some(index) = READ_HEADERS.iter().position(|read| read == name)
                && values[index].is_none()
            {
                values[index] = Some(value.to_str().ok());
            }
        }
        ReadHeaders { values }
    }

    /// The first value of `name`, one of [`READ_HEADERS`].
    fn get(&self, name: &HeaderName) -> Option<&'h str> {
        let index = READ_HEADERS.iter().position(|read| read == name)?;
        self.values[index].flatten()
    }
}

/// How a request body is encoded (`Content-Encoding`).
enum ContentEncoding {
    Identity,
    Gzip,
    /// HTTP's `deflate`: the zlib format.
    Deflate,
}

impl ContentEncoding {
    fn of(header: Option<&str>) -> Result<ContentEncoding, StepError> {
        match header.map(|value| value.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "identity") => Ok(ContentEncoding::Identity),
            Some("gzip" | "x-gzip") => Ok(ContentEncoding::Gzip),
            Some("deflate") => Ok(ContentEncoding::Deflate),
            Some(other) => Err(StepError::of(
                crate::error::ErrorKind::UnsupportedEncoding,
                format!("the body's encoding `{other}` is not one the server reads: send gzip, deflate or none"),
            )),
        }
    }

    /// The body as sent, decompressed: no more than `limit` bytes once decompressed (413
    /// beyond, so that a small compressed body cannot expand without bound), 400 if it is not
    /// what its encoding says.
    fn decode(&self, bytes: Bytes, limit: usize) -> Result<Bytes, StepError> {
        use std::io::Read;
        let reader: Box<dyn Read + '_> = match self {
            ContentEncoding::Identity => return Ok(bytes),
            ContentEncoding::Gzip => Box::new(flate2::read::MultiGzDecoder::new(&bytes[..])),
            ContentEncoding::Deflate => Box::new(flate2::read::ZlibDecoder::new(&bytes[..])),
        };
        let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(limit));
        reader.take(limit as u64 + 1).read_to_end(&mut out).map_err(|failure| {
            StepError::bad_request(format!("the body is not valid for its Content-Encoding: {failure}"))
        })?;
        if out.len() > limit {
            return Err(StepError::too_large(format!("the body is over the limit of {limit} bytes once decompressed")));
        }
        Ok(Bytes::from(out))
    }
}

/// Whether an `Accept-Encoding` header takes gzip (`gzip`, `x-gzip` or `*`, with a non-zero `q`).
fn accepts_gzip(header: &str) -> bool {
    header.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or_default().trim();
        let q = parts
            .filter_map(|param| param.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        matches!(coding.to_ascii_lowercase().as_str(), "gzip" | "x-gzip" | "*") && q > 0.0
    })
}

/// A successful JSON answer with tensor outputs, written with binary outputs as asked.
fn binary_outputs(mut response: Response) -> Response {
    if response.status != 200 {
        return response;
    }
    if let Some((body, head_length)) = crate::oip::binary::write_answer(&response.body) {
        response.body = body;
        response.content_type = Cow::Borrowed("application/octet-stream");
        response.headers.push((crate::oip::binary::HEADER_LENGTH.to_string(), head_length.to_string()));
    }
    response
}

/// Answers smaller than this go as they are: compressing them costs more than it saves.
const COMPRESS_FROM_BYTES: usize = 1024;

/// The answer gzip-compressed, for a caller that takes gzip, when it is large enough to gain.
fn compress(mut response: Response) -> Response {
    use std::io::Write;
    if response.body.len() < COMPRESS_FROM_BYTES {
        return response;
    }
    let mut encoder =
        flate2::write::GzEncoder::new(Vec::with_capacity(response.body.len() / 4), flate2::Compression::fast());
    if encoder.write_all(&response.body).is_err() {
        return response;
    }
    if let Ok(compressed) = encoder.finish() {
        response.body = compressed;
        response.headers.push(("content-encoding".to_string(), "gzip".to_string()));
        response.headers.push(("vary".to_string(), "accept-encoding".to_string()));
    }
    response
}
