//! `[[scrape]]` jobs: the typed form of Prometheus' `scrape_config`, written in TOML with
//! Prometheus' field names so that a job can be pasted over from `prometheus.yml` (YAML
//! maps become TOML tables, lists become arrays).
//!
//! Defaults follow Prometheus (`config/config.go`, `DefaultScrapeConfig`) except
//! `scrape_interval`, which defaults to 15 s to match Picket's host collector (Prometheus'
//! global default is 1 m). `scrape_timeout` defaults to 10 s, capped at the interval.
//!
//! Field-level problems (a bad regex, an unknown action) fail while deserializing, so they
//! carry the key and line like every other config error; cross-field rules (duplicate job
//! names, timeout longer than the interval, an action without its required fields) are
//! checked by [`validate`] right after, and located in the user's file by
//! [`locate`].

use super::ConfigDuration;
pub use super::http_client::{Authorization, BasicAuth, HttpClientConfig, TlsConfig};
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

/// Default `scrape_interval`: Picket's host collector interval, not Prometheus' 1 m.
pub const DEFAULT_SCRAPE_INTERVAL: Duration = Duration::from_secs(15);
/// Default `scrape_timeout` (Prometheus: 10 s), capped at the interval.
pub const DEFAULT_SCRAPE_TIMEOUT: Duration = Duration::from_secs(10);

/// `[collect.scrape]`: what applies to all scrape jobs together.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeGlobalConfig {
    /// Most series all scrape targets together may hold; a scrape that would add series
    /// beyond it fails (up = 0). 0 = no limit.
    #[serde(default = "default_series_limit")]
    pub series_limit: u64,
}

impl Default for ScrapeGlobalConfig {
    fn default() -> Self {
        ScrapeGlobalConfig {
            series_limit: default_series_limit(),
        }
    }
}

fn default_series_limit() -> u64 {
    500_000
}

/// One scrape job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeConfig {
    pub job_name: String,
    #[serde(default)]
    pub scrape_interval: Option<ConfigDuration>,
    #[serde(default)]
    pub scrape_timeout: Option<ConfigDuration>,
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    #[serde(default)]
    pub scheme: Scheme,
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub honor_labels: bool,
    #[serde(default = "yes")]
    pub honor_timestamps: bool,
    /// Prometheus `enable_compression`: ask for gzip (default true).
    #[serde(default = "yes")]
    pub enable_compression: bool,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    /// Prometheus `kubernetes_sd_configs` (role `pod` only).
    #[serde(default)]
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    /// Picket: turn Kubernetes pods into targets by their annotations
    /// (`prometheus.io/scrape`, `/port`, `/path`, `/scheme` and the `k8s.grafana.com/`
    /// equivalents) and attach `namespace`, `pod`, `container` and `node` labels, without
    /// writing relabel rules. False: the targets are Prometheus' role=pod targets.
    #[serde(default)]
    pub kubernetes_annotations: bool,
    #[serde(default)]
    pub relabel_configs: Vec<RelabelConfig>,
    #[serde(default)]
    pub metric_relabel_configs: Vec<RelabelConfig>,
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
    /// Most samples one scrape may keep after metric relabelling; 0 = no limit.
    #[serde(default)]
    pub sample_limit: u64,
    /// Most labels one sample may carry after metric relabelling; 0 = no limit.
    #[serde(default)]
    pub label_limit: u64,
    #[serde(default)]
    pub label_name_length_limit: u64,
    #[serde(default)]
    pub label_value_length_limit: u64,
    /// Most bytes of an uncompressed body; 0 = no limit. A byte count or a Prometheus
    /// size string (`"10MB"`, base 2 as in Prometheus).
    #[serde(default)]
    pub body_size_limit: ByteSize,
    /// Prometheus `follow_redirects` (default true).
    #[serde(default = "yes")]
    pub follow_redirects: bool,
    /// Prometheus `track_timestamps_staleness`: also write staleness markers for series
    /// that carried their own timestamps (default false).
    #[serde(default)]
    pub track_timestamps_staleness: bool,
    /// Prometheus `scrape_protocols`: the formats asked for, most preferred first
    /// (default: OpenMetrics 1.0.0, 0.0.1, text 1.0.0, 0.0.4, as Prometheus 3).
    #[serde(default = "default_protocols")]
    pub scrape_protocols: Vec<ScrapeProtocol>,
    /// Prometheus `fallback_scrape_protocol`: how to read a body whose Content-Type is
    /// missing or unknown. Unset: the text format (Prometheus 3 fails such scrapes).
    #[serde(default)]
    pub fallback_scrape_protocol: Option<ScrapeProtocol>,
    /// Prometheus `target_limit`: most targets the job may have after relabelling; above
    /// it every target of the job fails without being scraped (up = 0). 0 = no limit.
    #[serde(default)]
    pub target_limit: u64,
    // Accepted so a job pasted from Prometheus loads; they change nothing in Picket:
    /// Prometheus `enable_http2`: Picket's client speaks HTTP/1.1 (as most exporters).
    #[serde(default)]
    pub enable_http2: Option<bool>,
    /// Prometheus `keep_dropped_targets`: most targets dropped by relabelling that
    /// `/api/v1/targets` lists for this job; unset or 0 = all.
    #[serde(default)]
    pub keep_dropped_targets: Option<u64>,
    /// Prometheus `scrape_classic_histograms` / `always_scrape_classic_histograms`:
    /// Picket only ever stores classic histograms.
    #[serde(default, alias = "always_scrape_classic_histograms")]
    pub scrape_classic_histograms: Option<bool>,
    /// Prometheus `metric_name_validation_scheme` (`utf8` or `legacy`): Picket accepts
    /// UTF-8 names, as Prometheus 3 does by default.
    #[serde(default)]
    pub metric_name_validation_scheme: Option<String>,
    /// Prometheus `metric_name_escaping_scheme`: Picket asks for `allow-utf-8`.
    #[serde(default)]
    pub metric_name_escaping_scheme: Option<String>,
}

