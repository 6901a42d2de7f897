//! Differential test: the same data, written over remote_write to Picket and to a real
//! Prometheus (Debian's 2.42, `/usr/bin/prometheus`), then every query of
//! `tests/promql_differential/queries.txt` run against both as instant queries at a few
//! times and as a range query. Results must agree: label sets, values within 1e-9
//! relative (NaN equals NaN), sample timestamps, and order where Prometheus guarantees
//! one (`sort*` at the top of an instant query; matrices sorted by label set).
//!
//! Picket follows Prometheus 3.x; the reference is 2.42. The data and the queries are
//! shaped so that the two versions agree (see the comment at the top of queries.txt):
//! above all no sample ever sits on a window boundary, since 3.0 made range and lookback
//! windows left-open.
//!
//! The test fails, not skips, when `/usr/bin/prometheus` is missing: it is a declared
//! test dependency of this repository's CI image.

mod common;

use common::bins::PROMETHEUS;
use common::{ChildGuard, Picket, QUIET_CONFIG, client, free_port};
use picket::model::prompb::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// 2026-01-01T00:00:00Z: data starts here.
const BASE_MS: i64 = 1_767_225_600_000;
/// Scrape interval of the generated data.
const INTERVAL_MS: i64 = 15_000;
/// Three hours of samples per series.
const STEPS: i64 = 720;
/// Prometheus' staleness marker (`value.StaleNaN`).
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

// ---------------------------------------------------------------------------------------
// The reference server.

/// A Prometheus with no scrape jobs, accepting remote_write; killed by PID on drop.
struct Prometheus {
    child: ChildGuard,
    addr: String,
    _tmp: tempfile::TempDir,
}

