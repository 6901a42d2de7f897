//! Arbitrary bytes as a decompressed remote_write body: the borrowing reader must return a
//! view or an error, never panic; and whatever it accepts, prost's owned decoding of the
//! same `WriteRequest` must accept too, with the same series, samples and histogram count,
//! unless a label is not UTF-8 (the reader leaves that check to ingest, prost refuses).

#![no_main]

use libfuzzer_sys::fuzz_target;
use picket::model::prompb::{WriteRequest, read_write_request};
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let Ok(view) = read_write_request(data) else {
        return;
    };
    let owned = match WriteRequest::decode(data) {
        Ok(owned) => owned,
        Err(e) => {
            // The only body the reader may accept and prost refuse.
            assert!(e.to_string().contains("UTF-8"), "prost refused: {e}");
            return;
        }
    };
    let kept: Vec<_> = owned
        .timeseries
        .iter()
        .filter(|ts| !ts.samples.is_empty())
        .collect();
    let read: Vec<_> = view.series.series().collect();
    assert_eq!(read.len(), kept.len(), "series count");
    for ((pairs, samples), ts) in read.iter().zip(&kept) {
        let labels: Vec<(&[u8], &[u8])> = ts
            .labels
            .iter()
            .map(|l| (l.name.as_bytes(), l.value.as_bytes()))
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
