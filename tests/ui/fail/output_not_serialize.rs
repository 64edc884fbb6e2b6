#[derive(ts_rs::TS, schemars::JsonSchema)]
pub struct Out {
    pub text: String,
}

#[oxrpc::procedure(query)]
pub async fn greet() -> Out {
    Out { text: "hi".into() }
}

fn main() {}
