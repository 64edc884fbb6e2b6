//! Closing the standalone server's idle connections: a connection that has had no request in
//! flight, and started none, for the header-read timeout is closed. One sweep task looks at
//! every connection a few times per timeout, where hyper's own `header_read_timeout` creates,
//! registers and drops a timer for every request (about 1,600 instructions of a 20,000
//! instruction `GET`). A connection counts its requests with two atomic additions each.
//!
//! What a client sees is what hyper's timeout did: a connection that does not finish a
//! request's headers within the timeout (half a request line, a half-open socket) or that
//! stays idle between requests is closed; a request in flight, however long (a slow
//! procedure, an event stream, a body still being written to a slow reader), keeps its
//! connection. The close comes at least the timeout after the connection was last active and
//! at most a sweep period later (a quarter of the timeout, at most 1 s).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::AbortHandle;

/// How many requests a connection has started and finished (each wrapping).
#[derive(Debug, Default)]
pub(crate) struct Activity {
    started: AtomicU32,
    finished: AtomicU32,
}

impl Activity {
    /// Counts a request in, until the returned guard is dropped (with its response body,
    /// once hyper has written it, or with the request's future if it was cancelled).
    pub(crate) fn start(self: &Arc<Self>) -> InFlight {
        self.started.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// The counts as the sweep compares them. The two loads are not one snapshot, but a
    /// request counted between them makes the counts differ (in flight, or changed since the
    /// last sweep), which only keeps the connection.
    fn counts(&self) -> (u32, u32) {
        let started = self.started.load(Ordering::Relaxed);
        (started, self.finished.load(Ordering::Relaxed))
    }
}

/// A request in flight on a connection (see [`Activity::start`]).
#[derive(Debug)]
pub(crate) struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.finished.fetch_add(1, Ordering::Relaxed);
    }
}

/// A server's sweep of its connections, running until this is dropped.
#[derive(Debug)]
pub(crate) struct Sweeping {
    connections: Arc<IdleConnections>,
    task: AbortHandle,
}

impl Sweeping {
    /// Starts sweeping every [`IdleConnections::period`] (on the current runtime).
    pub(crate) fn start(timeout: Duration) -> Self {
        let connections = Arc::new(IdleConnections::new(timeout));
        let swept = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            let period = swept.period;
            loop {
                // A fresh timer per sweep (an `Interval` would stay armed while waiting).
                tokio::time::sleep(period).await;
                if swept.sweep() == 0 {
                    // Nothing to watch (e.g. only WebSocket connections, which leave once
                    // upgraded): no timer stays registered, which every worker would
                    // otherwise consult each time it parks.
                    swept.added.notified().await;
                }
            }
        });
        Sweeping {
            connections,
            task: task.abort_handle(),
        }
    }

    /// Serves a connection on a task of its own, watched while it runs; `activity` counts
    /// its requests. The task forgets itself when it ends: a task's memory (its future's
    /// size, kilobytes for a hyper connection) stays allocated while a handle to it lives.
    pub(crate) fn spawn(
        &self,
        activity: Arc<Activity>,
        connection: impl Future<Output = ()> + Send + 'static,
    ) {
        let id = self.connections.next_id.fetch_add(1, Ordering::Relaxed);
        let forget = Forget {
            connections: Arc::clone(&self.connections),
            id,
        };
        let task = tokio::spawn(async move {
            let _forget = forget;
            connection.await;
        });
        self.connections.watch(id, activity, task.abort_handle());
    }
}