impl Prometheus {
    fn start() -> Prometheus {
        assert!(
            std::path::Path::new(PROMETHEUS).exists(),
            "{PROMETHEUS} is missing: install Debian's `prometheus` package (2.42)"
        );
        let tmp = tempfile::tempdir().expect("temp dir");
        let config = tmp.path().join("prometheus.yml");
        // The out-of-order window mirrors /work/shared/conformance/prometheus-reference.yml:
        // the data is written in time order, but the window keeps a late batch from being
        // refused as "out of bounds" should the head have moved on.
        std::fs::write(
            &config,
            "global: {}\nstorage:\n  tsdb:\n    out_of_order_time_window: 100y\n",
        )
        .expect("write prometheus.yml");
        let log = std::fs::File::create(tmp.path().join("prometheus.log")).expect("log file");
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(PROMETHEUS)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .arg("--web.enable-remote-write-receiver")
            .arg("--storage.tsdb.retention.time=100y")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start prometheus");
        let mut p = Prometheus {
            child: ChildGuard(child),
            addr,
            _tmp: tmp,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client().get(p.url("/-/ready")).send()
                && r.status().as_u16() == 200
            {
                break;
            }
            if let Ok(Some(status)) = p.child.0.try_wait() {
                panic!(
                    "prometheus exited early with {status}: {}",
                    std::fs::read_to_string(p._tmp.path().join("prometheus.log"))
                        .unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        p
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }
}

// ---------------------------------------------------------------------------------------
// Deterministic data.

/// splitmix64: a seeded generator, so every run writes the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Timestamp of step `i` of a series with scrape phase `phase`, jittered by up to ±1.5 s.
/// Evaluation times end in .250 s and every range, offset, step and `@` in the corpus is
/// a whole number of seconds, so window boundaries fall on .000 or .250: a sample never
/// lands there, and 2.42's left-closed windows select what 3.x's left-open ones do.
fn sample_ts(i: i64, phase: i64, rng: &mut Rng) -> i64 {
    let mut t = BASE_MS + i * INTERVAL_MS + phase + rng.below(3000) as i64 - 1500;
    while t.rem_euclid(1000) == 0 || t.rem_euclid(1000) == 250 {
        t += 7;
    }
    t
}

struct Series {
    labels: Vec<(String, String)>,
    samples: Vec<(i64, f64)>,
}

fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn stale() -> f64 {
    f64::from_bits(STALE_NAN)
}

/// Counters with resets, a gap, a staleness marker, a late start and an early end.
fn counters(rng: &mut Rng, out: &mut Vec<Series>) {
    let targets = [
        ("api", "host-a:9100"),
        ("api", "host-b:9100"),
        ("api", "host-c:9100"),
        ("web", "host-a:9100"),
        ("web", "host-d.example.com:8080"),
    ];
    let mut n = 0;
    for (job, instance) in targets {
        for (method, code) in [("get", "200"), ("post", "200"), ("get", "500")] {
            n += 1;
            let phase = rng.below(14_000) as i64;
            let speed = 0.5 + 20.0 * rng.unit();
            let mut v = (rng.below(1000)) as f64;
            let mut samples = Vec::new();
            for i in 0..STEPS {
                let t = sample_ts(i, phase, rng);
                // A series that starts late and one that ends with a staleness marker,
                // as when a target appears or goes away.
                if n == 4 && i < 200 {
                    continue;
                }
                if n == 7 && i >= 600 {
                    if i == 600 {
                        samples.push((t, stale()));
                    }
                    continue;
                }
                // A 20-minute gap (longer than the 5 m lookback).
                if n == 2 && (300..380).contains(&i) {
                    continue;
                }
                // Stale for 15 minutes, then back.
                if n == 9 && (500..560).contains(&i) {
                    if i == 500 {
                        samples.push((t, stale()));
                    }
                    continue;
                }
                if rng.below(250) == 0 {
                    // Counter reset: the process restarted.
                    v = rng.below(5) as f64;
                } else if code == "500" {
                    v += rng.below(3) as f64;
                } else {
                    v += (speed * 15.0 * (0.5 + rng.unit())).round();
                }
                samples.push((t, v));
            }
            out.push(Series {
                labels: labels(&[
                    ("__name__", "http_requests_total"),
                    ("job", job),
                    ("instance", instance),
                    ("method", method),
                    ("code", code),
                ]),
                samples,
            });
        }
    }
}

/// Gauges: temperatures, memory (large values), queue lengths (small integers), `up`.
fn gauges(rng: &mut Rng, out: &mut Vec<Series>) {
    let instances = ["host-a:9100", "host-b:9100", "host-c:9100", "host-e:9100"];
    for (k, instance) in instances.iter().enumerate() {
        let phase = rng.below(14_000) as i64;
        let mut temp = Vec::new();
        let mut free = Vec::new();
        let mut used = Vec::new();
        let mut queue = Vec::new();
        let mut up = Vec::new();
        let base_temp = 40.0 + 5.0 * k as f64;
        for i in 0..STEPS {
            let t = sample_ts(i, phase, rng);
            let x = i as f64 / 40.0 + k as f64;
            temp.push((t, base_temp + 8.0 * x.sin() + 2.0 * rng.unit()));
            let u = 1.5e9 + 3e8 * (x / 3.0).cos() + 1e7 * rng.unit();
            used.push((t, u.round()));
            free.push((t, (4e9 - u).round()));
            if k != 3 || !(100..150).contains(&i) {
                queue.push((t, rng.below(8) as f64));
            }
            let down = k == 2 && (400..430).contains(&i);
            up.push((t, if down { 0.0 } else { 1.0 }));
        }
        out.push(Series {
            labels: labels(&[
                ("__name__", "node_temperature_celsius"),
                ("job", "node"),
                ("instance", instance),
            ]),
            samples: temp,
        });
        for (kind, s) in [("used", used), ("free", free)] {
            out.push(Series {
                labels: labels(&[
                    ("__name__", "node_memory_bytes"),
                    ("job", "node"),
                    ("instance", instance),
                    ("type", kind),
                ]),
                samples: s,
            });
        }
        out.push(Series {
            labels: labels(&[
                ("__name__", "queue_length"),
                ("job", "worker"),
                ("instance", instance),
            ]),
            samples: queue,
        });
        out.push(Series {
            labels: labels(&[("__name__", "up"), ("job", "node"), ("instance", instance)]),
            samples: up,
        });
        let version = if k % 2 == 0 { "1.2.0" } else { "1.3.1" };
        let info: Vec<(i64, f64)> = (0..STEPS)
            .map(|i| (sample_ts(i, phase, rng), 1.0))
            .collect();
        out.push(Series {
            labels: labels(&[
                ("__name__", "build_info"),
                ("job", "node"),
                ("instance", instance),
                ("version", version),
            ]),
            samples: info,
        });
    }
}

/// Gauges holding NaN, +Inf and -Inf among ordinary values.
fn special_values(rng: &mut Rng, out: &mut Vec<Series>) {
    for case in ["nan", "inf", "neginf", "mixed", "plain"] {
        let phase = rng.below(14_000) as i64;
        let mut samples = Vec::new();
        for i in 0..STEPS {
            let t = sample_ts(i, phase, rng);
            let normal = 10.0 * rng.unit() - 3.0;
            let v = match case {
                "nan" if i % 37 == 5 => f64::NAN,
                "inf" if i % 53 == 7 => f64::INFINITY,
                "neginf" if i % 41 == 3 => f64::NEG_INFINITY,
                "mixed" => match i % 29 {
                    1 => f64::NAN,
                    2 => f64::INFINITY,
                    3 => f64::NEG_INFINITY,
                    _ => normal,
                },
                _ => normal,
            };
            samples.push((t, v));
        }
        out.push(Series {
            labels: labels(&[("__name__", "weird_gauge"), ("case", case), ("job", "odd")]),
            samples,
        });
    }
}

/// Classic histograms (`le` buckets, `_sum`, `_count`), one of them reset midway.
fn histograms(rng: &mut Rng, out: &mut Vec<Series>) {
    let les = ["0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "+Inf"];
    let bounds = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, f64::INFINITY];
    for (job, instance) in [
        ("api", "host-a:9100"),
        ("api", "host-b:9100"),
        ("web", "host-a:9100"),
    ] {
        let phase = rng.below(14_000) as i64;
        let mut counts = [0u64; 8];
        let mut sum = 0.0;
        let mut buckets: Vec<Vec<(i64, f64)>> = vec![Vec::new(); 8];
        let mut sums = Vec::new();
        let mut totals = Vec::new();
        let slow = if job == "web" { 3.0 } else { 1.0 };
        for i in 0..STEPS {
            let t = sample_ts(i, phase, rng);
            if instance == "host-b:9100" && i == 400 {
                counts = [0; 8];
                sum = 0.0;
            }
            for _ in 0..rng.below(25) {
                // Roughly exponential latencies around 0.2 s (0.6 s for web).
                let lat = -0.2 * slow * (1.0 - rng.unit()).ln();
                sum += lat;
                for (c, b) in counts.iter_mut().zip(bounds) {
                    if lat <= b {
                        *c += 1;
                    }
                }
            }
            for (b, c) in buckets.iter_mut().zip(counts) {
                b.push((t, c as f64));
            }
            sums.push((t, sum));
            totals.push((t, counts[7] as f64));
        }
        for (le, samples) in les.iter().zip(buckets) {
            out.push(Series {
                labels: labels(&[
                    ("__name__", "http_request_duration_seconds_bucket"),
                    ("job", job),
                    ("instance", instance),
                    ("le", le),
                ]),
                samples,
            });
        }
        for (name, samples) in [
            ("http_request_duration_seconds_sum", sums),
            ("http_request_duration_seconds_count", totals),
        ] {
            out.push(Series {
                labels: labels(&[("__name__", name), ("job", job), ("instance", instance)]),
                samples,
            });
        }
    }
}

fn dataset() -> Vec<Series> {
    let mut rng = Rng(0x5049_434b_4554); // "PICKET"
    let mut out = Vec::new();
    counters(&mut rng, &mut out);
    gauges(&mut rng, &mut out);
    special_values(&mut rng, &mut out);
    histograms(&mut rng, &mut out);
    out
}

/// Remote-write requests covering ten minutes each, all series, in time order, so that
/// neither server ever sees an out-of-order sample.
fn write_requests(data: &[Series]) -> Vec<Vec<u8>> {
    let slice = 10 * 60_000;
    let mut out = Vec::new();
    let mut from = BASE_MS - 60_000;
    let end = BASE_MS + STEPS * INTERVAL_MS + 60_000;
    while from < end {
        let to = from + slice;
        let timeseries: Vec<TimeSeries> = data
            .iter()
            .filter_map(|s| {
                let samples: Vec<Sample> = s
                    .samples
                    .iter()
                    .filter(|(t, _)| *t >= from && *t < to)
                    .map(|&(timestamp, value)| Sample { timestamp, value })
                    .collect();
                if samples.is_empty() {
                    return None;
                }
                let mut labels: Vec<Label> = s
                    .labels
                    .iter()
                    .map(|(name, value)| Label {
                        name: name.clone(),
                        value: value.clone(),
                    })
                    .collect();
                labels.sort_by(|a, b| a.name.cmp(&b.name));
                Some(TimeSeries {
                    labels,
                    samples,
                    histograms: vec![],
                })
            })
            .collect();
        let req = WriteRequest {
            timeseries,
            metadata: vec![],
        };
        out.push(
            snap::raw::Encoder::new()
                .compress_vec(&req.encode_to_vec())
                .expect("snappy"),
        );
        from = to;
    }
    out
}

fn remote_write(base: &str, body: &[u8]) {
    let r = client()
        .post(format!("{base}/api/v1/write"))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .body(body.to_vec())
        .send()
        .expect("remote_write");
    let code = r.status().as_u16();
    assert!(
        (200..300).contains(&code),
        "{base} refused remote_write: {code} {}",
        r.text().unwrap_or_default()
    );
}

// ---------------------------------------------------------------------------------------
// Queries and results.

struct Query {
    line: usize,
    /// What Picket runs.
    picket: String,
    /// What Prometheus 2.42 runs (differs only for renamed functions, `a ;; b` lines).
    prometheus: String,
}

fn corpus() -> Vec<Query> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/promql_differential/queries.txt");
    let text = std::fs::read_to_string(&path).expect("read queries.txt");
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let l = l.trim();
            if l.is_empty() || l.starts_with('#') {
                return None;
            }
            let (a, b) = l.split_once(" ;; ").unwrap_or((l, l));
            Some(Query {
                line: i + 1,
                picket: a.trim().to_string(),
                prometheus: b.trim().to_string(),
            })
        })
        .collect()
}

