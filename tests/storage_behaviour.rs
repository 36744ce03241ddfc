//! What the cache does with what it stores: cas uniques, expiry, memory
//! limits (eviction, -M), and the stats that report it. Each test runs
//! against ferrocache and against the reference memcached.

#[macro_use]
mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{eventually, stat_str, stat_u64, Conn, Server};

/// cas succeeds with the unique `gets` gave, fails with a stale one, and
/// the unique changes on every modification but not on reads or touches.
fn cas_flow(server: &Server) {
    let mut c = server.connect();
    c.roundtrip("set a 3 0 1\r\nx\r\n", "STORED\r\n");
    let (flags, value, u1) = c.gets("a");
    assert_eq!((flags, value.as_slice()), (3, &b"x"[..]));

    // reads and touches keep the unique
    c.roundtrip("get a\r\n", "VALUE a 3 1\r\nx\r\nEND\r\n");
    c.roundtrip("touch a 100\r\n", "TOUCHED\r\n");
    c.roundtrip("gat 100 a\r\n", "VALUE a 3 1\r\nx\r\nEND\r\n");
    assert_eq!(
        c.gets("a").2,
        u1,
        "get/touch/gat must not change the cas unique"
    );
    c.send("gats 100 a\r\n");
    assert_eq!(
        c.expect_line_prefix("VALUE a 3 1 "),
        u1.to_string(),
        "gats shows the same unique"
    );
    c.expect("x\r\nEND\r\n");

    // the right unique stores (with the new flags), and changes the unique
    c.roundtrip(format!("cas a 9 0 1 {u1}\r\ny\r\n"), "STORED\r\n");
    let (flags, value, u2) = c.gets("a");
    assert_eq!((flags, value.as_slice()), (9, &b"y"[..]));
    assert_ne!(u2, u1, "a successful cas must change the unique");

    // the stale unique no longer matches
    c.roundtrip(format!("cas a 0 0 1 {u1}\r\nz\r\n"), "EXISTS\r\n");
    c.roundtrip(format!("cas a 0 0 1 {u1} noreply\r\nz\r\n"), "");
    c.roundtrip("get a\r\n", "VALUE a 9 1\r\ny\r\nEND\r\n");

    // noreply with the right unique: silent, stored
    c.roundtrip(format!("cas a 9 0 1 {u2} noreply\r\nw\r\n"), "");
    c.roundtrip("get a\r\n", "VALUE a 9 1\r\nw\r\nEND\r\n");
    let u3 = c.gets("a").2;
    assert_ne!(u3, u2);

    // every kind of write moves the unique
    let mut seen = vec![u1, u2, u3];
    let mut step = |c: &mut Conn, req: &str, reply: &str, what: &str| {
        c.roundtrip(req, reply);
        let u = c.gets("n").2;
        assert!(
            !seen.contains(&u),
            "{what} must give a new cas unique (got {u}, seen {seen:?})"
        );
        seen.push(u);
    };
    step(&mut c, "set n 0 0 1\r\n1\r\n", "STORED\r\n", "set");
    step(&mut c, "append n 0 0 1\r\n2\r\n", "STORED\r\n", "append");
    step(&mut c, "prepend n 0 0 1\r\n3\r\n", "STORED\r\n", "prepend");
    step(&mut c, "replace n 0 0 2\r\n40\r\n", "STORED\r\n", "replace");
    step(&mut c, "incr n 2\r\n", "42\r\n", "incr");
    step(&mut c, "decr n 0\r\n", "42\r\n", "decr (even by 0)");

    // cas of a deleted key
    let u = c.gets("n").2;
    c.roundtrip("delete n\r\n", "DELETED\r\n");
    c.roundtrip(format!("cas n 0 0 1 {u}\r\nq\r\n"), "NOT_FOUND\r\n");
    c.roundtrip("get n\r\n", "END\r\n");
}
both!(cas_flow, &[]);

