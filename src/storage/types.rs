//! What callers of the cache see: the types [`super::Cache`]'s public
//! methods take and return (writes, outcomes, options, stats, the operator
//! tools' dump and eviction types), and memcached's item size rule.
//!
//! Owns the storage API's vocabulary and nothing behind it: no shard, no
//! lock, no policy. Must not use any storage file but `item` (for the record
//! limits and size classes the size rule and `ItemMeta` are stated in) and
//! `pin` (a value a reply sends from the cache).

use std::fmt;
use std::sync::Arc;

use crate::clock::Secs;

use super::item::{class_of, plain_record_size, Item, MAX_KEY_LEN, MAX_TOTAL_LEN};
use super::pin::SharedMap;
pub use super::pin::{Pinned, Unpinned};

// ---- memcached's item size rule ----

/// memcached's per-item overhead in its size rule (48-byte header, 8-byte
/// cas, the key's NUL and the value's "\r\n"): an item is too large when
/// key + value + this (+ 4 for client flags other than 0) exceeds `-I`.
///
/// The cache's one copy of the figure; memcached leaves the 8 bytes of cas
/// out under `-C` (51 then), and so does [`max_key_plus_value`].
pub const ITEM_SIZE_OVERHEAD: usize = 59;

/// The cas bytes of [`ITEM_SIZE_OVERHEAD`], which `-C` leaves out.
const CAS_BYTES: usize = 8;

/// The most bytes of key, value and client flags an item may have under
/// `-I item_size_max`, with cas uniques (`cas`) or without (`-C`): the one
/// item-size rule, which the parser's limits and the cache both use.
pub fn max_key_plus_value(item_size_max: usize, cas: bool) -> usize {
    let overhead = ITEM_SIZE_OVERHEAD - if cas { 0 } else { CAS_BYTES };
    item_size_max.saturating_sub(overhead)
}

/// memcached's rule for an item too large for `-I` (`max_key_value` from
/// [`max_key_plus_value`]), or for a record at all.
pub(super) fn too_large(key: usize, value: usize, flags: u32, max_key_value: usize) -> bool {
    let flags_size = if flags == 0 { 0 } else { 4 };
    key > MAX_KEY_LEN || key + value > MAX_TOTAL_LEN || key + value + flags_size > max_key_value
}

// ---- the cache's operations ----

/// How the cache is sized and behaves when full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// The ceiling for everything the cache allocates, in bytes (`-m`).
    pub memory_limit: usize,
    /// Evict least recently used items when full; `false` (`-M`) makes a
    /// write that does not fit fail with [`StoreOutcome::NoMemory`].
    pub evict: bool,
    /// Number of shards, a power of two (rounded up; fitted to the memory
    /// limit, see `shard_count` in [`super`]; at most 4096: each shard carries ~4 KB
    /// of fixed counters).
    pub shards: usize,
    /// Largest item (key + value + overhead) accepted, `-I`.
    pub item_size_max: usize,
    /// Items carry cas uniques (`false` under `-C`): memcached's size rule
    /// then counts 8 bytes more per item.
    pub cas: bool,
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
    /// The new item's cas unique, instead of one from its place (meta
    /// `E`): all 64 bits, in a cas field of the record.
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
    item: &'a mut Item,
    cas: u64,
    share: Option<&'a Arc<SharedMap>>,
    /// A deadline the record has no field for (see `item`'s layout): the
    /// shard writes the item anew with it once the command is done.
    pending_deadline: Option<Secs>,
    /// The clock second the command runs at (the last access is stored
    /// relative to it).
    now: Secs,
}

impl<'a> MetaView<'a> {
    pub(super) fn new(
        item: &'a mut Item,
        cas: u64,
        share: Option<&'a Arc<SharedMap>>,
        now: Secs,
    ) -> MetaView<'a> {
        MetaView {
            item,
            cas,
            share,
            pending_deadline: None,
            now,
        }
    }

    /// The deadline the item must be written anew with, if any.
    pub(super) fn pending_deadline(&self) -> Option<Secs> {
        self.pending_deadline
    }
}

impl MetaView<'_> {
    /// The value, held for a reply that sends it from the cache (see
    /// [`Share::pin`]).
    pub fn share(&self) -> Share<'_> {
        Share {
            map: self.share,
            value: self.item.value(),
        }
    }

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
        self.cas
    }
    /// Clock second it expires at; 0 = never.
    pub fn deadline(&self) -> Secs {
        self.pending_deadline
            .unwrap_or_else(|| self.item.deadline())
    }
    /// Set in place when the record has room for it, else once the
    /// command is done (the caller sees the new deadline either way).
    pub fn set_deadline(&mut self, deadline: Secs) {
        self.pending_deadline = (!self.item.set_deadline(deadline)).then_some(deadline);
    }
    /// Clock second of its last write or read.
    pub fn last_access(&self) -> Secs {
        self.item.atime(self.now)
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
#[derive(Debug, Clone, Copy)]
pub struct ItemRef<'a> {
    pub key: &'a [u8],
    pub flags: u32,
    pub data: &'a [u8],
    pub cas: u64,
    /// `data`, for a reply that sends it from the cache.
    pub share: Share<'a>,
}

/// A value a reply may send from the cache itself rather than copy: one
/// that lives in a large item's mapping (see `pin`).
#[derive(Clone, Copy)]
pub struct Share<'a> {
    map: Option<&'a Arc<SharedMap>>,
    value: &'a [u8],
}

impl fmt::Debug for Share<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Share")
            .field("shared", &self.map.is_some())
            .field("len", &self.value.len())
            .finish()
    }
}

