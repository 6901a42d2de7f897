//! PromQL functions: dispatch on `Call.func`, the range-vector kernels (`rate` and the
//! extrapolation of promql/functions.go v3.x, `irate`/`idelta`, the `*_over_time` family
//! including `mad_`, `ts_of_*_over_time` and `double_exponential_smoothing`, `deriv`,
//! `predict_linear`, `changes`, `resets`), the instant-vector functions (math and trig,
//! `clamp*`, `round`, date functions, `label_replace`/`label_join`, `sort*`,
//! `histogram_quantile(s)` and `histogram_fraction` over classic `le` buckets), the scalar
//! ones (`time`, `pi`, `scalar`, `start`/`end`/`step`/`range`, `min_of`/`max_of`) and
//! `vector`, `timestamp`, `absent*`. Kernels are plain functions over borrowed sample
//! slices. Annotations (invalid quantile, malformed `le`, forced monotonicity, possible
//! non-counter) are raised here with Prometheus' wording.
//!
//! Functions drop the metric name except `last_over_time`, `first_over_time`, `sort*`,
//! `label_replace` and `label_join`, as Prometheus does without delayed name removal.
//! Native histograms are not supported (the store holds floats only).

use super::binary::check_unique;
use super::{EvalError, Evaluator, InstantSample, MatrixVal, Val, Vector};
use crate::model::{Labels, METRIC_NAME, MatchOp, Sample};
use crate::query::promql::ast::{Call, Expr};
use std::collections::HashMap;

