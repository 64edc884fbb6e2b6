//! The response body of oxrpc's HTTP service, and the JSON responses every transport sends.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::sync::LazyLock;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, VARY};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::error::Error;
use crate::idle::InFlight;
use crate::protocol::envelope;
use crate::protocol::error::ErrorPolicy;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body of oxrpc's HTTP service.
pub struct Body {
    kind: Kind,
    /// The standalone server's count of its connection's requests in flight, which this
    /// body's request stays in until hyper has written (or dropped) the body.
    in_flight: Option<InFlight>,
}

enum Kind {
    /// The whole body at once (most responses): not boxed.
    Full(Full<Bytes>),
    /// A body written as it is produced (JSONL, SSE).
    Streamed(http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>),
}

impl Body {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        Body::of(Kind::Full(Full::new(bytes.into())))
    }

    pub(crate) fn empty() -> Self {
        Body::full(Bytes::new())
    }

    /// A body written as the stream yields, one data frame per item (flushed by hyper as it
    /// goes). Dropping the body (client gone) drops the stream.
    pub(crate) fn stream(chunks: impl futures_util::Stream<Item = Bytes> + Send + 'static) -> Self {
        use futures_util::StreamExt;
        let frames = chunks.map(|chunk| Ok::<_, BoxError>(http_body::Frame::data(chunk)));
        Body::of(Kind::Streamed(
            http_body_util::StreamBody::new(frames).boxed_unsync(),
        ))
    }

    fn of(kind: Kind) -> Self {
        Body {
            kind,
            in_flight: None,
        }
    }

    /// Keeps the request counted in flight on its connection while this body lives.
    pub(crate) fn hold(&mut self, in_flight: InFlight) {
        self.in_flight = Some(in_flight);
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
        match &mut self.kind {
            Kind::Full(full) => Pin::new(full)
                .poll_frame(cx)
                .map(|frame| frame.map(|frame| frame.map_err(|never: Infallible| match never {}))),
            Kind::Streamed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Full(full) => full.is_end_stream(),
            Kind::Streamed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match &self.kind {
            Kind::Full(full) => full.size_hint(),
            Kind::Streamed(body) => body.size_hint(),
        }
    }
}

/// A JSON response with tRPC's `vary` header.
pub(crate) fn json_response(status: StatusCode, body: String) -> Response<Body> {
    json_body_response(status, Body::full(body))
}

/// A response with any body of JSON (or JSON lines), with tRPC's headers.
pub(crate) fn json_body_response(status: StatusCode, body: Body) -> Response<Body> {
    // Built once and copied: a copy hashes no names (the map is sized for these two).
    static HEADERS: LazyLock<HeaderMap> = LazyLock::new(|| {
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(VARY, HeaderValue::from_static("trpc-accept, accept"));
        headers
    });
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = HEADERS.clone();
    res
}

/// An error envelope with the error's HTTP status.
pub(crate) fn error_response(
    policy: &ErrorPolicy,
    error: &Error,
    path: Option<&str>,
) -> Response<Body> {
    let status = StatusCode::from_u16(error.code().http_status())
        .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(status, envelope::error(&policy.shape(error, path)))
}

/// `204 No Content` (the answer to `HEAD`).
pub(crate) fn no_content() -> Response<Body> {
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    res
}
