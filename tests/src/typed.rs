//! Typed per-procedure errors (conformance-ideas §3.1 `typedErr`, `onTypedErr`): a function
//! returning `Result<T, Refusal>` declares `Refusal` as its procedure's error type.
//!
//! One deliberate difference from the contract: the `bare` case cannot drop `httpStatus` and
//! `path` from `data`. A typed error adds its fields to oxrpc's standard `error.data`, never
//! replaces it, so the generated types can promise those fields on every error.

use futures_util::Stream;
use oxrpc::{Error, ErrorCode, TypedError, procedure};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Which outcome `typedErr` produces.
#[derive(Debug, Clone, Copy, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum TypedErrKind {
    /// Success: `{ ok: true }`.
    Ok,
    /// CONFLICT "sold out", typed (`reason: "sold-out"`, `stock: 0`).
    Conflict,
    /// FORBIDDEN "no", in the root shape.
    Forbidden,
    /// PRECONDITION_FAILED "bare shape", typed (`reason: "bare"`).
    Bare,
}

/// Input of `typedErr`.
#[derive(Debug, Deserialize, TS, JsonSchema)]
pub struct TypedErrInput {
    /// The outcome asked for.
    pub kind: TypedErrKind,
}

/// What `typedErr` returns when asked for success.
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct TypedOk {
    /// Always `true`.
    pub ok: bool,
}

/// The error type of `typedErr` and `onTypedErr`: what the client can switch on through
/// `error.data.reason`.
#[derive(Debug, Serialize, TS, JsonSchema)]
#[serde(tag = "reason")]
pub enum Refusal {
    /// Nothing left to sell (CONFLICT).
    #[serde(rename = "sold-out")]
    SoldOut {
        /// What is left: 0.
        stock: u32,
    },
    /// A precondition failed (PRECONDITION_FAILED).
    #[serde(rename = "bare")]
    Bare,
    /// The input was invalid (BAD_REQUEST, its validation issues kept): added by
    /// [`TypedError::adopt`] to the procedure's own validation errors.
    #[serde(rename = "bad-input")]
    BadInput,
    /// Anything else: sent as this error, in the root shape.
    #[serde(skip)]
    #[ts(skip)]
    #[schemars(skip)]
    Other(Error),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::SoldOut { .. } => f.write_str("sold out"),
            Refusal::Bare => f.write_str("bare shape"),
            Refusal::BadInput => f.write_str("bad input"),
            Refusal::Other(e) => f.write_str(e.message()),
        }
    }
}

impl TypedError for Refusal {
    fn code(&self) -> ErrorCode {
        match self {
            Refusal::SoldOut { .. } => ErrorCode::Conflict,
            Refusal::Bare => ErrorCode::PreconditionFailed,
            Refusal::BadInput => ErrorCode::BadRequest,
            Refusal::Other(e) => e.code(),
        }
    }

    fn untyped(&self) -> Option<Error> {
        match self {
            Refusal::Other(e) => Some(e.clone()),
            _ => None,
        }
    }

    fn adopt(error: &Error) -> Option<Self> {
        error.issues().map(|_| Refusal::BadInput)
    }
}

/// `ok` → `{ ok: true }`; `conflict` → CONFLICT "sold out" (typed); `bare` →
/// PRECONDITION_FAILED "bare shape" (typed); `forbidden` → FORBIDDEN "no" (root shape);
/// invalid input → BAD_REQUEST with `reason: "bad-input"` added.
#[procedure(query, name = "typedErr")]
pub async fn typed_err(input: TypedErrInput) -> Result<TypedOk, Refusal> {
    match input.kind {
        TypedErrKind::Ok => Ok(TypedOk { ok: true }),
        TypedErrKind::Conflict => Err(Refusal::SoldOut { stock: 0 }),
        TypedErrKind::Bare => Err(Refusal::Bare),
        TypedErrKind::Forbidden => Err(Refusal::Other(Error::new(ErrorCode::Forbidden, "no"))),
    }
}

/// Yields "before-typed", then ends with CONFLICT "sold out" in the typed shape.
#[procedure(subscription, name = "onTypedErr")]
pub async fn on_typed_err() -> Result<impl Stream<Item = Result<String, Error>>, Refusal> {
    Ok(futures_util::stream::iter([
        Ok("before-typed".to_owned()),
        Err(Refusal::SoldOut { stock: 0 }.into()),
    ]))
}

/// The typed-error procedures.
pub fn router<Ctx: Send + 'static>() -> oxrpc::Router<Ctx> {
    oxrpc::Router::new()
        .add(typed_err::procedure())
        .add(on_typed_err::procedure())
}
