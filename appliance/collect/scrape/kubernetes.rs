//! Kubernetes pod discovery (`kubernetes_sd_configs`, role `pod`): lists the pods through
//! the API server, then watches them, and turns each pod into target groups with
//! Prometheus' `__meta_kubernetes_pod_*` labels (discovery/kubernetes/pod.go), so that
//! relabel rules written for Prometheus work unchanged.
//!
//! With the job's `kubernetes_annotations = true`, Picket instead makes the targets the
//! common annotations ask for (see [`annotated_groups`]) and attaches `namespace`, `pod`,
//! `container` and `node` labels: no relabel rules needed.
//!
//! One async task per namespace (or one for all): LIST, then WATCH from the list's
//! `resourceVersion` with bookmarks and a server-side timeout, re-watching from the last
//! version seen; a `410 Gone` (the version is too old) leads to a new LIST. Errors, and
//! watches that expire within 30 s of their list, back off from 1 s to 60 s, so a failing
//! API server sees at most one request a minute. After
//! every change the task publishes the namespace's groups and wakes the scrape manager,
//! which runs on its own thread.

use super::KubernetesCount;
use crate::config::scrape::{
    BasicAuth, HttpClientConfig, KubernetesSdConfig, StaticConfig, TlsConfig,
};
use crate::ingest::Ingest;
use base64::Engine;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const SERVICE_ACCOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A list and watch that lasted this long count as healthy: the backoff starts over.
const HEALTHY_WATCH: Duration = Duration::from_secs(30);
/// Server-side watch timeout; the watch is then renewed from the last resourceVersion.
const WATCH_TIMEOUT_SECONDS: u64 = 300;
/// A watch that sends nothing (not even a bookmark) for this long past its timeout is
/// considered dead.
const WATCH_IDLE_GRACE: Duration = Duration::from_secs(30);

/// Where to reach the API server and how to authenticate.
#[derive(Debug, Clone)]
pub struct Connection {
    /// `https://host:port`, no trailing slash.
    pub base: String,
    pub client: reqwest::Client,
    /// Credentials only (TLS is in `client`); token files are re-read per request, since
    /// service account tokens rotate.
    pub auth: HttpClientConfig,
    /// The namespace of the service account, for `own_namespace`.
    pub own_namespace: Option<String>,
}

/// Builds the connection of one `kubernetes_sd_configs` entry.
pub fn connect(sd: &KubernetesSdConfig) -> Result<Connection, String> {
    if let Some(path) = &sd.kubeconfig_file {
        return from_kubeconfig(path);
    }
    let (base, own_namespace, defaults) = match &sd.api_server {
        Some(api) => (
            api.trim_end_matches('/').to_string(),
            None,
            HttpClientConfig::default(),
        ),
        None => in_cluster()?,
    };
    let mut auth = sd.http_client();
    if !auth.has_credentials() {
        auth.bearer_token_file = defaults.bearer_token_file;
    }
    auth.tls_config = auth.tls_config.or(defaults.tls_config);
    let mut b = builder();
    if let Some(tls) = auth.tls_material()? {
        b = trust_only(b, tls.roots);
        if let Some(id) = tls.identity {
            b = b.identity(id);
        }
        b = b.danger_accept_invalid_certs(tls.insecure_skip_verify);
    }
    auth.tls_config = None;
    Ok(Connection {
        base,
        client: b.build().map_err(|e| e.to_string())?,
        auth,
        own_namespace,
    })
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("Picket/", env!("CARGO_PKG_VERSION")))
        .use_rustls_tls()
        .connect_timeout(Duration::from_secs(10))
}

fn add_ca(b: reqwest::ClientBuilder, pem: &[u8]) -> Result<reqwest::ClientBuilder, String> {
    let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(trust_only(b, certs))
}

/// The API server's own CA only: a cluster CA is all a kubeconfig trusts. No roots: the
/// built-in ones.
fn trust_only(
    mut b: reqwest::ClientBuilder,
    roots: Vec<reqwest::Certificate>,
) -> reqwest::ClientBuilder {
    if !roots.is_empty() {
        b = b.tls_built_in_root_certs(false);
    }
    for c in roots {
        b = b.add_root_certificate(c);
    }
    b
}

/// The in-cluster service account: API server from `KUBERNETES_SERVICE_HOST`/`_PORT`,
/// CA and token from the mounted secret.
/// Returns the API server URL, the namespace, and the CA and token as client keys.
fn in_cluster() -> Result<(String, Option<String>, HttpClientConfig), String> {
    let host = std::env::var("KUBERNETES_SERVICE_HOST").map_err(|_| {
        "no api_server or kubeconfig_file given and not running in a cluster \
         (KUBERNETES_SERVICE_HOST is unset)"
            .to_string()
    })?;
    let port = std::env::var("KUBERNETES_SERVICE_PORT").unwrap_or_else(|_| "443".into());
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let dir = Path::new(SERVICE_ACCOUNT);
    let namespace = std::fs::read_to_string(dir.join("namespace"))
        .ok()
        .map(|s| s.trim().to_string());
    let tls = TlsConfig {
        ca_file: Some(dir.join("ca.crt")),
        ..TlsConfig::default()
    };
    Ok((
        format!("https://{host}:{port}"),
        namespace,
        HttpClientConfig {
            tls_config: Some(tls),
            bearer_token_file: Some(dir.join("token")),
            ..HttpClientConfig::default()
        },
    ))
}

