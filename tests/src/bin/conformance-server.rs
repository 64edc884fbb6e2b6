//! The conformance server: the contract router on `127.0.0.1:PORT`, HTTP at `/trpc/<path>`.
//!
//! Run with: `cargo run -p oxrpc-tests --bin conformance-server -- --port 0 [--profile options]`
//!
//! Prints `listening on http://127.0.0.1:PORT` once ready; stops gracefully on SIGINT/SIGTERM.
//!
//! Profiles: `plain` (default: batching on, no method override, dev mode off, unknown input
//! fields ignored) and `options` (method override on, max batch size 2, dev mode on, so outputs
//! are validated too, max body 64 KiB, unknown input fields rejected).

use std::io::Write as _;

use anyhow::{Context as _, bail};
use oxrpc::{Server, UnknownFields};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut port: u16 = 0;
    let mut profile = String::from("plain");
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
            other => bail!(
                "unknown argument {other:?}; usage: conformance-server [--port N] [--profile plain|options]"
            ),
        }
    }
    let server = match profile.as_str() {
        "plain" => Server::with_context(oxrpc_tests::router(), oxrpc_tests::create_context),
        "options" => Server::with_context(
            oxrpc_tests::router().unknown_fields(UnknownFields::Reject),
            oxrpc_tests::create_context,
        )
        .allow_method_override(true)
        .max_batch_size(2)
        .dev_mode(true)
        .max_body_size(64 * 1024),
        other => bail!("unknown profile {other:?}; expected plain or options"),
    };
    let listening = server.bind(("127.0.0.1", port)).await.context("binding")?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{}", listening.local_addr())?;
    stdout.flush()?;
    listening.run_until(shutdown_signal()).await?;
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
