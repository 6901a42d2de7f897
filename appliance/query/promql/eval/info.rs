//! `info()` (Prometheus 3.x experimental function, promql/info.go): adds to each series of
//! the first argument the data labels of the info series that share its identifying labels
//! (`instance`, `job`). Info series are `target_info` by default, or those the second
//! argument's `__name__` matchers pick (only negative ones: among `.+_info`); the second
//! argument's other matchers select info series and name the only labels to add.
//!
//! Data flow: the preload walk records the time span each `info` call needs and loads its
//! candidate info series once per query batch (name and data matchers applied); each step
//! then narrows them to the identifying-label values of that step's input, takes each
//! one's latest sample within the lookback delta (at the `@`/offset of the first argument's
//! first selector, as Prometheus does since 3.x), and joins. Prometheus narrows by the
//! values seen over the whole range of a range query; the two differ only when an info
//! series lacks an identifying label that input series at other steps carry.

use super::binary::check_unique;
use super::{EvalError, Evaluator, InstantSample, Val, labels_string};
use crate::model::{Labels, METRIC_NAME, MatchOp, Matcher, is_stale_nan};
use crate::query::SeriesData;
use crate::query::promql::ast::{AtModifier, Call, Expr, Subquery};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::rc::Rc;

/// The info metric used when no `__name__` matcher is given.
const TARGET_INFO: &str = "target_info";
/// Labels that tie a series to its info series (`identifyingLabels`).
const IDENTIFYING: [&str; 2] = ["instance", "job"];

/// What one `info` call selects, and its candidate series once loaded.
pub(super) struct InfoLoad {
    /// `__name__` matchers picking the info metrics (`effectiveInfoNameMatchers`).
    name_matchers: Vec<Matcher>,
    /// The second argument's other matchers: they select info series, and when there are
    /// any, only the labels they name are added.
    data_matchers: Vec<Matcher>,
    /// Samples needed, both ends inclusive.
    span: (i64, i64),
    series: Option<Rc<Vec<SeriesData>>>,
}

impl InfoLoad {
    fn new(c: &Call) -> InfoLoad {
        let given: &[Matcher] = match c.args.get(1) {
            Some(Expr::VectorSelector(vs)) => &vs.matchers,
            _ => &[],
        };
        let (names, data): (Vec<Matcher>, Vec<Matcher>) =
            given.iter().cloned().partition(|m| m.name == METRIC_NAME);
        InfoLoad {
            name_matchers: effective_name_matchers(names),
            data_matchers: data,
            span: (i64::MAX, i64::MIN),
            series: None,
        }
    }
}

/// `effectiveInfoNameMatchers`: the given `__name__` matchers when one of them is positive;
/// only negative ones also get `__name__=~".+_info"`; none means `target_info`.
fn effective_name_matchers(given: Vec<Matcher>) -> Vec<Matcher> {
    if given
        .iter()
        .any(|m| matches!(m.op, MatchOp::Equal | MatchOp::Regex))
    {
        return given;
    }
    if given.is_empty() {
        return vec![Matcher::equal(METRIC_NAME, TARGET_INFO)];
    }
    let mut out = Vec::with_capacity(given.len() + 1);
    out.extend(Matcher::new(MatchOp::Regex, METRIC_NAME, ".+_info").ok());
    out.extend(given);
    out
}

