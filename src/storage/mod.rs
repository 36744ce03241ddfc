//! The cache: index, segments of packed records, byte accounting, CLOCK
//! eviction and the expiry sweep.
//!
//! Owns every stored byte and the rule that their sum stays under the memory
//! ceiling. Must not know wire formats or sockets: callers pass keys, values
//! and deadlines (in [`crate::clock`] seconds) and get outcome enums back.

pub mod crawl;
mod index;
mod item;
mod shard;

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::clock::{Clock, Secs};
#[cfg(test)]
use item::pages;
use item::{CLASSES, CLASS_SIZES, HEADER_WITH_FLAGS, MAX_KEY_LEN, MAX_TOTAL_LEN};
use shard::{Attempt, Budget, ClassCounters, Ctx, FlushView, Shard};

/// memcached's per-item overhead in its size rule (48-byte header, 8-byte
/// cas, the key's NUL and the value's "\r\n"): an item is too large when
/// key + value + this (+ 4 for client flags other than 0) exceeds `-I`.
pub const ITEM_SIZE_OVERHEAD: usize = 59;

/// memcached's rule for an item too large for `-I` (`item_size_max`), or
/// for a record at all.
fn too_large(key: usize, value: usize, flags: u32, item_size_max: usize) -> bool {
    let flags_size = if flags == 0 { 0 } else { 4 };
    key > MAX_KEY_LEN
        || key + value > MAX_TOTAL_LEN
        || key + value + flags_size + ITEM_SIZE_OVERHEAD > item_size_max
}

/// Records the expiry sweep looks at per shard per tick. Looking at one
/// reads its 20-byte header (sequentially), so 1024 of them hold a shard's
/// lock for a few microseconds; at 10 ticks a second a shard of a million
/// items is swept every ~100 s.
const SWEEP_VISITS: usize = 1024;
/// Dead items the sweep removes per shard per tick (each costs a hash and a
/// probe, ~0.1–0.2 µs): bounds the lock hold to tens of microseconds.
const SWEEP_REMOVALS: usize = 256;
/// Records a walk for `class_stats` ages looks at per shard.
const AGE_WALK: usize = 10_000;
/// Segments each shard releases per round when `set_memory_limit` shrinks
/// the cache (one: the shards give up memory evenly).
const SHRINK_BATCH: usize = 1;
/// See [`CacheConfig::shards`].
const MAX_SHARDS: usize = 4096;
/// Bytes of a normal segment. Large enough that records up to a quarter of
/// it (16 KiB) pack with others and the waste at a segment's end stays
/// small; small enough that recycling one, under the shard lock, walks at
/// most ~1,000 records of 64 bytes, and that `-m 64` over 32 shards gives
/// each shard 32 of them (an eviction frees 3% of a shard's items).
const SEGMENT: usize = 64 * 1024;
/// Segments' worth of memory a shard gets at least: a small ceiling gets
/// fewer shards (`-m 2`: 8).
const MIN_SEGMENTS_PER_SHARD: usize = 32;
/// Memory a shard is sized for at most: a shard addresses 4095 segments,
/// and a record just over a quarter segment takes one of its own.
const MAX_SHARD_BYTES: usize = 1000 * SEGMENT;

/// The number of shards for `asked` (a power of two, 1 to 4096) and a
/// ceiling of `limit` bytes: at most one per [`MIN_SEGMENTS_PER_SHARD`]
/// segments, at least one per [`MAX_SHARD_BYTES`].
fn shard_count(asked: usize, limit: usize) -> usize {
    let pow2_floor = |n: usize| 1 << (usize::BITS - 1 - n.max(1).leading_zeros());
    let most = pow2_floor(limit / (MIN_SEGMENTS_PER_SHARD * SEGMENT));
    let least = limit.div_ceil(MAX_SHARD_BYTES).next_power_of_two();
    asked
        .next_power_of_two()
        .min(most)
        .max(least)
        .clamp(1, MAX_SHARDS)
}

/// Rounds of "evict in other shards, retry" before a write gives up.
const MAX_ATTEMPTS: usize = 4;

/// How the cache is sized and behaves when full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// The ceiling for everything the cache allocates, in bytes (`-m`).
    pub memory_limit: usize,
    /// Evict least recently used items when full; `false` (`-M`) makes a
    /// write that does not fit fail with [`StoreOutcome::NoMemory`].
    pub evict: bool,
    /// Number of shards, a power of two (rounded up; fitted to the memory
    /// limit, see [`shard_count`]; at most 4096: each shard carries ~4 KB
    /// of fixed counters).
    pub shards: usize,
    /// Largest item (key + value + overhead) accepted, `-I`.
    pub item_size_max: usize,
}

/// A write, with the compare-and-swap unique for `Cas`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOp {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    Stored,
    /// add on an existing key, replace/append/prepend on a missing one; and,
    /// as memcached 1.6 answers, an append/prepend whose result would be too
    /// large or does not fit in memory (the old value stays).
    NotStored,
    /// cas with a stale unique.
    Exists,
    /// cas on a missing key.
    NotFound,
    /// key + value + [`ITEM_SIZE_OVERHEAD`] exceeds `-I` (or the key is over
    /// 255 bytes). A `set` that is too large removes the old value, as
    /// memcached's does.
    TooLarge,
    /// Does not fit and eviction is off (or nothing is left to evict, or the
    /// item alone is larger than the memory limit). A `set` that fails so
    /// removes the old value (memcached does the same); replace and cas keep it.
    NoMemory,
}

/// Why a read missed, so `stats` can tell expired and flushed from absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Hit,
    Miss,
    Expired,
    Flushed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOutcome {
    /// The new value.
    Value(u64),
    NotFound,
    NonNumeric,
    NoMemory,
}

/// What the meta commands add to a write (all off for the classic ones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOpts {
    /// Append/prepend only if the item's unique is this (else `Exists`).
    pub compare: Option<u64>,
    /// With [`StoreOp::Cas`]: a unique *older* than the item's still stores,
    /// but marks the item stale, keeping its deadline and win token.
    pub invalidate: bool,
    /// The new item's cas unique, instead of the next one (meta `E`).
    /// Kept to 48 bits.
    pub cas: Option<u64>,
    /// The key came base64-encoded; meta replies echo it encoded.
    pub binary_key: bool,
    /// The new item starts with its recache token handed out (`mg N`).
    pub win: bool,
}

/// What the meta arithmetic command adds to incr/decr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ArithOpts {
    /// Only if the item's unique is this (0 means no check, as memcached).
    pub compare: Option<u64>,
    /// A new deadline on success.
    pub touch: Option<Secs>,
    /// The new cas unique, instead of the next one.
    pub cas: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaArithOutcome {
    /// The new value, the item's new unique and its deadline.
    Done {
        value: u64,
        cas: u64,
        deadline: Secs,
    },
    NotFound,
    /// The compare unique did not match.
    Exists,
    NonNumeric,
    NoMemory,
}

/// What a meta delete does to a live item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteAction {
    Remove,
    /// `md I`: mark stale with a new unique, hand the win token out again,
    /// optionally with a new deadline.
    Invalidate {
        deadline: Option<Secs>,
        cas: Option<u64>,
    },
    /// `md x`: keep the item, with an empty value, client flags 0 and a new
    /// unique.
    ClearValue {
        cas: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    Done,
    NotFound,
    /// The compare unique did not match.
    Exists,
}

/// A live item as a meta command sees it, while its shard is locked: what
/// it holds, its access history before this command, and the meta marks.
pub struct MetaView<'a> {
    item: &'a mut item::Item,
}

impl MetaView<'_> {
    pub fn key(&self) -> &[u8] {
        self.item.key()
    }
    pub fn value(&self) -> &[u8] {
        self.item.value()
    }
    pub fn flags(&self) -> u32 {
        self.item.flags()
    }
    pub fn cas(&self) -> u64 {
        self.item.cas()
    }
    /// Clock second it expires at; 0 = never.
    pub fn deadline(&self) -> Secs {
        self.item.deadline()
    }
    pub fn set_deadline(&mut self, deadline: Secs) {
        self.item.set_deadline(deadline);
    }
    /// Clock second of its last write or read.
    pub fn last_access(&self) -> Secs {
        self.item.atime()
    }
    pub fn fetched(&self) -> bool {
        self.item.fetched()
    }
    pub fn stale(&self) -> bool {
        self.item.stale()
    }
    pub fn win_sent(&self) -> bool {
        self.item.win_sent()
    }
    /// Hands the recache token out: later readers see `Z`.
    pub fn set_win_sent(&mut self) {
        self.item.set_win_sent(true);
    }
    pub fn binary_key(&self) -> bool {
        self.item.binary_key()
    }
}

/// A stored item as a reader sees it, valid while the shard is locked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemRef<'a> {
    pub key: &'a [u8],
    pub flags: u32,
    pub data: &'a [u8],
    pub cas: u64,
}

/// Totals for `stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub limit_maxbytes: u64,
    /// Accounted bytes in use (everything counted against the limit: the
    /// segments' and large items' mappings, and the index tables).
    pub bytes: u64,
    /// Items held, including dead ones not yet met by an access or the sweep.
    pub curr_items: u64,
    /// Successful stores (incl. an incr/decr that rewrote a longer item).
    pub total_items: u64,
    /// Live items evicted to make room.
    pub evictions: u64,
    /// Expired or flushed items removed: on access, when their segment is
    /// recycled, or by the sweep.
    pub reclaimed: u64,
    /// Reclaimed items that had expired (not flushed) without being read.
    pub expired_unfetched: u64,
    /// Evicted items never read.
    pub evicted_unfetched: u64,
    /// Evicted items that had been read at least twice.
    pub evicted_active: u64,
    /// Items removed by the background expirer.
    pub crawler_reclaimed: u64,
    /// Writes refused for lack of memory (`-M`).
    pub outofmemory: u64,
}

