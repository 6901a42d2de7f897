//! Alertmanager delivery against Debian's prometheus-alertmanager: Picket pushes to
//! `/api/v2/alerts` as Prometheus does; the alert appears there with its labels (external
//! labels added) and annotations, then resolves when its condition clears.

mod common;

use common::notify::*;
use common::{Picket, free_port, now_ms, wait_for};
use serde_json::Value;

fn am_alerts(port: u16, name: &str) -> Vec<Value> {
    let r = common::client()
        .get(format!("http://127.0.0.1:{port}/api/v2/alerts"))
        .send()
        .and_then(|r| r.json::<Value>());
    match r {
        Ok(Value::Array(a)) => a
            .into_iter()
            .filter(|a| a["labels"]["alertname"] == name)
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn alerts_appear_in_alertmanager_with_their_labels_then_resolve() {
    let tmp = tempfile::tempdir().unwrap();
    let am_port = free_port();
    let _am = alertmanager(tmp.path(), am_port);
    let rules = tmp.path().join("rules.yml");
    std::fs::write(
        &rules,
        r#"groups:
  - name: am
    rules:
      - alert: DiskFull
        expr: absent(disk_ok)
        labels:
          severity: critical
          mount: /data
        annotations:
          summary: "disk full on {{ $externalLabels.node }}"
"#,
    )
    .unwrap();
    let cfg = config(
        &rules,
        &format!("[[notify.alertmanager]]\nurl = \"http://127.0.0.1:{am_port}\"\n"),
    );
    let p = Picket::start_in(tmp.path(), &tmp.path().join("data"), &cfg);

    let a = wait_for(30, "the alert in Alertmanager", || {
        am_alerts(am_port, "DiskFull").into_iter().next()
    });
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["labels"]["mount"], "/data");
    assert_eq!(a["labels"]["node"], "pi1");
    assert_eq!(a["annotations"]["summary"], "disk full on pi1");
    assert_eq!(a["status"]["state"], "active");
    assert!(
        a["generatorURL"]
            .as_str()
            .unwrap()
            .starts_with("http://pi1:9464/graph?g0.expr=absent")
    );
    // endsAt is ValidUntil: 4 × max(evaluation interval, resend delay) = 4 min ahead.
    let ends = picket::notify::alert::parse_rfc3339(a["endsAt"].as_str().unwrap()).unwrap();
    assert!(ends > now_ms() + 3 * 60_000, "{a}");

    push(&p, "disk_ok");
    // Resolved: Alertmanager drops it from its active alerts (or shows an endsAt passed).
    wait_for(30, "the alert to resolve in Alertmanager", || {
        let list = am_alerts(am_port, "DiskFull");
        let resolved = list.iter().all(|a| {
            a["endsAt"]
                .as_str()
                .and_then(picket::notify::alert::parse_rfc3339)
                .is_some_and(|t| t <= now_ms())
        });
        resolved.then_some(())
    });
    let (_, text) = p.get("/metrics");
    assert!(
        metric(
            &text,
            "picket_notifications_sent_total{receiver=\"alertmanager-0\"}"
        )
        .unwrap()
            >= 2.0,
        "{text}"
    );
    p.stop();
}
