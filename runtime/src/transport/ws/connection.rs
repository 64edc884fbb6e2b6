//! One WebSocket connection: the context (at once, or after the connection-params frame),
//! the read loop with keep-alive and control messages, and each message dispatched.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;
use futures_util::StreamExt;
use tokio::sync::Semaphore;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::call::{InputText, ProcedureKind, RawInput, Reply};
use crate::context::RequestInfo;
use crate::dispatch::{Context, Dispatcher, Site, Via, Want};
use crate::error::{Error, ErrorCode};
use crate::protocol::ws::{self as wire, ReplyTo, Request};
use crate::transport::poll_once;
use crate::transport::ws::Shared;
use crate::transport::ws::outbox::{Io, Out, Outbox, Start, Transport, next_event, next_frame};
use crate::transport::ws::queue;
use crate::transport::ws::registry::{self, Control, Subscriptions};

/// What a connection needs to answer messages; the spawned calls and setups send through
/// `outbox`.
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
    // Boxed: an argument keeps its place in the task for the task's whole life.
    info: Box<RequestInfo>,
    wants_params: bool,
    // The control messages' epoch when the connection was accepted: any sent since count.
    epoch: u32,
) where
    S: Transport,
{
    let config = &shared.config;
    // One task per connection: it reads, and writes what it answers, what the outbox holds
    // and what the subscription streams yield.
    let (mut io, conn) = open(&shared, socket);
    // The server's control messages: checked by their epoch on every turn, and woken for by
    // `changed` in between (made before the first turn reads the epoch).
    let connections = &*shared.connections;
    let changed = connections.changed();
    let mut changed = std::pin::pin!(changed);
    let mut seen = epoch;
    // `changed` is polled once after it is (re)made, to hold this task's waker.
    let mut arm = true;

    // Only needed until the context exists.
    let mut info = Some(info);
    let mut ctx: Option<Context> = None;
    // Why the connection ends, as a close code (RFC 6455 §7.4.1), when there is one to send.
    let mut close: Option<u16> = None;
    // A context refused at connection time: say why, then close (spec §7.1).
    let mut open = true;
    if !wants_params && let Some(info) = info.take() {
        // Boxed, like every cold await here: the connection task is sized by its largest
        // await, and it waits in the read loop for the rest of its life.
        match Box::pin(shared.dispatcher.create_context(*info)).await {
            Ok(c) => ctx = Some(c),
            Err(e) => {
                // Reported where it was produced, by the dispatcher.
                Box::pin(conn.refuse(&mut io, &e, None)).await;
                open = false;
                close = Some(close_code::refusal(&e));
            }
        }
    }
    let mut last_seen = tokio::time::Instant::now();
    let handshake_deadline = last_seen + config.handshake_timeout;
    // Without keep-alive, the timer never fires (about 30 years out).
    let never = last_seen + Duration::from_secs(1 << 30);
    // When the keep-alive ping went out, if it is unanswered.
    let mut pinged: Option<tokio::time::Instant> = None;
    // One timer for the connection's life, moved only when its deadline changes: the loop
    // also turns for every frame it writes, and re-arming a timer each time costs.
    // Created at `never`: the first turn moves it to its real deadline and polls it.
    let timer = tokio::time::sleep_until(never);
    let mut timer = std::pin::pin!(timer);
    // The timer and `changed` stay registered with this task between polls, so a turn polls
    // the timer only when it was just moved or has fired, and looks at the control epoch with
    // one load: a turn for a frame in or out takes no lock and polls no timer.
    loop {
        if !open || io.broken {
            break;
        }
        // Scoped: what only this step needs does not take room in the task while it waits.
        let woke = {
            // Keep-alive: ping after `ping_every` of silence, give up `pong_wait` after that.
            let deadline = match (config.keep_alive, pinged) {
                // The pong is awaited from when the ping went out (the task may have been busy
                // writing past `last_seen + ping_every`).
                (Some((_, pong_wait)), Some(sent)) => sent + pong_wait,
                (Some((ping_every, _)), None) => last_seen + ping_every,
                (None, _) => never,
            };
            // Until the connection params arrive, the handshake's own deadline applies.
            let deadline = if ctx.is_none() {
                deadline.min(handshake_deadline)
            } else {
                deadline
            };
            let moved = timer.deadline() != deadline;
            if moved {
                timer.as_mut().reset(deadline);
            }
            let epoch = connections.epoch();
            let control = epoch != seen;
            if control {
                seen = epoch;
                changed.set(connections.changed());
                arm = true;
            }
            std::future::poll_fn(|cx| {
                if arm {
                    // Ready if a message came since it was made: the epoch says so too.
                    let _ = changed.as_mut().poll(cx);
                    arm = false;
                }
                if control {
                    return Poll::Ready(Some(Woke::Control(connections.latest())));
                }
                let fired = (moved || timer.is_elapsed()) && timer.as_mut().poll(cx).is_ready();
                Poll::Ready(fired.then_some(Woke::Timer))
            })
            .await
        };
        match woke {
            None => {}
            Some(Woke::Control(Control::Reconnect)) => {
                Box::pin(io.text(wire::RECONNECT.to_owned())).await;
                continue;
            }
            Some(Woke::Control(Control::Drop)) => {
                close = Some(close_code::GOING_AWAY);
                break;
            }
            Some(Woke::Timer) => {
                if ctx.is_none() && tokio::time::Instant::now() >= handshake_deadline {
                    tracing::debug!("WebSocket connection params did not arrive in time; closing");
                    close = Some(close_code::POLICY);
                    break;
                }
                if pinged.is_some() {
                    tracing::debug!(
                        "WebSocket peer did not answer the keep-alive ping; terminating"
                    );
                    break;
                }
                Box::pin(io.write(Message::Text(Utf8Bytes::from_static(wire::PING)))).await;
                pinged = Some(tokio::time::Instant::now());
                continue;
            }
        }
        let streaming = io.streaming();
        // Unbiased: tokio starts each turn at a random branch, so a subscription that always
        // has an event ready cannot starve reading (a `subscription.stop`) or the outbox
        // (other calls' replies); the timer and the server's control messages are handled
        // above, first.
        let frame = tokio::select! {
            Some(item) = next_event(&mut io.streams), if streaming => {
                if io.event(item) {
                    io.flush().await;
                }
                continue;
            }
            out = io.queue.recv() => {
                // The loop's own `conn` holds a sender: the queue ends only when a stalled
                // peer makes the connection close.
                let Some(out) = out else { break };
                if io.apply(out) {
                    io.flush().await;
                }
                continue;
            }
            frame = next_frame(&mut io.socket, &io.readable) => frame,
            // The timer or the control receiver woke this task: to the top of the loop.
            () = std::future::poll_fn(|_| {
                if timer.is_elapsed() || connections.epoch() != seen {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            }) => continue,
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
        pinged = None;
        let text = match frame {
            Message::Text(text) => text,
            Message::Binary(_) => {
                let e = Error::new(
                    ErrorCode::ParseError,
                    "Binary frames are not supported: send JSON text frames",
                );
                Box::pin(conn.send_error_without_id(&mut io, &e)).await;
                continue;
            }
            Message::Close(_) => break,
            // Protocol-level pings are answered by tungstenite itself.
            _ => continue,
        };
        match text.as_str() {
            wire::PING => {
                Box::pin(io.write(Message::Text(Utf8Bytes::from_static(wire::PONG)))).await;
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
                            Box::pin(conn.refuse(&mut io, &e, None)).await;
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
                    // Requests that were waiting for the context fail with the same error.
                    Box::pin(conn.refuse(&mut io, &e, Some(text.as_str()))).await;
                    close = Some(close_code::POLICY);
                    break;
                }
            }
        }
        let Some(ctx) = ctx.as_ref() else { break };
        // The calls' inputs are slices of the frame, never copied. (A text frame is UTF-8:
        // tungstenite checked it, and this checks it once more.)
        let Ok(frame) = ByteString::try_from(Bytes::from(text)) else {
            continue;
        };
        let messages = match wire::split_frame(&frame) {
            Ok(messages) => messages,
            Err(e) => {
                Box::pin(conn.send_error_without_id(&mut io, &e)).await;
                continue;
            }
        };
        for (index, message) in messages.iter().enumerate() {
            let index = (messages.len() > 1).then_some(index);
            // Boxed: the connection task stays small while it waits (memory per idle socket).
            Box::pin(conn.handle(&mut io, ctx, &frame, message, index)).await;
        }
    }

    // Closing: queued frames (e.g. a final error) go out, then the close frame, within 2 s
    // and never to a stalled peer; dropping `io` drops every subscription's stream.
    drop(conn);
    Box::pin(io.finish(close, Duration::from_secs(2))).await;
}

/// A connection's writing side, and what answers its messages.
fn open<S: Transport>(shared: &Arc<Shared>, socket: Box<WebSocketStream<S>>) -> (Io<S>, Conn) {
    let config = &shared.config;
    let (sender, receiver) = queue::channel::<Out>(config.send_queue);
    let subscriptions: Subscriptions = Arc::default();
    let io = Io::new(
        Arc::clone(shared),
        socket,
        receiver,
        Arc::clone(&subscriptions),
    );
    let conn = Conn {
        shared: Arc::clone(shared),
        outbox: Outbox {
            sender,
            timeout: config.slow_consumer_timeout,
        },
        subscriptions,
        generations: AtomicU64::new(0),
        in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
    };
    (io, conn)
}

/// Why a turn of a connection's loop stops before reading: the server's control message, or
/// the keep-alive or handshake timer.
enum Woke {
    Control(Control),
    Timer,
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
    /// Answers `message`, a message of `frame`.
    async fn handle<S>(
        &self,
        io: &mut Io<S>,
        ctx: &Context,
        frame: &ByteString,
        message: &str,
        index: Option<usize>,
    ) where
        S: Transport,
    {
        match wire::parse_message(message) {
            Err(e) => self.send_error_without_id(io, &e).await,
            Ok(Request::ConnectionParams) => {}
            Ok(Request::Invalid(reply, e)) => self.send_error(io, &reply, e, None).await,
            Ok(Request::Stop(reply)) => self.stop(io, reply).await,
            Ok(Request::Call {
                reply,
                kind,
                path,
                input,
                last_event_id,
            }) => {
                if kind == ProcedureKind::Subscription {
                    // A subscription keeps its input while it runs: its own copy, not a slice
                    // of the frame, which would keep the connection's read buffer (the frame
                    // is a part of it) alive as long. Calls end: they take the slice.
                    let input = input.map(|raw| InputText::written(raw.get().to_owned()));
                    self.subscribe(io, ctx, reply, &path, input, last_event_id, index)
                        .await;
                } else {
                    let input = input.map(|raw| InputText::within(frame, raw.get()));
                    self.call(io, ctx, reply, kind, &path, input, index).await;
                }
            }
        }
    }

    /// A query or mutation, at most `max_in_flight` at once per connection (a flood waits
    /// here, applying backpressure, while what is queued and streamed still goes out):
    /// answered from this task if it finishes on its first poll, else run on its own task.
    #[allow(clippy::too_many_arguments)]
    async fn call<S>(
        &self,
        io: &mut Io<S>,
        ctx: &Context,
        reply: ReplyTo,
        kind: ProcedureKind,
        path: &str,
        input: RawInput,
        index: Option<usize>,
    ) where
        S: Transport,
    {
        let dispatcher = &self.shared.dispatcher;
        // The refusal is written out before it is awaited, and what finished is dropped:
        // this future is boxed per message, and what it holds across an await is its size.
        let found = dispatcher
            .lookup(path, Want::Kind(kind))
            .map_err(|e| refusal(dispatcher, &reply, &e, path));
        let entry = match found {
            Ok(entry) => entry,
            Err(frame) => {
                io.text(frame).await;
                return;
            }
        };
        let Some(permit) = io.permit(&self.in_flight).await else {
            return;
        };
        let mut call = dispatcher.call(entry, ctx, input, None, Site::of(Via::WebSocket, index));
        // Polled once here: a call that finishes at once (most do) is answered straight from
        // this task, without a task of its own and a trip through the outbox.
        let frame = match poll_once(Pin::new(&mut call)).await {
            Poll::Ready(result) => Some(answer(dispatcher, &reply, path, result)),
            Poll::Pending => None,
        };
        if let Some(frame) = frame {
            drop((call, permit));
            io.text(frame).await;
            return;
        }
        let shared = Arc::clone(&self.shared);
        let outbox = self.outbox.clone();
        let path = Arc::clone(entry.path());
        tokio::spawn(async move {
            let frame = answer(&shared.dispatcher, &reply, &path, call.await);
            outbox.send(frame).await;
            drop(permit);
        });
    }

    /// A subscription: registered under its id, set up on its own task (middleware,
    /// validation, the handler's own setup), then streamed by the connection's task.
    #[allow(clippy::too_many_arguments)]
    async fn subscribe<S>(
        &self,
        io: &mut Io<S>,
        ctx: &Context,
        reply: ReplyTo,
        path: &str,
        input: RawInput,
        last_event_id: Option<String>,
        index: Option<usize>,
    ) where
        S: Transport,
    {
        let shared = &self.shared;
        let dispatcher = &shared.dispatcher;
        let entry = match dispatcher.lookup(path, Want::Kind(ProcedureKind::Subscription)) {
            Ok(entry) => entry,
            Err(e) => {
                io.text(refusal(dispatcher, &reply, &e, path)).await;
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
                        // Unless the client stopped it meanwhile (and may have reused its id for
                        // a new subscription, which the error must not end).
                        Err(e) if registry::unregister(&subscriptions, reply.key(), generation) => {
                            outbox
                                .send(refusal(&shared.dispatcher, &reply, &e, &path))
                                .await;
                            outbox.send(reply.stopped()).await;
                        }
                        Err(_) => {}
                    }
                });
                None
            }
        };
        if let Some(e) = refused {
            self.send_error(io, &reply, e, Some(path)).await;
        }
    }

    /// `subscription.stop`: the stream is dropped (or never started, if setup is still
    /// running).
    async fn stop<S>(&self, io: &mut Io<S>, reply: ReplyTo)
    where
        S: Transport,
    {
        let was_live = self
            .subscriptions
            .lock()
            .ok()
            .and_then(|mut live| live.remove(reply.key()))
            .is_some();
        if was_live {
            io.stop(reply.key());
            io.text(reply.stopped()).await;
        }
    }

    /// Reports an error produced here and answers the request with it.
    async fn send_error<S>(&self, io: &mut Io<S>, reply: &ReplyTo, error: Error, path: Option<&str>)
    where
        S: Transport,
    {
        let dispatcher = &self.shared.dispatcher;
        let error = dispatcher.reported(error, path);
        let shape = dispatcher.policy().shape(&error, path);
        io.text(reply.error(&shape)).await;
    }

    /// Reports an error produced here that belongs to no request, and sends it.
    async fn send_error_without_id<S>(&self, io: &mut Io<S>, error: &Error)
    where
        S: Transport,
    {
        self.shared.dispatcher.policy().report(error, None);
        self.send_shaped_without_id(io, error).await;
    }

    /// Sends an already reported error that belongs to no request.
    async fn send_shaped_without_id<S>(&self, io: &mut Io<S>, error: &Error)
    where
        S: Transport,
    {
        let shape = self.shared.dispatcher.policy().shape(error, None);
        io.text(wire::error_without_id(&shape)).await;
    }

    /// Refuses the connection: sends the (already reported) `error` without an id, then
    /// fails with it, each with its own id and path, the calls of `first` (the frame that
    /// brought the refusal), or if it has none, of the first frame of calls that arrives
    /// within [`REFUSED_LINGER`]. The caller closes the socket after.
    ///
    /// Why wait: the official client sends what it queued a moment after the socket opens,
    /// and a refusal written at once can overtake that. Closing then would leave those calls
    /// unsent, and the client keeps unsent calls for its next connection: on a connection
    /// that is refused every time, a query would wait forever instead of failing. Calls that
    /// reach the server before the close are answered, as the reference server answers the
    /// ones it reads before its own close.
    async fn refuse<S>(&self, io: &mut Io<S>, error: &Error, first: Option<&str>)
    where
        S: Transport,
    {
        self.send_shaped_without_id(io, error).await;
        let dispatcher = &self.shared.dispatcher;
        let fail_calls = async |io: &mut Io<S>, text: &str| {
            let calls = wire::pending_calls(text);
            for (reply, path) in &calls {
                io.text(refusal(dispatcher, reply, error, path)).await;
            }
            !calls.is_empty()
        };
        if let Some(text) = first
            && fail_calls(io, text).await
        {
            return;
        }
        let until = tokio::time::Instant::now() + REFUSED_LINGER;
        while !io.broken {
            let Ok(Some(Ok(frame))) = tokio::time::timeout_at(until, io.socket.next()).await else {
                return;
            };
            match frame {
                Message::Text(text) if fail_calls(io, text.as_str()).await => return,
                Message::Close(_) => return,
                _ => {}
            }
        }
    }
}

