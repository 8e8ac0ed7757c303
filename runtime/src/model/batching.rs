//! Dynamic batching of a model route (`model(..., batch_size = 32, batch_delay_ms = 5)`):
//! concurrent requests to one model are predicted in one call and the outputs split back, each
//! request keeping its own answer and its own error.
//!
//! A request that finds the model idle and no one waiting runs at once, alone: batching costs
//! nothing at concurrency 1. Otherwise it queues; the queue's first request leads: once the model
//! is free, it waits until the queue holds `batch_size` rows or `batch_delay` has passed since it
//! arrived, then predicts the queue (up to `batch_size` rows, whole requests) in one call. So a
//! request waits at most the call before it, the delay, and its own batch. If a batch's call
//! fails, its requests are predicted one by one, so that one bad request fails alone. Requests
//! with `parameters` are not batched: a call has one set.

use super::{Features, Model, TensorSpec};
use crate::error::StepError;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A model whose predictions are batched; every other hook is the model's own.
pub struct Batched {
    model: Arc<dyn Model>,
    max_rows: usize,
    delay: Duration,
    state: Mutex<State>,
    changed: Condvar,
    /// A call of the model is running. Outside the lock, so that a lone request takes the
    /// model with one atomic operation and no lock.
    busy: AtomicBool,
    /// Requests in the queue (the queue's length, readable without the lock).
    queued: AtomicUsize,
}

/// How often a leader looks again at a model it found busy, in case the call that held it ended
/// between its look and its wait (the lone request's path does not take the lock to say so).
const RECHECK: Duration = Duration::from_millis(1);

#[derive(Default)]
struct State {
    /// A queued request is leading the next batch.
    leading: bool,
    queue: Vec<Queued>,
    /// Answers of finished batches, by ticket, until their requests take them.
    done: HashMap<u64, Result<Vec<Value>, StepError>>,
    next_ticket: u64,
}

struct Queued {
    ticket: u64,
    features: Features,
}

