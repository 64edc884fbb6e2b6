//! What a create-context function learns about the request.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, Method, Uri};

use crate::call::BoxFuture;
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
}

impl RequestInfo {
    /// Builds request info (for tests and for calling procedures from Rust).
    pub fn new(
        method: Method,
        uri: Uri,
        headers: HeaderMap,
        peer_addr: Option<SocketAddr>,
    ) -> Self {
        RequestInfo {
            method,
            uri,
            headers,
            peer_addr,
            connection_params: None,
            transport: TransportKind::Http,
        }
    }

    pub(crate) fn with_transport(mut self, transport: TransportKind) -> Self {
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
}

/// A type-erased create-context function.
pub(crate) type ContextFn<Ctx> =
    Arc<dyn Fn(RequestInfo) -> BoxFuture<Result<Ctx, Error>> + Send + Sync>;

/// The peer address, put into request extensions by the standalone server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub(crate) SocketAddr);
