//! Webhook delivery to a local HTTP receiver: Alertmanager's webhook payload (version 4)
//! with the configured headers and auth; a notification queued while the receiver is down
//! survives a Picket restart in the outbox and is delivered once when the receiver is up;
//! silences (created and expired with `picket silence`) and `inhibit_rules` keep alerts
//! quiet until they end; a receiver answering 503 gets the notification again, with
//! backoff, until it takes it.

mod common;

use common::notify::*;
use common::{Picket, free_port, picket_cli, wait_for};
use serde_json::Value;
use std::time::Duration;

const RULES: &str = r#"groups:
  - name: hooks
    rules:
      - alert: Fire
        expr: absent(stop_fire)
        labels:
          severity: critical
        annotations:
          summary: fire
      - alert: Smoke
        expr: vector(1)
        labels:
          severity: warning
      - alert: Muted
        expr: mute_me > 0
        labels:
          severity: info
"#;

/// Notifications for `alertname` with `status`.
fn notes(r: &HttpReceiver, alertname: &str, status: &str) -> Vec<Value> {
    r.bodies()
        .into_iter()
        .filter(|b| b["groupLabels"]["alertname"] == alertname && b["status"] == status)
        .collect()
}

fn is_time(v: &Value) -> bool {
    v.as_str()
        .and_then(picket::notify::alert::parse_rfc3339)
        .is_some()
}

#[test]
fn webhook_payload_outbox_across_restart_silences_and_inhibition() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let rules = tmp.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let cfg = config(
        &rules,
        &format!(
            "[[notify.inhibit_rules]]\nsource_matchers = ['alertname=\"Fire\"']\n\
             target_matchers = ['severity=\"warning\"']\nequal = [\"node\"]\n\
             [[notify.webhook]]\nurl = \"http://127.0.0.1:{port}/hook\"\nbearer_token = \"s3cret\"\n\
             headers = {{ X-Test = \"yes\" }}\n"
        ),
    );
    let data = tmp.path().join("data");

    // Receiver down: the notification waits in the outbox, through a restart.
    let p = Picket::start_in(tmp.path(), &data, &cfg);
    wait_for(20, "the Fire notification to be queued", || {
        let (_, text) = p.get("/metrics");
        (metric(
            &text,
            "picket_notifications_queue_length{receiver=\"webhook-0\"}",
        )? >= 1.0)
            .then_some(())
    });
    let server = p.url("");
    let (ok, id, err) = picket_cli(&[
        "silence",
        "add",
        "Muted",
        "--duration",
        "1h",
        "--comment",
        "maintenance",
        "--author",
        "ops",
        "--server",
        &server,
    ]);
    assert!(ok, "{err}");
    let id = id.trim().to_string();
    assert_eq!(id.len(), 36, "{id}");
    push(&p, "mute_me");
    std::thread::sleep(Duration::from_millis(1500));
    p.stop();

    let receiver = HttpReceiver::start(port);
    let p = Picket::start_in(tmp.path(), &data, &cfg);
    let server = p.url("");
    let fire = wait_for(30, "the Fire notification", || {
        notes(&receiver, "Fire", "firing").into_iter().next()
    });
    assert_eq!(fire["version"], "4");
    assert_eq!(fire["receiver"], "webhook-0");
    assert_eq!(fire["truncatedAlerts"], 0);
    assert_eq!(fire["externalURL"], "http://pi1:9464");
    assert!(
        fire["groupKey"]
            .as_str()
            .unwrap()
            .contains("alertname=\"Fire\"")
    );
    assert_eq!(fire["commonLabels"]["severity"], "critical");
    assert_eq!(fire["commonLabels"]["node"], "pi1");
    assert_eq!(fire["commonAnnotations"]["summary"], "fire");
    let a = &fire["alerts"][0];
    assert_eq!(a["status"], "firing");
    assert_eq!(a["labels"]["alertname"], "Fire");
    assert!(is_time(&a["startsAt"]) && is_time(&a["endsAt"]), "{a}");
    assert_eq!(a["fingerprint"].as_str().unwrap().len(), 16);
    assert!(
        a["generatorURL"]
            .as_str()
            .unwrap()
            .contains("g0.expr=absent")
    );
    let req = receiver.requests.lock().unwrap()[0].clone();
    assert_eq!(req.path, "/hook");
    assert!(req.headers.contains(&("x-test".into(), "yes".into())));
    assert!(
        req.headers
            .contains(&("authorization".into(), "Bearer s3cret".into()))
    );

    // Silenced and inhibited alerts stay quiet; the restart did not notify Fire again.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        notes(&receiver, "Fire", "firing").len(),
        1,
        "{:?}",
        receiver.bodies()
    );
    assert!(notes(&receiver, "Muted", "firing").is_empty());
    assert!(
        notes(&receiver, "Smoke", "firing").is_empty(),
        "inhibited by Fire"
    );

    // The silence is listed, then expired: Muted is notified.
    let (ok, list, err) = picket_cli(&["silence", "list", "--server", &server]);
    assert!(ok, "{err}");
    assert!(
        list.contains(&id) && list.contains("active") && list.contains("alertname=\"Muted\""),
        "{list}"
    );
    let (ok, _, err) = picket_cli(&["silence", "expire", &id, "--server", &server]);
    assert!(ok, "{err}");
    wait_for(20, "Muted after its silence expired", || {
        notes(&receiver, "Muted", "firing").into_iter().next()
    });
    let (ok, _, err) = picket_cli(&["silence", "expire", &id, "--server", &server]);
    assert!(!ok && err.contains("already expired"), "{err}");

    // Fire resolves: a resolved notification, and Smoke is no longer inhibited.
    push(&p, "stop_fire");
    let resolved = wait_for(20, "Fire resolved", || {
        notes(&receiver, "Fire", "resolved").into_iter().next()
    });
    assert_eq!(resolved["alerts"][0]["status"], "resolved");
    wait_for(20, "Smoke once Fire resolved", || {
        notes(&receiver, "Smoke", "firing").into_iter().next()
    });

    // A bad silence is refused in Prometheus' error shape.
    let r = common::client()
        .post(p.url("/api/v2/silences"))
        .body(
            r#"{"matchers":[],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2027-01-01T00:00:00Z"}"#,
        )
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let v: Value = r.json().unwrap();
    assert_eq!(
        (v["status"].as_str(), v["errorType"].as_str()),
        (Some("error"), Some("bad_data"))
    );
    p.stop();
}

