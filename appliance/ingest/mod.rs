//! The single entry into the store. Every source — the host and self collectors, the
//! remote_write receiver — hands its samples to [`Ingest`], which validates label sets,
//! records metadata, counts what it accepted and rejected, and passes one batch per call to
//! the store's writer. Limits and relabelling (later issues) belong here so that they
//! apply once, whatever the source.

use crate::collect::Batch;
use crate::model::prompb::read_write_request;
use crate::model::{Labels, LabelsBuilder, METRIC_NAME, Metadata, Sample};
use crate::store::{Store, StoreError, WriteBatch};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where samples came from, for the `source` label of the ingest counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Host,
    SelfMetrics,
    RemoteWrite,
    /// Recording rules and the `ALERTS`/`ALERTS_FOR_STATE` series of alerting rules.
    Rules,
    Scrape,
    /// `[[probe]]` health probes.
    Probe,
    /// Text imports: `/api/v1/import/prometheus` and the Influx line protocol.
    Import,
}

impl Source {
    pub const ALL: [Source; 7] = [
        Source::Host,
        Source::SelfMetrics,
        Source::RemoteWrite,
        Source::Rules,
        Source::Scrape,
        Source::Probe,
        Source::Import,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Source::Host => "host",
            Source::SelfMetrics => "self",
            Source::RemoteWrite => "remote_write",
            Source::Rules => "rules",
            Source::Scrape => "scrape",
            Source::Probe => "probe",
            Source::Import => "import",
        }
    }
}

/// Counters of what went through ingest, per source.
#[derive(Debug, Default)]
pub struct IngestStats {
    accepted: [AtomicU64; Source::ALL.len()],
    rejected: [AtomicU64; Source::ALL.len()],
    /// The scraper's own counters (`picket_scrape_*`).
    pub scrape: crate::collect::scrape::ScrapeStats,
}

impl IngestStats {
    pub fn accepted(&self, s: Source) -> u64 {
        self.accepted[s as usize].load(Ordering::Relaxed)
    }
    pub fn rejected(&self, s: Source) -> u64 {
        self.rejected[s as usize].load(Ordering::Relaxed)
    }
}

/// Why part of a write was refused. The valid part of the same write is still stored.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The input itself is wrong (a sender must not retry): HTTP 400.
    #[error("{0}")]
    Invalid(String),
    /// The store could not take the samples: HTTP 500, the sender retries.
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// Cheap-to-clone handle on the ingest path.
#[derive(Clone)]
pub struct Ingest {
    store: Store,
    stats: Arc<IngestStats>,
}

impl Ingest {
    pub fn new(store: Store) -> Ingest {
        Ingest {
            store,
            stats: Arc::default(),
        }
    }

    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// Stores what one collector tick produced, all at timestamp `t_ms`. `target` labels
    /// (`job`, `instance`) are added to every sample that does not carry them already, as
    /// Prometheus attaches target labels to what it scrapes, so node_exporter dashboards
    /// that filter on `job` and `instance` find Picket's host metrics.
    pub fn collected(
        &self,
        source: Source,
        batch: &Batch,
        target: &Labels,
        t_ms: i64,
    ) -> Result<(), IngestError> {
        let mut write = WriteBatch::default();
        let mut count = 0;
        for fam in &batch.families {
            write.metadata.push((
                fam.name.clone(),
                Metadata {
                    kind: fam.kind,
                    help: fam.help.clone(),
                    unit: String::new(),
                },
            ));
            for (labels, v) in &fam.samples {
                // Collectors usually leave the metric name to the family (histogram and
                // summary samples carry their suffixed name); the store wants full sets.
                let mut b = labels.clone().into_builder();
                if labels.metric_name().is_none() {
                    b.set(METRIC_NAME, &fam.name);
                }
                for l in target {
                    if b.get(&l.name).is_none() {
                        b.set(&l.name, &l.value);
                    }
                }
                let labels = b.build();
                write.series.push((labels, vec![Sample { t: t_ms, v: *v }]));
                count += 1;
            }
        }
        self.store.append(write)?;
        self.stats.accepted[source as usize].fetch_add(count, Ordering::Relaxed);
        Ok(())
    }

    /// Stores what one scrape produced: samples with their own timestamps (scrape start,
    /// or the exposed timestamp with `honor_timestamps`), staleness markers included.
    pub fn scraped(
        &self,
        samples: Vec<(Labels, Sample)>,
        metadata: Vec<(String, Metadata)>,
    ) -> Result<(), IngestError> {
        self.timestamped(Source::Scrape, samples, metadata)
    }

