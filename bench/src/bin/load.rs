//! A closed-loop load generator for the bench contract: `--connections` keep-alive HTTP/1.1
//! connections (or WebSocket connections with `--ws`), each sending its next request as soon
//! as the previous answer arrived, for `--seconds`. Single-threaded, so that pinned to one
//! core (`taskset -c 1`) it never competes with a server pinned to the other.
//!
//! Prints one JSON line: `{"requests":N,"seconds":S,"rps":R,"errors":E}`. A request counts
//! when its answer has status 200 (HTTP) and, for the first answer of each connection, equals
//! `--expect` when given: a server answering wrongly fails the run instead of looking fast.
//!
//! Two more WebSocket modes measure what request rates do not:
//! - `--subscribe MESSAGE` (fan-out): every connection subscribes (e.g. to the contract's
//!   `ticks`) and waits for `started`; after one more second the generator prints
//!   `{"phase":"measuring"}`, then records for `--seconds` the delivery latency of every event
//!   (arrival time − the event's `ts`, epoch milliseconds), checks that each subscriber's `n`
//!   only grows and that every subscriber received events, and prints
//!   `{"events":N,"seconds":S,"eps":R,"p50_ms":…,"p99_ms":…,"max_ms":…,"errors":E}`.
//! - `--hold MESSAGE` (idle memory): every connection sends the message once and waits for its
//!   first answer (a query's result, a subscription's `started`); then the generator prints
//!   `{"phase":"holding","connections":N}`, keeps them all open and quiet for `--seconds`, and
//!   closes them.
//!
//! Connections are opened 256 at a time.
//!
//! Usage: `load --url http://127.0.0.1:PORT/trpc/greet?input=%22bob%22 [--method POST --body '{…}']
//!         [--connections 32] [--seconds 5] [--expect TEXT]`
//!        `load --ws ws://127.0.0.1:PORT/trpc (--message|--subscribe|--hold) '{"id":1,…}' [--connections 64] …`
//! Only loopback URLs are accepted.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bytes::Bytes;
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Requests,
    Subscribe,
    Hold,
}

struct Options {
    url: String,
    ws: bool,
    mode: Mode,
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
        mode: Mode::Requests,
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
            "--subscribe" => {
                o.body = Some(value()?);
                o.mode = Mode::Subscribe;
            }
            "--hold" => {
                o.body = Some(value()?);
                o.mode = Mode::Hold;
            }
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
    ensure!(
        o.mode == Mode::Requests || o.ws,
        "--subscribe and --hold need --ws"
    );
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
    match o.mode {
        Mode::Requests => runtime.block_on(requests(o)),
        // Bounded: opening, recording and closing all end within two minutes of the run.
        Mode::Subscribe | Mode::Hold => runtime.block_on(async {
            let bound = Duration::from_secs_f64(o.seconds + 120.0);
            let run = if o.mode == Mode::Hold {
                futures_util::future::Either::Left(hold(Arc::clone(&o)))
            } else {
                futures_util::future::Either::Right(fan_out(Arc::clone(&o)))
            };
            tokio::time::timeout(bound, run)
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("the run did not end within {bound:?}")))
        }),
    }
}

async fn requests(o: Arc<Options>) -> anyhow::Result<()> {
    {
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
    }
}

type Socket = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Opens `--connections` WebSocket connections, 256 at a time; each sends the message and
/// waits for its first text answer (checked against `--expect` if given).
async fn open_all(o: &Arc<Options>) -> anyhow::Result<Vec<Socket>> {
    let message = o.body.clone().context("a message is required")?;
    let limit = Arc::new(tokio::sync::Semaphore::new(256));
    let tasks: Vec<_> = (0..o.connections)
        .map(|_| {
            let (o, limit, message) = (Arc::clone(o), Arc::clone(&limit), message.clone());
            tokio::spawn(async move {
                let _permit = limit.acquire().await?;
                let open = async {
                    let stream = TcpStream::connect(authority(&o.url)).await?;
                    stream.set_nodelay(true)?;
                    let (mut socket, _) =
                        tokio_tungstenite::client_async(o.url.as_str(), stream).await?;
                    socket.send(Message::Text(message.into())).await?;
                    let first = next_text(&mut socket).await?;
                    if let Some(expect) = &o.expect {
                        ensure!(first == *expect, "unexpected answer {first:?}");
                    }
                    anyhow::Ok(socket)
                };
                tokio::time::timeout(Duration::from_secs(30), open)
                    .await
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("opening a connection took over 30 s")))
            })
        })
        .collect();
    let mut sockets = Vec::with_capacity(o.connections);
    for task in tasks {
        sockets.push(task.await??);
    }
    Ok(sockets)
}

