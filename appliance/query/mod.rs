//! Query engines over the store's read interface. `promql` answers the Prometheus API,
//! rules and dashboards; the store is read only through [`SeriesReader`].

pub mod client;
pub mod promql;

use crate::model::{Labels, Matcher, Sample};

/// One series read from storage: its labels and its samples in time order, no duplicate
/// timestamps. Staleness markers are included as stored (see `model::is_stale_nan`).
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesData {
    pub labels: Labels,
    pub samples: Vec<Sample>,
}

/// Errors a reader may return; the API maps them to `execution` errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ReadError(pub String);

/// What an engine will compute from a selector's samples. A store that keeps rollups
/// (store/rollup.rs) uses it to answer from them where raw samples were deleted: each
/// variant names the rollup column that gives the raw answer for that computation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Only raw samples will do (functions rollups cannot answer).
    Raw,
    /// The latest sample (plain selectors, `last_over_time`, `present_over_time`).
    Last,
    Min,
    Max,
    Sum,
    /// `count_over_time`: rollup points carry counts and raw samples the value 1, so the
    /// engine sums them (see [`Selected::rollup`]).
    Count,
    Avg,
    /// `rate`, `increase`, `irate`: a reset-free series with the raw increase.
    Counter,
    /// `delta`, `idelta`: first and last sample of each bucket.
    FirstLast,
}

/// What [`SeriesReader::select_for`] returns.
#[derive(Debug, Clone, Default)]
pub struct Selected {
    pub series: Vec<SeriesData>,
    /// Set when some samples stand for rollup buckets: the tier used ("5m", "1h") and the
    /// time before which the answer comes from it.
    pub rollup: Option<(&'static str, i64)>,
}

/// The store's read interface that both query engines use. The store implements it; tests
/// use an in-memory fake.
pub trait SeriesReader: Send + Sync {
    /// Every series matching all `matchers` (at least one of which matches a non-empty
    /// value) with its samples in `[start_ms, end_ms]`, both ends inclusive. Series with no
    /// sample in the range are left out. Results are sorted by labels.
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesData>, ReadError>;

    /// [`SeriesReader::select`] for a computation `want`: a reader keeping rollups may
    /// answer the part of the range whose raw samples are gone from them.
    fn select_for(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
        want: Want,
    ) -> Result<Selected, ReadError> {
        let _ = want;
        Ok(Selected {
            series: self.select(matchers, start_ms, end_ms)?,
            rollup: None,
        })
    }

    /// Label sets of series matching `matchers` that have samples in `[start_ms, end_ms]`.
    fn series(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<Labels>, ReadError>;

    /// Sorted label names of the series matching `matchers` (all series when empty).
    fn label_names(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, ReadError>;

    /// Sorted values of label `name` over the series matching `matchers` (all when empty).
    fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<String>, ReadError>;
}
