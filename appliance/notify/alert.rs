//! The alert as it leaves the rule engine and travels to receivers: Prometheus'
//! `notifier.Alert` (labels with the external labels added, annotations, `startsAt`,
//! `endsAt`, `generatorURL`), plus its fingerprint, Alertmanager's hash of the label set.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One alert. Times are ms since the epoch; `ends_at` 0 means unknown (still firing).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub generator_url: String,
}

impl Alert {
    /// Alertmanager's rule: resolved once `endsAt` is set and not after `now`.
    pub fn resolved_at(&self, now_ms: i64) -> bool {
        self.ends_at != 0 && self.ends_at <= now_ms
    }

    pub fn fingerprint(&self) -> u64 {
        fingerprint(&self.labels)
    }

    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map_or("", String::as_str)
    }
}

/// `model.LabelSet.Fingerprint` of prometheus/common: FNV-1a 64 over the label names and
/// values in name order, each followed by the byte 0xff. Alertmanager shows it as 16 hex
/// digits, so webhook payloads carry the same fingerprints Alertmanager would.
pub fn fingerprint(labels: &BTreeMap<String, String>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    if labels.is_empty() {
        return h;
    }
    for (k, v) in labels {
        for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

pub fn fingerprint_hex(fp: u64) -> String {
    format!("{fp:016x}")
}

/// Go's `time.Time` in JSON (RFC 3339 with up to nanoseconds, UTC); 0 is Go's zero time
/// `0001-01-01T00:00:00Z`, which Alertmanager's webhook prints for an unset `endsAt`.
pub fn rfc3339(ms: i64) -> String {
    if ms == 0 {
        return "0001-01-01T00:00:00Z".into();
    }
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    if millis != 0 {
        let frac = format!("{millis:03}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Days since 1970-01-01 to (year, month, day), Howard Hinnant's algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parses RFC 3339 (`2026-01-02T03:04:05.123Z`, or with a `+hh:mm` offset) to ms.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !(b[10] == b'T' || b[10] == b't') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    let mut millis = 0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        let frac = &r[..digits];
        millis = format!("{frac:0<3}")[..3].parse::<i64>().ok()?;
        rest = &r[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o[1..3].parse::<i64>().ok()? * 60 + o[4..6].parse::<i64>().ok()?) * 60
        }
        _ => return None,
    };
    let days = days_from_civil(y, mo as u32, d as u32);
    Some(((days * 86_400 + h * 3600 + mi * 60 + se) - offset) * 1000 + millis)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_prometheus_label_set_fingerprints() {
        // model.LabelSet{"alertname": "Hot"}.Fingerprint() in prometheus/common.
        let l: BTreeMap<String, String> = [("alertname".to_string(), "Hot".to_string())].into();
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in b"alertname\xffHot\xff" {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        assert_eq!(fingerprint(&l), h);
        assert_eq!(fingerprint_hex(1), "0000000000000001");
    }

    #[test]
    fn times_print_and_parse_as_rfc3339() {
        assert_eq!(rfc3339(0), "0001-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_600_000), "2026-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_225_600_120), "2026-01-01T00:00:00.12Z");
        for ms in [1_767_225_600_000, 951_782_400_123, 1_709_164_800_001] {
            assert_eq!(parse_rfc3339(&rfc3339(ms)), Some(ms));
        }
        assert_eq!(
            parse_rfc3339("2026-01-01T01:00:00+01:00"),
            Some(1_767_225_600_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
