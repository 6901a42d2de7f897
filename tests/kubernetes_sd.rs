//! Kubernetes pod discovery end to end: a fake API server in this test process serves
//! `PodList` responses and newline-delimited watch streams in the real core/v1 schema; the
//! pods it lists point at small exporters on 127.0.0.1 (distinct ports). Picket finds them
//! through a kubeconfig (token auth, `this_node_only`), scrapes them with the right
//! labels, drops a pod deleted through the watch (with staleness markers), and lists
//! again after a `410 Gone`. A second fake server speaks HTTPS and requires a client
//! certificate, as k3s does with the credentials of `/etc/rancher/k3s/k3s.yaml`.

mod common;

use common::tls::openssl;
use common::{Picket, QUIET_CONFIG, wait_for_every};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often the tests poll Picket while waiting (30 s at most).
const POLL: Duration = Duration::from_millis(200);

const TOKEN: &str = "test-token-123";
const FIRST_VERSION: u64 = 100;

/// The fake API server's state: the pods that exist now, the event log that watches
/// replay (event i has resourceVersion FIRST_VERSION + i + 1), and what was asked.
#[derive(Default)]
struct Cluster {
    pods: Vec<Value>,
    events: Vec<String>,
    requests: Vec<(String, Option<String>)>,
    /// Clients authenticate by TLS client certificate (checked by the TLS layer), not
    /// by token.
    client_certificates: bool,
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

fn start_api(cluster: Arc<Mutex<Cluster>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let c = cluster.clone();
            std::thread::spawn(move || serve_api(conn, &c));
        }
    });
    addr
}

/// Reads a request head byte by byte (so it works on TLS streams too, which cannot be
/// cloned for a buffered reader): the path and the headers.
fn read_request(conn: &mut impl Read) -> Option<(String, HashMap<String, String>)> {
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        if conn.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).ok()?;
    let mut lines = head.lines();
    let path = lines.next()?.split_whitespace().nth(1)?.to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Some((path, headers))
}

