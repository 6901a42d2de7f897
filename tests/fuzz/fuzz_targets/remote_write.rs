//! Arbitrary bytes as a decompressed remote_write body: the borrowing reader must return a
//! view or an error, never panic; and whatever it accepts, prost's owned decoding of the
//! same `WriteRequest` must accept too, with the same series, samples and histogram count.

#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::model::prompb::{WriteRequest, read_write_request};
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(view) = read_write_request(data) else {
        return;
    };
    let owned = WriteRequest::decode(data).expect("prost decodes what the reader accepted");
    let kept: Vec<_> = owned
        .timeseries
        .iter()
        .filter(|ts| !ts.samples.is_empty())
        .collect();
    let read: Vec<_> = view.series.series().collect();
    assert_eq!(read.len(), kept.len(), "series count");
    for ((pairs, samples), ts) in read.iter().zip(&kept) {
        let labels: Vec<(&str, &str)> = ts
            .labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect();
        assert_eq!(*pairs, labels.as_slice());
        assert_eq!(samples.len(), ts.samples.len());
        for (a, b) in samples.iter().zip(&ts.samples) {
            assert_eq!((a.t, a.v.to_bits()), (b.timestamp, b.value.to_bits()));
        }
    }
    let histograms: usize = owned.timeseries.iter().map(|t| t.histograms.len()).sum();
    assert_eq!(view.histograms, histograms as u64);
});
