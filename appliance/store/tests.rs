//! Store behaviour tests on temporary directories.

use super::*;
use crate::model::{MatchOp, Matcher, MetricType, stale_nan};
use crate::query::SeriesReader;
use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata};
use std::collections::BTreeMap;

fn opts(dir: &Path) -> StoreOptions {
    StoreOptions {
        path: dir.to_owned(),
        // Long enough that only explicit flushes happen: tests stay deterministic.
        flush_interval: Duration::from_secs(3600),
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    Labels::from_pairs(pairs.iter().copied())
}

fn s(t: i64, v: f64) -> Sample {
    Sample { t, v }
}

fn batch(l: &Labels, samples: &[(i64, f64)]) -> WriteBatch {
    WriteBatch {
        series: vec![(l.clone(), samples.iter().map(|&(t, v)| s(t, v)).collect())],
        metadata: Vec::new(),
    }
}

/// The start of a day whose windows have not ended: chunks with samples there stay open
/// as live data's do (a window that ended minutes ago is sealed at the next flush, see
/// writer.rs), so tests of pieces and open chunks use times relative to it.
const OPEN: i64 = 4_102_444_800_000; // 2100-01-01

/// [`batch`] at times relative to [`OPEN`].
fn batch_open(l: &Labels, samples: &[(i64, f64)]) -> WriteBatch {
    let shifted: Vec<(i64, f64)> = samples.iter().map(|&(t, v)| (OPEN + t, v)).collect();
    batch(l, &shifted)
}

/// [`all`] with times relative to [`OPEN`].
fn all_open(store: &Store, ms: &[Matcher]) -> Vec<(i64, f64)> {
    all(store, ms)
        .into_iter()
        .map(|(t, v)| (t - OPEN, v))
        .collect()
}

fn m(op: MatchOp, name: &str, value: &str) -> Matcher {
    Matcher::new(op, name, value).expect("valid matcher")
}

fn name_is(n: &str) -> Matcher {
    Matcher::equal("__name__", n)
}

fn all(store: &Store, ms: &[Matcher]) -> Vec<(i64, f64)> {
    let r = store.select(ms, i64::MIN, i64::MAX).expect("select");
    assert!(r.len() <= 1, "expected one series, got {r:?}");
    r.first()
        .map(|d| d.samples.iter().map(|x| (x.t, x.v)).collect())
        .unwrap_or_default()
}

fn partition_tables(dir: &Path) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let logs = wal::list(dir).expect("logs");
    for (pidx, f) in partition::list(dir).expect("partitions") {
        let records: u64 = logs
            .get(&pidx)
            .into_iter()
            .flatten()
            .map(|(_, p)| wal::read_segment(p).expect("log reads").records.len() as u64)
            .sum();
        let db = Database::open(&f).expect("partition opens");
        let txn = db.begin_read().expect("read");
        let chunks = txn
            .open_table(partition::CHUNKS)
            .expect("chunks")
            .len()
            .expect("len");
        let pieces = txn
            .open_table(partition::BLOCKS)
            .expect("pieces")
            .len()
            .expect("len");
        // Blocks: in the table (files from before the log) and in the log.
        out.push((chunks, pieces + records));
    }
    out
}

#[test]
fn append_then_select_sees_samples_before_any_flush() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(opts(dir.path())).expect("open");
    let up = labels(&[("__name__", "up"), ("job", "node")]);
    store
        .append(batch(&up, &[(1000, 1.0), (2000, 0.0), (3000, stale_nan())]))
        .expect("append");
    let r = store.select(&[name_is("up")], 0, 10_000).expect("select");
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].labels, up);
    assert_eq!(r[0].samples.len(), 3);
    assert!(crate::model::is_stale_nan(r[0].samples[2].v));
    // Range ends are inclusive; outside the range there is nothing.
    assert_eq!(
        store.select(&[name_is("up")], 2000, 2000).expect("select")[0].samples,
        vec![s(2000, 0.0)]
    );
    assert!(
        store
            .select(&[name_is("up")], 4000, 9000)
            .expect("select")
            .is_empty()
    );
    store.close().expect("close");
}

#[test]
fn matchers_of_all_four_kinds_select_through_postings_and_pending_series() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(opts(dir.path())).expect("open");
    let mk =
        |job: &str, inst: &str| labels(&[("__name__", "cpu"), ("job", job), ("instance", inst)]);
    let a = mk("node", "a:9100");
    let b = mk("node", "b:9100");
    let c = mk("kubelet", "a:10250");
    let d = labels(&[("__name__", "cpu"), ("instance", "c:1")]); // no job label
    for l in [&a, &b, &c] {
        store.append(batch(l, &[(1, 1.0)])).expect("append");
    }
    // `d` stays unflushed: the pending path must agree with postings.
    store.flush().expect("flush");
    store.append(batch(&d, &[(1, 1.0)])).expect("append");

    let pick = |ms: &[Matcher]| -> Vec<Labels> { store.series(ms, 0, 10).expect("series") };
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(
        pick(&[name_is("cpu"), m(MatchOp::Equal, "job", "node")]),
        want
    );
    let mut want = vec![c.clone(), d.clone()];
    want.sort();
    assert_eq!(
        pick(&[name_is("cpu"), m(MatchOp::NotEqual, "job", "node")]),
        want
    );
    let mut want = vec![a.clone(), c.clone()];
    want.sort();
    assert_eq!(
        pick(&[name_is("cpu"), m(MatchOp::Regex, "instance", "a:.*")]),
        want
    );
    let mut want = vec![b.clone(), d.clone()];
    want.sort();
    assert_eq!(
        pick(&[name_is("cpu"), m(MatchOp::NotRegex, "instance", "a:.*")]),
        want
    );
    // Empty-matching matchers select series without the label.
    assert_eq!(
        pick(&[name_is("cpu"), m(MatchOp::Equal, "job", "")]),
        vec![d.clone()]
    );
    assert_eq!(pick(&[m(MatchOp::Regex, "job", "kube.*|")]).len(), 2);
    // A regex that cannot match the empty string only looks at values of its label.
    assert_eq!(pick(&[m(MatchOp::Regex, "job", ".+")]).len(), 3);
    assert!(pick(&[name_is("nope")]).is_empty());
    assert!(pick(&[name_is("cpu"), m(MatchOp::Equal, "job", "x")]).is_empty());

    assert_eq!(
        store.label_names(&[], 0, 10).expect("names"),
        vec!["__name__", "instance", "job"]
    );
    assert_eq!(
        store.label_values("job", &[], 0, 10).expect("values"),
        vec!["kubelet", "node"]
    );
    assert_eq!(
        store
            .label_values("instance", &[m(MatchOp::Equal, "job", "node")], 0, 10)
            .expect("values"),
        vec!["a:9100", "b:9100"]
    );
    store.close().expect("close");
}