/// One evaluation of a query: an instant query at `time`, or a range query.
#[derive(Clone, Copy, Debug)]
enum Eval {
    Instant(i64),
    Range { start: i64, end: i64, step_s: i64 },
}

fn secs(ms: i64) -> String {
    format!("{}.{:03}", ms.div_euclid(1000), ms.rem_euclid(1000))
}

/// Evaluation times end in .250 s (see `sample_ts`): one inside the data, one just after
/// a counter reset region and the gap, and one after the data ended (lookback, staleness).
fn evals() -> Vec<Eval> {
    let at = |min: i64, s: i64| BASE_MS + min * 60_000 + s * 1000 + 250;
    vec![
        Eval::Instant(at(61, 7)),
        Eval::Instant(at(96, 41)),
        Eval::Instant(at(152, 3)),
        Eval::Instant(at(181, 30)),
        Eval::Range {
            start: at(70, 0),
            end: at(175, 0),
            step_s: 150,
        },
        // Fine steps across the counters' 20-minute gap and the staleness marker at 02:05.
        Eval::Range {
            start: at(72, 0),
            end: at(132, 0),
            step_s: 17,
        },
    ]
}

/// A result as both servers return it, normalized for comparison.
#[derive(Debug)]
enum Outcome {
    Error(String),
    Scalar(f64, f64),
    String(String),
    /// (labels, points): a vector has one point per series.
    Series(Vec<(String, Vec<(f64, f64)>)>),
}

