//! Subscriptions of the contract router (conformance-ideas §3.1), an event bus fan-out
//! (`posts.add` → `posts.onAdd`), and the three ways a WebSocket client authenticates.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::Stream;
use oxrpc::{Error, ErrorCode, EventBus, Router, Tracked, procedure};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::Ctx;
use crate::auth::{Authed, RequireUser};

/// `{ n }`.
#[derive(Debug, Clone, Serialize, TS, JsonSchema)]
pub struct Count {
    /// The number.
    pub n: u32,
}

/// Input of resumable subscriptions.
#[derive(Debug, Default, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct Resume {
    /// The last id the client saw (merged in by the client on reconnect).
    #[serde(default)]
    #[ts(optional)]
    pub last_event_id: Option<String>,
}

impl Resume {
    /// The first number to send: one after the last id seen.
    fn next(&self) -> Option<u32> {
        self.last_event_id
            .as_deref()
            .and_then(|id| id.parse::<u32>().ok())
            .map(|n| n + 1)
    }
}

/// Input of `onCount`.
#[derive(Debug, Default, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct CountFrom {
    /// Where to start.
    #[serde(default)]
    #[ts(optional)]
    pub from: Option<u32>,
    /// The last id the client saw.
    #[serde(default)]
    #[ts(optional)]
    pub last_event_id: Option<String>,
}

/// 3 tracked events `{n}` with id `n`, 30 ms apart, from `lastEventId + 1`, `from` or 0.
#[procedure(subscription)]
pub async fn on_count(input: Option<CountFrom>) -> impl Stream<Item = Tracked<Count>> {
    let input = input.unwrap_or_default();
    let resume = Resume {
        last_event_id: input.last_event_id,
    };
    let start = resume.next().or(input.from).unwrap_or(0);
    async_stream::stream! {
        for n in start..start + 3 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            yield Tracked::new(n.to_string(), Count { n });
        }
    }
}

/// Untracked "a", "b", then ends.
#[procedure(subscription)]
pub async fn on_plain() -> impl Stream<Item = String> {
    futures_util::stream::iter(["a".to_owned(), "b".to_owned()])
}

/// "before-error", then FORBIDDEN "sub forbidden".
#[procedure(subscription)]
pub async fn on_err() -> impl Stream<Item = Result<String, Error>> {
    futures_util::stream::iter([
        Ok("before-error".to_owned()),
        Err(Error::forbidden().with_message("sub forbidden")),
    ])
}

static FOREVER_LIVE: AtomicUsize = AtomicUsize::new(0);

/// Counts live `onForever` streams; dropping the stream (stop, disconnect) decrements it.
struct LiveGuard;

