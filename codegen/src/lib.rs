#![allow(clippy::needless_doctest_main)] // the example is a build script's main
//! # oxrpc-codegen
//!
//! Renders an [`oxrpc::Router`] as the TypeScript declaration that types
//! `createTRPCClient<AppRouter>` from the official `@trpc/client`.
//!
//! In a build script (the usual way, see [`build::emit`]):
//!
//! ```no_run
//! // server/build.rs
//! fn main() {
//! #   fn router() -> oxrpc::Router<()> { oxrpc::Router::new() }
//!     oxrpc_codegen::build::emit(&router(), "../web/src/generated/AppRouter.d.ts");
//! }
//! ```
//!
//! Or anywhere else (tests, a small binary): [`render`] returns the text, [`check`] fails
//! when a committed file is stale.
//!
//! ## What the types say
//!
//! The file describes the JSON on the wire, because that is what `JSON.parse` gives the
//! client: `()` outputs are `undefined` (the server sends `{"result":{}}`), inputs that may be
//! left out (`()`, `Option<T>`) accept `undefined`, and 64-bit and 128-bit integers are
//! `number`, as serde writes them. JavaScript numbers are exact only up to 2^53; a value
//! above that loses precision in `JSON.parse`. Send such values as strings if they can
//! grow that large.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use oxrpc::types::{TsDeclaration, TypeInfo};
use oxrpc::{ProcedureKind, Router};
use sha2::{Digest, Sha256};

pub mod build;
mod consistency;

/// Names the generated file itself declares or imports; model types may not use them.
const TAKEN: &[&str] = &[
    "AppRouter",
    "RouterInputs",
    "RouterOutputs",
    "TRPCBuiltRouter",
    "TRPCQueryProcedure",
    "TRPCMutationProcedure",
    "TRPCSubscriptionProcedure",
    "TRPC_ERROR_CODE_KEY",
    "TRPC_ERROR_CODE_NUMBER",
    "ValidationIssue",
    "ErrorData",
    "ErrorShape",
    "TypedErrorShape",
    "inferRouterInputs",
    "inferRouterOutputs",
];

/// Why a router could not be rendered, or a file is not what it should be.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodegenError {
    /// Two different Rust types would have the same TypeScript name.
    #[error(
        "two Rust types are both named `{ident}` in TypeScript: `{first}` and `{second}`; \
         rename one with `#[ts(rename = \"…\")]`"
    )]
    NameClash {
        /// The TypeScript name.
        ident: String,
        /// One Rust type.
        first: String,
        /// The other Rust type.
        second: String,
    },
    /// A model type uses a name the generated file needs for itself.
    #[error(
        "the Rust type `{rust_name}` is named `{ident}` in TypeScript, which the generated file \
         uses itself; rename it with `#[ts(rename = \"…\")]`"
    )]
    ReservedName {
        /// The TypeScript name.
        ident: String,
        /// The Rust type.
        rust_name: String,
    },
    /// The TypeScript type and the JSON Schema of a type disagree: emitting it would lie.
    #[error("the TypeScript types would not match the wire:\n- {}", problems.join("\n- "))]
    Disagreement {
        /// Each problem, naming the Rust type and what to change.
        problems: Vec<String>,
    },
    /// A committed file differs from what the router renders.
    #[error("{path} is stale: it does not match the router; run `cargo build` to regenerate it")]
    Stale {
        /// The stale file.
        path: PathBuf,
    },
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// The ts-rs settings that make declarations match what serde_json writes.
fn ts_config() -> ts_rs::Config {
    ts_rs::Config::new().with_large_int("number")
}

/// What oxrpc puts into every `error.data`, and the validation issues of `BAD_REQUEST` errors.
/// The TypeScript type of what the client passes.
fn input_type(info: &TypeInfo, cfg: &ts_rs::Config) -> String {
    if info.is_unit() {
        "void".to_owned()
    } else if info.accepts_undefined() {
        format!("{} | undefined", info.ts_name(cfg))
    } else {
        info.ts_name(cfg)
    }
}

