#[derive(Default)]
pub struct NotAMiddleware;

#[oxrpc::procedure(query, use = NotAMiddleware)]
pub async fn hello() -> String {
    "hello".into()
}

fn main() {}
