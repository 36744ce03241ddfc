//! memcached's binary protocol as byte transcripts: every opcode memcached
//! 1.6.18 answers, every status it uses, quiet semantics, opaque and cas
//! echoed, pipelines, frames split at every byte, and the malformed
//! frames (bad magic, long keys, wrong extras, lying lengths, oversized
//! values) with memcached's status or close.
//!
//! Every conversation runs twice, against ferrocache (`<name>::ferrocache`)
//! and against Debian's memcached 1.6.18 (`<name>::memcached`), with the
//! same frames: the expectations are what memcached really sends. cas
//! uniques are compared by order of first appearance on the connection
//! (`cas(n)`: the n-th distinct unique shown; requests name them the same
//! way with `seen(n)`), and the version text is not compared.

#[macro_use]
mod common;

use common::binary::*;

fn hit(op: u8, flags: u32, value: &str, cas: u64) -> Resp {
    Resp::hit(op, flags, value, cas)
}

fn err(op: u8, status: u16) -> Resp {
    Resp::error(op, status)
}

/// A GETK/GATK miss: the key comes back instead of the text.
fn miss_k(op: u8, key: &str) -> Resp {
    resp(op).status(NOT_FOUND).key(key)
}

binary!(
    get_family,
    &[],
    vec![
        step(
            vec![req(GET).key("a"), req(GETK).key("a")],
            vec![err(GET, NOT_FOUND), miss_k(GETK, "a")],
        ),
        // quiet misses are silent; the noop flushes
        step(
            vec![req(GETQ).key("a"), req(GETKQ).key("a"), req(NOOP)],
            vec![resp(NOOP)],
        ),
        step(
            vec![store(SET, "a", 0xdead_beef, "hello").opaque(7)],
            vec![resp(SET).cas(1).opaque(7)],
        ),
        step(
            vec![
                req(GET).key("a").opaque(1),
                req(GETK).key("a").opaque(2),
                req(GETQ).key("a").opaque(3),
                req(GETKQ).key("a").opaque(4),
            ],
            vec![
                hit(GET, 0xdead_beef, "hello", 1).opaque(1),
                hit(GETK, 0xdead_beef, "hello", 1).key("a").opaque(2),
                hit(GETQ, 0xdead_beef, "hello", 1).opaque(3),
                hit(GETKQ, 0xdead_beef, "hello", 1).key("a").opaque(4),
            ],
        ),
        // a key is any bytes: spaces, CR LF, NUL
        step(
            vec![store(SET, "a b\r\n\0", 1, "x")],
            vec![resp(SET).cas(2)],
        ),
        step(
            vec![req(GETK).key("a b\r\n\0")],
            vec![hit(GETK, 1, "x", 2).key("a b\r\n\0")],
        ),
        // a value is any bytes, and may be empty
        step(
            vec![store(SET, "e", 0, ""), req(GET).key("e")],
            vec![resp(SET).cas(3), hit(GET, 0, "", 3)],
        ),
    ]
);

binary!(
    storage_and_cas,
    &[],
    vec![
        step(
            vec![store(ADD, "k", 1, "v1"), store(ADD, "k", 1, "v2")],
            vec![resp(ADD).cas(1), err(ADD, EXISTS)],
        ),
        step(
            vec![store(REPLACE, "nope", 1, "v"), store(REPLACE, "k", 2, "v3")],
            vec![err(REPLACE, NOT_FOUND), resp(REPLACE).cas(2)],
        ),
        // quiet: success is silent, failures are not
        step(
            vec![
                store(SETQ, "q", 0, "1"),
                store(ADDQ, "q", 0, "2"),
                store(REPLACEQ, "nope", 0, "3"),
                store(ADDQ, "q2", 0, "4"),
                store(REPLACEQ, "q2", 5, "5"),
                req(GET).key("q2"),
            ],
            vec![
                err(ADDQ, EXISTS),
                err(REPLACEQ, NOT_FOUND),
                hit(GET, 5, "5", 3)
            ],
        ),
        // a cas makes set, add and replace compare-and-swap
        step(
            vec![store(SET, "k", 0, "x").cas(99_999_999)],
            vec![err(SET, EXISTS)],
        ),
        step(
            vec![store(ADD, "missing", 0, "x").cas(99_999_999)],
            vec![err(ADD, NOT_FOUND)],
        ),
        step(
            vec![store(ADD, "k", 7, "swapped").seen(2)],
            vec![resp(ADD).cas(4)],
        ),
        step(vec![req(GET).key("k")], vec![hit(GET, 7, "swapped", 4)],),
        // a stale unique no longer works
        step(
            vec![store(REPLACE, "k", 0, "late").seen(2)],
            vec![err(REPLACE, EXISTS)],
        ),
    ]
);

