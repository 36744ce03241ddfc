//! Walking the cache for operators: `lru_crawler metadump` in bounded
//! batches from a cursor, one item's metadata (for `me`), the on-demand
//! crawl pass (`lru_crawler crawl`) with the crawler's settings, and the tap
//! through which `watch evictions` hears about evictions.
//!
//! Owns no item: everything here reads shards one lock at a time, for a
//! bounded number of records, through small accessors of `shard`. Must
//! not know wire formats: callers get [`ItemMeta`] and format it themselves.
//!
//! A dump walks each shard's segments from old to young, record by record.
//! A rewrite appends a new record at the young end, so an item rewritten
//! during the dump may be listed twice (old and new cas unique) or once;
//! an item written or removed during the dump may or may not be listed.
//! A segment recycled while the dump is paused on it is walked again from
//! its start (its kept items may be listed twice, with the same unique);
//! every item present and untouched for the whole dump is listed.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::item::{class_of, record_size, Item, CLASSES};
use super::shard::{Ctx, Pos};
use super::{Cache, Lookup};

/// Records a dump looks at per shard lock: bounds the lock hold to a few
/// tens of microseconds, formatting included.
const DUMP_SLOTS: usize = 256;
/// Records one crawl slice looks at per shard lock (as the expirer).
const CRAWL_SLOTS: usize = 1024;
/// Crawl slices per clock tick: a requested crawl visits up to 64 Ki records
/// per tick (~650 K a second) on the clock thread.
const CRAWL_SLICES_PER_TICK: usize = 64;

/// Highest class id memcached accepts in `lru_crawler` class lists (its
/// `MAX_NUMBER_OF_SLAB_CLASSES - 1`); ferrocache's classes stop at
/// [`CLASSES`], the ids above are valid and empty.
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

/// The size class (from 1) an item with `key_len + value_len = total` bytes
/// and client flags 0 counts in, without looking it up (flags add 4 bytes).
pub fn class_for_len(total: usize) -> u32 {
    class_of(record_size(0, total, 0)) as u32 + 1
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
/// sequence number) and offset in it. Packs into a `usize` (a
/// [`crate::command::Flow::Paused`] count) and back; 0 is the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DumpCursor {
    shard: usize,
    seq: u32,
    off: usize,
}

// The packing: 12 bits of shard, 32 of sequence, 20 of offset.
const _: () = assert!(usize::BITS >= 64);
const OFF_BITS: u32 = 20;

impl DumpCursor {
    pub fn start() -> DumpCursor {
        DumpCursor::default()
    }

    pub fn pack(self) -> usize {
        (self.shard << 52) | ((self.seq as usize) << OFF_BITS) | self.off
    }

    pub fn unpack(n: usize) -> DumpCursor {
        DumpCursor {
            shard: n >> 52,
            seq: (n >> OFF_BITS) as u32,
            off: n & ((1 << OFF_BITS) - 1),
        }
    }
}

/// Who hears about evictions (`watch evictions`). Called with a shard lock
/// held: must be quick and must not call back into the cache.
pub trait EvictionSink: Send + Sync {
    /// Whether anybody listens now (checked before anything is computed).
    fn wants(&self) -> bool;
    fn evicted(&self, key: &[u8], meta: &ItemMeta);
}

/// The eviction hook a shard calls through its [`Ctx`].
pub(super) struct Tap {
    sink: OnceLock<Arc<dyn EvictionSink>>,
    epoch_unix: u64,
}

impl Tap {
    /// An eviction of `it` is about to happen.
    #[inline]
    pub(super) fn evicting(&self, it: &Item, ctx: &Ctx) {
        if let Some(sink) = self.sink.get() {
            if sink.wants() {
                sink.evicted(it.key(), &meta_of(it, ctx.now, self.epoch_unix));
            }
        }
    }
}

/// A requested crawl under way: the shard it is in, and (once that shard
/// is started) where in it and how many records are still to visit.
type Pass = (usize, Option<(Pos, usize)>);

/// The crawler's switches and the state of a requested crawl.
pub(super) struct Crawler {
    pub(super) tap: Tap,
    enabled: AtomicBool,
    sleep: AtomicU32,
    tocrawl: AtomicU32,
    /// `slabs automove`'s level: reported, with no effect (no slab pages);
    /// memcached 1.6's default is 1.
    automove: AtomicU32,
    /// A requested crawl: the next shard, and where in it and how many of
    /// its records are still to visit (`None` before the shard is started).
    pass: Mutex<Option<Pass>>,
}

