//! Prometheus remote_write 1.0 messages (`prompb/remote.proto`, `prompb/types.proto`).
//!
//! The receiver reads a `WriteRequest` with [`read_write_request`], a hand-written walk of
//! the protobuf wire format that borrows every label name and value from the body: ingest
//! is the hot path, and decoding into owned messages cost two `String`s per label and a
//! `Vec` per series before the store even looked at them. The same messages are also
//! declared with prost's derive (no protoc needed) for the code that builds requests (tests,
//! benches). Exemplars are skipped as unknown fields; native histograms are only counted so
//! that they can be rejected clearly.

use super::{Metadata, MetricType, Sample as StoreSample, WireBatch};

#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Sample>,
    /// Native histograms (field 4), kept as raw bytes: Picket does not store them yet.
    #[prost(bytes = "vec", repeated, tag = "4")]
    pub histograms: Vec<Vec<u8>>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Sample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricMetadata {
    /// UNKNOWN=0 COUNTER=1 GAUGE=2 HISTOGRAM=3 GAUGEHISTOGRAM=4 SUMMARY=5 INFO=6 STATESET=7.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
    #[prost(string, tag = "4")]
    pub help: String,
    #[prost(string, tag = "5")]
    pub unit: String,
}

impl MetricMetadata {
    pub fn metric_type(&self) -> MetricType {
        metric_type_of(self.r#type)
    }
}

/// `MetricMetadata.type`: UNKNOWN=0 COUNTER=1 GAUGE=2 HISTOGRAM=3 GAUGEHISTOGRAM=4
/// SUMMARY=5 INFO=6 STATESET=7.
fn metric_type_of(t: i32) -> MetricType {
    match t {
        1 => MetricType::Counter,
        2 => MetricType::Gauge,
        3 | 4 => MetricType::Histogram,
        5 => MetricType::Summary,
        6 => MetricType::Info,
        7 => MetricType::Stateset,
        _ => MetricType::Unknown,
    }
}

/// A `WriteRequest` as [`read_write_request`] reads it.
#[derive(Debug, Default)]
pub struct WriteRequestView<'a> {
    /// Series with at least one sample.
    pub series: WireBatch<'a>,
    /// Metric name and metadata, for entries that name a metric.
    pub metadata: Vec<(String, Metadata)>,
    /// Native histogram samples (not stored: counted as rejected).
    pub histograms: u64,
}

/// Reads a remote_write 1.0 `WriteRequest` (already snappy-decompressed), borrowing label
/// names and values from `buf`. Fails on anything prost would refuse (truncated or overlong
/// fields, a known field with the wrong wire type, groups: a long-deprecated wire type no
/// remote_write sender uses) except label names and values that are not UTF-8: those are
/// left to the caller, who checks only the label sets it does not know already. Metadata
/// strings are checked here.
pub fn read_write_request(buf: &[u8]) -> Result<WriteRequestView<'_>, WireError> {
    let mut out = WriteRequestView::default();
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, LEN) => read_series(r.bytes()?, &mut out)?,
            (3, LEN) => read_metadata(r.bytes()?, &mut out.metadata)?,
            (1 | 3, _) => return Err(r.wrong_type()),
            _ => r.skip(wire)?,
        }
    }
    Ok(out)
}

fn read_series<'a>(buf: &'a [u8], out: &mut WriteRequestView<'a>) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, LEN) => {
                let (mut name, mut value): (&[u8], &[u8]) = (b"", b"");
                let mut l = Reader::new(r.bytes()?);
                while let Some((field, wire)) = l.key()? {
                    match (field, wire) {
                        (1, LEN) => name = l.bytes()?,
                        (2, LEN) => value = l.bytes()?,
                        (1 | 2, _) => return Err(l.wrong_type()),
                        _ => l.skip(wire)?,
                    }
                }
                out.series.push_pair(name, value);
            }
            (2, LEN) => {
                let mut s = Reader::new(r.bytes()?);
                let mut sample = StoreSample { t: 0, v: 0.0 };
                while let Some((field, wire)) = s.key()? {
                    match (field, wire) {
                        (1, FIXED64) => sample.v = f64::from_bits(s.fixed64()?),
                        (2, VARINT) => sample.t = s.varint()? as i64,
                        (1 | 2, _) => return Err(s.wrong_type()),
                        _ => s.skip(wire)?,
                    }
                }
                out.series.push_sample(sample);
            }
            (4, LEN) => {
                r.bytes()?;
                out.histograms += 1;
            }
            (1 | 2 | 4, _) => return Err(r.wrong_type()),
            _ => r.skip(wire)?,
        }
    }
    out.series.end_series();
    Ok(())
}

