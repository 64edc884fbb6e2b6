//! A connection's outgoing side: the bounded outbox that the connection's spawned tasks
//! (calls, subscription setups) queue their frames in, and [`Io`], the socket with everything
//! that writes to it, owned by the connection's one task: it drains the outbox and polls the
//! connection's subscription streams in the same loop that reads. Memory per connection is the
//! point here: one task per connection, nothing allocated for subscriptions until the first
//! one, rare paths boxed, and the size guard in `transport::ws` keeps the futures and queue
//! items small.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::stream::{AbortHandle, Abortable, SelectAll};
use futures_util::task::AtomicWaker;
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::call::{EncodedEvent, EventStream};
use crate::error::Error;
use crate::protocol::ws::ReplyTo;
use crate::transport::ws::Shared;
use crate::transport::ws::queue::{self, TrySendError};
use crate::transport::ws::registry::{self, Subscriptions};

/// The per-connection outbox: a bounded queue drained by the pump. A client that stops
/// reading fills it; a send that waits longer than the slow-consumer timeout closes the
/// connection, so a stalled peer cannot grow server memory.
#[derive(Clone)]
pub(super) struct Outbox {
    pub(super) sender: queue::Sender<Out>,
    pub(super) timeout: Duration,
}

impl Outbox {
    /// Queues a text frame; `false` when the connection is gone.
    pub(super) async fn send(&self, text: String) -> bool {
        self.push(Out::Text(text.into())).await
    }

    pub(super) async fn push(&self, out: Out) -> bool {
        // Fast path without a timer: the queue has room.
        match self.sender.try_send(out) {
            Ok(()) => true,
            Err(TrySendError::Closed) => false,
            // Boxed: the rare slow path does not inflate every caller's future.
            Err(TrySendError::Full(message)) => Box::pin(self.send_slow(message)).await,
        }
    }

    async fn send_slow(&self, message: Out) -> bool {
        match tokio::time::timeout(self.timeout, self.sender.send(message)).await {
            Ok(sent) => sent,
            Err(_) => {
                tracing::warn!(
                    "closing a WebSocket connection whose client stopped reading (slow consumer)"
                );
                self.sender.close_connection();
                false
            }
        }
    }
}

/// What the connection's writer (the pump) is asked to do.
pub(super) enum Out {
    /// Send a text frame.
    Text(Utf8Bytes),
    /// Start streaming a subscription's events (if it was not stopped meanwhile). Boxed: the
    /// queue's slots are sized for the largest variant, and text frames are the common case.
    Start(Box<Start>),
}

/// A subscription whose setup succeeded.
pub(super) struct Start {
    pub(super) generation: u64,
    pub(super) reply: ReplyTo,
    pub(super) path: Arc<str>,
    pub(super) events: EventStream,
}

/// What every event of one subscription is tagged with.
pub(super) struct Tag {
    generation: u64,
    reply: ReplyTo,
    path: Arc<str>,
}

/// One subscription's events, tagged for the pump; `None` marks the natural end.
pub(super) type Tagged = (Arc<Tag>, Option<Result<EncodedEvent, Error>>);

/// A subscription's event stream as the connection polls it: each event with its tag, then
/// one `None` when the stream ends by itself (not when it is aborted: a stopped or replaced
/// subscription just ends). One adapter where every event passes.
pub(super) struct Tagging {
    events: Abortable<EventStream>,
    tag: Arc<Tag>,
    ended: bool,
}

impl Stream for Tagging {
    type Item = Tagged;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Tagged>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.events.poll_next_unpin(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(event)) => Poll::Ready(Some((Arc::clone(&self.tag), Some(event)))),
            Poll::Ready(None) => {
                self.ended = true;
                if self.events.is_aborted() {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some((Arc::clone(&self.tag), None)))
                }
            }
        }
    }
}

/// What a WebSocket connection runs over (the upgraded HTTP connection; a duplex stream in
/// tests).
pub(super) trait Transport:
    tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static
{
}

impl<T> Transport for T where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static
{
}