/// The `@` and offset that place the info series in time: those of the first selector in
/// the first argument (depth first), plus the offsets of the subqueries around it up to
/// the first one with an `@` (`infoSelectTimestampAndOffset`).
fn reference_modifiers(expr: &Expr) -> (Option<AtModifier>, i64) {
    fn walk<'e>(e: &'e Expr, outer: &mut Vec<&'e Subquery>) -> Option<(Option<AtModifier>, i64)> {
        let (mut at, mut offset) = match e {
            Expr::Number(_) | Expr::String(_) => return None,
            Expr::VectorSelector(vs) => (vs.at, vs.offset_ms),
            Expr::MatrixSelector(ms) => (ms.selector.at, ms.selector.offset_ms),
            Expr::Subquery(sq) => {
                outer.push(sq);
                let found = walk(&sq.expr, outer);
                outer.pop();
                return found;
            }
            Expr::Call(c) => return c.args.iter().find_map(|a| walk(a, outer)),
            Expr::Aggregate(a) => {
                return walk(&a.expr, outer)
                    .or_else(|| a.param.as_ref().and_then(|p| walk(p, outer)));
            }
            Expr::Binary(b) => return walk(&b.lhs, outer).or_else(|| walk(&b.rhs, outer)),
            Expr::Neg(e) | Expr::Paren(e) => return walk(e, outer),
        };
        for sq in outer.iter().rev() {
            if at.is_some() {
                break;
            }
            offset = offset.saturating_add(sq.offset_ms);
            at = sq.at;
        }
        Some((at, offset))
    }
    walk(expr, &mut Vec::new()).unwrap_or((None, 0))
}

impl Evaluator<'_> {
    /// The time at which the info series of call `c` are read when it is evaluated at `t`.
    fn info_ref_time(&self, c: &Call, t: i64) -> i64 {
        let (at, offset) = match c.args.first() {
            Some(arg) => reference_modifiers(arg),
            None => (None, 0),
        };
        self.ref_time(at, offset, t)
    }

    /// Records the samples call `c` needs for evaluation times in `[tmin, tmax]`.
    pub(super) fn add_info_span(&mut self, c: &Call, tmin: i64, tmax: i64) {
        let lo = self
            .info_ref_time(c, tmin)
            .saturating_sub(self.opts.lookback_delta_ms)
            .saturating_add(1);
        let hi = self.info_ref_time(c, tmax);
        let load = self
            .info_loads
            .entry(c as *const Call)
            .or_insert_with(|| InfoLoad::new(c));
        load.span = (load.span.0.min(lo), load.span.1.max(hi));
    }

    /// Loads the candidate info series of every `info` call whose span is known.
    pub(super) fn load_infos(&mut self) -> Result<(), EvalError> {
        for load in self.info_loads.values_mut() {
            if load.series.is_some() {
                continue;
            }
            let matchers: Vec<Matcher> = load
                .data_matchers
                .iter()
                .chain(&load.name_matchers)
                .cloned()
                .collect();
            let series = self
                .reader
                .select(&matchers, load.span.0, load.span.1)
                .map_err(|e| EvalError::Execution(e.0))?;
            load.series = Some(Rc::new(series));
        }
        Ok(())
    }
}

