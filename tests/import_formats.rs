//! The text write endpoints against the binary: VictoriaMetrics' `/api/v1/import/prometheus`
//! and the Influx line protocol (`/write`, `/api/v2/write`), checked differentially
//! against Debian's real `victoria-metrics`: the same bodies pushed to both must give the
//! same series, timestamps and values (VictoriaMetrics read back through
//! `/api/v1/export`, Picket through a range-vector query).

mod common;

use common::bins::VICTORIA;
use common::{ChildGuard, Picket, QUIET_CONFIG, client, free_port, now_ms};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's VictoriaMetrics on a loopback port; killed by PID on drop.
struct Victoria {
    _child: ChildGuard,
    addr: String,
}

fn start_victoria(dir: &Path) -> Victoria {
    assert!(
        Path::new(VICTORIA).exists(),
        "{VICTORIA} is missing: apt-get install victoria-metrics (.ci/test installs it)"
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(VICTORIA)
        .arg(format!("-storageDataPath={}", dir.display()))
        .arg(format!("-httpListenAddr={addr}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start victoria-metrics");
    let vm = Victoria {
        _child: ChildGuard(child),
        addr,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client()
        .get(format!("http://{}/health", vm.addr))
        .send()
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "victoria-metrics not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    vm
}

fn post(base: &str, path: &str, body: Vec<u8>, gzip: bool, auth: Option<&str>) -> (u16, String) {
    let mut r = client().post(format!("http://{base}{path}"));
    if gzip {
        r = r.header("Content-Encoding", "gzip");
    }
    if let Some(a) = auth {
        r = r.header("Authorization", a);
    }
    let r = r.body(body).send().expect("POST");
    (r.status().as_u16(), r.text().unwrap_or_default())
}

fn gz(text: &str) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text.as_bytes()).unwrap();
    e.finish().unwrap()
}

type Stored = BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>>;

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

fn victoria_stored(vm: &Victoria) -> Stored {
    client()
        .get(format!("http://{}/internal/force_flush", vm.addr))
        .send()
        .unwrap();
    let text = client()
        .get(format!("http://{}/api/v1/export", vm.addr))
        .query(&[("match[]", r#"{__name__=~"imp_.*"}"#)])
        .send()
        .unwrap()
        .text()
        .unwrap();
    let mut out = Stored::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap();
        let pts = out.entry(labels_of(&v["metric"])).or_default();
        for (t, x) in v["timestamps"]
            .as_array()
            .unwrap()
            .iter()
            .zip(v["values"].as_array().unwrap())
        {
            pts.push((t.as_i64().unwrap(), x.as_f64().unwrap()));
        }
        pts.sort_by_key(|p| p.0);
    }
    out
}

fn picket_stored(p: &Picket) -> Stored {
    let now = now_ms();
    let res = p.query(
        r#"{__name__=~"imp_.*"}[2h]"#,
        &format!("{}", now / 1000 + 60),
    );
    let mut out = Stored::new();
    for s in res.as_array().unwrap() {
        let pts = s["values"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    (p[0].as_f64().unwrap() * 1000.0).round() as i64,
                    p[1].as_str().unwrap().parse::<f64>().unwrap(),
                )
            })
            .collect();
        out.insert(labels_of(&s["metric"]), pts);
    }
    out
}

#[test]
fn influx_and_text_imports_store_what_victoria_metrics_stores() {
    let tmp = tempfile::tempdir().unwrap();
    let vm = start_victoria(&tmp.path().join("vm"));
    let p = Picket::start(QUIET_CONFIG);
    let t_s = now_ms() / 1000 - 600;
    let t_ms = t_s * 1000 + 123;
    let v1 = format!(
        "imp_cpu,host=pi-1,core=0 value=1.5,idle=97i,busy=true {t_s}\n\
         imp_env,room=attic\\ west,kind=a\\,b temp=21.25,hum=40u,label=\"x, y\",ok=F {t_s}\n\
         # a comment\n\
         \n\
         imp_s\\ p,db=own v=-2e-3 {t_s}\n"
    );
    let v2 = format!("imp_v2,src=telegraf load=0.25 {}\n", t_ms * 1_000_000);
    let text = format!(
        "# TYPE imp_text gauge\nimp_text{{a=\"b\"}} 1 {t_ms}\nimp_text{{a=\"c\"}} 2\nimp_esc{{p=\"q\\\"r\\\\s\"}} NaN {t_ms}\nimp_esc{{p=\"q\\\"r\\\\s\",n=\"1\"}} 4 {t_ms}\n"
    );
    let text_query = format!(
        "/api/v1/import/prometheus?timestamp={}&extra_label=site=lab&extra_label=a=z",
        t_ms + 5
    );
    for base in [vm.addr.as_str(), p.addr.as_str()] {
        let (c, b) = post(
            base,
            "/write?db=sensors&precision=s",
            v1.clone().into_bytes(),
            false,
            None,
        );
        assert_eq!(c, 204, "{base} /write: {b}");
        let (c, b) = post(
            base,
            "/api/v2/write?org=o&bucket=b",
            gz(&v2),
            true,
            Some("Token any"),
        );
        assert_eq!(c, 204, "{base} /api/v2/write: {b}");
        let (c, b) = post(base, &text_query, text.clone().into_bytes(), false, None);
        assert_eq!(c, 204, "{base} import: {b}");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut want = victoria_stored(&vm);
    while want.len() < 11 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        want = victoria_stored(&vm);
    }
    let got = picket_stored(&p);
    // The one documented difference: VictoriaMetrics 1.79 drops NaN samples at ingestion,
    // Picket keeps them (a NaN is a value in Prometheus, e.g. a summary quantile without
    // observations).
    let nan_series = |s: &Stored| {
        s.iter()
            .filter(|(_, pts)| pts.iter().any(|x| x.1.is_nan()))
            .map(|(l, pts)| {
                (
                    l["__name__"].clone(),
                    pts.iter().map(|x| x.0).collect::<Vec<_>>(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(nan_series(&got), [("imp_esc".to_string(), vec![t_ms])]);
    assert!(nan_series(&want).is_empty());
    let finite = |s: Stored| {
        s.into_iter()
            .filter(|(_, pts)| !pts.iter().any(|x| x.1.is_nan()))
            .collect::<Stored>()
    };
    let (got, want) = (finite(got), finite(want));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    assert_eq!(got, want);
    assert!(
        want.len() >= 11,
        "the data set reached VictoriaMetrics: {want:?}"
    );
}

#[test]
fn bad_lines_are_refused_by_number_while_good_lines_are_kept() {
    let p = Picket::start(QUIET_CONFIG);
    let t = now_ms();
    let body = format!("imp_ok v=1 {t}\nimp_bad v=oops {t}\nimp_ok2 v=2 {t}\n");
    let (c, b) = post(
        &p.addr,
        "/write?precision=ms",
        body.into_bytes(),
        false,
        None,
    );
    assert_eq!(c, 400);
    let v: Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["status"], "error");
    assert_eq!(v["errorType"], "bad_data");
    assert!(v["error"].as_str().unwrap().contains("line 2"), "{b}");
    let res = p.query(
        "count({__name__=~\"imp_ok.*\"})",
        &format!("{}", t / 1000 + 1),
    );
    assert_eq!(res[0]["value"][1], "2", "the good lines are stored");
    let (c, b) = post(
        &p.addr,
        "/api/v1/import/prometheus",
        b"x{ 1\n".to_vec(),
        false,
        None,
    );
    assert_eq!(c, 400);
    assert!(b.contains("line 1"), "{b}");
    let (c, _) = post(
        &p.addr,
        "/write?precision=fortnights",
        b"m v=1\n".to_vec(),
        false,
        None,
    );
    assert_eq!(c, 400);
}

#[test]
fn the_write_token_and_the_size_limit_apply() {
    let tmp = tempfile::tempdir().unwrap();
    let token = tmp.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let p = Picket::start(&format!(
        "{QUIET_CONFIG}[api]\nwrite_token_file = {:?}\nmax_request_bytes = 1000\n",
        token.display().to_string()
    ));
    for path in ["/write", "/api/v2/write", "/api/v1/import/prometheus"] {
        let (c, _) = post(&p.addr, path, b"m v=1\n".to_vec(), false, None);
        assert_eq!(c, 401, "{path} without a token");
        let (c, _) = post(
            &p.addr,
            path,
            b"m v=1\n".to_vec(),
            false,
            Some("Token wrong"),
        );
        assert_eq!(c, 401, "{path} with a wrong token");
    }
    let (c, b) = post(
        &p.addr,
        "/api/v2/write",
        b"imp_a v=1\n".to_vec(),
        false,
        Some("Token s3cret"),
    );
    assert_eq!(c, 204, "{b}");
    let (c, b) = post(
        &p.addr,
        "/api/v1/import/prometheus",
        b"imp_b 1\n".to_vec(),
        false,
        Some("Bearer s3cret"),
    );
    assert_eq!(c, 204, "{b}");
    let big = "imp_c v=1\n".repeat(200);
    let (c, _) = post(
        &p.addr,
        "/write",
        big.into_bytes(),
        false,
        Some("Token s3cret"),
    );
    assert_eq!(c, 413, "bodies over api.max_request_bytes");
    // A gzip bomb: small on the wire, over 4 × the limit inflated.
    let (c, b) = post(
        &p.addr,
        "/write",
        gz(&"imp_c v=1\n".repeat(1000)),
        true,
        Some("Token s3cret"),
    );
    assert_eq!(c, 400, "{b}");
    assert!(b.contains("exceeds"), "{b}");
}
