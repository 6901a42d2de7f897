//! The typed configuration: serde structs that mirror the TOML file exactly, the embedded
//! default (`config/picket.toml`, so the shipped file and the built-in defaults can never
//! disagree), and loading with errors that name the key and line of the problem.
//!
//! Values are validated while they are deserialized (durations, addresses, positive
//! numbers), so that every error carries the span of the offending value.

pub mod forward;
pub mod http_client;
pub mod notify;
mod rules;

pub use rules::RulesConfig;
pub mod probe;
pub mod scrape;
mod storage;

use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
pub use storage::BudgetConfig;

/// The shipped default configuration, embedded in the binary.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/picket.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub storage: StorageConfig,
    pub api: ApiConfig,
    pub query: QueryConfig,
    pub collect: CollectConfig,
    #[serde(default)]
    pub rules: RulesConfig,
    /// `[[scrape]]` jobs (Prometheus `scrape_configs`); none by default.
    #[serde(default)]
    pub scrape: Vec<scrape::ScrapeConfig>,
    /// `[[probe]]` blackbox-style health probes; none by default.
    #[serde(default)]
    pub probe: Vec<probe::ProbeConfig>,
    /// Alert delivery: receivers, routes, inhibition (`notify.rs`).
    #[serde(default)]
    pub notify: notify::NotifyConfig,
    /// `[forward]`: remote_write destinations fed from the store.
    #[serde(default)]
    pub forward: forward::ForwardConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    pub path: PathBuf,
    pub flush_interval: ConfigDuration,
    pub budget: BudgetConfig,
    #[serde(default)]
    pub max_age: Option<ConfigDuration>,
    #[serde(default)]
    pub retention_horizon: Option<ConfigDuration>,
    pub shares: storage::SharesConfig,
    #[serde(default)]
    pub tier_max_age: storage::TierMaxAge,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    pub write_token_file: PathBuf,
    pub max_request_bytes: Positive,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryConfig {
    pub lookback_delta: ConfigDuration,
    pub timeout: ConfigDuration,
    pub max_samples: Positive,
    pub max_concurrent: Positive,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CollectConfig {
    pub host: HostCollectConfig,
    #[serde(rename = "self")]
    pub self_metrics: SelfCollectConfig,
    /// Limits shared by all `[[scrape]]` jobs.
    #[serde(default)]
    pub scrape: scrape::ScrapeGlobalConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostCollectConfig {
    pub enabled: bool,
    pub interval: ConfigDuration,
    pub proc_path: PathBuf,
    pub sys_path: PathBuf,
    pub rootfs_path: PathBuf,
    pub job: String,
    pub instance: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelfCollectConfig {
    pub enabled: bool,
    pub interval: ConfigDuration,
    pub job: String,
    pub instance: String,
}

/// A duration written as a Prometheus duration string; zero is rejected because every
/// duration in the config is an interval or a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfigDuration(pub Duration);

impl<'de> Deserialize<'de> for ConfigDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let dur = crate::model::duration::parse_duration(&s).map_err(serde::de::Error::custom)?;
        if dur.is_zero() {
            return Err(serde::de::Error::custom(
                "duration must be greater than zero",
            ));
        }
        Ok(ConfigDuration(dur))
    }
}

/// A count or size that must be at least 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Positive(pub u64);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = i64::deserialize(d)?;
        if v < 1 {
            return Err(serde::de::Error::custom(format!(
                "must be at least 1, got {v}"
            )));
        }
        Ok(Positive(v as u64))
    }
}

/// A configuration problem, located in the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {key}: {message}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        /// Dotted path of the key, e.g. `storage.flush_interval`; empty for syntax errors
        /// outside any key.
        key: String,
        message: String,
    },
}

impl Config {
    /// The embedded defaults.
    pub fn default_config() -> Config {
        // The embedded file is checked by a unit test, so this cannot fail in a release.
        Config::parse(DEFAULT_CONFIG, "<embedded default>")
            .expect("BUG: the embedded default config is invalid")
    }

