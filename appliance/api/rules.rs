//! `/api/v1/rules` and `/api/v1/alerts` in Prometheus' shapes (`web/api/v1/api.go`:
//! `RuleDiscovery`, `RuleGroup`, `AlertingRule`, `RecordingRule`, `Alert`), which Grafana
//! decodes into Go structs: times are RFC 3339 (Go's zero time for "never", never an empty
//! string), durations are seconds as numbers, alert values are strings in Go's
//! `FormatFloat(v, 'e', -1, 64)` form. Unknown parameters (Grafana's `group[]`, `rule[]`)
//! are ignored.

use super::ApiState;
use super::error::ApiError;
use super::json::{push_float, push_go_exponent, push_str};
use super::params::{Params, format_rfc3339_ms};
use crate::rules::alerting::{Alert, AlertState};
use crate::rules::group::RuleView;
use axum::extract::{RawQuery, State};
use axum::response::Response;
use std::fmt::Write;
use std::sync::Arc;

/// Go's `time.Time` JSON form (RFC 3339 with the fraction trimmed); 0 is Go's zero time,
/// which Prometheus sends for a rule never evaluated.
pub(super) fn push_time(out: &mut String, t_ms: i64) {
    out.push('"');
    if t_ms == 0 {
        out.push_str("0001-01-01T00:00:00Z");
    } else {
        let s = format_rfc3339_ms(t_ms);
        // "....SS.mmmZ": trim trailing zeros of the fraction, and the dot if none remain.
        let (body, _) = s.split_at(s.len() - 1);
        let body = body.trim_end_matches('0').trim_end_matches('.');
        out.push_str(body);
        out.push('Z');
    }
    out.push('"');
}

fn push_seconds(out: &mut String, s: f64) {
    if s.is_finite() {
        let _ = write!(out, "{s}");
    } else {
        out.push('0');
    }
}

fn push_map(out: &mut String, pairs: &[(String, String)]) {
    out.push('{');
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_str(out, k);
        out.push(':');
        push_str(out, v);
    }
    out.push('}');
}

/// Go's `strconv.FormatFloat(v, 'e', -1, 64)`, as Prometheus formats alert values.
fn push_alert_value(out: &mut String, v: f64) {
    out.push('"');
    if v.is_finite() {
        push_go_exponent(out, v);
    } else {
        push_float(out, v);
    }
    out.push('"');
}

