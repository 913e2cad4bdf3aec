//! One ordered map code path per key type, whatever the values.
//!
//! `BTreeMap<K, V>` is generic over the value as well as the key: each value type the crate
//! stored got its own copy of the B-tree's insert, remove, rebalancing, search and drop code
//! (about 5 KB with unwind tables per pair; ~30 key/value pairs came to ~165 KB,
//! docs/binary-size.md). [`KeyMap`] keeps the keys in one `BTreeMap<K, u32>` and the values in a
//! slot vector, so the tree code exists once per key type (`String`, `i32`, `u32`); what remains
//! per value type is a few lines of `Vec` indexing. Same behaviour as a `BTreeMap<K, V>`:
//! iteration in key order, `get` by a borrowed key (`&str`), `insert` returning the old value,
//! `entry(..).or_default()`. [`StrMap`] is the string-keyed form, [`FdMap`] the `i32` one
//! (descriptors, pids).
//!
//! A removed value's slot is reused by the next insert, so a map that churns does not grow.

use std::borrow::Borrow;
use std::collections::btree_map;
use std::collections::BTreeMap;
use std::fmt;

/// An ordered map from `K` to `V` whose tree code depends on `K` alone (see the module
/// documentation for why).
#[derive(Clone)]
pub struct KeyMap<K, V> {
    index: BTreeMap<K, u32>,
    slots: Vec<Option<V>>,
    free: Vec<u32>,
}

/// The string-keyed form, the common one.
pub type StrMap<V> = KeyMap<String, V>;

/// Key types share the tree code too: descriptors and pids (`i32`), interface indices (`u32`).
pub type FdMap<V> = KeyMap<i32, V>;

impl<K, V> Default for KeyMap<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> KeyMap<K, V> {
    pub const fn new() -> Self {
        Self {
            index: BTreeMap::new(),
            slots: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<K: Ord, V> KeyMap<K, V> {
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn clear(&mut self) {
        self.index.clear();
        self.slots.clear();
        self.free.clear();
    }

    pub fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.index.contains_key(key)
    }

    pub fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        let i = *self.index.get(key)?;
        self.slots.get(i as usize)?.as_ref()
    }

    pub fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        let i = *self.index.get(key)?;
        self.slots.get_mut(i as usize)?.as_mut()
    }

    /// Inserts `value` under `key`; returns the value it replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if let Some(&i) = self.index.get(&key) {
            if let Some(slot) = self.slots.get_mut(i as usize) {
                return slot.replace(value);
            }
        }
        let i = self.place(value);
        self.index.insert(key, i);
        None
    }

    pub fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        let i = self.index.remove(key)?;
        let value = self.slots.get_mut(i as usize)?.take();
        self.free.push(i);
        value
    }

    /// The value under `key`, inserted by `make` first when there is none.
    pub fn get_or_insert_with(&mut self, key: K, make: impl FnOnce() -> V) -> &mut V {
        let i = match self.index.get(&key) {
            Some(&i) => i,
            None => {
                let i = self.reserve();
                self.index.insert(key, i);
                i
            }
        };
        self.slots[i as usize].get_or_insert_with(make)
    }

    /// `BTreeMap`'s `entry(key)`, for the `or_default`/`or_insert_with` forms.
    pub fn entry(&mut self, key: K) -> Entry<'_, K, V> {
        Entry { map: self, key }
    }

    /// Keeps the entries `keep` says yes to.
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool)
    where
        K: Clone,
    {
        let mut gone = Vec::new();
        for (k, &i) in &self.index {
            if let Some(Some(v)) = self.slots.get_mut(i as usize) {
                if !keep(k, v) {
                    gone.push(k.clone());
                }
            }
        }
        for k in gone {
            self.remove(&k);
        }
    }

    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter {
            keys: self.index.iter(),
            slots: &self.slots,
        }
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        // One `&mut` per slot, handed out in key order (each slot has at most one key).
        let mut values: Vec<Option<&mut V>> = self.slots.iter_mut().map(Option::as_mut).collect();
        self.index
            .iter()
            .filter_map(move |(k, &i)| Some((k, values.get_mut(i as usize)?.take()?)))
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.iter_mut().map(|(_, v)| v)
    }

    pub fn keys(&self) -> btree_map::Keys<'_, K, u32> {
        self.index.keys()
    }

    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }

    pub fn first_key_value(&self) -> Option<(&K, &V)> {
        self.iter().next()
    }

    fn place(&mut self, value: V) -> u32 {
        let i = self.reserve();
        self.slots[i as usize] = Some(value);
        i
    }

    /// An empty slot: a freed one, or a new one at the end.
    fn reserve(&mut self) -> u32 {
        match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        }
    }
}

/// The entry for one key (see [`StrMap::entry`]).
pub struct Entry<'a, K, V> {
    map: &'a mut KeyMap<K, V>,
    key: K,
}

