//! Offline inspection of a data directory (`picket store check`, `picket store stats`):
//! opens every file read-only (redb refuses while a Picket process has it open, and
//! nothing is ever written), decodes every chunk and block, and reports what it found.
//!
//! Checks, per file: it opens, its schema version is known; in the index every label set
//! and metadata value decodes; in a partition every chunk decodes to the sample count its
//! header claims, its key agrees with its header (`max_t`, its hour, the partition of its
//! samples) and names a series the index knows; every block (in the `blocks` table or
//! the block log, whose records carry checksums) decodes, and the live pieces
//! of each series (newer than its last sealed chunk, as `Store::open` takes them)
//! concatenate into a stream that decodes. In a 5m or 1h rollup file every stored group
//! decodes, its buckets are in time order inside the group its key names, each bucket's
//! count is positive and its min not above its max, and its series is known to the index.

use super::codec;
use super::{INDEX_FILE, META, SCHEMA_VERSION, StoreError, index, partition, rollup, tier, wal};
use redb::{Database, ReadOnlyDatabase, ReadableDatabase, ReadableTable};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// What one file holds.
#[derive(Debug, Clone, Default)]
pub struct FileReport {
    pub path: PathBuf,
    pub bytes: u64,
    /// Index: series and metadata entries. Partition: sealed chunks and blocks. Rollup
    /// file: stored groups in `chunks`.
    pub series: u64,
    pub metadata: u64,
    pub chunks: u64,
    pub blocks: u64,
    /// Samples decoded (sealed chunks plus live pieces); in a rollup file, the raw
    /// samples its buckets summarise.
    pub samples: u64,
    /// Rollup file: buckets decoded.
    pub buckets: u64,
    pub min_t: Option<i64>,
    pub max_t: Option<i64>,
}

impl FileReport {
    /// An empty report of the file at `path`, with its size.
    fn of(path: &Path) -> FileReport {
        FileReport {
            path: path.to_owned(),
            bytes: std::fs::metadata(path).map_or(0, |m| m.len()),
            ..FileReport::default()
        }
    }
}

