//! Rule evaluation cost and notification latency.
//!
//! 1. The same 200 rules (10 groups of 20, every 5 s: rates, aggregations,
//!    `*_over_time`, alerts) over the same 10,000 series (30 min at 15 s, pushed by
//!    remote_write) in Picket and in Debian's `prometheus`, side by side in one run. For
//!    each: process CPU seconds per evaluation round (all 200 rules once; from
//!    /proc/PID/stat over the window, so it includes each server's idle background), and
//!    the wall time of a round (sum of the groups' last durations).
//! 2. Notification latency: from the evaluation at which an alert fires (its `startsAt`)
//!    to the MQTT message at a subscriber (Debian's mosquitto), with group_wait 0.
//!
//! `cargo bench --bench rules_eval`; under `cargo test` it runs small (1,000 series, 20
//! rules, a 6 s window, 3 alerts) as a check.

mod common;

use common::bins::{MOSQUITTO, PROMETHEUS};
use common::{ChildGuard, cpu_seconds, free_port, now_ms, wait_for};
use picket::model::prompb::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Waits (30 s at most) until something accepts TCP connections on loopback `port`.
fn wait_port(port: u16, what: &str) {
    wait_for(30, &format!("{what} to start"), || {
        TcpStream::connect(("127.0.0.1", port)).ok()
    });
}

/// Sum of every sample of `name` (any labels) in a /metrics text.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{' | b' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn get(url: &str) -> String {
    reqwest::blocking::get(url)
        .and_then(|r| r.text())
        .unwrap_or_default()
}

fn rules_yaml(n_rules: usize, n_instances: usize) -> String {
    let groups = 10.min(n_rules);
    let mut y = String::from("groups:\n");
    for g in 0..groups {
        y.push_str(&format!("  - name: g{g}\n    interval: 5s\n    rules:\n"));
        for r in (g..n_rules).step_by(groups) {
            let inst = format!("i{}", r % n_instances);
            let rule = match r % 5 {
                0 => format!(
                    "      - record: bench:rate5m:{r}\n        expr: sum by (instance) (rate(bench_requests_total[5m]))\n"
                ),
                1 => format!(
                    "      - record: bench:max:{r}\n        expr: max_over_time(bench_temp{{instance=\"{inst}\"}}[10m])\n"
                ),
                2 => format!(
                    "      - alert: BenchHot{r}\n        expr: avg by (instance) (bench_temp) > {}\n        for: 1m\n        labels:\n          severity: warning\n        annotations:\n          summary: \"{{{{ $labels.instance }}}} at {{{{ $value }}}}\"\n",
                    40 + r % 20
                ),
                3 => format!(
                    "      - alert: BenchErrors{r}\n        expr: rate(bench_requests_total{{instance=\"{inst}\"}}[5m]) > 0.5\n        labels:\n          severity: info\n"
                ),
                _ => format!(
                    "      - record: bench:quantile:{r}\n        expr: quantile by (instance) (0.9, bench_temp)\n"
                ),
            };
            y.push_str(&rule);
        }
    }
    y
}

/// Pushes `n_series` series (half counters, half gauges) of 30 min at 15 s.
fn push_data(url: &str, n_series: usize, n_instances: usize, end_ms: i64) {
    let client = reqwest::blocking::Client::new();
    let points = 120;
    let mut batch = Vec::new();
    let flush = |batch: &mut Vec<TimeSeries>| {
        let body = snap::raw::Encoder::new()
            .compress_vec(
                &WriteRequest {
                    timeseries: std::mem::take(batch),
                    metadata: vec![],
                }
                .encode_to_vec(),
            )
            .unwrap();
        let r = client
            .post(url)
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body)
            .send()
            .expect("remote_write");
        assert!(
            r.status().is_success(),
            "remote_write to {url}: {}",
            r.status()
        );
    };
    for s in 0..n_series {
        let counter = s % 2 == 0;
        let name = if counter {
            "bench_requests_total"
        } else {
            "bench_temp"
        };
        let mut labels = vec![
            Label {
                name: "__name__".into(),
                value: name.into(),
            },
            Label {
                name: "idx".into(),
                value: format!("{}", s / 2 / n_instances),
            },
            Label {
                name: "instance".into(),
                value: format!("i{}", (s / 2) % n_instances),
            },
            Label {
                name: "job".into(),
                value: "bench".into(),
            },
        ];
        labels.sort_by(|a, b| a.name.cmp(&b.name));
        let samples = (0..points)
            .map(|p| Sample {
                timestamp: end_ms - (points - 1 - p) * 15_000,
                value: if counter {
                    (p * (s as i64 % 7 + 1)) as f64
                } else {
                    20.0 + ((s as i64 * 13 + p) % 50) as f64
                },
            })
            .collect();
        batch.push(TimeSeries {
            labels,
            samples,
            histograms: vec![],
        });
        if batch.len() == 250 {
            flush(&mut batch);
        }
    }
    if !batch.is_empty() {
        flush(&mut batch);
    }
}

