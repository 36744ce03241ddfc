//! Every `stats` report against memcached 1.6.18 started with the same
//! flags: the same names in the same order (values differ: they describe
//! two different servers), `version`'s line, and counters that move when
//! their event happens, on both servers.
//!
//! The only names allowed to differ: ferrocache's own lines at the end of
//! `stats` ([`OURS`]). (`tests/tls.rs` compares the TLS lines under `-Z`.)

#[macro_use]
mod common;

use std::time::Duration;

use common::{eventually, memcached_or_skip, stat_str, stat_u64, Conn, Server};

/// Lines of `stats` memcached does not have, after all of its own.
const OURS: &[&str] = &[
    "worker_panics",
    "pinned_bytes",
    "pinned_refused",
    "ferrocache_version",
];

/// Flag sets compared: the defaults, an idle timeout (adds `idle_kicks`),
/// more threads and limits.
const FLAG_SETS: &[&[&str]] = &[
    &[],
    &["-o", "idle_timeout=30"],
    &["-t", "2", "-c", "100", "-o", "read_buf_mem_limit=4"],
    &["-m", "8", "-I", "2m", "-C", "-o", "no_lru_crawler"],
];

/// Stores items in three size classes and reads one, so that `stats items`
/// and `stats slabs` have classes to show.
fn workload(c: &mut Conn) {
    for (key, len) in [("small", 10), ("medium", 2000), ("large", 100_000)] {
        c.send(format!("set {key} 0 0 {len}\r\n"));
        c.send(vec![b'v'; len]);
        c.roundtrip("\r\n", "STORED\r\n");
    }
    c.send("get small\r\n");
    let _ = c.expect_line_prefix("VALUE small");
    c.expect("v".repeat(10) + "\r\nEND\r\n");
}

/// The names of `stats <sub>`, with the numbers that differ between servers
/// by nature (descriptors in `stats conns`, class ids) replaced by `N`.
fn names(c: &mut Conn, sub: &str) -> Vec<String> {
    c.stats(sub)
        .into_iter()
        .map(|(name, _)| {
            let mut parts: Vec<&str> = name.split(':').collect();
            for p in parts.iter_mut() {
                if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
                    *p = "N";
                }
            }
            parts.join(":")
        })
        .collect()
}

/// Every report's names, after the same workload, on one server.
fn reports(server: &Server) -> Vec<(&'static str, Vec<String>)> {
    let mut c = server.connect();
    workload(&mut c);
    ["", "settings", "conns", "items", "slabs", "extstore"]
        .into_iter()
        .map(|sub| (sub, names(&mut c, sub)))
        .collect()
}

#[test]
fn every_report_has_memcacheds_names_in_its_order() {
    for flags in FLAG_SETS {
        let Some(memcached) = memcached_or_skip(flags) else {
            return;
        };
        let ferrocache = Server::ferrocache(flags);
        let want = reports(&memcached);
        let got = reports(&ferrocache);
        for ((sub, want), (_, got)) in want.into_iter().zip(got) {
            let (want, got): (Vec<String>, Vec<String>) = match sub {
                "" => (
                    want,
                    got.into_iter()
                        .filter(|n| !OURS.contains(&n.as_str()))
                        .collect(),
                ),
                _ => (want, got),
            };
            assert_eq!(got, want, "`stats {sub}` with {flags:?}");
        }
    }
}

/// ferrocache's own lines come after all of memcached's, so a parser that
/// stops at a known last line misses nothing it knows.
#[test]
fn our_lines_come_last() {
    let server = Server::ferrocache(&[]);
    let mut c = server.connect();
    let all = c.stats("");
    let tail: Vec<&str> = all[all.len() - OURS.len()..]
        .iter()
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(tail, OURS);
    assert_eq!(stat_str(&all, "version"), "1.6.18");
    assert_eq!(
        stat_str(&all, "ferrocache_version"),
        env!("CARGO_PKG_VERSION")
    );
}

/// `version` is memcached's release alone: clients that read the version
/// from the end of the line (Node's `memcached`) see 1.6.18.
fn version_line(server: &Server) {
    let mut c = server.connect();
    c.roundtrip("version\r\n", "VERSION 1.6.18\r\n");
    assert_eq!(stat_str(&c.stats(""), "version"), "1.6.18");
}
both!(version_line, &[]);

/// `stats extstore` without a flash tier: an empty report, not `ERROR`.
fn extstore_is_empty(server: &Server) {
    let mut c = server.connect();
    c.roundtrip("stats extstore\r\n", "END\r\n");
}
both!(extstore_is_empty, &[]);

