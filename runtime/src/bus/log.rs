//! A bus over an append-only log shared by processes (Redis streams; NATS JetStream would fit
//! the same [`Log`] trait): one reader per topic per process, fanned out in memory.
//!
//! - **Publish** appends the event's JSON to the log; the log assigns the id.
//! - **Fan-out**: the first subscriber of a process starts a hub that tails the log with one
//!   blocking read at a time and broadcasts each entry, decoded once, to the process's
//!   subscribers; the last one to leave stops it.
//! - **Resume**: a subscriber with `lastEventId` registers with the hub first, then reads what
//!   it missed from the log in pages, then takes live entries, skipping ids it has sent. The
//!   hub's start position is read before anyone registers, so the two overlap, never gap.
//! - **Faults**: reads are retried with backoff while the log is unreachable (subscribers wait,
//!   then continue from their position); a subscriber that falls behind its buffer catches up
//!   from the log instead of failing.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use super::{Backend, BackendFuture, BusStream};
use crate::error::{Error, ErrorCode};
use crate::protocol::superjson::Annotated;
use crate::subscription::Tracked;

/// A position in a log; ordered like the log.
pub(crate) type LogId = (u64, u64);

/// Why a log operation failed (a connection problem, a timeout, a malformed reply).
pub(crate) type LogError = Box<dyn std::error::Error + Send + Sync>;

pub(crate) type LogFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, LogError>> + Send + 'a>>;

/// Entries read from a log: ids and payloads (the events' JSON; `None` for an entry that an
/// event bus did not write, which is skipped but still moves the reader past it).
pub(crate) type Entries = Vec<(LogId, Option<String>)>;

/// One topic of a shared, append-only, trimmed log.
pub(crate) trait Log: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn parse_id(&self, id: &str) -> Option<LogId>;
    fn format_id(&self, id: LogId) -> String;
    /// How long one operation may take before it counts as a failure.
    fn timeout(&self) -> Duration;
    fn append<'a>(&'a self, payload: &'a str) -> LogFuture<'a, LogId>;
    /// Up to `limit` entries after `after`, oldest first.
    fn range(&self, after: LogId, limit: usize) -> LogFuture<'_, Entries>;
    /// The newest id (`(0, 0)` for an empty log).
    fn last_id(&self) -> LogFuture<'_, LogId>;
    /// Whether an entry after `after` was removed (trimmed by retention), or `after` is not a
    /// position of this log's history at all.
    fn lost_after(&self, after: LogId) -> LogFuture<'_, bool>;
    /// A reader with its own connection, for blocking reads.
    fn tail(&self) -> Box<dyn Tail>;
}

/// A blocking reader of one topic.
pub(crate) trait Tail: Send + 'static {
    /// Up to `limit` entries after `after`, waiting a while (not forever) for the first.
    fn next(&mut self, after: LogId, limit: usize) -> LogFuture<'_, Entries>;
}

const PAGE: usize = 256;
/// After a failed start, how long new subscribers fail at once rather than trying again.
const RETRY_START_AFTER: Duration = Duration::from_secs(1);
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

struct Entry<T> {
    id: LogId,
    id_text: String,
    data: T,
    json: Arc<Annotated>,
}

impl<T: Clone> Entry<T> {
    fn to_event(&self) -> Tracked<T> {
        Tracked::pre_encoded(
            self.id_text.clone(),
            self.data.clone(),
            Arc::clone(&self.json),
        )
    }
}

/// A process's reader of one topic, shared by its subscribers.
struct Hub<T> {
    sender: broadcast::Sender<Arc<Entry<T>>>,
    /// The newest id broadcast (or the start position).
    latest: Arc<Mutex<LogId>>,
    reader: AbortHandle,
}

