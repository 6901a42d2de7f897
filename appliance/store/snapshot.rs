//! Consistent copies of a store (`picket store snapshot`, `POST /api/v1/admin/snapshot`).
//!
//! redb has no online backup API, and copying a file that a writer commits to could catch
//! it half-way. Instead every source file is read inside one redb read transaction (an MVCC
//! snapshot that the writer never disturbs), and a fresh redb file is written at the
//! destination with the contents of every table.
//!
//! Across files, the cut follows the store's invariant "the index commits before any chunk
//! referring to it": the partitions' read transactions are begun first and the index's
//! last, so the copied index knows every series the copied partitions refer to. Each
//! partition is self-consistent (its blocks and chunks commit together), so the copy opens
//! like a store after a power cut right after the last flush: nothing to repair.
//!
//! Tables are copied by their known definitions; a table this build does not know makes
//! the snapshot fail rather than silently leave data behind.

use super::{INDEX_FILE, META, StoreError, index, partition, state, tier, wal};
use redb::{
    Database, Durability, MultimapTableDefinition, MultimapTableHandle, ReadTransaction,
    ReadableDatabase, ReadableMultimapTable, ReadableTable, TableDefinition, TableError,
    TableHandle, WriteTransaction,
};
use std::path::{Path, PathBuf};

/// What a snapshot copied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotSummary {
    pub files: u64,
    pub entries: u64,
    pub bytes: u64,
}

/// A source file: where it goes under the destination, and its open read transaction.
pub struct Source {
    pub rel: PathBuf,
    pub txn: ReadTransaction,
    pub kind: Kind,
    /// Keeps the database alive while its transaction is read (a running store's budget
    /// keeper may evict the partition meanwhile).
    pub db: Option<Box<dyn std::any::Any>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Index,
    Partition,
    /// A 5m or 1h rollup file (tier.rs).
    Rollup,
}

/// Begins read transactions on the files of a store that is not running (read-only opens,
/// which fail when a Picket process has the files open): partitions first, index last.
pub fn open_dir(dir: &Path) -> Result<Vec<Source>, StoreError> {
    let mut out = Vec::new();
    let open = |path: &Path| -> Result<redb::ReadOnlyDatabase, StoreError> {
        Database::builder()
            .open_read_only(path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => StoreError::AlreadyOpen {
                    path: path.to_owned(),
                },
                redb::DatabaseError::RepairAborted => StoreError::Other(format!(
                    "{}: needs the repair redb does after a crash; start Picket on this data \
                     directory once (it repairs at open), then retry",
                    path.display()
                )),
                e => super::open_error(path, e),
            })
    };
    for (pidx, path) in partition::list(dir)? {
        let db = open(&path)?;
        let txn = db.begin_read().map_err(|e| StoreError::db(&path, e))?;
        out.push(Source {
            rel: partition::partition_path(Path::new(""), pidx),
            txn,
            kind: Kind::Partition,
            db: Some(Box::new(db)),
        });
    }
    // Rollups after raw: a raw day the copy lacks was rolled up before it went.
    for t in 0..2 {
        for idx in tier::all_bytes(dir, t).into_keys() {
            let path = tier::file_path(dir, t, idx);
            let db = open(&path)?;
            let txn = db.begin_read().map_err(|e| StoreError::db(&path, e))?;
            out.push(Source {
                rel: tier::file_path(Path::new(""), t, idx),
                txn,
                kind: Kind::Rollup,
                db: Some(Box::new(db)),
            });
        }
    }
    let path = dir.join(INDEX_FILE);
    let db = open(&path)?;
    let txn = db.begin_read().map_err(|e| StoreError::db(&path, e))?;
    out.push(Source {
        rel: PathBuf::from(INDEX_FILE),
        txn,
        kind: Kind::Index,
        db: Some(Box::new(db)),
    });
    Ok(out)
}

