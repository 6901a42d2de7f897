//! `sockstat` collector: socket counts per protocol from /proc/net/sockstat and
//! /proc/net/sockstat6 (`node_sockstat_TCP_inuse`, `node_sockstat_TCP_mem_bytes`, …).
//! Mirrors node_exporter 1.5.0 `collector/sockstat_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/sockstat_linux.go>)
//! and procfs v0.8.0 `net_sockstat.go`: only the keys inuse, orphan, tw, alloc, mem and
//! memory are exported, and `mem` (pages) is also given in bytes.

use std::path::PathBuf;

use super::util::{is_missing, read_into};
use super::{Batch, Outcome, Source};
use crate::model::{Labels, MetricType};

const KEYS: [&str; 6] = ["inuse", "orphan", "tw", "alloc", "mem", "memory"];

/// Parses a sockstat file into `(family suffix, value)`; `sockets: used` becomes
/// `sockets_used` when `ipv4`.
pub(crate) fn parse_sockstat(s: &str, ipv4: bool, page_size: f64, out: &mut Vec<(String, f64)>) {
    for line in s.lines() {
        let Some((proto, rest)) = line.split_once(':') else {
            continue;
        };
        let mut kv: Vec<(&str, f64)> = Vec::new();
        let mut f = rest.split_ascii_whitespace();
        while let (Some(k), Some(v)) = (f.next(), f.next()) {
            if let Ok(v) = v.parse::<i64>() {
                kv.push((k, v as f64));
            }
        }
        if proto == "sockets" {
            if ipv4 && let Some((_, v)) = kv.iter().find(|(k, _)| *k == "used") {
                out.push(("sockets_used".to_string(), *v));
            }
            continue;
        }
        for key in KEYS {
            if let Some((_, v)) = kv.iter().find(|(k, _)| *k == key) {
                out.push((format!("{proto}_{key}"), *v));
            }
        }
        if let Some((_, v)) = kv.iter().find(|(k, _)| *k == "mem") {
            out.push((format!("{proto}_mem_bytes"), v * page_size));
        }
    }
}

pub(crate) struct SockStat {
    v4: PathBuf,
    v6: PathBuf,
    buf: String,
    page_size: f64,
    stats: Vec<(String, f64)>,
}

impl SockStat {
    pub(crate) fn new(p: &super::HostPaths) -> SockStat {
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        SockStat {
            v4: p.proc.join("net/sockstat"),
            v6: p.proc.join("net/sockstat6"),
            buf: String::new(),
            page_size: if page > 0 { page as f64 } else { 4096.0 },
            stats: Vec::new(),
        }
    }
}

impl Source for SockStat {
    fn name(&self) -> &'static str {
        "sockstat"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        let mut stats = std::mem::take(&mut self.stats);
        stats.clear();
        for (path, ipv4) in [(&self.v4, true), (&self.v6, false)] {
            match read_into(path, &mut self.buf) {
                Ok(()) => parse_sockstat(&self.buf, ipv4, self.page_size, &mut stats),
                Err(e) if is_missing(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        for (key, v) in &stats {
            let (name, help) = if key == "sockets_used" {
                (
                    "node_sockstat_sockets_used".to_string(),
                    "Number of IPv4 sockets in use.".to_string(),
                )
            } else {
                let (proto, state) = key.split_once('_').unwrap_or((key, ""));
                (
                    format!("node_sockstat_{key}"),
                    format!("Number of {proto} sockets in state {state}."),
                )
            };
            out.family(name, help, MetricType::Gauge)
                .push(Labels::empty(), *v);
        }
        self.stats = stats;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockstat_lines_become_protocol_state_pairs_with_mem_in_bytes() {
        let s = "sockets: used 19\nTCP: inuse 4 orphan 0 tw 0 alloc 4 mem 339\nUDP: inuse 0 mem 0\nFRAG: inuse 0 memory 0\n";
        let mut out = Vec::new();
        parse_sockstat(s, true, 4096.0, &mut out);
        assert_eq!(out[0], ("sockets_used".to_string(), 19.0));
        assert!(out.contains(&("TCP_mem_bytes".to_string(), 339.0 * 4096.0)));
        assert!(out.contains(&("FRAG_memory".to_string(), 0.0)));
        assert_eq!(out.len(), 1 + 6 + 3 + 2);
    }

    #[test]
    fn ipv6_sockets_used_is_not_exported() {
        let mut out = Vec::new();
        parse_sockstat("sockets: used 3\nTCP6: inuse 1\n", false, 4096.0, &mut out);
        assert_eq!(out, vec![("TCP6_inuse".to_string(), 1.0)]);
    }
}
