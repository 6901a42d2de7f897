//! `meminfo` collector: one `node_memory_<Field>[_bytes]` gauge per line of
//! /proc/meminfo. Mirrors node_exporter 1.5.0 `collector/meminfo_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/meminfo_linux.go>):
//! `Active(anon)` becomes `Active_anon`, values with a `kB` unit are multiplied by 1024
//! and get a `_bytes` suffix, unitless ones (`HugePages_Total`) keep their name.

use std::path::PathBuf;

use super::util::{invalid, read_into};
use super::{Batch, Outcome, Source};
use crate::model::MetricType;

/// Parses /proc/meminfo into `(metric suffix, value)` pairs, in file order.
pub(crate) fn parse_meminfo(s: &str, out: &mut Vec<(String, f64)>) -> Result<(), String> {
    out.clear();
    for line in s.lines() {
        let mut parts = line.split_ascii_whitespace();
        let Some(key) = parts.next() else { continue };
        let value = parts
            .next()
            .ok_or_else(|| format!("invalid line in meminfo: {line:?}"))?;
        let unit = parts.next();
        if parts.next().is_some() {
            return Err(format!("invalid line in meminfo: {line:?}"));
        }
        let mut v: f64 = value
            .parse()
            .map_err(|_| format!("invalid value in meminfo: {line:?}"))?;
        let key = key.strip_suffix(':').unwrap_or(key);
        // reParens `\((.*)\)` → `_${1}`.
        let mut name = match (key.find('('), key.rfind(')')) {
            (Some(open), Some(close)) if open < close => {
                format!(
                    "{}_{}{}",
                    &key[..open],
                    &key[open + 1..close],
                    &key[close + 1..]
                )
            }
            _ => key.to_string(),
        };
        if unit.is_some() {
            v *= 1024.0;
            name.push_str("_bytes");
        }
        out.push((name, v));
    }
    Ok(())
}

pub(crate) struct MemInfo {
    path: PathBuf,
    buf: String,
    fields: Vec<(String, f64)>,
}

impl MemInfo {
    pub(crate) fn new(p: &super::HostPaths) -> MemInfo {
        MemInfo {
            path: p.proc.join("meminfo"),
            buf: String::new(),
            fields: Vec::new(),
        }
    }
}

impl Source for MemInfo {
    fn name(&self) -> &'static str {
        "meminfo"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        read_into(&self.path, &mut self.buf)?;
        parse_meminfo(&self.buf, &mut self.fields).map_err(invalid)?;
        let start = out.families.len();
        for (key, v) in &self.fields {
            let kind = if key.ends_with("_total") {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            let name = format!("node_memory_{key}");
            let help = format!("Memory information field {key}.");
            // A name seen twice would be a duplicate series; the later line wins.
            let f = out.family_since(start, &name, &help, kind);
            f.samples.clear();
            f.push(crate::model::Labels::empty(), *v);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_units_and_parentheses_become_node_exporter_names() {
        let s = "MemTotal:       24684544 kB\nActive(anon):       1584 kB\nHugePages_Total:       0\nHugepagesize:       2048 kB\n";
        let mut out = Vec::new();
        parse_meminfo(s, &mut out).unwrap();
        assert_eq!(
            out,
            vec![
                ("MemTotal_bytes".to_string(), 24684544.0 * 1024.0),
                ("Active_anon_bytes".to_string(), 1584.0 * 1024.0),
                ("HugePages_Total".to_string(), 0.0),
                ("Hugepagesize_bytes".to_string(), 2048.0 * 1024.0),
            ]
        );
    }

    #[test]
    fn a_line_without_a_value_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        assert!(parse_meminfo("MemTotal:\n", &mut out).is_err());
        assert!(parse_meminfo("MemTotal: x kB\n", &mut out).is_err());
        assert!(parse_meminfo("\n\n", &mut out).is_ok());
    }
}