/// Takes a snapshot of the store in `dir` into the new directory `dest`: first the block
/// logs (the valid records of each segment), then `begin` takes the redb read
/// transactions, whose tables are copied. Logs before redb: a log record the copy lacks
/// is one a crash could lose too, while a log ahead of its partition (pieces of a chunk
/// the copied partition has not sealed, followed by pieces of the next one) could not be
/// rebuilt. On failure the partial copy is removed.
pub fn take(
    dir: &Path,
    dest: &Path,
    begin: impl FnOnce() -> Result<Vec<Source>, StoreError>,
) -> Result<SnapshotSummary, StoreError> {
    if dest.exists() {
        return Err(StoreError::Other(format!(
            "{} already exists; a snapshot goes into a new directory",
            dest.display()
        )));
    }
    let result = (|| {
        std::fs::create_dir_all(dest.join(partition::RAW_DIR))
            .map_err(|e| StoreError::io(dest, e))?;
        let mut sum = copy_logs(dir, dest)?;
        let sources = begin()?;
        let s = write_all(&sources, dest)?;
        sum.files += s.files;
        sum.entries += s.entries;
        sum.bytes += s.bytes;
        for d in [dest.join(partition::RAW_DIR), dest.to_owned()] {
            std::fs::File::open(&d)
                .and_then(|f| f.sync_all())
                .map_err(|e| StoreError::io(&d, e))?;
        }
        Ok(sum)
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dest);
    }
    result
}

fn copy_logs(dir: &Path, dest: &Path) -> Result<SnapshotSummary, StoreError> {
    let mut sum = SnapshotSummary::default();
    for (pidx, segs) in wal::list(dir)? {
        for (first, path) in segs {
            let r = match wal::read_segment(&path) {
                Ok(r) => r,
                // Deleted since listed: every record in it died, its chunks sealed into the
                // partition, whose transaction is taken after this.
                Err(StoreError::Io { source, .. })
                    if source.kind() == std::io::ErrorKind::NotFound =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            };
            let to = wal::segment_path(dest, partition::partition_start(pidx), first);
            wal::write_segment(&to, &r.records)?;
            sum.files += 1;
            sum.entries += r.records.len() as u64;
            sum.bytes += std::fs::metadata(&to).map_or(0, |m| m.len());
        }
    }
    Ok(sum)
}

fn write_all(sources: &[Source], dest: &Path) -> Result<SnapshotSummary, StoreError> {
    let mut sum = SnapshotSummary::default();
    for src in sources {
        let path = dest.join(&src.rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e))?;
        }
        let db = Database::builder()
            .create(&path)
            .map_err(|e| super::open_error(&path, e))?;
        let mut txn = db.begin_write().map_err(|e| StoreError::db(&path, e))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| StoreError::Other(format!("{}: {e}", path.display())))?;
        sum.entries += copy_file(src, &txn, &path)?;
        txn.commit().map_err(|e| StoreError::db(&path, e))?;
        drop(db);
        sum.files += 1;
        sum.bytes += std::fs::metadata(&path).map_or(0, |m| m.len());
    }
    Ok(sum)
}

fn copy_file(src: &Source, dst: &WriteTransaction, path: &Path) -> Result<u64, StoreError> {
    let known: &[&str] = match src.kind {
        // series_by_labels: legacy, not copied (index.rs).
        Kind::Index => &["meta", "series", "series_by_labels", "metadata", "state"],
        Kind::Partition => &["meta", "chunks", "blocks", "times"],
        Kind::Rollup => &["meta", "groups", "rolled"],
    };
    let e = |x: redb::Error| StoreError::db(path, x);
    for t in src.txn.list_tables().map_err(|x| e(x.into()))? {
        if !known.contains(&t.name()) {
            return Err(unknown(path, t.name()));
        }
    }
    let mut n = copy_table(&src.txn, dst, META, path)?;
    match src.kind {
        Kind::Index => {
            for t in src.txn.list_multimap_tables().map_err(|x| e(x.into()))? {
                if t.name() != "postings" {
                    return Err(unknown(path, t.name()));
                }
            }
            n += copy_table(&src.txn, dst, index::SERIES, path)?;
            n += copy_table(&src.txn, dst, index::METADATA, path)?;
            // Alert state, silences, the outbox and forwarding cursors: a restored backup
            // neither re-notifies nor re-sends.
            n += copy_table(&src.txn, dst, state::STATE, path)?;
            n += copy_multimap(&src.txn, dst, index::POSTINGS, path)?;
        }
        Kind::Partition => {
            n += copy_table(&src.txn, dst, partition::CHUNKS, path)?;
            n += copy_table(&src.txn, dst, partition::BLOCKS, path)?;
            n += copy_table(&src.txn, dst, partition::TIMES, path)?;
        }
        Kind::Rollup => {
            n += copy_table(&src.txn, dst, tier::GROUPS, path)?;
            n += copy_table(&src.txn, dst, tier::ROLLED, path)?;
        }
    }
    Ok(n)
}

