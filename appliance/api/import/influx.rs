//! The Influx line protocol, `measurement[,tag=value...] field=value[,field=value...]
//! [timestamp]`, parsed into series the way VictoriaMetrics names them (see the parent
//! module): `{measurement}_{field}`, tags as labels, `db` from the query arg.
//!
//! Escapes as in InfluxDB: `\,` and `\ ` in measurements; `\,`, `\=` and `\ ` in tag keys,
//! tag values and field keys; `\"` and `\\` inside double-quoted string field values.

use super::Parsed;
use crate::model::{LabelsBuilder, METRIC_NAME, Sample};

/// Nanoseconds per unit of a `precision` query arg.
pub fn precision_ns(p: &str) -> Option<i128> {
    Some(match p {
        "ns" | "n" => 1,
        "us" | "u" | "µ" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Parses a body; `scale` is nanoseconds per timestamp unit, `now_ns` the time of lines
/// without one, `db` the `db` label for lines without a `db` tag.
pub fn parse(text: &str, scale: i128, now_ns: i128, db: Option<&str>) -> Parsed {
    let mut out = Parsed::default();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start().trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Err(e) = parse_line(line, scale, now_ns, db, &mut out) {
            out.bad(i + 1, e);
        }
    }
    out
}

/// Splits at the first unescaped `sep` outside double quotes (when `quotes`).
fn split_unescaped(s: &str, sep: u8, quotes: bool) -> (&str, Option<&str>) {
    let b = s.as_bytes();
    let mut i = 0;
    let mut in_quotes = false;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'"' if quotes => in_quotes = !in_quotes,
            c if c == sep && !in_quotes => return (&s[..i], Some(&s[i + 1..])),
            _ => {}
        }
        i += 1;
    }
    (s, None)
}

fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&n) = chars.peek()
            && matches!(n, ',' | '=' | ' ' | '"' | '\\')
        {
            out.push(n);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

fn parse_line(
    line: &str,
    scale: i128,
    now_ns: i128,
    db: Option<&str>,
    out: &mut Parsed,
) -> Result<(), String> {
    let (key, rest) = split_unescaped(line, b' ', false);
    let rest = rest.ok_or("no fields (want: measurement[,tags] field=value [timestamp])")?;
    let (fields, ts) = split_unescaped(rest.trim_start(), b' ', true);
    let t_ns = match ts.map(str::trim).filter(|t| !t.is_empty()) {
        None => now_ns,
        Some(t) => {
            let v: i128 = t.parse().map_err(|_| format!("invalid timestamp {t:?}"))?;
            v.checked_mul(scale).ok_or("timestamp out of range")?
        }
    };
    let t_ms = i64::try_from(t_ns.div_euclid(1_000_000)).map_err(|_| "timestamp out of range")?;

    let (measurement, mut tags) = split_unescaped(key, b',', false);
    let measurement = unescape(measurement);
    if measurement.is_empty() {
        return Err("empty measurement".into());
    }
    let mut base = LabelsBuilder::default();
    while let Some(t) = tags {
        let (pair, next) = split_unescaped(t, b',', false);
        tags = next;
        let (k, v) = split_unescaped(pair, b'=', false);
        let v = v.ok_or_else(|| format!("tag {pair:?} has no '='"))?;
        let (k, v) = (unescape(k), unescape(v));
        if k.is_empty() {
            return Err(format!("tag {pair:?} has an empty key"));
        }
        if v.is_empty() {
            continue; // an empty label value is an absent label
        }
        base.set(&k, &v);
    }
    if let Some(db) = db
        && base.get("db").is_none()
    {
        base.set("db", db);
    }

    let mut parsed = Vec::new();
    let mut fields = Some(fields);
    while let Some(f) = fields {
        let (pair, next) = split_unescaped(f, b',', true);
        fields = next;
        let (k, v) = split_unescaped(pair, b'=', true);
        let v = v.ok_or_else(|| format!("field {pair:?} has no '='"))?;
        let k = unescape(k);
        if k.is_empty() {
            return Err(format!("field {pair:?} has an empty key"));
        }
        parsed.push((k, field_value(v)?));
    }
    if parsed.is_empty() {
        return Err("no fields".into());
    }
    for (field, v) in parsed {
        let mut b = base.clone();
        b.set(METRIC_NAME, &format!("{measurement}_{field}"));
        out.push(b.build(), Sample { t: t_ms, v });
    }
    Ok(())
}

/// A field value as a number: floats, `1i`/`1u` integers, booleans as 1/0, and quoted
/// strings as 0 (what VictoriaMetrics stores for them).
fn field_value(v: &str) -> Result<f64, String> {
    if v.starts_with('"') {
        if v.len() < 2 || !v.ends_with('"') {
            return Err(format!("unterminated string field value {v}"));
        }
        return Ok(0.0);
    }
    match v {
        "t" | "T" | "true" | "True" | "TRUE" => return Ok(1.0),
        "f" | "F" | "false" | "False" | "FALSE" => return Ok(0.0),
        _ => {}
    }
    let num = v.strip_suffix(['i', 'u']).unwrap_or(v);
    if num.len() != v.len() {
        return num
            .parse::<i128>()
            .map(|n| n as f64)
            .map_err(|_| format!("invalid integer field value {v:?}"));
    }
    match num.parse::<f64>() {
        Ok(x)
            if num
                .chars()
                .all(|c| c.is_ascii_digit() || "+-.eE".contains(c)) =>
        {
            Ok(x)
        }
        _ => Err(format!("invalid field value {v:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    fn one(p: &Parsed, pairs: &[(&str, &str)]) -> Vec<Sample> {
        p.series
            .get(&Labels::from_pairs(pairs.iter().copied()))
            .cloned()
            .unwrap_or_else(|| panic!("no series {pairs:?} in {:?}", p.series.keys()))
    }

    #[test]
    fn fields_become_measurement_underscore_field_with_tags_as_labels() {
        let p = parse(
            "m1,host=a value=1.5 1795330000\nm2,host=b f1=2i,f2=true,f3=\"s, x=1\",f4=3u,f5=F 1795330000\n",
            1_000_000_000,
            0,
            Some("mydb"),
        );
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        let t = 1_795_330_000_000;
        assert_eq!(
            one(
                &p,
                &[("__name__", "m1_value"), ("db", "mydb"), ("host", "a")]
            ),
            [Sample { t, v: 1.5 }]
        );
        assert_eq!(
            one(&p, &[("__name__", "m2_f1"), ("db", "mydb"), ("host", "b")])[0].v,
            2.0
        );
        assert_eq!(
            one(&p, &[("__name__", "m2_f2"), ("db", "mydb"), ("host", "b")])[0].v,
            1.0
        );
        assert_eq!(
            one(&p, &[("__name__", "m2_f3"), ("db", "mydb"), ("host", "b")])[0].v,
            0.0
        );
        assert_eq!(
            one(&p, &[("__name__", "m2_f4"), ("db", "mydb"), ("host", "b")])[0].v,
            3.0
        );
        assert_eq!(
            one(&p, &[("__name__", "m2_f5"), ("db", "mydb"), ("host", "b")])[0].v,
            0.0
        );
    }

    #[test]
    fn escapes_precision_db_tag_and_missing_timestamps() {
        let p = parse(
            "m5,t=a\\ b,u=c\\,d x=1e3 1795330000000\nm\\ 7,db=z y=-2\n",
            1_000_000,
            42_000_000,
            Some("mydb"),
        );
        assert!(p.problems.is_empty(), "{:?}", p.problems);
        assert_eq!(
            one(
                &p,
                &[
                    ("__name__", "m5_x"),
                    ("db", "mydb"),
                    ("t", "a b"),
                    ("u", "c,d")
                ]
            ),
            [Sample {
                t: 1_795_330_000_000,
                v: 1000.0
            }]
        );
        assert_eq!(
            one(&p, &[("__name__", "m 7_y"), ("db", "z")]),
            [Sample { t: 42, v: -2.0 }],
            "a db tag wins over the query arg; no timestamp: now"
        );
        assert_eq!(precision_ns("us"), Some(1_000));
        assert_eq!(precision_ns("x"), None);
    }

    #[test]
    fn bad_lines_are_reported_by_number_and_the_rest_kept() {
        let p = parse(
            "ok v=1 1\nnofields\nm v=abc 1\nm v=1 notatime\nm,t v=1\nok2 v=2 1\n",
            1,
            0,
            None,
        );
        assert_eq!(p.series.len(), 2);
        assert_eq!(p.bad_lines, 4);
        let lines: Vec<&str> = p
            .problems
            .iter()
            .map(|s| s.split(':').next().unwrap())
            .collect();
        assert_eq!(lines, ["line 2", "line 3", "line 4", "line 5"]);
    }
}
