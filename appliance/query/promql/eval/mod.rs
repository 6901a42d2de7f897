//! PromQL evaluator: the entry points [`instant_query`] and [`range_query`] (and their
//! `_annotated` forms returning Prometheus' warnings and infos), the engine options and
//! result types, and the [`Evaluator`] that walks the AST one evaluation timestamp at a
//! time with Prometheus 3.x semantics.
//!
//! Data flow: before the first step, every selector in the tree is loaded once from the
//! [`SeriesReader`] for the union of all the windows the query will look at (see
//! [`Evaluator::preload`]); each step then finds its window inside those samples by binary
//! search, so a range query costs one `select` per selector, not one per step (ranges
//! longer than six hours load per six-hour batch of steps to bound memory). Subquery inner
//! steps are shared between outer steps.
//!
//! The other files own one concern each: `selectors` (lookback/window kernels, including
//! the `anchored`/`smoothed` windows), `functions` (function dispatch and the
//! `*_over_time`/rate kernels), `aggregate` (`sum by` and friends), `binary` (operators,
//! vector matching and `fill()`), `info` (the `info()` join and its info-series load),
//! `durations` (`step()`/`range()` in durations, resolved before the first step); `testutil` and `tests` are test-only.
//! Prometheus' own test scripts run against the live server from `.ci/conformance`.

mod aggregate;
mod binary;
mod durations;
mod functions;
mod info;
mod memo;
mod selectors;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod testutil;
mod tiles;

use super::ast::{AtModifier, Call, Expr, ValueType, VectorSelector};
use crate::model::{Labels, Sample};
use crate::query::{SeriesData, SeriesReader, Want};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Engine limits and defaults.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for the latest sample (Prometheus: 5 m).
    pub lookback_delta_ms: i64,
    /// Maximum samples a query may hold in memory at once (Prometheus: 50,000,000).
    pub max_samples: usize,
    /// Wall-clock budget of one query.
    pub timeout: Duration,
    /// Step of a subquery written without one (`x[1h:]`): Prometheus uses the global
    /// evaluation interval (1 m by default), not the query step.
    pub default_subquery_step_ms: i64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 300_000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
            default_subquery_step_ms: 60_000,
        }
    }
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
}

/// The result of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar { t: i64, v: f64 },
    String { t: i64, v: String },
    Vector(Vec<InstantSample>),
    Matrix(Vec<SeriesData>),
}

/// Evaluation failures, classified the way the Prometheus API reports them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// `execution` (HTTP 422): e.g. duplicate series, many-to-many matching.
    #[error("{0}")]
    Execution(String),
    /// `bad_data` (HTTP 400): invalid parameters discovered during evaluation.
    #[error("{0}")]
    BadData(String),
    /// `timeout` (HTTP 503).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// `execution` (HTTP 422) with Prometheus' wording.
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
}

/// Warnings and infos a query produced (Prometheus' annotations, returned beside the data
/// as `warnings` and `infos`), each in Prometheus' wording, sorted and without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Annotations {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

/// Evaluates `expr` at one instant, `t_ms`.
pub fn instant_query(
    reader: &dyn SeriesReader,
    expr: &Expr,
    t_ms: i64,
    opts: &EngineOptions,
) -> Result<Value, EvalError> {
    instant_query_annotated(reader, expr, t_ms, opts).map(|(v, _)| v)
}

/// [`instant_query`] with the annotations the evaluation produced.
pub fn instant_query_annotated(
    reader: &dyn SeriesReader,
    expr: &Expr,
    t_ms: i64,
    opts: &EngineOptions,
) -> Result<(Value, Annotations), EvalError> {
    // Resolving walks the tree recursively too, so it runs on the sized stack.
    with_stack_for(expr, || {
        let resolved = durations::resolve(expr, 0, 0)?;
        let expr = resolved.as_ref().unwrap_or(expr);
        instant_query_inner(reader, expr, t_ms, opts)
    })
}

fn instant_query_inner(
    reader: &dyn SeriesReader,
    expr: &Expr,
    t_ms: i64,
    opts: &EngineOptions,
) -> Result<(Value, Annotations), EvalError> {
    let mut ev = Evaluator::new(reader, opts, t_ms, t_ms);
    ev.preload(expr, t_ms, t_ms)?;
    let val = ev.eval(expr, t_ms)?;
    ev.check_samples(0)?;
    let value = match val {
        Val::Scalar(v) => Value::Scalar { t: t_ms, v },
        Val::String(v) => Value::String { t: t_ms, v },
        Val::Vector(mut vec) => {
            // Instant vector values carry the evaluation time, whatever sample they came from.
            for s in &mut vec {
                s.t = t_ms;
            }
            Value::Vector(vec)
        }
        Val::Matrix(m) => Value::Matrix(
            m.iter()
                .map(|(labels, samples)| SeriesData {
                    labels: labels.clone(),
                    samples: samples.to_vec(),
                })
                .collect(),
        ),
    };
    Ok((value, ev.annotations()))
}

