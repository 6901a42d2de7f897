//! One rule group at run time: its rules in file order, evaluated together at one
//! timestamp (Prometheus `rules/group.go`, `Group.Eval`), and the loop that runs it on its
//! interval at aligned times.
//!
//! Per evaluation, for each rule in order: run the query at `ts - query_offset`, turn the
//! result into output series (recording rules: renamed and relabelled; alerting rules:
//! the state machine's `ALERTS`/`ALERTS_FOR_STATE`), write them through ingest at once (so
//! later rules of the group see them), and write a staleness marker for every series the
//! rule produced last time and not this time. Alert state that changed is saved in the
//! store's `state` table.

use super::alerting::{Alert, AlertState, AlertingRule, StateSignature};
use super::file::{Rule, RuleGroup, RuleKind};
use super::template::QuerySample;
use crate::ingest::Ingest;
use crate::model::{Labels, METRIC_NAME, Sample, stale_nan};
use crate::query::promql::eval::{self, EngineOptions, InstantSample, Value};
use crate::query::promql::{self, Expr};
use crate::store::Store;
use std::collections::{BTreeMap, HashSet};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// What a group evaluation needs from the rest of the appliance.
pub struct RuleContext {
    pub store: Store,
    pub ingest: Ingest,
    pub engine: EngineOptions,
    pub external_labels: BTreeMap<String, String>,
    pub external_url: String,
    /// Where alerts go after each evaluation (the notifier); None: nowhere.
    pub notify: Option<AlertSink>,
    /// Prometheus' `--rules.alert.resend-delay`.
    pub resend_delay_ms: i64,
}

/// Takes the alerts one group evaluation has to send.
pub type AlertSink = std::sync::Arc<dyn Fn(Vec<crate::notify::Alert>) + Send + Sync>;

/// Prometheus' rule health values (`rules/rule.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Ok,
    Err,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// The last evaluation of a rule, for the API.
#[derive(Debug, Clone)]
pub struct RuleStatus {
    pub health: Health,
    pub last_error: String,
    /// ms since the epoch; 0 = never evaluated.
    pub last_evaluation_ms: i64,
    pub evaluation_seconds: f64,
}

pub enum RuleState {
    Recording,
    Alerting(AlertingRule),
}

/// A rule with its run-time state.
pub struct RuleEntry {
    pub name: String,
    pub query: String,
    expr: Expr,
    pub labels: Vec<(String, String)>,
    /// Key of the alert state in the store (alerting rules).
    state_key: String,
    state: Mutex<RuleState>,
    status: Mutex<RuleStatus>,
    /// Output series of the previous evaluation (for staleness markers).
    previous: Mutex<HashSet<Labels>>,
    /// What was last saved of the alert state.
    saved: Mutex<StateSignature>,
}

/// A read-only view of a rule for the API.
pub struct RuleView {
    pub name: String,
    pub query: String,
    pub labels: Vec<(String, String)>,
    pub status: RuleStatus,
    /// Set for alerting rules.
    pub alerting: Option<AlertingView>,
}

