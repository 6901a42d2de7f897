//! `hwmon` collector: every sensor under /sys/class/hwmon (temperatures, voltages, fans,
//! power, …) as `node_hwmon_*{chip,sensor}`. On a Pi 4/5 this carries the SoC
//! temperature (`cpu_thermal`) and the under-voltage alarm (`rpi_volt`).
//! Mirrors node_exporter 1.5.0 `collector/hwmon_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/hwmon_linux.go>),
//! including its naming quirks: the chip label is derived from the device's sysfs path
//! (`platform_coretemp_0`), a file `tempN_<prop>` becomes `node_hwmon_temp_<prop>_celsius`,
//! values are scaled from milli/micro units, and unknown properties are exported raw.
//! No /sys/class/hwmon at all means "no data".

use std::path::{Path, PathBuf};

use super::util::is_missing;
use super::{Batch, Failure, Outcome, Source};
use crate::model::{Labels, MetricType};

const SENSOR_TYPES: [&str; 13] = [
    "vrm",
    "beep_enable",
    "update_interval",
    "in",
    "cpu",
    "fan",
    "pwm",
    "temp",
    "curr",
    "power",
    "energy",
    "humidity",
    "intrusion",
];

/// node_exporter's `cleanMetricName`: lower case, `[^a-z0-9:_]` → `_`, trim `_`.
pub(crate) fn clean_name(s: &str) -> String {
    let replaced: String = s
        .to_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == ':' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    replaced.trim_matches('_').to_string()
}

/// Splits a sensor file name like node_exporter's
/// `^(?P<type>[^0-9]+)(?P<id>[0-9]*)?(_(?P<property>.+))?$`: `temp1_crit_alarm` →
/// (`temp`, 1, `crit_alarm`). Returns None when the name does not match.
pub(crate) fn explode(name: &str) -> Option<(&str, u64, &str)> {
    let type_end = name
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(name.len());
    if type_end == 0 {
        return None;
    }
    let ty = &name[..type_end];
    let rest = &name[type_end..];
    let id_end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    let id = if id_end == 0 {
        0
    } else {
        rest[..id_end].parse().ok()?
    };
    let rest = &rest[id_end..];
    let prop = if rest.is_empty() {
        ""
    } else {
        let p = rest.strip_prefix('_')?;
        if p.is_empty() {
            return None;
        }
        p
    };
    Some((ty, id, prop))
}

/// One sensor's files: `(property, raw value)`.
type Sensor = (String, Vec<(String, String)>);

fn collect_sensor_files(dir: &Path, sensors: &mut Vec<Sensor>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let fname = entry.file_name();
        let Some(fname) = fname.to_str() else {
            continue;
        };
        let Some((ty, id, prop)) = explode(fname) else {
            continue;
        };
        if !SENSOR_TYPES.contains(&ty) {
            continue;
        }
        // node_exporter reads at most 128 bytes and trims newlines; unreadable files
        // (write-only, EIO from a flaky sensor) are skipped.
        let Ok(raw) = read_small(&entry.path()) else {
            continue;
        };
        let key = format!("{ty}{id}");
        let value = raw.trim_matches('\n').to_string();
        match sensors.iter_mut().find(|(k, _)| *k == key) {
            Some((_, props)) => props.push((prop.to_string(), value)),
            None => sensors.push((key, vec![(prop.to_string(), value)])),
        }
    }
    Ok(())
}

fn read_small(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut b = [0u8; 128];
    let n = f.read(&mut b)?;
    // hwmon_linux.go applies strings.ToValidUTF8 to sensor labels.
    Ok(super::util::to_valid_utf8(&b[..n]))
}

/// node_exporter's `hwmonName`: `<device type>_<device name>` from the resolved
/// `device` link, else the cleaned `name` file, else the hwmon directory's name.
fn chip_name(dir: &Path) -> Option<String> {
    if let Ok(dev) = std::fs::canonicalize(dir.join("device")) {
        let name = dev.file_name().map(|n| clean_name(&n.to_string_lossy()));
        let ty = dev
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| clean_name(&n.to_string_lossy()));
        match (ty, name) {
            (Some(t), Some(n)) if !t.is_empty() && !n.is_empty() => {
                return Some(format!("{t}_{n}"));
            }
            (_, Some(n)) if !n.is_empty() => return Some(n),
            _ => {}
        }
    }
    if let Some(n) = human_name(dir) {
        return Some(n);
    }
    let real = std::fs::canonicalize(dir).ok()?;
    let n = clean_name(&real.file_name()?.to_string_lossy());
    (!n.is_empty()).then_some(n)
}

fn human_name(dir: &Path) -> Option<String> {
    let raw = std::fs::read_to_string(dir.join("name")).ok()?;
    let n = clean_name(&raw);
    (!n.is_empty()).then_some(n)
}

