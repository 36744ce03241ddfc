//! The Prometheus endpoint's wire format: the HTTP request it accepts, the
//! replies it gives, and the text exposition (version 0.0.4) of the
//! `stats` reports under the metric names and labels of
//! prometheus/memcached_exporter, so that its dashboards and alerts work
//! unchanged against ferrocache without the sidecar.
//!
//! Owns the mapping from `stats` lines to metrics (the exporter's: it reads
//! the same lines from memcached) and every byte the endpoint sends. Must
//! not gather a value or touch a socket: the lines come in a [`Snapshot`],
//! and `server` does the I/O.

use std::fmt::Write;

use crate::stats::{FamilyTimes, BUCKETS_US, SAMPLE_EVERY};

/// Longest request head the endpoint reads (request line and headers).
pub const MAX_REQUEST: usize = 4096;

/// The `stats` reports a scrape reads, as `(name, value)` lines.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub stats: Vec<(String, String)>,
    pub settings: Vec<(String, String)>,
    pub items: Vec<(String, String)>,
    pub slabs: Vec<(String, String)>,
    /// Sampled service times per command family.
    pub service: Vec<FamilyTimes>,
    /// Per shard, the times its lock was found held.
    pub lock_contention: Vec<u64>,
    /// The eviction policy's own counters.
    pub eviction: EvictionPolicy,
    /// The most read keys of the last one to two minutes, with their
    /// sampled read counts, most read first.
    pub top_keys: crate::stats::keys::KeyCounts,
    /// Show the keys themselves, not a hash of each.
    pub keys_shown: bool,
}

/// What CLOCK over segments did (see `docs/operations.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EvictionPolicy {
    /// Oldest segments recycled, by how: a second chance for used items,
    /// released (unmapped), compacted without eviction.
    pub second_chance: u64,
    pub released: u64,
    pub compacted: u64,
    /// Items that survived a recycle.
    pub kept: u64,
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpRequest {
    /// `GET /metrics`.
    Metrics,
    /// A `GET` of another path: 404.
    NotFound,
    /// Another method: 405.
    NotAllowed,
    /// Not an HTTP/1 request line: 400.
    Bad,
}

/// The request head is complete (its empty line has arrived).
pub fn head_complete(bytes: &[u8]) -> bool {
    bytes.windows(4).any(|w| w == b"\r\n\r\n") || bytes.windows(2).any(|w| w == b"\n\n")
}

/// Reads the request line of a complete head.
pub fn parse_request(head: &[u8]) -> HttpRequest {
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(head.len());
    let line = head[..line_end]
        .strip_suffix(b"\r")
        .unwrap_or(&head[..line_end]);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return HttpRequest::Bad;
    };
    let token = |s: &[u8]| !s.is_empty() && s.iter().all(|b| b.is_ascii_uppercase());
    if !token(method) || !target.starts_with(b"/") || !version.starts_with(b"HTTP/1.") {
        return HttpRequest::Bad;
    }
    if method != b"GET" {
        return HttpRequest::NotAllowed;
    }
    let path = target.split(|&b| b == b'?').next().unwrap_or(target);
    if path == b"/metrics" {
        HttpRequest::Metrics
    } else {
        HttpRequest::NotFound
    }
}

/// A whole response; the connection is closed after it.
pub fn response(status: u16, body: &str) -> Vec<u8> {
    let (reason, content_type) = match status {
        200 => ("OK", "text/plain; version=0.0.4; charset=utf-8"),
        400 => ("Bad Request", "text/plain; charset=utf-8"),
        404 => ("Not Found", "text/plain; charset=utf-8"),
        405 => ("Method Not Allowed", "text/plain; charset=utf-8"),
        _ => ("Internal Server Error", "text/plain; charset=utf-8"),
    };
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if status == 405 {
        out.push_str("Allow: GET\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    bytes
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
}

struct Family {
    name: String,
    help: &'static str,
    kind: Kind,
    samples: Vec<(String, f64)>,
}

/// Metric families in the order first seen, each with its samples.
#[derive(Default)]
struct Families(Vec<Family>);

impl Families {
    fn add(&mut self, name: &str, help: &'static str, kind: Kind, labels: &[(&str, &str)], v: f64) {
        let mut l = String::new();
        for (i, (k, val)) in labels.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            let _ = write!(l, "{sep}{k}=\"{}\"", escape(val));
        }
        let sample = (l, v);
        match self.0.iter_mut().find(|f| f.name == name) {
            Some(f) => f.samples.push(sample),
            None => self.0.push(Family {
                name: name.to_string(),
                help,
                kind,
                samples: vec![sample],
            }),
        }
    }

    fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.0 {
            let kind = match f.kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(out, "# TYPE {} {}", f.name, kind);
            for (labels, v) in &f.samples {
                if labels.is_empty() {
                    let _ = writeln!(out, "{} {}", f.name, v);
                } else {
                    let _ = writeln!(out, "{}{{{}}} {}", f.name, labels, v);
                }
            }
        }
        out
    }
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A report's lines, looked up by name.
struct Lines<'a>(&'a [(String, String)]);