pub struct AlertingView {
    pub state: AlertState,
    pub duration_ms: i64,
    pub keep_firing_for_ms: i64,
    pub annotations: Vec<(String, String)>,
    pub alerts: Vec<Alert>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a rule's lock is a bug; the state is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// When an alert's `ALERTS_FOR_STATE` series last had a (non-stale) sample, within the
/// outage tolerance before `now_ms`: when Picket last evaluated it active.
fn last_for_state_sample(store: &Store, alert_labels: &Labels, now_ms: i64) -> Option<i64> {
    use crate::query::SeriesReader;
    let mut matchers = vec![crate::model::Matcher::equal(
        METRIC_NAME,
        "ALERTS_FOR_STATE",
    )];
    for l in alert_labels {
        matchers.push(crate::model::Matcher::equal(
            l.name.to_string(),
            l.value.to_string(),
        ));
    }
    let series = store
        .select(
            &matchers,
            now_ms - super::alerting::OUTAGE_TOLERANCE_MS,
            now_ms,
        )
        .ok()?;
    let s = series
        .iter()
        .find(|s| s.labels.len() == alert_labels.len() + 1)?;
    let last = s.samples.last()?;
    (!crate::model::is_stale_nan(last.v)).then_some(last.t)
}

/// Prefix of alert state keys in the store.
pub const STATE_PREFIX: &str = "rules/alerts\u{0}";

pub struct Group {
    pub name: String,
    pub file: String,
    pub interval_ms: i64,
    pub query_offset_ms: i64,
    pub limit: usize,
    pub rules: Vec<RuleEntry>,
    /// (last evaluation ms, its duration in seconds).
    last: Mutex<(i64, f64)>,
    /// Evaluations of the group, and rule evaluations that failed (self-metrics).
    evaluations: std::sync::atomic::AtomicU64,
    failures: std::sync::atomic::AtomicU64,
}

impl Group {
    /// Builds the run-time group; `default_interval_ms` applies when the file sets none.
    pub fn new(def: RuleGroup, default_interval_ms: i64) -> Group {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        let rules = def
            .rules
            .into_iter()
            .map(|r: Rule| {
                let ordinal = seen.entry(r.name.clone()).or_default();
                let state_key = format!(
                    "{STATE_PREFIX}{}\u{0}{}\u{0}{}\u{0}{ordinal}",
                    def.file, def.name, r.name
                );
                *ordinal += 1;
                let state = match r.kind {
                    RuleKind::Recording => RuleState::Recording,
                    RuleKind::Alerting {
                        for_ms,
                        keep_firing_for_ms,
                        label_templates,
                        annotations,
                    } => RuleState::Alerting(AlertingRule::new(
                        r.name.clone(),
                        for_ms,
                        keep_firing_for_ms,
                        r.labels
                            .iter()
                            .cloned()
                            .zip(label_templates)
                            .map(|((k, v), t)| (k, v, t))
                            .collect(),
                        annotations,
                    )),
                };
                RuleEntry {
                    name: r.name,
                    query: r.expr_text,
                    expr: r.expr,
                    labels: r.labels,
                    state_key,
                    state: Mutex::new(state),
                    status: Mutex::new(RuleStatus {
                        health: Health::Unknown,
                        last_error: String::new(),
                        last_evaluation_ms: 0,
                        evaluation_seconds: 0.0,
                    }),
                    previous: Mutex::new(HashSet::new()),
                    saved: Mutex::new(Vec::new()),
                }
            })
            .collect();
        Group {
            name: def.name,
            file: def.file,
            interval_ms: def.interval_ms.unwrap_or(default_interval_ms).max(1),
            query_offset_ms: def.query_offset_ms,
            limit: def.limit,
            rules,
            last: Mutex::new((0, 0.0)),
            evaluations: Default::default(),
            failures: Default::default(),
        }
    }

