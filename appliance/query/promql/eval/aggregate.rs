//! Aggregation operators (`sum`, `avg`, `min`, `max`, `count`, `group`, `stddev`, `stdvar`,
//! `topk`, `bottomk`, `quantile`, `count_values`, `limitk`, `limit_ratio`) with `by`/`without`
//! grouping.
//! Mirrors `aggregation`/`aggregationK`/`aggregationCountValues` in promql/engine.go v3.x:
//! groups come out in the order they were first seen, sums use Kahan-Neumaier summation,
//! `avg` switches to an incremental mean only when the running sum would overflow.

use super::functions::{kahan_inc, quantile};
use super::memo::LabelMemo;
use super::tiles::Column;
use super::{EvalError, Evaluator, InstantSample, Val, Vector};
use crate::model::{Label, Labels, METRIC_NAME};
use crate::query::promql::ast::{Aggregate, AggregateOp, Call, Expr, Grouping};
use std::collections::HashMap;
use std::hash::Hasher;

pub(super) fn eval_aggregate(ev: &mut Evaluator, a: &Aggregate, t: i64) -> Result<Val, EvalError> {
    let param = match &a.param {
        Some(p) => Some(ev.eval(p, t)?),
        None => None,
    };
    // A sum (and the like) of a range function over a range selector takes the function's
    // values straight from its tile, without a vector per step (tiles.rs).
    let fusable = matches!(
        a.op,
        AggregateOp::Sum
            | AggregateOp::Avg
            | AggregateOp::Min
            | AggregateOp::Max
            | AggregateOp::Count
            | AggregateOp::Group
            | AggregateOp::Stddev
            | AggregateOp::Stdvar
    );
    ev.fuse = match &*a.expr {
        Expr::Call(c) if fusable => Some(c as *const Call),
        _ => None,
    };
    ev.fused = None;
    let input = ev.eval(&a.expr, t);
    ev.fuse = None;
    if let Some(column) = ev.fused.take() {
        input?;
        let out = aggregate_column(ev, a, &column, t);
        ev.account(out.len())?;
        return Ok(Val::Vector(out));
    }
    let input = match input? {
        Val::Vector(v) => v,
        other => {
            return Err(EvalError::Execution(format!(
                "expected instant vector in aggregation {}, got {}",
                a.op.name(),
                other.type_name()
            )));
        }
    };
    let out = match a.op {
        AggregateOp::Topk | AggregateOp::Bottomk | AggregateOp::Limitk => {
            let k = match param {
                Some(Val::Scalar(k)) => k,
                _ => return Err(param_error(a.op)),
            };
            if k.is_nan() {
                return Err(EvalError::Execution("Parameter value is NaN".into()));
            }
            // `convertibleToInt64` in promql/engine.go v3.x.
            if !(-9.223_372_036_854_776e18..=9.223_372_036_854_776e18).contains(&k) {
                return Err(EvalError::Execution(format!(
                    "Scalar value {} overflows int64",
                    super::functions::format_go_float(k)
                )));
            }
            aggregate_k(a.op, k as i64, input, &a.grouping, ev.groups_of(a))
        }
        AggregateOp::CountValues => {
            let name = match param {
                Some(Val::String(s)) => s,
                _ => return Err(param_error(a.op)),
            };
            if !valid_label_name(&name) {
                return Err(EvalError::Execution(format!("invalid label name {name:?}")));
            }
            count_values(&name, input, &a.grouping)
        }
        AggregateOp::LimitRatio => {
            let r = match param {
                Some(Val::Scalar(r)) => r,
                _ => return Err(param_error(a.op)),
            };
            if r.is_nan() {
                return Err(EvalError::Execution("Ratio value is NaN".into()));
            }
            let ratio = r.clamp(-1.0, 1.0);
            if ratio != r {
                ev.warn(format!(
                    "ratio value should be between -1 and 1, got {}, capping to {}",
                    super::functions::format_go_float(r),
                    super::functions::format_go_float(ratio)
                ));
            }
            if ratio == 0.0 {
                return Ok(Val::Vector(Vec::new()));
            }
            // Which samples a ratio keeps depends only on each sample's labels, so the
            // grouping does not change the result (engine.go `LIMIT_RATIO`).
            input
                .into_iter()
                .filter(|s| ratio_keeps(ratio, &s.labels))
                .collect()
        }
        _ => {
            let q = match (a.op, param) {
                (AggregateOp::Quantile, Some(Val::Scalar(q))) => {
                    super::functions::check_quantile(ev, q);
                    q
                }
                (AggregateOp::Quantile, _) => return Err(param_error(a.op)),
                _ => 0.0,
            };
            aggregate_simple(a.op, q, input, &a.grouping, ev.groups_of(a))
        }
    };
    let mut out = out;
    for s in &mut out {
        s.t = t;
    }
    ev.account(out.len())?;
    Ok(Val::Vector(out))
}

