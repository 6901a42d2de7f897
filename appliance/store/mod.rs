//! The metric store: a series index and time-partitioned chunk files in redb, fed by an
//! in-memory head and written by a single writer thread (see DESIGN.md "Storage").
//!
//! # On-disk layout
//!
//! ```text
//! <path>/
//!   index.redb                       series index, committed before any chunk referring to it
//!     meta             &str -> u64            "schema_version", "auto_budget_bytes" (the
//!                                             budget `storage.budget = "auto"` chose at the
//!                                             first start)
//!     series           u64 -> postcard [(name, value)]     id -> label set
//!     postings         (name, value) =>> u64  (multimap)   label pair -> series ids
//!     metadata         &str -> postcard Metadata           metric name -> type/help/unit
//!     state            &str -> bytes       named state of other stages (alerts), state.rs
//!   raw/<partition-start-ms>.redb    one file per day of sample time (86_400_000 ms spans,
//!     meta   &str -> u64             start = floor(t / span) * span, may be negative)
//!              "schema_version", "next_seq",
//!              "samples", "min_t", "max_t"   samples in sealed chunks here and their time
//!                                            span (times as the u64 bits of an i64);
//!                                            rewritten with "next_seq" by every seal
//!                                            commit. A file without them is counted at open.
//!     chunks (max_t/1h, series_id, max_t, seq) -> chunk value   sealed chunks (one series,
//!                                    one aligned 2 h window of sample time, head.rs)
//!     times  xxhash64 -> timestamp column   shared by the chunks of series scraped together
//!                                    (codec.rs); never deleted apart from its file
//!     blocks seq -> block            schema 1 only: blocks as table values; read at open,
//!                                    deleted as their chunks seal, never written now
//!   raw/<partition-start-ms>.<first-seq>.log   the partition's block log (wal.rs), one
//!                                    record per flush: seq + block (the stream bytes each
//!                                    open chunk gained, a piece per series), CRC-32C; a
//!                                    segment is deleted once every chunk with a piece in
//!                                    it sealed; new segment past 1 MiB
//!   5m/<start-ms>.redb, 1h/<start-ms>.redb   rollup tiers (tier.rs, rollup.rs): a week /
//!                                    30 days per file; per (day or week, series) the
//!                                    buckets' min, max, sum, count, first, last and counter
//!                                    resets, plus which raw days are rolled up
//!   snapshots/<ms>/                  copies taken by POST /api/v1/admin/snapshot (same
//!                                    layout; never read by the store)
//!
//! chunk value = tag:u8 | count:varint | min_t | max_t | body      (see codec.rs; tag 4
//!               columns since 2026-11, tags 1-2 before, all readable)
//! block       = 3:u8 | n:varint | n × (series_id | count | len | stream bytes)
//!             | 5:u8 | timestamp columns | pieces as stream bytes or as columns
//! ```
//!
//! All integers in keys are redb's fixed little-endian encodings; chunk bytes are varints
//! and little-endian f64 bits. Every redb file carries `schema_version` (2 since the block
//! log; version 1 files are read and upgraded at open); a file with a newer version, or one
//! redb reports damaged, fails `Store::open` with an error naming the file, and nothing is
//! written to it. A log record failing its checksum fails the open too, unless it is the
//! last of its segment (an append cut by a crash, never acknowledged: skipped, not cut).
//!
//! # Write path and flush
//!
//! `Store::append` encodes samples straight into the head (one open chunk per series and
//! partition, compressed as samples arrive) under a write lock; it does no I/O, so after it
//! returns every reader sees the samples. The writer thread flushes every `flush_interval`
//! (and on `Store::flush`/`Store::close`):
//!
//! 1. Under the head lock it takes a plan: series and metadata not yet in the index, the
//!    stream bytes each open chunk gained since the last flush (its *piece*), and every
//!    chunk that sealed (a sample of a later 2 h window arrived, or 1024 samples; or its
//!    series moved to a newer partition and it got nothing since the last flush; or it
//!    got nothing for 8 of its sample steps, 2 to 15 minutes; or the store is closing).
//! 2. One durable (`Durability::Immediate`, quick-repair) transaction on the index, if the
//!    plan has new series or metadata.
//! 3. Per partition touched: sealed chunks get sequence numbers first, then the flush's
//!    block. If chunks sealed, one durable transaction writes each of them once into
//!    `chunks`, encoded as columns (their timestamp columns into `times`, once per
//!    distinct column), and deletes schema-1 table blocks whose pieces all sealed. Then
//!    every piece goes, as the raw stream bytes the head already holds (2-5 bytes per
//!    sample) or, for pieces of 8 samples or more, as columns when smaller, into ONE
//!    block appended to the partition's log and `fdatasync`ed: a flush without
//!    seals writes no redb page at all. Log segments whose every block's pieces belong to
//!    sealed chunks are deleted (the writer counts, per block, the head chunks with a
//!    piece in it).
//! 4. After each commit or append, the head forgets what it made durable.
//!
//! A power cut loses at most the samples since the last flush. Reopening rebuilds the open
//! head chunks from the blocks (table and log, in sequence order), skipping the pieces of a series older
//! than its newest sealed chunk in that partition (they are in that chunk), so everything
//! flushed is there again, exactly once.
//!
//! # Budget keeper
//!
//! The byte budget is split by `Limits::shares` between raw, the 5m and 1h tiers and the
//! (future) log store. After every day a flush writes, the writer deletes the oldest raw
//! partition file while the partition files together are larger than the raw share, or
//! the oldest holds only samples older than `max_age`; never the newest file, so raw stays
//! within its share plus one partition. A raw day is rolled up into the tiers before it
//! goes (tier.rs); each tier's keeper then does the same with its own share and
//! `tier_max_age`, so the data dir stays within the budget plus one file per tier (plus
//! the index). When writes fail (a full disk), full.rs takes over: see there. An evicted partition leaves the reader's set first and is
//! unlinked after: a reader holding its `Arc<Database>` keeps reading the unlinked file.
//! Head chunks of that partition go with it (they continue pieces that were in the file).
//! Samples later written into an evicted day make a new file, which the keeper evicts
//! again if it is still the oldest and the budget is exceeded.
//!
//! # Invariants
//!
//! - Within one partition, the live pieces of a series (newer than its newest sealed chunk)
//!   all belong to its single open chunk; a sealed chunk's `seq` is larger than the blocks
//!   holding its pieces and smaller than the blocks holding its successor's; sealed chunks
//!   of a series are older the smaller their `seq`; the head's chunk is newer than anything
//!   on disk for that series and partition. Reads merge disk chunks by `seq`, then the head,
//!   and keep the *last* value of each timestamp: a repeated (series, timestamp) keeps the
//!   last value written, across head, flushed chunks and restarts.
//! - A sample's partition is a pure function of its timestamp; files are created only when
//!   a sample lands in them (a Pi's pre-clock-sync 1970 samples make one file).
//! - Series ids that reached the index are never reused; `next_seq` only grows (kept in
//!   each partition's meta and log records; the largest wins at open).
//! - A partition's redb commit precedes its log append in every flush, so the log is
//!   never ahead of the chunks it continues (a snapshot copies logs before redb for the
//!   same reason).
//! - Readers never take the writer's transactions: they snapshot the head under a read lock
//!   and then begin redb read transactions (in that order, so a concurrent flush is seen
//!   either in the head or on disk, never in neither). Blocks are never read after open.
//!
//! # Sizes and costs
//!
//! - A chunk covers at most one aligned 2 h window (480 samples at 15 s); a head chunk
//!   costs its stream bytes (~2-5 per sample) plus ~150 bytes of state; every series keeps
//!   its labels in memory. Sealed, node-exporter-like data takes ~0.5-0.8 bytes a sample
//!   (columns.rs; `benches/store.rs`).
//! - redb page cache: 4 MiB per file. The decoder refuses chunk values claiming more than
//!   2^20 samples.
//! - New files are created as `<name>.redb.new` and renamed once their schema version is
//!   committed; a leftover `.new` file is removed at open.
//! - Introspection (`/api/v1/status/tsdb`, `StoreStats`) reads the head and the
//!   partitions' meta counters, never chunk data; `picket store check|stats` (check.rs)
//!   decode everything, offline. Snapshots (snapshot.rs) copy every table inside one read
//!   transaction per file, partitions first and the index last.
//! - A durable redb commit costs ~33-53 KB of writes whatever it carries (8-13 dirty 4 KiB
//!   pages: the copied B-tree path, table and freed trees, quick-repair allocator state,
//!   header; `benches/redb_commit_cost.rs`). That is why flushes append to the block log (one
//!   record: the new bytes plus the re-written tail page) and redb is committed only when
//!   chunks seal. Bench (benches/store.rs), 300 series flushed every scrape: 172 -> 31
//!   bytes written per sample while ingesting (~52 -> ~9 KB per flush). A clean close
//!   compacts partitions that are more than a quarter free space (one rewrite).
//!
//! # Lifecycle
//!
//! `Store` is a cheap `Clone` handle. `Store::close` flushes and seals everything, stops the
//! writer and releases the files; dropping the last handle does the same (errors are
//! logged), but the app should call `close` to see them.