/// The parts of a kubeconfig file Picket reads (`clientcmd/api/v1` names).
#[derive(Debug, Deserialize)]
struct Kubeconfig {
    #[serde(rename = "current-context", default)]
    current_context: String,
    #[serde(default)]
    clusters: Vec<NamedCluster>,
    #[serde(default)]
    contexts: Vec<NamedContext>,
    #[serde(default)]
    users: Vec<NamedUser>,
}

#[derive(Debug, Deserialize)]
struct NamedCluster {
    name: String,
    cluster: KubeCluster,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct KubeCluster {
    server: String,
    #[serde(default)]
    certificate_authority_data: Option<String>,
    #[serde(default)]
    certificate_authority: Option<PathBuf>,
    #[serde(default)]
    insecure_skip_tls_verify: bool,
}

#[derive(Debug, Deserialize)]
struct NamedContext {
    name: String,
    context: KubeContext,
}

#[derive(Debug, Deserialize)]
struct KubeContext {
    cluster: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    namespace: Option<String>,
}

#[derive(Debug, Deserialize)]
struct NamedUser {
    name: String,
    #[serde(default)]
    user: KubeUser,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct KubeUser {
    #[serde(default)]
    client_certificate_data: Option<String>,
    #[serde(default)]
    client_key_data: Option<String>,
    #[serde(default)]
    client_certificate: Option<PathBuf>,
    #[serde(default)]
    client_key: Option<PathBuf>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default, rename = "tokenFile")]
    token_file: Option<PathBuf>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    exec: Option<serde_yaml_ng::Value>,
    #[serde(default, rename = "auth-provider")]
    auth_provider: Option<serde_yaml_ng::Value>,
}

/// A kubeconfig's current context: its cluster's server and CA, its user's client
/// certificate, token or basic auth (k3s writes `/etc/rancher/k3s/k3s.yaml` this way).
pub fn from_kubeconfig(path: &Path) -> Result<Connection, String> {
    let err = |m: String| format!("kubeconfig {}: {m}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let kc: Kubeconfig = serde_yaml_ng::from_str(&text).map_err(|e| err(e.to_string()))?;
    let context = if kc.current_context.is_empty() {
        kc.contexts.first()
    } else {
        kc.contexts.iter().find(|c| c.name == kc.current_context)
    }
    .ok_or_else(|| err(format!("no context {:?}", kc.current_context)))?;
    let cluster = &kc
        .clusters
        .iter()
        .find(|c| c.name == context.context.cluster)
        .ok_or_else(|| err(format!("no cluster {:?}", context.context.cluster)))?
        .cluster;
    let default_user = NamedUser {
        name: String::new(),
        user: KubeUser::default(),
    };
    let user = &kc
        .users
        .iter()
        .find(|u| u.name == context.context.user)
        .unwrap_or(&default_user)
        .user;
    // Relative file paths in a kubeconfig are relative to the file.
    let dir = path.parent().unwrap_or(Path::new("."));
    let read =
        |p: &Path| std::fs::read(dir.join(p)).map_err(|e| err(format!("{}: {e}", p.display())));
    let decode = |key: &str, data: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .map_err(|e| err(format!("{key}: invalid base64: {e}")))
    };
    let mut b = builder();
    let ca = match (
        &cluster.certificate_authority_data,
        &cluster.certificate_authority,
    ) {
        (Some(data), _) => Some(decode("certificate-authority-data", data)?),
        (None, Some(p)) => Some(read(p)?),
        (None, None) => None,
    };
    if let Some(pem) = ca {
        b = add_ca(b, &pem).map_err(|e| err(format!("certificate-authority: {e}")))?;
    }
    b = b.danger_accept_invalid_certs(cluster.insecure_skip_tls_verify);
    let cert = match (&user.client_certificate_data, &user.client_certificate) {
        (Some(d), _) => Some(decode("client-certificate-data", d)?),
        (None, Some(p)) => Some(read(p)?),
        (None, None) => None,
    };
    let key = match (&user.client_key_data, &user.client_key) {
        (Some(d), _) => Some(decode("client-key-data", d)?),
        (None, Some(p)) => Some(read(p)?),
        (None, None) => None,
    };
    match (cert, key) {
        (Some(mut pem), Some(key)) => {
            pem.push(b'\n');
            pem.extend(key);
            b = b.identity(
                reqwest::Identity::from_pem(&pem)
                    .map_err(|e| err(format!("client certificate: {e}")))?,
            );
        }
        (None, None) => {}
        _ => {
            return Err(err(
                "a client certificate needs both its certificate and its key".into(),
            ));
        }
    }
    let mut auth = HttpClientConfig::default();
    if let Some(t) = &user.token {
        auth.bearer_token = Some(t.clone());
    } else if let Some(f) = &user.token_file {
        auth.bearer_token_file = Some(dir.join(f));
    } else if let Some(u) = &user.username {
        auth.basic_auth = Some(BasicAuth {
            username: u.clone(),
            password: user.password.clone(),
            password_file: None,
        });
    } else if user.exec.is_some() || user.auth_provider.is_some() {
        return Err(err(
            "exec and auth-provider credentials are not supported: use a token, a client certificate or basic auth".into(),
        ));
    }
    Ok(Connection {
        base: cluster.server.trim_end_matches('/').to_string(),
        client: b.build().map_err(|e| err(e.to_string()))?,
        auth,
        own_namespace: context.context.namespace.clone(),
    })
}

