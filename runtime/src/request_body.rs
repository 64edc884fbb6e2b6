//! The body of a binary or multipart request (`upload` inputs) as it travels from the HTTP
//! transport through the call to the input type: a leaf, so that calls and type information can
//! carry it without knowing the upload types.

use std::fmt;
use std::pin::Pin;

use bytes::Bytes;
use futures_util::Stream;

use crate::error::Error;

/// The body of a binary or multipart request, as the transport hands it over.
pub(crate) type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, Error>> + Send>>;

/// What kind of body a procedure's input takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// `application/octet-stream`: [`Octets`].
    Octets,
    /// `multipart/form-data`: [`FormData`].
    Form,
}

impl BodyKind {
    /// The body kind of a `content-type` (media type compared case-insensitively).
    pub(crate) fn of_media_type(content_type: &str) -> Option<BodyKind> {
        let media = content_type.split(';').next().unwrap_or("").trim();
        if media.eq_ignore_ascii_case("application/octet-stream") {
            Some(BodyKind::Octets)
        } else if media.eq_ignore_ascii_case("multipart/form-data") {
            Some(BodyKind::Form)
        } else {
            None
        }
    }

    pub(crate) fn media_type(self) -> &'static str {
        match self {
            BodyKind::Octets => "application/octet-stream",
            BodyKind::Form => "multipart/form-data",
        }
    }

    /// What the client sends for it.
    pub(crate) fn client_value(self) -> &'static str {
        match self {
            BodyKind::Octets => "a Blob, File or Uint8Array",
            BodyKind::Form => "a FormData",
        }
    }

    /// The kind an input type takes, from the schema id our input types declare.
    pub(crate) fn of_schema_id(id: &str) -> Option<BodyKind> {
        if id == OCTETS_ID {
            Some(BodyKind::Octets)
        } else if id.starts_with(FORM_ID_PREFIX) {
            Some(BodyKind::Form)
        } else {
            None
        }
    }
}

pub(crate) const OCTETS_ID: &str = "oxrpc::upload::Octets";
pub(crate) const FORM_ID_PREFIX: &str = "oxrpc::upload::FormData<";

/// A request body on its way to a procedure.
pub(crate) struct RequestBody {
    pub(crate) kind: BodyKind,
    pub(crate) content_type: String,
    pub(crate) declared_length: Option<u64>,
    pub(crate) stream: BodyStream,
    pub(crate) default_limit: usize,
}

impl fmt::Debug for RequestBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequestBody")
            .field("content_type", &self.content_type)
            .field("declared_length", &self.declared_length)
            .finish_non_exhaustive()
    }
}

impl RequestBody {
    /// A body already in memory (tests), with the default limit.
    pub(crate) fn in_memory(kind: BodyKind, content_type: String, bytes: Bytes) -> Self {
        let len = bytes.len() as u64;
        RequestBody {
            kind,
            content_type,
            declared_length: Some(len),
            stream: Box::pin(futures_util::stream::once(std::future::ready(Ok(bytes)))),
            default_limit: usize::MAX,
        }
    }

    pub(crate) fn new(
        kind: BodyKind,
        content_type: String,
        declared_length: Option<u64>,
        stream: BodyStream,
        default_limit: usize,
    ) -> Self {
        RequestBody {
            kind,
            content_type,
            declared_length,
            stream,
            default_limit,
        }
    }
}
