//! Store-and-forward end to end against real receivers: Debian's `victoria-metrics` (no
//! dedup: a sample sent twice is stored twice) and `prometheus
//! --web.enable-remote-write-receiver` (2.42, with an out-of-order window so that the
//! backlog may arrive beside newer live data).
//!
//! Picket ingests a deterministic data set by remote_write (collectors off) in phases; the
//! destination is killed for a while (see [`Receiver::kill`]) and started again on the
//! same data dir,
//! and Picket is restarted with SIGTERM during the outage. Afterwards every sample exists
//! at the destination, exactly once (VictoriaMetrics: `/api/v1/export` timestamps series by
//! series; Prometheus: `count_over_time` per series).

mod common;

use common::bins::{PROMETHEUS, VICTORIA};
use common::{ChildGuard, Picket, QUIET_CONFIG, client, free_port, now_ms, series, write_request};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SERIES: usize = 12;

/// A receiver process, killed by PID when dropped.
struct Receiver {
    child: Option<ChildGuard>,
    addr: String,
    dir: PathBuf,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Victoria,
    Prometheus,
}

impl Receiver {
    fn start(kind: Kind, dir: &Path, addr: &str) -> Receiver {
        let mut r = Receiver {
            child: None,
            addr: addr.to_string(),
            dir: dir.to_path_buf(),
            kind,
        };
        r.spawn();
        r
    }

    fn spawn(&mut self) {
        let mut cmd = match self.kind {
            Kind::Victoria => {
                assert!(
                    Path::new(VICTORIA).exists(),
                    "{VICTORIA} is missing: apt-get install victoria-metrics (.ci/test installs it)"
                );
                let mut c = Command::new(VICTORIA);
                c.arg(format!(
                    "-storageDataPath={}",
                    self.dir.join("vm").display()
                ))
                .arg(format!("-httpListenAddr={}", self.addr))
                .arg("-retentionPeriod=100y");
                c
            }
            Kind::Prometheus => {
                assert!(
                    Path::new(PROMETHEUS).exists(),
                    "{PROMETHEUS} is missing: apt-get install prometheus (.ci/test installs it)"
                );
                let cfg = self.dir.join("prometheus.yml");
                std::fs::write(
                    &cfg,
                    "global:\n  scrape_interval: 1m\nstorage:\n  tsdb:\n    out_of_order_time_window: 1h\n",
                )
                .unwrap();
                let mut c = Command::new(PROMETHEUS);
                c.arg(format!("--config.file={}", cfg.display()))
                    .arg(format!(
                        "--storage.tsdb.path={}",
                        self.dir.join("prom").display()
                    ))
                    .arg(format!("--web.listen-address={}", self.addr))
                    .arg("--web.enable-remote-write-receiver");
                c
            }
        };
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the receiver");
        self.child = Some(ChildGuard(child));
        let ready_path = match self.kind {
            Kind::Victoria => "/health",
            Kind::Prometheus => "/-/ready",
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client()
                .get(format!("http://{}{ready_path}", self.addr))
                .send()
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "receiver not ready in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Makes acknowledged rows searchable and durable (VictoriaMetrics buffers them for
    /// about a second; a row lost to SIGKILL there would be its loss, not Picket's).
    fn flush(&self) {
        if let Kind::Victoria = self.kind {
            let r = client()
                .get(format!("http://{}/internal/force_flush", self.addr))
                .send()
                .expect("force_flush");
            assert!(r.status().is_success());
        }
    }

    /// Stops the receiver the hardest way it survives without losing what it
    /// acknowledged: SIGKILL for Prometheus (its WAL holds every acknowledged sample);
    /// SIGTERM for VictoriaMetrics 1.79, which keeps fresh rows in memory only (no part
    /// in `data/small` 40 s after `/internal/force_flush` here) so that SIGKILL would lose
    /// rows it had acknowledged — its loss, which this test could not tell from Picket's.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            match self.kind {
                Kind::Prometheus => {
                    let _ = c.0.kill();
                }
                Kind::Victoria => {
                    // SAFETY: kill(2) on our own child's PID.
                    unsafe {
                        libc::kill(c.0.id() as i32, libc::SIGTERM);
                    }
                }
            }
            let _ = c.0.wait();
        }
    }

    fn url(&self) -> String {
        format!("http://{}/api/v1/write", self.addr)
    }

    /// Timestamps stored per `series` label.
    fn stored(&self, start_ms: i64) -> BTreeMap<String, Vec<i64>> {
        let mut out: BTreeMap<String, Vec<i64>> = BTreeMap::new();
        match self.kind {
            Kind::Victoria => {
                self.flush();
                let text = client()
                    .get(format!("http://{}/api/v1/export", self.addr))
                    .query(&[("match[]", "fwd_test")])
                    .send()
                    .expect("export")
                    .text()
                    .unwrap();
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let v: Value = serde_json::from_str(line).expect("export line");
                    let name = v["metric"]["series"].as_str().unwrap().to_string();
                    assert_eq!(v["metric"]["node"], "pi-test", "external label: {line}");
                    let ts = out.entry(name).or_default();
                    for t in v["timestamps"].as_array().unwrap() {
                        ts.push(t.as_i64().unwrap());
                    }
                }
            }
            Kind::Prometheus => {
                let now = now_ms();
                let range_s = (now - start_ms) / 1000 + 60;
                let q = format!("fwd_test[{range_s}s]");
                let v: Value = client()
                    .get(format!("http://{}/api/v1/query", self.addr))
                    .query(&[
                        ("query", q.as_str()),
                        ("time", &format!("{}", now / 1000 + 1)),
                    ])
                    .send()
                    .expect("query")
                    .json()
                    .unwrap();
                assert_eq!(v["status"], "success", "{v}");
                for s in v["data"]["result"].as_array().unwrap() {
                    let name = s["metric"]["series"].as_str().unwrap().to_string();
                    assert_eq!(s["metric"]["node"], "pi-test");
                    let ts = out.entry(name).or_default();
                    for p in s["values"].as_array().unwrap() {
                        ts.push((p[0].as_f64().unwrap() * 1000.0).round() as i64);
                    }
                }
            }
        }
        for ts in out.values_mut() {
            ts.sort_unstable();
        }
        out
    }
}

