//! Picket's own health as metrics: the `process_*` families every Prometheus client
//! exports (same names and units as client_golang's process collector, read from
//! `/proc/self`), and `picket_*` families from the store and ingest counters. Served at
//! `/metrics` and, with `collect.self.enabled`, stored like any other source.

use super::Batch;
use crate::ingest::{Ingest, Source};
use crate::model::{Labels, MetricType};
use crate::store::Store;
use std::time::Instant;

pub struct SelfCollector {
    store: Store,
    ingest: Ingest,
    started: Instant,
    buf: String,
    page_size: f64,
    ticks_per_second: f64,
    boot_time_seconds: f64,
    /// Other stages' metrics (rules, notifier), added by the app.
    extra: Vec<MetricsSource>,
}

/// A stage's own metrics, appended to each collection.
pub type MetricsSource = Box<dyn FnMut(&mut Batch) + Send>;

impl SelfCollector {
    pub fn new(store: Store, ingest: Ingest) -> SelfCollector {
        // SAFETY: sysconf only reads a constant of the running system.
        let (page_size, ticks) = unsafe {
            (
                libc::sysconf(libc::_SC_PAGESIZE),
                libc::sysconf(libc::_SC_CLK_TCK),
            )
        };
        let mut c = SelfCollector {
            store,
            ingest,
            started: Instant::now(),
            buf: String::new(),
            page_size: if page_size > 0 {
                page_size as f64
            } else {
                4096.0
            },
            ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 },
            boot_time_seconds: 0.0,
            extra: Vec::new(),
        };
        c.boot_time_seconds = c.read_boot_time().unwrap_or(0.0);
        c
    }

    fn read_boot_time(&mut self) -> Option<f64> {
        self.buf.clear();
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse().ok())
    }

    /// Appends the current values.
    pub fn collect(&mut self, out: &mut Batch) {
        self.collect_process(out);
        self.collect_picket(out);
        for f in &mut self.extra {
            f(out);
        }
    }

    /// Adds a stage's own metrics to every collection.
    pub fn add_source(&mut self, f: MetricsSource) {
        self.extra.push(f);
    }

    fn collect_process(&mut self, out: &mut Batch) {
        use std::io::Read;
        self.buf.clear();
        let stat_ok = std::fs::File::open("/proc/self/stat")
            .and_then(|mut f| f.read_to_string(&mut self.buf))
            .is_ok();
        if stat_ok {
            // Fields after the parenthesised command name, which may itself hold spaces.
            if let Some(rest) = self.buf.rfind(')').map(|i| &self.buf[i + 1..]) {
                let f: Vec<&str> = rest.split_whitespace().collect();
                // Field numbers as in proc(5), minus the 2 before `)`: utime is field 14.
                let num = |i: usize| {
                    f.get(i - 3)
                        .and_then(|v| v.parse::<f64>().ok())
                        .unwrap_or(0.0)
                };
                let cpu = (num(14) + num(15)) / self.ticks_per_second;
                let start = self.boot_time_seconds + num(22) / self.ticks_per_second;
                let vsize = num(23);
                let rss = num(24) * self.page_size;
                out.scalar(
                    "process_cpu_seconds_total",
                    "Total user and system CPU time spent in seconds.",
                    MetricType::Counter,
                    cpu,
                );
                out.scalar(
                    "process_virtual_memory_bytes",
                    "Virtual memory size in bytes.",
                    MetricType::Gauge,
                    vsize,
                );
                out.scalar(
                    "process_resident_memory_bytes",
                    "Resident memory size in bytes.",
                    MetricType::Gauge,
                    rss,
                );
                out.scalar(
                    "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.",
                    MetricType::Gauge,
                    start,
                );
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            let n = dir.count();
            out.scalar(
                "process_open_fds",
                "Number of open file descriptors.",
                MetricType::Gauge,
                n as f64,
            );
        }
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
            out.scalar(
                "process_max_fds",
                "Maximum number of open file descriptors.",
                MetricType::Gauge,
                lim.rlim_cur as f64,
            );
        }
    }

    fn collect_picket(&mut self, out: &mut Batch) {
        out.family(
            "picket_build_info",
            "A metric with a constant '1' value labeled by the version of Picket.",
            MetricType::Gauge,
        )
        .push(
            Labels::from_pairs([("version", env!("CARGO_PKG_VERSION"))]),
            1.0,
        );
        out.scalar(
            "picket_uptime_seconds",
            "Seconds since this Picket process started.",
            MetricType::Gauge,
            self.started.elapsed().as_secs_f64(),
        );
        let st = self.store.stats();
        out.scalar(
            "picket_store_series",
            "Series known to the store.",
            MetricType::Gauge,
            st.series as f64,
        );
        out.scalar(
            "picket_store_head_chunks",
            "Chunks held in the in-memory head.",
            MetricType::Gauge,
            st.head_chunks as f64,
        );
        out.scalar(
            "picket_store_samples_appended_total",
            "Samples appended to the store.",
            MetricType::Counter,
            st.samples_appended as f64,
        );
        out.scalar(
            "picket_store_samples_flushed_total",
            "Samples committed to disk by the store's flushes.",
            MetricType::Counter,
            st.samples_flushed as f64,
        );
        out.scalar(
            "picket_store_flushes_total",
            "Flushes of the head to disk.",
            MetricType::Counter,
            st.flushes as f64,
        );
        out.scalar(
            "picket_store_last_flush_duration_seconds",
            "Duration of the last flush of the head to disk.",
            MetricType::Gauge,
            st.last_flush_duration.as_secs_f64(),
        );
        out.scalar(
            "picket_store_disk_bytes",
            "Bytes used by the store's files.",
            MetricType::Gauge,
            st.bytes_on_disk as f64,
        );
        out.scalar(
            "picket_store_evicted_partitions_total",
            "Partition files the budget keeper deleted (storage.budget, storage.max_age).",
            MetricType::Counter,
            st.evicted_partitions as f64,
        );
        if let Some(r) = st.retention {
            out.scalar(
                "picket_store_retention_seconds",
                "Seconds from the oldest data kept (raw samples or rollups) to now.",
                MetricType::Gauge,
                r.as_secs_f64(),
            );
        }
        if let Some(b) = st.budget_bytes {
            out.scalar(
                "picket_store_budget_bytes",
                "Byte budget of the partition files.",
                MetricType::Gauge,
                b as f64,
            );
        }
        let fam = out.family(
            "picket_store_tier_retention_seconds",
            "Per storage tier (raw, 5m, 1h rollups): seconds from the oldest data it holds to now.",
            MetricType::Gauge,
        );
        for (tier, r) in &st.tier_retention {
            if let Some(r) = r {
                fam.push(Labels::from_pairs([("tier", *tier)]), r.as_secs_f64());
            }
        }
        out.scalar(
            "picket_store_write_errors_total",
            "Flushes of the head to disk that failed (a full disk, most often); they are retried.",
            MetricType::Counter,
            st.write_errors as f64,
        );
        out.scalar(
            "picket_store_write_failing",
            "1 while the last flush failed: the head keeps what it cannot write, up to a limit.",
            MetricType::Gauge,
            if st.write_failing { 1.0 } else { 0.0 },
        );
        out.scalar(
            "picket_store_disk_full",
            "1 while flushes fail for lack of space on the data dir's filesystem.",
            MetricType::Gauge,
            if st.disk_full { 1.0 } else { 0.0 },
        );
        out.scalar(
            "picket_store_samples_refused_total",
            "Samples refused while writes failed and the head held all it may.",
            MetricType::Counter,
            st.samples_refused as f64,
        );
        out.scalar(
            "picket_store_rollup_errors_total",
            "Roll-ups of a raw day into the 5m/1h tiers that failed.",
            MetricType::Counter,
            st.rollup_errors as f64,
        );
        out.scalar(
            "picket_store_retention_below_horizon",
            "1 when the budget deleted data and what is kept spans less than storage.retention_horizon.",
            MetricType::Gauge,
            if st.retention_below_horizon { 1.0 } else { 0.0 },
        );
        let stats = self.ingest.stats();
        let fam = out.family(
            "picket_ingest_samples_total",
            "Samples accepted by the ingest path, by source.",
            MetricType::Counter,
        );
        for s in Source::ALL {
            fam.push(
                Labels::from_pairs([("source", s.name())]),
                stats.accepted(s) as f64,
            );
        }
        let fam = out.family(
            "picket_ingest_rejected_samples_total",
            "Samples refused by the ingest path (invalid labels, unsupported types), by source.",
            MetricType::Counter,
        );
        for s in Source::ALL {
            fam.push(
                Labels::from_pairs([("source", s.name())]),
                stats.rejected(s) as f64,
            );
        }
        collect_scrape(&stats.scrape, out);
    }
}

