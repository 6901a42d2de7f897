//! `nfs` collector: NFS client RPC statistics from /proc/net/rpc/nfs (`node_nfs_*`), for
//! k3s nodes that mount NFS persistent volumes. Mirrors node_exporter 1.5.0
//! `collector/nfs_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/nfs_linux.go>)
//! and procfs v0.8.0 `nfs/parse.go`: the `method` label is the procfs struct field name,
//! every method of v2, v3 and v4 is exported (0 when the kernel has no line for that
//! version), and v4 lines shorter than 59 procedures are padded with zeros. No NFS client
//! module (no file) means "no data".

use std::path::PathBuf;

use super::util::{label2, read_into};
use super::{Batch, Failure, Outcome, Source};
use crate::model::{Labels, MetricType};

const V2: [&str; 18] = [
    "Null", "GetAttr", "SetAttr", "Root", "Lookup", "ReadLink", "Read", "WrCache", "Write",
    "Create", "Remove", "Rename", "Link", "SymLink", "MkDir", "RmDir", "ReadDir", "FsStat",
];
const V3: [&str; 22] = [
    "Null",
    "GetAttr",
    "SetAttr",
    "Lookup",
    "Access",
    "ReadLink",
    "Read",
    "Write",
    "Create",
    "MkDir",
    "SymLink",
    "MkNod",
    "Remove",
    "RmDir",
    "Rename",
    "Link",
    "ReadDir",
    "ReadDirPlus",
    "FsStat",
    "FsInfo",
    "PathConf",
    "Commit",
];
const V4: [&str; 59] = [
    "Null",
    "Read",
    "Write",
    "Commit",
    "Open",
    "OpenConfirm",
    "OpenNoattr",
    "OpenDowngrade",
    "Close",
    "Setattr",
    "FsInfo",
    "Renew",
    "SetClientID",
    "SetClientIDConfirm",
    "Lock",
    "Lockt",
    "Locku",
    "Access",
    "Getattr",
    "Lookup",
    "LookupRoot",
    "Remove",
    "Rename",
    "Link",
    "Symlink",
    "Create",
    "Pathconf",
    "StatFs",
    "ReadLink",
    "ReadDir",
    "ServerCaps",
    "DelegReturn",
    "GetACL",
    "SetACL",
    "FsLocations",
    "ReleaseLockowner",
    "Secinfo",
    "FsidPresent",
    "ExchangeID",
    "CreateSession",
    "DestroySession",
    "Sequence",
    "GetLeaseTime",
    "ReclaimComplete",
    "LayoutGet",
    "GetDeviceInfo",
    "LayoutCommit",
    "LayoutReturn",
    "SecinfoNoName",
    "TestStateID",
    "FreeStateID",
    "GetDeviceList",
    "BindConnToSession",
    "DestroyClientID",
    "Seek",
    "Allocate",
    "DeAllocate",
    "LayoutStats",
    "Clone",
];

/// The client statistics node_exporter exports.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ClientStats {
    /// udp, tcp, tcp connections.
    pub net: [u64; 3],
    /// rpcs, retransmissions, auth refreshes.
    pub rpc: [u64; 3],
    pub v2: Vec<u64>,
    pub v3: Vec<u64>,
    pub v4: Vec<u64>,
}

/// The per-procedure counts of a `procN <count> <values...>` line, checked like procfs.
fn procedures(values: &[u64], min: usize, pad_to: Option<usize>) -> Result<Vec<u64>, String> {
    let Some((&declared, rest)) = values.split_first() else {
        return Err("empty procedure line".into());
    };
    if rest.len() as u64 != declared {
        return Err(format!(
            "procedure line declares {declared} values, has {}",
            rest.len()
        ));
    }
    let mut v = rest.to_vec();
    if let Some(n) = pad_to {
        if v.len() < n {
            v.resize(n, 0);
        }
    } else if v.len() < min {
        return Err(format!("procedure line has {} values, need {min}", v.len()));
    }
    Ok(v)
}

