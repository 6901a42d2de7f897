//! Durability under SIGKILL: the real binary takes remote_write pushes from a thread and is
//! killed at seeded random moments, then restarted on the same data dir. Every restart must
//! open, and every sample acknowledged (204) more than `flush_interval` + a margin before
//! the kill must be there afterwards, counted exactly with `count_over_time`.
//!
//! Kills: `PICKET_CRASH_KILLS` (default 50 in a row on one data dir, about
//! 90 s); seed: `PICKET_CRASH_SEED`.
//! The start-up time after a kill and after a clean stop is printed, not asserted.

mod common;

use common::{Picket, QUIET_CONFIG, series, write_request};
use prost::Message;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const FLUSH_MS: u64 = 200;
/// Room for the flush itself (a debug build, a busy CI box) after the timer fires.
const MARGIN_MS: u64 = 600;
const SERIES: usize = 4;
/// Samples per series in one request: request `k` carries timestamps base + k*10 + 0..10.
const PER_REQ: i64 = 10;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn request(base: i64, k: i64) -> Vec<u8> {
    let ts = (0..SERIES)
        .map(|s| {
            let samples: Vec<(i64, f64)> = (0..PER_REQ)
                .map(|j| (base + k * PER_REQ + j, (k * PER_REQ + j) as f64))
                .collect();
            series(&[("__name__", "crash"), ("s", &s.to_string())], &samples)
        })
        .collect();
    snap::raw::Encoder::new()
        .compress_vec(&write_request(ts).encode_to_vec())
        .expect("snappy")
}

/// Pushes requests k = first, first+1, ... until stopped or the server goes away; returns
/// the acknowledged ones with the time of their 204.
fn pusher(
    addr: String,
    base: i64,
    first: i64,
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Vec<(i64, Instant)>>>,
) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let mut k = first;
    while !stop.load(Ordering::SeqCst) {
        let r = client
            .post(format!("http://{addr}/api/v1/write"))
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .body(request(base, k))
            .send();
        match r {
            Ok(r) if r.status().as_u16() == 204 => {
                acks.lock().unwrap().push((k, Instant::now()));
                k += 1;
            }
            Ok(r) => panic!("request {k}: status {}", r.status()),
            // Killed under us: this request was not acknowledged.
            Err(_) => return,
        }
    }
}

/// Samples of `crash` (all series) with timestamps in [lo, hi].
fn count(p: &Picket, lo: i64, hi: i64) -> u64 {
    let q = format!("sum(count_over_time(crash[{}ms]))", hi - lo + 1);
    let at = format!("{}.{:03}", hi.div_euclid(1000), hi.rem_euclid(1000));
    let r = p.query(&q, &at);
    r.as_array()
        .and_then(|a| a.first())
        .and_then(|s| s["value"][1].as_str())
        .map_or(0, |v| v.parse().expect("a count"))
}

fn start_timed(dir: &std::path::Path, data: &std::path::Path, config: &str) -> (Picket, Duration) {
    let t = Instant::now();
    let p = Picket::start_in(dir, data, config);
    (p, t.elapsed())
}

#[test]
fn every_sample_acknowledged_before_the_last_flush_survives_sigkill() {
    let kills = env_u64("PICKET_CRASH_KILLS", 50);
    let mut rng = env_u64("PICKET_CRASH_SEED", 0x5eed_c0de_1234_5678) | 1;
    let mut rnd = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let config = format!("{QUIET_CONFIG}[storage]\nflush_interval = \"{FLUSH_MS}ms\"\n");
    // An hour ago, so queries at these times are in the past; ms steps keep it dense.
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 3_600_000;
    // Per session: the request range that must have survived.
    let mut must: Vec<(i64, i64)> = Vec::new();
    let mut next = 0i64;
    let mut open_after_kill = Vec::new();
    let mut p = start_timed(tmp.path(), &data, &config).0;
    for kill in 0..kills {
        let stop = Arc::new(AtomicBool::new(false));
        let acks = Arc::new(Mutex::new(Vec::new()));
        let first = next;
        let th = {
            let (addr, stop, acks) = (p.addr.clone(), stop.clone(), acks.clone());
            std::thread::spawn(move || pusher(addr, base, first, stop, acks))
        };
        std::thread::sleep(Duration::from_millis(500 + rnd(2000)));
        // SIGKILL: no flush, no close; whatever the writer was doing is cut off.
        p.child.kill().expect("SIGKILL");
        let killed_at = Instant::now();
        let _ = p.child.wait();
        stop.store(true, Ordering::SeqCst);
        th.join().expect("pusher");
        let acks = acks.lock().unwrap().clone();
        let safe = Duration::from_millis(FLUSH_MS + MARGIN_MS);
        let durable = acks
            .iter()
            .filter(|(_, at)| *at + safe < killed_at)
            .map(|(k, _)| *k)
            .max();
        if let Some(last) = durable {
            must.push((first, last));
        }
        // Continue after the last acknowledged request; a lost tail leaves a gap that no
        // check counts on.
        next = acks.last().map_or(first, |(k, _)| k + 1);
        drop(p);
        let (np, took) = start_timed(tmp.path(), &data, &config);
        open_after_kill.push(took);
        p = np;
        // Everything that had to survive, in every session so far, is there exactly.
        for &(a, b) in &must {
            let (lo, hi) = (base + a * PER_REQ, base + b * PER_REQ + PER_REQ - 1);
            let want = (b - a + 1) as u64 * PER_REQ as u64 * SERIES as u64;
            assert_eq!(
                count(&p, lo, hi),
                want,
                "kill {kill}: requests {a}..={b} acknowledged more than {safe:?} before the kill"
            );
        }
    }
    assert!(
        must.len() as u64 >= kills / 2,
        "too few sessions lived past a flush to test anything: {must:?}"
    );
    // Clean stop and start, for comparison.
    p.stop();
    let (p, clean) = start_timed(tmp.path(), &data, &config);
    p.stop();
    let n = open_after_kill.len().max(1) as u32;
    let avg = open_after_kill.iter().sum::<Duration>() / n;
    let max = open_after_kill.iter().max().copied().unwrap_or_default();
    println!(
        "crash test: {kills} SIGKILLs, {} sessions checked, {} requests acknowledged; \
         start-up after a kill avg {avg:?} max {max:?}; after a clean stop {clean:?}",
        must.len(),
        next
    );
}