binary!(
    append_prepend,
    &[],
    vec![
        step(
            vec![
                req(APPEND).key("m").value("x"),
                req(PREPENDQ).key("m").value("x"),
            ],
            vec![err(APPEND, NOT_STORED), err(PREPENDQ, NOT_STORED)],
        ),
        step(
            vec![
                store(SET, "m", 3, "mid"),
                req(APPEND).key("m").value(">"),
                req(PREPENDQ).key("m").value("<"),
                req(GET).key("m"),
            ],
            vec![
                resp(SET).cas(1),
                resp(APPEND).cas(2),
                hit(GET, 3, "<mid>", 3),
            ],
        ),
        // with a unique, only if it is the item's
        step(
            vec![req(APPEND).key("m").value("!").seen(1)],
            vec![err(APPEND, EXISTS)],
        ),
        step(
            vec![req(PREPEND).key("m").value("!").seen(3)],
            vec![resp(PREPEND).cas(4)],
        ),
    ]
);

binary!(
    delete,
    &[],
    vec![
        step(
            vec![req(DELETE).key("d"), req(DELETEQ).key("d")],
            vec![err(DELETE, NOT_FOUND), err(DELETEQ, NOT_FOUND)],
        ),
        step(
            vec![store(SET, "d", 0, "1"), store(SET, "d2", 0, "1")],
            vec![resp(SET).cas(1), resp(SET).cas(2)],
        ),
        // with a unique, only if it is the item's
        step(
            vec![req(DELETE).key("d").seen(2)],
            vec![err(DELETE, EXISTS)],
        ),
        step(
            vec![
                req(DELETE).key("d").seen(1),
                req(DELETEQ).key("d2"),
                req(GET).key("d"),
                req(GET).key("d2"),
            ],
            vec![resp(DELETE), err(GET, NOT_FOUND), err(GET, NOT_FOUND)],
        ),
    ]
);

binary!(
    incr_decr,
    &[],
    vec![
        // a missing counter is created from its initial value...
        step(
            vec![arith(INCR, "n", 5, 10, 0), arith(INCR, "n", 5, 10, 0)],
            vec![Resp::number(INCR, 10, 1), Resp::number(INCR, 15, 2)],
        ),
        // ...unless the expiration is all ones
        step(
            vec![arith(DECR, "none", 1, 10, u32::MAX)],
            vec![err(DECR, NOT_FOUND)],
        ),
        // decr stops at 0; incr wraps at 2^64
        step(
            vec![
                arith(DECR, "n", 100, 0, 0),
                arith(INCR, "n", u64::MAX, 0, 0),
                arith(INCR, "n", 2, 0, 0),
            ],
            vec![
                Resp::number(DECR, 0, 3),
                Resp::number(INCR, u64::MAX, 4),
                Resp::number(INCR, 1, 5),
            ],
        ),
        // quiet: silent on success
        step(
            vec![
                arith(INCRQ, "n", 1, 0, 0),
                arith(DECRQ, "n", 1, 0, 0),
                arith(INCRQ, "none", 1, 0, u32::MAX),
                req(GET).key("n"),
            ],
            // rewritten in place, padded with spaces, as in text
            vec![err(INCRQ, NOT_FOUND), hit(GET, 0, &format!("{:<20}", 1), 6)],
        ),
        // the value as text: a created counter is stored in decimal
        step(
            vec![arith(INCR, "new", 0, 1234, 0), req(GET).key("new")],
            vec![Resp::number(INCR, 1234, 7), hit(GET, 0, "1234", 7)],
        ),
        step(
            vec![
                store(SET, "t", 0, "text"),
                arith(INCR, "t", 1, 0, 0),
                arith(DECRQ, "t", 1, 0, 0),
            ],
            vec![
                resp(SET).cas(8),
                err(INCR, NON_NUMERIC),
                err(DECRQ, NON_NUMERIC)
            ],
        ),
        // with a unique, only if it is the item's
        step(
            vec![arith(INCR, "n", 1, 0, 0).seen(1)],
            vec![err(INCR, EXISTS)],
        ),
        step(
            vec![arith(INCR, "n", 1, 0, 0).seen(6)],
            vec![Resp::number(INCR, 2, 9)],
        ),
    ]
);

