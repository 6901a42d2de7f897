//! The scraper's view for `/api/v1/targets`: which targets are active (with the health of
//! their last scrape) and which discovery found but relabelling dropped. The manager
//! replaces the lists after each discovery round; each target thread updates its own
//! [`TargetHealth`] after each scrape, and its metadata when the target's TYPE/HELP/UNIT
//! lines change (for `/api/v1/targets/metadata`).

use super::target::Target;
use crate::model::{Labels, Metadata};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Health of a target as Prometheus reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Health {
    #[default]
    Unknown,
    Up,
    Down,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Up => "up",
            Health::Down => "down",
        }
    }
}

/// The outcome of a target's last scrape.
#[derive(Debug, Clone, Default)]
pub struct TargetHealth {
    pub health: Health,
    /// Unix ms of the last scrape's start; 0 = not scraped yet.
    pub last_scrape_ms: i64,
    pub last_duration: Duration,
    /// Empty when the last scrape succeeded.
    pub last_error: String,
}

/// A target being scraped.
#[derive(Debug, Clone)]
pub struct ActiveTarget {
    /// The job name (Prometheus' scrape pool).
    pub pool: String,
    pub discovered: Labels,
    pub target: Target,
    pub state: Arc<TargetState>,
}

/// What a target's scrape thread reports.
#[derive(Debug, Default)]
pub struct TargetState {
    pub health: Mutex<TargetHealth>,
    /// The metadata (TYPE, HELP, UNIT) the target exposed, by metric family.
    pub metadata: Mutex<BTreeMap<String, Metadata>>,
}

/// A target that relabelling dropped.
#[derive(Debug, Clone)]
pub struct DroppedTarget {
    pub pool: String,
    pub discovered: Labels,
}

/// Shared between the scrape manager (writer) and the API (reader).
#[derive(Debug, Default)]
pub struct TargetsStatus {
    lists: Mutex<(Vec<ActiveTarget>, Vec<DroppedTarget>)>,
}

impl TargetsStatus {
    pub(crate) fn replace(&self, active: Vec<ActiveTarget>, dropped: Vec<DroppedTarget>) {
        if let Ok(mut l) = self.lists.lock() {
            *l = (active, dropped);
        }
    }

    /// The active and dropped targets now, each sorted by pool, then URL or labels.
    pub fn snapshot(&self) -> (Vec<ActiveTarget>, Vec<DroppedTarget>) {
        let (mut active, mut dropped) = self.lists.lock().map(|l| l.clone()).unwrap_or_default();
        active.sort_by(|a, b| (&a.pool, &a.target.url).cmp(&(&b.pool, &b.target.url)));
        dropped.sort_by(|a, b| (&a.pool, &a.discovered).cmp(&(&b.pool, &b.discovered)));
        (active, dropped)
    }
}
