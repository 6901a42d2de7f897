//! End-to-end tests of store introspection and care against the real binary:
//! `/api/v1/status/tsdb`, `POST /api/v1/admin/snapshot` and `picket store
//! check|stats|snapshot`.

mod common;

use common::{Picket, QUIET_CONFIG, now_ms, picket_cli, series, write_request};

#[test]
fn tsdb_status_has_prometheus_shape_limits_and_picket_tiers() {
    let p = Picket::start(QUIET_CONFIG);
    let t = now_ms() - 60_000;
    let mut ts = Vec::new();
    for (name, n) in [("m_a", 3), ("m_b", 2), ("m_c", 1)] {
        for i in 0..n {
            ts.push(series(
                &[("__name__", name), ("inst", &format!("i{i}"))],
                &[(t, 1.0), (t + 1000, 2.0)],
            ));
        }
    }
    let (code, body) = p.remote_write(&write_request(ts), None);
    assert_eq!(code, 204, "{body}");
    let (code, v) = p.get_json("/api/v1/status/tsdb?limit=2");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["status"], "success");
    let d = &v["data"];
    assert_eq!(d["headStats"]["numSeries"], 6);
    // __name__ × 3 values + inst × 3 values.
    assert_eq!(d["headStats"]["numLabelPairs"], 6);
    assert_eq!(d["headStats"]["minTime"], t);
    assert_eq!(d["headStats"]["maxTime"], t + 1000);
    assert_eq!(
        d["seriesCountByMetricName"],
        serde_json::json!([{"name":"m_a","value":3},{"name":"m_b","value":2}])
    );
    for key in [
        "labelValueCountByLabelName",
        "memoryInBytesByLabelName",
        "seriesCountByLabelValuePair",
    ] {
        assert_eq!(d[key].as_array().map(Vec::len), Some(2), "{key}: {d}");
    }
    let tier = &d["picket"]["tiers"][0];
    assert_eq!(tier["name"], "raw");
    assert!(
        d["picket"]["budgetBytes"].as_u64().is_some_and(|b| b > 0),
        "{d}"
    );
    for bad in ["0", "-1", "x"] {
        let (code, v) = p.get_json(&format!("/api/v1/status/tsdb?limit={bad}"));
        assert_eq!(code, 400, "limit={bad}: {v}");
        assert_eq!(v["errorType"], "bad_data");
    }
    // The budget keeper's self-metrics, for alerts.
    let (code, metrics) = p.get("/metrics");
    assert_eq!(code, 200);
    for name in [
        "picket_store_evicted_partitions_total 0",
        "picket_store_retention_below_horizon 0",
        "picket_store_budget_bytes ",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    // Default limit is 10: 6 pairs of name=value fit.
    let (_, v) = p.get_json("/api/v1/status/tsdb");
    assert_eq!(
        v["data"]["seriesCountByLabelValuePair"]
            .as_array()
            .map(Vec::len),
        Some(6)
    );
}

#[test]
fn snapshot_through_the_server_then_check_stats_and_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let p = Picket::start_in(tmp.path(), &data, QUIET_CONFIG);
    let t = now_ms() - 3_600_000;
    let samples: Vec<(i64, f64)> = (0..500).map(|i| (t + i * 1000, i as f64)).collect();
    let (code, body) = p.remote_write(
        &write_request(vec![series(
            &[("__name__", "snap"), ("job", "a")],
            &samples,
        )]),
        None,
    );
    assert_eq!(code, 204, "{body}");

    // While Picket runs, the offline tools refuse its files instead of racing it.
    let data_s = data.to_str().unwrap();
    let (ok, _, err) = picket_cli(&["store", "check", "--data-dir", data_s]);
    assert!(!ok && err.contains("running Picket"), "{err}");
    let dest = tmp.path().join("copy");
    let dest_s = dest.to_str().unwrap();
    let (ok, _, err) = picket_cli(&["store", "snapshot", dest_s, "--data-dir", data_s]);
    assert!(!ok && err.contains("--server"), "{err}");

    let url = format!("http://{}", p.addr);
    let (ok, out, err) = picket_cli(&["store", "snapshot", dest_s, "--server", &url]);
    assert!(ok, "{out}{err}");
    // Written after the snapshot: must not be in it.
    let (code, _) = p.remote_write(
        &write_request(vec![series(
            &[("__name__", "snap"), ("job", "a")],
            &[(t + 600_000, 9.0)],
        )]),
        None,
    );
    assert_eq!(code, 204);
    p.stop();

    let (ok, out, err) = picket_cli(&["store", "check", "--data-dir", dest_s]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("OK: no problems found"), "{out}");
    assert!(out.contains("1 series"), "{out}");
    let (ok, out, err) = picket_cli(&["store", "stats", "--data-dir", dest_s]);
    assert!(ok, "{err}");
    assert!(out.contains("500 samples"), "{out}");
    // An offline snapshot of the (now stopped) original works too.
    let dest2 = tmp.path().join("copy2");
    let (ok, out, err) = picket_cli(&[
        "store",
        "snapshot",
        dest2.to_str().unwrap(),
        "--data-dir",
        data_s,
    ]);
    assert!(ok, "{out}{err}");

    let p = Picket::start_in(tmp.path(), &dest, QUIET_CONFIG);
    let at = format!("{}", (t + 700_000) as f64 / 1000.0);
    let r = p.query("count_over_time(snap[1h])", &at);
    assert_eq!(r[0]["value"][1], "500", "{r}");
    p.stop();
    let p = Picket::start_in(tmp.path(), &dest2, QUIET_CONFIG);
    let r = p.query("count_over_time(snap[1h])", &at);
    assert_eq!(r[0]["value"][1], "501", "{r}");
    p.stop();

    // A damaged file: check exits 1 and names it.
    let index = dest2.join("index.redb");
    std::fs::write(&index, b"not a redb file at all").unwrap();
    let (ok, _, err) = picket_cli(&["store", "check", "--data-dir", dest2.to_str().unwrap()]);
    assert!(!ok, "check must fail on a damaged index");
    assert!(err.contains(index.to_str().unwrap()), "{err}");
}

#[test]
fn snapshot_endpoint_requires_the_write_token() {
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let config = format!(
        "{QUIET_CONFIG}[api]\nwrite_token_file = {:?}\n",
        token.to_str().unwrap()
    );
    let p = Picket::start_in(tmp.path(), &tmp.path().join("data"), &config);
    let r = common::client()
        .post(p.url("/api/v1/admin/snapshot"))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let dest = tmp.path().join("copy");
    let url = format!("http://{}", p.addr);
    let (ok, _, err) = picket_cli(&[
        "store",
        "snapshot",
        dest.to_str().unwrap(),
        "--server",
        &url,
    ]);
    assert!(!ok && err.contains("401"), "{err}");
    let (ok, out, err) = picket_cli(&[
        "store",
        "snapshot",
        dest.to_str().unwrap(),
        "--server",
        &url,
        "--token-file",
        token.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    assert!(dest.join("index.redb").is_file());
}
