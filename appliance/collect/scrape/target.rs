//! One target: its labels (Prometheus `PopulateLabels`, scrape/target.go), its URL, and
//! the per-scrape work that turns a body into samples — label merging (`honor_labels`),
//! `metric_relabel_configs`, limits, duplicate and staleness tracking, and the synthetic
//! `up`/`scrape_*` series (scrape/scrape.go `append`, `report`, `mutateSampleLabels`).
//!
//! [`ScrapeLoop`] does no I/O, so all of this is tested without HTTP; the manager feeds it
//! bodies and hands what it returns to ingest.
//!
//! Cost in the steady state (a target exposing the same series each time): the parser
//! borrows from the body, the series cache maps the raw `name{…}` text to the final label
//! set and its hash, steady series move between the staleness maps without a copy, and
//! metadata is compared before it is copied. What remains per sample is one clone of the
//! label set for the store's write batch (`benches/scrape_parse.rs` counts ~1.04
//! allocations per sample).

use super::parser::{Entry, Format, Parser};
use super::relabel;
use crate::config::scrape::{RelabelConfig, ScrapeConfig};
use crate::model::duration::{format_duration_ms, parse_duration};
use crate::model::{Labels, LabelsBuilder, METRIC_NAME, Metadata, MetricType, Sample, stale_nan};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// A target after relabelling: what to scrape and with which labels.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Final labels (no `__`-prefixed ones), attached to every sample.
    pub labels: Labels,
    pub url: String,
    pub interval: Duration,
    pub timeout: Duration,
}

/// Builds a target from one `targets` entry and its group's labels, as Prometheus'
/// `PopulateLabels` does. `Ok(None)`: relabelling dropped it.
pub fn populate(
    job: &ScrapeConfig,
    address: &str,
    group_labels: &BTreeMap<String, String>,
) -> Result<Option<Target>, String> {
    populate_discovered(job, discovered(job, address, group_labels))
}

/// The labels of a target before `relabel_configs` (what `/api/v1/targets` calls
/// `discoveredLabels`): the group's labels, `__address__`, and the job's defaults.
pub fn discovered(
    job: &ScrapeConfig,
    address: &str,
    group_labels: &BTreeMap<String, String>,
) -> Labels {
    let mut lb = LabelsBuilder::default();
    for (k, v) in group_labels {
        lb.set(k, v);
    }
    lb.set("__address__", address);
    let interval = format_duration_ms(job.interval().as_millis() as u64);
    let timeout = format_duration_ms(job.timeout().as_millis() as u64);
    for (name, value) in [
        ("job", job.job_name.as_str()),
        ("__scrape_interval__", interval.as_str()),
        ("__scrape_timeout__", timeout.as_str()),
        ("__metrics_path__", job.metrics_path.as_str()),
        ("__scheme__", job.scheme.as_str()),
    ] {
        if lb.get(name).is_none() {
            lb.set(name, value);
        }
    }
    for (k, v) in &job.params {
        let name = format!("__param_{k}");
        if let Some(first) = v.first()
            && lb.get(&name).is_none()
        {
            lb.set(&name, first);
        }
    }
    lb.build()
}

/// [`populate`] from labels made by [`discovered`].
pub fn populate_discovered(
    job: &ScrapeConfig,
    discovered: Labels,
) -> Result<Option<Target>, String> {
    let mut lb = discovered.into_builder();
    if !relabel::process(&mut lb, &job.relabel_configs) {
        return Ok(None);
    }
    let Some(address) = lb.get("__address__").map(str::to_string) else {
        return Err("no address".into());
    };
    if address.contains('/') {
        return Err(format!("invalid address {address:?}: must be host:port"));
    }
    let interval = lb
        .get("__scrape_interval__")
        .map_or(Ok(job.interval()), parse_duration)
        .map_err(|e| format!("invalid __scrape_interval__: {e}"))?;
    let timeout = lb
        .get("__scrape_timeout__")
        .map_or(Ok(job.timeout()), parse_duration)
        .map_err(|e| format!("invalid __scrape_timeout__: {e}"))?;
    if interval.is_zero() || timeout.is_zero() {
        return Err("scrape interval and timeout must be greater than zero".into());
    }
    if timeout > interval {
        return Err(format!(
            "scrape timeout {timeout:?} greater than scrape interval {interval:?}"
        ));
    }
    if lb.get("instance").is_none() {
        lb.set("instance", &address);
    }
    let scheme = lb.get("__scheme__").unwrap_or("http").to_string();
    let path = lb.get("__metrics_path__").unwrap_or("/metrics").to_string();
    // URL parameters: the job's params, the first value of each overridden by its
    // `__param_<name>` label (Prometheus `Target.URL`).
    let mut params: BTreeMap<String, Vec<String>> = job.params.clone();
    let built = lb.clone().build();
    for l in built.iter() {
        if let Some(k) = l.name.strip_prefix("__param_") {
            let e = params.entry(k.to_string()).or_default();
            match e.first_mut() {
                Some(first) => *first = l.value.to_string(),
                None => e.push(l.value.to_string()),
            }
        }
    }
    let mut url = format!("{scheme}://{address}{path}");
    if !params.is_empty() {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, vs) in &params {
            for v in vs {
                q.append_pair(k, v);
            }
        }
        url.push(if path.contains('?') { '&' } else { '?' });
        url.push_str(&q.finish());
    }
    for l in built.iter() {
        if l.name.starts_with("__") {
            lb.remove(&l.name);
        }
    }
    Ok(Some(Target {
        labels: lb.build(),
        url,
        interval,
        timeout,
    }))
}

