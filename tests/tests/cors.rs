//! Serving browser frontends on another origin: the documented recipe (oxrpc nested under
//! axum with `tower-http`'s CORS layer) answers preflights for the headers tRPC's links send,
//! and streaming answers (JSONL, SSE) still stream through it. Every await has a deadline.

mod support;

use support::deadline;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, AUTHORIZATION, CONTENT_TYPE,
    HeaderName, HeaderValue, ORIGIN,
};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use oxrpc::Server;
use tower_http::cors::CorsLayer;

const APP: &str = "http://app.example";

/// The README's recipe.
fn app() -> axum::Router {
    let server = Server::with_context(oxrpc_tests::router(), oxrpc_tests::create_context);
    let cors = CorsLayer::new()
        .allow_origin(HeaderValue::from_static(APP))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([
            CONTENT_TYPE,
            AUTHORIZATION,
            HeaderName::from_static("trpc-accept"),
            HeaderName::from_static("last-event-id"),
        ])
        .allow_credentials(true);
    axum::Router::new()
        .nest_service("/trpc", server.endpoint("/").into_service())
        .layer(cors)
}

async fn serve() -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = deadline(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .await
        .expect("bind");
    let base = format!("http://{}/trpc", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app())
            .with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
    });
    (base, tx)
}

fn request(method: Method, url: &str, headers: &[(HeaderName, &str)]) -> Request<Empty<Bytes>> {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(k, *v);
    }
    req.body(Empty::new()).expect("request")
}

#[tokio::test]
async fn preflights_allow_the_headers_the_links_send_and_streams_still_stream() {
    let (base, stop) = serve().await;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();

    // Preflight of a streamed batch with auth, and of an SSE reconnect.
    let res = deadline(client.request(request(
        Method::OPTIONS,
        &format!("{base}/hello?batch=1"),
        &[
            (ORIGIN, APP),
            (ACCESS_CONTROL_REQUEST_METHOD, "GET"),
            (
                ACCESS_CONTROL_REQUEST_HEADERS,
                "trpc-accept,authorization,content-type,last-event-id",
            ),
        ],
    )))
    .await
    .expect("preflight");
    assert_eq!(res.status(), StatusCode::OK);
    let allowed = res
        .headers()
        .get(ACCESS_CONTROL_ALLOW_HEADERS)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    for header in [
        "trpc-accept",
        "authorization",
        "content-type",
        "last-event-id",
    ] {
        assert!(allowed.contains(header), "{header} not in {allowed}");
    }
    assert_eq!(
        res.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN),
        Some(&HeaderValue::from_static(APP))
    );
    assert_eq!(
        res.headers().get(ACCESS_CONTROL_ALLOW_CREDENTIALS),
        Some(&HeaderValue::from_static("true"))
    );

    // A streamed batch through the layer: the fast line still comes first, long before the
    // slow one.
    let started = Instant::now();
    let res = deadline(client.request(request(
        Method::GET,
        &format!("{base}/slow,hello?batch=1&input=%7B%220%22%3A1000%7D"),
        &[
            (ORIGIN, APP),
            (HeaderName::from_static("trpc-accept"), "application/jsonl"),
        ],
    )))
    .await
    .expect("stream");
    assert_eq!(
        res.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN),
        Some(&HeaderValue::from_static(APP))
    );
    let mut body = res.into_body();
    let mut text = String::new();
    let mut fast_at = None;
    while let Some(frame) = deadline(body.frame()).await {
        if let Ok(data) = frame.expect("frame").into_data() {
            text.push_str(std::str::from_utf8(&data).expect("utf-8"));
            if fast_at.is_none() && text.lines().any(|l| l.starts_with("[1,")) {
                fast_at = Some(started.elapsed());
            }
        }
    }
    let fast_at = fast_at.expect("the fast line");
    assert!(
        started.elapsed().saturating_sub(fast_at) >= Duration::from_millis(700),
        "the fast line was held back: at {fast_at:?} of {:?}\n{text}",
        started.elapsed()
    );

    // An SSE stream through the layer: `connected` arrives before the stream ends.
    let res = deadline(client.request(request(
        Method::GET,
        &format!("{base}/onForever"),
        &[(ORIGIN, APP), (http::header::ACCEPT, "text/event-stream")],
    )))
    .await
    .expect("sse");
    assert_eq!(
        res.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN),
        Some(&HeaderValue::from_static(APP))
    );
    let mut body = res.into_body();
    let first = deadline(body.frame())
        .await
        .expect("a frame")
        .expect("frame");
    let first = first.into_data().expect("data");
    assert!(
        std::str::from_utf8(&first)
            .expect("utf-8")
            .starts_with("event: connected"),
        "{first:?}"
    );
    drop(body);
    let _ = stop.send(());
}
