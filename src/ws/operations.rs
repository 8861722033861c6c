//! What one connection has running, by operation id.

use std::collections::HashMap;
use std::sync::Arc;

use subhub_subscriptions::{Attachment, Outbox, Slot};
use tokio::task::JoinHandle;

/// A running operation. Dropping it stops it: a subscription leaves its shared execution, a
/// query or mutation is aborted.
pub enum Running {
    Subscription(Attachment),
    Single { slot: Arc<Slot>, outbox: Arc<Outbox>, task: JoinHandle<()> },
}

impl Running {
    fn slot(&self) -> &Arc<Slot> {
        match self {
            Running::Subscription(attachment) => attachment.slot(),
            Running::Single { slot, .. } => slot,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Running::Single { slot, outbox, task } = self {
            outbox.deactivate(slot);
            task.abort();
        }
    }
}

#[derive(Default)]
pub struct Operations(HashMap<Box<str>, Running>);

impl Operations {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn insert(&mut self, id: &str, running: Running) {
        self.0.insert(id.into(), running);
    }

    /// Stops the operation with this id.
    pub fn stop(&mut self, id: &str) {
        self.0.remove(id);
    }

    /// Forgets an operation that ended by itself, if `slot` is still the one running under its id.
    pub fn ended(&mut self, slot: &Arc<Slot>) -> bool {
        let current = self.0.get(&*slot.id).is_some_and(|running| Arc::ptr_eq(running.slot(), slot));
        if current {
            self.0.remove(&*slot.id);
        }
        current
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }
}