/// `picket_scrape_*`: the scraper's counters (the per-target `up`/`scrape_*` series are
/// written by the scraper itself).
fn collect_scrape(st: &crate::collect::scrape::ScrapeStats, out: &mut Batch) {
    out.scalar(
        "picket_scrape_targets",
        "Scrape targets being scraped.",
        MetricType::Gauge,
        st.targets() as f64,
    );
    out.scalar(
        "picket_scrape_scrapes_total",
        "Scrapes done, successful or not.",
        MetricType::Counter,
        st.scrapes() as f64,
    );
    let fam = out.family(
        "picket_scrape_failures_total",
        "Failed scrapes by reason (http, timeout, body_size_limit, parse, sample_limit, label_limit, series_limit, target_limit).",
        MetricType::Counter,
    );
    for (reason, n) in st.failures() {
        fam.push(Labels::from_pairs([("reason", reason)]), n as f64);
    }
    out.scalar(
        "picket_scrape_samples_total",
        "Samples read from scraped bodies, before relabelling and limits.",
        MetricType::Counter,
        st.samples() as f64,
    );
    out.scalar(
        "picket_scrape_duplicate_samples_total",
        "Samples dropped because their series already had a sample in the same scrape.",
        MetricType::Counter,
        st.duplicates() as f64,
    );
    let (lists, events, expired, failures) = st.kubernetes_counts();
    out.scalar(
        "picket_sd_kubernetes_lists_total",
        "Pod lists fetched from the Kubernetes API server.",
        MetricType::Counter,
        lists as f64,
    );
    let fam = out.family(
        "picket_sd_kubernetes_events_total",
        "Pod watch events received, by type.",
        MetricType::Counter,
    );
    for (event, n) in events {
        fam.push(Labels::from_pairs([("event", event)]), n as f64);
    }
    out.scalar(
        "picket_sd_kubernetes_expired_total",
        "Pod watches that expired (410 Gone) and were followed by a new list.",
        MetricType::Counter,
        expired as f64,
    );
    out.scalar(
        "picket_sd_kubernetes_failures_total",
        "Failed pod lists and watches (each followed by a backoff).",
        MetricType::Counter,
        failures as f64,
    );
}