#[test]
fn out_of_order_and_duplicate_timestamps_keep_the_last_value_in_the_head() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(opts(dir.path())).expect("open");
    let l = labels(&[("__name__", "x")]);
    store
        .append(batch(
            &l,
            &[(30, 3.0), (10, 1.0), (20, 2.0), (10, 1.5), (30, -0.0)],
        ))
        .expect("append");
    let got = all(&store, &[name_is("x")]);
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], (10, 1.5));
    assert_eq!(got[1], (20, 2.0));
    assert_eq!(got[2].0, 30);
    assert!(got[2].1 == 0.0 && got[2].1.is_sign_negative());
    store.close().expect("close");
}

#[test]
fn duplicate_timestamps_keep_the_last_value_across_head_flushed_chunks_and_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = labels(&[("__name__", "x")]);
    {
        let store = Store::open(opts(dir.path())).expect("open");
        // 300 samples: two sealed chunks on disk plus an open one.
        let first: Vec<(i64, f64)> = (0..300).map(|i| (i * 1000, i as f64)).collect();
        store.append(batch(&l, &first)).expect("append");
        store.flush().expect("flush");
        // Overwrite a timestamp from the first (sealed, flushed) chunk while in the head.
        store.append(batch(&l, &[(5000, 500.0)])).expect("append");
        assert_eq!(all(&store, &[name_is("x")])[5], (5000, 500.0));
        store.flush().expect("flush");
        assert_eq!(all(&store, &[name_is("x")])[5], (5000, 500.0));
        store.close().expect("close");
    }
    {
        let store = Store::open(opts(dir.path())).expect("reopen");
        let got = all(&store, &[name_is("x")]);
        assert_eq!(got.len(), 300);
        assert_eq!(got[5], (5000, 500.0));
        // Overwrite again after the restart, then once more after a flush.
        store
            .append(batch(&l, &[(5000, 501.0), (299_000, -1.0)]))
            .expect("append");
        store.flush().expect("flush");
        store.append(batch(&l, &[(5000, 502.0)])).expect("append");
        store.close().expect("close");
    }
    let store = Store::open(opts(dir.path())).expect("reopen");
    let got = all(&store, &[name_is("x")]);
    assert_eq!(got.len(), 300);
    assert_eq!(got[5], (5000, 502.0));
    assert_eq!(got[299], (299_000, -1.0));
    store.close().expect("close");
}

#[test]
fn restart_after_close_keeps_every_sample_series_and_metadata() {
    let dir = tempfile::tempdir().expect("tempdir");
    let meta = Metadata {
        kind: MetricType::Counter,
        help: "Seconds the CPUs spent in each mode.".into(),
        unit: "seconds".into(),
    };
    let mut want = BTreeMap::new();
    {
        let store = Store::open(opts(dir.path())).expect("open");
        for i in 0..50 {
            let l = labels(&[
                ("__name__", "node_cpu_seconds_total"),
                ("cpu", &i.to_string()),
            ]);
            let samples: Vec<(i64, f64)> = (0..130).map(|k| (k * 15_000, (k * i) as f64)).collect();
            store.append(batch(&l, &samples)).expect("append");
            want.insert(l, samples);
        }
        store
            .append(WriteBatch {
                series: Vec::new(),
                metadata: vec![("node_cpu_seconds_total".into(), meta.clone())],
            })
            .expect("append metadata");
        store.close().expect("close");
        assert!(matches!(
            store.append(WriteBatch::default()),
            Err(StoreError::Closed)
        ));
        store.close().expect("second close is a no-op");
    }
    let store = Store::open(opts(dir.path())).expect("reopen");
    assert_eq!(store.metadata().get("node_cpu_seconds_total"), Some(&meta));
    let got = store
        .select(&[name_is("node_cpu_seconds_total")], i64::MIN, i64::MAX)
        .expect("select");
    assert_eq!(got.len(), 50);
    for d in got {
        let samples: Vec<(i64, f64)> = d.samples.iter().map(|x| (x.t, x.v)).collect();
        assert_eq!(&samples, &want[&d.labels]);
    }
    // Close sealed everything: no pieces are left behind.
    store.close().expect("close");
    for (chunks, pieces) in partition_tables(dir.path()) {
        assert!(chunks > 0);
        assert_eq!(pieces, 0);
    }
}

#[test]
fn restart_after_flush_without_close_keeps_everything_flushed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = labels(&[("__name__", "g")]);
    {
        let store = Store::open(opts(dir.path())).expect("open");
        store
            .append(batch_open(&l, &[(1, 1.0), (2, 2.0)]))
            .expect("append");
        store.flush().expect("flush");
        store.append(batch_open(&l, &[(3, 3.0)])).expect("append");
        store.flush().expect("flush");
        // Never flushed: a crash now loses it.
        store.append(batch_open(&l, &[(4, 4.0)])).expect("append");
        store.abandon();
    }
    assert_eq!(partition_tables(dir.path()), vec![(0, 2)]);
    let store = Store::open(opts(dir.path())).expect("reopen");
    assert_eq!(
        all_open(&store, &[name_is("g")]),
        vec![(1, 1.0), (2, 2.0), (3, 3.0)]
    );
    // The recovered open chunk keeps growing and seals over its old pieces.
    store.append(batch_open(&l, &[(4, 4.5)])).expect("append");
    store.close().expect("close");
    assert_eq!(partition_tables(dir.path()), vec![(1, 0)]);
    let store = Store::open(opts(dir.path())).expect("reopen");
    assert_eq!(
        all_open(&store, &[name_is("g")]),
        vec![(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.5)]
    );
    store.close().expect("close");
}

#[test]
fn a_sealed_chunk_is_written_once_and_replaces_its_small_pieces() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = labels(&[("__name__", "c")]);
    let store = Store::open(opts(dir.path())).expect("open");
    for k in 0..12 {
        let samples: Vec<(i64, f64)> = (0..10)
            .map(|i| ((k * 10 + i) * 1000, (k * 10 + i) as f64))
            .collect();
        store.append(batch_open(&l, &samples)).expect("append");
        store.flush().expect("flush");
    }
    // 120 samples flushed as 12 pieces; the chunk seals when a sample of the next window
    // arrives.
    let w = super::head::CHUNK_WINDOW_MS;
    store.append(batch_open(&l, &[(w, 120.0)])).expect("append");
    store.flush().expect("flush");
    store.abandon();
    // One sealed chunk, the 12 pieces gone, one new piece for the 121st sample.
    assert_eq!(partition_tables(dir.path()), vec![(1, 1)]);
    let store = Store::open(opts(dir.path())).expect("reopen");
    let got = all_open(&store, &[name_is("c")]);
    assert_eq!(got.len(), 121);
    assert!(
        got[..120]
            .iter()
            .enumerate()
            .all(|(i, &(t, v))| t == i as i64 * 1000 && v == i as f64)
    );
    assert_eq!(got[120], (w, 120.0));
    let st = store.stats();
    assert_eq!(st.series, 1);
    assert_eq!(st.head_chunks, 1);
    store.close().expect("close");
}

