//! Differential test of Picket's host collector against the real node_exporter
//! (Debian's `prometheus-node-exporter` 1.5.0, default collectors) on this machine.
//!
//! Both sides go through the text format: node_exporter's `/metrics`, and Picket's batch
//! rendered by `picket::collect::exposition`. So this also checks that the renderer's
//! output parses like node_exporter's.
//!
//! What must agree, family by family: every `node_*` family Picket emits exists in
//! node_exporter's output with the same type and the same label sets (names and values;
//! empty label values count as absent on both sides, as in Prometheus); the values that
//! cannot drift between two scrapes a moment apart are equal; the collectors Picket
//! implements report the same success; and node_exporter has no family Picket lacks
//! except the documented gaps (collectors Picket does not implement).

mod common;

use common::bins::NODE_EXPORTER;
use common::{ChildGuard, free_port};

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use picket::collect::Batch;
use picket::collect::exposition;
use picket::collect::host::HostCollector;

/// Families node_exporter may emit that Picket knowingly does not: collectors Picket
/// does not implement (see `appliance/collect/host/mod.rs`) and node_exporter's own.
const KNOWN_GAPS: &[&str] = &[
    "node_exporter_build_info",
    "node_bcache_",
    "node_btrfs_",
    "node_fibrechannel_",
    "node_infiniband_",
    "node_systemd_",
    "node_tape_",
    "node_xfs_",
    "node_zfs_",
];

/// Families whose label values legitimately differ between the two processes.
const VOLATILE_LABELS: &[&str] = &[
    "node_scrape_collector_duration_seconds",
    "node_scrape_collector_success",
];

type LabelSet = BTreeMap<String, String>;

#[derive(Debug, Default)]
struct ParsedFamily {
    kind: String,
    samples: Vec<(LabelSet, f64)>,
}

/// A small parser for the text format 0.0.4: `# TYPE` lines and samples. Samples are
/// attached to the family of the last `# TYPE` line whose name they extend (histogram
/// and summary suffixes).
fn parse_exposition(text: &str) -> BTreeMap<String, ParsedFamily> {
    let mut out: BTreeMap<String, ParsedFamily> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line has a type");
            current = name.to_string();
            out.entry(current.clone()).or_default().kind = kind.to_string();
            continue;
        }
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (name, labels, value) = parse_sample(line);
        let family = if name.starts_with(&current) {
            current.clone()
        } else {
            name.clone()
        };
        out.entry(family).or_default().samples.push((labels, value));
    }
    out
}

fn parse_sample(line: &str) -> (String, LabelSet, f64) {
    let name_end = line
        .find(['{', ' '])
        .unwrap_or_else(|| panic!("sample without value: {line:?}"));
    let name = line[..name_end].to_string();
    let mut labels = LabelSet::new();
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        let mut it = r.chars();
        loop {
            let mut c = it.next().expect("unterminated label set");
            while c == ',' || c == ' ' {
                c = it.next().expect("unterminated label set");
            }
            if c == '}' {
                break;
            }
            let mut lname = String::new();
            while c != '=' {
                lname.push(c);
                c = it.next().expect("label without =");
            }
            assert_eq!(it.next(), Some('"'), "label value is quoted in {line:?}");
            let mut value = String::new();
            loop {
                match it.next().expect("unterminated label value") {
                    '\\' => match it.next() {
                        Some('n') => value.push('\n'),
                        Some(c) => value.push(c),
                        None => break,
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            // Prometheus: an empty label value is the same as no label.
            if !value.is_empty() {
                labels.insert(lname, value);
            }
        }
        rest = it.as_str();
    }
    let value_str = rest.split_ascii_whitespace().next().expect("sample value");
    let value = match value_str {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}")),
    };
    (name, labels, value)
}

/// `GET /metrics` over HTTP/1.0 (the server closes the connection after the body).
fn fetch_metrics(port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header end"))?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("HTTP status: {head}")));
    }
    Ok(body.to_string())
}

