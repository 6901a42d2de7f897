//! `netstat` collector: selected protocol counters from /proc/net/netstat, /proc/net/snmp
//! and /proc/net/snmp6 as untyped `node_netstat_<Protocol>_<Field>`.
//! Mirrors node_exporter 1.5.0 `collector/netstat_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/netstat_linux.go>)
//! with its default `--collector.netstat.fields`. A missing snmp6 (IPv6 disabled) is not
//! an error.

use std::path::PathBuf;

use regex::Regex;

use super::util::{is_missing, read_into};
use super::{Batch, Failure, Outcome, Source};
use crate::model::{Labels, MetricType};

/// node_exporter's default `--collector.netstat.fields`.
pub(crate) const DEFAULT_FIELDS: &str = "^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$";

/// Parses the header/value line pairs of /proc/net/netstat and /proc/net/snmp into
/// `(Protocol_Field, value)`.
pub(crate) fn parse_pairs(s: &str, out: &mut Vec<(String, f64)>) -> Result<(), String> {
    let mut lines = s.lines();
    while let Some(names) = lines.next() {
        if names.trim().is_empty() {
            continue;
        }
        let Some(values) = lines.next() else {
            return Err(format!("no value line after {names:?}"));
        };
        let mut n = names.split(' ');
        let mut v = values.split(' ');
        let (Some(proto), Some(proto_v)) = (n.next(), v.next()) else {
            continue;
        };
        let proto = proto.strip_suffix(':').unwrap_or(proto);
        if proto_v.strip_suffix(':').unwrap_or(proto_v) != proto {
            return Err(format!("mismatched protocol lines for {proto}"));
        }
        let names: Vec<&str> = n.collect();
        let values: Vec<&str> = v.collect();
        if names.len() != values.len() {
            return Err(format!("field count mismatch for {proto}"));
        }
        for (name, value) in names.into_iter().zip(values) {
            let v: f64 = value
                .parse()
                .map_err(|_| format!("invalid value {value:?} in netstats"))?;
            out.push((format!("{proto}_{name}"), v));
        }
    }
    Ok(())
}

/// Parses /proc/net/snmp6 (`Ip6InReceives 123`): the protocol ends at the first `6`.
pub(crate) fn parse_snmp6(s: &str, out: &mut Vec<(String, f64)>) {
    for line in s.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(key), Some(value)) = (f.next(), f.next()) else {
            continue;
        };
        let Some(six) = key.find('6') else { continue };
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        out.push((format!("{}_{}", &key[..=six], &key[six + 1..]), v));
    }
}

pub(crate) struct NetStat {
    netstat: PathBuf,
    snmp: PathBuf,
    snmp6: PathBuf,
    buf: String,
    fields: Option<Regex>,
    stats: Vec<(String, f64)>,
}

impl NetStat {
    pub(crate) fn new(p: &super::HostPaths) -> NetStat {
        NetStat {
            netstat: p.proc.join("net/netstat"),
            snmp: p.proc.join("net/snmp"),
            snmp6: p.proc.join("net/snmp6"),
            buf: String::new(),
            fields: Regex::new(DEFAULT_FIELDS).ok(),
            stats: Vec::new(),
        }
    }
}

impl Source for NetStat {
    fn name(&self) -> &'static str {
        "netstat"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        let mut stats = std::mem::take(&mut self.stats);
        stats.clear();
        read_into(&self.netstat, &mut self.buf)?;
        parse_pairs(&self.buf, &mut stats).map_err(Failure::Error)?;
        read_into(&self.snmp, &mut self.buf)?;
        parse_pairs(&self.buf, &mut stats).map_err(Failure::Error)?;
        match read_into(&self.snmp6, &mut self.buf) {
            Ok(()) => parse_snmp6(&self.buf, &mut stats),
            Err(e) if is_missing(&e) => {}
            Err(e) => return Err(e.into()),
        }
        let start = out.families.len();
        if let Some(fields) = &self.fields {
            for (key, v) in &stats {
                if !fields.is_match(key) {
                    continue;
                }
                let name = format!("node_netstat_{key}");
                let help = format!("Statistic {}.", key.replacen('_', "", 1));
                let f = out.family_since(start, &name, &help, MetricType::Unknown);
                f.samples.clear();
                f.push(Labels::empty(), *v);
            }
        }
        self.stats = stats;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNMP: &str = "Ip: Forwarding DefaultTTL InReceives
Ip: 1 64 7000
Tcp: RtoAlgorithm ActiveOpens CurrEstab InErrs
Tcp: 1 12 3 0
Udp: InDatagrams NoPorts InErrors
Udp: 5 1 0
";

    #[test]
    fn header_and_value_lines_pair_up_into_protocol_fields() {
        let mut out = Vec::new();
        parse_pairs(SNMP, &mut out).unwrap();
        assert!(out.contains(&("Ip_Forwarding".to_string(), 1.0)));
        assert!(out.contains(&("Tcp_CurrEstab".to_string(), 3.0)));
        assert!(out.contains(&("Udp_InErrors".to_string(), 0.0)));
    }

    #[test]
    fn mismatched_line_pairs_are_errors_not_panics() {
        let mut out = Vec::new();
        assert!(parse_pairs("Ip: A B\nIp: 1\n", &mut out).is_err());
        assert!(parse_pairs("Ip: A B\n", &mut out).is_err());
    }

    #[test]
    fn snmp6_names_split_after_the_six() {
        let mut out = Vec::new();
        parse_snmp6(
            "Ip6InOctets 100\nUdpLite6InErrors 0\nIcmp6OutMsgs 4\nbad\n",
            &mut out,
        );
        assert_eq!(
            out,
            vec![
                ("Ip6_InOctets".to_string(), 100.0),
                ("UdpLite6_InErrors".to_string(), 0.0),
                ("Icmp6_OutMsgs".to_string(), 4.0)
            ]
        );
    }

    #[test]
    fn the_default_field_filter_matches_node_exporter() {
        let r = Regex::new(DEFAULT_FIELDS).unwrap();
        for (k, want) in [
            ("Tcp_CurrEstab", true),
            ("TcpExt_ListenDrops", true),
            ("UdpLite_InErrors", true),
            ("Ip_DefaultTTL", false),
            ("IpExt_InOctets", true),
            ("Tcp_RtoAlgorithm", false),
        ] {
            assert_eq!(r.is_match(k), want, "{k}");
        }
    }
}
