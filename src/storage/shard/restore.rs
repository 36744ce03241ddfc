//! A shard's part of a warm restart (`-e`): listing its segments for the
//! metadata, and adopting them again from the memory file.
//!
//! Owns the walk that turns a saved segment back into indexed items.
//! Must not trust a byte of the file: every segment's bounds and checksum
//! are checked before it is read, every record's length against its
//! segment, every key's shard and uniqueness against the index; the first
//! thing that does not fit refuses the whole restart (the caller then
//! starts clean). Reads records only through `item`'s API, so a record
//! layout change (with its `LAYOUT_VERSION`) needs nothing here.

use std::hash::BuildHasher;
use std::sync::Arc;

use super::super::arena::Arena;
use super::super::hash::checksum;
use super::super::item::{self, Item, MIN_HEADER};
use super::super::mapping::{self, Mapping};
use super::super::persist::{Meta, Refusal, SegMeta};
use super::super::pin::SegMap;
use super::{location, segment, Seg, Shard, MAX_SEGS, OFFSET_MASK};
use crate::clock::{Clock, Secs};

/// How saved times become the new clock's, and which saved records died
/// while the server was down.
#[derive(Debug, Clone, Copy)]
pub(in crate::storage) struct Adjust {
    /// Seconds to add to a saved clock time to get the new clock's (the
    /// difference of the two clocks' second 0).
    shift: i64,
    /// The new clock's now.
    now: Secs,
    /// The saved clock's second at the stop: records keep their last
    /// access relative to the clock (see `item`'s layout).
    saved_stop: Secs,
    /// Records with a cas unique at or below this were flushed.
    flush_cas: u64,
    /// Records last used before this saved second were flushed (a flush
    /// whose delay ran out, before the stop or while down).
    flushed_before: Secs,
    /// A delayed flush still ahead, in new seconds (0: none).
    pending: Secs,
}

impl Adjust {
    pub(in crate::storage) fn new(meta: &Meta, clock: &Clock) -> Adjust {
        // (saturating: the figures come from a file)
        let shift = i64::try_from(meta.epoch_unix)
            .unwrap_or(i64::MAX)
            .saturating_sub(clock.epoch_unix() as i64);
        let now = clock.now();
        let (flush_cas, before, pending) = meta.flush;
        let saved_now = i64::from(now).saturating_sub(shift);
        let (flushed_before, pending) = match pending {
            0 => (before, 0),
            p if i64::from(p) <= saved_now => (before.max(p), 0),
            p => (before, Self::shifted(p, shift)),
        };
        let saved_stop = meta.stop_unix.saturating_sub(meta.epoch_unix);
        Adjust {
            shift,
            now,
            saved_stop: Secs::try_from(saved_stop).unwrap_or(Secs::MAX),
            flush_cas,
            flushed_before,
            pending,
        }
    }

    fn shifted(t: Secs, shift: i64) -> Secs {
        i64::from(t)
            .saturating_add(shift)
            .clamp(0, i64::from(Secs::MAX)) as Secs
    }

    /// The delayed flush still to come, in the new clock's seconds.
    pub(in crate::storage) fn pending_flush(&self) -> Secs {
        self.pending
    }

    /// Whether a saved live record (cas unique `cas`) has been flushed or
    /// has expired by now.
    fn gone(&self, it: &Item, cas: u64) -> bool {
        let d = it.deadline();
        cas <= self.flush_cas
            || it.atime(self.saved_stop) < self.flushed_before
            || (d != 0 && i64::from(d).saturating_add(self.shift) <= i64::from(self.now))
    }

    /// Moves a surviving record's times to the new clock.
    fn rebase(&self, it: &mut Item) {
        let d = it.deadline();
        if d != 0 {
            // (a record with a deadline has the field for one)
            let kept = it.set_deadline(Self::shifted(d, self.shift).max(self.now + 1));
            debug_assert!(kept);
        }
        it.set_atime(Self::shifted(it.atime(self.saved_stop), self.shift));
    }
}

