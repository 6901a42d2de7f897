//! Range functions of a plain range selector (`rate(x[5m])`, `max_over_time(x[1h])`, ...)
//! in a range query, computed for a tile of up to [`TILE_STEPS`] consecutive steps at
//! once, series by series.
//!
//! Why: step by step, every step walks every series' window, and the samples of ten
//! thousand series do not fit in the cache, so each step reads them all from memory
//! again. Series by series, one series' samples are read once for the whole tile while
//! they are in cache. The values are the very ones the step-by-step path gives (the same
//! kernel on the same window); each step then hands out its column of the tile in series
//! order, as `functions::rollup` does.
//!
//! Only at the range query's own steps (a subquery's inner steps take the step path) and
//! only for selectors without `anchored`/`smoothed`, whose windows need neighbours.

use super::{EvalError, Evaluator, InstantSample, Vector, selectors};
use crate::model::{Labels, Sample};
use crate::query::SeriesData;
use crate::query::promql::ast::{Call, Expr};
use std::rc::Rc;
use std::time::Instant;

/// Steps one tile covers: enough that a series' samples are read once per tile, few
/// enough that the tile (8 bytes per series and step) stays small.
const TILE_STEPS: usize = 64;

/// Windows a tile must hold before its series are split between two threads: below it,
/// starting the second thread costs more than it saves.
const PARALLEL_WINDOWS: usize = 1 << 15;

/// One call's values for a run of steps.
pub(super) struct Tile {
    start: i64,
    step: i64,
    steps: usize,
    /// `values[series * steps + k]`, meaningful where `present` is set.
    values: Vec<f64>,
    present: Vec<bool>,
    /// Samples in the windows of step `k`, for the evaluator's sample limit.
    samples_at: Vec<usize>,
    /// Series with samples in at least one window, in order.
    with_samples: Vec<usize>,
}

/// The tile of `data` for the steps whose window bounds are `bounds`: on the calling
/// thread, or for a large tile on two, each taking half of the series.
fn compute(
    data: &[SeriesData],
    bounds: &[(i64, i64)],
    step: i64,
    start: i64,
    deadline: Option<Instant>,
    kernel: &(impl Fn(&[Sample], i64, i64) -> Option<f64> + Sync),
) -> Result<Tile, EvalError> {
    let steps = bounds.len();
    let mut tile = Tile {
        start,
        step,
        steps,
        values: vec![0.0; data.len() * steps],
        present: vec![false; data.len() * steps],
        samples_at: vec![0; steps],
        with_samples: Vec::new(),
    };
    let threads = if data.len() * steps >= PARALLEL_WINDOWS {
        2
    } else {
        1
    };
    let per = data.len().div_ceil(threads).max(1);
    let parts: Vec<Result<Part, EvalError>> = std::thread::scope(|scope| {
        let (mut values, mut present) = (&mut tile.values[..], &mut tile.present[..]);
        let mut chunks = data.chunks(per).enumerate().peekable();
        let (mut spawned, mut own) = (Vec::new(), None);
        while let Some((h, series)) = chunks.next() {
            let (v, rest_v) = std::mem::take(&mut values).split_at_mut(series.len() * steps);
            let (p, rest_p) = std::mem::take(&mut present).split_at_mut(series.len() * steps);
            (values, present) = (rest_v, rest_p);
            let mut work = move || fill(series, h * per, bounds, deadline, kernel, v, p);
            if chunks.peek().is_some() {
                spawned.push(scope.spawn(work));
            } else {
                own = Some(work());
            }
        }
        let mut parts: Vec<_> = spawned
            .into_iter()
            .map(|j| {
                j.join()
                    .unwrap_or_else(|_| Err(EvalError::Execution("a tile thread panicked".into())))
            })
            .collect();
        parts.extend(own);
        parts
    });
    for part in parts {
        let part = part?;
        for (k, n) in part.samples_at.iter().enumerate() {
            tile.samples_at[k] += n;
        }
        tile.with_samples.extend(part.with_samples);
    }
    Ok(tile)
}

/// What one thread learnt besides the values it wrote.
struct Part {
    samples_at: Vec<usize>,
    with_samples: Vec<usize>,
}