#[test]
fn pieces_of_a_sealed_chunk_in_a_block_kept_alive_by_another_series_do_not_come_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = labels(&[("__name__", "a")]);
    let b = labels(&[("__name__", "b")]);
    {
        let store = Store::open(opts(dir.path())).expect("open");
        let first: Vec<(i64, f64)> = (0..100).map(|i| (i, i as f64)).collect();
        store.append(batch_open(&a, &first)).expect("append");
        store.append(batch_open(&b, &[(0, 1.0)])).expect("append");
        // Block 1 holds pieces of `a` and `b`.
        store.flush().expect("flush");
        // `a` overwrites t=5; a sample of the next window seals its chunk and starts a new
        // one (block 2). Block 1 stays (b's open chunk still has its piece there), with
        // a's stale t=5.
        let mut more = vec![(5, 555.0)];
        more.extend((100..119).map(|i| (i, i as f64)));
        more.push((super::head::CHUNK_WINDOW_MS, 119.0));
        store.append(batch_open(&a, &more)).expect("append");
        store.flush().expect("flush");
        store.abandon();
    }
    assert_eq!(partition_tables(dir.path()), vec![(1, 2)]);
    let store = Store::open(opts(dir.path())).expect("reopen");
    let got = all_open(&store, &[name_is("a")]);
    assert_eq!(got.len(), 120);
    assert_eq!(got[5], (5, 555.0));
    assert_eq!(all_open(&store, &[name_is("b")]), vec![(0, 1.0)]);
    // Sealing everything frees both blocks.
    store.close().expect("close");
    assert_eq!(partition_tables(dir.path()), vec![(3, 0)]);
}

#[test]
fn a_window_that_ended_long_ago_is_sealed_at_once_not_written_as_pieces_first() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(opts(dir.path())).expect("open");
    let l = labels(&[("__name__", "backfilled")]);
    let old: Vec<(i64, f64)> = (0..40)
        .map(|i| (1_763_769_600_000 + i * 15_000, i as f64))
        .collect();
    store.append(batch(&l, &old)).expect("append");
    store.flush().expect("flush");
    store.abandon();
    // One sealed chunk, no log record: the samples were written once.
    assert_eq!(partition_tables(dir.path()), vec![(1, 0)]);
    let store = Store::open(opts(dir.path())).expect("reopen");
    assert_eq!(all(&store, &[name_is("backfilled")]), old);
    store.close().expect("close");
}

#[test]
fn a_seal_larger_than_one_commit_is_written_whole_in_several() {
    let dir = tempfile::tempdir().expect("tempdir");
    let t0 = 1_763_769_600_000;
    let series: Vec<Labels> = (0..600)
        .map(|i| labels(&[("__name__", "wide"), ("i", &i.to_string())]))
        .collect();
    {
        let store = Store::open(opts(dir.path())).expect("open");
        for (i, l) in series.iter().enumerate() {
            // Values without a pattern, so each stream takes ~8 bytes a sample.
            let samples: Vec<(i64, f64)> = (0..400)
                .map(|k| (t0 + k * 15_000, ((i * 7919 + k as usize) as f64).sqrt()))
                .collect();
            store.append(batch(l, &samples)).expect("append");
        }
        store.flush().expect("flush");
        store.abandon();
    }
    let store = Store::open(opts(dir.path())).expect("reopen");
    let got = store
        .select(&[name_is("wide")], i64::MIN, i64::MAX)
        .expect("select");
    assert_eq!(got.len(), 600);
    assert!(got.iter().all(|s| s.samples.len() == 400));
    let st = store.stats();
    assert_eq!(st.head_chunks, 0, "everything sealed");
    store.close().expect("close");
}

#[test]
fn each_flush_appends_only_the_bytes_that_arrived_since_the_last_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(opts(dir.path())).expect("open");
    let l = labels(&[("__name__", "c")]);
    for k in 0..6 {
        store
            .append(batch(&l, &[(OPEN + k * 15_000, (k * 100) as f64)]))
            .expect("append");
        store.flush().expect("flush");
    }
    store.abandon();
    let logs = wal::list(dir.path()).expect("logs");
    let segs = &logs[&partition::partition_index(OPEN)];
    let sizes: Vec<usize> = segs
        .iter()
        .flat_map(|(_, p)| wal::read_segment(p).expect("log").records)
        .map(|(_, block)| block.len())
        .collect();
    assert_eq!(sizes.len(), 6);
    // The first piece holds a full timestamp and value; later ones only their deltas
    // (tag, entry count, series, count, length, ~2-4 stream bytes), never the chunk so far.
    assert!(sizes[0] < 24, "{sizes:?}");
    assert!(sizes[1..].iter().all(|&n| n <= 12), "{sizes:?}");
    assert!(
        sizes[2..].iter().all(|&n| n <= 8),
        "steady counter: {sizes:?}"
    );
}

#[test]
fn a_chunk_seals_when_its_series_moves_on_to_the_next_partition() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(opts(dir.path())).expect("open");
    let l = labels(&[("__name__", "m")]);
    let midnight = OPEN + partition::RAW_SPAN_MS;
    store
        .append(batch(
            &l,
            &[(midnight - 30_000, 1.0), (midnight - 15_000, 2.0)],
        ))
        .expect("append");
    store.flush().expect("flush");
    store.append(batch(&l, &[(midnight, 3.0)])).expect("append");
    // First flush: the old day's chunk got a sample since the previous flush, stays open.
    store.flush().expect("flush");
    store
        .append(batch(&l, &[(midnight + 15_000, 4.0)]))
        .expect("append");
    // Second flush: it got nothing, and its series writes to a newer day: sealed.
    store.flush().expect("flush");
    store.abandon();
    // Day 1: one sealed chunk, its block gone; day 2: still open, two blocks.
    assert_eq!(partition_tables(dir.path()), vec![(1, 0), (0, 2)]);
    let store = Store::open(opts(dir.path())).expect("reopen");
    assert_eq!(
        all(&store, &[name_is("m")]),
        vec![
            (midnight - 30_000, 1.0),
            (midnight - 15_000, 2.0),
            (midnight, 3.0),
            (midnight + 15_000, 4.0)
        ]
    );
    store.close().expect("close");
}

