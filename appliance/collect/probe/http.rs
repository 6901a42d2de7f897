//! The HTTP prober, blackbox_exporter's `http` module: one request per hop (redirects
//! followed unless `no_follow_redirects`, at most 10), each hop timed by phase —
//! `resolve`, `connect`, `tls`, `processing` (request sent to response headers) and
//! `transfer` (the body) — which is why it drives hyper's HTTP/1.1 connection directly
//! rather than through a client that hides those steps.
//!
//! Success: a valid status code (2xx by default), a valid HTTP version, the TLS
//! conditions (`fail_if_ssl`, `fail_if_not_ssl`) and the body regexes.

use super::{Measured, Prepared, net, tls};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::time::Instant;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Go's http.Client stops after 10 redirects; blackbox_exporter inherits that.
const MAX_REDIRECTS: u32 = 10;
const PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];

/// The response of one hop.
struct Hop {
    status: u16,
    version: f64,
    content_length: Option<u64>,
    location: Option<String>,
    body: Vec<u8>,
}

pub async fn probe(p: &Prepared, target: &str, m: &mut Measured) -> Result<(), String> {
    let h = &p.config.http;
    // What blackbox_exporter registers for every HTTP probe, so a failed probe still has
    // its series (at 0).
    for phase in PHASES {
        m.set_labeled(
            "probe_http_duration_seconds",
            Some(("phase", phase.into())),
            0.0,
        );
    }
    for name in [
        "probe_http_content_length",
        "probe_http_uncompressed_body_length",
        "probe_http_redirects",
        "probe_http_ssl",
        "probe_http_status_code",
        "probe_http_version",
        "probe_failed_due_to_regex",
    ] {
        m.set(name, 0.0);
    }
    let with_scheme;
    let target = if target.contains("://") {
        target
    } else {
        with_scheme = format!("http://{target}");
        &with_scheme
    };
    let mut url =
        reqwest::Url::parse(target).map_err(|e| format!("invalid URL {target:?}: {e}"))?;
    let mut method = h.method.clone();
    let mut redirects = 0u32;
    let hop = loop {
        let hop = request(p, &url, &method, m).await?;
        let follow = !h.no_follow_redirects
            && matches!(hop.status, 301 | 302 | 303 | 307 | 308)
            && hop.location.is_some();
        if !follow {
            break hop;
        }
        redirects += 1;
        m.set("probe_http_redirects", f64::from(redirects));
        if redirects > MAX_REDIRECTS {
            return Err(format!("stopped after {MAX_REDIRECTS} redirects"));
        }
        let location = hop.location.unwrap_or_default();
        url = url
            .join(&location)
            .map_err(|e| format!("invalid redirect location {location:?}: {e}"))?;
        // As Go's client: 303 (and 301/302 after a POST) continue as GET.
        if hop.status == 303 || (matches!(hop.status, 301 | 302) && method == "POST") {
            method = "GET".into();
        }
    };
    let ssl = url.scheme() == "https";
    m.set("probe_http_ssl", if ssl { 1.0 } else { 0.0 });
    m.set("probe_http_status_code", f64::from(hop.status));
    m.set("probe_http_version", hop.version);
    m.set(
        "probe_http_content_length",
        hop.content_length.map_or(-1.0, |n| n as f64),
    );
    m.set("probe_http_uncompressed_body_length", hop.body.len() as f64);
    let valid_status = if h.valid_status_codes.is_empty() {
        (200..300).contains(&hop.status)
    } else {
        h.valid_status_codes.contains(&hop.status)
    };
    if !valid_status {
        return Err(format!("invalid HTTP response status code {}", hop.status));
    }
    let version = if hop.version == 1.0 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    if !h.valid_http_versions.is_empty() && !h.valid_http_versions.iter().any(|v| v == version) {
        return Err(format!("invalid HTTP version {version}"));
    }
    if h.fail_if_ssl && ssl {
        return Err("final request was over SSL".into());
    }
    if h.fail_if_not_ssl && !ssl {
        return Err("final request was not over SSL".into());
    }
    let matched = h
        .fail_if_body_matches_regexp
        .iter()
        .any(|r| r.0.is_match(&hop.body));
    let missing = h
        .fail_if_body_not_matches_regexp
        .iter()
        .any(|r| !r.0.is_match(&hop.body));
    if matched || missing {
        m.set("probe_failed_due_to_regex", 1.0);
        return Err("body failed a regex condition".into());
    }
    Ok(())
}

