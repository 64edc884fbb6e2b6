//! Soak: minutes of mixed traffic against the release `bench-server` — HTTP queries over
//! keep-alive, WebSocket connections opening, asking and closing, WebSocket and SSE
//! subscriptions coming and going, and hostile clients among them (half-open requests, stalled
//! bodies, oversized WebSocket messages, abrupt disconnects) — while the server's RSS and open
//! file descriptors are sampled. A long-running server must plateau: the figures print as a
//! table, and the run fails if anything errors or if the last third's peak grows more than
//! 25% over the middle third's.
//!
//! Run with: `cargo bench -p oxrpc-tests --bench soak [-- SECONDS]` (default 120).
//! Everything is on loopback and bounded in time; the server is stopped by PID at the end.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::ServerProcess;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

/// Counts of what the load did.
#[derive(Default)]
struct Counts {
    http: AtomicU64,
    ws: AtomicU64,
    subscriptions: AtomicU64,
    sse: AtomicU64,
    hostile: AtomicU64,
    errors: AtomicU64,
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

async fn http_load(port: u16, counts: Arc<Counts>, stop: Arc<AtomicBool>) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    while !stop.load(Ordering::Relaxed) {
        let req = http::Request::builder()
            .uri(format!(
                "http://127.0.0.1:{port}/trpc/ping,ping?batch=1&input=%7B%220%22%3A1%2C%221%22%3A2%7D"
            ))
            .body(Empty::new())
            .expect("request");
        match client.request(req).await {
            Ok(res) if res.status().is_success() => {
                let _ = res.into_body().collect().await;
                counts.http.fetch_add(1, Ordering::Relaxed);
            }
            _ => {
                counts.errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

async fn ws_churn(port: u16, counts: Arc<Counts>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut ws, _)) =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/trpc")).await
        else {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        for id in 0..20 {
            let frame = format!(
                r#"{{"id":{id},"method":"query","params":{{"path":"ping","input":{id}}}}}"#
            );
            if ws.send(Message::Text(frame.into())).await.is_err() {
                counts.errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
            match ws.next().await {
                Some(Ok(Message::Text(_))) => {
                    counts.ws.fetch_add(1, Ordering::Relaxed);
                }
                _ => {
                    counts.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        // Half the connections close politely, half vanish.
        if counts.ws.load(Ordering::Relaxed).is_multiple_of(2) {
            let _ = ws.close(None).await;
        }
    }
}

async fn subscription_churn(port: u16, counts: Arc<Counts>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut ws, _)) =
            tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/trpc")).await
        else {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let subscribe = r#"{"id":1,"method":"subscription","params":{"path":"ticks50"}}"#;
        let _ = ws.send(Message::Text(subscribe.into())).await;
        let mut events = 0;
        while events < 10 {
            match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
                Ok(Some(Ok(Message::Text(_)))) => events += 1,
                _ => {
                    counts.errors.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
        counts.subscriptions.fetch_add(1, Ordering::Relaxed);
        drop(ws);
    }
}

async fn sse_churn(port: u16, counts: Arc<Counts>, stop: Arc<AtomicBool>) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    while !stop.load(Ordering::Relaxed) {
        let req = http::Request::builder()
            .uri(format!("http://127.0.0.1:{port}/trpc/ticks50"))
            .header("accept", "text/event-stream")
            .body(Empty::new())
            .expect("request");
        let Ok(res) = client.request(req).await else {
            counts.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let mut body = res.into_body();
        for _ in 0..10 {
            if tokio::time::timeout(Duration::from_secs(5), body.frame())
                .await
                .is_err()
            {
                counts.errors.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
        counts.sse.fetch_add(1, Ordering::Relaxed);
    }
}

/// Clients that misbehave: half-open requests, a stalled body, an oversized WebSocket message.
async fn hostile(port: u16, counts: Arc<Counts>, stop: Arc<AtomicBool>) {
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        match round % 3 {
            0 => {
                if let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", port)).await {
                    let _ = tcp.write_all(b"GET /trpc/pi").await;
                    // Held open; the server's header timeout ends it. Dropped after a while.
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(40)).await;
                        drop(tcp);
                    });
                }
            }
            1 => {
                if let Ok(mut tcp) = TcpStream::connect(("127.0.0.1", port)).await {
                    let _ = tcp
                        .write_all(b"POST /trpc/ping HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n12")
                        .await;
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_secs(40)).await;
                        drop(tcp);
                    });
                }
            }
            _ => {
                if let Ok((mut ws, _)) =
                    tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/trpc")).await
                {
                    let big = "x".repeat(2 * 1024 * 1024);
                    let _ = ws.send(Message::Text(big.into())).await;
                    let _ = tokio::time::timeout(Duration::from_secs(2), ws.next()).await;
                }
            }
        }
        counts.hostile.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(120);
    let server = ServerProcess::start();
    let pid = server.pid();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let samples = runtime.block_on(async {
        let counts = Arc::new(Counts::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        let port = server.port;
        for _ in 0..4 {
            tasks.push(tokio::spawn(http_load(
                port,
                Arc::clone(&counts),
                Arc::clone(&stop),
            )));
        }
        for _ in 0..4 {
            tasks.push(tokio::spawn(ws_churn(
                port,
                Arc::clone(&counts),
                Arc::clone(&stop),
            )));
        }
        for _ in 0..20 {
            tasks.push(tokio::spawn(subscription_churn(
                port,
                Arc::clone(&counts),
                Arc::clone(&stop),
            )));
            tasks.push(tokio::spawn(sse_churn(
                port,
                Arc::clone(&counts),
                Arc::clone(&stop),
            )));
        }
        tasks.push(tokio::spawn(hostile(
            port,
            Arc::clone(&counts),
            Arc::clone(&stop),
        )));

        let started = Instant::now();
        let every = Duration::from_secs((seconds / 12).max(2));
        let mut samples = Vec::new();
        println!(
            "{:>6}  {:>9}  {:>5}  {:>9}  {:>9}  {:>7}  {:>6}  {:>7}  {:>6}",
            "t (s)", "RSS (MiB)", "fds", "HTTP", "WS calls", "WS subs", "SSE", "hostile", "errors"
        );
        while started.elapsed() < Duration::from_secs(seconds) {
            tokio::time::sleep(every).await;
            let rss = server.rss_kib();
            let fds = open_fds(pid);
            samples.push((rss, fds));
            println!(
                "{:>6}  {:>9.1}  {:>5}  {:>9}  {:>9}  {:>7}  {:>6}  {:>7}  {:>6}",
                started.elapsed().as_secs(),
                rss as f64 / 1024.0,
                fds,
                counts.http.load(Ordering::Relaxed),
                counts.ws.load(Ordering::Relaxed),
                counts.subscriptions.load(Ordering::Relaxed),
                counts.sse.load(Ordering::Relaxed),
                counts.hostile.load(Ordering::Relaxed),
                counts.errors.load(Ordering::Relaxed),
            );
        }
        stop.store(true, Ordering::SeqCst);
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        // After the load: what the server gives back, at once and once the half-open
        // connections' header timeout (30 s) has passed.
        for wait in [3, 32] {
            tokio::time::sleep(Duration::from_secs(if wait == 3 { 3 } else { 29 })).await;
            println!(
                "{wait:>2} s after the load: RSS {:.1} MiB, {} fds",
                server.rss_kib() as f64 / 1024.0,
                open_fds(pid)
            );
        }
        let errors = counts.errors.load(Ordering::Relaxed);
        assert_eq!(errors, 0, "requests failed during the soak");
        samples
    });
    let third = samples.len() / 3;
    if third > 0 {
        let peak = |s: &[(u64, usize)]| s.iter().map(|(r, _)| *r).max().unwrap_or(0);
        let (middle, last) = (
            peak(&samples[third..2 * third]),
            peak(&samples[2 * third..]),
        );
        println!(
            "RSS peak: middle third {:.1} MiB, last third {:.1} MiB",
            middle as f64 / 1024.0,
            last as f64 / 1024.0
        );
        assert!(
            last as f64 <= middle as f64 * 1.25,
            "RSS keeps growing: {middle} KiB → {last} KiB"
        );
    }
}
