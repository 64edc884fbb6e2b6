//! What a create-context function learns about the request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, Method, Uri};

use crate::error::Error;

/// The transport a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportKind {
    /// A plain HTTP request (query, mutation or batch).
    Http,
    /// A WebSocket connection (the context is created once per connection).
    WebSocket,
    /// A Server-Sent Events subscription stream (`httpSubscriptionLink`).
    Sse,
}

/// The request a context is created for: method, URI, headers, peer address.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    peer_addr: Option<SocketAddr>,
    connection_params: Option<BTreeMap<String, String>>,
    transport: TransportKind,
    response_headers: ResponseHeaders,
}

impl RequestInfo {
    /// Builds request info (for tests and for calling procedures from Rust).
    pub fn new(
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        peer_addr: Option<SocketAddr>,
    ) -> Self {
        Self::of(method, uri, headers, peer_addr, ResponseHeaders::new())
    }

    /// Request info for an HTTP request from `peer_addr` whose procedures set their response
    /// headers through `response_headers`.
    pub(crate) fn responding(
        parts: http::request::Parts,
        peer_addr: Option<SocketAddr>,
        response_headers: ResponseHeaders,
    ) -> Self {
        Self::of(
            parts.method,
            parts.uri,
            parts.headers,
            peer_addr,
            response_headers,
        )
    }

    fn of(
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        peer_addr: Option<SocketAddr>,
        response_headers: ResponseHeaders,
    ) -> Self {
        RequestInfo {
            method,
            uri,
            headers,
            peer_addr,
            connection_params: None,
            transport: TransportKind::Http,
            response_headers,
        }
    }

    pub(crate) fn with_transport(mut self, transport: TransportKind) -> Self {
        if transport != TransportKind::Http {
            // Their responses are out before any procedure runs.
            self.response_headers = ResponseHeaders::discarding();
        }
        self.transport = transport;
        self
    }

    /// Sets the client's `connectionParams`.
    pub fn with_connection_params(mut self, params: Option<BTreeMap<String, String>>) -> Self {
        self.connection_params = params;
        self
    }

    /// The client's `connectionParams`, if any: a `?connectionParams=` query parameter on
    /// HTTP, the first frame of a WebSocket connection opened with `?connectionParams=1`.
    pub fn connection_params(&self) -> Option<&BTreeMap<String, String>> {
        self.connection_params.as_ref()
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The request URI.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// All request headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// One header as text, if present and valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The peer's address, when the server knows it.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer_addr
    }

    /// The transport the request arrived on.
    pub fn transport(&self) -> TransportKind {
        self.transport
    }

    /// Headers to add to this request's HTTP response (tRPC's `resHeaders`), e.g. a
    /// `set-cookie` from a sign-in mutation: keep the handle in your context. One handle per
    /// request, shared by the calls of a batch. Applied to plain HTTP responses only: a
    /// WebSocket's or an SSE stream's response, and a streamed (JSONL) batch's, has been sent
    /// before any procedure runs, so headers set there are dropped.
    pub fn response_headers(&self) -> ResponseHeaders {
        self.response_headers.clone()
    }
}

/// Headers for an HTTP response, set by procedures while the request runs.
///
/// ```
/// use oxrpc::ResponseHeaders;
/// let headers = ResponseHeaders::new();
/// headers.append("set-cookie", "session=abc; HttpOnly; SameSite=Lax; Path=/").unwrap();
/// assert_eq!(headers.snapshot().get("set-cookie").unwrap(), "session=abc; HttpOnly; SameSite=Lax; Path=/");
/// // Framing is the server's business.
/// assert!(headers.append("content-length", "0").is_err());
/// ```
#[derive(Debug, Clone)]
pub struct ResponseHeaders(Option<Arc<std::sync::Mutex<HeaderMap>>>);

impl Default for ResponseHeaders {
    fn default() -> Self {
        ResponseHeaders::new()
    }
}

/// Headers a procedure may not set: they frame the response or the connection.
const FRAMING: [&str; 8] = [
    "connection",
    "content-length",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// At most this many header values per response.
const MAX_HEADERS: usize = 100;

impl ResponseHeaders {
    /// A handle collecting headers.
    pub fn new() -> Self {
        ResponseHeaders(Some(Arc::default()))
    }

    /// A handle for a response that has gone out already (WebSocket, SSE): headers set on it
    /// are dropped.
    pub(crate) fn discarding() -> Self {
        ResponseHeaders(None)
    }

    /// Adds a header (several values for one name are kept, as `set-cookie` needs). Fails on
    /// a name or value that is not a valid HTTP header, on headers that frame the response
    /// (`content-length`, `transfer-encoding`, `connection`…), and beyond 100 values.
    pub fn append(&self, name: &str, value: &str) -> Result<(), Error> {
        let name = http::HeaderName::from_bytes(name.as_bytes())
            .map_err(|e| Error::internal(format!("invalid response header name {name:?}: {e}")))?;
        if FRAMING.contains(&name.as_str()) {
            return Err(Error::internal(format!(
                "procedures may not set the response header {name}"
            )));
        }
        let value = http::HeaderValue::from_str(value).map_err(|e| {
            Error::internal(format!("invalid value for response header {name}: {e}"))
        })?;
        let Some(map) = &self.0 else {
            return Ok(());
        };
        let mut map = map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= MAX_HEADERS {
            return Err(Error::internal("too many response headers"));
        }
        map.append(name, value);
        Ok(())
    }

    /// The headers set so far.
    pub fn snapshot(&self) -> HeaderMap {
        self.0
            .as_ref()
            .map(|map| {
                map.lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone()
            })
            .unwrap_or_default()
    }

    /// Takes the headers set so far (the transport applies them to the response).
    pub(crate) fn take(&self) -> HeaderMap {
        self.0
            .as_ref()
            .map(|map| {
                std::mem::take(
                    &mut *map
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner),
                )
            })
            .unwrap_or_default()
    }
}
