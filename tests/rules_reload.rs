//! SIGHUP reloads the rule files: a changed file's rules replace the running ones, and a
//! broken file is reported while the previous rules keep running.

mod common;

use common::{Picket, QUIET_CONFIG};
use std::time::{Duration, Instant};

fn rule_names(p: &Picket) -> Vec<String> {
    let (_, v) = p.get_json("/api/v1/rules");
    v["data"]["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect()
}

fn hup(p: &Picket) {
    // SAFETY: kill(2) on our own child's PID.
    unsafe {
        libc::kill(p.child.id() as i32, libc::SIGHUP);
    }
}

#[test]
fn sighup_reloads_rule_files_and_keeps_the_old_rules_when_the_new_ones_are_broken() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = tmp.path().join("rules.yml");
    let write = |body: &str| std::fs::write(&rules, body).unwrap();
    write("groups:\n  - name: g\n    rules:\n      - alert: One\n        expr: vector(1)\n");
    let cfg = format!(
        "{QUIET_CONFIG}[rules]\nrule_files = [{:?}]\nevaluation_interval = \"1s\"\n",
        rules.display().to_string()
    );
    let p = Picket::start_in(tmp.path(), &tmp.path().join("data"), &cfg);
    assert_eq!(rule_names(&p), ["One"]);

    write(
        "groups:\n  - name: g\n    rules:\n      - alert: Two\n        expr: vector(2)\n      - record: r:three\n        expr: vector(3)\n",
    );
    hup(&p);
    let deadline = Instant::now() + Duration::from_secs(20);
    while rule_names(&p) != ["Two", "r:three"] {
        assert!(
            Instant::now() < deadline,
            "rules not reloaded: {:?}",
            rule_names(&p)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The reloaded alert evaluates.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, v) = p.get_json("/api/v1/alerts");
        if v["data"]["alerts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|a| a["labels"]["alertname"] == "Two"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "Two never became active: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }

    write("groups:\n  - name: g\n    rules:\n      - alert: Broken\n        expr: vector(\n");
    hup(&p);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match p.log.recv_timeout(Duration::from_millis(200)) {
            Ok(line) if line.contains("rule files not reloaded") => break,
            _ => assert!(
                Instant::now() < deadline,
                "no log line about the broken file"
            ),
        }
    }
    assert_eq!(rule_names(&p), ["Two", "r:three"]);
    p.stop();
}
