//! `#[procedure]` UI tests: what compiles, and the error each mistake gets.
//! Regenerate `.stderr` files with `TRYBUILD=overwrite cargo test -p oxrpc-ui-tests`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("pass/*.rs");
    t.compile_fail("fail/*.rs");
}
