#!/usr/bin/env python3
"""Generates a big API workspace for compile-time measurements (issue 15).

    bench/big-api/generate.py OUT_DIR [--procedures 1000] [--baseline [serve]] [--crates N]
                              [--ts-rs-macros DIR]

OUT_DIR gets a Cargo workspace of its own (`api/`, and `server/` whose build script writes
the `.d.ts`) shaped like a real app: PROCEDURES procedures across 20 namespaces (every
fourth with a nested `admin` router), one input struct each (3 to 8 fields), PROCEDURES / 5
output models with enums, internally tagged unions, maps, arrays and options, and a generic
`Page<T>`. With --baseline the same types and functions are generated with the same serde /
ts-rs / schemars derives but without `#[procedure]`, a router or a server: what the crate costs
without oxrpc. `--baseline serve` adds what any JSON server of these functions compiles
without oxrpc: per procedure, a hand-written handler that reads its input with `serde_json`,
awaits it and writes its output, and a table of the handlers by path (one crate only).
With --crates N the same API is laid out as the README recommends for big APIs:
`models/` (the shared output models), N area crates `area0/`…, each holding every N-th
namespace and its routers, and `api/`, which only nests the areas' routers into one
(`big_api::router()`, what the server and its build script use). Deterministic: the same
arguments give the same files. Dependencies point at this repository by path. Nothing
generated is committed.

bench/big-api/measure runs the measurements.
"""

import argparse
import json
import os
import textwrap

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
NAMESPACES = 20
FIELD_TYPES = [
    ("u32", "{i}"),
    ("String", "format!(\"v{i}\")"),
    ("bool", "{i} % 2 == 0"),
    ("f64", "{i} as f64 / 2.0"),
    ("Option<String>", "None"),
    ("Vec<u32>", "vec![{i}]"),
    ("i64", "-{i}"),
    ("Option<u64>", "Some({i})"),
]


def model(k):
    return f"""
/// Output model {k}.
#[derive(Debug, Clone, Serialize, Deserialize, TS, JsonSchema)]
pub struct Model{k} {{
    /// Identifier.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// Labels.
    pub tags: Vec<String>,
    /// An optional score.
    pub score: Option<f64>,
    /// Free-form attributes.
    pub attrs: BTreeMap<String, String>,
    /// What kind of thing it is.
    pub kind: Kind{k},
    /// Its state.
    pub state: State{k},
}}

/// Kinds of model {k}.
#[derive(Debug, Clone, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Kind{k} {{
    /// One.
    Alpha,
    /// Two.
    Beta,
    /// Three.
    Gamma,
}}

/// States of model {k}: a tagged union.
#[derive(Debug, Clone, Serialize, Deserialize, TS, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum State{k} {{
    /// Waiting.
    Pending {{ since: u64 }},
    /// Done.
    Done {{ at: u64, by: String }},
    /// Gone.
    Archived,
}}

impl Model{k} {{
    /// A sample value.
    pub fn sample(id: u64) -> Self {{
        Model{k} {{
            id,
            name: format!("model {k} #{{id}}"),
            tags: vec!["a".into()],
            score: Some(1.5),
            attrs: BTreeMap::new(),
            kind: Kind{k}::Beta,
            state: State{k}::Pending {{ since: id }},
        }}
    }}
}}
"""


def input_struct(n):
    count = 3 + n % 6
    fields = []
    for j in range(count):
        ty, _ = FIELD_TYPES[(n + j) % len(FIELD_TYPES)]
        fields.append(f"    /// Field {j}.\n    pub f{j}: {ty},")
    return (
        f"\n/// Input of procedure {n}.\n"
        "#[derive(Debug, Clone, Serialize, Deserialize, TS, JsonSchema)]\n"
        f"pub struct Input{n} {{\n" + "\n".join(fields) + "\n}\n"
    )


