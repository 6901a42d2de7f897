//! `thermal_zone` collector: temperatures of /sys/class/thermal/thermal_zoneN and the
//! state of cooling devices (a Pi's fan). Mirrors node_exporter 1.5.0
//! `collector/thermal_zone_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/thermal_zone_linux.go>)
//! and procfs v0.8.0 `sysfs/class_thermal.go` and `class_cooling_device.go`: the zone
//! label is the number after `thermal_zone`, temperatures are millidegrees, and a zone
//! whose sensor returns ENODATA is skipped.

use std::path::PathBuf;

use super::util::{label2, numbered_entries, read_i64, read_trimmed};
use super::{Batch, Outcome, Source};
use crate::model::MetricType;

pub(crate) struct ThermalZone {
    dir: PathBuf,
    buf: String,
}

impl ThermalZone {
    pub(crate) fn new(p: &super::HostPaths) -> ThermalZone {
        ThermalZone {
            dir: p.sys.join("class/thermal"),
            buf: String::new(),
        }
    }
}

impl Source for ThermalZone {
    fn name(&self) -> &'static str {
        "thermal_zone"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        // procfs globs: a missing class directory is just "no zones".
        let zones = numbered_entries(&self.dir, "thermal_zone").unwrap_or_default();
        let mut temps = Vec::new();
        for (n, name) in &zones {
            let base = self.dir.join(name);
            let kind = read_trimmed(&base.join("type"), &mut self.buf)?.to_string();
            match read_i64(&base.join("temp"), &mut self.buf) {
                Ok(t) => temps.push((
                    label2("type", &kind, "zone", &n.to_string()),
                    t as f64 / 1000.0,
                )),
                Err(e) if e.raw_os_error() == Some(libc::ENODATA) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        let f = out.family(
            "node_thermal_zone_temp",
            "Zone temperature in Celsius",
            MetricType::Gauge,
        );
        for (l, v) in temps {
            f.push(l, v);
        }

        let devices = numbered_entries(&self.dir, "cooling_device").unwrap_or_default();
        let mut states = Vec::new();
        for (n, name) in &devices {
            let base = self.dir.join(name);
            let kind = read_trimmed(&base.join("type"), &mut self.buf)?.to_string();
            let max = read_i64(&base.join("max_state"), &mut self.buf)?;
            let cur = read_i64(&base.join("cur_state"), &mut self.buf)?;
            states.push((label2("name", &n.to_string(), "type", &kind), cur, max));
        }
        let f = out.family(
            "node_cooling_device_cur_state",
            "Current throttle state of the cooling device",
            MetricType::Gauge,
        );
        for (l, cur, _) in &states {
            f.push(l.clone(), *cur as f64);
        }
        let f = out.family(
            "node_cooling_device_max_state",
            "Maximum throttle state of the cooling device",
            MetricType::Gauge,
        );
        for (l, _, max) in &states {
            f.push(l.clone(), *max as f64);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pi_like_thermal_zone_and_fan_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let z = dir.path().join("class/thermal/thermal_zone0");
        let c = dir.path().join("class/thermal/cooling_device0");
        std::fs::create_dir_all(&z).unwrap();
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(z.join("type"), "cpu-thermal\n").unwrap();
        std::fs::write(z.join("temp"), "48686\n").unwrap();
        std::fs::write(c.join("type"), "pwm-fan\n").unwrap();
        std::fs::write(c.join("cur_state"), "1\n").unwrap();
        std::fs::write(c.join("max_state"), "4\n").unwrap();
        let mut t = ThermalZone::new(&super::super::HostPaths {
            sys: dir.path().to_path_buf(),
            ..Default::default()
        });
        let mut b = Batch::default();
        t.update(&mut b).unwrap();
        let temp = &b.get("node_thermal_zone_temp").unwrap().samples[0];
        assert_eq!(temp.1, 48.686);
        assert_eq!(temp.0.get("zone"), Some("0"));
        assert_eq!(temp.0.get("type"), Some("cpu-thermal"));
        let max = &b.get("node_cooling_device_max_state").unwrap().samples[0];
        assert_eq!((max.0.get("name"), max.1), (Some("0"), 4.0));
    }

    #[test]
    fn no_thermal_class_is_success_with_nothing_to_report() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = ThermalZone::new(&super::super::HostPaths {
            sys: dir.path().to_path_buf(),
            ..Default::default()
        });
        let mut b = Batch::default();
        t.update(&mut b).unwrap();
        assert!(b.families.iter().all(|f| f.samples.is_empty()));
    }
}
