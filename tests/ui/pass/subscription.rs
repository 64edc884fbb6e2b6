use futures_util::Stream;
use oxrpc::{Error, Router, Tracked, procedure};

#[derive(Clone, Default)]
pub struct Ctx;

/// Plain events.
#[procedure(subscription)]
pub async fn ticks() -> impl Stream<Item = u32> {
    futures_util::stream::iter([1, 2, 3])
}

/// Tracked events that may fail, with a fallible setup.
#[procedure(subscription)]
pub async fn tracked(from: u32) -> Result<impl Stream<Item = Result<Tracked<u32>, Error>>, Error> {
    Ok(futures_util::stream::iter((from..from + 3).map(|n| Ok(Tracked::new(n.to_string(), n)))))
}

/// With a context: the stream owns its data (`use<>`).
#[procedure(subscription)]
pub async fn with_ctx(_ctx: &Ctx) -> impl Stream<Item = String> + use<> {
    futures_util::stream::iter(["x".to_owned()])
}

fn main() {
    let router: Router<Ctx> = Router::new()
        .add(ticks::procedure())
        .add(tracked::procedure())
        .add(with_ctx::procedure());
    assert!(router.get("tracked").is_some_and(|p| p.is_tracked()));
    assert!(router.get("ticks").is_some_and(|p| !p.is_tracked()));
}
