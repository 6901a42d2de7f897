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
    let printed = expr.to_string();
    let reparsed = match parse(&printed) {
        Ok(e) => e,
        Err(e) => panic!("{text:?} printed as {printed:?}, which does not parse: {e:?}"),
    };
    // Debug forms compare NaN literals as equal, which `PartialEq` would not.
    let (a, b) = (
        format!("{:?}", without_spans(&expr)),
        format!("{:?}", without_spans(&reparsed)),
    );
    assert_eq!(
        a, b,
        "{text:?} printed as {printed:?} parses to a different tree"
    );
});
