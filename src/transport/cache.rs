//! A per-run cache that loads each key at most once, even when many hosts ask at the same
//! moment: the first caller loads, the others wait for its answer (errors are kept too, so a
//! broken key file is reported once per host without being read again). A load that is
//! cancelled (its host's deadline passed) leaves the slot empty for the next caller.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

pub struct OnceMap<K, V> {
    slots: Mutex<HashMap<K, Arc<OnceCell<V>>>>,
}

impl<K, V> Default for OnceMap<K, V> {
    fn default() -> Self {
        OnceMap {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> OnceMap<K, V> {
    pub async fn get_or_load<F, Fut>(&self, key: &K, load: F) -> V
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = V>,
    {
        let slot = {
            let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
            slots.entry(key.clone()).or_default().clone()
        };
        slot.get_or_init(load).await.clone()
    }
}
