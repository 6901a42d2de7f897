//! The single writer thread: owns every write transaction, flushes the head on a timer and
//! on request, and seals everything at close.

use super::head::{CHUNK_SAMPLES, Head, window_end};
use super::{Command, Shared, StoreError, codec, index, partition, tier, wal};
use crate::model::{Labels, Metadata};
use redb::{Database, Durability, ReadableTable};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// An open chunk that got no sample for [`IDLE_STEPS`] of its series' last sample step
/// (within these bounds) is sealed: its series went away or its target is down. Sealing
/// frees its head memory and lets its log segment go; the series' next samples start a new
/// chunk in the same window, cut where the other series of its target were cut too.
const IDLE_SEAL_MIN: Duration = Duration::from_secs(2 * 60);
const IDLE_SEAL_MAX: Duration = Duration::from_secs(15 * 60);
const IDLE_STEPS: u32 = 8;

/// A piece written as columns when it has at least this many samples (and columns are
/// smaller): below that the stream bytes are as small and need no re-encoding.
const COLUMN_PIECE_SAMPLES: u32 = 8;

/// The stream bytes an open chunk gained since the last flush, copied out of the head:
/// `bytes[skip..]`. A piece that may be worth writing as columns copies the whole stream
/// (`skip` is then where the new bytes start), to decode its samples outside the head lock.
struct PieceSrc {
    series: u64,
    chunk: u64,
    bytes: Vec<u8>,
    skip: usize,
    count: u32,
    flushed: u32,
    body_len: u32,
}

/// A sealed chunk, copied out of the head (its stream; encoded for disk outside the lock).
struct SealSrc {
    series: u64,
    chunk: u64,
    stream: Vec<u8>,
    max_t: i64,
    min_t: i64,
    count: u32,
    first_piece: Option<u64>,
    unflushed: u32,
}

#[derive(Default)]
struct PartPlan {
    pieces: Vec<PieceSrc>,
    seals: Vec<SealSrc>,
}

struct Plan {
    series: Vec<(u64, Labels)>,
    metadata: Vec<(String, Metadata)>,
    parts: BTreeMap<i64, PartPlan>,
}

pub struct Writer {
    shared: Arc<Shared>,
    next_seq: u64,
    /// Per partition: block seq → head chunks whose first piece is in that block (their
    /// later pieces are all in later blocks, so a block before the first one with a count
    /// holds no piece of an open chunk).
    refs: BTreeMap<i64, BTreeMap<u64, u32>>,
    interval: Duration,
    /// Per partition: its block log segments.
    logs: BTreeMap<i64, wal::PartLog>,
}

impl Writer {
    pub fn new(
        shared: Arc<Shared>,
        next_seq: u64,
        interval: Duration,
        refs: BTreeMap<i64, BTreeMap<u64, u32>>,
        logs: BTreeMap<i64, wal::PartLog>,
    ) -> Writer {
        let mut w = Writer {
            shared,
            next_seq,
            refs,
            interval,
            logs,
        };
        // Segments whose records all died before the last run stopped.
        let empty = BTreeMap::new();
        for (pidx, log) in &mut w.logs {
            log.collect(w.refs.get(pidx).unwrap_or(&empty));
        }
        w
    }

