//! Group evaluation over a real store in a temp dir, driven by explicit timestamps.

use super::*;
use crate::ingest::Ingest;
use crate::model::{Labels, Matcher, Sample, is_stale_nan};
use crate::query::SeriesReader;
use crate::query::promql::eval::EngineOptions;
use crate::rules::alerting::AlertState;
use crate::store::{Store, WriteBatch};
use std::collections::BTreeMap;

const RULES: &str = r#"
groups:
  - name: g
    interval: 1s
    rules:
      - record: job:temp:max
        expr: max by (job) (temp)
      - alert: Hot
        expr: job:temp:max > 50
        for: 2s
        labels:
          severity: "{{ if gt $value 80.0 }}critical{{ else }}warning{{ end }}"
        annotations:
          summary: "{{ $labels.job }} is at {{ $value }} on {{ $externalLabels.node }}"
"#;

fn manager(store: &Store) -> RuleManager {
    manager_at(store, 0)
}

/// A manager (re)started at `now` on the fake clock.
fn manager_at(store: &Store, now: i64) -> RuleManager {
    let groups = file::parse_file(RULES, "r.yml").unwrap();
    RuleManager::new_at(
        groups,
        60_000,
        RuleContext {
            store: store.clone(),
            ingest: Ingest::new(store.clone()),
            engine: EngineOptions::default(),
            external_labels: BTreeMap::from([("node".to_string(), "pi1".to_string())]),
            external_url: String::new(),
            notify: None,
            resend_delay_ms: 60_000,
        },
        now,
    )
}

fn write_temp(store: &Store, t: i64, v: f64) {
    store
        .append(WriteBatch {
            series: vec![(
                Labels::from_pairs([("__name__", "temp"), ("job", "node"), ("zone", "cpu")]),
                vec![Sample { t, v }],
            )],
            metadata: vec![],
        })
        .unwrap();
}

fn eval(m: &RuleManager, ts: i64) {
    m.groups()[0].eval(&m.ctx, ts);
}

fn alert_states(m: &RuleManager) -> Vec<(AlertState, i64)> {
    m.groups()[0].view()[1]
        .alerting
        .as_ref()
        .unwrap()
        .alerts
        .iter()
        .map(|a| (a.state, a.active_at))
        .collect()
}

fn values(store: &Store, name: &str, extra: Option<(&str, &str)>) -> Vec<(i64, f64)> {
    let mut m = vec![Matcher::equal("__name__", name)];
    if let Some((k, v)) = extra {
        m.push(Matcher::equal(k, v));
    }
    store
        .select(&m, 0, i64::MAX / 2)
        .unwrap()
        .into_iter()
        .flat_map(|s| s.samples)
        .map(|s| (s.t, s.v))
        .collect()
}

#[test]
fn a_group_records_then_alerts_pending_then_firing_over_its_own_output() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_for_test(dir.path());
    let m = manager(&store);
    write_temp(&store, 9_000, 60.0);
    eval(&m, 10_000);
    // The recording rule's output was visible to the alert in the same evaluation.
    assert_eq!(values(&store, "job:temp:max", None), [(10_000, 60.0)]);
    assert_eq!(alert_states(&m), [(AlertState::Pending, 10_000)]);
    eval(&m, 11_000);
    assert_eq!(alert_states(&m), [(AlertState::Pending, 10_000)]);
    eval(&m, 12_000);
    assert_eq!(alert_states(&m), [(AlertState::Firing, 10_000)]);
    let view = m.groups()[0].view();
    let a = &view[1].alerting.as_ref().unwrap().alerts[0];
    assert_eq!(a.annotations[0].1, "node is at 60 on pi1");
    assert!(a.labels.contains(&("severity".into(), "warning".into())));
    assert_eq!(view[1].status.health, group::Health::Ok);
    assert_eq!(view[1].status.last_evaluation_ms, 12_000);
    assert_eq!(
        values(&store, "ALERTS", Some(("alertstate", "firing"))),
        [(12_000, 1.0)]
    );
    assert_eq!(
        values(&store, "ALERTS", Some(("alertstate", "pending"))).len(),
        3,
        "two pending samples and the staleness marker when it started firing"
    );
    assert_eq!(values(&store, "ALERTS_FOR_STATE", None)[2], (12_000, 10.0));
    store.close().unwrap();
}

#[test]
fn series_that_stop_get_staleness_markers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_for_test(dir.path());
    let m = manager(&store);
    write_temp(&store, 9_000, 60.0);
    eval(&m, 10_000);
    // 5 minutes later the input is gone (past the lookback delta): everything stops.
    eval(&m, 10_000 + 301_000);
    let rec = values(&store, "job:temp:max", None);
    assert_eq!(rec.len(), 2);
    assert!(is_stale_nan(rec[1].1), "{rec:?}");
    let pending = values(&store, "ALERTS", Some(("alertstate", "pending")));
    assert!(is_stale_nan(pending.last().unwrap().1), "{pending:?}");
    assert!(
        alert_states(&m).is_empty(),
        "a pending alert that vanishes is dropped"
    );
    store.close().unwrap();
}

