#[oxrpc::procedure]
pub async fn hello() -> String {
    "hello".into()
}

fn main() {}