#[test]
fn samples_from_before_clock_sync_land_in_one_partition_each_day() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(opts(dir.path())).expect("open");
    let l = labels(&[("__name__", "boot")]);
    // A Pi without RTC: minutes in 1970, then the real clock.
    let mut samples: Vec<(i64, f64)> = (0..200).map(|i| (i * 15_000, 1.0)).collect();
    samples.extend((0..10).map(|i| (1_763_769_600_000 + i * 15_000, 2.0)));
    samples.push((-5, 3.0));
    samples.push((i64::MIN, 4.0));
    samples.push((i64::MAX, 5.0));
    store.append(batch(&l, &samples)).expect("append");
    store.close().expect("close");
    assert_eq!(
        std::fs::read_dir(dir.path().join("raw"))
            .expect("raw")
            .count(),
        5
    );
    let store = Store::open(opts(dir.path())).expect("reopen");
    let got = all(&store, &[name_is("boot")]);
    assert_eq!(got.len(), 213);
    assert_eq!(got[0], (i64::MIN, 4.0));
    assert_eq!(got[1], (-5, 3.0));
    assert_eq!(got[212], (i64::MAX, 5.0));
    let st = store.stats();
    assert!(st.bytes_on_disk > 0);
    store.close().expect("close");
}

#[test]
fn stats_count_appends_flushes_and_durable_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(opts(dir.path())).expect("open");
    let l = labels(&[("__name__", "x")]);
    store
        .append(batch_open(&l, &[(1, 1.0), (2, 2.0)]))
        .expect("append");
    let st = store.stats();
    assert_eq!(
        (
            st.series,
            st.samples_appended,
            st.samples_flushed,
            st.flushes
        ),
        (1, 2, 0, 0)
    );
    store.flush().expect("flush");
    store.append(batch_open(&l, &[(3, 1.0)])).expect("append");
    store.flush().expect("flush");
    let st = store.stats();
    assert_eq!(
        (
            st.samples_appended,
            st.samples_flushed,
            st.flushes,
            st.head_chunks
        ),
        (3, 3, 2, 1)
    );
    store.close().expect("close");
}

#[test]
fn the_legacy_series_by_labels_table_is_deleted_at_open_and_series_stay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = labels(&[("__name__", "m"), ("job", "j")]);
    {
        let store = Store::open(opts(dir.path())).expect("open");
        store.append(batch(&l, &[(1_000, 1.0)])).expect("append");
        store.close().expect("close");
    }
    let path = dir.path().join(INDEX_FILE);
    let tables = |db: &Database| -> Vec<String> {
        let txn = db.begin_read().expect("read");
        let names = txn.list_tables().expect("tables");
        names
            .map(|t| redb::TableHandle::name(&t).to_string())
            .collect()
    };
    {
        // What an index written before the table was dropped holds.
        let db = Database::open(&path).expect("open index");
        let txn = db.begin_write().expect("write");
        txn.open_table(index::LEGACY_SERIES_BY_LABELS)
            .expect("table")
            .insert(&index::encode_labels(&l).expect("encode")[..], 0)
            .expect("insert");
        txn.commit().expect("commit");
        assert!(tables(&db).contains(&"series_by_labels".to_string()));
    }
    let store = Store::open(opts(dir.path())).expect("reopen");
    assert_eq!(all(&store, &[name_is("m")]), vec![(1_000, 1.0)]);
    store.close().expect("close");
    let db = Database::open(&path).expect("open index");
    assert!(!tables(&db).contains(&"series_by_labels".to_string()));
}

/// Creates an empty store in `dir`, then changes its index with `edit` in one commit, as
/// damage or another Picket version would have; returns the index's path.
fn edit_new_index(dir: &Path, edit: impl FnOnce(&redb::WriteTransaction)) -> PathBuf {
    Store::open(opts(dir))
        .expect("open")
        .close()
        .expect("close");
    let path = dir.join(INDEX_FILE);
    let db = Database::open(&path).expect("open index");
    let txn = db.begin_write().expect("write");
    edit(&txn);
    txn.commit().expect("commit");
    path
}

#[test]
fn an_index_with_a_series_id_far_beyond_the_others_is_damaged_not_allocated() {
    let dir = tempfile::tempdir().expect("tempdir");
    edit_new_index(dir.path(), |txn| {
        let l = labels(&[("__name__", "far")]);
        txn.open_table(index::SERIES)
            .expect("series")
            .insert(1u64 << 40, &index::encode_labels(&l).expect("encode")[..])
            .expect("insert");
    });
    let err = Store::open(opts(dir.path())).expect_err("must refuse");
    assert!(matches!(err, StoreError::Damaged { .. }), "{err}");
    assert!(err.to_string().contains("series id"), "{err}");
}

#[test]
fn a_newer_schema_version_is_a_clear_error_and_the_file_is_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = edit_new_index(dir.path(), |txn| {
        txn.open_table(META)
            .expect("meta")
            .insert("schema_version", SCHEMA_VERSION + 1)
            .expect("insert");
    });
    let before = std::fs::read(&path).expect("read");
    let err = Store::open(opts(dir.path())).expect_err("must refuse");
    let msg = err.to_string();
    assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{msg}");
    assert!(msg.contains("index.redb") && msg.contains("newer"), "{msg}");
    assert!(
        std::fs::read(&path).expect("read") == before,
        "file changed"
    );
}

#[test]
fn a_newer_partition_schema_is_refused_too() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(opts(dir.path())).expect("open");
    store
        .append(batch(&labels(&[("__name__", "x")]), &[(1, 1.0)]))
        .expect("append");
    store.close().expect("close");
    let path = partition::partition_path(dir.path(), 0);
    {
        let db = Database::open(&path).expect("open partition");
        let txn = db.begin_write().expect("write");
        txn.open_table(partition::META)
            .expect("meta")
            .insert("schema_version", SCHEMA_VERSION + 7)
            .expect("insert");
        txn.commit().expect("commit");
    }
    let msg = Store::open(opts(dir.path()))
        .expect_err("must refuse")
        .to_string();
    assert!(msg.contains("0.redb") && msg.contains("newer"), "{msg}");
}

