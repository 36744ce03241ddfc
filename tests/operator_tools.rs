//! The tools operators point at memcached, pointed at ferrocache: Debian's
//! memcached-tool (display, stats, settings, sizes, dump), libmemcached's
//! memcstat, damemtop; and the commands behind them: `lru_crawler`
//! (metadump, crawl, its switches), `watch` log streams, and `-vv` logging.
//!
//! Replies that must be byte-identical run as transcripts against both
//! servers; where ferrocache legitimately differs (`size=` is its own item
//! size, timestamps, descriptors) the tests parse and compare the rest.
//! Outside tools missing from the machine skip loudly (and fail under CI).

#[macro_use]
mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use common::tools::{require, Process};
use common::{eventually, stat_str, stat_u64, temp_path, Conn, Server, Target};

type Table = &'static [(&'static [u8], &'static [u8])];

const MEMCACHED_TOOL: &str = "/usr/share/memcached/scripts/memcached-tool";
const DAMEMTOP: &str = "/usr/share/memcached/scripts/damemtop";
const MEMCSTAT: &str = "/usr/bin/memcstat";

fn perl_tool(path: &str) -> bool {
    Path::new(path).exists()
        && Command::new("perl")
            .args(["-c", path])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
}

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
            common::escape(&line)
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
            common::escape(&line)
        );
        lines.push(String::from_utf8(line[..line.len() - 1].to_vec()).expect("ASCII"));
    }
}

/// `key=… exp=… …` → field map.
fn fields(line: &str) -> HashMap<&str, &str> {
    line.split(' ')
        .map(|f| {
            f.split_once('=')
                .unwrap_or_else(|| panic!("field {f:?} in {line:?}"))
        })
        .collect()
}

