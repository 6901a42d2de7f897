//! The persistent outbox: one FIFO queue of notifications per receiver, mirrored in the
//! store's `state` table so that a receiver that is down, or a Picket that restarts, loses
//! nothing. A notification leaves the outbox only when its receiver acknowledged it
//! (HTTP 2xx, MQTT PUBACK for every message).
//!
//! Keys: `notify/outbox\0RECEIVER\0SEQ` (SEQ 20 decimal digits, so key order is queue
//! order) → the entry as JSON (self-describing, so an upgrade can still read it).
//! Entries are written durably when they change what a receiver knows (a new firing or
//! resolved alert); Alertmanager resends of still-firing alerts are kept in memory only,
//! because the rule engine sends them again after a restart anyway and every durable
//! commit costs the SD card ~46 KB.

use super::alert::Alert;
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

pub const OUTBOX_PREFIX: &str = "notify/outbox\u{0}";

/// Most notifications queued per receiver; beyond it the oldest is dropped (and counted),
/// as Prometheus' notifier queue does, so a receiver gone for weeks cannot fill the disk.
pub const MAX_QUEUED: usize = 10_000;

/// What a receiver is asked to deliver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Payload {
    /// A flushed aggregation group (MQTT, webhook).
    Group(GroupNotification),
    /// Alerts for Alertmanager's `/api/v2/alerts`, as Prometheus sends them.
    Alerts(Vec<Alert>),
}

/// One notification of an aggregation group, as Alertmanager builds it at a flush.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupNotification {
    pub group_key: String,
    pub group_labels: std::collections::BTreeMap<String, String>,
    /// The alerts with their state at the flush (true = resolved).
    pub alerts: Vec<(Alert, bool)>,
    /// Alerts left out by the receiver's `max_alerts`.
    pub truncated: u64,
    /// ms since the epoch of the flush.
    pub at_ms: i64,
}