/// Per size class figures for `stats items` / `stats slabs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassStats {
    /// Class number, from 1.
    pub id: u32,
    /// Largest item total size (bytes) counted in this class.
    pub chunk_size: u64,
    pub number: u64,
    /// Seconds since the least recently used item of the class was accessed.
    pub age: u64,
    /// Sum of key + value + header bytes of the class's items.
    pub mem_requested: u64,
    pub evicted: u64,
    pub evicted_nonzero: u64,
    pub evicted_unfetched: u64,
    /// Evicted although used since their last turn of the CLOCK.
    pub evicted_active: u64,
    pub expired_unfetched: u64,
    pub reclaimed: u64,
    /// Expired items the sweep (or a requested crawl) took out.
    pub crawler_reclaimed: u64,
    pub outofmemory: u64,
}

/// The sharded cache. Shared by all workers (`Arc<Cache>`); every method
/// takes `&self` and locks one shard at a time, never two.
///
/// Memory: every allocation the cache makes for items is charged to one
/// budget before it is made: segments (page mappings) and the index tables
/// by their size. The sum never passes the limit (except right after the
/// limit is lowered, until the eviction that follows). An item costs its
/// record (a 20-byte header, 24 with client flags, then key and value) and
/// an 8-byte index slot at a load of 70% to 87.5%.
pub struct Cache {
    shards: Box<[PaddedShard]>,
    hasher: RandomState,
    budget: Arc<Budget>,
    /// The last cas unique handed out (uniques start at 1).
    last_cas: AtomicU64,
    flush: Flush,
    clock: Arc<Clock>,
    evict: bool,
    item_size_max: usize,
    /// Operator tools' state (see `crawl`).
    crawler: crawl::Crawler,
}

/// A shard lock on its own cache lines, so that workers locking
/// neighbouring shards do not contend on one line.
#[repr(align(128))]
struct PaddedShard(Mutex<Shard>);

/// flush_all state. Readers take a [`FlushView`] with three atomic loads;
/// writers (flush_all, rare) serialise on `lock`.
#[derive(Debug, Default)]
struct Flush {
    /// Items with a cas unique at or below this are flushed (flush_all now).
    cas: AtomicU64,
    /// Items last written or read before this second are flushed (delayed
    /// flushes that have come due).
    before: AtomicU32,
    /// A delayed flush not yet due (0: none).
    pending: AtomicU32,
    lock: Mutex<()>,
}

impl Flush {
    fn view(&self, now: Secs) -> FlushView {
        let pending = self.pending.load(Ordering::Acquire);
        let mut before = self.before.load(Ordering::Acquire);
        if pending != 0 && pending <= now {
            before = before.max(pending);
        }
        FlushView {
            cas: self.cas.load(Ordering::Acquire),
            before,
        }
    }

    fn flush(&self, at: Option<Secs>, now: Secs, last_cas: &AtomicU64) {
        let _serial = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        // a delayed flush that has come due stays in force
        let pending = self.pending.load(Ordering::Acquire);
        if pending != 0 && pending <= now {
            self.before.fetch_max(pending, Ordering::AcqRel);
        }
        match at {
            Some(deadline) if deadline > now => self.pending.store(deadline, Ordering::Release),
            _ => {
                // as memcached, a new flush_all replaces a pending one
                self.pending.store(0, Ordering::Release);
                self.cas
                    .fetch_max(last_cas.load(Ordering::Acquire), Ordering::AcqRel);
            }
        }
    }
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("shards", &self.shards.len())
            .field("bytes", &self.budget.used())
            .field("limit", &self.budget.limit())
            .field("evict", &self.evict)
            .field("item_size_max", &self.item_size_max)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// `config.shards` is rounded up to a power of two and fitted to the
    /// ceiling (see [`shard_count`]).
    pub fn new(config: CacheConfig, clock: Arc<Clock>) -> Cache {
        let n = shard_count(config.shards, config.memory_limit);
        let hasher = RandomState::new();
        let budget = Arc::new(Budget::new(config.memory_limit));
        let shards = (0..n)
            .map(|_| {
                let shard = Shard::new(hasher.clone(), SEGMENT, Arc::clone(&budget));
                PaddedShard(Mutex::new(shard))
            })
            .collect();
        Cache {
            shards,
            hasher,
            budget,
            last_cas: AtomicU64::new(0),
            flush: Flush::default(),
            evict: config.evict,
            item_size_max: config.item_size_max,
            crawler: crawl::Crawler::new(clock.epoch_unix()),
            clock,
        }
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        self.shards[shard]
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// One hash per key: the high half picks the shard, the low half goes
    /// to the shard's index.
    #[inline]
    fn locate(&self, key: &[u8]) -> (usize, u32) {
        let h = self.hasher.hash_one(key);
        (((h >> 32) as usize) & (self.shards.len() - 1), h as u32)
    }

    fn ctx(&self) -> Ctx<'_> {
        let now = self.clock.now();
        Ctx {
            evict: self.evict,
            now,
            flush: self.flush.view(now),
            cas: &self.last_cas,
            item_size_max: self.item_size_max,
            tap: &self.crawler.tap,
        }
    }

