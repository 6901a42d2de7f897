//! The in-memory head: per series, the chunks not yet written as sealed chunks.
//!
//! Each series keeps at most one *open* chunk per partition (a compressed sample stream
//! plus a small [`Encoder`]), and any chunks that sealed since the last flush. An open chunk
//! remembers how many of its samples are already on disk as pieces in the block log
//! (`flushed`) and the sequence number of the record holding its first piece: its later
//! pieces are all in later records, so that one number tells the writer which log segments
//! the chunk still needs (wal.rs). Readers always take the whole head chunk (it is the
//! newest data of its series and partition) and skip the pieces on disk.

use super::codec::{self, CodecError, Encoder};
use super::partition::partition_index;
use crate::model::{Labels, Metadata, Sample, hash_pairs};
use foldhash::fast::RandomState;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// Chunks cover aligned windows of sample time: a chunk seals when a sample of a later
/// window arrives (or at [`CHUNK_SAMPLES`]). Aligned, so that every series scraped at the
/// same times cuts its chunks at the same samples and their timestamp columns are equal,
/// stored once per partition (codec.rs). 2 h is 480 samples at a 15 s interval: big enough
/// that a chunk's key and header (~70 bytes) cost ~0.15 bytes a sample, small enough that
/// the open chunks (~3 bytes a sample in the head) stay a few MB for thousands of series.
pub const CHUNK_WINDOW_MS: i64 = 2 * 3_600_000;
/// Most samples in one chunk (fast scrape intervals).
pub const CHUNK_SAMPLES: u32 = 1024;

/// The most stream bytes one sample can take (codec.rs: a varint time delta of up to 10
/// bytes, a tag, and a varint of up to 10 bytes or at most 8 value bytes).
const MAX_SAMPLE_BYTES: usize = 21;

fn window_of(t: i64) -> i64 {
    t.div_euclid(CHUNK_WINDOW_MS)
}

/// Where the window of a chunk whose first sample is at `min_t` ends (exclusive).
pub fn window_end(min_t: i64) -> i64 {
    window_of(min_t)
        .saturating_add(1)
        .saturating_mul(CHUNK_WINDOW_MS)
}

#[derive(Debug)]
pub struct HeadChunk {
    /// Unique within the process, to find the chunk again after a flush committed.
    pub id: u64,
    /// Partition index (see [`partition_index`]).
    pub partition: i64,
    pub enc: Encoder,
    pub body: Vec<u8>,
    /// Samples already on disk as pieces (a prefix of the stream), and their stream bytes.
    pub flushed: u32,
    pub flushed_bytes: u32,
    /// Sequence number of the log record with the chunk's first piece, if it has one.
    pub first_piece: Option<u64>,
    pub sealed: bool,
    /// Flush generation of the last append, to seal chunks of series that went quiet.
    pub last_append_gen: u64,
}

impl HeadChunk {
    fn new(id: u64, partition: i64, gen_: u64) -> HeadChunk {
        HeadChunk {
            id,
            partition,
            enc: Encoder::default(),
            body: Vec::new(),
            flushed: 0,
            flushed_bytes: 0,
            first_piece: None,
            sealed: false,
            last_append_gen: gen_,
        }
    }

    pub fn push(&mut self, s: Sample) {
        // Grow by an eighth rather than double: a stream lives for a whole window (480
        // samples at 15 s), and doubling would leave a quarter of every series' stream
        // unused on average. Reallocations stay logarithmic in the stream's size.
        if self.body.capacity() - self.body.len() < MAX_SAMPLE_BYTES {
            self.body
                .reserve_exact(self.body.len() / 8 + 2 * MAX_SAMPLE_BYTES);
        }
        self.enc.push(&mut self.body, s);
    }

    pub fn count(&self) -> u32 {
        self.enc.count()
    }

    pub fn decode(&self, out: &mut Vec<Sample>) -> Result<(), CodecError> {
        codec::decode_stream(&self.body, self.count(), out)
    }

    /// Whether any sample of this chunk may fall in `[start, end]`.
    pub fn overlaps(&self, start: i64, end: i64) -> bool {
        self.count() > 0 && self.enc.min_t() <= end && self.enc.max_t() >= start
    }
}

#[derive(Debug)]
pub struct SeriesHead {
    pub labels: Labels,
    /// Chunks in creation order; for one partition that is arrival order.
    pub chunks: Vec<HeadChunk>,
}

/// The head's series by id. Ids are given out densely from 1, so a vector indexed by id
/// finds a series with one bounds check where a hash map took a hash and a probe (for every
/// appended sample) and more memory per series.
#[derive(Debug, Default)]
pub struct SeriesTable {
    slots: Vec<Option<SeriesHead>>,
    len: usize,
}

