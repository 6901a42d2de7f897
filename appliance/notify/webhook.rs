//! The webhook sender: POSTs each group notification as Alertmanager's webhook payload
//! (version 4) — or, with `body_template`, as the user's text rendered from the same
//! data with Go template syntax (`{{ .CommonAnnotations.summary }}`,
//! `{{ range .Alerts }}...{{ end }}`), for Slack, ntfy, Discord and the like.
//!
//! Headers, basic auth or a bearer token are added to every request. A notification is
//! acknowledged by any 2xx answer; 5xx, 408, 429 and transport errors are retried with
//! backoff (forever: the outbox keeps it); other 4xx mean the receiver will never take
//! it, so it is dropped with an error in the log, as Alertmanager does.

use super::alert::{fingerprint_hex, rfc3339};
use super::outbox::{GroupNotification, Payload};
use super::{Backoff, SenderContext};
use crate::config::notify::{WebhookConfig, bearer_token};
use crate::rules::template::Template;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

pub struct WebhookSender {
    ctx: SenderContext,
    url: String,
    client: reqwest::Client,
    headers: Vec<(String, String)>,
    basic: Option<(String, String)>,
    bearer: String,
    template: Option<Template>,
    content_type: String,
}

impl WebhookSender {
    pub fn new(c: &WebhookConfig, ctx: SenderContext) -> anyhow::Result<WebhookSender> {
        let template =
            if c.body_template.is_empty() {
                None
            } else {
                Some(Template::parse(&c.body_template).map_err(|e| {
                    anyhow::anyhow!("notify.webhook {}: body_template: {e}", ctx.name)
                })?)
            };
        let basic = match &c.basic_auth {
            Some(b) => Some((
                b.username.clone(),
                b.password()
                    .map_err(|e| anyhow::anyhow!("notify.webhook {}: {e}", ctx.name))?,
            )),
            None => None,
        };
        Ok(WebhookSender {
            url: c.url.clone(),
            client: reqwest::Client::builder().timeout(c.timeout.0).build()?,
            headers: c
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            basic,
            bearer: bearer_token(&c.bearer_token, &c.bearer_token_file)
                .map_err(|e| anyhow::anyhow!("notify.webhook {}: {e}", ctx.name))?,
            template,
            content_type: c.content_type.clone(),
            ctx,
        })
    }

    /// Gives up on a notification the receiver will never take (counted as failed).
    async fn drop_entry(&self, seq: u64) {
        self.ctx.stats.failed.fetch_add(1, Ordering::Relaxed);
        let (o, n) = (self.ctx.outbox.clone(), self.ctx.name.clone());
        let _ = tokio::task::spawn_blocking(move || o.ack(&n, &[seq])).await;
    }

    pub async fn run(mut self) {
        let mut backoff = Backoff::new();
        loop {
            let Some(entry) = self
                .ctx
                .outbox
                .pending(&self.ctx.name, 1)
                .into_iter()
                .next()
            else {
                if !self.ctx.wait_for_work().await {
                    return;
                }
                continue;
            };
            let Payload::Group(n) = &entry.payload else {
                tracing::error!(receiver = %self.ctx.name, "BUG: a webhook got an Alertmanager batch; dropped.");
                self.ctx.ack(vec![entry.seq]).await;
                continue;
            };
            let data = payload(n, &self.ctx.name, &self.ctx.external_url);
            let body = match &self.template {
                None => data.to_string(),
                Some(t) => match t.expand_json(&data) {
                    Ok(b) => b,
                    Err(e) => {
                        tracing::error!(receiver = %self.ctx.name, error = %e, "The webhook body template failed; the notification is dropped.");
                        self.drop_entry(entry.seq).await;
                        continue;
                    }
                },
            };
            let mut req = self
                .client
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, &self.content_type)
                .header(
                    reqwest::header::USER_AGENT,
                    concat!("Picket/", env!("CARGO_PKG_VERSION")),
                )
                .body(body);
            for (k, v) in &self.headers {
                req = req.header(k, v);
            }
            if let Some((u, p)) = &self.basic {
                req = req.basic_auth(u, Some(p));
            } else if !self.bearer.is_empty() {
                req = req.bearer_auth(&self.bearer);
            }
            let result = req.send().await;
            match result {
                Ok(r) if r.status().is_success() => {
                    backoff.reset();
                    self.ctx.ack(vec![entry.seq]).await;
                    continue;
                }
                Ok(r)
                    if r.status().is_client_error()
                        && r.status() != reqwest::StatusCode::REQUEST_TIMEOUT
                        && r.status() != reqwest::StatusCode::TOO_MANY_REQUESTS =>
                {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    tracing::error!(receiver = %self.ctx.name, %status, body = %text.chars().take(200).collect::<String>(), "The webhook refused a notification; it is dropped.");
                    self.drop_entry(entry.seq).await;
                    continue;
                }
                Ok(r) => {
                    tracing::warn!(receiver = %self.ctx.name, status = %r.status(), "Webhook delivery failed; retrying.");
                }
                Err(e) => {
                    tracing::warn!(receiver = %self.ctx.name, error = %e, "Webhook delivery failed; retrying.");
                }
            }
            self.ctx.stats.failed.fetch_add(1, Ordering::Relaxed);
            if !self.ctx.pause(backoff.next_delay()).await {
                return;
            }
        }
    }
}

