//! Host metrics, compatible with Debian's `prometheus-node-exporter` 1.5.0 default Linux
//! collectors: the same family names, types, label names, label values and units, so
//! dashboards built for node_exporter ("Node Exporter Full") work unchanged.
//!
//! One file per node_exporter collector (`cpu.rs` ↔ `collector/cpu_linux.go`, …). Each
//! collector reads /proc and /sys itself into a scratch buffer it keeps across ticks, and
//! appends whole families to the caller's [`Batch`]. [`HostCollector::collect`] runs them
//! in a fixed order and then appends node_exporter's own bookkeeping families,
//! `node_scrape_collector_success{collector}` and
//! `node_scrape_collector_duration_seconds{collector}`, with the collector names
//! node_exporter uses.
//!
//! Failure model (mirrors `collector/collector.go` `execute`): a collector that fails
//! reports `success 0`; on a real error its partial output is dropped (node_exporter
//! would have sent it, but a half family is worse than none for a store), while "no data"
//! (the subsystem does not exist on this kernel, e.g. no /proc/pressure) keeps what was
//! produced and is logged at debug level only. Nothing here panics on odd file contents:
//! unparsable lines are skipped or turn into an error for that collector.
//!
//! Not implemented, although enabled by default in 1.5.0 (they emit nothing on a
//! Raspberry Pi or need more than /proc and /sys): bcache, btrfs, fibrechannel,
//! infiniband, systemd (D-Bus), tapestats, xfs, zfs.
//!
//! The collectors are a closed set held as boxed [`Source`]s: the set is fixed at
//! construction and each needs its own state, which a trait object keeps simple.

mod arp;
mod bonding;
mod conntrack;
mod cpu;
mod cpufreq;
mod diskstats;
mod dmi;
mod edac;
mod entropy;
mod filefd;
mod filesystem;
mod hwmon;
mod ipvs;
mod loadavg;
mod mdadm;
mod meminfo;
mod netclass;
mod netdev;
mod netstat;
mod nfs;
mod nfsd;
mod nvme;
mod os;
mod powersupplyclass;
mod pressure;
mod rapl;
mod schedstat;
mod selinux;
mod sockstat;
mod softnet;
mod stat;
mod textfile;
mod thermal_zone;
mod time;
mod timex;
mod udp_queues;
mod uname;
mod util;
mod vmstat;

use std::io;
use std::path::PathBuf;
use std::time::Instant;

use super::Batch;
use crate::model::{Labels, MetricType};

/// Where the host's /proc, /sys and root filesystem are mounted (node_exporter's
/// `--path.procfs`, `--path.sysfs`, `--path.rootfs`). In a container they are usually
/// bind mounts of the host's, e.g. `/host/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPaths {
    pub proc: PathBuf,
    pub sys: PathBuf,
    pub rootfs: PathBuf,
}

impl Default for HostPaths {
    fn default() -> HostPaths {
        HostPaths {
            proc: PathBuf::from("/proc"),
            sys: PathBuf::from("/sys"),
            rootfs: PathBuf::from("/"),
        }
    }
}

/// Why a collector produced nothing (or not everything) this tick.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The data source does not exist here (node_exporter's `ErrNoData`).
    NoData(String),
    /// Reading or parsing failed.
    Error(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Failure {
        Failure::Error(e.to_string())
    }
}

impl Failure {
    /// `NoData` when the file is missing, `Error` otherwise: the mapping most
    /// node_exporter collectors apply to `os.ErrNotExist`.
    pub(crate) fn missing_is_no_data(e: io::Error) -> Failure {
        if util::is_missing(&e) {
            Failure::NoData(e.to_string())
        } else {
            Failure::Error(e.to_string())
        }
    }
}

pub(crate) type Outcome = Result<(), Failure>;

/// One node_exporter collector.
pub(crate) trait Source: Send {
    /// node_exporter's collector name, the `collector` label of the scrape families.
    fn name(&self) -> &'static str;
    /// Appends this collector's families for the current tick.
    fn update(&mut self, out: &mut Batch) -> Outcome;
}

/// Runs all host collectors; keeps their scratch buffers and state between ticks.
pub struct HostCollector {
    sources: Vec<Box<dyn Source>>,
    /// `{collector="…"}` label sets, built once.
    collector_labels: Vec<Labels>,
    /// Per source: (seconds taken, succeeded) of the current tick.
    results: Vec<(f64, bool)>,
}

