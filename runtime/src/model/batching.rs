//! A model route's scheduler, in the manner of Triton's dynamic batcher and instance groups:
//! `model(..., batch_size = 32, batch_delay_ms = 5, instances = 2)`.
//!
//! Each route with batching or an instance count gets a queue and `instances` threads of its
//! own (the model's instances), which take requests from the queue and call the model. A
//! request joins the queue with its deadline and waits for its own answer on a channel of its
//! own: an answer can neither be lost nor given to another request. An instance takes whole
//! requests from the front, up to `batch_size` rows (a request larger than that runs alone, as
//! do requests whose rows are not as wide as the first's), once the queue holds `batch_size`
//! rows or its first request has waited `batch_delay`. A batch whose call fails, panics or
//! answers the wrong number of rows is predicted again one request at a time, so that a bad
//! request fails alone. A request whose deadline passes in the queue leaves it with 504. A
//! request that finds an instance free and nobody waiting runs at once on its own thread, with
//! no hand-over: batching costs a lone request nothing. Requests with `parameters` are not
//! batched (a call has one set), but still count against the instances.
//!
//! Nothing a model does can stop the scheduler: every call runs under a panic guard, and the
//! lock's data stays consistent when one is poisoned.

use super::{Features, Model, TensorSpec};
use crate::error::StepError;
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How a route's model is scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// Rows predicted in one call at most; 1 is no batching.
    pub batch_size: usize,
    /// How long the first request of a batch waits for others.
    pub batch_delay: Duration,
    /// Calls of the model at once at most.
    pub instances: usize,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule { batch_size: 1, batch_delay: Duration::ZERO, instances: 1 }
    }
}

/// A model behind a scheduler; every hook but prediction is the model's own.
pub struct Batched {
    shared: Arc<Shared>,
}

struct Shared {
    model: Arc<dyn Model>,
    schedule: Schedule,
    state: Mutex<State>,
    /// Signalled when a request joins the queue, an instance frees up, or the route closes.
    changed: Condvar,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Queued>,
    /// Rows in the queue.
    rows: usize,
    /// Calls of the model running now (instances and lone requests).
    running: usize,
    /// The route is gone: instances stop.
    closed: bool,
}

struct Queued {
    features: Features,
    arrived: Instant,
    deadline: Option<Instant>,
    answer: SyncSender<Result<Vec<Value>, StepError>>,
}

impl Batched {
    /// Batches `model`'s predictions: up to `max_rows` rows per call, waiting at most `delay`
    /// to fill a batch, one call at a time.
    pub fn new(model: Arc<dyn Model>, max_rows: usize, delay: Duration) -> Self {
        Batched::scheduled(model, Schedule { batch_size: max_rows, batch_delay: delay, instances: 1 })
    }

    /// Schedules `model`'s predictions as `schedule` says, on threads of its own.
    pub fn scheduled(model: Arc<dyn Model>, schedule: Schedule) -> Self {
        let schedule = Schedule {
            batch_size: schedule.batch_size.max(1),
            instances: schedule.instances.max(1),
            batch_delay: schedule.batch_delay,
        };
        let shared = Arc::new(Shared { model, schedule, state: Mutex::new(State::default()), changed: Condvar::new() });
        for index in 0..schedule.instances {
            let instance = Arc::clone(&shared);
            let spawned =
                std::thread::Builder::new().name(format!("graphc-model-{index}")).spawn(move || instance.serve());
            if let Err(error) = spawned {
                // Requests still run: lone ones on their own threads, and queued ones time out
                // at their deadline rather than hang (see `predict_within`).
                tracing::error!("cannot start a model instance thread: {error}");
            }
        }
        Batched { shared }
    }

    /// How this model is scheduled.
    pub fn schedule(&self) -> Schedule {
        self.shared.schedule
    }

    /// Requests waiting in the queue now.
    pub fn queued(&self) -> usize {
        self.shared.lock().queue.len()
    }
}

impl Drop for Batched {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every field is written whole under the lock: a panic elsewhere leaves it consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Predicts `features` for a caller who waits until `deadline`.
    fn predict(&self, features: Features, deadline: Option<Instant>) -> Result<Vec<Value>, StepError> {
        let mut state = self.lock();
        if state.queue.is_empty() && state.running < self.schedule.instances {
            state.running += 1;
            drop(state);
            let answer = call(&*self.model, features);
            self.finished_one();
            return answer;
        }
        let (answer, receiver) = sync_channel(1);
        state.rows += features.rows;
        state.queue.push_back(Queued { features, arrived: Instant::now(), deadline, answer });
        drop(state);
        self.changed.notify_all();
        wait_for(&receiver, deadline)
    }

