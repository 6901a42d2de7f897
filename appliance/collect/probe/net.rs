//! Name resolution as blackbox_exporter does it (the preferred address family first, the
//! other as fallback; `probe_dns_lookup_time_seconds`, `probe_ip_protocol`) and the TCP
//! prober: connect, optionally a TLS handshake, then the optional `query_response`
//! dialogue (banner checks such as SSH's `^SSH-2.0-`).

use super::{Measured, Prepared};
use crate::config::probe::{IpProtocol, ProbeConfig, QueryResponse};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Splits `host:port` (`[v6]:port` too); `None` when there is no valid port.
pub fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    (!host.is_empty()).then_some((host, port))
}

/// Resolves `host` (an IP literal needs no lookup) and records the lookup time and the
/// address family used.
pub async fn resolve(
    config: &ProbeConfig,
    host: &str,
    port: u16,
    m: &mut Measured,
) -> Result<SocketAddr, String> {
    let started = Instant::now();
    let result = match host.parse::<IpAddr>() {
        Ok(ip) => Ok(SocketAddr::new(ip, port)),
        Err(_) => match tokio::net::lookup_host((host, port)).await {
            Err(e) => Err(format!("resolving {host}: {e}")),
            Ok(addrs) => {
                let addrs: Vec<SocketAddr> = addrs.collect();
                let want_v6 = config.preferred_ip_protocol == IpProtocol::Ip6;
                addrs
                    .iter()
                    .find(|a| a.is_ipv6() == want_v6)
                    .or_else(|| addrs.first().filter(|_| config.ip_protocol_fallback))
                    .copied()
                    .ok_or_else(|| format!("no address of the wanted family for {host}"))
            }
        },
    };
    m.set(
        "probe_dns_lookup_time_seconds",
        started.elapsed().as_secs_f64(),
    );
    let addr = result?;
    m.set("probe_ip_protocol", if addr.is_ipv6() { 6.0 } else { 4.0 });
    m.set("probe_ip_addr_hash", f64::from(ip_hash(addr.ip())));
    Ok(addr)
}

/// blackbox_exporter's `probe_ip_addr_hash`: FNV-1a (32 bit) of the address bytes (4 for
/// IPv4, 16 for IPv6), so a changed address shows as a changed value.
fn ip_hash(ip: IpAddr) -> u32 {
    let octets: Vec<u8> = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    octets.iter().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

/// The TCP prober: `target` is `host:port`; success is a completed connect (and TLS
/// handshake when `tcp.tls` is set).
pub async fn probe_tcp(p: &Prepared, target: &str, m: &mut Measured) -> Result<(), String> {
    // blackbox_exporter registers it for every TCP probe (its query_response checks).
    m.set("probe_failed_due_to_regex", 0.0);
    let (host, port) =
        split_host_port(target).ok_or_else(|| format!("target {target:?} is not host:port"))?;
    let addr = resolve(&p.config, host, port, m).await?;
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    if let Some(tls) = &p.tls {
        let name = p
            .config
            .tcp
            .tls_config
            .as_ref()
            .and_then(|t| t.server_name.as_deref())
            .unwrap_or(host);
        let stream = super::tls::handshake(tls.clone(), name, stream, m).await?;
        return dialogue(stream, &p.config.tcp.query_response, m).await;
    }
    dialogue(stream, &p.config.tcp.query_response, m).await
}

/// blackbox_exporter's `query_response`: each step waits for a line (without its line
/// ending) matching `expect`, then writes `send` and a newline. A connection that ends
/// before an expected line fails the probe with `probe_failed_due_to_regex` 1; the
/// probe's timeout bounds the wait.
async fn dialogue<S>(stream: S, steps: &[QueryResponse], m: &mut Measured) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = BufReader::new(stream);
    let mut line = Vec::new();
    for step in steps {
        let mut send = step.send.as_ref().map(|s| s.as_bytes().to_vec());
        if let Some(expect) = &step.expect {
            loop {
                line.clear();
                let n = conn
                    .read_until(b'\n', &mut line)
                    .await
                    .map_err(|e| format!("reading: {e}"))?;
                if n == 0 {
                    m.set("probe_failed_due_to_regex", 1.0);
                    return Err(format!("no line matched {:?}", expect.0.as_str()));
                }
                let text = line.strip_suffix(b"\n").unwrap_or(&line);
                let text = text.strip_suffix(b"\r").unwrap_or(text);
                if let Some(caps) = expect.0.captures(text) {
                    if let Some(template) = &step.send {
                        let mut expanded = Vec::new();
                        caps.expand(template.as_bytes(), &mut expanded);
                        send = Some(expanded);
                    }
                    break;
                }
            }
        }
        if let Some(mut bytes) = send {
            bytes.push(b'\n');
            let w = conn.get_mut();
            w.write_all(&bytes)
                .await
                .map_err(|e| format!("sending: {e}"))?;
            w.flush().await.map_err(|e| format!("sending: {e}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_pairs_split_like_go() {
        assert_eq!(split_host_port("a.b:80"), Some(("a.b", 80)));
        assert_eq!(split_host_port("[::1]:53"), Some(("::1", 53)));
        assert_eq!(split_host_port("a.b"), None);
        assert_eq!(split_host_port(":80"), None);
        assert_eq!(split_host_port("a:99999"), None);
    }

    #[tokio::test]
    async fn a_dialogue_expands_groups_into_what_it_sends() {
        use tokio::io::AsyncReadExt;
        let tcp: crate::config::probe::TcpProbe = toml::from_str(
            "query_response = [{ expect = '^PING :(\\w+)$', send = 'PONG ${1}' }, { expect = '^OK' }]",
        )
        .unwrap();
        let (client, mut server) = tokio::io::duplex(1024);
        server
            .write_all(b"NOTICE x\r\nPING :abc\r\nOK\n")
            .await
            .unwrap();
        let mut m = Measured::default();
        dialogue(client, &tcp.query_response, &mut m).await.unwrap();
        let mut got = [0u8; 9];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"PONG abc\n");

        let (client, mut server) = tokio::io::duplex(1024);
        server.write_all(b"hello\n").await.unwrap();
        drop(server);
        let mut m = Measured::default();
        assert!(dialogue(client, &tcp.query_response, &mut m).await.is_err());
        assert_eq!(m.get("probe_failed_due_to_regex"), Some(1.0));
    }

    #[test]
    fn the_ip_hash_is_blackbox_exporters() {
        // What blackbox_exporter 0.23 reports for 127.0.0.1.
        assert_eq!(ip_hash("127.0.0.1".parse().unwrap()), 3_668_918_509);
    }
}