pub(super) fn eval_call(ev: &mut Evaluator, c: &Call, t: i64) -> Result<Val, EvalError> {
    // Whether the result may hold two series with the same labels and must be checked:
    // functions that only drop the metric name can collide only when their input held
    // several names, so the kernels below clear this when it did not.
    let mut check = true;
    // Within one step too: nested calls can each take long (`label_join` doubling a value).
    ev.check_timeout()?;
    check_extended_selectors(c)?;
    let out = 'value: {
        match c.func {
            "time" => return Ok(Val::Scalar(t as f64 / 1000.0)),
            "pi" => return Ok(Val::Scalar(std::f64::consts::PI)),
            // The query's own parameters in seconds (Prometheus 3.x experimental functions).
            "start" => return Ok(Val::Scalar(ev.query_start as f64 / 1000.0)),
            "end" => return Ok(Val::Scalar(ev.query_end as f64 / 1000.0)),
            "step" => return Ok(Val::Scalar(ev.query_step as f64 / 1000.0)),
            "range" => {
                let r = ev.query_end as f64 - ev.query_start as f64;
                return Ok(Val::Scalar(r / 1000.0));
            }
            "min_of" | "max_of" => {
                let a = scalar_arg(ev, c, 0, t)?;
                let b = scalar_arg(ev, c, 1, t)?;
                // Go's math.Min/Max: NaN propagates.
                let v = if c.func == "min_of" {
                    go_min(a, b)
                } else {
                    go_max(a, b)
                };
                return Ok(Val::Scalar(v));
            }
            "vector" => {
                let v = scalar_arg(ev, c, 0, t)?;
                vec![InstantSample {
                    labels: Labels::empty(),
                    t,
                    v,
                }]
            }
            "scalar" => {
                let vec = vector_arg(ev, c, 0, t)?;
                let v = if vec.len() == 1 { vec[0].v } else { f64::NAN };
                return Ok(Val::Scalar(v));
            }
            "timestamp" => timestamp(ev, c, t)?,
            "info" => return super::info::eval_info(ev, c, t),
            "absent" => {
                let vec = vector_arg(ev, c, 0, t)?;
                if vec.is_empty() {
                    vec![InstantSample {
                        labels: absent_labels(c.args.first()),
                        t,
                        v: 1.0,
                    }]
                } else {
                    Vec::new()
                }
            }
            "absent_over_time" => {
                let m = matrix_arg(ev, c, 0, t)?;
                if m.windows.is_empty() {
                    vec![InstantSample {
                        labels: absent_labels(c.args.first()),
                        t,
                        v: 1.0,
                    }]
                } else {
                    Vec::new()
                }
            }
            "rate" | "increase" | "delta" => {
                let is_counter = c.func != "delta";
                let is_rate = c.func == "rate";
                let kernel = |s: &[Sample], mint, maxt| {
                    extrapolated_rate(s, mint, maxt, is_counter, is_rate)
                };
                if let Some((v, c)) = super::tiles::tiled(ev, c, 0, t, false, is_counter, kernel)? {
                    check = c;
                    break 'value v;
                }
                let m = matrix_arg(ev, c, 0, t)?;
                if is_counter {
                    non_counter_infos(ev, &m);
                }
                rollup(&mut check, &m, t, false, |s| {
                    if m.anchored {
                        anchored_rate(s, m.mint, m.maxt, is_counter, is_rate)
                    } else if m.smoothed {
                        smoothed_rate(s, m.mint, m.maxt, is_counter, is_rate)
                    } else {
                        extrapolated_rate(s, m.mint, m.maxt, is_counter, is_rate)
                    }
                })
            }
            "irate" | "idelta" => {
                let is_rate = c.func == "irate";
                let kernel = |s: &[Sample], _, _| instant_value(s, is_rate);
                if let Some((v, c)) = super::tiles::tiled(ev, c, 0, t, false, false, kernel)? {
                    check = c;
                    break 'value v;
                }
                let m = matrix_arg(ev, c, 0, t)?;
                rollup(&mut check, &m, t, false, |s| instant_value(s, is_rate))
            }
            "avg_over_time"
            | "min_over_time"
            | "max_over_time"
            | "sum_over_time"
            | "count_over_time"
            | "last_over_time"
            | "first_over_time"
            | "present_over_time"
            | "stddev_over_time"
            | "stdvar_over_time"
            | "changes"
            | "resets"
            | "deriv"
            | "ts_of_last_over_time"
            | "ts_of_first_over_time"
            | "ts_of_min_over_time"
            | "ts_of_max_over_time" => {
                let keep_name = matches!(c.func, "last_over_time" | "first_over_time");
                // Samples standing for rollup buckets carry counts (see `Want::Count`).
                let counted = matches!(c.args.first(), Some(Expr::MatrixSelector(ms))
                if ev.rollup_counts.contains(&(&ms.selector as *const _)));
                let kernel: fn(&[Sample]) -> Option<f64> = match c.func {
                    "count_over_time" if counted => sum_over_time,
                    "avg_over_time" => avg_over_time,
                    "min_over_time" => min_over_time,
                    "max_over_time" => max_over_time,
                    "sum_over_time" => sum_over_time,
                    "count_over_time" => |s| Some(s.len() as f64),
                    "last_over_time" => |s| s.last().map(|x| x.v),
                    "first_over_time" => |s| s.first().map(|x| x.v),
                    "ts_of_last_over_time" => |s| s.last().map(|x| x.t as f64 / 1000.0),
                    "ts_of_first_over_time" => |s| s.first().map(|x| x.t as f64 / 1000.0),
                    "present_over_time" => |_| Some(1.0),
                    // The latest sample holding the extreme value (ties go to the later one).
                    "ts_of_min_over_time" => |s| ts_of_extreme(s, |cur, best| cur <= best),
                    "ts_of_max_over_time" => |s| ts_of_extreme(s, |cur, best| cur >= best),
                    "stddev_over_time" => |s| stdvar_over_time(s).map(f64::sqrt),
                    "stdvar_over_time" => stdvar_over_time,
                    "changes" => changes,
                    "resets" => resets,
                    _ => deriv,
                };
                let tile_kernel = |s: &[Sample], _, _| kernel(s);
                if let Some((v, c)) =
                    super::tiles::tiled(ev, c, 0, t, keep_name, false, tile_kernel)?
                {
                    check = c;
                    break 'value v;
                }
                let m = matrix_arg(ev, c, 0, t)?;
                rollup(&mut check, &m, t, keep_name, kernel)
            }
            "quantile_over_time" => {
                let q = scalar_arg(ev, c, 0, t)?;
                check_quantile(ev, q);
                let m = matrix_arg(ev, c, 1, t)?;
                let mut buf = Vec::new();
                rollup(&mut check, &m, t, false, |s| {
                    buf.clear();
                    buf.extend(s.iter().map(|x| x.v));
                    Some(quantile(q, &mut buf))
                })
            }
            "mad_over_time" => {
                let m = matrix_arg(ev, c, 0, t)?;
                let mut buf = Vec::new();
                rollup(&mut check, &m, t, false, |s| Some(mad(s, &mut buf)))
            }
            "double_exponential_smoothing" => {
                let m = matrix_arg(ev, c, 0, t)?;
                let sf = scalar_arg(ev, c, 1, t)?;
                let tf = scalar_arg(ev, c, 2, t)?;
                // Go's %f: six decimals.
                if sf <= 0.0 || sf >= 1.0 {
                    return Err(EvalError::BadData(format!(
                        "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
                    )));
                }
                if tf <= 0.0 || tf >= 1.0 {
                    return Err(EvalError::BadData(format!(
                        "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
                    )));
                }
                rollup(&mut check, &m, t, false, |s| {
                    double_exponential_smoothing(s, sf, tf)
                })
            }
            "predict_linear" => {
                let m = matrix_arg(ev, c, 0, t)?;
                let d = scalar_arg(ev, c, 1, t)?;
                rollup(&mut check, &m, t, false, |s| {
                    if s.len() < 2 {
                        return None;
                    }
                    let (slope, intercept) = linear_regression(s, t);
                    Some(slope * d + intercept)
                })
            }
            "abs" | "ceil" | "floor" | "exp" | "sqrt" | "ln" | "log2" | "log10" | "sgn"
            | "acos" | "acosh" | "asin" | "asinh" | "atan" | "atanh" | "cos" | "cosh" | "sin"
            | "sinh" | "tan" | "tanh" | "deg" | "rad" => {
                let f: fn(f64) -> f64 = match c.func {
                    "abs" => f64::abs,
                    "ceil" => f64::ceil,
                    "floor" => f64::floor,
                    "exp" => f64::exp,
                    "sqrt" => f64::sqrt,
                    "ln" => f64::ln,
                    "log2" => f64::log2,
                    "log10" => f64::log10,
                    "sgn" => |v| {
                        if v < 0.0 {
                            -1.0
                        } else if v > 0.0 {
                            1.0
                        } else {
                            v
                        }
                    },
                    "acos" => f64::acos,
                    "acosh" => f64::acosh,
                    "asin" => f64::asin,
                    "asinh" => f64::asinh,
                    "atan" => f64::atan,
                    "atanh" => f64::atanh,
                    "cos" => f64::cos,
                    "cosh" => f64::cosh,
                    "sin" => f64::sin,
                    "sinh" => f64::sinh,
                    "tan" => f64::tan,
                    "tanh" => f64::tanh,
                    "deg" => |v| v * 180.0 / std::f64::consts::PI,
                    _ => |v| v * std::f64::consts::PI / 180.0,
                };
                map_values(&mut check, vector_arg(ev, c, 0, t)?, t, f)
            }
            "round" => {
                let vec = vector_arg(ev, c, 0, t)?;
                let to_nearest = if c.args.len() > 1 {
                    scalar_arg(ev, c, 1, t)?
                } else {
                    1.0
                };
                // Mirrors funcRound: round half up to a multiple of `to_nearest`.
                let inv = 1.0 / to_nearest;
                map_values(&mut check, vec, t, |v| (v * inv + 0.5).floor() / inv)
            }
            "clamp" => {
                let vec = vector_arg(ev, c, 0, t)?;
                let lo = scalar_arg(ev, c, 1, t)?;
                let hi = scalar_arg(ev, c, 2, t)?;
                if hi < lo {
                    Vec::new()
                } else {
                    map_values(&mut check, vec, t, |v| go_max(lo, go_min(hi, v)))
                }
            }
            "clamp_min" => {
                let vec = vector_arg(ev, c, 0, t)?;
                let lo = scalar_arg(ev, c, 1, t)?;
                map_values(&mut check, vec, t, |v| go_max(lo, v))
            }
            "clamp_max" => {
                let vec = vector_arg(ev, c, 0, t)?;
                let hi = scalar_arg(ev, c, 1, t)?;
                map_values(&mut check, vec, t, |v| go_min(hi, v))
            }
            "minute" | "hour" | "day_of_week" | "day_of_month" | "day_of_year"
            | "days_in_month" | "month" | "year" => {
                let f = date_fn(c.func);
                if c.args.is_empty() {
                    vec![InstantSample {
                        labels: Labels::empty(),
                        t,
                        v: f(t.div_euclid(1000)),
                    }]
                } else {
                    // Go's `time.Unix(int64(f), 0)`; Rust's `as` saturates where Go's conversion
                    // is undefined, which is only reachable for NaN and huge values.
                    map_values(&mut check, vector_arg(ev, c, 0, t)?, t, |v| f(v as i64))
                }
            }
            "sort" | "sort_desc" => {
                // Reordering keeps the (unique) input label sets.
                check = false;
                let mut vec = vector_arg(ev, c, 0, t)?;
                let desc = c.func == "sort_desc";
                // NaN sorts last either way (functions.test `sort`/`sort_desc`).
                vec.sort_by(|a, b| match (a.v.is_nan(), b.v.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    (true, false) => std::cmp::Ordering::Greater,
                    (false, true) => std::cmp::Ordering::Less,
                    _ if desc => b.v.partial_cmp(&a.v).unwrap_or(std::cmp::Ordering::Equal),
                    _ => a.v.partial_cmp(&b.v).unwrap_or(std::cmp::Ordering::Equal),
                });
                for s in &mut vec {
                    s.t = t;
                }
                vec
            }
            "sort_by_label" | "sort_by_label_desc" => {
                check = false;
                let mut vec = vector_arg(ev, c, 0, t)?;
                let mut names = Vec::new();
                for i in 1..c.args.len() {
                    names.push(string_arg(ev, c, i, t)?);
                }
                let desc = c.func == "sort_by_label_desc";
                // Mirrors funcSortByLabel(Desc): natural order of the named labels' values, then
                // the whole label set; `_desc` reverses both.
                vec.sort_by(|a, b| {
                    let mut ord = std::cmp::Ordering::Equal;
                    for n in &names {
                        let (x, y) = (a.labels.get(n).unwrap_or(""), b.labels.get(n).unwrap_or(""));
                        if x == y {
                            continue;
                        }
                        ord = if natural_less(x, y) {
                            std::cmp::Ordering::Less
                        } else {
                            std::cmp::Ordering::Greater
                        };
                        break;
                    }
                    if ord == std::cmp::Ordering::Equal {
                        ord = a.labels.cmp(&b.labels);
                    }
                    if desc { ord.reverse() } else { ord }
                });
                for s in &mut vec {
                    s.t = t;
                }
                vec
            }
            "label_replace" => label_replace(ev, c, t)?,
            "label_join" => label_join(ev, c, t)?,
            "histogram_quantile" => {
                let q = scalar_arg(ev, c, 0, t)?;
                let vec = vector_arg(ev, c, 1, t)?;
                check_quantile(ev, q);
                let mut out = Vec::new();
                for mut h in classic_histograms(ev, vec) {
                    let v = bucket_quantile(ev, q, &h.name, &mut h.buckets);
                    out.push(InstantSample {
                        labels: h.labels,
                        t,
                        v,
                    });
                }
                out
            }
            "histogram_quantiles" => {
                let vec = vector_arg(ev, c, 0, t)?;
                let label = string_arg(ev, c, 1, t)?;
                let mut qs = Vec::new();
                for i in 2..c.args.len() {
                    qs.push(scalar_arg(ev, c, i, t)?);
                }
                if vec.iter().any(|s| s.labels.get(&label).is_some()) {
                    return Err(EvalError::Execution(format!(
                        "label {label:?} already exists in the input of histogram_quantiles()"
                    )));
                }
                for &q in &qs {
                    check_quantile(ev, q);
                }
                let mut out = Vec::new();
                for mut h in classic_histograms(ev, vec) {
                    for &q in &qs {
                        let mut b = h.labels.clone().into_builder();
                        b.set(&label, &format_openmetrics_float(q));
                        let v = bucket_quantile(ev, q, &h.name, &mut h.buckets);
                        out.push(InstantSample {
                            labels: b.build(),
                            t,
                            v,
                        });
                    }
                }
                out
            }
            "histogram_fraction" => {
                let lower = scalar_arg(ev, c, 0, t)?;
                let upper = scalar_arg(ev, c, 1, t)?;
                let vec = vector_arg(ev, c, 2, t)?;
                classic_histograms(ev, vec)
                    .into_iter()
                    .map(|mut h| InstantSample {
                        labels: h.labels,
                        t,
                        v: bucket_fraction(lower, upper, &mut h.buckets),
                    })
                    .collect()
            }
            // They read native histograms, which Picket does not store; on floats Prometheus
            // returns nothing, which would pass for "no data" on a dashboard.
            "histogram_avg" | "histogram_count" | "histogram_stddev" | "histogram_stdvar"
            | "histogram_sum" => {
                return Err(EvalError::BadData(format!(
                    "function {:?} works on native histograms, which Picket does not support",
                    c.func
                )));
            }
            other => {
                return Err(EvalError::BadData(format!(
                    "function {other:?} is not supported"
                )));
            }
        }
    };
    if check {
        check_unique(&out)?;
    }
    ev.account(out.len())?;
    Ok(Val::Vector(out))
}