    /// A call of the model ended: an instance waiting for a free slot may take the next batch.
    /// Only a queue with requests in it has an instance to wake; a lone request on an idle
    /// model wakes nobody (a wake-up costs more than its call of a small model).
    fn finished_one(&self) {
        let mut state = self.lock();
        state.running -= 1;
        let waiting = !state.queue.is_empty() || state.closed;
        drop(state);
        if waiting {
            self.changed.notify_all();
        }
    }

    /// An instance: takes batches from the queue and predicts them until the route closes.
    fn serve(&self) {
        loop {
            let Some(batch) = self.next_batch() else { return };
            // A panic here (outside the model's own guarded calls) would be a scheduler bug:
            // its requests are answered with it, and the instance goes on.
            let guarded = crate::logging::guarded(|| self.run(batch));
            self.finished_one();
            if let Err(payload) = guarded {
                tracing::error!("a model instance recovered from a panic: {:?}", StepError::panicked(&*payload));
            }
        }
    }

    /// Waits until a batch is due and an instance may run it, and takes it; `None` once closed.
    fn next_batch(&self) -> Option<Vec<Queued>> {
        let mut state = self.lock();
        loop {
            if state.closed {
                return None;
            }
            expire(&mut state);
            let Some(first) = state.queue.front() else {
                state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
                continue;
            };
            if state.running >= self.schedule.instances {
                state = self.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            let waited = first.arrived.elapsed();
            if state.rows < self.schedule.batch_size && waited < self.schedule.batch_delay {
                let wait = self.schedule.batch_delay - waited;
                // Wake for the earliest deadline in the queue too, so that it is answered on time.
                let wait = state
                    .queue
                    .iter()
                    .filter_map(|queued| queued.deadline)
                    .map(|deadline| deadline.saturating_duration_since(Instant::now()))
                    .fold(wait, Duration::min);
                state = self.changed.wait_timeout(state, wait).unwrap_or_else(PoisonError::into_inner).0;
                continue;
            }
            let batch = take_batch(&mut state, self.schedule.batch_size);
            state.running += 1;
            return Some(batch);
        }
    }

    /// One call for the batch, its outputs split back by request; one call per request if it
    /// fails, panics, or answers the wrong number of rows.
    fn run(&self, batch: Vec<Queued>) {
        if batch.len() > 1 {
            let rows: usize = batch.iter().map(|queued| queued.features.rows).sum();
            let columns = batch[0].features.columns;
            let mut values = Vec::with_capacity(rows * columns);
            for queued in &batch {
                values.extend_from_slice(&queued.features.values);
            }
            if let Ok(outputs) = call(&*self.model, Features { values, rows, columns }) {
                let mut outputs = outputs.into_iter();
                for queued in batch {
                    let own: Vec<Value> = outputs.by_ref().take(queued.features.rows).collect();
                    // The receiver is gone when its caller's deadline passed: nothing to answer.
                    let _ = queued.answer.send(Ok(own));
                }
                return;
            }
        }
        for queued in batch {
            let answer = call(&*self.model, queued.features);
            let _ = queued.answer.send(answer);
        }
    }
}

/// One guarded call of the model: a panic is a failure, and an answer must have a row per row.
fn call(model: &dyn Model, features: Features) -> Result<Vec<Value>, StepError> {
    let rows = features.rows;
    let outputs = crate::logging::guarded(|| model.predict(features))
        .unwrap_or_else(|payload| Err(StepError::panicked(&*payload)))?;
    if outputs.len() != rows {
        return Err(StepError::new(format!("the model gave {} outputs for {rows} rows", outputs.len())));
    }
    Ok(outputs)
}

/// Answers and removes the queued requests whose deadline has passed.
fn expire(state: &mut State) {
    let now = Instant::now();
    if !state.queue.iter().any(|queued| queued.deadline.is_some_and(|deadline| deadline <= now)) {
        return;
    }
    let queue = std::mem::take(&mut state.queue);
    for queued in queue {
        if queued.deadline.is_some_and(|deadline| deadline <= now) {
            state.rows -= queued.features.rows;
            let _ = queued.answer.send(Err(expired()));
        } else {
            state.queue.push_back(queued);
        }
    }
}

/// Whole requests from the front: up to `batch_size` rows as wide as the first's, at least one.
fn take_batch(state: &mut State, batch_size: usize) -> Vec<Queued> {
    let mut batch: Vec<Queued> = Vec::new();
    let mut rows = 0;
    while let Some(next) = state.queue.front() {
        if let Some(first) = batch.first()
            && (rows + next.features.rows > batch_size || next.features.columns != first.features.columns)
        {
            break;
        }
        rows += next.features.rows;
        if let Some(next) = state.queue.pop_front() {
            batch.push(next);
        }
    }
    state.rows -= rows;
    batch
}

fn expired() -> StepError {
    StepError::timeout("the request's deadline passed while it waited for the model")
}

/// Waits for a queued request's answer, until its deadline at most.
fn wait_for(
    receiver: &Receiver<Result<Vec<Value>, StepError>>,
    deadline: Option<Instant>,
) -> Result<Vec<Value>, StepError> {
    let stopped = || StepError::unavailable("the model's scheduler stopped before answering");
    match deadline {
        None => receiver.recv().unwrap_or_else(|_| Err(stopped())),
        Some(deadline) => match receiver.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(answer) => answer,
            Err(RecvTimeoutError::Timeout) => Err(expired()),
            Err(RecvTimeoutError::Disconnected) => Err(stopped()),
        },
    }
}

