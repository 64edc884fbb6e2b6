//! `#[procedure]` UI tests: what compiles, and the error each mistake gets.
//! Regenerate `.stderr` files with `TRYBUILD=overwrite cargo test -p oxrpc-tests --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("ui/pass/*.rs");
    t.compile_fail("ui/fail/*.rs");
}
