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

/// The same router for `@trpc/server` 11.0–11.3 (`scripts/client-versions` runs the harness
/// with it against 11.0.0).
#[test]
fn conformance_router_dts_for_trpc_11_0_is_up_to_date() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node/generated-11.0.0/AppRouter.d.ts");
    let rendered = oxrpc_codegen::render_for(
        &oxrpc_tests::router(),
        oxrpc_codegen::TrpcVersion::Since11_0,
    )
    .expect("render");
    if std::env::var("OXRPC_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("folder")).expect("folder");
        std::fs::write(&path, &rendered).expect("write snapshot");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "{} is stale\nregenerate with: OXRPC_BLESS=1 cargo test -p oxrpc-tests --test codegen",
        path.display()
    );
    let default = oxrpc_codegen::render(&oxrpc_tests::router()).expect("render");
    assert!(rendered.contains("from '@trpc/server/unstable-core-do-not-import'"));
    assert!(!default.contains("unstable-core-do-not-import"));
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
