//! Prometheus rule files (YAML, `groups:` → `rules:`), read unchanged: parsing, and the
//! checks of Prometheus' `model/rulefmt/rulefmt.go` (`Validate`) and promtool's
//! `check rules`, each reported with the file and line of the problem.
//!
//! serde_yaml_ng reports the location of syntax and type errors but keeps no positions in
//! the parsed tree, so the lines of groups, rules and their keys are found again by a small
//! scan of the block-style YAML that rule files are written in ([`LineIndex`]). For
//! flow-style YAML the scan finds nothing and errors fall back to the group's line or 1.

use super::template::Template;
use crate::model::duration::parse_duration_ms;
use crate::query::promql::{self, Expr};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// One problem in a rule file.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFileError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for RuleFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// A validated rule group.
#[derive(Debug, Clone)]
pub struct RuleGroup {
    pub name: String,
    pub file: String,
    /// Evaluation interval in ms, when the group sets one.
    pub interval_ms: Option<i64>,
    pub query_offset_ms: i64,
    /// 0 = unlimited.
    pub limit: usize,
    pub rules: Vec<Rule>,
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    /// The expression as written (what `/api/v1/rules` shows as `query`).
    pub expr_text: String,
    pub expr: Expr,
    /// Group labels overlaid with the rule's own (the rule's win).
    pub labels: Vec<(String, String)>,
    pub kind: RuleKind,
}

#[derive(Debug, Clone)]
pub enum RuleKind {
    Recording,
    Alerting {
        for_ms: i64,
        keep_firing_for_ms: i64,
        /// Parsed label value templates, in `labels` order.
        label_templates: Vec<Template>,
        annotations: Vec<(String, String, Template)>,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Vec<RawGroup>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: String,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    query_offset: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    labels: Option<BTreeMap<String, Scalar>>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    record: Option<Scalar>,
    #[serde(default)]
    alert: Option<Scalar>,
    #[serde(default)]
    expr: Option<Scalar>,
    #[serde(default, rename = "for")]
    for_: Option<String>,
    #[serde(default)]
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, Scalar>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, Scalar>>,
}

/// A YAML scalar read as a string, as Go's yaml.v3 decodes `expr: 1` or `severity: 2`
/// into string fields.
#[derive(Debug, Clone)]
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde_yaml_ng::Value;
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Scalar(s)),
            Value::Number(n) => Ok(Scalar(n.to_string())),
            Value::Bool(b) => Ok(Scalar(b.to_string())),
            Value::Null => Ok(Scalar(String::new())),
            _ => Err(serde::de::Error::custom(
                "expected a string, found a list or mapping",
            )),
        }
    }
}

/// Reads and validates a rule file; every problem found is returned.
pub fn load_file(path: &Path) -> Result<Vec<RuleGroup>, Vec<RuleFileError>> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => parse_file(&text, &name),
        Err(e) => Err(vec![RuleFileError {
            file: name,
            line: 0,
            message: format!("cannot read the file: {e}"),
        }]),
    }
}