impl Crawler {
    /// `epoch_unix`: the unix time of the cache clock's second 0.
    pub(super) fn new(epoch_unix: u64) -> Crawler {
        Crawler {
            tap: Tap {
                sink: OnceLock::new(),
                epoch_unix,
            },
            enabled: AtomicBool::new(true),
            // memcached's defaults
            sleep: AtomicU32::new(100),
            tocrawl: AtomicU32::new(0),
            automove: AtomicU32::new(1),
            pass: Mutex::new(None),
        }
    }
}

fn meta_of(it: &Item, now: u32, epoch_unix: u64) -> ItemMeta {
    let class_size = it.class_size();
    ItemMeta {
        exp: (it.deadline() != 0).then(|| epoch_unix + u64::from(it.deadline())),
        last_access: epoch_unix + u64::from(it.atime()),
        cas: it.cas(),
        fetched: it.fetched(),
        class: class_of(class_size) as u32 + 1,
        size: class_size as u64,
        value_len: it.value().len(),
        now: epoch_unix + u64::from(now),
        binary_key: it.binary_key(),
    }
}

impl Cache {
    /// `key`'s metadata if it is live, without reading it: the used mark, the
    /// fetched bit and the access time stay as they were (memcached's `me`).
    pub fn item_meta(&self, key: &[u8]) -> Option<ItemMeta> {
        let (s, hash) = self.locate(key);
        let ctx = self.ctx();
        let shard = self.lock(s);
        let it = shard.peek(hash, key)?;
        ctx.alive(it)
            .then(|| meta_of(it, ctx.now, self.clock.epoch_unix()))
    }

    /// `key`'s metadata, or why there is none (absent, expired, flushed),
    /// without touching the item: what `watch fetchers` reports for the
    /// lookups that writes make.
    pub fn lookup_meta(&self, key: &[u8]) -> Result<ItemMeta, Lookup> {
        let (s, hash) = self.locate(key);
        let ctx = self.ctx();
        let shard = self.lock(s);
        let it = shard.peek(hash, key).ok_or(Lookup::Miss)?;
        match ctx.death_of(it) {
            Some(why) => Err(why),
            None => Ok(meta_of(it, ctx.now, self.clock.epoch_unix())),
        }
    }

    /// One step of a dump: looks at up to `DUMP_SLOTS` records of one
    /// shard from `at`, calling `f` (with the shard locked: it must not call
    /// back into the cache) for each live item of a class in `classes`.
    /// Returns where to go on, or `None` once every shard is done.
    pub fn dump_step(
        &self,
        at: DumpCursor,
        classes: ClassSet,
        mut f: impl FnMut(&[u8], &ItemMeta),
    ) -> Option<DumpCursor> {
        if at.shard >= self.shards.len() {
            return None;
        }
        let ctx = self.ctx();
        let epoch = self.clock.epoch_unix();
        let shard = self.lock(at.shard);
        let from = Pos {
            seq: shard.seq_from_low(at.seq),
            off: at.off,
        };
        let stop = shard.walk(from, DUMP_SLOTS, |it| {
            if !ctx.alive(it) {
                return;
            }
            let meta = meta_of(it, ctx.now, epoch);
            if classes.contains(meta.class) {
                f(it.key(), &meta);
            }
        });
        let next = match stop {
            None => DumpCursor {
                shard: at.shard + 1,
                ..DumpCursor::default()
            },
            Some(pos) => DumpCursor {
                shard: at.shard,
                seq: pos.seq as u32,
                off: pos.off,
            },
        };
        drop(shard);
        (next.shard < self.shards.len()).then_some(next)
    }

    /// Installs who hears about evictions (once; later calls are ignored).
    pub fn set_eviction_sink(&self, sink: Arc<dyn EvictionSink>) {
        let _ = self.crawler.tap.sink.set(sink);
    }

    /// `lru_crawler enable|disable`: the background expirer (and requested
    /// crawls) run only while enabled. Returns the previous state.
    pub fn set_crawler_enabled(&self, on: bool) -> bool {
        let was = self.crawler.enabled.swap(on, Ordering::Relaxed);
        if !on {
            *self.pass() = None;
        }
        was
    }

    pub fn crawler_enabled(&self) -> bool {
        self.crawler.enabled.load(Ordering::Relaxed)
    }

    /// `lru_crawler sleep` (microseconds, recorded and reported).
    pub fn set_crawler_sleep(&self, micros: u32) {
        self.crawler.sleep.store(micros, Ordering::Relaxed);
    }

