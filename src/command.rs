//! The one place that joins protocol and storage: a parsed
//! [`Request`] becomes cache calls, counter bumps and reply values.
//!
//! Owns what each command does and answers. Must not touch a socket (what
//! it needs from the server, connection counts and shutting down, comes
//! through the [`ServerControl`] trait), nor write a wire byte: every
//! answer is a [`Response`], a meta reply or a stat handed to a
//! [`Reply`] sink, which the connection's codec turns into bytes.
//! [`execute`] is generic over the sink, so each codec gets its own
//! monomorphised copy and the text path makes no dynamic call.

mod meta;
pub mod ops;

use std::fmt::Display;

use crate::clock::Clock;
use crate::config::Config;
use crate::protocol::text::yes_no;
use crate::protocol::{
    ArithCreate, Failure, Fault, Keys, Limits, Reply, Request, Response, StoreMode,
};
use crate::stats::{bump, Stats, WorkerStats};
use crate::storage::crawl::DumpCursor;
use crate::storage::{
    ArithOpts, Cache, DeleteAction, DeleteOutcome, ItemRef, Lookup, MetaArithOutcome, StoreOp,
    StoreOutcome, WriteOpts,
};
use crate::watch::WatchHub;

/// The memcached release whose protocol and stats ferrocache follows.
pub const MEMCACHED_COMPAT: &str = "1.6.18";

/// What `version` and `stats` report: memcached's version first, so clients
/// that gate features on it (meta commands arrived in 1.6) keep working, then
/// who is really answering.
pub const VERSION: &str = concat!("1.6.18-ferrocache-", env!("CARGO_PKG_VERSION"));

/// The parts of the running server that commands read or act on.
pub trait ServerControl {
    fn curr_connections(&self) -> u64;
    /// The open connections, by descriptor, for `stats conns`.
    fn conns(&self) -> Vec<ConnInfo>;
    /// Starts an orderly shutdown (the `shutdown` command with `-A`).
    fn shutdown(&self);
    /// The current `-v` level (`stats settings`).
    fn verbosity(&self) -> u32;
    fn set_verbosity(&self, level: u32);
    /// `slabs automove`'s level (`stats settings`). It moves nothing here:
    /// there are no slab pages; memcached 1.6's default is 1.
    fn slab_automove(&self) -> u32;
    fn set_slab_automove(&self, level: u32);
    /// `-Z`'s context: `refresh_certs` and the TLS lines of `stats`.
    fn tls(&self) -> Option<&crate::tls::TlsContext> {
        None
    }
}

/// One open connection as `stats conns` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    pub fd: i32,
    /// `tcp:1.2.3.4:5678`, `tcp6:[::1]:5678` or a unix socket's path.
    pub peer: String,
    /// The listener it came in on, in the same form.
    pub listen: String,
}

/// The parse limits `config` sets: the one place that turns `-I` (and
/// `-C`) into the largest key plus value a storage command may carry,
/// through storage's own item-size rule so that the parser refuses exactly
/// what the cache would.
pub fn parse_limits(config: &Config) -> Limits {
    Limits {
        max_key_plus_value: crate::storage::max_key_plus_value(
            config.item_size_max,
            config.use_cas,
        ),
    }
}

/// Everything a command may touch, borrowed from the worker that runs it.
pub struct Context<'a> {
    pub config: &'a Config,
    pub cache: &'a Cache,
    pub clock: &'a Clock,
    pub stats: &'a Stats,
    /// The calling worker's own counters.
    pub worker: &'a WorkerStats,
    pub server: &'a dyn ServerControl,
    /// The `watch` log streams of this server.
    pub watch: &'a WatchHub,
    /// The descriptor of the connection being served (a UDP request: the
    /// socket's), which watch lines show as `cfd=`.
    pub conn_fd: i32,
}

/// What the connection does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// The request is answered; go on with the next one.
    Done,
    /// A multi-get or a dump filled the output past its limit: flush, then
    /// call again with this resume point.
    Paused(Resume),
    /// Close the connection once the output is flushed (`quit`, `shutdown`).
    Close,
    /// `watch`: once the output is flushed, the connection receives the
    /// log streams of this mask (see `protocol::admin::watch`) and executes
    /// nothing more.
    Watch(u32),
}