fn arg(c: &Call, i: usize) -> Result<&Expr, EvalError> {
    c.args.get(i).ok_or_else(|| {
        EvalError::BadData(format!(
            "expected at least {} argument(s) in call to {:?}, got {}",
            i + 1,
            c.func,
            c.args.len()
        ))
    })
}

fn wrong_type(c: &Call, want: &str, got: &Val) -> EvalError {
    EvalError::Execution(format!(
        "expected type {want} in call to function {:?}, got {}",
        c.func,
        got.type_name()
    ))
}

fn vector_arg(ev: &mut Evaluator, c: &Call, i: usize, t: i64) -> Result<Vector, EvalError> {
    match ev.eval(arg(c, i)?, t)? {
        Val::Vector(v) => Ok(v),
        other => Err(wrong_type(c, "instant vector", &other)),
    }
}

fn scalar_arg(ev: &mut Evaluator, c: &Call, i: usize, t: i64) -> Result<f64, EvalError> {
    match ev.eval(arg(c, i)?, t)? {
        Val::Scalar(v) => Ok(v),
        other => Err(wrong_type(c, "scalar", &other)),
    }
}

fn string_arg(ev: &mut Evaluator, c: &Call, i: usize, t: i64) -> Result<String, EvalError> {
    match ev.eval(arg(c, i)?, t)? {
        Val::String(v) => Ok(v),
        other => Err(wrong_type(c, "string", &other)),
    }
}

fn matrix_arg(ev: &mut Evaluator, c: &Call, i: usize, t: i64) -> Result<MatrixVal, EvalError> {
    match ev.eval(arg(c, i)?, t)? {
        Val::Matrix(m) => Ok(m),
        other => Err(wrong_type(c, "range vector", &other)),
    }
}

