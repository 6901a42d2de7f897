//! Label sets: sorted by name, unique names, no empty values (Prometheus drops labels
//! with empty values, so `{a=""}` and `{}` are the same series).

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, LazyLock, Mutex};

/// The label that holds the metric name.
pub const METRIC_NAME: &str = "__name__";

/// One label pair. Names and values are shared strings so that a label set can be cloned
/// cheaply between the head, the index and query results.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Label {
    pub name: Arc<str>,
    pub value: Arc<str>,
}

/// A sorted, duplicate-free set of labels, immutable and shared: cloning one (as query
/// results do for every point) is a reference-count increment, and two clones of the same
/// set compare equal by pointer before comparing contents.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Labels(Arc<[Label]>);

impl Default for Labels {
    fn default() -> Labels {
        Labels::empty()
    }
}

thread_local! {
    /// The empty set, shared so that scalar results allocate nothing per step.
    static EMPTY: Labels = Labels(Arc::from(Vec::new()));
}

impl Labels {
    pub fn empty() -> Labels {
        EMPTY.with(Labels::clone)
    }

    /// Whether both are clones of one set (same allocation); equal sets built separately
    /// are not.
    pub fn ptr_eq(&self, other: &Labels) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Builds a label set from pairs in any order. Later duplicates win; empty values are
    /// dropped.
    pub fn from_pairs<N: AsRef<str>, V: AsRef<str>>(
        pairs: impl IntoIterator<Item = (N, V)>,
    ) -> Labels {
        let mut b = LabelsBuilder::default();
        for (n, v) in pairs {
            b.set(n.as_ref(), v.as_ref());
        }
        b.build()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|l| (*l.name).cmp(name))
            .ok()
            .map(|i| &*self.0[i].value)
    }

    /// The address of the shared set: equal for clones of one set, distinct for sets
    /// alive at the same time that were built separately.
    pub fn address(&self) -> usize {
        Arc::as_ptr(&self.0).cast::<Label>() as usize
    }

    pub fn metric_name(&self) -> Option<&str> {
        self.get(METRIC_NAME)
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Label> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether this set holds exactly `pairs`, in order (a set is sorted, so pairs in
    /// another order, with an empty value or a repeated name never match).
    pub fn equals_pairs(&self, pairs: &[(&[u8], &[u8])]) -> bool {
        self.0.len() == pairs.len()
            && self
                .0
                .iter()
                .zip(pairs)
                .all(|(l, (n, v))| l.name.as_bytes() == *n && l.value.as_bytes() == *v)
    }
}

/// Hashes a label set given as pairs in label order with `state`'s hasher: equal for a
/// [`Labels`] and its own pairs, so a series can be found from pairs borrowed off the wire
/// before (and without) building a `Labels`.
pub fn hash_pairs<'a>(
    state: &impl std::hash::BuildHasher,
    pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>,
) -> u64 {
    use std::hash::Hasher;
    let mut h = state.build_hasher();
    for (n, v) in pairs {
        // 0xff never occurs in UTF-8, so the separators keep ("ab","c") and ("a","bc")
        // apart (bytes that are not UTF-8 match no label set anyway).
        h.write(n);
        h.write_u8(0xff);
        h.write(v);
        h.write_u8(0xff);
    }
    h.finish()
}

/// The label strings of long-lived label sets (the head's series, the scrape caches), one
/// copy each: names and values repeat across series (every series of a target carries its
/// `job` and `instance`, a metric name its whole family's), and a copy per series was most
/// of what a stored series cost in memory.
struct SharedStrings {
    set: HashSet<Arc<str>, foldhash::fast::RandomState>,
    /// Strings in use after the last purge: the next purge comes when the set has doubled,
    /// so forgetting strings no set uses any more costs O(1) per string, amortized.
    live_after_purge: usize,
}

static SHARED_STRINGS: LazyLock<Mutex<SharedStrings>> = LazyLock::new(|| {
    Mutex::new(SharedStrings {
        set: HashSet::default(),
        live_after_purge: 0,
    })
});

impl SharedStrings {
    fn share(&mut self, s: &Arc<str>) -> Arc<str> {
        if let Some(shared) = self.set.get(&**s) {
            return shared.clone();
        }
        if self.set.len() >= 2 * self.live_after_purge + 1024 {
            // Only the set itself holds a string whose count is 1; clones are only made
            // under this lock, so none can appear while it is held.
            self.set.retain(|x| Arc::strong_count(x) > 1);
            self.live_after_purge = self.set.len();
        }
        self.set.insert(s.clone());
        s.clone()
    }
}

