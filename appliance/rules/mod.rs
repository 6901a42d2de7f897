//! The rules engine: Prometheus alerting and recording rules, evaluated over the store.
//!
//! It owns the rule files (`file`: parsing and the checks of `picket check rules`), the
//! alert templates (`template`), the alert state machine (`alerting`, a port of Prometheus'
//! `rules/alerting.go`), and the evaluation of groups (`group`): each group on its own
//! thread, at aligned times on its interval, rules in order, results written back through
//! ingest (so recording rules' output is visible to the rules after them), `ALERTS` and
//! `ALERTS_FOR_STATE` series with staleness markers, and alert state saved in the store's
//! index database so that a restart keeps pending alerts' progress and firing alerts firing.
//!
//! [`RuleManager`] is what the app starts and stops and what `/api/v1/rules` and
//! `/api/v1/alerts` read. After each evaluation a group hands the alerts due for sending
//! (Prometheus' `sendAlerts`: firing and resolved, resent every `resend_delay`) to the
//! [`AlertSink`]; delivering them (MQTT, webhooks, Alertmanager, GPIO) is `notify`'s job.

pub mod alerting;
pub mod file;
pub mod group;
pub mod template;

pub use file::{RuleFileError, RuleGroup};
pub use group::{AlertSink, Group, RuleContext};

use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Expands `rule_files` entries: plain paths, or globs with `*`/`?` in the file name part
/// (Prometheus uses `filepath.Glob`; globs in directory parts are not supported here).
/// A glob matching nothing is not an error, a missing plain path is (as in Prometheus).
pub fn expand_rule_files(patterns: &[String]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in patterns {
        let path = Path::new(p);
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !name.contains(['*', '?']) {
            out.push(path.to_path_buf());
            continue;
        }
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(|n| wildcard(name, n)))
            .map(|e| dir.join(e.file_name()))
            .collect();
        found.sort();
        out.extend(found);
    }
    out.dedup();
    Ok(out)
}

/// `*` and `?` matching of one path component.
fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Loads every rule file; all problems of all files are returned together.
pub fn load_rule_files(patterns: &[String]) -> Result<Vec<RuleGroup>, Vec<RuleFileError>> {
    let files = expand_rule_files(patterns).map_err(|e| {
        vec![RuleFileError {
            file: String::new(),
            line: 0,
            message: e,
        }]
    })?;
    let mut groups = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        match file::load_file(&f) {
            Ok(g) => groups.extend(g),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(errors)
    }
}

fn build_groups(
    groups: Vec<RuleGroup>,
    default_interval_ms: i64,
    store: &crate::store::Store,
    now_ms: i64,
) -> Vec<Arc<Group>> {
    groups
        .into_iter()
        .map(|g| {
            let g = Group::new(g, default_interval_ms);
            g.restore(store, now_ms);
            Arc::new(g)
        })
        .collect()
}

/// The running rule groups.
pub struct RuleManager {
    /// Replaced as a whole by [`RuleManager::reload`].
    groups: RwLock<Vec<Arc<Group>>>,
    default_interval_ms: i64,
    ctx: Arc<RuleContext>,
    threads: Mutex<Vec<(Sender<()>, JoinHandle<()>)>>,
}

impl RuleManager {
    /// Builds the groups and restores their saved alert state; nothing runs until
    /// [`RuleManager::start`].
    pub fn new(groups: Vec<RuleGroup>, default_interval_ms: i64, ctx: RuleContext) -> RuleManager {
        RuleManager::new_at(groups, default_interval_ms, ctx, now_ms())
    }

    /// [`RuleManager::new`] with the restart time given (tests use a fake clock).
    pub fn new_at(
        groups: Vec<RuleGroup>,
        default_interval_ms: i64,
        ctx: RuleContext,
        now_ms: i64,
    ) -> RuleManager {
        let groups = build_groups(groups, default_interval_ms, &ctx.store, now_ms);
        RuleManager {
            groups: RwLock::new(groups),
            default_interval_ms,
            ctx: Arc::new(ctx),
            threads: Mutex::new(Vec::new()),
        }
    }

