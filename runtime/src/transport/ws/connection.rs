//! One WebSocket connection: the context (at once, or after the connection-params frame),
//! the read loop with keep-alive and control messages, and each message dispatched.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use serde_json::value::RawValue;
use tokio::sync::{Semaphore, broadcast};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

use crate::call::{ProcedureKind, RawInput};
use crate::context::RequestInfo;
use crate::dispatch::{Context, Site, Via, Want};
use crate::error::{Error, ErrorCode};
use crate::protocol::ws::{self as wire, ReplyTo, Request};
use crate::transport::ws::Shared;
use crate::transport::ws::outbox::{Out, Outbox, Start, pump};
use crate::transport::ws::queue::{self, ClosingFlag};
use crate::transport::ws::registry::{self, Control, Subscriptions};

/// What the read side of a connection needs to answer messages.
struct Conn {
    shared: Arc<Shared>,
    outbox: Outbox,
    subscriptions: Subscriptions,
    generations: AtomicU64,
    in_flight: Arc<Semaphore>,
}

pub(super) async fn serve_connection<S>(
    shared: Arc<Shared>,
    socket: Box<WebSocketStream<S>>,
    info: RequestInfo,
    wants_params: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let config = &shared.config;
    // Moved out of its box at once: a box moved out of is freed only when its binding goes.
    let socket = *socket;
    let (sink, mut stream) = socket.split();
    let (sender, receiver) = queue::channel::<Out>(config.send_queue);
    let closing: ClosingFlag = Arc::default();
    let subscriptions: Subscriptions = Arc::default();
    let mut writer = tokio::spawn(pump(
        Arc::clone(&shared),
        sink,
        receiver,
        Arc::clone(&subscriptions),
        Arc::clone(&closing),
    ));
    let outbox = Outbox {
        sender,
        timeout: config.slow_consumer_timeout,
        closing: Arc::clone(&closing),
    };
    let mut control = shared.connections.subscribe();
    let conn = Conn {
        shared: Arc::clone(&shared),
        outbox: outbox.clone(),
        subscriptions,
        generations: AtomicU64::new(0),
        in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
    };

    // Boxed: only needed until the context exists.
    let mut info = Some(Box::new(info));
    let mut ctx: Option<Context> = None;
    // A context refused at connection time: say why, then close (spec §7.1).
    let mut open = true;
    let mut refused: Option<Error> = None;
    if !wants_params && let Some(info) = info.take() {
        // Boxed, like every cold await here: the connection task is sized by its largest
        // await, and it waits in the read loop for the rest of its life.
        match Box::pin(shared.dispatcher.create_context(*info)).await {
            Ok(c) => ctx = Some(c),
            Err(e) => {
                // Reported where it was produced, by the dispatcher.
                Box::pin(conn.send_shaped_without_id(&e)).await;
                open = false;
                refused = Some(e);
            }
        }
    }

    // Why the connection ends, as a close code (RFC 6455 §7.4.1), when there is one to send.
    let mut close: Option<u16> = (!open).then_some(close_code::POLICY);
    if let Some(code) = refused.as_ref().map(close_code::refusal) {
        close = Some(code);
    }
    let mut last_seen = tokio::time::Instant::now();
    let handshake_deadline = last_seen + config.handshake_timeout;
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
        // Until the connection params arrive, the handshake's own deadline applies.
        let deadline = if ctx.is_none() {
            deadline.min(handshake_deadline)
        } else {
            deadline
        };
        let frame = tokio::select! {
            frame = stream.next() => frame,
            control = control.recv() => {
                match control {
                    Ok(Control::Reconnect) => {
                        outbox.send(wire::RECONNECT.to_owned()).await;
                        continue;
                    }
                    Ok(Control::Drop) | Err(broadcast::error::RecvError::Closed) => {
                        close = Some(close_code::GOING_AWAY);
                        break;
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                }
            }
            () = closing.closed() => break,
            () = tokio::time::sleep_until(deadline) => {
                if ctx.is_none() && tokio::time::Instant::now() >= handshake_deadline {
                    tracing::debug!("WebSocket connection params did not arrive in time; closing");
                    close = Some(close_code::POLICY);
                    break;
                }
                if pinged {
                    tracing::debug!("WebSocket peer did not answer the keep-alive ping; terminating");
                    break;
                }
                pinged = true;
                outbox.try_send_static(wire::PING);
                continue;
            }
        };
        let frame = match frame {
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                close = close_code::of(&e);
                break;
            }
            None => break,
        };
        last_seen = tokio::time::Instant::now();
        pinged = false;
        let text = match frame {
            Message::Text(text) => text,
            Message::Binary(_) => {
                let e = Error::new(
                    ErrorCode::ParseError,
                    "Binary frames are not supported: send JSON text frames",
                );
                Box::pin(conn.send_error_without_id(&e)).await;
                continue;
            }
            Message::Close(_) => break,
            // Protocol-level pings are answered by tungstenite itself.
            _ => continue,
        };
        match text.as_str() {
            wire::PING => {
                outbox.send(wire::PONG.to_owned()).await;
                continue;
            }
            wire::PONG => continue,
            _ => {}
        }
        if ctx.is_none() {
            // `?connectionParams=1`: the first frame must be the connection params.
            let Some(info) = info.take().map(|b| *b) else {
                break;
            };
            match wire::connection_params(text.as_str()) {
                Some(params) => {
                    let created = shared
                        .dispatcher
                        .create_context(info.with_connection_params(params));
                    match Box::pin(created).await {
                        Ok(c) => {
                            ctx = Some(c);
                            continue;
                        }
                        Err(e) => {
                            Box::pin(conn.send_shaped_without_id(&e)).await;
                            close = Some(close_code::refusal(&e));
                            break;
                        }
                    }
                }
                None => {
                    let e = shared.dispatcher.reported(
                        Error::new(ErrorCode::ParseError, "Invalid connection params shape"),
                        None,
                    );
                    Box::pin(async {
                        conn.send_shaped_without_id(&e).await;
                        // Requests that were waiting for the context fail with the same error.
                        for (reply, path) in wire::pending_calls(text.as_str()) {
                            let shape = shared.dispatcher.policy().shape(&e, Some(&path));
                            outbox.send(reply.error(&shape)).await;
                        }
                    })
                    .await;
                    close = Some(close_code::POLICY);
                    break;
                }
            }
        }
        let Some(ctx) = ctx.as_ref() else { break };
        let messages = match wire::split_frame(text.as_str()) {
            Ok(messages) => messages,
            Err(e) => {
                Box::pin(conn.send_error_without_id(&e)).await;
                continue;
            }
        };
        for (index, message) in messages.iter().enumerate() {
            let index = (messages.len() > 1).then_some(index);
            // Boxed: the connection task stays small while it waits (memory per idle socket).
            Box::pin(conn.handle(ctx, message, index)).await;
        }
    }

    // Closing: the pump drops every subscription's stream when it ends. A slow consumer gets
    // no close frame (it is not reading); the others learn why.
    let stalled = closing.is_closed();
    Box::pin(async move {
        if let Some(code) = close.filter(|_| !stalled) {
            outbox.push(Out::Close(code)).await;
        }
        drop(conn);
        drop(outbox);
        if stalled {
            writer.abort();
        } else if tokio::time::timeout(Duration::from_secs(2), &mut writer)
            .await
            .is_err()
        {
            // Let queued frames (e.g. a final error) go out, but never wait on a stalled peer.
            writer.abort();
        }
    })
    .await;
}

