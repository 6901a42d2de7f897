//! Runs the scrape jobs: one manager thread keeps the set of targets (static_configs,
//! file_sd_configs and kubernetes_sd_configs, through `relabel_configs`) and one thread
//! per target scrapes it. Kubernetes discovery runs as async tasks on the app's runtime
//! (long-lived watch streams) and wakes the manager when pods change.
//!
//! Why threads and the blocking HTTP client rather than tasks: a Pi scrapes a handful of
//! targets, each scrape ends in a CPU-bound parse and a store append that would block an
//! async worker anyway, and the collectors already run this way (`app.rs`). A thread
//! costs one small stack per target.
//!
//! Stopping a target (it left discovery, or Picket is shutting down) writes staleness
//! markers for all its series, as Prometheus does on target removal, so queries stop
//! returning them at once instead of after the 5 m lookback.

use super::kubernetes;
use super::parser::Format;
use super::status::{
    ActiveTarget, DroppedTarget, Health, TargetHealth, TargetState, TargetsStatus,
};
use super::target::{
    LoopSettings, ScrapeError, ScrapeLoop, ScrapeOutput, Target, discovered, populate_discovered,
};
use crate::config::scrape::{HttpClientConfig, ScrapeConfig, StaticConfig};
use crate::ingest::Ingest;
use crate::model::Labels;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Default `refresh_interval` of file_sd_configs.
const DEFAULT_FILE_SD_REFRESH: Duration = Duration::from_secs(30);

/// Options that apply to all jobs.
#[derive(Debug, Clone, Copy)]
pub struct ManagerOptions {
    /// Most series all targets together may hold; 0 = no limit.
    pub series_limit: usize,
}

/// What wakes the manager thread.
enum Wake {
    Stop,
    /// Discovery found a change: recompute the targets.
    Discovered,
}

/// Handle on the running scraper.
pub struct ScrapeManager {
    stop: mpsc::Sender<Wake>,
    handle: JoinHandle<()>,
}

impl ScrapeManager {
    /// Starts scraping `jobs` (already validated by the config loader), publishing the
    /// targets' state in `status`. Returns `None` when there are no jobs, so an idle
    /// Picket has no scraper thread. Kubernetes discovery needs to be called from within
    /// a Tokio runtime.
    pub fn start(
        jobs: Vec<ScrapeConfig>,
        options: ManagerOptions,
        ingest: Ingest,
        status: Arc<TargetsStatus>,
    ) -> std::io::Result<Option<ScrapeManager>> {
        if jobs.is_empty() {
            return Ok(None);
        }
        let (stop, wake) = mpsc::channel::<Wake>();
        let runtime = tokio::runtime::Handle::try_current().ok();
        let notify = Mutex::new(stop.clone());
        let discovered: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
            if let Ok(n) = notify.lock() {
                let _ = n.send(Wake::Discovered);
            }
        });
        let handle = std::thread::Builder::new()
            .name("scrape-manager".into())
            .spawn(move || {
                let k8s = start_kubernetes(&jobs, runtime.as_ref(), discovered, &ingest);
                manage(jobs, options, ingest, wake, &k8s, &status);
                for (_, d) in k8s {
                    d.stop();
                }
            })?;
        Ok(Some(ScrapeManager { stop, handle }))
    }

    /// Stops every target (writing their staleness markers) and waits for them.
    pub fn stop(self) {
        let _ = self.stop.send(Wake::Stop);
        let _ = self.handle.join();
    }
}

/// A job ready to run: its HTTP client and shared loop settings.
struct Job {
    config: ScrapeConfig,
    /// The job's credentials and TLS keys; the header is built per scrape so rotated
    /// credential files are picked up.
    http: HttpClientConfig,
    client: reqwest::blocking::Client,
    /// The `Accept` header built from `scrape_protocols`.
    accept: String,
    /// Number of targets the job has now when that is above its `target_limit`, else 0:
    /// then every target fails without being scraped (Prometheus does the same).
    over_target_limit: AtomicUsize,
    settings: Arc<LoopSettings>,
}

struct Running {
    stop: mpsc::Sender<()>,
    handle: JoinHandle<()>,
    discovered: Labels,
    state: Arc<TargetState>,
}