#[test]
fn a_corrupted_index_file_is_a_clear_error_and_the_file_is_untouched() {
    for damage in ["garbage", "truncated", "empty"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(opts(dir.path())).expect("open");
        store
            .append(batch(&labels(&[("__name__", "x")]), &[(1, 1.0)]))
            .expect("append");
        store.close().expect("close");
        let path = dir.path().join(INDEX_FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        match damage {
            "garbage" => bytes.iter_mut().take(4096).for_each(|b| *b = 0xa5),
            "truncated" => bytes.truncate(100),
            _ => bytes.clear(),
        }
        std::fs::write(&path, &bytes).expect("write");
        let err = Store::open(opts(dir.path())).expect_err("must refuse");
        let msg = err.to_string();
        assert!(msg.contains("index.redb"), "{damage}: {msg}");
        assert!(matches!(err, StoreError::Damaged { .. }), "{damage}: {msg}");
        assert!(
            std::fs::read(&path).expect("read") == bytes,
            "{damage}: file changed"
        );
    }
}

#[test]
fn a_file_left_half_created_by_a_crash_is_ignored_and_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("raw")).expect("mkdir");
    std::fs::write(dir.path().join("index.redb.new"), b"half").expect("write");
    std::fs::write(dir.path().join("raw/0.redb.new"), b"half").expect("write");
    let store = Store::open(opts(dir.path())).expect("open");
    store
        .append(batch(&labels(&[("__name__", "x")]), &[(1, 1.0)]))
        .expect("append");
    store.close().expect("close");
    assert!(!dir.path().join("raw/0.redb.new").exists());
    assert!(!dir.path().join("index.redb.new").exists());
    let store = Store::open(opts(dir.path())).expect("reopen");
    assert_eq!(all(&store, &[name_is("x")]), vec![(1, 1.0)]);
    store.close().expect("close");
}

#[test]
fn store_handles_are_send_sync_and_cheap_to_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<Store>();
}

#[test]
fn drop_of_the_last_handle_closes_and_flushes() {
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let store = Store::open(opts(dir.path())).expect("open");
        let other = store.clone();
        other
            .append(batch(&labels(&[("__name__", "d")]), &[(7, 7.0)]))
            .expect("append");
    }
    let store = Store::open(opts(dir.path())).expect("reopen");
    assert_eq!(all(&store, &[name_is("d")]), vec![(7, 7.0)]);
    store.close().expect("close");
}

#[test]
fn the_timer_flushes_without_being_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(StoreOptions {
        path: dir.path().to_owned(),
        flush_interval: Duration::from_millis(20),
    })
    .expect("open");
    store
        .append(batch(&labels(&[("__name__", "t")]), &[(7, 7.0)]))
        .expect("append");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.stats().samples_flushed == 0 {
        assert!(std::time::Instant::now() < deadline, "no flush within 10 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    store.close().expect("close");
}

/// Readers racing the writer's flushes (which move data from the head to disk) never miss
/// an acknowledged sample nor see one twice.
#[test]
fn concurrent_selects_during_flushes_see_every_acknowledged_sample_once() {
    use std::sync::atomic::{AtomicBool, AtomicI64};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(StoreOptions {
        path: dir.path().to_owned(),
        flush_interval: Duration::from_millis(2),
    })
    .expect("open");
    let acked = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, acked, done) = (store.clone(), acked.clone(), done.clone());
        std::thread::spawn(move || {
            let mut checks = 0;
            while !done.load(Ordering::SeqCst) || checks < 10 {
                let before = acked.load(Ordering::SeqCst);
                let got = store
                    .select(&[name_is("r")], i64::MIN, i64::MAX)
                    .expect("select");
                let n = got.first().map_or(0, |d| d.samples.len()) as i64;
                assert!(n >= before, "saw {n} samples, {before} were acknowledged");
                if let Some(d) = got.first() {
                    assert!(
                        d.samples.iter().enumerate().all(|(i, x)| x.t == i as i64),
                        "samples missing or repeated"
                    );
                }
                checks += 1;
            }
            checks
        })
    };
    let l = labels(&[("__name__", "r")]);
    for t in 0..3000i64 {
        store.append(batch(&l, &[(t, t as f64)])).expect("append");
        acked.store(t + 1, Ordering::SeqCst);
        if t % 300 == 0 {
            store.flush().expect("flush");
        }
    }
    done.store(true, Ordering::SeqCst);
    let checks = reader.join().expect("reader thread");
    assert!(checks >= 10);
    assert!(store.stats().flushes > 1);
    store.close().expect("close");
}

/// Random appends (out of order, duplicates, several partitions and series), flushes,
/// crash-reopens and clean reopens, checked after every step against a `BTreeMap` model
/// that keeps the last value of each (series, timestamp).
#[test]
fn randomized_store_matches_a_btreemap_model() {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    for round in 0..4 {
        let dir = tempfile::tempdir().expect("tempdir");
        let series: Vec<Labels> = (0..6)
            .map(|i| {
                labels(&[
                    ("__name__", "r"),
                    ("i", &i.to_string()),
                    ("odd", if i % 2 == 1 { "y" } else { "" }),
                ])
            })
            .collect();
        // What is durable (survives a crash) and what is only in the head.
        let mut durable: BTreeMap<(usize, i64), u64> = BTreeMap::new();
        let mut model: BTreeMap<(usize, i64), u64> = BTreeMap::new();
        let mut store = Store::open(opts(dir.path())).expect("open");
        for step in 0..120 {
            match rnd(20) {
                0..=13 => {
                    let si = rnd(series.len() as u64) as usize;
                    let n = rnd(40) + 1;
                    let base = match rnd(4) {
                        0 => -2 * partition::RAW_SPAN_MS,
                        1 => partition::RAW_SPAN_MS - 50_000,
                        _ => 1_763_769_600_000,
                    };
                    let samples: Vec<Sample> = (0..n)
                        .map(|_| {
                            let v = match rnd(4) {
                                0 => rnd(5) as f64,
                                1 => f64::from_bits(rnd(u64::MAX)),
                                2 => stale_nan(),
                                _ => step as f64 + 0.5,
                            };
                            s(base + rnd(100) as i64 * 1000, v)
                        })
                        .collect();
                    for x in &samples {
                        model.insert((si, x.t), x.v.to_bits());
                    }
                    store
                        .append(WriteBatch {
                            series: vec![(series[si].clone(), samples)],
                            metadata: Vec::new(),
                        })
                        .expect("append");
                }
                14..=16 => {
                    store.flush().expect("flush");
                    durable = model.clone();
                }
                17 => {
                    store.abandon();
                    store = Store::open(opts(dir.path())).expect("reopen after crash");
                    model = durable.clone();
                }
                _ => {
                    store.close().expect("close");
                    durable = model.clone();
                    store = Store::open(opts(dir.path())).expect("reopen");
                }
            }
            // Every series, and a filtered subset through a regex matcher.
            let got = store
                .select(&[name_is("r")], i64::MIN, i64::MAX)
                .expect("select");
            let mut flat: BTreeMap<(usize, i64), u64> = BTreeMap::new();
            for d in &got {
                let si = series
                    .iter()
                    .position(|l| *l == d.labels)
                    .expect("known series");
                assert!(
                    d.samples.windows(2).all(|w| w[0].t < w[1].t),
                    "sorted, unique"
                );
                for x in &d.samples {
                    flat.insert((si, x.t), x.v.to_bits());
                }
            }
            assert_eq!(flat, model, "round {round} step {step}");
            let odd = store
                .select(
                    &[name_is("r"), m(MatchOp::Equal, "odd", "y")],
                    i64::MIN,
                    i64::MAX,
                )
                .expect("select");
            assert!(odd.iter().all(|d| d.labels.get("odd") == Some("y")));
            let lo = 1_763_769_600_000 + 20_000;
            let hi = lo + 30_000;
            let ranged = store.select(&[name_is("r")], lo, hi).expect("select");
            let n: usize = ranged.iter().map(|d| d.samples.len()).sum();
            assert_eq!(
                n,
                model.keys().filter(|(_, t)| *t >= lo && *t <= hi).count()
            );
        }
        store.close().expect("close");
    }
}