fn read_metadata(buf: &[u8], out: &mut Vec<(String, Metadata)>) -> Result<(), WireError> {
    let mut r = Reader::new(buf);
    let (mut kind, mut name, mut help, mut unit) = (0, "", "", "");
    while let Some((field, wire)) = r.key()? {
        match (field, wire) {
            (1, VARINT) => kind = r.varint()? as i32,
            (2, LEN) => name = r.str()?,
            (4, LEN) => help = r.str()?,
            (5, LEN) => unit = r.str()?,
            (1 | 2 | 4 | 5, _) => return Err(r.wrong_type()),
            _ => r.skip(wire)?,
        }
    }
    if !name.is_empty() {
        out.push((
            name.to_owned(),
            Metadata {
                kind: metric_type_of(kind),
                help: help.to_owned(),
                unit: unit.to_owned(),
            },
        ));
    }
    Ok(())
}

/// Why a body is not a `WriteRequest`, and the byte offset (within the innermost message
/// being read) where reading stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub struct WireError {
    pub what: &'static str,
    pub at: usize,
}

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// A cursor over one protobuf message.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn fail(&self, what: &'static str) -> WireError {
        WireError { what, at: self.pos }
    }

    fn wrong_type(&self) -> WireError {
        self.fail("a known field has the wrong wire type")
    }

    /// The next field number and wire type, or `None` at the end of the message.
    #[inline]
    fn key(&mut self) -> Result<Option<(u64, u8)>, WireError> {
        if self.pos == self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = key >> 3;
        if field == 0 || field > u64::from(u32::MAX >> 3) {
            return Err(self.fail("invalid field number"));
        }
        Ok(Some((field, (key & 7) as u8)))
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, WireError> {
        // Most varints of a request (field keys, label lengths) are one byte.
        if let Some(&b) = self.buf.get(self.pos)
            && b < 0x80
        {
            self.pos += 1;
            return Ok(u64::from(b));
        }
        self.varint_slow()
    }

    fn varint_slow(&mut self) -> Result<u64, WireError> {
        let mut v = 0u64;
        for i in 0..10 {
            let Some(&b) = self.buf.get(self.pos) else {
                return Err(self.fail("truncated varint"));
            };
            self.pos += 1;
            if i == 9 && b > 1 {
                return Err(self.fail("varint longer than 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(v);
            }
        }
        Err(self.fail("varint longer than 64 bits"))
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| self.fail("field runs past the end of its message"))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    #[inline]
    fn fixed64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }

    #[inline]
    fn bytes(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| self.fail("length too large"))?;
        self.take(len)
    }

    fn str(&mut self) -> Result<&'a str, WireError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| self.fail("string is not valid UTF-8"))
    }

    fn skip(&mut self, wire: u8) -> Result<(), WireError> {
        match wire {
            VARINT => self.varint().map(drop),
            FIXED64 => self.take(8).map(drop),
            LEN => self.bytes().map(drop),
            FIXED32 => self.take(4).map(drop),
            _ => Err(self.fail("unsupported wire type (groups are not used by remote_write)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn request() -> WriteRequest {
        let label = |n: &str, v: &str| Label {
            name: n.into(),
            value: v.into(),
        };
        WriteRequest {
            timeseries: vec![
                TimeSeries {
                    labels: vec![label("__name__", "up"), label("job", "ünï")],
                    samples: vec![
                        Sample {
                            value: 1.5,
                            timestamp: 5,
                        },
                        Sample {
                            value: f64::NAN,
                            timestamp: -7,
                        },
                    ],
                    histograms: vec![],
                },
                // No samples: dropped.
                TimeSeries {
                    labels: vec![label("__name__", "empty")],
                    samples: vec![],
                    histograms: vec![vec![1, 2]],
                },
                TimeSeries {
                    labels: vec![label("b", "2"), label("a", "")],
                    samples: vec![Sample {
                        value: -0.5,
                        timestamp: i64::MAX,
                    }],
                    histograms: vec![],
                },
            ],
            metadata: vec![
                MetricMetadata {
                    r#type: 1,
                    metric_family_name: "up".into(),
                    help: "h".into(),
                    unit: "s".into(),
                },
                MetricMetadata {
                    r#type: 2,
                    metric_family_name: String::new(),
                    help: "nameless".into(),
                    unit: String::new(),
                },
            ],
        }
    }

    /// What prost's owned decoding gives, in the view's terms.
    type Flat = (
        Vec<(Vec<(String, String)>, Vec<(i64, u64)>)>,
        Vec<String>,
        u64,
    );

    fn flatten_prost(req: &WriteRequest) -> Flat {
        let series = req
            .timeseries
            .iter()
            .filter(|ts| !ts.samples.is_empty())
            .map(|ts| {
                (
                    ts.labels
                        .iter()
                        .map(|l| (l.name.clone(), l.value.clone()))
                        .collect(),
                    ts.samples
                        .iter()
                        .map(|s| (s.timestamp, s.value.to_bits()))
                        .collect(),
                )
            })
            .collect();
        let meta = req
            .metadata
            .iter()
            .filter(|m| !m.metric_family_name.is_empty())
            .map(|m| {
                format!(
                    "{}/{:?}/{}/{}",
                    m.metric_family_name,
                    m.metric_type(),
                    m.help,
                    m.unit
                )
            })
            .collect();
        let histograms = req
            .timeseries
            .iter()
            .map(|t| t.histograms.len() as u64)
            .sum();
        (series, meta, histograms)
    }

    fn flatten_view(v: &WriteRequestView<'_>) -> Flat {
        let series = v
            .series
            .series()
            .map(|(pairs, samples)| {
                (
                    pairs
                        .iter()
                        .map(|(n, v)| {
                            let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                            (s(n), s(v))
                        })
                        .collect(),
                    samples.iter().map(|s| (s.t, s.v.to_bits())).collect(),
                )
            })
            .collect();
        let meta = v
            .metadata
            .iter()
            .map(|(n, m)| format!("{n}/{:?}/{}/{}", m.kind, m.help, m.unit))
            .collect();
        (series, meta, v.histograms)
    }

    #[test]
    fn reads_what_prost_decodes() {
        let req = request();
        let buf = req.encode_to_vec();
        let view = read_write_request(&buf).unwrap();
        assert_eq!(flatten_view(&view), flatten_prost(&req));
        assert_eq!(view.series.sample_count(), 3);
        assert_eq!(view.histograms, 1);
    }

    /// Every prefix of a valid body: accepted exactly when prost accepts it, with the same
    /// content (a prefix ending on a field boundary is a valid, shorter message).
    #[test]
    fn every_truncation_is_judged_as_prost_judges_it() {
        let buf = request().encode_to_vec();
        for end in 0..buf.len() {
            let cut = &buf[..end];
            match (read_write_request(cut), WriteRequest::decode(cut)) {
                (Ok(v), Ok(p)) => assert_eq!(flatten_view(&v), flatten_prost(&p), "prefix {end}"),
                (Err(_), Err(_)) => {}
                (ours, theirs) => panic!("prefix {end}: ours {ours:?}, prost {theirs:?}"),
            }
        }
    }

    #[test]
    fn unknown_fields_are_skipped_and_bad_ones_refused() {
        // An unknown varint field (15) and fixed32 field (14) before the series.
        let mut buf = vec![15 << 3, 0x96, 0x01, (14 << 3) | 5, 1, 2, 3, 4];
        buf.extend(request().encode_to_vec());
        let view = read_write_request(&buf).unwrap();
        assert_eq!(flatten_view(&view), flatten_prost(&request()));

        // Field 1 (timeseries) as a varint.
        let e = read_write_request(&[1 << 3, 1]).unwrap_err();
        assert!(e.what.contains("wire type"), "{e}");
        // A label name that is not UTF-8 is left to the caller (prost refuses it).
        let bad = [0x0a, 6, 0x0a, 4, 0x0a, 2, 0xff, 0xfe];
        let view = read_write_request(&bad).unwrap();
        assert!(WriteRequest::decode(&bad[..]).is_err());
        assert!(
            view.series.is_empty(),
            "a series without samples is dropped"
        );
        let with_sample = [
            0x0a, 17, 0x0a, 4, 0x0a, 2, 0xff, 0xfe, 0x12, 9, 0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f,
        ];
        let view = read_write_request(&with_sample).unwrap();
        let (pairs, samples) = view.series.series().next().unwrap();
        assert_eq!(pairs, [(&[0xff, 0xfe][..], &b""[..])]);
        assert_eq!(samples[0].v, 1.0);
        // A group (wire type 3).
        assert!(read_write_request(&[(9 << 3) | 3]).is_err());
        // A length beyond the body.
        assert!(
            read_write_request(&[0x0a, 0x7f])
                .unwrap_err()
                .what
                .contains("past the end")
        );
        // Field number 0.
        assert!(
            read_write_request(&[0x02, 0])
                .unwrap_err()
                .what
                .contains("field number")
        );
        // An overlong varint.
        assert!(
            read_write_request(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f
            ])
            .is_err()
        );
    }
}