/// `HashRatioSampler.AddRatioSample` (promql/engine.go v3.x): a sample's place in [0, 1]
/// is its label hash over `u64::MAX`; a positive ratio keeps the samples below it, a
/// negative one the complement (`-0.25` keeps the top quarter).
fn ratio_keeps(ratio: f64, labels: &Labels) -> bool {
    let offset = prometheus_labels_hash(labels) as f64 / u64::MAX as f64;
    (ratio >= 0.0 && offset < ratio) || (ratio < 0.0 && offset >= 1.0 + ratio)
}

/// `labels.Labels.Hash()` as Prometheus 3.x release builds compute it, so that
/// `limit_ratio` keeps the same series as Prometheus. Those builds use the `stringlabels`
/// representation (a build tag in every 3.x release, the default since 3.5), whose `Hash`
/// is xxHash64 (seed 0) of the encoded label string: for each label in name order, the
/// name's length, the name, the value's length, the value; a length below 255 is one byte,
/// a longer one is 0xff and three little-endian bytes (model/labels/labels_stringlabels.go).
/// This is not `labels.StableHash` (names and values joined by 0xff), which only
/// `slicelabels` builds use for `Hash`.
fn prometheus_labels_hash(labels: &Labels) -> u64 {
    fn push_len(buf: &mut Vec<u8>, n: usize) {
        match u8::try_from(n) {
            Ok(b) if b < 255 => buf.push(b),
            _ => buf.extend_from_slice(&[255, n as u8, (n >> 8) as u8, (n >> 16) as u8]),
        }
    }
    let mut buf = Vec::with_capacity(128);
    for l in labels {
        push_len(&mut buf, l.name.len());
        buf.extend_from_slice(l.name.as_bytes());
        push_len(&mut buf, l.value.len());
        buf.extend_from_slice(l.value.as_bytes());
    }
    twox_hash::XxHash64::oneshot(0, &buf)
}

fn param_error(op: AggregateOp) -> EvalError {
    EvalError::Execution(format!("invalid parameter for aggregation {}", op.name()))
}

/// Whether `name` is a legal label name. Prometheus 3.x validates names as UTF-8 by
/// default (`model.LabelName.IsValid` under `UTF8Validation`): any non-empty valid UTF-8
/// string, and a Rust string is always valid UTF-8.
pub(super) fn valid_label_name(name: &str) -> bool {
    !name.is_empty()
}

/// The labels of a sample's group: only the `by` labels, or all but the `without` labels
/// and the metric name.
fn group_labels(l: &Labels, g: &Grouping) -> Labels {
    match g {
        Grouping::By(names) => l.keep_only(names),
        Grouping::Without(names) => l.drop_names(names),
    }
}

/// The labels of `l` that [`group_labels`] keeps, without building the set.
fn group_members<'l>(l: &'l Labels, g: &'l Grouping) -> impl Iterator<Item = &'l Label> + 'l {
    l.iter().filter(move |lab| match g {
        Grouping::By(names) => names.iter().any(|n| **n == *lab.name),
        Grouping::Without(names) => {
            &*lab.name != METRIC_NAME && !names.iter().any(|n| **n == *lab.name)
        }
    })
}

/// The groups of one aggregation node, kept across the steps of a range query (the
/// evaluator holds one per node for a batch of steps): a group is found by a hash of its
/// group labels, so a sample whose group exists costs no allocation, and an input label
/// set met at an earlier step by its address alone (`memo`).
#[derive(Default)]
pub(super) struct Groups {
    by_hash: HashMap<u64, usize>,
    /// Groups whose hash collided with an earlier, different group's.
    collided: HashMap<Labels, usize>,
    /// The group label sets, by group id.
    keys: Vec<Labels>,
    /// Group ids of the input label sets met so far.
    seen: LabelMemo<usize>,
}