impl LiveGuard {
    fn new() -> Self {
        FOREVER_LIVE.fetch_add(1, Ordering::SeqCst);
        LiveGuard
    }
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        FOREVER_LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `"a"`, then the stream panics (the server turns it into INTERNAL_SERVER_ERROR).
#[procedure(subscription, name = "onPanic")]
pub async fn on_panic() -> impl Stream<Item = String> {
    async_stream::stream! {
        yield "a".to_owned();
        if std::hint::black_box(true) {
            panic!("the stream broke");
        }
        yield "never".to_owned();
    }
}

/// Untracked 0, 1, 2, … every 200 ms until cancelled.
#[procedure(subscription)]
pub async fn on_forever() -> impl Stream<Item = u32> {
    let guard = LiveGuard::new();
    async_stream::stream! {
        let _guard = guard;
        let mut n = 0;
        loop {
            yield n;
            n += 1;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Tracked, endless, every 100 ms, resuming after `lastEventId`.
#[procedure(subscription)]
pub async fn on_ticks(input: Option<Resume>) -> impl Stream<Item = Tracked<u32>> {
    let start = input.unwrap_or_default().next().unwrap_or(0);
    async_stream::stream! {
        let mut n = start;
        loop {
            yield Tracked::new(n.to_string(), n);
            n += 1;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// 2 tracked events, then an unexpected failure (retryable); resumes after `lastEventId`;
/// ends after id 5.
#[procedure(subscription)]
pub async fn flaky(input: Option<Resume>) -> impl Stream<Item = Result<Tracked<u32>, Error>> {
    let start = input.unwrap_or_default().next().unwrap_or(0);
    async_stream::stream! {
        for n in start..(start + 2).min(6) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            yield Ok(Tracked::new(n.to_string(), n));
        }
        if start + 2 <= 5 {
            yield Err(Error::internal("transient failure").with_message("transient"));
        }
    }
}

/// 1 tracked event, then silent for 5 s, then ends.
#[procedure(subscription)]
pub async fn idle(input: Option<Resume>) -> impl Stream<Item = Tracked<u32>> {
    let n = input.unwrap_or_default().next().unwrap_or(0);
    async_stream::stream! {
        yield Tracked::new(n.to_string(), n);
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// A post on the bus.
#[derive(Debug, Clone, Serialize, Deserialize, TS, JsonSchema)]
pub struct BusPost {
    /// Its title.
    pub title: String,
}

/// Input of `posts.add`.
#[derive(Debug, Deserialize, TS, JsonSchema)]
pub struct AddPost {
    /// At least one character.
    #[schemars(length(min = 1))]
    pub title: String,
}

/// What `posts.add` returns.
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct Added {
    /// The event id the post got on the bus.
    pub id: String,
}

static POSTS: OnceLock<EventBus<BusPost>> = OnceLock::new();

/// The bus of `posts`: in memory unless [`use_posts_bus`] chose another one first.
fn posts() -> &'static EventBus<BusPost> {
    POSTS.get_or_init(|| EventBus::new(1000))
}

/// Makes `posts` use `bus` (e.g. Redis, shared by several server processes); call it before
/// serving. Fails if the in-memory default is in use already.
pub fn use_posts_bus(bus: EventBus<BusPost>) -> Result<(), EventBus<BusPost>> {
    POSTS.set(bus)
}

/// Publishes a post to every `posts.onAdd` subscriber.
#[procedure(mutation, name = "add")]
pub async fn add_post(input: AddPost) -> Result<Added, Error> {
    let id = posts().publish(BusPost { title: input.title }).await?;
    Ok(Added { id })
}

/// Every post added from now on; with `lastEventId`, first the ones missed since.
#[procedure(subscription, name = "onAdd")]
pub async fn on_add(input: Option<Resume>) -> impl Stream<Item = Result<Tracked<BusPost>, Error>> {
    let last = input.unwrap_or_default().last_event_id;
    posts().subscribe(last.as_deref()).await
}

/// What the authenticated tick streams send.
#[derive(Debug, Clone, Serialize, TS, JsonSchema)]
pub struct UserTick {
    /// Who is subscribed.
    pub user: String,
    /// The tick.
    pub n: u32,
}

/// Ticks for a signed-in caller: the `Authorization` header of the upgrade request, or the
/// `token` connection param (`ABC` or `ADMIN`).
///
/// (`use<>`: the stream owns its data instead of borrowing the context.)
#[procedure(subscription, use = RequireUser)]
pub async fn secret_ticks(ctx: &Authed) -> impl Stream<Item = Tracked<UserTick>> + use<> {
    let user = ctx.user.clone();
    async_stream::stream! {
        for n in 0..3 {
            yield Tracked::new(n.to_string(), UserTick { user: user.clone(), n });
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Input of `tokenTicks`.
#[derive(Debug, Deserialize, TS, JsonSchema)]
pub struct TokenInput {
    /// Must be `ABC`.
    pub token: String,
}

/// Ticks for whoever sends the right token in the subscription input.
#[procedure(subscription)]
pub async fn token_ticks(input: TokenInput) -> Result<impl Stream<Item = u32>, Error> {
    if input.token != "ABC" {
        return Err(Error::new(ErrorCode::Unauthorized, "bad token"));
    }
    Ok(futures_util::stream::iter([1, 2, 3]))
}

/// 4 KiB events as fast as the connection takes them, forever (for slow-consumer tests).
#[procedure(subscription)]
pub async fn firehose() -> impl Stream<Item = String> {
    let chunk = "x".repeat(4096);
    async_stream::stream! {
        loop {
            yield chunk.clone();
            tokio::task::yield_now().await;
        }
    }
}

/// What `streams.live` reports.
#[derive(Debug, Serialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct LiveStreams {
    /// `onForever` streams not yet dropped.
    pub on_forever: u32,
    /// `posts.onAdd` subscribers.
    pub post_subscribers: u32,
}

/// How many streams are alive (to observe that stop and disconnect drop them).
#[procedure(query, name = "live")]
pub async fn live_streams() -> LiveStreams {
    LiveStreams {
        on_forever: u32::try_from(FOREVER_LIVE.load(Ordering::SeqCst)).unwrap_or(u32::MAX),
        post_subscribers: u32::try_from(posts().subscriber_count()).unwrap_or(u32::MAX),
    }
}

/// The subscription part of the conformance router.
pub fn router() -> Router<Ctx> {
    Router::new()
        .add(on_count::procedure())
        .add(on_plain::procedure())
        .add(on_err::procedure())
        .add(on_forever::procedure())
        .add(on_panic::procedure())
        .add(on_ticks::procedure())
        .add(flaky::procedure())
        .add(idle::procedure())
        .add(secret_ticks::procedure())
        .add(token_ticks::procedure())
        .add(firehose::procedure())
        .nest(
            "posts",
            Router::new()
                .add(add_post::procedure())
                .add(on_add::procedure()),
        )
        .nest("streams", Router::new().add(live_streams::procedure()))
}
