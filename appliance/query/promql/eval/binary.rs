//! Binary operators: arithmetic, comparisons (filtering or `bool`), and the set operators,
//! between scalars and instant vectors, with Prometheus' vector matching (`on`/`ignoring`,
//! `group_left`/`group_right`) and its error messages. Mirrors `VectorBinop`,
//! `VectorscalarBinop`, `VectorAnd/Or/Unless` and `resultMetric` in promql/engine.go v3.x.

use super::functions::names_vary;
use super::memo::LabelMemo;
use super::{EvalError, Evaluator, InstantSample, Val, Vector, labels_string};
use crate::model::{Labels, METRIC_NAME};
use crate::query::promql::ast::{Binary, BinaryOp, Cardinality, VectorMatching};
use std::collections::{HashMap, HashSet};

pub(super) fn eval_binary(ev: &mut Evaluator, b: &Binary, t: i64) -> Result<Val, EvalError> {
    let lhs = ev.eval(&b.lhs, t)?;
    let rhs = ev.eval(&b.rhs, t)?;
    let op = b.op;
    match (lhs, rhs) {
        (Val::Scalar(l), Val::Scalar(r)) => {
            let (v, keep) = elem_op(op, l, r);
            if op.is_comparison() {
                // The parser insists on `bool` between scalars.
                return Ok(Val::Scalar(if keep { 1.0 } else { 0.0 }));
            }
            Ok(Val::Scalar(v))
        }
        (Val::Vector(l), Val::Scalar(r)) => {
            // Only dropping the name can merge series, and only when the input held
            // several names.
            let check =
                (drops_name(op) || b.return_bool) && names_vary(l.iter().map(|s| &s.labels));
            let out = vector_scalar(op, l, r, false, b.return_bool, t)?;
            if check {
                check_unique(&out)?;
            }
            Ok(Val::Vector(out))
        }
        (Val::Scalar(l), Val::Vector(r)) => {
            let check =
                (drops_name(op) || b.return_bool) && names_vary(r.iter().map(|s| &s.labels));
            let out = vector_scalar(op, r, l, true, b.return_bool, t)?;
            if check {
                check_unique(&out)?;
            }
            Ok(Val::Vector(out))
        }
        (Val::Vector(l), Val::Vector(r)) => {
            let default = VectorMatching {
                card: if op.is_set() {
                    Cardinality::ManyToMany
                } else {
                    Cardinality::OneToOne
                },
                on: false,
                labels: Vec::new(),
                include: Vec::new(),
            };
            let m = b.matching.as_ref().unwrap_or(&default);
            let mut out = match op {
                BinaryOp::And => vector_and(l, r, m),
                BinaryOp::Or => vector_or(l, r, m),
                BinaryOp::Unless => vector_unless(l, r, m),
                _ => {
                    let fill = Fill {
                        many: b.fill_left,
                        one: b.fill_right,
                    };
                    let memo = ev.matching_of(b);
                    // Checked for duplicate label sets inside, on result ids.
                    vector_binop(op, l, r, m, b.return_bool, fill, memo)?
                }
            };
            for s in &mut out {
                s.t = t;
            }
            Ok(Val::Vector(out))
        }
        (l, r) => Err(EvalError::Execution(format!(
            "binary expression must contain only scalar and instant vector types, got {} {} {}",
            l.type_name(),
            op.symbol(),
            r.type_name()
        ))),
    }
}

/// Whether the operator drops the metric name (`shouldDropMetricName`): arithmetic does,
/// comparisons and set operators do not.
fn drops_name(op: BinaryOp) -> bool {
    matches!(
        op,
        BinaryOp::Add
            | BinaryOp::Sub
            | BinaryOp::Mul
            | BinaryOp::Div
            | BinaryOp::Mod
            | BinaryOp::Pow
            | BinaryOp::Atan2
    )
}

