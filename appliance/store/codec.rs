//! Chunk encoding: how one series' samples become the bytes of a chunk value.
//!
//! A chunk value (both a sealed chunk and a small piece use it) is:
//!
//! ```text
//! tag:u8 | count:varint | min_t:zigzag-varint | max_t:zigzag-varint | body
//!   tag 1 (TAG_PLAIN): body = the sample stream below
//!   tag 2 (TAG_LZ4):   body = raw_len:varint | lz4_flex block of the sample stream
//!   tag 4 (TAG_COLUMNS): body = times | value column          (sealed chunks since 2026-11)
//!     times = 0 | timestamp column                         (columns.rs)
//!           | 1 | hash:u64 LE    the timestamp column is the partition's `times` entry
//!                                under this key: series scraped together share one
//! ```
//!
//! Tags 1 and 2 are what sealed chunks were before tag 4; they stay readable. Tag 4 encodes
//! timestamps and values as separate columns (columns.rs): decimals scaled to integers and
//! bit-packed deltas, constants in 9 bytes, a byte-wise XOR for any other float. The
//! timestamp column of a chunk is usually identical for every series of one scrape target
//! (same scrape times, same chunk boundaries, see head.rs), so the writer stores it once
//! per partition, keyed by its xxHash64, and the chunk keeps only the key.
//!
//! A *block* holds what one flush added to the open chunks of one partition: for each
//! series, the stream bytes its open chunk gained since the previous flush. Such a *piece*
//! is decodable only after its predecessors; blocks are read back only at open, in
//! sequence order, to rebuild the head:
//!
//! ```text
//! block = 3 (TAG_BLOCK) | entries:varint | entry*
//! entry = series_id:varint | count:varint | len:varint | len stream bytes
//!
//! block = 5 (TAG_BLOCK_COLUMNS) | n_times:varint | n_times × (len:varint | timestamp column)
//!         | entries:varint | entry*
//! entry = series_id:varint | count:varint | form:u8 | piece
//!   form 0: len:varint | stream bytes              (as in tag 3)
//!   form 1: times:varint | len:varint | value column
//!           the piece's own samples as columns (columns.rs): `times` indexes the block's
//!           timestamp columns, shared by the series scraped together
//! ```
//!
//! A flush with one or two new samples per series writes stream pieces (2-4 bytes a
//! sample); a flush that carries many samples per series (bulk ingest, backfill, a long
//! `flush_interval`) writes column pieces where they are smaller, so the log costs about
//! what sealed chunks do.
//!
//! The sample stream is byte-oriented (no bit packing, so the decoder is short and easy to
//! check) and keeps samples in *arrival* order, which may be out of time order: that order
//! is what makes "the last write of a timestamp wins" decidable inside one chunk.
//!
//! ```text
//! first sample:  t:zigzag-varint | v:8 bytes little-endian (f64 bits)
//! next samples:  dod:zigzag-varint | value
//!     dod   = (t - prev_t) - prev_delta, wrapping (so any i64 round-trips)
//!     value = 0x00                  same bits as the previous value (repeating gauge)
//!           | 0x01 dd:zigzag-varint integer value, delta d = v - prev, dd = d - prev_d
//!           | 0x02                  integer value, same delta as last time (steady counter)
//!           | 0x80|tz<<4|n  n bytes XOR of the f64 bits with the previous bits, with tz
//!                                   zero bytes dropped at the low end (Gorilla, by bytes)
//! ```
//!
//! The integer path applies only when both values are integers of magnitude <= 2^53 that
//! are not -0.0, so `prev + d` is exact in f64 and the bits round-trip (NaN, stale NaN,
//! ±Inf and -0.0 always take the XOR path). A steady counter or a repeating gauge with a
//! regular scrape interval costs 2 bytes per sample before lz4.
//!
//! Decoding never panics on damaged input: every read is bounds-checked and reports
//! [`CodecError`].

use super::columns;
use crate::model::Sample;

/// Uncompressed sample stream.
pub const TAG_PLAIN: u8 = 1;
/// lz4_flex block-compressed sample stream.
pub const TAG_LZ4: u8 = 2;

/// A block of pieces of open chunks (only in the `blocks` table).
pub const TAG_BLOCK: u8 = 3;
/// A block whose pieces may be column-encoded (see the module doc).
pub const TAG_BLOCK_COLUMNS: u8 = 5;
const FORM_STREAM: u8 = 0;
const FORM_COLUMNS: u8 = 1;
/// Column-encoded chunk (columns.rs), timestamps inline or shared.
pub const TAG_COLUMNS: u8 = 4;
const TIMES_INLINE: u8 = 0;
const TIMES_SHARED: u8 = 1;

