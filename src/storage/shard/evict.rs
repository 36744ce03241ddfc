//! A shard's segments: mapping them (charged to the budget first),
//! freeing them, and the CLOCK that recycles the oldest one when a write
//! needs room (second chance, release, or compaction under `-M`).
//!
//! Owns the decision of what a write's room costs: which segment is
//! recycled and how, and when new memory is mapped instead. Must not decide
//! what is written (that is the store path's, in `shard.rs`).

use std::cell::RefCell;

use super::*;

/// The records a recycled segment keeps, on their way back to its start
/// (they may grow by a cas field, so they cannot slide in place), and
/// their index slots with their new locations.
#[derive(Default)]
struct Kept {
    bytes: Vec<u8>,
    moves: Vec<(usize, u32)>,
}

thread_local! {
    /// At most a segment's bytes per thread that recycles.
    static KEPT: RefCell<Kept> = RefCell::new(Kept::default());
}

impl Shard {
    /// Takes `n` bytes from `credit` (bytes already charged for this write)
    /// or charges them.
    pub(super) fn take(&self, credit: &mut usize, n: usize) -> bool {
        if *credit >= n {
            *credit -= n;
            return true;
        }
        if self.budget.try_charge(n - *credit) {
            *credit = 0;
            return true;
        }
        false
    }

    /// Maps a new segment of `bytes` at the young end of the FIFO; `None`
    /// when the budget (or the kernel, or the segment numbers) say no.
    pub(super) fn new_segment(
        &mut self,
        ctx: &Ctx,
        credit: &mut usize,
        bytes: usize,
        large: bool,
    ) -> Option<u16> {
        let cost = pages(bytes);
        let num = match self.free_nums.last() {
            Some(&n) => n,
            None if self.segs.len() < MAX_SEGS => self.segs.len() as u16,
            None => return None,
        };
        if !self.take(credit, cost) {
            return None;
        }
        let map = match &self.arena {
            Some(arena) => Mapping::in_arena(arena, bytes),
            None => Mapping::new(bytes),
        };
        let Some(map) = map else {
            self.budget.uncharge(cost);
            return None;
        };
        debug_assert_eq!(map.len(), cost);
        let map = if large {
            SegMap::shared(map, &self.budget, &self.pins)
        } else {
            SegMap::own(map)
        };
        if self.free_nums.pop().is_none() {
            self.segs.push(None);
        }
        self.segs[usize::from(num)] = Some(Seg {
            map,
            used: 0,
            live_bytes: 0,
            has_ttl: false,
            min_cas: u64::MAX,
            min_atime: Secs::MAX,
            cas_base: ctx.next_cas_base(),
            seq: self.next_seq,
            large,
        });
        self.next_seq += 1;
        self.fifo.push_back(num);
        self.item_bytes += cost;
        Some(num)
    }

    /// Unmaps segment `num` (not in the FIFO any more, nothing live in it).
    pub(super) fn free_segment(&mut self, num: u16) {
        if let Some(seg) = self.segs[usize::from(num)].take() {
            debug_assert_eq!(seg.live_bytes, 0);
            let cost = seg.map.len();
            let uncharge = seg.map.uncharged_by_owner();
            // a shared mapping a reply still holds stays charged until
            // the reply lets go (see `pin`)
            drop(seg);
            self.item_bytes -= cost;
            if uncharge {
                self.budget.uncharge(cost);
            }
            self.free_nums.push(num);
            if self.open == Some(num) {
                self.open = None;
            }
        }
    }