    /// Stores what one health probe produced (staleness markers included).
    pub fn probed(
        &self,
        samples: Vec<(Labels, Sample)>,
        metadata: Vec<(String, Metadata)>,
    ) -> Result<(), IngestError> {
        self.timestamped(Source::Probe, samples, metadata)
    }

    fn timestamped(
        &self,
        source: Source,
        samples: Vec<(Labels, Sample)>,
        metadata: Vec<(String, Metadata)>,
    ) -> Result<(), IngestError> {
        if samples.is_empty() && metadata.is_empty() {
            return Ok(());
        }
        self.store.append_samples(&samples, metadata)?;
        self.stats.accepted[source as usize].fetch_add(samples.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Stores a remote_write request (the snappy-decompressed `WriteRequest`). Series with
    /// invalid label sets are skipped and reported in the error (Prometheus keeps the valid
    /// ones too); everything else is kept. Label sets the store already knows are not
    /// validated again: they were when their series was created.
    pub fn remote_write(&self, body: &[u8]) -> Result<u64, IngestError> {
        let req = read_write_request(body).map_err(|e| {
            IngestError::Invalid(format!("protobuf: cannot decode WriteRequest: {e}"))
        })?;
        let mut problems: Vec<String> = Vec::new();
        if req.histograms > 0 {
            push_problem(
                &mut problems,
                "native histograms are not supported yet; send classic histograms".to_string(),
            );
        }
        let offered = req.series.sample_count() as u64;
        let accepted = if req.series.is_empty() && req.metadata.is_empty() {
            0
        } else {
            self.store.append_wire(&req.series, req.metadata, |pairs| {
                validate_wire_labels(pairs)
                    .map_err(|e| push_problem(&mut problems, e))
                    .ok()
            })?
        };
        let rejected = offered - accepted + req.histograms;
        self.stats.accepted[Source::RemoteWrite as usize].fetch_add(accepted, Ordering::Relaxed);
        self.stats.rejected[Source::RemoteWrite as usize].fetch_add(rejected, Ordering::Relaxed);
        if problems.is_empty() {
            Ok(accepted)
        } else {
            Err(IngestError::Invalid(format!(
                "{rejected} samples rejected, {accepted} stored: {}",
                problems.join("; ")
            )))
        }
    }
}

impl Ingest {
    /// Stores what a text import parsed (label sets already validated by the importer);
    /// `rejected` counts the samples of lines it refused.
    pub fn imported(
        &self,
        series: Vec<(Labels, Vec<Sample>)>,
        rejected: u64,
    ) -> Result<u64, IngestError> {
        let count = series.iter().map(|(_, s)| s.len() as u64).sum();
        if count > 0 {
            self.store.append(WriteBatch {
                series,
                metadata: Vec::new(),
            })?;
        }
        self.stats.accepted[Source::Import as usize].fetch_add(count, Ordering::Relaxed);
        self.stats.rejected[Source::Import as usize].fetch_add(rejected, Ordering::Relaxed);
        Ok(count)
    }

    /// Stores what one rule group evaluation produced (recording rule results, `ALERTS`
    /// series, staleness markers). The rule engine builds valid label sets itself.
    pub fn rule_output(&self, series: Vec<(Labels, Vec<Sample>)>) -> Result<(), IngestError> {
        let count = series.iter().map(|(_, s)| s.len() as u64).sum();
        self.store.append(WriteBatch {
            series,
            metadata: Vec::new(),
        })?;
        self.stats.accepted[Source::Rules as usize].fetch_add(count, Ordering::Relaxed);
        Ok(())
    }
}

/// Keeps the first few distinct problems of a request so the message stays readable.
fn push_problem(problems: &mut Vec<String>, p: String) {
    if problems.len() < 5 && !problems.contains(&p) {
        problems.push(p);
    }
}

/// [`validate_labels`] for pairs read off the wire as bytes, which must be UTF-8 first.
fn validate_wire_labels(pairs: &[(&[u8], &[u8])]) -> Result<Labels, String> {
    let mut strs = Vec::with_capacity(pairs.len());
    for (n, v) in pairs {
        match (std::str::from_utf8(n), std::str::from_utf8(v)) {
            (Ok(n), Ok(v)) => strs.push((n, v)),
            _ => {
                return Err(format!(
                    "label {:?}: names and values must be valid UTF-8",
                    String::from_utf8_lossy(n)
                ));
            }
        }
    }
    validate_labels(strs.into_iter())
}

/// Checks a label set as it arrived on the wire: a metric name, valid label names, no
/// duplicate names. Empty values are allowed and dropped (Prometheus treats them as absent).
pub fn validate_labels<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
) -> Result<Labels, String> {
    let mut b = LabelsBuilder::default();
    for (name, value) in pairs {
        if !is_valid_label_name(name) {
            return Err(format!("invalid label name {name:?}"));
        }
        if b.get(name).is_some() {
            return Err(format!("duplicate label name {name:?}"));
        }
        b.set(name, value);
    }
    let labels = b.build();
    if labels.metric_name().is_none() {
        return Err(format!(
            "series without a metric name ({METRIC_NAME} label): {labels}"
        ));
    }
    Ok(labels)
}

/// Label names: Prometheus 3.x accepts any non-empty UTF-8 name (UTF-8 validation is done
/// by the protobuf decoder); names starting with `__` other than `__name__` are reserved
/// for internal use but accepted as Prometheus does.
fn is_valid_label_name(name: &str) -> bool {
    !name.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::Family;
    use crate::model::{Matcher, MetricType};
    use crate::query::SeriesReader;

    /// One `WriteRequest.timeseries` entry in wire format, with label bytes as given.
    fn wire_series(labels: &[(&[u8], &[u8])], t: i64, v: f64) -> Vec<u8> {
        fn field(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
            out.push(tag);
            out.push(u8::try_from(bytes.len()).expect("short field"));
            out.extend_from_slice(bytes);
        }
        let mut ts = Vec::new();
        for (n, val) in labels {
            let mut l = Vec::new();
            field(&mut l, 0x0a, n);
            field(&mut l, 0x12, val);
            field(&mut ts, 0x0a, &l);
        }
        let mut sample = vec![0x09];
        sample.extend_from_slice(&v.to_bits().to_le_bytes());
        sample.push(0x10);
        sample.push(u8::try_from(t).expect("small timestamp"));
        field(&mut ts, 0x12, &sample);
        let mut out = Vec::new();
        field(&mut out, 0x0a, &ts);
        out
    }

    #[test]
    fn remote_write_refuses_labels_that_are_not_utf8_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_for_test(dir.path());
        let ingest = Ingest::new(store.clone());
        let mut body = wire_series(&[(b"__name__", b"ok"), (b"job", b"a")], 5, 1.0);
        body.extend(wire_series(
            &[(b"__name__", b"bad"), (b"job", b"\xff")],
            5,
            2.0,
        ));
        let err = ingest.remote_write(&body).unwrap_err().to_string();
        assert!(
            err.contains("UTF-8") && err.contains("1 samples rejected, 1 stored"),
            "{err}"
        );
        let got = store.select(&[Matcher::equal("job", "a")], 0, 10).unwrap();
        assert_eq!(got.len(), 1);
        // The same series again is found without a second look at its labels.
        assert_eq!(
            ingest
                .remote_write(&wire_series(
                    &[(b"__name__", b"ok"), (b"job", b"a")],
                    6,
                    1.0
                ))
                .unwrap(),
            1
        );
        assert_eq!(store.stats().series, 1);
    }

