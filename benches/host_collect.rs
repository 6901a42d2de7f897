//! Cost of one host collection (`HostCollector::collect`) on this machine: 100 calls after
//! a warm-up, reporting the mean time per call and the families and samples it produced.
//! `cargo bench --bench host_collect`; under `cargo test` it runs 3 calls as a check.

use picket::collect::Batch;
use picket::collect::host::HostCollector;
use std::time::Instant;

fn main() {
    let n: u32 = if std::env::args().any(|a| a == "--bench") {
        100
    } else {
        3
    };
    let mut c = HostCollector::default();
    let mut b = Batch::default();
    c.collect(&mut b); // warm the scratch buffers
    let began = Instant::now();
    let mut samples = 0;
    for _ in 0..n {
        b.clear();
        c.collect(&mut b);
        samples += b.families.iter().map(|f| f.samples.len()).sum::<usize>();
    }
    let per = began.elapsed() / n;
    println!(
        "HostCollector::collect: {per:?} per call ({} families, {} samples per call)",
        b.families.len(),
        samples / n as usize
    );
    assert!(samples > 0, "the host collector produced nothing");
}
