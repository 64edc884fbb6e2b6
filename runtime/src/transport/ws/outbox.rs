//! A connection's outgoing side: the bounded outbox and the pump that drains it and polls the
//! connection's subscription streams. Memory per connection is the point here: nothing is
//! allocated for subscriptions until the first one, rare paths are boxed, and the size guard
//! in `transport::ws` keeps the futures and queue items small.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{AbortHandle, BoxStream, SelectAll, SplitSink};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::call::{EncodedEvent, EventStream};
use crate::error::Error;
use crate::protocol::ws::ReplyTo;
use crate::transport::ws::Shared;
use crate::transport::ws::queue::{self, ClosingFlag, TrySendError};
use crate::transport::ws::registry::{self, Subscriptions};

/// The per-connection outbox: a bounded queue drained by the pump. A client that stops
/// reading fills it; a send that waits longer than the slow-consumer timeout closes the
/// connection, so a stalled peer cannot grow server memory.
#[derive(Clone)]
pub(super) struct Outbox {
    pub(super) sender: queue::Sender<Out>,
    pub(super) timeout: Duration,
    pub(super) closing: ClosingFlag,
}

impl Outbox {
    /// Queues a text frame; `false` when the connection is gone.
    pub(super) async fn send(&self, text: String) -> bool {
        self.push(Out::Text(text.into())).await
    }

    /// Queues a frame without waiting (keep-alive pings); dropped when the queue is full.
    pub(super) fn try_send_static(&self, text: &'static str) {
        let _ = self
            .sender
            .try_send(Out::Text(Utf8Bytes::from_static(text)));
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
                self.closing.close();
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
    /// Drop a subscription's stream.
    Stop { key: String },
    /// Send a close frame with this code (RFC 6455 §7.4), then stop writing.
    Close(u16),
}

/// A subscription whose setup succeeded.
pub(super) struct Start {
    pub(super) generation: u64,
    pub(super) reply: ReplyTo,
    pub(super) path: Arc<str>,
    pub(super) events: EventStream,
}

/// What every event of one subscription is tagged with.
struct Tag {
    generation: u64,
    reply: ReplyTo,
    path: Arc<str>,
}

/// One subscription's events, tagged for the pump; `None` marks the natural end.
type Tagged = (Arc<Tag>, Option<Result<EncodedEvent, Error>>);

type Sink<S> = SplitSink<WebSocketStream<S>, Message>;

/// The writer task: one per connection. It sends queued frames and polls every live
/// subscription stream itself, so an event costs one task wake-up and one write. A write that
/// does not complete within the slow-consumer timeout closes the connection.
pub(super) async fn pump<S>(
    shared: Arc<Shared>,
    mut sink: Sink<S>,
    mut queue: queue::Receiver<Out>,
    subscriptions: Subscriptions,
    closing: ClosingFlag,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let timeout = shared.config.slow_consumer_timeout;
    let policy = shared.dispatcher.policy();
    // Created on the first subscription: an idle connection should not pay for it.
    let mut streams: Option<SelectAll<BoxStream<'static, Tagged>>> = None;
    let mut aborts: HashMap<String, AbortHandle> = HashMap::new();
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
                Some(Out::Close(code)) => {
                    let frame = CloseFrame { code: CloseCode::from(code), reason: Utf8Bytes::default() };
                    let _ = send_within(&mut sink, Message::Close(Some(frame)), timeout, &closing).await;
                    break;
                }
                Some(Out::Start(start)) => {
                    let Start { generation, reply, path, events } = *start;
                    let key = reply.key().to_owned();
                    if !registry::is_live(&subscriptions, &key, generation) {
                        continue;
                    }
                    let started = write(reply.started());
                    let tag = Arc::new(Tag { generation, reply, path });
                    let tagged = events.map(Some).chain(futures_util::stream::once(async { None }));
                    let (tagged, handle) = futures_util::stream::abortable(tagged);
                    if let Some(old) = aborts.insert(key, handle) {
                        old.abort();
                    }
                    streams
                        .get_or_insert_with(SelectAll::new)
                        .push(Box::pin(tagged.map(move |item| (Arc::clone(&tag), item))));
                    started
                }
            },
            Some((tag, item)) = async { streams.as_mut()?.next().await }, if streams.as_ref().is_some_and(|s| !s.is_empty()) => {
                let Tag { generation, reply, path } = &*tag;
                let key = reply.key();
                match item {
                    Some(Ok(event)) => write(reply.event(event.id.as_deref(), &event.data, policy.superjson)),
                    Some(Err(e)) => {
                        if let Some(handle) = aborts.remove(key) {
                            handle.abort();
                        }
                        registry::unregister(&subscriptions, key, *generation);
                        let error = write(reply.error(&policy.shape(&e, Some(path))));
                        if !send_within(&mut sink, error, timeout, &closing).await {
                            break;
                        }
                        write(reply.stopped())
                    }
                    None => {
                        aborts.remove(key);
                        registry::unregister(&subscriptions, key, *generation);
                        write(reply.stopped())
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
    sink: &mut Sink<S>,
    frame: Message,
    timeout: Duration,
    closing: &ClosingFlag,
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
            closing.close();
            false
        }
    }
}