/// One element operation: the value and whether a comparison holds (`vectorElemBinop`).
/// Comparisons yield the left value; arithmetic always keeps.
pub(super) fn elem_op(op: BinaryOp, l: f64, r: f64) -> (f64, bool) {
    match op {
        BinaryOp::Add => (l + r, true),
        BinaryOp::Sub => (l - r, true),
        BinaryOp::Mul => (l * r, true),
        BinaryOp::Div => (l / r, true),
        BinaryOp::Mod => (l % r, true),
        BinaryOp::Pow => (l.powf(r), true),
        BinaryOp::Atan2 => (l.atan2(r), true),
        BinaryOp::Eq => (l, l == r),
        BinaryOp::Ne => (l, l != r),
        BinaryOp::Gt => (l, l > r),
        BinaryOp::Lt => (l, l < r),
        BinaryOp::Ge => (l, l >= r),
        BinaryOp::Le => (l, l <= r),
        // Set operators never reach element level.
        BinaryOp::And | BinaryOp::Or | BinaryOp::Unless => (l, false),
    }
}

/// Vector op scalar (or scalar op vector when `swap`). A filtering comparison keeps the
/// vector element's own value even when the vector is on the right.
fn vector_scalar(
    op: BinaryOp,
    vec: Vector,
    scalar: f64,
    swap: bool,
    return_bool: bool,
    t: i64,
) -> Result<Vector, EvalError> {
    if op.is_set() {
        return Err(EvalError::Execution(format!(
            "set operator {:?} not allowed in binary scalar expression",
            op.symbol()
        )));
    }
    let mut out = Vec::with_capacity(vec.len());
    for mut s in vec {
        let (l, r) = if swap { (scalar, s.v) } else { (s.v, scalar) };
        let (mut v, mut keep) = elem_op(op, l, r);
        if op.is_comparison() && swap {
            v = r;
        }
        if return_bool {
            v = if keep { 1.0 } else { 0.0 };
            keep = true;
        }
        if keep {
            s.v = v;
            s.t = t;
            if drops_name(op) || return_bool {
                s.labels = s.labels.without_name();
            }
            out.push(s);
        }
    }
    Ok(out)
}

/// The match-group key of a series: the `on` labels, or all but the `ignoring` labels and
/// the metric name (`signatureFunc`).
fn signature(l: &Labels, m: &VectorMatching) -> Labels {
    if m.on {
        l.keep_only(&m.labels)
    } else {
        l.drop_names(&m.labels)
    }
}

/// What one vector/vector operation node works out from label sets, kept across the steps
/// of a batch (the evaluator holds one per node): match signatures as ids, so the sides
/// are matched on integers, and result label sets per pair of inputs.
#[derive(Default)]
pub(super) struct Matching {
    /// Signature id of each input label set.
    sig_of: LabelMemo<usize>,
    /// Signatures by content, and by id.
    sig_ids: HashMap<Labels, usize>,
    sigs: Vec<Labels>,
    /// Result labels of a (many side, one side) pair, with their id among `result_ids`
    /// (by content), so that a step's results are checked for duplicates on integers.
    results: LabelMemo<(Labels, usize)>,
    result_ids: HashMap<Labels, usize>,
    result_seen: Vec<u32>,
    /// Per-step marks by signature id, valid where they carry the step's `stamp`: the
    /// "one" side's series of each signature, and the signatures matched one-to-one.
    stamp: u32,
    one_side: Vec<(u32, usize)>,
    matched_once: Vec<u32>,
}

impl Matching {
    fn sig(&mut self, l: &Labels, m: &VectorMatching) -> usize {
        let (ids, sigs) = (&mut self.sig_ids, &mut self.sigs);
        self.sig_of.get(l, None, || {
            let sig = signature(l, m);
            *ids.entry(sig).or_insert_with_key(|sig| {
                sigs.push(sig.clone());
                sigs.len() - 1
            })
        })
    }

