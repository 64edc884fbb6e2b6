pub struct Ctx;

#[oxrpc::procedure(query)]
pub async fn hello(ctx: &mut Ctx) -> String {
    let _ = ctx;
    "hello".into()
}

fn main() {}