/// A scrape protocol as Prometheus names it (`config.ScrapeProtocol`). The protobuf
/// format is recognised so its error can say it is not supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum ScrapeProtocol {
    #[serde(rename = "OpenMetricsText1.0.0")]
    OpenMetricsText1_0_0,
    #[serde(rename = "OpenMetricsText0.0.1")]
    OpenMetricsText0_0_1,
    #[serde(rename = "PrometheusText1.0.0")]
    PrometheusText1_0_0,
    #[serde(rename = "PrometheusText0.0.4")]
    PrometheusText0_0_4,
    PrometheusProto,
}

impl ScrapeProtocol {
    /// The media type Prometheus sends for it (`config.ScrapeProtocolsHeaders`), with the
    /// `escaping` parameter Prometheus 3 adds to the 1.0.0 formats.
    pub fn accept(self) -> &'static str {
        match self {
            ScrapeProtocol::OpenMetricsText1_0_0 => {
                "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8"
            }
            ScrapeProtocol::OpenMetricsText0_0_1 => "application/openmetrics-text;version=0.0.1",
            ScrapeProtocol::PrometheusText1_0_0 => "text/plain;version=1.0.0;escaping=allow-utf-8",
            ScrapeProtocol::PrometheusText0_0_4 => "text/plain;version=0.0.4",
            ScrapeProtocol::PrometheusProto => {
                "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"
            }
        }
    }

    pub fn is_openmetrics(self) -> bool {
        matches!(
            self,
            ScrapeProtocol::OpenMetricsText1_0_0 | ScrapeProtocol::OpenMetricsText0_0_1
        )
    }
}

/// Prometheus 3's default `scrape_protocols`.
pub fn default_protocols() -> Vec<ScrapeProtocol> {
    vec![
        ScrapeProtocol::OpenMetricsText1_0_0,
        ScrapeProtocol::OpenMetricsText0_0_1,
        ScrapeProtocol::PrometheusText1_0_0,
        ScrapeProtocol::PrometheusText0_0_4,
    ]
}