/// Whether `req` is one memcached refuses while replies of earlier
/// pipelined requests wait unsent ([`Request::pipelining_refusal`]) and
/// would refuse now: it makes its own checks first (`watch` under `-W`,
/// a metadump with the crawler off or under `-X`, answer those instead).
pub fn refused_after_pipeline(ctx: &Context<'_>, req: &Request<'_>) -> bool {
    match req {
        Request::Watch { .. } => !ctx.config.disable_watch,
        Request::LruCrawler(crate::protocol::admin::LruCrawler::Metadump(_)) => {
            ctx.cache.crawler_enabled() && !ctx.config.disable_dumping
        }
        _ => false,
    }
}

/// Where a paused reply goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// A multi-get: the byte offset in its key list of the first key not
    /// yet answered (never 0: a call always answers one key).
    Key(usize),
    /// A metadump: where its walk over the cache goes on.
    Dump(DumpCursor),
}

/// Executes one request, handing its reply to `out`.
///
/// `resume` is `None`, or what a previous [`Flow::Paused`] of the same
/// request returned; `out_limit` is where a multi-get or a dump pauses
/// ([`Reply::len`]). Only those pause: every other reply is small.
pub fn execute<R: Reply>(
    ctx: &Context<'_>,
    req: &Request<'_>,
    resume: Option<Resume>,
    out: &mut R,
    out_limit: usize,
) -> Flow {
    let resume_key = match resume {
        Some(Resume::Key(at)) => at,
        _ => 0,
    };
    let w = ctx.worker;
    // fault injection for the server's own tests: a panic mid-request
    #[cfg(test)]
    if let Request::Get { keys, .. } = *req {
        assert!(keys.iter().all(|k| k != b"test:panic"), "injected fault");
    }
    match *req {
        Request::Get { keys, with_cas } => {
            retrieve(ctx, keys, None, with_cas, resume_key, out, out_limit)
        }
        Request::Gat {
            exptime,
            keys,
            with_cas,
        } => {
            let deadline = ctx.clock.deadline(exptime);
            retrieve(
                ctx,
                keys,
                Some(deadline),
                with_cas,
                resume_key,
                out,
                out_limit,
            )
        }
        Request::GatBadKey { exptime, keys } => {
            // memcached has touched the keys before the bad one by the time
            // it sees it
            let deadline = ctx.clock.deadline(exptime);
            for key in keys.iter() {
                bump(&w.cmd_touch, 1);
                if ctx.cache.touch(key, deadline) {
                    bump(&w.touch_hits, 1);
                } else {
                    bump(&w.touch_misses, 1);
                }
            }
            reply(false, &Response::Fault(Fault::BadCommandLineFormat), out)
        }
        Request::Store {
            mode,
            key,
            flags,
            exptime,
            data,
            cas,
            noreply,
        } => {
            bump(&w.cmd_set, 1);
            let op = match mode {
                StoreMode::Set => StoreOp::Set,
                StoreMode::Add => StoreOp::Add,
                StoreMode::Replace => StoreOp::Replace,
                StoreMode::Append => StoreOp::Append,
                StoreMode::Prepend => StoreOp::Prepend,
                StoreMode::Cas => StoreOp::Cas(cas),
            };
            // a binary append/prepend compares the unique it carries
            let appends = matches!(mode, StoreMode::Append | StoreMode::Prepend);
            let opts = WriteOpts {
                compare: (appends && cas != 0).then_some(cas),
                ..WriteOpts::default()
            };
            let deadline = ctx.clock.deadline(exptime);
            ops::log_lookup(ctx, key);
            let (outcome, unique) = ctx.cache.store_with(op, key, flags, deadline, data, &opts);
            ops::log_store(ctx, op, key, data.len(), deadline, outcome);
            count_write(w, mode == StoreMode::Cas, outcome);
            let resp = match outcome {
                StoreOutcome::Stored => {
                    out.item_cas(shown_cas(ctx, unique));
                    Response::Stored
                }
                StoreOutcome::NotStored => Response::NotStored,
                StoreOutcome::Exists => Response::Exists,
                StoreOutcome::NotFound => Response::NotFound,
                StoreOutcome::TooLarge => TOO_LARGE,
                StoreOutcome::NoMemory => NO_MEMORY,
            };
            reply(noreply, &resp, out)
        }
        Request::TooLarge { mode, key, noreply } => {
            bump(&w.store_too_large, 1);
            // memcached drops the old value so a failed set never leaves stale
            // data behind; the other modes keep it.
            if mode == StoreMode::Set {
                ctx.cache.delete(key);
            }
            reply(noreply, &TOO_LARGE, out)
        }
        Request::Delete { key, cas, noreply } => {
            ops::log_lookup(ctx, key);
            let resp = match delete(ctx, key, cas) {
                DeleteOutcome::Done => {
                    bump(&w.delete_hits, 1);
                    Response::Deleted
                }
                DeleteOutcome::NotFound => {
                    bump(&w.delete_misses, 1);
                    Response::NotFound
                }
                DeleteOutcome::Exists => Response::Exists,
            };
            reply(noreply, &resp, out)
        }
        Request::Arith {
            key,
            delta,
            incr,
            cas,
            create,
            noreply,
        } => {
            let resp = arith(ctx, key, delta, incr, cas, create, out);
            reply(noreply, &resp, out)
        }
        Request::Touch {
            key,
            exptime,
            noreply,
        } => {
            bump(&w.cmd_touch, 1);
            let touched = ctx.cache.touch(key, ctx.clock.deadline(exptime));
            ops::log_touch(ctx, key, touched);
            let resp = if touched {
                bump(&w.touch_hits, 1);
                Response::Touched
            } else {
                bump(&w.touch_misses, 1);
                Response::NotFound
            };
            reply(noreply, &resp, out)
        }
        Request::FlushAll {
            delay,
            noreply,
            bad_delay,
        } => {
            // memcached counts the command and checks -F before it reads
            // the delay.
            bump(&w.cmd_flush, 1);
            if ctx.config.disable_flush {
                return reply(noreply, &Response::Failure(Failure::FlushDisabled), out);
            }
            if bad_delay {
                return reply(noreply, &Response::Fault(Fault::BadExptime), out);
            }
            if delay > 0 {
                let at = ctx.clock.deadline(delay);
                // memcached reads a unix time from before it started as
                // "no flush time": the command changes nothing
                if at != crate::clock::EXPIRED {
                    ctx.cache.flush_all(Some(at));
                }
            } else {
                ctx.cache.flush_all(None);
            }
            reply(noreply, &Response::Ok, out)
        }
        Request::Version => reply(false, &Response::Version(VERSION), out),
        Request::RefreshCerts { noreply } => refresh_certs(ctx, noreply, out),
        Request::Verbosity { level, noreply } => {
            ctx.server.set_verbosity(level);
            reply(noreply, &Response::Ok, out)
        }
        Request::Quit => Flow::Close,
        Request::Shutdown { bad_mode, .. } => {
            if !ctx.config.enable_shutdown {
                return reply(false, &Response::Failure(Failure::ShutdownDisabled), out);
            }
            if bad_mode {
                return reply(false, &Response::Failure(Failure::BadShutdownMode), out);
            }
            ctx.server.shutdown();
            Flow::Close
        }
        Request::CacheMemlimit { megabytes, noreply } => {
            if megabytes < 8 {
                return reply(noreply, &Response::Failure(Failure::MemlimitTooSmall), out);
            }
            if megabytes > 1_000_000_000 {
                return reply(noreply, &Response::Failure(Failure::MemlimitTooLarge), out);
            }
            let bytes = megabytes.saturating_mul(1024 * 1024);
            ctx.cache
                .set_memory_limit(usize::try_from(bytes).unwrap_or(usize::MAX));
            reply(noreply, &Response::Ok, out)
        }
        Request::Stats { args } => {
            stats_command(ctx, args, out);
            Flow::Done
        }
        Request::MetaGet(ref m) => meta::get(ctx, m, out),
        Request::MetaSet(ref m) => meta::set(ctx, m, out),
        Request::MetaTooLarge { key, base64 } => meta::too_large(ctx, key, base64, out),
        Request::MetaDelete(ref m) => meta::delete(ctx, m, out),
        Request::MetaArith(ref m) => meta::arith(ctx, m, out),
        Request::MetaNoop => reply(false, &Response::MetaNoop, out),
        Request::MetaDebug { key, base64 } => meta::debug(ctx, key, base64, out),
        Request::LruCrawler(cmd) => {
            let at = match resume {
                Some(Resume::Dump(at)) => Some(at),
                _ => None,
            };
            ops::lru_crawler(ctx, cmd, at, out, out_limit)
        }
        Request::Watch { mask } => ops::watch_command(ctx, mask, out),
        Request::SlabsReassign { src, dst } => reply(
            false,
            &Response::Failure(ops::slabs_reassign(src, dst)),
            out,
        ),
        Request::SlabsAutomove { level, noreply } => {
            if let Some(level) = level {
                ctx.server.set_slab_automove(u32::from(level));
            }
            reply(noreply, &Response::Ok, out)
        }
        Request::Invalid { fault, noreply } => {
            if fault == Fault::BadDataChunk {
                // memcached has counted the set by the time it sees the data.
                bump(&w.cmd_set, 1);
            }
            reply(noreply, &Response::Fault(fault), out)
        }
    }
}

