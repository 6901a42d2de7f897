//! The alert state machine of one alerting rule, a port of Prometheus'
//! `rules/alerting.go` (`AlertingRule.Eval`): each evaluation's result vector becomes
//! alerts keyed by their label set (the sample's labels without `__name__`, plus the
//! rule's templated labels, plus `alertname`), which go
//!
//! ```text
//! (new) ─► pending ──(active for ≥ `for`)──► firing ──(gone from the result, and
//!   ▲         │                                 │      `keep_firing_for` elapsed)──► inactive
//!   │         └─(gone from the result)─► dropped │                                  (resolved:
//!   └──────────────── back in the result: a new alert ◄──────────────────────────── kept 15 m)
//! ```
//!
//! Time is passed in (`ts_ms`), so tests drive it with a fake clock. Every evaluation
//! returns the `ALERTS` and `ALERTS_FOR_STATE` samples of the active (pending/firing)
//! alerts; staleness markers for series that stop are the group's job, as in Prometheus.
//! [`AlertingRule::persisted`]/[`AlertingRule::restore`] carry the state across restarts.

use super::template::{QueryFn, Template, TemplateData};
use crate::model::{Labels, LabelsBuilder, METRIC_NAME, Sample};
use crate::query::promql::eval::InstantSample;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};

/// How long resolved alerts are kept (Prometheus `resolvedRetention`, 15 m), so that
/// notifiers can keep reporting them as resolved.
pub const RESOLVED_RETENTION_MS: i64 = 15 * 60 * 1000;

/// Prometheus' `--rules.alert.for-outage-tolerance` (1 h): pending progress older than
/// this is not restored after a restart.
pub const OUTAGE_TOLERANCE_MS: i64 = 60 * 60 * 1000;

/// Prometheus' `--rules.alert.for-grace-period` (10 m): an alert with a `for` at least this
/// long gets at least this long after a restart before it fires.
pub const FOR_GRACE_PERIOD_MS: i64 = 10 * 60 * 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

/// One alert of a rule (Prometheus' `rules.Alert`). Times are ms since the epoch; 0 is
/// Go's zero time ("never").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    pub state: AlertState,
    pub value: f64,
    pub active_at: i64,
    pub fired_at: i64,
    pub resolved_at: i64,
    pub keep_firing_since: i64,
}

impl Alert {
    pub fn labels(&self) -> Labels {
        Labels::from_pairs(self.labels.iter().map(|(k, v)| (k, v)))
    }
}

/// An alerting rule's definition and its alerts.
#[derive(Debug, Clone)]
pub struct AlertingRule {
    pub name: String,
    pub for_ms: i64,
    pub keep_firing_for_ms: i64,
    /// Label names with their raw values and templates.
    pub labels: Vec<(String, String, Template)>,
    pub annotations: Vec<(String, String, Template)>,
    /// Alerts by label set.
    active: BTreeMap<Labels, Alert>,
    /// When each alert was last sent to the notifier (Prometheus' `LastSentAt`; not
    /// persisted: after a restart firing alerts are sent again at once, as in Prometheus).
    last_sent: HashMap<Labels, i64>,
}

/// What one evaluation produced.
#[derive(Debug, Default)]
pub struct AlertOutput {
    /// `ALERTS` and `ALERTS_FOR_STATE` samples at the evaluation time.
    pub samples: Vec<(Labels, Sample)>,
    /// Set when the result had duplicate label sets after templating (Prometheus fails the
    /// whole evaluation then, keeping the previous alerts).
    pub error: Option<String>,
}

impl AlertingRule {
    pub fn new(
        name: String,
        for_ms: i64,
        keep_firing_for_ms: i64,
        labels: Vec<(String, String, Template)>,
        annotations: Vec<(String, String, Template)>,
    ) -> AlertingRule {
        AlertingRule {
            name,
            for_ms,
            keep_firing_for_ms,
            labels,
            annotations,
            active: BTreeMap::new(),
            last_sent: HashMap::new(),
        }
    }

    /// The rule's state for the API: firing if any alert fires, else pending if any is
    /// pending, else inactive (Prometheus `AlertingRule.State`).
    pub fn state(&self) -> AlertState {
        let mut s = AlertState::Inactive;
        for a in self.active.values() {
            if a.state == AlertState::Firing {
                return AlertState::Firing;
            }
            if a.state == AlertState::Pending {
                s = AlertState::Pending;
            }
        }
        s
    }

