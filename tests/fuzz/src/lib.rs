//! Shared pieces of the PromQL fuzz targets: the span-free form of a parsed tree (for the
//! print/re-parse property of `promql_parse`) and the small fixed in-memory store and tight
//! engine limits that `promql_eval` evaluates against.

use picket::model::{Labels, Matcher, Sample, stale_nan};
use picket::query::promql::Expr;
use picket::query::promql::ast::Span;
use picket::query::promql::eval::EngineOptions;
use picket::query::{ReadError, SeriesData, SeriesReader};
use std::time::Duration;

/// `expr` with every span zeroed: printing loses positions, nothing else.
pub fn without_spans(expr: &Expr) -> Expr {
    let mut e = expr.clone();
    clear_spans(&mut e);
    e
}

fn clear_spans(expr: &mut Expr) {
    let zero = Span::default();
    match expr {
        Expr::Number(_) | Expr::String(_) => {}
        Expr::VectorSelector(vs) => vs.span = zero,
        Expr::MatrixSelector(ms) => {
            ms.span = zero;
            ms.selector.span = zero;
        }
        Expr::Subquery(sq) => {
            sq.span = zero;
            clear_spans(&mut sq.expr);
        }
        Expr::Call(c) => {
            c.span = zero;
            c.args.iter_mut().for_each(clear_spans);
        }
        Expr::Aggregate(a) => {
            a.span = zero;
            clear_spans(&mut a.expr);
            if let Some(p) = &mut a.param {
                clear_spans(p);
            }
        }
        Expr::Binary(b) => {
            b.span = zero;
            clear_spans(&mut b.lhs);
            clear_spans(&mut b.rhs);
        }
        Expr::Neg(e) | Expr::Paren(e) => clear_spans(e),
    }
}

/// Milliseconds per second and minute, for the store's timestamps.
const S: i64 = 1000;
const M: i64 = 60 * S;

/// The instant query time of `promql_eval`: inside the data, off the sample grid.
pub const INSTANT_T: i64 = 20 * M + 250;
/// The range query of `promql_eval`: 11 steps of one minute.
pub const RANGE_START: i64 = 10 * M + 250;
pub const RANGE_END: i64 = 20 * M + 250;
pub const RANGE_STEP: i64 = M;

/// Limits small enough that no input can exhaust memory or run for long: a query that
/// needs more fails with the engine's own `too many samples` or timeout error.
pub fn engine_options() -> EngineOptions {
    EngineOptions {
        lookback_delta_ms: 5 * M,
        max_samples: 20_000,
        timeout: Duration::from_millis(500),
        default_subquery_step_ms: M,
    }
}

/// A fixed store of a few dozen series over 30 minutes at a 15 s scrape interval: counters
/// (with a reset and a gap), gauges (with NaN, ±Inf and staleness markers), a classic
/// histogram with `le` buckets, `up` and `target_info`/`build_info` info metrics. Names follow
/// the differential corpus (`tests/promql_differential/queries.txt`), the seed corpus.
pub struct FuzzStore(Vec<SeriesData>);

