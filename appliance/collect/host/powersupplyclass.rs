//! `powersupplyclass` collector: batteries, mains adapters and UPS HATs under
//! /sys/class/power_supply as `node_power_supply_*{power_supply}` plus one
//! `node_power_supply_info` per supply. Mirrors node_exporter 1.5.0
//! `collector/powersupplyclass_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/powersupplyclass_linux.go>)
//! and procfs v0.8.0 `sysfs/class_power_supply.go`: integers are parsed like Go's
//! `ParseInt(v, 0, 64)`, µA/µV/µW/µWh become A/V/W/Wh (`/1e6`), tenths of a degree
//! become °C, and files the driver refuses to read are left out. No power_supply class
//! means "no data".

use std::path::PathBuf;

use super::util::{is_missing, label1, read_trimmed, to_valid_utf8};
use super::{Batch, Failure, Outcome, Source};
use crate::model::{Labels, MetricType};

/// (sysfs file, metric suffix, divisor).
const NUMERIC: [(&str, &str, f64); 49] = [
    ("authentic", "authentic", 1.0),
    ("calibrate", "calibrate", 1.0),
    ("capacity", "capacity", 1.0),
    ("capacity_alert_max", "capacity_alert_max", 1.0),
    ("capacity_alert_min", "capacity_alert_min", 1.0),
    ("cycle_count", "cyclecount", 1.0),
    ("online", "online", 1.0),
    ("present", "present", 1.0),
    ("time_to_empty_now", "time_to_empty_seconds", 1.0),
    ("time_to_full_now", "time_to_full_seconds", 1.0),
    ("current_boot", "current_boot", 1e6),
    ("current_max", "current_max", 1e6),
    ("current_now", "current_ampere", 1e6),
    ("energy_empty", "energy_empty", 1e6),
    ("energy_empty_design", "energy_empty_design", 1e6),
    ("energy_full", "energy_full", 1e6),
    ("energy_full_design", "energy_full_design", 1e6),
    ("energy_now", "energy_watthour", 1e6),
    ("voltage_boot", "voltage_boot", 1e6),
    ("voltage_max", "voltage_max", 1e6),
    ("voltage_max_design", "voltage_max_design", 1e6),
    ("voltage_min", "voltage_min", 1e6),
    ("voltage_min_design", "voltage_min_design", 1e6),
    ("voltage_now", "voltage_volt", 1e6),
    ("voltage_ocv", "voltage_ocv", 1e6),
    ("charge_control_limit", "charge_control_limit", 1e6),
    ("charge_control_limit_max", "charge_control_limit_max", 1e6),
    ("charge_counter", "charge_counter", 1e6),
    ("charge_empty", "charge_empty", 1e6),
    ("charge_empty_design", "charge_empty_design", 1e6),
    ("charge_full", "charge_full", 1e6),
    ("charge_full_design", "charge_full_design", 1e6),
    ("charge_now", "charge_ampere", 1e6),
    ("charge_term_current", "charge_term_current", 1e6),
    ("constant_charge_current", "constant_charge_current", 1e6),
    (
        "constant_charge_current_max",
        "constant_charge_current_max",
        1e6,
    ),
    ("constant_charge_voltage", "constant_charge_voltage", 1e6),
    (
        "constant_charge_voltage_max",
        "constant_charge_voltage_max",
        1e6,
    ),
    ("precharge_current", "precharge_current", 1e6),
    ("input_current_limit", "input_current_limit", 1e6),
    ("power_now", "power_watt", 1e6),
    ("temp", "temp_celsius", 10.0),
    ("temp_alert_max", "temp_alert_max_celsius", 10.0),
    ("temp_alert_min", "temp_alert_min_celsius", 10.0),
    ("temp_ambient", "temp_ambient_celsius", 10.0),
    ("temp_ambient_max", "temp_ambient_max_celsius", 10.0),
    ("temp_ambient_min", "temp_ambient_min_celsius", 10.0),
    ("temp_max", "temp_max_celsius", 10.0),
    ("temp_min", "temp_min_celsius", 10.0),
];

/// (sysfs file, info label).
const STRINGS: [(&str, &str); 11] = [
    ("capacity_level", "capacity_level"),
    ("charge_type", "charge_type"),
    ("health", "health"),
    ("manufacturer", "manufacturer"),
    ("model_name", "model_name"),
    ("serial_number", "serial_number"),
    ("status", "status"),
    ("technology", "technology"),
    ("type", "type"),
    ("usb_type", "usb_type"),
    ("scope", "scope"),
];

