//! The parity suite: one table of calls, each sent three ways — plain HTTP over a real
//! socket, raw WebSocket frames over a real socket, and the server-side caller
//! (`Router::call`) — and each answered the same way: the same result data, or the same tRPC
//! code (`error.data.code`), JSON-RPC number (`error.code`), message and `error.data.issues`.
//!
//! Where tRPC words a message differently per transport, the row holds each wording. Where a
//! row cannot apply to a transport, its cell says so and why (`Cell::NotApplicable`); those
//! cells are printed, never skipped silently. Beside the table: HTTP statuses follow the
//! codes, `error.data.path` names the row's path (always over HTTP, whenever present over
//! WebSocket), and no reply leaks panic text. Every mismatch is collected, so one run reports
//! them all. Every await has a deadline.

mod support;

use support::{Running, deadline};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use oxrpc::{ErrorCode, Router};
use oxrpc_tests::Ctx;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::Kind::{Mutation, Query};

/// How HTTP (GET or POST) and WebSocket (`method`) send a row. The caller has no kind:
/// `Router::call` runs whatever the path names.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Query,
    Mutation,
}

/// A row's input.
enum Input {
    /// None at all: no `?input=`, an empty body, no `params.input`.
    Absent,
    Json(Value),
    /// Text that is not JSON (only HTTP can carry it as an input).
    Text(&'static str),
}

/// What a transport answered, normalized.
#[derive(Debug, Clone, Default, PartialEq)]
struct Outcome {
    ok: Option<Value>,
    code: Option<String>,
    json_rpc: Option<i64>,
    message: Option<String>,
    issues: Option<Value>,
}

impl Outcome {
    fn data(data: Value) -> Self {
        Outcome {
            ok: Some(data),
            ..Outcome::default()
        }
    }

    fn error(code: ErrorCode, message: impl Into<String>, issues: Option<Value>) -> Self {
        Outcome {
            ok: None,
            code: Some(code.as_str().to_owned()),
            json_rpc: Some(i64::from(code.json_rpc_code())),
            message: Some(message.into()),
            issues,
        }
    }
}

/// One transport's column of a row.
#[derive(Debug, Clone)]
enum Cell {
    Expect(Outcome),
    /// The row cannot be sent over this transport, and why.
    NotApplicable(&'static str),
}

fn data(data: Value) -> Cell {
    Cell::Expect(Outcome::data(data))
}

fn fail(code: ErrorCode, message: impl Into<String>) -> Cell {
    Cell::Expect(Outcome::error(code, message, None))
}

/// BAD_REQUEST from input validation, with `error.data.issues`.
fn invalid(message: &str, issues: Value) -> Cell {
    Cell::Expect(Outcome::error(ErrorCode::BadRequest, message, Some(issues)))
}

fn na(why: &'static str) -> Cell {
    Cell::NotApplicable(why)
}

/// What is sent: the same over every transport.
struct Call {
    name: &'static str,
    kind: Kind,
    path: &'static str,
    input: Input,
    /// HTTP request headers and WebSocket upgrade headers; the caller's context gets the
    /// `authorization` one, as `oxrpc_tests::create_context` would.
    headers: &'static [(&'static str, &'static str)],
}

/// One row of the table: a call and a cell per transport (in `Transport::ALL` order).
struct Row {
    call: Call,
    cells: [Cell; 3],
}

fn call(name: &'static str, kind: Kind, path: &'static str, input: Input) -> Call {
    Call {
        name,
        kind,
        path,
        input,
        headers: &[],
    }
}

impl Call {
    fn headers(self, headers: &'static [(&'static str, &'static str)]) -> Call {
        Call { headers, ..self }
    }

    /// The same answer everywhere.
    fn all(self, cell: Cell) -> Row {
        self.each(cell.clone(), cell.clone(), cell)
    }

