//! The chat: `cargo run -p chat-server` after `npm run build --workspace examples/chat/web`
//! (or just `./scripts/chat`), then open http://127.0.0.1:3002.
//!
//! Options: `--port N` (default 3002; 0 for any free port), `--data DIR` (keep messages and
//! sessions there, so a restart loses nothing; default: memory only), `--web DIR` (the built
//! web app; default `examples/chat/web/dist`).

use std::path::PathBuf;
use std::time::Duration;

use chat_api::Chat;
use tower_http::services::{ServeDir, ServeFile};

const USAGE: &str = "usage: chat-server [--port N] [--data DIR] [--web DIR]";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse()?;
    let chat = Chat::open(args.data.as_deref())?;
    let api = oxrpc::Server::with_context(chat_api::router(), move |info| {
        let ctx = chat.context(&info);
        async move { Ok(ctx) }
    })
    .endpoint("/")
    .ws_keep_alive(Duration::from_secs(20), Duration::from_secs(10));
    let handle = api.handle();
    // The API (HTTP, WebSocket and SSE) under /trpc, the web app everywhere else.
    let index = ServeFile::new(args.web.join("index.html"));
    let app = axum::Router::new()
        .nest_service("/trpc", api.into_service())
        .fallback_service(ServeDir::new(&args.web).fallback(index));

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            // Tell WebSocket clients to reconnect (to the next server on this port).
            handle.reconnect_all();
        })
        .await
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

struct Args {
    port: u16,
    data: Option<PathBuf>,
    web: PathBuf,
}

impl Args {
    fn parse() -> std::io::Result<Args> {
        let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidInput, USAGE);
        let web = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../web/dist");
        let mut args = Args {
            port: 3002,
            data: None,
            web,
        };
        let mut argv = std::env::args().skip(1);
        while let Some(arg) = argv.next() {
            let value = argv.next().ok_or_else(invalid)?;
            match arg.as_str() {
                "--port" => args.port = value.parse().map_err(|_| invalid())?,
                "--data" => args.data = Some(value.into()),
                "--web" => args.web = value.into(),
                _ => return Err(invalid()),
            }
        }
        Ok(args)
    }
}
