//! The Prometheus HTTP API as Grafana uses it (`docs/querying/api.md`, `web/api/v1/api.go`):
//! instant and range queries, series, label names and values, metadata and build info.
//! GET query strings and POST form bodies are read alike; unknown parameters are ignored.
//! Queries run on the blocking pool, bounded by a semaphore and a deadline.

use super::ApiState;
use super::error::{ApiError, ErrorType};
use super::json::{push_labels, push_point, push_str, push_str_array, push_timestamp};
use super::params::{MAX_TIME_MS, MIN_TIME_MS, Params, parse_time};
use crate::model::{Labels, Matcher};
use crate::query::promql::ast::{Expr, ValueType};
use crate::query::promql::eval::{self, Value};
use crate::query::promql::{self, ParseError};
use crate::query::{SeriesData, SeriesReader};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Prometheus' limit on points per series of a range query (`api.go`, `queryRange`).
const MAX_POINTS_PER_SERIES: i64 = 11_000;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Reads query-string and (form-encoded POST) body parameters.
fn params(query: Option<String>, headers: &HeaderMap, body: &Bytes) -> Params {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    Params::from_request(
        query.as_deref(),
        (is_form && !body.is_empty()).then_some(&body[..]),
    )
}

/// A parse error as Prometheus' API reports it (`invalidParamError` in api.go):
/// `invalid parameter "query": 1:5: parse error: unexpected end of input`.
fn parse_error(param: &str, input: &str, e: &ParseError) -> ApiError {
    ApiError::bad_data(format!(
        "invalid parameter \"{param}\": {}",
        e.display_with_position(input)
    ))
}

fn parse_query(params: &Params) -> Result<Expr, ApiError> {
    let q = params.get("query").unwrap_or("");
    promql::parse(q).map_err(|e| parse_error("query", q, &e))
}

/// Engine options for one request: `timeout` may only shorten the configured one, and
/// `lookback_delta` overrides the default.
fn engine_options(s: &ApiState, params: &Params) -> Result<eval::EngineOptions, ApiError> {
    let mut opts = s.engine.clone();
    if let Some(ms) = params.duration("timeout")?
        && ms > 0
    {
        opts.timeout = opts.timeout.min(Duration::from_millis(ms as u64));
    }
    if let Some(ms) = params.duration("lookback_delta")?
        && ms > 0
    {
        opts.lookback_delta_ms = ms;
    }
    Ok(opts)
}

/// Runs `f` on the blocking pool once a query slot is free.
///
/// As in Prometheus, the query's timeout covers the wait for a slot too: a query still
/// queued when it runs out fails with `timeout` ("query timed out in query queue"), and
/// what is left of it bounds the evaluation.
async fn run_query<F>(
    s: &Arc<ApiState>,
    mut opts: eval::EngineOptions,
    f: F,
) -> Result<(Value, eval::Annotations), ApiError>
where
    F: FnOnce(
            &dyn SeriesReader,
            &eval::EngineOptions,
        ) -> Result<(Value, eval::Annotations), eval::EvalError>
        + Send
        + 'static,
{
    let queued = std::time::Instant::now();
    let _permit = match tokio::time::timeout(opts.timeout, s.query_slots.acquire()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(_)) => return Err(ApiError::new(ErrorType::Unavailable, "shutting down")),
        Err(_) => return Err(eval::EvalError::Timeout("query queue").into()),
    };
    opts.timeout = opts.timeout.saturating_sub(queued.elapsed());
    let store = s.store.clone();
    tokio::task::spawn_blocking(move || f(&store, &opts))
        .await
        .map_err(|e| ApiError::internal(format!("query task failed: {e}")))?
        .map_err(ApiError::from)
}