/// Parses and validates rule file `text` named `file`.
pub fn parse_file(text: &str, file: &str) -> Result<Vec<RuleGroup>, Vec<RuleFileError>> {
    let problem = |line: usize, message: String| RuleFileError {
        file: file.to_string(),
        line,
        message,
    };
    // An empty file (or one with only comments) is a valid file with no groups.
    let raw: RawFile = if text.trim().is_empty()
        || text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
    {
        RawFile { groups: Vec::new() }
    } else {
        match serde_yaml_ng::from_str(text) {
            Ok(r) => r,
            Err(e) => {
                let line = e.location().map_or(1, |l| l.line());
                let mut msg = e.to_string();
                // The location is reported in front already.
                if let Some(i) = msg.find(" at line ") {
                    msg.truncate(i);
                }
                return Err(vec![problem(line, msg)]);
            }
        }
    };
    let lines = LineIndex::new(text);
    let mut errors = Vec::new();
    let mut groups = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (gi, g) in raw.groups.into_iter().enumerate() {
        let gline = lines.group_line(gi);
        if g.name.is_empty() {
            errors.push(problem(gline, "Groupname must not be empty".into()));
        } else if seen.insert(g.name.clone(), gi).is_some() {
            errors.push(problem(
                gline,
                format!("groupname: \"{}\" is repeated in the same file", g.name),
            ));
        }
        let gkey = |key: &str| lines.group_key_line(gi, key).unwrap_or(gline);
        let interval_ms = match &g.interval {
            None => None,
            Some(s) => match parse_duration_ms(s) {
                Ok(0) => {
                    errors.push(problem(
                        gkey("interval"),
                        format!("group \"{}\": interval must be greater than 0", g.name),
                    ));
                    None
                }
                Ok(ms) => Some(ms as i64),
                Err(e) => {
                    errors.push(problem(
                        gkey("interval"),
                        format!("group \"{}\": {e}", g.name),
                    ));
                    None
                }
            },
        };
        let query_offset_ms = match &g.query_offset {
            None => 0,
            Some(s) => parse_duration_ms(s).map(|v| v as i64).unwrap_or_else(|e| {
                errors.push(problem(
                    gkey("query_offset"),
                    format!("group \"{}\": {e}", g.name),
                ));
                0
            }),
        };
        let limit = match g.limit {
            Some(l) if l < 0 => {
                errors.push(problem(
                    gkey("limit"),
                    format!("group \"{}\": limit must not be negative", g.name),
                ));
                0
            }
            Some(l) => l as usize,
            None => 0,
        };
        let mut group_labels = Vec::new();
        for (k, v) in g.labels.unwrap_or_default() {
            if !is_valid_label_name(&k) {
                errors.push(problem(
                    gkey("labels"),
                    format!("group \"{}\": invalid label name: {k}", g.name),
                ));
            }
            group_labels.push((k, v.0));
        }
        let mut rules = Vec::new();
        for (ri, r) in g.rules.into_iter().enumerate() {
            let rline = lines.rule_line(gi, ri).unwrap_or(gline);
            let key_line = |key: &str| lines.rule_key_line(gi, ri, key).unwrap_or(rline);
            let rule_name = r
                .record
                .as_ref()
                .or(r.alert.as_ref())
                .map(|s| s.0.clone())
                .unwrap_or_default();
            let mut rule_errors = Vec::new();
            let mut fail = |line: usize, msg: String| rule_errors.push((line, msg));
            match (&r.record, &r.alert) {
                (Some(_), Some(_)) => {
                    fail(rline, "only one of 'record' and 'alert' must be set".into())
                }
                (None, None) => fail(rline, "one of 'record' or 'alert' must be set".into()),
                (Some(rec), None) if rec.0.is_empty() => {
                    fail(rline, "one of 'record' or 'alert' must be set".into())
                }
                (None, Some(a)) if a.0.is_empty() => {
                    fail(rline, "one of 'record' or 'alert' must be set".into())
                }
                _ => {}
            }
            // Block scalars (`expr: |`) end in a newline; the API shows the expression without it.
            let expr_text = r
                .expr
                .as_ref()
                .map(|s| s.0.trim_end().to_string())
                .unwrap_or_default();
            let expr = if expr_text.trim().is_empty() {
                fail(rline, "field 'expr' must be set in rule".into());
                None
            } else {
                match promql::parse(&expr_text) {
                    Ok(e) => Some(e),
                    Err(e) => {
                        fail(
                            key_line("expr"),
                            format!(
                                "could not parse expression: {}",
                                e.display_with_position(&expr_text)
                            ),
                        );
                        None
                    }
                }
            };
            let recording = r.record.is_some() && r.alert.is_none();
            if recording {
                if r.annotations.as_ref().is_some_and(|a| !a.is_empty()) {
                    fail(
                        key_line("annotations"),
                        "invalid field 'annotations' in recording rule".into(),
                    );
                }
                if r.for_.is_some() {
                    fail(
                        key_line("for"),
                        "invalid field 'for' in recording rule".into(),
                    );
                }
                if r.keep_firing_for.is_some() {
                    fail(
                        key_line("keep_firing_for"),
                        "invalid field 'keep_firing_for' in recording rule".into(),
                    );
                }
                if !is_valid_metric_name(&rule_name) && !rule_name.is_empty() {
                    fail(rline, format!("invalid recording rule name: {rule_name}"));
                }
            }
            let mut duration = |key: &str, v: &Option<String>| -> i64 {
                match v {
                    None => 0,
                    Some(s) => match parse_duration_ms(s) {
                        Ok(ms) => ms as i64,
                        Err(e) => {
                            fail(key_line(key), format!("{key}: {e}"));
                            0
                        }
                    },
                }
            };
            let for_ms = duration("for", &r.for_);
            let keep_firing_for_ms = duration("keep_firing_for", &r.keep_firing_for);
            let mut labels: BTreeMap<String, String> = group_labels.iter().cloned().collect();
            let mut label_templates = Vec::new();
            for (k, v) in r.labels.unwrap_or_default() {
                if !is_valid_label_name(&k) {
                    fail(key_line("labels"), format!("invalid label name: {k}"));
                }
                labels.insert(k, v.0);
            }
            let labels: Vec<(String, String)> = labels.into_iter().collect();
            let mut annotations = Vec::new();
            if !recording {
                // Prometheus parses alert templates with the name `__alert_<name>`.
                for (k, v) in &labels {
                    match Template::parse(v) {
                        Ok(t) => label_templates.push(t),
                        Err(e) => fail(
                            key_line("labels"),
                            format!("label {k:?}: template: __alert_{rule_name}:{e}"),
                        ),
                    }
                }
                for (k, v) in r.annotations.unwrap_or_default() {
                    if !is_valid_label_name(&k) {
                        fail(
                            key_line("annotations"),
                            format!("invalid annotation name: {k}"),
                        );
                    }
                    match Template::parse(&v.0) {
                        Ok(t) => annotations.push((k, v.0, t)),
                        Err(e) => fail(
                            key_line("annotations"),
                            format!("annotation {k:?}: template: __alert_{rule_name}:{e}"),
                        ),
                    }
                }
            }
            for (line, msg) in rule_errors.drain(..) {
                errors.push(problem(
                    line,
                    format!(
                        "group \"{}\", rule {}, \"{}\": {msg}",
                        g.name,
                        ri + 1,
                        rule_name
                    ),
                ));
            }
            if let Some(expr) = expr {
                rules.push(Rule {
                    name: rule_name,
                    expr_text,
                    expr,
                    labels,
                    kind: if recording {
                        RuleKind::Recording
                    } else {
                        RuleKind::Alerting {
                            for_ms,
                            keep_firing_for_ms,
                            label_templates,
                            annotations,
                        }
                    },
                });
            }
        }
        groups.push(RuleGroup {
            name: g.name,
            file: file.to_string(),
            interval_ms,
            query_offset_ms,
            limit,
            rules,
        });
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(errors)
    }
}

