//! Differential test of the rules engine against Debian's real Prometheus (2.42,
//! `/usr/bin/prometheus`, installed by `.ci/test`): both evaluate the same rule file at a
//! 1 s interval over the same samples pushed by remote_write, and must show the same
//! alerts (labels, annotations, values), the same state sequence (pending → firing after
//! `for`), and `/api/v1/rules` and `/api/v1/alerts` documents of the same shape.
//!
//! The two engines evaluate at different offsets within the interval (Prometheus hashes
//! the group with xxhash, Picket with FNV), so "the same time" means within one interval.

mod common;

use common::bins::PROMETHEUS;
use common::{ChildGuard, Picket, QUIET_CONFIG, client, free_port, now_ms, series, write_request};
use prost::Message;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RULES: &str = r#"groups:
  - name: temps
    rules:
      - record: job:temp:max
        expr: max by (job, zone) (temp)
      - alert: Hot
        expr: job:temp:max > 50
        for: 2s
        labels:
          severity: "{{ if gt $value 55.0 }}critical{{ else }}warning{{ end }}"
        annotations:
          summary: "{{ $labels.zone }} at {{ $value | humanize }} on {{ $externalLabels.node }}"
          pct: "{{ humanizePercentage 0.25 }} {{ printf \"%.1f\" $value }}"
          zones: '{{ range query "temp" | sortByLabel "zone" }}{{ .Labels.zone }}={{ .Value }} {{ end }}'
          hottest: '{{ with query "max(temp)" }}{{ . | first | value | humanize }}{{ end }}'
      - alert: Instant
        expr: temp > 0
        labels:
          severity: info
"#;

/// Kills Prometheus by PID when the test ends, also on a failed assertion.
struct Prometheus {
    _child: ChildGuard,
    addr: String,
}

fn start_prometheus(dir: &Path, rules_file: &Path) -> Prometheus {
    assert!(
        Path::new(PROMETHEUS).exists(),
        "{PROMETHEUS} is missing: apt-get install prometheus (.ci/test installs it)"
    );
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  evaluation_interval: 1s\n  external_labels:\n    node: pi1\nrule_files:\n  - {}\n",
            rules_file.display()
        ),
    )
    .unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", cfg.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("prom").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .arg("--web.enable-remote-write-receiver")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let p = Prometheus {
        _child: ChildGuard(child),
        addr,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = client()
            .get(format!("http://{}/-/ready", p.addr))
            .send()
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return p;
        }
        assert!(Instant::now() < deadline, "prometheus not ready in 30 s");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn get_json(base: &str, path: &str) -> Value {
    let r = client()
        .get(format!("http://{base}{path}"))
        .send()
        .expect("GET");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().expect("JSON")
}

