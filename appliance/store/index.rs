//! The series index (`index.redb`): series ids, label sets, postings and metadata, and
//! how label matchers are answered from postings without scanning every series.

use super::StoreError;
use crate::model::{Labels, MatchOp, Matcher, Metadata};
use redb::{
    Database, MultimapTableDefinition, ReadTransaction, ReadableDatabase, ReadableTable,
    TableDefinition, TableError, TableHandle, WriteTransaction,
};
use std::path::Path;

/// Series id → label pairs (postcard `Vec<(&str, &str)>`, sorted by name).
pub const SERIES: TableDefinition<u64, &[u8]> = TableDefinition::new("series");
/// Label set → series id, written by Picket before 2026-11-22 and never read: the head
/// holds every series and finds them by label hash. Deleted when an index is opened.
pub const LEGACY_SERIES_BY_LABELS: TableDefinition<&[u8], u64> =
    TableDefinition::new("series_by_labels");
/// `(label name, label value)` → ids of the series carrying that pair.
pub const POSTINGS: MultimapTableDefinition<(&str, &str), u64> =
    MultimapTableDefinition::new("postings");
/// Metric name → postcard [`Metadata`].
pub const METADATA: TableDefinition<&str, &[u8]> = TableDefinition::new("metadata");

pub fn encode_labels(labels: &Labels) -> Result<Vec<u8>, StoreError> {
    let pairs: Vec<(&str, &str)> = labels.iter().map(|l| (&*l.name, &*l.value)).collect();
    postcard::to_stdvec(&pairs).map_err(|e| StoreError::Other(format!("encoding labels: {e}")))
}

/// Opens (or creates) the index; an existing one is checked before anything is written.
pub fn open(path: &Path) -> Result<Database, StoreError> {
    // An existing file is only ever opened: `create` would initialise an empty or foreign
    // file in place, which is exactly the silent data loss a damaged file must not cause.
    if path.exists() {
        let db = super::open_existing(path, "index")?;
        drop_legacy_tables(&db, path)?;
        return Ok(db);
    }
    super::create_new(path, |txn| {
        let e = |x: redb::TableError| StoreError::db(path, x);
        txn.open_table(SERIES).map_err(e)?;
        txn.open_multimap_table(POSTINGS).map_err(e)?;
        txn.open_table(METADATA).map_err(e)?;
        Ok(())
    })
}

/// Deletes [`LEGACY_SERIES_BY_LABELS`] (a third of an index's bytes) from an index that has
/// it; its pages are reused by later commits. A write only when there is one to delete.
fn drop_legacy_tables(db: &Database, path: &Path) -> Result<(), StoreError> {
    let e = |x: redb::Error| StoreError::db(path, x);
    let has = db
        .begin_read()
        .map_err(|x| e(x.into()))?
        .list_tables()
        .map_err(|x| e(x.into()))?
        .any(|t| t.name() == LEGACY_SERIES_BY_LABELS.name());
    if has {
        let mut txn = db.begin_write().map_err(|x| e(x.into()))?;
        txn.set_quick_repair(true);
        txn.delete_table(LEGACY_SERIES_BY_LABELS)
            .map_err(|x| e(x.into()))?;
        txn.commit().map_err(|x| e(x.into()))?;
    }
    Ok(())
}

/// Calls `f` for every series in the index.
pub fn load_series(
    db: &Database,
    path: &Path,
    mut f: impl FnMut(u64, Labels),
) -> Result<(), StoreError> {
    let txn = db.begin_read().map_err(|e| StoreError::db(path, e))?;
    let t = txn
        .open_table(SERIES)
        .map_err(|e| StoreError::db(path, e))?;
    for entry in t.iter().map_err(|e| StoreError::db(path, e))? {
        let (k, v) = entry.map_err(|e| StoreError::db(path, e))?;
        let pairs: Vec<(&str, &str)> =
            postcard::from_bytes(v.value()).map_err(|e| StoreError::Damaged {
                path: path.to_owned(),
                detail: format!("labels of series {}: {e}", k.value()),
            })?;
        f(k.value(), Labels::from_pairs(pairs));
    }
    Ok(())
}

