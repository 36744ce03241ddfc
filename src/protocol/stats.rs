//! The `stats` replies' lines: memcached 1.6.18's names, in its order and
//! formats, for `stats`, `stats settings`, `stats conns`, `stats items` and
//! `stats slabs`.
//!
//! Owns which line comes where, its name and how its value is written, and
//! the lines that are constants here because the concept they report does
//! not exist in ferrocache (the slab rebalancer, the segmented LRU, libevent;
//! `docs/operations.md` lists them). Must not gather a value: `command`
//! fills the plain report structs below, and the lines go to an [`Emit`]
//! (a codec's `Reply::stat`, or the metrics exporter's collector).
//!
//! The TLS lines (`ssl_*`) are printed where memcached prints them: in
//! `stats settings` always (memcached built with TLS does), in `stats` only
//! under `-Z`.

use std::fmt::Display;

use crate::stats::Totals;

/// Where the lines go: one call per `STAT <name> <value>`.
pub type Emit<'o> = dyn FnMut(&dyn Display, &dyn Display) + 'o;

/// What `stats` reports beyond the per-worker counters ([`Totals`]).
#[derive(Debug, Clone, Default)]
pub struct General<'a> {
    pub pid: u32,
    pub uptime: u64,
    pub time: u64,
    pub version: &'a str,
    pub ferrocache_version: &'a str,
    /// (seconds, microseconds) of user and system CPU.
    pub rusage_user: (i64, i64),
    pub rusage_system: (i64, i64),
    pub max_connections: u64,
    pub curr_connections: u64,
    pub connection_structures: u64,
    /// Reply buffers held by connections, and their bytes.
    pub response_obj_count: u64,
    pub response_obj_bytes: u64,
    /// Read buffers held by connections, and their bytes.
    pub read_buf_count: u64,
    pub read_buf_bytes: u64,
    pub reserved_fds: u64,
    /// Meta commands executed.
    pub cmd_meta: u64,
    /// `-o idle_timeout` is set (memcached prints `idle_kicks` only then).
    pub idle_timeout_set: bool,
    pub limit_maxbytes: u64,
    pub threads: u64,
    /// log2 of the index slots of all shards, and the index tables' bytes.
    pub hash_power_level: u32,
    pub hash_bytes: u64,
    pub lru_crawler_enabled: bool,
    pub lru_crawler_running: bool,
    pub lru_crawler_starts: u64,
    pub log_worker_written: u64,
    pub log_watcher_skipped: u64,
    pub log_watcher_sent: u64,
    pub log_watchers: u64,
    pub bytes: u64,
    pub curr_items: u64,
    pub total_items: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    pub evicted_active: u64,
    pub evictions: u64,
    pub reclaimed: u64,
    pub crawler_reclaimed: u64,
    pub crawler_items_checked: u64,
    /// Bytes of large items' mappings held by replies sending their values
    /// from the cache, and the values refused for `-o pinned_mem_limit`.
    pub pinned_bytes: u64,
    pub pinned_refused: u64,
    /// Under `-Z` only.
    pub tls: Option<TlsCounts>,
}

/// The TLS lines of `stats`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TlsCounts {
    /// Only with `ssl_session_cache`.
    pub new_sessions: Option<u64>,
    pub handshake_errors: u64,
    pub secs_since_cert_refresh: u64,
}

/// The `ssl_*` lines of `stats settings`, as memcached prints them.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings<'a> {
    pub enabled: bool,
    /// `(null)` when not given.
    pub chain_cert: &'a str,
    pub key: &'a str,
    /// OpenSSL's verify flags for the mode (0, 1, 3, 7).
    pub verify_mode: u32,
    pub keyformat: i32,
    /// `NULL` when not given.
    pub ciphers: &'a str,
    pub ca_cert: &'a str,
    /// Bytes.
    pub wbuf_size: u64,
    pub session_cache: bool,
    pub kernel_tls: bool,
    /// `tlsv1.2`…
    pub min_version: &'a str,
}

fn timeval((secs, micros): (i64, i64)) -> String {
    format!("{}.{:06}", secs, micros)
}

