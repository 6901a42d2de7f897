//! `filefd` collector: allocated and maximum file handles from /proc/sys/fs/file-nr.
//! Mirrors node_exporter 1.5.0 `collector/filefd_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/filefd_linux.go>).

use std::path::PathBuf;

use super::util::{invalid, read_into};
use super::{Batch, Outcome, Source};
use crate::model::MetricType;

/// `allocated unused maximum` → (allocated, maximum).
pub(crate) fn parse_file_nr(s: &str) -> Option<(f64, f64)> {
    let mut f = s.split_ascii_whitespace();
    let allocated = f.next()?.parse::<u64>().ok()?;
    let _unused = f.next()?;
    let maximum = f.next()?.parse::<u64>().ok()?;
    Some((allocated as f64, maximum as f64))
}

pub(crate) struct FileFd {
    path: PathBuf,
    buf: String,
}

impl FileFd {
    pub(crate) fn new(p: &super::HostPaths) -> FileFd {
        FileFd {
            path: p.proc.join("sys/fs/file-nr"),
            buf: String::new(),
        }
    }
}

impl Source for FileFd {
    fn name(&self) -> &'static str {
        "filefd"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        read_into(&self.path, &mut self.buf)?;
        let (allocated, maximum) = parse_file_nr(&self.buf)
            .ok_or_else(|| invalid(format!("unexpected file-nr: {:?}", self.buf)))?;
        out.scalar(
            "node_filefd_allocated",
            "File descriptor statistics: allocated.",
            MetricType::Gauge,
            allocated,
        );
        out.scalar(
            "node_filefd_maximum",
            "File descriptor statistics: maximum.",
            MetricType::Gauge,
            maximum,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_nr_gives_allocated_and_maximum() {
        assert_eq!(parse_file_nr("514\t0\t2466170\n"), Some((514.0, 2466170.0)));
        assert_eq!(parse_file_nr("514"), None);
    }
}
