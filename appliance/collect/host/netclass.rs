//! `netclass` collector: interface properties from /sys/class/net/<iface>/*
//! (`node_network_up`, `node_network_info`, `node_network_mtu_bytes`, …).
//! Mirrors node_exporter 1.5.0 `collector/netclass_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/netclass_linux.go>)
//! and prometheus/procfs v0.8.0 `sysfs/net_class.go`: an attribute the kernel refuses to
//! read (e.g. `speed` or `carrier` of a down interface gives EINVAL) is simply absent;
//! `speed` is exported even when negative (-1 = unknown), since
//! `--collector.netclass.ignore-invalid-speed` is off by default.

use std::path::PathBuf;

use super::util::read_trimmed;
use super::{Batch, Failure, Outcome, Source};
use crate::model::{Labels, MetricType};

/// (sysfs file, metric suffix, kind, hex?) of the numeric attributes, in the order
/// netclass_linux.go pushes them.
const NUMERIC: [(&str, &str, MetricType, bool); 16] = [
    (
        "addr_assign_type",
        "address_assign_type",
        MetricType::Gauge,
        false,
    ),
    ("carrier", "carrier", MetricType::Gauge, false),
    (
        "carrier_changes",
        "carrier_changes_total",
        MetricType::Counter,
        false,
    ),
    (
        "carrier_up_count",
        "carrier_up_changes_total",
        MetricType::Counter,
        false,
    ),
    (
        "carrier_down_count",
        "carrier_down_changes_total",
        MetricType::Counter,
        false,
    ),
    ("dev_id", "device_id", MetricType::Gauge, true),
    ("dormant", "dormant", MetricType::Gauge, false),
    ("flags", "flags", MetricType::Gauge, true),
    ("ifindex", "iface_id", MetricType::Gauge, false),
    ("iflink", "iface_link", MetricType::Gauge, false),
    ("link_mode", "iface_link_mode", MetricType::Gauge, false),
    ("mtu", "mtu_bytes", MetricType::Gauge, false),
    (
        "name_assign_type",
        "name_assign_type",
        MetricType::Gauge,
        false,
    ),
    ("netdev_group", "net_dev_group", MetricType::Gauge, false),
    ("speed", "speed_bytes", MetricType::Gauge, false),
    (
        "tx_queue_len",
        "transmit_queue_length",
        MetricType::Gauge,
        false,
    ),
];
/// `type` is pushed last as `protocol_type`.
const TYPE_INDEX: usize = NUMERIC.len();