/// `stats`: memcached's 93 lines (94 with `idle_timeout`), then
/// ferrocache's own (`worker_panics`, `pinned_bytes`, `pinned_refused`,
/// `ferrocache_version`).
pub fn general(g: &General<'_>, t: &Totals, out: &mut Emit<'_>) {
    out(&"pid", &g.pid);
    out(&"uptime", &g.uptime);
    out(&"time", &g.time);
    out(&"version", &g.version);
    // no libevent here: the event loop is mio's
    out(&"libevent", &"mio");
    out(&"pointer_size", &usize::BITS);
    out(&"rusage_user", &timeval(g.rusage_user));
    out(&"rusage_system", &timeval(g.rusage_system));
    out(&"max_connections", &g.max_connections);
    out(&"curr_connections", &g.curr_connections);
    out(&"total_connections", &t.total_connections);
    out(&"rejected_connections", &t.rejected_connections);
    out(&"connection_structures", &g.connection_structures);
    out(&"response_obj_oom", &t.response_obj_oom);
    out(&"response_obj_count", &g.response_obj_count);
    out(&"response_obj_bytes", &g.response_obj_bytes);
    out(&"read_buf_count", &g.read_buf_count);
    out(&"read_buf_bytes", &g.read_buf_bytes);
    // buffers are given back to the allocator, not kept in a free list
    out(&"read_buf_bytes_free", &0);
    out(&"read_buf_oom", &t.read_buf_oom);
    out(&"reserved_fds", &g.reserved_fds);
    commands(g, t, out);
    out(&"bytes_read", &t.bytes_read);
    out(&"bytes_written", &t.bytes_written);
    out(&"limit_maxbytes", &g.limit_maxbytes);
    out(&"accepting_conns", &1);
    out(&"listen_disabled_num", &0);
    out(&"time_in_listen_disabled_us", &0);
    out(&"threads", &g.threads);
    out(&"conn_yields", &t.conn_yields);
    out(&"hash_power_level", &g.hash_power_level);
    out(&"hash_bytes", &g.hash_bytes);
    // the index grows inside the write that needs it, never in the background
    out(&"hash_is_expanding", &0);
    internals(g, out);
    out(&"bytes", &g.bytes);
    out(&"curr_items", &g.curr_items);
    out(&"total_items", &g.total_items);
    out(&"slab_global_page_pool", &0);
    out(&"expired_unfetched", &g.expired_unfetched);
    out(&"evicted_unfetched", &g.evicted_unfetched);
    out(&"evicted_active", &g.evicted_active);
    out(&"evictions", &g.evictions);
    out(&"reclaimed", &g.reclaimed);
    out(&"crawler_reclaimed", &g.crawler_reclaimed);
    out(&"crawler_items_checked", &g.crawler_items_checked);
    lru_moves(out);
    // every eviction is made by the worker whose write needs the room
    out(&"direct_reclaims", &g.evictions);
    out(&"lru_bumps_dropped", &0);
    out(&"worker_panics", &t.worker_panics);
    out(&"pinned_bytes", &g.pinned_bytes);
    out(&"pinned_refused", &g.pinned_refused);
    out(&"ferrocache_version", &g.ferrocache_version);
}

/// `cmd_get` to `auth_errors` (and `idle_kicks`).
fn commands(g: &General<'_>, t: &Totals, out: &mut Emit<'_>) {
    let lines: [(&str, u64); 24] = [
        ("cmd_get", t.cmd_get),
        ("cmd_set", t.cmd_set),
        ("cmd_flush", t.cmd_flush),
        ("cmd_touch", t.cmd_touch),
        ("cmd_meta", g.cmd_meta),
        ("get_hits", t.get_hits),
        ("get_misses", t.get_misses),
        ("get_expired", t.get_expired),
        ("get_flushed", t.get_flushed),
        ("delete_misses", t.delete_misses),
        ("delete_hits", t.delete_hits),
        ("incr_misses", t.incr_misses),
        ("incr_hits", t.incr_hits),
        ("decr_misses", t.decr_misses),
        ("decr_hits", t.decr_hits),
        ("cas_misses", t.cas_misses),
        ("cas_hits", t.cas_hits),
        ("cas_badval", t.cas_badval),
        ("touch_hits", t.touch_hits),
        ("touch_misses", t.touch_misses),
        ("store_too_large", t.store_too_large),
        ("store_no_memory", t.store_no_memory),
        ("auth_cmds", t.auth_cmds),
        ("auth_errors", t.auth_errors),
    ];
    for (name, v) in &lines {
        out(name, v);
    }
    if g.idle_timeout_set {
        out(&"idle_kicks", &t.idle_kicks);
    }
}