    /// Recycles the oldest segment as `how` says. False when the shard has
    /// no segment, or (`Compact`) when no segment had dead bytes to drop.
    pub(super) fn recycle_oldest(&mut self, ctx: &Ctx, how: Recycle) -> bool {
        let Some(num) = self.fifo.pop_front() else {
            return false;
        };
        let n = usize::from(num);
        let (large, used) = {
            let seg = segment(&self.segs, n);
            (seg.large, seg.used)
        };
        if large {
            return self.recycle_large(num, ctx, how);
        }
        // what may stay: under `-M` everything live; else, when all its
        // live records fit in half the segment, all of them (a mostly dead
        // segment is compacted, evicting nothing: a cache with room to
        // spare recycles garbage only); otherwise the used ones, up to half
        // (a kept record moves, so it takes its unique along in a cas
        // field: sizes here are what the records will be)
        let half = self.seg_size / 2;
        let mut alive_bytes = 0;
        if how == Recycle::SecondChance {
            let seg = segment(&self.segs, n);
            let mut off = 0;
            while off < used {
                let (it, cas) = seg.item_cas(off);
                if !it.dead() && ctx.alive(it, cas) {
                    alive_bytes += it.len_with_cas();
                }
                off += it.len();
            }
        }
        let compact = alive_bytes <= half;
        // first what goes: everything else stays where it is for now
        let (mut off, mut kept_bytes) = (0, 0);
        while off < used {
            let (len, moved, dead, alive, referenced) = {
                let seg = segment(&self.segs, n);
                let (it, cas) = seg.item_cas(off);
                let alive = ctx.alive(it, cas);
                (
                    it.len(),
                    it.len_with_cas(),
                    it.dead(),
                    alive,
                    it.referenced(),
                )
            };
            let keep = alive
                && match how {
                    Recycle::Release => false,
                    Recycle::Compact => true,
                    Recycle::SecondChance => compact || (referenced && kept_bytes + moved <= half),
                };
            if dead {
                // garbage: nothing to do
            } else if keep {
                kept_bytes += moved;
            } else {
                self.evict_loc(location(num, off), ctx);
            }
            off += len;
        }
        if how == Recycle::Compact && kept_bytes >= used {
            // nothing to gain here: back to the young end, in place
            self.requeue(num);
            return false;
        }
        let kept = self.move_kept_to_start(num, ctx);
        self.clock.kept += kept;
        match how {
            Recycle::SecondChance => self.clock.second_chance += 1,
            Recycle::Release => self.clock.released += 1,
            Recycle::Compact => self.clock.compacted += 1,
        }
        self.shrink_index();
        if kept == 0 && how == Recycle::Release {
            self.free_segment(num);
        } else {
            // its records moved: a new sequence number, and it is the open
            // segment now (the one that was open keeps what it holds)
            self.requeue(num);
            self.open = Some(num);
        }
        true
    }

    /// [`Shard::recycle_oldest`] for a large item's segment `num` (out of
    /// the FIFO): it keeps its place (no cas field needed) or goes.
    fn recycle_large(&mut self, num: u16, ctx: &Ctx, how: Recycle) -> bool {
        // its one record is live: a dead one's mapping went at once
        let loc = location(num, 0);
        let (it, cas) = self.item_cas(loc);
        debug_assert!(!it.dead());
        let keep = ctx.alive(it, cas)
            && match how {
                Recycle::SecondChance => it.referenced(),
                Recycle::Release => false,
                Recycle::Compact => true,
            };
        if keep {
            self.item_mut(loc).spend_use();
            self.requeue(num);
            self.clock.kept += 1;
            return how != Recycle::Compact;
        }
        // evicting it unmaps the segment (see `kill`)
        self.evict_loc(loc, ctx);
        true
    }

    /// Moves the records of segment `num` that are not dead (those a
    /// recycling keeps) to its start, each with its unique in a cas field,
    /// spending one use of each; the segment then takes records from a new
    /// cas base. Returns how many were kept.
    fn move_kept_to_start(&mut self, num: u16, ctx: &Ctx) -> u64 {
        let n = usize::from(num);
        KEPT.with_borrow_mut(|Kept { bytes, moves }| {
            bytes.clear();
            moves.clear();
            let used = segment(&self.segs, n).used;
            let mut off = 0;
            while off < used {
                let (it, cas) = segment(&self.segs, n).item_cas(off);
                let len = it.len();
                if !it.dead() {
                    let to = bytes.len();
                    it.copy_with_cas(cas, bytes);
                    let moved = bytes.len() - to;
                    if moved != len {
                        self.class_resize(len, moved);
                    }
                    if to != off {
                        moves.push((self.slot_of(location(num, off)), location(num, to)));
                    }
                }
                off += len;
            }
            for &(pos, loc) in moves.iter() {
                self.index.set_id(pos, loc);
            }
            let cas_base = ctx.next_cas_base();
            let seg = self.seg_mut(n);
            seg.map.bytes_mut()[..bytes.len()].copy_from_slice(bytes);
            (seg.used, seg.live_bytes, seg.cas_base) = (bytes.len(), bytes.len(), cas_base);
            let (mut has_ttl, mut min_cas, mut min_atime) = (false, u64::MAX, Secs::MAX);
            let (mut off, mut kept) = (0, 0);
            while off < seg.used {
                let it = seg.item_mut(off);
                it.spend_use();
                has_ttl |= it.deadline() != 0;
                min_cas = min_cas.min(it.own_cas().unwrap_or(u64::MAX));
                min_atime = min_atime.min(it.atime(ctx.now));
                off += it.len();
                kept += 1;
            }
            (seg.has_ttl, seg.min_cas, seg.min_atime) = (has_ttl, min_cas, min_atime);
            kept
        })
    }

