//! What the forwarder (`crate::forward`) needs from the store to send everything it holds
//! without a second copy: reads of a time range over all series in series-id order (so a
//! cursor can name "series ids below S of this window are sent"), the record of partitions
//! the budget keeper evicted (so data deleted before it was sent is counted, not skipped),
//! and late-write watches (samples written older than a destination's cursor).
//!
//! Eviction records live in memory and, durably, in the index's `state` table under
//! `store/evicted/<partition index>` (value: samples the partition held, u64 LE), written
//! *before* the partition leaves the readers' set: a forwarder that read a window and then
//! finds no record newer than its cursor knows its read was complete. One record per evicted
//! day; they are kept (a few bytes each) so a destination down for months still learns
//! what it missed.

use super::{Shared, Store, StoreError, partition};
use crate::model::{Labels, Sample};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

const EVICTED_PREFIX: &str = "store/evicted/";

/// Length of a day partition; forwarding windows never cross one.
pub const PARTITION_SPAN_MS: i64 = partition::RAW_SPAN_MS;

/// Start of the partition holding time `t`.
pub fn partition_start_of(t: i64) -> i64 {
    partition::partition_start(partition::partition_index(t))
}

/// Index of the partition holding time `t`.
pub fn partition_index_of(t: i64) -> i64 {
    partition::partition_index(t)
}

/// A partition the budget keeper deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eviction {
    /// Partition index (`floor(t / 86_400_000)`).
    pub partition: i64,
    /// Samples it held (sealed chunks and head chunks).
    pub samples: u64,
}

impl Eviction {
    /// First millisecond after the partition.
    pub fn end_ms(&self) -> i64 {
        partition::partition_end(self.partition).saturating_add(1)
    }
    pub fn start_ms(&self) -> i64 {
        partition::partition_start(self.partition)
    }
}

/// A destination's cursor as seen by `Store::append`: samples written with a timestamp
/// below `cursor_ms` arrive after the forwarder read their time and are counted in `late`.
#[derive(Debug)]
pub struct LateWatch {
    pub cursor_ms: AtomicI64,
    pub late: AtomicU64,
}

impl LateWatch {
    pub fn new(cursor_ms: i64) -> LateWatch {
        LateWatch {
            cursor_ms: AtomicI64::new(cursor_ms),
            late: AtomicU64::new(0),
        }
    }
}

impl Store {
    /// Ids of every series from `first` on, ascending.
    pub fn series_ids_from(&self, first: u64) -> Vec<u64> {
        let head = self.handle.shared.head();
        head.series.ids().filter(|&id| id >= first).collect()
    }

    /// Samples in `[start, end]` of the series `ids` (ascending), as `(id, labels,
    /// samples)` in id order, series without samples left out. Sees head and disk alike.
    pub fn read_series_range(
        &self,
        ids: &[u64],
        start: i64,
        end: i64,
    ) -> Result<Vec<(u64, Labels, Vec<Sample>)>, StoreError> {
        if start > end || ids.is_empty() {
            return Ok(Vec::new());
        }
        self.read_ids(ids, start, end)
    }

    /// Start of the oldest partition (None when the store holds no partition).
    pub fn oldest_partition_start(&self) -> Option<i64> {
        let dbs = self.handle.shared.dbs();
        dbs.partitions
            .keys()
            .next()
            .map(|&p| partition::partition_start(p))
    }

    /// The earliest time at or after `t` that may hold a sample: `t` itself when a
    /// partition or head chunk has samples around it, else the oldest sample of the next
    /// partition with data (None: nothing stored at or after `t`).
    pub fn next_data_time(&self, t: i64) -> Option<i64> {
        let pidx = partition::partition_index(t);
        // (min_t, max_t) of what each partition from `t`'s on holds, disk and head.
        let mut spans: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
        let mut widen = |p: i64, lo: i64, hi: i64| {
            let e = spans.entry(p).or_insert((lo, hi));
            e.0 = e.0.min(lo);
            e.1 = e.1.max(hi);
        };
        {
            let head = self.handle.shared.head();
            for c in head.series.values().flat_map(|s| s.chunks.iter()) {
                if c.partition >= pidx && c.count() > 0 {
                    widen(c.partition, c.enc.min_t(), c.enc.max_t());
                }
            }
            let dbs = self.handle.shared.dbs();
            for (&p, st) in dbs.stats.range(pidx..) {
                if let (Some(lo), Some(hi)) = (st.min_t, st.max_t) {
                    widen(p, lo, hi);
                }
            }
        }
        spans
            .values()
            .find(|(_, hi)| *hi >= t)
            .map(|(lo, _)| (*lo).max(t))
    }

    /// Partitions evicted with an end after `t`, oldest first.
    pub fn evictions_after(&self, t: i64) -> Vec<Eviction> {
        let ev = self
            .handle
            .shared
            .evictions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        ev.iter().filter(|e| e.end_ms() > t).copied().collect()
    }

