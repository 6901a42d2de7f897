//! Range-query latency and memory of Picket, VictoriaMetrics and Prometheus side by side,
//! in one run, on the same data.
//!
//! The program starts all three servers on free loopback ports in temp dirs (Picket: the
//! `picket` binary of this build; `victoria-metrics` 1.79 and `prometheus` 2.42 from Debian),
//! pushes the same generated dataset into each over remote_write 1.0, checks that each holds
//! every sample, then times a fixed set of range queries: `rate`, `sum by`, `topk`,
//! `histogram_quantile` over `le` buckets and `quantile_over_time`, each over 1 k and 10 k
//! series and 1 h and 24 h windows (Grafana-like steps: 15 s for 1 h, 120 s for 24 h). Each
//! query runs once as warm-up (its three answers are compared: Picket must equal Prometheus
//! point for point, VictoriaMetrics must return as many series with values within a few
//! percent, since its `rate` does not extrapolate), then `runs` times on a keep-alive
//! connection; the table gives the median wall time of the whole HTTP exchange (evaluation,
//! JSON encoding, transfer), the ratios Picket/VM and Picket/Prometheus, and each server's
//! peak RSS during the query phase (`VmHWM`, reset through `/proc/PID/clear_refs` before the
//! first query).
//!
//! Fairness: VictoriaMetrics runs with `-search.disableCache` (its rollup result cache would
//! otherwise answer repeated runs from memory; Picket and Prometheus have none) and
//! `-search.latencyOffset=0` (so it returns the newest samples too, like the others); every
//! server keeps its own storage caches and the page cache. Timestamps are the last hours
//! before now on a 15 s grid (Prometheus 2.42 refuses samples older than its head), sent in
//! time order.
//!
//! Dataset: for 1 k and 10 k series each, a counter family `qs{N}_requests_total`
//! (job x instance), and a classic histogram `qs{N}_request_duration_seconds_bucket`
//! (N/10 histograms x 10 `le` buckets).
//!
//! `cargo bench --bench query_speed` runs the short form (1 h window, 2 h of data, 1 k and
//! 10 k series, 3 runs per query); `cargo bench --bench query_speed -- --full` the full one
//! (1 h and 24 h windows over 24 h of data, 5 runs). Under `cargo test` (no `--bench`
//! argument) it runs a tiny dataset once, as a check that the measurement works.
//! `PICKET_BENCH_BIN=/path/to/picket` measures another build of Picket (e.g. one with
//! symbols, under `perf record`).

mod common;

use common::bins::{PROMETHEUS, VICTORIA};
use common::{free_port, status_kib};
use picket::model::prompb::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SCRAPE_MS: i64 = 15_000;
/// Consecutive scrapes one remote_write request carries per series.
const STEPS_PER_REQUEST: usize = 20;
/// Series per remote_write request.
const SERIES_PER_REQUEST: usize = 500;
/// Upper bounds of the histogram buckets (the last is `+Inf`).
const BUCKETS: [&str; 10] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf",
];

struct Server {
    name: &'static str,
    child: Child,
    port: u16,
    write_path: &'static str,
}

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's PID; SIGTERM first so each server shuts down
        // cleanly, SIGKILL if it has not within 20 s.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }
    fn status_kib(&self, key: &str) -> u64 {
        status_kib(self.child.id(), key)
    }
    /// Resets VmHWM to the current RSS (proc(5), `clear_refs` value 5).
    fn reset_peak_rss(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }
}

fn spawn(
    name: &'static str,
    program: &str,
    args: &[String],
    write_path: &'static str,
    port: u16,
) -> Server {
    let child = Command::new(program)
        .args(args)
        .env("PICKET_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("start {program} ({e}); apt-get install prometheus victoria-metrics")
        });
    Server {
        name,
        child,
        port,
        write_path,
    }
}

fn wait_ready(client: &reqwest::blocking::Client, s: &mut Server) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(r) = client.get(s.url("/api/v1/query?query=vector(1)")).send()
            && r.status().is_success()
        {
            return;
        }
        if let Ok(Some(status)) = s.child.try_wait() {
            panic!("{} exited early with {status}", s.name);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{} did not answer within 60 s", s.name);
}

