//! `stat` collector: interrupts, context switches, forks, boot time and process counts
//! from /proc/stat. Mirrors node_exporter 1.5.0 `collector/stat_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/stat_linux.go>);
//! the per-vector softirq family is behind a flag that is off by default, so it is not
//! emitted.

use std::path::PathBuf;

use super::util::{invalid, read_into};
use super::{Batch, Outcome, Source};
use crate::model::MetricType;

/// The whole-system fields of /proc/stat that the collector exports.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct SystemStat {
    pub intr: f64,
    pub ctxt: f64,
    pub btime: f64,
    pub processes: f64,
    pub procs_running: f64,
    pub procs_blocked: f64,
}

/// Parses the system-wide lines of /proc/stat. Fails when a required line is missing.
pub(crate) fn parse_stat(s: &str) -> Result<SystemStat, String> {
    let mut st = SystemStat::default();
    let mut seen = 0u8;
    for line in s.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(key), Some(v)) = (f.next(), f.next()) else {
            continue;
        };
        let Ok(v) = v.parse::<u64>() else { continue };
        let v = v as f64;
        let (slot, bit) = match key {
            "intr" => (&mut st.intr, 1),
            "ctxt" => (&mut st.ctxt, 2),
            "btime" => (&mut st.btime, 4),
            "processes" => (&mut st.processes, 8),
            "procs_running" => (&mut st.procs_running, 16),
            "procs_blocked" => (&mut st.procs_blocked, 32),
            _ => continue,
        };
        *slot = v;
        seen |= bit;
    }
    if seen != 63 {
        return Err("missing lines in /proc/stat".into());
    }
    Ok(st)
}

pub(crate) struct Stat {
    path: PathBuf,
    buf: String,
}

impl Stat {
    pub(crate) fn new(p: &super::HostPaths) -> Stat {
        Stat {
            path: p.proc.join("stat"),
            buf: String::new(),
        }
    }
}

impl Source for Stat {
    fn name(&self) -> &'static str {
        "stat"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        read_into(&self.path, &mut self.buf)?;
        let st = parse_stat(&self.buf).map_err(invalid)?;
        use MetricType::{Counter, Gauge};
        out.scalar(
            "node_intr_total",
            "Total number of interrupts serviced.",
            Counter,
            st.intr,
        );
        out.scalar(
            "node_context_switches_total",
            "Total number of context switches.",
            Counter,
            st.ctxt,
        );
        out.scalar(
            "node_forks_total",
            "Total number of forks.",
            Counter,
            st.processes,
        );
        out.scalar(
            "node_boot_time_seconds",
            "Node boot time, in unixtime.",
            Gauge,
            st.btime,
        );
        out.scalar(
            "node_procs_running",
            "Number of processes in runnable state.",
            Gauge,
            st.procs_running,
        );
        out.scalar(
            "node_procs_blocked",
            "Number of processes blocked waiting for I/O to complete.",
            Gauge,
            st.procs_blocked,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_lines_of_proc_stat_are_parsed() {
        let s = "cpu  1 2 3 4\nintr 171085 0 9\nctxt 349738\nbtime 1795324398\nprocesses 6232\nprocs_running 3\nprocs_blocked 0\nsoftirq 1 2 3\n";
        let st = parse_stat(s).unwrap();
        assert_eq!(st.intr, 171085.0);
        assert_eq!(st.ctxt, 349738.0);
        assert_eq!(st.btime, 1795324398.0);
        assert_eq!(st.processes, 6232.0);
        assert_eq!(st.procs_running, 3.0);
        assert_eq!(st.procs_blocked, 0.0);
    }

    #[test]
    fn a_truncated_proc_stat_is_an_error() {
        assert!(parse_stat("intr 1\nctxt x\n").is_err());
        assert!(parse_stat("").is_err());
    }
}