def procedure(n, models, baseline):
    """The procedure's function (baseline: False, "derives" or "serve")."""
    k = n % models
    kind = ["query", "mutation", "query", "query"][n % 4]
    paged = n % 3 == 0
    output = f"Page<Model{k}>" if paged else f"Model{k}"
    body = (
        f"Page {{ items: vec![Model{k}::sample(input.f0_id())], next_cursor: None }}"
        if paged
        else f"Model{k}::sample(input.f0_id())"
    )
    attr = "" if baseline else f"#[procedure({kind})]\n"
    handler = "" if baseline != "serve" else (
        f"\n/// The JSON handler of procedure {n}.\n"
        f"pub fn handle_{n}(text: &str) -> Result<crate::Pending, serde_json::Error> {{\n"
        f"    let input: Input{n} = serde_json::from_str(text)?;\n"
        f"    Ok(Box::pin(async move {{\n"
        f"        proc_{n}(input).await.map(|output| serde_json::to_vec(&output).expect(\"serializable\"))\n"
        f"    }}))\n}}\n"
    )
    return (
        f"\n/// Procedure {n}.\n{attr}"
        f"pub async fn proc_{n}(input: Input{n}) -> Result<{output}, Error> {{\n"
        f"    Ok({body})\n}}\n"
    ) + handler


def f0_id_impl(n):
    ty, _ = FIELD_TYPES[n % len(FIELD_TYPES)]
    expr = {
        "u32": "u64::from(self.f0)",
        "String": "self.f0.len() as u64",
        "bool": "u64::from(self.f0)",
        "f64": "self.f0 as u64",
        "Option<String>": "self.f0.as_ref().map_or(0, |s| s.len() as u64)",
        "Vec<u32>": "self.f0.len() as u64",
        "i64": "self.f0.unsigned_abs()",
        "Option<u64>": "self.f0.unwrap_or(0)",
    }[ty]
    return f"impl Input{n} {{\n    fn f0_id(&self) -> u64 {{\n        {expr}\n    }}\n}}\n"


def header(error_import, extra=()):
    return [
        "//! A generated API (bench/big-api/generate.py).",
        "#![allow(missing_docs, clippy::all)]",
        "use std::collections::BTreeMap;",
        "use schemars::JsonSchema;",
        "use serde::{Deserialize, Serialize};",
        "use ts_rs::TS;",
        f"use oxrpc::{{{error_import}}};",
        *extra,
        "",
    ]


PAGE = [
    "/// A page of items.",
    "#[derive(Debug, Clone, Serialize, Deserialize, TS, JsonSchema)]",
    "pub struct Page<T> {",
    "    /// The items.",
    "    pub items: Vec<T>,",
    "    /// Where the next page starts.",
    "    pub next_cursor: Option<String>,",
    "}",
]


SERVE = [
    "/// A handler's pending output, as JSON.",
    "pub type Pending = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, Error>> + Send>>;",
    "/// A procedure's JSON handler.",
    "pub type Handler = fn(&str) -> Result<Pending, serde_json::Error>;",
]


def ns_of(n):
    return n % NAMESPACES


