//! The server as one `tower::Service`: each request goes to its transport (a WebSocket
//! upgrade to the WebSocket transport, everything else to HTTP, which hands a `GET` of a
//! subscription on to SSE). Like tRPC, SSE is chosen by the procedure's kind, not by the
//! `Accept` header.

use std::convert::Infallible;
use std::fmt;
use std::future::{Future, ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::Either;
use http::header::ORIGIN;
use http::{Method, Request, Response};

pub use crate::body::Body;
use crate::body::{BoxError, error_response, no_content};
use crate::call::BoxFuture;
use crate::dispatch::Dispatcher;
use crate::error::{Error, ErrorCode};
use crate::protocol::http::in_endpoint;
use crate::transport::http::HttpTransport;
use crate::transport::sse::SseTransport;
use crate::transport::ws::{WsTransport, is_upgrade};

/// The server as a `tower::Service<http::Request<B>>` (from [`crate::Server::into_service`]);
/// cheap to clone.
#[derive(Clone)]
pub struct HttpService(Arc<Routes>);

struct Routes {
    endpoint: String,
    /// Browser origins allowed to call (`None`: any).
    allowed_origins: Option<Vec<String>>,
    dispatcher: Dispatcher,
    http: HttpTransport,
    ws: WsTransport,
    sse: SseTransport,
}

impl fmt::Debug for HttpService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpService")
            .field("endpoint", &self.0.endpoint)
            .finish_non_exhaustive()
    }
}

impl HttpService {
    pub(crate) fn new(
        endpoint: String,
        allowed_origins: Option<Vec<String>>,
        dispatcher: Dispatcher,
        http: HttpTransport,
        ws: WsTransport,
        sse: SseTransport,
    ) -> Self {
        HttpService(Arc::new(Routes {
            endpoint,
            allowed_origins,
            dispatcher,
            http,
            ws,
            sse,
        }))
    }

    /// Answers one request from `peer` (when known). Never fails: every problem becomes a
    /// tRPC error response.
    ///
    /// Not an `async fn`: what is decided without waiting is answered at once, and the HTTP
    /// transport's future is returned as it is, not kept inside one more future with its own
    /// copy of the request (every layer of futures is moved, whole, on each request).
    pub(crate) fn handle<B>(
        &self,
        req: Request<B>,
        peer: Option<SocketAddr>,
    ) -> impl Future<Output = Response<Body>> + Send + '_
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let routes = &*self.0;
        // The header is looked up only when origins are restricted.
        if let Some(allowed) = &routes.allowed_origins
            && let Some(origin) = req.headers().get(ORIGIN)
            && !is_upgrade(&req)
        {
            let origin = origin.to_str().unwrap_or("");
            if !allowed.iter().any(|a| a == origin) {
                let e = routes.dispatcher.reported(
                    Error::new(
                        ErrorCode::Forbidden,
                        format!("Requests from origin {origin:?} are not allowed"),
                    ),
                    None,
                );
                return Either::Left(ready(error_response(routes.dispatcher.policy(), &e, None)));
            }
        }
        if is_upgrade(&req) && in_endpoint(req.uri().path(), &routes.endpoint) {
            return Either::Left(ready(routes.ws.upgrade(req, peer)));
        }
        if req.method() == Method::HEAD {
            return Either::Left(ready(no_content()));
        }
        // A `GET` of one subscription is handed on to SSE by the HTTP transport, once it
        // has looked up the path.
        Either::Right(routes.http.handle(req, peer, &routes.sse))
    }
}

impl<B> tower_service::Service<Request<B>> for HttpService
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move { Ok(service.handle(req, None).await) })
    }
}
