//! HTTP request parsing (procedure paths, query parameters, batch inputs, content types) must
//! never panic, and a batch gets exactly one input per call.
//!
//! Input: `path \0 query \0 body \0 content-type \0 trpc-accept` (missing parts are empty).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(5, '\0');
    let mut next = || parts.next().unwrap_or("");
    let (path, query, body, content_type, accept) = (next(), next(), next(), next(), next());
    oxrpc::__fuzz::http_request(path, query, body, content_type, accept);
});
