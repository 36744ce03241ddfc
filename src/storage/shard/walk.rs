//! A shard's walks over its records in FIFO order, spanning lock holds:
//! the expiry sweep, the operator tools' walks, the classes' ages, and the
//! invariant check of the tests.
//!
//! Owns how a position ([`Pos`]) in the FIFO is found again after the lock
//! was let go (segments renumber their sequence when their records move).
//! Must not evict or write records beyond reclaiming dead ones.

use super::super::ctx::Ctx;
use super::super::item::{Item, CLASSES};
use super::*;

impl Shard {
    /// The FIFO position of the first segment at or after `seq`.
    fn fifo_from(&self, seq: u64) -> usize {
        let segs = &self.segs;
        self.fifo
            .partition_point(|&n| segment(segs, usize::from(n)).seq < seq)
    }

    /// The first record at or after `at`: its position and location. Tries
    /// the FIFO position `hint` first (a walk through a segment stays in
    /// it: no search per record), and leaves there the position it found.
    fn record_from(&self, at: Pos, hint: &mut usize) -> Option<(Pos, u32)> {
        let hinted = self
            .fifo
            .get(*hint)
            .is_some_and(|&n| segment(&self.segs, usize::from(n)).seq == at.seq);
        let mut i = if hinted {
            *hint
        } else {
            self.fifo_from(at.seq)
        };
        let mut at = at;
        while let Some(&num) = self.fifo.get(i) {
            let seg = segment(&self.segs, usize::from(num));
            if seg.seq != at.seq {
                at = Pos {
                    seq: seg.seq,
                    off: 0,
                };
            }
            if at.off < seg.used {
                *hint = i;
                return Some((at, location(num, at.off)));
            }
            i += 1;
        }
        None
    }

    /// Looks at up to `visits` records from `at` (moving it on), removing
    /// dead ones (at most `removals`). Returns how many were removed and
    /// whether the walk reached the young end.
    pub(in crate::storage) fn sweep_from(
        &mut self,
        ctx: &Ctx,
        at: &mut Pos,
        visits: usize,
        removals: usize,
        crawler: bool,
    ) -> (usize, bool) {
        let mut removed = 0;
        let mut hint = 0;
        for _ in 0..visits {
            if removed == removals {
                return (removed, false);
            }
            let Some((pos, loc)) = self.record_from(*at, &mut hint) else {
                return (removed, true);
            };
            let seg = segment(&self.segs, split(loc).0);
            if pos.off == 0 && Self::nothing_to_sweep(seg, ctx) {
                // one visit for the whole segment
                *at = Pos {
                    seq: seg.seq + 1,
                    off: 0,
                };
                continue;
            }
            let it = self.item(loc);
            *at = Pos {
                seq: pos.seq,
                off: pos.off + it.len(),
            };
            if it.dead() {
                continue;
            }
            if crawler {
                self.classes[class_of(it.class_size())].crawler_checked += 1;
            }
            let (it, cas) = self.item_cas(loc);
            if let Some(why) = ctx.death(it, cas) {
                let pos = self.slot_of(loc);
                self.reclaim(pos, loc, why, crawler);
                removed += 1;
            }
        }
        (removed, false)
    }

    /// The expiry sweep: up to `visits` records from where it stopped,
    /// removing dead items (at most `removals`); wraps around. Returns how
    /// many were removed.
    pub(in crate::storage) fn sweep(&mut self, ctx: &Ctx, visits: usize, removals: usize) -> usize {
        let mut at = self.cursor;
        let (removed, end) = self.sweep_from(ctx, &mut at, visits, removals, true);
        self.cursor = if end { Pos::default() } else { at };
        if removed > 0 {
            self.shrink_index();
        }
        removed
    }

    /// Calls `f` with each live record among up to `visits` records from
    /// `at`; returns where to go on, or `None` at the young end.
    pub(in crate::storage) fn walk(
        &self,
        at: Pos,
        visits: usize,
        mut f: impl FnMut(&Item, u64),
    ) -> Option<Pos> {
        let (mut at, mut hint) = (at, usize::MAX);
        for _ in 0..visits {
            let (pos, loc) = self.record_from(at, &mut hint)?;
            let (it, cas) = self.item_cas(loc);
            at = Pos {
                seq: pos.seq,
                off: pos.off + it.len(),
            };
            if !it.dead() {
                f(it, cas);
            }
        }
        Some(at)
    }