/// The close codes the server sends (RFC 6455 §7.4.1).
mod close_code {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::error::ProtocolError;

    /// The server is shutting down (or dropping every connection).
    pub(super) const GOING_AWAY: u16 = 1001;
    /// A protocol violation (unmasked frame, reserved opcode, bad framing).
    pub(super) const PROTOCOL: u16 = 1002;
    /// A text frame that is not UTF-8.
    pub(super) const INVALID_DATA: u16 = 1007;
    /// A policy violation: bad connection params, a refused context, a handshake too slow.
    pub(super) const POLICY: u16 = 1008;
    /// A message over the size limit.
    pub(super) const TOO_BIG: u16 = 1009;
    /// The server failed (a create-context function that panicked or failed internally).
    pub(super) const INTERNAL: u16 = 1011;

    /// The code for a refused context: a policy refusal, unless the server itself failed.
    pub(super) fn refusal(error: &crate::error::Error) -> u16 {
        if error.code() == crate::error::ErrorCode::InternalServerError {
            INTERNAL
        } else {
            POLICY
        }
    }

    /// The code for a read error, when the peer can still be told.
    pub(super) fn of(error: &Error) -> Option<u16> {
        match error {
            Error::Capacity(_) => Some(TOO_BIG),
            Error::Utf8(_) => Some(INVALID_DATA),
            Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
            Error::Protocol(_) => Some(PROTOCOL),
            _ => None,
        }
    }
}

impl Conn {
    async fn handle(&self, ctx: &Context, message: &RawValue, index: Option<usize>) {
        match wire::parse_message(message) {
            Err(e) => self.send_error_without_id(&e).await,
            Ok(Request::ConnectionParams) => {}
            Ok(Request::Invalid(reply, e)) => self.send_error(&reply, e, None).await,
            Ok(Request::Stop(reply)) => self.stop(reply).await,
            Ok(Request::Call {
                reply,
                kind,
                path,
                input,
                last_event_id,
            }) => {
                if kind == ProcedureKind::Subscription {
                    self.subscribe(ctx, reply, path, input, last_event_id, index)
                        .await;
                } else {
                    self.call(ctx, reply, kind, path, input, index).await;
                }
            }
        }
    }

