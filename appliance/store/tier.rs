//! The rollup tiers on disk: `5m/<start-ms>.redb` (a week each) and `1h/<start-ms>.redb`
//! (30 days each), how a raw day is rolled up into them, their budget keeper, and reads
//! that answer from them where raw days were deleted.
//!
//! ```text
//! <tier>/<start-ms>.redb      start = floor(t / span) * span; span 7 d (5m), 30 d (1h)
//!   meta    &str -> u64                 "schema_version"
//!   groups  (group start, series) -> rollup value (rollup.rs: buckets of a day (5m) or a
//!                                    week (1h, [`GROUP_MS`]) of one series)
//!   rolled  raw partition index -> buckets written     the day is in this file
//! ```
//!
//! # When a raw day is rolled up, and why exactly once
//!
//! A raw day (partition) is rolled up when it is complete: the newest sample the store
//! holds is more than [`GRACE_MS`] past the day's end (checked after every flush), and in
//! any case before the budget keeper deletes it. One pass reads the day (sealed chunks and
//! head chunks, last write wins as in any read), folds each series into 5 m and 1 h buckets
//! and writes, per tier, one durable transaction holding every series' value for that day
//! *and* the day's `rolled` marker. A crash before that commit leaves neither (the raw day
//! is still there and is rolled up again); after it, the marker says the day is done. The
//! values are keyed by (day, series), so even a repeated roll-up would overwrite, not add.
//! A raw day is deleted only after both tiers recorded it (or the roll-up failed, which is
//! logged and counted: a full disk must not stop the keeper from freeing space).
//!
//! Samples written into a day after it was rolled up are in raw only. Days whose tier file
//! was already deleted by the tier's own budget are not rolled up again.
//!
//! # Reads
//!
//! [`Store::select_rollup`] answers `[start, end]` from raw for times at or after the
//! oldest raw day still kept (the *cut*), and from the finest tier covering `start` before
//! it, through [`rollup::points`]. Without rolled-up data before the cut, it is a plain
//! raw select.

use super::rollup::{self, Bucket, TIERS};
use super::{Shared, Store, StoreError, partition};
use crate::model::{Labels, Matcher, Sample};
use crate::query::{SeriesData, Want};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition, TableError};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

const DAY_MS: i64 = 86_400_000;
/// Partition span of each tier in [`TIERS`] order.
pub const SPANS: [i64; 2] = [7 * DAY_MS, 30 * DAY_MS];
/// Time one stored value of a series covers in each tier: a day of 5 m buckets (288), a
/// week of 1 h buckets (168). Bigger values compress better (lz4 needs length to find
/// repeats, and each value pays a header); a 1 h value is rewritten once per day rolled
/// up into its week, which is little (a few hundred bytes per series).
pub const GROUP_MS: [i64; 2] = [DAY_MS, 7 * DAY_MS];
/// A raw day is complete once the store holds samples this far past its end.
pub const GRACE_MS: i64 = 3_600_000;

pub const GROUPS: TableDefinition<(i64, u64), &[u8]> = TableDefinition::new("groups");
pub const ROLLED: TableDefinition<i64, u64> = TableDefinition::new("rolled");

/// One tier's open files and the raw days they hold.
#[derive(Default)]
pub struct TierFiles {
    pub files: BTreeMap<i64, Arc<Database>>,
    /// Raw partition indexes rolled up into this tier (also those whose file was deleted
    /// since the store opened).
    pub rolled: BTreeSet<i64>,
    /// Files compacted since the store opened (see [`compact_finished`]).
    pub compacted: BTreeSet<i64>,
}

pub fn tier_dir(dir: &Path, tier: usize) -> PathBuf {
    dir.join(TIERS[tier].0)
}

pub fn file_path(dir: &Path, tier: usize, idx: i64) -> PathBuf {
    tier_dir(dir, tier).join(format!("{}.redb", file_start(tier, idx)))
}

fn file_start(tier: usize, idx: i64) -> i64 {
    (i128::from(idx) * i128::from(SPANS[tier])).max(i128::from(i64::MIN)) as i64
}

/// The start of the stored value's group holding time `t` in `tier`.
fn group_start(tier: usize, t: i64) -> i64 {
    t.div_euclid(GROUP_MS[tier]) * GROUP_MS[tier]
}

