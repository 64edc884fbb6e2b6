//! tRPC over HTTP (spec §1–§3, §5): queries, mutations, `?batch=1` batches, and streamed
//! JSONL batches ([`jsonl`]). Parse (protocol) → dispatch → respond (protocol envelopes).

mod jsonl;

use std::future::{Future, Ready, ready};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, Bytes};
use bytestring::ByteString;
use futures_util::FutureExt;
use futures_util::future::Either;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;

use crate::body::{Body, BoxError, error_response, json_response};
use crate::call::{Json, ProcedureKind, RawInput, Reply};
use crate::context::{RequestInfo, ResponseHeaders};
use crate::dispatch::{Dispatcher, Entry, Invoked, Site, Via, Want};
use crate::error::{Error, ErrorCode};
use crate::protocol::envelope;
use crate::protocol::http::{self as wire, HttpMethod, PerCall};
use crate::request_body::{BodyKind, BodyStream, RequestBody};
use crate::transport::poll_once;
use crate::transport::sse::SseTransport;

/// Limits and switches of the HTTP transport.
#[derive(Debug, Clone)]
pub(crate) struct HttpConfig {
    pub(crate) endpoint: String,
    pub(crate) max_body_size: usize,
    /// Binary and multipart inputs: the default limit of one upload.
    pub(crate) max_upload_size: usize,
    pub(crate) max_batch_size: usize,
    pub(crate) allow_batching: bool,
    pub(crate) allow_method_override: bool,
    /// Streamed batches: a space after this long without a line.
    pub(crate) jsonl_ping: Option<Duration>,
    /// The longest a request body may take to arrive, in total.
    pub(crate) body_read_timeout: Duration,
    /// tRPC's `pathSeparator` in URLs (`.` by default).
    pub(crate) path_separator: char,
    /// The longest a client may take to send a request's headers, and the longest an idle
    /// keep-alive connection stays open (standalone server only).
    pub(crate) header_read_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            endpoint: "/trpc".to_owned(),
            max_body_size: 2 * 1024 * 1024,
            max_upload_size: 16 * 1024 * 1024,
            max_batch_size: 1_000,
            allow_batching: true,
            allow_method_override: false,
            jsonl_ping: None,
            body_read_timeout: Duration::from_secs(30),
            path_separator: '.',
            header_read_timeout: Duration::from_secs(30),
        }
    }
}

/// The HTTP transport of one server.
#[derive(Debug)]
pub(crate) struct HttpTransport {
    dispatcher: Dispatcher,
    config: HttpConfig,
}

/// A request-level failure: the error, and the path when the request holds one call.
type Failure = (Error, Option<String>);

/// A call of a request: resolved but not started yet, settled (refused before it ran, or
/// finished), or running.
pub(super) enum Outcome {
    Unstarted,
    Done(Result<Reply, Error>),
    Running(Invoked),
}

impl Outcome {
    /// The result of a call that never started (every resolved call is started or refused
    /// before answering, so this only guards the impossible).
    fn never_run() -> Result<Reply, Error> {
        Err(Error::internal("call was never run"))
    }

    /// Waits for this call, if it runs.
    async fn settle(self) -> Result<Reply, Error> {
        match self {
            Outcome::Unstarted => Outcome::never_run(),
            Outcome::Done(result) => result,
            Outcome::Running(call) => call.await,
        }
    }

    /// The result of a settled call.
    fn settled(self) -> Result<Reply, Error> {
        match self {
            Outcome::Done(result) => result,
            Outcome::Unstarted | Outcome::Running(_) => Outcome::never_run(),
        }
    }

