//! Alertmanager's matcher syntax for routes, inhibit rules, silences and the CLI:
//! `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`; the value may be
//! left unquoted when it has no spaces, commas or quotes (`severity=critical`).
//! Regexes are anchored, and a missing label matches as the empty string, as in
//! Alertmanager and Prometheus.

use crate::model::{MatchOp, Matcher};
use std::collections::BTreeMap;

/// Parses one matcher; the error says what is wrong with the text.
pub fn parse_matcher(text: &str) -> Result<Matcher, String> {
    let t = text.trim();
    let name_end = t
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .ok_or_else(|| format!("matcher {text:?} has no operator (=, !=, =~, !~)"))?;
    let name = &t[..name_end];
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("matcher {text:?} does not start with a label name"));
    }
    let rest = t[name_end..].trim_start();
    let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
        (MatchOp::Regex, v)
    } else if let Some(v) = rest.strip_prefix("!~") {
        (MatchOp::NotRegex, v)
    } else if let Some(v) = rest.strip_prefix("!=") {
        (MatchOp::NotEqual, v)
    } else if let Some(v) = rest.strip_prefix('=') {
        (MatchOp::Equal, v)
    } else {
        return Err(format!(
            "matcher {text:?}: expected =, !=, =~ or !~ after {name:?}"
        ));
    };
    let value = value.trim();
    let value = if let Some(inner) = value.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or_else(|| format!("matcher {text:?}: unterminated quoted value"))?;
        unescape(inner).ok_or_else(|| format!("matcher {text:?}: bad escape in the value"))?
    } else {
        if value.contains(['"', ',', ' ']) {
            return Err(format!(
                "matcher {text:?}: quote a value that holds spaces, commas or quotes"
            ));
        }
        value.to_string()
    };
    Matcher::new(op, name, value).map_err(|e| format!("matcher {text:?}: {e}"))
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                c @ ('\\' | '"') => out.push(c),
                // Regex escapes such as `\d` stay as written.
                c => {
                    out.push('\\');
                    out.push(c);
                }
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

/// Whether every matcher matches the label map.
pub fn all_match(matchers: &[Matcher], labels: &BTreeMap<String, String>) -> bool {
    matchers
        .iter()
        .all(|m| m.matches(labels.get(&m.name).map_or("", String::as_str)))
}

/// A matcher written back in the syntax [`parse_matcher`] reads.
pub fn display(m: &Matcher) -> String {
    format!("{}{}{:?}", m.name, m.op.as_str(), m.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn matchers_parse_in_alertmanager_syntax() {
        let m = parse_matcher(r#"severity="critical""#).unwrap();
        assert_eq!(
            (m.name.as_str(), m.op, m.value.as_str()),
            ("severity", MatchOp::Equal, "critical")
        );
        let m = parse_matcher("instance=~pi-.*").unwrap();
        assert_eq!(m.op, MatchOp::Regex);
        assert!(m.matches("pi-1") && !m.matches("xpi-1"));
        let m = parse_matcher(r#"job != "node""#).unwrap();
        assert_eq!(m.op, MatchOp::NotEqual);
        let m = parse_matcher(r#"a!~"x\d+""#).unwrap();
        assert_eq!(m.value, r"x\d+");
        assert!(display(&m).starts_with("a!~"));
    }

    #[test]
    fn bad_matchers_are_refused_with_the_reason() {
        for bad in ["severity", "=x", "a", r#"a="x"#, "a=~(", "a=b c"] {
            let e = parse_matcher(bad);
            assert!(e.is_err(), "{bad} parsed: {e:?}");
        }
        assert!(
            parse_matcher("a=~(")
                .unwrap_err()
                .contains("regular expression")
        );
    }

    #[test]
    fn a_missing_label_matches_as_empty() {
        let ms = [
            parse_matcher("severity=critical").unwrap(),
            parse_matcher(r#"team="""#).unwrap(),
        ];
        assert!(all_match(&ms, &labels(&[("severity", "critical")])));
        assert!(!all_match(
            &ms,
            &labels(&[("severity", "critical"), ("team", "x")])
        ));
    }
}
