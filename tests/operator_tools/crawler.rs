//! `lru_crawler`: its replies and switches, `metadump` (what it lists, how
//! it encodes keys, streaming a big dump without stalling the server),
//! `crawl` reclaiming expired items, and the crawler settings.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::thread;
use std::time::Duration;

use crate::common::{eventually, stat_str, stat_u64, Conn, Server};

use super::{fields, num, small_rcvbuf, Table, NO_AUTOCRAWL};

/// Reads one `lru_crawler metadump` reply: its lines (each must end in a
/// lone `\n`) up to `END\r\n`.
fn read_dump(conn: &mut Conn) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let line = conn.read_line();
        if line == b"END\r\n" {
            return lines;
        }
        assert!(
            line.starts_with(b"key=") && !line.ends_with(b"\r\n"),
            "not a metadump line: {}",
            crate::common::escape(&line)
        );
        let text = String::from_utf8(line).expect("metadump lines are ASCII");
        lines.push(text.trim_end_matches('\n').to_string());
    }
}

/// [`read_dump`] for big dumps: buffered reads on the connection's socket
/// (the connection must have no bytes pending).
fn read_big_dump(conn: &Conn) -> Vec<String> {
    use std::io::BufRead;
    let stream = conn.tcp().try_clone().expect("clone");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, stream);
    let mut lines = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        reader.read_until(b'\n', &mut line).expect("read dump");
        if line == b"END\r\n" {
            return lines;
        }
        assert!(
            line.starts_with(b"key=") && line.ends_with(b"\n") && !line.ends_with(b"\r\n"),
            "not a metadump line: {}",
            crate::common::escape(&line)
        );
        lines.push(String::from_utf8(line[..line.len() - 1].to_vec()).expect("ASCII"));
    }
}

// ------------------------------------------------------------ lru_crawler

