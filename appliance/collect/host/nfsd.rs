//! `nfsd` collector: NFS server statistics from /proc/net/rpc/nfsd (`node_nfsd_*`), for a
//! Pi that serves NFS volumes to the rest of the cluster. Mirrors node_exporter 1.5.0
//! `collector/nfsd_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/nfsd_linux.go>)
//! and procfs v0.8.0 `nfs/parse_nfsd.go`: each line has a fixed arity (only the first
//! two numbers of `th` count), lines the kernel omits read as zeros, and the request
//! families list v2/v3 procedures without `Null` and a fixed set of v4 operations.
//! No NFS server module (no file) means "no data".

use std::path::PathBuf;

use super::util::{label1, label2, read_into};
use super::{Batch, Failure, Outcome, Source};
use crate::model::MetricType;

const V2: [(&str, usize); 17] = [
    ("GetAttr", 1),
    ("SetAttr", 2),
    ("Root", 3),
    ("Lookup", 4),
    ("ReadLink", 5),
    ("Read", 6),
    ("WrCache", 7),
    ("Write", 8),
    ("Create", 9),
    ("Remove", 10),
    ("Rename", 11),
    ("Link", 12),
    ("SymLink", 13),
    ("MkDir", 14),
    ("RmDir", 15),
    ("ReadDir", 16),
    ("FsStat", 17),
];
const V3: [(&str, usize); 21] = [
    ("GetAttr", 1),
    ("SetAttr", 2),
    ("Lookup", 3),
    ("Access", 4),
    ("ReadLink", 5),
    ("Read", 6),
    ("Write", 7),
    ("Create", 8),
    ("MkDir", 9),
    ("SymLink", 10),
    ("MkNod", 11),
    ("Remove", 12),
    ("RmDir", 13),
    ("Rename", 14),
    ("Link", 15),
    ("ReadDir", 16),
    ("ReadDirPlus", 17),
    ("FsStat", 18),
    ("FsInfo", 19),
    ("PathConf", 20),
    ("Commit", 21),
];
/// (method, index into the `proc4ops` values).
const V4_OPS: [(&str, usize); 33] = [
    ("Access", 3),
    ("Close", 4),
    ("Commit", 5),
    ("Create", 6),
    ("DelegPurge", 7),
    ("DelegReturn", 8),
    ("GetAttr", 9),
    ("GetFH", 10),
    ("Link", 11),
    ("Lock", 12),
    ("Lockt", 13),
    ("Locku", 14),
    ("Lookup", 15),
    ("LookupRoot", 16),
    ("Nverify", 17),
    ("Open", 18),
    ("OpenAttr", 19),
    ("OpenConfirm", 20),
    ("OpenDgrd", 21),
    ("PutFH", 22),
    ("Read", 25),
    ("ReadDir", 26),
    ("ReadLink", 27),
    ("Remove", 28),
    ("Rename", 29),
    ("Renew", 30),
    ("RestoreFH", 31),
    ("SaveFH", 32),
    ("SecInfo", 33),
    ("SetAttr", 34),
    ("Verify", 35),
    ("Write", 36),
    ("RelLockOwner", 37),
];

/// The server statistics, as the raw value lists of each line (zeros when absent).
#[derive(Debug, PartialEq)]
pub(crate) struct ServerStats {
    pub rc: [u64; 3],
    pub fh: [u64; 5],
    pub io: [u64; 2],
    pub th: [u64; 2],
    pub ra: [u64; 12],
    pub net: [u64; 4],
    pub rpc: [u64; 5],
    /// Per-procedure counts without the leading count (index 0 is Null).
    pub v2: Vec<u64>,
    pub v3: Vec<u64>,
    /// proc4ops values without the leading count.
    pub v4ops: Vec<u64>,
}

fn fixed<const N: usize>(values: &[u64], line: &str) -> Result<[u64; N], String> {
    values
        .try_into()
        .map_err(|_| format!("invalid NFSd line {line:?}: want {N} values"))
}

