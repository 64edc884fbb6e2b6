//! Transports map a wire format to the dispatcher and back. None imports another, or the
//! server: the service routes each request to one of them.

pub(crate) mod http;
pub(crate) mod sse;
pub(crate) mod ws;