fn num(f: &HashMap<&str, &str>, name: &str) -> i64 {
    f[name]
        .parse()
        .unwrap_or_else(|_| panic!("{name}={} is not a number", f[name]))
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
/// memcached's LRU maintainer starts crawls of its own (at start-up and
/// as items come and go), which make a requested crawl or dump `BUSY` or
/// `ERROR an unknown error happened` for a moment: off for the crawler
/// transcripts (ferrocache accepts the option and has no such thread).
const NO_AUTOCRAWL: &[&str] = &["-o", "no_lru_maintainer"];

fn lru_crawler_replies(server: &Server) {
    common::transcript(server, LRU_CRAWLER);
    let mut c = server.connect();
    let stopped = eventually(Duration::from_secs(10), || {
        stat_str(&c.stats("settings"), "lru_crawler") == "no"
    });
    assert!(stopped, "the crawler did not stop");
    common::transcript(server, LRU_CRAWLER_DISABLED);
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
        seen.push((common::escape(&first), common::escape(&second)));
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
    common::transcript(&server, steps);
}

const WATCH_REFUSED: Table = &[
    (b"watch\r\n", b"CLIENT_ERROR watch commands not allowed\r\n"),
    // -W is checked before the pipeline, and noreply silences it
    (
        b"set a 0 0 1\r\nx\r\nwatch\r\n",
        b"STORED\r\nCLIENT_ERROR watch commands not allowed\r\n",
    ),
    (b"watch fetchers noreply\r\nmn\r\n", b"MN\r\n"),
];
table!(watch_refused_under_w, &["-W"], WATCH_REFUSED);

const WATCH_ERRORS: Table = &[
    (b"watch deletions\r\n", b"ERROR\r\n"),
    (b"watch fetchers bogus\r\n", b"ERROR\r\n"),
    (b"watchx\r\n", b"ERROR\r\n"),
];
table!(watch_unknown_streams, &[], WATCH_ERRORS);

/// memcached refuses a `watch` pipelined behind replies it has not sent
/// yet (it sends them when the input runs out, and after a get or `mn`),
/// and a `watch` ending in `noreply` answers nothing (the word is unknown,
/// and its `ERROR` is not sent); the connection goes on either way.
const WATCH_PIPELINED: Table = &[
    (
        b"set a 0 0 1\r\nx\r\nwatch mutations\r\nmn\r\n",
        b"STORED\r\nERROR cannot pipeline other commands before watch\r\nMN\r\n",
    ),
    (
        b"delete a noreply\r\nwatch\r\nmn\r\n",
        b"ERROR cannot pipeline other commands before watch\r\nMN\r\n",
    ),
    (
        b"mg a v q\r\nwatch\r\nwatch\r\nmn\r\n",
        b"ERROR cannot pipeline other commands before watch\r\n\
          ERROR cannot pipeline other commands before watch\r\nMN\r\n",
    ),
    (b"watch noreply\r\nmn\r\n", b"MN\r\n"),
    (b"watch fetchers noreply\r\nmn\r\n", b"MN\r\n"),
    (b"watch bogus noreply\r\nmn\r\n", b"MN\r\n"),
];

/// A watch pipelined behind a get, or behind `mn`, is taken: memcached sent
/// what was stacked first.
fn watch_pipelined(server: &Server) {
    common::transcript(server, WATCH_PIPELINED);
    for (request, reply) in [
        (
            "set a 0 0 1\r\nx\r\nget a\r\nwatch\r\n",
            "STORED\r\nVALUE a 0 1\r\nx\r\nEND\r\nOK\r\n",
        ),
        (
            "set a 0 0 1\r\nx\r\nmn\r\nwatch\r\n",
            "STORED\r\nMN\r\nOK\r\n",
        ),
    ] {
        let mut w = server.connect();
        w.roundtrip(request, reply);
        // it watches: another connection's read shows up
        let mut c = server.connect();
        c.roundtrip("get a\r\n", "VALUE a 0 1\r\nx\r\nEND\r\n");
        let line = normalize(&watch_lines(&mut w, 1)[0]);
        assert_eq!(
            line,
            "type=item_get key=a status=found clsid=1 cfd=F size=1"
        );
    }
}
both!(watch_pipelined, &[]);

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
    let cas: HashSet<i64> = by_key.values().map(|f| num(f, "cas")).collect();
    assert_eq!(cas, HashSet::from([1, 2, 3, 4]), "cas uniques in order");
    assert_eq!(num(&by_key["a"], "cas"), 1);
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
    c.send("lru_crawler metadump all\r\n");
    let left = read_dump(&mut c);
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

/// A fixed 64 KiB receive buffer (no autotuning), so a client that does
/// not read fills up soon. (Smaller than the loopback MSS, TCP's
/// silly-window avoidance would make even a reading client crawl.)
fn small_rcvbuf(conn: &Conn) {
    let size: libc::c_int = 64 * 1024;
    // SAFETY: setsockopt on a socket we own, with a valid int option.
    let r = unsafe {
        libc::setsockopt(
            conn.tcp().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const libc::c_int as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "setsockopt SO_RCVBUF");
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

// ------------------------------------------------------------------ watch

/// A watch line with its varying parts replaced: `ts=T gid=G` and
/// `cfd=F`. Checks those parts' shapes first.
fn normalize(line: &str) -> String {
    let rest = line
        .strip_prefix("ts=")
        .unwrap_or_else(|| panic!("no ts= in {line:?}"));
    let (ts, rest) = rest.split_once(' ').expect("ts then gid");
    let (secs, micros) = ts.split_once('.').expect("ts=secs.micros");
    assert!(secs.parse::<u64>().is_ok() && micros.parse::<u32>().is_ok_and(|u| u < 1_000_000));
    let (gid, rest) = rest
        .strip_prefix("gid=")
        .and_then(|r| r.split_once(' '))
        .expect("gid=");
    assert!(gid.parse::<u64>().is_ok(), "gid {gid}");
    rest.split(' ')
        .map(|f| match f.split_once('=') {
            Some(("cfd", v)) => {
                assert!(v.parse::<i32>().is_ok_and(|fd| fd > 0), "cfd={v}");
                "cfd=F".to_string()
            }
            _ => f.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads `n` watch lines (each ending in a lone `\n`).
fn watch_lines(w: &mut Conn, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let line = w.read_line();
            assert!(!line.ends_with(b"\r\n"), "watch lines end in \\n alone");
            String::from_utf8(line)
                .expect("ASCII")
                .trim_end()
                .to_string()
        })
        .collect()
}

fn start_watch(server: &Server, streams: &str) -> Conn {
    let mut w = server.connect();
    w.roundtrip(format!("watch{streams}\r\n"), "OK\r\n");
    w
}

fn watch_fetchers(server: &Server) {
    let mut c = server.connect();
    c.roundtrip("set k 0 0 3\r\nabc\r\n", "STORED\r\n");
    let mut w = start_watch(server, "");
    c.roundtrip("get k\r\n", "VALUE k 0 3\r\nabc\r\nEND\r\n");
    c.roundtrip("get nokey\r\n", "END\r\n");
    c.roundtrip("gets k a%b\r\n", "VALUE k 0 3 1\r\nabc\r\nEND\r\n");
    c.roundtrip("touch k 0\r\n", "TOUCHED\r\n");
    c.roundtrip("gat 0 k\r\n", "VALUE k 0 3\r\nabc\r\nEND\r\n");
    // writes log the lookup they make first
    c.roundtrip("set n 0 0 1\r\n1\r\n", "STORED\r\n");
    c.roundtrip("incr n 2\r\n", "3\r\n");
    c.roundtrip("append n 0 0 1\r\n2\r\n", "STORED\r\n");
    c.roundtrip("delete n\r\n", "DELETED\r\n");
    c.roundtrip("delete n\r\n", "NOT_FOUND\r\n");
    c.roundtrip("flush_all\r\n", "OK\r\n");
    c.roundtrip("get k\r\n", "END\r\n");
    let mut got: Vec<String> = watch_lines(&mut w, 12)
        .iter()
        .map(|l| normalize(l))
        .collect();
    // a flushed item the background reaper (memcached's crawler,
    // ferrocache's sweep) got to first reads as simply absent
    if got[11] == "type=item_get key=k status=not_found clsid=0 cfd=F size=0" {
        got[11] = got[11].replace("not_found", "flushed");
    }
    let line = |key: &str, status: &str, class: u32, size: usize| {
        format!("type=item_get key={key} status={status} clsid={class} cfd=F size={size}")
    };
    let found = line("k", "found", 1, 3);
    assert_eq!(
        got,
        [
            found.clone(),
            line("nokey", "not_found", 0, 0),
            found.clone(),
            line("a%25b", "not_found", 0, 0),
            found.clone(),
            found,
            line("n", "not_found", 0, 0),
            line("n", "found", 1, 1),
            line("n", "found", 1, 1),
            line("n", "found", 1, 2),
            line("n", "not_found", 0, 0),
            line("k", "flushed", 0, 0),
        ]
    );
    // a watching connection executes nothing more
    w.send("version\r\n");
    w.expect_silence(Duration::from_millis(300));
}
both!(watch_fetchers, &[]);

fn watch_mutations(server: &Server) {
    let mut c = server.connect();
    let mut w = start_watch(server, " mutations");
    c.roundtrip("set m 0 0 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip("get m\r\n", "VALUE m 0 1\r\nx\r\nEND\r\n");
    c.roundtrip("add m 0 0 1\r\ny\r\n", "NOT_STORED\r\n");
    c.roundtrip("append m 0 0 2\r\nyz\r\n", "STORED\r\n");
    c.roundtrip("prepend m 0 0 1\r\nw\r\n", "STORED\r\n");
    c.roundtrip("cas m 0 0 1 999\r\nq\r\n", "EXISTS\r\n");
    c.roundtrip("cas nokey 0 0 1 1\r\nq\r\n", "NOT_FOUND\r\n");
    c.roundtrip("replace nokey 0 0 1\r\nq\r\n", "NOT_STORED\r\n");
    c.roundtrip("set t 0 100 1\r\nx\r\n", "STORED\r\n");
    let got: Vec<String> = watch_lines(&mut w, 8)
        .iter()
        .map(|l| normalize(l))
        .collect();
    let store = |key: &str, status: &str, cmd: &str, size: usize| {
        format!(
            "type=item_store key={key} status={status} cmd={cmd} ttl=0 clsid=1 cfd=F size={size}"
        )
    };
    assert_eq!(
        got[..7],
        [
            store("m", "stored", "set", 1),
            store("m", "not_stored", "add", 1),
            store("m", "stored", "append", 3),
            store("m", "stored", "prepend", 4),
            store("m", "exists", "cas", 1),
            store("nokey", "not_found", "cas", 1),
            store("nokey", "not_stored", "replace", 1),
        ]
    );
    // the clock may tick between the store and the line
    let ttl = got[7]
        .split(' ')
        .find_map(|f| f.strip_prefix("ttl="))
        .expect("ttl");
    assert!(ttl == "100" || ttl == "99", "{}", got[7]);
}
both!(watch_mutations, &[]);

fn watch_evictions(server: &Server) {
    let mut c = server.connect();
    let mut w = start_watch(server, " evictions mutations");
    let value = "e".repeat(1000);
    let mut i = 0;
    let evicted = eventually(Duration::from_secs(30), || {
        for _ in 0..500 {
            c.send(format!("set ev{i} 0 0 1000 noreply\r\n{value}\r\n"));
            i += 1;
        }
        c.stat("", "evictions") > 0
    });
    assert!(evicted, "no eviction after {i} sets");
    // the stream holds mutation lines and, among them, the eviction
    let deadline = Instant::now() + Duration::from_secs(10);
    let line = loop {
        assert!(Instant::now() < deadline, "no eviction line");
        let l = watch_lines(&mut w, 1).remove(0);
        if l.contains("type=eviction") {
            break normalize(&l);
        }
        assert!(
            l.contains("type=item_store") || l.starts_with("skipped="),
            "{l}"
        );
    };
    let f = fields(&line);
    assert!(f["key"].starts_with("ev"), "{line}");
    assert_eq!(f["fetch"], "no");
    assert_eq!(f["ttl"], "-1");
    assert!(num(&f, "la") >= 0 && num(&f, "clsid") > 1);
    assert_eq!(f["size"], "1000");
}
both!(watch_evictions, &["-m", "2"]);

fn watch_connevents(server: &Server) {
    let mut w = start_watch(server, " connevents");
    let mut c = server.connect();
    let port = c.tcp().local_addr().unwrap().port();
    c.roundtrip("quit\r\n", "");
    c.expect_closed();
    // other connections' events (the harness's own start-up probe, whose
    // close memcached may log late) are not ours: take this port's two
    let ours = format!(" rport={port} ");
    let mut got = Vec::new();
    for _ in 0..10 {
        let line = watch_lines(&mut w, 1).remove(0);
        if line.contains(&ours) {
            got.push(line);
        }
        if got.len() == 2 {
            break;
        }
    }
    assert_eq!(got.len(), 2, "events of port {port}: {got:?}");
    let new = normalize(&got[0]);
    assert_eq!(
        new,
        format!("type=conn_new rip=127.0.0.1 rport={port} transport=tcp cfd=F")
    );
    let closed = normalize(&got[1]);
    assert!(
        closed.starts_with(&format!(
            "type=conn_close rip=127.0.0.1 rport={port} transport=tcp reason="
        )),
        "{closed}"
    );
}
both!(watch_connevents, &[]);

/// Reads whatever `stream` sends until it stays quiet for `quiet`.
fn drain(stream: &mut TcpStream, quiet: Duration) -> Vec<u8> {
    stream.set_read_timeout(Some(quiet)).unwrap();
    let mut all = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => panic!("the watcher was disconnected"),
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return all
            }
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// A watcher that does not read never makes the server buffer without
/// bound: lines past its buffer are dropped and counted, and every line is
/// either delivered or counted in a `skipped=N` line (sent before the next
/// line that finds room).
#[test]
fn slow_watcher_gets_skipped_counts() {
    let server = Server::ferrocache(&[]);
    let w = server.connect();
    small_rcvbuf(&w);
    let mut w_stream = w.tcp().try_clone().unwrap();
    w_stream.write_all(b"watch\r\n").unwrap();
    let mut ok = [0u8; 4];
    w_stream.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"OK\r\n");
    let mut c = server.connect();
    let pad = "x".repeat(240);
    let mut sent = 0u64;
    for round in 0..6 {
        let mut batch = String::new();
        for i in 0..10_000 {
            batch.push_str(&format!("get {pad}{round}_{i}\r\n"));
        }
        c.send(&batch);
        sent += 10_000;
        // wait for the answers, so the lines were all produced
        for _ in 0..10_000 {
            c.expect("END\r\n");
        }
    }
    let (mut delivered, mut skipped) = (0u64, 0u64);
    let mut count = |bytes: &[u8]| {
        for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let text = std::str::from_utf8(line).unwrap();
            if let Some(n) = text.strip_prefix("skipped=") {
                skipped += n.parse::<u64>().expect("count");
            } else {
                assert!(text.contains(" type=item_get key="), "{text}");
                delivered += 1;
            }
        }
        (delivered, skipped)
    };
    count(&drain(&mut w_stream, Duration::from_secs(2)));
    // each further get finds room and carries the count of what was lost
    let mut extra = 0;
    let mut accounted = false;
    while !accounted && extra < 20 {
        c.roundtrip(format!("get one_more{extra}\r\n"), "END\r\n");
        extra += 1;
        let (d, s) = count(&drain(&mut w_stream, Duration::from_millis(1500)));
        accounted = d + s == sent + extra;
    }
    assert!(
        accounted,
        "{delivered} delivered + {skipped} skipped != {sent} + {extra}"
    );
    assert!(
        skipped > 0,
        "nothing was dropped: the test did not fill the buffer"
    );
    assert!(delivered > 0);
    drop(w);
}

// -------------------------------------------------------------------- -vv

/// A server binary on a free port with its stderr in a log file, removed
/// on drop.
struct Verbose {
    _process: Process,
    port: u16,
    log: PathBuf,
}

impl Drop for Verbose {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.log);
    }
}

fn start_verbose(target: Target) -> Verbose {
    start_logged(target, "-vv")
}

/// A server binary started with `flag` (`-vv`, or a harmless one such as
/// `-C` to start quiet), stderr to a file.
fn start_logged(target: Target, flag: &str) -> Verbose {
    start_logged_with(target, &[flag])
}

fn start_logged_with(target: Target, flags: &[&str]) -> Verbose {
    let log = temp_path("vv.log");
    let process = Process::start_logged(target, flags, &log);
    Verbose {
        port: process.port(),
        _process: process,
        log,
    }
}

/// The `<fd …` / `>fd …` lines of one connection, fd replaced by `N`
/// (ferrocache's log lines carry env_logger's prefix; it is dropped).
fn conn_lines(log: &str, fd: &str) -> Vec<String> {
    let lines: Vec<String> = log
        .lines()
        .map(|l| l.rsplit_once("] ").map_or(l, |(_, m)| m))
        .filter_map(|l| {
            for dir in ['<', '>'] {
                if let Some(rest) = l.strip_prefix(&format!("{dir}{fd} ")) {
                    return Some(format!("{dir}N {rest}"));
                }
            }
            None
        })
        .collect();
    // the descriptor may have served the start-up probe before: from our
    // first request on
    let first = lines.iter().position(|l| l == "<N get vv_marker");
    first.map_or_else(Vec::new, |i| lines[i..].to_vec())
}

fn verbose_logs_commands_and_replies(target: Target) {
    let bin = target.program();
    let v = start_verbose(target);
    // the listening probe above may have left its own lines: use a marker
    let mut s = TcpStream::connect(("127.0.0.1", v.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let script: &[(&str, &str)] = &[
        ("get vv_marker\r\n", "END\r\n"),
        ("set a 0 0 1\r\nx\r\n", "STORED\r\n"),
        ("get a b\r\n", "VALUE a 0 1\r\nx\r\nEND\r\n"),
        ("cas a 0 0 1 999\r\ny\r\n", "EXISTS\r\n"),
        // what a noreply command would have answered is logged
        (
            "set q 0 0 1 noreply\r\ny\r\nadd q 0 0 1 noreply\r\nz\r\n\
             delete nokey noreply\r\nmn\r\n",
            "MN\r\n",
        ),
        // meta replies are not logged (never a value), but for me's miss
        // and errors
        (
            "mg a v\r\nmg nokey v\r\nms m 2\r\nhi\r\nmd m\r\nme nokey\r\n",
            "VA 1\r\nx\r\nEN\r\nHD\r\nHD\r\nEN\r\n",
        ),
        ("mg a v !\r\n", "CLIENT_ERROR invalid flag\r\n"),
        ("delete a\r\n", "DELETED\r\n"),
        ("incr a 1\r\n", "NOT_FOUND\r\n"),
        ("bogus\r\n", "ERROR\r\n"),
        ("stats settings\r\n", ""),
    ];
    for (req, want) in script {
        s.write_all(req.as_bytes()).unwrap();
        if want.is_empty() {
            let mut all = Vec::new();
            let mut buf = [0u8; 8192];
            while !all.ends_with(b"END\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0);
                all.extend_from_slice(&buf[..n]);
            }
        } else {
            let mut got = vec![0u8; want.len()];
            s.read_exact(&mut got).unwrap();
            assert_eq!(got, want.as_bytes());
        }
    }
    s.write_all(b"quit\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    let want = [
        "<N get vv_marker",
        ">N END",
        "<N set a 0 0 1",
        ">N STORED",
        "<N get a b",
        ">N sending key a",
        ">N END",
        "<N cas a 0 0 1 999",
        ">N EXISTS",
        "<N set q 0 0 1 noreply",
        ">N NOREPLY STORED",
        "<N add q 0 0 1 noreply",
        ">N NOREPLY NOT_STORED",
        "<N delete nokey noreply",
        ">N NOREPLY NOT_FOUND",
        "<N mn",
        ">N MN",
        "<N mg a v",
        "<N mg nokey v",
        "<N ms m 2",
        "<N md m",
        "<N me nokey",
        ">N EN",
        "<N mg a v !",
        ">N CLIENT_ERROR invalid flag",
        "<N delete a",
        ">N DELETED",
        "<N incr a 1",
        ">N NOT_FOUND",
        "<N bogus",
        ">N ERROR",
        "<N stats settings",
        "<N quit",
        "<N connection closed.",
    ];
    let mut last = Vec::new();
    let ok = eventually(Duration::from_secs(10), || {
        let log = std::fs::read_to_string(&v.log).unwrap_or_default();
        let Some(fd) = log.lines().find_map(|l| {
            let m = l.rsplit_once("] ").map_or(l, |(_, m)| m);
            m.strip_prefix('<')?
                .strip_suffix(" get vv_marker")
                .map(str::to_string)
        }) else {
            return false;
        };
        let new_conn = format!("<{fd} new auto-negotiating client connection");
        last = conn_lines(&log, &fd);
        log.contains(&new_conn) && last == want
    });
    assert!(ok, "{bin} -vv logged: {last:#?}");
    // and the lines without a direction: the protocol, once, and the
    // unique a refused cas met (a's, the first write)
    let log = std::fs::read_to_string(&v.log).unwrap();
    let plain: Vec<&str> = log
        .lines()
        .map(|l| l.rsplit_once("] ").map_or(l, |(_, m)| m))
        .filter(|l| l.contains(": Client using the ascii protocol") || l.starts_with("CAS:"))
        .collect();
    assert!(
        plain.contains(&"CAS:  failure: expected 1, got 999"),
        "{bin}: {plain:?}"
    );
    assert!(
        plain
            .iter()
            .any(|l| l.ends_with(": Client using the ascii protocol")),
        "{bin}: {plain:?}"
    );
}

#[test]
fn verbose_logs_commands_and_replies_ferrocache() {
    verbose_logs_commands_and_replies(Target::Ferrocache);
}

#[test]
fn verbose_logs_commands_and_replies_memcached() {
    if Target::Memcached.available() {
        verbose_logs_commands_and_replies(Target::Memcached);
    }
}

/// ferrocache `-vvv`: its own state changes (memcached's are its
/// connection state machine's, `fd: going from conn_read to
/// conn_parse_cmd`, which ferrocache does not have): a connection yielding
/// its worker at the `-R` budget, a multi-get paused while its output waits
/// for the client, the end of a requested crawl. `-vv` logs none of them.
#[test]
fn very_verbose_logs_state_changes() {
    let state_lines = |flag: &str| -> String {
        let v = start_logged_with(Target::Ferrocache, &[flag, "-R", "2"]);
        let mut s = TcpStream::connect(("127.0.0.1", v.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let big = "v".repeat(200 * 1024);
        let mut req = String::new();
        for k in ["b1", "b2", "b3"] {
            req.push_str(&format!("set {k} 0 0 {}\r\n{big}\r\n", big.len()));
        }
        s.write_all(req.as_bytes()).unwrap();
        let mut got = vec![0u8; 3 * "STORED\r\n".len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(got, "STORED\r\n".repeat(3).as_bytes());
        // ten requests in one packet, two served per turn
        s.write_all("get nokey\r\n".repeat(10).as_bytes()).unwrap();
        let mut got = vec![0u8; 10 * "END\r\n".len()];
        s.read_exact(&mut got).unwrap();
        // three values, 600 KiB: more than one reply buffer's worth
        s.write_all(b"get b1 b2 b3\r\n").unwrap();
        let want = 3 * (big.len() + "VALUE b1 0 204800\r\n\r\n".len()) + 5;
        let mut reply = vec![0u8; want];
        s.read_exact(&mut reply).unwrap();
        assert!(reply.ends_with(b"END\r\n"));
        s.write_all(b"lru_crawler crawl all\r\n").unwrap();
        let mut ok = [0u8; 4];
        s.read_exact(&mut ok).unwrap();
        assert_eq!(&ok, b"OK\r\n");
        // the crawl runs on the clock thread's next ticks
        let quiet_flag = flag == "-vv";
        let done = eventually(Duration::from_secs(20), || {
            let log = std::fs::read_to_string(&v.log).unwrap_or_default();
            quiet_flag || log.contains("lru crawler: requested crawl finished")
        });
        assert!(done, "no end of crawl logged");
        // the log is written as things happen; give it a moment
        thread::sleep(Duration::from_millis(300));
        std::fs::read_to_string(&v.log).unwrap()
    };
    let trace = state_lines("-vvv");
    for want in [
        ": request budget (-R) used up, yielding",
        ": reply paused at ",
        "lru crawler: requested crawl finished",
    ] {
        assert!(trace.contains(want), "-vvv did not log {want:?}:\n{trace}");
    }
    let debug = state_lines("-vv");
    assert!(debug.contains(" get b1 b2 b3"), "{debug}");
    for absent in ["yielding", "paused", "crawl finished"] {
        assert!(!debug.contains(absent), "-vv logged {absent:?}:\n{debug}");
    }
}

/// `verbosity 2` on a quiet server turns the -vv lines on from then on,
/// and `stats settings` shows it (memcached caps the level at 2).
fn verbosity_command_turns_logging_on(target: Target) {
    let bin = target.program();
    let v = start_logged(target, "-C");
    let mut s = TcpStream::connect(("127.0.0.1", v.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut roundtrip = |req: &str, want: &str| {
        s.write_all(req.as_bytes()).unwrap();
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), want, "{bin}: {req:?}");
    };
    roundtrip("get quiet_before\r\n", "END\r\n");
    roundtrip("verbosity 9\r\n", "OK\r\n");
    roundtrip("get loud_after\r\n", "END\r\n");
    s.write_all(b"stats settings\r\n").unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    while !all.ends_with(b"END\r\n") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0);
        all.extend_from_slice(&buf[..n]);
    }
    let settings = String::from_utf8_lossy(&all);
    assert!(
        settings.contains("STAT verbosity 2\r\n"),
        "{bin}: {settings}"
    );
    let logged = eventually(Duration::from_secs(10), || {
        let log = std::fs::read_to_string(&v.log).unwrap_or_default();
        log.contains(" get loud_after")
    });
    let log = std::fs::read_to_string(&v.log).unwrap_or_default();
    assert!(logged, "{bin} logged nothing after verbosity 2:\n{log}");
    assert!(
        !log.contains("quiet_before"),
        "{bin} logged before verbosity:\n{log}"
    );
}

#[test]
fn verbosity_command_turns_logging_on_ferrocache() {
    verbosity_command_turns_logging_on(Target::Ferrocache);
}

#[test]
fn verbosity_command_turns_logging_on_memcached() {
    if Target::Memcached.available() {
        verbosity_command_turns_logging_on(Target::Memcached);
    }
}

// ------------------------------------------------------ memcached-tool

fn tool(server: &Server, args: &[&str]) -> (String, String) {
    let addr = server.tcp_addr().to_string();
    let out = Command::new("perl")
        .arg(MEMCACHED_TOOL)
        .arg(&addr)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run memcached-tool");
    assert!(
        out.status.success(),
        "memcached-tool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8(out.stdout).expect("utf-8"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn have_tool() -> bool {
    require(MEMCACHED_TOOL, perl_tool(MEMCACHED_TOOL), "memcached perl")
}

fn load_items(c: &mut Conn) {
    c.roundtrip("set a 1 0 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip("set b 2 0 2\r\nyy\r\n", "STORED\r\n");
    c.roundtrip("set odd%key:1 3 0 3\r\nzzz\r\n", "STORED\r\n");
    let big = "B".repeat(3000);
    c.roundtrip(format!("set big 4 0 3000\r\n{big}\r\n"), "STORED\r\n");
    c.roundtrip("set ttl 5 1000 2\r\ntt\r\n", "STORED\r\n");
}

fn tool_display(server: &Server) {
    if !have_tool() {
        return;
    }
    load_items(&mut server.connect());
    let (out, _) = tool(server, &["display"]);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("  #  Item_Size  Max_age   Pages   Count   Full?  Evicted Evict_Time OOM")
    );
    let mut total = 0;
    for row in lines {
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cols.len(), 9, "{row}");
        let id: u32 = cols[0].parse().expect("class id");
        assert!(id >= 1);
        assert!(cols[1].ends_with('B') || cols[1].ends_with('K'), "{row}");
        total += cols[4].parse::<u64>().expect("count");
        assert_eq!(cols[6], "0", "evicted");
    }
    assert_eq!(total, 5, "{out}");
}
both!(tool_display, &[]);

fn tool_stats_and_settings(server: &Server) {
    if !have_tool() {
        return;
    }
    load_items(&mut server.connect());
    let field = |out: &str, name: &str| -> String {
        out.lines()
            .find_map(|l| {
                let mut it = l.split_whitespace();
                (it.next() == Some(name)).then(|| it.next().unwrap_or("").to_string())
            })
            .unwrap_or_else(|| panic!("{name} missing from {out}"))
    };
    let (stats, _) = tool(server, &["stats"]);
    assert!(stats.starts_with(&format!("#{}", server.tcp_addr())));
    assert_eq!(field(&stats, "curr_items"), "5");
    assert_eq!(field(&stats, "cmd_set"), "5");
    let (settings, _) = tool(server, &["settings"]);
    assert_eq!(field(&settings, "lru_crawler"), "yes");
    assert_eq!(field(&settings, "maxbytes"), "67108864");
    let (sizes, _) = tool(server, &["sizes"]);
    assert_eq!(field(&sizes, "sizes_status"), "disabled");
}
both!(tool_stats_and_settings, &[]);

/// `dump` lists every item as an `add` command that reloads it: fed to a
/// fresh server, the same keys, flags and values come back.
fn tool_dump_reloads(server: &Server) {
    if !have_tool() {
        return;
    }
    let mut c = server.connect();
    load_items(&mut c);
    let (out, err) = tool(server, &["dump"]);
    assert!(err.contains("Dumping memcache contents"), "{err}");
    for want in [
        "add a 1 0 1\r\nx\r\n",
        "add b 2 0 2\r\nyy\r\n",
        "add odd%key:1 3 0 3\r\nzzz\r\n",
    ] {
        assert!(out.contains(want), "{want:?} not in {out:?}");
    }
    assert!(out.contains(&format!("add big 4 0 3000\r\n{}\r\n", "B".repeat(3000))));
    let now = stat_u64(&c.stats(""), "time");
    let ttl_line = out
        .lines()
        .find(|l| l.starts_with("add ttl 5 "))
        .expect("ttl item");
    let exp: u64 = ttl_line.split(' ').nth(3).unwrap().parse().unwrap();
    assert!((now + 990..=now + 1001).contains(&exp), "{ttl_line}");

    let fresh = Server::ferrocache(&[]);
    let mut f = fresh.connect();
    f.send(&out);
    for _ in 0..5 {
        f.expect("STORED\r\n");
    }
    assert_eq!(f.gets("a").0, 1);
    assert_eq!(f.gets("odd%key:1").1, b"zzz");
    assert_eq!(f.gets("big").1, "B".repeat(3000).as_bytes());
    assert_eq!(f.gets("ttl").0, 5);
}
both!(tool_dump_reloads, &[]);

// ------------------------------------------------------- memcstat, damemtop

fn memcstat_reads_stats(server: &Server) {
    if !require(MEMCSTAT, Path::new(MEMCSTAT).exists(), "libmemcached-tools") {
        return;
    }
    load_items(&mut server.connect());
    let addr = server.tcp_addr();
    let out = Command::new(MEMCSTAT)
        .arg(format!("--servers={addr}"))
        .output()
        .expect("run memcstat");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(&format!("Server: {} ({})", addr.ip(), addr.port())),
        "{text}"
    );
    assert!(text.contains("\tcurr_items: 5\n"), "{text}");
    assert!(text.contains("\tversion: 1.6.18"), "{text}");
}
both!(memcstat_reads_stats, &[]);

/// damemtop (a terminal UI) polls `stats` of both servers side by side; it
/// needs a terminal, so it runs under `script`.
#[test]
fn damemtop_shows_both_servers() {
    let script = Path::new("/usr/bin/script");
    if !require(
        DAMEMTOP,
        perl_tool(DAMEMTOP) && script.exists(),
        "memcached libanyevent-perl libyaml-perl libterm-readkey-perl bsdutils",
    ) {
        return;
    }
    let ferro = Server::ferrocache(&[]);
    let reference = common::memcached_or_skip(&[]);
    load_items(&mut ferro.connect());
    let home = temp_path("damemtop-home");
    std::fs::create_dir_all(home.join(".damemtop")).unwrap();
    let mut servers = vec![ferro.tcp_addr().to_string()];
    if let Some(r) = &reference {
        servers.push(r.tcp_addr().to_string());
    }
    // damemtop ignores --config and reads ~/.damemtop/damemtop.yaml
    let yaml = format!(
        "delay: 1\nmode: t\ntop_mode:\n    sort_column: \"hostname\"\n    sort_order: \"asc\"\n    \
         columns:\n        - hostname\n        - all_version\n        - curr_items\n        \
         - bytes_written\nservers:\n{}",
        servers
            .iter()
            .map(|s| format!("    - {s}\n"))
            .collect::<String>()
    );
    std::fs::write(home.join(".damemtop/damemtop.yaml"), yaml).unwrap();
    let out = Command::new("timeout")
        .args([
            "6",
            "script",
            "-qfc",
            &format!("stty cols 200 rows 40; perl {DAMEMTOP}"),
            "/dev/null",
        ])
        .env("HOME", &home)
        .stdin(Stdio::null())
        .output()
        .expect("run damemtop");
    let _ = std::fs::remove_dir_all(&home);
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    let row = |addr: &str| {
        text.lines()
            .rev()
            .find(|l| l.starts_with(addr))
            .unwrap_or_else(|| panic!("no row for {addr} in {text}"))
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    // curr_items and bytes_written are shown as numbers (damemtop shows
    // counters as per-second rates)
    let numeric = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == ',');
    let f = row(&servers[0]);
    assert_eq!(f[1], "1.6.18-ferrocache-0.1.0", "{f:?}");
    assert!(numeric(&f[2]) && numeric(&f[3]), "{f:?}");
    if let Some(addr) = servers.get(1) {
        let m = row(addr);
        assert_eq!(m[1], "1.6.18", "{m:?}");
        assert!(numeric(&m[2]) && numeric(&m[3]), "{m:?}");
    }
}

// ------------------------------------------------------------ slabs, cachedump

/// `slabs reassign` and `slabs automove` on an empty server: memcached
/// 1.6.18's checks in its order (same class, then the ids, then the spare
/// page no class of ferrocache ever has); `automove` is accepted (and
/// silent with `noreply`); `reassign` knows no `noreply`. Class 40 is left
/// out: memcached's largest class at default settings is 39, ferrocache's
/// is 40 (its class for items over 512 KiB).
const SLABS: Table = &[
    (b"slabs reassign 1 2\r\n", b"NOSPARE source class has no spare pages\r\n"),
    (b"slabs  reassign  0  39 \r\n", b"NOSPARE source class has no spare pages\r\n"),
    (b"slabs reassign 2 0\r\n", b"NOSPARE source class has no spare pages\r\n"),
    (b"slabs reassign 1 4294967298\r\n", b"NOSPARE source class has no spare pages\r\n"),
    (b"slabs reassign 1 1\r\n", b"SAME src and dst class are identical\r\n"),
    (b"slabs reassign 99 99\r\n", b"SAME src and dst class are identical\r\n"),
    (b"slabs reassign -1 -1\r\n", b"SAME src and dst class are identical\r\n"),
    (b"slabs reassign 99 2\r\n", b"BADCLASS invalid src or dst class id\r\n"),
    (b"slabs reassign -1 2\r\n", b"BADCLASS invalid src or dst class id\r\n"),
    (b"slabs reassign -2 2\r\n", b"BADCLASS invalid src or dst class id\r\n"),
    (b"slabs reassign 1 41\r\n", b"BADCLASS invalid src or dst class id\r\n"),
    (b"slabs reassign 1 63\r\n", b"BADCLASS invalid src or dst class id\r\n"),
    (b"slabs reassign 1 64\r\n", b"BADCLASS invalid src or dst class id\r\n"),
    (b"slabs reassign 1 2147483648\r\n", b"BADCLASS invalid src or dst class id\r\n"),
    (b"slabs reassign a b\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"slabs reassign 1 2x\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"slabs reassign 1\r\n", b"ERROR\r\n"),
    (b"slabs reassign 1 2 3\r\n", b"ERROR\r\n"),
    (b"slabs reassign 1 2 noreply\r\n", b"ERROR\r\n"),
    (b"slabs automove 0\r\n", b"OK\r\n"),
    (b"slabs automove 2 x y\r\n", b"OK\r\n"),
    (b"slabs automove 4294967297\r\n", b"OK\r\n"),
    (b"slabs automove ratio 0.5\r\n", b"OK\r\n"),
    (b"slabs automove 1 noreply\r\nslabs automove 3 noreply\r\nslabs automove x noreply\r\nmn\r\n", b"MN\r\n"),
    (b"slabs automove 3\r\n", b"ERROR\r\n"),
    (b"slabs automove\r\n", b"ERROR\r\n"),
    (b"slabs automove ratio x\r\n", b"ERROR\r\n"),
    (b"slabs automove x\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"slabs automove -1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"slabs\r\n", b"ERROR\r\n"),
    (b"slabs foo\r\n", b"ERROR\r\n"),
];
table!(slabs_commands, &[], SLABS);

/// `slabs automove <level>` is what `stats settings` reports afterwards.
fn automove_level_is_reported(server: &Server) {
    let mut c = server.connect();
    assert_eq!(stat_str(&c.stats("settings"), "slab_automove"), "1");
    for level in ["2", "0", "1"] {
        c.roundtrip(format!("slabs automove {level}\r\n"), "OK\r\n");
        assert_eq!(stat_str(&c.stats("settings"), "slab_automove"), level);
    }
    c.send("slabs automove 2 noreply\r\n");
    assert_eq!(stat_str(&c.stats("settings"), "slab_automove"), "2");
    // refused levels change nothing
    c.roundtrip("slabs automove 3\r\n", "ERROR\r\n");
    assert_eq!(stat_str(&c.stats("settings"), "slab_automove"), "2");
    assert_eq!(stat_str(&c.stats("settings"), "slab_reassign"), "yes");
}
both!(automove_level_is_reported, &[]);

/// `-o slab_automove=N` sets the level `stats settings` starts from.
fn automove_level_from_the_command_line(server: &Server) {
    let mut c = server.connect();
    assert_eq!(stat_str(&c.stats("settings"), "slab_automove"), "2");
}
both!(
    automove_level_from_the_command_line,
    &["-o", "slab_automove=2"]
);

/// `stats cachedump`'s refusals, and empty classes.
const CACHEDUMP_REFUSED: Table = &[
    (
        b"stats cachedump 64 0\r\n",
        b"CLIENT_ERROR Illegal slab id\r\n",
    ),
    (
        b"stats cachedump 99 1\r\n",
        b"CLIENT_ERROR Illegal slab id\r\n",
    ),
    (
        b"stats cachedump -1 0\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (
        b"stats cachedump 1 x\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (
        b"stats cachedump 1\r\n",
        b"CLIENT_ERROR bad command line\r\n",
    ),
    (b"stats cachedump\r\n", b"CLIENT_ERROR bad command line\r\n"),
    (b"stats cachedump 1 0\r\n", b"END\r\n"),
    (b"stats cachedump 0 0\r\n", b"END\r\n"),
    (b"stats cachedump 63 5\r\n", b"END\r\n"),
];
table!(cachedump_refusals, super::NO_AUTOCRAWL, CACHEDUMP_REFUSED);

const CACHEDUMP_DISABLED: Table = &[
    (
        b"stats cachedump 1 0\r\n",
        b"CLIENT_ERROR stats cachedump not allowed\r\n",
    ),
    (
        b"stats cachedump 99\r\n",
        b"CLIENT_ERROR stats cachedump not allowed\r\n",
    ),
];
table!(cachedump_disabled, &["-X"], CACHEDUMP_DISABLED);

/// Reads a `stats cachedump` reply: its `ITEM` lines, up to `END`.
fn read_cachedump(c: &mut Conn) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        let line = String::from_utf8(c.read_line()).expect("a cachedump line is text");
        if line == "END\r\n" {
            return lines;
        }
        assert!(
            line.starts_with("ITEM ") && line.ends_with(" s]\r\n"),
            "{line:?}"
        );
        lines.push(line);
    }
}

/// The class (from `stats items`) holding `key`'s item, when it is alone.
fn only_class(c: &mut Conn) -> u32 {
    let classes: BTreeSet<u32> = c
        .stats("items")
        .iter()
        .filter(|(k, v)| k.ends_with(":number") && v != "0")
        .map(|(k, _)| {
            k.trim_start_matches("items:")
                .split(':')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(classes.len(), 1, "items in one class expected: {classes:?}");
    *classes.iter().next().unwrap()
}

/// Live items of the class are listed with their value's length and
/// absolute expiry time (0: none); a limit bounds the list, 0 lists all.
fn cachedump_lists_items(server: &Server) {
    let mut c = server.connect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    c.roundtrip("set a 0 0 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip("set bb 5 100 5\r\nhello\r\n", "STORED\r\n");
    c.roundtrip("set ccc 0 0 2\r\nzz\r\n", "STORED\r\n");
    let class = only_class(&mut c);
    c.send(format!("stats cachedump {class} 0\r\n"));
    let mut all = read_cachedump(&mut c);
    all.sort();
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(all[0], "ITEM a [1 b; 0 s]\r\n");
    assert_eq!(all[2], "ITEM ccc [2 b; 0 s]\r\n");
    let exp: u64 = all[1]
        .strip_prefix("ITEM bb [5 b; ")
        .and_then(|r| r.strip_suffix(" s]\r\n"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{:?}", all[1]));
    assert!(
        (now + 95..=now + 105).contains(&exp),
        "expiry {exp} for 100 s from {now}"
    );
    c.send(format!("stats cachedump {class} 2\r\n"));
    let two = read_cachedump(&mut c);
    assert_eq!(two.len(), 2, "{two:?}");
    assert!(two.iter().all(|l| all.contains(l)), "{two:?}");
    // another class has none of them
    c.send(format!("stats cachedump {} 0\r\n", class + 1));
    assert!(read_cachedump(&mut c).is_empty());
}
both!(cachedump_lists_items, super::NO_AUTOCRAWL);

/// A dump of a big class stops before 2 MB (memcached's cap, `END\r\n`
/// and a NUL included), with whole lines.
fn cachedump_is_capped(server: &Server) {
    let mut c = server.connect();
    let items = 9000;
    for i in 0..items {
        c.send(format!("set {:0>240} 0 0 1 noreply\r\nx\r\n", i));
    }
    c.roundtrip("mn\r\n", "MN\r\n");
    let class = only_class(&mut c);
    c.send(format!("stats cachedump {class} 0\r\n"));
    let lines = read_cachedump(&mut c);
    assert!(!lines.is_empty());
    let bytes: usize = lines.iter().map(String::len).sum::<usize>() + 5;
    let line = lines[0].len();
    assert!(bytes < 2 * 1024 * 1024, "{bytes} bytes (and a NUL)");
    assert!(
        bytes + 1 + line > 2 * 1024 * 1024,
        "stopped early at {bytes} bytes"
    );
    assert!(lines.len() < items, "{} lines", lines.len());
    let distinct: HashSet<&String> = lines.iter().collect();
    assert_eq!(distinct.len(), lines.len(), "an item listed twice");
}
both!(
    cachedump_is_capped,
    &["-o", "no_lru_maintainer", "-m", "64"]
);