/// Appends a query result as `data`: `{"resultType":...,"result":...}`.
fn push_value(out: &mut String, v: &Value) {
    match v {
        Value::Scalar { t, v } => {
            out.push_str(r#"{"resultType":"scalar","result":"#);
            push_point(out, *t, *v);
        }
        Value::String { t, v } => {
            out.push_str(r#"{"resultType":"string","result":["#);
            push_timestamp(out, *t);
            out.push(',');
            push_str(out, v);
            out.push(']');
        }
        Value::Vector(samples) => {
            out.push_str(r#"{"resultType":"vector","result":["#);
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(r#"{"metric":"#);
                push_labels(out, &s.labels);
                out.push_str(r#","value":"#);
                push_point(out, s.t, s.v);
                out.push('}');
            }
            out.push(']');
        }
        Value::Matrix(series) => {
            out.push_str(MATRIX_START);
            for (i, s) in series.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                push_series(out, s);
            }
            out.push(']');
        }
    }
    out.push('}');
}

const MATRIX_START: &str = r#"{"resultType":"matrix","result":["#;

/// One series of a matrix: `{"metric":{...},"values":[[t,"v"],...]}`.
fn push_series(out: &mut String, s: &SeriesData) {
    out.push_str(r#"{"metric":"#);
    push_labels(out, &s.labels);
    out.push_str(r#","values":["#);
    for (j, p) in s.samples.iter().enumerate() {
        if j > 0 {
            out.push(',');
        }
        push_point(out, p.t, p.v);
    }
    out.push_str("]}");
}

/// Bytes of JSON a streamed answer writes before handing a chunk to the connection.
const STREAM_CHUNK: usize = 64 * 1024;

/// A matrix answer, streamed: written series by series into chunks of about
/// [`STREAM_CHUNK`], each series freed once written, so a large range query never holds
/// its samples and its whole JSON text at once (the text is about twice the samples).
fn stream_matrix(series: Vec<SeriesData>, notes: eval::Annotations) -> Response {
    let mut series = series.into_iter().enumerate();
    let mut started = false;
    let mut done = false;
    let chunks = std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut out = String::with_capacity(STREAM_CHUNK + STREAM_CHUNK / 4);
        if !started {
            started = true;
            out.push_str(r#"{"status":"success","data":"#);
            out.push_str(MATRIX_START);
        }
        while out.len() < STREAM_CHUNK {
            match series.next() {
                Some((i, s)) => {
                    if i > 0 {
                        out.push(',');
                    }
                    push_series(&mut out, &s);
                }
                None => {
                    out.push_str("]}");
                    super::push_envelope_end(&mut out, &notes.warnings, &notes.infos);
                    done = true;
                    break;
                }
            }
        }
        Some(Ok::<_, std::convert::Infallible>(Bytes::from(out)))
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        axum::body::Body::from_stream(futures_util::stream::iter(chunks)),
    )
        .into_response()
}

/// `/api/v1/query`
pub async fn query(
    State(s): State<Arc<ApiState>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = params(q, &headers, &body);
    let expr = parse_query(&p)?;
    let t = p.time_or("time", now_ms())?;
    let opts = engine_options(&s, &p)?;
    let (value, notes) = run_query(&s, opts, move |r, opts| {
        eval::instant_query_annotated(r, &expr, t, opts)
    })
    .await?;
    Ok(super::success(
        |out| push_value(out, &value),
        &notes.warnings,
        &notes.infos,
    ))
}

/// `/api/v1/query_range`
pub async fn query_range(
    State(s): State<Arc<ApiState>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = params(q, &headers, &body);
    let start = required_time(&p, "start")?;
    let end = required_time(&p, "end")?;
    if end < start {
        return Err(ApiError::bad_data(
            "end timestamp must not be before start time",
        ));
    }
    let step = p.duration("step")?.ok_or_else(|| {
        ApiError::bad_data("invalid parameter \"step\": cannot parse \"\" to a valid duration")
    })?;
    if step <= 0 {
        return Err(ApiError::bad_data(
            "zero or negative query resolution step widths are not accepted. Try a positive integer",
        ));
    }
    if (end - start) / step > MAX_POINTS_PER_SERIES {
        return Err(ApiError::bad_data(
            "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)",
        ));
    }
    let expr = parse_query(&p)?;
    let ty = expr.value_type();
    if ty != ValueType::Scalar && ty != ValueType::Vector {
        return Err(ApiError::bad_data(format!(
            "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
            ty.name()
        )));
    }
    let opts = engine_options(&s, &p)?;
    let (value, notes) = run_query(&s, opts, move |r, opts| {
        eval::range_query_annotated(r, &expr, start, end, step, opts)
    })
    .await?;
    Ok(match value {
        Value::Matrix(series) => stream_matrix(series, notes),
        value => super::success(|out| push_value(out, &value), &notes.warnings, &notes.infos),
    })
}

fn required_time(p: &Params, name: &str) -> Result<i64, ApiError> {
    let v = p.get(name).unwrap_or("");
    parse_time(v).map_err(|e| ApiError::bad_data(format!("invalid parameter \"{name}\": {e}")))
}

/// Parses each `match[]` selector into its matchers.
fn match_params(p: &Params) -> Result<Vec<Vec<Matcher>>, ApiError> {
    p.all("match[]")
        .into_iter()
        .map(|sel| match promql::parse(sel) {
            Ok(Expr::VectorSelector(ref vs)) => Ok(vs.matchers.clone()),
            Ok(_) => Err(ApiError::bad_data(format!(
                "invalid parameter \"match[]\": {sel:?} is not an instant vector selector"
            ))),
            Err(e) => Err(parse_error("match[]", sel, &e)),
        })
        .collect()
}

fn time_range(p: &Params) -> Result<(i64, i64), ApiError> {
    Ok((
        p.time_or("start", MIN_TIME_MS)?,
        p.time_or("end", MAX_TIME_MS)?,
    ))
}

/// Truncates to `limit` (0 = none), returning the warning Prometheus adds.
fn apply_limit<T>(items: &mut Vec<T>, limit: usize) -> Vec<String> {
    if limit > 0 && items.len() > limit {
        items.truncate(limit);
        vec!["results truncated due to limit".to_string()]
    } else {
        Vec::new()
    }
}

/// `/api/v1/series`
pub async fn series(
    State(s): State<Arc<ApiState>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = params(q, &headers, &body);
    let sets = match_params(&p)?;
    if sets.is_empty() {
        return Err(ApiError::bad_data("no match[] parameter provided"));
    }
    let (start, end) = time_range(&p)?;
    let limit = p.limit()?;
    let store = s.store.clone();
    let mut all: Vec<Labels> =
        tokio::task::spawn_blocking(move || -> Result<Vec<Labels>, ApiError> {
            let mut seen = BTreeSet::new();
            for m in &sets {
                seen.extend(store.series(m, start, end)?);
            }
            Ok(seen.into_iter().collect())
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    let warnings = apply_limit(&mut all, limit);
    let mut out = String::from("[");
    for (i, l) in all.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_labels(&mut out, l);
    }
    out.push(']');
    Ok(super::success(|b| b.push_str(&out), &warnings, &[]))
}

/// `/api/v1/labels`
pub async fn labels(
    State(s): State<Arc<ApiState>>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let p = params(q, &headers, &body);
    let sets = match_params(&p)?;
    let (start, end) = time_range(&p)?;
    let limit = p.limit()?;
    let store = s.store.clone();
    let mut names = tokio::task::spawn_blocking(move || -> Result<Vec<String>, ApiError> {
        if sets.is_empty() {
            return Ok(store.label_names(&[], start, end)?);
        }
        let mut all = BTreeSet::new();
        for m in &sets {
            all.extend(store.label_names(m, start, end)?);
        }
        Ok(all.into_iter().collect())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let warnings = apply_limit(&mut names, limit);
    Ok(super::success(
        |out| push_str_array(out, &names),
        &warnings,
        &[],
    ))
}

/// `/api/v1/label/<name>/values`
pub async fn label_values(
    State(s): State<Arc<ApiState>>,
    Path(name): Path<String>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::from_request(q.as_deref(), None);
    let name = unescape_label_name(&name);
    if name.is_empty() {
        return Err(ApiError::bad_data(format!("invalid label name: {name:?}")));
    }
    let sets = match_params(&p)?;
    let (start, end) = time_range(&p)?;
    let limit = p.limit()?;
    let store = s.store.clone();
    let mut values = tokio::task::spawn_blocking(move || -> Result<Vec<String>, ApiError> {
        if sets.is_empty() {
            return Ok(store.label_values(&name, &[], start, end)?);
        }
        let mut all = BTreeSet::new();
        for m in &sets {
            all.extend(store.label_values(&name, m, start, end)?);
        }
        Ok(all.into_iter().collect())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let warnings = apply_limit(&mut values, limit);
    Ok(super::success(
        |out| push_str_array(out, &values),
        &warnings,
        &[],
    ))
}

/// Label names in the values path may be `U__`-escaped (Prometheus 3.x UTF-8 names):
/// `_` stands for itself as `__`, other characters as `_<hex code point>_`.
fn unescape_label_name(name: &str) -> String {
    let Some(rest) = name.strip_prefix("U__") else {
        return name.to_string();
    };
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '_' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'_') {
            chars.next();
            out.push('_');
            continue;
        }
        let hex: String = chars.by_ref().take_while(|c| *c != '_').collect();
        match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
            Some(decoded) => out.push(decoded),
            // Not a valid escape: keep the name as written, as Prometheus does.
            None => return name.to_string(),
        }
    }
    out
}

/// `/api/v1/metadata`
pub async fn metadata(
    State(s): State<Arc<ApiState>>,
    RawQuery(q): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::from_request(q.as_deref(), None);
    let limit = p.limit()?;
    let metric = p.get("metric").map(str::to_string);
    let all = s.store.metadata();
    let mut out = String::from("{");
    let mut n = 0;
    for (name, md) in &all {
        if metric.as_deref().is_some_and(|m| m != name) {
            continue;
        }
        if limit > 0 && n >= limit {
            break;
        }
        if n > 0 {
            out.push(',');
        }
        n += 1;
        push_str(&mut out, name);
        out.push_str(r#":[{"type":"#);
        push_str(&mut out, md.kind.as_str());
        out.push_str(r#","help":"#);
        push_str(&mut out, &md.help);
        out.push_str(r#","unit":"#);
        push_str(&mut out, &md.unit);
        out.push_str("}]");
    }
    out.push('}');
    Ok(super::success(|b| b.push_str(&out), &[], &[]))
}

/// `/api/v1/status/buildinfo`, without `features` so that Grafana treats Picket as a
/// Prometheus (a `features` map would make it probe for a Mimir ruler).
pub async fn buildinfo() -> Response {
    let mut out = String::from("{");
    let fields = [
        ("version", env!("CARGO_PKG_VERSION")),
        (
            "revision",
            option_env!("PICKET_GIT_REVISION").unwrap_or("unknown"),
        ),
        ("branch", "main"),
        ("buildUser", "picket"),
        (
            "buildDate",
            option_env!("PICKET_BUILD_DATE").unwrap_or("unknown"),
        ),
        ("goVersion", "none (Rust)"),
    ];
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(&mut out, k);
        out.push(':');
        push_str(&mut out, v);
    }
    out.push('}');
    super::success(|b| b.push_str(&out), &[], &[])
}

/// `/api/v1/query_exemplars`: Picket keeps no exemplars; an empty success keeps Grafana's
/// exemplar toggle working instead of showing an error.
pub async fn exemplars() -> Response {
    super::success(|b| b.push_str("[]"), &[], &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A streamed matrix is the very text `push_value` writes, over many chunks.
    #[tokio::test]
    async fn a_streamed_matrix_is_the_buffered_text() {
        let series: Vec<SeriesData> = (0..3000)
            .map(|i| SeriesData {
                labels: Labels::from_pairs([("i", i.to_string().as_str())]),
                samples: (0..20)
                    .map(|k| crate::model::Sample {
                        t: k * 15_000,
                        v: (i * k) as f64 / 7.0,
                    })
                    .collect(),
            })
            .collect();
        let notes = eval::Annotations {
            warnings: vec!["w".into()],
            infos: vec![],
        };
        let want = super::super::success(
            |out| push_value(out, &Value::Matrix(series.clone())),
            &notes.warnings,
            &notes.infos,
        );
        let want = axum::body::to_bytes(want.into_body(), usize::MAX)
            .await
            .unwrap();
        let got = stream_matrix(series, notes);
        let mut body = got.into_body().into_data_stream();
        let mut chunks = 0;
        let mut text = Vec::new();
        while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
            chunks += 1;
            text.extend_from_slice(&chunk.unwrap());
        }
        assert!(chunks > 3, "{chunks} chunks");
        assert_eq!(
            String::from_utf8(text).unwrap(),
            String::from_utf8(want.to_vec()).unwrap()
        );
    }

    #[test]
    fn parse_errors_name_the_parameter_line_and_column() {
        let e = promql::parse("sum(").unwrap_err();
        assert_eq!(
            parse_error("query", "sum(", &e).message,
            "invalid parameter \"query\": 1:5: parse error: unclosed left parenthesis"
        );
    }

    #[test]
    fn u_escaped_label_names_are_decoded() {
        assert_eq!(unescape_label_name("job"), "job");
        assert_eq!(unescape_label_name("U__my_2e_label"), "my.label");
        assert_eq!(unescape_label_name("U__a__b"), "a_b");
    }
}