    /// Looks `key` up; on a hit calls `f` with the item while its shard is
    /// locked, marks it fetched and used (see eviction). `f` must not call
    /// back into the cache (the shard lock is held). An expired or flushed
    /// item is removed and reported as such. Allocates nothing.
    #[inline]
    pub fn get<R>(&self, key: &[u8], f: impl FnOnce(ItemRef<'_>) -> R) -> (Lookup, Option<R>) {
        self.read(key, None, f)
    }

    /// `get` that also sets a new deadline (gat/gats).
    pub fn get_and_touch<R>(
        &self,
        key: &[u8],
        deadline: Secs,
        f: impl FnOnce(ItemRef<'_>) -> R,
    ) -> (Lookup, Option<R>) {
        self.read(key, Some(deadline), f)
    }

    #[inline]
    fn read<R>(
        &self,
        key: &[u8],
        touch: Option<Secs>,
        f: impl FnOnce(ItemRef<'_>) -> R,
    ) -> (Lookup, Option<R>) {
        self.meta_read(key, true, |item| {
            if let Some(deadline) = touch {
                item.set_deadline(deadline);
            }
            f(ItemRef {
                key: item.key(),
                flags: item.flags(),
                data: item.value(),
                cas: item.cas(),
            })
        })
    }

    /// Sets a new deadline; false when the key is absent. Keeps the cas
    /// unique, as memcached does.
    pub fn touch(&self, key: &[u8], deadline: Secs) -> bool {
        self.read(key, Some(deadline), |_| ()).0 == Lookup::Hit
    }

    /// set/add/replace/append/prepend/cas. Append and prepend keep the old
    /// flags and deadline. Every successful write gets a new CAS unique.
    ///
    /// As memcached 1.6: a `set` that fails (TooLarge, NoMemory) removes the
    /// key's old value; other ops leave it. Append/prepend that would make
    /// the item too large, or do not fit in memory, are `NotStored`.
    pub fn store(
        &self,
        op: StoreOp,
        key: &[u8],
        flags: u32,
        deadline: Secs,
        data: &[u8],
    ) -> StoreOutcome {
        let opts = WriteOpts::default();
        self.store_with(op, key, flags, deadline, data, &opts).0
    }

    /// [`Cache::store`] with the meta command options; also returns the
    /// stored item's cas unique (0 when nothing was stored).
    pub fn store_with(
        &self,
        op: StoreOp,
        key: &[u8],
        flags: u32,
        deadline: Secs,
        data: &[u8],
        opts: &WriteOpts,
    ) -> (StoreOutcome, u64) {
        if too_large(key.len(), data.len(), flags, self.item_size_max) {
            if op == StoreOp::Set {
                self.delete(key);
            }
            return (StoreOutcome::TooLarge, 0);
        }
        let (s, hash) = self.locate(key);
        self.with_retries(s, |shard, ctx, credit, last| {
            shard.store(
                ctx, hash, op, key, flags, deadline, data, opts, credit, last,
            )
        })
    }

    /// Runs a write against shard `s`; when the shard has nothing left to
    /// evict, evicts in the other shards (one lock at a time) and retries.
    fn with_retries<T>(
        &self,
        s: usize,
        mut attempt: impl FnMut(&mut Shard, &Ctx, &mut usize, bool) -> Attempt<T>,
    ) -> T {
        // bytes charged to the budget for this write and not yet used
        let mut credit = 0;
        let mut last = false;
        let mut round = 1;
        let out = loop {
            let ctx = self.ctx();
            let result = attempt(&mut self.lock(s), &ctx, &mut credit, last);
            match result {
                Attempt::Done(out) => break out,
                Attempt::Short(missing) => {
                    let found = self.evict_elsewhere(s, missing, &ctx, &mut credit);
                    round += 1;
                    last = !found || round == MAX_ATTEMPTS;
                }
            }
        };
        if credit > 0 {
            self.budget.uncharge(credit);
        }
        out
    }

    /// Evicts from the shards other than `own` until `missing` bytes can be
    /// charged (adding them to `credit`). False when everything was evicted
    /// and they still cannot.
    fn evict_elsewhere(&self, own: usize, missing: usize, ctx: &Ctx, credit: &mut usize) -> bool {
        let n = self.shards.len();
        for i in 1..n {
            let mut shard = self.lock((own + i) & (n - 1));
            loop {
                if self.budget.try_charge(missing) {
                    *credit += missing;
                    return true;
                }
                if !shard.evict_tail(ctx) {
                    break;
                }
            }
        }
        // memory may have been freed meanwhile by deletes elsewhere
        if self.budget.try_charge(missing) {
            *credit += missing;
            return true;
        }
        false
    }

    /// Removes `key`; false when it was absent.
    pub fn delete(&self, key: &[u8]) -> bool {
        if key.len() > MAX_KEY_LEN {
            return false;
        }
        let (s, hash) = self.locate(key);
        let ctx = self.ctx();
        let deleted = self.lock(s).delete(hash, key, &ctx);
        deleted
    }

    /// incr/decr with memcached's rules: the value must read as a u64 the
    /// way memcached's `strtoull` check reads it (leading whitespace and a
    /// sign allowed, digits, then whitespace or the end; so `"12 abc"` is
    /// 12); incr wraps at 2^64, decr stops at 0; a result no longer than the
    /// value is written in place padded with spaces (`"100"` decr 1 reads
    /// `"99 "`), a longer one replaces the item (same flags and deadline).
    /// Every change takes a new cas unique.
    pub fn incr_decr(&self, key: &[u8], delta: u64, incr: bool) -> ArithOutcome {
        match self.meta_incr_decr(key, delta, incr, &ArithOpts::default()) {
            MetaArithOutcome::Done { value, .. } => ArithOutcome::Value(value),
            MetaArithOutcome::NotFound | MetaArithOutcome::Exists => ArithOutcome::NotFound,
            MetaArithOutcome::NonNumeric => ArithOutcome::NonNumeric,
            MetaArithOutcome::NoMemory => ArithOutcome::NoMemory,
        }
    }

    /// [`Cache::incr_decr`] with the meta arithmetic options; reports the
    /// item's new unique and deadline too.
    pub fn meta_incr_decr(
        &self,
        key: &[u8],
        delta: u64,
        incr: bool,
        opts: &ArithOpts,
    ) -> MetaArithOutcome {
        if key.len() > MAX_KEY_LEN {
            return MetaArithOutcome::NotFound;
        }
        let (s, hash) = self.locate(key);
        self.with_retries(s, |shard, ctx, credit, last| {
            shard.incr_decr(ctx, hash, key, delta, incr, opts, credit, last)
        })
    }

    /// Looks `key` up for a meta command: calls `f` with the live item while
    /// its shard is locked, before the read is recorded (so `f` sees the
    /// previous access time and fetched mark), then, when `bump`, records it
    /// and marks the item used. `f` must not call back into the cache.
    #[inline]
    pub fn meta_read<R>(
        &self,
        key: &[u8],
        bump: bool,
        f: impl FnOnce(&mut MetaView<'_>) -> R,
    ) -> (Lookup, Option<R>) {
        if key.len() > MAX_KEY_LEN {
            return (Lookup::Miss, None);
        }
        let (s, hash) = self.locate(key);
        let ctx = self.ctx();
        let mut shard = self.lock(s);
        match shard.meta_read(hash, key, &ctx, bump, |item| f(&mut MetaView { item })) {
            Ok(r) => (Lookup::Hit, Some(r)),
            Err(why) => (why, None),
        }
    }

    /// Meta delete: removes the item, or marks it stale, or empties it
    /// (see [`DeleteAction`]), if it is live and `compare` (when given)
    /// matches its unique.
    pub fn meta_delete(
        &self,
        key: &[u8],
        compare: Option<u64>,
        action: DeleteAction,
    ) -> DeleteOutcome {
        if key.len() > MAX_KEY_LEN {
            return DeleteOutcome::NotFound;
        }
        let (s, hash) = self.locate(key);
        let ctx = self.ctx();
        let outcome = self.lock(s).meta_delete(hash, key, &ctx, compare, action);
        outcome
    }

    /// Invalidates every item now (`None`, or a deadline not in the future)
    /// or at a deadline. O(1): items are judged dead when next met (by an
    /// access, an eviction or the sweep). Items stored after the flush takes
    /// effect live; a new flush_all replaces a pending delayed one.
    pub fn flush_all(&self, at: Option<Secs>) {
        self.flush.flush(at, self.clock.now(), &self.last_cas);
    }

    /// Changes the ceiling at run time. When lowered, evicts down to it,
    /// round-robin over the shards in batches (with or without `evict`, as
    /// the new ceiling is the operator's order).
    pub fn set_memory_limit(&self, bytes: usize) {
        self.budget.set_limit(bytes);
        let ctx = self.ctx();
        while self.budget.over_limit() {
            let mut evicted = 0;
            for s in 0..self.shards.len() {
                evicted += self
                    .lock(s)
                    .evict_while(&ctx, SHRINK_BATCH, || self.budget.over_limit());
            }
            if evicted == 0 {
                break; // only the arena and index tables are left
            }
        }
    }

    /// One clock tick of background work: sweeps a bounded slice of every
    /// shard (SWEEP_VISITS slots, at most SWEEP_REMOVALS removals) for
    /// expired and flushed items. (A delayed flush needs no work to come
    /// due: readers see it from the clock.)
    pub fn tick(&self) {
        let ctx = self.ctx();
        for s in 0..self.shards.len() {
            self.lock(s).sweep(&ctx, SWEEP_VISITS, SWEEP_REMOVALS);
        }
    }

    pub fn stats(&self) -> CacheStats {
        let mut st = CacheStats {
            limit_maxbytes: self.budget.limit() as u64,
            ..CacheStats::default()
        };
        for s in 0..self.shards.len() {
            let shard = self.lock(s);
            st.curr_items += shard.len() as u64;
            st.total_items += shard.total_items();
            for c in shard.classes().iter() {
                st.evictions += c.evicted;
                st.reclaimed += c.reclaimed;
                st.expired_unfetched += c.expired_unfetched;
                st.evicted_unfetched += c.evicted_unfetched;
                st.evicted_active += c.evicted_active;
                st.crawler_reclaimed += c.crawler_reclaimed;
                st.outofmemory += c.outofmemory;
            }
        }
        st.bytes = self.budget.used() as u64;
        st
    }

    /// Items grouped by memcached's size classes (96 bytes growing by 1.25
    /// to 512 KiB, plus one class for larger items) of their real size:
    /// its record, header, key and value. Lists the classes that have or
    /// had items. `age` is the age of the class's oldest item (last access,
    /// over the shards; see `Shard::class_ages` for the bound when a
    /// shard's old end is long).
    pub fn class_stats(&self) -> Vec<ClassStats> {
        let now = self.clock.now();
        let mut sum = [ClassCounters::default(); CLASSES];
        let mut ages = [0u64; CLASSES];
        for s in 0..self.shards.len() {
            let shard = self.lock(s);
            for (total, c) in sum.iter_mut().zip(shard.classes().iter()) {
                total.number += c.number;
                total.requested += c.requested;
                total.stored += c.stored;
                total.evicted += c.evicted;
                total.evicted_nonzero += c.evicted_nonzero;
                total.evicted_unfetched += c.evicted_unfetched;
                total.evicted_active += c.evicted_active;
                total.expired_unfetched += c.expired_unfetched;
                total.reclaimed += c.reclaimed;
                total.crawler_reclaimed += c.crawler_reclaimed;
                total.outofmemory += c.outofmemory;
            }
            shard.class_ages(now, AGE_WALK, &mut ages);
        }
        let largest = (self.item_size_max + HEADER_WITH_FLAGS).max(CLASS_SIZES[CLASSES - 2] + 1);
        sum.iter()
            .enumerate()
            .filter(|(_, c)| c.stored > 0 || c.outofmemory > 0)
            .map(|(i, c)| ClassStats {
                id: i as u32 + 1,
                chunk_size: CLASS_SIZES[i].min(largest) as u64,
                number: c.number,
                age: if c.number > 0 { ages[i] } else { 0 },
                mem_requested: c.requested,
                evicted: c.evicted,
                evicted_nonzero: c.evicted_nonzero,
                evicted_unfetched: c.evicted_unfetched,
                evicted_active: c.evicted_active,
                expired_unfetched: c.expired_unfetched,
                reclaimed: c.reclaimed,
                crawler_reclaimed: c.crawler_reclaimed,
                outofmemory: c.outofmemory,
            })
            .collect()
    }
}

#[cfg(test)]
impl Cache {
    /// Checks every shard's invariants and that the budget is exactly the
    /// sum of what the shards charged; returns that sum.
    fn check(&self) -> usize {
        let sum: usize = (0..self.shards.len()).map(|s| self.lock(s).check()).sum();
        assert_eq!(sum, self.budget.used(), "budget == sum of shard charges");
        sum
    }

    /// `n` keys (with `prefix`) that hash to shard `s`.
    fn keys_in_shard(&self, s: usize, prefix: &str, n: usize) -> Vec<Vec<u8>> {
        (0..)
            .map(|i| format!("{prefix}{i}").into_bytes())
            .filter(|k| self.locate(k).0 == s)
            .take(n)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::thread;

    const MB: usize = 1024 * 1024;

    /// Big fills run one at a time (they measure the heap, and keep the
    /// test run's peak memory down).
    static HEAVY: Mutex<()> = Mutex::new(());

    fn heavy() -> MutexGuard<'static, ()> {
        HEAVY.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cache_with(limit: usize, shards: usize, evict: bool) -> (Cache, Arc<Clock>) {
        let clock = Arc::new(Clock::new());
        let config = CacheConfig {
            memory_limit: limit,
            evict,
            shards,
            item_size_max: MB,
        };
        (Cache::new(config, clock.clone()), clock)
    }

    fn cache() -> (Cache, Arc<Clock>) {
        cache_with(64 * MB, 4, true)
    }

    fn set(c: &Cache, key: &str, value: &[u8]) -> StoreOutcome {
        c.store(StoreOp::Set, key.as_bytes(), 0, 0, value)
    }

    fn get(c: &Cache, key: &str) -> Option<Vec<u8>> {
        c.get(key.as_bytes(), |it| it.data.to_vec()).1
    }

    /// (flags, value, cas)
    fn gets(c: &Cache, key: &str) -> Option<(u32, Vec<u8>, u64)> {
        c.get(key.as_bytes(), |it| (it.flags, it.data.to_vec(), it.cas))
            .1
    }

    fn cas_of(c: &Cache, key: &str) -> u64 {
        gets(c, key).expect("present").2
    }

    fn op(c: &Cache, op: StoreOp, key: &str, value: &str) -> StoreOutcome {
        c.store(op, key.as_bytes(), 0, 0, value.as_bytes())
    }

    /// A deterministic generator (xorshift) so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        /// Log-uniform in [lo, hi].
        fn size(&mut self, lo: usize, hi: usize) -> usize {
            let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
            ((lo as f64) * (hi as f64 / lo as f64).powf(u)) as usize
        }
    }

    /// Runs `n` in release builds, `n / div` in debug builds.
    fn scaled(n: usize, div: usize) -> usize {
        if cfg!(debug_assertions) {
            n / div
        } else {
            n
        }
    }

    #[test]
    fn set_get_delete() {
        let (c, _) = cache();
        assert_eq!(c.get(b"a", |_| ()), (Lookup::Miss, None));
        assert_eq!(
            c.store(StoreOp::Set, b"a", 42, 0, b"hello"),
            StoreOutcome::Stored
        );
        let (lookup, got) = c.get(b"a", |it| (it.key.to_vec(), it.flags, it.data.to_vec()));
        assert_eq!(lookup, Lookup::Hit);
        assert_eq!(got, Some((b"a".to_vec(), 42, b"hello".to_vec())));
        assert_eq!(set(&c, "a", b"bye"), StoreOutcome::Stored);
        assert_eq!(get(&c, "a").as_deref(), Some(&b"bye"[..]));
        assert!(c.delete(b"a"));
        assert!(!c.delete(b"a"));
        assert_eq!(get(&c, "a"), None);
        // an empty value is a value
        assert_eq!(set(&c, "e", b""), StoreOutcome::Stored);
        assert_eq!(get(&c, "e").as_deref(), Some(&b""[..]));
        let st = c.stats();
        assert_eq!((st.curr_items, st.total_items), (1, 3));
        c.check();
    }

    #[test]
    fn shard_count_is_a_power_of_two() {
        // 4096 shards: ~15 MB of locks and counters
        let _g = heavy();
        // 1 GiB: at least 32 shards (64 MB each at most), at most 512 (of
        // 32 segments each)
        for (asked, got) in [(0, 32), (3, 32), (64, 64), (100, 128), (1 << 20, 512)] {
            let (c, _) = cache_with(1 << 30, asked, true);
            assert_eq!(c.shards.len(), got, "shards = {asked}");
        }
        // a small ceiling: 32 segments a shard at least
        for (limit, asked, got) in [(64 * MB, 64, 32), (2 * MB, 64, 1), (100_000, 4, 1)] {
            let (c, _) = cache_with(limit, asked, true);
            assert_eq!(c.shards.len(), got, "{limit} bytes, {asked} shards");
        }
        // a large ceiling gets enough shards for their segment numbers
        let (c, _) = cache_with(8 << 30, 4, true);
        assert_eq!(c.shards.len(), 256);
        assert!(c.shards.len() * MAX_SHARD_BYTES >= 8 << 30);
        let (c, _) = cache_with(32 << 30, 1 << 20, true);
        assert_eq!(c.shards.len(), MAX_SHARDS);
    }

    #[test]
    fn a_panic_under_the_lock_does_not_wedge_the_shard() {
        let (c, _) = cache_with(MB, 1, true);
        set(&c, "k", b"v");
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.get(b"k", |_| panic!("a reader's closure failed"))
        }));
        assert!(r.is_err());
        assert_eq!(get(&c, "k").as_deref(), Some(&b"v"[..]));
        assert_eq!(set(&c, "k2", b"w"), StoreOutcome::Stored);
        c.check();
    }

    #[test]
    fn every_store_outcome() {
        let (c, clock) = cache();
        use StoreOp::*;
        use StoreOutcome::*;
        // add
        assert_eq!(op(&c, Add, "k", "1"), Stored);
        assert_eq!(op(&c, Add, "k", "2"), NotStored);
        assert_eq!(get(&c, "k").as_deref(), Some(&b"1"[..]));
        // replace
        assert_eq!(op(&c, Replace, "nokey", "x"), NotStored);
        assert_eq!(get(&c, "nokey"), None);
        assert_eq!(c.store(Replace, b"k", 5, 0, b"3"), Stored);
        assert_eq!(gets(&c, "k").map(|g| (g.0, g.1)), Some((5, b"3".to_vec())));
        // append / prepend keep flags and deadline
        assert_eq!(op(&c, Append, "nokey", "x"), NotStored);
        assert_eq!(op(&c, Prepend, "nokey", "x"), NotStored);
        let deadline = clock.now() + 100;
        assert_eq!(c.store(Set, b"ap", 9, deadline, b"mid"), Stored);
        assert_eq!(c.store(Append, b"ap", 1, 0, b">>"), Stored);
        assert_eq!(c.store(Prepend, b"ap", 2, 0, b"<<"), Stored);
        assert_eq!(
            gets(&c, "ap").map(|g| (g.0, g.1)),
            Some((9, b"<<mid>>".to_vec()))
        );
        clock.advance(100);
        assert_eq!(
            c.get(b"ap", |_| ()).0,
            Lookup::Expired,
            "append kept the deadline"
        );
        // cas
        assert_eq!(op(&c, Cas(1), "nokey", "x"), NotFound);
        let u = cas_of(&c, "k");
        assert_eq!(op(&c, Cas(u + 1000), "k", "x"), Exists);
        assert_eq!(get(&c, "k").as_deref(), Some(&b"3"[..]));
        assert_eq!(c.store(Cas(u), b"k", 7, 0, b"4"), Stored);
        assert_eq!(gets(&c, "k").map(|g| (g.0, g.1)), Some((7, b"4".to_vec())));
        assert_eq!(op(&c, Cas(u), "k", "5"), Exists, "the unique moved");
        c.check();
    }

    #[test]
    fn too_large_follows_memcacheds_rule() {
        let _g = heavy();
        let (c, _) = cache(); // -I 1m
        let max = MB - ITEM_SIZE_OVERHEAD;
        let fits = vec![b'v'; max - 1];
        let over = vec![b'v'; max];
        assert_eq!(
            c.store(StoreOp::Set, b"k", 0, 0, &fits),
            StoreOutcome::Stored
        );
        assert_eq!(
            c.store(StoreOp::Add, b"j", 0, 0, &over),
            StoreOutcome::TooLarge
        );
        assert_eq!(
            c.store(StoreOp::Add, b"j", 0, 0, &over[1..]),
            StoreOutcome::Stored
        );
        // other ops leave the old value
        assert_eq!(
            c.store(StoreOp::Replace, b"k", 0, 0, &over),
            StoreOutcome::TooLarge
        );
        assert_eq!(get(&c, "k").map(|v| v.len()), Some(max - 1));
        // append that would pass the limit: NOT_STORED, old value intact
        assert_eq!(
            c.store(StoreOp::Append, b"k", 0, 0, b"xy"),
            StoreOutcome::NotStored
        );
        assert_eq!(get(&c, "k").map(|v| v.len()), Some(max - 1));
        // client flags other than 0 take 4 bytes of the limit, also when an
        // append or prepend joins onto an item that has them
        assert_eq!(
            c.store(StoreOp::Set, b"f", 1, 0, &fits[..max - 4]),
            StoreOutcome::TooLarge
        );
        assert_eq!(
            c.store(StoreOp::Set, b"f", 1, 0, &fits[..max - 6]),
            StoreOutcome::Stored
        );
        assert_eq!(
            c.store(StoreOp::Prepend, b"f", 0, 0, b"xy"),
            StoreOutcome::NotStored
        );
        assert_eq!(
            c.store(StoreOp::Append, b"f", 0, 0, b"x"),
            StoreOutcome::Stored
        );
        assert_eq!(get(&c, "f").map(|v| v.len()), Some(max - 5));
        // a failed set drops the old value, as memcached does
        assert_eq!(
            c.store(StoreOp::Set, b"k", 0, 0, &over),
            StoreOutcome::TooLarge
        );
        assert_eq!(get(&c, "k"), None);
        // keys beyond what an item can hold
        let long = vec![b'k'; 256];
        assert_eq!(
            c.store(StoreOp::Set, &long, 0, 0, b"v"),
            StoreOutcome::TooLarge
        );
        assert_eq!(c.get(&long, |_| ()).0, Lookup::Miss);
        c.check();
    }

    #[test]
    fn cas_uniques_are_unique_and_increase() {
        let (c, clock) = cache();
        let mut last = 0;
        let mut seen = std::collections::HashSet::new();
        for i in 0..200 {
            let key = format!("k{}", i % 37); // spread over shards, rewrites too
            assert_eq!(set(&c, &key, b"1"), StoreOutcome::Stored);
            let u = cas_of(&c, &key);
            assert!(u > last, "{u} after {last}");
            assert!(seen.insert(u));
            last = u;
        }
        assert!(seen.contains(&1), "uniques start at 1");
        // reads and touches keep it; every kind of write moves it
        let u = cas_of(&c, "k1");
        get(&c, "k1");
        assert!(c.touch(b"k1", clock.now() + 10));
        c.get_and_touch(b"k1", 0, |_| ());
        assert_eq!(cas_of(&c, "k1"), u);
        let mut prev = u;
        let mut moved = |what: &str| {
            let now = cas_of(&c, "k1");
            assert!(now > prev, "{what} must take a new unique");
            prev = now;
        };
        assert_eq!(op(&c, StoreOp::Append, "k1", "2"), StoreOutcome::Stored);
        moved("append");
        assert_eq!(op(&c, StoreOp::Prepend, "k1", "3"), StoreOutcome::Stored);
        moved("prepend");
        assert_eq!(c.incr_decr(b"k1", 1, true), ArithOutcome::Value(313));
        moved("incr");
        assert_eq!(c.incr_decr(b"k1", 0, false), ArithOutcome::Value(313));
        moved("decr by 0");
        assert_eq!(c.incr_decr(b"k1", 1000, true), ArithOutcome::Value(1313));
        moved("incr that rewrites the item");
        assert_eq!(op(&c, StoreOp::Replace, "k1", "9"), StoreOutcome::Stored);
        moved("replace");
    }

    /// Present, without touching it.
    fn holds(c: &Cache, key: &str) -> bool {
        (0..c.shards.len()).any(|s| c.lock(s).lru_keys().iter().any(|k| k == key.as_bytes()))
    }

    /// Writes `prefix{n}` keys of `v` until `done` says stop; returns them.
    fn fill_until(c: &Cache, prefix: &str, v: &[u8], done: impl Fn(&Cache) -> bool) -> Vec<String> {
        let mut keys = Vec::new();
        while !done(c) {
            let k = format!("{prefix}{}", keys.len());
            assert_eq!(set(c, &k, v), StoreOutcome::Stored);
            keys.push(k);
            assert!(keys.len() < 100_000, "runaway fill");
        }
        keys
    }

    #[test]
    fn eviction_gives_used_items_a_second_chance() {
        // one shard of 16 KiB segments: ~1 KB items, 15 to a segment
        let (c, _) = cache_with(256 * 1024, 1, true);
        let v = vec![b'x'; 1000];
        for k in ["a", "b", "c"] {
            assert_eq!(set(&c, k, &v), StoreOutcome::Stored);
        }
        assert!(get(&c, "a").is_some());
        // reading does not move an item: the order is the writing order
        assert_eq!(
            c.lock(0).lru_keys()[..3],
            [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
        );
        let first = fill_until(&c, "fill", &v, |c| !holds(c, "b"));
        assert!(
            holds(&c, "a"),
            "the read item survives the turn that evicts b"
        );
        assert!(!holds(&c, "c"), "c was unread and older than the fill");
        assert!(holds(&c, first.last().unwrap()), "the newest write stays");
        // a's second chance is spent: unread, it goes within one more turn,
        // and not before the items written before its second chance
        let more = fill_until(&c, "more", &v, |c| !holds(c, "a"));
        assert!(
            first.iter().all(|k| !holds(&c, k)),
            "a outlived every item written before its second chance"
        );
        assert!(holds(&c, more.last().unwrap()));
        let st = c.stats();
        assert_eq!(st.evictions + st.curr_items, st.total_items);
        assert_eq!(st.evicted_unfetched, st.evictions - 1, "only a was read");
        assert_eq!(st.evicted_active, 0);
        c.check();
    }

    #[test]
    fn a_cache_of_used_items_still_makes_room() {
        // every item read: recycling keeps at most half a segment of them,
        // so writes go on evicting the oldest
        let (c, _) = cache_with(128 * 1024, 1, true);
        let v = vec![b'x'; 1000];
        let keys = fill_until(&c, "k", &v, |c| c.stats().evictions > 0);
        for _ in 0..3 {
            for k in &keys {
                get(&c, k);
            }
            for i in 0..keys.len() {
                assert_eq!(set(&c, &format!("new{i}"), &v), StoreOutcome::Stored);
                get(&c, &format!("new{i}"));
            }
        }
        let st = c.stats();
        assert!(st.evictions as usize > keys.len(), "{st:?}");
        assert!(st.bytes <= st.limit_maxbytes);
        assert!(st.evicted_active > 0, "items read twice were evicted");
        c.check();
    }

    #[test]
    fn evicted_active_counts_items_read_twice() {
        let (c, _) = cache_with(512 * 1024, 1, true);
        let v = vec![b'x'; 1000];
        set(&c, "twice", &v);
        set(&c, "once", &v);
        get(&c, "once");
        get(&c, "twice");
        get(&c, "twice");
        fill_until(&c, "k", &v, |c| !holds(c, "twice"));
        let st = c.stats();
        assert!(!holds(&c, "once"), "once was no younger");
        assert_eq!(st.evicted_active, 1, "{st:?}");
        assert_eq!(st.evicted_unfetched, st.evictions - 2, "{st:?}");
        c.check();
    }

    #[test]
    fn rewrites_in_a_cache_with_room_never_evict() {
        // a working set of a third of the memory, rewritten many times over
        // in random order: the dead versions are recycled, nothing live is
        // evicted
        let _g = heavy();
        let (c, _) = cache_with(MB, 2, true);
        let v = vec![b'x'; 500];
        let n = 600; // ~330 KB of records
        let mut rng = Rng(0x1234_5678_9abc_def1);
        for i in 0..n {
            assert_eq!(set(&c, &format!("k{i}"), &v), StoreOutcome::Stored);
        }
        for round in 0..20 * n {
            let i = rng.below(n);
            let fill = [b'a' + (round % 26) as u8; 500];
            assert_eq!(set(&c, &format!("k{i}"), &fill), StoreOutcome::Stored);
        }
        let st = c.stats();
        assert_eq!((st.evictions, st.curr_items), (0, n as u64), "{st:?}");
        assert!(st.total_items > 10 * n as u64, "the memory was turned over");
        for i in 0..n {
            assert!(get(&c, &format!("k{i}")).is_some(), "k{i}");
        }
        c.check();
    }

    #[test]
    fn a_dead_large_item_gives_its_memory_back_at_once() {
        let (c, _) = cache_with(4 * MB, 2, true);
        set(&c, "small", b"s");
        let big = vec![b'b'; 300_000];
        // (the first write into a shard makes its index)
        assert_eq!(set(&c, "big", &big), StoreOutcome::Stored);
        assert!(c.delete(b"big"));
        let before = c.stats().bytes;
        assert_eq!(set(&c, "big", &big), StoreOutcome::Stored);
        let with = c.stats().bytes;
        assert!(with >= before + 300_000, "{before} -> {with}");
        assert!(c.delete(b"big"));
        assert_eq!(c.stats().bytes, before, "deleted");
        assert_eq!(set(&c, "big", &big), StoreOutcome::Stored);
        assert_eq!(set(&c, "big", &big[..200_000]), StoreOutcome::Stored);
        assert_eq!(
            c.stats().bytes,
            before + pages(200_000 + 23) as u64,
            "replaced"
        );
        c.check();
    }

    #[test]
    fn rewrites_reuse_dead_bytes_before_mapping_more() {
        // 300 KB live in 8 MB, written over 20 times: the memory in use
        // stays a small multiple of what is live, not the ceiling
        let _g = heavy();
        let (c, _) = cache_with(8 * MB, 2, true);
        let v = vec![b'x'; 500];
        let n = 600;
        let mut rng = Rng(0x0bad_cafe_dead_beef);
        for round in 0..20 * n {
            let i = if round < n { round } else { rng.below(n) };
            assert_eq!(set(&c, &format!("k{i}"), &v), StoreOutcome::Stored);
        }
        let st = c.stats();
        assert_eq!((st.evictions, st.curr_items), (0, n as u64), "{st:?}");
        assert!(
            st.bytes < 2 * MB as u64,
            "{} bytes for ~320 KB live",
            st.bytes
        );
        c.check();
    }

    #[test]
    fn evicts_from_other_shards_when_its_own_is_empty() {
        let _g = heavy();
        let (c, _) = cache_with(8 * MB, 4, true);
        assert_eq!(c.shards.len(), 4);
        let fill = c.keys_in_shard(0, "fill", 12_000);
        let v = vec![b'x'; 1000];
        let mut stored = 0;
        for k in &fill {
            assert_eq!(c.store(StoreOp::Set, k, 0, 0, &v), StoreOutcome::Stored);
            stored += 1;
            if c.stats().evictions > 0 {
                break;
            }
        }
        let before = c.stats();
        assert!(before.curr_items > 100, "shard 0 holds the cache");
        // shard 1 is empty: a 100 KB item must take memory from shard 0
        let other = &c.keys_in_shard(1, "big", 1)[0];
        assert_eq!(
            c.store(StoreOp::Set, other, 0, 0, &vec![b'b'; 100_000]),
            StoreOutcome::Stored
        );
        assert!(c.get(other, |_| ()).0 == Lookup::Hit);
        let after = c.stats();
        assert!(
            after.evictions > before.evictions && after.curr_items < before.curr_items,
            "{before:?} -> {after:?}"
        );
        assert!(after.bytes <= after.limit_maxbytes);
        assert_eq!(c.stats().evictions + c.stats().curr_items, stored + 1);
        c.check();
    }

    #[test]
    fn item_larger_than_the_limit_is_refused_without_evicting() {
        let (c, _) = cache_with(100_000, 2, true);
        set(&c, "small", b"v");
        let huge = vec![b'h'; 200_000];
        assert_eq!(set(&c, "huge", &huge), StoreOutcome::NoMemory);
        assert_eq!(get(&c, "small").as_deref(), Some(&b"v"[..]));
        let st = c.stats();
        assert_eq!((st.evictions, st.outofmemory), (0, 1));
        c.check();
    }

    #[test]
    fn without_eviction_a_full_cache_refuses_writes() {
        let _g = heavy();
        let (c, _) = cache_with(8 * MB, 4, false);
        assert_eq!(c.shards.len(), 4);
        let v = vec![b'x'; 1000];
        let mut n = 0;
        loop {
            match set(&c, &format!("k{n}"), &v) {
                StoreOutcome::Stored => n += 1,
                StoreOutcome::NoMemory => break,
                other => panic!("{other:?}"),
            }
        }
        assert!(n > 7000, "only {n} KB fitted in 8 MiB");
        let st = c.stats();
        assert_eq!(
            (st.curr_items, st.evictions, st.outofmemory),
            (n as u64, 0, 1)
        );
        assert!(st.bytes <= st.limit_maxbytes);
        for i in 0..n {
            assert!(
                get(&c, &format!("k{i}")).is_some(),
                "k{i} was evicted under -M"
            );
        }
        // what memcached does with a full -M cache: replace/cas refused with
        // the old value kept, append/prepend NOT_STORED, set drops the old
        // (larger than what the budget has left: under a segment)
        let big = vec![b'y'; 70_000];
        assert_eq!(
            c.store(StoreOp::Replace, b"k1", 0, 0, &big),
            StoreOutcome::NoMemory
        );
        assert_eq!(get(&c, "k1").map(|v| v.len()), Some(1000));
        let u = cas_of(&c, "k2");
        assert_eq!(
            c.store(StoreOp::Cas(u), b"k2", 0, 0, &big),
            StoreOutcome::NoMemory
        );
        assert_eq!(get(&c, "k2").map(|v| v.len()), Some(1000));
        assert_eq!(
            c.store(StoreOp::Append, b"k3", 0, 0, &big),
            StoreOutcome::NotStored
        );
        assert_eq!(get(&c, "k3").map(|v| v.len()), Some(1000));
        assert_eq!(
            c.store(StoreOp::Set, b"k4", 0, 0, &big),
            StoreOutcome::NoMemory
        );
        assert_eq!(get(&c, "k4"), None, "a failed set drops the old value");
        assert_eq!(c.stats().outofmemory, 5);
        // deleting makes room for as much again (dead bytes are compacted
        // away in the shards they were deleted from)
        for i in 10..40 {
            assert!(c.delete(format!("k{i}").as_bytes()));
        }
        for i in 10..40 {
            assert_eq!(set(&c, &format!("k{i}"), &v), StoreOutcome::Stored, "k{i}");
        }
        assert_eq!(c.stats().evictions, 0);
        c.check();
    }

    #[test]
    fn expiry_is_lazy_on_access() {
        let (c, clock) = cache();
        let now = clock.now();
        c.store(StoreOp::Set, b"short", 0, now + 10, b"s");
        c.store(StoreOp::Set, b"read", 0, now + 10, b"r");
        c.store(StoreOp::Set, b"long", 0, now + 100, b"l");
        c.store(StoreOp::Set, b"never", 0, 0, b"n");
        c.store(StoreOp::Set, b"past", 0, crate::clock::EXPIRED, b"p");
        assert_eq!(c.get(b"past", |_| ()).0, Lookup::Expired);
        get(&c, "read");
        clock.advance(9);
        assert!(
            get(&c, "short").is_some(),
            "alive one second before its deadline"
        );
        clock.advance(1);
        assert_eq!(c.get(b"short", |_| ()).0, Lookup::Expired);
        assert_eq!(c.get(b"short", |_| ()).0, Lookup::Miss, "removed on access");
        // every command sees an expired item as absent
        assert!(!c.touch(b"read", 0));
        assert_eq!(c.incr_decr(b"long", 1, true), ArithOutcome::NonNumeric);
        clock.advance(100);
        assert_eq!(c.incr_decr(b"long", 1, true), ArithOutcome::NotFound);
        assert!(!c.delete(b"never") || get(&c, "never").is_none());
        assert_eq!(
            c.store(StoreOp::Set, b"gone", 0, clock.now() + 1, b"g"),
            StoreOutcome::Stored
        );
        clock.advance(1);
        assert_eq!(
            op(&c, StoreOp::Add, "gone", "again"),
            StoreOutcome::Stored,
            "add on an expired key"
        );
        assert_eq!(get(&c, "gone").as_deref(), Some(&b"again"[..]));
        let st = c.stats();
        // past, short, read, long, gone: reclaimed; never read: past, long, gone
        assert_eq!(st.reclaimed, 5, "{st:?}");
        assert_eq!(st.expired_unfetched, 3, "{st:?}");
        assert_eq!(st.crawler_reclaimed, 0);
        c.check();
    }

    #[test]
    fn touch_and_gat_set_the_deadline() {
        let (c, clock) = cache();
        let now = clock.now();
        c.store(StoreOp::Set, b"t", 3, now + 1, b"v");
        assert!(c.touch(b"t", now + 10));
        clock.advance(5);
        assert_eq!(
            c.get_and_touch(b"t", now + 20, |it| it.flags),
            (Lookup::Hit, Some(3))
        );
        clock.advance(10);
        assert!(get(&c, "t").is_some());
        assert_eq!(
            c.get_and_touch(b"t", crate::clock::EXPIRED, |_| ()).0,
            Lookup::Hit
        );
        assert_eq!(c.get(b"t", |_| ()).0, Lookup::Expired);
        assert!(!c.touch(b"nokey", 0));
        assert_eq!(c.get_and_touch(b"nokey", 0, |_| ()), (Lookup::Miss, None));
    }

    #[test]
    fn tick_passes_by_only_what_cannot_be_dead() {
        // items stored without a deadline, in segments the sweep may pass
        // by: a deadline given in place (touch, gat, mg T), an immediate
        // flush and a delayed one must still be swept
        let (c, clock) = cache_with(64 * MB, 2, true);
        let n = 2000;
        for i in 0..n {
            c.store(StoreOp::Set, format!("k{i}").as_bytes(), 0, 0, b"v");
        }
        let sweep = |c: &Cache| {
            for _ in 0..10 {
                c.tick();
            }
            c.stats()
        };
        assert_eq!(sweep(&c).crawler_reclaimed, 0);
        assert!(c.touch(b"k7", clock.now() + 1));
        let (hit, _) = c.get_and_touch(b"k8", clock.now() + 1, |_| ());
        assert_eq!(hit, Lookup::Hit);
        clock.advance(2);
        let st = sweep(&c);
        assert_eq!((st.crawler_reclaimed, st.curr_items), (2, n - 2), "{st:?}");
        c.flush_all(None);
        c.store(StoreOp::Set, b"after", 0, 0, b"v");
        let st = sweep(&c);
        assert_eq!((st.crawler_reclaimed, st.curr_items), (n, 1), "{st:?}");
        c.check();
        // a delayed flush, in a cache that never had an immediate one
        let (c, clock) = cache_with(64 * MB, 2, true);
        for i in 0..n {
            c.store(StoreOp::Set, format!("k{i}").as_bytes(), 0, 0, b"v");
        }
        clock.advance(1);
        c.flush_all(Some(clock.now() + 2));
        clock.advance(3);
        let st = sweep(&c);
        assert_eq!((st.crawler_reclaimed, st.curr_items), (n, 0), "{st:?}");
        c.check();
    }

    #[test]
    fn tick_sweeps_expired_items() {
        let (c, clock) = cache_with(64 * MB, 4, true);
        let n = 3000;
        let now = clock.now();
        for i in 0..n {
            let deadline = if i % 3 == 0 { 0 } else { now + 5 };
            c.store(StoreOp::Set, format!("k{i}").as_bytes(), 0, deadline, b"v");
        }
        c.tick();
        assert_eq!(c.stats().curr_items, n as u64, "nothing due yet");
        clock.advance(5);
        c.tick();
        let after_one = c.stats();
        assert!(after_one.crawler_reclaimed > 0);
        assert!(
            after_one.crawler_reclaimed <= (SWEEP_REMOVALS * 4) as u64,
            "one tick is bounded: {after_one:?}"
        );
        for _ in 0..20 {
            c.tick();
        }
        let st = c.stats();
        assert_eq!(st.curr_items, n as u64 / 3);
        assert_eq!(st.crawler_reclaimed, 2 * n as u64 / 3);
        assert_eq!(st.reclaimed, st.crawler_reclaimed);
        assert_eq!(st.expired_unfetched, st.crawler_reclaimed);
        for i in (0..n).step_by(3) {
            assert!(get(&c, &format!("k{i}")).is_some());
        }
        c.check();
    }

    #[test]
    fn flush_all_now() {
        let (c, clock) = cache();
        for i in 0..100 {
            set(&c, &format!("k{i}"), b"v");
        }
        c.flush_all(None);
        assert_eq!(c.get(b"k0", |_| ()).0, Lookup::Flushed);
        assert_eq!(c.get(b"k0", |_| ()).0, Lookup::Miss);
        assert!(!c.delete(b"k1"));
        assert_eq!(op(&c, StoreOp::Replace, "k2", "x"), StoreOutcome::NotStored);
        assert_eq!(op(&c, StoreOp::Add, "k3", "x"), StoreOutcome::Stored);
        // items stored after the flush live
        set(&c, "after", b"a");
        assert!(get(&c, "after").is_some());
        assert!(get(&c, "k3").is_some());
        // a past deadline flushes now too
        clock.advance(1);
        c.flush_all(Some(clock.now()));
        assert_eq!(c.get(b"after", |_| ()).0, Lookup::Flushed);
        // the sweep clears the rest
        for _ in 0..5 {
            c.tick();
        }
        let st = c.stats();
        assert_eq!(st.curr_items, 0);
        // k4..k99 and the k3 added after the first flush
        assert_eq!(st.crawler_reclaimed, 97);
        assert_eq!(st.expired_unfetched, 0, "flushed is not expired");
        c.check();
    }

    #[test]
    fn flush_all_delayed() {
        let (c, clock) = cache();
        set(&c, "old", b"o");
        set(&c, "read", b"r");
        let now = clock.now();
        c.flush_all(Some(now + 3));
        clock.advance(1);
        assert!(get(&c, "read").is_some(), "not due yet (and read now)");
        set(&c, "before", b"b");
        clock.advance(2);
        // due: everything written or read before it is gone
        assert_eq!(c.get(b"old", |_| ()).0, Lookup::Flushed);
        assert_eq!(c.get(b"read", |_| ()).0, Lookup::Flushed);
        assert_eq!(c.get(b"before", |_| ()).0, Lookup::Flushed);
        set(&c, "after", b"a");
        clock.advance(10);
        assert!(get(&c, "after").is_some(), "stored after the flush");
        // a due flush stays in force when the next one is scheduled
        set(&c, "x", b"x");
        c.flush_all(Some(clock.now() + 100));
        assert!(get(&c, "x").is_some());
        assert!(get(&c, "after").is_some());
        // and a new flush_all replaces a pending one
        c.flush_all(Some(clock.now() + 5));
        c.flush_all(Some(clock.now() + 50));
        clock.advance(5);
        assert!(get(&c, "x").is_some(), "the replaced flush did not fire");
        c.flush_all(None);
        assert_eq!(c.get(b"x", |_| ()).0, Lookup::Flushed);
        set(&c, "y", b"y");
        clock.advance(60);
        assert!(
            get(&c, "y").is_some(),
            "flush_all now cancels the pending one"
        );
        c.check();
    }

    #[test]
    fn incr_decr_as_memcached() {
        let (c, clock) = cache();
        let num = |v: &str| {
            set(&c, "n", v.as_bytes());
        };
        let val = || get(&c, "n").map(|v| String::from_utf8(v).unwrap());
        num("100");
        assert_eq!(c.incr_decr(b"n", 1, false), ArithOutcome::Value(99));
        assert_eq!(val().as_deref(), Some("99 "), "padded in place");
        assert_eq!(c.incr_decr(b"n", 1, true), ArithOutcome::Value(100));
        assert_eq!(val().as_deref(), Some("100"));
        assert_eq!(c.incr_decr(b"n", 900, true), ArithOutcome::Value(1000));
        assert_eq!(val().as_deref(), Some("1000"), "rewritten longer");
        // decr floors at 0
        num("5");
        assert_eq!(c.incr_decr(b"n", 10, false), ArithOutcome::Value(0));
        assert_eq!(val().as_deref(), Some("0"));
        // incr wraps at 2^64
        num("18446744073709551615");
        assert_eq!(c.incr_decr(b"n", 1, true), ArithOutcome::Value(0));
        assert_eq!(val().as_deref(), Some("0                   "));
        num("18446744073709551610");
        assert_eq!(
            c.incr_decr(b"n", u64::MAX, true),
            ArithOutcome::Value(u64::MAX - 6)
        );
        // what memcached's strtoull check takes
        num(" 12");
        assert_eq!(c.incr_decr(b"n", 1, true), ArithOutcome::Value(13));
        assert_eq!(val().as_deref(), Some("13 "));
        num("12 abc");
        assert_eq!(c.incr_decr(b"n", 1, true), ArithOutcome::Value(13));
        assert_eq!(val().as_deref(), Some("13    "));
        num("000000000000000000000007"); // 24 digits
        assert_eq!(c.incr_decr(b"n", 1, true), ArithOutcome::Value(8));
        // and what it refuses
        for bad in ["", " ", "12abc", "18446744073709551616", "-1", "abc"] {
            num(bad);
            assert_eq!(
                c.incr_decr(b"n", 1, true),
                ArithOutcome::NonNumeric,
                "{bad:?}"
            );
            assert_eq!(val().as_deref(), Some(bad), "left alone");
        }
        assert_eq!(c.incr_decr(b"nokey", 1, true), ArithOutcome::NotFound);
        // a rewrite keeps flags and deadline
        let deadline = clock.now() + 10;
        c.store(StoreOp::Set, b"f", 77, deadline, b"9");
        assert_eq!(c.incr_decr(b"f", 1, true), ArithOutcome::Value(10));
        assert_eq!(
            gets(&c, "f").map(|g| (g.0, g.1)),
            Some((77, b"10".to_vec()))
        );
        clock.advance(10);
        assert_eq!(c.get(b"f", |_| ()).0, Lookup::Expired);
        c.check();
    }

    #[test]
    fn random_workload_stays_within_the_limit_and_consistent() {
        let _g = heavy();
        let limit = 8 * MB;
        let (c, clock) = cache_with(limit, 4, true);
        let mut rng = Rng(0x2545F4914F6CDD1D);
        let data = vec![b'd'; 600 * 1024];
        let ops = scaled(200_000, 10);
        for i in 0..ops {
            let key = format!("key{}", rng.below(3000));
            let k = key.as_bytes();
            match rng.below(100) {
                0..=49 => {
                    let len = rng.size(10, 512 * 1024);
                    let deadline = if rng.below(4) == 0 {
                        clock.now() + 1 + rng.below(5) as u32
                    } else {
                        0
                    };
                    let out = c.store(StoreOp::Set, k, 0, deadline, &data[..len]);
                    assert_eq!(out, StoreOutcome::Stored, "{len} bytes");
                }
                50..=59 => {
                    let len = rng.size(1, 4096);
                    let op = if rng.below(2) == 0 {
                        StoreOp::Append
                    } else {
                        StoreOp::Prepend
                    };
                    c.store(op, k, 0, 0, &data[..len]);
                }
                60..=69 => {
                    c.delete(k);
                }
                70..=84 => {
                    c.get(k, |it| it.data.len());
                }
                85..=94 => {
                    if rng.below(2) == 0 {
                        c.store(StoreOp::Set, k, 0, 0, b"9");
                    }
                    c.incr_decr(k, rng.next() % 1000, rng.below(2) == 0);
                }
                _ => {
                    clock.advance(1);
                    c.tick();
                }
            }
            assert!(
                c.budget.used() <= limit,
                "op {i}: {} > {limit}",
                c.budget.used()
            );
            if i % 1000 == 0 {
                c.check();
            }
        }
        let st = c.stats();
        assert!(st.evictions > 0, "the workload overflows the cache");
        assert!(st.bytes <= st.limit_maxbytes);
        c.check();
        // after deleting everything, the segments (dead bytes until they
        // are recycled) and the index remain, and are what is charged
        for i in 0..3000 {
            c.delete(format!("key{i}").as_bytes());
        }
        let charged = c.check();
        assert_eq!(c.stats().curr_items, 0);
        let (mapped, index_slots): (usize, usize) = (0..4)
            .map(|s| {
                let sh = c.lock(s);
                (sh.mapped_bytes(), sh.index_slots())
            })
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
        assert!(charged >= mapped + index_slots * 8);
        assert!(charged <= mapped + index_slots * 8 + 4 * 4096);
    }

    #[test]
    fn concurrent_writes_stay_within_the_limit() {
        let _g = heavy();
        let limit = 4 * MB;
        let (c, clock) = cache_with(limit, 8, true);
        let c = Arc::new(c);
        let stop = Arc::new(AtomicBool::new(false));
        let watcher = {
            let (c, stop) = (c.clone(), stop.clone());
            thread::spawn(move || {
                let mut max = 0;
                while !stop.load(Ordering::Relaxed) {
                    max = max.max(c.budget.used());
                    thread::yield_now();
                }
                max
            })
        };
        let workers: Vec<_> = (0..4u64)
            .map(|t| {
                let (c, clock) = (c.clone(), clock.clone());
                thread::spawn(move || {
                    let mut rng = Rng(0x9E3779B97F4A7C15 ^ ((t + 1) * 0x1234567));
                    let data = vec![b'd'; 300 * 1024];
                    for _ in 0..scaled(50_000, 10) {
                        let key = format!("key{}", rng.below(5000));
                        match rng.below(10) {
                            0..=5 => {
                                let len = rng.size(10, 256 * 1024);
                                let out = c.store(StoreOp::Set, key.as_bytes(), 0, 0, &data[..len]);
                                assert_eq!(out, StoreOutcome::Stored);
                            }
                            6 => {
                                c.store(StoreOp::Append, key.as_bytes(), 0, 0, &data[..100]);
                            }
                            7 => {
                                c.delete(key.as_bytes());
                            }
                            8 => {
                                c.get(key.as_bytes(), |it| it.data.len());
                            }
                            _ => {
                                if t == 0 {
                                    clock.advance(1);
                                }
                                c.tick();
                            }
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        let max = watcher.join().unwrap();
        assert!(max <= limit, "{max} > {limit}");
        let st = c.stats();
        assert!(st.evictions > 0);
        c.check();
    }

    #[test]
    fn concurrent_increments_count_exactly_once() {
        let (c, _) = cache_with(64 * MB, 4, true);
        let c = Arc::new(c);
        let keys: Vec<String> = (0..8).map(|i| format!("counter{i}")).collect();
        for k in &keys {
            set(&c, k, b"0");
        }
        let threads = 4;
        let per_thread = scaled(20_000, 10);
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (c, keys) = (c.clone(), keys.clone());
                thread::spawn(move || {
                    let mut seen: Vec<Vec<u64>> = vec![Vec::new(); keys.len()];
                    for i in 0..per_thread {
                        let k = (i + t) % keys.len();
                        match c.incr_decr(keys[k].as_bytes(), 1, true) {
                            ArithOutcome::Value(v) => seen[k].push(v),
                            other => panic!("{other:?}"),
                        }
                        // readers and writers of other keys in the same shards
                        c.get(keys[(i * 7) % keys.len()].as_bytes(), |it| it.data.len());
                        c.store(
                            StoreOp::Set,
                            format!("other{}", i % 100).as_bytes(),
                            0,
                            0,
                            b"xyz",
                        );
                    }
                    seen
                })
            })
            .collect();
        let mut all: Vec<Vec<u64>> = vec![Vec::new(); keys.len()];
        for h in handles {
            for (k, vs) in h.join().unwrap().into_iter().enumerate() {
                all[k].extend(vs);
            }
        }
        for (k, key) in keys.iter().enumerate() {
            let n = all[k].len() as u64;
            let v = get(&c, key).unwrap();
            let v: u64 = String::from_utf8(v).unwrap().trim_end().parse().unwrap();
            assert_eq!(v, n, "{key}: every increment counted once");
            all[k].sort_unstable();
            assert_eq!(
                all[k],
                (1..=n).collect::<Vec<_>>(),
                "each increment saw its own value"
            );
        }
        c.check();
    }

    #[test]
    fn set_memory_limit_shrinks_and_grows() {
        let _g = heavy();
        let (c, _) = cache_with(4 * MB, 4, false);
        let v = vec![b'x'; 1000];
        for i in 0..3000 {
            assert_eq!(set(&c, &format!("k{i}"), &v), StoreOutcome::Stored);
        }
        let full = c.stats();
        assert_eq!(full.evictions, 0);
        c.set_memory_limit(MB);
        let st = c.stats();
        assert_eq!(st.limit_maxbytes, MB as u64);
        assert!(st.bytes <= MB as u64, "{st:?}");
        assert!(st.evictions > 0 && st.curr_items + st.evictions == 3000);
        assert!(
            st.curr_items > 500,
            "evicted down to the limit, not below it: {st:?}"
        );
        // newest survive
        assert!(get(&c, "k2999").is_some());
        assert_eq!(
            set(&c, "after", &vec![b'y'; 400 * 1024]),
            StoreOutcome::NoMemory,
            "-M: full"
        );
        c.set_memory_limit(8 * MB);
        assert_eq!(
            set(&c, "after", &vec![b'y'; 400 * 1024]),
            StoreOutcome::Stored
        );
        c.check();
        // a limit below the arena and index: everything goes, no hang
        c.set_memory_limit(1000);
        assert_eq!(c.stats().curr_items, 0);
        c.check();
    }

    #[test]
    fn class_stats_follow_the_items() {
        let _g = heavy();
        let (c, clock) = cache_with(MB, 2, true);
        assert!(c.class_stats().is_empty());
        // 14-byte key + 100-byte value + 20-byte header = 134 -> class 3 (152)
        for i in 0..10 {
            let key = format!("key-{i:010}");
            assert_eq!(key.len(), 14);
            c.store(StoreOp::Set, key.as_bytes(), 0, 0, &[b'v'; 100]);
        }
        clock.advance(7);
        c.store(StoreOp::Set, b"big", 0, 0, &vec![b'b'; 3000]);
        let cs = c.class_stats();
        assert_eq!(cs.len(), 2, "{cs:?}");
        let small = &cs[0];
        assert_eq!((small.id, small.chunk_size, small.number), (3, 152, 10));
        assert_eq!(small.mem_requested, 10 * (114 + item::HEADER) as u64);
        assert_eq!(small.age, 7, "age of the class's least recently used item");
        let big = &cs[1];
        assert_eq!(
            (big.id, big.chunk_size, big.number, big.age),
            (17, 3632, 1, 0)
        );
        let total: u64 = cs.iter().map(|c| c.number).sum();
        assert_eq!(total, c.stats().curr_items);
        // classes that had items stay listed
        c.delete(b"big");
        let cs = c.class_stats();
        assert_eq!(cs.len(), 2);
        assert_eq!((cs[1].number, cs[1].age), (0, 0));
        // evictions are counted per class
        for i in 0..2000 {
            c.store(
                StoreOp::Set,
                format!("fill{i}").as_bytes(),
                0,
                clock.now() + 100,
                &[b'v'; 1000],
            );
        }
        let cs = c.class_stats();
        let evicted: u64 = cs.iter().map(|c| c.evicted).sum();
        assert_eq!(evicted, c.stats().evictions);
        let nonzero: u64 = cs.iter().map(|c| c.evicted_nonzero).sum();
        assert!(nonzero > 0 && nonzero < evicted, "only fills had deadlines");
    }

    /// Resident bytes of this process (/proc/self/statm): heap and mappings.
    #[cfg(target_os = "linux")]
    fn resident() -> usize {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
        let pages: usize = statm.split(' ').nth(1).unwrap().parse().unwrap();
        pages * 4096
    }

    /// Fills a cache with `n` items of 10 B to `max` bytes and returns
    /// (resident growth, accounted bytes, the cache's slack: one open
    /// segment per shard whose pages may not have been touched yet).
    #[cfg(target_os = "linux")]
    fn resident_vs_accounting(n: usize, max: usize, seed: u64) -> (usize, usize, usize) {
        let before = resident();
        let (c, _) = cache_with(256 * MB, 8, true);
        let mut rng = Rng(seed);
        let data = vec![b'x'; max];
        let mut key = String::new();
        for i in 0..n {
            use std::fmt::Write;
            key.clear();
            let _ = write!(key, "key:{i}");
            let len = rng.size(10, max);
            c.store(StoreOp::Set, key.as_bytes(), 0, 0, &data[..len]);
        }
        let accounted = c.check();
        let real = resident().saturating_sub(before);
        let slack = 8 * SEGMENT;
        eprintln!("{n} items up to {max} B: resident grew {real}, accounted {accounted}");
        (real, accounted, slack)
    }

    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "run alone in a child process by accounted_bytes_match_the_heap"]
    fn heap_vs_accounting_alone() {
        // what becomes resident is what was charged: never more (plus the
        // uncharged rest: shard locks and counters, the data buffer, < 2 MB),
        // and less only by the open segments' untouched pages
        for (n, max, seed) in [
            (scaled(200_000, 10), 64 * 1024, 77),
            (scaled(20_000, 10), 512 * 1024, 78),
        ] {
            let (real, accounted, slack) = resident_vs_accounting(n, max, seed);
            assert!(
                real <= accounted + 2 * MB,
                "undercharged: resident {real}, accounted {accounted}"
            );
            assert!(
                accounted <= real + slack + MB,
                "overcharged: resident {real}, accounted {accounted}"
            );
        }
    }

    /// Resident memory is the whole process's, so the measurement runs in
    /// a process of its own (this test binary, filtered to that one test).
    #[cfg(target_os = "linux")]
    #[test]
    fn accounted_bytes_match_the_heap() {
        let name = "storage::tests::heap_vs_accounting_alone";
        let exe = std::env::current_exe().expect("test binary path");
        let out = std::process::Command::new(exe)
            .args([
                name,
                "--exact",
                "--ignored",
                "--test-threads=1",
                "--nocapture",
            ])
            .output()
            .expect("run the test binary");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{stdout}\n{stderr}");
        assert!(stdout.contains("1 passed"), "did not run: {stdout}");
        eprintln!("{stderr}");
    }

    #[test]
    fn million_items_fill_stays_under_the_limit() {
        let _g = heavy();
        let n = scaled(1_000_000, 20);
        let value = [b'v'; 100];
        // room for all: what one item really costs
        let (c, _) = cache_with(n * 256, 16, true);
        for i in 0..n {
            let key = format!("key:{i:010}"); // 14 bytes
            assert_eq!(
                c.store(StoreOp::Set, key.as_bytes(), 0, 0, &value),
                StoreOutcome::Stored
            );
        }
        let st = c.stats();
        assert_eq!((st.curr_items, st.evictions), (n as u64, 0));
        let per_item = st.bytes as f64 / n as f64;
        eprintln!("{n} items of 14 + 100 bytes: {per_item:.1} bytes each");
        // release, 1M items: ~186 (memcached: ~192); debug's 50k items
        // land at a less favourable index load
        assert!(per_item < 200.0, "{per_item} bytes per item");
        drop(c);
        // 64 MB (scaled): evicts and keeps the total under the limit
        let limit = 64 * MB * n / 1_000_000;
        let (c, _) = cache_with(limit, 16, true);
        for i in 0..n {
            let key = format!("key:{i:010}");
            assert_eq!(
                c.store(StoreOp::Set, key.as_bytes(), 0, 0, &value),
                StoreOutcome::Stored
            );
        }
        let st = c.stats();
        assert!(st.bytes <= limit as u64);
        assert_eq!(st.evictions + st.curr_items, n as u64);
        eprintln!("-m {} MB keeps {} items", limit / MB, st.curr_items);
        assert!(st.curr_items as usize > limit / 192, "{st:?}");
        c.check();
    }
}
