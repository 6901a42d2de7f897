//! The Prometheus-compatible scraper: it owns everything between a `[[scrape]]` job in the
//! config and the samples handed to [`crate::ingest::Ingest::scraped`].
//!
//! ```text
//!  config [[scrape]] ──► manager (one thread)                 per target (one thread each)
//!    static_configs  ─┐   targets = discovery + relabel_configs   sleep(offset by hash)
//!    file_sd_configs ─┤
//!    kubernetes_sd ───┴►  diff against running targets ──start──► loop every interval:
//!                         (re-read every refresh_interval)  stop    GET (Accept, gzip, auth, TLS)
//!                                                            │      parser ─► ScrapeLoop:
//!                                                            │       honor_labels, metric relabel,
//!                                                            │       limits, staleness, up/scrape_*
//!                                                            └─► stale markers ─► ingest.scraped()
//! ```
//!
//! - [`parser`]: text format 0.0.4 and OpenMetrics 1.0 (no allocation per sample in the
//!   common case).
//! - [`relabel`]: every Prometheus relabel action, usable by any stage.
//! - [`target`]: target labels and URL (`PopulateLabels`), and [`target::ScrapeLoop`], the
//!   I/O-free per-scrape logic: synthetic series, staleness markers, limits.
//! - [`manager`]: threads, HTTP, discovery (static and file_sd), start and stop.
//! - [`kubernetes`]: pod discovery through the API server (list and watch).
//! - [`status`]: the active and dropped targets for `/api/v1/targets`.
//!
//! Semantics follow Prometheus 3.x `scrape/scrape.go` and `scrape/target.go`; where Picket
//! differs it says so at the spot (default interval 15 s, lenient Content-Type).

pub mod kubernetes;
pub mod manager;
pub mod parser;
pub mod relabel;
pub mod status;
pub mod target;

pub use manager::ScrapeManager;

use std::sync::atomic::{AtomicU64, Ordering};

/// Scraper counters, exported as `picket_scrape_*` self-metrics.
#[derive(Debug, Default)]
pub struct ScrapeStats {
    scrapes: AtomicU64,
    failures: [AtomicU64; target::ScrapeError::REASONS.len()],
    samples: AtomicU64,
    duplicates: AtomicU64,
    targets: AtomicU64,
    /// Kubernetes discovery: lists, then watch events by [`KUBERNETES_EVENTS`], then
    /// expired watches (410 Gone), then failures.
    kubernetes: [AtomicU64; 7],
}

/// The watch event types counted in `picket_sd_kubernetes_events_total`.
pub const KUBERNETES_EVENTS: [&str; 4] = ["added", "modified", "deleted", "bookmark"];

/// What Kubernetes discovery counts.
#[derive(Debug, Clone, Copy)]
pub enum KubernetesCount {
    List,
    /// An index into [`KUBERNETES_EVENTS`].
    Event(usize),
    Expired,
    Failure,
}

impl ScrapeStats {
    pub(crate) fn record(&self, out: &target::ScrapeOutput) {
        self.scrapes.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = &out.error {
            self.failures[e.reason_index()].fetch_add(1, Ordering::Relaxed);
        }
        self.samples
            .fetch_add(out.scraped as u64, Ordering::Relaxed);
        self.duplicates
            .fetch_add(out.duplicates as u64, Ordering::Relaxed);
    }

    pub(crate) fn set_targets(&self, n: usize) {
        self.targets.store(n as u64, Ordering::Relaxed);
    }

    /// Scrapes done, successful or not.
    pub fn scrapes(&self) -> u64 {
        self.scrapes.load(Ordering::Relaxed)
    }

    /// Failed scrapes per reason, in the order of [`target::ScrapeError::REASONS`].
    pub fn failures(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        target::ScrapeError::REASONS
            .iter()
            .zip(&self.failures)
            .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
    }

    /// Samples read from bodies (before relabelling).
    pub fn samples(&self) -> u64 {
        self.samples.load(Ordering::Relaxed)
    }

    /// Samples dropped as duplicates of a series within one scrape.
    pub fn duplicates(&self) -> u64 {
        self.duplicates.load(Ordering::Relaxed)
    }

    /// Targets being scraped now.
    pub fn targets(&self) -> u64 {
        self.targets.load(Ordering::Relaxed)
    }

    pub(crate) fn kubernetes(&self, what: KubernetesCount) {
        let i = match what {
            KubernetesCount::List => 0,
            KubernetesCount::Event(e) => 1 + e.min(KUBERNETES_EVENTS.len() - 1),
            KubernetesCount::Expired => 5,
            KubernetesCount::Failure => 6,
        };
        self.kubernetes[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Kubernetes discovery counters: (lists, events by type, expired watches, failures).
    pub fn kubernetes_counts(&self) -> (u64, [(&'static str, u64); 4], u64, u64) {
        let k = |i: usize| self.kubernetes[i].load(Ordering::Relaxed);
        let events = std::array::from_fn(|i| (KUBERNETES_EVENTS[i], k(1 + i)));
        (k(0), events, k(5), k(6))
    }
}
