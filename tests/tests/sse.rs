//! Subscriptions over Server-Sent Events (spec §6, captures of §11.6) over real sockets on the
//! standalone server, read event by event. Every await has a deadline.

mod support;

use support::{Running, deadline};

use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use oxrpc::Server;
use serde_json::Value;

/// One SSE event: its name (`message` when none), data and `id:` (`Some("")` for an empty
/// `id:` line).
#[derive(Debug, Clone, PartialEq)]
struct Event {
    name: String,
    data: String,
    id: Option<String>,
}

impl Event {
    fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// An open event stream, parsed as it arrives.
struct Stream {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Incoming,
    buffer: String,
}

impl Stream {
    /// The next event, or `None` when the body ended.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if block.trim().is_empty() {
                    continue;
                }
                let mut event = Event {
                    name: "message".into(),
                    data: String::new(),
                    id: None,
                };
                for line in block.lines() {
                    let (field, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    match field {
                        "event" => event.name = value.to_owned(),
                        "data" => event.data.push_str(value),
                        "id" => event.id = Some(value.to_owned()),
                        _ => {}
                    }
                }
                return Some(event);
            }
            match deadline(self.body.frame()).await {
                None => return None,
                Some(frame) => {
                    if let Ok(data) = frame.expect("frame").into_data() {
                        self.buffer
                            .push_str(std::str::from_utf8(&data).expect("utf-8"));
                    }
                }
            }
        }
    }

    /// Every remaining event, until the body ends.
    async fn rest(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(event) = self.next().await {
            events.push(event);
        }
        events
    }
}

async fn open(url: &str, headers: &[(&str, &str)]) -> Stream {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let mut req = Request::builder()
        .uri(url)
        .header("accept", "text/event-stream");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = deadline(client.request(req.body(Empty::new()).expect("request")))
        .await
        .expect("request failed");
    let (parts, body) = res.into_parts();
    Stream {
        status: parts.status,
        headers: parts.headers,
        body,
        buffer: String::new(),
    }
}

