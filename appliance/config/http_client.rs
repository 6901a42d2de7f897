//! The HTTP client options Prometheus shares between `scrape_config`,
//! `kubernetes_sd_config` and `remote_write` (`basic_auth`, `authorization`,
//! `bearer_token(_file)`, `tls_config`), their cross-field checks, and what they load at
//! run time: the `Authorization` header and the TLS roots and client identity.
//!
//! Each of those tables keeps the five keys as its own fields (serde's `flatten` cannot
//! be combined with `deny_unknown_fields`) and hands them here as one
//! [`HttpClientConfig`].

use base64::Engine;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    pub username: String,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

impl BasicAuth {
    /// `Basic base64(user:password)`, the password file read now.
    pub fn header_value(&self) -> Result<String, String> {
        let password = match (&self.password, &self.password_file) {
            (Some(p), _) => p.clone(),
            (None, Some(f)) => read_secret(f, "basic_auth.password_file")?,
            (None, None) => String::new(),
        };
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{password}", self.username));
        Ok(format!("Basic {token}"))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Authorization {
    #[serde(default = "bearer", rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub credentials: Option<String>,
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
}

fn bearer() -> String {
    "Bearer".to_string()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// Accepted so a pasted config loads, but rejected by [`HttpClientConfig::validate`]
    /// unless empty: the HTTP client cannot override SNI.
    #[serde(default)]
    pub server_name: Option<String>,
}

/// The five client keys of one table, gathered.
#[derive(Debug, Clone, Default)]
pub struct HttpClientConfig {
    pub basic_auth: Option<BasicAuth>,
    pub authorization: Option<Authorization>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
    pub tls_config: Option<TlsConfig>,
}

/// The [`HttpClientConfig`] of a table that has the five keys as fields.
macro_rules! http_client_of {
    ($table:expr) => {
        $crate::config::http_client::HttpClientConfig {
            basic_auth: $table.basic_auth.clone(),
            authorization: $table.authorization.clone(),
            bearer_token: $table.bearer_token.clone(),
            bearer_token_file: $table.bearer_token_file.clone(),
            tls_config: $table.tls_config.clone(),
        }
    };
}
pub(crate) use http_client_of;

/// Certificates a client trusts and presents, read from a [`TlsConfig`]'s files.
pub struct TlsMaterial {
    pub roots: Vec<reqwest::Certificate>,
    pub identity: Option<reqwest::Identity>,
    pub insecure_skip_verify: bool,
}

impl HttpClientConfig {
    /// Whether any credentials are configured.
    pub fn has_credentials(&self) -> bool {
        self.credential_kinds() > 0
    }

    fn credential_kinds(&self) -> usize {
        usize::from(self.basic_auth.is_some())
            + usize::from(self.authorization.is_some())
            + usize::from(self.bearer_token.is_some())
            + usize::from(self.bearer_token_file.is_some())
    }

    /// What serde cannot check, as Prometheus' `HTTPClientConfig.Validate`: the key at
    /// fault (relative to the table) and the message.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.credential_kinds() > 1 {
            return Err((
                "authorization",
                "at most one of basic_auth, authorization, bearer_token and bearer_token_file may be set".into(),
            ));
        }
        if let Some(b) = &self.basic_auth
            && b.password.is_some()
            && b.password_file.is_some()
        {
            return Err((
                "basic_auth",
                "at most one of basic_auth password and password_file may be set".into(),
            ));
        }
        if let Some(a) = &self.authorization
            && a.credentials.is_some()
            && a.credentials_file.is_some()
        {
            return Err((
                "authorization",
                "at most one of authorization credentials and credentials_file may be set".into(),
            ));
        }
        if let Some(tls) = &self.tls_config {
            if tls.server_name.as_deref().is_some_and(|s| !s.is_empty()) {
                return Err((
                    "tls_config.server_name",
                    "tls_config.server_name is not supported yet; connect to the name the certificate holds".into(),
                ));
            }
            if tls.cert_file.is_some() != tls.key_file.is_some() {
                return Err((
                    "tls_config",
                    "tls_config needs both cert_file and key_file for a client certificate".into(),
                ));
            }
        }
        Ok(())
    }

    /// The `Authorization` header value, credential files read at each call so that
    /// rotated secrets (service account tokens, for one) are picked up, as Prometheus
    /// does.
    pub fn authorization_header(&self) -> Result<Option<String>, String> {
        if let Some(b) = &self.basic_auth {
            return b.header_value().map(Some);
        }
        if let Some(a) = &self.authorization {
            let creds = match (&a.credentials, &a.credentials_file) {
                (Some(c), _) => c.clone(),
                (None, Some(f)) => read_secret(f, "authorization.credentials_file")?,
                (None, None) => String::new(),
            };
            return Ok(Some(format!("{} {creds}", a.kind)));
        }
        if let Some(t) = &self.bearer_token {
            return Ok(Some(format!("Bearer {t}")));
        }
        if let Some(f) = &self.bearer_token_file {
            return Ok(Some(format!(
                "Bearer {}",
                read_secret(f, "bearer_token_file")?
            )));
        }
        Ok(None)
    }

