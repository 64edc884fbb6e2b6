//! Query outputs streamed over JSONL (conformance-ideas §3.1: `deferred`, `iterQuery`).

use std::time::Duration;

use oxrpc::{Deferred, Error, ErrorCode, Router, Streamed, procedure};
use schemars::JsonSchema;
use serde::Serialize;
use ts_rs::TS;

use crate::Ctx;

/// What `deferred` returns: one field now, two later.
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct DeferredOut {
    /// Sent at once.
    pub now: u32,
    /// Resolves after 50 ms.
    pub later: Deferred<String>,
    /// Rejects after 80 ms with CONFLICT.
    pub failing: Deferred<String>,
}

/// `{now: 1, later: <after 50 ms "later-value">, failing: <after 80 ms CONFLICT>}`; only over
/// `httpBatchStreamLink`.
#[procedure(query)]
pub async fn deferred() -> DeferredOut {
    DeferredOut {
        now: 1,
        later: Deferred::new(async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Ok("later-value".to_owned())
        }),
        failing: Deferred::new(async {
            tokio::time::sleep(Duration::from_millis(80)).await;
            Err(Error::new(ErrorCode::Conflict, "deferred failed"))
        }),
    }
}

/// Yields 1 and 2, then ends; only over `httpBatchStreamLink`. (The reference procedure also
/// returns `"fin"`; oxrpc's streams end with `undefined`.)
#[procedure(query, name = "iterQuery")]
pub async fn iter_query() -> Streamed<u32> {
    Streamed::values(async_stream::stream! {
        yield 1;
        tokio::time::sleep(Duration::from_millis(10)).await;
        yield 2;
    })
}

/// Yields 1, then fails with CONFLICT "iteration failed".
#[procedure(query, name = "iterFails")]
pub async fn iter_fails() -> Streamed<u32> {
    Streamed::new(futures_util::stream::iter([
        Ok(1),
        Err(Error::new(ErrorCode::Conflict, "iteration failed")),
    ]))
}

/// The streamed-output part of the conformance router.
pub fn router() -> Router<Ctx> {
    Router::new()
        .add(deferred::procedure())
        .add(iter_query::procedure())
        .add(iter_fails::procedure())
}