/// The data set: `rounds` writes, 200 ms apart, of one sample for each of [`SERIES`]
/// series at the write time; remembered in `expected`.
fn generate(p: &Picket, rounds: usize, expected: &mut BTreeMap<String, Vec<i64>>) {
    for _ in 0..rounds {
        let t = now_ms();
        let batch: Vec<_> = (0..SERIES)
            .map(|i| {
                let name = format!("s{i:02}");
                expected.entry(name.clone()).or_default().push(t);
                series(
                    &[("__name__", "fwd_test"), ("series", &name)],
                    &[(t, (t % 100_000) as f64 + i as f64)],
                )
            })
            .collect();
        let (code, body) = p.remote_write(&write_request(batch), None);
        assert_eq!(code, 204, "{body}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `picket_forward_*{url=...}` value from Picket's /metrics.
fn forward_metric(p: &Picket, name_and_labels: &str) -> Option<f64> {
    let (_, text) = p.get("/metrics");
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn wait_until(what: &str, secs: u64, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn picket_config(url: &str) -> String {
    format!(
        "{QUIET_CONFIG}[forward]\ndelay = \"1s\"\nexternal_labels = {{ node = \"pi-test\" }}\n\
         [[forward.remote_write]]\nurl = \"{url}\"\n\
         queue_config = {{ max_samples_per_send = 50, batch_send_deadline = \"1s\", min_backoff = \"50ms\", max_backoff = \"400ms\", max_backlog_samples_per_second = 2000 }}\n"
    )
}

fn outage_and_restart_lose_and_duplicate_nothing(kind: Kind) {
    let tmp = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let mut receiver = Receiver::start(kind, tmp.path(), &addr);
    let config = picket_config(&receiver.url());
    let data = tmp.path().join("picket-data");
    let picket_dir = tmp.path().join("picket");
    std::fs::create_dir_all(&picket_dir).unwrap();
    let start = now_ms();
    let mut expected = BTreeMap::new();

    // Phase 1: live forwarding; everything written reaches the receiver.
    let p = Picket::start_in(&picket_dir, &data, &config);
    generate(&p, 10, &mut expected);
    let written = (10 * SERIES) as f64;
    let sent_metric = format!(
        "picket_forward_samples_sent_total{{url=\"{}\"}}",
        receiver.url()
    );
    wait_until("the first phase to be forwarded", 30, || {
        forward_metric(&p, &sent_metric) == Some(written)
    });
    wait_until("the first phase to be searchable", 30, || {
        receiver.stored(start).values().map(Vec::len).sum::<usize>() == written as usize
    });

    // Phase 2: the receiver dies; Picket keeps ingesting and retrying, then restarts.
    receiver.kill();
    generate(&p, 10, &mut expected);
    std::thread::sleep(Duration::from_millis(1500));
    let failed = forward_metric(
        &p,
        &format!(
            "picket_forward_samples_failed_total{{url=\"{}\"}}",
            receiver.url()
        ),
    )
    .unwrap();
    assert!(failed > 0.0, "sends to a dead receiver count as failed");
    p.stop();
    let p = Picket::start_in(&picket_dir, &data, &config);
    generate(&p, 10, &mut expected);

    // Phase 3: the receiver is back; the backlog and live data both arrive.
    receiver.spawn();
    generate(&p, 10, &mut expected);
    let want: usize = expected.values().map(Vec::len).sum();
    let mut got_n = 0;
    let waited = Instant::now();
    while got_n < want {
        got_n = receiver.stored(start).values().map(Vec::len).sum::<usize>();
        assert!(
            waited.elapsed() < Duration::from_secs(60),
            "{got_n} of {want} samples at the receiver after 60 s; /metrics:\n{}",
            p.get("/metrics").1
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Restarting Picket once more sends nothing twice.
    p.stop();
    let p = Picket::start_in(&picket_dir, &data, &config);
    std::thread::sleep(Duration::from_secs(3));
    let got = receiver.stored(start);
    assert_eq!(got.len(), SERIES);
    for (name, ts) in &expected {
        assert_eq!(
            got.get(name),
            Some(ts),
            "series {name}: every sample exactly once"
        );
    }
    let dropped: f64 = ["http_4xx", "evicted", "late"]
        .iter()
        .filter_map(|r| {
            forward_metric(
                &p,
                &format!(
                    "picket_forward_samples_dropped_total{{reason=\"{r}\",url=\"{}\"}}",
                    receiver.url()
                ),
            )
        })
        .sum();
    assert_eq!(dropped, 0.0);
    let lag = forward_metric(
        &p,
        &format!("picket_forward_lag_seconds{{url=\"{}\"}}", receiver.url()),
    )
    .expect("lag metric");
    assert!(lag < 600.0, "caught up: lag {lag}");
    p.stop();
}

#[test]
fn victoria_metrics_gets_every_sample_exactly_once_across_outage_and_restarts() {
    outage_and_restart_lose_and_duplicate_nothing(Kind::Victoria);
}

#[test]
fn prometheus_gets_every_sample_across_outage_and_restarts() {
    outage_and_restart_lose_and_duplicate_nothing(Kind::Prometheus);
}

/// A 4xx answer drops the request, counted with its reason, and forwarding moves on.
#[test]
fn a_refused_request_is_dropped_and_counted() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = vec![0u8; 1 << 16];
            let mut req = Vec::new();
            // Read headers and the body (Content-Length), then refuse.
            loop {
                let n = s.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req);
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if req.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            let _ = s.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\nConnection: close\r\n\r\nno\n",
            );
        }
    });
    let url = format!("http://{addr}/api/v1/write");
    let p = Picket::start(&picket_config(&url));
    let mut expected = BTreeMap::new();
    generate(&p, 3, &mut expected);
    let name = format!("picket_forward_samples_dropped_total{{reason=\"http_4xx\",url=\"{url}\"}}");
    wait_until("the refused samples to be counted", 30, || {
        forward_metric(&p, &name) == Some((3 * SERIES) as f64)
    });
    p.stop();
}