/// Most ids a series table leaves unused below a new one (ids are dense; an index whose
/// ids jump further is damaged, and would otherwise make the table allocate the gap).
pub const MAX_ID_GAP: u64 = 1 << 20;

impl SeriesTable {
    pub fn get(&self, id: &u64) -> Option<&SeriesHead> {
        self.slots.get(usize::try_from(*id).ok()?)?.as_ref()
    }

    pub fn get_mut(&mut self, id: &u64) -> Option<&mut SeriesHead> {
        self.slots.get_mut(usize::try_from(*id).ok()?)?.as_mut()
    }

    pub fn contains_key(&self, id: &u64) -> bool {
        self.get(id).is_some()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether `id` is within [`MAX_ID_GAP`] of the ids given out so far.
    pub fn id_in_range(&self, id: u64) -> bool {
        id < self.slots.len() as u64 + MAX_ID_GAP
    }

    pub fn values(&self) -> impl Iterator<Item = &SeriesHead> {
        self.slots.iter().flatten()
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut SeriesHead> {
        self.slots.iter_mut().flatten()
    }

    /// Every id, ascending.
    pub fn ids(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter().map(|(id, _)| id)
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, &SeriesHead)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(id, s)| Some((id as u64, s.as_ref()?)))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u64, &mut SeriesHead)> {
        self.slots
            .iter_mut()
            .enumerate()
            .filter_map(|(id, s)| Some((id as u64, s.as_mut()?)))
    }

    fn insert(&mut self, id: u64, s: SeriesHead) {
        let i = usize::try_from(id).expect("series ids fit in memory (id_in_range)");
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, || None);
        }
        if self.slots[i].replace(s).is_none() {
            self.len += 1;
        }
    }
}

/// Adds a chunk growing the list by one only: a series nearly always holds one or two, and
/// `Vec`'s first growth (to four) would cost every series three unused chunks' worth.
fn push_chunk(chunks: &mut Vec<HeadChunk>, c: HeadChunk) {
    chunks.reserve_exact(1);
    chunks.push(c);
}

/// Everything the head holds; lives behind one `RwLock` in the store.
#[derive(Debug, Default)]
pub struct Head {
    pub series: SeriesTable,
    /// Series ids by [`hash_pairs`] of their labels. Keyed by the hash rather than the
    /// `Labels`, so that a writer holding only pairs borrowed from a request can find its
    /// series without building (allocating) a label set; equal hashes of different sets
    /// go to `hash_collisions`.
    by_hash: HashMap<u64, u64, RandomState>,
    hash_collisions: HashMap<u64, Vec<u64>, RandomState>,
    /// Seeded per process, so label sets chosen to collide cannot be sent from outside.
    label_hasher: RandomState,
    pub next_series_id: u64,
    /// Series created since the last index commit, in id order.
    pub pending_series: Vec<u64>,
    pub metadata: HashMap<String, Metadata>,
    pub pending_metadata: Vec<String>,
    next_chunk_id: u64,
    /// Incremented by every flush.
    pub flush_gen: u64,
    pub samples_appended: u64,
}