    /// Starts a step: marks of earlier steps no longer count, and the memos judge the
    /// step before (whether its label sets were mostly new).
    fn new_step(&mut self) {
        self.sig_of.step_done();
        self.results.step_done();
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.one_side.clear();
            self.matched_once.clear();
            self.result_seen.clear();
            self.stamp = 1;
        }
    }

    /// Marks `i` as the "one" side of `sig`; Err with the earlier one if there is one.
    fn set_one_side(&mut self, sig: usize, i: usize) -> Result<(), usize> {
        if self.one_side.len() <= sig {
            self.one_side.resize(sig + 1, (0, 0));
        }
        match self.one_side[sig] {
            (s, j) if s == self.stamp => Err(j),
            _ => {
                self.one_side[sig] = (self.stamp, i);
                Ok(())
            }
        }
    }

    fn one_side(&self, sig: usize) -> Option<usize> {
        self.one_side
            .get(sig)
            .filter(|(s, _)| *s == self.stamp)
            .map(|&(_, i)| i)
    }

    /// The id of a result label set by content.
    fn result_id(ids: &mut HashMap<Labels, usize>, l: &Labels) -> usize {
        let next = ids.len();
        *ids.entry(l.clone()).or_insert(next)
    }

    /// Fails when two of a step's results carry the same labels (`check_unique`).
    fn check_unique(&mut self, ids: &[usize]) -> Result<(), EvalError> {
        self.result_seen.resize(self.result_ids.len(), 0);
        for &id in ids {
            if std::mem::replace(&mut self.result_seen[id], self.stamp) == self.stamp {
                return Err(EvalError::Execution(
                    "vector cannot contain metrics with the same labelset".into(),
                ));
            }
        }
        Ok(())
    }

    /// Marks `sig` matched one-to-one; false when it already was at this step.
    fn match_once(&mut self, sig: usize) -> bool {
        if self.matched_once.len() <= sig {
            self.matched_once.resize(sig + 1, 0);
        }
        std::mem::replace(&mut self.matched_once[sig], self.stamp) != self.stamp
    }
}

/// Fill values of a vector/vector operation, in the frame where the left side is the
/// "many" side. Upstream swaps the operands of `group_right` but not the fill values
/// (`VectorBinop`, engine.go v3.x): `many` is always `fill_left(v)` and `one` always
/// `fill_right(v)`, so under `group_right` `fill_left` fills the right-hand side
/// (fill-modifier.test pins this).
#[derive(Debug, Clone, Copy, Default)]
struct Fill {
    many: Option<f64>,
    one: Option<f64>,
}

fn vector_binop(
    op: BinaryOp,
    lhs: Vector,
    rhs: Vector,
    m: &VectorMatching,
    return_bool: bool,
    fill: Fill,
    memo: &mut Matching,
) -> Result<Vector, EvalError> {
    let no_fill = fill.many.is_none() && fill.one.is_none();
    if (lhs.is_empty() && rhs.is_empty()) || ((lhs.is_empty() || rhs.is_empty()) && no_fill) {
        return Ok(Vec::new());
    }
    // group_right: the right side is the "many" side; swap so `rhs` is always the "one".
    let swapped = m.card == Cardinality::OneToMany;
    let (lhs, rhs) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    memo.new_step();
    for (i, rs) in rhs.iter().enumerate() {
        let sig = memo.sig(&rs.labels, m);
        if let Err(j) = memo.set_one_side(sig, i) {
            let side = if swapped { "left" } else { "right" };
            return Err(EvalError::Execution(format!(
                "found duplicate series for the match group {} on the {} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                labels_string(&memo.sigs[sig]),
                side,
                labels_string(&rs.labels),
                labels_string(&rhs[j].labels)
            )));
        }
    }
    // Per match group of a many-to-one match, the result label sets (which must differ).
    let mut matched: HashMap<usize, HashSet<Labels>> = HashMap::new();
    let mut out = Vec::new();
    let mut out_ids = Vec::new();
    // A stand-in for a missing "one" side: no labels, so `group_x(...)` labels cannot be
    // filled and are left out.
    let empty = Labels::default();
    for ls in &lhs {
        let sig = memo.sig(&ls.labels, m);
        let (rv, rlabels) = match (memo.one_side(sig), fill.one) {
            (Some(ri), _) => (rhs[ri].v, &rhs[ri].labels),
            (None, Some(v)) => (v, &empty),
            (None, None) => continue,
        };
        let (fl, fr) = if swapped { (rv, ls.v) } else { (ls.v, rv) };
        let (mut v, keep) = elem_op(op, fl, fr);
        let ids = &mut memo.result_ids;
        let (metric, id) = memo.results.get(&ls.labels, Some(rlabels), || {
            let mut metric = result_metric(&ls.labels, rlabels, op, m);
            if return_bool {
                metric = metric.without_name();
            }
            let id = Matching::result_id(ids, &metric);
            (metric, id)
        });
        // The uniqueness checks come before filtering: a comparison must fail on a
        // many-to-one match even when it would filter every sample away (operators.test).
        if m.card == Cardinality::OneToOne {
            if !memo.match_once(sig) {
                return Err(EvalError::Execution(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                        .into(),
                ));
            }
        } else {
            let set = matched.entry(sig).or_default();
            if !set.insert(metric.clone()) {
                return Err(EvalError::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches"
                        .into(),
                ));
            }
        }
        if return_bool {
            v = if keep { 1.0 } else { 0.0 };
        } else if !keep {
            continue;
        }
        out_ids.push(id);
        out.push(InstantSample {
            labels: metric,
            t: ls.t,
            v,
        });
    }
    // "One" side series no "many" side series matched: with a fill value for the many
    // side, they pair with a stand-in that carries just the match group's labels.
    if let Some(fv) = fill.many {
        let left_sigs: HashSet<usize> = lhs.iter().map(|s| memo.sig(&s.labels, m)).collect();
        for rs in &rhs {
            let sig = memo.sig(&rs.labels, m);
            if left_sigs.contains(&sig) {
                continue;
            }
            let (fl, fr) = if swapped { (rs.v, fv) } else { (fv, rs.v) };
            let (mut v, keep) = elem_op(op, fl, fr);
            let mut metric = result_metric(&memo.sigs[sig], &rs.labels, op, m);
            if return_bool {
                metric = metric.without_name();
                v = if keep { 1.0 } else { 0.0 };
            } else if !keep {
                continue;
            }
            out_ids.push(Matching::result_id(&mut memo.result_ids, &metric));
            out.push(InstantSample {
                labels: metric,
                t: rs.t,
                v,
            });
        }
    }
    memo.check_unique(&out_ids)?;
    Ok(out)
}