async fn next_text(socket: &mut Socket) -> anyhow::Result<String> {
    loop {
        match socket
            .next()
            .await
            .context("the server closed the connection")??
        {
            Message::Text(text) => return Ok(text.as_str().to_owned()),
            Message::Ping(_) | Message::Pong(_) => {}
            other => bail!("unexpected frame {other:?}"),
        }
    }
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// The number after `"key":` in an event's text.
fn field(text: &str, key: &str) -> Option<u64> {
    let rest = text.split(key).nth(1)?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

async fn fan_out(o: Arc<Options>) -> anyhow::Result<()> {
    let sockets = open_all(&o).await?;
    let recording = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut socket| {
            let recording = Arc::clone(&recording);
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut last_n = None;
                loop {
                    tokio::select! {
                        text = next_text(&mut socket) => {
                            let text = text?;
                            let arrived = now_ms();
                            let (Some(n), Some(ts)) = (field(&text, "\"n\":"), field(&text, "\"ts\":")) else {
                                bail!("an event without n and ts: {text:?}");
                            };
                            ensure!(last_n < Some(n), "n went from {last_n:?} to {n}");
                            last_n = Some(n);
                            if recording.load(Ordering::Relaxed) {
                                #[allow(clippy::cast_precision_loss)]
                                latencies.push(arrived - ts as f64);
                            }
                        }
                        _ = stop.changed() => break,
                    }
                }
                let _ = socket.close(None).await;
                anyhow::Ok(latencies)
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("{{\"phase\":\"measuring\"}}");
    let started = Instant::now();
    recording.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs_f64(o.seconds)).await;
    recording.store(false, Ordering::SeqCst);
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let mut all = Vec::new();
    let (mut errors, mut silent) = (Vec::new(), 0usize);
    for task in tasks {
        match tokio::time::timeout(Duration::from_secs(10), task).await {
            Ok(Ok(Ok(latencies))) => {
                silent += usize::from(latencies.is_empty());
                all.extend(latencies);
            }
            Ok(Ok(Err(e))) => errors.push(e.to_string()),
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(_) => errors.push("a subscriber did not stop within 10 s".into()),
        }
    }
    all.sort_unstable_by(f64::total_cmp);
    let at = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(f64::NAN)
    };
    #[allow(clippy::cast_precision_loss)]
    let eps = all.len() as f64 / seconds;
    println!(
        "{{\"events\":{},\"seconds\":{seconds:.3},\"eps\":{eps:.0},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2},\"errors\":{}}}",
        all.len(),
        at(0.5),
        at(0.99),
        at(1.0),
        errors.len() + silent
    );
    if let Some(first) = errors.first() {
        bail!("{} subscriber(s) failed, e.g.: {first}", errors.len());
    }
    ensure!(
        silent == 0,
        "{silent} subscriber(s) received no event while recording"
    );
    Ok(())
}

async fn hold(o: Arc<Options>) -> anyhow::Result<()> {
    let mut sockets = open_all(&o).await?;
    println!(
        "{{\"phase\":\"holding\",\"connections\":{}}}",
        sockets.len()
    );
    tokio::time::sleep(Duration::from_secs_f64(o.seconds)).await;
    // Every connection must still be open: the server may not have dropped any.
    let mut closed = 0usize;
    for socket in &mut sockets {
        if let Some(Some(Ok(Message::Close(_)) | Err(_)) | None) = socket.next().now_or_never() {
            closed += 1;
        }
    }
    for mut socket in sockets {
        let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
    }
    println!(
        "{{\"connections\":{},\"closed_early\":{closed},\"errors\":{closed}}}",
        o.connections
    );
    ensure!(
        closed == 0,
        "the server closed {closed} connection(s) while they were held"
    );
    Ok(())
}
