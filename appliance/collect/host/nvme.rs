//! `nvme` collector: `node_nvme_info` per NVMe controller in /sys/class/nvme (a Pi 5 with
//! an NVMe HAT). Mirrors node_exporter 1.5.0 `collector/nvme_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/nvme_linux.go>)
//! and procfs v0.8.0 `sysfs/class_nvme.go`: all four attributes are required, and no
//! NVMe class means "no data".

use std::path::PathBuf;

use super::util::{is_missing, read_trimmed};
use super::{Batch, Failure, Outcome, Source};
use crate::model::{Labels, MetricType};

pub(crate) struct Nvme {
    dir: PathBuf,
    buf: String,
}

impl Nvme {
    pub(crate) fn new(p: &super::HostPaths) -> Nvme {
        Nvme {
            dir: p.sys.join("class/nvme"),
            buf: String::new(),
        }
    }
}

impl Source for Nvme {
    fn name(&self) -> &'static str {
        "nvme"
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
        let mut rows = Vec::with_capacity(names.len());
        for name in &names {
            let base = self.dir.join(name);
            let mut vals: [String; 4] = Default::default();
            for (slot, file) in vals
                .iter_mut()
                .zip(["firmware_rev", "model", "serial", "state"])
            {
                *slot = read_trimmed(&base.join(file), &mut self.buf)?.to_string();
            }
            let [fw, model, serial, state] = vals;
            rows.push(Labels::from_pairs([
                ("device", name.clone()),
                ("firmware_revision", fw),
                ("model", model),
                ("serial", serial),
                ("state", state),
            ]));
        }
        let f = out.family(
            "node_nvme_info",
            "Non-numeric data from /sys/class/nvme/<device>, value is always 1.",
            MetricType::Gauge,
        );
        for l in rows {
            f.push(l, 1.0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_nvme_controller_gives_one_info_series() {
        let dir = tempfile::tempdir().unwrap();
        let n = dir.path().join("class/nvme/nvme0");
        std::fs::create_dir_all(&n).unwrap();
        for (f, v) in [
            ("firmware_rev", "1B2QEXP7\n"),
            ("model", "Samsung SSD 970 PRO 512GB                \n"),
            ("serial", "S680HF8N190894I\n"),
            ("state", "live\n"),
        ] {
            std::fs::write(n.join(f), v).unwrap();
        }
        let mut c = Nvme::new(&super::super::HostPaths {
            sys: dir.path().to_path_buf(),
            ..Default::default()
        });
        let mut b = Batch::default();
        c.update(&mut b).unwrap();
        let l = &b.get("node_nvme_info").unwrap().samples[0].0;
        assert_eq!(l.get("model"), Some("Samsung SSD 970 PRO 512GB"));
        assert_eq!(l.get("state"), Some("live"));
    }
}
