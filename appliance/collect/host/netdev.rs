//! `netdev` collector: per interface traffic counters, `node_network_{receive,transmit}_*_total`.
//! Mirrors node_exporter 1.5.0 `collector/netdev_linux.go` and `netdev_common.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/netdev_common.go>).
//!
//! node_exporter 1.5.0 reads rtnetlink link statistics by default and folds them into the
//! legacy /proc/net/dev names (`legacy()`): drop includes missed errors, frame includes
//! length/over/CRC errors, carrier includes aborted/heartbeat/window errors. That is
//! exactly how the kernel computes the /proc/net/dev columns, so Picket parses
//! /proc/net/dev and adds the one counter it lacks, `receive_nohandler`, from
//! /sys/class/net/<dev>/statistics/rx_nohandler. `lo` is excluded by default.

use std::path::PathBuf;

use super::util::{read_into, read_u64};
use super::{Batch, Outcome, Source};
use crate::model::{Labels, MetricType};

/// The /proc/net/dev columns, in order, under node_exporter's legacy names.
const COLUMNS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errs",
    "receive_drop",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errs",
    "transmit_drop",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

/// Parses /proc/net/dev into `(device, 16 counters)`; header and bad lines are skipped.
pub(crate) fn parse_net_dev(s: &str, out: &mut Vec<(String, [u64; 16])>) {
    out.clear();
    'lines: for line in s.lines() {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || name.contains('|') {
            continue;
        }
        let mut vals = [0u64; 16];
        let mut n = 0;
        for (slot, field) in vals.iter_mut().zip(rest.split_ascii_whitespace()) {
            match field.parse() {
                Ok(v) => *slot = v,
                Err(_) => continue 'lines,
            }
            n += 1;
        }
        if n == 16 {
            out.push((name.to_string(), vals));
        }
    }
}

pub(crate) struct NetDev {
    path: PathBuf,
    class_net: PathBuf,
    buf: String,
    rows: Vec<(String, [u64; 16])>,
}

impl NetDev {
    pub(crate) fn new(p: &super::HostPaths) -> NetDev {
        NetDev {
            path: p.proc.join("net/dev"),
            class_net: p.sys.join("class/net"),
            buf: String::new(),
            rows: Vec::new(),
        }
    }
}

impl Source for NetDev {
    fn name(&self) -> &'static str {
        "netdev"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        read_into(&self.path, &mut self.buf)?;
        let mut rows = std::mem::take(&mut self.rows);
        parse_net_dev(&self.buf, &mut rows);
        rows.retain(|(name, _)| name != "lo");
        let labels: Vec<Labels> = rows
            .iter()
            .map(|(n, _)| Labels::from_pairs([("device", n.as_str())]))
            .collect();
        let nohandler: Vec<u64> = rows
            .iter()
            .map(|(n, _)| {
                let p = self.class_net.join(n).join("statistics/rx_nohandler");
                read_u64(&p, &mut self.buf).unwrap_or(0)
            })
            .collect();

        // Families in name order, as node_exporter's registry would sort them.
        let mut order: Vec<(&str, Option<usize>)> = COLUMNS
            .iter()
            .enumerate()
            .map(|(i, c)| (*c, Some(i)))
            .collect();
        order.push(("receive_nohandler", None));
        order.sort_by_key(|(name, _)| *name);
        for (col, idx) in order {
            let f = out.family(
                format!("node_network_{col}_total"),
                format!("Network device statistic {col}."),
                MetricType::Counter,
            );
            for (r, ((_, vals), labels)) in rows.iter().zip(&labels).enumerate() {
                let v = match idx {
                    Some(i) => vals[i],
                    None => nohandler[r],
                };
                f.push(labels.clone(), v as f64);
            }
        }
        self.rows = rows;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:    1234      10    0    0    0     0          0         0     1234      10    0    0    0     0       0          0
  eth0: 225531183    6938    1    2    3     4          5         6   344281    3956    7    8    9    10      11         12
 bad0: 1 2 3
";

    #[test]
    fn net_dev_rows_have_sixteen_counters_and_headers_are_skipped() {
        let mut out = Vec::new();
        parse_net_dev(NET_DEV, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].0, "eth0");
        assert_eq!(out[1].1[0], 225531183);
        assert_eq!(out[1].1[15], 12);
    }
}