/// `delete`: unconditional, or (binary) only if the unique is `cas`.
fn delete(ctx: &Context<'_>, key: &[u8], cas: u64) -> DeleteOutcome {
    if cas == 0 {
        return match ctx.cache.delete(key) {
            true => DeleteOutcome::Done,
            false => DeleteOutcome::NotFound,
        };
    }
    ctx.cache.meta_delete(key, Some(cas), DeleteAction::Remove)
}

/// incr/decr; in the binary protocol also only if the unique is `cas`,
/// and creating a missing item from `create` (its miss not counted, as
/// memcached counts none).
fn arith<R: Reply>(
    ctx: &Context<'_>,
    key: &[u8],
    delta: u64,
    incr: bool,
    cas: u64,
    create: Option<ArithCreate>,
    out: &mut R,
) -> Response<'static> {
    let w = ctx.worker;
    let (hits, misses) = if incr {
        (&w.incr_hits, &w.incr_misses)
    } else {
        (&w.decr_hits, &w.decr_misses)
    };
    ops::log_lookup(ctx, key);
    let opts = ArithOpts {
        compare: (cas != 0).then_some(cas),
        ..ArithOpts::default()
    };
    match ctx.cache.meta_incr_decr(key, delta, incr, &opts) {
        MetaArithOutcome::Done { value, cas, .. } => {
            bump(hits, 1);
            out.item_cas(shown_cas(ctx, cas));
            Response::Number(value)
        }
        MetaArithOutcome::NotFound => match create {
            Some(c) => create_number(ctx, key, c, out),
            None => {
                bump(misses, 1);
                Response::NotFound
            }
        },
        MetaArithOutcome::Exists => Response::Exists,
        MetaArithOutcome::NonNumeric => Response::Failure(Failure::NonNumeric),
        MetaArithOutcome::NoMemory => Response::Failure(Failure::NoMemory),
    }
}

