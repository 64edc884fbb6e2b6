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
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
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

/// The path and query of a URL (`/` when it has none).
fn target(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.find('/').map_or("/", |i| &rest[i..])
}

/// One keep-alive HTTP/1.1 connection, closed loop. A lean client on purpose: the request's
/// bytes are made once and written as they are, and an answer is parsed only as far as the
/// count needs (its head, its length, its body). The generator has one core, as the server
/// has: if its own cost per request came near a server's, a closed loop would measure the
/// generator (a hyper client here held raw hyper to ~90% of its core in release builds).
async fn http_connection(
    o: Arc<Options>,
    deadline: Instant,
    count: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(authority(&o.url)).await?;
    stream.set_nodelay(true)?;
    let mut request = format!(
        "{} {} HTTP/1.1\r\nhost: {}\r\n",
        o.method,
        target(&o.url),
        authority(&o.url)
    );
    if let Some(body) = &o.body {
        request.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        request.push_str("\r\n");
    }
    let (mut buf, mut body) = (Vec::with_capacity(READ_CHUNK), Vec::new());
    let mut first = true;
    while Instant::now() < deadline {
        stream.write_all(request.as_bytes()).await?;
        let status = read_response(&mut stream, &mut buf, &mut body).await?;
        ensure!(
            status == 200,
            "status {status}: {}",
            String::from_utf8_lossy(&body)
        );
        if first {
            if let Some(expect) = &o.expect {
                ensure!(
                    body == expect.as_bytes(),
                    "unexpected answer {:?}",
                    String::from_utf8_lossy(&body)
                );
            }
            first = false;
        }
        count.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// How much a read asks for at least.
const READ_CHUNK: usize = 16 * 1024;

/// Reads one HTTP/1.1 response from `stream`: `buf` holds what was read and not yet used
/// (kept for the next response), `body` receives the response's body (a `content-length`
/// body or a chunked one, without trailers). Returns the status code.
async fn read_response(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    body: &mut Vec<u8>,
) -> anyhow::Result<u16> {
    let Head {
        len: head,
        status,
        content_length,
    } = read_head(stream, buf).await?;
    body.clear();
    let end = match content_length {
        Some(length) => {
            fill(stream, buf, head + length).await?;
            body.extend_from_slice(&buf[head..head + length]);
            head + length
        }
        None => read_chunks(stream, buf, head, body).await?,
    };
    buf.drain(..end);
    Ok(status)
}

/// A response's head, parsed at the start of `buf`.
struct Head {
    /// Its length in `buf`.
    len: usize,
    status: u16,
    /// `None` for a chunked body (or none).
    content_length: Option<usize>,
}

/// Reads until `buf` starts with a whole response head, and parses it (`buf` keeps it).
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<Head> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(len) = response.parse(buf)? {
            let mut content_length = None;
            for header in response.headers.iter() {
                if header.name.eq_ignore_ascii_case("content-length") {
                    content_length =
                        Some(std::str::from_utf8(header.value)?.trim().parse::<usize>()?);
                } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                    ensure!(
                        header.value.eq_ignore_ascii_case(b"chunked"),
                        "unexpected transfer-encoding {:?}",
                        String::from_utf8_lossy(header.value)
                    );
                }
            }
            return Ok(Head {
                len,
                status: response.code.unwrap_or(0),
                content_length,
            });
        }
        read_more(stream, buf).await?;
    }
}

/// Reads a chunked body starting at `buf[at..]` into `body`; returns where it ends in `buf`.
async fn read_chunks(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    mut at: usize,
    body: &mut Vec<u8>,
) -> anyhow::Result<usize> {
    loop {
        let line_end = loop {
            if let Some(i) = buf[at..].windows(2).position(|w| w == b"\r\n") {
                break at + i;
            }
            read_more(stream, buf).await?;
        };
        let line = std::str::from_utf8(&buf[at..line_end])?;
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size line {line:?}"))?;
        at = line_end + 2;
        fill(stream, buf, at + size + 2).await?;
        body.extend_from_slice(&buf[at..at + size]);
        at += size + 2;
        if size == 0 {
            return Ok(at);
        }
    }
}

/// Reads until `buf` holds at least `len` bytes.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, len: usize) -> anyhow::Result<()> {
    while buf.len() < len {
        read_more(stream, buf).await?;
    }
    Ok(())
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    buf.reserve(READ_CHUNK);
    let read = stream.read_buf(buf).await?;
    ensure!(read > 0, "the server closed the connection");
    Ok(())
}

