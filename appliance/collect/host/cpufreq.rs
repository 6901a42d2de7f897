//! `cpufreq` collector: current, minimum and maximum CPU frequencies per CPU from
//! /sys/devices/system/cpu/cpuN/cpufreq. On a Pi this is where under-voltage and thermal
//! throttling become visible. Mirrors node_exporter 1.5.0 `collector/cpufreq_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/cpufreq_linux.go>)
//! and procfs v0.8.0 `sysfs/system_cpu.go`: the kernel reports kHz; a file that is
//! missing or unreadable (cpuinfo_cur_freq is root-only) just leaves its family out.

use std::path::PathBuf;

use super::util::{label1, numbered_entries, read_u64};
use super::{Batch, Outcome, Source};
use crate::model::MetricType;

const FILES: [(&str, &str, &str); 6] = [
    (
        "cpuinfo_cur_freq",
        "node_cpu_frequency_hertz",
        "Current cpu thread frequency in hertz.",
    ),
    (
        "cpuinfo_min_freq",
        "node_cpu_frequency_min_hertz",
        "Minimum cpu thread frequency in hertz.",
    ),
    (
        "cpuinfo_max_freq",
        "node_cpu_frequency_max_hertz",
        "Maximum cpu thread frequency in hertz.",
    ),
    (
        "scaling_cur_freq",
        "node_cpu_scaling_frequency_hertz",
        "Current scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_min_freq",
        "node_cpu_scaling_frequency_min_hertz",
        "Minimum scaled CPU thread frequency in hertz.",
    ),
    (
        "scaling_max_freq",
        "node_cpu_scaling_frequency_max_hertz",
        "Maximum scaled CPU thread frequency in hertz.",
    ),
];

pub(crate) struct CpuFreq {
    dir: PathBuf,
    buf: String,
}

impl CpuFreq {
    pub(crate) fn new(p: &super::HostPaths) -> CpuFreq {
        CpuFreq {
            dir: p.sys.join("devices/system/cpu"),
            buf: String::new(),
        }
    }
}

impl Source for CpuFreq {
    fn name(&self) -> &'static str {
        "cpufreq"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        // procfs globs `cpu[0-9]*`: a missing directory is just "no CPUs".
        let cpus = numbered_entries(&self.dir, "cpu").unwrap_or_default();
        // Per CPU with a cpufreq directory: (cpu id, six values in Hz).
        let mut rows: Vec<(String, [Option<f64>; 6])> = Vec::new();
        for (n, name) in &cpus {
            let base = self.dir.join(name).join("cpufreq");
            if !base.is_dir() {
                continue;
            }
            let mut vals = [None; 6];
            for (slot, (file, _, _)) in vals.iter_mut().zip(FILES) {
                *slot = read_u64(&base.join(file), &mut self.buf)
                    .ok()
                    .map(|khz| khz as f64 * 1000.0);
            }
            rows.push((n.to_string(), vals));
        }
        for (i, (_, name, help)) in FILES.iter().enumerate() {
            if !rows.iter().any(|r| r.1[i].is_some()) {
                continue;
            }
            let f = out.family(*name, *help, MetricType::Gauge);
            for (cpu, vals) in &rows {
                if let Some(v) = vals[i] {
                    f.push(label1("cpu", cpu), v);
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
    fn frequencies_are_read_in_khz_and_exported_in_hz() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("devices/system/cpu/cpu0/cpufreq");
        std::fs::create_dir_all(&f).unwrap();
        std::fs::create_dir_all(dir.path().join("devices/system/cpu/cpu1")).unwrap();
        std::fs::write(f.join("scaling_cur_freq"), "1500000\n").unwrap();
        std::fs::write(f.join("cpuinfo_max_freq"), "1800000\n").unwrap();
        let mut c = CpuFreq::new(&super::super::HostPaths {
            sys: dir.path().to_path_buf(),
            ..Default::default()
        });
        let mut b = Batch::default();
        c.update(&mut b).unwrap();
        let cur = &b.get("node_cpu_scaling_frequency_hertz").unwrap().samples;
        assert_eq!(cur.len(), 1);
        assert_eq!(cur[0].1, 1.5e9);
        assert_eq!(cur[0].0.get("cpu"), Some("0"));
        assert!(b.get("node_cpu_frequency_hertz").is_none());
        assert_eq!(b.families.len(), 2);
    }
}