/// Evaluates `expr` at every `step_ms` from `start_ms` to `end_ms` (both included) and
/// returns a matrix sorted by labels; a scalar expression yields one series with no labels.
pub fn range_query(
    reader: &dyn SeriesReader,
    expr: &Expr,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    opts: &EngineOptions,
) -> Result<Value, EvalError> {
    range_query_annotated(reader, expr, start_ms, end_ms, step_ms, opts).map(|(v, _)| v)
}

/// [`range_query`] with the annotations the evaluation produced.
pub fn range_query_annotated(
    reader: &dyn SeriesReader,
    expr: &Expr,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    opts: &EngineOptions,
) -> Result<(Value, Annotations), EvalError> {
    let range_ms = end_ms.saturating_sub(start_ms);
    with_stack_for(expr, || {
        let resolved = durations::resolve(expr, step_ms, range_ms)?;
        let expr = resolved.as_ref().unwrap_or(expr);
        range_query_inner(reader, expr, start_ms, end_ms, step_ms, opts)
    })
}

fn range_query_inner(
    reader: &dyn SeriesReader,
    expr: &Expr,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    opts: &EngineOptions,
) -> Result<(Value, Annotations), EvalError> {
    if step_ms <= 0 {
        return Err(EvalError::BadData(
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
                .into(),
        ));
    }
    if end_ms < start_ms {
        return Err(EvalError::BadData(
            "end timestamp must not be before start time".into(),
        ));
    }
    match expr.value_type() {
        ValueType::Matrix | ValueType::String => {
            return Err(invalid_range_type(expr.value_type()));
        }
        _ => {}
    }
    let mut ev = Evaluator::new(reader, opts, start_ms, end_ms);
    ev.query_step = step_ms;
    // Steps run in batches covering at most RANGE_BATCH_MS of query time, each loading its
    // selectors once: one `select` per selector for dashboard-sized ranges, and raw data in
    // memory bounded by the batch, not the whole range, for week-long ones.
    let batch_steps = (RANGE_BATCH_MS / step_ms).max(1);
    let mut batch_end: Option<i64> = None;
    let mut series = SeriesBuilder::default();
    let mut points = 0usize;
    let mut t = start_ms;
    loop {
        if batch_end.is_none_or(|b| t > b) {
            let b = t
                .saturating_add((batch_steps - 1).saturating_mul(step_ms))
                .min(end_ms);
            ev.loaded.clear();
            ev.unnamed.clear();
            ev.cursors.clear();
            ev.tiles.clear();
            ev.groups.clear();
            ev.matchings.clear();
            ev.spans.clear();
            ev.info_loads.clear();
            ev.preload(expr, t, b)?;
            batch_end = Some(b);
        }
        ev.check_timeout()?;
        ev.step_samples = 0;
        ev.outer_step = batch_end.map(|b| (t, b));
        let val = ev.eval(expr, t)?;
        match val {
            Val::Scalar(v) => {
                series.push(0, Labels::empty(), Sample { t, v });
                points += 1;
            }
            Val::Vector(vec) => {
                points += vec.len();
                for (pos, s) in vec.into_iter().enumerate() {
                    series.push(pos, s.labels, Sample { t, v: s.v });
                }
            }
            Val::Matrix(_) => return Err(invalid_range_type(ValueType::Matrix)),
            Val::String(_) => return Err(invalid_range_type(ValueType::String)),
        }
        ev.check_samples(points)?;
        match t.checked_add(step_ms) {
            Some(next) if next <= end_ms => t = next,
            _ => break,
        }
    }
    let out = series.finish();
    Ok((Value::Matrix(out), ev.annotations()))
}

/// Query time one batch of range-query steps covers (see `range_query_inner`).
const RANGE_BATCH_MS: i64 = 6 * 3_600_000;

/// Nesting up to which the caller's stack is trusted.
const SHALLOW_DEPTH: usize = 64;
/// Stack reserved per level of nesting beyond that (generous for debug builds).
const STACK_PER_LEVEL: usize = 32 * 1024;
/// Largest stack a query may ask for; deeper trees are refused.
const MAX_STACK: usize = 1 << 30;

