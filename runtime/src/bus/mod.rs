//! Publish/subscribe for subscriptions: one [`EventBus`] API over interchangeable brokers.
//!
//! - [`EventBus::new`]: in memory, one process (the default; nothing to run).
//! - `EventBus::redis` (feature `redis`): a Redis stream shared by every instance of the
//!   server, so a client may resume on another instance after a reconnect.
//!
//! Either way an event is encoded to JSON once per publish and decoded at most once per
//! process, never once per subscriber, and resuming subscribers (`lastEventId`) get exactly
//! the events they missed, then live ones. Other log-shaped brokers (e.g. NATS JetStream) fit
//! behind the same seam (`log::Log`) without changing user code.

#[cfg(any(feature = "redis", test))]
mod log;
mod memory;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use crate::protocol::superjson::Annotated;
use futures_util::Stream;
use serde::Serialize;

use crate::error::{Error, ErrorCode};
use crate::subscription::Tracked;

#[cfg(feature = "redis")]
pub use self::redis::Redis;

/// The events a subscriber receives.
pub(crate) type BusStream<T> = Pin<Box<dyn Stream<Item = Result<Tracked<T>, Error>> + Send>>;

type BackendFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a broker does for an [`EventBus`].
trait Backend<T>: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    /// Appends an event (`json` is `data` encoded); resolves to its id.
    fn publish(&self, data: T, json: Arc<Annotated>) -> BackendFuture<'_, Result<String, Error>>;
    /// Events after `last_event_id`, then live ones.
    fn subscribe<'a>(&'a self, last_event_id: Option<&'a str>) -> BackendFuture<'a, BusStream<T>>;
    fn subscriber_count(&self) -> usize;
}

/// Publish/subscribe with tracked ids, for subscriptions that resume after a reconnect.
///
/// Ids are opaque strings chosen by the broker (`"1"`, `"2"`, … in memory; Redis stream ids
/// such as `"1733071234567-0"` with Redis). A subscriber passing the last id it saw gets every
/// later event the broker still retains, then live ones: none lost or repeated between the two.
/// If the events it missed are no longer retained (or it fell further behind than its buffer
/// while live, in memory), the stream yields one `PRECONDITION_FAILED` error and ends: the
/// client must resync, e.g. refetch and resubscribe without `lastEventId`.
///
/// Clone the bus freely (clones share everything); create one per topic and keep it, e.g. in a
/// `LazyLock` or in your context.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use futures_util::StreamExt;
/// use oxrpc::EventBus;
///
/// let bus = EventBus::new(100);
/// bus.publish("first".to_owned()).await.unwrap();
/// let mut events = bus.subscribe(None).await;
/// bus.publish("second".to_owned()).await.unwrap();
/// // A new subscriber starts with live events…
/// assert_eq!(events.next().await.unwrap().unwrap().into_data(), "second");
/// // …and one that resumes after id 1 first gets the replay.
/// let mut resumed = bus.subscribe(Some("1")).await;
/// assert_eq!(resumed.next().await.unwrap().unwrap().id(), "2");
/// # });
/// ```
pub struct EventBus<T> {
    backend: Arc<dyn Backend<T>>,
}

impl<T> Clone for EventBus<T> {
    fn clone(&self) -> Self {
        EventBus {
            backend: Arc::clone(&self.backend),
        }
    }
}

impl<T: 'static> fmt::Debug for EventBus<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("broker", &self.backend.name())
            .finish_non_exhaustive()
    }
}

impl<T: Serialize + Clone + Send + Sync + 'static> EventBus<T> {
    /// An in-memory bus (one process) remembering the last `replay_capacity` events (at
    /// least 1) for resuming subscribers. A live subscriber may also fall this far behind
    /// before it must resync.
    pub fn new(replay_capacity: usize) -> Self {
        EventBus {
            backend: Arc::new(memory::MemoryBus::new(replay_capacity)),
        }
    }

    /// A bus on the Redis stream `topic` (the key is the client's prefix plus `topic`),
    /// shared by every process that opens the same topic: see [`Redis`] for the guarantees
    /// and what to configure. Connections are made on first use, so this never fails; while
    /// Redis is unreachable, publishing fails with `SERVICE_UNAVAILABLE` and subscribers wait.
    /// Opening the same topic again through the same `Redis` (or a clone) returns the same
    /// bus, so a process keeps one reader per topic however often it is opened.
    #[cfg(feature = "redis")]
    pub fn redis(redis: &Redis, topic: &str) -> Self
    where
        T: serde::de::DeserializeOwned,
    {
        let bus = redis.shared_bus(topic, || {
            Arc::new(log::LogBus::<T>::new(redis.log(topic), redis.buffer_size()))
        });
        EventBus { backend: bus }
    }

    /// Publishes an event to every subscriber (in every process, with a shared broker);
    /// resolves to its id. Fails with `SERVICE_UNAVAILABLE` when the broker cannot be reached
    /// in time (the event may or may not have been stored, as with any broker), or
    /// `INTERNAL_SERVER_ERROR` when `data` cannot be encoded.
    pub async fn publish(&self, data: T) -> Result<String, Error> {
        let json = crate::protocol::superjson::encode(&data).map_err(|e| {
            Error::internal(e).with_message("Internal server error: an event could not be encoded")
        })?;
        self.backend.publish(data, Arc::from(json)).await
    }

    /// Events after `last_event_id` (those the broker still retains), then live events; with
    /// no id, live events only (everything published after this resolves is received).
    ///
    /// A malformed id gets `BAD_REQUEST`; one the bus cannot resume from (its missed events
    /// are no longer retained, or it is newer than anything published: another history, such
    /// as an in-memory bus before a restart) gets `PRECONDITION_FAILED`. Either ends the
    /// stream. (In memory, ids restart at 1 with the process: an id from before a restart that
    /// the new process has already reached cannot be told apart. Use a shared broker, or keep
    /// your own ids, when clients outlive server restarts.)
    pub async fn subscribe(
        &self,
        last_event_id: Option<&str>,
    ) -> impl Stream<Item = Result<Tracked<T>, Error>> + Send + Unpin + 'static + use<T> {
        self.backend.subscribe(last_event_id).await
    }

    /// How many subscribers are listening in this process.
    pub fn subscriber_count(&self) -> usize {
        self.backend.subscriber_count()
    }
}

/// A stream that yields `error` and ends.
fn failed<T: Send + 'static>(error: Error) -> BusStream<T> {
    Box::pin(futures_util::stream::once(std::future::ready(Err(error))))
}

fn unknown_id() -> Error {
    Error::new(
        ErrorCode::BadRequest,
        "lastEventId is not an event id of this subscription; resubscribe without it",
    )
}

fn missed_events_gone() -> Error {
    Error::new(
        ErrorCode::PreconditionFailed,
        "Missed events are no longer available; resubscribe without lastEventId",
    )
}

fn fell_behind() -> Error {
    Error::new(
        ErrorCode::PreconditionFailed,
        "This subscriber fell too far behind and missed events; resubscribe",
    )
}