#[test]
fn evaluation_errors_show_as_rule_health_and_do_not_stop_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_for_test(dir.path());
    let text = r#"
groups:
  - name: e
    rules:
      - record: dup
        expr: label_replace(vector(1), "a", "x", "", "") or label_replace(vector(2), "a", "y", "", "")
        labels:
          a: z
      - record: fine
        expr: vector(3)
"#;
    let m = RuleManager::new(
        file::parse_file(text, "e.yml").unwrap(),
        1_000,
        RuleContext {
            store: store.clone(),
            ingest: Ingest::new(store.clone()),
            engine: EngineOptions::default(),
            external_labels: BTreeMap::new(),
            external_url: String::new(),
            notify: None,
            resend_delay_ms: 60_000,
        },
    );
    m.groups()[0].eval(&m.ctx, 5_000);
    let v = m.groups()[0].view();
    assert_eq!(v[0].status.health, group::Health::Err);
    assert!(
        v[0].status.last_error.contains("same labelset"),
        "{}",
        v[0].status.last_error
    );
    assert_eq!(v[1].status.health, group::Health::Ok);
    assert_eq!(values(&store, "fine", None), [(5_000, 3.0)]);
    assert!(values(&store, "dup", None).is_empty());
    store.close().unwrap();
}

#[test]
fn alert_state_survives_a_restart_without_refiring() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_for_test(dir.path());
    let m = manager(&store);
    write_temp(&store, 9_000, 60.0);
    eval(&m, 10_000);
    eval(&m, 12_000);
    assert_eq!(alert_states(&m), [(AlertState::Firing, 10_000)]);
    drop(m);
    store.close().unwrap();

    let store = Store::open_for_test(dir.path());
    let m = manager(&store);
    assert_eq!(
        alert_states(&m),
        [(AlertState::Firing, 10_000)],
        "restored before any evaluation"
    );
    write_temp(&store, 19_000, 60.0);
    eval(&m, 20_000);
    assert_eq!(alert_states(&m), [(AlertState::Firing, 10_000)]);
    drop(m);
    store.close().unwrap();
}

#[test]
fn alerts_that_end_after_a_restart_still_get_staleness_markers() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_for_test(dir.path());
    let m = manager(&store);
    write_temp(&store, 9_000, 60.0);
    eval(&m, 10_000);
    eval(&m, 12_000);
    drop(m);
    store.close().unwrap();
    let store = Store::open_for_test(dir.path());
    let m = manager(&store);
    write_temp(&store, 19_000, 10.0);
    eval(&m, 20_000);
    assert_eq!(alert_states(&m), [(AlertState::Inactive, 10_000)]);
    let firing = values(&store, "ALERTS", Some(("alertstate", "firing")));
    assert_eq!(firing.len(), 2, "{firing:?}");
    assert!(
        is_stale_nan(firing[1].1) && firing[1].0 == 20_000,
        "{firing:?}"
    );
    drop(m);
    store.close().unwrap();
}

#[test]
fn a_pending_alert_keeps_its_progress_but_not_the_downtime_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_for_test(dir.path());
    let m = manager(&store);
    write_temp(&store, 9_000, 60.0);
    eval(&m, 10_000);
    eval(&m, 11_000);
    drop(m);
    store.close().unwrap();
    // Down from 11 s to 20 s: 1 s of the 2 s `for` was spent, 1 s is left.
    let store = Store::open_for_test(dir.path());
    let m = manager_at(&store, 20_000);
    assert_eq!(alert_states(&m), [(AlertState::Pending, 19_000)]);
    write_temp(&store, 19_500, 60.0);
    eval(&m, 20_000);
    assert_eq!(alert_states(&m), [(AlertState::Pending, 19_000)]);
    eval(&m, 21_000);
    assert_eq!(alert_states(&m), [(AlertState::Firing, 19_000)]);
    drop(m);
    store.close().unwrap();
}

#[test]
fn groups_evaluate_at_aligned_times_offset_per_group() {
    let g = Group::new(
        file::parse_file(
            "groups:\n  - name: a\n    interval: 10s\n    rules: []\n",
            "f",
        )
        .unwrap()
        .remove(0),
        60_000,
    );
    let t = g.eval_timestamp(1_000_000);
    assert!(t <= 1_000_000 && 1_000_000 - t < 10_000);
    assert_eq!(g.eval_timestamp(t), t);
    assert_eq!(g.eval_timestamp(t + 9_999), t);
    assert_eq!(g.eval_timestamp(t + 10_000), t + 10_000);
}