/// The TypeScript type of what the client receives.
fn output_type(info: &TypeInfo, cfg: &ts_rs::Config) -> String {
    if info.is_unit() {
        // `void` would become `never` on the client (trpc-types §3.3); the wire has `undefined`.
        "undefined".to_owned()
    } else {
        info.ts_name(cfg)
    }
}

/// One procedure as the router type declares it.
struct RenderedProcedure<'a> {
    kind: ProcedureKind,
    docs: Option<&'a str>,
    input: String,
    output: String,
    /// `TypedErrorShape<E>` for a procedure with a typed error type.
    error_shape: Option<String>,
}

/// A namespace level of the router tree.
#[derive(Default)]
struct Level<'a> {
    procedures: BTreeMap<&'a str, RenderedProcedure<'a>>,
    children: BTreeMap<&'a str, Level<'a>>,
}

fn jsdoc(out: &mut String, docs: &str, indent: &str) {
    let docs = docs.replace("*/", "*\\/");
    out.push_str(indent);
    out.push_str("/**\n");
    for line in docs.lines() {
        out.push_str(indent);
        out.push_str(" *");
        if !line.is_empty() {
            out.push(' ');
            out.push_str(line);
        }
        out.push('\n');
    }
    out.push_str(indent);
    out.push_str(" */\n");
}

fn render_level(out: &mut String, level: &Level<'_>, depth: usize) {
    let indent = "  ".repeat(depth);
    // Procedures and namespaces share one sorted key space.
    let mut keys: Vec<&str> = level
        .procedures
        .keys()
        .chain(level.children.keys())
        .copied()
        .collect();
    keys.sort_unstable();
    for key in keys {
        if let Some(procedure) = level.procedures.get(key) {
            let RenderedProcedure {
                kind,
                docs,
                input,
                output,
                error_shape,
            } = procedure;
            if let Some(docs) = docs {
                jsdoc(out, docs, &indent);
            }
            // Clients before 11.20 ignore `errorShape` (trpc-types §2).
            let error_shape = error_shape
                .as_ref()
                .map(|shape| format!("; errorShape: {shape}"))
                .unwrap_or_default();
            let alias = match kind {
                ProcedureKind::Mutation => "TRPCMutationProcedure",
                ProcedureKind::Subscription => "TRPCSubscriptionProcedure",
                _ => "TRPCQueryProcedure",
            };
            let _ = writeln!(
                out,
                "{indent}{key}: {alias}<{{ input: {input}; output: {output}; meta: object{error_shape} }}>;"
            );
        } else if let Some(child) = level.children.get(key) {
            let _ = writeln!(out, "{indent}{key}: {{");
            render_level(out, child, depth + 1);
            let _ = writeln!(out, "{indent}}};");
        }
    }
}

/// The oldest `@trpc/server` release the generated file must type-check with (the client's
/// `@trpc/server` peer, installed next to `@trpc/client`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum TrpcVersion {
    /// 11.4 and newer (the default): only the public `TRPC…` type names.
    #[default]
    Since11_4,
    /// 11.0 and newer: `TRPCBuiltRouter` and the error-code types, public only since 11.4, come
    /// from `@trpc/server/unstable-core-do-not-import` (what tRPC itself emits for them there).
    Since11_0,
}

/// Renders the router as `AppRouter.d.ts`. The same router always gives the same bytes.
pub fn render<Ctx>(router: &Router<Ctx>) -> Result<String, CodegenError> {
    render_for(router, TrpcVersion::default())
}