/// Runs `f` on the caller's stack for ordinary trees, and on a helper thread with a stack
/// sized for the tree's depth otherwise. The walk is recursive, and the parser accepts
/// long flat chains (`a + a + ... + a`) whose left spine is thousands deep.
fn with_stack_for<R: Send>(
    expr: &Expr,
    f: impl FnOnce() -> Result<R, EvalError> + Send,
) -> Result<R, EvalError> {
    let depth = expr_depth(expr);
    if depth <= SHALLOW_DEPTH {
        return f();
    }
    let size = depth
        .saturating_mul(STACK_PER_LEVEL)
        .saturating_add(1 << 20);
    if size > MAX_STACK {
        return Err(EvalError::Execution("expression nested too deeply".into()));
    }
    std::thread::scope(|s| {
        match std::thread::Builder::new()
            .name("promql-eval".into())
            .stack_size(size)
            .spawn_scoped(s, f)
        {
            Ok(handle) => handle
                .join()
                .unwrap_or_else(|_| Err(EvalError::Execution("query evaluation failed".into()))),
            Err(e) => Err(EvalError::Execution(format!(
                "cannot start query evaluation: {e}"
            ))),
        }
    })
}

/// Depth of the tree, computed without recursion.
fn expr_depth(expr: &Expr) -> usize {
    let mut max = 0;
    let mut stack: Vec<(&Expr, usize)> = vec![(expr, 1)];
    while let Some((e, d)) = stack.pop() {
        max = max.max(d);
        match e {
            Expr::Number(_)
            | Expr::String(_)
            | Expr::VectorSelector(_)
            | Expr::MatrixSelector(_) => {}
            Expr::Subquery(sq) => stack.push((&sq.expr, d + 1)),
            Expr::Call(c) => stack.extend(c.args.iter().map(|a| (a, d + 1))),
            Expr::Aggregate(a) => {
                stack.push((&a.expr, d + 1));
                if let Some(p) = &a.param {
                    stack.push((p, d + 1));
                }
            }
            Expr::Binary(b) => {
                stack.push((&b.lhs, d + 1));
                stack.push((&b.rhs, d + 1));
            }
            Expr::Neg(e) | Expr::Paren(e) => stack.push((e, d + 1)),
        }
    }
    max
}

fn invalid_range_type(t: ValueType) -> EvalError {
    EvalError::BadData(format!(
        "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
        t.name()
    ))
}

/// Gathers step results into series. The i-th element of a step usually belongs to the
/// same series as the i-th element of the previous step, so that guess is checked first
/// (label sets cloned from the same source compare by pointer), and the hash map is only
/// consulted when it misses.
#[derive(Default)]
struct SeriesBuilder {
    index: HashMap<Labels, usize>,
    out: Vec<SeriesData>,
    hints: Vec<usize>,
}

impl SeriesBuilder {
    fn push(&mut self, pos: usize, labels: Labels, s: Sample) {
        if let Some(&g) = self.hints.get(pos)
            && let Some(series) = self.out.get_mut(g)
            && series.labels == labels
        {
            series.samples.push(s);
            return;
        }
        let i = match self.index.get(&labels) {
            Some(&i) => i,
            None => {
                self.index.insert(labels.clone(), self.out.len());
                self.out.push(SeriesData {
                    labels,
                    samples: Vec::new(),
                });
                self.out.len() - 1
            }
        };
        self.out[i].samples.push(s);
        if self.hints.len() <= pos {
            self.hints.resize(pos + 1, usize::MAX);
        }
        self.hints[pos] = i;
    }

    /// The series sorted by labels.
    fn finish(self) -> Vec<SeriesData> {
        let mut out = self.out;
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        out
    }
}

/// An instant vector during evaluation. `t` holds the evaluation time except right after a
/// vector selector, where it is the sample's own timestamp (what `timestamp()` reports).
pub(crate) type Vector = Vec<InstantSample>;

/// One series' window inside a [`MatrixVal`]: `data[series].samples[start..end]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    series: usize,
    start: usize,
    end: usize,
}

/// A range vector at one step: windows into shared series data (the selector's loaded
/// samples, or a subquery's freshly computed series), never copies of the samples.
#[derive(Debug, Clone)]
pub(crate) struct MatrixVal {
    data: Rc<Vec<SeriesData>>,
    windows: Vec<Window>,
    /// The window is `(mint, maxt]`; rate extrapolation needs its bounds.
    mint: i64,
    maxt: i64,
    /// From an `anchored` range selector: each window also holds the anchor sample (the
    /// last one at or before `mint`, within the lookback delta).
    anchored: bool,
    /// From a `smoothed` range selector: each window also holds the neighbours just
    /// outside `(mint, maxt]` (within the lookback delta) to interpolate the edges from.
    smoothed: bool,
    /// From a range selector: each series' labels without the metric name, made once per
    /// loaded batch so that range functions do not rebuild them at every step.
    unnamed: Option<Rc<Vec<Labels>>>,
    /// All of `data` carries one metric name (or none): dropping it cannot merge series.
    one_name: bool,
}

impl MatrixVal {
    fn iter(&self) -> impl Iterator<Item = (&Labels, &[Sample])> {
        self.windows.iter().filter_map(|w| {
            let s = self.data.get(w.series)?;
            Some((&s.labels, s.samples.get(w.start..w.end)?))
        })
    }

