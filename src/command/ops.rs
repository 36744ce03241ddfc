//! Operator commands: `lru_crawler` (with the streaming `metadump`),
//! `watch` and what the watch lines report from the cache, and the formats
//! of one item's metadata (`metadump` lines, `me` replies).
//!
//! The watch log itself (watchers, their buffers, the line text) is
//! `crate::watch`'s; a command reaches it through [`Context::watch`] and
//! names its connection with [`Context::conn_fd`].

use std::io::Write;

use super::{Context, Flow};
use crate::clock::Secs;
use crate::protocol::admin::{cachedump_args, watch, CrawlTarget, LruCrawler};
use crate::storage::crawl::{class_for_len, ClassSet, DumpCursor, ItemMeta};
use crate::storage::{Lookup, StoreOp, StoreOutcome};
use crate::watch::{write_uriencoded, Mutation};

// ------------------------------------------------------------ slabs

/// `slabs reassign <src> <dst>`'s answer. ferrocache has no slab pages, so
/// no class ever has one to spare: after memcached's checks (in its order:
/// the same class; `-1`, "any class with a spare page", finds none; an id
/// out of range, with ferrocache's class count as the largest id; 0 is
/// memcached's global page pool, a valid source) the answer is `NOSPARE`.
pub fn slabs_reassign(src: i32, dst: i32) -> &'static [u8] {
    let largest = i64::from(crate::storage::Cache::class_count());
    let (src, dst) = (i64::from(src), i64::from(dst));
    if src == dst {
        b"SAME src and dst class are identical"
    } else if !(0..=largest).contains(&src) || !(0..=largest).contains(&dst) {
        b"BADCLASS invalid src or dst class id"
    } else {
        b"NOSPARE source class has no spare pages"
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
pub fn cachedump<'a>(
    ctx: &Context<'_>,
    mut words: impl Iterator<Item = &'a [u8]>,
    out: &mut Vec<u8>,
) {
    let (id, limit) = (words.next(), words.next());
    let line: &[u8] = if ctx.config.disable_dumping {
        b"CLIENT_ERROR stats cachedump not allowed\r\n"
    } else {
        match (id, limit) {
            (Some(id), Some(limit)) => match cachedump_args(id, limit) {
                Some((id, _)) if id > crate::storage::crawl::MAX_CLASS_ID => {
                    b"CLIENT_ERROR Illegal slab id\r\n"
                }
                Some((id, limit)) => {
                    cachedump_class(ctx, id, limit, out);
                    b"END\r\n"
                }
                None => b"CLIENT_ERROR bad command line format\r\n",
            },
            _ => b"CLIENT_ERROR bad command line\r\n",
        }
    };
    out.extend_from_slice(line);
}

