//! `picket query`: asks a running Picket (or any Prometheus-compatible server) over its
//! HTTP API and prints the result the way `promtool query instant` / `promtool query range`
//! do, so that output can be diffed against promtool's.
//!
//! promtool prints the `prometheus/common/model` values with their `String()` methods:
//! a vector sample is `{labels} => value @[timestamp]`, a matrix series is `{labels} =>`
//! followed by one `value @[timestamp]` line per point, a scalar is
//! `scalar: value @[timestamp]`. Values and timestamps are Go's
//! `strconv.FormatFloat(f, 'f', -1, 64)` (shortest round-trip, no exponent), label values
//! are Go-quoted (`%q`), and the metric name is written before the braces.
//! See `model/value.go` and `model/metric.go` in github.com/prometheus/common.

use crate::model::format_go_float;
use serde_json::Value;
use std::fmt::Write as _;
use std::time::Duration;

/// What to ask: an instant query at `time` (the server's now when `None`), or a range.
#[derive(Debug, Clone)]
pub enum QueryKind {
    Instant {
        time: Option<String>,
    },
    Range {
        start: String,
        end: String,
        step: String,
    },
}

/// Why a query printed nothing: the server's answer or the transport.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The server answered `{"status":"error","errorType":...,"error":...}`.
    #[error("{error_type}: {error}")]
    Api { error_type: String, error: String },
    /// No usable answer: connection refused, timeout, not JSON.
    #[error("{0}")]
    Transport(String),
}

/// Runs `expr` against `server` (a base URL such as `http://127.0.0.1:9464`) and returns
/// the promtool-style text, one line per entry and no trailing newline.
pub fn query(server: &str, expr: &str, kind: &QueryKind) -> Result<String, QueryError> {
    let base = server.trim_end_matches('/');
    let mut form: Vec<(&str, &str)> = vec![("query", expr)];
    let path = match kind {
        QueryKind::Instant { time } => {
            if let Some(t) = time {
                form.push(("time", t));
            }
            "/api/v1/query"
        }
        QueryKind::Range { start, end, step } => {
            form.push(("start", start));
            form.push(("end", end));
            form.push(("step", step));
            "/api/v1/query_range"
        }
    };
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(|e| QueryError::Transport(format!("cannot build an HTTP client: {e}")))?;
    let url = format!("{base}{path}");
    let resp = client
        .post(&url)
        .form(&form)
        .send()
        .map_err(|e| QueryError::Transport(format!("cannot reach {url}: {e}")))?;
    let status = resp.status();
    let body = resp
        .text()
        .map_err(|e| QueryError::Transport(format!("reading the answer of {url}: {e}")))?;
    let v: Value = serde_json::from_str(&body).map_err(|_| {
        QueryError::Transport(format!(
            "{url} answered {status} with a body that is not JSON: {}",
            body.chars().take(200).collect::<String>()
        ))
    })?;
    if v["status"] != "success" {
        return Err(QueryError::Api {
            error_type: v["errorType"].as_str().unwrap_or("unknown").to_string(),
            error: v["error"].as_str().unwrap_or("").to_string(),
        });
    }
    format_data(&v["data"]).ok_or_else(|| {
        QueryError::Transport(format!("{url} answered an unknown result shape: {v}"))
    })
}

/// The promtool text of an API `data` object; `None` when it is not a known shape.
pub fn format_data(data: &Value) -> Option<String> {
    let result = &data["result"];
    let mut out = String::new();
    match data["resultType"].as_str()? {
        "scalar" => {
            let (t, v) = pair(result)?;
            let _ = write!(out, "scalar: {v} @[{t}]");
        }
        // model.String's String() is its value alone.
        "string" => out.push_str(result.get(1)?.as_str()?),
        "vector" => {
            let lines: Option<Vec<String>> = result
                .as_array()?
                .iter()
                .map(|s| {
                    let (t, v) = pair(&s["value"])?;
                    Some(format!("{} => {v} @[{t}]", metric(&s["metric"])?))
                })
                .collect();
            out = lines?.join("\n");
        }
        "matrix" => {
            let series: Option<Vec<String>> = result
                .as_array()?
                .iter()
                .map(|s| {
                    let mut text = format!("{} =>", metric(&s["metric"])?);
                    for p in s["values"].as_array()? {
                        let (t, v) = pair(p)?;
                        let _ = write!(text, "\n{v} @[{t}]");
                    }
                    Some(text)
                })
                .collect();
            out = series?.join("\n");
        }
        _ => return None,
    }
    Some(out)
}

