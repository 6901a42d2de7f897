//! Exposition parser: Prometheus text format 0.0.4 (and 1.0.0's quoted UTF-8 names) and
//! OpenMetrics 1.0, as `interfaces.md` §8.1–8.2 and Prometheus' `model/textparse`
//! (`promparse.go`, `openmetricsparse.go`) read them.
//!
//! It is a pull parser over one body held in memory: [`Parser::next_entry`] returns one
//! [`Entry`] per meaningful line, borrowing names from the body. A sample's labels are
//! read through [`Parser::labels`] from a vector the parser reuses, and label values are
//! `Cow`s that only own memory when the value holds an escape, so the common sample
//! allocates nothing. [`Entry::Sample::series`] is the raw `name{labels}` text, which the
//! scrape loop uses as a cache key to skip building label sets for series it has seen.
//!
//! Differences between the formats handled here: OpenMetrics timestamps are float
//! seconds (converted to ms by truncation, as Prometheus does), its body must end with
//! `# EOF`, it has `# UNIT`, exemplars (`# {…} v [ts]` after a sample; skipped) and no
//! blank lines or free comments. A text body whose last line lacks its `\n` was cut
//! short and is an error, as in Prometheus.
//!
//! OpenMetrics `_created` samples come out as ordinary samples, as Prometheus 3 stores
//! them unless created-timestamp ingestion is enabled (`textparse.New`, `skipOMCTSeries`).

use crate::model::MetricType;
use std::borrow::Cow;

/// Which exposition format a body is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    OpenMetrics,
}

impl Format {
    /// Whether `ct` names a format this parser reads (`text/plain` or OpenMetrics).
    pub fn known_content_type(ct: &str) -> bool {
        ct.split(';').next().is_some_and(|m| {
            let m = m.trim();
            m.eq_ignore_ascii_case("text/plain")
                || m.eq_ignore_ascii_case("application/openmetrics-text")
        })
    }

    /// The format a `Content-Type` announces. Missing or unknown types fall back to the
    /// text format (Prometheus 3 fails such scrapes unless `fallback_scrape_protocol` is
    /// set; Picket is lenient, see interfaces.md §8.3).
    pub fn from_content_type(ct: Option<&str>) -> Format {
        match ct {
            Some(ct)
                if ct.split(';').next().is_some_and(|m| {
                    m.trim()
                        .eq_ignore_ascii_case("application/openmetrics-text")
                }) =>
            {
                Format::OpenMetrics
            }
            _ => Format::Text,
        }
    }
}

/// One meaningful line.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry<'a> {
    Help {
        name: Cow<'a, str>,
        help: Cow<'a, str>,
    },
    Type {
        name: Cow<'a, str>,
        kind: MetricType,
    },
    Unit {
        name: Cow<'a, str>,
        unit: &'a str,
    },
    /// A sample; its labels are in [`Parser::labels`] until the next call to `next_entry`.
    Sample {
        /// The raw series text `name{…}` as written (cache key).
        series: &'a str,
        name: Cow<'a, str>,
        value: f64,
        timestamp_ms: Option<i64>,
    },
}

/// A parse error with the 1-based line it was found on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

