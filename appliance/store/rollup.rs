//! Rollups: what the 5-minute and 1-hour tiers keep of a series per time bucket, how a
//! bucket is computed from raw samples, how a day of buckets is stored, and how buckets
//! turn back into samples that the query engine's kernels can use unchanged.
//!
//! # Buckets
//!
//! A bucket of resolution `res` ending at `end` (a multiple of `res`) holds the samples in
//! `(end - res, end]`, left-open like PromQL's range windows, so a window `(mint, maxt]`
//! whose ends are multiples of `res` is exactly a union of buckets. Per bucket:
//! `count`, `min`, `max`, `sum`, `first` and `last` (value and timestamp), and for counters
//! `corr`, the reset correction: the sum of the values just before each reset inside the
//! bucket, so that the bucket's increase is `last - first + corr` (Prometheus' own formula).
//! Staleness markers are not rolled up. Buckets of the same `end` from two raw days (the
//! one sample at exactly midnight belongs to the previous day's last bucket) merge exactly.
//!
//! # Which series are counters
//!
//! The metric type from the index's metadata when there is one (counter, histogram and
//! summary series are counters), else Prometheus' naming convention: a name ending in
//! `_total`, `_count`, `_sum` or `_bucket`. Only counters store `corr`; for other series a
//! reset inside one bucket is invisible to `rate` over rollups (resets between buckets are
//! still seen, from first/last values).
//!
//! # Stored form
//!
//! One value per (raw day, series) in each tier file (tier.rs): `ncols:u8 | chunk`, the
//! chunk (codec.rs, lz4 when it pays) holding the columns one after the other as samples
//! `(end, column value)`: count, min, max, sum, end - first_t, first, end - last_t, last and
//! for counters corr. Steady series make every column a repeating or evenly stepping
//! value, which the chunk codec stores in ~2 bytes per point before lz4.
//!
//! # Answering queries ([`points`])
//!
//! The engine says what it will compute ([`Want`]); each bucket becomes one or two samples
//! whose values make that kernel give the raw answer on bucket-aligned windows:
//! `Last` -> last at last_t (plain selectors, `last_over_time`); `Min`/`Max`/`Sum` -> that
//! column at last_t; `Count` -> count at last_t, with raw samples mapped to 1 and the
//! engine summing instead of counting; `Avg` -> sum/count at last_t (a mean of bucket
//! means: exact when the buckets in a window hold equally many samples); `FirstLast` ->
//! first at first_t and last at last_t (`delta`, `idelta`); `Counter` -> the same two
//! points with values shifted by the reset corrections that follow them, so the series has
//! no resets left inside the rollup range and the increase across any two points is the
//! raw one (`rate`, `increase`, `irate`). Without resets the values are the raw values.
//! `rate`/`increase` over aligned windows therefore equal the raw answer except where
//! Prometheus' extrapolation differs: it extends to the window edge when the gap is under
//! 1.1x the mean sample interval, which over rollups is the bucket's (so a series with a
//! gap at the window's edge can extrapolate up to that gap further), and skips the
//! zero-floor when the shifted first value is negative. `irate`/`idelta` use the last
//! bucket's first and last sample (a bucket-mean rate, not the last interval).

use super::codec::{self, Encoder};
use crate::model::{Metadata, MetricType, Sample, is_stale_nan};
use crate::query::Want;

/// The rollup tiers: name and resolution in ms.
pub const TIERS: [(&str, i64); 2] = [("5m", 300_000), ("1h", 3_600_000)];

const COLS_GAUGE: u8 = 8;
const COLS_COUNTER: u8 = 9;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    /// The bucket covers `(end - res, end]`.
    pub end: i64,
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub sum: f64,
    pub first_t: i64,
    pub first_v: f64,
    pub last_t: i64,
    pub last_v: f64,
    /// Sum of the values before each reset inside the bucket (0 for non-counters).
    pub corr: f64,
}

