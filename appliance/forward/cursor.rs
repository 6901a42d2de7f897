//! A destination's persistent position in the store, kept in the index's `state` table
//! under `forward/<destination name>` and rewritten durably after every acknowledged
//! request, so a restart resumes exactly after the last 2xx.
//!
//! The position is a list of *segments* of sample time still to send, oldest first; the
//! last one is the live segment (open-ended). Everything outside them was sent (or counted
//! as dropped). Within a segment, `from` is the oldest unsent time; a window
//! `[from, window_end)` being sent series by series (in series-id order) has sent the
//! series with an id below `next_series`. When the live segment falls behind (an outage, a
//! restart), the part behind is split off into a backlog segment, which is sent oldest
//! first at a bounded rate while live data keeps flowing.
//!
//! Value (little-endian): `1:u8 | sent_partition:i64 | sent_in_partition:u64 | n:u8 |
//! n × (from:i64 | to:i64 | window_end:i64 | next_series:u64)`. `sent_*` counts what the
//! oldest segment sent of the day partition it is in, so that an eviction of that
//! partition counts only what was never sent.

/// Sample times `[from, to)` not yet sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub from: i64,
    /// Exclusive; `i64::MAX` for the live segment.
    pub to: i64,
    /// End (exclusive) of the window being sent; 0 when no window is open.
    pub window_end: i64,
    /// In the open window, series with an id below this are sent.
    pub next_series: u64,
}

impl Segment {
    pub fn live(from: i64) -> Segment {
        Segment {
            from,
            to: i64::MAX,
            window_end: 0,
            next_series: 0,
        }
    }
    pub fn is_live(&self) -> bool {
        self.to == i64::MAX
    }
    pub fn has_window(&self) -> bool {
        self.window_end != 0
    }
    /// Moves past the open window.
    pub fn finish_window(&mut self) {
        self.from = self.window_end;
        self.window_end = 0;
        self.next_series = 0;
    }
}

/// Most backlog segments kept; beyond, the live segment is not split again (it then
/// catches up on its own, oldest first, like a backlog).
pub const MAX_SEGMENTS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// Oldest first; the last is the live segment.
    pub segments: Vec<Segment>,
    pub sent_partition: i64,
    pub sent_in_partition: u64,
}

const VERSION: u8 = 1;

impl Cursor {
    pub fn new(start: i64) -> Cursor {
        Cursor {
            segments: vec![Segment::live(start)],
            sent_partition: i64::MIN,
            sent_in_partition: 0,
        }
    }

    pub fn live(&self) -> &Segment {
        self.segments
            .last()
            .expect("a cursor always has its live segment")
    }
    pub fn live_mut(&mut self) -> &mut Segment {
        self.segments
            .last_mut()
            .expect("a cursor always has its live segment")
    }

    /// Oldest time not yet sent.
    pub fn oldest_unsent(&self) -> i64 {
        self.segments[0].from
    }

    /// Splits `[live.from, at)` off the live segment as a backlog segment (merged into the
    /// previous one when adjacent). Only between windows.
    pub fn split_live(&mut self, at: i64) -> bool {
        let live = *self.live();
        if live.has_window() || at <= live.from {
            return false;
        }
        let n = self.segments.len();
        if n >= 2 && self.segments[n - 2].to == live.from {
            self.segments[n - 2].to = at;
        } else if n > MAX_SEGMENTS {
            return false;
        } else {
            self.segments.insert(
                n - 1,
                Segment {
                    from: live.from,
                    to: at,
                    window_end: 0,
                    next_series: 0,
                },
            );
        }
        self.live_mut().from = at;
        true
    }

    /// Drops backlog segments that are done.
    pub fn prune(&mut self) {
        self.segments.retain(|s| s.is_live() || s.from < s.to);
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(18 + 32 * self.segments.len());
        out.push(VERSION);
        out.extend(self.sent_partition.to_le_bytes());
        out.extend(self.sent_in_partition.to_le_bytes());
        out.push(self.segments.len() as u8);
        for s in &self.segments {
            out.extend(s.from.to_le_bytes());
            out.extend(s.to.to_le_bytes());
            out.extend(s.window_end.to_le_bytes());
            out.extend(s.next_series.to_le_bytes());
        }
        out
    }

    pub fn decode(b: &[u8]) -> Result<Cursor, String> {
        let bad = || format!("forwarding cursor of {} bytes is damaged", b.len());
        let i64_at = |at: usize| -> Result<i64, String> {
            Ok(i64::from_le_bytes(
                b.get(at..at + 8)
                    .ok_or_else(bad)?
                    .try_into()
                    .map_err(|_| bad())?,
            ))
        };
        if b.first() != Some(&VERSION) {
            return Err(format!(
                "forwarding cursor has version {:?}; this Picket reads version {VERSION}",
                b.first()
            ));
        }
        let sent_partition = i64_at(1)?;
        let sent_in_partition = i64_at(9)? as u64;
        let n = *b.get(17).ok_or_else(bad)? as usize;
        let mut segments = Vec::with_capacity(n);
        for k in 0..n {
            let at = 18 + 32 * k;
            segments.push(Segment {
                from: i64_at(at)?,
                to: i64_at(at + 8)?,
                window_end: i64_at(at + 16)?,
                next_series: i64_at(at + 24)? as u64,
            });
        }
        if segments.last().is_none_or(|s| !s.is_live()) || b.len() != 18 + 32 * n {
            return Err(bad());
        }
        Ok(Cursor {
            segments,
            sent_partition,
            sent_in_partition,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_damage_is_reported() {
        let mut c = Cursor::new(1_000);
        assert!(c.split_live(5_000));
        c.live_mut().window_end = 6_000;
        c.live_mut().next_series = 42;
        c.sent_partition = 0;
        c.sent_in_partition = 7;
        let b = c.encode();
        assert_eq!(Cursor::decode(&b).unwrap(), c);
        assert!(Cursor::decode(&b[..b.len() - 1]).is_err());
        assert!(Cursor::decode(&[9]).unwrap_err().contains("version"));
    }

    #[test]
    fn splitting_the_live_segment_makes_an_oldest_first_backlog() {
        let mut c = Cursor::new(0);
        assert!(c.split_live(100));
        assert_eq!(c.segments.len(), 2);
        assert_eq!((c.segments[0].from, c.segments[0].to), (0, 100));
        assert_eq!(c.live().from, 100);
        // Adjacent: the backlog grows instead of a second segment.
        assert!(c.split_live(200));
        assert_eq!(c.segments.len(), 2);
        assert_eq!(c.segments[0].to, 200);
        // After live data was sent, a new outage makes a second segment.
        c.live_mut().from = 300;
        assert!(c.split_live(400));
        assert_eq!(c.segments.len(), 3);
        assert_eq!((c.segments[1].from, c.segments[1].to), (300, 400));
        // Never while a window is open.
        c.live_mut().window_end = 450;
        assert!(!c.split_live(500));
        c.segments[0].from = 200;
        c.prune();
        assert_eq!(c.segments.len(), 2);
        assert_eq!(c.oldest_unsent(), 300);
    }
}
