//! `cargo build` writes the TypeScript declaration of the API for the web client.

fn main() {
    oxrpc_codegen::build::emit(
        &quickstart_api::router(),
        "../web/src/generated/AppRouter.d.ts",
    );
}
