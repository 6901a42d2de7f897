//! End-to-end tests of the scraper with the real `picket` binary: a tiny exporter served
//! from this test process (std `TcpListener`, loopback only) and Debian's real
//! `prometheus-node-exporter`. Everything is checked through the Prometheus HTTP API.

mod common;

use common::bins::{NODE_EXPORTER, PROMETHEUS};
use common::tls::ca_and_leaf;
use common::{ChildGuard, Picket, QUIET_CONFIG, free_port};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the test exporter serves per path, and the headers of the requests it got.
#[derive(Default)]
struct ExporterState {
    /// path -> (content type, body, gzip it)
    routes: HashMap<String, (String, String, bool)>,
    requests: Vec<(String, HashMap<String, String>)>,
    /// Paths whose responses announce more bytes than they send (a body cut short).
    short: Vec<String>,
}

struct Exporter {
    addr: String,
    state: Arc<Mutex<ExporterState>>,
}

impl Exporter {
    fn start() -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(ExporterState::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || serve(conn, &st));
            }
        });
        Exporter { addr, state }
    }

    fn set(&self, path: &str, content_type: &str, body: &str, gzip: bool) {
        self.state.lock().unwrap().routes.insert(
            path.to_string(),
            (content_type.to_string(), body.to_string(), gzip),
        );
    }

    fn requests(&self, path: &str) -> Vec<HashMap<String, String>> {
        let st = self.state.lock().unwrap();
        st.requests
            .iter()
            .filter(|(p, _)| p.split('?').next() == Some(path))
            .map(|(_, h)| h.clone())
            .collect()
    }
}

