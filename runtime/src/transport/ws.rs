//! tRPC over WebSocket (spec §7): the upgrade on the HTTP port, the JSON-RPC-ish messages,
//! subscriptions, keep-alive, limits, and the `reconnect` broadcast.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::header::{
    CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use http::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::sync::{Notify, Semaphore, broadcast, mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::context::{RequestInfo, TransportKind};
use crate::error::{Error, ErrorCode};
use crate::input;
use crate::middleware::ReplyKind;
use crate::procedure::ProcedureKind;
use crate::server::Shared;
use crate::subscription::{EncodedEvent, EventStream};
use crate::transport::http::{Body, HttpService, PeerAddr};

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
        }
    }
}

/// What the server can tell every WebSocket connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Send `{"id":null,"method":"reconnect"}` and keep serving.
    Reconnect,
    /// Close at once.
    Drop,
}

/// The live WebSocket connections of one server.
#[derive(Debug)]
pub(crate) struct Connections {
    count: AtomicUsize,
    control: broadcast::Sender<Control>,
    idle: Notify,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            count: AtomicUsize::new(0),
            control: broadcast::channel(4).0,
            idle: Notify::new(),
        }
    }
}

impl Connections {
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub(crate) fn broadcast(&self, control: Control) {
        let _ = self.control.send(control);
    }

    /// Waits until no connection is left, or `timeout` passes; returns whether all closed.
    pub(crate) async fn drained(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let idle = self.idle.notified();
                if self.count() == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

/// Decrements the connection count when a connection ends, however it ends.
struct Slot(Arc<Connections>);

impl Drop for Slot {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

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

impl<Ctx: Clone + Send + Sync + 'static> HttpService<Ctx> {
    /// Answers an upgrade request with 101 and serves the connection on the upgraded socket.
    pub(crate) fn upgrade<B: Send + 'static>(&self, mut req: Request<B>) -> Response<Body> {
        let shared = Arc::clone(self.shared());
        let config = &shared.config.ws;
        let key = req.headers().get(SEC_WEBSOCKET_KEY).cloned();
        let version_ok = req
            .headers()
            .get(SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
        let Some(key) = key.filter(|_| version_ok) else {
            return self.error_response(
                &Error::bad_request("Bad WebSocket handshake: `Sec-WebSocket-Key` and `Sec-WebSocket-Version: 13` are required"),
                None,
            );
        };
        if let (Some(allowed), Some(origin)) = (
            &config.allowed_origins,
            req.headers().get(http::header::ORIGIN),
        ) {
            let origin = origin.to_str().unwrap_or("");
            if !allowed.iter().any(|a| a == origin) {
                return self.error_response(
                    &Error::new(
                        ErrorCode::Forbidden,
                        format!("WebSocket connections from origin {origin:?} are not allowed"),
                    ),
                    None,
                );
            }
        }
        let connections = Arc::clone(&shared.connections);
        if connections.count.fetch_add(1, Ordering::SeqCst) >= config.max_connections {
            drop(Slot(Arc::clone(&connections)));
            return self.error_response(
                &Error::new(
                    ErrorCode::ServiceUnavailable,
                    "Too many WebSocket connections; try again later",
                ),
                None,
            );
        }
        let slot = Slot(connections);
        let wants_params = form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .any(|(k, v)| k == "connectionParams" && v == "1");
        let peer = req.extensions().get::<PeerAddr>().map(|p| p.0);
        let info = RequestInfo::new(
            req.method().clone(),
            req.uri().clone(),
            req.headers().clone(),
            peer,
        )
        .with_transport(TransportKind::WebSocket);
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(e) => {
                    tracing::debug!(error = %e, "WebSocket upgrade failed");
                    return;
                }
            };
            let ws_config = WebSocketConfig::default()
                .read_buffer_size(1024)
                .write_buffer_size(0)
                .max_message_size(Some(shared.config.ws.max_message_size))
                .max_frame_size(Some(shared.config.ws.max_message_size));
            let socket = WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                Some(ws_config),
            )
            .await;
            serve_connection(shared, Box::new(socket), info, wants_params).await;
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
}

/// The per-connection outbox: a bounded queue drained by the writer task. A client that stops
/// reading fills it; a send that waits longer than the slow-consumer timeout closes the
/// connection, so a stalled peer cannot grow server memory.
#[derive(Clone)]
struct Outbox {
    sender: mpsc::Sender<Out>,
    timeout: Duration,
    closing: watch::Sender<bool>,
}

impl Outbox {
    async fn send(&self, text: String) -> bool {
        // Fast path without a timer: the queue has room.
        self.push(Out::Text(text.into())).await
    }