pub fn load_metadata(
    db: &Database,
    path: &Path,
    mut f: impl FnMut(String, Metadata),
) -> Result<(), StoreError> {
    let txn = db.begin_read().map_err(|e| StoreError::db(path, e))?;
    let t = txn
        .open_table(METADATA)
        .map_err(|e| StoreError::db(path, e))?;
    for entry in t.iter().map_err(|e| StoreError::db(path, e))? {
        let (k, v) = entry.map_err(|e| StoreError::db(path, e))?;
        let m: Metadata = postcard::from_bytes(v.value()).map_err(|e| StoreError::Damaged {
            path: path.to_owned(),
            detail: format!("metadata of {}: {e}", k.value()),
        })?;
        f(k.value().to_owned(), m);
    }
    Ok(())
}

/// Adds new series (with their postings) and metadata in the caller's transaction.
pub fn write(
    txn: &WriteTransaction,
    path: &Path,
    series: &[(u64, Labels)],
    metadata: &[(String, Metadata)],
) -> Result<(), StoreError> {
    let e = |e: redb::Error| StoreError::db(path, e);
    let mut st = txn.open_table(SERIES).map_err(|x| e(x.into()))?;
    let mut post = txn.open_multimap_table(POSTINGS).map_err(|x| e(x.into()))?;
    let mut postings = Vec::with_capacity(series.iter().map(|(_, l)| l.len()).sum());
    for (id, labels) in series {
        let bytes = encode_labels(labels)?;
        st.insert(*id, bytes.as_slice()).map_err(|x| e(x.into()))?;
        postings.extend(labels.iter().map(|l| (&*l.name, &*l.value, *id)));
    }
    // In key order, the B-tree is walked once from left to right instead of a random path
    // per pair (thousands of new series, such as a new target's, come in one commit).
    postings.sort_unstable();
    for (name, value, id) in postings {
        post.insert((name, value), id).map_err(|x| e(x.into()))?;
    }
    let mut md = txn.open_table(METADATA).map_err(|x| e(x.into()))?;
    for (name, m) in metadata {
        let bytes = postcard::to_stdvec(m)
            .map_err(|x| StoreError::Other(format!("encoding metadata: {x}")))?;
        md.insert(name.as_str(), bytes.as_slice())
            .map_err(|x| e(x.into()))?;
    }
    Ok(())
}

