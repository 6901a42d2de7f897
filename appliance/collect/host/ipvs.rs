//! `ipvs` collector: IPVS totals and per-backend connections/weights from
//! /proc/net/ip_vs_stats and /proc/net/ip_vs, for k3s clusters running kube-proxy in
//! IPVS mode. Mirrors node_exporter 1.5.0 `collector/ipvs_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/ipvs_linux.go>)
//! with its default `--collector.ipvs.backend-labels` (all six), and procfs v0.8.0
//! `ipvs.go`: counters are hex, addresses are `HEXIP:PORT` or `[v6]:PORT`, and backends
//! with the same label values are summed. No IPVS module means "no data".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use super::util::read_into;
use super::{Batch, Failure, Outcome, Source};
use crate::model::{Labels, MetricType};

/// `ip_vs_stats`' third line: conns, in packets, out packets, in bytes, out bytes.
pub(crate) fn parse_ipvs_stats(s: &str) -> Result<[u64; 5], String> {
    let lines: Vec<&str> = s.splitn(4, '\n').collect();
    if lines.len() != 4 {
        return Err("ip_vs_stats corrupt: too short".into());
    }
    let fields: Vec<&str> = lines[2].split_ascii_whitespace().collect();
    if fields.len() != 5 {
        return Err("ip_vs_stats corrupt: unexpected number of fields".into());
    }
    let mut out = [0u64; 5];
    for (slot, f) in out.iter_mut().zip(fields) {
        *slot = u64::from_str_radix(f, 16).map_err(|_| format!("bad ip_vs_stats value {f:?}"))?;
    }
    Ok(out)
}

/// Go's `net.IP.String()`: IPv4-mapped IPv6 addresses print as IPv4.
fn ip_string(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6.to_string(),
        },
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// `0A2A0001:0050` or `[2001:0db8:...:0001]:0050`.
fn parse_ip_port(s: &str) -> Result<(IpAddr, u16), String> {
    let ip = match s.len() {
        13 => {
            let raw = u32::from_str_radix(&s[..8], 16).map_err(|_| format!("bad IP {s:?}"))?;
            IpAddr::V4(Ipv4Addr::from(raw))
        }
        46 if s.is_char_boundary(1) && s.is_char_boundary(40) => IpAddr::V6(
            s[1..40]
                .parse::<Ipv6Addr>()
                .map_err(|_| format!("invalid IPv6 address: {}", &s[1..40]))?,
        ),
        _ => return Err(format!("unexpected IP:Port: {s}")),
    };
    let port_str = s
        .get(s.len() - 4..)
        .ok_or_else(|| format!("bad port in {s:?}"))?;
    let port = u16::from_str_radix(port_str, 16).map_err(|_| format!("bad port in {s:?}"))?;
    Ok((ip, port))
}

/// One backend: label values (local_address, local_port, remote_address, remote_port,
/// proto, local_mark) and (weight, active, inactive).
type Backend = ([String; 6], [u64; 3]);

/// Parses /proc/net/ip_vs into backends.
pub(crate) fn parse_ipvs_backends(s: &str) -> Result<Vec<Backend>, String> {
    let mut out = Vec::new();
    let mut proto = String::new();
    let mut mark = String::new();
    let mut local: Option<(IpAddr, u16)> = None;
    for line in s.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.is_empty() {
            continue;
        }
        if f[0] == "IP" || f[0] == "Prot" || f.get(1) == Some(&"RemoteAddress:Port") {
            continue;
        }
        match f[0] {
            "TCP" | "UDP" if f.len() >= 2 => {
                proto = f[0].to_string();
                mark.clear();
                local = Some(parse_ip_port(f[1])?);
            }
            "FWM" if f.len() >= 2 => {
                proto = f[0].to_string();
                mark = f[1].to_string();
                local = None;
            }
            "->" if f.len() >= 6 => {
                let (rip, rport) = parse_ip_port(f[1])?;
                let num = |i: usize| -> Result<u64, String> {
                    f[i].parse().map_err(|_| format!("bad number in {line:?}"))
                };
                let (lip, lport) = match local {
                    Some((ip, port)) => (ip_string(ip), port),
                    None => (String::new(), 0),
                };
                out.push((
                    [
                        lip,
                        lport.to_string(),
                        ip_string(rip),
                        rport.to_string(),
                        proto.clone(),
                        mark.clone(),
                    ],
                    [num(3)?, num(4)?, num(5)?],
                ));
            }
            _ => {}
        }
    }
    Ok(out)
}

