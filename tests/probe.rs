//! Health probes end to end, and against Debian's real `prometheus-blackbox-exporter` on
//! the same targets: a small HTTP server in this process, `openssl s_server` with a
//! certificate made by the test (its own CA), a TCP listener, a closed port, and
//! Debian's `dnsmasq` answering `example.test`, and an SSH-like banner for TCP
//! `query_response` dialogues. For every probe the set of metric names
//! and the deterministic values (success, status code, redirects, SSL, HTTP version,
//! regex failure, IP protocol, content length, certificate expiry, TLS version, DNS
//! record counts) must match blackbox_exporter's.

mod common;

use common::bins::{BLACKBOX, DNSMASQ};
use common::tls::ca_and_leaf;
use common::{ChildGuard, Picket, QUIET_CONFIG, free_port};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A loopback port free for both UDP and TCP: dnsmasq listens on both and exits when
/// either is taken.
fn free_dns_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Starts dnsmasq answering `example.test` with 10.0.0.1 on a free port, and returns it
/// once it answers. A port taken between the choice and dnsmasq's bind makes it exit: then
/// another port is tried (at most five).
fn start_dnsmasq() -> (ChildGuard, u16) {
    for _ in 0..5 {
        let port = free_dns_port();
        let mut child = ChildGuard(
            Command::new(DNSMASQ)
                .args([
                    "--no-daemon",
                    "--listen-address=127.0.0.1",
                    "--bind-interfaces",
                    "--no-resolv",
                    "--no-hosts",
                    "--conf-file=/dev/null",
                    "--pid-file=",
                    "--user=root",
                    "--address=/example.test/10.0.0.1",
                ])
                .arg(format!("--port={port}"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("dnsmasq is installed by .ci/test"),
        );
        if wait_dns(port, &mut child) {
            return (child, port);
        }
    }
    panic!("dnsmasq did not start on any of five ports");
}

fn wait_tcp(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until dnsmasq on `port` answers a query for `example.test` (it binds its port a
/// moment after it starts, and a probe sent before then fails); false when it exited.
fn wait_dns(port: u16, dnsmasq: &mut ChildGuard) -> bool {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    // ID 0x7e57, recursion desired, one question: example.test A IN.
    let mut query = vec![0x7e, 0x57, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in ["example", "test"] {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut answer = [0u8; 512];
    loop {
        let _ = socket.send_to(&query, ("127.0.0.1", port));
        if let Ok(n) = socket.recv(&mut answer)
            && n >= 2
            && answer[..2] == query[..2]
        {
            return true;
        }
        if matches!(dnsmasq.0.try_wait(), Ok(Some(_))) {
            return false;
        }
        assert!(
            Instant::now() < deadline,
            "dnsmasq does not answer on {port}"
        );
    }
}

/// The test's web server: `/ok` (200, "hello world"), `/missing` (404), `/redirect`
/// (302 to `/ok`).
fn web_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut first = String::new();
            let mut r = BufReader::new(conn.try_clone().unwrap());
            if r.read_line(&mut first).is_err() {
                continue;
            }
            loop {
                let mut l = String::new();
                if r.read_line(&mut l).unwrap_or(0) == 0 || l.trim().is_empty() {
                    break;
                }
            }
            let path = first.split_whitespace().nth(1).unwrap_or("/").to_string();
            let resp = match path.as_str() {
                "/ok" => "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\nConnection: close\r\n\r\nhello world".to_string(),
                "/redirect" => "HTTP/1.1 302 Found\r\nLocation: /ok\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_string(),
                _ => "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found".to_string(),
            };
            let _ = conn.write_all(resp.as_bytes());
        }
    });
    port
}

/// An SSH-like server: sends a banner line, waits up to 1 s for a line, then closes.
fn banner_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ = conn.write_all(b"SSH-2.0-PicketTest_1.0\r\n");
                let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
                let mut line = String::new();
                let _ = BufReader::new(&conn).read_line(&mut line);
            });
        }
    });
    port
}

/// Metric samples keyed `name` or `name{label="value"}` for the one label a probe
/// gauge may carry (`phase`, `version`).
type Metrics = BTreeMap<String, f64>;

fn key(name: &str, labels: &[(String, String)]) -> String {
    match labels.iter().find(|(k, _)| k == "phase" || k == "version") {
        Some((k, v)) => format!("{name}{{{k}=\"{v}\"}}"),
        None => name.to_string(),
    }
}