binary!(
    touch_and_gat,
    &[],
    vec![
        step(
            vec![
                req(TOUCH).key("t").extras(100u32.to_be_bytes()),
                req(GAT).key("t").extras(100u32.to_be_bytes()),
                req(GATK).key("t").extras(100u32.to_be_bytes()),
                req(GATQ).key("t").extras(100u32.to_be_bytes()),
                req(GATKQ).key("t").extras(100u32.to_be_bytes()),
                req(NOOP),
            ],
            vec![
                err(TOUCH, NOT_FOUND),
                err(GAT, NOT_FOUND),
                miss_k(GATK, "t"),
                resp(NOOP),
            ],
        ),
        step(vec![store(SET, "t", 9, "val")], vec![resp(SET).cas(1)],),
        // touch answers the flags only
        step(
            vec![
                req(TOUCH).key("t").extras(1000u32.to_be_bytes()),
                req(GAT).key("t").extras(1000u32.to_be_bytes()),
                req(GATK).key("t").extras(1000u32.to_be_bytes()),
                req(GATQ).key("t").extras(1000u32.to_be_bytes()),
                req(GATKQ).key("t").extras(1000u32.to_be_bytes()),
            ],
            vec![
                hit(TOUCH, 9, "", 1),
                hit(GAT, 9, "val", 1),
                hit(GATK, 9, "val", 1).key("t"),
                hit(GATQ, 9, "val", 1),
                hit(GATKQ, 9, "val", 1).key("t"),
            ],
        ),
        // an expiration in the past: the item is gone after the touch
        step(
            vec![
                req(GAT).key("t").extras(1_000_000_000u32.to_be_bytes()),
                req(GET).key("t"),
            ],
            vec![hit(GAT, 9, "val", 1), err(GET, NOT_FOUND)],
        ),
    ]
);

binary!(
    flush_noop_version_quit,
    &[],
    vec![
        step(
            vec![store(SET, "f", 0, "1"), req(FLUSH), req(GET).key("f")],
            vec![resp(SET).cas(1), resp(FLUSH), err(GET, NOT_FOUND)],
        ),
        step(
            vec![
                store(SETQ, "f", 0, "1"),
                req(FLUSHQ),
                req(GETQ).key("f"),
                req(NOOP)
            ],
            vec![resp(NOOP)],
        ),
        // with a delay a day ahead, nothing is flushed yet
        step(
            vec![
                store(SET, "f", 0, "2"),
                req(FLUSH).extras(86_400u32.to_be_bytes()),
                req(GET).key("f"),
            ],
            vec![resp(SET).cas(2), resp(FLUSH), hit(GET, 0, "2", 2)],
        ),
        step(vec![req(VERSION)], vec![resp(VERSION).value("VERSION")]),
        closes(vec![req(QUIT).opaque(3)], vec![resp(QUIT).opaque(3)]),
    ]
);

binary!(
    quitq_closes_silently,
    &[],
    vec![closes(vec![req(QUITQ)], vec![])]
);

binary!(
    flush_refused_under_dash_f,
    &["-F"],
    vec![step(
        vec![req(FLUSH), req(FLUSHQ)],
        vec![err(FLUSH, AUTH_ERROR), err(FLUSHQ, AUTH_ERROR)]
    )]
);

binary!(
    stat_keys,
    &[],
    vec![
        step(
            vec![req(STAT).key("conns"), req(STAT).key("bogus")],
            vec![err(STAT, NOT_FOUND), err(STAT, NOT_FOUND)],
        ),
        // reset and detail on/off answer the terminator alone
        step(
            vec![
                req(STAT).key("reset"),
                req(STAT).key("detail on"),
                req(STAT).key("detail off"),
            ],
            vec![resp(STAT), resp(STAT), resp(STAT)],
        ),
        step(
            vec![req(STAT).key("detail dump")],
            vec![resp(STAT).key("detailed").value("END\r\n"), resp(STAT)],
        ),
        step(
            vec![req(STAT).key("sizes")],
            vec![resp(STAT).key("sizes_status").value("disabled"), resp(STAT)],
        ),
        step(
            vec![req(STAT).key("detail nonsense")],
            vec![err(STAT, NOT_FOUND)],
        ),
    ]
);

// Opcodes memcached does not serve: "Unknown command", and then it
// throws away as many bytes as the body length after the extras and key
// it has already read: a frame with a key or extras takes that many bytes
// of what follows with it.
binary!(
    unknown_opcodes,
    &[],
    vec![
        step(vec![req(0x42)], vec![err(0x42, UNKNOWN)]),
        step(
            vec![req(0x42).value("body"), req(NOOP).opaque(1)],
            vec![err(0x42, UNKNOWN), resp(NOOP).opaque(1)],
        ),
        // with a key: 2 bytes more than the frame are thrown away
        step(
            vec![req(0x42).key("ab").value("cd").trailer("xx"), req(NOOP)],
            vec![err(0x42, UNKNOWN), resp(NOOP)],
        ),
        step(
            vec![
                req(VERBOSITY).extras(1u32.to_be_bytes()).trailer([0u8; 4]),
                req(NOOP),
            ],
            vec![err(VERBOSITY, UNKNOWN), resp(NOOP)],
        ),
        // without -S the SASL opcodes are unknown too
        step(
            vec![
                req(SASL_LIST),
                req(SASL_AUTH).key("PLAIN").value("\0u\0p"),
                req(SASL_STEP).key("PLAIN").value("x"),
                req(NOOP),
            ],
            vec![
                err(SASL_LIST, UNKNOWN),
                err(SASL_AUTH, UNKNOWN),
                err(SASL_STEP, UNKNOWN),
                resp(NOOP),
            ],
        ),
    ]
);
