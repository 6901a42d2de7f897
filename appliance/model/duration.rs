//! Prometheus duration strings (`1h30m`, `54s321ms`, `2d`): integer amounts with units
//! `ms s m h d w y`, largest first, each unit at most once, as Prometheus'
//! `model.ParseDuration` (common/model/time.go) accepts them. Used by the config, the HTTP
//! API's `step`/`timeout` parameters and the CLI.

use std::time::Duration;

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses a Prometheus duration string into milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let invalid = || format!("not a valid duration string: {s:?}");
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err("empty duration string".to_string());
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    // Index into UNITS of the last unit seen: units must strictly decrease.
    let mut last_unit: Option<usize> = None;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == start {
            return Err(invalid());
        }
        let amount: u64 = s[start..i].parse().map_err(|_| invalid())?;
        let unit_start = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &s[unit_start..i];
        let idx = UNITS
            .iter()
            .position(|(u, _)| *u == unit)
            .ok_or_else(invalid)?;
        if last_unit.is_some_and(|l| idx <= l) {
            return Err(invalid());
        }
        last_unit = Some(idx);
        total = amount
            .checked_mul(UNITS[idx].1)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("duration out of range: {s:?}"))?;
    }
    Ok(total)
}

/// Parses a Prometheus duration string.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_duration_ms(s).map(Duration::from_millis)
}

/// Formats milliseconds the way Prometheus prints durations (`1h30m`, `0s`).
pub fn format_duration_ms(mut ms: u64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        if ms >= size {
            out.push_str(&(ms / size).to_string());
            out.push_str(unit);
            ms %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_durations_parse_to_milliseconds() {
        for (s, ms) in [
            ("0", 0),
            ("15s", 15_000),
            ("1h30m", 5_400_000),
            ("54s321ms", 54_321),
            ("2d", 172_800_000),
            ("1y", 31_536_000_000),
            ("100ms", 100),
        ] {
            assert_eq!(parse_duration_ms(s), Ok(ms), "{s}");
        }
    }

    #[test]
    fn invalid_durations_are_rejected() {
        for s in ["", "1.5h", "5", "1m1h", "1s1s", "h", "-1s", "1x", "5m "] {
            assert!(parse_duration_ms(s).is_err(), "{s}");
        }
    }

    #[test]
    fn format_round_trips() {
        for ms in [0, 1, 1500, 60_000, 5_400_000, 90_061_001] {
            assert_eq!(parse_duration_ms(&format_duration_ms(ms)), Ok(ms));
        }
    }
}