pub struct Parser<'a> {
    text: &'a str,
    pos: usize,
    line: usize,
    format: Format,
    eof: bool,
    labels: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Parser<'a> {
    pub fn new(text: &'a str, format: Format) -> Parser<'a> {
        Parser {
            text,
            pos: 0,
            line: 0,
            format,
            eof: false,
            labels: Vec::new(),
        }
    }

    /// The labels of the last [`Entry::Sample`], in the order written (no `__name__`).
    pub fn labels(&self) -> &[(Cow<'a, str>, Cow<'a, str>)] {
        &self.labels
    }

    /// The next entry, `Ok(None)` at the end of a complete body.
    pub fn next_entry(&mut self) -> Result<Option<Entry<'a>>, ParseError> {
        loop {
            if self.pos >= self.text.len() {
                if self.format == Format::OpenMetrics && !self.eof {
                    return Err(
                        self.err_at(self.line + 1, "body ends without \"# EOF\" (cut short?)")
                    );
                }
                return Ok(None);
            }
            let rest = &self.text[self.pos..];
            let Some(nl) = rest.find('\n') else {
                return Err(self.err_at(
                    self.line + 1,
                    "last line has no line break: the body was cut short",
                ));
            };
            let mut line = &rest[..nl];
            self.pos += nl + 1;
            self.line += 1;
            if self.eof {
                return Err(self.err("unexpected data after \"# EOF\""));
            }
            match self.format {
                Format::Text => {
                    line = line.strip_suffix('\r').unwrap_or(line);
                    line = line.trim_start_matches([' ', '\t']);
                    if line.trim_end_matches([' ', '\t']).is_empty() {
                        continue;
                    }
                }
                Format::OpenMetrics => {
                    if line.is_empty() {
                        return Err(self.err("unexpected empty line"));
                    }
                    if line.contains('\r') {
                        return Err(self.err("carriage return is not allowed in OpenMetrics"));
                    }
                }
            }
            if let Some(comment) = line.strip_prefix('#') {
                match self.meta(comment) {
                    Ok(Some(e)) => return Ok(Some(e)),
                    Ok(None) => continue,
                    Err(m) => return Err(self.err(&m)),
                }
            }
            return match self.sample(line) {
                Ok(e) => Ok(Some(e)),
                Err(m) => Err(self.err(&m)),
            };
        }
    }

    fn err(&self, message: &str) -> ParseError {
        self.err_at(self.line, message)
    }

    fn err_at(&self, line: usize, message: &str) -> ParseError {
        ParseError {
            line,
            message: message.to_string(),
        }
    }

    /// A `#` line (the `#` already removed). `Ok(None)` for comments to skip.
    fn meta(&mut self, comment: &'a str) -> Result<Option<Entry<'a>>, String> {
        let om = self.format == Format::OpenMetrics;
        let Some(body) = comment.strip_prefix(' ') else {
            return if om {
                Err("expected a space after '#'".into())
            } else {
                Ok(None)
            };
        };
        if om && body == "EOF" {
            self.eof = true;
            return Ok(None);
        }
        let (keyword, rest) = body.split_once(' ').unwrap_or((body, ""));
        let kw = match keyword {
            "HELP" | "TYPE" => keyword,
            "UNIT" if om => keyword,
            _ if om => {
                return Err(format!(
                    "invalid comment {keyword:?}: expected HELP, TYPE, UNIT or EOF"
                ));
            }
            _ => return Ok(None),
        };
        let (name, after) = metric_name_token(rest)?;
        let after = if after.is_empty() {
            after
        } else if let Some(a) = after.strip_prefix(' ') {
            a
        } else if !om {
            after.trim_start_matches([' ', '\t'])
        } else {
            return Err("expected a space after the metric name".into());
        };
        match kw {
            "HELP" => Ok(Some(Entry::Help {
                name,
                help: unescape(after, om),
            })),
            "TYPE" => {
                let t = after.trim_end_matches([' ', '\t']);
                let kind = match (t, om) {
                    ("counter", _) => MetricType::Counter,
                    ("gauge", _) => MetricType::Gauge,
                    ("histogram", _) | ("gaugehistogram", true) => MetricType::Histogram,
                    ("summary", _) => MetricType::Summary,
                    ("untyped", false) | ("unknown", true) => MetricType::Unknown,
                    ("info", true) => MetricType::Info,
                    ("stateset", true) => MetricType::Stateset,
                    _ => return Err(format!("invalid metric type {t:?}")),
                };
                Ok(Some(Entry::Type { name, kind }))
            }
            _ => {
                if !after.is_empty() && !name.ends_with(after) {
                    return Err(format!(
                        "unit {after:?} is not a suffix of the metric family name {name:?}"
                    ));
                }
                Ok(Some(Entry::Unit { name, unit: after }))
            }
        }
    }

    fn sample(&mut self, line: &'a str) -> Result<Entry<'a>, String> {
        self.labels.clear();
        let om = self.format == Format::OpenMetrics;
        let b = line.as_bytes();
        let mut i = 0;
        let mut name: Option<Cow<'a, str>> = None;
        if b[0] != b'{' {
            while i < b.len() && is_name_byte(b[i], i == 0, true) {
                i += 1;
            }
            if i == 0 {
                return Err(format!(
                    "invalid metric name starting at {:?}",
                    snippet(line)
                ));
            }
            name = Some(Cow::Borrowed(&line[..i]));
        }
        if i < b.len() && b[i] == b'{' {
            i += 1;
            self.label_list(line, &mut i, &mut name)?;
        }
        let series = &line[..i];
        let Some(name) = name else {
            return Err("sample without a metric name".into());
        };
        let rest = &line[i..];
        let after_ws = rest.trim_start_matches([' ', '\t']);
        if after_ws.len() == rest.len() {
            return Err(format!(
                "expected a space and a value after {:?}",
                snippet(series)
            ));
        }
        let (value_text, rest) = split_token(after_ws);
        let value = parse_float(value_text)
            .ok_or_else(|| format!("invalid value {:?}", snippet(value_text)))?;
        let mut rest = rest.trim_start_matches([' ', '\t']);
        let mut timestamp_ms = None;
        if !rest.is_empty() && !rest.starts_with('#') {
            let (ts_text, after) = split_token(rest);
            timestamp_ms = Some(if om {
                let s = parse_float(ts_text)
                    .filter(|s| s.is_finite())
                    .ok_or_else(|| format!("invalid timestamp {:?}", snippet(ts_text)))?;
                // Go's int64(ts*1000) truncates toward zero; so does `as`.
                (s * 1000.0) as i64
            } else {
                ts_text
                    .parse::<i64>()
                    .map_err(|_| format!("invalid timestamp {:?}", snippet(ts_text)))?
            });
            rest = after.trim_start_matches([' ', '\t']);
        }
        if !rest.is_empty() {
            if om && rest.starts_with("# {") {
                // An exemplar: accepted and dropped (ingestors may drop them, OM 1.0).
            } else {
                return Err(format!(
                    "unexpected text {:?} after the value",
                    snippet(rest)
                ));
            }
        }
        Ok(Entry::Sample {
            series,
            name,
            value,
            timestamp_ms,
        })
    }

    /// Parses `a="b",…}` with `*i` just after `{`; leaves `*i` after `}`. A quoted string
    /// without `=` is the metric name (text format 1.0.0 / UTF-8 names).
    fn label_list(
        &mut self,
        line: &'a str,
        i: &mut usize,
        name: &mut Option<Cow<'a, str>>,
    ) -> Result<(), String> {
        let b = line.as_bytes();
        let skip_ws = |i: &mut usize| {
            while *i < b.len() && (b[*i] == b' ' || b[*i] == b'\t') {
                *i += 1;
            }
        };
        loop {
            skip_ws(i);
            if *i >= b.len() {
                return Err("unterminated label set (missing '}')".into());
            }
            if b[*i] == b'}' {
                *i += 1;
                return Ok(());
            }
            let label_name: Cow<'a, str> = if b[*i] == b'"' {
                *i += 1;
                let s = quoted(line, i)?;
                skip_ws(i);
                if *i < b.len() && b[*i] != b'=' {
                    if name.is_some() {
                        return Err("metric name given twice".into());
                    }
                    *name = Some(s);
                    skip_ws(i);
                    if *i < b.len() && b[*i] == b',' {
                        *i += 1;
                    }
                    continue;
                }
                s
            } else {
                let start = *i;
                while *i < b.len() && is_name_byte(b[*i], *i == start, false) {
                    *i += 1;
                }
                if *i == start {
                    return Err(format!(
                        "invalid label name starting at {:?}",
                        snippet(&line[start..])
                    ));
                }
                Cow::Borrowed(&line[start..*i])
            };
            skip_ws(i);
            if *i >= b.len() || b[*i] != b'=' {
                return Err(format!("expected '=' after label name {label_name:?}"));
            }
            *i += 1;
            skip_ws(i);
            if *i >= b.len() || b[*i] != b'"' {
                return Err(format!("expected a quoted value for label {label_name:?}"));
            }
            *i += 1;
            let value = quoted(line, i)?;
            if self.labels.iter().any(|(n, _)| *n == label_name) {
                return Err(format!("duplicate label name {label_name:?}"));
            }
            self.labels.push((label_name, value));
            skip_ws(i);
            if *i < b.len() && b[*i] == b',' {
                *i += 1;
            } else if *i < b.len() && b[*i] == b'}' {
                continue;
            } else {
                return Err("expected ',' or '}' after a label value".into());
            }
        }
    }
}

