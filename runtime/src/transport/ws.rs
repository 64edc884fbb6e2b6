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
use tokio::task::AbortHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::context::{RequestInfo, TransportKind};
use crate::error::{Error, ErrorCode};
use crate::input;
use crate::middleware::ReplyKind;
use crate::procedure::ProcedureKind;
use crate::server::Shared;
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
    sender: mpsc::Sender<Utf8Bytes>,
    timeout: Duration,
    closing: watch::Sender<bool>,
}

impl Outbox {
    async fn send(&self, text: String) -> bool {
        // Fast path without a timer: the queue has room.
        match self.sender.try_send(text.into()) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
            // Boxed: the rare slow path does not inflate every caller's future.
            Err(mpsc::error::TrySendError::Full(message)) => {
                Box::pin(self.send_slow(message)).await
            }
        }
    }

    async fn send_slow(&self, message: Utf8Bytes) -> bool {
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
    #[serde(default)]
    data: Option<Value>,
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

type Subscriptions = Arc<Mutex<HashMap<String, AbortHandle>>>;

struct Conn<Ctx> {
    shared: Arc<Shared<Ctx>>,
    outbox: Outbox,
    subscriptions: Subscriptions,
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
    let (mut sink, mut stream) = (*socket).split();
    let (sender, mut receiver) = mpsc::channel::<Utf8Bytes>(config.send_queue);
    let (closing, mut closing_rx) = watch::channel(false);
    let mut writer = tokio::spawn(async move {
        while let Some(text) = receiver.recv().await {
            if sink.send(Message::Text(text)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let outbox = Outbox {
        sender,
        timeout: config.slow_consumer_timeout,
        closing,
    };
    let mut control = shared.connections.control.subscribe();
    let conn = Conn {
        shared: Arc::clone(&shared),
        outbox: outbox.clone(),
        subscriptions: Arc::default(),
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
                let _ = outbox.sender.try_send(Utf8Bytes::from_static("PING"));
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

    // Closing: every subscription's stream is dropped.
    let handles: Vec<AbortHandle> = conn
        .subscriptions
        .lock()
        .map(|mut s| s.drain().map(|(_, h)| h).collect())
        .unwrap_or_default();
    for handle in handles {
        handle.abort();
    }
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
            let _ = incoming.data;
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
                let handle = self
                    .subscriptions
                    .lock()
                    .ok()
                    .and_then(|mut s| s.remove(&reply.id));
                if let Some(handle) = handle {
                    handle.abort();
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
        let mut options = shared.router.options();
        options.validate_output |= shared.config.policy.dev_mode;

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
                let task_shared = Arc::clone(shared);
                let outbox = self.outbox.clone();
                let registry = Arc::clone(&self.subscriptions);
                let ctx = ctx.clone();
                let key = reply.id.clone();
                let reply = reply.clone();
                let path = path.clone();
                // The task's own cleanup waits for this lock, so its entry exists by then.
                let task = tokio::spawn(async move {
                    run_subscription(
                        &task_shared,
                        &outbox,
                        &reply,
                        &path,
                        &procedure,
                        ctx,
                        input,
                        options,
                    )
                    .await;
                    if let Ok(mut s) = registry.lock() {
                        s.remove(&reply.id);
                    }
                });
                subscriptions.insert(key, task.abort_handle());
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

#[allow(clippy::too_many_arguments)] // the pieces of one call, passed once
async fn run_subscription<Ctx: Clone + Send + Sync + 'static>(
    shared: &Shared<Ctx>,
    outbox: &Outbox,
    reply: &ReplyTo,
    path: &str,
    procedure: &crate::procedure::Procedure<Ctx>,
    ctx: Ctx,
    input: crate::procedure::RawInput,
    options: crate::middleware::CallOptions,
) {
    let error_frame = |e: &Error| {
        reply.frame(&format!(
            r#""error":{}"#,
            shared.config.policy.error_shape(e, Some(path))
        ))
    };
    let stopped = reply.frame(r#""result":{"type":"stopped"}"#);
    let events = match shared
        .router
        .call_raw(path, procedure, ctx, input, options)
        .await
    {
        Ok(crate::middleware::Reply(ReplyKind::Stream(events))) => events,
        Ok(_) => {
            let e = Error::internal("a subscription did not produce a stream");
            outbox.send(error_frame(&e)).await;
            return;
        }
        Err(e) => {
            outbox.send(error_frame(&e)).await;
            outbox.send(stopped).await;
            return;
        }
    };
    if !outbox
        .send(reply.frame(r#""result":{"type":"started"}"#))
        .await
    {
        return;
    }
    let mut events = events;
    while let Some(event) = events.next().await {
        let frame = match event {
            Ok(event) => match &event.id {
                Some(id) => {
                    let id = serde_json::to_string(id).unwrap_or_default();
                    reply.frame(&format!(
                        r#""result":{{"type":"data","data":{{"id":{id},"data":{}}},"id":{id}}}"#,
                        event.data.get()
                    ))
                }
                None => reply.frame(&format!(
                    r#""result":{{"type":"data","data":{}}}"#,
                    event.data.get()
                )),
            },
            Err(e) => {
                outbox.send(error_frame(&e)).await;
                outbox.send(stopped).await;
                return;
            }
        };
        if !outbox.send(frame).await {
            return;
        }
    }
    outbox.send(stopped).await;
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
        let future = serve_connection(shared, Box::new(socket), info, false);
        let size = std::mem::size_of_val(&future);
        eprintln!("serve_connection future: {size} bytes");
        assert!(
            size < 2048,
            "the per-connection future grew to {size} bytes"
        );
    }
}
