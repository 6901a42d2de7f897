//! `[notify]`: where alerts go. Receivers (`[[notify.mqtt]]`, `[[notify.webhook]]`,
//! `[[notify.alertmanager]]`, `[[notify.gpio]]`), routes that pick receivers by label
//! matchers (`[[notify.route]]`; none configured: every alert goes to every receiver),
//! Alertmanager's grouping timers, and `[[notify.inhibit_rules]]`.
//!
//! Matchers are written as Alertmanager writes them (`severity="critical"`,
//! `instance=~"pi-.*"`); they are parsed here so a bad one is reported with its key.

use super::ConfigDuration;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// How often a still-firing alert is sent again (Prometheus'
    /// `--rules.alert.resend-delay`); also sets `endsAt` of firing alerts.
    #[serde(default = "default_resend_delay")]
    pub resend_delay: ConfigDuration,
    /// Default grouping of every route (Alertmanager's root route).
    #[serde(default = "default_group_by")]
    pub group_by: Vec<String>,
    #[serde(default = "default_group_wait")]
    pub group_wait: ZeroDuration,
    #[serde(default = "default_group_interval")]
    pub group_interval: ConfigDuration,
    #[serde(default = "default_repeat_interval")]
    pub repeat_interval: ConfigDuration,
    #[serde(default)]
    pub route: Vec<RouteConfig>,
    #[serde(default)]
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    #[serde(default)]
    pub mqtt: Vec<MqttConfig>,
    #[serde(default)]
    pub webhook: Vec<WebhookConfig>,
    #[serde(default)]
    pub alertmanager: Vec<AlertmanagerConfig>,
    #[serde(default)]
    pub gpio: Vec<GpioConfig>,
}

fn default_resend_delay() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(60))
}
fn default_group_by() -> Vec<String> {
    vec!["alertname".into()]
}
fn default_group_wait() -> ZeroDuration {
    ZeroDuration(Duration::from_secs(30))
}
fn default_group_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(300))
}
fn default_repeat_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(4 * 3600))
}
fn yes() -> bool {
    true
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            resend_delay: default_resend_delay(),
            group_by: default_group_by(),
            group_wait: default_group_wait(),
            group_interval: default_group_interval(),
            repeat_interval: default_repeat_interval(),
            route: Vec::new(),
            inhibit_rules: Vec::new(),
            mqtt: Vec::new(),
            webhook: Vec::new(),
            alertmanager: Vec::new(),
            gpio: Vec::new(),
        }
    }
}

impl NotifyConfig {
    /// Every receiver's name, in the order they are configured (mqtt, webhook,
    /// alertmanager, gpio).
    pub fn receiver_names(&self) -> Vec<String> {
        let mut out = Vec::new();
        out.extend(
            self.mqtt
                .iter()
                .enumerate()
                .map(|(i, r)| name_or(&r.name, "mqtt", i)),
        );
        out.extend(
            self.webhook
                .iter()
                .enumerate()
                .map(|(i, r)| name_or(&r.name, "webhook", i)),
        );
        out.extend(
            self.alertmanager
                .iter()
                .enumerate()
                .map(|(i, r)| name_or(&r.name, "alertmanager", i)),
        );
        out.extend(
            self.gpio
                .iter()
                .enumerate()
                .map(|(i, r)| name_or(&r.name, "gpio", i)),
        );
        out
    }

    /// Checks what serde cannot: receiver names unique, routes naming receivers that
    /// exist. Returns (key, message).
    pub fn validate(&self) -> Result<(), (String, String)> {
        let names = self.receiver_names();
        let mut seen = std::collections::HashSet::new();
        for n in &names {
            if !seen.insert(n) {
                return Err((
                    "notify.name".into(),
                    format!("two receivers are named {n:?}"),
                ));
            }
        }
        for (i, r) in self.route.iter().enumerate() {
            for name in &r.receivers {
                if !names.contains(name) {
                    return Err((
                        format!("notify.route[{i}].receivers"),
                        format!(
                            "no receiver is named {name:?} (receivers: {})",
                            names.join(", ")
                        ),
                    ));
                }
            }
        }
        for (i, m) in self.mqtt.iter().enumerate() {
            if let Err(e) = crate::notify::mqtt::parse_url(&m.url) {
                return Err((format!("notify.mqtt[{i}].url"), e));
            }
        }
        for (i, w) in self.webhook.iter().enumerate() {
            if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
                return Err((
                    format!("notify.webhook[{i}].url"),
                    format!("{:?} is not an http(s) URL", w.url),
                ));
            }
            if !w.body_template.is_empty()
                && let Err(e) = crate::rules::template::Template::parse(&w.body_template)
            {
                return Err((format!("notify.webhook[{i}].body_template"), e.to_string()));
            }
        }
        for (i, a) in self.alertmanager.iter().enumerate() {
            if !(a.url.starts_with("http://") || a.url.starts_with("https://")) {
                return Err((
                    format!("notify.alertmanager[{i}].url"),
                    format!("{:?} is not an http(s) URL", a.url),
                ));
            }
        }
        Ok(())
    }
}

/// The name a receiver has: its `name`, or `KIND-INDEX` (`mqtt-0`).
pub fn name_or(name: &str, kind: &str, index: usize) -> String {
    if name.is_empty() {
        format!("{kind}-{index}")
    } else {
        name.to_string()
    }
}

