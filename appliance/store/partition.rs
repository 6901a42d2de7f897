//! Time partitions: one redb file per tier and span of time (`raw/<start-ms>.redb`, one
//! day each), holding sealed chunks, blocks of pieces of open chunks, and a meta table.
//!
//! A partition file is created only when a sample lands in it, so a Pi that records a few
//! minutes in 1970 before its clock syncs gets one extra file, not thousands.

use super::StoreError;
use super::codec::{self, ChunkHeader};
use crate::model::Sample;
use redb::{
    Database, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    TableError,
};
use std::path::{Path, PathBuf};

/// Span of one raw partition: one day.
pub const RAW_SPAN_MS: i64 = 86_400_000;
/// Folder of the raw tier under the data dir (`5m/`, `1h/` rollups would sit beside it).
pub const RAW_DIR: &str = "raw";

/// `"next_seq"` in the meta table: one past the largest sequence number written here.
pub(super) use super::META;
/// Sealed chunks: `(hour, series_id, max_t, seq)` → chunk value, `hour` being
/// `max_t / 1 h` (see [`hour_of`]). Why this key:
/// - `hour` first: chunks sealed in one flush end at about the same time, so they land in
///   the newest hour's subtree, near the right edge of the tree. Keyed by series first,
///   every seal round (all series seal within a few flushes of each other) dirtied every
///   leaf page of the day's file: the bench measured ~10x the data in bytes written.
/// - then `series_id, max_t`: a query for `[start, end]` does one short range scan per hour
///   from `hour_of(start)` to the end of the partition (at most 24), starting at
///   `(hour, id, start)`, and reads only chunks that can reach into the range;
/// - `seq` orders overlapping chunks (later wins) and keeps keys unique.
pub const CHUNKS: TableDefinition<(i64, u64, i64, u64), &[u8]> = TableDefinition::new("chunks");
/// Width of the `hour` component of chunk keys.
pub const HOUR_MS: i64 = 3_600_000;

pub fn hour_of(t: i64) -> i64 {
    t.div_euclid(HOUR_MS)
}

/// Blocks: flush `seq` → what that flush added to every open chunk of the partition (see
/// codec.rs). One value per flush, appended at the right edge of the tree: a flush writes
/// little more than the new bytes, instead of one entry (and a leaf page) per series. A
/// block is deleted by the flush that seals the last open chunk it has a piece of; read only
/// at open, to rebuild the head.
pub const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");

/// Shared timestamp columns of tag-4 chunks: xxHash64 of the column → the column (see
/// codec.rs). Series scraped together (one target, one scrape time) have the same
/// timestamps, so one entry serves hundreds of chunks. Entries are never deleted on their
/// own (chunks are not either); they go with the partition file.
pub const TIMES: TableDefinition<u64, &[u8]> = TableDefinition::new("times");
/// A timestamp column this short is kept in the chunk (a shared key costs 9 bytes there).
const SHARE_TIMES_ABOVE: usize = 12;

/// Encodes a sealed chunk from its samples (arrival order) into `out`, putting its
/// timestamp column into `times` (or finding it there). `known` remembers, for this
/// transaction, which keys are in `times` with which column: a different column under a
/// known key (a hash collision) is kept inline instead.
pub fn encode_sealed(
    samples: &[Sample],
    times: &mut redb::Table<'_, u64, &[u8]>,
    known: &mut std::collections::HashMap<u64, Vec<u8>>,
    out: &mut Vec<u8>,
) -> Result<(), redb::StorageError> {
    let (col, key) = codec::times_column(samples);
    if col.len() <= SHARE_TIMES_ABOVE {
        codec::encode_columns(samples, codec::Times::Inline(&col), out);
        return Ok(());
    }
    let stored = match known.entry(key) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            let existing = times.get(key)?.map(|g| g.value().to_vec());
            match existing {
                Some(v) => e.insert(v),
                None => {
                    times.insert(key, col.as_slice())?;
                    e.insert(col.clone())
                }
            }
        }
    };
    if *stored == col {
        codec::encode_columns(samples, codec::Times::Shared(key), out);
    } else {
        codec::encode_columns(samples, codec::Times::Inline(&col), out);
    }
    Ok(())
}

/// A sealed chunk's key in [`CHUNKS`].
pub type ChunkKey = (i64, u64, i64, u64);
/// Share of a commit's chunk bytes that [`insert_packed`] inserts in its first pass.
const FIRST_PASS_SHARE: usize = 55;

