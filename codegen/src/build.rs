//! The build-script helper: `cargo build` writes the `.d.ts`.

use std::path::{Path, PathBuf};

use oxrpc::Router;

use crate::{CodegenError, TrpcVersion};

/// Set to `1` to make [`emit`] fail on a stale frontend file instead of rewriting it (for CI).
pub const CHECK_ENV: &str = "OXRPC_CODEGEN_CHECK";

/// What [`emit_to`] did with the frontend file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Emitted {
    /// The file was written (it was missing or different).
    Written,
    /// The file already had this content; it was not touched.
    Unchanged,
    /// The file's folder does not exist; nothing was written there.
    FolderMissing,
    /// Check mode: the file is up to date.
    Fresh,
}

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
    emit_for(router, frontend_path, TrpcVersion::default());
}

/// [`emit`] for a frontend on an older `@trpc/server` (e.g. [`TrpcVersion::Since11_0`]).
///
/// # Panics
/// As [`emit`].
pub fn emit_for<Ctx>(router: &Router<Ctx>, frontend_path: impl AsRef<Path>, since: TrpcVersion) {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_default();
    let target = manifest_dir.join(frontend_path);
    let out_dir = std::env::var_os("OUT_DIR").map(PathBuf::from);
    let check = std::env::var(CHECK_ENV).is_ok_and(|v| v == "1");
    println!("cargo:rerun-if-changed={}", target.display());
    println!("cargo:rerun-if-env-changed={CHECK_ENV}");
    match emit_to_for(router, out_dir.as_deref(), &target, check, since) {
        Ok(Emitted::Written) => println!("cargo:warning=oxrpc: wrote {}", target.display()),
        Ok(Emitted::FolderMissing) => println!(
            "cargo:warning=oxrpc: not writing {}: its folder does not exist (the file is in OUT_DIR)",
            target.display()
        ),
        Ok(Emitted::Unchanged | Emitted::Fresh) => {}
        Err(e) => panic!("oxrpc-codegen: {e}"),
    }
}

/// [`emit`] without the environment: renders into `out_dir` (if given) and mirrors to `target`,
/// or, with `check`, only verifies that `target` is fresh.
pub fn emit_to<Ctx>(
    router: &Router<Ctx>,
    out_dir: Option<&Path>,
    target: &Path,
    check: bool,
) -> Result<Emitted, CodegenError> {
    emit_to_for(router, out_dir, target, check, TrpcVersion::default())
}

fn emit_to_for<Ctx>(
    router: &Router<Ctx>,
    out_dir: Option<&Path>,
    target: &Path,
    check: bool,
    since: TrpcVersion,
) -> Result<Emitted, CodegenError> {
    let content = crate::render_for(router, since)?;
    if let Some(out_dir) = out_dir {
        crate::write_if_changed(out_dir.join("AppRouter.d.ts"), &content)?;
    }
    if check {
        let actual = std::fs::read_to_string(target).unwrap_or_default();
        return if actual == content {
            Ok(Emitted::Fresh)
        } else {
            Err(CodegenError::Stale {
                path: target.to_owned(),
            })
        };
    }
    match target.parent() {
        Some(dir) if dir.as_os_str().is_empty() || dir.is_dir() => {
            if crate::write_if_changed(target, &content)? {
                Ok(Emitted::Written)
            } else {
                Ok(Emitted::Unchanged)
            }
        }
        _ => Ok(Emitted::FolderMissing),
    }
}