    pub fn crawler_sleep(&self) -> u32 {
        self.crawler.sleep.load(Ordering::Relaxed)
    }

    /// `lru_crawler tocrawl`: records a requested crawl looks at per
    /// shard (0: all of them).
    pub fn set_crawler_tocrawl(&self, n: u32) {
        self.crawler.tocrawl.store(n, Ordering::Relaxed);
    }

    pub fn crawler_tocrawl(&self) -> u32 {
        self.crawler.tocrawl.load(Ordering::Relaxed)
    }

    /// `slabs automove <level>`: recorded for `stats settings` only.
    pub fn set_slab_automove(&self, level: u32) {
        self.crawler.automove.store(level, Ordering::Relaxed);
    }

    pub fn slab_automove(&self) -> u32 {
        self.crawler.automove.load(Ordering::Relaxed)
    }

    fn pass(&self) -> std::sync::MutexGuard<'_, Option<Pass>> {
        self.crawler
            .pass
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// `lru_crawler crawl`: asks for one pass over every record of every
    /// shard, removing expired and flushed items, run by [`Cache::crawl_tick`]
    /// in bounded slices. A request while a pass runs starts it over.
    pub fn request_crawl(&self) {
        *self.pass() = Some((0, None));
    }

    /// Whether a requested crawl has not finished yet.
    pub fn crawl_pending(&self) -> bool {
        self.pass().is_some()
    }

    /// One clock tick's share of a requested crawl (nothing when none is
    /// pending or the crawler is disabled): at most `CRAWL_SLICES_PER_TICK`
    /// slices of `CRAWL_SLOTS` records, one shard lock per slice. Returns the
    /// items removed.
    pub fn crawl_tick(&self) -> usize {
        if !self.crawler_enabled() {
            return 0;
        }
        let mut pass = self.pass();
        let Some((mut shard, mut left)) = *pass else {
            return 0;
        };
        let tocrawl = self.crawler_tocrawl() as usize;
        let ctx = self.ctx();
        let mut removed = 0;
        for _ in 0..CRAWL_SLICES_PER_TICK {
            if shard >= self.shards.len() {
                break;
            }
            let mut s = self.lock(shard);
            let (mut at, todo) = left.unwrap_or((
                Pos::default(),
                if tocrawl == 0 { usize::MAX } else { tocrawl },
            ));
            let n = todo.min(CRAWL_SLOTS);
            // removals = visits: the sweep looks at up to `n` records
            let (r, end) = s.sweep_from(&ctx, &mut at, n, n, true);
            removed += r;
            drop(s);
            if end || todo - n == 0 {
                shard += 1;
                left = None;
            } else {
                left = Some((at, todo - n));
            }
        }
        *pass = (shard < self.shards.len()).then_some((shard, left));
        removed
    }

    /// Number of size classes ferrocache has (ids 1 to this).
    pub fn class_count() -> u32 {
        CLASSES as u32
    }
}

#[cfg(test)]
mod tests {
    use super::super::{CacheConfig, StoreOp, StoreOutcome};
    use super::*;
    use crate::clock::Clock;
    use std::collections::HashMap;

    fn cache(shards: usize) -> (Cache, Arc<Clock>) {
        let clock = Arc::new(Clock::new());
        let config = CacheConfig {
            memory_limit: 64 << 20,
            evict: true,
            shards,
            item_size_max: 1 << 20,
        };
        (Cache::new(config, clock.clone()), clock)
    }

    fn set(c: &Cache, key: &str, deadline: u32) {
        let r = c.store(StoreOp::Set, key.as_bytes(), 0, deadline, b"value");
        assert_eq!(r, StoreOutcome::Stored);
    }

    fn dump(c: &Cache, classes: ClassSet) -> Vec<(Vec<u8>, ItemMeta)> {
        let mut out = Vec::new();
        let mut at = Some(DumpCursor::start());
        while let Some(cur) = at {
            at = c.dump_step(cur, classes, |k, m| out.push((k.to_vec(), *m)));
            if let Some(next) = at {
                assert_eq!(DumpCursor::unpack(next.pack()), next);
                assert_ne!(next.pack(), 0, "a cursor after progress is never the start");
            }
        }
        out
    }

