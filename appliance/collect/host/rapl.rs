//! `rapl` collector: Intel/AMD RAPL energy counters from /sys/class/powercap
//! (`node_rapl_<zone>_joules_total{index,path}`), for x86 mini PCs in a cluster; a Pi has
//! none ("no data"). Mirrors node_exporter 1.5.0 `collector/rapl_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/rapl_linux.go>)
//! and procfs v0.8.0 `sysfs/class_powercap.go`: a zone named `package-0` is zone
//! `package` with index 0, otherwise indexes count repeated names; `path` is the zone's
//! sysfs directory. Since Linux 5.10 `energy_uj` is root-only; unreadable means "no data".

use std::path::PathBuf;
use std::sync::LazyLock;

use regex::Regex;

use super::util::{label2, read_u64};
use super::{Batch, Failure, Outcome, Source};
use crate::model::MetricType;

/// node_exporter's `SanitizeMetricName` (collector/helper.go).
static INVALID: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"_*[^0-9A-Za-z_]+_*").ok());

pub(crate) fn sanitize_metric_name(s: &str) -> String {
    match INVALID.as_ref() {
        Some(r) => r.replace_all(s, "_").into_owned(),
        None => s.to_string(),
    }
}

/// procfs `getIndexAndName`: `package-0` → (0, `package`); other names are numbered by
/// how often they were seen.
fn index_and_name(seen: &[(String, usize)], name: &str) -> (usize, String) {
    if let Some((base, idx)) = name.split_once('-')
        && !idx.contains('-')
        && let Ok(i) = idx.parse::<usize>()
    {
        return (i, base.to_string());
    }
    let count = seen
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, c)| *c)
        .unwrap_or(0);
    (count, name.to_string())
}

pub(crate) struct Rapl {
    dir: PathBuf,
    buf: String,
}

impl Rapl {
    pub(crate) fn new(p: &super::HostPaths) -> Rapl {
        Rapl {
            dir: p.sys.join("class/powercap"),
            buf: String::new(),
        }
    }
}

fn no_data_if_missing_or_denied(e: std::io::Error) -> Failure {
    match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
            Failure::NoData(e.to_string())
        }
        _ => Failure::Error(e.to_string()),
    }
}

impl Source for Rapl {
    fn name(&self) -> &'static str {
        "rapl"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        let mut entries: Vec<String> = std::fs::read_dir(&self.dir)
            .map_err(no_data_if_missing_or_denied)?
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect();
        entries.sort();
        let mut seen: Vec<(String, usize)> = Vec::new();
        let mut zones: Vec<(String, usize, PathBuf)> = Vec::new();
        for entry in entries {
            let path = self.dir.join(&entry);
            let Ok(raw) = std::fs::read_to_string(path.join("name")) else {
                continue;
            };
            let (index, name) = index_and_name(&seen, raw.trim());
            // procfs requires max_energy_range_uj to be readable.
            read_u64(&path.join("max_energy_range_uj"), &mut self.buf)
                .map_err(no_data_if_missing_or_denied)?;
            match seen.iter_mut().find(|(n, _)| *n == name) {
                Some((_, c)) => *c = index + 1,
                None => seen.push((name.clone(), index + 1)),
            }
            zones.push((name, index, path));
        }
        let start = out.families.len();
        for (name, index, path) in zones {
            let uj = match read_u64(&path.join("energy_uj"), &mut self.buf) {
                Ok(v) => v,
                Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                    return Err(Failure::NoData(e.to_string()));
                }
                Err(e) => return Err(e.into()),
            };
            let metric = format!("node_rapl_{}_joules_total", sanitize_metric_name(&name));
            let help = format!("Current RAPL {name} value in joules");
            out.family_since(start, &metric, &help, MetricType::Counter)
                .push(
                    label2("index", &index.to_string(), "path", &path.to_string_lossy()),
                    uj as f64 / 1000000.0,
                );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_names_with_an_index_suffix_are_split() {
        assert_eq!(index_and_name(&[], "package-0"), (0, "package".to_string()));
        assert_eq!(index_and_name(&[], "core"), (0, "core".to_string()));
        let seen = vec![("dram".to_string(), 1)];
        assert_eq!(index_and_name(&seen, "dram"), (1, "dram".to_string()));
        assert_eq!(index_and_name(&[], "psys-x"), (0, "psys-x".to_string()));
    }

    #[test]
    fn metric_names_are_sanitized_like_node_exporter() {
        assert_eq!(sanitize_metric_name("package"), "package");
        assert_eq!(sanitize_metric_name("psys-x"), "psys_x");
        assert_eq!(sanitize_metric_name("a_-_b"), "a_b");
    }
}