/// Streams shorter than this are stored plain: lz4 cannot win much on them (VM's
/// `minCompressibleBlockSize` idea).
const MIN_COMPRESSIBLE: usize = 64;
/// No sample takes more than this many bytes in the stream (10-byte varint + 1 + 8).
const MAX_SAMPLE_BYTES: usize = 19;
/// Upper bound on the samples of one chunk value that the decoder accepts, so a damaged
/// count cannot make it allocate without bound.
pub const MAX_DECODE_SAMPLES: u32 = 1 << 20;

const INT_LIMIT: f64 = 9_007_199_254_740_992.0; // 2^53

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("damaged chunk: {0}")]
pub struct CodecError(pub &'static str);

// ---- varints -------------------------------------------------------------------------

pub fn put_uvarint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push((x as u8) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

pub fn put_varint(out: &mut Vec<u8>, x: i64) {
    put_uvarint(out, ((x << 1) ^ (x >> 63)) as u64);
}

/// Reads a LEB128 varint at `*pos`, advancing it.
pub fn get_uvarint(src: &[u8], pos: &mut usize) -> Result<u64, CodecError> {
    let mut x: u64 = 0;
    for i in 0..10 {
        let b = *src.get(*pos).ok_or(CodecError("truncated varint"))?;
        *pos += 1;
        if i == 9 && b > 1 {
            return Err(CodecError("varint overflows 64 bits"));
        }
        x |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(x);
        }
    }
    Err(CodecError("varint longer than 10 bytes"))
}

pub fn get_varint(src: &[u8], pos: &mut usize) -> Result<i64, CodecError> {
    let u = get_uvarint(src, pos)?;
    Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
}

fn int_value(v: f64) -> Option<i64> {
    // -0.0 == 0.0 but has other bits: keep it on the XOR path so its bits survive.
    if v.fract() == 0.0 && v.abs() <= INT_LIMIT && !(v == 0.0 && v.is_sign_negative()) {
        Some(v as i64)
    } else {
        None
    }
}

// ---- encoder -------------------------------------------------------------------------

/// Appends samples to a caller-owned stream buffer. Small on purpose: one lives in every
/// open head chunk.
#[derive(Debug, Clone, Default)]
pub struct Encoder {
    count: u32,
    prev_t: i64,
    prev_dt: i64,
    prev_v: u64,
    prev_d: i64,
    min_t: i64,
    max_t: i64,
}

impl Encoder {
    pub fn count(&self) -> u32 {
        self.count
    }
    pub fn min_t(&self) -> i64 {
        self.min_t
    }
    pub fn max_t(&self) -> i64 {
        self.max_t
    }
    /// The time between the last two samples pushed (0 before the second).
    pub fn last_step(&self) -> i64 {
        self.prev_dt
    }

    pub fn push(&mut self, out: &mut Vec<u8>, s: Sample) {
        let bits = s.v.to_bits();
        if self.count == 0 {
            put_varint(out, s.t);
            out.extend_from_slice(&bits.to_le_bytes());
            self.min_t = s.t;
            self.max_t = s.t;
        } else {
            let dt = s.t.wrapping_sub(self.prev_t);
            put_varint(out, dt.wrapping_sub(self.prev_dt));
            self.prev_dt = dt;
            self.min_t = self.min_t.min(s.t);
            self.max_t = self.max_t.max(s.t);
            let prev = f64::from_bits(self.prev_v);
            if bits == self.prev_v {
                out.push(0x00);
            } else if let (Some(a), Some(b)) = (int_value(prev), int_value(s.v)) {
                let d = b - a; // both within 2^53: cannot overflow
                if d == self.prev_d {
                    out.push(0x02);
                } else {
                    out.push(0x01);
                    put_varint(out, d.wrapping_sub(self.prev_d));
                    self.prev_d = d;
                }
            } else {
                let x = bits ^ self.prev_v;
                let tz = (x.trailing_zeros() / 8) as usize;
                let lz = (x.leading_zeros() / 8) as usize;
                let n = 8 - tz - lz;
                out.push(0x80 | ((tz as u8) << 4) | n as u8);
                out.extend_from_slice(&(x >> (tz * 8)).to_le_bytes()[..n]);
            }
        }
        self.prev_t = s.t;
        self.prev_v = bits;
        self.count += 1;
    }

    /// Writes a complete tag 1/2 chunk value (header + body) for the stream `body` this
    /// encoder produced, as sealed chunks were written before tag 4 and rollup columns
    /// still are (rollup.rs). Compresses with lz4 when the stream is large enough and lz4
    /// shrinks it.
    pub fn finish_into(&self, body: &[u8], compress: bool, out: &mut Vec<u8>) {
        let compressed = if compress && body.len() >= MIN_COMPRESSIBLE {
            let c = lz4_flex::block::compress(body);
            (c.len() + 3 < body.len()).then_some(c)
        } else {
            None
        };
        out.push(if compressed.is_some() {
            TAG_LZ4
        } else {
            TAG_PLAIN
        });
        put_uvarint(out, u64::from(self.count));
        put_varint(out, self.min_t);
        put_varint(out, self.max_t);
        match compressed {
            Some(c) => {
                put_uvarint(out, body.len() as u64);
                out.extend_from_slice(&c);
            }
            None => out.extend_from_slice(body),
        }
    }
}

/// Encodes `samples` (in arrival order) as one chunk value.
#[cfg(test)]
pub fn encode_chunk(samples: &[Sample], compress: bool, out: &mut Vec<u8>) {
    let mut enc = Encoder::default();
    let mut body = Vec::with_capacity(samples.len() * 3 + 8);
    for s in samples {
        enc.push(&mut body, *s);
    }
    enc.finish_into(&body, compress, out);
}

/// Where a tag-4 chunk's timestamps are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Times<'a> {
    /// In the chunk value: this timestamp column.
    Inline(&'a [u8]),
    /// In the partition's `times` table under this key.
    Shared(u64),
}

/// The timestamp column of `samples` (arrival order), and its key in a `times` table.
pub fn times_column(samples: &[Sample]) -> (Vec<u8>, u64) {
    let mut col = Vec::with_capacity(16 + samples.len());
    columns::encode_times(samples, &mut col);
    let key = twox_hash::XxHash64::oneshot(0, &col);
    (col, key)
}

/// Encodes `samples` (arrival order, at least one) as a tag-4 chunk value.
pub fn encode_columns(samples: &[Sample], times: Times<'_>, out: &mut Vec<u8>) {
    let (min_t, max_t) = samples.iter().fold((i64::MAX, i64::MIN), |(lo, hi), s| {
        (lo.min(s.t), hi.max(s.t))
    });
    out.push(TAG_COLUMNS);
    put_uvarint(out, samples.len() as u64);
    put_varint(out, min_t);
    put_varint(out, max_t);
    match times {
        Times::Inline(col) => {
            out.push(TIMES_INLINE);
            out.extend_from_slice(col);
        }
        Times::Shared(key) => {
            out.push(TIMES_SHARED);
            out.extend_from_slice(&key.to_le_bytes());
        }
    }
    columns::encode_values(samples, out);
}

/// One series' piece in a block: `count` samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Piece<'a> {
    pub series: u64,
    pub count: u32,
    pub data: PieceData<'a>,
}

