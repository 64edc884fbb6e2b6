pub struct Api;

impl Api {
    #[oxrpc::procedure(query)]
    pub async fn hello(&self) -> String {
        "hello".into()
    }
}

fn main() {}
