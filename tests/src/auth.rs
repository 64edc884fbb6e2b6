//! Context refinement and around middleware: `secret`, `whoami`, `admin.ban`, `private.me`,
//! `limited` and the `audit.log` of what the `Audit` middleware saw.
//!
//! `Authorization: ABC` signs in as the member `abc`; `Authorization: ADMIN` as the admin
//! `root`. Anything else is anonymous.

use std::collections::{HashMap, VecDeque};
use std::sync::{LazyLock, Mutex};

use oxrpc::{Call, Error, ErrorCode, Middleware, Next, Reply, Router, procedure};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::Ctx;

/// A signed-in caller's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, TS, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UserRole {
    /// Ordinary user.
    Member,
    /// May ban.
    Admin,
}

/// The refined context: only reachable through [`RequireUser`].
#[derive(Debug, Clone)]
pub struct Authed {
    /// Who is calling.
    pub user: String,
    /// Their role.
    pub role: UserRole,
}

/// `Ctx` → `Authed`, or UNAUTHORIZED.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequireUser;

impl Middleware for RequireUser {
    type In = Ctx;
    type Out = Authed;

    async fn call(&self, ctx: Ctx, _call: &Call, next: Next<Authed>) -> Result<Reply, Error> {
        // The upgrade request's (or HTTP request's) header, else the `token` connection param.
        let token = ctx.authorization.as_deref().or_else(|| {
            ctx.connection_params
                .as_ref()
                .and_then(|p| p.get("token"))
                .map(String::as_str)
        });
        let authed = match token {
            Some("ABC") => Authed {
                user: "abc".into(),
                role: UserRole::Member,
            },
            Some("ADMIN") => Authed {
                user: "root".into(),
                role: UserRole::Admin,
            },
            _ => {
                return Err(
                    Error::unauthorized().with_message("sign in with the Authorization header")
                );
            }
        };
        next.run(authed).await
    }
}

/// Meta: the role a procedure requires.
#[derive(Debug, Clone, Copy)]
pub struct RequiresRole(pub UserRole);

/// Checks [`RequiresRole`] meta against the caller's role: FORBIDDEN otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequireRole;

impl Middleware for RequireRole {
    type In = Authed;
    type Out = Authed;

    async fn call(&self, ctx: Authed, call: &Call, next: Next<Authed>) -> Result<Reply, Error> {
        if let Some(RequiresRole(role)) = call.meta().get::<RequiresRole>()
            && ctx.role != *role
        {
            return Err(Error::forbidden()
                .with_message(format!("`{}` requires the {role:?} role", call.path())));
        }
        next.run(ctx).await
    }
}

/// The admin base: signed in, and the role the meta asks for.
pub type AdminBase = (RequireUser, RequireRole);

/// Meta: at most this many calls per input `key`.
#[derive(Debug, Clone, Copy)]
pub struct Limit(pub u32);

static COUNTS: LazyLock<Mutex<HashMap<String, u32>>> = LazyLock::new(Mutex::default);

/// Around middleware: counts calls per (path, input) and short-circuits past the [`Limit`].
#[derive(Debug, Clone, Copy, Default)]
pub struct RateLimit;

impl Middleware for RateLimit {
    type In = Ctx;
    type Out = Ctx;

    async fn call(&self, ctx: Ctx, call: &Call, next: Next<Ctx>) -> Result<Reply, Error> {
        if let Some(Limit(limit)) = call.meta().get::<Limit>() {
            let key = format!("{}:{}", call.path(), call.input().unwrap_or(""));
            let count = {
                let mut counts = COUNTS
                    .lock()
                    .map_err(|_| Error::internal("rate limiter poisoned"))?;
                let count = counts.entry(key).or_insert(0);
                *count += 1;
                *count
            };
            if count > *limit {
                return Err(Error::new(
                    ErrorCode::TooManyRequests,
                    format!("at most {limit} calls; this was call {count}"),
                ));
            }
        }
        next.run(ctx).await
    }
}

/// What the audit middleware saw of one call.
#[derive(Debug, Clone, Serialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct AuditEntry {
    /// The full path.
    pub path: String,
    /// `query` or `mutation`.
    pub kind: String,
    /// The raw input, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[ts(optional)]
    pub input: Option<serde_json::Value>,
    /// Whether the call succeeded.
    pub ok: bool,
    /// The error code, when it failed.
    pub error_code: Option<String>,
    /// The output JSON, when it succeeded with one.
    pub output: Option<String>,
    /// Milliseconds the rest of the chain took.
    pub millis: u64,
}

