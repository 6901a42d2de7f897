//! Arbitrary UTF-8 into the PromQL parser: it must return a tree or a positioned error,
//! never panic or hang; and a parsed tree, printed, must parse back to the same tree
//! (spans aside), which `Expr`'s `Display` promises and the rule manager relies on.

#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::query::promql::parse;
use picket_fuzz::without_spans;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = parse(text) else {
        return;
    };
    // Printing and comparing recurse once per level, and the parser accepts trees thousands
    // of levels deep (it and the evaluator move to a sized stack for them): check on a
    // large stack. A panic there aborts the process, as libFuzzer expects.
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .stack_size(1 << 30)
            .spawn_scoped(s, || round_trip(text, &expr))
            .expect("thread starts")
            .join()
            .expect("round trip");
    });
});

fn round_trip(text: &str, expr: &picket::query::promql::Expr) {
    let printed = expr.to_string();
    let reparsed = match parse(&printed) {
        Ok(e) => e,
        Err(e) => panic!("{text:?} printed as {printed:?}, which does not parse: {e:?}"),
    };
    // Debug forms compare NaN literals as equal, which `PartialEq` would not.
    let (a, b) = (
        format!("{:?}", without_spans(expr)),
        format!("{:?}", without_spans(&reparsed)),
    );
    assert_eq!(a, b, "{text:?} printed as {printed:?} parses to a different tree");
}
