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

use super::{INDEX_FILE, META, StoreError, index, partition};
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
    /// Keeps a running store's database alive while its transaction is read, even if the
    /// budget keeper evicts the partition meanwhile.
    pub db: Option<std::sync::Arc<Database>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Index,
    Partition,
}

/// Begins read transactions on the files of a store that is not running (read-only opens,
/// which fail when a Picket process has the files open): partitions first, index last.
/// The databases are returned too: a transaction must not outlive its database.
pub fn open_dir(dir: &Path) -> Result<(Vec<redb::ReadOnlyDatabase>, Vec<Source>), StoreError> {
    let mut dbs = Vec::new();
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
            db: None,
        });
        dbs.push(db);
    }
    let path = dir.join(INDEX_FILE);
    let db = open(&path)?;
    let txn = db.begin_read().map_err(|e| StoreError::db(&path, e))?;
    out.push(Source {
        rel: PathBuf::from(INDEX_FILE),
        txn,
        kind: Kind::Index,
        db: None,
    });
    dbs.push(db);
    Ok((dbs, out))
}

/// Writes every source into a new directory `dest` (which must not exist yet). On failure
/// the partial copy is removed.
pub fn write(sources: &[Source], dest: &Path) -> Result<SnapshotSummary, StoreError> {
    if dest.exists() {
        return Err(StoreError::Other(format!(
            "{} already exists; a snapshot goes into a new directory",
            dest.display()
        )));
    }
    let result = write_all(sources, dest);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(dest);
    }
    result
}

fn write_all(sources: &[Source], dest: &Path) -> Result<SnapshotSummary, StoreError> {
    std::fs::create_dir_all(dest.join(partition::RAW_DIR)).map_err(|e| StoreError::io(dest, e))?;
    let mut sum = SnapshotSummary::default();
    for src in sources {
        let path = dest.join(&src.rel);
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
    for d in [dest.join(partition::RAW_DIR), dest.to_owned()] {
        std::fs::File::open(&d)
            .and_then(|f| f.sync_all())
            .map_err(|e| StoreError::io(&d, e))?;
    }
    Ok(sum)
}

fn copy_file(src: &Source, dst: &WriteTransaction, path: &Path) -> Result<u64, StoreError> {
    let known: &[&str] = match src.kind {
        Kind::Index => &["meta", "series", "series_by_labels", "metadata"],
        Kind::Partition => &["meta", "chunks", "blocks"],
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
            n += copy_table(&src.txn, dst, index::SERIES_BY_LABELS, path)?;
            n += copy_table(&src.txn, dst, index::METADATA, path)?;
            n += copy_multimap(&src.txn, dst, index::POSTINGS, path)?;
        }
        Kind::Partition => {
            n += copy_table(&src.txn, dst, partition::CHUNKS, path)?;
            n += copy_table(&src.txn, dst, partition::BLOCKS, path)?;
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
        let sources = {
            let dbs = shared.dbs();
            let index = dbs.index.clone().ok_or(StoreError::Closed)?;
            let mut sources = Vec::with_capacity(dbs.partitions.len() + 1);
            for (&pidx, db) in &dbs.partitions {
                let path = partition::partition_path(&shared.dir, pidx);
                sources.push(Source {
                    rel: partition::partition_path(Path::new(""), pidx),
                    txn: db.begin_read().map_err(|e| StoreError::db(&path, e))?,
                    kind: Kind::Partition,
                    db: Some(db.clone()),
                });
            }
            // Last: the index then knows every series the partitions above refer to.
            sources.push(Source {
                rel: PathBuf::from(INDEX_FILE),
                txn: index
                    .begin_read()
                    .map_err(|e| StoreError::db(&shared.index_path(), e))?,
                kind: Kind::Index,
                db: Some(index),
            });
            sources
        };
        write(&sources, dest)
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
