//! `[[probe]]` tables: blackbox-style health probes. One table is a blackbox_exporter
//! module and its Prometheus targets together: the prober (`http`, `tcp` or `dns`) with
//! its options in a sub-table of the same name (blackbox_exporter's module field names),
//! the targets, and how often. The job label of the results is `name`, the instance
//! label the target.

use super::ConfigDuration;
use super::scrape::{BasicAuth, TlsConfig};
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// Default probe interval (Picket's scrape default).
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(15);
/// Default probe timeout, capped at the interval.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeConfig {
    /// The `job` label of the probe's series.
    pub name: String,
    pub prober: Prober,
    /// URLs for `http` (`http://` is assumed when no scheme is given), `host:port` for
    /// `tcp`, the DNS server (`host` or `host:port`, port 53 by default) for `dns`.
    pub targets: Vec<String>,
    #[serde(default)]
    pub interval: Option<ConfigDuration>,
    #[serde(default)]
    pub timeout: Option<ConfigDuration>,
    /// Extra labels on every series of this probe.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Address family tried first for host names (blackbox_exporter: ip6).
    #[serde(default)]
    pub preferred_ip_protocol: IpProtocol,
    /// Try the other family when the preferred one has no address (default true).
    #[serde(default = "yes")]
    pub ip_protocol_fallback: bool,
    #[serde(default)]
    pub http: HttpProbe,
    #[serde(default)]
    pub tcp: TcpProbe,
    #[serde(default)]
    pub dns: Option<DnsProbe>,
}

impl ProbeConfig {
    pub fn interval(&self) -> Duration {
        self.interval.map_or(DEFAULT_PROBE_INTERVAL, |d| d.0)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
            .map_or(DEFAULT_PROBE_TIMEOUT.min(self.interval()), |d| d.0)
    }
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Prober {
    Http,
    Tcp,
    Dns,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
pub enum IpProtocol {
    #[serde(rename = "ip4")]
    Ip4,
    #[default]
    #[serde(rename = "ip6")]
    Ip6,
}

/// blackbox_exporter's `http` module options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    /// Accepted status codes; empty: any 2xx.
    #[serde(default)]
    pub valid_status_codes: Vec<u16>,
    /// Accepted versions (`"HTTP/1.1"`, `"HTTP/1.0"`); empty: any.
    #[serde(default)]
    pub valid_http_versions: Vec<String>,
    #[serde(default = "get")]
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub fail_if_ssl: bool,
    #[serde(default)]
    pub fail_if_not_ssl: bool,
    #[serde(default)]
    pub fail_if_body_matches_regexp: Vec<ProbeRegex>,
    #[serde(default)]
    pub fail_if_body_not_matches_regexp: Vec<ProbeRegex>,
    #[serde(default)]
    pub no_follow_redirects: bool,
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    #[serde(default)]
    pub basic_auth: Option<BasicAuth>,
    #[serde(default)]
    pub bearer_token: Option<String>,
    /// Most body bytes read; a longer body fails the probe. 0 = no limit.
    #[serde(default)]
    pub body_size_limit: super::scrape::ByteSize,
}

impl Default for HttpProbe {
    fn default() -> Self {
        toml::from_str("").expect("BUG: the http probe defaults deserialize")
    }
}

fn get() -> String {
    "GET".into()
}

/// blackbox_exporter's `tcp` module options (connect, optionally TLS, then an optional
/// dialogue).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpProbe {
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub tls_config: Option<TlsConfig>,
    #[serde(default)]
    pub query_response: Vec<QueryResponse>,
}

/// One step of a TCP dialogue: wait for a line matching `expect`, then write `send`
/// (plus a newline; `${1}` and `$name` take the groups of the `expect` match).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryResponse {
    #[serde(default)]
    pub expect: Option<ProbeRegex>,
    #[serde(default)]
    pub send: Option<String>,
}

/// blackbox_exporter's `dns` module options (over UDP).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsProbe {
    pub query_name: String,
    /// A record type name (`A`, `AAAA`, `MX`, `TXT`, `SOA`, ...); default `ANY` as in
    /// blackbox_exporter.
    #[serde(default = "any")]
    pub query_type: String,
    /// Accepted response codes; default `["NOERROR"]`.
    #[serde(default = "noerror")]
    pub valid_rcodes: Vec<String>,
    #[serde(default = "yes")]
    pub recursion_desired: bool,
    /// Only `udp` (the default) is supported.
    #[serde(default = "udp")]
    pub transport_protocol: String,
}

fn any() -> String {
    "ANY".into()
}

fn noerror() -> Vec<String> {
    vec!["NOERROR".into()]
}

fn udp() -> String {
    "udp".into()
}

/// An unanchored regex (blackbox_exporter matches body regexes anywhere in the body).
#[derive(Debug, Clone)]
pub struct ProbeRegex(pub regex::bytes::Regex);

impl<'de> Deserialize<'de> for ProbeRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        regex::bytes::Regex::new(&s)
            .map(ProbeRegex)
            .map_err(|e| serde::de::Error::custom(format!("invalid regex {s:?}: {e}")))
    }
}

/// The DNS response code names blackbox_exporter accepts in `valid_rcodes`.
pub const RCODES: [&str; 11] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE",
];

