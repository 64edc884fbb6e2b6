//! The bench contract's WebSocket side served by tokio-tungstenite alone: the `greet` query and
//! the `ticks` subscription in tRPC's WebSocket messages, one task per connection, nothing else
//! (no registry, outbox, validation, context or error shapes beyond a refusal), with the same
//! read and write buffer sizes as oxrpc. The baseline oxrpc's WebSocket request/response rate,
//! fan-out CPU and idle memory are compared with.
//!
//! Run with: `cargo run --release -p oxrpc-bench --bin raw-ws -- --port 0` (prints
//! `listening on http://127.0.0.1:PORT`; WebSocket at any path; stops on SIGINT/SIGTERM).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt as _, StreamExt as _};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    method: &'a str,
    #[serde(default)]
    params: Option<Params<'a>>,
}

#[derive(Deserialize)]
struct Params<'a> {
    path: &'a str,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct TicksInput {
    interval_ms: Option<u64>,
    count: Option<u64>,
}

/// A running `ticks` subscription of a connection.
struct Ticks {
    id: String,
    interval: u64,
    first: u64,
    slot: u64,
    left: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn due(ticks: &Ticks) -> tokio::time::Instant {
    let wait = (ticks.slot * ticks.interval).saturating_sub(now_ms());
    tokio::time::Instant::now() + Duration::from_millis(wait)
}

/// The answer to one message, and the subscription it starts.
fn answer(text: &str) -> (String, Option<Ticks>) {
    let Ok(request) = serde_json::from_str::<Request<'_>>(text) else {
        return (
            r#"{"id":null,"error":{"message":"bad message","code":-32700}}"#.into(),
            None,
        );
    };
    let id = request.id.get();
    let refuse = || format!(r#"{{"id":{id},"error":{{"message":"bad request","code":-32600}}}}"#);
    match (request.method, request.params) {
        (
            "query",
            Some(Params {
                path: "greet",
                input: Some(input),
            }),
        ) => match serde_json::from_str::<String>(input.get()) {
            Ok(name) => {
                let greeting = serde_json::to_string(&format!("hello {name}")).unwrap_or_default();
                (
                    format!(
                        r#"{{"id":{id},"result":{{"type":"data","data":{{"greeting":{greeting}}}}}}}"#
                    ),
                    None,
                )
            }
            Err(_) => (refuse(), None),
        },
        (
            "subscription",
            Some(Params {
                path: "ticks",
                input,
            }),
        ) => {
            let input = match input.map(|i| serde_json::from_str::<Option<TicksInput>>(i.get())) {
                None => TicksInput::default(),
                Some(Ok(i)) => i.unwrap_or_default(),
                Some(Err(_)) => return (refuse(), None),
            };
            let interval = input.interval_ms.unwrap_or(100).clamp(1, 3_600_000);
            let first = now_ms() / interval + 1;
            let ticks = Ticks {
                id: id.to_owned(),
                interval,
                first,
                slot: first,
                left: input.count.unwrap_or(u64::MAX),
            };
            (
                format!(r#"{{"id":{id},"result":{{"type":"started"}}}}"#),
                Some(ticks),
            )
        }
        _ => (refuse(), None),
    }
}

async fn connection(stream: TcpStream) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    // The buffer sizes oxrpc uses (tungstenite's default read buffer is 128 KiB, which would
    // make every idle connection of the baseline cost that much).
    let config = WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(0);
    let mut socket = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await?;
    let mut ticks: Option<Ticks> = None;
    loop {
        let next = ticks.as_ref().filter(|t| t.left > 0).map(due);
        tokio::select! {
            frame = socket.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if text.as_str().contains(r#""method":"subscription.stop""#) {
                        ticks = None;
                        continue;
                    }
                    let (reply, started) = answer(text.as_str());
                    if started.is_some() {
                        ticks = started;
                    }
                    socket.send(Message::Text(reply.into())).await?;
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => return Ok(()),
                Some(Ok(_)) => {}
            },
            () = async { tokio::time::sleep_until(next.unwrap_or_else(tokio::time::Instant::now)).await }, if next.is_some() => {
                if let Some(t) = ticks.as_mut() {
                    let ts = t.slot * t.interval;
                    let text = format!(
                        r#"{{"id":{},"result":{{"type":"data","data":{{"n":{},"ts":{ts}}}}}}}"#,
                        t.id,
                        t.slot - t.first
                    );
                    t.slot = (now_ms() / t.interval + 1).max(t.slot + 1);
                    t.left -= 1;
                    socket.send(Message::Text(text.into())).await?;
                }
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listener = oxrpc_bench::listen().await?;
    let serve = async {
        loop {
            if let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let _ = connection(stream).await;
                });
            }
        }
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        () = serve => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
