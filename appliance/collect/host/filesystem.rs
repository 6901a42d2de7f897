//! `filesystem` collector: size, free, available bytes, inodes and read-only state per
//! mount, from /proc/1/mounts (falling back to /proc/mounts) and `statvfs(3)`.
//! Mirrors node_exporter 1.5.0 `collector/filesystem_linux.go` and
//! `filesystem_common.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/filesystem_linux.go>)
//! with Debian's default exclusions (`prometheus-node-exporter --help`), which also skip
//! /run, /mnt and /media; upstream's differ.
//!
//! Sizes use `f_bsize` like node_exporter (Go's `Statfs_t.Bsize`), not `f_frsize`.
//!
//! Hung mounts: `statvfs` on a dead NFS server blocks for minutes. node_exporter marks a
//! mount point "stuck" when its `statfs` takes longer than 5 s
//! (`--collector.filesystem.mount-timeout`), reports it with `device_error 1` and skips
//! it until the hung call returns. Picket does the same with one long-lived worker
//! thread that runs the `statvfs` calls: the collector waits at most [`MOUNT_TIMEOUT`]
//! for an answer; on timeout it marks the mount stuck and abandons that worker (which
//! clears the mark and exits when its call finally returns), starting a fresh one for
//! the next mount. A tick therefore waits at most 5 s per newly hung mount, and no
//! thread is spawned per call.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use regex::Regex;

use super::util::read_into;
use super::{Batch, Failure, Outcome, Source};
use crate::model::{Labels, MetricType};

/// Debian's default `--collector.filesystem.mount-points-exclude`.
pub(crate) const MOUNT_POINTS_EXCLUDE: &str =
    "^/(dev|proc|run|sys|mnt|media|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)";
/// Debian's default `--collector.filesystem.fs-types-exclude`.
pub(crate) const FS_TYPES_EXCLUDE: &str = "^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|sysfs|tracefs)$";

/// One line of a mounts file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub device: String,
    pub mount_point: String,
    pub fs_type: String,
    pub options: String,
}

/// Parses a mounts file (`device mountpoint fstype options dump pass`). The mount point's
/// octal escapes for space and tab are decoded, as node_exporter does.
pub(crate) fn parse_mounts(s: &str, out: &mut Vec<Mount>) -> Result<(), String> {
    out.clear();
    for line in s.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let mut f = line.split_ascii_whitespace();
        let (Some(device), Some(mp), Some(fs_type), Some(options)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(format!("malformed mount point information: {line:?}"));
        };
        out.push(Mount {
            device: device.to_string(),
            mount_point: mp.replace("\\040", " ").replace("\\011", "\t"),
            fs_type: fs_type.to_string(),
            options: options.to_string(),
        });
    }
    Ok(())
}

/// What `statvfs` said about one mount.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FsStats {
    pub size: f64,
    pub free: f64,
    pub avail: f64,
    pub files: f64,
    pub files_free: f64,
}