/// How a piece holds its samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceData<'a> {
    /// Stream bytes continuing the open chunk's stream (decodable after its predecessors).
    Stream(&'a [u8]),
    /// A timestamp column and a value column of the piece's samples alone.
    Columns { times: &'a [u8], values: &'a [u8] },
}

/// Writes a block of pieces: tag 3 when every piece is a stream, else tag 5.
pub fn encode_block(pieces: &[Piece<'_>], out: &mut Vec<u8>) {
    let columns = pieces
        .iter()
        .any(|p| matches!(p.data, PieceData::Columns { .. }));
    if !columns {
        out.push(TAG_BLOCK);
        put_uvarint(out, pieces.len() as u64);
        for p in pieces {
            if let PieceData::Stream(stream) = p.data {
                put_uvarint(out, p.series);
                put_uvarint(out, u64::from(p.count));
                put_uvarint(out, stream.len() as u64);
                out.extend_from_slice(stream);
            }
        }
        return;
    }
    let mut times: Vec<&[u8]> = Vec::new();
    let mut index: std::collections::HashMap<&[u8], usize> = std::collections::HashMap::new();
    for p in pieces {
        if let PieceData::Columns { times: t, .. } = p.data {
            index.entry(t).or_insert_with(|| {
                times.push(t);
                times.len() - 1
            });
        }
    }
    out.push(TAG_BLOCK_COLUMNS);
    put_uvarint(out, times.len() as u64);
    for t in &times {
        put_uvarint(out, t.len() as u64);
        out.extend_from_slice(t);
    }
    put_uvarint(out, pieces.len() as u64);
    for p in pieces {
        put_uvarint(out, p.series);
        put_uvarint(out, u64::from(p.count));
        match p.data {
            PieceData::Stream(stream) => {
                out.push(FORM_STREAM);
                put_uvarint(out, stream.len() as u64);
                out.extend_from_slice(stream);
            }
            PieceData::Columns { times: t, values } => {
                out.push(FORM_COLUMNS);
                put_uvarint(out, index.get(t).copied().unwrap_or(0) as u64);
                put_uvarint(out, values.len() as u64);
                out.extend_from_slice(values);
            }
        }
    }
}

/// `len` bytes at `*pos`, advancing it.
fn take<'a>(value: &'a [u8], pos: &mut usize, what: &'static str) -> Result<&'a [u8], CodecError> {
    let len = get_uvarint(value, pos)?;
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| pos.checked_add(l))
        .filter(|&e| e <= value.len())
        .ok_or(CodecError(what))?;
    let out = &value[*pos..end];
    *pos = end;
    Ok(out)
}

