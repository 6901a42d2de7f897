//! Selector kernels over loaded series: the latest sample within the lookback window of an
//! instant selector, and the `(mint, maxt]` windows of a range selector. Both find their
//! bounds by binary search in the time-ordered samples, so a step costs O(log n) per series.

use super::{InstantSample, Vector, Window};
use crate::model::is_stale_nan;
use crate::query::SeriesData;

/// For each series, the latest sample in `(ref_t - lookback, ref_t]` unless it is a
/// staleness marker. Mirrors Prometheus `vectorSelectorSingle` (promql/engine.go v3.x),
/// whose lookback window is left-open since 3.0. The result carries the sample timestamps.
pub(super) fn latest(data: &[SeriesData], ref_t: i64, lookback_ms: i64) -> Vector {
    let mint = ref_t.saturating_sub(lookback_ms);
    let mut out = Vec::new();
    for s in data {
        let idx = s.samples.partition_point(|x| x.t <= ref_t);
        let Some(smp) = idx.checked_sub(1).and_then(|i| s.samples.get(i)) else {
            continue;
        };
        if smp.t <= mint || is_stale_nan(smp.v) {
            continue;
        }
        out.push(InstantSample {
            labels: s.labels.clone(),
            t: smp.t,
            v: smp.v,
        });
    }
    out
}

/// The non-empty windows `(mint, maxt]` of every series (Prometheus 3.x range selectors are
/// left-open). Staleness markers were removed when the series were loaded.
pub(super) fn windows(data: &[SeriesData], mint: i64, maxt: i64) -> Vec<Window> {
    let mut out = Vec::new();
    for (i, s) in data.iter().enumerate() {
        let start = s.samples.partition_point(|x| x.t <= mint);
        let end = s.samples.partition_point(|x| x.t <= maxt);
        if start < end {
            out.push(Window {
                series: i,
                start,
                end,
            });
        }
    }
    out
}