/// Starts the Kubernetes discoveries of every job: (job index, discovery). A discovery
/// without credentials yet keeps retrying on its own; the rest of the scraper works
/// meanwhile.
fn start_kubernetes(
    jobs: &[ScrapeConfig],
    runtime: Option<&tokio::runtime::Handle>,
    changed: Arc<dyn Fn() + Send + Sync>,
    ingest: &Ingest,
) -> Vec<(usize, kubernetes::Discovery)> {
    let mut out = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        for sd in &job.kubernetes_sd_configs {
            let Some(rt) = runtime else {
                tracing::error!(job = %job.job_name, "Kubernetes discovery needs the async runtime; it is off.");
                continue;
            };
            let d = kubernetes::Discovery::start(
                sd,
                job.kubernetes_annotations,
                rt,
                changed.clone(),
                ingest,
            );
            out.push((i, d));
        }
    }
    out
}

fn manage(
    jobs: Vec<ScrapeConfig>,
    options: ManagerOptions,
    ingest: Ingest,
    wake: mpsc::Receiver<Wake>,
    k8s: &[(usize, kubernetes::Discovery)],
    status: &TargetsStatus,
) {
    // Clients are built here, on a plain thread: reqwest's blocking client must not be
    // created or dropped inside the async runtime.
    let jobs: Vec<Arc<Job>> = jobs
        .into_iter()
        .filter_map(|config| {
            let http = config.http_client();
            match build_client(&config, &http) {
                Ok(client) => Some(Arc::new(Job {
                    accept: crate::config::scrape::accept_header(&config.scrape_protocols),
                    over_target_limit: AtomicUsize::new(0),
                    settings: Arc::new(LoopSettings::from_job(&config)),
                    config,
                    http,
                    client,
                })),
                Err(e) => {
                    tracing::error!(job = %config.job_name, error = %e, "Scrape job cannot start.");
                    None
                }
            }
        })
        .collect();
    let refresh = jobs
        .iter()
        .flat_map(|j| &j.config.file_sd_configs)
        .map(|f| f.refresh_interval.map_or(DEFAULT_FILE_SD_REFRESH, |d| d.0))
        .min();
    let series = Arc::new(AtomicUsize::new(0));
    let mut running: HashMap<(usize, Target), Running> = HashMap::new();
    loop {
        let mut wanted: HashMap<(usize, Target), Labels> = HashMap::new();
        let mut dropped: Vec<DroppedTarget> = Vec::new();
        for (i, job) in jobs.iter().enumerate() {
            let mut all = groups(&job.config);
            for (_, d) in k8s.iter().filter(|(j, _)| *j == i) {
                all.extend(d.snapshot());
            }
            let keep = job.config.keep_dropped_targets.unwrap_or(0) as usize;
            let mut job_dropped = 0usize;
            for group in all {
                for address in &group.targets {
                    let labels = discovered(&job.config, address, &group.labels);
                    match populate_discovered(&job.config, labels.clone()) {
                        Ok(Some(t)) => {
                            wanted.entry((i, t)).or_insert(labels);
                        }
                        Ok(None) => {
                            job_dropped += 1;
                            if keep == 0 || job_dropped <= keep {
                                dropped.push(DroppedTarget {
                                    pool: job.config.job_name.clone(),
                                    discovered: labels,
                                });
                            }
                        }
                        Err(e) => tracing::warn!(
                            job = %job.config.job_name, target = %address, error = %e,
                            "Scrape target dropped."
                        ),
                    }
                }
            }
        }
        for (i, job) in jobs.iter().enumerate() {
            let n = wanted.keys().filter(|(j, _)| *j == i).count();
            let limit = job.config.target_limit as usize;
            let over = if limit > 0 && n > limit { n } else { 0 };
            if over > 0 && job.over_target_limit.load(Ordering::Relaxed) == 0 {
                tracing::warn!(job = %job.config.job_name, targets = n, limit, "Scrape job has more targets than its target_limit; none is scraped.");
            }
            job.over_target_limit.store(over, Ordering::Relaxed);
        }
        let gone: Vec<(usize, Target)> = running
            .keys()
            .filter(|k| !wanted.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(r) = running.remove(&key) {
                tracing::info!(job = %jobs[key.0].config.job_name, url = %key.1.url, "Scrape target removed.");
                let _ = r.stop.send(());
                let _ = r.handle.join();
            }
        }
        for (key, discovered) in wanted {
            if running.contains_key(&key) {
                continue;
            }
            let job = jobs[key.0].clone();
            let target = key.1.clone();
            let ingest = ingest.clone();
            let series = series.clone();
            let state = Arc::new(TargetState::default());
            let st = state.clone();
            let (stop, stop_rx) = mpsc::channel();
            let name = format!("scrape-{}", job.config.job_name);
            let spawned = std::thread::Builder::new().name(name).spawn(move || {
                run_target(
                    &job,
                    target,
                    &ingest,
                    stop_rx,
                    &series,
                    options.series_limit,
                    &st,
                )
            });
            match spawned {
                Ok(handle) => {
                    tracing::info!(job = %jobs[key.0].config.job_name, url = %key.1.url, "Scrape target added.");
                    running.insert(
                        key,
                        Running {
                            stop,
                            handle,
                            discovered,
                            state,
                        },
                    );
                }
                Err(e) => tracing::error!(error = %e, "Cannot start a scrape thread."),
            }
        }
        ingest.stats().scrape.set_targets(running.len());
        let active = running
            .iter()
            .map(|((i, t), r)| ActiveTarget {
                pool: jobs[*i].config.job_name.clone(),
                discovered: r.discovered.clone(),
                target: t.clone(),
                state: r.state.clone(),
            })
            .collect();
        status.replace(active, dropped);
        let woke = match refresh {
            Some(r) => wake.recv_timeout(r),
            None => wake.recv().map_err(|_| RecvTimeoutError::Disconnected),
        };
        match woke {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(Wake::Discovered) => {
                // A burst of pod events makes one pass, not one per event.
                let mut stop = false;
                while let Ok(w) = wake.try_recv() {
                    stop |= matches!(w, Wake::Stop);
                }
                if stop {
                    break;
                }
            }
            Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    // Stop all targets at once, then wait: each writes its staleness markers.
    let all: Vec<Running> = running.into_values().collect();
    for r in &all {
        let _ = r.stop.send(());
    }
    for r in all {
        let _ = r.handle.join();
    }
    ingest.stats().scrape.set_targets(0);
    status.replace(Vec::new(), Vec::new());
}

/// The target groups of a job: static ones, then those read from file_sd files now.
fn groups(job: &ScrapeConfig) -> Vec<StaticConfig> {
    let mut out = job.static_configs.clone();
    for sd in &job.file_sd_configs {
        for pattern in &sd.files {
            for path in glob(pattern) {
                match read_sd_file(&path) {
                    Ok(groups) => out.extend(groups.into_iter().map(|mut g| {
                        g.labels
                            .entry("__meta_filepath".into())
                            .or_insert_with(|| path.display().to_string());
                        g
                    })),
                    Err(e) => tracing::warn!(
                        file = %path.display(), error = %e,
                        "Cannot read a file_sd file; its targets are dropped."
                    ),
                }
            }
        }
    }
    out
}

/// A file_sd file: a list of `{targets, labels}` in JSON (`.json`) or YAML (`.yml`,
/// `.yaml`), as Prometheus' discovery/file reads them.
pub fn read_sd_file(path: &Path) -> Result<Vec<StaticConfig>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    match ext {
        "json" => serde_json::from_str(&text).map_err(|e| e.to_string()),
        "yml" | "yaml" => serde_yaml_ng::from_str(&text).map_err(|e| e.to_string()),
        _ => Err(format!(
            "unknown file_sd extension {ext:?}: use .json, .yml or .yaml"
        )),
    }
}

/// Files matching `pattern`, where only the last path component may hold `*` and `?`
/// (what Prometheus documents for file_sd: "patterns for files ... the last path segment
/// may contain a single * that matches any character sequence").
fn glob(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    if !name.contains(['*', '?']) {
        return vec![path.to_path_buf()];
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| wildcard(name.as_bytes(), n.as_bytes()))
        })
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

