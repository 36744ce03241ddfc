//! One shard: a slab arena of items, the index over it, the LRU list
//! threaded through the items, and the shard's counters.
//!
//! Owns everything behind one shard lock. Must not take another shard's lock
//! (the caller holds this one) and must not let the memory budget pass its
//! limit: every byte a shard allocates is charged to the shared [`Budget`]
//! before it is allocated (item blocks, slab and index growth).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use slab::Slab;

use super::crawl::Tap;
use super::index::Index;
use super::item::{self, class_of, malloc_charge, Item, CLASSES, ENTRY_SIZE, NIL};
use super::{
    ArithOpts, DeleteAction, DeleteOutcome, Lookup, MetaArithOutcome, StoreOp, StoreOutcome,
    WriteOpts, ITEM_SIZE_OVERHEAD,
};
use crate::clock::{is_expired, Secs};

/// The memory ceiling and what is charged against it, shared by all shards.
#[derive(Debug)]
pub(super) struct Budget {
    used: AtomicUsize,
    limit: AtomicUsize,
}

impl Budget {
    pub(super) fn new(limit: usize) -> Budget {
        Budget {
            used: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit),
        }
    }

    pub(super) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub(super) fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    pub(super) fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    pub(super) fn over_limit(&self) -> bool {
        self.used() > self.limit()
    }

    /// Adds `n` bytes if the total stays within the limit.
    pub(super) fn try_charge(&self, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let limit = self.limit();
        let mut cur = self.used();
        loop {
            match cur.checked_add(n) {
                Some(new) if new <= limit => {
                    match self.used.compare_exchange_weak(
                        cur,
                        new,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return true,
                        Err(now) => cur = now,
                    }
                }
                _ => return false,
            }
        }
    }

    pub(super) fn uncharge(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }

    /// Applies a signed correction (only ever the difference between what
    /// was reserved and what was really allocated).
    fn adjust(&self, delta: isize) {
        if delta >= 0 {
            self.used.fetch_add(delta as usize, Ordering::Relaxed);
        } else {
            self.uncharge(delta.unsigned_abs());
        }
    }
}

/// What a flush has killed, as of one operation: items with a cas unique
/// at or below `cas` (flush_all now) or last written or read before
/// `before` (a delayed flush that has come due).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FlushView {
    pub(super) cas: u64,
    pub(super) before: Secs,
}

/// What one operation needs from the cache besides the shard.
pub(super) struct Ctx<'a> {
    pub(super) budget: &'a Budget,
    pub(super) evict: bool,
    pub(super) now: Secs,
    pub(super) flush: FlushView,
    pub(super) cas: &'a AtomicU64,
    pub(super) item_size_max: usize,
    /// Who hears about evictions (`watch evictions`).
    pub(super) tap: &'a Tap,
}

impl Ctx<'_> {
    fn next_cas(&self) -> u64 {
        self.cas.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Why `it` is dead, if it is: flushed first, as memcached checks.
    #[inline]
    fn death(&self, it: &Item) -> Option<Lookup> {
        if it.cas() <= self.flush.cas || it.atime < self.flush.before {
            Some(Lookup::Flushed)
        } else if is_expired(it.deadline, self.now) {
            Some(Lookup::Expired)
        } else {
            None
        }
    }

    /// True when `it` is neither flushed nor expired (operator tools).
    #[inline]
    pub(super) fn alive(&self, it: &Item) -> bool {
        self.death(it).is_none()
    }

    /// Why `it` is dead, if it is (operator tools).
    pub(super) fn death_of(&self, it: &Item) -> Option<Lookup> {
        self.death(it)
    }
}

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

enum Reserve {
    Ok,
    NoMemory,
    Short(usize),
}

/// Slab growth step: a quarter of the capacity (so unused slots stay under
/// 20% of the arena), at least 16 slots.
fn slab_growth(capacity: usize) -> usize {
    (capacity / 4).max(16)
}

fn slab_bytes(capacity: usize) -> usize {
    malloc_charge(capacity * ENTRY_SIZE)
}