/// Series ids (sorted) of the index that match all `matchers`, from postings.
///
/// Each matcher that does not match the empty string selects the union of the postings of
/// the values it matches (an `=` is one lookup; a regex iterates the values of that one
/// label name); the results are intersected. A matcher that matches the empty string also
/// selects series without the label, so it is applied by subtracting the postings of the
/// values it rejects. Only a selector made of empty-matching matchers alone (which the
/// Prometheus API rejects) starts from all series.
pub fn select_ids(
    txn: &ReadTransaction,
    path: &Path,
    matchers: &[Matcher],
) -> Result<Vec<u64>, StoreError> {
    let e = |x: redb::Error| StoreError::db(path, x);
    let post = match txn.open_multimap_table(POSTINGS) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(x) => return Err(e(x.into())),
    };
    let mut include: Option<Vec<u64>> = None;
    let mut exclude: Vec<u64> = Vec::new();
    // Positive matchers first, smallest work first: exact values before regexes.
    let mut order: Vec<&Matcher> = matchers.iter().collect();
    order.sort_by_key(|m| match m.op {
        MatchOp::Equal => 0,
        MatchOp::Regex => 1,
        _ => 2,
    });
    for m in order {
        let empty_ok = m.matches_empty();
        let mut ids = Vec::new();
        if m.op == MatchOp::Equal && !empty_ok {
            for id in post
                .get((m.name.as_str(), m.value.as_str()))
                .map_err(|x| e(x.into()))?
            {
                ids.push(id.map_err(|x| e(x.into()))?.value());
            }
        } else if m.op == MatchOp::NotEqual && empty_ok {
            for id in post
                .get((m.name.as_str(), m.value.as_str()))
                .map_err(|x| e(x.into()))?
            {
                ids.push(id.map_err(|x| e(x.into()))?.value());
            }
        } else {
            let range = post
                .range((m.name.as_str(), "")..)
                .map_err(|x| e(x.into()))?;
            for entry in range {
                let (k, vals) = entry.map_err(|x| e(x.into()))?;
                let (name, value) = k.value();
                if name != m.name {
                    break;
                }
                // Empty-matching matchers collect the values they reject.
                if m.matches(value) != empty_ok {
                    for id in vals {
                        ids.push(id.map_err(|x| e(x.into()))?.value());
                    }
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        if empty_ok {
            exclude.extend(ids);
        } else {
            include = Some(match include {
                None => ids,
                Some(prev) => intersect(&prev, &ids),
            });
            if include.as_ref().is_some_and(|v| v.is_empty()) {
                return Ok(Vec::new());
            }
        }
    }
    let mut result = match include {
        Some(ids) => ids,
        None => {
            let t = txn.open_table(SERIES).map_err(|x| e(x.into()))?;
            let mut all = Vec::new();
            for entry in t.iter().map_err(|x| e(x.into()))? {
                all.push(entry.map_err(|x| e(x.into()))?.0.value());
            }
            all
        }
    };
    if !exclude.is_empty() {
        exclude.sort_unstable();
        exclude.dedup();
        result.retain(|id| exclude.binary_search(id).is_err());
    }
    Ok(result)
}

fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

/// Sorted distinct label names in the index, skipping from one name to the next without
/// reading its values.
pub fn label_names(txn: &ReadTransaction, path: &Path) -> Result<Vec<String>, StoreError> {
    let e = |x: redb::Error| StoreError::db(path, x);
    let post = match txn.open_multimap_table(POSTINGS) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(x) => return Err(e(x.into())),
    };
    let mut names = Vec::new();
    let mut from = String::new();
    loop {
        let mut range = post.range((from.as_str(), "")..).map_err(|x| e(x.into()))?;
        let Some(entry) = range.next() else { break };
        let (k, _) = entry.map_err(|x| e(x.into()))?;
        let name = k.value().0.to_owned();
        // The smallest string after every "name…" value is "name\0".
        from = format!("{name}\0");
        names.push(name);
    }
    Ok(names)
}

/// Sorted distinct values of label `name` in the index.
pub fn label_values(
    txn: &ReadTransaction,
    path: &Path,
    name: &str,
) -> Result<Vec<String>, StoreError> {
    let e = |x: redb::Error| StoreError::db(path, x);
    let post = match txn.open_multimap_table(POSTINGS) {
        Ok(t) => t,
        Err(TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(x) => return Err(e(x.into())),
    };
    let mut out = Vec::new();
    for entry in post.range((name, "")..).map_err(|x| e(x.into()))? {
        let (k, _) = entry.map_err(|x| e(x.into()))?;
        let (n, v) = k.value();
        if n != name {
            break;
        }
        out.push(v.to_owned());
    }
    Ok(out)
}

/// The automatic byte budget: remembered in the index's `meta` as `"auto_budget_bytes"`,
/// or, at the first start, a share of the free space of the data dir's filesystem (see
/// [`super::Budget::Auto`]), written there durably so later starts use the same figure.
pub fn auto_budget(db: &Database, path: &Path, dir: &Path) -> Result<u64, StoreError> {
    const KEY: &str = "auto_budget_bytes";
    {
        let txn = db.begin_read().map_err(|e| StoreError::db(path, e))?;
        let meta = txn
            .open_table(super::META)
            .map_err(|e| StoreError::db(path, e))?;
        if let Some(v) = meta.get(KEY).map_err(|e| StoreError::db(path, e))? {
            return Ok(v.value());
        }
    }
    let free = free_bytes(dir).map_err(|e| StoreError::io(dir, e))?;
    let budget = (free / 100 * super::AUTO_BUDGET_PERCENT)
        .clamp(super::AUTO_BUDGET_MIN, super::AUTO_BUDGET_MAX);
    let mut txn = db.begin_write().map_err(|e| StoreError::db(path, e))?;
    txn.set_quick_repair(true);
    {
        let mut meta = txn
            .open_table(super::META)
            .map_err(|e| StoreError::db(path, e))?;
        meta.insert(KEY, budget)
            .map_err(|e| StoreError::db(path, e))?;
    }
    txn.commit().map_err(|e| StoreError::db(path, e))?;
    tracing::info!(
        budget_bytes = budget,
        free_bytes = free,
        "Storage budget set automatically from the free space; set storage.budget to change it."
    );
    Ok(budget)
}

/// Bytes available to unprivileged users on the filesystem holding `dir`.
pub(super) fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    // SAFETY: statvfs writes into the zeroed struct we own; `c` is a valid C string.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}