impl Model for Batched {
    fn preprocess(&self, body: Value) -> Result<Value, StepError> {
        self.shared.model.preprocess(body)
    }

    fn validate(&self, features: &Features) -> Result<(), StepError> {
        self.shared.model.validate(features)
    }

    fn predict(&self, features: Features) -> Result<Vec<Value>, StepError> {
        self.shared.predict(features, None)
    }

    fn predict_with(&self, features: Features, parameters: &Map<String, Value>) -> Result<Vec<Value>, StepError> {
        self.predict_within(features, parameters, None)
    }

    fn predict_within(
        &self,
        features: Features,
        parameters: &Map<String, Value>,
        deadline: Option<Instant>,
    ) -> Result<Vec<Value>, StepError> {
        if parameters.is_empty() {
            return self.shared.predict(features, deadline);
        }
        // One call with its own parameters, still counted against the instances: it queues as
        // a batch of its own would, then calls with the parameters.
        let shared = &self.shared;
        let mut state = shared.lock();
        while state.running >= shared.schedule.instances {
            let left = deadline.map(|deadline| deadline.saturating_duration_since(Instant::now()));
            if left == Some(Duration::ZERO) {
                return Err(expired());
            }
            let wait = left.unwrap_or(Duration::from_secs(1));
            state = shared.changed.wait_timeout(state, wait).unwrap_or_else(PoisonError::into_inner).0;
        }
        state.running += 1;
        drop(state);
        let answer = crate::logging::guarded(|| shared.model.predict_with(features, parameters))
            .unwrap_or_else(|payload| Err(StepError::panicked(&*payload)));
        shared.lock().running -= 1;
        shared.changed.notify_all();
        answer
    }

    fn postprocess(&self, outputs: Vec<Value>) -> Result<Vec<Value>, StepError> {
        self.shared.model.postprocess(outputs)
    }

    fn explain(&self, features: &Features) -> Result<Value, StepError> {
        self.shared.model.explain(features)
    }

    fn operation(&self, operation: &str, body: Value) -> Option<Result<Value, StepError>> {
        self.shared.model.operation(operation, body)
    }

    fn input_width(&self) -> Option<usize> {
        self.shared.model.input_width()
    }

    fn is_regressor(&self) -> bool {
        self.shared.model.is_regressor()
    }

    fn output_datatype(&self) -> &'static str {
        self.shared.model.output_datatype()
    }

    fn inputs(&self) -> Vec<TensorSpec> {
        self.shared.model.inputs()
    }

    fn outputs(&self) -> Vec<TensorSpec> {
        self.shared.model.outputs()
    }
}

#[cfg(test)]
mod tests {
    //! The queue under random arrivals, sizes, failures and deadlines: every request gets its
    //! own answer or an honest error, and the scheduler serves on after anything.

    use super::*;
    use proptest::prelude::*;
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Sums each row; fails a call with a negative value, panics on a call with a 13, answers
    /// one row short for a call with a 7: a batch holding any of them falls back to one call per
    /// request.
    struct Summing {
        calls: AtomicUsize,
        cost: Duration,
    }