/// Evaluates `info(v [, {selector}])` at `t` (`evalInfo`, `combineWithInfoVector`).
pub(super) fn eval_info(ev: &mut Evaluator, c: &Call, t: i64) -> Result<Val, EvalError> {
    let Some(arg) = c.args.first() else {
        return Err(EvalError::BadData("info() needs an argument".into()));
    };
    let base = match ev.eval(arg, t)? {
        Val::Vector(v) => v,
        other => {
            return Err(EvalError::Execution(format!(
                "expected type instant vector in call to function \"info\", got {}",
                other.type_name()
            )));
        }
    };
    if base.is_empty() {
        return Ok(Val::Vector(base));
    }
    let key = c as *const Call;
    // Not reached by the preload walk (it covers every call): nothing loaded.
    ev.info_loads.entry(key).or_insert_with(|| InfoLoad::new(c));
    let ref_t = ev.info_ref_time(c, t);
    let lookback = ev.opts.lookback_delta_ms;
    let load = &ev.info_loads[&key];
    let name_matchers = &load.name_matchers;
    let data_matchers = &load.data_matchers;
    let ignored = |s: &InstantSample| {
        let name = s.labels.metric_name().unwrap_or("");
        name_matchers.iter().all(|m| m.matches(name))
    };

    // Identifying-label values of the series to enrich: info series must carry each
    // identifying label that any of them has, with one of their values.
    let mut wanted: [HashSet<&str>; 2] = [HashSet::new(), HashSet::new()];
    for s in base.iter().filter(|s| !ignored(s)) {
        for (i, name) in IDENTIFYING.iter().enumerate() {
            if let Some(v) = s.labels.get(name) {
                wanted[i].insert(v);
            }
        }
    }

    // The latest sample of each eligible info series, one per signature (metric name and
    // identifying labels): the newest wins, two at the same time are an error.
    let mut by_sig: HashMap<Signature<'_>, (&Labels, i64)> = HashMap::new();
    if wanted.iter().any(|w| !w.is_empty())
        && let Some(candidates) = &load.series
    {
        for s in candidates.iter() {
            let eligible = IDENTIFYING.iter().zip(&wanted).all(|(name, values)| {
                values.is_empty() || s.labels.get(name).is_some_and(|v| values.contains(v))
            });
            if !eligible {
                continue;
            }
            let idx = s.samples.partition_point(|x| x.t <= ref_t);
            let Some(smp) = idx.checked_sub(1).and_then(|i| s.samples.get(i)) else {
                continue;
            };
            if smp.t <= ref_t.saturating_sub(lookback) || is_stale_nan(smp.v) {
                continue;
            }
            let sig = signature(s.labels.metric_name().unwrap_or(""), &s.labels);
            match by_sig.get(&sig) {
                Some(&(_, existing_t)) if existing_t > smp.t => {}
                Some(&(existing, existing_t)) if existing_t == smp.t => {
                    return Err(EvalError::Execution(format!(
                        "found duplicate series for info metric: existing {} @ {}, new {} @ {}",
                        labels_string(existing),
                        existing_t,
                        labels_string(&s.labels),
                        smp.t
                    )));
                }
                _ => {
                    by_sig.insert(sig, (&s.labels, smp.t));
                }
            }
        }
    }
    let info_names: BTreeSet<&str> = by_sig.keys().map(|sig| sig.0).collect();
    // A series no info series matched is dropped when a data matcher needs a value.
    let need_match = data_matchers.iter().any(|m| !m.matches_empty());

    let mut out = Vec::with_capacity(base.len());
    for s in &base {
        if ignored(s) {
            out.push(InstantSample {
                labels: s.labels.clone(),
                t,
                v: s.v,
            });
            continue;
        }
        let mut added: Vec<(&str, &str)> = Vec::new();
        let mut matched = false;
        for name in &info_names {
            let Some(&(info, _)) = by_sig.get(&signature(name, &s.labels)) else {
                continue;
            };
            matched = true;
            for l in info {
                if &*l.name == METRIC_NAME
                    || (!data_matchers.is_empty()
                        && !data_matchers.iter().any(|m| *m.name == *l.name))
                {
                    continue;
                }
                match added.iter().find(|(n, _)| *n == &*l.name) {
                    Some((_, v)) if *v != &*l.value => {
                        return Err(EvalError::Execution(format!(
                            "conflicting label: {}",
                            l.name
                        )));
                    }
                    Some(_) => {}
                    None if s.labels.get(&l.name).is_some() => {}
                    None => added.push((&l.name, &l.value)),
                }
            }
        }
        if !matched && need_match {
            continue;
        }
        let labels = if added.is_empty() {
            s.labels.clone()
        } else {
            let mut b = s.labels.clone().into_builder();
            for (n, v) in added {
                b.set(n, v);
            }
            b.build()
        };
        out.push(InstantSample { labels, t, v: s.v });
    }
    check_unique(&out)?;
    ev.account(out.len())?;
    Ok(Val::Vector(out))
}