/// A binary incr/decr's missing item, created holding its initial value
/// (added: another client's item created meanwhile is not replaced).
fn create_number<R: Reply>(
    ctx: &Context<'_>,
    key: &[u8],
    c: ArithCreate,
    out: &mut R,
) -> Response<'static> {
    let mut digits = crate::cnum::Backwards::<20>::new();
    let text = digits.push_u64(c.initial).as_bytes();
    let deadline = ctx.clock.deadline(c.exptime);
    let opts = WriteOpts::default();
    let (outcome, unique) = ctx
        .cache
        .store_with(StoreOp::Add, key, 0, deadline, text, &opts);
    match outcome {
        StoreOutcome::Stored => {
            out.item_cas(shown_cas(ctx, unique));
            Response::Number(c.initial)
        }
        StoreOutcome::NoMemory | StoreOutcome::TooLarge => Response::Failure(Failure::NoMemory),
        _ => Response::NotStored,
    }
}

/// An item's unique as replies show it: 0 under `-C`.
fn shown_cas(ctx: &Context<'_>, cas: u64) -> u64 {
    if ctx.config.use_cas {
        cas
    } else {
        0
    }
}

const TOO_LARGE: Response<'static> = Response::Failure(Failure::TooLarge);
const NO_MEMORY: Response<'static> = Response::Failure(Failure::NoMemoryStoring);

