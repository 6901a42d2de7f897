//! The read side: [`SeriesReader`] over the head and the partition files.
//!
//! A read takes two short head read-locks and never waits on the writer's transactions:
//!
//! 1. series created since the last index commit (matched directly against the matchers)
//!    and a read transaction on the index (postings answer the matchers);
//! 2. the head chunks of the matched series and read transactions on the partitions the
//!    range overlaps.
//!
//! The head is always snapshotted *before* the redb transaction it complements: a flush
//! commits first and only then drops what it wrote from the head, so every sample is seen
//! in at least one of the two (duplicates are the same samples and collapse in the merge).

use super::{Store, StoreError, index, partition};
use crate::model::{Labels, Matcher, Sample};
use crate::query::{ReadError, Selected, SeriesData, SeriesReader, Want};
use redb::ReadableDatabase;
use std::collections::BTreeSet;

impl Store {
    pub(super) fn matching_ids(&self, matchers: &[Matcher]) -> Result<Vec<u64>, StoreError> {
        let shared = &self.handle.shared;
        let index_path = shared.index_path();
        let (pending, txn) = {
            let head = shared.head();
            let pending: Vec<u64> = head
                .pending_series
                .iter()
                .copied()
                .filter(|id| {
                    head.series
                        .get(id)
                        .is_some_and(|s| matchers.iter().all(|m| m.matches_labels(&s.labels)))
                })
                .collect();
            let db = shared.dbs().index.clone().ok_or(StoreError::Closed)?;
            let txn = db
                .begin_read()
                .map_err(|e| StoreError::db(&index_path, e))?;
            (pending, txn)
        };
        let mut ids: BTreeSet<u64> = index::select_ids(&txn, &index_path, matchers)?
            .into_iter()
            .collect();
        ids.extend(pending);
        Ok(ids.into_iter().collect())
    }