/// `/api/v1/status/tsdb`'s figures, counted by hand for a small label set.
#[test]
fn tsdb_status_counts_series_label_pairs_and_partition_samples() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(opts(dir.path())).expect("open");
    for (name, job, n) in [("a", "node", 3), ("b", "node", 2), ("c", "kubelet", 1)] {
        for i in 0..n {
            let l = labels(&[("__name__", name), ("job", job), ("i", &i.to_string())]);
            store
                .append(batch(&l, &[(1000, 1.0), (2000, 2.0)]))
                .expect("append");
        }
    }
    let st = store.tsdb_status(2);
    assert_eq!(st.head.num_series, 6);
    // __name__ a,b,c; job node,kubelet; i 0,1,2.
    assert_eq!(st.head.num_label_pairs, 8);
    assert_eq!(st.head.chunk_count, 6);
    assert_eq!((st.head.min_time, st.head.max_time), (1000, 2000));
    let pairs = |v: &[status::Stat]| -> Vec<(String, u64)> {
        v.iter().map(|s| (s.name.clone(), s.value)).collect()
    };
    assert_eq!(
        pairs(&st.series_count_by_metric_name),
        vec![("a".into(), 3), ("b".into(), 2)]
    );
    assert_eq!(
        pairs(&st.label_value_count_by_label_name),
        vec![("__name__".into(), 3), ("i".into(), 3)]
    );
    // Summed length of distinct values: job = "node" + "kubelet" = 11.
    assert_eq!(
        pairs(&st.memory_in_bytes_by_label_name),
        vec![("job".into(), 11), ("__name__".into(), 3)]
    );
    assert_eq!(
        pairs(&st.series_count_by_label_value_pair),
        vec![("job=node".into(), 5), ("__name__=a".into(), 3)]
    );
    assert_eq!(st.tiers[0].partitions, 0, "nothing flushed yet");
    store.flush().expect("flush");
    let t = &store.tsdb_status(10).tiers[0];
    assert_eq!((t.name, t.partitions, t.samples), ("raw", 1, 12));
    assert_eq!((t.min_time, t.max_time), (Some(1000), Some(2000)));
    assert!(t.bytes > 0 && t.bytes_per_sample().is_some());
    store.close().expect("close");
    // The counters live in the partition's meta: a reopen reports the same.
    let store = Store::open(opts(dir.path())).expect("reopen");
    let t = &store.tsdb_status(10).tiers[0];
    assert_eq!((t.partitions, t.samples), (1, 12));
    assert_eq!((t.min_time, t.max_time), (Some(1000), Some(2000)));
    store.close().expect("close");
}

fn raw_file_bytes(dir: &Path) -> Vec<(i64, u64)> {
    partition::list(dir)
        .expect("list")
        .into_iter()
        .map(|(i, p)| (i, std::fs::metadata(p).map_or(0, |m| m.len())))
        .collect()
}

/// Backfilling 30 days with a budget of a few days' files: after every flush the files
/// fit the budget plus the one being written; evicted days answer nothing, kept days answer
/// exactly what was written.
#[test]
fn budget_keeper_deletes_oldest_days_and_keeps_the_rest_exact() {
    const DAYS: i64 = 30;
    const SERIES: usize = 20;
    const STEP: i64 = 300_000; // 5 minutes: 288 samples per series and day
    let day0 = partition::partition_index(1_763_769_600_000);
    let series: Vec<Labels> = (0..SERIES)
        .map(|i| labels(&[("__name__", "b"), ("i", &i.to_string())]))
        .collect();
    let write_day = |store: &Store, d: i64| {
        let start = partition::partition_start(day0 + d);
        for l in &series {
            let samples: Vec<(i64, f64)> = (0..288)
                .map(|k| (start + k * STEP, (d * 1000 + k) as f64))
                .collect();
            store.append(batch(l, &samples)).expect("append");
        }
        store.flush().expect("flush");
    };
    // First measure one day's file without a budget, then set the budget to ~4 of them.
    let probe = tempfile::tempdir().expect("tempdir");
    let day_bytes = {
        let store = Store::open(opts(probe.path())).expect("open");
        write_day(&store, 0);
        write_day(&store, 1);
        // While open: a clean close compacts, the running store's files are larger.
        let b = raw_file_bytes(probe.path())[0].1;
        store.close().expect("close");
        b
    };
    let budget = day_bytes * 4;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(
        opts(dir.path()),
        Limits {
            budget: Budget::Bytes(budget),
            ..Limits::default()
        },
    )
    .expect("open");
    let mut max_newest = 0;
    for d in 0..DAYS {
        write_day(&store, d);
        let files = raw_file_bytes(dir.path());
        let total: u64 = files.iter().map(|f| f.1).sum();
        let newest = files.last().map_or(0, |f| f.1);
        max_newest = max_newest.max(newest);
        assert!(
            total <= budget + newest,
            "day {d}: {total} bytes on disk, budget {budget} + newest {newest}"
        );
    }
    let files = raw_file_bytes(dir.path());
    assert!(files.len() >= 2 && files.len() < DAYS as usize, "{files:?}");
    let stats = store.stats();
    assert_eq!(
        stats.evicted_partitions,
        DAYS as u64 - files.len() as u64,
        "every day not on disk was evicted once"
    );
    let first_kept = files[0].0 - day0;
    // Evicted time answers nothing ...
    let evicted = store
        .select(
            &[name_is("b")],
            partition::partition_start(day0),
            partition::partition_end(day0 + first_kept - 1),
        )
        .expect("select");
    assert!(
        evicted.is_empty(),
        "evicted days still answer: {}",
        evicted.len()
    );
    // ... and every kept day is exact.
    let kept = store
        .select(
            &[name_is("b")],
            partition::partition_start(day0 + first_kept),
            i64::MAX,
        )
        .expect("select");
    assert_eq!(kept.len(), SERIES);
    for d in &kept {
        assert_eq!(d.samples.len() as i64, 288 * (DAYS - first_kept));
        for (j, x) in d.samples.iter().enumerate() {
            let (day, k) = (first_kept + j as i64 / 288, j as i64 % 288);
            assert_eq!(x.t, partition::partition_start(day0 + day) + k * STEP);
            assert_eq!(x.v, (day * 1000 + k) as f64);
        }
    }
    assert!(stats.retention.is_some());
    store.close().expect("close");
    // A restart keeps the same days.
    let store = Store::open(opts(dir.path())).expect("reopen");
    let n: usize = store
        .select(&[name_is("b")], i64::MIN, i64::MAX)
        .expect("select")
        .iter()
        .map(|d| d.samples.len())
        .sum();
    assert_eq!(n as i64, SERIES as i64 * 288 * (DAYS - first_kept));
    store.close().expect("close");
}

