//! Small helpers shared by the host collectors: reading /proc and /sys files into a
//! caller-owned buffer, and parsing numbers without panicking on odd contents.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::model::Labels;

/// Reads the whole file at `path` into `buf` (cleared first). /proc and /sys files are
/// generated on read and report a size of 0, so this reads to EOF instead of trusting
/// the metadata.
pub(crate) fn read_into(path: &Path, buf: &mut String) -> io::Result<()> {
    buf.clear();
    File::open(path)?.read_to_string(buf)?;
    Ok(())
}

/// Reads a one-value sysfs/procfs attribute and returns it without surrounding
/// whitespace.
pub(crate) fn read_trimmed<'a>(path: &Path, buf: &'a mut String) -> io::Result<&'a str> {
    read_into(path, buf)?;
    Ok(buf.trim())
}

/// Reads an attribute holding one unsigned integer.
pub(crate) fn read_u64(path: &Path, buf: &mut String) -> io::Result<u64> {
    let s = read_trimmed(path, buf)?;
    s.parse().map_err(|_| {
        invalid(format!(
            "{}: not an unsigned integer: {s:?}",
            path.display()
        ))
    })
}

/// Reads an attribute holding one signed integer.
pub(crate) fn read_i64(path: &Path, buf: &mut String) -> io::Result<i64> {
    let s = read_trimmed(path, buf)?;
    s.parse()
        .map_err(|_| invalid(format!("{}: not an integer: {s:?}", path.display())))
}

/// Go's `strings.ToValidUTF8(s, "\u{FFFD}")`: each run of invalid bytes becomes one
/// replacement character (`String::from_utf8_lossy` would emit one per bad sequence).
pub(crate) fn to_valid_utf8(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut in_bad_run = false;
    for chunk in bytes.utf8_chunks() {
        if !chunk.valid().is_empty() {
            out.push_str(chunk.valid());
            in_bad_run = false;
        }
        if !chunk.invalid().is_empty() && !in_bad_run {
            out.push('\u{FFFD}');
            in_bad_run = true;
        }
    }
    out
}

/// An `InvalidData` error for contents that do not parse.
pub(crate) fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// A label set with one pair.
pub(crate) fn label1(name: &str, value: &str) -> Labels {
    Labels::from_pairs([(name, value)])
}

/// A label set with two pairs.
pub(crate) fn label2(n1: &str, v1: &str, n2: &str, v2: &str) -> Labels {
    Labels::from_pairs([(n1, v1), (n2, v2)])
}

/// The entries of a directory whose names start with `prefix` followed by a number,
/// sorted by that number (`cpu2` before `cpu10`), as `(number, name)`.
pub(crate) fn numbered_entries(dir: &Path, prefix: &str) -> io::Result<Vec<(u64, String)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(rest) = name.strip_prefix(prefix) else {
            continue;
        };
        if let Ok(n) = rest.parse::<u64>() {
            out.push((n, name.to_string()));
        }
    }
    out.sort();
    Ok(out)
}

/// Whether an I/O error means "this file or directory does not exist here".
pub(crate) fn is_missing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_that_do_not_parse_are_errors_not_panics() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, "abc\n").unwrap();
        let mut buf = String::new();
        assert!(read_u64(&p, &mut buf).is_err());
        std::fs::write(&p, " 42\n").unwrap();
        assert_eq!(read_u64(&p, &mut buf).unwrap(), 42);
        assert_eq!(read_i64(&p, &mut buf).unwrap(), 42);
    }

    #[test]
    fn invalid_utf8_runs_become_one_replacement_character_like_go() {
        assert_eq!(to_valid_utf8(b"LNV-45N1\xff\xfe"), "LNV-45N1\u{FFFD}");
        assert_eq!(to_valid_utf8(b"a\xffb\xffc"), "a\u{FFFD}b\u{FFFD}c");
        assert_eq!(to_valid_utf8("ok ü".as_bytes()), "ok ü");
    }

    #[test]
    fn numbered_entries_sort_numerically() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["cpu10", "cpu2", "cpufreq", "cpu0"] {
            std::fs::create_dir(dir.path().join(n)).unwrap();
        }
        let got = numbered_entries(dir.path(), "cpu").unwrap();
        let names: Vec<_> = got.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["cpu0", "cpu2", "cpu10"]);
    }
}
