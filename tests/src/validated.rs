//! `validated.*`: inputs with constraints declared once, on the Rust types.

use std::collections::BTreeMap;

use oxrpc::{Router, procedure};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A postal address.
#[derive(Debug, Deserialize, TS, JsonSchema)]
pub struct Address {
    /// At least 2 characters.
    #[schemars(length(min = 2))]
    pub city: String,
    /// Five digits.
    #[schemars(regex(pattern = r"^\d{5}$"))]
    pub zip: String,
}

/// How to reach the user.
#[derive(Debug, Deserialize, TS, JsonSchema)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Contact {
    /// By email.
    Email {
        /// An email address.
        #[schemars(email)]
        address: String,
    },
    /// By phone.
    Phone {
        /// 6 to 15 digits.
        #[schemars(regex(pattern = r"^\+?\d{6,15}$"))]
        number: String,
    },
}

/// A ten-field input with constraints on most fields.
#[derive(Debug, Deserialize, TS, JsonSchema)]
pub struct Signup {
    /// 1 to 32 characters.
    #[schemars(length(min = 1, max = 32))]
    pub name: String,
    /// An email address.
    #[schemars(email)]
    pub email: String,
    /// 13 to 130.
    #[schemars(range(min = 13, max = 130))]
    pub age: u8,
    /// A URL, optional.
    #[schemars(url)]
    #[serde(default)]
    #[ts(optional)]
    pub homepage: Option<String>,
    /// Lowercase letters and digits, 3 to 16.
    #[schemars(regex(pattern = r"^[a-z0-9]{3,16}$"))]
    pub handle: String,
    /// 1 to 5 tags of at least 2 characters each.
    #[schemars(length(min = 1, max = 5), inner(length(min = 2)))]
    pub tags: Vec<String>,
    /// Where they live.
    pub address: Address,
    /// How to reach them.
    pub contact: Contact,
    /// Scores between 0 and 100.
    pub scores: BTreeMap<String, Score>,
    /// Must contain "agree".
    #[schemars(contains(pattern = "agree"))]
    pub terms: String,
}

/// A score: 0 to 100.
#[derive(Debug, Deserialize, TS, JsonSchema)]
pub struct Score(#[schemars(range(min = 0, max = 100))] pub u32);

/// What `validated.signup` returns.
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct Welcome {
    /// The name signed up.
    pub name: String,
    /// How many tags were given.
    pub tags: usize,
}

/// Accepts a valid signup (every constraint is checked before this runs).
#[procedure(mutation)]
pub async fn signup(input: Signup) -> Welcome {
    Welcome {
        name: input.name,
        tags: input.tags.len(),
    }
}

/// An output that breaks its own schema (`n` is at most 10).
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct Bounded {
    /// At most 10 — but the procedure sends 99.
    #[schemars(range(max = 10))]
    pub n: u32,
}

/// Returns an output its schema forbids: dev mode's output validation catches it.
#[procedure(query)]
pub async fn bad_output() -> Bounded {
    Bounded { n: 99 }
}

/// The `validated` namespace.
pub fn router<Ctx: Send + 'static>() -> Router<Ctx> {
    Router::new()
        .add(signup::procedure())
        .add(bad_output::procedure())
}