fn wildcard(p: &[u8], s: &[u8]) -> bool {
    match (p.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => wildcard(&p[1..], s) || (!s.is_empty() && wildcard(p, &s[1..])),
        (Some(b'?'), Some(_)) => wildcard(&p[1..], &s[1..]),
        (Some(a), Some(b)) if a == b => wildcard(&p[1..], &s[1..]),
        _ => false,
    }
}

fn build_client(
    job: &ScrapeConfig,
    http: &HttpClientConfig,
) -> Result<reqwest::blocking::Client, String> {
    let mut b = reqwest::blocking::Client::builder()
        .user_agent(concat!("Picket/", env!("CARGO_PKG_VERSION")))
        .use_rustls_tls()
        .redirect(if job.follow_redirects {
            reqwest::redirect::Policy::limited(10)
        } else {
            reqwest::redirect::Policy::none()
        });
    if !job.enable_compression {
        b = b.no_gzip();
    }
    http.apply_tls(b)?.build().map_err(|e| e.to_string())
}

/// Fetches the target into `body`; returns the Content-Type.
fn fetch(job: &Job, target: &Target, body: &mut Vec<u8>) -> Result<Option<String>, ScrapeError> {
    let mut req = job
        .client
        .get(&target.url)
        .header(reqwest::header::ACCEPT, &job.accept)
        .header(
            "X-Prometheus-Scrape-Timeout-Seconds",
            target.timeout.as_secs_f64().to_string(),
        )
        .timeout(target.timeout);
    if let Some(auth) = job.http.authorization_header().map_err(ScrapeError::Http)? {
        req = req.header(reqwest::header::AUTHORIZATION, auth);
    }
    let classify = |e: reqwest::Error| {
        if e.is_timeout() {
            ScrapeError::Timeout
        } else {
            ScrapeError::Http(error_chain(&e))
        }
    };
    let resp = req.send().map_err(classify)?;
    if !resp.status().is_success() {
        return Err(ScrapeError::Http(format!(
            "server returned HTTP status {}",
            resp.status()
        )));
    }
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    body.clear();
    let limit = job.config.body_size_limit.0;
    let read = if limit > 0 {
        resp.take(limit + 1).read_to_end(body)
    } else {
        let mut resp = resp;
        resp.read_to_end(body)
    };
    if let Err(e) = read {
        // reqwest surfaces its own errors (timeout, truncated body) through io::Error.
        let inner = e.get_ref().and_then(|i| i.downcast_ref::<reqwest::Error>());
        return Err(match inner {
            Some(re) if re.is_timeout() => ScrapeError::Timeout,
            _ if e.kind() == std::io::ErrorKind::TimedOut => ScrapeError::Timeout,
            _ => ScrapeError::Http(format!("reading the body: {e}")),
        });
    }
    if limit > 0 && body.len() as u64 > limit {
        return Err(ScrapeError::BodySizeLimit);
    }
    Ok(content_type)
}