/// The `Accept` header for `protocols`, weighted as Prometheus' `acceptHeader`
/// (scrape/scrape.go): q=0.6 for the first of its five known protocols, 0.1 less for each
/// next one, then `*/*`.
pub fn accept_header(protocols: &[ScrapeProtocol]) -> String {
    let mut weight = 6;
    let mut parts = Vec::with_capacity(protocols.len() + 1);
    for p in protocols {
        parts.push(format!("{};q=0.{weight}", p.accept()));
        weight -= 1;
    }
    parts.push(format!("*/*;q=0.{weight}"));
    parts.join(",")
}

/// A byte count: an integer, or a string with a unit as Prometheus' `units.Base2Bytes`
/// writes it (`B`, `KB`/`KiB`, `MB`/`MiB`, `GB`/`GiB`, `TB`/`TiB`, all powers of 1024).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) if n >= 0 => Ok(ByteSize(n as u64)),
            Raw::Int(n) => Err(serde::de::Error::custom(format!(
                "must not be negative, got {n}"
            ))),
            Raw::Text(s) => parse_byte_size(&s).map(ByteSize).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "invalid size {s:?}: write a byte count or a number with B, KB, MB, GB or TB"
                ))
            }),
        }
    }
}

fn parse_byte_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num.parse().ok()?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "KB" | "KiB" => 10,
        "MB" | "MiB" => 20,
        "GB" | "GiB" => 30,
        "TB" | "TiB" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

impl ScrapeConfig {
    /// The job's HTTP client keys.
    pub fn http_client(&self) -> HttpClientConfig {
        super::http_client::http_client_of!(self)
    }

    pub fn interval(&self) -> Duration {
        self.scrape_interval
            .map_or(DEFAULT_SCRAPE_INTERVAL, |d| d.0)
    }

    /// The timeout: as written, or 10 s capped at the interval (Prometheus does the same
    /// capping for the default only; a written timeout above the interval is an error).
    pub fn timeout(&self) -> Duration {
        self.scrape_timeout
            .map_or(DEFAULT_SCRAPE_TIMEOUT.min(self.interval()), |d| d.0)
    }
}

fn default_metrics_path() -> String {
    "/metrics".to_string()
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    #[default]
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// `static_configs` entry: targets (`host:port`) and labels for all of them.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// `file_sd_configs` entry: JSON or YAML files (by extension; globs in the file name
/// part) holding lists of static configs, re-read when they change.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    pub files: Vec<String>,
    /// How often the files are checked for changes (Prometheus: 5m; it also watches with
    /// inotify, Picket only polls, so the default here is shorter).
    #[serde(default)]
    pub refresh_interval: Option<ConfigDuration>,
}

/// `kubernetes_sd_configs` entry: Prometheus' fields for role `pod`, plus Picket's
/// `this_node_only` and `node_name`. Credentials: `kubeconfig_file`, or `api_server` with
/// the HTTP options below, or neither (in-cluster service account).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSdConfig {
    pub role: KubernetesRole,
    #[serde(default)]
    pub api_server: Option<String>,
    #[serde(default)]
    pub kubeconfig_file: Option<PathBuf>,
    #[serde(default)]
    pub namespaces: Option<KubernetesNamespaces>,
    #[serde(default)]
    pub selectors: Vec<KubernetesSelector>,
    /// Picket: only pods scheduled on this node (field selector `spec.nodeName=<node>`).
    #[serde(default)]
    pub this_node_only: bool,
    /// Picket: this node's name for `this_node_only`; unset: `$NODE_NAME`, else the host
    /// name.
    #[serde(default)]
    pub node_name: Option<String>,
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
    /// Accepted so a pasted config loads: Picket attaches no node metadata.
    #[serde(default)]
    pub attach_metadata: Option<toml::Table>,
    /// Accepted so a pasted config loads: Picket's client speaks HTTP/1.1.
    #[serde(default)]
    pub enable_http2: Option<bool>,
    #[serde(default)]
    pub follow_redirects: Option<bool>,
}

impl KubernetesSdConfig {
    /// The API server connection's HTTP client keys.
    pub fn http_client(&self) -> HttpClientConfig {
        super::http_client::http_client_of!(self)
    }
}