/// [`render`] for clients as old as `since`.
pub fn render_for<Ctx>(router: &Router<Ctx>, since: TrpcVersion) -> Result<String, CodegenError> {
    let cfg = ts_config();
    // `error.data` as the server sends it, declared from the runtime's own wire types.
    let wire_error_data = TypeInfo::error_data();
    let mut declarations: Vec<TsDeclaration> = wire_error_data.ts_declarations(&cfg);
    let mut root = Level::default();
    let error_data = router.error_data_type();
    let infos = router
        .procedures()
        .flat_map(|(_, p)| [Some(p.input()), Some(p.output()), p.error_type()])
        .flatten()
        .chain(error_data);
    for info in infos {
        for decl in info.ts_declarations(&cfg) {
            if let Some(existing) = declarations.iter().find(|d| d.ident == decl.ident) {
                if existing.type_id != decl.type_id {
                    return Err(CodegenError::NameClash {
                        ident: decl.ident,
                        first: existing.rust_name.to_owned(),
                        second: decl.rust_name.to_owned(),
                    });
                }
                continue;
            }
            if TAKEN.contains(&decl.ident.as_str()) {
                return Err(CodegenError::ReservedName {
                    ident: decl.ident,
                    rust_name: decl.rust_name.to_owned(),
                });
            }
            declarations.push(decl);
        }
    }
    let superjson = router.uses_superjson();
    let mut problems = Vec::new();
    let js_uses = router
        .procedures()
        .flat_map(|(_, p)| {
            [
                Some((p.input(), false)),
                Some((p.output(), false)),
                p.error_type().map(|e| (e, true)),
            ]
        })
        .flatten()
        .chain(error_data.map(|info| (info, true)));
    for (info, in_error) in js_uses {
        for problem in consistency::js_value_problems(info, in_error, superjson) {
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
    }
    let taken_data_keys = consistency::error_data_keys(&wire_error_data, error_data);
    for (path, procedure) in router.procedures() {
        if let Some(error) = procedure.error_type() {
            problems.extend(consistency::typed_error_problems(
                path,
                error,
                &taken_data_keys,
            ));
        }
    }
    let roles = router
        .procedures()
        .flat_map(|(_, p)| {
            [
                Some((p.input(), consistency::Role::Input)),
                Some((p.output(), consistency::Role::Output)),
                p.error_type().map(|e| (e, consistency::Role::Output)),
            ]
        })
        .flatten()
        .chain(error_data.map(|info| (info, consistency::Role::Output)))
        .chain([(&wire_error_data, consistency::Role::Output)]);
    for (info, role) in roles {
        if info.is_unit() {
            continue;
        }
        let schema = info.json_schema().to_value();
        for problem in consistency::check(
            &schema,
            &info.ts_name(&cfg),
            &info.ts_declarations(&cfg),
            role,
        ) {
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
    }
    if !problems.is_empty() {
        return Err(CodegenError::Disagreement { problems });
    }
    for (path, procedure) in router.procedures() {
        let mut segments: Vec<&str> = path.split('.').collect();
        let leaf = segments.pop().unwrap_or(path);
        let level = segments.into_iter().fold(&mut root, |level, segment| {
            level.children.entry(segment).or_default()
        });
        level.procedures.insert(
            leaf,
            RenderedProcedure {
                kind: procedure.kind(),
                docs: procedure.docs(),
                input: input_type(procedure.input(), &cfg),
                output: match procedure.kind() {
                    // Tracked events reach the client as `{ id, data }` (trpc-types §3.4).
                    ProcedureKind::Subscription if procedure.is_tracked() => format!(
                        "AsyncIterable<{{ id: string; data: {} }}, void, any>",
                        output_type(procedure.output(), &cfg)
                    ),
                    ProcedureKind::Subscription => {
                        format!(
                            "AsyncIterable<{}, void, any>",
                            output_type(procedure.output(), &cfg)
                        )
                    }
                    _ => output_type(procedure.output(), &cfg),
                },
                error_shape: procedure
                    .error_type()
                    .map(|e| format!("TypedErrorShape<{}>", e.ts_name(&cfg))),
            },
        );
    }
    let any_typed_errors = router.procedures().any(|(_, p)| p.error_type().is_some());
    declarations.sort_by(|a, b| a.ident.cmp(&b.ident));

    let mut body = String::new();
    body.push_str(match since {
        TrpcVersion::Since11_4 => {
            "import type {\n  TRPCBuiltRouter,\n  TRPCQueryProcedure,\n  TRPCMutationProcedure,\n  \
             TRPCSubscriptionProcedure,\n  TRPC_ERROR_CODE_KEY,\n  TRPC_ERROR_CODE_NUMBER,\n  inferRouterInputs,\n  inferRouterOutputs,\n\
             } from '@trpc/server';\n\n"
        }
        TrpcVersion::Since11_0 => {
            "import type {\n  TRPCQueryProcedure,\n  TRPCMutationProcedure,\n  TRPCSubscriptionProcedure,\n  \
             inferRouterInputs,\n  inferRouterOutputs,\n} from '@trpc/server';\n\
             // Public only since @trpc/server 11.4.\n\
             import type {\n  BuiltRouter as TRPCBuiltRouter,\n  TRPC_ERROR_CODE_KEY,\n  TRPC_ERROR_CODE_NUMBER,\n\
             } from '@trpc/server/unstable-core-do-not-import';\n\n"
        }
    });
    for decl in &declarations {
        body.push_str(&decl.code);
        body.push_str("\n\n");
    }
    let extra = error_data
        .map(|info| format!(" & {}", info.ts_name(&cfg)))
        .unwrap_or_default();
    let _ = write!(
        body,
        "/** The error shape clients receive (`TRPCClientError<AppRouter>['shape']`). */\n\
         export interface ErrorShape {{\n  message: string;\n  code: TRPC_ERROR_CODE_NUMBER;\n  \
         data: ErrorData{extra};\n}}\n\n"
    );
    if any_typed_errors {
        let _ = write!(
            body,
            "/**\n * The error shape of a procedure with a typed error `TError` (a Rust function returning\n \
             * `Result<T, E>` with `E: oxrpc::TypedError`): `TError`'s fields in `data` beside the usual\n \
             * ones, or the root shape for the procedure's other errors. `TError`'s keys are absent\n \
             * from the root branch, so checking its tag (`error.data?.kind === '…'`) narrows.\n \
             */\n\
             export type TypedErrorShape<TError> =\n  \
             | {{ message: string; code: TRPC_ERROR_CODE_NUMBER; data: ErrorData{extra} & TError }}\n  \
             | {{\n      message: string;\n      code: TRPC_ERROR_CODE_NUMBER;\n      \
             data: ErrorData{extra} & {{ [K in keyof TError]?: undefined }};\n    }};\n\n"
        );
    }
    let _ = write!(
        body,
        "export type AppRouter = TRPCBuiltRouter<\n  \
         {{ ctx: object; meta: object; errorShape: ErrorShape; transformer: {superjson} }},\n  {{\n",
    );
    render_level(&mut body, &root, 2);
    body.push_str("  }\n>;\n\n");
    body.push_str("export type RouterInputs = inferRouterInputs<AppRouter>;\n");
    body.push_str("export type RouterOutputs = inferRouterOutputs<AppRouter>;\n");

    let hash = Sha256::digest(body.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in hash {
        let _ = write!(hex, "{byte:02x}");
    }
    Ok(format!(
        "// Generated by oxrpc-codegen from the Rust router. Do not edit: change the Rust code and rebuild.\n\
         // content-hash: sha256:{hex}\n\n{body}"
    ))
}

/// The JSON Schema of every procedure's input and output, validation constraints included:
/// `{"procedures": {"user.byId": {"kind": "query", "description": …, "input": {…}, "output": {…}}}}`.
/// Each schema is self-contained (its own `$defs`); inputs describe what the server accepts,
/// outputs what it sends. Procedures without input have no `input` key; procedures with a
/// typed error type have an `error` key (the fields it adds to `error.data`).
pub fn json_schema<Ctx>(router: &Router<Ctx>) -> serde_json::Value {
    let mut procedures = serde_json::Map::new();
    for (path, procedure) in router.procedures() {
        let mut entry = serde_json::Map::new();
        entry.insert("kind".into(), procedure.kind().as_str().into());
        if let Some(docs) = procedure.docs() {
            entry.insert("description".into(), docs.into());
        }
        if !procedure.input().is_unit() {
            entry.insert("input".into(), procedure.input().json_schema().to_value());
        }
        entry.insert("output".into(), procedure.output().json_schema().to_value());
        if let Some(error) = procedure.error_type() {
            // What a typed error adds to `error.data`.
            entry.insert("error".into(), error.json_schema().to_value());
        }
        procedures.insert(path.to_owned(), entry.into());
    }
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "AppRouter",
        "procedures": procedures,
    })
}

/// [`json_schema`] as pretty-printed text (deterministic: keys are sorted).
pub fn render_json_schema<Ctx>(router: &Router<Ctx>) -> String {
    let mut text = serde_json::to_string_pretty(&json_schema(router)).unwrap_or_default();
    text.push('\n');
    text
}

/// Fails with [`CodegenError::Stale`] unless the file at `path` is exactly what the router
/// renders. Use it in CI (or a test) to catch a committed `.d.ts` that is out of date.
pub fn check<Ctx>(router: &Router<Ctx>, path: impl AsRef<Path>) -> Result<(), CodegenError> {
    let path = path.as_ref();
    let expected = render(router)?;
    let actual = std::fs::read_to_string(path).map_err(|source| CodegenError::Io {
        path: path.to_owned(),
        source,
    })?;
    if actual == expected {
        Ok(())
    } else {
        Err(CodegenError::Stale {
            path: path.to_owned(),
        })
    }
}

/// Writes `content` to `path` only if it differs, through a temporary file and a rename so
/// watchers never see a half-written file. Returns whether the file changed.
pub fn write_if_changed(path: impl AsRef<Path>, content: &str) -> Result<bool, CodegenError> {
    let path = path.as_ref();
    let io_err = |source| CodegenError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(existing) if existing == content => return Ok(false),
        _ => {}
    }
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("AppRouter.d.ts");
    let tmp = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, content).map_err(io_err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err(e)
    })?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxrpc::{Error, Procedure};

    mod a {
        #[derive(serde::Serialize, ts_rs::TS, schemars::JsonSchema)]
        pub(super) struct User {
            pub(super) id: u32,
        }
    }
    mod b {
        #[derive(serde::Serialize, ts_rs::TS, schemars::JsonSchema)]
        pub(super) struct User {
            pub(super) name: String,
        }
    }
    #[derive(serde::Serialize, ts_rs::TS, schemars::JsonSchema)]
    struct AppRouter {
        x: u8,
    }

    fn router() -> Router<()> {
        Router::new()
            .add(
                Procedure::query("one", |_: (), (): ()| async {
                    Ok::<_, Error>(a::User { id: 1 })
                })
                .describe("First.\nSecond */ line."),
            )
            .add(Procedure::mutation("two", |_: (), _: Option<u64>| async {
                Ok::<_, Error>(())
            }))
    }

    #[test]
    fn renders_inputs_outputs_and_docs() {
        let dts = render(&router()).expect("render");
        assert!(
            dts.contains("one: TRPCQueryProcedure<{ input: void; output: User; meta: object }>;"),
            "{dts}"
        );
        assert!(dts.contains("two: TRPCMutationProcedure<{ input: number | null | undefined; output: undefined; meta: object }>;"), "{dts}");
        assert!(dts.contains("     * Second *\\/ line.\n"), "{dts}");
        assert!(dts.contains("export type User = { id: number, };"), "{dts}");
        assert!(!dts.contains("bigint"), "{dts}");
    }

    #[test]
    fn clashing_type_names_are_reported() {
        let r = router().add(Procedure::query("three", |_: (), (): ()| async {
            Ok::<_, Error>(b::User {
                name: String::new(),
            })
        }));
        let err = render(&r).expect_err("clash");
        let text = err.to_string();
        assert!(
            text.contains("a::User") && text.contains("b::User"),
            "{text}"
        );
        let r = Router::<()>::new().add(Procedure::query("x", |_: (), (): ()| async {
            Ok::<_, Error>(AppRouter { x: 1 })
        }));
        assert!(matches!(render(&r), Err(CodegenError::ReservedName { .. })));
    }

    #[test]
    fn json_schema_export_has_constraints() {
        #[derive(serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
        struct In {
            #[schemars(length(min = 1, max = 64))]
            #[allow(dead_code)]
            name: String,
        }
        let r = Router::<()>::new().add(
            Procedure::query("greet", |_: (), _: In| async { Ok::<_, Error>(1u8) }).describe("Hi."),
        );
        let schema = json_schema(&r);
        let greet = &schema["procedures"]["greet"];
        assert_eq!(greet["kind"], "query");
        assert_eq!(greet["description"], "Hi.");
        assert_eq!(greet["input"]["properties"]["name"]["minLength"], 1);
        assert_eq!(greet["input"]["properties"]["name"]["maxLength"], 64);
        assert_eq!(greet["output"]["maximum"], 255);
        assert_eq!(render_json_schema(&r), render_json_schema(&r));
    }

    mod lies {
        #[derive(serde::Serialize, serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
        #[serde(transparent)]
        pub(crate) struct Wrapped {
            pub(crate) inner: u32,
        }

        #[derive(serde::Serialize, serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
        pub(crate) struct Skipped {
            #[serde(skip_serializing_if = "Option::is_none")]
            pub(crate) x: Option<u8>,
        }

        #[derive(serde::Serialize, serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
        pub(crate) struct Honest {
            #[serde(skip_serializing_if = "Option::is_none", default)]
            #[ts(optional)]
            pub(crate) x: Option<u8>,
        }
    }

    #[test]
    fn shapes_ts_rs_cannot_express_are_refused() {
        let r = Router::<()>::new().add(Procedure::query("w", |_: (), (): ()| async {
            Ok::<_, Error>(lies::Wrapped { inner: 1 })
        }));
        let text = render(&r).expect_err("transparent").to_string();
        assert!(
            text.contains("Wrapped") && text.contains("transparent"),
            "{text}"
        );

        let r = Router::<()>::new().add(Procedure::query("s", |_: (), (): ()| async {
            Ok::<_, Error>(lies::Skipped { x: None })
        }));
        let text = render(&r).expect_err("skip_serializing_if").to_string();
        assert!(text.contains("#[ts(optional)]"), "{text}");
        // As an input, the same type is fine: TypeScript is stricter than the server there.
        let r = Router::<()>::new().add(Procedure::query("s", |_: (), _: lies::Skipped| async {
            Ok::<_, Error>(())
        }));
        render(&r).expect("input role");

        let r = Router::<()>::new().add(Procedure::query("h", |_: (), h: lies::Honest| async {
            Ok::<_, Error>(h)
        }));
        render(&r).expect("honest");
    }

    mod typed {
        use oxrpc::{ErrorCode, TypedError};

        macro_rules! typed_error {
            ($name:ident) => {
                impl std::fmt::Display for $name {
                    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(stringify!($name))
                    }
                }
                impl TypedError for $name {
                    fn code(&self) -> ErrorCode {
                        ErrorCode::Conflict
                    }
                }
            };
        }

        #[derive(serde::Serialize, ts_rs::TS, schemars::JsonSchema)]
        #[serde(tag = "kind")]
        #[allow(dead_code)] // only its types are rendered
        pub(super) enum Good {
            SoldOut { stock: u32 },
            Closed,
        }
        typed_error!(Good);

        /// Serializes as a string: not an object.
        #[derive(serde::Serialize, ts_rs::TS, schemars::JsonSchema)]
        #[allow(dead_code)] // only its types are rendered
        pub(super) enum Untagged {
            A,
        }
        typed_error!(Untagged);

        #[derive(serde::Serialize, ts_rs::TS, schemars::JsonSchema)]
        pub(super) struct Clashing {
            pub(super) path: String,
        }
        typed_error!(Clashing);

        #[derive(serde::Serialize, ts_rs::TS, schemars::JsonSchema)]
        pub(super) struct Regional {
            pub(super) region: String,
        }
        typed_error!(Regional);
    }

    #[test]
    fn typed_errors_get_their_own_error_shape() {
        let r = Router::<()>::new()
            .add(
                Procedure::query("buy", |_: (), (): ()| async {
                    Err::<u8, Error>(typed::Good::Closed.into())
                })
                .errors::<typed::Good>(),
            )
            .add(Procedure::query("plain", |_: (), (): ()| async {
                Ok::<_, Error>(1u8)
            }));
        let text = render(&r).expect("renders");
        assert!(
            text.contains("buy: TRPCQueryProcedure<{ input: void; output: number; meta: object; errorShape: TypedErrorShape<Good> }>;"),
            "{text}"
        );
        assert!(
            text.contains(
                "plain: TRPCQueryProcedure<{ input: void; output: number; meta: object }>;"
            ),
            "{text}"
        );
        assert!(
            text.contains("export type TypedErrorShape<TError> ="),
            "{text}"
        );
        assert!(text.contains("export type Good = "), "{text}");
        let schema = json_schema(&r);
        assert!(schema["procedures"]["buy"]["error"].is_object());
        assert!(schema["procedures"]["plain"].get("error").is_none());
        // Without typed errors, the helper type is not emitted.
        let text = render(&router()).expect("renders");
        assert!(!text.contains("TypedErrorShape"), "{text}");
    }

    #[test]
    fn typed_errors_that_cannot_be_sent_as_data_are_refused() {
        let r = Router::<()>::new().add(
            Procedure::query("u", |_: (), (): ()| async { Ok::<_, Error>(1u8) })
                .errors::<typed::Untagged>(),
        );
        let text = render(&r).expect_err("not an object").to_string();
        assert!(text.contains("must serialize to a JSON object"), "{text}");
        let r = Router::<()>::new().add(
            Procedure::query("c", |_: (), (): ()| async { Ok::<_, Error>(1u8) })
                .errors::<typed::Clashing>(),
        );
        let text = render(&r).expect_err("reserved key").to_string();
        assert!(
            text.contains("field `path` clashes with oxrpc's own"),
            "{text}"
        );
        let r = Router::<()>::new()
            .add(
                Procedure::query("r", |_: (), (): ()| async { Ok::<_, Error>(1u8) })
                    .errors::<typed::Regional>(),
            )
            .error_formatter(|_: &Error, _: &oxrpc::ErrorInfo<'_>| typed::Regional {
                region: "eu".into(),
            });
        let text = render(&r).expect_err("formatter key").to_string();
        assert!(
            text.contains("field `region` clashes with the error formatter's"),
            "{text}"
        );
    }

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("oxrpc-codegen-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        dir
    }

    #[test]
    fn emit_writes_only_on_change_and_tolerates_a_missing_folder() {
        let dir = scratch("emit");
        let target = dir.join("AppRouter.d.ts");
        let out = dir.join("out");
        std::fs::create_dir_all(&out).expect("out");
        assert_eq!(
            build::emit_to(&router(), Some(&out), &target, false).expect("emit"),
            build::Emitted::Written
        );
        assert!(out.join("AppRouter.d.ts").is_file());
        let before = std::fs::metadata(&target)
            .and_then(|m| m.modified())
            .expect("mtime");
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            build::emit_to(&router(), None, &target, false).expect("emit"),
            build::Emitted::Unchanged
        );
        let after = std::fs::metadata(&target)
            .and_then(|m| m.modified())
            .expect("mtime");
        assert_eq!(before, after, "an unchanged file must not be touched");
        let leftovers = std::fs::read_dir(&dir)
            .expect("read")
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .count();
        assert_eq!(leftovers, 0);

        let missing = dir.join("no/such/folder/AppRouter.d.ts");
        assert_eq!(
            build::emit_to(&router(), None, &missing, false).expect("emit"),
            build::Emitted::FolderMissing
        );
        assert!(!missing.exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn check_mode_fails_on_a_stale_file() {
        let dir = scratch("check");
        let target = dir.join("AppRouter.d.ts");
        std::fs::write(&target, "// old\n").expect("write");
        let err = build::emit_to(&router(), None, &target, true).expect_err("stale");
        assert!(matches!(err, CodegenError::Stale { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(&target).expect("read"),
            "// old\n",
            "check mode must not write"
        );
        assert!(check(&router(), &target).is_err());
        build::emit_to(&router(), None, &target, false).expect("write");
        assert_eq!(
            build::emit_to(&router(), None, &target, true).expect("fresh"),
            build::Emitted::Fresh
        );
        check(&router(), &target).expect("fresh");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