/// A quoted string starting just after the opening quote; leaves `*i` after the closing
/// one. Escapes `\\`, `\"` and `\n` are decoded; any other `\x` stays as written, as in
/// Prometheus' `lvalReplacer`.
fn quoted<'a>(line: &'a str, i: &mut usize) -> Result<Cow<'a, str>, String> {
    let b = line.as_bytes();
    let start = *i;
    let mut escaped = false;
    let mut j = start;
    while j < b.len() {
        match b[j] {
            b'\\' => {
                escaped = true;
                j += 2;
            }
            b'"' => {
                *i = j + 1;
                let raw = &line[start..j];
                return Ok(if escaped {
                    Cow::Owned(unescape_value(raw))
                } else {
                    Cow::Borrowed(raw)
                });
            }
            _ => j += 1,
        }
    }
    Err("unterminated quoted string".into())
}

fn unescape_value(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('n') => out.push('\n'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// HELP text: `\\` and `\n` in both formats, `\"` too in OpenMetrics.
fn unescape(raw: &str, om: bool) -> Cow<'_, str> {
    if !raw.contains('\\') {
        return Cow::Borrowed(raw);
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('"') if om => out.push('"'),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    Cow::Owned(out)
}

/// A metric name at the start of `s` (plain or quoted); returns it and the rest.
fn metric_name_token(s: &str) -> Result<(Cow<'_, str>, &str), String> {
    let b = s.as_bytes();
    if b.first() == Some(&b'"') {
        let mut i = 1;
        let name = quoted(s, &mut i)?;
        return Ok((name, &s[i..]));
    }
    let mut i = 0;
    while i < b.len() && is_name_byte(b[i], i == 0, true) {
        i += 1;
    }
    if i == 0 {
        return Err(format!("invalid metric name in {:?}", snippet(s)));
    }
    Ok((Cow::Borrowed(&s[..i]), &s[i..]))
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*` for metric names; label names have no `:`.
fn is_name_byte(c: u8, first: bool, colon: bool) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || (colon && c == b':') || (!first && c.is_ascii_digit())
}

fn split_token(s: &str) -> (&str, &str) {
    match s.find([' ', '\t']) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

/// Go's `strconv.ParseFloat` for the forms exposition formats use: decimal and exponent
/// forms, `NaN`, `Inf`/`Infinity` with an optional sign, case-insensitive.
fn parse_float(s: &str) -> Option<f64> {
    if s.is_empty() || s.contains('_') {
        return None;
    }
    s.parse::<f64>().ok()
}

/// The first few characters of `s`, so errors about huge lines stay short.
fn snippet(s: &str) -> &str {
    match s.char_indices().nth(40) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (name, labels, value, timestamp) of each sample; metadata entries are rendered
    /// as strings so one list can hold both.
    fn parse(text: &str, format: Format) -> Result<Vec<String>, ParseError> {
        let mut p = Parser::new(text, format);
        let mut out = Vec::new();
        while let Some(e) = p.next_entry()? {
            out.push(match e {
                Entry::Sample {
                    name,
                    value,
                    timestamp_ms,
                    ..
                } => {
                    let labels: Vec<String> = p
                        .labels()
                        .iter()
                        .map(|(n, v)| format!("{n}={v:?}"))
                        .collect();
                    let v = if value.is_nan() {
                        "NaN".to_string()
                    } else {
                        value.to_string()
                    };
                    match timestamp_ms {
                        Some(t) => format!("{name}{{{}}} {v} @{t}", labels.join(",")),
                        None => format!("{name}{{{}}} {v}", labels.join(",")),
                    }
                }
                Entry::Help { name, help } => format!("HELP {name} {help:?}"),
                Entry::Type { name, kind } => format!("TYPE {name} {}", kind.as_str()),
                Entry::Unit { name, unit } => format!("UNIT {name} {unit}"),
            });
        }
        Ok(out)
    }

    #[test]
    fn text_format_bodies_parse_as_prometheus_reads_them() {
        let cases: &[(&str, &str, &[&str])] = &[
            ("a plain sample", "up 1\n", &["up{} 1"]),
            (
                "labels, trailing comma and spaces",
                "x{a=\"1\", b=\"2\",} 3\n",
                &["x{a=\"1\",b=\"2\"} 3"],
            ),
            (
                "escapes in label values",
                "x{a=\"q\\\"uote\\\\back\\nnl\\tkept\"} 1\n",
                &["x{a=\"q\\\"uote\\\\back\\nnl\\\\tkept\"} 1"],
            ),
            (
                "NaN and infinities",
                "a NaN\nb +Inf\nc -Inf\nd nan\n",
                &["a{} NaN", "b{} inf", "c{} -inf", "d{} NaN"],
            ),
            (
                "exponent floats",
                "a 1.5e3\nb -0.25\nc .5\n",
                &["a{} 1500", "b{} -0.25", "c{} 0.5"],
            ),
            (
                "millisecond timestamps, negative too",
                "a 1 1700000000123\nb 2 -5\n",
                &["a{} 1 @1700000000123", "b{} 2 @-5"],
            ),
            (
                "HELP with escapes and TYPE",
                "# HELP x A \\\\ help\\nline.\n# TYPE x counter\nx 1\n",
                &["HELP x \"A \\\\ help\\nline.\"", "TYPE x counter", "x{} 1"],
            ),
            (
                "untyped type, comments and blank lines",
                "# TYPE x untyped\n# just a comment\n\n  \nx 1\n",
                &["TYPE x unknown", "x{} 1"],
            ),
            ("leading whitespace and tabs", "  x\t1\t5\n", &["x{} 1 @5"]),
            (
                "colons in metric names",
                "job:rate:5m 2\n",
                &["job:rate:5m{} 2"],
            ),
            (
                "quoted UTF-8 metric name",
                "{\"my.metric\",\"label.x\"=\"v\"} 1\n",
                &["my.metric{label.x=\"v\"} 1"],
            ),
            (
                "empty label value is kept by the parser",
                "x{a=\"\"} 1\n",
                &["x{a=\"\"} 1"],
            ),
            ("an empty body has no entries", "", &[]),
            ("CRLF line ends are tolerated", "x 1\r\n", &["x{} 1"]),
            (
                "duplicate series both come out (the scrape loop drops the second)",
                "x 1\nx 2\n",
                &["x{} 1", "x{} 2"],
            ),
        ];
        for (name, text, want) in cases {
            let got = parse(text, Format::Text).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn openmetrics_bodies_parse_as_prometheus_reads_them() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "a counter with EOF",
                "# TYPE a counter\na_total 1\n# EOF\n",
                &["TYPE a counter", "a_total{} 1"],
            ),
            (
                "timestamps are float seconds",
                "a 1 1700000000.5\n# EOF\n",
                &["a{} 1 @1700000000500"],
            ),
            (
                "exemplars are skipped",
                "a_bucket{le=\"1\"} 3 # {trace_id=\"abc\"} 0.5 1700000000\na_total 2 1.5 # {x=\"y\"} 1\n# EOF\n",
                &["a_bucket{le=\"1\"} 3", "a_total{} 2 @1500"],
            ),
            (
                "UNIT is a suffix of the name",
                "# UNIT a_seconds seconds\na_seconds 1\n# EOF\n",
                &["UNIT a_seconds seconds", "a_seconds{} 1"],
            ),
            (
                "stateset, info and gaugehistogram types",
                "# TYPE s stateset\n# TYPE i info\n# TYPE g gaugehistogram\n# EOF\n",
                &["TYPE s stateset", "TYPE i info", "TYPE g histogram"],
            ),
            (
                "escaped quote in HELP",
                "# HELP a say \\\"hi\\\"\n# EOF\n",
                &["HELP a \"say \\\"hi\\\"\""],
            ),
            ("infinity spelled out", "a +Infinity\n# EOF\n", &["a{} inf"]),
        ];
        for (name, text, want) in cases {
            let got = parse(text, Format::OpenMetrics).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(got, *want, "{name}");
        }
    }

    #[test]
    fn invalid_bodies_fail_with_the_line_number() {
        let cases: &[(&str, &str, Format, usize, &str)] = &[
            (
                "text cut short mid-line",
                "a 1\nb 2",
                Format::Text,
                2,
                "cut short",
            ),
            (
                "OpenMetrics without EOF",
                "a 1\n",
                Format::OpenMetrics,
                2,
                "EOF",
            ),
            (
                "data after EOF",
                "# EOF\na 1\n",
                Format::OpenMetrics,
                2,
                "after",
            ),
            ("bad value", "a 1\nb x1\n", Format::Text, 2, "invalid value"),
            ("missing value", "a\n", Format::Text, 1, "value"),
            ("bad timestamp", "a 1 1.5\n", Format::Text, 1, "timestamp"),
            (
                "unterminated label value",
                "a{b=\"c} 1\n",
                Format::Text,
                1,
                "unterminated",
            ),
            (
                "missing closing brace",
                "a{b=\"c\" 1\n",
                Format::Text,
                1,
                "expected ','",
            ),
            (
                "duplicate label name",
                "a{b=\"1\",b=\"2\"} 1\n",
                Format::Text,
                1,
                "duplicate",
            ),
            (
                "invalid label name",
                "a{1b=\"1\"} 1\n",
                Format::Text,
                1,
                "label name",
            ),
            (
                "invalid metric name",
                "\n\n1abc 1\n",
                Format::Text,
                3,
                "metric name",
            ),
            (
                "unknown type",
                "# TYPE a bogus\n",
                Format::Text,
                1,
                "metric type",
            ),
            (
                "text after the timestamp",
                "a 1 2 3\n",
                Format::Text,
                1,
                "unexpected text",
            ),
            (
                "exemplar in the text format",
                "a 1 # {x=\"y\"} 1\n",
                Format::Text,
                1,
                "unexpected text",
            ),
            (
                "blank line in OpenMetrics",
                "a 1\n\n# EOF\n",
                Format::OpenMetrics,
                2,
                "empty line",
            ),
            (
                "free comment in OpenMetrics",
                "# hello\n# EOF\n",
                Format::OpenMetrics,
                1,
                "invalid comment",
            ),
            (
                "UNIT not a suffix",
                "# UNIT a_bytes seconds\n# EOF\n",
                Format::OpenMetrics,
                1,
                "suffix",
            ),
            (
                "infinite OpenMetrics timestamp",
                "a 1 +Inf\n# EOF\n",
                Format::OpenMetrics,
                1,
                "timestamp",
            ),
        ];
        for (name, text, format, line, msg) in cases {
            let err = parse(text, *format).expect_err(name);
            assert_eq!(err.line, *line, "{name}: {err}");
            assert!(err.message.contains(msg), "{name}: {err}");
        }
    }

    #[test]
    fn huge_label_values_parse_and_errors_about_them_stay_short() {
        let big = "v".repeat(1 << 20);
        let text = format!("a{{b=\"{big}\"}} 1\n");
        let mut p = Parser::new(&text, Format::Text);
        assert!(matches!(p.next_entry(), Ok(Some(Entry::Sample { .. }))));
        assert_eq!(p.labels()[0].1.len(), 1 << 20);
        let bad = format!("a{{b=\"{big}\"}} {big}\n");
        let err = parse(&bad, Format::Text).unwrap_err();
        assert!(err.to_string().len() < 200, "{}", err.to_string().len());
    }

    #[test]
    fn unescaped_label_values_borrow_from_the_body() {
        let text = "a{b=\"plain\",c=\"esc\\\\aped\"} 1\n";
        let mut p = Parser::new(text, Format::Text);
        let Ok(Some(Entry::Sample { series, .. })) = p.next_entry() else {
            panic!("no sample")
        };
        assert_eq!(series, "a{b=\"plain\",c=\"esc\\\\aped\"}");
        assert!(matches!(p.labels()[0].1, Cow::Borrowed(_)));
        assert!(matches!(p.labels()[1].1, Cow::Owned(_)));
    }

    #[test]
    fn content_type_selects_the_format() {
        let cases = [
            (
                Some("application/openmetrics-text; version=1.0.0; charset=utf-8"),
                Format::OpenMetrics,
            ),
            (
                Some("application/openmetrics-text;version=0.0.1"),
                Format::OpenMetrics,
            ),
            (
                Some("text/plain; version=0.0.4; charset=utf-8"),
                Format::Text,
            ),
            (Some("application/json"), Format::Text),
            (None, Format::Text),
        ];
        for (ct, want) in cases {
            assert_eq!(Format::from_content_type(ct), want, "{ct:?}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let pieces = [
            "a", "{", "}", "\"", "\\", "=", ",", " ", "\n", "#", "1", "é", "\t", "# EOF", "# TYPE",
            "\r",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5000 {
            let mut s = String::new();
            for _ in 0..(seed % 24) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                s.push_str(pieces[(seed % pieces.len() as u64) as usize]);
            }
            for f in [Format::Text, Format::OpenMetrics] {
                let mut p = Parser::new(&s, f);
                for _ in 0..100 {
                    match p.next_entry() {
                        Ok(Some(_)) => {}
                        _ => break,
                    }
                }
            }
        }
    }
}
