#[oxrpc::procedure(query, mutation)]
pub async fn hello() -> String {
    "hello".into()
}

fn main() {}