    /// Every alert the rule holds (pending, firing and recently resolved).
    pub fn alerts(&self) -> impl Iterator<Item = &Alert> {
        self.active.values()
    }

    /// Applies one evaluation's result at `ts_ms`. Mirrors `AlertingRule.Eval` in
    /// Prometheus `rules/alerting.go` (v3), minus the query, which the group ran.
    pub fn eval(
        &mut self,
        result: &[InstantSample],
        ts_ms: i64,
        external_labels: &BTreeMap<String, String>,
        external_url: &str,
        query: Option<&QueryFn<'_>>,
    ) -> AlertOutput {
        let mut out = AlertOutput::default();
        let mut fresh: HashMap<Labels, Alert> = HashMap::with_capacity(result.len());
        for s in result {
            let data = TemplateData {
                labels: s
                    .labels
                    .iter()
                    .map(|l| (l.name.to_string(), l.value.to_string()))
                    .collect(),
                external_labels,
                external_url,
                value: s.v,
                query,
            };
            // A template that fails to expand leaves this text in place of the value, as
            // Prometheus does.
            let expand = |t: &Template| {
                t.expand(&data)
                    .unwrap_or_else(|e| format!("<error expanding template: {e}>"))
            };
            let mut b: LabelsBuilder = s.labels.clone().into_builder();
            b.remove(METRIC_NAME);
            for (name, _, t) in &self.labels {
                b.set(name, &expand(t));
            }
            b.set("alertname", &self.name);
            let labels = b.build();
            let annotations = self
                .annotations
                .iter()
                .map(|(name, _, t)| (name.clone(), expand(t)))
                .collect();
            let alert = Alert {
                labels: labels
                    .iter()
                    .map(|l| (l.name.to_string(), l.value.to_string()))
                    .collect(),
                annotations,
                state: AlertState::Pending,
                value: s.v,
                active_at: ts_ms,
                fired_at: 0,
                resolved_at: 0,
                keep_firing_since: 0,
            };
            if fresh.insert(labels, alert).is_some() {
                out.error = Some(
                    "vector contains metrics with the same labelset after applying alert labels"
                        .into(),
                );
                return out;
            }
        }

        let in_result: Vec<Labels> = fresh.keys().cloned().collect();
        for (labels, a) in fresh {
            match self.active.get_mut(&labels) {
                // An alert we already track keeps its state and ActiveAt; only the value
                // and annotations follow the latest evaluation.
                Some(old) if old.state != AlertState::Inactive => {
                    old.value = a.value;
                    old.annotations = a.annotations;
                }
                _ => {
                    self.active.insert(labels, a);
                }
            }
        }

        let mut remove = Vec::new();
        for (labels, a) in self.active.iter_mut() {
            if !in_result.contains(labels) {
                let mut keep_firing = false;
                if a.state == AlertState::Firing && self.keep_firing_for_ms > 0 {
                    if a.keep_firing_since == 0 {
                        a.keep_firing_since = ts_ms;
                    }
                    if ts_ms - a.keep_firing_since < self.keep_firing_for_ms {
                        keep_firing = true;
                    }
                }
                // Pending alerts that vanish are forgotten; resolved ones are kept for
                // the retention period.
                if a.state == AlertState::Pending
                    || (a.resolved_at != 0 && ts_ms - a.resolved_at > RESOLVED_RETENTION_MS)
                {
                    remove.push(labels.clone());
                }
                if a.state != AlertState::Inactive && !keep_firing {
                    a.state = AlertState::Inactive;
                    a.resolved_at = ts_ms;
                }
                if !keep_firing {
                    continue;
                }
            } else {
                a.keep_firing_since = 0;
            }
            if a.state == AlertState::Pending && ts_ms - a.active_at >= self.for_ms {
                a.state = AlertState::Firing;
                a.fired_at = ts_ms;
            }
            out.samples.push((
                series_labels(labels, "ALERTS", Some(a.state)),
                Sample { t: ts_ms, v: 1.0 },
            ));
            out.samples.push((
                series_labels(labels, "ALERTS_FOR_STATE", None),
                Sample {
                    t: ts_ms,
                    // Prometheus writes ActiveAt in whole seconds (`ActiveAt.Unix()`).
                    v: a.active_at.div_euclid(1000) as f64,
                },
            ));
        }
        for l in remove {
            self.active.remove(&l);
            self.last_sent.remove(&l);
        }
        out
    }

