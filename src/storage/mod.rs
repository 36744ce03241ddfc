//! The cache: index, segments of packed records, byte accounting, CLOCK
//! eviction, the expiry sweep and the operator tools' walks.
//!
//! Owns every stored byte and the rule that their sum stays under the memory
//! ceiling. Must not know wire formats or sockets: callers pass keys, values
//! and deadlines (in [`crate::clock`] seconds) and get outcome enums back.
//!
//! Layering: each file uses only the files below it, never one above.
//!
//! ```text
//! mod.rs     Cache: its locks and retries; uses all below
//! persist.rs warm restart (-e): Cache::open and Cache::save (the second
//!            `impl Cache`), the metadata format and its checks
//! crawl.rs   the crawler's state, a dump step and a crawl slice over a shard
//! shard.rs   one shard: segments, index, CLOCK eviction, sweep, counters
//!            (shard/evict.rs: mapping, freeing and recycling segments;
//!            shard/walk.rs: the sweep and walks in FIFO order;
//!            shard/restore.rs: listing and adopting its saved segments)
//! ctx.rs     what shards share: flush state, cas base counter, eviction tap
//! types.rs   the API: what Cache's methods take and return; the size rule
//! pin.rs     large items' mappings shared with replies in flight (pins)
//! budget.rs  the memory ceiling and what is charged against it
//! index.rs   a shard's hash table                      (uses mapping only)
//! item.rs    the record layout, derived cas uniques, size classes
//! mapping.rs page mappings (anonymous or the arena's), what allocations
//!            cost (uses arena)
//! hash.rs    the keyed hash placing keys, the memory file's checksum
//! arena.rs   the memory file's shared mapping and its free pages (uses
//!            only mapping's page size)
//!
//! tests.rs, tests/   Cache's unit tests (test builds only)
//! ```
//!
//! The API types are re-exported here (`crate::storage::StoreOp`, …); the
//! operator tools' ones also at `crate::storage::crawl::…`.

mod arena;
mod budget;
pub mod crawl;
mod ctx;
mod hash;
mod index;
mod item;
mod mapping;
mod persist;
mod pin;
mod shard;
mod types;

use std::fmt;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, TryLockError};

use crate::clock::{Clock, Secs};
use arena::Arena;
pub use arena::MemoryFileError;
use budget::Budget;
use crawl::Crawler;
use ctx::{Ctx, Flush, Tap};
use hash::Keyed;
use item::{CLASSES, CLASS_SIZES, MAX_HEADER, MAX_KEY_LEN};
#[cfg(test)]
use mapping::pages;
pub use persist::{meta_path, MemoryFile, Refusal, Restart, Saved};
use pin::Pins;
use shard::{ArithRequest, Attempt, ClassCounters, Round, Shard, StoreRequest};
use types::too_large;
pub use types::{
    class_for_len, class_index, max_key_plus_value, ArithOpts, ArithOutcome, CacheConfig,
    CacheStats, ClassSet, ClassStats, DeleteAction, DeleteOutcome, DumpCursor, EvictionSink,
    ItemMeta, ItemRef, Lookup, MetaArithOutcome, MetaView, Pinned, Share, StoreOp, StoreOutcome,
    Unpinned, WriteOpts, ITEM_SIZE_OVERHEAD, MAX_CLASS_ID,
};

/// Number of size classes (ids 1 to this): per-class counters elsewhere
/// (`stats`) are arrays of this length.
pub const CLASS_COUNT: usize = CLASSES;
const _: () = assert!(CLASS_COUNT <= 64, "stats::ClassCmds arrays hold 64");

/// Records the expiry sweep looks at per shard per tick. Looking at one
/// reads its header (7 bytes or so, sequentially), so 1024 of them hold a shard's
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
/// most ~1,000 records of 64 bytes, and that `-m 64` over 16 shards gives
/// each shard 64 of them (an eviction frees 1.5% of a shard's items).
const SEGMENT: usize = 64 * 1024;
/// Segments' worth of memory a shard gets at least: a small ceiling gets
/// fewer shards (`-m 64`: 16, `-m 8`: 2). Each shard's open segment is half
/// empty on average (at 32 shards of 32 segments, 1 MiB of `-m 64`, 2% of
/// the items), and eviction turns over a segment at a time, so a shard
/// with more of them tells used items from unused ones better (the memory
/// bench's hit ratio at `-m 8` rose with this from 0.96–0.99 to 1.01–1.02
/// of memcached's).
const MIN_SEGMENTS_PER_SHARD: usize = 64;
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