impl<'a, K: Ord, V> Entry<'a, K, V> {
    pub fn or_insert_with(self, make: impl FnOnce() -> V) -> &'a mut V {
        self.map.get_or_insert_with(self.key, make)
    }

    pub fn or_insert(self, value: V) -> &'a mut V {
        self.or_insert_with(|| value)
    }
}

impl<'a, K: Ord, V: Default> Entry<'a, K, V> {
    pub fn or_default(self) -> &'a mut V {
        self.or_insert_with(V::default)
    }
}

/// Entries in key order.
pub struct Iter<'a, K, V> {
    keys: btree_map::Iter<'a, K, u32>,
    slots: &'a [Option<V>],
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        for (k, &i) in self.keys.by_ref() {
            if let Some(Some(v)) = self.slots.get(i as usize) {
                return Some((k, v));
            }
        }
        None
    }
}

impl<'a, K, V> DoubleEndedIterator for Iter<'a, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        while let Some((k, &i)) = self.keys.next_back() {
            if let Some(Some(v)) = self.slots.get(i as usize) {
                return Some((k, v));
            }
        }
        None
    }
}

impl<'a, K: Ord, V> IntoIterator for &'a KeyMap<K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Iter<'a, K, V> {
        self.iter()
    }
}

impl<K, V> IntoIterator for KeyMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    fn into_iter(mut self) -> Self::IntoIter {
        let index = std::mem::take(&mut self.index);
        let mut out = Vec::with_capacity(index.len());
        for (k, i) in index {
            if let Some(v) = self.slots.get_mut(i as usize).and_then(Option::take) {
                out.push((k, v));
            }
        }
        out.into_iter()
    }
}

impl<K: Ord, V> FromIterator<(K, V)> for KeyMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut m = Self::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl<K: Ord, V> Extend<(K, V)> for KeyMap<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            self.insert(k, v);
        }
    }
}

/// `map["key"]`, like `BTreeMap`'s: panics when the key is absent, so tests only.
#[cfg(test)]
impl<K: Ord + Borrow<str>, V> std::ops::Index<&str> for KeyMap<K, V> {
    type Output = V;

    fn index(&self, key: &str) -> &V {
        match self.get(key) {
            Some(v) => v,
            None => panic!("no entry for key {key:?}"),
        }
    }
}

impl<K: Ord, V: PartialEq> PartialEq for KeyMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<K: Ord, V: Eq> Eq for KeyMap<K, V> {}

impl<K: Ord + fmt::Debug, V: fmt::Debug> fmt::Debug for KeyMap<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Random operations against `BTreeMap<String, u64>`: same contents, same order, same
    /// returned values, and slots reused.
    #[test]
    fn behaves_like_a_btreemap() {
        let mut next = super::super::xorshift(0x2545_f491_4f6c_dd1du64);
        let mut ours: StrMap<u64> = StrMap::new();
        let mut theirs: BTreeMap<String, u64> = BTreeMap::new();
        for step in 0..20_000 {
            let key = format!("k{}", next() % 64);
            match next() % 6 {
                0 | 1 => assert_eq!(
                    ours.insert(key.clone(), step),
                    theirs.insert(key, step),
                    "insert"
                ),
                2 => assert_eq!(ours.remove(&key), theirs.remove(&key), "remove"),
                3 => {
                    *ours.entry(key.clone()).or_default() += 1;
                    *theirs.entry(key).or_default() += 1;
                }
                4 => {
                    if let Some(v) = ours.get_mut(&key) {
                        *v += 7;
                    }
                    if let Some(v) = theirs.get_mut(&key) {
                        *v += 7;
                    }
                }
                _ => {
                    let cut = next() % 1000;
                    ours.retain(|_, v| *v % 1000 != cut);
                    theirs.retain(|_, v| *v % 1000 != cut);
                }
            }
            assert_eq!(ours.len(), theirs.len());
            assert_eq!(
                ours.get(&format!("k{step}")),
                theirs.get(&format!("k{step}"))
            );
        }
        assert!(ours.iter().map(|(k, v)| (k.clone(), *v)).eq(theirs.clone()));
        assert!(ours
            .iter()
            .rev()
            .map(|(k, v)| (k.clone(), *v))
            .eq(theirs.clone().into_iter().rev()));
        for (_, v) in ours.iter_mut() {
            *v += 1;
        }
        for v in theirs.values_mut() {
            *v += 1;
        }
        assert!(ours.keys().eq(theirs.keys()));
        assert!(ours.values().eq(theirs.values()));
        assert!(ours.clone().into_iter().eq(theirs.clone()));
        // Churn over 64 keys never needs more than 64 slots.
        assert!(ours.slots.len() <= 64, "{} slots", ours.slots.len());
        assert_eq!(format!("{ours:?}"), format!("{theirs:?}"));
    }
}
