//! tRPC over WebSocket (spec §7): the upgrade on the HTTP port ([`handshake`]), the
//! per-connection task ([`connection`]), the outbox and the socket's writer ([`outbox`]) and the registry of
//! connections and subscriptions ([`registry`]).

mod connection;
mod handshake;
mod outbox;
mod queue;
pub(crate) mod registry;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};

use crate::body::Body;
use crate::dispatch::Dispatcher;
use registry::Connections;

pub(crate) use handshake::is_upgrade;

/// WebSocket limits and switches.
#[derive(Debug, Clone)]
pub(crate) struct WsConfig {
    pub(crate) max_message_size: usize,
    pub(crate) max_subscriptions: usize,
    pub(crate) max_connections: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) send_queue: usize,
    pub(crate) slow_consumer_timeout: Duration,
    pub(crate) keep_alive: Option<(Duration, Duration)>,
    pub(crate) allowed_origins: Option<Vec<String>>,
    pub(crate) shutdown_grace: Duration,
    /// How long a `?connectionParams=1` connection may take to send its params.
    pub(crate) handshake_timeout: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            max_message_size: 1024 * 1024,
            max_subscriptions: 256,
            max_connections: 25_000,
            max_in_flight: 64,
            send_queue: 256,
            slow_consumer_timeout: Duration::from_secs(10),
            keep_alive: None,
            allowed_origins: None,
            shutdown_grace: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// What every connection of one server shares.
#[derive(Debug)]
struct Shared {
    dispatcher: Dispatcher,
    config: WsConfig,
    connections: Arc<Connections>,
}

/// The WebSocket transport of one server.
#[derive(Debug, Clone)]
pub(crate) struct WsTransport(Arc<Shared>);

impl WsTransport {
    pub(crate) fn new(
        dispatcher: Dispatcher,
        config: WsConfig,
        connections: Arc<Connections>,
    ) -> Self {
        WsTransport(Arc::new(Shared {
            dispatcher,
            config,
            connections,
        }))
    }

    /// Answers an upgrade request from `peer` (101, or a tRPC error) and serves the
    /// connection.
    pub(crate) fn upgrade<B: Send + 'static>(
        &self,
        req: Request<B>,
        peer: Option<SocketAddr>,
    ) -> Response<Body> {
        handshake::upgrade(&self.0, req, peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::WebSocketStream;
    use tokio_tungstenite::tungstenite::protocol::Role;

    use crate::context::RequestInfo;
    use crate::protocol::error::ErrorPolicy;

    /// The memory discipline of idle connections, guarded: the per-connection futures and
    /// the queue's slots must stay small.
    #[tokio::test]
    async fn the_connection_task_is_small() {
        let router = crate::Router::<()>::new();
        let dispatcher = Dispatcher::new(
            router.procedures(),
            router.options(),
            crate::dispatch::ContextFn::Fixed(Arc::new(|| crate::dispatch::Context::new(()))),
            ErrorPolicy::default(),
        );
        let shared = Arc::new(Shared {
            dispatcher,
            config: WsConfig::default(),
            connections: Arc::default(),
        });
        let (a, _b) = tokio::io::duplex(64);
        let socket = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let info = RequestInfo::new(
            http::Method::GET,
            http::Uri::from_static("/"),
            http::HeaderMap::new(),
            None,
        );
        let future = connection::serve_connection(
            Arc::clone(&shared),
            Box::new(socket),
            Box::new(info),
            false,
            0,
        );
        let size = std::mem::size_of_val(&future);
        eprintln!("serve_connection future: {size} bytes");
        assert!(
            size < 1536,
            "the per-connection future grew to {size} bytes"
        );

        // Boxed per message: above 1,032 bytes (glibc's per-thread cache) every message
        // would take malloc's slow path.
        let (a, _b) = tokio::io::duplex(64);
        let socket = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let message = connection::message_future_size(&shared, Box::new(socket));
        eprintln!("message future: {message} bytes");
        assert!(
            message <= 1_024,
            "the per-message future grew to {message} bytes"
        );

        assert!(
            std::mem::size_of::<outbox::Out>() <= 40,
            "Out grew to {} bytes",
            std::mem::size_of::<outbox::Out>()
        );
    }
}
