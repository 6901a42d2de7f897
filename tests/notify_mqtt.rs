//! MQTT delivery against Debian's mosquitto: a subscriber sees the node come online, an
//! alert fire and resolve (retained, so a subscriber that connects later sees the current
//! state), and the last will marking the node offline when Picket is SIGKILLed; and an
//! alert that fires while the broker is down arrives exactly once after it is back.

mod common;

use common::notify::*;
use common::tls::{ca_and_leaf, run};
use common::{ChildGuard, Picket, free_port, wait_for, wait_listening};
use serde_json::Value;
use std::time::Duration;

const RULES: &str = r#"groups:
  - name: mqtt
    rules:
      - alert: Fire
        expr: absent(stop_fire)
        labels:
          severity: critical
        annotations:
          summary: "fire on {{ $externalLabels.node }}"
      - alert: Later
        expr: go > 0
        labels:
          severity: warning
"#;

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("payload is not JSON ({e}): {s}"))
}

#[test]
fn firing_resolved_retained_state_and_last_will_reach_a_subscriber() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = mosquitto(tmp.path(), port);
    let sub = Subscriber::connect(port, "early", "picket/#");
    let rules = tmp.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let cfg = config(
        &rules,
        &format!(
            "[[notify.mqtt]]\nurl = \"mqtt://127.0.0.1:{port}\"\ntopic = \"picket/{{node}}/alerts/{{alertname}}\"\n"
        ),
    );
    let mut p = Picket::start_in(tmp.path(), &tmp.path().join("data"), &cfg);

    let online = sub.wait(20, "picket/pi1/status", |m| m == "online");
    assert!(online.retain || sub.on("picket/pi1/status").len() == 1);
    let fire = sub.wait(20, "picket/pi1/alerts/Fire", |m| m.contains("\"firing\""));
    let v = json(&fire.payload);
    assert_eq!(v["status"], "firing");
    assert_eq!(v["node"], "pi1");
    assert_eq!(v["alertname"], "Fire");
    assert_eq!(v["labels"]["severity"], "critical");
    assert_eq!(v["labels"]["node"], "pi1", "external labels are added");
    assert_eq!(v["annotations"]["summary"], "fire on pi1");
    assert_eq!(v["fingerprint"].as_str().unwrap().len(), 16);
    assert!(
        v["generatorURL"]
            .as_str()
            .unwrap()
            .starts_with("http://pi1:9464/graph?g0.expr=")
    );

    // A subscriber connecting now gets the current state at once, as retained messages.
    let late = Subscriber::connect(port, "late", "picket/pi1/#");
    let m = late.wait(10, "picket/pi1/alerts/Fire", |m| m.contains("\"firing\""));
    assert!(m.retain, "the alert state is retained");
    let st = late.wait(10, "picket/pi1/status", |m| m == "online");
    assert!(st.retain);

    // Resolve: the resolved state replaces the retained firing one.
    push(&p, "stop_fire");
    let resolved = sub.wait(20, "picket/pi1/alerts/Fire", |m| m.contains("\"resolved\""));
    let v = json(&resolved.payload);
    assert_ne!(v["endsAt"], "0001-01-01T00:00:00Z");
    let later = Subscriber::connect(port, "later", "picket/pi1/alerts/#");
    let m = later.wait(10, "picket/pi1/alerts/Fire", |_| true);
    assert!(m.retain && m.payload.contains("\"resolved\""), "{m:?}");

    // SIGKILL: no goodbye, so the broker publishes the last will.
    p.child.kill().unwrap();
    p.child.wait().unwrap();
    let will = sub.wait(20, "picket/pi1/status", |m| m == "offline");
    assert_eq!(will.payload, "offline");
}