/// From `slab_reassign_rescues` to `round_robin_fallback`.
fn internals(g: &General<'_>, out: &mut Emit<'_>) {
    // no slab pages, so nothing to rebalance
    for name in [
        "slab_reassign_rescues",
        "slab_reassign_chunk_rescues",
        "slab_reassign_evictions_nomem",
        "slab_reassign_inline_reclaim",
        "slab_reassign_busy_items",
        "slab_reassign_busy_deletes",
        "slab_reassign_running",
        "slabs_moved",
    ] {
        out(&name, &0);
    }
    // memcached shows these only while its crawler is enabled
    if g.lru_crawler_enabled {
        out(&"lru_crawler_running", &u8::from(g.lru_crawler_running));
        out(&"lru_crawler_starts", &g.lru_crawler_starts);
    }
    // no LRU maintainer thread (see `stats settings`)
    out(&"lru_maintainer_juggles", &0);
    out(&"malloc_fails", &0);
    // log lines are never dropped before reaching the watchers' buffers
    out(&"log_worker_dropped", &0);
    out(&"log_worker_written", &g.log_worker_written);
    out(&"log_watcher_skipped", &g.log_watcher_skipped);
    out(&"log_watcher_sent", &g.log_watcher_sent);
    out(&"log_watchers", &g.log_watchers);
    if let Some(tls) = &g.tls {
        if let Some(n) = tls.new_sessions {
            out(&"ssl_new_sessions", &n);
        }
        out(&"ssl_handshake_errors", &tls.handshake_errors);
        out(
            &"time_since_server_cert_refresh",
            &tls.secs_since_cert_refresh,
        );
    }
    out(&"unexpected_napi_ids", &0);
    // connections are handed to workers in turn; there is no fallback
    out(&"round_robin_fallback", &0);
}

/// The segmented LRU's moves (memcached's hot/warm/cold queues): CLOCK
/// eviction over segments has no such moves.
fn lru_moves(out: &mut Emit<'_>) {
    for name in [
        "lrutail_reflocked",
        "moves_to_cold",
        "moves_to_warm",
        "moves_within_lru",
    ] {
        out(&name, &0);
    }
}

