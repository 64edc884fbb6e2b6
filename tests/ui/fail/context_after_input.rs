pub struct Ctx;

#[oxrpc::procedure(query)]
pub async fn hello(name: String, ctx: &Ctx) -> String {
    let _ = ctx;
    name
}

fn main() {}
