//! Who is connected: the live WebSocket connections of a server (count, limit, broadcast
//! control, drain on shutdown), and each connection's live subscriptions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// What the server can tell every WebSocket connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Control {
    /// Tell the client to reconnect, and keep serving.
    Reconnect,
    /// Close at once.
    Drop,
}

/// The live WebSocket connections of one server.
#[derive(Debug)]
pub(crate) struct Connections {
    count: AtomicUsize,
    /// Moves with every control message, before `changed` wakes the connections: a
    /// connection's task checks it with one load per turn of its loop, and stays registered
    /// with `changed` in between (nothing to poll, no lock, on a turn for a frame).
    epoch: AtomicU32,
    changed: Notify,
    idle: Notify,
    /// Set by [`Control::Drop`]: a connection stuck writing to a stalled peer gives up.
    dropping: AtomicBool,
    dropped: Notify,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            count: AtomicUsize::new(0),
            epoch: AtomicU32::new(0),
            changed: Notify::new(),
            idle: Notify::new(),
            dropping: AtomicBool::new(false),
            dropped: Notify::new(),
        }
    }
}

impl Connections {
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Tells every connection: `Reconnect` (each tells its client) or `Drop` (each closes).
    pub(crate) fn broadcast(&self, control: Control) {
        if control == Control::Drop {
            self.dropping.store(true, Ordering::Release);
            self.dropped.notify_waiters();
        }
        // Moved before the wake-up: a connection woken by it sees it.
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.changed.notify_waiters();
    }

    /// How many control messages were sent so far (wrapping).
    pub(super) fn epoch(&self) -> u32 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Completes at the next control message after it was created (poll it once to be woken).
    pub(super) fn changed(&self) -> Notified<'_> {
        self.changed.notified()
    }

    /// What the control messages say now: close (a `Drop` was sent), or reconnect.
    pub(super) fn latest(&self) -> Control {
        if self.dropping.load(Ordering::Acquire) {
            Control::Drop
        } else {
            Control::Reconnect
        }
    }

    /// Resolves once every connection has been told to close at once ([`Control::Drop`]).
    pub(super) async fn dropping(&self) {
        let notified = self.dropped.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the check, so a `broadcast` in between is not missed.
        notified.as_mut().enable();
        if self.dropping.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }

    /// Takes a connection slot, unless `max` connections are open already.
    pub(super) fn admit(self: &Arc<Self>, max: usize) -> Option<Slot> {
        let slot = Slot(Arc::clone(self));
        (self.count.fetch_add(1, Ordering::SeqCst) < max).then_some(slot)
    }

    /// Waits until no connection is left, or `timeout` passes; returns whether all closed.
    pub(crate) async fn drained(&self, timeout: Duration) -> bool {
        let wait = async {
            loop {
                let idle = self.idle.notified();
                if self.count() == 0 {
                    return;
                }
                idle.await;
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok()
    }
}

/// One connection's place in the count, given back when the connection ends, however it ends.
pub(super) struct Slot(Arc<Connections>);

impl Drop for Slot {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// Live subscriptions of a connection: client id → generation (ids may be reused).
pub(super) type Subscriptions = Arc<Mutex<HashMap<String, u64>>>;

/// Forgets a subscription, unless it was stopped or its id reused by a newer one meanwhile;
/// `true` if it was still registered.
pub(super) fn unregister(subscriptions: &Subscriptions, key: &str, generation: u64) -> bool {
    if let Ok(mut live) = subscriptions.lock()
        && live.get(key) == Some(&generation)
    {
        live.remove(key);
        return true;
    }
    false
}

/// Whether the subscription with this key and generation is still wanted.
pub(super) fn is_live(subscriptions: &Subscriptions, key: &str, generation: u64) -> bool {
    subscriptions
        .lock()
        .map(|live| live.get(key) == Some(&generation))
        .unwrap_or(false)
}