/// What `stats settings` reports. Text values are written as given.
#[derive(Debug, Clone, Default)]
pub struct Settings<'a> {
    pub maxbytes: u64,
    pub maxconns: u64,
    pub tcpport: u16,
    pub udpport: u16,
    pub inter: &'a str,
    pub verbosity: u32,
    pub evictions: bool,
    pub domain_socket: &'a str,
    /// Octal, as memcached prints it.
    pub umask: u32,
    pub shutdown_command: bool,
    pub growth_factor: f64,
    pub chunk_size: u64,
    pub num_threads: u64,
    pub stat_key_prefix: char,
    pub detail_enabled: bool,
    pub reqs_per_event: u64,
    pub cas_enabled: bool,
    pub tcp_backlog: i32,
    pub binding_protocol: &'a str,
    /// `-S`.
    pub auth_enabled_sasl: bool,
    /// `no`, or the `-Y` file's path.
    pub auth_enabled_ascii: &'a str,
    pub item_size_max: u64,
    pub slab_automove: u32,
    pub lru_crawler: bool,
    pub lru_crawler_sleep: u32,
    pub lru_crawler_tocrawl: u32,
    pub flush_enabled: bool,
    pub dump_enabled: bool,
    pub hash_algorithm: &'a str,
    pub idle_timeout: u64,
    pub watcher_logbuf_size: u64,
    pub read_buf_mem_limit: u64,
    /// `-N`'s value, `(null)` without it.
    pub num_napi_ids: Option<u32>,
    /// `-e`'s path, `(null)` without it.
    pub memory_file: Option<&'a str>,
    pub tls: TlsSettings<'a>,
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// `stats settings`, without the `ssl_*` lines (see the module comment).
pub fn settings(s: &Settings<'_>, out: &mut Emit<'_>) {
    out(&"maxbytes", &s.maxbytes);
    out(&"maxconns", &s.maxconns);
    out(&"tcpport", &s.tcpport);
    out(&"udpport", &s.udpport);
    out(&"inter", &s.inter);
    out(&"verbosity", &s.verbosity);
    out(&"oldest", &0);
    out(&"evictions", &if s.evictions { "on" } else { "off" });
    out(&"domain_socket", &s.domain_socket);
    out(&"umask", &format_args!("{:o}", s.umask));
    out(&"shutdown_command", &yes_no(s.shutdown_command));
    out(&"growth_factor", &format_args!("{:.2}", s.growth_factor));
    out(&"chunk_size", &s.chunk_size);
    out(&"num_threads", &s.num_threads);
    out(&"num_threads_per_udp", &s.num_threads);
    out(&"stat_key_prefix", &s.stat_key_prefix);
    out(&"detail_enabled", &yes_no(s.detail_enabled));
    out(&"reqs_per_event", &s.reqs_per_event);
    out(&"cas_enabled", &yes_no(s.cas_enabled));
    out(&"tcp_backlog", &s.tcp_backlog);
    out(&"binding_protocol", &s.binding_protocol);
    out(&"auth_enabled_sasl", &yes_no(s.auth_enabled_sasl));
    out(&"auth_enabled_ascii", &s.auth_enabled_ascii);
    out(&"item_size_max", &s.item_size_max);
    out(&"maxconns_fast", &"yes");
    out(&"hashpower_init", &0);
    out(&"slab_reassign", &"yes");
    out(&"slab_automove", &s.slab_automove);
    // the rebalancer's tuning: memcached's defaults, nothing to tune here
    out(&"slab_automove_ratio", &"0.80");
    out(&"slab_automove_window", &30);
    out(&"slab_chunk_max", &(512 * 1024));
    out(&"lru_crawler", &yes_no(s.lru_crawler));
    out(&"lru_crawler_sleep", &s.lru_crawler_sleep);
    out(&"lru_crawler_tocrawl", &s.lru_crawler_tocrawl);
    out(&"tail_repair_time", &0);
    out(&"flush_enabled", &yes_no(s.flush_enabled));
    out(&"dump_enabled", &yes_no(s.dump_enabled));
    out(&"hash_algorithm", &s.hash_algorithm);
    lru_settings(out);
    out(&"idle_timeout", &s.idle_timeout);
    out(&"watcher_logbuf_size", &s.watcher_logbuf_size);
    // log lines are formatted straight into the watchers' buffers
    out(&"worker_logbuf_size", &0);
    out(&"read_buf_mem_limit", &s.read_buf_mem_limit);
    out(&"track_sizes", &"no");
    out(&"inline_ascii_response", &"no");
    ext_settings(out);
    tls_settings(&s.tls, out);
    match s.num_napi_ids {
        Some(n) => out(&"num_napi_ids", &n),
        None => out(&"num_napi_ids", &"(null)"),
    }
    out(&"memory_file", &s.memory_file.unwrap_or("(null)"));
}

fn tls_settings(t: &TlsSettings<'_>, out: &mut Emit<'_>) {
    out(&"ssl_enabled", &yes_no(t.enabled));
    out(&"ssl_chain_cert", &t.chain_cert);
    out(&"ssl_key", &t.key);
    out(&"ssl_verify_mode", &t.verify_mode);
    out(&"ssl_keyformat", &t.keyformat);
    out(&"ssl_ciphers", &t.ciphers);
    out(&"ssl_ca_cert", &t.ca_cert);
    out(&"ssl_wbuf_size", &t.wbuf_size);
    out(&"ssl_session_cache", &yes_no(t.session_cache));
    out(&"ssl_kernel_tls", &yes_no(t.kernel_tls));
    out(&"ssl_min_version", &t.min_version);
}