struct Figures {
    cpu_per_round: f64,
    wall_per_round: f64,
    rounds: f64,
}

/// Measures a running server for `secs` after its first evaluations.
/// `evaluations` counts evaluations done (not scheduled: a slow group skips some);
/// `per_round` of them make one round of all rules.
fn measure(
    pid: u32,
    metrics_url: &str,
    evaluations: &str,
    last_duration: &str,
    per_round: f64,
    secs: u64,
) -> Figures {
    std::thread::sleep(Duration::from_secs(6));
    let (c0, i0) = (
        cpu_seconds(pid).expect("/proc/PID/stat"),
        metric_sum(&get(metrics_url), evaluations),
    );
    std::thread::sleep(Duration::from_secs(secs));
    let text = get(metrics_url);
    let (c1, i1) = (
        cpu_seconds(pid).expect("/proc/PID/stat"),
        metric_sum(&text, evaluations),
    );
    let rounds = (i1 - i0) / per_round;
    assert!(
        rounds > 0.0,
        "no evaluation rounds measured at {metrics_url}"
    );
    Figures {
        cpu_per_round: (c1 - c0) / rounds,
        wall_per_round: metric_sum(&text, last_duration),
        rounds,
    }
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (n_series, n_rules, window, n_alerts) = if measuring {
        (10_000, 200, 60, 20)
    } else {
        (1_000, 20, 6, 3)
    };
    let n_instances = 100;
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules.yml");
    std::fs::write(&rules, rules_yaml(n_rules, n_instances)).unwrap();
    let groups = 10.min(n_rules) as f64;
    let end = now_ms();

    // Picket.
    let pport = free_port();
    let pcfg = tmp.path().join("picket.toml");
    std::fs::write(
        &pcfg,
        format!("[collect.host]\nenabled = false\n[collect.self]\nenabled = false\n[rules]\nrule_files = [{:?}]\n", rules.display().to_string()),
    )
    .unwrap();
    let picket = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_picket"))
            .args(["run", "--config"])
            .arg(&pcfg)
            .arg("--data-dir")
            .arg(tmp.path().join("picket-data"))
            .args(["--listen", &format!("127.0.0.1:{pport}")])
            .env("PICKET_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start picket"),
    );
    wait_port(pport, "picket");
    // Prometheus, same rules, same data.
    let mport = free_port();
    let mcfg = tmp.path().join("prometheus.yml");
    std::fs::write(
        &mcfg,
        format!(
            "global:\n  evaluation_interval: 5s\nrule_files:\n  - {}\n",
            rules.display()
        ),
    )
    .unwrap();
    let prom = ChildGuard(
        Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", mcfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("prom-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{mport}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start prometheus"),
    );
    wait_port(mport, "prometheus");

    let t = Instant::now();
    push_data(
        &format!("http://127.0.0.1:{pport}/api/v1/write"),
        n_series,
        n_instances,
        end,
    );
    push_data(
        &format!("http://127.0.0.1:{mport}/api/v1/write"),
        n_series,
        n_instances,
        end,
    );
    println!(
        "rules_eval: {n_series} series x 120 samples pushed to both in {:.1} s; {n_rules} rules in {groups} groups every 5 s",
        t.elapsed().as_secs_f64()
    );

    // Picket counts group evaluations, Prometheus rule evaluations (its
    // rule_group_iterations_total counts missed iterations too).
    let p = measure(
        picket.0.id(),
        &format!("http://127.0.0.1:{pport}/metrics"),
        "picket_rule_evaluations_total",
        "picket_rule_group_last_duration_seconds",
        groups,
        window,
    );
    let m = measure(
        prom.0.id(),
        &format!("http://127.0.0.1:{mport}/metrics"),
        "prometheus_rule_evaluations_total",
        "prometheus_rule_group_last_duration_seconds",
        n_rules as f64,
        window,
    );
    for (name, f) in [("picket", &p), ("prometheus", &m)] {
        println!(
            "rules_eval: {name:<10} CPU per round {:>8.4} s   wall per round {:>8.4} s   ({:.1} rounds in {window} s)",
            f.cpu_per_round, f.wall_per_round, f.rounds
        );
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "rules_eval: wall = sum of the groups' last durations; load average now: {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    // Both evaluated the same rules: the alerts they hold agree in number.
    let count = |url: &str| -> usize {
        let v: serde_json::Value = serde_json::from_str(&get(url)).unwrap_or_default();
        v["data"]["alerts"].as_array().map_or(0, Vec::len)
    };
    println!(
        "rules_eval: active alerts  picket {}   prometheus {}",
        count(&format!("http://127.0.0.1:{pport}/api/v1/alerts")),
        count(&format!("http://127.0.0.1:{mport}/api/v1/alerts"))
    );
    drop(picket);
    drop(prom);

    latency(tmp.path(), n_alerts);
}

