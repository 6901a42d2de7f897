//! Selector kernels over loaded series: the latest sample within the lookback window of an
//! instant selector, and the `(mint, maxt]` windows of a range selector. Both walk on from
//! where the previous step's bounds were in the time-ordered samples ([`after`]), falling
//! back to a binary search when the bound moved far: a step of a range query usually
//! costs a sample or two per series.

use super::{InstantSample, Vector, Window};
use crate::model::{Sample, is_stale_nan};
use crate::query::SeriesData;

/// For each series, the latest sample in `(ref_t - lookback, ref_t]` unless it is a
/// staleness marker. Mirrors Prometheus `vectorSelectorSingle` (promql/engine.go v3.x),
/// whose lookback window is left-open since 3.0. The result carries the sample timestamps.
pub(super) fn latest(
    data: &[SeriesData],
    ref_t: i64,
    lookback_ms: i64,
    cursors: &mut Vec<(usize, usize)>,
) -> Vector {
    let mint = ref_t.saturating_sub(lookback_ms);
    cursors.resize(data.len(), (0, 0));
    let mut out = Vec::new();
    for (s, cursor) in data.iter().zip(cursors.iter_mut()) {
        let idx = after(&s.samples, ref_t, cursor.0);
        cursor.0 = idx;
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
/// left-open). Staleness markers were removed when the series were loaded. `cursors` holds
/// each series' previous window (it is resized to `data`) and gets this one: as range
/// queries move forward in time, the bounds are usually a sample or two further on.
pub(super) fn windows(
    data: &[SeriesData],
    mint: i64,
    maxt: i64,
    cursors: &mut Vec<(usize, usize)>,
) -> Vec<Window> {
    cursors.resize(data.len(), (0, 0));
    let mut out = Vec::with_capacity(data.len());
    for ((i, s), cursor) in data.iter().enumerate().zip(cursors.iter_mut()) {
        let start = after(&s.samples, mint, cursor.0);
        let end = after(&s.samples, maxt, cursor.1.max(start));
        *cursor = (start, end);
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

/// `smoothed` instant selector: the value at `ref_t` interpolated linearly between the
/// latest sample in `(ref_t - lookback, ref_t]` and the next one within a lookback delta
/// after it (no counter-reset correction: the selector does not know the type); the
/// latest value alone when there is no next sample. Prometheus 3.x extended range
/// selectors (extended_vectors.test).
pub(super) fn latest_smoothed(data: &[SeriesData], ref_t: i64, lookback_ms: i64) -> Vector {
    let mint = ref_t.saturating_sub(lookback_ms);
    let maxt = ref_t.saturating_add(lookback_ms);
    let mut out = Vec::new();
    for s in data {
        let idx = s.samples.partition_point(|x| x.t <= ref_t);
        let Some(prev) = idx.checked_sub(1).and_then(|i| s.samples.get(i)) else {
            continue;
        };
        if prev.t <= mint || is_stale_nan(prev.v) {
            continue;
        }
        let v = match s.samples.get(idx) {
            Some(next) if prev.t < ref_t && next.t <= maxt && !is_stale_nan(next.v) => {
                let f = (ref_t - prev.t) as f64 / (next.t - prev.t) as f64;
                prev.v + (next.v - prev.v) * f
            }
            _ => prev.v,
        };
        out.push(InstantSample {
            labels: s.labels.clone(),
            t: ref_t,
            v,
        });
    }
    out
}

/// Windows of `anchored` and `smoothed` range selectors: the samples in `(mint, maxt]`
/// plus the last one at or before `mint` within `(mint - lookback, mint]`, and for
/// `smoothed` also the first one after `maxt` within a lookback delta. An anchored window
/// needs a sample inside the range; a smoothed one needs a sample inside or neighbours
/// on both sides (extended_vectors.test: nothing when data is only before or after).
pub(super) fn extended_windows(
    data: &[SeriesData],
    mint: i64,
    maxt: i64,
    lookback_ms: i64,
    smoothed: bool,
) -> Vec<Window> {
    let before = mint.saturating_sub(lookback_ms);
    let after = maxt.saturating_add(lookback_ms);
    let mut out = Vec::new();
    for (i, s) in data.iter().enumerate() {
        let in_start = s.samples.partition_point(|x| x.t <= mint);
        let in_end = s.samples.partition_point(|x| x.t <= maxt);
        let mut start = in_start;
        let mut end = in_end;
        if start > 0 && s.samples[start - 1].t > before {
            start -= 1;
        }
        if smoothed && s.samples.get(end).is_some_and(|x| x.t <= after) {
            end += 1;
        }
        let inside = in_start < in_end;
        let keep = inside || (smoothed && start < in_start && end > in_end);
        if keep {
            out.push(Window {
                series: i,
                start,
                end,
            });
        }
    }
    out
}

/// The number of samples at or before `bound` (`partition_point(|x| x.t <= bound)`),
/// searched from `hint`: a few steps forward when the answer is just past it, a binary
/// search otherwise.
pub(super) fn after(samples: &[Sample], bound: i64, hint: usize) -> usize {
    let hint = hint.min(samples.len());
    if hint > 0 && samples[hint - 1].t > bound {
        return samples[..hint].partition_point(|x| x.t <= bound);
    }
    let mut i = hint;
    for _ in 0..8 {
        match samples.get(i) {
            Some(x) if x.t <= bound => i += 1,
            _ => return i,
        }
    }
    i + samples[i..].partition_point(|x| x.t <= bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_agrees_with_a_binary_search_from_any_hint() {
        let samples: Vec<Sample> = (0..40).map(|i| Sample { t: i * 10, v: 0.0 }).collect();
        for bound in -5..420 {
            let want = samples.partition_point(|x| x.t <= bound);
            for hint in 0..45 {
                assert_eq!(
                    after(&samples, bound, hint),
                    want,
                    "bound {bound} hint {hint}"
                );
            }
        }
        assert_eq!(after(&[], 5, 3), 0);
    }
}