/// An error with its causes, since reqwest's top-level message is often just
/// "error sending request".
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Where in the interval this target scrapes: a hash of its URL and labels, so targets
/// spread over the interval and keep their slot across restarts (Prometheus `offset`).
fn offset(target: &Target) -> Duration {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    target.url.hash(&mut h);
    target.labels.hash(&mut h);
    // u128 throughout: no overflow whatever interval the config holds.
    let interval = target.interval.as_nanos().max(1);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let slot = u128::from(h.finish()) % interval;
    let into = now % interval;
    let wait = (slot + interval - into) % interval;
    Duration::from_nanos(u64::try_from(wait).unwrap_or(u64::MAX))
}

fn run_target(
    job: &Job,
    target: Target,
    ingest: &Ingest,
    stop: mpsc::Receiver<()>,
    series: &AtomicUsize,
    series_limit: usize,
    state: &TargetState,
) {
    if !matches!(
        stop.recv_timeout(offset(&target)),
        Err(RecvTimeoutError::Timeout)
    ) {
        return;
    }
    let mut lp = ScrapeLoop::new(job.settings.clone(), target.labels.clone());
    let mut body = Vec::new();
    let mut next = Instant::now();
    let mut last_error: Option<String> = None;
    loop {
        let t_ms = now_ms();
        let started = Instant::now();
        let over = job.over_target_limit.load(Ordering::Relaxed);
        let fetched = if over > 0 {
            Err(ScrapeError::TargetLimit {
                got: over,
                limit: job.config.target_limit as usize,
            })
        } else {
            fetch(job, &target, &mut body)
        };
        let duration = started.elapsed();
        let before = lp.active_series();
        let budget = if series_limit == 0 {
            usize::MAX
        } else {
            series_limit.saturating_sub(series.load(Ordering::Relaxed))
        };
        let out: ScrapeOutput = match fetched {
            Ok(ct) => {
                let text = String::from_utf8_lossy(&body);
                lp.scraped(
                    &text,
                    Format::from_content_type(ct.as_deref()),
                    t_ms,
                    duration,
                    budget,
                )
            }
            Err(e) => lp.failed(e, t_ms, duration),
        };
        let after = lp.active_series();
        let _ = series.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            Some(n.saturating_sub(before).saturating_add(after))
        });
        ingest.stats().scrape.record(&out);
        if let Ok(mut h) = state.health.lock() {
            *h = TargetHealth {
                health: if out.error.is_some() {
                    Health::Down
                } else {
                    Health::Up
                },
                last_scrape_ms: t_ms,
                last_duration: duration,
                last_error: out
                    .error
                    .as_ref()
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
            };
        }
        // Only changed metadata arrives here, so a steady target copies nothing.
        if !out.metadata.is_empty()
            && let Ok(mut md) = state.metadata.lock()
        {
            md.extend(out.metadata.iter().cloned());
        }
        let now_error = out.error.as_ref().map(|e| e.to_string());
        // Log changes only: a target that stays down must not flood the journal.
        if last_error != now_error {
            match &now_error {
                Some(e) => {
                    tracing::warn!(job = %job.config.job_name, url = %target.url, error = %e, "Scrape failed.")
                }
                None => {
                    tracing::info!(job = %job.config.job_name, url = %target.url, "Scrape recovered.")
                }
            }
            last_error = now_error;
        }
        if let Err(e) = ingest.scraped(out.samples, out.metadata) {
            tracing::warn!(job = %job.config.job_name, error = %e, "Scraped samples could not be stored.");
        }
        next += target.interval;
        let now = Instant::now();
        // Skip slots a slow scrape made us miss rather than bursting.
        while next <= now {
            next += target.interval;
        }
        if !matches!(
            stop.recv_timeout(next - now),
            Err(RecvTimeoutError::Timeout)
        ) {
            break;
        }
    }
    // Give this target's series back to the global budget before they are drained.
    let held = lp.active_series();
    let _ = series.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        Some(n.saturating_sub(held))
    });
    let gone = lp.stopped(now_ms());
    if let Err(e) = ingest.scraped(gone, Vec::new()) {
        tracing::warn!(job = %job.config.job_name, error = %e, "Staleness markers could not be stored.");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_only_what_they_should() {
        let cases = [
            ("*.json", "a.json", true),
            ("*.json", "a.yml", false),
            ("t?.yml", "t1.yml", true),
            ("t?.yml", "t12.yml", false),
            ("*", "", true),
        ];
        for (p, s, want) in cases {
            assert_eq!(wildcard(p.as_bytes(), s.as_bytes()), want, "{p} {s}");
        }
    }

    #[test]
    fn file_sd_reads_json_and_yaml_target_groups() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            r#"[{"targets": ["h:1", "h:2"], "labels": {"env": "x"}}]"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.yml"),
            "- targets: ['h:3']\n  labels:\n    env: y\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("c.txt"), "ignored").unwrap();
        let job: ScrapeConfig = toml::from_str(&format!(
            "job_name = \"j\"\n[[file_sd_configs]]\nfiles = [\"{0}/*.json\", \"{0}/*.yml\"]\n",
            dir.path().display()
        ))
        .unwrap();
        let g = groups(&job);
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].targets, ["h:1", "h:2"]);
        assert_eq!(g[1].labels["env"], "y");
        assert!(g[1].labels["__meta_filepath"].ends_with("b.yml"));
        assert!(read_sd_file(&dir.path().join("c.txt")).is_err());
    }

    #[test]
    fn the_offset_falls_inside_the_interval() {
        let t = Target {
            labels: crate::model::Labels::from_pairs([("job", "x")]),
            url: "http://h:1/metrics".into(),
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(10),
        };
        assert!(offset(&t) < Duration::from_secs(15));
    }
}