    /// Waits for every running call, leaving each `Done`. The calls are polled where they lie,
    /// together, until all have finished: unlike `join_all`, nothing is allocated, and a batch
    /// of calls that finish on their first poll (most do) is answered in one pass.
    async fn settle_all(outcomes: &mut PerCall<Outcome>) {
        std::future::poll_fn(|cx| {
            let mut running = false;
            for outcome in outcomes.iter_mut() {
                if let Outcome::Running(call) = outcome {
                    match Pin::new(call).poll(cx) {
                        Poll::Ready(result) => *outcome = Outcome::Done(result),
                        Poll::Pending => running = true,
                    }
                }
            }
            if running {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }
}

impl HttpTransport {
    pub(crate) fn new(dispatcher: Dispatcher, config: HttpConfig) -> Self {
        HttpTransport { dispatcher, config }
    }

    /// Answers one HTTP request from `peer`. Never fails: every problem becomes a tRPC error
    /// response. (Not an `async fn`, for the reason `HttpService::handle` gives.)
    pub(crate) fn handle<'a, B>(
        &'a self,
        req: Request<B>,
        peer: Option<SocketAddr>,
        sse: &'a SseTransport,
    ) -> Either<Ready<Response<Body>>, impl Future<Output = Response<Body>> + Send + 'a>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let method = match HttpMethod::of(req.method()) {
            Ok(method) => method,
            Err(e) => {
                let mut res = self.fail((e, None));
                res.headers_mut()
                    .insert(ALLOW, HeaderValue::from_static(HttpMethod::ALLOW));
                return Either::Left(ready(res));
            }
        };
        Either::Right(
            self.serve(method, req, peer, sse)
                .map(|served| served.unwrap_or_else(|failure| self.fail(failure))),
        )
    }

    /// Reports a request-level error (once, here where it is produced) and answers with it.
    fn fail(&self, (error, path): Failure) -> Response<Body> {
        let error = self.dispatcher.reported(error, path.as_deref());
        error_response(self.dispatcher.policy(), &error, path.as_deref())
    }

    async fn serve<B>(
        &self,
        method: HttpMethod,
        req: Request<B>,
        peer: Option<SocketAddr>,
        sse: &SseTransport,
    ) -> Result<Response<Body>, Failure>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let config = &self.config;
        let Some(rest) = wire::strip_endpoint(req.uri().path(), &config.endpoint) else {
            let e = Error::not_found(format!(
                "Not found: tRPC is served under \"{}/\"",
                config.endpoint
            ));
            return Err((e, None));
        };
        let mut target = wire::parse_target(
            rest,
            req.uri().query(),
            req.headers(),
            config.path_separator,
        )
        .map_err(|e| (e, None))?;
        if target.batch && !config.allow_batching {
            let e = Error::bad_request("Batching is not enabled on the server");
            return Err((e, None));
        }
        if target.batch && target.paths.len() > config.max_batch_size {
            let e = Error::bad_request(format!(
                "Batch call exceeds maximum size: {} calls sent, at most {} allowed",
                target.paths.len(),
                config.max_batch_size
            ));
            return Err((e, None));
        }
        let dispatcher = &self.dispatcher;
        let found: PerCall<Option<&Entry>> =
            target.paths.iter().map(|p| dispatcher.entry(p)).collect();
        // Like tRPC, a `GET` of one subscription is an event stream, whatever it accepts.
        if method == HttpMethod::Get
            && !target.batch
            && let [Some(entry)] = found.as_slice()
            && entry.kind() == ProcedureKind::Subscription
        {
            let path = target.paths.first().unwrap_or_default().to_owned();
            return Ok(sse.handle(req, path, peer));
        }
        // The raw input text: the `input` parameter (GET) or the body (POST, read in place).
        let (parts, body) = req.into_parts();
        // Shared by the calls' inputs, which are slices of it.
        let input_text: ByteString = match method {
            HttpMethod::Post => {
                let content_type = parts.headers.get(CONTENT_TYPE);
                let upload = content_type
                    .and_then(|v| v.to_str().ok())
                    .and_then(BodyKind::of_media_type);
                if let Some(kind) = upload {
                    // Boxed: a rare path, whose state would otherwise enlarge every request's
                    // future (moved whole into hyper's slot for each request).
                    return Box::pin(self.serve_upload(kind, target, parts, peer, body)).await;
                }
                wire::check_content_type(content_type).map_err(|e| (e, None))?;
                let mut read = std::pin::pin!(read_body(body, config.max_body_size));
                // A small body is there once hyper's connection task has gone round once
                // (hyper reads it after handing over the head): the timeout, and its timer,
                // start only if the body is not there by the second look.
                let read = match poll_once(read.as_mut()).await {
                    Poll::Ready(read) => Ok(read),
                    Poll::Pending => tokio::time::timeout(config.body_read_timeout, read).await,
                };
                let bytes = match read {
                    Ok(bytes) => bytes.map_err(|e| (e, None))?,
                    Err(_) => {
                        let e = Error::new(
                            ErrorCode::Timeout,
                            format!(
                                "The request body did not arrive within {} ms",
                                config.body_read_timeout.as_millis()
                            ),
                        );
                        return Err((e, None));
                    }
                };
                ByteString::try_from(bytes).map_err(|_| {
                    let e =
                        Error::new(ErrorCode::ParseError, "The request body is not valid UTF-8");
                    (e, None)
                })?
            }
            HttpMethod::Get => ByteString::from(target.input.take().unwrap_or_default()),
        };
        let inputs =
            // A single call's bad input belongs to that call; a bad batch object to none.
            wire::parse_inputs(&input_text, &target)
                .map_err(|e| {
                    let path = (!target.batch).then(|| target.paths.first().unwrap_or_default().to_owned());
                    (e, path)
                })?;

