//! `mdadm` collector: Linux software RAID state from /proc/mdstat (`node_md_*`), for
//! Pis with mirrored USB disks. Mirrors node_exporter 1.5.0 `collector/mdadm_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/mdadm_linux.go>)
//! and the /proc/mdstat grammar of procfs v0.8.0 `mdstat.go`: a device line, a status
//! line (`N blocks ... [total/active] [UU_]`), an optional bitmap line, and a sync line
//! that turns the state into recovering/resyncing/checking. raid0 and linear arrays count
//! their members from the device line. No /proc/mdstat (no md driver) means "no data".

use std::path::PathBuf;
use std::sync::LazyLock;

use regex::Regex;

use super::util::{label1, label2, read_into};
use super::{Batch, Failure, Outcome, Source};
use crate::model::MetricType;

static STATUS_LINE: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(\d+) blocks .*\[(\d+)/(\d+)\] \[([U_]+)\]").ok());
static RECOVERY_BLOCKS: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\((\d+)/\d+\)").ok());
static RECOVERY_PCT: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"= (.+)%").ok());
static RECOVERY_FINISH: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"finish=(.+)min").ok());
static RECOVERY_SPEED: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"speed=(.+)[A-Z]").ok());

/// One md device of /proc/mdstat.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MdStat {
    pub name: String,
    pub state: String,
    pub disks_active: i64,
    pub disks_total: i64,
    pub disks_failed: i64,
    pub disks_spare: i64,
    pub blocks_total: i64,
    pub blocks_synced: i64,
}

fn capture<'a>(re: &LazyLock<Option<Regex>>, s: &'a str, group: usize) -> Option<&'a str> {
    re.as_ref()?.captures(s)?.get(group).map(|m| m.as_str())
}

/// (active, total, size) from the device line and the status line below it.
fn eval_status(device_line: &str, status_line: &str) -> Result<(i64, i64, i64), String> {
    let size: i64 = status_line
        .split_ascii_whitespace()
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("unexpected statusLine {status_line:?}"))?;
    if device_line.contains("raid0") || device_line.contains("linear") {
        let total = device_line.matches('[').count() as i64;
        return Ok((total, total, size));
    }
    if device_line.contains("inactive") {
        return Ok((0, 0, size));
    }
    let caps = STATUS_LINE
        .as_ref()
        .and_then(|r| r.captures(status_line))
        .ok_or_else(|| format!("couldn't find all the substring matches: {status_line}"))?;
    let num = |i: usize| -> Result<i64, String> {
        caps.get(i)
            .and_then(|m| m.as_str().parse().ok())
            .ok_or_else(|| format!("unexpected statusLine {status_line:?}"))
    };
    Ok((num(3)?, num(2)?, size))
}

/// Synced blocks of a recovery/resync/check line; fails where procfs fails.
fn eval_recovery(line: &str) -> Result<i64, String> {
    let bad = || format!("unexpected recoveryLine: {line}");
    let synced: i64 = capture(&RECOVERY_BLOCKS, line, 1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    capture(&RECOVERY_PCT, line, 1)
        .and_then(|s| s.trim().parse::<f64>().ok())
        .ok_or_else(bad)?;
    capture(&RECOVERY_FINISH, line, 1)
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(bad)?;
    capture(&RECOVERY_SPEED, line, 1)
        .and_then(|s| s.parse::<f64>().ok())
        .ok_or_else(bad)?;
    Ok(synced)
}

/// Parses /proc/mdstat.
pub(crate) fn parse_mdstat(s: &str) -> Result<Vec<MdStat>, String> {
    let lines: Vec<&str> = s.split('\n').collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty()
            || line.starts_with(' ')
            || line.starts_with("Personalities")
            || line.starts_with("unused")
        {
            continue;
        }
        let fields: Vec<&str> = line.split_ascii_whitespace().collect();
        if fields.len() < 3 {
            return Err(format!("not enough fields in mdline: {line}"));
        }
        let name = fields[0].to_string();
        let mut state = fields[2].to_string();
        if lines.len() <= i + 3 {
            return Err(format!("too few lines for md device {name}"));
        }
        let failed = line.matches("(F)").count() as i64;
        let spare = line.matches("(S)").count() as i64;
        let (active, total, size) = eval_status(line, lines[i + 1])?;
        let mut sync_idx = i + 2;
        if lines[i + 2].contains("bitmap") {
            sync_idx += 1;
        }
        let sync_line = lines.get(sync_idx).copied().unwrap_or("");
        let mut synced = size;
        let recovering = sync_line.contains("recovery");
        let resyncing = sync_line.contains("resync");
        let checking = sync_line.contains("check");
        if recovering || resyncing || checking {
            state = if recovering {
                "recovering"
            } else if checking {
                "checking"
            } else {
                "resyncing"
            }
            .to_string();
            synced = if sync_line.contains("PENDING") || sync_line.contains("DELAYED") {
                0
            } else {
                eval_recovery(sync_line)?
            };
        }
        out.push(MdStat {
            name,
            state,
            disks_active: active,
            disks_total: total,
            disks_failed: failed,
            disks_spare: spare,
            blocks_total: size,
            blocks_synced: synced,
        });
    }
    Ok(out)
}