fn remote_write(base: &str, req: &picket::model::prompb::WriteRequest) {
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    let r = client()
        .post(format!("http://{base}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
        .expect("POST");
    assert!(
        r.status().is_success(),
        "remote_write to {base}: {}",
        r.status()
    );
}

/// What one side showed over time, per alert (by its labels as text).
#[derive(Debug, Default)]
struct Seen {
    /// Distinct states in the order first seen.
    states: BTreeMap<String, Vec<String>>,
    /// When the alert was first seen firing (ms), and its activeAt (ms).
    fired: BTreeMap<String, (i64, i64)>,
    /// The last alert document per alert.
    last: BTreeMap<String, Value>,
}

fn observe(seen: &mut Seen, alerts: &Value, t: i64) {
    for a in alerts["data"]["alerts"].as_array().unwrap() {
        let key = a["labels"].to_string();
        let state = a["state"].as_str().unwrap().to_string();
        let states = seen.states.entry(key.clone()).or_default();
        if states.last() != Some(&state) {
            states.push(state.clone());
        }
        if state == "firing" && !seen.fired.contains_key(&key) {
            let active = picket::api::params::parse_time(a["activeAt"].as_str().unwrap()).unwrap();
            seen.fired.insert(key.clone(), (t, active));
        }
        seen.last.insert(key, a.clone());
    }
}

/// The shape of a JSON document: every path with the JSON type found there (array
/// elements share the path `[]`; label and annotation maps are values, not shape).
fn shape(v: &Value, path: &str, out: &mut BTreeSet<String>) {
    let kind = match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    out.insert(format!("{path}: {kind}"));
    match v {
        Value::Array(items) => {
            for i in items {
                shape(i, &format!("{path}[]"), out);
            }
        }
        Value::Object(m) if !path.ends_with(".labels") && !path.ends_with(".annotations") => {
            for (k, v) in m {
                shape(v, &format!("{path}.{k}"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn picket_and_prometheus_agree_on_alerts_states_and_api_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let rules_file = tmp.path().join("temps.yml");
    std::fs::write(&rules_file, RULES).unwrap();
    let prom = start_prometheus(tmp.path(), &rules_file);
    let cfg = format!(
        "{QUIET_CONFIG}[rules]\nrule_files = [{:?}]\nevaluation_interval = \"1s\"\n[rules.external_labels]\nnode = \"pi1\"\n",
        rules_file.display().to_string()
    );
    let picket_dir = tmp.path().join("picket");
    std::fs::create_dir_all(&picket_dir).unwrap();
    let picket = Picket::start_in(&picket_dir, &picket_dir.join("data"), &cfg);

    let t = now_ms();
    let req = write_request(vec![
        series(
            &[("__name__", "temp"), ("job", "node"), ("zone", "cpu")],
            &[(t, 60.0)],
        ),
        series(
            &[("__name__", "temp"), ("job", "node"), ("zone", "gpu")],
            &[(t, 52.5)],
        ),
        series(
            &[("__name__", "temp"), ("job", "node"), ("zone", "nvme")],
            &[(t, 30.0)],
        ),
    ]);
    remote_write(&prom.addr, &req);
    remote_write(&picket.addr, &req);

    let (mut p_seen, mut q_seen) = (Seen::default(), Seen::default());
    let deadline = Instant::now() + Duration::from_secs(8);
    while Instant::now() < deadline {
        // Each observation is stamped after its answer arrived: an alert seen firing
        // then fired at or before that time.
        let doc = get_json(&picket.addr, "/api/v1/alerts");
        observe(&mut p_seen, &doc, now_ms());
        let doc = get_json(&prom.addr, "/api/v1/alerts");
        observe(&mut q_seen, &doc, now_ms());
        std::thread::sleep(Duration::from_millis(100));
    }

    // The same alerts, going through the same states.
    assert_eq!(
        p_seen.states.keys().collect::<Vec<_>>(),
        q_seen.states.keys().collect::<Vec<_>>(),
        "alert label sets differ"
    );
    assert_eq!(p_seen.states, q_seen.states, "state sequences differ");
    assert_eq!(p_seen.states.len(), 5, "{:?}", p_seen.states);
    for (key, states) in &q_seen.states {
        let want: &[&str] = if key.contains("\"Hot\"") {
            &["pending", "firing"]
        } else {
            &["firing"]
        };
        assert_eq!(states, want, "{key}");
    }
    // Same labels, annotations and values on the final documents.
    for (key, q) in &q_seen.last {
        let p = &p_seen.last[key];
        assert_eq!(p["annotations"], q["annotations"], "{key}");
        assert_eq!(p["value"], q["value"], "{key}");
        assert_eq!(p["state"], q["state"], "{key}");
    }
    // `for: 2s` held on both, measured from each side's own activeAt; the two sides
    // became active within an evaluation interval of each other (two, to leave room for
    // the two remote_write requests landing on either side of an evaluation on a busy
    // machine).
    for (key, &(fired_p, active_p)) in &p_seen.fired {
        let (fired_q, active_q) = q_seen.fired[key];
        if key.contains("\"Hot\"") {
            assert!(fired_p - active_p >= 2_000, "{key}: picket fired early");
            assert!(
                fired_q - active_q >= 2_000,
                "{key}: prometheus fired early: seen firing at {fired_q}, active at {active_q}; picket {fired_p} {active_p}"
            );
        }
        assert!(
            (active_p - active_q).abs() <= 2_000,
            "{key}: activeAt {active_p} vs {active_q}"
        );
    }

    // The API documents have the same shape.
    for path in ["/api/v1/rules", "/api/v1/alerts"] {
        let (mut ps, mut qs) = (BTreeSet::new(), BTreeSet::new());
        shape(&get_json(&picket.addr, path), "", &mut ps);
        shape(&get_json(&prom.addr, path), "", &mut qs);
        assert_eq!(
            ps.difference(&qs).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "{path}: fields only Picket sends"
        );
        assert_eq!(
            qs.difference(&ps).collect::<Vec<_>>(),
            Vec::<&String>::new(),
            "{path}: fields only Prometheus sends"
        );
    }

    // The recording rule's output agrees.
    let q = format!("{}", now_ms() as f64 / 1000.0);
    let pv = picket.query("job:temp:max", &q);
    let qv = get_json(
        &prom.addr,
        &format!("/api/v1/query?query=job:temp:max&time={q}"),
    )["data"]["result"]
        .clone();
    let values = |v: &Value| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| format!("{} {}", s["metric"], s["value"][1]))
            .collect()
    };
    assert_eq!(values(&pv), values(&qv));
}
