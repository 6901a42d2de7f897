//! `textfile` collector: metrics that scripts drop as `*.prom` files into Debian's
//! node_exporter textfile directory (`<rootfs>/var/lib/prometheus/node-exporter`, where
//! `prometheus-node-exporter-collectors` writes apt, smartmon and friends), plus
//! `node_textfile_mtime_seconds{file}` and `node_textfile_scrape_error`.
//! Mirrors node_exporter 1.5.0 `collector/textfile.go`
//! (<https://github.com/prometheus/node_exporter/blob/v1.5.0/collector/textfile.go>):
//! a file that does not parse, or carries client-side timestamps, is skipped whole and
//! sets the error flag; so does a missing directory. The collector itself always
//! succeeds.
//!
//! The parser accepts the text format 0.0.4 as client_golang's `expfmt.TextParser`
//! does for well-formed files: `# HELP`/`# TYPE` before a family's samples, escaped
//! label values, `+Inf`/`-Inf`/`NaN`. Histogram and summary samples keep their suffixed
//! name (`_bucket`, `_sum`, `_count`) in the `__name__` label of the sample.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::util::{label1, read_into};
use super::{Batch, Outcome, Source};
use crate::model::{Labels, METRIC_NAME, MetricType};

/// One family parsed from a text file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TextFamily {
    pub name: String,
    pub help: Option<String>,
    pub kind: MetricType,
    pub samples: Vec<(Labels, f64)>,
}

fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('\\') => out.push('\\'),
                Some(o) => {
                    out.push('\\');
                    out.push(o);
                }
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        v => v.parse().ok(),
    }
}

/// Label pairs in file order.
type Pairs = Vec<(String, String)>;

/// Parses `{a="b",c="d"}` at the start of `s`; returns the pairs and the rest.
fn parse_labels(s: &str) -> Result<(Pairs, &str), String> {
    let mut pairs = Vec::new();
    let mut it = s.char_indices().peekable();
    // Skip '{'.
    it.next();
    loop {
        while it.peek().is_some_and(|(_, c)| *c == ' ' || *c == ',') {
            it.next();
        }
        let Some(&(start, c)) = it.peek() else {
            return Err("unterminated label set".into());
        };
        if c == '}' {
            return Ok((pairs, &s[start + 1..]));
        }
        let mut end = start;
        while let Some(&(i, c)) = it.peek() {
            if c == '=' || c == ' ' {
                break;
            }
            end = i + c.len_utf8();
            it.next();
        }
        let name = &s[start..end];
        if !valid_name(name) || name.contains(':') {
            return Err(format!("invalid label name {name:?}"));
        }
        while it.peek().is_some_and(|(_, c)| *c == ' ') {
            it.next();
        }
        if it.next().map(|(_, c)| c) != Some('=') {
            return Err(format!("expected '=' after label name {name:?}"));
        }
        while it.peek().is_some_and(|(_, c)| *c == ' ') {
            it.next();
        }
        if it.next().map(|(_, c)| c) != Some('"') {
            return Err(format!("expected '\"' for label {name:?}"));
        }
        let mut value = String::new();
        loop {
            match it.next().map(|(_, c)| c) {
                Some('\\') => match it.next().map(|(_, c)| c) {
                    Some('n') => value.push('\n'),
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    _ => return Err("invalid escape in label value".into()),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => return Err("unterminated label value".into()),
            }
        }
        if pairs.iter().any(|(n, _)| n == name) {
            return Err(format!("duplicate label {name:?}"));
        }
        pairs.push((name.to_string(), value));
    }
}

/// The family a sample called `sample` belongs to, given the TYPEd families so far.
fn family_of<'a>(sample: &'a str, families: &[TextFamily]) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = sample.strip_suffix(suffix)
            && families.iter().any(|f| {
                f.name == base && matches!(f.kind, MetricType::Histogram | MetricType::Summary)
            })
        {
            return base;
        }
    }
    sample
}