impl Groups {
    fn find(&mut self, labels: &Labels, g: &Grouping) -> usize {
        let mut h = twox_hash::XxHash64::with_seed(0);
        for lab in group_members(labels, g) {
            h.write(lab.name.as_bytes());
            h.write_u8(0xff);
            h.write(lab.value.as_bytes());
            h.write_u8(0xff);
        }
        let hash = h.finish();
        let next = self.keys.len();
        match self.by_hash.get(&hash) {
            Some(&i) if group_members(labels, g).eq(self.keys[i].iter()) => return i,
            Some(_) => {
                let key = group_labels(labels, g);
                if let Some(&i) = self.collided.get(&key) {
                    return i;
                }
                self.collided.insert(key.clone(), next);
                self.keys.push(key);
            }
            None => {
                self.by_hash.insert(hash, next);
                self.keys.push(group_labels(labels, g));
            }
        }
        next
    }

    /// Groups of this step in order of first appearance: `slots[id]` is the group's
    /// place in the step's output, `usize::MAX` before it appears.
    fn assign(&mut self, input: &Vector, g: &Grouping, slots: &mut Vec<usize>) -> Vec<usize> {
        self.assign_labels(input.iter().map(|s| &s.labels), g, slots)
    }

    fn assign_labels<'l>(
        &mut self,
        labels: impl Iterator<Item = &'l Labels>,
        g: &Grouping,
        slots: &mut Vec<usize>,
    ) -> Vec<usize> {
        let mut seen = std::mem::take(&mut self.seen);
        let ids: Vec<usize> = labels
            .map(|l| seen.get(l, None, || self.find(l, g)))
            .collect();
        seen.step_done();
        self.seen = seen;
        slots.clear();
        slots.resize(self.keys.len(), usize::MAX);
        ids
    }
}

#[derive(Default)]
struct Group {
    labels: Labels,
    value: f64,
    kahan_c: f64,
    mean: f64,
    count: f64,
    incremental_mean: bool,
    values: Vec<f64>,
}

fn aggregate_simple(
    op: AggregateOp,
    q: f64,
    input: Vector,
    g: &Grouping,
    index: &mut Groups,
) -> Vector {
    let mut slots = Vec::new();
    let ids = index.assign(&input, g, &mut slots);
    accumulate(
        op,
        q,
        index,
        &mut slots,
        ids.into_iter().zip(input.iter().map(|s| s.v)),
    )
}

/// [`aggregate_simple`] over a tile column: the series with a value at this step, in
/// series order, as the call's vector would have held them.
fn aggregate_column(ev: &mut Evaluator, a: &Aggregate, column: &Column, t: i64) -> Vector {
    let tile = &ev.tiles[&column.call];
    let index = ev.groups.entry(a as *const Aggregate).or_default();
    let present: Vec<(usize, f64)> = column
        .labels
        .iter()
        .enumerate()
        .filter_map(|(i, _)| tile.value(i, column.step).map(|v| (i, v)))
        .collect();
    let mut slots = Vec::new();
    let ids = index.assign_labels(
        present.iter().map(|&(i, _)| &column.labels[i]),
        &a.grouping,
        &mut slots,
    );
    let mut out = accumulate(
        a.op,
        0.0,
        index,
        &mut slots,
        ids.into_iter().zip(present.iter().map(|&(_, v)| v)),
    );
    for s in &mut out {
        s.t = t;
    }
    out
}

