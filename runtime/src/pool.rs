//! The blocking pool: where synchronous user code (handlers, `new` steps, routers and the models
//! behind them) runs on the tokio executor, so that the worker threads stay free for the accept
//! loop, health probes, metrics, timers and every other request (docs/architecture.md, "Where
//! work runs").
//!
//! The pool is tokio's blocking threads behind a semaphore of `size` permits: at most `size`
//! calls run at once, the rest wait in line, in order. A call whose caller goes away while it
//! waits in line (its deadline passed) leaves the line and never runs; a call that has started
//! finishes in its thread and its result is thrown away, since a thread cannot be stopped from
//! outside. Outside a tokio runtime (the sync executor called directly, a unit test) work runs
//! on the caller's thread.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;

/// The pool's size when the server is not told (`--blocking-threads`): enough for steps that
/// wait on I/O of their own, few enough that CPU-bound models do not thrash two cores.
pub const DEFAULT_SIZE: usize = 32;

struct Pool {
    size: usize,
    permits: Arc<Semaphore>,
    /// Calls waiting for a permit now.
    waiting: AtomicUsize,
}

static POOL: OnceLock<Pool> = OnceLock::new();

fn pool() -> &'static Pool {
    POOL.get_or_init(|| Pool::new(DEFAULT_SIZE))
}

impl Pool {
    fn new(size: usize) -> Self {
        let size = size.max(1);
        Pool { size, permits: Arc::new(Semaphore::new(size)), waiting: AtomicUsize::new(0) }
    }
}

/// Sets the pool's size, once, before the first call: what `--blocking-threads` does. Returns
/// false when the pool was already in use with another size.
pub fn configure(size: usize) -> bool {
    let size = size.max(1);
    POOL.set(Pool::new(size)).is_ok() || pool().size == size
}

/// The pool's size.
pub fn size() -> usize {
    pool().size
}

/// Calls running on the pool now.
pub fn busy() -> usize {
    let pool = pool();
    pool.size - pool.permits.available_permits()
}

/// Calls waiting for a thread of the pool now.
pub fn waiting() -> usize {
    pool().waiting.load(Ordering::Relaxed)
}

/// Why work sent to the pool has no result.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The runtime is shutting down and takes no new blocking work.
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The work panicked outside the guards that turn a step's panic into a failure.
    #[error("blocking work panicked")]
    Panicked,
}

/// Counts a call as waiting until it has its permit, also when its caller gives up first.
struct Waiting<'p>(&'p AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Runs `work` on a thread of the pool, once one is free, and returns what it returns. Outside a
/// tokio runtime, on this thread.
pub async fn run<T, W>(work: W) -> Result<T, PoolError>
where
    T: Send + 'static,
    W: FnOnce() -> T + Send + 'static,
{
    if tokio::runtime::Handle::try_current().is_err() {
        return Ok(work());
    }
    let pool = pool();
    pool.waiting.fetch_add(1, Ordering::Relaxed);
    let waiting = Waiting(&pool.waiting);
    let permit = Arc::clone(&pool.permits).acquire_owned().await.map_err(|_| PoolError::ShuttingDown)?;
    drop(waiting);
    let handle = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        ON_POOL.with(|on| on.set(true));
        let result = work();
        ON_POOL.with(|on| on.set(false));
        result
    });
    handle.await.map_err(|error| if error.is_panic() { PoolError::Panicked } else { PoolError::ShuttingDown })
}

thread_local! {
    static ON_POOL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is running work of the pool (or is no tokio worker at all): blocking
/// here holds up no other task.
pub fn may_block_here() -> bool {
    ON_POOL.with(std::cell::Cell::get) || tokio::runtime::Handle::try_current().is_err()
}

/// The pool's gauges in Prometheus' text format.
pub fn render() -> String {
    format!(
        "# HELP graphc_blocking_threads Threads of the blocking pool (--blocking-threads).\n# TYPE graphc_blocking_threads gauge\ngraphc_blocking_threads {}\n\
         # HELP graphc_blocking_busy Blocking calls (handlers, models) running now.\n# TYPE graphc_blocking_busy gauge\ngraphc_blocking_busy {}\n\
         # HELP graphc_blocking_waiting Blocking calls waiting for a thread of the pool.\n# TYPE graphc_blocking_waiting gauge\ngraphc_blocking_waiting {}\n",
        size(),
        busy(),
        waiting()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_at_most_its_size_at_once_and_frees_the_workers() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let calls: Vec<_> = (0..3 * DEFAULT_SIZE)
            .map(|_| {
                let (running, most) = (Arc::clone(&running), Arc::clone(&most));
                tokio::spawn(run(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                    may_block_here()
                }))
            })
            .collect();
        // The workers are free while the pool is saturated: a timer fires on time.
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(started.elapsed() < Duration::from_millis(50), "a worker was blocked: {:?}", started.elapsed());
        for call in calls {
            assert!(call.await.expect("joined").expect("ran"), "pool work runs where it may block");
        }
        assert!(most.load(Ordering::SeqCst) <= size(), "ran {} at once", most.load(Ordering::SeqCst));
        assert!(!may_block_here(), "a worker thread is not the pool");
    }
}