impl Drop for Sweeping {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forgets its connection when dropped (with the connection's future: ended or aborted).
struct Forget {
    connections: Arc<IdleConnections>,
    id: u64,
}

impl Drop for Forget {
    fn drop(&mut self) {
        self.connections.forget(self.id);
    }
}

/// The server's connections, swept for idle ones.
#[derive(Debug)]
struct IdleConnections {
    /// How often connections are looked at: a quarter of the timeout, at most 1 s.
    period: Duration,
    /// Sweeps of idleness that add up to the timeout.
    needed_sweeps: u32,
    watched: Mutex<HashMap<u64, Watched>>,
    next_id: AtomicU64,
    /// Told of each connection watched (the sweep waits for one when it has none).
    added: Notify,
}

#[derive(Debug)]
struct Watched {
    activity: Arc<Activity>,
    /// The connection's task: aborting it drops the connection, closing its socket.
    task: AbortHandle,
    /// The counts at the last sweep that saw them change (`None`: not swept yet).
    seen: Option<(u32, u32)>,
    /// Sweeps since then that found the connection idle.
    idle_sweeps: u32,
}

impl IdleConnections {
    fn new(timeout: Duration) -> Self {
        let period = (timeout / 4).clamp(Duration::from_millis(1), Duration::from_secs(1));
        let needed_sweeps =
            u32::try_from(timeout.as_nanos().div_ceil(period.as_nanos())).unwrap_or(u32::MAX);
        IdleConnections {
            period,
            needed_sweeps,
            watched: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            added: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Watched>> {
        self.watched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn watch(&self, id: u64, activity: Arc<Activity>, task: AbortHandle) {
        let watched = Watched {
            activity,
            task,
            seen: None,
            idle_sweeps: 0,
        };
        self.lock().insert(id, watched);
        // A permit is kept if the sweep is not waiting yet.
        self.added.notify_one();
    }

    /// Forgets an ended connection. (One that ended before it was watched is forgotten by
    /// the next sweep, which finds its task finished.)
    fn forget(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// One look at every connection: forgets the ended ones and closes those idle for the
    /// timeout. Idle time is counted from the first sweep that saw the connection's counts
    /// as they are now, so it is never overestimated. Returns how many are still watched.
    fn sweep(&self) -> usize {
        let mut idle = Vec::new();
        let mut watched = self.lock();
        watched.retain(|_, conn| {
            if conn.task.is_finished() {
                return false;
            }
            let counts = conn.activity.counts();
            let (started, finished) = counts;
            if started != finished || conn.seen != Some(counts) {
                conn.seen = Some(counts);
                conn.idle_sweeps = 0;
                return true;
            }
            conn.idle_sweeps += 1;
            if conn.idle_sweeps >= self.needed_sweeps {
                idle.push(conn.task.clone());
                return false;
            }
            true
        });
        // After a burst of connections, give the room back.
        if watched.capacity() > 64 && watched.len() < watched.capacity() / 4 {
            let keep = watched.len() * 2;
            watched.shrink_to(keep);
        }
        let left = watched.len();
        drop(watched);
        // Outside the lock: an aborted task forgets itself when it is dropped.
        for task in idle {
            task.abort();
        }
        left
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending_task() -> tokio::task::JoinHandle<()> {
        tokio::spawn(std::future::pending())
    }

    /// Connections swept with a timeout of 4 periods of 1 s, watching one pending task.
    fn one_watched() -> (IdleConnections, Arc<Activity>, tokio::task::JoinHandle<()>) {
        let idle = IdleConnections::new(Duration::from_secs(4));
        let activity = Arc::new(Activity::default());
        let task = pending_task();
        idle.watch(0, Arc::clone(&activity), task.abort_handle());
        (idle, activity, task)
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed_after_the_timeout_and_not_before() {
        // The first sweep records, four more count.
        let (idle, _activity, task) = one_watched();
        for _ in 0..4 {
            idle.sweep();
            assert_eq!(idle.len(), 1);
        }
        idle.sweep();
        assert_eq!(idle.len(), 0, "closed on the fifth sweep");
        let ended = task.await.expect_err("aborted");
        assert!(ended.is_cancelled());
    }

    #[tokio::test]
    async fn a_request_in_flight_keeps_its_connection_and_its_end_restarts_the_count() {
        let (idle, activity, task) = one_watched();
        let request = activity.start();
        for _ in 0..10 {
            idle.sweep();
        }
        assert_eq!(idle.len(), 1, "in flight: kept");
        drop(request);
        // The end is seen (recorded), then three idle sweeps: not yet.
        for _ in 0..4 {
            idle.sweep();
        }
        assert_eq!(idle.len(), 1);
        // A request started and finished between sweeps counts as activity.
        drop(activity.start());
        for _ in 0..4 {
            idle.sweep();
        }
        assert_eq!(idle.len(), 1);
        idle.sweep();
        assert_eq!(idle.len(), 0);
        assert!(task.await.expect_err("aborted").is_cancelled());
    }

    #[tokio::test]
    async fn ended_connections_are_forgotten_and_their_room_given_back() {
        let idle = IdleConnections::new(Duration::from_secs(30));
        for id in 0..100 {
            let task = tokio::spawn(async {});
            idle.watch(id, Arc::new(Activity::default()), task.abort_handle());
            task.await.expect("ran");
        }
        idle.sweep();
        assert_eq!(idle.len(), 0);
        let capacity = idle.lock().capacity();
        assert!(capacity < 100, "{capacity}");
    }

    #[tokio::test]
    async fn a_served_connection_forgets_itself_when_it_ends() {
        let sweeping = Sweeping::start(Duration::from_secs(30));
        let (end, ended) = tokio::sync::oneshot::channel::<()>();
        sweeping.spawn(Arc::new(Activity::default()), async move {
            let _ = ended.await;
        });
        assert_eq!(sweeping.connections.len(), 1);
        end.send(()).expect("running");
        tokio::time::timeout(Duration::from_secs(5), async {
            while sweeping.connections.len() > 0 {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("forgotten without a sweep");
    }

    #[tokio::test]
    async fn the_sweep_waits_for_connections_and_closes_one_watched_later() {
        let sweeping = Sweeping::start(Duration::from_millis(40));
        // Long enough for sweeps to find nothing and wait for a connection.
        tokio::time::sleep(Duration::from_millis(60)).await;
        let (closed, on_close) = tokio::sync::oneshot::channel::<()>();
        let watched_at = std::time::Instant::now();
        sweeping.spawn(Arc::new(Activity::default()), async move {
            // Dropped, never sent, when the task is aborted.
            let _closed = closed;
            std::future::pending::<()>().await;
        });
        tokio::time::timeout(Duration::from_secs(5), on_close)
            .await
            .expect("closed within 5 s")
            .expect_err("dropped, not sent");
        assert!(watched_at.elapsed() >= Duration::from_millis(40));
        assert_eq!(sweeping.connections.len(), 0);
    }

    #[test]
    fn the_period_is_a_quarter_of_the_timeout_at_most_a_second() {
        let period = |ms| IdleConnections::new(Duration::from_millis(ms)).period;
        assert_eq!(period(300), Duration::from_millis(75));
        assert_eq!(period(30_000), Duration::from_secs(1));
        assert_eq!(period(0), Duration::from_millis(1));
    }
}