#[test]
fn rule_file_globs_expand_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    for n in ["b.yml", "a.yml", "c.yaml"] {
        std::fs::write(dir.path().join(n), "groups: []\n").unwrap();
    }
    let pat = format!("{}/*.yml", dir.path().display());
    let files = expand_rule_files(&[pat]).unwrap();
    let names: Vec<_> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["a.yml", "b.yml"]);
    assert!(wildcard("node-*.y?ml", "node-pi.yaml"));
    assert!(!wildcard("*.yml", "x.yaml"));
}

#[test]
fn the_shipped_default_rules_are_valid() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/config/rules");
    let groups = load_rule_files(&[format!("{dir}/*.yml")]).unwrap_or_else(|e| {
        panic!(
            "{}",
            e.iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let names: Vec<&str> = groups
        .iter()
        .flat_map(|g| g.rules.iter().map(|r| r.name.as_str()))
        .collect();
    for want in [
        "NodeDown",
        "NodeRestarted",
        "DiskWillFillIn24Hours",
        "MemoryPressure",
        "CpuTemperatureHigh",
        "CpuThrottled",
        "FilesystemReadOnly",
        "ScrapeTargetDown",
        "ForwardLagHigh",
        "StoreNearBudget",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
}

#[test]
fn annotation_templates_can_query_the_store_at_the_evaluation_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_for_test(dir.path());
    let text = r#"
groups:
  - name: q
    rules:
      - alert: Many
        expr: count(temp) > 0
        annotations:
          zones: '{{ range query "temp" | sortByLabel "zone" }}{{ .Labels.zone }}={{ .Value }} {{ end }}'
          bad: '{{ query "sum(" }}'
"#;
    let m = RuleManager::new(
        file::parse_file(text, "q.yml").unwrap(),
        1_000,
        RuleContext {
            store: store.clone(),
            ingest: Ingest::new(store.clone()),
            engine: EngineOptions::default(),
            external_labels: BTreeMap::new(),
            external_url: String::new(),
            notify: None,
            resend_delay_ms: 60_000,
        },
    );
    write_temp(&store, 9_000, 60.0);
    // A sample after the evaluation time must not be seen by the template's query.
    store
        .append(WriteBatch {
            series: vec![(
                Labels::from_pairs([("__name__", "temp"), ("zone", "gpu")]),
                vec![Sample { t: 11_000, v: 1.0 }],
            )],
            metadata: vec![],
        })
        .unwrap();
    m.groups()[0].eval(&m.ctx, 10_000);
    let v = m.groups()[0].view();
    let a = &v[0].alerting.as_ref().unwrap().alerts[0];
    let ann: BTreeMap<_, _> = a.annotations.iter().cloned().collect();
    assert_eq!(ann["zones"], "cpu=60 ");
    assert!(
        ann["bad"].starts_with("<error expanding template: 1:5: parse error"),
        "{}",
        ann["bad"]
    );
    store.close().unwrap();
}

fn manager_for(store: &Store, text: &str) -> RuleManager {
    RuleManager::new_at(
        file::parse_file(text, "t.yml").unwrap(),
        1_000,
        RuleContext {
            store: store.clone(),
            ingest: Ingest::new(store.clone()),
            engine: EngineOptions::default(),
            external_labels: BTreeMap::new(),
            external_url: String::new(),
            notify: None,
            resend_delay_ms: 60_000,
        },
        0,
    )
}

#[test]
fn query_offset_evaluates_and_writes_at_the_earlier_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_for_test(dir.path());
    let m = manager_for(
        &store,
        "groups:\n  - name: o\n    query_offset: 5s\n    rules:\n      - record: t2\n        expr: temp * 2\n",
    );
    write_temp(&store, 4_000, 10.0);
    write_temp(&store, 9_000, 20.0);
    m.groups()[0].eval(&m.ctx, 10_000);
    assert_eq!(values(&store, "t2", None), [(5_000, 20.0)]);
    store.close().unwrap();
}

#[test]
fn a_group_limit_fails_rules_with_too_many_series_or_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_for_test(dir.path());
    let m = manager_for(
        &store,
        "groups:\n  - name: l\n    limit: 1\n    rules:\n      - record: many\n        expr: temp\n      - alert: Many\n        expr: temp > 0\n      - record: one\n        expr: max(temp)\n",
    );
    for zone in ["a", "b"] {
        store
            .append(WriteBatch {
                series: vec![(
                    Labels::from_pairs([("__name__", "temp"), ("zone", zone)]),
                    vec![Sample { t: 9_000, v: 1.0 }],
                )],
                metadata: vec![],
            })
            .unwrap();
    }
    m.groups()[0].eval(&m.ctx, 10_000);
    let v = m.groups()[0].view();
    assert_eq!(v[0].status.last_error, "exceeded limit of 1 with 2 series");
    assert_eq!(v[1].status.last_error, "exceeded limit of 1 with 2 alerts");
    assert!(v[1].alerting.as_ref().unwrap().alerts.is_empty());
    assert_eq!(v[2].status.health, group::Health::Ok);
    assert!(values(&store, "many", None).is_empty());
    assert!(values(&store, "ALERTS", None).is_empty());
    store.close().unwrap();
}
