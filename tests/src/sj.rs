//! The superjson profile (conformance-ideas §3.2): the contract router with the transformer
//! on, plus procedures whose values plain JSON cannot carry (`date` of §3.1, round trips of
//! every JavaScript value type, tracked events and streamed parts holding them, an event bus
//! of them). `echo`/`echoMut` take any value here and give back what they got, `Date`s and all.

use std::sync::OnceLock;
use std::time::Duration;

use futures_util::Stream;
use oxrpc::js::{self, BigInt, Date, Map, Set};
use oxrpc::{Deferred, Error, EventBus, Router, Streamed, Tracked, procedure};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::Ctx;
use crate::live::Resume;

/// What `date` returns (conformance-ideas §3.1).
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct DateOut {
    /// 2024-01-02T03:04:05.000Z.
    pub at: Date,
    /// 10n.
    pub big: BigInt<i64>,
    /// {1, 2}.
    pub set: Set<u32>,
    /// Always absent: `undefined` on the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub undef: Option<String>,
}

/// `{at: 2024-01-02T03:04:05.000Z, big: 10n, set: {1,2}, undef: undefined}`.
#[procedure(query)]
pub async fn date() -> DateOut {
    DateOut {
        at: Date::from_millis(1_704_164_645_000).expect("in range"),
        big: BigInt(10),
        set: [1, 2].into_iter().collect(),
        undef: None,
    }
}

/// What `echo`/`echoMut` return under superjson.
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct EchoedAny {
    /// The input as the client sent it, absent when it sent none (`undefined`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub input: Option<js::Value>,
}

/// Gives back its input, every value as itself.
#[procedure(query, name = "echo")]
pub async fn echo_any(input: Option<js::Value>) -> EchoedAny {
    EchoedAny { input }
}

/// Gives back its input, every value as itself (as a mutation).
#[procedure(mutation, name = "echoMut")]
pub async fn echo_any_mutation(input: Option<js::Value>) -> EchoedAny {
    EchoedAny { input }
}

/// A value inside a list, with its own date.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Stamped {
    /// A label.
    pub label: String,
    /// When.
    pub at: Date,
}

/// Every JavaScript value type a Rust type maps to, in one object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct JsValues {
    /// `Date`.
    pub at: Date,
    /// `Date | undefined`: absent when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub until: Option<Date>,
    /// `bigint` from an `i64`.
    pub big: BigInt<i64>,
    /// `bigint` beyond 64 bits.
    pub huge: BigInt<u128>,
    /// `Set<string>`.
    pub tags: Set<String>,
    /// `Map<string, bigint>`.
    pub scores: Map<String, BigInt<i64>>,
    /// `Map<number, Date>`: keys that are not strings.
    pub by_day: Map<u32, Date>,
    /// `string | undefined`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub note: Option<String>,
    /// `string | null`: `null` stays `null`.
    pub maybe: Option<String>,
    /// Dates inside a list of objects.
    pub history: Vec<Stamped>,
    /// A plain number stays a `number`.
    pub count: u32,
}

/// Gives back what it got, checked on the way: the Rust types held every value.
#[procedure(mutation, name = "roundTrip")]
pub async fn round_trip(input: JsValues) -> JsValues {
    input
}

/// [`round_trip`] as a query (its input travels in the URL).
#[procedure(query, name = "roundTripQuery")]
pub async fn round_trip_query(input: JsValues) -> JsValues {
    input
}

/// A dated event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS, JsonSchema)]
pub struct Tick {
    /// Its number.
    pub n: u32,
    /// When (2024-01-02T03:04:05.000Z plus `n` seconds).
    pub at: Date,
    /// `n` × 2^60, beyond `number`'s precision.
    pub big: BigInt<u64>,
}

fn tick(n: u32) -> Tick {
    Tick {
        n,
        at: Date::from_millis(1_704_164_645_000 + i64::from(n) * 1000).expect("in range"),
        big: BigInt(u64::from(n) << 60),
    }
}

/// 3 tracked events `Tick` with id `n`, 30 ms apart, after `lastEventId` or from 0.
#[procedure(subscription, name = "onTicksDated")]
pub async fn on_ticks_dated(input: Option<Resume>) -> impl Stream<Item = Tracked<Tick>> {
    let start = input
        .and_then(|r| r.last_event_id)
        .and_then(|id| id.parse::<u32>().ok())
        .map_or(0, |n| n + 1);
    async_stream::stream! {
        for n in start..start + 3 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            yield Tracked::new(n.to_string(), tick(n));
        }
    }
}

/// An output with parts sent later (JSONL only), holding dates.
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct Later {
    /// At once.
    pub now: Date,
    /// After 20 ms: tick 7.
    pub later: Deferred<Tick>,
    /// Ticks 1 and 2, then the end.
    pub ticks: Streamed<Tick>,
}

/// Dates at once, in a promise and in an iterable.
#[procedure(query, name = "datedLater")]
pub async fn dated_later() -> Later {
    Later {
        now: Date::from_millis(0).expect("in range"),
        later: Deferred::new(async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok::<_, Error>(tick(7))
        }),
        ticks: Streamed::values(futures_util::stream::iter([tick(1), tick(2)])),
    }
}

fn ticks() -> &'static EventBus<Tick> {
    static BUS: OnceLock<EventBus<Tick>> = OnceLock::new();
    BUS.get_or_init(|| EventBus::new(64))
}

/// Publishes tick `n` to `ticks.onAdd` subscribers; resolves to its id.
#[procedure(mutation, name = "add")]
pub async fn add_tick(n: u32) -> Result<String, Error> {
    ticks().publish(tick(n)).await
}

/// Ticks published with `ticks.add`, encoded once per publish.
#[procedure(subscription, name = "onAdd")]
pub async fn on_add_tick(
    input: Option<Resume>,
) -> impl Stream<Item = Result<Tracked<Tick>, Error>> {
    ticks()
        .subscribe(input.and_then(|r| r.last_event_id).as_deref())
        .await
}

/// The procedures only the superjson profile has.
pub fn router() -> Router<Ctx> {
    Router::new()
        .add(date::procedure())
        .add(echo_any::procedure())
        .add(echo_any_mutation::procedure())
        .add(round_trip::procedure())
        .add(round_trip_query::procedure())
        .add(on_ticks_dated::procedure())
        .add(dated_later::procedure())
        .nest(
            "ticks",
            Router::new()
                .add(add_tick::procedure())
                .add(on_add_tick::procedure()),
        )
}