    #[test]
    fn dump_lists_every_live_item_once() {
        let (c, clock) = cache(8);
        for i in 0..3000 {
            set(&c, &format!("k{i}"), 0);
        }
        set(&c, "dies", clock.now() + 5);
        set(&c, "gone", 0);
        assert!(c.delete(b"gone"));
        let before = dump(&c, ClassSet::ALL);
        assert_eq!(before.len(), 3001);
        clock.advance(5);
        let got = dump(&c, ClassSet::ALL);
        let mut seen = HashMap::new();
        for (k, m) in &got {
            assert!(seen.insert(k.clone(), *m).is_none(), "listed twice");
        }
        assert_eq!(seen.len(), 3000, "expired and deleted items are not listed");
        assert!(!seen.contains_key(&b"dies"[..]) && !seen.contains_key(&b"gone"[..]));
        let m = seen[&b"k7"[..]];
        assert_eq!((m.exp, m.fetched, m.value_len), (None, false, 5));
        assert_eq!(m.class, class_for_len(2 + 5));
        assert_eq!(m.last_access, clock.epoch_unix() + 2);
    }

    #[test]
    fn dump_filters_by_class() {
        let (c, _) = cache(4);
        set(&c, "small", 0);
        let big = vec![b'x'; 5000];
        assert_eq!(
            c.store(StoreOp::Set, b"big", 0, 0, &big),
            StoreOutcome::Stored
        );
        let big_class = class_for_len(3 + 5000);
        let mut only = ClassSet::empty();
        assert!(only.insert(big_class));
        let got = dump(&c, only);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, b"big");
        assert!(got[0].1.size as usize >= 5003);
        let mut none = ClassSet::empty();
        assert!(none.insert(MAX_CLASS_ID));
        assert!(!none.insert(0) && !none.insert(MAX_CLASS_ID + 1));
        assert!(dump(&c, none).is_empty());
    }

    #[test]
    fn item_meta_does_not_touch_the_item() {
        let (c, clock) = cache(2);
        set(&c, "a", clock.now() + 100);
        clock.advance(3);
        let m = c.item_meta(b"a").expect("live");
        assert!(!m.fetched);
        assert_eq!(m.exp, Some(clock.epoch_unix() + 2 + 100));
        assert_eq!(m.now - m.last_access, 3);
        assert!(c.get(b"a", |_| ()).1.is_some());
        let m2 = c.item_meta(b"a").expect("live");
        assert!(m2.fetched && m2.last_access == m.now);
        assert_eq!(c.item_meta(b"missing"), None);
        assert_eq!(c.lookup_meta(b"missing"), Err(Lookup::Miss));
        assert_eq!(c.lookup_meta(b"a"), Ok(m2));
        clock.advance(100);
        assert_eq!(c.item_meta(b"a"), None, "expired");
        assert_eq!(c.lookup_meta(b"a"), Err(Lookup::Expired));
        c.flush_all(None);
        set(&c, "b", 0);
        assert!(c.lookup_meta(b"b").is_ok(), "stored after the flush");
    }

    #[test]
    fn a_requested_crawl_removes_dead_items_in_slices() {
        let (c, clock) = cache(4);
        for i in 0..10_000 {
            set(&c, &format!("k{i}"), clock.now() + 1);
        }
        set(&c, "lives", 0);
        clock.advance(1);
        assert_eq!(c.crawl_tick(), 0, "nothing requested");
        c.request_crawl();
        let mut removed = 0;
        let mut ticks = 0;
        while c.crawl_pending() {
            removed += c.crawl_tick();
            ticks += 1;
            assert!(ticks < 100);
        }
        assert_eq!(removed, 10_000);
        assert_eq!(c.stats().curr_items, 1);
        assert_eq!(c.stats().crawler_reclaimed, 10_000);
        // disabled: requests are dropped
        assert!(c.set_crawler_enabled(false));
        c.request_crawl();
        assert_eq!(c.crawl_tick(), 0);
        assert!(!c.set_crawler_enabled(true));
    }

    #[test]
    fn tocrawl_bounds_a_pass_per_shard() {
        let (c, clock) = cache(1);
        for i in 0..5000 {
            set(&c, &format!("k{i}"), clock.now() + 1);
        }
        clock.advance(1);
        c.set_crawler_tocrawl(100);
        c.request_crawl();
        let mut removed = 0;
        while c.crawl_pending() {
            removed += c.crawl_tick();
        }
        // (64 MiB is sized for two shards however few were asked for)
        let per_shard = 100 * c.shards.len();
        assert!(removed <= per_shard && removed > 0, "{removed}");
    }
}