impl Lines<'_> {
    fn text(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn num(&self, name: &str) -> Option<f64> {
        self.text(name)?.parse().ok()
    }

    fn yes(&self, name: &str) -> Option<f64> {
        match self.text(name)? {
            "yes" => Some(1.0),
            "no" => Some(0.0),
            _ => None,
        }
    }
}

/// The exposition of one scrape.
pub fn render(s: &Snapshot) -> String {
    let mut f = Families::default();
    f.add(
        "memcached_up",
        "Could the memcached server be reached.",
        Kind::Gauge,
        &[],
        1.0,
    );
    general(&mut f, &Lines(&s.stats), &Lines(&s.slabs));
    settings(&mut f, &Lines(&s.settings));
    per_class(&mut f, &s.items, "items:", items_metric);
    per_class(&mut f, &s.slabs, "", slabs_metric);
    slab_sets(&mut f, &Lines(&s.slabs));
    ours(&mut f, &Lines(&s.stats));
    let e = &s.eviction;
    let help = "Oldest segments recycled by the eviction policy (CLOCK), by how.";
    for (how, n) in [
        ("second_chance", e.second_chance),
        ("released", e.released),
        ("compacted", e.compacted),
    ] {
        f.add(
            "ferrocache_segments_recycled_total",
            help,
            Counter,
            &[("how", how)],
            n as f64,
        );
    }
    let help = "Items that survived a segment's recycling (used since the CLOCK last passed, or under -M).";
    f.add(
        "ferrocache_items_kept_by_clock_total",
        help,
        Counter,
        &[],
        e.kept as f64,
    );
    for (shard, n) in s.lock_contention.iter().enumerate() {
        let help = "Times a thread found the shard's lock held and waited for it.";
        let shard = shard.to_string();
        f.add(
            "ferrocache_shard_lock_contended_total",
            help,
            Counter,
            &[("shard", &shard)],
            *n as f64,
        );
    }
    let help =
        "Sampled reads (one request in 64) of the most read keys over the last one to two minutes.";
    for (key, n) in &s.top_keys {
        let label = if s.keys_shown {
            String::from_utf8_lossy(key).into_owned()
        } else {
            format!("fnv1a:{:016x}", fnv1a(key))
        };
        f.add(
            "ferrocache_top_key_reads",
            help,
            Gauge,
            &[("key", &label)],
            *n as f64,
        );
    }
    let mut text = f.render();
    service_times(&mut text, &s.service);
    text
}

