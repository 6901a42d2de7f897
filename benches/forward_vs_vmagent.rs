//! Picket versus `vmagent` and `prometheus --enable-feature=agent` doing the same job, one
//! after the other: scrape 20 targets × 1,000 series every 15 s and remote_write what they
//! scrape to one `victoria-metrics`.
//!
//! The bench serves the targets itself (20 loopback ports; counters and gauges that change
//! every scrape) and puts a byte-counting TCP proxy in front of VictoriaMetrics, so "bytes
//! sent" is measured the same way for everyone (HTTP headers included). Every 5 s it samples
//! the contender's VmRSS; at the end it prints the mean RSS over the second half, the peak,
//! CPU seconds per million samples scraped, samples VictoriaMetrics received
//! (`vm_rows_inserted_total`), and proxy bytes per received sample.
//!
//! A fourth row, `picket-nofwd`, is the same Picket without a destination (what
//! forwarding itself costs). Picket runs with its collectors off, a `[[scrape]]` job and a `[[forward.remote_write]]`
//! destination with default queue settings (it forwards from its store, so it also stores
//! everything: that is its design); vmagent with `-remoteWrite.tmpDataPath` (its on-disk
//! queue); Prometheus in agent mode (WAL only).
//!
//! `cargo bench --bench forward_vs_vmagent` measures for `PICKET_BENCH_SECONDS` (default
//! 300) per contender; under `cargo test` it runs each for a few seconds at a 1 s interval
//! as a check that the measurement works. `PICKET_BENCH_ONLY=picket,vmagent` runs only the
//! named contenders.

mod common;

use common::bins::{PROMETHEUS, VICTORIA, VMAGENT};
use common::{ChildGuard, cpu_seconds, free_port, status_kib};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const TARGETS: usize = 20;
const SERIES_PER_TARGET: usize = 1000;

fn http_get(port: u16, path: &str) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut body = String::new();
    s.read_to_string(&mut body).ok()?;
    let (head, body) = body.split_once("\r\n\r\n")?;
    head.contains(" 200 ").then(|| body.to_string())
}

fn wait_ready(port: u16, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if http_get(port, path).is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing answers on port {port}{path}");
}

fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b' ' | b'{'))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// The scrape targets: `TARGETS` listeners answering every GET with `SERIES_PER_TARGET`
/// samples (half counters that grow, half gauges that move), keep-alive.
struct Targets {
    ports: Vec<u16>,
    scrapes: Arc<AtomicU64>,
}

fn serve_targets(stop: Arc<AtomicBool>) -> Targets {
    let scrapes = Arc::new(AtomicU64::new(0));
    let mut ports = Vec::new();
    for target in 0..TARGETS {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind a target");
        ports.push(l.local_addr().unwrap().port());
        let (scrapes, stop) = (scrapes.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in l.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let scrapes = scrapes.clone();
                std::thread::spawn(move || serve_conn(conn, target, &scrapes));
            }
        });
    }
    Targets { ports, scrapes }
}

fn serve_conn(mut conn: TcpStream, target: usize, scrapes: &AtomicU64) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let mut body = String::new();
    loop {
        // One request: headers up to the blank line (GETs have no body).
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        buf.drain(..end);
        let n = scrapes.fetch_add(1, Ordering::Relaxed);
        body.clear();
        body.push_str(
            "# HELP bench_requests_total Requests.\n# TYPE bench_requests_total counter\n",
        );
        for s in 0..SERIES_PER_TARGET / 2 {
            use std::fmt::Write as _;
            let _ = writeln!(
                body,
                "bench_requests_total{{code=\"200\",handler=\"/api/v{}\",series=\"{s}\"}} {}",
                s % 7,
                n * (s as u64 % 13 + 1)
            );
        }
        body.push_str("# HELP bench_temperature_celsius Temperature.\n# TYPE bench_temperature_celsius gauge\n");
        for s in 0..SERIES_PER_TARGET / 2 {
            use std::fmt::Write as _;
            let _ = writeln!(
                body,
                "bench_temperature_celsius{{sensor=\"{s}\",zone=\"z{}\"}} {:.2}",
                s % 10,
                20.0 + ((n as usize * 7 + s + target) % 100) as f64 / 10.0
            );
        }
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        if conn.write_all(head.as_bytes()).is_err() || conn.write_all(body.as_bytes()).is_err() {
            return;
        }
    }
}