fn query_param(path: &str, name: &str) -> Option<String> {
    let q = path.split_once('?')?.1;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn serve_api(mut conn: impl Read + Write, cluster: &Mutex<Cluster>) {
    let Some((path, headers)) = read_request(&mut conn) else {
        return;
    };
    cluster
        .lock()
        .unwrap()
        .requests
        .push((path.clone(), headers.get("authorization").cloned()));
    let token_ok =
        headers.get("authorization").map(String::as_str) == Some(&format!("Bearer {TOKEN}"));
    if !token_ok && !cluster.lock().unwrap().client_certificates {
        let body = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;
        let _ = write!(
            conn,
            "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    if !path.starts_with("/api/v1/pods") {
        let _ = conn
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    }
    if query_param(&path, "watch").as_deref() != Some("1") {
        let body = {
            let c = cluster.lock().unwrap();
            json!({
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": (FIRST_VERSION + c.events.len() as u64).to_string()},
                "items": c.pods,
            })
            .to_string()
        };
        let _ = write!(
            conn,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        return;
    }
    // A watch: replay the events after the requested version, then stream new ones as
    // the test adds them; an ERROR event ends the stream, as the API server does.
    let from: u64 = query_param(&path, "resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(FIRST_VERSION);
    let mut next = from.saturating_sub(FIRST_VERSION) as usize;
    if conn
        .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        .is_err()
    {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let new: Vec<String> = {
            let c = cluster.lock().unwrap();
            c.events
                .get(next..)
                .map(<[String]>::to_vec)
                .unwrap_or_default()
        };
        for e in new {
            next += 1;
            let line = format!("{e}\n");
            if write!(conn, "{:x}\r\n{line}\r\n", line.len()).is_err() {
                return;
            }
            if e.contains(r#""type":"ERROR""#) {
                let _ = conn.write_all(b"0\r\n\r\n");
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = conn.write_all(b"0\r\n\r\n");
}

impl Cluster {
    fn event(&mut self, kind: &str, mut pod: Value) {
        let version = FIRST_VERSION + self.events.len() as u64 + 1;
        pod["metadata"]["resourceVersion"] = json!(version.to_string());
        let name = pod["metadata"]["name"].clone();
        self.pods.retain(|p| p["metadata"]["name"] != name);
        if kind != "DELETED" {
            self.pods.push(pod.clone());
        }
        self.events
            .push(json!({"type": kind, "object": pod}).to_string());
    }
}

/// A pod in the shape `GET /api/v1/pods` returns it (core/v1 Pod), on node `node`, whose
/// one container `srv` declares `port` under the name `metrics`.
fn pod(name: &str, node: &str, port: u16, annotations: Value) -> Value {
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "generateName": format!("{name}-"),
            "namespace": "ai",
            "uid": format!("uid-{name}"),
            "resourceVersion": "1",
            "creationTimestamp": "2026-11-22T08:00:00Z",
            "labels": {"app.kubernetes.io/name": name, "pod-template-hash": "5d8f7"},
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{name}-5d8f7"),
                "uid": "rs-uid", "controller": true, "blockOwnerDeletion": true
            }],
            "managedFields": []
        },
        "spec": {
            "volumes": [],
            "containers": [{
                "name": "srv",
                "image": "registry.local/srv:1.0",
                "ports": [{"name": "metrics", "containerPort": port, "protocol": "TCP"}],
                "resources": {},
                "terminationMessagePath": "/dev/termination-log",
                "imagePullPolicy": "IfNotPresent"
            }],
            "restartPolicy": "Always",
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "nodeName": node,
            "schedulerName": "default-scheduler",
            "tolerations": []
        },
        "status": {
            "phase": "Running",
            "conditions": [
                {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-22T08:00:00Z"},
                {"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-22T08:00:01Z"},
                {"type": "ContainersReady", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-22T08:00:01Z"},
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2026-11-22T08:00:00Z"}
            ],
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": "2026-11-22T08:00:00Z",
            "containerStatuses": [{
                "name": "srv", "state": {"running": {"startedAt": "2026-11-22T08:00:01Z"}},
                "lastState": {}, "ready": true, "restartCount": 0,
                "image": "registry.local/srv:1.0", "imageID": "registry.local/srv@sha256:00",
                "containerID": format!("containerd://{name}"), "started": true
            }],
            "qosClass": "BestEffort"
        }
    })
}

/// An exporter serving `demo_metric{} <value>` at `path` (404 elsewhere).
fn exporter(path: &'static str, value: u32) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let Some((p, _)) = read_request(&mut conn) else {
                continue;
            };
            let resp = if p.split('?').next() == Some(path) {
                let body = format!("# TYPE demo_metric gauge\ndemo_metric {value}\n");
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into()
            };
            let _ = conn.write_all(resp.as_bytes());
        }
    });
    port
}

fn active(p: &Picket, pool: &str) -> Vec<Value> {
    let (code, v) = p.get_json(&format!("/api/v1/targets?state=active&scrapePool={pool}"));
    assert_eq!(code, 200, "{v}");
    v["data"]["activeTargets"].as_array().unwrap().clone()
}

