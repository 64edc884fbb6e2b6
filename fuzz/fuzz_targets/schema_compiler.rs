//! The validator compiler on arbitrary JSON Schemas: compiling either works or says why, and a
//! compiled validator checks any value without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oxrpc::UnknownFields;
use oxrpc::validate::Validator;
use serde_json::json;

fuzz_target!(|data: &[u8]| {
    let Ok(schema) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(validator) = Validator::new(&schema) else {
        return;
    };
    let samples = [
        json!(null),
        json!(0),
        json!(-1.5),
        json!(""),
        json!("a@b.c"),
        json!([1, "two", null]),
        json!({"a": 1, "b": [true], "kind": "x"}),
        schema.clone(),
    ];
    for value in &samples {
        for unknown in [UnknownFields::Ignore, UnknownFields::Reject] {
            let _ = validator.validate(value, unknown);
        }
    }
});
