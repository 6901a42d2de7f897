//! `diskstats` collector: per block device I/O counters from /proc/diskstats, plus
//! `node_disk_info` and the udev-derived families (`node_disk_filesystem_info`,
//! `node_disk_device_mapper_info`, `node_disk_ata_*`) from /run/udev/data.
//! Mirrors node_exporter 1.5.0 `collector/diskstats_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/diskstats_linux.go>):
//! sectors are 512 bytes, times are milliseconds, partitions of whole disks are excluded
//! by the default device regex, and only as many counters are exported as the kernel
//! provides (4.18 added discards, 5.5 flushes).
//!
//! The udev database is looked up under the root filesystem path
//! (`<rootfs>/run/udev/data`), which is /run/udev/data on a normal host and the host's
//! database when Picket runs in a container with the host's root mounted.

use std::path::PathBuf;

use regex::Regex;

use super::util::read_into;
use super::{Batch, Outcome, Source};
use crate::model::{Labels, MetricType};

/// node_exporter's default `--collector.diskstats.device-exclude`.
pub(crate) const DEVICE_EXCLUDE: &str = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$";

/// One line of /proc/diskstats.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DiskLine {
    pub major: u32,
    pub minor: u32,
    pub device: String,
    /// The counters after the device name, as many as the kernel printed (up to 17).
    pub stats: Vec<u64>,
}

/// Parses /proc/diskstats. Lines with fewer than the 11 classic counters or with
/// unparsable numbers are skipped.
pub(crate) fn parse_diskstats(s: &str, out: &mut Vec<DiskLine>) {
    out.clear();
    'lines: for line in s.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(major), Some(minor), Some(device)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        let mut stats = Vec::with_capacity(17);
        for v in f.take(17) {
            match v.parse() {
                Ok(v) => stats.push(v),
                Err(_) => continue 'lines,
            }
        }
        if stats.len() < 11 {
            continue;
        }
        out.push(DiskLine {
            major,
            minor,
            device: device.to_string(),
            stats,
        });
    }
}

const SECONDS_PER_TICK: f64 = 1.0 / 1000.0;
const SECTOR: f64 = 512.0;

/// (name, help, kind, factor) of each /proc/diskstats counter, in column order.
const COUNTERS: [(&str, &str, MetricType, f64); 17] = [
    (
        "node_disk_reads_completed_total",
        "The total number of reads completed successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_reads_merged_total",
        "The total number of reads merged.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_read_bytes_total",
        "The total number of bytes read successfully.",
        MetricType::Counter,
        SECTOR,
    ),
    (
        "node_disk_read_time_seconds_total",
        "The total number of seconds spent by all reads.",
        MetricType::Counter,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_writes_completed_total",
        "The total number of writes completed successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_writes_merged_total",
        "The number of writes merged.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_written_bytes_total",
        "The total number of bytes written successfully.",
        MetricType::Counter,
        SECTOR,
    ),
    (
        "node_disk_write_time_seconds_total",
        "This is the total number of seconds spent by all writes.",
        MetricType::Counter,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_io_now",
        "The number of I/Os currently in progress.",
        MetricType::Gauge,
        1.0,
    ),
    (
        "node_disk_io_time_seconds_total",
        "Total seconds spent doing I/Os.",
        MetricType::Counter,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_io_time_weighted_seconds_total",
        "The weighted # of seconds spent doing I/Os.",
        MetricType::Counter,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_discards_completed_total",
        "The total number of discards completed successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_discards_merged_total",
        "The total number of discards merged.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_discarded_sectors_total",
        "The total number of sectors discarded successfully.",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_discard_time_seconds_total",
        "This is the total number of seconds spent by all discards.",
        MetricType::Counter,
        SECONDS_PER_TICK,
    ),
    (
        "node_disk_flush_requests_total",
        "The total number of flush requests completed successfully",
        MetricType::Counter,
        1.0,
    ),
    (
        "node_disk_flush_requests_time_seconds_total",
        "This is the total number of seconds spent by all flush requests.",
        MetricType::Counter,
        SECONDS_PER_TICK,
    ),
];

