//! The rules engine end to end with the real binary: a recording rule and an alert with
//! `for: 2s` at a 1 s evaluation interval over data pushed by remote_write, seen through
//! `/api/v1/rules`, `/api/v1/alerts` and queries; a restart keeps the alert firing with the
//! same `activeAt`; and `picket check rules` on a good and a broken file.

mod common;

use common::{Picket, QUIET_CONFIG, now_ms, series, wait_for, write_request};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const RULES: &str = r#"groups:
  - name: temps
    rules:
      - record: job:temp:max
        expr: max by (job) (temp)
      - alert: Hot
        expr: job:temp:max > 50
        for: 2s
        labels:
          severity: warning
        annotations:
          summary: "{{ $labels.job }} at {{ $value }} on {{ $externalLabels.node }}"
  - name: empty
    interval: 5s
    rules: []
"#;

fn config(rules_file: &Path) -> String {
    format!(
        "{QUIET_CONFIG}[rules]\nrule_files = [{:?}]\nevaluation_interval = \"1s\"\n[rules.external_labels]\nnode = \"pi1\"\n",
        rules_file.display().to_string()
    )
}

fn alerts(p: &Picket) -> Vec<Value> {
    let (code, v) = p.get_json("/api/v1/alerts");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "success");
    v["data"]["alerts"]
        .as_array()
        .expect("alerts array")
        .clone()
}

fn is_rfc3339(s: &Value) -> bool {
    s.as_str()
        .is_some_and(|s| s.len() >= 20 && s.as_bytes()[10] == b'T' && s.ends_with('Z'))
}

