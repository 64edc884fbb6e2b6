//! `cargo build` writes the TypeScript declaration of the API for the web app.

fn main() {
    oxrpc_codegen::build::emit(&chat_api::router(), "../web/src/generated/AppRouter.d.ts");
}