impl Outcome {
    /// A short description for a failure message: a whole matrix would drown the diff.
    fn brief(&self) -> String {
        match self {
            Outcome::Series(s) => match s.first() {
                Some((labels, points)) => format!(
                    "{} series, the first {labels} {}",
                    s.len(),
                    show_points(points)
                ),
                None => "no series".into(),
            },
            other => format!("{other:?}"),
        }
    }
}

fn label_key(metric: &Value) -> String {
    let map: BTreeMap<&str, &str> = metric
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    let inner: Vec<String> = map.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", inner.join(", "))
}

fn point(p: &Value) -> (f64, f64) {
    let t = p[0].as_f64().unwrap_or(f64::NAN);
    let v = match p[1].as_str().unwrap_or("") {
        "NaN" => f64::NAN,
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s.parse().unwrap_or(f64::NAN),
    };
    (t, v)
}

fn run(base: &str, q: &str, e: Eval) -> Outcome {
    let (path, form) = match e {
        Eval::Instant(t) => (
            "/api/v1/query",
            vec![("query", q.to_string()), ("time", secs(t))],
        ),
        Eval::Range { start, end, step_s } => (
            "/api/v1/query_range",
            vec![
                ("query", q.to_string()),
                ("start", secs(start)),
                ("end", secs(end)),
                ("step", step_s.to_string()),
            ],
        ),
    };
    let r = match client().post(format!("{base}{path}")).form(&form).send() {
        Ok(r) => r,
        Err(e) => return Outcome::Error(format!("transport: {e}")),
    };
    let body = r.text().unwrap_or_default();
    let v: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(_) => return Outcome::Error(format!("not JSON: {body}")),
    };
    if v["status"] != "success" {
        return Outcome::Error(v["errorType"].as_str().unwrap_or("?").to_string());
    }
    let data = &v["data"];
    let result = &data["result"];
    match data["resultType"].as_str() {
        Some("scalar") => {
            let (t, v) = point(result);
            Outcome::Scalar(t, v)
        }
        Some("string") => Outcome::String(result[1].as_str().unwrap_or("").to_string()),
        Some("vector") => Outcome::Series(
            result
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| (label_key(&s["metric"]), vec![point(&s["value"])]))
                .collect(),
        ),
        Some("matrix") => Outcome::Series(
            result
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| {
                    let points = s["values"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(point)
                        .collect();
                    (label_key(&s["metric"]), points)
                })
                .collect(),
        ),
        other => Outcome::Error(format!("unknown resultType {other:?}")),
    }
}