/// Go's `strconv.ParseInt(s, 0, 64)`: decimal, `0x` hex, `0o`/leading-0 octal, `0b`.
pub(crate) fn parse_int_base0(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let digits = digits.replace('_', "");
    let lower = digits.to_ascii_lowercase();
    let v = if let Some(h) = lower.strip_prefix("0x") {
        i64::from_str_radix(h, 16).ok()?
    } else if let Some(b) = lower.strip_prefix("0b") {
        i64::from_str_radix(b, 2).ok()?
    } else if let Some(o) = lower.strip_prefix("0o") {
        i64::from_str_radix(o, 8).ok()?
    } else if lower.len() > 1 && lower.starts_with('0') {
        i64::from_str_radix(&lower[1..], 8).ok()?
    } else {
        lower.parse().ok()?
    };
    Some(if neg { -v } else { v })
}

pub(crate) struct PowerSupplyClass {
    dir: PathBuf,
    buf: String,
}

impl PowerSupplyClass {
    pub(crate) fn new(p: &super::HostPaths) -> PowerSupplyClass {
        PowerSupplyClass {
            dir: p.sys.join("class/power_supply"),
            buf: String::new(),
        }
    }
}

impl Source for PowerSupplyClass {
    fn name(&self) -> &'static str {
        "powersupplyclass"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if is_missing(&e) => return Err(Failure::NoData(e.to_string())),
            Err(e) => return Err(e.into()),
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        names.sort();
        let start = out.families.len();
        for supply in &names {
            let base = self.dir.join(supply);
            let labels = label1("power_supply", supply);
            for (file, suffix, div) in NUMERIC {
                let Ok(s) = read_trimmed(&base.join(file), &mut self.buf) else {
                    continue;
                };
                let Some(v) = parse_int_base0(s) else {
                    continue;
                };
                let name = format!("node_power_supply_{suffix}");
                let help = format!("{suffix} value of /sys/class/power_supply/<power_supply>.");
                out.family_since(start, &name, &help, MetricType::Gauge)
                    .push(labels.clone(), v as f64 / div);
            }
            let mut info: Vec<(&str, String)> = vec![("power_supply", supply.clone())];
            for (file, label) in STRINGS {
                if let Ok(bytes) = std::fs::read(base.join(file)) {
                    let v = to_valid_utf8(bytes.trim_ascii());
                    info.push((label, v));
                }
            }
            out.family_since(
                start,
                "node_power_supply_info",
                "info of /sys/class/power_supply/<power_supply>.",
                MetricType::Gauge,
            )
            .push(Labels::from_pairs(info), 1.0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_like_go_base_zero() {
        assert_eq!(parse_int_base0("81"), Some(81));
        assert_eq!(parse_int_base0("-5"), Some(-5));
        assert_eq!(parse_int_base0("0x10"), Some(16));
        assert_eq!(parse_int_base0("010"), Some(8));
        assert_eq!(parse_int_base0("0"), Some(0));
        assert_eq!(parse_int_base0("Normal"), None);
        assert_eq!(parse_int_base0(""), None);
    }

    #[test]
    fn a_ups_hat_battery_is_exported_in_volts_and_watts() {
        let dir = tempfile::tempdir().unwrap();
        let bat = dir.path().join("class/power_supply/BAT0");
        std::fs::create_dir_all(&bat).unwrap();
        for (f, v) in [
            ("capacity", "81\n"),
            ("voltage_now", "11660000\n"),
            ("power_now", "5002000\n"),
            ("status", "Discharging\n"),
            ("type", "Battery\n"),
            ("temp", "251\n"),
        ] {
            std::fs::write(bat.join(f), v).unwrap();
        }
        let mut c = PowerSupplyClass::new(&super::super::HostPaths {
            sys: dir.path().to_path_buf(),
            ..Default::default()
        });
        let mut b = Batch::default();
        c.update(&mut b).unwrap();
        assert_eq!(
            b.get("node_power_supply_capacity").unwrap().samples[0].1,
            81.0
        );
        assert_eq!(
            b.get("node_power_supply_voltage_volt").unwrap().samples[0].1,
            11.66
        );
        assert_eq!(
            b.get("node_power_supply_power_watt").unwrap().samples[0].1,
            5.002
        );
        assert_eq!(
            b.get("node_power_supply_temp_celsius").unwrap().samples[0].1,
            25.1
        );
        let info = &b.get("node_power_supply_info").unwrap().samples[0].0;
        assert_eq!(info.get("status"), Some("Discharging"));
        assert_eq!(info.get("power_supply"), Some("BAT0"));
    }
}
