//! Transports map a wire format to the dispatcher and back. None imports another, or the
//! server: the service routes each request to one of them.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

pub(crate) mod http;
pub(crate) mod sse;
pub(crate) mod ws;

/// Polls `fut` once with this task's waker, which stays registered with it if it is pending
/// (a call that finishes at once is answered without waiting; one that does not is awaited
/// later, and wakes this task).
async fn poll_once<F: Future + ?Sized>(mut fut: Pin<&mut F>) -> Poll<F::Output> {
    std::future::poll_fn(move |cx| Poll::Ready(fut.as_mut().poll(cx))).await
}