    impl Model for Summing {
        fn predict(&self, features: Features) -> Result<Vec<Value>, StepError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(self.cost);
            let sums: Vec<f64> = (0..features.rows).map(|r| features.row(r).iter().sum()).collect();
            if features.values.iter().any(|v| *v < 0.0) {
                return Err(StepError::invalid_input("negative values"));
            }
            if sums.contains(&13.0) {
                panic!("thirteen");
            }
            let short = features.values.contains(&7.0);
            Ok(sums.iter().skip(usize::from(short)).map(|sum| json!(sum)).collect())
        }
    }

    #[derive(Clone, Debug)]
    struct Arrival {
        pause_us: u64,
        rows: Vec<f64>,
        deadline_ms: Option<u64>,
    }

    fn arrival() -> impl Strategy<Value = Arrival> {
        (
            0u64..300,
            prop::collection::vec(
                prop_oneof![8 => 0.0f64..5.0, 1 => Just(-1.0), 1 => Just(13.0), 1 => Just(7.0)],
                1..10,
            ),
            prop_oneof![3 => Just(None), 1 => (0u64..8).prop_map(Some)],
        )
            .prop_map(|(pause_us, rows, deadline_ms)| Arrival { pause_us, rows, deadline_ms })
    }

    /// What the model answers for these rows called alone.
    fn alone(rows: &[f64]) -> Result<Vec<Value>, u16> {
        if rows.iter().any(|v| *v < 0.0) {
            return Err(422);
        }
        if rows.contains(&13.0) {
            return Err(500);
        }
        if rows.contains(&7.0) {
            return Err(500);
        }
        Ok(rows.iter().map(|v| json!(v)).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn every_request_gets_its_own_answer(
            arrivals in prop::collection::vec(arrival(), 1..40),
            batch_size in 1usize..8,
            instances in 1usize..3,
        ) {
            let model = Arc::new(Summing { calls: AtomicUsize::new(0), cost: Duration::from_micros(500) });
            let schedule = Schedule { batch_size, batch_delay: Duration::from_millis(2), instances };
            let batched = Arc::new(Batched::scheduled(model, schedule));
            let threads: Vec<_> = arrivals.iter().cloned().map(|arrival| {
                let batched = Arc::clone(&batched);
                std::thread::sleep(Duration::from_micros(arrival.pause_us));
                std::thread::spawn(move || {
                    // One value per row: each row is its own sum.
                    let features = Features { values: arrival.rows.clone(), rows: arrival.rows.len(), columns: 1 };
                    let deadline = arrival.deadline_ms.map(|ms| Instant::now() + Duration::from_millis(ms));
                    (arrival, deadline, batched.predict_within(features, &Map::new(), deadline))
                })
            }).collect();
            for thread in threads {
                let (arrival, deadline, answer) = thread.join().expect("a caller");
                match (alone(&arrival.rows), answer) {
                    (Ok(expected), Ok(outputs)) => prop_assert_eq!(expected, outputs),
                    (Err(status), Err(error)) => prop_assert!(
                        error.status() == status || error.status() == 504,
                        "{:?} answered {} ({})", arrival.rows, error.status(), error.message
                    ),
                    (_, Err(error)) => prop_assert!(
                        error.status() == 504 && deadline.is_some(),
                        "{:?} failed: {} {}", arrival.rows, error.status(), error.message
                    ),
                    (Err(status), Ok(outputs)) => prop_assert!(false, "{:?} should fail {status}, got {outputs:?}", arrival.rows),
                }
            }
            // The scheduler still serves, and holds nothing.
            let answer = batched.predict_within(Features { values: vec![2.0], rows: 1, columns: 1 }, &Map::new(), None);
            prop_assert_eq!(answer.map_err(|e| e.message), Ok(vec![json!(2.0)]));
            prop_assert_eq!(batched.queued(), 0);
        }
    }

    #[test]
    fn an_expired_request_leaves_the_queue_at_its_deadline() {
        let model = Arc::new(Summing { calls: AtomicUsize::new(0), cost: Duration::from_millis(200) });
        let batched =
            Arc::new(Batched::scheduled(model, Schedule { batch_size: 4, batch_delay: Duration::ZERO, instances: 1 }));
        let busy = {
            let batched = Arc::clone(&batched);
            std::thread::spawn(move || batched.predict(Features { values: vec![1.0], rows: 1, columns: 1 }))
        };
        std::thread::sleep(Duration::from_millis(20));
        let started = Instant::now();
        let deadline = Some(started + Duration::from_millis(30));
        let answer = batched.predict_within(Features { values: vec![1.0], rows: 1, columns: 1 }, &Map::new(), deadline);
        assert_eq!(answer.map_err(|e| e.status()), Err(504));
        assert!(started.elapsed() < Duration::from_millis(150), "answered after {:?}", started.elapsed());
        assert_eq!(busy.join().expect("the first call").map_err(|e| e.message), Ok(vec![json!(1.0)]));
        std::thread::sleep(Duration::from_millis(10));
        assert_eq!(batched.queued(), 0, "the expired request left the queue");
    }
}
