//! The server: a router, a create-context function and limits; served standalone on hyper
//! or as a `tower::Service` (e.g. nested under axum).

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, ToSocketAddrs};

use crate::context::RequestInfo;
use crate::dispatch::{Context, ContextFn, Dispatcher};
use crate::error::Error;
use crate::idle::{Activity, Sweeping};
use crate::protocol::error::{ErrorInfo, ErrorPolicy};
use crate::router::Router;
use crate::service::HttpService;
use crate::transport::http::{HttpConfig, HttpTransport};
use crate::transport::sse::{SseConfig, SseStreams, SseTransport};
use crate::transport::ws::registry::{Connections, Control};
use crate::transport::ws::{WsConfig, WsTransport};

/// Everything a server is configured with, per transport.
#[derive(Debug, Clone, Default)]
struct ServerConfig {
    /// Browser origins allowed on every transport (`None`: any).
    allowed_origins: Option<Vec<String>>,
    http: HttpConfig,
    ws: WsConfig,
    sse: SseConfig,
    policy: ErrorPolicy,
}

/// A tRPC server: a [`Router`], a create-context function and transport options.
///
/// ```no_run
/// use oxrpc::{Error, Procedure, Router, Server};
///
/// # async fn run() -> std::io::Result<()> {
/// let router = Router::new()
///     .add(Procedure::query("hello", |_: (), (): ()| async { Ok::<_, Error>("hello world") }));
/// let listening = Server::new(router).bind("127.0.0.1:0").await?;
/// println!("listening on http://{}/trpc", listening.local_addr());
/// listening.run_until(async { tokio::signal::ctrl_c().await.ok(); }).await
/// # }
/// ```
pub struct Server<Ctx> {
    router: Router<Ctx>,
    create_context: ContextFn,
    config: ServerConfig,
    connections: Arc<Connections>,
    sse_streams: Arc<SseStreams>,
}

/// Controls a running server's WebSocket connections and SSE streams (for deploys, and
/// tests).
#[derive(Debug, Clone)]
pub struct ServerHandle {
    connections: Arc<Connections>,
    sse_streams: Arc<SseStreams>,
}

impl ServerHandle {
    /// Sends `{"id":null,"method":"reconnect"}` to every WebSocket client and ends every SSE
    /// stream (without `return`): clients reconnect and resubscribe with their last event
    /// ids. Serving continues.
    pub fn reconnect_all(&self) {
        self.connections.broadcast(Control::Reconnect);
        self.sse_streams.end_all();
    }

    /// Closes every WebSocket connection and ends every SSE stream at once.
    pub fn drop_all(&self) {
        self.connections.broadcast(Control::Drop);
        self.sse_streams.end_all();
    }

    /// How many WebSocket connections are open.
    pub fn websocket_connections(&self) -> usize {
        self.connections.count()
    }

    /// How many SSE subscription streams are open.
    pub fn sse_streams(&self) -> usize {
        self.sse_streams.count()
    }
}

impl<Ctx: Default + Send + Sync + 'static> Server<Ctx> {
    /// A server whose context is `Ctx::default()` for every request.
    pub fn new(router: Router<Ctx>) -> Self {
        Self::of(
            router,
            ContextFn::Fixed(Arc::new(|| Context::new(Ctx::default()))),
        )
    }
}

