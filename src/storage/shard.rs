//! One shard: its segments of packed records, the index over them, the
//! CLOCK eviction order, and the shard's counters.
//!
//! Owns everything behind one shard lock: here the records' lookups and
//! writes; in `shard/evict.rs` its segments and the CLOCK, in
//! `shard/walk.rs` the walks that span lock holds, in `shard/restore.rs`
//! a warm restart's part. Must not take another shard's lock
//! (the caller holds this one) and must not let the memory budget pass its
//! limit: every byte a shard allocates is charged to the shared [`Budget`]
//! before it is allocated (segments, large-item mappings, index growth).
//!
//! Storage is a log per shard: records (see [`super::item`]) are appended
//! to the open segment, a page mapping of `seg_size` bytes; a record over a
//! quarter of that gets a mapping of its own. Segments form a FIFO, oldest
//! first. A rewrite appends a new record and marks the old one dead; dead
//! bytes come back when their segment is recycled.
//!
//! Eviction is CLOCK over segments (second chance): when the open segment
//! is full and the budget allows no new one, the oldest segment is
//! recycled in place: its live records with uses left on their CLOCK
//! counter (reads, touches, bumps since they were written, up to
//! `item::MAX_USES`) are kept, up to half the segment, slid to its front
//! with one use spent; the rest are evicted (all live records are kept
//! when they fit in half the segment); the segment becomes the open one,
//! at the young end of the FIFO. So an item in use survives a turn of the
//! FIFO that evicts unused ones, one used often survives as many turns
//! unused as it has uses (small caches, where few items fit, are decided by
//! telling those apart), and a cache whose oldest segment is mostly dead
//! bytes (rewrites, deletes) compacts it without evicting anything.
//! memcached's LRU is an approximation too (bumps at most once a minute,
//! segmented queues); this one costs no per-item links, which is what lets
//! an item of ~100 bytes cost 7 bytes of header beyond its key and value
//! (its cas unique is where it was written: `item::derived_cas`).

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::sync::Arc;

use super::arena::Arena;
use super::budget::Budget;
use super::ctx::Ctx;
use super::hash::Keyed;
use super::index::Index;
use super::item::{self, class_of, deadline_field, Header, Item, CLASSES};
use super::mapping::{self, pages, Mapping};
use super::pin::{Pins, SegMap, SharedMap};
use super::types::{
    too_large, ArithOpts, DeleteAction, DeleteOutcome, Lookup, MetaArithOutcome, StoreOp,
    StoreOutcome, WriteOpts,
};
use crate::clock::Secs;
use crate::cnum::{safe_strtoull_cstr, Backwards};

/// Warm restart: saving and adopting segments (`-e`).
mod evict;
mod restore;
mod walk;
pub(super) use restore::{Adjust, Adopted};

/// Per size class counters, kept under the shard lock.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct ClassCounters {
    pub(super) number: u64,
    pub(super) requested: u64,
    /// Items ever stored in the class (to list classes that had items).
    pub(super) stored: u64,
    pub(super) evicted: u64,
    pub(super) evicted_nonzero: u64,
    pub(super) evicted_unfetched: u64,
    pub(super) evicted_active: u64,
    pub(super) expired_unfetched: u64,
    pub(super) reclaimed: u64,
    pub(super) crawler_reclaimed: u64,
    pub(super) outofmemory: u64,
    /// Deletes that found a live item of the class.
    pub(super) delete_hits: u64,
    /// Records of the class the expiry sweep or a requested crawl looked at.
    pub(super) crawler_checked: u64,
}

/// What the eviction policy (CLOCK over segments) did in one shard.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ClockCounters {
    /// Oldest segments recycled with a second chance for used items, made
    /// the open segment again.
    pub(super) second_chance: u64,
    /// Oldest segments emptied and unmapped (memory given back).
    pub(super) released: u64,
    /// Oldest segments compacted without eviction (mostly dead, or `-M`).
    pub(super) compacted: u64,
    /// Items that survived a recycle: moved within their segment, or a
    /// large item requeued.
    pub(super) kept: u64,
}

/// A lookup's result: a live item, or the reason there is none (a dead one
/// found on the way has been removed).
pub(super) enum Found {
    Live(u32),
    Gone(Lookup),
    Absent,
}

/// A write that could not finish in this shard alone.
pub(super) enum Attempt<T> {
    Done(T),
    /// Nothing left to evict here; this many more bytes are needed.
    Short(usize),
}