/// The per-job settings a scrape loop needs (shared by the job's targets).
#[derive(Debug, Clone)]
pub struct LoopSettings {
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub track_timestamps_staleness: bool,
    pub metric_relabel: Vec<RelabelConfig>,
    pub sample_limit: usize,
    pub label_limit: usize,
    pub label_name_length_limit: usize,
    pub label_value_length_limit: usize,
}

impl LoopSettings {
    pub fn from_job(job: &ScrapeConfig) -> LoopSettings {
        LoopSettings {
            honor_labels: job.honor_labels,
            honor_timestamps: job.honor_timestamps,
            track_timestamps_staleness: job.track_timestamps_staleness,
            metric_relabel: job.metric_relabel_configs.clone(),
            sample_limit: job.sample_limit as usize,
            label_limit: job.label_limit as usize,
            label_name_length_limit: job.label_name_length_limit as usize,
            label_value_length_limit: job.label_value_length_limit as usize,
        }
    }
}

/// Why a scrape failed; `reason()` is the `reason` label of `picket_scrape_failures_total`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScrapeError {
    #[error("{0}")]
    Http(String),
    #[error("scrape timed out")]
    Timeout,
    #[error("body size limit exceeded")]
    BodySizeLimit,
    #[error("parse error: {0}")]
    Parse(String),
    #[error("sample limit exceeded: {got} samples, limit {limit}")]
    SampleLimit { got: usize, limit: usize },
    #[error("label_limit exceeded (metric: {metric}, number of labels: {got}, limit: {limit})")]
    LabelLimit {
        metric: String,
        got: usize,
        limit: usize,
    },
    #[error(
        "label_name_length_limit exceeded (metric: {metric}, label name: {name}, limit: {limit})"
    )]
    LabelNameLength {
        metric: String,
        name: String,
        limit: usize,
    },
    #[error(
        "label_value_length_limit exceeded (metric: {metric}, label name: {name}, limit: {limit})"
    )]
    LabelValueLength {
        metric: String,
        name: String,
        limit: usize,
    },
    #[error("series limit exceeded: Picket already holds {limit} scraped series")]
    SeriesLimit { limit: usize },
    #[error("target_limit exceeded (number of targets: {got}, limit: {limit})")]
    TargetLimit { got: usize, limit: usize },
}

impl ScrapeError {
    pub const REASONS: [&'static str; 9] = [
        "http",
        "timeout",
        "body_size_limit",
        "parse",
        "sample_limit",
        "label_limit",
        "series_limit",
        "target_limit",
        "other",
    ];

    pub fn reason_index(&self) -> usize {
        match self {
            ScrapeError::Http(_) => 0,
            ScrapeError::Timeout => 1,
            ScrapeError::BodySizeLimit => 2,
            ScrapeError::Parse(_) => 3,
            ScrapeError::SampleLimit { .. } => 4,
            ScrapeError::LabelLimit { .. }
            | ScrapeError::LabelNameLength { .. }
            | ScrapeError::LabelValueLength { .. } => 5,
            ScrapeError::SeriesLimit { .. } => 6,
            ScrapeError::TargetLimit { .. } => 7,
        }
    }
}

/// What one scrape produced for ingest.
#[derive(Debug, Default)]
pub struct ScrapeOutput {
    pub samples: Vec<(Labels, Sample)>,
    pub metadata: Vec<(String, Metadata)>,
    /// Samples of the body (before relabelling), for `scrape_samples_scraped`.
    pub scraped: usize,
    /// Samples dropped because their series already had one in this scrape.
    pub duplicates: usize,
    pub error: Option<ScrapeError>,
}

