//! The server the WebSocket, SSE and request-cost benchmarks drive: `ping` echoes a number,
//! `slow` sleeps, `ticks10` and `ticks50` deliver a 10 Hz and a 50 Hz tick (carrying its send
//! time) from an [`oxrpc::EventBus`] to every subscriber (one serialization per publish);
//! `greet`, `add` and `ticks` are the bench contract of issue 13, served the same way by
//! `bench/node/trpc-server.mjs`, `bench/src/bin/raw-hyper.rs` and `bench/src/bin/raw-ws.rs`.
//!
//! Run with: `cargo run --release -p oxrpc-tests --bin bench-server -- --port 0 [--no-ticks]`
//! (prints `listening on http://127.0.0.1:PORT`; stops on SIGINT/SIGTERM). `--no-ticks` stops
//! the tick publishers, so an idle server does no work (instruction counts per request).

use std::io::Write as _;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

/// With `--features jemalloc`: jemalloc, whose background threads give freed memory back to
/// the system after load peaks (glibc's malloc keeps it; see the README's memory notes).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use futures_util::Stream;
use oxrpc::{Error, EventBus, Router, Server, Tracked, procedure};
use schemars::JsonSchema;
use serde::Serialize;
use ts_rs::TS;

/// One tick.
#[derive(Debug, Clone, Serialize, TS, JsonSchema)]
struct Tick {
    /// Microseconds since the Unix epoch when the tick was published.
    sent_us: u64,
}

static TICKS: LazyLock<EventBus<Tick>> = LazyLock::new(|| EventBus::new(64));
static TICKS_50: LazyLock<EventBus<Tick>> = LazyLock::new(|| EventBus::new(64));

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Echoes its input.
#[procedure(query)]
async fn ping(n: u64) -> u64 {
    n
}

/// Sleeps `ms` milliseconds (at most 10 s), then answers.
#[procedure(query)]
async fn slow(ms: u64) -> u64 {
    tokio::time::sleep(Duration::from_millis(ms.min(10_000))).await;
    ms
}

/// The 10 Hz tick of the event bus, live.
#[procedure(subscription)]
async fn ticks10() -> impl Stream<Item = Result<Tracked<Tick>, Error>> {
    TICKS.subscribe(None).await
}

/// The 50 Hz tick of the event bus, live.
#[procedure(subscription)]
async fn ticks50() -> impl Stream<Item = Result<Tracked<Tick>, Error>> {
    TICKS_50.subscribe(None).await
}

/// What `greet` returns.
#[derive(Debug, Serialize, TS, JsonSchema)]
struct Greeting {
    /// `"hello " + input`.
    greeting: String,
}

/// `{ greeting: "hello " + input }`.
#[procedure(query)]
async fn greet(name: String) -> Greeting {
    Greeting {
        greeting: format!("hello {name}"),
    }
}

/// Input of `add`.
#[derive(Debug, serde::Deserialize, TS, JsonSchema)]
struct AddInput {
    a: f64,
    b: f64,
}

/// `a + b`, as an integer when it is one (`3`, not `3.0`).
#[procedure(mutation)]
async fn add(input: AddInput) -> serde_json::Number {
    let sum = input.a + input.b;
    if sum.fract() == 0.0 && sum.abs() < 9.0e15 {
        #[allow(clippy::cast_possible_truncation)]
        serde_json::Number::from(sum as i64)
    } else {
        serde_json::Number::from_f64(sum).unwrap_or_else(|| serde_json::Number::from(0))
    }
}

/// Input of the contract's `ticks`.
#[derive(Debug, serde::Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
struct TicksInput {
    /// Milliseconds between slots (default 100).
    #[serde(default)]
    #[ts(optional)]
    interval_ms: Option<u64>,
    /// Ends the stream after this many events.
    #[serde(default)]
    #[ts(optional)]
    count: Option<u64>,
}

/// One event of the contract's `ticks`.
#[derive(Debug, Serialize, TS, JsonSchema)]
struct Slot {
    /// The slot's index since the subscription started.
    n: u64,
    /// The slot's scheduled time, milliseconds since the Unix epoch.
    ts: u64,
}

/// The bench contract's `ticks`: slots are the wall-clock multiples of `intervalMs`, so every
/// subscriber with the same interval fires at the same instant; an overloaded server skips the
/// slots it missed instead of bursting.
#[procedure(subscription)]
async fn ticks(input: Option<TicksInput>) -> impl Stream<Item = Slot> {
    let interval = input
        .as_ref()
        .and_then(|i| i.interval_ms)
        .unwrap_or(100)
        .clamp(1, 3_600_000);
    let count = input.and_then(|i| i.count).unwrap_or(u64::MAX);
    let first = now_us() / 1000 / interval + 1;
    futures_util::stream::unfold((first, 0u64), move |(mut slot, sent)| async move {
        if sent >= count {
            return None;
        }
        let due_ms = slot * interval;
        let wait = (due_ms * 1000).saturating_sub(now_us());
        tokio::time::sleep(Duration::from_micros(wait)).await;
        let n = slot - first;
        // The next slot is the first one still ahead: missed slots are skipped.
        slot = (now_us() / 1000 / interval + 1).max(slot + 1);
        Some((Slot { n, ts: due_ms }, (slot, sent + 1)))
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut port = 0u16;
    let mut ticks = true;
    while let Some(arg) = args.next() {
        if arg == "--no-ticks" {
            ticks = false;
        } else if arg == "--port" {
            port = args
                .next()
                .context("--port needs a value")?
                .parse()
                .context("--port must be a number")?;
        }
    }
    for (bus, every) in [(&*TICKS, 100), (&*TICKS_50, 20)]
        .into_iter()
        .filter(|_| ticks)
    {
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(every));
            loop {
                interval.tick().await;
                // In memory: publishing cannot fail.
                let _ = bus.publish(Tick { sent_us: now_us() }).await;
            }
        });
    }
    let router: Router<()> = Router::new()
        .add(ping::procedure())
        .add(greet::procedure())
        .add(add::procedure())
        .add(slow::procedure())
        .add(ticks::procedure())
        .add(ticks10::procedure())
        .add(ticks50::procedure());
    let listening = Server::new(router)
        .ws_max_connections(50_000)
        .sse_max_streams(50_000)
        .bind(("127.0.0.1", port))
        .await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{}", listening.local_addr())?;
    stdout.flush()?;
    listening
        .run_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