#[test]
fn max_age_deletes_days_older_than_it_but_never_the_newest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let now = status::now_ms();
    let store = Store::open_with(
        opts(dir.path()),
        Limits {
            max_age: Some(Duration::from_secs(3 * 86_400)),
            retention_horizon: Some(Duration::from_secs(30 * 86_400)),
            ..Limits::default()
        },
    )
    .expect("open");
    let l = labels(&[("__name__", "age")]);
    for d in (0..10).rev() {
        store
            .append(batch(&l, &[(now - d * 86_400_000, d as f64)]))
            .expect("append");
        store.flush().expect("flush");
    }
    let got = all(&store, &[name_is("age")]);
    // Days 0..=2 are younger than 3 days; day 3's file may still hold its last hours.
    assert!(got.len() == 3 || got.len() == 4, "{got:?}");
    assert!(got.iter().all(|&(t, _)| t >= now - 4 * 86_400_000));
    let st = store.stats();
    assert!(st.evicted_partitions >= 6);
    assert!(st.retention_below_horizon, "kept < 30 d after evicting");
    store.close().expect("close");

    // An old backfill alone is never deleted: it is the newest partition.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(
        opts(dir.path()),
        Limits {
            max_age: Some(Duration::from_secs(86_400)),
            ..Limits::default()
        },
    )
    .expect("open");
    store.append(batch(&l, &[(5, 5.0)])).expect("append");
    store.flush().expect("flush");
    assert_eq!(all(&store, &[name_is("age")]), vec![(5, 5.0)]);
    store.close().expect("close");
}

#[test]
fn auto_budget_is_chosen_once_and_remembered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let auto = Limits {
        budget: Budget::Auto,
        ..Limits::default()
    };
    let store = Store::open_with(opts(dir.path()), auto.clone()).expect("open");
    let b = store.stats().budget_bytes.expect("a budget");
    assert!((AUTO_BUDGET_MIN..=AUTO_BUDGET_MAX).contains(&b), "{b}");
    store.close().expect("close");
    // Fake a different remembered figure: the next start must use it, not recompute.
    {
        let db = Database::open(dir.path().join(INDEX_FILE)).expect("index");
        let txn = db.begin_write().expect("write");
        txn.open_table(META)
            .expect("meta")
            .insert("auto_budget_bytes", 12_345_678u64)
            .expect("insert");
        txn.commit().expect("commit");
    }
    let store = Store::open_with(opts(dir.path()), auto).expect("reopen");
    assert_eq!(store.stats().budget_bytes, Some(12_345_678));
    store.close().expect("close");
}

/// A snapshot taken while appends and flushes go on opens as a store holding exactly what
/// was flushed when it was taken, and passes `check`.
#[test]
fn snapshot_of_a_running_store_is_consistent_and_checks_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(opts(dir.path())).expect("open");
    let l = labels(&[("__name__", "snap"), ("job", "x")]);
    // 3 partitions, sealed chunks and open ones with pieces.
    let samples: Vec<(i64, f64)> = (0..1000)
        .map(|i| (i * 300_000 - partition::RAW_SPAN_MS, i as f64))
        .collect();
    store.append(batch(&l, &samples[..700])).expect("append");
    store.flush().expect("flush");
    store.append(batch(&l, &samples[700..])).expect("append");
    let dest = dir.path().join("snap");
    let sum = store.snapshot(&dest).expect("snapshot");
    assert!(sum.files >= 3 && sum.entries > 0, "{sum:?}");
    // More data after the snapshot is not in it.
    store
        .append(batch(&l, &[(i64::MAX / 2, 1.0)]))
        .expect("append");
    store.flush().expect("flush");
    assert!(store.snapshot(&dest).is_err(), "dest exists");
    store.close().expect("close");

    let report = check::check_dir(&dest).expect("check");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.index.as_ref().map(|i| i.series), Some(1));
    let counted: u64 = report.partitions.iter().map(|p| p.samples).sum();
    assert_eq!(counted, 1000);
    let copy = Store::open(opts(&dest)).expect("snapshot opens");
    assert_eq!(all(&copy, &[name_is("snap")]), samples);
    copy.close().expect("close");
}

#[test]
fn check_names_the_file_and_key_of_a_damaged_chunk() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(opts(dir.path())).expect("open");
    let l = labels(&[("__name__", "bad")]);
    let samples: Vec<(i64, f64)> = (0..130).map(|i| (i * 1000, i as f64)).collect();
    store.append(batch(&l, &samples)).expect("append");
    store.close().expect("close");
    assert!(
        check::check_dir(dir.path())
            .expect("check")
            .problems
            .is_empty()
    );
    let path = partition::partition_path(dir.path(), 0);
    {
        let db = Database::open(&path).expect("partition");
        let txn = db.begin_write().expect("write");
        {
            let mut t = txn.open_table(partition::CHUNKS).expect("chunks");
            let key = t
                .iter()
                .expect("iter")
                .next()
                .expect("a chunk")
                .expect("ok")
                .0
                .value();
            t.insert(key, [1u8, 200, 1, 0].as_slice()).expect("insert");
        }
        txn.commit().expect("commit");
    }
    let report = check::check_dir(dir.path()).expect("check");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let p = &report.problems[0];
    assert_eq!(p.path, path);
    assert!(p.key.starts_with("chunks/(0, 1, "), "{p}");
    // The store still opens (sealed chunks are read on demand) and a read of the damaged
    // chunk fails naming the file, rather than answering without it.
    let store = Store::open(opts(dir.path())).expect("open");
    match store.select_series(&[name_is("bad")], 0, 1000) {
        Err(StoreError::Damaged { path: p, .. }) => assert_eq!(p, path),
        other => panic!("expected Damaged, got {other:?}"),
    }
    store.close().expect("close");
}

