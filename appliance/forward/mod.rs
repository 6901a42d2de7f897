//! Store-and-forward: every `[[forward.remote_write]]` destination gets what the store
//! holds, as Prometheus remote_write 1.0 (protobuf, snappy), read back from the store
//! through a persistent cursor ([`cursor`]) instead of a second copy on the SD card.
//!
//! One thread per destination repeats: pick the live segment when a window of new data is
//! due (every `batch_send_deadline`, up to `now - delay`), else the oldest backlog segment
//! when its pace (`max_backlog_samples_per_second`) allows; read the window's samples over
//! all series in series-id order (head and disk alike: appended samples are visible at
//! once), cut them into requests of at most `max_samples_per_send` samples at series
//! boundaries, send each until it is answered, and persist the cursor durably after every
//! acknowledged request. So after a SIGTERM or a crash the destination resumes right after
//! the last 2xx: nothing acknowledged is sent twice, nothing unacknowledged is skipped.
//!
//! Answers: 2xx moves on; 5xx, 429 (with `retry_on_http_429`) and network errors retry the
//! same request with exponential backoff (`min_backoff` doubling to `max_backoff`); any
//! other status drops the request's samples, counted with `reason="http_4xx"`.
//!
//! What is not sent, and counted in `picket_forward_samples_dropped_total{reason}`:
//! - `evicted`: the budget keeper deleted a day partition before its samples were sent
//!   (from the store's eviction records, minus what was already sent of that day);
//! - `late`: samples written with a timestamp older than everything still to be sent (the
//!   cursor had passed their time; only `delay` protects slow writers). During a backlog,
//!   late writes into the live range already sent are not seen by this count.
//! - `http_4xx`: refused by the destination.
//!
//! A new destination starts at the oldest partition the store holds (or today's when
//! empty), so it receives the retained history as a backlog.

pub mod cursor;

use crate::config::forward::{ForwardConfig, RemoteWriteConfig};
use crate::config::http_client::HttpClientConfig;
use crate::model::{Labels, Sample};
use crate::store::outbox::LateWatch;
use crate::store::{Store, StoreError};
use cursor::Cursor;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const STATE_PREFIX: &str = "forward/";
/// Longest window of sample time read at once (bounds memory: a window's samples of
/// up to [`IDS_PER_READ`] series are in memory at a time).
const MAX_WINDOW_MS: i64 = 60_000;
/// Series read from the store per call while filling requests.
const IDS_PER_READ: usize = 256;

/// Why samples were not sent.
#[derive(Debug, Clone, Copy)]
pub enum DropReason {
    Http4xx,
    Evicted,
}

/// Per-destination counters, read by the self collector.
#[derive(Debug)]
pub struct DestinationStats {
    /// The `url` label: the destination's name (its URL without credentials by default).
    pub url: String,
    pub samples_sent: AtomicU64,
    pub samples_failed: AtomicU64,
    pub dropped_http_4xx: AtomicU64,
    pub dropped_evicted: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub requests_sent: AtomicU64,
    /// Oldest sample time not yet sent (ms).
    pub oldest_unsent_ms: AtomicI64,
    /// Counts `late` drops (see the module doc).
    pub late: Arc<LateWatch>,
}

impl DestinationStats {
    fn dropped(&self, r: DropReason) -> &AtomicU64 {
        match r {
            DropReason::Http4xx => &self.dropped_http_4xx,
            DropReason::Evicted => &self.dropped_evicted,
        }
    }

    /// Seconds between now and the oldest sample not yet sent.
    pub fn lag_seconds(&self, now_ms: i64) -> f64 {
        (now_ms - self.oldest_unsent_ms.load(Ordering::Relaxed)).max(0) as f64 / 1000.0
    }
}

/// Tells destination threads to stop, and wakes them from their waits.
#[derive(Default)]
struct StopSignal {
    stopped: Mutex<bool>,
    wake: Condvar,
    flag: AtomicBool,
}

impl StopSignal {
    fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
        *self.stopped.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.wake.notify_all();
    }
    fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }
    /// Sleeps up to `d`; true when stopped.
    fn sleep(&self, d: Duration) -> bool {
        let guard = self.stopped.lock().unwrap_or_else(|e| e.into_inner());
        let (guard, _) = self
            .wake
            .wait_timeout_while(guard, d, |s| !*s)
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }
}