impl Labels {
    /// This set with its strings replaced by shared copies ([`SharedStrings`]), for sets
    /// that live long. A set whose strings are all shared already comes back as itself.
    pub fn interned(&self) -> Labels {
        let mut shared = SHARED_STRINGS.lock().unwrap_or_else(|e| e.into_inner());
        let is_shared = |s: &Arc<str>, shared: &SharedStrings| {
            shared.set.get(&**s).is_some_and(|x| Arc::ptr_eq(x, s))
        };
        if self
            .0
            .iter()
            .all(|l| is_shared(&l.name, &shared) && is_shared(&l.value, &shared))
        {
            return self.clone();
        }
        Labels(
            self.0
                .iter()
                .map(|l| Label {
                    name: shared.share(&l.name),
                    value: shared.share(&l.value),
                })
                .collect(),
        )
    }

    /// [`hash_pairs`] of this set.
    pub fn hash_with(&self, state: &impl std::hash::BuildHasher) -> u64 {
        hash_pairs(
            state,
            self.0
                .iter()
                .map(|l| (l.name.as_bytes(), l.value.as_bytes())),
        )
    }

    /// A copy without the metric name (what most PromQL functions return).
    pub fn without_name(&self) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|l| &*l.name != METRIC_NAME)
                .cloned()
                .collect(),
        )
    }

    /// A copy keeping only the named labels (`by`/`on`).
    pub fn keep_only(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|l| names.iter().any(|n| **n == *l.name))
                .cloned()
                .collect(),
        )
    }

    /// A copy without the named labels (`without`/`ignoring`); also drops the metric name.
    pub fn drop_names(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|l| &*l.name != METRIC_NAME && !names.iter().any(|n| **n == *l.name))
                .cloned()
                .collect(),
        )
    }

    pub fn into_builder(self) -> LabelsBuilder {
        LabelsBuilder {
            labels: self.0.to_vec(),
        }
    }

    pub fn as_slice(&self) -> &[Label] {
        &self.0
    }
}

impl fmt::Display for Labels {
    /// Prometheus' text form: `name{a="b", c="d"}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.metric_name();
        if let Some(n) = name {
            f.write_str(n)?;
        }
        let mut rest = self.0.iter().filter(|l| &*l.name != METRIC_NAME).peekable();
        if name.is_some() && rest.peek().is_none() {
            return Ok(());
        }
        f.write_str("{")?;
        let mut first = true;
        for l in rest {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{}={:?}", l.name, &*l.value)?;
        }
        f.write_str("}")
    }
}

impl<'a> IntoIterator for &'a Labels {
    type Item = &'a Label;
    type IntoIter = std::slice::Iter<'a, Label>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Mutable label set that keeps the sort invariant.
#[derive(Debug, Clone, Default)]
pub struct LabelsBuilder {
    labels: Vec<Label>,
}

impl LabelsBuilder {
    /// Sets `name` to `value`; an empty value removes the label.
    pub fn set(&mut self, name: &str, value: &str) -> &mut Self {
        match self.labels.binary_search_by(|l| (*l.name).cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.labels.remove(i);
            }
            Ok(i) => self.labels[i].value = Arc::from(value),
            Err(_) if value.is_empty() => {}
            Err(i) => self.labels.insert(
                i,
                Label {
                    name: Arc::from(name),
                    value: Arc::from(value),
                },
            ),
        }
        self
    }

    pub fn remove(&mut self, name: &str) -> &mut Self {
        self.set(name, "")
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.labels
            .binary_search_by(|l| (*l.name).cmp(name))
            .ok()
            .map(|i| &*self.labels[i].value)
    }

    pub fn build(self) -> Labels {
        Labels(self.labels.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_sorted_and_empty_values_dropped() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("__name__", "up")]);
        let names: Vec<&str> = l.iter().map(|l| &*l.name).collect();
        assert_eq!(names, ["__name__", "a", "b"]);
        assert_eq!(l.get("a"), Some("1"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn interned_sets_share_their_strings_and_keep_their_contents() {
        let a = Labels::from_pairs([("__name__", "interned_test_metric"), ("job", "node")]);
        let b = Labels::from_pairs([("__name__", "interned_test_metric"), ("job", "other")]);
        let (ia, ib) = (a.interned(), b.interned());
        assert_eq!((&ia, &ib), (&a, &b));
        assert!(Arc::ptr_eq(&ia.0[0].value, &ib.0[0].value));
        assert!(!Arc::ptr_eq(&a.0[0].value, &b.0[0].value));
        // Already shared: the same set back, not a copy.
        assert!(ia.interned().ptr_eq(&ia));
    }

    #[test]
    fn display_matches_prometheus_text_form() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "node")]);
        assert_eq!(l.to_string(), r#"up{job="node"}"#);
        assert_eq!(Labels::from_pairs([("__name__", "up")]).to_string(), "up");
        assert_eq!(Labels::from_pairs([("a", "x")]).to_string(), r#"{a="x"}"#);
    }
}