/// SplitMix64 of a key: deterministic noise without generator state.
fn noise(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn label(name: &str, value: String) -> Label {
    Label {
        name: name.to_string(),
        value,
    }
}

/// One family of the dataset: its series' labels and the state that makes their values.
struct Family {
    /// Sorted label sets.
    labels: Vec<Vec<Label>>,
    /// Current value of each series (counters are cumulative).
    values: Vec<f64>,
    /// Histogram families: buckets per histogram (series `h*10+b` is bucket `b` of `h`).
    histogram: bool,
}

impl Family {
    fn counter(prefix: &str, n: usize) -> Family {
        let labels = (0..n)
            .map(|i| {
                vec![
                    label("__name__", format!("{prefix}_requests_total")),
                    label("instance", format!("host-{i:05}:9100")),
                    label("job", format!("job-{}", i % 10)),
                ]
            })
            .collect();
        Family {
            labels,
            values: (0..n).map(|i| (noise(i as u64) % 100_000) as f64).collect(),
            histogram: false,
        }
    }

    fn histogram(prefix: &str, n: usize) -> Family {
        let hists = n / BUCKETS.len();
        let mut labels = Vec::with_capacity(n);
        for h in 0..hists {
            for le in BUCKETS {
                labels.push(vec![
                    label(
                        "__name__",
                        format!("{prefix}_request_duration_seconds_bucket"),
                    ),
                    label("instance", format!("host-{h:05}:9100")),
                    label("job", format!("job-{}", h % 10)),
                    label("le", le.to_string()),
                ]);
            }
        }
        Family {
            values: vec![0.0; labels.len()],
            labels,
            histogram: true,
        }
    }

    /// Advances every series by one scrape (`step` numbers scrapes from the dataset start).
    fn advance(&mut self, seed: u64, step: u64) {
        if self.histogram {
            for h in 0..self.values.len() / BUCKETS.len() {
                let r = noise(seed ^ (h as u64) << 32 ^ step);
                let observations = r % 40;
                // Where this histogram's latencies sit: bucket counts follow a geometric
                // spread around a per-histogram median bucket.
                let centre = 2 + (noise(seed ^ h as u64) % 5) as usize;
                let mut cumulative = 0.0;
                for b in 0..BUCKETS.len() {
                    let share = if b == BUCKETS.len() - 1 {
                        observations
                    } else {
                        let d = centre.abs_diff(b) as u64 + 1;
                        (observations * (b as u64 + 1)) / (d * 4 + 6).max(1)
                    };
                    cumulative = (share as f64).max(cumulative);
                    self.values[h * BUCKETS.len() + b] += cumulative;
                }
            }
        } else {
            for (i, v) in self.values.iter_mut().enumerate() {
                let rate = 1 + (i % 17) as u64;
                // The fraction i / 2^17 makes every series' rate distinct (no two windows
                // can sum to the same value), so `topk` has no ties to break differently.
                *v += (noise(seed ^ (i as u64) << 32 ^ step) % (rate * 30)) as f64
                    + i as f64 / 131_072.0;
            }
        }
    }
}

/// The dataset: families, first timestamp and number of scrapes, and the order of requests.
struct Dataset {
    sizes: Vec<usize>,
    start_ms: i64,
    steps: usize,
}

impl Dataset {
    fn families(&self) -> Vec<Family> {
        let mut out = Vec::new();
        for &n in &self.sizes {
            let prefix = size_prefix(n);
            out.push(Family::counter(&prefix, n));
            out.push(Family::histogram(&prefix, n));
        }
        out
    }

    fn series(&self) -> usize {
        self.families().iter().map(|f| f.labels.len()).sum()
    }

    fn samples(&self) -> usize {
        self.series() * self.steps
    }

    fn last_ms(&self) -> i64 {
        self.start_ms + (self.steps as i64 - 1) * SCRAPE_MS
    }

    /// Calls `send` with every remote_write body (snappy-compressed protobuf), in time
    /// order: chunk of scrapes, then every series of that chunk in batches.
    fn for_each_request(&self, mut send: impl FnMut(Vec<u8>)) {
        let mut families = self.families();
        let mut step = 0usize;
        let mut encoder = snap::raw::Encoder::new();
        while step < self.steps {
            let chunk = STEPS_PER_REQUEST.min(self.steps - step);
            // samples[f][series] for this chunk
            let mut chunk_samples: Vec<Vec<Vec<Sample>>> = families
                .iter()
                .map(|f| vec![Vec::with_capacity(chunk); f.labels.len()])
                .collect();
            for k in 0..chunk {
                let s = (step + k) as u64;
                let t = self.start_ms + s as i64 * SCRAPE_MS;
                for (fi, f) in families.iter_mut().enumerate() {
                    f.advance(fi as u64 + 1, s);
                    for (i, v) in f.values.iter().enumerate() {
                        chunk_samples[fi][i].push(Sample {
                            value: *v,
                            timestamp: t,
                        });
                    }
                }
            }
            let mut batch = Vec::with_capacity(SERIES_PER_REQUEST);
            for (fi, f) in families.iter().enumerate() {
                for (i, samples) in std::mem::take(&mut chunk_samples[fi])
                    .into_iter()
                    .enumerate()
                {
                    batch.push(TimeSeries {
                        labels: f.labels[i].clone(),
                        samples,
                        histograms: vec![],
                    });
                    if batch.len() == SERIES_PER_REQUEST {
                        send(encode(&mut encoder, std::mem::take(&mut batch)));
                    }
                }
            }
            if !batch.is_empty() {
                send(encode(&mut encoder, batch));
            }
            step += chunk;
        }
    }
}

fn encode(encoder: &mut snap::raw::Encoder, timeseries: Vec<TimeSeries>) -> Vec<u8> {
    let req = WriteRequest {
        timeseries,
        metadata: vec![],
    };
    encoder
        .compress_vec(&req.encode_to_vec())
        .expect("snappy compresses")
}

fn size_prefix(n: usize) -> String {
    if n >= 1000 && n.is_multiple_of(1000) {
        format!("qs{}k", n / 1000)
    } else {
        format!("qs{n}")
    }
}

fn post_write(client: &reqwest::blocking::Client, s: &Server, body: Vec<u8>) {
    let r = client
        .post(s.url(s.write_path))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body)
        .send()
        .unwrap_or_else(|e| panic!("remote_write to {}: {e}", s.name));
    let status = r.status();
    if !status.is_success() {
        panic!(
            "remote_write to {} answered {status}: {}",
            s.name,
            r.text().unwrap_or_default()
        );
    }
}