    /// Like [`MatrixVal::iter`], with each series' labels without the metric name.
    fn iter_unnamed(&self) -> impl Iterator<Item = (Labels, &[Sample])> {
        self.windows.iter().filter_map(|w| {
            let s = self.data.get(w.series)?;
            let labels = match self.unnamed.as_ref().and_then(|u| u.get(w.series)) {
                Some(l) => l.clone(),
                None => s.labels.without_name(),
            };
            Some((labels, s.samples.get(w.start..w.end)?))
        })
    }
}

/// A value during evaluation of one step.
#[derive(Debug, Clone)]
pub(crate) enum Val {
    Scalar(f64),
    String(String),
    Vector(Vector),
    Matrix(MatrixVal),
}

impl Val {
    fn type_name(&self) -> &'static str {
        match self {
            Val::Scalar(_) => ValueType::Scalar.name(),
            Val::String(_) => ValueType::String.name(),
            Val::Vector(_) => ValueType::Vector.name(),
            Val::Matrix(_) => ValueType::Matrix.name(),
        }
    }
}

/// State of one query: the reader, limits, the query's own start/end (for `@ start()` and
/// `@ end()`), and the series loaded for each selector node.
pub(crate) struct Evaluator<'a> {
    reader: &'a dyn SeriesReader,
    opts: &'a EngineOptions,
    query_start: i64,
    query_end: i64,
    /// The range query's step (0 for an instant query), for `step()`.
    query_step: i64,
    deadline: Option<Instant>,
    /// Series loaded for each selector node, keyed by the node's address (the AST outlives
    /// the evaluator and is not moved while it runs).
    loaded: HashMap<*const VectorSelector, Rc<Vec<SeriesData>>>,
    /// For range selectors, the labels of `loaded` without the metric name, and whether
    /// the loaded series share one metric name.
    unnamed: HashMap<*const VectorSelector, (Rc<Vec<Labels>>, bool)>,
    /// For range selectors, each loaded series' window `(start, end)` at the previous
    /// step (for instant selectors, the position after its latest sample): the next
    /// step's is found by walking on from there, which touches one or two cache lines per
    /// series instead of a binary search's dozen.
    cursors: HashMap<*const VectorSelector, Vec<(usize, usize)>>,
    /// Range functions computed ahead for a run of steps (see `tiles`), by call node.
    tiles: HashMap<*const Call, tiles::Tile>,
    /// The range query's current step and the last step of its batch; None for an
    /// instant query. Subquery steps are not the query's steps: `subquery_depth`.
    outer_step: Option<(i64, i64)>,
    subquery_depth: usize,
    /// The call whose tile column the aggregation being evaluated would take instead of
    /// a vector, and that column once the call handed it over.
    fuse: Option<*const Call>,
    fused: Option<tiles::Column>,
    /// Each vector/vector operation node's signatures and result labels, likewise.
    matchings: HashMap<*const super::ast::Binary, binary::Matching>,
    /// Each aggregation node's groups, kept across the steps of a batch.
    groups: HashMap<*const super::ast::Aggregate, aggregate::Groups>,
    /// Time span each selector must cover, gathered by the preload walk.
    spans: HashMap<*const VectorSelector, (i64, i64, bool)>,
    /// Samples materialised during the current step (vectors and matrix windows).
    step_samples: usize,
    /// Compiled, anchored regexes of `label_replace` (`None`: invalid), so a range query
    /// compiles each once rather than once per step.
    regexes: HashMap<String, Option<regex::Regex>>,
    /// Inner results of each subquery node by inner timestamp. Consecutive outer steps
    /// share most inner steps; without this a range query would evaluate each inner step
    /// once per outer step instead of once.
    subquery_steps: HashMap<*const super::ast::Subquery, BTreeMap<i64, Rc<Val>>>,
    /// Span and candidate info series of each `info()` call, like `spans` and `loaded`.
    info_loads: HashMap<*const Call, info::InfoLoad>,
    warnings: BTreeSet<String>,
    infos: BTreeSet<String>,
    /// Selectors of `count_over_time` loaded partly from rollups: their samples carry
    /// counts, so the function sums them (see `Want::Count`).
    rollup_counts: BTreeSet<*const VectorSelector>,
}

impl<'a> Evaluator<'a> {
    fn new(
        reader: &'a dyn SeriesReader,
        opts: &'a EngineOptions,
        query_start: i64,
        query_end: i64,
    ) -> Self {
        Evaluator {
            reader,
            opts,
            query_start,
            query_end,
            query_step: 0,
            deadline: Instant::now().checked_add(opts.timeout),
            loaded: HashMap::new(),
            unnamed: HashMap::new(),
            cursors: HashMap::new(),
            tiles: HashMap::new(),
            outer_step: None,
            subquery_depth: 0,
            fuse: None,
            fused: None,
            groups: HashMap::new(),
            matchings: HashMap::new(),
            spans: HashMap::new(),
            step_samples: 0,
            regexes: HashMap::new(),
            subquery_steps: HashMap::new(),
            info_loads: HashMap::new(),
            warnings: BTreeSet::new(),
            infos: BTreeSet::new(),
            rollup_counts: BTreeSet::new(),
        }
    }

