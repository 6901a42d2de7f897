//! Store ingest bench: node-exporter-like series (counters with regular increments, float
//! counters with 2 decimals, gauges that mostly repeat, a few ms of scrape jitter shared
//! by the series of one instance) appended one scrape at a time, with a flush every few
//! scrapes, then closed. Prints samples/s, bytes per sample on disk, bytes written per
//! sample (from `/proc/self/io`) and peak RSS.
//!
//! Size: `PICKET_BENCH_SERIES` (default 2000) × `PICKET_BENCH_SAMPLES` (default 3000),
//! `PICKET_BENCH_FLUSH_EVERY` scrapes per flush (default 4, i.e. a minute at 15 s).
//! Run: `cargo bench --bench store`.
//!
//! With `PICKET_BENCH_DATASET=FILE` it ingests a `gen.py --out` replay file of the
//! side-by-side runner in `../shared/bench` instead (decode + append as `/api/v1/write`
//! does, without HTTP; the store's flush timer at `PICKET_BENCH_FLUSH_MS`, default 10000)
//! and prints the same figures. The comparison with VictoriaMetrics and Prometheus is
//! `measure.py` (README, "Measuring").
//!
//! Measured 2026-11-22 on the 2-core x86_64 dev box (tempdir on ext4 on a virtio disk),
//! debug build (bytes do not depend on the build), 1000 series x 1440 samples (6 h):
//!
//! | flush every           | written B/sample (while ingesting + close) | on disk |
//! |-----------------------|--------------------------------------------|---------|
//! | 1 scrape (~10 s)      | 15.1 (14.1 + 1.0)                          | 1.85    |
//! | 120 scrapes (30 min)  | 3.6 (2.5 + 1.1)                            | 1.80    |
//!
//! At one flush per scrape each flush rewrites the log's last 4 KiB page and ~6 bytes per
//! series; at 30 minutes the log holds column-encoded pieces (codec.rs, block tag 5) and
//! most bytes written are the sealed chunks themselves. Before the column codec (chunk tag
//! 4) the same bench measured ~5.8 B/sample on disk and 15-16 written at 4 scrapes/flush.

use picket::model::{Labels, Matcher, Sample};
use picket::query::SeriesReader;
use picket::store::{Store, StoreOptions, WriteBatch};
use std::time::{Duration, Instant};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `/proc/self/io` write_bytes (bytes this process caused to be written to storage).
fn write_bytes() -> Option<u64> {
    let io = std::fs::read_to_string("/proc/self/io").ok()?;
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
}

fn vm_hwm_kb() -> Option<u64> {
    let st = std::fs::read_to_string("/proc/self/status").ok()?;
    st.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
}

enum Kind {
    /// Bytes/packets counters: integer increments, varying a little.
    IntCounter { rate: u64 },
    /// CPU-seconds counters: float increments.
    FloatCounter { rate: f64 },
    /// Gauges (filesystem size, memory, up): mostly repeat, change now and then.
    Gauge { every: u64 },
}

/// `/proc/self/status` VmRSS in kB.
fn vm_rss_kb() -> Option<u64> {
    let st = std::fs::read_to_string("/proc/self/status").ok()?;
    st.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
}

/// Ingests a `gen.py --out` replay file (remote_write requests, see ../shared/bench) through
/// the same path as `POST /api/v1/write`, minus HTTP, with the store's own flush timer.
fn dataset(path: &str) {
    use std::io::{BufRead, Read};
    let mut f = std::io::BufReader::new(std::fs::File::open(path).expect("dataset file"));
    let mut line = String::new();
    for _ in 0..2 {
        line.clear();
        f.read_line(&mut line).expect("dataset header");
    }
    let mut requests = Vec::new();
    let mut head = [0u8; 12];
    while f.read_exact(&mut head).is_ok() {
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let mut body = vec![0u8; len];
        f.read_exact(&mut body).expect("dataset record");
        requests.push(body);
    }
    let flush = Duration::from_millis(env("PICKET_BENCH_FLUSH_MS", 10_000) as u64);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(StoreOptions {
        path: dir.path().to_owned(),
        flush_interval: flush,
    })
    .expect("open");
    let ingest = picket::ingest::Ingest::new(store.clone());
    let wb0 = write_bytes();
    let started = Instant::now();
    let mut samples = 0u64;
    for body in &requests {
        let raw = picket::api::remote_write::decompress(body, 64 << 20).expect("snappy");
        samples += ingest.remote_write(&raw).expect("ingest");
    }
    let ingest_time = started.elapsed();
    store.flush().expect("flush");
    let wb_flushed = write_bytes();
    let disk_flushed: u64 = walk(dir.path()).iter().sum();
    let rss = vm_rss_kb();
    store.close().expect("close");
    let wb1 = write_bytes();
    let disk_closed: u64 = walk(dir.path()).iter().sum();
    let n = samples as f64;
    println!("store bench, dataset {path}: {samples} samples, flush every {flush:?}");
    println!(
        "  ingest (decode + append, no HTTP): {:.0} samples/s ({:.2?})",
        n / ingest_time.as_secs_f64(),
        ingest_time
    );
    println!(
        "  on disk after a flush: {:.3} bytes/sample; after close: {:.3}",
        disk_flushed as f64 / n,
        disk_closed as f64 / n
    );
    if let (Some(a), Some(m), Some(b)) = (wb0, wb_flushed, wb1) {
        println!(
            "  written (/proc/self/io write_bytes): {:.3} bytes/sample through the flush, {:.3} \
             with the close",
            (m - a) as f64 / n,
            (b - a) as f64 / n
        );
    }
    if let (Some(r), Some(h)) = (rss, vm_hwm_kb()) {
        println!("  RSS after the flush {r} kB (peak {h} kB, includes the dataset in memory)");
    }
}