/// Equal within 1e-9 relative; NaN equals NaN; infinities must match exactly.
fn same_value(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    if a.is_infinite() || b.is_infinite() {
        return false;
    }
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn same_points(a: &[(f64, f64)], b: &[(f64, f64)]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x.0 - y.0).abs() < 1e-6 && same_value(x.1, y.1))
}

fn show_points(p: &[(f64, f64)]) -> String {
    let shown: Vec<String> = p.iter().take(6).map(|(t, v)| format!("{v} @{t}")).collect();
    let more = if p.len() > 6 {
        format!(" … ({} points)", p.len())
    } else {
        String::new()
    };
    format!("[{}]{more}", shown.join(", "))
}

/// Where two series' points first part: the point (or the missing one) on each side.
fn first_difference(a: &[(f64, f64)], b: &[(f64, f64)]) -> String {
    let i = a
        .iter()
        .zip(b)
        .position(|(x, y)| !same_points(&[*x], &[*y]))
        .unwrap_or(a.len().min(b.len()));
    let at = |p: &[(f64, f64)]| {
        p.get(i)
            .map(|(t, v)| format!("{v} @{t}"))
            .unwrap_or_else(|| "no point".into())
    };
    format!(
        "point #{i} of {}/{}: Picket {}, Prometheus {}",
        a.len(),
        b.len(),
        at(a),
        at(b)
    )
}