fn push_alert(out: &mut String, a: &Alert) {
    out.push_str(r#"{"labels":"#);
    push_map(out, &a.labels);
    out.push_str(r#","annotations":"#);
    push_map(out, &a.annotations);
    out.push_str(r#","state":"#);
    push_str(out, a.state.as_str());
    out.push_str(r#","activeAt":"#);
    push_time(out, a.active_at);
    if a.keep_firing_since != 0 {
        out.push_str(r#","keepFiringSince":"#);
        push_time(out, a.keep_firing_since);
    }
    out.push_str(r#","value":"#);
    push_alert_value(out, a.value);
    out.push('}');
}

/// Alerts Prometheus calls active: pending or firing (resolved ones are kept internally
/// for notifiers but not listed).
fn active(alerts: &[Alert]) -> impl Iterator<Item = &Alert> {
    alerts.iter().filter(|a| a.state != AlertState::Inactive)
}

fn push_rule(out: &mut String, r: &RuleView, with_alerts: bool) {
    match &r.alerting {
        Some(a) => {
            out.push_str(r#"{"state":"#);
            push_str(out, a.state.as_str());
            out.push_str(r#","name":"#);
            push_str(out, &r.name);
            out.push_str(r#","query":"#);
            push_str(out, &r.query);
            out.push_str(r#","duration":"#);
            push_seconds(out, a.duration_ms as f64 / 1000.0);
            out.push_str(r#","keepFiringFor":"#);
            push_seconds(out, a.keep_firing_for_ms as f64 / 1000.0);
            out.push_str(r#","labels":"#);
            push_map(out, &r.labels);
            out.push_str(r#","annotations":"#);
            push_map(out, &a.annotations);
            if with_alerts {
                out.push_str(r#","alerts":["#);
                for (i, al) in active(&a.alerts).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    push_alert(out, al);
                }
                out.push(']');
            }
        }
        None => {
            out.push_str(r#"{"name":"#);
            push_str(out, &r.name);
            out.push_str(r#","query":"#);
            push_str(out, &r.query);
            // `omitempty` on RecordingRule.Labels in Prometheus.
            if !r.labels.is_empty() {
                out.push_str(r#","labels":"#);
                push_map(out, &r.labels);
            }
        }
    }
    out.push_str(r#","health":"#);
    push_str(out, r.status.health.as_str());
    if !r.status.last_error.is_empty() {
        out.push_str(r#","lastError":"#);
        push_str(out, &r.status.last_error);
    }
    out.push_str(r#","evaluationTime":"#);
    push_seconds(out, r.status.evaluation_seconds);
    out.push_str(r#","lastEvaluation":"#);
    push_time(out, r.status.last_evaluation_ms);
    out.push_str(r#","type":"#);
    push_str(
        out,
        if r.alerting.is_some() {
            "alerting"
        } else {
            "recording"
        },
    );
    out.push('}');
}

fn success(data: String) -> Response {
    super::success(|b| b.push_str(&data), &[], &[])
}

/// `GET /api/v1/rules`: `type=alert|record`, `rule_name[]`, `rule_group[]`, `file[]`,
/// `exclude_alerts`.
pub async fn rules(
    State(s): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let p = Params::from_request(query.as_deref(), None);
    let (want_alerting, want_recording) = match p.get("type") {
        None => (true, true),
        Some("alert") => (true, false),
        Some("record") => (false, true),
        Some(other) => {
            return Err(ApiError::bad_data(format!(
                "invalid parameter \"type\": not supported value {other:?}"
            )));
        }
    };
    let with_alerts = match p.get("exclude_alerts") {
        None | Some("false") => true,
        Some("true") => false,
        Some(other) => {
            return Err(ApiError::bad_data(format!(
                "invalid parameter \"exclude_alerts\": parsing {other:?}: invalid syntax"
            )));
        }
    };
    let names = p.all("rule_name[]");
    let groups_wanted = p.all("rule_group[]");
    let files = p.all("file[]");
    let rule_filter = !names.is_empty() || p.get("type").is_some();
    // Paging as in Prometheus 3.x: `group_limit` groups per page, `groupNextToken` names
    // the first group of the next page; an unknown token is an error.
    let group_limit = match p.get("group_limit") {
        None => None,
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                return Err(ApiError::bad_data(
                    "group_limit needs to be greater than 0".to_string(),
                ));
            }
        },
    };
    let next_token = p.get("group_next_token");
    let groups = s.rules.groups();
    let all: Vec<&Arc<crate::rules::Group>> = groups.iter().collect();
    let start = match next_token {
        None => 0,
        Some(t) => all
            .iter()
            .position(|g| group_token(g) == t)
            .ok_or_else(|| ApiError::bad_data("invalid group_next_token".to_string()))?,
    };
    let mut out = String::from(r#"{"groups":["#);
    let mut first = true;
    let mut listed = 0usize;
    let mut next_page = None;
    for g in &all[start..] {
        if group_limit.is_some_and(|n| listed >= n) {
            next_page = Some(group_token(g));
            break;
        }
        if (!groups_wanted.is_empty() && !groups_wanted.contains(&g.name.as_str()))
            || (!files.is_empty() && !files.contains(&g.file.as_str()))
        {
            continue;
        }
        let views: Vec<RuleView> = g
            .view()
            .into_iter()
            .filter(|r| {
                (if r.alerting.is_some() {
                    want_alerting
                } else {
                    want_recording
                }) && (names.is_empty() || names.contains(&r.name.as_str()))
            })
            .collect();
        // Like Prometheus, a group left without rules by a rule filter is not listed.
        if rule_filter && views.is_empty() {
            continue;
        }
        if !first {
            out.push(',');
        }
        first = false;
        listed += 1;
        out.push_str(r#"{"name":"#);
        push_str(&mut out, &g.name);
        out.push_str(r#","file":"#);
        push_str(&mut out, &g.file);
        out.push_str(r#","rules":["#);
        for (i, r) in views.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_rule(&mut out, r, with_alerts);
        }
        let (last, took) = g.last_evaluation();
        out.push_str(r#"],"interval":"#);
        push_seconds(&mut out, g.interval_ms as f64 / 1000.0);
        let _ = write!(out, r#","limit":{}"#, g.limit);
        out.push_str(r#","evaluationTime":"#);
        push_seconds(&mut out, took);
        out.push_str(r#","lastEvaluation":"#);
        push_time(&mut out, last);
        out.push('}');
    }
    out.push(']');
    if let Some(t) = next_page {
        out.push_str(r#","groupNextToken":"#);
        push_str(&mut out, &t);
    }
    out.push('}');
    Ok(success(out))
}

/// A stable token for a group (Prometheus uses a SHA-1 of file and name; any stable,
/// opaque string will do for clients).
fn group_token(g: &crate::rules::Group) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in g.file.bytes().chain([0]).chain(g.name.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// `GET /api/v1/alerts`: every pending and firing alert.
pub async fn alerts(State(s): State<Arc<ApiState>>) -> Response {
    let mut out = String::from(r#"{"alerts":["#);
    let mut first = true;
    for g in s.rules.groups() {
        for r in g.view() {
            let Some(a) = &r.alerting else { continue };
            for al in active(&a.alerts) {
                if !first {
                    out.push(',');
                }
                first = false;
                push_alert(&mut out, al);
            }
        }
    }
    out.push_str("]}");
    success(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_go_rfc3339_and_never_empty() {
        for (ms, want) in [
            (0, "\"0001-01-01T00:00:00Z\""),
            (1_435_781_451_000, "\"2015-07-01T20:10:51Z\""),
            (1_435_781_451_780, "\"2015-07-01T20:10:51.78Z\""),
            (1_435_781_451_781, "\"2015-07-01T20:10:51.781Z\""),
        ] {
            let mut s = String::new();
            push_time(&mut s, ms);
            assert_eq!(s, want);
        }
    }

    #[test]
    fn alert_values_use_go_exponent_notation() {
        for (v, want) in [
            (1.0, "\"1e+00\""),
            (0.5, "\"5e-01\""),
            (1234.5, "\"1.2345e+03\""),
            (0.0, "\"0e+00\""),
            (f64::NAN, "\"NaN\""),
            (f64::INFINITY, "\"+Inf\""),
        ] {
            let mut s = String::new();
            push_alert_value(&mut s, v);
            assert_eq!(s, want, "{v}");
        }
    }
}
