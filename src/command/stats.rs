//! The `stats` command: gathers what each report shows from the counters,
//! the cache, the watch log and the server, into `protocol::stats`'
//! report values.
//!
//! Owns where each figure comes from and what it means here. Must not
//! format a line (that is `protocol::stats`), nor touch a socket.

use std::fmt::Display;

use super::{ops, Context, FERROCACHE_VERSION, VERSION};
use crate::config::MetricsKeys;
use crate::protocol::metrics::{EvictionPolicy, Snapshot};
use crate::protocol::stats::{
    self as lines, Class, ConnLine, Emit, General, Settings, TlsCounts, TlsSettings,
};
use crate::protocol::{Failure, Fault, Reply, Response};
use crate::stats::Totals;

/// `stats [args]`.
pub(super) fn command<R: Reply>(ctx: &Context<'_>, args: &[u8], out: &mut R) {
    let mut words = args.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let mut emit = |n: &dyn Display, v: &dyn Display| out.stat(&n, &v);
    match words.next() {
        None => general(ctx, &mut emit),
        Some(b"settings") => settings(ctx, &mut emit),
        Some(b"items") => lines::items(&classes(ctx), &mut emit),
        Some(b"slabs") => slabs(ctx, &mut emit),
        // memcached 1.6 tracks sizes only with -o track_sizes; ferrocache
        // answers as memcached does by default
        Some(b"sizes") => emit(&"sizes_status", &"disabled"),
        Some(b"conns") => conns(ctx, &mut emit),
        // no flash tier: memcached without ext_path answers the same
        Some(b"extstore") => {}
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

/// Every `stats` line, in memcached's order.
pub fn general(ctx: &Context<'_>, out: &mut Emit<'_>) {
    let t: Totals = ctx.stats.totals();
    let c = ctx.stats.cache_since_reset(&ctx.cache.stats());
    let (user, system) = crate::stats::rusage();
    let bufs = ctx.stats.buffers();
    let watch = ctx.watch.stats();
    let conns = ctx.server.curr_connections();
    let g = General {
        pid: std::process::id(),
        uptime: u64::from(ctx.clock.now().saturating_sub(2)),
        time: ctx.clock.unix_now(),
        version: VERSION,
        ferrocache_version: FERROCACHE_VERSION,
        rusage_user: user,
        rusage_system: system,
        max_connections: ctx.config.max_connections as u64,
        curr_connections: conns,
        connection_structures: conns,
        response_obj_count: bufs.write_count,
        response_obj_bytes: bufs.write_bytes,
        read_buf_count: bufs.read_count,
        read_buf_bytes: bufs.read_bytes,
        reserved_fds: ctx.server.reserved_fds(),
        cmd_meta: t.cmd_meta,
        idle_timeout_set: ctx.config.idle_timeout > 0,
        limit_maxbytes: c.limit_maxbytes,
        threads: ctx.config.threads as u64,
        hash_power_level: c.hash_slots.max(1).ilog2(),
        hash_bytes: c.hash_bytes,
        lru_crawler_enabled: ctx.cache.crawler_enabled(),
        lru_crawler_running: c.crawler_running,
        lru_crawler_starts: c.crawler_starts,
        log_worker_written: watch.written,
        log_watcher_skipped: watch.skipped,
        log_watcher_sent: watch.sent,
        log_watchers: watch.watchers,
        bytes: c.bytes,
        curr_items: c.curr_items,
        total_items: c.total_items,
        expired_unfetched: c.expired_unfetched,
        evicted_unfetched: c.evicted_unfetched,
        evicted_active: c.evicted_active,
        evictions: c.evictions,
        reclaimed: c.reclaimed,
        crawler_reclaimed: c.crawler_reclaimed,
        crawler_items_checked: c.crawler_items_checked,
        pinned_bytes: c.pinned_bytes,
        pinned_refused: c.pinned_refused,
        tls: ctx.server.tls().map(|tls| {
            let n = tls.counters();
            TlsCounts {
                new_sessions: n.new_sessions,
                handshake_errors: n.handshake_errors,
                secs_since_cert_refresh: n.secs_since_cert_refresh,
            }
        }),
    };
    lines::general(&g, &t, out);
}

/// Every `stats settings` line.
pub fn settings(ctx: &Context<'_>, out: &mut Emit<'_>) {
    let cfg = ctx.config;
    let unix = cfg.unix_socket.is_some();
    let inter = if cfg.listen.is_empty() {
        "NULL".to_string()
    } else {
        cfg.listen.join(",")
    };
    let domain = cfg
        .unix_socket
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "NULL".to_string());
    let auth = cfg
        .auth_file
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "no".to_string());
    let memory_file = cfg.memory_file.as_ref().map(|p| p.display().to_string());
    let t = &cfg.tls;
    let path = |p: &Option<std::path::PathBuf>, none: &str| {
        p.as_ref()
            .map_or_else(|| none.to_string(), |p| p.display().to_string())
    };
    let (chain, key, ca) = (
        path(&t.chain_cert, "(null)"),
        path(&t.key, "(null)"),
        path(&t.ca_cert, "NULL"),
    );
    let s = Settings {
        maxbytes: ctx.cache.stats().limit_maxbytes,
        maxconns: cfg.max_connections as u64,
        tcpport: if unix { 0 } else { cfg.port },
        udpport: if unix { 0 } else { cfg.udp_port },
        inter: &inter,
        verbosity: ctx.server.verbosity(),
        evictions: !cfg.no_evict,
        domain_socket: &domain,
        umask: cfg.unix_mask,
        shutdown_command: cfg.enable_shutdown,
        growth_factor: cfg.growth_factor,
        chunk_size: cfg.chunk_size as u64,
        num_threads: cfg.threads as u64,
        stat_key_prefix: cfg.stat_key_prefix,
        detail_enabled: false,
        reqs_per_event: cfg.reqs_per_event as u64,
        cas_enabled: cfg.use_cas,
        tcp_backlog: cfg.backlog,
        binding_protocol: match cfg.binding_protocol.as_str() {
            "ascii" => "ascii",
            "binary" => "binary",
            _ => "auto-negotiate",
        },
        auth_enabled_sasl: cfg.sasl,
        auth_enabled_ascii: &auth,
        item_size_max: cfg.item_size_max as u64,
        slab_automove: ctx.server.slab_automove(),
        lru_crawler: ctx.cache.crawler_enabled(),
        lru_crawler_sleep: ctx.cache.crawler_sleep(),
        lru_crawler_tocrawl: ctx.cache.crawler_tocrawl(),
        flush_enabled: !cfg.disable_flush,
        dump_enabled: true,
        // the index's hash: std's SipHash-1-3 with a random key per start
        hash_algorithm: "siphash",
        idle_timeout: cfg.idle_timeout,
        watcher_logbuf_size: crate::watch::WATCH_BUF as u64,
        read_buf_mem_limit: cfg.read_buf_mem_limit,
        num_napi_ids: (cfg.napi_ids > 0).then_some(cfg.napi_ids),
        memory_file: memory_file.as_deref(),
        tls: TlsSettings {
            enabled: t.enabled,
            chain_cert: &chain,
            key: &key,
            verify_mode: t.verify_mode.openssl_flags(),
            keyformat: t.key_format,
            ciphers: t.ciphers.as_deref().unwrap_or("NULL"),
            ca_cert: &ca,
            wbuf_size: u64::from(t.wbuf_kib) * 1024,
            session_cache: t.session_cache,
            kernel_tls: t.kernel_tls,
            min_version: t.min_version.name(),
        },
    };
    lines::settings(&s, out);
}