/// The tier file index holding raw partition `pidx`.
pub fn file_index(tier: usize, pidx: i64) -> i64 {
    partition::partition_start(pidx).div_euclid(SPANS[tier])
}

fn parse_name(tier: usize, name: &str) -> Option<i64> {
    let start: i64 = name.strip_suffix(".redb")?.parse().ok()?;
    let idx = start.div_euclid(SPANS[tier]);
    (file_start(tier, idx) == start).then_some(idx)
}

/// Bytes of each file of a tier.
pub fn all_bytes(dir: &Path, tier: usize) -> BTreeMap<i64, u64> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(tier_dir(dir, tier))
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Some(idx) = e.file_name().to_str().and_then(|n| parse_name(tier, n)) {
            out.insert(idx, e.metadata().map_or(0, |m| m.len()));
        }
    }
    out
}

/// Opens every tier file under `dir` (refusing newer or damaged ones untouched, as raw
/// partitions) and reads which raw days each holds.
pub fn open_all(dir: &Path) -> Result<[TierFiles; 2], StoreError> {
    let mut out: [TierFiles; 2] = Default::default();
    for (tier, slot) in out.iter_mut().enumerate() {
        let mut t = TierFiles::default();
        let d = tier_dir(dir, tier);
        let mut paths = Vec::new();
        if d.is_dir() {
            for e in std::fs::read_dir(&d).map_err(|e| StoreError::io(&d, e))? {
                let e = e.map_err(|e| StoreError::io(&d, e))?;
                if let Some(idx) = e.file_name().to_str().and_then(|n| parse_name(tier, n)) {
                    paths.push((idx, e.path()));
                }
            }
        }
        for (idx, path) in paths {
            let db = super::open_existing(&path, "rollup file")?;
            {
                let txn = db.begin_read().map_err(|e| StoreError::db(&path, e))?;
                match txn.open_table(ROLLED) {
                    Ok(r) => {
                        for e in r.iter().map_err(|e| StoreError::db(&path, e))? {
                            let (k, _) = e.map_err(|e| StoreError::db(&path, e))?;
                            t.rolled.insert(k.value());
                        }
                    }
                    Err(TableError::TableDoesNotExist(_)) => {}
                    Err(e) => return Err(StoreError::db(&path, e)),
                }
            }
            t.files.insert(idx, Arc::new(db));
        }
        *slot = t;
    }
    Ok(out)
}

/// Rolls up every complete raw day not yet in both tiers (see the module doc). Errors are
/// logged: the day stays in raw and is tried again after the next flush.
pub(super) fn roll_up_complete(shared: &Shared) {
    let (days, newest_t) = {
        let dbs = shared.dbs();
        let mut newest_t = dbs.stats.values().filter_map(|s| s.max_t).max();
        let days: Vec<i64> = dbs.partitions.keys().copied().collect();
        drop(dbs);
        let head = shared.head();
        for s in head.series.values() {
            for c in s.chunks.iter().filter(|c| c.count() > 0) {
                newest_t = Some(newest_t.map_or(c.enc.max_t(), |n| n.max(c.enc.max_t())));
            }
        }
        (days, newest_t)
    };
    let Some(newest_t) = newest_t else { return };
    for pidx in days {
        if partition::partition_end(pidx).saturating_add(GRACE_MS) >= newest_t {
            break;
        }
        if let Err(e) = ensure_rolled(shared, pidx) {
            tracing::error!(error = %e, day = partition::partition_start(pidx), "Rolling up a raw day failed; it stays in raw and is tried again.");
            count_error(shared);
            return;
        }
    }
}

fn count_error(shared: &Shared) {
    shared
        .counters
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .rollup_errors += 1;
}

