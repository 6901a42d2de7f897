//! The appliance's lifecycle, in one straight line: open the store, start the ingest path
//! and the collectors, serve the API, tell systemd we are ready, and on SIGTERM/SIGINT stop
//! in reverse order so the store's last flush sees everything collected.

use crate::api::{self, ApiState};
use crate::collect::Batch;
use crate::collect::host::{HostCollector, HostPaths};
use crate::collect::self_metrics::SelfCollector;
use crate::config::Config;
use crate::ingest::{Ingest, Source};
use crate::model::Labels;
use crate::query::promql::eval::EngineOptions;
use crate::store::{Limits, Store, StoreOptions};
use anyhow::Context;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

/// A collector running on its own thread at a fixed interval until told to stop.
struct CollectorThread {
    stop: mpsc::Sender<()>,
    handle: JoinHandle<()>,
}

impl CollectorThread {
    fn spawn(
        name: &'static str,
        interval: Duration,
        mut tick: impl FnMut() + Send + 'static,
    ) -> std::io::Result<Self> {
        let (stop, stopped) = mpsc::channel::<()>();
        let handle = std::thread::Builder::new()
            .name(format!("collect-{name}"))
            .spawn(move || {
                let mut next = Instant::now();
                loop {
                    tick();
                    next += interval;
                    // Skip ticks that a slow collection made us miss rather than bursting.
                    let now = Instant::now();
                    while next <= now {
                        next += interval;
                    }
                    match stopped.recv_timeout(next - now) {
                        Err(RecvTimeoutError::Timeout) => continue,
                        _ => break,
                    }
                }
            })?;
        Ok(CollectorThread { stop, handle })
    }

    fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.handle.join();
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Runs the appliance until SIGTERM or SIGINT.
pub fn run(config: Config) -> anyhow::Result<()> {
    heap::limit_arenas();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(run_async(config))
}

/// glibc's allocator gives threads that allocate at once arenas of their own (up to eight
/// per core) and hands freed memory back to the kernel only from the top of a heap, so
/// after a large query or a burst of ingest the process would keep its peak resident set
/// for good. Two arenas, and a trim every [`TRIM_EVERY`], bring the resident set back to
/// what is in use: on a 1 GB Pi that is the point. Other C libraries: nothing to do.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod heap {
    pub fn limit_arenas() {
        // SAFETY: mallopt only sets a tunable; called before any thread starts.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }

    pub fn trim() {
        // SAFETY: malloc_trim takes the allocator's own locks; any thread may call it.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod heap {
    pub fn limit_arenas() {}
    pub fn trim() {}
}

const TRIM_EVERY: Duration = Duration::from_secs(10);

async fn run_async(config: Config) -> anyhow::Result<()> {
    let t0 = Instant::now();
    tokio::spawn(async {
        let mut tick = tokio::time::interval(TRIM_EVERY);
        loop {
            tick.tick().await;
            let _ = tokio::task::spawn_blocking(heap::trim).await;
        }
    });
    let store = Store::open_with(
        StoreOptions {
            path: config.storage.path.clone(),
            flush_interval: config.storage.flush_interval.0,
        },
        Limits {
            budget: config.storage.budget.to_store(),
            max_age: config.storage.max_age.map(|d| d.0),
            retention_horizon: config.storage.retention_horizon.map(|d| d.0),
            shares: config.storage.shares.0,
            tier_max_age: config.storage.tier_max_age.to_store(),
        },
    )
    .with_context(|| format!("cannot open the store at {}", config.storage.path.display()))?;
    tracing::info!(path = %config.storage.path.display(), elapsed_ms = t0.elapsed().as_millis() as u64, "Store opened.");
    let ingest = Ingest::new(store.clone());
    let engine = EngineOptions {
        lookback_delta_ms: config.query.lookback_delta.0.as_millis() as i64,
        max_samples: config.query.max_samples.0 as usize,
        timeout: config.query.timeout.0,
        ..EngineOptions::default()
    };

    // Rules: load the rule files, restore saved alert state, evaluate each group on its
    // own thread. After the store and ingest (they read and write through them), before the
    // collectors and the API (DESIGN.md order); stopped after the collectors and before the
    // store closes, so their last output is flushed.
    // Notifier: outbox, silences, dispatcher and senders; before the rules, which hand
    // it their alerts, and stopped after them so the last resolved alerts are queued.
    let node = config
        .rules
        .external_labels
        .get("node")
        .cloned()
        .unwrap_or_else(hostname);
    let notifier = crate::notify::Notifier::start(
        &config.notify,
        store.clone(),
        node,
        config.rules.external_url.clone(),
        &tokio::runtime::Handle::current(),
    )
    .context("cannot start the notifier")?;

    let rules = {
        let groups = crate::rules::load_rule_files(&config.rules.rule_files).map_err(|errs| {
            let list: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
            anyhow::anyhow!("invalid rule files:\n{}", list.join("\n"))
        })?;
        let count: usize = groups.iter().map(|g| g.rules.len()).sum();
        let manager = Arc::new(crate::rules::RuleManager::new(
            groups,
            config.rules.evaluation_interval.0.as_millis() as i64,
            crate::rules::RuleContext {
                store: store.clone(),
                ingest: ingest.clone(),
                // A rule's subquery without a step uses the evaluation interval, as in
                // Prometheus.
                engine: EngineOptions {
                    default_subquery_step_ms: config.rules.evaluation_interval.0.as_millis() as i64,
                    ..engine.clone()
                },
                external_labels: config.rules.external_labels.clone(),
                external_url: config.rules.external_url.clone(),
                notify: Some(notifier.sink()),
                resend_delay_ms: config.notify.resend_delay.0.as_millis() as i64,
            },
        ));
        manager
            .start()
            .context("cannot start the rule evaluation threads")?;
        tracing::info!(
            groups = manager.groups().len(),
            rules = count,
            "Rules loaded."
        );
        manager
    };

    // SIGHUP reloads the rule files (the config file itself is read at start only); files
    // with problems are reported and the running rules stay, as in Prometheus.
    let reloader = {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
        let rules = rules.clone();
        let patterns = config.rules.rule_files.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                let (rules, patterns) = (rules.clone(), patterns.clone());
                let _ = tokio::task::spawn_blocking(move || {
                    match crate::rules::load_rule_files(&patterns) {
                        Ok(groups) => {
                            let n: usize = groups.iter().map(|g| g.rules.len()).sum();
                            match rules.reload(groups) {
                                Ok(()) => tracing::info!(rules = n, "SIGHUP: rules reloaded."),
                                Err(e) => tracing::error!(error = %e, "SIGHUP: cannot restart the rule groups."),
                            }
                        }
                        Err(errs) => {
                            let list: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
                            tracing::error!(problems = %list.join("; "), "SIGHUP: rule files not reloaded; the previous rules keep running.");
                        }
                    }
                })
                .await;
            }
        })
    };

    let write_token = read_token(&config.api.write_token_file)?;
    let self_collector = {
        let mut c = SelfCollector::new(store.clone(), ingest.clone());
        let r = rules.clone();
        c.add_source(Box::new(move |out| r.collect(out)));
        let n = notifier.clone();
        c.add_source(Box::new(move |out| n.collect(out)));
        Arc::new(Mutex::new(c))
    };

    // Forwarding reads the store through persistent cursors; stopped before the store
    // closes, after its request in flight is answered.
    // (Off the reactor: the blocking HTTP clients it builds own a runtime of their own.)
    let forwarder = {
        let (cfg, store) = (config.forward.clone(), store.clone());
        tokio::task::spawn_blocking(move || crate::forward::Forwarder::start(&cfg, store)).await??
    };
    if let Some(f) = &forwarder {
        if let Ok(mut c) = self_collector.lock() {
            let stats = f.stats();
            c.add_source(Box::new(move |out| {
                crate::forward::collect_metrics(&stats, crate::store::status::now_ms(), out)
            }));
        }
        tracing::info!(
            destinations = config.forward.remote_write.len(),
            "Forwarding started."
        );
    }

    let mut collectors = Vec::new();
    if config.collect.host.enabled {
        let mut host = HostCollector::new(HostPaths {
            proc: config.collect.host.proc_path.clone(),
            sys: config.collect.host.sys_path.clone(),
            rootfs: config.collect.host.rootfs_path.clone(),
        });
        let target = target_labels(&config.collect.host.job, &config.collect.host.instance);
        let ingest = ingest.clone();
        let mut batch = Batch::default();
        collectors.push(CollectorThread::spawn(
            "host",
            config.collect.host.interval.0,
            move || {
                batch.clear();
                let t = now_ms();
                host.collect(&mut batch);
                if let Err(e) = ingest.collected(Source::Host, &batch, &target, t) {
                    tracing::warn!(error = %e, "Host metrics could not be stored.");
                }
            },
        )?);
    }
    if config.collect.self_metrics.enabled {
        let target = target_labels(
            &config.collect.self_metrics.job,
            &config.collect.self_metrics.instance,
        );
        let ingest = ingest.clone();
        let collector = self_collector.clone();
        let mut batch = Batch::default();
        collectors.push(CollectorThread::spawn(
            "self",
            config.collect.self_metrics.interval.0,
            move || {
                batch.clear();
                let t = now_ms();
                if let Ok(mut c) = collector.lock() {
                    c.collect(&mut batch);
                }
                if let Err(e) = ingest.collected(Source::SelfMetrics, &batch, &target, t) {
                    tracing::warn!(error = %e, "Self metrics could not be stored.");
                }
            },
        )?);
    }

    // Scraper: `[[scrape]]` jobs, started after the collectors, stopped before the
    // store closes so the staleness markers of every target reach the final flush.
    let targets = Arc::new(crate::collect::scrape::status::TargetsStatus::default());
    let scraper = crate::collect::scrape::ScrapeManager::start(
        config.scrape.clone(),
        crate::collect::scrape::manager::ManagerOptions {
            series_limit: config.collect.scrape.series_limit as usize,
        },
        ingest.clone(),
        targets.clone(),
    )?;
    if !config.scrape.is_empty() {
        tracing::info!(jobs = config.scrape.len(), "Scraper started.");
    }

    // Health probes: `[[probe]]` tables, async tasks stopped with the scraper.
    let probes = crate::collect::probe::ProbeManager::start(config.probe.clone(), ingest.clone());
    if !config.probe.is_empty() {
        tracing::info!(probes = config.probe.len(), "Probes started.");
    }

    let state = Arc::new(ApiState {
        store: store.clone(),
        ingest: ingest.clone(),
        engine,
        query_slots: Semaphore::new(config.query.max_concurrent.0 as usize),
        write_token,
        max_request_bytes: config.api.max_request_bytes.0 as usize,
        self_metrics: Box::new(move || {
            let mut batch = Batch::default();
            if let Ok(mut c) = self_collector.lock() {
                c.collect(&mut batch);
            }
            let mut out = String::new();
            crate::collect::exposition::render(&batch, &mut out);
            out
        }),
        ready: false.into(),
        rules: rules.clone(),
        targets,
        silences: notifier.silences.clone(),
    });

    let listener = tokio::net::TcpListener::bind(config.api.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.api.listen))?;
    let addr = listener.local_addr()?;
    let shutdown = shutdown_signal();
    state.ready.store(true, Ordering::Relaxed);
    tracing::info!(%addr, elapsed_ms = t0.elapsed().as_millis() as u64, "Serving the API.");
    notify_systemd(&[sd_notify::NotifyState::Ready]);
    let watchdog = sd_notify::watchdog_enabled().map(|every| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every / 2);
            loop {
                tick.tick().await;
                notify_systemd(&[sd_notify::NotifyState::Watchdog]);
            }
        })
    });

    let server_state = state.clone();
    axum::serve(listener, api::router(state.clone()))
        .with_graceful_shutdown(async move {
            shutdown.await;
            server_state.ready.store(false, Ordering::Relaxed);
        })
        .await
        .context("the HTTP server failed")?;

    tracing::info!("Shutting down.");
    notify_systemd(&[sd_notify::NotifyState::Stopping]);
    if let Some(w) = watchdog {
        w.abort();
    }
    reloader.abort();
    let t = Instant::now();
    tokio::task::spawn_blocking(move || collectors.into_iter().for_each(CollectorThread::stop))
        .await?;
    tracing::info!(
        elapsed_ms = t.elapsed().as_millis() as u64,
        "Collectors stopped."
    );
    // The scraper writes staleness markers for every target as it stops.
    if let Some(scraper) = scraper {
        let t = Instant::now();
        tokio::task::spawn_blocking(move || scraper.stop()).await?;
        tracing::info!(
            elapsed_ms = t.elapsed().as_millis() as u64,
            "Scraper stopped."
        );
    }
    if let Some(probes) = probes {
        let t = Instant::now();
        probes.stop().await;
        tracing::info!(
            elapsed_ms = t.elapsed().as_millis() as u64,
            "Probes stopped."
        );
    }
    let t = Instant::now();
    tokio::task::spawn_blocking(move || rules.stop()).await?;
    tracing::info!(
        elapsed_ms = t.elapsed().as_millis() as u64,
        "Rules stopped."
    );
    if let Some(forwarder) = forwarder {
        let t = Instant::now();
        tokio::task::spawn_blocking(move || forwarder.stop()).await?;
        tracing::info!(
            elapsed_ms = t.elapsed().as_millis() as u64,
            "Forwarding stopped."
        );
    }
    let t = Instant::now();
    notifier.stop().await;
    tracing::info!(
        elapsed_ms = t.elapsed().as_millis() as u64,
        "Notifier stopped."
    );
    let t = Instant::now();
    tokio::task::spawn_blocking(move || store.close())
        .await?
        .context("the store's final flush failed")?;
    tracing::info!(
        elapsed_ms = t.elapsed().as_millis() as u64,
        "Store flushed and closed."
    );
    Ok(())
}