impl<Ctx: Send + 'static> Server<Ctx> {
    /// A server that builds each request's context with `create_context`.
    ///
    /// An `Err` from it fails every call of the request with that error.
    pub fn with_context<F, Fut>(router: Router<Ctx>, create_context: F) -> Self
    where
        Ctx: Sync,
        F: Fn(RequestInfo) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Ctx, Error>> + Send + 'static,
    {
        // Boxed once, already type-erased: one allocation per request for the context.
        let create_context = ContextFn::FromRequest(Arc::new(move |info| {
            Box::pin(create_context(info).map(|created| created.map(Context::new)))
        }));
        Self::of(router, create_context)
    }

    fn of(router: Router<Ctx>, create_context: ContextFn) -> Self {
        let mut config = ServerConfig::default();
        config.policy.formatter = router.formatter().cloned();
        Server {
            router,
            create_context,
            config,
            connections: Arc::default(),
            sse_streams: Arc::default(),
        }
    }

    /// The path prefix tRPC is served under (default `/trpc`). Use `/` when a parent router
    /// already strips a prefix, e.g. axum's `nest_service("/trpc", …)`.
    pub fn endpoint(mut self, prefix: &str) -> Self {
        self.config.http.endpoint = prefix.trim_end_matches('/').to_owned();
        self
    }

    /// The largest request body accepted, in bytes (default 2 MiB); larger ones get
    /// `PAYLOAD_TOO_LARGE`.
    pub fn max_body_size(mut self, bytes: usize) -> Self {
        self.config.http.max_body_size = bytes;
        self
    }

    /// The largest binary or multipart upload (`Octets`, `FormData` inputs) accepted, in bytes
    /// (default 16 MiB); a procedure may set its own with `max_size`. Uploads are streamed,
    /// so this bounds the work, not the memory.
    pub fn max_upload_size(mut self, bytes: usize) -> Self {
        self.config.http.max_upload_size = bytes;
        self
    }

    /// The most calls one batch may hold (default 1,000, far above what a page sends in one
    /// tick); more get `BAD_REQUEST`. The client's `maxItems` keeps batches under it.
    pub fn max_batch_size(mut self, calls: usize) -> Self {
        self.config.http.max_batch_size = calls;
        self
    }

    /// tRPC's `pathSeparator` (one of `.` `_` `~` `-`, default `.`): URLs may say
    /// `/post~byId` for `post.byId` (dotted URLs keep working); set the same option on the
    /// client's HTTP and SSE links. WebSocket messages always use dots.
    ///
    /// # Panics
    /// On another separator.
    pub fn path_separator(mut self, separator: char) -> Self {
        assert!(
            crate::protocol::http::PATH_SEPARATORS.contains(&separator),
            "the path separator must be one of `.` `_` `~` `-`, not {separator:?}"
        );
        self.config.http.path_separator = separator;
        self
    }

    /// Whether `?batch=1` requests are served (default `true`).
    pub fn allow_batching(mut self, allow: bool) -> Self {
        self.config.http.allow_batching = allow;
        self
    }

    /// Whether queries may also be sent as `POST` (the client's `methodOverride: 'POST'`;
    /// default `false`).
    pub fn allow_method_override(mut self, allow: bool) -> Self {
        self.config.http.allow_method_override = allow;
        self
    }

    /// The longest a request body may take to arrive, in total (default 30 s); a slower one
    /// is answered `TIMEOUT` (408), so a client trickling bytes cannot hold a request open.
    pub fn body_read_timeout(mut self, timeout: Duration) -> Self {
        self.config.http.body_read_timeout = timeout;
        self
    }

    /// How long a connection may go without a request in flight (default 30 s): a client
    /// that does not finish a request's headers in that time, and a keep-alive connection
    /// idle that long after its last response, are closed. A request in flight keeps its
    /// connection however long it runs. Connections are looked at together a few times per
    /// timeout, so the close comes up to a quarter of it (at most 1 s) late, never early.
    /// Applies to the standalone server ([`Server::bind`]); under axum, configure the hosting
    /// server.
    pub fn header_read_timeout(mut self, timeout: Duration) -> Self {
        self.config.http.header_read_timeout = timeout;
        self
    }

    /// How long a WebSocket opened with `?connectionParams=1` may take to send its params
    /// (default 10 s); then it is closed with code 1008.
    pub fn ws_handshake_timeout(mut self, timeout: Duration) -> Self {
        self.config.ws.handshake_timeout = timeout;
        self
    }

    /// Dev mode: internal error causes (and panic messages) are sent to clients in
    /// `error.data.stack`. Never enable it in production (default `false`).
    pub fn dev_mode(mut self, on: bool) -> Self {
        self.config.policy.dev_mode = on;
        self
    }

    /// Calls `hook` for every error sent to a client (tRPC's `onError`), e.g. to log or count
    /// them. Internal causes are also logged with `tracing` either way.
    pub fn on_error(
        mut self,
        hook: impl Fn(&Error, &ErrorInfo<'_>) + Send + Sync + 'static,
    ) -> Self {
        self.config.policy.on_error = Some(Arc::new(hook));
        self
    }

    /// The largest WebSocket message accepted, in bytes (default 1 MiB); a larger one closes
    /// the connection (close code 1009).
    pub fn ws_max_message_size(mut self, bytes: usize) -> Self {
        self.config.ws.max_message_size = bytes;
        self
    }

    /// The most live subscriptions one WebSocket connection may hold (default 256); more get
    /// `TOO_MANY_REQUESTS`.
    pub fn ws_max_subscriptions(mut self, count: usize) -> Self {
        self.config.ws.max_subscriptions = count;
        self
    }

    /// The most WebSocket connections at once (default 25,000); more get `503` before the
    /// upgrade.
    pub fn ws_max_connections(mut self, count: usize) -> Self {
        self.config.ws.max_connections = count;
        self
    }

    /// The slow-consumer policy: each connection queues at most `messages` outgoing messages
    /// (default 256); when the queue stays full for `timeout` (default 10 s) because the client
    /// stopped reading, the connection is closed. Producers wait meanwhile, so a stalled client
    /// cannot grow server memory; subscriptions fed by an [`crate::EventBus`] that fall too far
    /// behind end with `PRECONDITION_FAILED` and resume from their last id.
    pub fn ws_send_queue(mut self, messages: usize, timeout: Duration) -> Self {
        self.config.ws.send_queue = messages.max(1);
        self.config.ws.slow_consumer_timeout = timeout;
        self
    }

    /// Server keep-alive: send the text frame `PING` after `ping_every` without any incoming
    /// frame, and terminate the connection if nothing arrives within `pong_wait` after it
    /// (default: off; clients' own `PING`s are always answered with `PONG`).
    pub fn ws_keep_alive(mut self, ping_every: Duration, pong_wait: Duration) -> Self {
        self.config.ws.keep_alive = Some((ping_every, pong_wait));
        self
    }

    /// Accept WebSocket upgrades only from these `Origin`s (against cross-site WebSocket
    /// hijacking; requests without an `Origin`, i.e. not from a browser, are accepted).
    /// Default: any origin.
    pub fn ws_allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.ws.allowed_origins = Some(origins.into_iter().map(Into::into).collect());
        self
    }

    /// Accept requests from browsers only from these `Origin`s, on every transport (HTTP,
    /// streams, SSE, and WebSocket unless [`Server::ws_allowed_origins`] says otherwise);
    /// others get `FORBIDDEN`. Requests without an `Origin` (not from a browser) are accepted.
    /// Default: any origin. See the security notes in the README.
    pub fn allowed_origins<I, S>(mut self, origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.config.allowed_origins = Some(origins.into_iter().map(Into::into).collect());
        self
    }

    /// How long graceful shutdown waits for WebSocket clients to leave after being told to
    /// reconnect (default 5 s); the rest are then closed.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.ws.shutdown_grace = grace;
        self
    }

    /// A handle to broadcast `reconnect` to, or close, the server's WebSocket connections.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            connections: Arc::clone(&self.connections),
            sse_streams: Arc::clone(&self.sse_streams),
        }
    }

    /// JSONL keep-alive for streamed batches (`httpBatchStreamLink`): write a single space
    /// after `every` without a line, so proxies keep a slow stream open (default: off).
    pub fn jsonl_ping(mut self, every: Duration) -> Self {
        self.config.http.jsonl_ping = Some(every);
        self
    }

    /// SSE keep-alive: send a `ping` event after `every` without any event (default: off).
    /// Must be shorter than [`Server::sse_reconnect_after_inactivity`] when both are set.
    pub fn sse_ping(mut self, every: Duration) -> Self {
        self.config.sse.ping = Some(every);
        self
    }

    /// Tells SSE clients (in `connected`) to recreate their stream, resuming from their last
    /// event id, after `after` without any event (default: off). Pair it with
    /// [`Server::sse_ping`] so quiet subscriptions are not recreated.
    pub fn sse_reconnect_after_inactivity(mut self, after: Duration) -> Self {
        self.config.sse.reconnect_after_inactivity = Some(after);
        self
    }

    /// Ends every SSE stream after `max` (without `return`), so the client reconnects with
    /// `Last-Event-ID` (default: no limit). Spreads long-lived streams over instances.
    pub fn sse_max_duration(mut self, max: Duration) -> Self {
        self.config.sse.max_duration = Some(max);
        self
    }

    /// The most SSE subscription streams at once (default 10,000); more get
    /// `TOO_MANY_REQUESTS` before the stream starts.
    pub fn sse_max_streams(mut self, count: usize) -> Self {
        self.config.sse.max_streams = count;
        self
    }
}