/// Selects racing the keeper's evictions never fail: a reader holding an evicted file
/// keeps reading it, and new readers no longer see it.
#[test]
fn selects_during_evictions_never_fail() {
    use std::sync::atomic::AtomicBool;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open_with(
        opts(dir.path()),
        Limits {
            budget: Budget::Bytes(1),
            ..Limits::default()
        },
    )
    .expect("open");
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, done) = (store.clone(), done.clone());
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !done.load(Ordering::SeqCst) || reads < 20 {
                let r = store.select(&[name_is("ev")], i64::MIN, i64::MAX);
                assert!(r.is_ok(), "select failed during evictions: {r:?}");
                reads += 1;
            }
            reads
        })
    };
    let l = labels(&[("__name__", "ev")]);
    for d in 0..40 {
        let start = partition::partition_start(20_000 + d);
        let samples: Vec<(i64, f64)> = (0..200).map(|k| (start + k * 1000, k as f64)).collect();
        store.append(batch(&l, &samples)).expect("append");
        store.flush().expect("flush");
    }
    done.store(true, Ordering::SeqCst);
    assert!(reader.join().expect("reader") >= 20);
    // A budget of one byte keeps only the newest day.
    assert_eq!(raw_file_bytes(dir.path()).len(), 1);
    assert_eq!(store.stats().evicted_partitions, 39);
    assert_eq!(all(&store, &[name_is("ev")]).len(), 200);
    store.close().expect("close");
}

/// Files of schema version 1 kept the blocks of open chunks in their `blocks` table: such
/// a file (made here from a current one by moving its log records into the table) opens,
/// its open chunks come back, it is upgraded to the current version, and the next seal
/// removes the table blocks.
#[test]
fn a_version_1_partition_with_table_blocks_opens_and_is_upgraded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = labels(&[("__name__", "v1")]);
    let store = Store::open(opts(dir.path())).expect("open");
    for k in 0..5 {
        store
            .append(batch_open(&l, &[(k * 1000, k as f64)]))
            .expect("append");
        store.flush().expect("flush");
    }
    store.abandon();
    let path = partition::partition_path(dir.path(), partition::partition_index(OPEN));
    let logs = wal::list(dir.path()).expect("logs");
    {
        let db = Database::open(&path).expect("partition");
        let txn = db.begin_write().expect("write");
        {
            let mut blocks = txn.open_table(partition::BLOCKS).expect("blocks");
            for (_, seg) in &logs[&partition::partition_index(OPEN)] {
                for (seq, block) in wal::read_segment(seg).expect("log").records {
                    blocks.insert(seq, block.as_slice()).expect("insert");
                }
                std::fs::remove_file(seg).expect("rm");
            }
            let mut meta = txn.open_table(META).expect("meta");
            meta.insert("schema_version", 1u64).expect("v1");
            for k in ["samples", "min_t", "max_t"] {
                meta.remove(k).expect("rm");
            }
        }
        txn.commit().expect("commit");
    }
    assert_eq!(partition_tables(dir.path()), vec![(0, 5)]);
    let store = Store::open(opts(dir.path())).expect("v1 opens");
    assert_eq!(all_open(&store, &[name_is("v1")]).len(), 5);
    store
        .append(batch_open(&l, &[(5000, 5.0)]))
        .expect("append");
    store.close().expect("close");
    // Sealed at close: one chunk, no table blocks, no log records.
    assert_eq!(partition_tables(dir.path()), vec![(1, 0)]);
    let db = Database::open(&path).expect("partition");
    assert_eq!(
        schema_version(&db, &path).expect("version"),
        Some(SCHEMA_VERSION)
    );
    drop(db);
    let store = Store::open(opts(dir.path())).expect("reopen");
    assert_eq!(all_open(&store, &[name_is("v1")]).len(), 6);
    store.close().expect("close");
}

/// A log record that fails its checksum with more records after it is damage: the open
/// refuses the store naming the log, and `check` reports it; the file is left as it was.
#[test]
fn a_damaged_block_log_record_fails_the_open_and_the_check() {
    let dir = tempfile::tempdir().expect("tempdir");
    let l = labels(&[("__name__", "wal")]);
    let store = Store::open(opts(dir.path())).expect("open");
    for k in 0..3 {
        store
            .append(batch_open(&l, &[(k * 1000, k as f64)]))
            .expect("append");
        store.flush().expect("flush");
    }
    store.abandon();
    let logs = wal::list(dir.path()).expect("logs");
    let seg = logs[&partition::partition_index(OPEN)][0].1.clone();
    let mut bytes = std::fs::read(&seg).expect("read");
    bytes[8 + 16] ^= 0x40; // inside the first record's block
    std::fs::write(&seg, &bytes).expect("write");
    match Store::open(opts(dir.path())) {
        Err(StoreError::Damaged { path, .. }) => assert_eq!(path, seg),
        other => panic!("expected Damaged, got {other:?}"),
    }
    assert_eq!(std::fs::read(&seg).expect("read"), bytes, "left untouched");
    let report = check::check_dir(dir.path()).expect("check");
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].path, seg);
}

/// Snapshots taken while another thread appends, flushes and seals (so blocks are being
/// appended to the log and chunks committed to redb under the snapshot's feet) each open
/// as a store holding a gap-free prefix of every series, and pass `check`.
#[test]
fn snapshots_racing_appends_flushes_and_seals_hold_gap_free_prefixes() {
    use std::sync::atomic::AtomicBool;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(StoreOptions {
        path: dir.path().join("data"),
        flush_interval: Duration::from_millis(3),
    })
    .expect("open");
    let series: Vec<Labels> = (0..3)
        .map(|i| labels(&[("__name__", "race"), ("i", &i.to_string())]))
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (store, series, done) = (store.clone(), series.clone(), done.clone());
        std::thread::spawn(move || {
            let mut t = 0i64;
            while !done.load(Ordering::SeqCst) || t < 2000 {
                for l in &series {
                    store.append(batch(l, &[(t, t as f64)])).expect("append");
                }
                t += 1;
                if t % 37 == 0 {
                    store.flush().expect("flush");
                }
            }
            t
        })
    };
    let mut taken = 0;
    for k in 0..6 {
        std::thread::sleep(Duration::from_millis(30));
        let dest = dir.path().join(format!("snap{k}"));
        store.snapshot(&dest).expect("snapshot");
        let report = check::check_dir(&dest).expect("check");
        assert!(report.problems.is_empty(), "snap{k}: {:?}", report.problems);
        let copy = Store::open(opts(&dest)).expect("snapshot opens");
        let got = copy
            .select(&[name_is("race")], i64::MIN, i64::MAX)
            .expect("select");
        for d in &got {
            assert!(
                d.samples
                    .iter()
                    .enumerate()
                    .all(|(j, x)| x.t == j as i64 && x.v == j as f64),
                "snap{k}: {} is not a gap-free prefix",
                d.labels
            );
        }
        taken += got.iter().map(|d| d.samples.len()).sum::<usize>();
        copy.close().expect("close");
    }
    done.store(true, Ordering::SeqCst);
    let n = writer.join().expect("writer");
    assert!(taken > 0 && n >= 2000);
    store.close().expect("close");
}