/// Label names as a PromQL selector can write them unquoted (`[a-zA-Z_][a-zA-Z0-9_]*`),
/// minus `__name__`, which rules set themselves. Prometheus 3.x would also accept quoted
/// UTF-8 names here; rule files in the wild do not use them, and a name that cannot be
/// selected without quoting is more likely a typo.
pub fn is_valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    name != "__name__"
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Metric names: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Lines of groups, rules and their keys in block-style YAML (1-based).
#[derive(Debug, Default)]
struct LineIndex {
    /// Per group: its first line, the lines of its own keys, and its rules.
    groups: Vec<GroupLines>,
}

#[derive(Debug, Default)]
struct GroupLines {
    line: usize,
    keys: Vec<(String, usize)>,
    /// Per rule: its first line and the lines of its keys.
    rules: Vec<(usize, Vec<(String, usize)>)>,
}

/// A line with a `key:` (possibly after a list dash): its indent, dash column and key.
struct KeyLine<'a> {
    line: usize,
    dash: Option<usize>,
    key_col: usize,
    key: &'a str,
}

fn key_line(line_no: usize, line: &str) -> Option<KeyLine<'_>> {
    let indent = line.len() - line.trim_start().len();
    let mut rest = &line[indent..];
    let mut dash = None;
    let mut col = indent;
    if let Some(r) = rest.strip_prefix('-')
        && (r.is_empty() || r.starts_with([' ', '\t']))
    {
        dash = Some(indent);
        let r2 = r.trim_start();
        col = line.len() - r2.len();
        rest = r2;
    }
    let end = rest.find(':')?;
    let key = &rest[..end];
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        // A bare dash line still starts an item.
        return dash.map(|d| KeyLine {
            line: line_no,
            dash: Some(d),
            key_col: col,
            key: "",
        });
    }
    let after = &rest[end + 1..];
    if !(after.is_empty() || after.starts_with([' ', '\t'])) {
        return None;
    }
    Some(KeyLine {
        line: line_no,
        dash,
        key_col: col,
        key,
    })
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let keys: Vec<KeyLine<'_>> = text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim_start().starts_with('#'))
            .filter_map(|(i, l)| key_line(i + 1, l))
            .collect();
        let mut idx = LineIndex::default();
        let Some(gpos) = keys
            .iter()
            .position(|k| k.key == "groups" && k.dash.is_none())
        else {
            return idx;
        };
        let Some(group_dash) = keys[gpos + 1..].iter().find_map(|k| k.dash) else {
            return idx;
        };
        let mut rules_dash: Option<usize> = None;
        let mut in_rules = false;
        for k in &keys[gpos + 1..] {
            if k.dash == Some(group_dash) {
                idx.groups.push(GroupLines {
                    line: k.line,
                    ..Default::default()
                });
                in_rules = false;
                rules_dash = None;
            }
            let Some(g) = idx.groups.last_mut() else {
                continue;
            };
            let group_key_col = group_dash + 2;
            if k.key_col <= group_key_col && k.dash.is_none_or(|d| d == group_dash) {
                in_rules = k.key == "rules";
                if !k.key.is_empty() {
                    g.keys.push((k.key.to_string(), k.line));
                }
                continue;
            }
            if !in_rules {
                continue;
            }
            if rules_dash.is_none() {
                rules_dash = k.dash;
            }
            if k.dash.is_some() && k.dash == rules_dash {
                g.rules.push((k.line, Vec::new()));
            }
            if let Some((_, rkeys)) = g.rules.last_mut()
                && !k.key.is_empty()
                && rkeys.iter().all(|(name, _)| name != k.key)
            {
                rkeys.push((k.key.to_string(), k.line));
            }
        }
        idx
    }

    fn group_line(&self, gi: usize) -> usize {
        self.groups.get(gi).map_or(1, |g| g.line)
    }

    fn group_key_line(&self, gi: usize, key: &str) -> Option<usize> {
        let g = self.groups.get(gi)?;
        g.keys.iter().find(|(k, _)| k == key).map(|(_, l)| *l)
    }

    fn rule_line(&self, gi: usize, ri: usize) -> Option<usize> {
        self.groups.get(gi)?.rules.get(ri).map(|r| r.0)
    }

    fn rule_key_line(&self, gi: usize, ri: usize, key: &str) -> Option<usize> {
        let r = self.groups.get(gi)?.rules.get(ri)?;
        r.1.iter().find(|(k, _)| k == key).map(|(_, l)| *l)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
groups:
  - name: node
    interval: 30s
    labels:
      team: infra
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: NodeDown
        expr: up == 0
        for: 5m
        keep_firing_for: 1m
        labels:
          severity: critical
        annotations:
          summary: "{{ $labels.instance }} is down"
  - name: other
    rules:
      - alert: Always
        expr: 1
"#;

    #[test]
    fn a_valid_file_gives_groups_and_rules_with_their_settings() {
        let groups = parse_file(GOOD, "g.yml").unwrap();
        assert_eq!(groups.len(), 2);
        let g = &groups[0];
        assert_eq!((g.name.as_str(), g.interval_ms), ("node", Some(30_000)));
        assert_eq!(g.rules.len(), 2);
        assert_eq!(g.rules[0].name, "job:up:sum");
        assert!(matches!(g.rules[0].kind, RuleKind::Recording));
        assert_eq!(
            g.rules[0].labels,
            [("team".to_string(), "infra".to_string())]
        );
        let RuleKind::Alerting {
            for_ms,
            keep_firing_for_ms,
            annotations,
            ..
        } = &g.rules[1].kind
        else {
            panic!("alerting rule expected");
        };
        assert_eq!((*for_ms, *keep_firing_for_ms), (300_000, 60_000));
        assert_eq!(annotations[0].0, "summary");
        assert_eq!(g.rules[1].labels.len(), 2);
        assert_eq!(groups[1].rules[0].expr_text, "1");
        assert_eq!(groups[1].interval_ms, None);
    }

    #[test]
    fn empty_and_comment_only_files_have_no_groups() {
        assert!(parse_file("", "e.yml").unwrap().is_empty());
        assert!(parse_file("# nothing\n", "e.yml").unwrap().is_empty());
        assert!(parse_file("groups: []\n", "e.yml").unwrap().is_empty());
    }

    fn errors(text: &str) -> Vec<(usize, String)> {
        match parse_file(text, "bad.yml") {
            Ok(_) => panic!("expected errors for:\n{text}"),
            Err(e) => e.into_iter().map(|e| (e.line, e.message)).collect(),
        }
    }

    #[test]
    fn every_check_rules_problem_is_reported_with_its_line() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: [\n",
                6,
                "did not find expected node content",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - alert: X\n        exr: up\n",
                5,
                "unknown field `exr`",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up +\n",
                5,
                "could not parse expression: 1:5: parse error: unexpected end of input",
            ),
            (
                "groups:\n  - name: a\n    rules: []\n  - name: a\n    rules: []\n",
                4,
                "groupname: \"a\" is repeated in the same file",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - record: x\n        expr: up\n        for: 5m\n",
                6,
                "invalid field 'for' in recording rule",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - record: x\n        expr: up\n        annotations:\n          a: b\n",
                6,
                "invalid field 'annotations' in recording rule",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - record: 'bad name'\n        expr: up\n",
                4,
                "invalid recording rule name: bad name",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up\n        labels:\n          bad-name: x\n",
                6,
                "invalid label name: bad-name",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up\n        labels:\n          __name__: x\n",
                6,
                "invalid label name: __name__",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up\n        annotations:\n          s: '{{ nosuch }}'\n",
                6,
                "annotation \"s\": template: __alert_X:1: function \"nosuch\" not defined",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up\n        labels:\n          s: '{{ $value '\n",
                6,
                "template: __alert_X:1: unclosed action",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - alert: X\n        record: y\n        expr: up\n",
                4,
                "only one of 'record' and 'alert' must be set",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - expr: up\n",
                4,
                "one of 'record' or 'alert' must be set",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - alert: X\n",
                4,
                "field 'expr' must be set in rule",
            ),
            (
                "groups:\n  - name: a\n    rules:\n      - alert: X\n        expr: up\n        for: 5 minutes\n",
                6,
                "for: not a valid duration string",
            ),
            (
                "groups:\n  - name: a\n    interval: 0s\n    rules: []\n",
                3,
                "interval must be greater than 0",
            ),
            ("groups:\n  - rules: []\n", 2, "Groupname must not be empty"),
        ];
        for (text, line, want) in cases {
            let errs = errors(text);
            assert!(
                errs.iter().any(|(l, m)| l == line && m.contains(want)),
                "want line {line} {want:?} in {errs:?} for:\n{text}"
            );
        }
    }

    #[test]
    fn rule_errors_name_group_rule_number_and_rule() {
        let errs = errors(
            "groups:\n  - name: g\n    rules:\n      - record: a\n        expr: up\n      - alert: B\n        expr: 'sum('\n",
        );
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].0, 7);
        assert!(
            errs[0]
                .1
                .starts_with("group \"g\", rule 2, \"B\": could not parse expression: 1:5"),
            "{}",
            errs[0].1
        );
    }

    #[test]
    fn every_problem_of_a_file_is_reported_not_only_the_first() {
        let errs = errors(
            "groups:\n  - name: g\n    rules:\n      - record: a\n        expr: up\n        for: 1m\n      - alert: B\n        expr: 'sum('\n",
        );
        assert_eq!(errs.iter().map(|e| e.0).collect::<Vec<_>>(), [6, 8]);
    }
}