pub mod check;
mod codec;
mod columns;
mod full;
mod head;
mod index;
pub mod outbox;
mod partition;
mod read;
mod rollup;
pub mod snapshot;
mod state;
pub mod status;
mod tier;
pub mod wal;
mod writer;

use crate::model::{Labels, Metadata, Sample, WireBatch};
use head::Head;
use redb::Database;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, sync_channel};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// Version of the on-disk format this build writes and the newest it reads.
/// 2: blocks of open chunks are appended to the block log (wal.rs) instead of the
/// `blocks` table; version 1 files are read (their table blocks too) and upgraded in place
/// at open, so a Picket that knows only version 1 refuses them instead of missing the log.
pub const SCHEMA_VERSION: u64 = 2;
/// redb page cache per file: small, the Pi shares its RAM with k3s.
const DB_CACHE_BYTES: usize = 4 << 20;
const INDEX_FILE: &str = "index.redb";
/// Every file's `meta` table: `"schema_version"`, and in partitions `"next_seq"`.
const META: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("meta");

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub path: PathBuf,
    /// How often the writer commits the head (the data a power cut may cost).
    pub flush_interval: Duration,
}

/// How many bytes the partition files may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Budget {
    /// No byte budget (only `max_age`, if set, removes data).
    #[default]
    Unlimited,
    /// A share of the filesystem's free space at the first start ([`AUTO_BUDGET_PERCENT`]
    /// %, at most [`AUTO_BUDGET_MAX`]), remembered in the index so it does not drift as
    /// the disk fills.
    Auto,
    Bytes(u64),
}