#[test]
fn a_failing_webhook_is_retried_with_backoff_until_it_accepts() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let receiver = HttpReceiver::start_failing(port, 2);
    let rules = tmp.path().join("rules.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: r\n    rules:\n      - alert: Retry\n        expr: vector(1)\n",
    )
    .unwrap();
    let cfg = config(
        &rules,
        &format!(
            "[[notify.webhook]]\nurl = \"http://127.0.0.1:{port}/\"\n\
             body_template = '{{{{ .Status }}}} {{{{ range .Alerts }}}}{{{{ .Labels.alertname }}}}{{{{ end }}}}'\n\
             content_type = \"text/plain\"\n"
        ),
    );
    let p = Picket::start_in(tmp.path(), &tmp.path().join("data"), &cfg);
    wait_for(30, "three attempts", || {
        (receiver.requests.lock().unwrap().len() >= 3).then_some(())
    });
    std::thread::sleep(Duration::from_secs(2));
    let reqs = receiver.requests.lock().unwrap().clone();
    assert_eq!(
        reqs.len(),
        3,
        "two refused, one accepted, no more: {reqs:?}"
    );
    // The same notification each time, rendered by the body template.
    assert!(reqs.iter().all(|r| r.body == "firing Retry"), "{reqs:?}");
    assert!(
        reqs[0]
            .headers
            .contains(&("content-type".into(), "text/plain".into()))
    );
    let (_, text) = p.get("/metrics");
    assert_eq!(
        metric(
            &text,
            "picket_notifications_failed_total{receiver=\"webhook-0\"}"
        ),
        Some(2.0)
    );
    assert_eq!(
        metric(
            &text,
            "picket_notifications_sent_total{receiver=\"webhook-0\"}"
        ),
        Some(1.0)
    );
    p.stop();
}
