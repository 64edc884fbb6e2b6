//! `EventBus::redis` against a real `redis-server` (started by each test on a free loopback
//! port): fan-out across processes, resume on another instance, retention, lag, and Redis
//! going away and coming back. Two `Redis` handles stand for two server processes: each has
//! its own connections and its own per-topic reader.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use oxrpc::bus::Redis;
use oxrpc::{Error, ErrorCode, EventBus, Tracked};
use oxrpc_tests::redis_server::RedisServer;
use serde::{Deserialize, Serialize};

const DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Msg {
    n: u32,
}

/// A bus with the default timeout (2 s): the tests run side by side, each with its own
/// `redis-server`, and a first command (which connects) took over 500 ms on a loaded 2-core
/// CI machine.
fn bus(redis: &RedisServer, topic: &str) -> EventBus<Msg> {
    bus_with_timeout(redis, topic, Duration::from_secs(2))
}

fn bus_with_timeout(redis: &RedisServer, topic: &str, timeout: Duration) -> EventBus<Msg> {
    let handle = Redis::open(&redis.url()).expect("url").timeout(timeout);
    EventBus::redis(&handle, topic)
}

async fn next<S: Stream<Item = Result<Tracked<Msg>, Error>> + Unpin>(
    s: &mut S,
) -> Result<Tracked<Msg>, Error> {
    tokio::time::timeout(DEADLINE, s.next())
        .await
        .expect("an event within the deadline")
        .expect("the stream is open")
}

async fn take<S: Stream<Item = Result<Tracked<Msg>, Error>> + Unpin>(
    s: &mut S,
    count: usize,
) -> Vec<(String, u32)> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let event = next(s).await.expect("an event, not an error");
        out.push((event.id().to_owned(), event.data().n));
    }
    out
}