/// Share of the free space the automatic budget takes, and its ceiling and floor.
pub const AUTO_BUDGET_PERCENT: u64 = 10;
pub const AUTO_BUDGET_MAX: u64 = 4 << 30;
pub const AUTO_BUDGET_MIN: u64 = 64 << 20;

/// What the budget keeper enforces after each flush (see DESIGN.md "Budgets").
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub budget: Budget,
    /// Partitions whose every sample is older than this are deleted.
    pub max_age: Option<Duration>,
    /// The retention the user wants; `StoreStats::retention_below_horizon` says when the
    /// budget has started deleting data younger than this.
    pub retention_horizon: Option<Duration>,
    /// How the budget is split between the tiers and the log store.
    pub shares: Shares,
    /// Rollup files (5m, 1h) whose span ended longer ago than this are deleted.
    pub tier_max_age: [Option<Duration>; 2],
}

/// Shares of the byte budget: raw partitions, the 5 m and 1 h rollup tiers, and the log
/// store (reserved: Picket stores no logs yet). Each in [0, 1], together at most 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shares {
    pub raw: f64,
    pub m5: f64,
    pub h1: f64,
    pub logs: f64,
}

impl Default for Shares {
    fn default() -> Self {
        Shares {
            raw: 0.6,
            m5: 0.2,
            h1: 0.1,
            logs: 0.1,
        }
    }
}

/// [`Limits`] with the automatic budget resolved.
#[derive(Debug, Clone, Default)]
struct Resolved {
    budget_bytes: Option<u64>,
    max_age: Option<Duration>,
    retention_horizon: Option<Duration>,
    shares: Shares,
    tier_max_age: [Option<Duration>; 2],
}

impl Resolved {
    /// The byte budget of tier `i` (0 raw, 1 the 5 m rollups, 2 the 1 h rollups).
    fn tier_budget(&self, i: usize) -> Option<u64> {
        let share = match i {
            0 => self.shares.raw,
            1 => self.shares.m5,
            _ => self.shares.h1,
        };
        self.budget_bytes.map(|b| (b as f64 * share) as u64)
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("{0}")]
    Other(String),
    #[error("{path}: {source}; check that the data directory exists and is writable")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Database { path: PathBuf, message: String },
    #[error(
        "{path} has schema version {found}, newer than this Picket supports ({supported}); \
         upgrade Picket, or point it at another data directory"
    )]
    SchemaTooNew {
        path: PathBuf,
        found: u64,
        supported: u64,
    },
    #[error(
        "{path} is damaged ({detail}); nothing was changed. Restore it from a backup, or move \
         it out of the data directory to start without it"
    )]
    Damaged { path: PathBuf, detail: String },
    #[error("{path} is already open (another Picket process or store handle uses it)")]
    AlreadyOpen { path: PathBuf },
    #[error("the store is closed")]
    Closed,
    /// Writes to disk fail and the head holds all it may (store/full.rs).
    #[error(
        "the store cannot write to disk (is it full?) and already holds {0} samples in memory; \
         samples are refused until writing works again"
    )]
    Full(u64),
}

impl StoreError {
    fn io(path: &Path, source: std::io::Error) -> StoreError {
        StoreError::Io {
            path: path.to_owned(),
            source,
        }
    }

    fn db(path: &Path, e: impl Into<redb::Error>) -> StoreError {
        match e.into() {
            redb::Error::Corrupted(detail) => StoreError::Damaged {
                path: path.to_owned(),
                detail,
            },
            e => StoreError::Database {
                path: path.to_owned(),
                message: e.to_string(),
            },
        }
    }
}