    /// The full sequence number of a position whose low 32 bits are `low`
    /// (dump cursors keep 32 bits): the oldest segment's if that one is
    /// younger (the segment was recycled meanwhile).
    pub(in crate::storage) fn seq_from_low(&self, low: u32) -> u64 {
        let Some(&front) = self.fifo.front() else {
            return self.next_seq;
        };
        let oldest = segment(&self.segs, usize::from(front)).seq;
        let ahead = low.wrapping_sub(oldest as u32);
        if ahead > u32::MAX / 2 {
            oldest
        } else {
            oldest + u64::from(ahead)
        }
    }

    /// Age (seconds) of each class's oldest item in this shard: walks from
    /// the old end of the FIFO (the first item of a class met there is the
    /// class's oldest) until every class with items was met, at most `walk`
    /// records; a class not met by then gets the age of the last item
    /// walked, which its oldest item is younger than.
    pub(in crate::storage) fn class_ages(&self, now: Secs, walk: usize, ages: &mut [u64; CLASSES]) {
        let mut missing = self.classes.iter().filter(|c| c.number > 0).count();
        let mut seen = [false; CLASSES];
        let mut last_age = 0;
        let (mut at, mut hint) = (Pos::default(), usize::MAX);
        let mut steps = 0;
        while missing > 0 && steps < walk {
            let Some((pos, loc)) = self.record_from(at, &mut hint) else {
                break;
            };
            let it = self.item(loc);
            at = Pos {
                seq: pos.seq,
                off: pos.off + it.len(),
            };
            steps += 1;
            if it.dead() {
                continue;
            }
            let c = class_of(it.class_size());
            last_age = u64::from(now.saturating_sub(it.atime(now)));
            if !seen[c] {
                seen[c] = true;
                missing -= 1;
                ages[c] = ages[c].max(last_age);
            }
        }
        for (c, counters) in self.classes.iter().enumerate() {
            if counters.number > 0 && !seen[c] {
                ages[c] = ages[c].max(last_age);
            }
        }
    }

    /// Checks every invariant and returns the bytes this shard has charged.
    #[cfg(test)]
    pub(in crate::storage) fn check(&self) -> usize {
        use std::collections::HashSet;
        assert_eq!(self.index.len(), self.live, "index and live count");
        let mut per_class = [0u64; CLASSES];
        let mut mapped = 0;
        let mut live = 0;
        let mut prev_seq = 0;
        let in_fifo: HashSet<u16> = self.fifo.iter().copied().collect();
        assert_eq!(
            in_fifo.len(),
            self.fifo.len(),
            "a segment twice in the FIFO"
        );
        for &num in &self.fifo {
            let seg = segment(&self.segs, usize::from(num));
            assert!(seg.seq > prev_seq, "FIFO in sequence order");
            prev_seq = seg.seq;
            assert!(seg.seq < self.next_seq);
            mapped += seg.map.len();
            let (mut off, mut seg_live, mut seg_live_bytes) = (0, 0, 0);
            while off < seg.used {
                let it = seg.item(off);
                if !it.dead() {
                    let hash = self.hash(it.key());
                    assert_eq!(
                        self.find(hash, it.key()).map(|(_, l)| l),
                        Some(location(num, off)),
                        "indexed at its location"
                    );
                    per_class[class_of(it.class_size())] += 1;
                    seg_live += 1;
                    seg_live_bytes += it.len();
                }
                off += it.len();
            }
            assert_eq!(off, seg.used, "records tile the segment");
            assert!(seg.used <= seg.map.len());
            if seg.large {
                assert!(seg.used > self.large_threshold() && seg_live <= 1);
            }
            assert_eq!(seg.live_bytes, seg_live_bytes, "segment live bytes");
            live += seg_live as usize;
        }
        let used = self.segs.iter().filter(|s| s.is_some()).count();
        assert_eq!(used, self.fifo.len(), "every segment is in the FIFO");
        assert_eq!(
            used + self.free_nums.len(),
            self.segs.len(),
            "segment numbers"
        );
        if let Some(open) = self.open {
            assert!(in_fifo.contains(&open) && !segment(&self.segs, usize::from(open)).large);
        }
        assert_eq!(live, self.live, "live records");
        let ids: HashSet<u32> = self.index.entries().map(|(_, id)| id).collect();
        assert_eq!(ids.len(), self.live, "index entries are unique");
        assert_eq!(mapped, self.item_bytes, "mapped bytes");
        for (c, n) in per_class.iter().enumerate() {
            assert_eq!(self.classes[c].number, *n, "class {c} count");
        }
        assert_eq!(self.struct_bytes, self.index.bytes(), "index bytes");
        self.item_bytes + self.struct_bytes
    }

    /// Live keys in eviction order, oldest segment first (tests).
    #[cfg(test)]
    pub(in crate::storage) fn lru_keys(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        self.walk(Pos::default(), usize::MAX, |it, _| {
            out.push(it.key().to_vec())
        });
        out
    }
}
