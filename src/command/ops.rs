//! Operator commands: `slabs`, `stats cachedump`, `lru_crawler` (with the
//! streaming `metadump`) and `watch`, and what the watch lines report from
//! the cache (the lines themselves are `crate::watch`'s). Dump items and
//! refusals are reply values; the codec writes them.
//!
//! The watch log itself (watchers, their buffers, the line text) is
//! `crate::watch`'s; a command reaches it through [`Context::watch`] and
//! names its connection with [`Context::conn_fd`].

use super::{Context, Flow, Resume};
use crate::clock::Secs;
use crate::protocol::admin::{cachedump_args, watch, CrawlTarget, LruCrawler};
use crate::protocol::{Failure, Fault, ItemInfo, Reply, Response};
use crate::storage::crawl::{class_for_len, ClassSet, DumpCursor, ItemMeta};
use crate::storage::{Lookup, StoreOp, StoreOutcome};
use crate::watch::Mutation;

// ------------------------------------------------------------ slabs

/// `slabs reassign <src> <dst>`'s answer. ferrocache has no slab pages, so
/// no class ever has one to spare: after memcached's checks (in its order:
/// the same class; `-1`, "any class with a spare page", finds none; an id
/// out of range, with ferrocache's class count as the largest id; 0 is
/// memcached's global page pool, a valid source) the answer is `NOSPARE`.
pub fn slabs_reassign(src: i32, dst: i32) -> Failure {
    let largest = i64::from(crate::storage::Cache::class_count());
    let (src, dst) = (i64::from(src), i64::from(dst));
    if src == dst {
        Failure::SlabsSameClass
    } else if !(0..=largest).contains(&src) || !(0..=largest).contains(&dst) {
        Failure::SlabsBadClass
    } else {
        Failure::SlabsNoSpare
    }
}

/// memcached caps a `stats cachedump` reply at 2 MB, its `END\r\n` and a
/// final NUL included.
const CACHEDUMP_MAX: usize = 2 * 1024 * 1024;

/// `stats cachedump <class> <limit>` (`words`: what follows `cachedump`):
/// up to `limit` live items of the class (0: no limit), one `ITEM <key>
/// [<value bytes> b; <expiry unix time, 0 for none> s]` line each, the
/// reply at most 2 MB as memcached's. Items stored with binary keys are
/// left out, as memcached leaves them out.
pub fn cachedump<'a, R: Reply>(
    ctx: &Context<'_>,
    mut words: impl Iterator<Item = &'a [u8]>,
    out: &mut R,
) {
    let (id, limit) = (words.next(), words.next());
    let resp = if ctx.config.disable_dumping {
        Response::Failure(Failure::CachedumpDisabled)
    } else {
        match (id, limit) {
            (Some(id), Some(limit)) => match cachedump_args(id, limit) {
                Some((id, _)) if id > crate::storage::crawl::MAX_CLASS_ID => {
                    Response::Failure(Failure::CachedumpBadClass)
                }
                Some((id, limit)) => {
                    cachedump_class(ctx, id, limit, out);
                    Response::End
                }
                None => Response::Fault(Fault::BadCommandLineFormat),
            },
            _ => Response::Failure(Failure::CachedumpUsage),
        }
    };
    out.respond(&resp);
}

fn cachedump_class<R: Reply>(ctx: &Context<'_>, id: u32, limit: u32, out: &mut R) {
    let mut classes = ClassSet::empty();
    if !classes.insert(id) {
        return; // class 0 holds nothing
    }
    // room for `END\r\n` and memcached's NUL
    let budget = out.len() + CACHEDUMP_MAX - 6;
    let mut shown = 0u32;
    let mut full = false;
    let mut at = Some(DumpCursor::start());
    while let Some(cur) = at {
        at = ctx.cache.dump_step(cur, classes, |key, meta| {
            if full || meta.binary_key || (limit != 0 && shown >= limit) {
                return;
            }
            let before = out.len();
            out.respond(&Response::CachedumpItem {
                key,
                value_len: meta.value_len,
                exp: meta.exp.unwrap_or(0),
            });
            // an item that does not fit is taken back, and ends the dump
            if out.len() > budget {
                out.truncate(before);
                full = true;
                return;
            }
            shown += 1;
        });
        if full || (limit != 0 && shown >= limit) {
            break;
        }
    }
}

// ------------------------------------------------------------ lru_crawler

