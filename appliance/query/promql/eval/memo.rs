//! What an operator works out from its inputs' label sets (an aggregation's group, a
//! binary operation's match signature and result labels), remembered across the steps of
//! a batch. Selectors and range functions hand out the same shared `Labels` at every
//! step, so a set met before is found by its address alone, without hashing or comparing
//! its labels again, let alone building new sets.

use crate::model::Labels;
use std::collections::HashMap;

/// Values keyed by the addresses of one or two label sets. Each entry holds its sets, so
/// an address cannot be reused by another set while the entry lives.
pub(super) struct LabelMemo<V> {
    map: HashMap<(usize, usize), (Labels, Option<Labels>, V)>,
    /// Off once steps keep bringing new sets (an operand that builds its labels at every
    /// step): then the map would only grow.
    remember: bool,
    steps: usize,
    lookups: usize,
    misses: usize,
}

impl<V> Default for LabelMemo<V> {
    fn default() -> Self {
        LabelMemo {
            map: HashMap::new(),
            remember: true,
            steps: 0,
            lookups: 0,
            misses: 0,
        }
    }
}

impl<V: Clone> LabelMemo<V> {
    /// The value for `a` (and `b`), computed by `f` when not remembered.
    pub(super) fn get(&mut self, a: &Labels, b: Option<&Labels>, f: impl FnOnce() -> V) -> V {
        if !self.remember {
            return f();
        }
        self.lookups += 1;
        let key = (a.address(), b.map_or(0, Labels::address));
        if let Some((_, _, v)) = self.map.get(&key) {
            return v.clone();
        }
        self.misses += 1;
        let v = f();
        self.map.insert(key, (a.clone(), b.cloned(), v.clone()));
        v
    }

    /// Ends a step: from the third on, a step that met mostly new sets turns the memo off.
    pub(super) fn step_done(&mut self) {
        self.steps += 1;
        if self.steps > 2 && self.misses * 2 > self.lookups {
            self.remember = false;
            self.map = HashMap::new();
        }
        (self.lookups, self.misses) = (0, 0);
    }

    #[cfg(test)]
    pub(super) fn remembering(&self) -> usize {
        if self.remember { self.map.len() } else { 0 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_shared_sets_and_stops_for_rebuilt_ones() {
        let set = |i: usize| Labels::from_pairs([("i", i.to_string().as_str())]);
        let shared: Vec<Labels> = (0..10).map(set).collect();
        let mut memo: LabelMemo<usize> = LabelMemo::default();
        let mut computed = 0;
        for _ in 0..5 {
            for (i, l) in shared.iter().enumerate() {
                let v = memo.get(l, None, || {
                    computed += 1;
                    i
                });
                assert_eq!(v, i);
            }
            memo.step_done();
        }
        assert_eq!((computed, memo.remembering()), (10, 10));
        let mut memo: LabelMemo<usize> = LabelMemo::default();
        for _ in 0..5 {
            for i in 0..10 {
                assert_eq!(memo.get(&set(i), Some(&shared[0]), || i), i);
            }
            memo.step_done();
        }
        assert_eq!(memo.remembering(), 0);
    }
}