/// Kubernetes discovery roles: Picket discovers pods only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KubernetesRole {
    Pod,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesNamespaces {
    #[serde(default)]
    pub names: Vec<String>,
    /// The namespace Picket runs in (from the service account), in addition to `names`.
    #[serde(default)]
    pub own_namespace: bool,
}

/// A server-side filter, as Prometheus' `selectors` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSelector {
    pub role: KubernetesRole,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub field: Option<String>,
}

/// One relabelling step, as Prometheus' `relabel_config` (`model/relabel/relabel.go`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    #[serde(default)]
    pub source_labels: Vec<String>,
    #[serde(default = "default_separator")]
    pub separator: String,
    #[serde(default)]
    pub target_label: String,
    #[serde(default)]
    pub regex: RelabelRegex,
    #[serde(default)]
    pub modulus: u64,
    #[serde(default = "default_replacement")]
    pub replacement: String,
    #[serde(default)]
    pub action: RelabelAction,
}

impl Default for RelabelConfig {
    fn default() -> Self {
        RelabelConfig {
            source_labels: Vec::new(),
            separator: default_separator(),
            target_label: String::new(),
            regex: RelabelRegex::default(),
            modulus: 0,
            replacement: default_replacement(),
            action: RelabelAction::Replace,
        }
    }
}

fn default_separator() -> String {
    ";".to_string()
}

fn default_replacement() -> String {
    "$1".to_string()
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RelabelAction {
    #[default]
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl RelabelAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RelabelAction::Replace => "replace",
            RelabelAction::Keep => "keep",
            RelabelAction::Drop => "drop",
            RelabelAction::KeepEqual => "keepequal",
            RelabelAction::DropEqual => "dropequal",
            RelabelAction::HashMod => "hashmod",
            RelabelAction::LabelMap => "labelmap",
            RelabelAction::LabelDrop => "labeldrop",
            RelabelAction::LabelKeep => "labelkeep",
            RelabelAction::Lowercase => "lowercase",
            RelabelAction::Uppercase => "uppercase",
        }
    }
}

/// A relabel regex, fully anchored as Prometheus anchors it: `^(?s:<regex>)$`
/// (`relabel.NewRegexp`). Rust's `regex` and Go's RE2 share syntax for everything
/// relabel configs use in practice.
#[derive(Debug, Clone)]
pub struct RelabelRegex {
    pub source: String,
    pub regex: regex::Regex,
}

impl RelabelRegex {
    pub fn new(source: &str) -> Result<RelabelRegex, regex::Error> {
        // Report errors against the regex as written, not the anchored wrapper.
        let regex = regex::Regex::new(&format!("^(?s:{source})$"))
            .map_err(|e| regex::Regex::new(source).err().unwrap_or(e))?;
        Ok(RelabelRegex {
            source: source.to_string(),
            regex,
        })
    }

    pub fn is_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }
}

impl Default for RelabelRegex {
    fn default() -> Self {
        RelabelRegex::new("(.*)").expect("BUG: the default relabel regex compiles")
    }
}

impl<'de> Deserialize<'de> for RelabelRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RelabelRegex::new(&s)
            .map_err(|e| serde::de::Error::custom(format!("invalid regex {s:?}: {e}")))
    }
}

/// A cross-field problem: the job's index among `[[scrape]]` tables, the key below it
/// (dotted, e.g. `relabel_configs.target_label`) and the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeProblem {
    pub job: usize,
    pub key: String,
    pub message: String,
}

