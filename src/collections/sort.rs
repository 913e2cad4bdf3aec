//! One stable sort for the whole binary.
//!
//! `slice::sort_by` is generic over the element and the comparator, so every call site gets its own
//! copy of the standard library's driftsort (about 4 KB of code plus unwind tables each; ~17 sites
//! came to ~80 KB, docs/binary-size.md). [`sort_by`] sorts a list of indices instead, through a
//! comparator behind `&dyn`, so driftsort exists once; what remains per call site is a few lines
//! that collect the indices and apply the permutation. Same result as `sort_by`: stable, O(n log n).
//! Used where lists are short (units, routes, boot entries, timeline stamps); nothing hot.

use std::cmp::Ordering;

/// Sorts `v` stably by `cmp`, like `v.sort_by(cmp)`.
pub fn sort_by<T>(v: &mut [T], cmp: impl Fn(&T, &T) -> Ordering) {
    let mut order: Vec<usize> = (0..v.len()).collect();
    sort_indices(&mut order, &|a, b| cmp(&v[a], &v[b]));
    permute(&mut order, &mut |a, b| v.swap(a, b));
}

/// Sorts `v` stably by the key `key` returns, like `v.sort_by_key(key)`.
pub fn sort_by_key<T, K: Ord>(v: &mut [T], key: impl Fn(&T) -> K) {
    sort_by(v, |a, b| key(a).cmp(&key(b)));
}

/// Sorts `v` in its natural order, like `v.sort()`.
pub fn sort<T: Ord>(v: &mut [T]) {
    sort_by(v, T::cmp);
}

/// The one instance of the standard library's stable sort.
fn sort_indices(order: &mut [usize], cmp: &dyn Fn(usize, usize) -> Ordering) {
    order.sort_by(|&a, &b| cmp(a, b));
}

/// Rearranges a slice so that position `i` holds what was at `order[i]`, through `swap` alone:
/// each cycle of the permutation is walked once, carrying the cycle's first element along.
/// `order` is consumed (each visited entry is set to its own index).
fn permute(order: &mut [usize], swap: &mut dyn FnMut(usize, usize)) {
    for start in 0..order.len() {
        let mut at = start;
        loop {
            let from = order[at];
            order[at] = at;
            if from == start || from == at {
                break;
            }
            swap(at, from);
            at = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_stable_sort() {
        // A deterministic spread of lengths and duplicate-heavy keys; stability shows in the
        // second tuple field.
        let mut next = super::super::xorshift(0x9e37_79b9_7f4a_7c15_u64);
        for len in [0usize, 1, 2, 3, 7, 20, 64, 257, 1000] {
            let v: Vec<(u8, usize)> = (0..len).map(|i| ((next() % 11) as u8, i)).collect();
            let mut want = v.clone();
            want.sort_by_key(|e| e.0);
            let mut got = v.clone();
            sort_by_key(&mut got, |e| e.0);
            assert_eq!(got, want, "len {len}");
            let mut want = v.clone();
            want.sort_by(|a, b| b.cmp(a));
            let mut got = v;
            sort_by(&mut got, |a, b| b.cmp(a));
            assert_eq!(got, want, "len {len} reversed");
        }
    }

    #[test]
    fn sorts_owned_values_without_cloning() {
        let mut v: Vec<String> = ["b", "c", "a", "b"].iter().map(|s| s.to_string()).collect();
        sort(&mut v);
        assert_eq!(v, ["a", "b", "b", "c"]);
    }
}
