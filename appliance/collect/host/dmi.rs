//! `dmi` collector: `node_dmi_info` labelled with the firmware's DMI/SMBIOS strings from
//! /sys/class/dmi/id (x86 mini PCs in a cluster; a Pi has no DMI and reports "no data").
//! Mirrors node_exporter 1.5.0 `collector/dmi.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/dmi.go>) and
//! procfs v0.8.0 `sysfs/class_dmi.go`: the strings are read once, root-only files
//! (serials, UUID) are skipped when unreadable, and `sys_vendor` is exported as
//! `system_vendor`.

use std::path::PathBuf;

use super::util::to_valid_utf8;
use super::{Batch, Failure, Outcome, Source};
use crate::model::{Labels, MetricType};

/// (sysfs file, label).
const FIELDS: [(&str, &str); 20] = [
    ("bios_date", "bios_date"),
    ("bios_release", "bios_release"),
    ("bios_vendor", "bios_vendor"),
    ("bios_version", "bios_version"),
    ("board_asset_tag", "board_asset_tag"),
    ("board_name", "board_name"),
    ("board_serial", "board_serial"),
    ("board_vendor", "board_vendor"),
    ("board_version", "board_version"),
    ("chassis_asset_tag", "chassis_asset_tag"),
    ("chassis_serial", "chassis_serial"),
    ("chassis_vendor", "chassis_vendor"),
    ("chassis_version", "chassis_version"),
    ("product_family", "product_family"),
    ("product_name", "product_name"),
    ("product_serial", "product_serial"),
    ("product_sku", "product_sku"),
    ("product_uuid", "product_uuid"),
    ("product_version", "product_version"),
    ("sys_vendor", "system_vendor"),
];

pub(crate) struct Dmi {
    dir: PathBuf,
    /// Read on the first tick; None inside when the platform has no DMI.
    info: Option<Option<Labels>>,
}

impl Dmi {
    pub(crate) fn new(p: &super::HostPaths) -> Dmi {
        Dmi {
            dir: p.sys.join("class/dmi/id"),
            info: None,
        }
    }

    fn read(&self) -> std::io::Result<Option<Labels>> {
        if !self.dir.is_dir() {
            return Ok(None);
        }
        let mut pairs: Vec<(&str, String)> = Vec::new();
        for (file, label) in FIELDS {
            match std::fs::read(self.dir.join(file)) {
                Ok(bytes) => pairs.push((label, to_valid_utf8(bytes.trim_ascii()))),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok((!pairs.is_empty()).then(|| Labels::from_pairs(pairs)))
    }
}

impl Source for Dmi {
    fn name(&self) -> &'static str {
        "dmi"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        if self.info.is_none() {
            self.info = Some(self.read()?);
        }
        let Some(Some(labels)) = &self.info else {
            return Err(Failure::NoData("no DMI information".into()));
        };
        out.family(
            "node_dmi_info",
            "A metric with a constant '1' value labeled by bios_date, bios_release, bios_vendor, bios_version, board_asset_tag, board_name, board_serial, board_vendor, board_version, chassis_asset_tag, chassis_serial, chassis_vendor, chassis_version, product_family, product_name, product_serial, product_sku, product_uuid, product_version, system_vendor if provided by DMI.",
            MetricType::Gauge,
        )
        .push(labels.clone(), 1.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dmi_strings_become_info_labels_and_sys_vendor_is_renamed() {
        let dir = tempfile::tempdir().unwrap();
        let id = dir.path().join("class/dmi/id");
        std::fs::create_dir_all(&id).unwrap();
        std::fs::write(id.join("sys_vendor"), "Dell Inc.\n").unwrap();
        std::fs::write(id.join("product_name"), "OptiPlex 3000\n").unwrap();
        std::fs::write(id.join("modalias"), "dmi:x\n").unwrap();
        let mut d = Dmi::new(&super::super::HostPaths {
            sys: dir.path().to_path_buf(),
            ..Default::default()
        });
        let mut b = Batch::default();
        d.update(&mut b).unwrap();
        let l = &b.get("node_dmi_info").unwrap().samples[0].0;
        assert_eq!(l.get("system_vendor"), Some("Dell Inc."));
        assert_eq!(l.get("product_name"), Some("OptiPlex 3000"));
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn no_dmi_directory_is_no_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = Dmi::new(&super::super::HostPaths {
            sys: dir.path().to_path_buf(),
            ..Default::default()
        });
        assert!(matches!(
            d.update(&mut Batch::default()),
            Err(Failure::NoData(_))
        ));
    }
}
