//! tRPC over HTTP (spec §1–§3): queries, mutations and `?batch=1` batches.

use std::borrow::Cow;
use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Buf;
use bytes::Bytes;
use futures_util::future::join_all;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue, VARY};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::context::RequestInfo;
use crate::error::{Error, ErrorCode};
use crate::input;
use crate::middleware::Reply;
use crate::procedure::{BoxFuture, ProcedureKind};
use crate::router::{kind_accepts, no_procedure};
use crate::server::Shared;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The peer address, put into request extensions by the standalone server.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeerAddr(pub(crate) SocketAddr);

/// The response body of oxrpc's HTTP service.
pub struct Body(http_body_util::combinators::BoxBody<Bytes, BoxError>);

impl Body {
    fn full(bytes: impl Into<Bytes>) -> Self {
        Body(
            Full::new(bytes.into())
                .map_err(|never: Infallible| match never {})
                .boxed(),
        )
    }

    pub(crate) fn empty() -> Self {
        Body::full(Bytes::new())
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body").finish_non_exhaustive()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.0).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0.size_hint()
    }
}

/// The server as a `tower::Service<http::Request<B>>`; cheap to clone.
pub struct HttpService<Ctx> {
    shared: Arc<Shared<Ctx>>,
}

impl<Ctx> Clone for HttpService<Ctx> {
    fn clone(&self) -> Self {
        HttpService {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<Ctx> fmt::Debug for HttpService<Ctx> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpService")
            .field("endpoint", &self.shared.config.endpoint)
            .finish_non_exhaustive()
    }
}

impl<Ctx, B> tower_service::Service<Request<B>> for HttpService<Ctx>
where
    Ctx: Clone + Send + Sync + 'static,
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move { Ok(service.handle(req).await) })
    }
}

/// One call of a request, from routing to its outcome.
struct Call<'a> {
    path: Cow<'a, str>,
    outcome: Option<Result<Reply, Error>>,
}

