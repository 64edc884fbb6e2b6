#[derive(serde::Serialize, ts_rs::TS)]
pub struct Out {
    pub text: String,
}

#[oxrpc::procedure(query)]
pub async fn greet() -> Result<Out, oxrpc::Error> {
    Ok(Out { text: "hi".into() })
}

fn main() {}