fn counted(
    values: &[u64],
    min: usize,
    exact: Option<usize>,
    line: &str,
) -> Result<Vec<u64>, String> {
    let Some((&n, rest)) = values.split_first() else {
        return Err(format!("invalid NFSd line {line:?}"));
    };
    let ok = rest.len() as u64 == n && rest.len() >= min && exact.is_none_or(|e| rest.len() == e);
    if !ok {
        return Err(format!("invalid NFSd line {line:?}"));
    }
    Ok(rest.to_vec())
}

/// Parses /proc/net/rpc/nfsd.
pub(crate) fn parse_server_stats(s: &str) -> Result<ServerStats, String> {
    let mut st = ServerStats {
        rc: [0; 3],
        fh: [0; 5],
        io: [0; 2],
        th: [0; 2],
        ra: [0; 12],
        net: [0; 4],
        rpc: [0; 5],
        v2: vec![0; 18],
        v3: vec![0; 22],
        v4ops: vec![0; 39],
    };
    for line in s.lines() {
        let parts: Vec<&str> = line.split_ascii_whitespace().collect();
        if parts.len() < 2 {
            return Err(format!("invalid NFSd metric line {line:?}"));
        }
        let numbers = if parts[0] == "th" {
            if parts.len() < 3 {
                return Err(format!("invalid NFSd th metric line {line:?}"));
            }
            &parts[1..3]
        } else {
            &parts[1..]
        };
        let values: Vec<u64> = numbers
            .iter()
            .map(|p| p.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("error parsing NFSd metric line {line:?}"))?;
        match parts[0] {
            "rc" => st.rc = fixed(&values, line)?,
            "fh" => st.fh = fixed(&values, line)?,
            "io" => st.io = fixed(&values, line)?,
            "th" => st.th = fixed(&values, line)?,
            "ra" => st.ra = fixed(&values, line)?,
            "net" => st.net = fixed(&values, line)?,
            "rpc" => st.rpc = fixed(&values, line)?,
            "proc2" => st.v2 = counted(&values, 18, None, line)?,
            "proc3" => st.v3 = counted(&values, 22, None, line)?,
            "proc4" => {
                counted(&values, 2, Some(2), line)?;
            }
            "proc4ops" => st.v4ops = counted(&values, 39, None, line)?,
            other => return Err(format!("unknown NFSd metric line {other:?}")),
        }
    }
    Ok(st)
}

pub(crate) struct Nfsd {
    path: PathBuf,
    buf: String,
}

impl Nfsd {
    pub(crate) fn new(p: &super::HostPaths) -> Nfsd {
        Nfsd {
            path: p.proc.join("net/rpc/nfsd"),
            buf: String::new(),
        }
    }
}

