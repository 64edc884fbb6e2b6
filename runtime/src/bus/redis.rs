//! The Redis broker: one Redis stream per topic (`XADD` with `MAXLEN ~`, `XRANGE`, `XREAD
//! BLOCK`), through the `redis` crate (redis-rs: the most used Rust client, maintained by the
//! Redis organisation, tokio support and multiplexed connections built in).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Value};
use tokio::sync::Mutex;

use super::log::{Entries, Log, LogError, LogFuture, LogId, Tail};

/// Open buses by stream key and bus type (weak: a bus nobody uses goes away).
type Buses = std::collections::HashMap<
    (String, std::any::TypeId),
    std::sync::Weak<dyn std::any::Any + Send + Sync>,
>;

/// How long one blocking read of a topic's reader waits for new entries.
const BLOCK: Duration = Duration::from_secs(5);

/// A Redis server (or compatible: Valkey, KeyDB) shared by the instances of a server, for
/// [`EventBus::redis`](crate::EventBus::redis). Requires Redis 7.0 or newer (its `XINFO STREAM`
/// fields tell a resuming client whether it missed trimmed events).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// use oxrpc::EventBus;
/// use oxrpc::bus::Redis;
///
/// let redis = Redis::open("redis://127.0.0.1:6379")?.retention(100_000);
/// let posts: EventBus<String> = EventBus::redis(&redis, "posts");
/// let id = posts.publish("hello".to_owned()).await?; // e.g. "1733071234567-0"
/// # Ok(()) }
/// ```
///
/// **Guarantees.** Every instance appends to and tails the same stream (key: prefix + topic),
/// so a subscriber gets events published on any instance, and a client that reconnects to
/// any instance with `lastEventId` gets exactly the events it missed, then live ones. Each
/// process runs one reader per topic, shared by all its subscribers.
///
/// **Limits.** Retention is `MAXLEN ~ retention` entries per topic (default 10,000): a
/// client that missed more than that gets `PRECONDITION_FAILED` and must resync. While Redis
/// is unreachable, publishing fails with `SERVICE_UNAVAILABLE` after [`Redis::timeout`],
/// subscribers wait and then resume where they were, and queries and mutations that do not
/// publish are unaffected. To survive a restart of Redis itself without losing events, give
/// it persistence (`appendonly yes`; `appendfsync always` for no loss at all).
#[derive(Clone)]
pub struct Redis {
    client: Client,
    connection: Arc<Mutex<Option<MultiplexedConnection>>>,
    /// The buses opened through this handle and its clones, by key and event type, so that
    /// opening a topic again shares its reader instead of starting another.
    buses: Arc<std::sync::Mutex<Buses>>,
    prefix: String,
    retention: usize,
    timeout: Duration,
    buffer: usize,
}