impl GroupNotification {
    /// `firing` if any alert fires, else `resolved` (Alertmanager's `status`).
    pub fn status(&self) -> &'static str {
        if self.alerts.iter().any(|(_, resolved)| !resolved) {
            "firing"
        } else {
            "resolved"
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub seq: u64,
    pub durable: bool,
    pub payload: Payload,
}

#[derive(Default)]
struct Inner {
    next_seq: u64,
    queues: HashMap<String, VecDeque<Entry>>,
}

pub struct Outbox {
    store: Store,
    inner: Mutex<Inner>,
    wake: HashMap<String, Arc<tokio::sync::Notify>>,
    dropped: AtomicU64,
    write_errors: AtomicU64,
}

fn key(receiver: &str, seq: u64) -> String {
    format!("{OUTBOX_PREFIX}{receiver}\u{0}{seq:020}")
}

impl Outbox {
    /// Opens the outbox for `receivers`, loading what earlier runs left queued. Entries
    /// of receivers no longer configured are deleted, with a warning.
    pub fn open(store: Store, receivers: &[String]) -> Outbox {
        let mut inner = Inner::default();
        let mut stale = Vec::new();
        match store.states_with_prefix(OUTBOX_PREFIX) {
            Ok(entries) => {
                for (k, v) in entries {
                    let rest = &k[OUTBOX_PREFIX.len()..];
                    let parsed = rest
                        .rsplit_once('\u{0}')
                        .and_then(|(r, seq)| Some((r.to_string(), seq.parse::<u64>().ok()?)));
                    let payload = serde_json::from_slice::<Payload>(&v);
                    match (parsed, payload) {
                        (Some((r, seq)), Ok(payload)) if receivers.contains(&r) => {
                            inner.next_seq = inner.next_seq.max(seq + 1);
                            inner.queues.entry(r).or_default().push_back(Entry {
                                seq,
                                durable: true,
                                payload,
                            });
                        }
                        (parsed, payload) => {
                            tracing::warn!(key = %k.replace('\u{0}', "/"), receiver_known = parsed.is_some(), readable = payload.is_ok(), "Dropping a queued notification of a receiver that is no longer configured (or unreadable).");
                            stale.push(k);
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read the notification outbox; queued notifications of earlier runs are not sent.")
            }
        }
        if !stale.is_empty()
            && let Err(e) = store.put_states(stale.iter().map(|k| (k.as_str(), None::<&[u8]>)))
        {
            tracing::warn!(error = %e, "Cannot delete stale outbox entries.");
        }
        let queued: usize = inner.queues.values().map(VecDeque::len).sum();
        if queued > 0 {
            tracing::info!(
                queued,
                "Notifications queued by an earlier run will be sent."
            );
        }
        Outbox {
            store,
            inner: Mutex::new(inner),
            wake: receivers
                .iter()
                .map(|r| (r.clone(), Arc::new(tokio::sync::Notify::new())))
                .collect(),
            dropped: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// What a receiver's sender waits on for new entries.
    pub fn waker(&self, receiver: &str) -> Arc<tokio::sync::Notify> {
        self.wake
            .get(receiver)
            .cloned()
            .unwrap_or_else(|| Arc::new(tokio::sync::Notify::new()))
    }

    /// Queues a notification. A durable one is committed to the store together with
    /// `also` (other state entries that must change in the same transaction, such as the
    /// notification log) before this returns. When the store cannot be written the entry
    /// is still queued in memory (it is delivered unless Picket restarts first).
    pub fn push(
        &self,
        receiver: &str,
        payload: Payload,
        durable: bool,
        also: Vec<(String, Option<Vec<u8>>)>,
    ) {
        let mut inner = self.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        let mut changes = also;
        if durable {
            match serde_json::to_vec(&payload) {
                Ok(bytes) => changes.push((key(receiver, seq), Some(bytes))),
                Err(e) => tracing::error!(error = %e, "BUG: a notification cannot be encoded."),
            }
        }
        let queue = inner.queues.entry(receiver.to_string()).or_default();
        queue.push_back(Entry {
            seq,
            durable,
            payload,
        });
        while queue.len() > MAX_QUEUED {
            if let Some(old) = queue.pop_front() {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    receiver,
                    "Outbox full: the oldest queued notification is dropped."
                );
                if old.durable {
                    changes.push((key(receiver, old.seq), None));
                }
            }
        }
        drop(inner);
        if !changes.is_empty()
            && let Err(e) = self.store.put_states(changes)
        {
            self.write_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(receiver, error = %e, "Cannot save a notification in the outbox; it is kept in memory only.");
        }
        if let Some(w) = self.wake.get(receiver) {
            w.notify_one();
        }
    }

    /// The queued entries of a receiver, oldest first (copies; the queue is unchanged).
    pub fn pending(&self, receiver: &str, max: usize) -> Vec<Entry> {
        self.lock()
            .queues
            .get(receiver)
            .map(|q| q.iter().take(max).cloned().collect())
            .unwrap_or_default()
    }

    /// Removes acknowledged entries (blocking: a durable entry's delete is a commit).
    pub fn ack(&self, receiver: &str, seqs: &[u64]) {
        let mut deletes = Vec::new();
        {
            let mut inner = self.lock();
            if let Some(q) = inner.queues.get_mut(receiver) {
                q.retain(|e| {
                    let acked = seqs.contains(&e.seq);
                    if acked && e.durable {
                        deletes.push(key(receiver, e.seq));
                    }
                    !acked
                });
            }
        }
        if !deletes.is_empty()
            && let Err(e) = self
                .store
                .put_states(deletes.iter().map(|k| (k.as_str(), None::<&[u8]>)))
        {
            self.write_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(receiver, error = %e, "Cannot delete delivered notifications from the outbox; they may be sent again after a restart.");
        }
    }

    /// Writes one other state entry (the notification log when nothing is queued).
    pub fn put_state(&self, change: (String, Option<Vec<u8>>)) -> Result<(), String> {
        self.store.put_states([change]).map_err(|e| e.to_string())
    }

    /// Queued entries per receiver.
    pub fn lengths(&self) -> Vec<(String, usize)> {
        let inner = self.lock();
        let mut out: Vec<(String, usize)> = self
            .wake
            .keys()
            .map(|r| (r.clone(), inner.queues.get(r).map_or(0, VecDeque::len)))
            .collect();
        out.sort();
        out
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn write_errors(&self) -> u64 {
        self.write_errors.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alerts(n: usize) -> Payload {
        Payload::Alerts(
            (0..n)
                .map(|i| Alert {
                    labels: [("alertname".to_string(), format!("A{i}"))].into(),
                    annotations: Default::default(),
                    starts_at: 1,
                    ends_at: 0,
                    generator_url: String::new(),
                })
                .collect(),
        )
    }

    #[test]
    fn durable_entries_survive_a_restart_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_for_test(dir.path());
        let names = vec!["a".to_string(), "b".to_string()];
        let o = Outbox::open(store.clone(), &names);
        o.push("a", alerts(1), true, vec![]);
        o.push("a", alerts(2), false, vec![]);
        o.push(
            "a",
            alerts(3),
            true,
            vec![("x".into(), Some(b"1".to_vec()))],
        );
        o.push("b", alerts(4), true, vec![]);
        let first = o.pending("a", 1)[0].seq;
        o.ack("a", &[first]);
        assert_eq!(o.lengths(), [("a".to_string(), 2), ("b".to_string(), 1)]);
        drop(o);
        store.close().unwrap();

        // After a restart only durable, unacknowledged entries come back, in order; a
        // receiver no longer configured loses its entries from the store.
        let store = Store::open_for_test(dir.path());
        let o = Outbox::open(store.clone(), &["a".to_string()]);
        let got = o.pending("a", 10);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].payload, alerts(3));
        assert_eq!(store.states_with_prefix("x").unwrap().len(), 1);
        assert_eq!(store.states_with_prefix(OUTBOX_PREFIX).unwrap().len(), 1);
        // New entries continue the sequence.
        o.push("a", alerts(5), true, vec![]);
        let seqs: Vec<u64> = o.pending("a", 10).iter().map(|e| e.seq).collect();
        assert!(seqs[1] > seqs[0]);
        store.close().unwrap();
    }
}
