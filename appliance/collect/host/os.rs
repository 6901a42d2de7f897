//! `os` collector: `node_os_info` and `node_os_version` from os-release(5), looked up
//! under the root filesystem path at /etc/os-release, then /usr/lib/os-release.
//! Mirrors node_exporter 1.5.0 `collector/os_release.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/os_release.go>):
//! the file is re-parsed only when its path or mtime changes, and `node_os_version` is
//! the leading `major.minor` of VERSION_ID, omitted when that is not a number above 0.

use std::path::PathBuf;
use std::time::SystemTime;

use super::util::{is_missing, read_into};
use super::{Batch, Failure, Outcome, Source};
use crate::model::{Labels, MetricType};

/// Parses os-release `KEY=value` lines: shell-like quoting with double quotes (backslash
/// escapes `\"`, `\\`, `` \` ``, `\$`), single quotes (literal) or none.
pub(crate) fn parse_os_release(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in s.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim();
        if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        out.push((k.to_string(), unquote(v.trim())));
    }
    out
}

fn unquote(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '"') | (None, '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (Some('\''), c) => out.push(c),
            (_, '\\') => match chars.next() {
                Some(n @ ('"' | '\\' | '`' | '$')) => out.push(n),
                Some(n) if quote.is_none() => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => {}
            },
            (None, '#') => break,
            (None, c) if c.is_whitespace() => break,
            (_, c) => out.push(c),
        }
    }
    out
}

/// The leading `^[0-9]+\.?[0-9]*` of VERSION_ID as a number.
pub(crate) fn major_minor(version_id: &str) -> f64 {
    let mut end = version_id
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(version_id.len());
    if end == 0 {
        return 0.0;
    }
    if version_id[end..].starts_with('.') {
        end += 1;
        end += version_id[end..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(version_id.len() - end);
    }
    version_id[..end]
        .trim_end_matches('.')
        .parse()
        .unwrap_or(0.0)
}

const INFO_KEYS: [(&str, &str); 12] = [
    ("build_id", "BUILD_ID"),
    ("id", "ID"),
    ("id_like", "ID_LIKE"),
    ("image_id", "IMAGE_ID"),
    ("image_version", "IMAGE_VERSION"),
    ("name", "NAME"),
    ("pretty_name", "PRETTY_NAME"),
    ("variant", "VARIANT"),
    ("variant_id", "VARIANT_ID"),
    ("version", "VERSION"),
    ("version_codename", "VERSION_CODENAME"),
    ("version_id", "VERSION_ID"),
];

pub(crate) struct OsRelease {
    candidates: [PathBuf; 2],
    buf: String,
    /// (path index, mtime) of the cached parse.
    cached_from: Option<(usize, SystemTime)>,
    info: Labels,
    version_labels: Labels,
    version: f64,
}

impl OsRelease {
    pub(crate) fn new(p: &super::HostPaths) -> OsRelease {
        OsRelease {
            candidates: [
                p.rootfs.join("etc/os-release"),
                p.rootfs.join("usr/lib/os-release"),
            ],
            buf: String::new(),
            cached_from: None,
            info: Labels::empty(),
            version_labels: Labels::empty(),
            version: 0.0,
        }
    }

    fn refresh(&mut self, idx: usize, mtime: SystemTime) -> std::io::Result<()> {
        if self.cached_from == Some((idx, mtime)) {
            return Ok(());
        }
        read_into(&self.candidates[idx], &mut self.buf)?;
        let kv = parse_os_release(&self.buf);
        let get = |k: &str| {
            kv.iter()
                .rev()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
                .unwrap_or("")
        };
        self.info = Labels::from_pairs(INFO_KEYS.iter().map(|(label, key)| (*label, get(key))));
        self.version_labels = Labels::from_pairs([
            ("id", get("ID")),
            ("id_like", get("ID_LIKE")),
            ("name", get("NAME")),
        ]);
        self.version = major_minor(get("VERSION_ID"));
        self.cached_from = Some((idx, mtime));
        Ok(())
    }
}

impl Source for OsRelease {
    fn name(&self) -> &'static str {
        "os"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        let mut found = false;
        for idx in 0..self.candidates.len() {
            match std::fs::metadata(&self.candidates[idx]) {
                Ok(m) => {
                    let mtime = m.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                    self.refresh(idx, mtime)?;
                    found = true;
                    break;
                }
                Err(e) if is_missing(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        if !found {
            return Err(Failure::NoData("no os-release file".into()));
        }
        out.family(
            "node_os_info",
            "A metric with a constant '1' value labeled by build_id, id, id_like, image_id, image_version, name, pretty_name, variant, variant_id, version, version_codename, version_id.",
            MetricType::Gauge,
        )
        .push(self.info.clone(), 1.0);
        if self.version > 0.0 {
            out.family(
                "node_os_version",
                "Metric containing the major.minor part of the OS version.",
                MetricType::Gauge,
            )
            .push(self.version_labels.clone(), self.version);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RASPIOS: &str = r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
# a comment
HOME_URL='https://www.debian.org/'
ESCAPED="say \"hi\""
"#;

    #[test]
    fn os_release_values_are_unquoted() {
        let kv = parse_os_release(RASPIOS);
        let get = |k: &str| kv.iter().find(|(key, _)| key == k).unwrap().1.clone();
        assert_eq!(get("PRETTY_NAME"), "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(get("VERSION_CODENAME"), "bookworm");
        assert_eq!(get("HOME_URL"), "https://www.debian.org/");
        assert_eq!(get("ESCAPED"), "say \"hi\"");
    }

    #[test]
    fn version_is_the_leading_major_minor() {
        assert_eq!(major_minor("12"), 12.0);
        assert_eq!(major_minor("22.04"), 22.04);
        assert_eq!(major_minor("3.18.4"), 3.18);
        assert_eq!(major_minor("rolling"), 0.0);
        assert_eq!(major_minor(""), 0.0);
    }

    #[test]
    fn os_info_comes_from_usr_lib_when_etc_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("usr/lib")).unwrap();
        std::fs::write(dir.path().join("usr/lib/os-release"), RASPIOS).unwrap();
        let mut c = OsRelease::new(&super::super::HostPaths {
            rootfs: dir.path().to_path_buf(),
            ..Default::default()
        });
        let mut b = Batch::default();
        c.update(&mut b).unwrap();
        let info = &b.get("node_os_info").unwrap().samples[0].0;
        assert_eq!(info.get("id"), Some("debian"));
        assert_eq!(b.get("node_os_version").unwrap().samples[0].1, 12.0);
    }
}