/// Applies `f` to every window with at least one sample; `None` drops the series.
/// Clears `check` when the result cannot hold duplicate label sets.
fn rollup(
    check: &mut bool,
    m: &MatrixVal,
    t: i64,
    keep_name: bool,
    mut f: impl FnMut(&[Sample]) -> Option<f64>,
) -> Vector {
    *check = !keep_name && !m.one_name && names_vary(m.iter().map(|(l, _)| l));
    let mut out = Vec::with_capacity(m.windows.len());
    if keep_name {
        for (labels, samples) in m.iter() {
            if samples.is_empty() {
                continue;
            }
            if let Some(v) = f(samples) {
                out.push(InstantSample {
                    labels: labels.clone(),
                    t,
                    v,
                });
            }
        }
    } else {
        for (labels, samples) in m.iter_unnamed() {
            if samples.is_empty() {
                continue;
            }
            if let Some(v) = f(samples) {
                out.push(InstantSample { labels, t, v });
            }
        }
    }
    out
}

/// `NewPossibleNonCounterInfo`, raised by promql/engine.go v3.x for rate and increase
/// over series whose name does not look like a counter's.
pub(super) fn non_counter_info(ev: &mut Evaluator, labels: &Labels) {
    let name = labels.metric_name().unwrap_or("");
    if !name.is_empty()
        && !["_total", "_sum", "_count", "_bucket"]
            .iter()
            .any(|sfx| name.ends_with(sfx))
    {
        ev.info(format!(
            "metric might not be a counter, name does not end in _total/_sum/_count/_bucket: {name:?}"
        ));
    }
}

/// [`non_counter_info`] for the series of a step's windows that hold samples.
fn non_counter_infos(ev: &mut Evaluator, m: &MatrixVal) {
    let mut windows = m.iter().filter(|(_, samples)| !samples.is_empty());
    if m.one_name {
        // Every series carries the same name: one look answers for all.
        if let Some((labels, _)) = windows.next() {
            non_counter_info(ev, labels);
        }
    } else {
        windows.for_each(|(labels, _)| non_counter_info(ev, labels));
    }
}

/// Whether the label sets carry more than one metric name (absent counts as one). Distinct
/// label sets that share their name stay distinct once it is dropped.
pub(super) fn names_vary<'a>(mut labels: impl Iterator<Item = &'a Labels>) -> bool {
    let Some(first) = labels.next() else {
        return false;
    };
    let name = first.metric_name();
    labels.any(|l| l.metric_name() != name)
}

/// Applies `f` to every element's value and drops the metric name. Clears `check` when
/// that cannot merge two elements.
fn map_values(check: &mut bool, vec: Vector, t: i64, f: impl Fn(f64) -> f64) -> Vector {
    *check = names_vary(vec.iter().map(|s| &s.labels));
    vec.into_iter()
        .map(|s| InstantSample {
            labels: s.labels.without_name(),
            t,
            v: f(s.v),
        })
        .collect()
}

/// `timestamp(v)`: for a plain selector argument (parentheses allowed) the samples' own
/// timestamps, otherwise the evaluation time, in seconds. Mirrors the special case in
/// promql/engine.go v3.x (`e.Func.Name == "timestamp"`).
fn timestamp(ev: &mut Evaluator, c: &Call, t: i64) -> Result<Vector, EvalError> {
    let mut e = arg(c, 0)?;
    while let Expr::Paren(inner) = e {
        e = inner;
    }
    let vec = if let Expr::VectorSelector(vs) = e {
        ev.vector_selector(vs, t)?
    } else {
        vector_arg(ev, c, 0, t)?
            .into_iter()
            .map(|mut s| {
                s.t = t;
                s
            })
            .collect()
    };
    Ok(vec
        .into_iter()
        .map(|s| InstantSample {
            labels: s.labels.without_name(),
            t,
            v: s.t as f64 / 1000.0,
        })
        .collect())
}

/// The labels `absent()` reports: the selector's equality matchers, except the metric name
/// and any label matched more than once or by a non-equality matcher
/// (`createLabelsForAbsentFunction`, promql/functions.go v3.x).
fn absent_labels(e: Option<&Expr>) -> Labels {
    let matchers = match e {
        Some(Expr::VectorSelector(vs)) => &vs.matchers,
        Some(Expr::MatrixSelector(ms)) => &ms.selector.matchers,
        _ => return Labels::empty(),
    };
    let mut b = Labels::empty().into_builder();
    let mut has: Vec<&str> = Vec::new();
    for m in matchers {
        if m.name == METRIC_NAME {
            continue;
        }
        if m.op == MatchOp::Equal && !has.contains(&m.name.as_str()) {
            b.set(&m.name, &m.value);
            has.push(&m.name);
        } else {
            b.remove(&m.name);
        }
    }
    b.build()
}

/// Kahan-Neumaier summation step (`kahanSumInc`, promql/functions.go v3.x).
pub(super) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// Go's `math.Max`: NaN wins (Rust's `f64::max` ignores NaN), +0 beats -0.
pub(super) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_infinite() && a > 0.0 || b.is_infinite() && b > 0.0 {
        f64::INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { b } else { a }
    } else if a > b {
        a
    } else {
        b
    }
}

/// Go's `math.Min`: NaN wins, -0 beats +0.
pub(super) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_infinite() && a < 0.0 || b.is_infinite() && b < 0.0 {
        f64::NEG_INFINITY
    } else if a.is_nan() || b.is_nan() {
        f64::NAN
    } else if a == 0.0 && b == 0.0 {
        if a.is_sign_negative() { a } else { b }
    } else if a < b {
        a
    } else {
        b
    }
}

/// The φ-quantile of `values` with linear interpolation between ranks (`quantile`,
/// promql/quantile.go v3.x); NaN sorts first.
pub(super) fn quantile(q: f64, values: &mut [f64]) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal),
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

pub(super) use crate::model::format_go_float;