/// Sends a query and returns the response body.
fn query(client: &reqwest::blocking::Client, s: &Server, form: &[(&str, String)]) -> Vec<u8> {
    let path = if form.iter().any(|(k, _)| *k == "step") {
        "/api/v1/query_range"
    } else {
        "/api/v1/query"
    };
    let r = client
        .post(s.url(path))
        .form(form)
        .send()
        .unwrap_or_else(|e| panic!("query {}: {e}", s.name));
    let status = r.status();
    let body = r.bytes().expect("response body").to_vec();
    assert!(
        status.is_success(),
        "{} answered {status} to {form:?}: {}",
        s.name,
        String::from_utf8_lossy(&body)
    );
    body
}

type Series = BTreeMap<String, Vec<(i64, f64)>>;

/// `data.result` of a query response as label-set string -> points (or the single value).
fn parse_result(body: &[u8]) -> Series {
    let v: serde_json::Value = serde_json::from_slice(body).expect("JSON response");
    assert_eq!(v["status"], "success", "{v}");
    let mut out = Series::new();
    for s in v["data"]["result"].as_array().expect("result array") {
        let mut labels: Vec<(String, String)> = s["metric"]
            .as_object()
            .expect("metric")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        labels.sort();
        let key = format!("{labels:?}");
        let point = |p: &serde_json::Value| {
            (
                (p[0].as_f64().expect("timestamp") * 1000.0).round() as i64,
                p[1].as_str()
                    .and_then(|x| x.parse::<f64>().ok())
                    .unwrap_or(f64::NAN),
            )
        };
        let points = match s.get("values") {
            Some(vals) => vals.as_array().expect("values").iter().map(point).collect(),
            None => vec![point(&s["value"])],
        };
        out.insert(key, points);
    }
    out
}

