//! Under systemd (`Type=notify`, `WatchdogSec=`), Picket itself sends READY=1 once it
//! serves, WATCHDOG=1 pings at half the watchdog interval, and STOPPING=1 on SIGTERM. The
//! test plays systemd's part with a datagram socket in NOTIFY_SOCKET.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn readiness_watchdog_and_stopping_are_notified() {
    let tmp = tempfile::tempdir().unwrap();
    let sock_path = tmp.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let config = tmp.path().join("picket.toml");
    std::fs::write(
        &config,
        "[collect.host]\nenabled = false\n[collect.self]\nenabled = false\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["run", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .env("NOTIFY_SOCKET", &sock_path)
        // 400 ms watchdog: Picket should ping every 200 ms.
        .env("WATCHDOG_USEC", "400000")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut messages: Vec<String> = Vec::new();
    let mut buf = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(20);
    let watchdogs = |m: &[String]| m.iter().filter(|s| s.contains("WATCHDOG=1")).count();
    while Instant::now() < deadline && watchdogs(&messages) < 3 {
        if let Ok(n) = sock.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    // SAFETY: kill(2) on our own child's PID.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !messages.iter().any(|m| m.contains("STOPPING=1")) {
        if let Ok(n) = sock.recv(&mut buf) {
            messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    let ready = messages.iter().position(|m| m.contains("READY=1"));
    assert!(ready.is_some(), "no READY=1 in {messages:?}");
    assert!(
        watchdogs(&messages) >= 3,
        "too few WATCHDOG=1 in {messages:?}"
    );
    let first_watchdog = messages.iter().position(|m| m.contains("WATCHDOG=1"));
    assert!(
        ready < first_watchdog,
        "READY=1 must come before the watchdog pings: {messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("STOPPING=1")),
        "no STOPPING=1 in {messages:?}"
    );
}
