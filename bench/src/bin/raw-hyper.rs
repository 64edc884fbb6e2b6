//! The bench contract's `greet` query and `add` mutation served by hyper alone, doing the
//! request work a tRPC server must do and nothing more: route by path, percent-decode the
//! `input` parameter, parse the JSON input (one, or a batch object of them by index), compute,
//! write the tRPC result envelope. No validation, middleware, context or error shapes beyond a
//! 400/404: the ceiling oxrpc's per-request cost is measured against.
//!
//! Run with: `cargo run --release -p oxrpc-bench --bin raw-hyper -- --port 0` (prints
//! `listening on http://127.0.0.1:PORT`; serves under `/trpc/`; stops on SIGINT).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Deserialize)]
struct AddInput {
    a: f64,
    b: f64,
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'%'));
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn greet(input: &str, out: &mut String) -> bool {
    match serde_json::from_str::<String>(input) {
        Ok(name) => {
            out.push_str(r#"{"result":{"data":{"greeting":"#);
            let greeting = format!("hello {name}");
            out.push_str(&serde_json::to_string(&greeting).unwrap_or_default());
            out.push_str("}}}");
            true
        }
        Err(_) => false,
    }
}

fn add(input: &str, out: &mut String) -> bool {
    match serde_json::from_str::<AddInput>(input) {
        Ok(AddInput { a, b }) => {
            let sum = a + b;
            out.push_str(r#"{"result":{"data":"#);
            if sum.fract() == 0.0 && sum.abs() < 9.0e15 {
                #[allow(clippy::cast_possible_truncation)]
                out.push_str(&(sum as i64).to_string());
            } else {
                out.push_str(&serde_json::to_string(&sum).unwrap_or_default());
            }
            out.push_str("}}");
            true
        }
        Err(_) => false,
    }
}

fn respond(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let bad = || {
        respond(
            StatusCode::BAD_REQUEST,
            r#"{"error":"bad request"}"#.to_owned(),
        )
    };
    let Some(paths) = req.uri().path().strip_prefix("/trpc/").map(str::to_owned) else {
        return Ok(respond(
            StatusCode::NOT_FOUND,
            r#"{"error":"not found"}"#.to_owned(),
        ));
    };
    let mut batch = false;
    let mut input = None;
    for pair in req.uri().query().unwrap_or("").split('&') {
        match pair.split_once('=') {
            Some(("batch", v)) => batch = v == "1",
            Some(("input", v)) if input.is_none() => input = Some(decode(v)),
            _ => {}
        }
    }
    let method = req.method().clone();
    let input = if method == Method::POST {
        match req.into_body().collect().await {
            Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
            Err(_) => return Ok(bad()),
        }
    } else {
        input.unwrap_or_default()
    };
    let handler = |path: &str| match (path, &method) {
        ("greet", &Method::GET) => Some(greet as fn(&str, &mut String) -> bool),
        ("add", &Method::POST) => Some(add as fn(&str, &mut String) -> bool),
        _ => None,
    };
    let mut out = String::with_capacity(256);
    if batch {
        let Ok(inputs) = serde_json::from_str::<std::collections::HashMap<&str, &RawValue>>(&input)
        else {
            return Ok(bad());
        };
        out.push('[');
        for (i, path) in paths.split(',').enumerate() {
            if i > 0 {
                out.push(',');
            }
            let Some(h) = handler(path) else {
                return Ok(bad());
            };
            let key = i.to_string();
            let Some(raw) = inputs.get(key.as_str()) else {
                return Ok(bad());
            };
            if !h(raw.get(), &mut out) {
                return Ok(bad());
            }
        }
        out.push(']');
    } else {
        let Some(h) = handler(&paths) else {
            return Ok(bad());
        };
        if !h(&input, &mut out) {
            return Ok(bad());
        }
    }
    Ok(respond(StatusCode::OK, out))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let listener = oxrpc_bench::listen().await?;
    let serve = async {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                let _ = builder
                    .serve_connection(TokioIo::new(stream), hyper::service::service_fn(handle))
                    .await;
            });
        }
    };
    tokio::select! {
        () = serve => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    Ok(())
}
