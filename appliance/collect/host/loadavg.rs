//! `loadavg` collector: `node_load1`, `node_load5`, `node_load15` from /proc/loadavg.
//! Mirrors node_exporter 1.5.0 `collector/loadavg_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/loadavg_linux.go>).

use std::path::PathBuf;

use super::util::{invalid, read_into};
use super::{Batch, Outcome, Source};
use crate::model::MetricType;

/// The three load averages of /proc/loadavg.
pub(crate) fn parse_loadavg(s: &str) -> Option<[f64; 3]> {
    let mut f = s.split_ascii_whitespace();
    let mut out = [0.0; 3];
    for slot in &mut out {
        *slot = f.next()?.parse().ok()?;
    }
    Some(out)
}

pub(crate) struct LoadAvg {
    path: PathBuf,
    buf: String,
}

impl LoadAvg {
    pub(crate) fn new(p: &super::HostPaths) -> LoadAvg {
        LoadAvg {
            path: p.proc.join("loadavg"),
            buf: String::new(),
        }
    }
}

impl Source for LoadAvg {
    fn name(&self) -> &'static str {
        "loadavg"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        read_into(&self.path, &mut self.buf)?;
        let [l1, l5, l15] = parse_loadavg(&self.buf)
            .ok_or_else(|| invalid(format!("unexpected /proc/loadavg: {:?}", self.buf)))?;
        out.scalar("node_load1", "1m load average.", MetricType::Gauge, l1);
        out.scalar("node_load5", "5m load average.", MetricType::Gauge, l5);
        out.scalar("node_load15", "15m load average.", MetricType::Gauge, l15);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_load_averages_are_read() {
        assert_eq!(
            parse_loadavg("0.04 0.18 0.09 1/120 4242\n"),
            Some([0.04, 0.18, 0.09])
        );
    }

    #[test]
    fn a_short_loadavg_is_rejected() {
        assert_eq!(parse_loadavg("0.04 x"), None);
        assert_eq!(parse_loadavg(""), None);
    }
}
