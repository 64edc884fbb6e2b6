//! The HTTP transport over real sockets: limits, bad input, shutdown, axum nesting.
//! Every await has a deadline.

mod support;

use support::{Running, deadline};

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use oxrpc::Server;
use serde_json::Value;

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// `error.data.code` of a single error envelope.
    fn error_code(&self) -> String {
        self.json()["error"]["data"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req.body(Full::new(body.into())).expect("request");
    let res = deadline(client.request(req)).await.expect("request failed");
    let (parts, body) = res.into_parts();
    let body = deadline(body.collect()).await.expect("body").to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn get(url: &str) -> Reply {
    send(Method::GET, url, &[], Bytes::new()).await
}

async fn post_json(url: &str, body: impl Into<Bytes>) -> Reply {
    send(
        Method::POST,
        url,
        &[("content-type", "application/json")],
        body,
    )
    .await
}

/// The server still answers.
async fn assert_still_serving(server: &Running) {
    let reply = get(&format!("{}/hello", server.base)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["result"]["data"], "hello world");
}

#[tokio::test]
async fn port_zero_reports_the_real_port_and_serves() {
    let server = Running::start(|s| s).await;
    assert_still_serving(&server).await;
    let reply = get(&format!("{}/hello", server.base)).await;
    assert_eq!(reply.headers["content-type"], "application/json");
    assert_eq!(reply.headers["vary"], "trpc-accept, accept");
    server.shutdown().await;
}

#[tokio::test]
async fn a_body_that_is_not_utf8_is_a_parse_error() {
    let server = Running::start(|s| s).await;
    let body: &[u8] = b"{\"title\":\"\xff\xfe\"}";
    let reply = post_json(&format!("{}/addPost", server.base), body).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    assert_eq!(reply.error_code(), "PARSE_ERROR");
    assert_eq!(
        reply.json()["error"]["message"],
        "The request body is not valid UTF-8"
    );
    assert_still_serving(&server).await;
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_get_payload_too_large() {
    let server = Running::start(|s| s.max_body_size(1024)).await;
    let big = format!("{{\"title\":\"{}\"}}", "x".repeat(4096));
    let reply = post_json(&format!("{}/addPost", server.base), big).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        reply.body
    );
    assert_eq!(reply.error_code(), "PAYLOAD_TOO_LARGE");
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("1024 bytes")
    );

    // Chunked (no content-length): the limit still holds while streaming.
    let chunks = futures_util::stream::iter((0..8).map(|_| {
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![b' '; 512])))
    }));
    let body = http_body_util::StreamBody::new(chunks);
    let client = Client::builder(TokioExecutor::new()).build_http();
    let req = Request::post(format!("{}/addPost", server.base))
        .header("content-type", "application/json")
        .body(body)
        .expect("request");
    let res = deadline(client.request(req)).await.expect("send");
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_still_serving(&server).await;

    // A body within the limit that arrives in several frames is read whole.
    let parts = [r#"{"title":"#, r#""in three "#, r#"parts"}"#];
    let chunks =
        futures_util::stream::iter(parts.map(|part| {
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(part)))
        }));
    let client = Client::builder(TokioExecutor::new()).build_http();
    let req = Request::post(format!("{}/addPost", server.base))
        .header("content-type", "application/json")
        .body(http_body_util::StreamBody::new(chunks))
        .expect("request");
    let res = deadline(client.request(req)).await.expect("send");
    assert_eq!(res.status(), StatusCode::OK);
    let body = deadline(res.into_body().collect()).await.expect("body");
    let json: Value = serde_json::from_slice(&body.to_bytes()).expect("JSON");
    assert_eq!(json["result"]["data"]["title"], "in three parts", "{json}");
    server.shutdown().await;
}