/// Where a write stands in its rounds of attempts (see
/// `Cache::with_retries`): what it has charged, and whether a shortage is
/// final.
#[derive(Debug, Default)]
pub(super) struct Round {
    /// Bytes charged to the budget for this write and not yet used.
    pub(super) credit: usize,
    /// The last round: a shortage is final (`NoMemory`), not a request to
    /// evict elsewhere.
    pub(super) last: bool,
}

/// A set/add/replace/append/prepend/cas as [`Shard::store`] takes it.
#[derive(Debug, Clone, Copy)]
pub(super) struct StoreRequest<'a> {
    pub(super) op: StoreOp,
    pub(super) key: &'a [u8],
    /// `key`'s index hash (the low half of the cache's hash).
    pub(super) hash: u32,
    pub(super) flags: u32,
    pub(super) deadline: Secs,
    pub(super) data: &'a [u8],
    pub(super) opts: &'a WriteOpts,
}

/// An incr/decr as [`Shard::incr_decr`] takes it.
#[derive(Debug, Clone, Copy)]
pub(super) struct ArithRequest<'a> {
    pub(super) key: &'a [u8],
    /// `key`'s index hash (the low half of the cache's hash).
    pub(super) hash: u32,
    pub(super) delta: u64,
    /// Add (`true`) or subtract.
    pub(super) incr: bool,
    pub(super) opts: &'a ArithOpts,
}

/// Where a reserved record goes.
enum Place {
    /// At the end of the open segment.
    Open,
    /// At the start of this (large) segment of its own.
    Own(u16),
}

enum Reserve {
    Ok(Place),
    NoMemory,
    Short(usize),
}

/// A record's location: segment number << 20 | byte offset in it. (The
/// same 20 bits hold the offset in a derived cas unique.)
const OFFSET_BITS: u32 = item::CAS_OFFSET_BITS;
const OFFSET_MASK: u32 = (1 << OFFSET_BITS) - 1;
/// Largest normal segment (its offsets fit the location's 20 bits).
const MAX_SEGMENT: usize = 1 << OFFSET_BITS;
/// Smallest normal segment: a page.
const MIN_SEGMENT: usize = mapping::PAGE;
/// Segment numbers a shard may use: the index stores location + 1 in a u32.
/// Records a write looks at from the old end before it maps new memory
/// (see `Shard::reclaim_old_end`).
const RECLAIM_VISITS: usize = 256;

const MAX_SEGS: usize = (1 << (32 - OFFSET_BITS)) - 1;

#[inline]
fn location(num: u16, off: usize) -> u32 {
    (u32::from(num) << OFFSET_BITS) | off as u32
}

#[inline]
fn split(loc: u32) -> (usize, usize) {
    ((loc >> OFFSET_BITS) as usize, (loc & OFFSET_MASK) as usize)
}

/// A place in a shard's FIFO of records, for walks that span lock holds
/// (the expiry sweep, crawls, dumps): a segment's sequence number and an
/// offset in it. A segment gets a new sequence number whenever its records
/// move, so a position never points into the middle of a record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Pos {
    pub(super) seq: u64,
    pub(super) off: usize,
}

struct Seg {
    /// A large item's is shared with the replies sending its value.
    map: SegMap,
    /// Bytes of records written; they start at 0 and end here.
    used: usize,
    /// Bytes of the records in it that are not dead.
    live_bytes: usize,
    /// What the expiry sweep needs to know to pass it by: whether any
    /// record was given a deadline, and lower bounds of the records' cas
    /// uniques and access times (flush points).
    has_ttl: bool,
    min_cas: u64,
    min_atime: Secs,
    /// The high bits of the cas uniques of its records without a cas field
    /// (`item::derived_cas`): taken when it was mapped, and again whenever
    /// it is written from its start anew.
    cas_base: u64,
    /// Its place in the FIFO: larger is younger.
    seq: u64,
    /// Holds one record too large for a normal segment.
    large: bool,
}

impl Seg {
    #[inline]
    fn item(&self, off: usize) -> &Item {
        let b = &self.map.bytes()[off..];
        Item::new(&b[..item::record_len(b)])
    }

    #[inline]
    fn item_mut(&mut self, off: usize) -> &mut Item {
        let b = &mut self.map.bytes_mut()[off..];
        let len = item::record_len(b);
        Item::new_mut(&mut b[..len])
    }

    /// The unique a record at `off` has when it has no cas field.
    #[inline]
    fn derived_cas(&self, off: usize) -> u64 {
        item::derived_cas(self.cas_base, off)
    }

