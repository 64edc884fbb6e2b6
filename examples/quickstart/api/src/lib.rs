//! The quickstart's API crate: types, procedures and the router.
//!
//! The server crate (`../server`) serves this router, and its build script turns it into
//! `../web/src/generated/AppRouter.d.ts` for the TypeScript client in `../web`.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use futures_util::Stream;
use oxrpc::{
    Call, Error, EventBus, Middleware, Next, Reply, RequestInfo, Router, Tracked, procedure,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// A user of the demo app.
#[derive(Debug, Clone, Serialize, Deserialize, TS, JsonSchema)]
pub struct User {
    /// Unique id.
    pub id: u32,
    /// Display name.
    pub name: String,
    /// Email address, if known.
    pub email: Option<String>,
    /// Who created this user.
    pub created_by: String,
}

/// The in-memory user store (a real app would hold a database pool here), and the bus that
/// tells `user.onCreated` subscribers about new users.
#[derive(Debug, Clone)]
pub struct Db {
    users: Arc<RwLock<BTreeMap<u32, User>>>,
    created: EventBus<User>,
}

impl Default for Db {
    /// An empty store whose events stay in this process.
    fn default() -> Self {
        Db::with_events(EventBus::new(1000))
    }
}

/// What every procedure receives: the store, and who is calling.
#[derive(Debug, Clone)]
pub struct AppCtx {
    /// The store.
    pub db: Db,
    /// The caller's name, from `Authorization: Bearer <name>` (a stand-in for real auth).
    pub caller: Option<String>,
}

impl Db {
    /// An empty store publishing its events on `created`: e.g.
    /// `EventBus::redis(&redis, "users")` to share them with the other instances of the
    /// server (`--redis` of the quickstart server).
    pub fn with_events(created: EventBus<User>) -> Self {
        Db {
            users: Arc::default(),
            created,
        }
    }

    /// Builds the context of one request.
    pub fn context(
        &self,
        info: &RequestInfo,
    ) -> impl Future<Output = Result<AppCtx, Error>> + Send + use<> {
        let caller = info
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::to_owned);
        let db = self.clone();
        async move { Ok(AppCtx { db, caller }) }
    }
}

/// Input of `greet`.
#[derive(Debug, Deserialize, TS, JsonSchema)]
pub struct GreetInput {
    /// Who to greet.
    pub name: String,
}

/// Output of `greet`.
#[derive(Debug, Serialize, TS, JsonSchema)]
pub struct Greeting {
    /// The greeting.
    pub greeting: String,
}

/// Says hello.
#[procedure(query)]
pub async fn greet(input: GreetInput) -> Greeting {
    Greeting {
        greeting: format!("hello, {}!", input.name),
    }
}

/// Who the server thinks is calling (`null` without an `Authorization` header).
#[procedure(query)]
pub async fn whoami(ctx: &AppCtx) -> Option<String> {
    ctx.caller.clone()
}

/// Input of `user.byId`.
#[derive(Debug, Deserialize, TS, JsonSchema)]
pub struct UserId {
    /// The user's id.
    pub id: u32,
}

/// One user, or NOT_FOUND.
#[procedure(query)]
pub async fn by_id(ctx: &AppCtx, input: UserId) -> Result<User, Error> {
    let users = ctx
        .db
        .users
        .read()
        .map_err(|_| Error::internal("user store poisoned"))?;
    users
        .get(&input.id)
        .cloned()
        .ok_or_else(|| Error::not_found(format!("no user with id {}", input.id)))
}

/// Every user, by id.
#[procedure(query)]
pub async fn list(ctx: &AppCtx) -> Result<Vec<User>, Error> {
    let users = ctx
        .db
        .users
        .read()
        .map_err(|_| Error::internal("user store poisoned"))?;
    Ok(users.values().cloned().collect())
}

/// Input of `user.create`: the constraints are checked before the procedure runs.
#[derive(Debug, Deserialize, TS, JsonSchema)]
pub struct NewUser {
    /// Display name, 1 to 64 characters.
    #[schemars(length(min = 1, max = 64))]
    pub name: String,
    /// Email address, optional.
    #[serde(default)]
    #[ts(optional)]
    #[schemars(email)]
    pub email: Option<String>,
}

/// The context of signed-in callers: only [`RequireUser`] provides it.
#[derive(Debug, Clone)]
pub struct Authed {
    /// The store.
    pub db: Db,
    /// Who is calling.
    pub user: String,
}

/// Lets signed-in callers through (UNAUTHORIZED otherwise) and tells procedures who they are.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequireUser;

impl Middleware for RequireUser {
    type In = AppCtx;
    type Out = Authed;

    async fn call(&self, ctx: AppCtx, _call: &Call, next: Next<Authed>) -> Result<Reply, Error> {
        let user = ctx
            .caller
            .ok_or_else(|| Error::unauthorized().with_message("sign in to do this"))?;
        next.run(Authed { db: ctx.db, user }).await
    }
}

/// Creates a user. Only signed-in callers may: the compiler makes sure `RequireUser` runs.
#[procedure(mutation, use = RequireUser)]
pub async fn create(ctx: &Authed, input: NewUser) -> Result<User, Error> {
    let user = {
        let mut users = ctx
            .db
            .users
            .write()
            .map_err(|_| Error::internal("user store poisoned"))?;
        let id = users.keys().next_back().map_or(1, |last| last + 1);
        let user = User {
            id,
            name: input.name,
            email: input.email,
            created_by: ctx.user.clone(),
        };
        users.insert(id, user.clone());
        user
    };
    // Every `user.onCreated` subscriber hears about it, on every instance sharing the bus.
    ctx.db.created.publish(user.clone()).await?;
    Ok(user)
}

/// Input of `user.onCreated`: the client fills `lastEventId` in when it reconnects.
#[derive(Debug, Default, Deserialize, TS, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Resume {
    /// The id of the last event this client received.
    #[serde(default)]
    #[ts(optional)]
    pub last_event_id: Option<String>,
}

/// Every user created from now on; after a reconnect, first the ones created meanwhile.
#[procedure(subscription)]
pub async fn on_created(
    ctx: &AppCtx,
    input: Option<Resume>,
) -> impl Stream<Item = Result<Tracked<User>, Error>> + use<> {
    let last = input.unwrap_or_default().last_event_id;
    ctx.db.created.subscribe(last.as_deref()).await
}

/// The API: `greet`, `whoami` and the `user` namespace.
pub fn router() -> Router<AppCtx> {
    Router::new()
        .add(greet::procedure())
        .add(whoami::procedure())
        .nest(
            "user",
            Router::new()
                .add(by_id::procedure())
                .add(list::procedure())
                .add(create::procedure())
                .add(on_created::procedure()),
        )
}
