//! What the shards share, and what one operation carries into a shard: the
//! flush_all state, the cas base counter and the eviction tap (the memory
//! budget is `budget`'s).
//!
//! Owns the cache-wide state a shard may touch while the cache holds its
//! lock (all of it atomics or set once). Must not hold items or take a shard
//! lock; must not use `shard`, `crawl` or the cache above them.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::item::{Item, CAS_OFFSET_BITS};
use super::types::{EvictionSink, ItemMeta, Lookup};
use crate::clock::{is_expired, Secs};

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
    pub(super) evict: bool,
    pub(super) now: Secs,
    pub(super) flush: FlushView,
    /// The last cas base handed out (see [`Ctx::next_cas_base`]).
    pub(super) cas_bases: &'a AtomicU64,
    /// The item-size rule's limit (see `types::max_key_plus_value`).
    pub(super) max_key_value: usize,
    /// Who hears about evictions (`watch evictions`).
    pub(super) tap: &'a Tap,
}

impl Ctx<'_> {
    /// A new cas base: the high bits of the uniques of the records a
    /// segment gets from now on (`item::derived_cas`), or of a run of
    /// uniques for in-place changes. Each is handed out once, in increasing
    /// order across the cache, so uniques are unique and a flush can tell
    /// older from newer by comparing them.
    pub(super) fn next_cas_base(&self) -> u64 {
        next_cas_base(self.cas_bases)
    }

    /// Why `it`, whose cas unique is `cas`, is dead, if it is: flushed
    /// first, as memcached checks.
    #[inline]
    pub(super) fn death(&self, it: &Item, cas: u64) -> Option<Lookup> {
        if cas <= self.flush.cas || it.atime(self.now) < self.flush.before {
            Some(Lookup::Flushed)
        } else if is_expired(it.deadline(), self.now) {
            Some(Lookup::Expired)
        } else {
            None
        }
    }

    /// True when `it` (cas unique `cas`) is neither flushed nor expired.
    #[inline]
    pub(super) fn alive(&self, it: &Item, cas: u64) -> bool {
        self.death(it, cas).is_none()
    }
}

/// See [`Ctx::next_cas_base`]; `bases`: the last one handed out.
fn next_cas_base(bases: &AtomicU64) -> u64 {
    (bases.fetch_add(1, Ordering::Relaxed) + 1) << CAS_OFFSET_BITS
}

/// flush_all state. Readers take a [`FlushView`] with three atomic loads;
/// writers (flush_all, rare) serialise on `lock`.
#[derive(Debug, Default)]
pub(super) struct Flush {
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
    pub(super) fn view(&self, now: Secs) -> FlushView {
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

    /// See [`super::Cache::flush_all`]; `bases`: the cas base counter. A
    /// flush now takes a base of its own and kills every unique below it:
    /// those of every record written so far (the caller then closes the
    /// shards' open segments, whose bases are older).
    /// True for a flush now.
    pub(super) fn flush(&self, at: Option<Secs>, now: Secs, bases: &AtomicU64) -> bool {
        let _serial = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        // a delayed flush that has come due stays in force
        let pending = self.pending.load(Ordering::Acquire);
        if pending != 0 && pending <= now {
            self.before.fetch_max(pending, Ordering::AcqRel);
        }
        match at {
            Some(deadline) if deadline > now => {
                self.pending.store(deadline, Ordering::Release);
                false
            }
            _ => {
                // as memcached, a new flush_all replaces a pending one
                self.pending.store(0, Ordering::Release);
                self.cas.fetch_max(next_cas_base(bases), Ordering::AcqRel);
                true
            }
        }
    }
}

impl Flush {
    /// (cas threshold, "before" second, pending second) for the memory
    /// file's metadata (`persist`).
    pub(super) fn saved(&self) -> (u64, Secs, Secs) {
        (
            self.cas.load(Ordering::Acquire),
            self.before.load(Ordering::Acquire),
            self.pending.load(Ordering::Acquire),
        )
    }

    /// The state after a restart: the cas threshold carries over; items
    /// older than a "before" second were dropped while restoring, so none
    /// is needed; a delayed flush still pending comes due at `pending`
    /// (in the new clock's seconds; 0: none).
    pub(super) fn restore(&self, cas: u64, pending: Secs) {
        self.cas.store(cas, Ordering::Release);
        self.before.store(0, Ordering::Release);
        self.pending.store(pending, Ordering::Release);
    }
}

/// The eviction hook a shard calls through its [`Ctx`].
pub(super) struct Tap {
    sink: OnceLock<Arc<dyn EvictionSink>>,
    epoch_unix: u64,
}

impl Tap {
    /// `epoch_unix`: the unix time of the cache clock's second 0.
    pub(super) fn new(epoch_unix: u64) -> Tap {
        Tap {
            sink: OnceLock::new(),
            epoch_unix,
        }
    }

    /// Installs who hears about evictions (once; later calls are ignored).
    pub(super) fn set_sink(&self, sink: Arc<dyn EvictionSink>) {
        let _ = self.sink.set(sink);
    }

    /// An eviction of `it` is about to happen.
    #[inline]
    pub(super) fn evicting(&self, it: &Item, cas: u64, ctx: &Ctx) {
        if let Some(sink) = self.sink.get() {
            if sink.wants() {
                sink.evicted(it.key(), &ItemMeta::of(it, cas, ctx.now, self.epoch_unix));
            }
        }
    }
}