    /// The record at `off` and its cas unique (one read of its header).
    #[inline]
    fn item_cas(&self, off: usize) -> (&Item, u64) {
        let it = self.item(off);
        (it, it.cas_or(self.derived_cas(off)))
    }
}

/// How the oldest segment is recycled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recycle {
    /// CLOCK: keep records with uses left (spending one), up to half the
    /// segment, or every live record when they fit in half; evict the
    /// rest; the segment becomes the open one.
    SecondChance,
    /// Evict everything in it and give its memory back to the budget.
    Release,
    /// No eviction (`-M`): keep every live record, drop only dead bytes.
    Compact,
}

#[inline]
fn segment(segs: &[Option<Seg>], num: usize) -> &Seg {
    match &segs[num] {
        Some(seg) => seg,
        None => unreachable!("a location in a free segment"),
    }
}

#[inline]
fn item_at(segs: &[Option<Seg>], loc: u32) -> &Item {
    let (num, off) = split(loc);
    segment(segs, num).item(off)
}

pub(super) struct Shard {
    /// By segment number; `None` for a free number.
    segs: Vec<Option<Seg>>,
    free_nums: Vec<u16>,
    /// Segment numbers, oldest first (sequence numbers ascending).
    fifo: VecDeque<u16>,
    /// The normal segment records are appended to.
    open: Option<u16>,
    next_seq: u64,
    seg_size: usize,
    index: Index,
    hasher: Keyed,
    /// Charged bytes of the index table.
    struct_bytes: usize,
    /// Charged bytes of the segments' mappings.
    item_bytes: usize,
    /// Live (indexed) records.
    live: usize,
    /// Where the expiry sweep goes on.
    cursor: Pos,
    total_items: u64,
    classes: Box<[ClassCounters; CLASSES]>,
    /// What the CLOCK did (the metrics endpoint's eviction counters).
    clock: ClockCounters,
    /// The cache's budget (to give a dead large item's mapping back).
    budget: Arc<Budget>,
    /// The bytes replies hold pinned (large items' mappings are made with
    /// it).
    pins: Arc<Pins>,
    /// The memory file segments are carved from (`-e`); `None`: anonymous
    /// mappings.
    arena: Option<Arc<Arena>>,
}

