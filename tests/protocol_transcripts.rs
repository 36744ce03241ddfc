//! The classic ASCII commands and their errors as byte transcripts: a table
//! of (request bytes, expected reply bytes), read top to bottom like a
//! conversation on one connection. Every table runs twice: against
//! ferrocache (`<table>::ferrocache`) and against the reference memcached
//! (`<table>::memcached`), which keeps the tables honest.
//!
//! An empty expected reply means the server must send nothing (noreply);
//! each conversation ends with a `get` of a missing key, so a stray byte
//! anywhere is caught. Replies that legitimately differ between servers
//! (cas uniques, version strings) are checked in procedural tests.

#[macro_use]
mod common;

use common::{key_of, transcript, Server, CLOSED};

type Table = &'static [(&'static [u8], &'static [u8])];

const STORAGE_COMMANDS: Table = &[
    (b"set a 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n"),
    // flags are an opaque u32, up to 2^32-1
    (b"set b 4294967295 0 5\r\nhello\r\n", b"STORED\r\n"),
    (b"get b\r\n", b"VALUE b 4294967295 5\r\nhello\r\nEND\r\n"),
    // set overwrites value and flags
    (b"set a 7 0 3\r\nnew\r\n", b"STORED\r\n"),
    (b"get a\r\n", b"VALUE a 7 3\r\nnew\r\nEND\r\n"),
    // empty values, and data that holds CR, LF, NUL and high bytes
    (b"set empty 1 0 0\r\n\r\n", b"STORED\r\n"),
    (b"get empty\r\n", b"VALUE empty 1 0\r\n\r\nEND\r\n"),
    (b"set bin 0 0 6\r\na\r\n\0\xff\n\r\n", b"STORED\r\n"),
    (b"get bin\r\n", b"VALUE bin 0 6\r\na\r\n\0\xff\n\r\nEND\r\n"),
    // add only when absent
    (b"add a 0 0 1\r\nz\r\n", b"NOT_STORED\r\n"),
    (b"get a\r\n", b"VALUE a 7 3\r\nnew\r\nEND\r\n"),
    (b"add c 3 0 2\r\nhi\r\n", b"STORED\r\n"),
    (b"get c\r\n", b"VALUE c 3 2\r\nhi\r\nEND\r\n"),
    // replace only when present
    (b"replace missing 0 0 1\r\nz\r\n", b"NOT_STORED\r\n"),
    (b"get missing\r\n", b"END\r\n"),
    (b"replace c 4 0 3\r\nbye\r\n", b"STORED\r\n"),
    (b"get c\r\n", b"VALUE c 4 3\r\nbye\r\nEND\r\n"),
    // append/prepend need the item, and keep its flags (theirs are ignored)
    (b"append missing 0 0 1\r\nz\r\n", b"NOT_STORED\r\n"),
    (b"prepend missing 0 0 1\r\nz\r\n", b"NOT_STORED\r\n"),
    (b"get missing\r\n", b"END\r\n"),
    (b"append b 5 0 2\r\nAB\r\n", b"STORED\r\n"),
    (b"prepend b 9 0 2\r\nCD\r\n", b"STORED\r\n"),
    (
        b"get b\r\n",
        b"VALUE b 4294967295 9\r\nCDhelloAB\r\nEND\r\n",
    ),
    // noreply on every storage command: silence, but the effect happens
    (b"set n 0 0 1 noreply\r\n1\r\n", b""),
    (b"add n 0 0 1 noreply\r\n2\r\n", b""),
    (b"replace n 0 0 1 noreply\r\n3\r\n", b""),
    (b"append n 0 0 1 noreply\r\n4\r\n", b""),
    (b"prepend n 0 0 1 noreply\r\n5\r\n", b""),
    (b"add fresh 6 0 1 noreply\r\n6\r\n", b""),
    (b"replace missing 0 0 1 noreply\r\n7\r\n", b""),
    (
        b"get n fresh missing\r\n",
        b"VALUE n 0 3\r\n534\r\nVALUE fresh 6 1\r\n6\r\nEND\r\n",
    ),
    // only the exact token `noreply` counts; other trailing tokens are ignored
    (b"set t 0 0 1 NOREPLY\r\n1\r\n", b"STORED\r\n"),
    (b"set t 0 0 1 noreplyx\r\n2\r\n", b"STORED\r\n"),
    (b"set t 0 0 1 junk\r\n3\r\n", b"STORED\r\n"),
    (b"get t\r\n", b"VALUE t 0 1\r\n3\r\nEND\r\n"),
    // an exptime in the future keeps the item
    (b"set e 0 100 2\r\nok\r\n", b"STORED\r\n"),
    (b"get e\r\n", b"VALUE e 0 2\r\nok\r\nEND\r\n"),
    // runs of spaces separate tokens; a bare LF ends a command line
    (b"set  sp  0  0  1\r\nx\r\n", b"STORED\r\n"),
    (b"get sp  \r\n", b"VALUE sp 0 1\r\nx\r\nEND\r\n"),
    (b"set lf 0 0 1\nx\r\n", b"STORED\r\n"),
    (b"get lf\n", b"VALUE lf 0 1\r\nx\r\nEND\r\n"),
];
table!(storage_commands, &[], STORAGE_COMMANDS);

