//! `schedstat` collector: per-CPU scheduler run and wait time from /proc/schedstat.
//! Mirrors node_exporter 1.5.0 `collector/schedstat_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/schedstat_linux.go>)
//! and procfs v0.8.0 `schedstat.go`: fields 7, 8 and 9 of each `cpuN` line. Kernels
//! built without CONFIG_SCHEDSTATS give "no data".

use std::path::PathBuf;

use super::util::{label1, read_into};
use super::{Batch, Failure, Outcome, Source};
use crate::model::MetricType;

/// `(cpu, running ns, waiting ns, timeslices)` per `cpuN` line.
pub(crate) fn parse_schedstat(s: &str) -> Vec<(String, u64, u64, u64)> {
    let mut out = Vec::new();
    for line in s.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some(cpu) = f.first().and_then(|h| h.strip_prefix("cpu")) else {
            continue;
        };
        if f.len() < 10 {
            continue;
        }
        let (Ok(run), Ok(wait), Ok(slices)) = (f[7].parse(), f[8].parse(), f[9].parse()) else {
            continue;
        };
        out.push((cpu.to_string(), run, wait, slices));
    }
    out
}

pub(crate) struct SchedStat {
    path: PathBuf,
    buf: String,
}

impl SchedStat {
    pub(crate) fn new(p: &super::HostPaths) -> SchedStat {
        SchedStat {
            path: p.proc.join("schedstat"),
            buf: String::new(),
        }
    }
}

impl Source for SchedStat {
    fn name(&self) -> &'static str {
        "schedstat"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        read_into(&self.path, &mut self.buf).map_err(Failure::missing_is_no_data)?;
        let rows = parse_schedstat(&self.buf);
        let labels: Vec<_> = rows.iter().map(|r| label1("cpu", &r.0)).collect();
        let f = out.family(
            "node_schedstat_running_seconds_total",
            "Number of seconds CPU spent running a process.",
            MetricType::Counter,
        );
        for (r, l) in rows.iter().zip(&labels) {
            f.push(l.clone(), r.1 as f64 / 1e9);
        }
        let f = out.family(
            "node_schedstat_waiting_seconds_total",
            "Number of seconds spent by processing waiting for this CPU.",
            MetricType::Counter,
        );
        for (r, l) in rows.iter().zip(&labels) {
            f.push(l.clone(), r.2 as f64 / 1e9);
        }
        let f = out.family(
            "node_schedstat_timeslices_total",
            "Number of timeslices executed by CPU.",
            MetricType::Counter,
        );
        for (r, l) in rows.iter().zip(&labels) {
            f.push(l.clone(), r.3 as f64);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lines_give_running_waiting_and_timeslices() {
        let s = "version 15\ntimestamp 4295\ncpu0 0 0 0 0 0 0 2045936778163039 343796328169361 4767485306\ndomain0 00000000,00000003 1 2 3\ncpu1 0 0 0\n";
        assert_eq!(
            parse_schedstat(s),
            vec![(
                "0".to_string(),
                2045936778163039,
                343796328169361,
                4767485306
            )]
        );
    }
}
