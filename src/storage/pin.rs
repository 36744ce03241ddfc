//! Values sent from the cache itself: a large item's mapping, shared by its
//! shard and by every reply still sending its value (a pin).
//!
//! Owns [`SegMap`] (a segment's memory: a mapping of its own, or a large
//! item's shared one), [`Pinned`] (one reply's hold on a value) and
//! [`Pins`] (the bytes pinned cache-wide and their limit). A shared mapping
//! outlives its item when a reply still holds it: its bytes stay charged to
//! the budget until the last holder lets go, so what stuck readers keep is
//! inside `-m`, and [`Pins`]' limit keeps it a bounded part of `-m`.
//! Must not know shards, the index or replies.
//!
//! Why only large items: a record of its own mapping never moves (the
//! CLOCK requeues or frees it whole), while records in normal segments
//! slide when their segment is compacted. Normal segments are never pinned,
//! so recycling and compaction never wait for a reader.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use super::budget::Budget;
use super::mapping::Mapping;

/// The bytes of distinct mappings replies hold, and the most they may.
#[derive(Debug)]
pub(super) struct Pins {
    bytes: AtomicUsize,
    /// Set by the operator; [`HALF_THE_CEILING`] follows `-m`.
    limit: AtomicUsize,
    /// Values that could not be pinned: the limit was reached.
    refused: AtomicU64,
}

/// The default limit: half the memory ceiling, as it is now.
const HALF_THE_CEILING: usize = usize::MAX;

impl Pins {
    pub(super) fn new() -> Pins {
        Pins {
            bytes: AtomicUsize::new(0),
            limit: AtomicUsize::new(HALF_THE_CEILING),
            refused: AtomicU64::new(0),
        }
    }

    pub(super) fn bytes(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    pub(super) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The most bytes replies may hold pinned, with the budget as it is.
    /// 0: none (values are copied).
    pub(super) fn limit(&self, budget: &Budget) -> usize {
        match self.limit.load(Ordering::Relaxed) {
            HALF_THE_CEILING => budget.limit() / 2,
            set => set,
        }
    }

    pub(super) fn set_limit(&self, limit: usize) {
        self.limit
            .store(limit.min(HALF_THE_CEILING - 1), Ordering::Relaxed);
    }
}

/// A large item's mapping, held by its segment and by the replies sending
/// its value. Dropped by whoever lets go last (a worker, maybe long after
/// the shard killed the item), which gives its bytes back to the budget.
pub(super) struct SharedMap {
    map: Mapping,
    /// Replies holding it.
    holders: AtomicUsize,
    budget: Arc<Budget>,
    pins: Arc<Pins>,
}

// SAFETY: the shard writes a shared mapping only under its lock, and once a
// reply may hold it only the record's header bytes (marks, access time,
// deadline, cas): a held value's bytes are never written (see
// `SegMap::value_fixed`), and replies read nothing else. Accesses from
// different threads touch disjoint bytes.
unsafe impl Sync for SharedMap {}
// SAFETY: the mapping's pages have no thread affinity.
unsafe impl Send for SharedMap {}

impl Drop for SharedMap {
    fn drop(&mut self) {
        self.budget.uncharge(self.map.len());
    }
}

/// A segment's memory: where it is (read without a branch on the hot
/// path), and who owns it.
pub(super) struct SegMap {
    ptr: NonNull<u8>,
    len: usize,
    owner: Owner,
}

enum Owner {
    /// A normal segment's: the shard's alone.
    Own(Mapping),
    /// A large item's: shared with replies sending its value. Its bytes
    /// are charged until the last holder drops it (see [`SharedMap`]).
    Shared(Arc<SharedMap>),
}

// SAFETY: `ptr` points into the mapping `owner` keeps alive; the pages have
// no thread affinity, and shared ones are `Sync` (see `SharedMap`).
unsafe impl Send for SegMap {}

impl SegMap {
    /// A normal segment's mapping.
    pub(super) fn own(map: Mapping) -> SegMap {
        let (ptr, len) = (map.as_ptr(), map.len());
        SegMap {
            ptr,
            len,
            owner: Owner::Own(map),
        }
    }