    /// Matching series with their samples in `[start, end]`, sorted by labels.
    pub(super) fn select_series(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<SeriesData>, StoreError> {
        if start > end {
            return Ok(Vec::new());
        }
        let ids = self.matching_ids(matchers)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut out: Vec<SeriesData> = self
            .read_ids(&ids, start, end)?
            .into_iter()
            .map(|(_, labels, samples)| SeriesData { labels, samples })
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    /// The samples in `[start, end]` of the series `ids`, as `(id, labels, samples)` in the
    /// order of `ids`; series without samples there (or unknown) are left out.
    pub(super) fn read_ids(
        &self,
        ids: &[u64],
        start: i64,
        end: i64,
    ) -> Result<Vec<(u64, Labels, Vec<Sample>)>, StoreError> {
        let shared = &self.handle.shared;
        let (lo, hi) = (
            partition::partition_index(start),
            partition::partition_index(end),
        );
        // (labels, head samples in arrival order) per id, then the partition snapshots.
        let mut found: Vec<(u64, Labels, Vec<Sample>)> = Vec::with_capacity(ids.len());
        let parts = {
            let head = shared.head();
            for &id in ids {
                let Some(s) = head.series.get(&id) else {
                    continue;
                };
                let mut samples = Vec::new();
                for c in s.chunks.iter().filter(|c| c.overlaps(start, end)) {
                    c.decode(&mut samples).map_err(|e| {
                        StoreError::Other(format!("BUG: head chunk does not decode: {e}"))
                    })?;
                }
                found.push((id, s.labels.clone(), samples));
            }
            let dbs = shared.dbs();
            if dbs.index.is_none() {
                return Err(StoreError::Closed);
            }
            let mut parts = Vec::new();
            for (&pidx, db) in dbs.partitions.range(lo..=hi) {
                // Read after the head snapshot: a seal updates the stats before the head
                // forgets the chunk, so a chunk missing from the head is within `newest`.
                let Some(newest) = dbs.stats.get(&pidx).and_then(|st| st.max_t) else {
                    continue; // no sealed chunk in this partition yet
                };
                if newest < start {
                    continue;
                }
                let path = partition::partition_path(&shared.dir, pidx);
                let txn = db.begin_read().map_err(|e| StoreError::db(&path, e))?;
                // The transaction needs its database alive: the budget keeper may evict
                // the partition (dropping the store's handle) while this read goes on.
                parts.push((pidx, newest, path, db.clone(), txn));
            }
            parts
        };

        let mut tables = Vec::with_capacity(parts.len());
        for (pidx, newest, path, _db, txn) in &parts {
            if let Some(t) = partition::chunks_table(txn, path)? {
                tables.push((*pidx, *newest, path, t));
            }
        }
        let mut out = Vec::with_capacity(found.len());
        let mut disk: Vec<(u64, Vec<Sample>)> = Vec::new();
        for (id, labels, head_samples) in found {
            let mut all = Vec::new();
            for (pidx, newest, path, t) in &tables {
                disk.clear();
                partition::read_chunks(t, path, *pidx, id, start, end, *newest, &mut disk)?;
                // Later sequence numbers were written later: they go last so they win.
                disk.sort_by_key(|(seq, _)| *seq);
                for (_, s) in disk.drain(..) {
                    all.extend(s.into_iter().filter(|x| x.t >= start && x.t <= end));
                }
            }
            all.extend(
                head_samples
                    .into_iter()
                    .filter(|x| x.t >= start && x.t <= end),
            );
            let samples = last_wins(all);
            if !samples.is_empty() {
                out.push((id, labels, samples));
            }
        }
        Ok(out)
    }

    fn names_or_values(
        &self,
        name: Option<&str>,
        matchers: &[Matcher],
        start: i64,
        end: i64,
    ) -> Result<Vec<String>, StoreError> {
        let mut set = BTreeSet::new();
        let pick = |set: &mut BTreeSet<String>, labels: &Labels| match name {
            Some(n) => {
                if let Some(v) = labels.get(n) {
                    set.insert(v.to_owned());
                }
            }
            None => set.extend(labels.iter().map(|l| l.name.to_string())),
        };
        if matchers.is_empty() {
            // Straight from the postings keys (time range not applied: every known series).
            let shared = &self.handle.shared;
            let index_path = shared.index_path();
            let txn = {
                let head = shared.head();
                for id in &head.pending_series {
                    if let Some(s) = head.series.get(id) {
                        pick(&mut set, &s.labels);
                    }
                }
                let db = shared.dbs().index.clone().ok_or(StoreError::Closed)?;
                db.begin_read()
                    .map_err(|e| StoreError::db(&index_path, e))?
            };
            set.extend(match name {
                Some(n) => index::label_values(&txn, &index_path, n)?,
                None => index::label_names(&txn, &index_path)?,
            });
        } else {
            for s in self.select_series(matchers, start, end)? {
                pick(&mut set, &s.labels);
            }
        }
        Ok(set.into_iter().collect())
    }
}

/// Sorts samples given in write order by time, keeping the last written value of each
/// timestamp (the sort is stable, so equal timestamps stay in write order).
pub(super) fn last_wins(mut all: Vec<Sample>) -> Vec<Sample> {
    // The usual case: chunks in order without overlap, nothing to sort or drop.
    if all.windows(2).all(|w| w[0].t < w[1].t) {
        return all;
    }
    all.sort_by_key(|s| s.t);
    let mut out: Vec<Sample> = Vec::with_capacity(all.len());
    for s in all {
        match out.last_mut() {
            Some(last) if last.t == s.t => *last = s,
            _ => out.push(s),
        }
    }
    out
}

fn read_err(e: StoreError) -> ReadError {
    ReadError(e.to_string())
}

impl SeriesReader for Store {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesData>, ReadError> {
        self.select_series(matchers, start_ms, end_ms)
            .map_err(read_err)
    }

    fn select_for(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        want: Want,
    ) -> Result<Selected, ReadError> {
        let (series, rollup) = self
            .select_rollup(matchers, start_ms, end_ms, want)
            .map_err(read_err)?;
        Ok(Selected { series, rollup })
    }

    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Labels>, ReadError> {
        Ok(self
            .select_series(matchers, start_ms, end_ms)
            .map_err(read_err)?
            .into_iter()
            .map(|s| s.labels)
            .collect())
    }

    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, ReadError> {
        self.names_or_values(None, matchers, start_ms, end_ms)
            .map_err(read_err)
    }

    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, ReadError> {
        self.names_or_values(Some(name), matchers, start_ms, end_ms)
            .map_err(read_err)
    }
}
