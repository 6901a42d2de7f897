//! End-to-end tests of the Prometheus API and the remote_write receiver against the real
//! binary: what Grafana, Prometheus and vmagent see.

mod common;

use common::{Picket, QUIET_CONFIG, now_ms, series, write_request};
use picket::model::prompb::MetricMetadata;
use serde_json::json;

#[test]
fn grafana_health_check_query_answers_scalar_two_at_time_four() {
    let p = Picket::start(QUIET_CONFIG);
    let (code, v) = p.get_json("/api/v1/query?query=1%2B1&time=4");
    assert_eq!(code, 200);
    assert_eq!(
        v,
        json!({"status":"success","data":{"resultType":"scalar","result":[4,"2"]}})
    );
    let (code, v) = p.get_json("/api/v1/status/buildinfo");
    assert_eq!(code, 200);
    assert!(v["data"]["version"].is_string());
    assert!(
        v["data"].get("features").is_none(),
        "features would make Grafana probe for Mimir"
    );
}

#[test]
fn remote_write_is_readable_at_once_and_after_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let t = now_ms() - 60_000;
    let p = Picket::start_in(tmp.path(), &data, QUIET_CONFIG);
    let req = write_request(vec![
        series(
            &[("__name__", "rw_test"), ("job", "a")],
            &[(t, 1.0), (t + 15_000, 2.5)],
        ),
        series(&[("__name__", "rw_test"), ("job", "b")], &[(t, 10.0)]),
    ]);
    let (code, body) = p.remote_write(&req, None);
    assert_eq!(code, 204, "{body}");
    let at = format!("{}", (t + 15_000) as f64 / 1000.0);
    let r = p.query("rw_test", &at);
    let mut got: Vec<(String, String)> = r
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["metric"]["job"].as_str().unwrap().to_string(),
                s["value"][1].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("a".to_string(), "2.5".to_string()),
            ("b".to_string(), "10".to_string())
        ]
    );
    p.stop();

    let p = Picket::start_in(tmp.path(), &data, QUIET_CONFIG);
    let r = p.query("rw_test{job=\"a\"}", &at);
    assert_eq!(r[0]["value"][1], "2.5", "{r}");
    let r = p.query("count_over_time(rw_test{job=\"a\"}[1m])", &at);
    assert_eq!(r[0]["value"][1], "2", "{r}");
}

#[test]
fn with_every_collector_disabled_the_store_holds_only_what_was_written() {
    let p = Picket::start(QUIET_CONFIG);
    let t = now_ms() - 10_000;
    let (code, _) = p.remote_write(
        &write_request(vec![series(&[("__name__", "only_me")], &[(t, 1.0)])]),
        None,
    );
    assert_eq!(code, 204);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, v) = p.get_json("/api/v1/series?match[]=%7B__name__%3D~%22.%2B%22%7D");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"], json!([{"__name__":"only_me"}]));
    let (_, v) = p.get_json("/api/v1/label/__name__/values");
    assert_eq!(v["data"], json!(["only_me"]));
}

#[test]
fn malformed_queries_get_400_bad_data_with_a_position() {
    let p = Picket::start(QUIET_CONFIG);
    for q in ["sum(", "rate(foo)", "foo{", "1 +"] {
        let (code, v) = p.post_form("/api/v1/query", &[("query", q)]);
        assert_eq!(code, 400, "{q}: {v}");
        assert_eq!(v["status"], "error");
        assert_eq!(v["errorType"], "bad_data");
        let msg = v["error"].as_str().unwrap();
        assert!(
            msg.contains("parse error") || msg.contains("expected"),
            "{q}: {msg}"
        );
    }
}

#[test]
fn query_range_validates_its_parameters_like_prometheus() {
    let p = Picket::start(QUIET_CONFIG);
    let cases = [
        (
            "query=1&start=10&end=5&step=1",
            "end timestamp must not be before start time",
        ),
        (
            "query=1&start=0&end=5&step=0",
            "zero or negative query resolution step widths are not accepted",
        ),
        (
            "query=1&start=0&end=100000&step=1",
            "exceeded maximum resolution of 11,000 points per timeseries",
        ),
        (
            "query=1&start=x&end=5&step=1",
            "invalid parameter \"start\"",
        ),
        (
            "query=foo%5B5m%5D&start=0&end=5&step=1",
            "invalid expression type \"range vector\" for range query",
        ),
    ];
    for (qs, want) in cases {
        let (code, v) = p.get_json(&format!("/api/v1/query_range?{qs}"));
        assert_eq!(code, 400, "{qs}: {v}");
        assert_eq!(v["errorType"], "bad_data");
        assert!(v["error"].as_str().unwrap().contains(want), "{qs}: {v}");
    }
    let (code, v) = p.get_json("/api/v1/query_range?query=time()&start=2015-07-01T20:10:00Z&end=2015-07-01T20:11:00Z&step=30s");
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"]["resultType"], "matrix");
    assert_eq!(
        v["data"]["result"][0]["values"],
        json!([
            [1435781400, "1435781400"],
            [1435781430, "1435781430"],
            [1435781460, "1435781460"]
        ])
    );
}