    #[test]
    fn collected_samples_get_the_family_name_unless_they_carry_their_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_for_test(dir.path());
        let ingest = Ingest::new(store.clone());
        let mut fam = Family::new("req_seconds", "Latency.", MetricType::Histogram);
        fam.push(Labels::from_pairs([("__name__", "req_seconds_count")]), 3.0);
        let mut batch = Batch::default();
        batch.families.push(fam);
        batch
            .family("up_like", "Up.", MetricType::Gauge)
            .push(Labels::from_pairs([("job", "x")]), 1.0);
        let target = Labels::from_pairs([("job", "node"), ("instance", "pi-1")]);
        ingest
            .collected(Source::Host, &batch, &target, 1_000)
            .unwrap();
        let names = store
            .label_values(METRIC_NAME, &[], i64::MIN / 2, i64::MAX / 2)
            .unwrap();
        assert_eq!(names, ["req_seconds_count", "up_like"]);
        let got = store
            .select(&[Matcher::equal("job", "x")], 0, 2_000)
            .unwrap();
        assert_eq!(got[0].labels.get(METRIC_NAME), Some("up_like"));
        assert_eq!(
            got[0].labels.get("job"),
            Some("x"),
            "a sample's own label wins"
        );
        assert_eq!(got[0].labels.get("instance"), Some("pi-1"));
        assert_eq!(ingest.stats().accepted(Source::Host), 2);
        assert_eq!(store.metadata()["req_seconds"].kind, MetricType::Histogram);
        store.close().unwrap();
    }

    #[test]
    fn label_sets_need_a_name_and_unique_label_names() {
        assert!(validate_labels([("__name__", "up"), ("job", "a")].into_iter()).is_ok());
        assert!(validate_labels([("job", "a")].into_iter()).is_err());
        assert!(validate_labels([("__name__", "up"), ("a", "1"), ("a", "2")].into_iter()).is_err());
        assert!(validate_labels([("__name__", "up"), ("", "1")].into_iter()).is_err());
    }
}
