//! A full filesystem, for real: the data dir is a 16 MiB tmpfs, filled by another file
//! until a flush cannot be written. Picket must keep answering queries, report it in its
//! metrics and logs, hold a bounded head (refusing writes beyond it, with a 500 so senders
//! retry), and write everything it accepted once the tmpfs is grown; the store then opens
//! cleanly and holds exactly the accepted samples.
//!
//! Needs root for `mount -t tmpfs` (the CI runs as root).

mod common;

use common::{Picket, QUIET_CONFIG, series, write_request};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn mount_tmpfs(dir: &Path, size: &str) -> Mount {
    std::fs::create_dir_all(dir).expect("mkdir");
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .status()
        .expect("run mount");
    assert!(
        st.success(),
        "mount -t tmpfs failed ({st}): this test needs root to mount a small filesystem"
    );
    Mount(dir.to_owned())
}

fn avail(dir: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .expect("df");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .expect("df output")
}

/// The value of metric `name` (without labels) on Picket's own `/metrics`.
fn metric(p: &Picket, name: &str) -> f64 {
    let (code, body) = p.get("/metrics");
    assert_eq!(code, 200);
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

fn count(p: &Picket, q: &str, at_ms: i64) -> f64 {
    let r = p.query(q, &(at_ms as f64 / 1000.0).to_string());
    r[0]["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.0)
}

/// `n` series of `per` samples each, 1 s apart from `t0`, with values that do not
/// compress (so the bytes to write are many).
fn noisy_batch(
    name: &str,
    n: usize,
    per: i64,
    t0: i64,
    seed: &mut u64,
) -> picket::model::prompb::WriteRequest {
    let series_list = (0..n)
        .map(|i| {
            let samples: Vec<(i64, f64)> = (0..per)
                .map(|k| {
                    *seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (t0 + k * 1000, (*seed >> 11) as f64 / 3.0)
                })
                .collect();
            series(&[("__name__", name), ("i", &i.to_string())], &samples)
        })
        .collect();
    write_request(series_list)
}

#[test]
fn a_full_filesystem_keeps_queries_working_bounds_the_head_and_recovers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mnt = tmp.path().join("fs");
    let mount = mount_tmpfs(&mnt, "16m");
    let data = mnt.join("data");
    let config = format!("{QUIET_CONFIG}[storage]\nbudget = \"1GB\"\nflush_interval = \"500ms\"\n");
    let p = Picket::start_in(tmp.path(), &data, &config);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    let t0 = now - 3_600_000;
    let mut seed = 1u64;

    // Some data written while there is room.
    let (code, body) = p.remote_write(&noisy_batch("df_before", 10, 600, t0, &mut seed), None);
    assert_eq!(code, 204, "{body}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(metric(&p, "picket_store_write_failing"), 0.0);

    // Another file takes all but 3 MiB.
    let filler = mnt.join("filler");
    {
        let mut f = std::fs::File::create(&filler).expect("filler");
        let chunk = vec![0x5au8; 256 << 10];
        while avail(&mnt) > 3 << 20 {
            f.write_all(&chunk).expect("fill");
        }
        f.sync_all().expect("sync");
    }

    // Noisy samples (~10 bytes each on disk) until Picket refuses them: batches of ~2 MB,
    // so that a flush runs into ENOSPC inside its commit, not only into the reserve check.
    const PER: i64 = 4000;
    let mut accepted = 0u64;
    let mut refused = None;
    let mut t = t0;
    for _ in 0..20 {
        let (code, body) = p.remote_write(&noisy_batch("df_during", 50, PER, t, &mut seed), None);
        match code {
            204 => accepted += 50 * PER as u64,
            500 => {
                refused = Some(body);
                break;
            }
            other => panic!("remote_write answered {other}: {body}"),
        }
        t += PER * 1000;
        std::thread::sleep(Duration::from_millis(700));
    }
    let refused = refused.expect("Picket never refused a write on a full filesystem");
    assert!(refused.contains("cannot write to disk"), "{refused}");
    assert!(metric(&p, "picket_store_write_errors_total") >= 1.0);
    assert_eq!(metric(&p, "picket_store_write_failing"), 1.0);
    assert_eq!(metric(&p, "picket_store_disk_full"), 1.0);
    assert!(metric(&p, "picket_store_samples_refused_total") >= (50 * PER) as f64);
    // Bounded: the samples held in memory only are at most the head limit (500,000)...
    let unflushed = metric(&p, "picket_store_samples_appended_total")
        - metric(&p, "picket_store_samples_flushed_total");
    assert!(unflushed <= 500_000.0, "{unflushed} unflushed samples");
    assert!(
        unflushed + (50 * PER) as f64 > 500_000.0,
        "refused early: {unflushed}"
    );
    // ... and queries answer, from disk and from the head.
    assert_eq!(
        count(&p, "sum(count_over_time(df_before[2h]))", now),
        6000.0
    );
    assert_eq!(
        count(&p, "sum(count_over_time(df_during[30d]))", t + PER * 1000),
        accepted as f64
    );

    // Room again: the flushes go through and writes are accepted.
    let st = Command::new("mount")
        .args(["-o", "remount,size=96m"])
        .arg(&mnt)
        .status()
        .expect("remount");
    assert!(st.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&p, "picket_store_write_failing") != 0.0 {
        assert!(
            Instant::now() < deadline,
            "writes did not resume within 60 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(metric(&p, "picket_store_disk_full"), 0.0);
    let (code, body) = p.remote_write(&noisy_batch("df_after", 10, 100, t, &mut seed), None);
    assert_eq!(code, 204, "{body}");
    let logs: Vec<String> = p.log.try_iter().collect();
    assert!(
        logs.iter()
            .any(|l| l.contains("Store writes fail") && l.contains("disk_full=true")),
        "no log line about failing writes"
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("Store writes succeed again")),
        "no log line about writes resuming"
    );
    p.stop();

    // The store opens cleanly and holds exactly what was accepted.
    let p = Picket::start_in(tmp.path(), &data, &config);
    assert_eq!(
        count(&p, "sum(count_over_time(df_before[2h]))", now),
        6000.0
    );
    assert_eq!(
        count(&p, "sum(count_over_time(df_during[30d]))", t + PER * 1000),
        accepted as f64
    );
    assert_eq!(
        count(&p, "sum(count_over_time(df_after[1h]))", t + 100_000),
        1000.0
    );
    p.stop();
    drop(mount);
}