/// Parses a udev database file's `E:KEY=VALUE` property lines.
pub(crate) fn parse_udev(s: &str, out: &mut Vec<(String, String)>) {
    out.clear();
    for line in s.lines() {
        if let Some((k, v)) = line.strip_prefix("E:").and_then(|kv| kv.split_once('=')) {
            out.push((k.to_string(), v.to_string()));
        }
    }
}

fn prop<'a>(props: &'a [(String, String)], key: &str) -> &'a str {
    props
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

pub(crate) struct DiskStats {
    path: PathBuf,
    udev_dir: PathBuf,
    buf: String,
    udev_buf: String,
    lines: Vec<DiskLine>,
    exclude: Option<Regex>,
}

impl DiskStats {
    pub(crate) fn new(p: &super::HostPaths) -> DiskStats {
        DiskStats {
            path: p.proc.join("diskstats"),
            udev_dir: p.rootfs.join("run/udev/data"),
            buf: String::new(),
            udev_buf: String::new(),
            lines: Vec::new(),
            exclude: Regex::new(DEVICE_EXCLUDE).ok(),
        }
    }
}

impl Source for DiskStats {
    fn name(&self) -> &'static str {
        "diskstats"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        read_into(&self.path, &mut self.buf)?;
        let mut lines = std::mem::take(&mut self.lines);
        parse_diskstats(&self.buf, &mut lines);
        lines.retain(|l| !self.exclude.as_ref().is_some_and(|r| r.is_match(&l.device)));

        // Per device: its label set and its udev properties.
        let mut devs: Vec<(Labels, Vec<(String, String)>)> = Vec::with_capacity(lines.len());
        for l in &lines {
            let mut props = Vec::new();
            let file = self.udev_dir.join(format!("b{}:{}", l.major, l.minor));
            if read_into(&file, &mut self.udev_buf).is_ok() {
                parse_udev(&self.udev_buf, &mut props);
            }
            devs.push((Labels::from_pairs([("device", l.device.as_str())]), props));
        }

        let info = out.family(
            "node_disk_info",
            "Info of /sys/block/<block_device>.",
            MetricType::Gauge,
        );
        for (l, (_, props)) in lines.iter().zip(&devs) {
            let major = l.major.to_string();
            let minor = l.minor.to_string();
            info.push(
                Labels::from_pairs([
                    ("device", l.device.as_str()),
                    ("major", &major),
                    ("minor", &minor),
                    ("path", prop(props, "ID_PATH")),
                    ("wwn", prop(props, "ID_WWN")),
                    ("model", prop(props, "ID_MODEL")),
                    ("serial", prop(props, "ID_SERIAL_SHORT")),
                    ("revision", prop(props, "ID_REVISION")),
                ]),
                1.0,
            );
        }
        for (i, (name, help, kind, factor)) in COUNTERS.iter().enumerate() {
            if !lines.iter().any(|l| l.stats.len() > i) {
                continue;
            }
            let f = out.family(*name, *help, *kind);
            for (l, (labels, _)) in lines.iter().zip(&devs) {
                if let Some(v) = l.stats.get(i) {
                    f.push(labels.clone(), *v as f64 * factor);
                }
            }
        }