/// The one test that waits on the clock (about 2–3 s): relative expiry,
/// touch extending it, and a delayed flush_all taking effect.
fn expiry_after_wait(server: &Server) {
    let mut c = server.connect();
    c.roundtrip("set short 0 1 1\r\ns\r\n", "STORED\r\n");
    c.roundtrip("set touched 0 1 1\r\nt\r\n", "STORED\r\n");
    c.roundtrip("touch touched 100\r\n", "TOUCHED\r\n");
    c.roundtrip("set long 0 100 1\r\nl\r\n", "STORED\r\n");
    c.roundtrip("set forever 0 0 1\r\nf\r\n", "STORED\r\n");
    c.roundtrip("get short\r\n", "VALUE short 0 1\r\ns\r\nEND\r\n");
    // invalidates everything stored until now, 2–3 s from now (memcached:
    // at the second clock tick from now)
    c.roundtrip("flush_all 3\r\n", "OK\r\n");
    c.roundtrip("get forever\r\n", "VALUE forever 0 1\r\nf\r\nEND\r\n");

    let gone = |c: &mut Conn, key: &str| {
        c.send(format!("get {key}\r\n"));
        let line = c.read_line();
        if line == b"END\r\n" {
            return true;
        }
        c.read_line();
        c.expect("END\r\n");
        false
    };
    let start = Instant::now();
    assert!(
        eventually(Duration::from_secs(5), || gone(&mut c, "short")),
        "an item set with exptime 1 is still there after 5 s"
    );
    // exptime 1 has passed, the flush has not taken effect yet
    c.roundtrip(
        "get touched long forever\r\n",
        "VALUE touched 0 1\r\nt\r\nVALUE long 0 1\r\nl\r\nVALUE forever 0 1\r\nf\r\nEND\r\n",
    );
    // an expired item is gone for every command
    c.roundtrip("touch short 10\r\n", "NOT_FOUND\r\n");
    c.roundtrip("incr short 1\r\n", "NOT_FOUND\r\n");
    c.roundtrip("add short 0 0 1\r\nS\r\n", "STORED\r\n");

    assert!(
        eventually(Duration::from_secs(6), || gone(&mut c, "forever")),
        "flush_all 3 did not take effect within 6 s"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(500),
        "flush_all 3 took effect after {:?}",
        start.elapsed()
    );
    c.roundtrip("get short touched long\r\n", "END\r\n");
}
both!(expiry_after_wait, &[]);

const STANDARD_STATS: &[&str] = &[
    "pid",
    "uptime",
    "time",
    "version",
    "pointer_size",
    "rusage_user",
    "rusage_system",
    "max_connections",
    "curr_connections",
    "total_connections",
    "rejected_connections",
    "connection_structures",
    "cmd_get",
    "cmd_set",
    "cmd_flush",
    "cmd_touch",
    "get_hits",
    "get_misses",
    "get_expired",
    "get_flushed",
    "delete_misses",
    "delete_hits",
    "incr_misses",
    "incr_hits",
    "decr_misses",
    "decr_hits",
    "cas_misses",
    "cas_hits",
    "cas_badval",
    "touch_hits",
    "touch_misses",
    "bytes_read",
    "bytes_written",
    "limit_maxbytes",
    "accepting_conns",
    "threads",
    "bytes",
    "curr_items",
    "total_items",
    "expired_unfetched",
    "evicted_unfetched",
    "evictions",
    "reclaimed",
];

