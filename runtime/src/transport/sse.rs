//! tRPC subscriptions over Server-Sent Events (spec §6, `httpSubscriptionLink`): a `GET` to a
//! subscription path answers `200 text/event-stream` with `connected` first, then the values,
//! then `return`. Errors on a known path (context, input, middleware, the stream itself) are
//! in-band (`serialized-error`), never a non-200 answer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use bytestring::ByteString;
use futures_util::StreamExt;
use http::header::{CACHE_CONTROL, CONNECTION, CONTENT_TYPE, HeaderValue, VARY};
use http::{Request, Response, StatusCode, Version};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::body::{Body, error_response};
use crate::call::{ProcedureKind, Reply};
use crate::context::{RequestInfo, TransportKind};
use crate::dispatch::{Dispatcher, Site, Via, Want};
use crate::error::{Error, ErrorCode};
use crate::protocol::http as wire;
use crate::protocol::{input, sse};

/// SSE options.
#[derive(Debug, Clone)]
pub(crate) struct SseConfig {
    /// Send `ping` after this long without an event.
    pub(crate) ping: Option<Duration>,
    /// Announced in `connected`: the client recreates the EventSource after this long
    /// without any event (pings count).
    pub(crate) reconnect_after_inactivity: Option<Duration>,
    /// End each stream after this long (without `return`): the client reconnects with its
    /// last event id.
    pub(crate) max_duration: Option<Duration>,
    /// The most SSE streams at once; more get `TOO_MANY_REQUESTS`.
    pub(crate) max_streams: usize,
}

impl Default for SseConfig {
    fn default() -> Self {
        SseConfig {
            ping: None,
            reconnect_after_inactivity: None,
            max_duration: None,
            max_streams: 10_000,
        }
    }
}

/// The open SSE streams of one server.
#[derive(Debug)]
pub(crate) struct SseStreams {
    count: AtomicUsize,
    ends: watch::Sender<u64>,
    /// Shutting down: every stream, also one opened from now on, ends at once.
    closed: AtomicBool,
}

impl Default for SseStreams {
    fn default() -> Self {
        SseStreams {
            count: AtomicUsize::new(0),
            ends: watch::channel(0).0,
            closed: AtomicBool::new(false),
        }
    }
}

impl SseStreams {
    /// How many SSE streams are open.
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Ends every open stream without `return`: clients reconnect (to this server or
    /// another) and resume with `Last-Event-ID`.
    pub(crate) fn end_all(&self) {
        self.ends.send_modify(|generation| *generation += 1);
    }

    /// Ends every stream for good (shutdown): a client that reconnects here meanwhile gets
    /// `connected` and the end at once, and goes elsewhere.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.end_all();
    }
}

