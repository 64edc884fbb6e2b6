//! The build-script helper: `cargo build` writes the `.d.ts`.

use std::path::{Path, PathBuf};

use oxrpc::Router;

/// Set to `1` to make [`emit`] fail on a stale frontend file instead of rewriting it (for CI).
pub const CHECK_ENV: &str = "OXRPC_CODEGEN_CHECK";

/// Renders `router` from a build script: writes `$OUT_DIR/AppRouter.d.ts` and mirrors it to
/// `frontend_path` (relative to the crate's `Cargo.toml`).
///
/// - The frontend file is rewritten only when its content changed, by an atomic rename, so
///   frontend watchers do not loop; a `cargo:warning` says when it changed.
/// - A missing frontend folder never fails the build: it is reported with a warning.
/// - With `OXRPC_CODEGEN_CHECK=1`, a stale frontend file fails the build instead.
///
/// # Panics
/// When the router cannot be rendered (e.g. two types share a TypeScript name) or a file
/// cannot be written: a build script reports errors by failing.
pub fn emit<Ctx>(router: &Router<Ctx>, frontend_path: impl AsRef<Path>) {
    if let Err(e) = try_emit(router, frontend_path.as_ref()) {
        panic!("oxrpc-codegen: {e}");
    }
}

fn try_emit<Ctx>(router: &Router<Ctx>, frontend_path: &Path) -> Result<(), crate::CodegenError> {
    let content = crate::render(router)?;
    if let Some(out_dir) = std::env::var_os("OUT_DIR") {
        crate::write_if_changed(PathBuf::from(out_dir).join("AppRouter.d.ts"), &content)?;
    }
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_default();
    let target = manifest_dir.join(frontend_path);
    println!("cargo:rerun-if-changed={}", target.display());
    println!("cargo:rerun-if-env-changed={CHECK_ENV}");

    if std::env::var(CHECK_ENV).is_ok_and(|v| v == "1") {
        let actual = std::fs::read_to_string(&target).unwrap_or_default();
        if actual != content {
            return Err(crate::CodegenError::Stale { path: target });
        }
        return Ok(());
    }
    match target.parent() {
        Some(dir) if dir.as_os_str().is_empty() || dir.is_dir() => {
            if crate::write_if_changed(&target, &content)? {
                println!("cargo:warning=oxrpc: wrote {}", target.display());
            }
        }
        _ => println!(
            "cargo:warning=oxrpc: not writing {}: its folder does not exist (the .d.ts is in OUT_DIR)",
            target.display()
        ),
    }
    Ok(())
}