    /// Gives back index slots the shard no longer needs (see
    /// `Index::shrink_if_sparse`).
    pub(super) fn shrink_index(&mut self) {
        let freed = self.index.shrink_if_sparse();
        if freed > 0 {
            self.struct_bytes -= freed;
            self.budget.uncharge(freed);
        }
    }

    /// Moves segment `num` to the young end of the FIFO with a new sequence
    /// number.
    pub(super) fn requeue(&mut self, num: u16) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.seg_mut(usize::from(num)).seq = seq;
        self.fifo.push_back(num);
    }

    /// Evicts the oldest segment and gives its memory back: what a write
    /// in another shard asks for when its own shard has nothing to evict.
    /// False when this shard holds nothing.
    pub(in crate::storage) fn evict_tail(&mut self, ctx: &Ctx) -> bool {
        self.recycle_oldest(ctx, Recycle::Release)
    }

    /// Releases segments while `more` says so, at most `max` of them.
    pub(in crate::storage) fn evict_while(
        &mut self,
        ctx: &Ctx,
        max: usize,
        more: impl Fn() -> bool,
    ) -> usize {
        let mut n = 0;
        while n < max && more() && self.evict_tail(ctx) {
            n += 1;
        }
        n
    }

    /// Makes room for one more index entry and a record of `size` bytes,
    /// evicting (or, under `-M`, compacting) as needed.
    pub(super) fn reserve(&mut self, ctx: &Ctx, credit: &mut usize, size: usize) -> Reserve {
        let mut compactions = 0;
        let mut reclaimed = false;
        loop {
            let (need, how) = if self.index.needs_grow() {
                if !reclaimed {
                    reclaimed = true;
                    if self.reclaim_old_end(ctx) {
                        continue;
                    }
                }
                let growth = self.index.growth_bytes();
                if self.take(credit, growth) {
                    self.index.grow();
                    self.struct_bytes += growth;
                    continue;
                }
                (growth, Recycle::Release)
            } else if size > self.large_threshold() {
                if !reclaimed {
                    reclaimed = true;
                    if self.reclaim_old_end(ctx) {
                        continue;
                    }
                }
                if let Some(num) = self.new_segment(ctx, credit, size, true) {
                    return Reserve::Ok(Place::Own(num));
                }
                (pages(size), Recycle::Release)
            } else {
                if let Some(open) = self.open {
                    let seg = segment(&self.segs, usize::from(open));
                    if seg.used + size <= seg.map.len() {
                        return Reserve::Ok(Place::Open);
                    }
                }
                // a mostly dead oldest segment is compacted before memory
                // is mapped for a new one: rewrites then cost no memory
                // beyond ~4/3 of what is live, instead of running up to
                // the ceiling with dead bytes
                if self.oldest_is_mostly_dead() {
                    self.recycle_oldest(ctx, Recycle::SecondChance);
                    continue;
                }
                if !reclaimed {
                    reclaimed = true;
                    if self.reclaim_old_end(ctx) {
                        continue;
                    }
                }
                if let Some(num) = self.new_segment(ctx, credit, self.seg_size, false) {
                    self.open = Some(num);
                    continue;
                }
                (self.seg_size, Recycle::SecondChance)
            };
            if need > self.budget.limit() {
                return Reserve::NoMemory;
            }
            if !ctx.evict {
                // each segment compacted at most once per write
                if compactions < self.fifo.len() {
                    compactions += 1;
                    self.recycle_oldest(ctx, Recycle::Compact);
                    continue;
                }
                return Reserve::NoMemory;
            }
            if !self.recycle_oldest(ctx, how) {
                return Reserve::Short(need.saturating_sub(*credit));
            }
        }
    }

    /// Before new memory is mapped: expired and flushed items at the old
    /// end of the shard give theirs back first (as memcached reuses an
    /// expired item at its LRU's tail before allocating), so that memory
    /// dead items hold is not charged twice while the background sweep
    /// has yet to reach them. A bounded look from the oldest segment (one
    /// visit for a segment with nothing that can have expired); true when
    /// something was removed.
    pub(super) fn reclaim_old_end(&mut self, ctx: &Ctx) -> bool {
        let mut at = Pos::default();
        let (removed, _) = self.sweep_from(ctx, &mut at, RECLAIM_VISITS, RECLAIM_VISITS, false);
        removed > 0
    }
}