/// Compares Picket's outcome with Prometheus'; returns a readable difference.
fn compare(picket: Outcome, prom: Outcome, ordered: bool) -> Option<String> {
    match (picket, prom) {
        (Outcome::Error(a), Outcome::Error(b)) => {
            (a != b).then(|| format!("both fail, but Picket says {a} and Prometheus {b}"))
        }
        (Outcome::Error(a), b) => Some(format!(
            "only Picket fails ({a}); Prometheus: {}",
            b.brief()
        )),
        (a, Outcome::Error(b)) => Some(format!(
            "only Prometheus fails ({b}); Picket: {}",
            a.brief()
        )),
        (Outcome::Scalar(t1, v1), Outcome::Scalar(t2, v2)) => {
            (!same_points(&[(t1, v1)], &[(t2, v2)]))
                .then(|| format!("scalar: Picket {v1} @{t1}, Prometheus {v2} @{t2}"))
        }
        (Outcome::String(a), Outcome::String(b)) => {
            (a != b).then(|| format!("string: Picket {a:?}, Prometheus {b:?}"))
        }
        (Outcome::Series(mut a), Outcome::Series(mut b)) => {
            if !ordered {
                a.sort_by(|x, y| x.0.cmp(&y.0));
                b.sort_by(|x, y| x.0.cmp(&y.0));
            }
            for i in 0..a.len().max(b.len()) {
                match (a.get(i), b.get(i)) {
                    (Some(x), Some(y)) if x.0 == y.0 && same_points(&x.1, &y.1) => continue,
                    (Some(x), Some(y)) if x.0 == y.0 => {
                        return Some(format!("series {}: {}", x.0, first_difference(&x.1, &y.1)));
                    }
                    (x, y) => {
                        let only = |s: Option<&(String, Vec<(f64, f64)>)>| {
                            s.map(|s| format!("{} {}", s.0, show_points(&s.1)))
                                .unwrap_or_else(|| "nothing".into())
                        };
                        return Some(format!(
                            "series #{i} ({} vs {} series): Picket has {}, Prometheus has {}",
                            a.len(),
                            b.len(),
                            only(x),
                            only(y)
                        ));
                    }
                }
            }
            None
        }
        (a, b) => Some(format!(
            "result types differ: Picket {}, Prometheus {}",
            a.brief(),
            b.brief()
        )),
    }
}

/// Prometheus guarantees the order of an instant vector only under `sort*` at the top
/// (3.x's `sort_by_label*` is not in 2.42).
fn ordered_instant(q: &str) -> bool {
    q.starts_with("sort(") || q.starts_with("sort_desc(")
}

/// Runs one query in every evaluation mode; returns the differences found and how many
/// evaluations gave Prometheus a non-empty result.
fn check(picket: &str, prom: &str, q: &Query) -> (Vec<String>, usize) {
    let mut diffs = Vec::new();
    let mut non_empty = 0;
    for e in evals() {
        let ordered = match e {
            Eval::Instant(_) => ordered_instant(&q.prometheus),
            Eval::Range { .. } => true,
        };
        // A range query only takes scalar and vector expressions: both sides must refuse
        // the others in the same way, which `compare` checks too.
        let a = run(picket, &q.picket, e);
        let b = run(prom, &q.prometheus, e);
        if std::env::var_os("PICKET_DIFF_ONLY").is_some() {
            eprintln!(
                "{} {e:?}\n  Picket:     {a:?}\n  Prometheus: {b:?}",
                q.picket
            );
        }
        if !matches!(&b, Outcome::Error(_)) && !matches!(&b, Outcome::Series(s) if s.is_empty()) {
            non_empty += 1;
        }
        if let Some(d) = compare(a, b, ordered) {
            let when = match e {
                Eval::Instant(t) => format!("instant at {}", secs(t)),
                Eval::Range { start, end, step_s } => {
                    format!("range {}..{} step {step_s}s", secs(start), secs(end))
                }
            };
            diffs.push(format!("line {}: {}\n  {when}: {d}", q.line, q.picket));
        }
    }
    (diffs, non_empty)
}