    /// Reads and validates a config file. Keys left out keep the embedded defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses config text layered over the embedded defaults.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let locate = |err: toml::de::Error, src: &str| {
            let offset = err.span().map_or(0, |s| s.start);
            let (line, column) = line_col(src, offset);
            ConfigError::Invalid {
                file: file.to_string(),
                line,
                column,
                key: key_at(src, offset),
                message: err.message().trim().to_string(),
            }
        };
        let user: toml::Table = toml::from_str(text).map_err(|e| locate(e, text))?;
        let mut merged: toml::Table =
            toml::from_str(DEFAULT_CONFIG).map_err(|e| locate(e, DEFAULT_CONFIG))?;
        merge(&mut merged, user);
        // Deserializing the merged table loses spans, so on error deserialize the user's text
        // alone once more (with serde defaults off it would complain about missing keys,
        // hence the merged tree first) to find where the bad value was written.
        let merged_text = toml::to_string(&merged).map_err(|e| ConfigError::Invalid {
            file: file.to_string(),
            line: 1,
            column: 1,
            key: String::new(),
            message: e.to_string(),
        })?;
        let config = toml::from_str::<Config>(&merged_text).map_err(|e| {
            let key = key_at(&merged_text, e.span().map_or(0, |s| s.start));
            match find_key(text, &key) {
                Some(offset) => {
                    let (line, column) = line_col(text, offset);
                    ConfigError::Invalid {
                        file: file.to_string(),
                        line,
                        column,
                        key,
                        message: e.message().trim().to_string(),
                    }
                }
                None => locate(e, &merged_text),
            }
        })?;
        scrape::validate(&config.scrape).map_err(|p| ConfigError::Invalid {
            file: file.to_string(),
            line: scrape::locate(text, p.job, &p.key),
            column: 1,
            key: format!("scrape[{}].{}", p.job, p.key),
            message: p.message,
        })?;
        probe::validate(&config.probe).map_err(|(i, key, message)| ConfigError::Invalid {
            file: file.to_string(),
            line: scrape::locate_in(text, "[[probe]]", i, key),
            column: 1,
            key: format!("probe[{i}].{key}"),
            message,
        })?;
        config.notify.validate().map_err(|(key, message)| {
            let last = key.rsplit('.').next().unwrap_or(&key);
            let last = last.split('[').next().unwrap_or(last);
            let offset = text
                .find(&format!("{last} ="))
                .or_else(|| text.find("notify"))
                .unwrap_or(0);
            let (line, column) = line_col(text, offset);
            ConfigError::Invalid {
                file: file.to_string(),
                line,
                column,
                key,
                message,
            }
        })?;
        forward::validate(&config.forward).map_err(|p| ConfigError::Invalid {
            file: file.to_string(),
            line: forward::locate(text, p.index),
            column: 1,
            key: format!("forward.remote_write[{}].{}", p.index, p.key),
            message: p.message,
        })?;
        Ok(config)
    }
}

/// Overlays `user` on `base`, recursing into tables so `[collect.host] interval = ".."`
/// keeps the other `collect.host` defaults.
fn merge(base: &mut toml::Table, user: toml::Table) {
    for (k, v) in user {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(u)) => merge(b, u),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The dotted key written at (or before) `offset`: the last `[table]` header above it plus
/// the key on its line. Good enough for the flat `key = value` files Picket uses.
fn key_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let mut table = String::new();
    let mut key = String::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if pos > offset {
            break;
        }
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            table = trimmed
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string();
            key.clear();
        } else if let Some((k, _)) = trimmed.split_once('=')
            && !trimmed.starts_with('#')
        {
            key = k.trim().trim_matches('"').to_string();
        }
        pos += line.len();
    }
    match (table.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}

