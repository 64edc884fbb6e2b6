//! Contained handler panics stay out of stderr: a server installs a panic hook that passes
//! every other panic to the hook that was there before. (Its own test binary: the hook is
//! process-wide.) Every await has a deadline.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use support::{Running, raw_exchange};

#[tokio::test]
async fn contained_panics_skip_the_default_hook_and_others_do_not() {
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    // Stands in for the default hook (which prints to stderr).
    std::panic::set_hook(Box::new(move |_| {
        counter.fetch_add(1, Ordering::SeqCst);
    }));
    let server = Running::start(|s| s).await;

    // A handler that panics, and a subscription stream that panics: both contained.
    let body = raw_exchange(
        server.addr,
        b"GET /trpc/boom HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(body.contains("INTERNAL_SERVER_ERROR"), "{body}");
    let events = raw_exchange(
        server.addr,
        b"GET /trpc/onPanic HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(events.contains("serialized-error"), "{events}");
    assert_eq!(
        seen.load(Ordering::SeqCst),
        0,
        "contained panics reached the previous hook"
    );

    // A panic elsewhere still goes to the previous hook.
    let outside = std::thread::spawn(|| panic!("not a handler")).join();
    assert!(outside.is_err());
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    server.shutdown().await;
}