/// Counts a write's outcome: `cas_*` for a cas write, `store_*` for one
/// refused for size or memory.
fn count_write(w: &WorkerStats, cas: bool, outcome: StoreOutcome) {
    match outcome {
        StoreOutcome::Stored if cas => bump(&w.cas_hits, 1),
        StoreOutcome::Exists if cas => bump(&w.cas_badval, 1),
        StoreOutcome::NotFound if cas => bump(&w.cas_misses, 1),
        StoreOutcome::TooLarge => bump(&w.store_too_large, 1),
        StoreOutcome::NoMemory => bump(&w.store_no_memory, 1),
        _ => {}
    }
}

#[inline]
/// `refresh_certs`: memcached's failure replies are sent even with
/// `noreply` (they bypass its noreply check); only the `OK` is silenced.
fn refresh_certs<R: Reply>(ctx: &Context<'_>, noreply: bool, out: &mut R) -> Flow {
    match ctx.server.tls().map(|tls| tls.refresh()) {
        None => out.respond(&Response::Failure(Failure::TlsNotEnabled)),
        Some(Ok(())) => return reply(noreply, &Response::Ok, out),
        Some(Err(e)) => out.respond(&Response::CertRefreshFailed(&e.to_string())),
    }
    Flow::Done
}

fn reply<R: Reply>(noreply: bool, resp: &Response<'_>, out: &mut R) -> Flow {
    if !noreply {
        out.respond(resp);
    }
    Flow::Done
}

/// get/gets/gat/gats: one VALUE per hit, then END. Pauses between keys once
/// `out` holds `out_limit` bytes, so a multi-get of many large values never
/// buffers more than about one value past the limit.
fn retrieve<R: Reply>(
    ctx: &Context<'_>,
    keys: Keys<'_>,
    touch: Option<crate::clock::Secs>,
    with_cas: bool,
    resume: usize,
    out: &mut R,
    out_limit: usize,
) -> Flow {
    let w = ctx.worker;
    let show_cas = with_cas;
    let use_cas = ctx.config.use_cas;
    for (n, (at, key)) in keys.iter_from(resume).enumerate() {
        // at least one key per call, so a call always makes progress (and a
        // pause is never at offset 0, which means "from the start")
        if n > 0 && out.len() >= out_limit {
            return Flow::Paused(Resume::Key(at));
        }
        let write = |item: ItemRef<'_>| {
            let cas = if show_cas {
                Some(if use_cas { item.cas } else { 0 })
            } else {
                None
            };
            out.respond(&Response::Value {
                key: item.key,
                flags: item.flags,
                data: item.data,
                cas,
            });
            item.data.len()
        };
        let (lookup, len) = match touch {
            None => ctx.cache.get(key, write),
            Some(deadline) => ctx.cache.get_and_touch(key, deadline, write),
        };
        ops::log_fetch(ctx, key, lookup, len.unwrap_or(0));
        // memcached counts gat/gats as touches, not gets.
        if touch.is_some() {
            bump(&w.cmd_touch, 1);
            match lookup {
                Lookup::Hit => bump(&w.touch_hits, 1),
                _ => bump(&w.touch_misses, 1),
            }
            continue;
        }
        count_get(w, lookup);
    }
    out.respond(&Response::End);
    Flow::Done
}

/// Counts one key read: `cmd_get` and its hit, miss, expired or flushed.
fn count_get(w: &WorkerStats, lookup: Lookup) {
    bump(&w.cmd_get, 1);
    match lookup {
        Lookup::Hit => bump(&w.get_hits, 1),
        miss => {
            bump(&w.get_misses, 1);
            match miss {
                Lookup::Expired => bump(&w.get_expired, 1),
                Lookup::Flushed => bump(&w.get_flushed, 1),
                _ => {}
            }
        }
    }
}

