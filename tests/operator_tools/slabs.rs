//! `slabs reassign` / `slabs automove` and `stats cachedump`: their replies,
//! refusals and caps.

use std::collections::{BTreeSet, HashSet};

use crate::common::{stat_str, Conn, Server};

use super::{Table, NO_AUTOCRAWL};

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
