//! Child processes, ports and time for the end-to-end tests and the benches: a guard that
//! kills a child by PID when dropped, a free loopback port, bounded polling, and the wall
//! clock in milliseconds. Std only, so the benches include this file too (`#[path]` in
//! benches/common/mod.rs).

use std::net::{TcpListener, TcpStream};
use std::process::Child;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A child process killed (SIGKILL) and reaped on drop, also when a test fails an assertion.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Polls `f` every 100 ms until it returns Some, for at most `secs`.
pub fn wait_for<T>(secs: u64, what: &str, f: impl FnMut() -> Option<T>) -> T {
    wait_for_every(secs, Duration::from_millis(100), what, f)
}

/// Polls `f` every `every` until it returns Some, for at most `secs`.
pub fn wait_for_every<T>(
    secs: u64,
    every: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs} s waiting for {what}"
        );
        std::thread::sleep(every);
    }
}

/// Waits (20 s at most) until `child` accepts TCP connections on loopback `port`; panics if
/// it exits first.
pub fn wait_listening(port: u16, child: &mut Child, what: &str) {
    wait_for(20, what, || {
        if let Ok(Some(st)) = child.try_wait() {
            panic!("{what} exited early: {st}");
        }
        TcpStream::connect(("127.0.0.1", port)).ok().map(|_| ())
    });
}