/// `stats`: the standard names, values that mean what they say, and
/// counters that move by exactly what was done.
fn stats_general(server: &Server) {
    let mut c = server.connect();
    let s0 = c.stats("");
    for name in STANDARD_STATS {
        stat_str(&s0, name);
    }
    let names: Vec<&str> = s0.iter().map(|(n, _)| n.as_str()).collect();
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "a stat name appears twice: {names:?}"
    );

    let pid = server.pid().unwrap_or_else(std::process::id);
    assert_eq!(stat_u64(&s0, "pid"), u64::from(pid), "pid");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let time = stat_u64(&s0, "time");
    assert!(time.abs_diff(now) <= 5, "time {time} vs now {now}");
    assert!(stat_u64(&s0, "uptime") < 60, "uptime of a new server");
    assert_eq!(stat_u64(&s0, "limit_maxbytes"), 32 * 1024 * 1024, "-m 32");
    assert_eq!(stat_u64(&s0, "threads"), 3, "-t 3");
    assert_eq!(stat_u64(&s0, "max_connections"), 100, "-c 100");
    assert_eq!(stat_u64(&s0, "pointer_size"), 64);
    assert_eq!(stat_u64(&s0, "accepting_conns"), 1);
    stat_str(&s0, "rusage_user")
        .parse::<f64>()
        .expect("rusage_user is seconds");
    c.send("version\r\n");
    let version = c.expect_line_prefix("VERSION ");
    assert_eq!(
        stat_str(&s0, "version"),
        version,
        "stats version = version command"
    );
    assert_eq!(stat_u64(&s0, "curr_items"), 0);
    assert_eq!(stat_u64(&s0, "total_items"), 0);

    // connections
    // (a connection that just closed may still be counted for a moment)
    assert!(stat_u64(&s0, "curr_connections") >= 1);
    let total = stat_u64(&s0, "total_connections");
    let mut c2 = server.connect();
    c2.roundtrip("get x\r\n", "END\r\n");
    let s = c.stats("");
    let curr = stat_u64(&s, "curr_connections");
    assert!(curr >= 2, "curr_connections {curr} with two clients");
    assert_eq!(
        stat_u64(&s, "total_connections"),
        total + 1,
        "a second client"
    );
    drop(c2);
    assert!(
        eventually(Duration::from_secs(5), || c.stat("", "curr_connections")
            < curr),
        "curr_connections did not drop when a client left"
    );

    // counters
    let before = c.stats("");
    c.roundtrip("set sk 0 0 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip("get sk\r\n", "VALUE sk 0 1\r\nx\r\nEND\r\n");
    c.roundtrip("get nokey\r\n", "END\r\n");
    c.roundtrip(
        "get sk nokey sk\r\n",
        "VALUE sk 0 1\r\nx\r\nVALUE sk 0 1\r\nx\r\nEND\r\n",
    );
    c.gets("sk");
    c.roundtrip("touch sk 0\r\n", "TOUCHED\r\n");
    c.roundtrip("gat 0 sk nokey\r\n", "VALUE sk 0 1\r\nx\r\nEND\r\n");
    let mid = c.stats("");
    assert_eq!(stat_u64(&mid, "curr_items"), 1);
    assert!(stat_u64(&mid, "bytes") > 0, "bytes after a set");
    c.roundtrip("delete sk\r\n", "DELETED\r\n");
    c.roundtrip("delete sk\r\n", "NOT_FOUND\r\n");
    c.roundtrip("incr nokey 1\r\n", "NOT_FOUND\r\n");
    c.roundtrip("decr nokey 1\r\n", "NOT_FOUND\r\n");
    c.roundtrip("set num 0 0 1\r\n1\r\n", "STORED\r\n");
    c.roundtrip("incr num 1\r\n", "2\r\n");
    c.roundtrip("decr num 1\r\n", "1\r\n");
    c.roundtrip("cas num 0 0 1 18446744073709551615\r\n1\r\n", "EXISTS\r\n");
    c.roundtrip("cas nokey 0 0 1 1\r\n1\r\n", "NOT_FOUND\r\n");
    let u = c.gets("num").2;
    c.roundtrip(format!("cas num 0 0 1 {u}\r\n7\r\n"), "STORED\r\n");
    assert_eq!(c.stat("", "curr_items"), 1, "sk deleted, num stored");
    // (a flush may be lazy: curr_items need not drop at once)
    c.roundtrip("flush_all 0\r\n", "OK\r\n");
    let after = c.stats("");
    let delta = |name: &str| stat_u64(&after, name) - stat_u64(&before, name);
    let expected = [
        ("cmd_get", 7), // per key: 1 + 1 + 3 + 1 (gets) + 1 (gets for cas)
        ("get_hits", 5),
        ("get_misses", 2),
        ("cmd_set", 5),     // set sk, set num, three cas (whatever their outcome)
        ("total_items", 3), // set sk, set num, the good cas
        ("cmd_touch", 3),   // touch + gat's two keys
        ("touch_hits", 2),
        ("touch_misses", 1),
        ("delete_hits", 1),
        ("delete_misses", 1),
        ("incr_hits", 1),
        ("incr_misses", 1),
        ("decr_hits", 1),
        ("decr_misses", 1),
        ("cas_hits", 1),
        ("cas_badval", 1),
        ("cas_misses", 1),
        ("cmd_flush", 1),
    ];
    let wrong: Vec<String> = expected
        .iter()
        .filter(|(name, want)| delta(name) != *want)
        .map(|(name, want)| format!("{name}: moved by {}, expected {want}", delta(name)))
        .collect();
    assert!(wrong.is_empty(), "counters: {wrong:#?}");
    assert!(delta("bytes_read") > 0 && delta("bytes_written") > 0);
}
both!(stats_general, &["-m", "32", "-t", "3", "-c", "100"]);

