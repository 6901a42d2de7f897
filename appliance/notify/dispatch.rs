//! Routing, grouping, silencing and inhibition: what Alertmanager's dispatcher, notify
//! pipeline and inhibitor do, for the alerts of this node.
//!
//! * An alert goes to the routes (`[[notify.route]]`, in order) whose matchers it
//!   matches: the first one, or every one up to and including the first without
//!   `continue = true`. An alert no route takes goes to the default route, whose
//!   receivers are all receivers.
//! * Per route, alerts are grouped by the values of the route's `group_by` labels
//!   (`"..."`: all labels). A new group is flushed `group_wait` after it appeared (at once
//!   when its first alert is older than that), then every `group_interval`.
//! * At a flush, silenced and inhibited alerts are left out; for each receiver the
//!   notification log (what it was last told about this group, persisted) decides, as
//!   Alertmanager's `DedupStage.needsUpdate` does, whether to notify: new firing alerts,
//!   newly resolved ones (with `send_resolved`), all resolved, or `repeat_interval`
//!   passed. The notification is queued in the outbox in the same commit as the log
//!   entry, then resolved alerts leave the group, and empty groups are deleted.
//! * Alertmanager receivers get the alerts as Prometheus sends them (every evaluation
//!   that has something to send), not grouped, silenced or inhibited: Alertmanager does
//!   that itself.
//! * GPIO receivers show state, not messages: a pin is on while an unmuted firing alert
//!   of its severity is routed to the receiver.
//!
//! Time is passed in (ms since the epoch), so tests drive it with a fake clock.

use super::alert::{Alert, fingerprint};
use super::matcher::all_match;
use super::outbox::{GroupNotification, Outbox, Payload};
use super::silence::Silences;
use crate::config::notify::NotifyConfig;
use crate::model::Matcher;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

pub const NFLOG_PREFIX: &str = "notify/nflog\u{0}";

/// What the dispatcher needs to know about a receiver.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiverKind {
    /// Gets group notifications (MQTT, webhook).
    Grouped {
        send_resolved: bool,
        max_alerts: usize,
    },
    Alertmanager,
    Gpio,
}

#[derive(Debug, Clone)]
pub struct ReceiverInfo {
    pub name: String,
    pub kind: ReceiverKind,
}

#[derive(Debug, Clone)]
struct Route {
    matchers: Vec<Matcher>,
    receivers: Vec<usize>,
    group_by: Vec<String>,
    group_wait_ms: i64,
    group_interval_ms: i64,
    repeat_interval_ms: i64,
    continue_matching: bool,
    key: String,
}

#[derive(Debug, Clone)]
struct InhibitRule {
    source: Vec<Matcher>,
    target: Vec<Matcher>,
    equal: Vec<String>,
}

struct AggGroup {
    key: String,
    labels: BTreeMap<String, String>,
    alerts: BTreeMap<u64, Alert>,
    next_flush_ms: i64,
    has_flushed: bool,
}

/// What a receiver was last told about a group (Alertmanager's `nflogpb.Entry`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NflogEntry {
    pub firing: BTreeSet<u64>,
    pub resolved: BTreeSet<u64>,
    pub at_ms: i64,
}

pub struct Dispatcher {
    receivers: Vec<ReceiverInfo>,
    routes: Vec<Route>,
    inhibit: Vec<InhibitRule>,
    groups: BTreeMap<(usize, BTreeMap<String, String>), AggGroup>,
    /// Every alert not resolved, by fingerprint (inhibition sources, GPIO state).
    active: HashMap<u64, Alert>,
    nflog: HashMap<(String, String), NflogEntry>,
    /// Whether each alert was firing when last queued for each Alertmanager receiver.
    am_sent: HashMap<(usize, u64), bool>,
    outbox: Arc<Outbox>,
    silences: Arc<Silences>,
    pub notifications_queued: u64,
}

fn nflog_key(receiver: &str, group_key: &str) -> String {
    format!("{NFLOG_PREFIX}{receiver}\u{0}{group_key}")
}

