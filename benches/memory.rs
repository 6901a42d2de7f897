//! Side-by-side memory of Picket and `prometheus-node-exporter` collecting this host.
//!
//! Both run at the same time, on loopback, for `PICKET_BENCH_SECONDS` (default 600):
//! Picket on its embedded default config (host collector every 15 s, self metrics, store,
//! API), node_exporter with its default collectors, scraped every 15 s by this program as
//! a Prometheus would. Every 5 s it samples VmRSS and RssAnon of both processes; at the end
//! it prints RSS, mean RSS over the second half, VmHWM, CPU time, Picket's bytes on disk and
//! bytes written per stored sample.
//!
//! `cargo bench --bench memory` measures; under `cargo test` (no `--bench` argument) it runs
//! for 5 s as a check that the measurement itself works.

mod common;

use common::bins::NODE_EXPORTER;
use common::{ChildGuard, cpu_seconds, free_port, status_kib};

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A measured process (killed by PID on drop) and its samples.
struct Proc {
    name: &'static str,
    child: ChildGuard,
    rss: Vec<u64>,
    anon: Vec<u64>,
}

fn io_write_bytes(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).unwrap_or_default();
    let get = |k: &str| {
        io.lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    get("write_bytes:").saturating_sub(get("cancelled_write_bytes:"))
}

/// A minimal HTTP/1.0 GET, so the bench adds no client library's memory to the machine.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    body.split_once("\r\n\r\n").map(|(_, b)| b.to_string())
}

fn wait_ready(port: u16, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if http_get(port, path).is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing answers on port {port}");
}

fn dir_bytes(path: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let seconds: u64 = if measuring {
        std::env::var("PICKET_BENCH_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(600)
    } else {
        5
    };
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let picket_port = free_port();
    let picket = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args([
            "run",
            "--listen",
            &format!("127.0.0.1:{picket_port}"),
            "--data-dir",
        ])
        .arg(&data)
        .env("PICKET_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start picket");
    let mut picket = Proc {
        name: "picket",
        child: ChildGuard(picket),
        rss: vec![],
        anon: vec![],
    };
    let ne_port = free_port();
    let node_exporter = Command::new(NODE_EXPORTER)
        .arg(format!("--web.listen-address=127.0.0.1:{ne_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "start /usr/bin/prometheus-node-exporter (apt-get install prometheus-node-exporter)",
        );
    let mut ne = Proc {
        name: "node_exporter",
        child: ChildGuard(node_exporter),
        rss: vec![],
        anon: vec![],
    };
    wait_ready(picket_port, "/-/ready");
    wait_ready(ne_port, "/metrics");
    let start = Instant::now();
    let mut next_scrape = start;
    while start.elapsed() < Duration::from_secs(seconds) {
        if Instant::now() >= next_scrape {
            let _ = http_get(ne_port, "/metrics");
            next_scrape += Duration::from_secs(15);
        }
        for p in [&mut picket, &mut ne] {
            let pid = p.child.0.id();
            p.rss.push(status_kib(pid, "VmRSS:"));
            p.anon.push(status_kib(pid, "RssAnon:"));
        }
        std::thread::sleep(Duration::from_secs(if measuring { 5 } else { 1 }));
    }
    let self_metrics = http_get(picket_port, "/metrics").unwrap_or_default();
    let samples = metric_value(&self_metrics, "picket_store_samples_appended_total");
    let written = io_write_bytes(picket.child.0.id());

    println!(
        "collector memory, {seconds} s, both processes side by side, this host at a 15 s interval"
    );
    println!(
        "{:<14} {:>10} {:>12} {:>14} {:>10} {:>9}",
        "process", "RSS MiB", "RssAnon MiB", "mean RSS 2nd½", "HWM MiB", "CPU s"
    );
    for p in [&picket, &ne] {
        let pid = p.child.0.id();
        let half = &p.rss[p.rss.len() / 2..];
        let mean = half.iter().sum::<u64>() as f64 / half.len().max(1) as f64;
        let mib = |kib: f64| kib / 1024.0;
        println!(
            "{:<14} {:>10.1} {:>12.1} {:>14.1} {:>10.1} {:>9.2}",
            p.name,
            mib(*p.rss.last().unwrap_or(&0) as f64),
            mib(*p.anon.last().unwrap_or(&0) as f64),
            mib(mean),
            mib(status_kib(pid, "VmHWM:") as f64),
            cpu_seconds(pid).unwrap_or(0.0),
        );
    }
    // Stop Picket cleanly so its last flush is on disk before sizing the data dir.
    // SAFETY: kill(2) on our own child's PID.
    unsafe {
        libc::kill(picket.child.0.id() as i32, libc::SIGTERM);
    }
    let _ = picket.child.0.wait();
    let disk = dir_bytes(&data);
    println!("picket samples stored: {samples}");
    println!(
        "picket data dir after stop: {disk} bytes = {:.2} bytes/sample; written during the run: {written} bytes = {:.2} bytes/sample",
        disk as f64 / samples.max(1.0),
        written as f64 / samples.max(1.0)
    );
    assert!(samples > 0.0, "Picket stored no samples");
    assert!(
        picket.rss.iter().all(|&r| r > 0),
        "Picket's RSS could not be read: did it exit?"
    );
}