impl fmt::Debug for Redis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redis")
            .field("server", &self.client.get_connection_info().addr())
            .field("prefix", &self.prefix)
            .field("retention", &self.retention)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Redis {
    /// A Redis at `url` (`redis://[user:password@]host:port[/db]`, or `rediss://` for TLS
    /// when the `redis` crate is built with TLS). Only the URL is checked here; connections
    /// are made on first use and remade after failures.
    pub fn open(url: &str) -> Result<Redis, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Redis {
            client: Client::open(url)?,
            connection: Arc::default(),
            buses: Arc::default(),
            prefix: "oxrpc:".to_owned(),
            retention: 10_000,
            timeout: Duration::from_secs(2),
            buffer: 1024,
        })
    }

    /// The prefix of the stream keys (default `oxrpc:`; topic `posts` is key `oxrpc:posts`).
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// About how many events each topic keeps for resuming clients (default 10,000; at least
    /// 1; Redis trims with `MAXLEN ~`, so a few more may stay).
    pub fn retention(mut self, events: usize) -> Self {
        self.retention = events.max(1);
        self
    }

    /// How long one Redis operation may take (default 2 s): a publish that gets no answer in
    /// time fails with `SERVICE_UNAVAILABLE`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How many events a subscriber may fall behind the live stream (default 1,024) before
    /// it reads the rest from Redis instead (so a slow subscriber costs bounded memory).
    pub fn subscriber_buffer(mut self, events: usize) -> Self {
        self.buffer = events.max(1);
        self
    }

    pub(super) fn buffer_size(&self) -> usize {
        self.buffer
    }

    /// The bus of `topic` for events of type `T`: the one already open through this handle
    /// (or a clone), else a new one made by `open`.
    pub(super) fn shared_bus<B: Send + Sync + 'static>(
        &self,
        topic: &str,
        open: impl FnOnce() -> Arc<B>,
    ) -> Arc<B> {
        let key = (
            format!("{}{topic}", self.prefix),
            std::any::TypeId::of::<B>(),
        );
        let mut buses = self
            .buses
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        buses.retain(|_, bus| bus.strong_count() > 0);
        if let Some(bus) = buses
            .get(&key)
            .and_then(|bus| bus.upgrade())
            .and_then(|bus| bus.downcast::<B>().ok())
        {
            return bus;
        }
        let bus = open();
        let erased: Arc<dyn std::any::Any + Send + Sync> = bus.clone();
        buses.insert(key, Arc::downgrade(&erased));
        bus
    }

    pub(super) fn log(&self, topic: &str) -> Arc<dyn Log> {
        Arc::new(Topic {
            redis: self.clone(),
            key: format!("{}{topic}", self.prefix),
        })
    }

    fn config(&self, response: Duration) -> AsyncConnectionConfig {
        AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(response))
    }

    /// Runs `cmd` on the shared connection, connecting first if needed; a failed connection
    /// is dropped so the next command makes a new one. An idempotent command that failed on
    /// a connection Redis had closed (e.g. it restarted) is tried once more on a new one.
    async fn query(&self, cmd: &redis::Cmd, idempotent: bool) -> Result<Value, LogError> {
        let mut tries = if idempotent { 2 } else { 1 };
        loop {
            tries -= 1;
            let mut connection = {
                let mut shared = self.connection.lock().await;
                match &*shared {
                    Some(connection) => connection.clone(),
                    None => {
                        let connection = self
                            .client
                            .get_multiplexed_async_connection_with_config(
                                &self.config(self.timeout),
                            )
                            .await?;
                        shared.insert(connection).clone()
                    }
                }
            };
            match cmd.query_async::<Value>(&mut connection).await {
                Ok(value) => return Ok(value),
                // Redis answered: the connection is fine.
                Err(error) if matches!(error.kind(), redis::ErrorKind::Server(_)) => {
                    return Err(error.into());
                }
                Err(error) => {
                    *self.connection.lock().await = None;
                    if tries == 0 || !error.is_connection_dropped() {
                        return Err(error.into());
                    }
                }
            }
        }
    }
}

/// One topic: one stream.
struct Topic {
    redis: Redis,
    key: String,
}

impl Log for Topic {
    fn name(&self) -> &'static str {
        "redis"
    }

    fn parse_id(&self, id: &str) -> Option<LogId> {
        parse_id(id)
    }

    fn format_id(&self, (ms, seq): LogId) -> String {
        format!("{ms}-{seq}")
    }

    fn timeout(&self) -> Duration {
        self.redis.timeout
    }

    fn append<'a>(&'a self, payload: &'a str) -> LogFuture<'a, LogId> {
        Box::pin(async move {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(&self.key)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.redis.retention)
                .arg("*")
                .arg("d")
                .arg(payload);
            let reply = self.redis.query(&cmd, false).await?;
            id_of(&reply).ok_or_else(|| malformed("XADD", &reply))
        })
    }

    fn range(&self, after: LogId, limit: usize) -> LogFuture<'_, Entries> {
        Box::pin(async move {
            let mut cmd = redis::cmd("XRANGE");
            cmd.arg(&self.key)
                .arg(format!("({}", self.format_id(after)))
                .arg("+")
                .arg("COUNT")
                .arg(limit);
            entries(self.redis.query(&cmd, true).await?)
        })
    }

    fn last_id(&self) -> LogFuture<'_, LogId> {
        Box::pin(async move {
            let mut cmd = redis::cmd("XREVRANGE");
            cmd.arg(&self.key).arg("+").arg("-").arg("COUNT").arg(1);
            let newest = entries(self.redis.query(&cmd, true).await?)?;
            Ok(newest.first().map_or((0, 0), |(id, _)| *id))
        })
    }

    fn lost_after(&self, after: LogId) -> LogFuture<'_, bool> {
        Box::pin(async move {
            let mut cmd = redis::cmd("XINFO");
            cmd.arg("STREAM").arg(&self.key);
            let info = match self.redis.query(&cmd, true).await {
                Ok(info) => info,
                // The stream is gone (Redis lost its data?): whatever followed `after` is too.
                Err(error) if error.to_string().contains("no such key") => {
                    return Ok(after != (0, 0));
                }
                Err(error) => return Err(error),
            };
            let mut last_generated = None;
            let mut max_deleted = None;
            let mut first_entry = None;
            let (mut length, mut added) = (None, None);
            for (field, value) in pairs(info) {
                match field.as_str() {
                    "length" => length = int(&value),
                    "entries-added" => added = int(&value),
                    "last-generated-id" => last_generated = id_of(&value),
                    "max-deleted-entry-id" => max_deleted = id_of(&value),
                    "first-entry" => first_entry = first_id(value),
                    _ => {}
                }
            }
            // An id from another history of the stream (newer than anything it holds).
            let Some(newest) = last_generated else {
                return Err(malformed("XINFO STREAM", &Value::Nil));
            };
            if after > newest {
                return Ok(true);
            }
            // Removed by XDEL after `after`.
            if max_deleted.is_some_and(|deleted| after < deleted) {
                return Ok(true);
            }
            // From the very start: lost if anything was ever removed.
            if after == (0, 0) {
                return Ok(
                    matches!((added, length), (Some(added), Some(length)) if added > length),
                );
            }
            // Trimmed: `after` itself is gone (Redis does not record how far trimming went,
            // so a client whose last event was exactly the last one trimmed is refused too:
            // a resync, never a silent loss).
            Ok(match first_entry {
                Some(first) => after < first,
                None => after < newest,
            })
        })
    }

    fn tail(&self) -> Box<dyn Tail> {
        Box::new(Reader {
            redis: self.redis.clone(),
            key: self.key.clone(),
            connection: None,
        })
    }
}