impl Bucket {
    fn new(end: i64, s: Sample) -> Bucket {
        Bucket {
            end,
            count: 1,
            min: s.v,
            max: s.v,
            sum: s.v,
            first_t: s.t,
            first_v: s.v,
            last_t: s.t,
            last_v: s.v,
            corr: 0.0,
        }
    }

    fn push(&mut self, s: Sample, counter: bool) {
        self.count += 1;
        // As min_over_time/max_over_time do: a NaN is replaced by any later value.
        if s.v < self.min || self.min.is_nan() {
            self.min = s.v;
        }
        if s.v > self.max || self.max.is_nan() {
            self.max = s.v;
        }
        self.sum += s.v;
        if counter && s.v < self.last_v {
            self.corr += self.last_v;
        }
        self.last_t = s.t;
        self.last_v = s.v;
    }

    /// Joins `next` (same `end`, every sample later than ours) into this bucket.
    pub fn merge(&mut self, next: &Bucket) {
        self.count += next.count;
        if next.min < self.min || self.min.is_nan() {
            self.min = next.min;
        }
        if next.max > self.max || self.max.is_nan() {
            self.max = next.max;
        }
        self.sum += next.sum;
        if next.first_v < self.last_v {
            self.corr += self.last_v;
        }
        self.corr += next.corr;
        self.last_t = next.last_t;
        self.last_v = next.last_v;
    }
}

/// The end of the bucket of resolution `res` holding `t`: the smallest multiple of `res`
/// that is >= t (clamped at the top of the i64 range).
pub fn bucket_end(t: i64, res: i64) -> i64 {
    let r = i128::from(res);
    let e = (i128::from(t) + r - 1).div_euclid(r) * r;
    e.min(i128::from(i64::MAX)) as i64
}

/// Whether series named `name` is a counter (see the module doc).
pub fn is_counter(name: &str, metadata: Option<&Metadata>) -> bool {
    match metadata.map(|m| m.kind) {
        Some(MetricType::Counter | MetricType::Histogram | MetricType::Summary) => true,
        Some(MetricType::Unknown) | None => ["_total", "_count", "_sum", "_bucket"]
            .iter()
            .any(|s| name.ends_with(s)),
        Some(_) => false,
    }
}

/// Folds `samples` (time order, no duplicate timestamps) into buckets of `res`, appended to
/// `out` in time order.
pub fn fold(samples: &[Sample], res: i64, counter: bool, out: &mut Vec<Bucket>) {
    let mut cur: Option<Bucket> = None;
    for s in samples.iter().filter(|s| !is_stale_nan(s.v)) {
        let end = bucket_end(s.t, res);
        match &mut cur {
            Some(b) if b.end == end => b.push(*s, counter),
            _ => {
                if let Some(b) = cur.take() {
                    out.push(b);
                }
                cur = Some(Bucket::new(end, *s));
            }
        }
    }
    out.extend(cur);
}

/// Encodes a day of one series' buckets (see the module doc).
pub fn encode(buckets: &[Bucket], counter: bool, out: &mut Vec<u8>) {
    let ncols = if counter { COLS_COUNTER } else { COLS_GAUGE };
    out.push(ncols);
    let mut enc = Encoder::default();
    let mut body = Vec::with_capacity(buckets.len() * usize::from(ncols) * 3);
    for col in 0..ncols {
        for b in buckets {
            let v = match col {
                0 => b.count as f64,
                1 => b.min,
                2 => b.max,
                3 => b.sum,
                4 => (b.end - b.first_t) as f64,
                5 => b.first_v,
                6 => (b.end - b.last_t) as f64,
                7 => b.last_v,
                _ => b.corr,
            };
            enc.push(&mut body, Sample { t: b.end, v });
        }
    }
    enc.finish_into(&body, true, out);
}

