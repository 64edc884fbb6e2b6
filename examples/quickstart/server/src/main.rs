//! Run with: `cargo run -p quickstart-server` (add `-- --port 0` for any free port).
//!
//! Serves the quickstart API at `http://127.0.0.1:3000/trpc` until Ctrl-C.

use quickstart_api::{Db, router};

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port = parse_port()?;
    let db = Db::default();
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

fn parse_port() -> std::io::Result<u16> {
    let mut args = std::env::args().skip(1);
    let mut port = 3000;
    while let Some(arg) = args.next() {
        let value = (arg == "--port").then(|| args.next()).flatten();
        port = value.and_then(|v| v.parse().ok()).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "usage: quickstart-server [--port N]",
            )
        })?;
    }
    Ok(port)
}