def admin_of(n):
    return ns_of(n) % 4 == 0 and (n // NAMESPACES) % 2 == 1


def namespace(ns, procedures, models, baseline):
    """The module of one namespace: its inputs and procedures, and its nested admin module."""
    lines = [f"\npub mod ns{ns} {{\n    use super::*;\n"]
    for n in range(procedures):
        if ns_of(n) == ns and not admin_of(n):
            lines.append(textwrap.indent(input_struct(n) + f0_id_impl(n) + procedure(n, models, baseline), "    "))
    if any(ns_of(n) == ns and admin_of(n) for n in range(procedures)):
        lines.append("\n    pub mod admin {\n        use super::*;\n")
        for n in range(procedures):
            if ns_of(n) == ns and admin_of(n):
                lines.append(textwrap.indent(input_struct(n) + f0_id_impl(n) + procedure(n, models, baseline), "        "))
        lines.append("    }\n")
    lines.append("}\n")
    return lines


def namespace_router(ns, procedures, prefix=""):
    """`Router::new()…` of one namespace (procedures at `{prefix}ns{ns}::…`)."""
    adds = "".join(
        f".add({prefix}ns{ns}::proc_{n}::procedure())" for n in range(procedures) if ns_of(n) == ns and not admin_of(n)
    )
    admin = "".join(
        f".add({prefix}ns{ns}::admin::proc_{n}::procedure())" for n in range(procedures) if ns_of(n) == ns and admin_of(n)
    )
    nested = f'.nest("admin", Router::new(){admin})' if admin else ""
    return f"Router::new(){adds}{nested}"


def package(out, directory, name, deps):
    os.makedirs(os.path.join(out, directory, "src"), exist_ok=True)
    with open(os.path.join(out, directory, "Cargo.toml"), "w") as f:
        f.write(textwrap.dedent(f"""\
            [package]
            name = "{name}"
            version = "0.1.0"
            edition = "2024"
            publish = false

            [dependencies]
            """) + "".join(f"{d}\n" for d in deps))


COMMON_DEPS = ["oxrpc.workspace = true", "serde.workspace = true", "ts-rs.workspace = true",
               "schemars.workspace = true"]


def generate(out, procedures, baseline, crates=1, ts_rs_macros=None):
    models = max(1, procedures // 5)
    error_import = "Error" if baseline else "Error, Router, procedure"
    areas = [f"area{a}" for a in range(crates)] if crates > 1 else []
    with open(os.path.join(out if os.makedirs(out, exist_ok=True) is None else out, "Cargo.toml"), "w") as f:
        members = ["api"] + ([] if baseline else ["server"]) + (["models"] + areas if areas else [])
        f.write(textwrap.dedent(f"""\
            [workspace]
            resolver = "3"
            members = {json.dumps(members)}

            [workspace.dependencies]
            oxrpc = {{ path = "{REPO}/runtime" }}
            oxrpc-codegen = {{ path = "{REPO}/codegen" }}
            serde = {{ version = "1", features = ["derive"] }}
            ts-rs = {{ version = "12", features = ["serde-json-impl"] }}
            schemars = "1"
            serde_json = "1"
            tokio = {{ version = "1", features = ["rt-multi-thread", "macros"] }}
            """))
        if not baseline:
            # What the README recommends when a build script renders the .d.ts: build
            # scripts' dependencies built like the server's, so the API is compiled once.
            f.write("\n[profile.dev.build-override]\ndebug = true\n")
        if ts_rs_macros:
            # ts-rs-macros 12.0.1 emits each type's `visit_dependencies` in a random order on
            # every run (fixed upstream, Aleph-Alpha/ts-rs#488, not released yet): every
            # codegen unit holding one is rebuilt on every edit. This measures a fixed copy.
            f.write(f'\n[patch.crates-io]\nts-rs-macros = {{ path = "{os.path.abspath(ts_rs_macros)}" }}\n')
    if not areas:
        package(out, "api", "big-api", COMMON_DEPS + (["serde_json.workspace = true"] if baseline == "serve" else []))
        lines = header(error_import) + PAGE
        if baseline == "serve":
            lines += SERVE
        for k in range(models):
            lines.append(model(k))
        for ns in range(NAMESPACES):
            lines += namespace(ns, procedures, models, baseline)
        if baseline == "serve":
            lines.append("\n/// The JSON handlers by path.\npub fn handlers() -> Vec<(&'static str, Handler)> {\n    vec![")
            for n in range(procedures):
                module = f"ns{ns_of(n)}::admin" if admin_of(n) else f"ns{ns_of(n)}"
                lines.append(f'        ("{module.replace("::", ".")}.proc_{n}", {module}::handle_{n} as Handler),')
            lines.append("    ]\n}\n")
        if not baseline:
            lines.append("\n/// The whole API.\npub fn router() -> Router<()> {\n    Router::new()")
            for ns in range(NAMESPACES):
                lines.append(f'        .nest("ns{ns}", {namespace_router(ns, procedures)})')
            lines.append("}\n")
        with open(os.path.join(out, "api", "src", "lib.rs"), "w") as f:
            f.write("\n".join(lines))
    else:
        package(out, "models", "big-models", COMMON_DEPS)
        lines = header("Error") + PAGE
        lines[1] = "#![allow(missing_docs, unused_imports, clippy::all)]"
        for k in range(models):
            lines.append(model(k))
        with open(os.path.join(out, "models", "src", "lib.rs"), "w") as f:
            f.write("\n".join(lines))
        for a, area in enumerate(areas):
            package(out, area, f"big-{area}", COMMON_DEPS + ['big-models = { path = "../models" }'])
            lines = header(error_import, ["use big_models::*;"])
            lines[1] = "#![allow(missing_docs, unused_imports, clippy::all)]"
            mine = [ns for ns in range(NAMESPACES) if ns % crates == a]
            for ns in mine:
                lines += namespace(ns, procedures, models, baseline)
            if not baseline:
                for ns in mine:
                    lines.append(f"\n/// Namespace ns{ns}.\npub fn router_ns{ns}() -> Router<()> {{\n"
                                 f"    {namespace_router(ns, procedures)}\n}}\n")
            with open(os.path.join(out, area, "src", "lib.rs"), "w") as f:
                f.write("\n".join(lines))
        package(out, "api", "big-api", ["oxrpc.workspace = true"] +
                [f'big-{area} = {{ path = "../{area}" }}' for area in areas])
        lines = ["//! A generated API (bench/big-api/generate.py): the areas' routers, nested."]
        if not baseline:
            lines += ["use oxrpc::Router;", "", "/// The whole API.", "pub fn router() -> Router<()> {",
                      "    Router::new()"]
            for ns in range(NAMESPACES):
                lines.append(f'        .nest("ns{ns}", big_area{ns % crates}::router_ns{ns}())')
            lines.append("}\n")
        with open(os.path.join(out, "api", "src", "lib.rs"), "w") as f:
            f.write("\n".join(lines) + "\n")

    if baseline:
        return
    server = os.path.join(out, "server")
    os.makedirs(os.path.join(server, "src"), exist_ok=True)
    with open(os.path.join(server, "Cargo.toml"), "w") as f:
        f.write(textwrap.dedent("""\
            [package]
            name = "big-server"
            version = "0.1.0"
            edition = "2024"
            publish = false

            [dependencies]
            big-api = { path = "../api" }
            oxrpc.workspace = true
            tokio.workspace = true

            [build-dependencies]
            big-api = { path = "../api" }
            oxrpc-codegen.workspace = true
            """))
    with open(os.path.join(server, "build.rs"), "w") as f:
        f.write('fn main() {\n    oxrpc_codegen::build::emit(&big_api::router(), "AppRouter.d.ts");\n}\n')
    with open(os.path.join(server, "src", "main.rs"), "w") as f:
        f.write(textwrap.dedent("""\
            #[tokio::main]
            async fn main() {
                let listening = oxrpc::Server::new(big_api::router()).bind("127.0.0.1:0").await.expect("bind");
                println!("listening on http://{}", listening.local_addr());
            }
            """))




def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    parser.add_argument("--procedures", type=int, default=1000)
    parser.add_argument("--baseline", nargs="?", const="derives", choices=["derives", "serve"],
                        help="no oxrpc: the derives only, or (serve) with hand-written JSON handlers")
    parser.add_argument("--crates", type=int, default=1, help="area crates (1: one API crate)")
    parser.add_argument("--ts-rs-macros", metavar="DIR",
                        help="patch ts-rs-macros with this checkout (e.g. one with ts-rs#488)")
    args = parser.parse_args()
    if args.baseline == "serve" and args.crates > 1:
        parser.error("--baseline serve generates one crate (no --crates)")
    generate(args.out, args.procedures, args.baseline, args.crates, args.ts_rs_macros)


if __name__ == "__main__":
    main()