/// `stats conns` lists the listener, then this connection with its
/// listener and its seconds since the last command.
fn conns_list_listeners(server: &Server) {
    let mut c = server.connect();
    let conns = c.stats("conns");
    let state_of = |fd: &str| stat_str(&conns, &format!("{fd}:state")).to_string();
    let fds: Vec<&str> = conns
        .iter()
        .filter(|(n, _)| n.ends_with(":addr"))
        .map(|(n, _)| n.trim_end_matches(":addr"))
        .collect();
    // the listener first; this connection, the newest, last (the harness
    // may hold another one open to memcached)
    assert!(fds.len() >= 2, "{conns:?}");
    let (first, last) = (fds[0], fds[fds.len() - 1]);
    assert_eq!(state_of(first), "conn_listening");
    assert_eq!(state_of(last), "conn_parse_cmd");
    let listener = stat_str(&conns, &format!("{first}:addr"));
    assert_eq!(stat_str(&conns, &format!("{last}:listen_addr")), listener);
    assert_eq!(listener, format!("tcp:{}", server.tcp_addr()));
    assert_eq!(stat_u64(&conns, &format!("{last}:secs_since_last_cmd")), 0);
}
both!(conns_list_listeners, &[]);

/// Counters that move with their event, on both servers: `cmd_meta` (only
/// `me` counts in 1.6.18), `lru_crawler_starts`, the per-class hits of
/// `stats slabs` and `hits_to_cold` of `stats items`, the watch log's.
fn counters_move(server: &Server) {
    let mut c = server.connect();
    workload(&mut c);
    let before = c.stats("");
    c.send("mg small v\r\n");
    let _ = c.expect_line_prefix("VA 10");
    c.expect("v".repeat(10) + "\r\n");
    c.send("me small\r\n");
    let _ = c.expect_line_prefix("ME small");
    let after = c.stats("");
    assert_eq!(
        stat_u64(&after, "cmd_meta"),
        stat_u64(&before, "cmd_meta") + 1
    );

    let starts = stat_u64(&after, "lru_crawler_starts");
    c.roundtrip("lru_crawler crawl all\r\n", "OK\r\n");
    assert!(eventually(Duration::from_secs(5), || {
        c.stat("", "lru_crawler_starts") == starts + 1
    }));

    let class_of_small = |c: &mut Conn| {
        let slabs = c.stats("slabs");
        let (name, _) = slabs
            .iter()
            .find(|(n, v)| n.ends_with(":chunk_size") && v.parse::<u64>().unwrap() < 200)
            .expect("a class for the small item")
            .clone();
        let id = name.trim_end_matches(":chunk_size").to_string();
        (
            stat_u64(&slabs, &format!("{id}:get_hits")),
            stat_u64(&slabs, &format!("{id}:cmd_set")),
            id,
        )
    };
    let (hits, sets, id) = class_of_small(&mut c);
    assert!(hits >= 1 && sets >= 1, "{hits} {sets}");
    c.send("get small small\r\n");
    for _ in 0..2 {
        let _ = c.expect_line_prefix("VALUE small");
        c.expect("v".repeat(10) + "\r\n");
    }
    c.expect("END\r\n");
    c.roundtrip("set small 0 0 1\r\nw\r\n", "STORED\r\n");
    let (hits2, sets2, id2) = class_of_small(&mut c);
    assert_eq!((hits2, sets2, &id2), (hits + 2, sets + 1, &id));
    // (memcached counts them in the queue the item is in; here all are cold)
    let items = c.stats("items");
    let queue_hits: u64 = ["hot", "warm", "cold", "temp"]
        .iter()
        .map(|q| stat_u64(&items, &format!("items:{id}:hits_to_{q}")))
        .sum();
    assert!(queue_hits >= hits + 2, "{queue_hits} {hits}");

    let mut watcher = server.connect();
    watcher.roundtrip("watch mutations\r\n", "OK\r\n");
    assert!(eventually(Duration::from_secs(5), || {
        c.stat("", "log_watchers") == 1
    }));
    let sent = c.stat("", "log_watcher_sent");
    c.roundtrip("set w 0 0 1\r\nx\r\n", "STORED\r\n");
    let line = watcher.read_line();
    assert!(
        line.starts_with(b"ts="),
        "{}",
        String::from_utf8_lossy(&line)
    );
    assert_eq!(c.stat("", "log_watcher_sent"), sent + 1);
}
both!(counters_move, &[]);

/// `idle_kicks` counts the connections `-o idle_timeout` closed.
fn idle_kicks_count_closes(server: &Server) {
    // a new connection for each look: any connection idle for a second
    // is closed, the one that looks too
    assert_eq!(server.connect().stat("", "idle_kicks"), 0);
    let mut idle = server.connect();
    idle.roundtrip("version\r\n", "VERSION 1.6.18\r\n");
    idle.set_read_timeout(Duration::from_secs(10));
    idle.expect_closed();
    assert!(eventually(Duration::from_secs(10), || {
        server.connect().stat("", "idle_kicks") >= 1
    }));
}
both!(idle_kicks_count_closes, &["-o", "idle_timeout=1"]);

