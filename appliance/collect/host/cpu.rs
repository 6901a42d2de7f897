//! `cpu` collector: `node_cpu_seconds_total{cpu,mode}` and
//! `node_cpu_guest_seconds_total{cpu,mode}` from the `cpuN` lines of /proc/stat, plus
//! `node_cpu_isolated{cpu}` when /sys/devices/system/cpu/isolated lists CPUs, and the
//! x86 thermal-throttle counters `node_cpu_{core,package}_throttles_total` where the
//! kernel has them (never on a Pi).
//! Mirrors node_exporter 1.5.0 `collector/cpu_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/cpu_linux.go>),
//! including its guard against counters that jump backwards (CPU hotplug, kernel
//! accounting glitches): a counter never decreases, and if idle drops by 3 s or more the
//! CPU's history is reset.

use std::path::PathBuf;

use super::util::{label1, label2, numbered_entries, read_into, read_trimmed, read_u64};
use super::{Batch, Outcome, Source};
use crate::model::{Labels, MetricType};

/// procfs (prometheus/procfs `stat.go`) divides ticks by a fixed USER_HZ of 100; the
/// kernel exports USER_HZ=100 on every architecture Picket targets.
const USER_HZ: f64 = 100.0;
/// Upper bound on CPU numbers taken from /proc/stat (the kernel's NR_CPUS maximum is 8192).
const MAX_CPUS: usize = 1 << 16;
/// `jumpBackSeconds` in cpu_linux.go.
const JUMP_BACK_SECONDS: f64 = 3.0;
const MODES: [&str; 8] = [
    "user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal",
];

/// One CPU's counters, in the order of /proc/stat: user nice system idle iowait irq
/// softirq steal guest guest_nice.
pub(crate) type CpuTimes = [f64; 10];

pub(crate) struct Cpu {
    stat: PathBuf,
    isolated_path: PathBuf,
    cpu_dir: PathBuf,
    buf: String,
    /// Per CPU number: the last exported counters.
    last: Vec<Option<CpuTimes>>,
    /// Per CPU number: label sets for the 8 modes and the 2 guest modes.
    labels: Vec<[Labels; 10]>,
    parsed: Vec<(usize, CpuTimes)>,
}

impl Cpu {
    pub(crate) fn new(p: &super::HostPaths) -> Cpu {
        Cpu {
            stat: p.proc.join("stat"),
            isolated_path: p.sys.join("devices/system/cpu/isolated"),
            cpu_dir: p.sys.join("devices/system/cpu"),
            buf: String::new(),
            last: Vec::new(),
            labels: Vec::new(),
            parsed: Vec::new(),
        }
    }

    /// cpu_linux.go `updateThermalThrottle`: per package the first CPU's
    /// package_throttle_count, per (package, core) the first CPU's core_throttle_count.
    fn thermal_throttle(&mut self, out: &mut Batch) {
        let mut packages: Vec<(u64, u64)> = Vec::new();
        let mut cores: Vec<((u64, u64), Option<u64>)> = Vec::new();
        // Like Go's filepath.Glob, a missing directory is just "no CPUs".
        for (_, name) in numbered_entries(&self.cpu_dir, "cpu").unwrap_or_default() {
            let base = self.cpu_dir.join(name);
            let Ok(package) = read_u64(&base.join("topology/physical_package_id"), &mut self.buf)
            else {
                continue;
            };
            let Ok(core) = read_u64(&base.join("topology/core_id"), &mut self.buf) else {
                continue;
            };
            if !cores.iter().any(|(k, _)| *k == (package, core)) {
                let v = read_u64(
                    &base.join("thermal_throttle/core_throttle_count"),
                    &mut self.buf,
                )
                .ok();
                cores.push(((package, core), v));
            }
            if !packages.iter().any(|(p, _)| *p == package)
                && let Ok(v) = read_u64(
                    &base.join("thermal_throttle/package_throttle_count"),
                    &mut self.buf,
                )
            {
                packages.push((package, v));
            }
        }
        let f = out.family(
            "node_cpu_package_throttles_total",
            "Number of times this CPU package has been throttled.",
            MetricType::Counter,
        );
        for (p, v) in packages {
            f.push(label1("package", &p.to_string()), v as f64);
        }
        let f = out.family(
            "node_cpu_core_throttles_total",
            "Number of times this CPU core has been throttled.",
            MetricType::Counter,
        );
        for ((p, c), v) in cores {
            if let Some(v) = v {
                f.push(
                    label2("core", &c.to_string(), "package", &p.to_string()),
                    v as f64,
                );
            }
        }
    }

