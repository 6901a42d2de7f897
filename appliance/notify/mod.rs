//! Alert delivery: everything between the rule engine and the people or machines that
//! must hear about alerts.
//!
//! ```text
//!  rule groups ──alerts──► dispatcher thread ──► outbox (store `state` table) ──► senders
//!  (sendAlerts:           routes, groups,          one FIFO per receiver,          mqtt (rumqttc)
//!   firing, resolved,     silences, inhibition,    removed only when the           webhook (reqwest)
//!   resent each           notification log         receiver acknowledged           alertmanager
//!   resend_delay)                     └──── GPIO state (pin per severity) ───────► gpio (rppal / fake)
//! ```
//!
//! It owns the alert as sent (`alert`), Alertmanager's matcher syntax (`matcher`), the
//! dispatcher with routing, grouping, the notification log and inhibition (`dispatch`),
//! the persistent outbox (`outbox`), silences (`silence`), and one sender per receiver
//! kind (`mqtt`, `webhook`, `alertmanager`, `gpio`). The HTTP API for silences is in
//! `api/silences.rs`, the CLI in `cli/silence.rs`.

pub mod alert;
pub mod alertmanager;
pub mod dispatch;
pub mod gpio;
pub mod matcher;
pub mod mqtt;
pub mod outbox;
pub mod silence;
pub mod webhook;

pub use alert::Alert;

use crate::collect::Batch;
use crate::config::notify::{NotifyConfig, name_or};
use crate::model::{Labels, MetricType};
use crate::store::Store;
use dispatch::{Dispatcher, ReceiverInfo, ReceiverKind};
use outbox::Outbox;
use silence::Silences;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Delivery counters of one receiver.
#[derive(Default)]
pub struct ReceiverStats {
    pub sent: AtomicU64,
    pub failed: AtomicU64,
}

/// What the senders share.
pub struct SenderContext {
    pub name: String,
    pub outbox: Arc<Outbox>,
    pub stats: Arc<ReceiverStats>,
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// This node's name, for MQTT topics (`{node}`).
    pub node: String,
    pub external_url: String,
}

/// Resolves when Picket stops (the guard `wait_for` returns is not `Send`, so it is
/// dropped here, inside).
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

impl SenderContext {
    /// Waits until the outbox has something new or Picket stops; false on stop.
    pub async fn wait_for_work(&mut self) -> bool {
        let waker = self.outbox.waker(&self.name);
        tokio::select! {
            _ = waker.notified() => true,
            _ = stopped(&mut self.stop) => false,
        }
    }

    /// Sleeps `d` unless Picket stops first; false on stop.
    pub async fn pause(&mut self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => true,
            _ = stopped(&mut self.stop) => false,
        }
    }

    pub fn stopping(&self) -> bool {
        *self.stop.borrow()
    }

    /// Removes delivered entries (the store commit runs off the async threads).
    pub async fn ack(&self, seqs: Vec<u64>) {
        self.stats
            .sent
            .fetch_add(seqs.len() as u64, Ordering::Relaxed);
        let (outbox, name) = (self.outbox.clone(), self.name.clone());
        let _ = tokio::task::spawn_blocking(move || outbox.ack(&name, &seqs)).await;
    }
}

/// Retry delays: 1 s doubling to 1 min (Alertmanager's notifier backs off similarly).
pub struct Backoff(Duration);

