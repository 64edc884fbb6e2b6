#[oxrpc::procedure(query, name = hello2)]
pub async fn hello() -> String {
    "hello".into()
}

fn main() {}