/// The groups' values from `(group id, sample value)` in input order; `slots` is sized to
/// the groups and unset (`usize::MAX`). Groups come out in order of first appearance.
fn accumulate(
    op: AggregateOp,
    q: f64,
    index: &Groups,
    slots: &mut [usize],
    samples: impl Iterator<Item = (usize, f64)>,
) -> Vector {
    let mut groups: Vec<Group> = Vec::new();
    for (id, f) in samples {
        let gi = match slots[id] {
            i if i != usize::MAX => i,
            _ => {
                slots[id] = groups.len();
                // The first sample initialises the group, as in Prometheus.
                let mut grp = Group {
                    labels: index.keys[id].clone(),
                    value: f,
                    mean: f,
                    count: 1.0,
                    ..Group::default()
                };
                match op {
                    // Welford from zero, so that a lone NaN yields NaN (aggregators.test).
                    AggregateOp::Stddev | AggregateOp::Stdvar => {
                        grp.value = 0.0;
                        grp.mean = 0.0;
                        grp.count = 1.0;
                        let delta = f - grp.mean;
                        grp.mean += delta / grp.count;
                        grp.value += delta * (f - grp.mean);
                    }
                    AggregateOp::Group | AggregateOp::Count => grp.value = 1.0,
                    AggregateOp::Quantile => grp.values.push(f),
                    _ => {}
                }
                groups.push(grp);
                continue;
            }
        };
        let grp = &mut groups[gi];
        match op {
            AggregateOp::Sum => {
                (grp.value, grp.kahan_c) = kahan_inc(f, grp.value, grp.kahan_c);
            }
            AggregateOp::Avg => {
                grp.count += 1.0;
                if !grp.incremental_mean {
                    let (nv, nc) = kahan_inc(f, grp.value, grp.kahan_c);
                    if !nv.is_infinite() {
                        grp.value = nv;
                        grp.kahan_c = nc;
                        continue;
                    }
                    // The sum would overflow: continue with an incremental mean.
                    grp.incremental_mean = true;
                    grp.mean = grp.value / (grp.count - 1.0);
                    grp.kahan_c /= grp.count - 1.0;
                }
                let qf = (grp.count - 1.0) / grp.count;
                (grp.mean, grp.kahan_c) = kahan_inc(f / grp.count, qf * grp.mean, qf * grp.kahan_c);
            }
            AggregateOp::Count => grp.value += 1.0,
            AggregateOp::Group => {}
            AggregateOp::Min if grp.value > f || grp.value.is_nan() => grp.value = f,
            AggregateOp::Max if grp.value < f || grp.value.is_nan() => grp.value = f,
            AggregateOp::Stddev | AggregateOp::Stdvar => {
                grp.count += 1.0;
                let delta = f - grp.mean;
                grp.mean += delta / grp.count;
                grp.value += delta * (f - grp.mean);
            }
            AggregateOp::Quantile => grp.values.push(f),
            _ => {}
        }
    }
    groups
        .into_iter()
        .map(|grp| {
            let v = match op {
                AggregateOp::Sum => grp.value + grp.kahan_c,
                AggregateOp::Avg => {
                    if grp.incremental_mean {
                        grp.mean + grp.kahan_c
                    } else {
                        grp.value / grp.count + grp.kahan_c / grp.count
                    }
                }
                AggregateOp::Stdvar => grp.value / grp.count,
                AggregateOp::Stddev => (grp.value / grp.count).sqrt(),
                AggregateOp::Quantile => {
                    let mut vals = grp.values;
                    quantile(q, &mut vals)
                }
                _ => grp.value,
            };
            InstantSample {
                labels: grp.labels,
                t: 0,
                v,
            }
        })
        .collect()
}

/// `topk`/`bottomk`/`limitk`: per group, the k largest/smallest/first samples with their
/// own labels. NaN ranks below every number for topk and above for bottomk, and each
/// group's output is sorted best first, as Prometheus' heaps deliver it.
fn aggregate_k(op: AggregateOp, k: i64, input: Vector, g: &Grouping, index: &mut Groups) -> Vector {
    if k < 1 {
        return Vec::new();
    }
    let k = usize::try_from(k).unwrap_or(usize::MAX);
    let mut slots = Vec::new();
    let ids = index.assign(&input, g, &mut slots);
    let mut groups: Vec<Vec<InstantSample>> = Vec::new();
    for (s, id) in input.into_iter().zip(ids) {
        if slots[id] == usize::MAX {
            slots[id] = groups.len();
            groups.push(Vec::new());
        }
        groups[slots[id]].push(s);
    }
    let mut out = Vec::new();
    for grp in groups {
        let cmp = match op {
            AggregateOp::Topk => cmp_desc_nan_last,
            AggregateOp::Bottomk => cmp_asc_nan_last,
            _ => {
                out.extend(grp.into_iter().take(k));
                continue;
            }
        };
        // The first k of a stable sort: ties keep input order, so the position breaks them.
        let mut ranked: Vec<(usize, InstantSample)> = grp.into_iter().enumerate().collect();
        let by_rank = |a: &(usize, InstantSample), b: &(usize, InstantSample)| {
            cmp(a.1.v, b.1.v).then(a.0.cmp(&b.0))
        };
        if k < ranked.len() {
            ranked.select_nth_unstable_by(k - 1, by_rank);
            ranked.truncate(k);
        }
        ranked.sort_unstable_by(by_rank);
        out.extend(ranked.into_iter().map(|(_, s)| s));
    }
    out
}

