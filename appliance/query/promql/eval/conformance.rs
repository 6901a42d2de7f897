//! Test-only runner for Prometheus' PromQL test scripts (`promql/promqltest/testdata/*.test`,
//! the corpus in shared/conformance/promql): `load`, `clear`, `eval instant at`,
//! `eval range from .. to .. step ..` with expected series, `expect fail [msg:]`,
//! `expect ordered`, `expect string`, and `expect warn|info|no_warn|no_info [msg:]`
//! against the evaluator's annotations. Native-histogram series are not loaded.
//! The test asserts a floor on the number of passing cases (the remaining failures are
//! native-histogram cases, experimental syntax the parser rejects, and functions not
//! implemented); `cargo test --lib conformance -- --nocapture` prints every failure.

use super::testutil::{MemReader, parse_series, parse_values};
use super::{
    Annotations, EngineOptions, Value, instant_query_annotated as instant_query,
    range_query_annotated as range_query,
};
use crate::query::promql::parse;

/// Where the scripts are: `$PICKET_CONFORMANCE_DIR/promql` (as `.ci/conformance` reads
/// it), else `shared/conformance/promql` beside the clone (or beside the directory holding
/// a worktree).
fn scripts_dir() -> std::path::PathBuf {
    if let Some(base) = std::env::var_os("PICKET_CONFORMANCE_DIR") {
        return std::path::PathBuf::from(base).join("promql");
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let near = root.join("../shared/conformance/promql");
    if near.exists() {
        return near;
    }
    root.join("../../shared/conformance/promql")
}

/// Prometheus durations (`5m`, `1h30m`, `10s`, `0`) in milliseconds.
fn duration_ms(s: &str) -> Option<i64> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(n * 1000);
    }
    let mut total = 0i64;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            1
        } else {
            match c {
                's' => 1000,
                'm' => 60_000,
                'h' => 3_600_000,
                'd' => 86_400_000,
                'w' => 604_800_000,
                'y' => 31_536_000_000,
                _ => return None,
            }
        };
        total += num.parse::<i64>().ok()? * unit;
        num.clear();
    }
    if !num.is_empty() {
        return None;
    }
    Some(total)
}

/// Runs the parsed expression: the result, the start time and the step (0 for instant).
type QueryFn<'a> = dyn Fn(&crate::query::promql::Expr) -> (Result<(Value, Annotations), super::EvalError>, i64, i64)
    + 'a;

/// What a case says about annotations: `expect warn`, `expect no_warn`, `expect warn msg: m`.
#[derive(Default)]
struct AnnotationRule {
    some: Option<bool>,
    msg: Option<String>,
}

impl AnnotationRule {
    fn check(&self, kind: &str, got: &[String]) -> Result<(), String> {
        match self.some {
            Some(true) if got.is_empty() => Err(format!("expected {kind} annotations, none")),
            Some(false) if !got.is_empty() => Err(format!("unexpected {kind}: {got:?}")),
            _ => match &self.msg {
                Some(m) if !got.contains(m) => Err(format!("{kind} {got:?}, want {m:?}")),
                _ => Ok(()),
            },
        }
    }
}

#[derive(Default)]
struct Stats {
    passed: usize,
    failed: usize,
    skipped: usize,
    failures: Vec<String>,
}

fn close(a: f64, b: f64) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(f64::MIN_POSITIVE)
}

/// Splits `{a="b"} 1 2 3` / `metric{..} 5` / `5` into labels text and values text.
fn split_expected(line: &str) -> (String, String) {
    if let Some(i) = line.rfind('}') {
        return (
            line[..=i].trim().to_string(),
            line[i + 1..].trim().to_string(),
        );
    }
    match line.split_once(char::is_whitespace) {
        Some((a, b)) if !a.starts_with(|c: char| c.is_ascii_digit() || c == '-') => {
            (a.to_string(), b.trim().to_string())
        }
        _ => (String::new(), line.trim().to_string()),
    }
}

