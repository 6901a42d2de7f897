//! `edac` collector: memory error counters of EDAC memory controllers
//! (/sys/devices/system/edac/mc/mcN). Mirrors node_exporter 1.5.0
//! `collector/edac_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/edac_linux.go>).
//! Machines without EDAC (every Pi) produce no families and still succeed.

use std::path::PathBuf;

use super::util::{label1, label2, numbered_entries, read_u64};
use super::{Batch, Outcome, Source};
use crate::model::MetricType;

pub(crate) struct Edac {
    dir: PathBuf,
    buf: String,
}

impl Edac {
    pub(crate) fn new(p: &super::HostPaths) -> Edac {
        Edac {
            dir: p.sys.join("devices/system/edac/mc"),
            buf: String::new(),
        }
    }
}

impl Source for Edac {
    fn name(&self) -> &'static str {
        "edac"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        // A missing directory is just "no controllers", as Go's Glob reports it.
        let controllers = numbered_entries(&self.dir, "mc").unwrap_or_default();
        let start = out.families.len();
        for (n, name) in controllers {
            let mc = n.to_string();
            let base = self.dir.join(&name);
            let ce = read_u64(&base.join("ce_count"), &mut self.buf)?;
            let ce_noinfo = read_u64(&base.join("ce_noinfo_count"), &mut self.buf)?;
            let ue = read_u64(&base.join("ue_count"), &mut self.buf)?;
            let ue_noinfo = read_u64(&base.join("ue_noinfo_count"), &mut self.buf)?;
            let mut push = |name: &str, help: &str, l, v: u64| {
                out.family_since(start, name, help, MetricType::Counter)
                    .push(l, v as f64);
            };
            let ce_name = "node_edac_correctable_errors_total";
            let ue_name = "node_edac_uncorrectable_errors_total";
            let csce = "node_edac_csrow_correctable_errors_total";
            let csue = "node_edac_csrow_uncorrectable_errors_total";
            let csce_help = "Total correctable memory errors for this csrow.";
            let csue_help = "Total uncorrectable memory errors for this csrow.";
            push(
                ce_name,
                "Total correctable memory errors.",
                label1("controller", &mc),
                ce,
            );
            push(
                csce,
                csce_help,
                label2("controller", &mc, "csrow", "unknown"),
                ce_noinfo,
            );
            push(
                ue_name,
                "Total uncorrectable memory errors.",
                label1("controller", &mc),
                ue,
            );
            push(
                csue,
                csue_help,
                label2("controller", &mc, "csrow", "unknown"),
                ue_noinfo,
            );
            for (row, rname) in numbered_entries(&base, "csrow").unwrap_or_default() {
                let r = row.to_string();
                let ce = read_u64(&base.join(&rname).join("ce_count"), &mut self.buf)?;
                push(csce, csce_help, label2("controller", &mc, "csrow", &r), ce);
                let ue = read_u64(&base.join(&rname).join("ue_count"), &mut self.buf)?;
                push(csue, csue_help, label2("controller", &mc, "csrow", &r), ue);
            }
        }
        Ok(())
    }
}
