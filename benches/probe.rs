//! Cost of one health probe, Picket's side only: an HTTP probe (resolve, connect, request,
//! body, regex) and a TCP connect probe against servers in this process on loopback.
//! Reported: wall time and allocations per probe, plus the CPU time of the whole process
//! (servers included) per probe, an upper bound on what a probe costs a Pi.
//! `cargo bench --bench probe` (1,000 probes of each kind); under `cargo test` it runs 5
//! as a check.

mod common;

use common::alloc::{Counting, allocations};
use picket::collect::probe::{Prepared, probe};
use picket::config::probe::ProbeConfig;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Instant;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// User plus system CPU seconds of this process.
fn cpu_seconds() -> f64 {
    // SAFETY: an all-zero rusage is a valid value, and getrusage only writes into it.
    let u = unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut u);
        u
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

/// A keep-nothing HTTP server: every connection gets one small 200 response.
fn http_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        for mut conn in listener.incoming().flatten() {
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nall is well\n");
        }
    });
    port
}

fn run(runtime: &tokio::runtime::Runtime, name: &str, config: &str, target: &str, n: usize) {
    let config: ProbeConfig = toml::from_str(config).unwrap();
    let prepared = Prepared::new(config).unwrap();
    // One probe first: connection setup paths warmed, TLS roots loaded.
    let m = runtime.block_on(probe(&prepared, target));
    assert_eq!(m.get("probe_success"), Some(1.0), "{name}: {m:?}");
    let (a0, c0, t0) = (allocations(), cpu_seconds(), Instant::now());
    for _ in 0..n {
        let m = runtime.block_on(probe(&prepared, target));
        assert_eq!(m.get("probe_success"), Some(1.0), "{name}");
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - c0;
    let allocs = allocations() - a0;
    println!(
        "{name:<5} {n:>5} probes: {:>7.1} µs wall, {:>7.1} µs CPU (with the server), {:>6.0} allocations per probe",
        wall / n as f64 * 1e6,
        cpu / n as f64 * 1e6,
        allocs as f64 / n as f64
    );
}

fn main() {
    let n = if std::env::args().any(|a| a == "--bench") {
        1000
    } else {
        5
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let http = http_server();
    run(
        &runtime,
        "http",
        "name = \"b\"\nprober = \"http\"\ntargets = [\"x\"]\npreferred_ip_protocol = \"ip4\"\nhttp = { fail_if_body_not_matches_regexp = [\"well\"] }\n",
        &format!("http://127.0.0.1:{http}/health"),
        n,
    );
    run(
        &runtime,
        "tcp",
        "name = \"b\"\nprober = \"tcp\"\ntargets = [\"127.0.0.1:1\"]\npreferred_ip_protocol = \"ip4\"\n",
        &format!("127.0.0.1:{http}"),
        n,
    );
}
