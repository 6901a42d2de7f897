//! Differential tests against Debian's real Prometheus (`/usr/bin/prometheus`, 2.42).
//!
//! Target relabelling: the same job — static targets, group labels, params and
//! a chain of relabel_configs using every action that applies to targets — is given to
//! Prometheus (as JSON, which is YAML) and to Picket's `populate` (as TOML). Prometheus'
//! `/api/v1/targets` then says which targets it keeps, with which final labels and scrape
//! URL, and which it drops; Picket must agree target by target.
//!
//! The targets are unreachable names: only discovery and relabelling are compared, no
//! scrape happens (Prometheus' scrapes of them fail, which does not change their labels).
//!
//! Parsing: Prometheus' own `/metrics`, a real Go-client body, must parse completely.

mod common;

use common::bins::PROMETHEUS;
use common::{ChildGuard, free_port};

use picket::collect::scrape::parser::{Entry, Format, Parser};
use picket::collect::scrape::target::populate;
use picket::config::scrape::{ScrapeConfig, accept_header, default_protocols};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn job() -> Value {
    json!({
        "job_name": "rl",
        "params": { "module": ["default"] },
        "static_configs": [{
            "targets": [
                "node-a.example:9100", "Node-B.example:9100", "db-1.example:5432",
                "skip-me.example:80", "10.0.0.7:9100"
            ],
            "labels": { "env": "prod", "team": "Core", "__meta_x_role": "web" }
        }],
        "relabel_configs": [
            { "source_labels": ["__address__"], "regex": "([^:]+):(\\d+)", "target_label": "host", "replacement": "$1" },
            { "source_labels": ["__address__"], "regex": "skip-.*", "action": "drop" },
            { "source_labels": ["host"], "target_label": "host_upper", "action": "uppercase" },
            { "source_labels": ["team"], "target_label": "team_lower", "action": "lowercase" },
            { "source_labels": ["__address__"], "modulus": 4, "target_label": "shard", "action": "hashmod" },
            { "regex": "__meta_x_(.+)", "replacement": "meta_$1", "action": "labelmap" },
            { "source_labels": ["__address__"], "regex": ".*:(5432)", "target_label": "__metrics_path__", "replacement": "/pg$1" },
            { "source_labels": ["host"], "regex": "(.*)\\.example", "target_label": "instance", "replacement": "${1}" },
            { "source_labels": ["__address__"], "regex": "node-.*", "target_label": "__param_module", "replacement": "m_$0" },
            { "source_labels": ["shard"], "target_label": "shard_copy" },
            { "source_labels": ["shard"], "target_label": "shard_copy", "action": "keepequal" },
            { "source_labels": ["__address__"], "regex": "10\\..*", "target_label": "__tmp_ip", "replacement": "10.0.0.7" },
            { "source_labels": ["host"], "target_label": "__tmp_ip", "action": "dropequal" },
            { "source_labels": ["env", "team_lower"], "separator": "/", "target_label": "where" },
            { "regex": "team", "action": "labeldrop" },
            { "regex": "__.*|job|instance|host.*|shard|meta_.*|env|team_lower|where", "action": "labelkeep" }
        ]
    })
}

type Labels = BTreeMap<String, String>;

