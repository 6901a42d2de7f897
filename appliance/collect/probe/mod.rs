//! Blackbox-style health probes (`[[probe]]`): HTTP(S), TCP (optionally TLS) and DNS over
//! UDP, exporting blackbox_exporter's metric names (`probe_success`,
//! `probe_duration_seconds`, `probe_http_status_code`, `probe_ssl_earliest_cert_expiry`,
//! ...) with `job` = the probe's name and `instance` = the target.
//!
//! ```text
//!  [[probe]] ──► one async task per (probe, target): every interval (offset by hash)
//!                  timeout( http | tcp | dns ) ─► Measured gauges
//!                  + probe_success, probe_duration_seconds ─► ingest.probed()
//!                  series gone since last time ─► staleness markers
//! ```
//!
//! Why async tasks, not threads as the scraper: a probe is almost all waiting on the
//! network, and the HTTP prober drives hyper by hand to time each phase (resolve,
//! connect, tls, processing, transfer) as blackbox_exporter's `httptrace` does.
//!
//! - [`net`]: name resolution with the preferred address family, and the TCP prober.
//! - [`tls`]: rustls client configs and what a handshake tells (version, certificate
//!   expiry).
//! - [`http`]: the HTTP prober.
//! - [`dns`]: the DNS prober.

pub mod dns;
pub mod http;
pub mod net;
pub mod tls;

use crate::config::probe::{ProbeConfig, Prober};
use crate::ingest::Ingest;
use crate::model::{Labels, LabelsBuilder, METRIC_NAME, Metadata, MetricType, Sample, stale_nan};
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One gauge a probe measured, with at most one label of its own (`phase`, `version`).
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    pub name: &'static str,
    pub label: Option<(&'static str, String)>,
    pub value: f64,
}

/// The gauges of one probe, in the order they were set; setting a gauge again replaces
/// its value.
#[derive(Debug, Default)]
pub struct Measured {
    pub gauges: Vec<Gauge>,
}

impl Measured {
    pub fn set(&mut self, name: &'static str, value: f64) {
        self.set_labeled(name, None, value);
    }

    pub fn set_labeled(
        &mut self,
        name: &'static str,
        label: Option<(&'static str, String)>,
        value: f64,
    ) {
        match self
            .gauges
            .iter_mut()
            .find(|g| g.name == name && g.label == label)
        {
            Some(g) => g.value = value,
            None => self.gauges.push(Gauge { name, label, value }),
        }
    }

    /// Adds `value` to a gauge (phases summed over redirects).
    pub fn add_labeled(&mut self, name: &'static str, label: (&'static str, String), value: f64) {
        let current = self.get_labeled(name, Some(&label)).unwrap_or(0.0);
        self.set_labeled(name, Some(label), current + value);
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.get_labeled(name, None)
    }

    pub fn get_labeled(&self, name: &str, label: Option<&(&'static str, String)>) -> Option<f64> {
        self.gauges
            .iter()
            .find(|g| g.name == name && g.label.as_ref() == label)
            .map(|g| g.value)
    }
}

/// blackbox_exporter's help texts for the gauges Picket exports.
pub fn help(name: &str) -> &'static str {
    match name {
        "probe_success" => "Displays whether or not the probe was a success",
        "probe_duration_seconds" => "Returns how long the probe took to complete in seconds",
        "probe_dns_lookup_time_seconds" => "Returns the time taken for probe dns lookup in seconds",
        "probe_ip_protocol" => "Specifies whether probe ip protocol is IP4 or IP6",
        "probe_ip_addr_hash" => {
            "Specifies the hash of IP address. It's useful to detect if the IP address changes."
        }
        "probe_http_duration_seconds" => {
            "Duration of http request by phase, summed over all redirects"
        }
        "probe_http_content_length" => "Length of http content response",
        "probe_http_uncompressed_body_length" => "Length of uncompressed response body",
        "probe_http_redirects" => "The number of redirects",
        "probe_http_ssl" => "Indicates if SSL was used for the final redirect",
        "probe_http_status_code" => "Response HTTP status code",
        "probe_http_version" => "Returns the version of HTTP of the probe response",
        "probe_failed_due_to_regex" => "Indicates if probe failed due to regex",
        "probe_ssl_earliest_cert_expiry" => "Returns last SSL chain expiry in unixtime",
        "probe_ssl_last_chain_expiry_timestamp_seconds" => {
            "Returns last SSL chain expiry in timestamp"
        }
        "probe_tls_version_info" => "Returns the TLS version used or NaN when unknown",
        "probe_dns_duration_seconds" => "Duration of DNS request by phase",
        "probe_dns_answer_rrs" => "Returns number of entries in the answer resource record list",
        "probe_dns_authority_rrs" => {
            "Returns number of entries in the authority resource record list"
        }
        "probe_dns_additional_rrs" => {
            "Returns number of entries in the additional resource record list"
        }
        "probe_dns_query_succeeded" => {
            "Displays whether or not the query was executed successfully"
        }
        _ => "",
    }
}

