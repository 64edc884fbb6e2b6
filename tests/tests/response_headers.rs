//! Response headers set by procedures (`RequestInfo::response_headers`): a sign-in mutation
//! setting a cookie, over a single call and a batch; the protocol's own headers stay.

mod support;

use oxrpc::{Error, RequestInfo, ResponseHeaders, Router, Server, procedure};
use support::{deadline, raw_exchange};

#[derive(Clone)]
struct Ctx {
    headers: ResponseHeaders,
}

/// Sets a session cookie, and tries to change the content type.
#[procedure(mutation)]
async fn sign_in(ctx: &Ctx, name: String) -> Result<String, Error> {
    ctx.headers
        .append("set-cookie", &format!("session={name}; HttpOnly; Path=/"))?;
    ctx.headers.append("content-type", "text/plain")?;
    Ok(name)
}

/// Sets another cookie.
#[procedure(mutation)]
async fn remember(ctx: &Ctx) -> Result<(), Error> {
    ctx.headers.append("set-cookie", "theme=dark; Path=/")?;
    // Not a valid header value: an error for this call, nothing sent.
    ctx.headers.append("x-bad", "line\nbreak")
}

#[tokio::test]
async fn procedures_set_response_headers_without_touching_the_protocols_own() {
    let router = Router::new()
        .add(sign_in::procedure())
        .add(remember::procedure());
    let server = Server::with_context(router, |info: RequestInfo| async move {
        Ok::<_, Error>(Ctx {
            headers: info.response_headers(),
        })
    });
    let listening = deadline(server.bind("127.0.0.1:0")).await.expect("bind");
    let addr = listening.local_addr();
    let task = tokio::spawn(listening.run());

    let single = raw_exchange(
        addr,
        b"POST /trpc/signIn HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: 7\r\n\r\n\"alice\"",
    )
    .await;
    let lower = single.to_ascii_lowercase();
    assert!(
        lower.contains("set-cookie: session=alice; httponly; path=/"),
        "{single}"
    );
    assert!(lower.contains("content-type: application/json"), "{single}");
    assert!(!lower.contains("text/plain"), "{single}");

    let batch = raw_exchange(
        addr,
        b"POST /trpc/signIn,remember?batch=1 HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"0\":\"bob\"}",
    )
    .await;
    let lower = batch.to_ascii_lowercase();
    assert!(lower.contains("set-cookie: session=bob"), "{batch}");
    assert!(lower.contains("set-cookie: theme=dark"), "{batch}");
    assert!(!lower.contains("x-bad"), "{batch}");
    assert!(batch.contains("INTERNAL_SERVER_ERROR"), "{batch}");
    task.abort();
}