/// The sharded cache. Shared by all workers (`Arc<Cache>`); every method
/// takes `&self` and locks one shard at a time, never two.
///
/// Memory: every allocation the cache makes for items is charged to one
/// budget before it is made: segments (page mappings) and the index tables
/// by their size. The sum never passes the limit (except right after the
/// limit is lowered, until the eviction that follows). An item costs its
/// record (a 7-byte header, more with a deadline, client flags, a cas
/// unique of its own or a long value, then key and value: see `item`) and
/// an 8-byte index slot at a load of 70% to 87.5%.
pub struct Cache {
    shards: Box<[PaddedShard]>,
    hasher: Keyed,
    /// As started (`-m`, `-I`, `-C`): what a memory file's metadata
    /// records; `cache_memlimit` moves only the budget.
    config: CacheConfig,
    /// The memory file items live in (`-e`), if any.
    arena: Option<Arc<Arena>>,
    budget: Arc<Budget>,
    /// Bytes of large items' mappings that replies hold (see `pin`).
    pins: Arc<Pins>,
    /// The last cas base handed out (see `Ctx::next_cas_base`).
    cas_bases: AtomicU64,
    flush: Flush,
    clock: Arc<Clock>,
    evict: bool,
    item_size_max: usize,
    /// The item-size rule's limit for key + value + flags (`-I`, `-C`).
    max_key_value: usize,
    /// Who hears about evictions (`watch evictions`).
    tap: Tap,
    /// The crawler's switches and a requested crawl (see `crawl`).
    crawler: Crawler,
}