impl<Ctx> HttpService<Ctx> {
    pub(crate) fn new(shared: Arc<Shared<Ctx>>) -> Self {
        HttpService { shared }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<Ctx>> {
        &self.shared
    }
}

impl<Ctx: Clone + Send + Sync + 'static> HttpService<Ctx> {
    /// Answers one HTTP request. Never fails: every problem becomes a tRPC error response.
    pub(crate) async fn handle<B>(&self, req: Request<B>) -> Response<Body>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let shared = &*self.shared;
        let config = &shared.config;
        if crate::transport::ws::is_upgrade(&req) {
            let in_endpoint = strip_endpoint(req.uri().path(), &config.endpoint).is_some()
                || req.uri().path() == config.endpoint
                || (config.endpoint.is_empty() && req.uri().path() == "/");
            if in_endpoint {
                return self.upgrade(req);
            }
        }
        let method = req.method().clone();
        if method == Method::HEAD {
            return Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Body::empty())
                .unwrap_or_else(|_| Response::new(Body::empty()));
        }
        let is_post = match method {
            Method::GET => false,
            Method::POST => true,
            _ => {
                let e = Error::new(
                    ErrorCode::MethodNotSupported,
                    format!(
                        "Unsupported {method} request: tRPC uses GET for queries and POST for mutations"
                    ),
                );
                let mut res = self.error_response(&e, None);
                res.headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("GET, POST, HEAD"));
                return res;
            }
        };

        // Route: `{endpoint}/{path}` or `{endpoint}/{p0},{p1}?batch=1`.
        let uri_path = req.uri().path().to_owned();
        let Some(rest) = strip_endpoint(&uri_path, &config.endpoint) else {
            let e = Error::not_found(format!(
                "Not found: tRPC is served under \"{}/\"",
                config.endpoint
            ));
            return self.error_response(&e, None);
        };
        let Ok(decoded) = percent_encoding::percent_decode_str(rest).decode_utf8() else {
            return self.error_response(
                &Error::bad_request("The procedure path is not valid UTF-8"),
                None,
            );
        };
        let decoded = decoded.into_owned();

        let mut batch = false;
        let mut input_param: Option<String> = None;
        let mut connection_params: Option<String> = None;
        for (key, value) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
            match &*key {
                "batch" => batch = value == "1",
                "input" if input_param.is_none() => input_param = Some(value.into_owned()),
                "connectionParams" if connection_params.is_none() => {
                    connection_params = Some(value.into_owned())
                }
                _ => {}
            }
        }
        let jsonl = wants_jsonl(req.headers());
        if jsonl && !batch {
            return self.error_response(
                &Error::bad_request("Streaming requests must be batched (you can do a batch of 1)"),
                None,
            );
        }
        let connection_params = match connection_params
            .as_deref()
            .map(parse_connection_params)
            .transpose()
        {
            Ok(params) => params.flatten(),
            Err(e) => return self.error_response(&e, None),
        };
        let paths: Vec<&str> = if batch {
            decoded.split(',').collect()
        } else {
            vec![decoded.as_str()]
        };
        if batch && !config.allow_batching {
            return self.error_response(
                &Error::bad_request("Batching is not enabled on the server"),
                None,
            );
        }
        if batch && paths.len() > config.max_batch_size {
            let e = Error::bad_request(format!(
                "Batch call exceeds maximum size: {} calls sent, at most {} allowed",
                paths.len(),
                config.max_batch_size
            ));
            return self.error_response(&e, None);
        }

        // The raw input text: the `input` parameter (GET) or the body (POST).
        let (parts, body) = req.into_parts();
        let input_text = if is_post {
            if let Err(e) = check_content_type(&parts.headers) {
                return self.error_response(&e, None);
            }
            match read_body(body, &parts.headers, config.max_body_size).await {
                Ok(bytes) => match String::from_utf8(bytes.to_vec()) {
                    Ok(text) => text,
                    Err(_) => {
                        return self.error_response(
                            &Error::new(
                                ErrorCode::ParseError,
                                "The request body is not valid UTF-8",
                            ),
                            None,
                        );
                    }
                },
                Err(e) => return self.error_response(&e, None),
            }
        } else {
            input_param.unwrap_or_default()
        };
        let inputs = if batch {
            input::parse_batch(&input_text, paths.len())
        } else {
            input::parse(&input_text).map(|i| vec![i])
        };
        let inputs = match inputs {
            Ok(inputs) => inputs,
            // A single call's bad input belongs to that call; a bad batch object to none.
            Err(e) => return self.error_response(&e, (!batch).then_some(decoded.as_str())),
        };

        // Resolve every call before running any, so a bad batch runs nothing.
        let router = &shared.router;
        let mut kinds: Vec<ProcedureKind> = Vec::new();
        let mut calls: Vec<Call<'_>> = Vec::with_capacity(paths.len());
        let mut runnable = Vec::new();
        for (path, input) in paths.iter().zip(inputs) {
            let call_index = calls.len();
            let outcome = match router.get(path) {
                None => Some(Err(no_procedure(path))),
                Some(procedure) if procedure.kind() == ProcedureKind::Subscription => {
                    Some(Err(if batch {
                        Error::bad_request("Cannot batch subscription calls")
                    } else {
                        Error::new(
                            ErrorCode::MethodNotSupported,
                            format!(
                                "`{path}` is a subscription: subscribe over WebSocket (wsLink); \
                                 SSE (httpSubscriptionLink) is not supported yet"
                            ),
                        )
                    }))
                }
                Some(procedure) => {
                    let kind = procedure.kind();
                    if !kinds.contains(&kind) {
                        kinds.push(kind);
                    }
                    if kind_accepts(kind, is_post, config.allow_method_override) {
                        runnable.push((call_index, procedure, input));
                        None
                    } else {
                        Some(Err(Error::new(
                            ErrorCode::MethodNotSupported,
                            format!(
                                "Unsupported {method}-request to {kind} procedure at path \"{path}\""
                            ),
                        )))
                    }
                }
            };
            calls.push(Call {
                path: Cow::Borrowed(path),
                outcome,
            });
        }
        if kinds.len() > 1 {
            kinds.sort();
            let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            let e = Error::bad_request(format!(
                "Cannot mix procedure types in call: {}",
                names.join(", ")
            ));
            return self.error_response(&e, None);
        }

        if !runnable.is_empty() {
            let peer = parts.extensions.get::<PeerAddr>().map(|p| p.0);
            let info = RequestInfo::new(parts.method, parts.uri, parts.headers, peer)
                .with_connection_params(connection_params);
            match (shared.create_context)(info).await {
                Err(e) => {
                    for (i, _, _) in runnable {
                        calls[i].outcome = Some(Err(e.clone()));
                    }
                }
                Ok(ctx) => {
                    let options = shared.call_options();
                    let futures = runnable.iter_mut().map(|(i, procedure, input)| {
                        router.call_raw(paths[*i], procedure, ctx.clone(), input.take(), options)
                    });
                    let outcomes: Vec<Result<Reply, Error>> = join_all(futures).await;
                    for ((i, _, _), outcome) in runnable.iter().zip(outcomes) {
                        calls[*i].outcome = Some(outcome);
                    }
                }
            }
        }

        if jsonl {
            self.jsonl_response(&calls)
        } else if batch {
            self.batch_response(&calls)
        } else {
            let call = &calls[0];
            match call.outcome.as_ref() {
                Some(Ok(out)) => json_response(
                    StatusCode::OK,
                    crate::envelope::result_envelope(out.json_ref()),
                ),
                Some(Err(e)) => self.error_response(e, Some(&call.path)),
                None => {
                    self.error_response(&Error::internal("call was never run"), Some(&call.path))
                }
            }
        }
    }

    /// The envelope of each call, with its HTTP status.
    fn envelopes<'c>(&'c self, calls: &'c [Call<'_>]) -> impl Iterator<Item = (u16, String)> + 'c {
        let policy = &self.shared.config.policy;
        calls.iter().map(move |call| match call.outcome.as_ref() {
            Some(Ok(out)) => (200, crate::envelope::result_envelope(out.json_ref())),
            Some(Err(e)) => (
                e.code().http_status(),
                policy.error_envelope(e, Some(&call.path)),
            ),
            None => {
                let e = Error::internal("call was never run");
                (500, policy.error_envelope(&e, Some(&call.path)))
            }
        })
    }

    /// A JSON array of envelopes; 207 when the calls' statuses differ.
    fn batch_response(&self, calls: &[Call<'_>]) -> Response<Body> {
        let mut statuses = Vec::with_capacity(calls.len());
        let mut body = String::from("[");
        for (i, (status, envelope)) in self.envelopes(calls).enumerate() {
            if i > 0 {
                body.push(',');
            }
            statuses.push(status);
            body.push_str(&envelope);
        }
        body.push(']');
        let status = match statuses.split_first() {
            Some((first, rest)) if rest.iter().all(|s| s == first) => *first,
            Some(_) => 207,
            None => 200,
        };
        json_response(StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body)
    }

    /// A `httpBatchStreamLink` answer in JSONL form A (spec §5.5): the head line holds every
    /// envelope inline. Values are only sent once all calls finished.
    fn jsonl_response(&self, calls: &[Call<'_>]) -> Response<Body> {
        let mut body = String::from("{");
        for (i, (_, envelope)) in self.envelopes(calls).enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&format!("\"{i}\":[[{envelope}]]"));
        }
        body.push_str("}\n");
        json_response(StatusCode::OK, body)
    }

    pub(crate) fn error_response(&self, error: &Error, path: Option<&str>) -> Response<Body> {
        let status = StatusCode::from_u16(error.code().http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(
            status,
            self.shared.config.policy.error_envelope(error, path),
        )
    }
}

fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut res = Response::new(Body::full(body));
    *res.status_mut() = status;
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(VARY, HeaderValue::from_static("trpc-accept, accept"));
    res
}

/// `/trpc/greet` → `greet` for endpoint `/trpc`; `None` outside the endpoint.
fn strip_endpoint<'a>(path: &'a str, endpoint: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(endpoint)?;
    rest.strip_prefix('/')
}

/// Whether the client asked for a JSONL stream (`httpBatchStreamLink`).
fn wants_jsonl(headers: &http::HeaderMap) -> bool {
    let has = |name: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("application/jsonl"))
            })
        })
    };
    has("trpc-accept") || has("accept")
}

/// `connectionParams` must be a JSON object of strings, or `null`.
fn parse_connection_params(
    text: &str,
) -> Result<Option<std::collections::BTreeMap<String, String>>, Error> {
    serde_json::from_str(text)
        .map_err(|_| Error::new(ErrorCode::ParseError, "Invalid connection params shape"))
}

fn check_content_type(headers: &http::HeaderMap) -> Result<(), Error> {
    let Some(value) = headers.get(CONTENT_TYPE) else {
        return Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            "Missing content-type header",
        ));
    };
    let text = value.to_str().unwrap_or("");
    let media = text.split(';').next().unwrap_or("").trim();
    if media.eq_ignore_ascii_case("application/json") {
        Ok(())
    } else if media.eq_ignore_ascii_case("multipart/form-data")
        || media.eq_ignore_ascii_case("application/octet-stream")
    {
        Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "Unsupported content-type \"{media}\": oxrpc does not accept FormData or binary inputs yet"
            ),
        ))
    } else {
        Err(Error::new(
            ErrorCode::UnsupportedMediaType,
            format!("Unsupported content-type \"{text}\": send application/json"),
        ))
    }
}

