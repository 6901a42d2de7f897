//! `GET /api/v1/targets` in Prometheus' shape (`web/api/v1/api.go`, `targets`): the
//! active scrape targets with their discovered and final labels and the health of their
//! last scrape, and the targets relabelling dropped. `state=active|dropped|any` and
//! `scrapePool=<job>` filter as in Prometheus.
//!
//! `GET /api/v1/targets/metadata`: the metadata (type, help, unit) each active target
//! exposes, filtered by `match_target` (a label selector over target labels), `metric`
//! and `limit`, as Prometheus' `targetMetadata`.

use super::ApiState;
use super::error::ApiError;
use super::json::{push_float, push_labels, push_str};
use super::params::Params;
use super::rules::push_time;
use crate::model::Matcher;
use crate::model::duration::format_duration_ms;
use crate::query::promql::{self, ast::Expr};
use axum::extract::{RawQuery, State};
use axum::response::Response;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

pub async fn targets(
    State(s): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::from_request(query.as_deref(), None);
    let state = params.get("state").unwrap_or("any").to_ascii_lowercase();
    let (show_active, show_dropped) = match state.as_str() {
        "" | "any" => (true, true),
        "active" => (true, false),
        "dropped" => (false, true),
        other => {
            return Err(ApiError::bad_data(format!(
                "invalid state {other:?}: use active, dropped or any"
            )));
        }
    };
    let pool = params.get("scrapePool").filter(|p| !p.is_empty());
    let (active, dropped) = s.targets.snapshot();
    let mut out = String::with_capacity(1024);
    out.push_str(r#"{"activeTargets":["#);
    let mut first = true;
    for t in active
        .iter()
        .filter(|t| show_active && pool.is_none_or(|p| p == t.pool))
    {
        if !first {
            out.push(',');
        }
        first = false;
        let h = t.state.health.lock().map(|h| h.clone()).unwrap_or_default();
        out.push_str(r#"{"discoveredLabels":"#);
        push_labels(&mut out, &t.discovered);
        out.push_str(r#","labels":"#);
        push_labels(&mut out, &t.target.labels);
        out.push_str(r#","scrapePool":"#);
        push_str(&mut out, &t.pool);
        out.push_str(r#","scrapeUrl":"#);
        push_str(&mut out, &t.target.url);
        out.push_str(r#","globalUrl":"#);
        push_str(&mut out, &t.target.url);
        out.push_str(r#","lastError":"#);
        push_str(&mut out, &h.last_error);
        out.push_str(r#","lastScrape":"#);
        push_time(&mut out, h.last_scrape_ms);
        out.push_str(r#","lastScrapeDuration":"#);
        push_float(&mut out, h.last_duration.as_secs_f64());
        let _ = write!(
            out,
            r#","health":"{}","scrapeInterval":"{}","scrapeTimeout":"{}"}}"#,
            h.health.as_str(),
            format_duration_ms(t.target.interval.as_millis() as u64),
            format_duration_ms(t.target.timeout.as_millis() as u64),
        );
    }
    out.push_str(r#"],"droppedTargets":["#);
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    let mut first = true;
    for t in &dropped {
        *counts.entry(t.pool.as_str()).or_default() += 1;
        if !show_dropped || pool.is_some_and(|p| p != t.pool) {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(r#"{"discoveredLabels":"#);
        push_labels(&mut out, &t.discovered);
        out.push_str(r#","scrapePool":"#);
        push_str(&mut out, &t.pool);
        out.push('}');
    }
    out.push_str(r#"],"droppedTargetCounts":{"#);
    for (i, (p, n)) in counts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(&mut out, p);
        let _ = write!(out, ":{n}");
    }
    out.push_str("}}");
    Ok(super::success(|b| b.push_str(&out), &[], &[]))
}

pub async fn metadata(
    State(s): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let params = Params::from_request(query.as_deref(), None);
    let matchers: Vec<Matcher> = match params.get("match_target").filter(|m| !m.is_empty()) {
        None => Vec::new(),
        Some(sel) => match promql::parse(sel).as_ref() {
            Ok(Expr::VectorSelector(vs)) => vs.matchers.clone(),
            Ok(_) => {
                return Err(ApiError::bad_data(format!(
                    "invalid parameter \"match_target\": {sel:?} is not a label selector"
                )));
            }
            Err(e) => {
                return Err(ApiError::bad_data(format!(
                    "invalid parameter \"match_target\": {}",
                    e.display_with_position(sel)
                )));
            }
        },
    };
    let metric = params.get("metric").filter(|m| !m.is_empty());
    let limit = match params.get("limit").filter(|l| !l.is_empty()) {
        None => usize::MAX,
        Some(l) => match l.parse::<i64>() {
            Ok(n) if n < 0 => usize::MAX,
            Ok(n) => n as usize,
            Err(_) => return Err(ApiError::bad_data("limit must be a number")),
        },
    };
    let (active, _) = s.targets.snapshot();
    let mut out = String::from("[");
    let mut n = 0usize;
    'targets: for t in &active {
        if !matchers.iter().all(|m| m.matches_labels(&t.target.labels)) {
            continue;
        }
        let md = t
            .state
            .metadata
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default();
        for (name, m) in md
            .iter()
            .filter(|(name, _)| metric.is_none_or(|w| w == name.as_str()))
        {
            if n >= limit {
                break 'targets;
            }
            if n > 0 {
                out.push(',');
            }
            n += 1;
            out.push_str(r#"{"target":"#);
            push_labels(&mut out, &t.target.labels);
            out.push_str(r#","metric":"#);
            push_str(&mut out, name);
            let _ = write!(out, r#","type":"{}","help":"#, m.kind.as_str());
            push_str(&mut out, &m.help);
            out.push_str(r#","unit":"#);
            push_str(&mut out, &m.unit);
            out.push('}');
        }
    }
    out.push(']');
    Ok(super::success(|b| b.push_str(&out), &[], &[]))
}