/// A shard lock on its own cache lines, so that workers locking
/// neighbouring shards do not contend on one line; with the number of
/// times a thread found it held and had to wait.
#[repr(align(128))]
struct PaddedShard(Mutex<Shard>, AtomicU64);

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
        Cache::build(config, clock, n, Keyed::random(), None)
    }

    /// A cache of `n` shards hashing with `hasher`, its segments carved
    /// from `arena` when given (else anonymous mappings).
    fn build(
        config: CacheConfig,
        clock: Arc<Clock>,
        n: usize,
        hasher: Keyed,
        arena: Option<Arc<Arena>>,
    ) -> Cache {
        let budget = Arc::new(Budget::new(config.memory_limit));
        let pins = Arc::new(Pins::new());
        let shards = (0..n)
            .map(|_| {
                let shard = Shard::new(
                    hasher,
                    SEGMENT,
                    Arc::clone(&budget),
                    Arc::clone(&pins),
                    arena.clone(),
                );
                PaddedShard(Mutex::new(shard), AtomicU64::new(0))
            })
            .collect();
        Cache {
            shards,
            hasher,
            arena,
            budget,
            pins,
            cas_bases: AtomicU64::new(0),
            flush: Flush::default(),
            evict: config.evict,
            item_size_max: config.item_size_max,
            max_key_value: max_key_plus_value(config.item_size_max, config.cas),
            tap: Tap::new(clock.epoch_unix()),
            crawler: Crawler::new(),
            clock,
            config,
        }
    }

    /// Locks shard `shard`, counting the times it was held by another
    /// thread (`try_lock` first: uncontended, it costs what `lock` does).
    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        let s = &self.shards[shard];
        match s.0.try_lock() {
            Ok(guard) => guard,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                s.1.fetch_add(1, Ordering::Relaxed);
                s.0.lock().unwrap_or_else(PoisonError::into_inner)
            }
        }
    }

    /// Per shard, the times a thread had to wait for its lock (the
    /// metrics endpoint's `ferrocache_shard_lock_contended_total`).
    pub fn lock_contention(&self) -> Vec<u64> {
        self.shards
            .iter()
            .map(|s| s.1.load(Ordering::Relaxed))
            .collect()
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
            cas_bases: &self.cas_bases,
            max_key_value: self.max_key_value,
            tap: &self.tap,
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
                share: item.share(),
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
        if too_large(key.len(), data.len(), flags, self.max_key_value) {
            if op == StoreOp::Set {
                self.delete(key);
            }
            return (StoreOutcome::TooLarge, 0);
        }
        let (s, hash) = self.locate(key);
        let req = StoreRequest {
            op,
            key,
            hash,
            flags,
            deadline,
            data,
            opts,
        };
        self.with_retries(s, |shard, ctx, round| shard.store(ctx, &req, round))
    }

    /// Runs a write against shard `s`; when the shard has nothing left to
    /// evict, evicts in the other shards (one lock at a time) and retries.
    fn with_retries<T>(
        &self,
        s: usize,
        mut attempt: impl FnMut(&mut Shard, &Ctx, &mut Round) -> Attempt<T>,
    ) -> T {
        let mut round = Round::default();
        let mut attempts = 1;
        let out = loop {
            let ctx = self.ctx();
            let result = attempt(&mut self.lock(s), &ctx, &mut round);
            match result {
                Attempt::Done(out) => break out,
                Attempt::Short(missing) => {
                    let found = self.evict_elsewhere(s, missing, &ctx, &mut round.credit);
                    attempts += 1;
                    round.last = !found || attempts == MAX_ATTEMPTS;
                }
            }
        };
        if round.credit > 0 {
            self.budget.uncharge(round.credit);
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
        let req = ArithRequest {
            key,
            hash,
            delta,
            incr,
            opts,
        };
        self.with_retries(s, |shard, ctx, round| shard.incr_decr(ctx, &req, round))
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
        let now = ctx.now;
        let read = shard.meta_read(hash, key, &ctx, bump, |item, cas, share| {
            let mut view = MetaView::new(item, cas, share, now);
            let r = f(&mut view);
            (r, view.pending_deadline())
        });
        match read {
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
    /// or at a deadline. Items are judged dead when next met (by an access,
    /// an eviction or the sweep): a flush now only closes each shard's open
    /// segment. Items stored after the flush takes effect live; a new
    /// flush_all replaces a pending delayed one.
    pub fn flush_all(&self, at: Option<Secs>) {
        if self.flush.flush(at, self.clock.now(), &self.cas_bases) {
            for s in 0..self.shards.len() {
                self.lock(s).seal();
            }
        }
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

    /// The most bytes of large items' mappings replies may hold pinned to
    /// send values from (half the ceiling unless set): past it a reply
    /// that would pin one more is refused, so that stuck readers can never
    /// hold more of the cache than this, and eviction always finds the
    /// rest. 0: values are copied into replies, never pinned.
    pub fn set_pinned_limit(&self, bytes: usize) {
        self.pins.set_limit(bytes);
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
            pinned_bytes: self.pins.bytes() as u64,
            pinned_limit: self.pins.limit(&self.budget) as u64,
            pinned_refused: self.pins.refused(),
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
                st.crawler_items_checked += c.crawler_checked;
            }
            let clock = shard.clock_counters();
            st.clock_second_chance += clock.second_chance;
            st.clock_released += clock.released;
            st.clock_compacted += clock.compacted;
            st.clock_kept += clock.kept;
            let (slots, bytes) = shard.index_size();
            st.hash_slots += slots as u64;
            st.hash_bytes += bytes as u64;
        }
        st.crawler_starts = self.crawler.starts();
        st.crawler_running = self.crawler.pending();
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
                total.delete_hits += c.delete_hits;
                total.crawler_checked += c.crawler_checked;
            }
            shard.class_ages(now, AGE_WALK, &mut ages);
        }
        let largest = (self.item_size_max + MAX_HEADER).max(CLASS_SIZES[CLASSES - 2] + 1);
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
                delete_hits: c.delete_hits,
                crawler_items_checked: c.crawler_checked,
            })
            .collect()
    }

    /// Number of size classes ferrocache has (ids 1 to this).
    pub fn class_count() -> u32 {
        CLASS_COUNT as u32
    }
}

