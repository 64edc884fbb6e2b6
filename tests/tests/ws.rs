//! The WebSocket transport with raw frames (spec §7, captures of §11.8), over real sockets on
//! the standalone server. Every await has a deadline.

mod support;

use support::{Running, deadline};

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use oxrpc::Server;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket connection to `ws://ADDR/trpc`.
async fn connect_to(addr: std::net::SocketAddr) -> Socket {
    deadline(tokio_tungstenite::connect_async(format!(
        "ws://{addr}/trpc"
    )))
    .await
    .expect("connect")
    .0
}

/// A WebSocket connection to `server`, with extra upgrade-request headers.
async fn connect(server: &Running, query: &str, headers: &[(&str, &str)]) -> Socket {
    let mut req = format!("ws://{}/trpc{query}", server.addr)
        .into_client_request()
        .expect("request");
    for (k, v) in headers {
        let name = http::HeaderName::from_bytes(k.as_bytes()).expect("header name");
        req.headers_mut().insert(name, v.parse().expect("header"));
    }
    deadline(tokio_tungstenite::connect_async(req))
        .await
        .expect("connect")
        .0
}

async fn send(socket: &mut Socket, text: &str) {
    deadline(socket.send(Message::Text(text.into())))
        .await
        .expect("send");
}

/// The next text frame, as JSON (or the raw text when it is not JSON).
async fn recv(socket: &mut Socket) -> Value {
    loop {
        match deadline(socket.next()).await {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(&t).unwrap_or(Value::String(t.to_string()));
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Asserts that the server ends the connection next (a close frame, or the socket's end).
async fn closed(socket: &mut Socket) {
    let end = deadline(socket.next()).await;
    assert!(
        matches!(end, None | Some(Ok(Message::Close(_))) | Some(Err(_))),
        "{end:?}"
    );
}

/// An error frame's `id` and tRPC error code.
fn id_and_code(frame: &Value) -> (Value, Value) {
    (frame["id"].clone(), frame["error"]["data"]["code"].clone())
}

/// Frames until one matches `done`, all of them returned.
async fn recv_until(socket: &mut Socket, done: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut frames = Vec::new();
    loop {
        let frame = recv(socket).await;
        let stop = done(&frame);
        frames.push(frame);
        if stop {
            return frames;
        }
    }
}

fn stopped(id: Value) -> impl Fn(&Value) -> bool {
    move |f| f["id"] == id && (f["result"]["type"] == "stopped")
}

#[tokio::test]
async fn queries_mutations_batches_and_jsonrpc_echo() {
    let server = Running::start(|s| s).await;
    let mut ws = connect(&server, "", &[]).await;
    send(&mut ws, r#"{"jsonrpc":"2.0","id":"abc","method":"query","params":{"path":"greet","input":{"name":"x"}}}"#).await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"id":"abc","jsonrpc":"2.0","result":{"type":"data","data":{"text":"hi x","times":1}}})
    );

    send(&mut ws, r#"[{"id":1,"method":"query","params":{"path":"hello"}},{"id":2,"method":"mutation","params":{"path":"addPost","input":{"title":"z"}}}]"#).await;
    let mut frames = [recv(&mut ws).await, recv(&mut ws).await];
    frames.sort_by_key(|f| f["id"].as_u64());
    assert_eq!(
        frames[0],
        json!({"id":1,"result":{"type":"data","data":"hello world"}})
    );
    assert_eq!(
        frames[1],
        json!({"id":2,"result":{"type":"data","data":{"id":1,"title":"z"}}})
    );

    send(
        &mut ws,
        r#"{"id":3,"method":"mutation","params":{"path":"types.nothing","input":"x"}}"#,
    )
    .await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"id":3,"result":{"type":"data"}})
    );

    send(
        &mut ws,
        r#"{"id":4,"method":"query","params":{"path":"notFound"}}"#,
    )
    .await;
    let frame = recv(&mut ws).await;
    assert_eq!(frame["error"]["data"]["code"], "NOT_FOUND");
    assert_eq!(frame["error"]["data"]["path"], "notFound");
    server.shutdown().await;
}

/// A call that finishes at once is answered by the connection itself, one that waits on its
/// own task: neither holds up the other, and a panic on the first poll is an answer too.
#[tokio::test]
async fn waiting_calls_do_not_hold_up_ready_ones() {
    let server = Running::start(|s| s).await;
    let mut ws = connect(&server, "", &[]).await;
    send(
        &mut ws,
        r#"{"id":1,"method":"query","params":{"path":"slow","input":300}}"#,
    )
    .await;
    send(
        &mut ws,
        r#"{"id":2,"method":"query","params":{"path":"boom"}}"#,
    )
    .await;
    send(
        &mut ws,
        r#"{"id":3,"method":"query","params":{"path":"hello"}}"#,
    )
    .await;
    let frames = [
        recv(&mut ws).await,
        recv(&mut ws).await,
        recv(&mut ws).await,
    ];
    assert_eq!(frames[0]["id"], 2);
    assert_eq!(frames[0]["error"]["data"]["code"], "INTERNAL_SERVER_ERROR");
    assert_eq!(
        frames[1],
        json!({"id":3,"result":{"type":"data","data":"hello world"}})
    );
    assert_eq!(
        frames[2],
        json!({"id":1,"result":{"type":"data","data":{"waited":300}}})
    );
    // Several waiting at once, answered as each finishes.
    send(&mut ws, r#"[{"id":4,"method":"query","params":{"path":"slow","input":400}},{"id":5,"method":"query","params":{"path":"slow","input":100}}]"#).await;
    let ids = [
        recv(&mut ws).await["id"].clone(),
        recv(&mut ws).await["id"].clone(),
    ];
    assert_eq!(ids, [json!(5), json!(4)]);
    server.shutdown().await;
}

/// Keep-alive: no `PING` while frames arrive (each one moves the timer), a `PING` after a
/// quiet `ping_every`, and a peer that does not answer it is cut off after `pong_wait`.
#[tokio::test]
async fn keep_alive_pings_quiet_peers_and_drops_silent_ones() {
    let (every, wait) = (Duration::from_millis(300), Duration::from_millis(300));
    let server = Running::start(move |s| s.ws_keep_alive(every, wait)).await;
    let mut ws = connect(&server, "", &[]).await;
    let hello = |id: u32| format!(r#"{{"id":{id},"method":"query","params":{{"path":"hello"}}}}"#);
    for id in 0..8 {
        send(&mut ws, &hello(id)).await;
        // A ping would arrive here instead of the answer.
        assert_eq!(recv(&mut ws).await["id"], id);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for _ in 0..2 {
        let quiet = std::time::Instant::now();
        assert_eq!(recv(&mut ws).await, Value::String("PING".into()));
        let waited = quiet.elapsed();
        assert!(
            waited >= Duration::from_millis(150) && waited < Duration::from_secs(2),
            "{waited:?}"
        );
        send(&mut ws, "PONG").await;
    }
    send(&mut ws, &hello(100)).await;
    assert_eq!(recv(&mut ws).await["id"], 100);
    assert_eq!(recv(&mut ws).await, Value::String("PING".into()));
    let pinged = std::time::Instant::now();
    loop {
        match deadline(ws.next()).await {
            Some(Ok(Message::Text(t))) => panic!("a frame after the unanswered ping: {t}"),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            Some(Ok(other)) => panic!("unexpected {other:?}"),
        }
    }
    let cut = pinged.elapsed();
    assert!(
        cut >= Duration::from_millis(200) && cut < Duration::from_secs(3),
        "{cut:?}"
    );
    server.shutdown().await;
}

/// A reconnect broadcast reaches every connection, whatever its task is doing when it goes
/// out: reading, answering a call, or idle (the connection looks at the control messages'
/// epoch once per turn and is woken for them in between).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_reaches_busy_and_idle_connections() {
    let server = Running::start(|s| s).await;
    let reconnect = json!({"id":null,"method":"reconnect"});
    for round in 0..40 {
        let mut ws = connect(&server, "", &[]).await;
        if round % 2 == 0 {
            let call = format!(r#"{{"id":{round},"method":"query","params":{{"path":"hello"}}}}"#);
            send(&mut ws, &call).await;
        }
        if round % 4 == 1 {
            tokio::task::yield_now().await;
        }
        server.handle.reconnect_all();
        let frames = recv_until(&mut ws, |f| *f == reconnect).await;
        assert!(frames.len() <= 2, "round {round}: {frames:?}");
        // Still serving after it.
        send(
            &mut ws,
            r#"{"id":"after","method":"query","params":{"path":"hello"}}"#,
        )
        .await;
        let answer = recv_until(&mut ws, |f| f["id"] == "after").await;
        assert_eq!(
            answer.last().map(|f| f["result"]["data"].clone()),
            Some(json!("hello world")),
            "round {round}"
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn tracked_subscription_resumes_after_last_event_id() {
    let server = Running::start(|s| s).await;
    let mut ws = connect(&server, "", &[]).await;
    send(&mut ws, r#"{"id":1,"method":"subscription","params":{"path":"onCount","input":{"from":0},"lastEventId":"4"}}"#).await;
    let frames = recv_until(&mut ws, stopped(json!(1))).await;
    assert_eq!(
        frames,
        vec![
            json!({"id":1,"result":{"type":"started"}}),
            json!({"id":1,"result":{"type":"data","data":{"id":"5","data":{"n":5}},"id":"5"}}),
            json!({"id":1,"result":{"type":"data","data":{"id":"6","data":{"n":6}},"id":"6"}}),
            json!({"id":1,"result":{"type":"data","data":{"id":"7","data":{"n":7}},"id":"7"}}),
            json!({"id":1,"result":{"type":"stopped"}}),
        ]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn errors_end_subscriptions_and_stop_drops_the_stream() {
    let server = Running::start(|s| s).await;
    let mut ws = connect(&server, "", &[]).await;
    send(
        &mut ws,
        r#"{"id":1,"method":"subscription","params":{"path":"onErr"}}"#,
    )
    .await;
    let frames = recv_until(&mut ws, stopped(json!(1))).await;
    assert_eq!(
        frames[1],
        json!({"id":1,"result":{"type":"data","data":"before-error"}})
    );
    assert_eq!(frames[2]["error"]["data"]["code"], "FORBIDDEN");
    assert_eq!(frames[2]["error"]["message"], "sub forbidden");

    // A stream that panics ends with an internal error; the connection keeps serving.
    send(
        &mut ws,
        r#"{"id":9,"method":"subscription","params":{"path":"onPanic"}}"#,
    )
    .await;
    let frames = recv_until(&mut ws, stopped(json!(9))).await;
    assert_eq!(frames[1]["result"]["data"], "a");
    assert_eq!(frames[2]["error"]["data"]["code"], "INTERNAL_SERVER_ERROR");
    assert!(!frames[2].to_string().contains("broke"), "{frames:?}");

    send(
        &mut ws,
        r#"{"id":2,"method":"subscription","params":{"path":"onForever"}}"#,
    )
    .await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"id":2,"result":{"type":"started"}})
    );
    assert_eq!(
        recv(&mut ws).await,
        json!({"id":2,"result":{"type":"data","data":0}})
    );
    // A duplicate id is refused; the first subscription keeps running.
    send(
        &mut ws,
        r#"{"id":2,"method":"subscription","params":{"path":"onForever"}}"#,
    )
    .await;
    let dup = recv_until(&mut ws, |f| f.get("error").is_some()).await;
    assert_eq!(
        dup.last().expect("frame")["error"]["message"],
        "Duplicate id 2"
    );
    send(&mut ws, r#"{"id":2,"method":"subscription.stop"}"#).await;
    recv_until(&mut ws, stopped(json!(2))).await;
    // Unknown and repeated stops are ignored.
    send(&mut ws, r#"{"id":2,"method":"subscription.stop"}"#).await;
    send(&mut ws, r#"{"id":99,"method":"subscription.stop"}"#).await;
    send(
        &mut ws,
        r#"{"id":3,"method":"query","params":{"path":"streams.live"}}"#,
    )
    .await;
    let live = recv_until(&mut ws, |f| f["id"] == 3).await;
    assert_eq!(
        live.last().expect("frame")["result"]["data"]["onForever"],
        0,
        "the stream was dropped"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_frames_get_parse_errors_and_ping_gets_pong() {
    let server = Running::start(|s| s).await;
    let mut ws = connect(&server, "", &[]).await;
    send(
        &mut ws,
        r#"{"id":null,"method":"query","params":{"path":"hello"}}"#,
    )
    .await;
    let frame = recv(&mut ws).await;
    assert_eq!(
        (frame["id"].clone(), frame["error"]["message"].clone()),
        (Value::Null, json!("`id` is required"))
    );
    send(&mut ws, "not json").await;
    assert_eq!(recv(&mut ws).await["error"]["data"]["code"], "PARSE_ERROR");
    send(
        &mut ws,
        r#"{"id":3,"method":"frobnicate","params":{"path":"hello"}}"#,
    )
    .await;
    assert_eq!(
        recv(&mut ws).await["error"]["message"],
        "Invalid procedure type"
    );
    deadline(ws.send(Message::Binary(vec![1, 2, 3].into())))
        .await
        .expect("send");
    assert_eq!(recv(&mut ws).await["error"]["data"]["code"], "PARSE_ERROR");
    send(&mut ws, "PING").await;
    assert_eq!(recv(&mut ws).await, Value::String("PONG".into()));
    send(
        &mut ws,
        r#"{"id":1,"method":"subscription","params":{"path":"hello"}}"#,
    )
    .await;
    assert_eq!(
        recv(&mut ws).await["error"]["message"],
        r#"No "subscription"-procedure on path "hello""#
    );
    send(
        &mut ws,
        r#"{"id":2,"method":"query","params":{"path":"onPlain"}}"#,
    )
    .await;
    assert_eq!(
        recv(&mut ws).await["error"]["message"],
        r#"No "query"-procedure on path "onPlain""#
    );
    // Still serving.
    send(
        &mut ws,
        r#"{"id":4,"method":"query","params":{"path":"hello"}}"#,
    )
    .await;
    assert_eq!(recv(&mut ws).await["result"]["data"], "hello world");
    server.shutdown().await;
}

#[tokio::test]
async fn connection_params_reach_the_context_and_bad_ones_close() {
    let server = Running::start(|s| s).await;
    let mut ws = connect(&server, "?connectionParams=1", &[]).await;
    send(
        &mut ws,
        r#"{"method":"connectionParams","data":{"token":"t"}}"#,
    )
    .await;
    send(
        &mut ws,
        r#"{"id":1,"method":"query","params":{"path":"ctx"}}"#,
    )
    .await;
    assert_eq!(
        recv(&mut ws).await,
        json!({"id":1,"result":{"type":"data","data":{"connectionParams":{"token":"t"},"hasAuth":null}}})
    );

    let mut bad = connect(&server, "?connectionParams=1", &[]).await;
    send(
        &mut bad,
        r#"{"method":"connectionParams","data":{"token":1}}"#,
    )
    .await;
    let frame = recv(&mut bad).await;
    assert_eq!(
        (frame["id"].clone(), frame["error"]["message"].clone()),
        (Value::Null, json!("Invalid connection params shape"))
    );
    // Then the server closes the socket.
    closed(&mut bad).await;
    server.shutdown().await;
}

#[tokio::test]
async fn three_ways_to_authenticate() {
    let server = Running::start(|s| s).await;
    let frames_of = |frames: Vec<Value>| {
        frames
            .iter()
            .filter(|f| f["result"]["type"] == "data")
            .map(|f| f["result"]["data"]["data"]["user"].clone())
            .collect::<Vec<_>>()
    };
    // 1. A header on the upgrade request.
    let mut ws = connect(&server, "", &[("authorization", "ABC")]).await;
    send(
        &mut ws,
        r#"{"id":1,"method":"subscription","params":{"path":"secretTicks"}}"#,
    )
    .await;
    assert_eq!(
        frames_of(recv_until(&mut ws, stopped(json!(1))).await),
        vec![json!("abc"); 3]
    );
    // 2. A token in connectionParams.
    let mut ws = connect(&server, "?connectionParams=1", &[]).await;
    send(
        &mut ws,
        r#"{"method":"connectionParams","data":{"token":"ADMIN"}}"#,
    )
    .await;
    send(
        &mut ws,
        r#"{"id":1,"method":"subscription","params":{"path":"secretTicks"}}"#,
    )
    .await;
    assert_eq!(
        frames_of(recv_until(&mut ws, stopped(json!(1))).await),
        vec![json!("root"); 3]
    );
    // 3. A token in the subscription input.
    let mut ws = connect(&server, "", &[]).await;
    send(&mut ws, r#"{"id":1,"method":"subscription","params":{"path":"tokenTicks","input":{"token":"ABC"}}}"#).await;
    assert_eq!(recv_until(&mut ws, stopped(json!(1))).await.len(), 5);
    send(&mut ws, r#"{"id":2,"method":"subscription","params":{"path":"tokenTicks","input":{"token":"nope"}}}"#).await;
    assert_eq!(recv(&mut ws).await["error"]["data"]["code"], "UNAUTHORIZED");
    // And without credentials the protected subscription is refused.
    send(
        &mut ws,
        r#"{"id":3,"method":"subscription","params":{"path":"secretTicks"}}"#,
    )
    .await;
    let refused = recv_until(&mut ws, |f| f["id"] == 3 && f.get("error").is_some()).await;
    assert_eq!(
        refused.last().expect("frame")["error"]["data"]["code"],
        "UNAUTHORIZED"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn limits_origin_and_subscription_count() {
    let server = Running::start(|s| {
        s.ws_allowed_origins(["https://app.example"])
            .ws_max_subscriptions(2)
            .ws_max_message_size(1024)
    })
    .await;
    let refused = tokio_tungstenite::connect_async({
        let mut req = format!("ws://{}/trpc", server.addr)
            .into_client_request()
            .expect("req");
        req.headers_mut()
            .insert("origin", "https://evil.example".parse().expect("hdr"));
        req
    });
    assert!(
        deadline(refused).await.is_err(),
        "a foreign origin must be refused"
    );
    let mut ws = connect(&server, "", &[("origin", "https://app.example")]).await;
    for id in 1..=3 {
        send(
            &mut ws,
            &format!(r#"{{"id":{id},"method":"subscription","params":{{"path":"onForever"}}}}"#),
        )
        .await;
    }
    let frames = recv_until(&mut ws, |f| f.get("error").is_some()).await;
    let error = frames.last().expect("frame");
    assert_eq!(
        (error["id"].clone(), error["error"]["data"]["code"].clone()),
        (json!(3), json!("TOO_MANY_REQUESTS"))
    );
    // An oversized frame closes the connection; others are unaffected.
    let mut other = connect(&server, "", &[]).await;
    send(
        &mut ws,
        &format!(
            r#"{{"id":9,"method":"query","params":{{"path":"echo","input":"{}"}}}}"#,
            "x".repeat(4096)
        ),
    )
    .await;
    loop {
        match deadline(ws.next()).await {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
            Some(Ok(_)) => continue,
        }
    }
    send(
        &mut other,
        r#"{"id":1,"method":"query","params":{"path":"hello"}}"#,
    )
    .await;
    assert_eq!(recv(&mut other).await["result"]["data"], "hello world");
    server.shutdown().await;
}

#[tokio::test]
async fn reconnect_broadcast_and_graceful_shutdown() {
    let server = Running::start(|s| s.shutdown_grace(Duration::from_millis(300))).await;
    let mut ws = connect(&server, "", &[]).await;
    send(
        &mut ws,
        r#"{"id":1,"method":"query","params":{"path":"hello"}}"#,
    )
    .await;
    recv(&mut ws).await;
    server.handle.reconnect_all();
    assert_eq!(recv(&mut ws).await, json!({"id":null,"method":"reconnect"}));
    assert_eq!(server.handle.websocket_connections(), 1);
    // Shutdown: told to reconnect again, then closed after the grace period.
    let handle = server.handle.clone();
    let shutdown = tokio::spawn(server.shutdown());
    assert_eq!(recv(&mut ws).await, json!({"id":null,"method":"reconnect"}));
    deadline(shutdown).await.expect("shutdown");
    assert_eq!(handle.websocket_connections(), 0);
}

#[tokio::test]
async fn nests_under_axum_with_upgrades() {
    let trpc = Server::with_context(oxrpc_tests::router(), oxrpc_tests::create_context)
        .endpoint("/")
        .into_service();
    let app = axum::Router::new().nest_service("/trpc", trpc);
    let listener = deadline(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    let mut ws = connect_to(addr).await;
    send(
        &mut ws,
        r#"{"id":1,"method":"subscription","params":{"path":"onPlain"}}"#,
    )
    .await;
    let frames = recv_until(&mut ws, stopped(json!(1))).await;
    assert_eq!(frames.len(), 4);
    task.abort();
}

#[tokio::test]
async fn a_refused_context_is_reported_and_the_socket_closed() {
    let server = Running::start(|s| s).await;
    let mut ws = connect(&server, "", &[("x-fail-context", "1")]).await;
    send(
        &mut ws,
        r#"{"id":1,"method":"query","params":{"path":"hello"}}"#,
    )
    .await;
    let frame = recv(&mut ws).await;
    assert_eq!(id_and_code(&frame), (Value::Null, json!("FORBIDDEN")));
    // The call the client sent fails with the same error, then the server closes.
    let frame = recv(&mut ws).await;
    assert_eq!(
        (
            frame["id"].clone(),
            frame["error"]["data"]["code"].clone(),
            frame["error"]["data"]["path"].clone()
        ),
        (json!(1), json!("FORBIDDEN"), json!("hello"))
    );
    closed(&mut ws).await;
    for _ in 0..100 {
        if server.handle.websocket_connections() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.handle.websocket_connections(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn a_refused_connection_answers_calls_sent_after_the_refusal_then_closes() {
    let server = Running::start(|s| s).await;
    // A client whose queued calls go out only after it has read the refusal (the official
    // client sends a moment after the socket opens; a refusal can overtake that).
    let mut late = connect(&server, "", &[("x-fail-context", "1")]).await;
    let frame = recv(&mut late).await;
    assert_eq!(id_and_code(&frame), (Value::Null, json!("FORBIDDEN")));
    tokio::time::sleep(Duration::from_millis(200)).await;
    send(
        &mut late,
        r#"[{"id":1,"method":"query","params":{"path":"hello"}},{"id":2,"method":"subscription","params":{"path":"onCount"}}]"#,
    )
    .await;
    let answers = [recv(&mut late).await, recv(&mut late).await];
    assert_eq!(
        answers
            .iter()
            .map(|f| (
                f["id"].clone(),
                f["error"]["data"]["code"].clone(),
                f["error"]["data"]["path"].clone()
            ))
            .collect::<Vec<_>>(),
        [
            (json!(1), json!("FORBIDDEN"), json!("hello")),
            (json!(2), json!("FORBIDDEN"), json!("onCount"))
        ]
    );
    closed(&mut late).await;

    // A client that sends nothing is closed after the short wait for its calls (1 s).
    let started = std::time::Instant::now();
    let mut idle = connect(&server, "", &[("x-fail-context", "1")]).await;
    assert_eq!(recv(&mut idle).await["id"], Value::Null);
    closed(&mut idle).await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "closed after {:?}, before the wait for calls",
        started.elapsed()
    );

    // A bad `connectionParams` frame: the calls that follow it fail with the same error.
    let mut bad = connect(&server, "?connectionParams=1", &[]).await;
    send(
        &mut bad,
        r#"{"method":"connectionParams","data":{"token":1}}"#,
    )
    .await;
    assert_eq!(
        recv(&mut bad).await["error"]["message"],
        json!("Invalid connection params shape")
    );
    send(
        &mut bad,
        r#"{"id":7,"method":"query","params":{"path":"hello"}}"#,
    )
    .await;
    let frame = recv(&mut bad).await;
    assert_eq!(id_and_code(&frame), (json!(7), json!("PARSE_ERROR")));
    closed(&mut bad).await;
    // Every refused connection is gone.
    deadline(async {
        while server.handle.websocket_connections() != 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_disconnected() {
    let server = Running::start(|s| s.ws_send_queue(16, Duration::from_millis(300))).await;
    let mut reader = connect(&server, "", &[]).await;
    let mut stalled = connect(&server, "", &[]).await;
    send(
        &mut stalled,
        r#"{"id":1,"method":"subscription","params":{"path":"firehose"}}"#,
    )
    .await;
    // `stalled` never reads again: socket buffers fill, its queue fills, and after the
    // slow-consumer timeout the server closes it. Memory stays bounded meanwhile.
    let mut gone = false;
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if server.handle.websocket_connections() == 1 {
            gone = true;
            break;
        }
    }
    assert!(gone, "the stalled connection is still open");
    // The other connection is unaffected.
    send(
        &mut reader,
        r#"{"id":1,"method":"query","params":{"path":"hello"}}"#,
    )
    .await;
    assert_eq!(recv(&mut reader).await["result"]["data"], "hello world");
    drop(stalled);
    server.shutdown().await;
}

/// Endless events, every one ready at once (the stream never waits).
#[oxrpc::procedure(subscription)]
async fn flood() -> impl futures_util::Stream<Item = u64> {
    futures_util::stream::iter(0u64..)
}

/// Answers at once.
#[oxrpc::procedure(query)]
async fn pong() -> String {
    "pong".to_owned()
}

/// A subscription that always has an event ready does not starve the rest of its connection
/// (one task reads, writes and streams): a query is answered and a stop honoured meanwhile.
#[tokio::test]
async fn a_busy_subscription_does_not_starve_its_connection() {
    let router: oxrpc::Router<()> = oxrpc::Router::new()
        .add(flood::procedure())
        .add(pong::procedure());
    let listening = deadline(Server::new(router).bind("127.0.0.1:0"))
        .await
        .expect("bind");
    let addr = listening.local_addr();
    let (stop, stopping) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(listening.run_until(async {
        let _ = stopping.await;
    }));
    let mut ws = connect_to(addr).await;
    send(
        &mut ws,
        r#"{"id":1,"method":"subscription","params":{"path":"flood"}}"#,
    )
    .await;
    for _ in 0..20 {
        recv(&mut ws).await;
    }
    send(
        &mut ws,
        r#"{"id":2,"method":"query","params":{"path":"pong"}}"#,
    )
    .await;
    // One deadline over the whole wait: events keep coming meanwhile.
    let frames = deadline(recv_until(&mut ws, |f| f["id"] == 2)).await;
    assert_eq!(frames.last().expect("frame")["result"]["data"], "pong");
    send(&mut ws, r#"{"id":1,"method":"subscription.stop"}"#).await;
    deadline(recv_until(&mut ws, stopped(json!(1)))).await;
    drop(ws);
    let _ = stop.send(());
    deadline(task).await.expect("join").expect("server");
}

/// Frames that arrive in one read are all answered: the connection reads its socket again
/// after a frame without waiting to be told it is readable (the rest are already buffered).
#[tokio::test]
async fn frames_that_arrive_together_are_all_answered() {
    let router: oxrpc::Router<()> = oxrpc::Router::new().add(pong::procedure());
    let server = Running::serve(Server::new(router)).await;
    let mut ws = connect_to(server.addr).await;
    for id in 1..=5 {
        let query = format!(r#"{{"id":{id},"method":"query","params":{{"path":"pong"}}}}"#);
        deadline(ws.feed(Message::Text(query.into())))
            .await
            .expect("feed");
    }
    deadline(ws.flush()).await.expect("flush");
    let mut ids: Vec<i64> = Vec::new();
    for _ in 1..=5 {
        let frame = recv(&mut ws).await;
        assert_eq!(frame["result"]["data"], "pong", "{frame}");
        ids.push(frame["id"].as_i64().expect("id"));
    }
    ids.sort_unstable();
    assert_eq!(ids, [1, 2, 3, 4, 5]);
    drop(ws);
    server.shutdown().await;
}

#[tokio::test]
async fn connections_beyond_the_limit_are_refused_before_the_upgrade() {
    let server = Running::start(|s| s.ws_max_connections(2)).await;
    let first = connect(&server, "", &[]).await;
    let _second = connect(&server, "", &[]).await;
    let third = deadline(tokio_tungstenite::connect_async(format!(
        "ws://{}/trpc",
        server.addr
    )))
    .await;
    match third {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("expected a 503, got {:?}", other.map(|_| ())),
    }
    // A slot frees up when a connection closes.
    drop(first);
    let mut again = None;
    for _ in 0..100 {
        if let Ok(Ok((socket, _))) = tokio::time::timeout(
            Duration::from_secs(1),
            tokio_tungstenite::connect_async(format!("ws://{}/trpc", server.addr)),
        )
        .await
        {
            again = Some(socket);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut again = again.expect("a freed slot");
    send(
        &mut again,
        r#"{"id":1,"method":"query","params":{"path":"hello"}}"#,
    )
    .await;
    assert_eq!(recv(&mut again).await["result"]["data"], "hello world");
    server.shutdown().await;
}