/// Cross-field checks: unique names, targets present, timeout ≤ interval, the options
/// the prober needs. Returns (probe index, key, message).
pub fn validate(probes: &[ProbeConfig]) -> Result<(), (usize, &'static str, String)> {
    let mut names = HashSet::new();
    for (i, p) in probes.iter().enumerate() {
        let fail = |key: &'static str, m: String| Err((i, key, m));
        if p.name.is_empty() {
            return fail("name", "name must not be empty".into());
        }
        if !names.insert(p.name.as_str()) {
            return fail("name", format!("found multiple probes named {:?}", p.name));
        }
        if p.targets.is_empty() {
            return fail("targets", "a probe needs at least one target".into());
        }
        if p.timeout() > p.interval() {
            return fail("timeout", "timeout greater than interval".into());
        }
        match p.prober {
            Prober::Dns => {
                let Some(dns) = &p.dns else {
                    return fail(
                        "dns",
                        "prober \"dns\" needs a [probe.dns] table with query_name".into(),
                    );
                };
                if dns.transport_protocol != "udp" {
                    return fail("dns.transport_protocol", "only \"udp\" is supported".into());
                }
                if dns
                    .query_type
                    .parse::<hickory_proto::rr::RecordType>()
                    .is_err()
                {
                    return fail(
                        "dns.query_type",
                        format!("unknown record type {:?}", dns.query_type),
                    );
                }
                if let Some(r) = dns
                    .valid_rcodes
                    .iter()
                    .find(|r| !RCODES.contains(&r.as_str()))
                {
                    return fail("dns.valid_rcodes", format!("unknown response code {r:?}"));
                }
            }
            Prober::Http => {
                if p.http.method.is_empty()
                    || !p.http.method.bytes().all(|b| b.is_ascii_uppercase())
                {
                    return fail("http.method", format!("invalid method {:?}", p.http.method));
                }
            }
            Prober::Tcp => {
                if let Some(t) = p.targets.iter().find(|t| {
                    t.rsplit_once(':')
                        .is_none_or(|(_, port)| port.parse::<u16>().is_err())
                }) {
                    return fail("targets", format!("tcp target {t:?} must be host:port"));
                }
            }
        }
        for tls in [&p.http.tls_config, &p.tcp.tls_config]
            .into_iter()
            .flatten()
        {
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                return fail(
                    "tls_config",
                    "tls_config needs both cert_file and key_file for a client certificate".into(),
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(text: &str) -> ProbeConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_follow_blackbox_exporter() {
        let p = probe("name = \"web\"\nprober = \"http\"\ntargets = [\"example.org\"]\n");
        assert_eq!(p.interval(), Duration::from_secs(15));
        assert_eq!(p.timeout(), Duration::from_secs(10));
        assert_eq!(p.http.method, "GET");
        assert!(p.http.valid_status_codes.is_empty());
        assert_eq!(p.preferred_ip_protocol, IpProtocol::Ip6);
        assert!(p.ip_protocol_fallback);
        let d = probe(
            "name = \"d\"\nprober = \"dns\"\ntargets = [\"127.0.0.1\"]\ndns = { query_name = \"x\" }\n",
        );
        let dns = d.dns.unwrap();
        assert_eq!(
            (dns.query_type.as_str(), dns.valid_rcodes[0].as_str()),
            ("ANY", "NOERROR")
        );
    }

    #[test]
    fn bad_probes_name_the_key() {
        let cases = [
            ("name = \"a\"\nprober = \"dns\"\ntargets = [\"x\"]\n", "dns"),
            (
                "name = \"a\"\nprober = \"tcp\"\ntargets = [\"x\"]\n",
                "targets",
            ),
            ("name = \"a\"\nprober = \"http\"\ntargets = []\n", "targets"),
            (
                "name = \"a\"\nprober = \"http\"\ntargets = [\"x\"]\ninterval = \"5s\"\ntimeout = \"6s\"\n",
                "timeout",
            ),
            (
                "name = \"a\"\nprober = \"dns\"\ntargets = [\"x\"]\ndns = { query_name = \"x\", query_type = \"BOGUS\" }\n",
                "dns.query_type",
            ),
            (
                "name = \"a\"\nprober = \"dns\"\ntargets = [\"x\"]\ndns = { query_name = \"x\", valid_rcodes = [\"OK\"] }\n",
                "dns.valid_rcodes",
            ),
        ];
        for (text, key) in cases {
            let err = validate(&[probe(text)]).expect_err(text);
            assert_eq!(err.1, key, "{text}: {}", err.2);
        }
        let p = probe("name = \"a\"\nprober = \"http\"\ntargets = [\"x\"]\n");
        assert_eq!(validate(&[p.clone(), p]).unwrap_err().0, 1);
        assert!(
            toml::from_str::<ProbeConfig>("name = \"a\"\nprober = \"icmp\"\ntargets = [\"x\"]\n")
                .is_err()
        );
        assert!(toml::from_str::<ProbeConfig>("name = \"a\"\nprober = \"http\"\ntargets = [\"x\"]\nhttp = { fail_if_body_matches_regexp = [\"(\"] }\n").is_err());
    }
}