#[tokio::test]
async fn batch_size_is_limited() {
    let server = Running::start(|s| s.max_batch_size(2)).await;
    let reply = get(&format!("{}/hello,hello,hello?batch=1", server.base)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    // A single object, not an array: the client hands it to every call.
    assert_eq!(reply.error_code(), "BAD_REQUEST");
    assert!(
        reply.body.contains("Batch call exceeds maximum size"),
        "{}",
        reply.body
    );
    let ok = get(&format!("{}/hello,hello?batch=1", server.base)).await;
    assert_eq!(ok.status, StatusCode::OK);
    server.shutdown().await;
}

#[tokio::test]
async fn batching_can_be_disabled() {
    let server = Running::start(|s| s.allow_batching(false)).await;
    let reply = get(&format!("{}/hello?batch=1", server.base)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body.contains("Batching is not enabled"),
        "{}",
        reply.body
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bad_inputs_get_clear_errors_and_the_server_keeps_serving() {
    let server = Running::start(|s| s).await;
    let base = &server.base;

    let reply = get(&format!("{base}/greet?input=%7Bnotjson")).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::BAD_REQUEST, "PARSE_ERROR")
    );
    assert_eq!(reply.json()["error"]["code"], -32700);

    let reply = get(&format!("{base}/greet?input=%7B%22name%22%3A5%7D")).await;
    assert_eq!(reply.error_code(), "BAD_REQUEST");
    let data = &reply.json()["error"]["data"];
    assert_eq!(
        data["issues"][0]["path"],
        serde_json::json!(["name"]),
        "{}",
        reply.body
    );
    assert_eq!(data["issues"][0]["code"], "invalid_type");
    assert_eq!(
        data["zodError"]["fieldErrors"]["name"][0],
        "Expected a string, received an integer"
    );

    let reply = get(&format!("{base}/greet")).await;
    assert_eq!(reply.error_code(), "BAD_REQUEST");
    assert!(reply.body.contains("Missing input"), "{}", reply.body);

    let deep = "[".repeat(50_000);
    let reply = post_json(&format!("{base}/echoMut"), deep).await;
    assert_eq!(reply.error_code(), "BAD_REQUEST");
    assert!(reply.body.contains("nested too deeply"), "{}", reply.body);

    let reply = get(&format!("{base}/doesNotExist")).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::NOT_FOUND, "NOT_FOUND")
    );
    assert_eq!(
        reply.json()["error"]["message"],
        "No procedure found on path \"doesNotExist\""
    );

    let reply = get(&format!("{base}/addPost")).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_SUPPORTED")
    );

    let reply = post_json(&format!("{base}/greet"), r#"{"name":"x"}"#).await;
    assert_eq!(reply.error_code(), "METHOD_NOT_SUPPORTED");

    let reply = send(Method::PUT, &format!("{base}/hello"), &[], Bytes::new()).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.headers["allow"], "GET, POST, HEAD");

    let reply = send(
        Method::POST,
        &format!("{base}/addPost"),
        &[("content-type", "text/plain")],
        "x",
    )
    .await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE")
    );
    let reply = send(Method::POST, &format!("{base}/addPost"), &[], "{}").await;
    assert!(
        reply.body.contains("Missing content-type header"),
        "{}",
        reply.body
    );

    let reply = get(&format!("{base}/hello?batch=1&input=%5B1%5D")).await;
    assert!(
        reply.body.contains("needs to be an object"),
        "{}",
        reply.body
    );

    let reply = get(&format!("{base}/hello,addPost?batch=1")).await;
    assert!(
        reply
            .body
            .contains("Cannot mix procedure types in call: query, mutation"),
        "{}",
        reply.body
    );

    let reply = get(&format!(
        "{base}/ctx?connectionParams=%7B%22token%22%3A1%7D"
    ))
    .await;
    assert_eq!(reply.error_code(), "PARSE_ERROR");

    let reply = get(&format!("http://{}/elsewhere", server.addr)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let reply = get(&format!("{base}/boom")).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL_SERVER_ERROR")
    );
    assert!(
        !reply.body.contains("kaboom"),
        "panic text leaked: {}",
        reply.body
    );

    assert_still_serving(&server).await;
    server.shutdown().await;
}

