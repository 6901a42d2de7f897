//! Sources: each collector appends whole metric families to a caller-owned [`Batch`]
//! once per tick. `host` is the node_exporter-compatible host collector; `exposition`
//! renders a batch in the Prometheus text format (Picket's own `/metrics`); `scrape`
//! scrapes Prometheus exporters (`[[scrape]]` jobs) and hands samples with their own
//! timestamps to ingest; `probe` runs blackbox-style health probes (`[[probe]]`).

pub mod exposition;
pub mod host;
pub mod probe;
pub mod scrape;
pub mod self_metrics;

use crate::model::{Labels, MetricType};

/// One metric family as a collector produced it.
#[derive(Debug, Clone)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub kind: MetricType,
    /// Sample label sets without the metric name, except where a sample's name differs
    /// from the family's (histogram `_bucket`/`_sum`/`_count`, summary `_sum`/`_count`):
    /// then `__name__` holds the sample's name.
    pub samples: Vec<(Labels, f64)>,
}

impl Family {
    pub fn new(name: impl Into<String>, help: impl Into<String>, kind: MetricType) -> Family {
        Family {
            name: name.into(),
            help: help.into(),
            kind,
            samples: Vec::new(),
        }
    }

    /// Appends one sample.
    pub fn push(&mut self, labels: Labels, value: f64) -> &mut Self {
        self.samples.push((labels, value));
        self
    }
}

/// What one collector tick produced; cleared and reused between ticks.
#[derive(Debug, Default)]
pub struct Batch {
    pub families: Vec<Family>,
}

impl Batch {
    /// Empties the batch, keeping the capacity of its family list.
    pub fn clear(&mut self) {
        self.families.clear();
    }

    /// Appends a new, empty family and returns it for filling.
    pub fn family(
        &mut self,
        name: impl Into<String>,
        help: impl Into<String>,
        kind: MetricType,
    ) -> &mut Family {
        self.families.push(Family::new(name, help, kind));
        let last = self.families.len() - 1;
        &mut self.families[last]
    }

    /// Appends a family holding one sample without labels (the common scalar case).
    pub fn scalar(&mut self, name: &str, help: &str, kind: MetricType, value: f64) {
        self.family(name, help, kind).push(Labels::empty(), value);
    }

    /// The family named `name` among those appended at index `from` or later, created
    /// (empty) if there is none yet. Collectors whose family names come from the data
    /// (hwmon, netstat) use this to merge samples of one name into one family.
    pub fn family_since(
        &mut self,
        from: usize,
        name: &str,
        help: &str,
        kind: MetricType,
    ) -> &mut Family {
        let from = from.min(self.families.len());
        match self.families[from..].iter().position(|f| f.name == name) {
            Some(i) => &mut self.families[from + i],
            None => self.family(name, help, kind),
        }
    }

    /// Looks a family up by name.
    pub fn get(&self, name: &str) -> Option<&Family> {
        self.families.iter().find(|f| f.name == name)
    }
}
