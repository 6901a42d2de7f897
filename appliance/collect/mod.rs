//! Sources (stub).

pub mod host;

use crate::model::{Labels, MetricType};

/// One metric family as a collector produced it.
#[derive(Debug, Clone)]
pub struct Family {
    pub name: String,
    pub help: String,
    pub kind: MetricType,
    pub samples: Vec<(Labels, f64)>,
}

/// What one collector tick produced; cleared and reused between ticks.
#[derive(Debug, Default)]
pub struct Batch {
    pub families: Vec<Family>,
}
