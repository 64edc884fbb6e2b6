//! Browser-facing defaults: a cookie-authenticated mutation cannot be triggered cross-site
//! (forms and `text/plain` posts are refused before anything runs; a `GET` never reaches a
//! mutation), and the `Origin` allowlist covers every transport. Every await has a deadline.

mod support;

use support::deadline;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use oxrpc::{Error, Procedure, Router, Server};

async fn serve(
    configure: impl FnOnce(Server<()>) -> Server<()>,
) -> (String, Arc<AtomicUsize>, tokio::sync::oneshot::Sender<()>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&runs);
    let router = Router::new()
        .add(Procedure::mutation("transfer", move |(): (), (): ()| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Error>("sent") }
        }))
        .add(Procedure::query("balance", |(): (), (): ()| async {
            Ok::<_, Error>(10)
        }));
    let listening = deadline(configure(Server::new(router)).bind("127.0.0.1:0"))
        .await
        .expect("bind");
    let base = format!("http://{}/trpc", listening.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(listening.run_until(async {
        let _ = rx.await;
    }));
    (base, runs, tx)
}

async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, String) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("request");
    let res = deadline(client.request(req)).await.expect("request");
    let status = res.status();
    let body = deadline(res.into_body().collect())
        .await
        .expect("body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn cross_site_forms_cannot_run_mutations() {
    let (base, runs, stop) = serve(|s| s).await;
    let url = format!("{base}/transfer");
    // What a cross-site <form> or a "simple" fetch can send without a CORS preflight.
    for content_type in [
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/plain",
        "text/plain;charset=UTF-8",
    ] {
        let (status, body) = send(
            Method::POST,
            &url,
            &[
                ("content-type", content_type),
                ("origin", "http://evil.example"),
                ("cookie", "session=1"),
            ],
            "{}",
        )
        .await;
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "{content_type}: {body}"
        );
    }
    // A GET (an <img>, a link) never reaches a mutation.
    let (status, _) = send(Method::GET, &url, &[("cookie", "session=1")], "").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "no cross-site request ran the mutation"
    );
    // Same-origin JSON (which cross-site pages can only send after a CORS preflight) runs it.
    let (status, _) = send(
        Method::POST,
        &url,
        &[("content-type", "application/json")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let _ = stop.send(());
}

#[tokio::test]
async fn the_origin_allowlist_covers_every_transport() {
    let (base, runs, stop) = serve(|s| s.allowed_origins(["http://app.example"])).await;
    let json = ("content-type", "application/json");
    let (status, body) = send(
        Method::POST,
        &format!("{base}/transfer"),
        &[json, ("origin", "http://evil.example")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("not allowed"), "{body}");
    assert_eq!(runs.load(Ordering::SeqCst), 0);
    let (status, _) = send(
        Method::GET,
        &format!("{base}/balance"),
        &[("origin", "null")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = send(
        Method::POST,
        &format!("{base}/transfer"),
        &[json, ("origin", "http://app.example")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Not from a browser: no Origin, accepted.
    let (status, _) = send(Method::GET, &format!("{base}/balance"), &[], "").await;
    assert_eq!(status, StatusCode::OK);
    // The WebSocket upgrade follows the same list.
    let ws_url = base.replacen("http://", "ws://", 1);
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = ws_url.as_str().into_client_request().expect("request");
    req.headers_mut()
        .insert("origin", "http://evil.example".parse().expect("origin"));
    let refused = deadline(tokio_tungstenite::connect_async(req)).await;
    assert!(refused.is_err(), "a cross-site WebSocket was accepted");
    let _ = stop.send(());
}
