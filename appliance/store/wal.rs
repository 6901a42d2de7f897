//! The block log: each flush's block (the stream bytes every open chunk of a partition
//! gained) appended to a small file beside the partition, instead of a redb commit.
//!
//! Why: a durable redb commit writes ~32-50 KB however little it carries (the COW path
//! from leaf to root, the table tree, the freed-page tree, the allocator state of
//! quick-repair and the header: 8-12 pages of 4 KiB), and a flush every 10 s carries a few
//! KB. Appending the same bytes to a log and `fdatasync`ing it dirties only the pages the
//! record touches. redb is then written only when chunks seal (every ~120 samples of a
//! series), which is where its B-tree earns its keep.
//!
//! ```text
//! raw/<partition-start-ms>.<first-seq>.log      segments of one partition, by first seq
//!   header  = "PKTBLOG1"                           8 bytes, version in the magic
//!   record  = len:u32 | crc:u32 | seq:u64 | block  little-endian; len = 8 + block length,
//!                                                  crc = CRC-32C of seq bytes and block
//! ```
//!
//! A record is durable once `fdatasync` returns, and only then does the flush count its
//! samples as flushed. A crash during an append leaves a torn last record: it is skipped
//! (with a warning) when the segment is read, never cut off, and appends go to a new
//! segment. A bad record followed by more data is damage and fails the open. A segment is deleted when none of its records has a piece of an
//! open chunk left (every such chunk sealed into redb, whose commit comes first).

use super::StoreError;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"PKTBLOG1";
const RECORD_HEAD: usize = 16;
/// A new segment starts when the active one is larger than this, so that a segment whose
/// chunks all sealed can be deleted while newer ones live on.
pub const SEGMENT_BYTES: u64 = 1 << 20;
/// Records larger than this are refused as damage (a block holds one flush of one day).
const MAX_RECORD: usize = 1 << 30;

/// CRC-32C (Castagnoli), bitwise-table form; small and fast enough for a few KB a flush.
fn crc32c(parts: &[&[u8]]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0x82F6_3B78 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    let mut c = !0u32;
    for p in parts {
        for &b in *p {
            c = table[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
        }
    }
    !c
}

pub fn segment_path(dir: &Path, partition_start: i64, first_seq: u64) -> PathBuf {
    dir.join(super::partition::RAW_DIR)
        .join(format!("{partition_start}.{first_seq}.log"))
}

/// Parses `<start>.<first-seq>.log` into (partition index, first seq).
pub fn parse_segment_name(name: &str) -> Option<(i64, u64)> {
    let stem = name.strip_suffix(".log")?;
    let (start, first) = stem.rsplit_once('.')?;
    let pidx = super::partition::parse_partition_name(&format!("{start}.redb"))?;
    Some((pidx, first.parse().ok()?))
}

/// The log segments under `dir/raw`, by partition, each sorted by first seq.
pub fn list(dir: &Path) -> Result<BTreeMap<i64, Vec<(u64, PathBuf)>>, StoreError> {
    let raw = dir.join(super::partition::RAW_DIR);
    let mut out: BTreeMap<i64, Vec<(u64, PathBuf)>> = BTreeMap::new();
    if !raw.is_dir() {
        return Ok(out);
    }
    for entry in std::fs::read_dir(&raw).map_err(|e| StoreError::io(&raw, e))? {
        let entry = entry.map_err(|e| StoreError::io(&raw, e))?;
        if let Some((pidx, first)) = entry.file_name().to_str().and_then(parse_segment_name) {
            out.entry(pidx).or_default().push((first, entry.path()));
        }
    }
    for v in out.values_mut() {
        v.sort();
    }
    Ok(out)
}

/// What reading a segment found.
#[derive(Debug, Default)]
pub struct SegmentRead {
    pub records: Vec<(u64, Vec<u8>)>,
    /// Length of the valid prefix (header and whole records).
    pub good_len: u64,
    /// Bytes after it: a torn last record.
    pub torn: u64,
}

/// Reads every record of a segment. A bad last record is a torn append (reported in
/// `torn`); a bad record with data after it is damage.
pub fn read_segment(path: &Path) -> Result<SegmentRead, StoreError> {
    let damaged = |detail: String| StoreError::Damaged {
        path: path.to_owned(),
        detail,
    };
    let mut buf = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut buf))
        .map_err(|e| StoreError::io(path, e))?;
    let mut out = SegmentRead::default();
    if buf.len() < MAGIC.len() {
        // Created but the header never made it to disk: nothing was ever acknowledged.
        out.torn = buf.len() as u64;
        return Ok(out);
    }
    if &buf[..MAGIC.len()] != MAGIC {
        return Err(damaged("not a Picket block log (bad magic)".into()));
    }
    let mut pos = MAGIC.len();
    out.good_len = pos as u64;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let whole = rest.len() >= RECORD_HEAD && {
            let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            (8..=MAX_RECORD).contains(&len) && rest.len() >= 8 + len
        };
        if !whole {
            out.torn = rest.len() as u64;
            break;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        let body = &rest[8..8 + len];
        if crc32c(&[body]) != crc {
            if pos + 8 + len == buf.len() {
                out.torn = rest.len() as u64;
                break;
            }
            return Err(damaged(format!(
                "record at byte {pos} fails its checksum and more records follow"
            )));
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&body[..8]);
        out.records
            .push((u64::from_le_bytes(seq), body[8..].to_vec()));
        pos += 8 + len;
        out.good_len = pos as u64;
    }
    Ok(out)
}