fn open_error(path: &Path, e: redb::DatabaseError) -> StoreError {
    match e {
        redb::DatabaseError::DatabaseAlreadyOpen => StoreError::AlreadyOpen {
            path: path.to_owned(),
        },
        // redb reports a wrong magic number as InvalidData, a file shorter than its header
        // as UnexpectedEof.
        redb::DatabaseError::Storage(redb::StorageError::Io(source))
            if matches!(
                source.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            StoreError::Damaged {
                path: path.to_owned(),
                detail: source.to_string(),
            }
        }
        redb::DatabaseError::Storage(redb::StorageError::Io(source)) => {
            StoreError::io(path, source)
        }
        redb::DatabaseError::Storage(redb::StorageError::Corrupted(detail)) => {
            StoreError::Damaged {
                path: path.to_owned(),
                detail,
            }
        }
        redb::DatabaseError::UpgradeRequired(v) => StoreError::Damaged {
            path: path.to_owned(),
            detail: format!("redb file format {v} needs an upgrade this build cannot do"),
        },
        e => StoreError::db(path, e),
    }
}

/// Reads `schema_version` from a file's `meta` table (None when it has none).
fn schema_version(
    db: &impl redb::ReadableDatabase,
    path: &Path,
) -> Result<Option<u64>, StoreError> {
    let txn = db.begin_read().map_err(|e| StoreError::db(path, e))?;
    match txn.open_table(META) {
        Ok(t) => Ok(t
            .get("schema_version")
            .map_err(|e| StoreError::db(path, e))?
            .map(|g| g.value())),
        Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(StoreError::db(path, e)),
    }
}

/// Opens an existing store file for writing, after checking it read-only: opening a redb
/// file for writing updates its header, and a file we refuse (damaged, newer schema, not
/// ours) must be left byte-for-byte as it was. A file that needs a repair (power cut) cannot
/// be checked read-only; it is repaired by the normal open and checked right after.
fn open_existing(path: &Path, what: &str) -> Result<Database, StoreError> {
    let check = |v: Option<u64>| match v {
        Some(v) if v > SCHEMA_VERSION => Err(StoreError::SchemaTooNew {
            path: path.to_owned(),
            found: v,
            supported: SCHEMA_VERSION,
        }),
        Some(_) => Ok(()),
        None => Err(StoreError::Damaged {
            path: path.to_owned(),
            detail: format!("it has no schema version (not a Picket {what})"),
        }),
    };
    let mut b = Database::builder();
    b.set_cache_size(DB_CACHE_BYTES);
    let db = match b.open_read_only(path) {
        Ok(ro) => {
            check(schema_version(&ro, path)?)?;
            drop(ro);
            b.open(path).map_err(|e| open_error(path, e))?
        }
        Err(redb::DatabaseError::RepairAborted) => {
            let db = b.open(path).map_err(|e| open_error(path, e))?;
            check(schema_version(&db, path)?)?;
            db
        }
        Err(e) => return Err(open_error(path, e)),
    };
    if schema_version(&db, path)?.is_some_and(|v| v < SCHEMA_VERSION) {
        let mut txn = db.begin_write().map_err(|e| StoreError::db(path, e))?;
        txn.set_quick_repair(true);
        {
            let mut meta = txn.open_table(META).map_err(|e| StoreError::db(path, e))?;
            meta.insert("schema_version", SCHEMA_VERSION)
                .map_err(|e| StoreError::db(path, e))?;
        }
        txn.commit().map_err(|e| StoreError::db(path, e))?;
        tracing::info!(path = %path.display(), to = SCHEMA_VERSION, "Store file upgraded to the current schema version.");
    }
    Ok(db)
}

/// Creates a new store file with its tables and schema version under a temporary name and
/// renames it into place once committed, so that a crash while creating it never leaves a
/// file without a schema version (which the next open would have to refuse as damaged).
fn create_new(
    path: &Path,
    init: impl FnOnce(&redb::WriteTransaction) -> Result<(), StoreError>,
) -> Result<Database, StoreError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| StoreError::io(dir, e))?;
    let tmp = path.with_extension("redb.new");
    if tmp.exists() {
        // Left by a crash during an earlier creation; it never held data.
        std::fs::remove_file(&tmp).map_err(|e| StoreError::io(&tmp, e))?;
    }
    let db = Database::builder()
        .set_cache_size(DB_CACHE_BYTES)
        .create(&tmp)
        .map_err(|e| open_error(&tmp, e))?;
    let mut txn = db.begin_write().map_err(|e| StoreError::db(&tmp, e))?;
    txn.set_quick_repair(true);
    {
        let mut meta = txn.open_table(META).map_err(|e| StoreError::db(&tmp, e))?;
        meta.insert("schema_version", SCHEMA_VERSION)
            .map_err(|e| StoreError::db(&tmp, e))?;
    }
    init(&txn)?;
    txn.commit().map_err(|e| StoreError::db(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| StoreError::io(path, e))?;
    // Make the rename itself durable.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(dir, e))?;
    Ok(db)
}

/// Samples for many series, handed to the writer in one call.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    pub series: Vec<(Labels, Vec<Sample>)>,
    pub metadata: Vec<(String, Metadata)>,
}