/// `job` and `instance` labels for a built-in collector; an empty instance is this host's
/// name (what a Prometheus scraping node_exporter would show, minus the port).
fn target_labels(job: &str, instance: &str) -> Labels {
    let instance = if instance.is_empty() {
        hostname()
    } else {
        instance.to_string()
    };
    Labels::from_pairs([("job", job), ("instance", instance.as_str())])
}

pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into our buffer.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    if rc == 0 && end > 0 {
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        "localhost".to_string()
    }
}

/// Reads the write token file; an empty path means writes are open.
fn read_token(path: &std::path::Path) -> anyhow::Result<Option<String>> {
    if path.as_os_str().is_empty() {
        return Ok(None);
    }
    let token = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read api.write_token_file {}", path.display()))?;
    let token = token.trim().to_string();
    anyhow::ensure!(
        !token.is_empty(),
        "api.write_token_file {} is empty",
        path.display()
    );
    Ok(Some(token))
}

fn notify_systemd(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "Cannot notify systemd.");
    }
}

/// Installs the SIGTERM/SIGINT handlers now and returns the future that waits for them.
/// Installing is done before start-up is announced: a SIGTERM that arrives right after
/// "Serving the API" (or systemd's READY) must stop Picket cleanly, with the final flush,
/// and not kill it with the default action.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let handlers = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    );
    async move {
        let (Ok(mut term), Ok(mut int)) = handlers else {
            tracing::error!("Cannot install signal handlers; stop Picket with SIGKILL.");
            std::future::pending::<()>().await;
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received."),
            _ = int.recv() => tracing::info!("SIGINT received."),
        }
    }
}
