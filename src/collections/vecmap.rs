//! An ordered map for a handful of entries: a sorted vector, searched by bisection.
//!
//! For tables that hold a few entries at most (the ops sessions: four by default) a B-tree brings
//! its whole insert, remove and rebalancing code (~5 KB per key/value pair, docs/binary-size.md)
//! for nothing: [`VecMap`] is a `Vec<(K, V)>` kept in key order, with the `BTreeMap` methods its
//! users call. Inserting and removing move the entries behind, which is nothing at this size.

use std::fmt;

/// A `BTreeMap` stand-in for small tables (see the module documentation).
pub struct VecMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for VecMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> VecMap<K, V> {
    pub const fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<K: Ord, V> VecMap<K, V> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn find(&self, key: &K) -> Result<usize, usize> {
        self.entries.binary_search_by(|(k, _)| k.cmp(key))
    }

    pub fn get(&self, key: &K) -> Option<&V> {
        let i = self.find(key).ok()?;
        self.entries.get(i).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let i = self.find(key).ok()?;
        self.entries.get_mut(i).map(|(_, v)| v)
    }

    /// Inserts `value` under `key`; returns the value it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => self
                .entries
                .get_mut(i)
                .map(|(_, v)| std::mem::replace(v, value)),
            Err(i) => {
                self.entries.insert(i, (key, value));
                None
            }
        }
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.find(key).ok()?;
        Some(self.entries.remove(i).1)
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn iter_mut(&mut self) -> impl DoubleEndedIterator<Item = (&K, &mut V)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &K> {
        self.entries.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl DoubleEndedIterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a mut VecMap<K, V> {
    type Item = (&'a K, &'a mut V);
    type IntoIter =
        std::iter::Map<std::slice::IterMut<'a, (K, V)>, fn(&'a mut (K, V)) -> (&'a K, &'a mut V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for VecMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(k, v)| (k, v)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// Random operations against `BTreeMap<u64, u64>`: same answers, same contents, same order.
    #[test]
    fn behaves_like_a_btreemap() {
        let mut next = super::super::xorshift(0x2545_f491_4f6c_dd1du64);
        let mut ours = VecMap::new();
        let mut theirs = BTreeMap::new();
        for step in 0..20_000u64 {
            let key = next() % 16;
            match next() % 4 {
                0 | 1 => assert_eq!(ours.insert(key, step), theirs.insert(key, step)),
                2 => assert_eq!(ours.remove(&key), theirs.remove(&key)),
                _ => {
                    if let Some(v) = ours.get_mut(&key) {
                        *v += 1;
                    }
                    if let Some(v) = theirs.get_mut(&key) {
                        *v += 1;
                    }
                }
            }
            assert_eq!(ours.len(), theirs.len());
            assert_eq!(ours.get(&key), theirs.get(&key));
        }
        for (_, v) in &mut ours {
            *v += 3;
        }
        for v in theirs.values_mut() {
            *v += 3;
        }
        assert!(ours.iter().eq(theirs.iter()));
        assert!(ours.iter().rev().eq(theirs.iter().rev()));
        assert!(ours.keys().eq(theirs.keys()));
        assert!(ours.values().eq(theirs.values()));
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
        for (_, v) in ours.iter_mut() {
            *v = 0;
        }
        assert!(ours.values().all(|v| *v == 0));
        assert_eq!(ours.is_empty(), theirs.is_empty());
    }
}