/// A running Prometheus with `config` (JSON); killed when the guard drops.
fn start_prometheus(config: &Value) -> (ChildGuard, u16, tempfile::TempDir) {
    assert!(
        std::path::Path::new(PROMETHEUS).exists(),
        "{PROMETHEUS} is missing: `apt-get install prometheus`"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, serde_json::to_string_pretty(config).unwrap()).unwrap();
    let port = free_port();
    let child = Command::new(PROMETHEUS)
        .arg(format!("--config.file={}", path.display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    (ChildGuard(child), port, dir)
}

/// (final labels, scrape URL) per kept original address, and the dropped addresses.
fn prometheus_targets() -> (BTreeMap<String, (Labels, String)>, Vec<String>) {
    let config = json!({
        "global": { "scrape_interval": "15s", "scrape_timeout": "10s" },
        "scrape_configs": [job()]
    });
    let (_guard, port, _dir) = start_prometheus(&config);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = client
            .get(format!("http://127.0.0.1:{port}/api/v1/targets?state=any"))
            .send()
            .and_then(|r| r.text());
        if let Ok(text) = got
            && let Ok(v) = serde_json::from_str::<Value>(&text)
        {
            let active = v["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let dropped = v["data"]["droppedTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if active.len() + dropped.len() == 5 {
                let kept = active
                    .iter()
                    .map(|t| {
                        let addr = t["discoveredLabels"]["__address__"]
                            .as_str()
                            .unwrap()
                            .to_string();
                        let labels: Labels = serde_json::from_value(t["labels"].clone()).unwrap();
                        (addr, (labels, t["scrapeUrl"].as_str().unwrap().to_string()))
                    })
                    .collect();
                let mut dropped: Vec<String> = dropped
                    .iter()
                    .map(|t| {
                        t["discoveredLabels"]["__address__"]
                            .as_str()
                            .unwrap()
                            .to_string()
                    })
                    .collect();
                dropped.sort();
                return (kept, dropped);
            }
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not discover the targets in 60 s"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn target_relabelling_matches_prometheus() {
    let (want_kept, want_dropped) = prometheus_targets();
    let toml_text = toml::to_string(&job()).expect("the job as TOML");
    let cfg: ScrapeConfig =
        toml::from_str(&toml_text).unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    picket::config::scrape::validate(std::slice::from_ref(&cfg)).expect("valid for Picket too");
    let group = &cfg.static_configs[0];
    let mut got_kept = BTreeMap::new();
    let mut got_dropped = Vec::new();
    for addr in &group.targets {
        match populate(&cfg, addr, &group.labels).expect("populate") {
            Some(t) => {
                let labels: Labels = t
                    .labels
                    .iter()
                    .map(|l| (l.name.to_string(), l.value.to_string()))
                    .collect();
                got_kept.insert(addr.clone(), (labels, t.url));
            }
            None => got_dropped.push(addr.clone()),
        }
    }
    got_dropped.sort();
    assert_eq!(got_dropped, want_dropped, "dropped targets");
    assert_eq!(
        got_kept.keys().collect::<Vec<_>>(),
        want_kept.keys().collect::<Vec<_>>(),
        "kept targets"
    );
    for (addr, (want_labels, want_url)) in &want_kept {
        let (labels, url) = &got_kept[addr];
        assert_eq!(labels, want_labels, "labels of {addr}");
        assert_eq!(url, want_url, "scrape URL of {addr}");
    }
    assert!(
        want_kept.len() >= 2 && want_dropped.len() >= 2,
        "the case exercises both outcomes"
    );
}

/// Prometheus' own `/metrics` (Go client) fetched with Picket's Accept header.
fn fetch(port: u16, accept: &str) -> (String, String) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .header("Accept", accept)
            .send()
            && r.status().is_success()
        {
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            return (ct, r.text().unwrap());
        }
        assert!(
            Instant::now() < deadline,
            "prometheus did not serve /metrics"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Every sample of a body as `name{labels}` text with its value, via Picket's parser.
fn parse_all(body: &str, format: Format) -> BTreeMap<String, f64> {
    let mut p = Parser::new(body, format);
    let mut out = BTreeMap::new();
    while let Some(e) = p.next_entry().unwrap_or_else(|e| panic!("{format:?}: {e}")) {
        if let Entry::Sample { name, value, .. } = e {
            let mut labels: Vec<String> = p
                .labels()
                .iter()
                .map(|(n, v)| format!("{n}={v:?}"))
                .collect();
            labels.sort();
            out.insert(format!("{name}{{{}}}", labels.join(",")), value);
        }
    }
    out
}

/// A real Go-client body (Prometheus' own `/metrics`: HELP escapes, histograms,
/// summaries with NaN quantiles) fetched with Picket's `Accept` header, read by Picket's
/// parser in the format the Content-Type names, and checked against an independent count
/// of its sample lines. (Debian's Prometheus 2.42 and node_exporter 1.5 answer with the
/// text format; OpenMetrics bodies are covered by the unit tests and `tests/scrape.rs`.)
#[test]
fn prometheus_own_metrics_parse_completely() {
    let config = json!({ "global": { "scrape_interval": "15s" }, "scrape_configs": [] });
    let (_guard, port, _dir) = start_prometheus(&config);
    let (ct, body) = fetch(port, &accept_header(&default_protocols()));
    let format = Format::from_content_type(Some(&ct));
    let samples = parse_all(&body, format);
    let lines = body
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count();
    assert!(lines > 100, "{lines}");
    assert_eq!(
        samples.len(),
        lines,
        "every sample line read once, none merged"
    );
    assert_eq!(
        samples
            .iter()
            .find(|(k, _)| k.starts_with("prometheus_build_info{"))
            .map(|(_, v)| *v),
        Some(1.0)
    );
    assert!(
        samples.keys().any(|k| k.contains("quantile=")),
        "summaries are read"
    );
    assert!(
        samples.keys().any(|k| k.contains("le=\"+Inf\"")),
        "histograms are read"
    );
}