/// How much of an oversized body is read and thrown away before answering 413, so clients
/// that are still sending get the answer instead of a broken pipe; beyond this the connection
/// is simply closed.
const DRAIN_LIMIT: u64 = 8 * 1024 * 1024;

async fn read_body<B>(body: B, headers: &http::HeaderMap, limit: usize) -> Result<Bytes, Error>
where
    B: http_body::Body,
    B::Error: Into<BoxError>,
{
    let too_large = || {
        Error::new(
            ErrorCode::PayloadTooLarge,
            format!("The request body is larger than the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        drain(body).await;
        return Err(too_large());
    }
    let mut body = std::pin::pin!(body);
    let mut collected = bytes::BytesMut::new();
    loop {
        // Errors are converted at once: a body's own error type need not be `Send`.
        let frame = match body.frame().await {
            None => break,
            Some(Ok(frame)) => frame,
            Some(Err(e)) => {
                return Err(
                    Error::bad_request("The request body could not be read").with_cause(e.into())
                );
            }
        };
        if let Ok(data) = frame.into_data() {
            let mut data = data;
            if collected.len() + data.remaining() > limit {
                drain(body).await;
                return Err(too_large());
            }
            while data.has_remaining() {
                let chunk = data.chunk();
                collected.extend_from_slice(chunk);
                let n = chunk.len();
                data.advance(n);
            }
        }
    }
    Ok(collected.freeze())
}

/// Reads and discards what is left of a body, up to [`DRAIN_LIMIT`] bytes and 2 seconds.
async fn drain<B: http_body::Body>(body: B) {
    let drain = async {
        let mut body = std::pin::pin!(body);
        let mut seen = 0u64;
        loop {
            let frame = match body.frame().await {
                Some(Ok(frame)) => frame,
                _ => return,
            };
            if let Ok(data) = frame.into_data() {
                seen += data.remaining() as u64;
                if seen > DRAIN_LIMIT {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), drain).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(strip_endpoint("/trpc/greet", "/trpc"), Some("greet"));
        assert_eq!(strip_endpoint("/trpcx/greet", "/trpc"), None);
        assert_eq!(strip_endpoint("/greet", ""), Some("greet"));
        assert_eq!(strip_endpoint("/other", "/trpc"), None);
    }

    #[test]
    fn content_types() {
        let mut h = http::HeaderMap::new();
        assert_eq!(
            check_content_type(&h).expect_err("missing").code(),
            ErrorCode::UnsupportedMediaType
        );
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("Application/JSON; charset=utf-8"),
        );
        assert!(check_content_type(&h).is_ok());
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        assert!(check_content_type(&h).is_err());
    }
}