fn main() {
    if let Ok(path) = std::env::var("PICKET_BENCH_DATASET") {
        dataset(&path);
        return;
    }
    // Under `cargo test` (no `--bench` argument) a small run checks the bench still works.
    let measuring = std::env::args().any(|a| a == "--bench");
    let n_series = env("PICKET_BENCH_SERIES", if measuring { 2000 } else { 100 });
    let n_samples = env("PICKET_BENCH_SAMPLES", if measuring { 3000 } else { 300 });
    let flush_every = env("PICKET_BENCH_FLUSH_EVERY", 4).max(1);
    let dir = tempfile::tempdir().expect("tempdir");

    let mut series = Vec::with_capacity(n_series);
    for i in 0..n_series {
        let (name, kind) = match i % 10 {
            0..=3 => (
                "node_network_receive_bytes_total",
                Kind::IntCounter {
                    rate: 1000 + (i as u64 * 7919) % 100_000,
                },
            ),
            4 | 5 => (
                "node_cpu_seconds_total",
                Kind::FloatCounter {
                    rate: 14.0 + (i % 7) as f64 * 0.13,
                },
            ),
            _ => (
                "node_filesystem_avail_bytes",
                Kind::Gauge {
                    every: 20 + (i as u64 % 40),
                },
            ),
        };
        let labels = Labels::from_pairs([
            ("__name__", name.to_string()),
            ("instance", format!("pi-{}:9100", i % 5)),
            ("job", "node".to_string()),
            ("device", format!("dev{i}")),
        ]);
        series.push((labels, kind));
    }

    let store = Store::open(StoreOptions {
        path: dir.path().to_owned(),
        flush_interval: Duration::from_secs(3600),
    })
    .expect("open");
    let wb0 = write_bytes();
    let t0: i64 = 1_763_769_600_000;
    let mut rng: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut values: Vec<f64> = vec![0.0; n_series];
    let mut append_time = Duration::ZERO;
    let started = Instant::now();
    for k in 0..n_samples {
        let mut batch = WriteBatch::default();
        for (i, (labels, kind)) in series.iter().enumerate() {
            // Scrape jitter of a few ms, the same for every series of one instance.
            let t = t0 + k as i64 * 15_000 + ((k * 7 + i % 5) * 2_654_435_761 % 13) as i64 - 6;
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let v = &mut values[i];
            match kind {
                Kind::IntCounter { rate } => *v += (rate + rng % (rate / 10 + 1)) as f64,
                // Printed with 2 decimals, as node_exporter does.
                Kind::FloatCounter { rate } => {
                    *v = ((*v + rate + (rng % 100) as f64 / 1000.0) * 100.0).round() / 100.0
                }
                Kind::Gauge { every } => {
                    if (k as u64).is_multiple_of(*every) {
                        *v = (rng % 1_000_000) as f64 * 4096.0;
                    }
                }
            }
            batch
                .series
                .push((labels.clone(), vec![Sample { t, v: *v }]));
        }
        let a = Instant::now();
        store.append(batch).expect("append");
        append_time += a.elapsed();
        if (k + 1) % flush_every == 0 {
            store.flush().expect("flush");
        }
    }
    let ingest = started.elapsed();
    let stats = store.stats();
    let q = Instant::now();
    let got = store
        .select(
            &[Matcher::equal("__name__", "node_cpu_seconds_total")],
            t0 + (n_samples as i64 - 240) * 15_000,
            i64::MAX,
        )
        .expect("select");
    let query_time = q.elapsed();
    let wb_before_close = write_bytes();
    let c = Instant::now();
    store.close().expect("close");
    let close_time = c.elapsed();
    let wb1 = write_bytes();

    let total = (n_series * n_samples) as f64;
    let mut disk = 0u64;
    for e in walk(dir.path()) {
        disk += e;
    }
    if std::env::var_os("PICKET_BENCH_LIST").is_some() {
        let _ = std::process::Command::new("ls")
            .arg("-lR")
            .arg(dir.path())
            .status();
    }
    println!(
        "store bench: {n_series} series x {n_samples} samples, flush every {flush_every} scrapes"
    );
    println!(
        "  ingest (append + {} flushes): {:.0} samples/s ({:.2?}); append alone: {:.0} samples/s",
        stats.flushes,
        total / ingest.as_secs_f64(),
        ingest,
        total / append_time.as_secs_f64()
    );
    println!(
        "  last flush {:.2?}; close {:.2?}; head chunks before close {}",
        stats.last_flush_duration, close_time, stats.head_chunks
    );
    println!(
        "  on disk after close: {} bytes = {:.2} bytes/sample",
        disk,
        disk as f64 / total
    );
    if let (Some(a), Some(m), Some(b)) = (wb0, wb_before_close, wb1) {
        println!(
            "  written to storage (/proc/self/io write_bytes): {} bytes = {:.2} bytes/sample \
             ({:.2} while ingesting, {:.2} by the close: final seals and compaction)",
            b - a,
            (b - a) as f64 / total,
            (m - a) as f64 / total,
            (b - m) as f64 / total
        );
    }
    if let Some(h) = vm_hwm_kb() {
        println!("  peak RSS (VmHWM): {h} kB");
    }
    println!(
        "  select last hour of {} cpu series: {:.2?} ({} samples)",
        got.len(),
        query_time,
        got.iter().map(|s| s.samples.len()).sum::<usize>()
    );
}

fn walk(p: &std::path::Path) -> Vec<u64> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else if let Ok(m) = e.metadata() {
                out.push(m.len());
            }
        }
    }
    out
}