/// A cached series: the final label set (`None` if metric relabelling drops it) and its
/// hash, computed once when the series is first seen.
struct CacheEntry {
    labels: Option<Labels>,
    hash: u64,
    seen: u64,
}

fn labels_hash(labels: &Labels) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    labels.hash(&mut h);
    h.finish()
}

/// The state a target keeps between scrapes.
pub struct ScrapeLoop {
    settings: Arc<LoopSettings>,
    target_labels: Labels,
    /// Raw series text → final labels, so a series seen before costs one hash lookup
    /// (Prometheus' scrapeCache does the same).
    cache: HashMap<Box<str>, CacheEntry>,
    iteration: u64,
    /// Series written last time (by label hash): the candidates for staleness markers.
    /// Keyed by hash like Prometheus' `seriesPrev`/`seriesCur`; a steady series moves
    /// from the previous map to the current one without being cloned.
    previous: HashMap<u64, Labels>,
    /// The emptied map of the scrape before last, reused as the next `current`.
    spare: HashMap<u64, Labels>,
    metadata: HashMap<String, Metadata>,
    report: [Labels; 5],
}

const REPORT_NAMES: [&str; 5] = [
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
];

impl ScrapeLoop {
    pub fn new(settings: Arc<LoopSettings>, target_labels: Labels) -> ScrapeLoop {
        let report = REPORT_NAMES.map(|name| {
            let mut lb = LabelsBuilder::default();
            lb.set(METRIC_NAME, name);
            merge_target_labels(&mut lb, &target_labels, false);
            lb.build()
        });
        ScrapeLoop {
            settings,
            target_labels,
            cache: HashMap::new(),
            iteration: 0,
            previous: HashMap::new(),
            spare: HashMap::new(),
            metadata: HashMap::new(),
            report,
        }
    }

    /// Number of series the last successful scrape wrote (for the global series limit).
    pub fn active_series(&self) -> usize {
        self.previous.len()
    }

