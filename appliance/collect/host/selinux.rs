//! `selinux` collector: `node_selinux_enabled`, plus the configured and current
//! enforcement modes when SELinux is on. Mirrors node_exporter 1.5.0
//! `collector/selinux_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/selinux_linux.go>);
//! "enabled" follows go-selinux: selinuxfs is mounted at <sys>/fs/selinux and holds an
//! `enforce` file.

use std::path::PathBuf;

use super::util::{read_i64, read_into};
use super::{Batch, Outcome, Source};
use crate::model::MetricType;

pub(crate) struct Selinux {
    enforce: PathBuf,
    config: PathBuf,
    buf: String,
}

impl Selinux {
    pub(crate) fn new(p: &super::HostPaths) -> Selinux {
        Selinux {
            enforce: p.sys.join("fs/selinux/enforce"),
            config: p.rootfs.join("etc/selinux/config"),
            buf: String::new(),
        }
    }
}

/// The `SELINUX=` mode of /etc/selinux/config as go-selinux numbers it
/// (enforcing 1, permissive 0, disabled -1).
pub(crate) fn config_mode(s: &str) -> f64 {
    for line in s.lines() {
        if let Some(v) = line.trim().strip_prefix("SELINUX=") {
            return match v.trim().trim_matches('"') {
                "enforcing" => 1.0,
                "permissive" => 0.0,
                _ => -1.0,
            };
        }
    }
    -1.0
}

impl Source for Selinux {
    fn name(&self) -> &'static str {
        "selinux"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        let help = "SELinux is enabled, 1 is true, 0 is false";
        let Ok(current) = read_i64(&self.enforce, &mut self.buf) else {
            out.scalar("node_selinux_enabled", help, MetricType::Gauge, 0.0);
            return Ok(());
        };
        out.scalar("node_selinux_enabled", help, MetricType::Gauge, 1.0);
        let config = match read_into(&self.config, &mut self.buf) {
            Ok(()) => config_mode(&self.buf),
            Err(_) => -1.0,
        };
        out.scalar(
            "node_selinux_config_mode",
            "Configured SELinux enforcement mode",
            MetricType::Gauge,
            config,
        );
        out.scalar(
            "node_selinux_current_mode",
            "Current SELinux enforcement mode",
            MetricType::Gauge,
            current as f64,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_modes_map_to_go_selinux_numbers() {
        assert_eq!(config_mode("# x\nSELINUX=enforcing\n"), 1.0);
        assert_eq!(config_mode("SELINUX=permissive"), 0.0);
        assert_eq!(config_mode(""), -1.0);
    }
}
