//! The blocking pool: where synchronous user code (handlers, `new` steps, routers and the models
//! behind them) runs on the tokio executor, so that the worker threads stay free for the accept
//! loop, health probes, metrics, timers and every other request (docs/architecture.md, "Where
//! work runs").
//!
//! The pool is tokio's blocking threads behind a semaphore of `size` permits: at most `size`
//! calls run at once, the rest wait in line, in order. Handing a call over costs two thread
//! wake-ups (tens of microseconds on a virtual machine), more than a call of a decision tree or a
//! small handler costs: work whose recent calls each took less than the in-place budget
//! ([`CallCost`]) runs where it is instead, as Go's scheduler leaves a short system call on its
//! thread. A call whose caller goes away while it
//! waits in line (its deadline passed) leaves the line and never runs; a call that has started
//! finishes in its thread and its result is thrown away, since a thread cannot be stopped from
//! outside. Outside a tokio runtime (the sync executor called directly, a unit test) work runs
//! on the caller's thread.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
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

/// Work whose recent calls each took less than this runs in place, not on the pool
/// (`--blocking-inline-us`): below it a hand-over costs more than the call.
pub const DEFAULT_IN_PLACE_BUDGET: Duration = Duration::from_micros(50);

static IN_PLACE_BUDGET_NANOS: AtomicU64 = AtomicU64::new(DEFAULT_IN_PLACE_BUDGET.as_nanos() as u64);

/// Sets the in-place budget: what `--blocking-inline-us` does. Zero sends every call to the pool.
pub fn configure_in_place_budget(budget: Duration) {
    IN_PLACE_BUDGET_NANOS.store(u64::try_from(budget.as_nanos()).unwrap_or(u64::MAX - 1), Ordering::Relaxed);
}

/// What recent calls of one piece of blocking work (a step, or a whole event of a graph that
/// never waits) cost, which decides where its next call runs. Work not measured yet goes to the
/// pool. A call dearer than the estimate raises it at once, so work that turns slow leaves the
/// worker after one call; cheaper calls lower it an eighth of the way each, so work that turns
/// cheap comes back after a few dozen.
#[derive(Debug)]
pub struct CallCost {
    nanos: AtomicU64,
}

impl Default for CallCost {
    fn default() -> Self {
        CallCost::new()
    }
}

impl CallCost {
    const UNMEASURED: u64 = u64::MAX;

    /// Not measured yet: the first call goes to the pool.
    pub const fn new() -> Self {
        CallCost { nanos: AtomicU64::new(Self::UNMEASURED) }
    }

    /// Whether the next call should run where it is rather than on the pool.
    #[inline]
    pub fn runs_in_place(&self) -> bool {
        let budget = IN_PLACE_BUDGET_NANOS.load(Ordering::Relaxed);
        budget > 0 && self.nanos.load(Ordering::Relaxed) < budget
    }

    /// What a call costs now, once one is measured.
    pub fn estimate(&self) -> Option<Duration> {
        let nanos = self.nanos.load(Ordering::Relaxed);
        (nanos != Self::UNMEASURED).then(|| Duration::from_nanos(nanos))
    }

    /// Counts one call that took `elapsed`.
    pub fn record(&self, elapsed: Duration) {
        let sample = u64::try_from(elapsed.as_nanos()).unwrap_or(Self::UNMEASURED - 1).min(Self::UNMEASURED - 1);
        let _ = self.nanos.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |estimate| {
            Some(if estimate == Self::UNMEASURED || sample >= estimate {
                sample
            } else {
                estimate - (estimate - sample) / 8
            })
        });
    }
}

/// Marks this thread as one where work may block until dropped: work run in place runs its
/// blocking steps in place too, rather than handing each over.
struct MayBlock(bool);

impl MayBlock {
    fn enter() -> Self {
        MayBlock(ON_POOL.with(|on| on.replace(true)))
    }
}

impl Drop for MayBlock {
    fn drop(&mut self) {
        let before = self.0;
        ON_POOL.with(|on| on.set(before));
    }
}

/// Runs `work` here (on a worker: `cost` says it is cheap) and counts what it cost.
#[inline]
pub fn run_in_place<T>(cost: &CallCost, work: impl FnOnce() -> T) -> T {
    let _may_block = MayBlock::enter();
    let started = Instant::now();
    let result = work();
    cost.record(started.elapsed());
    result
}

/// Runs `work` on the pool, as [`run`] does, and counts what it cost there.
pub async fn run_measured<T, W>(cost: &CallCost, work: W) -> Result<T, PoolError>
where
    T: Send + 'static,
    W: FnOnce() -> T + Send + 'static,
{
    let (result, elapsed) = run(move || {
        let started = Instant::now();
        let result = work();
        (result, started.elapsed())
    })
    .await?;
    cost.record(elapsed);
    Ok(result)
}

/// Where a call of work with this cost runs now: in place when it is cheap or when this thread
/// may block anyway.
#[inline]
pub fn in_place(cost: &CallCost) -> bool {
    may_block_here() || cost.runs_in_place()
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
        let _may_block = MayBlock::enter();
        work()
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

    #[test]
    fn cheap_work_stays_in_place_and_work_that_turns_slow_leaves_after_one_call() {
        let cost = CallCost::new();
        assert!(!cost.runs_in_place(), "unmeasured work goes to the pool");
        cost.record(Duration::from_micros(5));
        assert!(cost.runs_in_place());
        cost.record(Duration::from_millis(450));
        assert!(!cost.runs_in_place(), "one slow call is enough to leave the worker");
        let calls_back = (1..).find(|_| {
            cost.record(Duration::from_micros(5));
            cost.runs_in_place()
        });
        assert!(matches!(calls_back, Some(40..=80)), "back in place after {calls_back:?} cheap calls");
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let _on_a_worker = runtime.enter();
        let inside = run_in_place(&cost, may_block_here);
        assert!(inside && !may_block_here(), "work in place may block until it returns, and only then");
    }
}