/// `rate`, `increase` and `delta` over one window `(mint, maxt]`: mirrors
/// `extrapolatedRate` in promql/functions.go v3.x. The change is corrected for counter
/// resets, then extrapolated towards the window's edges: all the way when the first/last
/// sample is within 1.1 average intervals of the edge, else by half an interval; a counter
/// is never extrapolated below zero.
pub(super) fn extrapolated_rate(
    s: &[Sample],
    mint: i64,
    maxt: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let first = s[0];
    let last = s[s.len() - 1];
    let mut result = last.v - first.v;
    if is_counter {
        let mut prev = first.v;
        for x in &s[1..] {
            if x.v < prev {
                result += prev;
            }
            prev = x.v;
        }
    }
    // Differences in f64: `mint` may be saturated far in the past by an extreme `@`.
    let secs = |a: i64, b: i64| (a as f64 - b as f64) / 1000.0;
    let mut to_start = secs(first.t, mint);
    let mut to_end = secs(maxt, last.t);
    let sampled = secs(last.t, first.t);
    let avg_interval = sampled / (s.len() - 1) as f64;
    let threshold = avg_interval * 1.1;
    if to_start >= threshold {
        to_start = avg_interval / 2.0;
    }
    if is_counter {
        let mut to_zero = to_start;
        if result > 0.0 && first.v >= 0.0 {
            to_zero = sampled * (first.v / result);
        }
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg_interval / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if is_rate {
        factor /= secs(maxt, mint);
    }
    Some(result * factor)
}

/// `anchored` and `smoothed` range selectors only make sense for some functions; upstream
/// refuses the others when the query runs, with these messages (extended_vectors.test).
fn check_extended_selectors(c: &Call) -> Result<(), EvalError> {
    for a in &c.args {
        let Expr::MatrixSelector(ms) = a else {
            continue;
        };
        let (what, allowed): (&str, &[&str]) = if ms.selector.smoothed {
            ("smoothed", &["delta", "increase", "rate"])
        } else if ms.selector.anchored {
            (
                "anchored",
                &["changes", "delta", "increase", "rate", "resets"],
            )
        } else {
            continue;
        };
        if !allowed.contains(&c.func) {
            return Err(EvalError::BadData(format!(
                "{what} modifier can only be used with: {} - not with {}",
                allowed.join(", "),
                c.func
            )));
        }
    }
    Ok(())
}

/// `rate`, `increase`, `delta` over an `anchored` window (anchor sample first): the plain
/// change from the anchor to the last sample, reset-corrected for counters, never
/// extrapolated; a lone sample changes by 0 (extended_vectors.test).
pub(super) fn anchored_rate(
    s: &[Sample],
    mint: i64,
    maxt: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let first = s.first()?;
    let last = s.last()?;
    let mut result = last.v - first.v;
    if is_counter {
        for w in s.windows(2) {
            if w[1].v < w[0].v {
                result += w[0].v;
            }
        }
    }
    if is_rate {
        result /= (maxt - mint) as f64 / 1000.0;
    }
    Some(result)
}

/// `rate`, `increase`, `delta` over a `smoothed` window: the values at `mint` and `maxt`
/// are interpolated between the samples around each edge (a counter reset between two
/// samples counts as growth from zero), or taken from the nearest sample inside when
/// there is no neighbour outside; the result is their difference (extended_vectors.test).
pub(super) fn smoothed_rate(
    s: &[Sample],
    mint: i64,
    maxt: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let first = s.first()?;
    // Cumulative values, corrected for counter resets.
    let mut cum = Vec::with_capacity(s.len());
    let mut acc = first.v;
    cum.push(acc);
    for w in s.windows(2) {
        acc += if is_counter && w[1].v < w[0].v {
            w[1].v
        } else {
            w[1].v - w[0].v
        };
        cum.push(acc);
    }
    let at = |i: usize, t: i64| {
        let (a, b) = (&s[i], &s[i + 1]);
        cum[i] + (cum[i + 1] - cum[i]) * (t - a.t) as f64 / (b.t - a.t) as f64
    };
    let left = if first.t <= mint {
        if s.len() < 2 {
            return None;
        }
        at(0, mint)
    } else if first.t > maxt {
        return None;
    } else {
        cum[0]
    };
    let j = s.partition_point(|x| x.t <= maxt).checked_sub(1)?;
    let right = if j + 1 < s.len() { at(j, maxt) } else { cum[j] };
    let mut result = right - left;
    if is_rate {
        result /= (maxt - mint) as f64 / 1000.0;
    }
    Some(result)
}

/// `irate`/`idelta`: the last two samples (`instantValue`, promql/functions.go v3.x). For
/// irate a decrease counts as a reset, so the change is the last value itself.
fn instant_value(s: &[Sample], is_rate: bool) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let prev = s[s.len() - 2];
    let last = s[s.len() - 1];
    let mut v = last.v;
    if !is_rate || last.v >= prev.v || last.v.is_nan() || prev.v.is_nan() {
        v = last.v - prev.v;
    }
    let interval = last.t.saturating_sub(prev.t);
    if interval == 0 {
        return None;
    }
    if is_rate {
        v /= interval as f64 / 1000.0;
    }
    Some(v)
}

/// Mean of the window: Kahan sum while it stays finite, incremental mean after an
/// overflow (`funcAvgOverTime`, promql/functions.go v3.x).
fn avg_over_time(s: &[Sample]) -> Option<f64> {
    let first = s.first()?;
    let (mut sum, mut count) = (first.v, 1.0);
    let (mut mean, mut c) = (0.0, 0.0);
    let mut incremental = false;
    for (i, x) in s[1..].iter().enumerate() {
        count = (i + 2) as f64;
        if !incremental {
            let (ns, nc) = kahan_inc(x.v, sum, c);
            if !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        let q = (count - 1.0) / count;
        (mean, c) = kahan_inc(x.v / count, q * mean, q * c);
    }
    Some(if incremental {
        mean + c
    } else {
        sum / count + c / count
    })
}

fn sum_over_time(s: &[Sample]) -> Option<f64> {
    let (mut sum, mut c) = (0.0, 0.0);
    for x in s {
        (sum, c) = kahan_inc(x.v, sum, c);
    }
    Some(if sum.is_infinite() { sum } else { sum + c })
}

fn min_over_time(s: &[Sample]) -> Option<f64> {
    let mut m = s.first()?.v;
    for x in &s[1..] {
        if x.v < m || m.is_nan() {
            m = x.v;
        }
    }
    Some(m)
}

fn max_over_time(s: &[Sample]) -> Option<f64> {
    let mut m = s.first()?.v;
    for x in &s[1..] {
        if x.v > m || m.is_nan() {
            m = x.v;
        }
    }
    Some(m)
}

/// Timestamp in seconds of the sample `better` prefers, scanning forward; a NaN best is
/// always replaced (`compareOverTime`, promql/functions.go v3.x).
fn ts_of_extreme(s: &[Sample], better: fn(f64, f64) -> bool) -> Option<f64> {
    let mut best = *s.first()?;
    for x in &s[1..] {
        if better(x.v, best.v) || best.v.is_nan() {
            best = *x;
        }
    }
    Some(best.t as f64 / 1000.0)
}

/// Median absolute deviation from the median (`funcMadOverTime`).
fn mad(s: &[Sample], buf: &mut Vec<f64>) -> f64 {
    // A NaN sample makes the result NaN (functions.test) rather than sorting first.
    if s.iter().any(|x| x.v.is_nan()) {
        return f64::NAN;
    }
    buf.clear();
    buf.extend(s.iter().map(|x| x.v));
    let median = quantile(0.5, buf);
    buf.clear();
    buf.extend(s.iter().map(|x| (x.v - median).abs()));
    quantile(0.5, buf)
}

/// Holt's linear smoothing, the value at the window's end
/// (`funcDoubleExponentialSmoothing`, promql/functions.go v3.x).
fn double_exponential_smoothing(s: &[Sample], sf: f64, tf: f64) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    let (mut s0, mut s1) = (0.0, s[0].v);
    let mut b = s[1].v - s[0].v;
    for (i, x) in s.iter().enumerate().skip(1) {
        let scaled = sf * x.v;
        // The trend starts as the first difference and is then smoothed.
        if i > 1 {
            b = tf * (s1 - s0) + (1.0 - tf) * b;
        }
        let y = (1.0 - sf) * (s1 + b);
        s0 = s1;
        s1 = scaled + y;
    }
    Some(s1)
}

