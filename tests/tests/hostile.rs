//! Hostile and stalled clients: WebSocket close codes per RFC 6455 §7.4.1 and the HTTP
//! timeouts, over real sockets (raw TCP where a well-behaved client library cannot misbehave).
//! Every await has a deadline.

mod support;

use support::{Running, deadline, raw_exchange};

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use oxrpc::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

type Ctx = oxrpc_tests::Ctx;

async fn ws(
    server: &Running,
    query: &str,
    headers: &[(&str, &str)],
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let mut req = format!("ws://{}/trpc{query}", server.addr)
        .into_client_request()
        .expect("request");
    for (k, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            v.parse().expect("value"),
        );
    }
    deadline(tokio_tungstenite::connect_async(req))
        .await
        .expect("connect")
        .0
}

/// The close code the server ends the connection with (after any other frames).
async fn close_code(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
) -> Option<u16> {
    loop {
        match deadline(socket.next()).await {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            _ => return None,
        }
    }
}

#[tokio::test]
async fn websocket_close_codes_say_why() {
    let server = Running::start(|s: Server<Ctx>| {
        s.ws_max_message_size(1024)
            .ws_handshake_timeout(Duration::from_millis(300))
    })
    .await;

    // 1009: a message over the limit.
    let mut socket = ws(&server, "", &[]).await;
    let big = format!(
        r#"{{"id":1,"method":"query","params":{{"path":"echo","input":"{}"}}}}"#,
        "x".repeat(4000)
    );
    deadline(socket.send(Message::Text(big.into())))
        .await
        .expect("send");
    assert_eq!(close_code(&mut socket).await, Some(1009));

    // 1008: connection params of the wrong shape (after the error frame).
    let mut socket = ws(&server, "?connectionParams=1", &[]).await;
    deadline(socket.send(Message::Text(
        r#"{"method":"connectionParams","data":{"token":1}}"#.into(),
    )))
    .await
    .expect("send");
    assert_eq!(close_code(&mut socket).await, Some(1008));

    // 1008: a refused context.
    let mut socket = ws(&server, "", &[("x-fail-context", "1")]).await;
    assert_eq!(close_code(&mut socket).await, Some(1008));

    // 1011: a create-context function that panics (after the error frame); the server goes on.
    let mut socket = ws(&server, "", &[("x-panic-context", "1")]).await;
    let first = deadline(socket.next()).await.and_then(Result::ok);
    let Some(Message::Text(text)) = first else {
        panic!("an error frame first, got {first:?}");
    };
    assert!(text.contains("INTERNAL_SERVER_ERROR"), "{text}");
    assert!(
        !text.contains("x-panic-context"),
        "the cause is not leaked: {text}"
    );
    assert_eq!(close_code(&mut socket).await, Some(1011));

    // 1008: connection params that never come.
    let started = Instant::now();
    let mut socket = ws(&server, "?connectionParams=1", &[]).await;
    assert_eq!(close_code(&mut socket).await, Some(1008));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // 1001: the server drops every connection (as on shutdown).
    let mut socket = ws(&server, "", &[]).await;
    deadline(socket.send(Message::Text("PING".into())))
        .await
        .expect("send");
    assert_eq!(
        deadline(socket.next()).await.and_then(Result::ok),
        Some(Message::Text("PONG".into()))
    );
    server.handle.drop_all();
    assert_eq!(close_code(&mut socket).await, Some(1001));
    server.shutdown().await;
}