fn pod_names(targets: &[Value]) -> Vec<String> {
    let mut n: Vec<String> = targets
        .iter()
        .map(|t| {
            t["discoveredLabels"]["__meta_kubernetes_pod_name"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    n.sort();
    n
}

#[test]
fn pods_are_discovered_scraped_dropped_and_relisted() {
    let port_a = exporter("/stats", 1);
    let port_b = exporter("/metrics", 2);
    let port_c = exporter("/metrics", 3);
    let cluster = Arc::new(Mutex::new(Cluster::default()));
    {
        let mut c = cluster.lock().unwrap();
        c.pods = vec![
            // Annotated with Prometheus' annotations, metrics on a non-default path.
            pod(
                "a",
                "pi-1",
                port_a,
                json!({"prometheus.io/scrape": "true", "prometheus.io/port": port_a.to_string(), "prometheus.io/path": "/stats"}),
            ),
            // Annotated with Grafana's annotations.
            pod(
                "b",
                "pi-1",
                port_b,
                json!({"k8s.grafana.com/scrape": "true", "k8s.grafana.com/metrics.portNumber": port_b.to_string()}),
            ),
            // Not annotated: only the raw job sees it.
            pod("plain", "pi-1", port_c, json!({})),
        ];
    }
    let api = start_api(cluster.clone());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("k3s.yaml");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: http://{api}\n  name: default\n\
             contexts:\n- context:\n    cluster: default\n    user: default\n  name: default\n\
             current-context: default\npreferences: {{}}\nusers:\n- name: default\n  user:\n    token: {TOKEN}\n"
        ),
    )
    .unwrap();
    let kc = kubeconfig.display();
    let config = format!(
        "{QUIET_CONFIG}\n\
         [[scrape]]\njob_name = \"pods\"\nscrape_interval = \"1s\"\nkubernetes_annotations = true\n\
         [[scrape.kubernetes_sd_configs]]\nrole = \"pod\"\nkubeconfig_file = \"{kc}\"\nthis_node_only = true\nnode_name = \"pi-1\"\n\
         [[scrape]]\njob_name = \"raw\"\nscrape_interval = \"1s\"\n\
         [[scrape.kubernetes_sd_configs]]\nrole = \"pod\"\nkubeconfig_file = \"{kc}\"\n\
         [[scrape.relabel_configs]]\nsource_labels = [\"__meta_kubernetes_pod_container_port_name\"]\naction = \"keep\"\nregex = \"metrics\"\n\
         [[scrape.relabel_configs]]\nsource_labels = [\"__meta_kubernetes_pod_name\"]\naction = \"drop\"\nregex = \"a\"\n\
         [[scrape.relabel_configs]]\naction = \"labelmap\"\nregex = \"__meta_kubernetes_pod_label_(.+)\"\n\
         [[scrape.relabel_configs]]\nsource_labels = [\"__meta_kubernetes_pod_name\"]\ntarget_label = \"kpod\"\n"
    );
    let p = Picket::start(&config);

    // 1. The annotated pods become targets of "pods", with Kubernetes labels.
    let targets = wait_for_every(30, POLL, "two annotated targets", || {
        let t = active(&p, "pods");
        (t.len() == 2 && t.iter().all(|t| t["health"] == "up")).then_some(t)
    });
    assert_eq!(pod_names(&targets), ["a", "b"]);
    let a = targets.iter().find(|t| t["labels"]["pod"] == "a").unwrap();
    assert_eq!(a["scrapeUrl"], format!("http://127.0.0.1:{port_a}/stats"));
    assert_eq!(a["labels"]["namespace"], "ai");
    assert_eq!(a["labels"]["container"], "srv");
    assert_eq!(a["labels"]["node"], "pi-1");
    assert_eq!(a["labels"]["job"], "pods");
    assert_eq!(a["labels"]["instance"], format!("127.0.0.1:{port_a}"));
    assert_eq!(
        a["discoveredLabels"]["__meta_kubernetes_pod_controller_kind"],
        "ReplicaSet"
    );
    assert_eq!(a["discoveredLabels"]["__meta_kubernetes_pod_ready"], "true");
    assert_eq!(a["scrapeInterval"], "1s");
    assert_eq!(a["lastError"], "");

    // Scraped samples carry the labels.
    let got = wait_for_every(30, POLL, "pod a's sample", || {
        let r = p.query(
            "demo_metric{job=\"pods\",namespace=\"ai\",pod=\"a\",container=\"srv\",node=\"pi-1\"}",
            &now_s().to_string(),
        );
        (r.as_array().unwrap().len() == 1).then_some(r)
    });
    assert_eq!(got[0]["value"][1], "1");

    // The target's metadata, as /api/v1/targets/metadata shows it.
    let (code, md) = p.get_json(
        "/api/v1/targets/metadata?match_target=%7Bjob%3D%22pods%22%2Cpod%3D%22a%22%7D&metric=demo_metric",
    );
    assert_eq!(code, 200, "{md}");
    let md = md["data"].as_array().unwrap();
    assert_eq!(md.len(), 1, "{md:?}");
    assert_eq!(md[0]["target"]["pod"], "a");
    assert_eq!(md[0]["metric"], "demo_metric");
    assert_eq!(md[0]["type"], "gauge");
    let (code, bad) = p.get_json("/api/v1/targets/metadata?match_target=%7Bjob%3D");
    assert_eq!((code, bad["errorType"].as_str()), (400, Some("bad_data")));

    // 2. The raw job gets Prometheus' role=pod targets; its own relabel rules apply.
    let raw = wait_for_every(30, POLL, "raw targets", || {
        let t = active(&p, "raw");
        (t.len() == 2 && t.iter().all(|t| t["health"] == "up")).then_some(t)
    });
    assert_eq!(pod_names(&raw), ["b", "plain"]);
    let plain = raw.iter().find(|t| t["labels"]["kpod"] == "plain").unwrap();
    assert_eq!(plain["labels"]["app_kubernetes_io_name"], "plain");
    assert_eq!(
        plain["scrapeUrl"],
        format!("http://127.0.0.1:{port_c}/metrics")
    );
    let (_, all) = p.get_json("/api/v1/targets?state=dropped&scrapePool=raw");
    let dropped = all["data"]["droppedTargets"].as_array().unwrap();
    assert_eq!(
        dropped.len(),
        1,
        "pod a is dropped by the raw job's rule: {all}"
    );
    assert_eq!(
        dropped[0]["discoveredLabels"]["__meta_kubernetes_pod_name"],
        "a"
    );
    assert!(all["data"]["activeTargets"].as_array().unwrap().is_empty());

    // The requests: token from the kubeconfig, node field selector on "pods" only,
    // watches from a version with bookmarks.
    {
        let c = cluster.lock().unwrap();
        assert!(
            c.requests
                .iter()
                .all(|(_, auth)| auth.as_deref() == Some(&*format!("Bearer {TOKEN}")))
        );
        let selectors: Vec<Option<String>> = c
            .requests
            .iter()
            .map(|(path, _)| query_param(path, "fieldSelector"))
            .collect();
        assert!(
            selectors.contains(&Some("spec.nodeName=pi-1".into())),
            "{selectors:?}"
        );
        assert!(selectors.contains(&None), "the raw job has no selector");
        let watch = c
            .requests
            .iter()
            .find(|(path, _)| query_param(path, "watch").is_some())
            .expect("a watch request");
        assert_eq!(
            query_param(&watch.0, "resourceVersion").as_deref(),
            Some("100")
        );
        assert_eq!(
            query_param(&watch.0, "allowWatchBookmarks").as_deref(),
            Some("true")
        );
    }

    // 3. Pod a is deleted through the watch stream: its target goes, and its series end
    // with a staleness marker rather than lingering for the 5 m lookback.
    cluster.lock().unwrap().event(
        "DELETED",
        pod("a", "pi-1", port_a, json!({"prometheus.io/scrape": "true", "prometheus.io/port": port_a.to_string(), "prometheus.io/path": "/stats"})),
    );
    wait_for_every(30, POLL, "pod a to leave", || {
        (pod_names(&active(&p, "pods")) == ["b"]).then_some(())
    });
    wait_for_every(30, POLL, "pod a's series to go stale", || {
        let r = p.query("demo_metric{pod=\"a\"}", &now_s().to_string());
        r.as_array().unwrap().is_empty().then_some(())
    });
    let b = p.query("demo_metric{pod=\"b\"}", &now_s().to_string());
    assert_eq!(b.as_array().unwrap().len(), 1, "pod b is still scraped");

    // A bookmark only moves the version on.
    {
        let mut c = cluster.lock().unwrap();
        let version = (FIRST_VERSION + c.events.len() as u64 + 1).to_string();
        c.events.push(
            json!({"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1", "metadata": {"resourceVersion": version}}}).to_string(),
        );
    }

    // 4. The watch expires (410 Gone): Picket lists again and finds pod c, which was
    // never announced through the watch.
    let lists_before = count_lists(&cluster);
    {
        let mut c = cluster.lock().unwrap();
        c.pods.push(pod(
            "c",
            "pi-1",
            port_c,
            json!({"prometheus.io/scrape": "true"}),
        ));
        c.events.push(
            json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "too old resource version: 100 (205)", "reason": "Expired", "code": 410}}).to_string(),
        );
    }
    wait_for_every(30, POLL, "pod c after the re-list", || {
        let t = active(&p, "pods");
        (pod_names(&t) == ["b", "c"] && t.iter().all(|t| t["health"] == "up")).then_some(())
    });
    assert!(
        count_lists(&cluster) > lists_before,
        "a 410 leads to a new list"
    );
    let (_, metrics) = p.get("/metrics");
    let value = |key: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{key} missing from /metrics"))
    };
    assert!(value("picket_sd_kubernetes_expired_total ") >= 1.0);
    assert!(
        value("picket_sd_kubernetes_lists_total ") >= 3.0,
        "two jobs, then a re-list"
    );
    assert!(value("picket_sd_kubernetes_events_total{event=\"deleted\"} ") >= 1.0);
    wait_for_every(30, POLL, "pod c's sample", || {
        let r = p.query("demo_metric{job=\"pods\",pod=\"c\"}", &now_s().to_string());
        (r.as_array().unwrap().len() == 1).then_some(())
    });
    p.stop();
}

