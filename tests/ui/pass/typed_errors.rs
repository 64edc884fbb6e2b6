//! A function's error type is declared on its procedure exactly when it is a `TypedError`,
//! through `Result<T, E>`, a `Result` alias, with middleware and for subscriptions.
use futures_util::Stream;
use oxrpc::{Error, ErrorCode, Router, TypedError, procedure};

#[derive(Debug, serde::Serialize, ts_rs::TS, schemars::JsonSchema)]
#[serde(tag = "kind")]
pub enum Refusal {
    Full,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("full")
    }
}

impl TypedError for Refusal {
    fn code(&self) -> ErrorCode {
        ErrorCode::Conflict
    }
}

/// Not typed: converts into `oxrpc::Error` by hand.
pub struct Plain;

impl From<Plain> for Error {
    fn from(_: Plain) -> Error {
        Error::forbidden()
    }
}

/// An alias the macro recognises (its last segment is `Result`), like `anyhow::Result<T>`.
pub mod refused {
    pub type Result<T> = core::result::Result<T, super::Refusal>;
}

#[procedure(mutation)]
pub async fn typed(n: u8) -> Result<u8, Refusal> {
    if n == 0 { Err(Refusal::Full) } else { Ok(n) }
}

#[procedure(query)]
pub async fn aliased() -> refused::Result<u8> {
    Ok(1)
}

#[procedure(query)]
pub async fn plain() -> Result<u8, Plain> {
    Err(Plain)
}

#[procedure(query)]
pub async fn framework() -> Result<u8, Error> {
    Ok(1)
}

#[procedure(subscription)]
pub async fn live() -> Result<impl Stream<Item = Result<u8, Error>>, Refusal> {
    Ok(futures_util::stream::iter([Ok(1), Err(Refusal::Full.into())]))
}

fn main() {
    let router: Router<()> = Router::new()
        .add(typed::procedure())
        .add(aliased::procedure())
        .add(plain::procedure())
        .add(framework::procedure())
        .add(live::procedure());
    let declared: Vec<(&str, bool)> = router
        .procedures()
        .map(|(path, p)| (path, p.error_type().is_some()))
        .collect();
    assert_eq!(
        declared,
        [("aliased", true), ("framework", false), ("live", true), ("plain", false), ("typed", true)]
    );
}