/// Opens a WebSocket by hand, to send what no client library would.
async fn raw_ws(server: &Running) -> TcpStream {
    let mut tcp = deadline(TcpStream::connect(server.addr))
        .await
        .expect("connect");
    let request = format!(
        "GET /trpc HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    deadline(tcp.write_all(request.as_bytes()))
        .await
        .expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        deadline(tcp.read_exact(&mut byte)).await.expect("101");
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    tcp
}

#[tokio::test]
async fn protocol_violations_close_with_1002() {
    let server = Running::start(|s| s).await;
    let mut tcp = raw_ws(&server).await;
    // An unmasked text frame "hi": clients must mask (RFC 6455 §5.1).
    deadline(tcp.write_all(&[0x81, 0x02, b'h', b'i']))
        .await
        .expect("write");
    let mut frame = [0u8; 4];
    deadline(tcp.read_exact(&mut frame))
        .await
        .expect("close frame");
    assert_eq!(frame[0], 0x88, "a close frame: {frame:?}");
    assert_eq!(u16::from_be_bytes([frame[2], frame[3]]), 1002);
    server.shutdown().await;
}

/// Reads until the server closes the connection; what it sent meanwhile.
async fn read_to_close(tcp: &mut TcpStream) -> String {
    let mut all = Vec::new();
    deadline(tcp.read_to_end(&mut all)).await.expect("read");
    String::from_utf8_lossy(&all).into_owned()
}

/// Sends a keep-alive `GET` of `target` on a new connection and reads until the server
/// closes it: what it sent, and how long after the request it closed.
async fn answered_then_closed(server: &Running, target: &str) -> (String, Duration) {
    let mut tcp = deadline(TcpStream::connect(server.addr))
        .await
        .expect("connect");
    let request = format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n");
    deadline(tcp.write_all(request.as_bytes()))
        .await
        .expect("write");
    let started = Instant::now();
    let all = read_to_close(&mut tcp).await;
    (all, started.elapsed())
}

#[tokio::test]
async fn stalled_and_idle_http_clients_are_cut_off() {
    let server = Running::start(|s: Server<Ctx>| {
        s.header_read_timeout(Duration::from_millis(300))
            .body_read_timeout(Duration::from_millis(300))
    })
    .await;

    // Half a request line, then nothing: closed.
    let started = Instant::now();
    let mut tcp = deadline(TcpStream::connect(server.addr))
        .await
        .expect("connect");
    deadline(tcp.write_all(b"GET /trpc/hel"))
        .await
        .expect("write");
    read_to_close(&mut tcp).await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // A body that stalls after a few bytes: 408 TIMEOUT.
    let mut tcp = deadline(TcpStream::connect(server.addr))
        .await
        .expect("connect");
    let head = "POST /trpc/echoMut HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"a\":";
    deadline(tcp.write_all(head.as_bytes()))
        .await
        .expect("write");
    let mut response = vec![0u8; 512];
    let n = deadline(tcp.read(&mut response)).await.expect("response");
    let text = String::from_utf8_lossy(&response[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("\"TIMEOUT\""), "{text}");

    // An idle keep-alive connection: closed after the same timeout, not before the timeout
    // has passed since the response, and not long after.
    let (all, idle_for) = answered_then_closed(&server, "/trpc/hello").await;
    assert!(all.contains("hello world"), "{all}");
    assert!(
        idle_for >= Duration::from_millis(300) && idle_for < Duration::from_secs(3),
        "{idle_for:?}"
    );

    // A request running twice the timeout keeps its connection; the connection is closed
    // once idle after it.
    let (all, open_for) = answered_then_closed(&server, "/trpc/slow?input=600").await;
    assert!(all.contains(r#""waited":600"#), "{all}");
    assert!(
        open_for >= Duration::from_millis(900) && open_for < Duration::from_secs(4),
        "{open_for:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_panicking_create_context_fails_the_request_and_the_server_goes_on() {
    let server = Running::start(|s| s).await;
    for _ in 0..3 {
        let answer = raw_exchange(
            server.addr,
            b"GET /trpc/hello HTTP/1.1\r\nHost: x\r\nx-panic-context: 1\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 500"), "{answer}");
        assert!(answer.contains("INTERNAL_SERVER_ERROR"), "{answer}");
        assert!(
            !answer.contains("x-panic-context"),
            "the cause is not leaked: {answer}"
        );
    }
    let answer = raw_exchange(
        server.addr,
        b"GET /trpc/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.contains("hello world"), "{answer}");
    server.shutdown().await;
}