/// One problem: the file and, where known, the key it is at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: PathBuf,
    pub key: String,
    pub detail: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.path.display(), self.detail)
        } else {
            write!(f, "{}: {}: {}", self.path.display(), self.key, self.detail)
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Report {
    pub index: Option<FileReport>,
    pub partitions: Vec<FileReport>,
    /// Per rollup tier ("5m", "1h"), its files.
    pub rollups: Vec<(&'static str, Vec<FileReport>)>,
    pub problems: Vec<Problem>,
    /// The automatic budget remembered in the index, if one was set.
    pub auto_budget_bytes: Option<u64>,
}

fn open_ro(path: &Path) -> Result<ReadOnlyDatabase, StoreError> {
    Database::builder()
        .open_read_only(path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => StoreError::AlreadyOpen {
                path: path.to_owned(),
            },
            redb::DatabaseError::RepairAborted => StoreError::Other(format!(
                "{}: needs the repair redb does after a crash (Picket does it at its next start)",
                path.display()
            )),
            e => super::open_error(path, e),
        })
}

/// Inspects the data directory `dir`. Only a missing directory or one Picket has open is
/// an error; everything wrong inside a file is a [`Problem`] in the report.
pub fn check_dir(dir: &Path) -> Result<Report, StoreError> {
    if !dir.is_dir() {
        return Err(StoreError::Other(format!(
            "{} is not a directory; pass the data directory with --data-dir",
            dir.display()
        )));
    }
    let mut report = Report::default();
    let index_path = dir.join(INDEX_FILE);
    let mut known: Option<HashSet<u64>> = None;
    match open_ro(&index_path) {
        Ok(db) => {
            let (fr, ids) = check_index(&db, &index_path, &mut report);
            report.index = Some(fr);
            known = Some(ids);
        }
        Err(e @ StoreError::AlreadyOpen { .. }) => return Err(e),
        Err(e) => report.problems.push(Problem {
            path: index_path.clone(),
            key: String::new(),
            detail: e.to_string(),
        }),
    }
    let mut logs = wal::list(dir)?;
    for (pidx, path) in partition::list(dir)? {
        let segs = logs.remove(&pidx).unwrap_or_default();
        match open_ro(&path) {
            Ok(db) => {
                let mut fr = check_partition(&db, &path, &segs, pidx, known.as_ref(), &mut report);
                fr.bytes = partition::partition_bytes(dir, pidx);
                report.partitions.push(fr);
            }
            Err(e @ StoreError::AlreadyOpen { .. }) => return Err(e),
            Err(e) => report.problems.push(Problem {
                path: path.clone(),
                key: String::new(),
                detail: e.to_string(),
            }),
        }
    }
    for (t, (name, _)) in rollup::TIERS.iter().enumerate() {
        let mut files = Vec::new();
        for idx in tier::all_bytes(dir, t).into_keys() {
            let path = tier::file_path(dir, t, idx);
            match open_ro(&path) {
                Ok(db) => files.push(check_rollup(&db, &path, t, known.as_ref(), &mut report)),
                Err(e @ StoreError::AlreadyOpen { .. }) => return Err(e),
                Err(e) => problem(&mut report, &path, "", e),
            }
        }
        report.rollups.push((name, files));
    }
    for segs in logs.values() {
        for (_, seg) in segs {
            problem(
                &mut report,
                seg,
                "",
                "a block log without its partition file",
            );
        }
    }
    Ok(report)
}

fn problem(report: &mut Report, path: &Path, key: impl Into<String>, detail: impl ToString) {
    report.problems.push(Problem {
        path: path.to_owned(),
        key: key.into(),
        detail: detail.to_string(),
    });
}

fn check_schema(db: &ReadOnlyDatabase, path: &Path, report: &mut Report) -> bool {
    match super::schema_version(db, path) {
        Ok(Some(v)) if v <= SCHEMA_VERSION => true,
        Ok(Some(v)) => {
            problem(
                report,
                path,
                "meta/schema_version",
                format!("{v} is newer than this Picket reads ({SCHEMA_VERSION})"),
            );
            false
        }
        Ok(None) => {
            problem(
                report,
                path,
                "meta/schema_version",
                "missing (not a Picket file)",
            );
            false
        }
        Err(e) => {
            problem(report, path, "meta", e);
            false
        }
    }
}

fn check_index(
    db: &ReadOnlyDatabase,
    path: &Path,
    report: &mut Report,
) -> (FileReport, HashSet<u64>) {
    let mut fr = FileReport::of(path);
    let mut ids = HashSet::new();
    if !check_schema(db, path, report) {
        return (fr, ids);
    }
    let r = (|| -> Result<(), redb::Error> {
        let txn = db.begin_read()?;
        if let Some(v) = txn.open_table(META)?.get("auto_budget_bytes")? {
            report.auto_budget_bytes = Some(v.value());
        }
        for entry in txn.open_table(index::SERIES)?.iter()? {
            let (k, v) = entry?;
            fr.series += 1;
            ids.insert(k.value());
            if let Err(e) = postcard::from_bytes::<Vec<(&str, &str)>>(v.value()) {
                problem(report, path, format!("series/{}", k.value()), e);
            }
        }
        for entry in txn.open_table(index::METADATA)?.iter()? {
            let (k, v) = entry?;
            fr.metadata += 1;
            if let Err(e) = postcard::from_bytes::<crate::model::Metadata>(v.value()) {
                problem(report, path, format!("metadata/{}", k.value()), e);
            }
        }
        Ok(())
    })();
    if let Err(e) = r {
        problem(report, path, "", e);
    }
    (fr, ids)
}

fn check_rollup(
    db: &ReadOnlyDatabase,
    path: &Path,
    tier_index: usize,
    known: Option<&HashSet<u64>>,
    report: &mut Report,
) -> FileReport {
    let mut fr = FileReport::of(path);
    if !check_schema(db, path, report) {
        return fr;
    }
    let group_ms = tier::GROUP_MS[tier_index];
    let r = (|| -> Result<(), redb::Error> {
        let txn = db.begin_read()?;
        let mut buckets = Vec::new();
        for entry in txn.open_table(tier::GROUPS)?.iter()? {
            let (k, v) = entry?;
            let (start, series) = k.value();
            let key = format!("groups/({start}, {series})");
            fr.chunks += 1;
            if known.is_some_and(|ids| !ids.contains(&series)) {
                problem(report, path, &key, "series missing from the index");
            }
            buckets.clear();
            if let Err(e) = rollup::decode(v.value(), &mut buckets) {
                problem(report, path, &key, format!("does not decode: {e}"));
                continue;
            }
            // A group holds the buckets of its raw days; a bucket covers (end - res, end],
            // so one holding a day's first millisecond ends at the group's start. Two
            // halves of a bucket split at midnight share an end, ordered by first sample.
            let inside = |b: &rollup::Bucket| b.end >= start && b.end <= start + group_ms;
            let ordered = buckets
                .windows(2)
                .all(|w| (w[0].end, w[0].first_t) <= (w[1].end, w[1].first_t));
            if !ordered || !buckets.iter().all(inside) {
                problem(
                    report,
                    path,
                    &key,
                    "buckets out of order or outside the group",
                );
            }
            if buckets.iter().any(|b| b.count == 0 || b.min > b.max) {
                problem(
                    report,
                    path,
                    &key,
                    "a bucket with no samples or min above max",
                );
            }
            fr.buckets += buckets.len() as u64;
            fr.samples += buckets.iter().map(|b| b.count).sum::<u64>();
            if let (Some(a), Some(b)) = (buckets.first(), buckets.last()) {
                span(&mut fr, a.first_t, b.last_t);
            }
        }
        Ok(())
    })();
    if let Err(e) = r {
        problem(report, path, "", e);
    }
    fr
}

fn check_partition(
    db: &ReadOnlyDatabase,
    path: &Path,
    logs: &[(u64, PathBuf)],
    pidx: i64,
    known: Option<&HashSet<u64>>,
    report: &mut Report,
) -> FileReport {
    let mut fr = FileReport::of(path);
    if !check_schema(db, path, report) {
        return fr;
    }
    let r = (|| -> Result<(), redb::Error> {
        let txn = db.begin_read()?;
        let mut last_sealed: HashMap<u64, u64> = HashMap::new();
        let mut samples = Vec::new();
        let times = match txn.open_table(partition::TIMES) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(e.into()),
        };
        for entry in txn.open_table(partition::CHUNKS)?.iter()? {
            let (k, v) = entry?;
            let (hour, series, max_t, seq) = k.value();
            let key = format!("chunks/({hour}, {series}, {max_t}, {seq})");
            fr.chunks += 1;
            let e = last_sealed.entry(series).or_insert(seq);
            *e = (*e).max(seq);
            if known.is_some_and(|ids| !ids.contains(&series)) {
                problem(report, path, &key, "series missing from the index");
            }
            samples.clear();
            let h = match partition::decode_chunk_in(v.value(), times.as_ref(), &mut samples) {
                Ok(h) => h,
                Err(e) => {
                    problem(report, path, &key, format!("does not decode: {e}"));
                    continue;
                }
            };
            if samples.len() != h.count as usize {
                problem(
                    report,
                    path,
                    &key,
                    format!(
                        "header claims {} samples, {} decoded",
                        h.count,
                        samples.len()
                    ),
                );
            }
            let (lo, hi) = samples
                .iter()
                .fold((i64::MAX, i64::MIN), |(a, b), s| (a.min(s.t), b.max(s.t)));
            if !samples.is_empty() && (lo != h.min_t || hi != h.max_t) {
                problem(report, path, &key, "header times disagree with the samples");
            }
            if h.max_t != max_t || partition::hour_of(max_t) != hour {
                problem(
                    report,
                    path,
                    &key,
                    format!("key disagrees with header max_t {}", h.max_t),
                );
            }
            if partition::partition_index(h.min_t) != pidx
                || partition::partition_index(h.max_t) != pidx
            {
                problem(report, path, &key, "samples outside the partition's day");
            }
            fr.samples += samples.len() as u64;
            if !samples.is_empty() {
                span(&mut fr, lo, hi);
            }
        }
        // Live pieces, as the open takes them: per series, in block order; blocks are in
        // the `blocks` table (files from before the block log) and in the log segments.
        let mut blocks: Vec<(u64, Vec<u8>)> = Vec::new();
        for entry in txn.open_table(partition::BLOCKS)?.iter()? {
            let (k, v) = entry?;
            blocks.push((k.value(), v.value().to_vec()));
        }
        for (_, seg) in logs {
            match wal::read_segment(seg) {
                Ok(r) => blocks.extend(r.records),
                Err(e) => problem(report, seg, "", e),
            }
        }
        blocks.sort_by_key(|b| b.0);
        let mut streams: BTreeMap<u64, (codec::PieceJoiner, u64)> = BTreeMap::new();
        for (seq, value) in &blocks {
            let seq = *seq;
            fr.blocks += 1;
            let mut pieces = Vec::new();
            if let Err(e) = codec::decode_block(value, &mut pieces) {
                problem(
                    report,
                    path,
                    format!("blocks/{seq}"),
                    format!("does not decode: {e}"),
                );
                continue;
            }
            for p in pieces {
                if last_sealed.get(&p.series).is_some_and(|&s| s > seq) {
                    continue;
                }
                let e = streams
                    .entry(p.series)
                    .or_insert_with(|| (codec::PieceJoiner::default(), seq));
                e.0.add(&p);
            }
        }
        for (series, (joiner, first)) in streams {
            if known.is_some_and(|ids| !ids.contains(&series)) {
                problem(
                    report,
                    path,
                    format!("blocks/{first}"),
                    format!("series {series} missing from the index"),
                );
            }
            match joiner.finish() {
                Ok(samples) => {
                    fr.samples += samples.len() as u64;
                    if let (Some(lo), Some(hi)) = (
                        samples.iter().map(|s| s.t).min(),
                        samples.iter().map(|s| s.t).max(),
                    ) {
                        span(&mut fr, lo, hi);
                    }
                }
                Err(e) => problem(
                    report,
                    path,
                    format!("blocks/{first}.."),
                    format!("pieces of series {series} do not decode: {e}"),
                ),
            }
        }
        Ok(())
    })();
    if let Err(e) = r {
        problem(report, path, "", e);
    }
    fr
}

fn span(fr: &mut FileReport, lo: i64, hi: i64) {
    fr.min_t = Some(fr.min_t.map_or(lo, |m| m.min(lo)));
    fr.max_t = Some(fr.max_t.map_or(hi, |m| m.max(hi)));
}