    /// Records a warning annotation (`PromQL warning: ...`).
    fn warn(&mut self, msg: String) {
        self.warnings.insert(format!("PromQL warning: {msg}"));
    }

    /// Records an info annotation (`PromQL info: ...`).
    fn info(&mut self, msg: String) {
        self.infos.insert(format!("PromQL info: {msg}"));
    }

    fn annotations(&mut self) -> Annotations {
        Annotations {
            warnings: std::mem::take(&mut self.warnings).into_iter().collect(),
            infos: std::mem::take(&mut self.infos).into_iter().collect(),
        }
    }

    /// The anchored regex `^(?s:re)$`, compiled once per query.
    fn regex(&mut self, re: &str) -> Option<regex::Regex> {
        self.regexes
            .entry(re.to_string())
            .or_insert_with(|| regex::Regex::new(&format!("^(?s:{re})$")).ok())
            .clone()
    }

    /// Whether `t` is the range query's current step, evaluated outside any subquery.
    fn at_outer_step(&self, t: i64) -> bool {
        self.subquery_depth == 0 && self.outer_step.is_some_and(|(now, _)| now == t)
    }

    /// Steps of the current batch from `t` (one of them) on.
    fn outer_steps_from(&self, t: i64) -> usize {
        match self.outer_step {
            Some((_, end)) if self.query_step > 0 && end >= t => {
                usize::try_from((end - t) / self.query_step).map_or(usize::MAX, |n| n + 1)
            }
            _ => 1,
        }
    }

    /// A range selector's labels without the metric name (None: not loaded as a range
    /// selector), and whether its series share one name.
    fn unnamed_of(&self, vs: &VectorSelector) -> (Option<Rc<Vec<Labels>>>, bool) {
        match self.unnamed.get(&(vs as *const VectorSelector)) {
            Some((u, one)) => (Some(u.clone()), *one),
            None => (None, false),
        }
    }

    /// The matching state of vector/vector operation node `b` for this batch of steps.
    fn matching_of(&mut self, b: &super::ast::Binary) -> &mut binary::Matching {
        self.matchings
            .entry(b as *const super::ast::Binary)
            .or_default()
    }

    /// The groups of aggregation node `a` for this batch of steps.
    fn groups_of(&mut self, a: &super::ast::Aggregate) -> &mut aggregate::Groups {
        self.groups
            .entry(a as *const super::ast::Aggregate)
            .or_default()
    }

    fn check_timeout(&self) -> Result<(), EvalError> {
        match self.deadline {
            Some(d) if Instant::now() > d => Err(EvalError::Timeout("query execution")),
            _ => Ok(()),
        }
    }

    /// Fails when the samples of the current step plus `held` (result points kept from
    /// earlier steps) exceed the limit.
    fn check_samples(&self, held: usize) -> Result<(), EvalError> {
        if held.saturating_add(self.step_samples) > self.opts.max_samples {
            return Err(EvalError::TooManySamples("query execution"));
        }
        Ok(())
    }

    /// Counts `n` samples materialised in this step against the limit.
    fn account(&mut self, n: usize) -> Result<(), EvalError> {
        self.step_samples = self.step_samples.saturating_add(n);
        self.check_samples(0)
    }

    /// The reference time of a selector or subquery evaluated at `t`: its `@` time (or
    /// `t`) minus its offset. Prometheus rewrites `@` into an offset from the query start
    /// (`setOffsetForAtModifier`, promql/engine.go v3.x), which comes to the same instant.
    fn ref_time(&self, at: Option<AtModifier>, offset_ms: i64, t: i64) -> i64 {
        let base = match at {
            None => t,
            Some(AtModifier::Timestamp(ts)) => ts,
            Some(AtModifier::Start) => self.query_start,
            Some(AtModifier::End) => self.query_end,
        };
        base.saturating_sub(offset_ms)
    }

