//! Transports map a wire format to router calls and back.

pub(crate) mod http;
pub(crate) mod ws;