fn unknown(path: &Path, table: &str) -> StoreError {
    StoreError::Other(format!(
        "{}: table {table:?} is unknown to this Picket; snapshot it with the Picket that wrote it",
        path.display()
    ))
}

fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    def: TableDefinition<K, V>,
    path: &Path,
) -> Result<u64, StoreError> {
    let e = |x: redb::Error| StoreError::db(path, x);
    let from = match src.open_table(def) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(x) => return Err(e(x.into())),
    };
    let mut to = dst.open_table(def).map_err(|x| e(x.into()))?;
    let mut n = 0;
    for entry in from.iter().map_err(|x| e(x.into()))? {
        let (k, v) = entry.map_err(|x| e(x.into()))?;
        to.insert(k.value(), v.value()).map_err(|x| e(x.into()))?;
        n += 1;
    }
    Ok(n)
}

fn copy_multimap<K: redb::Key + 'static, V: redb::Key + 'static>(
    src: &ReadTransaction,
    dst: &WriteTransaction,
    def: MultimapTableDefinition<K, V>,
    path: &Path,
) -> Result<u64, StoreError> {
    let e = |x: redb::Error| StoreError::db(path, x);
    let from = match src.open_multimap_table(def) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(0),
        Err(x) => return Err(e(x.into())),
    };
    let mut to = dst.open_multimap_table(def).map_err(|x| e(x.into()))?;
    let mut n = 0;
    for entry in from.iter().map_err(|x| e(x.into()))? {
        let (k, vals) = entry.map_err(|x| e(x.into()))?;
        for v in vals {
            let v = v.map_err(|x| e(x.into()))?;
            to.insert(k.value(), v.value()).map_err(|x| e(x.into()))?;
            n += 1;
        }
    }
    Ok(n)
}

impl super::Store {
    /// Flushes the head, then writes a consistent copy of the store into the new directory
    /// `dest` while the store keeps running.
    pub fn snapshot(&self, dest: &Path) -> Result<SnapshotSummary, StoreError> {
        self.flush()?;
        let shared = &self.handle.shared;
        take(&shared.dir, dest, || {
            let dbs = shared.dbs();
            let index = dbs.index.clone().ok_or(StoreError::Closed)?;
            let mut sources = Vec::with_capacity(dbs.partitions.len() + 1);
            for (&pidx, db) in &dbs.partitions {
                let path = partition::partition_path(&shared.dir, pidx);
                sources.push(Source {
                    rel: partition::partition_path(Path::new(""), pidx),
                    txn: db.begin_read().map_err(|e| StoreError::db(&path, e))?,
                    kind: Kind::Partition,
                    db: Some(Box::new(db.clone())),
                });
            }
            // Rollups after raw: a raw day the copy lacks was rolled up before it went.
            for (t, tf) in dbs.tiers.iter().enumerate() {
                for (&idx, db) in &tf.files {
                    let path = tier::file_path(&shared.dir, t, idx);
                    sources.push(Source {
                        rel: tier::file_path(Path::new(""), t, idx),
                        txn: db.begin_read().map_err(|e| StoreError::db(&path, e))?,
                        kind: Kind::Rollup,
                        db: Some(Box::new(db.clone())),
                    });
                }
            }
            // Last: the index then knows every series the partitions above refer to.
            sources.push(Source {
                rel: PathBuf::from(INDEX_FILE),
                txn: index
                    .begin_read()
                    .map_err(|e| StoreError::db(&shared.index_path(), e))?,
                kind: Kind::Index,
                db: Some(Box::new(index)),
            });
            Ok(sources)
        })
    }

    /// A snapshot under `<data dir>/snapshots/<name>`; returns the name and the path.
    pub fn snapshot_in_data_dir(&self) -> Result<(String, PathBuf), StoreError> {
        let name = format!("{}", super::status::now_ms());
        let dir = self.handle.shared.dir.join("snapshots");
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let mut path = dir.join(&name);
        let mut n = 0;
        let mut final_name = name.clone();
        while path.exists() {
            n += 1;
            final_name = format!("{name}-{n}");
            path = dir.join(&final_name);
        }
        self.snapshot(&path)?;
        let path = std::fs::canonicalize(&path).unwrap_or(path);
        Ok((final_name, path))
    }
}