fn cmp_desc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal),
    }
}

fn cmp_asc_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Greater,
        (false, true) => std::cmp::Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal),
    }
}

/// `count_values("label", v)`: per group, how many samples have each value; the value is
/// written into `label` in Go's shortest float form.
fn count_values(name: &str, input: Vector, g: &Grouping) -> Vector {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<InstantSample> = Vec::new();
    for s in input {
        let mut b = group_labels(&s.labels, g).into_builder();
        b.set(name, &super::functions::format_go_float(s.v));
        let key = b.build();
        match index.get(&key) {
            Some(&i) => out[i].v += 1.0,
            None => {
                index.insert(key.clone(), out.len());
                out.push(InstantSample {
                    labels: key,
                    t: 0,
                    v: 1.0,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected hashes computed independently, with Python's `xxhash` package (4.1.0) over
    /// the stringlabels encoding, not with this code.
    #[test]
    fn labels_hash_is_prometheus_stringlabels_hash() {
        let cases: [(&[(&str, &str)], u64); 4] = [
            (&[], 0xef46db3751d8e999),
            (&[("__name__", "up")], 0xecd75f13400abdf5),
            (
                &[
                    ("__name__", "http_requests_total"),
                    ("job", "api"),
                    ("instance", "a:9100"),
                    ("code", "200"),
                ],
                0xe4133f9581a31d93,
            ),
            (
                &[("__name__", "température"), ("ville", "Zürich")],
                0x81aaaca6f6a24cb9,
            ),
        ];
        for (pairs, want) in cases {
            let labels = Labels::from_pairs(pairs.iter().copied());
            assert_eq!(prometheus_labels_hash(&labels), want, "{labels}");
        }
        // A value of 255 bytes or more takes the four-byte length.
        let long = "v".repeat(300);
        let labels = Labels::from_pairs([("__name__", "x"), ("long", long.as_str())]);
        assert_eq!(prometheus_labels_hash(&labels), 0x85e8fc73b1980575);
    }

    #[test]
    fn ratio_keeps_samples_by_their_place_in_the_hash_range() {
        // `up` hashes to 0.9252 of the range, the four-label series to 0.8909.
        let up = Labels::from_pairs([("__name__", "up")]);
        let req = Labels::from_pairs([
            ("__name__", "http_requests_total"),
            ("code", "200"),
            ("instance", "a:9100"),
            ("job", "api"),
        ]);
        assert!(!ratio_keeps(0.9, &up));
        assert!(ratio_keeps(0.93, &up));
        assert!(ratio_keeps(0.9, &req));
        assert!(!ratio_keeps(0.89, &req));
        // The complement: -0.1 keeps offsets at or above 0.9.
        assert!(ratio_keeps(-0.1, &up));
        assert!(!ratio_keeps(-0.1, &req));
        assert!(ratio_keeps(1.0, &up) && ratio_keeps(-1.0, &up));
    }

    #[test]
    fn groups_keep_their_ids_across_steps() {
        let by_job = Grouping::By(vec!["job".into()]);
        let series =
            |i: usize, job: &str| Labels::from_pairs([("i", i.to_string().as_str()), ("job", job)]);
        let input: Vector = (0..10)
            .map(|i| InstantSample {
                labels: series(i, if i % 3 == 0 { "x" } else { "y" }),
                t: 0,
                v: 1.0,
            })
            .collect();
        let mut groups = Groups::default();
        for _ in 0..5 {
            let mut slots = Vec::new();
            let ids = groups.assign(&input, &by_job, &mut slots);
            assert_eq!(ids, [0, 1, 1, 0, 1, 1, 0, 1, 1, 0]);
            assert_eq!(slots, [usize::MAX, usize::MAX]);
        }
        assert_eq!(groups.keys.len(), 2);
    }
}
