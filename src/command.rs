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
pub mod stats;

use crate::clock::Clock;
use crate::config::Config;
use crate::protocol::{
    ArithCreate, Failure, Fault, Keys, Limits, Reply, Request, Response, StoreMode,
};
use crate::stats::{bump, ClassCmds, Stats, WorkerStats};
use crate::storage::crawl::DumpCursor;
use crate::storage::{
    ArithOpts, Cache, DeleteAction, DeleteOutcome, ItemRef, Lookup, MetaArithOutcome, Pinned,
    Share, StoreOp, StoreOutcome, Unpinned, WriteOpts,
};
use crate::watch::WatchHub;

/// What `version` and `stats`' `version` report: the memcached release whose
/// protocol and stats ferrocache follows, alone, because clients parse the
/// line as a version number (Node's `memcached` reads it from the end, so
/// any suffix would be taken for the server's version and break feature
/// checks keyed on memcached's).
pub const VERSION: &str = "1.6.18";

/// Who is really answering: `stats`' `ferrocache_version` line (and `-V`).
pub const FERROCACHE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The parts of the running server that commands read or act on.
pub trait ServerControl {
    fn curr_connections(&self) -> u64;
    /// The open connections, by descriptor, for `stats conns`.
    fn conns(&self) -> Vec<ConnInfo>;
    /// Starts an orderly shutdown (the `shutdown` command with `-A`);
    /// `graceful` (`shutdown graceful`, as SIGUSR1) always saves a memory
    /// file (`-e`) for a warm restart, a plain one as SIGTERM does.
    fn shutdown(&self, graceful: bool);
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
    /// Descriptors the server holds for itself (`stats`' `reserved_fds`).
    fn reserved_fds(&self) -> u64;
}

/// One socket as `stats conns` shows it: a listener or a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    pub fd: i32,
    /// `tcp:1.2.3.4:5678`, `tcp6:[::1]:5678`, `udp:…` or a unix socket's
    /// path: the peer's, or a listener's own.
    pub peer: String,
    /// The listener a connection came in on, in the same form (`None` for
    /// a listener).
    pub listen: Option<String>,
    /// memcached's state name: `conn_listening`, `conn_read` (UDP),
    /// `conn_parse_cmd`.
    pub state: &'static str,
    /// Seconds since its last request (a listener: since start-up).
    pub idle_secs: u64,
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
///
/// One request in `stats::SAMPLE_EVERY` is timed for the service-time
/// histograms of the metrics endpoint.
pub fn execute<R: Reply>(
    ctx: &Context<'_>,
    req: &Request<'_>,
    resume: Option<Resume>,
    out: &mut R,
    out_limit: usize,
) -> Flow {
    let service = &ctx.worker.service;
    // (one call of `run`, so that it is inlined here as before)
    let timed = service.sample().then(std::time::Instant::now);
    let flow = run(ctx, req, resume, out, out_limit);
    if let Some(start) = timed {
        sampled(ctx, req, start);
    }
    flow
}

/// A sampled request is done: its service time and, for a read, its keys
/// (the metrics' most read keys). Out of line: the other 63 requests in 64
/// do not carry it.
#[cold]
#[inline(never)]
fn sampled(ctx: &Context<'_>, req: &Request<'_>, start: std::time::Instant) {
    let ns = u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX);
    ctx.worker.service.record(family(req), ns);
    use crate::stats::keys::KEYS_PER_REQUEST;
    let now = ctx.clock.now();
    let sampler = &ctx.worker.keys;
    match req {
        Request::Get { keys, .. } | Request::Gat { keys, .. } => {
            for key in keys.iter().take(KEYS_PER_REQUEST) {
                sampler.record(now, key);
            }
        }
        Request::MetaGet(m) => sampler.record(now, m.key),
        _ => {}
    }
}

/// The family a request's service time counts in (an index into
/// `stats::FAMILIES`).
fn family(req: &Request<'_>) -> usize {
    match req {
        Request::Get { .. } => 0,
        Request::Store { .. } | Request::TooLarge { .. } => 1,
        Request::Delete { .. } => 2,
        Request::Arith { .. } => 3,
        Request::Touch { .. } | Request::Gat { .. } | Request::GatBadKey { .. } => 4,
        Request::MetaGet(_)
        | Request::MetaSet(_)
        | Request::MetaTooLarge { .. }
        | Request::MetaDelete(_)
        | Request::MetaArith(_)
        | Request::MetaNoop
        | Request::MetaDebug { .. } => 5,
        _ => 6,
    }
}

