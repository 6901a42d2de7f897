//! The HTTP API: the Prometheus query API (`prometheus`), the remote_write receiver
//! (`remote_write`), the text imports (`import`: VictoriaMetrics' Prometheus-text import
//! and the Influx line protocol), Picket's own `/metrics`, and the health endpoints, on one axum router.
//! Request bodies are size-limited here; everything else is decided by the handlers.

pub mod error;
pub mod import;
pub mod json;
pub mod params;
pub mod prometheus;
pub mod remote_write;
pub mod rules;
pub mod silences;
pub mod status;
pub mod targets;

use crate::ingest::Ingest;
use crate::query::promql::eval::EngineOptions;
use crate::store::Store;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Semaphore;

/// What every handler may use.
pub struct ApiState {
    pub store: Store,
    pub ingest: Ingest,
    pub engine: EngineOptions,
    /// Bounds the number of queries evaluated at once.
    pub query_slots: Semaphore,
    /// Bearer token required by write endpoints, if configured.
    pub write_token: Option<String>,
    /// Largest accepted request body, in bytes.
    pub max_request_bytes: usize,
    /// Renders Picket's own metrics for `/metrics`.
    pub self_metrics: Box<dyn Fn() -> String + Send + Sync>,
    /// False until start-up is complete and after shutdown begins.
    pub ready: AtomicBool,
    /// The rule engine, for `/api/v1/rules` and `/api/v1/alerts` (no rule files: no groups).
    pub rules: Arc<crate::rules::RuleManager>,
    /// The scraper's targets, for `/api/v1/targets`.
    pub targets: Arc<crate::collect::scrape::status::TargetsStatus>,
    /// Silences, for `/api/v2/silences` (`silences.rs`).
    pub silences: Arc<crate::notify::silence::Silences>,
}

/// Builds the router with every endpoint.
pub fn router(state: Arc<ApiState>) -> Router {
    let limit = state.max_request_bytes;
    Router::new()
        .route(
            "/api/v1/query",
            get(prometheus::query).post(prometheus::query),
        )
        .route(
            "/api/v1/query_range",
            get(prometheus::query_range).post(prometheus::query_range),
        )
        .route(
            "/api/v1/series",
            get(prometheus::series).post(prometheus::series),
        )
        .route(
            "/api/v1/labels",
            get(prometheus::labels).post(prometheus::labels),
        )
        .route("/api/v1/label/{name}/values", get(prometheus::label_values))
        .route("/api/v1/metadata", get(prometheus::metadata))
        .route("/api/v1/status/buildinfo", get(prometheus::buildinfo))
        .route(
            "/api/v1/query_exemplars",
            get(prometheus::exemplars).post(prometheus::exemplars),
        )
        .route("/api/v1/write", post(remote_write::write))
        .route("/api/v1/import/prometheus", post(import::import_prometheus))
        .route("/write", post(import::influx_write))
        .route("/influx/write", post(import::influx_write))
        .route("/api/v2/write", post(import::influx_write_v2))
        .route("/influx/api/v2/write", post(import::influx_write_v2))
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(healthy))
        .route("/-/ready", get(ready))
        .route("/api/v1/rules", get(rules::rules))
        .route("/api/v1/alerts", get(rules::alerts))
        .route("/api/v1/targets", get(targets::targets))
        .route("/api/v1/targets/metadata", get(targets::metadata))
        .route(
            "/api/v2/silences",
            get(silences::list).post(silences::create),
        )
        .route(
            "/api/v2/silence/{id}",
            get(silences::get).delete(silences::expire),
        )
        .route("/api/v1/status/tsdb", get(status::tsdb))
        .route("/api/v1/admin/snapshot", post(status::snapshot))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Prometheus' success envelope, `{"status":"success","data":...}`, with the `warnings`
/// and `infos` arrays when they are not empty. `data` writes the data value straight into
/// the response body, so a large query result is not built in one buffer and copied into
/// another.
pub fn success(data: impl FnOnce(&mut String), warnings: &[String], infos: &[String]) -> Response {
    let mut body = String::with_capacity(256);
    body.push_str(r#"{"status":"success","data":"#);
    data(&mut body);
    push_envelope_end(&mut body, warnings, infos);
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Closes [`success`]'s envelope: the `warnings` and `infos` arrays when they are not
/// empty, then the brace.
pub fn push_envelope_end(body: &mut String, warnings: &[String], infos: &[String]) {
    for (key, list) in [("warnings", warnings), ("infos", infos)] {
        if !list.is_empty() {
            body.push_str(",\"");
            body.push_str(key);
            body.push_str("\":");
            json::push_str_array(body, list);
        }
    }
    body.push('}');
}

async fn metrics(
    axum::extract::State(s): axum::extract::State<Arc<ApiState>>,
) -> impl axum::response::IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        (s.self_metrics)(),
    )
}

async fn healthy() -> &'static str {
    "Picket is Healthy.\n"
}

async fn ready(
    axum::extract::State(s): axum::extract::State<Arc<ApiState>>,
) -> (StatusCode, &'static str) {
    if s.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "Picket is Ready.\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n")
    }
}
