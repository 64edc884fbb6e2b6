//! Panic containment: a handler that panics fails its call with `INTERNAL_SERVER_ERROR` (the
//! dispatcher catches it and reports it through `tracing`). The process-wide panic hook that
//! servers install keeps such contained panics out of stderr; every other panic still goes to
//! the hook that was there before.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

use futures_util::Stream;

thread_local! {
    /// Whether this thread is running user code whose panics are contained.
    static CONTAINED: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Installs the hook once per process (servers do, when built).
pub(crate) fn install_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if CONTAINED.with(Cell::get) {
                // The call's error carries the message; this adds where it happened.
                tracing::debug!(location = ?info.location(), "a contained handler panic");
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f` as contained user code.
pub(crate) fn contained<T>(f: impl FnOnce() -> T) -> T {
    let outer = CONTAINED.with(|c| c.replace(true));
    let _restore = Restore(outer);
    f()
}

/// Puts the flag back, also when `f` unwinds.
struct Restore(bool);

impl Drop for Restore {
    fn drop(&mut self) {
        CONTAINED.with(|c| c.set(self.0));
    }
}

/// A future or stream whose polls run as contained user code.
pub(crate) struct Contained<T>(pub(crate) T);

impl<F: Future + Unpin> Future for Contained<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        contained(|| Pin::new(&mut self.0).poll(cx))
    }
}

impl<S: Stream + Unpin> Stream for Contained<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        contained(|| Pin::new(&mut self.0).poll_next(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_is_restored_after_an_unwind() {
        let caught = std::panic::catch_unwind(|| contained(|| panic!("inside")));
        assert!(caught.is_err());
        assert!(!CONTAINED.with(Cell::get));
        assert!(contained(|| CONTAINED.with(Cell::get)));
    }
}