/// [`execute`]'s body.
fn run<R: Reply>(
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
            let class = class_cmds(w, key.len() + data.len());
            bump(&class.cmd_set, 1);
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
            if mode == StoreMode::Cas {
                match outcome {
                    StoreOutcome::Stored => bump(&class.cas_hits, 1),
                    StoreOutcome::Exists => bump(&class.cas_badval, 1),
                    _ => {}
                }
            }
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
            let deadline = ctx.clock.deadline(exptime);
            let (_, size) = ctx
                .cache
                .get_and_touch(key, deadline, |it| it.key.len() + it.data.len());
            let touched = size.is_some();
            ops::log_touch(ctx, key, touched);
            let resp = if let Some(size) = size {
                bump(&w.touch_hits, 1);
                bump(&class_cmds(w, size).touch_hits, 1);
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
        Request::Shutdown { bad_mode, graceful } => {
            if !ctx.config.enable_shutdown {
                return reply(false, &Response::Failure(Failure::ShutdownDisabled), out);
            }
            if bad_mode {
                return reply(false, &Response::Failure(Failure::BadShutdownMode), out);
            }
            ctx.server.shutdown(graceful);
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
            stats::command(ctx, args, out);
            Flow::Done
        }
        Request::MetaGet(ref m) => meta::get(ctx, m, out),
        Request::MetaSet(ref m) => meta::set(ctx, m, out),
        Request::MetaTooLarge { key, base64 } => meta::too_large(ctx, key, base64, out),
        Request::MetaDelete(ref m) => meta::delete(ctx, m, out),
        Request::MetaArith(ref m) => meta::arith(ctx, m, out),
        Request::MetaNoop => reply(false, &Response::MetaNoop, out),
        Request::MetaDebug { key, base64 } => {
            // memcached 1.6.18 counts `me` alone in cmd_meta
            bump(&w.cmd_meta, 1);
            meta::debug(ctx, key, base64, out)
        }
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
            let digits = value.checked_ilog10().unwrap_or(0) as usize + 1;
            let class = class_cmds(w, key.len() + digits);
            bump(
                if incr {
                    &class.incr_hits
                } else {
                    &class.decr_hits
                },
                1,
            );
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
    let start = out.len();
    // -o read_buf_mem_limit: what the worker's other connections leave
    // this reply (0: no limit), read once per call
    let room = w.bufs.reply_room.load(std::sync::atomic::Ordering::Relaxed);
    let refused = |out: &mut R| {
        // memcached's answer when it has no response object for a key:
        // the reply so far is dropped (here: with the value that did not
        // fit), the connection stays open
        bump(&w.response_obj_oom, 1);
        out.truncate(start);
        out.respond(&Response::Failure(Failure::ReplyNoMemory));
        Flow::Done
    };
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
            let value = Response::Value {
                key: item.key,
                flags: item.flags,
                data: item.data,
                cas,
            };
            match hold_value(item.share, out) {
                Ok(None) => out.respond(&value),
                Ok(Some(pinned)) => out.respond_shared(&value, Box::new(pinned)),
                Err(_) => return None,
            }
            Some(item.data.len())
        };
        let (lookup, len) = match touch {
            None => ctx.cache.get(key, write),
            Some(deadline) => ctx.cache.get_and_touch(key, deadline, write),
        };
        let len = match len {
            Some(None) => return refused(out),
            Some(Some(n)) => Some(n),
            None => None,
        };
        if room != 0 && out.len() as u64 > room {
            return refused(out);
        }
        ops::log_fetch(ctx, key, lookup, len.unwrap_or(0));
        let class = len.map(|len| class_cmds(w, key.len() + len));
        // memcached counts gat/gats as touches, not gets.
        if touch.is_some() {
            bump(&w.cmd_touch, 1);
            match lookup {
                Lookup::Hit => bump(&w.touch_hits, 1),
                _ => bump(&w.touch_misses, 1),
            }
            if let Some(class) = class {
                bump(&class.touch_hits, 1);
            }
            continue;
        }
        count_get(w, lookup);
        if let Some(class) = class {
            bump(&class.get_hits, 1);
        }
    }
    out.respond(&Response::End);
    Flow::Done
}

/// Holds a hit's value for a sink that sends it from the cache itself (see
/// [`crate::protocol::splice`]) rather than a copy: `None` when the sink
/// copies it (it cannot take shared values, or the value is small). Err
/// when the value would pin more than `-o pinned_mem_limit`: the caller
/// answers memcached's "out of memory writing get response", before it
/// changes anything.
fn hold_value<R: Reply>(share: Share<'_>, out: &R) -> Result<Option<Pinned>, Unpinned> {
    if !out.takes_shared() {
        return Ok(None);
    }
    match share.pin() {
        Ok(pinned) => Ok(Some(pinned)),
        Err(Unpinned::Small | Unpinned::Off) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The per-class counters (`stats slabs`) of an item of `len` bytes of
/// key and value.
#[inline]
fn class_cmds(w: &WorkerStats, len: usize) -> &ClassCmds {
    &w.classes[crate::storage::class_index(len) & 63]
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
