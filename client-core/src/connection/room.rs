//! Giving back the room of emptied collections: a burst of calls grows queues and maps that an
//! idle connection should not keep (they stay at their largest size otherwise).

use std::collections::{HashMap, VecDeque};

/// A collection that can let go of its allocation once it holds nothing.
pub(crate) trait GiveBackRoom {
    /// Replaces the collection with a new, unallocated one if it is empty.
    fn give_back_if_empty(&mut self);
}

impl<T> GiveBackRoom for Vec<T> {
    fn give_back_if_empty(&mut self) {
        if self.is_empty() {
            *self = Vec::new();
        }
    }
}

impl<T> GiveBackRoom for VecDeque<T> {
    fn give_back_if_empty(&mut self) {
        if self.is_empty() {
            *self = VecDeque::new();
        }
    }
}

impl<K, V, S: Default> GiveBackRoom for HashMap<K, V, S> {
    fn give_back_if_empty(&mut self) {
        if self.is_empty() {
            *self = HashMap::default();
        }
    }
}