/// One segment the writer knows: its seq range and, for the active one, the open file.
#[derive(Debug)]
pub struct Segment {
    pub first_seq: u64,
    pub last_seq: u64,
    pub path: PathBuf,
    pub len: u64,
    file: Option<File>,
}

/// The segments of one partition, oldest first; the last one is appended to.
#[derive(Debug, Default)]
pub struct PartLog {
    pub segments: Vec<Segment>,
}

impl PartLog {
    /// Registers a segment found at open. One with a torn tail is never appended to
    /// again (its torn bytes stay as they are; readers skip them).
    pub fn push_existing(&mut self, first_seq: u64, last_seq: u64, path: PathBuf, torn: bool) {
        self.segments.push(Segment {
            first_seq,
            last_seq,
            path,
            len: if torn { u64::MAX } else { 0 },
            file: None,
        });
        if let Some(s) = self.segments.last_mut()
            && !torn
        {
            s.len = std::fs::metadata(&s.path).map_or(u64::MAX, |m| m.len());
        }
    }

    /// Appends one record and makes it durable. On failure the segment is cut back to
    /// where it was (or, if even that fails, no longer appended to), so a later append
    /// never follows garbage.
    pub fn append(
        &mut self,
        dir: &Path,
        partition_start: i64,
        seq: u64,
        block: &[u8],
    ) -> Result<(), StoreError> {
        let need_new = self.segments.last().is_none_or(|s| s.len >= SEGMENT_BYTES);
        if need_new {
            self.segments
                .push(create_segment(dir, partition_start, seq)?);
        }
        let Some(seg) = self.segments.last_mut() else {
            return Err(StoreError::Other("BUG: no active log segment".into()));
        };
        if seg.file.is_none() {
            let f = OpenOptions::new()
                .append(true)
                .open(&seg.path)
                .map_err(|e| StoreError::io(&seg.path, e))?;
            seg.file = Some(f);
        }
        let mut rec = Vec::with_capacity(RECORD_HEAD + block.len());
        let seq_bytes = seq.to_le_bytes();
        let len = u32::try_from(8 + block.len())
            .ok()
            .filter(|&l| l as usize <= MAX_RECORD)
            .ok_or_else(|| {
                StoreError::Other(format!(
                    "a block of {} bytes is too large for the log",
                    block.len()
                ))
            })?;
        rec.extend_from_slice(&len.to_le_bytes());
        rec.extend_from_slice(&crc32c(&[&seq_bytes, block]).to_le_bytes());
        rec.extend_from_slice(&seq_bytes);
        rec.extend_from_slice(block);
        let Some(f) = seg.file.as_mut() else {
            return Err(StoreError::Other("BUG: log segment not open".into()));
        };
        let written = f.write_all(&rec).and_then(|()| f.sync_data());
        if let Err(e) = written {
            if f.set_len(seg.len).and_then(|()| f.sync_data()).is_err() {
                // (Cutting back our own unacknowledged bytes is safe; only data of a crash
                // is never cut.)
                // Leave the torn record as this segment's last; the next append starts a
                // new segment (reading drops a torn last record).
                seg.len = u64::MAX;
                seg.file = None;
            }
            return Err(StoreError::io(&seg.path, e));
        }
        seg.len += rec.len() as u64;
        seg.last_seq = seq;
        Ok(())
    }

    /// Deletes the segments none of whose records is still live (`firsts` counts, by
    /// record seq, the open chunks whose first piece is in that record; see
    /// [`first_live`]).
    pub fn collect(&mut self, firsts: &BTreeMap<u64, u32>) {
        let live_from = first_live(firsts);
        self.segments.retain(|s| {
            let alive = live_from.is_some_and(|l| l <= s.last_seq);
            if alive {
                return true;
            }
            match std::fs::remove_file(&s.path) {
                Ok(()) => false,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                Err(e) => {
                    tracing::warn!(path = %s.path.display(), error = %e, "Cannot delete a used-up block log segment; will retry.");
                    true
                }
            }
        });
    }

    /// Deletes every segment (the partition is evicted).
    pub fn remove_all(&mut self) {
        for s in self.segments.drain(..) {
            if let Err(e) = std::fs::remove_file(&s.path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::error!(path = %s.path.display(), error = %e, "Cannot delete a block log segment of an evicted partition; delete it by hand.");
            }
        }
    }
}