    /// Walks the tree for evaluation times in `[tmin, tmax]`, records the span each selector
    /// needs, then loads every selector once.
    fn preload(&mut self, expr: &Expr, tmin: i64, tmax: i64) -> Result<(), EvalError> {
        self.collect_spans(expr, tmin, tmax);
        let spans: Vec<_> = self.spans.iter().map(|(k, v)| (*k, *v)).collect();
        let mut nodes: Vec<&VectorSelector> = Vec::new();
        collect_selectors(expr, &mut nodes);
        let mut wants: HashMap<*const VectorSelector, Want> = HashMap::new();
        collect_wants(expr, &mut wants);
        for vs in nodes {
            let key = vs as *const VectorSelector;
            if self.loaded.contains_key(&key) {
                continue;
            }
            let Some(&(_, (mint, maxt, is_matrix))) = spans.iter().find(|(k, _)| *k == key) else {
                continue;
            };
            self.check_timeout()?;
            let want = wants.get(&key).copied().unwrap_or(Want::Raw);
            let selected = self
                .reader
                .select_for(&vs.matchers, mint, maxt, want)
                .map_err(|e| EvalError::Execution(e.0))?;
            let mut series = selected.series;
            // Per load: a later batch of range steps may need no rollups.
            self.rollup_counts.remove(&key);
            if let Some((tier, before)) = selected.rollup {
                if want == Want::Count {
                    self.rollup_counts.insert(key);
                }
                self.warnings.insert(format!(
                    "samples before {} (unix seconds) come from the {tier} rollup tier: raw samples there were deleted to keep the storage budget",
                    before as f64 / 1000.0
                ));
            }
            if is_matrix {
                // Range windows never use staleness markers; dropping them once here keeps
                // the kernels free of the check.
                for s in &mut series {
                    s.samples.retain(|x| !crate::model::is_stale_nan(x.v));
                }
                series.retain(|s| !s.samples.is_empty());
                let unnamed = series.iter().map(|s| s.labels.without_name()).collect();
                let one_name = !functions::names_vary(series.iter().map(|s| &s.labels));
                self.unnamed.insert(key, (Rc::new(unnamed), one_name));
            }
            self.loaded.insert(key, Rc::new(series));
        }
        self.load_infos()
    }

    fn collect_spans(&mut self, expr: &Expr, tmin: i64, tmax: i64) {
        match expr {
            Expr::Number(_) | Expr::String(_) => {}
            Expr::VectorSelector(vs) => {
                let lo = self.ref_time(vs.at, vs.offset_ms, tmin);
                let hi = self.ref_time(vs.at, vs.offset_ms, tmax);
                // The lookback window is left-open: (ref - lookback, ref].
                let lo = lo
                    .saturating_sub(self.opts.lookback_delta_ms)
                    .saturating_add(1);
                // `smoothed` interpolates towards the next sample after the instant.
                let hi = if vs.smoothed {
                    hi.saturating_add(self.opts.lookback_delta_ms)
                } else {
                    hi
                };
                self.add_span(vs, lo, hi, false);
            }
            Expr::MatrixSelector(ms) => {
                let vs = &ms.selector;
                let lo = self.ref_time(vs.at, vs.offset_ms, tmin);
                let hi = self.ref_time(vs.at, vs.offset_ms, tmax);
                let mut lo = lo.saturating_sub(ms.range_ms).saturating_add(1);
                let mut hi = hi;
                // The anchor (or the left neighbour) lies up to a lookback delta before the
                // window; `smoothed` also needs the right neighbour after it.
                if vs.anchored || vs.smoothed {
                    lo = lo.saturating_sub(self.opts.lookback_delta_ms);
                }
                if vs.smoothed {
                    hi = hi.saturating_add(self.opts.lookback_delta_ms);
                }
                self.add_span(vs, lo, hi, true);
            }
            Expr::Subquery(sq) => {
                let lo = self.ref_time(sq.at, sq.offset_ms, tmin);
                let hi = self.ref_time(sq.at, sq.offset_ms, tmax);
                self.collect_spans(&sq.expr, lo.saturating_sub(sq.range_ms), hi);
            }
            // `info`'s second argument is a label selector for its own load, not a selector.
            Expr::Call(c) if c.func == "info" => {
                if let Some(a) = c.args.first() {
                    self.collect_spans(a, tmin, tmax);
                }
                self.add_info_span(c, tmin, tmax);
            }
            Expr::Call(c) => {
                for a in &c.args {
                    self.collect_spans(a, tmin, tmax);
                }
            }
            Expr::Aggregate(a) => {
                if let Some(p) = &a.param {
                    self.collect_spans(p, tmin, tmax);
                }
                self.collect_spans(&a.expr, tmin, tmax);
            }
            Expr::Binary(b) => {
                self.collect_spans(&b.lhs, tmin, tmax);
                self.collect_spans(&b.rhs, tmin, tmax);
            }
            Expr::Neg(e) | Expr::Paren(e) => self.collect_spans(e, tmin, tmax),
        }
    }

    fn add_span(&mut self, vs: &VectorSelector, lo: i64, hi: i64, is_matrix: bool) {
        let e = self
            .spans
            .entry(vs as *const VectorSelector)
            .or_insert((lo, hi, is_matrix));
        e.0 = e.0.min(lo);
        e.1 = e.1.max(hi);
    }