fn map(m: &BTreeMap<String, String>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect(),
    )
}

/// The pairs every map of `maps` has with the same value (Alertmanager's
/// `commonLabels`/`commonAnnotations`).
fn common<'a>(
    mut maps: impl Iterator<Item = &'a BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let Some(first) = maps.next() else {
        return BTreeMap::new();
    };
    let mut out = first.clone();
    for m in maps {
        out.retain(|k, v| m.get(k) == Some(v));
    }
    out
}

/// Alertmanager's webhook message, version 4 (`notify/webhook/webhook.go`), the data
/// body templates see as `.`.
pub fn payload(n: &GroupNotification, receiver: &str, external_url: &str) -> Value {
    let alerts: Vec<Value> = n
        .alerts
        .iter()
        .map(|(a, resolved)| {
            json!({
                "status": if *resolved { "resolved" } else { "firing" },
                "labels": map(&a.labels),
                "annotations": map(&a.annotations),
                "startsAt": rfc3339(a.starts_at),
                "endsAt": rfc3339(a.ends_at),
                "generatorURL": a.generator_url,
                "fingerprint": fingerprint_hex(a.fingerprint()),
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": n.truncated,
        "status": n.status(),
        "receiver": receiver,
        "groupLabels": map(&n.group_labels),
        "commonLabels": map(&common(n.alerts.iter().map(|(a, _)| &a.labels))),
        "commonAnnotations": map(&common(n.alerts.iter().map(|(a, _)| &a.annotations))),
        "externalURL": external_url,
        "alerts": alerts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::Alert;

    fn alert(name: &str, inst: &str) -> Alert {
        Alert {
            labels: [
                ("alertname".to_string(), name.to_string()),
                ("instance".to_string(), inst.to_string()),
            ]
            .into(),
            annotations: [("summary".to_string(), "hot".to_string())].into(),
            starts_at: 1_767_225_600_000,
            ends_at: 1_767_225_660_000,
            generator_url: "http://pi/graph".into(),
        }
    }

    #[test]
    fn the_payload_has_alertmanagers_v4_fields() {
        let n = GroupNotification {
            group_key: "{}:{alertname=\"Hot\"}".into(),
            group_labels: [("alertname".to_string(), "Hot".to_string())].into(),
            alerts: vec![(alert("Hot", "a"), false), (alert("Hot", "b"), true)],
            truncated: 0,
            at_ms: 0,
        };
        let v = payload(&n, "hook", "http://pi:9464");
        assert_eq!(v["version"], "4");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["receiver"], "hook");
        assert_eq!(v["commonLabels"], json!({"alertname": "Hot"}));
        assert_eq!(v["commonAnnotations"], json!({"summary": "hot"}));
        assert_eq!(v["alerts"][1]["status"], "resolved");
        assert_eq!(v["alerts"][0]["startsAt"], "2026-01-01T00:00:00Z");
        assert_eq!(v["alerts"][0]["fingerprint"].as_str().unwrap().len(), 16);
        let t = Template::parse(
            r#"{"text":"{{ .Status }}: {{ range .Alerts }}{{ .Labels.instance }} {{ end }}{{ .CommonAnnotations.summary }}"}"#,
        )
        .unwrap();
        assert_eq!(t.expand_json(&v).unwrap(), r#"{"text":"firing: a b hot"}"#);
    }
}
