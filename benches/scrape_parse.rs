//! Cost of reading a node_exporter-sized body (the host collector's own output rendered
//! in the text format, about as many samples as node_exporter exposes on this machine):
//! the parser alone, and the whole per-scrape work of `ScrapeLoop` (series cache, label
//! merging, staleness bookkeeping, report series) on a steady target.
//! Allocations are counted too: the parser must not allocate per sample, and the scrape
//! loop's steady state is reported per sample (the label set handed to the store is
//! cloned once, and the store's write batch takes one `Vec` per series).
//! `cargo bench --bench scrape_parse`; under `cargo test` it runs 3 rounds as a check.

mod common;

use common::alloc::{Counting, allocations};
use picket::collect::Batch;
use picket::collect::exposition;
use picket::collect::host::HostCollector;
use picket::collect::scrape::parser::{Entry, Format, Parser};
use picket::collect::scrape::target::{LoopSettings, ScrapeLoop};
use picket::model::Labels;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let rounds: u32 = if std::env::args().any(|a| a == "--bench") {
        200
    } else {
        3
    };
    let mut batch = Batch::default();
    HostCollector::default().collect(&mut batch);
    let mut body = String::new();
    exposition::render(&batch, &mut body);

    let allocs_before = allocations();
    let began = Instant::now();
    let mut samples = 0usize;
    for _ in 0..rounds {
        let mut p = Parser::new(&body, Format::Text);
        while let Some(e) = p.next_entry().expect("the renderer's output parses") {
            if let Entry::Sample { value, .. } = e {
                samples += 1;
                std::hint::black_box((value, p.labels().len()));
            }
        }
    }
    let per_body = began.elapsed() / rounds;
    let parser_allocs = (allocations() - allocs_before) as f64 / samples as f64;
    let per_round = samples / rounds as usize;
    println!(
        "parser: {per_body:?} per body of {} bytes, {per_round} samples: {:.1} M samples/s, \
         {parser_allocs:.3} allocations per sample",
        body.len(),
        per_round as f64 / per_body.as_secs_f64() / 1e6
    );
    // Only the label vector's growth and escaped values may allocate.
    assert!(
        parser_allocs < 0.05,
        "the parser allocates per sample: {parser_allocs}"
    );
    assert!(
        per_round > 100,
        "the host collector body is too small: {per_round}"
    );

    let settings = Arc::new(LoopSettings {
        honor_labels: false,
        honor_timestamps: true,
        track_timestamps_staleness: false,
        metric_relabel: Vec::new(),
        sample_limit: 0,
        label_limit: 0,
        label_name_length_limit: 0,
        label_value_length_limit: 0,
    });
    let target = Labels::from_pairs([("job", "node"), ("instance", "127.0.0.1:9100")]);
    let mut lp = ScrapeLoop::new(settings, target);
    lp.scraped(&body, Format::Text, 0, Duration::ZERO, usize::MAX); // fills the cache
    let allocs_before = allocations();
    let began = Instant::now();
    for i in 0..rounds {
        let out = lp.scraped(
            &body,
            Format::Text,
            i64::from(i) * 15_000,
            Duration::ZERO,
            usize::MAX,
        );
        assert!(out.error.is_none(), "{:?}", out.error);
        std::hint::black_box(out.samples.len());
    }
    let per_scrape = began.elapsed() / rounds;
    let loop_allocs = (allocations() - allocs_before) as f64 / (per_round * rounds as usize) as f64;
    println!(
        "scrape loop (parse + cache + staleness + report): {per_scrape:?} per scrape: \
         {:.1} M samples/s, {loop_allocs:.3} allocations per sample",
        per_round as f64 / per_scrape.as_secs_f64() / 1e6
    );
    // One label-set clone per sample for the output; nothing else per sample.
    assert!(
        loop_allocs < 1.1,
        "the scrape loop allocates too much per sample: {loop_allocs}"
    );
}