    /// The groups now (a snapshot: a reload replaces them).
    pub fn groups(&self) -> Vec<Arc<Group>> {
        self.groups
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the rules (SIGHUP): stops the groups after their current evaluation,
    /// builds the new ones, restoring the alert state saved in the store (so alerts of
    /// rules that stay keep their state, as in Prometheus), and starts them.
    pub fn reload(&self, groups: Vec<RuleGroup>) -> std::io::Result<()> {
        self.stop();
        let new = build_groups(groups, self.default_interval_ms, &self.ctx.store, now_ms());
        *self.groups.write().unwrap_or_else(|e| e.into_inner()) = new;
        self.start()
    }

    /// Starts one evaluation thread per group.
    pub fn start(&self) -> std::io::Result<()> {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        for g in self.groups() {
            let (tx, rx) = mpsc::channel::<()>();
            let group = g.clone();
            let ctx = self.ctx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("rules-{}", g.name))
                .spawn(move || {
                    // Like Prometheus' Group.run: the first evaluation is at the first
                    // aligned time after start, then one every interval; evaluations
                    // missed because one ran long are skipped, not caught up.
                    let interval = group.interval_ms;
                    let mut next = group.eval_timestamp(now_ms()) + interval;
                    loop {
                        let mut wait = next - now_ms();
                        if wait > interval {
                            // The wall clock went back (a Pi without a real-time clock
                            // correcting itself): realign instead of waiting it out.
                            next = group.eval_timestamp(now_ms()) + interval;
                            wait = next - now_ms();
                        }
                        let stop = if wait > 0 {
                            rx.recv_timeout(Duration::from_millis(wait as u64))
                        } else {
                            rx.try_recv().map_err(|e| match e {
                                mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                                mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                            })
                        };
                        if !matches!(stop, Err(RecvTimeoutError::Timeout)) {
                            return;
                        }
                        group.eval(&ctx, next);
                        next += interval;
                        let now = now_ms();
                        if now - next >= interval {
                            let missed = (now - next) / interval;
                            tracing::warn!(group = %group.name, missed, "Rule group evaluations skipped: an evaluation took longer than the interval.");
                            next += missed * interval;
                        }
                    }
                })?;
            threads.push((tx, handle));
        }
        Ok(())
    }

    /// `picket_rule_*`: Prometheus' `prometheus_rule_*` rule-manager metrics, per group
    /// (`rule_group` = `FILE;GROUP`, as Prometheus labels them).
    pub fn collect(&self, out: &mut crate::collect::Batch) {
        use crate::model::{Labels, MetricType};
        let label =
            |g: &Group| Labels::from_pairs([("rule_group", format!("{};{}", g.file, g.name))]);
        type GroupMetric = (&'static str, &'static str, MetricType, fn(&Group) -> f64);
        let per_group: [GroupMetric; 6] = [
            (
                "picket_rule_evaluations_total",
                "Evaluations of the rule group.",
                MetricType::Counter,
                |g| g.counts().0 as f64,
            ),
            (
                "picket_rule_evaluation_failures_total",
                "Rule evaluations that failed.",
                MetricType::Counter,
                |g| g.counts().1 as f64,
            ),
            (
                "picket_rule_group_last_duration_seconds",
                "Duration of the group's last evaluation.",
                MetricType::Gauge,
                |g| g.last_evaluation().1,
            ),
            (
                "picket_rule_group_last_evaluation_timestamp_seconds",
                "When the group was last evaluated (Unix seconds).",
                MetricType::Gauge,
                |g| g.last_evaluation().0 as f64 / 1000.0,
            ),
            (
                "picket_rule_group_interval_seconds",
                "The group's evaluation interval.",
                MetricType::Gauge,
                |g| g.interval_ms as f64 / 1000.0,
            ),
            (
                "picket_rule_group_rules",
                "Rules in the group.",
                MetricType::Gauge,
                |g| g.rules.len() as f64,
            ),
        ];
        for (name, help, kind, value) in per_group {
            let fam = out.family(name, help, kind);
            for g in self.groups() {
                fam.push(label(&g), value(&g));
            }
        }
    }

    /// Stops every group after its current evaluation.
    pub fn stop(&self) {
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for (tx, _) in &threads {
            let _ = tx.send(());
        }
        for (_, h) in threads {
            let _ = h.join();
        }
    }
}

impl Drop for RuleManager {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests;
