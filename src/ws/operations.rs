//! What one connection has running, by operation id.

use std::collections::HashMap;
use std::sync::Arc;

use subhub_subscriptions::Slot;

pub use crate::operation::OperationHandle;

#[derive(Default)]
pub struct Operations(HashMap<Box<str>, OperationHandle>);

impl Operations {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn insert(&mut self, id: &str, running: OperationHandle) {
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