/// What adopting one shard's segments found.
#[derive(Debug, Default, Clone, Copy)]
pub(in crate::storage) struct Adopted {
    pub(in crate::storage) items: u64,
    pub(in crate::storage) dropped: u64,
    /// The largest cas base of a segment (the counter goes on above).
    pub(in crate::storage) max_cas_base: u64,
}

impl Adopted {
    pub(in crate::storage) fn add(&mut self, other: &Adopted) {
        self.items += other.items;
        self.dropped += other.dropped;
        self.max_cas_base = self.max_cas_base.max(other.max_cas_base);
    }
}

fn bad(why: String) -> Refusal {
    Refusal::Segment(why)
}

impl Shard {
    /// This shard's segments in the memory file, oldest first, with the
    /// checksum of their used bytes.
    pub(in crate::storage) fn saved_segments(&self, shard: u32, out: &mut Vec<SegMeta>) {
        for &num in &self.fifo {
            let seg = segment(&self.segs, usize::from(num));
            let Some(offset) = seg.map.file_offset() else {
                continue;
            };
            out.push(SegMeta {
                shard,
                offset: offset as u64,
                len: seg.map.len() as u64,
                used: seg.used as u64,
                seq: seg.seq,
                cas_base: seg.cas_base,
                large: seg.large,
                sum: checksum(&seg.map.bytes()[..seg.used]),
            });
        }
    }

    /// Adopts `saved` (this shard's segments, by sequence) from `arena`:
    /// shard `me` of a cache of `shards` shards (a key must hash here),
    /// which held `expect` items (its index is sized for them first).
    /// Live records that expired or were flushed meanwhile are marked dead.
    pub(in crate::storage) fn adopt(
        &mut self,
        arena: &Arc<Arena>,
        saved: &[SegMeta],
        adjust: &Adjust,
        (me, shards): (usize, usize),
        expect: usize,
    ) -> Result<Adopted, Refusal> {
        let mut got = Adopted::default();
        // a hint from the metadata: bounded by what the segments can hold
        let room = saved.iter().fold(0u64, |sum, s| {
            sum.saturating_add(s.used / MIN_HEADER as u64)
        });
        let grown = self.index.reserve(expect.min(room as usize));
        self.budget.charge(grown);
        self.struct_bytes += grown;
        for s in saved {
            if s.seq < self.next_seq {
                return Err(bad(format!("segment sequence {} repeats", s.seq)));
            }
            let num = self.adopt_segment(arena, s, adjust)?;
            got.max_cas_base = got.max_cas_base.max(s.cas_base);
            self.next_seq = s.seq + 1;
            self.index_segment(num, adjust, me, shards, &mut got)?;
        }
        Ok(got)
    }

    /// Checks `s`'s bounds and checksum and makes it segment `num`, at
    /// the young end of the FIFO (nothing indexed yet).
    fn adopt_segment(
        &mut self,
        arena: &Arc<Arena>,
        s: &SegMeta,
        adjust: &Adjust,
    ) -> Result<u16, Refusal> {
        let at = s.offset;
        let (len, used) = (s.len as usize, s.used as usize);
        // (every figure is checked against the file's size before any
        // arithmetic on it: a crafted file must not overflow anything)
        let shaped = len <= arena.size()
            && used <= len
            && s.seq < u64::MAX
            && if s.large {
                used > self.large_threshold() && len == mapping::pages(used)
            } else {
                len == self.seg_size
            };
        if !shaped || self.segs.len() >= MAX_SEGS {
            return Err(bad(format!("segment at {at}: {used} of {len} bytes")));
        }
        if s.cas_base == 0 || s.cas_base & u64::from(OFFSET_MASK) != 0 || s.cas_base >> 60 != 0 {
            return Err(bad(format!("segment at {at}: cas base {:#x}", s.cas_base)));
        }
        let map = usize::try_from(at)
            .ok()
            .and_then(|off| Mapping::adopt(arena, off, len))
            .ok_or_else(|| bad(format!("segment at {at} out of the file or overlapping")))?;
        if checksum(&map.bytes()[..used]) != s.sum {
            return Err(bad(format!("segment at {at}: checksum mismatch")));
        }
        let map = if s.large {
            SegMap::shared(map, &self.budget, &self.pins)
        } else {
            SegMap::own(map)
        };
        let num = self.segs.len() as u16;
        self.budget.charge(len);
        self.item_bytes += len;
        self.segs.push(Some(Seg {
            map,
            used,
            live_bytes: 0,
            has_ttl: false,
            min_cas: u64::MAX,
            min_atime: Secs::MAX,
            cas_base: s.cas_base,
            seq: s.seq,
            large: s.large,
        }));
        self.fifo.push_back(num);
        // the youngest normal segment goes on taking records, unless a
        // flush closed it (its cas base is below the flush's)
        if !s.large && s.cas_base > adjust.flush_cas {
            self.open = Some(num);
        }
        Ok(num)
    }