/// Alert fires (startsAt = the evaluation's time) → MQTT message at a subscriber.
fn latency(dir: &Path, n: usize) {
    let bport = free_port();
    let bconf = dir.join("mosquitto.conf");
    std::fs::write(
        &bconf,
        format!("listener {bport} 127.0.0.1\nallow_anonymous true\npersistence false\n"),
    )
    .unwrap();
    let _broker = ChildGuard(
        Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&bconf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto"),
    );
    wait_port(bport, "mosquitto");
    let rules = dir.join("latency.yml");
    std::fs::write(
        &rules,
        "groups:\n  - name: lat\n    rules:\n      - alert: Lat\n        expr: trigger > 0\n",
    )
    .unwrap();
    let pport = free_port();
    let cfg = dir.join("latency.toml");
    std::fs::write(
        &cfg,
        format!(
            "[collect.host]\nenabled = false\n[collect.self]\nenabled = false\n[rules]\nrule_files = [{:?}]\nevaluation_interval = \"1s\"\n\
             [rules.external_labels]\nnode = \"bench\"\n[notify]\ngroup_by = [\"n\"]\ngroup_wait = \"0s\"\ngroup_interval = \"1s\"\n\
             [[notify.mqtt]]\nurl = \"mqtt://127.0.0.1:{bport}\"\ntopic = \"bench/{{n}}\"\n",
            rules.display().to_string()
        ),
    )
    .unwrap();
    let _picket = ChildGuard(
        Command::new(env!("CARGO_BIN_EXE_picket"))
            .args(["run", "--config"])
            .arg(&cfg)
            .arg("--data-dir")
            .arg(dir.join("latency-data"))
            .args(["--listen", &format!("127.0.0.1:{pport}")])
            .env("PICKET_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start picket"),
    );
    wait_port(pport, "picket");
    let (client, mut conn) =
        rumqttc::Client::new(rumqttc::MqttOptions::new("bench", "127.0.0.1", bport), 64);
    client
        .subscribe("bench/#", rumqttc::QoS::AtLeastOnce)
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<(i64, String)>();
    std::thread::spawn(move || {
        for ev in conn.iter() {
            if let Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) = ev {
                let _ = tx.send((now_ms(), String::from_utf8_lossy(&p.payload).into_owned()));
            } else if ev.is_err() {
                return;
            }
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let http = reqwest::blocking::Client::new();
    let mut lat = Vec::new();
    for k in 0..n {
        let req = WriteRequest {
            timeseries: vec![TimeSeries {
                labels: vec![
                    Label {
                        name: "__name__".into(),
                        value: "trigger".into(),
                    },
                    Label {
                        name: "n".into(),
                        value: k.to_string(),
                    },
                ],
                samples: vec![Sample {
                    timestamp: now_ms(),
                    value: 1.0,
                }],
                histograms: vec![],
            }],
            metadata: vec![],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap();
        http.post(format!("http://127.0.0.1:{pport}/api/v1/write"))
            .header("Content-Encoding", "snappy")
            .body(body)
            .send()
            .unwrap();
        let want = k.to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no MQTT message for alert {k}");
            let Ok((at, payload)) = rx.recv_timeout(left) else {
                continue;
            };
            let v: serde_json::Value = serde_json::from_str(&payload).unwrap();
            if v["labels"]["n"] == want.as_str() && v["status"] == "firing" {
                let starts =
                    picket::notify::alert::parse_rfc3339(v["startsAt"].as_str().unwrap()).unwrap();
                lat.push((at - starts) as f64);
                break;
            }
        }
    }
    lat.sort_by(f64::total_cmp);
    println!(
        "notify_latency: evaluation that fires -> MQTT message, {n} alerts: median {:.1} ms, max {:.1} ms",
        lat[lat.len() / 2],
        lat[lat.len() - 1]
    );
}