static AUDIT: LazyLock<Mutex<VecDeque<AuditEntry>>> = LazyLock::new(Mutex::default);

/// Around middleware over the whole router: records path, kind, input, result and timing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Audit;

impl Middleware for Audit {
    type In = Ctx;
    type Out = Ctx;

    async fn call(&self, ctx: Ctx, call: &Call, next: Next<Ctx>) -> Result<Reply, Error> {
        let started = std::time::Instant::now();
        let result = next.run(ctx).await;
        let entry = AuditEntry {
            path: call.path().to_owned(),
            kind: call.kind().as_str().to_owned(),
            input: call.input().and_then(|i| serde_json::from_str(i).ok()),
            ok: result.is_ok(),
            error_code: result.as_ref().err().map(|e| e.code().as_str().to_owned()),
            output: result
                .as_ref()
                .ok()
                .and_then(|r| r.json().map(str::to_owned)),
            millis: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        };
        if let Ok(mut log) = AUDIT.lock() {
            if log.len() == 200 {
                log.pop_front();
            }
            log.push_back(entry);
        }
        result
    }
}

/// Succeeds only when signed in.
#[procedure(mutation, use = RequireUser)]
pub async fn secret(ctx: &Authed) -> String {
    format!("access granted to {}", ctx.user)
}

/// What `whoami` reports.
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct WhoAmI {
    /// Whether the caller is signed in.
    pub authenticated: bool,
    /// Who, if signed in.
    pub user: Option<String>,
}

/// Whether the caller is authenticated (no middleware: anyone may ask).
#[procedure(query)]
pub async fn whoami(ctx: &Ctx) -> WhoAmI {
    let user = match ctx.authorization.as_deref() {
        Some("ABC") => Some("abc".to_owned()),
        Some("ADMIN") => Some("root".to_owned()),
        _ => None,
    };
    WhoAmI {
        authenticated: user.is_some(),
        user,
    }
}

/// Input of `admin.ban`.
#[derive(Debug, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[ts(rename_all = "camelCase")]
pub struct BanInput {
    /// Who to ban.
    #[schemars(length(min = 1))]
    pub user_id: String,
}

/// Bans a user: admins only (a reusable stack plus meta).
#[procedure(mutation, use = AdminBase, meta = RequiresRole(UserRole::Admin))]
pub async fn ban(ctx: &Authed, input: BanInput) -> String {
    format!("{} banned {}", ctx.user, input.user_id)
}

/// What `private.me` returns.
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct Me {
    /// Who.
    pub user: String,
    /// Their role.
    pub role: UserRole,
}

/// The caller (in a router whose every procedure sits behind `RequireUser`).
#[procedure(query)]
pub async fn me(ctx: &Authed) -> Me {
    Me {
        user: ctx.user.clone(),
        role: ctx.role,
    }
}

/// Input of `limited`.
#[derive(Debug, Deserialize, TS, JsonSchema)]
pub struct LimitedInput {
    /// Calls are counted per key.
    pub key: String,
}

/// Rate limited: 3 calls per key.
#[procedure(query, use = RateLimit, meta = Limit(3))]
pub async fn limited(input: LimitedInput) -> String {
    input.key
}

/// Input of `audit.log`.
#[derive(Debug, Deserialize, TS, JsonSchema)]
pub struct AuditQuery {
    /// Only entries whose path is this.
    pub path: String,
}

/// What the audit middleware recorded for `path` (latest last).
#[procedure(query)]
pub async fn log(input: AuditQuery) -> Result<Vec<AuditEntry>, Error> {
    let log = AUDIT
        .lock()
        .map_err(|_| Error::internal("audit log poisoned"))?;
    Ok(log
        .iter()
        .filter(|e| e.path == input.path)
        .cloned()
        .collect())
}

/// The middleware part of the conformance router.
pub fn router() -> Router<Ctx> {
    Router::new()
        .add(secret::procedure())
        .add(whoami::procedure())
        .add(limited::procedure())
        .nest("admin", Router::new().add(ban::procedure()))
        .nest(
            "private",
            Router::<Authed>::new()
                .add(me::procedure())
                .with(RequireUser),
        )
        .nest("audit", Router::new().add(log::procedure()))
}