fn statvfs(path: &Path) -> std::io::Result<FsStats> {
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` is a properly sized, writable
    // statvfs struct that the call fills in.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let bsize = st.f_bsize as f64;
    Ok(FsStats {
        size: st.f_blocks as f64 * bsize,
        free: st.f_bfree as f64 * bsize,
        avail: st.f_bavail as f64 * bsize,
        files: st.f_files as f64,
        files_free: st.f_ffree as f64,
    })
}

/// node_exporter's default `--collector.filesystem.mount-timeout`.
pub(crate) const MOUNT_TIMEOUT: Duration = Duration::from_secs(5);

/// Mount points whose `statvfs` has not returned yet.
type StuckSet = Arc<Mutex<HashSet<String>>>;

/// One thread that performs `statvfs` calls on request.
struct StatfsWorker {
    requests: Sender<(String, PathBuf)>,
    answers: Receiver<std::io::Result<FsStats>>,
}

impl StatfsWorker {
    fn spawn(stuck: StuckSet) -> std::io::Result<StatfsWorker> {
        let (req_tx, req_rx) = channel::<(String, PathBuf)>();
        let (ans_tx, ans_rx) = channel();
        std::thread::Builder::new()
            .name("picket-statfs".into())
            .spawn(move || {
                for (mount_point, target) in req_rx {
                    let r = statvfs(&target);
                    // If the collector gave up on this call, the mount is marked stuck:
                    // clear the mark, and stop, since nobody listens to us any more.
                    let was_stuck = stuck
                        .lock()
                        .map(|mut s| s.remove(&mount_point))
                        .unwrap_or(false);
                    if was_stuck || ans_tx.send(r).is_err() {
                        return;
                    }
                }
            })?;
        Ok(StatfsWorker {
            requests: req_tx,
            answers: ans_rx,
        })
    }
}

/// What happened to one `statvfs` request.
#[derive(Debug)]
enum StatOutcome {
    Done(std::io::Result<FsStats>),
    /// The mount is (or just became) stuck.
    Stuck,
}

/// Runs `statvfs` calls with a timeout, remembering stuck mount points.
pub(crate) struct GuardedStatfs {
    worker: Option<StatfsWorker>,
    stuck: StuckSet,
    timeout: Duration,
}

impl GuardedStatfs {
    pub(crate) fn new(timeout: Duration) -> GuardedStatfs {
        GuardedStatfs {
            worker: None,
            stuck: Arc::new(Mutex::new(HashSet::new())),
            timeout,
        }
    }

    fn is_stuck(&self, mount_point: &str) -> bool {
        self.stuck
            .lock()
            .map(|s| s.contains(mount_point))
            .unwrap_or(false)
    }

    fn stat(&mut self, mount_point: &str, target: &Path) -> StatOutcome {
        if self.is_stuck(mount_point) {
            return StatOutcome::Stuck;
        }
        if self.worker.is_none() {
            match StatfsWorker::spawn(self.stuck.clone()) {
                Ok(w) => self.worker = Some(w),
                // No thread to be had: call directly rather than report nothing.
                Err(_) => return StatOutcome::Done(statvfs(target)),
            }
        }
        let Some(w) = &self.worker else {
            return StatOutcome::Done(statvfs(target));
        };
        if w.requests
            .send((mount_point.to_string(), target.to_path_buf()))
            .is_err()
        {
            self.worker = None;
            return StatOutcome::Done(statvfs(target));
        }
        match w.answers.recv_timeout(self.timeout) {
            Ok(r) => StatOutcome::Done(r),
            Err(RecvTimeoutError::Timeout) => {
                // Mark first, then look again: the call may have returned in between,
                // in which case its answer is waiting and the worker is still good.
                if let Ok(mut s) = self.stuck.lock() {
                    s.insert(mount_point.to_string());
                }
                match w.answers.try_recv() {
                    Ok(r) => {
                        if let Ok(mut s) = self.stuck.lock() {
                            s.remove(mount_point);
                        }
                        StatOutcome::Done(r)
                    }
                    Err(_) => {
                        tracing::warn!(
                            mount_point,
                            "Mount point timed out; it is marked stuck and skipped until statfs returns."
                        );
                        self.worker = None;
                        StatOutcome::Stuck
                    }
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                self.worker = None;
                StatOutcome::Done(statvfs(target))
            }
        }
    }
}

pub(crate) struct Filesystem {
    root_mounts: PathBuf,
    mounts: PathBuf,
    rootfs: PathBuf,
    buf: String,
    parsed: Vec<Mount>,
    exclude_mount_points: Option<Regex>,
    exclude_fs_types: Option<Regex>,
    statfs: GuardedStatfs,
}

impl Filesystem {
    pub(crate) fn new(p: &super::HostPaths) -> Filesystem {
        Filesystem {
            root_mounts: p.proc.join("1/mounts"),
            mounts: p.proc.join("mounts"),
            rootfs: p.rootfs.clone(),
            buf: String::new(),
            parsed: Vec::new(),
            exclude_mount_points: Regex::new(MOUNT_POINTS_EXCLUDE).ok(),
            exclude_fs_types: Regex::new(FS_TYPES_EXCLUDE).ok(),
            statfs: GuardedStatfs::new(MOUNT_TIMEOUT),
        }
    }

    /// node_exporter's `rootfsStripPrefix`: mount points as the host sees them.
    fn strip_rootfs(&self, mp: &str) -> String {
        let root = self.rootfs.to_string_lossy();
        if root == "/" {
            return mp.to_string();
        }
        match mp.strip_prefix(root.trim_end_matches('/')) {
            Some("") => "/".to_string(),
            Some(rest) if rest.starts_with('/') => rest.to_string(),
            _ => mp.to_string(),
        }
    }

    fn excluded(&self, m: &Mount) -> bool {
        self.exclude_mount_points
            .as_ref()
            .is_some_and(|r| r.is_match(&m.mount_point))
            || self
                .exclude_fs_types
                .as_ref()
                .is_some_and(|r| r.is_match(&m.fs_type))
    }
}

const NAMES: [(&str, &str); 6] = [
    ("node_filesystem_size_bytes", "Filesystem size in bytes."),
    (
        "node_filesystem_free_bytes",
        "Filesystem free space in bytes.",
    ),
    (
        "node_filesystem_avail_bytes",
        "Filesystem space available to non-root users in bytes.",
    ),
    ("node_filesystem_files", "Filesystem total file nodes."),
    (
        "node_filesystem_files_free",
        "Filesystem total free file nodes.",
    ),
    ("node_filesystem_readonly", "Filesystem read-only status."),
];

impl Source for Filesystem {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        if let Err(e) = read_into(&self.root_mounts, &mut self.buf) {
            if !super::util::is_missing(&e) {
                return Err(e.into());
            }
            read_into(&self.mounts, &mut self.buf)?;
        }
        let mut parsed = std::mem::take(&mut self.parsed);
        parse_mounts(&self.buf, &mut parsed).map_err(Failure::Error)?;

        // (labels, device_error, stats, readonly)
        let mut rows: Vec<(Labels, Option<FsStats>, f64)> = Vec::new();
        for m in &mut parsed {
            m.mount_point = self.strip_rootfs(&m.mount_point);
        }
        for m in &parsed {
            if self.excluded(m) {
                continue;
            }
            let labels = Labels::from_pairs([
                ("device", m.device.as_str()),
                ("fstype", m.fs_type.as_str()),
                ("mountpoint", m.mount_point.as_str()),
            ]);
            // One series per label set even when a file system is mounted twice.
            if rows.iter().any(|r| r.0 == labels) {
                continue;
            }
            let target = self.rootfs.join(m.mount_point.trim_start_matches('/'));
            let stats = match self.statfs.stat(&m.mount_point, &target) {
                StatOutcome::Done(r) => r.ok(),
                StatOutcome::Stuck => None,
            };
            let ro = if m.options.split(',').any(|o| o == "ro") {
                1.0
            } else {
                0.0
            };
            rows.push((labels, stats, ro));
        }
        self.parsed = parsed;

        let err = out.family(
            "node_filesystem_device_error",
            "Whether an error occurred while getting statistics for the given device.",
            MetricType::Gauge,
        );
        for (labels, stats, _) in &rows {
            err.push(labels.clone(), if stats.is_some() { 0.0 } else { 1.0 });
        }
        for (i, (name, help)) in NAMES.iter().enumerate() {
            let f = out.family(*name, *help, MetricType::Gauge);
            for (labels, stats, ro) in &rows {
                let Some(s) = stats else { continue };
                let v = match i {
                    0 => s.size,
                    1 => s.free,
                    2 => s.avail,
                    3 => s.files,
                    4 => s.files_free,
                    _ => *ro,
                };
                f.push(labels.clone(), v);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTS: &str = "/dev/vda / ext4 rw,relatime 0 0
proc /proc proc rw,nosuid 0 0
tmpfs /run tmpfs rw 0 0
/dev/sda1 /srv/my\\040disk vfat ro,noatime 0 0
overlay /var/lib/rancher/k3s/agent/containerd/x overlay rw 0 0
";

    #[test]
    fn mounts_are_parsed_and_escaped_spaces_decoded() {
        let mut out = Vec::new();
        parse_mounts(MOUNTS, &mut out).unwrap();
        assert_eq!(out.len(), 5);
        assert_eq!(out[3].mount_point, "/srv/my disk");
        assert_eq!(out[3].options, "ro,noatime");
    }

    #[test]
    fn a_short_mount_line_is_an_error() {
        let mut out = Vec::new();
        assert!(parse_mounts("/dev/vda /\n", &mut out).is_err());
    }

    #[test]
    fn default_exclusions_skip_pseudo_and_runtime_mounts() {
        let fs = Filesystem::new(&super::super::HostPaths::default());
        let mut out = Vec::new();
        parse_mounts(MOUNTS, &mut out).unwrap();
        let kept: Vec<_> = out
            .iter()
            .filter(|m| !fs.excluded(m))
            .map(|m| m.mount_point.as_str())
            .collect();
        assert_eq!(kept, ["/", "/srv/my disk"]);
    }

    #[test]
    fn guarded_statfs_answers_for_a_live_mount_and_reports_stuck_ones() {
        let mut g = GuardedStatfs::new(Duration::from_secs(5));
        match g.stat("/", Path::new("/")) {
            StatOutcome::Done(Ok(s)) => assert!(s.size > 0.0),
            other => panic!("statfs of / failed: {other:?}"),
        }
        // A mount the collector gave up on stays skipped until its call returns.
        g.stuck.lock().unwrap().insert("/nfs".to_string());
        assert!(matches!(g.stat("/nfs", Path::new("/")), StatOutcome::Stuck));
        // Other mounts still work through the same worker.
        assert!(matches!(
            g.stat("/", Path::new("/")),
            StatOutcome::Done(Ok(_))
        ));
    }

    #[test]
    fn a_statfs_error_is_a_device_error_not_a_stuck_mount() {
        let mut g = GuardedStatfs::new(Duration::from_secs(5));
        assert!(matches!(
            g.stat("/nope", Path::new("/definitely/not/here")),
            StatOutcome::Done(Err(_))
        ));
        assert!(!g.is_stuck("/nope"));
    }

    #[test]
    fn rootfs_prefix_is_stripped_from_mount_points() {
        let fs = Filesystem::new(&super::super::HostPaths {
            rootfs: PathBuf::from("/host"),
            ..Default::default()
        });
        assert_eq!(fs.strip_rootfs("/host"), "/");
        assert_eq!(fs.strip_rootfs("/host/boot"), "/boot");
        assert_eq!(fs.strip_rootfs("/hostile"), "/hostile");
    }
}