/// The segmented LRU's settings: there is no LRU maintainer thread and no
/// hot/warm/cold/temp queues (CLOCK over segments instead).
fn lru_settings(out: &mut Emit<'_>) {
    out(&"lru_maintainer_thread", &"no");
    out(&"lru_segmented", &"no");
    out(&"hot_lru_pct", &20);
    out(&"warm_lru_pct", &40);
    out(&"hot_max_factor", &"0.20");
    out(&"warm_max_factor", &"2.00");
    out(&"temp_lru", &"no");
    out(&"temporary_ttl", &61);
}

/// extstore's settings: memcached prints its defaults without `ext_path`;
/// ferrocache has no flash tier, so they are those defaults.
fn ext_settings(out: &mut Emit<'_>) {
    out(&"ext_item_size", &512);
    out(&"ext_item_age", &u32::MAX);
    out(&"ext_low_ttl", &0);
    out(&"ext_recache_rate", &2000);
    out(&"ext_wbuf_size", &(4 * 1024 * 1024));
    out(&"ext_compact_under", &0);
    out(&"ext_drop_under", &0);
    out(&"ext_max_sleep", &1_000_000);
    out(&"ext_max_frag", &"0.80");
    out(&"slab_automove_freeratio", &"0.010");
    out(&"ext_drop_unread", &"no");
}

/// One socket in `stats conns`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnLine<'a> {
    pub fd: i32,
    /// `tcp:1.2.3.4:5678`, `udp:…`, `unix:path`.
    pub addr: &'a str,
    /// The listener a client connection came in on (none for a listener).
    pub listen_addr: Option<&'a str>,
    /// memcached's state name (`conn_listening`, `conn_read`, …).
    pub state: &'a str,
    /// A UDP socket (memcached marks it with a `UDP` line first).
    pub udp: bool,
    pub secs_since_last_cmd: u64,
}

/// `stats conns`: each socket's lines, in the order given.
pub fn conns(list: &[ConnLine<'_>], out: &mut Emit<'_>) {
    for c in list {
        let fd = c.fd;
        if c.udp {
            out(&format_args!("{fd}:UDP"), &"UDP");
        }
        out(&format_args!("{fd}:addr"), &c.addr);
        if let Some(l) = c.listen_addr {
            out(&format_args!("{fd}:listen_addr"), &l);
        }
        out(&format_args!("{fd}:state"), &c.state);
        out(
            &format_args!("{fd}:secs_since_last_cmd"),
            &c.secs_since_last_cmd,
        );
    }
}

/// One size class in `stats items` and `stats slabs`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Class {
    pub id: u32,
    pub number: u64,
    pub age: u64,
    pub mem_requested: u64,
    pub evicted: u64,
    pub evicted_nonzero: u64,
    pub outofmemory: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    pub evicted_active: u64,
    pub crawler_reclaimed: u64,
    pub crawler_items_checked: u64,
    /// `stats slabs`' layout: the class's upper size bound and its items in
    /// notional pages.
    pub chunk_size: u64,
    pub chunks_per_page: u64,
    pub total_pages: u64,
    pub get_hits: u64,
    pub cmd_set: u64,
    pub delete_hits: u64,
    pub incr_hits: u64,
    pub decr_hits: u64,
    pub cas_hits: u64,
    pub cas_badval: u64,
    pub touch_hits: u64,
}