fn serve(conn: TcpStream, state: &Mutex<ExporterState>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(conn.try_clone().expect("clone"));
    let mut first = String::new();
    if reader.read_line(&mut first).is_err() {
        return;
    }
    let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let route = {
        let mut st = state.lock().unwrap();
        st.requests.push((path.clone(), headers.clone()));
        let p = path.split('?').next().unwrap_or("");
        st.routes
            .get(p)
            .cloned()
            .map(|r| (r, st.short.iter().any(|s| s == p)))
    };
    let mut conn = conn;
    let Some(((ct, body, gzip), short)) = route else {
        let _ = conn
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let (body, encoding) = if gzip {
        assert!(
            headers
                .get("accept-encoding")
                .is_some_and(|v| v.contains("gzip")),
            "gzip route requested without Accept-Encoding: gzip"
        );
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        enc.write_all(body.as_bytes()).unwrap();
        (enc.finish().unwrap(), "Content-Encoding: gzip\r\n")
    } else {
        (body.into_bytes(), "")
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\n{encoding}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len() + if short { 100 } else { 0 }
    );
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(&body);
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Instant query at the current time.
fn query_now(p: &Picket, q: &str) -> Vec<serde_json::Value> {
    p.query(q, &format!("{:.3}", now_s()))
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Polls `q` until `ok` holds for its result; panics after `secs`.
fn wait_for(
    p: &Picket,
    q: &str,
    secs: u64,
    ok: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let r = query_now(p, q);
        if ok(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{q}: condition not met within {secs}s; last result {r:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn value(r: &serde_json::Value) -> f64 {
    r["value"][1]
        .as_str()
        .expect("value string")
        .parse()
        .expect("float")
}

fn single(p: &Picket, q: &str) -> f64 {
    let r = query_now(p, q);
    assert_eq!(r.len(), 1, "{q}: {r:?}");
    value(&r[0])
}

const TRICKY: &str = r#"# HELP tricky_total A counter with "quotes" and a \\ backslash.
# TYPE tricky_total counter
tricky_total{path="a\"b\\c\nd",job="theirs"} 42
tricky_total{path="plain"} 7
# TYPE weird gauge
weird{kind="nan"} NaN
weird{kind="inf"} +Inf
weird{kind="neginf"} -Inf
# TYPE req_seconds histogram
req_seconds_bucket{le="0.5"} 3
req_seconds_bucket{le="+Inf"} 5
req_seconds_sum 1.5
req_seconds_count 5
go_goroutines 12
removable 1
"#;

fn scrape_config(exporter: &Exporter, extra_jobs: &str) -> String {
    format!(
        r#"{QUIET_CONFIG}
[[scrape]]
job_name = "exp"
scrape_interval = "1s"
scrape_timeout = "900ms"
bearer_token = "s3cret"

[[scrape.static_configs]]
targets = ["{addr}"]
labels = {{ env = "test" }}

[[scrape.relabel_configs]]
source_labels = ["__address__"]
regex = "([^:]+):(\\d+)"
target_label = "host"
replacement = "$1"

[[scrape.metric_relabel_configs]]
source_labels = ["__name__"]
regex = "go_.*"
action = "drop"
{extra_jobs}"#,
        addr = exporter.addr
    )
}

#[test]
fn scraped_series_are_stored_with_target_labels_relabelling_and_report_series() {
    let exporter = Exporter::start();
    exporter.set(
        "/metrics",
        "text/plain; version=0.0.4; charset=utf-8",
        TRICKY,
        false,
    );
    let p = Picket::start(&scrape_config(&exporter, ""));
    wait_for(&p, r#"up{job="exp"}"#, 20, |r| {
        r.len() == 1 && value(&r[0]) == 1.0
    });

    let r = query_now(&p, r#"tricky_total{path="plain"}"#);
    assert_eq!(r.len(), 1, "{r:?}");
    let m = &r[0]["metric"];
    assert_eq!(m["job"], "exp");
    assert_eq!(m["instance"], exporter.addr.as_str());
    assert_eq!(m["env"], "test", "static_configs labels are attached");
    assert_eq!(
        m["host"], "127.0.0.1",
        "relabel_configs applied to the target"
    );
    assert!(m.get("__address__").is_none(), "__ labels are dropped: {m}");
    assert_eq!(value(&r[0]), 7.0);

    // Escapes in label values decoded; the clashing `job` kept as exported_job.
    let r = query_now(&p, "tricky_total{path=\"a\\\"b\\\\c\\nd\"}");
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0]["metric"]["exported_job"], "theirs");
    assert_eq!(r[0]["metric"]["job"], "exp");
    assert_eq!(value(&r[0]), 42.0);

    // NaN and infinities as the API renders them.
    let r = query_now(&p, r#"weird{job="exp"}"#);
    let by_kind: HashMap<String, String> = r
        .iter()
        .map(|s| {
            (
                s["metric"]["kind"].as_str().unwrap().to_string(),
                s["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(by_kind["nan"], "NaN");
    assert_eq!(by_kind["inf"], "+Inf");
    assert_eq!(by_kind["neginf"], "-Inf");
    assert_eq!(single(&p, r#"req_seconds_bucket{le="+Inf"}"#), 5.0);

    // metric_relabel_configs dropped go_*; the report series count it.
    assert!(query_now(&p, "go_goroutines").is_empty());
    assert_eq!(single(&p, r#"scrape_samples_scraped{job="exp"}"#), 11.0);
    assert_eq!(
        single(&p, r#"scrape_samples_post_metric_relabeling{job="exp"}"#),
        10.0
    );
    let d = single(&p, r#"scrape_duration_seconds{job="exp"}"#);
    assert!(d > 0.0 && d < 1.0, "{d}");
    let r = query_now(&p, r#"scrape_series_added{job="exp"}"#);
    assert_eq!(r.len(), 1);
    assert_eq!(
        r[0]["metric"]["env"], "test",
        "report series carry target labels"
    );

    // What the exporter saw: Prometheus' negotiation headers and the bearer token.
    let reqs = exporter.requests("/metrics");
    let h = reqs.last().expect("a request");
    assert!(
        h["accept"].starts_with("application/openmetrics-text;version=1.0.0"),
        "{h:?}"
    );
    assert!(h["accept"].contains("text/plain;version=0.0.4"), "{h:?}");
    assert_eq!(h["x-prometheus-scrape-timeout-seconds"], "0.9");
    assert_eq!(h["authorization"], "Bearer s3cret");

    // A series the exporter stops exposing goes stale at the next scrape.
    assert_eq!(single(&p, "removable"), 1.0);
    let before = reqs.len();
    exporter.set(
        "/metrics",
        "text/plain; version=0.0.4",
        &TRICKY.replace("removable 1\n", ""),
        false,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while exporter.requests("/metrics").len() < before + 2 {
        assert!(Instant::now() < deadline, "no further scrapes");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_for(&p, "removable", 5, |r| r.is_empty());
    assert_eq!(
        single(&p, r#"tricky_total{path="plain"}"#),
        7.0,
        "others stay"
    );
    p.stop();
}

#[test]
fn gzip_openmetrics_limits_and_shutdown_staleness() {
    let exporter = Exporter::start();
    exporter.set(
        "/om",
        "application/openmetrics-text; version=1.0.0; charset=utf-8",
        "# TYPE om_requests counter\n# HELP om_requests Requests.\n\
         om_requests_total{code=\"200\"} 17 # {trace_id=\"abc\"} 1.0\n\
         # TYPE om_temp_celsius gauge\n# UNIT om_temp_celsius celsius\nom_temp_celsius 21.5\n# EOF\n",
        true,
    );
    exporter.set(
        "/many",
        "text/plain; version=0.0.4",
        "a 1\nb 2\nc 3\n",
        false,
    );
    exporter.set(
        "/cut",
        "application/openmetrics-text; version=1.0.0",
        "ok 1\n",
        false,
    );
    let extra = format!(
        r#"
[[scrape]]
job_name = "om"
scrape_interval = "1s"
metrics_path = "/om"
static_configs = [{{ targets = ["{a}"] }}]

[[scrape]]
job_name = "limited"
scrape_interval = "1s"
metrics_path = "/many"
sample_limit = 2
static_configs = [{{ targets = ["{a}"] }}]

[[scrape]]
job_name = "cut"
scrape_interval = "1s"
metrics_path = "/cut"
static_configs = [{{ targets = ["{a}"] }}]

[[scrape]]
job_name = "short"
scrape_interval = "1s"
metrics_path = "/short"
static_configs = [{{ targets = ["{a}"] }}]
"#,
        a = exporter.addr
    );
    let config = format!("{QUIET_CONFIG}{extra}");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let p = Picket::start_in(tmp.path(), &data, &config);

    wait_for(&p, r#"up{job="om"}"#, 20, |r| {
        r.len() == 1 && value(&r[0]) == 1.0
    });
    assert_eq!(single(&p, r#"om_requests_total{code="200"}"#), 17.0);
    assert_eq!(single(&p, "om_temp_celsius"), 21.5);
    let (_, meta) = p.get_json("/api/v1/metadata");
    assert_eq!(
        meta["data"]["om_temp_celsius"][0]["unit"], "celsius",
        "{meta}"
    );

    // sample_limit: up = 0 and nothing from the scrape stored.
    wait_for(&p, r#"up{job="limited"}"#, 20, |r| r.len() == 1);
    assert_eq!(single(&p, r#"up{job="limited"}"#), 0.0);
    assert!(query_now(&p, r#"{job="limited", __name__=~"a|b|c"}"#).is_empty());
    assert_eq!(
        single(
            &p,
            r#"scrape_samples_post_metric_relabeling{job="limited"}"#
        ),
        3.0
    );

    // An OpenMetrics body without `# EOF` was cut short: the scrape fails.
    wait_for(&p, r#"up{job="cut"}"#, 20, |r| r.len() == 1);
    assert_eq!(single(&p, r#"up{job="cut"}"#), 0.0);
    assert!(query_now(&p, "ok").is_empty());
    // A text body shorter than its Content-Length was cut short too.
    wait_for(&p, r#"up{job="short"}"#, 20, |r| r.len() == 1);
    assert_eq!(single(&p, r#"up{job="short"}"#), 0.0);
    assert!(query_now(&p, "short_metric").is_empty());

    // Self-metrics count the failures by reason.
    let (code, text) = p.get("/metrics");
    assert_eq!(code, 200);
    let failures = |reason: &str| -> f64 {
        let key = format!("picket_scrape_failures_total{{reason=\"{reason}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .unwrap_or_else(|| panic!("{key} missing"))
            .parse()
            .unwrap()
    };
    assert!(failures("sample_limit") >= 1.0, "{text}");
    assert!(failures("parse") >= 1.0, "{text}");
    assert!(failures("http") >= 1.0, "{text}");

    // A clean shutdown writes staleness markers for every target: after a restart
    // without scrape jobs, `up` is gone at once instead of lingering for 5 minutes.
    p.stop();
    let p = Picket::start_in(tmp.path(), &data, QUIET_CONFIG);
    assert!(query_now(&p, "up").is_empty(), "{:?}", query_now(&p, "up"));
    assert!(query_now(&p, "om_temp_celsius").is_empty());
    // The data itself is still there just before the markers.
    let r = p.query(
        "count_over_time(om_temp_celsius[10m])",
        &format!("{:.3}", now_s()),
    );
    assert!(!r.as_array().unwrap().is_empty(), "{r}");
    p.stop();
}

fn meminfo_total_bytes() -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kb: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("MemTotal in /proc/meminfo");
    kb * 1024.0
}

#[test]
fn debian_node_exporter_is_scraped_like_prometheus_would() {
    assert!(
        std::path::Path::new(NODE_EXPORTER).exists(),
        "{NODE_EXPORTER} is missing: `apt-get install prometheus-node-exporter`"
    );
    let port = free_port();
    let child = Command::new(NODE_EXPORTER)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start node_exporter");
    let _guard = ChildGuard(child);
    // Wait until it listens, so the first scrape does not race its start-up.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "node_exporter did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let config = format!(
        "{QUIET_CONFIG}\n[[scrape]]\njob_name = \"node\"\nscrape_interval = \"2s\"\n\
         static_configs = [{{ targets = [\"127.0.0.1:{port}\"] }}]\n"
    );
    let p = Picket::start(&config);
    wait_for(&p, r#"up{job="node"}"#, 30, |r| {
        r.len() == 1 && value(&r[0]) == 1.0
    });
    let total = single(&p, r#"node_memory_MemTotal_bytes{job="node"}"#);
    assert_eq!(total, meminfo_total_bytes());
    let scraped = single(&p, r#"scrape_samples_scraped{job="node"}"#);
    assert!(
        scraped > 200.0,
        "node_exporter exposes hundreds of samples: {scraped}"
    );
    let r = query_now(&p, r#"node_cpu_seconds_total{job="node", mode="idle"}"#);
    assert!(!r.is_empty(), "per-CPU series with labels");
    assert_eq!(
        r[0]["metric"]["instance"],
        format!("127.0.0.1:{port}").as_str()
    );
    p.stop();
}

#[test]
fn file_sd_targets_are_reread_on_change_and_removed_targets_go_stale() {
    let exporter = Exporter::start();
    exporter.set(
        "/metrics",
        "text/plain; version=0.0.4",
        "sd_metric 3\n",
        false,
    );
    let dir = tempfile::tempdir().unwrap();
    let write = |body: &str| {
        // Write then rename, so the scraper never reads half a file.
        let tmp = dir.path().join("targets.json.tmp");
        std::fs::write(&tmp, body).unwrap();
        std::fs::rename(&tmp, dir.path().join("targets.json")).unwrap();
    };
    write(&format!(
        r#"[{{"targets": ["{}"], "labels": {{"group": "one"}}}}]"#,
        exporter.addr
    ));
    std::fs::write(
        dir.path().join("more.yml"),
        format!(
            "- targets: ['{}']\n  labels:\n    group: yaml\n",
            exporter.addr
        ),
    )
    .unwrap();
    let config = format!(
        "{QUIET_CONFIG}\n[[scrape]]\njob_name = \"sd\"\nscrape_interval = \"1s\"\n\
         [[scrape.file_sd_configs]]\nfiles = [\"{0}/*.json\", \"{0}/*.yml\"]\nrefresh_interval = \"1s\"\n",
        dir.path().display()
    );
    let p = Picket::start(&config);
    wait_for(&p, r#"up{job="sd", group="one"}"#, 20, |r| {
        r.len() == 1 && value(&r[0]) == 1.0
    });
    wait_for(&p, r#"sd_metric{group="yaml"}"#, 20, |r| r.len() == 1);
    write(&format!(
        r#"[{{"targets": ["{}"], "labels": {{"group": "two"}}}}]"#,
        exporter.addr
    ));
    wait_for(&p, r#"up{job="sd", group="two"}"#, 20, |r| {
        r.len() == 1 && value(&r[0]) == 1.0
    });
    // The old target was stopped: its series got staleness markers at once.
    wait_for(&p, r#"{job="sd", group="one"}"#, 10, |r| r.is_empty());
    assert_eq!(single(&p, r#"sd_metric{group="yaml"}"#), 3.0);
    p.stop();
}

#[test]
fn the_global_series_limit_fails_scrapes_that_would_pass_it() {
    let exporter = Exporter::start();
    exporter.set(
        "/metrics",
        "text/plain; version=0.0.4",
        "a 1\nb 2\nc 3\n",
        false,
    );
    let config = format!(
        "{QUIET_CONFIG}[collect.scrape]\nseries_limit = 2\n\n[[scrape]]\njob_name = \"big\"\n\
         scrape_interval = \"1s\"\nstatic_configs = [{{ targets = [\"{}\"] }}]\n",
        exporter.addr
    );
    let p = Picket::start(&config);
    wait_for(&p, r#"up{job="big"}"#, 20, |r| r.len() == 1);
    assert_eq!(single(&p, r#"up{job="big"}"#), 0.0);
    assert!(query_now(&p, r#"{__name__=~"a|b|c"}"#).is_empty());
    let (_, text) = p.get("/metrics");
    assert!(
        text.lines().any(|l| l
            .starts_with("picket_scrape_failures_total{reason=\"series_limit\"} ")
            && !l.ends_with(" 0")),
        "{text}"
    );
    // Under the limit the same target scrapes fine.
    exporter.set("/metrics", "text/plain; version=0.0.4", "a 1\n", false);
    wait_for(&p, r#"up{job="big"}"#, 20, |r| {
        r.len() == 1 && value(&r[0]) == 1.0
    });
    assert_eq!(single(&p, "a"), 1.0);
    p.stop();
}

#[test]
fn https_targets_are_verified_against_tls_config_ca_file() {
    // A throwaway CA and a leaf certificate for 127.0.0.1, served by node_exporter's own
    // TLS (`--web.config.file`).
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ca_and_leaf(d);
    std::fs::write(
        d.join("web.yml"),
        format!(
            "tls_server_config:\n  cert_file: {0}/leaf.pem\n  key_file: {0}/leaf.key\n",
            d.display()
        ),
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(NODE_EXPORTER)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--web.config.file={}", d.join("web.yml").display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start node_exporter");
    let _guard = ChildGuard(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "node_exporter did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    let job = |name: &str, tls: &str| {
        format!(
            "\n[[scrape]]\njob_name = \"{name}\"\nscheme = \"https\"\nscrape_interval = \"2s\"\n\
             static_configs = [{{ targets = [\"127.0.0.1:{port}\"] }}]\n{tls}"
        )
    };
    let config = format!(
        "{QUIET_CONFIG}{}{}{}",
        job(
            "trusted",
            &format!("tls_config = {{ ca_file = \"{}/ca.pem\" }}\n", d.display())
        ),
        job("untrusted", ""),
        job(
            "skip_verify",
            "tls_config = { insecure_skip_verify = true }\n"
        ),
    );
    let p = Picket::start(&config);
    wait_for(&p, r#"up{job="trusted"}"#, 30, |r| {
        r.len() == 1 && value(&r[0]) == 1.0
    });
    assert_eq!(
        single(&p, r#"node_memory_MemTotal_bytes{job="trusted"}"#),
        meminfo_total_bytes()
    );
    wait_for(&p, r#"up{job="untrusted"}"#, 30, |r| r.len() == 1);
    assert_eq!(
        single(&p, r#"up{job="untrusted"}"#),
        0.0,
        "an unknown CA is refused"
    );
    wait_for(&p, r#"up{job="skip_verify"}"#, 30, |r| {
        r.len() == 1 && value(&r[0]) == 1.0
    });
    p.stop();
}

#[test]
fn a_job_over_its_target_limit_scrapes_none_of_its_targets() {
    let exporter = Exporter::start();
    exporter.set(
        "/metrics",
        "text/plain; version=0.0.4",
        "limited_metric 1\n",
        false,
    );
    let config = format!(
        "{QUIET_CONFIG}\n[[scrape]]\njob_name = \"tl\"\nscrape_interval = \"1s\"\ntarget_limit = 1\n\
         static_configs = [{{ targets = [\"{}\", \"127.0.0.1:9\"] }}]\n",
        exporter.addr
    );
    let p = Picket::start(&config);
    wait_for(&p, r#"up{job="tl"}"#, 20, |r| r.len() == 2);
    for r in query_now(&p, r#"up{job="tl"}"#) {
        assert_eq!(value(&r), 0.0, "{r}");
    }
    assert!(query_now(&p, "limited_metric").is_empty());
    assert!(
        exporter.requests("/metrics").is_empty(),
        "targets over the limit are not even fetched"
    );
    let (_, text) = p.get("/metrics");
    assert!(
        text.lines().any(|l| l
            .starts_with("picket_scrape_failures_total{reason=\"target_limit\"} ")
            && !l.ends_with(" 0")),
        "{text}"
    );
    p.stop();
}

/// Debian's Prometheus (2.42) and Picket scrape the same exporter with the same job;
/// afterwards both must hold exactly the same label sets: scraped series after
/// `honor_labels: false` conflict handling and metric_relabel_configs, and the report
/// series.
///
/// One known difference is kept out of the body: Prometheus 2.42 anchors relabel regexes
/// as `^(?:…)$`, so `.` does not match a newline in a label value; Prometheus 3.x (which
/// Picket follows) uses `^(?s:…)$`. The newline-holding value is therefore never matched
/// against a `.*` here.
#[test]
fn picket_stores_the_same_series_as_prometheus_for_the_same_job() {
    assert!(
        std::path::Path::new(PROMETHEUS).exists(),
        "{PROMETHEUS} is missing: `apt-get install prometheus`"
    );
    let exporter = Exporter::start();
    let body = "# HELP conflict_total Has labels that clash with target labels.\n\
                # TYPE conflict_total counter\n\
                conflict_total{job=\"theirs\",instance=\"elsewhere\",exported_job=\"x\"} 1\n\
                esc{path=\"a\\\"b\\\\c\\nd\",role=\"Web\"} 2\n\
                esc{path=\"plain\",role=\"db\"} 3\n\
                go_goroutines 4\n\
                req_bucket{le=\"0.1\"} 1\nreq_bucket{le=\"+Inf\"} 2\nreq_sum 0.3\nreq_count 2\n\
                meta{__meta_kept=\"m\",drop_me=\"1\"} 5\n";
    exporter.set("/metrics", "text/plain; version=0.0.4", body, false);
    let job = serde_json::json!({
        "job_name": "diff",
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "static_configs": [{ "targets": [exporter.addr], "labels": { "env": "t" } }],
        "metric_relabel_configs": [
            { "source_labels": ["__name__"], "regex": "go_.*", "action": "drop" },
            { "source_labels": ["role"], "target_label": "role_lc", "action": "lowercase" },
            { "source_labels": ["path", "role"], "separator": "|", "regex": "(.*)\\|db", "target_label": "db_path", "replacement": "$1" },
            { "regex": "drop_.*", "action": "labeldrop" },
            { "source_labels": ["__name__"], "regex": "req_(.*)", "target_label": "part", "replacement": "${1}" }
        ]
    });
    let dir = tempfile::tempdir().unwrap();
    let prom_config = serde_json::json!({ "scrape_configs": [job.clone()] });
    std::fs::write(dir.path().join("p.yml"), prom_config.to_string()).unwrap();
    let port = free_port();
    let child = Command::new(PROMETHEUS)
        .arg(format!(
            "--config.file={}",
            dir.path().join("p.yml").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start prometheus");
    let _guard = ChildGuard(child);
    let picket_config = format!(
        "{QUIET_CONFIG}\n{}",
        toml::to_string(&serde_json::json!({ "scrape": [job] })).unwrap()
    );
    let p = Picket::start(&picket_config);

    let series = |base: &str| -> Option<std::collections::BTreeSet<Vec<(String, String)>>> {
        let r = common::client()
            .get(format!("{base}/api/v1/series"))
            .query(&[("match[]", r#"{job="diff"}"#)])
            .send()
            .ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.text().ok()?).ok()?;
        let set = v["data"]
            .as_array()?
            .iter()
            .map(|s| {
                let mut l: Vec<(String, String)> = s
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                l.sort();
                l
            })
            .collect();
        Some(set)
    };
    let prom_url = format!("http://127.0.0.1:{port}");
    let picket_url = format!("http://{}", p.addr);
    // Both scrape every second; wait until both hold every series of one full scrape.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (want, got) = loop {
        let want = series(&prom_url).unwrap_or_default();
        let got = series(&picket_url).unwrap_or_default();
        if want.len() >= 13 && want == got {
            break (want, got);
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus ({} series) and Picket ({} series) disagree:\n\
             only Prometheus: {:#?}\nonly Picket: {:#?}",
            want.len(),
            got.len(),
            want.difference(&got).collect::<Vec<_>>(),
            got.difference(&want).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(want, got);
    // 8 scraped series (go_goroutines dropped) and the 5 report series.
    assert_eq!(got.len(), 13, "{got:#?}");
    p.stop();
}
