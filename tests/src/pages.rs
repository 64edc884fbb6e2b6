//! `numbers.page`: a cursor-paginated query, the shape tRPC's infinite queries expect
//! (`useInfiniteQuery`, `infiniteQueryOptions`): the client adds `cursor` and `direction`.

use oxrpc::{Router, procedure};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// Which way an infinite query is fetching.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The next page.
    #[default]
    Forward,
    /// The previous page.
    Backward,
}

/// Input of `numbers.page`.
#[derive(Debug, Deserialize, TS, JsonSchema)]
pub struct PageInput {
    /// Items per page (1 to 50, default 10).
    #[serde(default)]
    #[ts(optional)]
    #[schemars(range(min = 1, max = 50))]
    pub limit: Option<u32>,
    /// Where the page starts (forward) or ends (backward); `null` or absent: the start.
    #[serde(default)]
    #[ts(optional)]
    pub cursor: Option<u32>,
    /// Set by the client when it fetches the previous page.
    #[serde(default)]
    #[ts(optional)]
    pub direction: Option<Direction>,
}

/// One page of the numbers 0 to 99.
#[derive(Debug, Serialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NumberPage {
    /// The numbers on this page.
    pub items: Vec<u32>,
    /// The cursor of the next page, `null` after the last.
    pub next_cursor: Option<u32>,
    /// The cursor of the previous page, `null` before the first.
    pub prev_cursor: Option<u32>,
}

const TOTAL: u32 = 100;

/// The numbers 0 to 99, a page at a time.
#[procedure(query)]
pub async fn page(input: PageInput) -> NumberPage {
    let limit = input.limit.unwrap_or(10);
    let cursor = input.cursor.unwrap_or(0).min(TOTAL);
    let (start, end) = match input.direction.unwrap_or_default() {
        Direction::Forward => (cursor, (cursor + limit).min(TOTAL)),
        Direction::Backward => (cursor.saturating_sub(limit), cursor),
    };
    NumberPage {
        items: (start..end).collect(),
        next_cursor: (end < TOTAL).then_some(end),
        prev_cursor: (start > 0).then_some(start),
    }
}

/// The `numbers` namespace.
pub fn router<Ctx: Send + 'static>() -> Router<Ctx> {
    Router::new().add(page::procedure())
}