/// Parses a block, appending its pieces to `out`.
pub fn decode_block<'a>(value: &'a [u8], out: &mut Vec<Piece<'a>>) -> Result<(), CodecError> {
    let tag = value.first().copied();
    if tag != Some(TAG_BLOCK) && tag != Some(TAG_BLOCK_COLUMNS) {
        return Err(CodecError("not a block (unknown tag)"));
    }
    let mut pos = 1;
    let mut times = Vec::new();
    if tag == Some(TAG_BLOCK_COLUMNS) {
        let n = get_uvarint(value, &mut pos)?;
        for _ in 0..n {
            times.push(take(value, &mut pos, "truncated timestamp column")?);
        }
    }
    let n = get_uvarint(value, &mut pos)?;
    for _ in 0..n {
        let series = get_uvarint(value, &mut pos)?;
        let count = get_uvarint(value, &mut pos)?;
        if count == 0 || count > u64::from(MAX_DECODE_SAMPLES) {
            return Err(CodecError("piece sample count out of range"));
        }
        let form = if tag == Some(TAG_BLOCK) {
            FORM_STREAM
        } else {
            let f = *value.get(pos).ok_or(CodecError("truncated piece"))?;
            pos += 1;
            f
        };
        let data = match form {
            FORM_STREAM => PieceData::Stream(take(value, &mut pos, "truncated piece")?),
            FORM_COLUMNS => {
                let i = get_uvarint(value, &mut pos)?;
                let t = usize::try_from(i)
                    .ok()
                    .and_then(|i| times.get(i))
                    .ok_or(CodecError("piece names a missing timestamp column"))?;
                PieceData::Columns {
                    times: t,
                    values: take(value, &mut pos, "truncated piece")?,
                }
            }
            _ => return Err(CodecError("unknown piece form")),
        };
        out.push(Piece {
            series,
            count: count as u32,
            data,
        });
    }
    if pos != value.len() {
        return Err(CodecError("trailing bytes after the last piece"));
    }
    Ok(())
}

/// Encodes `samples` (a piece's, arrival order) as columns: (timestamps, values).
pub fn piece_columns(samples: &[Sample]) -> (Vec<u8>, Vec<u8>) {
    let mut times = Vec::with_capacity(16 + samples.len());
    columns::encode_times(samples, &mut times);
    let mut values = Vec::with_capacity(16 + samples.len());
    columns::encode_values(samples, &mut values);
    (times, values)
}

/// Joins the pieces of one open chunk, in sequence order, back into its samples.
#[derive(Debug, Default)]
pub struct PieceJoiner {
    enc: Encoder,
    scratch: Vec<u8>,
    samples: Vec<Sample>,
    err: Option<CodecError>,
}

impl PieceJoiner {
    /// Adds the next piece (after the first error, nothing more is decoded).
    pub fn add(&mut self, p: &Piece<'_>) {
        if self.err.is_some() {
            return;
        }
        let from = self.samples.len();
        let r = match p.data {
            PieceData::Stream(stream) => {
                decode_stream_after(&self.enc, stream, p.count, &mut self.samples)
            }
            PieceData::Columns { times, values } => {
                let n = p.count as usize;
                let (mut tpos, mut vpos) = (0, 0);
                columns::decode_times(times, &mut tpos, n, &mut self.samples).and_then(|()| {
                    if tpos != times.len() || self.samples.len() != from + n {
                        return Err(CodecError("bad piece timestamp column"));
                    }
                    columns::decode_values(values, &mut vpos, &mut self.samples[from..])?;
                    if vpos != values.len() {
                        return Err(CodecError("trailing bytes after a piece's values"));
                    }
                    Ok(())
                })
            }
        };
        if let Err(e) = r {
            self.err = Some(e);
            return;
        }
        // The next stream piece continues the stream these samples would have made.
        for s in &self.samples[from..] {
            self.enc.push(&mut self.scratch, *s);
            self.scratch.clear();
        }
    }

    /// The samples of every piece added, or the first decoding error.
    pub fn finish(self) -> Result<Vec<Sample>, CodecError> {
        match self.err {
            Some(e) => Err(e),
            None => Ok(self.samples),
        }
    }
}

// ---- decoder -------------------------------------------------------------------------

/// The fixed part of a chunk value, readable without decoding the samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkHeader {
    pub tag: u8,
    pub count: u32,
    pub min_t: i64,
    pub max_t: i64,
    /// Offset of the body in the value.
    body: usize,
}