/// Byte offset of the value of dotted `key` in `text`, if it is written there.
fn find_key(text: &str, dotted: &str) -> Option<usize> {
    let (table, key) = dotted.rsplit_once('.').unwrap_or(("", dotted));
    let mut current = String::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            current = trimmed
                .trim_matches(|c| c == '[' || c == ']')
                .trim()
                .to_string();
        } else if let Some((k, _)) = trimmed.split_once('=') {
            let k = k.trim().trim_matches('"');
            let full = if current.is_empty() {
                k.to_string()
            } else {
                format!("{current}.{k}")
            };
            if current == table && k == key || full == dotted {
                let indent = line.len() - line.trim_start().len();
                return Some(pos + indent);
            }
        }
        pos += line.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(text: &str) -> (usize, String, String) {
        match Config::parse(text, "t.toml") {
            Err(ConfigError::Invalid {
                line, key, message, ..
            }) => (line, key, message),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn embedded_default_is_valid_and_matches_documented_values() {
        let c = Config::default_config();
        assert_eq!(c.storage.path, PathBuf::from("./picket-data"));
        assert_eq!(c.storage.flush_interval.0, Duration::from_secs(10));
        assert_eq!(c.api.listen.port(), 9464);
        assert!(c.collect.host.enabled);
        assert_eq!(c.collect.host.interval.0, Duration::from_secs(15));
        assert!(c.collect.self_metrics.enabled);
    }

    #[test]
    fn empty_file_gives_the_defaults() {
        let c = Config::parse("", "t.toml").unwrap();
        assert_eq!(c.query.lookback_delta.0, Duration::from_secs(300));
    }

    #[test]
    fn user_keys_override_defaults_and_keep_siblings() {
        let c = Config::parse("[collect.host]\ninterval = \"5s\"\n", "t.toml").unwrap();
        assert_eq!(c.collect.host.interval.0, Duration::from_secs(5));
        assert!(c.collect.host.enabled);
    }

    #[test]
    fn contract_keys_are_read() {
        let text = "[storage]\npath = \"/x\"\nflush_interval = \"1m\"\n[api]\nlisten = \"127.0.0.1:1\"\n\
                    [collect.host]\nenabled = false\ninterval = \"30s\"\n[collect.self]\nenabled = false\n";
        let c = Config::parse(text, "t.toml").unwrap();
        assert_eq!(c.storage.path, PathBuf::from("/x"));
        assert_eq!(c.storage.flush_interval.0, Duration::from_secs(60));
        assert_eq!(c.api.listen.to_string(), "127.0.0.1:1");
        assert!(!c.collect.host.enabled);
        assert_eq!(c.collect.host.interval.0, Duration::from_secs(30));
        assert!(!c.collect.self_metrics.enabled);
    }

    #[test]
    fn bad_duration_names_key_and_line() {
        let (line, key, msg) = invalid("[storage]\n\nflush_interval = \"10x\"\n");
        assert_eq!((line, key.as_str()), (3, "storage.flush_interval"));
        assert!(msg.contains("not a valid duration"), "{msg}");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let (line, key, msg) = invalid("[api]\nlisten = \"0.0.0.0:1\"\nlistn = \"x\"\n");
        assert_eq!(line, 3);
        assert_eq!(key, "api.listn");
        assert!(msg.contains("unknown field"), "{msg}");
    }

    #[test]
    fn wrong_type_names_key_and_line() {
        let (line, key, _) = invalid("[collect.host]\nenabled = \"yes\"\n");
        assert_eq!((line, key.as_str()), (2, "collect.host.enabled"));
    }

    #[test]
    fn bad_address_and_zero_values_are_rejected() {
        assert_eq!(invalid("[api]\nlisten = \"nowhere\"\n").1, "api.listen");
        assert_eq!(invalid("[query]\nmax_samples = 0\n").1, "query.max_samples");
        assert_eq!(invalid("[query]\ntimeout = \"0s\"\n").1, "query.timeout");
    }

    #[test]
    fn rules_section_defaults_to_no_files_and_reads_its_keys() {
        let c = Config::default_config();
        assert!(c.rules.rule_files.is_empty());
        assert_eq!(c.rules.evaluation_interval.0, Duration::from_secs(60));
        let c = Config::parse(
            "[rules]\nrule_files = [\"/etc/picket/rules/*.yml\"]\nevaluation_interval = \"15s\"\n\
             [rules.external_labels]\nnode = \"pi1\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.rules.rule_files, ["/etc/picket/rules/*.yml"]);
        assert_eq!(c.rules.evaluation_interval.0, Duration::from_secs(15));
        assert_eq!(c.rules.external_labels["node"], "pi1");
        assert_eq!(
            invalid("[rules]\nevaluation_interval = \"0s\"\n").1,
            "rules.evaluation_interval"
        );
    }

    #[test]
    fn scrape_jobs_are_read_with_prometheus_field_names() {
        let text = "[[scrape]]\njob_name = \"node\"\nscrape_interval = \"1s\"\n\
                    [[scrape.static_configs]]\ntargets = [\"127.0.0.1:9100\"]\nlabels = { role = \"pi\" }\n\
                    [[scrape.relabel_configs]]\nsource_labels = [\"__address__\"]\ntarget_label = \"host\"\n";
        let c = Config::parse(text, "t.toml").unwrap();
        assert_eq!(c.scrape.len(), 1);
        assert_eq!(c.scrape[0].job_name, "node");
        assert_eq!(c.scrape[0].interval(), Duration::from_secs(1));
        assert_eq!(c.scrape[0].timeout(), Duration::from_secs(1));
        assert_eq!(c.scrape[0].static_configs[0].labels["role"], "pi");
        assert_eq!(c.scrape[0].relabel_configs[0].target_label, "host");
        assert!(
            Config::default_config().scrape.is_empty(),
            "the default scrapes nothing"
        );
    }

    #[test]
    fn bad_scrape_configs_name_key_and_line() {
        let (line, key, msg) = invalid(
            "[[scrape]]\njob_name = \"a\"\n[[scrape.relabel_configs]]\nsource_labels = [\"x\"]\nregex = \"(\"\n",
        );
        assert_eq!(
            (line, key.as_str()),
            (5, "scrape.relabel_configs.regex"),
            "{msg}"
        );
        assert!(msg.contains("invalid regex"), "{msg}");
        let (line, key, msg) = invalid(
            "[[scrape]]\njob_name = \"a\"\n[[scrape.metric_relabel_configs]]\naction = \"bogus\"\n",
        );
        assert_eq!(
            (line, key.as_str()),
            (4, "scrape.metric_relabel_configs.action"),
            "{msg}"
        );
        let (line, key, msg) =
            invalid("[[scrape]]\njob_name = \"a\"\n\n[[scrape]]\njob_name = \"a\"\n");
        assert_eq!((line, key.as_str()), (5, "scrape[1].job_name"), "{msg}");
        assert!(msg.contains("multiple scrape configs"), "{msg}");
        let (line, key, _) = invalid(
            "[[scrape]]\njob_name = \"a\"\nscrape_interval = \"5s\"\nscrape_timeout = \"10s\"\n",
        );
        assert_eq!((line, key.as_str()), (4, "scrape[0].scrape_timeout"));
    }

    #[test]
    fn probes_and_kubernetes_discovery_are_read_and_checked() {
        let c = Config::parse(
            "[[scrape]]\njob_name = \"pods\"\nkubernetes_annotations = true\n\
             [[scrape.kubernetes_sd_configs]]\nrole = \"pod\"\nkubeconfig_file = \"/etc/rancher/k3s/k3s.yaml\"\n\
             this_node_only = true\nnamespaces = { names = [\"ai\"] }\n\
             [[probe]]\nname = \"web\"\nprober = \"http\"\ntargets = [\"https://example.org\"]\n\
             [probe.http]\nvalid_status_codes = [200]\n",
            "t.toml",
        )
        .unwrap();
        assert!(c.scrape[0].kubernetes_sd_configs[0].this_node_only);
        assert_eq!(c.probe[0].http.valid_status_codes, [200]);
        let (line, key, msg) =
            invalid("[[scrape]]\njob_name = \"a\"\nkubernetes_annotations = true\n");
        assert_eq!(
            (line, key.as_str()),
            (3, "scrape[0].kubernetes_annotations"),
            "{msg}"
        );
        let (line, key, msg) = invalid(
            "[[scrape]]\njob_name = \"a\"\n[[scrape.kubernetes_sd_configs]]\nrole = \"node\"\n",
        );
        assert_eq!(
            (line, key.as_str()),
            (4, "scrape.kubernetes_sd_configs.role"),
            "{msg}"
        );
        let (line, key, msg) = invalid(
            "[[scrape]]\njob_name = \"a\"\n[[scrape.kubernetes_sd_configs]]\nrole = \"pod\"\n\
             api_server = \"https://x\"\nkubeconfig_file = \"/k\"\n",
        );
        assert_eq!(
            (line, key.as_str()),
            (6, "scrape[0].kubernetes_sd_configs.kubeconfig_file"),
            "{msg}"
        );
        let (line, key, msg) = invalid(
            "[[probe]]\nname = \"a\"\nprober = \"http\"\ntargets = [\"x\"]\n\n\
             [[probe]]\nname = \"d\"\nprober = \"dns\"\ntargets = [\"x\"]\n",
        );
        assert_eq!((line, key.as_str()), (6, "probe[1].dns"), "{msg}");
        assert!(msg.contains("query_name"), "{msg}");
    }

    #[test]
    fn storage_limits_are_read_and_a_bad_budget_names_its_key() {
        assert_eq!(Config::default_config().storage.budget, BudgetConfig::Auto);
        let c = Config::parse(
            "[storage]\nbudget = \"2GiB\"\nmax_age = \"30d\"\nretention_horizon = \"7d\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.storage.budget, BudgetConfig::Bytes(2 << 30));
        assert_eq!(c.storage.max_age.map(|d| d.0.as_secs()), Some(30 * 86400));
        assert_eq!(
            c.storage.retention_horizon.map(|d| d.0.as_secs()),
            Some(7 * 86400)
        );
        let c = Config::parse("[storage]\nbudget = 1000000\n", "t.toml").unwrap();
        assert_eq!(c.storage.budget, BudgetConfig::Bytes(1_000_000));
        let (line, key, msg) = invalid("[storage]\n\nbudget = \"2 parsecs\"\n");
        assert_eq!((line, key.as_str()), (3, "storage.budget"));
        assert!(msg.contains("unit"), "{msg}");
    }

    #[test]
    fn notify_contract_keys_are_read_and_bad_ones_named() {
        let c = Config::parse(
            "[[notify.mqtt]]\nurl = \"mqtt://b:1883\"\ntopic = \"p/{node}/alerts/{alertname}\"\n\
             [[notify.webhook]]\nurl = \"http://h/x\"\n[[notify.alertmanager]]\nurl = \"http://am:9093\"\n\
             [[notify.route]]\nmatchers = ['severity=\"critical\"']\nreceivers = [\"webhook-0\"]\ncontinue = true\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.notify.mqtt[0].url, "mqtt://b:1883");
        assert_eq!(c.notify.mqtt[0].topic, "p/{node}/alerts/{alertname}");
        assert_eq!(c.notify.webhook[0].url, "http://h/x");
        assert_eq!(c.notify.alertmanager[0].url, "http://am:9093");
        assert!(c.notify.route[0].continue_matching);
        assert_eq!(
            c.notify.receiver_names(),
            ["mqtt-0", "webhook-0", "alertmanager-0"]
        );
        let d = Config::default_config().notify;
        assert!(d.mqtt.is_empty() && d.route.is_empty());
        assert_eq!(d.group_wait.0, Duration::from_secs(30));
        assert_eq!(d.resend_delay.0, Duration::from_secs(60));

        let (line, key, msg) = invalid("[[notify.route]]\nreceivers = [\"nope\"]\n");
        assert_eq!(
            (line, key.as_str()),
            (2, "notify.route[0].receivers"),
            "{msg}"
        );
        let (line, key, msg) = invalid("[[notify.mqtt]]\n\nurl = \"http://b\"\n");
        assert_eq!((line, key.as_str()), (3, "notify.mqtt[0].url"), "{msg}");
        let (_, key, msg) =
            invalid("[[notify.webhook]]\nurl = \"http://x\"\nbody_template = \"{{ if }}\"\n");
        assert_eq!(key, "notify.webhook[0].body_template", "{msg}");
        let (_, key, msg) = invalid("[[notify.inhibit_rules]]\nsource_matchers = [\"a=~(\"]\n");
        assert!(
            key.contains("source_matchers") && msg.contains("regular expression"),
            "{key} {msg}"
        );
    }

    #[test]
    fn syntax_error_has_a_line() {
        let (line, _, _) = invalid("[storage]\npath = \n");
        assert_eq!(line, 2);
    }
}
