//! # oxrpc — tRPC for Rust
//!
//! Write async Rust functions, mark them `#[procedure]`, put them in a [`Router`], serve it
//! with [`Server`], and call it from TypeScript with the official `@trpc/client`, fully typed
//! by the `AppRouter.d.ts` that `oxrpc-codegen` writes at `cargo build`.
//!
//! ```
//! use oxrpc::{procedure, Error, Router, Server};
//!
//! #[derive(serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
//! pub struct GreetInput {
//!     pub name: String,
//! }
//!
//! #[derive(serde::Serialize, serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
//! pub struct Greeting {
//!     pub text: String,
//! }
//!
//! /// Says hello.
//! #[procedure(query)]
//! pub async fn greet(input: GreetInput) -> Greeting {
//!     Greeting { text: format!("hello, {}!", input.name) }
//! }
//!
//! pub fn router() -> Router<()> {
//!     Router::new().add(greet::procedure())
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! // The function is still an ordinary function…
//! assert_eq!(greet(GreetInput { name: "Rust".into() }).await.text, "hello, Rust!");
//! // …and a procedure, reachable at `/trpc/greet`.
//! let out: Greeting = router().call((), "greet", &serde_json::json!({"name": "tRPC"})).await?;
//! assert_eq!(out.text, "hello, tRPC!");
//! # let listening = Server::new(router()).bind("127.0.0.1:0").await.unwrap();
//! # assert_ne!(listening.local_addr().port(), 0);
//! # Ok::<(), Error>(()) }).unwrap();
//! ```
//!
//! ## What `#[procedure]` expands to
//!
//! The function stays exactly as written. Beside it the macro adds a hidden struct of the
//! same name (structs live in the type namespace, so the two do not clash) whose
//! `procedure()` builds the [`Procedure`] by hand, as you could yourself:
//!
//! ```text
//! pub async fn greet(input: GreetInput) -> Greeting { /* unchanged */ }
//!
//! pub struct greet {}
//! impl greet {
//!     pub fn procedure<Ctx: Send + 'static>() -> oxrpc::Procedure<Ctx> {
//!         oxrpc::Procedure::query::<GreetInput, Greeting, _, _>("greet", |_ctx: Ctx, input| async move {
//!             Ok(greet(input).await)
//!         })
//!         .describe("Says hello.")
//!     }
//! }
//! ```
//!
//! Parameters: a reference parameter (`ctx: &AppCtx`) is the context, a by-value parameter
//! is the input; both are optional, the context comes first. The procedure's name is the
//! function's name in lowerCamelCase (`by_id` → `byId`) unless `name = "…"` says otherwise.

#[allow(unused_extern_crates)]
extern crate self as oxrpc;

mod body;
mod bus;
mod call;
mod context;
mod deferred;
mod dispatch;
mod error;
mod guard;
mod middleware;
mod procedure;
mod protocol;
mod router;
mod server;
pub mod service;
mod subscription;
mod transport;
pub mod types;
pub mod validate;

pub use bus::EventBus;
pub use call::{Call, Meta, ProcedureKind, Reply};
pub use context::{RequestInfo, TransportKind};
pub use deferred::{Deferred, Streamed};
pub use error::{Error, ErrorCode};
pub use middleware::{Layer, Middleware, Next};
pub use oxrpc_macros::procedure;
pub use procedure::Procedure;
pub use protocol::error::ErrorInfo;
pub use router::{IntoProcedure, Router, RouterError};
pub use server::{Listening, Server, ServerHandle};
pub use subscription::{Event, Tracked};
pub use types::{Input, Output};
pub use validate::{Issue, PathSegment, UnknownFields};

/// Re-exports for the code `#[procedure]` generates. Not public API.
#[doc(hidden)]
pub mod __private {
    /// Turns a handler's `Result<T, E>` into `Result<T, oxrpc::Error>`.
    pub fn into_result<T, E: Into<crate::Error>>(result: Result<T, E>) -> Result<T, crate::Error> {
        result.map_err(Into::into)
    }

    /// What a subscription function returns.
    #[diagnostic::on_unimplemented(
        message = "`{Self}` is not a stream of events",
        label = "a subscription returns `impl Stream<Item = T>` (or `Tracked<T>`, or `Result`s of them)",
        note = "build one with `futures_util::stream::iter`, `async_stream::stream!`, or `oxrpc::EventBus::subscribe`"
    )]
    pub trait SubscriptionStream: futures_util::Stream {}
    impl<S: futures_util::Stream> SubscriptionStream for S {}

    /// Wraps every item of a plain event stream in `Ok`.
    pub fn ok_stream<S: SubscriptionStream>(
        stream: S,
    ) -> impl futures_util::Stream<Item = Result<S::Item, crate::Error>> {
        futures_util::StreamExt::map(stream, Ok)
    }

    /// Stands in for a procedure the macro could not build (its errors are reported instead).
    pub fn unbuildable<Ctx>() -> crate::Procedure<Ctx> {
        unreachable!("a #[procedure] with compile errors cannot be built")
    }
}
