//! Benchmark servers. `raw-hyper` answers the bench contract's `greet` and `add` (issue 13)
//! with hyper alone: the ceiling oxrpc's per-request cost is compared with
//! (`scripts/callgrind-requests --binary target/release/raw-hyper`). `raw-ws` answers its
//! WebSocket side with tokio-tungstenite alone. This library holds what they share.

use std::io::Write as _;

use anyhow::Context as _;

/// Binds `127.0.0.1` on the port given as `--port N` (0, any free port, by default) and prints
/// `listening on http://ADDR`, the line `bench/compare` waits for.
pub async fn listen() -> anyhow::Result<tokio::net::TcpListener> {
    let mut args = std::env::args().skip(1);
    let mut port = 0u16;
    while let Some(arg) = args.next() {
        if arg == "--port" {
            port = args
                .next()
                .context("--port needs a value")?
                .parse()
                .context("--port must be a number")?;
        }
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on http://{}", listener.local_addr()?)?;
    stdout.flush()?;
    Ok(listener)
}