fn count_lists(cluster: &Mutex<Cluster>) -> usize {
    cluster
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|(path, _)| query_param(path, "watch").is_none())
        .count()
}

#[test]
fn an_unreachable_api_server_leaves_the_other_jobs_running() {
    // Port 1 on loopback: connection refused. The static job must still be scraped and
    // the Kubernetes job simply has no targets.
    let port = exporter("/metrics", 7);
    let config = format!(
        "{QUIET_CONFIG}\n\
         [[scrape]]\njob_name = \"static\"\nscrape_interval = \"1s\"\n\
         [[scrape.static_configs]]\ntargets = [\"127.0.0.1:{port}\"]\n\
         [[scrape]]\njob_name = \"k8s\"\nscrape_interval = \"1s\"\n\
         [[scrape.kubernetes_sd_configs]]\nrole = \"pod\"\napi_server = \"http://127.0.0.1:1\"\n"
    );
    let p = Picket::start(&config);
    wait_for_every(30, POLL, "the static target to be up", || {
        let t = active(&p, "static");
        (t.len() == 1 && t[0]["health"] == "up").then_some(())
    });
    assert!(active(&p, "k8s").is_empty());
    let (code, v) = p.get_json("/api/v1/targets?state=bogus");
    assert_eq!(code, 400);
    assert_eq!(v["errorType"], "bad_data");
    p.stop();
}

