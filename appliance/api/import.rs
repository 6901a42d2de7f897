//! Text write endpoints, following VictoriaMetrics (the fleet's central store), so that
//! scripts, Pi sensors and Telegraf can push without a Prometheus client:
//!
//! - `POST /api/v1/import/prometheus`: Prometheus text exposition, one sample a line, with
//!   optional timestamps in milliseconds; query args `timestamp` (ms, for lines without
//!   one; default now) and `extra_label=name=value` (repeatable, overrides a label of the
//!   same name), as in VictoriaMetrics. Parsed with the scraper's parser, line by line.
//! - `POST /write` (Influx 1.x) and `POST /api/v2/write` (Influx 2.x): the line protocol
//!   (`influx.rs`), mapped the way VictoriaMetrics maps it: each field becomes a series
//!   `{measurement}_{field}` (also a field named `value`) with the tags as labels; on
//!   `/write`, the `db` query arg becomes a `db` label unless the line has a `db` tag;
//!   integers (`1i`, `1u`) and booleans become numbers, string fields 0 (VictoriaMetrics
//!   1.79 does the same); `precision` = `ns` (default), `us`/`u`, `ms`, `s`, `m`, `h`.
//!
//! One difference kept on purpose: VictoriaMetrics 1.79 drops NaN samples; Picket stores
//! them, as Prometheus does (a NaN is a value, e.g. a summary quantile with no data).
//!
//! Bodies may be gzip-compressed (`Content-Encoding: gzip`). With `api.write_token_file`
//! set, a request needs `Authorization: Bearer <token>` or Influx' `Token <token>`. The
//! body limit is `api.max_request_bytes` (decompressed: 4 times that).
//!
//! Bad lines: the good lines of a body are stored and the answer is 400 naming the first
//! bad lines by number (InfluxDB 1.x' "partial write"). VictoriaMetrics instead skips bad
//! lines silently with 204; Picket says what it refused, and a sender resending the body
//! after fixing it rewrites the same samples (same series and timestamps), which the
//! store keeps once.

use super::ApiState;
use super::error::{ApiError, ErrorType};
use crate::collect::scrape::parser::{Entry, Format, Parser};
use crate::ingest::IngestError;
use crate::model::{Labels, LabelsBuilder, METRIC_NAME, Sample};
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::Arc;

pub mod influx;

/// Decompressed bodies may be this many times the configured limit.
const MAX_DECOMPRESSION_FACTOR: usize = 4;
/// Bad lines named in an error message.
const MAX_REPORTED: usize = 5;

/// What parsing a body produced: series to store, and the bad lines.
#[derive(Debug, Default)]
pub struct Parsed {
    pub series: HashMap<Labels, Vec<Sample>>,
    pub bad_lines: u64,
    pub problems: Vec<String>,
}

impl Parsed {
    pub fn push(&mut self, labels: Labels, s: Sample) {
        self.series.entry(labels).or_default().push(s);
    }
    pub fn bad(&mut self, line: usize, message: impl std::fmt::Display) {
        self.bad_lines += 1;
        if self.problems.len() < MAX_REPORTED {
            self.problems.push(format!("line {line}: {message}"));
        }
    }
}

pub async fn import_prometheus(
    State(s): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let args = query_args(query.as_deref());
    let default_t = match args.iter().find(|(k, _)| k == "timestamp") {
        Some((_, v)) => match v.parse::<i64>() {
            Ok(t) => t,
            Err(_) => return bad(format!("invalid timestamp {v:?}: want milliseconds")),
        },
        None => crate::store::status::now_ms(),
    };
    let mut extra = Vec::new();
    for (_, v) in args.iter().filter(|(k, _)| k == "extra_label") {
        match v.split_once('=') {
            Some((n, val)) if !n.is_empty() => extra.push((n.to_string(), val.to_string())),
            _ => return bad(format!("invalid extra_label {v:?}: want name=value")),
        }
    }
    handle(&s, &headers, &body, move |text| {
        parse_prometheus(text, default_t, &extra)
    })
    .await
}