/// Appends the families of one hwmon directory (`hwmonN`) to `out`, merging into
/// families already appended since `start`.
pub(crate) fn emit_chip(dir: &Path, start: usize, out: &mut Batch) -> std::io::Result<()> {
    let chip = chip_name(dir)
        .ok_or_else(|| super::util::invalid(format!("no monitoring name for {}", dir.display())))?;
    let mut sensors: Vec<Sensor> = Vec::new();
    collect_sensor_files(dir, &mut sensors)?;
    let device = dir.join("device");
    if device.exists() {
        collect_sensor_files(&device, &mut sensors)?;
    }
    sensors.sort();

    if let Some(human) = human_name(dir) {
        out.family_since(
            start,
            "node_hwmon_chip_names",
            "Annotation metric for human-readable chip names",
            MetricType::Gauge,
        )
        .push(
            Labels::from_pairs([("chip", chip.as_str()), ("chip_name", &human)]),
            1.0,
        );
    }

    for (sensor, props) in &mut sensors {
        props.sort();
        let Some((ty, _, _)) = explode(sensor) else {
            continue;
        };
        let ty = ty.to_string();
        let labels = Labels::from_pairs([("chip", chip.as_str()), ("sensor", sensor.as_str())]);
        let get = |p: &str| props.iter().find(|(k, _)| k == p).map(|(_, v)| v.as_str());
        if let Some(label) = get("label") {
            out.family_since(
                start,
                "node_hwmon_sensor_label",
                "Label for given chip and sensor",
                MetricType::Gauge,
            )
            .push(
                Labels::from_pairs([
                    ("chip", chip.as_str()),
                    ("sensor", sensor.as_str()),
                    ("label", label),
                ]),
                1.0,
            );
        }
        let mut emit = |name: &str, help: &str, kind: MetricType, v: f64| {
            out.family_since(start, name, help, kind)
                .push(labels.clone(), v);
        };
        match ty.as_str() {
            "beep_enable" => {
                let v = if get("") == Some("1") { 1.0 } else { 0.0 };
                emit(
                    "node_hwmon_beep_enabled",
                    "Hardware beep enabled",
                    MetricType::Gauge,
                    v,
                );
                continue;
            }
            "vrm" => {
                if let Some(v) = get("").and_then(|v| v.parse::<f64>().ok()) {
                    emit(
                        "node_hwmon_voltage_regulator_version",
                        "Hardware voltage regulator",
                        MetricType::Gauge,
                        v,
                    );
                }
                continue;
            }
            "update_interval" => {
                if let Some(v) = get("").and_then(|v| v.parse::<f64>().ok()) {
                    emit(
                        "node_hwmon_update_interval_seconds",
                        "Hardware monitor update interval",
                        MetricType::Gauge,
                        v * 0.001,
                    );
                }
                continue;
            }
            _ => {}
        }
        let has_plain = get("").is_some();
        for (element, value) in props.iter() {
            if element == "label" {
                continue;
            }
            let mut name = format!("node_hwmon_{ty}");
            if element == "input" {
                if has_plain {
                    name.push_str("_input");
                }
            } else if !element.is_empty() {
                name.push('_');
                name.push_str(&clean_name(element));
            }
            let Ok(v) = value.trim().parse::<f64>() else {
                continue;
            };
            let el = element.as_str();
            let (name, help, kind, v) = match (ty.as_str(), el) {
                (_, "fault" | "alarm") => (
                    name,
                    format!("Hardware sensor {el} status ({ty})"),
                    MetricType::Gauge,
                    v,
                ),
                (_, "beep") => (
                    name + "_enabled",
                    "Hardware monitor sensor has beeping enabled".to_string(),
                    MetricType::Gauge,
                    v,
                ),
                ("in" | "cpu", _) => (
                    name + "_volts",
                    format!("Hardware monitor for voltage ({el})"),
                    MetricType::Gauge,
                    v * 0.001,
                ),
                ("temp", e) if e != "type" => (
                    name + "_celsius",
                    format!(
                        "Hardware monitor for temperature ({})",
                        if e.is_empty() { "input" } else { e }
                    ),
                    MetricType::Gauge,
                    v * 0.001,
                ),
                ("curr", _) => (
                    name + "_amps",
                    format!("Hardware monitor for current ({el})"),
                    MetricType::Gauge,
                    v * 0.001,
                ),
                ("energy", _) => (
                    name + "_joule_total",
                    format!("Hardware monitor for joules used so far ({el})"),
                    MetricType::Counter,
                    v / 1e6,
                ),
                ("power", "accuracy") => (
                    name,
                    "Hardware monitor power meter accuracy, as a ratio".to_string(),
                    MetricType::Gauge,
                    v / 1e6,
                ),
                ("power", "average_interval" | "average_interval_min" | "average_interval_max") => {
                    (
                        name + "_seconds",
                        format!("Hardware monitor power usage update interval ({el})"),
                        MetricType::Gauge,
                        v * 0.001,
                    )
                }
                ("power", _) => (
                    name + "_watt",
                    format!("Hardware monitor for power usage in watts ({el})"),
                    MetricType::Gauge,
                    v / 1e6,
                ),
                ("humidity", _) => (
                    name,
                    format!(
                        "Hardware monitor for humidity, as a ratio (multiply with 100.0 to get the humidity as a percentage) ({el})"
                    ),
                    MetricType::Gauge,
                    v / 1e6,
                ),
                ("fan", "input" | "min" | "max" | "target") => (
                    name + "_rpm",
                    format!("Hardware monitor for fan revolutions per minute ({el})"),
                    MetricType::Gauge,
                    v,
                ),
                _ => (
                    name,
                    format!("Hardware monitor {ty} element {el}"),
                    MetricType::Gauge,
                    v,
                ),
            };
            emit(&name, &help, kind, v);
        }
    }
    Ok(())
}