    fn series_of(&mut self, vs: &VectorSelector) -> Rc<Vec<SeriesData>> {
        let key = vs as *const VectorSelector;
        self.loaded.get(&key).cloned().unwrap_or_default()
    }

    /// Evaluates `expr` at time `t`.
    pub(crate) fn eval(&mut self, expr: &Expr, t: i64) -> Result<Val, EvalError> {
        match expr {
            Expr::Number(v) => Ok(Val::Scalar(*v)),
            Expr::String(s) => Ok(Val::String(s.clone())),
            Expr::Paren(e) => self.eval(e, t),
            Expr::Neg(e) => match self.eval(e, t)? {
                Val::Scalar(v) => Ok(Val::Scalar(-v)),
                Val::Vector(mut vec) => {
                    // Unary minus is arithmetic: the metric name goes, which can merge
                    // series only when the input held several names.
                    let check = functions::names_vary(vec.iter().map(|s| &s.labels));
                    for s in &mut vec {
                        s.v = -s.v;
                        s.labels = s.labels.without_name();
                        s.t = t;
                    }
                    if check {
                        binary::check_unique(&vec)?;
                    }
                    Ok(Val::Vector(vec))
                }
                other => Err(EvalError::Execution(format!(
                    "unary expression only allowed on expressions of type scalar or instant vector, got {:?}",
                    other.type_name()
                ))),
            },
            Expr::VectorSelector(vs) => {
                let mut vec = self.vector_selector(vs, t)?;
                for s in &mut vec {
                    s.t = t;
                }
                Ok(Val::Vector(vec))
            }
            Expr::MatrixSelector(ms) => {
                let vs = &ms.selector;
                let data = self.series_of(vs);
                let maxt = self.ref_time(vs.at, vs.offset_ms, t);
                let mint = maxt.saturating_sub(ms.range_ms);
                let windows = if vs.anchored || vs.smoothed {
                    let lookback = self.opts.lookback_delta_ms;
                    selectors::extended_windows(&data, mint, maxt, lookback, vs.smoothed)
                } else {
                    let cursors = self.cursors.entry(vs as *const VectorSelector).or_default();
                    selectors::windows(&data, mint, maxt, cursors)
                };
                let n: usize = windows.iter().map(|w| w.end - w.start).sum();
                self.account(n)?;
                let unnamed = self.unnamed.get(&(vs as *const VectorSelector));
                Ok(Val::Matrix(MatrixVal {
                    data,
                    windows,
                    mint,
                    maxt,
                    anchored: vs.anchored,
                    smoothed: vs.smoothed,
                    unnamed: unnamed.as_ref().map(|u| u.0.clone()),
                    one_name: unnamed.is_some_and(|u| u.1),
                }))
            }
            Expr::Subquery(sq) => self.subquery(sq, t),
            Expr::Call(c) => functions::eval_call(self, c, t),
            Expr::Aggregate(a) => aggregate::eval_aggregate(self, a, t),
            Expr::Binary(b) => binary::eval_binary(self, b, t),
        }
    }

    /// The instant-vector selector kernel; sample timestamps are the samples' own.
    fn vector_selector(&mut self, vs: &VectorSelector, t: i64) -> Result<Vector, EvalError> {
        let data = self.series_of(vs);
        let ref_t = self.ref_time(vs.at, vs.offset_ms, t);
        let vec = if vs.smoothed {
            selectors::latest_smoothed(&data, ref_t, self.opts.lookback_delta_ms)
        } else {
            let cursors = self.cursors.entry(vs as *const VectorSelector).or_default();
            selectors::latest(&data, ref_t, self.opts.lookback_delta_ms, cursors)
        };
        self.account(vec.len())?;
        Ok(vec)
    }

