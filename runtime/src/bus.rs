//! An in-memory event bus: publish once, every subscriber gets it; subscribers that resume
//! with a `lastEventId` first get what they missed from a bounded replay buffer.

use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::Stream;
use tokio::sync::broadcast;

use crate::error::{Error, ErrorCode};
use crate::subscription::Tracked;

struct Inner<T> {
    next_id: u64,
    replay: VecDeque<(u64, T)>,
    sender: broadcast::Sender<(u64, T)>,
}

/// Publish/subscribe with tracked ids and a bounded replay buffer (in memory, one process).
///
/// Ids are `"1"`, `"2"`, … in publish order. A subscriber passing the last id it saw gets
/// every later event still in the buffer, then live ones: none is lost or repeated between the
/// two, because the buffer snapshot and the live registration happen under one lock.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use futures_util::StreamExt;
/// use oxrpc::EventBus;
///
/// let bus = EventBus::new(100);
/// bus.publish("first".to_owned());
/// let mut events = bus.subscribe(None);
/// bus.publish("second".to_owned());
/// // A new subscriber starts with live events…
/// assert_eq!(events.next().await.unwrap().unwrap().into_data(), "second");
/// // …and one that resumes after id 1 first gets the replay.
/// let mut resumed = bus.subscribe(Some("1"));
/// assert_eq!(resumed.next().await.unwrap().unwrap().id(), "2");
/// # });
/// ```
pub struct EventBus<T> {
    inner: Arc<Mutex<Inner<T>>>,
    capacity: usize,
}

impl<T> Clone for EventBus<T> {
    fn clone(&self) -> Self {
        EventBus {
            inner: Arc::clone(&self.inner),
            capacity: self.capacity,
        }
    }
}

impl<T> fmt::Debug for EventBus<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventBus")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}

impl<T: Clone + Send + Sync + 'static> EventBus<T> {
    /// A bus remembering the last `replay_capacity` events (at least 1) for resuming
    /// subscribers. A live subscriber may also fall this far behind before it must resync.
    pub fn new(replay_capacity: usize) -> Self {
        let capacity = replay_capacity.max(1);
        let (sender, _) = broadcast::channel(capacity);
        EventBus {
            inner: Arc::new(Mutex::new(Inner {
                next_id: 1,
                replay: VecDeque::with_capacity(capacity),
                sender,
            })),
            capacity,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        // A panic while holding the lock cannot leave the buffer half-updated (each update is
        // one push), so a poisoned lock is still usable.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Publishes an event to every subscriber; returns its id.
    pub fn publish(&self, data: T) -> String {
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        if inner.replay.len() == self.capacity {
            inner.replay.pop_front();
        }
        inner.replay.push_back((id, data.clone()));
        // No receivers is fine: nobody is listening right now.
        let _ = inner.sender.send((id, data));
        id.to_string()
    }

    /// How many subscribers are listening.
    pub fn subscriber_count(&self) -> usize {
        self.lock().sender.receiver_count()
    }

    /// Events after `last_event_id` (from the replay buffer), then live events.
    ///
    /// If the subscriber asks for an id older than the buffer holds, or falls further behind
    /// than the buffer's capacity while live, the stream yields a `PRECONDITION_FAILED` error
    /// and ends: events were lost, and the client must resync.
    pub fn subscribe(
        &self,
        last_event_id: Option<&str>,
    ) -> impl Stream<Item = Result<Tracked<T>, Error>> + Send + Unpin + 'static + use<T> {
        let after: Option<u64> = last_event_id.and_then(|id| id.parse().ok());
        let (receiver, backlog, gap) = {
            let inner = self.lock();
            let receiver = inner.sender.subscribe();
            let oldest = inner.replay.front().map_or(inner.next_id, |(id, _)| *id);
            let gap = after.is_some_and(|a| a + 1 < oldest);
            let backlog: VecDeque<(u64, T)> = match after {
                Some(a) => inner
                    .replay
                    .iter()
                    .filter(|(id, _)| *id > a)
                    .cloned()
                    .collect(),
                None => VecDeque::new(),
            };
            (receiver, backlog, gap)
        };
        let last_sent = backlog.back().map(|(id, _)| *id).or(after).unwrap_or(0);
        let state = State {
            receiver,
            backlog,
            last_sent,
            failed: gap,
        };
        Box::pin(futures_util::stream::unfold(
            state,
            |mut state| async move {
                if state.failed {
                    state.failed = false;
                    state.backlog.clear();
                    let error = Error::new(
                        ErrorCode::PreconditionFailed,
                        "Missed events are no longer available; resubscribe without lastEventId",
                    );
                    // End after this error.
                    state.last_sent = u64::MAX;
                    return Some((Err(error), state));
                }
                if state.last_sent == u64::MAX {
                    return None;
                }
                if let Some((id, data)) = state.backlog.pop_front() {
                    return Some((Ok(Tracked::new(id.to_string(), data)), state));
                }
                loop {
                    match state.receiver.recv().await {
                        Ok((id, _)) if id <= state.last_sent => continue,
                        Ok((id, data)) => {
                            state.last_sent = id;
                            return Some((Ok(Tracked::new(id.to_string(), data)), state));
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            return Some((
                                Err(Error::new(
                                    ErrorCode::PreconditionFailed,
                                    "This subscriber fell too far behind and missed events; resubscribe with its lastEventId",
                                )),
                                State {
                                    last_sent: u64::MAX,
                                    ..state
                                },
                            ));
                        }
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            },
        ))
    }
}

struct State<T> {
    receiver: broadcast::Receiver<(u64, T)>,
    backlog: VecDeque<(u64, T)>,
    last_sent: u64,
    failed: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn resume_replays_then_goes_live_without_gaps_or_duplicates() {
        let bus = EventBus::new(10);
        for i in 0..5 {
            bus.publish(i);
        }
        let mut s = Box::pin(bus.subscribe(Some("2")));
        let publisher = {
            let bus = bus.clone();
            tokio::spawn(async move {
                for i in 5..50 {
                    bus.publish(i);
                    tokio::task::yield_now().await;
                }
            })
        };
        let mut seen = Vec::new();
        while seen.len() < 47 {
            let event = tokio::time::timeout(std::time::Duration::from_secs(5), s.next())
                .await
                .expect("deadline")
                .expect("open")
                .expect("no lag");
            seen.push(event.id().parse::<u64>().expect("id"));
        }
        publisher.await.expect("publisher");
        assert_eq!(seen, (3..=49).collect::<Vec<u64>>());
    }

    #[tokio::test]
    async fn too_old_ids_and_lagging_subscribers_get_an_error() {
        let bus = EventBus::new(3);
        for i in 0..10 {
            bus.publish(i);
        }
        let mut s = Box::pin(bus.subscribe(Some("1")));
        let err = s.next().await.expect("item").expect_err("gap");
        assert_eq!(err.code(), ErrorCode::PreconditionFailed);
        assert!(s.next().await.is_none());

        let mut live = Box::pin(bus.subscribe(None));
        for i in 0..10 {
            bus.publish(i);
        }
        let err = live.next().await.expect("item").expect_err("lagged");
        assert_eq!(err.code(), ErrorCode::PreconditionFailed);
        assert!(live.next().await.is_none());
    }
}