/// One stream's place in the count.
struct Slot(Arc<SseStreams>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct Shared {
    dispatcher: Dispatcher,
    config: SseConfig,
    streams: Arc<SseStreams>,
}

/// The SSE transport of one server.
#[derive(Debug, Clone)]
pub(crate) struct SseTransport(Arc<Shared>);

/// What woke the stream up.
enum Wake {
    Event(Option<Result<crate::call::EncodedEvent, Error>>),
    Ping,
    End,
}

impl SseTransport {
    pub(crate) fn new(dispatcher: Dispatcher, config: SseConfig, streams: Arc<SseStreams>) -> Self {
        SseTransport(Arc::new(Shared {
            dispatcher,
            config,
            streams,
        }))
    }

    /// Serves a subscription at `path` (already known to be one) as an event stream.
    pub(crate) fn handle<B>(
        &self,
        req: Request<B>,
        path: String,
        peer: Option<SocketAddr>,
    ) -> Response<Body> {
        let shared = Arc::clone(&self.0);
        let dispatcher = &shared.dispatcher;
        let (parts, _body) = req.into_parts();
        let query = wire::parse_query(parts.uri.query());
        // A malformed `connectionParams` is refused before the stream, as the reference does.
        let connection_params = match query.connection_params.as_deref() {
            Some(text) => match input::parse_connection_params(text) {
                Ok(params) => params,
                Err(e) => {
                    let e = dispatcher.reported(e, None);
                    return error_response(dispatcher.policy(), &e, None);
                }
            },
            None => None,
        };
        let streams = Arc::clone(&shared.streams);
        if streams.count.fetch_add(1, Ordering::SeqCst) >= shared.config.max_streams {
            drop(Slot(streams));
            let e = dispatcher.reported(
                Error::new(
                    ErrorCode::TooManyRequests,
                    "Too many open subscription streams; try again later",
                ),
                Some(&path),
            );
            return error_response(dispatcher.policy(), &e, Some(&path));
        }
        let slot = Slot(streams);
        let last_event_id = sse::last_event_id(&parts.headers, parts.uri.query());
        let raw_input = input::parse(&ByteString::from(query.input.unwrap_or_default()));
        let version = parts.version;
        let info = RequestInfo::new(parts.method, parts.uri, parts.headers, peer)
            .with_transport(TransportKind::Sse)
            .with_connection_params(connection_params);
        let mut ends = shared.streams.ends.subscribe();
        ends.mark_unchanged();

        let lines = async_stream::stream! {
            let _slot = slot;
            let config = &shared.config;
            let dispatcher = &shared.dispatcher;
            let started = Instant::now();
            let fail = |e: &Error| {
                Bytes::from(sse::serialized_error(&dispatcher.policy().shape(e, Some(&path))))
            };
            if shared.streams.closed.load(Ordering::SeqCst) {
                yield Bytes::from(sse::connected(config.reconnect_after_inactivity));
                return;
            }
            let far = Duration::from_secs(86_400 * 365);
            let end_at = started + config.max_duration.unwrap_or(far);
            // Context and setup race the end too: a hanging setup must not outlive shutdown.
            let setup = async {
                let ctx = dispatcher.create_context(info).await?;
                let input = raw_input.map_err(|e| dispatcher.reported(e, Some(&path)))?;
                let entry = dispatcher.lookup(&path, Want::Kind(ProcedureKind::Subscription))?;
                dispatcher
                    .call(entry, &ctx, input, last_event_id.as_deref(), Site::of(Via::Sse, None))
                    .await
                    .and_then(Reply::into_events)
            };
            let setup = tokio::select! {
                biased;
                _ = ends.changed() => None,
                () = tokio::time::sleep_until(end_at) => None,
                setup = setup => Some(setup),
            };
            let Some(setup) = setup else {
                yield Bytes::from(sse::connected(config.reconnect_after_inactivity));
                return;
            };
            // `connected` (the client's `onStarted`) only once the subscription is set up, as
            // `started` over WebSocket: what is published after it is received.
            yield Bytes::from(sse::connected(config.reconnect_after_inactivity));
            let mut events = match setup {
                Ok(events) => events,
                Err(e) => {
                    yield fail(&e);
                    return;
                }
            };
            let mut last_id = last_event_id;
            let mut ping_at = Instant::now() + config.ping.unwrap_or(far);
            loop {
                let wake = tokio::select! {
                    biased;
                    _ = ends.changed() => Wake::End,
                    () = tokio::time::sleep_until(end_at) => Wake::End,
                    event = events.next() => Wake::Event(event),
                    () = tokio::time::sleep_until(ping_at) => Wake::Ping,
                };
                if let Some(every) = config.ping {
                    ping_at = Instant::now() + every;
                }
                match wake {
                    // Without `return`: the client reconnects with its last event id.
                    Wake::End => return,
                    Wake::Ping => yield Bytes::from_static(sse::PING.as_bytes()),
                    Wake::Event(None) => {
                        yield Bytes::from_static(sse::RETURN.as_bytes());
                        return;
                    }
                    Wake::Event(Some(Err(e))) => {
                        yield fail(&e);
                        return;
                    }
                    Wake::Event(Some(Ok(event))) => {
                        yield Bytes::from(sse::data(event.data.get(), event.id.as_deref(), last_id.as_deref()));
                        if event.id.is_some() {
                            last_id = event.id;
                        }
                    }
                }
            }
        };

        let mut res = Response::new(Body::stream(lines.boxed()));
        *res.status_mut() = StatusCode::OK;
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        // Proxies must neither buffer nor transform the stream.
        headers.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("no-cache, no-transform"),
        );
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        headers.insert(VARY, HeaderValue::from_static("trpc-accept, accept"));
        if version <= Version::HTTP_11 {
            headers.insert(CONNECTION, HeaderValue::from_static("keep-alive"));
        }
        res
    }
}