        // Resolve every call before running any, so a bad batch runs nothing. Kinds that
        // cannot share a request fail it before any per-call error is produced (and reported).
        let kinds = found.iter().flatten().map(|entry| entry.kind());
        wire::check_one_kind(kinds.filter(|k| *k != ProcedureKind::Subscription))
            .map_err(|e| (e, None))?;
        let mut outcomes: PerCall<Outcome> = PerCall::with_capacity(inputs.len());
        let mut runnable: PerCall<(usize, &Entry, RawInput)> = PerCall::with_capacity(inputs.len());
        let calls = target.paths.iter().zip(found).zip(inputs).enumerate();
        for (i, ((path, found), input)) in calls {
            let outcome = dispatcher
                .resolve(path, Want::Any, found)
                .and_then(|entry| {
                    method
                        .check(
                            entry.kind(),
                            path,
                            target.batch,
                            config.allow_method_override,
                        )
                        .map(|()| entry)
                        .map_err(|e| dispatcher.reported(e, Some(path)))
                });
            outcomes.push(match outcome {
                Ok(entry) => {
                    runnable.push((i, entry, input));
                    Outcome::Unstarted
                }
                Err(e) => Outcome::Done(Err(e)),
            });
        }
        // Only a context made from the request can set response headers.
        let response_headers = dispatcher.reads_request().then(ResponseHeaders::default);
        if !runnable.is_empty() {
            let params = target.connection_params.take();
            let info = || {
                RequestInfo::responding(parts, peer, response_headers.clone().unwrap_or_default())
                    .with_connection_params(params)
            };
            match dispatcher.create_context_with(info).await {
                Err(e) => {
                    for (i, _, _) in &runnable {
                        outcomes[*i] = Outcome::Done(Err(e.clone()));
                    }
                }
                Ok(ctx) => {
                    // Each call is started and polled once here, in order, as tRPC runs each
                    // call of a batch up to its first `await` before starting the next. One
                    // that finishes at once (most do) has dropped its future and its input
                    // before the next starts, so a batch's calls reuse the same memory. The
                    // others are awaited below, or streamed as they finish (JSONL).
                    for (i, entry, input) in runnable {
                        let index = target.batch.then_some(i);
                        let site = Site {
                            via: Via::Http,
                            batch_index: index,
                            streaming: target.jsonl,
                        };
                        let mut call = dispatcher.call(entry, &ctx, input, None, site);
                        outcomes[i] = match poll_once(Pin::new(&mut call)).await {
                            Poll::Ready(result) => Outcome::Done(result),
                            Poll::Pending => Outcome::Running(call),
                        };
                    }
                }
            }
        }

