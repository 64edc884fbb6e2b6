#[oxrpc::procedure(query, use)]
pub async fn hello() -> String {
    "hello".into()
}

fn main() {}