/// Population variance with Kahan-compensated Welford updates (`funcStdvarOverTime`).
fn stdvar_over_time(s: &[Sample]) -> Option<f64> {
    if s.is_empty() {
        return None;
    }
    let (mut count, mut mean, mut c_mean, mut aux, mut c_aux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for x in s {
        count += 1.0;
        let delta = x.v - (mean + c_mean);
        (mean, c_mean) = kahan_inc(delta / count, mean, c_mean);
        (aux, c_aux) = kahan_inc(delta * (x.v - (mean + c_mean)), aux, c_aux);
    }
    Some((aux + c_aux) / count)
}

/// How often the value changed; NaN to NaN is no change (`funcChanges`).
fn changes(s: &[Sample]) -> Option<f64> {
    let mut prev = s.first()?.v;
    let mut n = 0.0;
    for x in &s[1..] {
        if x.v != prev && !(x.v.is_nan() && prev.is_nan()) {
            n += 1.0;
        }
        prev = x.v;
    }
    Some(n)
}

/// How often the value decreased (`funcResets`).
fn resets(s: &[Sample]) -> Option<f64> {
    let mut prev = s.first()?.v;
    let mut n = 0.0;
    for x in &s[1..] {
        if x.v < prev {
            n += 1.0;
        }
        prev = x.v;
    }
    Some(n)
}

fn deriv(s: &[Sample]) -> Option<f64> {
    if s.len() < 2 {
        return None;
    }
    Some(linear_regression(s, s[0].t).0)
}

/// Least-squares fit with Kahan-compensated sums, x in seconds relative to
/// `intercept_time` (`linearRegression`, promql/functions.go v3.x). A constant series has
/// slope 0, unless it is infinite.
fn linear_regression(s: &[Sample], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sum_x, mut c_x, mut sum_y, mut c_y) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sum_xy, mut c_xy, mut sum_x2, mut c_x2) = (0.0, 0.0, 0.0, 0.0);
    let init_y = s[0].v;
    let mut const_y = true;
    for (i, x) in s.iter().enumerate() {
        if const_y && i > 0 && x.v != init_y {
            const_y = false;
        }
        n += 1.0;
        let xv = (x.t as f64 - intercept_time as f64) / 1000.0;
        (sum_x, c_x) = kahan_inc(xv, sum_x, c_x);
        (sum_y, c_y) = kahan_inc(x.v, sum_y, c_y);
        (sum_xy, c_xy) = kahan_inc(xv * x.v, sum_xy, c_xy);
        (sum_x2, c_x2) = kahan_inc(xv * xv, sum_x2, c_x2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sum_x += c_x;
    sum_y += c_y;
    sum_xy += c_xy;
    sum_x2 += c_x2;
    let cov_xy = sum_xy - sum_x * sum_y / n;
    let var_x = sum_x2 - sum_x * sum_x / n;
    let slope = cov_xy / var_x;
    let intercept = sum_y / n - slope * sum_x / n;
    (slope, intercept)
}

/// The date functions over Unix seconds, in UTC.
fn date_fn(name: &str) -> fn(i64) -> f64 {
    match name {
        "minute" => |s| (s.rem_euclid(3600) / 60) as f64,
        "hour" => |s| (s.rem_euclid(86_400) / 3600) as f64,
        // 1970-01-01 was a Thursday (4).
        "day_of_week" => |s| (s.div_euclid(86_400) + 4).rem_euclid(7) as f64,
        "day_of_month" => |s| civil(s.div_euclid(86_400)).2 as f64,
        "day_of_year" => |s| {
            let days = s.div_euclid(86_400);
            let (y, _, _) = civil(days);
            (days - days_from_civil(y, 1, 1) + 1) as f64
        },
        "days_in_month" => |s| {
            let (y, m, _) = civil(s.div_euclid(86_400));
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            (days_from_civil(ny, nm, 1) - days_from_civil(y, m, 1)) as f64
        },
        "month" => |s| civil(s.div_euclid(86_400)).1 as f64,
        _ => |s| civil(s.div_euclid(86_400)).0 as f64,
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's
/// `civil_from_days`).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era.saturating_mul(400);
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y.saturating_add(1) } else { y }, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era.saturating_mul(146_097).saturating_add(doe - 719_468)
}

/// Natural order as Prometheus' `natsort.Compare` (github.com/facette/natsort): digit runs
/// compare as integers, other runs as strings; returns whether `a` sorts before `b`.
fn natural_less(a: &str, b: &str) -> bool {
    fn chunks(s: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push(&s[start..i]);
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (i, x) in ca.iter().enumerate() {
        let Some(y) = cb.get(i) else {
            return false;
        };
        let last_a = i == ca.len() - 1;
        let last_b = i == cb.len() - 1;
        match (x.parse::<i64>(), y.parse::<i64>()) {
            (Ok(xi), Ok(yi)) if xi != yi => return xi < yi,
            (Ok(_), Ok(_)) => {}
            _ if x != y => return x < y,
            _ => {}
        }
        if last_a {
            return true;
        }
        if last_b {
            return false;
        }
    }
    false
}

/// `label_replace(v, dst, replacement, src, regex)`: mirrors `funcLabelReplace`
/// (promql/functions.go v3.x); the regex is fully anchored and a non-match leaves the series
/// unchanged.
fn label_replace(ev: &mut Evaluator, c: &Call, t: i64) -> Result<Vector, EvalError> {
    let vec = vector_arg(ev, c, 0, t)?;
    let dst = string_arg(ev, c, 1, t)?;
    let repl = string_arg(ev, c, 2, t)?;
    let src = string_arg(ev, c, 3, t)?;
    let re_str = string_arg(ev, c, 4, t)?;
    let re = ev.regex(&re_str).ok_or_else(|| {
        EvalError::BadData(format!(
            "invalid regular expression in label_replace(): {re_str}"
        ))
    })?;
    if !super::aggregate::valid_label_name(&dst) {
        return Err(EvalError::BadData(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let mut out = Vec::with_capacity(vec.len());
    for mut s in vec {
        let src_val = s.labels.get(&src).unwrap_or("");
        if let Some(caps) = re.captures(src_val) {
            // Each `$` reference expands to at most the longest group. Far beyond the
            // limit the expansion is refused unbuilt; that can refuse a value that would
            // have fitted only when a group of megabytes exists but is not referenced.
            let longest = caps.iter().flatten().map(|m| m.len()).max().unwrap_or(0);
            let bound = repl
                .len()
                .saturating_add(repl.matches('$').count().saturating_mul(longest));
            if bound > 4 * MAX_LABEL_LEN {
                return Err(label_too_long());
            }
            let mut res = String::new();
            caps.expand(&repl, &mut res);
            if res.len() > MAX_LABEL_LEN {
                return Err(label_too_long());
            }
            let mut b = s.labels.clone().into_builder();
            b.set(&dst, &res);
            s.labels = b.build();
        }
        s.t = t;
        out.push(s);
    }
    Ok(out)
}

/// The longest label value Prometheus can hold: its label encoding panics beyond 2^24
/// bytes (`sizeWhenEncoded`, model/labels/labels_stringlabels.go) and the engine reports
/// the panic's message as the query's error. Checked before a value is built, this also
/// stops queries whose values grow exponentially (nested `label_join`) from exhausting
/// memory.
const MAX_LABEL_LEN: usize = 1 << 24;

fn label_too_long() -> EvalError {
    EvalError::Execution("String too long to encode as label.".into())
}

/// `label_join(v, dst, separator, src...)` (`funcLabelJoin`, promql/functions.go v3.x).
fn label_join(ev: &mut Evaluator, c: &Call, t: i64) -> Result<Vector, EvalError> {
    let vec = vector_arg(ev, c, 0, t)?;
    let dst = string_arg(ev, c, 1, t)?;
    let sep = string_arg(ev, c, 2, t)?;
    let mut srcs = Vec::new();
    for i in 3..c.args.len() {
        let s = string_arg(ev, c, i, t)?;
        if !super::aggregate::valid_label_name(&s) {
            return Err(EvalError::BadData(format!(
                "invalid source label name in label_join(): {s}"
            )));
        }
        srcs.push(s);
    }
    if !super::aggregate::valid_label_name(&dst) {
        return Err(EvalError::BadData(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let mut out = Vec::with_capacity(vec.len());
    for mut s in vec {
        let len = srcs
            .iter()
            .map(|n| s.labels.get(n).map_or(0, str::len))
            .fold(
                sep.len().saturating_mul(srcs.len().saturating_sub(1)),
                usize::saturating_add,
            );
        if len > MAX_LABEL_LEN {
            return Err(label_too_long());
        }
        let joined = srcs
            .iter()
            .map(|n| s.labels.get(n).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(&sep);
        let mut b = s.labels.clone().into_builder();
        b.set(&dst, &joined);
        s.labels = b.build();
        s.t = t;
        out.push(s);
    }
    Ok(out)
}

/// Classic histograms in `vec`: series grouped by their labels without `le` (keeping the
/// metric name for the grouping, dropping it from the result: two histograms that differ
/// only in name then clash as duplicate output series, as in Prometheus, issue 9910),
/// each with its (upper bound, cumulative count) buckets. Series without a readable `le`
/// are skipped, as Prometheus does with a warning (`funcHistogramQuantile`,
/// promql/functions.go v3.x).
///
/// Beyond Prometheus, VictoriaMetrics histograms are accepted too: series with a
/// `vmrange="<start>...<end>"` label (and no `le`) hold the count of observations in that
/// range, not a cumulative count. They are grouped by their labels without `vmrange` and
/// turned into cumulative `le` buckets as VictoriaMetrics' `vmrangeBucketsToLE` does, so
/// `histogram_quantile` and `histogram_fraction` answer as on VictoriaMetrics.
fn classic_histograms(ev: &mut Evaluator, vec: Vector) -> Vec<ClassicHistogram> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<(Labels, Vec<(f64, f64)>)> = Vec::new();
    let mut vm_index: HashMap<Labels, usize> = HashMap::new();
    let mut vm_groups: Vec<(Labels, Vec<VmRange>)> = Vec::new();
    for s in vec {
        if s.labels.get("le").is_none()
            && let Some((lo, hi)) = s.labels.get("vmrange").and_then(parse_vmrange)
        {
            let mut b = s.labels.into_builder();
            b.remove("vmrange");
            let key = b.build();
            let gi = *vm_index.entry(key.clone()).or_insert_with(|| {
                vm_groups.push((key, Vec::new()));
                vm_groups.len() - 1
            });
            vm_groups[gi].1.push((lo, hi, s.v));
            continue;
        }
        let le = s.labels.get("le");
        let Some(upper) = le.and_then(parse_go_float) else {
            ev.warn(format!(
                "bucket label \"le\" is missing or has a malformed value of {:?} for metric name {:?}",
                le.unwrap_or(""),
                s.labels.metric_name().unwrap_or("")
            ));
            continue;
        };
        let mut b = s.labels.into_builder();
        b.remove("le");
        let key = b.build();
        let gi = match index.get(&key) {
            Some(&i) => i,
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, Vec::new()));
                groups.len() - 1
            }
        };
        groups[gi].1.push((upper, s.v));
    }
    for (key, ranges) in vm_groups {
        match index.get(&key) {
            // A group with both kinds of buckets: the `le` ones win, as they are what a
            // Prometheus client exported.
            Some(_) => continue,
            None => groups.push((key, vmrange_to_le(ranges))),
        }
    }
    groups
        .into_iter()
        .map(|(labels, buckets)| ClassicHistogram {
            name: labels.metric_name().unwrap_or("").to_string(),
            labels: labels.without_name(),
            buckets,
        })
        .collect()
}

/// One classic histogram: result labels (no name, no `le`), the metric name for
/// annotations, and (upper bound, cumulative count) buckets.
struct ClassicHistogram {
    labels: Labels,
    name: String,
    buckets: Vec<(f64, f64)>,
}

/// Warns about a quantile outside [0, 1] (`NewInvalidQuantileWarning`).
pub(super) fn check_quantile(ev: &mut Evaluator, q: f64) {
    if q.is_nan() || !(0.0..=1.0).contains(&q) {
        ev.warn(format!(
            "quantile value should be between 0 and 1, got {}",
            format_go_float(q)
        ));
    }
}

/// OpenMetrics float text (`1.0`, `0.25`, `+Inf`): Go's shortest form with `.0` added to
/// integers, as Prometheus writes quantile labels.
fn format_openmetrics_float(f: f64) -> String {
    let s = format_go_float(f);
    if f.is_finite() && !s.contains(['.', 'e']) {
        format!("{s}.0")
    } else {
        s
    }
}

/// `histogram_fraction(lower, upper, buckets)` over classic buckets: the share of
/// observations in `[lower, upper]`, interpolating linearly inside finite buckets. The
/// first bucket starts at 0 when its bound is positive; observations in a bucket of
/// infinite width sit at that infinity, so such a bucket contributes nothing to a
/// finite part of it (histograms.test "no interpolation with infinite width bucket").
fn bucket_fraction(lower: f64, upper: f64, buckets: &mut [(f64, f64)]) -> f64 {
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    match buckets.last() {
        Some(b) if b.0 == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    let merged = coalesce(buckets);
    let total = merged.last().map_or(0.0, |b| b.1);
    if total == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    let rank = |v: f64| -> f64 {
        if v == f64::NEG_INFINITY {
            return 0.0;
        }
        if v == f64::INFINITY {
            return total;
        }
        let mut prev_count = 0.0;
        for (i, &(ub, count)) in merged.iter().enumerate() {
            let lb = if i > 0 {
                merged[i - 1].0
            } else if ub > 0.0 {
                0.0
            } else {
                f64::NEG_INFINITY
            };
            if v <= lb {
                return prev_count;
            }
            if v <= ub {
                if lb == f64::NEG_INFINITY {
                    return count;
                }
                if ub == f64::INFINITY {
                    return prev_count;
                }
                return prev_count + (count - prev_count) * (v - lb) / (ub - lb);
            }
            prev_count = count;
        }
        total
    };
    (rank(upper) - rank(lower)) / total
}

/// `coalesceBuckets`: buckets with equal bounds add up (input sorted by bound).
fn coalesce(buckets: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut merged: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
    for &(ub, cnt) in buckets {
        match merged.last_mut() {
            Some(last) if last.0 == ub => last.1 += cnt,
            _ => merged.push((ub, cnt)),
        }
    }
    merged
}

/// One VictoriaMetrics bucket: (range start, range end, observations in the range).
type VmRange = (f64, f64, f64);

/// Parses VictoriaMetrics' `vmrange` label, `1.000e+00...1.500e+00`, into (start, end).
fn parse_vmrange(s: &str) -> Option<(f64, f64)> {
    let (lo, hi) = s.split_once("...")?;
    let (lo, hi) = (parse_go_float(lo)?, parse_go_float(hi)?);
    (lo <= hi).then_some((lo, hi))
}

/// Per-range counts `(start, end, count)` to cumulative `(le, count)` buckets, as
/// VictoriaMetrics' `vmrangeBucketsToLE` (app/vmselect/promql/transform.go): an empty
/// bucket at the start of every range that does not continue the previous one (so the
/// quantile interpolates inside the range, not from 0), and a `+Inf` bucket at the end.
fn vmrange_to_le(mut ranges: Vec<VmRange>) -> Vec<(f64, f64)> {
    ranges.sort_by(|a, b| {
        (a.0, a.1)
            .partial_cmp(&(b.0, b.1))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut out: Vec<(f64, f64)> = Vec::with_capacity(ranges.len() * 2 + 1);
    let mut cumulative = 0.0;
    let mut prev_end: Option<f64> = None;
    for (start, end, count) in ranges {
        if !count.is_finite() || count < 0.0 {
            continue;
        }
        if prev_end != Some(start) {
            out.push((start, cumulative));
        }
        cumulative += count;
        out.push((end, cumulative));
        prev_end = Some(end);
    }
    if out.last().is_none_or(|b| b.0 != f64::INFINITY) {
        out.push((f64::INFINITY, cumulative));
    }
    out
}

/// Parses a bucket bound the way Go's `strconv.ParseFloat` reads Prometheus' `le` values.
fn parse_go_float(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// `BucketQuantile` (promql/quantile.go v3.x); buckets forced to be monotonic add an info
/// annotation naming the metric.
fn bucket_quantile(ev: &mut Evaluator, q: f64, name: &str, buckets: &mut [(f64, f64)]) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    match buckets.last() {
        Some(b) if b.0 == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    let mut merged = coalesce(buckets);
    if ensure_monotonic(&mut merged) {
        ev.info(format!(
            "input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name {name:?}"
        ));
    }
    if merged.len() < 2 {
        return f64::NAN;
    }
    let observations = merged[merged.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let b = merged[..merged.len() - 1].partition_point(|x| x.1 < rank);
    if b == merged.len() - 1 {
        return merged[merged.len() - 2].0;
    }
    if b == 0 && merged[0].0 <= 0.0 {
        return merged[0].0;
    }
    let mut start = 0.0;
    let end = merged[b].0;
    let mut count = merged[b].1;
    if b > 0 {
        start = merged[b - 1].0;
        count -= merged[b - 1].1;
        rank -= merged[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

/// `ensureMonotonicAndIgnoreSmallDeltas` with tolerance 1e-12: tiny differences and any
/// decrease are flattened to the previous count. Returns whether a real decrease was
/// flattened.
fn ensure_monotonic(buckets: &mut [(f64, f64)]) -> bool {
    let mut forced = false;
    let Some(first) = buckets.first() else {
        return false;
    };
    let mut prev = first.1;
    for b in buckets.iter_mut().skip(1) {
        let curr = b.1;
        if curr == prev {
            continue;
        }
        if almost_equal(prev, curr, 1e-12) {
            b.1 = prev;
            continue;
        }
        if curr < prev {
            b.1 = prev;
            forced = true;
            continue;
        }
        prev = curr;
    }
    forced
}

/// `almost.Equal` from Prometheus' util/almost.
fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() {
        return true;
    }
    if a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < eps
}
