//! Check mode: the committed `AppRouter.d.ts` must match the API (run `cargo build` to refresh).

#[test]
fn committed_declaration_is_fresh() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../web/src/generated/AppRouter.d.ts"
    );
    if let Err(e) = oxrpc_codegen::check(&quickstart_api::router(), path) {
        panic!("{e}");
    }
}
