//! `types.*`: procedures that send real values of every wire-relevant Rust type, so the Node
//! harness can check that what `JSON.parse` yields is what the `.d.ts` says.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use oxrpc::{Error, Router, procedure};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;
use uuid::Uuid;

/// A unit-variant enum: a string union in TypeScript.
#[derive(Debug, Clone, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Some things.
    Member,
}

/// An internally tagged enum: a discriminated union.
#[derive(Debug, Clone, Serialize, Deserialize, TS, JsonSchema)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Shape {
    /// A circle.
    Circle {
        /// Its radius.
        radius: f64,
    },
    /// A rectangle.
    Rect {
        /// Width.
        w: f64,
        /// Height.
        h: f64,
    },
}

/// One value of each wire-relevant type.
#[derive(Debug, Clone, Serialize, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct Everything {
    /// i64 → number.
    pub big_signed: i64,
    /// u64 → number.
    pub big_unsigned: u64,
    /// f64 → number.
    pub ratio: f64,
    /// bool.
    pub flag: bool,
    /// chrono → RFC 3339 string.
    pub at: DateTime<Utc>,
    /// uuid → string.
    pub id: Uuid,
    /// Any JSON.
    pub extra: serde_json::Value,
    /// `Option` → `T | null`.
    pub maybe: Option<String>,
    /// Skipped when `None` → optional key.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[ts(optional)]
    pub nickname: Option<String>,
    /// Vec → array.
    pub tags: Vec<String>,
    /// Map → record.
    pub scores: BTreeMap<String, u32>,
    /// Enum → string union.
    pub role: Role,
    /// Tagged enum → discriminated union.
    pub shape: Shape,
    /// Tuple → tuple.
    pub pair: (u8, String),
}

/// Returns its input unchanged.
#[procedure(mutation)]
pub async fn round_trip(input: Everything) -> Everything {
    input
}

/// A fixed value with large and special numbers, built on the server.
#[procedure(query)]
pub async fn sample() -> Everything {
    Everything {
        big_signed: -9_007_199_254_740_991,
        big_unsigned: 9_007_199_254_740_991,
        ratio: 0.5,
        flag: true,
        at: DateTime::from_timestamp(1_704_164_645, 0).unwrap_or_default(),
        id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
        extra: serde_json::json!({"nested": [1, "two", null, {"three": 3.5}]}),
        maybe: None,
        nickname: None,
        tags: vec!["a".into(), "b".into()],
        scores: BTreeMap::from([("x".to_owned(), 1)]),
        role: Role::Admin,
        shape: Shape::Rect { w: 2.0, h: 3.0 },
        pair: (7, "seven".into()),
    }
}

/// Returns nothing: the client gets `undefined`.
#[procedure(mutation)]
pub async fn nothing(_input: String) {}

/// Takes an optional input: callable with or without an argument.
#[procedure(query)]
pub async fn optional(input: Option<u32>) -> Option<u32> {
    input.map(|n| n + 1)
}

/// A list of tagged enums.
#[procedure(query)]
pub async fn shapes() -> Result<Vec<Shape>, Error> {
    Ok(vec![
        Shape::Circle { radius: 1.0 },
        Shape::Rect { w: 1.0, h: 2.0 },
    ])
}

/// The `types` namespace.
pub fn router<Ctx: Send + 'static>() -> Router<Ctx> {
    Router::new()
        .add(round_trip::procedure())
        .add(sample::procedure())
        .add(nothing::procedure())
        .add(optional::procedure())
        .add(shapes::procedure())
}