    /// Walks segment `num`'s records: indexes the live ones, marks dead
    /// those that died meanwhile; a large segment left with nothing live
    /// is given back.
    fn index_segment(
        &mut self,
        num: u16,
        adjust: &Adjust,
        me: usize,
        shards: usize,
        got: &mut Adopted,
    ) -> Result<(), Refusal> {
        let n = usize::from(num);
        let (used, large) = {
            let seg = segment(&self.segs, n);
            (seg.used, seg.large)
        };
        let (mut off, mut records) = (0, 0);
        while off < used {
            if large && off > 0 {
                // its one record must fill it (and offsets past a normal
                // segment's would not fit a location)
                return Err(bad("a large segment holds more than its record".into()));
            }
            let rest = &segment(&self.segs, n).map.bytes()[off..used];
            let len = item::checked_record_len(rest).unwrap_or(0);
            if len < MIN_HEADER {
                return Err(bad(format!("record at {off} of a segment runs past it")));
            }
            records += 1;
            self.adopt_record(location(num, off), adjust, me, shards, got)?;
            off += len;
        }
        if large && records != 1 {
            return Err(bad("an empty large segment".into()));
        }
        if large && segment(&self.segs, n).live_bytes == 0 {
            self.fifo.pop_back();
            self.free_segment(num);
        }
        Ok(())
    }

    /// One record of an adopted segment (bounds already checked).
    fn adopt_record(
        &mut self,
        loc: u32,
        adjust: &Adjust,
        me: usize,
        shards: usize,
        got: &mut Adopted,
    ) -> Result<(), Refusal> {
        let (num, off) = super::split(loc);
        let seg = self.seg_mut(num);
        let derived = seg.derived_cas(off);
        let it = seg.item_mut(off);
        let cas = it.cas_or(derived);
        if it.dead() {
            return Ok(());
        }
        if adjust.gone(it, cas) {
            it.set_dead();
            got.dropped += 1;
            return Ok(());
        }
        adjust.rebase(it);
        let it = self.item(loc);
        let (size, deadline) = (it.len(), it.deadline());
        let atime = it.atime(adjust.now);
        let full = self.hasher.hash_one(it.key());
        if ((full >> 32) as usize) & (shards - 1) != me {
            return Err(bad("a key stored in another shard".into()));
        }
        let hash = full as u32;
        if self.index.needs_grow() {
            let growth = self.index.growth_bytes();
            self.budget.charge(growth);
            self.index.grow();
            self.struct_bytes += growth;
        }
        let segs = &self.segs;
        let key = super::item_at(segs, loc).key();
        if !self
            .index
            .insert_new(hash, loc, |other| super::item_at(segs, other).key() == key)
        {
            return Err(bad("a key stored twice".into()));
        }
        let seg = self.seg_mut(super::split(loc).0);
        seg.live_bytes += size;
        seg.has_ttl |= deadline != 0;
        seg.min_cas = seg.min_cas.min(cas);
        seg.min_atime = seg.min_atime.min(atime);
        self.class_add(size);
        self.live += 1;
        got.items += 1;

        Ok(())
    }
}
