//! Label sets: sorted by name, unique names, no empty values (Prometheus drops labels
//! with empty values, so `{a=""}` and `{}` are the same series).

use std::fmt;
use std::sync::Arc;

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
    pub fn equals_pairs(&self, pairs: &[(&str, &str)]) -> bool {
        self.0.len() == pairs.len()
            && self
                .0
                .iter()
                .zip(pairs)
                .all(|(l, (n, v))| *l.name == **n && *l.value == **v)
    }
}

/// Hashes a label set given as pairs in label order with `state`'s hasher: equal for a
/// [`Labels`] and its own pairs, so a series can be found from pairs borrowed off the wire
/// before (and without) building a `Labels`.
pub fn hash_pairs<'a>(
    state: &impl std::hash::BuildHasher,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> u64 {
    use std::hash::Hasher;
    let mut h = state.build_hasher();
    for (n, v) in pairs {
        // 0xff never occurs in UTF-8, so the separators keep ("ab","c") and ("a","bc") apart.
        h.write(n.as_bytes());
        h.write_u8(0xff);
        h.write(v.as_bytes());
        h.write_u8(0xff);
    }
    h.finish()
}

impl Labels {
    /// [`hash_pairs`] of this set.
    pub fn hash_with(&self, state: &impl std::hash::BuildHasher) -> u64 {
        hash_pairs(state, self.0.iter().map(|l| (&*l.name, &*l.value)))
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
    fn display_matches_prometheus_text_form() {
        let l = Labels::from_pairs([("__name__", "up"), ("job", "node")]);
        assert_eq!(l.to_string(), r#"up{job="node"}"#);
        assert_eq!(Labels::from_pairs([("__name__", "up")]).to_string(), "up");
        assert_eq!(Labels::from_pairs([("a", "x")]).to_string(), r#"{a="x"}"#);
    }
}