    /// Processes a body fetched at `t_ms` (scrape start). `series_budget` is how many
    /// series this target may hold under the global limit (`usize::MAX`: none).
    pub fn scraped(
        &mut self,
        body: &str,
        format: Format,
        t_ms: i64,
        duration: Duration,
        series_budget: usize,
    ) -> ScrapeOutput {
        self.iteration += 1;
        let mut out = ScrapeOutput::default();
        let mut current = std::mem::take(&mut self.spare);
        current.clear();
        current.reserve(self.previous.len());
        // Hashes of series new in this scrape, to undo the moves if the scrape fails.
        let mut new_series: HashSet<u64> = HashSet::new();
        let mut added = 0usize;
        let mut post_relabel = 0usize;
        let mut error = None;
        let mut parser = Parser::new(body, format);
        let mut meta_updates: Vec<(String, Metadata)> = Vec::new();
        loop {
            let entry = match parser.next_entry() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(e) => {
                    error = Some(ScrapeError::Parse(e.to_string()));
                    break;
                }
            };
            let (series, name, value, ts) = match entry {
                Entry::Sample {
                    series,
                    name,
                    value,
                    timestamp_ms,
                } => (series, name, value, timestamp_ms),
                // Metadata is compared with what was stored last time first, so a steady
                // target's HELP and TYPE lines allocate nothing.
                Entry::Help { name, help } => {
                    if self.metadata.get(&*name).is_none_or(|m| m.help != help) {
                        self.metadata_entry(&name, &mut meta_updates).help = help.into_owned();
                    }
                    continue;
                }
                Entry::Type { name, kind } => {
                    if self.metadata.get(&*name).is_none_or(|m| m.kind != kind) {
                        self.metadata_entry(&name, &mut meta_updates).kind = kind;
                    }
                    continue;
                }
                Entry::Unit { name, unit } => {
                    if self.metadata.get(&*name).is_none_or(|m| m.unit != unit) {
                        self.metadata_entry(&name, &mut meta_updates).unit = unit.to_string();
                    }
                    continue;
                }
            };
            out.scraped += 1;
            let (labels, hash) = match self.cache.get_mut(series) {
                Some(e) => {
                    e.seen = self.iteration;
                    (e.labels.clone(), e.hash)
                }
                None => {
                    let labels = self.build_labels(&name, parser.labels());
                    if let Some(l) = &labels
                        && let Err(e) = check_limits(&self.settings, l)
                    {
                        error = Some(e);
                        break;
                    }
                    let hash = labels.as_ref().map_or(0, labels_hash);
                    self.cache.insert(
                        series.into(),
                        CacheEntry {
                            labels: labels.clone(),
                            hash,
                            seen: self.iteration,
                        },
                    );
                    (labels, hash)
                }
            };
            let Some(labels) = labels else { continue };
            post_relabel += 1;
            let explicit = ts.filter(|_| self.settings.honor_timestamps);
            let t = explicit.unwrap_or(t_ms);
            if explicit.is_none() || self.settings.track_timestamps_staleness {
                match current.entry(hash) {
                    std::collections::hash_map::Entry::Occupied(_) => {
                        // Prometheus keeps the first sample of a series and rejects later
                        // ones with the same timestamp (ErrDuplicateSampleForTimestamp).
                        if explicit.is_none() {
                            out.duplicates += 1;
                            post_relabel -= 1;
                            continue;
                        }
                    }
                    std::collections::hash_map::Entry::Vacant(slot) => {
                        // A steady series moves from `previous` without a clone.
                        match self.previous.remove(&hash) {
                            Some(l) => {
                                slot.insert(l);
                            }
                            None => {
                                added += 1;
                                new_series.insert(hash);
                                slot.insert(labels.clone());
                            }
                        }
                    }
                }
            }
            out.samples.push((labels, Sample { t, v: value }));
        }
        if error.is_none()
            && self.settings.sample_limit > 0
            && post_relabel > self.settings.sample_limit
        {
            error = Some(ScrapeError::SampleLimit {
                got: post_relabel,
                limit: self.settings.sample_limit,
            });
        }
        // `previous` now holds only the series not seen again; the growth of this target
        // is the number of new series minus those that went away.
        let held_before = self.previous.len() + current.len() - new_series.len();
        if error.is_none() && current.len() > held_before {
            let growth = current.len() - held_before;
            if growth > series_budget {
                error = Some(ScrapeError::SeriesLimit {
                    limit: series_budget + held_before,
                });
            }
        }
        let secs = duration.as_secs_f64();
        if let Some(e) = error {
            // The whole scrape is rolled back, as Prometheus' appender does, and every
            // series of the last good scrape goes stale.
            out.samples.clear();
            out.error = Some(e);
            for (h, l) in current.drain() {
                if !new_series.contains(&h) {
                    self.previous.insert(h, l);
                }
            }
            self.spare = current;
            let scraped = out.scraped;
            self.fail_into(&mut out, t_ms, secs, scraped, post_relabel);
            return out;
        }
        // Series seen last time but not now: staleness markers at this scrape's time.
        for (_, gone) in self.previous.drain() {
            out.samples.push((
                gone,
                Sample {
                    t: t_ms,
                    v: stale_nan(),
                },
            ));
        }
        self.spare = std::mem::replace(&mut self.previous, current);
        let iteration = self.iteration;
        self.cache.retain(|_, e| e.seen == iteration);
        self.commit_metadata(&mut meta_updates);
        out.metadata = meta_updates;
        self.push_report(
            &mut out.samples,
            t_ms,
            [
                1.0,
                secs,
                out.scraped as f64,
                post_relabel as f64,
                added as f64,
            ],
        );
        out
    }

    /// A scrape that failed before a body was read (connection, HTTP status, timeout).
    pub fn failed(&mut self, error: ScrapeError, t_ms: i64, duration: Duration) -> ScrapeOutput {
        let mut out = ScrapeOutput {
            error: Some(error),
            ..ScrapeOutput::default()
        };
        self.fail_into(&mut out, t_ms, duration.as_secs_f64(), 0, 0);
        out
    }

    /// Staleness markers for everything this target wrote, report series included: the
    /// target went away or Picket is stopping (Prometheus `endOfRunStaleness`).
    pub fn stopped(&mut self, t_ms: i64) -> Vec<(Labels, Sample)> {
        let mut out: Vec<(Labels, Sample)> = self
            .previous
            .drain()
            .map(|(_, l)| {
                (
                    l,
                    Sample {
                        t: t_ms,
                        v: stale_nan(),
                    },
                )
            })
            .collect();
        out.extend(self.report.iter().map(|l| {
            (
                l.clone(),
                Sample {
                    t: t_ms,
                    v: stale_nan(),
                },
            )
        }));
        out
    }

    fn fail_into(
        &mut self,
        out: &mut ScrapeOutput,
        t_ms: i64,
        secs: f64,
        scraped: usize,
        post_relabel: usize,
    ) {
        for (_, gone) in self.previous.drain() {
            out.samples.push((
                gone,
                Sample {
                    t: t_ms,
                    v: stale_nan(),
                },
            ));
        }
        self.push_report(
            &mut out.samples,
            t_ms,
            [0.0, secs, scraped as f64, post_relabel as f64, 0.0],
        );
    }

    fn push_report(&self, samples: &mut Vec<(Labels, Sample)>, t_ms: i64, values: [f64; 5]) {
        for (labels, v) in self.report.iter().zip(values) {
            samples.push((labels.clone(), Sample { t: t_ms, v }));
        }
    }

    /// The metadata record for `name`, queued for the store only when it changes.
    fn metadata_entry<'m>(
        &mut self,
        name: &str,
        updates: &'m mut Vec<(String, Metadata)>,
    ) -> &'m mut Metadata {
        let i = match updates.iter().position(|(n, _)| n == name) {
            Some(i) => i,
            None => {
                let m = self.metadata.get(name).cloned().unwrap_or(Metadata {
                    kind: MetricType::Unknown,
                    help: String::new(),
                    unit: String::new(),
                });
                updates.push((name.to_string(), m));
                updates.len() - 1
            }
        };
        &mut updates[i].1
    }

    /// Final labels of a newly seen series: scraped labels, target labels merged per
    /// `honor_labels`, then `metric_relabel_configs`. `None`: relabelling dropped it.
    fn build_labels(
        &self,
        name: &str,
        scraped: &[(std::borrow::Cow<'_, str>, std::borrow::Cow<'_, str>)],
    ) -> Option<Labels> {
        let mut lb = LabelsBuilder::default();
        for (n, v) in scraped {
            lb.set(n, v);
        }
        lb.set(METRIC_NAME, name);
        merge_target_labels(&mut lb, &self.target_labels, self.settings.honor_labels);
        if !relabel::process(&mut lb, &self.settings.metric_relabel) {
            return None;
        }
        let labels = lb.build();
        labels.metric_name()?;
        // The cache and the head then hold one set, with strings shared across series.
        Some(labels.interned())
    }

    /// Drops metadata updates that match what was already sent, and remembers the rest.
    fn commit_metadata(&mut self, updates: &mut Vec<(String, Metadata)>) {
        updates.retain(|(n, m)| self.metadata.get(n) != Some(m));
        for (n, m) in updates.iter() {
            self.metadata.insert(n.clone(), m.clone());
        }
    }
}