    /// A large item's mapping, already charged to `budget`.
    pub(super) fn shared(map: Mapping, budget: &Arc<Budget>, pins: &Arc<Pins>) -> SegMap {
        let (ptr, len) = (map.as_ptr(), map.len());
        SegMap {
            ptr,
            len,
            owner: Owner::Shared(Arc::new(SharedMap {
                map,
                holders: AtomicUsize::new(0),
                budget: Arc::clone(budget),
                pins: Arc::clone(pins),
            })),
        }
    }

    #[inline]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(super) fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes mapped readable, kept by `owner`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    #[inline]
    pub(super) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as `bytes`; the shard's `&mut self` makes its access
        // unique among the shard's, and of a shared mapping it writes only
        // bytes no reply reads (see `SharedMap`'s Sync).
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Where the segment is in the memory file (`None`: anonymous).
    pub(super) fn file_offset(&self) -> Option<usize> {
        match &self.owner {
            Owner::Own(map) => map.file_offset(),
            Owner::Shared(s) => s.map.file_offset(),
        }
    }

    /// Whether the shard gives the bytes back itself when it frees the
    /// segment (a shared mapping does it when its last holder lets go).
    pub(super) fn uncharged_by_owner(&self) -> bool {
        matches!(self.owner, Owner::Own(_))
    }

    /// Whether a reply holds the mapping: its value must not be written
    /// in place.
    #[inline]
    pub(super) fn value_fixed(&self) -> bool {
        match &self.owner {
            Owner::Own(_) => false,
            Owner::Shared(s) => s.holders.load(Ordering::Acquire) > 0,
        }
    }

    /// The mapping a reply may pin, if this is a shared one.
    #[inline]
    pub(super) fn share(&self) -> Option<&Arc<SharedMap>> {
        match &self.owner {
            Owner::Own(_) => None,
            Owner::Shared(s) => Some(s),
        }
    }
}

/// Why a value is not sent from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unpinned {
    /// It lives in a normal segment: replies copy it.
    Small,
    /// Pinning it would pass the limit on pinned bytes: the reply is
    /// refused (memcached's "out of memory writing get response").
    OverLimit,
    /// The operator set the limit to 0: replies copy every value.
    Off,
}

/// One reply's hold on a value in a large item's mapping: the bytes stay
/// mapped and unchanged until it is dropped, whatever happens to the item.
pub struct Pinned {
    map: Arc<SharedMap>,
    start: usize,
    len: usize,
}

impl std::fmt::Debug for Pinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pinned").field("len", &self.len).finish()
    }
}

impl Pinned {
    /// Pins `value`, which lies in `map`, unless that would take the bytes
    /// pinned cache-wide past their limit. Called under the shard lock,
    /// which orders it with the shard's writes of the record.
    pub(super) fn new(map: &Arc<SharedMap>, value: &[u8]) -> Result<Pinned, Unpinned> {
        let base = map.map.bytes().as_ptr() as usize;
        let start = (value.as_ptr() as usize).wrapping_sub(base);
        debug_assert!(start + value.len() <= map.map.len());
        let pins = &map.pins;
        let size = map.map.len();
        let limit = pins.limit(&map.budget);
        if limit == 0 {
            return Err(Unpinned::Off);
        }
        if map.holders.load(Ordering::Acquire) == 0 && pins.bytes().saturating_add(size) > limit {
            pins.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Unpinned::OverLimit);
        }
        if map.holders.fetch_add(1, Ordering::AcqRel) == 0 {
            pins.bytes.fetch_add(size, Ordering::Relaxed);
        }
        Ok(Pinned {
            map: Arc::clone(map),
            start,
            len: value.len(),
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsRef<[u8]> for Pinned {
    #[inline]
    fn as_ref(&self) -> &[u8] {
        self.map.map.range(self.start, self.len)
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if self.map.holders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.map
                .pins
                .bytes
                .fetch_sub(self.map.map.len(), Ordering::Relaxed);
        }
    }
}
