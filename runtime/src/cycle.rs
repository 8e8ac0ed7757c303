//! Loops in a flow (`allow_cycles = true;`): the edge back to an earlier step, and the count
//! that bounds how often an event goes round. A graph's type is composed statically, and a loop
//! would make it contain itself, so the edge back is the one indirection: a [`LoopBack`] holds a
//! weak reference to the step it returns to, bound once the pipeline is built (the forward path
//! owns the step; the loop does not keep it alive). Each step on a loop is an [`Iterated`]: it
//! counts the event's entries and fails the event, as a step failure of kind `max_iterations`
//! that its handler receives, past its cap, or once the caller's deadline has passed, so that a
//! loop is bounded in both count and time (docs/semantics.md, "Loops").

use crate::error::StepError;
use crate::event::Event;
use crate::node::{
    Catcher, ErasedNode, ErasedSyncNode, NoCatcher, Node, SyncNode, entry_copy, fail_or_catch, fail_or_catch_sync,
};
use crate::run::{Run, SyncRun};
use crate::step::Entry;
use std::sync::{Arc, OnceLock, Weak};

/// A step on a loop: entered at most `cap` times per event.
pub struct Iterated<N, C = NoCatcher> {
    /// The step's name.
    pub name: &'static str,
    /// How many times an event may enter it.
    pub cap: u32,
    /// The step itself.
    pub next: N,
    /// The step's error handler, which receives an event over the cap.
    pub catcher: C,
}

impl<N, C> Iterated<N, C> {
    /// A step entered at most `cap` times per event.
    pub fn new(name: &'static str, cap: u32, next: N, catcher: C) -> Self {
        Iterated { name, cap, next, catcher }
    }

    /// Why the event may not enter again, if it may not.
    fn refused(&self, event: &mut Event) -> Option<StepError> {
        let times = event.iterations.enter(self.name);
        if times > self.cap {
            return Some(StepError::max_iterations(format!(
                "the event entered `{}` {times} times; max_iterations is {}",
                self.name, self.cap
            )));
        }
        if event.time_left().is_some_and(|left| left.is_zero()) {
            return Some(StepError::timeout(format!(
                "the deadline passed while the event went round the loop through `{}` ({} times)",
                self.name,
                times - 1
            )));
        }
        None
    }
}

impl<N: Node, C: Catcher> Node for Iterated<N, C> {
    const WAITS: bool = N::WAITS || C::WAITS;
    const BLOCKS: bool = N::BLOCKS || C::BLOCKS;
    fn reads_time(&self) -> bool {
        self.next.reads_time() || self.catcher.reads_time()
    }
    async fn push(&self, event: &mut Event, run: &Run) {
        match self.refused(event) {
            None => self.next.push(event, run).await,
            Some(error) => {
                let entry = entry_copy::<C>(Entry::Kept, event, run.context()).map(|copy| copy.into_entry(event));
                fail_or_catch(self.name, entry, &error, &self.catcher, run).await;
            }
        }
    }
}

impl<N: SyncNode, C: Catcher> SyncNode for Iterated<N, C> {
    fn reads_time(&self) -> bool {
        self.next.reads_time() || self.catcher.reads_time()
    }
    fn push_sync(&self, event: &mut Event, run: &mut SyncRun<'_>) {
        match self.refused(event) {
            None => self.next.push_sync(event, run),
            Some(error) => {
                let copy = entry_copy::<C>(Entry::Kept, event, run.context());
                fail_or_catch_sync(self.name, copy, &error, &self.catcher, event, run);
            }
        }
    }
}

/// Where a loop returns to, on the tokio executor: bound to the step once it is built.
#[derive(Default)]
pub struct LoopSlot {
    target: OnceLock<Weak<dyn ErasedNode>>,
}

impl LoopSlot {
    /// An unbound slot, shared by the edges back to one step.
    pub fn new() -> Arc<LoopSlot> {
        Arc::default()
    }

    /// Binds the slot to the step the loop returns to; a second binding is ignored.
    pub fn bind<N: Node>(&self, step: &Arc<N>) {
        let weak: Weak<dyn ErasedNode> = Arc::downgrade(step) as Weak<dyn ErasedNode>;
        let _ = self.target.set(weak);
    }
}

/// An edge back to an earlier step, on the tokio executor.
pub struct LoopBack(Arc<LoopSlot>);

impl LoopBack {
    /// An edge back to the step `slot` is bound to.
    pub fn to(slot: &Arc<LoopSlot>) -> Self {
        LoopBack(Arc::clone(slot))
    }
}

impl Node for LoopBack {
    // The step it returns to is on the forward path too, which already says whether it waits,
    // blocks or reads the time: asking it again here would go round the loop.
    const WAITS: bool = false;
    const BLOCKS: bool = false;
    fn reads_time(&self) -> bool {
        false
    }
    async fn push(&self, event: &mut Event, run: &Run) {
        // Unbound or gone only while the pipeline is being built or dropped: nothing runs then.
        if let Some(step) = self.0.target.get().and_then(Weak::upgrade) {
            crate::node::with_stack(step.push_boxed(event, run)).await;
        }
    }
}

/// Where a loop returns to, on the sync executor; see [`LoopSlot`].
#[derive(Default)]
pub struct LoopSlotSync {
    target: OnceLock<Weak<dyn ErasedSyncNode>>,
}

impl LoopSlotSync {
    /// An unbound slot, shared by the edges back to one step.
    pub fn new() -> Arc<LoopSlotSync> {
        Arc::default()
    }

    /// Binds the slot to the step the loop returns to; a second binding is ignored.
    pub fn bind<N: SyncNode>(&self, step: &Arc<N>) {
        let weak: Weak<dyn ErasedSyncNode> = Arc::downgrade(step) as Weak<dyn ErasedSyncNode>;
        let _ = self.target.set(weak);
    }
}

/// An edge back to an earlier step, on the sync executor.
pub struct LoopBackSync(Arc<LoopSlotSync>);

impl LoopBackSync {
    /// An edge back to the step `slot` is bound to.
    pub fn to(slot: &Arc<LoopSlotSync>) -> Self {
        LoopBackSync(Arc::clone(slot))
    }
}

impl SyncNode for LoopBackSync {
    fn reads_time(&self) -> bool {
        false
    }
    fn push_sync(&self, event: &mut Event, run: &mut SyncRun<'_>) {
        if let Some(step) = self.0.target.get().and_then(Weak::upgrade) {
            stacker::maybe_grow(crate::node::RED_ZONE, crate::node::STACK_SEGMENT, || step.push_erased(event, run));
        }
    }
}