impl ChunkHeader {
    pub fn parse(value: &[u8]) -> Result<ChunkHeader, CodecError> {
        let tag = *value.first().ok_or(CodecError("empty value"))?;
        if tag != TAG_PLAIN && tag != TAG_LZ4 && tag != TAG_COLUMNS {
            return Err(CodecError(
                "unknown encoding tag (written by a newer Picket?)",
            ));
        }
        let mut pos = 1;
        let count = get_uvarint(value, &mut pos)?;
        if count == 0 || count > u64::from(MAX_DECODE_SAMPLES) {
            return Err(CodecError("sample count out of range"));
        }
        let min_t = get_varint(value, &mut pos)?;
        let max_t = get_varint(value, &mut pos)?;
        if min_t > max_t {
            return Err(CodecError("min_t after max_t"));
        }
        Ok(ChunkHeader {
            tag,
            count: count as u32,
            min_t,
            max_t,
            body: pos,
        })
    }
}

/// The `times` key a chunk value's timestamps are stored under, if they are shared.
pub fn shared_times(value: &[u8]) -> Result<Option<u64>, CodecError> {
    let h = ChunkHeader::parse(value)?;
    if h.tag != TAG_COLUMNS || value.get(h.body) != Some(&TIMES_SHARED) {
        return Ok(None);
    }
    let b = value
        .get(h.body + 1..h.body + 9)
        .ok_or(CodecError("truncated times key"))?;
    let mut le = [0u8; 8];
    le.copy_from_slice(b);
    Ok(Some(u64::from_le_bytes(le)))
}

/// Decodes a complete chunk value whose timestamps are inline (see [`decode_chunk_with`]).
pub fn decode_chunk(value: &[u8], out: &mut Vec<Sample>) -> Result<ChunkHeader, CodecError> {
    decode_chunk_with(value, None, out)
}

/// Decodes a complete chunk value, appending its samples in arrival order to `out`;
/// `times` is the shared timestamp column when [`shared_times`] named one.
pub fn decode_chunk_with(
    value: &[u8],
    times: Option<&[u8]>,
    out: &mut Vec<Sample>,
) -> Result<ChunkHeader, CodecError> {
    let h = ChunkHeader::parse(value)?;
    let body = &value[h.body..];
    if h.tag == TAG_COLUMNS {
        let start = out.len();
        let n = h.count as usize;
        out.reserve(n);
        let mut pos = 1;
        match body.first() {
            Some(&TIMES_INLINE) => columns::decode_times(body, &mut pos, n, out)?,
            Some(&TIMES_SHARED) => {
                pos += 8;
                let col = times.ok_or(CodecError("shared timestamp column missing"))?;
                let mut tpos = 0;
                columns::decode_times(col, &mut tpos, n, out)?;
                if tpos != col.len() {
                    return Err(CodecError("trailing bytes after the timestamp column"));
                }
            }
            _ => return Err(CodecError("bad times form")),
        }
        columns::decode_values(body, &mut pos, &mut out[start..])?;
        if pos != body.len() {
            return Err(CodecError("trailing bytes after the value column"));
        }
        let (lo, hi) = out[start..]
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), s| {
                (lo.min(s.t), hi.max(s.t))
            });
        if lo != h.min_t || hi != h.max_t {
            return Err(CodecError("header times disagree with the samples"));
        }
    } else if h.tag == TAG_LZ4 {
        let mut pos = 0;
        let raw_len = get_uvarint(body, &mut pos)? as usize;
        if raw_len > h.count as usize * MAX_SAMPLE_BYTES {
            return Err(CodecError("uncompressed length out of range"));
        }
        let raw = lz4_flex::block::decompress(&body[pos..], raw_len)
            .map_err(|_| CodecError("lz4 block does not decompress"))?;
        decode_stream(&raw, h.count, out)?;
    } else {
        decode_stream(body, h.count, out)?;
    }
    Ok(h)
}

/// Decodes `count` samples of a bare sample stream (as an [`Encoder`] wrote it).
pub fn decode_stream(src: &[u8], count: u32, out: &mut Vec<Sample>) -> Result<(), CodecError> {
    decode_stream_after(&Encoder::default(), src, count, out)
}

