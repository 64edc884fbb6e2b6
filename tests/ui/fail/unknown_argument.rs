#[oxrpc::procedure(query, magic)]
pub async fn hello() -> String {
    "hello".into()
}

fn main() {}