const CAS_REPLIES: Table = &[
    (b"cas missing 0 0 1 1\r\nx\r\n", b"NOT_FOUND\r\n"),
    (b"get missing\r\n", b"END\r\n"),
    (b"set a 0 0 1\r\nx\r\n", b"STORED\r\n"),
    // a unique nobody was given
    (b"cas a 0 0 1 18446744073709551615\r\ny\r\n", b"EXISTS\r\n"),
    (b"get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n"),
    (b"cas a 0 0 1 18446744073709551615 noreply\r\ny\r\n", b""),
    (b"cas missing 0 0 1 1 noreply\r\ny\r\n", b""),
    (b"get a missing\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n"),
    // missing unique: not a cas command at all; the data line is then junk
    (b"cas a 0 0 1\r\ny\r\n", b"ERROR\r\nERROR\r\n"),
    (
        b"cas a 0 0 1 abc\r\ny\r\n",
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
    ),
    (
        b"cas a 0 0 1 -1\r\ny\r\n",
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
    ),
    (b"cas a 0 0 1 abc noreply\r\ny\r\n", b"ERROR\r\n"),
    (b"get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n"),
];
table!(cas_replies, &[], CAS_REPLIES);

const RETRIEVAL: Table = &[
    (b"set a 1 0 1\r\nA\r\n", b"STORED\r\n"),
    (b"set b 2 0 2\r\nBB\r\n", b"STORED\r\n"),
    // many keys: hits in request order, repeats repeated, misses skipped
    (
        b"get a b missing a\r\n",
        b"VALUE a 1 1\r\nA\r\nVALUE b 2 2\r\nBB\r\nVALUE a 1 1\r\nA\r\nEND\r\n",
    ),
    (b"get missing\r\n", b"END\r\n"),
    (b"get missing1 missing2 missing3\r\n", b"END\r\n"),
    // `noreply` is just a key for get
    (b"get a noreply\r\n", b"VALUE a 1 1\r\nA\r\nEND\r\n"),
    (b"gets missing\r\n", b"END\r\n"),
    (b"get\r\n", b"ERROR\r\n"),
    (b"gets\r\n", b"ERROR\r\n"),
    // touch
    (b"touch a 100\r\n", b"TOUCHED\r\n"),
    (b"touch missing 100\r\n", b"NOT_FOUND\r\n"),
    (b"touch a 100 noreply\r\n", b""),
    (b"touch missing 100 noreply\r\n", b""),
    (
        b"touch a abc\r\n",
        b"CLIENT_ERROR invalid exptime argument\r\n",
    ),
    (b"touch a abc noreply\r\n", b""),
    (b"touch a\r\n", b"ERROR\r\n"),
    (b"touch\r\n", b"ERROR\r\n"),
    (b"get a\r\n", b"VALUE a 1 1\r\nA\r\nEND\r\n"),
    // gat: touch and fetch
    (
        b"gat 100 a missing b\r\n",
        b"VALUE a 1 1\r\nA\r\nVALUE b 2 2\r\nBB\r\nEND\r\n",
    ),
    (b"gat 0 missing\r\n", b"END\r\n"),
    (b"gat 0\r\n", b"END\r\n"),
    (b"gats 0\r\n", b"END\r\n"),
    (
        b"gat abc a\r\n",
        b"CLIENT_ERROR invalid exptime argument\r\n",
    ),
    (
        b"gats abc a\r\n",
        b"CLIENT_ERROR invalid exptime argument\r\n",
    ),
    (b"gat\r\n", b"ERROR\r\n"),
    (b"gats\r\n", b"ERROR\r\n"),
    // a negative exptime expires at once: touch and gat still answer first
    (b"touch a -1\r\n", b"TOUCHED\r\n"),
    (b"get a\r\n", b"END\r\n"),
    (b"gat -1 b\r\n", b"VALUE b 2 2\r\nBB\r\nEND\r\n"),
    (b"get b\r\n", b"END\r\n"),
];
table!(retrieval, &[], RETRIEVAL);

