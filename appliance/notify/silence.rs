//! Silences: label matchers that mute matching alerts between `startsAt` and `endsAt`,
//! with Alertmanager's API v2 shapes (`/api/v2/silences`, `/api/v2/silence/{id}`) so that
//! `amtool`-style clients and Picket's own `picket silence` work. Kept in the store's
//! `state` table (`notify/silence\0ID` → JSON), so they survive restarts; expired ones
//! are kept for five days (Alertmanager's default retention), then dropped.

use super::matcher::all_match;
use crate::model::{MatchOp, Matcher};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;

pub const SILENCE_PREFIX: &str = "notify/silence\u{0}";
const RETENTION_MS: i64 = 5 * 24 * 3600 * 1000;

/// One matcher as Alertmanager's API writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SilenceMatcher {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl SilenceMatcher {
    pub fn from_matcher(m: &Matcher) -> SilenceMatcher {
        SilenceMatcher {
            name: m.name.clone(),
            value: m.value.clone(),
            is_regex: matches!(m.op, MatchOp::Regex | MatchOp::NotRegex),
            is_equal: matches!(m.op, MatchOp::Equal | MatchOp::Regex),
        }
    }

    fn to_matcher(&self) -> Result<Matcher, String> {
        let op = match (self.is_regex, self.is_equal) {
            (false, true) => MatchOp::Equal,
            (false, false) => MatchOp::NotEqual,
            (true, true) => MatchOp::Regex,
            (true, false) => MatchOp::NotRegex,
        };
        Matcher::new(op, &self.name, &self.value).map_err(|e| e.to_string())
    }
}

/// A silence. Times are ms since the epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<SilenceMatcher>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub updated_at: i64,
    pub created_by: String,
    pub comment: String,
}

impl Silence {
    /// `active`, `pending` (starts later) or `expired`.
    pub fn state(&self, now_ms: i64) -> &'static str {
        if now_ms < self.starts_at {
            "pending"
        } else if now_ms < self.ends_at {
            "active"
        } else {
            "expired"
        }
    }
}

pub struct Silences {
    store: Store,
    list: Mutex<Vec<(Silence, Vec<Matcher>)>>,
}

