//! The SSE and JSONL encoders: what they write decodes back to the same data (and SSE id).
//!
//! Input: `json \0 id`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (json, id) = text.split_once('\0').unwrap_or((text, ""));
    oxrpc::__fuzz::encoders_round_trip(json, id);
});
