//! Number and time encodings of the Prometheus JSON API, written by hand into a reused
//! `String` because query results can be large: sample values are JSON strings in Go's
//! shortest round-trip notation and timestamps are JSON numbers of seconds with up to
//! three decimals (mirrors Prometheus `util/jsonutil/marshal.go`).

use crate::model::Labels;
use std::fmt::Write;

/// Appends a float as Prometheus' `MarshalFloat` does: `NaN`, `+Inf`, `-Inf`, plain
/// notation for 1e-6 <= |v| < 1e21, otherwise Go's exponent form (`1e-07`, `1.5e+21`).
pub fn push_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let abs = v.abs();
        if v.fract() == 0.0 && abs < 1e15 && !(v == 0.0 && v.is_sign_negative()) {
            // Integral values (counts, bytes, most stored samples) print like integers.
            if v < 0.0 {
                out.push('-');
            }
            push_u64(out, abs as u64);
        } else if abs == 0.0 || (1e-6..1e21).contains(&abs) {
            // Rust's Display is the shortest round-trip form in plain notation, like Go's
            // FormatFloat(v, 'f', -1, 64); -0 prints as "-0" in both.
            let _ = write!(out, "{v}");
        } else {
            push_go_exponent(out, v);
        }
    }
}

/// Go's `FormatFloat(v, 'e', -1, 64)`: the exponent has a sign and at least two digits.
pub fn push_go_exponent(out: &mut String, v: f64) {
    let s = format!("{v:e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let (sign, digits) = match exp.strip_prefix('-') {
        Some(d) => ('-', d),
        None => ('+', exp),
    };
    out.push_str(mantissa);
    out.push('e');
    out.push(sign);
    if digits.len() < 2 {
        out.push('0');
    }
    out.push_str(digits);
}

/// Appends a millisecond timestamp as seconds: `1435781451.781`, `1435781451`, `-0.5`.
pub fn push_timestamp(out: &mut String, t_ms: i64) {
    if t_ms < 0 {
        out.push('-');
    }
    let abs = t_ms.unsigned_abs();
    push_u64(out, abs / 1000);
    let frac = abs % 1000;
    if frac != 0 {
        let digits = [
            b'.',
            b'0' + (frac / 100) as u8,
            b'0' + (frac / 10 % 10) as u8,
            b'0' + (frac % 10) as u8,
        ];
        let len = if frac.is_multiple_of(100) {
            2
        } else if frac.is_multiple_of(10) {
            3
        } else {
            4
        };
        // ASCII digits and a dot.
        out.push_str(std::str::from_utf8(&digits[..len]).unwrap_or_default());
    }
}

/// Appends the decimal digits of `n` without going through `fmt` (results hold millions of
/// timestamps and values).
fn push_u64(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or_default());
}

/// Appends a JSON string literal.
pub fn push_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            // Go's encoding/json escapes these for HTML safety; Grafana does not care, but
            // matching Prometheus byte for byte makes differential tests simpler.
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a JSON array of strings.
pub fn push_str_array(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, v);
    }
    out.push(']');
}

/// Appends a label set as a JSON object.
pub fn push_labels(out: &mut String, labels: &Labels) {
    out.push('{');
    for (i, l) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, &l.name);
        out.push(':');
        push_str(out, &l.value);
    }
    out.push('}');
}

/// Appends `[<ts>,"<v>"]`.
pub fn push_point(out: &mut String, t_ms: i64, v: f64) {
    out.push('[');
    push_timestamp(out, t_ms);
    out.push_str(",\"");
    push_float(out, v);
    out.push_str("\"]");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(v: f64) -> String {
        let mut s = String::new();
        push_float(&mut s, v);
        s
    }

    fn ts(t: i64) -> String {
        let mut s = String::new();
        push_timestamp(&mut s, t);
        s
    }

    #[test]
    fn floats_are_formatted_like_go() {
        for (v, want) in [
            (2.0, "2"),
            (0.1, "0.1"),
            (-1.5, "-1.5"),
            (1e-7, "1e-07"),
            (1.5e21, "1.5e+21"),
            (123456789012.0, "123456789012"),
            (0.000001, "0.000001"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (0.0, "0"),
            (1e100, "1e+100"),
            (-0.0, "-0"),
            (-42.0, "-42"),
            (999_999_999_999_999.0, "999999999999999"),
            (1e15, "1000000000000000"),
            (12.5, "12.5"),
        ] {
            assert_eq!(float(v), want, "{v}");
        }
    }

    #[test]
    fn timestamps_are_seconds_with_millisecond_decimals() {
        assert_eq!(ts(1_435_781_451_781), "1435781451.781");
        assert_eq!(ts(1_435_781_451_000), "1435781451");
        assert_eq!(ts(4_000), "4");
        assert_eq!(ts(1_500), "1.5");
        assert_eq!(ts(10), "0.01");
        assert_eq!(ts(-500), "-0.5");
        assert_eq!(ts(1_250), "1.25");
        assert_eq!(ts(7), "0.007");
        assert_eq!(ts(0), "0");
    }

    #[test]
    fn strings_are_escaped() {
        let mut s = String::new();
        push_str(&mut s, "a\"b\\c\n<");
        assert_eq!(s, r#""a\"b\\c\n\u003c""#);
    }
}