/// Listening sockets first (TCP and unix, then UDP), then client
/// connections by descriptor, as memcached lists them.
fn conns(ctx: &Context<'_>, out: &mut Emit<'_>) {
    let list = ctx.server.conns();
    let shown: Vec<ConnLine<'_>> = list
        .iter()
        .map(|c| ConnLine {
            fd: c.fd,
            addr: &c.peer,
            listen_addr: c.listen.as_deref(),
            state: c.state,
            udp: c.peer.starts_with("udp"),
            secs_since_last_cmd: c.idle_secs,
        })
        .collect();
    lines::conns(&shown, out);
}

/// Each class with items: the cache's figures and the workers' per-class
/// command counters. ferrocache has no slab pages: items are laid out in
/// notional 1 MiB pages so that memcached-tool's arithmetic stays
/// meaningful.
pub fn classes(ctx: &Context<'_>) -> Vec<Class> {
    const PAGE: u64 = 1024 * 1024;
    let cmds = ctx.stats.class_totals();
    ctx.cache
        .class_stats()
        .into_iter()
        .filter(|c| c.number > 0)
        .map(|c| {
            let k = cmds.get(c.id as usize - 1).copied().unwrap_or_default();
            let per_page = (PAGE / c.chunk_size.max(1)).max(1);
            Class {
                id: c.id,
                number: c.number,
                age: c.age,
                mem_requested: c.mem_requested,
                evicted: c.evicted,
                evicted_nonzero: c.evicted_nonzero,
                outofmemory: c.outofmemory,
                reclaimed: c.reclaimed,
                expired_unfetched: c.expired_unfetched,
                evicted_unfetched: c.evicted_unfetched,
                evicted_active: c.evicted_active,
                crawler_reclaimed: c.crawler_reclaimed,
                crawler_items_checked: c.crawler_items_checked,
                chunk_size: c.chunk_size,
                chunks_per_page: per_page,
                total_pages: c.number.div_ceil(per_page),
                get_hits: k.get_hits,
                cmd_set: k.cmd_set,
                delete_hits: c.delete_hits,
                incr_hits: k.incr_hits,
                decr_hits: k.decr_hits,
                cas_hits: k.cas_hits,
                cas_badval: k.cas_badval,
                touch_hits: k.touch_hits,
            }
        })
        .collect()
}

/// Keys the metrics endpoint lists as the most read.
const TOP_KEYS: usize = 10;

/// The reports a Prometheus scrape reads (`protocol::metrics`).
pub fn snapshot(ctx: &Context<'_>) -> Snapshot {
    fn lines(f: impl FnOnce(&mut Emit<'_>)) -> Vec<(String, String)> {
        let mut v = Vec::new();
        f(&mut |n, val| v.push((n.to_string(), val.to_string())));
        v
    }
    let classes = classes(ctx);
    let cache = ctx.cache.stats();
    Snapshot {
        stats: lines(|o| general(ctx, o)),
        settings: lines(|o| settings(ctx, o)),
        items: lines(|o| lines::items(&classes, o)),
        slabs: lines(|o| lines::slabs(&classes, ctx.cache.stats().bytes, o)),
        service: ctx.stats.service_times(),
        lock_contention: ctx.cache.lock_contention(),
        top_keys: match ctx.config.metrics_keys {
            MetricsKeys::Off => Vec::new(),
            _ => ctx.stats.top_keys(ctx.clock.now(), TOP_KEYS),
        },
        keys_shown: ctx.config.metrics_keys == MetricsKeys::Shown,
        eviction: EvictionPolicy {
            second_chance: cache.clock_second_chance,
            released: cache.clock_released,
            compacted: cache.clock_compacted,
            kept: cache.clock_kept,
        },
    }
}

fn slabs(ctx: &Context<'_>, out: &mut Emit<'_>) {
    lines::slabs(&classes(ctx), ctx.cache.stats().bytes, out);
}
