//! When writes fail (a full disk, most of all): what the store does until they work again.
//!
//! - A failed flush leaves everything it could not write in the head (the next flush
//!   retries; sealed chunks and pieces are written exactly as they would have been), counts
//!   a write error, and raises the *failing* state (`StoreStats::write_failing`, and
//!   `disk_full` when the error was ENOSPC), logged once when it starts and once when a
//!   flush succeeds again.
//! - redb refuses every later transaction of a file whose write failed, reads included,
//!   until the file is reopened. Before each flush the writer reopens such files (the
//!   last commit is intact: redb never overwrites committed pages), so queries keep
//!   working and writing resumes as soon as space returns. A file a reader still holds is
//!   reopened at the next flush instead.
//! - While failing, the head is bounded: once it holds [`MAX_UNFLUSHED_SAMPLES`] samples
//!   not yet on disk, appends are refused with [`StoreError::Full`] (remote_write answers
//!   500, so senders retry later) and the refused samples are counted.

use super::{Shared, StoreError, index, partition, tier};
use redb::Database;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Samples not yet on disk the head may hold while writes fail (a few MB of compressed
/// chunks; about an hour of 2,000 series scraped every 15 s).
pub const MAX_UNFLUSHED_SAMPLES: u64 = 500_000;

/// Whether `e` says the filesystem is full.
pub fn is_disk_full(e: &StoreError) -> bool {
    let full = |s: &std::io::Error| {
        s.kind() == std::io::ErrorKind::StorageFull || s.raw_os_error() == Some(28)
    };
    match e {
        StoreError::Io { source, .. } => full(source),
        // redb's errors reach us as text.
        StoreError::Database { message, .. } | StoreError::Other(message) => {
            message.contains("os error 28") || message.contains("No space left")
        }
        _ => false,
    }
}

/// Records the outcome of a flush: counters, the failing state and its log lines.
pub(super) fn record_flush(shared: &Shared, result: &Result<(), StoreError>) {
    let was = shared.write_failing.load(Ordering::SeqCst);
    match result {
        Ok(()) => {
            shared.write_failing.store(false, Ordering::SeqCst);
            shared.disk_full.store(false, Ordering::SeqCst);
            if was {
                tracing::info!("Store writes succeed again; the head is being written out.");
            }
        }
        Err(e) => {
            let full = is_disk_full(e);
            shared.write_failing.store(true, Ordering::SeqCst);
            shared.disk_full.store(full, Ordering::SeqCst);
            shared
                .counters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .write_errors += 1;
            if !was {
                tracing::error!(error = %e, disk_full = full, max_unflushed = MAX_UNFLUSHED_SAMPLES, "Store writes fail; queries keep working, the head keeps what it cannot write (up to max_unflushed samples, then appends are refused) and flushes retry.");
            }
        }
    }
}

/// While writes fail: `Some(unflushed)` when an append of `n` more samples must be
/// refused, `appended` being the head's count of samples ever appended.
pub(super) fn refuse_append(shared: &Shared, appended: u64, n: u64) -> Option<u64> {
    let mut c = shared.counters.lock().unwrap_or_else(|e| e.into_inner());
    let unflushed = appended.saturating_sub(c.samples_flushed);
    if unflushed.saturating_add(n) <= MAX_UNFLUSHED_SAMPLES {
        return None;
    }
    c.samples_refused += n;
    Some(unflushed)
}

/// Whether redb refuses `db` after a failed write (it must be reopened).
fn poisoned(db: &Database) -> bool {
    match db.try_begin_write() {
        Ok(txn) => {
            let _ = txn.abort();
            false
        }
        Err(e) => matches!(
            e,
            redb::TransactionError::Storage(redb::StorageError::PreviousIo)
        ),
    }
}

/// Free space a flush wants before it starts: redb files grow by whole regions, and a
/// commit failing half-way makes redb refuse the file until it is reopened, which itself
/// needs space to repair. Below this, flushes wait (the failing state) without writing.
pub const FLUSH_RESERVE_BYTES: u64 = 2 << 20;

/// Fails when the data dir's filesystem has less than [`FLUSH_RESERVE_BYTES`] free.
pub(super) fn check_space(shared: &Shared) -> Result<(), StoreError> {
    match index::free_bytes(&shared.dir) {
        Ok(free) if free < FLUSH_RESERVE_BYTES => Err(StoreError::Io {
            path: shared.dir.clone(),
            source: std::io::Error::new(
                std::io::ErrorKind::StorageFull,
                format!("only {free} bytes free, a flush waits for {FLUSH_RESERVE_BYTES}"),
            ),
        }),
        _ => Ok(()),
    }
}

/// Reopens every file redb refuses after a failed write (see the module doc). Runs on the
/// writer thread before a flush, holding the files' write lock so readers wait instead of
/// missing a file. A file that cannot be reopened yet (its repair needs space) stays as
/// it is, refusing; one whose reopening failed after its handle was dropped is looked for
/// on disk and opened again before the next flush.
pub(super) fn reopen_poisoned(shared: &Shared) {
    if !shared.write_failing.load(Ordering::SeqCst) || shared.closed.load(Ordering::SeqCst) {
        return;
    }
    let mut dbs = shared.dbs_mut();
    let path = shared.index_path();
    dbs.index = match dbs.index.take() {
        Some(db) => reopen(db, &path, index::open),
        None => open_logged(&path, index::open),
    };
    let mut on_disk = partition::list(&shared.dir).unwrap_or_default();
    on_disk.retain(|(i, _)| !dbs.partitions.contains_key(i));
    for (pidx, path) in on_disk {
        if let Some(db) = open_logged(&path, partition::open) {
            dbs.partitions.insert(pidx, db);
        }
    }
    let parts: Vec<i64> = dbs.partitions.keys().copied().collect();
    for pidx in parts {
        if let Some(db) = dbs.partitions.remove(&pidx) {
            let path = partition::partition_path(&shared.dir, pidx);
            if let Some(db) = reopen(db, &path, partition::open) {
                dbs.partitions.insert(pidx, db);
            }
        }
    }
    for (t, tf) in dbs.tiers.iter_mut().enumerate() {
        for (idx, _) in tier::all_bytes(&shared.dir, t) {
            if let std::collections::btree_map::Entry::Vacant(slot) = tf.files.entry(idx) {
                let path = tier::file_path(&shared.dir, t, idx);
                if let Some(db) = open_logged(&path, |p| super::open_existing(p, "rollup file")) {
                    slot.insert(db);
                }
            }
        }
        let idxs: Vec<i64> = tf.files.keys().copied().collect();
        for idx in idxs {
            if let Some(db) = tf.files.remove(&idx) {
                let path = tier::file_path(&shared.dir, t, idx);
                if let Some(db) = reopen(db, &path, |p| super::open_existing(p, "rollup file")) {
                    tf.files.insert(idx, db);
                }
            }
        }
    }
}

fn open_logged(
    path: &std::path::Path,
    open: impl Fn(&std::path::Path) -> Result<Database, StoreError>,
) -> Option<Arc<Database>> {
    match open(path) {
        Ok(db) => {
            tracing::info!(path = %path.display(), "Reopened a store file after a failed write.");
            Some(Arc::new(db))
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "Cannot reopen a store file after a failed write; will retry.");
            None
        }
    }
}

/// `db` itself when healthy, still held by a reader, or without room to repair; else the
/// file opened again (None when that failed: the caller looks for it on disk next time).
fn reopen(
    db: Arc<Database>,
    path: &std::path::Path,
    open: impl Fn(&std::path::Path) -> Result<Database, StoreError>,
) -> Option<Arc<Database>> {
    if !poisoned(&db) {
        return Some(db);
    }
    // Reopening a refused file repairs it, which writes.
    let room = path
        .parent()
        .and_then(|d| index::free_bytes(d).ok())
        .is_some_and(|f| f >= FLUSH_RESERVE_BYTES);
    if !room {
        return Some(db);
    }
    match Arc::try_unwrap(db) {
        Ok(db) => {
            // The old handle must be gone before the file can be opened again.
            drop(db);
            open_logged(path, open)
        }
        Err(db) => Some(db),
    }
}
