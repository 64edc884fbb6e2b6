//! The conformance server: the contract router on `127.0.0.1:PORT`, HTTP at `/trpc/<path>` and
//! WebSocket at `/trpc`, nested under axum beside the test-control endpoints.
//!
//! Run with: `cargo run -p oxrpc-tests --bin conformance-server -- --port 0 [--profile superjson|options|inactivity]
//! [--path-separator ~] [--redis redis://127.0.0.1:6379]`
//!
//! With `--redis`, `posts.add` / `posts.onAdd` go through a Redis stream (topic `posts`,
//! retention 200 events) shared by every conformance server given the same URL.
//!
//! Prints `listening on http://127.0.0.1:PORT` once ready; stops gracefully on SIGINT/SIGTERM
//! (WebSocket clients are told to reconnect first).
//!
//! Profiles: `plain` (default: batching on, no method override, dev mode off, unknown input
//! fields ignored) and `options` (method override on, max batch size 2, dev mode on, so outputs
//! are validated too, max body 64 KiB, unknown input fields rejected, WebSocket keep-alive ping
//! every 1 s with a 1 s pong wait, at most 4 subscriptions per connection, 16 KiB messages, JSONL
//! ping every 30 ms, SSE ping every 500 ms and `reconnectAfterInactivityMs` 3000) and
//! `inactivity` (SSE `reconnectAfterInactivityMs` 600, no ping, streams end after 1.5 s).
//!
//! Test control (conformance-ideas §3.3), not part of tRPC:
//! - `POST /__test/broadcast-reconnect`: `{"id":null,"method":"reconnect"}` to every WS client;
//! - `POST /__test/drop-connections`: close every WS connection and end every SSE stream;
//! - `GET /__test/ws-connections`: how many WS connections are open;
//! - `GET /__test/sse-streams`: how many SSE streams are open.

use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use axum::routing::{get, post};
use oxrpc::{Server, UnknownFields};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut port: u16 = 0;
    let mut profile = String::from("plain");
    let mut separator = '.';
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                port = args
                    .next()
                    .context("--port needs a value")?
                    .parse()
                    .context("--port must be a number")?
            }
            "--profile" => profile = args.next().context("--profile needs a value")?,
            "--redis" => {
                let url = args.next().context("--redis needs a URL")?;
                let redis = oxrpc::bus::Redis::open(&url)
                    .map_err(|e| anyhow::anyhow!("--redis {url}: {e}"))?
                    .retention(200);
                let bus = oxrpc::EventBus::redis(&redis, "posts");
                if oxrpc_tests::live::use_posts_bus(bus).is_err() {
                    bail!("--redis given twice");
                }
            }
            "--path-separator" => {
                let value = args.next().context("--path-separator needs a value")?;
                let mut chars = value.chars();
                separator = match (chars.next(), chars.next()) {
                    (Some(c), None) if ['.', '_', '~', '-'].contains(&c) => c,
                    _ => bail!("--path-separator takes one of . _ ~ -, not {value:?}"),
                };
            }
            other => bail!(
                "unknown argument {other:?}; usage: conformance-server [--port N] [--profile plain|superjson|options|inactivity] [--path-separator . | _ | ~ | -] [--redis URL]"
            ),
        }
    }
    let server = match profile.as_str() {
        "plain" => Server::with_context(oxrpc_tests::router(), oxrpc_tests::create_context),
        "superjson" => {
            Server::with_context(oxrpc_tests::superjson_router(), oxrpc_tests::create_context)
        }
        "options" => Server::with_context(
            oxrpc_tests::router().unknown_fields(UnknownFields::Reject),
            oxrpc_tests::create_context,
        )
        .allow_method_override(true)
        .max_batch_size(2)
        .dev_mode(true)
        .max_body_size(64 * 1024)
        .ws_keep_alive(Duration::from_secs(1), Duration::from_secs(1))
        .ws_max_subscriptions(4)
        .ws_max_message_size(16 * 1024)
        .jsonl_ping(Duration::from_millis(30))
        .sse_ping(Duration::from_millis(500))
        .sse_reconnect_after_inactivity(Duration::from_millis(3000)),
        "inactivity" => Server::with_context(oxrpc_tests::router(), oxrpc_tests::create_context)
            .sse_reconnect_after_inactivity(Duration::from_millis(600))
            .sse_max_duration(Duration::from_millis(1500)),
        other => {
            bail!("unknown profile {other:?}; expected plain, superjson, options or inactivity")
        }
    };
    let server = server
        .endpoint("/")
        .path_separator(separator)
        .shutdown_grace(Duration::from_secs(2));
    let handle = server.handle();
    let (reconnect, drop_all, count, sse) = (
        handle.clone(),
        handle.clone(),
        handle.clone(),
        handle.clone(),
    );
    let app = axum::Router::new()
        .route(
            "/__test/broadcast-reconnect",
            post(move || async move {
                reconnect.reconnect_all();
                "ok"
            }),
        )
        .route(
            "/__test/drop-connections",
            post(move || async move {
                drop_all.drop_all();
                "ok"
            }),
        )
        .route(
            "/__test/ws-connections",
            get(move || async move { count.websocket_connections().to_string() }),
        )
        .route(
            "/__test/sse-streams",
            get(move || async move { sse.sse_streams().to_string() }),
        )
        .nest_service("/trpc", server.into_service());

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .context("binding")?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{}", listener.local_addr()?)?;
    stdout.flush()?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            // Tell WebSocket clients to reconnect, give them a moment, then stop.
            handle.reconnect_all();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            while handle.websocket_connections() > 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            handle.drop_all();
        })
        .await?;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = term => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