pub async fn influx_write(
    State(s): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    influx_common(s, query, headers, body, true).await
}

pub async fn influx_write_v2(
    State(s): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    influx_common(s, query, headers, body, false).await
}

async fn influx_common(
    s: Arc<ApiState>,
    query: Option<String>,
    headers: HeaderMap,
    body: Bytes,
    v1: bool,
) -> Response {
    let args = query_args(query.as_deref());
    let precision = args
        .iter()
        .find(|(k, _)| k == "precision")
        .map_or("ns", |(_, v)| v.as_str());
    let Some(scale) = influx::precision_ns(precision) else {
        return bad(format!(
            "invalid precision {precision:?}: want ns, us, ms, s, m or h"
        ));
    };
    let db = if v1 {
        args.iter()
            .find(|(k, _)| k == "db")
            .map(|(_, v)| v.clone())
            .filter(|v| !v.is_empty())
    } else {
        None
    };
    let now_ns = i128::from(crate::store::status::now_ms()) * 1_000_000;
    handle(&s, &headers, &body, move |text| {
        influx::parse(text, scale, now_ns, db.as_deref())
    })
    .await
}

/// Checks the token, decompresses, parses on a blocking thread and stores.
async fn handle(
    s: &ApiState,
    headers: &HeaderMap,
    body: &Bytes,
    parse: impl FnOnce(&str) -> Parsed + Send + 'static,
) -> Response {
    if let Some(token) = &s.write_token
        && !token_matches(headers, token)
    {
        return (
            StatusCode::UNAUTHORIZED,
            "missing or wrong token (Authorization: Bearer <token> or Token <token>)\n",
        )
            .into_response();
    }
    let raw = match decode_body(
        headers,
        body,
        s.max_request_bytes * MAX_DECOMPRESSION_FACTOR,
    ) {
        Ok(b) => b,
        Err(msg) => return bad(msg),
    };
    let ingest = s.ingest.clone();
    let result = tokio::task::spawn_blocking(move || {
        let text = match std::str::from_utf8(&raw) {
            Ok(t) => t,
            Err(e) => {
                return Err(IngestError::Invalid(format!(
                    "body is not UTF-8 (byte {})",
                    e.valid_up_to()
                )));
            }
        };
        let parsed = parse(text);
        let series: Vec<(Labels, Vec<Sample>)> = parsed.series.into_iter().collect();
        let stored = ingest.imported(series, parsed.bad_lines)?;
        if parsed.problems.is_empty() {
            Ok(stored)
        } else {
            Err(IngestError::Invalid(format!(
                "{} bad lines skipped, {stored} samples stored: {}",
                parsed.bad_lines,
                parsed.problems.join("; ")
            )))
        }
    })
    .await;
    match result {
        Ok(Ok(_)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(IngestError::Invalid(msg))) => bad(msg),
        Ok(Err(IngestError::Store(e))) => {
            ApiError::new(ErrorType::Internal, e.to_string()).into_response()
        }
        Err(e) => {
            ApiError::new(ErrorType::Internal, format!("import task failed: {e}")).into_response()
        }
    }
}

fn bad(msg: impl Into<String>) -> Response {
    ApiError::new(ErrorType::BadData, msg).into_response()
}

fn query_args(q: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(q.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// `Authorization: Bearer <token>` or `Token <token>` (Influx 2.x clients), compared
/// without an early exit.
fn token_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("Token "))
        })
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The body, gunzipped when `Content-Encoding: gzip`, at most `max` bytes.
fn decode_body(headers: &HeaderMap, body: &[u8], max: usize) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim();
    if encoding.eq_ignore_ascii_case("identity") || encoding.is_empty() {
        return Ok(body.to_vec());
    }
    if !encoding.eq_ignore_ascii_case("gzip") {
        return Err(format!(
            "unsupported Content-Encoding {encoding:?}; send plain or gzip bodies"
        ));
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(body)
        .take(max as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("invalid gzip body: {e}"))?;
    if out.len() > max {
        return Err(format!(
            "decompressed body exceeds the limit of {max} bytes"
        ));
    }
    Ok(out)
}