/// The connection's socket and everything that writes to it. Owned by the connection's task,
/// which reads in the same loop: a frame is written where it is produced (replies to the
/// read side) or taken from the outbox (spawned calls and setups), and subscription events are
/// polled here, so an event costs one wake-up of one task and one write.
pub(super) struct Io<S> {
    /// Boxed: the connection task's future stays small (and the socket is one allocation, as
    /// it was in the split halves' shared cell).
    pub(super) socket: Box<WebSocketStream<S>>,
    /// Whether reading the socket may give a frame ([`next_frame`]).
    pub(super) readable: Readable,
    pub(super) queue: queue::Receiver<Out>,
    pub(super) streams: Streams,
    aborts: HashMap<String, AbortHandle>,
    subscriptions: Subscriptions,
    shared: Arc<Shared>,
    /// Set when a write failed or timed out: the connection ends.
    pub(super) broken: bool,
    /// The frame being written.
    outgoing: Option<Message>,
    /// A frame to write right after it.
    pending: Option<String>,
}

impl<S> Io<S>
where
    S: Transport,
{
    pub(super) fn new(
        shared: Arc<Shared>,
        socket: Box<WebSocketStream<S>>,
        queue: queue::Receiver<Out>,
        subscriptions: Subscriptions,
    ) -> Self {
        Io {
            socket,
            readable: Readable::new(),
            queue,
            streams: Streams::None,
            aborts: HashMap::new(),
            subscriptions,
            shared,
            broken: false,
            outgoing: None,
            pending: None,
        }
    }

    /// Whether a subscription stream is live (the loop polls them only then).
    pub(super) fn streaming(&self) -> bool {
        self.streams.is_live()
    }

    /// Writes a text frame; `false` (and the connection is broken) if it could not be written.
    pub(super) async fn text(&mut self, text: String) -> bool {
        self.write(Message::Text(text.into())).await
    }

    /// Writes a frame (and the one queued to follow it). If the socket does not take it at
    /// once, waits at most the slow-consumer timeout before giving up on the peer.
    pub(super) async fn write(&mut self, frame: Message) -> bool {
        self.outgoing = Some(frame);
        self.flush().await
    }

    /// Writes the outgoing frame (and the one queued to follow it). The frame lives in `self`,
    /// not in this future: the connection's task holds this future inline, and every byte of
    /// it is a byte of every idle connection.
    pub(super) async fn flush(&mut self) -> bool {
        loop {
            if self.broken {
                self.outgoing = None;
                return false;
            }
            // The common case completes here, synchronously.
            let stuck = std::future::poll_fn(|cx| Poll::Ready(self.try_write(cx))).await;
            if stuck {
                // Boxed: the timer lives only while a write is stuck.
                Box::pin(self.write_slow()).await;
            }
            match self.pending.take() {
                Some(next) => self.outgoing = Some(Message::Text(next.into())),
                None => return !self.broken,
            }
        }
    }

    /// Sends the outgoing frame and flushes, as far as the socket allows now; `true` when the
    /// rest must wait (then `outgoing` is still set if the frame was not even taken).
    fn try_write(&mut self, cx: &mut Context<'_>) -> bool {
        let frame = &mut self.outgoing;
        let mut socket = std::pin::Pin::new(&mut *self.socket);
        if frame.is_some() {
            match socket.as_mut().poll_ready(cx) {
                Poll::Pending => return true,
                Poll::Ready(Err(_)) => {
                    self.broken = true;
                    return false;
                }
                Poll::Ready(Ok(())) => {}
            }
            if let Some(frame) = frame.take()
                && socket.as_mut().start_send(frame).is_err()
            {
                self.broken = true;
                return false;
            }
        }
        match socket.poll_flush(cx) {
            Poll::Pending => true,
            Poll::Ready(result) => {
                self.broken |= result.is_err();
                false
            }
        }
    }

    /// The rest of a write the socket did not take at once, within the slow-consumer timeout.
    async fn write_slow(&mut self) {
        let timeout = self.shared.config.slow_consumer_timeout;
        let frame = self.outgoing.take();
        let socket = &mut *self.socket;
        let write = async {
            match frame {
                Some(frame) => socket.send(frame).await,
                None => socket.flush().await,
            }
        };
        // While it waits, the connection reads nothing: a server closing every connection
        // at once (shutdown) must not wait for this peer.
        let dropping = self.shared.connections.dropping();
        tokio::select! {
            written = tokio::time::timeout(timeout, write) => match written {
                Ok(result) => self.broken |= result.is_err(),
                Err(_) => {
                    tracing::warn!(
                        "closing a WebSocket connection whose client stopped reading (slow consumer)"
                    );
                    self.broken = true;
                }
            },
            () = dropping => self.broken = true,
        }
    }

    /// Carries out one frame or request from the outbox; `true` when it leaves a frame to
    /// write (in `outgoing`: [`Io::flush`] it).
    pub(super) fn apply(&mut self, out: Out) -> bool {
        let frame = match out {
            Out::Text(text) => Message::Text(text),
            Out::Start(start) => {
                let Start {
                    generation,
                    reply,
                    path,
                    events,
                } = *start;
                let key = reply.key().to_owned();
                if !registry::is_live(&self.subscriptions, &key, generation) {
                    return false;
                }
                let started = reply.started();
                let tag = Arc::new(Tag {
                    generation,
                    reply,
                    path,
                });
                let (handle, registration) = AbortHandle::new_pair();
                if let Some(old) = self.aborts.insert(key, handle) {
                    old.abort();
                }
                self.streams.push(Box::new(Tagging {
                    events: Abortable::new(events, registration),
                    tag,
                    ended: false,
                }));
                Message::Text(started.into())
            }
        };
        self.outgoing = Some(frame);
        true
    }

    /// Prepares the frame one subscription event (or its error, or its end) is sent as, in
    /// `outgoing` ([`Io::flush`] it). An error is two frames: the error, then `stopped`.
    pub(super) fn event(&mut self, (tag, item): Tagged) -> bool {
        let Tag {
            generation,
            reply,
            path,
        } = &*tag;
        let key = reply.key();
        let policy = self.shared.dispatcher.policy();
        let text = match item {
            Some(Ok(event)) => reply.event(event.id.as_deref(), event.data.get(), policy.superjson),
            Some(Err(e)) => {
                if let Some(handle) = self.aborts.remove(key) {
                    handle.abort();
                }
                registry::unregister(&self.subscriptions, key, *generation);
                self.pending = Some(reply.stopped());
                reply.error(&policy.shape(&e, Some(path)))
            }
            None => {
                self.aborts.remove(key);
                registry::unregister(&self.subscriptions, key, *generation);
                reply.stopped()
            }
        };
        self.outgoing = Some(Message::Text(text.into()));
        true
    }

    /// Drops a subscription's stream (`subscription.stop`).
    pub(super) fn stop(&mut self, key: &str) {
        if let Some(handle) = self.aborts.remove(key) {
            handle.abort();
        }
    }

    /// Waits for a permit of `limit` while still writing what the outbox and the streams
    /// produce (the calls holding the permits need the outbox drained to finish).
    pub(super) async fn permit(
        &mut self,
        limit: &Arc<tokio::sync::Semaphore>,
    ) -> Option<tokio::sync::OwnedSemaphorePermit> {
        if let Ok(permit) = Arc::clone(limit).try_acquire_owned() {
            return Some(permit);
        }
        // Boxed: the rare wait does not inflate the connection's future.
        Box::pin(async {
            let mut acquire = std::pin::pin!(Arc::clone(limit).acquire_owned());
            loop {
                let streaming = self.streaming();
                tokio::select! {
                    biased;
                    // Queued replies first: calls give their permits back once their reply is
                    // queued, so taking permits faster than the queue drains would fill it.
                    out = self.queue.recv() => {
                        if self.apply(out?) && !self.flush().await {
                            return None;
                        }
                    }
                    permit = &mut acquire => return permit.ok(),
                    Some(item) = next_event(&mut self.streams), if streaming => {
                        if self.event(item) && !self.flush().await {
                            return None;
                        }
                    }
                }
            }
        })
        .await
    }

    /// The end of the connection: what the outbox still holds goes out, then the close frame
    /// (when there is one to send and the peer is reading), all within `bound`.
    pub(super) async fn finish(mut self, close: Option<u16>, bound: Duration) {
        if self.broken || self.queue.is_closing() {
            // A slow consumer gets no close frame: it is not reading.
            return;
        }
        let _ = tokio::time::timeout(bound, async {
            while let Some(out) = self.queue.try_recv() {
                if self.apply(out) && !self.flush().await {
                    return;
                }
            }
            if let Some(code) = close {
                let frame = CloseFrame {
                    code: CloseCode::from(code),
                    reason: Utf8Bytes::default(),
                };
                if !self.write(Message::Close(Some(frame))).await {
                    return;
                }
            }
            let _ = SinkExt::close(&mut *self.socket).await;
        })
        .await;
    }
}