/// Decodes `count` samples of stream bytes that continue a stream in the state `before`
/// (an encoder that pushed the samples preceding them).
pub fn decode_stream_after(
    before: &Encoder,
    src: &[u8],
    count: u32,
    out: &mut Vec<Sample>,
) -> Result<(), CodecError> {
    if count == 0 {
        return Ok(());
    }
    out.reserve(count.min(4096) as usize);
    let mut pos = 0;
    let (mut t, mut bits, mut dt, mut d) =
        (before.prev_t, before.prev_v, before.prev_dt, before.prev_d);
    let mut rest = count;
    if before.count == 0 {
        t = get_varint(src, &mut pos)?;
        let bytes = src
            .get(pos..pos + 8)
            .ok_or(CodecError("truncated first value"))?;
        bits = u64::from_le_bytes(bytes.try_into().map_err(|_| CodecError("first value"))?);
        pos += 8;
        out.push(Sample {
            t,
            v: f64::from_bits(bits),
        });
        (dt, d) = (0, 0);
        rest -= 1;
    }
    for _ in 0..rest {
        dt = dt.wrapping_add(get_varint(src, &mut pos)?);
        t = t.wrapping_add(dt);
        let ctl = *src.get(pos).ok_or(CodecError("truncated value"))?;
        pos += 1;
        match ctl {
            0x00 => {}
            0x01 | 0x02 => {
                if ctl == 0x01 {
                    d = d.wrapping_add(get_varint(src, &mut pos)?);
                }
                let prev = f64::from_bits(bits) as i64;
                bits = (prev.wrapping_add(d) as f64).to_bits();
            }
            c if c & 0x80 != 0 => {
                let tz = usize::from((c >> 4) & 0x07);
                let n = usize::from(c & 0x0f);
                if n == 0 || n + tz > 8 {
                    return Err(CodecError("bad XOR control byte"));
                }
                let xb = src
                    .get(pos..pos + n)
                    .ok_or(CodecError("truncated XOR value"))?;
                pos += n;
                let mut le = [0u8; 8];
                le[..n].copy_from_slice(xb);
                bits ^= u64::from_le_bytes(le) << (tz * 8);
            }
            _ => return Err(CodecError("unknown value control byte")),
        }
        out.push(Sample {
            t,
            v: f64::from_bits(bits),
        });
    }
    if pos != src.len() {
        return Err(CodecError("trailing bytes after the last sample"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{STALE_NAN_BITS, stale_nan};

    fn round_trip(samples: &[Sample], compress: bool) -> Vec<Sample> {
        let mut v = Vec::new();
        encode_chunk(samples, compress, &mut v);
        let mut out = Vec::new();
        let h = decode_chunk(&v, &mut out).expect("decodes");
        assert_eq!(h.count as usize, samples.len());
        out
    }

    fn same_bits(a: &[Sample], b: &[Sample]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.t, y.t);
            assert_eq!(x.v.to_bits(), y.v.to_bits(), "at t={}", x.t);
        }
    }

    #[test]
    fn special_values_and_extreme_timestamps_round_trip_bit_exactly() {
        let vals = [
            0.0,
            -0.0,
            1.0,
            -1.0,
            f64::NAN,
            stale_nan(),
            f64::from_bits(STALE_NAN_BITS ^ 1),
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            9_007_199_254_740_992.0,
            -9_007_199_254_740_992.0,
            9_007_199_254_740_994.0,
            0.1,
            1e300,
            3.0,
            3.0,
            4.0,
            5.0,
        ];
        let ts = [
            i64::MIN,
            i64::MAX,
            0,
            -1,
            1,
            i64::MIN + 1,
            -86_400_000,
            1_700_000_000_000,
            i64::MAX - 1,
        ];
        let samples: Vec<Sample> = vals
            .iter()
            .enumerate()
            .map(|(i, v)| Sample {
                t: ts[i % ts.len()],
                v: *v,
            })
            .collect();
        for compress in [false, true] {
            same_bits(&round_trip(&samples, compress), &samples);
        }
    }

    #[test]
    fn counters_and_repeating_gauges_cost_about_two_bytes_per_sample() {
        let counter: Vec<Sample> = (0..120)
            .map(|i| Sample {
                t: 1_700_000_000_000 + i * 15_000,
                v: (1000 + i * 512) as f64,
            })
            .collect();
        let mut v = Vec::new();
        encode_chunk(&counter, false, &mut v);
        assert!(v.len() < 120 * 2 + 40, "{} bytes", v.len());
        same_bits(&round_trip(&counter, true), &counter);
        let gauge: Vec<Sample> = (0..120)
            .map(|i| Sample {
                t: 1_700_000_000_000 + i * 15_000,
                v: 0.25,
            })
            .collect();
        same_bits(&round_trip(&gauge, true), &gauge);
    }

    #[test]
    fn out_of_order_and_duplicate_timestamps_keep_arrival_order() {
        let s =
            [(10, 1.0), (5, 2.0), (10, 3.5), (-7, 4.0), (10, 4.0)].map(|(t, v)| Sample { t, v });
        same_bits(&round_trip(&s, false), &s);
    }

    #[test]
    fn random_streams_round_trip() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..200 {
            let n = (next() % 200 + 1) as usize;
            let samples: Vec<Sample> = (0..n)
                .map(|_| {
                    let r = next();
                    let v = match r % 5 {
                        0 => f64::from_bits(next()),
                        1 => (next() % 1000) as f64,
                        2 => -((next() % 3) as f64),
                        3 => 0.5,
                        _ => (next() % 100) as f64 / 7.0,
                    };
                    Sample {
                        t: (next() as i64) >> (next() % 64),
                        v,
                    }
                })
                .collect();
            same_bits(&round_trip(&samples, n.is_multiple_of(2)), &samples);
        }
    }

    #[test]
    fn pieces_in_blocks_concatenate_back_into_the_stream() {
        let samples: Vec<Sample> = (0..37)
            .map(|i| Sample {
                t: 1000 * i - (i % 3) * 7,
                v: if i % 4 == 0 { f64::NAN } else { i as f64 },
            })
            .collect();
        let mut enc = Encoder::default();
        let mut body = Vec::new();
        let mut blocks = Vec::new();
        let mut from = (0u32, 0usize);
        for (i, s) in samples.iter().enumerate() {
            enc.push(&mut body, *s);
            if i % 5 == 4 || i == samples.len() - 1 {
                let mut b = Vec::new();
                let other = [9u8, 9, 9];
                encode_block(
                    &[
                        Piece {
                            series: 7,
                            count: 1,
                            data: PieceData::Stream(&other),
                        },
                        Piece {
                            series: 3,
                            count: enc.count() - from.0,
                            data: PieceData::Stream(&body[from.1..]),
                        },
                    ],
                    &mut b,
                );
                blocks.push(b);
                from = (enc.count(), body.len());
            }
        }
        let (mut all, mut n) = (Vec::new(), 0);
        for b in &blocks {
            let mut pieces = Vec::new();
            decode_block(b, &mut pieces).expect("block");
            assert_eq!(pieces.len(), 2);
            let PieceData::Stream(stream) = pieces[1].data else {
                panic!("a stream piece")
            };
            all.extend_from_slice(stream);
            n += pieces[1].count;
            for cut in 0..b.len() {
                assert!(decode_block(&b[..cut], &mut Vec::new()).is_err());
            }
        }
        let mut out = Vec::new();
        decode_stream(&all, n, &mut out).expect("decodes");
        same_bits(&out, &samples);
        assert!(decode_block(&[TAG_PLAIN, 1], &mut Vec::new()).is_err());
    }

    /// Encodes as a tag-4 chunk both ways (inline and shared timestamps) and decodes.
    fn columns_round_trip(samples: &[Sample]) -> usize {
        let (col, key) = times_column(samples);
        let mut inline = Vec::new();
        encode_columns(samples, Times::Inline(&col), &mut inline);
        let mut out = Vec::new();
        let h = decode_chunk(&inline, &mut out).expect("inline decodes");
        assert_eq!(h.count as usize, samples.len());
        same_bits(&out, samples);
        assert_eq!(shared_times(&inline), Ok(None));
        let mut shared = Vec::new();
        encode_columns(samples, Times::Shared(key), &mut shared);
        assert_eq!(shared_times(&shared), Ok(Some(key)));
        assert!(decode_chunk(&shared, &mut Vec::new()).is_err());
        out.clear();
        decode_chunk_with(&shared, Some(&col), &mut out).expect("shared decodes");
        same_bits(&out, samples);
        if samples.len() > 64 {
            return inline.len();
        }
        for cut in 0..inline.len() {
            assert!(decode_chunk(&inline[..cut], &mut Vec::new()).is_err());
        }
        for i in 0..inline.len() {
            let mut w = inline.clone();
            w[i] ^= 0x5a;
            let _ = decode_chunk(&w, &mut Vec::new());
        }
        inline.len()
    }

    #[test]
    fn column_chunks_round_trip_random_and_adversarial_floats_bit_exactly() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let special = [
            0.0,
            -0.0,
            f64::NAN,
            f64::from_bits(0x7ff8_0000_0000_0001),
            f64::from_bits(0xfff0_0000_0000_0001),
            stale_nan(),
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MIN_POSITIVE,
            f64::from_bits(1),
            f64::from_bits(0x000f_ffff_ffff_ffff),
            f64::MAX,
            f64::MIN,
            9_007_199_254_740_993.0,
            9.2e18,
            -9.3e18,
            0.1,
            1.0 / 3.0,
        ];
        for round in 0..300 {
            let n = (next() % if round % 3 == 0 { 500 } else { 60 } + 1) as usize;
            let kind = round % 6;
            let mut t = (next() as i64) >> (next() % 64);
            let mut v = (next() % 1_000_000) as f64;
            let samples: Vec<Sample> = (0..n)
                .map(|i| {
                    t = t.wrapping_add(match kind {
                        0 => 15_000,
                        1 => 15_000 + (next() % 25) as i64 - 12,
                        2 => (next() as i64) >> (next() % 64),
                        _ => 1000 * (next() % 3) as i64 - 1000,
                    });
                    v = match kind {
                        0 => v + (next() % 4096) as f64,
                        1 => ((next() % 10_000) as f64) / 100.0,
                        2 => special[(next() as usize) % special.len()],
                        3 => f64::from_bits(next()),
                        4 if i % 50 == 7 => stale_nan(),
                        _ => (v * 1e3 + (next() % 7) as f64).round() / 1e3,
                    };
                    Sample { t, v }
                })
                .collect();
            columns_round_trip(&samples);
        }
        for v in special {
            columns_round_trip(&[Sample { t: i64::MIN, v }]);
            columns_round_trip(&[
                Sample { t: i64::MAX, v },
                Sample {
                    t: i64::MIN,
                    v: 1.5,
                },
            ]);
        }
    }

    #[test]
    fn node_exporter_like_columns_are_small() {
        // A counter with noisy integer increments, jittered 15 s scrapes: the timestamps
        // (shared between series in a partition) and the values are priced separately.
        let mut x: u64 = 99;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut v = 1e9;
        let samples: Vec<Sample> = (0..480)
            .map(|i| {
                v += (next() % 16) as f64;
                Sample {
                    t: 1_795_132_800_199 + i * 15_000 + (next() % 7) as i64 - 3,
                    v,
                }
            })
            .collect();
        let (col, _) = times_column(&samples);
        // dods within ±12 ms: 5 bits each.
        assert!(
            col.len() <= 478 * 5 / 8 + 16,
            "timestamps {} bytes",
            col.len()
        );
        let mut shared = Vec::new();
        encode_columns(&samples, Times::Shared(1), &mut shared);
        assert!(
            shared.len() < 480 * 5 / 8 + 40,
            "values {} bytes",
            shared.len()
        );
        let constant: Vec<Sample> = samples.iter().map(|s| Sample { t: s.t, v: 0.25 }).collect();
        let mut c = Vec::new();
        encode_columns(&constant, Times::Shared(1), &mut c);
        assert!(c.len() <= 33, "constant {} bytes", c.len());
        columns_round_trip(&samples);
        columns_round_trip(&constant);
    }

    #[test]
    fn stream_and_column_pieces_join_back_into_the_samples() {
        let samples: Vec<Sample> = (0..200)
            .map(|i| Sample {
                t: 1_795_132_800_000 + i * 15_000 + (i * 7 % 5),
                v: match i % 50 {
                    13 => stale_nan(),
                    27 => -0.0,
                    _ => (i * i) as f64 / 100.0,
                },
            })
            .collect();
        // Pieces of 1, 30, 2, 60, 7 and the rest samples; every other one as columns.
        let cuts = [0usize, 1, 31, 33, 93, 100, 200];
        let mut enc = Encoder::default();
        let mut body = Vec::new();
        let mut blocks = Vec::new();
        for (k, w) in cuts.windows(2).enumerate() {
            let from = body.len();
            for s in &samples[w[0]..w[1]] {
                enc.push(&mut body, *s);
            }
            let cols = piece_columns(&samples[w[0]..w[1]]);
            let other = piece_columns(&samples[..3]);
            let data = if k % 2 == 1 {
                PieceData::Columns {
                    times: &cols.0,
                    values: &cols.1,
                }
            } else {
                PieceData::Stream(&body[from..])
            };
            let mut b = Vec::new();
            encode_block(
                &[
                    Piece {
                        series: 9,
                        count: 3,
                        data: PieceData::Columns {
                            times: &other.0,
                            values: &other.1,
                        },
                    },
                    Piece {
                        series: 4,
                        count: (w[1] - w[0]) as u32,
                        data,
                    },
                ],
                &mut b,
            );
            assert_eq!(b[0], TAG_BLOCK_COLUMNS);
            for cut in 0..b.len() {
                assert!(decode_block(&b[..cut], &mut Vec::new()).is_err());
            }
            blocks.push(b);
        }
        let mut joiner = PieceJoiner::default();
        for b in &blocks {
            let mut pieces = Vec::new();
            decode_block(b, &mut pieces).expect("block");
            assert_eq!(pieces[0].series, 9);
            joiner.add(&pieces[1]);
        }
        same_bits(&joiner.finish().expect("joins"), &samples);
    }

    #[test]
    fn damaged_values_are_errors_not_panics() {
        let samples: Vec<Sample> = (0..50)
            .map(|i| Sample {
                t: i * 1000,
                v: i as f64 * 1.5,
            })
            .collect();
        for compress in [false, true] {
            let mut v = Vec::new();
            encode_chunk(&samples, compress, &mut v);
            for cut in 0..v.len() {
                let mut out = Vec::new();
                assert!(decode_chunk(&v[..cut], &mut out).is_err());
            }
            for i in 0..v.len() {
                let mut w = v.clone();
                w[i] ^= 0x5a;
                let mut out = Vec::new();
                let _ = decode_chunk(&w, &mut out);
            }
        }
        assert!(decode_chunk(&[9, 1, 0, 0], &mut Vec::new()).is_err());
    }
}
