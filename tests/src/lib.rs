//! The conformance router of `spec/conformance-ideas.md` §3.1 (queries and mutations), served by
//! the `conformance-server` binary and driven by the Node harness with the real `@trpc/client`.
//!
//! Deliberate differences from the reference tRPC server, each tested:
//! - `boom` panics with "kaboom"; clients get `INTERNAL_SERVER_ERROR` with the message
//!   "Internal server error" (the panic text stays on the server outside dev mode).
//! - `echo`/`echoMut` take `Option<serde_json::Value>`, so `null` and "no input" both come
//!   back as `{}` (in Rust both are `None`).

use std::collections::BTreeMap;

use oxrpc::{Error, ErrorCode, ErrorInfo, RequestInfo, Router, procedure};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

pub mod auth;
pub mod live;
pub mod pages;
pub mod redis_server;
pub mod sj;
pub mod streamed;
pub mod typed;
pub mod uploads;
pub mod validated;
pub mod wire;

/// The context of the conformance server.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// The `authorization` header, if sent.
    pub authorization: Option<String>,
    /// The client's `connectionParams`, if sent.
    pub connection_params: Option<BTreeMap<String, String>>,
}

/// Builds the context from the request.
pub async fn create_context(info: RequestInfo) -> Result<Ctx, Error> {
    if info.header("x-panic-context").is_some() {
        panic!("create_context panicked (x-panic-context)");
    }
    if info.header("x-fail-context").is_some() {
        return Err(Error::new(
            ErrorCode::Forbidden,
            "context refused by x-fail-context",
        ));
    }
    Ok(Ctx {
        authorization: info.header("authorization").map(str::to_owned),
        connection_params: info.connection_params().cloned(),
    })
}

/// Returns "hello world".
#[procedure(query)]
pub async fn hello() -> &'static str {
    "hello world"
}

/// Input of `greet`.
#[derive(Debug, Deserialize, TS, JsonSchema)]
pub struct GreetInput {
    /// Who to greet.
    pub name: String,
    /// How many times (default 1).
    #[serde(default)]
    #[ts(optional)]
    pub times: Option<u32>,
}

/// Output of `greet`.
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct Greeting {
    /// "hi " + name.
    pub text: String,
    /// The times asked for, or 1.
    pub times: u32,
}

/// Greets someone.
#[procedure(query)]
pub async fn greet(input: GreetInput) -> Greeting {
    Greeting {
        text: format!("hi {}", input.name),
        times: input.times.unwrap_or(1),
    }
}

/// What `echo` returns.
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct Echoed {
    /// The input, absent when none was sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub input: Option<serde_json::Value>,
}

/// Returns its input.
#[procedure(query)]
pub async fn echo(input: Option<serde_json::Value>) -> Echoed {
    Echoed { input }
}

/// Returns its input (as a mutation).
#[procedure(mutation, name = "echoMut")]
pub async fn echo_mutation(input: Option<serde_json::Value>) -> Echoed {
    Echoed { input }
}

/// `{ ok: true }`.
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct Ok {
    /// Always true.
    pub ok: bool,
}

/// Reached as `nested.deep.q`.
#[procedure(query, name = "q")]
pub async fn deep_q() -> Ok {
    Ok { ok: true }
}

/// Input of `addPost`.
#[derive(Debug, Deserialize, TS, JsonSchema)]
pub struct NewPost {
    /// At least one character.
    pub title: String,
}

/// A stored post.
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct Post {
    /// Always 1.
    pub id: u32,
    /// The title sent.
    pub title: String,
}

/// Adds a post.
#[procedure(mutation)]
pub async fn add_post(input: NewPost) -> Result<Post, Error> {
    if input.title.is_empty() {
        return Err(Error::bad_request(
            "title: must be at least 1 character long",
        ));
    }
    Result::Ok(Post {
        id: 1,
        title: input.title,
    })
}

/// Returns "done".
#[procedure(mutation)]
pub async fn no_input_mut() -> &'static str {
    "done"
}