impl Source for Nfsd {
    fn name(&self) -> &'static str {
        "nfsd"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        read_into(&self.path, &mut self.buf).map_err(Failure::missing_is_no_data)?;
        let st = parse_server_stats(&self.buf).map_err(Failure::Error)?;
        use MetricType::{Counter, Gauge};
        let scalars: [(&str, &str, MetricType, u64); 11] = [
            (
                "node_nfsd_reply_cache_hits_total",
                "Total number of NFSd Reply Cache hits (client lost server response).",
                Counter,
                st.rc[0],
            ),
            (
                "node_nfsd_reply_cache_misses_total",
                "Total number of NFSd Reply Cache an operation that requires caching (idempotent).",
                Counter,
                st.rc[1],
            ),
            (
                "node_nfsd_reply_cache_nocache_total",
                "Total number of NFSd Reply Cache non-idempotent operations (rename/delete/…).",
                Counter,
                st.rc[2],
            ),
            (
                "node_nfsd_file_handles_stale_total",
                "Total number of NFSd stale file handles",
                Counter,
                st.fh[0],
            ),
            (
                "node_nfsd_disk_bytes_read_total",
                "Total NFSd bytes read.",
                Counter,
                st.io[0],
            ),
            (
                "node_nfsd_disk_bytes_written_total",
                "Total NFSd bytes written.",
                Counter,
                st.io[1],
            ),
            (
                "node_nfsd_server_threads",
                "Total number of NFSd kernel threads that are running.",
                Gauge,
                st.th[0],
            ),
            (
                "node_nfsd_read_ahead_cache_size_blocks",
                "How large the read ahead cache is in blocks.",
                Gauge,
                st.ra[0],
            ),
            (
                "node_nfsd_read_ahead_cache_not_found_total",
                "Total number of NFSd read ahead cache not found.",
                Counter,
                st.ra[11],
            ),
            (
                "node_nfsd_connections_total",
                "Total number of NFSd TCP connections.",
                Counter,
                st.net[3],
            ),
            (
                "node_nfsd_server_rpcs_total",
                "Total number of NFSd RPCs.",
                Counter,
                st.rpc[0],
            ),
        ];
        for (name, help, kind, v) in scalars {
            out.scalar(name, help, kind, v as f64);
        }
        let f = out.family(
            "node_nfsd_packets_total",
            "Total NFSd network packets (sent+received) by protocol type.",
            Counter,
        );
        f.push(label1("proto", "udp"), st.net[1] as f64);
        f.push(label1("proto", "tcp"), st.net[2] as f64);
        let f = out.family(
            "node_nfsd_rpc_errors_total",
            "Total number of NFSd RPC errors by error type.",
            Counter,
        );
        f.push(label1("error", "fmt"), st.rpc[2] as f64);
        f.push(label1("error", "auth"), st.rpc[3] as f64);
        f.push(label1("error", "cInt"), st.rpc[4] as f64);
        let f = out.family(
            "node_nfsd_requests_total",
            "Total number NFSd Requests by method and protocol.",
            Counter,
        );
        for (proto, table, values) in [
            ("2", &V2[..], &st.v2),
            ("3", &V3[..], &st.v3),
            ("4", &V4_OPS[..], &st.v4ops),
        ] {
            for (method, idx) in table {
                let v = values.get(*idx).copied().unwrap_or(0);
                f.push(label2("method", method, "proto", proto), v as f64);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NFSD: &str = "rc 0 6 18622
fh 0 0 0 0 0
io 157286400 72864
th 8 0 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000
ra 32 0 0 0 0 0 0 0 0 0 0 0
net 972 55 917 1
rpc 18628 3 1 2 0
proc2 18 2 69 0 0 4410 0 0 0 0 0 0 0 0 0 0 0 99 2
proc3 22 2 112 0 2719 111 0 0 0 0 0 0 0 0 0 0 0 27 216 0 2 1 0
proc4 2 2 10853
proc4ops 40 0 0 0 1098 2 0 0 0 0 8179 5896 0 0 0 0 5900 0 0 2 0 2 0 9609 0 2 150 1272 0 0 0 1236 0 0 0 0 3 3 0 0 0
";

    #[test]
    fn server_lines_are_parsed_with_their_fixed_arity() {
        let st = parse_server_stats(NFSD).unwrap();
        assert_eq!(st.rc, [0, 6, 18622]);
        assert_eq!(st.th, [8, 0]);
        assert_eq!(st.net, [972, 55, 917, 1]);
        assert_eq!(st.v2[4], 4410);
        assert_eq!(st.v3[17], 216);
        assert_eq!(st.v4ops[3], 1098);
        assert_eq!(st.v4ops[36], 3);
    }

    #[test]
    fn malformed_nfsd_lines_are_errors_not_panics() {
        assert!(parse_server_stats("rc 1 2\n").is_err());
        assert!(parse_server_stats("th 8\n").is_err());
        assert!(parse_server_stats("proc4 3 1 2 3\n").is_err());
        assert!(parse_server_stats("proc4ops 2 1 2\n").is_err());
        assert!(parse_server_stats("io x y\n").is_err());
        assert!(parse_server_stats("what 1\n").is_err());
    }
}
