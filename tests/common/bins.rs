//! Where Debian installs the real components the tests and benches start, by absolute
//! path: /usr/sbin is not on a non-root user's PATH, and a bare name would find whatever
//! else is first on it.

/// `apt-get install prometheus` (2.42).
pub const PROMETHEUS: &str = "/usr/bin/prometheus";
/// `apt-get install prometheus-alertmanager`.
pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";
/// `apt-get install prometheus-node-exporter`.
pub const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
/// `apt-get install prometheus-blackbox-exporter`.
pub const BLACKBOX: &str = "/usr/bin/prometheus-blackbox-exporter";
/// `apt-get install victoria-metrics`.
pub const VICTORIA: &str = "/usr/bin/victoria-metrics";
/// `apt-get install victoria-metrics` (the package ships vmagent too).
pub const VMAGENT: &str = "/usr/bin/vmagent";
/// `apt-get install mosquitto`.
pub const MOSQUITTO: &str = "/usr/sbin/mosquitto";
/// `apt-get install dnsmasq-base` (or `dnsmasq`).
pub const DNSMASQ: &str = "/usr/sbin/dnsmasq";
