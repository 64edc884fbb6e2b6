//! The server as one `tower::Service`: each request goes to its transport (a WebSocket
//! upgrade to the WebSocket transport, everything else to HTTP).

use std::convert::Infallible;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request, Response};

pub use crate::body::Body;
use crate::body::{BoxError, no_content};
use crate::call::BoxFuture;
use crate::protocol::http::in_endpoint;
use crate::transport::http::HttpTransport;
use crate::transport::ws::{WsTransport, is_upgrade};

/// The server as a `tower::Service<http::Request<B>>` (from [`crate::Server::into_service`]);
/// cheap to clone.
#[derive(Clone)]
pub struct HttpService(Arc<Routes>);

struct Routes {
    endpoint: String,
    http: HttpTransport,
    ws: WsTransport,
}

impl fmt::Debug for HttpService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpService")
            .field("endpoint", &self.0.endpoint)
            .finish_non_exhaustive()
    }
}

impl HttpService {
    pub(crate) fn new(endpoint: String, http: HttpTransport, ws: WsTransport) -> Self {
        HttpService(Arc::new(Routes { endpoint, http, ws }))
    }

    /// Answers one request. Never fails: every problem becomes a tRPC error response.
    pub(crate) async fn handle<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let routes = &*self.0;
        if is_upgrade(&req) && in_endpoint(req.uri().path(), &routes.endpoint) {
            return routes.ws.upgrade(req);
        }
        if req.method() == Method::HEAD {
            return no_content();
        }
        routes.http.handle(req).await
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
        Box::pin(async move { Ok(service.handle(req).await) })
    }
}