        let start = out.families.len();
        for (l, (labels, props)) in lines.iter().zip(&devs) {
            let fs_type = prop(props, "ID_FS_TYPE");
            if !fs_type.is_empty() {
                out.family_since(
                    start,
                    "node_disk_filesystem_info",
                    "Info about disk filesystem.",
                    MetricType::Gauge,
                )
                .push(
                    Labels::from_pairs([
                        ("device", l.device.as_str()),
                        ("type", fs_type),
                        ("usage", prop(props, "ID_FS_USAGE")),
                        ("uuid", prop(props, "ID_FS_UUID")),
                        ("version", prop(props, "ID_FS_VERSION")),
                    ]),
                    1.0,
                );
            }
            let dm_name = prop(props, "DM_NAME");
            if !dm_name.is_empty() {
                out.family_since(
                    start,
                    "node_disk_device_mapper_info",
                    "Info about disk device mapper.",
                    MetricType::Gauge,
                )
                .push(
                    Labels::from_pairs([
                        ("device", l.device.as_str()),
                        ("name", dm_name),
                        ("uuid", prop(props, "DM_UUID")),
                        ("vg_name", prop(props, "DM_VG_NAME")),
                        ("lv_name", prop(props, "DM_LV_NAME")),
                        ("lv_layer", prop(props, "DM_LV_LAYER")),
                    ]),
                    1.0,
                );
            }
            if !prop(props, "ID_ATA").is_empty() {
                for (key, name, help) in [
                    (
                        "ID_ATA_WRITE_CACHE",
                        "node_disk_ata_write_cache",
                        "ATA disk has a write cache.",
                    ),
                    (
                        "ID_ATA_WRITE_CACHE_ENABLED",
                        "node_disk_ata_write_cache_enabled",
                        "ATA disk has its write cache enabled.",
                    ),
                    (
                        "ID_ATA_ROTATION_RATE_RPM",
                        "node_disk_ata_rotation_rate_rpm",
                        "ATA disk rotation rate in RPMs (0 for SSDs).",
                    ),
                ] {
                    if let Ok(v) = prop(props, key).parse::<f64>() {
                        out.family_since(start, name, help, MetricType::Gauge)
                            .push(labels.clone(), v);
                    }
                }
            }
        }
        self.lines = lines;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DISKSTATS: &str = " 254       0 vda 30078 6041 3282128 9876 10680 16152 4030112 6041 0 4720 16235 4165 47 466376 272 1341 44
 254       1 vda1 100 0 800 10 0 0 0 0 0 10 10
 253       0 zram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
   7       0 loop0 1 2 3 4 5 6 7 8 9 10 11
 179       0 mmcblk0 1 2 3 4 5 6 7 8 9 10 11
 179       1 mmcblk0p1 1 2 3 4 5 6 7 8 9 10 11
   8       0 sda x 1
";

    #[test]
    fn diskstats_lines_are_parsed_with_as_many_counters_as_the_kernel_prints() {
        let mut out = Vec::new();
        parse_diskstats(DISKSTATS, &mut out);
        let names: Vec<_> = out.iter().map(|l| l.device.as_str()).collect();
        assert_eq!(
            names,
            ["vda", "vda1", "zram0", "loop0", "mmcblk0", "mmcblk0p1"]
        );
        assert_eq!(out[0].stats.len(), 17);
        assert_eq!(out[1].stats.len(), 11);
        assert_eq!(out[0].major, 254);
    }

    #[test]
    fn the_default_exclusion_drops_partitions_of_sd_and_vd_disks_and_loops() {
        let r = Regex::new(DEVICE_EXCLUDE).unwrap();
        for (dev, excluded) in [
            ("vda", false),
            ("vda1", true),
            ("sda", false),
            ("sda2", true),
            ("loop0", true),
            ("ram3", true),
            ("nvme0n1", false),
            ("nvme0n1p1", true),
            ("mmcblk0", false),
            ("mmcblk0p1", false),
        ] {
            assert_eq!(r.is_match(dev), excluded, "{dev}");
        }
    }

    #[test]
    fn udev_properties_are_read_from_e_lines() {
        let mut out = Vec::new();
        parse_udev(
            "S:disk/by-path/x\nE:ID_PATH=platform-fe340000.mmc\nE:ID_FS_TYPE=\nI:123\n",
            &mut out,
        );
        assert_eq!(prop(&out, "ID_PATH"), "platform-fe340000.mmc");
        assert_eq!(prop(&out, "ID_FS_TYPE"), "");
        assert_eq!(prop(&out, "ID_MODEL"), "");
    }
}