/// How long a refused connection waits for the calls its client sent before it read the
/// refusal (see [`Conn::refuse`]).
const REFUSED_LINGER: Duration = Duration::from_secs(1);

/// The frame answering a query or mutation.
fn answer(
    dispatcher: &Dispatcher,
    reply: &ReplyTo,
    path: &str,
    result: Result<Reply, Error>,
) -> String {
    match result {
        Ok(value) => reply.data(value.json()),
        Err(e) => refusal(dispatcher, reply, &e, path),
    }
}

/// The frame telling `reply` that its call of `path` failed with `error`.
fn refusal(dispatcher: &Dispatcher, reply: &ReplyTo, error: &Error, path: &str) -> String {
    reply.error(&dispatcher.policy().shape(error, Some(path)))
}

/// The size of the future that answers one message (boxed per message: it should stay within
/// the allocator's fast sizes), for the size guard in `transport::ws`.
#[cfg(test)]
pub(super) fn message_future_size<S: Transport>(
    shared: &Arc<Shared>,
    socket: Box<WebSocketStream<S>>,
) -> usize {
    let (mut io, conn) = open(shared, socket);
    let ctx = Context::new(());
    let frame = ByteString::from_static("{}");
    std::mem::size_of_val(&conn.handle(&mut io, &ctx, &frame, &frame, None))
}