fn random_id() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok();
    if !ok {
        // No /dev/urandom: time and address bits are unique enough for a local id.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b = (t ^ (&b as *const _ as u128)).to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

impl Silences {
    /// Loads the silences saved by earlier runs.
    pub fn open(store: Store) -> Silences {
        let mut list = Vec::new();
        match store.states_with_prefix(SILENCE_PREFIX) {
            Ok(entries) => {
                for (k, v) in entries {
                    match serde_json::from_slice::<Silence>(&v)
                        .map_err(|e| e.to_string())
                        .and_then(|s| {
                            let ms = s
                                .matchers
                                .iter()
                                .map(SilenceMatcher::to_matcher)
                                .collect::<Result<Vec<_>, _>>()?;
                            Ok((s, ms))
                        }) {
                        Ok(s) => list.push(s),
                        Err(e) => {
                            tracing::warn!(key = %k.replace('\u{0}', "/"), error = %e, "A saved silence is unreadable; it is ignored.")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "Cannot read saved silences."),
        }
        Silences {
            store,
            list: Mutex::new(list),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Silence, Vec<Matcher>)>> {
        self.list.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, s: &Silence) -> Result<(), String> {
        let bytes = serde_json::to_vec(s).map_err(|e| e.to_string())?;
        self.store
            .put_states([(format!("{SILENCE_PREFIX}{}", s.id), Some(bytes))])
            .map_err(|e| format!("cannot save the silence: {e}"))
    }

    /// Creates a silence, or replaces the one with the same id (an update). Returns the
    /// id. Refuses silences without a matcher that needs a label to be set (they would
    /// mute everything), with an end not after their start, or an unknown id.
    pub fn upsert(&self, mut s: Silence, now_ms: i64) -> Result<String, String> {
        if s.matchers.is_empty() {
            return Err("a silence needs at least one matcher".into());
        }
        let matchers = s
            .matchers
            .iter()
            .map(SilenceMatcher::to_matcher)
            .collect::<Result<Vec<_>, _>>()?;
        if matchers.iter().all(Matcher::matches_empty) {
            return Err("at least one matcher must not match the empty string".into());
        }
        if s.ends_at <= s.starts_at {
            return Err("endsAt must be after startsAt".into());
        }
        if s.ends_at <= now_ms {
            return Err("endsAt is in the past".into());
        }
        let mut list = self.lock();
        if s.id.is_empty() {
            s.id = random_id();
        } else if !list.iter().any(|(x, _)| x.id == s.id) {
            return Err(format!("silence {} not found", s.id));
        }
        // A start in the past means now (Alertmanager does the same).
        s.starts_at = s.starts_at.max(now_ms);
        s.updated_at = now_ms;
        self.save(&s)?;
        list.retain(|(x, _)| x.id != s.id);
        let id = s.id.clone();
        list.push((s, matchers));
        Ok(id)
    }

    /// Expires a silence now (Alertmanager's DELETE). Errors when it does not exist or
    /// has already expired.
    pub fn expire(&self, id: &str, now_ms: i64) -> Result<(), String> {
        let mut list = self.lock();
        let Some((s, _)) = list.iter_mut().find(|(s, _)| s.id == id) else {
            return Err(format!("silence {id} not found"));
        };
        if s.state(now_ms) == "expired" {
            return Err(format!("silence {id} already expired"));
        }
        let mut updated = s.clone();
        if updated.starts_at > now_ms {
            updated.starts_at = now_ms;
        }
        updated.ends_at = now_ms;
        updated.updated_at = now_ms;
        self.save(&updated)?;
        *s = updated;
        Ok(())
    }

    /// Every silence, newest first; drops (and deletes) those expired longer than the
    /// retention.
    pub fn list(&self, now_ms: i64) -> Vec<Silence> {
        let mut list = self.lock();
        let old: Vec<String> = list
            .iter()
            .filter(|(s, _)| s.ends_at + RETENTION_MS < now_ms)
            .map(|(s, _)| format!("{SILENCE_PREFIX}{}", s.id))
            .collect();
        if !old.is_empty()
            && self
                .store
                .put_states(old.iter().map(|k| (k.as_str(), None::<&[u8]>)))
                .is_ok()
        {
            list.retain(|(s, _)| s.ends_at + RETENTION_MS >= now_ms);
        }
        let mut out: Vec<Silence> = list.iter().map(|(s, _)| s.clone()).collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.updated_at));
        out
    }

    pub fn get(&self, id: &str) -> Option<Silence> {
        self.lock()
            .iter()
            .find(|(s, _)| s.id == id)
            .map(|(s, _)| s.clone())
    }

    /// The id of an active silence muting these labels, if any.
    pub fn muted_by(&self, labels: &BTreeMap<String, String>, now_ms: i64) -> Option<String> {
        self.lock()
            .iter()
            .find(|(s, ms)| s.state(now_ms) == "active" && all_match(ms, labels))
            .map(|(s, _)| s.id.clone())
    }

    /// Active silences (for `picket_silences`).
    pub fn count_by_state(&self, now_ms: i64) -> [(&'static str, usize); 3] {
        let list = self.lock();
        let n = |st: &str| list.iter().filter(|(s, _)| s.state(now_ms) == st).count();
        [
            ("active", n("active")),
            ("pending", n("pending")),
            ("expired", n("expired")),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn silence(m: &str, start: i64, end: i64) -> Silence {
        Silence {
            id: String::new(),
            matchers: vec![SilenceMatcher::from_matcher(
                &super::super::matcher::parse_matcher(m).unwrap(),
            )],
            starts_at: start,
            ends_at: end,
            updated_at: 0,
            created_by: "me".into(),
            comment: "maintenance".into(),
        }
    }

    #[test]
    fn silences_mute_while_active_survive_restarts_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_for_test(dir.path());
        let s = Silences::open(store.clone());
        let labels: BTreeMap<String, String> =
            [("alertname".to_string(), "Hot".to_string())].into();
        let id = s
            .upsert(silence("alertname=Hot", 1_000, 5_000), 1_000)
            .unwrap();
        assert_eq!(s.muted_by(&labels, 2_000), Some(id.clone()));
        assert_eq!(s.muted_by(&labels, 5_000), None, "ends at endsAt");
        let other: BTreeMap<String, String> =
            [("alertname".to_string(), "Cold".to_string())].into();
        assert_eq!(s.muted_by(&other, 2_000), None);
        drop(s);
        let s = Silences::open(store.clone());
        assert_eq!(s.muted_by(&labels, 2_000), Some(id.clone()));
        s.expire(&id, 3_000).unwrap();
        assert_eq!(s.muted_by(&labels, 3_500), None);
        assert!(
            s.expire(&id, 3_600)
                .unwrap_err()
                .contains("already expired")
        );
        assert_eq!(s.get(&id).unwrap().state(3_600), "expired");
        // Expired silences go after the retention.
        assert_eq!(s.list(3_000 + RETENTION_MS).len(), 1);
        assert!(s.list(3_001 + RETENTION_MS).is_empty());
        store.close().unwrap();
    }

    #[test]
    fn silences_that_would_mute_everything_or_are_empty_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let s = Silences::open(Store::open_for_test(dir.path()));
        assert!(
            s.upsert(silence(r#"a=~".*""#, 0, 10), 0)
                .unwrap_err()
                .contains("empty string")
        );
        assert!(
            s.upsert(silence("a=b", 10, 10), 0)
                .unwrap_err()
                .contains("after")
        );
        let mut none = silence("a=b", 0, 10);
        none.matchers.clear();
        assert!(s.upsert(none, 0).is_err());
        let mut unknown = silence("a=b", 0, 10);
        unknown.id = "nope".into();
        assert!(s.upsert(unknown, 0).unwrap_err().contains("not found"));
    }
}