#[test]
fn picket_answers_the_query_corpus_as_prometheus_does() {
    let started = Instant::now();
    let mut queries = corpus();
    // A developer aid for chasing one difference: PICKET_DIFF_ONLY=<substring> runs only
    // the queries containing it and prints both sides in full.
    let only = std::env::var("PICKET_DIFF_ONLY").ok();
    if let Some(only) = &only {
        queries.retain(|q| q.picket.contains(only.as_str()));
    }
    assert!(
        only.is_some() || queries.len() >= 300,
        "the corpus should hold at least 300 queries, has {}",
        queries.len()
    );
    let prom = Prometheus::start();
    let picket = Picket::start(QUIET_CONFIG);
    let data = dataset();
    for body in write_requests(&data) {
        remote_write(&picket.url(""), &body);
        remote_write(&prom.url(""), &body);
    }
    let picket_base = picket.url("");
    let prom_base = prom.url("");

    // Sanity: both hold every series (a broken load would make every query agree on
    // nothing).
    let count = "count({__name__=~\".+\"})";
    let at = secs(BASE_MS + 60 * 60_000 + 250);
    for base in [&picket_base, &prom_base] {
        match run(base, count, Eval::Instant(BASE_MS + 60 * 60_000 + 250)) {
            Outcome::Series(s) => assert!(
                s.len() == 1 && s[0].1[0].1 >= (data.len() - 10) as f64,
                "{base} holds too few series at {at}: {s:?}"
            ),
            other => panic!("{base}: {other:?}"),
        }
    }

    // Two workers: the machine has two cores and each query goes to both servers.
    let workers = 2;
    let results: Vec<(Vec<String>, usize)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|w| {
                let queries = &queries;
                let (pk, pr) = (&picket_base, &prom_base);
                scope.spawn(move || {
                    queries
                        .iter()
                        .skip(w)
                        .step_by(workers)
                        .map(|q| check(pk, pr, q))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    });
    let evals_per_query = evals().len();
    let total = queries.len() * evals_per_query;
    let non_empty: usize = results.iter().map(|r| r.1).sum();
    let diffs: Vec<String> = results.into_iter().flat_map(|r| r.0).collect();
    eprintln!(
        "{} queries x {evals_per_query} evaluations in {:.1} s; {non_empty} of {total} with a non-empty result",
        queries.len(),
        started.elapsed().as_secs_f64()
    );
    // Agreeing on empty results proves little: most evaluations must return data.
    assert!(
        only.is_some() || non_empty * 10 >= total * 8,
        "only {non_empty} of {total} evaluations returned data from Prometheus"
    );
    if !diffs.is_empty() {
        let mut lines: Vec<&str> = diffs.iter().map(String::as_str).collect();
        lines.sort();
        panic!(
            "{} of {} evaluations differ from Prometheus 2.42:\n{}",
            diffs.len(),
            total,
            lines.join("\n")
        );
    }
}

#[test]
fn compare_reports_the_first_differing_series() {
    let a = Outcome::Series(vec![("{a=\"1\"}".into(), vec![(1.0, 2.0)])]);
    let b = Outcome::Series(vec![("{a=\"1\"}".into(), vec![(1.0, 2.5)])]);
    let d = compare(a, b, false).expect("values differ");
    assert!(d.contains("{a=\"1\"}") && d.contains("2.5"), "{d}");
    let nan = || Outcome::Series(vec![("{}".into(), vec![(1.0, f64::NAN)])]);
    assert!(compare(nan(), nan(), true).is_none(), "NaN equals NaN");
    let one = Outcome::Series(vec![("{b=\"x\"}".into(), vec![(1.0, 1.0)])]);
    let none = Outcome::Series(vec![]);
    let d = compare(one, none, false).expect("a missing series");
    assert!(d.contains("Prometheus has nothing"), "{d}");
    assert!(!same_value(1.0, 1.0 + 1e-8));
    assert!(same_value(1e12, 1e12 + 1e-4));
    assert!(!same_value(f64::INFINITY, f64::NEG_INFINITY));
}
