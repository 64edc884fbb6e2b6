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
pub mod bus;
mod call;
mod context;
mod decode;
mod deferred;
mod dispatch;
mod error;
mod guard;
mod idle;
pub mod js;
mod middleware;
mod procedure;
mod protocol;
mod request_body;
mod router;
mod serde_error;
mod server;
pub mod service;
mod subscription;
mod transport;
pub mod types;
pub mod upload;
pub mod validate;

pub use bus::EventBus;
pub use call::{Call, Meta, ProcedureKind, Reply};
pub use context::{RequestInfo, ResponseHeaders, TransportKind};
pub use deferred::{Deferred, Streamed};
pub use error::{Error, ErrorCode, TypedError};
pub use middleware::{Layer, Middleware, Next};
pub use oxrpc_macros::procedure;
pub use procedure::Procedure;
pub use protocol::error::ErrorInfo;
pub use router::{IntoProcedure, Router, RouterError};
pub use server::{Listening, Server, ServerHandle};
#[doc(hidden)]
pub use subscription::Wire;
pub use subscription::{Event, Tracked};
pub use types::{Input, Output};
pub use validate::{Issue, PathSegment, UnknownFields};

/// Entry points for the fuzz targets (`fuzz/`): the wire parsers and encoders, which are
/// otherwise private. Not public API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod __fuzz {
    use bytestring::ByteString;
    use serde_json::value::RawValue;

    use crate::call::InputText;
    use crate::protocol::{envelope, http, input, sse, ws};

    /// HTTP request parsing: the path and query of a request, its input text, its headers.
    pub fn http_request(path: &str, query: &str, body: &str, content_type: &str, accept: &str) {
        let mut headers = ::http::HeaderMap::new();
        if let Ok(v) = ::http::HeaderValue::from_str(content_type) {
            headers.insert(::http::header::CONTENT_TYPE, v);
        }
        if let Ok(v) = ::http::HeaderValue::from_str(accept) {
            headers.insert("trpc-accept", v);
        }
        let _ = http::check_content_type(headers.get(::http::header::CONTENT_TYPE));
        for separator in ['.', '~'] {
            if let Ok(target) = http::parse_target(path, Some(query), &headers, separator) {
                if let Ok(inputs) = http::parse_inputs(&ByteString::from(body), &target) {
                    assert_eq!(inputs.len(), target.paths.len(), "one input per call");
                    for input in &inputs {
                        let _ = input::check_depth(input);
                    }
                }
                let _ = target.input.map(|i| input::parse(&ByteString::from(i)));
            }
        }
    }

    /// WebSocket frames: split into messages, each parsed; connection params.
    pub fn ws_frame(text: &str) {
        let _ = ws::connection_params(text);
        let _ = ws::pending_calls(text);
        let frame = ByteString::from(text);
        if let Ok(messages) = ws::split_frame(&frame) {
            for message in messages {
                if let Ok(ws::Request::Call {
                    input,
                    last_event_id,
                    ..
                }) = ws::parse_message(message)
                    && let input = input.map(|raw| InputText::within(&frame, raw.get()))
                    && input::check_depth(&input).is_ok()
                {
                    let _ = input::merge_last_event_id(input, last_event_id.as_deref());
                }
            }
        }
    }

    /// superjson inputs (spec §4.1): decoding never panics, and a value decoded as itself
    /// (`js::Value`) encodes to an envelope that decodes to the same value again (the second
    /// round trip is exact; the first may cut a date's precision to milliseconds).
    pub fn superjson(text: &str) {
        use crate::protocol::superjson;
        let Ok(raw) = serde_json::from_str::<&RawValue>(text) else {
            return;
        };
        let raw = InputText::written(raw.get().to_owned());
        // The dispatcher refuses deeper inputs before decoding them.
        if input::check_depth(&Some(raw.clone())).is_err() {
            return;
        }
        let _ = superjson::decode_input(&raw);
        let Ok(Some(first)) = crate::js::Value::from_superjson(raw.get()) else {
            return;
        };
        // Sets and maps add a level while encoding: a value at the depth limit may not encode.
        let Ok(once) = superjson::encode(&first) else {
            return;
        };
        let once = once.envelope();
        let second = crate::js::Value::from_superjson(once.get())
            .expect("what the server encodes decodes")
            .expect("a defined value stays defined");
        let twice = superjson::encode(&second)
            .expect("a value that encoded once encodes again")
            .envelope();
        assert_eq!(once.get(), twice.get(), "superjson round trip");
    }

    /// The SSE and JSONL encoders: what they write decodes back to the same data and id.
    pub fn encoders_round_trip(json: &str, id: &str) {
        let Ok(data) = serde_json::from_str::<Box<RawValue>>(json) else {
            return;
        };
        let expected: serde_json::Value = match serde_json::from_str(data.get()) {
            Ok(value) => value,
            // Too deep for a tree: the encoders splice text, nothing to compare.
            Err(_) => return,
        };
        // SSE: the `data:` lines of the event, joined as EventSource joins them.
        let usable_id = !id.is_empty() && !id.contains(['\0', '\r', '\n']);
        let event = sse::data(data.get(), usable_id.then_some(id), None);
        assert!(event.ends_with("\n\n"), "an event ends with a blank line");
        let mut lines = Vec::new();
        let mut seen_id = None;
        for line in event.trim_end_matches('\n').split('\n') {
            if let Some(value) = line.strip_prefix("data: ") {
                lines.push(value);
            } else if let Some(value) = line.strip_prefix("id: ") {
                seen_id = Some(value);
            } else {
                panic!("unexpected SSE line {line:?}");
            }
        }
        let decoded: serde_json::Value =
            serde_json::from_str(&lines.join("\n")).expect("SSE data is JSON");
        assert_eq!(decoded, expected, "SSE data round trip");
        assert_eq!(seen_id, usable_id.then_some(id), "SSE id round trip");
        // JSONL: a settled chunk is one line of JSON holding the data.
        let line = envelope::jsonl_settled(7, data.get());
        assert_eq!(line.matches('\n').count(), 1, "one line");
        let chunk: serde_json::Value = serde_json::from_str(&line).expect("JSONL line is JSON");
        assert_eq!(chunk[2][0][0], expected, "JSONL round trip");
    }
}

