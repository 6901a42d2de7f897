//! `uname` collector: `node_uname_info` labelled with the fields of `uname(2)`.
//! Mirrors node_exporter 1.5.0 `collector/uname.go` and `uname_linux.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/uname_linux.go>).

use std::os::raw::c_char;

use super::{Batch, Outcome, Source};
use crate::model::{Labels, MetricType};

pub(crate) struct Uname;

impl Uname {
    pub(crate) fn new() -> Uname {
        Uname
    }
}

fn field(f: &[c_char]) -> String {
    // The kernel NUL-terminates every field; stop at the array end regardless.
    let bytes: Vec<u8> = f
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The `uname(2)` fields as node_uname_info labels.
pub(crate) fn uname_labels() -> std::io::Result<Labels> {
    // SAFETY: `u` is a writable utsname that uname fills in.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Labels::from_pairs([
        ("sysname", field(&u.sysname)),
        ("release", field(&u.release)),
        ("version", field(&u.version)),
        ("machine", field(&u.machine)),
        ("nodename", field(&u.nodename)),
        ("domainname", field(&u.domainname)),
    ]))
}

impl Source for Uname {
    fn name(&self) -> &'static str {
        "uname"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        let labels = uname_labels()?;
        out.family(
            "node_uname_info",
            "Labeled system information as provided by the uname system call.",
            MetricType::Gauge,
        )
        .push(labels, 1.0);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uname_reports_linux_and_a_machine() {
        let l = uname_labels().unwrap();
        assert_eq!(l.get("sysname"), Some("Linux"));
        assert!(l.get("machine").is_some_and(|m| !m.is_empty()));
    }
}
