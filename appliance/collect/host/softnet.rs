//! `softnet` collector: per-CPU packet processing counters from /proc/net/softnet_stat.
//! Mirrors node_exporter 1.5.0 `collector/softnet_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/softnet_linux.go>):
//! the `cpu` label is the line index, and the columns are hexadecimal.

use std::path::PathBuf;

use super::util::{invalid, label1, read_into};
use super::{Batch, Outcome, Source};
use crate::model::MetricType;

/// (processed, dropped, time_squeezed) per line.
pub(crate) fn parse_softnet(s: &str) -> Result<Vec<[u64; 3]>, String> {
    let mut out = Vec::new();
    for line in s.lines() {
        if line.trim().is_empty() {
            continue;
        }
        let mut f = line.split_ascii_whitespace();
        let mut row = [0u64; 3];
        for slot in &mut row {
            let v = f
                .next()
                .ok_or_else(|| format!("short softnet line {line:?}"))?;
            *slot = u64::from_str_radix(v, 16).map_err(|_| format!("bad softnet value {v:?}"))?;
        }
        out.push(row);
    }
    Ok(out)
}

pub(crate) struct Softnet {
    path: PathBuf,
    buf: String,
}

impl Softnet {
    pub(crate) fn new(p: &super::HostPaths) -> Softnet {
        Softnet {
            path: p.proc.join("net/softnet_stat"),
            buf: String::new(),
        }
    }
}

impl Source for Softnet {
    fn name(&self) -> &'static str {
        "softnet"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        read_into(&self.path, &mut self.buf)?;
        let rows = parse_softnet(&self.buf).map_err(invalid)?;
        let labels: Vec<_> = (0..rows.len())
            .map(|i| label1("cpu", &i.to_string()))
            .collect();
        for (col, name, help) in [
            (
                0,
                "node_softnet_processed_total",
                "Number of processed packets",
            ),
            (1, "node_softnet_dropped_total", "Number of dropped packets"),
            (
                2,
                "node_softnet_times_squeezed_total",
                "Number of times processing packets ran out of quota",
            ),
        ] {
            let f = out.family(name, help, MetricType::Counter);
            for (row, l) in rows.iter().zip(&labels) {
                f.push(l.clone(), row[col] as f64);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softnet_columns_are_hexadecimal() {
        let s = "00000014 00000000 00000001 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000 00000000\n00001b28 00000002 00000000 00000000\n";
        assert_eq!(parse_softnet(s).unwrap(), vec![[20, 0, 1], [6952, 2, 0]]);
        assert!(parse_softnet("zz 1 2\n").is_err());
        assert!(parse_softnet("1\n").is_err());
    }
}