/// Counters the app exposes as `picket_store_*` self-metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreStats {
    pub series: u64,
    pub samples_appended: u64,
    /// Samples made durable (each counted once, when first written).
    pub samples_flushed: u64,
    /// Size of the index and partition files.
    pub bytes_on_disk: u64,
    pub head_chunks: u64,
    pub flushes: u64,
    pub last_flush_duration: Duration,
    /// Partition files the budget keeper deleted since the store opened.
    pub evicted_partitions: u64,
    /// Now minus the oldest time any tier holds data for (None when the store is empty).
    pub retention: Option<Duration>,
    /// A keeper deleted data (raw or rollups) and what is left, rollups included, spans
    /// less than `retention_horizon`; `tier_retention` says which tier is short.
    pub retention_below_horizon: bool,
    pub budget_bytes: Option<u64>,
    /// Flushes that failed (full.rs); whether the last one did, and for lack of space.
    pub write_errors: u64,
    pub write_failing: bool,
    pub disk_full: bool,
    /// Samples refused by `append` while writes failed and the head was full.
    pub samples_refused: u64,
    /// Roll-ups of raw days that failed (tier.rs).
    pub rollup_errors: u64,
    /// Per tier ("raw", "5m", "1h"): now minus the oldest time it holds data for.
    pub tier_retention: Vec<(&'static str, Option<Duration>)>,
}

#[derive(Default)]
struct Dbs {
    index: Option<Arc<Database>>,
    partitions: BTreeMap<i64, Arc<Database>>,
    /// What each partition holds (see [`partition::PartStats`]), updated after each commit.
    stats: BTreeMap<i64, partition::PartStats>,
    /// The rollup tiers' files (5m, 1h; see tier.rs).
    tiers: [tier::TierFiles; 2],
}

#[derive(Default)]
struct Counters {
    samples_flushed: u64,
    flushes: u64,
    last_flush_duration: Duration,
    evicted_partitions: u64,
    /// Rollup files deleted by each tier's keeper (5m, 1h).
    tier_evictions: [u64; 2],
    /// Roll-ups of a raw day that failed (tier.rs).
    rollup_errors: u64,
    /// Failed flushes, and samples refused while writes failed (full.rs).
    write_errors: u64,
    samples_refused: u64,
}

/// State shared by handles, readers and the writer thread.
struct Shared {
    dir: PathBuf,
    head: RwLock<Head>,
    dbs: RwLock<Dbs>,
    closed: AtomicBool,
    /// The last flush failed; `disk_full`: for lack of space (full.rs).
    write_failing: AtomicBool,
    disk_full: AtomicBool,
    counters: Mutex<Counters>,
    limits: Resolved,
    /// Partitions the budget keeper deleted (outbox.rs), oldest first.
    evictions: Mutex<Vec<outbox::Eviction>>,
    /// Forwarding cursors that `append` counts late writes against (outbox.rs).
    late_watches: RwLock<Vec<Arc<outbox::LateWatch>>>,
}

impl Shared {
    // A poisoned lock means a panic elsewhere (a bug); the data behind it is still
    // consistent at the granularity we update it, so keep serving rather than panic again.
    fn head(&self) -> RwLockReadGuard<'_, Head> {
        self.head.read().unwrap_or_else(|e| e.into_inner())
    }
    fn head_mut(&self) -> RwLockWriteGuard<'_, Head> {
        self.head.write().unwrap_or_else(|e| e.into_inner())
    }
    fn dbs(&self) -> RwLockReadGuard<'_, Dbs> {
        self.dbs.read().unwrap_or_else(|e| e.into_inner())
    }
    fn dbs_mut(&self) -> RwLockWriteGuard<'_, Dbs> {
        self.dbs.write().unwrap_or_else(|e| e.into_inner())
    }
    fn index_path(&self) -> PathBuf {
        self.dir.join(INDEX_FILE)
    }
}

/// What the writer thread is asked to do; replies go back on a one-slot channel.
enum Command {
    Flush(SyncSender<Result<(), StoreError>>),
    Close(SyncSender<Result<(), StoreError>>),
    /// Stop without the final flush, as a crash right after the last flush would.
    #[cfg(test)]
    Abandon(SyncSender<Result<(), StoreError>>),
}

struct Handle {
    shared: Arc<Shared>,
    tx: Mutex<Option<SyncSender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Handle {
    fn stop(
        &self,
        make: impl FnOnce(SyncSender<Result<(), StoreError>>) -> Command,
    ) -> Result<(), StoreError> {
        self.shared.closed.store(true, Ordering::SeqCst);
        let tx = self.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(tx) = tx else { return Ok(()) };
        let (rtx, rrx) = sync_channel(1);
        let result = match tx.send(make(rtx)) {
            Ok(()) => rrx
                .recv()
                .unwrap_or_else(|_| Err(StoreError::Other("the store writer thread died".into()))),
            Err(_) => Err(StoreError::Other("the store writer thread died".into())),
        };
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
        result
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let Err(e) = self.stop(Command::Close) {
            tracing::error!(error = %e, "Closing the store on drop failed.");
        }
    }
}

/// Handle to an open store; clone it freely.
#[derive(Clone)]
pub struct Store {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("dir", &self.handle.shared.dir)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
impl Store {
    /// A store in `dir` whose writer flushes only when asked (tests of other stages).
    pub fn open_for_test(dir: &std::path::Path) -> Store {
        Store::open(StoreOptions {
            path: dir.to_path_buf(),
            flush_interval: std::time::Duration::from_secs(60),
        })
        .expect("open a test store")
    }
}

impl Store {
    /// Opens the store at `opts.path` without limits (see [`Store::open_with`]).
    pub fn open(opts: StoreOptions) -> Result<Store, StoreError> {
        Store::open_with(opts, Limits::default())
    }