        if target.jsonl {
            return Ok(jsonl::respond(
                dispatcher,
                target.paths,
                outcomes,
                config.jsonl_ping,
            ));
        }
        Outcome::settle_all(&mut outcomes).await;
        let policy = dispatcher.policy();
        // Every envelope is written straight into the body (a batch: `[…,…]`), sized once:
        // exactly, when every call succeeded.
        let size: usize = outcomes
            .iter()
            .map(|o| match o {
                Outcome::Done(Ok(reply)) => envelope::result_len(reply.json_ref().map(Json::get)),
                _ => 160,
            })
            .sum();
        let brackets = if target.batch { outcomes.len() + 1 } else { 0 };
        let mut body = String::with_capacity(size + brackets);
        if target.batch {
            body.push('[');
        }
        let statuses = target
            .paths
            .iter()
            .zip(outcomes)
            .enumerate()
            .map(|(i, (path, outcome))| {
                if i > 0 {
                    body.push(',');
                }
                match outcome.settled() {
                    Ok(reply) => {
                        envelope::write_result(&mut body, reply.json_ref().map(Json::get));
                        200
                    }
                    Err(e) => {
                        body.push_str(&envelope::error(&policy.shape(&e, Some(path))));
                        e.code().http_status()
                    }
                }
            });
        let status = if target.batch {
            wire::batch_status(statuses)
        } else {
            statuses.last().unwrap_or(500)
        };
        if target.batch {
            body.push(']');
        }
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = json_response(status, body);
        if let Some(headers) = &response_headers {
            apply_headers(&mut response, headers);
        }
        if status == StatusCode::METHOD_NOT_ALLOWED
            && let Some(kind) = target.paths.first().and_then(|p| dispatcher.kind_of(p))
        {
            let allow = HttpMethod::allow_for(kind, config.allow_method_override);
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        Ok(response)
    }
}

impl HttpTransport {
    /// A binary or multipart input (spec §1.5): one call, never batched, its body streamed to
    /// the procedure.
    async fn serve_upload<B>(
        &self,
        kind: BodyKind,
        target: wire::Target,
        parts: http::request::Parts,
        peer: Option<SocketAddr>,
        body: B,
    ) -> Result<Response<Body>, Failure>
    where
        B: http_body::Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let config = &self.config;
        let dispatcher = &self.dispatcher;
        // From here on the body drains itself if refused unread.
        let stream = body_stream(body, config.body_read_timeout);
        if target.batch {
            let e = Error::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "{} inputs cannot be batched: send them with httpLink (e.g. through splitLink with isNonJsonSerializable)",
                    kind.media_type()
                ),
            );
            return Err((e, None));
        }
        let path = target.paths.first().unwrap_or_default();
        let entry = dispatcher
            .resolve(path, Want::Any, dispatcher.entry(path))
            .map_err(|e| (e, Some(path.to_owned())))?;
        HttpMethod::Post
            .check(entry.kind(), path, false, config.allow_method_override)
            .map_err(|e| (e, Some(path.to_owned())))?;
        if entry.body() != Some(kind) {
            let expected = match entry.body() {
                Some(other) => format!("a {} body", other.media_type()),
                None => "JSON input (application/json)".to_owned(),
            };
            let e = Error::new(
                ErrorCode::UnsupportedMediaType,
                format!("`{path}` takes {expected}, not {}", kind.media_type()),
            );
            return Err((e, Some(path.to_owned())));
        }
        let content_type = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let declared = parts
            .headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let upload = RequestBody::new(kind, content_type, declared, stream, config.max_upload_size);
        let response_headers = dispatcher.reads_request().then(ResponseHeaders::default);
        let info =
            || RequestInfo::responding(parts, peer, response_headers.clone().unwrap_or_default());
        let outcome = match dispatcher.create_context_with(info).await {
            Ok(ctx) => Outcome::Running(dispatcher.call_with_body(entry, &ctx, upload)),
            Err(e) => Outcome::Done(Err(e)),
        };
        let result = outcome.settle().await;
        let (status, body) = match result {
            Ok(reply) => (200, envelope::result(reply.json_ref().map(Json::get))),
            Err(e) => (
                e.code().http_status(),
                envelope::error(&dispatcher.policy().shape(&e, Some(path))),
            ),
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = json_response(status, body);
        if let Some(headers) = &response_headers {
            apply_headers(&mut response, headers);
        }
        Ok(response)
    }
}

/// Adds the headers procedures set; those the protocol sets itself (`content-type`, `vary`,
/// `allow`…) are not theirs to change.
fn apply_headers(response: &mut Response<Body>, headers: &ResponseHeaders) {
    let set = headers.take();
    if set.is_empty() {
        return;
    }
    let own: Vec<http::HeaderName> = response.headers().keys().cloned().collect();
    for (name, value) in &set {
        if !own.contains(name) {
            response.headers_mut().append(name.clone(), value.clone());
        }
    }
}