/// FNV-1a, 64 bits: a stable name for a key that does not show it (not a
/// secret: a guessed key can be checked against it).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `ferrocache_command_duration_seconds`, a histogram per command family.
fn service_times(out: &mut String, families: &[FamilyTimes]) {
    let name = "ferrocache_command_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time to execute a command and write its reply to the connection's \
         buffer, by family; one request in {SAMPLE_EVERY} is timed."
    );
    let _ = writeln!(out, "# TYPE {name} histogram");
    for t in families {
        let family = t.family;
        let mut cumulative = 0;
        for (i, count) in t.counts.iter().enumerate() {
            cumulative += count;
            let le = match BUCKETS_US.get(i) {
                Some(us) => (*us as f64 / 1e6).to_string(),
                None => "+Inf".to_string(),
            };
            let _ = writeln!(
                out,
                "{name}_bucket{{family=\"{family}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "{name}_sum{{family=\"{family}\"}} {}",
            t.sum_ns as f64 / 1e9
        );
        let _ = writeln!(out, "{name}_count{{family=\"{family}\"}} {cumulative}");
    }
}

use Kind::{Counter, Gauge};

/// `stats` line → (metric, help, kind), where the line maps one to one.
const GENERAL: &[(&str, &str, &str, Kind)] = &[
    (
        "uptime",
        "memcached_uptime_seconds",
        "Number of seconds since the server started.",
        Counter,
    ),
    (
        "time",
        "memcached_time_seconds",
        "current UNIX time according to the server.",
        Gauge,
    ),
    (
        "bytes",
        "memcached_current_bytes",
        "Current number of bytes used to store items.",
        Gauge,
    ),
    (
        "limit_maxbytes",
        "memcached_limit_bytes",
        "Number of bytes this server is allowed to use for storage.",
        Gauge,
    ),
    (
        "curr_items",
        "memcached_current_items",
        "Current number of items stored by this instance.",
        Gauge,
    ),
    (
        "total_items",
        "memcached_items_total",
        "Total number of items stored during the life of this instance.",
        Counter,
    ),
    (
        "bytes_read",
        "memcached_read_bytes_total",
        "Total number of bytes read by this server from network.",
        Counter,
    ),
    (
        "bytes_written",
        "memcached_written_bytes_total",
        "Total number of bytes sent by this server to network.",
        Counter,
    ),
    (
        "curr_connections",
        "memcached_current_connections",
        "Current number of open connections.",
        Gauge,
    ),
    (
        "total_connections",
        "memcached_connections_total",
        "Total number of connections opened since the server started running.",
        Counter,
    ),
    (
        "rejected_connections",
        "memcached_connections_rejected_total",
        "Total number of connections rejected due to hitting the -c limit.",
        Counter,
    ),
    (
        "conn_yields",
        "memcached_connections_yielded_total",
        "Total number of connections yielded running due to hitting the -R limit.",
        Counter,
    ),
    (
        "listen_disabled_num",
        "memcached_connections_listener_disabled_total",
        "Number of times the server has hit its connections limit and disabled its listener.",
        Counter,
    ),
    (
        "evictions",
        "memcached_items_evicted_total",
        "Total number of valid items removed from cache to free memory for new items.",
        Counter,
    ),
    (
        "reclaimed",
        "memcached_items_reclaimed_total",
        "Total number of times an entry was stored using memory from an expired entry.",
        Counter,
    ),
    (
        "store_too_large",
        "memcached_item_too_large_total",
        "The number of times an item exceeded the max-item-size when being stored.",
        Counter,
    ),
    (
        "store_no_memory",
        "memcached_item_no_memory_total",
        "The number of times an item could not be stored due to no more memory.",
        Counter,
    ),
    (
        "lru_crawler_starts",
        "memcached_lru_crawler_starts_total",
        "Times an LRU crawler was started.",
        Counter,
    ),
    (
        "direct_reclaims",
        "memcached_direct_reclaims_total",
        "Times worker threads had to directly reclaim or evict items.",
        Counter,
    ),
    (
        "crawler_items_checked",
        "memcached_lru_crawler_items_checked_total",
        "Total items examined by LRU Crawler.",
        Counter,
    ),
    (
        "crawler_reclaimed",
        "memcached_lru_crawler_reclaimed_total",
        "Total items freed by LRU Crawler.",
        Counter,
    ),
    (
        "moves_to_cold",
        "memcached_lru_crawler_moves_to_cold_total",
        "Total number of items moved from HOT/WARM to COLD LRU's.",
        Counter,
    ),
    (
        "moves_to_warm",
        "memcached_lru_crawler_moves_to_warm_total",
        "Total number of items moved from COLD to WARM LRU.",
        Counter,
    ),
    (
        "moves_within_lru",
        "memcached_lru_crawler_moves_within_lru_total",
        "Total number of items reshuffled within HOT or WARM LRU's.",
        Counter,
    ),
    (
        "accepting_conns",
        "memcached_accepting_connections",
        "The server is currently accepting new connections.",
        Gauge,
    ),
];

const COMMANDS: &str =
    "Total number of all requests broken down by command (get, set, etc.) and status.";

fn general(f: &mut Families, s: &Lines<'_>, slabs: &Lines<'_>) {
    if let Some(v) = s.text("version") {
        f.add(
            "memcached_version",
            "The version of this memcached server.",
            Gauge,
            &[("version", v)],
            1.0,
        );
    }
    let cmd = "memcached_commands_total";
    for op in ["get", "delete", "incr", "decr", "cas", "touch"] {
        for (suffix, status) in [("hits", "hit"), ("misses", "miss")] {
            if let Some(v) = s.num(&format!("{op}_{suffix}")) {
                f.add(
                    cmd,
                    COMMANDS,
                    Counter,
                    &[("command", op), ("status", status)],
                    v,
                );
            }
        }
    }
    if let Some(v) = s.num("cas_badval") {
        f.add(
            cmd,
            COMMANDS,
            Counter,
            &[("command", "cas"), ("status", "badval")],
            v,
        );
    }
    if let Some(v) = s.num("cmd_flush") {
        f.add(
            cmd,
            COMMANDS,
            Counter,
            &[("command", "flush"), ("status", "hit")],
            v,
        );
    }
    // cmd_set counts cas commands too
    let cas: Option<f64> = ["cas_misses", "cas_hits", "cas_badval"]
        .iter()
        .map(|n| s.num(n))
        .sum();
    if let (Some(set), Some(cas)) = (s.num("cmd_set"), cas) {
        f.add(
            cmd,
            COMMANDS,
            Counter,
            &[("command", "set"), ("status", "hit")],
            set - cas,
        );
    }
    for (name, help, field) in [
        (
            "memcached_process_user_cpu_seconds_total",
            "Accumulated user time for this process.",
            "rusage_user",
        ),
        (
            "memcached_process_system_cpu_seconds_total",
            "Accumulated system time for this process.",
            "rusage_system",
        ),
    ] {
        if let Some(v) = s.num(field) {
            f.add(name, help, Counter, &[], v);
        }
    }
    for (line, name, help, kind) in GENERAL {
        if let Some(v) = s.num(line) {
            f.add(name, help, *kind, &[], v);
        }
    }
    if let Some(v) = slabs.num("total_malloced") {
        f.add(
            "memcached_malloced_bytes",
            "Number of bytes of memory allocated to slab pages.",
            Gauge,
            &[],
            v,
        );
    }
}

fn settings(f: &mut Families, s: &Lines<'_>) {
    if let Some(v) = s.num("maxconns") {
        f.add(
            "memcached_max_connections",
            "Maximum number of clients allowed.",
            Gauge,
            &[],
            v,
        );
    }
    if s.text("lru_crawler") != Some("yes") {
        return;
    }
    let flags = [
        (
            "lru_crawler",
            "memcached_lru_crawler_enabled",
            "Whether the LRU crawler is enabled.",
        ),
        (
            "lru_maintainer_thread",
            "memcached_lru_crawler_maintainer_thread",
            "Split LRU mode and background threads.",
        ),
    ];
    for (line, name, help) in flags {
        if let Some(v) = s.yes(line) {
            f.add(name, help, Gauge, &[], v);
        }
    }
    let numbers = [
        (
            "lru_crawler_sleep",
            "memcached_lru_crawler_sleep",
            "Microseconds to sleep between LRU crawls.",
        ),
        (
            "lru_crawler_tocrawl",
            "memcached_lru_crawler_to_crawl",
            "Max items to crawl per slab per run.",
        ),
        (
            "hot_lru_pct",
            "memcached_lru_crawler_hot_percent",
            "Percent of slab memory reserved for HOT LRU.",
        ),
        (
            "warm_lru_pct",
            "memcached_lru_crawler_warm_percent",
            "Percent of slab memory reserved for WARM LRU.",
        ),
        (
            "hot_max_factor",
            "memcached_lru_crawler_hot_max_factor",
            "Set idle age of HOT LRU to COLD age * this",
        ),
        (
            "warm_max_factor",
            "memcached_lru_crawler_warm_max_factor",
            "Set idle age of WARM LRU to COLD age * this",
        ),
    ];
    for (line, name, help) in numbers {
        if let Some(v) = s.num(line) {
            f.add(name, help, Gauge, &[], v);
        }
    }
}

/// Per-class lines (`<prefix><id>:<field>`), each handed to `metric` with
/// its class id.
fn per_class(
    f: &mut Families,
    lines: &[(String, String)],
    prefix: &str,
    metric: fn(&mut Families, &str, &str, f64),
) {
    for (name, value) in lines {
        let Some((class, field)) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once(':'))
        else {
            continue;
        };
        if let Ok(v) = value.parse() {
            metric(f, class, field, v);
        }
    }
}

/// `stats items` field → metric, labelled by class (`slab`).
fn items_metric(f: &mut Families, slab: &str, field: &str, v: f64) {
    let lru = match field {
        "hits_to_hot" => Some("hot"),
        "hits_to_warm" => Some("warm"),
        "hits_to_cold" => Some("cold"),
        "hits_to_temp" => Some("temporary"),
        _ => None,
    };
    if let Some(lru) = lru {
        let help = "Number of get_hits to the LRU.";
        f.add(
            "memcached_slab_lru_hits_total",
            help,
            Counter,
            &[("slab", slab), ("lru", lru)],
            v,
        );
        return;
    }
    let (name, help, kind) = match field {
        "number" => ("current_items", "Number of items currently stored in this slab class.", Gauge),
        "age" => ("items_age_seconds", "Number of seconds the oldest item has been in the slab class.", Gauge),
        "number_hot" => ("hot_items", "Number of items presently stored in the HOT LRU.", Gauge),
        "number_warm" => ("warm_items", "Number of items presently stored in the WARM LRU.", Gauge),
        "number_cold" => ("cold_items", "Number of items presently stored in the COLD LRU.", Gauge),
        "number_temp" => ("temporary_items", "Number of items presently stored in the TEMPORARY LRU.", Gauge),
        "age_hot" => ("hot_age_seconds", "Age of the oldest item in HOT LRU.", Gauge),
        "age_warm" => ("warm_age_seconds", "Age of the oldest item in WARM LRU.", Gauge),
        "crawler_reclaimed" => ("items_crawler_reclaimed_total", "Number of items freed by the LRU Crawler.", Counter),
        "evicted" => ("items_evicted_total", "Total number of times an item had to be evicted from the LRU before it expired.", Counter),
        "evicted_nonzero" => ("items_evicted_nonzero_total", "Total number of times an item which had an explicit expire time set had to be evicted from the LRU before it expired.", Counter),
        "evicted_time" => ("items_evicted_time_seconds", "Seconds since the last access for the most recent item evicted from this class.", Counter),
        "evicted_unfetched" => ("items_evicted_unfetched_total", "Total number of items evicted and never fetched.", Counter),
        "expired_unfetched" => ("items_expired_unfetched_total", "Total number of valid items evicted from the LRU which were never touched after being set.", Counter),
        "outofmemory" => ("items_outofmemory_total", "Total number of items for this slab class that have triggered an out of memory error.", Counter),
        "reclaimed" => ("items_reclaimed_total", "Total number of items reclaimed.", Counter),
        "tailrepairs" => ("items_tailrepairs_total", "Total number of times the entries for a particular ID need repairing.", Counter),
        "mem_requested" => ("mem_requested_bytes", "Number of bytes of memory actual items take up within a slab.", Counter),
        "moves_to_cold" => ("items_moves_to_cold", "Number of items moved from HOT or WARM into COLD.", Counter),
        "moves_to_warm" => ("items_moves_to_warm", "Number of items moves from COLD into WARM.", Counter),
        "moves_within_lru" => ("items_moves_within_lru", "Number of times active items were bumped within HOT or WARM.", Counter),
        _ => return,
    };
    f.add(
        &format!("memcached_slab_{name}"),
        help,
        kind,
        &[("slab", slab)],
        v,
    );
}

/// `stats slabs` field → metric, labelled by class (`slab`).
fn slabs_metric(f: &mut Families, slab: &str, field: &str, v: f64) {
    let command = |op: &'static str, status: &'static str| Some((op, status));
    let cmd = match field {
        "get_hits" => command("get", "hit"),
        "delete_hits" => command("delete", "hit"),
        "incr_hits" => command("incr", "hit"),
        "decr_hits" => command("decr", "hit"),
        "cas_hits" => command("cas", "hit"),
        "touch_hits" => command("touch", "hit"),
        "cas_badval" => command("cas", "badval"),
        // (set hits: see `slab_sets`)
        _ => None,
    };
    let help =
        "Total number of all requests broken down by command (get, set, etc.) and status per slab.";
    if let Some((op, status)) = cmd {
        let labels = [("slab", slab), ("command", op), ("status", status)];
        f.add("memcached_slab_commands_total", help, Counter, &labels, v);
        return;
    }
    let (name, help) = match field {
        "chunk_size" => (
            "chunk_size_bytes",
            "Number of bytes allocated to each chunk within this slab class.",
        ),
        "chunks_per_page" => (
            "chunks_per_page",
            "Number of chunks within a single page for this slab class.",
        ),
        "total_pages" => (
            "current_pages",
            "Number of pages allocated to this slab class.",
        ),
        "total_chunks" => (
            "current_chunks",
            "Number of chunks allocated to this slab class.",
        ),
        "used_chunks" => ("chunks_used", "Number of chunks allocated to an item."),
        "free_chunks" => ("chunks_free", "Number of chunks not yet allocated items."),
        "free_chunks_end" => (
            "chunks_free_end",
            "Number of free chunks at the end of the last allocated page.",
        ),
        _ => return,
    };
    f.add(
        &format!("memcached_slab_{name}"),
        help,
        Gauge,
        &[("slab", slab)],
        v,
    );
}

/// Per class, `cmd_set` less the class's cas commands (which it counts
/// too): the `set` hits.
fn slab_sets(f: &mut Families, s: &Lines<'_>) {
    let help =
        "Total number of all requests broken down by command (get, set, etc.) and status per slab.";
    for (name, value) in s.0 {
        let Some(slab) = name.strip_suffix(":cmd_set") else {
            continue;
        };
        let num = |field: &str| s.num(&format!("{slab}:{field}"));
        if let (Ok(set), Some(hits), Some(bad)) =
            (value.parse::<f64>(), num("cas_hits"), num("cas_badval"))
        {
            let labels = [("slab", slab), ("command", "set"), ("status", "hit")];
            f.add(
                "memcached_slab_commands_total",
                help,
                Counter,
                &labels,
                set - hits - bad,
            );
        }
    }
}

/// What memcached has no line for.
fn ours(f: &mut Families, s: &Lines<'_>) {
    if let Some(v) = s.text("ferrocache_version") {
        f.add(
            "ferrocache_version",
            "The ferrocache release answering.",
            Gauge,
            &[("version", v)],
            1.0,
        );
    }
    let lines = [
        (
            "worker_panics",
            "ferrocache_worker_panics_total",
            "Requests that panicked (their connection was closed).",
            Counter,
        ),
        (
            "read_buf_oom",
            "ferrocache_read_buffer_oom_total",
            "Connections closed for want of a read buffer under read_buf_mem_limit.",
            Counter,
        ),
        (
            "response_obj_oom",
            "ferrocache_reply_oom_total",
            "Multi-gets refused for want of reply buffer (read_buf_mem_limit, pinned_mem_limit).",
            Counter,
        ),
        (
            "pinned_bytes",
            "ferrocache_pinned_bytes",
            "Bytes of large values held by replies sending them from the cache.",
            Gauge,
        ),
        (
            "pinned_refused",
            "ferrocache_pinned_refused_total",
            "Replies refused because their value would pass pinned_mem_limit.",
            Counter,
        ),
        (
            "read_buf_bytes",
            "ferrocache_read_buffer_bytes",
            "Bytes of the connections' read buffers.",
            Gauge,
        ),
        (
            "response_obj_bytes",
            "ferrocache_reply_buffer_bytes",
            "Bytes of the connections' reply buffers.",
            Gauge,
        ),
        (
            "hash_bytes",
            "ferrocache_index_bytes",
            "Bytes of the index tables.",
            Gauge,
        ),
    ];
    for (line, name, help, kind) in lines {
        if let Some(v) = s.num(line) {
            f.add(name, help, kind, &[], v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn fnv1a_is_the_published_one() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn requests() {
        use HttpRequest::*;
        for (head, want) in [
            (&b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"[..], Metrics),
            (b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", Metrics),
            (b"GET / HTTP/1.1\r\n\r\n", NotFound),
            (b"POST /metrics HTTP/1.1\r\n\r\n", NotAllowed),
            (b"GET /metrics\r\n\r\n", Bad),
            (b"get /metrics HTTP/1.1\r\n\r\n", Bad),
            (b"GET  /metrics HTTP/1.1\r\n\r\n", Bad),
            (b"\x16\x03\x01\r\n\r\n", Bad),
        ] {
            assert_eq!(
                parse_request(head),
                want,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
        assert!(head_complete(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!head_complete(b"GET / HTTP/1.1\r\nHost: x\r\n"));
    }

    #[test]
    fn sets_are_counted_without_cas_and_families_are_grouped() {
        let s = Snapshot {
            stats: lines(&[
                ("version", "1.6.18"),
                ("cmd_set", "10"),
                ("cas_misses", "1"),
                ("cas_hits", "2"),
                ("cas_badval", "3"),
                ("get_hits", "7"),
                ("get_misses", "1"),
                ("rusage_user", "1.500000"),
            ]),
            items: lines(&[("items:3:number", "4"), ("items:3:hits_to_cold", "6")]),
            slabs: lines(&[
                ("3:get_hits", "6"),
                ("3:cmd_set", "4"),
                ("3:cas_hits", "1"),
                ("3:cas_badval", "0"),
                ("3:chunk_size", "152"),
                ("total_malloced", "99"),
            ]),
            lock_contention: vec![0, 5],
            eviction: EvictionPolicy {
                released: 2,
                ..EvictionPolicy::default()
            },
            top_keys: vec![((*b"a\"b").into(), 9)],
            keys_shown: true,
            service: vec![FamilyTimes {
                family: "get",
                counts: [2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                sum_ns: 500_000_000,
            }],
            ..Snapshot::default()
        };
        let text = render(&s);
        for want in [
            "memcached_commands_total{command=\"set\",status=\"hit\"} 4\n",
            "memcached_commands_total{command=\"get\",status=\"miss\"} 1\n",
            "memcached_version{version=\"1.6.18\"} 1\n",
            "memcached_process_user_cpu_seconds_total 1.5\n",
            "memcached_slab_current_items{slab=\"3\"} 4\n",
            "memcached_slab_lru_hits_total{slab=\"3\",lru=\"cold\"} 6\n",
            "memcached_slab_commands_total{slab=\"3\",command=\"get\",status=\"hit\"} 6\n",
            "memcached_slab_chunk_size_bytes{slab=\"3\"} 152\n",
            "memcached_slab_commands_total{slab=\"3\",command=\"set\",status=\"hit\"} 3\n",
            "memcached_malloced_bytes 99\n",
            "ferrocache_shard_lock_contended_total{shard=\"1\"} 5\n",
            "ferrocache_segments_recycled_total{how=\"released\"} 2\n",
            "ferrocache_top_key_reads{key=\"a\\\"b\"} 9\n",
            "ferrocache_command_duration_seconds_bucket{family=\"get\",le=\"0.000002\"} 3\n",
            "ferrocache_command_duration_seconds_bucket{family=\"get\",le=\"+Inf\"} 4\n",
            "ferrocache_command_duration_seconds_count{family=\"get\"} 4\n",
            "ferrocache_command_duration_seconds_sum{family=\"get\"} 0.5\n",
        ] {
            assert!(text.contains(want), "no {want:?} in\n{text}");
        }
        assert_eq!(text.matches("# TYPE memcached_commands_total ").count(), 1);
        let first = text.find("memcached_commands_total{").unwrap();
        let last = text.rfind("memcached_commands_total{").unwrap();
        let between = &text[first..last];
        assert!(!between.contains("# TYPE"), "samples of a family together");
    }
}
