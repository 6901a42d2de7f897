//! `picket query` end to end: the real binary asks a real Picket over HTTP and prints what
//! `promtool query instant` / `promtool query range` would.

mod common;

use common::{Picket, QUIET_CONFIG, series, write_request};
use std::process::{Command, Output};

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;

fn picket_query(server: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_picket"))
        .arg("query")
        .args(args)
        .arg("--server")
        .arg(server)
        .output()
        .expect("run picket query")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn query_prints_instant_range_scalar_and_errors_like_promtool() {
    let p = Picket::start(QUIET_CONFIG);
    let req = write_request(vec![
        series(
            &[("__name__", "cli_test"), ("job", "a"), ("path", "/x \"y\"")],
            &[(T0, 1.0), (T0 + 15_000, 2.5), (T0 + 30_000, 4.0)],
        ),
        series(
            &[("__name__", "cli_test"), ("job", "b")],
            &[(T0, 10.0), (T0 + 30_000, f64::INFINITY)],
        ),
    ]);
    let (code, body) = p.remote_write(&req, None);
    assert_eq!(code, 204, "{body}");
    let server = p.url("");

    let o = picket_query(&server, &["cli_test", "--time", "1767225630.5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "cli_test{job=\"a\", path=\"/x \\\"y\\\"\"} => 4 @[1767225630.5]\n\
         cli_test{job=\"b\"} => +Inf @[1767225630.5]\n"
    );

    let o = picket_query(
        &server,
        &[
            "sum by (job) (cli_test)",
            "--start",
            "1767225600",
            "--end",
            "2026-01-01T00:00:30Z",
            "--step",
            "15s",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "{job=\"a\"} =>\n1 @[1767225600]\n2.5 @[1767225615]\n4 @[1767225630]\n\
         {job=\"b\"} =>\n10 @[1767225600]\n10 @[1767225615]\n+Inf @[1767225630]\n"
    );

    let o = picket_query(&server, &["1 + 1", "--time", "4"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "scalar: 2 @[4]\n");

    // An empty result prints nothing and succeeds, as promtool does.
    let o = picket_query(&server, &["nothing_here", "--time", "1767225630"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "");

    let o = picket_query(&server, &["sum(", "--time", "4"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).starts_with("Error: bad_data: "),
        "{}",
        stderr(&o)
    );

    // A range query needs --end and --step with --start.
    let o = picket_query(&server, &["up", "--start", "1"]);
    assert!(!o.status.success());
}

#[test]
fn query_against_nothing_listening_fails_with_exit_code_one() {
    // Bind and drop a loopback port so that nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let o = picket_query(&format!("http://127.0.0.1:{port}"), &["up"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("Error: cannot reach"),
        "{}",
        stderr(&o)
    );
}