/// Parses a numeric attribute: decimal, or `0x`-prefixed hex for `dev_id` and `flags`.
pub(crate) fn parse_attr(s: &str, hex: bool) -> Option<i64> {
    if hex {
        let h = s.strip_prefix("0x").unwrap_or(s);
        i64::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

/// One interface's attributes.
struct Iface {
    labels: Labels,
    up: bool,
    info: Labels,
    /// NUMERIC values then `type`; None when unreadable.
    values: [Option<i64>; NUMERIC.len() + 1],
}

pub(crate) struct NetClass {
    dir: PathBuf,
    buf: String,
}

impl NetClass {
    pub(crate) fn new(p: &super::HostPaths) -> NetClass {
        NetClass {
            dir: p.sys.join("class/net"),
            buf: String::new(),
        }
    }

    fn read_str(&mut self, iface: &str, file: &str) -> String {
        let p = self.dir.join(iface).join(file);
        read_trimmed(&p, &mut self.buf)
            .map(str::to_string)
            .unwrap_or_default()
    }

    fn read_num(&mut self, iface: &str, file: &str, hex: bool) -> Option<i64> {
        let p = self.dir.join(iface).join(file);
        read_trimmed(&p, &mut self.buf)
            .ok()
            .and_then(|s| parse_attr(s, hex))
    }
}

impl Source for NetClass {
    fn name(&self) -> &'static str {
        "netclass"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                return Err(Failure::NoData(e.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        let mut names: Vec<String> = Vec::new();
        for e in entries.flatten() {
            // procfs skips regular files such as `bonding_masters`; devices are symlinks.
            if e.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            if let Some(n) = e.file_name().to_str() {
                names.push(n.to_string());
            }
        }
        names.sort();

        let mut ifaces = Vec::with_capacity(names.len());
        for name in &names {
            let operstate = self.read_str(name, "operstate");
            let info = Labels::from_pairs([
                ("device", name.as_str()),
                ("address", &self.read_str(name, "address")),
                ("broadcast", &self.read_str(name, "broadcast")),
                ("duplex", &self.read_str(name, "duplex")),
                ("operstate", &operstate),
                ("ifalias", &self.read_str(name, "ifalias")),
            ]);
            let mut values = [None; NUMERIC.len() + 1];
            for (slot, (file, _, _, hex)) in values.iter_mut().zip(NUMERIC) {
                *slot = self.read_num(name, file, hex);
            }
            values[TYPE_INDEX] = self.read_num(name, "type", false);
            ifaces.push(Iface {
                labels: Labels::from_pairs([("device", name.as_str())]),
                up: operstate == "up",
                info,
                values,
            });
        }

        let f = out.family(
            "node_network_up",
            "Value is 1 if operstate is 'up', 0 otherwise.",
            MetricType::Gauge,
        );
        for i in &ifaces {
            f.push(i.labels.clone(), if i.up { 1.0 } else { 0.0 });
        }
        let f = out.family(
            "node_network_info",
            "Non-numeric data from /sys/class/net/<iface>, value is always 1.",
            MetricType::Gauge,
        );
        for i in &ifaces {
            f.push(i.info.clone(), 1.0);
        }
        let props = NUMERIC
            .iter()
            .map(|(_, suffix, kind, _)| (*suffix, *kind))
            .chain([("protocol_type", MetricType::Gauge)]);
        for (idx, (suffix, kind)) in props.enumerate() {
            if !ifaces.iter().any(|i| i.values[idx].is_some()) {
                continue;
            }
            let f = out.family(
                format!("node_network_{suffix}"),
                format!("Network device property: {suffix}"),
                kind,
            );
            for i in &ifaces {
                if let Some(v) = i.values[idx] {
                    // speed is Mbit/s; node_exporter: int64(speed * 1000 * 1000 / 8).
                    let v = if suffix == "speed_bytes" {
                        v.saturating_mul(125_000)
                    } else {
                        v
                    };
                    f.push(i.labels.clone(), v as f64);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_and_decimal_attributes_parse() {
        assert_eq!(parse_attr("0x1003", true), Some(4099));
        assert_eq!(parse_attr("0x0", true), Some(0));
        assert_eq!(parse_attr("-1", false), Some(-1));
        assert_eq!(parse_attr("", false), None);
        assert_eq!(parse_attr("zz", true), None);
    }

    #[test]
    fn a_fake_sysfs_interface_yields_up_info_and_properties() {
        let dir = tempfile::tempdir().unwrap();
        let eth = dir.path().join("class/net/eth0");
        std::fs::create_dir_all(&eth).unwrap();
        for (f, v) in [
            ("operstate", "up\n"),
            ("address", "02:fc:00:00:00:01\n"),
            ("mtu", "1500\n"),
            ("flags", "0x1003\n"),
            ("speed", "1000\n"),
            ("type", "1\n"),
        ] {
            std::fs::write(eth.join(f), v).unwrap();
        }
        std::fs::write(dir.path().join("class/net/bonding_masters"), "").unwrap();
        let mut c = NetClass::new(&super::super::HostPaths {
            sys: dir.path().to_path_buf(),
            ..Default::default()
        });
        let mut b = Batch::default();
        c.update(&mut b).unwrap();
        assert_eq!(b.get("node_network_up").unwrap().samples[0].1, 1.0);
        assert_eq!(b.get("node_network_flags").unwrap().samples[0].1, 4099.0);
        assert_eq!(
            b.get("node_network_speed_bytes").unwrap().samples[0].1,
            125_000_000.0
        );
        assert_eq!(
            b.get("node_network_protocol_type").unwrap().samples.len(),
            1
        );
        assert!(b.get("node_network_carrier").is_none());
        let info = &b.get("node_network_info").unwrap().samples[0].0;
        assert_eq!(info.get("address"), Some("02:fc:00:00:00:01"));
        assert_eq!(b.get("node_network_up").unwrap().samples.len(), 1);
    }
}
