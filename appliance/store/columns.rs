//! Column codecs of sealed chunks (chunk tag 4, see codec.rs): a chunk's timestamps and its
//! values are encoded as two separate columns, each picking the cheapest of a few lossless
//! forms for what node-exporter-like series look like.
//!
//! ```text
//! times  = t0:zigzag-varint [dt0:zigzag-varint [packed dods]]      (count known)
//!            dod = (t[i] - t[i-1]) - (t[i-1] - t[i-2]), wrapping: a fixed step is all zeros
//!            and packs into 1 byte; scrape jitter of a few ms into ~5 bits a sample
//! values = 0 | bits:u64 LE                          every value has the same bits
//!        | 1 | k:u8 | n0:zigzag-varint | order:u8 | [d0:zigzag-varint] | packed
//!                                                   decimals: v = n / 10^k exactly (checked
//!                                                   bit for bit at encoding); order 1 packs
//!                                                   the deltas of n, order 2 the deltas of
//!                                                   the deltas (steady counters)
//!        | 2 | v0:u64 LE | xor*                     any float (NaN payloads, stale markers,
//!                                                   -0.0, ±Inf): per value 0x00 (same bits) or
//!                                                   tz<<4|n and n bytes of the XOR with the
//!                                                   previous bits, tz zero bytes dropped
//! packed = w:u8 | ceil(m*w/8) bytes, m values of w bits, LSB first | exceptions
//!            a value >= 2^w - 1 is stored as the escape 2^w - 1 and, in order after the
//!            bits, as a uvarint (w = 64: no escape; w = 0: all values are 0). The encoder
//!            picks the w that makes the whole thing smallest.
//! ```
//!
//! Every sequence is in arrival order (timestamps may go backwards); all arithmetic wraps,
//! so any i64 timestamp and any decimal up to 2^63 round-trips. Decoding never panics on
//! damaged input.

use super::codec::{CodecError, get_uvarint, get_varint, put_uvarint, put_varint};
use crate::model::Sample;

const VALUES_CONST: u8 = 0;
const VALUES_DECIMAL: u8 = 1;
const VALUES_XOR: u8 = 2;
/// Decimal scales tried: node_exporter prints at most 9 decimals for the values it scales
/// (durations in ns); more would rarely round-trip anyway.
const MAX_DECIMALS: u8 = 9;
const POW10: [f64; 10] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