/// The first record that may hold a piece of an open chunk: the first with an open chunk's
/// first piece, since a chunk's later pieces all go to later records. Records before it,
/// and segments that end before it, hold nothing that is still needed.
pub fn first_live(firsts: &BTreeMap<u64, u32>) -> Option<u64> {
    firsts.iter().find(|(_, n)| **n > 0).map(|(s, _)| *s)
}

/// Writes a whole segment with `records` (a snapshot's copy) and syncs it.
pub fn write_segment(path: &Path, records: &[(u64, Vec<u8>)]) -> Result<(), StoreError> {
    let mut buf = Vec::from(&MAGIC[..]);
    for (seq, block) in records {
        let seq_bytes = seq.to_le_bytes();
        let len = u32::try_from(8 + block.len()).map_err(|_| {
            StoreError::Other(format!("a block of {} bytes is too large", block.len()))
        })?;
        buf.extend_from_slice(&len.to_le_bytes());
        buf.extend_from_slice(&crc32c(&[&seq_bytes, block]).to_le_bytes());
        buf.extend_from_slice(&seq_bytes);
        buf.extend_from_slice(block);
    }
    let mut f = File::create(path).map_err(|e| StoreError::io(path, e))?;
    f.write_all(&buf)
        .and_then(|()| f.sync_all())
        .map_err(|e| StoreError::io(path, e))
}

fn create_segment(dir: &Path, partition_start: i64, first_seq: u64) -> Result<Segment, StoreError> {
    let path = segment_path(dir, partition_start, first_seq);
    let parent = path.parent().unwrap_or(dir).to_owned();
    std::fs::create_dir_all(&parent).map_err(|e| StoreError::io(&parent, e))?;
    let mut f = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(|e| StoreError::io(&path, e))?;
    f.write_all(MAGIC)
        .and_then(|()| f.sync_data())
        .map_err(|e| StoreError::io(&path, e))?;
    // The new name must survive a power cut before records in it are acknowledged.
    File::open(&parent)
        .and_then(|d| d.sync_all())
        .map_err(|e| StoreError::io(&parent, e))?;
    Ok(Segment {
        first_seq,
        last_seq: first_seq,
        path,
        len: MAGIC.len() as u64,
        file: Some(f),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        assert_eq!(crc32c(&[b"123456789"]), 0xE306_9283);
        assert_eq!(crc32c(&[b"1234", b"56789"]), 0xE306_9283);
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_dropped_but_damage_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartLog::default();
        log.append(dir.path(), 0, 5, b"first").expect("append");
        log.append(dir.path(), 0, 7, b"second").expect("append");
        let path = segment_path(dir.path(), 0, 5);
        assert_eq!(parse_segment_name("0.5.log"), Some((0, 5)));
        assert_eq!(parse_segment_name("-86400000.12.log"), Some((-1, 12)));
        assert_eq!(parse_segment_name("5.redb"), None);
        let r = read_segment(&path).expect("read");
        assert_eq!(
            r.records,
            vec![(5, b"first".to_vec()), (7, b"second".to_vec())]
        );
        assert_eq!(r.torn, 0);
        let full = std::fs::read(&path).expect("read");
        // Any cut inside the last record is a torn tail: the first record survives.
        for cut in full.len() - 13..full.len() {
            std::fs::write(&path, &full[..cut]).expect("write");
            let r = read_segment(&path).expect("torn tail is not damage");
            assert_eq!(r.records, vec![(5, b"first".to_vec())], "cut {cut}");
            assert_eq!(r.good_len + r.torn, cut as u64);
        }
        // A flipped bit in the first record, with the second after it, is damage.
        let mut bad = full.clone();
        bad[MAGIC.len() + RECORD_HEAD] ^= 1;
        std::fs::write(&path, &bad).expect("write");
        assert!(matches!(
            read_segment(&path),
            Err(StoreError::Damaged { .. })
        ));
        // A flipped bit in the last record is indistinguishable from a torn append.
        let mut bad = full;
        let n = bad.len();
        bad[n - 1] ^= 1;
        std::fs::write(&path, &bad).expect("write");
        assert_eq!(read_segment(&path).expect("read").records.len(), 1);
    }

    #[test]
    fn used_up_segments_are_deleted_and_live_ones_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartLog::default();
        let big = vec![0u8; SEGMENT_BYTES as usize];
        log.append(dir.path(), 0, 1, &big).expect("append");
        log.append(dir.path(), 0, 2, b"x").expect("append");
        assert_eq!(log.segments.len(), 2, "a full segment rolls over");
        // A chunk whose first piece is in record 1 may have more in record 2: both stay.
        log.collect(&[(1, 1), (2, 0)].into());
        assert_eq!(log.segments.len(), 2);
        let live: BTreeMap<u64, u32> = [(1, 0), (2, 1)].into();
        log.collect(&live);
        assert_eq!(log.segments.len(), 1);
        assert!(!segment_path(dir.path(), 0, 1).exists());
        assert!(segment_path(dir.path(), 0, 2).exists());
    }
}
