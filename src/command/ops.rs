//! Operator commands: `slabs`, `stats cachedump`, `lru_crawler` (with the
//! streaming `metadump`), and the `watch` log streams and the lines they
//! carry. Dump items and refusals are reply values; the codec writes them.
//!
//! Everything the hot path pays for `watch` is [`WatchHub::wants`]: one
//! relaxed atomic load. Lines are formatted only when somebody watches the
//! stream, into per-watcher buffers of bounded size; when a watcher's
//! buffer is full its lines are dropped and counted, and the count is sent
//! as a `skipped=N` line (memcached's) once there is room again.

use std::cell::Cell;
use std::io::Write;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Context, Flow, Resume};
use crate::clock::Secs;
use crate::protocol::admin::{cachedump_args, watch, CrawlTarget, LruCrawler};
pub use crate::protocol::text::write_uriencoded;
use crate::protocol::{Failure, Fault, ItemInfo, Reply, Response};
use crate::storage::crawl::{class_for_len, ClassSet, DumpCursor, EvictionSink, ItemMeta};
use crate::storage::{Lookup, StoreOp, StoreOutcome};

/// Bytes of lines one watcher may have waiting (memcached's default
/// `watcher_logbuf_size`). Past it, lines for that watcher are dropped.
pub const WATCH_BUF: usize = 256 * 1024;

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

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
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
/// registers with [`WatchHub::register`].
pub fn watch_command<R: Reply>(ctx: &Context<'_>, mask: u32, out: &mut R) -> Flow {
    if ctx.config.disable_watch {
        out.respond(&Response::Failure(Failure::WatchDisabled));
        return Flow::Done;
    }
    out.respond(&Response::Ok);
    Flow::Watch(mask)
}

thread_local! {
    /// The descriptor of the connection the worker is serving (`cfd=`).
    static CLIENT_FD: Cell<i32> = const { Cell::new(-1) };
}

/// Tells `watch` lines which connection the calling worker now serves.
#[inline]
pub fn set_client_fd(fd: i32) {
    CLIENT_FD.with(|c| c.set(fd));
}

fn client_fd() -> i32 {
    CLIENT_FD.with(|c| c.get())
}

/// The watchers of one server, and the union of what they watch.
pub struct WatchHub {
    mask: AtomicU32,
    gid: AtomicU64,
    watchers: Mutex<Vec<Arc<Watcher>>>,
}

/// One watching connection's stream.
pub struct Watcher {
    mask: u32,
    buf: Mutex<WatchBuf>,
    /// Makes the owning worker drain the buffer.
    wake: Box<dyn Fn() + Send + Sync>,
}

#[derive(Default)]
struct WatchBuf {
    lines: Vec<u8>,
    /// Lines dropped since the buffer was last full.
    skipped: u64,
    /// The worker was woken and has not drained the buffer since.
    woken: bool,
}

impl std::fmt::Debug for WatchHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchHub")
            .field("mask", &self.mask.load(Ordering::Relaxed))
            .field("watchers", &self.list().len())
            .finish()
    }
}

impl Default for WatchHub {
    fn default() -> Self {
        Self::new()
    }
}

impl WatchHub {
    pub fn new() -> WatchHub {
        WatchHub {
            mask: AtomicU32::new(0),
            gid: AtomicU64::new(0),
            watchers: Mutex::new(Vec::new()),
        }
    }

    /// Whether anybody watches any of the `streams` bits: the one check on
    /// the hot path.
    #[inline]
    pub fn wants(&self, streams: u32) -> bool {
        self.mask.load(Ordering::Relaxed) & streams != 0
    }

