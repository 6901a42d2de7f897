//! `vmstat` collector: selected /proc/vmstat fields as untyped `node_vmstat_<field>`.
//! Mirrors node_exporter 1.5.0 `collector/vmstat_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/vmstat_linux.go>)
//! with its default `--collector.vmstat.fields`.

use std::path::PathBuf;

use regex::Regex;

use super::util::read_into;
use super::{Batch, Outcome, Source};
use crate::model::{Labels, MetricType};

/// node_exporter's default `--collector.vmstat.fields`.
pub(crate) const DEFAULT_FIELDS: &str = "^(oom_kill|pgpg|pswp|pg.*fault).*";

pub(crate) struct VmStat {
    path: PathBuf,
    buf: String,
    fields: Option<Regex>,
}

impl VmStat {
    pub(crate) fn new(p: &super::HostPaths) -> VmStat {
        VmStat {
            path: p.proc.join("vmstat"),
            buf: String::new(),
            fields: Regex::new(DEFAULT_FIELDS).ok(),
        }
    }
}

/// Appends the selected `name value` lines of /proc/vmstat as families.
pub(crate) fn emit_vmstat(s: &str, fields: &Regex, out: &mut Batch) {
    for line in s.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(name), Some(value)) = (f.next(), f.next()) else {
            continue;
        };
        if !fields.is_match(name) {
            continue;
        }
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        out.family(
            format!("node_vmstat_{name}"),
            format!("/proc/vmstat information field {name}."),
            MetricType::Unknown,
        )
        .push(Labels::empty(), v);
    }
}

impl Source for VmStat {
    fn name(&self) -> &'static str {
        "vmstat"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        read_into(&self.path, &mut self.buf)?;
        if let Some(fields) = &self.fields {
            emit_vmstat(&self.buf, fields, out);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_default_fields_are_exported_as_untyped() {
        let s = "nr_free_pages 5000\npgpgin 1640925\npgfault 4271040\npgmajfault 1168\noom_kill 0\npswpin 0\nnr_dirty 3\nbroken\n";
        let mut b = Batch::default();
        emit_vmstat(s, &Regex::new(DEFAULT_FIELDS).unwrap(), &mut b);
        let names: Vec<_> = b.families.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "node_vmstat_pgpgin",
                "node_vmstat_pgfault",
                "node_vmstat_pgmajfault",
                "node_vmstat_oom_kill",
                "node_vmstat_pswpin"
            ]
        );
        assert!(b.families.iter().all(|f| f.kind == MetricType::Unknown));
    }
}