/// A TCP proxy in front of VictoriaMetrics counting the bytes senders write.
fn proxy(to: u16, stop: Arc<AtomicBool>) -> (u16, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
    let port = l.local_addr().unwrap().port();
    let bytes = Arc::new(AtomicU64::new(0));
    let counted = bytes.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let Ok(mut client) = conn else { continue };
            let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", to)) else {
                continue;
            };
            let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
            let counted = counted.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                loop {
                    match client.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            counted.fetch_add(n as u64, Ordering::Relaxed);
                            if upstream.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    }
                }
                let _ = upstream.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut u2, &mut c2);
                let _ = c2.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (port, bytes)
}

fn prometheus_scrape_yaml(ports: &[u16], interval: &str) -> String {
    let targets: Vec<String> = ports.iter().map(|p| format!("\"127.0.0.1:{p}\"")).collect();
    format!(
        "global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\nscrape_configs:\n  - job_name: bench\n    static_configs:\n      - targets: [{}]\n",
        targets.join(", ")
    )
}

struct Row {
    name: &'static str,
    mean_rss_mib: f64,
    peak_rss_mib: f64,
    cpu_s: f64,
    cpu_per_million: f64,
    scraped: u64,
    received: f64,
    bytes_per_sample: f64,
}

#[allow(clippy::too_many_arguments)]
fn run(
    name: &'static str,
    dir: &Path,
    interval_s: u64,
    seconds: u64,
    target_ports: &[u16],
    scrapes: &AtomicU64,
) -> Row {
    let stop = Arc::new(AtomicBool::new(false));
    let vm_port = free_port();
    let vm = ChildGuard(
        Command::new(VICTORIA)
            .arg(format!("-storageDataPath={}", dir.join("vm").display()))
            .arg(format!("-httpListenAddr=127.0.0.1:{vm_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start victoria-metrics (apt-get install victoria-metrics)"),
    );
    wait_ready(vm_port, "/health");
    let (proxy_port, sent_bytes) = proxy(vm_port, stop.clone());
    let write_url = format!("http://127.0.0.1:{proxy_port}/api/v1/write");
    let interval = format!("{interval_s}s");
    let port = free_port();
    let child = match name {
        "picket" | "picket-nofwd" => {
            let targets: Vec<String> = target_ports
                .iter()
                .map(|p| format!("\"127.0.0.1:{p}\""))
                .collect();
            let mut cfg = format!(
                "[collect.host]\nenabled = false\n[collect.self]\nenabled = false\n\
                 [[scrape]]\njob_name = \"bench\"\nscrape_interval = \"{interval}\"\nscrape_timeout = \"{interval}\"\n\
                 [[scrape.static_configs]]\ntargets = [{}]\n",
                targets.join(", ")
            );
            if name == "picket" {
                cfg.push_str(&format!(
                    "[forward]\ndelay = \"{interval}\"\n[[forward.remote_write]]\nurl = \"{write_url}\"\n\
                     queue_config = {{ batch_send_deadline = \"{interval}\" }}\n"
                ));
            }
            std::fs::write(dir.join("picket.toml"), cfg).unwrap();
            Command::new(env!("CARGO_BIN_EXE_picket"))
                .args(["run", "--config"])
                .arg(dir.join("picket.toml"))
                .arg("--data-dir")
                .arg(dir.join("picket-data"))
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .env("PICKET_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .expect("start picket")
        }
        "vmagent" => {
            std::fs::write(
                dir.join("prom.yml"),
                prometheus_scrape_yaml(target_ports, &interval),
            )
            .unwrap();
            Command::new(VMAGENT)
                .arg(format!(
                    "-promscrape.config={}",
                    dir.join("prom.yml").display()
                ))
                .arg(format!("-remoteWrite.url={write_url}"))
                .arg(format!(
                    "-remoteWrite.tmpDataPath={}",
                    dir.join("vmagent-queue").display()
                ))
                .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start vmagent (from Debian's victoria-metrics package)")
        }
        _ => {
            let mut yaml = prometheus_scrape_yaml(target_ports, &interval);
            yaml.push_str(&format!("remote_write:\n  - url: {write_url}\n"));
            std::fs::write(dir.join("prom.yml"), yaml).unwrap();
            Command::new(PROMETHEUS)
                .arg("--enable-feature=agent")
                .arg(format!("--config.file={}", dir.join("prom.yml").display()))
                .arg(format!(
                    "--storage.agent.path={}",
                    dir.join("agent").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start prometheus (apt-get install prometheus)")
        }
    };
    let proc = ChildGuard(child);
    let pid = proc.0.id();
    let cpu0 = cpu_seconds(pid).unwrap_or(0.0);
    let scrapes0 = scrapes.load(Ordering::Relaxed);
    let t0 = Instant::now();
    let mut rss = Vec::new();
    while t0.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(5).min(Duration::from_secs(seconds)));
        rss.push(status_kib(pid, "VmRSS:"));
    }
    let cpu = cpu_seconds(pid).unwrap_or(0.0) - cpu0;
    let scraped = (scrapes.load(Ordering::Relaxed) - scrapes0) * SERIES_PER_TARGET as u64;
    // Let the last batches arrive, then read what VictoriaMetrics got.
    std::thread::sleep(Duration::from_secs(2));
    let vm_metrics = http_get(vm_port, "/metrics").unwrap_or_default();
    let received = metric_sum(&vm_metrics, "vm_rows_inserted_total");
    let bytes = sent_bytes.load(Ordering::Relaxed) as f64;
    drop(proc);
    stop.store(true, Ordering::Relaxed);
    drop(vm);
    let second_half = &rss[rss.len() / 2..];
    let mean = second_half.iter().sum::<u64>() as f64 / second_half.len().max(1) as f64;
    Row {
        name,
        mean_rss_mib: mean / 1024.0,
        peak_rss_mib: rss.iter().copied().max().unwrap_or(0) as f64 / 1024.0,
        cpu_s: cpu,
        cpu_per_million: if scraped > 0 {
            cpu / (scraped as f64 / 1e6)
        } else {
            0.0
        },
        scraped,
        received,
        bytes_per_sample: if received > 0.0 {
            bytes / received
        } else {
            0.0
        },
    }
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (seconds, interval) = if measuring {
        let s = std::env::var("PICKET_BENCH_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300);
        (s, 15)
    } else {
        (6, 1)
    };
    let stop = Arc::new(AtomicBool::new(false));
    let targets = serve_targets(stop.clone());
    println!(
        "{TARGETS} targets x {SERIES_PER_TARGET} series every {interval} s, {seconds} s per contender, to one victoria-metrics"
    );
    println!(
        "{:<10} {:>13} {:>13} {:>8} {:>16} {:>10} {:>10} {:>14}",
        "",
        "mean RSS MiB",
        "peak RSS MiB",
        "CPU s",
        "CPU s / M smpl",
        "scraped",
        "received",
        "bytes / sample"
    );
    let mut rows = Vec::new();
    // picket-nofwd: the same Picket without a destination, to show what forwarding costs.
    let only = std::env::var("PICKET_BENCH_ONLY").unwrap_or_default();
    let contenders = ["picket", "picket-nofwd", "vmagent", "prometheus"]
        .into_iter()
        .filter(|n| only.is_empty() || only.split(',').any(|o| o == *n));
    for name in contenders {
        let dir = tempfile::tempdir().expect("temp dir");
        let r = run(
            name,
            dir.path(),
            interval,
            seconds,
            &targets.ports,
            &targets.scrapes,
        );
        println!(
            "{:<10} {:>13.1} {:>13.1} {:>8.2} {:>16.2} {:>10} {:>10} {:>14.2}",
            r.name,
            r.mean_rss_mib,
            r.peak_rss_mib,
            r.cpu_s,
            r.cpu_per_million,
            r.scraped,
            r.received,
            r.bytes_per_sample
        );
        rows.push(r);
    }
    stop.store(true, Ordering::Relaxed);
    for r in &rows {
        assert!(r.scraped > 0, "{} scraped nothing", r.name);
        assert!(r.mean_rss_mib > 0.0, "{}: no RSS measured", r.name);
    }
    if measuring {
        for r in rows.iter().filter(|r| r.name != "picket-nofwd") {
            assert!(r.received > 0.0, "{} forwarded nothing", r.name);
        }
    }
}