/// Prometheus `mutateSampleLabels`: with `honor_labels`, scraped labels win; without,
/// target labels win and a clashing scraped label is kept as `exported_<name>` (prefixed
/// again while that name is taken too).
fn merge_target_labels(lb: &mut LabelsBuilder, target: &Labels, honor: bool) {
    if honor {
        for l in target.iter() {
            if lb.get(&l.name).is_none() {
                lb.set(&l.name, &l.value);
            }
        }
        return;
    }
    let mut conflicts = Vec::new();
    for l in target.iter() {
        if let Some(existing) = lb.get(&l.name) {
            conflicts.push((l.name.to_string(), existing.to_string()));
        }
        lb.set(&l.name, &l.value);
    }
    // Shorter names first, as Prometheus' resolveConflictingExposedLabels sorts them.
    conflicts.sort_by_key(|(n, _)| n.len());
    for (name, value) in conflicts {
        let mut new_name = name;
        loop {
            new_name = format!("exported_{new_name}");
            if lb.get(&new_name).is_none() {
                lb.set(&new_name, &value);
                break;
            }
        }
    }
}

/// Prometheus `verifyLabelLimits`, on the labels after metric relabelling.
fn check_limits(s: &LoopSettings, labels: &Labels) -> Result<(), ScrapeError> {
    let metric = || labels.metric_name().unwrap_or("").to_string();
    if s.label_limit > 0 && labels.len() > s.label_limit {
        return Err(ScrapeError::LabelLimit {
            metric: metric(),
            got: labels.len(),
            limit: s.label_limit,
        });
    }
    if s.label_name_length_limit == 0 && s.label_value_length_limit == 0 {
        return Ok(());
    }
    for l in labels.iter() {
        if s.label_name_length_limit > 0 && l.name.len() > s.label_name_length_limit {
            return Err(ScrapeError::LabelNameLength {
                metric: metric(),
                name: l.name.to_string(),
                limit: s.label_name_length_limit,
            });
        }
        if s.label_value_length_limit > 0 && l.value.len() > s.label_value_length_limit {
            return Err(ScrapeError::LabelValueLength {
                metric: metric(),
                name: l.name.to_string(),
                limit: s.label_value_length_limit,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::is_stale_nan;

    fn job(extra: &str) -> ScrapeConfig {
        toml::from_str(&format!("job_name = \"j\"\n{extra}")).unwrap()
    }

    fn settings(extra: &str) -> Arc<LoopSettings> {
        Arc::new(LoopSettings::from_job(&job(extra)))
    }

    fn target_labels() -> Labels {
        Labels::from_pairs([("job", "j"), ("instance", "h:1")])
    }

    fn find<'a>(out: &'a ScrapeOutput, series: &str) -> Option<&'a Sample> {
        out.samples
            .iter()
            .find(|(l, _)| l.to_string() == series)
            .map(|(_, s)| s)
    }

    fn value(out: &ScrapeOutput, series: &str) -> f64 {
        find(out, series)
            .unwrap_or_else(|| panic!("{series} missing from {:?}", out.samples))
            .v
    }

    #[test]
    fn target_labels_follow_prometheus_populate_labels() {
        let j = job(
            "scrape_interval = \"30s\"\nparams = { module = [\"a\", \"b\"] }\n\
             [[relabel_configs]]\nsource_labels = [\"__address__\"]\nregex = \"([^:]+):.*\"\ntarget_label = \"host\"\n\
             [[relabel_configs]]\ntarget_label = \"__param_module\"\nreplacement = \"z\"\n",
        );
        let group = BTreeMap::from([("env".to_string(), "prod".to_string())]);
        let t = populate(&j, "node1:9100", &group).unwrap().unwrap();
        assert_eq!(
            t.labels,
            Labels::from_pairs([
                ("env", "prod"),
                ("host", "node1"),
                ("instance", "node1:9100"),
                ("job", "j")
            ])
        );
        assert_eq!(t.url, "http://node1:9100/metrics?module=z&module=b");
        assert_eq!(t.interval, Duration::from_secs(30));
        assert_eq!(t.timeout, Duration::from_secs(10));
    }

    #[test]
    fn relabelling_can_drop_a_target_or_override_instance_and_path() {
        let j = job(
            "[[relabel_configs]]\nsource_labels = [\"__address__\"]\nregex = \"skip.*\"\naction = \"drop\"\n\
                     [[relabel_configs]]\ntarget_label = \"instance\"\nreplacement = \"pretty\"\n\
                     [[relabel_configs]]\ntarget_label = \"__metrics_path__\"\nreplacement = \"/probe\"\n",
        );
        assert_eq!(populate(&j, "skip:1", &BTreeMap::new()), Ok(None));
        let t = populate(&j, "keep:1", &BTreeMap::new()).unwrap().unwrap();
        assert_eq!(t.labels.get("instance"), Some("pretty"));
        assert_eq!(t.url, "http://keep:1/probe");
    }

    #[test]
    fn a_scrape_writes_samples_and_the_report_series() {
        let mut l = ScrapeLoop::new(settings(""), target_labels());
        let body = "# TYPE a gauge\na{x=\"1\"} 5\nb 6 1234\n";
        let out = l.scraped(
            body,
            Format::Text,
            10_000,
            Duration::from_millis(250),
            usize::MAX,
        );
        assert_eq!(out.error, None);
        assert_eq!(value(&out, r#"a{instance="h:1", job="j", x="1"}"#), 5.0);
        let b = find(&out, r#"b{instance="h:1", job="j"}"#).unwrap();
        assert_eq!(
            (b.t, b.v),
            (1234, 6.0),
            "honor_timestamps keeps the exposed timestamp"
        );
        assert_eq!(value(&out, r#"up{instance="h:1", job="j"}"#), 1.0);
        assert_eq!(
            value(&out, r#"scrape_duration_seconds{instance="h:1", job="j"}"#),
            0.25
        );
        assert_eq!(
            value(&out, r#"scrape_samples_scraped{instance="h:1", job="j"}"#),
            2.0
        );
        assert_eq!(
            value(
                &out,
                r#"scrape_samples_post_metric_relabeling{instance="h:1", job="j"}"#
            ),
            2.0
        );
        assert_eq!(
            value(&out, r#"scrape_series_added{instance="h:1", job="j"}"#),
            1.0,
            "series with explicit timestamps are not tracked"
        );
        assert_eq!(
            find(&out, r#"up{instance="h:1", job="j"}"#).unwrap().t,
            10_000
        );
        assert_eq!(out.metadata.len(), 1);
    }

    #[test]
    fn metadata_goes_to_the_store_only_when_it_changes() {
        let mut l = ScrapeLoop::new(settings(""), target_labels());
        let body = "# HELP a Help.\n# TYPE a gauge\na 1\n";
        let first = l.scraped(body, Format::Text, 1, Duration::ZERO, usize::MAX);
        assert_eq!(first.metadata.len(), 1);
        assert_eq!(first.metadata[0].1.help, "Help.");
        assert_eq!(first.metadata[0].1.kind, MetricType::Gauge);
        let again = l.scraped(body, Format::Text, 2, Duration::ZERO, usize::MAX);
        assert!(again.metadata.is_empty(), "{:?}", again.metadata);
        let changed = l.scraped(
            &body.replace("Help.", "New help."),
            Format::Text,
            3,
            Duration::ZERO,
            usize::MAX,
        );
        assert_eq!(changed.metadata.len(), 1);
        assert_eq!(changed.metadata[0].1.help, "New help.");
        assert_eq!(
            changed.metadata[0].1.kind,
            MetricType::Gauge,
            "other fields kept"
        );
    }

    #[test]
    fn honor_timestamps_false_uses_the_scrape_time() {
        let mut l = ScrapeLoop::new(settings("honor_timestamps = false\n"), target_labels());
        let out = l.scraped(
            "b 6 1234\n",
            Format::Text,
            10_000,
            Duration::ZERO,
            usize::MAX,
        );
        assert_eq!(
            find(&out, r#"b{instance="h:1", job="j"}"#).unwrap().t,
            10_000
        );
    }

    #[test]
    fn series_with_their_own_timestamps_go_stale_only_when_tracked() {
        for (cfg, want_marker) in [("", false), ("track_timestamps_staleness = true\n", true)] {
            let mut l = ScrapeLoop::new(settings(cfg), target_labels());
            l.scraped(
                "a 1 1000\n",
                Format::Text,
                5_000,
                Duration::ZERO,
                usize::MAX,
            );
            let out = l.scraped("", Format::Text, 6_000, Duration::ZERO, usize::MAX);
            let marker = find(&out, r#"a{instance="h:1", job="j"}"#);
            assert_eq!(marker.is_some(), want_marker, "{cfg:?}");
            if let Some(m) = marker {
                assert!(is_stale_nan(m.v) && m.t == 6_000);
            }
        }
    }

    #[test]
    fn conflicting_labels_are_exported_unless_honored() {
        let body = "a{job=\"theirs\",exported_job=\"x\",instance=\"i\"} 1\n";
        let mut l = ScrapeLoop::new(settings(""), target_labels());
        let out = l.scraped(body, Format::Text, 1, Duration::ZERO, usize::MAX);
        assert!(find(&out, r#"a{exported_exported_job="x", exported_instance="i", exported_job="theirs", instance="h:1", job="j"}"#).is_some()
            || find(&out, r#"a{exported_exported_job="theirs", exported_instance="i", exported_job="x", instance="h:1", job="j"}"#).is_some(),
            "{:?}", out.samples);
        let mut l = ScrapeLoop::new(settings("honor_labels = true\n"), target_labels());
        let out = l.scraped(body, Format::Text, 1, Duration::ZERO, usize::MAX);
        assert!(
            find(&out, r#"a{exported_job="x", instance="i", job="theirs"}"#).is_some(),
            "{:?}",
            out.samples
        );
    }

    #[test]
    fn series_that_disappear_get_a_staleness_marker_once() {
        let mut l = ScrapeLoop::new(settings(""), target_labels());
        l.scraped(
            "a 1\nb 2\n",
            Format::Text,
            1_000,
            Duration::ZERO,
            usize::MAX,
        );
        let out = l.scraped("a 1\n", Format::Text, 2_000, Duration::ZERO, usize::MAX);
        let b = find(&out, r#"b{instance="h:1", job="j"}"#).expect("stale marker for b");
        assert!(is_stale_nan(b.v));
        assert_eq!(b.t, 2_000);
        assert_eq!(
            value(&out, r#"scrape_series_added{instance="h:1", job="j"}"#),
            0.0
        );
        let out = l.scraped("a 1\n", Format::Text, 3_000, Duration::ZERO, usize::MAX);
        assert!(find(&out, r#"b{instance="h:1", job="j"}"#).is_none());
    }

    #[test]
    fn a_failed_scrape_stales_everything_and_reports_up_zero() {
        let mut l = ScrapeLoop::new(settings(""), target_labels());
        l.scraped("a 1\n", Format::Text, 1_000, Duration::ZERO, usize::MAX);
        let out = l.failed(ScrapeError::Timeout, 2_000, Duration::from_secs(1));
        assert!(is_stale_nan(value(&out, r#"a{instance="h:1", job="j"}"#)));
        assert_eq!(value(&out, r#"up{instance="h:1", job="j"}"#), 0.0);
        let stop = l.stopped(3_000);
        assert_eq!(stop.len(), 5, "only the report series are left to stale");
        assert!(stop.iter().all(|(_, s)| is_stale_nan(s.v)));
    }

    #[test]
    fn duplicate_series_keep_the_first_sample() {
        let mut l = ScrapeLoop::new(settings(""), target_labels());
        let out = l.scraped("a 1\na 2\n", Format::Text, 1, Duration::ZERO, usize::MAX);
        assert_eq!(out.duplicates, 1);
        assert_eq!(value(&out, r#"a{instance="h:1", job="j"}"#), 1.0);
        assert_eq!(
            value(&out, r#"scrape_samples_scraped{instance="h:1", job="j"}"#),
            2.0
        );
    }

    #[test]
    fn metric_relabelling_drops_and_rewrites_samples() {
        let s = settings(
            "[[metric_relabel_configs]]\nsource_labels = [\"__name__\"]\nregex = \"go_.*\"\naction = \"drop\"\n\
             [[metric_relabel_configs]]\nsource_labels = [\"x\"]\ntarget_label = \"y\"\nreplacement = \"${1}!\"\n",
        );
        let mut l = ScrapeLoop::new(s, target_labels());
        for _ in 0..2 {
            // Twice: the second pass goes through the series cache.
            let out = l.scraped(
                "go_x 1\na{x=\"v\"} 2\n",
                Format::Text,
                1,
                Duration::ZERO,
                usize::MAX,
            );
            assert!(find(&out, r#"go_x{instance="h:1", job="j"}"#).is_none());
            assert_eq!(
                value(&out, r#"a{instance="h:1", job="j", x="v", y="v!"}"#),
                2.0
            );
            assert_eq!(
                value(&out, r#"scrape_samples_scraped{instance="h:1", job="j"}"#),
                2.0
            );
            assert_eq!(
                value(
                    &out,
                    r#"scrape_samples_post_metric_relabeling{instance="h:1", job="j"}"#
                ),
                1.0
            );
        }
    }

    #[test]
    fn limits_fail_the_whole_scrape() {
        let cases: &[(&str, &str, usize)] = &[
            ("sample_limit = 2\n", "a 1\nb 2\nc 3\n", 4),
            ("label_limit = 3\n", "a{x=\"1\",y=\"2\"} 1\n", 5),
            ("label_name_length_limit = 8\n", "a{long_name=\"1\"} 1\n", 5),
            ("label_value_length_limit = 4\n", "a{x=\"too long\"} 1\n", 5),
            ("", "a 1\nb\n", 3),
        ];
        for (cfg, body, reason) in cases {
            let mut l = ScrapeLoop::new(settings(cfg), target_labels());
            l.scraped("old 1\n", Format::Text, 1, Duration::ZERO, usize::MAX);
            let out = l.scraped(body, Format::Text, 2, Duration::ZERO, usize::MAX);
            let err = out
                .error
                .as_ref()
                .unwrap_or_else(|| panic!("{cfg}: no error"));
            assert_eq!(err.reason_index(), *reason, "{cfg}: {err}");
            assert_eq!(value(&out, r#"up{instance="h:1", job="j"}"#), 0.0, "{cfg}");
            assert!(
                is_stale_nan(value(&out, r#"old{instance="h:1", job="j"}"#)),
                "{cfg}"
            );
            assert!(
                out.samples
                    .iter()
                    .all(|(l, s)| l.metric_name().unwrap().starts_with("scrape_")
                        || l.metric_name() == Some("up")
                        || is_stale_nan(s.v)),
                "{cfg}: nothing from a failed scrape is stored: {:?}",
                out.samples
            );
        }
    }

    #[test]
    fn the_global_series_budget_fails_a_scrape_that_grows_past_it() {
        let mut l = ScrapeLoop::new(settings(""), target_labels());
        let out = l.scraped("a 1\nb 1\n", Format::Text, 1, Duration::ZERO, 1);
        assert_eq!(out.error.as_ref().map(|e| e.reason_index()), Some(6));
        let out = l.scraped("a 1\n", Format::Text, 2, Duration::ZERO, 1);
        assert_eq!(out.error, None);
    }
}