const DELETE: Table = &[
    (b"set d 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"delete d\r\n", b"DELETED\r\n"),
    (b"get d\r\n", b"END\r\n"),
    (b"delete d\r\n", b"NOT_FOUND\r\n"),
    // a hold time of 0 is accepted, any other is refused
    (b"set d 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (
        b"delete d 5\r\n",
        b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
    ),
    (b"get d\r\n", b"VALUE d 0 1\r\nx\r\nEND\r\n"),
    (b"delete d 0\r\n", b"DELETED\r\n"),
    (b"delete d 0\r\n", b"NOT_FOUND\r\n"),
    // noreply, hit or miss
    (b"set d 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"delete d noreply\r\n", b""),
    (b"get d\r\n", b"END\r\n"),
    (b"delete d noreply\r\n", b""),
    (b"set d 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"delete d 0 noreply\r\n", b""),
    (b"get d\r\n", b"END\r\n"),
    // errors: noreply silences the usage error only when it is the last token
    (b"delete d 5 noreply\r\n", b""),
    (
        b"delete d noreply junk\r\n",
        b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
    ),
    (b"delete\r\n", b"ERROR\r\n"),
    (b"delete a b c d\r\n", b"ERROR\r\n"),
];
table!(delete, &[], DELETE);

const INCR_DECR: Table = &[
    (b"set n 3 0 3\r\n100\r\n", b"STORED\r\n"),
    (b"decr n 1\r\n", b"99\r\n"),
    // a shorter result keeps the length, padded with spaces; flags kept
    (b"get n\r\n", b"VALUE n 3 3\r\n99 \r\nEND\r\n"),
    (b"incr n 1\r\n", b"100\r\n"),
    (b"get n\r\n", b"VALUE n 3 3\r\n100\r\nEND\r\n"),
    // decr floors at 0. (memcached pads in place only while no reply still
    // holds the item, so a shrinking incr/decr here always follows a store,
    // never a get.)
    (b"set n 3 0 3\r\n100\r\n", b"STORED\r\n"),
    (b"decr n 1000\r\n", b"0\r\n"),
    (b"decr n 1\r\n", b"0\r\n"),
    (b"incr n 5\r\n", b"5\r\n"),
    (b"get n\r\n", b"VALUE n 3 3\r\n5  \r\nEND\r\n"),
    // a longer result grows the value
    (b"set g 0 0 2\r\n99\r\n", b"STORED\r\n"),
    (b"incr g 1\r\n", b"100\r\n"),
    (b"get g\r\n", b"VALUE g 0 3\r\n100\r\nEND\r\n"),
    // leading zeros are fine
    (b"set z 0 0 3\r\n012\r\n", b"STORED\r\n"),
    (b"incr z 1\r\n", b"13\r\n"),
    (b"get z\r\n", b"VALUE z 0 3\r\n13 \r\nEND\r\n"),
    // incr wraps at 2^64
    (b"set max 0 0 20\r\n18446744073709551615\r\n", b"STORED\r\n"),
    (b"incr max 1\r\n", b"0\r\n"),
    (
        b"get max\r\n",
        b"VALUE max 0 20\r\n0                   \r\nEND\r\n",
    ),
    (
        b"incr max 18446744073709551615\r\n",
        b"18446744073709551615\r\n",
    ),
    (b"incr max 2\r\n", b"1\r\n"),
    // invalid deltas
    (
        b"incr max 18446744073709551616\r\n",
        b"CLIENT_ERROR invalid numeric delta argument\r\n",
    ),
    (
        b"incr max -1\r\n",
        b"CLIENT_ERROR invalid numeric delta argument\r\n",
    ),
    (
        b"decr max abc\r\n",
        b"CLIENT_ERROR invalid numeric delta argument\r\n",
    ),
    (b"decr max abc noreply\r\n", b""),
    (
        b"get max\r\n",
        b"VALUE max 0 20\r\n1                   \r\nEND\r\n",
    ),
    // missing items
    (b"incr missing 1\r\n", b"NOT_FOUND\r\n"),
    (b"decr missing 1\r\n", b"NOT_FOUND\r\n"),
    (b"incr missing 1 noreply\r\n", b""),
    (b"get missing\r\n", b"END\r\n"),
    // values that are not a u64
    (b"set s 0 0 3\r\nabc\r\n", b"STORED\r\n"),
    (
        b"incr s 1\r\n",
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    ),
    (
        b"decr s 1\r\n",
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    ),
    (b"incr s 1 noreply\r\n", b""),
    (b"set s 0 0 3\r\n-12\r\n", b"STORED\r\n"),
    (
        b"incr s 1\r\n",
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    ),
    (b"set s 0 0 3\r\n12a\r\n", b"STORED\r\n"),
    (
        b"incr s 1\r\n",
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    ),
    (b"set s 0 0 0\r\n\r\n", b"STORED\r\n"),
    (
        b"incr s 1\r\n",
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    ),
    (b"set s 0 0 20\r\n18446744073709551616\r\n", b"STORED\r\n"),
    (
        b"incr s 1\r\n",
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    ),
    (
        b"get s\r\n",
        b"VALUE s 0 20\r\n18446744073709551616\r\nEND\r\n",
    ),
    // noreply on success; a trailing token that is not noreply is ignored
    (b"set q 0 0 1\r\n5\r\n", b"STORED\r\n"),
    (b"incr q 1 noreply\r\n", b""),
    (b"decr q 3 noreply\r\n", b""),
    (b"incr q 1 junk\r\n", b"4\r\n"),
    // missing arguments
    (b"incr\r\n", b"ERROR\r\n"),
    (b"incr q\r\n", b"ERROR\r\n"),
    (b"decr q\r\n", b"ERROR\r\n"),
    (b"incr q 1 2 3\r\n", b"ERROR\r\n"),
    (b"get q\r\n", b"VALUE q 0 1\r\n4\r\nEND\r\n"),
];
table!(incr_decr, &[], INCR_DECR);

const FLUSH_ALL: Table = &[
    (b"set f 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"flush_all\r\n", b"OK\r\n"),
    (b"get f\r\n", b"END\r\n"),
    // what is stored after a flush is kept
    (b"set f 0 0 1\r\ny\r\n", b"STORED\r\n"),
    (b"get f\r\n", b"VALUE f 0 1\r\ny\r\nEND\r\n"),
    (b"flush_all noreply\r\n", b""),
    (b"get f\r\n", b"END\r\n"),
    (b"set f 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"flush_all 0\r\n", b"OK\r\n"),
    (b"get f\r\n", b"END\r\n"),
    (b"set f 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"flush_all 0 noreply\r\n", b""),
    (b"get f\r\n", b"END\r\n"),
    // errors
    (
        b"flush_all abc\r\n",
        b"CLIENT_ERROR invalid exptime argument\r\n",
    ),
    (b"flush_all abc noreply\r\n", b""),
    (b"flush_all 1 2 3\r\n", b"ERROR\r\n"),
    // a delayed flush leaves items readable until the delay passes
    (b"set f 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"flush_all 100\r\n", b"OK\r\n"),
    (b"get f\r\n", b"VALUE f 0 1\r\nx\r\nEND\r\n"),
];
table!(flush_all, &[], FLUSH_ALL);

const MISC: Table = &[
    (b"verbosity 1\r\n", b"OK\r\n"),
    (b"verbosity 0 noreply\r\n", b""),
    (
        b"verbosity abc\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (b"verbosity\r\n", b"ERROR\r\n"),
    // unknown commands, case, empty lines, tabs
    (b"bogus\r\n", b"ERROR\r\n"),
    (b"bogus with args\r\n", b"ERROR\r\n"),
    (b"GET a\r\n", b"ERROR\r\n"),
    (b"\r\n", b"ERROR\r\n"),
    (b"\n", b"ERROR\r\n"),
    (b" \r\n", b"ERROR\r\n"),
    (b"set\tk 0 0 1\r\nx\r\n", b"ERROR\r\nERROR\r\n"),
    (b"get k\r\n", b"END\r\n"),
    (b"quit\r\n", CLOSED),
];
table!(misc, &[], MISC);

const QUIT_WITH_ARGS: Table = &[(b"quit now\r\n", CLOSED)];
table!(quit_with_args, &[], QUIT_WITH_ARGS);

/// `version`'s text differs between servers; its shape does not.
fn version(server: &Server) {
    let mut conn = server.connect();
    conn.send("version\r\n");
    let v = conn.expect_line_prefix("VERSION ");
    assert!(
        !v.is_empty() && v.chars().any(|c| c.is_ascii_digit()),
        "version text {v:?}"
    );
    // a request pipelined after quit is never answered
    conn.send("get a\r\nquit\r\nget a\r\n");
    conn.expect("END\r\n");
    conn.expect_closed();
}
both!(version, &[]);

/// Keys: 250 bytes is the longest allowed, 251 is an error in every command.
fn key_length(server: &Server) {
    let k250 = key_of(250);
    let k251 = key_of(251);
    let bad = "CLIENT_ERROR bad command line format\r\n";
    // storage commands: the refused line's data block is then read as a
    // command of its own, hence the ERROR
    let bad_store = format!("{bad}ERROR\r\n");
    let steps: Vec<(String, String)> = vec![
        (format!("set {k250} 0 0 2\r\n10\r\n"), "STORED\r\n".into()),
        (
            format!("get {k250}\r\n"),
            format!("VALUE {k250} 0 2\r\n10\r\nEND\r\n"),
        ),
        (format!("touch {k250} 0\r\n"), "TOUCHED\r\n".into()),
        (format!("incr {k250} 5\r\n"), "15\r\n".into()),
        (format!("decr {k250} 1\r\n"), "14\r\n".into()),
        (format!("append {k250} 0 0 1\r\n!\r\n"), "STORED\r\n".into()),
        (
            format!("gat 0 {k250}\r\n"),
            format!("VALUE {k250} 0 3\r\n14!\r\nEND\r\n"),
        ),
        (format!("delete {k250}\r\n"), "DELETED\r\n".into()),
        (format!("add {k250} 0 0 1\r\nx\r\n"), "STORED\r\n".into()),
        (
            format!("get {k250}\r\n"),
            format!("VALUE {k250} 0 1\r\nx\r\nEND\r\n"),
        ),
        // 251
        (format!("set {k251} 0 0 1\r\nx\r\n"), bad_store.clone()),
        (format!("add {k251} 0 0 1\r\nx\r\n"), bad_store.clone()),
        (format!("replace {k251} 0 0 1\r\nx\r\n"), bad_store.clone()),
        (format!("append {k251} 0 0 1\r\nx\r\n"), bad_store.clone()),
        (format!("prepend {k251} 0 0 1\r\nx\r\n"), bad_store.clone()),
        (format!("cas {k251} 0 0 1 1\r\nx\r\n"), bad_store.clone()),
        (
            format!("set {k251} 0 0 1 noreply\r\nx\r\n"),
            "ERROR\r\n".into(),
        ),
        (format!("get {k251}\r\n"), bad.into()),
        (format!("get {k250} {k251}\r\n"), bad.into()),
        (format!("gets {k251}\r\n"), bad.into()),
        (format!("gat 0 {k251}\r\n"), bad.into()),
        (format!("gats 0 {k251}\r\n"), bad.into()),
        (format!("delete {k251}\r\n"), bad.into()),
        (format!("incr {k251} 1\r\n"), bad.into()),
        (format!("decr {k251} 1\r\n"), bad.into()),
        (format!("touch {k251} 1\r\n"), bad.into()),
        // nothing was stored under the long key's 250-byte prefix either
        (
            format!("get {k250}\r\n"),
            format!("VALUE {k250} 0 1\r\nx\r\nEND\r\n"),
        ),
    ];
    transcript(server, &steps);
}
both!(key_length, &[]);

const BAD_COMMAND_LINES: Table = &[
    (b"set c 0 0 1\r\nx\r\n", b"STORED\r\n"),
    // bad numbers: the line is refused, and its data line is read as a command
    (
        b"set c abc 0 1\r\ny\r\n",
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
    ),
    (
        b"set c -1 0 1\r\ny\r\n",
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
    ),
    (
        b"set c 18446744073709551616 0 1\r\ny\r\n",
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
    ),
    (
        b"set c 0 abc 1\r\ny\r\n",
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
    ),
    (
        b"set c 0 0 abc\r\ny\r\n",
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
    ),
    (
        b"set c 0 0 -1\r\ny\r\n",
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
    ),
    (
        b"add c 0 x 1\r\ny\r\n",
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
    ),
    (
        b"append c x 0 1\r\ny\r\n",
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
    ),
    // noreply silences the CLIENT_ERROR, not the junk line's ERROR
    (b"set c abc 0 1 noreply\r\ny\r\n", b"ERROR\r\n"),
    (b"set c 0 0 abc noreply\r\ny\r\n", b"ERROR\r\n"),
    (b"set c 0 0 -1 noreply\r\ny\r\n", b"ERROR\r\n"),
    // missing or extra arguments: ERROR, and no data block is expected
    (b"set c 0 0\r\n", b"ERROR\r\n"),
    (b"set c 0\r\n", b"ERROR\r\n"),
    (b"set c\r\n", b"ERROR\r\n"),
    (b"set\r\n", b"ERROR\r\n"),
    (b"add c 0 0\r\n", b"ERROR\r\n"),
    (b"set c 0 0 1 2 3 4\r\ny\r\n", b"ERROR\r\nERROR\r\n"),
    (b"set c 0 0 1 noreply junk\r\ny\r\n", b"ERROR\r\nERROR\r\n"),
    // none of it touched the stored value
    (b"get c\r\n", b"VALUE c 0 1\r\nx\r\nEND\r\n"),
];
table!(bad_command_lines, &[], BAD_COMMAND_LINES);

const BAD_DATA_CHUNK: Table = &[
    (b"set c 0 0 1\r\nx\r\n", b"STORED\r\n"),
    // the block is read by its declared length; what follows must be CRLF.
    // Here "yy\r" is the block, and the lone "\n" left is an empty command.
    (
        b"set c 0 0 1\r\nyy\r\n",
        b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
    ),
    // the old value survives a bad chunk
    (b"get c\r\n", b"VALUE c 0 1\r\nx\r\nEND\r\n"),
    (
        b"set c 0 0 3\r\nabcde\r\n",
        b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
    ),
    (
        b"append c 0 0 1\r\nzz\r\n",
        b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
    ),
    // what follows the block is parsed as the next command
    (
        b"set c 0 0 2\r\nabXYget c\r\n",
        b"CLIENT_ERROR bad data chunk\r\nVALUE c 0 1\r\nx\r\nEND\r\n",
    ),
    // noreply silences the CLIENT_ERROR only
    (b"set c 0 0 1 noreply\r\nyy\r\n", b"ERROR\r\n"),
    (b"set c 0 0 1 noreply\r\nxyz\r\n", b"ERROR\r\n"),
    (b"get c\r\n", b"VALUE c 0 1\r\nx\r\nEND\r\n"),
];
table!(bad_data_chunk, &[], BAD_DATA_CHUNK);

/// noreply is the last token of a command that has it: then it silences
/// that command's errors too, but not the ERROR for a malformed line.
const NOREPLY_EDGES: Table = &[
    // the value of the argument is bad, and the error is silenced
    (b"incr k noreply\r\n", b""),
    (b"touch k noreply\r\n", b""),
    (b"flush_all noreply noreply\r\n", b""),
    (b"cache_memlimit abc noreply\r\n", b""),
    (b"verbosity noreply\r\n", b""),
    // too many tokens: ERROR, and the data line is then junk too
    (b"set k 0 0 1 2 noreply\r\nx\r\n", b"ERROR\r\nERROR\r\n"),
    // commands without noreply: it is a key or an argument like any other
    (
        b"gat noreply k\r\n",
        b"CLIENT_ERROR invalid exptime argument\r\n",
    ),
    (b"bogus noreply\r\n", b"ERROR\r\n"),
    (b"stats noreply\r\n", b"ERROR\r\n"),
    (b"delete noreply\r\n", b"NOT_FOUND\r\n"),
    (b"set noreply 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"get noreply\r\n", b"VALUE noreply 0 1\r\nx\r\nEND\r\n"),
    (b"delete noreply noreply\r\n", b""),
    (b"get noreply\r\n", b"END\r\n"),
];
table!(noreply_edges, &[], NOREPLY_EDGES);

/// Items over -I are refused with SERVER_ERROR, their data swallowed (even
/// when it looks like commands); a refused `set` drops the old value, the
/// other storage commands keep it.
fn too_large(server: &Server) {
    // 1 MiB of data that would answer if it were parsed as commands
    let pattern = b"get big\r\n";
    let mut data = pattern.repeat(1024 * 1024 / pattern.len() + 1);
    data.truncate(1024 * 1024);
    let block = |cmd: &str, tail: &str| {
        let mut v = format!("{cmd} big 0 0 {}{tail}\r\n", data.len()).into_bytes();
        v.extend_from_slice(&data);
        v.extend_from_slice(b"\r\n");
        v
    };
    let too_large: &[u8] = b"SERVER_ERROR object too large for cache\r\n";
    let x: &[u8] = b"VALUE big 5 1\r\nx\r\nEND\r\n";
    let steps: Vec<(Vec<u8>, &[u8])> = vec![
        (b"set big 5 0 1\r\nx\r\n".to_vec(), b"STORED\r\n"),
        (block("set", ""), too_large),
        (b"get big\r\n".to_vec(), b"END\r\n"),
        (b"set big 5 0 1\r\nx\r\n".to_vec(), b"STORED\r\n"),
        (block("append", ""), too_large),
        (block("prepend", ""), too_large),
        (block("add", ""), too_large),
        (block("replace", ""), too_large),
        (block("cas", " 1"), too_large),
        (b"get big\r\n".to_vec(), x),
        // noreply: silent, and the old value is still dropped
        (block("set", " noreply"), b""),
        (b"get big\r\n".to_vec(), b"END\r\n"),
        // the connection is in step: the next command works
        (b"set big 5 0 1\r\nx\r\n".to_vec(), b"STORED\r\n"),
        (b"get big\r\n".to_vec(), x),
    ];
    transcript(server, &steps);

    // an append that would grow the item past -I is NOT_STORED; value kept
    let mut conn = server.connect();
    let first = vec![b'a'; 1_000_000];
    let mut req = format!("set grow 0 0 {}\r\n", first.len()).into_bytes();
    req.extend_from_slice(&first);
    req.extend_from_slice(b"\r\n");
    conn.roundtrip(&req, "STORED\r\n");
    let mut req = b"append grow 0 0 100000\r\n".to_vec();
    req.extend_from_slice(&[b'b'; 100_000]);
    req.extend_from_slice(b"\r\n");
    conn.roundtrip(&req, "NOT_STORED\r\n");
    conn.send("get grow\r\n");
    let mut reply = format!("VALUE grow 0 {}\r\n", first.len()).into_bytes();
    reply.extend_from_slice(&first);
    reply.extend_from_slice(b"\r\nEND\r\n");
    conn.expect(&reply);
}
both!(too_large, &["-I", "1m"]);

/// The edge of memcached's item-size rule: a 1-byte key with a value of
/// `-I` minus 51 bytes is stored under `-C` (no cas in the item) and
/// refused with cas, where the edge is 8 bytes lower; a key with client
/// flags counts 4 bytes more. Each set also goes through `append` and `ms`.
fn item_size_edge(server: &Server, cas: bool) {
    let edge = 1024 * 1024 - if cas { 59 } else { 51 } - 1;
    let mut conn = server.connect();
    let set = |flags: u32, len: usize| {
        let mut v = format!("set k {flags} 0 {len}\r\n").into_bytes();
        v.extend(std::iter::repeat_n(b'v', len));
        v.extend_from_slice(b"\r\n");
        v
    };
    let too_large = "SERVER_ERROR object too large for cache\r\n";
    conn.roundtrip(set(0, edge), "STORED\r\n");
    conn.roundtrip(set(0, edge + 1), too_large);
    conn.roundtrip(set(7, edge - 4), "STORED\r\n");
    conn.roundtrip(set(7, edge - 3), too_large);
    // growing an item past the edge is NOT_STORED, up to it is stored
    conn.roundtrip(set(0, edge - 1), "STORED\r\n");
    conn.roundtrip("append k 0 0 2\r\nab\r\n", "NOT_STORED\r\n");
    conn.roundtrip("append k 0 0 1\r\na\r\n", "STORED\r\n");
    let mut ms = format!("ms k {}\r\n", edge + 1).into_bytes();
    ms.extend(std::iter::repeat_n(b'v', edge + 1));
    ms.extend_from_slice(b"\r\n");
    conn.roundtrip(ms, too_large);
}

fn item_size_edge_with_cas(server: &Server) {
    item_size_edge(server, true);
}
both!(item_size_edge_with_cas, &[]);

fn item_size_edge_without_cas(server: &Server) {
    item_size_edge(server, false);
}
both!(item_size_edge_without_cas, &["-C"]);

/// Expiry times: negative = already expired; up to 30 days relative; larger
/// = a unix time, expired if in the past.
fn exptime_forms(server: &Server) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let hit = |k: &str| format!("VALUE {k} 0 1\r\nx\r\nEND\r\n");
    let stored = || "STORED\r\n".to_string();
    let steps: Vec<(String, String)> = vec![
        ("set neg 0 -1 1\r\nx\r\n".into(), stored()),
        ("get neg\r\n".into(), "END\r\n".into()),
        ("add neg 0 0 1\r\nx\r\n".into(), stored()),
        ("get neg\r\n".into(), hit("neg")),
        ("set rel 0 5 1\r\nx\r\n".into(), stored()),
        ("get rel\r\n".into(), hit("rel")),
        ("set days 0 2592000 1\r\nx\r\n".into(), stored()),
        ("get days\r\n".into(), hit("days")),
        // one more second than 30 days: a unix time in 1970
        ("set past 0 2592001 1\r\nx\r\n".into(), stored()),
        ("get past\r\n".into(), "END\r\n".into()),
        (format!("set past 0 {} 1\r\nx\r\n", now - 100), stored()),
        ("get past\r\n".into(), "END\r\n".into()),
        ("set past 0 1000000000 1\r\nx\r\n".into(), stored()),
        ("get past\r\n".into(), "END\r\n".into()),
        (format!("set future 0 {} 1\r\nx\r\n", now + 1000), stored()),
        ("get future\r\n".into(), hit("future")),
        // touch and gat move the deadline the same ways
        (
            format!("touch future {}\r\n", now - 100),
            "TOUCHED\r\n".into(),
        ),
        ("get future\r\n".into(), "END\r\n".into()),
        ("set t 0 -1 1\r\nx\r\n".into(), stored()),
        ("touch t 0\r\n".into(), "NOT_FOUND\r\n".into()),
        ("set t 0 0 1\r\nx\r\n".into(), stored()),
        ("gat 2592001 t\r\n".into(), hit("t")),
        ("get t\r\n".into(), "END\r\n".into()),
    ];
    transcript(server, &steps);
}
both!(exptime_forms, &[]);

const FLUSH_DISABLED: Table = &[
    (b"set f 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"flush_all\r\n", b"CLIENT_ERROR flush_all not allowed\r\n"),
    (
        b"flush_all 0\r\n",
        b"CLIENT_ERROR flush_all not allowed\r\n",
    ),
    (b"flush_all noreply\r\n", b""),
    (b"get f\r\n", b"VALUE f 0 1\r\nx\r\nEND\r\n"),
];
table!(flush_disabled, &["-F"], FLUSH_DISABLED);

const SHUTDOWN_REFUSED: Table = &[
    (b"shutdown\r\n", b"ERROR: shutdown not enabled\r\n"),
    (b"shutdown graceful\r\n", b"ERROR: shutdown not enabled\r\n"),
    (b"set s 0 0 1\r\nx\r\n", b"STORED\r\n"),
];
table!(shutdown_refused, &[], SHUTDOWN_REFUSED);

/// With -A, `shutdown` stops the server: the connection closes and the port
/// stops accepting.
fn shutdown_enabled(server: &Server) {
    let addr = server.tcp_addr();
    let mut conn = server.connect();
    conn.roundtrip("set s 0 0 1\r\nx\r\n", "STORED\r\n");
    conn.send("shutdown\r\n");
    conn.expect_closed();
    let refused = common::eventually(std::time::Duration::from_secs(5), || {
        std::net::TcpStream::connect(addr).is_err()
    });
    assert!(refused, "{addr} still accepts connections after `shutdown`");
}
both!(shutdown_enabled, &["-A"]);

const CAS_DISABLED: Table = &[
    (b"set a 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"gets a\r\n", b"VALUE a 0 1 0\r\nx\r\nEND\r\n"),
    (b"gats 0 a\r\n", b"VALUE a 0 1 0\r\nx\r\nEND\r\n"),
    // with -C no cas can match, not even 0
    (b"cas a 0 0 1 0\r\ny\r\n", b"EXISTS\r\n"),
    (b"cas missing 0 0 1 0\r\ny\r\n", b"NOT_FOUND\r\n"),
    (b"get a\r\n", b"VALUE a 0 1\r\nx\r\nEND\r\n"),
];
table!(cas_disabled, &["-C"], CAS_DISABLED);

const CACHE_MEMLIMIT: Table = &[
    (b"cache_memlimit 100\r\n", b"OK\r\n"),
    (b"cache_memlimit 8\r\n", b"OK\r\n"),
    (
        b"cache_memlimit 7\r\n",
        b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n",
    ),
    (
        b"cache_memlimit 0\r\n",
        b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n",
    ),
    (b"cache_memlimit 1 noreply\r\n", b""),
    (b"cache_memlimit 64 noreply\r\n", b""),
    (b"cache_memlimit abc\r\n", b"ERROR\r\n"),
    (b"cache_memlimit\r\n", b"ERROR\r\n"),
    (b"set a 0 0 1\r\nx\r\n", b"STORED\r\n"),
];
table!(cache_memlimit, &[], CACHE_MEMLIMIT);

const STATS_FIXED_REPLIES: Table = &[
    // on an empty cache
    (b"stats items\r\n", b"END\r\n"),
    (b"stats sizes\r\n", b"STAT sizes_status disabled\r\nEND\r\n"),
    (b"stats reset\r\n", b"RESET\r\n"),
    (b"stats reset noreply\r\n", b"RESET\r\n"),
    (b"stats bogus\r\n", b"ERROR\r\n"),
];
table!(stats_fixed_replies, &[], STATS_FIXED_REPLIES);