/// `stats items`: per class with items. All items count as cold (there
/// are no hot or warm queues), so do all hits.
pub fn items(classes: &[Class], out: &mut Emit<'_>) {
    for c in classes {
        let id = c.id;
        let mut s = |name: &str, v: u64| out(&format_args!("items:{id}:{name}"), &v);
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
        s("crawler_items_checked", c.crawler_items_checked);
        s("lrutail_reflocked", 0);
        s("moves_to_cold", 0);
        s("moves_to_warm", 0);
        s("moves_within_lru", 0);
        s("direct_reclaims", c.evicted);
        s("hits_to_hot", 0);
        s("hits_to_warm", 0);
        s("hits_to_cold", c.get_hits + c.touch_hits);
        s("hits_to_temp", 0);
    }
}

/// `stats slabs`: per class with items, then the totals.
pub fn slabs(classes: &[Class], total_malloced: u64, out: &mut Emit<'_>) {
    for c in classes {
        let id = c.id;
        let total_chunks = c.total_pages * c.chunks_per_page;
        let mut s = |name: &str, v: u64| out(&format_args!("{id}:{name}"), &v);
        s("chunk_size", c.chunk_size);
        s("chunks_per_page", c.chunks_per_page);
        s("total_pages", c.total_pages);
        s("total_chunks", total_chunks);
        s("used_chunks", c.number);
        s("free_chunks", total_chunks - c.number);
        s("free_chunks_end", 0);
        s("get_hits", c.get_hits);
        s("cmd_set", c.cmd_set);
        s("delete_hits", c.delete_hits);
        s("incr_hits", c.incr_hits);
        s("decr_hits", c.decr_hits);
        s("cas_hits", c.cas_hits);
        s("cas_badval", c.cas_badval);
        s("touch_hits", c.touch_hits);
    }
    out(&"active_slabs", &classes.len());
    out(&"total_malloced", &total_malloced);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(f: impl FnOnce(&mut Emit<'_>)) -> Vec<(String, String)> {
        let mut v = Vec::new();
        f(&mut |n, val| v.push((n.to_string(), val.to_string())));
        v
    }

    #[test]
    fn idle_kicks_only_with_an_idle_timeout() {
        let t = Totals {
            idle_kicks: 3,
            ..Totals::default()
        };
        let mut g = General::default();
        let without = lines(|o| general(&g, &t, o));
        assert!(!without.iter().any(|(n, _)| n == "idle_kicks"));
        g.idle_timeout_set = true;
        let with = lines(|o| general(&g, &t, o));
        let at = with.iter().position(|(n, _)| n == "idle_kicks").unwrap();
        assert_eq!(with[at - 1].0, "auth_errors");
        assert_eq!(with[at].1, "3");
        assert_eq!(with.len(), without.len() + 1);
    }

    #[test]
    fn slabs_lay_items_out_in_pages() {
        let c = Class {
            id: 4,
            number: 5,
            chunks_per_page: 3,
            total_pages: 2,
            get_hits: 7,
            ..Class::default()
        };
        let l = lines(|o| slabs(&[c], 99, o));
        let get = |n: &str| l.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get("4:total_chunks").as_deref(), Some("6"));
        assert_eq!(get("4:free_chunks").as_deref(), Some("1"));
        assert_eq!(get("4:get_hits").as_deref(), Some("7"));
        assert_eq!(get("active_slabs").as_deref(), Some("1"));
        assert_eq!(get("total_malloced").as_deref(), Some("99"));
    }

    #[test]
    fn conns_show_listen_addr_for_clients_only() {
        let list = [
            ConnLine {
                fd: 5,
                addr: "tcp:127.0.0.1:11211",
                listen_addr: None,
                state: "conn_listening",
                udp: false,
                secs_since_last_cmd: 9,
            },
            ConnLine {
                fd: 8,
                addr: "tcp:127.0.0.1:4000",
                listen_addr: Some("tcp:127.0.0.1:11211"),
                state: "conn_parse_cmd",
                udp: false,
                secs_since_last_cmd: 0,
            },
        ];
        let names: Vec<String> = lines(|o| conns(&list, o))
            .into_iter()
            .map(|l| l.0)
            .collect();
        assert_eq!(
            names,
            [
                "5:addr",
                "5:state",
                "5:secs_since_last_cmd",
                "8:addr",
                "8:listen_addr",
                "8:state",
                "8:secs_since_last_cmd"
            ]
        );
    }
}