    /// The alerts to hand to the notifier after an evaluation at `ts_ms`, mirroring
    /// Prometheus' `AlertingRule.sendAlerts` and `main.go`'s `sendAlerts`: firing and
    /// resolved (not pending) alerts that resolved since last sent or were last sent
    /// more than `resend_delay_ms` ago. `endsAt` is the resolve time, or for firing alerts
    /// `ValidUntil` = `ts + 4 × max(interval, resend delay)`, so that a receiver resolves
    /// them itself if Picket stops sending. External labels are added where the alert
    /// lacks them; `generatorURL` links the expression in the graph page.
    #[allow(clippy::too_many_arguments)]
    pub fn alerts_to_send(
        &mut self,
        ts_ms: i64,
        resend_delay_ms: i64,
        interval_ms: i64,
        external_labels: &BTreeMap<String, String>,
        external_url: &str,
        expr: &str,
        out: &mut Vec<crate::notify::Alert>,
    ) {
        let valid_for = 4 * resend_delay_ms.max(interval_ms);
        for (labels, a) in &self.active {
            if a.state == AlertState::Pending {
                continue;
            }
            let due = match self.last_sent.get(labels) {
                None => true,
                Some(&last) => a.resolved_at > last || last + resend_delay_ms < ts_ms,
            };
            if !due {
                continue;
            }
            self.last_sent.insert(labels.clone(), ts_ms);
            let mut l: BTreeMap<String, String> = a.labels.iter().cloned().collect();
            for (k, v) in external_labels {
                l.entry(k.clone()).or_insert_with(|| v.clone());
            }
            out.push(crate::notify::Alert {
                labels: l,
                annotations: a.annotations.iter().cloned().collect(),
                starts_at: a.fired_at,
                ends_at: if a.resolved_at != 0 {
                    a.resolved_at
                } else {
                    ts_ms + valid_for
                },
                generator_url: format!(
                    "{}/graph?g0.expr={}&g0.tab=1",
                    external_url.trim_end_matches('/'),
                    form_urlencoded::byte_serialize(expr.as_bytes()).collect::<String>()
                ),
            });
        }
    }

    /// The alerts to persist (all of them: resolved ones too, so a restart keeps
    /// reporting them for the rest of their retention).
    pub fn persisted(&self) -> Vec<Alert> {
        self.active.values().cloned().collect()
    }

    /// Restores alerts saved by [`AlertingRule::persisted`].
    pub fn restore(&mut self, alerts: Vec<Alert>) {
        for a in alerts {
            self.active.insert(a.labels(), a);
        }
    }

    /// After a restart, moves pending alerts' ActiveAt forward by the time Picket was
    /// down, so that the time spent pending before the outage counts toward `for` and the
    /// outage does not (Prometheus `Group.RestoreForState`). `down_at` gives the time of the
    /// alert's last `ALERTS_FOR_STATE` sample within the outage tolerance; a pending alert
    /// without one starts over. Firing alerts stay firing with their ActiveAt: unlike
    /// Prometheus, which restores them as pending for one evaluation, Picket keeps their
    /// whole state, so they do not fire a second time.
    ///
    /// One deliberate difference: Prometheus does not restore rules whose `for` is
    /// shorter than the grace period at all; Picket restores their progress too.
    pub fn shift_pending_after_outage(
        &mut self,
        now_ms: i64,
        down_at: impl Fn(&Labels) -> Option<i64>,
    ) {
        let hold = self.for_ms;
        self.active.retain(|labels, a| {
            if a.state != AlertState::Pending {
                return true;
            }
            let Some(down) = down_at(labels) else {
                return false;
            };
            let remaining = hold - (down - a.active_at);
            if remaining <= 0 {
                // It was due to fire: the next evaluation fires it if still true.
            } else if hold >= FOR_GRACE_PERIOD_MS && remaining < FOR_GRACE_PERIOD_MS {
                a.active_at = now_ms + FOR_GRACE_PERIOD_MS - hold;
            } else {
                a.active_at += (now_ms - down).max(0);
            }
            true
        });
    }

    /// The `ALERTS`/`ALERTS_FOR_STATE` series the active alerts write, so that after a
    /// restart the group can still mark them stale when the alerts end.
    pub fn active_series(&self) -> Vec<Labels> {
        let mut out = Vec::new();
        for (l, a) in &self.active {
            if a.state != AlertState::Inactive {
                out.push(series_labels(l, "ALERTS", Some(a.state)));
                out.push(series_labels(l, "ALERTS_FOR_STATE", None));
            }
        }
        out
    }