/// One `[[probe]]` ready to run: its config and TLS client settings, built once.
pub struct Prepared {
    pub config: ProbeConfig,
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

impl Prepared {
    pub fn new(config: ProbeConfig) -> Result<Prepared, String> {
        let tls = match config.prober {
            Prober::Http => Some(tls::client_config(config.http.tls_config.as_ref(), true)?),
            Prober::Tcp if config.tcp.tls => {
                Some(tls::client_config(config.tcp.tls_config.as_ref(), false)?)
            }
            _ => None,
        };
        Ok(Prepared { config, tls })
    }
}

/// Runs one probe of `target` within the probe's timeout; returns the gauges including
/// `probe_success` and `probe_duration_seconds`.
pub async fn probe(p: &Prepared, target: &str) -> Measured {
    let mut m = Measured::default();
    let started = Instant::now();
    let run = async {
        match p.config.prober {
            Prober::Http => http::probe(p, target, &mut m).await,
            Prober::Tcp => net::probe_tcp(p, target, &mut m).await,
            Prober::Dns => dns::probe(p, target, &mut m).await,
        }
    };
    let result = tokio::time::timeout(p.config.timeout(), run).await;
    let ok = match result {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::debug!(probe = %p.config.name, target, error = %e, "Probe failed.");
            false
        }
        Err(_) => {
            tracing::debug!(probe = %p.config.name, target, "Probe timed out.");
            false
        }
    };
    m.set("probe_duration_seconds", started.elapsed().as_secs_f64());
    m.set("probe_success", if ok { 1.0 } else { 0.0 });
    m
}