/// k3s' kubeconfig: an HTTPS API server with the cluster CA inline
/// (`certificate-authority-data`) and a client certificate with an EC key in SEC1 form
/// (`client-certificate-data`, `client-key-data`), no token. The fake API server
/// requires the client certificate in the TLS handshake.
#[test]
fn a_k3s_kubeconfig_with_a_client_certificate_works() {
    use base64::Engine;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "30",
            "-subj",
            "/CN=k3s-server-ca",
        ],
    );
    openssl(
        d,
        &[
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-noout",
            "-out",
            "server.key",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=k3s",
        ],
    );
    std::fs::write(d.join("server.cnf"), "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "30",
            "-extfile",
            "server.cnf",
        ],
    );
    openssl(
        d,
        &[
            "ecparam",
            "-genkey",
            "-name",
            "prime256v1",
            "-noout",
            "-out",
            "client.key",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-new",
            "-key",
            "client.key",
            "-out",
            "client.csr",
            "-subj",
            "/O=system:masters/CN=system:admin",
        ],
    );
    std::fs::write(
        d.join("client.cnf"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "client.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "client.pem",
            "-days",
            "30",
            "-extfile",
            "client.cnf",
        ],
    );
    let client_key = std::fs::read_to_string(d.join("client.key")).unwrap();
    assert!(
        client_key.contains("BEGIN EC PRIVATE KEY"),
        "k3s writes SEC1 keys"
    );

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(d.join("ca.pem")).unwrap())
        .unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let server_config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from_pem_file(d.join("server.pem")).unwrap()],
                PrivateKeyDer::from_pem_file(d.join("server.key")).unwrap(),
            )
            .unwrap(),
    );

    let port = exporter("/metrics", 5);
    let cluster = Arc::new(Mutex::new(Cluster {
        client_certificates: true,
        pods: vec![pod(
            "tls",
            "pi-1",
            port,
            json!({"prometheus.io/scrape": "true"}),
        )],
        ..Cluster::default()
    }));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let api = listener.local_addr().unwrap();
    let handshakes = Arc::new(Mutex::new(0usize));
    {
        let cluster = cluster.clone();
        let handshakes = handshakes.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let (cluster, config, handshakes) =
                    (cluster.clone(), server_config.clone(), handshakes.clone());
                std::thread::spawn(move || {
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    // Finish the handshake first: a client without a certificate fails here.
                    while tls.conn.is_handshaking() {
                        if tls.conn.complete_io(&mut tls.sock).is_err() {
                            return;
                        }
                    }
                    if tls.conn.peer_certificates().is_some_and(|c| !c.is_empty()) {
                        *handshakes.lock().unwrap() += 1;
                    }
                    serve_api(tls, &cluster);
                });
            }
        });
    }
    let b64 = |f: &str| {
        base64::engine::general_purpose::STANDARD.encode(std::fs::read(d.join(f)).unwrap())
    };
    let kubeconfig = d.join("k3s.yaml");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority-data: {}\n    server: https://{api}\n  name: default\n\
             contexts:\n- context:\n    cluster: default\n    user: default\n  name: default\ncurrent-context: default\nkind: Config\npreferences: {{}}\n\
             users:\n- name: default\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64("ca.pem"),
            b64("client.pem"),
            b64("client.key"),
        ),
    )
    .unwrap();
    let config = format!(
        "{QUIET_CONFIG}\n[[scrape]]\njob_name = \"pods\"\nscrape_interval = \"1s\"\nkubernetes_annotations = true\n\
         [[scrape.kubernetes_sd_configs]]\nrole = \"pod\"\nkubeconfig_file = \"{}\"\n",
        kubeconfig.display()
    );
    let p = Picket::start(&config);
    let t = wait_for_every(30, POLL, "the pod found over TLS", || {
        let t = active(&p, "pods");
        (t.len() == 1 && t[0]["health"] == "up").then_some(t)
    });
    assert_eq!(t[0]["labels"]["pod"], "tls");
    assert_eq!(
        t[0]["scrapeUrl"],
        format!("http://127.0.0.1:{port}/metrics")
    );
    assert!(
        *handshakes.lock().unwrap() >= 1,
        "the client certificate was presented"
    );
    assert!(
        cluster
            .lock()
            .unwrap()
            .requests
            .iter()
            .all(|(_, auth)| auth.is_none()),
        "no token was sent"
    );
    p.stop();
}