    /// Restores the alert state saved by earlier runs. Alerts of rules that no longer
    /// exist stay in the store until their rule's key is written again; they are small.
    pub fn restore(&self, store: &Store, now_ms: i64) {
        let saved = match store.states_with_prefix(STATE_PREFIX) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, group = %self.name, "Cannot read saved alert state; alerts start inactive.");
                return;
            }
        };
        let saved: BTreeMap<String, Vec<u8>> = saved.into_iter().collect();
        for r in &self.rules {
            let Some(bytes) = saved.get(&r.state_key) else {
                continue;
            };
            match postcard::from_bytes::<Vec<Alert>>(bytes) {
                Ok(alerts) => {
                    if let RuleState::Alerting(a) = &mut *lock(&r.state) {
                        a.restore(alerts);
                        a.shift_pending_after_outage(now_ms, |labels| {
                            last_for_state_sample(store, labels, now_ms)
                        });
                        *lock(&r.saved) = a.state_signature();
                        lock(&r.previous).extend(a.active_series());
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, rule = %r.name, "Saved alert state is unreadable; the rule starts inactive.")
                }
            }
        }
    }

    /// The time of the group's evaluation at or before `now_ms`: multiples of the
    /// interval shifted by a per-group offset, so groups with the same interval do not
    /// all run at once (Prometheus `Group.EvalTimestamp`; Prometheus hashes with xxhash,
    /// we use FNV-1a, so the offsets differ from Prometheus' own).
    pub fn eval_timestamp(&self, now_ms: i64) -> i64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in self.name.bytes().chain([0xff]).chain(self.file.bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        let offset = (h % self.interval_ms as u64) as i64;
        let adj = now_ms - offset;
        adj - adj.rem_euclid(self.interval_ms) + offset
    }

    /// Evaluates every rule at `ts_ms`.
    pub fn eval(&self, ctx: &RuleContext, ts_ms: i64) {
        let started = Instant::now();
        let qts = ts_ms - self.query_offset_ms;
        let mut to_send = Vec::new();
        for rule in &self.rules {
            let t0 = Instant::now();
            let result = self.eval_rule(ctx, rule, qts, ts_ms, &mut to_send);
            let mut st = lock(&rule.status);
            st.last_evaluation_ms = ts_ms;
            st.evaluation_seconds = t0.elapsed().as_secs_f64();
            match result {
                Ok(()) => {
                    st.health = Health::Ok;
                    st.last_error.clear();
                }
                Err(e) => {
                    tracing::warn!(group = %self.name, rule = %rule.name, error = %e, "Rule evaluation failed.");
                    st.health = Health::Err;
                    st.last_error = e;
                    self.failures
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        self.evaluations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some(sink) = &ctx.notify
            && !to_send.is_empty()
        {
            sink(to_send);
        }
        *lock(&self.last) = (ts_ms, started.elapsed().as_secs_f64());
    }

    fn eval_rule(
        &self,
        ctx: &RuleContext,
        rule: &RuleEntry,
        qts: i64,
        ts_ms: i64,
        to_send: &mut Vec<crate::notify::Alert>,
    ) -> Result<(), String> {
        let vector = match eval::instant_query(&ctx.store, &rule.expr, qts, &ctx.engine) {
            Ok(Value::Vector(v)) => v,
            // Prometheus' EngineQueryFunc turns a scalar into a one-element vector.
            Ok(Value::Scalar { v, .. }) => vec![InstantSample {
                labels: Labels::empty(),
                t: qts,
                v,
            }],
            Ok(_) => return Err("rule result is not a vector or scalar".into()),
            Err(e) => return Err(e.to_string()),
        };
        let output: Vec<(Labels, Sample)> = match &mut *lock(&rule.state) {
            RuleState::Recording => {
                // Mirrors RecordingRule.Eval (rules/recording.go).
                let mut out = Vec::with_capacity(vector.len());
                let mut seen = HashSet::with_capacity(vector.len());
                for s in vector {
                    let mut b = s.labels.into_builder();
                    b.set(METRIC_NAME, &rule.name);
                    for (k, v) in &rule.labels {
                        b.set(k, v);
                    }
                    let labels = b.build();
                    if !seen.insert(labels.clone()) {
                        return Err(
                            "vector contains metrics with the same labelset after applying rule labels"
                                .into(),
                        );
                    }
                    out.push((labels, Sample { t: qts, v: s.v }));
                }
                if self.limit > 0 && out.len() > self.limit {
                    return Err(format!(
                        "exceeded limit of {} with {} series",
                        self.limit,
                        out.len()
                    ));
                }
                out
            }
            RuleState::Alerting(a) => {
                // The `query` template function, evaluated at the rule's query time
                // (Prometheus passes the same QueryFunc to the template expander).
                let query = |q: &str| -> Result<Vec<QuerySample>, String> {
                    let expr = promql::parse(q).map_err(|e| e.display_with_position(q))?;
                    match eval::instant_query(&ctx.store, &expr, qts, &ctx.engine) {
                        Ok(Value::Vector(v)) => Ok(v
                            .into_iter()
                            .map(|s| QuerySample {
                                labels: s
                                    .labels
                                    .iter()
                                    .map(|l| (l.name.to_string(), l.value.to_string()))
                                    .collect(),
                                value: s.v,
                            })
                            .collect()),
                        Ok(Value::Scalar { v, .. }) => Ok(vec![QuerySample {
                            labels: BTreeMap::new(),
                            value: v,
                        }]),
                        Ok(_) => Err("query result is not a vector or scalar".into()),
                        Err(e) => Err(e.to_string()),
                    }
                };
                let out = a.eval(
                    &vector,
                    ts_ms,
                    &ctx.external_labels,
                    &ctx.external_url,
                    Some(&query),
                );
                if let Some(e) = out.error {
                    return Err(e);
                }
                let active = a
                    .alerts()
                    .filter(|x| x.state != AlertState::Inactive)
                    .count();
                let result = if self.limit > 0 && active > self.limit {
                    // Prometheus drops every alert of the rule when it exceeds the limit.
                    a.clear();
                    Err(format!(
                        "exceeded limit of {} with {} alerts",
                        self.limit, active
                    ))
                } else {
                    Ok(())
                };
                let sig = a.state_signature();
                let mut saved = lock(&rule.saved);
                if *saved != sig {
                    let alerts = a.persisted();
                    let value = if alerts.is_empty() {
                        None
                    } else {
                        postcard::to_stdvec(&alerts).ok()
                    };
                    match ctx.store.put_states([(rule.state_key.as_str(), value)]) {
                        Ok(()) => *saved = sig,
                        Err(e) => {
                            tracing::warn!(rule = %rule.name, error = %e, "Cannot save alert state.")
                        }
                    }
                }
                result?;
                if ctx.notify.is_some() {
                    a.alerts_to_send(
                        ts_ms,
                        ctx.resend_delay_ms,
                        self.interval_ms,
                        &ctx.external_labels,
                        &ctx.external_url,
                        &rule.query,
                        to_send,
                    );
                }
                // ALERTS samples carry the query time, like Prometheus' sample(a, ts-offset).
                out.samples
                    .into_iter()
                    .map(|(l, s)| (l, Sample { t: qts, v: s.v }))
                    .collect()
            }
        };
        let current: HashSet<Labels> = output.iter().map(|(l, _)| l.clone()).collect();
        let mut series: Vec<(Labels, Vec<Sample>)> =
            output.into_iter().map(|(l, s)| (l, vec![s])).collect();
        {
            let mut prev = lock(&rule.previous);
            for gone in prev.iter().filter(|l| !current.contains(*l)) {
                series.push((
                    gone.clone(),
                    vec![Sample {
                        t: qts,
                        v: stale_nan(),
                    }],
                ));
            }
            *prev = current;
        }
        if !series.is_empty() {
            ctx.ingest
                .rule_output(series)
                .map_err(|e| format!("cannot store the rule's output: {e}"))?;
        }
        Ok(())
    }

    /// (group evaluations, failed rule evaluations) since start.
    pub fn counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.evaluations.load(Relaxed), self.failures.load(Relaxed))
    }

    /// (last evaluation ms, seconds it took).
    pub fn last_evaluation(&self) -> (i64, f64) {
        *lock(&self.last)
    }

    /// A snapshot of every rule for the API.
    pub fn view(&self) -> Vec<RuleView> {
        self.rules
            .iter()
            .map(|r| {
                let status = lock(&r.status).clone();
                let alerting = match &*lock(&r.state) {
                    RuleState::Recording => None,
                    RuleState::Alerting(a) => Some(AlertingView {
                        state: a.state(),
                        duration_ms: a.for_ms,
                        keep_firing_for_ms: a.keep_firing_for_ms,
                        annotations: a
                            .annotations
                            .iter()
                            .map(|(k, v, _)| (k.clone(), v.clone()))
                            .collect(),
                        alerts: a.alerts().cloned().collect(),
                    }),
                };
                RuleView {
                    name: r.name.clone(),
                    query: r.query.clone(),
                    labels: r.labels.clone(),
                    status,
                    alerting,
                }
            })
            .collect()
    }
}
