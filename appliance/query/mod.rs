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