/// A request body as a stream of chunks: a chunk that takes longer than `idle` to come fails
/// it with `TIMEOUT`, a client that goes away with `BAD_REQUEST` (no one is left to read it).
fn body_stream<B>(body: B, idle: Duration) -> BodyStream
where
    B: http_body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    enum Step {
        Data(Option<Bytes>),
        End,
        Stalled,
        Failed(BoxError),
    }
    Box::pin(Draining {
        finished: false,
        inner: Box::pin(async_stream::stream! {
        let mut body = Box::pin(body);
        loop {
            // Converted at once: the body's own types need not be `Send`.
            let step = match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => Step::Stalled,
                Ok(None) => Step::End,
                Ok(Some(Err(e))) => Step::Failed(e.into()),
                Ok(Some(Ok(frame))) => Step::Data(frame.into_data().ok().map(|mut data| {
                    let len = data.remaining();
                    data.copy_to_bytes(len)
                })),
            };
            match step {
                Step::Data(Some(chunk)) => yield Ok(chunk),
                Step::Data(None) => {}
                Step::End => break,
                Step::Stalled => {
                    yield Err(Error::new(
                        ErrorCode::Timeout,
                        format!("The upload stalled: no data for {} ms", idle.as_millis()),
                    ));
                    break;
                }
                Step::Failed(cause) => {
                    yield Err(Error::bad_request("The upload was cut short").with_cause(cause));
                    break;
                }
            }
        }
        }),
    })
}

/// A request body that drains itself when dropped unread (the procedure failed, a middleware
/// refused the call, or it did not need the rest): a client still sending then gets the answer
/// instead of a reset connection. At most [`DRAIN_LIMIT`] bytes within [`DRAIN_TIME`].
struct Draining {
    inner: BodyStream,
    /// Everything arrived, or the client went away: nothing to drain.
    finished: bool,
}

/// How long a body left unread may take to drain.
const DRAIN_TIME: Duration = Duration::from_secs(5);

impl futures_util::Stream for Draining {
    type Item = Result<Bytes, Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        let polled = self.inner.as_mut().poll_next(cx);
        if matches!(polled, std::task::Poll::Ready(None | Some(Err(_)))) {
            self.finished = true;
        }
        polled
    }
}

impl Drop for Draining {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let mut rest = std::mem::replace(&mut self.inner, Box::pin(futures_util::stream::empty()));
        runtime.spawn(async move {
            let deadline = tokio::time::Instant::now() + DRAIN_TIME;
            let mut drained = 0u64;
            while drained <= DRAIN_LIMIT {
                match tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut rest))
                    .await
                {
                    Ok(Some(Ok(chunk))) => drained += chunk.len() as u64,
                    _ => break,
                }
            }
        });
    }
}

/// How much of an oversized body is read and thrown away before answering 413, so clients
/// that are still sending get the answer instead of a broken pipe; beyond this the connection
/// is simply closed.
const DRAIN_LIMIT: u64 = 8 * 1024 * 1024;

/// The whole body, refused when it is (or says it will be) larger than `limit`.
async fn read_body<B>(body: B, limit: usize) -> Result<Bytes, Error>
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
    // Its length as declared (`content-length`: hyper's body gives it as its size hint).
    if body.size_hint().lower() > limit as u64 {
        drain(body).await;
        return Err(too_large());
    }
    let mut body = std::pin::pin!(body);
    // A body in one frame (most are) is kept as it came; more frames are copied together.
    let mut first: Option<Bytes> = None;
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
            let held = first.as_ref().map_or(0, Bytes::len);
            if held + collected.len() + data.remaining() > limit {
                drain(body).await;
                return Err(too_large());
            }
            if first.is_none() && collected.is_empty() {
                first = Some(data.copy_to_bytes(data.remaining()));
                continue;
            }
            if let Some(first) = first.take() {
                collected.extend_from_slice(&first);
            }
            while data.has_remaining() {
                let chunk = data.chunk();
                collected.extend_from_slice(chunk);
                let n = chunk.len();
                data.advance(n);
            }
        }
    }
    Ok(match first {
        Some(first) => first,
        None => collected.freeze(),
    })
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