#[test]
fn an_alert_firing_while_the_broker_is_down_arrives_once_when_it_is_back() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let broker = mosquitto(tmp.path(), port);
    let rules = tmp.path().join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    let cfg = config(
        &rules,
        &format!("[[notify.mqtt]]\nurl = \"mqtt://127.0.0.1:{port}\"\n"),
    );
    let p = Picket::start_in(tmp.path(), &tmp.path().join("data"), &cfg);
    let sub = Subscriber::connect(port, "watch", "picket/#");
    sub.wait(20, "picket/pi1/status", |m| m == "online");
    sub.wait(20, "picket/pi1/alerts/Fire", |m| m.contains("firing"));
    assert!(sub.on("picket/pi1/alerts/Later").is_empty());
    drop(sub);

    // The broker goes away; `Later` starts firing and waits in the outbox.
    drop(broker);
    push(&p, "go");
    wait_for(20, "the notification to be queued", || {
        let (_, text) = p.get("/metrics");
        (metric(
            &text,
            "picket_notifications_queue_length{receiver=\"mqtt-0\"}",
        )? >= 1.0)
            .then_some(())
    });
    // Keep pushing so the alert stays firing across the outage.
    for _ in 0..3 {
        push(&p, "go");
        std::thread::sleep(Duration::from_millis(500));
    }

    // Back on the same port (empty: no persistence), with a subscriber waiting.
    let _broker = mosquitto(tmp.path(), port);
    let sub = Subscriber::connect(port, "watch2", "picket/#");
    let m = sub.wait(30, "picket/pi1/alerts/Later", |m| m.contains("\"firing\""));
    assert!(json(&m.payload)["labels"]["severity"] == "warning");
    // Several evaluation and group intervals later it is still the only one.
    for _ in 0..4 {
        push(&p, "go");
        std::thread::sleep(Duration::from_millis(1000));
    }
    let got = sub.on("picket/pi1/alerts/Later");
    assert_eq!(got.len(), 1, "exactly once: {got:?}");
    let (_, text) = p.get("/metrics");
    assert_eq!(
        metric(
            &text,
            "picket_notifications_queue_length{receiver=\"mqtt-0\"}"
        ),
        Some(0.0)
    );
    p.stop();
    // A clean stop says offline itself.
    sub.wait(10, "picket/pi1/status", |m| m == "offline");
}

#[test]
fn mqtts_with_credentials_verifies_the_broker_against_ca_file() {
    // A throwaway CA and a leaf for 127.0.0.1; mosquitto serves TLS with a password file
    // on one listener and plain anonymous MQTT (for the test's subscriber) on another.
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    ca_and_leaf(d);
    run(
        d,
        "mosquitto_passwd",
        &["-b", "-c", "pw", "picket", "s3cret"],
    );
    // mosquitto started as root drops to its own user before reading some files.
    use std::os::unix::fs::PermissionsExt;
    for f in [".", "leaf.pem", "leaf.key", "pw"] {
        std::fs::set_permissions(d.join(f), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let (tls_port, plain_port) = (free_port(), free_port());
    let conf = d.join("tls.conf");
    std::fs::write(
        &conf,
        format!(
            "per_listener_settings true\npersistence false\n\
             listener {tls_port} 127.0.0.1\ncertfile {0}/leaf.pem\nkeyfile {0}/leaf.key\npassword_file {0}/pw\nallow_anonymous false\n\
             listener {plain_port} 127.0.0.1\nallow_anonymous true\n",
            d.display()
        ),
    )
    .unwrap();
    let mut child = std::process::Command::new(common::bins::MOSQUITTO)
        .arg("-c")
        .arg(&conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start mosquitto");
    wait_listening(plain_port, &mut child, "mosquitto with TLS");
    let _broker = ChildGuard(child);
    let sub = Subscriber::connect(plain_port, "plain", "picket/#");
    let rules = d.join("rules.yml");
    std::fs::write(&rules, RULES).unwrap();
    // Without the CA (Mozilla's roots) the broker is not trusted: nothing is delivered.
    let untrusted = config(
        &rules,
        &format!(
            "[[notify.mqtt]]\nurl = \"mqtts://127.0.0.1:{tls_port}\"\nusername = \"picket\"\npassword = \"s3cret\"\n"
        ),
    );
    let p = Picket::start_in(d, &d.join("data"), &untrusted);
    wait_for(20, "a failed TLS connection", || {
        let (_, text) = p.get("/metrics");
        (metric(
            &text,
            "picket_notifications_failed_total{receiver=\"mqtt-0\"}",
        )? >= 1.0)
            .then_some(())
    });
    p.stop();
    assert!(
        sub.on("picket/pi1/status").is_empty(),
        "{:?}",
        sub.on("picket/pi1/status")
    );

    let cfg = config(
        &rules,
        &format!(
            "[[notify.mqtt]]\nurl = \"mqtts://127.0.0.1:{tls_port}\"\nca_file = \"{}/ca.pem\"\nusername = \"picket\"\npassword = \"s3cret\"\n",
            d.display()
        ),
    );
    let p = Picket::start_in(d, &d.join("data"), &cfg);
    sub.wait(20, "picket/pi1/status", |m| m == "online");
    sub.wait(20, "picket/pi1/alerts/Fire", |m| m.contains("\"firing\""));
    p.stop();
}