/// The running forwarder: one thread per destination.
pub struct Forwarder {
    stop: Arc<StopSignal>,
    threads: Vec<JoinHandle<()>>,
    stats: Vec<Arc<DestinationStats>>,
}

impl Forwarder {
    /// Starts a thread per destination (None when there is none). Fails when a
    /// destination's TLS files cannot be read or its saved cursor is damaged.
    pub fn start(cfg: &ForwardConfig, store: Store) -> anyhow::Result<Option<Forwarder>> {
        if cfg.remote_write.is_empty() {
            return Ok(None);
        }
        let stop = Arc::new(StopSignal::default());
        let mut threads = Vec::new();
        let mut stats = Vec::new();
        for d in &cfg.remote_write {
            let dest = Destination::new(cfg, d, store.clone(), stop.clone())?;
            stats.push(dest.stats.clone());
            threads.push(
                std::thread::Builder::new()
                    .name("forward".into())
                    .spawn(move || dest.run())?,
            );
        }
        Ok(Some(Forwarder {
            stop,
            threads,
            stats,
        }))
    }

    pub fn stats(&self) -> Vec<Arc<DestinationStats>> {
        self.stats.clone()
    }

    /// Stops every destination after its request in flight (if any) is answered, so
    /// its cursor is saved where the destination's acknowledgements ended.
    pub fn stop(self) {
        self.stop.stop();
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// Appends the `picket_forward_*` families for `dests`.
pub fn collect_metrics(
    dests: &[Arc<DestinationStats>],
    now_ms: i64,
    out: &mut crate::collect::Batch,
) {
    use crate::model::MetricType::{Counter, Gauge};
    if dests.is_empty() {
        return;
    }
    let url = |d: &DestinationStats| Labels::from_pairs([("url", d.url.as_str())]);
    type CounterDef = (&'static str, &'static str, fn(&DestinationStats) -> u64);
    let counters: [CounterDef; 4] = [
        (
            "picket_forward_samples_sent_total",
            "Samples the destination acknowledged.",
            |d| d.samples_sent.load(Ordering::Relaxed),
        ),
        (
            "picket_forward_samples_failed_total",
            "Samples of send attempts that failed and are retried (5xx, 429, network).",
            |d| d.samples_failed.load(Ordering::Relaxed),
        ),
        (
            "picket_forward_bytes_sent_total",
            "Compressed request bytes the destination acknowledged.",
            |d| d.bytes_sent.load(Ordering::Relaxed),
        ),
        (
            "picket_forward_requests_sent_total",
            "Requests the destination acknowledged.",
            |d| d.requests_sent.load(Ordering::Relaxed),
        ),
    ];
    for (name, help, get) in counters {
        let fam = out.family(name, help, Counter);
        for d in dests {
            fam.push(url(d), get(d) as f64);
        }
    }
    let fam = out.family(
        "picket_forward_samples_dropped_total",
        "Samples that will never be sent, by reason (http_4xx: refused by the destination; evicted: deleted by the storage budget before they were sent; late: written older than the forwarding cursor).",
        Counter,
    );
    for d in dests {
        for (reason, v) in [
            ("http_4xx", d.dropped_http_4xx.load(Ordering::Relaxed)),
            ("evicted", d.dropped_evicted.load(Ordering::Relaxed)),
            ("late", d.late.late.load(Ordering::Relaxed)),
        ] {
            fam.push(
                Labels::from_pairs([("url", d.url.as_str()), ("reason", reason)]),
                v as f64,
            );
        }
    }
    let fam = out.family(
        "picket_forward_lag_seconds",
        "Age of the oldest sample not yet acknowledged by the destination.",
        Gauge,
    );
    for d in dests {
        fam.push(url(d), d.lag_seconds(now_ms));
    }
}

/// How a request ended.
enum Outcome {
    Sent,
    Dropped,
    Stopped,
}

struct Destination {
    name: String,
    url: String,
    cfg: RemoteWriteConfig,
    /// Credentials and TLS keys; the header is built per request so rotated files are
    /// picked up.
    http: HttpClientConfig,
    client: reqwest::blocking::Client,
    external: Vec<(String, String)>,
    delay_ms: i64,
    store: Store,
    stop: Arc<StopSignal>,
    stats: Arc<DestinationStats>,
    cursor: Cursor,
    /// When the next backlog request may go (the backlog's pace).
    backlog_next: Instant,
    last_live: Instant,
    proto: Vec<u8>,
}

fn now_ms() -> i64 {
    crate::store::status::now_ms()
}

impl Destination {
    fn new(
        global: &ForwardConfig,
        cfg: &RemoteWriteConfig,
        store: Store,
        stop: Arc<StopSignal>,
    ) -> anyhow::Result<Destination> {
        let name = cfg.display_name();
        let key = format!("{STATE_PREFIX}{name}");
        let saved = store
            .states_with_prefix(&key)?
            .into_iter()
            .find(|(k, _)| *k == key);
        let cursor = match saved {
            Some((_, v)) => Cursor::decode(&v)
                .map_err(|e| anyhow::anyhow!("forward destination {name}: {e}"))?,
            None => {
                let start = store
                    .oldest_partition_start()
                    .unwrap_or_else(|| crate::store::outbox::partition_start_of(now_ms()));
                tracing::info!(destination = %name, start_ms = start, "New forwarding destination; it starts at the oldest data kept.");
                Cursor::new(start)
            }
        };
        let mut labels: BTreeMap<String, String> = global.external_labels.clone();
        labels.extend(cfg.external_labels.clone());
        let late = Arc::new(LateWatch::new(cursor.oldest_unsent()));
        store.watch_late_writes(late.clone());
        let stats = Arc::new(DestinationStats {
            url: name.clone(),
            samples_sent: AtomicU64::new(0),
            samples_failed: AtomicU64::new(0),
            dropped_http_4xx: AtomicU64::new(0),
            dropped_evicted: AtomicU64::new(0),
            bytes_sent: AtomicU64::new(0),
            requests_sent: AtomicU64::new(0),
            oldest_unsent_ms: AtomicI64::new(cursor.oldest_unsent()),
            late,
        });
        Ok(Destination {
            http: cfg.http_client(),
            client: http_client(cfg)
                .map_err(|e| anyhow::anyhow!("forward destination {name}: {e}"))?,
            url: cfg.url.0.clone(),
            name,
            cfg: cfg.clone(),
            external: labels.into_iter().collect(),
            delay_ms: global.delay.0.as_millis() as i64,
            store,
            stop,
            stats,
            cursor,
            backlog_next: Instant::now(),
            last_live: Instant::now(),
            proto: Vec::new(),
        })
    }

    fn deadline(&self) -> Duration {
        self.cfg.queue_config.batch_send_deadline.0
    }

    fn run(mut self) {
        while !self.stop.is_stopped() {
            let wait = match self.step() {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!(destination = %self.name, error = %e, "Forwarding cannot read the store; retrying.");
                    Duration::from_secs(5)
                }
            };
            if !wait.is_zero() && self.stop.sleep(wait) {
                break;
            }
        }
    }

    /// Does one window's worth of work; returns how long to wait before the next step.
    fn step(&mut self) -> Result<Duration, StoreError> {
        let horizon = now_ms() - self.delay_ms;
        let deadline = self.deadline();
        // An outage or a restart left the live segment behind: what is behind becomes a
        // backlog, sent beside the live data.
        let behind = horizon - self.cursor.live().from;
        if behind > 3 * deadline.as_millis() as i64 && self.cursor.split_live(horizon) {
            tracing::info!(destination = %self.name, backlog_s = behind / 1000, "Forwarding fell behind; the gap is sent as a backlog.");
            self.save()?;
        }
        let live = *self.cursor.live();
        let live_due =
            live.has_window() || (horizon > live.from && self.last_live.elapsed() >= deadline);
        let n = self.cursor.segments.len();
        if live_due {
            self.last_live = Instant::now();
            self.send_window(n - 1, horizon)?;
            return Ok(Duration::ZERO);
        }
        if n > 1 {
            let now = Instant::now();
            if now >= self.backlog_next {
                self.send_window(0, horizon)?;
                return Ok(Duration::ZERO);
            }
            let until_live = deadline.saturating_sub(self.last_live.elapsed());
            return Ok((self.backlog_next - now).min(until_live));
        }
        Ok(deadline
            .saturating_sub(self.last_live.elapsed())
            .max(Duration::from_millis(50)))
    }

    /// Sends (the rest of) one window of segment `si`, opening it first if needed.
    fn send_window(&mut self, si: usize, horizon: i64) -> Result<(), StoreError> {
        if !self.cursor.segments[si].has_window() && !self.open_window(si, horizon) {
            return Ok(());
        }
        let seg = self.cursor.segments[si];
        let window_pidx = crate::store::outbox::partition_index_of(seg.from);
        self.stats
            .late
            .cursor_ms
            .store(self.late_bound(), Ordering::Relaxed);
        let ids = self.store.series_ids_from(seg.next_series);
        let max = self.cfg.queue_config.max_samples_per_send as usize;
        let mut batch: Vec<(Labels, Vec<Sample>)> = Vec::new();
        let mut in_batch = 0usize;
        let mut last_id = 0u64;
        for page in ids.chunks(IDS_PER_READ) {
            for (id, labels, samples) in
                self.store
                    .read_series_range(page, seg.from, seg.window_end - 1)?
            {
                in_batch += samples.len();
                batch.push((labels, samples));
                last_id = id;
                if in_batch >= max {
                    match self.send_batch(&batch, in_batch, si) {
                        Outcome::Stopped => return Ok(()),
                        Outcome::Sent | Outcome::Dropped => {}
                    }
                    self.note_sent(si, window_pidx, in_batch);
                    self.cursor.segments[si].next_series = last_id + 1;
                    self.save()?;
                    batch.clear();
                    in_batch = 0;
                }
            }
        }
        if !batch.is_empty() {
            match self.send_batch(&batch, in_batch, si) {
                Outcome::Stopped => return Ok(()),
                Outcome::Sent | Outcome::Dropped => {}
            }
            self.note_sent(si, window_pidx, in_batch);
        }
        // A partition evicted while we read it made the read short: count what is gone.
        if self.account_evictions(si) {
            return self.save();
        }
        let had_data = in_batch > 0 || last_id > 0 || seg.next_series > 0;
        self.cursor.segments[si].finish_window();
        self.cursor.prune();
        self.publish();
        // Empty windows move the cursor in memory only: re-reading them after a restart
        // costs nothing, and a durable commit each would wear the card.
        if had_data {
            self.save()?;
        }
        Ok(())
    }

    /// Opens a window `[from, end)` on segment `si`, skipping time with no data at all.
    /// False when there is nothing to send yet.
    fn open_window(&mut self, si: usize, horizon: i64) -> bool {
        if self.account_evictions(si)
            && let Err(e) = self.save()
        {
            tracing::warn!(destination = %self.name, error = %e, "Cannot save the forwarding cursor.");
        }
        let seg = self.cursor.segments[si];
        let limit = seg.to.min(horizon);
        if seg.from >= limit {
            if !seg.is_live() {
                self.cursor.segments[si].from = seg.to;
                self.cursor.prune();
            }
            return false;
        }
        let from = match self.store.next_data_time(seg.from) {
            Some(t) if t < limit => t,
            // Nothing stored between here and the limit: jump to it.
            _ => {
                self.cursor.segments[si].from = limit;
                self.cursor.prune();
                self.publish();
                return false;
            }
        };
        let partition_end = crate::store::outbox::partition_start_of(from)
            .saturating_add(crate::store::outbox::PARTITION_SPAN_MS);
        let end = limit.min(from + MAX_WINDOW_MS).min(partition_end);
        let s = &mut self.cursor.segments[si];
        s.from = from;
        s.window_end = end;
        s.next_series = 0;
        true
    }

    /// Counts evicted partitions the cursor had not passed and moves past them. True when
    /// the cursor moved.
    fn account_evictions(&mut self, si: usize) -> bool {
        let seg = self.cursor.segments[si];
        let evs: Vec<_> = self
            .store
            .evictions_after(seg.from)
            .into_iter()
            .filter(|e| e.start_ms() < seg.to)
            .collect();
        let Some(last) = evs.last() else {
            return false;
        };
        let mut lost = 0u64;
        for e in &evs {
            lost += if e.partition == self.cursor.sent_partition && si == 0 {
                e.samples.saturating_sub(self.cursor.sent_in_partition)
            } else {
                e.samples
            };
        }
        let to = last.end_ms().min(seg.to);
        tracing::warn!(destination = %self.name, samples = lost, "The storage budget deleted data before it was forwarded; counted as dropped.");
        self.stats
            .dropped(DropReason::Evicted)
            .fetch_add(lost, Ordering::Relaxed);
        let s = &mut self.cursor.segments[si];
        s.from = to;
        s.window_end = 0;
        s.next_series = 0;
        self.cursor.prune();
        self.publish();
        true
    }

    /// Counts what the oldest segment sent of its day partition (see `cursor`).
    fn note_sent(&mut self, si: usize, pidx: i64, n: usize) {
        if si != 0 {
            return;
        }
        if self.cursor.sent_partition != pidx {
            self.cursor.sent_partition = pidx;
            self.cursor.sent_in_partition = 0;
        }
        self.cursor.sent_in_partition += n as u64;
    }

    /// Samples written below this time will not be read again (see `late`).
    fn late_bound(&self) -> i64 {
        let s = &self.cursor.segments[0];
        if s.has_window() { s.window_end } else { s.from }
    }

    fn publish(&self) {
        self.stats
            .oldest_unsent_ms
            .store(self.cursor.oldest_unsent(), Ordering::Relaxed);
        self.stats
            .late
            .cursor_ms
            .store(self.late_bound(), Ordering::Relaxed);
    }

    fn save(&mut self) -> Result<(), StoreError> {
        self.publish();
        let key = format!("{STATE_PREFIX}{}", self.name);
        self.store.put_states([(key, Some(self.cursor.encode()))])
    }

    /// Sends one request until it is answered for good; the backlog's pace is applied
    /// after it.
    fn send_batch(
        &mut self,
        batch: &[(Labels, Vec<Sample>)],
        samples: usize,
        si: usize,
    ) -> Outcome {
        let body = self.encode(batch);
        let q = &self.cfg.queue_config;
        let mut backoff = q.min_backoff.0;
        let max_backoff = q.max_backoff.0;
        let outcome = loop {
            match self.post(&body) {
                Ok(status) if status.is_success() => {
                    self.stats
                        .samples_sent
                        .fetch_add(samples as u64, Ordering::Relaxed);
                    self.stats
                        .bytes_sent
                        .fetch_add(body.len() as u64, Ordering::Relaxed);
                    self.stats.requests_sent.fetch_add(1, Ordering::Relaxed);
                    break Outcome::Sent;
                }
                Ok(status)
                    if status.is_server_error()
                        || (status.as_u16() == 429 && self.cfg.queue_config.retry_on_http_429) =>
                {
                    tracing::debug!(destination = %self.name, %status, "Request failed; retrying.");
                }
                Ok(status) => {
                    tracing::warn!(destination = %self.name, %status, samples, "The destination refused a request; its samples are dropped.");
                    self.stats
                        .dropped(DropReason::Http4xx)
                        .fetch_add(samples as u64, Ordering::Relaxed);
                    break Outcome::Dropped;
                }
                Err(e) => {
                    tracing::debug!(destination = %self.name, error = %e, "Request failed; retrying.");
                }
            }
            self.stats
                .samples_failed
                .fetch_add(samples as u64, Ordering::Relaxed);
            if self.stop.sleep(backoff) {
                break Outcome::Stopped;
            }
            backoff = (backoff * 2).min(max_backoff);
        };
        if si + 1 < self.cursor.segments.len() {
            let rate = self.cfg.queue_config.max_backlog_samples_per_second.max(1);
            self.backlog_next =
                Instant::now() + Duration::from_secs_f64(samples as f64 / rate as f64);
        }
        outcome
    }

    fn post(&self, body: &[u8]) -> Result<reqwest::StatusCode, String> {
        let mut req = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/x-protobuf")
            .header(reqwest::header::CONTENT_ENCODING, "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .timeout(self.cfg.remote_timeout.0)
            .body(body.to_vec());
        for (k, v) in &self.cfg.headers {
            req = req.header(k, v);
        }
        if let Some(auth) = self.http.authorization_header()? {
            req = req.header(reqwest::header::AUTHORIZATION, auth);
        }
        let resp = req.send().map_err(|e| error_chain(&e))?;
        let status = resp.status();
        // Read the body so the connection can be reused.
        let _ = resp.bytes();
        Ok(status)
    }

    /// The remote_write request for `batch`, snappy-compressed, external labels added to
    /// series that do not carry them. Encoded straight from the store's label sets (the
    /// `prompb` messages would copy every label string once more).
    fn encode(&mut self, batch: &[(Labels, Vec<Sample>)]) -> Vec<u8> {
        self.proto.clear();
        for (labels, samples) in batch {
            encode_series(&mut self.proto, labels, &self.external, samples);
        }
        let mut out = vec![0u8; snap::raw::max_compress_len(self.proto.len())];
        let n = snap::raw::Encoder::new()
            .compress(&self.proto, &mut out)
            .expect("BUG: snappy compresses any input below 4 GiB");
        out.truncate(n);
        // The buffer keeps its capacity between requests, but not a big one forever.
        if self.proto.capacity() > 4 << 20 {
            self.proto = Vec::new();
        }
        out
    }
}

/// The label pairs of a series with the external labels merged in, in name order (the
/// series' own label wins).
fn merged_labels<'a>(
    labels: &'a Labels,
    external: &'a [(String, String)],
) -> impl Iterator<Item = (&'a str, &'a str)> {
    let mut own = labels.iter().peekable();
    let mut ext = external
        .iter()
        .filter(|(k, _)| labels.get(k).is_none())
        .peekable();
    std::iter::from_fn(move || match (own.peek(), ext.peek()) {
        (Some(o), Some(e)) if e.0.as_str() < &*o.name => {
            ext.next().map(|(k, v)| (k.as_str(), v.as_str()))
        }
        (Some(_), _) => own.next().map(|l| (&*l.name, &*l.value)),
        (None, Some(_)) => ext.next().map(|(k, v)| (k.as_str(), v.as_str())),
        (None, None) => None,
    })
}

/// Appends one `WriteRequest.timeseries` entry (field 1) in protobuf wire format:
/// `TimeSeries { labels = 1: Label { name = 1, value = 2 }, samples = 2: Sample { value = 1
/// (double), timestamp = 2 (int64) } }`.
fn encode_series(
    out: &mut Vec<u8>,
    labels: &Labels,
    external: &[(String, String)],
    samples: &[Sample],
) {
    use prost::encoding::{encode_varint, encoded_len_varint};
    let str_field = |n: usize| 1 + encoded_len_varint(n as u64) as usize + n;
    let label_len = |k: &str, v: &str| str_field(k.len()) + str_field(v.len());
    let sample_len = |s: &Sample| 9 + 1 + encoded_len_varint(s.t as u64) as usize;
    let mut ts_len = 0usize;
    for (k, v) in merged_labels(labels, external) {
        ts_len += str_field(label_len(k, v));
    }
    for s in samples {
        ts_len += str_field(sample_len(s));
    }
    out.push(0x0a);
    encode_varint(ts_len as u64, out);
    for (k, v) in merged_labels(labels, external) {
        out.push(0x0a);
        encode_varint(label_len(k, v) as u64, out);
        for (tag, text) in [(0x0a, k), (0x12, v)] {
            out.push(tag);
            encode_varint(text.len() as u64, out);
            out.extend_from_slice(text.as_bytes());
        }
    }
    for s in samples {
        out.push(0x12);
        encode_varint(sample_len(s) as u64, out);
        out.push(0x09);
        out.extend_from_slice(&s.v.to_le_bytes());
        out.push(0x10);
        encode_varint(s.t as u64, out);
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

fn http_client(cfg: &RemoteWriteConfig) -> Result<reqwest::blocking::Client, String> {
    let b = reqwest::blocking::Client::builder()
        .user_agent(concat!("Picket/", env!("CARGO_PKG_VERSION")))
        .use_rustls_tls()
        .no_gzip();
    cfg.http_client()
        .apply_tls(b)?
        .build()
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::model::{Labels, Sample};
    use crate::store::{Budget, Limits, StoreOptions, WriteBatch};

    fn destination(store: &Store) -> Destination {
        let cfg = crate::config::Config::parse(
            "[[forward.remote_write]]\nurl = \"http://127.0.0.1:9/w\"\n",
            "t.toml",
        )
        .unwrap();
        Destination::new(
            &cfg.forward,
            &cfg.forward.remote_write[0],
            store.clone(),
            Arc::default(),
        )
        .unwrap()
    }

    fn day(d: i64, n: i64) -> WriteBatch {
        WriteBatch {
            series: vec![(
                Labels::from_pairs([("__name__", "x")]),
                (0..n)
                    .map(|i| Sample {
                        t: d * 86_400_000 + i * 1000,
                        v: 1.0,
                    })
                    .collect(),
            )],
            metadata: vec![],
        }
    }

    #[test]
    fn samples_evicted_before_they_were_sent_are_counted_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_with(
            StoreOptions {
                path: dir.path().to_path_buf(),
                flush_interval: Duration::from_secs(3600),
            },
            Limits {
                budget: Budget::Bytes(1),
                ..Limits::default()
            },
        )
        .unwrap();
        store.append(day(0, 300)).unwrap();
        store.flush().unwrap();
        let mut d = destination(&store);
        assert_eq!(
            d.cursor.oldest_unsent(),
            0,
            "a new destination starts at the oldest day"
        );
        // 100 samples of day 0 were sent before the budget keeper deletes the day.
        d.note_sent(0, 0, 100);
        store.append(day(1, 10)).unwrap();
        store.flush().unwrap();
        assert_eq!(store.evictions_after(0).len(), 1);
        assert!(d.account_evictions(0));
        assert_eq!(d.stats.dropped_evicted.load(Ordering::Relaxed), 200);
        assert_eq!(d.cursor.oldest_unsent(), 86_400_000);
        assert!(!d.account_evictions(0), "counted once");
        store.close().unwrap();
    }

    #[test]
    fn a_saved_cursor_is_found_again_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            Store::open(StoreOptions {
                path: dir.path().to_path_buf(),
                flush_interval: Duration::from_secs(3600),
            })
            .unwrap()
        };
        let store = open();
        store.append(day(0, 5)).unwrap();
        let mut d = destination(&store);
        d.cursor.live_mut().from = 4_000;
        d.save().unwrap();
        drop(d);
        store.close().unwrap();
        let store = open();
        let d = destination(&store);
        assert_eq!(d.cursor.oldest_unsent(), 4_000);
        store.close().unwrap();
    }