/// The running probes.
pub struct ProbeManager {
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl ProbeManager {
    /// Starts one task per (probe, target) on the current Tokio runtime. `None` when
    /// there is nothing to probe. A probe whose TLS settings cannot be loaded is logged
    /// and skipped.
    pub fn start(probes: Vec<ProbeConfig>, ingest: Ingest) -> Option<ProbeManager> {
        if probes.is_empty() {
            return None;
        }
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let mut tasks = Vec::new();
        for config in probes {
            let name = config.name.clone();
            let prepared = match Prepared::new(config) {
                Ok(p) => Arc::new(p),
                Err(e) => {
                    tracing::error!(probe = %name, error = %e, "Probe cannot start.");
                    continue;
                }
            };
            for target in prepared.config.targets.clone() {
                tasks.push(tokio::spawn(run(
                    prepared.clone(),
                    target,
                    ingest.clone(),
                    stopped.clone(),
                )));
            }
        }
        Some(ProbeManager { stop, tasks })
    }

    /// Stops every probe; each writes staleness markers for its series.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Where in the interval a target is probed: a hash of probe and target, so probes
/// spread out and keep their slot across restarts.
fn offset(name: &str, target: &str, interval: Duration) -> Duration {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (name, target).hash(&mut h);
    let interval = interval.as_millis().max(1) as u64;
    let now = now_ms() as u64;
    let slot = h.finish() % interval;
    Duration::from_millis((slot + interval - now % interval) % interval)
}

/// The label set of one gauge.
fn labels(p: &ProbeConfig, target: &str, g: &Gauge) -> Labels {
    let mut lb = LabelsBuilder::default();
    for (k, v) in &p.labels {
        lb.set(k, v);
    }
    lb.set(METRIC_NAME, g.name);
    lb.set("job", &p.name);
    lb.set("instance", target);
    if let Some((k, v)) = &g.label {
        lb.set(k, v);
    }
    lb.build()
}

async fn run(
    p: Arc<Prepared>,
    target: String,
    ingest: Ingest,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let interval = p.config.interval();
    let first = tokio::time::Instant::now() + offset(&p.config.name, &target, interval);
    let mut tick = tokio::time::interval_at(first, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut previous: HashSet<Labels> = HashSet::new();
    let mut metadata_sent = false;
    let mut last_ok: Option<bool> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => break,
        }
        let t = now_ms();
        let m = probe(&p, &target).await;
        let ok = m.get("probe_success") == Some(1.0);
        if last_ok != Some(ok) {
            if ok {
                tracing::info!(probe = %p.config.name, target = %target, "Probe succeeds.");
            } else {
                tracing::warn!(probe = %p.config.name, target = %target, "Probe fails.");
            }
            last_ok = Some(ok);
        }
        let mut current = HashSet::with_capacity(m.gauges.len());
        let mut samples = Vec::with_capacity(m.gauges.len());
        for g in &m.gauges {
            let l = labels(&p.config, &target, g);
            samples.push((l.clone(), Sample { t, v: g.value }));
            current.insert(l);
        }
        for gone in previous.difference(&current) {
            samples.push((gone.clone(), Sample { t, v: stale_nan() }));
        }
        previous = current;
        let metadata = if metadata_sent {
            Vec::new()
        } else {
            metadata_sent = true;
            let mut names: Vec<&str> = m.gauges.iter().map(|g| g.name).collect();
            names.sort_unstable();
            names.dedup();
            names
                .into_iter()
                .map(|n| {
                    (
                        n.to_string(),
                        Metadata {
                            kind: MetricType::Gauge,
                            help: help(n).to_string(),
                            unit: String::new(),
                        },
                    )
                })
                .collect()
        };
        if let Err(e) = ingest.probed(samples, metadata) {
            tracing::warn!(probe = %p.config.name, error = %e, "Probe results could not be stored.");
        }
    }
    let t = now_ms();
    let gone = previous
        .into_iter()
        .map(|l| (l, Sample { t, v: stale_nan() }))
        .collect();
    if let Err(e) = ingest.probed(gone, Vec::new()) {
        tracing::warn!(probe = %p.config.name, error = %e, "Staleness markers could not be stored.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_are_replaced_and_phases_summed() {
        let mut m = Measured::default();
        m.set("probe_http_status_code", 301.0);
        m.set("probe_http_status_code", 200.0);
        m.add_labeled(
            "probe_http_duration_seconds",
            ("phase", "connect".into()),
            0.5,
        );
        m.add_labeled(
            "probe_http_duration_seconds",
            ("phase", "connect".into()),
            0.25,
        );
        assert_eq!(m.gauges.len(), 2);
        assert_eq!(m.get("probe_http_status_code"), Some(200.0));
        assert_eq!(
            m.get_labeled(
                "probe_http_duration_seconds",
                Some(&("phase", "connect".into()))
            ),
            Some(0.75)
        );
        assert!(help("probe_success").starts_with("Displays"));
    }

    #[test]
    fn the_offset_falls_inside_the_interval() {
        assert!(offset("web", "http://x", Duration::from_secs(15)) < Duration::from_secs(15));
    }
}
