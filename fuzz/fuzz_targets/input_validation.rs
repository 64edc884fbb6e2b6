//! Input decoding plus validation, through the same dispatch as a network call: any JSON text
//! sent to a procedure with a constrained input gets an answer (the value, or BAD_REQUEST /
//! PARSE_ERROR), never a panic.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use oxrpc::{Error, ErrorCode, Procedure, Router};
use serde_json::value::RawValue;

#[derive(Debug, serde::Deserialize, serde::Serialize, ts_rs::TS, schemars::JsonSchema)]
struct Address {
    #[schemars(length(min = 1, max = 40))]
    city: String,
    #[schemars(regex(pattern = r"^[0-9]{5}$"))]
    zip: Option<String>,
}

#[derive(Debug, serde::Deserialize, serde::Serialize, ts_rs::TS, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "camelCase")]
enum Contact {
    Email {
        #[schemars(email)]
        address: String,
    },
    Phone {
        #[schemars(length(min = 3))]
        number: String,
    },
}

#[derive(Debug, serde::Deserialize, serde::Serialize, ts_rs::TS, schemars::JsonSchema)]
struct Signup {
    #[schemars(length(min = 1, max = 32))]
    name: String,
    #[schemars(range(min = 13, max = 130))]
    age: u8,
    #[schemars(url)]
    homepage: Option<String>,
    #[schemars(length(max = 5), inner(length(min = 2)))]
    tags: Vec<String>,
    address: Option<Address>,
    contact: Contact,
    scores: std::collections::BTreeMap<String, f64>,
}

static ROUTER: LazyLock<Router<()>> = LazyLock::new(|| {
    Router::new().add(Procedure::mutation(
        "signup",
        |(): (), s: Signup| async move { Ok::<_, Error>(s) },
    ))
});

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(raw) = serde_json::from_str::<Box<RawValue>>(text) else {
        return;
    };
    let result = RUNTIME.block_on(ROUTER.call::<_, serde_json::Value>((), "signup", &raw));
    if let Err(e) = result {
        assert!(
            matches!(e.code(), ErrorCode::BadRequest | ErrorCode::ParseError),
            "unexpected {:?}: {}",
            e.code(),
            e.message()
        );
    }
});