fn phase(m: &mut Measured, name: &'static str, since: Instant) {
    m.add_labeled(
        "probe_http_duration_seconds",
        ("phase", name.into()),
        since.elapsed().as_secs_f64(),
    );
}

/// One request on a new connection.
async fn request(
    p: &Prepared,
    url: &reqwest::Url,
    method: &str,
    m: &mut Measured,
) -> Result<Hop, String> {
    let host = url
        .host_str()
        .ok_or_else(|| format!("URL {url} has no host"))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("URL {url} has no port"))?;
    let t = Instant::now();
    let addr = net::resolve(&p.config, host.trim_matches(['[', ']']), port, m).await?;
    phase(m, "resolve", t);
    let t = Instant::now();
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    phase(m, "connect", t);
    match url.scheme() {
        "http" => exchange(p, url, method, stream, m).await,
        "https" => {
            let config = p
                .tls
                .clone()
                .ok_or("BUG: no TLS config for an HTTP probe")?;
            let name = p
                .config
                .http
                .tls_config
                .as_ref()
                .and_then(|t| t.server_name.as_deref())
                .unwrap_or(host);
            let t = Instant::now();
            let tls = tls::handshake(config, name, stream, m).await?;
            phase(m, "tls", t);
            exchange(p, url, method, tls, m).await
        }
        other => Err(format!("unsupported URL scheme {other:?}")),
    }
}

async fn exchange<S>(
    p: &Prepared,
    url: &reqwest::Url,
    method: &str,
    stream: S,
    m: &mut Measured,
) -> Result<Hop, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let h = &p.config.http;
    let t = Instant::now();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    let host_header = match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or("")),
        None => url.host_str().unwrap_or("").to_string(),
    };
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, host_header)
        .header(
            hyper::header::USER_AGENT,
            concat!("Picket/", env!("CARGO_PKG_VERSION")),
        )
        .body(Full::new(Bytes::from(h.body.clone().unwrap_or_default())))
        .map_err(|e| format!("building the request: {e}"))?;
    let headers = req.headers_mut();
    if let Some(b) = &h.basic_auth {
        headers.insert(
            hyper::header::AUTHORIZATION,
            b.header_value()?
                .parse()
                .map_err(|_| "invalid basic_auth")?,
        );
    } else if let Some(t) = &h.bearer_token {
        headers.insert(
            hyper::header::AUTHORIZATION,
            format!("Bearer {t}")
                .parse()
                .map_err(|_| "invalid bearer_token")?,
        );
    }
    for (k, v) in &h.headers {
        let name = hyper::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("invalid header name {k:?}"))?;
        let value = v
            .parse()
            .map_err(|_| format!("invalid value of header {k:?}"))?;
        headers.insert(name, value);
    }
    let resp = sender.send_request(req).await;
    phase(m, "processing", t);
    let mut resp = match resp {
        Ok(r) => r,
        Err(e) => {
            driver.abort();
            return Err(format!("request failed: {e}"));
        }
    };
    let t = Instant::now();
    let status = resp.status().as_u16();
    let version = if resp.version() == hyper::Version::HTTP_10 {
        1.0
    } else {
        1.1
    };
    let content_length = resp
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    let location = resp
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let limit = h.body_size_limit.0;
    let mut body = Vec::new();
    let read = async {
        while let Some(frame) = resp.body_mut().frame().await {
            let frame = frame.map_err(|e| format!("reading the body: {e}"))?;
            if let Some(data) = frame.data_ref() {
                body.extend_from_slice(data);
                if limit > 0 && body.len() as u64 > limit {
                    return Err(format!("body larger than body_size_limit ({limit} bytes)"));
                }
            }
        }
        Ok(())
    }
    .await;
    phase(m, "transfer", t);
    driver.abort();
    read?;
    Ok(Hop {
        status,
        version,
        content_length,
        location,
        body,
    })
}