    fn labels_for(&mut self, cpu: usize) -> &[Labels; 10] {
        while self.labels.len() <= cpu {
            let id = self.labels.len().to_string();
            let l = |mode: &str| label2("cpu", &id, "mode", mode);
            self.labels.push([
                l("user"),
                l("nice"),
                l("system"),
                l("idle"),
                l("iowait"),
                l("irq"),
                l("softirq"),
                l("steal"),
                l("user"),
                l("nice"),
            ]);
        }
        &self.labels[cpu]
    }
}

/// Parses the per-CPU lines of /proc/stat into `(cpu number, counters in seconds)`.
/// Missing trailing columns (old kernels) read as 0; lines that do not parse are skipped.
pub(crate) fn parse_cpu_lines(stat: &str, out: &mut Vec<(usize, CpuTimes)>) {
    out.clear();
    for line in stat.lines() {
        let mut fields = line.split_ascii_whitespace();
        let Some(head) = fields.next() else { continue };
        let Some(num) = head.strip_prefix("cpu") else {
            continue;
        };
        let Ok(num) = num.parse::<usize>() else {
            continue; // the aggregate "cpu" line
        };
        // Linux caps NR_CPUS far below this; a bigger number is garbage, and would make
        // the dense per-CPU tables below allocate without bound.
        if num >= MAX_CPUS {
            continue;
        }
        let mut times = [0.0; 10];
        let mut ok = true;
        for (slot, field) in times.iter_mut().zip(fields) {
            match field.parse::<u64>() {
                Ok(v) => *slot = v as f64 / USER_HZ,
                Err(_) => ok = false,
            }
        }
        if ok {
            out.push((num, times));
        }
    }
}

/// Applies cpu_linux.go's `updateCPUStats` to one CPU: returns the counters to export.
pub(crate) fn monotonic(last: Option<CpuTimes>, new: CpuTimes) -> CpuTimes {
    let mut cur = match last {
        Some(l) if l[3] - new[3] >= JUMP_BACK_SECONDS => [0.0; 10],
        Some(l) => l,
        None => [0.0; 10],
    };
    for (c, n) in cur.iter_mut().zip(new) {
        if n >= *c {
            *c = n;
        }
    }
    cur
}

/// Parses the kernel's CPU list format (`0-2,5`).
pub(crate) fn parse_cpu_list(s: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>())
                    && b >= a
                    && b - a < 65536
                {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(a) = part.trim().parse() {
                    out.push(a);
                }
            }
        }
    }
    out
}