    pub fn run(mut self, rx: Receiver<Command>) {
        let mut deadline = Instant::now() + self.interval;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(Command::Flush(reply)) => {
                    let r = self.flush(false);
                    self.keep_limits();
                    deadline = Instant::now() + self.interval;
                    let _ = reply.send(r);
                }
                Ok(Command::Close(reply)) => {
                    let r = self.flush(true);
                    self.release(r.is_ok());
                    let _ = reply.send(r);
                    return;
                }
                #[cfg(test)]
                Ok(Command::Abandon(reply)) => {
                    self.release(false);
                    let _ = reply.send(Ok(()));
                    return;
                }
                Err(RecvTimeoutError::Timeout) => {
                    if let Err(e) = self.flush(false)
                        && !super::full::is_disk_full(&e)
                    {
                        // The head keeps the data; the next flush retries. (A full disk is
                        // logged once, when writes start failing: full.rs.)
                        tracing::error!(error = %e, "Store flush failed; will retry.");
                    }
                    self.keep_limits();
                    deadline = Instant::now() + self.interval;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let r = self.flush(true);
                    if let Err(e) = &r {
                        tracing::error!(error = %e, "Final store flush failed.");
                    }
                    self.release(r.is_ok());
                    return;
                }
            }
        }
    }

    /// Drops the databases so the files can be opened again (by a new `Store`). On a clean
    /// close, partitions with much free space inside (pieces deleted when their chunks
    /// sealed, half-full B-tree pages) are compacted: one rewrite per close, which is rare,
    /// in exchange for giving the space back to the SD card.
    fn release(&self, compact: bool) {
        let (index, parts) = {
            let mut dbs = self.shared.dbs_mut();
            dbs.tiers = Default::default();
            (dbs.index.take(), std::mem::take(&mut dbs.partitions))
        };
        drop(index);
        if !compact {
            return;
        }
        for (pidx, db) in parts {
            // A reader still holding the file: skip, the next close will do it.
            let Ok(mut db) = Arc::try_unwrap(db) else {
                continue;
            };
            let path = partition::partition_path(&self.shared.dir, pidx);
            if let Err(e) = compact_if_fragmented(&mut db) {
                tracing::warn!(path = %path.display(), error = %e, "Compacting a partition failed; it stays as it is.");
            }
        }
    }

    fn flush(&mut self, seal_all: bool) -> Result<(), StoreError> {
        let started = Instant::now();
        // After failed writes: files redb refuses are reopened, and nothing is written
        // while space is short (full.rs); the head keeps it all.
        super::full::reopen_poisoned(&self.shared);
        let mut flushed = 0u64;
        let result = super::full::check_space(&self.shared).and_then(|()| {
            let plan = {
                let mut head = self.shared.head_mut();
                take_plan(&mut head, seal_all, self.interval, super::status::now_ms())
            };
            self.write_plan(plan, &mut flushed)
        });
        super::full::record_flush(&self.shared, &result);
        let mut c = self
            .shared
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        c.samples_flushed += flushed;
        c.flushes += 1;
        c.last_flush_duration = started.elapsed();
        result
    }

    fn write_plan(&mut self, plan: Plan, flushed: &mut u64) -> Result<(), StoreError> {
        // 1. Index first: a crash after this commit leaves series without chunks, which is
        //    harmless; chunks without series could not happen.
        if !plan.series.is_empty() || !plan.metadata.is_empty() {
            let path = self.shared.index_path();
            let db = self.shared.dbs().index.clone().ok_or(StoreError::Closed)?;
            let mut txn = db.begin_write().map_err(|e| StoreError::db(&path, e))?;
            durable(&mut txn, &path)?;
            index::write(&txn, &path, &plan.series, &plan.metadata)?;
            txn.commit().map_err(|e| StoreError::db(&path, e))?;
            let mut head = self.shared.head_mut();
            // The plan took a prefix of each pending list; later appends may have added more.
            let n = plan.series.len().min(head.pending_series.len());
            head.pending_series.drain(..n);
            let n = plan.metadata.len().min(head.pending_metadata.len());
            head.pending_metadata.drain(..n);
        }
        // 2. Per partition touched: a redb commit if chunks sealed, then the block appended
        //    to the partition's log (see wal.rs).
        for (pidx, mut part) in plan.parts {
            let path = partition::partition_path(&self.shared.dir, pidx);
            let db = self.partition_db(pidx, &path)?;
            // In key order, so that each commit of a large seal (commit_groups) adds one
            // run of keys instead of touching pages all over the tree.
            part.seals
                .sort_unstable_by_key(|s| (partition::hour_of(s.max_t), s.series, s.max_t));
            // Sealed chunks first, then the block: a series' pieces that outlive its sealed
            // chunk (they belong to its next chunk) are in blocks with a larger seq, which
            // is how the open tells them apart (see mod.rs).
            let mut seq = self.next_seq;
            let mut seal_seqs = Vec::with_capacity(part.seals.len());
            for _ in &part.seals {
                seal_seqs.push(seq);
                seq += 1;
            }
            let block_seq = seq;
            seq += 1;
            // Sequence numbers only need to grow: ones a failed flush took stay unused.
            self.next_seq = seq;
            let mut refs = self.refs.get(&pidx).cloned().unwrap_or_default();
            for s in &part.seals {
                if let Some(n) = s.first_piece.and_then(|f| refs.get_mut(&f)) {
                    *n = n.saturating_sub(1);
                }
            }
            let live_from = wal::first_live(&refs);
            let dead: Vec<u64> = refs
                .keys()
                .copied()
                .take_while(|s| live_from.is_none_or(|l| *s < l))
                .collect();
            for s in &dead {
                refs.remove(s);
            }
            if !part.seals.is_empty() {
                let mut stats = self
                    .shared
                    .dbs()
                    .stats
                    .get(&pidx)
                    .copied()
                    .unwrap_or_default();
                let groups = commit_groups(&part.seals);
                let last_group = groups.len() - 1;
                for (g, range) in groups.into_iter().enumerate() {
                    let seals = &part.seals[range.clone()];
                    for s in seals {
                        stats.add(u64::from(s.count), s.min_t, s.max_t);
                    }
                    let mut txn = db.begin_write().map_err(|e| StoreError::db(&path, e))?;
                    durable(&mut txn, &path)?;
                    {
                        let e = |x: redb::Error| StoreError::db(&path, x);
                        let mut chunks =
                            txn.open_table(partition::CHUNKS).map_err(|x| e(x.into()))?;
                        let mut times =
                            txn.open_table(partition::TIMES).map_err(|x| e(x.into()))?;
                        let mut known = std::collections::HashMap::new();
                        let mut samples = Vec::new();
                        let mut sealed = Vec::with_capacity(seals.len());
                        for (s, seq) in seals.iter().zip(&seal_seqs[range]) {
                            samples.clear();
                            codec::decode_stream(&s.stream, s.count, &mut samples).map_err(
                                |x| {
                                    StoreError::Other(format!(
                                        "BUG: head chunk does not decode: {x}"
                                    ))
                                },
                            )?;
                            let mut value = Vec::new();
                            partition::encode_sealed(&samples, &mut times, &mut known, &mut value)
                                .map_err(|x| e(x.into()))?;
                            let key = (partition::hour_of(s.max_t), s.series, s.max_t, *seq);
                            sealed.push((key, value));
                        }
                        partition::insert_packed(&mut chunks, &mut sealed)
                            .map_err(|x| e(x.into()))?;
                        if g == last_group {
                            // Blocks of files written before the log, dead once every seal
                            // is durable; log records die with their segment
                            // (`PartLog::collect`).
                            let mut blocks =
                                txn.open_table(partition::BLOCKS).map_err(|x| e(x.into()))?;
                            for s in &dead {
                                blocks.remove(*s).map_err(|x| e(x.into()))?;
                            }
                        }
                        let mut meta = txn.open_table(partition::META).map_err(|x| e(x.into()))?;
                        let old = meta
                            .get("next_seq")
                            .map_err(|x| e(x.into()))?
                            .map_or(0, |g| g.value());
                        meta.insert("next_seq", block_seq.max(old))
                            .map_err(|x| e(x.into()))?;
                        stats.write(&mut meta).map_err(|x| e(x.into()))?;
                    }
                    txn.commit().map_err(|e| StoreError::db(&path, e))?;
                    self.shared.dbs_mut().stats.insert(pidx, stats);
                    let mut head = self.shared.head_mut();
                    for s in seals {
                        if let Some(series) = head.series.get_mut(&s.series) {
                            series.chunks.retain(|c| c.id != s.chunk);
                        }
                        *flushed += u64::from(s.unflushed);
                    }
                }
            }
            self.refs.insert(pidx, refs.clone());
            // Before appending: a segment whose records all died with these seals goes now,
            // instead of living on for the sake of the record about to be appended.
            if let Some(log) = self.logs.get_mut(&pidx) {
                log.collect(&refs);
            }
            if !part.pieces.is_empty() {
                let cols: Vec<Option<(Vec<u8>, Vec<u8>)>> =
                    part.pieces.iter().map(piece_columns).collect();
                let pieces: Vec<codec::Piece<'_>> = part
                    .pieces
                    .iter()
                    .zip(&cols)
                    .map(|(p, c)| codec::Piece {
                        series: p.series,
                        count: p.count - p.flushed,
                        data: match c {
                            Some((times, values)) => codec::PieceData::Columns { times, values },
                            None => codec::PieceData::Stream(&p.bytes[p.skip..]),
                        },
                    })
                    .collect();
                let mut value = Vec::new();
                codec::encode_block(&pieces, &mut value);
                self.logs.entry(pidx).or_default().append(
                    &self.shared.dir,
                    partition::partition_start(pidx),
                    block_seq,
                    &value,
                )?;
                let mut head = self.shared.head_mut();
                let mut first_pieces = 0;
                for p in &part.pieces {
                    if let Some(c) = head.find_chunk(p.series, p.chunk) {
                        c.flushed = p.count;
                        c.flushed_bytes = p.body_len;
                        if c.first_piece.is_none() {
                            c.first_piece = Some(block_seq);
                            first_pieces += 1;
                        }
                    }
                    *flushed += u64::from(p.count - p.flushed);
                }
                drop(head);
                if first_pieces > 0 {
                    refs.insert(block_seq, first_pieces);
                }
                self.refs.insert(pidx, refs);
            }
            if let (Some(log), Some(refs)) = (self.logs.get_mut(&pidx), self.refs.get(&pidx)) {
                log.collect(refs);
            }
            // A backfill can fill several days in one flush: keep the budget per day
            // written, not per flush, so the data dir never holds more than one day over.
            self.keep_raw_limits();
        }
        Ok(())
    }

    /// The budget keeper: deletes the oldest partition files while the partitions together
    /// are larger than the budget, or the oldest one holds only samples older than
    /// `max_age`. The newest partition is never deleted (it is the one being written), so
    /// the files never exceed the budget by more than that one partition.
    ///
    /// Runs on the writer thread between flushes, so no transaction of ours is open on the
    /// file. Readers may still hold an `Arc` of its `Database` and a read transaction: the
    /// file leaves the set first (new readers do not see it) and is unlinked after; Linux
    /// keeps an unlinked file readable until its last descriptor closes.
    fn keep_limits(&mut self) {
        // Complete raw days go into the rollup tiers first (tier.rs), so that the raw
        // keeper below deletes only days already rolled up; not while writes fail.
        if !self
            .shared
            .write_failing
            .load(std::sync::atomic::Ordering::SeqCst)
        {
            tier::roll_up_complete(&self.shared);
        }
        self.keep_raw_limits();
        tier::compact_finished(&self.shared);
        tier::keep_limits(&self.shared);
    }

    fn keep_raw_limits(&mut self) {
        let shared = self.shared.clone();
        let limits = &shared.limits;
        let raw_budget = limits.tier_budget(0);
        if raw_budget.is_none() && limits.max_age.is_none() {
            return;
        }
        loop {
            let (oldest, bytes) = {
                let dbs = self.shared.dbs();
                if dbs.partitions.len() < 2 {
                    return;
                }
                let Some(&oldest) = dbs.partitions.keys().next() else {
                    return;
                };
                let sizes = partition::all_bytes(&self.shared.dir);
                let bytes: u64 = dbs
                    .partitions
                    .keys()
                    .map(|p| sizes.get(p).copied().unwrap_or(0))
                    .sum();
                (oldest, bytes)
            };
            let over = raw_budget.is_some_and(|b| bytes > b);
            let too_old = limits.max_age.is_some_and(|age| {
                let cutoff = super::status::now_ms()
                    .saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX));
                partition::partition_end(oldest) < cutoff
            });
            if !over && !too_old {
                return;
            }
            self.evict(oldest, if over { "budget" } else { "max_age" });
        }
    }

    fn evict(&mut self, pidx: i64, why: &str) {
        if let Err(e) = tier::ensure_rolled(&self.shared, pidx) {
            // Freeing the space matters more (the disk may be full): the day goes without
            // its rollups, which is logged and counted.
            tracing::error!(error = %e, day = partition::partition_start(pidx), "Rolling up a raw day before deleting it failed; its rollups are lost.");
            self.shared
                .counters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .rollup_errors += 1;
        }
        let path = partition::partition_path(&self.shared.dir, pidx);
        self.record_eviction(pidx);
        {
            let mut dbs = self.shared.dbs_mut();
            dbs.partitions.remove(&pidx);
            dbs.stats.remove(&pidx);
        }
        // Head chunks of the partition continue pieces that were in the file: without it
        // they could never be rebuilt after a restart, so they go with it.
        {
            let mut head = self.shared.head_mut();
            for s in head.series.values_mut() {
                s.chunks.retain(|c| c.partition != pidx);
            }
        }
        self.refs.remove(&pidx);
        // Logs first: a crash in between leaves a partition file without its open chunks
        // (being evicted anyway), never a log without its partition.
        if let Some(mut log) = self.logs.remove(&pidx) {
            log.remove_all();
        }
        match std::fs::remove_file(&path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), reason = why, "Deleted the oldest partition to keep the storage limits.");
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "Cannot delete a partition evicted by the storage limits; delete it by hand.");
            }
        }
        self.shared
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .evicted_partitions += 1;
    }

    /// Records what the partition held (outbox.rs) before readers stop seeing it, so a
    /// forwarder whose cursor is in it counts the samples it can no longer send.
    fn record_eviction(&self, pidx: i64) {
        let sealed = self.shared.dbs().stats.get(&pidx).map_or(0, |s| s.samples);
        let in_head: u64 = self
            .shared
            .head()
            .series
            .values()
            .flat_map(|s| s.chunks.iter())
            .filter(|c| c.partition == pidx)
            .map(|c| u64::from(c.count()))
            .sum();
        let ev = super::outbox::Eviction {
            partition: pidx,
            samples: sealed + in_head,
        };
        let key = super::outbox::eviction_key(pidx);
        if let Err(e) =
            super::state::put_states_in(&self.shared, [(key, Some(ev.samples.to_le_bytes()))])
        {
            tracing::error!(error = %e, "Cannot record an evicted partition; forwarders will not count its samples after a restart.");
        }
        let mut list = self
            .shared
            .evictions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        list.retain(|e| e.partition != pidx);
        list.push(ev);
        list.sort_by_key(|e| e.partition);
    }

    fn partition_db(&self, pidx: i64, path: &std::path::Path) -> Result<Arc<Database>, StoreError> {
        if let Some(db) = self.shared.dbs().partitions.get(&pidx) {
            return Ok(db.clone());
        }
        // A file left out of the set by a failed reopen (full.rs) is opened, never
        // created over.
        let db = Arc::new(if path.exists() {
            partition::open(path)?
        } else {
            partition::create(path)?
        });
        let mut dbs = self.shared.dbs_mut();
        if dbs.index.is_none() {
            return Err(StoreError::Closed);
        }
        dbs.partitions.insert(pidx, db.clone());
        Ok(db)
    }
}