impl FuzzStore {
    pub fn new() -> FuzzStore {
        let steps = 30 * 4; // 30 minutes at 15 s
        let at = |k: i64| k * 15 * S + 500; // off the minute grid, like real scrapes
        let series = |pairs: &[(&str, &str)], f: &dyn Fn(i64) -> Option<f64>| SeriesData {
            labels: Labels::from_pairs(pairs.iter().copied()),
            samples: (0..steps)
                .filter_map(|k| f(k).map(|v| Sample { t: at(k), v }))
                .collect(),
        };
        let mut out = Vec::new();
        for (job, instance) in [("api", "a:9100"), ("api", "b:9100"), ("db", "c:9100")] {
            for (code, mult) in [("200", 7.0), ("500", 1.0)] {
                out.push(series(
                    &[
                        ("__name__", "http_requests_total"),
                        ("job", job),
                        ("instance", instance),
                        ("code", code),
                        ("method", "get"),
                    ],
                    // A counter reset at 12 minutes on b, a 3-minute gap on c.
                    &|k| match (instance, k) {
                        ("b:9100", k) if k >= 48 => Some((k - 48) as f64 * mult),
                        ("c:9100", 40..52) => None,
                        (_, k) => Some(k as f64 * mult),
                    },
                ));
            }
            out.push(series(
                &[("__name__", "up"), ("job", job), ("instance", instance)],
                &|k| {
                    Some(if instance == "c:9100" && k % 20 < 3 {
                        0.0
                    } else {
                        1.0
                    })
                },
            ));
            out.push(series(
                &[
                    ("__name__", "target_info"),
                    ("job", job),
                    ("instance", instance),
                    ("k8s_cluster", "pi"),
                    ("region", if job == "db" { "west" } else { "east" }),
                ],
                &|_| Some(1.0),
            ));
        }
        for host in ["n1", "n2"] {
            out.push(series(
                &[("__name__", "node_temperature_celsius"), ("host", host)],
                &|k| Some(40.0 + (k as f64 / 5.0).sin() * 3.0),
            ));
            for (ty, base) in [("free", 1e9), ("used", 3e9)] {
                out.push(series(
                    &[
                        ("__name__", "node_memory_bytes"),
                        ("host", host),
                        ("type", ty),
                    ],
                    &|k| Some(base + (k % 13) as f64 * 1e6),
                ));
            }
        }
        out.push(series(&[("__name__", "queue_length")], &|k| {
            Some(((k * 37) % 11) as f64 - 3.0)
        }));
        for (case, special) in [
            ("plain", None),
            ("nan", Some(f64::NAN)),
            ("inf", Some(f64::INFINITY)),
            ("neginf", Some(f64::NEG_INFINITY)),
            ("stale", Some(stale_nan())),
        ] {
            out.push(series(
                &[("__name__", "weird_gauge"), ("case", case)],
                // The special value every 7th sample; the stale series ends at 25 minutes.
                &|k| match special {
                    _ if case == "stale" && k > 100 => None,
                    Some(v) if k % 7 == 3 => Some(v),
                    _ => Some(k as f64 * 0.5),
                },
            ));
        }
        let buckets = [("0.1", 0.3), ("0.5", 0.6), ("1", 0.9), ("+Inf", 1.0)];
        for (le, share) in buckets {
            out.push(series(
                &[
                    ("__name__", "http_request_duration_seconds_bucket"),
                    ("job", "api"),
                    ("le", le),
                ],
                &|k| Some((k as f64 * 10.0 * share).floor()),
            ));
        }
        // Buckets with a non-monotonic pair and the VictoriaMetrics `vmrange` form.
        for (le, v) in [("0.1", 5.0), ("1", 4.0), ("+Inf", 9.0)] {
            out.push(series(&[("__name__", "odd_bucket"), ("le", le)], &|k| {
                Some(v * k as f64)
            }));
        }
        for (vmrange, v) in [("0...1", 2.0), ("1...10", 3.0)] {
            out.push(series(
                &[("__name__", "vm_bucket"), ("vmrange", vmrange)],
                &|k| Some(v * k as f64),
            ));
        }
        out.push(series(
            &[
                ("__name__", "http_request_duration_seconds_count"),
                ("job", "api"),
            ],
            &|k| Some(k as f64 * 10.0),
        ));
        out.push(series(
            &[
                ("__name__", "http_request_duration_seconds_sum"),
                ("job", "api"),
            ],
            &|k| Some(k as f64 * 2.5),
        ));
        out.push(series(
            &[
                ("__name__", "build_info"),
                ("version", "1.2.3"),
                ("job", "api"),
            ],
            &|_| Some(1.0),
        ));
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        FuzzStore(out)
    }

    fn matching<'a>(&'a self, m: &'a [Matcher]) -> impl Iterator<Item = &'a SeriesData> + 'a {
        self.0
            .iter()
            .filter(move |s| m.iter().all(|m| m.matches_labels(&s.labels)))
    }
}

impl Default for FuzzStore {
    fn default() -> Self {
        FuzzStore::new()
    }
}

impl SeriesReader for FuzzStore {
    fn select(&self, m: &[Matcher], start: i64, end: i64) -> Result<Vec<SeriesData>, ReadError> {
        Ok(self
            .matching(m)
            .map(|s| SeriesData {
                labels: s.labels.clone(),
                samples: s
                    .samples
                    .iter()
                    .filter(|p| p.t >= start && p.t <= end)
                    .copied()
                    .collect(),
            })
            .filter(|s| !s.samples.is_empty())
            .collect())
    }

    fn series(&self, m: &[Matcher], start: i64, end: i64) -> Result<Vec<Labels>, ReadError> {
        Ok(self
            .select(m, start, end)?
            .into_iter()
            .map(|s| s.labels)
            .collect())
    }

    fn label_names(&self, m: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, ReadError> {
        let mut names: Vec<String> = self
            .matching(m)
            .flat_map(|s| s.labels.iter().map(|l| l.name.to_string()))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    fn label_values(
        &self,
        name: &str,
        m: &[Matcher],
        _: i64,
        _: i64,
    ) -> Result<Vec<String>, ReadError> {
        let mut values: Vec<String> = self
            .matching(m)
            .filter_map(|s| s.labels.get(name).map(str::to_string))
            .collect();
        values.sort();
        values.dedup();
        Ok(values)
    }
}
