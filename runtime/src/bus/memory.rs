//! The in-memory broker: a bounded replay buffer plus a broadcast channel, one process.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::protocol::superjson::Annotated;
use tokio::sync::broadcast;

use super::{Backend, BackendFuture, BusStream};
use crate::error::Error;
use crate::subscription::Tracked;

/// One published event: its id, its data and the data's JSON (shared by every subscriber).
type Entry<T> = (u64, T, Arc<Annotated>);

struct Inner<T> {
    next_id: u64,
    replay: VecDeque<Entry<T>>,
    sender: broadcast::Sender<Entry<T>>,
}

/// Ids are `1`, `2`, … in publish order. The replay snapshot and the live registration of a
/// subscriber happen under one lock, so none is lost or repeated between the two.
pub(super) struct MemoryBus<T> {
    inner: Mutex<Inner<T>>,
    capacity: usize,
}

impl<T: Clone + Send + Sync + 'static> MemoryBus<T> {
    pub(super) fn new(replay_capacity: usize) -> Self {
        let capacity = replay_capacity.max(1);
        let (sender, _) = broadcast::channel(capacity);
        MemoryBus {
            inner: Mutex::new(Inner {
                next_id: 1,
                replay: VecDeque::with_capacity(capacity),
                sender,
            }),
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

    fn publish_now(&self, data: T, json: Arc<Annotated>) -> String {
        let mut inner = self.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        if inner.replay.len() == self.capacity {
            inner.replay.pop_front();
        }
        inner
            .replay
            .push_back((id, data.clone(), Arc::clone(&json)));
        // No receivers is fine: nobody is listening right now.
        let _ = inner.sender.send((id, data, json));
        id.to_string()
    }

    fn subscribe_now(&self, last_event_id: Option<&str>) -> BusStream<T> {
        let after = match last_event_id.map(str::parse::<u64>) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err(_)) => return super::failed(super::unknown_id()),
        };
        let (receiver, backlog, last_sent) = {
            let inner = self.lock();
            if let Some(after) = after {
                let oldest = inner.replay.front().map_or(inner.next_id, |(id, ..)| *id);
                // Missed events trimmed from the buffer, or an id from before a restart (this
                // bus never issued it): either way the client cannot resume from it.
                if after.saturating_add(1) < oldest || after >= inner.next_id {
                    return super::failed(super::missed_events_gone());
                }
            }
            let backlog: VecDeque<Entry<T>> = match after {
                Some(a) => inner
                    .replay
                    .iter()
                    .filter(|(id, ..)| *id > a)
                    .cloned()
                    .collect(),
                None => VecDeque::new(),
            };
            let last_sent = backlog
                .back()
                .map(|(id, ..)| *id)
                .or(after)
                .unwrap_or(inner.next_id - 1);
            (inner.sender.subscribe(), backlog, last_sent)
        };
        Box::pin(async_stream::stream! {
            let (mut receiver, mut last_sent) = (receiver, last_sent);
            for (id, data, json) in backlog {
                yield Ok(Tracked::pre_encoded(id.to_string(), data, json));
            }
            loop {
                match receiver.recv().await {
                    Ok((id, ..)) if id <= last_sent => continue,
                    Ok((id, data, json)) => {
                        last_sent = id;
                        yield Ok(Tracked::pre_encoded(id.to_string(), data, json));
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        yield Err(super::fell_behind());
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        })
    }
}

impl<T: Clone + Send + Sync + 'static> Backend<T> for MemoryBus<T> {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn publish(&self, data: T, json: Arc<Annotated>) -> BackendFuture<'_, Result<String, Error>> {
        let id = self.publish_now(data, json);
        Box::pin(std::future::ready(Ok(id)))
    }

    fn subscribe<'a>(&'a self, last_event_id: Option<&'a str>) -> BackendFuture<'a, BusStream<T>> {
        Box::pin(std::future::ready(self.subscribe_now(last_event_id)))
    }

    fn subscriber_count(&self) -> usize {
        self.lock().sender.receiver_count()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::StreamExt;

    use crate::EventBus;
    use crate::error::ErrorCode;

    #[tokio::test]
    async fn resume_replays_then_goes_live_without_gaps_or_duplicates() {
        let bus = EventBus::new(10);
        for i in 0..5 {
            bus.publish(i).await.expect("publish");
        }
        let mut s = bus.subscribe(Some("2")).await;
        let publisher = {
            let bus = bus.clone();
            tokio::spawn(async move {
                for i in 5..50 {
                    bus.publish(i).await.expect("publish");
                    tokio::task::yield_now().await;
                }
            })
        };
        let mut seen = Vec::new();
        while seen.len() < 47 {
            let event = tokio::time::timeout(Duration::from_secs(5), s.next())
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
            bus.publish(i).await.expect("publish");
        }
        let mut s = bus.subscribe(Some("1")).await;
        let err = s.next().await.expect("item").expect_err("gap");
        assert_eq!(err.code(), ErrorCode::PreconditionFailed);
        assert!(s.next().await.is_none());

        let mut live = bus.subscribe(None).await;
        for i in 0..10 {
            bus.publish(i).await.expect("publish");
        }
        let err = live.next().await.expect("item").expect_err("lagged");
        assert_eq!(err.code(), ErrorCode::PreconditionFailed);
        assert!(live.next().await.is_none());
    }

    #[tokio::test]
    async fn ids_it_never_issued_are_refused() {
        let bus = EventBus::new(3);
        bus.publish(1).await.expect("publish");
        // From before a restart: silently skipping ids up to it would lose events.
        let mut s = bus.subscribe(Some("57")).await;
        let err = s.next().await.expect("item").expect_err("unknown");
        assert_eq!(err.code(), ErrorCode::PreconditionFailed);
        let mut s = bus.subscribe(Some("abc")).await;
        let err = s.next().await.expect("item").expect_err("malformed");
        assert_eq!(err.code(), ErrorCode::BadRequest);
        // The newest id is fine: nothing missed.
        let mut s = bus.subscribe(Some("1")).await;
        bus.publish(2).await.expect("publish");
        assert_eq!(s.next().await.expect("item").expect("event").id(), "2");
    }
}