/// Compacts `db` when more than a quarter of its file is free space.
fn compact_if_fragmented(db: &mut Database) -> Result<(), redb::Error> {
    let stats = {
        let txn = db.begin_write()?;
        let st = txn.stats()?;
        txn.abort()?;
        st
    };
    let used = stats.stored_bytes() + stats.metadata_bytes();
    if stats.fragmented_bytes() > used / 3 {
        while db.compact()? {}
    }
    Ok(())
}

pub(super) fn durable(
    txn: &mut redb::WriteTransaction,
    path: &std::path::Path,
) -> Result<(), StoreError> {
    txn.set_durability(Durability::Immediate)
        .map_err(|e| StoreError::Database {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    // Quick-repair makes reopening after a power cut about as fast as a clean open.
    txn.set_quick_repair(true);
    Ok(())
}

/// Stream bytes of sealed chunks one commit carries at most. redb keeps a transaction's
/// dirty pages in its write buffer (half of `DB_CACHE_BYTES`) and writes the excess out
/// early, to write it again when the B-tree touches it once more: a backfill sealing 15 MB
/// of chunks in one commit wrote 2.6 bytes a sample where commits of this size write 1.2.
const SEAL_COMMIT_BYTES: usize = 1 << 20;

/// Consecutive ranges of `seals` (which are in key order) of at most [`SEAL_COMMIT_BYTES`]
/// of stream each (at least one seal each), one commit per range.
fn commit_groups(seals: &[SealSrc]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, s) in seals.iter().enumerate() {
        if i > start && bytes + s.stream.len() > SEAL_COMMIT_BYTES {
            out.push(start..i);
            (start, bytes) = (i, 0);
        }
        bytes += s.stream.len();
    }
    out.push(start..seals.len());
    out
}

/// Decides what this flush writes and copies it out of the head (cheap: compressed bytes).
fn take_plan(head: &mut Head, seal_all: bool, interval: Duration, now_ms: i64) -> Plan {
    let gen_ = head.flush_gen;
    head.flush_gen += 1;
    let series = head
        .pending_series
        .iter()
        .filter_map(|id| head.series.get(id).map(|s| (*id, s.labels.clone())))
        .collect();
    let metadata = head
        .pending_metadata
        .iter()
        .filter_map(|n| head.metadata.get(n).map(|m| (n.clone(), m.clone())))
        .collect();
    let mut parts: BTreeMap<i64, PartPlan> = BTreeMap::new();
    for (id, s) in head.series.iter_mut() {
        if s.chunks.is_empty() {
            continue;
        }
        let newest = s
            .chunks
            .iter()
            .filter(|c| !c.sealed)
            .map(|c| c.partition)
            .max();
        for c in s.chunks.iter_mut() {
            if c.count() == 0 {
                continue;
            }
            if !c.sealed {
                let idle = gen_.saturating_sub(c.last_append_gen);
                let moved_on = newest.is_some_and(|n| c.partition < n) && idle >= 1;
                let step = Duration::from_millis(c.enc.last_step().clamp(0, 3_600_000) as u64);
                let wait = (step * IDLE_STEPS).clamp(IDLE_SEAL_MIN, IDLE_SEAL_MAX);
                let idle_gens = (wait.as_millis() / interval.as_millis().max(1)).max(2) as u64;
                // A window that ended longer ago than the wait is done: its samples came
                // from a backfill or a sender catching up, and writing them as pieces
                // first would write them twice.
                let window_done =
                    window_end(c.enc.min_t()).saturating_add(wait.as_millis() as i64) <= now_ms;
                if seal_all
                    || idle >= idle_gens
                    || moved_on
                    || window_done
                    || c.count() >= CHUNK_SAMPLES
                {
                    c.sealed = true;
                }
            }
            let part = parts.entry(c.partition).or_default();
            if c.sealed {
                part.seals.push(SealSrc {
                    series: id,
                    chunk: c.id,
                    stream: c.body.clone(),
                    max_t: c.enc.max_t(),
                    min_t: c.enc.min_t(),
                    count: c.count(),
                    first_piece: c.first_piece,
                    unflushed: c.count() - c.flushed,
                });
            } else if c.count() > c.flushed {
                part.pieces.push(PieceSrc {
                    series: id,
                    chunk: c.id,
                    // A body only grows, so `flushed_bytes <= body.len()`; slicing cannot
                    // fail unless that invariant (a BUG) is broken.
                    bytes: if c.count() - c.flushed >= COLUMN_PIECE_SAMPLES {
                        c.body.clone()
                    } else {
                        c.body[c.flushed_bytes as usize..].to_vec()
                    },
                    skip: if c.count() - c.flushed >= COLUMN_PIECE_SAMPLES {
                        c.flushed_bytes as usize
                    } else {
                        0
                    },
                    count: c.count(),
                    flushed: c.flushed,
                    body_len: c.body.len() as u32,
                });
            }
        }
    }
    parts.retain(|_, p| !p.pieces.is_empty() || !p.seals.is_empty());
    Plan {
        series,
        metadata,
        parts,
    }
}

/// A piece's samples as columns (timestamps, values), when it is big enough to be worth it
/// and they are smaller than its stream bytes.
fn piece_columns(p: &PieceSrc) -> Option<(Vec<u8>, Vec<u8>)> {
    if p.count - p.flushed < COLUMN_PIECE_SAMPLES {
        return None;
    }
    let mut samples = Vec::with_capacity(p.count as usize);
    // The head's own stream; a failure would be a BUG, and the stream form still works.
    codec::decode_stream(&p.bytes, p.count, &mut samples).ok()?;
    let (times, values) = codec::piece_columns(samples.get(p.flushed as usize..)?);
    // Timestamp columns are mostly shared within the block: count them at a quarter.
    (times.len() / 4 + values.len() + 2 < p.bytes.len() - p.skip).then_some((times, values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(stream_bytes: usize) -> SealSrc {
        SealSrc {
            series: 1,
            chunk: 1,
            stream: vec![0; stream_bytes],
            max_t: 0,
            min_t: 0,
            count: 1,
            first_piece: None,
            unflushed: 1,
        }
    }

    #[test]
    fn large_seals_are_split_into_commits_of_bounded_size() {
        let half = SEAL_COMMIT_BYTES / 2;
        let seals: Vec<SealSrc> = [half, half, 1, SEAL_COMMIT_BYTES * 3, 10]
            .into_iter()
            .map(seal)
            .collect();
        // Two halves fill a commit; an oversized chunk gets one of its own.
        assert_eq!(commit_groups(&seals), vec![0..2, 2..3, 3..4, 4..5]);
        assert_eq!(commit_groups(&seals[..1]), vec![0..1]);
    }
}
