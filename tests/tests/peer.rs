//! `RequestInfo::peer_addr`: the standalone server tells the context who is calling, over
//! HTTP (a query and a mutation), SSE and WebSocket.

mod support;

use std::net::SocketAddr;

use futures_util::{SinkExt, StreamExt};
use oxrpc::{Error, RequestInfo, Router, Server, procedure};
use serde_json::Value;
use support::{deadline, raw_exchange};
use tokio_tungstenite::tungstenite::Message;

#[derive(Clone)]
struct Ctx {
    peer: Option<SocketAddr>,
}

/// The caller's address as the context saw it (`none` without one).
fn seen(ctx: &Ctx) -> String {
    ctx.peer
        .map_or_else(|| "none".to_owned(), |p| p.to_string())
}

/// The caller's address.
#[procedure(query)]
async fn peer(ctx: &Ctx) -> Result<String, Error> {
    Ok(seen(ctx))
}

/// The same, from a mutation.
#[procedure(mutation)]
async fn peer_again(ctx: &Ctx) -> Result<String, Error> {
    Ok(seen(ctx))
}

/// The same, as the only event of a subscription.
#[procedure(subscription)]
async fn peer_events(
    ctx: &Ctx,
) -> Result<impl futures_util::Stream<Item = Result<String, Error>> + use<>, Error> {
    Ok(futures_util::stream::iter([Ok(seen(ctx))]))
}

/// A client address on loopback with a real (ephemeral) port, not the server's.
fn assert_client(seen: &str, server: SocketAddr, transport: &str) {
    let addr: SocketAddr = seen
        .parse()
        .unwrap_or_else(|_| panic!("{transport}: no peer address, got {seen:?}"));
    assert!(addr.ip().is_loopback(), "{transport}: {addr}");
    assert_ne!(addr.port(), 0, "{transport}: {addr}");
    assert_ne!(addr.port(), server.port(), "{transport}: {addr}");
}

/// The string result of a raw HTTP response.
fn result_data(response: &str) -> String {
    let body = response.split("\r\n\r\n").nth(1).expect("body");
    let body: Value = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {response}"));
    body["result"]["data"].as_str().expect("string").to_owned()
}

/// The first string event of an SSE response (after the `connected` event's object).
fn first_sse_string(response: &str) -> String {
    response
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .find_map(|data| serde_json::from_str::<String>(data).ok())
        .unwrap_or_else(|| panic!("no string event in {response}"))
}

#[tokio::test]
async fn the_context_sees_the_callers_address_on_every_transport() {
    let router = Router::new()
        .add(peer::procedure())
        .add(peer_again::procedure())
        .add(peer_events::procedure());
    let server = Server::with_context(router, |info: RequestInfo| async move {
        Ok::<_, Error>(Ctx {
            peer: info.peer_addr(),
        })
    });
    let listening = deadline(server.bind("127.0.0.1:0")).await.expect("bind");
    let addr = listening.local_addr();
    let task = tokio::spawn(listening.run());

    let calls: [(&str, &[u8]); 2] = [
        (
            "GET",
            b"GET /trpc/peer HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        ),
        (
            "POST",
            b"POST /trpc/peerAgain HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: 0\r\n\r\n",
        ),
    ];
    for (transport, request) in calls {
        let response = raw_exchange(addr, request).await;
        assert_client(&result_data(&response), addr, transport);
    }

    let sse = raw_exchange(
        addr,
        b"GET /trpc/peerEvents HTTP/1.1\r\nhost: x\r\nconnection: close\r\naccept: text/event-stream\r\n\r\n",
    )
    .await;
    assert_client(&first_sse_string(&sse), addr, "SSE");

    let (mut socket, _) = deadline(tokio_tungstenite::connect_async(format!(
        "ws://{addr}/trpc"
    )))
    .await
    .expect("connect");
    let call = r#"{"id":1,"method":"query","params":{"path":"peer"}}"#;
    deadline(socket.send(Message::text(call)))
        .await
        .expect("send");
    let reply = loop {
        let message = deadline(socket.next())
            .await
            .expect("open")
            .expect("message");
        if let Message::Text(text) = message {
            break serde_json::from_str::<Value>(&text).expect("JSON");
        }
    };
    assert_client(
        reply["result"]["data"].as_str().expect("string"),
        addr,
        "WebSocket",
    );
    task.abort();
}
