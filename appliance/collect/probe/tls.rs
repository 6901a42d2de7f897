//! TLS for the probes: a rustls client config from a `tls_config` table (Mozilla's roots
//! plus `ca_file`, a client certificate, `insecure_skip_verify`), and what a finished
//! handshake tells: `probe_tls_version_info` and `probe_ssl_earliest_cert_expiry` (the
//! earliest `notAfter` among the certificates the server sent).

use super::Measured;
use crate::config::scrape::TlsConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the client config; `http` offers ALPN `http/1.1` (the HTTP prober speaks it).
pub fn client_config(
    tls: Option<&TlsConfig>,
    http: bool,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let default = TlsConfig::default();
    let tls = tls.unwrap_or(&default);
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(ca) = &tls.ca_file {
            let certs = CertificateDer::pem_file_iter(ca)
                .map_err(|e| format!("tls_config.ca_file {}: {e}", ca.display()))?;
            for c in certs {
                let c = c.map_err(|e| format!("tls_config.ca_file {}: {e}", ca.display()))?;
                roots
                    .add(c)
                    .map_err(|e| format!("tls_config.ca_file {}: {e}", ca.display()))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("tls_config.cert_file {}: {e}", cert.display()))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| format!("tls_config.key_file {}: {e}", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("tls_config: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    if http {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    Ok(Arc::new(config))
}

/// `insecure_skip_verify`: any certificate is accepted, signatures are still checked so
/// the handshake itself stays sound.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Completes a TLS handshake on `stream` for `server_name` and records what it tells.
pub async fn handshake(
    config: Arc<rustls::ClientConfig>,
    server_name: &str,
    stream: TcpStream,
    m: &mut Measured,
) -> Result<TlsStream<TcpStream>, String> {
    let name = ServerName::try_from(server_name.trim_matches(['[', ']']).to_string())
        .map_err(|e| format!("invalid TLS server name {server_name:?}: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    record(tls.get_ref().1, m);
    Ok(tls)
}

fn record(conn: &rustls::ClientConnection, m: &mut Measured) {
    if let Some(v) = conn.protocol_version() {
        let name = match v {
            rustls::ProtocolVersion::TLSv1_2 => "TLS 1.2",
            rustls::ProtocolVersion::TLSv1_3 => "TLS 1.3",
            _ => "unknown",
        };
        m.set_labeled(
            "probe_tls_version_info",
            Some(("version", name.into())),
            1.0,
        );
    }
    let expiries: Vec<i64> = conn
        .peer_certificates()
        .unwrap_or_default()
        .iter()
        .filter_map(|c| not_after(c))
        .collect();
    if let Some(earliest) = expiries.iter().min() {
        m.set("probe_ssl_earliest_cert_expiry", *earliest as f64);
        m.set(
            "probe_ssl_last_chain_expiry_timestamp_seconds",
            *earliest as f64,
        );
    }
}

/// One DER element: (tag, contents, rest).
fn tlv(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = buf.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = len << 8 | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The `notAfter` of an X.509 certificate, in Unix seconds: Certificate ::= SEQUENCE {
/// tbsCertificate SEQUENCE { [0] version OPTIONAL, serialNumber, signature, issuer,
/// validity SEQUENCE { notBefore, notAfter }, ... }, ... } (RFC 5280 §4.1).
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert, _) = tlv(der)?;
    let (_, mut tbs, _) = tlv(cert)?;
    if tbs.first() == Some(&0xa0) {
        tbs = tlv(tbs)?.2;
    }
    for _ in 0..3 {
        tbs = tlv(tbs)?.2; // serialNumber, signature, issuer
    }
    let (_, validity, _) = tlv(tbs)?;
    let (_, _, rest) = tlv(validity)?;
    let (tag, time, _) = tlv(rest)?;
    let s = std::str::from_utf8(time).ok()?;
    // UTCTime YYMMDDHHMMSSZ (years 1950-2049), GeneralizedTime YYYYMMDDHHMMSSZ.
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = s.get(..2)?.parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, s.get(2..)?)
        }
        0x18 => (s.get(..4)?.parse().ok()?, s.get(4..)?),
        _ => return None,
    };
    let num = |r: std::ops::Range<usize>| rest.get(r)?.parse::<i64>().ok();
    let (mo, d, h, mi, se) = (num(0..2)?, num(2..4)?, num(4..6)?, num(6..8)?, num(8..10)?);
    Some(days_from_civil(year, mo, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Wraps `body` in a DER element.
    fn el(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        if body.len() < 0x80 {
            out.push(body.len() as u8);
        } else {
            out.push(0x82);
            // DER lengths are big-endian: high byte first.
            out.push((body.len() >> 8) as u8);
            out.push(body.len() as u8);
        }
        out.extend(body);
        out
    }

    #[test]
    fn not_after_reads_utc_and_generalized_time() {
        let build = |not_after: Vec<u8>, version: bool| {
            let mut tbs = Vec::new();
            if version {
                tbs.extend(el(0xa0, &el(0x02, &[2])));
            }
            tbs.extend(el(0x02, &[1]));
            tbs.extend(el(0x30, &el(0x06, &[1, 2, 3])));
            tbs.extend(el(0x30, &[0u8; 200])); // a long issuer: long-form length
            let mut validity = el(0x17, b"200101000000Z");
            validity.extend(not_after);
            tbs.extend(el(0x30, &validity));
            el(0x30, &el(0x30, &tbs))
        };
        // 2030-01-02 03:04:05 UTC = 1893553445.
        assert_eq!(
            not_after(&build(el(0x17, b"300102030405Z"), true)),
            Some(1_893_553_445)
        );
        assert_eq!(
            not_after(&build(el(0x18, b"20300102030405Z"), false)),
            Some(1_893_553_445)
        );
        assert_eq!(
            not_after(&build(el(0x17, b"990101000000Z"), true)),
            Some(915_148_800)
        );
        assert_eq!(not_after(b"\x30\x05garbage"), None);
    }
}
