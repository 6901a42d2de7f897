//! Introspection: what `/api/v1/status/tsdb` reports, computed from the head (which knows
//! every series and its labels) and from the per-partition counters kept in each file's
//! `meta` table, so it never reads chunk data.
//!
//! The head statistics mirror Prometheus' `tsdb/index/postings.go` (`MemPostings.Stats`):
//! `memoryInBytesByLabelName` is the summed length of a label name's distinct values, and
//! every list is sorted by value, largest first, and cut to `limit` entries.

use super::{Store, partition};
use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

/// One `{name, value}` entry of a top-N list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub name: String,
    pub value: u64,
}

/// Prometheus' `headStats`. Picket's head is its open chunks, so `minTime`/`maxTime` span
/// the samples still in memory (0 and 0 when there are none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeadStats {
    pub num_series: u64,
    pub num_label_pairs: u64,
    pub chunk_count: u64,
    pub min_time: i64,
    pub max_time: i64,
}

/// One storage tier (today only `raw`): its partition files and what they hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TierStatus {
    pub name: &'static str,
    /// Summed size of the tier's partition files.
    pub bytes: u64,
    pub partitions: u64,
    pub min_time: Option<i64>,
    pub max_time: Option<i64>,
    /// Samples written to the tier's partitions (a rewritten timestamp counts twice).
    pub samples: u64,
}

impl TierStatus {
    pub fn bytes_per_sample(&self) -> Option<f64> {
        (self.samples > 0).then(|| self.bytes as f64 / self.samples as f64)
    }
}

/// Everything `/api/v1/status/tsdb` returns.
#[derive(Debug, Clone, Default)]
pub struct TsdbStatus {
    pub head: HeadStats,
    pub series_count_by_metric_name: Vec<Stat>,
    pub label_value_count_by_label_name: Vec<Stat>,
    pub memory_in_bytes_by_label_name: Vec<Stat>,
    pub series_count_by_label_value_pair: Vec<Stat>,
    pub tiers: Vec<TierStatus>,
    pub index_bytes: u64,
    /// The byte budget of the partitions, if one applies.
    pub budget_bytes: Option<u64>,
    pub evicted_partitions: u64,
}

/// The `limit` largest stats, largest first (ties by name, so output is stable).
fn top(map: HashMap<&str, u64>, limit: usize) -> Vec<Stat> {
    let mut v: Vec<Stat> = map
        .into_iter()
        .map(|(name, value)| Stat {
            name: name.to_owned(),
            value,
        })
        .collect();
    v.sort_by(|a, b| b.value.cmp(&a.value).then_with(|| a.name.cmp(&b.name)));
    v.truncate(limit);
    v
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Store {
    /// The TSDB status with top-`limit` lists.
    pub fn tsdb_status(&self, limit: usize) -> TsdbStatus {
        let shared = &self.handle.shared;
        let mut st = TsdbStatus::default();
        {
            let head = shared.head();
            let mut by_name: HashMap<&str, u64> = HashMap::new();
            let mut pairs: HashMap<(&str, &str), u64> = HashMap::new();
            let (mut lo, mut hi) = (i64::MAX, i64::MIN);
            for s in head.series.values() {
                if let Some(n) = s.labels.metric_name() {
                    *by_name.entry(n).or_default() += 1;
                }
                for l in &s.labels {
                    *pairs.entry((&l.name, &l.value)).or_default() += 1;
                }
                for c in s.chunks.iter().filter(|c| c.count() > 0) {
                    lo = lo.min(c.enc.min_t());
                    hi = hi.max(c.enc.max_t());
                }
            }
            let mut values: HashMap<&str, u64> = HashMap::new();
            let mut bytes: HashMap<&str, u64> = HashMap::new();
            for (name, value) in pairs.keys() {
                *values.entry(name).or_default() += 1;
                *bytes.entry(name).or_default() += value.len() as u64;
            }
            st.head = HeadStats {
                num_series: head.series.len() as u64,
                num_label_pairs: pairs.len() as u64,
                chunk_count: head.head_chunks(),
                min_time: if lo <= hi { lo } else { 0 },
                max_time: if lo <= hi { hi } else { 0 },
            };
            let pair_names: HashMap<String, u64> = pairs
                .iter()
                .map(|((n, v), c)| (format!("{n}={v}"), *c))
                .collect();
            st.series_count_by_metric_name = top(by_name, limit);
            st.label_value_count_by_label_name = top(values, limit);
            st.memory_in_bytes_by_label_name = top(bytes, limit);
            st.series_count_by_label_value_pair = top(
                pair_names.iter().map(|(k, v)| (k.as_str(), *v)).collect(),
                limit,
            );
        }
        st.tiers = vec![self.raw_tier()];
        st.tiers
            .extend((0..2).map(|t| super::tier::status(shared, t)));
        st.index_bytes = std::fs::metadata(shared.index_path()).map_or(0, |m| m.len());
        st.budget_bytes = shared.limits.budget_bytes;
        st.evicted_partitions = shared
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .evicted_partitions;
        st
    }

    /// The raw tier from the open partitions and their counters.
    pub(super) fn raw_tier(&self) -> TierStatus {
        let shared = &self.handle.shared;
        // Open chunks' samples already on disk (as pieces in the block log), per partition.
        let mut open: std::collections::BTreeMap<i64, partition::PartStats> = Default::default();
        {
            let head = shared.head();
            for s in head.series.values() {
                for c in s.chunks.iter().filter(|c| c.flushed > 0) {
                    open.entry(c.partition).or_default().add(
                        u64::from(c.flushed),
                        c.enc.min_t(),
                        c.enc.max_t(),
                    );
                }
            }
        }
        let sizes = partition::all_bytes(&shared.dir);
        let dbs = shared.dbs();
        let mut t = TierStatus {
            name: "raw",
            ..TierStatus::default()
        };
        for &pidx in dbs.partitions.keys() {
            let mut s = dbs.stats.get(&pidx).copied().unwrap_or_default();
            if let Some(o) = open.get(&pidx) {
                s.samples += o.samples;
                if let (Some(lo), Some(hi)) = (o.min_t, o.max_t) {
                    s.add(0, lo, hi);
                }
            }
            t.bytes += sizes.get(&pidx).copied().unwrap_or(0);
            t.partitions += 1;
            t.samples += s.samples;
            if let Some(m) = s.min_t {
                t.min_time = Some(t.min_time.map_or(m, |x| x.min(m)));
            }
            if let Some(m) = s.max_t {
                t.max_time = Some(t.max_time.map_or(m, |x| x.max(m)));
            }
        }
        t
    }
}
