#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct In {
    pub name: String,
}

#[oxrpc::procedure(query)]
pub async fn greet(input: In) -> String {
    input.name
}

fn main() {}
