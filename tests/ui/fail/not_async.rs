#[oxrpc::procedure(query)]
pub fn hello() -> String {
    "hello".into()
}

fn main() {}