/// Inserts one commit's sealed chunks so that the leaf pages they fill end up ~90 % full.
///
/// redb splits a full leaf at its middle, so keys inserted in ascending order (a commit's
/// chunks all land after the existing keys of their hours) leave every page half full:
/// the file measured ~60 % page fill, i.e. 1.6x the bytes of its chunks. Here the chunks
/// are sorted and inserted in two ascending passes: first an evenly spread 55 % of their
/// bytes (every page split in the middle, so each holds ~half a page of them, spanning
/// keys worth ~0.9 pages in all), then the rest into the gaps, which fills each page to
/// ~90 % without splitting it again.
pub fn insert_packed(
    table: &mut redb::Table<'_, ChunkKey, &[u8]>,
    entries: &mut [(ChunkKey, Vec<u8>)],
) -> Result<(), redb::StorageError> {
    entries.sort_by_key(|(k, _)| *k);
    // Bytes an entry takes in a leaf: key, value and their two offsets.
    let size = |v: &Vec<u8>| 32 + v.len() + 8;
    let (mut all, mut first) = (0usize, 0usize);
    let mut in_first = Vec::with_capacity(entries.len());
    for (_, v) in entries.iter() {
        all += size(v);
        let take = (first + size(v) / 2) * 100 <= all * FIRST_PASS_SHARE;
        if take {
            first += size(v);
        }
        in_first.push(take);
    }
    for pass in [true, false] {
        for ((k, v), &f) in entries.iter().zip(&in_first) {
            if f == pass {
                table.insert(*k, v.as_slice())?;
            }
        }
    }
    Ok(())
}

/// Which partition a timestamp falls in (floor division; any i64 is fine).
pub fn partition_index(t: i64) -> i64 {
    t.div_euclid(RAW_SPAN_MS)
}

/// First millisecond of a partition, clamped for the lowest one (whose real start is before
/// `i64::MIN`); `partition_index(partition_start(i)) == i` for every index.
pub fn partition_start(index: i64) -> i64 {
    (i128::from(index) * i128::from(RAW_SPAN_MS)).max(i128::from(i64::MIN)) as i64
}

/// Last millisecond of a partition, clamped for the highest one.
pub fn partition_end(index: i64) -> i64 {
    ((i128::from(index) + 1) * i128::from(RAW_SPAN_MS) - 1).min(i128::from(i64::MAX)) as i64
}

/// Bytes each partition uses (its redb file and its block log segments), from one listing
/// of the raw directory.
pub fn all_bytes(dir: &Path) -> std::collections::BTreeMap<i64, u64> {
    let mut out = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(dir.join(RAW_DIR))
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let pidx = parse_partition_name(name)
            .or_else(|| super::wal::parse_segment_name(name).map(|(p, _)| p));
        if let Some(p) = pidx {
            *out.entry(p).or_default() += e.metadata().map_or(0, |m| m.len());
        }
    }
    out
}

/// Bytes one partition uses (see [`all_bytes`]).
pub fn partition_bytes(dir: &Path, index: i64) -> u64 {
    all_bytes(dir).get(&index).copied().unwrap_or(0)
}

pub fn partition_path(dir: &Path, index: i64) -> PathBuf {
    dir.join(RAW_DIR)
        .join(format!("{}.redb", partition_start(index)))
}

/// Parses `<start-ms>.redb`; other files in the folder are not ours and are left alone.
pub fn parse_partition_name(name: &str) -> Option<i64> {
    let start: i64 = name.strip_suffix(".redb")?.parse().ok()?;
    let index = partition_index(start);
    (partition_start(index) == start).then_some(index)
}