/// Checks what serde cannot: unique job names, timeout ≤ interval, and the fields each
/// relabel action requires (the rules of Prometheus' `relabel.Config.Validate`).
pub fn validate(jobs: &[ScrapeConfig]) -> Result<(), ScrapeProblem> {
    let mut names = HashSet::new();
    for (i, job) in jobs.iter().enumerate() {
        let problem = |key: &str, message: String| ScrapeProblem {
            job: i,
            key: key.to_string(),
            message,
        };
        if job.job_name.is_empty() {
            return Err(problem("job_name", "job_name must not be empty".into()));
        }
        if !names.insert(job.job_name.as_str()) {
            return Err(problem(
                "job_name",
                format!(
                    "found multiple scrape configs with job name {:?}",
                    job.job_name
                ),
            ));
        }
        if job.timeout() > job.interval() {
            return Err(problem(
                "scrape_timeout",
                format!(
                    "scrape timeout greater than scrape interval for scrape config with job name {:?}",
                    job.job_name
                ),
            ));
        }
        if !job.metrics_path.starts_with('/') {
            return Err(problem(
                "metrics_path",
                "metrics_path must start with '/'".into(),
            ));
        }
        job.http_client()
            .validate()
            .map_err(|(key, message)| problem(key, message))?;
        if let Some(i) = job
            .scrape_protocols
            .iter()
            .chain(&job.fallback_scrape_protocol)
            .position(|p| *p == ScrapeProtocol::PrometheusProto)
        {
            let key = if i < job.scrape_protocols.len() {
                "scrape_protocols"
            } else {
                "fallback_scrape_protocol"
            };
            return Err(problem(
                key,
                "PrometheusProto (the protobuf format) is not supported; use the text or OpenMetrics protocols".into(),
            ));
        }
        if job.scrape_protocols.is_empty() {
            return Err(problem(
                "scrape_protocols",
                "scrape_protocols must name at least one protocol".into(),
            ));
        }
        for sd in &job.kubernetes_sd_configs {
            if sd.api_server.is_some() && sd.kubeconfig_file.is_some() {
                return Err(problem(
                    "kubernetes_sd_configs.kubeconfig_file",
                    "at most one of api_server and kubeconfig_file may be set".into(),
                ));
            }
            let client = sd.http_client();
            client.validate().map_err(|(key, message)| {
                problem(&format!("kubernetes_sd_configs.{key}"), message)
            })?;
            if sd.kubeconfig_file.is_some() && (client.has_credentials() || sd.tls_config.is_some())
            {
                return Err(problem(
                    "kubernetes_sd_configs.kubeconfig_file",
                    "with kubeconfig_file, credentials and TLS come from the kubeconfig: remove the HTTP client options".into(),
                ));
            }
            if let Some(api) = &sd.api_server
                && !(api.starts_with("http://") || api.starts_with("https://"))
            {
                return Err(problem(
                    "kubernetes_sd_configs.api_server",
                    format!("api_server {api:?} must be an http:// or https:// URL"),
                ));
            }
        }
        if job.kubernetes_annotations && job.kubernetes_sd_configs.is_empty() {
            return Err(problem(
                "kubernetes_annotations",
                "kubernetes_annotations needs at least one kubernetes_sd_configs entry".into(),
            ));
        }
        for (list, configs) in [
            ("relabel_configs", &job.relabel_configs),
            ("metric_relabel_configs", &job.metric_relabel_configs),
        ] {
            for rc in configs {
                validate_relabel(rc)
                    .map_err(|(key, message)| problem(&format!("{list}.{key}"), message))?;
            }
        }
    }
    Ok(())
}

/// Prometheus' `relabel.Config.Validate` (model/relabel/relabel.go), for the UTF-8 name
/// validation scheme of Prometheus 3 (any non-empty label name is valid).
pub fn validate_relabel(rc: &RelabelConfig) -> Result<(), (&'static str, String)> {
    use RelabelAction::*;
    let action = rc.action.as_str();
    if rc.action == HashMod && rc.modulus == 0 {
        return Err((
            "modulus",
            "relabel configuration for hashmod requires non-zero modulus".into(),
        ));
    }
    if matches!(
        rc.action,
        Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual
    ) && rc.target_label.is_empty()
    {
        return Err((
            "target_label",
            format!("relabel configuration for {action} action requires 'target_label' value"),
        ));
    }
    if matches!(rc.action, KeepEqual | DropEqual)
        && (rc.regex.source != "(.*)"
            || rc.modulus != 0
            || rc.separator != ";"
            || rc.replacement != "$1")
    {
        return Err((
            "action",
            format!(
                "{action} action requires only 'source_labels' and `target_label`, and no other fields"
            ),
        ));
    }
    if matches!(rc.action, LabelDrop | LabelKeep)
        && (!rc.source_labels.is_empty()
            || !rc.target_label.is_empty()
            || rc.modulus != 0
            || rc.separator != ";"
            || rc.replacement != "$1")
    {
        return Err((
            "action",
            format!("{action} action requires only 'regex', and no other fields"),
        ));
    }
    if matches!(
        rc.action,
        Lowercase | Uppercase | HashMod | KeepEqual | DropEqual
    ) && rc.target_label.contains('$')
    {
        return Err((
            "target_label",
            format!(
                "{:?} is invalid 'target_label' for {action} action",
                rc.target_label
            ),
        ));
    }
    Ok(())
}

