//! WebSocket frames (one message or a batch array, connection params) must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        oxrpc::__fuzz::ws_frame(text);
    }
});
