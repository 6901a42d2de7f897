//! Test harness: starts the real `picket` binary on a loopback port in a temp dir, talks
//! to it over HTTP, and kills it by PID when dropped. Its submodules hold what the tests
//! share besides: child-process guards, ports and bounded waits ([`process`], re-exported
//! here), the absolute paths of Debian's components ([`bins`]), the real notification
//! receivers ([`notify`]), and throwaway certificates made with openssl ([`tls`]).

#![allow(dead_code)] // Each test binary uses a different part of the harness.

pub mod bins;
pub mod notify;
pub mod process;
pub mod tls;

#[allow(unused_imports)] // Each test binary uses a different part.
pub use process::{ChildGuard, free_port, now_ms, wait_for, wait_for_every, wait_listening};

use picket::model::prompb::{Label, Sample, TimeSeries, WriteRequest};
use prost::Message;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A config with every collector off: the store holds only what a test writes.
pub const QUIET_CONFIG: &str = "[collect.host]\nenabled = false\n[collect.self]\nenabled = false\n";

pub struct Picket {
    pub child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub log: mpsc::Receiver<String>,
}

impl Picket {
    /// Starts Picket with `config` (TOML) in a fresh temp dir.
    pub fn start(config: &str) -> Picket {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data = tmp.path().join("data");
        let mut p = Picket::start_in(tmp.path(), &data, config);
        p._tmp = Some(tmp);
        p
    }

    /// Starts Picket on an existing data dir (for restarts); `dir` holds the config file.
    pub fn start_in(dir: &Path, data_dir: &Path, config: &str) -> Picket {
        let config_path = dir.join("picket.toml");
        std::fs::write(&config_path, config).expect("write config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_picket"))
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env("PICKET_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start picket");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut addr = None;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while addr.is_none() && std::time::Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if line.contains("Serving the API") {
                        addr = line
                            .split_whitespace()
                            .find_map(|w| w.strip_prefix("addr="))
                            .map(str::to_string);
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        panic!("picket exited early with {status}");
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        let addr = addr.unwrap_or_else(|| {
            let _ = child.kill();
            panic!("picket did not start serving within 30 s")
        });
        Picket {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
            config_path,
            _tmp: None,
            log: rx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        let r = client().get(self.url(path)).send().expect("GET");
        (r.status().as_u16(), r.text().unwrap_or_default())
    }

    pub fn get_json(&self, path: &str) -> (u16, serde_json::Value) {
        let (code, body) = self.get(path);
        let v = serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
        (code, v)
    }

    pub fn post_form(&self, path: &str, form: &[(&str, &str)]) -> (u16, serde_json::Value) {
        let r = client()
            .post(self.url(path))
            .form(form)
            .send()
            .expect("POST");
        let code = r.status().as_u16();
        let body = r.text().unwrap_or_default();
        (
            code,
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}")),
        )
    }

    /// Sends a remote_write request; returns status and body.
    pub fn remote_write(&self, req: &WriteRequest, token: Option<&str>) -> (u16, String) {
        let body = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .expect("snappy");
        self.post_raw("/api/v1/write", body, token)
    }

    pub fn post_raw(&self, path: &str, body: Vec<u8>, token: Option<&str>) -> (u16, String) {
        let mut r = client()
            .post(self.url(path))
            .header("Content-Type", "application/x-protobuf")
            .header("Content-Encoding", "snappy")
            .header("X-Prometheus-Remote-Write-Version", "0.1.0")
            .body(body);
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().expect("POST");
        (r.status().as_u16(), r.text().unwrap_or_default())
    }

    /// Instant query; returns the JSON `data.result`.
    pub fn query(&self, q: &str, time: &str) -> serde_json::Value {
        let (code, v) = self.post_form("/api/v1/query", &[("query", q), ("time", time)]);
        assert_eq!(code, 200, "query {q}: {v}");
        assert_eq!(v["status"], "success", "{v}");
        v["data"]["result"].clone()
    }

    /// Sends SIGTERM and waits for a clean exit.
    pub fn stop(mut self) {
        // SAFETY: kill(2) on our own child's PID.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "picket exited with {status}");
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "picket did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Picket {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// A series for remote_write from `name{k="v",...}` pairs and (ms, value) samples.
pub fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
    let mut labels: Vec<Label> = labels
        .iter()
        .map(|(n, v)| Label {
            name: n.to_string(),
            value: v.to_string(),
        })
        .collect();
    labels.sort_by(|a, b| a.name.cmp(&b.name));
    TimeSeries {
        labels,
        samples: samples
            .iter()
            .map(|(t, v)| Sample {
                timestamp: *t,
                value: *v,
            })
            .collect(),
        histograms: vec![],
    }
}

pub fn write_request(series: Vec<TimeSeries>) -> WriteRequest {
    WriteRequest {
        timeseries: series,
        metadata: vec![],
    }
}

/// Runs the `picket` binary with `args`; returns whether it succeeded, its stdout and its
/// stderr.
pub fn picket_cli(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_picket"))
        .args(args)
        .output()
        .expect("run picket");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