    /// Opens the store at `opts.path`, creating it if needed, rebuilds the head from the
    /// pieces on disk and starts the writer thread, which keeps the files within `limits`.
    pub fn open_with(opts: StoreOptions, limits: Limits) -> Result<Store, StoreError> {
        let dir = opts.path.clone();
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let index_path = dir.join(INDEX_FILE);
        let index_db = index::open(&index_path)?;
        let budget_bytes = match limits.budget {
            Budget::Unlimited => None,
            Budget::Bytes(b) => Some(b),
            Budget::Auto => Some(index::auto_budget(&index_db, &index_path, &dir)?),
        };
        let limits = Resolved {
            budget_bytes,
            max_age: limits.max_age,
            retention_horizon: limits.retention_horizon,
            shares: limits.shares,
            tier_max_age: limits.tier_max_age,
        };
        let mut head = Head::default();
        head.next_series_id = 1;
        let mut bad_id = None;
        index::load_series(&index_db, &index_path, |id, labels| {
            if head.series.id_in_range(id) {
                head.load_series(id, labels);
            } else {
                bad_id.get_or_insert(id);
            }
        })?;
        if let Some(id) = bad_id {
            return Err(StoreError::Damaged {
                path: index_path,
                detail: format!(
                    "series id {id} is far beyond the ids before it (ids are given out in order)"
                ),
            });
        }
        index::load_metadata(&index_db, &index_path, |name, m| {
            head.metadata.insert(name, m);
        })?;

        let mut dbs = Dbs {
            index: Some(Arc::new(index_db)),
            tiers: tier::open_all(&dir)?,
            ..Dbs::default()
        };
        let mut next_seq = 1u64;
        // Per partition: block seq -> number of head chunks with a piece in it.
        let mut refs: BTreeMap<i64, BTreeMap<u64, u32>> = BTreeMap::new();
        let mut logs = wal::list(&dir)?;
        let mut part_logs: BTreeMap<i64, wal::PartLog> = BTreeMap::new();
        {
            for (index, path) in partition::list(&dir)? {
                let db = partition::open(&path)?;
                next_seq = next_seq.max(partition::next_seq(&db, &path)?);
                // Blocks: those of files written before the log (in the `blocks` table),
                // then the log's records; in sequence order either way.
                let mut blocks = partition::table_blocks(&db, &path)?;
                let mut plog = wal::PartLog::default();
                for (first, seg) in logs.remove(&index).unwrap_or_default() {
                    let r = wal::read_segment(&seg)?;
                    if r.torn > 0 {
                        tracing::warn!(path = %seg.display(), bytes = r.torn, "A block log ends in a torn record (an append cut by a crash, never acknowledged); it is skipped.");
                    }
                    let last = r.records.last().map_or(first, |x| x.0);
                    next_seq = next_seq.max(last + 1);
                    plog.push_existing(first, last, seg, r.torn > 0);
                    blocks.extend(r.records);
                }
                blocks.sort_by_key(|b| b.0);
                part_logs.insert(index, plog);
                // The live pieces of one (series, partition) concatenate, in sequence order,
                // into the stream of its open chunk; pieces older than the series' last
                // sealed chunk are already in that chunk.
                let mut open_chunks: BTreeMap<u64, (codec::PieceJoiner, u64)> = BTreeMap::new();
                let mut block_refs: BTreeMap<u64, u32> = BTreeMap::new();
                let mut sealed: Option<std::collections::HashMap<u64, u64>> = None;
                let mut missing = 0u64;
                let mut scan_err = None;
                let mut visit = |seq: u64, p: Option<codec::Piece<'_>>| {
                    let Some(p) = p else {
                        block_refs.insert(seq, 0);
                        return;
                    };
                    if sealed.is_none() {
                        match partition::sealed_seqs(&db, &path) {
                            Ok(m) => sealed = Some(m),
                            Err(e) => {
                                scan_err.get_or_insert(e);
                                sealed = Some(Default::default());
                            }
                        }
                    }
                    if sealed
                        .as_ref()
                        .and_then(|m| m.get(&p.series))
                        .is_some_and(|&s| s > seq)
                    {
                        return;
                    }
                    if !head.series.contains_key(&p.series) {
                        missing += 1;
                        return;
                    }
                    let e = open_chunks.entry(p.series).or_insert_with(|| {
                        // Blocks come in seq order: this is the chunk's first piece.
                        *block_refs.entry(seq).or_default() += 1;
                        (codec::PieceJoiner::default(), seq)
                    });
                    e.0.add(&p);
                };
                for (seq, value) in &blocks {
                    let mut pieces = Vec::new();
                    codec::decode_block(value, &mut pieces).map_err(|e| StoreError::Damaged {
                        path: path.clone(),
                        detail: format!("block {seq}: {e}"),
                    })?;
                    visit(*seq, None);
                    for p in pieces {
                        visit(*seq, Some(p));
                    }
                }
                if let Some(e) = scan_err {
                    return Err(e);
                }
                for (series, (joiner, first_piece)) in open_chunks {
                    let samples = joiner.finish().map_err(|e| StoreError::Damaged {
                        path: path.clone(),
                        detail: format!("pieces of series {series}: {e}"),
                    })?;
                    head.recover(series, index, first_piece, &samples);
                }
                if missing > 0 {
                    // Cannot happen with index-first commits; report rather than guess.
                    tracing::warn!(path = %path.display(), missing, "Pieces refer to series missing from the index; they are ignored.");
                }
                refs.insert(index, block_refs);
                dbs.stats.insert(index, partition::read_stats(&db, &path)?);
                dbs.partitions.insert(index, Arc::new(db));
            }
        }
        for segs in logs.values() {
            for (_, seg) in segs {
                tracing::warn!(path = %seg.display(), "A block log without its partition file is ignored.");
            }
        }