impl Backoff {
    pub fn new() -> Backoff {
        Backoff(Duration::from_millis(500))
    }
    pub fn reset(&mut self) {
        self.0 = Duration::from_millis(500);
    }
    pub fn next_delay(&mut self) -> Duration {
        self.0 = (self.0 * 2).min(Duration::from_secs(60));
        self.0
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

enum Msg {
    Alerts(Vec<Alert>),
    Stop,
}

/// The running notifier: dispatcher thread, sender tasks, GPIO driver.
pub struct Notifier {
    tx: Mutex<mpsc::Sender<Msg>>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
    pub silences: Arc<Silences>,
    outbox: Arc<Outbox>,
    stats: Vec<(String, Arc<ReceiverStats>)>,
    stop: tokio::sync::watch::Sender<bool>,
    senders: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    gpio: Mutex<Option<gpio::GpioDriver>>,
    queued: Arc<AtomicU64>,
    alerts_received: AtomicU64,
}

impl Notifier {
    /// Opens the outbox and silences, starts the dispatcher thread and one sender per
    /// receiver on `runtime`. With no receivers the dispatcher still runs (silences and
    /// the API work), and alerts go nowhere.
    pub fn start(
        config: &NotifyConfig,
        store: Store,
        node: String,
        external_url: String,
        runtime: &tokio::runtime::Handle,
    ) -> anyhow::Result<Arc<Notifier>> {
        let mut receivers = Vec::new();
        for (i, r) in config.mqtt.iter().enumerate() {
            receivers.push(ReceiverInfo {
                name: name_or(&r.name, "mqtt", i),
                kind: ReceiverKind::Grouped {
                    send_resolved: r.send_resolved,
                    max_alerts: 0,
                },
            });
        }
        for (i, r) in config.webhook.iter().enumerate() {
            receivers.push(ReceiverInfo {
                name: name_or(&r.name, "webhook", i),
                kind: ReceiverKind::Grouped {
                    send_resolved: r.send_resolved,
                    max_alerts: r.max_alerts as usize,
                },
            });
        }
        for (i, r) in config.alertmanager.iter().enumerate() {
            receivers.push(ReceiverInfo {
                name: name_or(&r.name, "alertmanager", i),
                kind: ReceiverKind::Alertmanager,
            });
        }
        for (i, r) in config.gpio.iter().enumerate() {
            receivers.push(ReceiverInfo {
                name: name_or(&r.name, "gpio", i),
                kind: ReceiverKind::Gpio,
            });
        }
        let names: Vec<String> = receivers.iter().map(|r| r.name.clone()).collect();
        let outbox = Arc::new(Outbox::open(store.clone(), &names));
        let silences = Arc::new(Silences::open(store.clone()));
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let stats: Vec<(String, Arc<ReceiverStats>)> = names
            .iter()
            .map(|n| (n.clone(), Arc::new(ReceiverStats::default())))
            .collect();
        let ctx = |name: &str| SenderContext {
            name: name.to_string(),
            outbox: outbox.clone(),
            stats: stats
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, s)| s.clone())
                .unwrap_or_default(),
            stop: stop_rx.clone(),
            node: node.clone(),
            external_url: external_url.clone(),
        };
        let mut senders = Vec::new();
        for (i, c) in config.mqtt.iter().enumerate() {
            let sender = mqtt::MqttSender::new(c, ctx(&name_or(&c.name, "mqtt", i)))?;
            senders.push(runtime.spawn(sender.run()));
        }
        for (i, c) in config.webhook.iter().enumerate() {
            let sender = webhook::WebhookSender::new(c, ctx(&name_or(&c.name, "webhook", i)))?;
            senders.push(runtime.spawn(sender.run()));
        }
        for (i, c) in config.alertmanager.iter().enumerate() {
            let sender = alertmanager::AlertmanagerSender::new(
                c,
                ctx(&name_or(&c.name, "alertmanager", i)),
            )?;
            senders.push(runtime.spawn(sender.run()));
        }
        let gpio = if config.gpio.is_empty() {
            None
        } else {
            Some(gpio::GpioDriver::start(&config.gpio, gpio::system_chip())?)
        };

        let (tx, rx) = mpsc::channel::<Msg>();
        let mut dispatcher = Dispatcher::new(
            config,
            receivers,
            outbox.clone(),
            silences.clone(),
            &store,
            now_ms(),
        );
        let gpio_tx = gpio.as_ref().map(gpio::GpioDriver::sender);
        let queued = Arc::new(AtomicU64::new(0));
        let queued_counter = queued.clone();
        let handle = std::thread::Builder::new()
            .name("notify-dispatch".into())
            .spawn(move || {
                let mut gpio_shown: Vec<(String, BTreeSet<String>)> = Vec::new();
                loop {
                    let now = now_ms();
                    // Wake at the next group flush, and at least every second so that
                    // silences starting or ending and alerts timing out take effect.
                    let wait = dispatcher
                        .next_flush_ms()
                        .map_or(1000, |t| (t - now).clamp(0, 1000));
                    match rx.recv_timeout(Duration::from_millis(wait as u64)) {
                        Ok(Msg::Alerts(alerts)) => dispatcher.receive(alerts, now_ms()),
                        Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                    let now = now_ms();
                    dispatcher.flush_due(now);
                    queued_counter.store(dispatcher.notifications_queued, Ordering::Relaxed);
                    if let Some(g) = &gpio_tx {
                        let state = dispatcher.gpio_state(now);
                        if state != gpio_shown {
                            let _ = g.send(Some(state.clone()));
                            gpio_shown = state;
                        }
                    }
                }
            })?;
        tracing::info!(
            receivers = names.len(),
            routes = config.route.len(),
            inhibit_rules = config.inhibit_rules.len(),
            "Notifier started."
        );
        Ok(Arc::new(Notifier {
            tx: Mutex::new(tx),
            dispatcher: Mutex::new(Some(handle)),
            silences,
            outbox,
            stats,
            stop,
            senders: Mutex::new(senders),
            gpio: Mutex::new(gpio),
            queued,
            alerts_received: AtomicU64::new(0),
        }))
    }

    /// The sink the rule groups hand their alerts to.
    pub fn sink(self: &Arc<Self>) -> crate::rules::AlertSink {
        let me = self.clone();
        Arc::new(move |alerts: Vec<Alert>| {
            me.alerts_received
                .fetch_add(alerts.len() as u64, Ordering::Relaxed);
            let tx = me.tx.lock().unwrap_or_else(|e| e.into_inner());
            let _ = tx.send(Msg::Alerts(alerts));
        })
    }

    /// Stops the dispatcher, then the senders (what is queued stays in the outbox; MQTT
    /// publishes `offline` before it disconnects), within a few seconds.
    pub async fn stop(&self) {
        let _ = self
            .tx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(Msg::Stop);
        let handle = self
            .dispatcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        let _ = self.stop.send(true);
        let senders = std::mem::take(&mut *self.senders.lock().unwrap_or_else(|e| e.into_inner()));
        for s in senders {
            let abort = s.abort_handle();
            if tokio::time::timeout(Duration::from_secs(3), s)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        let gpio = self.gpio.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(g) = gpio {
            let _ = tokio::task::spawn_blocking(move || g.stop()).await;
        }
    }

    /// `picket_notifications_*`, `picket_silences` for /metrics and the store.
    pub fn collect(&self, out: &mut Batch) {
        let fam = out.family(
            "picket_notifications_sent_total",
            "Notifications (or Alertmanager batches) receivers acknowledged.",
            MetricType::Counter,
        );
        for (n, s) in &self.stats {
            fam.push(
                Labels::from_pairs([("receiver", n.as_str())]),
                s.sent.load(Ordering::Relaxed) as f64,
            );
        }
        let fam = out.family(
            "picket_notifications_failed_total",
            "Delivery attempts that failed (each is retried unless the receiver refused it with a 4xx).",
            MetricType::Counter,
        );
        for (n, s) in &self.stats {
            fam.push(
                Labels::from_pairs([("receiver", n.as_str())]),
                s.failed.load(Ordering::Relaxed) as f64,
            );
        }
        let fam = out.family(
            "picket_notifications_queue_length",
            "Notifications waiting in the outbox.",
            MetricType::Gauge,
        );
        for (n, len) in self.outbox.lengths() {
            fam.push(Labels::from_pairs([("receiver", n.as_str())]), len as f64);
        }
        out.scalar(
            "picket_notifications_dropped_total",
            "Notifications dropped because a receiver's outbox was full.",
            MetricType::Counter,
            self.outbox.dropped() as f64,
        );
        out.scalar(
            "picket_notifications_outbox_write_errors_total",
            "Outbox writes to the store that failed (those notifications were kept in memory only).",
            MetricType::Counter,
            self.outbox.write_errors() as f64,
        );
        out.scalar(
            "picket_notifications_queued_total",
            "Group notifications queued by the dispatcher.",
            MetricType::Counter,
            self.queued.load(Ordering::Relaxed) as f64,
        );
        out.scalar(
            "picket_notifications_alerts_received_total",
            "Alerts handed to the notifier by the rule engine (firing, resolved and resends).",
            MetricType::Counter,
            self.alerts_received.load(Ordering::Relaxed) as f64,
        );
        let fam = out.family("picket_silences", "Silences by state.", MetricType::Gauge);
        for (state, n) in self.silences.count_by_state(now_ms()) {
            fam.push(Labels::from_pairs([("state", state)]), n as f64);
        }
    }
}

/// Replaces `{node}`, `{status}`, `{fingerprint}` and `{LABEL}` in an MQTT topic (or any
/// short template); unknown labels become empty. MQTT's wildcard characters and `/` in
/// values are replaced by `_`, so a label value cannot change the topic's levels.
pub fn expand_topic(
    template: &str,
    node: &str,
    status: &str,
    labels: &BTreeMap<String, String>,
) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = &after[..close];
        let value = match name {
            "node" => node.to_string(),
            "status" => status.to_string(),
            "fingerprint" => alert::fingerprint_hex(alert::fingerprint(labels)),
            n => labels.get(n).cloned().unwrap_or_default(),
        };
        out.extend(value.chars().map(|c| {
            if matches!(c, '+' | '#' | '/' | '\0') {
                '_'
            } else {
                c
            }
        }));
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_expand_node_labels_and_status_safely() {
        let l: BTreeMap<String, String> = [
            ("alertname".to_string(), "Disk/Full".to_string()),
            ("severity".to_string(), "warning".to_string()),
        ]
        .into();
        assert_eq!(
            expand_topic(
                "picket/{node}/alerts/{alertname}/{status}{missing}",
                "pi1",
                "firing",
                &l
            ),
            "picket/pi1/alerts/Disk_Full/firing"
        );
        assert_eq!(expand_topic("a/{open", "n", "s", &l), "a/{open");
        assert_eq!(expand_topic("{fingerprint}", "n", "s", &l).len(), 16);
    }
}
