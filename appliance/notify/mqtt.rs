//! The MQTT sender (rumqttc): one message per alert of each group notification, QoS 1,
//! retained by default, on the topic made from the `topic` template (see
//! [`super::expand_topic`]). A notification is acknowledged when the broker has
//! PUBACKed every one of its messages; until then it stays in the outbox and is
//! published again after a reconnect.
//!
//! Retained per-alert state: each message is retained, so a subscriber that connects
//! later gets the current state of every alert topic at once; a resolved alert's
//! `resolved` message replaces its `firing` one (it is not cleared, so a dashboard can
//! show "resolved at"). The node's status topic holds `online` (published retained on
//! every connect) or `offline` (the last will the broker publishes when the connection
//! drops without a goodbye, and what Picket publishes itself when it stops).
//!
//! Each connection is a fresh session (clean session, new event loop): messages are
//! re-published from the outbox, never replayed by the client library, so a broker that
//! was down receives each notification once.

use super::alert::{fingerprint_hex, rfc3339};
use super::outbox::Payload;
use super::{Backoff, SenderContext, expand_topic};
use crate::config::notify::MqttConfig;
use rumqttc::{
    AsyncClient, Event, LastWill, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration, Transport,
};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::mpsc;

/// (TLS, host, port) of `mqtt://host[:port]` / `mqtts://host[:port]`.
pub fn parse_url(url: &str) -> Result<(bool, String, u16), String> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("mqtt://") {
        (false, r)
    } else if let Some(r) = url.strip_prefix("mqtts://") {
        (true, r)
    } else {
        return Err(format!("{url:?} is not an mqtt:// or mqtts:// URL"));
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.contains('/') || rest.contains('@') {
        return Err(format!(
            "{url:?}: expected mqtt://host:port (credentials go in username/password)"
        ));
    }
    let default_port = if tls { 8883 } else { 1883 };
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => (
            h.trim_start_matches('[').trim_end_matches(']').to_string(),
            p.parse::<u16>()
                .map_err(|_| format!("{url:?}: bad port {p:?}"))?,
        ),
        _ => (rest.to_string(), default_port),
    };
    Ok((tls, host, port))
}

pub struct MqttSender {
    ctx: SenderContext,
    host: String,
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    topic: String,
    status_topic: String,
    client_id: String,
    credentials: Option<(String, String)>,
    retain: bool,
}

fn tls_config(ca_file: &std::path::Path) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    if ca_file.as_os_str().is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    } else {
        for cert in CertificateDer::pem_file_iter(ca_file)
            .map_err(|e| anyhow::anyhow!("cannot read ca_file {}: {e}", ca_file.display()))?
        {
            let cert = cert.map_err(|e| anyhow::anyhow!("ca_file {}: {e}", ca_file.display()))?;
            roots.add(cert)?;
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(cfg))
}

impl MqttSender {
    pub fn new(c: &MqttConfig, ctx: SenderContext) -> anyhow::Result<MqttSender> {
        let (tls, host, port) =
            parse_url(&c.url).map_err(|e| anyhow::anyhow!("notify.mqtt {}: {e}", ctx.name))?;
        let password = c
            .password()
            .map_err(|e| anyhow::anyhow!("notify.mqtt {}: {e}", ctx.name))?;
        let no_labels = Default::default();
        Ok(MqttSender {
            host,
            port,
            tls: if tls {
                Some(tls_config(&c.ca_file)?)
            } else {
                None
            },
            topic: c.topic.clone(),
            status_topic: expand_topic(&c.status_topic, &ctx.node, "", &no_labels),
            client_id: if c.client_id.is_empty() {
                format!("picket-{}", ctx.node)
            } else {
                c.client_id.clone()
            },
            credentials: (!c.username.is_empty()).then(|| (c.username.clone(), password)),
            retain: c.retain,
            ctx,
        })
    }