/// Re-exports for the code `#[procedure]` generates. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::call::BoxFuture;
    pub use crate::procedure::{Encode, Encoder, HandleFn, Io, Types, failed, types};

    /// Turns a handler's `Result<T, E>` into `Result<T, oxrpc::Error>`.
    pub fn into_result<T, E: Into<crate::Error>>(result: Result<T, E>) -> Result<T, crate::Error> {
        result.map_err(Into::into)
    }

    /// The error type of an async function returning `Result<T, E>` with no parameter (also
    /// through aliases such as `anyhow::Result<T>`, and with `impl Trait` in `T`).
    #[inline(always)]
    pub fn error_type_of0<F, Fut, T, E>(_: &F) -> ErrorTypeOf<E>
    where
        F: FnOnce() -> Fut,
        Fut: core::future::Future<Output = Result<T, E>>,
    {
        ErrorTypeOf::new()
    }

    /// [`error_type_of0`] for one parameter.
    #[inline(always)]
    pub fn error_type_of1<F, A, Fut, T, E>(_: &F) -> ErrorTypeOf<E>
    where
        F: FnOnce(A) -> Fut,
        Fut: core::future::Future<Output = Result<T, E>>,
    {
        ErrorTypeOf::new()
    }

    /// [`error_type_of0`] for two parameters.
    #[inline(always)]
    pub fn error_type_of2<F, A, B, Fut, T, E>(_: &F) -> ErrorTypeOf<E>
    where
        F: FnOnce(A, B) -> Fut,
        Fut: core::future::Future<Output = Result<T, E>>,
    {
        ErrorTypeOf::new()
    }

    /// Declares a function's error type on its procedure when it is a [`crate::TypedError`]
    /// (autoref dispatch: [`Typed`] is found first when it applies, [`Untyped`] otherwise).
    pub struct ErrorTypeOf<E>(core::marker::PhantomData<E>);

    impl<E> ErrorTypeOf<E> {
        /// The probe for `E`.
        #[inline(always)]
        pub fn new() -> Self {
            ErrorTypeOf(core::marker::PhantomData)
        }
    }

    impl<E> Default for ErrorTypeOf<E> {
        fn default() -> Self {
            Self::new()
        }
    }

    /// The error type is a [`crate::TypedError`]: the procedure declares it.
    pub trait Typed {
        /// Declares the error type.
        fn declare<Ctx: 'static>(&self, p: crate::Procedure<Ctx>) -> crate::Procedure<Ctx>;
    }
    impl<E: crate::TypedError> Typed for ErrorTypeOf<E> {
        fn declare<Ctx: 'static>(&self, p: crate::Procedure<Ctx>) -> crate::Procedure<Ctx> {
            p.errors::<E>()
        }
    }

    /// Any other error type (`oxrpc::Error`, `anyhow::Error`, …): nothing to declare.
    pub trait Untyped {
        /// Leaves the procedure as it is.
        fn declare<Ctx: 'static>(&self, p: crate::Procedure<Ctx>) -> crate::Procedure<Ctx>;
    }
    impl<E> Untyped for &ErrorTypeOf<E> {
        fn declare<Ctx: 'static>(&self, p: crate::Procedure<Ctx>) -> crate::Procedure<Ctx> {
            p
        }
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