fn points(s: &Series) -> usize {
    s.values().map(Vec::len).sum()
}

/// Sum of the finite values: the one number the VictoriaMetrics comparison uses.
fn finite_sum(s: &Series) -> f64 {
    s.values()
        .flatten()
        .map(|p| p.1)
        .filter(|v| v.is_finite())
        .sum()
}

/// Checks Picket's answer against Prometheus' (same series, timestamps, values within
/// 1e-9 relative); returns the description of the first difference.
fn diff_exact(picket: &Series, prom: &Series) -> Option<String> {
    if picket.len() != prom.len() {
        return Some(format!("{} series vs {}", picket.len(), prom.len()));
    }
    for ((ka, a), (kb, b)) in picket.iter().zip(prom) {
        if ka != kb {
            return Some(format!("series {ka} vs {kb}"));
        }
        if a.len() != b.len() {
            return Some(format!("{ka}: {} points vs {}", a.len(), b.len()));
        }
        for (pa, pb) in a.iter().zip(b) {
            let same = pa.0 == pb.0
                && (pa.1 == pb.1
                    || (pa.1.is_nan() && pb.1.is_nan())
                    || (pa.1 - pb.1).abs() <= 1e-9 * pa.1.abs().max(pb.1.abs()));
            if !same {
                return Some(format!("{ka}: {pa:?} vs {pb:?}"));
            }
        }
    }
    None
}

struct QueryCase {
    kind: &'static str,
    expr: String,
    window_h: i64,
    size: usize,
    /// topk's result set depends on small value differences, so VM's count may differ.
    exact_series_vm: bool,
}

