#[oxrpc::procedure(query, name = "a", name = "b")]
pub async fn hello() -> String {
    "hello".into()
}

fn main() {}