impl<T> Drop for Hub<T> {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl<T> Hub<T> {
    fn latest(&self) -> LogId {
        *self.latest.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(crate) struct LogBus<T> {
    log: Arc<dyn Log>,
    hub: Mutex<Weak<Hub<T>>>,
    /// Held while a hub starts, so concurrent first subscribers start one; remembers when the
    /// last start failed, so those queued behind it fail at once instead of each waiting.
    starting: tokio::sync::Mutex<Option<tokio::time::Instant>>,
    buffer: usize,
}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> LogBus<T> {
    pub(crate) fn new(log: Arc<dyn Log>, buffer: usize) -> Self {
        LogBus {
            log,
            hub: Mutex::new(Weak::new()),
            starting: tokio::sync::Mutex::new(None),
            buffer: buffer.max(1),
        }
    }

    fn running_hub(&self) -> Option<Arc<Hub<T>>> {
        self.hub
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .upgrade()
    }

    async fn hub(&self) -> Result<Arc<Hub<T>>, LogError> {
        if let Some(hub) = self.running_hub() {
            return Ok(hub);
        }
        let mut failed_at = self.starting.lock().await;
        if let Some(hub) = self.running_hub() {
            return Ok(hub);
        }
        if failed_at.is_some_and(|at| at.elapsed() < RETRY_START_AFTER) {
            return Err("the log was unreachable a moment ago".into());
        }
        let start = match with_timeout(self.log.timeout(), self.log.last_id()).await {
            Ok(start) => start,
            Err(error) => {
                *failed_at = Some(tokio::time::Instant::now());
                return Err(error);
            }
        };
        *failed_at = None;
        let (sender, _) = broadcast::channel(self.buffer);
        let latest = Arc::new(Mutex::new(start));
        let reader = tokio::spawn(read_loop(
            self.log.tail(),
            Arc::clone(&self.log),
            start,
            sender.clone(),
            Arc::clone(&latest),
        ))
        .abort_handle();
        let hub = Arc::new(Hub {
            sender,
            latest,
            reader,
        });
        *self.hub.lock().unwrap_or_else(PoisonError::into_inner) = Arc::downgrade(&hub);
        Ok(hub)
    }

    async fn subscribe_from(&self, last_event_id: Option<&str>) -> BusStream<T> {
        let after = match last_event_id {
            None => None,
            Some(text) => match self.log.parse_id(text) {
                Some(id) => Some(id),
                None => return super::failed(super::unknown_id()),
            },
        };
        let hub = match self.hub().await {
            Ok(hub) => hub,
            Err(error) => return super::failed(unavailable(self.log.name(), &error)),
        };
        let mut receiver = hub.sender.subscribe();
        // Without an id: everything after what was broadcast before we registered.
        let mut last = after.unwrap_or_else(|| hub.latest());
        let mut catch_up = after.is_some();
        let log = Arc::clone(&self.log);
        Box::pin(async_stream::stream! {
            // Keeps the reader running while this subscriber exists.
            let _hub = hub;
            loop {
                if catch_up {
                    catch_up = false;
                    let mut gone = false;
                    loop {
                        let from = last;
                        let page = retry(log.as_ref(), "read missed events", || log.range(from, PAGE)).await;
                        // Checked after reading: trimming only removes the oldest entries, so
                        // if nothing after `from` is gone now, nothing was when the page was read.
                        if retry(log.as_ref(), "check retention", || log.lost_after(from)).await {
                            gone = true;
                            break;
                        }
                        let full = page.len() == PAGE;
                        for (id, payload) in page {
                            last = id;
                            if let Some(entry) = decode::<T>(log.as_ref(), id, payload) {
                                yield Ok(entry.to_event());
                            }
                        }
                        if !full {
                            break;
                        }
                    }
                    if gone {
                        yield Err(super::missed_events_gone());
                        break;
                    }
                }
                match receiver.recv().await {
                    Ok(entry) if entry.id <= last => continue,
                    Ok(entry) => {
                        last = entry.id;
                        yield Ok(entry.to_event());
                    }
                    // Too slow for the buffer: read what it missed from the log instead.
                    Err(broadcast::error::RecvError::Lagged(_)) => catch_up = true,
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }
}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Backend<T> for LogBus<T> {
    fn name(&self) -> &'static str {
        self.log.name()
    }

    fn publish(&self, _data: T, json: Arc<Annotated>) -> BackendFuture<'_, Result<String, Error>> {
        Box::pin(async move {
            match with_timeout(self.log.timeout(), self.log.append(json.json.get())).await {
                Ok(id) => Ok(self.log.format_id(id)),
                Err(error) => Err(unavailable(self.log.name(), &error)),
            }
        })
    }

    fn subscribe<'a>(&'a self, last_event_id: Option<&'a str>) -> BackendFuture<'a, BusStream<T>> {
        Box::pin(self.subscribe_from(last_event_id))
    }

    fn subscriber_count(&self) -> usize {
        self.running_hub()
            .map_or(0, |hub| hub.sender.receiver_count())
    }
}

/// Tails the log from `after`, broadcasting each entry; retries with backoff on failures.
async fn read_loop<T: Serialize + DeserializeOwned + Send + Sync + 'static>(
    mut tail: Box<dyn Tail>,
    log: Arc<dyn Log>,
    mut after: LogId,
    sender: broadcast::Sender<Arc<Entry<T>>>,
    latest: Arc<Mutex<LogId>>,
) {
    let mut backoff = MIN_BACKOFF;
    let mut failing = false;
    loop {
        match tail.next(after, PAGE).await {
            Ok(entries) => {
                if failing {
                    tracing::info!(broker = log.name(), "event bus reader reconnected");
                    failing = false;
                }
                backoff = MIN_BACKOFF;
                for (id, payload) in entries {
                    after = id;
                    let entry = decode::<T>(log.as_ref(), id, payload);
                    *latest.lock().unwrap_or_else(PoisonError::into_inner) = id;
                    if let Some(entry) = entry {
                        // No receivers: the last subscriber just left.
                        let _ = sender.send(Arc::new(entry));
                    }
                }
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(broker = log.name(), %error, "event bus reader failed; retrying");
                    failing = true;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                tail = log.tail();
            }
        }
    }
}

/// Decodes an entry once, and encodes it again from `T` (so fields `T` no longer has, or
/// that someone else wrote into the stream, never reach clients). One that does not decode
/// (written by another version of the program, or not by an event bus) is logged and skipped
/// rather than ending every subscription.
fn decode<T: Serialize + DeserializeOwned>(
    log: &dyn Log,
    id: LogId,
    payload: Option<String>,
) -> Option<Entry<T>> {
    let Some(payload) = payload else {
        tracing::warn!(broker = log.name(), id = %log.format_id(id), "skipping a stream entry without event data");
        return None;
    };
    let decoded = serde_json::from_str::<T>(&payload)
        .and_then(|data| Ok((crate::protocol::superjson::encode(&data)?, data)));
    match decoded {
        Ok((json, data)) => Some(Entry {
            id,
            id_text: log.format_id(id),
            data,
            json: Arc::from(json),
        }),
        Err(error) => {
            tracing::error!(
                broker = log.name(),
                id = %log.format_id(id),
                %error,
                "skipping an event that does not decode as this bus's type"
            );
            None
        }
    }
}

/// Runs `op` until it succeeds, waiting longer after each failure (the subscriber just waits
/// while the log is unreachable).
async fn retry<'a, V>(log: &'a dyn Log, what: &str, op: impl Fn() -> LogFuture<'a, V>) -> V {
    let mut backoff = MIN_BACKOFF;
    let mut attempt = 0u32;
    loop {
        match with_timeout(log.timeout(), op()).await {
            Ok(value) => return value,
            Err(error) => {
                attempt += 1;
                if attempt == 1 {
                    tracing::warn!(broker = log.name(), %error, "event bus: cannot {what}; retrying");
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

async fn with_timeout<V>(limit: Duration, op: LogFuture<'_, V>) -> Result<V, LogError> {
    match tokio::time::timeout(limit, op).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {limit:?}").into()),
    }
}

fn unavailable(broker: &str, error: &LogError) -> Error {
    Error::new(
        ErrorCode::ServiceUnavailable,
        "The event bus is unavailable; try again shortly",
    )
    .with_cause(format!("{broker}: {error}"))
}

#[cfg(test)]
mod tests {
    //! The hub machinery over an in-memory log (what a NATS JetStream backend would plug into),
    //! with faults injected: Redis itself is tested in `tests/tests/redis.rs`.

    use std::sync::atomic::{AtomicBool, Ordering};

    use futures_util::StreamExt;

    use super::*;
    use crate::EventBus;

    #[derive(Default)]
    struct VecLog {
        entries: Mutex<Entries>,
        trimmed_before: Mutex<u64>,
        down: AtomicBool,
        notify: tokio::sync::Notify,
    }

    impl VecLog {
        fn check(&self) -> Result<(), LogError> {
            if self.down.load(Ordering::SeqCst) {
                return Err("down".into());
            }
            Ok(())
        }

        fn after(&self, after: LogId, limit: usize) -> Entries {
            let entries = self.entries.lock().expect("lock");
            entries
                .iter()
                .filter(|(id, _)| *id > after)
                .take(limit)
                .cloned()
                .collect()
        }
    }

    impl Log for Arc<VecLog> {
        fn name(&self) -> &'static str {
            "vec"
        }
        fn parse_id(&self, id: &str) -> Option<LogId> {
            Some((id.parse().ok()?, 0))
        }
        fn format_id(&self, id: LogId) -> String {
            id.0.to_string()
        }
        fn timeout(&self) -> Duration {
            Duration::from_millis(200)
        }
        fn append<'a>(&'a self, payload: &'a str) -> LogFuture<'a, LogId> {
            Box::pin(async move {
                self.check()?;
                let mut entries = self.entries.lock().expect("lock");
                let id = (entries.last().map_or(0, |(id, _)| id.0) + 1, 0);
                entries.push((id, Some(payload.to_owned())));
                drop(entries);
                self.notify.notify_waiters();
                Ok(id)
            })
        }
        fn range(&self, after: LogId, limit: usize) -> LogFuture<'_, Entries> {
            Box::pin(async move {
                self.check()?;
                Ok(self.after(after, limit))
            })
        }
        fn last_id(&self) -> LogFuture<'_, LogId> {
            Box::pin(async move {
                self.check()?;
                Ok(self
                    .entries
                    .lock()
                    .expect("lock")
                    .last()
                    .map_or((0, 0), |(id, _)| *id))
            })
        }
        fn lost_after(&self, after: LogId) -> LogFuture<'_, bool> {
            Box::pin(async move {
                self.check()?;
                Ok(after.0 + 1 < *self.trimmed_before.lock().expect("lock"))
            })
        }
        fn tail(&self) -> Box<dyn Tail> {
            Box::new(Arc::clone(self))
        }
    }

    impl Tail for Arc<VecLog> {
        fn next(&mut self, after: LogId, limit: usize) -> LogFuture<'_, Entries> {
            Box::pin(async move {
                loop {
                    let notified = self.notify.notified();
                    self.check()?;
                    let entries = self.after(after, limit);
                    if !entries.is_empty() {
                        return Ok(entries);
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
                }
            })
        }
    }

    fn bus(log: &Arc<VecLog>, buffer: usize) -> EventBus<u32> {
        EventBus {
            backend: Arc::new(LogBus::<u32>::new(Arc::new(Arc::clone(log)), buffer)),
        }
    }

    async fn ids(
        stream: &mut (impl futures_util::Stream<Item = Result<Tracked<u32>, Error>> + Unpin),
        n: usize,
    ) -> Vec<u32> {
        let mut out = Vec::new();
        for _ in 0..n {
            let event = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("deadline")
                .expect("open")
                .expect("event");
            assert_eq!(event.id(), event.data().to_string());
            out.push(*event.data());
        }
        out
    }

    #[tokio::test]
    async fn resume_on_another_process_then_live_without_gaps_or_duplicates() {
        let log = Arc::new(VecLog::default());
        let (a, b) = (bus(&log, 16), bus(&log, 16));
        for n in 1..=5 {
            a.publish(n).await.expect("publish");
        }
        let mut resumed = b.subscribe(Some("2")).await;
        let publisher = tokio::spawn(async move {
            for n in 6..=40 {
                a.publish(n).await.expect("publish");
                tokio::task::yield_now().await;
            }
        });
        assert_eq!(ids(&mut resumed, 38).await, (3..=40).collect::<Vec<_>>());
        publisher.await.expect("publisher");
    }

    #[tokio::test]
    async fn lagging_catches_up_outages_are_waited_out_and_trimmed_history_is_an_error() {
        let log = Arc::new(VecLog::default());
        let a = bus(&log, 2);
        let mut live = a.subscribe(None).await;
        for n in 1..=50 {
            a.publish(n).await.expect("publish");
        }
        // Its buffer holds 2: the rest comes from the log.
        assert_eq!(ids(&mut live, 50).await, (1..=50).collect::<Vec<_>>());

        log.down.store(true, Ordering::SeqCst);
        let error = a.publish(51).await.expect_err("down");
        assert_eq!(error.code(), ErrorCode::ServiceUnavailable);
        assert!(
            error.message().contains("unavailable"),
            "{}",
            error.message()
        );
        log.down.store(false, Ordering::SeqCst);
        a.publish(51).await.expect("publish");
        assert_eq!(ids(&mut live, 1).await, [51]);

        *log.trimmed_before.lock().expect("lock") = 40;
        let mut old = a.subscribe(Some("10")).await;
        let error = old.next().await.expect("item").expect_err("trimmed");
        assert_eq!(error.code(), ErrorCode::PreconditionFailed);
        assert!(old.next().await.is_none());
        drop(live);
        assert_eq!(a.subscriber_count(), 0);
    }
}
