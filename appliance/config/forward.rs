//! `[forward]`: store-and-forward to remote_write receivers (VictoriaMetrics, Prometheus,
//! Mimir...). A destination is a `[[forward.remote_write]]` table whose keys follow
//! Prometheus' `remote_write` config (`url`, `name`, `remote_timeout`, `headers`,
//! `basic_auth`, `authorization`, `bearer_token(_file)`, `tls_config`, `queue_config`),
//! so a block from `prometheus.yml` can be pasted over. Picket additions are documented on
//! their fields.

use super::ConfigDuration;
use super::http_client::{Authorization, BasicAuth, HttpClientConfig, TlsConfig};
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardConfig {
    /// Labels added to every forwarded series that does not carry them (Prometheus'
    /// `global.external_labels`), e.g. `{ node = "pi-1", cluster = "lab" }`.
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// Samples younger than this are not sent yet, so that a scrape still running (its
    /// samples carry the scrape's start time) lands before the cursor passes its time.
    #[serde(default = "default_delay")]
    pub delay: ConfigDuration,
    #[serde(default)]
    pub remote_write: Vec<RemoteWriteConfig>,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            external_labels: BTreeMap::new(),
            delay: default_delay(),
            remote_write: Vec::new(),
        }
    }
}

fn default_delay() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(15))
}

/// One destination.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    pub url: ForwardUrl,
    /// Names the destination's cursor and its metrics' `url` label; default: the URL
    /// without credentials. Renaming a destination starts it over from the oldest data.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "default_remote_timeout")]
    pub remote_timeout: ConfigDuration,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Picket addition: labels for this destination only, over `[forward] external_labels`.
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub authorization: Option<Authorization>,
    #[serde(default)]
    pub bearer_token: Option<String>,
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    #[serde(default)]
    pub queue_config: QueueConfig,
}

fn default_remote_timeout() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(30))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// Most samples per request (a series is never split, so one with more samples in a
    /// window goes alone). Default 10000, vmagent's block size (Prometheus: 2000): every
    /// acknowledged request costs one durable cursor commit (~46 KB of SD card writes).
    #[serde(default = "default_max_samples")]
    pub max_samples_per_send: u64,
    /// How often live data is sent (one window of new samples per deadline).
    #[serde(default = "default_deadline")]
    pub batch_send_deadline: ConfigDuration,
    #[serde(default = "default_min_backoff")]
    pub min_backoff: ConfigDuration,
    #[serde(default = "default_max_backoff")]
    pub max_backoff: ConfigDuration,
    /// Retry on 429 Too Many Requests like a 5xx (Prometheus' default is to drop; a
    /// receiver asking for a pause should not cost data).
    #[serde(default = "yes")]
    pub retry_on_http_429: bool,
    /// Picket addition: the pace at which a backlog (what accumulated during an outage or
    /// while Picket was down) is sent, beside live data.
    #[serde(default = "default_backlog_rate")]
    pub max_backlog_samples_per_second: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            max_samples_per_send: default_max_samples(),
            batch_send_deadline: default_deadline(),
            min_backoff: default_min_backoff(),
            max_backoff: default_max_backoff(),
            retry_on_http_429: true,
            max_backlog_samples_per_second: default_backlog_rate(),
        }
    }
}

fn default_max_samples() -> u64 {
    10_000
}
fn default_deadline() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(15))
}
fn default_min_backoff() -> ConfigDuration {
    ConfigDuration(Duration::from_millis(30))
}
fn default_max_backoff() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(5))
}
fn default_backlog_rate() -> u64 {
    50_000
}
fn yes() -> bool {
    true
}

/// An `http://` or `https://` URL, checked when the config is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardUrl(pub String);

impl<'de> Deserialize<'de> for ForwardUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let u = reqwest::Url::parse(&s)
            .map_err(|e| serde::de::Error::custom(format!("invalid URL {s:?}: {e}")))?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
            return Err(serde::de::Error::custom(format!(
                "invalid URL {s:?}: needs http:// or https:// and a host"
            )));
        }
        Ok(ForwardUrl(s))
    }
}