/// Decodes what [`encode`] wrote, appending the buckets to `out` in time order.
pub fn decode(value: &[u8], out: &mut Vec<Bucket>) -> Result<(), codec::CodecError> {
    let (&ncols, chunk) = value
        .split_first()
        .ok_or(codec::CodecError("empty rollup value"))?;
    if ncols != COLS_GAUGE && ncols != COLS_COUNTER {
        return Err(codec::CodecError("unknown rollup column count"));
    }
    let mut s = Vec::new();
    codec::decode_chunk(chunk, &mut s)?;
    let ncols = usize::from(ncols);
    if s.len() % ncols != 0 {
        return Err(codec::CodecError("rollup columns of different lengths"));
    }
    let n = s.len() / ncols;
    let col = |c: usize, i: usize| s[c * n + i].v;
    for (i, first_col) in s[..n].iter().enumerate() {
        let end = first_col.t;
        out.push(Bucket {
            end,
            count: col(0, i) as u64,
            min: col(1, i),
            max: col(2, i),
            sum: col(3, i),
            first_t: end - col(4, i) as i64,
            first_v: col(5, i),
            last_t: end - col(6, i) as i64,
            last_v: col(7, i),
            corr: if ncols == usize::from(COLS_COUNTER) {
                col(8, i)
            } else {
                0.0
            },
        });
    }
    Ok(())
}

/// Merges buckets of equal `end` that follow each other (the two halves of a bucket split
/// by a raw day boundary), in place.
pub fn merge_adjacent(buckets: &mut Vec<Bucket>) {
    let mut out: Vec<Bucket> = Vec::with_capacity(buckets.len());
    for b in buckets.drain(..) {
        match out.last_mut() {
            Some(last) if last.end == b.end => last.merge(&b),
            _ => out.push(b),
        }
    }
    *buckets = out;
}

