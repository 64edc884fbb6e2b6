//! SSE figures beside WebSocket: fan-out of a 10 Hz and a 50 Hz tick to 1,000 subscribers over
//! each transport (events delivered, p50/p99 delivery latency, server CPU per delivered event,
//! server RSS), and the time to first byte of the fast item in a streamed JSONL batch whose
//! other item is slow.
//!
//! Run with: `cargo bench -p oxrpc-tests --bench sse`
//!
//! The server (`bench-server`, release build) runs in its own process, so its CPU time and RSS
//! are its own; this process is the clients. Everything is on loopback, bounded in count and
//! time, and the server is stopped by PID at the end.

mod common;

use common::{ServerProcess, now_us, percentile};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_tungstenite::tungstenite::Message;

/// The send time carried by an event's text.
fn sent_us(text: &str) -> Option<u64> {
    text.split("\"sent_us\":")
        .nth(1)?
        .split(['}', ','])
        .next()?
        .parse()
        .ok()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Transport {
    WebSocket,
    Sse,
}

/// What every subscriber task shares.
#[derive(Clone)]
struct Tally {
    latencies: Arc<std::sync::Mutex<Vec<u64>>>,
    received: Arc<AtomicU64>,
    recording: Arc<AtomicBool>,
}

impl Tally {
    fn record(&self, local: &mut Vec<u64>, text: &str) {
        if let Some(sent) = sent_us(text)
            && self.recording.load(Ordering::Relaxed)
        {
            local.push(now_us().saturating_sub(sent));
            self.received.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn subscribe_ws(
    port: u16,
    path: &'static str,
    tally: Tally,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let url = format!("ws://127.0.0.1:{port}/trpc");
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
        return;
    };
    let frame = format!(r#"{{"id":1,"method":"subscription","params":{{"path":"{path}"}}}}"#);
    if ws.send(Message::Text(frame.into())).await.is_err() {
        return;
    }
    let mut local = Vec::with_capacity(512);
    loop {
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Message::Text(text))) => tally.record(&mut local, &text),
                Some(Ok(_)) => {}
                _ => break,
            },
            _ = stop.changed() => break,
        }
    }
    if let Ok(mut all) = tally.latencies.lock() {
        all.extend(local);
    }
}

async fn subscribe_sse(
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    port: u16,
    path: &'static str,
    tally: Tally,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let req = http::Request::builder()
        .uri(format!("http://127.0.0.1:{port}/trpc/{path}"))
        .header("accept", "text/event-stream")
        .body(Empty::new())
        .expect("request");
    let Ok(res) = client.request(req).await else {
        return;
    };
    let mut body = res.into_body();
    let mut local = Vec::with_capacity(512);
    loop {
        tokio::select! {
            frame = body.frame() => match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        // One event per frame: the server writes each event as one chunk.
                        tally.record(&mut local, &String::from_utf8_lossy(&data));
                    }
                }
                _ => break,
            },
            _ = stop.changed() => break,
        }
    }
    if let Ok(mut all) = tally.latencies.lock() {
        all.extend(local);
    }
}

async fn fan_out(server: &ServerProcess, transport: Transport, hz: u32, subscribers: usize) {
    let path = if hz == 50 { "ticks50" } else { "ticks10" };
    let tally = Tally {
        latencies: Arc::new(std::sync::Mutex::new(Vec::with_capacity(
            subscribers * hz as usize * 5,
        ))),
        received: Arc::new(AtomicU64::new(0)),
        recording: Arc::new(AtomicBool::new(false)),
    };
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let client = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(0)
        .build_http::<Empty<Bytes>>();
    let rss_before = server.rss_kib();
    let mut tasks = Vec::with_capacity(subscribers);
    for i in 0..subscribers {
        let (tally, stop) = (tally.clone(), stop_rx.clone());
        tasks.push(match transport {
            Transport::WebSocket => tokio::spawn(subscribe_ws(server.port, path, tally, stop)),
            Transport::Sse => tokio::spawn(subscribe_sse(
                client.clone(),
                server.port,
                path,
                tally,
                stop,
            )),
        });
        // At most 256 handshakes in flight (the listen backlog is finite).
        if i % 256 == 255 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss = server.rss_kib();
    let cpu_before = server.cpu();
    tally.recording.store(true, Ordering::SeqCst);
    let window = Duration::from_secs(5);
    tokio::time::sleep(window).await;
    tally.recording.store(false, Ordering::SeqCst);
    let cpu = server.cpu().saturating_sub(cpu_before);
    let _ = stop.send(true);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    let mut all = tally
        .latencies
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    all.sort_unstable();
    let received = tally.received.load(Ordering::SeqCst);
    let expected = subscribers as f64 * f64::from(hz) * window.as_secs_f64();
    let name = match transport {
        Transport::WebSocket => "WebSocket",
        Transport::Sse => "SSE",
    };
    println!(
        "{name:>9} fan-out to {subscribers} subscribers at {hz:>2} Hz: {:.0} events/s ({:.1}% of {:.0}); latency p50 {:.2} ms, p99 {:.2} ms; server CPU {:.2} µs per event; server RSS {} MiB (+{} MiB for the subscribers)",
        received as f64 / window.as_secs_f64(),
        100.0 * received as f64 / expected,
        expected / window.as_secs_f64(),
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        if received == 0 {
            0.0
        } else {
            cpu.as_secs_f64() * 1e6 / received as f64
        },
        rss / 1024,
        rss.saturating_sub(rss_before) / 1024,
    );
    // Let the server drop the subscribers before the next run.
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Time to first byte of the fast item in `slow,ping?batch=1` streamed as JSONL.
async fn streamed_batch(server: &ServerProcess) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut fast = Vec::new();
    let mut slow = Vec::new();
    for _ in 0..20 {
        let req = http::Request::builder()
            .uri(format!(
                "http://127.0.0.1:{}/trpc/slow,ping?batch=1&input=%7B%220%22%3A200%2C%221%22%3A1%7D",
                server.port
            ))
            .header("trpc-accept", "application/jsonl")
            .body(Empty::new())
            .expect("request");
        let started = Instant::now();
        let res = client.request(req).await.expect("request");
        let mut body = res.into_body();
        let mut text = String::new();
        let (mut fast_at, mut slow_at) = (None, None);
        while let Some(Ok(frame)) = body.frame().await {
            if let Ok(data) = frame.into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
                for line in text.lines().skip(1) {
                    if line.starts_with("[1,") && fast_at.is_none() {
                        fast_at = Some(started.elapsed());
                    }
                    if line.starts_with("[0,") && slow_at.is_none() {
                        slow_at = Some(started.elapsed());
                    }
                }
            }
        }
        fast.push(fast_at.expect("fast item").as_micros() as u64);
        slow.push(slow_at.expect("slow item").as_micros() as u64);
    }
    fast.sort_unstable();
    slow.sort_unstable();
    println!(
        "streamed batch (slow 200 ms + fast): fast item after p50 {:.2} ms (max {:.2} ms), slow item after p50 {:.2} ms, over 20 requests",
        percentile(&fast, 0.5),
        percentile(&fast, 1.0),
        percentile(&slow, 0.5),
    );
}

fn main() {
    let server = ServerProcess::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let bench = async {
            streamed_batch(&server).await;
            for hz in [10, 50] {
                for transport in [Transport::WebSocket, Transport::Sse] {
                    fan_out(&server, transport, hz, 1_000).await;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(600), bench)
            .await
            .expect("the benchmark took over 10 minutes");
    });
}
