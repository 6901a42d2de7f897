//! Test-only helpers: an in-memory [`SeriesReader`] loaded with Prometheus' test-file
//! series notation (`load 5m` + `metric{a="b"} 0+10x10`), AST builders standing in for the
//! parser, and result assertions with a relative tolerance.

use super::{EngineOptions, EvalError, Value, instant_query, range_query};
use crate::model::{Labels, METRIC_NAME, MatchOp, Matcher, Sample, stale_nan};
use crate::query::promql::ast::*;
use crate::query::{ReadError, SeriesData, SeriesReader};
use std::sync::atomic::{AtomicUsize, Ordering};

/// In-memory store; counts `select` calls so tests can check data is loaded once.
#[derive(Default)]
pub struct MemReader {
    pub series: Vec<SeriesData>,
    pub selects: AtomicUsize,
}

impl SeriesReader for MemReader {
    fn select(
        &self,
        matchers: &[Matcher],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<Vec<SeriesData>, ReadError> {
        self.selects.fetch_add(1, Ordering::SeqCst);
        let mut out: Vec<SeriesData> = self
            .series
            .iter()
            .filter(|s| matchers.iter().all(|m| m.matches_labels(&s.labels)))
            .map(|s| SeriesData {
                labels: s.labels.clone(),
                samples: s
                    .samples
                    .iter()
                    .filter(|x| x.t >= start_ms && x.t <= end_ms)
                    .copied()
                    .collect(),
            })
            .filter(|s| !s.samples.is_empty())
            .collect();
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }

    fn series(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<Labels>, ReadError> {
        Ok(Vec::new())
    }

    fn label_names(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, ReadError> {
        Ok(Vec::new())
    }

    fn label_values(
        &self,
        _: &str,
        _: &[Matcher],
        _: i64,
        _: i64,
    ) -> Result<Vec<String>, ReadError> {
        Ok(Vec::new())
    }
}

pub const S: i64 = 1000;
pub const M: i64 = 60 * S;

/// Builds a store like a `load <interval>` block: each line is a series and its values in
/// the test-file notation (`1 2 _ stale 0+10x5 1x3 NaN`), starting at t=0.
pub fn load(interval_ms: i64, lines: &[(&str, &str)]) -> MemReader {
    let series = lines
        .iter()
        .map(|(sel, values)| SeriesData {
            labels: parse_series(sel),
            samples: parse_values(interval_ms, values)
                .unwrap_or_else(|| panic!("bad values {values:?}")),
        })
        .collect();
    MemReader {
        series,
        selects: AtomicUsize::new(0),
    }
}

/// Expands test-file value notation into samples every `interval_ms` from t=0; `None` for
/// notation this helper does not know (native histograms, ...).
pub fn parse_values(interval_ms: i64, values: &str) -> Option<Vec<Sample>> {
    let mut samples = Vec::new();
    let mut step = 0i64;
    for tok in values.split_whitespace() {
        if let Some(n) = tok.strip_prefix("_x") {
            step += n.parse::<i64>().ok()?;
            continue;
        }
        if tok == "_" {
            step += 1;
            continue;
        }
        if tok == "stale" {
            samples.push(Sample {
                t: step * interval_ms,
                v: stale_nan(),
            });
            step += 1;
            continue;
        }
        if let Some((head, n)) = tok.split_once('x') {
            let n: i64 = n.parse().ok()?;
            // `a+bxn` / `a-bxn` / `axn`: n+1 values. The sign search skips the first
            // character and exponent signs (`1e-3`).
            let bytes = head.as_bytes();
            let split = (1..bytes.len()).find(|&i| {
                (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E')
            });
            let (a, b) = match split {
                Some(i) => (num_tok(&head[..i])?, num_tok(&head[i..])?),
                None => (num_tok(head)?, 0.0),
            };
            for i in 0..=n {
                samples.push(Sample {
                    t: step * interval_ms,
                    v: a + b * i as f64,
                });
                step += 1;
            }
            continue;
        }
        samples.push(Sample {
            t: step * interval_ms,
            v: num_tok(tok)?,
        });
        step += 1;
    }
    Some(samples)
}

fn num_tok(s: &str) -> Option<f64> {
    match s.to_ascii_lowercase().as_str() {
        "inf" | "+inf" => Some(f64::INFINITY),
        "-inf" => Some(f64::NEG_INFINITY),
        "nan" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// Parses `name{a="b", c="d"}` into labels (test input only).
pub fn parse_series(s: &str) -> Labels {
    let (name, rest) = match s.find('{') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    if !name.is_empty() {
        pairs.push((METRIC_NAME.into(), name.into()));
    }
    for (n, _, v) in parse_matchers(rest) {
        pairs.push((n, v));
    }
    Labels::from_pairs(pairs)
}

fn parse_matchers(s: &str) -> Vec<(String, MatchOp, String)> {
    let inner = s.trim().trim_start_matches('{').trim_end_matches('}');
    // Split on commas outside double quotes, so values may hold commas.
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, ch) in inner.char_indices() {
        match ch {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    let mut out = Vec::new();
    for part in parts.into_iter().map(str::trim).filter(|p| !p.is_empty()) {
        let Some((op, i, len)) = ["=~", "!~", "!=", "="]
            .iter()
            .filter_map(|o| part.find(o).map(|i| (*o, i, o.len())))
            .min_by_key(|x| x.1)
        else {
            continue;
        };
        let op = match op {
            "=~" => MatchOp::Regex,
            "!~" => MatchOp::NotRegex,
            "!=" => MatchOp::NotEqual,
            _ => MatchOp::Equal,
        };
        let name = part[..i].trim().trim_matches('"').to_string();
        let value = part[i + len..].trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value)
            .replace("\\\"", "\"")
            .replace("\\\\", "\\");
        out.push((name, op, value));
    }
    out
}

/// A vector selector from `name{a="b", c=~"d"}`.
pub fn sel(s: &str) -> Expr {
    Expr::VectorSelector(vsel(s))
}

pub fn vsel(s: &str) -> VectorSelector {
    let (name, rest) = match s.find('{') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let mut matchers = Vec::new();
    if !name.is_empty() {
        matchers.push(Matcher::equal(METRIC_NAME, name));
    }
    for (n, op, v) in parse_matchers(rest) {
        matchers.push(Matcher::new(op, n, v).expect("matcher"));
    }
    VectorSelector {
        name: (!name.is_empty()).then(|| name.to_string()),
        matchers,
        offset_ms: 0,
        offset_expr: None,
        at: None,
        anchored: false,
        smoothed: false,
        span: Span::default(),
    }
}

/// A range selector `s[range]`.
pub fn msel(s: &str, range_ms: i64) -> Expr {
    Expr::MatrixSelector(MatrixSelector {
        selector: vsel(s),
        range_ms,
        range_expr: None,
        span: Span::default(),
    })
}

/// Sets `offset` and `@` on a selector (vector or range) or subquery.
pub fn modif(mut e: Expr, offset_ms: i64, at: Option<AtModifier>) -> Expr {
    match &mut e {
        Expr::VectorSelector(vs) => {
            vs.offset_ms = offset_ms;
            vs.at = at;
        }
        Expr::MatrixSelector(ms) => {
            ms.selector.offset_ms = offset_ms;
            ms.selector.at = at;
        }
        Expr::Subquery(sq) => {
            sq.offset_ms = offset_ms;
            sq.at = at;
        }
        _ => panic!("no modifiers on {e:?}"),
    }
    e
}

pub fn subq(e: Expr, range_ms: i64, step_ms: Option<i64>) -> Expr {
    Expr::Subquery(Subquery {
        expr: Box::new(e),
        range_ms,
        step_ms,
        offset_ms: 0,
        range_expr: None,
        step_expr: None,
        offset_expr: None,
        at: None,
        span: Span::default(),
    })
}

pub fn num(v: f64) -> Expr {
    Expr::Number(v)
}

pub fn string(s: &str) -> Expr {
    Expr::String(s.into())
}

pub fn call(func: &'static str, args: Vec<Expr>) -> Expr {
    Expr::Call(Call {
        func,
        args,
        span: Span::default(),
    })
}

pub fn by(names: &[&str]) -> Grouping {
    Grouping::By(names.iter().map(|s| s.to_string()).collect())
}

pub fn agg(op: AggregateOp, e: Expr, g: Grouping) -> Expr {
    Expr::Aggregate(Aggregate {
        op,
        expr: Box::new(e),
        param: None,
        grouping: g,
        span: Span::default(),
    })
}

pub fn agg_p(op: AggregateOp, p: Expr, e: Expr, g: Grouping) -> Expr {
    Expr::Aggregate(Aggregate {
        op,
        expr: Box::new(e),
        param: Some(Box::new(p)),
        grouping: g,
        span: Span::default(),
    })
}

/// A binary expression; vector matching is filled in (default `ignoring()`), as the parser
/// does when both sides are vectors.
pub fn bin(op: BinaryOp, l: Expr, r: Expr) -> Expr {
    bin_m(op, l, r, false, None)
}

pub fn bin_m(op: BinaryOp, l: Expr, r: Expr, return_bool: bool, m: Option<VectorMatching>) -> Expr {
    let both_vectors = l.value_type() == ValueType::Vector && r.value_type() == ValueType::Vector;
    let matching = m.or_else(|| {
        both_vectors.then(|| VectorMatching {
            card: if op.is_set() {
                Cardinality::ManyToMany
            } else {
                Cardinality::OneToOne
            },
            on: false,
            labels: Vec::new(),
            include: Vec::new(),
        })
    });
    Expr::Binary(Binary {
        op,
        lhs: Box::new(l),
        rhs: Box::new(r),
        return_bool,
        matching,
        fill_left: None,
        fill_right: None,
        span: Span::default(),
    })
}

pub fn matching(card: Cardinality, on: bool, labels: &[&str], include: &[&str]) -> VectorMatching {
    VectorMatching {
        card,
        on,
        labels: labels.iter().map(|s| s.to_string()).collect(),
        include: include.iter().map(|s| s.to_string()).collect(),
    }
}

pub fn instant(r: &MemReader, e: &Expr, t: i64) -> Result<Value, EvalError> {
    instant_query(r, e, t, &EngineOptions::default())
}

pub fn range(r: &MemReader, e: &Expr, start: i64, end: i64, step: i64) -> Result<Value, EvalError> {
    range_query(r, e, start, end, step, &EngineOptions::default())
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

/// Asserts an instant vector holds exactly `want` (labels in Prometheus' text form, any
/// order), values within a relative 1e-9.
#[track_caller]
pub fn assert_vector(got: Result<Value, EvalError>, want: &[(&str, f64)]) {
    let got = match got {
        Ok(Value::Vector(v)) => v,
        other => panic!("expected a vector, got {other:?}"),
    };
    let mut got: Vec<(String, f64)> = got.iter().map(|s| (s.labels.to_string(), s.v)).collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want: Vec<(String, f64)> = want.iter().map(|(l, v)| (l.to_string(), *v)).collect();
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let ok = got.len() == want.len()
        && got
            .iter()
            .zip(&want)
            .all(|(g, w)| g.0 == w.0 && close(g.1, w.1));
    assert!(ok, "got {got:?}\nwant {want:?}");
}

/// Asserts a matrix holds exactly `want`: per series (in order) its (t, v) points.
#[track_caller]
pub fn assert_matrix(got: Result<Value, EvalError>, want: &[(&str, &[(i64, f64)])]) {
    let got = match got {
        Ok(Value::Matrix(m)) => m,
        other => panic!("expected a matrix, got {other:?}"),
    };
    let got: Vec<(String, Vec<(i64, f64)>)> = got
        .iter()
        .map(|s| {
            (
                s.labels.to_string(),
                s.samples.iter().map(|x| (x.t, x.v)).collect(),
            )
        })
        .collect();
    let ok = got.len() == want.len()
        && got.iter().zip(want).all(|(g, w)| {
            g.0 == w.0
                && g.1.len() == w.1.len()
                && g.1
                    .iter()
                    .zip(w.1.iter())
                    .all(|(a, b)| a.0 == b.0 && close(a.1, b.1))
        });
    assert!(ok, "got {got:?}\nwant {want:?}");
}

/// The error message of a failing query.
#[track_caller]
pub fn error_of(got: Result<Value, EvalError>) -> String {
    match got {
        Err(e) => e.to_string(),
        Ok(v) => panic!("expected an error, got {v:?}"),
    }
}

/// Parses a query; test input is expected to be valid.
#[track_caller]
pub fn q(s: &str) -> Expr {
    crate::query::promql::parse(s).unwrap_or_else(|e| panic!("parse {s:?}: {e}"))
}
