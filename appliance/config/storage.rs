//! Storage limits in the config: `storage.budget` (bytes as a number, a size string such
//! as `"2GiB"` or `"500MB"`, or `"auto"`), parsed while deserializing so that a bad value
//! is reported with its key and line like every other.

use serde::{Deserialize, Deserializer};

/// `storage.budget`: how many bytes the partition files may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetConfig {
    /// A share of the free space at the first start, remembered in the index.
    Auto,
    Bytes(u64),
}

impl BudgetConfig {
    pub fn to_store(self) -> crate::store::Budget {
        match self {
            BudgetConfig::Auto => crate::store::Budget::Auto,
            BudgetConfig::Bytes(b) => crate::store::Budget::Bytes(b),
        }
    }
}

/// Parses `"auto"` or a size: a number with an optional unit, B, KB/MB/GB/TB (powers of
/// 1000) or KiB/MiB/GiB/TiB (powers of 1024), case-insensitive; zero is refused.
pub fn parse_budget(s: &str) -> Result<BudgetConfig, String> {
    let t = s.trim();
    if t.eq_ignore_ascii_case("auto") {
        return Ok(BudgetConfig::Auto);
    }
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let num: f64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size; write e.g. \"2GiB\", \"500MB\" or \"auto\""))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        u => {
            return Err(format!(
                "unknown size unit {u:?}; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB"
            ));
        }
    };
    let bytes = num * mult as f64;
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("{s:?}: the budget must be at least 1 byte"));
    }
    Ok(BudgetConfig::Bytes(bytes as u64))
}

impl<'de> Deserialize<'de> for BudgetConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i64),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) if n >= 1 => Ok(BudgetConfig::Bytes(n as u64)),
            Raw::Int(n) => Err(serde::de::Error::custom(format!(
                "the budget must be at least 1 byte, got {n}"
            ))),
            Raw::Str(s) => parse_budget(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// `storage.shares`: how `storage.budget` is split between the raw samples, the 5 m and
/// 1 h rollup tiers and the log store (reserved; no logs are stored yet). Each share is
/// between 0 and 1 and together they are at most 1.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "RawShares")]
pub struct SharesConfig(pub crate::store::Shares);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShares {
    raw: f64,
    #[serde(rename = "5m")]
    m5: f64,
    #[serde(rename = "1h")]
    h1: f64,
    logs: f64,
}

impl TryFrom<RawShares> for SharesConfig {
    type Error = String;
    fn try_from(r: RawShares) -> Result<Self, String> {
        for (k, v) in [("raw", r.raw), ("5m", r.m5), ("1h", r.h1), ("logs", r.logs)] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!("share {k} = {v} must be between 0 and 1"));
            }
        }
        let sum = r.raw + r.m5 + r.h1 + r.logs;
        if sum > 1.0 + 1e-9 {
            return Err(format!("the shares add up to {sum}, more than 1"));
        }
        Ok(SharesConfig(crate::store::Shares {
            raw: r.raw,
            m5: r.m5,
            h1: r.h1,
            logs: r.logs,
        }))
    }
}

/// `storage.tier_max_age`: optional maximum ages of the rollup tiers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierMaxAge {
    #[serde(rename = "5m", default)]
    pub m5: Option<super::ConfigDuration>,
    #[serde(rename = "1h", default)]
    pub h1: Option<super::ConfigDuration>,
}

impl TierMaxAge {
    pub fn to_store(self) -> [Option<std::time::Duration>; 2] {
        [self.m5.map(|d| d.0), self.h1.map(|d| d.0)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_decimal_and_binary_units() {
        for (s, want) in [
            ("auto", BudgetConfig::Auto),
            ("AUTO", BudgetConfig::Auto),
            ("1", BudgetConfig::Bytes(1)),
            ("500MB", BudgetConfig::Bytes(500_000_000)),
            ("2GiB", BudgetConfig::Bytes(2 << 30)),
            ("1.5 KiB", BudgetConfig::Bytes(1536)),
            ("3tb", BudgetConfig::Bytes(3_000_000_000_000)),
        ] {
            assert_eq!(parse_budget(s), Ok(want), "{s}");
        }
        for bad in ["", "0", "0GiB", "2 parsecs", "GiB", "-1MB", "1e3"] {
            assert!(parse_budget(bad).is_err(), "{bad}");
        }
    }
}