#[tokio::test]
async fn dev_mode_shows_internal_causes() {
    let server = Running::start(|s| s.dev_mode(true)).await;
    let reply = get(&format!("{}/boom", server.base)).await;
    let stack = reply.json()["error"]["data"]["stack"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(stack.contains("kaboom"), "{}", reply.body);
    server.shutdown().await;
}

#[tokio::test]
async fn long_urls_are_accepted() {
    let server = Running::start(|s| s).await;
    let name = "n".repeat(60 * 1024);
    let reply = get(&format!(
        "{}/greet?input=%7B%22name%22%3A%22{name}%22%7D",
        server.base
    ))
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.json()["result"]["data"]["text"]
            .as_str()
            .map(str::len),
        Some(name.len() + 3)
    );
    server.shutdown().await;
}

#[tokio::test]
async fn batches_report_207_for_mixed_outcomes_and_the_shared_status_otherwise() {
    let server = Running::start(|s| s).await;
    let base = &server.base;
    let reply = get(&format!("{base}/hello,notFound?batch=1")).await;
    assert_eq!(reply.status, StatusCode::MULTI_STATUS);
    let reply = get(&format!("{base}/notFound,notFound?batch=1")).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = post_json(
        &format!("{base}/noInputMut,addPost?batch=1"),
        r#"{"1":{"title":"only-second"}}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()[1]["result"]["data"]["title"], "only-second");
    server.shutdown().await;
}

#[tokio::test]
async fn context_errors_fail_every_call_and_headers_reach_the_context() {
    let server = Running::start(|s| s).await;
    let reply = send(
        Method::GET,
        &format!("{}/ctx", server.base),
        &[("authorization", "Bearer t")],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.json()["result"]["data"]["hasAuth"], "Bearer t");
    let reply = send(
        Method::GET,
        &format!("{}/hello,ctx?batch=1", server.base),
        &[("x-fail-context", "1")],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    for item in reply.json().as_array().expect("array") {
        assert_eq!(item["error"]["data"]["code"], "FORBIDDEN");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_in_flight_requests() {
    let server = Running::start(|s| s).await;
    let slow_url = format!("{}/slow?input=400", server.base);
    let in_flight = tokio::spawn(async move { get(&slow_url).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let addr = server.addr;
    server.shutdown().await;
    let reply = deadline(in_flight).await.expect("join");
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.json()["result"]["data"]["waited"], 400);
    // Nothing listens any more.
    assert!(
        deadline(tokio::net::TcpStream::connect(addr))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn nests_under_axum() {
    let trpc = Server::with_context(oxrpc_tests::router(), oxrpc_tests::create_context)
        .endpoint("/")
        .into_service();
    let app = axum::Router::new()
        .route("/health", axum::routing::get(|| async { "fine" }))
        .nest_service("/api/trpc", trpc);
    let listener = deadline(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await
    });
    assert_eq!(get(&format!("http://{addr}/health")).await.body, "fine");
    let reply = get(&format!(
        "http://{addr}/api/trpc/greet?input=%7B%22name%22%3A%22axum%22%7D"
    ))
    .await;
    assert_eq!(reply.json()["result"]["data"]["text"], "hi axum");
    let reply = post_json(
        &format!("http://{addr}/api/trpc/addPost,addPost?batch=1"),
        r#"{"0":{"title":"a"},"1":{"title":""}}"#,
    )
    .await;
    assert_eq!(reply.status, StatusCode::MULTI_STATUS);
    let _ = tx.send(());
    deadline(task).await.expect("join").expect("serve");
}

/// The chunk lines of a streamed batch, by call index (spec §5.5 form B: `[i,0,[[envelope]]]`),
/// after checking the head line (`{"i":[[0],[null,0,i]],…}`).
fn jsonl_items(body: &str, calls: usize) -> Vec<Value> {
    let mut lines = body.lines();
    let head: Value = serde_json::from_str(lines.next().expect("head line")).expect("head JSON");
    for i in 0..calls {
        assert_eq!(
            head[i.to_string()],
            serde_json::json!([[0], [null, 0, i]]),
            "{body}"
        );
    }
    let mut items = vec![Value::Null; calls];
    for line in lines {
        let chunk: Value = serde_json::from_str(line).expect("chunk JSON");
        let index = chunk[0].as_u64().expect("chunk id") as usize;
        assert_eq!(chunk[1], 0, "{line}");
        items[index] = chunk[2][0][0].clone();
    }
    items
}

#[tokio::test]
async fn stream_requests_get_jsonl_lines_as_calls_finish() {
    let server = Running::start(|s| s).await;
    let url = format!("{}/hello,notFound,nope?batch=1", server.base);
    for header in ["trpc-accept", "accept"] {
        let reply = send(
            Method::GET,
            &url,
            &[(header, "application/jsonl")],
            Bytes::new(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.body.ends_with('\n'), "{:?}", reply.body);
        let items = jsonl_items(&reply.body, 3);
        assert_eq!(items[0]["result"]["data"], "hello world");
        assert_eq!(items[1]["error"]["data"]["code"], "NOT_FOUND");
        assert_eq!(items[1]["error"]["data"]["path"], "notFound");
        // An unknown path is in-band too, with status 200 (spec §11.4).
        assert_eq!(items[2]["error"]["data"]["code"], "NOT_FOUND");
    }

    // Out of order: the fast call's line arrives while the slow one is still sleeping.
    let input = percent_encode(r#"{"0":1500}"#);
    let req = Request::builder()
        .uri(format!("{}/slow,hello?batch=1&input={input}", server.base))
        .header("trpc-accept", "application/jsonl")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let started = std::time::Instant::now();
    let res = deadline(client.request(req)).await.expect("request");
    let mut body = res.into_body();
    let mut text = String::new();
    let mut arrivals = Vec::new();
    while let Some(frame) = deadline(body.frame()).await {
        if let Ok(data) = frame.expect("frame").into_data() {
            text.push_str(std::str::from_utf8(&data).expect("utf-8"));
            arrivals.push((text.lines().count(), started.elapsed()));
        }
    }
    let items = jsonl_items(&text, 2);
    assert_eq!(items[0]["result"]["data"]["waited"], 1500);
    assert_eq!(items[1]["result"]["data"], "hello world");
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[1].starts_with("[1,"),
        "the fast call comes first: {text}"
    );
    let at = |line: usize| arrivals.iter().find(|(n, _)| *n >= line).map(|(_, t)| *t);
    let (fast, slow) = (at(2).expect("fast line"), at(3).expect("slow line"));
    assert!(
        slow.saturating_sub(fast) >= Duration::from_millis(1000),
        "the fast line must not wait for the slow call: fast at {fast:?}, slow at {slow:?}"
    );

    // Outputs with parts (spec §5.5 forms C and D): the envelope, `result` and `data` as
    // promise chunks, each part a chunk of its own, settled as it comes.
    let reply = send(
        Method::GET,
        &format!("{}/deferred,iterQuery?batch=1", server.base),
        &[("trpc-accept", "application/jsonl")],
        Bytes::new(),
    )
    .await;
    let chunks: Vec<Value> = reply
        .body
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).expect("chunk"))
        .collect();
    let find = |pred: &dyn Fn(&Value) -> bool| chunks.iter().find(|c| pred(c)).cloned();
    let data = find(&|c| c[2][0][0]["now"] == 1).expect("deferred's data chunk");
    assert_eq!(
        data[2][0][0],
        serde_json::json!({"now": 1, "later": 0, "failing": 0})
    );
    let later_id = data[2][1][2].clone();
    let failing_id = data[2][2][2].clone();
    assert_eq!(
        (data[2][1][0].as_str(), &data[2][1][1]),
        (Some("later"), &Value::from(0))
    );
    let later = find(&|c| c[0] == later_id).expect("later settles");
    assert_eq!(later, serde_json::json!([later_id, 0, [["later-value"]]]));
    let failing = find(&|c| c[0] == failing_id).expect("failing settles");
    assert_eq!(failing[1], 1, "rejected");
    assert_eq!(failing[2]["data"]["code"], "CONFLICT");
    let iterable = find(&|c| c[2][1][0] == "data" && c[2][1][1] == 1).expect("iterable ref");
    let items_id = iterable[2][1][2].clone();
    let items: Vec<&Value> = chunks.iter().filter(|c| c[0] == items_id).collect();
    assert_eq!(
        items,
        [
            &serde_json::json!([items_id, 1, [[1]]]),
            &serde_json::json!([items_id, 1, [[2]]]),
            &serde_json::json!([items_id, 0, [[]]]),
        ]
    );
    // Elsewhere such outputs are refused, as tRPC refuses them.
    let reply = get(&format!("{}/deferred", server.base)).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert!(reply.body.contains("httpBatchStreamLink"), "{}", reply.body);

    // A client that goes away mid-stream harms nothing: the server keeps serving.
    let req = Request::builder()
        .uri(format!(
            "{}/slow,hello?batch=1&input={}",
            server.base,
            percent_encode(r#"{"0":10000}"#)
        ))
        .header("trpc-accept", "application/jsonl")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let res = deadline(client.request(req)).await.expect("request");
    let mut body = res.into_body();
    deadline(body.frame())
        .await
        .expect("head")
        .expect("head frame");
    drop(body);
    drop(client);
    assert_eq!(
        get(&format!("{}/hello", server.base)).await.status,
        StatusCode::OK
    );

    let reply = send(
        Method::GET,
        &format!("{}/hello", server.base),
        &[("trpc-accept", "application/jsonl")],
        Bytes::new(),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body.contains("Streaming requests must be batched"),
        "{}",
        reply.body
    );
    server.shutdown().await;
}

/// Percent-encodes a query parameter value.
fn percent_encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test]
async fn jsonl_ping_writes_spaces_while_a_streamed_batch_is_quiet() {
    let server = Running::start(|s| s.jsonl_ping(Duration::from_millis(30))).await;
    let reply = send(
        Method::GET,
        &format!(
            "{}/slow?batch=1&input={}",
            server.base,
            percent_encode(r#"{"0":300}"#)
        ),
        &[("trpc-accept", "application/jsonl")],
        Bytes::new(),
    )
    .await;
    let mut lines = reply.body.lines();
    let head = lines.next().expect("head");
    assert!(head.starts_with('{'), "{head:?}");
    let chunk = lines.next().expect("the settled line");
    let spaces = chunk.len() - chunk.trim_start().len();
    assert!(spaces >= 3, "pings before the line: {chunk:?}");
    let settled: Value = serde_json::from_str(chunk.trim_start()).expect("JSON after the pings");
    assert_eq!(settled[2][0][0]["result"]["data"]["waited"], 300);
    server.shutdown().await;
}

/// Calls of `hang` not yet dropped.
static HANGING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

struct Hanging;

impl Drop for Hanging {
    fn drop(&mut self) {
        HANGING.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn an_aborted_streamed_batch_cancels_its_running_calls() {
    use std::sync::atomic::Ordering;
    let router = oxrpc::Router::<()>::new()
        .add(oxrpc::Procedure::query("hang", |_: (), (): ()| async {
            HANGING.fetch_add(1, Ordering::SeqCst);
            let _guard = Hanging;
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, oxrpc::Error>(1)
        }))
        .add(oxrpc::Procedure::query("quick", |_: (), (): ()| async {
            Ok::<_, oxrpc::Error>(2)
        }));
    let server = Running::serve(Server::new(router)).await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let req = Request::builder()
        .uri(format!("{}/hang,hang,quick?batch=1", server.base))
        .header("trpc-accept", "application/jsonl")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let res = deadline(client.request(req)).await.expect("request");
    let mut body = res.into_body();
    let mut text = String::new();
    while !text.contains("\n[2,") {
        let frame = deadline(body.frame()).await.expect("frame").expect("frame");
        if let Ok(data) = frame.into_data() {
            text.push_str(std::str::from_utf8(&data).expect("utf-8"));
        }
    }
    assert_eq!(HANGING.load(Ordering::SeqCst), 2, "both slow calls run");
    drop(body);
    drop(client);
    deadline(async {
        while HANGING.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_batch_runs_each_call_up_to_its_first_await_in_order_and_all_together() {
    use std::sync::{Arc, Mutex};
    // `waits` waits for `opens`, a later call of the same batch: the batch finishes only if
    // its calls run together; the log shows the order they ran in (tRPC's: each call up to
    // its first `await`, in the batch's order).
    let log = Arc::new(Mutex::new(Vec::<&'static str>::new()));
    let gate = Arc::new(tokio::sync::Notify::new());
    let note = |log: &Arc<Mutex<Vec<&'static str>>>, line| log.lock().expect("log").push(line);
    let (waits_log, waits_gate) = (Arc::clone(&log), Arc::clone(&gate));
    let (opens_log, opens_gate) = (Arc::clone(&log), Arc::clone(&gate));
    let router = oxrpc::Router::<()>::new()
        .add(oxrpc::Procedure::query("waits", move |_: (), (): ()| {
            let (log, gate) = (Arc::clone(&waits_log), Arc::clone(&waits_gate));
            async move {
                note(&log, "waits: started");
                gate.notified().await;
                note(&log, "waits: done");
                Ok::<_, oxrpc::Error>(1)
            }
        }))
        .add(oxrpc::Procedure::query("opens", move |_: (), (): ()| {
            let (log, gate) = (Arc::clone(&opens_log), Arc::clone(&opens_gate));
            async move {
                note(&log, "opens: started");
                gate.notify_one();
                Ok::<_, oxrpc::Error>(2)
            }
        }));
    let server = Running::serve(Server::new(router)).await;
    let reply = get(&format!("{}/waits,opens?batch=1", server.base)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(
        reply.body,
        r#"[{"result":{"data":1}},{"result":{"data":2}}]"#
    );
    assert_eq!(
        *log.lock().expect("log"),
        ["waits: started", "opens: started", "waits: done"]
    );
    server.shutdown().await;
}

#[tokio::test]
async fn path_separator_allow_header_and_percent_encoding() {
    let server = Running::start(|s| s.path_separator('~')).await;
    let base = &server.base;
    // `nested~deep~q` and the dotted form reach `nested.deep.q`, alone and in a batch.
    for path in ["nested~deep~q", "nested.deep.q"] {
        let reply = get(&format!("{base}/{path}")).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
    }
    let reply = get(&format!("{base}/hello,nested~deep~q?batch=1")).await;
    assert_eq!(
        reply.json()[1]["result"]["data"]["ok"],
        true,
        "{}",
        reply.body
    );

    // 405 names the methods the procedure takes.
    let reply = get(&format!("{base}/echoMut")).await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        reply.headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("POST")
    );
    let reply = post_json(&format!("{base}/hello"), "").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        reply.headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("GET")
    );

    // A badly percent-encoded path is BAD_REQUEST; an empty POST body is `undefined`.
    let reply = get(&format!("{base}/hel%zzlo")).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    let reply = post_json(&format!("{base}/echoMut"), "").await;
    assert_eq!(reply.json()["result"]["data"], serde_json::json!({}));
    server.shutdown().await;
}

/// How many contexts `Server::new` made for the test below.
static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A context made by `Default`, whose second one panics.
#[derive(Clone)]
struct Counted;

impl Default for Counted {
    fn default() -> Self {
        if MADE.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            panic!("the second context");
        }
        Counted
    }
}

/// How many contexts were made so far.
#[oxrpc::procedure(query)]
async fn made() -> usize {
    MADE.load(std::sync::atomic::Ordering::SeqCst)
}

/// `Server::new` makes each request's context with `Default`, without describing the request:
/// one per request still, and a `Default` that panics fails its request like a panicking
/// handler while the server goes on.
#[tokio::test]
async fn a_default_context_is_made_per_request_and_its_panic_is_contained() {
    let server = Server::new(oxrpc::Router::<Counted>::new().add(made::procedure()));
    let listening = deadline(server.bind("127.0.0.1:0")).await.expect("bind");
    let addr = listening.local_addr();
    let task = tokio::spawn(listening.run());
    let request = b"GET /trpc/made HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    let first = support::raw_exchange(addr, request).await;
    assert!(first.ends_with(r#"{"result":{"data":1}}"#), "{first}");
    let second = support::raw_exchange(addr, request).await;
    assert!(second.starts_with("HTTP/1.1 500"), "{second}");
    assert!(second.contains("INTERNAL_SERVER_ERROR"), "{second}");
    assert!(
        !second.contains("the second context"),
        "not leaked: {second}"
    );
    let third = support::raw_exchange(addr, request).await;
    assert!(third.ends_with(r#"{"result":{"data":3}}"#), "{third}");
    task.abort();
}