fn cases(sizes: &[usize], windows: &[i64]) -> Vec<QueryCase> {
    let mut out = Vec::new();
    for &window_h in windows {
        for &size in sizes {
            let p = size_prefix(size);
            let mut add = |kind, expr: String, exact_series_vm| {
                out.push(QueryCase {
                    kind,
                    expr,
                    window_h,
                    size,
                    exact_series_vm,
                })
            };
            add("rate", format!("rate({p}_requests_total[5m])"), true);
            add(
                "sum by",
                format!("sum by (job) (rate({p}_requests_total[5m]))"),
                true,
            );
            add(
                "topk",
                format!("topk(5, rate({p}_requests_total[5m]))"),
                false,
            );
            add(
                "histogram_quantile",
                format!(
                    "histogram_quantile(0.9, sum by (job, le) (rate({p}_request_duration_seconds_bucket[5m])))"
                ),
                true,
            );
            add(
                "quantile_over_time",
                format!("quantile_over_time(0.9, {p}_requests_total[5m])"),
                true,
            );
        }
    }
    out
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Prometheus' head keeps at most ~3 h of samples: with 24 h ingested it compacts the rest
/// into blocks on its one-minute timer. Waits (at most 5 minutes) until it has, so that the
/// compaction does not run during the timed queries.
fn wait_prometheus_compacted(client: &reqwest::blocking::Client, prom: &Server) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let text = client
            .get(prom.url("/metrics"))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default();
        let gauge = |name: &str| {
            text.lines()
                .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let span_h = (gauge("prometheus_tsdb_head_max_time")
            - gauge("prometheus_tsdb_head_min_time"))
            / 3_600_000.0;
        let compacting = gauge("prometheus_tsdb_compactions_triggered_total")
            > gauge("prometheus_tsdb_compactions_total")
                + gauge("prometheus_tsdb_compactions_failed_total");
        if span_h <= 3.5 && !compacting {
            return;
        }
        if Instant::now() > deadline {
            eprintln!(
                "prometheus: head still spans {span_h:.1} h after 5 minutes; measuring anyway"
            );
            return;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let measuring = args.iter().any(|a| a == "--bench");
    let full = args.iter().any(|a| a == "--full");
    let (sizes, windows, data_h, runs): (Vec<usize>, Vec<i64>, i64, usize) = if full {
        (vec![1000, 10_000], vec![1, 24], 24, 5)
    } else if measuring {
        (vec![1000, 10_000], vec![1], 2, 3)
    } else {
        (vec![100], vec![1], 1, 1)
    };
    // The last `data_h` hours (plus the 5 m the first window's rate looks back) before now,
    // on the 15 s grid shifted by 7 s: no sample sits on a window boundary of the (15 s- and
    // 120 s-aligned) query steps, where Prometheus 2.42's closed windows and 3.x's left-open
    // ones (which Picket follows) would differ.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64;
    let span = data_h * 3_600_000 + 600_000;
    let start_ms = (now - span - 60_000) / SCRAPE_MS * SCRAPE_MS + 7_000;
    let dataset = Dataset {
        sizes: sizes.clone(),
        start_ms,
        steps: (span / SCRAPE_MS) as usize,
    };

    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(900))
        .build()
        .expect("HTTP client");

    let picket_config = dir.join("picket.toml");
    std::fs::write(
        &picket_config,
        "[storage]\nbudget = \"16GiB\"\n[query]\ntimeout = \"15m\"\n\
         [collect.host]\nenabled = false\n[collect.self]\nenabled = false\n",
    )
    .expect("write picket config");
    let prom_config = dir.join("prometheus.yml");
    std::fs::write(&prom_config, "global:\n  scrape_interval: 15s\n")
        .expect("write prometheus config");
    let path = |p: &Path| p.to_string_lossy().into_owned();

    let port = free_port();
    let mut picket = spawn(
        "picket",
        &std::env::var("PICKET_BENCH_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_picket").into()),
        &[
            "run".into(),
            "--config".into(),
            path(&picket_config),
            "--data-dir".into(),
            path(&dir.join("picket")),
            "--listen".into(),
            format!("127.0.0.1:{port}"),
        ],
        "/api/v1/write",
        port,
    );
    let port = free_port();
    let mut vm = spawn(
        "victoria-metrics",
        VICTORIA,
        &[
            format!("-httpListenAddr=127.0.0.1:{port}"),
            format!("-storageDataPath={}", path(&dir.join("vm"))),
            "-retentionPeriod=1".into(),
            "-search.disableCache".into(),
            "-search.latencyOffset=0".into(),
            "-search.maxQueryDuration=15m".into(),
            "-loggerLevel=ERROR".into(),
        ],
        "/api/v1/write",
        port,
    );
    let port = free_port();
    let mut prom = spawn(
        "prometheus",
        PROMETHEUS,
        &[
            format!("--config.file={}", path(&prom_config)),
            format!("--storage.tsdb.path={}", path(&dir.join("prometheus"))),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--web.enable-remote-write-receiver".into(),
            "--query.timeout=15m".into(),
            "--log.level=error".into(),
        ],
        "/api/v1/write",
        port,
    );
    for s in [&mut picket, &mut vm, &mut prom] {
        wait_ready(&client, s);
    }
    let servers = [&picket, &vm, &prom];

    println!(
        "dataset: {} series ({}) x {} scrapes at 15 s = {} samples, {} to {} (ms)",
        dataset.series(),
        sizes
            .iter()
            .map(|&n| size_prefix(n))
            .collect::<Vec<_>>()
            .join(", "),
        dataset.steps,
        dataset.samples(),
        dataset.start_ms,
        dataset.last_ms()
    );
    // Ingest: one thread per server, each generating the same requests.
    let t0 = Instant::now();
    std::thread::scope(|scope| {
        for s in servers {
            let (client, dataset) = (&client, &dataset);
            scope.spawn(move || {
                let t = Instant::now();
                dataset.for_each_request(|body| post_write(client, s, body));
                println!(
                    "  ingested into {:<16} in {:>6.1} s",
                    s.name,
                    t.elapsed().as_secs_f64()
                );
            });
        }
    });
    println!("ingest done in {:.1} s", t0.elapsed().as_secs_f64());
    let _ = client.get(vm.url("/internal/force_flush")).send();

    // Every server must answer with every sample before anything is timed.
    let end_ms = dataset.last_ms();
    let count_deadline = Instant::now() + Duration::from_secs(120);
    for s in servers {
        loop {
            let mut total = 0.0;
            for f in dataset.families() {
                let name = &f.labels[0][0].value;
                let body = query(
                    &client,
                    s,
                    &[
                        (
                            "query",
                            format!("sum(count_over_time({name}[{}s]))", span / 1000 + 3600),
                        ),
                        ("time", format!("{}", end_ms as f64 / 1000.0)),
                    ],
                );
                total += finite_sum(&parse_result(&body));
            }
            if total as usize == dataset.samples() {
                println!("  {:<16} holds all {} samples", s.name, dataset.samples());
                break;
            }
            assert!(
                Instant::now() < count_deadline,
                "{} holds {total} samples of {} after 2 minutes",
                s.name,
                dataset.samples()
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
    if full {
        wait_prometheus_compacted(&client, &prom);
    }
    for s in servers {
        s.reset_peak_rss();
    }

    println!(
        "\n{:<20} {:>4} {:>6} {:>9} {:>10} {:>10} {:>10} {:>8} {:>8}  check",
        "query", "win", "series", "points", "Picket ms", "VM ms", "Prom ms", "P/VM", "P/Prom"
    );
    let mut worst_vm = 0.0f64;
    for case in cases(&sizes, &windows) {
        let step_s = if case.window_h >= 24 { 120 } else { 15 };
        // Aligned to the step, so that VictoriaMetrics' start/end alignment changes nothing.
        let end_s = end_ms / 1000 / step_s * step_s;
        let start_s = end_s - case.window_h * 3600;
        let form = [
            ("query", case.expr.clone()),
            ("start", start_s.to_string()),
            ("end", end_s.to_string()),
            ("step", step_s.to_string()),
        ];
        // Warm-up, and the answers compared.
        let answers: Vec<Series> = servers
            .iter()
            .map(|s| parse_result(&query(&client, s, &form)))
            .collect();
        let (pk, vma, pr) = (&answers[0], &answers[1], &answers[2]);
        if let Some(d) = diff_exact(pk, pr) {
            panic!("{}: Picket and Prometheus differ: {d}", case.expr);
        }
        assert!(points(pk) > 0, "{}: empty answer", case.expr);
        let vm_dev = (finite_sum(vma) - finite_sum(pr)).abs() / finite_sum(pr).abs().max(1e-300);
        let vm_series_ok = !case.exact_series_vm || vma.len() == pr.len();
        assert!(
            vm_series_ok && vm_dev < 0.1,
            "{}: VictoriaMetrics answers differently ({} series vs {}, value sum off by {:.1} %)",
            case.expr,
            vma.len(),
            pr.len(),
            vm_dev * 100.0
        );
        worst_vm = worst_vm.max(vm_dev);
        let medians: Vec<Duration> = servers
            .iter()
            .map(|s| {
                median(
                    (0..runs)
                        .map(|_| {
                            let t = Instant::now();
                            query(&client, s, &form);
                            t.elapsed()
                        })
                        .collect(),
                )
            })
            .collect();
        println!(
            "{:<20} {:>3}h {:>6} {:>9} {:>10.1} {:>10.1} {:>10.1} {:>8.2} {:>8.2}  {} series, VM {:+.2} %",
            case.kind,
            case.window_h,
            case.size,
            points(pk),
            ms(medians[0]),
            ms(medians[1]),
            ms(medians[2]),
            ms(medians[0]) / ms(medians[1]),
            ms(medians[0]) / ms(medians[2]),
            pk.len(),
            (finite_sum(vma) / finite_sum(pr) - 1.0) * 100.0
        );
    }
    println!(
        "\npeak RSS during the query phase (VmHWM after a reset at its start) and RSS at the end:"
    );
    for s in servers {
        println!(
            "  {:<16} peak {:>7.1} MiB   now {:>7.1} MiB",
            s.name,
            s.status_kib("VmHWM:") as f64 / 1024.0,
            s.status_kib("VmRSS:") as f64 / 1024.0
        );
    }
    println!(
        "(medians of {runs} runs after one warm-up; Picket equals Prometheus on every point; \
         VictoriaMetrics' value sums within {:.1} % of Prometheus')",
        worst_vm * 100.0
    );
}