/// An info metric name and the identifying labels of a series (`sigFunction`).
type Signature<'a> = (&'a str, [Option<&'a str>; 2]);

fn signature<'a>(info_name: &'a str, labels: &'a Labels) -> Signature<'a> {
    (info_name, IDENTIFYING.map(|n| labels.get(n)))
}

#[cfg(test)]
mod tests {
    //! Cases after Prometheus' promql/promqltest/testdata/info.test (main branch).
    use super::super::testutil::*;

    const STEPS: [i64; 3] = [0, 5 * M, 10 * M];

    fn data() -> MemReader {
        load(
            5 * M,
            &[
                (r#"metric{instance="a", job="1", label="value"}"#, "0 1 2"),
                (
                    r#"metric_not_matching_target_info{instance="a", job="2", label="value"}"#,
                    "0 1 2",
                ),
                (
                    r#"metric_with_overlapping_label{instance="a", job="1", label="value", data="base"}"#,
                    "0 1 2",
                ),
                (
                    r#"target_info{instance="a", job="1", data="info", another_data="another info"}"#,
                    "1 1 1",
                ),
                (
                    r#"build_info{instance="a", job="1", build_data="build"}"#,
                    "1 1 1",
                ),
            ],
        )
    }

    /// The range query 0..10m every 5m; each expected series holds `0 1 2` (or `1 1 1`).
    #[track_caller]
    fn check(r: &MemReader, query: &str, want: &[(&str, [f64; 3])]) {
        let points: Vec<(String, Vec<(i64, f64)>)> = want
            .iter()
            .map(|(l, v)| {
                (
                    l.to_string(),
                    STEPS.iter().copied().zip(v.iter().copied()).collect(),
                )
            })
            .collect();
        let want: Vec<(&str, &[(i64, f64)])> = points
            .iter()
            .map(|(l, p)| (l.as_str(), p.as_slice()))
            .collect();
        assert_matrix(range(r, &q(query), 0, 10 * M, 5 * M), &want);
    }

    const M012: [f64; 3] = [0.0, 1.0, 2.0];

    #[test]
    fn adds_target_info_data_labels_by_default_or_those_the_selector_names() {
        let r = data();
        check(
            &r,
            "info(metric)",
            &[(
                r#"metric{another_data="another info", data="info", instance="a", job="1", label="value"}"#,
                M012,
            )],
        );
        check(
            &r,
            r#"info(metric, {data=~".+"})"#,
            &[(
                r#"metric{data="info", instance="a", job="1", label="value"}"#,
                M012,
            )],
        );
        check(
            &r,
            r#"info(metric, {data=~".+", non_existent=~".*"})"#,
            &[(
                r#"metric{data="info", instance="a", job="1", label="value"}"#,
                M012,
            )],
        );
        // No info series with job="2": unchanged.
        check(
            &r,
            "info(metric_not_matching_target_info)",
            &[(
                r#"metric_not_matching_target_info{instance="a", job="2", label="value"}"#,
                M012,
            )],
        );
        // A data matcher that needs a value drops series no info series matched.
        check(&r, r#"info(metric, {non_existent=~".+"})"#, &[]);
    }

    #[test]
    fn labels_already_on_the_series_win() {
        let r = data();
        check(
            &r,
            "info(metric_with_overlapping_label)",
            &[(
                r#"metric_with_overlapping_label{another_data="another info", data="base", instance="a", job="1", label="value"}"#,
                M012,
            )],
        );
        for sel in [r#"{data="info"}"#, r#"{data=~".+"}"#, r#"{instance="a"}"#] {
            check(
                &r,
                &format!("info(metric_with_overlapping_label, {sel})"),
                &[(
                    r#"metric_with_overlapping_label{data="base", instance="a", job="1", label="value"}"#,
                    M012,
                )],
            );
        }
    }

    #[test]
    fn name_matchers_pick_the_info_metrics() {
        let r = data();
        let all = r#"metric{another_data="another info", build_data="build", data="info", instance="a", job="1", label="value"}"#;
        let build = r#"metric{build_data="build", instance="a", job="1", label="value"}"#;
        let plain = r#"metric{instance="a", job="1", label="value"}"#;
        check(
            &r,
            r#"info(metric, {__name__="target_info"})"#,
            &[(
                r#"metric{another_data="another info", data="info", instance="a", job="1", label="value"}"#,
                M012,
            )],
        );
        check(
            &r,
            r#"info(metric, {__name__="non_existent"})"#,
            &[(plain, M012)],
        );
        check(
            &r,
            r#"info(metric, {__name__="non_existent", data=~".+"})"#,
            &[],
        );
        check(
            &r,
            r#"info(metric, {__name__="build_info"})"#,
            &[(build, M012)],
        );
        check(&r, r#"info(metric, {__name__=~".+_info"})"#, &[(all, M012)]);
        // Only negative name matchers: among `.+_info` metrics.
        check(
            &r,
            r#"info(metric, {__name__!="target_info"})"#,
            &[(build, M012)],
        );
        check(
            &r,
            r#"info(metric, {__name__!~".+_info", data=~".+"})"#,
            &[],
        );
        check(
            &r,
            r#"info(metric, {__name__!~".+_info", data=~".*"})"#,
            &[(plain, M012)],
        );
        // Info series themselves are passed through when they match every name matcher.
        let build_info = r#"build_info{build_data="build", instance="a", job="1"}"#;
        check(
            &r,
            r#"info(build_info, {__name__=~".+_info"})"#,
            &[(build_info, [1.0; 3])],
        );
        check(
            &r,
            r#"info(build_info, {__name__=~".+_info", another_data=~".+"})"#,
            &[(build_info, [1.0; 3])],
        );
        // ... but not when one of them rejects it.
        check(
            &r,
            r#"info(build_info, {__name__=~"target_.+", __name__=~".+_info"})"#,
            &[(
                r#"build_info{another_data="another info", build_data="build", data="info", instance="a", job="1"}"#,
                [1.0; 3],
            )],
        );
    }

    #[test]
    fn the_newest_info_sample_wins_and_stale_ones_end() {
        let r = load(
            5 * M,
            &[
                (r#"metric{instance="a", job="1"}"#, "0 1 2"),
                (
                    r#"target_info{instance="a", job="1", data="info"}"#,
                    "1 1 _",
                ),
                (
                    r#"target_info{instance="a", job="1", data="updated info"}"#,
                    "_ _ 1",
                ),
            ],
        );
        let want: &[(&str, &[(i64, f64)])] = &[
            (
                r#"metric{data="info", instance="a", job="1"}"#,
                &[(0, 0.0), (5 * M, 1.0)],
            ),
            (
                r#"metric{data="updated info", instance="a", job="1"}"#,
                &[(10 * M, 2.0)],
            ),
        ];
        assert_matrix(range(&r, &q("info(metric)"), 0, 10 * M, 5 * M), want);
        let r = load(
            5 * M,
            &[
                (r#"metric{instance="a", job="1"}"#, "0 1 2"),
                (
                    r#"target_info{instance="a", job="1", data="info"}"#,
                    "1 1 stale",
                ),
                (
                    r#"target_info{instance="a", job="1", data="updated info"}"#,
                    "_ _ 1",
                ),
            ],
        );
        assert_matrix(range(&r, &q("info(metric)"), 0, 10 * M, 5 * M), want);
    }

    #[test]
    fn info_series_are_read_within_the_lookback_at_the_selectors_time() {
        let r = load(
            M,
            &[
                (
                    r#"metric{instance="a", job="1", label="value"}"#,
                    "0 _ 2 3 4",
                ),
                (
                    r#"target_info{instance="a", job="1", data="info"}"#,
                    "1 _ 1 1 1",
                ),
            ],
        );
        let name = r#"metric{data="info", instance="a", job="1", label="value"}"#;
        let at = |vals: [f64; 4]| -> Vec<(i64, f64)> { (1..=4).map(|i| i * M).zip(vals).collect() };
        for (query, vals) in [
            ("info(metric)", [0.0, 2.0, 3.0, 4.0]),
            ("info(metric @ 60)", [0.0; 4]),
            ("info(metric offset 1m)", [0.0, 0.0, 2.0, 3.0]),
        ] {
            assert_matrix(range(&r, &q(query), M, 4 * M, M), &[(name, &at(vals))]);
        }
    }

    #[test]
    fn identifying_labels_present_on_the_series_decide_the_match() {
        let r = load(
            M,
            &[
                (r#"data_metric{instance="a", job="work"}"#, "10 20 30"),
                (r#"data_metric{instance="b", job="work"}"#, "11 21 31"),
                (r#"data_metric{}"#, "1 2 3"),
                (
                    r#"info_metric{instance="b", job="work", state="stopped"}"#,
                    "1 1 _",
                ),
                (
                    r#"info_metric{instance="b", job="work", state="running"}"#,
                    "_ _ 1",
                ),
                (
                    r#"info_metric{instance="a", job="work", state="running"}"#,
                    "1 1 1",
                ),
                (r#"metric{instance="c"}"#, "1 2 3"),
                (r#"custom_info{instance="c", enriched="yes"}"#, "1 1 1"),
            ],
        );
        assert_matrix(
            range(
                &r,
                &q(r#"info(data_metric, {__name__="info_metric"})"#),
                0,
                2 * M,
                M,
            ),
            &[
                ("data_metric", &[(0, 1.0), (M, 2.0), (2 * M, 3.0)]),
                (
                    r#"data_metric{instance="a", job="work", state="running"}"#,
                    &[(0, 10.0), (M, 20.0), (2 * M, 30.0)],
                ),
                (
                    r#"data_metric{instance="b", job="work", state="running"}"#,
                    &[(2 * M, 31.0)],
                ),
                (
                    r#"data_metric{instance="b", job="work", state="stopped"}"#,
                    &[(0, 11.0), (M, 21.0)],
                ),
            ],
        );
        assert_vector(
            instant(&r, &q(r#"info(metric, {__name__="custom_info"})"#), M),
            &[(r#"metric{enriched="yes", instance="c"}"#, 2.0)],
        );
    }

    #[test]
    fn conflicts_and_duplicates_fail_with_prometheus_messages() {
        let r = load(
            M,
            &[
                (r#"metric{instance="a", job="1"}"#, "1 2 3"),
                (
                    r#"target_info{instance="a", job="1", x="from_target"}"#,
                    "1 1 1",
                ),
                (
                    r#"build_info{instance="a", job="1", x="from_build"}"#,
                    "1 1 1",
                ),
            ],
        );
        let e = error_of(instant(&r, &q(r#"info(metric, {__name__=~".+_info"})"#), M));
        assert_eq!(e, "conflicting label: x");
        let r = load(
            M,
            &[
                (r#"metric{instance="a", job="1"}"#, "1 2 3"),
                (r#"target_info{instance="a", job="1", x="a"}"#, "1 1 1"),
                (r#"target_info{instance="a", job="1", x="b"}"#, "1 1 1"),
            ],
        );
        assert_eq!(
            error_of(instant(&r, &q("info(metric)"), M)),
            r#"found duplicate series for info metric: existing {__name__="target_info", instance="a", job="1", x="a"} @ 60000, new {__name__="target_info", instance="a", job="1", x="b"} @ 60000"#
        );
        // Two results with the same labels.
        let r = load(
            M,
            &[
                (r#"metric{instance="a", job="1", data="x"}"#, "1"),
                (r#"metric{instance="a", job="1"}"#, "1"),
                (r#"target_info{instance="a", job="1", data="x"}"#, "1"),
            ],
        );
        assert_eq!(
            error_of(instant(&r, &q("info(metric)"), 0)),
            "vector cannot contain metrics with the same labelset"
        );
    }
}