/// One WebSocket connection, closed loop, as lean as the HTTP one: the upgrade request and
/// the message's frame are made once, and an answer's frame is parsed only as far as the
/// count needs (tokio-tungstenite's client held the fastest servers' cores to ~92%).
async fn ws_connection(
    o: Arc<Options>,
    deadline: Instant,
    count: Arc<AtomicU64>,
) -> anyhow::Result<()> {
    let mut stream = TcpStream::connect(authority(&o.url)).await?;
    stream.set_nodelay(true)?;
    let upgrade = format!(
        "GET {} HTTP/1.1\r\nhost: {}\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
        target(&o.url),
        authority(&o.url)
    );
    stream.write_all(upgrade.as_bytes()).await?;
    let mut buf = Vec::with_capacity(READ_CHUNK);
    let head = read_head(&mut stream, &mut buf).await?;
    ensure!(
        head.status == 101,
        "the WebSocket upgrade was answered with status {}",
        head.status
    );
    buf.drain(..head.len);
    let message = o.body.clone().context("--message is required with --ws")?;
    let frame = client_frame(OPCODE_TEXT, message.as_bytes());
    let mut first = true;
    while Instant::now() < deadline {
        stream.write_all(&frame).await?;
        loop {
            let (opcode, payload) = read_frame(&mut stream, &mut buf).await?;
            let answered = match opcode {
                // The protocol's keep-alive (tRPC's, in text frames, and WebSocket's own).
                OPCODE_TEXT if buf[payload.clone()] == *b"PING" => {
                    stream
                        .write_all(&client_frame(OPCODE_TEXT, b"PONG"))
                        .await?;
                    false
                }
                OPCODE_TEXT => {
                    if first {
                        if let Some(expect) = &o.expect {
                            let text = String::from_utf8_lossy(&buf[payload.clone()]);
                            ensure!(text == expect.as_str(), "unexpected answer {text:?}");
                        }
                        first = false;
                    }
                    true
                }
                OPCODE_PING => {
                    let pong = client_frame(OPCODE_PONG, &buf[payload.clone()]);
                    stream.write_all(&pong).await?;
                    false
                }
                OPCODE_PONG => false,
                OPCODE_CLOSE => bail!("the server closed the connection"),
                other => bail!("unexpected frame (opcode {other})"),
            };
            buf.drain(..payload.end);
            if answered {
                break;
            }
        }
        count.fetch_add(1, Ordering::Relaxed);
    }
    // A close frame, then the socket: the server sees a clean close.
    let _ = stream.write_all(&client_frame(OPCODE_CLOSE, &[])).await;
    Ok(())
}

const OPCODE_TEXT: u8 = 0x1;
const OPCODE_CLOSE: u8 = 0x8;
const OPCODE_PING: u8 = 0x9;
const OPCODE_PONG: u8 = 0xA;

/// A whole (FIN) client frame: masked, as RFC 6455 requires of clients (a fixed key: the
/// server cannot tell, and this traffic only ever goes to loopback).
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | opcode);
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&KEY);
    frame.extend(payload.iter().zip(KEY.iter().cycle()).map(|(b, k)| b ^ k));
    frame
}

/// Reads one whole server frame into `buf`: its opcode and where its payload lies in `buf`
/// (the frame ends where the payload does; the caller drains it).
async fn read_frame(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> anyhow::Result<(u8, std::ops::Range<usize>)> {
    fill(stream, buf, 2).await?;
    let (fin, opcode) = (buf[0] & 0x80 != 0, buf[0] & 0x0f);
    ensure!(
        fin,
        "a fragmented frame (the servers send small messages whole)"
    );
    let (masked, short) = (buf[1] & 0x80 != 0, buf[1] & 0x7f);
    let (mut at, len) = match short {
        126 => {
            fill(stream, buf, 4).await?;
            (4, usize::from(u16::from_be_bytes([buf[2], buf[3]])))
        }
        127 => {
            fill(stream, buf, 10).await?;
            let mut len = [0; 8];
            len.copy_from_slice(&buf[2..10]);
            (10, usize::try_from(u64::from_be_bytes(len))?)
        }
        len => (2, usize::from(len)),
    };
    let key = if masked {
        fill(stream, buf, at + 4).await?;
        at += 4;
        Some([buf[at - 4], buf[at - 3], buf[at - 2], buf[at - 1]])
    } else {
        None
    };
    fill(stream, buf, at + len).await?;
    if let Some(key) = key {
        for (b, k) in buf[at..at + len].iter_mut().zip(key.iter().cycle()) {
            *b ^= k;
        }
    }
    Ok((opcode, at..at + len))
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
