//! The small synchronization pieces of a connection, sized for idle connections: a bounded
//! queue that allocates only once it holds items (tokio's `mpsc` allocates a block of 32 slots
//! per channel up front: ~1.3 KB for every idle WebSocket), and a one-way closing flag (a
//! `watch` channel carries ~500 B of notifiers for it).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{Notify, Semaphore, TryAcquireError};

struct Shared<T> {
    items: Mutex<VecDeque<T>>,
    /// Free slots; closed when the receiver is gone.
    space: Semaphore,
    /// Wakes the receiver (an item, or the last sender gone).
    ready: Notify,
    senders: AtomicUsize,
}

/// A bounded queue of capacity `capacity` (at least 1).
pub(super) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        items: Mutex::new(VecDeque::new()),
        space: Semaphore::new(capacity.max(1)),
        ready: Notify::new(),
        senders: AtomicUsize::new(1),
    });
    (Sender(Arc::clone(&shared)), Receiver(shared))
}

/// The sending side (cloneable).
pub(super) struct Sender<T>(Arc<Shared<T>>);

/// Why [`Sender::try_send`] did not queue the item.
pub(super) enum TrySendError<T> {
    /// No free slot.
    Full(T),
    /// The receiver is gone.
    Closed,
}

impl<T> Sender<T> {
    /// Queues `item` if there is a free slot.
    pub(super) fn try_send(&self, item: T) -> Result<(), TrySendError<T>> {
        match self.0.space.try_acquire() {
            Ok(permit) => {
                permit.forget();
                self.push(item);
                Ok(())
            }
            Err(TryAcquireError::NoPermits) => Err(TrySendError::Full(item)),
            Err(TryAcquireError::Closed) => Err(TrySendError::Closed),
        }
    }

    /// Queues `item` once a slot is free; `false` if the receiver is gone.
    pub(super) async fn send(&self, item: T) -> bool {
        match self.0.space.acquire().await {
            Ok(permit) => {
                permit.forget();
                self.push(item);
                true
            }
            Err(_) => false,
        }
    }

    fn push(&self, item: T) {
        self.0
            .items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(item);
        self.0.ready.notify_one();
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.0.senders.fetch_add(1, Ordering::Relaxed);
        Sender(Arc::clone(&self.0))
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        if self.0.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.ready.notify_one();
        }
    }
}

/// The receiving side.
pub(super) struct Receiver<T>(Arc<Shared<T>>);

impl<T> Receiver<T> {
    /// The next item; `None` once every sender is gone and the queue is empty.
    pub(super) async fn recv(&mut self) -> Option<T> {
        loop {
            let item = {
                let mut items = self.0.items.lock().unwrap_or_else(PoisonError::into_inner);
                let item = items.pop_front();
                if items.is_empty() && items.capacity() > 0 {
                    // Memory only while there is traffic: an idle connection holds no buffer.
                    *items = VecDeque::new();
                }
                item
            };
            if let Some(item) = item {
                self.0.space.add_permits(1);
                return Some(item);
            }
            if self.0.senders.load(Ordering::Acquire) == 0 {
                return None;
            }
            // `notify_one` keeps a wake-up for a receiver not waiting yet: none is lost
            // between the checks above and this.
            self.0.ready.notified().await;
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.0.space.close();
        self.0
            .items
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Set once, by whoever finds the connection must close (a stalled peer); the read loop
/// waits on it.
#[derive(Default)]
pub(super) struct Closing {
    closed: AtomicBool,
    notify: Notify,
}

impl Closing {
    /// Asks the connection to close.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.notify.notify_waiters();
    }

    /// Whether [`Closing::close`] was called.
    pub(super) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Resolves once [`Closing::close`] is called.
    pub(super) async fn closed(&self) {
        loop {
            let notified = self.notify.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before the check, so a `close` in between is not missed.
            notified.as_mut().enable();
            if self.is_closed() {
                return;
            }
            notified.await;
        }
    }
}

/// A shared [`Closing`].
pub(super) type ClosingFlag = Arc<Closing>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bounded_in_order_and_ends_with_the_senders() {
        let (tx, mut rx) = channel::<u32>(2);
        assert!(tx.try_send(1).is_ok());
        let tx2 = tx.clone();
        assert!(tx2.try_send(2).is_ok());
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        assert_eq!(rx.recv().await, Some(1));
        assert!(tx.send(3).await);
        drop((tx, tx2));
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.recv().await, None);
    }

    #[tokio::test]
    async fn a_waiting_sender_learns_the_receiver_is_gone() {
        let (tx, rx) = channel::<u32>(1);
        assert!(tx.send(1).await);
        let waiting = tokio::spawn(async move { tx.send(2).await });
        tokio::task::yield_now().await;
        drop(rx);
        let sent = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("in time")
            .expect("task");
        assert!(!sent);
    }

    #[tokio::test]
    async fn a_receiver_wakes_for_an_item_sent_later() {
        let (tx, mut rx) = channel::<u32>(4);
        let got = tokio::spawn(async move { rx.recv().await });
        tokio::task::yield_now().await;
        assert!(tx.try_send(7).is_ok());
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), got)
            .await
            .expect("in time")
            .expect("task");
        assert_eq!(got, Some(7));
    }

    #[tokio::test]
    async fn closing_wakes_every_waiter_and_stays_closed() {
        let flag: ClosingFlag = Arc::default();
        let waiter = tokio::spawn({
            let flag = Arc::clone(&flag);
            async move { flag.closed().await }
        });
        tokio::task::yield_now().await;
        assert!(!flag.is_closed());
        flag.close();
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("in time")
            .expect("task");
        assert!(flag.is_closed());
        flag.closed().await;
    }
}
