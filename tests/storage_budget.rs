//! The storage budget end to end: the real binary with `storage.budget = "20MB"` ingests 60
//! simulated days at 15 s, backfilled in time order through remote_write, while a sampler
//! thread measures the data dir. It must never exceed the tiers' budgets plus one open file
//! per tier plus the index; afterwards, queries over the whole 60 days answer from the
//! rollup tiers with a warning, and counts of the deleted days are exact.
//!
//! The series count defaults to what a debug build ingests in well under two minutes
//! (`PICKET_BUDGET_SERIES` overrides it, e.g. 2000 for the full figure with a
//! release build: `cargo test --release --test storage_budget`).

mod common;

use common::{Picket, QUIET_CONFIG, series, write_request};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const DAYS: i64 = 60;
const STEP_MS: i64 = 15_000;
const DAY_MS: i64 = 86_400_000;
const BUDGET: u64 = 20_000_000;
/// Samples per series in one remote_write request (2 h).
const PER_REQUEST: i64 = 480;

/// Sizes of one data dir sample: total, per tier (raw, 5m, 1h) the sum and the largest
/// file (raw: day file plus its block log segments), and the index.
#[derive(Debug, Default, Clone, Copy)]
struct DirSample {
    total: u64,
    tiers: [(u64, u64); 3],
    index: u64,
}

fn measure(dir: &Path) -> DirSample {
    let mut s = DirSample {
        index: std::fs::metadata(dir.join("index.redb")).map_or(0, |m| m.len()),
        ..DirSample::default()
    };
    s.total = s.index;
    for (i, name) in ["raw", "5m", "1h"].iter().enumerate() {
        let mut per_file: std::collections::BTreeMap<String, u64> = Default::default();
        for e in std::fs::read_dir(dir.join(name))
            .into_iter()
            .flatten()
            .flatten()
        {
            let len = e.metadata().map_or(0, |m| m.len());
            let file = e.file_name().to_string_lossy().into_owned();
            // `<start>.redb` and `<start>.<seq>.log` belong to partition `<start>`.
            let key = file.split('.').next().unwrap_or("").to_owned();
            *per_file.entry(key).or_default() += len;
            s.total += len;
        }
        s.tiers[i] = (
            per_file.values().sum(),
            per_file.values().copied().max().unwrap_or(0),
        );
    }
    s
}

