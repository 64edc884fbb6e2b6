//! A closed-loop load generator for the bench contract: `--connections` keep-alive HTTP/1.1
//! connections (or WebSocket connections with `--ws`), each sending its next request as soon
//! as the previous answer arrived, for `--seconds`. Single-threaded, so that pinned to one
//! core (`taskset -c 1`) it never competes with a server pinned to the other.
//!
//! Prints one JSON line: `{"requests":N,"seconds":S,"rps":R,"errors":E}`. A request counts
//! when its answer has status 200 (HTTP) and, for the first answer of each connection, equals
//! `--expect` when given: a server answering wrongly fails the run instead of looking fast.
//!
//! Usage: `load --url http://127.0.0.1:PORT/trpc/greet?input=%22bob%22 [--method POST --body '{…}']
//!         [--connections 32] [--seconds 5] [--expect TEXT]`
//!        `load --ws ws://127.0.0.1:PORT/trpc --message '{"id":1,…}' [--connections 64] …`
//! Only loopback URLs are accepted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

struct Options {
    url: String,
    ws: bool,
    method: hyper::Method,
    body: Option<String>,
    connections: usize,
    seconds: f64,
    expect: Option<String>,
}

fn options() -> anyhow::Result<Options> {
    let mut args = std::env::args().skip(1);
    let mut o = Options {
        url: String::new(),
        ws: false,
        method: hyper::Method::GET,
        body: None,
        connections: 32,
        seconds: 5.0,
        expect: None,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => o.url = value()?,
            "--ws" => {
                o.url = value()?;
                o.ws = true;
            }
            "--method" => o.method = value()?.parse().context("--method")?,
            "--body" | "--message" => o.body = Some(value()?),
            "--connections" => o.connections = value()?.parse().context("--connections")?,
            "--seconds" => o.seconds = value()?.parse().context("--seconds")?,
            "--expect" => o.expect = Some(value()?),
            other => bail!("unknown argument {other:?}"),
        }
    }
    ensure!(!o.url.is_empty(), "--url or --ws is required");
    ensure!(
        o.url.starts_with("http://127.0.0.1:") || o.url.starts_with("ws://127.0.0.1:"),
        "only loopback URLs (http://127.0.0.1:…, ws://127.0.0.1:…)"
    );
    ensure!(o.connections > 0 && o.seconds > 0.0 && o.seconds <= 120.0);
    Ok(o)
}

/// `host:port` of a loopback URL.
fn authority(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest)
}

async fn http_connection(
    o: Arc<Options>,
    deadline: Instant,
    count: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let stream = TcpStream::connect(authority(&o.url)).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let uri: hyper::Uri = o.url.parse()?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut first = true;
    while Instant::now() < deadline {
        let mut request = Request::builder()
            .method(o.method.clone())
            .uri(&path)
            .header("host", authority(&o.url));
        if o.body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = Full::new(Bytes::from(o.body.clone().unwrap_or_default()));
        let response = sender.send_request(request.body(body)?).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        ensure!(
            status == 200,
            "status {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        if first {
            if let Some(expect) = &o.expect {
                ensure!(
                    bytes == expect.as_bytes(),
                    "unexpected answer {:?}",
                    String::from_utf8_lossy(&bytes)
                );
            }
            first = false;
        }
        count.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

async fn ws_connection(
    o: Arc<Options>,
    deadline: Instant,
    count: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let stream = TcpStream::connect(authority(&o.url)).await?;
    stream.set_nodelay(true)?;
    let (mut socket, _) = tokio_tungstenite::client_async(o.url.as_str(), stream).await?;
    let message = o.body.clone().context("--message is required with --ws")?;
    let mut first = true;
    while Instant::now() < deadline {
        socket.send(Message::Text(message.clone().into())).await?;
        loop {
            match socket
                .next()
                .await
                .context("the server closed the connection")??
            {
                Message::Text(text) => {
                    if first {
                        if let Some(expect) = &o.expect {
                            ensure!(text.as_str() == expect, "unexpected answer {text:?}");
                        }
                        first = false;
                    }
                    break;
                }
                Message::Ping(_) | Message::Pong(_) => {}
                other => bail!("unexpected frame {other:?}"),
            }
        }
        count.fetch_add(1, Ordering::Relaxed);
    }
    let _ = socket.close(None).await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let o = Arc::new(options()?);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let count = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let deadline = started + Duration::from_secs_f64(o.seconds);
        let tasks: Vec<_> = (0..o.connections)
            .map(|_| {
                let (o, count) = (Arc::clone(&o), Arc::clone(&count));
                tokio::spawn(async move {
                    // A bounded run: a stuck connection cannot hold the generator past the end.
                    let bound = deadline + Duration::from_secs(10);
                    let run = async {
                        if o.ws {
                            ws_connection(o, deadline, count).await
                        } else {
                            http_connection(o, deadline, count).await
                        }
                    };
                    tokio::time::timeout_at(bound.into(), run)
                        .await
                        .unwrap_or_else(|_| {
                            Err(anyhow::anyhow!("a connection hung past the deadline"))
                        })
                })
            })
            .collect();
        let mut errors = Vec::new();
        for task in tasks {
            if let Err(e) = task.await? {
                errors.push(e.to_string());
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let requests = count.load(Ordering::Relaxed);
        println!(
            "{{\"requests\":{requests},\"seconds\":{seconds:.3},\"rps\":{:.0},\"errors\":{}}}",
            requests as f64 / seconds,
            errors.len()
        );
        if let Some(first) = errors.first() {
            bail!("{} connection(s) failed, e.g.: {first}", errors.len());
        }
        Ok(())
    })
}
