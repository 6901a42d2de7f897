//! The store (stub; see DESIGN.md "Storage").

use crate::model::{Labels, Metadata, Sample};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub path: PathBuf,
    pub flush_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Other(String),
}

/// Samples for many series, handed to the writer in one call.
#[derive(Debug, Default, Clone)]
pub struct WriteBatch {
    pub series: Vec<(Labels, Vec<Sample>)>,
    pub metadata: Vec<(String, Metadata)>,
}

#[derive(Clone)]
pub struct Store {}

impl Store {
    pub fn open(opts: StoreOptions) -> Result<Store, StoreError> {
        let _ = opts;
        Ok(Store {})
    }
}