/// Parses blackbox_exporter's text output.
fn parse_text(text: &str) -> Metrics {
    let mut out = Metrics::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => {
                let labels = rest
                    .trim_end_matches('}')
                    .split("\",")
                    .filter_map(|kv| kv.split_once("=\""))
                    .map(|(k, v)| (k.to_string(), v.trim_end_matches('"').to_string()))
                    .collect::<Vec<_>>();
                (n, labels)
            }
            None => (series, Vec::new()),
        };
        out.insert(key(name, &labels), value.parse().unwrap());
    }
    out
}

fn picket_metrics(p: &Picket, job: &str) -> Metrics {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let r = p.query(&format!("{{job=\"{job}\"}}"), &now.to_string());
    let mut out = Metrics::new();
    for s in r.as_array().unwrap() {
        let m = s["metric"].as_object().unwrap();
        assert_eq!(m["instance"].as_str().map(str::is_empty), Some(false));
        let labels: Vec<(String, String)> = m
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let name = m["__name__"].as_str().unwrap();
        out.insert(
            key(name, &labels),
            s["value"][1].as_str().unwrap().parse().unwrap(),
        );
    }
    out
}

/// Metrics blackbox_exporter has that Picket does not export (yet).
const NOT_EXPORTED: [&str; 3] = [
    "probe_ssl_last_chain_info",
    "probe_http_last_modified_timestamp_seconds",
    "probe_dns_serial",
];

/// Values that do not depend on timing.
const COMPARED: [&str; 15] = [
    "probe_success",
    "probe_ip_addr_hash",
    "probe_http_status_code",
    "probe_http_redirects",
    "probe_http_ssl",
    "probe_http_version",
    "probe_failed_due_to_regex",
    "probe_ip_protocol",
    "probe_http_content_length",
    "probe_ssl_earliest_cert_expiry",
    "probe_ssl_last_chain_expiry_timestamp_seconds",
    "probe_dns_answer_rrs",
    "probe_dns_authority_rrs",
    "probe_dns_additional_rrs",
    "probe_dns_query_succeeded",
];

