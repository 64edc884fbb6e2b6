//! Run with: `cargo run -p quickstart-server` (add `-- --port 0` for any free port, and
//! `--redis redis://127.0.0.1:6379` to share `user.onCreated` events with other instances).
//!
//! Serves the quickstart API at `http://127.0.0.1:3000/trpc` until Ctrl-C.

use oxrpc::EventBus;
use oxrpc::bus::Redis;
use quickstart_api::{Db, router};

const USAGE: &str = "usage: quickstart-server [--port N] [--redis redis://HOST:PORT]";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let (port, redis) = parse_args()?;
    let db = match redis {
        // Instances given the same Redis share the events of `user.onCreated`: a client may
        // reconnect to any of them and resume where it was.
        Some(url) => {
            let redis = Redis::open(&url).map_err(|e| invalid(format!("--redis {url}: {e}")))?;
            Db::with_events(EventBus::redis(&redis, "quickstart:users"))
        }
        None => Db::default(),
    };
    let server = oxrpc::Server::with_context(router(), move |info| db.context(&info));
    let listening = server.bind(("127.0.0.1", port)).await?;
    let addr = listening.local_addr();
    println!("listening on http://{addr}/trpc");
    println!("try: curl 'http://{addr}/trpc/greet?input=%7B%22name%22%3A%22you%22%7D'");
    println!("or, in another terminal: npm run start --workspace examples/quickstart/web");
    listening
        .run_until(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

fn invalid(message: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, message)
}

fn parse_args() -> std::io::Result<(u16, Option<String>)> {
    let mut args = std::env::args().skip(1);
    let (mut port, mut redis) = (3000, None);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next()) {
            ("--port", Some(value)) => {
                port = value.parse().map_err(|_| invalid(USAGE.to_owned()))?;
            }
            ("--redis", Some(url)) => redis = Some(url),
            _ => return Err(invalid(USAGE.to_owned())),
        }
    }
    Ok((port, redis))
}
