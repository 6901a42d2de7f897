//! Kubernetes pod discovery end to end: a fake API server in this test process serves
//! `PodList` responses and newline-delimited watch streams in the real core/v1 schema; the
//! pods it lists point at small exporters on 127.0.0.1 (distinct ports). Picket finds them
//! through a kubeconfig (token auth, `this_node_only`), scrapes them with the right
//! labels, drops a pod deleted through the watch (with staleness markers), and lists
//! again after a `410 Gone`.

mod common;

use common::{Picket, QUIET_CONFIG};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TOKEN: &str = "test-token-123";
const FIRST_VERSION: u64 = 100;

/// The fake API server's state: the pods that exist now, the event log that watches
/// replay (event i has resourceVersion FIRST_VERSION + i + 1), and what was asked.
#[derive(Default)]
struct Cluster {
    pods: Vec<Value>,
    events: Vec<String>,
    requests: Vec<(String, Option<String>)>,
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

fn read_request(conn: &TcpStream) -> Option<(String, std::collections::HashMap<String, String>)> {
    let mut r = BufReader::new(conn.try_clone().ok()?);
    let mut first = String::new();
    r.read_line(&mut first).ok()?;
    let path = first.split_whitespace().nth(1)?.to_string();
    let mut headers = std::collections::HashMap::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    Some((path, headers))
}

fn query_param(path: &str, name: &str) -> Option<String> {
    let q = path.split_once('?')?.1;
    form_urlencoded::parse(q.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn serve_api(mut conn: TcpStream, cluster: &Mutex<Cluster>) {
    let Some((path, headers)) = read_request(&conn) else {
        return;
    };
    cluster
        .lock()
        .unwrap()
        .requests
        .push((path.clone(), headers.get("authorization").cloned()));
    if headers.get("authorization").map(String::as_str) != Some(&format!("Bearer {TOKEN}")) {
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
            let Some((p, _)) = read_request(&conn) else {
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

fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
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
    let targets = wait_for("two annotated targets", || {
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
    let got = wait_for("pod a's sample", || {
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
    let raw = wait_for("raw targets", || {
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
    wait_for("pod a to leave", || {
        (pod_names(&active(&p, "pods")) == ["b"]).then_some(())
    });
    wait_for("pod a's series to go stale", || {
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
    wait_for("pod c after the re-list", || {
        let t = active(&p, "pods");
        (pod_names(&t) == ["b", "c"] && t.iter().all(|t| t["health"] == "up")).then_some(())
    });
    assert!(
        count_lists(&cluster) > lists_before,
        "a 410 leads to a new list"
    );
    wait_for("pod c's sample", || {
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
    wait_for("the static target to be up", || {
        let t = active(&p, "static");
        (t.len() == 1 && t[0]["health"] == "up").then_some(())
    });
    assert!(active(&p, "k8s").is_empty());
    let (code, v) = p.get_json("/api/v1/targets?state=bogus");
    assert_eq!(code, 400);
    assert_eq!(v["errorType"], "bad_data");
    p.stop();
}