fn stat<R: Reply>(out: &mut R, name: &str, value: impl Display) {
    out.stat(&name, &value);
}

fn stats_command<R: Reply>(ctx: &Context<'_>, args: &[u8], out: &mut R) {
    let mut words = args.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let first = words.next();
    match first {
        None => general_stats(ctx, out),
        Some(b"settings") => settings_stats(ctx, out),
        Some(b"items") => items_stats(ctx, out),
        Some(b"slabs") => slabs_stats(ctx, out),
        Some(b"sizes") => {
            // memcached 1.6 tracks sizes only with -o track_sizes; ferrocache
            // answers as memcached does by default.
            stat(out, "sizes_status", "disabled");
        }
        Some(b"conns") => {
            for c in ctx.server.conns() {
                out.stat(&format_args!("{}:addr", c.fd), &c.peer);
                out.stat(&format_args!("{}:listen_addr", c.fd), &c.listen);
                out.stat(&format_args!("{}:state", c.fd), &"conn_parse_cmd");
            }
        }
        Some(b"reset") => {
            ctx.stats.reset(&ctx.cache.stats());
            out.respond(&Response::Reset);
            return;
        }
        Some(b"detail") => {
            let resp = match words.next() {
                Some(b"on") | Some(b"off") => Response::Ok,
                Some(b"dump") => Response::End,
                _ => Response::Failure(Failure::StatsDetailUsage),
            };
            out.respond(&resp);
            return;
        }
        Some(b"cachedump") => return ops::cachedump(ctx, words, out),
        Some(_) => {
            out.respond(&Response::Fault(Fault::UnknownCommand));
            return;
        }
    }
    out.respond(&Response::End);
}

fn general_stats<R: Reply>(ctx: &Context<'_>, out: &mut R) {
    let t = ctx.stats.totals();
    let c = ctx.stats.cache_since_reset(&ctx.cache.stats());
    let ((us, uu), (ss, su)) = crate::stats::rusage();
    let now = ctx.clock.now();
    stat(out, "pid", std::process::id());
    stat(out, "uptime", now.saturating_sub(2));
    stat(out, "time", ctx.clock.unix_now());
    stat(out, "version", VERSION);
    stat(out, "pointer_size", usize::BITS);
    stat(out, "rusage_user", crate::stats::format_timeval(us, uu));
    stat(out, "rusage_system", crate::stats::format_timeval(ss, su));
    stat(out, "max_connections", ctx.config.max_connections);
    stat(out, "curr_connections", ctx.server.curr_connections());
    stat(out, "total_connections", t.total_connections);
    stat(out, "rejected_connections", t.rejected_connections);
    stat(out, "connection_structures", ctx.server.curr_connections());
    stat(out, "cmd_get", t.cmd_get);
    stat(out, "cmd_set", t.cmd_set);
    stat(out, "cmd_flush", t.cmd_flush);
    stat(out, "cmd_touch", t.cmd_touch);
    stat(out, "cmd_meta", 0);
    stat(out, "get_hits", t.get_hits);
    stat(out, "get_misses", t.get_misses);
    stat(out, "get_expired", t.get_expired);
    stat(out, "get_flushed", t.get_flushed);
    stat(out, "delete_misses", t.delete_misses);
    stat(out, "delete_hits", t.delete_hits);
    stat(out, "incr_misses", t.incr_misses);
    stat(out, "incr_hits", t.incr_hits);
    stat(out, "decr_misses", t.decr_misses);
    stat(out, "decr_hits", t.decr_hits);
    stat(out, "cas_misses", t.cas_misses);
    stat(out, "cas_hits", t.cas_hits);
    stat(out, "cas_badval", t.cas_badval);
    stat(out, "touch_hits", t.touch_hits);
    stat(out, "touch_misses", t.touch_misses);
    stat(out, "store_too_large", t.store_too_large);
    stat(out, "store_no_memory", t.store_no_memory);
    stat(out, "auth_cmds", t.auth_cmds);
    stat(out, "auth_errors", t.auth_errors);
    stat(out, "bytes_read", t.bytes_read);
    stat(out, "bytes_written", t.bytes_written);
    stat(out, "limit_maxbytes", c.limit_maxbytes);
    stat(out, "accepting_conns", 1);
    stat(out, "listen_disabled_num", 0);
    stat(out, "time_in_listen_disabled_us", 0);
    stat(out, "threads", ctx.config.threads);
    stat(out, "conn_yields", t.conn_yields);
    stat(out, "malloc_fails", 0);
    stat(out, "worker_panics", t.worker_panics);
    stat(out, "bytes", c.bytes);
    stat(out, "curr_items", c.curr_items);
    stat(out, "total_items", c.total_items);
    stat(out, "expired_unfetched", c.expired_unfetched);
    stat(out, "evicted_unfetched", c.evicted_unfetched);
    stat(out, "evicted_active", c.evicted_active);
    stat(out, "evictions", c.evictions);
    stat(out, "reclaimed", c.reclaimed);
    stat(out, "crawler_reclaimed", c.crawler_reclaimed);
    tls_stats(ctx, out);
}

