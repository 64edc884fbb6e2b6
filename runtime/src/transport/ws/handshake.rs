//! The WebSocket upgrade on the HTTP port: checks (key and version, origin, connection
//! limit), the `101 Switching Protocols` answer, and the connection task on the upgraded
//! socket.

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{
    CONNECTION, HeaderValue, ORIGIN, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};

use crate::body::{Body, error_response};
use crate::context::{RequestInfo, TransportKind};
use crate::error::{Error, ErrorCode};
use crate::transport::ws::Shared;
use crate::transport::ws::connection::serve_connection;

/// Whether a request asks for a WebSocket upgrade.
pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    let has = |name: http::header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    req.method() == http::Method::GET && has(UPGRADE, "websocket") && has(CONNECTION, "upgrade")
}

/// Answers an upgrade request from `peer` with 101 and serves the connection on the
/// upgraded socket.
pub(super) fn upgrade<B: Send + 'static>(
    shared: &Arc<Shared>,
    mut req: Request<B>,
    peer: Option<SocketAddr>,
) -> Response<Body> {
    let config = &shared.config;
    let refuse = |e: Error| {
        let e = shared.dispatcher.reported(e, None);
        error_response(shared.dispatcher.policy(), &e, None)
    };
    let key = req.headers().get(SEC_WEBSOCKET_KEY).cloned();
    let version_ok = req
        .headers()
        .get(SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v == "13");
    let Some(key) = key.filter(|_| version_ok) else {
        return refuse(Error::bad_request(
            "Bad WebSocket handshake: `Sec-WebSocket-Key` and `Sec-WebSocket-Version: 13` are required",
        ));
    };
    if let (Some(allowed), Some(origin)) = (&config.allowed_origins, req.headers().get(ORIGIN)) {
        let origin = origin.to_str().unwrap_or("");
        if !allowed.iter().any(|a| a == origin) {
            return refuse(Error::new(
                ErrorCode::Forbidden,
                format!("WebSocket connections from origin {origin:?} are not allowed"),
            ));
        }
    }
    let Some(slot) = shared.connections.admit(config.max_connections) else {
        return refuse(Error::new(
            ErrorCode::ServiceUnavailable,
            "Too many WebSocket connections; try again later",
        ));
    };
    let wants_params = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
        .any(|(k, v)| k == "connectionParams" && v == "1");
    let info = RequestInfo::new(
        req.method().clone(),
        req.uri().clone(),
        req.headers().clone(),
        peer,
    )
    .with_transport(TransportKind::WebSocket);
    // Control messages sent from here on reach this connection, even before its task runs.
    let epoch = shared.connections.epoch();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => {
                tracing::debug!(error = %e, "WebSocket upgrade failed");
                return;
            }
        };
        let ws_config = WebSocketConfig::default()
            // Small: it stays allocated for the connection's life (one read takes up to this).
            .read_buffer_size(512)
            .write_buffer_size(0)
            .max_message_size(Some(shared.config.max_message_size))
            .max_frame_size(Some(shared.config.max_message_size));
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(ws_config))
                .await;
        serve_connection(
            shared,
            Box::new(socket),
            Box::new(info),
            wants_params,
            epoch,
        )
        .await;
        drop(slot);
    });
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = res.headers_mut();
    headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    res
}
