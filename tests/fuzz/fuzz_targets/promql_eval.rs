//! Parse + evaluate over a small fixed store: any input that parses is run as an instant
//! query and as a short range query under tight sample and time limits (the engine's own,
//! so a runaway query must stop with its error, never by crashing or exhausting memory).
//! When both succeed, the range query's last step must agree with the instant query at the
//! same time, which checks the range-only paths (batched preloading, the subquery step
//! cache, the series builder) against the straightforward one.

#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::query::promql::eval::{Value, instant_query, range_query};
use picket::query::promql::parse;
use picket_fuzz::{FuzzStore, INSTANT_T, RANGE_END, RANGE_START, RANGE_STEP, engine_options};
use std::collections::HashMap;
use std::sync::LazyLock;

static STORE: LazyLock<FuzzStore> = LazyLock::new(FuzzStore::new);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = parse(text) else {
        return;
    };
    let opts = engine_options();
    let instant = instant_query(&*STORE, &expr, INSTANT_T, &opts);
    let range = range_query(&*STORE, &expr, RANGE_START, RANGE_END, RANGE_STEP, &opts);
    // `start()`/`end()`, `step()`/`range()` and `timestamp()` legitimately differ between
    // the two; so does anything after a limit was hit in one of them.
    let query_dependent = ["start()", "end()", "step()", "range()", "timestamp"]
        .iter()
        .any(|w| text.contains(w));
    if query_dependent {
        return;
    }
    let (Ok(instant), Ok(Value::Matrix(range))) = (instant, range) else {
        return;
    };
    let last: HashMap<_, _> = range
        .iter()
        .filter_map(|s| {
            let p = s.samples.last()?;
            (p.t == RANGE_END).then(|| (s.labels.clone(), p.v))
        })
        .collect();
    let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    match instant {
        Value::Scalar { v, .. } => {
            let got = last.values().next().copied();
            assert!(
                last.len() == 1 && same(v, got.unwrap()),
                "{text:?}: instant scalar {v} but the range query ends with {last:?}"
            );
        }
        Value::Vector(vec) => {
            assert_eq!(
                vec.len(),
                last.len(),
                "{text:?}: instant {vec:?}, range {last:?}"
            );
            for s in &vec {
                let r = last.get(&s.labels);
                assert!(
                    r.is_some_and(|r| same(*r, s.v)),
                    "{text:?}: instant {:?} = {} but range {:?}",
                    s.labels,
                    s.v,
                    r
                );
            }
        }
        Value::Matrix(_) | Value::String { .. } => {}
    }
});