/// Parses /proc/net/rpc/nfs.
pub(crate) fn parse_client_stats(s: &str) -> Result<ClientStats, String> {
    let mut st = ClientStats {
        v2: vec![0; V2.len()],
        v3: vec![0; V3.len()],
        v4: vec![0; V4.len()],
        ..Default::default()
    };
    for line in s.lines() {
        let mut parts = line.split_ascii_whitespace();
        let Some(kind) = parts.next() else {
            return Err(format!("invalid NFS metric line {line:?}"));
        };
        let values: Vec<u64> = parts
            .map(|p| p.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("error parsing NFS metric line {line:?}"))?;
        if values.is_empty() {
            return Err(format!("invalid NFS metric line {line:?}"));
        }
        match kind {
            "net" if values.len() == 4 => st.net = [values[1], values[2], values[3]],
            "rpc" if values.len() == 3 => st.rpc = [values[0], values[1], values[2]],
            "proc2" => st.v2 = procedures(&values, V2.len(), None)?,
            "proc3" => st.v3 = procedures(&values, V3.len(), None)?,
            "proc4" => st.v4 = procedures(&values, V4.len(), Some(V4.len()))?,
            _ => return Err(format!("unknown or malformed NFS metric line {line:?}")),
        }
    }
    Ok(st)
}

pub(crate) struct Nfs {
    path: PathBuf,
    buf: String,
}

impl Nfs {
    pub(crate) fn new(p: &super::HostPaths) -> Nfs {
        Nfs {
            path: p.proc.join("net/rpc/nfs"),
            buf: String::new(),
        }
    }
}

impl Source for Nfs {
    fn name(&self) -> &'static str {
        "nfs"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        read_into(&self.path, &mut self.buf).map_err(Failure::missing_is_no_data)?;
        let st = parse_client_stats(&self.buf).map_err(Failure::Error)?;
        use MetricType::Counter;
        let f = out.family(
            "node_nfs_packets_total",
            "Total NFSd network packets (sent+received) by protocol type.",
            Counter,
        );
        f.push(Labels::from_pairs([("protocol", "udp")]), st.net[0] as f64);
        f.push(Labels::from_pairs([("protocol", "tcp")]), st.net[1] as f64);
        out.scalar(
            "node_nfs_connections_total",
            "Total number of NFSd TCP connections.",
            Counter,
            st.net[2] as f64,
        );
        out.scalar(
            "node_nfs_rpcs_total",
            "Total number of RPCs performed.",
            Counter,
            st.rpc[0] as f64,
        );
        out.scalar(
            "node_nfs_rpc_retransmissions_total",
            "Number of RPC transmissions performed.",
            Counter,
            st.rpc[1] as f64,
        );
        out.scalar(
            "node_nfs_rpc_authentication_refreshes_total",
            "Number of RPC authentication refreshes performed.",
            Counter,
            st.rpc[2] as f64,
        );
        let f = out.family(
            "node_nfs_requests_total",
            "Number of NFS procedures invoked.",
            Counter,
        );
        for (proto, names, values) in [
            ("2", &V2[..], &st.v2),
            ("3", &V3[..], &st.v3),
            ("4", &V4[..], &st.v4),
        ] {
            for (method, v) in names.iter().zip(values.iter()) {
                f.push(label2("method", method, "proto", proto), *v as f64);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_rpc_statistics_are_parsed_by_version() {
        let s = "net 70 70 69 45\nrpc 1218785755 374636 1218815394\nproc3 22 0 1061909262 48906 4077635 117661341 5 29391916 2570425 2993289 590 0 0 7815 15 1130 0 3983 92385 13332 2 1 23729\nproc4 2 5 6\n";
        let st = parse_client_stats(s).unwrap();
        assert_eq!(st.net, [70, 69, 45]);
        assert_eq!(st.rpc, [1218785755, 374636, 1218815394]);
        assert_eq!(st.v3[1], 1061909262);
        assert_eq!(st.v3[21], 23729);
        assert_eq!(st.v2, vec![0; 18]);
        assert_eq!(st.v4.len(), 59);
        assert_eq!(&st.v4[..3], &[5, 6, 0]);
    }

    #[test]
    fn malformed_nfs_lines_are_errors_not_panics() {
        assert!(parse_client_stats("net 1 2\n").is_err());
        assert!(parse_client_stats("proc3 5 1 2\n").is_err());
        assert!(parse_client_stats("proc2 2 1 2\n").is_err());
        assert!(parse_client_stats("rpc x y z\n").is_err());
        assert!(parse_client_stats("bogus 1\n").is_err());
    }
}