/// Executes `lru_crawler …`. A `metadump` streams: it pauses (returning
/// [`Flow::Paused`] with its cursor) each time `out` passes `out_limit`, so
/// a dump of any size never holds more than about one batch past the limit,
/// and each batch holds one shard lock for a bounded number of slots.
pub fn lru_crawler<R: Reply>(
    ctx: &Context<'_>,
    cmd: LruCrawler,
    resume: Option<DumpCursor>,
    out: &mut R,
    out_limit: usize,
) -> Flow {
    let cache = ctx.cache;
    let resp = match cmd {
        LruCrawler::Enable => {
            if cache.set_crawler_enabled(true) {
                // memcached's answer when its crawler thread already runs
                Response::Failure(Failure::CrawlerRunning)
            } else {
                Response::Ok
            }
        }
        LruCrawler::Disable => {
            cache.set_crawler_enabled(false);
            Response::Ok
        }
        LruCrawler::Sleep(micros) => {
            cache.set_crawler_sleep(micros);
            Response::Ok
        }
        LruCrawler::Tocrawl(n) => {
            cache.set_crawler_tocrawl(n);
            Response::Ok
        }
        LruCrawler::Crawl(target) => {
            if !cache.crawler_enabled() {
                Response::Failure(Failure::CrawlerDisabled)
            } else {
                match target {
                    CrawlTarget::BadClass => Response::Failure(Failure::CrawlBadClass),
                    // memcached cannot crawl by hash table
                    CrawlTarget::Hash => Response::Failure(Failure::CrawlByHash),
                    // one requested crawl at a time, as memcached
                    _ if cache.crawl_pending() => Response::Failure(Failure::CrawlerBusy),
                    // a class list without a class (`,`)
                    CrawlTarget::Classes(0) => Response::Failure(Failure::CrawlNothingToDo),
                    CrawlTarget::All | CrawlTarget::Classes(_) => {
                        // ferrocache's shards hold every class: a class
                        // list crawls everything, as `all` does
                        cache.request_crawl();
                        Response::Ok
                    }
                }
            }
        }
        LruCrawler::Metadump(target) => return metadump(ctx, target, resume, out, out_limit),
    };
    out.respond(&resp);
    Flow::Done
}

fn metadump<R: Reply>(
    ctx: &Context<'_>,
    target: CrawlTarget,
    resume: Option<DumpCursor>,
    out: &mut R,
    out_limit: usize,
) -> Flow {
    // memcached checks in this order; a dump already under way goes on
    // whatever happens to the switches meanwhile
    let refused = if resume.is_some() {
        None
    } else if !ctx.cache.crawler_enabled() {
        Some(Failure::CrawlerDisabled)
    } else if ctx.config.disable_dumping {
        Some(Failure::MetadumpDisabled)
    } else if target == CrawlTarget::BadClass {
        Some(Failure::CrawlBadClass)
    } else if target == CrawlTarget::Classes(0) {
        Some(Failure::CrawlNothingToDo)
    } else {
        None
    };
    if let Some(failure) = refused {
        out.respond(&Response::Failure(failure));
        return Flow::Done;
    }
    let classes = match target {
        CrawlTarget::Classes(mask) => {
            let mut set = ClassSet::empty();
            for id in 1..=63 {
                if mask & (1 << id) != 0 {
                    set.insert(id);
                }
            }
            set
        }
        _ => ClassSet::ALL,
    };
    let use_cas = ctx.config.use_cas;
    let mut at = resume.unwrap_or_else(DumpCursor::start);
    loop {
        let next = ctx.cache.dump_step(at, classes, |key, meta| {
            out.respond(&Response::MetadumpItem(&item_info(key, meta, use_cas)));
        });
        match next {
            Some(next) => {
                at = next;
                if out.len() >= out_limit {
                    return Flow::Paused(Resume::Dump(at));
                }
            }
            None => {
                out.respond(&Response::End);
                return Flow::Done;
            }
        }
    }
}

/// One item as the dumps show it.
pub fn item_info<'a>(key: &'a [u8], meta: &ItemMeta, use_cas: bool) -> ItemInfo<'a> {
    ItemInfo {
        key,
        binary_key: false,
        exp: meta.exp,
        last_access: meta.last_access,
        now: meta.now,
        cas: if use_cas { meta.cas } else { 0 },
        fetched: meta.fetched,
        class: meta.class,
        size: meta.size,
    }
}

// ------------------------------------------------------------------ watch

/// Executes `watch`: refused under `-W`; otherwise answers `OK` and turns
/// the connection into a watcher ([`Flow::Watch`]), which the server
/// registers with its [`crate::watch::WatchHub`].
pub fn watch_command<R: Reply>(ctx: &Context<'_>, mask: u32, out: &mut R) -> Flow {
    if ctx.config.disable_watch {
        out.respond(&Response::Failure(Failure::WatchDisabled));
        return Flow::Done;
    }
    out.respond(&Response::Ok);
    Flow::Watch(mask)
}

// The `log_*` functions below read what a watch line reports from the
// cache and pass it, with the connection, to `crate::watch`, which formats
// the lines. Each returns at once when nobody watches the stream.

/// A read of `key` (get, gets, gat, gats, touch): `len` is the value's
/// length on a hit.
#[inline]
pub fn log_fetch(ctx: &Context<'_>, key: &[u8], lookup: Lookup, len: usize) {
    ctx.watch.log_fetch(ctx.conn_fd, key, lookup, len);
}

