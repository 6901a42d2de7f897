//! `GET /api/v1/status/tsdb` in Prometheus' shape (`web/api/v1/api.go`, `serveTSDBStatus`:
//! `headStats` and four top-`limit` lists) plus Picket's own `picket` section: per tier
//! its bytes, partition files, time span, samples and bytes per sample, and the budget.
//!
//! `POST /api/v1/admin/snapshot`: a consistent copy of the store under
//! `<data dir>/snapshots/<name>`, like Prometheus' TSDB snapshot endpoint; it answers
//! `{"name": ..., "path": ...}`. Guarded by the write token, as every write is.

use super::ApiState;
use super::error::ApiError;
use super::json::push_str;
use super::params::Params;
use crate::store::status::Stat;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use std::fmt::Write;
use std::sync::Arc;

/// Prometheus' default for `limit` on this endpoint.
const DEFAULT_LIMIT: usize = 10;

fn ok(data: &str) -> Response {
    super::success(|b| b.push_str(data), &[], &[])
}

fn push_stats(out: &mut String, key: &str, stats: &[Stat]) {
    let _ = write!(out, r#","{key}":["#);
    for (i, s) in stats.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"name":"#);
        push_str(out, &s.name);
        let _ = write!(out, r#","value":{}}}"#, s.value);
    }
    out.push(']');
}

fn push_opt(out: &mut String, v: Option<impl std::fmt::Display>) {
    match v {
        Some(v) => {
            let _ = write!(out, "{v}");
        }
        None => out.push_str("null"),
    }
}

pub async fn tsdb(
    State(s): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::from_request(query.as_deref(), None);
    // Prometheus: "limit must be a positive number" for anything but an integer >= 1.
    let limit = match params.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => return Err(ApiError::bad_data("limit must be a positive number")),
        },
    };
    let store = s.store.clone();
    let st = tokio::task::spawn_blocking(move || store.tsdb_status(limit))
        .await
        .map_err(|e| ApiError::internal(format!("status task failed: {e}")))?;
    let mut out = String::with_capacity(2048);
    let h = &st.head;
    let _ = write!(
        out,
        r#"{{"headStats":{{"numSeries":{},"numLabelPairs":{},"chunkCount":{},"minTime":{},"maxTime":{}}}"#,
        h.num_series, h.num_label_pairs, h.chunk_count, h.min_time, h.max_time
    );
    push_stats(
        &mut out,
        "seriesCountByMetricName",
        &st.series_count_by_metric_name,
    );
    push_stats(
        &mut out,
        "labelValueCountByLabelName",
        &st.label_value_count_by_label_name,
    );
    push_stats(
        &mut out,
        "memoryInBytesByLabelName",
        &st.memory_in_bytes_by_label_name,
    );
    push_stats(
        &mut out,
        "seriesCountByLabelValuePair",
        &st.series_count_by_label_value_pair,
    );
    out.push_str(r#","picket":{"tiers":["#);
    for (i, t) in st.tiers.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(r#"{"name":"#);
        push_str(&mut out, t.name);
        let _ = write!(
            out,
            r#","bytes":{},"partitions":{},"samples":{},"minTime":"#,
            t.bytes, t.partitions, t.samples
        );
        push_opt(&mut out, t.min_time);
        out.push_str(r#","maxTime":"#);
        push_opt(&mut out, t.max_time);
        out.push_str(r#","bytesPerSample":"#);
        push_opt(&mut out, t.bytes_per_sample().map(|b| format!("{:.3}", b)));
        out.push('}');
    }
    let _ = write!(out, r#"],"indexBytes":{},"budgetBytes":"#, st.index_bytes);
    push_opt(&mut out, st.budget_bytes);
    let _ = write!(out, r#","evictedPartitions":{}}}}}"#, st.evicted_partitions);
    Ok(ok(&out))
}

pub async fn snapshot(
    State(s): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(token) = &s.write_token
        && !super::remote_write::bearer_matches(&headers, token)
    {
        return Ok((StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response());
    }
    let store = s.store.clone();
    let (name, path) = tokio::task::spawn_blocking(move || store.snapshot_in_data_dir())
        .await
        .map_err(|e| ApiError::internal(format!("snapshot task failed: {e}")))?
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut out = String::from(r#"{"name":"#);
    push_str(&mut out, &name);
    out.push_str(r#","path":"#);
    push_str(&mut out, &path.to_string_lossy());
    out.push('}');
    Ok(ok(&out))
}