pub(super) struct Shard {
    items: Slab<Item>,
    index: Index,
    /// Most recently used.
    head: u32,
    /// Least recently used: the next to evict.
    tail: u32,
    hasher: RandomState,
    /// Charged bytes of the slab's and the index's allocations.
    struct_bytes: usize,
    /// Charged bytes of the item blocks.
    item_bytes: usize,
    /// Next slab slot the expiry sweep looks at.
    cursor: usize,
    total_items: u64,
    classes: Box<[ClassCounters; CLASSES]>,
}

impl Shard {
    pub(super) fn new(hasher: RandomState) -> Shard {
        Shard {
            items: Slab::new(),
            index: Index::new(),
            head: NIL,
            tail: NIL,
            hasher,
            struct_bytes: 0,
            item_bytes: 0,
            cursor: 0,
            total_items: 0,
            classes: Box::new([ClassCounters::default(); CLASSES]),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    pub(super) fn total_items(&self) -> u64 {
        self.total_items
    }

    pub(super) fn classes(&self) -> &[ClassCounters; CLASSES] {
        &self.classes
    }

    fn hash(&self, key: &[u8]) -> u32 {
        self.hasher.hash_one(key) as u32
    }

    #[inline]
    fn find(&self, hash: u32, key: &[u8]) -> Option<(usize, u32)> {
        let items = &self.items;
        self.index.find(hash, |id| items[id as usize].key() == key)
    }

    /// Finds `key`'s live item; removes it if it is dead.
    #[inline]
    pub(super) fn find_live(&mut self, hash: u32, key: &[u8], ctx: &Ctx) -> Found {
        let Some((pos, id)) = self.find(hash, key) else {
            return Found::Absent;
        };
        match ctx.death(&self.items[id as usize]) {
            None => Found::Live(id),
            Some(why) => {
                self.reclaim(pos, id, why, false, ctx);
                Found::Gone(why)
            }
        }
    }

    // ---- LRU ----

    fn lru_unlink(&mut self, id: u32) {
        let (prev, next) = {
            let it = &self.items[id as usize];
            (it.prev, it.next)
        };
        if prev == NIL {
            self.head = next;
        } else {
            self.items[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.items[next as usize].prev = prev;
        }
    }

    fn lru_push_head(&mut self, id: u32) {
        let head = self.head;
        {
            let it = &mut self.items[id as usize];
            it.prev = NIL;
            it.next = head;
        }
        if head == NIL {
            self.tail = id;
        } else {
            self.items[head as usize].prev = id;
        }
        self.head = id;
    }

    #[inline]
    fn lru_bump(&mut self, id: u32) {
        if self.head != id {
            self.lru_unlink(id);
            self.lru_push_head(id);
        }
    }

    // ---- removal ----

    fn class_add(&mut self, it: &Item) {
        let c = &mut self.classes[class_of(it.class_size())];
        c.number += 1;
        c.stored += 1;
        c.requested += it.requested() as u64;
    }

    fn class_sub(&mut self, it: &Item) {
        let c = &mut self.classes[class_of(it.class_size())];
        c.number -= 1;
        c.requested -= it.requested() as u64;
    }

    /// Unlinks the item at index slot `pos` and returns its charge to the
    /// budget. The returned item is dropped by the caller.
    fn remove_at(&mut self, pos: usize, id: u32, budget: &Budget) -> Item {
        self.index.remove_at(pos);
        self.lru_unlink(id);
        let it = self.items.remove(id as usize);
        self.class_sub(&it);
        let charge = it.charge();
        self.item_bytes -= charge;
        budget.uncharge(charge);
        it
    }

    fn remove_id(&mut self, id: u32, budget: &Budget) -> Item {
        let hash = self.hash(self.items[id as usize].key());
        match self.index.find_id(hash, id) {
            Some(pos) => self.remove_at(pos, id, budget),
            None => {
                // Unreachable: every item is indexed. Keep the books right anyway.
                debug_assert!(false, "item {id} missing from the index");
                self.lru_unlink(id);
                let it = self.items.remove(id as usize);
                self.class_sub(&it);
                self.item_bytes -= it.charge();
                budget.uncharge(it.charge());
                it
            }
        }
    }

    /// Removes a dead item, counting it as memcached counts reclaimed memory.
    fn reclaim(&mut self, pos: usize, id: u32, why: Lookup, crawler: bool, ctx: &Ctx) {
        let it = &self.items[id as usize];
        let unfetched = !it.fetched();
        let c = &mut self.classes[class_of(it.class_size())];
        c.reclaimed += 1;
        if crawler {
            c.crawler_reclaimed += 1;
        }
        if unfetched && why == Lookup::Expired {
            c.expired_unfetched += 1;
        }
        drop(self.remove_at(pos, id, ctx.budget));
    }

    /// Removes `key`; false when there was no live item.
    pub(super) fn delete(&mut self, hash: u32, key: &[u8], ctx: &Ctx) -> bool {
        match self.find(hash, key) {
            Some((pos, id)) => match ctx.death(&self.items[id as usize]) {
                None => {
                    drop(self.remove_at(pos, id, ctx.budget));
                    true
                }
                Some(why) => {
                    self.reclaim(pos, id, why, false, ctx);
                    false
                }
            },
            None => false,
        }
    }

    /// Removes the least recently used item other than `keep`: an eviction,
    /// or a reclaim when it is dead anyway. False when there is none.
    pub(super) fn evict_tail(&mut self, keep: u32, ctx: &Ctx) -> bool {
        let mut id = self.tail;
        if id == keep && id != NIL {
            id = self.items[id as usize].prev;
        }
        if id == NIL {
            return false;
        }
        let it = &self.items[id as usize];
        if let Some(why) = ctx.death(it) {
            let hash = self.hash(it.key());
            if let Some(pos) = self.index.find_id(hash, id) {
                self.reclaim(pos, id, why, false, ctx);
                return true;
            }
        }
        let it = &self.items[id as usize];
        ctx.tap.evicting(it, ctx);
        let (fetched, active, nonzero) = (it.fetched(), it.active(), it.deadline != 0);
        let c = &mut self.classes[class_of(it.class_size())];
        c.evicted += 1;
        c.evicted_nonzero += u64::from(nonzero);
        c.evicted_unfetched += u64::from(!fetched);
        c.evicted_active += u64::from(active);
        drop(self.remove_id(id, ctx.budget));
        true
    }

    /// Evicts from the tail while `more` says so, at most `max` items.
    pub(super) fn evict_while(&mut self, ctx: &Ctx, max: usize, more: impl Fn() -> bool) -> usize {
        let mut n = 0;
        while n < max && more() && self.evict_tail(NIL, ctx) {
            n += 1;
        }
        n
    }

    // ---- reads ----

    // ---- writes ----

    /// Bytes the slab and index would grow by to take one more item.
    fn growth_for_insert(&self) -> usize {
        let mut bytes = 0;
        let cap = self.items.capacity();
        if self.items.len() == cap {
            bytes += slab_bytes(cap + slab_growth(cap)) - slab_bytes(cap);
        }
        if self.index.needs_grow() {
            bytes += self.index.growth_bytes();
        }
        bytes
    }

    /// Grows the slab and index for one more item; returns the bytes added.
    fn grow_for_insert(&mut self) -> usize {
        if self.items.len() == self.items.capacity() {
            self.items.reserve_exact(slab_growth(self.items.capacity()));
        }
        if self.index.needs_grow() {
            self.index.grow();
        }
        let now = slab_bytes(self.items.capacity()) + self.index.bytes();
        let added = now - self.struct_bytes;
        self.struct_bytes = now;
        added
    }

    /// Makes sure `credit` (bytes already charged for this write) covers
    /// `extra` bytes, plus the slab and index growth of an insert when
    /// `insert`, evicting from this shard's tail (never `keep`) as needed.
    fn reserve(
        &mut self,
        ctx: &Ctx,
        keep: u32,
        credit: &mut usize,
        extra: usize,
        insert: bool,
    ) -> Reserve {
        loop {
            let want = extra + if insert { self.growth_for_insert() } else { 0 };
            if *credit >= want {
                return Reserve::Ok;
            }
            if ctx.budget.try_charge(want - *credit) {
                *credit = want;
                return Reserve::Ok;
            }
            if !ctx.evict {
                return Reserve::NoMemory;
            }
            if !self.evict_tail(keep, ctx) {
                return Reserve::Short(want - *credit);
            }
        }
    }

    /// Settles the budget once a write is done: `added` bytes were really
    /// allocated (negative: freed) against `credit` reserved.
    fn settle(credit: &mut usize, added: isize, budget: &Budget) {
        budget.adjust(added - *credit as isize);
        *credit = 0;
    }

    fn insert(&mut self, hash: u32, it: Item, credit: &mut usize, budget: &Budget) {
        let grown = self.grow_for_insert();
        let charge = it.charge();
        self.class_add(&it);
        let id = self.items.insert(it);
        debug_assert!(id < NIL as usize);
        let id = id as u32;
        self.index.insert(hash, id);
        self.lru_push_head(id);
        self.item_bytes += charge;
        self.total_items += 1;
        Self::settle(credit, (grown + charge) as isize, budget);
    }

    fn replace(&mut self, id: u32, mut it: Item, credit: &mut usize, budget: &Budget) {
        let (old_charge, new_charge) = (self.items[id as usize].charge(), it.charge());
        {
            let old = &self.items[id as usize];
            it.prev = old.prev;
            it.next = old.next;
        }
        self.class_add(&it);
        let old = std::mem::replace(&mut self.items[id as usize], it);
        self.class_sub(&old);
        self.item_bytes = self.item_bytes - old_charge + new_charge;
        self.lru_bump(id);
        self.total_items += 1;
        Self::settle(credit, new_charge as isize - old_charge as isize, budget);
        drop(old);
    }

    /// A write that does not fit: counted, and (as memcached does) a failed
    /// `set` drops the old value; append/prepend answer NOT_STORED.
    fn no_memory(
        &mut self,
        op: StoreOp,
        old: Option<u32>,
        class_size: usize,
        ctx: &Ctx,
    ) -> StoreOutcome {
        self.classes[class_of(class_size)].outofmemory += 1;
        match (op, old) {
            (StoreOp::Set, Some(id)) => {
                drop(self.remove_id(id, ctx.budget));
                StoreOutcome::NoMemory
            }
            (StoreOp::Append | StoreOp::Prepend, _) => StoreOutcome::NotStored,
            _ => StoreOutcome::NoMemory,
        }
    }

    /// One attempt at a write. `block` is the prepared key + data for the
    /// ops that store `data` as the value (taken when used). `last` turns a
    /// shortage into [`StoreOutcome::NoMemory`].
    #[allow(clippy::too_many_arguments)]
    pub(super) fn store(
        &mut self,
        ctx: &Ctx,
        hash: u32,
        op: StoreOp,
        key: &[u8],
        flags: u32,
        deadline: Secs,
        data: &[u8],
        block: &mut Option<Box<[u8]>>,
        opts: &WriteOpts,
        credit: &mut usize,
        last: bool,
    ) -> Attempt<(StoreOutcome, u64)> {
        let done = |outcome| Attempt::Done((outcome, 0));
        let old = match self.find_live(hash, key, ctx) {
            Found::Live(id) => Some(id),
            Found::Gone(_) | Found::Absent => None,
        };
        // a cas write whose unique is older than the item's, allowed by
        // `invalidate`: stored, but stale, keeping the old deadline and win
        let mut stale_write = false;
        match (op, old) {
            (StoreOp::Add, Some(id)) => {
                // memcached bumps the item an add ran into
                self.items[id as usize].atime = ctx.now;
                self.lru_bump(id);
                return done(StoreOutcome::NotStored);
            }
            (StoreOp::Replace | StoreOp::Append | StoreOp::Prepend, None) => {
                return done(StoreOutcome::NotStored)
            }
            (StoreOp::Cas(_), None) => return done(StoreOutcome::NotFound),
            (StoreOp::Cas(unique), Some(id)) if self.items[id as usize].cas() != unique => {
                if opts.invalidate && unique < self.items[id as usize].cas() {
                    stale_write = true;
                } else {
                    return done(StoreOutcome::Exists);
                }
            }
            (StoreOp::Append | StoreOp::Prepend, Some(id))
                if opts
                    .compare
                    .is_some_and(|c| c != self.items[id as usize].cas()) =>
            {
                return done(StoreOutcome::Exists)
            }
            _ => {}
        }
        let (total, flags, deadline) = match (op, old) {
            (StoreOp::Append | StoreOp::Prepend, Some(id)) => {
                let it = &self.items[id as usize];
                (it.total_len() + data.len(), it.flags, it.deadline)
            }
            (_, Some(id)) if stale_write => (
                key.len() + data.len(),
                flags,
                self.items[id as usize].deadline,
            ),
            _ => (key.len() + data.len(), flags, deadline),
        };
        if total + ITEM_SIZE_OVERHEAD > ctx.item_size_max || total > item::MAX_TOTAL_LEN {
            // only append/prepend get here (the caller checked the rest):
            // memcached answers NOT_STORED when the joined item is too large
            return done(StoreOutcome::NotStored);
        }
        let charge = malloc_charge(total);
        let class_size = charge + ENTRY_SIZE;
        if charge > ctx.budget.limit() {
            return done(self.no_memory(op, old, class_size, ctx));
        }
        let reserved = match old {
            Some(id) => {
                let old_charge = self.items[id as usize].charge();
                self.reserve(ctx, id, credit, charge.saturating_sub(old_charge), false)
            }
            None => self.reserve(ctx, NIL, credit, charge, true),
        };
        match reserved {
            Reserve::Ok => {}
            Reserve::NoMemory => return done(self.no_memory(op, old, class_size, ctx)),
            Reserve::Short(_) if last => return done(self.no_memory(op, old, class_size, ctx)),
            Reserve::Short(missing) => return Attempt::Short(missing),
        }
        let bytes = match (op, old) {
            (StoreOp::Append, Some(id)) => {
                let it = &self.items[id as usize];
                item::block(&[it.key(), it.value(), data])
            }
            (StoreOp::Prepend, Some(id)) => {
                let it = &self.items[id as usize];
                item::block(&[it.key(), data, it.value()])
            }
            _ => block.take().unwrap_or_else(|| item::block(&[key, data])),
        };
        let cas = opts.cas.unwrap_or_else(|| ctx.next_cas());
        let mut it = Item::from_block(bytes, key.len(), flags, deadline, ctx.now, cas);
        let old_item = old.map(|id| &self.items[id as usize]);
        let appended = matches!(op, StoreOp::Append | StoreOp::Prepend);
        it.set_binary_key(opts.binary_key || (appended && old_item.is_some_and(Item::binary_key)));
        it.set_stale(stale_write);
        it.set_win_sent(opts.win || (stale_write && old_item.is_some_and(Item::win_sent)));
        let cas = it.cas();
        match old {
            Some(id) => self.replace(id, it, credit, ctx.budget),
            None => self.insert(hash, it, credit, ctx.budget),
        }
        Attempt::Done((StoreOutcome::Stored, cas))
    }

    /// One attempt at incr/decr (see [`super::Cache::incr_decr`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn incr_decr(
        &mut self,
        ctx: &Ctx,
        hash: u32,
        key: &[u8],
        delta: u64,
        incr: bool,
        opts: &ArithOpts,
        credit: &mut usize,
        last: bool,
    ) -> Attempt<MetaArithOutcome> {
        let Found::Live(id) = self.find_live(hash, key, ctx) else {
            return Attempt::Done(MetaArithOutcome::NotFound);
        };
        let current = &self.items[id as usize];
        // memcached's order: an empty value, then the cas, then the digits
        if current.value().is_empty() {
            return Attempt::Done(MetaArithOutcome::NonNumeric);
        }
        if opts.compare.is_some_and(|c| c != 0 && c != current.cas()) {
            return Attempt::Done(MetaArithOutcome::Exists);
        }
        let Some(value) = parse_counter(current.value()) else {
            return Attempt::Done(MetaArithOutcome::NonNumeric);
        };
        let cas = opts.cas.unwrap_or_else(|| ctx.next_cas());
        let new = if incr {
            value.wrapping_add(delta)
        } else {
            value.saturating_sub(delta)
        };
        let mut buf = [0u8; 20];
        let digits = format_u64(new, &mut buf);
        let it = &mut self.items[id as usize];
        if digits.len() <= it.value().len() {
            // in place, padded with spaces as memcached does
            let v = it.value_mut();
            v[..digits.len()].copy_from_slice(digits);
            v[digits.len()..].fill(b' ');
            it.set_cas(cas);
            it.atime = ctx.now;
            if let Some(deadline) = opts.touch {
                it.deadline = deadline;
            }
            let done = MetaArithOutcome::Done {
                value: new,
                cas: it.cas(),
                deadline: it.deadline,
            };
            self.lru_bump(id);
            return Attempt::Done(done);
        }
        // the number grew longer than the old value: a new item
        let charge = malloc_charge(key.len() + digits.len());
        let old_charge = it.charge();
        match self.reserve(ctx, id, credit, charge.saturating_sub(old_charge), false) {
            Reserve::Ok => {}
            Reserve::Short(missing) if !last => return Attempt::Short(missing),
            Reserve::Short(_) | Reserve::NoMemory => {
                self.classes[class_of(charge + ENTRY_SIZE)].outofmemory += 1;
                return Attempt::Done(MetaArithOutcome::NoMemory);
            }
        }
        let old = &self.items[id as usize];
        let deadline = opts.touch.unwrap_or(old.deadline);
        let mut it = Item::from_block(
            item::block(&[key, digits]),
            key.len(),
            old.flags,
            deadline,
            ctx.now,
            cas,
        );
        it.set_binary_key(old.binary_key());
        let done = MetaArithOutcome::Done {
            value: new,
            cas: it.cas(),
            deadline,
        };
        self.replace(id, it, credit, ctx.budget);
        Attempt::Done(done)
    }

    /// A meta read: calls `f` with the live item before it is marked fetched
    /// and bumped (so `f` sees the previous access), then, when `bump`,
    /// marks and bumps it.
    #[inline]
    pub(super) fn meta_read<R>(
        &mut self,
        hash: u32,
        key: &[u8],
        ctx: &Ctx,
        bump: bool,
        f: impl FnOnce(&mut Item) -> R,
    ) -> Result<R, Lookup> {
        let id = match self.find_live(hash, key, ctx) {
            Found::Live(id) => id,
            Found::Gone(why) => return Err(why),
            Found::Absent => return Err(Lookup::Miss),
        };
        let it = &mut self.items[id as usize];
        let r = f(it);
        if bump {
            it.mark_fetched();
            it.atime = ctx.now;
            self.lru_bump(id);
        }
        Ok(r)
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
        let Some((pos, id)) = self.find(hash, key) else {
            return DeleteOutcome::NotFound;
        };
        if let Some(why) = ctx.death(&self.items[id as usize]) {
            self.reclaim(pos, id, why, false, ctx);
            return DeleteOutcome::NotFound;
        }
        if compare.is_some_and(|c| c != self.items[id as usize].cas()) {
            return DeleteOutcome::Exists;
        }
        match action {
            DeleteAction::Remove => drop(self.remove_at(pos, id, ctx.budget)),
            DeleteAction::Invalidate { deadline, cas } => {
                let it = &mut self.items[id as usize];
                it.set_cas(cas.unwrap_or_else(|| ctx.next_cas()));
                it.set_stale(true);
                it.set_win_sent(false);
                if let Some(deadline) = deadline {
                    it.deadline = deadline;
                }
            }
            DeleteAction::ClearValue { cas } => {
                // shrinking never needs memory: the replace credits the difference
                let old = &self.items[id as usize];
                let cas = cas.unwrap_or_else(|| ctx.next_cas());
                let mut it = Item::from_block(
                    item::block(&[key]),
                    key.len(),
                    0,
                    old.deadline,
                    ctx.now,
                    cas,
                );
                it.set_binary_key(old.binary_key());
                self.replace(id, it, &mut 0, ctx.budget);
            }
        }
        DeleteOutcome::Done
    }

    // ---- background ----

    /// Looks at up to `visits` slab slots from the cursor, removing dead
    /// items (at most `removals`). Returns how many were removed.
    pub(super) fn sweep(&mut self, ctx: &Ctx, visits: usize, removals: usize) -> usize {
        let cap = self.items.capacity();
        let mut removed = 0;
        for _ in 0..visits.min(cap) {
            if removed == removals {
                break;
            }
            if self.cursor >= cap {
                self.cursor = 0;
            }
            let id = self.cursor as u32;
            self.cursor += 1;
            let Some(it) = self.items.get(id as usize) else {
                continue;
            };
            if let Some(why) = ctx.death(it) {
                let hash = self.hash(it.key());
                if let Some(pos) = self.index.find_id(hash, id) {
                    self.reclaim(pos, id, why, true, ctx);
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Age (seconds) of each class's least recently used item in this shard:
    /// walks from the LRU tail (the first item of a class met there is the
    /// class's oldest) until every class with items was met, at most `walk`
    /// items; a class not met by then gets the age of the last item walked,
    /// which its oldest item is younger than.
    pub(super) fn class_ages(&self, now: Secs, walk: usize, ages: &mut [u64; CLASSES]) {
        let mut missing = self.classes.iter().filter(|c| c.number > 0).count();
        let mut seen = [false; CLASSES];
        let mut id = self.tail;
        let mut last_age = 0;
        let mut steps = 0;
        while id != NIL && missing > 0 && steps < walk {
            let it = &self.items[id as usize];
            let c = class_of(it.class_size());
            last_age = u64::from(now.saturating_sub(it.atime));
            if !seen[c] {
                seen[c] = true;
                missing -= 1;
                ages[c] = ages[c].max(last_age);
            }
            id = it.prev;
            steps += 1;
        }
        for (c, counters) in self.classes.iter().enumerate() {
            if counters.number > 0 && !seen[c] {
                ages[c] = ages[c].max(last_age);
            }
        }
    }

    #[cfg(test)]
    pub(super) fn slab_capacity(&self) -> usize {
        self.items.capacity()
    }

    #[cfg(test)]
    pub(super) fn index_slots(&self) -> usize {
        self.index.slots()
    }

    /// Checks every invariant and returns the bytes this shard has charged.
    #[cfg(test)]
    pub(super) fn check(&self) -> usize {
        use std::collections::HashSet;
        assert_eq!(self.index.len(), self.items.len(), "index and slab sizes");
        let mut item_bytes = 0;
        let mut per_class = [0u64; CLASSES];
        for (id, it) in self.items.iter() {
            let hash = self.hash(it.key());
            assert_eq!(
                self.find(hash, it.key()).map(|(_, i)| i as usize),
                Some(id),
                "indexed"
            );
            item_bytes += it.charge();
            per_class[class_of(it.class_size())] += 1;
        }
        let ids: HashSet<u32> = self.index.entries().map(|(_, id)| id).collect();
        assert_eq!(ids.len(), self.items.len(), "index ids are unique");
        assert_eq!(item_bytes, self.item_bytes, "item bytes");
        for (c, n) in per_class.iter().enumerate() {
            assert_eq!(self.classes[c].number, *n, "class {c} count");
        }
        let (mut n, mut prev, mut id) = (0, NIL, self.head);
        while id != NIL {
            let it = &self.items[id as usize];
            assert_eq!(it.prev, prev, "LRU back link");
            prev = id;
            id = it.next;
            n += 1;
            assert!(n <= self.items.len(), "LRU cycle");
        }
        assert_eq!(
            (n, self.tail),
            (self.items.len(), prev),
            "LRU covers every item"
        );
        assert_eq!(
            self.struct_bytes,
            slab_bytes(self.items.capacity()) + self.index.bytes(),
            "structure bytes"
        );
        self.item_bytes + self.struct_bytes
    }

    /// The LRU from least to most recently used (tests).
    #[cfg(test)]
    pub(super) fn lru_keys(&self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut id = self.tail;
        while id != NIL {
            let it = &self.items[id as usize];
            out.push(it.key().to_vec());
            id = it.prev;
        }
        out
    }

    /// The item in slab slot `id`, if the slot is occupied (operator tools
    /// walk the slots from a cursor: an item keeps its slot for its life).
    #[inline]
    pub(super) fn slot(&self, id: usize) -> Option<&Item> {
        self.items.get(id)
    }

    /// Slab slots (occupied or not) a walk over this shard visits.
    pub(super) fn slot_count(&self) -> usize {
        self.items.capacity()
    }

    /// `key`'s item, live or dead, without touching it or the LRU.
    pub(super) fn peek(&self, hash: u32, key: &[u8]) -> Option<&Item> {
        self.find(hash, key).map(|(_, id)| &self.items[id as usize])
    }
}

/// memcached's `safe_strtoull` on a stored value (which memcached follows
/// with "\r\n"): optional leading whitespace, an optional sign, at least one
/// digit, no overflow, then whitespace, NUL or the end. A '-' is refused
/// only when the negated value is negative as an i64 (so "-0" reads as 0).
fn parse_counter(v: &[u8]) -> Option<u64> {
    fn space(b: u8) -> bool {
        matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
    }
    let mut i = v.iter().take_while(|&&b| space(b)).count();
    let negative = match v.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let start = i;
    let mut n: u64 = 0;
    while let Some(&b) = v.get(i).filter(|b| b.is_ascii_digit()) {
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        i += 1;
    }
    if i == start {
        return None;
    }
    match v.get(i) {
        None | Some(0) => {}
        Some(&b) if space(b) => {}
        Some(_) => return None,
    }
    if negative {
        let n = n.wrapping_neg();
        return ((n as i64) >= 0).then_some(n);
    }
    Some(n)
}

/// Writes `n` in decimal into `buf`, returning the digits.
fn format_u64(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_parse_like_strtoull() {
        // checked against memcached 1.6.18 with incr (see the storage report)
        let ok: &[(&[u8], u64)] = &[
            (b"100", 100),
            (b"99 ", 99),
            (b" 12", 12),
            (b"12 abc", 12),
            (b"5\t\t", 5),
            (b"18446744073709551615", u64::MAX),
            (b"000000000000000000000007", 7),
            (b"-0", 0),
            (b"+5", 5),
            (b"-18446744073709551615", 1),
            (b"7\0x", 7),
        ];
        for (v, n) in ok {
            assert_eq!(
                parse_counter(v),
                Some(*n),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
        let bad: &[&[u8]] = &[
            b"",
            b" ",
            b"12abc",
            b"18446744073709551616",
            b"-1",
            b"+",
            b"0x10",
            b"abc",
            b"1.5",
        ];
        for v in bad {
            assert_eq!(parse_counter(v), None, "{:?}", String::from_utf8_lossy(v));
        }
    }

    #[test]
    fn formats_decimal() {
        let mut buf = [0; 20];
        assert_eq!(format_u64(0, &mut buf), b"0");
        assert_eq!(format_u64(99, &mut buf), b"99");
        assert_eq!(format_u64(u64::MAX, &mut buf), b"18446744073709551615");
    }

    #[test]
    fn budget_never_passes_the_limit() {
        let b = Budget::new(100);
        assert!(b.try_charge(60));
        assert!(!b.try_charge(41));
        assert!(b.try_charge(40));
        assert_eq!(b.used(), 100);
        assert!(b.try_charge(0));
        b.uncharge(50);
        b.adjust(-10);
        b.adjust(5);
        assert_eq!(b.used(), 45);
        b.set_limit(10);
        assert!(b.over_limit());
    }
}