/// The TLS lines of `stats`, printed only under `-Z` (`ssl_new_sessions`
/// only with `ssl_session_cache`), as memcached prints them.
fn tls_stats<R: Reply>(ctx: &Context<'_>, out: &mut R) {
    let Some(tls) = ctx.server.tls() else {
        return;
    };
    let n = tls.counters();
    if let Some(sessions) = n.new_sessions {
        stat(out, "ssl_new_sessions", sessions);
    }
    stat(out, "ssl_handshake_errors", n.handshake_errors);
    stat(
        out,
        "time_since_server_cert_refresh",
        n.secs_since_cert_refresh,
    );
}

/// The `ssl_*` lines of `stats settings`: memcached built with TLS prints
/// them with or without `-Z`.
fn tls_settings<R: Reply>(cfg: &Config, out: &mut R) {
    let t = &cfg.tls;
    let path = |p: &Option<std::path::PathBuf>, none: &str| {
        p.as_ref()
            .map_or_else(|| none.to_string(), |p| p.display().to_string())
    };
    stat(out, "ssl_enabled", yes_no(t.enabled));
    stat(out, "ssl_chain_cert", path(&t.chain_cert, "(null)"));
    stat(out, "ssl_key", path(&t.key, "(null)"));
    stat(out, "ssl_verify_mode", t.verify_mode.openssl_flags());
    stat(out, "ssl_keyformat", t.key_format);
    stat(out, "ssl_ciphers", t.ciphers.as_deref().unwrap_or("NULL"));
    stat(out, "ssl_ca_cert", path(&t.ca_cert, "NULL"));
    stat(out, "ssl_wbuf_size", u64::from(t.wbuf_kib) * 1024);
    stat(out, "ssl_session_cache", yes_no(t.session_cache));
    stat(out, "ssl_kernel_tls", yes_no(t.kernel_tls));
    stat(out, "ssl_min_version", t.min_version.name());
}