impl Source for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        read_into(&self.stat, &mut self.buf)?;
        let mut parsed = std::mem::take(&mut self.parsed);
        parse_cpu_lines(&self.buf, &mut parsed);
        // procfs indexes CPUs by number and fills the gaps left by offline CPUs with
        // zeros, so node_exporter exports every CPU up to the highest online one.
        let count = parsed.iter().map(|(n, _)| n + 1).max().unwrap_or(0);
        let mut dense: Vec<CpuTimes> = vec![[0.0; 10]; count];
        for &(num, times) in &parsed {
            dense[num] = times;
        }
        // cpu_linux.go forgets all history when the number of CPUs changes (hotplug).
        if self.last.len() != count {
            self.last = vec![None; count];
        }
        let mut rows: Vec<(usize, CpuTimes)> = Vec::with_capacity(count);
        for (num, times) in dense.into_iter().enumerate() {
            let cur = monotonic(self.last[num], times);
            self.last[num] = Some(cur);
            rows.push((num, cur));
        }
        self.parsed = parsed;

        let max = rows.iter().map(|r| r.0).max();
        if let Some(max) = max {
            self.labels_for(max);
        }
        let secs = out.family(
            "node_cpu_seconds_total",
            "Seconds the CPUs spent in each mode.",
            MetricType::Counter,
        );
        for (num, times) in &rows {
            for (labels, v) in self.labels[*num].iter().zip(times).take(MODES.len()) {
                secs.push(labels.clone(), *v);
            }
        }
        let guest = out.family(
            "node_cpu_guest_seconds_total",
            "Seconds the CPUs spent in guests (VMs) for each mode.",
            MetricType::Counter,
        );
        for (num, times) in &rows {
            guest.push(self.labels[*num][8].clone(), times[8]);
            guest.push(self.labels[*num][9].clone(), times[9]);
        }

        // `isolated` is read once at start in node_exporter; it only changes at boot.
        if let Ok(list) = read_trimmed(&self.isolated_path, &mut self.buf) {
            let cpus = parse_cpu_list(list);
            if !cpus.is_empty() {
                let f = out.family(
                    "node_cpu_isolated",
                    "Whether each core is isolated, information from /sys/devices/system/cpu/isolated.",
                    MetricType::Gauge,
                );
                for c in cpus {
                    f.push(label1("cpu", &c.to_string()), 1.0);
                }
            }
        }
        self.thermal_throttle(out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  7397 0 2704 145755 302 0 33 9 0 0
cpu0 3398 0 1181 73304 31 0 9 3 5 1
cpu1 3999 0 1523 72451 271 0 24 6 0 0
intr 171085 0 9 0
ctxt 349738
btime 1795324398
";

    #[test]
    fn per_cpu_lines_are_parsed_in_seconds_and_the_total_line_is_skipped() {
        let mut out = Vec::new();
        parse_cpu_lines(STAT, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].0, 0);
        assert_eq!(out[0].1[0], 33.98);
        assert_eq!(out[0].1[3], 733.04);
        assert_eq!(out[0].1[8], 0.05);
        assert_eq!(out[1].0, 1);
    }

    #[test]
    fn garbage_and_short_lines_do_not_panic() {
        let mut out = Vec::new();
        parse_cpu_lines("cpu0 1 2 x\ncpuX 1\ncpu3 5\ncpu99999999999 1\n\n", &mut out);
        assert_eq!(
            out,
            vec![(3, [0.05, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])]
        );
    }

    #[test]
    fn counters_never_go_backwards_unless_idle_jumps_back_three_seconds() {
        let mut a = [0.0; 10];
        a[0] = 10.0;
        a[3] = 100.0;
        let mut b = a;
        b[0] = 9.0;
        b[3] = 101.0;
        let m = monotonic(Some(a), b);
        assert_eq!(m[0], 10.0);
        assert_eq!(m[3], 101.0);
        let mut c = a;
        c[0] = 1.0;
        c[3] = 50.0;
        let m = monotonic(Some(a), c);
        assert_eq!(m[0], 1.0);
        assert_eq!(m[3], 50.0);
    }

    #[test]
    fn offline_cpus_below_the_highest_online_one_are_exported_as_zeros() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("stat"),
            "cpu  2 0 0 0\ncpu0 1 0 0 0 0 0 0 0 0 0\ncpu2 1 0 0 0 0 0 0 0 0 0\n",
        )
        .unwrap();
        let mut c = Cpu::new(&super::super::HostPaths {
            proc: dir.path().to_path_buf(),
            sys: dir.path().join("nosys"),
            ..Default::default()
        });
        let mut b = Batch::default();
        c.update(&mut b).unwrap();
        let secs = &b.get("node_cpu_seconds_total").unwrap().samples;
        assert_eq!(secs.len(), 3 * 8);
        let cpu1_user = secs
            .iter()
            .find(|(l, _)| l.get("cpu") == Some("1") && l.get("mode") == Some("user"))
            .unwrap();
        assert_eq!(cpu1_user.1, 0.0);
    }

    #[test]
    fn cpu_lists_with_ranges_are_expanded() {
        assert_eq!(parse_cpu_list("0-2,5\n"), vec![0, 1, 2, 5]);
        assert_eq!(parse_cpu_list(""), Vec::<u32>::new());
        assert_eq!(parse_cpu_list("3-1,x"), Vec::<u32>::new());
    }
}