impl Batched {
    /// Batches `model`'s predictions: up to `max_rows` rows per call, waiting at most `delay`
    /// to fill a batch.
    pub fn new(model: Arc<dyn Model>, max_rows: usize, delay: Duration) -> Self {
        Batched {
            model,
            max_rows: max_rows.max(1),
            delay,
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            busy: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent data (every field is set whole).
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn wait<'a>(&self, state: MutexGuard<'a, State>, timeout: Option<Duration>) -> MutexGuard<'a, State> {
        // (`None` only for followers, whom the leader wakes under the lock.)
        match timeout {
            Some(timeout) => {
                self.changed.wait_timeout(state, timeout).unwrap_or_else(std::sync::PoisonError::into_inner).0
            }
            None => self.changed.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner),
        }
    }

    fn batch(&self, features: Features) -> Result<Vec<Value>, StepError> {
        // Alone: the model is free and no one waits for it.
        if self.queued.load(Ordering::Acquire) == 0
            && self.busy.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok()
        {
            let answer = self.model.predict(features);
            self.busy.store(false, Ordering::Release);
            if self.queued.load(Ordering::Acquire) > 0 {
                let _state = self.lock();
                self.changed.notify_all();
            }
            return answer;
        }
        let mut state = self.lock();
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push(Queued { ticket, features });
        self.queued.fetch_add(1, Ordering::AcqRel);
        let arrived = Instant::now();
        loop {
            if let Some(answer) = state.done.remove(&ticket) {
                return answer;
            }
            if !state.leading {
                state.leading = true;
                return self.lead(state, ticket, arrived);
            }
            state = self.wait(state, None);
        }
    }

    /// Waits for the model and for the batch to fill (or the delay to pass), runs it, and hands
    /// out the answers.
    fn lead(&self, mut state: MutexGuard<'_, State>, ticket: u64, arrived: Instant) -> Result<Vec<Value>, StepError> {
        loop {
            // The leader's own request may have run in a batch another leader took.
            if let Some(answer) = state.done.remove(&ticket) {
                state.leading = false;
                self.changed.notify_all();
                return answer;
            }
            let rows: usize = state.queue.iter().map(|q| q.features.rows).sum();
            let waited = arrived.elapsed();
            if (rows >= self.max_rows || waited >= self.delay)
                && self.busy.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).is_ok()
            {
                break;
            }
            let timeout = if self.busy.load(Ordering::Acquire) {
                RECHECK
            } else {
                self.delay.saturating_sub(waited).min(RECHECK).max(Duration::from_micros(50))
            };
            state = self.wait(state, Some(timeout));
        }
        // Whole requests, up to the batch size (at least one).
        let mut taken = Vec::new();
        let mut rows = 0;
        while let Some(next) = state.queue.first() {
            if !taken.is_empty() && rows + next.features.rows > self.max_rows {
                break;
            }
            rows += next.features.rows;
            taken.push(state.queue.remove(0));
        }
        self.queued.fetch_sub(taken.len(), Ordering::AcqRel);
        state.leading = false;
        drop(state);
        // Another queued request may lead the next batch while this one runs.
        self.changed.notify_all();
        let answers = self.run(taken);
        let mut state = self.lock();
        self.busy.store(false, Ordering::Release);
        state.done.extend(answers);
        let own = state.done.remove(&ticket);
        drop(state);
        self.changed.notify_all();
        own.unwrap_or_else(|| Err(StepError::new("the batch lost this request's answer")))
    }

    /// One call for the batch, its outputs split back by request; one call per request if it fails.
    fn run(&self, taken: Vec<Queued>) -> Vec<(u64, Result<Vec<Value>, StepError>)> {
        let columns = taken.first().map_or(0, |q| q.features.columns);
        if taken.len() > 1 && taken.iter().all(|q| q.features.columns == columns) {
            let rows: usize = taken.iter().map(|q| q.features.rows).sum();
            let mut values = Vec::with_capacity(rows * columns);
            for queued in &taken {
                values.extend_from_slice(&queued.features.values);
            }
            if let Ok(outputs) = self.model.predict(Features { values, rows, columns })
                && outputs.len() == rows
            {
                let mut outputs = outputs.into_iter();
                return taken
                    .into_iter()
                    .map(|queued| (queued.ticket, Ok(outputs.by_ref().take(queued.features.rows).collect())))
                    .collect();
            }
        }
        taken.into_iter().map(|queued| (queued.ticket, self.model.predict(queued.features))).collect()
    }
}

/// Blocks the calling thread while a batch fills; on a multi-threaded tokio runtime, tells it
/// first, so that its other tasks move to other threads (the request handlers keep running).
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

impl Model for Batched {
    fn preprocess(&self, body: Value) -> Result<Value, StepError> {
        self.model.preprocess(body)
    }

    fn validate(&self, features: &Features) -> Result<(), StepError> {
        self.model.validate(features)
    }

    fn predict(&self, features: Features) -> Result<Vec<Value>, StepError> {
        blocking(|| self.batch(features))
    }

    fn predict_with(&self, features: Features, parameters: &Map<String, Value>) -> Result<Vec<Value>, StepError> {
        if parameters.is_empty() { self.predict(features) } else { self.model.predict_with(features, parameters) }
    }

    fn postprocess(&self, outputs: Vec<Value>) -> Result<Vec<Value>, StepError> {
        self.model.postprocess(outputs)
    }

    fn explain(&self, features: &Features) -> Result<Value, StepError> {
        self.model.explain(features)
    }

    fn operation(&self, operation: &str, body: Value) -> Option<Result<Value, StepError>> {
        self.model.operation(operation, body)
    }

    fn input_width(&self) -> Option<usize> {
        self.model.input_width()
    }

    fn is_regressor(&self) -> bool {
        self.model.is_regressor()
    }

    fn output_datatype(&self) -> &'static str {
        self.model.output_datatype()
    }

    fn inputs(&self) -> Vec<TensorSpec> {
        self.model.inputs()
    }

    fn outputs(&self) -> Vec<TensorSpec> {
        self.model.outputs()
    }
}
