//! A hash map for keys that clients choose (buyer names, idempotency keys): hashed with
//! std's randomly keyed SipHash, so nobody can aim many keys at one bucket, and each
//! entry keeps its hash, so growing the table moves entries without hashing them again
//! and one hash computed by the caller serves every lookup of a request.

use std::hash::{BuildHasher, Hash, RandomState};

use hashbrown::hash_table::Entry;
use hashbrown::{Equivalent, HashTable};

/// An entry and the hash it is filed under.
#[derive(Debug)]
struct Slot<K, V> {
    hash: u64,
    key: K,
    value: V,
}

/// A map from client-chosen keys `K` to `V`; lookups take the key's hash from
/// [`ClientKeyed::hash`] and any form `Q` of the key that hashes as `K` does.
#[derive(Debug)]
pub(super) struct ClientKeyed<K, V> {
    hasher: RandomState,
    table: HashTable<Slot<K, V>>,
}

impl<K, V> Default for ClientKeyed<K, V> {
    fn default() -> Self {
        Self::with_hasher(RandomState::new())
    }
}

impl<K, V> ClientKeyed<K, V> {
    /// An empty map hashing with `hasher`: maps made with clones of one hasher take the
    /// same hashes.
    pub(super) fn with_hasher(hasher: RandomState) -> Self {
        Self {
            hasher,
            table: HashTable::new(),
        }
    }

    /// The hash `key` is filed under in this map.
    pub(super) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    pub(super) fn get<Q: Equivalent<K> + ?Sized>(&self, hash: u64, key: &Q) -> Option<&V> {
        self.table
            .find(hash, |s| s.hash == hash && key.equivalent(&s.key))
            .map(|s| &s.value)
    }

    pub(super) fn get_mut<Q: Equivalent<K> + ?Sized>(
        &mut self,
        hash: u64,
        key: &Q,
    ) -> Option<&mut V> {
        self.table
            .find_mut(hash, |s| s.hash == hash && key.equivalent(&s.key))
            .map(|s| &mut s.value)
    }

    /// The value of `key`, inserting `make()` under `own(key)` when it is absent: the
    /// key is copied only for a new entry.
    pub(super) fn get_or_insert_with<Q: Equivalent<K> + ?Sized>(
        &mut self,
        hash: u64,
        key: &Q,
        own: impl FnOnce(&Q) -> K,
        make: impl FnOnce() -> V,
    ) -> &mut V {
        let slot = self
            .table
            .entry(
                hash,
                |s| s.hash == hash && key.equivalent(&s.key),
                |s| s.hash,
            )
            .or_insert_with(|| Slot {
                hash,
                key: own(key),
                value: make(),
            });
        &mut slot.into_mut().value
    }

    /// Sets `key` to `value`, replacing any value it had.
    pub(super) fn insert(&mut self, hash: u64, key: K, value: V)
    where
        K: Eq,
    {
        match self
            .table
            .entry(hash, |s| s.hash == hash && s.key == key, |s| s.hash)
        {
            Entry::Occupied(mut slot) => slot.get_mut().value = value,
            Entry::Vacant(free) => {
                free.insert(Slot { hash, key, value });
            }
        }
    }

    pub(super) fn remove<Q: Equivalent<K> + ?Sized>(&mut self, hash: u64, key: &Q) -> Option<V> {
        let found = self
            .table
            .find_entry(hash, |s| s.hash == hash && key.equivalent(&s.key));
        found.ok().map(|entry| entry.remove().0.value)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::ClientKeyed;

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u32),
        Add(u8, u32),
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<u8>(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (any::<u8>(), 0..10u32).prop_map(|(k, v)| Op::Add(k, v)),
            any::<u8>().prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// Whatever is inserted, added to and removed, in any order and through any
        /// number of table growths, the map holds what std's `HashMap` holds.
        #[test]
        fn behaves_as_a_hash_map(ops in proptest::collection::vec(op(), 0..600)) {
            let mut map: ClientKeyed<String, u32> = ClientKeyed::default();
            let mut model: HashMap<String, u32> = HashMap::new();
            for op in ops {
                match op {
                    Op::Insert(k, v) => {
                        let key = format!("buyer-{k}");
                        map.insert(map.hash(key.as_str()), key.clone(), v);
                        model.insert(key, v);
                    }
                    Op::Add(k, n) => {
                        let key = format!("buyer-{k}");
                        let hash = map.hash(key.as_str());
                        let value = map.get_or_insert_with(hash, key.as_str(), str::to_owned, || 0);
                        *value = value.wrapping_add(n);
                        let expected = model.entry(key).or_default();
                        *expected = expected.wrapping_add(n);
                    }
                    Op::Remove(k) => {
                        let key = format!("buyer-{k}");
                        let hash = map.hash(key.as_str());
                        prop_assert_eq!(map.remove(hash, key.as_str()), model.remove(&key));
                    }
                }
                prop_assert_eq!(map.len(), model.len());
            }
            for k in 0..=u8::MAX {
                let key = format!("buyer-{k}");
                let hash = map.hash(key.as_str());
                prop_assert_eq!(map.get(hash, key.as_str()), model.get(&key));
            }
        }
    }

    #[test]
    fn maps_made_with_one_hasher_take_the_same_hashes() {
        let hasher = std::hash::RandomState::new();
        let first: ClientKeyed<String, ()> = ClientKeyed::with_hasher(hasher.clone());
        let second: ClientKeyed<String, ()> = ClientKeyed::with_hasher(hasher);
        assert_eq!(first.hash("alice"), second.hash("alice"));
        assert_eq!(first.hash(&("alice", "k1")), second.hash(&("alice", "k1")));
    }
}