        let shared = Arc::new(Shared {
            dir,
            head: RwLock::new(head),
            dbs: RwLock::new(dbs),
            closed: AtomicBool::new(false),
            write_failing: AtomicBool::new(false),
            disk_full: AtomicBool::new(false),
            counters: Mutex::new(Counters::default()),
            limits,
            evictions: Mutex::default(),
            late_watches: RwLock::default(),
        });
        // Small bound: callers only ever wait for one reply each.
        let (tx, rx) = sync_channel(4);
        let interval = opts.flush_interval.max(Duration::from_millis(10));
        let w = writer::Writer::new(shared.clone(), next_seq, interval, refs, part_logs);
        let thread = std::thread::Builder::new()
            .name("picket-store-writer".into())
            .spawn(move || w.run(rx))
            .map_err(|e| StoreError::Other(format!("cannot start the store writer thread: {e}")))?;
        let store = Store {
            handle: Arc::new(Handle {
                shared,
                tx: Mutex::new(Some(tx)),
                thread: Mutex::new(Some(thread)),
            }),
        };
        store.load_eviction_records()?;
        Ok(store)
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// Adds samples (any timestamps, any order) and metadata to the head. When this returns,
    /// readers see them; they become durable at the next flush.
    pub fn append(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let series = batch.series.iter().map(|(l, s)| (l, s.as_slice()));
        self.append_each(series, batch.metadata)
    }

    /// Appends one sample per label set (what a scrape or a probe produced), without a
    /// `Vec` per sample.
    pub fn append_samples(
        &self,
        samples: &[(Labels, Sample)],
        metadata: Vec<(String, Metadata)>,
    ) -> Result<(), StoreError> {
        let series = samples.iter().map(|(l, s)| (l, std::slice::from_ref(s)));
        self.append_each(series, metadata)
    }

    fn append_each<'a>(
        &self,
        series: impl Iterator<Item = (&'a Labels, &'a [Sample])> + Clone,
        metadata: Vec<(String, Metadata)>,
    ) -> Result<(), StoreError> {
        self.check_writable(series.clone().map(|(_, s)| s.len() as u64).sum())?;
        let mut late = outbox::LateCount::new(self.shared());
        let mut head = self.shared().head_mut();
        for (labels, samples) in series {
            if samples.is_empty() {
                continue;
            }
            let id = head.series_id(labels);
            head.append(id, samples);
            late.count(samples);
        }
        for (name, m) in metadata {
            set_metadata_locked(&mut head, name, m);
        }
        drop(head);
        late.commit();
        Ok(())
    }

    /// Appends series whose label pairs are borrowed from a request (remote_write). A known
    /// label set is found by its hash without building a `Labels`; for a set the head does
    /// not know, `admit` gives the `Labels` (after validating the pairs) or `None` to skip
    /// the series. Returns how many samples were appended.
    pub fn append_wire(
        &self,
        batch: &WireBatch<'_>,
        metadata: Vec<(String, Metadata)>,
        mut admit: impl FnMut(&[(&[u8], &[u8])]) -> Option<Labels>,
    ) -> Result<u64, StoreError> {
        self.check_writable(batch.sample_count() as u64)?;
        let mut late = outbox::LateCount::new(self.shared());
        let mut head = self.shared().head_mut();
        let mut appended = 0;
        for (pairs, samples) in batch.series() {
            let hash = head.hash_of(pairs.iter().copied());
            let id = match head.find(hash, pairs) {
                Some(id) => id,
                None => match admit(pairs) {
                    Some(labels) => head.series_id(&labels),
                    None => continue,
                },
            };
            head.append(id, samples);
            late.count(samples);
            appended += samples.len() as u64;
        }
        for (name, m) in metadata {
            set_metadata_locked(&mut head, name, m);
        }
        drop(head);
        late.commit();
        Ok(appended)
    }