    /// Forgets every alert (what Prometheus does when a rule exceeds its group's limit).
    pub fn clear(&mut self) {
        self.active.clear();
        self.last_sent.clear();
    }

    /// What must be saved again when it changes: everything but the value and annotations,
    /// which the next evaluation recomputes anyway (saving them would commit to the SD
    /// card at every evaluation).
    pub fn state_signature(&self) -> StateSignature {
        self.active
            .iter()
            .map(|(l, a)| {
                (
                    l.clone(),
                    a.state,
                    a.active_at,
                    a.fired_at,
                    a.resolved_at,
                    a.keep_firing_since,
                )
            })
            .collect()
    }
}

/// What [`AlertingRule::state_signature`] compares: per alert, its labels, state,
/// ActiveAt, FiredAt, ResolvedAt and KeepFiringSince.
pub type StateSignature = Vec<(Labels, AlertState, i64, i64, i64, i64)>;

/// `ALERTS{alertstate="..."}` / `ALERTS_FOR_STATE` labels for an alert's label set.
fn series_labels(labels: &Labels, name: &str, state: Option<AlertState>) -> Labels {
    let mut b = labels.clone().into_builder();
    b.set(METRIC_NAME, name);
    if let Some(s) = state {
        b.set("alertstate", s.as_str());
    }
    b.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(for_ms: i64, keep_ms: i64) -> AlertingRule {
        let t = |s: &str| Template::parse(s).unwrap();
        AlertingRule::new(
            "HighTemp".into(),
            for_ms,
            keep_ms,
            vec![(
                "severity".into(),
                "{{ if gt $value 80.0 }}critical{{ else }}warning{{ end }}".into(),
                t("{{ if gt $value 80.0 }}critical{{ else }}warning{{ end }}"),
            )],
            vec![(
                "summary".into(),
                "{{ $labels.zone }} at {{ $value }}".into(),
                t("{{ $labels.zone }} at {{ $value }}"),
            )],
        )
    }

    fn sample(zone: &str, v: f64) -> InstantSample {
        InstantSample {
            labels: Labels::from_pairs([("__name__", "temp"), ("zone", zone)]),
            t: 0,
            v,
        }
    }

    fn eval(r: &mut AlertingRule, result: &[InstantSample], ts: i64) -> AlertOutput {
        r.eval(result, ts, &BTreeMap::new(), "", None)
    }

    fn states(r: &AlertingRule) -> Vec<(AlertState, i64)> {
        r.alerts().map(|a| (a.state, a.active_at)).collect()
    }

    #[test]
    fn an_alert_is_pending_until_for_elapses_then_fires() {
        let mut r = rule(2_000, 0);
        let steps: &[(i64, bool, AlertState)] = &[
            (0, false, AlertState::Inactive),
            (1_000, true, AlertState::Pending),
            (2_000, true, AlertState::Pending),
            (3_000, true, AlertState::Firing),
            (4_000, true, AlertState::Firing),
        ];
        for &(ts, present, want) in steps {
            let res: Vec<InstantSample> = if present {
                vec![sample("cpu", 70.0)]
            } else {
                vec![]
            };
            eval(&mut r, &res, ts);
            assert_eq!(r.state(), want, "at {ts}");
        }
        let a = r.alerts().next().unwrap();
        assert_eq!((a.active_at, a.fired_at), (1_000, 3_000));
    }

    #[test]
    fn a_zero_for_fires_at_the_first_evaluation() {
        let mut r = rule(0, 0);
        eval(&mut r, &[sample("cpu", 1.0)], 5_000);
        assert_eq!(r.state(), AlertState::Firing);
    }

    #[test]
    fn a_pending_alert_that_vanishes_is_forgotten() {
        let mut r = rule(10_000, 0);
        eval(&mut r, &[sample("cpu", 1.0)], 0);
        eval(&mut r, &[], 1_000);
        assert_eq!(r.alerts().count(), 0);
        eval(&mut r, &[sample("cpu", 1.0)], 2_000);
        assert_eq!(states(&r), [(AlertState::Pending, 2_000)]);
    }

    #[test]
    fn a_resolved_alert_is_kept_fifteen_minutes_then_dropped() {
        let mut r = rule(0, 0);
        eval(&mut r, &[sample("cpu", 1.0)], 0);
        let out = eval(&mut r, &[], 60_000);
        assert!(out.samples.is_empty());
        let a = r.alerts().next().unwrap();
        assert_eq!((a.state, a.resolved_at), (AlertState::Inactive, 60_000));
        eval(&mut r, &[], 60_000 + RESOLVED_RETENTION_MS);
        assert_eq!(r.alerts().count(), 1, "kept at exactly the retention");
        eval(&mut r, &[], 60_001 + RESOLVED_RETENTION_MS);
        assert_eq!(r.alerts().count(), 0);
    }

    #[test]
    fn a_resolved_alert_that_returns_starts_over_as_a_new_alert() {
        let mut r = rule(5_000, 0);
        eval(&mut r, &[sample("cpu", 1.0)], 0);
        eval(&mut r, &[sample("cpu", 1.0)], 5_000);
        assert_eq!(r.state(), AlertState::Firing);
        eval(&mut r, &[], 6_000);
        eval(&mut r, &[sample("cpu", 1.0)], 7_000);
        assert_eq!(states(&r), [(AlertState::Pending, 7_000)]);
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert_after_its_condition_clears() {
        let mut r = rule(0, 3_000);
        eval(&mut r, &[sample("cpu", 1.0)], 0);
        for (ts, want) in [
            (1_000, AlertState::Firing),
            (2_000, AlertState::Firing),
            (3_000, AlertState::Firing),
            (4_000, AlertState::Inactive),
        ] {
            let out = eval(&mut r, &[], ts);
            assert_eq!(r.state(), want, "at {ts}");
            assert_eq!(out.samples.is_empty(), want == AlertState::Inactive);
        }
        assert_eq!(r.alerts().next().unwrap().keep_firing_since, 1_000);
        // Back in the result while kept firing: keepFiringSince resets.
        let mut r = rule(0, 3_000);
        eval(&mut r, &[sample("cpu", 1.0)], 0);
        eval(&mut r, &[], 1_000);
        eval(&mut r, &[sample("cpu", 1.0)], 2_000);
        assert_eq!(r.alerts().next().unwrap().keep_firing_since, 0);
        assert_eq!(states(&r), [(AlertState::Firing, 0)]);
    }

    #[test]
    fn labels_and_annotations_come_from_templates_at_each_evaluation() {
        let mut r = rule(0, 0);
        eval(&mut r, &[sample("gpu", 70.0)], 0);
        let a = r.alerts().next().unwrap();
        assert_eq!(
            a.labels,
            [
                ("alertname".to_string(), "HighTemp".to_string()),
                ("severity".to_string(), "warning".to_string()),
                ("zone".to_string(), "gpu".to_string()),
            ]
        );
        assert_eq!(a.annotations[0].1, "gpu at 70");
        // The value moves the alert to another label set: a new alert, the old one resolves.
        eval(&mut r, &[sample("gpu", 90.0)], 1_000);
        let got: Vec<(String, AlertState)> = r
            .alerts()
            .map(|a| (a.labels[1].1.clone(), a.state))
            .collect();
        assert_eq!(
            got,
            [
                ("critical".to_string(), AlertState::Firing),
                ("warning".to_string(), AlertState::Inactive)
            ]
        );
        // Annotations follow the value without changing the alert.
        eval(&mut r, &[sample("gpu", 95.0)], 2_000);
        let a = r.alerts().next().unwrap();
        assert_eq!(
            (a.annotations[0].1.as_str(), a.active_at),
            ("gpu at 95", 1_000)
        );
    }

    #[test]
    fn alerts_series_carry_state_and_active_time() {
        let mut r = rule(2_000, 0);
        let out = eval(&mut r, &[sample("cpu", 1.0)], 10_500);
        let text: Vec<String> = out
            .samples
            .iter()
            .map(|(l, s)| format!("{l} {} @{}", s.v, s.t))
            .collect();
        assert_eq!(
            text,
            [
                r#"ALERTS{alertname="HighTemp", alertstate="pending", severity="warning", zone="cpu"} 1 @10500"#,
                r#"ALERTS_FOR_STATE{alertname="HighTemp", severity="warning", zone="cpu"} 10 @10500"#,
            ]
        );
        let out = eval(&mut r, &[sample("cpu", 1.0)], 12_500);
        assert_eq!(out.samples[0].0.get("alertstate"), Some("firing"));
    }

    #[test]
    fn duplicate_label_sets_fail_the_evaluation_and_keep_the_alerts() {
        let mut r = rule(0, 0);
        eval(&mut r, &[sample("a", 1.0)], 0);
        let dup = |v| InstantSample {
            labels: Labels::from_pairs([("__name__", "other"), ("zone", "a")]),
            t: 0,
            v,
        };
        let out = eval(&mut r, &[sample("a", 1.0), dup(1.0)], 1_000);
        assert!(out.error.unwrap().contains("same labelset"));
        assert_eq!(states(&r), [(AlertState::Firing, 0)]);
    }

    #[test]
    fn after_an_outage_pending_alerts_keep_their_progress_but_not_the_downtime() {
        let hold = 20 * 60 * 1000;
        // (active_at, down_at, restart, want active_at; None = dropped)
        let cases: &[(i64, Option<i64>, i64, Option<i64>)] = &[
            // 1 min pending, down 5 min: 19 min left, so ActiveAt moves 5 min on.
            (0, Some(60_000), 360_000, Some(300_000)),
            // 15 min pending (5 left < grace): fires a grace period after the restart.
            (
                0,
                Some(900_000),
                1_000_000,
                Some(1_000_000 + FOR_GRACE_PERIOD_MS - hold),
            ),
            // Due to fire already: unchanged.
            (0, Some(1_300_000), 1_400_000, Some(0)),
            // No record within the outage tolerance: starts over.
            (0, None, 9_000_000, None),
        ];
        for &(active, down, restart, want) in cases {
            let mut r = rule(hold, 0);
            eval(&mut r, &[sample("cpu", 1.0)], active);
            r.shift_pending_after_outage(restart, |_| down);
            assert_eq!(
                r.alerts().next().map(|a| a.active_at),
                want,
                "{active} {down:?}"
            );
        }
        // Firing alerts are left alone.
        let mut r = rule(0, 0);
        eval(&mut r, &[sample("cpu", 1.0)], 5);
        r.shift_pending_after_outage(1_000_000, |_| None);
        assert_eq!(states(&r), [(AlertState::Firing, 5)]);
    }

    #[test]
    fn alerts_are_sent_when_firing_resent_after_the_delay_and_sent_when_resolved() {
        let mut r = rule(1_000, 0);
        let ext: BTreeMap<String, String> = [("node".to_string(), "pi1".to_string())].into();
        let send = |r: &mut AlertingRule, ts| {
            let mut out = Vec::new();
            r.alerts_to_send(
                ts,
                60_000,
                15_000,
                &ext,
                "http://pi:9464/",
                "temp > 1",
                &mut out,
            );
            out
        };
        eval(&mut r, &[sample("cpu", 1.0)], 0);
        assert!(send(&mut r, 0).is_empty(), "pending alerts are not sent");
        eval(&mut r, &[sample("cpu", 1.0)], 15_000);
        let sent = send(&mut r, 15_000);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].starts_at, 15_000);
        assert_eq!(sent[0].ends_at, 15_000 + 4 * 60_000, "ValidUntil");
        assert_eq!(sent[0].labels["node"], "pi1");
        assert_eq!(
            sent[0].generator_url,
            "http://pi:9464/graph?g0.expr=temp+%3E+1&g0.tab=1"
        );
        eval(&mut r, &[sample("cpu", 1.0)], 30_000);
        assert!(send(&mut r, 30_000).is_empty(), "within the resend delay");
        eval(&mut r, &[sample("cpu", 1.0)], 90_000);
        assert_eq!(send(&mut r, 90_000).len(), 1, "resent after the delay");
        eval(&mut r, &[], 105_000);
        let sent = send(&mut r, 105_000);
        assert_eq!(
            sent[0].ends_at, 105_000,
            "resolved: endsAt is the resolve time"
        );
        assert!(send(&mut r, 120_000).is_empty());
    }

    #[test]
    fn restored_state_continues_where_it_left_off() {
        let mut r = rule(10_000, 0);
        eval(&mut r, &[sample("cpu", 1.0)], 0);
        eval(&mut r, &[sample("cpu", 1.0)], 4_000);
        let saved = r.persisted();
        let mut r2 = rule(10_000, 0);
        r2.restore(saved);
        assert_eq!(r2.state_signature(), r.state_signature());
        eval(&mut r2, &[sample("cpu", 1.0)], 9_000);
        assert_eq!(r2.state(), AlertState::Pending);
        eval(&mut r2, &[sample("cpu", 1.0)], 10_000);
        assert_eq!(states(&r2), [(AlertState::Firing, 0)]);
    }
}