fn settings_stats<R: Reply>(ctx: &Context<'_>, out: &mut R) {
    let cfg = ctx.config;
    let limit = ctx.cache.stats().limit_maxbytes;
    stat(out, "maxbytes", limit);
    stat(out, "maxconns", cfg.max_connections);
    stat(
        out,
        "tcpport",
        if cfg.unix_socket.is_some() {
            0
        } else {
            cfg.port
        },
    );
    stat(
        out,
        "udpport",
        if cfg.unix_socket.is_some() {
            0
        } else {
            cfg.udp_port
        },
    );
    let inter = if cfg.listen.is_empty() {
        "NULL".to_string()
    } else {
        cfg.listen.join(",")
    };
    stat(out, "inter", inter);
    stat(out, "verbosity", ctx.server.verbosity());
    stat(out, "oldest", 0);
    stat(out, "evictions", if cfg.no_evict { "off" } else { "on" });
    let domain = cfg
        .unix_socket
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "NULL".to_string());
    stat(out, "domain_socket", domain);
    stat(out, "umask", format!("{:o}", cfg.unix_mask));
    stat(out, "shutdown_command", yes_no(cfg.enable_shutdown));
    stat(out, "growth_factor", format!("{:.2}", cfg.growth_factor));
    stat(out, "chunk_size", cfg.chunk_size);
    stat(out, "num_threads", cfg.threads);
    stat(out, "num_threads_per_udp", cfg.threads);
    stat(out, "stat_key_prefix", cfg.stat_key_prefix);
    stat(out, "detail_enabled", "no");
    stat(out, "reqs_per_event", cfg.reqs_per_event);
    stat(out, "cas_enabled", yes_no(cfg.use_cas));
    stat(out, "tcp_backlog", cfg.backlog);
    let proto = match cfg.binding_protocol.as_str() {
        "ascii" => "ascii",
        "binary" => "binary",
        _ => "auto-negotiate",
    };
    stat(out, "binding_protocol", proto);
    stat(out, "auth_enabled_sasl", yes_no(cfg.sasl));
    // memcached prints the -Y file's path here, or "no"
    match &cfg.auth_file {
        Some(path) => stat(out, "auth_enabled_ascii", path.display()),
        None => stat(out, "auth_enabled_ascii", "no"),
    }
    stat(out, "item_size_max", cfg.item_size_max);
    stat(out, "maxconns_fast", "yes");
    stat(out, "hashpower_init", 0);
    stat(out, "slab_reassign", "yes");
    stat(out, "slab_automove", ctx.server.slab_automove());
    stat(out, "lru_crawler", yes_no(ctx.cache.crawler_enabled()));
    stat(out, "lru_crawler_sleep", ctx.cache.crawler_sleep());
    stat(out, "lru_crawler_tocrawl", ctx.cache.crawler_tocrawl());
    stat(out, "lru_maintainer_thread", "no");
    stat(out, "flush_enabled", yes_no(!cfg.disable_flush));
    stat(out, "dump_enabled", "yes");
    stat(out, "hash_algorithm", "siphash");
    stat(out, "idle_timeout", cfg.idle_timeout);
    stat(out, "track_sizes", "no");
    tls_settings(cfg, out);
}

fn items_stats<R: Reply>(ctx: &Context<'_>, out: &mut R) {
    for c in ctx.cache.class_stats() {
        if c.number == 0 {
            continue;
        }
        let id = c.id;
        let mut s = |name: &str, v: u64| out.stat(&format_args!("items:{}:{}", id, name), &v);
        s("number", c.number);
        s("number_hot", 0);
        s("number_warm", 0);
        s("number_cold", c.number);
        s("age_hot", 0);
        s("age_warm", 0);
        s("age", c.age);
        s("mem_requested", c.mem_requested);
        s("evicted", c.evicted);
        s("evicted_nonzero", c.evicted_nonzero);
        s("evicted_time", 0);
        s("outofmemory", c.outofmemory);
        s("tailrepairs", 0);
        s("reclaimed", c.reclaimed);
        s("expired_unfetched", c.expired_unfetched);
        s("evicted_unfetched", c.evicted_unfetched);
        s("evicted_active", c.evicted_active);
        s("crawler_reclaimed", c.crawler_reclaimed);
    }
}

/// ferrocache has no slab pages: each class reports its items as used chunks
/// in notional 1 MiB pages, so memcached-tool's arithmetic stays meaningful.
fn slabs_stats<R: Reply>(ctx: &Context<'_>, out: &mut R) {
    const PAGE: u64 = 1024 * 1024;
    let mut active = 0u64;
    for c in ctx.cache.class_stats() {
        if c.number == 0 {
            continue;
        }
        active += 1;
        let per_page = (PAGE / c.chunk_size.max(1)).max(1);
        let pages = c.number.div_ceil(per_page);
        let id = c.id;
        let mut s = |name: &str, v: u64| out.stat(&format_args!("{}:{}", id, name), &v);
        s("chunk_size", c.chunk_size);
        s("chunks_per_page", per_page);
        s("total_pages", pages);
        s("total_chunks", pages * per_page);
        s("used_chunks", c.number);
        s("free_chunks", pages * per_page - c.number);
        s("free_chunks_end", 0);
        s("mem_requested", c.mem_requested);
    }
    stat(out, "active_slabs", active);
    stat(out, "total_malloced", ctx.cache.stats().bytes);
}
