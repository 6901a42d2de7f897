//! Renders a [`Batch`] in the Prometheus text exposition format 0.0.4, byte for byte the
//! way client_golang's `expfmt` writes it (node_exporter's `/metrics`), so that a scrape of
//! Picket's own `/metrics` looks like a scrape of node_exporter.
//!
//! What "the same way" means here:
//! - `# HELP` then `# TYPE` before each family's samples; HELP text escapes `\` and
//!   newline, label values escape `\`, `"` and newline (expfmt `text_create.go`,
//!   `escapeString`).
//! - Numbers as Go's `strconv.FormatFloat(v, 'g', -1, 64)`: the shortest digits that
//!   round-trip, in exponent form when the decimal exponent is below -4 or at least 6
//!   (`1.6e+09`, `4.27104e+06`, `1e-05`, two-digit minimum exponent) and plain otherwise
//!   (`349738`, `0.0001`); `+Inf`, `-Inf`, `NaN`. See
//!   <https://github.com/prometheus/common/blob/main/expfmt/text_create.go> (`writeFloat`)
//!   and Go's `strconv/ftoa.go` (`if shortest { eprec = 6 }`). Go's `fmt` `%v` uses 21
//!   instead; that is not what client_golang calls.
//! - Types the 0.0.4 format lacks (`info`, `stateset`) are written as `gauge`, and
//!   `unknown` as `untyped`, which is what the text format calls it.

use std::fmt::Write as _;

use super::{Batch, Family};
use crate::model::{METRIC_NAME, MetricType};

/// The `Content-Type` of what [`render`] writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Appends the whole batch to `out` in the text format.
pub fn render(batch: &Batch, out: &mut String) {
    for family in &batch.families {
        render_family(family, out);
    }
}

/// Appends one family. Families without samples are skipped, as client_golang does.
pub fn render_family(family: &Family, out: &mut String) {
    if family.samples.is_empty() {
        return;
    }
    out.push_str("# HELP ");
    out.push_str(&family.name);
    out.push(' ');
    escape_help(&family.help, out);
    out.push('\n');
    out.push_str("# TYPE ");
    out.push_str(&family.name);
    out.push(' ');
    out.push_str(type_name(family.kind));
    out.push('\n');
    for (labels, value) in &family.samples {
        out.push_str(labels.metric_name().unwrap_or(&family.name));
        let mut first = true;
        for l in labels.iter().filter(|l| &*l.name != METRIC_NAME) {
            out.push(if first { '{' } else { ',' });
            first = false;
            out.push_str(&l.name);
            out.push_str("=\"");
            escape_label_value(&l.value, out);
            out.push('"');
        }
        if !first {
            out.push('}');
        }
        out.push(' ');
        write_float(*value, out);
        out.push('\n');
    }
}

/// The TYPE word of the 0.0.4 text format.
pub fn type_name(kind: MetricType) -> &'static str {
    match kind {
        MetricType::Counter => "counter",
        MetricType::Gauge | MetricType::Info | MetricType::Stateset => "gauge",
        MetricType::Histogram => "histogram",
        MetricType::Summary => "summary",
        MetricType::Unknown => "untyped",
    }
}

fn escape_help(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_label_value(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Appends `v` formatted like Go's `strconv.FormatFloat(v, 'g', -1, 64)`.
pub fn write_float(v: f64, out: &mut String) {
    if v.is_nan() {
        out.push_str("NaN");
        return;
    }
    if v.is_infinite() {
        out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" });
        return;
    }
    if v == 0.0 {
        out.push_str(if v.is_sign_negative() { "-0" } else { "0" });
        return;
    }
    // Rust's `{:e}` gives the shortest round-trip digits, like Go's shortest mode, as
    // `d.ddde<exp>`; only the layout differs.
    let mut sci = String::with_capacity(32);
    let _ = write!(sci, "{v:e}");
    let Some((mantissa, exp)) = sci.split_once('e') else {
        // BUG: `{:e}` always writes an exponent; fall back to Display rather than panic.
        let _ = write!(out, "{v}");
        return;
    };
    let exp: i32 = exp.parse().unwrap_or(0);
    if uses_exponent(exp) {
        out.push_str(mantissa);
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let abs = exp.unsigned_abs();
        if abs < 10 {
            out.push('0');
        }
        let _ = write!(out, "{abs}");
    } else {
        // Display never uses an exponent and also prints the shortest round-trip digits.
        let _ = write!(out, "{v}");
    }
}

/// Whether Go's shortest `'g'` format picks the exponent form for a decimal exponent:
/// strconv/ftoa.go sets `eprec = 6` for the shortest form and uses `%e` when
/// `exp < -4 || exp >= eprec`.
fn uses_exponent(exp: i32) -> bool {
    !(-4..6).contains(&exp)
}

/// Formats one float alone (tests, API).
pub fn format_float(v: f64) -> String {
    let mut s = String::new();
    write_float(v, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Labels;

    #[test]
    fn floats_are_formatted_like_go_strconv_g_shortest() {
        let cases: &[(f64, &str)] = &[
            (0.0, "0"),
            (1.0, "1"),
            (-1.5, "-1.5"),
            (349738.0, "349738"),
            (999999.0, "999999"),
            (1e6, "1e+06"),
            (1.6e9, "1.6e+09"),
            (16777216.0, "1.6777216e+07"),
            (1.795325179729875e9, "1.795325179729875e+09"),
            (1e21, "1e+21"),
            (1.5e-300, "1.5e-300"),
            (-125000.0, "-125000"),
            (0.04, "0.04"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (4.5047e-05, "4.5047e-05"),
            (9.001661, "9.001661"),
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
        ];
        for (v, want) in cases {
            assert_eq!(format_float(*v), *want, "formatting {v:?}");
        }
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut b = Batch::default();
        b.family("x_total", "a \\ help\nline", MetricType::Counter)
            .push(Labels::from_pairs([("path", "C:\\ \"q\"\nz")]), 1.0);
        let mut s = String::new();
        render(&b, &mut s);
        assert_eq!(
            s,
            "# HELP x_total a \\\\ help\\nline\n# TYPE x_total counter\nx_total{path=\"C:\\\\ \\\"q\\\"\\nz\"} 1\n"
        );
    }

    #[test]
    fn unknown_type_is_written_as_untyped_and_empty_families_are_skipped() {
        let mut b = Batch::default();
        b.family("empty", "nothing", MetricType::Gauge);
        b.scalar("node_vmstat_pgfault", "f", MetricType::Unknown, 4271040.0);
        let mut s = String::new();
        render(&b, &mut s);
        assert_eq!(
            s,
            "# HELP node_vmstat_pgfault f\n# TYPE node_vmstat_pgfault untyped\nnode_vmstat_pgfault 4.27104e+06\n"
        );
    }
}