/// The blocking reader of one topic: its own connection, so `XREAD BLOCK` holds up nobody.
struct Reader {
    redis: Redis,
    key: String,
    connection: Option<MultiplexedConnection>,
}

impl Tail for Reader {
    fn next(&mut self, after: LogId, limit: usize) -> LogFuture<'_, Entries> {
        Box::pin(async move {
            let connection = match &mut self.connection {
                Some(connection) => connection,
                None => {
                    let config = self.redis.config(BLOCK + self.redis.timeout);
                    let connection = self
                        .redis
                        .client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?;
                    self.connection.insert(connection)
                }
            };
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT")
                .arg(limit)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.key)
                .arg(format!("{}-{}", after.0, after.1)); // `Topic::format_id`
            let reply = cmd.query_async::<Value>(connection).await?;
            match reply {
                Value::Nil => Ok(Vec::new()),
                Value::Array(streams) => match streams.into_iter().next() {
                    Some(Value::Array(stream)) => {
                        entries(stream.into_iter().nth(1).unwrap_or(Value::Nil))
                    }
                    Some(other) => Err(malformed("XREAD", &other)),
                    None => Ok(Vec::new()),
                },
                Value::Map(streams) => match streams.into_iter().next() {
                    Some((_, stream)) => entries(stream),
                    None => Ok(Vec::new()),
                },
                other => Err(malformed("XREAD", &other)),
            }
        })
    }
}

fn malformed(command: &str, reply: &Value) -> LogError {
    format!("unexpected reply to {command}: {reply:?}").into()
}

fn text(value: &Value) -> Option<&str> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(text) => Some(text),
        _ => None,
    }
}

fn int(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text(other)?.parse().ok(),
    }
}

fn parse_id(id: &str) -> Option<LogId> {
    let (ms, seq) = id.split_once('-')?;
    Some((ms.parse().ok()?, seq.parse().ok()?))
}

fn id_of(value: &Value) -> Option<LogId> {
    parse_id(text(value)?)
}

/// Field/value pairs of a RESP2 flat array or a RESP3 map.
fn pairs(value: Value) -> Vec<(String, Value)> {
    match value {
        Value::Map(map) => map
            .into_iter()
            .filter_map(|(k, v)| Some((text(&k)?.to_owned(), v)))
            .collect(),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len() / 2);
            let mut items = items.into_iter();
            while let (Some(k), Some(v)) = (items.next(), items.next()) {
                if let Some(k) = text(&k) {
                    out.push((k.to_owned(), v));
                }
            }
            out
        }
        _ => Vec::new(),
    }
}

/// The id of `XINFO STREAM`'s `first-entry` (`[id, fields]`, or nil).
fn first_id(value: Value) -> Option<LogId> {
    match value {
        Value::Array(entry) => entry.first().and_then(id_of),
        _ => None,
    }
}

/// Stream entries (`[[id, [field, value, …]], …]`): ids and their `d` field.
fn entries(value: Value) -> Result<Entries, LogError> {
    let items = match value {
        Value::Nil => return Ok(Vec::new()),
        Value::Array(items) => items,
        other => return Err(malformed("a stream read", &other)),
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(mut parts) = item else {
            return Err(malformed("a stream read", &item));
        };
        let fields = if parts.len() == 2 { parts.pop() } else { None };
        let id = parts.first().and_then(id_of);
        let payload = fields.map(pairs).and_then(|fields| {
            fields.into_iter().find_map(|(name, value)| match value {
                Value::BulkString(bytes) if name == "d" => String::from_utf8(bytes).ok(),
                _ => None,
            })
        });
        match id {
            // No `d`: not written by an event bus; the reader skips it but moves past it.
            Some(id) => out.push((id, payload)),
            None => return Err(malformed("a stream read", &Value::Array(parts))),
        }
    }
    Ok(out)
}
