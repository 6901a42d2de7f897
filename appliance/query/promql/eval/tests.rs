//! Evaluator tests against the in-memory reader. Expected numbers marked "functions.test"
//! etc. come from Prometheus' own test files (/work/shared/conformance/promql).

use super::testutil::*;
use super::{EngineOptions, EvalError, Value, instant_query, range_query};
use crate::model::{Labels, Sample};
use crate::query::promql::ast::{AggregateOp as A, AtModifier, BinaryOp as B, Cardinality};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

/// Expected instant vector: labels in text form and values.
type Expected<'a> = &'a [(&'a str, f64)];

fn http_requests_total() -> MemReader {
    load(
        5 * M,
        &[
            (r#"http_requests_total{path="/foo"}"#, "0+10x10"),
            (r#"http_requests_total{path="/bar"}"#, "0+18x5 0+18x5"),
            (r#"http_requests_total{path="/dings"}"#, "10+10x10"),
            (r#"http_requests_total{path="/bumms"}"#, "1+10x10"),
        ],
    )
}

#[test]
fn increase_matches_prometheus_extrapolation_cases() {
    let r = http_requests_total();
    // functions.test: "Tests for increase()".
    let cases: &[(i64, &[(&str, f64)])] = &[
        (
            50 * M,
            &[
                (r#"{path="/foo"}"#, 100.0),
                (r#"{path="/bar"}"#, 160.0),
                (r#"{path="/dings"}"#, 100.0),
                (r#"{path="/bumms"}"#, 100.0),
            ],
        ),
        (
            100 * M,
            &[
                (r#"{path="/foo"}"#, 100.0),
                (r#"{path="/bar"}"#, 162.0),
                (r#"{path="/dings"}"#, 105.0),
                (r#"{path="/bumms"}"#, 101.0),
            ],
        ),
    ];
    for (range_ms, want) in cases {
        let e = call("increase", vec![msel("http_requests_total", *range_ms)]);
        assert_vector(instant(&r, &e, 50 * M), want);
    }
}

#[test]
fn rate_is_increase_per_second_of_the_range() {
    let r = http_requests_total();
    let e = call(
        "rate",
        vec![msel(r#"http_requests_total{path="/foo"}"#, 50 * M)],
    );
    assert_vector(
        instant(&r, &e, 50 * M),
        &[(r#"{path="/foo"}"#, 100.0 / 3000.0)],
    );
}

#[test]
fn rate_needs_two_samples_in_the_window() {
    let r = http_requests_total();
    let e = call("rate", vec![msel("http_requests_total", 5 * M)]);
    assert_vector(instant(&r, &e, 50 * M), &[]);
}

#[test]
fn delta_extrapolates_without_counter_handling() {
    // functions.test: delta(http_requests[20m]) at 50m with 0+10x10 gives 40... checked by
    // hand: samples 30m..50m (5 samples, 200s apart is 300s), to_start 0 extrapolation.
    let r = load(5 * M, &[(r#"http_requests{path="/foo"}"#, "0+10x10")]);
    let e = call("delta", vec![msel("http_requests", 20 * M)]);
    // Window (30m, 50m]: samples at 35..50m (4 samples, 40 -> 100... values 70..100):
    // result 30, sampled 900 s, to_start 300 s (< 330) so extrapolated fully: 30*1200/900.
    assert_vector(instant(&r, &e, 50 * M), &[(r#"{path="/foo"}"#, 40.0)]);
}

#[test]
fn irate_and_idelta_use_the_last_two_samples() {
    let r = load(5 * M, &[("c", "0 10 25 5")]);
    let cases: &[(&str, f64)] = &[
        // A decrease is a reset for irate: the last value over the interval.
        ("irate", 5.0 / 300.0),
        ("idelta", -20.0),
    ];
    for (f, want) in cases {
        let e = call(f, vec![msel("c", 20 * M)]);
        assert_vector(instant(&r, &e, 15 * M), &[("{}", *want)]);
    }
}

#[test]
fn resets_and_changes_match_functions_test() {
    let r = load(
        5 * M,
        &[
            (r#"http_requests{path="/foo"}"#, "1 2 3 0 1 0 0 1 2 0"),
            (r#"http_requests{path="/bar"}"#, "1 2 3 4 5 1 2 3 4 5"),
            (r#"http_requests{path="/biz"}"#, "0 0 0 0 0 1 1 1 1 1"),
        ],
    );
    let cases: &[(&str, i64, &[f64; 3])] = &[
        ("resets", 20 * M, &[1.0, 0.0, 0.0]),
        ("resets", 32 * M, &[2.0, 1.0, 0.0]),
        ("resets", 50 * M, &[3.0, 1.0, 0.0]),
        ("changes", 20 * M, &[2.0, 2.0, 0.0]),
        ("changes", 30 * M, &[3.0, 4.0, 0.0]),
        ("changes", 50 * M, &[7.0, 8.0, 1.0]),
    ];
    for (f, rng, want) in cases {
        let e = call(f, vec![msel("http_requests", *rng)]);
        assert_vector(
            instant(&r, &e, 50 * M),
            &[
                (r#"{path="/foo"}"#, want[0]),
                (r#"{path="/bar"}"#, want[1]),
                (r#"{path="/biz"}"#, want[2]),
            ],
        );
    }
    // An empty window drops the series.
    let e = call("resets", vec![msel("http_requests", 5 * M)]);
    assert_vector(instant(&r, &e, 50 * M), &[]);
}

#[test]
fn changes_treats_nan_to_nan_as_no_change() {
    let r = load(
        5 * M,
        &[(r#"x{a="b"}"#, "NaN NaN NaN"), (r#"x{a="c"}"#, "0 NaN 0")],
    );
    let e = call("changes", vec![msel("x", 20 * M)]);
    assert_vector(
        instant(&r, &e, 15 * M),
        &[(r#"{a="b"}"#, 0.0), (r#"{a="c"}"#, 2.0)],
    );
}

#[test]
fn over_time_functions_compute_over_the_left_open_window() {
    let r = load(M, &[("m", "1 2 3 4 5")]);
    // Window (1m, 4m] holds 2m, 3m, 4m: values 3, 4, 5.
    let cases: &[(&'static str, f64)] = &[
        ("avg_over_time", 4.0),
        ("sum_over_time", 12.0),
        ("min_over_time", 3.0),
        ("max_over_time", 5.0),
        ("count_over_time", 3.0),
        ("last_over_time", 5.0),
        ("present_over_time", 1.0),
        ("stdvar_over_time", 2.0 / 3.0),
        ("stddev_over_time", (2.0f64 / 3.0).sqrt()),
    ];
    for (f, want) in cases {
        let e = call(f, vec![msel("m", 3 * M)]);
        let labels = if *f == "last_over_time" { "m" } else { "{}" };
        assert_vector(instant(&r, &e, 4 * M), &[(labels, *want)]);
    }
    let e = call("quantile_over_time", vec![num(0.5), msel("m", 3 * M)]);
    assert_vector(instant(&r, &e, 4 * M), &[("{}", 4.0)]);
}

#[test]
fn instant_selector_finds_the_latest_sample_within_the_left_open_lookback() {
    let r = load(5 * M, &[("m", "1 2")]);
    let cases: &[(i64, Option<f64>)] = &[
        (0, Some(1.0)),
        (4 * M, Some(1.0)),
        (5 * M, Some(2.0)),
        (9 * M, Some(2.0)),
        // Exactly lookback after the last sample: left-open, so gone.
        (10 * M, None),
        (-1, None),
    ];
    for (t, want) in cases {
        let got = instant(&r, &sel("m"), *t);
        match want {
            Some(v) => assert_vector(got, &[("m", *v)]),
            None => assert_vector(got, &[]),
        }
    }
}

#[test]
fn instant_vector_samples_carry_the_evaluation_time() {
    let r = load(5 * M, &[("m", "1")]);
    match instant(&r, &sel("m"), 2 * M) {
        Ok(Value::Vector(v)) => assert_eq!(v[0].t, 2 * M),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_staleness_marker_hides_the_series_until_the_next_sample() {
    let r = load(M, &[("m", "1 stale _ 4")]);
    let cases: &[(i64, Option<f64>)] =
        &[(0, Some(1.0)), (M, None), (2 * M, None), (3 * M, Some(4.0))];
    for (t, want) in cases {
        let got = instant(&r, &sel("m"), *t);
        match want {
            Some(v) => assert_vector(got, &[("m", *v)]),
            None => assert_vector(got, &[]),
        }
    }
    // Range windows skip the marker.
    let e = call("count_over_time", vec![msel("m", 10 * M)]);
    assert_vector(instant(&r, &e, 3 * M), &[("{}", 2.0)]);
}

#[test]
fn range_selectors_exclude_the_window_start() {
    let r = load(M, &[("m", "1 2 3")]);
    match instant(&r, &msel("m", 2 * M), 2 * M) {
        Ok(Value::Matrix(m)) => {
            let ts: Vec<i64> = m[0].samples.iter().map(|s| s.t).collect();
            assert_eq!(ts, vec![M, 2 * M]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn offset_and_at_move_the_reference_time() {
    let r = load(M, &[("m", "0+1x10")]);
    let cases: &[(Expr, f64)] = &[
        (modif(sel("m"), 2 * M, None), 3.0),
        (modif(sel("m"), -2 * M, None), 7.0),
        (modif(sel("m"), 0, Some(AtModifier::Timestamp(M))), 1.0),
        (modif(sel("m"), M, Some(AtModifier::Timestamp(3 * M))), 2.0),
        (modif(sel("m"), 0, Some(AtModifier::Start)), 5.0),
    ];
    for (e, want) in cases {
        assert_vector(instant(&r, e, 5 * M), &[("m", *want)]);
    }
    // In a range query, @ end() pins every step to the query end.
    let e = modif(sel("m"), 0, Some(AtModifier::End));
    assert_matrix(
        range(&r, &e, M, 3 * M, M),
        &[("m", &[(M, 3.0), (2 * M, 3.0), (3 * M, 3.0)])],
    );
}

#[test]
fn range_query_evaluates_every_step_and_loads_each_selector_once() {
    let r = http_requests_total();
    let e = bin(
        B::Add,
        call(
            "rate",
            vec![msel(r#"http_requests_total{path="/foo"}"#, 10 * M)],
        ),
        sel(r#"http_requests_total{path="/foo"}"#),
    );
    let got = range(&r, &e, 20 * M, 30 * M, 5 * M);
    assert_eq!(r.selects.load(Ordering::SeqCst), 2);
    // rate over a perfectly regular counter: 10 per 5m = 1/30 per second.
    let k = 1.0 / 30.0;
    assert_matrix(
        got,
        &[(
            r#"{path="/foo"}"#,
            &[(20 * M, 40.0 + k), (25 * M, 50.0 + k), (30 * M, 60.0 + k)],
        )],
    );
}

#[test]
fn range_query_of_a_scalar_is_one_series_without_labels() {
    let r = MemReader::default();
    let e = call("time", vec![]);
    assert_matrix(
        range(&r, &e, 0, 2 * S, S),
        &[("{}", &[(0, 0.0), (S, 1.0), (2 * S, 2.0)])],
    );
}

#[test]
fn range_query_results_are_sorted_by_labels() {
    let r = load(M, &[(r#"m{a="2"}"#, "1 1"), (r#"m{a="1"}"#, "_ 2")]);
    assert_matrix(
        range(&r, &sel("m"), 0, M, M),
        &[
            (r#"m{a="1"}"#, &[(M, 2.0)]),
            (r#"m{a="2"}"#, &[(0, 1.0), (M, 1.0)]),
        ],
    );
}

#[test]
fn range_query_rejects_range_vectors_and_bad_steps() {
    let r = MemReader::default();
    assert!(matches!(
        range(&r, &msel("m", M), 0, M, M),
        Err(EvalError::BadData(_))
    ));
    assert!(matches!(
        range(&r, &sel("m"), 0, M, 0),
        Err(EvalError::BadData(_))
    ));
}

fn aggr_data() -> MemReader {
    load(
        5 * M,
        &[
            (
                r#"http_requests{job="api-server", instance="0", group="production"}"#,
                "0+10x10",
            ),
            (
                r#"http_requests{job="api-server", instance="1", group="production"}"#,
                "0+20x10",
            ),
            (
                r#"http_requests{job="api-server", instance="0", group="canary"}"#,
                "0+30x10",
            ),
            (
                r#"http_requests{job="api-server", instance="1", group="canary"}"#,
                "0+40x10",
            ),
            (
                r#"http_requests{job="app-server", instance="0", group="production"}"#,
                "0+50x10",
            ),
            (
                r#"http_requests{job="app-server", instance="1", group="production"}"#,
                "0+60x10",
            ),
            (
                r#"http_requests{job="app-server", instance="0", group="canary"}"#,
                "0+70x10",
            ),
            (
                r#"http_requests{job="app-server", instance="1", group="canary"}"#,
                "0+80x10",
            ),
        ],
    )
}

#[test]
fn aggregations_group_by_and_without_as_in_aggregators_test() {
    let r = aggr_data();
    let cases: &[(&str, &[(&str, f64)])] = &[
        (
            "sum by (job) (http_requests)",
            &[
                (r#"{job="api-server"}"#, 1000.0),
                (r#"{job="app-server"}"#, 2600.0),
            ],
        ),
        (
            "sum without (instance) (http_requests)",
            &[
                (r#"{group="canary", job="api-server"}"#, 700.0),
                (r#"{group="canary", job="app-server"}"#, 1500.0),
                (r#"{group="production", job="api-server"}"#, 300.0),
                (r#"{group="production", job="app-server"}"#, 1100.0),
            ],
        ),
        ("sum(http_requests)", &[("{}", 3600.0)]),
        (
            "avg by (job) (http_requests)",
            &[
                (r#"{job="api-server"}"#, 250.0),
                (r#"{job="app-server"}"#, 650.0),
            ],
        ),
        (
            "count by (job) (http_requests)",
            &[
                (r#"{job="api-server"}"#, 4.0),
                (r#"{job="app-server"}"#, 4.0),
            ],
        ),
        (
            "min by (job) (http_requests)",
            &[
                (r#"{job="api-server"}"#, 100.0),
                (r#"{job="app-server"}"#, 500.0),
            ],
        ),
        (
            "max by (job) (http_requests)",
            &[
                (r#"{job="api-server"}"#, 400.0),
                (r#"{job="app-server"}"#, 800.0),
            ],
        ),
        (
            "group by (job) (http_requests)",
            &[
                (r#"{job="api-server"}"#, 1.0),
                (r#"{job="app-server"}"#, 1.0),
            ],
        ),
        (
            "stddev by (job) (http_requests)",
            &[
                (r#"{job="api-server"}"#, 111.80339887498948),
                (r#"{job="app-server"}"#, 111.80339887498948),
            ],
        ),
        (
            "stdvar by (job) (http_requests)",
            &[
                (r#"{job="api-server"}"#, 12500.0),
                (r#"{job="app-server"}"#, 12500.0),
            ],
        ),
        (
            "sum by (__name__) (http_requests)",
            &[("http_requests", 3600.0)],
        ),
        (
            "quantile by (job) (0.5, http_requests)",
            &[
                (r#"{job="api-server"}"#, 250.0),
                (r#"{job="app-server"}"#, 650.0),
            ],
        ),
        (
            r#"count_values("v", count by (job) (http_requests))"#,
            &[(r#"{v="4"}"#, 2.0)],
        ),
        (
            "topk by (job) (1, http_requests)",
            &[
                (
                    r#"http_requests{group="canary", instance="1", job="api-server"}"#,
                    400.0,
                ),
                (
                    r#"http_requests{group="canary", instance="1", job="app-server"}"#,
                    800.0,
                ),
            ],
        ),
        (
            "bottomk(1, http_requests)",
            &[(
                r#"http_requests{group="production", instance="0", job="api-server"}"#,
                100.0,
            )],
        ),
    ];
    for (e, want) in cases {
        assert_vector(instant(&r, &q(e), 50 * M), want);
    }
}

#[test]
fn topk_output_is_sorted_best_first() {
    let r = aggr_data();
    let e = agg_p(A::Topk, num(3.0), sel("http_requests"), by(&[]));
    match instant(&r, &e, 50 * M) {
        Ok(Value::Vector(v)) => {
            let vals: Vec<f64> = v.iter().map(|s| s.v).collect();
            assert_eq!(vals, vec![800.0, 700.0, 600.0]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn arithmetic_drops_the_metric_name_and_filters_keep_it() {
    let r = load(M, &[(r#"a{x="1"}"#, "10"), (r#"a{x="2"}"#, "20")]);
    let cases: &[(&str, &[(&str, f64)])] = &[
        ("a * 2", &[(r#"{x="1"}"#, 20.0), (r#"{x="2"}"#, 40.0)]),
        ("1 - a", &[(r#"{x="1"}"#, -9.0), (r#"{x="2"}"#, -19.0)]),
        ("a > 15", &[(r#"a{x="2"}"#, 20.0)]),
        // Scalar on the left of a filter: the vector's own value is kept.
        ("15 < a", &[(r#"a{x="2"}"#, 20.0)]),
        ("a > bool 15", &[(r#"{x="1"}"#, 0.0), (r#"{x="2"}"#, 1.0)]),
        ("a + a", &[(r#"{x="1"}"#, 20.0), (r#"{x="2"}"#, 40.0)]),
        ("a == a", &[(r#"a{x="1"}"#, 10.0), (r#"a{x="2"}"#, 20.0)]),
        ("-a", &[(r#"{x="1"}"#, -10.0), (r#"{x="2"}"#, -20.0)]),
        ("a % 3 ^ 2", &[(r#"{x="1"}"#, 1.0), (r#"{x="2"}"#, 2.0)]),
        (
            "a atan2 a",
            &[
                (r#"{x="1"}"#, std::f64::consts::FRAC_PI_4),
                (r#"{x="2"}"#, std::f64::consts::FRAC_PI_4),
            ],
        ),
    ];
    for (e, want) in cases {
        assert_vector(instant(&r, &q(e), 0), want);
    }
    let scalars: &[(&str, f64)] = &[
        ("2 ^ 10", 1024.0),
        ("7 % -3", 1.0),
        ("1 >= bool 2", 0.0),
        ("1 / 0", f64::INFINITY),
        ("0 / 0", f64::NAN),
        ("-(2 * 3)", -6.0),
    ];
    for (e, want) in scalars {
        match instant(&r, &q(e), 0) {
            Ok(Value::Scalar { v, .. }) => {
                assert!(v == *want || (v.is_nan() && want.is_nan()), "{e}: {v}")
            }
            other => panic!("{e}: {other:?}"),
        }
    }
}

#[test]
fn vector_matching_with_on_ignoring_and_group_modifiers() {
    let r = load(
        M,
        &[
            (r#"req{pod="x", code="200"}"#, "10"),
            (r#"req{pod="y", code="200"}"#, "20"),
            (r#"lim{pod="x", tier="gold"}"#, "2"),
            (r#"lim{pod="y", tier="free"}"#, "4"),
        ],
    );
    let cases: &[(&str, &[(&str, f64)])] = &[
        (
            "req / on(pod) lim",
            &[(r#"{pod="x"}"#, 5.0), (r#"{pod="y"}"#, 5.0)],
        ),
        (
            "req / ignoring(code, tier) lim",
            &[(r#"{pod="x"}"#, 5.0), (r#"{pod="y"}"#, 5.0)],
        ),
        // Without on/ignoring the label sets differ: no match.
        ("req / lim", &[]),
        (
            "req * on(pod) group_left(tier) lim",
            &[
                (r#"{code="200", pod="x", tier="gold"}"#, 20.0),
                (r#"{code="200", pod="y", tier="free"}"#, 80.0),
            ],
        ),
        // Filtering keeps the left side's name and, with on(), only the on() labels.
        (
            "req > on(pod) lim",
            &[(r#"{pod="x"}"#, 10.0), (r#"{pod="y"}"#, 20.0)],
        ),
        (
            "req > bool on(pod) group_left lim",
            &[
                (r#"{code="200", pod="x"}"#, 1.0),
                (r#"{code="200", pod="y"}"#, 1.0),
            ],
        ),
    ];
    for (e, want) in cases {
        assert_vector(instant(&r, &q(e), 0), want);
    }
}

#[test]
fn duplicate_series_on_the_one_side_fail_with_prometheus_message() {
    let r = load(
        M,
        &[
            (r#"req{pod="x", code="200"}"#, "10"),
            (r#"req{pod="x", code="500"}"#, "20"),
            (r#"lim{pod="x"}"#, "2"),
        ],
    );
    let cases: &[(&str, &str)] = &[
        (
            "lim / on(pod) req",
            r#"found duplicate series for the match group {pod="x"} on the right hand-side of the operation: [{__name__="req", code="500", pod="x"}, {__name__="req", code="200", pod="x"}];many-to-many matching not allowed: matching labels must be unique on one side"#,
        ),
        (
            "req / on(pod) group_right lim",
            r#"found duplicate series for the match group {pod="x"} on the left hand-side of the operation: [{__name__="req", code="500", pod="x"}, {__name__="req", code="200", pod="x"}];many-to-many matching not allowed: matching labels must be unique on one side"#,
        ),
        (
            "req / on(pod) lim",
            "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)",
        ),
        (
            "req / ignoring(code) group_left(code) lim",
            "multiple matches for labels: grouping labels must ensure unique matches",
        ),
    ];
    for (e, want) in cases {
        assert_eq!(error_of(instant(&r, &q(e), 0)), *want, "{e}");
    }
    // group_left accepts the many side; group_right mirrors it.
    let cases: &[(&str, &[(&str, f64)])] = &[
        (
            "req / on(pod) group_left lim",
            &[
                (r#"{code="200", pod="x"}"#, 5.0),
                (r#"{code="500", pod="x"}"#, 10.0),
            ],
        ),
        (
            "lim / on(pod) group_right req",
            &[
                (r#"{code="200", pod="x"}"#, 0.2),
                (r#"{code="500", pod="x"}"#, 0.1),
            ],
        ),
    ];
    for (e, want) in cases {
        assert_vector(instant(&r, &q(e), 0), want);
    }
}

#[test]
fn operations_producing_the_same_labelset_fail() {
    let r = load(M, &[(r#"a{x="1"}"#, "1"), (r#"b{x="1"}"#, "2")]);
    let both = sel(r#"{__name__=~"a|b"}"#);
    let cases = vec![
        bin(B::Add, both.clone(), num(1.0)),
        call("abs", vec![both.clone()]),
        call("rate", vec![msel(r#"{__name__=~"a|b"}"#, 5 * M)]),
    ];
    for e in cases {
        let got = instant(&r, &e, 0);
        if matches!(&e, Expr::Call(c) if c.func == "rate") {
            // rate needs two samples: no output, hence no clash.
            assert_vector(got, &[]);
            continue;
        }
        assert_eq!(
            error_of(got),
            "vector cannot contain metrics with the same labelset"
        );
    }
    // Filtering comparisons keep the name, so no clash.
    assert_vector(
        instant(&r, &bin(B::Gt, both, num(0.0)), 0),
        &[(r#"a{x="1"}"#, 1.0), (r#"b{x="1"}"#, 2.0)],
    );
}

#[test]
fn set_operators_match_on_labels_without_the_name() {
    let r = load(
        M,
        &[
            (r#"a{x="1"}"#, "1"),
            (r#"a{x="2"}"#, "2"),
            (r#"b{x="2"}"#, "20"),
            (r#"b{x="3"}"#, "30"),
        ],
    );
    let cases: &[(&str, &[(&str, f64)])] = &[
        ("a and b", &[(r#"a{x="2"}"#, 2.0)]),
        ("a unless b", &[(r#"a{x="1"}"#, 1.0)]),
        (
            "a or b",
            &[
                (r#"a{x="1"}"#, 1.0),
                (r#"a{x="2"}"#, 2.0),
                (r#"b{x="3"}"#, 30.0),
            ],
        ),
        (
            "a and on() b",
            &[(r#"a{x="1"}"#, 1.0), (r#"a{x="2"}"#, 2.0)],
        ),
        (
            "a unless on() nothing",
            &[(r#"a{x="1"}"#, 1.0), (r#"a{x="2"}"#, 2.0)],
        ),
    ];
    for (e, want) in cases {
        assert_vector(instant(&r, &q(e), 0), want);
    }
}

#[test]
fn math_and_label_functions() {
    let r = load(
        M,
        &[
            (r#"m{src="source-value-10", dst="original"}"#, "-2.5"),
            (r#"n{a="x", b="y"}"#, "1"),
        ],
    );
    let l = r#"{dst="original", src="source-value-10"}"#;
    let cases: &[(&str, &[(&str, f64)])] = &[
        ("abs(m)", &[(l, 2.5)]),
        ("ceil(m)", &[(l, -2.0)]),
        ("floor(m)", &[(l, -3.0)]),
        ("round(m)", &[(l, -2.0)]),
        ("round(m, 2)", &[(l, -2.0)]),
        ("clamp(m, -1, 1)", &[(l, -1.0)]),
        ("clamp(m, 1, -1)", &[]),
        ("clamp_min(m, 0)", &[(l, 0.0)]),
        ("clamp_max(m, -3)", &[(l, -3.0)]),
        ("sgn(m)", &[(l, -1.0)]),
        ("vector(3)", &[("{}", 3.0)]),
        ("timestamp(m)", &[(l, 0.0)]),
        (
            r#"label_replace(m, "dst", "value-$1", "src", "source-value-(.*)")"#,
            &[(r#"m{dst="value-10", src="source-value-10"}"#, -2.5)],
        ),
        (
            r#"label_replace(m, "dst", "x", "src", "nomatch")"#,
            &[(r#"m{dst="original", src="source-value-10"}"#, -2.5)],
        ),
        (
            r#"label_join(n, "c", "-", "a", "b")"#,
            &[(r#"n{a="x", b="y", c="x-y"}"#, 1.0)],
        ),
        (r#"absent(nope{job="a", x=~"y"})"#, &[(r#"{job="a"}"#, 1.0)]),
        ("absent(m)", &[]),
        (
            r#"absent_over_time(nope{job="a"}[1m])"#,
            &[(r#"{job="a"}"#, 1.0)],
        ),
        ("day_of_month(vector(86400 * 31))", &[("{}", 1.0)]),
        ("month(vector(86400 * 31))", &[("{}", 2.0)]),
        ("year(vector(951782400))", &[("{}", 2000.0)]),
        ("days_in_month(vector(951782400))", &[("{}", 29.0)]),
        ("day_of_week(vector(0))", &[("{}", 4.0)]),
        ("hour(vector(7200 + 59))", &[("{}", 2.0)]),
    ];
    for (e, want) in cases {
        assert_vector(instant(&r, &q(e), 30 * S), want);
    }
    assert_eq!(
        instant(&r, &q("scalar(m)"), 0),
        Ok(Value::Scalar { t: 0, v: -2.5 })
    );
    let bad = q(r#"label_replace(m, "dst", "x", "src", "(.*")"#);
    assert!(matches!(instant(&r, &bad, 0), Err(EvalError::BadData(_))));
}

#[test]
fn timestamp_reports_the_sample_time_for_selectors() {
    // functions.test: timestamp(metric) at 5s is 0 when the sample is at 0.
    let r = load(10 * S, &[("metric", "0 1")]);
    let cases: &[(i64, f64)] = &[(0, 0.0), (5 * S, 0.0), (10 * S, 10.0), (20 * S, 10.0)];
    for (t, want) in cases {
        let e = call("timestamp", vec![Expr::Paren(Box::new(sel("metric")))]);
        assert_vector(instant(&r, &e, *t), &[("{}", *want)]);
    }
}

#[test]
fn histogram_quantile_interpolates_classic_buckets() {
    let r = load(
        M,
        &[
            (r#"b_bucket{le="0.1"}"#, "10"),
            (r#"b_bucket{le="0.2"}"#, "20"),
            (r#"b_bucket{le="+Inf"}"#, "20"),
        ],
    );
    let cases: &[(f64, f64)] = &[(0.5, 0.1), (0.75, 0.15), (1.0, 0.2), (2.0, f64::INFINITY)];
    for (q, want) in cases {
        let e = call("histogram_quantile", vec![num(*q), sel("b_bucket")]);
        assert_vector(instant(&r, &e, 0), &[("{}", *want)]);
    }
}

#[test]
fn deriv_and_predict_linear_fit_a_line() {
    let r = load(M, &[("g", "0+60x10")]);
    let e = call("deriv", vec![msel("g", 5 * M)]);
    assert_vector(instant(&r, &e, 10 * M), &[("{}", 1.0)]);
    let e = call("predict_linear", vec![msel("g", 5 * M), num(60.0)]);
    assert_vector(instant(&r, &e, 10 * M), &[("{}", 660.0)]);
}

#[test]
fn subqueries_evaluate_the_inner_expression_at_aligned_steps() {
    let r = load(M, &[("m", "0+1x20")]);
    // Inner steps in (5m, 10m] aligned to 1m: 6..10m.
    let e = call("count_over_time", vec![subq(sel("m"), 5 * M, Some(M))]);
    assert_vector(instant(&r, &e, 10 * M), &[("{}", 5.0)]);
    let e = call(
        "max_over_time",
        vec![modif(subq(sel("m"), 5 * M, Some(2 * M)), M, None)],
    );
    assert_vector(instant(&r, &e, 10 * M), &[("{}", 8.0)]);
    let e = call("rate", vec![subq(sel("m"), 5 * M, None)]);
    assert_vector(instant(&r, &e, 10 * M), &[("{}", 1.0 / 60.0)]);
}

#[test]
fn too_many_samples_and_timeouts_fail() {
    let r = load(M, &[("m", "0+1x100")]);
    let opts = EngineOptions {
        max_samples: 10,
        ..EngineOptions::default()
    };
    let e = call("sum_over_time", vec![msel("m", 60 * M)]);
    assert_eq!(
        instant_query(&r, &e, 60 * M, &opts),
        Err(EvalError::TooManySamples("query execution"))
    );
    assert_eq!(
        range_query(&r, &sel("m"), 0, 60 * M, M, &opts),
        Err(EvalError::TooManySamples("query execution"))
    );
    let opts = EngineOptions {
        timeout: std::time::Duration::ZERO,
        ..EngineOptions::default()
    };
    std::thread::sleep(std::time::Duration::from_millis(2));
    assert_eq!(
        range_query(&r, &sel("m"), 0, 60 * M, M, &opts),
        Err(EvalError::Timeout("query execution"))
    );
}

use crate::query::promql::ast::Expr;

/// Every step of a range query equals an instant query at that time.
#[test]
fn range_queries_agree_with_instant_queries_at_every_step() {
    let r = load(
        M,
        &[
            (r#"c{job="a"}"#, "0+7x5 3+2x10 _ _ 1 2 stale 5+1x10"),
            (r#"c{job="b"}"#, "100-3x30"),
            (r#"g{job="a"}"#, "1 5 2 8 _ 3 9 4 stale _ 6 7"),
        ],
    );
    let exprs = vec![
        call("rate", vec![msel("c", 5 * M)]),
        call(
            "max_over_time",
            vec![subq(call("rate", vec![msel("c", 3 * M)]), 10 * M, Some(M))],
        ),
        call("avg_over_time", vec![subq(sel("g"), 7 * M, Some(2 * M))]),
        agg(A::Sum, bin(B::Mul, sel("c"), sel("g")), by(&["job"])),
        modif(sel("g"), 90 * S, None),
        call(
            "deriv",
            vec![modif(
                msel("c", 6 * M),
                0,
                Some(AtModifier::Timestamp(20 * M)),
            )],
        ),
    ];
    for e in exprs {
        let (start, end, step) = (0, 30 * M, 30 * S);
        let Ok(Value::Matrix(m)) = range(&r, &e, start, end, step) else {
            panic!("range query failed for {e:?}");
        };
        let mut t = start;
        while t <= end {
            let mut want: Vec<(String, f64)> = match instant_query(
                &r,
                &e,
                t,
                &EngineOptions {
                    ..EngineOptions::default()
                },
            ) {
                Ok(Value::Vector(v)) => v.iter().map(|s| (s.labels.to_string(), s.v)).collect(),
                other => panic!("{other:?}"),
            };
            let mut got: Vec<(String, f64)> = m
                .iter()
                .filter_map(|s| {
                    s.samples
                        .iter()
                        .find(|x| x.t == t)
                        .map(|x| (s.labels.to_string(), x.v))
                })
                .collect();
            want.sort_by(|a, b| a.0.cmp(&b.0));
            got.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "at {t} for {e:?}");
            t += step;
        }
    }
}

#[test]
fn many_to_one_without_group_modifier_fails_even_when_filtered_away() {
    // operators.test: "Check 0 series surviving the filtering producing an error."
    let r = load(
        5 * M,
        &[
            (r#"many_side{label="foo", job="test"}"#, "0"),
            (r#"many_side{label="bar", job="test"}"#, "1"),
            (r#"one_side{job="test"}"#, "1"),
        ],
    );
    for op in [B::Gt, B::Ge, B::Le] {
        let e = bin_m(
            op,
            sel("many_side"),
            sel("one_side"),
            false,
            Some(matching(Cardinality::OneToOne, true, &["job"], &[])),
        );
        assert!(matches!(instant(&r, &e, 0), Err(EvalError::Execution(_))));
    }
}

#[test]
fn topk_parameter_must_be_a_number() {
    let r = aggr_data();
    let e = agg_p(A::Topk, num(f64::NAN), sel("non_existent"), by(&[]));
    assert_eq!(error_of(instant(&r, &e, 0)), "Parameter value is NaN");
    let e = agg_p(A::Topk, num(1e300), sel("http_requests"), by(&[]));
    assert!(error_of(instant(&r, &e, 0)).contains("overflows int64"));
}

#[test]
fn rate_with_offsets_matches_selectors_test() {
    let r = load(
        10 * S,
        &[
            (
                r#"http_requests_total{job="api-server", instance="0", group="production"}"#,
                "0+10x1000 100+30x1000",
            ),
            (
                r#"http_requests_total{job="api-server", instance="1", group="production"}"#,
                "0+20x1000 200+30x1000",
            ),
            (
                r#"http_requests_total{job="api-server", instance="0", group="canary"}"#,
                "0+30x1000 300+80x1000",
            ),
            (
                r#"http_requests_total{job="api-server", instance="1", group="canary"}"#,
                "0+40x2000",
            ),
        ],
    );
    let l = |i: &str, g: &str| format!(r#"{{group="{g}", instance="{i}", job="api-server"}}"#);
    let (p0, p1, c0, c1) = (
        l("0", "production"),
        l("1", "production"),
        l("0", "canary"),
        l("1", "canary"),
    );
    let cases: Vec<(Expr, i64, [f64; 4])> = vec![
        (
            call("rate", vec![msel("http_requests_total", M)]),
            8000 * S,
            [1.0, 2.0, 3.0, 4.0],
        ),
        (
            call("rate", vec![msel("http_requests_total", M)]),
            18000 * S,
            [3.0, 3.0, 8.0, 4.0],
        ),
        (
            call(
                "rate",
                vec![modif(
                    msel(r#"http_requests_total{instance!="3"}"#, M),
                    10000 * S,
                    None,
                )],
            ),
            18000 * S,
            [1.0, 2.0, 3.0, 4.0],
        ),
        (
            call(
                "rate",
                vec![modif(
                    msel(r#"http_requests_total{instance!="3"}"#, M),
                    -4000 * S,
                    None,
                )],
            ),
            4000 * S,
            [1.0, 2.0, 3.0, 4.0],
        ),
        (
            bin(
                B::Sub,
                call("rate", vec![msel("http_requests_total", 40 * S)]),
                call(
                    "rate",
                    vec![modif(msel("http_requests_total", M), 10000 * S, None)],
                ),
            ),
            18000 * S,
            [2.0, 1.0, 5.0, 0.0],
        ),
    ];
    for (e, t, want) in cases {
        assert_vector(
            instant(&r, &e, t),
            &[
                (p0.as_str(), want[0]),
                (p1.as_str(), want[1]),
                (c0.as_str(), want[2]),
                (c1.as_str(), want[3]),
            ],
        );
    }
}

#[test]
fn staleness_cases_match_staleness_test() {
    let r = load(10 * S, &[("metric", "0 1 stale 2")]);
    let cases: &[(i64, Option<f64>)] = &[
        (10 * S, Some(1.0)),
        (20 * S, None),
        (30 * S, Some(2.0)),
        (329 * S, Some(2.0)),
        (330 * S, None),
    ];
    for (t, want) in cases {
        let got = instant(&r, &sel("metric"), *t);
        match want {
            Some(v) => assert_vector(got, &[("metric", *v)]),
            None => assert_vector(got, &[]),
        }
    }
    let counts: &[(i64, i64, Option<f64>)] = &[
        (30 * S, M, Some(3.0)),
        (10 * S, S, Some(1.0)),
        (20 * S, S, None),
        (20 * S, 10 * S, None),
        (20 * S, 20 * S, Some(1.0)),
    ];
    for (t, rng, want) in counts {
        let e = call("count_over_time", vec![msel("metric", *rng)]);
        match want {
            Some(v) => assert_vector(instant(&r, &e, *t), &[("{}", *v)]),
            None => assert_vector(instant(&r, &e, *t), &[]),
        }
    }
}

#[test]
fn subquery_cases_match_subquery_test() {
    let r = load(
        10 * S,
        &[("metric_total", "1 2"), ("metric1_total", "0+1x1000")],
    );
    let cases: &[(&str, i64, f64)] = &[
        ("sum_over_time(metric_total[50s:10s])", 10 * S, 3.0),
        ("sum_over_time(metric_total[50s:5s])", 10 * S, 4.0),
        ("sum_over_time(metric_total[50s:10s])", 5 * M, 10.0),
        ("sum_over_time(metric_total[60s:10s])", 5 * M + 59 * S, 2.0),
        ("rate(metric_total[20s:10s])", 10 * S, 0.1),
        ("rate(metric_total[20s:5s])", 20 * S, 0.06666666666666667),
        ("sum_over_time(metric1_total[30s:10s])", 1000 * S, 297.0),
        ("sum_over_time(metric1_total[30s:5s])", 1000 * S, 591.0),
        (
            "sum_over_time(metric1_total[30s:10s] offset 10s)",
            1010 * S,
            297.0,
        ),
        (
            "sum_over_time(metric1_total[30s:10s] offset 9s)",
            1010 * S,
            297.0,
        ),
        (
            "sum_over_time(metric1_total[30s:10s] offset 3s)",
            1010 * S,
            297.0,
        ),
        (
            "sum_over_time((metric1_total)[30s:10s] offset 3s)",
            1010 * S,
            297.0,
        ),
    ];
    for (e, t, want) in cases {
        assert_vector(instant(&r, &q(e), *t), &[("{}", *want)]);
    }
}

#[test]
fn at_modifier_cases_match_at_modifier_test() {
    let r = load(
        10 * S,
        &[
            (r#"metric{job="1"}"#, "0+1x1000"),
            (r#"metric{job="2"}"#, "0+2x1000"),
        ],
    );
    let j1 = r#"{job="1"}"#;
    let cases: &[(&str, i64, Expected)] = &[
        (
            "metric @ 100",
            10 * S,
            &[(r#"metric{job="1"}"#, 10.0), (r#"metric{job="2"}"#, 20.0)],
        ),
        (
            "metric @ 100 offset 50s",
            10 * S,
            &[(r#"metric{job="1"}"#, 5.0), (r#"metric{job="2"}"#, 10.0)],
        ),
        (
            "metric @ 0 offset -50s",
            10 * S,
            &[(r#"metric{job="1"}"#, 5.0), (r#"metric{job="2"}"#, 10.0)],
        ),
        (
            "-metric @ 100",
            10 * S,
            &[(j1, -10.0), (r#"{job="2"}"#, -20.0)],
        ),
        (
            r#"sum_over_time(metric{job="1"}[100s] @ 100)"#,
            25 * S,
            &[(j1, 55.0)],
        ),
        (
            r#"sum_over_time(metric{job="1"}[100s] @ 100 offset 50s)"#,
            25 * S,
            &[(j1, 15.0)],
        ),
        (
            r#"metric{job="1"} @ 50 + metric{job="1"} @ 100"#,
            25 * S,
            &[(j1, 15.0)],
        ),
        (
            r#"rate(metric{job="1"}[100s] @ 100) + label_replace(rate(metric{job="2"}[123s] @ 200), "job", "1", "", "")"#,
            25 * S,
            &[(j1, 0.3)],
        ),
        (
            r#"sum_over_time(metric{job="1"}[100s:1s] @ 100)"#,
            25 * S,
            &[(j1, 460.0)],
        ),
        (
            r#"sum_over_time(metric{job="1"}[100s:1s] @ 100 offset 20s)"#,
            25 * S,
            &[(j1, 288.0)],
        ),
        (
            r#"sum_over_time(sum_over_time(metric{job="1"}[100s] @ 100)[100s:25s] @ 50)"#,
            100 * S,
            &[(j1, 220.0)],
        ),
        (
            r#"sum_over_time(sum_over_time(sum_over_time(metric{job="1"}[100s] @ 100)[100s:25s] @ 50)[3s:1s] @ 3000)"#,
            0,
            &[(j1, 660.0)],
        ),
        (
            r#"sum_over_time(sum_over_time(sum_over_time(metric{job="1"}[10s])[100s:25s] @ 50)[3s:1s] @ 200)"#,
            0,
            &[(j1, 21.0)],
        ),
        (
            r#"sum_over_time(sum_over_time(sum_over_time(metric{job="1"}[20s])[20s:10s] offset 10s)[100s:25s] @ 1000)"#,
            0,
            &[(j1, 1504.0)],
        ),
        (
            "minute(metric @ 1500)",
            10 * S,
            &[(j1, 2.0), (r#"{job="2"}"#, 5.0)],
        ),
        (r#"timestamp(metric{job="1"} @ 10)"#, 10 * M, &[(j1, 10.0)]),
        (
            r#"timestamp(timestamp(metric{job="1"} @ 10))"#,
            10 * M,
            &[(j1, 600.0)],
        ),
        (
            "sum_over_time(minute(metric @ 1500)[100s:10s])",
            0,
            &[(j1, 20.0), (r#"{job="2"}"#, 50.0)],
        ),
        (
            "sum_over_time(minute()[50m:1m] @ 6000)",
            0,
            &[("{}", 1315.0)],
        ),
        (
            "sum_over_time(minute()[50m:1m] @ 6000 offset 5m)",
            0,
            &[("{}", 1365.0)],
        ),
        (
            "sum_over_time(vector(time())[100s:1s] @ 3000)",
            0,
            &[("{}", 295050.0)],
        ),
        (
            "sum_over_time(vector(time())[100s:1s] @ 3000 offset 600s)",
            0,
            &[("{}", 235050.0)],
        ),
        (
            r#"sum_over_time(timestamp(timestamp(metric{job="1"} @ 999))[10s:1s] @ 10)"#,
            0,
            &[(j1, 55.0)],
        ),
    ];
    for (e, t, want) in cases {
        assert_vector(instant(&r, &q(e), *t), want);
    }
}

#[test]
fn timestamp_with_at_in_range_queries_matches_at_modifier_test() {
    let r = load(
        10 * S,
        &[
            ("metric", "0+1x10"),
            ("metric_missing", "0 _ 2 _ 4 _ 5 _ 6"),
        ],
    );
    let at = |s: i64| Some(AtModifier::Timestamp(s * S));
    let ts = |v: f64| -> Vec<(i64, f64)> { (0..7).map(|i| (i * 10 * S, v)).collect() };
    let steps: Vec<(i64, f64)> = (0..7).map(|i| (i * 10 * S, (i * 10) as f64)).collect();
    let cases: Vec<(Expr, Vec<(i64, f64)>)> = vec![
        (call("timestamp", vec![sel("metric")]), steps.clone()),
        (
            call("timestamp", vec![modif(sel("metric"), 0, at(11))]),
            ts(10.0),
        ),
        (
            call("timestamp", vec![modif(sel("metric"), 0, at(19))]),
            ts(10.0),
        ),
        (
            call("timestamp", vec![modif(sel("metric"), 0, at(20))]),
            ts(20.0),
        ),
        (
            call("timestamp", vec![modif(sel("metric_missing"), 0, at(10))]),
            ts(0.0),
        ),
        (
            call(
                "timestamp",
                vec![call("abs", vec![modif(sel("metric"), 0, at(11))])],
            ),
            steps.clone(),
        ),
    ];
    for (e, want) in cases {
        assert_matrix(range(&r, &e, 0, 60 * S, 10 * S), &[("{}", &want)]);
    }
}

#[test]
fn mad_and_double_exponential_smoothing() {
    let r = load(M, &[("m", "1 2 3 4 100")]);
    let e = call("mad_over_time", vec![msel("m", 10 * M)]);
    assert_vector(instant(&r, &e, 4 * M), &[("{}", 1.0)]);
    let r = load(M, &[("m", "0+10x10")]);
    // A straight line is smoothed into itself.
    let e = call(
        "double_exponential_smoothing",
        vec![msel("m", 10 * M), num(0.5), num(0.5)],
    );
    assert_vector(instant(&r, &e, 10 * M), &[("{}", 100.0)]);
    let e = call(
        "double_exponential_smoothing",
        vec![msel("m", 10 * M), num(1.0), num(0.5)],
    );
    assert_eq!(
        error_of(instant(&r, &e, 10 * M)),
        "invalid smoothing factor. Expected: 0 < sf < 1, got: 1.000000"
    );
}

#[test]
fn histogram_quantile_cases_match_histograms_test() {
    let r = load(
        5 * M,
        &[
            (
                r#"testhistogram_bucket{le="0.1", start="positive"}"#,
                "0+5x10",
            ),
            (
                r#"testhistogram_bucket{le=".2", start="positive"}"#,
                "0+7x10",
            ),
            (
                r#"testhistogram_bucket{le="1e0", start="positive"}"#,
                "0+11x10",
            ),
            (
                r#"testhistogram_bucket{le="+Inf", start="positive"}"#,
                "0+12x10",
            ),
            (
                r#"testhistogram_bucket{le="-.2", start="negative"}"#,
                "0+1x10",
            ),
            (
                r#"testhistogram_bucket{le="-0.1", start="negative"}"#,
                "0+2x10",
            ),
            (
                r#"testhistogram_bucket{le="0.3", start="negative"}"#,
                "0+2x10",
            ),
            (
                r#"testhistogram_bucket{le="+Inf", start="negative"}"#,
                "0+3x10",
            ),
            (
                r#"rds_bucket{job="job1", instance="ins1", le="0.1"}"#,
                "0+1x10",
            ),
            (
                r#"rds_bucket{job="job1", instance="ins1", le="0.2"}"#,
                "0+3x10",
            ),
            (
                r#"rds_bucket{job="job1", instance="ins1", le="+Inf"}"#,
                "0+4x10",
            ),
            (
                r#"rds_bucket{job="job1", instance="ins2", le="0.1"}"#,
                "0+2x10",
            ),
            (
                r#"rds_bucket{job="job1", instance="ins2", le="0.2"}"#,
                "0+5x10",
            ),
            (
                r#"rds_bucket{job="job1", instance="ins2", le="+Inf"}"#,
                "0+6x10",
            ),
            (
                r#"rds_bucket{job="job2", instance="ins1", le="0.1"}"#,
                "0+3x10",
            ),
            (
                r#"rds_bucket{job="job2", instance="ins1", le="0.2"}"#,
                "0+4x10",
            ),
            (
                r#"rds_bucket{job="job2", instance="ins1", le="+Inf"}"#,
                "0+6x10",
            ),
            (
                r#"rds_bucket{job="job2", instance="ins2", le="0.1"}"#,
                "0+4x10",
            ),
            (
                r#"rds_bucket{job="job2", instance="ins2", le="0.2"}"#,
                "0+7x10",
            ),
            (
                r#"rds_bucket{job="job2", instance="ins2", le="+Inf"}"#,
                "0+9x10",
            ),
        ],
    );
    let hq = |q: f64, e: Expr| call("histogram_quantile", vec![num(q), e]);
    let rate = |s: &str| call("rate", vec![msel(s, 10 * M)]);
    assert_vector(
        instant(&r, &hq(0.5, rate("testhistogram_bucket")), 50 * M),
        &[
            (r#"{start="positive"}"#, 0.15),
            (r#"{start="negative"}"#, -0.15),
        ],
    );
    assert_vector(
        instant(&r, &hq(0.5, rate("rds_bucket")), 50 * M),
        &[
            (r#"{instance="ins1", job="job1"}"#, 0.15),
            (r#"{instance="ins2", job="job1"}"#, 0.13333333333333333),
            (r#"{instance="ins1", job="job2"}"#, 0.1),
            (r#"{instance="ins2", job="job2"}"#, 0.11666666666666667),
        ],
    );
}

#[test]
fn extreme_times_and_ranges_do_not_panic() {
    let r = load(M, &[("m", "0+1x10")]);
    let extremes = [i64::MIN, i64::MIN / 2, -1, 0, i64::MAX / 2, i64::MAX];
    for &x in &extremes {
        let exprs = vec![
            modif(sel("m"), x, None),
            modif(sel("m"), 0, Some(AtModifier::Timestamp(x))),
            call("rate", vec![modif(msel("m", 5 * M), x, None)]),
            call(
                "rate",
                vec![modif(
                    msel("m", i64::MAX),
                    0,
                    Some(AtModifier::Timestamp(x)),
                )],
            ),
            call("deriv", vec![modif(msel("m", i64::MAX), x, None)]),
            call("irate", vec![msel("m", i64::MAX)]),
            call("minute", vec![call("vector", vec![num(x as f64)])]),
            call("year", vec![call("vector", vec![num(f64::NAN)])]),
            call(
                "max_over_time",
                vec![modif(
                    subq(sel("m"), 3 * M, Some(i64::MAX)),
                    0,
                    Some(AtModifier::Timestamp(x)),
                )],
            ),
        ];
        for e in exprs {
            let _ = instant(&r, &e, x);
            let _ = range(&r, &e, x, x.saturating_add(2 * M), M);
            let _ = range(&r, &e, i64::MAX - M, i64::MAX, M);
        }
    }
}

#[test]
fn sort_by_label_uses_natural_order_then_the_label_set() {
    let r = load(
        M,
        &[
            (r#"cpu{cpu="10", job="b"}"#, "1"),
            (r#"cpu{cpu="2", job="a"}"#, "2"),
            (r#"cpu{cpu="1", job="b"}"#, "3"),
            (r#"cpu{cpu="1", job="a"}"#, "4"),
        ],
    );
    let order = |f: &'static str| -> Vec<f64> {
        match instant(&r, &call(f, vec![sel("cpu"), string("cpu")]), 0) {
            Ok(Value::Vector(v)) => v.iter().map(|s| s.v).collect(),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(order("sort_by_label"), vec![4.0, 3.0, 2.0, 1.0]);
    assert_eq!(order("sort_by_label_desc"), vec![1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn histogram_fraction_and_quantiles_over_classic_buckets() {
    // histograms.test: buckets 1, 2, 3, +Inf holding 1, 3, 6, 100 observations.
    let r = load(
        5 * M,
        &[
            (r#"h_bucket{le="1"}"#, "1+0x10"),
            (r#"h_bucket{le="2"}"#, "3+0x10"),
            (r#"h_bucket{le="3"}"#, "6+0x10"),
            (r#"h_bucket{le="+Inf"}"#, "100+0x10"),
            (r#"n_bucket{le="-3"}"#, "10+0x10"),
            (r#"n_bucket{le="-2"}"#, "12+0x10"),
            (r#"n_bucket{le="-1"}"#, "15+0x10"),
            (r#"n_bucket{le="+Inf"}"#, "100+0x10"),
        ],
    );
    let cases: &[(&str, f64)] = &[
        ("histogram_fraction(0, 1.5, h_bucket)", 0.02),
        ("histogram_fraction(2, 5, h_bucket)", 0.03),
        ("histogram_fraction(400, +Inf, h_bucket)", 0.94),
        ("histogram_fraction(-Inf, +Inf, h_bucket)", 1.0),
        ("histogram_fraction(3, 2, h_bucket)", 0.0),
        ("histogram_fraction(-4, -2, n_bucket)", 0.02),
        ("histogram_fraction(-Inf, -1.5, n_bucket)", 0.135),
    ];
    for (e, want) in cases {
        assert_vector(instant(&r, &q(e), 50 * M), &[("{}", *want)]);
    }
    assert_vector(
        instant(
            &r,
            &q(r#"histogram_quantiles(h_bucket, "q", 0, 0.01)"#),
            50 * M,
        ),
        &[(r#"{q="0.0"}"#, 0.0), (r#"{q="0.01"}"#, 1.0)],
    );
    assert!(instant(&r, &q(r#"histogram_quantiles(h_bucket, "le", 0.5)"#), 0).is_err());
}

#[test]
fn long_flat_operator_chains_evaluate() {
    let r = load(M, &[("m", "1")]);
    // The parser accepts these (they are long, not nested); the left spine is n deep.
    for n in [100usize, 5000] {
        let e = q(&vec!["m"; n].join(" + "));
        assert_vector(instant(&r, &e, 0), &[("{}", n as f64)]);
        let Ok(Value::Matrix(m)) = range(&r, &e, 0, M, M) else {
            panic!("range query of {n} terms failed");
        };
        assert_eq!(m.len(), 1);
    }
}

#[test]
fn annotations_report_bad_quantiles_buckets_and_forced_monotonicity() {
    let r = load(
        5 * M,
        &[
            (r#"nm_bucket{le="1"}"#, "5x2"),
            (r#"nm_bucket{le="2"}"#, "3x2"),
            (r#"nm_bucket{le="+Inf"}"#, "6x2"),
            (r#"bad{le="x"}"#, "1x2"),
            ("g", "1 2 3"),
        ],
    );
    let opts = EngineOptions::default();
    let run = |e: &str| super::instant_query_annotated(&r, &q(e), 10 * M, &opts).map(|x| x.1);
    let cases: &[(&str, &[&str], &[&str])] = &[
        (
            "quantile_over_time(2, g[10m])",
            &["PromQL warning: quantile value should be between 0 and 1, got 2"],
            &[],
        ),
        (
            "quantile(NaN, g)",
            &["PromQL warning: quantile value should be between 0 and 1, got NaN"],
            &[],
        ),
        (
            "histogram_quantile(0.5, bad)",
            &[
                r#"PromQL warning: bucket label "le" is missing or has a malformed value of "x" for metric name "bad""#,
            ],
            &[],
        ),
        (
            "histogram_quantile(0.5, nm_bucket)",
            &[],
            &[
                "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name \"nm_bucket\"",
            ],
        ),
        ("quantile_over_time(0.5, g[10m])", &[], &[]),
        (
            "rate(g[10m])",
            &[],
            &[
                r#"PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: "g""#,
            ],
        ),
        ("rate(nm_bucket[10m])", &[], &[]),
        ("delta(g[10m])", &[], &[]),
    ];
    for (e, warnings, infos) in cases {
        let a = run(e).expect("query");
        assert_eq!(a.warnings, *warnings, "{e}");
        assert_eq!(a.infos, *infos, "{e}");
    }
}

#[test]
fn long_range_queries_load_in_batches_and_match_instant_queries() {
    let r = load(
        5 * M,
        &[
            (r#"c_total{job="a"}"#, "0+7x300 3+2x300"),
            ("g", "1 2 3 stale 4x600"),
        ],
    );
    let exprs = [
        "rate(c_total[30m])",
        "max_over_time(rate(c_total[10m])[1h:15m])",
        "g offset 1h",
        "sum(g) + count(c_total)",
    ];
    let (start, end, step) = (0, 48 * 60 * M, 7 * M);
    for text in exprs {
        let e = q(text);
        r.selects.store(0, Ordering::SeqCst);
        let Ok(Value::Matrix(m)) = range(&r, &e, start, end, step) else {
            panic!("range query failed for {text}");
        };
        // 48 h in 6 h batches: more than one load per selector, far fewer than per step.
        let selects = r.selects.load(Ordering::SeqCst);
        assert!((2..=20).contains(&selects), "{selects} selects for {text}");
        let mut t = start;
        while t <= end {
            let want: Vec<(String, f64)> = match instant(&r, &e, t) {
                Ok(Value::Vector(v)) => {
                    let mut w: Vec<_> = v.iter().map(|s| (s.labels.to_string(), s.v)).collect();
                    w.sort_by(|a, b| a.0.cmp(&b.0));
                    w
                }
                other => panic!("{other:?}"),
            };
            let got: Vec<(String, f64)> = m
                .iter()
                .filter_map(|s| {
                    let x = s.samples.iter().find(|x| x.t == t)?;
                    Some((s.labels.to_string(), x.v))
                })
                .collect();
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "{text} at {t}");
            t += step;
        }
    }
}

#[test]
fn label_names_follow_utf8_validation() {
    let r = load(M, &[(r#"m{a="x"}"#, "1")]);
    assert_vector(
        instant(
            &r,
            &q(r#"label_replace(m, "dotted.name", "$1", "a", "(.*)")"#),
            0,
        ),
        &[(r#"m{a="x", dotted.name="x"}"#, 1.0)],
    );
    assert!(matches!(
        instant(&r, &q(r#"label_replace(m, "", "$1", "a", "(.*)")"#), 0),
        Err(EvalError::BadData(_))
    ));
    assert!(instant(&r, &q(r#"count_values("", m)"#), 0).is_err());
}

/// fill-modifier.test: missing matches take the fill value; under `group_right` the fill
/// values keep upstream's post-swap roles (`fill_left` fills the right-hand side).
#[test]
fn fill_modifiers_stand_in_for_missing_matches() {
    let r = load(
        5 * M,
        &[
            (r#"l{k="a"}"#, "10"),
            (r#"l{k="b"}"#, "20"),
            (r#"r{k="a"}"#, "100"),
            (r#"r{k="c"}"#, "300"),
        ],
    );
    assert_vector(
        instant(&r, &q("l + fill(0) r"), 0),
        &[
            (r#"{k="a"}"#, 110.0),
            (r#"{k="b"}"#, 20.0),
            (r#"{k="c"}"#, 300.0),
        ],
    );
    assert_vector(
        instant(&r, &q("l + fill_right(1) r"), 0),
        &[(r#"{k="a"}"#, 110.0), (r#"{k="b"}"#, 21.0)],
    );
    assert_vector(
        instant(&r, &q("l != bool fill_left(300) r"), 0),
        &[(r#"{k="a"}"#, 1.0), (r#"{k="c"}"#, 0.0)],
    );
    let r = load(
        5 * M,
        &[
            (r#"cpu{instance="a", cpu="0"}"#, "1"),
            (r#"cpu{instance="b", cpu="0"}"#, "1"),
            (r#"meta{instance="a"}"#, "100"),
            (r#"meta{instance="c"}"#, "300"),
        ],
    );
    assert_vector(
        instant(
            &r,
            &q("meta * on(instance) group_right fill_left(2) cpu"),
            0,
        ),
        &[
            (r#"{cpu="0", instance="a"}"#, 100.0),
            (r#"{instance="c"}"#, 600.0),
        ],
    );
    assert_vector(
        instant(
            &r,
            &q("meta * on(instance) group_right fill_right(0) cpu"),
            0,
        ),
        &[
            (r#"{cpu="0", instance="a"}"#, 100.0),
            (r#"{cpu="0", instance="b"}"#, 0.0),
        ],
    );
}

/// extended_vectors.test ("PROM-52"): `anchored` takes the last sample at or before the
/// window as its start and never extrapolates; `smoothed` interpolates both edges.
#[test]
fn anchored_and_smoothed_range_selectors() {
    let r = load(15_000, &[("metric", "1+1x4 9+1x4")]);
    let at = |q_: &str, t: i64| instant(&r, &q(q_), t);
    assert_vector(at("increase(metric[1m] anchored)", 5_000), &[("{}", 0.0)]);
    assert_vector(at("increase(metric[1m] anchored)", 80_000), &[("{}", 7.0)]);
    assert_vector(at("increase(metric[1m] smoothed)", 65_000), &[("{}", 5.0)]);
    assert_vector(at("increase(metric[1m] smoothed)", 125_000), &[("{}", 6.0)]);
    assert_vector(at("metric smoothed", 20_000), &[("metric", 7.0 / 3.0)]);
    // Data only before the window: nothing to interpolate towards.
    assert_vector(at("rate(metric[5s] smoothed)", 200_000), &[]);
    let r = load(60_000, &[("metric", "9 8 5 4")]);
    // Counter resets count as growth from zero when interpolating.
    assert_vector(
        instant(&r, &q("increase(metric[2m] smoothed)"), 135_000),
        &[("{}", 12.0)],
    );
    assert!(
        error_of(instant(&r, &q("deriv(metric[3m] smoothed)"), 0)).contains(
            "smoothed modifier can only be used with: delta, increase, rate - not with deriv"
        )
    );
}

#[test]
fn victoriametrics_vmrange_buckets_answer_like_the_equivalent_le_buckets() {
    // The same observations as VictoriaMetrics per-range counts and as Prometheus
    // cumulative `le` buckets: 10 in (1, 2], 10 in (2, 4].
    let r = load(
        5 * M,
        &[
            (
                r#"vm_bucket{job="a", vmrange="1.000e+00...2.000e+00"}"#,
                "10+0x10",
            ),
            (
                r#"vm_bucket{job="a", vmrange="2.000e+00...4.000e+00"}"#,
                "10+0x10",
            ),
            (r#"le_bucket{job="a", le="1"}"#, "0+0x10"),
            (r#"le_bucket{job="a", le="2"}"#, "10+0x10"),
            (r#"le_bucket{job="a", le="4"}"#, "20+0x10"),
            (r#"le_bucket{job="a", le="+Inf"}"#, "20+0x10"),
        ],
    );
    for (phi, want) in [(0.25, 1.5), (0.5, 2.0), (0.75, 3.0), (1.0, 4.0)] {
        for metric in ["vm_bucket", "le_bucket"] {
            let e = format!("histogram_quantile({phi}, {metric})");
            assert_vector(instant(&r, &q(&e), 50 * M), &[(r#"{job="a"}"#, want)]);
        }
    }
    assert_vector(
        instant(&r, &q("histogram_fraction(0, 2, vm_bucket)"), 50 * M),
        &[(r#"{job="a"}"#, 0.5)],
    );
    // Aggregating while keeping `vmrange`, as dashboards over VictoriaMetrics do.
    assert_vector(
        instant(
            &r,
            &q("histogram_quantile(0.5, sum by (vmrange) (vm_bucket))"),
            50 * M,
        ),
        &[("{}", 2.0)],
    );
}

#[test]
fn limit_ratio_keeps_a_stable_hash_chosen_share_and_its_complement() {
    let lines: Vec<(String, String)> = (0..200)
        .map(|i| (format!(r#"x{{i="{i}"}}"#), "1+0x10".to_string()))
        .collect();
    let pairs: Vec<(&str, &str)> = lines
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let r = load(5 * M, &pairs);
    let labels_of = |e: &str| -> Vec<String> {
        match instant(&r, &q(e), 50 * M).expect(e) {
            Value::Vector(v) => {
                let mut l: Vec<String> = v.iter().map(|s| s.labels.to_string()).collect();
                l.sort();
                l
            }
            other => panic!("{e}: {other:?}"),
        }
    };
    let half = labels_of("limit_ratio(0.5, x)");
    let other_half = labels_of("limit_ratio(-0.5, x)");
    assert!(
        (60..=140).contains(&half.len()),
        "about half: {}",
        half.len()
    );
    assert_eq!(half.len() + other_half.len(), 200);
    assert!(
        half.iter().all(|l| !other_half.contains(l)),
        "the two halves are disjoint"
    );
    assert_eq!(
        half,
        labels_of("limit_ratio(0.5, x)"),
        "the choice is stable"
    );
    assert_eq!(labels_of("limit_ratio(1, x)").len(), 200);
    assert_eq!(labels_of("limit_ratio(2, x)").len(), 200, "capped to 1");
    assert!(labels_of("limit_ratio(0, x)").is_empty());
    // Grouping does not change which series a ratio keeps.
    assert_eq!(half, labels_of("limit_ratio by (i) (0.5, x)"));
    assert!(instant(&r, &q("limit_ratio(NaN, x)"), 50 * M).is_err());
}

#[test]
fn native_histogram_functions_are_rejected_with_the_reason() {
    let r = load(M, &[("x", "1 2 3")]);
    let e = instant(&r, &q("histogram_count(x)"), M);
    assert!(matches!(e, Err(EvalError::BadData(_))), "{e:?}");
    assert_eq!(
        error_of(e),
        r#"function "histogram_count" works on native histograms, which Picket does not support"#
    );
}

/// Found with the promql_eval fuzz target (a hand-written input): nested `label_join`s double a value at each level and ran
/// for minutes, towards exhausting memory, past the query timeout. Values are capped at
/// Prometheus' 2^24-byte label limit, and the timeout is checked between nested calls.
#[test]
fn label_values_beyond_prometheus_limit_fail_instead_of_growing_unbounded() {
    let mib = "v".repeat(1 << 20);
    let r = load(M, &[(&format!(r#"x{{a="{mib}"}}"#), "1")]);
    let join = |n: usize| format!(r#"label_join(x, "b", ""{})"#, r#", "a""#.repeat(n));
    // 16 MiB exactly is the largest value Prometheus can encode.
    match instant(&r, &q(&join(16)), 0) {
        Ok(Value::Vector(v)) => assert_eq!(v[0].labels.get("b").map(str::len), Some(1 << 24)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        error_of(instant(&r, &q(&join(17)), 0)),
        "String too long to encode as label."
    );
    let replace = |n: usize| {
        format!(
            r#"label_replace(x, "b", "{}", "a", "(.*)")"#,
            "$1".repeat(n)
        )
    };
    match instant(&r, &q(&replace(16)), 0) {
        Ok(Value::Vector(v)) => assert_eq!(v[0].labels.get("b").map(str::len), Some(1 << 24)),
        other => panic!("{other:?}"),
    }
    // Expanded, then refused; and refused before expanding 100 MiB.
    for n in [17, 100] {
        assert_eq!(
            error_of(instant(&r, &q(&replace(n)), 0)),
            "String too long to encode as label."
        );
    }
    let nested = (0..40).fold("x".to_string(), |e, _| {
        format!(r#"label_join({e}, "a", "", "a", "a")"#)
    });
    assert_eq!(
        error_of(instant(&r, &q(&nested), 0)),
        "String too long to encode as label."
    );
}

/// Found by fuzzing with deep inputs: resolving duration expressions walked the tree
/// recursively on the caller's stack, before the evaluation moved to a stack sized for the
/// tree's depth, and overflowed it.
#[test]
fn deep_trees_evaluate_from_a_small_caller_stack() {
    let r = load(M, &[("x", "1 2 3")]);
    let expr = (0..20_000).fold(sel("x"), |e, _| {
        crate::query::promql::Expr::Neg(Box::new(e))
    });
    let result = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || instant(&r, &expr, 2 * M))
        .expect("thread starts")
        .join()
        .expect("no stack overflow");
    assert_vector(result, &[("{}", 3.0)]);
}

/// Every point of a range query equals an instant query at its time, bit for bit. Range
/// queries compute range functions in tiles of steps (tiles.rs) and remember groups,
/// signatures and result labels across steps (memo.rs); instant queries do neither. Across
/// tiles and six-hour batches, with resets, gaps, staleness markers, offsets and `@`.
#[test]
fn range_query_points_equal_instant_queries() {
    // 9 h at 15 s: counters with resets and a gap, a gauge, and a second name.
    let counter = format!("0+7x400 3+5x300 _x40 10+1x400 stale 1+2x{}", 2160 - 1142);
    let reader = load(
        15 * S,
        &[
            (r#"c_total{job="a"}"#, counter.as_str()),
            (r#"c_total{job="b"}"#, "5+3x2160"),
            (r#"g{job="a"}"#, "1 5 -2 8 3x200 9 1+0.5x1000 stale 4x900"),
            (r#"h{job="b"}"#, "2+1x2160"),
        ],
    );
    let exprs = [
        call("rate", vec![msel("c_total", 5 * M)]),
        call("increase", vec![msel("c_total", 10 * M)]),
        call("delta", vec![msel("g", 3 * M)]),
        call("irate", vec![msel("c_total", 2 * M)]),
        call("idelta", vec![msel("g", 5 * M)]),
        call("max_over_time", vec![msel("g", 7 * M)]),
        call("last_over_time", vec![msel("g", 5 * M)]),
        call("count_over_time", vec![msel("{__name__=~\"g|h\"}", 5 * M)]),
        call("rate", vec![modif(msel("c_total", 5 * M), 30 * M, None)]),
        call(
            "sum_over_time",
            vec![modif(
                msel("g", 5 * M),
                0,
                Some(AtModifier::Timestamp(100 * M)),
            )],
        ),
    ];
    let (start, end, step) = (10 * M, 8 * 60 * M + 10 * M, 2 * M);
    for e in &exprs {
        let Value::Matrix(got) = range(&reader, e, start, end, step).expect("range") else {
            panic!("not a matrix");
        };
        let got: BTreeMap<Labels, Vec<Sample>> =
            got.into_iter().map(|s| (s.labels, s.samples)).collect();
        let mut want: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        let mut t = start;
        while t <= end {
            let Value::Vector(v) = instant(&reader, e, t).expect("instant") else {
                panic!("not a vector");
            };
            for s in v {
                want.entry(s.labels).or_default().push(Sample { t, v: s.v });
            }
            t += step;
        }
        assert!(!want.is_empty(), "{e:?} answers nothing");
        assert_eq!(got.len(), want.len(), "{e:?}");
        for ((gl, gs), (wl, ws)) in got.iter().zip(&want) {
            assert_eq!(gl, wl, "{e:?}");
            let bits = |s: &[Sample]| s.iter().map(|x| (x.t, x.v.to_bits())).collect::<Vec<_>>();
            assert_eq!(bits(gs), bits(ws), "{e:?} {gl}");
        }
    }
}

/// Large tiles are computed on two threads, each taking half of the series: the points
/// still equal instant queries, and the first thread's series come first.
#[test]
fn range_query_points_of_large_tiles_equal_instant_queries() {
    let lines: Vec<(String, String)> = (0..600)
        .map(|i| {
            (
                format!("c_total{{i=\"{i:03}\", job=\"j{}\"}}", i % 7),
                format!("{i}+{}x300 0+1x200", i % 5 + 1),
            )
        })
        .collect();
    let refs: Vec<(&str, &str)> = lines
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let reader = load(15 * S, &refs);
    for e in [
        call("rate", vec![msel("c_total", 5 * M)]),
        agg(
            A::Sum,
            call("increase", vec![msel("c_total", 10 * M)]),
            by(&["job"]),
        ),
    ] {
        let (start, end, step) = (10 * M, 120 * M, M);
        let Value::Matrix(got) = range(&reader, &e, start, end, step).expect("range") else {
            panic!("not a matrix");
        };
        let mut want: BTreeMap<Labels, Vec<Sample>> = BTreeMap::new();
        let mut t = start;
        while t <= end {
            let Value::Vector(v) = instant(&reader, &e, t).expect("instant") else {
                panic!("not a vector");
            };
            for s in v {
                want.entry(s.labels).or_default().push(Sample { t, v: s.v });
            }
            t += step;
        }
        let bits = |s: &[Sample]| s.iter().map(|x| (x.t, x.v.to_bits())).collect::<Vec<_>>();
        assert_eq!(got.len(), want.len(), "{e:?}");
        for (g, (wl, ws)) in got.iter().zip(&want) {
            assert_eq!(&g.labels, wl, "{e:?}");
            assert_eq!(bits(&g.samples), bits(ws), "{e:?} {wl}");
        }
    }
}