// The Kubernetes API objects, as much of them as discovery reads (core/v1 field names).

#[derive(Debug, Deserialize)]
pub struct PodList {
    #[serde(default)]
    pub metadata: ListMeta,
    #[serde(default)]
    pub items: Vec<Pod>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListMeta {
    #[serde(default)]
    pub resource_version: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Pod {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: PodSpec,
    #[serde(default)]
    pub status: PodStatus,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub resource_version: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub owner_references: Vec<OwnerReference>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct OwnerReference {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub controller: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    #[serde(default)]
    pub node_name: String,
    #[serde(default)]
    pub containers: Vec<Container>,
    #[serde(default)]
    pub init_containers: Vec<Container>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Container {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPort {
    #[serde(default)]
    pub name: String,
    pub container_port: u16,
    /// Kubernetes' default is TCP.
    #[serde(default)]
    pub protocol: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodStatus {
    #[serde(default)]
    pub phase: String,
    #[serde(default, rename = "podIP")]
    pub pod_ip: String,
    #[serde(default, rename = "hostIP")]
    pub host_ip: String,
    #[serde(default)]
    pub conditions: Vec<PodCondition>,
    #[serde(default)]
    pub container_statuses: Vec<ContainerStatus>,
    #[serde(default)]
    pub init_container_statuses: Vec<ContainerStatus>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PodCondition {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub status: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerStatus {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "containerID")]
    pub container_id: String,
}

/// One line of a watch stream (`meta/v1 WatchEvent`).
#[derive(Debug, Deserialize)]
struct WatchEvent {
    #[serde(rename = "type")]
    kind: String,
    object: serde_json::Value,
}

/// Prometheus' `strutil.SanitizeLabelName`: every character outside `[a-zA-Z0-9_]`
/// becomes `_`.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn host_port(ip: &str, port: u16) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

const META: &str = "__meta_kubernetes_";

/// The pod-level meta labels every target of `pod` carries.
fn pod_labels(pod: &Pod) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    let m = &pod.metadata;
    let mut set = |k: &str, v: &str| {
        l.insert(format!("{META}{k}"), v.to_string());
    };
    set("namespace", &m.namespace);
    set("pod_name", &m.name);
    set("pod_ip", &pod.status.pod_ip);
    set("pod_node_name", &pod.spec.node_name);
    set("pod_host_ip", &pod.status.host_ip);
    set("pod_uid", &m.uid);
    set("pod_phase", &pod.status.phase);
    let ready = pod
        .status
        .conditions
        .iter()
        .find(|c| c.kind == "Ready")
        .map_or("unknown", |c| match c.status.as_str() {
            "True" => "true",
            "False" => "false",
            _ => "unknown",
        });
    set("pod_ready", ready);
    if let Some(owner) = m
        .owner_references
        .iter()
        .find(|o| o.controller == Some(true))
    {
        set("pod_controller_kind", &owner.kind);
        set("pod_controller_name", &owner.name);
    }
    for (k, v) in &m.labels {
        let k = sanitize(k);
        set(&format!("pod_label_{k}"), v);
        set(&format!("pod_labelpresent_{k}"), "true");
    }
    for (k, v) in &m.annotations {
        let k = sanitize(k);
        set(&format!("pod_annotation_{k}"), v);
        set(&format!("pod_annotationpresent_{k}"), "true");
    }
    l
}

fn container_labels(pod: &Pod, c: &Container, init: bool, into: &mut BTreeMap<String, String>) {
    let statuses = if init {
        &pod.status.init_container_statuses
    } else {
        &pod.status.container_statuses
    };
    let id = statuses
        .iter()
        .find(|s| s.name == c.name)
        .map_or("", |s| s.container_id.as_str());
    for (k, v) in [
        ("pod_container_name", c.name.as_str()),
        ("pod_container_image", c.image.as_str()),
        ("pod_container_id", id),
        ("pod_container_init", if init { "true" } else { "false" }),
    ] {
        into.insert(format!("{META}{k}"), v.to_string());
    }
}

fn port_labels(p: &ContainerPort, into: &mut BTreeMap<String, String>) {
    into.insert(format!("{META}pod_container_port_name"), p.name.clone());
    into.insert(
        format!("{META}pod_container_port_number"),
        p.container_port.to_string(),
    );
    into.insert(
        format!("{META}pod_container_port_protocol"),
        p.protocol.clone().unwrap_or_else(|| "TCP".into()),
    );
}

/// Prometheus' role=pod targets: one per declared container port, and one (the bare pod
/// IP) per container that declares none; init containers too, marked
/// `__meta_kubernetes_pod_container_init="true"`. Pods without an IP yet have none.
pub fn prometheus_groups(pod: &Pod) -> Vec<StaticConfig> {
    if pod.status.pod_ip.is_empty() {
        return Vec::new();
    }
    let base = pod_labels(pod);
    let mut out = Vec::new();
    let all = pod
        .spec
        .containers
        .iter()
        .map(|c| (c, false))
        .chain(pod.spec.init_containers.iter().map(|c| (c, true)));
    for (c, init) in all {
        let mut labels = base.clone();
        container_labels(pod, c, init, &mut labels);
        if c.ports.is_empty() {
            out.push(StaticConfig {
                targets: vec![pod.status.pod_ip.clone()],
                labels,
            });
            continue;
        }
        for p in &c.ports {
            let mut labels = labels.clone();
            port_labels(p, &mut labels);
            out.push(StaticConfig {
                targets: vec![host_port(&pod.status.pod_ip, p.container_port)],
                labels,
            });
        }
    }
    out
}

fn annotation<'a>(pod: &'a Pod, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| pod.metadata.annotations.get(*k))
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

/// Picket's annotation-driven targets (`kubernetes_annotations = true`):
///
/// - only pods annotated `prometheus.io/scrape: "true"` or `k8s.grafana.com/scrape:
///   "true"`, with an IP, and not finished (phase Succeeded or Failed);
/// - `prometheus.io/port` / `k8s.grafana.com/metrics.portNumber` given: one target on
///   that port, attributed to the container declaring it (else the first container);
///   not given: one target per declared TCP port of the regular containers;
/// - `prometheus.io/path` / `k8s.grafana.com/metrics.path` set `__metrics_path__`,
///   `prometheus.io/scheme` / `k8s.grafana.com/metrics.scheme` set `__scheme__`;
/// - target labels `namespace`, `pod`, `container`, `node`, and all the
///   `__meta_kubernetes_pod_*` labels for the job's own relabel rules.
pub fn annotated_groups(pod: &Pod) -> Vec<StaticConfig> {
    let wanted = annotation(pod, &["prometheus.io/scrape"]) == Some("true")
        || annotation(pod, &["k8s.grafana.com/scrape"]) == Some("true");
    let finished = matches!(pod.status.phase.as_str(), "Succeeded" | "Failed");
    if !wanted || finished || pod.status.pod_ip.is_empty() {
        return Vec::new();
    }
    let base = pod_labels(pod);
    let mut extra: Vec<(&str, &str)> = vec![
        ("namespace", &pod.metadata.namespace),
        ("pod", &pod.metadata.name),
        ("node", &pod.spec.node_name),
    ];
    if let Some(path) = annotation(pod, &["prometheus.io/path", "k8s.grafana.com/metrics.path"]) {
        extra.push(("__metrics_path__", path));
    }
    if let Some(scheme) = annotation(
        pod,
        &["prometheus.io/scheme", "k8s.grafana.com/metrics.scheme"],
    ) && matches!(scheme, "http" | "https")
    {
        extra.push(("__scheme__", scheme));
    }
    let group = |c: Option<&Container>, port: u16, declared: Option<&ContainerPort>| {
        let mut labels = base.clone();
        for (k, v) in &extra {
            labels.insert((*k).to_string(), (*v).to_string());
        }
        if let Some(c) = c {
            container_labels(pod, c, false, &mut labels);
            labels.insert("container".into(), c.name.clone());
        }
        if let Some(p) = declared {
            port_labels(p, &mut labels);
        }
        StaticConfig {
            targets: vec![host_port(&pod.status.pod_ip, port)],
            labels,
        }
    };
    let port = annotation(
        pod,
        &["prometheus.io/port", "k8s.grafana.com/metrics.portNumber"],
    );
    if let Some(port) = port {
        let Ok(port) = port.parse::<u16>() else {
            tracing::warn!(
                namespace = %pod.metadata.namespace, pod = %pod.metadata.name, port,
                "Pod's port annotation is not a port number; the pod is not scraped."
            );
            return Vec::new();
        };
        let declared = pod.spec.containers.iter().find_map(|c| {
            c.ports
                .iter()
                .find(|p| p.container_port == port)
                .map(|p| (c, p))
        });
        return vec![match declared {
            Some((c, p)) => group(Some(c), port, Some(p)),
            None => group(pod.spec.containers.first(), port, None),
        }];
    }
    let mut out = Vec::new();
    for c in &pod.spec.containers {
        for p in &c.ports {
            if p.protocol.as_deref().unwrap_or("TCP") == "TCP" {
                out.push(group(Some(c), p.container_port, Some(p)));
            }
        }
    }
    out
}

/// The target groups found so far, keyed `<watched path>|<namespace>/<pod>`.
pub type Published = Arc<Mutex<BTreeMap<String, Vec<StaticConfig>>>>;

/// A running discovery: its tasks and what they found.
pub struct Discovery {
    pub groups: Published,
    task: tokio::task::JoinHandle<()>,
}

impl Discovery {
    /// Starts discovery for one `kubernetes_sd_configs` entry; `changed` is called after
    /// every change of the published groups. Credentials that cannot be loaded yet (a
    /// Pi often starts Picket before k3s has written its kubeconfig) are retried with
    /// the same backoff as API errors.
    pub fn start(
        sd: &KubernetesSdConfig,
        annotations: bool,
        runtime: &tokio::runtime::Handle,
        changed: Arc<dyn Fn() + Send + Sync>,
        ingest: &Ingest,
    ) -> Discovery {
        let groups: Published = Arc::default();
        let task = runtime.spawn(discover(
            sd.clone(),
            annotations,
            groups.clone(),
            changed,
            ingest.clone(),
        ));
        Discovery { groups, task }
    }

    /// Every group found now.
    pub fn snapshot(&self) -> Vec<StaticConfig> {
        self.groups
            .lock()
            .map(|g| g.values().flatten().cloned().collect())
            .unwrap_or_default()
    }

    pub fn stop(self) {
        // Aborting the task drops its JoinSet, which aborts every watcher.
        self.task.abort();
    }
}

/// Connects (retrying), then runs one watcher per namespace until aborted.
async fn discover(
    sd: KubernetesSdConfig,
    annotations: bool,
    groups: Published,
    changed: Arc<dyn Fn() + Send + Sync>,
    ingest: Ingest,
) {
    let mut backoff = MIN_BACKOFF;
    let mut logged = false;
    let conn = loop {
        match connect(&sd) {
            Ok(c) => break Arc::new(c),
            Err(e) => {
                if !logged {
                    tracing::warn!(error = %e, "Kubernetes discovery cannot connect yet; retrying with backoff.");
                    logged = true;
                }
                ingest.stats().scrape.kubernetes(KubernetesCount::Failure);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    };
    if logged {
        tracing::info!("Kubernetes discovery connected.");
    }
    let mut namespaces: Vec<String> = sd
        .namespaces
        .as_ref()
        .map(|n| n.names.clone())
        .unwrap_or_default();
    if sd.namespaces.as_ref().is_some_and(|n| n.own_namespace) {
        match conn.own_namespace.clone() {
            Some(n) => namespaces.push(n),
            None => {
                tracing::error!(
                    "namespaces.own_namespace: the service account's namespace is unknown; Kubernetes discovery stops."
                );
                return;
            }
        }
    }
    let paths: Vec<String> = if namespaces.is_empty() {
        vec!["/api/v1/pods".into()]
    } else {
        namespaces
            .iter()
            .map(|n| format!("/api/v1/namespaces/{n}/pods"))
            .collect()
    };
    let mut fields: Vec<String> = Vec::new();
    let mut labels: Vec<String> = Vec::new();
    for s in &sd.selectors {
        fields.extend(s.field.clone());
        labels.extend(s.label.clone());
    }
    if sd.this_node_only {
        fields.push(format!("spec.nodeName={}", node_name(&sd)));
    }
    let mut query: Vec<(&str, String)> = Vec::new();
    if !fields.is_empty() {
        query.push(("fieldSelector", fields.join(",")));
    }
    if !labels.is_empty() {
        query.push(("labelSelector", labels.join(",")));
    }
    let mut watchers = tokio::task::JoinSet::new();
    for path in paths {
        watchers.spawn(
            Watcher {
                conn: conn.clone(),
                path,
                query: query.clone(),
                annotations,
                groups: groups.clone(),
                changed: changed.clone(),
                ingest: ingest.clone(),
            }
            .run(),
        );
    }
    while watchers.join_next().await.is_some() {}
}

/// This node's name: `node_name`, else `$NODE_NAME` (the downward API usually sets it),
/// else the host name (k3s names nodes after their host name).
pub fn node_name(sd: &KubernetesSdConfig) -> String {
    if let Some(n) = sd.node_name.as_ref().filter(|n| !n.is_empty()) {
        return n.clone();
    }
    if let Ok(n) = std::env::var("NODE_NAME")
        && !n.is_empty()
    {
        return n;
    }
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Why a list or watch stopped.
#[derive(Debug)]
enum WatchEnd {
    /// The resourceVersion is too old (410 Gone): list again at once.
    Gone,
    /// Anything else: back off, then list again.
    Failed(String),
}

struct Watcher {
    conn: Arc<Connection>,
    path: String,
    query: Vec<(&'static str, String)>,
    annotations: bool,
    groups: Published,
    changed: Arc<dyn Fn() + Send + Sync>,
    /// For the discovery counters.
    ingest: Ingest,
}

impl Watcher {
    async fn run(self) {
        let mut backoff = MIN_BACKOFF;
        let mut failing = false;
        loop {
            let started = tokio::time::Instant::now();
            let end = match self.list().await {
                Ok(version) => {
                    if failing {
                        tracing::info!(path = %self.path, "Kubernetes discovery recovered.");
                        failing = false;
                    }
                    self.watch(version).await
                }
                Err(e) => WatchEnd::Failed(e),
            };
            self.ingest.stats().scrape.kubernetes(match end {
                WatchEnd::Gone => KubernetesCount::Expired,
                WatchEnd::Failed(_) => KubernetesCount::Failure,
            });
            // Only a watch that held for a while resets the backoff: a server whose lists
            // work but whose watches fail (or expire at once) must not be hit every second.
            let healthy = started.elapsed() >= HEALTHY_WATCH;
            if healthy {
                backoff = MIN_BACKOFF;
            }
            match end {
                WatchEnd::Gone => {
                    tracing::debug!(path = %self.path, "Watch expired (410 Gone); listing again.");
                    if healthy {
                        continue;
                    }
                }
                WatchEnd::Failed(e) => {
                    if !failing {
                        tracing::warn!(path = %self.path, error = %e, "Kubernetes discovery failed; retrying with backoff.");
                        failing = true;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    fn request(&self, extra: &[(&str, String)]) -> Result<reqwest::RequestBuilder, String> {
        let mut req = self
            .conn
            .client
            .get(format!("{}{}", self.conn.base, self.path))
            .query(&self.query)
            .query(extra)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(h) = self.conn.auth.authorization_header()? {
            req = req.header(reqwest::header::AUTHORIZATION, h);
        }
        Ok(req)
    }

    fn groups_of(&self, pod: &Pod) -> Vec<StaticConfig> {
        if self.annotations {
            annotated_groups(pod)
        } else {
            prometheus_groups(pod)
        }
    }

    /// Replaces everything this watcher published by `pods` (after a LIST).
    fn publish_all(&self, pods: Vec<(String, Vec<StaticConfig>)>) {
        let prefix = format!("{}|", self.path);
        if let Ok(mut g) = self.groups.lock() {
            g.retain(|k, _| !k.starts_with(&prefix));
            for (k, v) in pods {
                g.insert(format!("{prefix}{k}"), v);
            }
        }
        (self.changed)();
    }

    /// Publishes one pod's groups (`None`: the pod is gone), after a watch event.
    fn publish_one(&self, key: &str, groups: Option<Vec<StaticConfig>>) {
        let key = format!("{}|{key}", self.path);
        if let Ok(mut g) = self.groups.lock() {
            match groups {
                Some(v) => g.insert(key, v),
                None => g.remove(&key),
            };
        }
        (self.changed)();
    }

    /// LISTs the pods, replacing what is known; returns the list's resourceVersion.
    async fn list(&self) -> Result<String, String> {
        let resp = self
            .request(&[])?
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| super::manager::error_chain(&e))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().await.unwrap_or_default();
            return Err(format!("listing pods: HTTP {status}: {}", body.trim()));
        }
        let list: PodList = resp
            .json()
            .await
            .map_err(|e| format!("listing pods: {}", super::manager::error_chain(&e)))?;
        self.ingest.stats().scrape.kubernetes(KubernetesCount::List);
        let pods = list
            .items
            .iter()
            .map(|p| (pod_key(p), self.groups_of(p)))
            .collect();
        self.publish_all(pods);
        Ok(list.metadata.resource_version)
    }

    /// WATCHes from `version` until the stream ends badly; a stream ended by the server's
    /// timeout is renewed from the last version seen.
    async fn watch(&self, mut version: String) -> WatchEnd {
        loop {
            let req = match self.request(&[
                ("watch", "1".into()),
                ("resourceVersion", version.clone()),
                ("allowWatchBookmarks", "true".into()),
                ("timeoutSeconds", WATCH_TIMEOUT_SECONDS.to_string()),
            ]) {
                Ok(r) => r,
                Err(e) => return WatchEnd::Failed(e),
            };
            let mut resp = match req.send().await {
                Ok(r) => r,
                Err(e) => return WatchEnd::Failed(super::manager::error_chain(&e)),
            };
            if resp.status() == reqwest::StatusCode::GONE {
                return WatchEnd::Gone;
            }
            if !resp.status().is_success() {
                return WatchEnd::Failed(format!("watching pods: HTTP {}", resp.status()));
            }
            let idle = Duration::from_secs(WATCH_TIMEOUT_SECONDS) + WATCH_IDLE_GRACE;
            let mut buf: Vec<u8> = Vec::new();
            loop {
                let chunk = match tokio::time::timeout(idle, resp.chunk()).await {
                    Err(_) => return WatchEnd::Failed("watch stalled".into()),
                    Ok(Err(e)) => return WatchEnd::Failed(super::manager::error_chain(&e)),
                    Ok(Ok(None)) => break,
                    Ok(Ok(Some(c))) => c,
                };
                buf.extend_from_slice(&chunk);
                while let Some(nl) = buf.iter().position(|&b| b == b'\n') {
                    let line: Vec<u8> = buf.drain(..=nl).collect();
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match self.event(&line, &mut version) {
                        Ok(()) => {}
                        Err(end) => return end,
                    }
                }
            }
        }
    }

    /// Applies one watch event.
    fn event(&self, line: &[u8], version: &mut String) -> Result<(), WatchEnd> {
        let ev: WatchEvent = serde_json::from_slice(line)
            .map_err(|e| WatchEnd::Failed(format!("bad watch event: {e}")))?;
        if let Some(i) = super::KUBERNETES_EVENTS
            .iter()
            .position(|e| e.eq_ignore_ascii_case(&ev.kind))
        {
            self.ingest
                .stats()
                .scrape
                .kubernetes(KubernetesCount::Event(i));
        }
        match ev.kind.as_str() {
            "ADDED" | "MODIFIED" | "DELETED" => {
                let pod: Pod = serde_json::from_value(ev.object)
                    .map_err(|e| WatchEnd::Failed(format!("bad pod in watch event: {e}")))?;
                if !pod.metadata.resource_version.is_empty() {
                    version.clone_from(&pod.metadata.resource_version);
                }
                let groups = (ev.kind != "DELETED").then(|| self.groups_of(&pod));
                self.publish_one(&pod_key(&pod), groups);
            }
            "BOOKMARK" => {
                if let Some(v) = ev
                    .object
                    .pointer("/metadata/resourceVersion")
                    .and_then(|v| v.as_str())
                {
                    *version = v.to_string();
                }
            }
            "ERROR" => {
                // A meta/v1 Status; 410 means the version expired.
                let code = ev.object.get("code").and_then(|c| c.as_u64());
                if code == Some(410) {
                    return Err(WatchEnd::Gone);
                }
                let msg = ev
                    .object
                    .get("message")
                    .and_then(|m| m.as_str())
                    .unwrap_or("");
                return Err(WatchEnd::Failed(format!(
                    "watch error {}: {msg}",
                    code.unwrap_or(0)
                )));
            }
            other => tracing::debug!(kind = other, "Unknown watch event ignored."),
        }
        Ok(())
    }
}

fn pod_key(p: &Pod) -> String {
    format!("{}/{}", p.metadata.namespace, p.metadata.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pod as the API server returns it (core/v1 Pod, trimmed of fields Picket
    /// ignores but keeping their nesting).
    const POD: &str = r#"{
      "metadata": {
        "name": "vllm-0", "namespace": "ai", "uid": "3f1c",
        "resourceVersion": "1001",
        "labels": {"app.kubernetes.io/name": "vllm"},
        "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8000",
                        "prometheus.io/path": "/stats"},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "vllm",
                             "uid": "9", "controller": true, "blockOwnerDeletion": true}]
      },
      "spec": {
        "nodeName": "pi-1",
        "containers": [
          {"name": "server", "image": "vllm:1",
           "ports": [{"name": "http", "containerPort": 8000, "protocol": "TCP"},
                     {"name": "grpc", "containerPort": 9000}]},
          {"name": "sidecar", "image": "envoy:1"}
        ],
        "initContainers": [{"name": "init", "image": "busybox"}]
      },
      "status": {
        "phase": "Running", "podIP": "10.42.0.7", "hostIP": "192.168.1.5",
        "conditions": [{"type": "Initialized", "status": "True"},
                       {"type": "Ready", "status": "True"}],
        "containerStatuses": [{"name": "server", "containerID": "containerd://abc",
                               "ready": true, "restartCount": 0}]
      }
    }"#;

    fn pod() -> Pod {
        serde_json::from_str(POD).unwrap()
    }

    #[test]
    fn prometheus_targets_are_one_per_port_and_per_portless_container() {
        let g = prometheus_groups(&pod());
        let addrs: Vec<&str> = g.iter().map(|g| g.targets[0].as_str()).collect();
        assert_eq!(
            addrs,
            ["10.42.0.7:8000", "10.42.0.7:9000", "10.42.0.7", "10.42.0.7"]
        );
        let l = &g[0].labels;
        let get = |k: &str| l.get(&format!("{META}{k}")).map(String::as_str);
        assert_eq!(get("namespace"), Some("ai"));
        assert_eq!(get("pod_name"), Some("vllm-0"));
        assert_eq!(get("pod_ip"), Some("10.42.0.7"));
        assert_eq!(get("pod_node_name"), Some("pi-1"));
        assert_eq!(get("pod_ready"), Some("true"));
        assert_eq!(get("pod_phase"), Some("Running"));
        assert_eq!(get("pod_uid"), Some("3f1c"));
        assert_eq!(get("pod_controller_kind"), Some("StatefulSet"));
        assert_eq!(get("pod_controller_name"), Some("vllm"));
        assert_eq!(get("pod_label_app_kubernetes_io_name"), Some("vllm"));
        assert_eq!(get("pod_labelpresent_app_kubernetes_io_name"), Some("true"));
        assert_eq!(get("pod_annotation_prometheus_io_port"), Some("8000"));
        assert_eq!(
            get("pod_annotationpresent_prometheus_io_port"),
            Some("true")
        );
        assert_eq!(get("pod_container_name"), Some("server"));
        assert_eq!(get("pod_container_id"), Some("containerd://abc"));
        assert_eq!(get("pod_container_port_name"), Some("http"));
        assert_eq!(get("pod_container_port_number"), Some("8000"));
        assert_eq!(get("pod_container_port_protocol"), Some("TCP"));
        assert_eq!(get("pod_container_init"), Some("false"));
        assert_eq!(
            g[1].labels[&format!("{META}pod_container_port_protocol")],
            "TCP",
            "default protocol"
        );
        assert_eq!(g[3].labels[&format!("{META}pod_container_init")], "true");
        assert!(
            !g[2]
                .labels
                .contains_key(&format!("{META}pod_container_port_number"))
        );
        let mut no_ip = pod();
        no_ip.status.pod_ip.clear();
        assert!(prometheus_groups(&no_ip).is_empty());
    }

    #[test]
    fn annotations_pick_port_path_scheme_and_attach_k8s_labels() {
        let g = annotated_groups(&pod());
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].targets, ["10.42.0.7:8000"]);
        let l = &g[0].labels;
        assert_eq!(l["__metrics_path__"], "/stats");
        assert_eq!(l["namespace"], "ai");
        assert_eq!(l["pod"], "vllm-0");
        assert_eq!(l["container"], "server");
        assert_eq!(l["node"], "pi-1");
        assert!(!l.contains_key("__scheme__"));

        // Grafana's annotations, an undeclared port: the first container gets it.
        let mut p = pod();
        p.metadata.annotations = [
            ("k8s.grafana.com/scrape", "true"),
            ("k8s.grafana.com/metrics.portNumber", "7000"),
            ("k8s.grafana.com/metrics.path", "/m"),
            ("prometheus.io/scheme", "https"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let g = annotated_groups(&p);
        assert_eq!(g[0].targets, ["10.42.0.7:7000"]);
        assert_eq!(g[0].labels["__metrics_path__"], "/m");
        assert_eq!(g[0].labels["__scheme__"], "https");
        assert_eq!(g[0].labels["container"], "server");

        // No port annotation: every declared TCP port.
        p.metadata
            .annotations
            .remove("k8s.grafana.com/metrics.portNumber");
        let addrs: Vec<String> = annotated_groups(&p)
            .into_iter()
            .map(|g| g.targets[0].clone())
            .collect();
        assert_eq!(addrs, ["10.42.0.7:8000", "10.42.0.7:9000"]);

        // Not annotated, annotated false, or finished: nothing.
        for (k, v) in [("prometheus.io/scrape", "false"), ("other", "true")] {
            let mut p = pod();
            p.metadata.annotations = [(k.to_string(), v.to_string())].into();
            assert!(annotated_groups(&p).is_empty(), "{k}={v}");
        }
        let mut done = pod();
        done.status.phase = "Succeeded".into();
        assert!(annotated_groups(&done).is_empty());
    }

    #[test]
    fn kubeconfig_gives_server_ca_and_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k3s.yaml");
        std::fs::write(&path, "apiVersion: v1\nclusters:\n- cluster:\n    server: https://127.0.0.1:6443/\n  name: default\ncontexts:\n- context:\n    cluster: default\n    user: default\n    namespace: monitoring\n  name: default\ncurrent-context: default\nkind: Config\npreferences: {}\nusers:\n- name: default\n  user:\n    token: abc\n").unwrap();
        let c = from_kubeconfig(&path).unwrap();
        assert_eq!(c.base, "https://127.0.0.1:6443");
        assert_eq!(c.own_namespace.as_deref(), Some("monitoring"));
        assert_eq!(
            c.auth.authorization_header().unwrap().as_deref(),
            Some("Bearer abc")
        );

        std::fs::write(&path, "clusters:\n- cluster:\n    server: https://x\n    certificate-authority-data: bm90IGEgY2VydA==\n  name: c\ncontexts:\n- context: {cluster: c, user: u}\n  name: x\ncurrent-context: x\nusers:\n- name: u\n  user:\n    exec: {command: aws}\n").unwrap();
        let e = from_kubeconfig(&path).unwrap_err();
        assert!(e.contains("certificate-authority"), "{e}");
        std::fs::write(&path, "clusters:\n- cluster:\n    server: https://x\n  name: c\ncontexts:\n- context: {cluster: c, user: u}\n  name: x\ncurrent-context: x\nusers:\n- name: u\n  user:\n    exec: {command: aws}\n").unwrap();
        let e = from_kubeconfig(&path).unwrap_err();
        assert!(e.contains("exec"), "{e}");
    }

    #[test]
    fn watch_events_update_bookmark_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(crate::store::StoreOptions {
            path: dir.path().to_path_buf(),
            flush_interval: Duration::from_secs(60),
        })
        .unwrap();
        let w = Watcher {
            conn: Arc::new(Connection {
                base: "http://127.0.0.1:1".into(),
                client: reqwest::Client::new(),
                auth: HttpClientConfig::default(),
                own_namespace: None,
            }),
            path: "/api/v1/pods".into(),
            query: Vec::new(),
            annotations: false,
            groups: Arc::default(),
            changed: Arc::new(|| {}),
            ingest: Ingest::new(store.clone()),
        };
        let mut v = String::new();
        let added = format!(r#"{{"type":"ADDED","object":{}}}"#, POD.replace('\n', " "));
        w.event(added.as_bytes(), &mut v).unwrap();
        assert_eq!(v, "1001");
        assert_eq!(w.groups.lock().unwrap().values().flatten().count(), 4);
        w.event(br#"{"type":"BOOKMARK","object":{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"1200"}}}"#, &mut v).unwrap();
        assert_eq!(v, "1200");
        let deleted = added.replace("ADDED", "DELETED");
        w.event(deleted.as_bytes(), &mut v).unwrap();
        assert_eq!(w.groups.lock().unwrap().values().flatten().count(), 0);
        let gone = w.event(br#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 1 (5)","reason":"Expired","code":410}}"#, &mut v);
        assert!(matches!(gone, Err(WatchEnd::Gone)));
        let (_, events, _, _) = w.ingest.stats().scrape.kubernetes_counts();
        assert_eq!(
            events,
            [
                ("added", 1),
                ("modified", 0),
                ("deleted", 1),
                ("bookmark", 1)
            ]
        );
        store.close().unwrap();
    }
}
