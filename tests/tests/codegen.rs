//! Snapshot of the generated `.d.ts` for the conformance router: the file the Node harness
//! type-checks against. Regenerate with `OXRPC_BLESS=1 cargo test -p oxrpc-tests --test codegen`.

use std::path::PathBuf;

fn snapshot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node/generated/AppRouter.d.ts")
}

/// Compares a committed rendering with `rendered` (rewriting it under `OXRPC_BLESS=1`).
fn check_snapshot(path: &std::path::Path, rendered: &str) {
    if std::env::var("OXRPC_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(path.parent().expect("folder")).expect("folder");
        std::fs::write(path, rendered).expect("write snapshot");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == rendered,
        "{} is stale\nregenerate with: OXRPC_BLESS=1 cargo test -p oxrpc-tests --test codegen",
        path.display()
    );
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
    check_snapshot(&path, &rendered);
    let default = oxrpc_codegen::render(&oxrpc_tests::router()).expect("render");
    assert!(rendered.contains("from '@trpc/server/unstable-core-do-not-import'"));
    assert!(!default.contains("unstable-core-do-not-import"));
}

/// The superjson profile's router, beside the plain one (both renderings, like the plain
/// router's).
#[test]
fn superjson_router_dts_is_up_to_date() {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("node");
    for (path, since) in [
        (
            "generated/AppRouterSuperjson.d.ts",
            oxrpc_codegen::TrpcVersion::Since11_4,
        ),
        (
            "generated-11.0.0/AppRouterSuperjson.d.ts",
            oxrpc_codegen::TrpcVersion::Since11_0,
        ),
    ] {
        let path = folder.join(path);
        let rendered =
            oxrpc_codegen::render_for(&oxrpc_tests::superjson_router(), since).expect("render");
        check_snapshot(&path, &rendered);
        assert!(rendered.contains("transformer: true"));
        assert!(rendered.contains("at: Date"), "{rendered}");
    }
    let plain = oxrpc_codegen::render(&oxrpc_tests::router()).expect("render");
    assert!(plain.contains("transformer: false"));
}

/// Values only superjson carries are refused without it, and in error data always: the
/// generated types would lie.
#[test]
fn javascript_values_need_the_transformer() {
    use oxrpc::js::{BigInt, Date, Map, Set};
    use oxrpc::{Error, Procedure, Router};

    let needs = Router::<()>::new()
        .add(Procedure::query("big", |_: (), (): ()| async {
            Ok::<_, Error>(BigInt(1_i64))
        }))
        .add(Procedure::query("set", |_: (), s: Set<u8>| async {
            Ok::<_, Error>(s)
        }))
        .add(Procedure::query("map", |_: (), (): ()| async {
            Ok::<_, Error>(Map::<String, u8>::default())
        }));
    let err = oxrpc_codegen::render(&needs)
        .expect_err("refused")
        .to_string();
    for wanted in [
        "oxrpc::js::BigInt",
        "oxrpc::js::Set",
        "oxrpc::js::Map",
        ".superjson()",
    ] {
        assert!(err.contains(wanted), "{wanted}: {err}");
    }
    oxrpc_codegen::render(&needs.superjson()).expect("fine with superjson");

    // `Date` travels as an ISO string without the transformer, as the client's types say.
    let dates = Router::<()>::new().add(Procedure::query("now", |_: (), (): ()| async {
        Ok::<_, Error>(Date::now())
    }));
    assert!(
        oxrpc_codegen::render(&dates)
            .expect("dates")
            .contains("output: Date")
    );

    #[derive(serde::Serialize, ts_rs::TS, schemars::JsonSchema)]
    struct Stale {
        since: Date,
    }
    let formatted = Router::<()>::new()
        .add(Procedure::query("now", |_: (), (): ()| async {
            Ok::<_, Error>(1)
        }))
        .superjson()
        .error_formatter(|_: &Error, _: &oxrpc::ErrorInfo<'_>| Stale { since: Date::now() });
    let err = oxrpc_codegen::render(&formatted)
        .expect_err("refused")
        .to_string();
    assert!(err.contains("error data cannot carry"), "{err}");
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