    fn each(self, http: Cell, ws: Cell, caller: Cell) -> Row {
        Row {
            call: self,
            cells: [http, ws, caller],
        }
    }
}

const MISSING_INPUT: &str =
    "Missing input: this procedure expects `GreetInput`, but the request carried no input";
const TOO_DEEP: &str =
    "Input is nested too deeply: at most 128 levels of arrays and objects are accepted";
const NOT_JSON: &str = "{notjson";

fn rows() -> Vec<Row> {
    use ErrorCode::{
        BadRequest, Forbidden, InternalServerError, MethodNotSupported, NotFound, NotImplemented,
        ParseError, Unauthorized,
    };
    let ada = || Input::Json(json!({"name": "ada"}));
    let greeting = json!({"text": "hi ada", "times": 1});
    let mut too_old = json!({
        "name": "ada", "email": "ada@example.com", "age": 36, "handle": "ada1",
        "tags": ["rust"], "address": {"city": "London", "zip": "12345"},
        "contact": {"kind": "email", "address": "ada@example.com"},
        "scores": {"math": 99}, "terms": "I agree"
    });
    too_old["age"] = json!(200);
    // 200 levels: past the server's 128, and past serde_json's own recursion limit.
    let too_deep = (0..200).fold(json!(0), |inner, _| Value::Array(vec![inner]));
    // The server's message embeds serde_json's own error for the same text.
    let not_json = serde_json::from_str::<Value>(NOT_JSON).expect_err("not JSON on purpose");
    let unknown = r#"No procedure found on path "doesNotExist""#;
    vec![
        call("query", Query, "greet", ada()).all(data(greeting.clone())),
        call("query without input", Query, "hello", Input::Absent).all(data(json!("hello world"))),
        call(
            "mutation",
            Mutation,
            "echoMut",
            Input::Json(json!({"a": [1, "two"]})),
        )
        .all(data(json!({"input": {"a": [1, "two"]}}))),
        call(
            "middleware admits a signed-in caller",
            Query,
            "private.me",
            Input::Absent,
        )
        .headers(&[("authorization", "ABC")])
        .all(data(json!({"user": "abc", "role": "member"}))),
        call("missing input", Query, "greet", Input::Absent).each(
            fail(BadRequest, MISSING_INPUT),
            fail(BadRequest, MISSING_INPUT),
            na("`Router::call` always sends an input: `&()` is `null`, validated, not missing"),
        ),
        call("unknown path", Query, "doesNotExist", Input::Absent).each(
            fail(NotFound, unknown),
            fail(NotFound, r#"No "query"-procedure on path "doesNotExist""#),
            fail(NotFound, unknown),
        ),
        call("query sent as a mutation", Mutation, "greet", ada()).each(
            fail(
                MethodNotSupported,
                r#"Unsupported POST-request to query procedure at path "greet""#,
            ),
            fail(NotFound, r#"No "mutation"-procedure on path "greet""#),
            // `Router::call` takes no kind: it runs the query.
            data(greeting),
        ),
        call("mutation sent as a query", Query, "echoMut", Input::Absent).each(
            fail(
                MethodNotSupported,
                r#"Unsupported GET-request to mutation procedure at path "echoMut""#,
            ),
            fail(NotFound, r#"No "query"-procedure on path "echoMut""#),
            // It runs the mutation with `null`, which `Option<Value>` reads as no input.
            data(json!({})),
        ),
        call(
            "subscription asked as a query",
            Query,
            "onPlain",
            Input::Absent,
        )
        .each(
            Cell::NotApplicable("a GET to a subscription is served as SSE (tests/tests/sse.rs)"),
            fail(NotFound, r#"No "query"-procedure on path "onPlain""#),
            fail(
                BadRequest,
                "`onPlain` is a subscription: use `Router::subscribe`",
            ),
        ),
        call(
            "subscription sent as a mutation",
            Mutation,
            "onPlain",
            Input::Absent,
        )
        .each(
            fail(
                MethodNotSupported,
                r#"Unsupported POST-request to subscription procedure at path "onPlain""#,
            ),
            fail(NotFound, r#"No "mutation"-procedure on path "onPlain""#),
            fail(
                BadRequest,
                "`onPlain` is a subscription: use `Router::subscribe`",
            ),
        ),
        call(
            "input of the wrong type",
            Query,
            "greet",
            Input::Json(json!({"name": 5})),
        )
        .all(invalid(
            "Invalid input: name: Expected a string, received an integer",
            json!([{"path": ["name"], "code": "invalid_type",
                        "message": "Expected a string, received an integer"}]),
        )),
        call(
            "input failing validation",
            Mutation,
            "validated.signup",
            Input::Json(too_old),
        )
        .all(invalid(
            "Invalid input: age: Expected a number ≤ 130, received 200",
            json!([{"path": ["age"], "code": "too_big",
                        "message": "Expected a number ≤ 130, received 200"}]),
        )),
        call(
            "input that is not JSON",
            Query,
            "greet",
            Input::Text(NOT_JSON),
        )
        .each(
            fail(ParseError, format!("Input is not valid JSON: {not_json}")),
            na("the input travels inside the JSON frame: text that is not JSON breaks the frame"),
            na("`Router::call` serializes a Rust value, which is always JSON"),
        ),
        call(
            "input nested too deeply",
            Mutation,
            "echoMut",
            Input::Json(too_deep),
        )
        .all(fail(BadRequest, TOO_DEEP)),
        call("middleware refuses", Mutation, "secret", Input::Absent)
            .all(fail(Unauthorized, "sign in with the Authorization header")),
        call("handler panics", Query, "boom", Input::Absent)
            .all(fail(InternalServerError, "Internal server error")),
        call("handler fails", Query, "notFound", Input::Absent)
            .all(fail(NotFound, "thing not found")),
        call("5xx sharing -32603", Query, "notImpl", Input::Absent)
            .all(fail(NotImplemented, "nope")),
        call("create-context refuses", Query, "hello", Input::Absent)
            .headers(&[("x-fail-context", "1")])
            .each(
                fail(Forbidden, "context refused by x-fail-context"),
                fail(Forbidden, "context refused by x-fail-context"),
                na("the caller takes a ready context: create-context never runs"),
            ),
    ]
}

#[derive(Debug, Clone, Copy)]
enum Transport {
    Http,
    Ws,
    Caller,
}

impl Transport {
    const ALL: [Transport; 3] = [Transport::Http, Transport::Ws, Transport::Caller];
}

/// An outcome and what is checked beside it.
struct Reply {
    outcome: Outcome,
    /// `error.data.path`.
    path: Option<String>,
    /// HTTP only.
    status: Option<u16>,
    /// All the client saw, for the leak check.
    text: String,
}

/// Normalizes a tRPC envelope (an HTTP body or a WebSocket frame).
fn from_wire(envelope: &Value, text: String, status: Option<u16>) -> Reply {
    let error = envelope.get("error");
    let outcome = match error {
        None => Outcome::data(envelope["result"]["data"].clone()),
        Some(error) => Outcome {
            ok: None,
            code: error["data"]["code"].as_str().map(str::to_owned),
            json_rpc: error["code"].as_i64(),
            message: error["message"].as_str().map(str::to_owned),
            issues: error["data"].get("issues").cloned(),
        },
    };
    let path = error
        .and_then(|e| e["data"]["path"].as_str())
        .map(str::to_owned);
    Reply {
        outcome,
        path,
        status,
        text,
    }
}

/// Percent-encodes every byte (always valid in a query string).
fn percent_encode(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// A single (non-batch) call: GET `?input=` for queries, a JSON POST body for mutations.
async fn over_http(server: &Running, call: &Call) -> Reply {
    let input = match &call.input {
        Input::Absent => String::new(),
        Input::Json(value) => value.to_string(),
        Input::Text(text) => (*text).to_owned(),
    };
    let url = format!("{}/{}", server.base, call.path);
    let (mut req, body) = match call.kind {
        Query if input.is_empty() => (Request::get(url), Bytes::new()),
        Query => (
            Request::get(format!("{url}?input={}", percent_encode(&input))),
            Bytes::new(),
        ),
        Mutation => (
            Request::post(url).header("content-type", "application/json"),
            Bytes::from(input),
        ),
    };
    for (name, value) in call.headers {
        req = req.header(*name, *value);
    }
    let req = req.body(Full::new(body)).expect("request");
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let res = deadline(client.request(req)).await.expect("HTTP request");
    let status = res.status().as_u16();
    let body = deadline(res.into_body().collect()).await.expect("body");
    let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
    let envelope: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("`{}` over HTTP: not JSON ({e}): {text}", call.name));
    from_wire(&envelope, text, Some(status))
}

/// One frame on a fresh connection (each call has its own upgrade headers). The reply is the
/// frame with the same id, or an id-less error: a frame the server could not read, or a
/// refused context.
async fn over_ws(server: &Running, id: usize, call: &Call) -> Reply {
    let mut req = format!("ws://{}/trpc", server.addr)
        .into_client_request()
        .expect("WebSocket request");
    for (name, value) in call.headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).expect("header name");
        req.headers_mut()
            .insert(name, value.parse().expect("header value"));
    }
    let (mut socket, _) = deadline(tokio_tungstenite::connect_async(req))
        .await
        .expect("WebSocket connect");
    let mut params = json!({"path": call.path});
    match &call.input {
        Input::Absent => {}
        Input::Json(value) => params["input"] = value.clone(),
        Input::Text(_) => panic!(
            "`{}`: text that is not JSON cannot go in a frame",
            call.name
        ),
    }
    let method = match call.kind {
        Query => "query",
        Mutation => "mutation",
    };
    let frame = json!({"id": id, "method": method, "params": params}).to_string();
    // A refused context closes the socket at once; its error may already be waiting.
    let _ = deadline(socket.send(Message::Text(frame.into()))).await;
    loop {
        let text = match deadline(socket.next()).await {
            Some(Ok(Message::Text(text))) => text.to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("`{}` over WebSocket: no reply before {other:?}", call.name),
        };
        let Ok(envelope) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        let id_less_error = envelope["id"].is_null() && envelope.get("error").is_some();
        if envelope["id"] == json!(id) || id_less_error {
            return from_wire(&envelope, text, None);
        }
    }
}

/// `Router::call`, with the context the call's headers would give.
async fn over_caller(router: &Router<Ctx>, call: &Call) -> Reply {
    let authorization = call
        .headers
        .iter()
        .find(|(name, _)| *name == "authorization");
    let ctx = Ctx {
        authorization: authorization.map(|(_, value)| (*value).to_owned()),
        connection_params: None,
    };
    let input = match &call.input {
        // What `&()` sends: the caller cannot leave the input out.
        Input::Absent => Value::Null,
        Input::Json(value) => value.clone(),
        Input::Text(_) => panic!(
            "`{}`: the caller cannot send text that is not JSON",
            call.name
        ),
    };
    let (outcome, text) = match deadline(router.call::<_, Value>(ctx, call.path, &input)).await {
        Ok(data) => (Outcome::data(data), String::new()),
        Err(e) => {
            let issues = e.issues().map(|i| serde_json::to_value(i).expect("issues"));
            (
                Outcome::error(e.code(), e.message(), issues),
                e.message().to_owned(),
            )
        }
    };
    Reply {
        outcome,
        path: None,
        status: None,
        text,
    }
}

/// Every way `got` differs from `want`, each naming the call and the transport.
fn check(call: &Call, transport: Transport, want: &Outcome, got: &Reply) -> Vec<String> {
    let at = format!("`{}` over {transport:?}", call.name);
    let mut failures = Vec::new();
    if got.outcome != *want {
        failures.push(format!(
            "{at}:\n    expected {want:?}\n    got      {:?}",
            got.outcome
        ));
    }
    let path_ok = match transport {
        _ if got.outcome.code.is_none() => true,
        Transport::Http => got.path.as_deref() == Some(call.path),
        Transport::Ws => got.path.as_deref().is_none_or(|p| p == call.path),
        Transport::Caller => true,
    };
    if !path_ok {
        failures.push(format!(
            "{at}: error.data.path {:?}, not {:?}",
            got.path, call.path
        ));
    }
    if let Some(status) = got.status {
        let expected = want
            .code
            .as_deref()
            .and_then(ErrorCode::from_key)
            .map_or(200, ErrorCode::http_status);
        if status != expected {
            failures.push(format!("{at}: HTTP status {status}, expected {expected}"));
        }
    }
    if got.text.contains("kaboom") {
        failures.push(format!("{at}: the panic text leaked: {}", got.text));
    }
    failures
}

#[tokio::test]
async fn every_row_gets_the_same_answer_over_every_transport() {
    let server = Running::start(|s| s).await;
    let router = oxrpc_tests::router();
    let mut failures = Vec::new();
    for (id, row) in rows().iter().enumerate() {
        for (transport, cell) in Transport::ALL.into_iter().zip(&row.cells) {
            let want = match cell {
                Cell::Expect(want) => want,
                Cell::NotApplicable(why) => {
                    eprintln!(
                        "`{}` over {transport:?}: not applicable: {why}",
                        row.call.name
                    );
                    continue;
                }
            };
            let got = match transport {
                Transport::Http => over_http(&server, &row.call).await,
                Transport::Ws => over_ws(&server, id, &row.call).await,
                Transport::Caller => over_caller(&router, &row.call).await,
            };
            failures.extend(check(&row.call, transport, want, &got));
        }
    }
    server.shutdown().await;
    assert!(
        failures.is_empty(),
        "{} mismatch(es):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