impl<Ctx: Clone + Send + Sync + 'static> Server<Ctx> {
    /// The server as a `tower::Service`, to mount under axum or serve with hyper yourself.
    ///
    /// # Panics
    /// If the SSE ping interval is not shorter than the SSE inactivity timeout (clients would
    /// reconnect between pings).
    pub fn into_service(self) -> HttpService {
        let ServerConfig {
            allowed_origins,
            http,
            mut ws,
            sse,
            policy,
        } = self.config;
        if ws.allowed_origins.is_none() {
            ws.allowed_origins.clone_from(&allowed_origins);
        }
        if let (Some(ping), Some(inactivity)) = (sse.ping, sse.reconnect_after_inactivity) {
            assert!(
                ping < inactivity,
                "sse_ping ({ping:?}) must be shorter than sse_reconnect_after_inactivity ({inactivity:?})"
            );
        }
        let dispatcher = Dispatcher::new(
            self.router.procedures(),
            self.router.options(),
            self.create_context,
            policy,
        );
        let endpoint = http.endpoint.clone();
        let separator = http.path_separator;
        if separator != '.'
            && let Some(path) = self.router.paths().find(|p| p.contains(separator))
        {
            panic!(
                "procedure path `{path}` contains the path separator {separator:?}: rename it or choose another `path_separator`"
            );
        }
        HttpService::new(
            endpoint,
            allowed_origins,
            dispatcher.clone(),
            HttpTransport::new(dispatcher.clone(), http),
            WsTransport::new(dispatcher.clone(), ws, self.connections),
            SseTransport::new(dispatcher, sse, self.sse_streams),
        )
    }

    /// Binds a TCP address (port 0 picks a free port; see [`Listening::local_addr`]).
    pub async fn bind(self, addr: impl ToSocketAddrs) -> io::Result<Listening> {
        let listener = TcpListener::bind(addr).await?;
        Ok(self.listen(listener))
    }

    /// Serves on an already bound listener.
    pub fn listen(self, listener: TcpListener) -> Listening {
        let connections = Arc::clone(&self.connections);
        let sse_streams = Arc::clone(&self.sse_streams);
        let shutdown_grace = self.config.ws.shutdown_grace;
        let header_read_timeout = self.config.http.header_read_timeout;
        Listening {
            listener,
            service: self.into_service(),
            connections,
            sse_streams,
            shutdown_grace,
            header_read_timeout,
        }
    }
}

