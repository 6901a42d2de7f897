//! `arp` collector: ARP table entries per device from /proc/net/arp.
//! Mirrors node_exporter 1.5.0 `collector/arp_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/arp_linux.go>):
//! every row counts, whatever its flags.

use std::path::PathBuf;

use super::util::{invalid, label1, read_into};
use super::{Batch, Outcome, Source};
use crate::model::MetricType;

/// Counts rows per device (last column), in order of first appearance.
pub(crate) fn count_arp(s: &str) -> Result<Vec<(String, u32)>, String> {
    let mut out: Vec<(String, u32)> = Vec::new();
    for line in s.lines() {
        let cols: Vec<&str> = line.split_ascii_whitespace().collect();
        if cols.is_empty() {
            continue;
        }
        if cols.len() < 6 {
            return Err("unexpected ARP table format".into());
        }
        if cols[0] == "IP" {
            continue;
        }
        let dev = cols[cols.len() - 1];
        match out.iter_mut().find(|(d, _)| d == dev) {
            Some((_, n)) => *n += 1,
            None => out.push((dev.to_string(), 1)),
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) struct Arp {
    path: PathBuf,
    buf: String,
}

impl Arp {
    pub(crate) fn new(p: &super::HostPaths) -> Arp {
        Arp {
            path: p.proc.join("net/arp"),
            buf: String::new(),
        }
    }
}

impl Source for Arp {
    fn name(&self) -> &'static str {
        "arp"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        read_into(&self.path, &mut self.buf)?;
        let counts = count_arp(&self.buf).map_err(invalid)?;
        let f = out.family(
            "node_arp_entries",
            "ARP entries by device",
            MetricType::Gauge,
        );
        for (dev, n) in counts {
            f.push(label1("device", &dev), n as f64);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_rows_are_counted_per_device() {
        let s = "IP address       HW type     Flags       HW address            Mask     Device
172.16.0.1       0x1         0x2         02:fc:00:00:00:02     *        eth0
172.16.0.9       0x1         0x0         00:00:00:00:00:00     *        eth0
10.42.0.5        0x1         0x2         aa:bb:cc:dd:ee:ff     *        cni0
";
        assert_eq!(
            count_arp(s).unwrap(),
            vec![("cni0".to_string(), 1), ("eth0".to_string(), 2)]
        );
        assert!(count_arp("a b c\n").is_err());
    }
}
