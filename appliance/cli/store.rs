//! `picket store check|stats|snapshot`: look after a data directory from the command line.

use crate::store::check::{self, Report};
use crate::store::snapshot;
use clap::Subcommand;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Open every store file read-only and decode every chunk and block; exit 1 and name
    /// the file and key of each problem. Picket must not be running on the directory.
    Check {
        /// Data directory (default: storage.path of the embedded config).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Print what the store holds: files, sizes, time spans, samples and bytes per sample.
    /// Picket must not be running on the directory (the running one serves the same
    /// figures at /api/v1/status/tsdb).
    Stats {
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Write a consistent copy of the store into the new directory DEST. With --server,
    /// the running Picket takes it (POST /api/v1/admin/snapshot, into its data dir) and it
    /// is then moved to DEST; without, the data dir is read directly (Picket stopped).
    Snapshot {
        #[arg(value_name = "DEST")]
        dest: PathBuf,
        /// URL of the running Picket, e.g. http://127.0.0.1:9464 (plain HTTP).
        #[arg(long, value_name = "URL")]
        server: Option<String>,
        /// Bearer token file, when the server requires one for writes.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
}

fn data_dir(d: Option<PathBuf>) -> PathBuf {
    d.unwrap_or_else(|| crate::config::Config::default_config().storage.path)
}

pub fn run(cmd: StoreCommand) -> ExitCode {
    match cmd {
        StoreCommand::Check { data_dir: d } => match check::check_dir(&data_dir(d)) {
            Ok(r) => {
                print_report(&r);
                if r.problems.is_empty() {
                    println!("OK: no problems found");
                    ExitCode::SUCCESS
                } else {
                    for p in &r.problems {
                        eprintln!("problem: {p}");
                    }
                    eprintln!("{} problem(s) found", r.problems.len());
                    ExitCode::FAILURE
                }
            }
            Err(e) => fail(e),
        },
        StoreCommand::Stats { data_dir: d } => match check::check_dir(&data_dir(d)) {
            Ok(r) => {
                print_report(&r);
                for p in &r.problems {
                    eprintln!("problem: {p} (run `picket store check`)");
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
        StoreCommand::Snapshot {
            dest,
            server,
            token_file,
            data_dir: d,
        } => {
            let r = match server {
                Some(url) => remote_snapshot(&url, token_file.as_deref(), &dest),
                None => local_snapshot(&data_dir(d), &dest),
            };
            match r {
                Ok(msg) => {
                    println!("{msg}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("picket: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn fail(e: crate::store::StoreError) -> ExitCode {
    match e {
        crate::store::StoreError::AlreadyOpen { path } => eprintln!(
            "picket: {} is open in a running Picket; stop it first, or use its \
             /api/v1/status/tsdb (stats) or `picket store snapshot --server` (copy)",
            path.display()
        ),
        e => eprintln!("picket: {e}"),
    }
    ExitCode::FAILURE
}

fn time(t: Option<i64>) -> String {
    t.map_or_else(|| "-".into(), crate::api::params::format_rfc3339_ms)
}

/// A tier's files summed.
struct Totals {
    bytes: u64,
    samples: u64,
    buckets: u64,
    min_t: Option<i64>,
    max_t: Option<i64>,
}

impl Totals {
    fn of(files: &[check::FileReport]) -> Totals {
        Totals {
            bytes: files.iter().map(|f| f.bytes).sum(),
            samples: files.iter().map(|f| f.samples).sum(),
            buckets: files.iter().map(|f| f.buckets).sum(),
            min_t: files.iter().filter_map(|f| f.min_t).min(),
            max_t: files.iter().filter_map(|f| f.max_t).max(),
        }
    }
}

fn print_report(r: &Report) {
    if let Some(i) = &r.index {
        println!(
            "{}: {} bytes, {} series, {} metadata",
            i.path.display(),
            i.bytes,
            i.series,
            i.metadata
        );
    }
    for p in &r.partitions {
        println!(
            "{}: {} bytes, {} chunks, {} blocks, {} samples, {} .. {}",
            p.path.display(),
            p.bytes,
            p.chunks,
            p.blocks,
            p.samples,
            time(p.min_t),
            time(p.max_t)
        );
    }
    let raw = Totals::of(&r.partitions);
    let per = if raw.samples > 0 {
        format!("{:.2}", raw.bytes as f64 / raw.samples as f64)
    } else {
        "-".into()
    };
    println!(
        "raw tier: {} partitions, {} bytes, {} samples, {per} bytes/sample, {} .. {}",
        r.partitions.len(),
        raw.bytes,
        raw.samples,
        time(raw.min_t),
        time(raw.max_t)
    );
    for (name, files) in &r.rollups {
        for f in files {
            println!(
                "{}: {} bytes, {} groups, {} buckets of {} samples, {} .. {}",
                f.path.display(),
                f.bytes,
                f.chunks,
                f.buckets,
                f.samples,
                time(f.min_t),
                time(f.max_t)
            );
        }
        let t = Totals::of(files);
        println!(
            "{name} tier: {} files, {} bytes, {} buckets of {} raw samples, {} .. {}",
            files.len(),
            t.bytes,
            t.buckets,
            t.samples,
            time(t.min_t),
            time(t.max_t)
        );
    }
    if let Some(b) = r.auto_budget_bytes {
        println!("automatic budget remembered in the index: {b} bytes");
    }
}

fn local_snapshot(dir: &Path, dest: &Path) -> Result<String, String> {
    let s = snapshot::take(dir, dest, || snapshot::open_dir(dir)).map_err(|e| match e {
        crate::store::StoreError::AlreadyOpen { path } => format!(
            "{} is open in a running Picket; use --server URL to have it take the snapshot",
            path.display()
        ),
        e => e.to_string(),
    })?;
    Ok(format!(
        "snapshot of {} written to {}: {} files, {} entries, {} bytes",
        dir.display(),
        dest.display(),
        s.files,
        s.entries,
        s.bytes
    ))
}

/// Asks the server for a snapshot (a minimal HTTP/1.1 POST: the binary has no HTTP client,
/// and the server is local), then moves it from the server's data dir to `dest`.
fn remote_snapshot(url: &str, token_file: Option<&Path>, dest: &Path) -> Result<String, String> {
    if dest.exists() {
        return Err(format!(
            "{} already exists; a snapshot goes into a new directory",
            dest.display()
        ));
    }
    let hostport = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--server {url:?}: only http:// URLs are supported"))?
        .trim_end_matches('/');
    let token = match token_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read {}: {e}", f.display()))?
                .trim()
                .to_string(),
        ),
        None => None,
    };
    let mut stream = std::net::TcpStream::connect(hostport)
        .map_err(|e| format!("cannot connect to {hostport}: {e}"))?;
    let _ = stream.set_read_timeout(Some(std::time::Duration::from_secs(600)));
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let req = format!(
        "POST /api/v1/admin/snapshot HTTP/1.1\r\nHost: {hostport}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("cannot send to {hostport}: {e}"))?;
    let mut resp = Vec::new();
    stream
        .take(1 << 20)
        .read_to_end(&mut resp)
        .map_err(|e| format!("no answer from {hostport}: {e}"))?;
    let resp = String::from_utf8_lossy(&resp);
    let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        return Err(format!(
            "the server refused the snapshot ({status}): {}",
            body.trim()
        ));
    }
    let v: serde_json::Value = serde_json::from_str(body.trim())
        .map_err(|e| format!("unexpected answer ({e}): {body}"))?;
    let src = v["data"]["path"]
        .as_str()
        .ok_or_else(|| format!("unexpected answer: {body}"))?;
    let src = PathBuf::from(src);
    if std::fs::rename(&src, dest).is_err() {
        // Another filesystem: copy, then remove the server-side copy.
        copy_dir(&src, dest).map_err(|e| {
            format!(
                "snapshot taken at {}, but moving it to {} failed: {e}",
                src.display(),
                dest.display()
            )
        })?;
        let _ = std::fs::remove_dir_all(&src);
    }
    Ok(format!("snapshot written to {}", dest.display()))
}

fn copy_dir(src: &Path, dest: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dest)?;
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let to = dest.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_dir(&e.path(), &to)?;
        } else {
            std::fs::copy(e.path(), &to)?;
            std::fs::File::open(&to)?.sync_all()?;
        }
    }
    Ok(())
}