    /// The certificates `tls_config` names; None without a `tls_config`.
    pub fn tls_material(&self) -> Result<Option<TlsMaterial>, String> {
        let Some(tls) = &self.tls_config else {
            return Ok(None);
        };
        let mut roots = Vec::new();
        if let Some(ca) = &tls.ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| format!("tls_config.ca_file {}: {e}", ca.display()))?;
            roots = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("tls_config.ca_file {}: {e}", ca.display()))?;
            if roots.is_empty() {
                return Err(format!(
                    "tls_config.ca_file {}: no PEM certificate found",
                    ca.display()
                ));
            }
        }
        let identity = match (&tls.cert_file, &tls.key_file) {
            (Some(cert), Some(key)) => {
                let mut pem = std::fs::read(cert)
                    .map_err(|e| format!("tls_config.cert_file {}: {e}", cert.display()))?;
                pem.push(b'\n');
                pem.extend(
                    std::fs::read(key)
                        .map_err(|e| format!("tls_config.key_file {}: {e}", key.display()))?,
                );
                Some(reqwest::Identity::from_pem(&pem).map_err(|e| format!("tls_config: {e}"))?)
            }
            _ => None,
        };
        Ok(Some(TlsMaterial {
            roots,
            identity,
            insecure_skip_verify: tls.insecure_skip_verify,
        }))
    }

    /// A blocking client builder with `tls_config` applied (the scraper's and the
    /// forwarder's clients run on threads of their own).
    pub fn apply_tls(
        &self,
        mut b: reqwest::blocking::ClientBuilder,
    ) -> Result<reqwest::blocking::ClientBuilder, String> {
        if let Some(tls) = self.tls_material()? {
            for c in tls.roots {
                b = b.add_root_certificate(c);
            }
            if let Some(id) = tls.identity {
                b = b.identity(id);
            }
            b = b.danger_accept_invalid_certs(tls.insecure_skip_verify);
        }
        Ok(b)
    }
}

/// A secret from its file, trimmed of the newline editors leave.
fn read_secret(file: &Path, key: &str) -> Result<String, String> {
    std::fs::read_to_string(file)
        .map(|s| s.trim().to_string())
        .map_err(|e| format!("cannot read {key} {}: {e}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_is_rfc7617() {
        let b = BasicAuth {
            username: "Aladdin".into(),
            password: Some("open sesame".into()),
            password_file: None,
        };
        assert_eq!(
            b.header_value().unwrap(),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
    }

    #[test]
    fn authorization_headers_are_built_as_prometheus_sends_them() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "from-file\n").unwrap();
        let cases = [
            ("", None),
            ("bearer_token = \"t\"\n", Some("Bearer t".to_string())),
            (
                "basic_auth = { username = \"u\", password = \"p\" }\n",
                Some("Basic dTpw".to_string()),
            ),
            (
                &*format!(
                    "basic_auth = {{ username = \"u\", password_file = \"{}\" }}\n",
                    pw.display()
                ),
                Some("Basic dTpmcm9tLWZpbGU=".to_string()),
            ),
            (
                &*format!(
                    "authorization = {{ credentials_file = \"{}\" }}\n",
                    pw.display()
                ),
                Some("Bearer from-file".to_string()),
            ),
            (
                "authorization = { type = \"Token\", credentials = \"x\" }\n",
                Some("Token x".to_string()),
            ),
        ];
        for (extra, want) in cases {
            let job: crate::config::scrape::ScrapeConfig =
                toml::from_str(&format!("job_name = \"j\"\n{extra}")).unwrap();
            assert_eq!(
                job.http_client().authorization_header().unwrap(),
                want,
                "{extra}"
            );
        }
        let job: crate::config::scrape::ScrapeConfig =
            toml::from_str("job_name = \"j\"\nbearer_token_file = \"/nonexistent/x\"\n").unwrap();
        assert!(job.http_client().authorization_header().is_err());
    }

    #[test]
    fn credential_files_are_read_at_each_call() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "one\n").unwrap();
        let c = HttpClientConfig {
            bearer_token_file: Some(token.clone()),
            ..Default::default()
        };
        assert_eq!(c.authorization_header().unwrap().unwrap(), "Bearer one");
        std::fs::write(&token, "two").unwrap();
        assert_eq!(c.authorization_header().unwrap().unwrap(), "Bearer two");
        std::fs::remove_file(&token).unwrap();
        let e = c.authorization_header().unwrap_err();
        assert!(e.contains("bearer_token_file"), "{e}");
    }

    #[test]
    fn one_kind_of_credentials() {
        let c = HttpClientConfig {
            bearer_token: Some("x".into()),
            authorization: Some(Authorization {
                kind: "Bearer".into(),
                credentials: Some("y".into()),
                credentials_file: None,
            }),
            ..Default::default()
        };
        assert_eq!(c.validate().unwrap_err().0, "authorization");
        let tls = HttpClientConfig {
            tls_config: Some(TlsConfig {
                cert_file: Some("c.pem".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(tls.validate().unwrap_err().0, "tls_config");
    }

    #[test]
    fn a_ca_file_without_certificates_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let c = HttpClientConfig {
            tls_config: Some(TlsConfig {
                ca_file: Some(ca),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert!(c.tls_material().is_err());
    }
}
