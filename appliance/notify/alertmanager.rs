//! The Alertmanager sender: POSTs alerts to `{url}/api/v2/alerts` as Prometheus'
//! notifier does (`labels`, `annotations`, `startsAt`, `endsAt`, `generatorURL`). Every
//! batch queued since the last success is merged (the newest state of each alert wins)
//! into one request; a 2xx acknowledges them all. Firing alerts carry
//! `endsAt` = ValidUntil, so Alertmanager resolves them itself if Picket goes quiet.

use super::alert::{Alert, rfc3339};
use super::outbox::Payload;
use super::{Backoff, SenderContext};
use crate::config::notify::{AlertmanagerConfig, bearer_token};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

pub struct AlertmanagerSender {
    ctx: SenderContext,
    url: String,
    client: reqwest::Client,
    basic: Option<(String, String)>,
    bearer: String,
}

impl AlertmanagerSender {
    pub fn new(c: &AlertmanagerConfig, ctx: SenderContext) -> anyhow::Result<AlertmanagerSender> {
        let basic = match &c.basic_auth {
            Some(b) => Some((
                b.username.clone(),
                b.password()
                    .map_err(|e| anyhow::anyhow!("notify.alertmanager {}: {e}", ctx.name))?,
            )),
            None => None,
        };
        Ok(AlertmanagerSender {
            url: format!("{}/api/v2/alerts", c.url.trim_end_matches('/')),
            client: reqwest::Client::builder().timeout(c.timeout.0).build()?,
            basic,
            bearer: bearer_token(&c.bearer_token, &c.bearer_token_file)
                .map_err(|e| anyhow::anyhow!("notify.alertmanager {}: {e}", ctx.name))?,
            ctx,
        })
    }

    pub async fn run(mut self) {
        let mut backoff = Backoff::new();
        loop {
            let entries = self
                .ctx
                .outbox
                .pending(&self.ctx.name, super::outbox::MAX_QUEUED);
            if entries.is_empty() {
                if !self.ctx.wait_for_work().await {
                    return;
                }
                continue;
            }
            let mut latest: BTreeMap<u64, &Alert> = BTreeMap::new();
            for e in &entries {
                if let Payload::Alerts(list) = &e.payload {
                    for a in list {
                        latest.insert(a.fingerprint(), a);
                    }
                }
            }
            let body: Vec<Value> = latest.values().map(|a| api_alert(a)).collect();
            let mut req = self.client.post(&self.url).json(&body);
            if let Some((u, p)) = &self.basic {
                req = req.basic_auth(u, Some(p));
            } else if !self.bearer.is_empty() {
                req = req.bearer_auth(&self.bearer);
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => {
                    backoff.reset();
                    self.ctx.ack(entries.iter().map(|e| e.seq).collect()).await;
                    continue;
                }
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    tracing::warn!(receiver = %self.ctx.name, %status, body = %text.chars().take(200).collect::<String>(), "Alertmanager did not take the alerts; retrying.");
                }
                Err(e) => {
                    tracing::warn!(receiver = %self.ctx.name, error = %e, "Cannot reach Alertmanager; retrying.")
                }
            }
            self.ctx.stats.failed.fetch_add(1, Ordering::Relaxed);
            if !self.ctx.pause(backoff.next_delay()).await {
                return;
            }
        }
    }
}

/// One alert of Alertmanager's `postableAlerts`.
pub fn api_alert(a: &Alert) -> Value {
    json!({
        "labels": a.labels,
        "annotations": a.annotations,
        "startsAt": rfc3339(a.starts_at),
        "endsAt": rfc3339(a.ends_at),
        "generatorURL": a.generator_url,
    })
}
