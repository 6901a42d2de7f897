//! Host collector (stub).
use std::path::PathBuf;
pub struct HostPaths {
    pub proc: PathBuf,
    pub sys: PathBuf,
    pub rootfs: PathBuf,
}
pub struct HostCollector;
impl HostCollector {
    pub fn new(_: HostPaths) -> HostCollector {
        HostCollector
    }
    pub fn collect(&mut self, out: &mut super::Batch) {
        out.scalar(
            "node_load1",
            "1m load average.",
            crate::model::MetricType::Gauge,
            0.5,
        );
    }
}
