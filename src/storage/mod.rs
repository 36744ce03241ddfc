//! The cache: index, slab arenas, LRU links, byte accounting, eviction and
//! the expiry sweep.
//!
//! Owns every stored byte and the rule that their sum stays under the memory
//! ceiling. Must not know wire formats or sockets: callers pass keys, values
//! and deadlines (in [`crate::clock`] seconds) and get outcome enums back.

mod index;
mod item;

use std::sync::Arc;

use crate::clock::{Clock, Secs};

/// How the cache is sized and behaves when full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// The ceiling for everything the cache allocates, in bytes (`-m`).
    pub memory_limit: usize,
    /// Evict least recently used items when full; `false` (`-M`) makes a
    /// write that does not fit fail with [`StoreOutcome::NoMemory`].
    pub evict: bool,
    /// Number of shards, a power of two.
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
    /// add on an existing key, replace/append/prepend on a missing one.
    NotStored,
    /// cas with a stale unique.
    Exists,
    /// cas on a missing key.
    NotFound,
    TooLarge,
    /// Does not fit and eviction is off (or nothing is left to evict).
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
    /// Accounted bytes in use (everything counted against the limit).
    pub bytes: u64,
    pub curr_items: u64,
    pub total_items: u64,
    pub evictions: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
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
    pub expired_unfetched: u64,
    pub reclaimed: u64,
    pub outofmemory: u64,
}

/// The sharded cache. Shared by all workers (`Arc<Cache>`); every method
/// takes `&self` and locks one shard at a time.
#[derive(Debug)]
pub struct Cache {
    _config: CacheConfig,
    _clock: Arc<Clock>,
}

impl Cache {
    pub fn new(config: CacheConfig, clock: Arc<Clock>) -> Cache {
        Cache {
            _config: config,
            _clock: clock,
        }
    }

    /// Looks `key` up; on a hit calls `f` with the item while its shard is
    /// locked, marks it fetched and bumps it in the LRU.
    pub fn get<R>(&self, key: &[u8], f: impl FnOnce(ItemRef<'_>) -> R) -> (Lookup, Option<R>) {
        let _ = (key, f);
        todo!()
    }

    /// `get` that also sets a new deadline (gat/gats).
    pub fn get_and_touch<R>(
        &self,
        key: &[u8],
        deadline: Secs,
        f: impl FnOnce(ItemRef<'_>) -> R,
    ) -> (Lookup, Option<R>) {
        let _ = (key, deadline, f);
        todo!()
    }

    /// Sets a new deadline; false when the key is absent.
    pub fn touch(&self, key: &[u8], deadline: Secs) -> bool {
        let _ = (key, deadline);
        todo!()
    }

    /// set/add/replace/append/prepend/cas. Append and prepend keep the old
    /// flags and deadline. Every successful write gets a new CAS unique.
    pub fn store(
        &self,
        op: StoreOp,
        key: &[u8],
        flags: u32,
        deadline: Secs,
        data: &[u8],
    ) -> StoreOutcome {
        let _ = (op, key, flags, deadline, data);
        todo!()
    }

    /// Removes `key`; false when it was absent.
    pub fn delete(&self, key: &[u8]) -> bool {
        let _ = key;
        todo!()
    }

    /// incr/decr with memcached's rules: the value must be a decimal u64 (at
    /// most 20 digits, trailing spaces allowed); incr wraps at 2^64, decr
    /// stops at 0; a shorter result is written in place padded with spaces,
    /// as memcached does.
    pub fn incr_decr(&self, key: &[u8], delta: u64, incr: bool) -> ArithOutcome {
        let _ = (key, delta, incr);
        todo!()
    }

    /// Invalidates every item now (`None`) or at a deadline.
    pub fn flush_all(&self, at: Option<Secs>) {
        let _ = at;
        todo!()
    }

    /// Changes the ceiling at run time, evicting down to it.
    pub fn set_memory_limit(&self, bytes: usize) {
        let _ = bytes;
        todo!()
    }

    /// One clock tick of background work: applies a due delayed flush and
    /// sweeps a bounded slice of every shard for expired (and flushed) items.
    pub fn tick(&self) {
        todo!()
    }

    pub fn stats(&self) -> CacheStats {
        todo!()
    }

    pub fn class_stats(&self) -> Vec<ClassStats> {
        todo!()
    }
}