/// On a Pi, Picket may start before k3s has written its kubeconfig: discovery keeps
/// retrying and finds the pods once the file exists.
#[test]
fn a_kubeconfig_written_after_start_is_picked_up() {
    let port = exporter("/metrics", 9);
    let cluster = Arc::new(Mutex::new(Cluster {
        pods: vec![pod(
            "late",
            "pi-1",
            port,
            json!({"prometheus.io/scrape": "true"}),
        )],
        ..Cluster::default()
    }));
    let api = start_api(cluster.clone());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("k3s.yaml");
    let config = format!(
        "{QUIET_CONFIG}\n[[scrape]]\njob_name = \"pods\"\nscrape_interval = \"1s\"\nkubernetes_annotations = true\n\
         [[scrape.kubernetes_sd_configs]]\nrole = \"pod\"\nkubeconfig_file = \"{}\"\n",
        kubeconfig.display()
    );
    let p = Picket::start(&config);
    wait_for_every(30, POLL, "a failed connection attempt", || {
        let (_, metrics) = p.get("/metrics");
        metrics
            .lines()
            .any(|l| l.starts_with("picket_sd_kubernetes_failures_total ") && !l.ends_with(" 0"))
            .then_some(())
    });
    assert!(active(&p, "pods").is_empty());
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    server: http://{api}\n  name: default\n\
             contexts:\n- context:\n    cluster: default\n    user: default\n  name: default\n\
             current-context: default\nusers:\n- name: default\n  user:\n    token: {TOKEN}\n"
        ),
    )
    .unwrap();
    wait_for_every(30, POLL, "the pod after the kubeconfig appeared", || {
        let t = active(&p, "pods");
        (t.len() == 1 && t[0]["health"] == "up").then_some(())
    });
    p.stop();
}