impl Head {
    /// The hash [`Head::find`] takes, of label pairs in label order.
    pub fn hash_of<'a>(&self, pairs: impl IntoIterator<Item = (&'a [u8], &'a [u8])>) -> u64 {
        hash_pairs(&self.label_hasher, pairs)
    }

    /// The id of the series whose labels are exactly `pairs` (in label order), if known.
    pub fn find(&self, hash: u64, pairs: &[(&[u8], &[u8])]) -> Option<u64> {
        self.find_by(hash, |l| l.equals_pairs(pairs))
    }

    fn find_by(&self, hash: u64, is: impl Fn(&Labels) -> bool) -> Option<u64> {
        let first = *self.by_hash.get(&hash)?;
        let more = self.hash_collisions.get(&hash).into_iter().flatten();
        std::iter::once(&first)
            .chain(more)
            .copied()
            .find(|id| self.series.get(id).is_some_and(|s| is(&s.labels)))
    }

    /// The id of `labels`, creating the series (pending for the index) if it is new.
    pub fn series_id(&mut self, labels: &Labels) -> u64 {
        let hash = labels.hash_with(&self.label_hasher);
        if let Some(id) = self.find_by(hash, |l| l == labels) {
            return id;
        }
        let id = self.next_series_id;
        self.next_series_id += 1;
        self.insert_series(hash, id, labels.interned());
        self.pending_series.push(id);
        id
    }

    fn insert_series(&mut self, hash: u64, id: u64, labels: Labels) {
        match self.by_hash.entry(hash) {
            Entry::Vacant(e) => {
                e.insert(id);
            }
            Entry::Occupied(_) => self.hash_collisions.entry(hash).or_default().push(id),
        }
        self.series.insert(
            id,
            SeriesHead {
                labels,
                chunks: Vec::new(),
            },
        );
    }

    /// Registers a series that is already in the index (at open).
    pub fn load_series(&mut self, id: u64, labels: Labels) {
        let hash = labels.hash_with(&self.label_hasher);
        self.insert_series(hash, id, labels.interned());
        self.next_series_id = self.next_series_id.max(id + 1);
    }

    /// The open chunk of series `id` for a sample at `t`, sealing first a full one, or one
    /// whose window `t` is past (a late sample joins the open chunk instead).
    fn open_chunk(&mut self, id: u64, t: i64) -> Option<&mut HeadChunk> {
        let partition = partition_index(t);
        let gen_ = self.flush_gen;
        let s = self.series.get_mut(&id)?;
        let pos = s
            .chunks
            .iter()
            .position(|c| !c.sealed && c.partition == partition);
        let pos = match pos {
            Some(p)
                if s.chunks[p].count() < CHUNK_SAMPLES
                    && (s.chunks[p].count() == 0
                        || window_of(t) <= window_of(s.chunks[p].enc.min_t())) =>
            {
                p
            }
            other => {
                if let Some(p) = other {
                    s.chunks[p].sealed = true;
                }
                self.next_chunk_id += 1;
                push_chunk(
                    &mut s.chunks,
                    HeadChunk::new(self.next_chunk_id, partition, gen_),
                );
                s.chunks.len() - 1
            }
        };
        Some(&mut s.chunks[pos])
    }

    pub fn append(&mut self, id: u64, samples: &[Sample]) {
        let gen_ = self.flush_gen;
        for s in samples {
            if let Some(c) = self.open_chunk(id, s.t) {
                c.push(*s);
                c.last_append_gen = gen_;
                self.samples_appended += 1;
            }
        }
    }

    /// Rebuilds the open chunk of (series `id`, `partition`) from its pieces on disk (at
    /// open): `samples` are all of them in arrival order, `first_piece` the sequence number
    /// of the record with the first. Re-encoding gives the same stream bytes the pieces
    /// hold, so later pieces continue it. It may exceed [`CHUNK_SAMPLES`]; the next append
    /// seals it.
    pub fn recover(&mut self, id: u64, partition: i64, first_piece: u64, samples: &[Sample]) {
        let gen_ = self.flush_gen;
        let Some(s) = self.series.get_mut(&id) else {
            return;
        };
        self.next_chunk_id += 1;
        let mut c = HeadChunk::new(self.next_chunk_id, partition, gen_);
        for x in samples {
            c.push(*x);
        }
        c.flushed = c.count();
        c.flushed_bytes = c.body.len() as u32;
        c.first_piece = Some(first_piece);
        push_chunk(&mut s.chunks, c);
    }

    pub fn head_chunks(&self) -> u64 {
        self.series.values().map(|s| s.chunks.len() as u64).sum()
    }

    pub fn find_chunk(&mut self, series: u64, chunk: u64) -> Option<&mut HeadChunk> {
        self.series
            .get_mut(&series)?
            .chunks
            .iter_mut()
            .find(|c| c.id == chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(l: &Labels) -> Vec<(&[u8], &[u8])> {
        l.iter()
            .map(|l| (l.name.as_bytes(), l.value.as_bytes()))
            .collect()
    }

    #[test]
    fn series_are_found_by_their_pairs_also_when_hashes_collide() {
        let mut head = Head::default();
        let a = Labels::from_pairs([("__name__", "a"), ("job", "x")]);
        let b = Labels::from_pairs([("__name__", "b")]);
        let id_a = head.series_id(&a);
        assert_eq!(head.series_id(&a.clone()), id_a, "same set, same series");
        assert_eq!(head.find(head.hash_of(pairs(&a)), &pairs(&a)), Some(id_a));
        // Force `b` under `a`'s hash: both must still be told apart by their labels.
        let hash_a = head.hash_of(pairs(&a));
        head.insert_series(hash_a, 7, b.clone());
        assert_eq!(head.find(hash_a, &pairs(&b)), Some(7));
        assert_eq!(head.find(hash_a, &pairs(&a)), Some(id_a));
        // Pairs out of label order are not a known set (the caller builds a `Labels`).
        let mut unsorted = pairs(&a);
        unsorted.reverse();
        assert_eq!(
            head.find(head.hash_of(unsorted.iter().copied()), &unsorted),
            None
        );
    }
}