/// The samples standing for `buckets` (time order) when the engine computes `want`; `next`
/// is the first raw sample after them, if any (for `Counter`, whose values are anchored
/// to it). Appends to `out` in time order.
pub fn points(buckets: &[Bucket], want: Want, next: Option<Sample>, out: &mut Vec<Sample>) {
    let at_last = |b: &Bucket, v: f64| Sample { t: b.last_t, v };
    match want {
        Want::Raw => {}
        Want::Last => out.extend(buckets.iter().map(|b| at_last(b, b.last_v))),
        Want::Min => out.extend(buckets.iter().map(|b| at_last(b, b.min))),
        Want::Max => out.extend(buckets.iter().map(|b| at_last(b, b.max))),
        Want::Sum => out.extend(buckets.iter().map(|b| at_last(b, b.sum))),
        Want::Count => out.extend(buckets.iter().map(|b| at_last(b, b.count as f64))),
        Want::Avg => out.extend(buckets.iter().map(|b| at_last(b, b.sum / b.count as f64))),
        Want::FirstLast => {
            for b in buckets {
                if b.first_t != b.last_t {
                    out.push(Sample {
                        t: b.first_t,
                        v: b.first_v,
                    });
                }
                out.push(at_last(b, b.last_v));
            }
        }
        Want::Counter => {
            // Walk backwards from the anchor, keeping the offset D that makes
            // C(x) = x + D(x) free of resets and equal to the raw values after the range.
            let start = out.len();
            let mut offset = 0.0;
            let mut later = next.map(|s| s.v);
            for b in buckets.iter().rev() {
                if let Some(y) = later
                    && y < b.last_v
                {
                    offset -= b.last_v;
                }
                out.push(Sample {
                    t: b.last_t,
                    v: b.last_v + offset,
                });
                if b.first_t != b.last_t {
                    offset -= b.corr;
                    out.push(Sample {
                        t: b.first_t,
                        v: b.first_v + offset,
                    });
                }
                later = Some(b.first_v);
            }
            out[start..].reverse();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(t: i64, v: f64) -> Sample {
        Sample { t, v }
    }

    #[test]
    fn buckets_are_left_open_and_merge_across_a_split() {
        assert_eq!(bucket_end(0, 300), 0);
        assert_eq!(bucket_end(1, 300), 300);
        assert_eq!(bucket_end(300, 300), 300);
        assert_eq!(bucket_end(-299, 300), 0);
        assert_eq!(bucket_end(i64::MAX, 300), i64::MAX);
        let samples: Vec<Sample> = (1..=10).map(|i| s(i * 60, (i % 4) as f64)).collect();
        let mut whole = Vec::new();
        fold(&samples, 300, true, &mut whole);
        assert_eq!(whole.len(), 2);
        assert_eq!((whole[0].end, whole[0].count), (300, 5));
        // Split at a point inside the second bucket, fold both halves and merge: the same.
        let mut split = Vec::new();
        fold(&samples[..7], 300, true, &mut split);
        fold(&samples[7..], 300, true, &mut split);
        assert_eq!(split.len(), 3);
        merge_adjacent(&mut split);
        assert_eq!(split, whole);
    }

    #[test]
    fn encoded_days_round_trip_and_steady_series_are_small() {
        let samples: Vec<Sample> = (0..5760).map(|i| s(i * 15_000, i as f64)).collect();
        for counter in [false, true] {
            let mut b = Vec::new();
            fold(&samples, 3_600_000, counter, &mut b);
            let mut v = Vec::new();
            encode(&b, counter, &mut v);
            let mut back = Vec::new();
            decode(&v, &mut back).expect("decode");
            assert_eq!(back, b);
            assert!(
                v.len() < 200,
                "a steady day of 1 h buckets took {} bytes",
                v.len()
            );
        }
        assert!(decode(&[7, 1, 0, 0, 0], &mut Vec::new()).is_err());
        assert!(decode(&[], &mut Vec::new()).is_err());
    }

    #[test]
    fn counter_points_keep_the_raw_increase_across_resets() {
        // A counter with resets inside and between buckets.
        let vals = [5.0, 7.0, 2.0, 4.0, 10.0, 1.0, 3.0, 8.0, 9.0, 1.0, 2.0, 6.0];
        let samples: Vec<Sample> = vals
            .iter()
            .enumerate()
            .map(|(i, v)| s(i as i64 * 100 + 100, *v))
            .collect();
        let raw_increase = |x: &[Sample]| {
            x.windows(2)
                .map(|w| {
                    if w[1].v >= w[0].v {
                        w[1].v - w[0].v
                    } else {
                        w[1].v
                    }
                })
                .sum::<f64>()
        };
        let (roll, raw) = samples.split_at(9);
        let mut b = Vec::new();
        fold(roll, 300, true, &mut b);
        let mut pts = Vec::new();
        points(&b, Want::Counter, raw.first().copied(), &mut pts);
        // The points are reset-free and join the raw samples without a jump.
        assert!(pts.windows(2).all(|w| w[1].v >= w[0].v), "{pts:?}");
        pts.extend_from_slice(raw);
        assert_eq!(raw_increase(&pts), raw_increase(&samples));
        assert_eq!(
            pts.last().map(|x| x.v).unwrap_or_default(),
            6.0,
            "raw samples keep their values"
        );
        // Without resets the points are the raw values.
        let steady: Vec<Sample> = (1..=9).map(|i| s(i * 100, i as f64)).collect();
        let mut b = Vec::new();
        fold(&steady, 300, true, &mut b);
        let mut pts = Vec::new();
        points(&b, Want::Counter, None, &mut pts);
        assert!(pts.iter().all(|p| steady.contains(p)), "{pts:?}");
    }

    #[test]
    fn counters_are_known_by_type_or_by_name() {
        let m = |kind| Metadata {
            kind,
            help: String::new(),
            unit: String::new(),
        };
        assert!(is_counter("x", Some(&m(MetricType::Counter))));
        assert!(!is_counter("x_total", Some(&m(MetricType::Gauge))));
        assert!(is_counter("x_total", None));
        assert!(is_counter("x_bucket", Some(&m(MetricType::Unknown))));
        assert!(!is_counter("x_bytes", None));
    }
}