/// The labels of a vector/vector result (`resultMetric`): the "many" side's labels, without
/// the metric name for arithmetic, reduced to the `on` labels (or without the `ignoring`
/// ones) for one-to-one matching, plus the `group_x(...)` labels copied from the "one" side.
fn result_metric(lhs: &Labels, rhs: &Labels, op: BinaryOp, m: &VectorMatching) -> Labels {
    let mut b = lhs.clone().into_builder();
    if drops_name(op) {
        b.remove(METRIC_NAME);
    }
    if m.card == Cardinality::OneToOne {
        if m.on {
            let names: Vec<String> = lhs
                .iter()
                .filter(|l| !m.labels.iter().any(|n| **n == *l.name))
                .map(|l| l.name.to_string())
                .collect();
            for n in names {
                b.remove(&n);
            }
        } else {
            for n in &m.labels {
                b.remove(n);
            }
        }
    }
    for n in &m.include {
        b.set(n, rhs.get(n).unwrap_or(""));
    }
    b.build()
}

fn vector_and(lhs: Vector, rhs: Vector, m: &VectorMatching) -> Vector {
    if lhs.is_empty() || rhs.is_empty() {
        return Vec::new();
    }
    let right: HashSet<Labels> = rhs.iter().map(|s| signature(&s.labels, m)).collect();
    lhs.into_iter()
        .filter(|s| right.contains(&signature(&s.labels, m)))
        .collect()
}

fn vector_or(lhs: Vector, rhs: Vector, m: &VectorMatching) -> Vector {
    if lhs.is_empty() {
        return rhs;
    }
    if rhs.is_empty() {
        return lhs;
    }
    let left: HashSet<Labels> = lhs.iter().map(|s| signature(&s.labels, m)).collect();
    let mut out = lhs;
    out.extend(
        rhs.into_iter()
            .filter(|s| !left.contains(&signature(&s.labels, m))),
    );
    out
}

fn vector_unless(lhs: Vector, rhs: Vector, m: &VectorMatching) -> Vector {
    if lhs.is_empty() || rhs.is_empty() {
        return lhs;
    }
    let right: HashSet<Labels> = rhs.iter().map(|s| signature(&s.labels, m)).collect();
    lhs.into_iter()
        .filter(|s| !right.contains(&signature(&s.labels, m)))
        .collect()
}

/// Prometheus refuses a step result holding two series with the same labels, which happens
/// when dropping the metric name (or relabelling) merges distinct series.
pub(super) fn check_unique(vec: &[InstantSample]) -> Result<(), EvalError> {
    if vec.len() < 2 {
        return Ok(());
    }
    let mut seen: HashSet<&Labels> = HashSet::with_capacity(vec.len());
    for s in vec {
        if !seen.insert(&s.labels) {
            return Err(EvalError::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}
