use oxrpc::{Error, Router, procedure};

#[derive(Clone, Default)]
pub struct AppCtx {
    pub user: Option<String>,
}

#[derive(serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
pub struct In {
    pub name: String,
}

#[derive(serde::Serialize, ts_rs::TS, schemars::JsonSchema)]
pub struct Out {
    pub text: String,
}

/// No parameters at all.
#[procedure(query)]
pub async fn health() -> &'static str {
    "ok"
}

/// Input only.
#[procedure(query)]
pub async fn greet(input: In) -> Out {
    Out { text: input.name }
}

/// Context and input, fallible, renamed.
#[procedure(mutation, name = "byName")]
pub async fn by_name(ctx: &AppCtx, input: In) -> Result<Out, Error> {
    Ok(Out { text: format!("{:?} {}", ctx.user, input.name) })
}

/// Context only, unit output.
#[procedure(mutation)]
async fn forget(_ctx: &AppCtx) {}

fn main() {
    let router: Router<AppCtx> = Router::new()
        .add(health::procedure())
        .add(greet::procedure())
        .add(by_name::procedure())
        .add(forget::procedure());
    assert_eq!(router.paths().collect::<Vec<_>>(), ["byName", "forget", "greet", "health"]);
    // The functions are still ordinary functions.
    let _ = health();
    let _ = by_name(&AppCtx::default(), In { name: "x".into() });
}