impl HostCollector {
    pub fn new(paths: HostPaths) -> HostCollector {
        let p = &paths;
        // Alphabetical, like node_exporter's collector registry.
        let sources: Vec<Box<dyn Source>> = vec![
            Box::new(arp::Arp::new(p)),
            Box::new(bonding::Bonding::new(p)),
            Box::new(conntrack::Conntrack::new(p)),
            Box::new(cpu::Cpu::new(p)),
            Box::new(cpufreq::CpuFreq::new(p)),
            Box::new(diskstats::DiskStats::new(p)),
            Box::new(dmi::Dmi::new(p)),
            Box::new(edac::Edac::new(p)),
            Box::new(entropy::Entropy::new(p)),
            Box::new(filefd::FileFd::new(p)),
            Box::new(filesystem::Filesystem::new(p)),
            Box::new(hwmon::Hwmon::new(p)),
            Box::new(ipvs::Ipvs::new(p)),
            Box::new(loadavg::LoadAvg::new(p)),
            Box::new(mdadm::Mdadm::new(p)),
            Box::new(meminfo::MemInfo::new(p)),
            Box::new(netclass::NetClass::new(p)),
            Box::new(netdev::NetDev::new(p)),
            Box::new(netstat::NetStat::new(p)),
            Box::new(nfs::Nfs::new(p)),
            Box::new(nfsd::Nfsd::new(p)),
            Box::new(nvme::Nvme::new(p)),
            Box::new(os::OsRelease::new(p)),
            Box::new(powersupplyclass::PowerSupplyClass::new(p)),
            Box::new(pressure::Pressure::new(p)),
            Box::new(rapl::Rapl::new(p)),
            Box::new(schedstat::SchedStat::new(p)),
            Box::new(selinux::Selinux::new(p)),
            Box::new(sockstat::SockStat::new(p)),
            Box::new(softnet::Softnet::new(p)),
            Box::new(stat::Stat::new(p)),
            Box::new(textfile::TextFile::new(p)),
            Box::new(thermal_zone::ThermalZone::new(p)),
            Box::new(time::Time::new(p)),
            Box::new(timex::Timex::new()),
            Box::new(udp_queues::UdpQueues::new(p)),
            Box::new(uname::Uname::new()),
            Box::new(vmstat::VmStat::new(p)),
        ];
        let collector_labels = sources
            .iter()
            .map(|s| util::label1("collector", s.name()))
            .collect();
        let results = vec![(0.0, false); sources.len()];
        HostCollector {
            sources,
            collector_labels,
            results,
        }
    }

    /// The node_exporter collector names this collector implements.
    pub fn collector_names(&self) -> Vec<&'static str> {
        self.sources.iter().map(|s| s.name()).collect()
    }

    /// Appends one tick of host metrics to `out`.
    pub fn collect(&mut self, out: &mut Batch) {
        for (i, source) in self.sources.iter_mut().enumerate() {
            let start_len = out.families.len();
            let began = Instant::now();
            let outcome = source.update(out);
            let took = began.elapsed().as_secs_f64();
            let ok = match outcome {
                Ok(()) => true,
                Err(Failure::NoData(why)) => {
                    tracing::debug!(collector = source.name(), %why, "Host collector found no data.");
                    false
                }
                Err(Failure::Error(why)) => {
                    tracing::debug!(collector = source.name(), %why, "Host collector failed.");
                    out.families.truncate(start_len);
                    false
                }
            };
            // Families a collector opened but found nothing for are not families at all
            // (client_golang never shows a family without samples).
            let mut j = start_len;
            while j < out.families.len() {
                if out.families[j].samples.is_empty() {
                    out.families.remove(j);
                } else {
                    j += 1;
                }
            }
            self.results[i] = (took, ok);
        }
        // node_exporter: collector/collector.go, scrapeDurationDesc and scrapeSuccessDesc.
        let dur = out.family(
            "node_scrape_collector_duration_seconds",
            "node_exporter: Duration of a collector scrape.",
            MetricType::Gauge,
        );
        for (labels, (took, _)) in self.collector_labels.iter().zip(&self.results) {
            dur.push(labels.clone(), *took);
        }
        let success = out.family(
            "node_scrape_collector_success",
            "node_exporter: Whether a collector succeeded.",
            MetricType::Gauge,
        );
        for (labels, (_, ok)) in self.collector_labels.iter().zip(&self.results) {
            success.push(labels.clone(), if *ok { 1.0 } else { 0.0 });
        }
    }
}

impl Default for HostCollector {
    fn default() -> HostCollector {
        HostCollector::new(HostPaths::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collecting_from_empty_directories_reports_failures_instead_of_panicking() {
        let dir = tempfile::tempdir().unwrap();
        let paths = HostPaths {
            proc: dir.path().join("proc"),
            sys: dir.path().join("sys"),
            rootfs: dir.path().to_path_buf(),
        };
        let mut c = HostCollector::new(paths);
        let mut b = Batch::default();
        c.collect(&mut b);
        let success = b.get("node_scrape_collector_success").unwrap();
        let failed = success
            .samples
            .iter()
            .find(|(l, _)| l.get("collector") == Some("meminfo"))
            .unwrap();
        assert_eq!(failed.1, 0.0);
    }

    #[test]
    fn every_family_has_a_help_text() {
        let mut c = HostCollector::default();
        let mut b = Batch::default();
        c.collect(&mut b);
        // Families from textfiles are named by their authors; all others are node_*.
        for f in &b.families {
            assert!(!f.help.is_empty(), "{}", f.name);
        }
        assert!(
            b.families
                .iter()
                .filter(|f| f.name.starts_with("node_"))
                .count()
                > 20
        );
    }
}