/// Rolls raw day `pidx` up into the tiers that do not have it yet.
pub(super) fn ensure_rolled(shared: &Shared, pidx: i64) -> Result<(), StoreError> {
    let missing: Vec<usize> = {
        let dbs = shared.dbs();
        (0..TIERS.len())
            .filter(|&t| {
                let tf = &dbs.tiers[t];
                let idx = file_index(t, pidx);
                // A day whose tier file the tier's keeper already deleted stays out.
                !tf.rolled.contains(&pidx) && tf.files.keys().next().is_none_or(|&o| idx >= o)
            })
            .collect()
    };
    if missing.is_empty() {
        return Ok(());
    }
    let values = fold_day(shared, pidx, &missing)?;
    for (i, &tier) in missing.iter().enumerate() {
        let idx = file_index(tier, pidx);
        let path = file_path(&shared.dir, tier, idx);
        let existing = shared.dbs().tiers[tier].files.get(&idx).cloned();
        let db = match existing {
            Some(db) => db,
            // A file left out of the set by a failed reopen (full.rs) is opened, never
            // created over.
            None if path.exists() => {
                let db = Arc::new(super::open_existing(&path, "rollup file")?);
                shared.dbs_mut().tiers[tier].files.insert(idx, db.clone());
                db
            }
            None => {
                let db = Arc::new(super::create_new(&path, |txn| {
                    txn.open_table(GROUPS)
                        .map_err(|e| StoreError::db(&path, e))?;
                    txn.open_table(ROLLED)
                        .map_err(|e| StoreError::db(&path, e))?;
                    Ok(())
                })?);
                let mut dbs = shared.dbs_mut();
                if dbs.index.is_none() {
                    return Err(StoreError::Closed);
                }
                dbs.tiers[tier].files.insert(idx, db.clone());
                db
            }
        };
        let e = |x: redb::Error| StoreError::db(&path, x);
        let mut txn = db.begin_write().map_err(|x| e(x.into()))?;
        super::writer::durable(&mut txn, &path)?;
        let mut buckets = 0u64;
        {
            let mut groups = txn.open_table(GROUPS).map_err(|x| e(x.into()))?;
            let group = group_start(tier, partition::partition_start(pidx));
            let mut all = Vec::new();
            let mut v = Vec::new();
            for f in &values[i] {
                all.clear();
                let key = (group, f.series);
                if GROUP_MS[tier] > DAY_MS
                    && let Some(old) = groups.get(key).map_err(|x| e(x.into()))?
                {
                    rollup::decode(old.value(), &mut all).map_err(|c| StoreError::Damaged {
                        path: path.clone(),
                        detail: format!("rollup of series {}: {c}", f.series),
                    })?;
                }
                all.extend_from_slice(&f.buckets);
                // Days may be rolled up out of order (a late backfill). The two halves of a
                // bucket split at midnight stay apart, so that a read can leave out the
                // half whose raw day is still kept.
                all.sort_by_key(|b| (b.end, b.first_t));
                v.clear();
                rollup::encode(&all, f.counter, &mut v);
                groups.insert(key, v.as_slice()).map_err(|x| e(x.into()))?;
                buckets += f.buckets.len() as u64;
            }
            let mut rolled = txn.open_table(ROLLED).map_err(|x| e(x.into()))?;
            rolled.insert(pidx, buckets).map_err(|x| e(x.into()))?;
        }
        txn.commit().map_err(|x| e(x.into()))?;
        shared.dbs_mut().tiers[tier].rolled.insert(pidx);
    }
    Ok(())
}

/// One series' buckets of a raw day for one tier, and whether it is a counter.
struct Folded {
    series: u64,
    counter: bool,
    buckets: Vec<Bucket>,
}