/// A duration that may be zero (`group_wait = "0s"` sends at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZeroDuration(pub Duration);

impl<'de> Deserialize<'de> for ZeroDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        crate::model::duration::parse_duration(&s)
            .map(ZeroDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// Alertmanager label matchers (`name="value"`, `!=`, `=~`, `!~`), parsed.
#[derive(Debug, Clone, Default)]
pub struct Matchers(pub Vec<crate::model::Matcher>);

impl<'de> Deserialize<'de> for Matchers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let list = Vec::<String>::deserialize(d)?;
        list.iter()
            .map(|s| crate::notify::matcher::parse_matcher(s))
            .collect::<Result<Vec<_>, _>>()
            .map(Matchers)
            .map_err(serde::de::Error::custom)
    }
}

/// `[[notify.route]]`: alerts matching all `matchers` go to `receivers`, grouped by this
/// route's settings (the `[notify]` ones where left out). Routes are tried in order; the
/// first that matches takes the alert unless it sets `continue = true`. An alert that no
/// route takes goes to every receiver.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(default)]
    pub matchers: Matchers,
    pub receivers: Vec<String>,
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    #[serde(default)]
    pub group_wait: Option<ZeroDuration>,
    #[serde(default)]
    pub group_interval: Option<ConfigDuration>,
    #[serde(default)]
    pub repeat_interval: Option<ConfigDuration>,
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
}

/// `[[notify.inhibit_rules]]` (Alertmanager's): while an alert matching
/// `source_matchers` fires, alerts matching `target_matchers` with the same values of the
/// `equal` labels are not sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    #[serde(default)]
    pub source_matchers: Matchers,
    #[serde(default)]
    pub target_matchers: Matchers,
    #[serde(default)]
    pub equal: Vec<String>,
}

/// Basic auth of an HTTP receiver; the password inline or in a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub password_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    #[serde(default)]
    pub name: String,
    /// `mqtt://host:port` (1883 when left out) or `mqtts://host:port` (TLS, 8883).
    pub url: String,
    /// Topic of each alert's message; `{node}`, `{status}`, `{fingerprint}` and
    /// `{LABEL}` for any alert label are replaced.
    #[serde(default = "default_topic")]
    pub topic: String,
    /// Retained `online`/`offline` (last will) of this node.
    #[serde(default = "default_status_topic")]
    pub status_topic: String,
    #[serde(default)]
    pub client_id: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default)]
    pub password_file: PathBuf,
    /// PEM CA certificates for `mqtts://` (Mozilla's roots when empty).
    #[serde(default)]
    pub ca_file: PathBuf,
    #[serde(default = "yes")]
    pub retain: bool,
    #[serde(default = "yes")]
    pub send_resolved: bool,
}

fn default_topic() -> String {
    "picket/{node}/alerts/{alertname}".into()
}
fn default_status_topic() -> String {
    "picket/{node}/status".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    #[serde(default)]
    pub name: String,
    pub url: String,
    /// Body template (Go template syntax over Alertmanager's webhook data); empty: the
    /// Alertmanager webhook JSON, version 4.
    #[serde(default)]
    pub body_template: String,
    #[serde(default = "default_content_type")]
    pub content_type: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub bearer_token: String,
    #[serde(default)]
    pub bearer_token_file: PathBuf,
    /// Most alerts per message (0 = all); the rest are counted in `truncatedAlerts`.
    #[serde(default)]
    pub max_alerts: u64,
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
    #[serde(default = "yes")]
    pub send_resolved: bool,
}

fn default_content_type() -> String {
    "application/json".into()
}
fn default_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(10))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerConfig {
    #[serde(default)]
    pub name: String,
    /// Base URL; alerts are POSTed to `{url}/api/v2/alerts`.
    pub url: String,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub bearer_token: String,
    #[serde(default)]
    pub bearer_token_file: PathBuf,
    #[serde(default = "default_timeout")]
    pub timeout: ConfigDuration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioConfig {
    #[serde(default)]
    pub name: String,
    pub pins: Vec<GpioPinConfig>,
    /// Half-period of the `blink` pattern.
    #[serde(default = "default_blink")]
    pub blink_interval: ConfigDuration,
}

fn default_blink() -> ConfigDuration {
    ConfigDuration(Duration::from_millis(500))
}

/// One output pin (BCM numbering), driven while an alert of `severity` fires.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioPinConfig {
    pub pin: u8,
    pub severity: String,
    #[serde(default)]
    pub pattern: GpioPattern,
    /// Drive the pin low (not high) when active.
    #[serde(default)]
    pub active_low: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GpioPattern {
    #[default]
    Steady,
    Blink,
}

fn read_secret(inline: &str, file: &std::path::Path, what: &str) -> Result<String, String> {
    if file.as_os_str().is_empty() {
        return Ok(inline.to_string());
    }
    std::fs::read_to_string(file)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("cannot read {what} {}: {e}", file.display()))
}

impl BasicAuth {
    pub fn password(&self) -> Result<String, String> {
        read_secret(&self.password, &self.password_file, "password_file")
    }
}

/// The bearer token of an HTTP receiver, inline or from its file; empty: none.
pub fn bearer_token(inline: &str, file: &std::path::Path) -> Result<String, String> {
    read_secret(inline, file, "bearer_token_file")
}

impl MqttConfig {
    pub fn password(&self) -> Result<String, String> {
        read_secret(&self.password, &self.password_file, "password_file")
    }
}