fn cachedump_class(ctx: &Context<'_>, id: u32, limit: u32, out: &mut Vec<u8>) {
    let mut classes = ClassSet::empty();
    if !classes.insert(id) {
        return; // class 0 holds nothing
    }
    // room for `END\r\n` and memcached's NUL
    let budget = out.len() + CACHEDUMP_MAX - 6;
    let mut shown = 0u32;
    let mut full = false;
    let mut line = Vec::new();
    let mut at = Some(DumpCursor::start());
    while let Some(cur) = at {
        at = ctx.cache.dump_step(cur, classes, |key, meta| {
            if full || meta.binary_key || (limit != 0 && shown >= limit) {
                return;
            }
            line.clear();
            line.extend_from_slice(b"ITEM ");
            line.extend_from_slice(key);
            let _ = write!(
                line,
                " [{} b; {} s]\r\n",
                meta.value_len,
                meta.exp.unwrap_or(0)
            );
            if out.len() + line.len() > budget {
                full = true;
                return;
            }
            out.extend_from_slice(&line);
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
pub fn lru_crawler(
    ctx: &Context<'_>,
    cmd: LruCrawler,
    resume: usize,
    out: &mut Vec<u8>,
    out_limit: usize,
) -> Flow {
    let cache = ctx.cache;
    let line: &[u8] = match cmd {
        LruCrawler::Enable => {
            if cache.set_crawler_enabled(true) {
                // memcached's answer when its crawler thread already runs
                b"ERROR failed to start lru crawler thread"
            } else {
                b"OK"
            }
        }
        LruCrawler::Disable => {
            cache.set_crawler_enabled(false);
            b"OK"
        }
        LruCrawler::Sleep(micros) => {
            cache.set_crawler_sleep(micros);
            b"OK"
        }
        LruCrawler::Tocrawl(n) => {
            cache.set_crawler_tocrawl(n);
            b"OK"
        }
        LruCrawler::Crawl(target) => {
            if !cache.crawler_enabled() {
                b"CLIENT_ERROR lru crawler disabled"
            } else {
                match target {
                    CrawlTarget::BadClass => b"BADCLASS invalid class id",
                    // memcached cannot crawl by hash table
                    CrawlTarget::Hash => b"ERROR an unknown error happened",
                    // one requested crawl at a time, as memcached
                    _ if cache.crawl_pending() => b"BUSY currently processing crawler request",
                    // a class list without a class (`,`)
                    CrawlTarget::Classes(0) => b"NOTSTARTED no items to crawl",
                    CrawlTarget::All | CrawlTarget::Classes(_) => {
                        // ferrocache's shards hold every class: a class
                        // list crawls everything, as `all` does
                        cache.request_crawl();
                        b"OK"
                    }
                }
            }
        }
        LruCrawler::Metadump(target) => return metadump(ctx, target, resume, out, out_limit),
    };
    out.extend_from_slice(line);
    out.extend_from_slice(b"\r\n");
    Flow::Done
}

fn metadump(
    ctx: &Context<'_>,
    target: CrawlTarget,
    resume: usize,
    out: &mut Vec<u8>,
    out_limit: usize,
) -> Flow {
    // memcached checks in this order; a dump already under way goes on
    // whatever happens to the switches meanwhile
    let refused: Option<&[u8]> = if resume != 0 {
        None
    } else if !ctx.cache.crawler_enabled() {
        Some(b"CLIENT_ERROR lru crawler disabled\r\n")
    } else if ctx.config.disable_dumping {
        Some(b"ERROR metadump not allowed\r\n")
    } else if target == CrawlTarget::BadClass {
        Some(b"BADCLASS invalid class id\r\n")
    } else if target == CrawlTarget::Classes(0) {
        Some(b"NOTSTARTED no items to crawl\r\n")
    } else {
        None
    };
    if let Some(line) = refused {
        out.extend_from_slice(line);
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
    let mut at = DumpCursor::unpack(resume);
    loop {
        let next = ctx.cache.dump_step(at, classes, |key, meta| {
            write_metadump_line(key, meta, use_cas, out);
        });
        match next {
            Some(next) => {
                at = next;
                if out.len() >= out_limit {
                    return Flow::Paused(at.pack());
                }
            }
            None => {
                out.extend_from_slice(b"END\r\n");
                return Flow::Done;
            }
        }
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// One `lru_crawler metadump` line, memcached's format (ends in `\n` alone):
/// `key=<uri-encoded> exp=<unix time or -1> la=<unix time> cas=<n>
/// fetch=<yes|no> cls=<class> size=<bytes>`.
pub fn write_metadump_line(key: &[u8], meta: &ItemMeta, use_cas: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(b"key=");
    write_uriencoded(key, out);
    let exp = meta.exp.map_or(-1, |e| e as i64);
    let cas = if use_cas { meta.cas } else { 0 };
    // Writing into a Vec cannot fail.
    let _ = writeln!(
        out,
        " exp={} la={} cas={} fetch={} cls={} size={}",
        exp,
        meta.last_access,
        cas,
        yes_no(meta.fetched),
        meta.class,
        meta.size
    );
}

/// The reply of `me <key>` as memcached 1.6.18 writes it:
/// `ME <key> exp=<e> la=<seconds since last access> cas=<n> fetch=<yes|no>
/// cls=<class> size=<bytes>\r\n`. The key is written as given. `exp` is -1
/// for an item that never expires, and otherwise (memcached 1.6.18's
/// arithmetic, kept for byte compatibility) now minus the expiry time: the
/// seconds left, negated.
pub fn write_me_line(key: &[u8], meta: &ItemMeta, use_cas: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(b"ME ");
    out.extend_from_slice(key);
    let exp = meta.exp.map_or(-1, |e| meta.now as i64 - e as i64);
    let cas = if use_cas { meta.cas } else { 0 };
    let _ = write!(
        out,
        " exp={} la={} cas={} fetch={} cls={} size={}\r\n",
        exp,
        meta.now.saturating_sub(meta.last_access),
        cas,
        yes_no(meta.fetched),
        meta.class,
        meta.size
    );
}

// ------------------------------------------------------------------ watch

/// Executes `watch`: refused under `-W`; otherwise answers `OK` and turns
/// the connection into a watcher ([`Flow::Watch`]), which the server
/// registers with its [`crate::watch::WatchHub`].
pub fn watch_command(ctx: &Context<'_>, mask: u32, out: &mut Vec<u8>) -> Flow {
    if ctx.config.disable_watch {
        out.extend_from_slice(b"CLIENT_ERROR watch commands not allowed\r\n");
        return Flow::Done;
    }
    out.extend_from_slice(b"OK\r\n");
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

    fn meta() -> ItemMeta {
        ItemMeta {
            exp: None,
            last_access: 1_795_654_495,
            cas: 1,
            fetched: true,
            class: 1,
            size: 72,
            value_len: 1,
            now: 1_795_654_500,
            binary_key: false,
        }
    }

    #[test]
    fn metadump_and_me_lines() {
        let mut out = Vec::new();
        write_metadump_line(b"a", &meta(), true, &mut out);
        assert_eq!(
            out,
            b"key=a exp=-1 la=1795654495 cas=1 fetch=yes cls=1 size=72\n"
        );
        out.clear();
        let m = ItemMeta {
            exp: Some(1_795_654_600),
            fetched: false,
            ..meta()
        };
        write_metadump_line(b"k k", &m, false, &mut out);
        assert_eq!(
            out,
            b"key=k%20k exp=1795654600 la=1795654495 cas=0 fetch=no cls=1 size=72\n"
        );
        out.clear();
        write_me_line(b"a%b", &m, true, &mut out);
        assert_eq!(
            out,
            b"ME a%b exp=-100 la=5 cas=1 fetch=no cls=1 size=72\r\n"
        );
    }

    struct NoServer;

    impl crate::command::ServerControl for NoServer {
        fn curr_connections(&self) -> u64 {
            0
        }
        fn write_conns(&self, _: &mut Vec<u8>) {}
        fn shutdown(&self) {}
        fn verbosity(&self) -> u32 {
            0
        }
        fn set_verbosity(&self, _: u32) {}
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
        let (mut resume, mut calls, mut all) = (0, 0, Vec::new());
        loop {
            // the server empties the buffer between calls
            let mut out = Vec::new();
            let flow = lru_crawler(&ctx, dump, resume, &mut out, LIMIT);
            // at most one batch (256 slots, under 128 bytes a line here) past it
            assert!(
                out.len() < LIMIT + 256 * 128,
                "{} bytes buffered",
                out.len()
            );
            all.extend_from_slice(&out);
            calls += 1;
            match flow {
                Flow::Paused(at) => {
                    assert_ne!(at, resume, "no progress");
                    resume = at;
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