pub(crate) struct Mdadm {
    path: PathBuf,
    buf: String,
}

impl Mdadm {
    pub(crate) fn new(p: &super::HostPaths) -> Mdadm {
        Mdadm {
            path: p.proc.join("mdstat"),
            buf: String::new(),
        }
    }
}

impl Source for Mdadm {
    fn name(&self) -> &'static str {
        "mdadm"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        read_into(&self.path, &mut self.buf).map_err(Failure::missing_is_no_data)?;
        let mds = parse_mdstat(&self.buf).map_err(Failure::Error)?;
        let f = out.family(
            "node_md_disks_required",
            "Total number of disks of device.",
            MetricType::Gauge,
        );
        for md in &mds {
            f.push(label1("device", &md.name), md.disks_total as f64);
        }
        let f = out.family(
            "node_md_disks",
            "Number of active/failed/spare disks of device.",
            MetricType::Gauge,
        );
        for md in &mds {
            for (state, v) in [
                ("active", md.disks_active),
                ("failed", md.disks_failed),
                ("spare", md.disks_spare),
            ] {
                f.push(label2("device", &md.name, "state", state), v as f64);
            }
        }
        let f = out.family(
            "node_md_state",
            "Indicates the state of md-device.",
            MetricType::Gauge,
        );
        for md in &mds {
            // mdadm_linux.go looks the state up as "resyncing"/"checking" but labels the
            // series "resync"/"check".
            for (label, state) in [
                ("active", "active"),
                ("inactive", "inactive"),
                ("recovering", "recovering"),
                ("resync", "resyncing"),
                ("check", "checking"),
            ] {
                let v = if md.state == state { 1.0 } else { 0.0 };
                f.push(label2("device", &md.name, "state", label), v);
            }
        }
        let f = out.family(
            "node_md_blocks",
            "Total number of blocks on device.",
            MetricType::Gauge,
        );
        for md in &mds {
            f.push(label1("device", &md.name), md.blocks_total as f64);
        }
        let f = out.family(
            "node_md_blocks_synced",
            "Number of blocks synced on device.",
            MetricType::Gauge,
        );
        for md in &mds {
            f.push(label1("device", &md.name), md.blocks_synced as f64);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MDSTAT: &str = "Personalities : [raid1] [raid0]
md0 : active raid1 sdb1[1] sda1[0]
      248896 blocks super 1.2 [2/2] [UU]
      bitmap: 0/2 pages [0KB], 65536KB chunk

md1 : active raid1 sdd1[2] sdc1[0] sde1[3](S) sdf1[4](F)
      976630464 blocks super 1.2 [2/1] [U_]
      [==>..................]  recovery = 12.6% (123456/976630464) finish=127.5min speed=110000K/sec

md2 : active raid0 sdg1[0] sdh1[1]
      1000 blocks super 1.2 512k chunks

md3 : inactive sdi1[0](S)
      2000 blocks super 1.2

unused devices: <none>
";

    #[test]
    fn mdstat_devices_states_and_sync_progress_are_parsed() {
        let mds = parse_mdstat(MDSTAT).unwrap();
        assert_eq!(mds.len(), 4);
        assert_eq!(mds[0].state, "active");
        assert_eq!((mds[0].disks_active, mds[0].disks_total), (2, 2));
        assert_eq!(mds[0].blocks_synced, 248896);
        assert_eq!(mds[1].state, "recovering");
        assert_eq!((mds[1].disks_active, mds[1].disks_total), (1, 2));
        assert_eq!((mds[1].disks_spare, mds[1].disks_failed), (1, 1));
        assert_eq!(mds[1].blocks_synced, 123456);
        assert_eq!((mds[2].disks_active, mds[2].disks_total), (2, 2));
        assert_eq!(mds[3].state, "inactive");
        assert_eq!(mds[3].disks_total, 0);
    }

    #[test]
    fn a_truncated_mdstat_is_an_error_not_a_panic() {
        assert!(parse_mdstat("md0 : active raid1 sda1[0]\n").is_err());
        assert!(parse_mdstat("md0 :\n").is_err());
        assert_eq!(
            parse_mdstat("Personalities : \nunused devices: <none>\n").unwrap(),
            vec![]
        );
    }
}