    fn list(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Watcher>>> {
        self.watchers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update_mask(&self, list: &[Arc<Watcher>]) {
        let mask = list.iter().fold(0, |m, w| m | w.mask);
        self.mask.store(mask, Ordering::Relaxed);
    }

    /// A new watcher of `mask`; `wake` is called (from any thread) when its
    /// buffer gets lines after having been drained.
    pub fn register(&self, mask: u32, wake: Box<dyn Fn() + Send + Sync>) -> Arc<Watcher> {
        let w = Arc::new(Watcher {
            mask,
            buf: Mutex::new(WatchBuf::default()),
            wake,
        });
        let mut list = self.list();
        list.push(Arc::clone(&w));
        self.update_mask(&list);
        w
    }

    pub fn unregister(&self, w: &Arc<Watcher>) {
        let mut list = self.list();
        list.retain(|x| !Arc::ptr_eq(x, w));
        self.update_mask(&list);
    }

    /// Sends one line to every watcher of `stream`: `ts=… gid=… ` then what
    /// `body` writes (which must end in `\n`).
    pub fn emit(&self, stream: u32, body: impl FnOnce(&mut Vec<u8>)) {
        let list = self.list();
        if !list.iter().any(|w| w.mask & stream != 0) {
            return;
        }
        let gid = self.gid.fetch_add(1, Ordering::Relaxed) + 1;
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut line = Vec::with_capacity(160);
        // memcached prints the microseconds without leading zeros
        let _ = write!(
            line,
            "ts={}.{} gid={} ",
            t.as_secs(),
            t.subsec_micros(),
            gid
        );
        body(&mut line);
        for w in list.iter().filter(|w| w.mask & stream != 0) {
            w.push(&line);
        }
    }
}

impl Watcher {
    fn lock(&self) -> std::sync::MutexGuard<'_, WatchBuf> {
        self.buf.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn push(&self, line: &[u8]) {
        let mut b = self.lock();
        let note = if b.skipped > 0 {
            format!("skipped={}\n", b.skipped)
        } else {
            String::new()
        };
        if b.lines.len() + note.len() + line.len() > WATCH_BUF {
            b.skipped += 1;
            return;
        }
        b.lines.extend_from_slice(note.as_bytes());
        b.lines.extend_from_slice(line);
        b.skipped = 0;
        if !b.woken {
            b.woken = true;
            drop(b);
            (self.wake)();
        }
    }

    /// Moves the waiting lines to `out`. Returns false when there were none.
    pub fn drain_into(&self, out: &mut Vec<u8>) -> bool {
        let mut b = self.lock();
        b.woken = false;
        if b.lines.is_empty() {
            return false;
        }
        if out.is_empty() {
            std::mem::swap(out, &mut b.lines);
        } else {
            out.extend_from_slice(&b.lines);
            b.lines.clear();
        }
        if b.lines.capacity() > WATCH_BUF * 2 {
            b.lines = Vec::new();
        }
        true
    }
}

/// `ttl=` of memcached's mutation lines: seconds left (as an unsigned
/// 32-bit number, so an already expired deadline wraps), 0 for never.
fn ttl_of(deadline: Secs, now: Secs) -> u32 {
    if deadline == 0 {
        0
    } else {
        deadline.wrapping_sub(now)
    }
}

/// A read of `key` (get, gets, gat, gats, touch): `len` is the value's
/// length on a hit.
#[inline]
pub fn log_fetch(ctx: &Context<'_>, key: &[u8], lookup: Lookup, len: usize) {
    let hub = &ctx.stats.watch;
    if !hub.wants(watch::FETCHERS) {
        return;
    }
    let (status, class, size) = match lookup {
        Lookup::Hit => ("found", class_for_len(key.len() + len), len),
        Lookup::Miss => ("not_found", 0, 0),
        Lookup::Expired => ("expired", 0, 0),
        Lookup::Flushed => ("flushed", 0, 0),
    };
    hub.emit(watch::FETCHERS, |l| {
        l.extend_from_slice(b"type=item_get key=");
        write_uriencoded(key, l);
        let _ = writeln!(
            l,
            " status={} clsid={} cfd={} size={}",
            status,
            class,
            client_fd(),
            size
        );
    });
}

/// The lookup a write makes first (set, add, …, delete, incr, decr), which
/// memcached logs as a read: the item as it is before the write.
#[inline]
pub fn log_lookup(ctx: &Context<'_>, key: &[u8]) {
    if !ctx.stats.watch.wants(watch::FETCHERS) {
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
    if !ctx.stats.watch.wants(watch::FETCHERS) {
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
    let hub = &ctx.stats.watch;
    if !hub.wants(watch::MUTATIONS) {
        return;
    }
    let status = match outcome {
        StoreOutcome::Stored => "stored",
        StoreOutcome::NotStored => "not_stored",
        StoreOutcome::Exists => "exists",
        StoreOutcome::NotFound => "not_found",
        StoreOutcome::TooLarge => "too_large",
        StoreOutcome::NoMemory => "no_memory",
    };
    let cmd = match op {
        StoreOp::Set => "set",
        StoreOp::Add => "add",
        StoreOp::Replace => "replace",
        StoreOp::Append => "append",
        StoreOp::Prepend => "prepend",
        StoreOp::Cas(_) => "cas",
    };
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
    let ttl = ttl_of(deadline, ctx.clock.now());
    hub.emit(watch::MUTATIONS, |l| {
        l.extend_from_slice(b"type=item_store key=");
        write_uriencoded(key, l);
        let _ = writeln!(
            l,
            " status={} cmd={} ttl={} clsid={} cfd={} size={}",
            status,
            cmd,
            ttl,
            class,
            client_fd(),
            size
        );
    });
}

impl EvictionSink for WatchHub {
    fn wants(&self) -> bool {
        WatchHub::wants(self, watch::EVICTIONS)
    }

    /// `type=eviction key=… fetch=… ttl=<seconds left, -1 never> la=<seconds
    /// since last access> clsid=… size=<value bytes>`.
    fn evicted(&self, key: &[u8], meta: &ItemMeta) {
        let ttl = meta.exp.map_or(-1, |e| e as i64 - meta.now as i64);
        let la = meta.now.saturating_sub(meta.last_access);
        self.emit(watch::EVICTIONS, |l| {
            l.extend_from_slice(b"type=eviction key=");
            write_uriencoded(key, l);
            let _ = writeln!(
                l,
                " fetch={} ttl={} la={} clsid={} size={}",
                yes_no(meta.fetched),
                ttl,
                la,
                meta.class,
                meta.value_len
            );
        });
    }
}

/// A connection opened or closed (`watch connevents`). `peer` is
/// `tcp:1.2.3.4:5678`, `tcp6:[::1]:5678` or a unix socket's name.
pub fn log_conn(hub: &WatchHub, fd: i32, peer: &str, closed: Option<&str>) {
    if !hub.wants(watch::CONNEVENTS) {
        return;
    }
    let (transport, addr) = peer.split_once(':').unwrap_or(("unix", peer));
    let transport = if transport == "tcp6" {
        "tcp"
    } else {
        transport
    };
    let (rip, rport) = match addr.rsplit_once(':') {
        Some((ip, port)) if transport == "tcp" => (ip.trim_matches(|c| c == '[' || c == ']'), port),
        _ => (addr, "0"),
    };
    hub.emit(watch::CONNEVENTS, |l| {
        let _ = match closed {
            None => writeln!(
                l,
                "type=conn_new rip={rip} rport={rport} transport={transport} cfd={fd}"
            ),
            Some(reason) => writeln!(
                l,
                "type=conn_close rip={rip} rport={rport} transport={transport} reason={reason} cfd={fd}"
            ),
        };
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    struct NoServer;

    impl crate::command::ServerControl for NoServer {
        fn curr_connections(&self) -> u64 {
            0
        }
        fn conns(&self) -> Vec<crate::command::ConnInfo> {
            Vec::new()
        }
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

    #[test]
    fn a_full_watcher_drops_lines_and_says_how_many() {
        let hub = WatchHub::new();
        assert!(!hub.wants(watch::FETCHERS));
        let wakes = Arc::new(AtomicUsize::new(0));
        let w2 = Arc::clone(&wakes);
        let w = hub.register(
            watch::FETCHERS,
            Box::new(move || {
                w2.fetch_add(1, Ordering::Relaxed);
            }),
        );
        assert!(hub.wants(watch::FETCHERS) && !hub.wants(watch::MUTATIONS));
        let body = vec![b'x'; 1000];
        let mut sent = 0;
        for _ in 0..1000 {
            hub.emit(watch::FETCHERS, |l| {
                l.extend_from_slice(&body);
                l.push(b'\n');
            });
            sent += 1;
        }
        hub.emit(watch::MUTATIONS, |_| panic!("nobody watches mutations"));
        assert_eq!(wakes.load(Ordering::Relaxed), 1, "one wake until drained");
        let mut out = Vec::new();
        assert!(w.drain_into(&mut out));
        assert!(out.len() <= WATCH_BUF);
        let kept = out.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
        assert!(kept < sent);
        // the next line that fits carries the count first
        hub.emit(watch::FETCHERS, |l| l.extend_from_slice(b"type=last\n"));
        out.clear();
        assert!(w.drain_into(&mut out));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.lines().next(),
            Some(&*format!("skipped={}", sent - kept))
        );
        assert!(text.lines().nth(1).unwrap().ends_with("type=last"));
        assert_eq!(wakes.load(Ordering::Relaxed), 2);
        hub.unregister(&w);
        assert!(!hub.wants(watch::FETCHERS));
    }
}
