//! `time` collector: the system clock, the local time zone's offset, and the kernel's
//! clock sources. Mirrors node_exporter 1.5.0 `collector/time.go` and `time_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/time_linux.go>).
//! A Pi has no real-time clock, so `node_time_seconds` next to `node_timex_sync_status`
//! is how users see that the clock has not been synchronised yet.

use std::ffi::CStr;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use super::util::{label2, numbered_entries, read_trimmed};
use super::{Batch, Outcome, Source};
use crate::model::MetricType;

/// The local time zone's abbreviation and offset from UTC in seconds at `now`, as Go's
/// `time.Now().Zone()` reports them.
fn local_zone(now: i64) -> (String, i64) {
    let t: libc::time_t = now as libc::time_t;
    // SAFETY: `tm` is a plain C struct that localtime_r fills in; `t` outlives the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return ("UTC".to_string(), 0);
    }
    let name = if tm.tm_zone.is_null() {
        String::new()
    } else {
        // SAFETY: glibc points tm_zone at a static, NUL-terminated zone name.
        unsafe { CStr::from_ptr(tm.tm_zone) }
            .to_string_lossy()
            .into_owned()
    };
    (name, tm.tm_gmtoff as i64)
}

pub(crate) struct Time {
    clocksource_dir: PathBuf,
    buf: String,
}

impl Time {
    pub(crate) fn new(p: &super::HostPaths) -> Time {
        Time {
            clocksource_dir: p.sys.join("devices/system/clocksource"),
            buf: String::new(),
        }
    }
}

impl Source for Time {
    fn name(&self) -> &'static str {
        "time"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        out.scalar(
            "node_time_seconds",
            "System time in seconds since epoch (1970).",
            MetricType::Gauge,
            now,
        );
        let (zone, offset) = local_zone(now as i64);
        out.family(
            "node_time_zone_offset_seconds",
            "System time zone offset in seconds.",
            MetricType::Gauge,
        )
        .push(super::util::label1("time_zone", &zone), offset as f64);

        // procfs v0.8.0 sysfs/clocksource.go: clocksource<N>/{available,current}_clocksource.
        // procfs globs: a missing directory is just "no clock sources".
        let devices = numbered_entries(&self.clocksource_dir, "clocksource").unwrap_or_default();
        let mut available = Vec::new();
        let mut current = Vec::new();
        for (n, dir) in &devices {
            let dev = n.to_string();
            let base = self.clocksource_dir.join(dir);
            let avail = read_trimmed(&base.join("available_clocksource"), &mut self.buf)?;
            for cs in avail.split_ascii_whitespace() {
                available.push(label2("clocksource", cs, "device", &dev));
            }
            let cur = read_trimmed(&base.join("current_clocksource"), &mut self.buf)?;
            current.push(label2("clocksource", cur, "device", &dev));
        }
        let f = out.family(
            "node_time_clocksource_available_info",
            "Available clocksources read from '/sys/devices/system/clocksource'.",
            MetricType::Gauge,
        );
        for l in available {
            f.push(l, 1.0);
        }
        let f = out.family(
            "node_time_clocksource_current_info",
            "Current clocksource read from '/sys/devices/system/clocksource'.",
            MetricType::Gauge,
        );
        for l in current {
            f.push(l, 1.0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocksources_are_read_from_a_fake_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        let cs = dir.path().join("devices/system/clocksource/clocksource0");
        std::fs::create_dir_all(&cs).unwrap();
        std::fs::write(cs.join("available_clocksource"), "arch_sys_counter \n").unwrap();
        std::fs::write(cs.join("current_clocksource"), "arch_sys_counter\n").unwrap();
        let mut t = Time::new(&super::super::HostPaths {
            sys: dir.path().to_path_buf(),
            ..Default::default()
        });
        let mut b = Batch::default();
        t.update(&mut b).unwrap();
        let cur = &b.get("node_time_clocksource_current_info").unwrap().samples;
        assert_eq!(cur[0].0.get("clocksource"), Some("arch_sys_counter"));
        assert_eq!(cur[0].0.get("device"), Some("0"));
        assert!(b.get("node_time_seconds").unwrap().samples[0].1 > 1e9);
    }
}
