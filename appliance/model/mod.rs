//! Plain data shared by every stage: label sets, samples, label matchers and metric
//! metadata. Nothing here does I/O.

pub mod duration;
mod labels;
mod matcher;
pub mod prompb;

pub use labels::{Label, Labels, LabelsBuilder, METRIC_NAME, hash_pairs};
pub use matcher::{MatchOp, Matcher, MatcherError};

/// One sample: a millisecond timestamp and a float value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub t: i64,
    pub v: f64,
}

/// A label name and value as read off the wire (bytes, not yet known to be UTF-8).
pub type WirePair<'a> = (&'a [u8], &'a [u8]);

/// Series as a decoder reads them off the wire: label pairs borrowed from the request body
/// in the sender's order, as bytes not validated yet (not even as UTF-8: a pair equal to a
/// known series' labels is valid, so only label sets the store does not know are checked),
/// and their samples, all in three flat vectors so that a request of thousands
/// of series costs a few allocations instead of several per series.
#[derive(Debug, Default)]
pub struct WireBatch<'a> {
    pairs: Vec<WirePair<'a>>,
    samples: Vec<Sample>,
    /// Per series: where its pairs and its samples end.
    ends: Vec<(usize, usize)>,
}

impl<'a> WireBatch<'a> {
    pub fn push_pair(&mut self, name: &'a [u8], value: &'a [u8]) {
        self.pairs.push((name, value));
    }

    pub fn push_sample(&mut self, s: Sample) {
        self.samples.push(s);
    }

    /// Closes a series: the pairs and samples pushed since the last close are its own. A
    /// series without samples is dropped (there is nothing to store).
    pub fn end_series(&mut self) {
        let (pairs_start, samples_start) = self.ends.last().copied().unwrap_or((0, 0));
        if self.samples.len() == samples_start {
            self.pairs.truncate(pairs_start);
        } else {
            self.ends.push((self.pairs.len(), self.samples.len()));
        }
    }

    /// Each series' label pairs and samples, in arrival order.
    pub fn series(&self) -> impl Iterator<Item = (&[WirePair<'a>], &[Sample])> + '_ {
        let mut start = (0, 0);
        self.ends.iter().map(move |&(p, s)| {
            let out = (&self.pairs[start.0..p], &self.samples[start.1..s]);
            start = (p, s);
            out
        })
    }

    pub fn sample_count(&self) -> usize {
        self.ends.last().map_or(0, |e| e.1)
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// The NaN bit pattern Prometheus uses to mark a series as stale
/// (`value.StaleNaN`, model/value/value.go). Ordinary NaNs are different bits.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The staleness marker as a float value.
pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

/// Whether `v` is the staleness marker (and not any other NaN).
pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// Go's `strconv.FormatFloat(f, 'f', -1, 64)`, as Prometheus prints floats in messages and
/// promtool in its output: Rust's `Display` for f64 is also the shortest round-trip digits
/// without an exponent; only the special values are spelled differently.
pub fn format_go_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f == f64::INFINITY {
        "+Inf".into()
    } else if f == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{f}")
    }
}

/// The metric types of the Prometheus exposition format, as `/api/v1/metadata` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
    Summary,
    Info,
    Stateset,
    Unknown,
}

impl MetricType {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricType::Counter => "counter",
            MetricType::Gauge => "gauge",
            MetricType::Histogram => "histogram",
            MetricType::Summary => "summary",
            MetricType::Info => "info",
            MetricType::Stateset => "stateset",
            MetricType::Unknown => "unknown",
        }
    }
}

/// What `/api/v1/metadata` reports for one metric name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Metadata {
    pub kind: MetricType,
    pub help: String,
    pub unit: String,
}
