//! The operator tools' walks: one step of `lru_crawler metadump` through a
//! shard, and a requested crawl (`lru_crawler crawl`) in bounded slices,
//! with the crawler's switches.
//!
//! Owns the crawler's state and how a dump or a crawl steps through a
//! shard. Must not take more than one shard lock at a time (the cache hands
//! it one locked shard, or a way to lock one at a time), and must not know
//! wire formats: callers get [`ItemMeta`] and format it themselves.
//!
//! A dump walks each shard's segments from old to young, record by record.
//! A rewrite appends a new record at the young end, so an item rewritten
//! during the dump may be listed twice (old and new cas unique) or once;
//! an item written or removed during the dump may or may not be listed.
//! A segment recycled while the dump is paused on it is walked again from
//! its start (its kept items may be listed twice, with the same unique);
//! every item present and untouched for the whole dump is listed.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::ctx::Ctx;
use super::shard::{Pos, Shard};

/// The operator tools' types, at the paths `command` names them by (they
/// live in `types` with the rest of the cache's API).
pub use super::types::{class_for_len, ClassSet, DumpCursor, EvictionSink, ItemMeta, MAX_CLASS_ID};

/// Records a dump looks at per shard lock: bounds the lock hold to a few
/// tens of microseconds, formatting included.
const DUMP_SLOTS: usize = 256;
/// Records one crawl slice looks at per shard lock (as the expirer).
const CRAWL_SLOTS: usize = 1024;
/// Crawl slices per clock tick: a requested crawl visits up to 64 Ki records
/// per tick (~650 K a second) on the clock thread.
const CRAWL_SLICES_PER_TICK: usize = 64;

/// One step of a dump in `shard` (shard number `at.shard`, locked by the
/// caller): looks at up to `DUMP_SLOTS` records from `at`, calling `f` for
/// each live item of a class in `classes`. Returns where to go on: in this
/// shard, or at the start of the next one.
pub(super) fn dump_slice(
    shard: &Shard,
    ctx: &Ctx,
    epoch_unix: u64,
    at: DumpCursor,
    classes: ClassSet,
    mut f: impl FnMut(&[u8], &ItemMeta),
) -> DumpCursor {
    let from = Pos {
        seq: shard.seq_from_low(at.seq),
        off: at.off,
    };
    let stop = shard.walk(from, DUMP_SLOTS, |it, cas| {
        if !ctx.alive(it, cas) {
            return;
        }
        let meta = ItemMeta::of(it, cas, ctx.now, epoch_unix);
        if classes.contains(meta.class) {
            f(it.key(), &meta);
        }
    });
    match stop {
        None => DumpCursor {
            shard: at.shard + 1,
            ..DumpCursor::default()
        },
        Some(pos) => DumpCursor {
            shard: at.shard,
            seq: pos.seq as u32,
            off: pos.off,
        },
    }
}

/// A requested crawl under way: the shard it is in, and (once that shard
/// is started) where in it and how many records are still to visit.
type Pass = (usize, Option<(Pos, usize)>);

/// The crawler's switches and the state of a requested crawl.
pub(super) struct Crawler {
    enabled: AtomicBool,
    sleep: AtomicU32,
    tocrawl: AtomicU32,
    /// Crawls requested since start-up.
    starts: AtomicU64,
    /// A requested crawl: the next shard, and where in it and how many of
    /// its records are still to visit (`None` before the shard is started).
    pass: Mutex<Option<Pass>>,
}

impl Crawler {
    pub(super) fn new() -> Crawler {
        Crawler {
            enabled: AtomicBool::new(true),
            // memcached's defaults
            sleep: AtomicU32::new(100),
            tocrawl: AtomicU32::new(0),
            starts: AtomicU64::new(0),
            pass: Mutex::new(None),
        }
    }

    /// Returns the previous state; turning the crawler off drops a
    /// requested crawl.
    pub(super) fn set_enabled(&self, on: bool) -> bool {
        let was = self.enabled.swap(on, Ordering::Relaxed);
        if !on {
            *self.pass() = None;
        }
        was
    }

    pub(super) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub(super) fn set_sleep(&self, micros: u32) {
        self.sleep.store(micros, Ordering::Relaxed);
    }

    pub(super) fn sleep(&self) -> u32 {
        self.sleep.load(Ordering::Relaxed)
    }

    pub(super) fn set_tocrawl(&self, n: u32) {
        self.tocrawl.store(n, Ordering::Relaxed);
    }

    pub(super) fn tocrawl(&self) -> u32 {
        self.tocrawl.load(Ordering::Relaxed)
    }

    fn pass(&self) -> MutexGuard<'_, Option<Pass>> {
        self.pass.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a pass over every shard (over again if one is under way).
    pub(super) fn request(&self) {
        *self.pass() = Some((0, None));
        self.starts.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn starts(&self) -> u64 {
        self.starts.load(Ordering::Relaxed)
    }

    pub(super) fn pending(&self) -> bool {
        self.pass().is_some()
    }

    /// One clock tick's share of a requested crawl over `shards` shards
    /// (nothing when none is pending or the crawler is disabled): at most
    /// `CRAWL_SLICES_PER_TICK` slices of `CRAWL_SLOTS` records, each under
    /// one shard lock taken through `lock`. Returns the items removed.
    pub(super) fn tick<'a>(
        &self,
        shards: usize,
        ctx: &Ctx,
        lock: impl Fn(usize) -> MutexGuard<'a, Shard>,
    ) -> usize {
        if !self.enabled() {
            return 0;
        }
        let mut pass = self.pass();
        let Some((mut shard, mut left)) = *pass else {
            return 0;
        };
        let tocrawl = self.tocrawl() as usize;
        let mut removed = 0;
        for _ in 0..CRAWL_SLICES_PER_TICK {
            if shard >= shards {
                break;
            }
            let mut s = lock(shard);
            let (mut at, todo) = left.unwrap_or((
                Pos::default(),
                if tocrawl == 0 { usize::MAX } else { tocrawl },
            ));
            let n = todo.min(CRAWL_SLOTS);
            // removals = visits: the sweep looks at up to `n` records
            let (r, end) = s.sweep_from(ctx, &mut at, n, n, true);
            removed += r;
            drop(s);
            if end || todo - n == 0 {
                shard += 1;
                left = None;
            } else {
                left = Some((at, todo - n));
            }
        }
        *pass = (shard < shards).then_some((shard, left));
        removed
    }
}