#[test]
fn rules_record_and_alert_over_pushed_data_and_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let rules_file = tmp.path().join("temps.yml");
    std::fs::write(&rules_file, RULES).unwrap();
    let data = tmp.path().join("data");
    let p = Picket::start_in(tmp.path(), &data, &config(&rules_file));

    // Before any data: the rules are listed, never evaluated or evaluated to nothing.
    let (code, v) = p.get_json("/api/v1/rules");
    assert_eq!(code, 200, "{v}");
    let group = &v["data"]["groups"][0];
    assert_eq!(group["name"], "temps");
    assert_eq!(group["file"], rules_file.display().to_string());
    assert_eq!(group["interval"], 1);
    assert!(is_rfc3339(&group["lastEvaluation"]), "{group}");
    assert!(group["evaluationTime"].is_number());

    let t = now_ms();
    let (code, body) = p.remote_write(
        &write_request(vec![series(
            &[("__name__", "temp"), ("job", "node"), ("zone", "cpu")],
            &[(t, 60.0)],
        )]),
        None,
    );
    assert_eq!(code, 204, "{body}");

    let pending = wait_for(10, "a pending alert", || {
        alerts(&p).into_iter().find(|a| a["state"] == "pending")
    });
    assert_eq!(pending["labels"]["alertname"], "Hot");
    assert_eq!(pending["labels"]["job"], "node");
    assert_eq!(pending["labels"]["severity"], "warning");
    assert_eq!(pending["annotations"]["summary"], "node at 60 on pi1");
    assert_eq!(pending["value"], "6e+01");
    assert!(is_rfc3339(&pending["activeAt"]), "{pending}");
    let active_at = pending["activeAt"].clone();

    let firing = wait_for(10, "the alert to fire", || {
        alerts(&p).into_iter().find(|a| a["state"] == "firing")
    });
    assert_eq!(
        firing["activeAt"], active_at,
        "firing keeps the time it became active"
    );

    let (_, v) = p.get_json("/api/v1/rules");
    let rules = v["data"]["groups"][0]["rules"].as_array().unwrap().clone();
    assert_eq!(rules.len(), 2);
    let rec = &rules[0];
    assert_eq!(rec["type"], "recording");
    assert_eq!(rec["name"], "job:temp:max");
    assert_eq!(rec["query"], "max by (job) (temp)");
    assert_eq!(rec["health"], "ok");
    assert!(is_rfc3339(&rec["lastEvaluation"]), "{rec}");
    let alert = &rules[1];
    assert_eq!(alert["type"], "alerting");
    assert_eq!(alert["state"], "firing");
    assert_eq!(alert["duration"], 2);
    assert_eq!(alert["keepFiringFor"], 0);
    assert_eq!(alert["labels"]["severity"], "warning");
    assert_eq!(
        alert["annotations"]["summary"],
        "{{ $labels.job }} at {{ $value }} on {{ $externalLabels.node }}"
    );
    assert_eq!(alert["alerts"][0]["state"], "firing");
    assert_eq!(alert["health"], "ok");
    // Prometheus' filters.
    let (_, v) = p.get_json("/api/v1/rules?type=record");
    assert_eq!(v["data"]["groups"][0]["rules"].as_array().unwrap().len(), 1);
    let (_, v) = p.get_json("/api/v1/rules?rule_group[]=nosuch&group[]=ignored");
    assert_eq!(v["data"]["groups"].as_array().unwrap().len(), 0);
    let (code, _) = p.get_json("/api/v1/rules?type=bogus");
    assert_eq!(code, 400);
    // Paging (Prometheus 3.x `group_limit` / `group_next_token`).
    let (_, v) = p.get_json("/api/v1/rules?group_limit=1");
    assert_eq!(v["data"]["groups"].as_array().unwrap().len(), 1);
    let token = v["data"]["groupNextToken"]
        .as_str()
        .expect("a next token")
        .to_string();
    let (_, v) = p.get_json(&format!(
        "/api/v1/rules?group_limit=1&group_next_token={token}"
    ));
    assert_eq!(v["data"]["groups"][0]["name"], "empty");
    assert_eq!(v["data"]["groups"][0]["interval"], 5);
    assert!(v["data"].get("groupNextToken").is_none(), "{v}");
    let (code, _) = p.get_json("/api/v1/rules?group_next_token=nosuch");
    assert_eq!(code, 400);

    // The recording rule's output and the ALERTS series are in the store.
    let now = format!("{}", now_ms() as f64 / 1000.0);
    let rec = p.query("job:temp:max", &now);
    assert_eq!(rec[0]["metric"]["job"], "node");
    assert_eq!(rec[0]["value"][1], "60");
    let firing_series = p.query(r#"ALERTS{alertstate="firing"}"#, &now);
    assert_eq!(
        firing_series.as_array().unwrap().len(),
        1,
        "{firing_series}"
    );
    assert_eq!(firing_series[0]["metric"]["alertname"], "Hot");
    let for_state = p.query("ALERTS_FOR_STATE", &now);
    assert!(
        for_state[0]["value"][1]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap()
            > 1e9
    );

    // Restart: the alert is still firing with the same activeAt, at once and after
    // further evaluations, and the pending series did not come back.
    p.stop();
    let p = Picket::start_in(tmp.path(), &data, &config(&rules_file));
    let restored = alerts(&p);
    assert_eq!(restored.len(), 1, "{restored:?}");
    assert_eq!(restored[0]["state"], "firing");
    assert_eq!(restored[0]["activeAt"], active_at);
    std::thread::sleep(Duration::from_millis(2500));
    let later = alerts(&p);
    assert_eq!(later[0]["state"], "firing", "{later:?}");
    assert_eq!(later[0]["activeAt"], active_at);
    let now = format!("{}", now_ms() as f64 / 1000.0);
    assert!(
        p.query(r#"ALERTS{alertstate="pending"}"#, &now)
            .as_array()
            .unwrap()
            .is_empty()
    );
    p.stop();
}

#[test]
fn picket_starts_without_rules_and_lists_none() {
    let p = Picket::start(QUIET_CONFIG);
    let (code, v) = p.get_json("/api/v1/rules");
    assert_eq!(
        (code, v["data"]["groups"].as_array().unwrap().len()),
        (200, 0)
    );
    assert!(alerts(&p).is_empty());
}

#[test]
fn a_broken_rule_file_fails_start_up_and_check_config_with_its_line() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("bad.yml");
    std::fs::write(
        &bad,
        "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up +\n",
    )
    .unwrap();
    let cfg = tmp.path().join("picket.toml");
    std::fs::write(&cfg, config(&bad)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:5:", bad.display())), "{err}");
    // check-config (systemd's ExecStartPre) catches it first.
    let out = Command::new(env!("CARGO_BIN_EXE_picket"))
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:5:", bad.display())), "{err}");
}

#[test]
fn check_rules_reports_success_and_problems_like_promtool() {
    let tmp = tempfile::tempdir().unwrap();
    let good = tmp.path().join("good.yml");
    std::fs::write(&good, RULES).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["check", "rules"])
        .arg(&good)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "Checking {}\n  SUCCESS: 2 rules found\n",
            good.display()
        )),
        "{stdout}"
    );

    let bad = tmp.path().join("bad.yml");
    std::fs::write(
        &bad,
        "groups:\n  - name: a\n    rules:\n      - record: x\n        expr: sum(\n        for: 1m\n  - name: a\n    rules: []\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["check", "rules"])
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("  FAILED:"), "{stdout}");
    let b = bad.display();
    for want in [
        format!("{b}:5: group \"a\", rule 1, \"x\": could not parse expression: 1:5: parse error:"),
        format!("{b}:6: group \"a\", rule 1, \"x\": invalid field 'for' in recording rule"),
        format!("{b}:7: groupname: \"a\" is repeated in the same file"),
    ] {
        assert!(stderr.contains(&want), "want {want:?} in:\n{stderr}");
    }

    // The shipped default rules pass.
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/rules/node.yml");
    let out = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["check", "rules"])
        .arg(&shipped)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
