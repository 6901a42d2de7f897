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
const NFLOG_RETENTION_MS: i64 = 5 * 24 * 3600 * 1000;

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
    /// Whether each alert was firing when last queued for each Alertmanager receiver, and
    /// when it was last queued (resolved ones are forgotten an hour later).
    am_sent: HashMap<(usize, u64), (bool, i64)>,
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
        now_ms: i64,
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
        let mut expired = Vec::new();
        match store.states_with_prefix(NFLOG_PREFIX) {
            Ok(entries) => {
                for (k, v) in entries {
                    let rest = &k[NFLOG_PREFIX.len()..];
                    // Alertmanager keeps its notification log for 5 days (--data.retention).
                    let fresh = serde_json::from_slice::<NflogEntry>(&v)
                        .is_ok_and(|e| now_ms - e.at_ms <= NFLOG_RETENTION_MS);
                    if !fresh {
                        expired.push(k.clone());
                        continue;
                    }
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
        if !expired.is_empty()
            && let Err(e) = store.put_states(expired.iter().map(|k| (k.as_str(), None::<&[u8]>)))
        {
            tracing::warn!(error = %e, "Cannot delete old notification log entries.");
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
                let before = self.am_sent.insert((ri, a.fingerprint()), (firing, now_ms));
                if before.map(|(f, _)| f) != Some(firing) {
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
        // Prometheus stops resending a resolved alert 15 minutes after it resolved.
        self.am_sent
            .retain(|_, (firing, at)| *firing || now_ms - *at < 3_600_000);
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
        let mut all: Vec<(Alert, bool)> = g
            .alerts
            .values()
            .map(|a| (a.clone(), a.resolved_at(now_ms)))
            .collect();
        // Alertmanager lists a group's alerts in label order.
        all.sort_by(|a, b| a.0.labels.cmp(&b.0.labels));
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
                    if let Err(e) = self.outbox.put_state(log_change) {
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

    /// For each GPIO receiver (by name), the severities of the unmuted firing alerts
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::Store;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        outbox: Arc<Outbox>,
        silences: Arc<Silences>,
        d: Dispatcher,
    }

    fn fixture(toml: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_for_test(dir.path());
        let cfg = Config::parse(toml, "t.toml").unwrap().notify;
        let receivers: Vec<ReceiverInfo> = cfg
            .receiver_names()
            .into_iter()
            .map(|name| ReceiverInfo {
                kind: if name.starts_with("am") {
                    ReceiverKind::Alertmanager
                } else if name.starts_with("gpio") {
                    ReceiverKind::Gpio
                } else {
                    ReceiverKind::Grouped {
                        send_resolved: true,
                        max_alerts: 0,
                    }
                },
                name,
            })
            .collect();
        let names: Vec<String> = receivers.iter().map(|r| r.name.clone()).collect();
        let outbox = Arc::new(Outbox::open(store.clone(), &names));
        let silences = Arc::new(Silences::open(store.clone()));
        let d = Dispatcher::new(&cfg, receivers, outbox.clone(), silences.clone(), &store, 0);
        Fixture {
            _dir: dir,
            store,
            outbox,
            silences,
            d,
        }
    }

    const TWO_HOOKS: &str = "[notify]\ngroup_wait = \"10s\"\ngroup_interval = \"1m\"\nrepeat_interval = \"1h\"\n\
        [[notify.webhook]]\nname = \"all\"\nurl = \"http://x\"\n\
        [[notify.webhook]]\nname = \"pager\"\nurl = \"http://y\"\n";

    fn alert(name: &str, sev: &str, inst: &str, ends_at: i64) -> Alert {
        Alert {
            labels: [
                ("alertname".to_string(), name.to_string()),
                ("severity".to_string(), sev.to_string()),
                ("instance".to_string(), inst.to_string()),
            ]
            .into(),
            annotations: BTreeMap::new(),
            // Fired just now: a group waits group_wait for it.
            starts_at: 99_000,
            ends_at,
            generator_url: String::new(),
        }
    }

    /// (alertname, instances firing, instances resolved) of each queued notification.
    fn queued(f: &Fixture, receiver: &str) -> Vec<(String, Vec<String>, Vec<String>)> {
        f.outbox
            .pending(receiver, 100)
            .into_iter()
            .filter_map(|e| match e.payload {
                Payload::Group(n) => Some((
                    n.group_labels.get("alertname").cloned().unwrap_or_default(),
                    n.alerts
                        .iter()
                        .filter(|(_, r)| !r)
                        .map(|(a, _)| a.label("instance").to_string())
                        .collect(),
                    n.alerts
                        .iter()
                        .filter(|(_, r)| *r)
                        .map(|(a, _)| a.label("instance").to_string())
                        .collect(),
                )),
                Payload::Alerts(_) => None,
            })
            .collect()
    }

    #[test]
    fn groups_wait_then_notify_changes_resolved_and_repeats_like_alertmanager() {
        let mut f = fixture(TWO_HOOKS);
        let firing = 10_000_000;
        f.d.receive(vec![alert("Hot", "warning", "a", firing)], 100_000);
        f.d.flush_due(105_000);
        assert!(queued(&f, "all").is_empty(), "group_wait not over");
        // The second alert joins the group before the first flush.
        f.d.receive(vec![alert("Hot", "warning", "b", firing)], 106_000);
        f.d.flush_due(110_000);
        assert_eq!(
            queued(&f, "all"),
            [("Hot".into(), vec!["a".into(), "b".into()], vec![])]
        );
        assert_eq!(queued(&f, "pager").len(), 1, "no route: every receiver");
        // Nothing new within group_interval, or at it: no notification.
        f.d.receive(vec![alert("Hot", "warning", "a", firing)], 120_000);
        f.d.flush_due(170_000);
        assert_eq!(queued(&f, "all").len(), 1);
        // b resolves: notified at the next flush, then it leaves the group.
        f.d.receive(vec![alert("Hot", "warning", "b", 175_000)], 175_000);
        f.d.flush_due(230_000);
        let q = queued(&f, "all");
        assert_eq!(q[1], ("Hot".into(), vec!["a".into()], vec!["b".into()]));
        // Unchanged: repeated after repeat_interval only.
        f.d.flush_due(290_000);
        assert_eq!(queued(&f, "all").len(), 2);
        f.d.flush_due(230_000 + 3_600_000 + 60_000);
        assert_eq!(
            queued(&f, "all")[2],
            ("Hot".into(), vec!["a".into()], vec![])
        );
        f.store.close().unwrap();
    }

    #[test]
    fn routes_pick_receivers_and_the_notification_log_survives_a_restart() {
        let cfg = format!(
            "{TWO_HOOKS}[[notify.route]]\nmatchers = ['severity=\"critical\"']\nreceivers = [\"pager\"]\ngroup_wait = \"0s\"\n"
        );
        let mut f = fixture(&cfg);
        f.d.receive(
            vec![
                alert("Down", "critical", "a", 10_000_000),
                alert("Hot", "warning", "a", 10_000_000),
            ],
            100_000,
        );
        f.d.flush_due(100_000);
        assert_eq!(
            queued(&f, "pager")
                .iter()
                .map(|q| q.0.as_str())
                .collect::<Vec<_>>(),
            ["Down"]
        );
        assert!(
            queued(&f, "all").is_empty(),
            "Hot waits for group_wait, Down is routed away"
        );
        f.d.flush_due(110_000);
        assert_eq!(
            queued(&f, "all")
                .iter()
                .map(|q| q.0.as_str())
                .collect::<Vec<_>>(),
            ["Hot"]
        );
        assert_eq!(
            queued(&f, "pager").len(),
            2,
            "Hot also reaches pager through the default route"
        );

        // A new dispatcher on the same store (a restart) does not notify again.
        let cfgp = Config::parse(&cfg, "t.toml").unwrap().notify;
        let receivers = vec![
            ReceiverInfo {
                name: "all".into(),
                kind: ReceiverKind::Grouped {
                    send_resolved: true,
                    max_alerts: 0,
                },
            },
            ReceiverInfo {
                name: "pager".into(),
                kind: ReceiverKind::Grouped {
                    send_resolved: true,
                    max_alerts: 0,
                },
            },
        ];
        let mut d2 = Dispatcher::new(
            &cfgp,
            receivers,
            f.outbox.clone(),
            f.silences.clone(),
            &f.store,
            200_000,
        );
        d2.receive(vec![alert("Down", "critical", "a", 10_000_000)], 200_000);
        d2.flush_due(200_000);
        assert_eq!(queued(&f, "pager").len(), 2);
        f.store.close().unwrap();
    }

    #[test]
    fn inhibition_and_silences_mute_alerts_like_alertmanager() {
        let cfg = format!(
            "{TWO_HOOKS}[[notify.inhibit_rules]]\nsource_matchers = ['severity=\"critical\"']\n\
             target_matchers = ['severity=\"warning\"']\nequal = [\"instance\"]\n"
        );
        let mut f = fixture(&cfg);
        let t = 10_000_000;
        f.d.receive(
            vec![
                alert("Down", "critical", "a", t),
                alert("Hot", "warning", "a", t),
                alert("Hot", "warning", "b", t),
            ],
            100_000,
        );
        f.d.flush_due(110_000);
        let q = queued(&f, "all");
        assert!(
            q.contains(&("Hot".into(), vec!["b".into()], vec![])),
            "a is inhibited, b differs in instance: {q:?}"
        );
        // A silence on Down: it is not notified; the inhibition still holds (Alertmanager
        // inhibits with silenced sources too).
        let mut f = fixture(&cfg);
        let m = crate::notify::silence::SilenceMatcher::from_matcher(
            &super::super::matcher::parse_matcher("alertname=Down").unwrap(),
        );
        f.silences
            .upsert(
                crate::notify::silence::Silence {
                    id: String::new(),
                    matchers: vec![m],
                    starts_at: 0,
                    ends_at: t,
                    updated_at: 0,
                    created_by: String::new(),
                    comment: String::new(),
                },
                100_000,
            )
            .unwrap();
        f.d.receive(
            vec![
                alert("Down", "critical", "a", t),
                alert("Hot", "warning", "a", t),
            ],
            100_000,
        );
        f.d.flush_due(110_000);
        assert!(queued(&f, "all").is_empty(), "{:?}", queued(&f, "all"));
        // An alert matching both sides is not inhibited by another that also does.
        assert!(!f.d.inhibited(&alert("X", "critical", "z", t).labels, 110_000));
    }

    #[test]
    fn alertmanager_batches_are_durable_only_when_an_alert_changes_state() {
        let mut f = fixture("[[notify.alertmanager]]\nname = \"am\"\nurl = \"http://x\"\n");
        let a = alert("Hot", "warning", "a", 10_000_000);
        f.d.receive(vec![a.clone()], 100_000);
        f.d.receive(vec![a.clone()], 160_000);
        f.d.receive(vec![alert("Hot", "warning", "a", 170_000)], 170_000);
        let durable: Vec<bool> = f
            .outbox
            .pending("am", 10)
            .iter()
            .map(|e| e.durable)
            .collect();
        assert_eq!(durable, [true, false, true]);
        f.store.close().unwrap();
    }

    #[test]
    fn gpio_receivers_show_the_severities_of_unmuted_firing_alerts() {
        let mut f = fixture(
            "[[notify.gpio]]\npins = [{ pin = 17, severity = \"critical\" }]\n\
             [[notify.inhibit_rules]]\nsource_matchers = ['severity=\"critical\"']\n\
             target_matchers = ['severity=\"warning\"']\n",
        );
        let sev = |f: &Fixture, now| -> Vec<String> {
            f.d.gpio_state(now)[0].1.iter().cloned().collect()
        };
        assert!(sev(&f, 0).is_empty());
        f.d.receive(vec![alert("Hot", "warning", "a", 10_000)], 100);
        assert_eq!(sev(&f, 200), ["warning"]);
        f.d.receive(vec![alert("Down", "critical", "a", 10_000)], 300);
        assert_eq!(sev(&f, 400), ["critical"], "warning is inhibited");
        // Alerts that are not resent expire at their endsAt.
        f.d.flush_due(10_000);
        assert!(sev(&f, 10_000).is_empty());
        f.store.close().unwrap();
    }

    #[test]
    fn needs_update_follows_alertmanagers_dedup_stage() {
        let s = |v: &[u64]| v.iter().copied().collect::<BTreeSet<u64>>();
        let e = NflogEntry {
            firing: s(&[1, 2]),
            resolved: s(&[]),
            at_ms: 0,
        };
        assert!(
            !needs_update(None, &s(&[]), &s(&[1]), true, 10, 1),
            "only resolved, never told"
        );
        assert!(needs_update(None, &s(&[1]), &s(&[]), true, 10, 1));
        assert!(
            !needs_update(Some(&e), &s(&[1]), &s(&[]), true, 10, 5),
            "a subset"
        );
        assert!(
            needs_update(Some(&e), &s(&[3]), &s(&[]), true, 10, 5),
            "a new one"
        );
        assert!(
            needs_update(Some(&e), &s(&[1]), &s(&[2]), true, 10, 5),
            "newly resolved"
        );
        assert!(!needs_update(Some(&e), &s(&[1]), &s(&[2]), false, 10, 5));
        assert!(
            needs_update(Some(&e), &s(&[]), &s(&[1, 2]), false, 10, 5),
            "all resolved"
        );
        assert!(
            needs_update(Some(&e), &s(&[1]), &s(&[]), true, 10, 11),
            "repeat"
        );
    }
}
