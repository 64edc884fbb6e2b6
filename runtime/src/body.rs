//! The response body of oxrpc's HTTP service, and the JSON responses every transport sends.

use std::convert::Infallible;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, VARY};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::{BodyExt, Full};

use crate::error::Error;
use crate::protocol::envelope;
use crate::protocol::error::ErrorPolicy;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The response body of oxrpc's HTTP service.
pub struct Body(http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>);

impl Body {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        Body(
            Full::new(bytes.into())
                .map_err(|never: Infallible| match never {})
                .boxed_unsync(),
        )
    }

    pub(crate) fn empty() -> Self {
        Body::full(Bytes::new())
    }

    /// A body written as the stream yields, one data frame per item (flushed by hyper as it
    /// goes). Dropping the body (client gone) drops the stream.
    pub(crate) fn stream(chunks: impl futures_util::Stream<Item = Bytes> + Send + 'static) -> Self {
        use futures_util::StreamExt;
        let frames = chunks.map(|chunk| Ok::<_, BoxError>(http_body::Frame::data(chunk)));
        Body(http_body_util::StreamBody::new(frames).boxed_unsync())
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

/// A JSON response with tRPC's `vary` header.
pub(crate) fn json_response(status: StatusCode, body: String) -> Response<Body> {
    json_body_response(status, Body::full(body))
}

/// A response with any body of JSON (or JSON lines), with tRPC's headers.
pub(crate) fn json_body_response(status: StatusCode, body: Body) -> Response<Body> {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    // Sized for these two (the map's default first allocation holds six).
    let mut headers = HeaderMap::with_capacity(2);
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(VARY, HeaderValue::from_static("trpc-accept, accept"));
    *res.headers_mut() = headers;
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