/// Reads raw day `pidx` and folds every series into buckets for each tier in `tiers`.
fn fold_day(shared: &Shared, pidx: i64, tiers: &[usize]) -> Result<Vec<Vec<Folded>>, StoreError> {
    let (start, end) = (
        partition::partition_start(pidx),
        partition::partition_end(pidx),
    );
    // Head first, then the file's transaction (the order every read keeps; here the
    // writer thread itself is the only one that could flush in between anyway).
    let mut series: Vec<(u64, bool, Vec<Sample>)> = Vec::new();
    {
        let head = shared.head();
        for (id, s) in head.series.iter() {
            let mut samples = Vec::new();
            for c in s.chunks.iter().filter(|c| c.partition == pidx) {
                c.decode(&mut samples)
                    .map_err(|e| StoreError::Other(format!("BUG: head chunk: {e}")))?;
            }
            let name = s.labels.metric_name().unwrap_or("");
            let counter = rollup::is_counter(name, head.metadata.get(name));
            series.push((id, counter, samples));
        }
    }
    series.sort_by_key(|s| s.0);
    let path = partition::partition_path(&shared.dir, pidx);
    let db = shared.dbs().partitions.get(&pidx).cloned();
    let txn = match &db {
        Some(db) => Some(db.begin_read().map_err(|e| StoreError::db(&path, e))?),
        None => None,
    };
    let table = match &txn {
        Some(txn) => partition::chunks_table(txn, &path)?,
        None => None,
    };
    let mut out: Vec<Vec<Folded>> = tiers.iter().map(|_| Vec::new()).collect();
    let mut disk = Vec::new();
    for (id, counter, head_samples) in series {
        let mut all = Vec::new();
        if let Some(t) = &table {
            disk.clear();
            partition::read_chunks(
                t,
                &path,
                pidx,
                id,
                start,
                end,
                partition::partition_end(pidx),
                &mut disk,
            )?;
            disk.sort_by_key(|(seq, _)| *seq);
            for (_, s) in disk.drain(..) {
                all.extend(s);
            }
        }
        all.extend(head_samples);
        all.retain(|x| x.t >= start && x.t <= end);
        if all.is_empty() {
            continue;
        }
        let samples = super::read::last_wins(all);
        for (i, &tier) in tiers.iter().enumerate() {
            let mut buckets = Vec::new();
            rollup::fold(&samples, TIERS[tier].1, counter, &mut buckets);
            if !buckets.is_empty() {
                out[i].push(Folded {
                    series: id,
                    counter,
                    buckets,
                });
            }
        }
    }
    Ok(out)
}

/// The tiers' budget keeper: deletes a tier's oldest file while the tier's files exceed
/// its budget or the oldest file ends before its maximum age; never a tier's newest file.
pub(super) fn keep_limits(shared: &Shared) {
    for (tier, &max_age) in shared.limits.tier_max_age.iter().enumerate() {
        let budget = shared.limits.tier_budget(tier + 1);
        if budget.is_none() && max_age.is_none() {
            continue;
        }
        loop {
            let (oldest, bytes) = {
                let dbs = shared.dbs();
                let files = &dbs.tiers[tier].files;
                if files.len() < 2 {
                    break;
                }
                let Some(&oldest) = files.keys().next() else {
                    break;
                };
                let sizes = all_bytes(&shared.dir, tier);
                let bytes: u64 = files
                    .keys()
                    .map(|i| sizes.get(i).copied().unwrap_or(0))
                    .sum();
                (oldest, bytes)
            };
            let over = budget.is_some_and(|b| bytes > b);
            let too_old = max_age.is_some_and(|age: Duration| {
                let cutoff = super::status::now_ms()
                    .saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
                file_start(tier, oldest).saturating_add(SPANS[tier]) < cutoff
            });
            if !over && !too_old {
                break;
            }
            shared.dbs_mut().tiers[tier].files.remove(&oldest);
            let path = file_path(&shared.dir, tier, oldest);
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), reason = if over { "budget" } else { "max_age" }, "Deleted the oldest rollup file to keep the storage limits.");
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "Cannot delete a rollup file evicted by the storage limits; delete it by hand.");
                }
            }
            shared
                .counters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .tier_evictions[tier] += 1;
        }
    }
}

/// Compacts, once, each tier file that a newer one follows: its span is over, so it gets
/// no more writes unless a backfill reaches back into it. Rewriting the 1 h values of a
/// week day by day leaves freed pages behind, which would otherwise count against the
/// tier's budget for good. Done under the files' write lock (readers wait the few
/// milliseconds it takes); a file a reader still holds is tried again after the next flush.
pub(super) fn compact_finished(shared: &Shared) {
    for tier in 0..TIERS.len() {
        let mut dbs = shared.dbs_mut();
        let tf = &mut dbs.tiers[tier];
        let Some(&newest) = tf.files.keys().next_back() else {
            continue;
        };
        let todo: Vec<i64> = tf
            .files
            .keys()
            .copied()
            .filter(|i| *i < newest && !tf.compacted.contains(i))
            .collect();
        for idx in todo {
            let Some(db) = tf.files.remove(&idx) else {
                continue;
            };
            match Arc::try_unwrap(db) {
                Ok(mut db) => {
                    let r = (|| -> Result<(), redb::CompactionError> {
                        while db.compact()? {}
                        Ok(())
                    })();
                    if let Err(e) = r {
                        let path = file_path(&shared.dir, tier, idx);
                        tracing::warn!(path = %path.display(), error = %e, "Compacting a rollup file failed; it stays as it is.");
                    }
                    tf.compacted.insert(idx);
                    tf.files.insert(idx, Arc::new(db));
                }
                Err(db) => {
                    tf.files.insert(idx, db);
                }
            }
        }
    }
}

