//! `[rules]`: which Prometheus rule files to evaluate, how often, and the external labels
//! their templates see (`$externalLabels`) and that label the alerts they produce.

use super::ConfigDuration;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulesConfig {
    /// Rule files (Prometheus format), as paths or globs (`*`, `?` in the file name part).
    #[serde(default)]
    pub rule_files: Vec<String>,
    /// Interval of groups that set none (Prometheus' `global.evaluation_interval`).
    #[serde(default = "default_interval")]
    pub evaluation_interval: ConfigDuration,
    /// Labels of this node (Prometheus' `global.external_labels`).
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    /// The URL users reach this Picket at (Prometheus' `--web.external-url`): the base of
    /// alerts' `generatorURL`, `$externalURL` in templates, `externalURL` in webhooks.
    #[serde(default)]
    pub external_url: String,
}

fn default_interval() -> ConfigDuration {
    ConfigDuration(Duration::from_secs(60))
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            rule_files: Vec::new(),
            evaluation_interval: default_interval(),
            external_labels: BTreeMap::new(),
            external_url: String::new(),
        }
    }
}