    fn options(&self) -> MqttOptions {
        let mut o = MqttOptions::new(&self.client_id, &self.host, self.port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_clean_session(true);
        o.set_last_will(LastWill::new(
            &self.status_topic,
            "offline",
            QoS::AtLeastOnce,
            true,
        ));
        if let Some((u, p)) = &self.credentials {
            o.set_credentials(u, p);
        }
        if let Some(cfg) = &self.tls {
            o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                cfg.clone(),
            )));
        }
        o
    }

    pub async fn run(mut self) {
        let mut backoff = Backoff::new();
        let mut was_connected = true;
        loop {
            if self.ctx.stopping() {
                return;
            }
            let (client, mut eventloop) = AsyncClient::new(self.options(), 64);
            // The event loop runs on its own task and reports through a channel, so that
            // waiting for work or for a PUBACK never cancels a half-done network read.
            let (tx, mut events) = mpsc::unbounded_channel::<Result<Event, String>>();
            let pump = tokio::spawn(async move {
                loop {
                    let ev = eventloop.poll().await.map_err(|e| e.to_string());
                    let failed = ev.is_err();
                    if tx.send(ev).is_err() || failed {
                        return;
                    }
                }
            });
            let outcome = self.session(&client, &mut events).await;
            pump.abort();
            match outcome {
                Session::Stopped => return,
                Session::Lost(e, connected) => {
                    if connected || was_connected {
                        tracing::warn!(receiver = %self.ctx.name, broker = %format!("{}:{}", self.host, self.port), error = %e, "MQTT connection lost or refused; retrying.");
                    }
                    was_connected = connected;
                    if connected {
                        backoff.reset();
                    }
                    self.ctx.stats.failed.fetch_add(1, Ordering::Relaxed);
                    if !self.ctx.pause(backoff.next_delay()).await {
                        return;
                    }
                }
            }
        }
    }

    async fn session(
        &mut self,
        client: &AsyncClient,
        events: &mut mpsc::UnboundedReceiver<Result<Event, String>>,
    ) -> Session {
        // Connect.
        let connected = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(ev) = events.recv().await {
                match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                    Ok(_) => {}
                    Err(e) => return Err(e),
                }
            }
            Err("event loop ended".to_string())
        })
        .await;
        match connected {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Session::Lost(e, false),
            Err(_) => return Session::Lost("connect timed out".into(), false),
        }
        let status_topic = self.status_topic.clone();
        if let Err(e) = publish(client, events, &status_topic, b"online".to_vec(), true).await {
            return Session::Lost(e, true);
        }
        tracing::info!(receiver = %self.ctx.name, broker = %format!("{}:{}", self.host, self.port), "MQTT connected.");
        loop {
            if let Some(entry) = self
                .ctx
                .outbox
                .pending(&self.ctx.name, 1)
                .into_iter()
                .next()
            {
                if let Payload::Group(n) = &entry.payload {
                    for (a, resolved) in &n.alerts {
                        let status = if *resolved { "resolved" } else { "firing" };
                        let topic = expand_topic(&self.topic, &self.ctx.node, status, &a.labels);
                        let body = json!({
                            "status": status,
                            "node": self.ctx.node,
                            "alertname": a.label("alertname"),
                            "labels": a.labels,
                            "annotations": a.annotations,
                            "startsAt": rfc3339(a.starts_at),
                            "endsAt": rfc3339(a.ends_at),
                            "generatorURL": a.generator_url,
                            "fingerprint": fingerprint_hex(a.fingerprint()),
                            "groupKey": n.group_key,
                        });
                        if let Err(e) = publish(
                            client,
                            events,
                            &topic,
                            body.to_string().into_bytes(),
                            self.retain,
                        )
                        .await
                        {
                            return Session::Lost(e, true);
                        }
                    }
                }
                self.ctx.ack(vec![entry.seq]).await;
                continue;
            }
            let waker = self.ctx.outbox.waker(&self.ctx.name);
            tokio::select! {
                _ = waker.notified() => {}
                ev = events.recv() => match ev {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Session::Lost(e, true),
                    None => return Session::Lost("event loop ended".into(), true),
                },
                _ = super::stopped(&mut self.ctx.stop) => {
                    // Say goodbye: `offline` retained, then a clean disconnect (after which
                    // the broker does not publish the will).
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        publish(client, events, &status_topic, b"offline".to_vec(), true),
                    )
                    .await;
                    let _ = client.disconnect().await;
                    let _ = tokio::time::timeout(Duration::from_millis(500), async {
                        while let Some(Ok(ev)) = events.recv().await {
                            if matches!(ev, Event::Outgoing(Outgoing::Disconnect)) {
                                break;
                            }
                        }
                    })
                    .await;
                    return Session::Stopped;
                }
            }
        }
    }
}

enum Session {
    Stopped,
    /// Why, and whether the connection had been up.
    Lost(String, bool),
}

/// Publishes with QoS 1 and waits for the broker's PUBACK.
async fn publish(
    client: &AsyncClient,
    events: &mut mpsc::UnboundedReceiver<Result<Event, String>>,
    topic: &str,
    payload: Vec<u8>,
    retain: bool,
) -> Result<(), String> {
    client
        .publish(topic, QoS::AtLeastOnce, retain, payload)
        .await
        .map_err(|e| e.to_string())?;
    let mut pkid = None;
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(ev) = events.recv().await {
            match ev {
                Ok(Event::Outgoing(Outgoing::Publish(id))) if pkid.is_none() => pkid = Some(id),
                Ok(Event::Incoming(Packet::PubAck(ack))) if Some(ack.pkid) == pkid => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Err("event loop ended".to_string())
    })
    .await
    .map_err(|_| "no PUBACK within 10 s".to_string())?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse_with_default_ports() {
        assert_eq!(
            parse_url("mqtt://broker").unwrap(),
            (false, "broker".into(), 1883)
        );
        assert_eq!(
            parse_url("mqtts://b.lan:8884").unwrap(),
            (true, "b.lan".into(), 8884)
        );
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1").unwrap(),
            (false, "127.0.0.1".into(), 1)
        );
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("mqtt://u:p@x").is_err());
        assert!(parse_url("mqtt://x:port").is_err());
    }
}