const LRU_CRAWLER: Table = &[
    (b"lru_crawler\r\n", b"ERROR\r\n"),
    (b"lru_crawler bogus\r\n", b"ERROR\r\n"),
    (b"lru_crawler metadump\r\n", b"ERROR\r\n"),
    (b"lru_crawler metadump all extra\r\n", b"ERROR\r\n"),
    (b"lru_crawler metadump all noreply\r\n", b"ERROR\r\n"),
    (b"lru_crawler mgdump all\r\n", b"ERROR\r\n"),
    // an empty cache dumps nothing, by any selection
    (b"lru_crawler metadump all\r\n", b"END\r\n"),
    (b"lru_crawler metadump hash\r\n", b"END\r\n"),
    (b"lru_crawler metadump 1,2\r\n", b"END\r\n"),
    (b"lru_crawler metadump ,1,\r\n", b"END\r\n"),
    (b"lru_crawler metadump 63\r\n", b"END\r\n"),
    (b"lru_crawler metadump 4294967297\r\n", b"END\r\n"),
    (
        b"lru_crawler metadump 0\r\n",
        b"BADCLASS invalid class id\r\n",
    ),
    (
        b"lru_crawler metadump 64\r\n",
        b"BADCLASS invalid class id\r\n",
    ),
    (
        b"lru_crawler metadump x\r\n",
        b"BADCLASS invalid class id\r\n",
    ),
    (
        b"lru_crawler metadump -1\r\n",
        b"BADCLASS invalid class id\r\n",
    ),
    (
        b"lru_crawler metadump 1,all\r\n",
        b"BADCLASS invalid class id\r\n",
    ),
    (
        b"lru_crawler metadump 1,99\r\n",
        b"BADCLASS invalid class id\r\n",
    ),
    (b"lru_crawler tocrawl 5\r\n", b"OK\r\n"),
    (b"lru_crawler tocrawl 99999999999\r\n", b"OK\r\n"),
    (b"lru_crawler tocrawl\r\n", b"ERROR\r\n"),
    (b"lru_crawler tocrawl 5 6\r\n", b"ERROR\r\n"),
    (
        b"lru_crawler tocrawl x\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (
        b"lru_crawler tocrawl -1\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (
        b"lru_crawler tocrawl 12abc\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (b"lru_crawler sleep 10\r\n", b"OK\r\n"),
    (b"lru_crawler sleep 1000000\r\n", b"OK\r\n"),
    (
        b"lru_crawler sleep 1000001\r\n",
        b"CLIENT_ERROR sleep must be one second or less\r\n",
    ),
    (
        b"lru_crawler sleep -1\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (b"lru_crawler sleep\r\n", b"ERROR\r\n"),
    // already running
    (
        b"lru_crawler enable\r\n",
        b"ERROR failed to start lru crawler thread\r\n",
    ),
    (
        b"lru_crawler  enable\r\n",
        b"ERROR failed to start lru crawler thread\r\n",
    ),
    (b"lru_crawler enable x\r\n", b"ERROR\r\n"),
    (b"lru_crawler disable x\r\n", b"ERROR\r\n"),
    (b"lru_crawler disable\r\n", b"OK\r\n"),
    (b"lru_crawler disable\r\n", b"OK\r\n"),
];

/// After `lru_crawler disable` (once memcached's crawler thread has
/// stopped, a moment after it answered: until then a dump may be `ERROR an
/// unknown error happened`).
const LRU_CRAWLER_DISABLED: Table = &[
    // the state is checked before the class list
    (
        b"lru_crawler metadump all\r\n",
        b"CLIENT_ERROR lru crawler disabled\r\n",
    ),
    (
        b"lru_crawler metadump 99\r\n",
        b"CLIENT_ERROR lru crawler disabled\r\n",
    ),
    (
        b"lru_crawler crawl all\r\n",
        b"CLIENT_ERROR lru crawler disabled\r\n",
    ),
    (
        b"lru_crawler crawl hash\r\n",
        b"CLIENT_ERROR lru crawler disabled\r\n",
    ),
    (b"lru_crawler enable\r\n", b"OK\r\n"),
    (b"lru_crawler crawl\r\n", b"ERROR\r\n"),
    (b"lru_crawler crawl all 1\r\n", b"ERROR\r\n"),
    (
        b"lru_crawler crawl 99\r\n",
        b"BADCLASS invalid class id\r\n",
    ),
    (b"lru_crawler crawl x\r\n", b"BADCLASS invalid class id\r\n"),
    (
        b"lru_crawler crawl hash\r\n",
        b"ERROR an unknown error happened\r\n",
    ),
    (b"lru_crawler crawl all\r\n", b"OK\r\n"),
];

fn lru_crawler_replies(server: &Server) {
    crate::common::transcript(server, LRU_CRAWLER);
    let mut c = server.connect();
    let stopped = eventually(Duration::from_secs(10), || {
        stat_str(&c.stats("settings"), "lru_crawler") == "no"
    });
    assert!(stopped, "the crawler did not stop");
    crate::common::transcript(server, LRU_CRAWLER_DISABLED);
}
both!(lru_crawler_replies, super::NO_AUTOCRAWL);

/// A class list without a class. (Each on a server of its own: memcached
/// 1.6.18's crawler is left in a state where later dumps and crawls answer
/// `ERROR an unknown error happened` or `BUSY` for a while.)
const DUMP_NO_CLASS: Table = &[(
    b"lru_crawler metadump ,\r\n",
    b"NOTSTARTED no items to crawl\r\n",
)];
table!(metadump_without_a_class, super::NO_AUTOCRAWL, DUMP_NO_CLASS);

const CRAWL_NO_CLASS: Table = &[(
    b"lru_crawler crawl ,,\r\n",
    b"NOTSTARTED no items to crawl\r\n",
)];
table!(crawl_without_a_class, super::NO_AUTOCRAWL, CRAWL_NO_CLASS);

/// A dump pipelined behind a reply not sent yet is refused (after the
/// crawler's state and -X are checked, before the class list); after a
/// get it is taken. One dump only per server: memcached's crawler may
/// still be busy with a dump that has just ended.
const DUMP_PIPELINED: Table = &[
    (
        b"lru_crawler tocrawl 0\r\nlru_crawler metadump 99\r\nmn\r\n",
        b"OK\r\nERROR cannot pipeline other commands before metadump\r\nMN\r\n",
    ),
    (b"get a\r\nlru_crawler metadump all\r\n", b"END\r\nEND\r\n"),
];
table!(metadump_pipelined, super::NO_AUTOCRAWL, DUMP_PIPELINED);

/// One requested crawl at a time: a second one while the first runs is
/// `BUSY` (a crawl takes a while on either server, so the second of two
/// sent together nearly always finds the first running).
fn second_crawl_is_busy(server: &Server) {
    let mut c = server.connect();
    for i in 0..2000 {
        c.send(format!("set k{i} 0 0 1 noreply\r\nx\r\n"));
    }
    c.roundtrip("mn\r\n", "MN\r\n");
    let mut seen = Vec::new();
    let busy = eventually(Duration::from_secs(30), || {
        c.send("lru_crawler crawl all\r\nlru_crawler crawl all\r\n");
        let first = c.read_line();
        let second = c.read_line();
        seen.push((
            crate::common::escape(&first),
            crate::common::escape(&second),
        ));
        second == b"BUSY currently processing crawler request\r\n"
    });
    assert!(busy, "never BUSY: {seen:?}");
    // and the crawl ends: a later one is taken
    let taken = eventually(Duration::from_secs(30), || {
        c.send("lru_crawler crawl all\r\n");
        c.read_line() == b"OK\r\n"
    });
    assert!(taken, "still busy");
}
both!(second_crawl_is_busy, super::NO_AUTOCRAWL);

const DUMP_REFUSED: Table = &[
    (
        b"lru_crawler metadump all\r\n",
        b"ERROR metadump not allowed\r\n",
    ),
    (
        b"lru_crawler metadump 99\r\n",
        b"ERROR metadump not allowed\r\n",
    ),
];
table!(metadump_refused_under_x, &["-X"], DUMP_REFUSED);

/// The crawler's state is checked before `-X` (as memcached 1.6.18 does;
/// there its crawler thread stops a moment after `disable` answers, so a
/// dump right after it may still be refused as not allowed: checked
/// against ferrocache alone).
#[test]
fn metadump_under_x_with_the_crawler_disabled() {
    let server = Server::ferrocache(&["-X"]);
    let steps: Table = &[
        (b"lru_crawler disable\r\n", b"OK\r\n"),
        (
            b"lru_crawler metadump all\r\n",
            b"CLIENT_ERROR lru crawler disabled\r\n",
        ),
    ];
    crate::common::transcript(&server, steps);
}

fn crawler_settings_are_reported(server: &Server) {
    let mut c = server.connect();
    let s = c.stats("settings");
    assert_eq!(stat_str(&s, "lru_crawler"), "yes");
    assert_eq!(stat_u64(&s, "lru_crawler_sleep"), 100);
    assert_eq!(stat_u64(&s, "lru_crawler_tocrawl"), 0);
    c.roundtrip("lru_crawler sleep 50\r\n", "OK\r\n");
    c.roundtrip("lru_crawler tocrawl 4294967296\r\n", "OK\r\n");
    let s = c.stats("settings");
    assert_eq!(stat_u64(&s, "lru_crawler_sleep"), 50);
    assert_eq!(stat_u64(&s, "lru_crawler_tocrawl"), 0, "32-bit truncation");
    c.roundtrip("lru_crawler tocrawl 7\r\n", "OK\r\n");
    c.roundtrip("lru_crawler disable\r\n", "OK\r\n");
    // memcached's crawler thread notes the stop a moment later under load
    let mut s = c.stats("settings");
    let stopped = eventually(Duration::from_secs(5), || {
        s = c.stats("settings");
        stat_str(&s, "lru_crawler") == "no"
    });
    assert!(stopped, "lru_crawler still {}", stat_str(&s, "lru_crawler"));
    assert_eq!(stat_u64(&s, "lru_crawler_tocrawl"), 7);
}
both!(crawler_settings_are_reported, &[]);

fn crawler_options_on_the_command_line(server: &Server) {
    let mut c = server.connect();
    let s = c.stats("settings");
    assert_eq!(stat_str(&s, "lru_crawler"), "no");
    assert_eq!(stat_u64(&s, "lru_crawler_sleep"), 50);
    assert_eq!(stat_u64(&s, "lru_crawler_tocrawl"), 7);
    c.roundtrip(
        "lru_crawler metadump all\r\n",
        "CLIENT_ERROR lru crawler disabled\r\n",
    );
}
both!(
    crawler_options_on_the_command_line,
    &[
        "-o",
        "no_lru_crawler,lru_crawler_sleep=50,lru_crawler_tocrawl=7"
    ]
);

/// Stores a few items and checks every field of their metadump lines
/// (`size=` is each server's own item size: checked against the class's
/// chunk size and the item's bytes).
fn metadump_lists_live_items(server: &Server) {
    let mut c = server.connect();
    c.roundtrip("set a 0 0 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip("set a%b:c\t\u{e9} 5 0 2\r\nyz\r\n", "STORED\r\n");
    c.roundtrip("set e 0 100 1\r\nx\r\n", "STORED\r\n");
    let big = "v".repeat(5000);
    c.roundtrip(format!("set big 0 0 5000\r\n{big}\r\n"), "STORED\r\n");
    c.roundtrip("set gone 0 0 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip("delete gone\r\n", "DELETED\r\n");
    c.roundtrip("set dead 0 -1 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip("get a\r\n", "VALUE a 0 1\r\nx\r\nEND\r\n");
    let now = stat_u64(&c.stats(""), "time") as i64;

    c.send("lru_crawler metadump all\r\n");
    let lines = read_dump(&mut c);
    let by_key: BTreeMap<&str, HashMap<&str, &str>> = lines
        .iter()
        .map(|l| {
            let f = fields(l);
            (f["key"], f)
        })
        .collect();
    assert_eq!(by_key.len(), lines.len(), "a key listed twice: {lines:?}");
    let keys: Vec<&str> = by_key.keys().copied().collect();
    assert_eq!(keys, ["a", "a%25b%3Ac%09%C3%A9", "big", "e"], "{lines:?}");
    // each item's unique, as `gets` reports it
    for (key, f) in &by_key {
        let raw = match *key {
            "a%25b%3Ac%09%C3%A9" => "a%b:c\t\u{e9}",
            k => k,
        };
        let (_, _, cas) = c.gets(raw);
        assert_eq!(num(f, "cas"), cas as i64, "{key}'s unique");
    }
    let cas: HashSet<i64> = by_key.values().map(|f| num(f, "cas")).collect();
    assert_eq!(cas.len(), 4, "distinct uniques: {lines:?}");
    assert_eq!(by_key["a"]["fetch"], "yes");
    assert_eq!(by_key["e"]["fetch"], "no");
    assert_eq!(num(&by_key["a"], "exp"), -1);
    let exp = num(&by_key["e"], "exp");
    assert!(
        (now + 98..=now + 101).contains(&exp),
        "exp {exp}, now {now}"
    );
    // ferrocache keeps an item stored already expired (and counts it in
    // `stats items`) until it is met; memcached does not count it
    c.roundtrip("get dead\r\n", "END\r\n");
    let slabs = c.stats("slabs");
    let items = c.stats("items");
    let mut per_class: HashMap<i64, u64> = HashMap::new();
    for f in by_key.values() {
        let la = num(f, "la");
        assert!((now - 3..=now + 1).contains(&la), "la {la}, now {now}");
        let class = num(f, "cls");
        *per_class.entry(class).or_default() += 1;
        let size = num(f, "size");
        let chunk = stat_u64(&slabs, &format!("{class}:chunk_size")) as i64;
        assert!(
            size <= chunk,
            "size {size} over class {class} chunk {chunk}"
        );
    }
    assert!(num(&by_key["big"], "size") > 5003);
    assert!(num(&by_key["big"], "cls") > num(&by_key["a"], "cls"));
    for (class, n) in &per_class {
        assert_eq!(stat_u64(&items, &format!("items:{class}:number")), *n);
    }
    // one class only
    let big_class = num(&by_key["big"], "cls");
    c.send(format!("lru_crawler metadump {big_class}\r\n"));
    let only = read_dump(&mut c);
    assert_eq!(only.len(), 1);
    assert!(only[0].starts_with("key=big "), "{only:?}");
    // flushed items are gone
    c.roundtrip("flush_all\r\n", "OK\r\n");
    c.roundtrip("lru_crawler metadump all\r\n", "END\r\n");
}
both!(metadump_lists_live_items, &[]);

/// Keys are URL-encoded byte by byte, a key stored in binary (meta `b`)
/// too: its raw bytes, not its base64 form.
fn metadump_encodes_keys(server: &Server) {
    let mut c = server.connect();
    c.roundtrip("set a+b~c.d_e-f 0 0 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip("ms AAEC/w== 1 b\r\nx\r\n", "HD\r\n");
    c.roundtrip("ms Zm9vIGJhcg== 1 b\r\nx\r\n", "HD\r\n");
    c.send("lru_crawler metadump all\r\n");
    let keys: BTreeSet<String> = read_dump(&mut c)
        .iter()
        .map(|l| fields(l)["key"].to_string())
        .collect();
    let want: BTreeSet<String> = ["a%2Bb~c.d_e-f", "%00%01%02%FF", "foo%20bar"]
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(keys, want);
}
both!(metadump_encodes_keys, &[]);

/// memcached's `lru_crawler crawl` reclaims expired items it walks over.
fn crawl_reclaims_expired_items(server: &Server) {
    let mut c = server.connect();
    for i in 0..200 {
        c.send(format!("set exp{i} 0 1 1 noreply\r\nx\r\n"));
    }
    c.roundtrip("set keeps 0 0 1\r\nx\r\n", "STORED\r\n");
    // real time has to pass for the items to expire (memcached's clock)
    thread::sleep(Duration::from_millis(2200));
    c.roundtrip("lru_crawler crawl all\r\n", "OK\r\n");
    let done = eventually(Duration::from_secs(20), || c.stat("", "curr_items") == 1);
    assert!(done, "expired items still counted after a crawl");
    // memcached's crawl may still be walking other classes once the count
    // is down: its metadump then answers BUSY until the crawl ends
    let mut left = None;
    let idle = eventually(Duration::from_secs(20), || {
        c.send("lru_crawler metadump all\r\n");
        let line = c.read_line();
        if line.starts_with(b"BUSY") {
            return false;
        }
        let mut rest = vec![String::from_utf8_lossy(&line).trim_end().to_string()];
        if line != b"END\r\n" {
            rest.extend(read_dump(&mut c));
        } else {
            rest.clear();
        }
        left = Some(rest);
        true
    });
    assert!(idle, "the crawler stayed busy");
    let left = left.expect("a dump");
    assert_eq!(left.len(), 1);
    assert!(left[0].starts_with("key=keeps "));
    // `stats items` counts them per class, as the global stat does
    let per_class: u64 = c
        .stats("items")
        .iter()
        .filter(|(name, _)| name.ends_with(":crawler_reclaimed"))
        .map(|(_, v)| v.parse::<u64>().unwrap())
        .sum();
    let total = c.stat("", "crawler_reclaimed");
    assert_eq!(per_class, total, "items:<class>:crawler_reclaimed");
    if !server.is_memcached() {
        // (memcached's LRU maintainer may reclaim them before its crawler)
        assert_eq!(total, 200);
    }
}
both!(crawl_reclaims_expired_items, &[]);

/// ferrocache: `lru_crawler disable` stops the background expirer too (as
/// memcached's crawler is its background reclaimer); expired items then go
/// only when met, until `enable` and a crawl.
#[test]
fn disabled_crawler_leaves_expired_items_until_a_crawl() {
    let server = Server::ferrocache(&[]);
    let mut c = server.connect();
    c.roundtrip("lru_crawler disable\r\n", "OK\r\n");
    for i in 0..100 {
        c.send(format!("set exp{i} 0 1 1 noreply\r\nx\r\n"));
    }
    c.roundtrip("set keeps 0 0 1\r\nx\r\n", "STORED\r\n");
    thread::sleep(Duration::from_millis(2500));
    assert_eq!(c.stat("", "curr_items"), 101, "swept while disabled");
    // a dump never lists them
    c.roundtrip(
        "lru_crawler metadump all\r\n",
        "CLIENT_ERROR lru crawler disabled\r\n",
    );
    c.roundtrip("lru_crawler enable\r\n", "OK\r\n");
    c.send("lru_crawler metadump all\r\n");
    assert_eq!(read_dump(&mut c).len(), 1);
    c.roundtrip("lru_crawler crawl all\r\n", "OK\r\n");
    assert!(eventually(Duration::from_secs(20), || c
        .stat("", "curr_items")
        == 1));
    assert_eq!(c.stat("", "crawler_reclaimed"), 100);
}

/// A dump streams: a client that stops reading stalls only its own dump;
/// other dumps and other clients are served meanwhile, and items written
/// or deleted during the dump do not disturb the rest (each key once).
#[test]
fn metadump_streams_without_stalling_the_server() {
    let server = Server::ferrocache(&["-t", "2"]);
    let mut loader = server.connect();
    const N: usize = 40_000;
    let mut batch = String::new();
    for i in 0..N {
        batch.push_str(&format!(
            "set key:{i:06}:{} 0 0 4 noreply\r\n{:04}\r\n",
            "p".repeat(200),
            i % 10_000
        ));
        if batch.len() > 1 << 20 {
            loader.send(&batch);
            batch.clear();
        }
    }
    loader.send(&batch);
    loader.roundtrip("set fence 0 0 1\r\nx\r\n", "STORED\r\n");
    assert_eq!(loader.stat("", "curr_items"), N as u64 + 1);

    let mut slow = server.connect();
    small_rcvbuf(&slow);
    slow.send("lru_crawler metadump all\r\n");
    thread::sleep(Duration::from_millis(300)); // its socket buffers fill

    // meanwhile: a second dump, reads and writes on other connections
    let mut other = server.connect();
    other.send("lru_crawler metadump all\r\n");
    let second = read_big_dump(&other);
    assert_eq!(second.len(), N + 1, "a concurrent dump is complete");
    loader.roundtrip("get fence\r\n", "VALUE fence 0 1\r\nx\r\nEND\r\n");
    for i in 0..500 {
        loader.send(format!("set new{i} 0 0 1 noreply\r\nx\r\n"));
        loader.send(format!("delete key:{i:06}:{} noreply\r\n", "p".repeat(200)));
    }
    loader.send("version\r\n");
    loader.expect_line_prefix("VERSION ");

    let first = read_big_dump(&slow);
    let keys: Vec<&str> = first.iter().map(|l| fields(l)["key"]).collect();
    let unique: HashSet<&str> = keys.iter().copied().collect();
    assert_eq!(unique.len(), keys.len(), "a key listed twice");
    for i in 500..N {
        let key = format!("key%3A{i:06}%3A{}", "p".repeat(200));
        assert!(unique.contains(key.as_str()), "{key} missing");
    }
    assert!(unique.contains("fence"));
    // what was deleted or written meanwhile may or may not be there
    assert!(keys.len() <= N + 1 + 500);
}