fn enc(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

fn data_of(events: &[Event]) -> Vec<(String, Option<String>)> {
    events
        .iter()
        .map(|e| (e.name.clone(), e.id.clone()))
        .collect()
}

#[tokio::test]
async fn tracked_events_resume_and_end_with_return() {
    let server = Running::start(|s| s).await;
    let mut stream = open(
        &format!("{}/onCount?input={}", server.base, enc(r#"{"from":5}"#)),
        &[],
    )
    .await;
    assert_eq!(stream.status, StatusCode::OK);
    let header = |name: &str| {
        stream
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("content-type").as_deref(), Some("text/event-stream"));
    assert_eq!(
        header("cache-control").as_deref(),
        Some("no-cache, no-transform")
    );
    assert_eq!(header("x-accel-buffering").as_deref(), Some("no"));
    let events = stream.rest().await;
    assert_eq!(events[0].name, "connected");
    assert_eq!(events[0].json(), serde_json::json!({}));
    let values: Vec<(Value, Option<String>)> = events[1..4]
        .iter()
        .map(|e| (e.json()["n"].clone(), e.id.clone()))
        .collect();
    assert_eq!(
        values,
        [5, 6, 7].map(|n| (Value::from(n), Some(n.to_string())))
    );
    assert_eq!(events[4].name, "return");
    assert_eq!(events.len(), 5);

    // The three ways a client says where it was: header first, then the two query forms.
    for (query, headers) in [
        (String::new(), vec![("last-event-id", "6")]),
        ("&lastEventId=6".to_owned(), vec![]),
        ("&Last-Event-Id=6".to_owned(), vec![]),
        ("&lastEventId=1".to_owned(), vec![("last-event-id", "6")]),
    ] {
        let url = format!(
            "{}/onCount?input={}{query}",
            server.base,
            enc(r#"{"from":5}"#)
        );
        let events = open(&url, &headers).await.rest().await;
        let ids: Vec<_> = events.iter().filter_map(|e| e.id.clone()).collect();
        assert_eq!(ids, ["7", "8", "9"], "{query} {headers:?}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn untracked_values_after_a_known_id_restore_it() {
    let server = Running::start(|s| s).await;
    let events = open(
        &format!("{}/onPlain", server.base),
        &[("last-event-id", "42")],
    )
    .await
    .rest()
    .await;
    assert_eq!(
        data_of(&events),
        [
            ("connected".to_owned(), None),
            ("message".to_owned(), Some(String::new())),
            ("restore-id".to_owned(), Some("42".to_owned())),
            ("message".to_owned(), Some(String::new())),
            ("restore-id".to_owned(), Some("42".to_owned())),
            ("return".to_owned(), None),
        ]
    );
    assert_eq!(events[1].json(), "a");
    // Without a known id, untracked values carry no `id:` at all.
    let events = open(&format!("{}/onPlain", server.base), &[])
        .await
        .rest()
        .await;
    assert!(events.iter().all(|e| e.id.is_none()), "{events:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn errors_on_a_known_path_are_in_band() {
    let server = Running::start(|s| s).await;
    // An error inside the stream: after the values, `serialized-error`, and no `return`.
    let events = open(&format!("{}/onErr", server.base), &[])
        .await
        .rest()
        .await;
    assert_eq!(events[1].json(), "before-error");
    assert_eq!(events[2].name, "serialized-error");
    let shape = events[2].json();
    assert_eq!(shape["data"]["code"], "FORBIDDEN");
    assert_eq!(shape["data"]["path"], "onErr");
    assert_eq!(shape["code"], -32003);
    assert_eq!(events.len(), 3);

    // A stream that panics: an internal error, the cause not leaked.
    let events = open(&format!("{}/onPanic", server.base), &[])
        .await
        .rest()
        .await;
    assert_eq!(events[1].json(), "a");
    assert_eq!(events[2].name, "serialized-error");
    assert_eq!(events[2].json()["data"]["code"], "INTERNAL_SERVER_ERROR");
    assert!(!events[2].data.contains("broke"), "{events:?}");

    // Bad input, a middleware refusal and a refused context: 200, `connected`, the error.
    for (url, headers, code) in [
        (
            format!("{}/onCount?input={}", server.base, enc(r#"{"from":"x"}"#)),
            vec![],
            "BAD_REQUEST",
        ),
        (
            format!("{}/onCount?input=%7Bnope", server.base),
            vec![],
            "PARSE_ERROR",
        ),
        (
            format!("{}/secretTicks", server.base),
            vec![],
            "UNAUTHORIZED",
        ),
        (
            format!("{}/onPlain", server.base),
            vec![("x-fail-context", "1")],
            "FORBIDDEN",
        ),
    ] {
        let mut stream = open(&url, &headers).await;
        assert_eq!(stream.status, StatusCode::OK, "{url}");
        let events = stream.rest().await;
        assert_eq!(data_of(&events)[0].0, "connected", "{url}");
        assert_eq!(events[1].name, "serialized-error", "{url}");
        assert_eq!(events[1].json()["data"]["code"], code, "{url}: {events:?}");
        assert_eq!(events.len(), 2, "{url}");
    }

    // What is not a known subscription gets plain JSON, as tRPC answers it.
    let bad_params = open(
        &format!(
            "{}/onPlain?connectionParams={}",
            server.base,
            enc(r#"{"token":1}"#)
        ),
        &[],
    )
    .await;
    assert_eq!(bad_params.status, StatusCode::BAD_REQUEST);
    let nope = open(&format!("{}/nope", server.base), &[]).await;
    assert_eq!(nope.status, StatusCode::NOT_FOUND);
    let batched = open(
        &format!("{}/onPlain?batch=1&input=%7B%7D", server.base),
        &[],
    )
    .await;
    assert_eq!(batched.status, StatusCode::BAD_REQUEST);
    server.shutdown().await;
}

#[tokio::test]
async fn connection_params_in_the_url_reach_the_context() {
    let server = Running::start(|s| s).await;
    let url = format!(
        "{}/secretTicks?connectionParams={}",
        server.base,
        enc(r#"{"token":"ABC"}"#)
    );
    let events = open(&url, &[]).await.rest().await;
    assert_eq!(events[1].json()["n"], 0, "{events:?}");
    assert_eq!(events.last().map(|e| e.name.as_str()), Some("return"));
    let events = open(
        &format!("{}/secretTicks", server.base),
        &[("authorization", "ABC")],
    )
    .await
    .rest()
    .await;
    assert_eq!(events[1].id.as_deref(), Some("0"), "{events:?}");
    server.shutdown().await;
}

/// `streams.live`: how many `onForever` streams the server still holds.
async fn live_on_forever(server: &Running) -> u64 {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let req = Request::builder()
        .uri(format!("{}/streams.live", server.base))
        .body(Empty::new())
        .expect("request");
    let res = deadline(client.request(req)).await.expect("live");
    let body = deadline(res.into_body().collect())
        .await
        .expect("body")
        .to_bytes();
    let json: Value = serde_json::from_slice(&body).expect("json");
    json["result"]["data"]["onForever"].as_u64().expect("count")
}

#[tokio::test]
async fn a_client_that_goes_away_drops_the_stream_on_the_server() {
    let server = Running::start(|s| s).await;
    let before = live_on_forever(&server).await;
    let mut stream = open(&format!("{}/onForever", server.base), &[]).await;
    assert_eq!(
        stream.next().await.map(|e| e.name),
        Some("connected".into())
    );
    assert_eq!(stream.next().await.map(|e| e.json()), Some(Value::from(0)));
    assert_eq!(live_on_forever(&server).await, before + 1);
    drop(stream);
    deadline(async {
        while live_on_forever(&server).await > before {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn ping_inactivity_max_duration_and_stream_limit() {
    let server = Running::start(|s: Server<oxrpc_tests::Ctx>| {
        s.sse_ping(Duration::from_millis(100))
            .sse_reconnect_after_inactivity(Duration::from_millis(1000))
            .sse_max_duration(Duration::from_millis(700))
            .sse_max_streams(2)
    })
    .await;
    // `idle`: one event, then silence, filled with pings; the stream ends after 700 ms
    // without `return`, so the client reconnects.
    let started = std::time::Instant::now();
    let mut stream = open(&format!("{}/idle", server.base), &[]).await;
    let first = stream.next().await.expect("connected");
    assert_eq!(
        first.json(),
        serde_json::json!({"reconnectAfterInactivityMs": 1000})
    );
    let rest = stream.rest().await;
    let elapsed = started.elapsed();
    assert_eq!(rest[0].id.as_deref(), Some("0"));
    let pings = rest.iter().filter(|e| e.name == "ping").count();
    assert!(pings >= 3, "pings during the silence: {rest:?}");
    assert!(rest.iter().all(|e| e.name != "return"), "{rest:?}");
    assert!(
        elapsed >= Duration::from_millis(650),
        "ended after {elapsed:?}"
    );

    // Two streams at most.
    let _a = open(&format!("{}/onForever", server.base), &[]).await;
    let _b = open(&format!("{}/onForever", server.base), &[]).await;
    let refused = open(&format!("{}/onForever", server.base), &[]).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(server.handle.sse_streams(), 2);
    server.shutdown().await;
}

#[tokio::test]
async fn reconnect_all_and_shutdown_end_streams_so_clients_reconnect() {
    let server = Running::start(|s| s).await;
    let mut stream = open(&format!("{}/onTicks", server.base), &[]).await;
    assert_eq!(
        stream.next().await.map(|e| e.name),
        Some("connected".into())
    );
    assert!(stream.next().await.and_then(|e| e.id).is_some());
    server.handle.reconnect_all();
    let rest = stream.rest().await;
    assert!(rest.iter().all(|e| e.name != "return"), "{rest:?}");

    // Graceful shutdown does not wait on open streams: it ends them.
    let mut stream = open(&format!("{}/onForever", server.base), &[]).await;
    assert_eq!(
        stream.next().await.map(|e| e.name),
        Some("connected".into())
    );
    server.shutdown().await;
    let rest = stream.rest().await;
    assert!(rest.iter().all(|e| e.name != "return"), "{rest:?}");
}