/// Issue 15's example: ten 65 KB items expire and ten new ones of the same
/// size are set; `total_malloced` stays what it was (memcached reuses the
/// expired items' chunks; ferrocache gives their memory back before it
/// charges new memory, and a shard's first key costs no index table).
fn expired_memory_is_reused(server: &Server) {
    let mut c = server.connect();
    let value = "v".repeat(65_000);
    for i in 0..10 {
        c.roundtrip(format!("set old{i} 0 1 65000\r\n{value}\r\n"), "STORED\r\n");
    }
    let before = c.stat("slabs", "total_malloced");
    // past the one-second exptime (waiting, not timing anything)
    std::thread::sleep(Duration::from_millis(2500));
    for i in 0..10 {
        c.roundtrip(format!("set new{i} 0 0 65000\r\n{value}\r\n"), "STORED\r\n");
    }
    assert_eq!(c.stat("slabs", "total_malloced"), before);
}
both!(expired_memory_is_reused, &[]);

/// With UDP (`-U`), `stats conns` lists the UDP socket as memcached does
/// (a `UDP` line first, state `conn_read`); one thread, as memcached lists
/// one UDP socket per thread.
#[test]
fn conns_list_udp_sockets_as_memcached() {
    let names_with = |start: fn(&[&str]) -> Option<Server>| {
        let port = common::free_udp_port().to_string();
        let server = start(&["-t", "1", "-U", &port])?;
        let mut c = server.connect();
        Some(names(&mut c, "conns"))
    };
    let Some(want) = names_with(memcached_or_skip) else {
        return;
    };
    let got = names_with(|a| Some(Server::ferrocache(a))).expect("ferrocache");
    assert_eq!(got, want);
    assert!(want.contains(&"N:UDP".to_string()), "{want:?}");
}

/// Per-class command counters of `stats slabs` and the crawler's
/// `crawler_items_checked` move with their commands, on both servers.
fn class_counters_move(server: &Server) {
    let mut c = server.connect();
    c.roundtrip("set n 0 0 2\r\n10\r\n", "STORED\r\n");
    let slab = |c: &mut Conn, field: &str| -> u64 {
        let slabs = c.stats("slabs");
        // the one class with items
        let id = slabs
            .iter()
            .find(|(n, _)| n.ends_with(":used_chunks"))
            .map(|(n, _)| n.trim_end_matches(":used_chunks").to_string())
            .expect("a class");
        stat_u64(&slabs, &format!("{id}:{field}"))
    };
    let before: Vec<u64> = [
        "incr_hits",
        "decr_hits",
        "touch_hits",
        "cas_hits",
        "cas_badval",
    ]
    .iter()
    .map(|f| slab(&mut c, f))
    .collect();
    c.roundtrip("incr n 5\r\n", "15\r\n");
    c.roundtrip("decr n 1\r\n", "14\r\n");
    c.roundtrip("touch n 100\r\n", "TOUCHED\r\n");
    let (_, _, cas) = c.gets("n");
    c.roundtrip(format!("cas n 0 0 2 {cas}\r\n20\r\n"), "STORED\r\n");
    c.roundtrip(format!("cas n 0 0 2 {cas}\r\n30\r\n"), "EXISTS\r\n");
    let after: Vec<u64> = [
        "incr_hits",
        "decr_hits",
        "touch_hits",
        "cas_hits",
        "cas_badval",
    ]
    .iter()
    .map(|f| slab(&mut c, f))
    .collect();
    let moved: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert_eq!(moved, [1, 1, 1, 1, 1]);

    // a delete counts in the class the item was in
    c.roundtrip("set d 0 0 2\r\n10\r\n", "STORED\r\n");
    let deletes = slab(&mut c, "delete_hits");
    c.roundtrip("delete d\r\n", "DELETED\r\n");
    assert_eq!(slab(&mut c, "delete_hits"), deletes + 1);

    // a requested crawl looks at the items
    let checked = c.stat("", "crawler_items_checked");
    c.roundtrip("lru_crawler crawl all\r\n", "OK\r\n");
    assert!(eventually(Duration::from_secs(5), || {
        c.stat("", "crawler_items_checked") > checked
    }));
}
both!(class_counters_move, &[]);

/// The index's size: `hash_bytes` grows with the items (here, the tables of
/// every shard: memcached's is one preallocated table, so this is ours).
#[test]
fn hash_figures_follow_the_index() {
    let server = Server::ferrocache(&[]);
    let mut c = server.connect();
    let before = c.stats("");
    for i in 0..5000 {
        c.send(format!("set key:{i} 0 0 1 noreply\r\nx\r\n"));
    }
    let after = c.stats("");
    let bytes = |s: &[(String, String)]| stat_u64(s, "hash_bytes");
    let power = |s: &[(String, String)]| stat_u64(s, "hash_power_level");
    assert!(
        bytes(&after) > bytes(&before),
        "{} {}",
        bytes(&before),
        bytes(&after)
    );
    assert!(power(&after) > power(&before));
    // 8-byte slots: 2^power slots at most what the bytes hold
    assert!((1u64 << power(&after)) * 8 <= bytes(&after));
}