/// Parses one text-format file. Returns whether any sample carries a timestamp.
pub(crate) fn parse_text(s: &str) -> Result<(Vec<TextFamily>, bool), String> {
    let mut families: Vec<TextFamily> = Vec::new();
    let mut has_timestamps = false;
    for (n, line) in s.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}", n + 1);
        let line = line.trim_start();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start();
            let (kw, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            if kw != "HELP" && kw != "TYPE" {
                continue; // a plain comment
            }
            let rest = rest.trim_start();
            let (name, arg) = rest.split_once(' ').unwrap_or((rest, ""));
            if !valid_name(name) {
                return Err(at(format!("invalid metric name {name:?}")));
            }
            let idx = match families.iter().position(|f| f.name == name) {
                Some(i) => i,
                None => {
                    families.push(TextFamily {
                        name: name.to_string(),
                        help: None,
                        kind: MetricType::Unknown,
                        samples: Vec::new(),
                    });
                    families.len() - 1
                }
            };
            let fam = &mut families[idx];
            if kw == "HELP" {
                if fam.help.is_some() {
                    return Err(at(format!("second HELP line for {name}")));
                }
                // expfmt leaves an empty HELP unset, so the default text applies.
                let text = unescape_help(arg);
                fam.help = (!text.is_empty()).then_some(text);
            } else {
                if !fam.samples.is_empty() {
                    return Err(at(format!("TYPE line for {name} after its samples")));
                }
                fam.kind = match arg.trim() {
                    "counter" => MetricType::Counter,
                    "gauge" => MetricType::Gauge,
                    "histogram" => MetricType::Histogram,
                    "summary" => MetricType::Summary,
                    "untyped" => MetricType::Unknown,
                    other => return Err(at(format!("unknown metric type {other:?}"))),
                };
            }
            continue;
        }
        let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
        let sample_name = &line[..name_end];
        if !valid_name(sample_name) {
            return Err(at(format!("invalid metric name {sample_name:?}")));
        }
        let mut rest = &line[name_end..];
        let mut pairs = Vec::new();
        if rest.starts_with('{') {
            let (p, r) = parse_labels(rest).map_err(at)?;
            pairs = p;
            rest = r;
        }
        let mut fields = rest.split_ascii_whitespace();
        let value = fields
            .next()
            .and_then(parse_value)
            .ok_or_else(|| at("missing or invalid sample value".into()))?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>()
                .map_err(|_| at(format!("invalid timestamp {ts:?}")))?;
            has_timestamps = true;
        }
        if fields.next().is_some() {
            return Err(at("trailing text after the sample".into()));
        }
        let fam_name = family_of(sample_name, &families).to_string();
        if fam_name != sample_name {
            pairs.push((METRIC_NAME.to_string(), sample_name.to_string()));
        }
        let labels = Labels::from_pairs(pairs);
        let idx = match families.iter().position(|f| f.name == fam_name) {
            Some(i) => i,
            None => {
                families.push(TextFamily {
                    name: fam_name.clone(),
                    help: None,
                    kind: MetricType::Unknown,
                    samples: Vec::new(),
                });
                families.len() - 1
            }
        };
        families[idx].samples.push((labels, value));
    }
    families.retain(|f| !f.samples.is_empty());
    Ok((families, has_timestamps))
}

pub(crate) struct TextFile {
    dir: PathBuf,
    buf: String,
}

impl TextFile {
    pub(crate) fn new(p: &super::HostPaths) -> TextFile {
        TextFile {
            dir: p.rootfs.join("var/lib/prometheus/node-exporter"),
            buf: String::new(),
        }
    }

    fn process(&mut self, path: &Path) -> Result<(Vec<TextFamily>, f64), String> {
        read_into(path, &mut self.buf).map_err(|e| e.to_string())?;
        let (families, timestamps) = parse_text(&self.buf)?;
        if timestamps {
            return Err("unsupported client-side timestamps".into());
        }
        let mtime = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(|e| e.to_string())?
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        Ok((families, mtime))
    }
}