impl Shard {
    /// `seg_size`: bytes of a normal segment, a power of two from
    /// [`MIN_SEGMENT`] to [`MAX_SEGMENT`].
    pub(super) fn new(
        hasher: Keyed,
        seg_size: usize,
        budget: Arc<Budget>,
        pins: Arc<Pins>,
        arena: Option<Arc<Arena>>,
    ) -> Shard {
        debug_assert!(seg_size.is_power_of_two());
        // The first index table is there from the start, charged like any:
        // a shard's first key does not grow the memory in use (memcached's
        // hash table is preallocated too), so keys that replace expired
        // ones in other shards cost nothing more.
        let mut index = Index::new();
        index.grow();
        let struct_bytes = index.bytes();
        budget.charge(struct_bytes);
        Shard {
            segs: Vec::new(),
            free_nums: Vec::new(),
            fifo: VecDeque::new(),
            open: None,
            next_seq: 1,
            seg_size: seg_size.clamp(MIN_SEGMENT, MAX_SEGMENT),
            index,
            hasher,
            struct_bytes,
            item_bytes: 0,
            live: 0,
            cursor: Pos::default(),
            total_items: 0,
            classes: Box::new([ClassCounters::default(); CLASSES]),
            clock: ClockCounters::default(),
            budget,
            pins,
            arena,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.live
    }

    pub(super) fn total_items(&self) -> u64 {
        self.total_items
    }

    pub(super) fn clock_counters(&self) -> ClockCounters {
        self.clock
    }

    pub(super) fn classes(&self) -> &[ClassCounters; CLASSES] {
        &self.classes
    }

    fn hash(&self, key: &[u8]) -> u32 {
        self.hasher.hash_one(key) as u32
    }

    /// Records larger than this get a mapping of their own.
    #[inline]
    fn large_threshold(&self) -> usize {
        self.seg_size / 4
    }

    #[inline]
    fn item(&self, loc: u32) -> &Item {
        item_at(&self.segs, loc)
    }

    /// The record at `loc` and its cas unique.
    #[inline]
    fn item_cas(&self, loc: u32) -> (&Item, u64) {
        let (num, off) = split(loc);
        segment(&self.segs, num).item_cas(off)
    }

    /// The cas unique of the record at `loc`.
    #[inline]
    fn cas(&self, loc: u32) -> u64 {
        self.item_cas(loc).1
    }

    /// Closes the open segment (a flush_all now: the records written after
    /// it must have uniques above the flush's, so they go to a segment
    /// with a newer cas base).
    pub(super) fn seal(&mut self) {
        self.open = None;
    }

    #[inline]
    fn item_mut(&mut self, loc: u32) -> &mut Item {
        let (num, off) = split(loc);
        match &mut self.segs[num] {
            Some(seg) => seg.item_mut(off),
            None => unreachable!("a location in a free segment"),
        }
    }

    fn seg_mut(&mut self, num: usize) -> &mut Seg {
        match &mut self.segs[num] {
            Some(seg) => seg,
            None => unreachable!("a free segment in use"),
        }
    }

    #[inline]
    fn find(&self, hash: u32, key: &[u8]) -> Option<(usize, u32)> {
        let segs = &self.segs;
        self.index.find(hash, |loc| item_at(segs, loc).key() == key)
    }

    /// Finds `key`'s live item; removes it if it is dead.
    #[inline]
    pub(super) fn find_live(&mut self, hash: u32, key: &[u8], ctx: &Ctx) -> Found {
        let Some((pos, loc)) = self.find(hash, key) else {
            return Found::Absent;
        };
        let (it, cas) = self.item_cas(loc);
        match ctx.death(it, cas) {
            None => Found::Live(loc),
            Some(why) => {
                self.reclaim(pos, loc, why, false);
                Found::Gone(why)
            }
        }
    }

    // ---- removal ----

    fn class_add(&mut self, size: usize) {
        let c = &mut self.classes[class_of(size)];
        c.number += 1;
        c.stored += 1;
        c.requested += size as u64;
    }

    fn class_sub(&mut self, size: usize) {
        let c = &mut self.classes[class_of(size)];
        c.number -= 1;
        c.requested -= size as u64;
    }

    /// An item that grew from `from` to `to` bytes where it is (a move
    /// that gave it a cas field): not a new item.
    fn class_resize(&mut self, from: usize, to: usize) {
        self.class_sub(from);
        let c = &mut self.classes[class_of(to)];
        c.number += 1;
        c.requested += to as u64;
    }

    /// Marks the record at `loc` dead (its bytes stay until its segment is
    /// recycled) without touching the index.
    fn kill(&mut self, loc: u32) {
        let it = self.item_mut(loc);
        it.set_dead();
        let size = it.class_size();
        let num = split(loc).0;
        let seg = self.seg_mut(num);
        seg.live_bytes -= size;
        let large = seg.large;
        self.class_sub(size);
        self.live -= 1;
        if large {
            // a large item's mapping goes back at once, not when the FIFO
            // comes round to it
            let num = num as u16;
            if let Some(i) = self.fifo.iter().position(|&n| n == num) {
                self.fifo.remove(i);
            }
            self.free_segment(num);
        }
    }

    /// Removes the item at index slot `pos`.
    fn remove_at(&mut self, pos: usize, loc: u32) {
        self.index.remove_at(pos);
        self.kill(loc);
    }

    /// The index slot of the record at `loc`, which is not dead (every such
    /// record is indexed).
    fn slot_of(&self, loc: u32) -> usize {
        let hash = self.hash(self.item(loc).key());
        match self.index.find_id(hash, loc) {
            Some(pos) => pos,
            None => unreachable!("a live record missing from the index"),
        }
    }

    /// Removes a dead item, counting it as memcached counts reclaimed memory.
    fn reclaim(&mut self, pos: usize, loc: u32, why: Lookup, crawler: bool) {
        let it = self.item(loc);
        let unfetched = !it.fetched();
        let c = &mut self.classes[class_of(it.class_size())];
        c.reclaimed += 1;
        if crawler {
            c.crawler_reclaimed += 1;
        }
        if unfetched && why == Lookup::Expired {
            c.expired_unfetched += 1;
        }
        self.remove_at(pos, loc);
    }

    /// Evicts the live record at `loc` (or reclaims it when it is dead
    /// anyway).
    fn evict_loc(&mut self, loc: u32, ctx: &Ctx) {
        let pos = self.slot_of(loc);
        let (it, cas) = self.item_cas(loc);
        if let Some(why) = ctx.death(it, cas) {
            self.reclaim(pos, loc, why, false);
            return;
        }
        ctx.tap.evicting(it, cas, ctx);
        let (fetched, active, nonzero) = (it.fetched(), it.active(), it.deadline() != 0);
        let c = &mut self.classes[class_of(it.class_size())];
        c.evicted += 1;
        c.evicted_nonzero += u64::from(nonzero);
        c.evicted_unfetched += u64::from(!fetched);
        c.evicted_active += u64::from(active);
        self.remove_at(pos, loc);
    }

    /// Removes `key`; false when there was no live item.
    pub(super) fn delete(&mut self, hash: u32, key: &[u8], ctx: &Ctx) -> bool {
        let Some((pos, loc)) = self.find(hash, key) else {
            return false;
        };
        let (it, cas) = self.item_cas(loc);
        match ctx.death(it, cas) {
            None => {
                self.classes[class_of(it.class_size())].delete_hits += 1;
                self.remove_at(pos, loc);
                true
            }
            Some(why) => {
                self.reclaim(pos, loc, why, false);
                false
            }
        }
    }

    /// Records that the item at `loc` may have been given a deadline in
    /// place (the sweep then looks at its segment).
    fn note_deadline(&mut self, loc: u32) {
        if self.item(loc).deadline() != 0 {
            self.seg_mut(split(loc).0).has_ttl = true;
        }
    }

    /// Whether the expiry sweep can pass `seg` by: nothing in it can have
    /// expired or been flushed.
    fn nothing_to_sweep(seg: &Seg, ctx: &Ctx) -> bool {
        !seg.has_ttl && seg.min_cas > ctx.flush.cas && seg.min_atime >= ctx.flush.before
    }

    /// Whether the oldest segment is a normal one, not the open one, with
    /// at most a quarter of its bytes live.
    fn oldest_is_mostly_dead(&self) -> bool {
        self.fifo.front().is_some_and(|&num| {
            let seg = segment(&self.segs, usize::from(num));
            !seg.large && self.open != Some(num) && seg.live_bytes * 4 <= seg.used
        })
    }

    /// Writes a record where `reserve` made room; returns its location.
    fn place(&mut self, place: Place, h: &Header, key: &[u8], value: &[&[u8]]) -> u32 {
        let vlen: usize = value.iter().map(|p| p.len()).sum();
        let size = h.record_size(key.len(), vlen);
        let num = match place {
            Place::Open => match self.open {
                Some(num) => num,
                None => unreachable!("reserved room in no segment"),
            },
            Place::Own(num) => num,
        };
        let seg = self.seg_mut(usize::from(num));
        let off = seg.used;
        seg.used += size;
        seg.live_bytes += size;
        seg.has_ttl |= h.deadline != 0;
        let cas = h
            .cas
            .unwrap_or_else(|| item::derived_cas(seg.cas_base, off));
        seg.min_cas = seg.min_cas.min(cas);
        seg.min_atime = seg.min_atime.min(h.atime);
        // a field the place's unique goes in (under `-M`)
        let filled;
        let h = if h.cas_field && h.cas.is_none() {
            filled = Header {
                cas: Some(cas),
                ..*h
            };
            &filled
        } else {
            h
        };
        item::write_record(&mut seg.map.bytes_mut()[off..off + size], h, key, value);
        self.class_add(size);
        self.live += 1;
        self.total_items += 1;
        location(num, off)
    }

    /// Stores a new record for `key` (replacing its live record if there
    /// is one), after `reserve`; returns its cas unique.
    fn put(&mut self, hash: u32, place: Place, h: &Header, key: &[u8], value: &[&[u8]]) -> u64 {
        let loc = self.place(place, h, key, value);
        match self.find(hash, key) {
            Some((pos, old)) => {
                self.index.set_id(pos, loc);
                self.kill(old);
            }
            None => self.index.insert(hash, loc),
        }
        self.cas(loc)
    }

    /// A write that does not fit: counted, and (as memcached does) a failed
    /// `set` drops the old value; append/prepend answer NOT_STORED.
    fn no_memory(&mut self, op: StoreOp, hash: u32, key: &[u8], size: usize) -> StoreOutcome {
        self.classes[class_of(size)].outofmemory += 1;
        match op {
            StoreOp::Set => {
                if let Some((pos, loc)) = self.find(hash, key) {
                    self.remove_at(pos, loc);
                }
                StoreOutcome::NoMemory
            }
            StoreOp::Append | StoreOp::Prepend => StoreOutcome::NotStored,
            _ => StoreOutcome::NoMemory,
        }
    }

    /// One attempt at a write. A shortage in the last round is
    /// [`StoreOutcome::NoMemory`].
    pub(super) fn store(
        &mut self,
        ctx: &Ctx,
        req: &StoreRequest,
        round: &mut Round,
    ) -> Attempt<(StoreOutcome, u64)> {
        let StoreRequest {
            op,
            key,
            hash,
            flags,
            deadline,
            data,
            opts,
        } = *req;
        let done = |outcome| Attempt::Done((outcome, 0));
        let old = match self.find_live(hash, key, ctx) {
            Found::Live(loc) => Some(loc),
            Found::Gone(_) | Found::Absent => None,
        };
        // a cas write whose unique is older than the item's, allowed by
        // `invalidate`: stored, but stale, keeping the old deadline and win
        let mut stale_write = false;
        match (op, old) {
            (StoreOp::Add, Some(loc)) => {
                // memcached bumps the item an add ran into
                let it = self.item_mut(loc);
                it.set_atime(ctx.now);
                it.bump();
                return done(StoreOutcome::NotStored);
            }
            (StoreOp::Replace | StoreOp::Append | StoreOp::Prepend, None) => {
                return done(StoreOutcome::NotStored)
            }
            (StoreOp::Cas(_), None) => return done(StoreOutcome::NotFound),
            (StoreOp::Cas(unique), Some(loc)) if self.cas(loc) != unique => {
                if opts.invalidate && unique < self.cas(loc) {
                    stale_write = true;
                } else {
                    return done(StoreOutcome::Exists);
                }
            }
            (StoreOp::Append | StoreOp::Prepend, Some(loc))
                if opts.compare.is_some_and(|c| c != self.cas(loc)) =>
            {
                return done(StoreOutcome::Exists)
            }
            _ => {}
        }
        let appended = matches!(op, StoreOp::Append | StoreOp::Prepend);
        let old_item = old.map(|loc| self.item(loc));
        // append/prepend need the old value after `reserve` may have moved
        // or evicted it
        let (flags, deadline, old_value) = match old_item {
            Some(it) if appended => (it.flags(), it.deadline(), it.value().to_vec()),
            Some(it) if stale_write => (flags, it.deadline(), Vec::new()),
            _ => (flags, deadline, Vec::new()),
        };
        if too_large(
            key.len(),
            old_value.len() + data.len(),
            flags,
            ctx.max_key_value,
        ) {
            // only append/prepend get here (the caller checked the rest):
            // memcached answers NOT_STORED when the joined item is too large
            return done(StoreOutcome::NotStored);
        }
        let vlen = old_value.len() + data.len();
        let h = Header {
            flags,
            deadline,
            deadline_field: deadline_field(ctx.evict, key.len(), vlen),
            cas_field: item::cas_field(ctx.evict),
            atime: ctx.now,
            stale: stale_write,
            win_sent: opts.win || (stale_write && old_item.is_some_and(Item::win_sent)),
            binary_key: opts.binary_key || (appended && old_item.is_some_and(Item::binary_key)),
            // an explicit unique (meta `E`) needs a field; else the place
            // gives one
            cas: opts.cas,
            ..Header::default()
        };
        let size = h.record_size(key.len(), vlen);
        let place = match self.reserve(ctx, &mut round.credit, size) {
            Reserve::Ok(place) => place,
            Reserve::NoMemory => return done(self.no_memory(op, hash, key, size)),
            Reserve::Short(_) if round.last => return done(self.no_memory(op, hash, key, size)),
            Reserve::Short(missing) => return Attempt::Short(missing),
        };
        let value: [&[u8]; 2] = match op {
            StoreOp::Append => [&old_value, data],
            StoreOp::Prepend => [data, &old_value],
            _ => [data, &[]],
        };
        let cas = self.put(hash, place, &h, key, &value);
        Attempt::Done((StoreOutcome::Stored, cas))
    }

    /// One attempt at incr/decr (see [`super::Cache::incr_decr`]).
    pub(super) fn incr_decr(
        &mut self,
        ctx: &Ctx,
        req: &ArithRequest,
        round: &mut Round,
    ) -> Attempt<MetaArithOutcome> {
        let ArithRequest {
            key,
            hash,
            delta,
            incr,
            opts,
        } = *req;
        let Found::Live(loc) = self.find_live(hash, key, ctx) else {
            return Attempt::Done(MetaArithOutcome::NotFound);
        };
        let (current, current_cas) = self.item_cas(loc);
        let (old, old_len) = (current.header(ctx.now, current_cas), current.value().len());
        // memcached's order: an empty value, then the cas, then the digits
        if current.value().is_empty() {
            return Attempt::Done(MetaArithOutcome::NonNumeric);
        }
        if opts.compare.is_some_and(|c| c != 0 && c != current_cas) {
            return Attempt::Done(MetaArithOutcome::Exists);
        }
        let Some(value) = safe_strtoull_cstr(current.value()) else {
            return Attempt::Done(MetaArithOutcome::NonNumeric);
        };
        let new = if incr {
            value.wrapping_add(delta)
        } else {
            value.saturating_sub(delta)
        };
        let mut buf = Backwards::<20>::new();
        let digits = buf.push_u64(new).as_bytes();
        let fits = digits.len() <= old_len;
        // (not in place while a reply sends the value from the cache: see
        // `pin`)
        let fixed = segment(&self.segs, split(loc).0).map.value_fixed();
        let deadline = opts.touch.unwrap_or(old.deadline);
        // The result is a new record, for its new cas unique: one from its
        // place (an explicit one, meta `E`, in a field), so that a key's
        // uniques keep increasing. When the number fits, the same item
        // padded with spaces, as memcached changes it in place; a value a
        // reply holds gets a record of just the digits, as memcached gives
        // an item another request references.
        let same_shape = fits && !fixed;
        let h = if same_shape {
            Header {
                deadline,
                atime: ctx.now,
                uses: old.uses + 1,
                cas: opts.cas,
                cas_field: item::cas_field(ctx.evict),
                ..old
            }
        } else {
            // the number grew longer than the old value (or the old value
            // is held): a new record
            Header {
                flags: old.flags,
                deadline,
                deadline_field: deadline_field(ctx.evict, key.len(), digits.len()),
                cas_field: item::cas_field(ctx.evict),
                atime: ctx.now,
                binary_key: old.binary_key,
                cas: opts.cas,
                ..Header::default()
            }
        };
        let spaces = if same_shape {
            vec![b' '; old_len - digits.len()]
        } else {
            Vec::new()
        };
        let size = h.record_size(key.len(), digits.len() + spaces.len());
        let place = match self.reserve(ctx, &mut round.credit, size) {
            Reserve::Ok(place) => place,
            Reserve::Short(missing) if !round.last => return Attempt::Short(missing),
            Reserve::Short(_) | Reserve::NoMemory => {
                self.classes[class_of(size)].outofmemory += 1;
                return Attempt::Done(MetaArithOutcome::NoMemory);
            }
        };
        let cas = self.put(hash, place, &h, key, &[digits, &spaces]);
        if same_shape {
            // what memcached changes in place is not a new item
            self.total_items -= 1;
        }
        Attempt::Done(MetaArithOutcome::Done {
            value: new,
            cas,
            deadline: h.deadline,
        })
    }

    /// A meta read: calls `f` with the live item before it is marked fetched
    /// and bumped (so `f` sees the previous access), and the mapping a reply
    /// may pin its value in (a large item's); then, when `bump`, marks it
    /// fetched and used.
    #[inline]
    pub(super) fn meta_read<R>(
        &mut self,
        hash: u32,
        key: &[u8],
        ctx: &Ctx,
        bump: bool,
        f: impl FnOnce(&mut Item, u64, Option<&Arc<SharedMap>>) -> (R, Option<Secs>),
    ) -> Result<R, Lookup> {
        let loc = match self.find_live(hash, key, ctx) {
            Found::Live(loc) => loc,
            Found::Gone(why) => return Err(why),
            Found::Absent => return Err(Lookup::Miss),
        };
        let (num, off) = split(loc);
        let seg = self.seg_mut(num);
        // a large item's mapping, which a reply may pin (one atomic
        // increment, for large items only)
        let share = if seg.large {
            seg.map.share().cloned()
        } else {
            None
        };
        let derived = seg.derived_cas(off);
        let it = seg.item_mut(off);
        let cas = it.cas_or(derived);
        let deadline = it.deadline();
        let (r, pending) = f(it, cas, share.as_ref());
        if bump {
            it.mark_fetched();
            it.set_atime(ctx.now);
        }
        if let Some(deadline) = pending {
            // a deadline for a record without the field: a new record
            self.rewrite(ctx, hash, key, |h| h.deadline = deadline);
        } else if it.deadline() != deadline {
            // (a read that leaves the deadline alone does not touch the segment)
            self.note_deadline(loc);
        }
        Ok(r)
    }

    /// Writes `key`'s live item anew with its header changed by `edit`, for
    /// a change its record has no room for in place (a deadline where the
    /// record has no field for one; a new cas unique, which `edit` asks for
    /// by setting `cas` to `None` or an explicit one): the same value, cas
    /// unique and marks otherwise, at the young end. When no memory can be
    /// found for the copy the item is removed, never left as it was.
    /// Records without a deadline field are small (see
    /// `item::deadline_field`), so a touch's copy is cheap.
    fn rewrite(&mut self, ctx: &Ctx, hash: u32, key: &[u8], edit: impl FnOnce(&mut Header)) {
        let Some((_, loc)) = self.find(hash, key) else {
            return;
        };
        let (it, cas) = self.item_cas(loc);
        let mut h = it.header(ctx.now, cas);
        edit(&mut h);
        let value = it.value().to_vec();
        let size = h.record_size(key.len(), value.len());
        match self.reserve(ctx, &mut 0, size) {
            Reserve::Ok(place) => {
                // `reserve` may have moved the item (`put` finds it again)
                // or evicted it: then it stays evicted (room in the open
                // segment needs no undoing; a record of its own, which
                // these small records never get, is filled all the same)
                if self.find(hash, key).is_none() && matches!(place, Place::Open) {
                    return;
                }
                self.put(hash, place, &h, key, &[&value]);
                // a copy, not a new item
                self.total_items -= 1;
            }
            Reserve::NoMemory | Reserve::Short(_) => {
                if let Some((pos, loc)) = self.find(hash, key) {
                    self.remove_at(pos, loc);
                }
            }
        }
    }

    /// A meta delete (see [`super::Cache::meta_delete`]).
    pub(super) fn meta_delete(
        &mut self,
        hash: u32,
        key: &[u8],
        ctx: &Ctx,
        compare: Option<u64>,
        action: DeleteAction,
    ) -> DeleteOutcome {
        let Some((pos, loc)) = self.find(hash, key) else {
            return DeleteOutcome::NotFound;
        };
        let (it, cas) = self.item_cas(loc);
        if let Some(why) = ctx.death(it, cas) {
            self.reclaim(pos, loc, why, false);
            return DeleteOutcome::NotFound;
        }
        if compare.is_some_and(|c| c != cas) {
            return DeleteOutcome::Exists;
        }
        match action {
            DeleteAction::Remove => self.remove_at(pos, loc),
            DeleteAction::Invalidate { deadline, cas } => {
                // written anew for its new unique (see `incr_decr`)
                self.rewrite(ctx, hash, key, |h| {
                    (h.cas, h.stale, h.win_sent) = (cas, true, false);
                    h.deadline = deadline.unwrap_or(h.deadline);
                });
            }
            DeleteAction::ClearValue { cas } => {
                let old = self.item(loc);
                let h = Header {
                    deadline: old.deadline(),
                    deadline_field: deadline_field(ctx.evict, key.len(), 0),
                    cas_field: item::cas_field(ctx.evict),
                    atime: ctx.now,
                    binary_key: old.binary_key(),
                    cas,
                    ..Header::default()
                };
                let size = h.record_size(key.len(), 0);
                // an empty record is small: room for it comes from
                // recycling if need be; with none at all, the item goes
                let place = match self.reserve(ctx, &mut 0, size) {
                    Reserve::Ok(place) => place,
                    Reserve::NoMemory | Reserve::Short(_) => {
                        if let Some((pos, loc)) = self.find(hash, key) {
                            self.remove_at(pos, loc);
                        }
                        return DeleteOutcome::Done;
                    }
                };
                self.put(hash, place, &h, key, &[]);
            }
        }
        DeleteOutcome::Done
    }

    /// Slots and bytes of the index table (`stats`' `hash_power_level`,
    /// `hash_bytes`).
    pub(super) fn index_size(&self) -> (usize, usize) {
        (self.index.slots(), self.index.bytes())
    }

    #[cfg(test)]
    pub(super) fn index_slots(&self) -> usize {
        self.index.slots()
    }

    #[cfg(test)]
    pub(super) fn mapped_bytes(&self) -> usize {
        self.item_bytes
    }

    /// `key`'s item, live or dead, and its cas unique, without touching
    /// it.
    pub(super) fn peek(&self, hash: u32, key: &[u8]) -> Option<(&Item, u64)> {
        self.find(hash, key).map(|(_, loc)| self.item_cas(loc))
    }
}
