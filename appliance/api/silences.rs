//! Silences over HTTP, in Alertmanager's API v2 shapes so Alertmanager clients work:
//! `GET /api/v2/silences` (list), `POST /api/v2/silences` (create, or update with `id`;
//! answers `{"silenceID": ...}`), `GET /api/v2/silence/{id}`, `DELETE /api/v2/silence/{id}`
//! (expire). Bodies are Alertmanager's; errors are Prometheus' error envelope like every
//! other Picket endpoint. The silences themselves live in `notify::silence`.

use super::ApiState;
use super::error::{ApiError, ErrorType};
use crate::notify::alert::{parse_rfc3339, rfc3339};
use crate::notify::now_ms;
use crate::notify::silence::{Silence, SilenceMatcher};
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

fn gettable(s: &Silence, now: i64) -> Value {
    json!({
        "id": s.id,
        "status": {"state": s.state(now)},
        "updatedAt": rfc3339(s.updated_at),
        "matchers": s.matchers,
        "startsAt": rfc3339(s.starts_at),
        "endsAt": rfc3339(s.ends_at),
        "createdBy": s.created_by,
        "comment": s.comment,
    })
}

pub async fn list(State(st): State<Arc<ApiState>>) -> Response {
    let now = now_ms();
    let all: Vec<Value> = st
        .silences
        .list(now)
        .iter()
        .map(|s| gettable(s, now))
        .collect();
    Json(all).into_response()
}

pub async fn get(State(st): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    match st.silences.get(&id) {
        Some(s) => Json(gettable(&s, now_ms())).into_response(),
        None => {
            ApiError::new(ErrorType::NotFound, format!("silence {id} not found")).into_response()
        }
    }
}

pub async fn expire(State(st): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    let silences = st.silences.clone();
    let result = tokio::task::spawn_blocking(move || silences.expire(&id, now_ms())).await;
    match result {
        Ok(Ok(())) => Json(json!({})).into_response(),
        Ok(Err(e)) if e.contains("not found") => {
            ApiError::new(ErrorType::NotFound, e).into_response()
        }
        Ok(Err(e)) => ApiError::bad_data(e).into_response(),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostableSilence {
    #[serde(default)]
    id: String,
    matchers: Vec<SilenceMatcher>,
    starts_at: String,
    ends_at: String,
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    comment: String,
}

pub async fn create(State(st): State<Arc<ApiState>>, body: axum::body::Bytes) -> Response {
    let p: PostableSilence = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return ApiError::bad_data(format!("invalid silence: {e}")).into_response(),
    };
    let (Some(starts_at), Some(ends_at)) = (parse_rfc3339(&p.starts_at), parse_rfc3339(&p.ends_at))
    else {
        return ApiError::bad_data("startsAt and endsAt must be RFC 3339 times").into_response();
    };
    let silence = Silence {
        id: p.id,
        matchers: p.matchers,
        starts_at,
        ends_at,
        updated_at: 0,
        created_by: p.created_by,
        comment: p.comment,
    };
    let silences = st.silences.clone();
    match tokio::task::spawn_blocking(move || silences.upsert(silence, now_ms())).await {
        Ok(Ok(id)) => Json(json!({"silenceID": id})).into_response(),
        Ok(Err(e)) if e.contains("not found") => {
            ApiError::new(ErrorType::NotFound, e).into_response()
        }
        Ok(Err(e)) => ApiError::bad_data(e).into_response(),
        Err(e) => ApiError::internal(e.to_string()).into_response(),
    }
}
