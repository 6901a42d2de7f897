//! Throwaway certificates for the TLS tests, made with Debian's `openssl` in a test's temp
//! dir, and the command runner that makes them.

use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `cmd` with `args` in `dir`; panics with its stderr on failure.
pub fn run(dir: &Path, cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs openssl (Debian package `openssl`, installed by .ci/test) with `args` in `dir`.
pub fn openssl(dir: &Path, args: &[&str]) {
    run(dir, "openssl", args);
}

/// Writes a throwaway CA (`ca.pem`, `ca.key`, CN `picket-test-ca`) and a server leaf
/// certificate for `localhost` and IP 127.0.0.1 signed by it (`leaf.pem`, `leaf.key`) into
/// `dir`: EC P-256 keys, valid for a day.
pub fn ca_and_leaf(dir: &Path) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=picket-test-ca",
    ]);
    openssl(dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    openssl(dir, &csr);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "leaf.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "leaf.pem",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
        ],
    );
}