impl Source for TextFile {
    fn name(&self) -> &'static str {
        "textfile"
    }

    fn update(&mut self, out: &mut Batch) -> Outcome {
        let mut errored = false;
        let mut files: Vec<(String, PathBuf)> = Vec::new();
        match std::fs::read_dir(&self.dir) {
            Ok(entries) => {
                for e in entries.flatten() {
                    let Some(name) = e.file_name().to_str().map(str::to_string) else {
                        continue;
                    };
                    if name.ends_with(".prom") {
                        files.push((name, e.path()));
                    }
                }
            }
            Err(e) => {
                tracing::debug!(dir = %self.dir.display(), error = %e, "Textfile directory is unreadable.");
                errored = true;
            }
        }
        files.sort();
        let start = out.families.len();
        let mut mtimes: Vec<(String, f64)> = Vec::new();
        // (family name, files it came from), for node_exporter's default HELP text.
        let mut sources: Vec<(String, Vec<String>)> = Vec::new();
        let mut parsed: Vec<TextFamily> = Vec::new();
        for (name, path) in files {
            match self.process(&path) {
                Ok((families, mtime)) => {
                    let shown = path.to_string_lossy().into_owned();
                    for f in families {
                        match sources.iter_mut().find(|(n, _)| *n == f.name) {
                            Some((_, list)) => list.push(shown.clone()),
                            None => sources.push((f.name.clone(), vec![shown.clone()])),
                        }
                        parsed.push(f);
                    }
                    mtimes.push((name, mtime));
                }
                Err(e) => {
                    tracing::debug!(file = %path.display(), error = %e, "Skipping textfile.");
                    errored = true;
                }
            }
        }
        for f in parsed {
            let help = f.help.clone().unwrap_or_else(|| {
                let list = sources
                    .iter()
                    .find(|(n, _)| *n == f.name)
                    .map(|(_, l)| l.join(", "))
                    .unwrap_or_default();
                format!("Metric read from {list}")
            });
            // client_golang's registry refuses a family whose HELP or TYPE disagrees
            // with the same family from an earlier file: those samples are dropped.
            if let Some(existing) = out.families[start..].iter().find(|e| e.name == f.name)
                && (existing.help != help || existing.kind != f.kind)
            {
                tracing::debug!(family = %f.name, "Textfile family disagrees with an earlier file; dropped.");
                continue;
            }
            let fam = out.family_since(start, &f.name, &help, f.kind);
            fam.samples.extend(f.samples);
        }
        if !mtimes.is_empty() {
            let f = out.family_since(
                start,
                "node_textfile_mtime_seconds",
                "Unixtime mtime of textfiles successfully read.",
                MetricType::Gauge,
            );
            for (file, t) in mtimes {
                f.push(label1("file", &file), t);
            }
        }
        out.scalar(
            "node_textfile_scrape_error",
            "1 if there was an error opening or reading a file, 0 otherwise",
            MetricType::Gauge,
            if errored { 1.0 } else { 0.0 },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const APT: &str = r#"# HELP apt_upgrades_pending Apt packages pending updates by origin.
# TYPE apt_upgrades_pending gauge
apt_upgrades_pending{origin="Debian:bookworm/stable",arch="arm64"} 3
# TYPE job_seconds histogram
job_seconds_bucket{le="1"} 2
job_seconds_bucket{le="+Inf"} 3
job_seconds_sum 4.5
job_seconds_count 3
node_reboot_required 0
weird{path="C:\\x \"q\"\n"} NaN
"#;

    #[test]
    fn text_files_parse_into_typed_families() {
        let (fams, ts) = parse_text(APT).unwrap();
        assert!(!ts);
        assert_eq!(fams.len(), 4);
        assert_eq!(fams[0].name, "apt_upgrades_pending");
        assert_eq!(fams[0].kind, MetricType::Gauge);
        assert_eq!(fams[0].samples[0].0.get("arch"), Some("arm64"));
        assert_eq!(fams[1].kind, MetricType::Histogram);
        assert_eq!(fams[1].samples.len(), 4);
        assert_eq!(fams[1].samples[1].0.get("le"), Some("+Inf"));
        assert_eq!(
            fams[1].samples[3].0.get(METRIC_NAME),
            Some("job_seconds_count")
        );
        assert_eq!(fams[2].kind, MetricType::Unknown);
        assert_eq!(fams[3].samples[0].0.get("path"), Some("C:\\x \"q\"\n"));
        assert!(fams[3].samples[0].1.is_nan());
    }

    #[test]
    fn broken_files_and_timestamps_are_reported() {
        assert!(parse_text("x{a=\"b} 1\n").is_err());
        assert!(parse_text("x 1 2 3\n").is_err());
        assert!(parse_text("x abc\n").is_err());
        assert!(parse_text("# TYPE x bogus\n").is_err());
        assert!(parse_text("x 1\n# TYPE x gauge\n").is_err());
        assert!(parse_text("1x 1\n").is_err());
        assert!(parse_text("x 1 1700000000000\n").unwrap().1);
    }

    #[test]
    fn a_textfile_directory_yields_metrics_mtimes_and_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let tf = dir.path().join("var/lib/prometheus/node-exporter");
        std::fs::create_dir_all(&tf).unwrap();
        std::fs::write(tf.join("apt.prom"), APT).unwrap();
        std::fs::write(tf.join("notes.txt"), "ignored").unwrap();
        let mut c = TextFile::new(&super::super::HostPaths {
            rootfs: dir.path().to_path_buf(),
            ..Default::default()
        });
        let mut b = Batch::default();
        c.update(&mut b).unwrap();
        assert_eq!(
            b.get("node_textfile_scrape_error").unwrap().samples[0].1,
            0.0
        );
        assert!(b.get("apt_upgrades_pending").is_some());
        let m = &b.get("node_textfile_mtime_seconds").unwrap().samples[0];
        assert_eq!(m.0.get("file"), Some("apt.prom"));
        assert!(
            b.get("node_reboot_required")
                .unwrap()
                .help
                .starts_with("Metric read from ")
        );

        // Same family, different HELP in a later file: dropped, as client_golang does.
        std::fs::write(
            tf.join("b.prom"),
            "# HELP apt_upgrades_pending Other text.\napt_upgrades_pending{origin=\"x\"} 1\n",
        )
        .unwrap();
        let mut b = Batch::default();
        c.update(&mut b).unwrap();
        assert_eq!(b.get("apt_upgrades_pending").unwrap().samples.len(), 1);

        std::fs::write(tf.join("bad.prom"), "x{ 1\n").unwrap();
        let mut b = Batch::default();
        c.update(&mut b).unwrap();
        assert_eq!(
            b.get("node_textfile_scrape_error").unwrap().samples[0].1,
            1.0
        );
        assert!(b.get("apt_upgrades_pending").is_some());
    }

    #[test]
    fn a_missing_directory_sets_the_error_flag() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = TextFile::new(&super::super::HostPaths {
            rootfs: dir.path().to_path_buf(),
            ..Default::default()
        });
        let mut b = Batch::default();
        c.update(&mut b).unwrap();
        assert_eq!(
            b.get("node_textfile_scrape_error").unwrap().samples[0].1,
            1.0
        );
    }
}