fn run_file(name: &str, stats: &mut Stats) {
    let Ok(text) = std::fs::read_to_string(scripts_dir().join(name)) else {
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut reader = MemReader::default();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        i += 1;
        // `load_with_nhcb` also loads the classic series; the native-histogram copies it
        // adds are out of scope.
        let load_arg = line
            .strip_prefix("load ")
            .or_else(|| line.strip_prefix("load_with_nhcb "));
        if let Some(step_text) = load_arg {
            let Some(step) = duration_ms(step_text.trim()) else {
                continue;
            };
            let mut series: Vec<(String, String)> = Vec::new();
            while i < lines.len() && lines[i].starts_with([' ', '\t']) {
                let l = lines[i].trim();
                i += 1;
                if l.is_empty() || l.contains("{{") {
                    continue;
                }
                let (lbl, vals) = split_expected(l);
                series.push((lbl, vals));
            }
            for (lbl, vals) in &series {
                if let Some(samples) = parse_values(step, vals) {
                    reader.series.push(crate::query::SeriesData {
                        labels: parse_series(lbl),
                        samples,
                    });
                }
            }
            continue;
        }
        if line == "clear" {
            reader = MemReader::default();
            continue;
        }
        if !line.starts_with("eval") {
            continue;
        }
        // Body: indented lines.
        let mut body = Vec::new();
        while i < lines.len() && lines[i].starts_with([' ', '\t']) && !lines[i].trim().is_empty() {
            body.push(lines[i].trim());
            i += 1;
        }
        let (cmd, rest) = line.split_once(' ').unwrap_or((line, ""));
        let mut expect_fail = cmd == "eval_fail";
        let mut ordered = cmd == "eval_ordered";
        let mut fail_msg: Option<String> = None;
        let (mut warn, mut info) = (AnnotationRule::default(), AnnotationRule::default());
        let mut expected: Vec<&str> = Vec::new();
        for b in &body {
            if b.starts_with('#') {
                continue;
            }
            if let Some(e) = b.strip_prefix("expect ") {
                if let Some(sv) = e.strip_prefix("string ") {
                    expected.push(sv);
                    continue;
                }
                let rule = |r: &mut AnnotationRule, rest: &str, want: bool| {
                    r.some = Some(want);
                    if let Some(m) = rest.trim().strip_prefix("msg:") {
                        r.msg = Some(m.trim().to_string());
                    }
                };
                if e.trim() == "ordered" {
                    ordered = true;
                } else if let Some(r) = e.strip_prefix("warn") {
                    rule(&mut warn, r, true);
                } else if let Some(r) = e.strip_prefix("no_warn") {
                    rule(&mut warn, r, false);
                } else if let Some(r) = e.strip_prefix("info") {
                    rule(&mut info, r, true);
                } else if let Some(r) = e.strip_prefix("no_info") {
                    rule(&mut info, r, false);
                } else if let Some(m) = e.strip_prefix("fail msg:") {
                    expect_fail = true;
                    fail_msg = Some(m.trim().to_string());
                } else if e.starts_with("fail") {
                    expect_fail = true;
                }
                continue;
            }
            expected.push(b);
        }
        let case = format!("{name}: {line}");
        let (expr_text, query): (&str, Box<QueryFn>) =
            if let Some(r) = rest.strip_prefix("instant at ") {
                let (at, e) = r.split_once(' ').unwrap_or((r, ""));
                let Some(t) = duration_ms(at) else {
                    stats.skipped += 1;
                    continue;
                };
                let rd = &reader;
                (
                    e,
                    Box::new(move |x| (instant_query(rd, x, t, &EngineOptions::default()), t, 0)),
                )
            } else if let Some(r) = rest.strip_prefix("range from ") {
                let parts: Vec<&str> = r.splitn(6, ' ').collect();
                if parts.len() < 6 || parts[1] != "to" || parts[3] != "step" {
                    stats.skipped += 1;
                    continue;
                }
                let (Some(s), Some(e), Some(st)) = (
                    duration_ms(parts[0]),
                    duration_ms(parts[2]),
                    duration_ms(parts[4]),
                ) else {
                    stats.skipped += 1;
                    continue;
                };
                let rd = &reader;
                (
                    parts[5],
                    Box::new(move |x| {
                        (
                            range_query(rd, x, s, e, st, &EngineOptions::default()),
                            s,
                            st,
                        )
                    }),
                )
            } else {
                stats.skipped += 1;
                continue;
            };
        let expr = match parse(expr_text) {
            Ok(e) => e,
            Err(e) => {
                if expect_fail {
                    stats.passed += 1;
                } else {
                    stats.skipped += 1;
                    stats.failures.push(format!("{case}\n    parse error: {e}"));
                }
                continue;
            }
        };
        let (got, start, step) = query(&expr);
        let verdict = match (&got, expect_fail) {
            (Err(e), true) => match &fail_msg {
                Some(m) if e.to_string() != *m => Err(format!("wrong error: {e}")),
                _ => Ok(()),
            },
            (Err(e), false) => Err(format!("error: {e}")),
            (Ok((v, _)), true) => Err(format!("expected failure, got {v:?}")),
            (Ok((v, annos)), false) => compare(v, &expected, start, step, ordered)
                .and_then(|()| warn.check("warn", &annos.warnings))
                .and_then(|()| info.check("info", &annos.infos)),
        };
        match verdict {
            Ok(()) => stats.passed += 1,
            Err(why) => {
                stats.failed += 1;
                stats.failures.push(format!("{case}\n    {why}"));
            }
        }
    }
}