#[test]
fn malformed_remote_write_bodies_get_400_and_store_nothing() {
    let p = Picket::start(QUIET_CONFIG);
    let (code, body) = p.post_raw("/api/v1/write", b"definitely not snappy".to_vec(), None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("snappy"), "{body}");
    let garbage = snap::raw::Encoder::new().compress_vec(&[0xff; 64]).unwrap();
    let (code, body) = p.post_raw("/api/v1/write", garbage, None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("protobuf"), "{body}");
    // A series without a metric name is refused, the valid one beside it is kept.
    let t = now_ms();
    let req = write_request(vec![
        series(&[("job", "x")], &[(t, 1.0)]),
        series(&[("__name__", "kept")], &[(t, 3.0)]),
    ]);
    let (code, body) = p.remote_write(&req, None);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("metric name"), "{body}");
    let (_, v) = p.get_json("/api/v1/label/__name__/values");
    assert_eq!(v["data"], json!(["kept"]));
    // Remote write 2.0 senders must be told to fall back.
    let r = common::client()
        .post(p.url("/api/v1/write"))
        .header(
            "Content-Type",
            "application/x-protobuf;proto=io.prometheus.write.v2.Request",
        )
        .header("Content-Encoding", "snappy")
        .body(vec![0u8])
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
}

#[test]
fn oversized_requests_are_refused() {
    let p = Picket::start(&format!("{QUIET_CONFIG}[api]\nmax_request_bytes = 1024\n"));
    let (code, _) = p.post_raw("/api/v1/write", vec![0u8; 4096], None);
    assert_eq!(code, 413);
}

#[test]
fn write_endpoints_require_the_bearer_token_when_configured_and_reads_stay_open() {
    let tmp = tempfile::tempdir().unwrap();
    let token_file = tmp.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let p = Picket::start(&format!(
        "{QUIET_CONFIG}[api]\nwrite_token_file = {:?}\n",
        token_file.display().to_string()
    ));
    let req = write_request(vec![series(&[("__name__", "tok")], &[(now_ms(), 1.0)])]);
    assert_eq!(p.remote_write(&req, None).0, 401);
    assert_eq!(p.remote_write(&req, Some("wrong")).0, 401);
    assert_eq!(p.remote_write(&req, Some("s3cret")).0, 204);
    assert_eq!(p.get("/api/v1/labels").0, 200);
}

#[test]
fn series_labels_values_and_metadata_answer_in_prometheus_shapes() {
    let p = Picket::start(QUIET_CONFIG);
    let t = now_ms() - 5_000;
    let mut req = write_request(vec![
        series(
            &[
                ("__name__", "http_requests_total"),
                ("code", "200"),
                ("job", "api"),
            ],
            &[(t, 5.0)],
        ),
        series(
            &[
                ("__name__", "http_requests_total"),
                ("code", "500"),
                ("job", "api"),
            ],
            &[(t, 1.0)],
        ),
        series(
            &[("__name__", "temperature"), ("room", "hall")],
            &[(t, 21.5)],
        ),
    ]);
    req.metadata.push(MetricMetadata {
        r#type: 1,
        metric_family_name: "http_requests_total".into(),
        help: "Requests served.".into(),
        unit: String::new(),
    });
    assert_eq!(p.remote_write(&req, None).0, 204);

    let (code, v) = p.post_form(
        "/api/v1/series",
        &[("match[]", "http_requests_total{code=~\"5..\"}")],
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v["data"],
        json!([{"__name__":"http_requests_total","code":"500","job":"api"}])
    );
    let (code, v) = p.get_json("/api/v1/series");
    assert_eq!(code, 400);
    assert_eq!(v["error"], "no match[] parameter provided");

    let (_, v) = p.get_json("/api/v1/labels");
    assert_eq!(v["data"], json!(["__name__", "code", "job", "room"]));
    let (_, v) = p.post_form("/api/v1/labels", &[("match[]", "temperature")]);
    assert_eq!(v["data"], json!(["__name__", "room"]));
    let (_, v) = p.get_json("/api/v1/label/code/values");
    assert_eq!(v["data"], json!(["200", "500"]));
    let (_, v) = p.get_json("/api/v1/label/nothing_here/values");
    assert_eq!(v["data"], json!([]));
    let (_, v) = p.get_json("/api/v1/label/code/values?limit=1");
    assert_eq!(v["data"], json!(["200"]));
    assert_eq!(v["warnings"], json!(["results truncated due to limit"]));

    let (_, v) = p.get_json("/api/v1/metadata");
    assert_eq!(
        v["data"]["http_requests_total"],
        json!([{"type":"counter","help":"Requests served.","unit":""}])
    );

    let at = format!("{}", t as f64 / 1000.0);
    let r = p.query("sum by (job) (http_requests_total)", &at);
    assert_eq!(
        r,
        json!([{"metric":{"job":"api"},"value":[t as f64 / 1000.0, "6"]}])
    );
    let r = p.query("http_requests_total{code=\"200\"} * 2 > 5", &at);
    assert_eq!(r[0]["value"][1], "10", "{r}");
}