    async fn push(&self, out: Out) -> bool {
        match self.sender.try_send(out) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
            // Boxed: the rare slow path does not inflate every caller's future.
            Err(mpsc::error::TrySendError::Full(message)) => {
                Box::pin(self.send_slow(message)).await
            }
        }
    }

    async fn send_slow(&self, message: Out) -> bool {
        match tokio::time::timeout(self.timeout, self.sender.send(message)).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                tracing::warn!(
                    "closing a WebSocket connection whose client stopped reading (slow consumer)"
                );
                let _ = self.closing.send(true);
                false
            }
        }
    }
}

/// What the connection's writer (the pump) is asked to do.
enum Out {
    /// Send a text frame.
    Text(Utf8Bytes),
    /// Start streaming a subscription's events (if it was not stopped meanwhile). Boxed: the
    /// queue's slots are sized for the largest variant, and text frames are the common case.
    Start(Box<Start>),
    /// Drop a subscription's stream.
    Stop { key: String },
}

/// A subscription whose setup succeeded.
struct Start {
    key: String,
    generation: u64,
    reply: ReplyTo,
    path: Arc<str>,
    events: EventStream,
}

/// Live subscriptions of a connection: client id → generation (ids may be reused).
type Registry = Arc<Mutex<HashMap<String, u64>>>;

fn unregister(registry: &Registry, key: &str, generation: u64) {
    if let Ok(mut live) = registry.lock()
        && live.get(key) == Some(&generation)
    {
        live.remove(key);
    }
}

/// One subscription's events, tagged for the pump; `None` marks the natural end.
type Tagged = (
    Arc<(String, u64, ReplyTo, Arc<str>)>,
    Option<Result<EncodedEvent, Error>>,
);