/// A bound server, ready to run.
#[derive(Debug)]
pub struct Listening {
    listener: TcpListener,
    service: HttpService,
    connections: Arc<Connections>,
    sse_streams: Arc<SseStreams>,
    shutdown_grace: Duration,
    header_read_timeout: Duration,
}

impl Listening {
    /// The address actually bound (the real port when port 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        // A bound TCP listener always has an address.
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// Serves until the process ends.
    pub async fn run(self) -> io::Result<()> {
        self.run_until(std::future::pending()).await
    }

    /// Serves until `signal` completes, then stops accepting, lets in-flight requests finish
    /// (up to 30 s) and returns.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> io::Result<()> {
        let Listening {
            listener,
            service,
            connections,
            sse_streams,
            shutdown_grace,
            header_read_timeout,
        } = self;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // Connections whose headers do not arrive in time, idle keep-alive connections and
        // half-open ones are closed by one sweep (`idle`), not by a hyper timer per request.
        builder.http1().header_read_timeout(None);
        builder.http2().timer(TokioTimer::new());
        let idle = Sweeping::start(header_read_timeout);
        let graceful = GracefulShutdown::new();
        let mut signal = std::pin::pin!(signal);
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                () = &mut signal => break,
            };
            let _ = stream.set_nodelay(true);
            let service = service.clone();
            let activity = Arc::new(Activity::default());
            let requests = Arc::clone(&activity);
            let hyper_service =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let service = service.clone();
                    let in_flight = requests.start();
                    async move {
                        let mut response = service.handle(req, Some(peer)).await;
                        response.body_mut().hold(in_flight);
                        Ok::<_, Infallible>(response)
                    }
                });
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), hyper_service);
            let conn = graceful.watch(conn.into_owned());
            idle.spawn(activity, async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
            });
        }
        drop(listener);
        // SSE streams end without `return`, so their clients reconnect (to another instance,
        // after a deploy) and resume with `Last-Event-ID`. WebSocket clients are told to
        // reconnect; those still here after the grace period are closed.
        sse_streams.close();
        if connections.count() > 0 {
            connections.broadcast(Control::Reconnect);
            if !connections.drained(shutdown_grace).await {
                connections.broadcast(Control::Drop);
                connections.drained(Duration::from_secs(1)).await;
            }
        }
        if tokio::time::timeout(Duration::from_secs(30), graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("graceful shutdown timed out; dropping remaining connections");
        }
        Ok(())
    }
}