pub(crate) struct Ipvs {
    stats: PathBuf,
    backends: PathBuf,
    buf: String,
}

impl Ipvs {
    pub(crate) fn new(p: &super::HostPaths) -> Ipvs {
        Ipvs {
            stats: p.proc.join("net/ip_vs_stats"),
            backends: p.proc.join("net/ip_vs"),
            buf: String::new(),
        }
    }
}

const LABELS: [&str; 6] = [
    "local_address",
    "local_port",
    "remote_address",
    "remote_port",
    "proto",
    "local_mark",
];

impl Source for Ipvs {
    fn name(&self) -> &'static str {
        "ipvs"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        read_into(&self.stats, &mut self.buf).map_err(Failure::missing_is_no_data)?;
        let totals = parse_ipvs_stats(&self.buf).map_err(Failure::Error)?;
        for ((name, help), v) in [
            (
                "node_ipvs_connections_total",
                "The total number of connections made.",
            ),
            (
                "node_ipvs_incoming_packets_total",
                "The total number of incoming packets.",
            ),
            (
                "node_ipvs_outgoing_packets_total",
                "The total number of outgoing packets.",
            ),
            (
                "node_ipvs_incoming_bytes_total",
                "The total amount of incoming data.",
            ),
            (
                "node_ipvs_outgoing_bytes_total",
                "The total amount of outgoing data.",
            ),
        ]
        .into_iter()
        .zip(totals)
        {
            out.scalar(name, help, MetricType::Counter, v as f64);
        }
        read_into(&self.backends, &mut self.buf)?;
        let backends = parse_ipvs_backends(&self.buf).map_err(Failure::Error)?;
        let mut sums: Vec<Backend> = Vec::new();
        for (key, v) in backends {
            match sums.iter_mut().find(|(k, _)| *k == key) {
                Some((_, s)) => {
                    for (a, b) in s.iter_mut().zip(v) {
                        *a = a.saturating_add(b);
                    }
                }
                None => sums.push((key, v)),
            }
        }
        let labels: Vec<Labels> = sums
            .iter()
            .map(|(k, _)| Labels::from_pairs(LABELS.iter().zip(k.iter())))
            .collect();
        for (name, help, idx) in [
            (
                "node_ipvs_backend_connections_active",
                "The current active connections by local and remote address.",
                1,
            ),
            (
                "node_ipvs_backend_connections_inactive",
                "The current inactive connections by local and remote address.",
                2,
            ),
            (
                "node_ipvs_backend_weight",
                "The current backend weight by local and remote address.",
                0,
            ),
        ] {
            let f = out.family(name, help, MetricType::Gauge);
            for (l, (_, v)) in labels.iter().zip(&sums) {
                f.push(l.clone(), v[idx] as f64);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipvs_totals_are_hexadecimal() {
        let s = "   Total Incoming Outgoing         Incoming         Outgoing\n   Conns  Packets  Packets            Bytes            Bytes\n 23FB09     1 2 3 4\n\n Conns/s\n";
        assert_eq!(parse_ipvs_stats(s).unwrap(), [0x23FB09, 1, 2, 3, 4]);
        assert!(parse_ipvs_stats("x\ny\n").is_err());
    }

    #[test]
    fn backends_carry_their_virtual_service_and_sum_by_labels() {
        let s = "IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  C0A80016:0CEA wlc
  -> C0A85216:0CEA      Tunnel  100    248        2
  -> C0A85216:0CEA      Tunnel  100    1          1
TCP  [2620:0000:0000:0000:0000:0000:0000:0001]:0050 sh
  -> [2620:0000:0000:0000:0000:0000:0000:0002]:0050      Route   1      0          0
FWM  10001000 wlc
  -> C0A8321A:0CEA      Route   0      0          1
";
        let b = parse_ipvs_backends(s).unwrap();
        assert_eq!(b.len(), 4);
        assert_eq!(b[0].0[0], "192.168.0.22");
        assert_eq!(b[0].0[1], "3306");
        assert_eq!(b[0].1, [100, 248, 2]);
        assert_eq!(b[2].0[0], "2620::1");
        assert_eq!(b[3].0[0], "");
        assert_eq!(b[3].0[5], "10001000");
        assert!(parse_ipvs_backends("TCP zz\n").is_err());
    }
}
