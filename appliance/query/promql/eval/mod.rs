//! PromQL evaluator.

use super::ast::Expr;
use crate::model::Labels;
use crate::query::{SeriesData, SeriesReader};
use std::time::Duration;

/// Engine limits and defaults.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for the latest sample (Prometheus: 5 m).
    pub lookback_delta_ms: i64,
    /// Maximum samples a query may hold in memory at once (Prometheus: 50,000,000).
    pub max_samples: usize,
    /// Wall-clock budget of one query.
    pub timeout: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 300_000,
            max_samples: 50_000_000,
            timeout: Duration::from_secs(120),
        }
    }
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    pub t: i64,
    pub v: f64,
}

/// The result of a query.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar { t: i64, v: f64 },
    String { t: i64, v: String },
    Vector(Vec<InstantSample>),
    Matrix(Vec<SeriesData>),
}

/// Evaluation failures, classified the way the Prometheus API reports them.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    /// `execution` (HTTP 422): e.g. duplicate series, many-to-many matching.
    #[error("{0}")]
    Execution(String),
    /// `bad_data` (HTTP 400): invalid parameters discovered during evaluation.
    #[error("{0}")]
    BadData(String),
    /// `timeout` (HTTP 503).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// `execution` (HTTP 422) with Prometheus' wording.
    #[error("query processing would load too many samples into memory in {0}")]
    TooManySamples(&'static str),
}

pub fn instant_query(
    reader: &dyn SeriesReader,
    expr: &Expr,
    t_ms: i64,
    opts: &EngineOptions,
) -> Result<Value, EvalError> {
    let _ = (reader, expr, t_ms, opts);
    Err(EvalError::Execution("unimplemented".into()))
}

pub fn range_query(
    reader: &dyn SeriesReader,
    expr: &Expr,
    start_ms: i64,
    end_ms: i64,
    step_ms: i64,
    opts: &EngineOptions,
) -> Result<Value, EvalError> {
    let _ = (reader, expr, start_ms, end_ms, step_ms, opts);
    Err(EvalError::Execution("unimplemented".into()))
}