/// The operator tools: `me`, `lru_crawler metadump` and `crawl`, the
/// crawler's switches, `watch evictions` (the walks are in `crawl`).
impl Cache {
    /// `key`'s metadata if it is live, without reading it: the used mark, the
    /// fetched bit and the access time stay as they were (memcached's `me`).
    pub fn item_meta(&self, key: &[u8]) -> Option<ItemMeta> {
        let (s, hash) = self.locate(key);
        let ctx = self.ctx();
        let shard = self.lock(s);
        let (it, cas) = shard.peek(hash, key)?;
        ctx.alive(it, cas)
            .then(|| ItemMeta::of(it, cas, ctx.now, self.clock.epoch_unix()))
    }

    /// `key`'s metadata, or why there is none (absent, expired, flushed),
    /// without touching the item: what `watch fetchers` reports for the
    /// lookups that writes make.
    pub fn lookup_meta(&self, key: &[u8]) -> Result<ItemMeta, Lookup> {
        let (s, hash) = self.locate(key);
        let ctx = self.ctx();
        let shard = self.lock(s);
        let (it, cas) = shard.peek(hash, key).ok_or(Lookup::Miss)?;
        match ctx.death(it, cas) {
            Some(why) => Err(why),
            None => Ok(ItemMeta::of(it, cas, ctx.now, self.clock.epoch_unix())),
        }
    }

    /// One step of a dump: looks at a bounded number of records of one
    /// shard from `at`, calling `f` (with the shard locked: it must not call
    /// back into the cache) for each live item of a class in `classes`.
    /// Returns where to go on, or `None` once every shard is done.
    pub fn dump_step(
        &self,
        at: DumpCursor,
        classes: ClassSet,
        f: impl FnMut(&[u8], &ItemMeta),
    ) -> Option<DumpCursor> {
        if at.shard >= self.shards.len() {
            return None;
        }
        let ctx = self.ctx();
        let epoch = self.clock.epoch_unix();
        let next = crawl::dump_slice(&self.lock(at.shard), &ctx, epoch, at, classes, f);
        (next.shard < self.shards.len()).then_some(next)
    }

    /// Installs who hears about evictions (once; later calls are ignored).
    pub fn set_eviction_sink(&self, sink: Arc<dyn EvictionSink>) {
        self.tap.set_sink(sink);
    }

    /// `lru_crawler enable|disable`: the background expirer (and requested
    /// crawls) run only while enabled. Returns the previous state.
    pub fn set_crawler_enabled(&self, on: bool) -> bool {
        self.crawler.set_enabled(on)
    }

    pub fn crawler_enabled(&self) -> bool {
        self.crawler.enabled()
    }

    /// `lru_crawler sleep` (microseconds, recorded and reported).
    pub fn set_crawler_sleep(&self, micros: u32) {
        self.crawler.set_sleep(micros);
    }

    pub fn crawler_sleep(&self) -> u32 {
        self.crawler.sleep()
    }

    /// `lru_crawler tocrawl`: records a requested crawl looks at per
    /// shard (0: all of them).
    pub fn set_crawler_tocrawl(&self, n: u32) {
        self.crawler.set_tocrawl(n);
    }

    pub fn crawler_tocrawl(&self) -> u32 {
        self.crawler.tocrawl()
    }

    /// `lru_crawler crawl`: asks for one pass over every record of every
    /// shard, removing expired and flushed items, run by [`Cache::crawl_tick`]
    /// in bounded slices. A request while a pass runs starts it over.
    pub fn request_crawl(&self) {
        self.crawler.request();
    }

    /// Whether a requested crawl has not finished yet.
    pub fn crawl_pending(&self) -> bool {
        self.crawler.pending()
    }

    /// One clock tick's share of a requested crawl (nothing when none is
    /// pending or the crawler is disabled), one shard lock per slice.
    /// Returns the items removed.
    pub fn crawl_tick(&self) -> usize {
        self.crawler
            .tick(self.shards.len(), &self.ctx(), |s| self.lock(s))
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
mod tests;
