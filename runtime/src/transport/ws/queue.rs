//! The connection's queue, sized for idle connections: bounded, it allocates only while it
//! holds items (tokio's `mpsc` allocates a block of 32 slots per channel up front: ~1.3 KB
//! for every idle WebSocket), and its one receiver (the connection's task, which polls it on
//! every turn of its loop) finds it empty without taking a lock. It also carries the
//! connection's closing flag: a sender that finds the peer stalled closes the queue, and the
//! receiver wakes to end the connection.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use futures_util::task::AtomicWaker;
use tokio::sync::{Semaphore, TryAcquireError};

struct Shared<T> {
    items: Mutex<VecDeque<T>>,
    /// How many items `items` holds, readable without the lock.
    len: AtomicUsize,
    /// Free slots; closed when the receiver is gone.
    space: Semaphore,
    /// Wakes the receiver (an item, the connection closing, or the last sender gone).
    ready: AtomicWaker,
    senders: AtomicUsize,
    /// Set once the connection must close (a stalled peer).
    closing: AtomicBool,
}

/// A bounded queue of capacity `capacity` (at least 1).
pub(super) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let shared = Arc::new(Shared {
        items: Mutex::new(VecDeque::new()),
        len: AtomicUsize::new(0),
        space: Semaphore::new(capacity.max(1)),
        ready: AtomicWaker::new(),
        senders: AtomicUsize::new(1),
        closing: AtomicBool::new(false),
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

    /// Asks the connection to close: the receiver wakes and ends.
    pub(super) fn close_connection(&self) {
        self.0.closing.store(true, Ordering::Release);
        self.0.ready.wake();
    }

    fn push(&self, item: T) {
        {
            let mut items = self.0.items.lock().unwrap_or_else(PoisonError::into_inner);
            items.push_back(item);
            self.0.len.store(items.len(), Ordering::Release);
        }
        self.0.ready.wake();
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
            self.0.ready.wake();
        }
    }
}

/// The receiving side.
pub(super) struct Receiver<T>(Arc<Shared<T>>);

impl<T> Receiver<T> {
    /// Whether a sender asked the connection to close.
    pub(super) fn is_closing(&self) -> bool {
        self.0.closing.load(Ordering::Acquire)
    }

    /// The next item if one is queued.
    pub(super) fn try_recv(&mut self) -> Option<T> {
        if self.0.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let item = {
            let mut items = self.0.items.lock().unwrap_or_else(PoisonError::into_inner);
            let item = items.pop_front();
            self.0.len.store(items.len(), Ordering::Release);
            if items.is_empty() && items.capacity() > 0 {
                // Memory only while there is traffic: an idle connection holds no buffer.
                *items = VecDeque::new();
            }
            item
        };
        if item.is_some() {
            self.0.space.add_permits(1);
        }
        item
    }

    /// The next item; `None` once the connection is closing, or every sender is gone and
    /// the queue is empty.
    pub(super) async fn recv(&mut self) -> Option<T> {
        std::future::poll_fn(|cx| self.poll_recv(cx)).await
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        for registered in [false, true] {
            if self.is_closing() {
                return Poll::Ready(None);
            }
            if let Some(item) = self.try_recv() {
                return Poll::Ready(Some(item));
            }
            if self.0.senders.load(Ordering::Acquire) == 0 {
                return Poll::Ready(None);
            }
            if !registered {
                // Registered before the second look: a wake-up in between is not lost.
                self.0.ready.register(cx.waker());
            }
        }
        Poll::Pending
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
    async fn closing_wakes_the_receiver_and_stays_closed() {
        let (tx, mut rx) = channel::<u32>(4);
        assert!(tx.try_send(1).is_ok());
        assert_eq!(rx.recv().await, Some(1));
        let got = tokio::spawn(async move {
            let first = rx.recv().await;
            (first, rx.is_closing())
        });
        tokio::task::yield_now().await;
        tx.close_connection();
        let got = tokio::time::timeout(std::time::Duration::from_secs(5), got)
            .await
            .expect("in time")
            .expect("task");
        assert_eq!(got, (None, true));
    }
}