/// Fails with NOT_FOUND "thing not found".
#[procedure(query)]
pub async fn not_found() -> Result<String, Error> {
    Err(Error::not_found("thing not found"))
}

/// Fails with UNAUTHORIZED and no message.
#[procedure(query)]
pub async fn unauthorized() -> Result<String, Error> {
    Err(Error::unauthorized())
}

/// Fails with NOT_IMPLEMENTED "nope".
#[procedure(query)]
pub async fn not_impl() -> Result<String, Error> {
    Err(Error::new(ErrorCode::NotImplemented, "nope"))
}

/// Panics with "kaboom".
#[procedure(query)]
pub async fn boom() -> String {
    panic!("kaboom")
}

/// What `slow` returns.
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct Waited {
    /// Milliseconds slept.
    pub waited: u64,
}

/// Sleeps `ms` milliseconds (at most 10 s).
#[procedure(query)]
pub async fn slow(ms: u64) -> Result<Waited, Error> {
    if ms > 10_000 {
        return Err(Error::bad_request("slow sleeps at most 10000 ms"));
    }
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    Result::Ok(Waited { waited: ms })
}

/// What `ctx` returns.
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct CtxInfo {
    /// The client's connectionParams, or null.
    #[serde(rename = "connectionParams")]
    #[ts(rename = "connectionParams")]
    pub connection_params: Option<BTreeMap<String, String>>,
    /// The authorization header, or null.
    #[serde(rename = "hasAuth")]
    #[ts(rename = "hasAuth")]
    pub has_auth: Option<String>,
}

/// Reports what the context saw.
#[procedure(query)]
pub async fn ctx(ctx: &Ctx) -> CtxInfo {
    CtxInfo {
        connection_params: ctx.connection_params.clone(),
        has_auth: ctx.authorization.clone(),
    }
}

/// The contract router (queries and mutations of conformance-ideas §3.1), plus `types.*`
/// (real values of every wire-relevant Rust type), `validated.*` (input constraints) and the
/// middleware procedures of [`auth`]. Every procedure runs behind the [`auth::Audit`]
/// middleware, and errors carry `data.retryable` from the error formatter.
pub fn router() -> Router<Ctx> {
    with_root_settings(
        contract()
            .add(echo::procedure())
            .add(echo_mutation::procedure()),
    )
}

/// The same router with the superjson transformer (profile `superjson`): `echo`/`echoMut`
/// take any value there, and [`sj::router`]'s procedures join.
pub fn superjson_router() -> Router<Ctx> {
    with_root_settings(contract().merge(sj::router())).superjson()
}

/// The middleware and error formatter of every profile.
fn with_root_settings(router: Router<Ctx>) -> Router<Ctx> {
    router
        .with(auth::Audit)
        .error_formatter(|error: &Error, _: &ErrorInfo<'_>| ErrorExtra {
            retryable: error.code().http_status() >= 500,
        })
}

/// The contract procedures but `echo`/`echoMut`.
fn contract() -> Router<Ctx> {
    Router::new()
        .add(hello::procedure())
        .add(greet::procedure())
        .nest(
            "nested",
            Router::new().nest("deep", Router::new().add(deep_q::procedure())),
        )
        .add(add_post::procedure())
        .add(no_input_mut::procedure())
        .add(not_found::procedure())
        .add(unauthorized::procedure())
        .add(not_impl::procedure())
        .add(boom::procedure())
        .add(slow::procedure())
        .add(ctx::procedure())
        .nest("types", wire::router())
        .nest("validated", validated::router())
        .nest("numbers", pages::router())
        .merge(auth::router())
        .merge(live::router())
        .merge(streamed::router())
        .merge(uploads::router())
        .merge(typed::router())
}

/// What the conformance router's error formatter adds to `error.data`.
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct ErrorExtra {
    /// Whether retrying may help (a 5xx error).
    pub retryable: bool,
}
