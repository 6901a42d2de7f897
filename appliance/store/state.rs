//! Small named state blobs kept in the index database (`state` table, `&str -> &[u8]`):
//! what other stages must find again after a restart — today the rule engine's alert
//! state (`rules::alerting`), silences and the notification outbox (`notify`), forwarding
//! cursors (`forward`) and eviction records (`outbox.rs`). Snapshots copy it.
//!
//! Each call is one durable write transaction of its own, outside the writer thread's
//! flushes (redb serialises write transactions, so it waits for a running flush at most).
//! Callers write only when something changed (an alert changing state, not every
//! evaluation), because every durable commit costs the SD card a fixed ~46 KB.

use super::{Shared, Store, StoreError};
use redb::{ReadableDatabase, TableDefinition};

/// Key → opaque bytes owned by the caller; keys are namespaced by a prefix per stage.
pub(super) const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");

impl Store {
    /// Writes (`Some`) or deletes (`None`) state entries in one durable transaction.
    pub fn put_states<K: AsRef<str>, V: AsRef<[u8]>>(
        &self,
        changes: impl IntoIterator<Item = (K, Option<V>)>,
    ) -> Result<(), StoreError> {
        put_states_in(&self.handle.shared, changes)
    }

    /// Every state entry whose key starts with `prefix`, in key order.
    pub fn states_with_prefix(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let shared = &self.handle.shared;
        let path = shared.index_path();
        let db = shared.dbs().index.clone().ok_or(StoreError::Closed)?;
        let txn = db.begin_read().map_err(|e| StoreError::db(&path, e))?;
        let t = match txn.open_table(STATE) {
            Ok(t) => t,
            // Indexes written before this table existed simply have no state yet.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(StoreError::db(&path, e)),
        };
        let mut out = Vec::new();
        for entry in t.range(prefix..).map_err(|e| StoreError::db(&path, e))? {
            let (k, v) = entry.map_err(|e| StoreError::db(&path, e))?;
            if !k.value().starts_with(prefix) {
                break;
            }
            out.push((k.value().to_owned(), v.value().to_vec()));
        }
        Ok(out)
    }
}

/// [`Store::put_states`] for the writer thread, which holds the shared state, not a handle.
pub(super) fn put_states_in<K: AsRef<str>, V: AsRef<[u8]>>(
    shared: &Shared,
    changes: impl IntoIterator<Item = (K, Option<V>)>,
) -> Result<(), StoreError> {
    let path = shared.index_path();
    let db = shared.dbs().index.clone().ok_or(StoreError::Closed)?;
    let mut txn = db.begin_write().map_err(|e| StoreError::db(&path, e))?;
    txn.set_quick_repair(true);
    {
        let mut t = txn
            .open_table(STATE)
            .map_err(|e| StoreError::db(&path, e))?;
        for (k, v) in changes {
            match v {
                Some(v) => t.insert(k.as_ref(), v.as_ref()).map(drop),
                None => t.remove(k.as_ref()).map(drop),
            }
            .map_err(|e| StoreError::db(&path, e))?;
        }
    }
    txn.commit().map_err(|e| StoreError::db(&path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_entries_survive_a_reopen_and_list_by_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_for_test(dir.path());
        assert!(s.states_with_prefix("alerts/").unwrap().is_empty());
        s.put_states([
            ("alerts/a", Some(b"1".to_vec())),
            ("alerts/b", Some(b"2".to_vec())),
            ("outbox/x", Some(b"3".to_vec())),
        ])
        .unwrap();
        s.put_states([("alerts/a", None::<Vec<u8>>)]).unwrap();
        s.close().unwrap();
        let s = Store::open_for_test(dir.path());
        assert_eq!(
            s.states_with_prefix("alerts/").unwrap(),
            [("alerts/b".to_string(), b"2".to_vec())]
        );
        assert_eq!(s.states_with_prefix("").unwrap().len(), 2);
        s.close().unwrap();
        assert!(matches!(s.states_with_prefix(""), Err(StoreError::Closed)));
    }

    #[test]
    fn a_snapshot_carries_the_state() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open_for_test(&dir.path().join("data"));
        s.put_states([("forward/cursor/vm", Some(b"c".to_vec()))])
            .unwrap();
        let snap = dir.path().join("snap");
        s.snapshot(&snap).unwrap();
        s.close().unwrap();
        let copy = Store::open_for_test(&snap);
        assert_eq!(
            copy.states_with_prefix("forward/").unwrap(),
            [("forward/cursor/vm".to_string(), b"c".to_vec())]
        );
        copy.close().unwrap();
    }
}
