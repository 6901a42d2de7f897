//! `POST /api/v1/write`: Prometheus remote_write 1.0 (snappy block format + protobuf), so
//! Prometheus, Grafana Alloy and vmagent can push into Picket. Status codes follow
//! Prometheus' receiver (`storage/remote/write_handler.go`): 204 on success, 400 for a body
//! that cannot be decoded or holds invalid series (not retried by senders), 415 for
//! remote_write 2.0 (so 2.0 senders fall back to 1.0), 500 when the store fails (retried).

use super::ApiState;
use crate::ingest::IngestError;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Decompressed bodies may be this many times the configured request limit (remote_write
/// bodies compress about 4-8x; this bounds memory without refusing real senders).
const MAX_DECOMPRESSION_FACTOR: usize = 4;

pub async fn write(State(s): State<Arc<ApiState>>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(token) = &s.write_token
        && !bearer_matches(&headers, token)
    {
        return (StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n").into_response();
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type.contains("io.prometheus.write.v2.Request") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "remote_write 2.0 is not supported; send remote_write 1.0 (prometheus.WriteRequest)\n",
        )
            .into_response();
    }
    let encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("snappy");
    if !encoding.eq_ignore_ascii_case("snappy") {
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, format!("unsupported Content-Encoding {encoding:?}; remote_write bodies are snappy-compressed\n")).into_response();
    }
    let ingest = s.ingest.clone();
    let max_decoded = s.max_request_bytes * MAX_DECOMPRESSION_FACTOR;
    // Decompressing and storing take CPU, and the store's append may wait for its lock:
    // keep both off the reactor.
    let stored = tokio::task::spawn_blocking(move || {
        let raw = decompress(&body, max_decoded).map_err(IngestError::Invalid)?;
        ingest.remote_write(&raw)
    });
    match stored.await {
        Ok(Ok(_)) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(IngestError::Invalid(msg))) => {
            (StatusCode::BAD_REQUEST, format!("{msg}\n")).into_response()
        }
        Ok(Err(IngestError::Store(e))) => {
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("write task failed: {e}\n"),
        )
            .into_response(),
    }
}

/// Snappy block decompression, bounded, with messages a sender's operator can act on.
pub fn decompress(body: &[u8], max_decoded: usize) -> Result<Vec<u8>, String> {
    let len = snap::raw::decompress_len(body)
        .map_err(|e| format!("invalid body (expected snappy block format): {e}"))?;
    if len > max_decoded {
        return Err(format!(
            "decompressed body of {len} bytes exceeds the limit of {max_decoded} bytes"
        ));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("invalid body (expected snappy block format): {e}"))
}

/// Compares the `Authorization: Bearer` token without an early exit on the first differing
/// byte, so the token cannot be guessed byte by byte from response times.
pub(super) fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_decompress_within_the_limit_or_are_refused_with_a_reason() {
        let body = snap::raw::Encoder::new().compress_vec(b"abc").unwrap();
        assert_eq!(decompress(&body, 1 << 20).unwrap(), b"abc");
        assert!(
            decompress(b"not snappy at all", 1 << 20)
                .unwrap_err()
                .contains("snappy")
        );
        let big = snap::raw::Encoder::new()
            .compress_vec(&vec![0u8; 4096])
            .unwrap();
        assert!(decompress(&big, 1024).unwrap_err().contains("exceeds"));
    }

    #[test]
    fn bearer_token_must_match_exactly() {
        let mut h = HeaderMap::new();
        assert!(!bearer_matches(&h, "s3cret"));
        h.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(bearer_matches(&h, "s3cret"));
        assert!(!bearer_matches(&h, "s3cre"));
    }
}
