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

/// Counters the app exposes as `picket_*` self-metrics.
#[derive(Debug, Default, Clone)]
pub struct StoreStats {
    pub series: u64,
    pub samples_appended: u64,
    pub samples_flushed: u64,
    pub bytes_on_disk: u64,
    pub head_chunks: u64,
    pub flushes: u64,
    pub last_flush_seconds: f64,
}

impl Store {
    pub fn append(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let _ = batch;
        Ok(())
    }
    pub fn metadata(&self) -> Vec<(String, Metadata)> {
        Vec::new()
    }
    pub fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }
    pub fn close(&self) -> Result<(), StoreError> {
        Ok(())
    }
    pub fn stats(&self) -> StoreStats {
        StoreStats::default()
    }
}

impl crate::query::SeriesReader for Store {
    fn select(
        &self,
        _: &[crate::model::Matcher],
        _: i64,
        _: i64,
    ) -> Result<Vec<crate::query::SeriesData>, crate::query::ReadError> {
        Ok(vec![])
    }
    fn series(
        &self,
        _: &[crate::model::Matcher],
        _: i64,
        _: i64,
    ) -> Result<Vec<Labels>, crate::query::ReadError> {
        Ok(vec![])
    }
    fn label_names(
        &self,
        _: &[crate::model::Matcher],
        _: i64,
        _: i64,
    ) -> Result<Vec<String>, crate::query::ReadError> {
        Ok(vec![])
    }
    fn label_values(
        &self,
        _: &str,
        _: &[crate::model::Matcher],
        _: i64,
        _: i64,
    ) -> Result<Vec<String>, crate::query::ReadError> {
        Ok(vec![])
    }
}
