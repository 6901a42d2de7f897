//! The DNS prober, blackbox_exporter's `dns` module over UDP: one query
//! (`query_name`, `query_type`) to the target server, success when the answer's response
//! code is among `valid_rcodes`. Messages are built and parsed with hickory-proto; the
//! UDP exchange is done here so each phase (`resolve`, `connect`, `request`) is timed.

use super::{Measured, Prepared, net};
use crate::config::probe::RCODES;
use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RecordType};
use std::net::SocketAddr;
use std::time::Instant;
use tokio::net::UdpSocket;

fn phase(m: &mut Measured, name: &'static str, since: Instant) {
    m.set_labeled(
        "probe_dns_duration_seconds",
        Some(("phase", name.into())),
        since.elapsed().as_secs_f64(),
    );
}

/// The target is the server: `host` or `host:port` (port 53 by default).
pub async fn probe(p: &Prepared, target: &str, m: &mut Measured) -> Result<(), String> {
    let dns = p
        .config
        .dns
        .as_ref()
        .ok_or("BUG: dns probe without [probe.dns]")?;
    for name in [
        "probe_dns_answer_rrs",
        "probe_dns_authority_rrs",
        "probe_dns_additional_rrs",
        "probe_dns_query_succeeded",
    ] {
        m.set(name, 0.0);
    }
    for ph in ["resolve", "connect", "request"] {
        m.set_labeled(
            "probe_dns_duration_seconds",
            Some(("phase", ph.into())),
            0.0,
        );
    }
    let (host, port) =
        net::split_host_port(target).unwrap_or((target.trim_matches(['[', ']']), 53));
    let t = Instant::now();
    let server = net::resolve(&p.config, host, port, m).await?;
    phase(m, "resolve", t);

    let t = Instant::now();
    let local: SocketAddr = if server.is_ipv6() {
        "[::]:0".parse().expect("BUG: literal address")
    } else {
        "0.0.0.0:0".parse().expect("BUG: literal address")
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|e| format!("binding a UDP socket: {e}"))?;
    socket
        .connect(server)
        .await
        .map_err(|e| format!("connecting to {server}: {e}"))?;
    phase(m, "connect", t);

    let kind: RecordType = dns
        .query_type
        .parse()
        .map_err(|_| format!("unknown record type {:?}", dns.query_type))?;
    let name = Name::from_ascii(&dns.query_name)
        .map_err(|e| format!("invalid query_name {:?}: {e}", dns.query_name))?;
    let mut query = Message::query();
    query.metadata.recursion_desired = dns.recursion_desired;
    query.add_query(Query::query(name, kind));
    let wire = query.to_vec().map_err(|e| e.to_string())?;
    let t = Instant::now();
    socket
        .send(&wire)
        .await
        .map_err(|e| format!("sending the query: {e}"))?;
    let mut buf = vec![0u8; 4096];
    // Datagrams with another ID (late answers to nothing we asked) are skipped; the
    // probe's timeout bounds the wait.
    let answer = loop {
        let n = socket
            .recv(&mut buf)
            .await
            .map_err(|e| format!("receiving the answer: {e}"))?;
        match Message::from_vec(&buf[..n]) {
            Ok(msg) if msg.metadata.id == query.metadata.id => break msg,
            Ok(_) => continue,
            Err(e) => return Err(format!("invalid DNS answer: {e}")),
        }
    };
    phase(m, "request", t);
    m.set("probe_dns_query_succeeded", 1.0);
    m.set("probe_dns_answer_rrs", answer.answers.len() as f64);
    m.set("probe_dns_authority_rrs", answer.authorities.len() as f64);
    m.set("probe_dns_additional_rrs", answer.additionals.len() as f64);
    let code = u16::from(answer.metadata.response_code);
    let rcode = RCODES.get(usize::from(code)).copied().unwrap_or("unknown");
    if !dns.valid_rcodes.iter().any(|v| v == rcode) {
        return Err(format!("response code {rcode} is not among valid_rcodes"));
    }
    Ok(())
}
