//! Runs CPU-heavy work (Argon2 key derivation) on a dedicated OS thread and awaits its result from any async
//! executor, so the async port methods never stall the executor's worker threads. Runtime-agnostic on purpose:
//! this crate does not depend on tokio, and an embedding host may use another executor.

use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::thread;

use waiaas_core::{Error, Result};

struct Slot<T> {
    result: Option<thread::Result<T>>,
    waker: Option<Waker>,
}

type Shared<T> = Arc<Mutex<Slot<T>>>;

fn lock<T>(shared: &Shared<T>) -> MutexGuard<'_, Slot<T>> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `work` on a new thread named `name` and resolves to its result. A panic in `work` becomes
/// `INTERNAL_ERROR`; it never hangs the awaiting task.
pub(crate) async fn run_blocking<T, F>(name: &str, work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let shared: Shared<Result<T>> = Arc::new(Mutex::new(Slot { result: None, waker: None }));
    let producer = Arc::clone(&shared);
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            let result = panic::catch_unwind(AssertUnwindSafe(work));
            let waker = {
                let mut slot = lock(&producer);
                slot.result = Some(result);
                slot.waker.take()
            };
            if let Some(waker) = waker {
                waker.wake();
            }
        })
        .map_err(Error::internal)?;
    match (Completion { shared }).await {
        Ok(result) => result,
        Err(_panic) => Err(Error::internal_msg(format!("worker thread {name} panicked"))),
    }
}

struct Completion<T> {
    shared: Shared<T>,
}

impl<T> Future for Completion<T> {
    type Output = thread::Result<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = lock(&self.shared);
        match slot.result.take() {
            Some(result) => Poll::Ready(result),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_result() {
        let value = run_blocking("t", || Ok(21 * 2)).await.unwrap();
        assert_eq!(value, 42);
    }

    #[tokio::test]
    async fn a_panic_is_an_internal_error() {
        let err = run_blocking::<(), _>("t", || panic!("boom")).await.unwrap_err();
        assert_eq!(err.code, waiaas_core::ErrorCode::InternalError);
    }
}