    /// A query or mutation: runs on its own task, at most `max_in_flight` at once per
    /// connection (a flood waits here, applying backpressure).
    async fn call(
        &self,
        ctx: &Context,
        reply: ReplyTo,
        kind: ProcedureKind,
        path: String,
        input: RawInput,
        index: Option<usize>,
    ) {
        let dispatcher = &self.shared.dispatcher;
        let entry = match dispatcher.lookup(&path, Want::Kind(kind)) {
            Ok(entry) => entry,
            Err(e) => {
                let shape = dispatcher.policy().shape(&e, Some(&path));
                self.outbox.send(reply.error(&shape)).await;
                return;
            }
        };
        let Ok(permit) = Arc::clone(&self.in_flight).acquire_owned().await else {
            return;
        };
        let call = dispatcher.call(entry, ctx, input, None, Site::of(Via::WebSocket, index));
        let shared = Arc::clone(&self.shared);
        let outbox = self.outbox.clone();
        tokio::spawn(async move {
            let frame = match call.await {
                Ok(value) => reply.data(value.json_ref()),
                Err(e) => reply.error(&shared.dispatcher.policy().shape(&e, Some(&path))),
            };
            outbox.send(frame).await;
            drop(permit);
        });
    }

    /// A subscription: registered under its id, set up on its own task (middleware,
    /// validation, the handler's own setup), then streamed by the pump.
    async fn subscribe(
        &self,
        ctx: &Context,
        reply: ReplyTo,
        path: String,
        input: RawInput,
        last_event_id: Option<String>,
        index: Option<usize>,
    ) {
        let shared = &self.shared;
        let dispatcher = &shared.dispatcher;
        let entry = match dispatcher.lookup(&path, Want::Kind(ProcedureKind::Subscription)) {
            Ok(entry) => entry,
            Err(e) => {
                let shape = dispatcher.policy().shape(&e, Some(&path));
                self.outbox.send(reply.error(&shape)).await;
                return;
            }
        };
        let refused = {
            let Ok(mut live) = self.subscriptions.lock() else {
                return;
            };
            if live.contains_key(reply.key()) {
                Some(Error::bad_request(format!("Duplicate id {}", reply.key())))
            } else if live.len() >= shared.config.max_subscriptions {
                Some(Error::new(
                    ErrorCode::TooManyRequests,
                    format!(
                        "Too many subscriptions on this connection (at most {})",
                        shared.config.max_subscriptions
                    ),
                ))
            } else {
                let generation = self.generations.fetch_add(1, Ordering::Relaxed);
                live.insert(reply.key().to_owned(), generation);
                let setup = dispatcher.call(
                    entry,
                    ctx,
                    input,
                    last_event_id.as_deref(),
                    Site::of(Via::WebSocket, index),
                );
                let outbox = self.outbox.clone();
                let subscriptions = Arc::clone(&self.subscriptions);
                let shared = Arc::clone(shared);
                let path = Arc::clone(entry.path());
                let reply = reply.clone();
                tokio::spawn(async move {
                    match setup.await.and_then(crate::call::Reply::into_events) {
                        Ok(events) => {
                            let start = Start {
                                generation,
                                reply,
                                path,
                                events,
                            };
                            outbox.push(Out::Start(Box::new(start))).await;
                        }
                        Err(e) => {
                            registry::unregister(&subscriptions, reply.key(), generation);
                            let shape = shared.dispatcher.policy().shape(&e, Some(&path));
                            outbox.send(reply.error(&shape)).await;
                            outbox.send(reply.stopped()).await;
                        }
                    }
                });
                None
            }
        };
        if let Some(e) = refused {
            self.send_error(&reply, e, Some(&path)).await;
        }
    }

    /// `subscription.stop`: the pump drops the stream (or never starts it, if setup is still
    /// running).
    async fn stop(&self, reply: ReplyTo) {
        let was_live = self
            .subscriptions
            .lock()
            .ok()
            .and_then(|mut live| live.remove(reply.key()))
            .is_some();
        if was_live {
            self.outbox
                .push(Out::Stop {
                    key: reply.key().to_owned(),
                })
                .await;
            self.outbox.send(reply.stopped()).await;
        }
    }

    /// Reports an error produced here and answers the request with it.
    async fn send_error(&self, reply: &ReplyTo, error: Error, path: Option<&str>) {
        let dispatcher = &self.shared.dispatcher;
        let error = dispatcher.reported(error, path);
        let shape = dispatcher.policy().shape(&error, path);
        self.outbox.send(reply.error(&shape)).await;
    }

    /// Reports an error produced here that belongs to no request, and sends it.
    async fn send_error_without_id(&self, error: &Error) {
        self.shared.dispatcher.policy().report(error, None);
        self.send_shaped_without_id(error).await;
    }

    /// Sends an already reported error that belongs to no request.
    async fn send_shaped_without_id(&self, error: &Error) {
        let shape = self.shared.dispatcher.policy().shape(error, None);
        self.outbox.send(wire::error_without_id(&shape)).await;
    }
}