/// Fills the rows of `series` (the first is series number `first`) into `values` and
/// `present`, series by series.
fn fill(
    series: &[SeriesData],
    first: usize,
    bounds: &[(i64, i64)],
    deadline: Option<Instant>,
    kernel: &impl Fn(&[Sample], i64, i64) -> Option<f64>,
    values: &mut [f64],
    present: &mut [bool],
) -> Result<Part, EvalError> {
    let steps = bounds.len();
    let mut part = Part {
        samples_at: vec![0; steps],
        with_samples: Vec::new(),
    };
    for (j, s) in series.iter().enumerate() {
        if j % 1024 == 1023 && deadline.is_some_and(|d| Instant::now() > d) {
            return Err(EvalError::Timeout("query execution"));
        }
        let (mut lo, mut hi) = (0, 0);
        let mut any = false;
        for (k, &(mint, maxt)) in bounds.iter().enumerate() {
            lo = selectors::after(&s.samples, mint, lo);
            hi = selectors::after(&s.samples, maxt, hi.max(lo));
            if lo >= hi {
                continue;
            }
            any = true;
            part.samples_at[k] += hi - lo;
            if let Some(v) = kernel(&s.samples[lo..hi], mint, maxt) {
                values[j * steps + k] = v;
                present[j * steps + k] = true;
            }
        }
        if any {
            part.with_samples.push(first + j);
        }
    }
    Ok(part)
}

/// A step's column of a call's tile, handed to the aggregation around the call instead
/// of a vector (see `Evaluator::fuse`): the series' labels as the vector would carry them.
pub(super) struct Column {
    pub call: *const Call,
    pub step: usize,
    pub labels: Rc<Vec<Labels>>,
}

impl Tile {
    /// The value of series `i` at step `k` of the tile, if it has one.
    pub(super) fn value(&self, i: usize, k: usize) -> Option<f64> {
        let at = i * self.steps + k;
        self.present[at].then(|| self.values[at])
    }

    fn index_of(&self, t: i64) -> Option<usize> {
        let d = t.checked_sub(self.start)?;
        if d < 0 || d % self.step != 0 {
            return None;
        }
        usize::try_from(d / self.step)
            .ok()
            .filter(|&k| k < self.steps)
    }
}

/// The value of `c` (a range function whose argument `arg_index` is a range selector) at
/// `t` from a tile, or None when `c` cannot be tiled at `t`. `kernel` gets a window's
/// samples and its `(mint, maxt]`. With `counter_info`, series whose names do not look
/// like counters raise Prometheus' info. Returns the vector and whether it must be
/// checked for duplicate label sets.
pub(super) fn tiled(
    ev: &mut Evaluator,
    c: &Call,
    arg_index: usize,
    t: i64,
    keep_name: bool,
    counter_info: bool,
    kernel: impl Fn(&[Sample], i64, i64) -> Option<f64> + Sync,
) -> Result<Option<(Vector, bool)>, EvalError> {
    let Some(Expr::MatrixSelector(ms)) = c.args.get(arg_index) else {
        return Ok(None);
    };
    let vs = &ms.selector;
    if vs.anchored || vs.smoothed || !ev.at_outer_step(t) {
        return Ok(None);
    }
    let key = c as *const Call;
    let data = ev.series_of(vs);
    let unnamed = ev.unnamed_of(vs);
    let k = match ev.tiles.get(&key).and_then(|tile| tile.index_of(t)) {
        Some(k) => k,
        None => {
            let steps = ev.outer_steps_from(t).min(TILE_STEPS);
            // Every series' window at step k has the same bounds.
            let bounds: Vec<(i64, i64)> = (0..steps)
                .map(|k| {
                    let tk = t.saturating_add(ev.query_step.saturating_mul(k as i64));
                    let maxt = ev.ref_time(vs.at, vs.offset_ms, tk);
                    (maxt.saturating_sub(ms.range_ms), maxt)
                })
                .collect();
            let tile = compute(&data, &bounds, ev.query_step, t, ev.deadline, &kernel)?;
            if counter_info {
                // One shared name answers for every series: look at it once.
                for &i in &tile.with_samples {
                    super::functions::non_counter_info(ev, &data[i].labels);
                    if unnamed.1 {
                        break;
                    }
                }
            }
            ev.tiles.insert(key, tile);
            0
        }
    };
    let n = ev.tiles[&key].samples_at[k];
    // Asked by the aggregation around this call, and no two series can share labels once
    // the name is gone: hand over the column instead of a vector.
    if ev.fuse == Some(key)
        && !keep_name
        && unnamed.1
        && let Some(labels) = &unnamed.0
    {
        ev.fused = Some(Column {
            call: key,
            step: k,
            labels: labels.clone(),
        });
        ev.account(n)?;
        return Ok(Some((Vec::new(), false)));
    }
    let tile = &ev.tiles[&key];
    let steps = tile.steps;
    let mut out = Vec::new();
    for (i, s) in data.iter().enumerate() {
        if !tile.present[i * steps + k] {
            continue;
        }
        let labels: Labels = match (&unnamed.0, keep_name) {
            (Some(u), false) => u[i].clone(),
            (None, false) => s.labels.without_name(),
            (_, true) => s.labels.clone(),
        };
        out.push(InstantSample {
            labels,
            t,
            v: tile.values[i * steps + k],
        });
    }
    ev.account(n)?;
    // Dropping the name can merge series only when they carried several names.
    Ok(Some((out, !keep_name && !unnamed.1)))
}