/// Parses Prometheus text line by line, so that one bad line costs only itself.
pub fn parse_prometheus(text: &str, default_t: i64, extra: &[(String, String)]) -> Parsed {
    let mut out = Parsed::default();
    let mut line_buf = String::new();
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        line_buf.clear();
        line_buf.push_str(line);
        line_buf.push('\n');
        let mut p = Parser::new(&line_buf, Format::Text);
        match p.next_entry() {
            Ok(Some(Entry::Sample {
                name,
                value,
                timestamp_ms,
                ..
            })) => {
                let mut b = LabelsBuilder::default();
                b.set(METRIC_NAME, &name);
                let mut dup = None;
                for (k, v) in p.labels() {
                    if b.get(k).is_some() {
                        dup = Some(k.to_string());
                    }
                    b.set(k, v);
                }
                if let Some(k) = dup {
                    out.bad(i + 1, format!("duplicate label name {k:?}"));
                    continue;
                }
                for (k, v) in extra {
                    b.set(k, v);
                }
                out.push(
                    b.build(),
                    Sample {
                        t: timestamp_ms.unwrap_or(default_t),
                        v: value,
                    },
                );
            }
            Ok(_) => {}
            Err(e) => out.bad(i + 1, e.message),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_import_keeps_good_lines_and_names_bad_ones() {
        let text = "# HELP x y\nup{job=\"a\"} 1 1000\nbad{ 2\nup{job=\"b\"} 3\nup{job=\"a\",job=\"c\"} 4\n";
        let p = parse_prometheus(text, 5_000, &[("dc".into(), "x".into())]);
        assert_eq!(p.series.len(), 2);
        let a = Labels::from_pairs([("__name__", "up"), ("dc", "x"), ("job", "a")]);
        assert_eq!(p.series[&a], [Sample { t: 1000, v: 1.0 }]);
        let b = Labels::from_pairs([("__name__", "up"), ("dc", "x"), ("job", "b")]);
        assert_eq!(
            p.series[&b],
            [Sample { t: 5000, v: 3.0 }],
            "default timestamp"
        );
        assert_eq!(p.bad_lines, 2);
        assert!(p.problems[0].starts_with("line 3:"), "{:?}", p.problems);
        assert!(p.problems[1].starts_with("line 5:"), "{:?}", p.problems);
    }

    #[test]
    fn extra_labels_override_and_the_last_line_needs_no_newline() {
        let p = parse_prometheus("m{a=\"b\"} 1", 7, &[("a".into(), "c".into())]);
        let want = Labels::from_pairs([("__name__", "m"), ("a", "c")]);
        assert_eq!(p.series[&want], [Sample { t: 7, v: 1.0 }]);
    }

    #[test]
    fn tokens_in_bearer_and_influx_form_are_accepted() {
        let mut h = HeaderMap::new();
        assert!(!token_matches(&h, "t0k"));
        h.insert(header::AUTHORIZATION, "Token t0k".parse().unwrap());
        assert!(token_matches(&h, "t0k"));
        h.insert(header::AUTHORIZATION, "Bearer t0k".parse().unwrap());
        assert!(token_matches(&h, "t0k"));
        h.insert(header::AUTHORIZATION, "Bearer t0".parse().unwrap());
        assert!(!token_matches(&h, "t0k"));
    }

    #[test]
    fn gzip_bodies_are_inflated_within_the_limit() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&[b'a'; 1000]).unwrap();
        let gz = enc.finish().unwrap();
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_ENCODING, "gzip".parse().unwrap());
        assert_eq!(decode_body(&h, &gz, 1000).unwrap().len(), 1000);
        assert!(decode_body(&h, &gz, 999).unwrap_err().contains("exceeds"));
        assert!(decode_body(&h, b"nope", 1000).unwrap_err().contains("gzip"));
        h.insert(header::CONTENT_ENCODING, "br".parse().unwrap());
        assert!(decode_body(&h, b"x", 10).unwrap_err().contains("br"));
    }
}
