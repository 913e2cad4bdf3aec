//! An ordered set that shares its tree code with [`KeyMap`](super::strmap::KeyMap)'s index.
//!
//! `BTreeSet<K>` is a `BTreeMap<K, SetValZST>`: a key/value pair of its own, so each set type
//! compiled another copy of the B-tree's insert, remove, rebalancing, search and drop code (about
//! 5 KB with unwind tables per key type, docs/binary-size.md). [`KeySet`] stores its keys in a
//! `BTreeMap<K, u32>`, the very instance `KeyMap<K, _>` already links for its index, and ignores
//! the value. Same behaviour as `BTreeSet<K>`: ascending iteration, lookups by borrowed key,
//! `insert` reporting whether the key was new (and keeping the stored key when it was not).

use std::borrow::Borrow;
use std::collections::btree_map;
use std::collections::BTreeMap;
use std::fmt;

/// An ordered set of `K` (see the module documentation for why not `BTreeSet`).
#[derive(Clone, PartialEq, Eq)]
pub struct KeySet<K> {
    index: BTreeMap<K, u32>,
}

/// The string form, the common one.
pub type StrSet = KeySet<String>;

impl<K> Default for KeySet<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K> KeySet<K> {
    pub const fn new() -> Self {
        Self {
            index: BTreeMap::new(),
        }
    }
}

impl<K: Ord> KeySet<K> {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn clear(&mut self) {
        self.index.clear();
    }

    pub fn contains<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.index.contains_key(key)
    }

    /// Adds `key`; false when it was there already (the stored key is kept, like `BTreeSet`).
    pub fn insert(&mut self, key: K) -> bool {
        // `BTreeMap::insert` keeps the stored key; the instance is the one `KeyMap` uses.
        self.index.insert(key, 0).is_none()
    }

    /// Removes `key`; false when it was not there.
    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.index.remove(key).is_some()
    }

    /// Removes and returns the smallest key.
    pub fn pop_first(&mut self) -> Option<K> {
        self.index.pop_first().map(|(k, _)| k)
    }

    pub fn first(&self) -> Option<&K> {
        self.index.keys().next()
    }

    /// Keys in ascending order.
    pub fn iter(&self) -> btree_map::Keys<'_, K, u32> {
        self.index.keys()
    }

    /// Keeps the keys `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        self.index.retain(|k, _| keep(k));
    }
}

impl<'a, K: Ord> IntoIterator for &'a KeySet<K> {
    type Item = &'a K;
    type IntoIter = btree_map::Keys<'a, K, u32>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl<K> IntoIterator for KeySet<K> {
    type Item = K;
    type IntoIter = btree_map::IntoKeys<K, u32>;

    fn into_iter(self) -> Self::IntoIter {
        self.index.into_keys()
    }
}

impl<K: Ord> FromIterator<K> for KeySet<K> {
    /// One insert at a time: `BTreeSet`'s `collect` sorts first, which links another copy of
    /// the standard sort per key type.
    fn from_iter<I: IntoIterator<Item = K>>(iter: I) -> Self {
        let mut s = Self::new();
        s.extend(iter);
        s
    }
}

impl<K: Ord> Extend<K> for KeySet<K> {
    fn extend<I: IntoIterator<Item = K>>(&mut self, iter: I) {
        for k in iter {
            self.insert(k);
        }
    }
}

impl<K: Ord, const N: usize> From<[K; N]> for KeySet<K> {
    fn from(keys: [K; N]) -> Self {
        keys.into_iter().collect()
    }
}

impl<K: fmt::Debug> fmt::Debug for KeySet<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.index.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Random operations against `BTreeSet<String>`: same answers, same contents, same order.
    #[test]
    fn behaves_like_a_btreeset() {
        let mut next = super::super::xorshift(0x9e37_79b9_7f4a_7c15_u64);
        let mut ours = StrSet::new();
        let mut theirs = BTreeSet::new();
        for _ in 0..20_000 {
            let key = format!("k{}", next() % 64);
            match next() % 7 {
                0 | 1 => assert_eq!(ours.insert(key.clone()), theirs.insert(key), "insert"),
                2 => assert_eq!(ours.remove(&key), theirs.remove(&key), "remove"),
                3 => assert_eq!(ours.contains(&key), theirs.contains(&key), "contains"),
                4 => assert_eq!(ours.pop_first(), theirs.pop_first(), "pop_first"),
                5 => {
                    let cut = format!("k{}", next() % 64);
                    ours.retain(|k| *k < cut);
                    theirs.retain(|k| *k < cut);
                }
                _ => assert_eq!(ours.first(), theirs.first(), "first"),
            }
            assert_eq!(ours.len(), theirs.len());
            assert_eq!(ours.is_empty(), theirs.is_empty());
        }
        ours.extend(["b".to_string(), "a".to_string(), "b".to_string()]);
        theirs.extend(["b".to_string(), "a".to_string(), "b".to_string()]);
        assert!(ours.iter().eq(theirs.iter()));
        assert!(ours.iter().rev().eq(theirs.iter().rev()));
        assert!(ours.clone().into_iter().eq(theirs.clone()));
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
        let collected: StrSet = theirs.iter().rev().cloned().collect();
        assert_eq!(collected, ours);
        assert_eq!(StrSet::from(["x".to_string()]).len(), 1);
    }
}