/// A rollup tier for `/api/v1/status/tsdb`: its files, their bytes, and the span of the
/// raw days rolled up into files still kept (`samples` stays 0: rollups hold buckets).
pub(super) fn status(shared: &Shared, tier: usize) -> super::status::TierStatus {
    let sizes = all_bytes(&shared.dir, tier);
    let dbs = shared.dbs();
    let tf = &dbs.tiers[tier];
    let kept: Vec<i64> = match tf.files.keys().next() {
        Some(&f) => tf
            .rolled
            .iter()
            .copied()
            .filter(|&p| file_index(tier, p) >= f)
            .collect(),
        None => Vec::new(),
    };
    super::status::TierStatus {
        name: TIERS[tier].0,
        bytes: tf
            .files
            .keys()
            .map(|i| sizes.get(i).copied().unwrap_or(0))
            .sum(),
        partitions: tf.files.len() as u64,
        min_time: kept.first().map(|&p| partition::partition_start(p)),
        max_time: kept.last().map(|&p| partition::partition_end(p)),
        samples: 0,
    }
}

/// What [`Store::select_rollup`] returns: the series, and the tier used with the cut
/// before which it answered (None: raw only).
type Answer = (Vec<SeriesData>, Option<(&'static str, i64)>);

/// Position in `files` (sorted by index) of the file holding raw day `day` (past the end
/// when there is none).
fn file_pos(files: &[(i64, Arc<Database>)], tier: usize, day: i64) -> usize {
    let idx = file_index(tier, day);
    files
        .binary_search_by_key(&idx, |(i, _)| *i)
        .unwrap_or(usize::MAX)
}

impl Store {
    /// Matching series in `[start, end]` for computation `want`: raw samples from the
    /// oldest raw day kept on, rollup points before it (see the module doc).
    pub(super) fn select_rollup(
        &self,
        matchers: &[Matcher],
        start: i64,
        end: i64,
        want: Want,
    ) -> Result<Answer, StoreError> {
        let shared = &self.handle.shared;
        let plain = |s: &Store| Ok((s.select_series(matchers, start, end)?, None));
        if want == Want::Raw || start > end {
            return plain(self);
        }
        // The cut: the first millisecond of the oldest raw day kept.
        // The guard must be gone before `plain` reads (the std RwLock is not reentrant:
        // a second read behind the writer's waiting write deadlocks).
        let picked = 'pick: {
            let dbs = shared.dbs();
            let Some(&oldest) = dbs.partitions.keys().next() else {
                break 'pick None;
            };
            let cut = partition::partition_start(oldest);
            if start >= cut {
                break 'pick None;
            }
            // The finest tier whose data reaches back to `start`, else the one reaching
            // furthest back.
            let first = |t: usize| {
                let tf = &dbs.tiers[t];
                let f = tf.files.keys().next()?;
                tf.rolled
                    .iter()
                    .find(|&&p| file_index(t, p) >= *f && p < oldest)
                    .copied()
            };
            let covered: Vec<(usize, i64)> = (0..TIERS.len())
                .filter_map(|t| first(t).map(|p| (t, partition::partition_start(p))))
                .collect();
            let pick = covered
                .iter()
                .find(|(_, from)| *from <= start)
                .or_else(|| covered.iter().min_by_key(|(_, from)| *from));
            pick.map(|&(t, _)| (cut, t))
        };
        let Some((cut, tier)) = picked else {
            return plain(self);
        };
        let mut raw = if end >= cut {
            self.select_series(matchers, cut, end)?
        } else {
            Vec::new()
        };
        let ids = self.matching_ids(matchers)?;
        let labels: Vec<(u64, Labels)> = {
            let head = shared.head();
            ids.iter()
                .filter_map(|id| head.series.get(id).map(|s| (*id, s.labels.clone())))
                .collect()
        };
        let roll_end = end.min(cut - 1);
        let res = TIERS[tier].1;
        // Buckets ending up to a bucket after `roll_end` may hold samples in the range.
        let (first_day, last_day) = (
            partition::partition_index(start),
            partition::partition_index(roll_end.saturating_add(res)),
        );
        let files: Vec<(i64, Arc<Database>)> = {
            let dbs = shared.dbs();
            dbs.tiers[tier]
                .files
                .range(file_index(tier, first_day)..=file_index(tier, last_day))
                .map(|(i, d)| (*i, d.clone()))
                .collect()
        };
        let mut txns = Vec::new();
        for (idx, db) in &files {
            let path = file_path(&shared.dir, tier, *idx);
            let txn = db.begin_read().map_err(|e| StoreError::db(&path, e))?;
            let t = txn
                .open_table(GROUPS)
                .map_err(|e| StoreError::db(&path, e))?;
            txns.push((path, t));
        }
        let mut by_labels: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        let mut used = false;
        let mut buckets: Vec<Bucket> = Vec::new();
        let raw_pos: BTreeMap<Labels, usize> = raw
            .iter()
            .enumerate()
            .map(|(i, s)| (s.labels.clone(), i))
            .collect();
        for (id, l) in labels {
            buckets.clear();
            // One value per (group, series): a point lookup per group.
            let last =
                partition::partition_start(last_day.min(partition::partition_index(cut - 1)));
            let mut group = group_start(tier, partition::partition_start(first_day));
            while group <= last {
                let key = (group, id);
                let day = partition::partition_index(group);
                group = group.saturating_add(GROUP_MS[tier]);
                let Some((path, t)) = txns.get(file_pos(&files, tier, day)) else {
                    continue;
                };
                let Some(v) = t.get(key).map_err(|e| StoreError::db(path, e))? else {
                    continue;
                };
                rollup::decode(v.value(), &mut buckets).map_err(|e| StoreError::Damaged {
                    path: path.clone(),
                    detail: format!("rollup of series {id}: {e}"),
                })?;
            }
            // Buckets of days still in raw are answered from raw.
            buckets.retain(|b| b.first_t < cut);
            rollup::merge_adjacent(&mut buckets);
            buckets.retain(|b| b.last_t >= start && b.first_t <= roll_end);
            if buckets.is_empty() {
                continue;
            }
            used = true;
            let next = raw_pos
                .get(&l)
                .and_then(|&i| raw[i].samples.first().copied());
            let mut pts = Vec::new();
            rollup::points(&buckets, want, next, &mut pts);
            pts.retain(|p| p.t >= start && p.t <= roll_end);
            by_labels.insert(l, pts);
        }
        if !used {
            return Ok((raw, None));
        }
        for s in raw.drain(..) {
            let mut samples = s.samples;
            if want == Want::Count {
                for x in &mut samples {
                    x.v = 1.0;
                }
            }
            by_labels.entry(s.labels).or_default().extend(samples);
        }
        let out = by_labels
            .into_iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(labels, samples)| SeriesData { labels, samples })
            .collect();
        Ok((out, Some((TIERS[tier].0, cut))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;
    use crate::query::promql::{eval, parse};
    use crate::store::{Budget, Limits, StoreOptions, WriteBatch};

    const STEP: i64 = 15_000;
    const DAYS: i64 = 10;
    /// A Monday-aligned week start: day files 0..6 share one 5m file, 7..9 the next.
    const DAY0: i64 = 7 * 2900;

    fn gauge(k: i64, i: i64) -> f64 {
        // Multiples of 0.5 below 2^40: sums are exact in any order.
        ((k * 37 + i * 11) % 101) as f64 * 0.5
    }

    /// Day `d` of two gauges and two counters (with resets), a few samples missing.
    fn day(d: i64) -> WriteBatch {
        let mut series = Vec::new();
        for i in 0..2 {
            let gl = Labels::from_pairs([("__name__", "g"), ("i", &i.to_string())]);
            let cl = Labels::from_pairs([("__name__", "c_total"), ("i", &i.to_string())]);
            let (mut gs, mut cs) = (Vec::new(), Vec::new());
            for j in 0..5760 {
                let k = d * 5760 + j;
                if k % 997 == 500 {
                    continue;
                }
                let t = partition::partition_start(DAY0 + d) + j * STEP;
                gs.push(Sample { t, v: gauge(k, i) });
                // Resets every 1000 samples.
                let c = (k % 1000) * (3 + i) + (k % 7);
                cs.push(Sample { t, v: c as f64 });
            }
            series.push((gl, gs));
            series.push((cl, cs));
        }
        WriteBatch {
            series,
            metadata: Vec::new(),
        }
    }

    fn fill(dir: &Path, limits: Limits) -> Store {
        let store = Store::open_with(
            StoreOptions {
                path: dir.to_owned(),
                flush_interval: Duration::from_secs(3600),
            },
            limits,
        )
        .expect("open");
        for d in 0..DAYS {
            store.append(day(d)).expect("append");
            store.flush().expect("flush");
        }
        store
    }

    fn run(
        store: &Store,
        q: &str,
        start: i64,
        end: i64,
        step: i64,
    ) -> (Vec<SeriesData>, Vec<String>) {
        let expr = parse(q).expect("parse");
        let (v, notes) = eval::range_query_annotated(
            store,
            &expr,
            start,
            end,
            step,
            &eval::EngineOptions::default(),
        )
        .expect("query");
        match v {
            eval::Value::Matrix(m) => (m, notes.warnings),
            other => panic!("{q}: {other:?}"),
        }
    }

    /// Rollup answers equal raw answers on bucket-aligned windows: min, max, sum, count,
    /// last and plain selectors exactly; rate/increase/delta within one raw interval of
    /// extrapolation (interval / (window - interval): where a counter reset or a gap sits
    /// at the window's edge) and exactly on at least 95 % of the points.
    #[test]
    fn rollup_answers_match_raw_answers() {
        let a_dir = tempfile::tempdir().expect("tempdir");
        let b_dir = tempfile::tempdir().expect("tempdir");
        let raw = fill(a_dir.path(), Limits::default());
        // A one-byte budget: raw keeps only the newest day, each tier its newest file.
        let rolled = fill(
            b_dir.path(),
            Limits {
                budget: Budget::Bytes(1),
                ..Limits::default()
            },
        );
        let day = |d: i64| partition::partition_start(DAY0 + d);
        assert_eq!(partition::list(b_dir.path()).expect("list").len(), 1);
        assert_eq!(
            all_bytes(b_dir.path(), 0).len(),
            1,
            "5m keeps the newest week"
        );
        assert_eq!(all_bytes(b_dir.path(), 1).len(), 1);
        let exact = [
            "min_over_time(g[{r}])",
            "max_over_time(g[{r}])",
            "sum_over_time(g[{r}])",
            "count_over_time(g[{r}])",
            "last_over_time(g[{r}])",
            "g",
            "sum_over_time(c_total[{r}])",
            "max_over_time(c_total[{r}])",
        ];
        let close = [
            "rate(c_total[{r}])",
            "increase(c_total[{r}])",
            "delta(g[{r}])",
        ];
        // Days 1-6: only the 1h tier has them (the 5m file of that week was deleted);
        // days 7-9.5: the 5m tier, then raw from day 9 on.
        let cases = [
            (day(1) + 3_600_000, day(6), 3_600_000, "1h", "1h"),
            (
                day(7) + 3_600_000,
                day(9) + 12 * 3_600_000,
                3_600_000,
                "5m",
                "1h",
            ),
            (day(7) + 300_000, day(8), 300_000, "5m", "5m"),
        ];
        for (start, end, step, tier, r) in cases {
            for (q, is_exact) in exact
                .iter()
                .map(|q| (q, true))
                .chain(close.iter().map(|q| (q, false)))
            {
                let q = q.replace("{r}", r);
                let (want, w0) = run(&raw, &q, start, end, step);
                let (got, w1) = run(&rolled, &q, start, end, step);
                assert!(w0.is_empty(), "{q}: {w0:?}");
                assert!(
                    w1.len() == 1 && w1[0].contains(&format!("the {tier} rollup tier")),
                    "{q}: {w1:?}"
                );
                assert_eq!(got.len(), want.len(), "{q}");
                let (mut points, mut same) = (0, 0);
                for (g, w) in got.iter().zip(&want) {
                    assert_eq!(g.labels, w.labels, "{q}");
                    assert_eq!(g.samples.len(), w.samples.len(), "{q} {}", g.labels);
                    for (x, y) in g.samples.iter().zip(&w.samples) {
                        assert_eq!(x.t, y.t, "{q}");
                        points += 1;
                        if is_exact {
                            assert_eq!(x.v, y.v, "{q} {} at {}", g.labels, x.t);
                        } else {
                            // The documented bound: one raw interval of extrapolation.
                            let window = if r == "5m" { 300_000 } else { 3_600_000 };
                            let bound = STEP as f64 / (window - STEP) as f64;
                            let rel = (x.v - y.v).abs() / y.v.abs().max(1e-9);
                            assert!(
                                rel <= bound,
                                "{q} {} at {}: {} vs {}",
                                g.labels,
                                x.t,
                                x.v,
                                y.v
                            );
                        }
                        if (x.v - y.v).abs() <= 1e-9 * y.v.abs().max(1.0) {
                            same += 1;
                        }
                    }
                }
                assert!(points > 0, "{q}");
                assert!(same * 100 >= points * 95, "{q}: {same} of {points} exact");
            }
        }
        // Queries over raw days only carry no warning.
        let (_, w) = run(
            &rolled,
            "rate(c_total[5m])",
            day(9) + 3_600_000,
            day(9) + 7_200_000,
            60_000,
        );
        assert!(w.is_empty(), "{w:?}");
        // A snapshot carries the tiers, and the tiers survive a restart.
        let snap_parent = tempfile::tempdir().expect("tempdir");
        let snap_dir = snap_parent.path().join("snap");
        rolled.snapshot(&snap_dir).expect("snapshot");
        let snap = Store::open(StoreOptions {
            path: snap_dir,
            flush_interval: Duration::from_secs(3600),
        })
        .expect("open the snapshot");
        let (got, w) = run(&snap, "sum_over_time(g[1h])", day(2), day(3), 3_600_000);
        let (want, _) = run(&raw, "sum_over_time(g[1h])", day(2), day(3), 3_600_000);
        assert_eq!(got, want);
        assert_eq!(w.len(), 1, "{w:?}");
        snap.close().expect("close");
        rolled.close().expect("close");
        let again = Store::open(StoreOptions {
            path: b_dir.path().to_owned(),
            flush_interval: Duration::from_secs(3600),
        })
        .expect("reopen");
        let (got, _) = run(&again, "count_over_time(g[1h])", day(2), day(3), 3_600_000);
        let (want, _) = run(&raw, "count_over_time(g[1h])", day(2), day(3), 3_600_000);
        assert_eq!(got, want);
        again.close().expect("close");
        raw.close().expect("close");
        // `picket store check` decodes every rollup group; a damaged one is a problem.
        let report = crate::store::check::check_dir(b_dir.path()).expect("check");
        assert!(report.problems.is_empty(), "{:?}", report.problems);
        for (name, files) in &report.rollups {
            assert!(!files.is_empty(), "{name}: no rollup files checked");
            assert!(files.iter().map(|f| f.buckets).sum::<u64>() > 0, "{name}");
        }
        let path = report.rollups[0].1[0].path.clone();
        {
            let db = Database::open(&path).expect("open rollup file");
            let txn = db.begin_write().expect("write");
            {
                let mut t = txn.open_table(GROUPS).expect("groups");
                let key = t.first().expect("first").expect("a group").0.value();
                t.insert(key, &[COLS_DAMAGED, 1, 2, 3][..]).expect("damage");
            }
            txn.commit().expect("commit");
        }
        let report = crate::store::check::check_dir(b_dir.path()).expect("check");
        assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
        assert!(report.problems[0].detail.contains("does not decode"));
    }

    /// Not a column count `rollup::encode` writes.
    const COLS_DAMAGED: u8 = 3;
}
