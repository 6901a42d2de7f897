//! The default config on this host: node_* metrics are collected and queryable, and the
//! values that cannot drift equal what /proc says.

mod common;

use common::Picket;
use std::time::{Duration, Instant};

fn mem_total_bytes() -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|l| l.starts_with("MemTotal:")).unwrap();
    let kb: f64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024.0
}

#[test]
fn host_metrics_are_served_and_mem_total_equals_proc_meminfo() {
    let p = Picket::start("[collect.host]\ninterval = \"1s\"\n[collect.self]\ninterval = \"1s\"\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    let now = || {
        format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64()
        )
    };
    let mut result = serde_json::Value::Null;
    while Instant::now() < deadline {
        result = p.query("node_memory_MemTotal_bytes{job=\"node\"}", &now());
        if result.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let v: f64 = result[0]["value"][1]
        .as_str()
        .expect("a value")
        .parse()
        .unwrap();
    assert_eq!(v, mem_total_bytes());
    // Target labels as a Prometheus scraping node_exporter would attach them.
    let instance = result[0]["metric"]["instance"].as_str().unwrap_or("");
    assert!(!instance.is_empty(), "{result}");
    // Self metrics are stored like any other source.
    let r = p.query("process_resident_memory_bytes{job=\"picket\"}", &now());
    assert_eq!(r.as_array().map(Vec::len), Some(1), "{r}");
    // Metadata of host families is recorded for Grafana's hints.
    let (_, md) = p.get_json("/api/v1/metadata?metric=node_memory_MemTotal_bytes");
    assert_eq!(
        md["data"]["node_memory_MemTotal_bytes"][0]["type"], "gauge",
        "{md}"
    );
}
