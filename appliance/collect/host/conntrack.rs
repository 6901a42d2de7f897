//! `conntrack` collector: netfilter connection tracking table size and per-CPU
//! statistics summed (`node_nf_conntrack_*`). k3s nodes lean on conntrack heavily, and a
//! full table drops new connections. Mirrors node_exporter 1.5.0
//! `collector/conntrack_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/conntrack_linux.go>)
//! and procfs v0.8.0 `net_conntrackstat.go`; no conntrack module means "no data".

use std::path::PathBuf;

use super::util::{read_into, read_u64};
use super::{Batch, Failure, Outcome, Source};
use crate::model::MetricType;

/// The /proc/net/stat/nf_conntrack columns summed, in this order.
const STATS: [(&str, &str, &str); 8] = [
    (
        "found",
        "node_nf_conntrack_stat_found",
        "Number of searched entries which were successful.",
    ),
    (
        "invalid",
        "node_nf_conntrack_stat_invalid",
        "Number of packets seen which can not be tracked.",
    ),
    (
        "ignore",
        "node_nf_conntrack_stat_ignore",
        "Number of packets seen which are already connected to a conntrack entry.",
    ),
    (
        "insert",
        "node_nf_conntrack_stat_insert",
        "Number of entries inserted into the list.",
    ),
    (
        "insert_failed",
        "node_nf_conntrack_stat_insert_failed",
        "Number of entries for which list insertion was attempted but failed.",
    ),
    (
        "drop",
        "node_nf_conntrack_stat_drop",
        "Number of packets dropped due to conntrack failure.",
    ),
    (
        "early_drop",
        "node_nf_conntrack_stat_early_drop",
        "Number of dropped conntrack entries to make room for new ones, if maximum table size was reached.",
    ),
    (
        "search_restart",
        "node_nf_conntrack_stat_search_restart",
        "Number of conntrack table lookups which had to be restarted due to hashtable resizes.",
    ),
];

/// Sums the hexadecimal per-CPU rows of /proc/net/stat/nf_conntrack by column name.
pub(crate) fn sum_conntrack_stat(s: &str) -> Result<[u64; 8], String> {
    let mut lines = s.lines();
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty nf_conntrack stat")?
        .split_ascii_whitespace()
        .collect();
    let cols: Vec<Option<usize>> = STATS
        .iter()
        .map(|(n, _, _)| header.iter().position(|h| h == n))
        .collect();
    let mut sums = [0u64; 8];
    for line in lines {
        let vals: Vec<&str> = line.split_ascii_whitespace().collect();
        if vals.is_empty() {
            continue;
        }
        if vals.len() != header.len() {
            return Err(format!(
                "nf_conntrack stat row has {} columns, header {}",
                vals.len(),
                header.len()
            ));
        }
        for (sum, col) in sums.iter_mut().zip(&cols) {
            if let Some(c) = col {
                let v = u64::from_str_radix(vals[*c], 16)
                    .map_err(|_| format!("bad nf_conntrack value {:?}", vals[*c]))?;
                *sum = sum.saturating_add(v);
            }
        }
    }
    Ok(sums)
}

pub(crate) struct Conntrack {
    count: PathBuf,
    max: PathBuf,
    stat: PathBuf,
    buf: String,
}

impl Conntrack {
    pub(crate) fn new(p: &super::HostPaths) -> Conntrack {
        Conntrack {
            count: p.proc.join("sys/net/netfilter/nf_conntrack_count"),
            max: p.proc.join("sys/net/netfilter/nf_conntrack_max"),
            stat: p.proc.join("net/stat/nf_conntrack"),
            buf: String::new(),
        }
    }
}

impl Source for Conntrack {
    fn name(&self) -> &'static str {
        "conntrack"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        let count = read_u64(&self.count, &mut self.buf).map_err(Failure::missing_is_no_data)?;
        out.scalar(
            "node_nf_conntrack_entries",
            "Number of currently allocated flow entries for connection tracking.",
            MetricType::Gauge,
            count as f64,
        );
        let max = read_u64(&self.max, &mut self.buf).map_err(Failure::missing_is_no_data)?;
        out.scalar(
            "node_nf_conntrack_entries_limit",
            "Maximum size of connection tracking table.",
            MetricType::Gauge,
            max as f64,
        );
        read_into(&self.stat, &mut self.buf).map_err(Failure::missing_is_no_data)?;
        let sums = sum_conntrack_stat(&self.buf).map_err(Failure::Error)?;
        for ((_, name, help), v) in STATS.iter().zip(sums) {
            out.scalar(name, help, MetricType::Gauge, v as f64);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cpu_conntrack_rows_are_summed_by_column_name() {
        let s = "entries  clashres found new invalid ignore delete chainlength insert insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete search_restart
00000000  00000000 00000001 00000000 00000002 00000003 00000000 00000000 00000004 00000005 00000006 00000007 00000000  00000000 00000000 00000000 00000008
00000000  00000000 00000010 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000  00000000 00000000 00000000 00000001
";
        assert_eq!(sum_conntrack_stat(s).unwrap(), [17, 2, 3, 4, 5, 6, 7, 9]);
        assert!(sum_conntrack_stat("").is_err());
        assert!(sum_conntrack_stat("a b\n1\n").is_err());
    }
}
