//! `udp_queues` collector: bytes queued in UDP sockets, summed over /proc/net/udp and
//! /proc/net/udp6. Mirrors node_exporter 1.5.0 `collector/udp_queues_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/udp_queues_linux.go>)
//! and procfs v0.8.0 `net_ip_socket.go` (the `tx_queue:rx_queue` column is hex).

use std::path::PathBuf;

use super::util::{is_missing, label2, read_into};
use super::{Batch, Failure, Outcome, Source};
use crate::model::MetricType;

/// Sums the tx and rx queue columns of a /proc/net/udp{,6} table.
pub(crate) fn sum_queues(s: &str) -> Result<(u64, u64), String> {
    let (mut tx, mut rx) = (0u64, 0u64);
    for line in s.lines().skip(1) {
        let Some(q) = line.split_ascii_whitespace().nth(4) else {
            continue;
        };
        let (t, r) = q
            .split_once(':')
            .ok_or_else(|| format!("bad queue column {q:?}"))?;
        let t = u64::from_str_radix(t, 16).map_err(|_| format!("bad tx_queue {t:?}"))?;
        let r = u64::from_str_radix(r, 16).map_err(|_| format!("bad rx_queue {r:?}"))?;
        tx = tx.saturating_add(t);
        rx = rx.saturating_add(r);
    }
    Ok((tx, rx))
}

pub(crate) struct UdpQueues {
    v4: PathBuf,
    v6: PathBuf,
    buf: String,
}

impl UdpQueues {
    pub(crate) fn new(p: &super::HostPaths) -> UdpQueues {
        UdpQueues {
            v4: p.proc.join("net/udp"),
            v6: p.proc.join("net/udp6"),
            buf: String::new(),
        }
    }
}

impl Source for UdpQueues {
    fn name(&self) -> &'static str {
        "udp_queues"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        let f = out.family(
            "node_udp_queues",
            "Number of allocated memory in the kernel for UDP datagrams in bytes.",
            MetricType::Gauge,
        );
        let mut missing = 0;
        for (path, ip) in [(&self.v4, "v4"), (&self.v6, "v6")] {
            match read_into(path, &mut self.buf) {
                Ok(()) => {
                    let (tx, rx) = sum_queues(&self.buf).map_err(Failure::Error)?;
                    f.push(label2("ip", ip, "queue", "tx"), tx as f64);
                    f.push(label2("ip", ip, "queue", "rx"), rx as f64);
                }
                Err(e) if is_missing(&e) => missing += 1,
                Err(e) => return Err(e.into()),
            }
        }
        if missing == 2 {
            return Err(Failure::NoData("no /proc/net/udp{,6}".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_columns_are_summed_from_hex() {
        let s = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  1: 00000000:0044 00000000:0000 07 00000010:00000001 00:00000000 00000000     0        0 1 2 0 0
  2: 00000000:0045 00000000:0000 07 00000001:0000000F 00:00000000 00000000     0        0 1 2 0 0
";
        assert_eq!(sum_queues(s).unwrap(), (17, 16));
        assert_eq!(sum_queues("header\n").unwrap(), (0, 0));
        assert!(sum_queues("h\n 1: a b c zz:1\n").is_err());
    }
}