/// `stats reset` zeroes the counters, not the gauges.
fn stats_reset(server: &Server) {
    let mut c = server.connect();
    c.roundtrip("set a 0 0 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip("get a\r\n", "VALUE a 0 1\r\nx\r\nEND\r\n");
    c.roundtrip("get b\r\n", "END\r\n");
    let before = c.stats("");
    assert!(stat_u64(&before, "cmd_get") >= 2 && stat_u64(&before, "total_items") >= 1);
    c.roundtrip("stats reset\r\n", "RESET\r\n");
    let after = c.stats("");
    for name in [
        "cmd_get",
        "cmd_set",
        "get_hits",
        "get_misses",
        "total_items",
        "total_connections",
        "evictions",
    ] {
        assert_eq!(stat_u64(&after, name), 0, "{name} after stats reset");
    }
    assert_eq!(
        stat_u64(&after, "curr_items"),
        1,
        "curr_items is not a counter"
    );
    assert_eq!(
        stat_u64(&after, "curr_connections"),
        stat_u64(&before, "curr_connections")
    );
    assert_eq!(stat_u64(&after, "bytes"), stat_u64(&before, "bytes"));
    c.roundtrip("get a\r\n", "VALUE a 0 1\r\nx\r\nEND\r\n");
}
both!(stats_reset, &[]);

/// `stats settings` reflects the command line.
fn stats_settings_flags(server: &Server) {
    let mut c = server.connect();
    let s = c.stats("settings");
    assert_eq!(stat_u64(&s, "maxbytes"), 8 * 1024 * 1024, "-m 8");
    assert_eq!(stat_u64(&s, "maxconns"), 50, "-c 50");
    assert_eq!(stat_u64(&s, "item_size_max"), 2 * 1024 * 1024, "-I 2m");
    assert_eq!(stat_u64(&s, "num_threads"), 3, "-t 3");
    assert_eq!(stat_u64(&s, "reqs_per_event"), 7, "-R 7");
    assert_eq!(stat_str(&s, "cas_enabled"), "no", "-C");
    assert_eq!(stat_str(&s, "evictions"), "off", "-M");
    assert_eq!(stat_str(&s, "flush_enabled"), "no", "-F");
    assert_eq!(stat_str(&s, "shutdown_command"), "yes", "-A");
    assert_eq!(stat_u64(&s, "idle_timeout"), 30, "-o idle_timeout=30");
    // cache_memlimit changes maxbytes at run time
    c.roundtrip("cache_memlimit 100\r\n", "OK\r\n");
    assert_eq!(c.stat("settings", "maxbytes"), 100 * 1024 * 1024);
}
both!(
    stats_settings_flags,
    &[
        "-m",
        "8",
        "-c",
        "50",
        "-I",
        "2m",
        "-t",
        "3",
        "-R",
        "7",
        "-C",
        "-M",
        "-F",
        "-A",
        "-o",
        "idle_timeout=30"
    ]
);

/// The defaults, as memcached reports them.
fn stats_settings_defaults(server: &Server) {
    let mut c = server.connect();
    let s = c.stats("settings");
    assert_eq!(stat_u64(&s, "maxbytes"), 64 * 1024 * 1024);
    assert_eq!(stat_u64(&s, "maxconns"), 1024);
    assert_eq!(stat_u64(&s, "item_size_max"), 1024 * 1024);
    assert_eq!(stat_u64(&s, "num_threads"), 4);
    assert_eq!(stat_u64(&s, "reqs_per_event"), 20);
    assert_eq!(stat_str(&s, "cas_enabled"), "yes");
    assert_eq!(stat_str(&s, "evictions"), "on");
    assert_eq!(stat_str(&s, "flush_enabled"), "yes");
    assert_eq!(stat_str(&s, "shutdown_command"), "no");
    assert_eq!(stat_str(&s, "growth_factor"), "1.25");
    assert_eq!(stat_u64(&s, "chunk_size"), 48);
    assert_eq!(stat_str(&s, "binding_protocol"), "auto-negotiate");
    assert_eq!(stat_str(&s, "domain_socket"), "NULL");
    assert_eq!(stat_str(&s, "umask"), "700");
    assert_eq!(stat_u64(&s, "idle_timeout"), 0);
    assert_eq!(stat_u64(&s, "udpport"), 0);
}
both!(stats_settings_defaults, &[]);

/// `stats items` and `stats slabs`: per-class lines `<class>:<name>`, the
/// item counts adding up to curr_items.
fn stats_items_and_slabs(server: &Server) {
    let mut c = server.connect();
    let empty = c.stats("slabs");
    assert_eq!(
        stat_u64(&empty, "active_slabs"),
        0,
        "stats slabs on an empty cache"
    );
    stat_u64(&empty, "total_malloced");

    c.roundtrip("set small 0 0 1\r\nx\r\n", "STORED\r\n");
    let big = "y".repeat(3000);
    c.roundtrip(format!("set big 0 0 3000\r\n{big}\r\n"), "STORED\r\n");
    c.roundtrip(
        "set big2 0 0 3000\r\n".to_string() + &big + "\r\n",
        "STORED\r\n",
    );

    let class_of = |name: &str, prefix: &str| -> Option<(u32, String)> {
        let rest = name.strip_prefix(prefix)?;
        let (class, field) = rest.split_once(':')?;
        Some((class.parse().ok()?, field.to_string()))
    };

    let items = c.stats("items");
    let mut item_classes = BTreeSet::new();
    let mut number = 0;
    for (name, value) in &items {
        let (class, field) = class_of(name, "items:").unwrap_or_else(|| {
            panic!("stats items line `{name} {value}` is not items:<class>:<name>")
        });
        item_classes.insert(class);
        if field == "number" {
            number += value.parse::<u64>().expect("items:N:number");
        }
    }
    assert!(
        !item_classes.is_empty(),
        "stats items lists no class with items stored"
    );
    assert_eq!(number, 3, "sum of items:*:number = curr_items");
    assert_eq!(c.stat("", "curr_items"), 3);

    let slabs = c.stats("slabs");
    let mut slab_classes = BTreeSet::new();
    for (name, value) in &slabs {
        if name == "active_slabs" || name == "total_malloced" {
            value.parse::<u64>().expect("a number");
            continue;
        }
        let (class, field) = class_of(name, "")
            .unwrap_or_else(|| panic!("stats slabs line `{name} {value}` is not <class>:<name>"));
        if field == "chunk_size" {
            assert!(value.parse::<u64>().expect("chunk_size") > 0);
            slab_classes.insert(class);
        }
    }
    assert!(stat_u64(&slabs, "active_slabs") >= 1);
    assert!(stat_u64(&slabs, "total_malloced") > 0);
    assert!(
        item_classes.is_subset(&slab_classes),
        "classes in stats items {item_classes:?} missing from stats slabs {slab_classes:?}"
    );
}
both!(stats_items_and_slabs, &[]);

/// `stats conns` lists this very connection.
fn stats_conns(server: &Server) {
    let mut c = server.connect();
    let me = format!("tcp:{}", c.tcp().local_addr().unwrap());
    let conns = c.stats("conns");
    for (name, value) in &conns {
        let (fd, _field) = name
            .split_once(':')
            .unwrap_or_else(|| panic!("stats conns line `{name} {value}` is not <id>:<name>"));
        fd.parse::<u64>().expect("connection id is a number");
    }
    assert!(
        conns.iter().any(|(n, v)| n.ends_with(":addr") && *v == me),
        "this connection ({me}) is not in stats conns: {conns:?}"
    );
}
both!(stats_conns, &[]);

/// Pipelines `n` noreply sets of `value_len` bytes from `first`, in batches,
/// syncing after each batch.
fn fill(c: &mut Conn, first: usize, n: usize, value_len: usize) {
    let value = vec![b'v'; value_len];
    for batch in (first..first + n).step_by(100) {
        let mut req = Vec::new();
        for i in batch..(batch + 100).min(first + n) {
            req.extend_from_slice(format!("set key{i} 0 0 {value_len} noreply\r\n").as_bytes());
            req.extend_from_slice(&value);
            req.extend_from_slice(b"\r\n");
        }
        c.send(&req);
        c.roundtrip("get sync\r\n", "END\r\n");
    }
}

/// Under -m 2, writing 10 MB evicts old items: the server keeps answering,
/// recent items are readable, stats account for the evictions.
fn eviction(server: &Server) {
    let mut c = server.connect();
    let n = 10_000;
    fill(&mut c, 0, n, 1000);
    let value = "v".repeat(1000);
    for i in n - 50..n {
        c.roundtrip(
            format!("get key{i}\r\n"),
            format!("VALUE key{i} 0 1000\r\n{value}\r\nEND\r\n"),
        );
    }
    let s = c.stats("");
    let curr = stat_u64(&s, "curr_items");
    assert!(
        curr < n as u64,
        "{curr} items of 1000 bytes kept under -m 2"
    );
    assert!(
        curr >= 1000,
        "only {curr} items of 1000 bytes kept under -m 2 (memcached keeps ~1770)"
    );
    assert!(stat_u64(&s, "evictions") > 0, "evictions stat");
    assert_eq!(
        stat_u64(&s, "evictions") + curr,
        n as u64,
        "every item is kept or evicted"
    );
    assert_eq!(stat_u64(&s, "total_items"), n as u64);
    // `stats items` splits them by class, the active ones too
    let items = c.stats("items");
    let per_class = |field: &str| -> u64 {
        let suffix = format!(":{field}");
        let lines = items.iter().filter(|(name, _)| name.ends_with(&suffix));
        let values: Vec<u64> = lines.map(|(_, v)| v.parse().unwrap()).collect();
        assert!(!values.is_empty(), "no items:<class>{suffix}");
        values.iter().sum()
    };
    assert_eq!(per_class("evicted"), stat_u64(&s, "evictions"));
    assert_eq!(per_class("evicted_active"), stat_u64(&s, "evicted_active"));
    assert!(
        stat_u64(&s, "bytes") <= stat_u64(&s, "limit_maxbytes"),
        "bytes over limit_maxbytes"
    );
    c.roundtrip("get key0\r\n", "END\r\n");
    c.roundtrip("set after 0 0 1\r\nx\r\n", "STORED\r\n");
}
both!(eviction, &["-m", "2"]);

/// With -M a full cache refuses writes instead of evicting.
fn out_of_memory(server: &Server) {
    let mut c = server.connect();
    let value = "v".repeat(1000);
    let mut refused_at = None;
    for i in 0..10_000 {
        c.send(format!("set key{i} 0 0 1000\r\n{value}\r\n"));
        let line = c.read_line();
        match line.as_slice() {
            b"STORED\r\n" => {}
            b"SERVER_ERROR out of memory storing object\r\n" => {
                refused_at = Some(i);
                break;
            }
            other => panic!("set key{i}: {}", common::escape(other)),
        }
    }
    let refused_at = refused_at.expect("-m 2 -M took 10 MB without refusing");
    assert!(
        refused_at >= 500,
        "refused after only {refused_at} KB under -m 2"
    );
    // nothing was evicted: the first item is still there
    c.roundtrip(
        "get key0\r\n",
        format!("VALUE key0 0 1000\r\n{value}\r\nEND\r\n"),
    );
    // still full for the refused key: noreply hides the error (another
    // key may land where ferrocache still has room: its memory is split
    // over shards, as memcached's is over slab classes)
    let refused = format!("key{refused_at}");
    c.roundtrip(format!("set {refused} 0 0 1000 noreply\r\n{value}\r\n"), "");
    c.roundtrip(format!("get {refused}\r\n"), "END\r\n");
    let s = c.stats("");
    assert_eq!(stat_u64(&s, "evictions"), 0);
    assert_eq!(stat_u64(&s, "curr_items"), refused_at as u64);
    // deleting makes room again for as much again
    for i in 0..20 {
        c.roundtrip(format!("delete key{i}\r\n"), "DELETED\r\n");
    }
    for i in 0..20 {
        c.roundtrip(format!("set key{i} 0 0 1000\r\n{value}\r\n"), "STORED\r\n");
    }
}
both!(out_of_memory, &["-m", "2", "-M"]);