#[test]
fn a_20mb_budget_holds_through_60_backfilled_days_and_old_days_answer_from_rollups() {
    let n_series: usize = std::env::var("PICKET_BUDGET_SERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let config = format!(
        "{QUIET_CONFIG}[storage]\nbudget = \"20MB\"\nflush_interval = \"1s\"\n\
         shares = {{ raw = 0.6, \"5m\" = 0.2, \"1h\" = 0.1, logs = 0.1 }}\n"
    );
    let p = Picket::start(&config);
    let dir = p.data_dir.clone();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (dir, stop) = (dir.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut trace = Vec::new();
            while !stop.load(Ordering::SeqCst) {
                trace.push(measure(&dir));
                std::thread::sleep(Duration::from_millis(20));
            }
            trace.push(measure(&dir));
            trace
        })
    };
    // A whole number of days ago, so day boundaries are partition boundaries.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let t0 = (now / DAY_MS - DAYS) * DAY_MS;
    let names: Vec<(String, String)> = (0..n_series)
        .map(|i| {
            let name = if i % 2 == 0 {
                "bt_gauge"
            } else {
                "bt_requests_total"
            };
            (name.to_owned(), i.to_string())
        })
        .collect();
    let started = Instant::now();
    let total_steps = DAYS * DAY_MS / STEP_MS;
    let mut k = 0;
    while k < total_steps {
        let end = (k + PER_REQUEST).min(total_steps);
        let batch: Vec<_> = names
            .iter()
            .enumerate()
            .map(|(i, (name, inst))| {
                // Cheap and compressible: gauges step through a few levels, counters climb
                // by a fixed amount per scrape.
                let samples: Vec<(i64, f64)> = (k..end)
                    .map(|j| {
                        let v = if i % 2 == 0 {
                            ((j / 240 + i as i64) % 5) as f64
                        } else {
                            (j * (1 + i as i64 % 3)) as f64
                        };
                        (t0 + j * STEP_MS, v)
                    })
                    .collect();
                series(&[("__name__", name), ("instance", inst)], &samples)
            })
            .collect();
        let (code, body) = p.remote_write(&write_request(batch), None);
        assert_eq!(code, 204, "{body}");
        k = end;
    }
    let ingest = started.elapsed();
    // Let the last flushes and keeper rounds run.
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::SeqCst);
    let trace = sampler.join().expect("sampler");

    let budgets = [0.6, 0.2, 0.1].map(|s| (BUDGET as f64 * s) as u64);
    let largest: [u64; 3] =
        std::array::from_fn(|i| trace.iter().map(|s| s.tiers[i].1).max().unwrap_or(0));
    let max_index = trace.iter().map(|s| s.index).max().unwrap_or(0);
    let bound = budgets.iter().sum::<u64>() + largest.iter().sum::<u64>() + max_index;
    let max_total = trace.iter().map(|s| s.total).max().unwrap_or(0);
    eprintln!(
        "{n_series} series x {DAYS} d at 15 s ({} samples) ingested in {:.1} s; data dir max \
         {max_total} bytes over {} samples of it (budget {BUDGET}, bound {bound}: budgets + \
         largest file per tier {largest:?} + index {max_index}); final {:?}",
        n_series as i64 * total_steps,
        ingest.as_secs_f64(),
        trace.len(),
        trace.last()
    );
    for s in &trace {
        assert!(s.total <= bound, "data dir {s:?} over {bound}");
        for i in 0..3 {
            assert!(
                s.tiers[i].0 <= budgets[i] + largest[i],
                "tier {i}: {s:?} over budget {} + one file {}",
                budgets[i],
                largest[i]
            );
        }
    }
    let last = trace.last().copied().unwrap_or_default();
    assert!(
        last.tiers[0].0 > 0 && last.tiers[1].0 > 0 && last.tiers[2].0 > 0,
        "{last:?}"
    );

    // The whole 60 days: the first days' raw files are long gone, the 1h tier answers.
    let (code, v) = p.post_form(
        "/api/v1/query_range",
        &[
            ("query", "count_over_time(bt_gauge[1d])"),
            ("start", &((t0 + DAY_MS) / 1000).to_string()),
            ("end", &((t0 + (DAYS - 1) * DAY_MS) / 1000).to_string()),
            ("step", "86400"),
        ],
    );
    assert_eq!(code, 200, "{v}");
    let warnings = v["warnings"].as_array().cloned().unwrap_or_default();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap_or("").contains("rollup tier")),
        "{v}"
    );
    let result = v["data"]["result"].as_array().expect("matrix");
    assert_eq!(result.len(), n_series.div_ceil(2), "{v}");
    for s in result {
        let values = s["values"].as_array().expect("values");
        assert_eq!(values.len() as i64, DAYS - 1, "{s}");
        // Every day's count is exact: 5760 samples (the first window holds day 0).
        for x in values {
            assert_eq!(x[1], "5760", "{s}");
        }
    }
    // rate over a deleted day from the counters' rollups: the raw rate exactly (steady
    // counters, no resets).
    let at = ((t0 + 2 * DAY_MS) / 1000).to_string();
    let r = p.query("rate(bt_requests_total{instance=\"1\"}[1h])", &at);
    let got: f64 = r[0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a rate");
    // instance 1 climbs by 2 per 15 s scrape.
    assert!((got - 2.0 / 15.0).abs() < 1e-9, "{r}");
    p.stop();
}
