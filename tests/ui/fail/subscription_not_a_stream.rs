#[oxrpc::procedure(subscription)]
pub async fn ticks() -> String {
    "tick".into()
}

fn main() {}