async fn info(redis: &RedisServer, section: &str) -> String {
    let client = redis::Client::open(redis.url()).expect("url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    redis::cmd("INFO")
        .arg(section)
        .query_async::<String>(&mut connection)
        .await
        .expect("INFO")
}

fn stat(info: &str, command: &str) -> u64 {
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next())
        .and_then(|calls| calls.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn events_reach_other_processes_and_resume_on_another_instance() {
    let redis = RedisServer::start();
    let (a, b) = (bus(&redis, "chat"), bus(&redis, "chat"));

    let mut on_b = b.subscribe(None).await;
    let mut published = Vec::new();
    for n in 0..30 {
        published.push((a.publish(Msg { n }).await.expect("publish"), n));
    }
    let seen = take(&mut on_b, 20).await;
    assert_eq!(seen, published[..20]);
    // The client's connection to B breaks after event 20; it reconnects to A with that id.
    drop(on_b);
    let last = seen.last().expect("seen").0.clone();
    let mut on_a = a.subscribe(Some(&last)).await;
    for n in 30..40 {
        published.push((b.publish(Msg { n }).await.expect("publish"), n));
    }
    // Exactly the missed ones, then the live ones: nothing lost, nothing twice.
    assert_eq!(take(&mut on_a, 20).await, published[20..]);
    let extra = tokio::time::timeout(Duration::from_millis(300), on_a.next()).await;
    assert!(extra.is_err(), "no duplicate or stray event: {extra:?}");
}

#[tokio::test]
async fn one_reader_per_topic_per_process_whatever_the_subscriber_count() {
    let redis = RedisServer::start();
    let a = bus(&redis, "fanout");
    let mut subscribers = Vec::new();
    for _ in 0..200 {
        subscribers.push(a.subscribe(None).await);
    }
    assert_eq!(a.subscriber_count(), 200);
    let before = info(&redis, "commandstats").await;
    let publisher = bus(&redis, "fanout");
    for n in 0..50 {
        publisher.publish(Msg { n }).await.expect("publish");
    }
    for s in &mut subscribers {
        let seen: Vec<u32> = take(s, 50).await.into_iter().map(|(_, n)| n).collect();
        assert_eq!(seen, (0..50).collect::<Vec<_>>());
    }
    let after = info(&redis, "commandstats").await;
    let xreads = stat(&after, "xread") - stat(&before, "xread");
    // One reader: at most one XREAD per event (usually fewer: they come in batches), never
    // one per subscriber (that would be 10,000).
    assert!(
        xreads <= 52,
        "{xreads} XREADs for 50 events and 200 subscribers"
    );
    let clients = info(&redis, "clients").await;
    let connected: u64 = clients
        .lines()
        .find_map(|l| l.strip_prefix("connected_clients:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("connected_clients");
    // a: its command connection + one reader; the publisher; this INFO connection.
    assert!(
        connected <= 4,
        "{connected} connections for 200 subscribers"
    );
    // Opening the topic again through the same handle shares the bus and its reader.
    let handle = Redis::open(&redis.url()).expect("url");
    let first: EventBus<Msg> = EventBus::redis(&handle, "again");
    let mut one = first.subscribe(None).await;
    let second: EventBus<Msg> = EventBus::redis(&handle.clone(), "again");
    assert_eq!(second.subscriber_count(), 1, "the same bus");
    second.publish(Msg { n: 7 }).await.expect("publish");
    assert_eq!(take(&mut one, 1).await[0].1, 7);
    drop(subscribers);
    assert_eq!(a.subscriber_count(), 0);
}

#[tokio::test]
async fn trimmed_history_and_foreign_ids_are_clear_errors() {
    let redis = RedisServer::start();
    let handle = Redis::open(&redis.url()).expect("url").retention(10);
    let a: EventBus<Msg> = EventBus::redis(&handle, "short");
    let first = a.publish(Msg { n: 0 }).await.expect("publish");
    let mut newest = first.clone();
    // `MAXLEN ~` trims whole nodes of 100 entries: publish enough for that to happen.
    for n in 1..1000 {
        newest = a.publish(Msg { n }).await.expect("publish");
    }
    let mut too_old = a.subscribe(Some(&first)).await;
    let error = next(&mut too_old)
        .await
        .expect_err("missed events are gone");
    assert_eq!(error.code(), ErrorCode::PreconditionFailed);
    assert!(
        too_old.next().await.is_none(),
        "the stream ends after the error"
    );

    let mut not_an_id = a.subscribe(Some("seven")).await;
    let error = next(&mut not_an_id).await.expect_err("not an id");
    assert_eq!(error.code(), ErrorCode::BadRequest);

    // An id from another history (newer than anything the stream holds).
    let mut future = a.subscribe(Some("99999999999999-0")).await;
    let error = next(&mut future).await.expect_err("foreign id");
    assert_eq!(error.code(), ErrorCode::PreconditionFailed);

    // The newest id misses nothing.
    let mut current = a.subscribe(Some(&newest)).await;
    let id = a.publish(Msg { n: 1000 }).await.expect("publish");
    let event = next(&mut current).await.expect("event");
    assert_eq!((event.id(), event.data().n), (id.as_str(), 1000));
}

#[tokio::test]
async fn a_slow_subscriber_catches_up_from_redis_instead_of_failing() {
    let redis = RedisServer::start();
    let handle = Redis::open(&redis.url()).expect("url").subscriber_buffer(4);
    let a: EventBus<Msg> = EventBus::redis(&handle, "slow");
    let mut slow = a.subscribe(None).await;
    let mut fast = a.subscribe(None).await;
    for n in 0..300 {
        a.publish(Msg { n }).await.expect("publish");
    }
    let fast_seen: Vec<u32> = take(&mut fast, 300)
        .await
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(fast_seen, (0..300).collect::<Vec<_>>());
    // `slow` was not polled while 300 events went by its 4-event buffer.
    let slow_seen: Vec<u32> = take(&mut slow, 300)
        .await
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(slow_seen, (0..300).collect::<Vec<_>>());
}

#[tokio::test]
async fn redis_restarting_loses_nothing_and_publishers_get_a_clear_error_meanwhile() {
    let mut redis = RedisServer::start();
    // The publisher gives up after 1 s, so that it "learns quickly" below.
    let a = bus_with_timeout(&redis, "restart", Duration::from_secs(1));
    let b = bus(&redis, "restart");
    let mut on_b = b.subscribe(None).await;

    let mut published = Vec::new();
    for n in 0..20 {
        published.push((a.publish(Msg { n }).await.expect("publish"), n));
    }
    assert_eq!(take(&mut on_b, 10).await, published[..10]);

    redis.kill();
    let started = std::time::Instant::now();
    let error = a.publish(Msg { n: 999 }).await.expect_err("Redis is down");
    assert_eq!(error.code(), ErrorCode::ServiceUnavailable);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the publisher learns quickly: {:?}",
        started.elapsed()
    );
    // A new subscriber while Redis is down gets a clear error too.
    let mut fresh = a.subscribe(None).await;
    assert_eq!(
        next(&mut fresh).await.expect_err("down").code(),
        ErrorCode::ServiceUnavailable
    );

    redis.restart();
    // Publishing works again once Redis is back (the first tries may meet the dead
    // connection). A try that failed may still have been stored, its reply lost with the
    // connection: each try publishes a new number, so such an event is told apart.
    let mut n = 20;
    let mut failed = Vec::new();
    let deadline = std::time::Instant::now() + DEADLINE;
    while published.len() < 40 {
        match a.publish(Msg { n }).await {
            Ok(id) => published.push((id, n)),
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::ServiceUnavailable);
                assert!(
                    std::time::Instant::now() < deadline,
                    "Redis never came back"
                );
                failed.push(n);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        n += 1;
    }
    // The subscriber waited through the outage and got every event exactly once, in order
    // (and a failed try that was stored after all, at most once).
    let mut got = take(&mut on_b, 30).await;
    loop {
        match tokio::time::timeout(Duration::from_millis(300), on_b.next()).await {
            Err(_) => break,
            Ok(Some(Ok(event))) => got.push((event.id().to_owned(), event.data().n)),
            Ok(other) => panic!("an event or nothing, got {other:?}"),
        }
    }
    let (stored_anyway, confirmed): (Vec<_>, Vec<_>) =
        got.into_iter().partition(|(_, n)| failed.contains(n));
    assert_eq!(confirmed, published[10..]);
    let mut numbers: Vec<u32> = stored_anyway.iter().map(|(_, n)| *n).collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(
        numbers.len(),
        stored_anyway.len(),
        "no duplicate: {stored_anyway:?}"
    );
}

#[tokio::test]
async fn entries_not_written_by_a_bus_are_skipped_without_stalling_anyone() {
    let redis = RedisServer::start();
    let a = bus(&redis, "mixed");
    let mut live = a.subscribe(None).await;
    let first = a.publish(Msg { n: 0 }).await.expect("publish");
    // Someone else writes into the stream: other fields, or JSON of another shape.
    let client = redis::Client::open(redis.url()).expect("url");
    let mut raw = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    for _ in 0..300 {
        redis::cmd("XADD")
            .arg("oxrpc:mixed")
            .arg("*")
            .arg("x")
            .arg("y")
            .query_async::<String>(&mut raw)
            .await
            .expect("XADD");
    }
    redis::cmd("XADD")
        .arg("oxrpc:mixed")
        .arg("*")
        .arg("d")
        .arg(r#"{"n":"not a number","extra":1}"#)
        .query_async::<String>(&mut raw)
        .await
        .expect("XADD");
    let last = a.publish(Msg { n: 1 }).await.expect("publish");
    // Live: both events, the rest skipped.
    let seen: Vec<u32> = take(&mut live, 2)
        .await
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(seen, [0, 1]);
    // Resuming across more than a page of foreign entries still reaches the last event.
    let mut resumed = a.subscribe(Some(&first)).await;
    let event = next(&mut resumed).await.expect("event");
    assert_eq!((event.id(), event.data().n), (last.as_str(), 1));
}
