//! What the benches share: the tests' process helpers (child guard, free port, bounded
//! waits, clock; tests/common/process.rs) and the absolute paths of Debian's components
//! (tests/common/bins.rs), included by path; readers of another process's `/proc`
//! entries (`status` fields in kB, CPU time from `stat`); and an allocation-counting
//! allocator ([`alloc`]).

#![allow(dead_code)] // Each bench uses a different part.

pub mod alloc;
#[path = "../../tests/common/bins.rs"]
pub mod bins;
#[path = "../../tests/common/process.rs"]
mod process;

#[allow(unused_imports)] // Each bench uses a different part.
pub use process::{ChildGuard, free_port, now_ms, wait_for, wait_for_every, wait_listening};

/// A `/proc/PID/status` field in kB (`key` with its colon, e.g. `"VmRSS:"`); 0 if the
/// process or the field is gone.
pub fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// utime + stime of a process in seconds, from `/proc/PID/stat`; None if it cannot be read.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // utime and stime are fields 14 and 15 of proc(5); `rest` starts at field 3.
    Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / ticks)
}