/// The lookup a write makes first (set, add, …, delete, incr, decr), which
/// memcached logs as a read: the item as it is before the write.
#[inline]
pub fn log_lookup(ctx: &Context<'_>, key: &[u8]) {
    if !ctx.watch.wants(watch::FETCHERS) {
        return;
    }
    match ctx.cache.lookup_meta(key) {
        Ok(m) => log_fetch(ctx, key, Lookup::Hit, m.value_len),
        Err(why) => log_fetch(ctx, key, why, 0),
    }
}

/// A `touch`: logged as memcached does, as a read.
#[inline]
pub fn log_touch(ctx: &Context<'_>, key: &[u8], hit: bool) {
    if !ctx.watch.wants(watch::FETCHERS) {
        return;
    }
    match ctx.cache.item_meta(key).filter(|_| hit) {
        Some(m) => log_fetch(ctx, key, Lookup::Hit, m.value_len),
        None => log_fetch(ctx, key, Lookup::Miss, 0),
    }
}

/// A storage command's outcome.
#[inline]
pub fn log_store(
    ctx: &Context<'_>,
    op: StoreOp,
    key: &[u8],
    len: usize,
    deadline: Secs,
    outcome: StoreOutcome,
) {
    if !ctx.watch.wants(watch::MUTATIONS) {
        return;
    }
    let (mut class, mut size, mut deadline) = (class_for_len(key.len() + len), len, deadline);
    if matches!(op, StoreOp::Append | StoreOp::Prepend) && outcome == StoreOutcome::Stored {
        // the item as joined, with the deadline it kept
        if let Some(m) = ctx.cache.item_meta(key) {
            class = m.class;
            size = m.value_len;
            deadline = m.exp.map_or(0, |e| {
                (e - ctx.clock.epoch_unix()).min(u64::from(u32::MAX)) as u32
            });
        }
    }
    let m = Mutation {
        key,
        op,
        outcome,
        class,
        size,
        deadline,
        now: ctx.clock.now(),
    };
    ctx.watch.log_store(ctx.conn_fd, &m);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct NoServer;

    impl crate::command::ServerControl for NoServer {
        fn curr_connections(&self) -> u64 {
            0
        }
        fn conns(&self) -> Vec<crate::command::ConnInfo> {
            Vec::new()
        }
        fn shutdown(&self, _: bool) {}
        fn verbosity(&self) -> u32 {
            0
        }
        fn set_verbosity(&self, _: u32) {}
        fn slab_automove(&self) -> u32 {
            1
        }
        fn set_slab_automove(&self, _: u32) {}
        fn reserved_fds(&self) -> u64 {
            0
        }
    }

    #[test]
    fn a_dump_pauses_at_the_output_limit_and_resumes_from_its_cursor() {
        use crate::clock::Clock;
        use crate::config::Config;
        use crate::stats::Stats;
        use crate::storage::{Cache, CacheConfig, StoreOp};
        let clock = Arc::new(Clock::new());
        let cache = Cache::new(
            CacheConfig {
                memory_limit: 64 << 20,
                evict: true,
                shards: 16,
                item_size_max: 1 << 20,
                cas: true,
            },
            Arc::clone(&clock),
        );
        const N: usize = 20_000;
        for i in 0..N {
            let key = format!("key{i}");
            cache.store(StoreOp::Set, key.as_bytes(), 0, 0, b"v");
        }
        let config = Config::default();
        let stats = Stats::new(1);
        let ctx = Context {
            config: &config,
            cache: &cache,
            clock: &clock,
            stats: &stats,
            worker: stats.worker(0),
            server: &NoServer,
            watch: &crate::watch::WatchHub::new(),
            conn_fd: -1,
        };
        const LIMIT: usize = 16 * 1024;
        let dump = LruCrawler::Metadump(CrawlTarget::All);
        let (mut resume, mut calls, mut all) = (None, 0, Vec::new());
        loop {
            // the server empties the buffer between calls
            let mut out = Vec::new();
            let flow = lru_crawler(
                &ctx,
                dump,
                resume,
                &mut crate::protocol::TextReply::new(&mut out),
                LIMIT,
            );
            // at most one batch (256 slots, under 128 bytes a line here) past it
            assert!(
                out.len() < LIMIT + 256 * 128,
                "{} bytes buffered",
                out.len()
            );
            all.extend_from_slice(&out);
            calls += 1;
            match flow {
                Flow::Paused(Resume::Dump(at)) => {
                    assert_ne!(Some(at), resume, "no progress");
                    resume = Some(at);
                }
                Flow::Done => break,
                other => panic!("{other:?}"),
            }
        }
        assert!(calls > 20, "{calls} calls: the dump did not stream");
        assert!(all.ends_with(b"END\r\n"));
        let keys: std::collections::HashSet<&[u8]> = all
            .split(|&b| b == b'\n')
            .filter_map(|l| l.strip_prefix(b"key="))
            .map(|l| &l[..l.iter().position(|&b| b == b' ').unwrap()])
            .collect();
        assert_eq!(keys.len(), N);
        assert_eq!(
            all.split(|&b| b == b'\n')
                .filter(|l| l.starts_with(b"key="))
                .count(),
            N
        );
    }
}
