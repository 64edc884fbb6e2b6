#[oxrpc::procedure(query)]
pub async fn echo<T>(input: T) -> T {
    input
}

fn main() {}
