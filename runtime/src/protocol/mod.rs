//! The tRPC wire as data: request parsing and one encoder per envelope, for HTTP (spec §1–§3),
//! JSONL (§5), SSE (§6) and WebSocket (§7), and the superjson transformer (§4). The only place where JSON is spelled out.

pub(crate) mod envelope;
pub(crate) mod error;
pub(crate) mod http;
pub(crate) mod input;
pub(crate) mod sse;
pub(crate) mod superjson;
pub(crate) mod ws;