/// Whether a connection's socket may have a frame to read: set when the reactor said it is
/// readable (the socket is read with this waker, which sets the flag and wakes the task), and
/// after a read that gave a frame (more may be buffered). The connection's loop turns for
/// every event it writes; reading the socket on each of those turns was a failed read each.
pub(super) struct Readable {
    /// Given to the socket's reads.
    waker: Waker,
    state: Arc<ReadState>,
}

struct ReadState {
    ready: AtomicBool,
    /// The connection's task.
    task: AtomicWaker,
}

impl Wake for ReadState {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.ready.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl Readable {
    fn new() -> Self {
        let state = Arc::new(ReadState {
            // Frames may already be buffered (the upgrade's leftover bytes).
            ready: AtomicBool::new(true),
            task: AtomicWaker::new(),
        });
        Readable {
            waker: Waker::from(Arc::clone(&state)),
            state,
        }
    }
}

/// The next frame from the socket, read only when it may have one ([`Readable`]).
pub(super) async fn next_frame<S: Transport>(
    socket: &mut WebSocketStream<S>,
    readable: &Readable,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    std::future::poll_fn(|cx| {
        // Registered first: a wake between here and the flag's check is not lost.
        readable.state.task.register(cx.waker());
        if !readable.state.ready.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let mut reading = Context::from_waker(&readable.waker);
        let frame = socket.poll_next_unpin(&mut reading);
        if frame.is_ready() {
            readable.state.ready.store(true, Ordering::Release);
        }
        frame
    })
    .await
}

/// The next event of the live subscription streams.
pub(super) async fn next_event(streams: &mut Streams) -> Option<Tagged> {
    std::future::poll_fn(|cx| streams.poll_next(cx)).await
}

/// A connection's live subscription streams. Most connections have at most one, polled
/// directly (it wakes the connection's task itself); a `SelectAll`, with its own wake-up
/// queue and a node per stream, only from the second on. Nothing is allocated for none.
pub(super) enum Streams {
    None,
    One(Box<Tagging>),
    Many(SelectAll<Box<Tagging>>),
}

impl Streams {
    fn is_live(&self) -> bool {
        match self {
            Streams::None => false,
            Streams::One(_) => true,
            Streams::Many(all) => !all.is_empty(),
        }
    }

    fn push(&mut self, stream: Box<Tagging>) {
        *self = match std::mem::replace(self, Streams::None) {
            Streams::None => Streams::One(stream),
            Streams::One(first) => {
                let mut all = SelectAll::new();
                all.push(first);
                all.push(stream);
                Streams::Many(all)
            }
            Streams::Many(mut all) => {
                all.push(stream);
                Streams::Many(all)
            }
        };
    }

    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Tagged>> {
        match self {
            Streams::None => Poll::Ready(None),
            Streams::One(stream) => {
                let polled = stream.poll_next_unpin(cx);
                if let Poll::Ready(None) = polled {
                    *self = Streams::None;
                }
                polled
            }
            Streams::Many(all) => all.poll_next_unpin(cx),
        }
    }
}