/// The writer task: one per connection. It sends queued frames and polls every live
/// subscription stream itself, so an event costs one task wake-up and one write. A write that
/// does not complete within the slow-consumer timeout closes the connection.
async fn pump<Ctx, S>(
    shared: Arc<Shared<Ctx>>,
    mut sink: futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
    mut queue: mpsc::Receiver<Out>,
    registry: Registry,
    closing: watch::Sender<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let timeout = shared.config.ws.slow_consumer_timeout;
    let policy = &shared.config.policy;
    // Created on the first subscription: an idle connection should not pay for it.
    let mut streams: Option<
        futures_util::stream::SelectAll<futures_util::stream::BoxStream<'static, Tagged>>,
    > = None;
    let mut aborts: HashMap<String, futures_util::stream::AbortHandle> = HashMap::new();
    let write = |text: String| Message::Text(text.into());
    loop {
        let frame = tokio::select! {
            biased;
            out = queue.recv() => match out {
                None => break,
                Some(Out::Text(text)) => Message::Text(text),
                Some(Out::Stop { key }) => {
                    if let Some(handle) = aborts.remove(&key) {
                        handle.abort();
                    }
                    continue;
                }
                Some(Out::Start(start)) => {
                    let Start { key, generation, reply, path, events } = *start;
                    let live = registry.lock().map(|l| l.get(&key) == Some(&generation)).unwrap_or(false);
                    if !live {
                        continue;
                    }
                    let tag = Arc::new((key.clone(), generation, reply.clone(), path));
                    let tagged = events.map(Some).chain(futures_util::stream::once(async { None }));
                    let (tagged, handle) = futures_util::stream::abortable(tagged);
                    if let Some(old) = aborts.insert(key, handle) {
                        old.abort();
                    }
                    streams
                        .get_or_insert_with(futures_util::stream::SelectAll::new)
                        .push(Box::pin(tagged.map(move |item| (Arc::clone(&tag), item))));
                    write(reply.frame(r#""result":{"type":"started"}"#))
                }
            },
            Some((tag, item)) = async { streams.as_mut()?.next().await }, if streams.as_ref().is_some_and(|s| !s.is_empty()) => {
                let (key, generation, reply, path) = &*tag;
                match item {
                    Some(Ok(event)) => write(match &event.id {
                        Some(id) => {
                            let id = serde_json::to_string(id).unwrap_or_default();
                            reply.frame(&format!(
                                r#""result":{{"type":"data","data":{{"id":{id},"data":{}}},"id":{id}}}"#,
                                event.data.get()
                            ))
                        }
                        None => reply.frame(&format!(r#""result":{{"type":"data","data":{}}}"#, event.data.get())),
                    }),
                    Some(Err(e)) => {
                        if let Some(handle) = aborts.remove(key) {
                            handle.abort();
                        }
                        unregister(&registry, key, *generation);
                        let error = reply.frame(&format!(r#""error":{}"#, policy.error_shape(&e, Some(path))));
                        if !send_within(&mut sink, write(error), timeout, &closing).await {
                            break;
                        }
                        write(reply.frame(r#""result":{"type":"stopped"}"#))
                    }
                    None => {
                        aborts.remove(key);
                        unregister(&registry, key, *generation);
                        write(reply.frame(r#""result":{"type":"stopped"}"#))
                    }
                }
            }
        };
        if !send_within(&mut sink, frame, timeout, &closing).await {
            break;
        }
    }
    let _ = sink.close().await;
}

/// Sends a frame; if the socket is not ready at once, waits at most `timeout` (the slow
/// consumer policy) before asking the connection to close.
async fn send_within<S>(
    sink: &mut futures_util::stream::SplitSink<WebSocketStream<S>, Message>,
    frame: Message,
    timeout: Duration,
    closing: &watch::Sender<bool>,
) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut send = std::pin::pin!(sink.send(frame));
    // The common case completes on the first poll, without arming a timer.
    let first = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(std::future::Future::poll(send.as_mut(), cx))
    })
    .await;
    if let std::task::Poll::Ready(result) = first {
        return result.is_ok();
    }
    // Boxed: the timer lives only while a write is stuck.
    match Box::pin(tokio::time::timeout(timeout, send)).await {
        Ok(result) => result.is_ok(),
        Err(_) => {
            tracing::warn!(
                "closing a WebSocket connection whose client stopped reading (slow consumer)"
            );
            let _ = closing.send(true);
            false
        }
    }
}

/// One incoming message (spec §7.2).
#[derive(Deserialize)]
struct Incoming {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    jsonrpc: Option<Value>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    params: Option<Params>,
}

#[derive(Deserialize)]
struct Params {
    path: String,
    #[serde(default)]
    input: Option<Box<RawValue>>,
    #[serde(default, rename = "lastEventId")]
    last_event_id: Option<String>,
}

/// Echoes the request's `id` (and `jsonrpc`) on every response.
#[derive(Clone)]
struct ReplyTo {
    id: String,
    jsonrpc: bool,
}

impl ReplyTo {
    fn frame(&self, body: &str) -> String {
        let jsonrpc = if self.jsonrpc {
            r#","jsonrpc":"2.0""#
        } else {
            ""
        };
        format!(r#"{{"id":{}{jsonrpc},{body}}}"#, self.id)
    }
}

struct Conn<Ctx> {
    shared: Arc<Shared<Ctx>>,
    outbox: Outbox,
    subscriptions: Registry,
    generations: std::sync::atomic::AtomicU64,
    in_flight: Arc<Semaphore>,
}

fn null_error(shared: &Shared<impl Sized>, error: &Error) -> String {
    format!(
        r#"{{"id":null,"error":{}}}"#,
        shared.config.policy.error_shape(error, None)
    )
}

/// Reads `{"method":"connectionParams","data":{…}|null}` (spec §7.1).
fn connection_params(text: &str) -> Option<Option<std::collections::BTreeMap<String, String>>> {
    #[derive(Deserialize)]
    struct Frame {
        method: String,
        data: Option<std::collections::BTreeMap<String, String>>,
    }
    let frame: Frame = serde_json::from_str(text).ok()?;
    (frame.method == "connectionParams").then_some(frame.data)
}

async fn serve_connection<Ctx: Clone + Send + Sync + 'static, S>(
    shared: Arc<Shared<Ctx>>,
    socket: Box<WebSocketStream<S>>,
    info: RequestInfo,
    wants_params: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let config = &shared.config.ws;
    let (sink, mut stream) = (*socket).split();
    let (sender, receiver) = mpsc::channel::<Out>(config.send_queue);
    let (closing, mut closing_rx) = watch::channel(false);
    let registry: Registry = Arc::default();
    let mut writer = tokio::spawn(pump(
        Arc::clone(&shared),
        sink,
        receiver,
        Arc::clone(&registry),
        closing.clone(),
    ));
    let outbox = Outbox {
        sender,
        timeout: config.slow_consumer_timeout,
        closing,
    };
    let mut control = shared.connections.control.subscribe();
    let conn = Conn {
        shared: Arc::clone(&shared),
        outbox: outbox.clone(),
        subscriptions: registry,
        generations: std::sync::atomic::AtomicU64::new(0),
        in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
    };

    // Boxed: only needed until the context exists.
    let mut info = Some(Box::new(info));
    let mut ctx: Option<Ctx> = None;
    // A context refused at connection time: say why, then close (spec §7.1).
    let mut open = true;
    if !wants_params && let Some(info) = info.take() {
        match (shared.create_context)(*info).await {
            Ok(c) => ctx = Some(c),
            Err(e) => {
                outbox.send(null_error(&shared, &e)).await;
                open = false;
            }
        }
    }

    let mut last_seen = tokio::time::Instant::now();
    let mut pinged = false;
    loop {
        if !open {
            break;
        }
        // Keep-alive: ping after `ping_every` of silence, give up `pong_wait` after that.
        let deadline = match config.keep_alive {
            Some((ping_every, pong_wait)) if pinged => last_seen + ping_every + pong_wait,
            Some((ping_every, _)) => last_seen + ping_every,
            None => tokio::time::Instant::now() + Duration::from_secs(86_400),
        };
        let frame = tokio::select! {
            frame = stream.next() => frame,
            control = control.recv() => {
                match control {
                    Ok(Control::Reconnect) => {
                        outbox.send(r#"{"id":null,"method":"reconnect"}"#.to_owned()).await;
                        continue;
                    }
                    Ok(Control::Drop) | Err(broadcast::error::RecvError::Closed) => break,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                }
            }
            _ = closing_rx.changed() => break,
            () = tokio::time::sleep_until(deadline) => {
                if pinged {
                    tracing::debug!("WebSocket peer did not answer the keep-alive ping; terminating");
                    break;
                }
                pinged = true;
                let _ = outbox.sender.try_send(Out::Text(Utf8Bytes::from_static("PING")));
                continue;
            }
        };
        let Some(Ok(frame)) = frame else { break };
        last_seen = tokio::time::Instant::now();
        pinged = false;
        let text = match frame {
            Message::Text(text) => text,
            Message::Binary(_) => {
                let e = Error::new(
                    ErrorCode::ParseError,
                    "Binary frames are not supported: send JSON text frames",
                );
                outbox.send(null_error(&shared, &e)).await;
                continue;
            }
            Message::Close(_) => break,
            // Protocol-level pings are answered by tungstenite itself.
            _ => continue,
        };
        match text.as_str() {
            "PING" => {
                outbox.send("PONG".to_owned()).await;
                continue;
            }
            "PONG" => continue,
            _ => {}
        }
        if ctx.is_none() {
            // `?connectionParams=1`: the first frame must be the connection params.
            let Some(info) = info.take().map(|b| *b) else {
                break;
            };
            match connection_params(text.as_str()) {
                Some(params) => {
                    match (shared.create_context)(info.with_connection_params(params)).await {
                        Ok(c) => {
                            ctx = Some(c);
                            continue;
                        }
                        Err(e) => {
                            outbox.send(null_error(&shared, &e)).await;
                            break;
                        }
                    }
                }
                None => {
                    let e = Error::new(ErrorCode::ParseError, "Invalid connection params shape");
                    outbox.send(null_error(&shared, &e)).await;
                    // Requests that were waiting for the context fail with the same error.
                    for message in messages(text.as_str()) {
                        if let Ok(Incoming {
                            id: Some(id),
                            params: Some(params),
                            jsonrpc,
                            ..
                        }) = serde_json::from_value::<Incoming>(message)
                        {
                            let reply = ReplyTo {
                                id: id.to_string(),
                                jsonrpc: jsonrpc.is_some(),
                            };
                            let shape = shared.config.policy.error_shape(&e, Some(&params.path));
                            outbox
                                .send(reply.frame(&format!(r#""error":{shape}"#)))
                                .await;
                        }
                    }
                    break;
                }
            }
        }
        let Some(ctx) = ctx.as_ref() else { break };
        let parsed: Result<Value, _> = serde_json::from_str(text.as_str());
        let Ok(parsed) = parsed else {
            let e = Error::new(
                ErrorCode::ParseError,
                format!(
                    "Invalid JSON: {}",
                    parsed.err().map(|e| e.to_string()).unwrap_or_default()
                ),
            );
            outbox.send(null_error(&shared, &e)).await;
            continue;
        };
        let batch = match parsed {
            Value::Array(items) => items,
            single => vec![single],
        };
        for message in batch {
            // Boxed: the connection task stays small while it waits (memory per idle socket).
            Box::pin(conn.handle(ctx, message)).await;
        }
    }

    // Closing: the pump drops every subscription's stream when it ends.
    let dropped = *closing_rx.borrow() || matches!(control.try_recv(), Ok(Control::Drop));
    drop(conn);
    drop(outbox);
    if dropped {
        writer.abort();
    } else if tokio::time::timeout(Duration::from_secs(2), &mut writer)
        .await
        .is_err()
    {
        // Let queued frames (e.g. a final error) go out, but never wait on a stalled peer.
        writer.abort();
    }
}

/// The messages of a frame: one object or an array of them.
fn messages(text: &str) -> Vec<Value> {
    match serde_json::from_str(text) {
        Ok(Value::Array(items)) => items,
        Ok(single) => vec![single],
        Err(_) => Vec::new(),
    }
}

impl<Ctx: Clone + Send + Sync + 'static> Conn<Ctx> {
    async fn handle(&self, ctx: &Ctx, message: Value) {
        let shared = &self.shared;
        let incoming: Incoming = match serde_json::from_value(message) {
            Ok(incoming) => incoming,
            Err(e) => {
                let e = Error::new(ErrorCode::ParseError, format!("Invalid message: {e}"));
                self.outbox.send(null_error(shared, &e)).await;
                return;
            }
        };
        if incoming.method.as_deref() == Some("connectionParams") && incoming.id.is_none() {
            // A repeated handshake frame: the context is already set.
            return;
        }
        let id = match incoming.id {
            Some(id @ (Value::Number(_) | Value::String(_))) => id,
            _ => {
                let e = Error::new(ErrorCode::ParseError, "`id` is required");
                self.outbox.send(null_error(shared, &e)).await;
                return;
            }
        };
        let reply = ReplyTo {
            id: id.to_string(),
            jsonrpc: incoming.jsonrpc.is_some(),
        };
        if incoming.jsonrpc.as_ref().is_some_and(|v| v != "2.0") {
            let e = Error::new(
                ErrorCode::ParseError,
                r#"`jsonrpc` must be "2.0" when present"#,
            );
            self.send_error(&reply, &e, None).await;
            return;
        }
        let kind = match incoming.method.as_deref() {
            Some("query") => ProcedureKind::Query,
            Some("mutation") => ProcedureKind::Mutation,
            Some("subscription") => ProcedureKind::Subscription,
            Some("subscription.stop") => {
                let was_live = self
                    .subscriptions
                    .lock()
                    .ok()
                    .and_then(|mut s| s.remove(&reply.id))
                    .is_some();
                if was_live {
                    // The pump drops the stream (or never starts it, if setup is still running).
                    self.outbox
                        .push(Out::Stop {
                            key: reply.id.clone(),
                        })
                        .await;
                    self.outbox
                        .send(reply.frame(r#""result":{"type":"stopped"}"#))
                        .await;
                }
                return;
            }
            _ => {
                let e = Error::new(ErrorCode::ParseError, "Invalid procedure type");
                self.outbox.send(null_error(shared, &e)).await;
                return;
            }
        };
        let Some(params) = incoming.params else {
            let e = Error::new(ErrorCode::ParseError, "`params.path` is required");
            self.send_error(&reply, &e, None).await;
            return;
        };
        let path = params.path;
        let Some(procedure) = shared
            .router
            .get(&path)
            .filter(|p| p.kind() == kind)
            .cloned()
        else {
            let e = Error::not_found(format!("No \"{kind}\"-procedure on path \"{path}\""));
            self.send_error(&reply, &e, Some(&path)).await;
            return;
        };
        let options = shared.call_options();

        if kind != ProcedureKind::Subscription {
            // Bounded concurrency per connection: a flood waits here, applying backpressure.
            let Ok(permit) = Arc::clone(&self.in_flight).acquire_owned().await else {
                return;
            };
            let shared = Arc::clone(shared);
            let outbox = self.outbox.clone();
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let result = shared
                    .router
                    .call_raw(&path, &procedure, ctx, params.input, options)
                    .await;
                let frame = match result {
                    Ok(reply_value) => match reply_value.json_ref() {
                        Some(data) => reply.frame(&format!(
                            r#""result":{{"type":"data","data":{}}}"#,
                            data.get()
                        )),
                        None => reply.frame(r#""result":{"type":"data"}"#),
                    },
                    Err(e) => reply.frame(&format!(
                        r#""error":{}"#,
                        shared.config.policy.error_shape(&e, Some(&path))
                    )),
                };
                outbox.send(frame).await;
                drop(permit);
            });
            return;
        }

        let input = match input::merge_last_event_id(params.input, params.last_event_id.as_deref())
        {
            Ok(input) => input,
            Err(e) => {
                self.send_error(&reply, &e, Some(&path)).await;
                return;
            }
        };
        enum Verdict {
            Started,
            Duplicate,
            TooMany,
        }
        let verdict = {
            let Ok(mut subscriptions) = self.subscriptions.lock() else {
                return;
            };
            if subscriptions.contains_key(&reply.id) {
                Verdict::Duplicate
            } else if subscriptions.len() >= shared.config.ws.max_subscriptions {
                Verdict::TooMany
            } else {
                let generation = self.generations.fetch_add(1, Ordering::Relaxed);
                subscriptions.insert(reply.id.clone(), generation);
                let task_shared = Arc::clone(shared);
                let outbox = self.outbox.clone();
                let registry = Arc::clone(&self.subscriptions);
                let ctx = ctx.clone();
                let reply = reply.clone();
                let path: Arc<str> = Arc::from(path.as_str());
                // Setup (middleware, validation, the handler's own setup) runs on its own; the
                // stream then goes to the pump.
                tokio::spawn(async move {
                    let setup = task_shared
                        .router
                        .call_raw(&path, &procedure, ctx, input, options)
                        .await;
                    match setup {
                        Ok(crate::middleware::Reply(ReplyKind::Stream(events))) => {
                            let key = reply.id.clone();
                            outbox
                                .push(Out::Start(Box::new(Start {
                                    key,
                                    generation,
                                    reply,
                                    path,
                                    events,
                                })))
                                .await;
                        }
                        other => {
                            unregister(&registry, &reply.id, generation);
                            let e = match other {
                                Err(e) => e,
                                Ok(_) => Error::internal("a subscription did not produce a stream"),
                            };
                            let shape = task_shared.config.policy.error_shape(&e, Some(&path));
                            outbox
                                .send(reply.frame(&format!(r#""error":{shape}"#)))
                                .await;
                            outbox
                                .send(reply.frame(r#""result":{"type":"stopped"}"#))
                                .await;
                        }
                    }
                });
                Verdict::Started
            }
        };
        match verdict {
            Verdict::Started => {}
            Verdict::Duplicate => {
                let e = Error::bad_request(format!("Duplicate id {}", reply.id));
                self.send_error(&reply, &e, Some(&path)).await;
            }
            Verdict::TooMany => {
                let e = Error::new(
                    ErrorCode::TooManyRequests,
                    format!(
                        "Too many subscriptions on this connection (at most {})",
                        shared.config.ws.max_subscriptions
                    ),
                );
                self.send_error(&reply, &e, Some(&path)).await;
            }
        }
    }

    async fn send_error(&self, reply: &ReplyTo, error: &Error, path: Option<&str>) {
        let shape = self.shared.config.policy.error_shape(error, path);
        self.outbox
            .send(reply.frame(&format!(r#""error":{shape}"#)))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_connection_task_is_small() {
        let router = crate::Router::<()>::new();
        let server = crate::Server::new(router).into_service();
        let shared = Arc::clone(server.shared());
        let (a, _b) = tokio::io::duplex(64);
        let socket = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let info = RequestInfo::new(
            http::Method::GET,
            http::Uri::from_static("/"),
            http::HeaderMap::new(),
            None,
        );
        let future = serve_connection(Arc::clone(&shared), Box::new(socket), info, false);
        let size = std::mem::size_of_val(&future);
        eprintln!("serve_connection future: {size} bytes");
        assert!(
            size < 2048,
            "the per-connection future grew to {size} bytes"
        );

        let (a, _b) = tokio::io::duplex(64);
        let socket = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let (sink, _stream) = socket.split();
        let (_sender, receiver) = mpsc::channel(1);
        let pump = pump(
            shared,
            sink,
            receiver,
            Arc::default(),
            watch::channel(false).0,
        );
        let size = std::mem::size_of_val(&pump);
        eprintln!("pump future: {size} bytes");
        assert!(size < 1024, "the per-connection pump grew to {size} bytes");
        // The send queue allocates its slots eagerly: keep them small.
        assert!(
            std::mem::size_of::<Out>() <= 40,
            "Out grew to {} bytes",
            std::mem::size_of::<Out>()
        );
    }
}