fn scrape_node_exporter() -> String {
    assert!(
        Path::new(NODE_EXPORTER).exists(),
        "{NODE_EXPORTER} is missing: install Debian's node_exporter \
         (`apt-get install prometheus-node-exporter`); this test compares Picket against it"
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
    let mut last_err = None;
    for _ in 0..100 {
        match fetch_metrics(port) {
            Ok(body) => return body,
            Err(e) => {
                last_err = Some(e);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    panic!("node_exporter did not answer on port {port}: {last_err:?}");
}

fn scrape_picket() -> String {
    let mut c = HostCollector::default();
    let mut b = Batch::default();
    c.collect(&mut b);
    let mut text = String::new();
    exposition::render(&b, &mut text);
    text
}

fn label_name_sets(f: &ParsedFamily) -> BTreeSet<BTreeSet<String>> {
    f.samples
        .iter()
        .map(|(l, _)| l.keys().cloned().collect())
        .collect()
}

fn label_sets(f: &ParsedFamily) -> BTreeSet<LabelSet> {
    f.samples.iter().map(|(l, _)| l.clone()).collect()
}

fn value_of(f: &ParsedFamily, labels: &LabelSet) -> Option<f64> {
    f.samples.iter().find(|(l, _)| l == labels).map(|(_, v)| *v)
}

#[test]
fn picket_host_metrics_match_node_exporter() {
    let ne_text = scrape_node_exporter();
    let pk_text = scrape_picket();
    let mut ne = parse_exposition(&ne_text);
    let mut pk = parse_exposition(&pk_text);
    // Cross-compiled test binaries run under qemu-user, whose uname(2) reports the
    // emulated machine while the host's node_exporter reports the real one. Only then is
    // the `machine` label allowed to differ.
    let ne_machine = ne
        .get("node_uname_info")
        .and_then(|f| f.samples.first())
        .and_then(|(l, _)| l.get("machine").cloned());
    if ne_machine
        .as_deref()
        .is_some_and(|m| m != std::env::consts::ARCH)
    {
        println!(
            "emulated run ({} on {ne_machine:?}): not comparing uname's machine label",
            std::env::consts::ARCH
        );
        for fams in [&mut ne, &mut pk] {
            if let Some(f) = fams.get_mut("node_uname_info") {
                for (l, _) in &mut f.samples {
                    l.remove("machine");
                }
            }
        }
    }
    let mut problems: Vec<String> = Vec::new();

    // Every Picket family: exists, same type, same label names, same label values.
    for (name, pf) in &pk {
        assert!(
            name.starts_with("node_"),
            "Picket emitted non-node family {name}"
        );
        let Some(nf) = ne.get(name) else {
            problems.push(format!(
                "{name}: emitted by Picket, absent from node_exporter"
            ));
            continue;
        };
        if pf.kind != nf.kind {
            problems.push(format!(
                "{name}: type {} vs node_exporter {}",
                pf.kind, nf.kind
            ));
        }
        let (pn, nn) = (label_name_sets(pf), label_name_sets(nf));
        if !pn.is_subset(&nn) {
            problems.push(format!(
                "{name}: label names {pn:?} vs node_exporter {nn:?}"
            ));
            continue;
        }
        if VOLATILE_LABELS.contains(&name.as_str()) {
            continue;
        }
        let (pl, nl) = (label_sets(pf), label_sets(nf));
        if pl != nl {
            problems.push(format!(
                "{name}: label values differ\n  picket only: {:?}\n  node_exporter only: {:?}",
                pl.difference(&nl).collect::<Vec<_>>(),
                nl.difference(&pl).collect::<Vec<_>>()
            ));
        }
    }

    // Values that cannot drift between two scrapes.
    let exact = [
        "node_memory_MemTotal_bytes",
        "node_memory_SwapTotal_bytes",
        "node_boot_time_seconds",
        "node_filefd_maximum",
        "node_entropy_pool_size_bits",
        "node_filesystem_size_bytes",
        "node_filesystem_files",
        "node_filesystem_readonly",
        "node_network_mtu_bytes",
        "node_network_iface_id",
        "node_network_flags",
        "node_nf_conntrack_entries_limit",
        "node_disk_info",
        "node_uname_info",
        "node_os_info",
        "node_os_version",
        "node_time_zone_offset_seconds",
    ];
    for name in exact {
        let (Some(pf), Some(nf)) = (pk.get(name), ne.get(name)) else {
            if ne.contains_key(name) {
                problems.push(format!("{name}: node_exporter has it, Picket does not"));
            }
            continue;
        };
        for (labels, v) in &pf.samples {
            match value_of(nf, labels) {
                Some(nv) if nv == *v => {}
                other => problems.push(format!("{name}{labels:?}: {v} vs node_exporter {other:?}")),
            }
        }
    }

    // Same number of CPUs.
    let cpus = |f: Option<&ParsedFamily>| -> BTreeSet<String> {
        f.map(|f| {
            f.samples
                .iter()
                .filter_map(|(l, _)| l.get("cpu").cloned())
                .collect()
        })
        .unwrap_or_default()
    };
    let (pc, nc) = (
        cpus(pk.get("node_cpu_seconds_total")),
        cpus(ne.get("node_cpu_seconds_total")),
    );
    assert!(!pc.is_empty(), "Picket found no CPUs");
    if pc != nc {
        problems.push(format!("cpu ids {pc:?} vs node_exporter {nc:?}"));
    }

    // The collectors Picket implements succeed or fail as node_exporter's do.
    if let (Some(ps), Some(ns)) = (
        pk.get("node_scrape_collector_success"),
        ne.get("node_scrape_collector_success"),
    ) {
        for (labels, v) in &ps.samples {
            match value_of(ns, labels) {
                Some(nv) if nv == *v => {}
                other => problems.push(format!(
                    "collector {:?}: success {v} vs node_exporter {other:?}",
                    labels.get("collector")
                )),
            }
        }
    } else {
        problems.push("node_scrape_collector_success missing".into());
    }

    // Coverage: node_exporter families Picket lacks.
    let lacking: Vec<&String> = ne
        .keys()
        .filter(|n| n.starts_with("node_") && !pk.contains_key(*n))
        .collect();
    println!("node_exporter families Picket lacks: {lacking:?}");
    for n in lacking {
        if !KNOWN_GAPS.iter().any(|g| n.starts_with(g)) {
            problems.push(format!(
                "{n}: emitted by node_exporter, missing from Picket"
            ));
        }
    }
    // And a floor, so that a collector that silently stops emitting is noticed even if
    // node_exporter stops emitting the same family on some machine.
    for key in [
        "node_cpu_seconds_total",
        "node_memory_MemTotal_bytes",
        "node_load1",
        "node_filesystem_size_bytes",
        "node_disk_io_time_seconds_total",
        "node_network_receive_bytes_total",
        "node_network_up",
        "node_netstat_Tcp_CurrEstab",
        "node_sockstat_sockets_used",
        "node_context_switches_total",
        "node_vmstat_pgfault",
        "node_time_seconds",
        "node_timex_sync_status",
        "node_uname_info",
        "node_os_info",
        "node_filefd_allocated",
        "node_entropy_available_bits",
        "node_softnet_processed_total",
        "node_udp_queues",
    ] {
        if ne.contains_key(key) && !pk.contains_key(key) {
            problems.push(format!("key family {key} missing from Picket"));
        }
    }

    assert!(
        problems.is_empty(),
        "{} differences from node_exporter:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