fn compare(
    v: &Value,
    expected: &[&str],
    start: i64,
    step: i64,
    ordered: bool,
) -> Result<(), String> {
    let mut want: Vec<(String, Vec<(i64, f64)>)> = Vec::new();
    for e in expected {
        let (lbl, vals) = split_expected(e);
        if lbl.is_empty() && !matches!(v, Value::Matrix(_)) {
            want.push((String::new(), vec![(0, vals.parse().unwrap_or(f64::NAN))]));
            continue;
        }
        let labels = parse_series(&lbl).to_string();
        let step = if step == 0 { 1 } else { step };
        let Some(samples) = parse_values(step, &vals) else {
            return Err(format!("cannot read expected values {vals:?}"));
        };
        let pts = samples.iter().map(|s| (s.t + start, s.v)).collect();
        want.push((labels, pts));
    }
    let mut got: Vec<(String, Vec<(i64, f64)>)> = match v {
        Value::Scalar { v, .. } => vec![(String::new(), vec![(start, *v)])],
        Value::Vector(vec) => vec
            .iter()
            .map(|s| (s.labels.to_string(), vec![(start, s.v)]))
            .collect(),
        Value::Matrix(m) => m
            .iter()
            .map(|s| {
                (
                    s.labels.to_string(),
                    s.samples.iter().map(|x| (x.t, x.v)).collect(),
                )
            })
            .collect(),
        Value::String { v, .. } => {
            // Expected strings are written quoted.
            let want = expected
                .first()
                .map(|e| e.trim().trim_matches(['"', '`']))
                .unwrap_or("");
            return if expected.len() == 1 && want == v {
                Ok(())
            } else {
                Err(format!("string result {v:?}, want {expected:?}"))
            };
        }
    };
    if matches!(v, Value::Vector(_) | Value::Scalar { .. }) {
        for w in &mut want {
            for p in &mut w.1 {
                p.0 = start;
            }
        }
        if matches!(v, Value::Scalar { .. }) {
            for w in &mut want {
                w.0.clear();
            }
        }
    }
    if ordered {
        let g: Vec<&String> = got.iter().map(|x| &x.0).collect();
        let w: Vec<&String> = want.iter().map(|x| &x.0).collect();
        if g != w {
            return Err(format!("order: got {g:?}\n    want {w:?}"));
        }
    }
    got.sort_by(|a, b| a.0.cmp(&b.0));
    want.sort_by(|a, b| a.0.cmp(&b.0));
    let ok = got.len() == want.len()
        && got.iter().zip(&want).all(|(g, w)| {
            g.0 == w.0
                && g.1.len() == w.1.len()
                && g.1
                    .iter()
                    .zip(&w.1)
                    .all(|(a, b)| a.0 == b.0 && close(a.1, b.1))
        });
    if ok {
        Ok(())
    } else {
        Err(format!("got  {got:?}\n    want {want:?}"))
    }
}

#[test]
fn prometheus_test_scripts_pass_except_native_histograms() {
    if !scripts_dir().exists() {
        return;
    }
    let mut stats = Stats::default();
    for f in [
        "functions.test",
        "operators.test",
        "aggregators.test",
        "selectors.test",
        "staleness.test",
        "at_modifier.test",
        "subquery.test",
        "literals.test",
        "histograms.test",
        "duration_expression.test",
        "extended_vectors.test",
        "fill-modifier.test",
    ] {
        // A malformed line in a script must not hide the other files' results.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut st = Stats::default();
            run_file(f, &mut st);
            st
        }));
        match r {
            Ok(st) => {
                stats.passed += st.passed;
                stats.failed += st.failed;
                stats.skipped += st.skipped;
                stats.failures.extend(st.failures);
            }
            Err(_) => stats.failures.push(format!("{f}: runner panicked")),
        }
    }
    for f in &stats.failures {
        println!("{f}");
    }
    println!(
        "passed {} failed {} skipped {}",
        stats.passed, stats.failed, stats.skipped
    );
    // 958 passed when this floor was set (annotations checked; cases whose data holds
    // native histograms fail here as those series are not loaded); a drop is a regression.
    assert!(stats.passed >= 955, "only {} cases passed", stats.passed);
}