impl RemoteWriteConfig {
    /// The destination's HTTP client keys.
    pub fn http_client(&self) -> HttpClientConfig {
        super::http_client::http_client_of!(self)
    }

    /// The destination's name: `name`, or the URL without user and password.
    pub fn display_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        match reqwest::Url::parse(&self.url.0) {
            Ok(mut u) => {
                let _ = u.set_username("");
                let _ = u.set_password(None);
                u.to_string()
            }
            Err(_) => self.url.0.clone(),
        }
    }
}

/// A cross-field problem of destination number `index`.
#[derive(Debug)]
pub struct ForwardProblem {
    pub index: usize,
    pub key: String,
    pub message: String,
}

/// Checks what serde cannot: unique names, one kind of credentials, sane limits.
pub fn validate(cfg: &ForwardConfig) -> Result<(), ForwardProblem> {
    let mut names = HashSet::new();
    for (index, d) in cfg.remote_write.iter().enumerate() {
        let problem = |key: &str, message: String| ForwardProblem {
            index,
            key: key.to_string(),
            message,
        };
        if !names.insert(d.display_name()) {
            return Err(problem(
                "url",
                format!(
                    "destination {:?} is configured twice; give one a different `name`",
                    d.display_name()
                ),
            ));
        }
        d.http_client()
            .validate()
            .map_err(|(key, message)| problem(key, message))?;
        let q = &d.queue_config;
        if q.max_samples_per_send == 0 || q.max_backlog_samples_per_second == 0 {
            return Err(problem(
                "queue_config",
                "max_samples_per_send and max_backlog_samples_per_second must be at least 1".into(),
            ));
        }
        if q.min_backoff.0 > q.max_backoff.0 {
            return Err(problem(
                "queue_config.min_backoff",
                "min_backoff must not be longer than max_backoff".into(),
            ));
        }
    }
    Ok(())
}

/// Line of the `index`-th `[[forward.remote_write]]` header in `text` (1 when not found).
pub fn locate(text: &str, index: usize) -> usize {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.trim().starts_with("[[forward.remote_write]]"))
        .nth(index)
        .map_or(1, |(i, _)| i + 1)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn a_prometheus_like_destination_parses_with_defaults() {
        let c = Config::parse(
            r#"
[forward]
external_labels = { node = "pi-1", cluster = "lab" }
[[forward.remote_write]]
url = "https://user:pw@vm.example:8428/api/v1/write"
headers = { "X-Scope-OrgID" = "lab" }
basic_auth = { username = "u", password = "p" }
queue_config = { max_samples_per_send = 500, batch_send_deadline = "5s" }
"#,
            "t.toml",
        )
        .unwrap();
        let d = &c.forward.remote_write[0];
        assert_eq!(d.display_name(), "https://vm.example:8428/api/v1/write");
        assert_eq!(d.queue_config.max_samples_per_send, 500);
        assert_eq!(d.queue_config.max_backoff.0.as_secs(), 5);
        assert_eq!(c.forward.external_labels["node"], "pi-1");
        assert_eq!(c.forward.delay.0.as_secs(), 15);
    }

    #[test]
    fn bad_destinations_name_the_key_and_line() {
        let e = Config::parse("[[forward.remote_write]]\nurl = \"ftp://x\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.toml:2") && e.contains("forward.remote_write.url"),
            "{e}"
        );
        let e = Config::parse(
            "[[forward.remote_write]]\nurl = \"http://a/w\"\n\n[[forward.remote_write]]\nurl = \"http://a/w\"\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("t.toml:4") && e.contains("twice"), "{e}");
        let e = Config::parse(
            "[[forward.remote_write]]\nurl = \"http://a/w\"\nbearer_token = \"x\"\nbasic_auth = { username = \"u\" }\n",
            "t.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("forward.remote_write[0].authorization"), "{e}");
    }
}