/// The partition files under `dir/raw`, oldest first (other files are not ours and are
/// skipped).
pub fn list(dir: &Path) -> Result<Vec<(i64, PathBuf)>, StoreError> {
    let raw = dir.join(RAW_DIR);
    let mut out = Vec::new();
    if !raw.is_dir() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(&raw).map_err(|e| StoreError::io(&raw, e))? {
        let entry = entry.map_err(|e| StoreError::io(&raw, e))?;
        if let Some(i) = entry.file_name().to_str().and_then(parse_partition_name) {
            out.push((i, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Opens an existing partition file, refusing newer or foreign files untouched.
pub fn open(path: &Path) -> Result<Database, StoreError> {
    super::open_existing(path, "partition")
}

/// Creates a new partition file with its schema version.
pub fn create(path: &Path) -> Result<Database, StoreError> {
    super::create_new(path, |txn| {
        txn.open_table(CHUNKS)
            .map_err(|e| StoreError::db(path, e))?;
        txn.open_table(BLOCKS)
            .map_err(|e| StoreError::db(path, e))?;
        txn.open_table(TIMES).map_err(|e| StoreError::db(path, e))?;
        Ok(())
    })
}

/// What a partition's sealed chunks hold, for introspection: kept in its `meta` table
/// (`"samples"`, `"min_t"`, `"max_t"`, the times as the u64 bits of an i64) and updated by
/// every commit that seals chunks, in the transaction that already rewrites `"next_seq"`.
/// The samples of open chunks (on disk as pieces in the block log) are counted from the
/// head. A timestamp written twice counts twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PartStats {
    pub samples: u64,
    /// Oldest and newest sample time; `None` while the partition is empty.
    pub min_t: Option<i64>,
    pub max_t: Option<i64>,
}

impl PartStats {
    pub fn add(&mut self, samples: u64, min_t: i64, max_t: i64) {
        self.samples += samples;
        self.min_t = Some(self.min_t.map_or(min_t, |m| m.min(min_t)));
        self.max_t = Some(self.max_t.map_or(max_t, |m| m.max(max_t)));
    }

    /// Writes the counters into a partition's meta table (inside a flush transaction).
    pub fn write(&self, meta: &mut redb::Table<'_, &str, u64>) -> Result<(), redb::StorageError> {
        meta.insert("samples", self.samples)?;
        if let (Some(lo), Some(hi)) = (self.min_t, self.max_t) {
            meta.insert("min_t", lo as u64)?;
            meta.insert("max_t", hi as u64)?;
        }
        Ok(())
    }
}

/// A partition's [`PartStats`]: from its meta table, or, for a file written before the
/// counters existed, counted from its chunk headers (once, at open).
pub fn read_stats(db: &impl ReadableDatabase, path: &Path) -> Result<PartStats, StoreError> {
    let e = |x: redb::Error| StoreError::db(path, x);
    let txn = db.begin_read().map_err(|x| e(x.into()))?;
    let meta = txn.open_table(META).map_err(|x| e(x.into()))?;
    let get = |k: &str| -> Result<Option<u64>, StoreError> {
        Ok(meta.get(k).map_err(|x| e(x.into()))?.map(|g| g.value()))
    };
    if let Some(samples) = get("samples")? {
        return Ok(PartStats {
            samples,
            min_t: get("min_t")?.map(|v| v as i64),
            max_t: get("max_t")?.map(|v| v as i64),
        });
    }
    let mut st = PartStats::default();
    let chunks = match txn.open_table(CHUNKS) {
        Ok(t) => Some(t),
        Err(TableError::TableDoesNotExist(_)) => None,
        Err(x) => return Err(e(x.into())),
    };
    for entry in chunks.iter().flat_map(|t| t.iter().into_iter().flatten()) {
        let (k, v) = entry.map_err(|x| e(x.into()))?;
        let h = ChunkHeader::parse(v.value()).map_err(|c| StoreError::Damaged {
            path: path.to_owned(),
            detail: format!("chunk {:?}: {c}", k.value()),
        })?;
        st.add(u64::from(h.count), h.min_t, h.max_t);
    }
    Ok(st)
}

/// `next_seq` recorded in a partition (0 when none).
pub fn next_seq(db: &Database, path: &Path) -> Result<u64, StoreError> {
    let txn = db.begin_read().map_err(|e| StoreError::db(path, e))?;
    let t = txn.open_table(META).map_err(|e| StoreError::db(path, e))?;
    Ok(t.get("next_seq")
        .map_err(|e| StoreError::db(path, e))?
        .map_or(0, |g| g.value()))
}

/// The blocks kept in the partition's `blocks` table (files written before the block log;
/// see wal.rs), in sequence order.
pub fn table_blocks(db: &Database, path: &Path) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
    let txn = db.begin_read().map_err(|e| StoreError::db(path, e))?;
    let t = match txn.open_table(BLOCKS) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::db(path, e)),
    };
    let mut out = Vec::new();
    for entry in t.iter().map_err(|e| StoreError::db(path, e))? {
        let (k, v) = entry.map_err(|e| StoreError::db(path, e))?;
        out.push((k.value(), v.value().to_vec()));
    }
    Ok(out)
}

/// The largest sequence number of each series' sealed chunks (a key-only scan, done at
/// open only for partitions that have blocks): pieces in blocks older than that were
/// already written sealed, and must not come back into the head.
pub fn sealed_seqs(
    db: &Database,
    path: &Path,
) -> Result<std::collections::HashMap<u64, u64>, StoreError> {
    let txn = db.begin_read().map_err(|e| StoreError::db(path, e))?;
    let t = txn
        .open_table(CHUNKS)
        .map_err(|e| StoreError::db(path, e))?;
    let mut out = std::collections::HashMap::new();
    for entry in t.iter().map_err(|e| StoreError::db(path, e))? {
        let (k, _) = entry.map_err(|e| StoreError::db(path, e))?;
        let (_, series, _, seq) = k.value();
        let e = out.entry(series).or_insert(seq);
        *e = (*e).max(seq);
    }
    Ok(out)
}

/// A read snapshot of a partition's sealed chunks and their shared timestamp columns.
pub struct ChunksTable {
    chunks: ReadOnlyTable<(i64, u64, i64, u64), &'static [u8]>,
    times: Option<ReadOnlyTable<u64, &'static [u8]>>,
}

/// The sealed-chunks table of a partition snapshot (None if the file has none yet).
pub fn chunks_table(txn: &ReadTransaction, path: &Path) -> Result<Option<ChunksTable>, StoreError> {
    let chunks = match txn.open_table(CHUNKS) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(None),
        Err(e) => return Err(StoreError::db(path, e)),
    };
    let times = match txn.open_table(TIMES) {
        Ok(t) => Some(t),
        Err(TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(StoreError::db(path, e)),
    };
    Ok(Some(ChunksTable { chunks, times }))
}

/// Decodes one chunk value, looking its timestamps up in `times` when they are shared.
pub fn decode_chunk_in(
    value: &[u8],
    times: Option<&ReadOnlyTable<u64, &'static [u8]>>,
    out: &mut Vec<Sample>,
) -> Result<ChunkHeader, ChunkError> {
    match codec::shared_times(value)? {
        None => Ok(codec::decode_chunk(value, out)?),
        Some(key) => {
            let col = times
                .map(|t| t.get(key))
                .transpose()?
                .flatten()
                .ok_or(codec::CodecError("its shared timestamp column is missing"))?;
            Ok(codec::decode_chunk_with(value, Some(col.value()), out)?)
        }
    }
}

/// Why a chunk could not be read: its bytes, or the file under it.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
    #[error(transparent)]
    Storage(#[from] redb::StorageError),
}

/// Appends to `out` the sealed chunks of `series` in partition `pidx` that may hold
/// samples in `[start, end]`, as `(seq, samples)` in arrival order within each chunk.
/// `newest` bounds the hours looked at: the newest `max_t` of any sealed chunk in the
/// partition ([`PartStats::max_t`]), or [`partition_end`] when unknown.
#[allow(clippy::too_many_arguments)]
pub fn read_chunks(
    t: &ChunksTable,
    path: &Path,
    pidx: i64,
    series: u64,
    start: i64,
    end: i64,
    newest: i64,
    out: &mut Vec<(u64, Vec<Sample>)>,
) -> Result<(), StoreError> {
    // A chunk ending at or after `start` may reach into the range; it can end in any later
    // hour of the partition (a chunk may span hours), so every such hour up to the newest
    // sealed chunk's is looked at.
    let first = hour_of(start.max(partition_start(pidx)));
    let last = hour_of(newest.min(partition_end(pidx)));
    for hour in first..=last {
        let range = t
            .chunks
            .range((hour, series, start, 0u64)..=(hour, series, i64::MAX, u64::MAX))
            .map_err(|e| StoreError::db(path, e))?;
        for entry in range {
            let (k, v) = entry.map_err(|e| StoreError::db(path, e))?;
            let (_, _, _, seq) = k.value();
            let value = v.value();
            let damaged = |e: codec::CodecError| StoreError::Damaged {
                path: path.to_owned(),
                detail: format!("chunk of series {series}: {e}"),
            };
            let h = ChunkHeader::parse(value).map_err(damaged)?;
            if h.min_t > end {
                continue;
            }
            let mut samples = Vec::with_capacity(h.count as usize);
            decode_chunk_in(value, t.times.as_ref(), &mut samples).map_err(|e| match e {
                ChunkError::Codec(c) => damaged(c),
                ChunkError::Storage(s) => StoreError::db(path, s),
            })?;
            out.push((seq, samples));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_round_trip_for_any_timestamp() {
        for t in [
            i64::MIN,
            i64::MIN + 1,
            -86_400_001,
            -1,
            0,
            1,
            86_399_999,
            86_400_000,
            1_700_000_000_000,
            i64::MAX,
        ] {
            let i = partition_index(t);
            let name = format!("{}.redb", partition_start(i));
            assert_eq!(parse_partition_name(&name), Some(i), "t={t}");
            assert!(partition_start(i) <= t);
            assert!(partition_end(i) >= t);
            assert_eq!(partition_index(partition_end(i)), i);
        }
        assert_eq!(parse_partition_name("5.redb"), None);
        assert_eq!(parse_partition_name("index.redb"), None);
    }
}
