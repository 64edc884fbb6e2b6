//! What input validation costs per call, for a typical 10-field input with constraints
//! (`validated.signup`). Run with: `cargo bench -p oxrpc-tests --bench validation`.
//!
//! Reports nanoseconds per call for: serde alone (what a server without validation does),
//! oxrpc's whole input path (parse, validate, deserialize), the validator alone, and a full
//! in-process call through the router. The target: validation adds at most 10 µs per call.

use std::hint::black_box;
use std::time::{Duration, Instant};

use oxrpc::UnknownFields;
use oxrpc::validate::Validator;
use oxrpc_tests::validated::Signup;
use serde_json::Value;

const INPUT: &str = r#"{"name":"Ada Lovelace","email":"ada@example.com","age":36,"homepage":"https://ada.dev",
"handle":"ada1815","tags":["math","engines","poetry"],"address":{"city":"London","zip":"12345"},
"contact":{"kind":"email","address":"ada@example.com"},"scores":{"math":99,"poetry":87},"terms":"I agree"}"#;

/// Runs `f` repeatedly for about `budget` and returns nanoseconds per call (best of 5 rounds).
fn measure(budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..1_000 {
        f();
    }
    let mut best = f64::MAX;
    for _ in 0..5 {
        let mut calls = 0u64;
        let start = Instant::now();
        while start.elapsed() < budget / 5 {
            for _ in 0..100 {
                f();
            }
            calls += 100;
        }
        best = best.min(start.elapsed().as_nanos() as f64 / calls as f64);
    }
    best
}

fn main() {
    let budget = Duration::from_secs(2);
    let validator = Validator::of::<Signup>().expect("schema compiles");
    let parsed: Value = serde_json::from_str(INPUT).expect("json");
    assert!(
        validator
            .validate(&parsed, UnknownFields::Ignore)
            .is_empty(),
        "the sample must be valid"
    );

    let serde_only = measure(budget, || {
        let v: Signup = serde_json::from_str(black_box(INPUT)).expect("serde");
        black_box(v);
    });
    let full_path = measure(budget, || {
        let value: Value = serde_json::from_str(black_box(INPUT)).expect("json");
        let issues = validator.validate(&value, UnknownFields::Ignore);
        assert!(issues.is_empty());
        let v = Signup::deserialize_from(&value);
        black_box(v);
    });
    let validate_only = measure(budget, || {
        black_box(validator.validate(black_box(&parsed), UnknownFields::Reject));
    });

    let router = oxrpc_tests::router();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let input: Value = parsed;
    let call = measure(budget, || {
        let out: Value = runtime
            .block_on(router.call(
                oxrpc_tests::Ctx::default(),
                "validated.signup",
                black_box(&input),
            ))
            .expect("call");
        black_box(out);
    });

    println!("validation of a 10-field input (validated.signup), ns per call, best of 5:");
    println!("  serde_json::from_str::<Signup> (no validation)     {serde_only:>8.0}");
    println!("  oxrpc input path (parse, validate, deserialize)    {full_path:>8.0}");
    println!("  validator alone                                    {validate_only:>8.0}");
    println!(
        "  added by validation                                {:>8.0}",
        full_path - serde_only
    );
    println!("  whole in-process call (router, middleware, output) {call:>8.0}");
    let added_us = (full_path - serde_only) / 1000.0;
    println!("validation adds {added_us:.2} µs per call (target: at most 10 µs)");
}

/// `T::deserialize(&Value)`, spelled out for the benchmark.
trait FromValue: Sized {
    fn deserialize_from(value: &Value) -> Self;
}

impl<T: serde::de::DeserializeOwned> FromValue for T {
    fn deserialize_from(value: &Value) -> Self {
        T::deserialize(value).expect("deserialize")
    }
}
