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