/// `[unix_seconds, "value"]` → (timestamp text, value text) as Go prints them.
fn pair(p: &Value) -> Option<(String, String)> {
    let t = p.get(0)?.as_f64()?;
    // Timestamps are milliseconds on the wire; model.Time prints ms / 1000 as a float.
    let ms = (t * 1000.0).round();
    let v = match p.get(1)?.as_str()? {
        "NaN" => f64::NAN,
        "+Inf" | "Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        s => s.parse().ok()?,
    };
    Some((format_go_float(ms / 1000.0), format_go_float(v)))
}

/// model.Metric's String(): `name{a="1", b="2"}` with the other labels sorted, `name`
/// alone without other labels, `{}` for no labels at all.
fn metric(m: &Value) -> Option<String> {
    let obj = m.as_object()?;
    let name = obj.get("__name__").and_then(Value::as_str);
    let mut pairs: Vec<String> = obj
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .map(|(k, v)| Some(format!("{k}={}", go_quote(v.as_str()?))))
        .collect::<Option<_>>()?;
    pairs.sort();
    Some(match (name, pairs.is_empty()) {
        (Some(n), true) => n.to_string(),
        (None, true) => "{}".into(),
        (n, false) => format!("{}{{{}}}", n.unwrap_or(""), pairs.join(", ")),
    })
}

/// Go's `%q` for the strings label values hold: printable characters as they are,
/// quotes and backslashes escaped, control characters as Go writes them.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_vector_prints_one_sample_per_line_as_promtool_does() {
        let data = json!({"resultType": "vector", "result": [
            {"metric": {"__name__": "up", "job": "node", "instance": "a:9100"}, "value": [1767229267.25, "1"]},
            {"metric": {"job": "x"}, "value": [1767229267.25, "NaN"]},
            {"metric": {"__name__": "up"}, "value": [1767229267, "+Inf"]},
            {"metric": {}, "value": [1767229267.001, "-0.000001"]}
        ]});
        assert_eq!(
            format_data(&data).unwrap(),
            "up{instance=\"a:9100\", job=\"node\"} => 1 @[1767229267.25]\n\
             {job=\"x\"} => NaN @[1767229267.25]\n\
             up => +Inf @[1767229267]\n\
             {} => -0.000001 @[1767229267.001]"
        );
    }

    #[test]
    fn a_matrix_prints_each_series_then_its_points() {
        let data = json!({"resultType": "matrix", "result": [
            {"metric": {"__name__": "x", "a": "1"}, "values": [[10, "1"], [25, "1e21"]]},
            {"metric": {"a": "2"}, "values": [[10, "2.5"]]}
        ]});
        assert_eq!(
            format_data(&data).unwrap(),
            "x{a=\"1\"} =>\n1 @[10]\n1000000000000000000000 @[25]\n{a=\"2\"} =>\n2.5 @[10]"
        );
    }

    #[test]
    fn scalars_and_strings_print_like_promtool() {
        let s = json!({"resultType": "scalar", "result": [4, "2"]});
        assert_eq!(format_data(&s).unwrap(), "scalar: 2 @[4]");
        let s = json!({"resultType": "string", "result": [4, "hello"]});
        assert_eq!(format_data(&s).unwrap(), "hello");
        let empty = json!({"resultType": "vector", "result": []});
        assert_eq!(format_data(&empty).unwrap(), "");
    }

    #[test]
    fn label_values_are_go_quoted() {
        assert_eq!(go_quote("a\"b\\c\nd\u{1}é"), "\"a\\\"b\\\\c\\nd\\x01é\"");
    }

    #[test]
    fn unknown_shapes_are_refused_not_panicked_on() {
        assert!(format_data(&json!({"resultType": "nope", "result": []})).is_none());
        assert!(format_data(&json!({"resultType": "vector", "result": [{"value": 3}]})).is_none());
        assert!(format_data(&json!({})).is_none());
    }

    #[test]
    fn an_unreachable_server_is_a_transport_error() {
        // A loopback port that was just free: the connection is refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let e = query(
            &format!("http://127.0.0.1:{port}"),
            "up",
            &QueryKind::Instant { time: None },
        )
        .unwrap_err();
        assert!(matches!(e, QueryError::Transport(_)), "{e}");
    }
}