    /// Evaluates a subquery at `t`: the inner expression at every multiple of the step in
    /// `(ref - range, ref]`, as Prometheus aligns subquery steps to absolute time
    /// (promql/engine.go v3.x, `case *parser.SubqueryExpr`).
    fn subquery(&mut self, sq: &super::ast::Subquery, t: i64) -> Result<Val, EvalError> {
        let step = sq
            .step_ms
            .filter(|s| *s > 0)
            .unwrap_or(self.opts.default_subquery_step_ms)
            .max(1);
        let maxt = self.ref_time(sq.at, sq.offset_ms, t);
        let mint = maxt.saturating_sub(sq.range_ms);
        // First aligned timestamp strictly after mint (Go's division truncates toward zero,
        // like Rust's).
        let mut ts = step.saturating_mul(mint / step);
        if ts <= mint {
            ts = ts.saturating_add(step);
        }
        let key = sq as *const super::ast::Subquery;
        // Steps before this window will not be asked for again while time moves forward.
        if let Some(cache) = self.subquery_steps.get_mut(&key) {
            *cache = cache.split_off(&mint.saturating_add(1));
        }
        let mut series = SeriesBuilder::default();
        let mut n = 0usize;
        while ts <= maxt {
            self.check_timeout()?;
            let cached = self
                .subquery_steps
                .get(&key)
                .and_then(|c| c.get(&ts))
                .cloned();
            let val = match cached {
                Some(v) => v,
                None => {
                    self.subquery_depth += 1;
                    let v = self.eval(&sq.expr, ts);
                    self.subquery_depth -= 1;
                    let v = Rc::new(v?);
                    self.subquery_steps
                        .entry(key)
                        .or_default()
                        .insert(ts, v.clone());
                    v
                }
            };
            match &*val {
                Val::Scalar(v) => {
                    series.push(0, Labels::empty(), Sample { t: ts, v: *v });
                    n += 1;
                }
                Val::Vector(vec) => {
                    n += vec.len();
                    for (pos, s) in vec.iter().enumerate() {
                        series.push(pos, s.labels.clone(), Sample { t: ts, v: s.v });
                    }
                }
                other => {
                    return Err(EvalError::Execution(format!(
                        "subquery is only allowed on instant vector, got {} instead",
                        other.type_name()
                    )));
                }
            }
            match ts.checked_add(step) {
                Some(x) => ts = x,
                None => break,
            }
        }
        self.account(n)?;
        let out = series.finish();
        let windows = out
            .iter()
            .enumerate()
            .map(|(i, s)| Window {
                series: i,
                start: 0,
                end: s.samples.len(),
            })
            .collect();
        Ok(Val::Matrix(MatrixVal {
            data: Rc::new(out),
            windows,
            mint,
            maxt,
            anchored: false,
            smoothed: false,
            unnamed: None,
            one_name: false,
        }))
    }
}

/// Every selector node of the tree, in evaluation order.
fn collect_selectors<'e>(expr: &'e Expr, out: &mut Vec<&'e VectorSelector>) {
    match expr {
        Expr::Number(_) | Expr::String(_) => {}
        Expr::VectorSelector(vs) => out.push(vs),
        Expr::MatrixSelector(ms) => out.push(&ms.selector),
        Expr::Subquery(sq) => collect_selectors(&sq.expr, out),
        Expr::Call(c) => c.args.iter().for_each(|a| collect_selectors(a, out)),
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                collect_selectors(p, out);
            }
            collect_selectors(&a.expr, out);
        }
        Expr::Binary(b) => {
            collect_selectors(&b.lhs, out);
            collect_selectors(&b.rhs, out);
        }
        Expr::Neg(e) | Expr::Paren(e) => collect_selectors(e, out),
    }
}

/// What each selector's samples will be used for (see [`Want`]): a range selector that is
/// the argument of a function rollups can answer gets that function's column, an instant
/// selector the latest sample, anything else raw samples only.
fn collect_wants(expr: &Expr, out: &mut HashMap<*const VectorSelector, Want>) {
    match expr {
        Expr::Number(_) | Expr::String(_) | Expr::MatrixSelector(_) => {}
        Expr::VectorSelector(vs) => {
            out.insert(vs as *const VectorSelector, Want::Last);
        }
        Expr::Subquery(sq) => collect_wants(&sq.expr, out),
        Expr::Call(c) => {
            let want = match c.func {
                "rate" | "increase" | "irate" => Want::Counter,
                "delta" | "idelta" => Want::FirstLast,
                "min_over_time" => Want::Min,
                "max_over_time" => Want::Max,
                "sum_over_time" => Want::Sum,
                "count_over_time" => Want::Count,
                "avg_over_time" => Want::Avg,
                "last_over_time" | "present_over_time" | "absent_over_time" => Want::Last,
                _ => Want::Raw,
            };
            for a in &c.args {
                match a {
                    Expr::MatrixSelector(ms) if !ms.selector.anchored && !ms.selector.smoothed => {
                        out.insert(&ms.selector as *const VectorSelector, want);
                    }
                    other => collect_wants(other, out),
                }
            }
        }
        Expr::Aggregate(a) => {
            if let Some(p) = &a.param {
                collect_wants(p, out);
            }
            collect_wants(&a.expr, out);
        }
        Expr::Binary(b) => {
            collect_wants(&b.lhs, out);
            collect_wants(&b.rhs, out);
        }
        Expr::Neg(e) | Expr::Paren(e) => collect_wants(e, out),
    }
}

/// Prometheus' `labels.Labels.String()` form used in error messages: `{__name__="a", b="c"}`
/// (always braces, the metric name as an ordinary label).
pub(crate) fn labels_string(l: &Labels) -> String {
    let mut s = String::from("{");
    for (i, lab) in l.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        s.push_str(&lab.name);
        s.push('=');
        s.push_str(&format!("{:?}", &*lab.value));
    }
    s.push('}');
    s
}