impl Share<'_> {
    /// Holds the value for a reply: its bytes stay as they are until the
    /// [`Pinned`] is dropped, whatever happens to the item. Call it only
    /// for a reply that will send the value from there.
    pub fn pin(self) -> Result<Pinned, Unpinned> {
        match self.map {
            Some(map) => Pinned::new(map, self.value),
            None => Err(Unpinned::Small),
        }
    }
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
    /// Slots of all the shards' index tables (8 bytes each).
    pub hash_slots: u64,
    /// What the index tables cost (counted in `bytes`).
    pub hash_bytes: u64,
    /// `lru_crawler crawl` passes asked for.
    pub crawler_starts: u64,
    /// A requested crawl is under way.
    pub crawler_running: bool,
    /// Records the expiry sweep and requested crawls looked at.
    pub crawler_items_checked: u64,
    /// The eviction policy (CLOCK over segments): oldest segments recycled
    /// with a second chance for used items, released (unmapped),
    /// compacted without eviction; items that survived a recycle.
    pub clock_second_chance: u64,
    pub clock_released: u64,
    pub clock_compacted: u64,
    pub clock_kept: u64,
    /// Bytes of large items' mappings that replies hold to send their
    /// values from (counted in `bytes`; see `pin`), and the most they may.
    pub pinned_bytes: u64,
    pub pinned_limit: u64,
    /// Values not sent because pinning them would pass `pinned_limit`.
    pub pinned_refused: u64,
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
    /// Deletes that removed a live item of the class.
    pub delete_hits: u64,
    /// Records of the class the expiry sweep or a requested crawl looked at.
    pub crawler_items_checked: u64,
}

// ---- operator tools: dumps, `me`, `watch evictions` ----

/// Highest class id memcached accepts in `lru_crawler` class lists (its
/// `MAX_NUMBER_OF_SLAB_CLASSES - 1`); ferrocache's classes stop at
/// [`super::Cache::class_count`], the ids above are valid and empty.
pub const MAX_CLASS_ID: u32 = 63;

/// One item's metadata, as `lru_crawler metadump` and `me` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemMeta {
    /// Unix time the item expires; `None` when it never does.
    pub exp: Option<u64>,
    /// Unix time of the item's last write or read.
    pub last_access: u64,
    pub cas: u64,
    /// Read at least once since it was written.
    pub fetched: bool,
    /// The size class (from 1) it counts in, as in `stats items`.
    pub class: u32,
    /// Bytes the item takes: its record, header, key and value (the size
    /// its class is chosen by, so it is never above the class's
    /// `chunk_size`).
    pub size: u64,
    /// Bytes of the value.
    pub value_len: usize,
    /// Unix time when this was read (for the relative forms: `me`'s `la`).
    pub now: u64,
    /// Stored with a base64 key (meta `b`): `me` shows the key encoded.
    pub binary_key: bool,
}

impl ItemMeta {
    /// `it`'s metadata at clock second `now`, in unix time (`epoch_unix`:
    /// the unix time of the cache clock's second 0).
    pub(super) fn of(it: &Item, cas: u64, now: Secs, epoch_unix: u64) -> ItemMeta {
        let class_size = it.class_size();
        ItemMeta {
            exp: (it.deadline() != 0).then(|| epoch_unix + u64::from(it.deadline())),
            last_access: epoch_unix + u64::from(it.atime(now)),
            cas,
            fetched: it.fetched(),
            class: class_of(class_size) as u32 + 1,
            size: class_size as u64,
            value_len: it.value().len(),
            now: epoch_unix + u64::from(now),
            binary_key: it.binary_key(),
        }
    }
}

/// The size class (from 1) an item with `key_len + value_len = total` bytes
/// and client flags 0 counts in, without looking it up (flags add 4 bytes).
pub fn class_for_len(total: usize) -> u32 {
    class_index(total) as u32 + 1
}

/// [`class_for_len`] from 0: an index into per-class arrays (always below
/// [`super::CLASS_COUNT`]).
#[inline]
pub fn class_index(total: usize) -> usize {
    class_of(plain_record_size(total))
}

/// A set of class ids (1 to [`MAX_CLASS_ID`]) a dump lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassSet(u64);

impl ClassSet {
    pub const ALL: ClassSet = ClassSet(u64::MAX);

    pub fn empty() -> ClassSet {
        ClassSet(0)
    }

    /// Adds `id`; false (and nothing added) when it is not a valid id.
    pub fn insert(&mut self, id: u32) -> bool {
        if !(1..=MAX_CLASS_ID).contains(&id) {
            return false;
        }
        self.0 |= 1 << id;
        true
    }

    pub fn contains(&self, id: u32) -> bool {
        id <= MAX_CLASS_ID && self.0 & (1 << id) != 0
    }
}

/// Where a dump goes on: a shard, and a segment (the low 32 bits of its
/// sequence number) and offset in it; the default is the start. A paused
/// `metadump` carries it as it is (`command::Resume::Dump`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DumpCursor {
    pub(super) shard: usize,
    /// The low 32 bits of the segment's sequence number.
    pub(super) seq: u32,
    pub(super) off: usize,
}

impl DumpCursor {
    pub fn start() -> DumpCursor {
        DumpCursor::default()
    }
}

/// Who hears about evictions (`watch evictions`). Called with a shard lock
/// held: must be quick and must not call back into the cache.
pub trait EvictionSink: Send + Sync {
    /// Whether anybody listens now (checked before anything is computed).
    fn wants(&self) -> bool;
    fn evicted(&self, key: &[u8], meta: &ItemMeta);
}
