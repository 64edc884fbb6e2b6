#[derive(Clone)]
pub struct Ctx;

#[oxrpc::procedure(query)]
pub async fn add(ctx: &Ctx, a: u32, b: u32) -> u32 {
    let _ = ctx;
    a + b
}

fn main() {}