    /// Registers a destination's cursor; `Store::append` counts samples older than it.
    pub fn watch_late_writes(&self, watch: Arc<LateWatch>) {
        self.handle
            .shared
            .late_watches
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(watch);
    }
}

/// Counts, for every watched cursor, the samples of one append older than it.
pub(super) struct LateCount {
    /// Each watch, its cursor when the append began, and the late samples seen.
    watches: Vec<(Arc<LateWatch>, i64, u64)>,
}

impl LateCount {
    pub(super) fn new(shared: &Shared) -> LateCount {
        let watches = shared
            .late_watches
            .read()
            .unwrap_or_else(|e| e.into_inner());
        LateCount {
            watches: watches
                .iter()
                .map(|w| (w.clone(), w.cursor_ms.load(Ordering::Relaxed), 0))
                .collect(),
        }
    }

    /// Counts the samples of one series as appended.
    pub(super) fn count(&mut self, samples: &[Sample]) {
        for (_, cursor, late) in &mut self.watches {
            *late += samples.iter().filter(|s| s.t < *cursor).count() as u64;
        }
    }

    pub(super) fn commit(self) {
        for (w, _, late) in self.watches {
            if late > 0 {
                w.late.fetch_add(late, Ordering::Relaxed);
            }
        }
    }
}

/// Loads the eviction records (at open).
pub(super) fn load_evictions(store_state: &[(String, Vec<u8>)]) -> Vec<Eviction> {
    let mut out: Vec<Eviction> = store_state
        .iter()
        .filter_map(|(k, v)| {
            let partition = k.strip_prefix(EVICTED_PREFIX)?.parse().ok()?;
            let samples = u64::from_le_bytes(v.get(..8)?.try_into().ok()?);
            Some(Eviction { partition, samples })
        })
        .collect();
    out.sort_by_key(|e| e.partition);
    out
}

pub(super) fn eviction_key(partition: i64) -> String {
    format!("{EVICTED_PREFIX}{partition}")
}

impl Store {
    /// Loads the eviction records into memory; called once by `Store::open_with`.
    pub(super) fn load_eviction_records(&self) -> Result<(), StoreError> {
        let recs = load_evictions(&self.states_with_prefix(EVICTED_PREFIX)?);
        *self
            .handle
            .shared
            .evictions
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = recs;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::WriteBatch;

    fn batch(name: &str, ts: &[i64]) -> WriteBatch {
        WriteBatch {
            series: vec![(
                Labels::from_pairs([("__name__", name)]),
                ts.iter().map(|&t| Sample { t, v: t as f64 }).collect(),
            )],
            metadata: vec![],
        }
    }

    #[test]
    fn range_reads_go_in_id_order_over_head_and_disk() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_for_test(dir.path());
        // 300 samples: two sealed chunks on disk and the rest in the head.
        s.append(batch("b", &(0..300).map(|i| i * 1000).collect::<Vec<_>>()))
            .unwrap();
        s.append(batch("a", &[5_000, 7_000])).unwrap();
        s.flush().unwrap();
        let ids = s.series_ids_from(0);
        assert_eq!(ids.len(), 2);
        let got = s.read_series_range(&ids, 100_000, 249_999).unwrap();
        assert_eq!(got.len(), 1, "series a has nothing in the range");
        assert_eq!(got[0].1.metric_name(), Some("b"));
        assert_eq!(got[0].2.len(), 150);
        assert_eq!(got[0].2[0].t, 100_000);
        let got = s.read_series_range(&ids[1..], 0, 10_000).unwrap();
        assert_eq!(
            got[0].1.metric_name(),
            Some("a"),
            "ids below the first are skipped"
        );
        assert_eq!(s.next_data_time(-86_400_000), Some(0));
        assert_eq!(s.next_data_time(150_000), Some(150_000));
        assert_eq!(s.next_data_time(300_000), None);
        s.close().unwrap();
    }

    #[test]
    fn writes_older_than_a_watched_cursor_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_for_test(dir.path());
        let w = Arc::new(LateWatch::new(10_000));
        s.watch_late_writes(w.clone());
        s.append(batch("x", &[9_000, 9_999, 10_000, 11_000]))
            .unwrap();
        assert_eq!(w.late.load(Ordering::Relaxed), 2);
        s.close().unwrap();
    }

    #[test]
    fn eviction_records_round_trip() {
        let recs = load_evictions(&[
            (eviction_key(3), 7u64.to_le_bytes().to_vec()),
            (eviction_key(-1), 2u64.to_le_bytes().to_vec()),
            ("store/evicted/bad".into(), vec![1]),
        ]);
        assert_eq!(
            recs,
            [
                Eviction {
                    partition: -1,
                    samples: 2
                },
                Eviction {
                    partition: 3,
                    samples: 7
                }
            ]
        );
        assert_eq!(recs[1].start_ms(), 3 * 86_400_000);
        assert_eq!(recs[1].end_ms(), 4 * 86_400_000);
    }
}
