//! `pressure` collector: pressure stall information totals from /proc/pressure/{cpu,io,memory}.
//! Mirrors node_exporter 1.5.0 `collector/pressure_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/pressure_linux.go>):
//! `some` totals become `*_waiting_seconds_total`, `full` totals (io, memory only)
//! `*_stalled_seconds_total`. Kernels without PSI (or with `psi=0`) give "no data".

use std::path::PathBuf;

use super::util::read_into;
use super::{Batch, Failure, Outcome, Source};
use crate::model::MetricType;

/// The `total=` microseconds of the `some` and `full` lines.
pub(crate) fn parse_psi(s: &str) -> (Option<u64>, Option<u64>) {
    let (mut some, mut full) = (None, None);
    for line in s.lines() {
        let mut f = line.split_ascii_whitespace();
        let slot = match f.next() {
            Some("some") => &mut some,
            Some("full") => &mut full,
            _ => continue,
        };
        for kv in f {
            if let Some(v) = kv.strip_prefix("total=") {
                *slot = v.parse().ok();
            }
        }
    }
    (some, full)
}

pub(crate) struct Pressure {
    dir: PathBuf,
    buf: String,
}

impl Pressure {
    pub(crate) fn new(p: &super::HostPaths) -> Pressure {
        Pressure {
            dir: p.proc.join("pressure"),
            buf: String::new(),
        }
    }
}

impl Source for Pressure {
    fn name(&self) -> &'static str {
        "pressure"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        for res in ["cpu", "io", "memory"] {
            match read_into(&self.dir.join(res), &mut self.buf) {
                Ok(()) => {}
                Err(e)
                    if super::util::is_missing(&e)
                        || e.raw_os_error() == Some(libc::EOPNOTSUPP) =>
                {
                    return Err(Failure::NoData(e.to_string()));
                }
                Err(e) => return Err(e.into()),
            }
            let (some, full) = parse_psi(&self.buf);
            // Two divisions, as pressure_linux.go does them, so the float is the same bits
            // (`14036781 / 1e6` and `14036781 / 1000 / 1000` differ in the last digit).
            let secs = |v: Option<u64>| v.unwrap_or(0) as f64 / 1000.0 / 1000.0;
            match res {
                "cpu" => out.scalar(
                    "node_pressure_cpu_waiting_seconds_total",
                    "Total time in seconds that processes have waited for CPU time",
                    MetricType::Counter,
                    secs(some),
                ),
                "io" => {
                    out.scalar(
                        "node_pressure_io_waiting_seconds_total",
                        "Total time in seconds that processes have waited due to IO congestion",
                        MetricType::Counter,
                        secs(some),
                    );
                    out.scalar(
                        "node_pressure_io_stalled_seconds_total",
                        "Total time in seconds no process could make progress due to IO congestion",
                        MetricType::Counter,
                        secs(full),
                    );
                }
                _ => {
                    out.scalar(
                        "node_pressure_memory_waiting_seconds_total",
                        "Total time in seconds that processes have waited for memory",
                        MetricType::Counter,
                        secs(some),
                    );
                    out.scalar(
                        "node_pressure_memory_stalled_seconds_total",
                        "Total time in seconds no process could make progress due to memory congestion",
                        MetricType::Counter,
                        secs(full),
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn some_and_full_totals_are_read() {
        let s = "some avg10=0.00 avg60=0.00 avg300=0.00 total=2668826\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=2465455\n";
        assert_eq!(parse_psi(s), (Some(2668826), Some(2465455)));
        assert_eq!(parse_psi("some total=x\n"), (None, None));
    }
}