fn zigzag(x: i64) -> u64 {
    ((x << 1) ^ (x >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

fn bit_len(u: u64) -> usize {
    64 - u.leading_zeros() as usize
}

/// Bytes [`pack`] would write for these values at width `w`.
fn packed_size(hist: &[usize; 65], ones: &[usize; 65], n: usize, w: usize) -> Option<usize> {
    if w == 64 {
        return Some(1 + n * 8);
    }
    // Values of bit length > w, plus those exactly 2^w - 1 (the escape), are exceptions.
    let mut exc_bytes = 0;
    for (len, &c) in hist.iter().enumerate().skip(w + 1) {
        exc_bytes += c * len.div_ceil(7).max(1);
    }
    if w > 0 {
        exc_bytes += ones[w] * w.div_ceil(7);
    } else if exc_bytes > 0 {
        return None;
    }
    Some(1 + (n * w).div_ceil(8) + exc_bytes)
}

/// Appends `us` bit-packed at the width that gives the fewest bytes.
pub fn pack(us: &[u64], out: &mut Vec<u8>) {
    let mut hist = [0usize; 65];
    let mut ones = [0usize; 65];
    for &u in us {
        hist[bit_len(u)] += 1;
        if u != 0 && u.wrapping_add(1) & u == 0 {
            ones[bit_len(u)] += 1;
        }
    }
    let n = us.len();
    let w = (0..=64)
        .filter_map(|w| packed_size(&hist, &ones, n, w).map(|s| (s, w)))
        .min()
        .map_or(64, |(_, w)| w);
    out.push(w as u8);
    if w == 0 {
        return;
    }
    let esc = if w == 64 { u64::MAX } else { (1u64 << w) - 1 };
    let mut acc: u128 = 0;
    let mut nbits = 0usize;
    for &u in us {
        let x = if w < 64 && u >= esc { esc } else { u };
        acc |= u128::from(x) << nbits;
        nbits += w;
        while nbits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            nbits -= 8;
        }
    }
    if nbits > 0 {
        out.push(acc as u8);
    }
    if w < 64 {
        for &u in us {
            if u >= esc {
                put_uvarint(out, u);
            }
        }
    }
}

/// Reads `n` values written by [`pack`] at `*pos`, appending them to `out`.
pub fn unpack(src: &[u8], pos: &mut usize, n: usize, out: &mut Vec<u64>) -> Result<(), CodecError> {
    let w = usize::from(*src.get(*pos).ok_or(CodecError("truncated packed width"))?);
    *pos += 1;
    if w > 64 {
        return Err(CodecError("packed width above 64"));
    }
    let start = out.len();
    if w == 0 {
        out.resize(start + n, 0);
        return Ok(());
    }
    let nbytes = n
        .checked_mul(w)
        .map(|b| b.div_ceil(8))
        .ok_or(CodecError("packed length overflows"))?;
    let bits = src
        .get(*pos..)
        .and_then(|s| s.get(..nbytes))
        .ok_or(CodecError("truncated packed values"))?;
    *pos += nbytes;
    let mask: u128 = if w == 64 {
        u128::from(u64::MAX)
    } else {
        (1u128 << w) - 1
    };
    let mut acc: u128 = 0;
    let mut have = 0usize;
    let mut bytes = bits.iter();
    for _ in 0..n {
        while have < w {
            let b = *bytes.next().ok_or(CodecError("truncated packed values"))?;
            acc |= u128::from(b) << have;
            have += 8;
        }
        out.push((acc & mask) as u64);
        acc >>= w;
        have -= w;
    }
    if w < 64 {
        let esc = (1u64 << w) - 1;
        for u in &mut out[start..] {
            if *u == esc {
                let x = get_uvarint(src, pos)?;
                if x < esc {
                    return Err(CodecError("packed exception below its escape"));
                }
                *u = x;
            }
        }
    }
    Ok(())
}

// ---- timestamps ----------------------------------------------------------------------

/// Appends the timestamp column of `samples`.
pub fn encode_times(samples: &[Sample], out: &mut Vec<u8>) {
    let Some(first) = samples.first() else { return };
    put_varint(out, first.t);
    if samples.len() < 2 {
        return;
    }
    let dt0 = samples[1].t.wrapping_sub(first.t);
    put_varint(out, dt0);
    if samples.len() < 3 {
        return;
    }
    let mut prev_dt = dt0;
    let dods: Vec<u64> = samples
        .windows(2)
        .skip(1)
        .map(|w| {
            let dt = w[1].t.wrapping_sub(w[0].t);
            let dod = dt.wrapping_sub(prev_dt);
            prev_dt = dt;
            zigzag(dod)
        })
        .collect();
    pack(&dods, out);
}

/// Reads a timestamp column of `n` samples at `*pos` into `out` (values left 0).
pub fn decode_times(
    src: &[u8],
    pos: &mut usize,
    n: usize,
    out: &mut Vec<Sample>,
) -> Result<(), CodecError> {
    if n == 0 {
        return Ok(());
    }
    let mut t = get_varint(src, pos)?;
    out.push(Sample { t, v: 0.0 });
    if n < 2 {
        return Ok(());
    }
    let mut dt = get_varint(src, pos)?;
    t = t.wrapping_add(dt);
    out.push(Sample { t, v: 0.0 });
    if n < 3 {
        return Ok(());
    }
    let mut dods = Vec::with_capacity(n - 2);
    unpack(src, pos, n - 2, &mut dods)?;
    for u in dods {
        dt = dt.wrapping_add(unzigzag(u));
        t = t.wrapping_add(dt);
        out.push(Sample { t, v: 0.0 });
    }
    Ok(())
}

// ---- values --------------------------------------------------------------------------

/// The scale `k` and integers `n` with `v == n / 10^k` bit for bit for every value, the
/// smallest such `k`; None when some value is not such a decimal (NaN, ±Inf, -0.0, too many
/// digits, beyond ±2^63).
fn as_decimals(samples: &[Sample], ints: &mut Vec<i64>) -> Option<u8> {
    'scale: for k in 0..=MAX_DECIMALS {
        let p = POW10[usize::from(k)];
        ints.clear();
        for s in samples {
            let x = (s.v * p).round();
            // The bounds also reject NaN and ±Inf.
            if !(x > -9.2e18 && x < 9.2e18) {
                return None;
            }
            let n = x as i64;
            if ((n as f64) / p).to_bits() != s.v.to_bits() {
                continue 'scale;
            }
            ints.push(n);
        }
        return Some(k);
    }
    None
}

/// Appends the value column of `samples` (at least one).
pub fn encode_values(samples: &[Sample], out: &mut Vec<u8>) {
    let Some(first) = samples.first() else { return };
    let bits0 = first.v.to_bits();
    if samples.iter().all(|s| s.v.to_bits() == bits0) {
        out.push(VALUES_CONST);
        out.extend_from_slice(&bits0.to_le_bytes());
        return;
    }
    let mut ints = Vec::with_capacity(samples.len());
    let xor_at = out.len();
    encode_xor(samples, out);
    if let Some(k) = as_decimals(samples, &mut ints) {
        let mut dec = Vec::with_capacity(out.len() - xor_at);
        dec.push(VALUES_DECIMAL);
        dec.push(k);
        put_varint(&mut dec, ints[0]);
        let deltas: Vec<i64> = ints.windows(2).map(|w| w[1].wrapping_sub(w[0])).collect();
        let mut d1 = Vec::new();
        pack(
            &deltas.iter().map(|&d| zigzag(d)).collect::<Vec<_>>(),
            &mut d1,
        );
        let mut d2 = Vec::new();
        if let Some(&first_d) = deltas.first() {
            put_varint(&mut d2, first_d);
            let dd: Vec<u64> = deltas
                .windows(2)
                .map(|w| zigzag(w[1].wrapping_sub(w[0])))
                .collect();
            pack(&dd, &mut d2);
        }
        if d2.len() < d1.len() {
            dec.push(2);
            dec.extend_from_slice(&d2);
        } else {
            dec.push(1);
            dec.extend_from_slice(&d1);
        }
        if dec.len() < out.len() - xor_at {
            out.truncate(xor_at);
            out.extend_from_slice(&dec);
        }
    }
}

fn encode_xor(samples: &[Sample], out: &mut Vec<u8>) {
    out.push(VALUES_XOR);
    let mut prev = samples[0].v.to_bits();
    out.extend_from_slice(&prev.to_le_bytes());
    for s in &samples[1..] {
        let bits = s.v.to_bits();
        let x = bits ^ prev;
        prev = bits;
        if x == 0 {
            out.push(0);
            continue;
        }
        let tz = (x.trailing_zeros() / 8) as usize;
        let lz = (x.leading_zeros() / 8) as usize;
        let n = 8 - tz - lz;
        out.push(((tz as u8) << 4) | n as u8);
        out.extend_from_slice(&(x >> (tz * 8)).to_le_bytes()[..n]);
    }
}

/// Reads a value column at `*pos` into the `v` of `out` (one per sample, already there).
pub fn decode_values(src: &[u8], pos: &mut usize, out: &mut [Sample]) -> Result<(), CodecError> {
    let n = out.len();
    if n == 0 {
        return Ok(());
    }
    let mode = *src.get(*pos).ok_or(CodecError("truncated value column"))?;
    *pos += 1;
    let u64_at = |pos: &mut usize| -> Result<u64, CodecError> {
        let b = src
            .get(*pos..*pos + 8)
            .ok_or(CodecError("truncated value"))?;
        *pos += 8;
        let mut le = [0u8; 8];
        le.copy_from_slice(b);
        Ok(u64::from_le_bytes(le))
    };
    match mode {
        VALUES_CONST => {
            let v = f64::from_bits(u64_at(pos)?);
            for s in out.iter_mut() {
                s.v = v;
            }
        }
        VALUES_DECIMAL => {
            let k = *src.get(*pos).ok_or(CodecError("truncated decimal scale"))?;
            *pos += 1;
            let p = *POW10
                .get(usize::from(k))
                .ok_or(CodecError("decimal scale out of range"))?;
            let mut x = get_varint(src, pos)?;
            let order = *src.get(*pos).ok_or(CodecError("truncated delta order"))?;
            *pos += 1;
            let mut us = Vec::with_capacity(n);
            let mut d = match order {
                1 => {
                    unpack(src, pos, n - 1, &mut us)?;
                    None
                }
                2 if n >= 2 => {
                    let d0 = get_varint(src, pos)?;
                    unpack(src, pos, n - 2, &mut us)?;
                    Some(d0)
                }
                _ => return Err(CodecError("bad delta order")),
            };
            out[0].v = (x as f64) / p;
            for (i, s) in out.iter_mut().enumerate().skip(1) {
                let step = match d.as_mut() {
                    None => unzigzag(us[i - 1]),
                    Some(d) => {
                        if i >= 2 {
                            *d = d.wrapping_add(unzigzag(us[i - 2]));
                        }
                        *d
                    }
                };
                x = x.wrapping_add(step);
                s.v = (x as f64) / p;
            }
        }
        VALUES_XOR => {
            let mut bits = u64_at(pos)?;
            out[0].v = f64::from_bits(bits);
            for s in out.iter_mut().skip(1) {
                let c = *src.get(*pos).ok_or(CodecError("truncated XOR value"))?;
                *pos += 1;
                if c != 0 {
                    let tz = usize::from(c >> 4);
                    let len = usize::from(c & 0x0f);
                    if len == 0 || len + tz > 8 {
                        return Err(CodecError("bad XOR control byte"));
                    }
                    let xb = src
                        .get(*pos..*pos + len)
                        .ok_or(CodecError("truncated XOR value"))?;
                    *pos += len;
                    let mut le = [0u8; 8];
                    le[..len].copy_from_slice(xb);
                    bits ^= u64::from_le_bytes(le) << (tz * 8);
                }
                s.v = f64::from_bits(bits);
            }
        }
        _ => return Err(CodecError("unknown value column form")),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::STALE_NAN_BITS;

    fn rng(seed: u64) -> impl FnMut() -> u64 {
        let mut x = seed | 1;
        move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        }
    }

    #[test]
    fn packing_round_trips_every_width_with_exceptions() {
        let mut next = rng(7);
        for n in [0usize, 1, 2, 7, 8, 9, 63, 64, 65, 200, 481] {
            for shape in 0..6 {
                let us: Vec<u64> = (0..n)
                    .map(|i| match shape {
                        0 => 0,
                        1 => next() % 3,
                        2 => next() >> (next() % 64),
                        3 => u64::MAX - (i as u64 % 2),
                        4 => (1u64 << (i % 64)) - 1,
                        _ => {
                            if i % 17 == 0 {
                                next()
                            } else {
                                next() % 40
                            }
                        }
                    })
                    .collect();
                let mut buf = vec![0xAA];
                pack(&us, &mut buf);
                buf.push(0x55);
                let mut pos = 1;
                let mut got = Vec::new();
                unpack(&buf, &mut pos, n, &mut got).expect("unpacks");
                assert_eq!(got, us, "n={n} shape={shape}");
                assert_eq!(buf[pos], 0x55, "consumed exactly what was packed");
            }
        }
        // Mostly small values with rare big ones: the narrow width plus exceptions wins.
        let us: Vec<u64> = (0..480)
            .map(|i| if i == 100 { 1 << 40 } else { i % 30 })
            .collect();
        let mut buf = Vec::new();
        pack(&us, &mut buf);
        assert_eq!(buf[0], 5);
        assert!(buf.len() < 320, "{}", buf.len());
    }

    #[test]
    fn decimals_pick_the_smallest_exact_scale() {
        let s = |v: f64| Sample { t: 0, v };
        let mut ints = Vec::new();
        assert_eq!(as_decimals(&[s(1.0), s(12345.0)], &mut ints), Some(0));
        assert_eq!(as_decimals(&[s(0.25), s(1.5)], &mut ints), Some(2));
        assert_eq!(ints, vec![25, 150]);
        assert_eq!(as_decimals(&[s(123456.789), s(0.001)], &mut ints), Some(3));
        assert_eq!(as_decimals(&[s(0.000_000_123)], &mut ints), Some(9));
        for bad in [
            f64::NAN,
            f64::INFINITY,
            -0.0,
            1.0 / 3.0,
            1e300,
            f64::MIN_POSITIVE,
        ] {
            assert_eq!(as_decimals(&[s(1.0), s(bad)], &mut ints), None, "{bad}");
        }
        assert_eq!(
            as_decimals(&[s(f64::from_bits(STALE_NAN_BITS))], &mut ints),
            None
        );
    }
}