/// 1-based line of `key` inside the `job`-th `[[scrape]]` table of `text` (the first line
/// of that table if the key is not written there; line 1 if the table is not found).
pub fn locate(text: &str, job: usize, key: &str) -> usize {
    locate_in(text, "[[scrape]]", job, key)
}

/// [`locate`] for any array of tables (`header` such as `"[[probe]]"`).
pub fn locate_in(text: &str, header: &str, job: usize, key: &str) -> usize {
    let last = key.rsplit('.').next().unwrap_or(key);
    let mut seen = None::<usize>;
    let mut header_line = None;
    for (n, line) in text.lines().enumerate() {
        let t = line.trim();
        if t == header {
            seen = Some(seen.map_or(0, |s| s + 1));
            if seen == Some(job) {
                header_line = Some(n + 1);
            } else if seen > Some(job) {
                break;
            }
            continue;
        }
        if seen == Some(job)
            && let Some((k, _)) = t.split_once('=')
            && k.trim().trim_matches('"') == last
        {
            return n + 1;
        }
    }
    header_line.unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(text: &str) -> ScrapeConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_follow_prometheus_except_the_interval() {
        let j = job("job_name = \"a\"\n");
        assert_eq!(j.interval(), Duration::from_secs(15));
        assert_eq!(j.timeout(), Duration::from_secs(10));
        assert_eq!(j.metrics_path, "/metrics");
        assert_eq!(j.scheme, Scheme::Http);
        assert!(!j.honor_labels);
        assert!(j.honor_timestamps);
        let j = job("job_name = \"a\"\nscrape_interval = \"5s\"\n");
        assert_eq!(
            j.timeout(),
            Duration::from_secs(5),
            "timeout is capped at the interval"
        );
    }

    #[test]
    fn relabel_defaults_are_prometheus_defaults() {
        let j = job("job_name = \"a\"\n[[relabel_configs]]\ntarget_label = \"x\"\n");
        let r = &j.relabel_configs[0];
        assert_eq!(r.action, RelabelAction::Replace);
        assert_eq!(r.separator, ";");
        assert_eq!(r.replacement, "$1");
        assert_eq!(r.regex.source, "(.*)");
        assert!(r.regex.is_match("anything\nat all"));
    }

    #[test]
    fn regexes_are_fully_anchored() {
        let r = RelabelRegex::new("a|b").unwrap();
        assert!(r.is_match("a"));
        assert!(!r.is_match("ab"));
        assert!(!r.is_match("xa"));
    }

    #[test]
    fn cross_field_rules_are_enforced() {
        let cases: &[(&str, &str)] = &[
            (
                "job_name = \"a\"\nscrape_interval = \"5s\"\nscrape_timeout = \"6s\"\n",
                "scrape_timeout",
            ),
            (
                "job_name = \"a\"\n[[relabel_configs]]\naction = \"hashmod\"\ntarget_label = \"x\"\n",
                "relabel_configs.modulus",
            ),
            (
                "job_name = \"a\"\n[[relabel_configs]]\naction = \"replace\"\n",
                "relabel_configs.target_label",
            ),
            (
                "job_name = \"a\"\n[[metric_relabel_configs]]\naction = \"labeldrop\"\nregex = \"x\"\ntarget_label = \"y\"\n",
                "metric_relabel_configs.action",
            ),
            (
                "job_name = \"a\"\n[[relabel_configs]]\naction = \"keepequal\"\ntarget_label = \"y\"\nregex = \"z\"\n",
                "relabel_configs.action",
            ),
            (
                "job_name = \"a\"\nmetrics_path = \"metrics\"\n",
                "metrics_path",
            ),
            (
                "job_name = \"a\"\nbearer_token = \"x\"\n[basic_auth]\nusername = \"u\"\n",
                "authorization",
            ),
        ];
        for (text, key) in cases {
            let err = validate(&[job(text)]).expect_err(text);
            assert_eq!(err.key, *key, "{text}: {}", err.message);
        }
        let dup = validate(&[job("job_name = \"a\"\n"), job("job_name = \"a\"\n")]).unwrap_err();
        assert_eq!((dup.job, dup.key.as_str()), (1, "job_name"));
    }

    #[test]
    fn the_default_accept_header_is_prometheus_3s() {
        assert_eq!(
            accept_header(&default_protocols()),
            "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,\
             application/openmetrics-text;version=0.0.1;q=0.5,\
             text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,\
             text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
        );
        let j = job("job_name = \"a\"\nscrape_protocols = [\"PrometheusText0.0.4\"]\n");
        assert_eq!(
            accept_header(&j.scrape_protocols),
            "text/plain;version=0.0.4;q=0.6,*/*;q=0.5"
        );
    }

    #[test]
    fn body_size_limits_read_counts_and_prometheus_units() {
        let cases = [
            ("0", 0),
            ("1024", 1024),
            ("\"10MB\"", 10 << 20),
            ("\"1KiB\"", 1024),
            ("\"5B\"", 5),
        ];
        for (text, want) in cases {
            let j = job(&format!("job_name = \"a\"\nbody_size_limit = {text}\n"));
            assert_eq!(j.body_size_limit.0, want, "{text}");
        }
        assert!(
            toml::from_str::<ScrapeConfig>("job_name = \"a\"\nbody_size_limit = \"10XB\"\n")
                .is_err()
        );
    }

    #[test]
    fn the_protobuf_protocol_is_refused_with_a_reason() {
        let err = validate(&[job(
            "job_name = \"a\"\nscrape_protocols = [\"PrometheusProto\"]\n",
        )])
        .unwrap_err();
        assert_eq!(err.key, "scrape_protocols");
        assert!(err.message.contains("not supported"), "{}", err.message);
    }

    #[test]
    fn a_job_pasted_from_prometheus_loads() {
        // prometheus.yml fields written as TOML, including ones Picket accepts as no-ops.
        let j = job(r#"
job_name = "k"
scrape_interval = "30s"
scrape_timeout = "5s"
honor_labels = true
enable_http2 = true
keep_dropped_targets = 100
always_scrape_classic_histograms = true
metric_name_validation_scheme = "utf8"
metric_name_escaping_scheme = "allow-utf-8"
target_limit = 10
body_size_limit = "50MB"
scrape_protocols = ["OpenMetricsText1.0.0", "PrometheusText0.0.4"]
fallback_scrape_protocol = "PrometheusText0.0.4"
params = { "module" = ["http_2xx"] }
basic_auth = { username = "u", password = "p" }
tls_config = { insecure_skip_verify = true }
static_configs = [{ targets = ["a:1"], labels = { env = "x" } }]
relabel_configs = [{ source_labels = ["__address__"], target_label = "__param_target" }]
"#);
        validate(std::slice::from_ref(&j)).unwrap();
        assert_eq!(j.target_limit, 10);
        assert_eq!(j.body_size_limit.0, 50 << 20);
        assert_eq!(j.scrape_classic_histograms, Some(true));
    }

    #[test]
    fn locate_finds_the_key_in_the_right_job() {
        let text = "[[scrape]]\njob_name = \"a\"\n\n[[scrape]]\njob_name = \"a\"\nscrape_timeout = \"1m\"\n";
        assert_eq!(locate(text, 1, "job_name"), 5);
        assert_eq!(locate(text, 1, "scrape_timeout"), 6);
        assert_eq!(locate(text, 0, "scrape_timeout"), 1);
    }
}
