//! `entropy` collector: available entropy and pool size from
//! /proc/sys/kernel/random. Mirrors node_exporter 1.5.0 `collector/entropy_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/entropy_linux.go>).

use std::path::PathBuf;

use super::util::read_u64;
use super::{Batch, Outcome, Source};
use crate::model::MetricType;

pub(crate) struct Entropy {
    avail: PathBuf,
    pool: PathBuf,
    buf: String,
}

impl Entropy {
    pub(crate) fn new(p: &super::HostPaths) -> Entropy {
        Entropy {
            avail: p.proc.join("sys/kernel/random/entropy_avail"),
            pool: p.proc.join("sys/kernel/random/poolsize"),
            buf: String::new(),
        }
    }
}

impl Source for Entropy {
    fn name(&self) -> &'static str {
        "entropy"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        let avail = read_u64(&self.avail, &mut self.buf)?;
        let pool = read_u64(&self.pool, &mut self.buf)?;
        out.scalar(
            "node_entropy_available_bits",
            "Bits of available entropy.",
            MetricType::Gauge,
            avail as f64,
        );
        out.scalar(
            "node_entropy_pool_size_bits",
            "Bits of entropy pool.",
            MetricType::Gauge,
            pool as f64,
        );
        Ok(())
    }
}
