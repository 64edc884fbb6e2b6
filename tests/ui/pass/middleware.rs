use oxrpc::{Call, Error, Middleware, Next, Reply, Router, procedure};

#[derive(Clone, Default)]
pub struct AppCtx {
    pub token: Option<String>,
}

pub struct Authed {
    pub user: String,
}

#[derive(Clone, Copy, Default)]
pub struct RequireUser;

impl Middleware for RequireUser {
    type In = AppCtx;
    type Out = Authed;
    async fn call(&self, ctx: AppCtx, _call: &Call, next: Next<Authed>) -> Result<Reply, Error> {
        let user = ctx.token.ok_or_else(Error::unauthorized)?;
        next.run(Authed { user }).await
    }
}

pub struct Admin(pub &'static str);

#[derive(Clone, Copy, Default)]
pub struct RequireAdmin;

impl Middleware for RequireAdmin {
    type In = Authed;
    type Out = Authed;
    async fn call(&self, ctx: Authed, call: &Call, next: Next<Authed>) -> Result<Reply, Error> {
        if call.meta().get::<Admin>().is_some() && ctx.user != "root" {
            return Err(Error::forbidden());
        }
        next.run(ctx).await
    }
}

#[derive(Clone, Copy, Default)]
pub struct Logging;

impl Middleware for Logging {
    type In = AppCtx;
    type Out = AppCtx;
    async fn call(&self, ctx: AppCtx, call: &Call, next: Next<AppCtx>) -> Result<Reply, Error> {
        let result = next.run(ctx).await;
        println!("{} {}", call.path(), result.is_ok());
        result
    }
}

/// A reusable stack.
pub type AdminBase = (RequireUser, RequireAdmin);

#[procedure(mutation, use = RequireUser)]
pub async fn secret(ctx: &Authed) -> String {
    ctx.user.clone()
}

#[procedure(mutation, use = AdminBase, meta = Admin("ban"))]
pub async fn ban(ctx: &Authed, user: String) -> String {
    format!("{} banned {user}", ctx.user)
}

#[procedure(query, use = (Logging, RequireUser))]
pub async fn logged(_ctx: &Authed) {}

#[procedure(query, use = Logging)]
pub async fn ping() -> &'static str {
    "pong"
}

#[procedure(query)]
pub async fn me(ctx: &Authed) -> String {
    ctx.user.clone()
}

fn main() {
    let private: Router<AppCtx> = Router::<Authed>::new().add(me::procedure()).with(RequireUser);
    let router: Router<AppCtx> = Router::new()
        .add(secret::procedure())
        .add(ban::procedure())
        .add(logged::procedure())
        .add(ping::procedure())
        .nest("private", private)
        .with(Logging);
    assert_eq!(router.len(), 5);
}