fn labels_text(labels: &BTreeMap<String, String>) -> String {
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

impl Dispatcher {
    pub fn new(
        config: &NotifyConfig,
        receivers: Vec<ReceiverInfo>,
        outbox: Arc<Outbox>,
        silences: Arc<Silences>,
        store: &crate::store::Store,
    ) -> Dispatcher {
        let ms = |d: std::time::Duration| d.as_millis() as i64;
        let index = |name: &String| receivers.iter().position(|r| &r.name == name);
        let mut routes: Vec<Route> = config
            .route
            .iter()
            .map(|r| Route {
                matchers: r.matchers.0.clone(),
                receivers: r.receivers.iter().filter_map(index).collect(),
                group_by: r
                    .group_by
                    .clone()
                    .unwrap_or_else(|| config.group_by.clone()),
                group_wait_ms: ms(r.group_wait.unwrap_or(config.group_wait).0),
                group_interval_ms: ms(r.group_interval.unwrap_or(config.group_interval).0),
                repeat_interval_ms: ms(r.repeat_interval.unwrap_or(config.repeat_interval).0),
                continue_matching: r.continue_matching,
                key: format!(
                    "{{}}/{{{}}}",
                    r.matchers
                        .0
                        .iter()
                        .map(super::matcher::display)
                        .collect::<Vec<_>>()
                        .join(",")
                ),
            })
            .collect();
        routes.push(Route {
            matchers: Vec::new(),
            receivers: (0..receivers.len()).collect(),
            group_by: config.group_by.clone(),
            group_wait_ms: ms(config.group_wait.0),
            group_interval_ms: ms(config.group_interval.0),
            repeat_interval_ms: ms(config.repeat_interval.0),
            continue_matching: false,
            key: "{}".into(),
        });
        let mut nflog = HashMap::new();
        match store.states_with_prefix(NFLOG_PREFIX) {
            Ok(entries) => {
                for (k, v) in entries {
                    let rest = &k[NFLOG_PREFIX.len()..];
                    if let (Some((r, g)), Ok(e)) = (
                        rest.split_once('\u{0}'),
                        serde_json::from_slice::<NflogEntry>(&v),
                    ) {
                        nflog.insert((r.to_string(), g.to_string()), e);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Cannot read the notification log; alerts already notified may be notified again.")
            }
        }
        Dispatcher {
            receivers,
            routes,
            inhibit: config
                .inhibit_rules
                .iter()
                .map(|r| InhibitRule {
                    source: r.source_matchers.0.clone(),
                    target: r.target_matchers.0.clone(),
                    equal: r.equal.clone(),
                })
                .collect(),
            groups: BTreeMap::new(),
            active: HashMap::new(),
            nflog,
            am_sent: HashMap::new(),
            outbox,
            silences,
            notifications_queued: 0,
        }
    }

    /// The routes that take an alert (indexes into `routes`; the last is the default).
    fn routes_for(&self, labels: &BTreeMap<String, String>) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, r) in self.routes[..self.routes.len() - 1].iter().enumerate() {
            if all_match(&r.matchers, labels) {
                out.push(i);
                if !r.continue_matching {
                    return out;
                }
            }
        }
        if out.is_empty() {
            out.push(self.routes.len() - 1);
        }
        out
    }

    /// Takes the alerts of one rule evaluation.
    pub fn receive(&mut self, alerts: Vec<Alert>, now_ms: i64) {
        if alerts.is_empty() {
            return;
        }
        // Alertmanager receivers: the batch as Prometheus would send it.
        for (ri, r) in self.receivers.iter().enumerate() {
            if r.kind != ReceiverKind::Alertmanager {
                continue;
            }
            let mine: Vec<Alert> = alerts
                .iter()
                .filter(|a| {
                    self.routes_for(&a.labels)
                        .iter()
                        .any(|&i| self.routes[i].receivers.contains(&ri))
                })
                .cloned()
                .collect();
            if mine.is_empty() {
                continue;
            }
            // Durable when the batch changes what Alertmanager knows; resends are not.
            let mut durable = false;
            for a in &mine {
                let firing = !a.resolved_at(now_ms);
                if self.am_sent.insert((ri, a.fingerprint()), firing) != Some(firing) {
                    durable = true;
                }
            }
            self.outbox
                .push(&r.name, Payload::Alerts(mine), durable, Vec::new());
        }
        for a in alerts {
            let fp = a.fingerprint();
            if a.resolved_at(now_ms) {
                self.active.remove(&fp);
            } else {
                self.active.insert(fp, a.clone());
            }
            for route_index in self.routes_for(&a.labels) {
                let route = &self.routes[route_index];
                let grouped = route
                    .receivers
                    .iter()
                    .any(|&r| matches!(self.receivers[r].kind, ReceiverKind::Grouped { .. }));
                if !grouped {
                    continue;
                }
                let group_labels: BTreeMap<String, String> =
                    if route.group_by.iter().any(|g| g == "...") {
                        a.labels.clone()
                    } else {
                        route
                            .group_by
                            .iter()
                            .filter_map(|n| a.labels.get(n).map(|v| (n.clone(), v.clone())))
                            .collect()
                    };
                let key = format!("{}:{}", route.key, labels_text(&group_labels));
                let wait = route.group_wait_ms;
                let g = self
                    .groups
                    .entry((route_index, group_labels.clone()))
                    .or_insert_with(|| AggGroup {
                        key,
                        labels: group_labels,
                        alerts: BTreeMap::new(),
                        next_flush_ms: now_ms + wait,
                        has_flushed: false,
                    });
                // Alertmanager: flush at once when the alert has waited long enough.
                if !g.has_flushed && a.starts_at + wait < now_ms {
                    g.next_flush_ms = now_ms;
                }
                g.alerts.insert(fp, a.clone());
            }
        }
    }

    /// When the next group is due (ms since the epoch).
    pub fn next_flush_ms(&self) -> Option<i64> {
        self.groups.values().map(|g| g.next_flush_ms).min()
    }

    fn muted(&self, a: &Alert, now_ms: i64) -> bool {
        self.silences.muted_by(&a.labels, now_ms).is_some() || self.inhibited(&a.labels, now_ms)
    }

    /// Alertmanager's `Inhibitor.Mutes`: a firing source alert with equal `equal` labels
    /// mutes a target; an alert matching both sides is not muted by alerts that do too.
    fn inhibited(&self, labels: &BTreeMap<String, String>, now_ms: i64) -> bool {
        let fp = fingerprint(labels);
        self.inhibit.iter().any(|r| {
            if !all_match(&r.target, labels) {
                return false;
            }
            let two_sided = all_match(&r.source, labels);
            self.active.iter().any(|(sfp, s)| {
                *sfp != fp
                    && !s.resolved_at(now_ms)
                    && all_match(&r.source, &s.labels)
                    && r.equal
                        .iter()
                        .all(|n| s.label(n) == labels.get(n).map_or("", String::as_str))
                    && !(two_sided && all_match(&r.target, &s.labels))
            })
        })
    }

    /// Flushes every group that is due.
    pub fn flush_due(&mut self, now_ms: i64) {
        self.active.retain(|_, a| !a.resolved_at(now_ms));
        let due: Vec<(usize, BTreeMap<String, String>)> = self
            .groups
            .iter()
            .filter(|(_, g)| g.next_flush_ms <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for k in due {
            self.flush(&k, now_ms);
        }
    }

    fn flush(&mut self, k: &(usize, BTreeMap<String, String>), now_ms: i64) {
        let route = self.routes[k.0].clone();
        let Some(g) = self.groups.get(k) else { return };
        let all: Vec<(Alert, bool)> = g
            .alerts
            .values()
            .map(|a| (a.clone(), a.resolved_at(now_ms)))
            .collect();
        let resolved_now: Vec<u64> = all
            .iter()
            .filter(|(_, r)| *r)
            .map(|(a, _)| a.fingerprint())
            .collect();
        let (group_key, group_labels) = (g.key.clone(), g.labels.clone());
        let shown: Vec<(Alert, bool)> = all
            .into_iter()
            .filter(|(a, _)| !self.muted(a, now_ms))
            .collect();
        if !shown.is_empty() {
            let firing: BTreeSet<u64> = shown
                .iter()
                .filter(|(_, r)| !r)
                .map(|(a, _)| a.fingerprint())
                .collect();
            let resolved: BTreeSet<u64> = shown
                .iter()
                .filter(|(_, r)| *r)
                .map(|(a, _)| a.fingerprint())
                .collect();
            for &ri in &route.receivers {
                let ReceiverKind::Grouped {
                    send_resolved,
                    max_alerts,
                } = self.receivers[ri].kind
                else {
                    continue;
                };
                let name = self.receivers[ri].name.clone();
                let log_key = (name.clone(), group_key.clone());
                let entry = self.nflog.get(&log_key);
                if !needs_update(
                    entry,
                    &firing,
                    &resolved,
                    send_resolved,
                    route.repeat_interval_ms,
                    now_ms,
                ) {
                    continue;
                }
                let new_entry = NflogEntry {
                    firing: firing.clone(),
                    resolved: resolved.clone(),
                    at_ms: now_ms,
                };
                let log_change = (
                    nflog_key(&name, &group_key),
                    if firing.is_empty() {
                        None
                    } else {
                        serde_json::to_vec(&new_entry).ok()
                    },
                );
                if firing.is_empty() {
                    self.nflog.remove(&log_key);
                } else {
                    self.nflog.insert(log_key, new_entry);
                }
                let mut alerts: Vec<(Alert, bool)> = shown
                    .iter()
                    .filter(|(_, r)| send_resolved || !r)
                    .cloned()
                    .collect();
                if alerts.is_empty() {
                    // Only resolved alerts and the receiver does not want them: the log
                    // changes, nothing is sent.
                    if let Err(e) = self.outbox_store_log(log_change) {
                        tracing::warn!(error = %e, "Cannot save the notification log.");
                    }
                    continue;
                }
                let truncated = if max_alerts > 0 && alerts.len() > max_alerts {
                    let t = alerts.len() - max_alerts;
                    alerts.truncate(max_alerts);
                    t as u64
                } else {
                    0
                };
                self.notifications_queued += 1;
                self.outbox.push(
                    &name,
                    Payload::Group(GroupNotification {
                        group_key: group_key.clone(),
                        group_labels: group_labels.clone(),
                        alerts,
                        truncated,
                        at_ms: now_ms,
                    }),
                    true,
                    vec![log_change],
                );
            }
        }
        let g = self
            .groups
            .get_mut(k)
            .expect("BUG: the group being flushed vanished");
        for fp in resolved_now {
            g.alerts.remove(&fp);
        }
        g.has_flushed = true;
        g.next_flush_ms = now_ms + route.group_interval_ms;
        if g.alerts.is_empty() {
            self.groups.remove(k);
        }
    }

    fn outbox_store_log(&self, change: (String, Option<Vec<u8>>)) -> Result<(), String> {
        self.outbox.put_state(change)
    }

    /// For each GPIO receiver (by index), the severities of the unmuted firing alerts
    /// routed to it.
    pub fn gpio_state(&self, now_ms: i64) -> Vec<(String, BTreeSet<String>)> {
        let mut out = Vec::new();
        for (ri, r) in self.receivers.iter().enumerate() {
            if r.kind != ReceiverKind::Gpio {
                continue;
            }
            let mut sev = BTreeSet::new();
            for a in self.active.values() {
                if a.resolved_at(now_ms) || self.muted(a, now_ms) {
                    continue;
                }
                if self
                    .routes_for(&a.labels)
                    .iter()
                    .any(|&i| self.routes[i].receivers.contains(&ri))
                {
                    sev.insert(a.label("severity").to_string());
                }
            }
            out.push((r.name.clone(), sev));
        }
        out
    }

    /// Alerts that are active and neither silenced nor inhibited, and those that are
    /// muted, for `picket_alerts_muted`.
    pub fn muted_count(&self, now_ms: i64) -> usize {
        self.active
            .values()
            .filter(|a| self.muted(a, now_ms))
            .count()
    }
}

/// Alertmanager's `DedupStage.needsUpdate` (notify/notify.go).
fn needs_update(
    entry: Option<&NflogEntry>,
    firing: &BTreeSet<u64>,
    resolved: &BTreeSet<u64>,
    send_resolved: bool,
    repeat_ms: i64,
    now_ms: i64,
) -> bool {
    let Some(e) = entry else {
        return !firing.is_empty();
    };
    if !firing.is_subset(&e.firing) {
        return true;
    }
    if firing.is_empty() {
        // Everything resolved: tell receivers that were told something fired.
        return !e.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&e.resolved) {
        return true;
    }
    e.at_ms + repeat_ms < now_ms
}