    /// Fails when the store is closed, or when writes are failing and the head already
    /// holds as many unflushed samples as it may (then `n` more are refused and counted).
    fn check_writable(&self, n: u64) -> Result<(), StoreError> {
        if self.shared().closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        if self.shared().write_failing.load(Ordering::SeqCst) {
            let appended = self.shared().head().samples_appended;
            if let Some(held) = full::refuse_append(self.shared(), appended, n) {
                return Err(StoreError::Full(held));
            }
        }
        Ok(())
    }

    /// Records metadata for a metric name (persisted at the next flush).
    pub fn set_metadata(&self, name: &str, metadata: Metadata) -> Result<(), StoreError> {
        if self.shared().closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        set_metadata_locked(&mut self.shared().head_mut(), name.to_owned(), metadata);
        Ok(())
    }

    /// All known metadata, by metric name.
    pub fn metadata(&self) -> BTreeMap<String, Metadata> {
        self.shared()
            .head()
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Flushes the head now and waits for the commit.
    pub fn flush(&self) -> Result<(), StoreError> {
        let tx = self
            .handle
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let tx = tx.ok_or(StoreError::Closed)?;
        let (rtx, rrx) = sync_channel(1);
        tx.send(Command::Flush(rtx))
            .map_err(|_| StoreError::Closed)?;
        rrx.recv().map_err(|_| StoreError::Closed)?
    }

    /// Flushes everything (sealing open chunks), stops the writer and releases the files.
    /// Later calls do nothing; other handles then get [`StoreError::Closed`].
    pub fn close(&self) -> Result<(), StoreError> {
        self.handle.stop(Command::Close)
    }

    /// Stops the writer without a final flush: what a crash right after a flush leaves.
    #[cfg(test)]
    fn abandon(&self) {
        let _ = self.handle.stop(Command::Abandon);
    }

    pub fn stats(&self) -> StoreStats {
        let (series, samples_appended, head_chunks) = {
            let h = self.shared().head();
            (h.series.len() as u64, h.samples_appended, h.head_chunks())
        };
        let raw_oldest = self.raw_tier().min_time;
        // Per tier: the oldest data it can answer for. The store's retention is the
        // oldest of them: rollups answer for days whose raw samples were deleted.
        let now = status::now_ms();
        let age =
            |t: Option<i64>| t.map(|t| Duration::from_millis(now.saturating_sub(t).max(0) as u64));
        let mut tier_retention = vec![("raw", age(raw_oldest))];
        let mut oldest = raw_oldest;
        for (t, (name, _)) in rollup::TIERS.iter().enumerate() {
            let from = tier::status(self.shared(), t).min_time;
            tier_retention.push((*name, age(from)));
            oldest = match (oldest, from) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        let c = self
            .shared()
            .counters
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let limits = &self.shared().limits;
        let retention = age(oldest);
        let evicted = c.evicted_partitions + c.tier_evictions.iter().sum::<u64>();
        StoreStats {
            series,
            samples_appended,
            samples_flushed: c.samples_flushed,
            bytes_on_disk: dir_bytes(&self.shared().dir),
            head_chunks,
            flushes: c.flushes,
            last_flush_duration: c.last_flush_duration,
            evicted_partitions: c.evicted_partitions,
            retention,
            retention_below_horizon: evicted > 0
                && limits
                    .retention_horizon
                    .is_some_and(|h| retention.is_some_and(|r| r < h)),
            budget_bytes: limits.budget_bytes,
            write_errors: c.write_errors,
            write_failing: self.shared().write_failing.load(Ordering::SeqCst),
            disk_full: self.shared().disk_full.load(Ordering::SeqCst),
            samples_refused: c.samples_refused,
            rollup_errors: c.rollup_errors,
            tier_retention,
        }
    }
}

fn set_metadata_locked(head: &mut Head, name: String, m: Metadata) {
    if head.metadata.get(&name) != Some(&m) {
        head.metadata.insert(name.clone(), m);
        head.pending_metadata.push(name);
    }
}

/// Bytes of `index.redb`, all partition files and the rollup files (missing files count 0).
fn dir_bytes(dir: &Path) -> u64 {
    let mut total = std::fs::metadata(dir.join(INDEX_FILE)).map_or(0, |m| m.len());
    if let Ok(rd) = std::fs::read_dir(dir.join(partition::RAW_DIR)) {
        for e in rd.flatten() {
            total += e.metadata().map_or(0, |m| m.len());
        }
    }
    for t in 0..rollup::TIERS.len() {
        total += tier::all_bytes(dir, t).values().sum::<u64>();
    }
    total
}

#[cfg(test)]
mod tests;