    #[test]
    fn requests_decode_as_remote_write_with_external_labels_merged_in_order() {
        use crate::model::prompb::{Label, Sample as PbSample, TimeSeries, WriteRequest};
        use prost::Message;
        let external = vec![
            ("cluster".to_string(), "lab".to_string()),
            ("job".to_string(), "ignored".to_string()),
            ("zone".to_string(), "z".to_string()),
        ];
        let labels = Labels::from_pairs([("__name__", "up"), ("job", "node")]);
        let mut buf = Vec::new();
        let samples = [
            Sample { t: -5, v: 0.0 },
            Sample {
                t: 1_700_000_000_000,
                v: f64::NAN,
            },
        ];
        encode_series(&mut buf, &labels, &external, &samples);
        encode_series(
            &mut buf,
            &Labels::from_pairs([("__name__", "a")]),
            &[],
            &samples[..1],
        );
        let req = WriteRequest::decode(buf.as_slice()).unwrap();
        let l = |n: &str, v: &str| Label {
            name: n.into(),
            value: v.into(),
        };
        assert_eq!(
            req.timeseries[0].labels,
            [
                l("__name__", "up"),
                l("cluster", "lab"),
                l("job", "node"),
                l("zone", "z")
            ]
        );
        assert_eq!(
            req.timeseries[0].samples[0],
            PbSample {
                value: 0.0,
                timestamp: -5
            }
        );
        assert!(req.timeseries[0].samples[1].value.is_nan());
        assert_eq!(
            req.timeseries[1],
            TimeSeries {
                labels: vec![l("__name__", "a")],
                samples: vec![PbSample {
                    value: 0.0,
                    timestamp: -5
                }],
                histograms: vec![],
            }
        );
    }
}
