//! superjson inputs: decoding never panics, and what the server encodes decodes back.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        oxrpc::__fuzz::superjson(text);
    }
});
