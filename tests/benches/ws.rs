//! WebSocket figures: request/response throughput, subscription fan-out latency to 1,000 and
//! 10,000 subscribers at 10 Hz, and server memory per idle connection.
//!
//! Run with: `cargo bench -p oxrpc-tests --bench ws` (needs `ulimit -n` ≥ 12,000).
//!
//! The server (`bench-server`, release build) runs in its own process, so its RSS is its own;
//! this process is the clients. Everything is on loopback, bounded in count and time, and the
//! server is stopped by PID at the end.

mod common;

use common::{ServerProcess, now_us, percentile};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn connect(port: u16) -> Socket {
    let url = format!("ws://127.0.0.1:{port}/trpc");
    for attempt in 0..20 {
        match tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(&url),
        )
        .await
        {
            Ok(Ok((socket, _))) => return socket,
            _ if attempt < 19 => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("connect failed: {:?}", other.map(|r| r.map(|_| ()))),
        }
    }
    unreachable!()
}

/// Opens `n` connections, at most 256 handshakes at a time (the listen backlog is finite).
async fn connect_many(port: u16, n: usize) -> Vec<Socket> {
    let mut sockets = Vec::with_capacity(n);
    let mut pending =
        futures_util::stream::iter((0..n).map(|_| connect(port))).buffer_unordered(256);
    while let Some(socket) = pending.next().await {
        sockets.push(socket);
    }
    sockets
}

async fn idle_memory(server: &ServerProcess) {
    let mut warm = connect(server.port).await;
    warm.send(Message::Text(
        r#"{"id":1,"method":"query","params":{"path":"ping","input":1}}"#.into(),
    ))
    .await
    .expect("send");
    let _ = warm.next().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.rss_kib();
    let mut sockets = Vec::new();
    for target in [1_000usize, 10_000] {
        sockets.extend(connect_many(server.port, target - sockets.len()).await);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = server.rss_kib();
        let per = (after.saturating_sub(before)) as f64 * 1024.0 / target as f64;
        println!(
            "idle connections: {target:>6}  server RSS +{} KiB  →  {per:.0} bytes per idle connection",
            after - before
        );
    }
    drop(sockets);
    drop(warm);
    // What a long-running server keeps after the load is gone (allocator retention).
    for wait in [2, 15] {
        tokio::time::sleep(Duration::from_secs(if wait == 2 { 2 } else { 13 })).await;
        println!(
            "{wait:>2} s after closing them all: server RSS +{} KiB over the start",
            server.rss_kib().saturating_sub(before)
        );
    }
}

async fn throughput(server: &ServerProcess) {
    // Request/response: each connection waits for every answer before the next request.
    let connections = 32;
    let per_connection = 2_000;
    let sockets = connect_many(server.port, connections).await;
    let start = Instant::now();
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| {
            tokio::spawn(async move {
                for i in 0..per_connection {
                    let frame = format!(
                        r#"{{"id":{i},"method":"query","params":{{"path":"ping","input":{i}}}}}"#
                    );
                    ws.send(Message::Text(frame.into())).await.expect("send");
                    loop {
                        match ws.next().await {
                            Some(Ok(Message::Text(_))) => break,
                            Some(Ok(_)) => continue,
                            other => panic!("connection ended: {other:?}"),
                        }
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("client task");
    }
    let elapsed = start.elapsed();
    let total = connections * per_connection;
    println!(
        "request/response: {total} queries over {connections} connections in {:.2} s  →  {:.0} per second",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );

    // Pipelined: one connection, 20,000 requests in flight in 100-request frames.
    let ws = connect(server.port).await;
    let total = 20_000;
    let start = Instant::now();
    let (mut sink, mut stream) = ws.split();
    let reader = tokio::spawn(async move {
        let mut answers = 0;
        while answers < total {
            match stream.next().await {
                Some(Ok(Message::Text(_))) => answers += 1,
                Some(Ok(_)) => {}
                other => panic!("connection ended: {other:?}"),
            }
        }
    });
    for chunk in 0..total / 100 {
        let frame: Vec<String> = (0..100)
            .map(|j| {
                format!(
                    r#"{{"id":{},"method":"query","params":{{"path":"ping","input":1}}}}"#,
                    chunk * 100 + j
                )
            })
            .collect();
        sink.send(Message::Text(format!("[{}]", frame.join(",")).into()))
            .await
            .expect("send");
    }
    reader.await.expect("reader");
    let elapsed = start.elapsed();
    println!(
        "pipelined (one connection, batched frames): {total} queries in {:.2} s  →  {:.0} per second",
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64()
    );
    drop(sink);
}

async fn fan_out(server: &ServerProcess, subscribers: usize) {
    let sockets = connect_many(server.port, subscribers).await;
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u64>::with_capacity(
        subscribers * 60,
    )));
    let received = Arc::new(AtomicU64::new(0));
    let recording = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::with_capacity(subscribers);
    for mut ws in sockets {
        let latencies = Arc::clone(&latencies);
        let received = Arc::clone(&received);
        let recording = Arc::clone(&recording);
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            ws.send(Message::Text(r#"{"id":1,"method":"subscription","params":{"path":"ticks10"}}"#.into())).await.expect("subscribe");
            let mut local = Vec::with_capacity(64);
            loop {
                tokio::select! {
                    frame = ws.next() => match frame {
                        Some(Ok(Message::Text(text))) => {
                            let arrived = now_us();
                            if let Some(sent) = text.split("\"sent_us\":").nth(1).and_then(|r| r.split(['}', ',']).next()).and_then(|n| n.parse::<u64>().ok())
                                && recording.load(Ordering::Relaxed) {
                                    local.push(arrived.saturating_sub(sent));
                                    received.fetch_add(1, Ordering::Relaxed);
                                }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                    _ = stop.changed() => break,
                }
            }
            if let Ok(mut all) = latencies.lock() {
                all.extend(local);
            }
        }));
    }
    // Let every subscription start, then record 5 seconds (50 ticks).
    tokio::time::sleep(Duration::from_secs(2)).await;
    recording.store(true, Ordering::SeqCst);
    let window = Duration::from_secs(5);
    tokio::time::sleep(window).await;
    recording.store(false, Ordering::SeqCst);
    let _ = stop.send(true);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    let mut all = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    all.sort_unstable();
    let expected = subscribers as f64 * 10.0 * window.as_secs_f64();
    println!(
        "fan-out to {subscribers:>6} subscribers at 10 Hz: {} events in 5 s ({:.1}% of {expected:.0}); latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        received.load(Ordering::SeqCst),
        100.0 * received.load(Ordering::SeqCst) as f64 / expected,
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 1.0),
    );
}

fn main() {
    // `cargo bench -p oxrpc-tests --bench ws -- idle fanout` runs only those parts.
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wants = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    let server = ServerProcess::start();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let bench = async {
            if wants("idle") {
                idle_memory(&server).await;
            }
            if wants("throughput") {
                throughput(&server).await;
            }
            if wants("fanout") {
                fan_out(&server, 1_000).await;
                fan_out(&server, 10_000).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(600), bench)
            .await
            .expect("the benchmark took over 10 minutes");
    });
}
