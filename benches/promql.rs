//! PromQL evaluation cost on a dashboard-sized range query: 1,000 counter series at 15 s
//! over 6 h, evaluated at a 30 s step (720 points per series, what Grafana asks for a 6 h
//! panel), through an in-memory reader so only the engine is measured. Prints the median of
//! 5 runs per query. `cargo bench --bench promql`; under `cargo test` it runs once, small.

use picket::model::{Labels, Matcher, Sample};
use picket::query::promql::eval::{EngineOptions, Value, range_query};
use picket::query::promql::parse;
use picket::query::{ReadError, SeriesData, SeriesReader};
use std::time::{Duration, Instant};

struct MemReader(Vec<SeriesData>);

impl MemReader {
    fn matching<'a>(&'a self, m: &'a [Matcher]) -> impl Iterator<Item = &'a SeriesData> + 'a {
        self.0
            .iter()
            .filter(move |s| m.iter().all(|m| m.matches_labels(&s.labels)))
    }
}

impl SeriesReader for MemReader {
    fn select(&self, m: &[Matcher], start: i64, end: i64) -> Result<Vec<SeriesData>, ReadError> {
        Ok(self
            .matching(m)
            .map(|s| SeriesData {
                labels: s.labels.clone(),
                samples: s
                    .samples
                    .iter()
                    .filter(|p| p.t >= start && p.t <= end)
                    .copied()
                    .collect(),
            })
            .filter(|s| !s.samples.is_empty())
            .collect())
    }
    fn series(&self, m: &[Matcher], _: i64, _: i64) -> Result<Vec<Labels>, ReadError> {
        Ok(self.matching(m).map(|s| s.labels.clone()).collect())
    }
    fn label_names(&self, _: &[Matcher], _: i64, _: i64) -> Result<Vec<String>, ReadError> {
        Ok(Vec::new())
    }
    fn label_values(
        &self,
        _: &str,
        _: &[Matcher],
        _: i64,
        _: i64,
    ) -> Result<Vec<String>, ReadError> {
        Ok(Vec::new())
    }
}

fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let (n_series, runs) = if measuring { (1000, 5) } else { (20, 1) };
    let hours = 6;
    let points = hours * 3600 / 15;
    let reader = MemReader(
        (0..n_series)
            .map(|i| SeriesData {
                labels: Labels::from_pairs([
                    ("__name__", "req_total".to_string()),
                    ("job", format!("j{}", i % 10)),
                    ("instance", format!("i{i}")),
                    ("code", "200".to_string()),
                ]),
                samples: (0..points)
                    .map(|k| Sample {
                        t: k as i64 * 15_000,
                        v: (k * (i % 7 + 1)) as f64,
                    })
                    .collect(),
            })
            .collect(),
    );
    let end = hours as i64 * 3_600_000;
    println!("PromQL range queries: {n_series} series x {points} samples, 6 h at a 30 s step");
    for q in [
        "req_total",
        "rate(req_total[5m])",
        "sum by (job) (rate(req_total[5m]))",
        "max_over_time(req_total[5m]) - min_over_time(req_total[5m])",
    ] {
        let expr = parse(q).expect("query parses");
        let mut times: Vec<Duration> = Vec::new();
        let mut n = 0;
        for _ in 0..runs {
            let t0 = Instant::now();
            let v = range_query(&reader, &expr, 0, end, 30_000, &EngineOptions::default())
                .expect("query runs");
            times.push(t0.elapsed());
            n = match v {
                Value::Matrix(m) => m.iter().map(|s| s.samples.len()).sum::<usize>(),
                _ => 0,
            };
        }
        times.sort();
        println!(
            "  {q:<60} {n:>8} points  median {:?}",
            times[times.len() / 2]
        );
        assert!(
            n > 0 || q.starts_with("histogram_quantile"),
            "{q} returned nothing"
        );
    }
}