#[test]
fn probes_match_blackbox_exporter() {
    let dir = tempfile::tempdir().unwrap();
    ca_and_leaf(dir.path());
    let web = web_server();
    let tls_port = free_port();
    let _s_server = ChildGuard(
        Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-accept"])
            .arg(format!("127.0.0.1:{tls_port}"))
            .args(["-cert", "leaf.pem", "-key", "leaf.key"])
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server"),
    );
    wait_tcp(tls_port);
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_port = tcp.local_addr().unwrap().port();
    std::thread::spawn(move || for _conn in tcp.incoming() {});
    let banner_port = banner_server();
    let closed_port = free_port();
    let (_dnsmasq, dns_port) = start_dnsmasq();
    let ca = dir.path().join("ca.pem");
    let ca = ca.display();

    // (picket probe name, blackbox module, target)
    let probes = [
        ("http_ok", "http_ok", format!("http://127.0.0.1:{web}/ok")),
        (
            "http_404",
            "http_plain",
            format!("http://127.0.0.1:{web}/missing"),
        ),
        (
            "http_redirect",
            "http_plain",
            format!("http://127.0.0.1:{web}/redirect"),
        ),
        (
            "http_regex",
            "http_regex",
            format!("http://127.0.0.1:{web}/ok"),
        ),
        ("https", "https", format!("https://localhost:{tls_port}/")),
        ("tcp_open", "tcp", format!("127.0.0.1:{tcp_port}")),
        ("tcp_closed", "tcp", format!("127.0.0.1:{closed_port}")),
        (
            "tcp_banner",
            "tcp_banner",
            format!("127.0.0.1:{banner_port}"),
        ),
        (
            "tcp_banner_bad",
            "tcp_banner_bad",
            format!("127.0.0.1:{banner_port}"),
        ),
        ("tcp_tls", "tcp_tls", format!("localhost:{tls_port}")),
        ("dns_ok", "dns_ok", format!("127.0.0.1:{dns_port}")),
        (
            "dns_refused",
            "dns_refused",
            format!("127.0.0.1:{dns_port}"),
        ),
    ];
    let blackbox_yml = format!(
        "modules:\n\
         \x20 http_ok: {{prober: http, timeout: 5s, http: {{preferred_ip_protocol: ip4, fail_if_body_not_matches_regexp: [hello]}}}}\n\
         \x20 http_plain: {{prober: http, timeout: 5s, http: {{preferred_ip_protocol: ip4}}}}\n\
         \x20 http_regex: {{prober: http, timeout: 5s, http: {{preferred_ip_protocol: ip4, fail_if_body_matches_regexp: [world]}}}}\n\
         \x20 https: {{prober: http, timeout: 5s, http: {{preferred_ip_protocol: ip4, tls_config: {{ca_file: \"{ca}\"}}}}}}\n\
         \x20 tcp: {{prober: tcp, timeout: 5s, tcp: {{preferred_ip_protocol: ip4}}}}\n\
         \x20 tcp_banner: {{prober: tcp, timeout: 5s, tcp: {{preferred_ip_protocol: ip4, query_response: [{{expect: \"^SSH-2.0-\"}}, {{send: QUIT}}]}}}}\n\
         \x20 tcp_banner_bad: {{prober: tcp, timeout: 5s, tcp: {{preferred_ip_protocol: ip4, query_response: [{{expect: \"^220 \"}}]}}}}\n\
         \x20 tcp_tls: {{prober: tcp, timeout: 5s, tcp: {{preferred_ip_protocol: ip4, tls: true, tls_config: {{ca_file: \"{ca}\"}}}}}}\n\
         \x20 dns_ok: {{prober: dns, timeout: 5s, dns: {{preferred_ip_protocol: ip4, query_name: example.test, query_type: A}}}}\n\
         \x20 dns_refused: {{prober: dns, timeout: 5s, dns: {{preferred_ip_protocol: ip4, query_name: nothing.invalid, query_type: A}}}}\n"
    );
    std::fs::write(dir.path().join("blackbox.yml"), blackbox_yml).unwrap();
    let bb_port = free_port();
    let _blackbox = ChildGuard(
        Command::new(BLACKBOX)
            .arg(format!(
                "--config.file={}",
                dir.path().join("blackbox.yml").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{bb_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus-blackbox-exporter is installed by .ci/test"),
    );
    wait_tcp(bb_port);

    let common = "interval = \"2s\"\ntimeout = \"2s\"\npreferred_ip_protocol = \"ip4\"\n";
    let mut config = QUIET_CONFIG.to_string();
    let options = |name: &str| -> String {
        match name {
            "http_ok" => {
                "prober = \"http\"\nhttp = { fail_if_body_not_matches_regexp = [\"hello\"] }\n"
                    .into()
            }
            "http_regex" => {
                "prober = \"http\"\nhttp = { fail_if_body_matches_regexp = [\"world\"] }\n".into()
            }
            "https" => {
                format!("prober = \"http\"\nhttp = {{ tls_config = {{ ca_file = \"{ca}\" }} }}\n")
            }
            "tcp_tls" => format!(
                "prober = \"tcp\"\ntcp = {{ tls = true, tls_config = {{ ca_file = \"{ca}\" }} }}\n"
            ),
            "tcp_banner" => "prober = \"tcp\"\ntcp = { query_response = [{ expect = \"^SSH-2.0-\" }, { send = \"QUIT\" }] }\n".into(),
            "tcp_banner_bad" => "prober = \"tcp\"\ntcp = { query_response = [{ expect = \"^220 \" }] }\n".into(),
            "dns_ok" => {
                "prober = \"dns\"\ndns = { query_name = \"example.test\", query_type = \"A\" }\n"
                    .into()
            }
            "dns_refused" => {
                "prober = \"dns\"\ndns = { query_name = \"nothing.invalid\", query_type = \"A\" }\n"
                    .into()
            }
            n if n.starts_with("tcp") => "prober = \"tcp\"\n".into(),
            _ => "prober = \"http\"\n".into(),
        }
    };
    for (name, _, target) in &probes {
        config.push_str(&format!(
            "\n[[probe]]\nname = \"{name}\"\ntargets = [\"{target}\"]\n{common}{}",
            options(name)
        ));
    }
    let p = Picket::start(&config);

    let client = common::client();
    let mut results: BTreeMap<&str, (Metrics, Metrics)> = BTreeMap::new();
    for (name, module, target) in &probes {
        let deadline = Instant::now() + Duration::from_secs(30);
        let ours = loop {
            let m = picket_metrics(&p, name);
            if m.contains_key("probe_success") {
                break m;
            }
            assert!(Instant::now() < deadline, "probe {name} never ran");
            std::thread::sleep(Duration::from_millis(200));
        };
        let text = client
            .get(format!("http://127.0.0.1:{bb_port}/probe"))
            .query(&[("module", *module), ("target", target.as_str())])
            .send()
            .unwrap()
            .text()
            .unwrap();
        results.insert(name, (ours, parse_text(&text)));
    }

    for (name, (ours, theirs)) in &results {
        let our_names: BTreeSet<&str> = ours.keys().map(|k| k.split('{').next().unwrap()).collect();
        let their_names: BTreeSet<&str> = theirs
            .keys()
            .map(|k| k.split('{').next().unwrap())
            .collect();
        let extra: Vec<_> = our_names.difference(&their_names).collect();
        assert!(
            extra.is_empty(),
            "{name}: Picket exports {extra:?}, blackbox_exporter does not\nours {ours:?}\ntheirs {theirs:?}"
        );
        let missing: Vec<_> = their_names
            .difference(&our_names)
            .filter(|n| !NOT_EXPORTED.contains(n))
            .collect();
        assert!(
            missing.is_empty(),
            "{name}: Picket lacks {missing:?}\nours {ours:?}\ntheirs {theirs:?}"
        );
        for (k, v) in theirs {
            let base = k.split('{').next().unwrap();
            if COMPARED.contains(&base) || base == "probe_tls_version_info" {
                assert_eq!(
                    ours.get(k),
                    Some(v),
                    "{name}: {k}\nours {ours:?}\ntheirs {theirs:?}"
                );
            }
            if base.ends_with("_duration_seconds") {
                assert!(ours.contains_key(k), "{name}: phase {k} missing");
            }
        }
    }

    // And what each probe must say on its own.
    let get = |name: &str, k: &str| results[name].0.get(k).copied();
    let expect = [
        ("http_ok", "probe_success", 1.0),
        ("http_ok", "probe_http_status_code", 200.0),
        ("http_ok", "probe_http_content_length", 11.0),
        ("http_404", "probe_success", 0.0),
        ("http_404", "probe_http_status_code", 404.0),
        ("http_redirect", "probe_success", 1.0),
        ("http_redirect", "probe_http_redirects", 1.0),
        ("http_regex", "probe_success", 0.0),
        ("http_regex", "probe_failed_due_to_regex", 1.0),
        ("https", "probe_success", 1.0),
        ("https", "probe_http_ssl", 1.0),
        ("tcp_open", "probe_success", 1.0),
        ("tcp_closed", "probe_success", 0.0),
        ("tcp_tls", "probe_success", 1.0),
        ("tcp_banner", "probe_success", 1.0),
        ("tcp_banner_bad", "probe_success", 0.0),
        ("tcp_banner_bad", "probe_failed_due_to_regex", 1.0),
        ("dns_ok", "probe_success", 1.0),
        ("dns_ok", "probe_dns_answer_rrs", 1.0),
        ("dns_refused", "probe_success", 0.0),
    ];
    for (name, k, v) in expect {
        assert_eq!(get(name, k), Some(v), "{name} {k}: {:?}", results[name].0);
    }
    // The server certificate expires in 30 days (its CA in 60): the earliest is ~30 d.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let expiry = get("https", "probe_ssl_earliest_cert_expiry").unwrap();
    assert!((expiry - now - 86_400.0).abs() < 3_600.0, "expiry {expiry}");
    assert!(
        results["tcp_tls"]
            .0
            .keys()
            .any(|k| k.starts_with("probe_tls_version_info{version=\"TLS 1."))
    );
    p.stop();
}

#[test]
fn a_stopped_probe_leaves_staleness_markers() {
    let web = web_server();
    let config = format!(
        "{QUIET_CONFIG}\n[[probe]]\nname = \"web\"\nprober = \"http\"\ntargets = [\"127.0.0.1:{web}/ok\"]\ninterval = \"1s\"\n"
    );
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let p = Picket::start_in(tmp.path(), &data, &config);
    let deadline = Instant::now() + Duration::from_secs(30);
    let now = || {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64()
            .to_string()
    };
    loop {
        let q = format!("probe_success{{job=\"web\",instance=\"127.0.0.1:{web}/ok\"}}");
        let r = p.query(&q, &now());
        if r.as_array().unwrap().len() == 1 {
            assert_eq!(
                r[0]["value"][1], "1",
                "a target without scheme is http: {r}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the probe never succeeded");
        std::thread::sleep(Duration::from_millis(200));
    }
    p.stop();
    // Restarted without the probe, its series ended with the stop: nothing at "now".
    let p = Picket::start_in(tmp.path(), &data, QUIET_CONFIG);
    let r = p.query("probe_success", &now());
    assert!(r.as_array().unwrap().is_empty(), "stale after stop: {r}");
    let r = p.query("count_over_time(probe_success[5m])", &now());
    assert_eq!(
        r.as_array().unwrap().len(),
        1,
        "the samples were stored: {r}"
    );
    p.stop();
}
