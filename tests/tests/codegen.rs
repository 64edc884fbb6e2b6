//! Snapshot of the generated `.d.ts` for the conformance router: the file the Node harness
//! type-checks against. Regenerate with `OXRPC_BLESS=1 cargo test -p oxrpc-tests --test codegen`.

use std::path::PathBuf;

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node/generated/AppRouter.d.ts")
}

#[test]
fn conformance_router_dts_is_up_to_date() {
    let path = snapshot_path();
    let rendered = oxrpc_codegen::render(&oxrpc_tests::router()).expect("render");
    if std::env::var("OXRPC_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &rendered).expect("write snapshot");
    }
    match oxrpc_codegen::check(&oxrpc_tests::router(), &path) {
        Ok(()) => {}
        Err(e) => {
            panic!("{e}\nregenerate with: OXRPC_BLESS=1 cargo test -p oxrpc-tests --test codegen")
        }
    }
}

#[test]
fn rendering_is_deterministic() {
    let a = oxrpc_codegen::render(&oxrpc_tests::router()).expect("render");
    let b = oxrpc_codegen::render(&oxrpc_tests::router()).expect("render");
    assert_eq!(a, b);
    let hash_line = a.lines().nth(1).expect("hash line");
    assert!(
        hash_line.starts_with("// content-hash: sha256:"),
        "{hash_line}"
    );
}
