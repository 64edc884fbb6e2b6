use oxrpc::{Router, procedure};

#[derive(Clone, Default)]
pub struct AppCtx;

pub struct Authed {
    pub user: String,
}

#[procedure(query)]
pub async fn health(_ctx: &AppCtx) -> &'static str {
    "ok"
}

/// Takes the refined context, but no middleware provides it.
#[procedure(mutation)]
pub async fn secret(ctx: &Authed) -> String {
    ctx.user.clone()
}

pub fn router() -> Router<AppCtx> {
    Router::new().add(health::procedure()).add(secret::procedure())
}

fn main() {}