pub(crate) struct Hwmon {
    dir: PathBuf,
}

impl Hwmon {
    pub(crate) fn new(p: &super::HostPaths) -> Hwmon {
        Hwmon {
            dir: p.sys.join("class/hwmon"),
        }
    }
}

impl Source for Hwmon {
    fn name(&self) -> &'static str {
        "hwmon"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if is_missing(&e) => return Err(Failure::NoData(e.to_string())),
            Err(e) => return Err(e.into()),
        };
        let mut dirs: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        let start = out.families.len();
        let mut last_err = None;
        for d in dirs {
            if let Err(e) = emit_chip(&d, start, out) {
                last_err = Some(e);
            }
        }
        match last_err {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensor_file_names_split_into_type_id_and_property() {
        assert_eq!(explode("temp1_input"), Some(("temp", 1, "input")));
        assert_eq!(explode("temp1_crit_alarm"), Some(("temp", 1, "crit_alarm")));
        assert_eq!(explode("pwm1"), Some(("pwm", 1, "")));
        assert_eq!(explode("beep_enable"), Some(("beep_enable", 0, "")));
        assert_eq!(explode("name"), Some(("name", 0, "")));
        assert_eq!(explode("1abc"), None);
        assert_eq!(explode("in0_"), None);
    }

    #[test]
    fn chip_names_are_cleaned_like_metric_names() {
        assert_eq!(clean_name("cpu_thermal\n"), "cpu_thermal");
        assert_eq!(clean_name("Core 0"), "core_0");
        assert_eq!(clean_name("--"), "");
    }

    #[test]
    fn a_pi_like_hwmon_tree_gives_celsius_and_alarm_families() {
        let dir = tempfile::tempdir().unwrap();
        let h0 = dir.path().join("hwmon0");
        let h1 = dir.path().join("hwmon1");
        std::fs::create_dir_all(&h0).unwrap();
        std::fs::create_dir_all(&h1).unwrap();
        std::fs::write(h0.join("name"), "cpu_thermal\n").unwrap();
        std::fs::write(h0.join("temp1_input"), "48686\n").unwrap();
        std::fs::write(h0.join("temp1_crit"), "110000\n").unwrap();
        std::fs::write(h0.join("temp1_label"), "SoC\n").unwrap();
        std::fs::write(h1.join("name"), "rpi_volt\n").unwrap();
        std::fs::write(h1.join("in0_lcrit_alarm"), "0\n").unwrap();
        std::fs::write(h1.join("fan1_input"), "garbage\n").unwrap();
        let mut b = Batch::default();
        emit_chip(&h0, 0, &mut b).unwrap();
        emit_chip(&h1, 0, &mut b).unwrap();
        let t = &b.get("node_hwmon_temp_celsius").unwrap().samples[0];
        assert_eq!(t.1, 48.686);
        assert_eq!(t.0.get("chip"), Some("cpu_thermal"));
        assert_eq!(t.0.get("sensor"), Some("temp1"));
        assert_eq!(
            b.get("node_hwmon_temp_crit_celsius").unwrap().samples[0].1,
            110.0
        );
        assert_eq!(
            b.get("node_hwmon_sensor_label").unwrap().samples[0]
                .0
                .get("label"),
            Some("SoC")
        );
        assert!(b.get("node_hwmon_in_lcrit_alarm_volts").is_some());
        assert_eq!(b.get("node_hwmon_chip_names").unwrap().samples.len(), 2);
        assert!(b.get("node_hwmon_fan_rpm").is_none());
    }
}