#[test]
fn health_and_readiness_endpoints_answer() {
    let p = Picket::start(QUIET_CONFIG);
    assert_eq!(p.get("/-/healthy").0, 200);
    assert_eq!(p.get("/-/ready").0, 200);
    let (code, body) = p.get("/metrics");
    assert_eq!(code, 200);
    assert!(
        body.contains("# TYPE process_resident_memory_bytes gauge"),
        "{body}"
    );
    assert!(body.contains("picket_store_series"), "{body}");
}

#[test]
fn check_config_reports_file_line_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("bad.toml");
    std::fs::write(&f, "[storage]\npath = \"/x\"\nflush_interval = \"soon\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["check-config", f.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:3:"), "{err}");
    assert!(err.contains("storage.flush_interval"), "{err}");
    let good = tmp.path().join("good.toml");
    std::fs::write(&good, picket::config::DEFAULT_CONFIG).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(["check-config", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn query_limits_fail_with_prometheus_error_shapes_and_the_server_keeps_serving() {
    let p = Picket::start(&format!("{QUIET_CONFIG}[query]\nmax_samples = 50\n"));
    let t0 = now_ms() - 3_600_000;
    let samples: Vec<(i64, f64)> = (0..240).map(|i| (t0 + i * 15_000, i as f64)).collect();
    let req = write_request(vec![
        series(&[("__name__", "lim"), ("i", "a")], &samples),
        series(&[("__name__", "lim"), ("i", "b")], &samples),
    ]);
    assert_eq!(p.remote_write(&req, None).0, 204);
    let at = format!("{}", (t0 + 239 * 15_000) as f64 / 1000.0);

    // Too many samples: 422 execution.
    let (code, v) = p.post_form(
        "/api/v1/query",
        &[("query", "count_over_time(lim[1h])"), ("time", &at)],
    );
    assert_eq!(code, 422, "{v}");
    assert_eq!(v["errorType"], "execution");
    assert!(
        v["error"].as_str().unwrap().contains("too many samples"),
        "{v}"
    );
    // Within the limit the same data answers.
    let r = p.query("count_over_time(lim{i=\"a\"}[5m])", &at);
    assert_eq!(r[0]["value"][1], "20", "{r}");

    // A query that cannot finish within its `timeout`: 503 timeout.
    let start = format!("{}", t0 as f64 / 1000.0);
    let (code, v) = p.post_form(
        "/api/v1/query_range",
        &[
            (
                "query",
                "sum(rate(lim{i=\"a\"}[5m])) + count(lim{i=\"a\"} offset 1m)",
            ),
            ("start", &start),
            ("end", &at),
            ("step", "0.4"),
            ("timeout", "1ms"),
        ],
    );
    assert_eq!(code, 503, "{v}");
    assert_eq!(v["errorType"], "timeout");
    assert!(v["error"].as_str().unwrap().contains("timed out"), "{v}");

    assert_eq!(
        p.get("/-/healthy").0,
        200,
        "the process survived its failed queries"
    );
}

#[test]
fn a_query_waiting_for_a_busy_slot_times_out_in_the_query_queue() {
    let p = Picket::start(&format!(
        "{QUIET_CONFIG}[query]\nmax_concurrent = 1\nmax_samples = 1000000000\n"
    ));
    let t0 = now_ms() - 3_600_000;
    let samples: Vec<(i64, f64)> = (0..240).map(|i| (t0 + i * 15_000, i as f64)).collect();
    let req = write_request(vec![series(&[("__name__", "busy")], &samples)]);
    assert_eq!(p.remote_write(&req, None).0, 204);
    let (start, end) = (
        format!("{}", t0 as f64 / 1000.0),
        format!("{}", (t0 + 3_600_000) as f64 / 1000.0),
    );
    // Holds the only slot for up to 3 s: 11,000 steps of a 1 h subquery at 1 s resolution.
    let url = p.url("/api/v1/query_range");
    let slow = std::thread::spawn(move || {
        common::client()
            .post(url)
            .form(&[
                ("query", "max_over_time(busy[1h:1s])"),
                ("start", start.as_str()),
                ("end", end.as_str()),
                ("step", "0.33"),
                ("timeout", "3s"),
            ])
            .send()
            .map(|r| r.status().as_u16())
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (code, v) = p.post_form("/api/v1/query", &[("query", "1"), ("timeout", "100ms")]);
    assert_eq!(code, 503, "{v}");
    assert_eq!(v["errorType"], "timeout");
    assert_eq!(v["error"], "query timed out in query queue");
    let slow_status = slow.join().unwrap().unwrap();
    assert_eq!(slow_status, 503, "the slow query itself ran out of time");
    // With the slot free again, queries answer.
    assert_eq!(p.query("1", "0")[1], "1");
}
