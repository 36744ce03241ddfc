//! The meta commands (`mg ms md ma mn me`) as byte transcripts, each run
//! against ferrocache and against the reference memcached 1.6, so every
//! expected reply is one memcached really gives; then procedural checks for
//! what varies between runs (cas uniques, TTLs counting down) and for the
//! two flags ferrocache takes from newer memcached releases (`E`, `md x`),
//! which 1.6.18 refuses.
//!
//! Transcripts avoid `t` and `l` values that a clock tick between two
//! requests could change; those are checked with tolerances below.

#[macro_use]
mod common;

use common::{key_of, Server};

type Table = &'static [(&'static [u8], &'static [u8])];

const MG: Table = &[
    (b"set foo 5 0 3\r\nbar\r\n", b"STORED\r\n"),
    (b"mg foo\r\n", b"HD\r\n"),
    (b"mg foo v\r\n", b"VA 3\r\nbar\r\n"),
    // returned flags come back in the order they were asked for
    (
        b"mg foo s v f k O123\r\n",
        b"VA 3 s3 f5 kfoo O123\r\nbar\r\n",
    ),
    (b"mg foo k s f\r\n", b"HD kfoo s3 f5\r\n"),
    (b"mg foo t\r\n", b"HD t-1\r\n"),
    // q hides only the miss
    (b"mg foo q v\r\n", b"VA 3\r\nbar\r\n"),
    (b"mg foo q\r\n", b"HD\r\n"),
    (b"mg missing\r\n", b"EN\r\n"),
    (b"mg missing v s f t c\r\n", b"EN\r\n"),
    (b"mg missing v k O5\r\n", b"EN kmissing O5\r\n"),
    (b"mg missing q v k O5\r\n", b""),
    // quiet pipelines end with mn
    (
        b"mg missing q v\r\nmg foo q v\r\nmg other q v\r\nmn\r\n",
        b"VA 3\r\nbar\r\nMN\r\n",
    ),
    (b"mn\r\n", b"MN\r\n"),
    (b"mn ignored args\r\n", b"MN\r\n"),
    // every known flag is accepted, meaningful here or not
    (b"mg foo P L I D1 J1 C1 F1 MS\r\n", b"HD\r\n"),
    // an empty value
    (b"set e 0 0 0\r\n\r\n", b"STORED\r\n"),
    (b"mg e v s\r\n", b"VA 0 s0\r\n\r\n"),
    // binary data
    (b"set bin 0 0 4\r\n\r\n\0\xff\r\n", b"STORED\r\n"),
    (b"mg bin v\r\n", b"VA 4\r\n\r\n\0\xff\r\n"),
];
table!(mg_basics, &[], MG);

const MG_ERRORS: Table = &[
    (b"set foo 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"mg\r\n", b"ERROR\r\n"),
    (b"mg \r\n", b"ERROR\r\n"),
    (b"mg foo Z\r\n", b"CLIENT_ERROR invalid flag\r\n"),
    (b"mg foo v v\r\n", b"CLIENT_ERROR duplicate flag\r\n"),
    (b"mg foo O1 O2\r\n", b"CLIENT_ERROR duplicate flag\r\n"),
    (
        b"mg foo T\r\n",
        b"CLIENT_ERROR bad token in command line format\r\n",
    ),
    (
        b"mg foo Tabc\r\n",
        b"CLIENT_ERROR bad token in command line format\r\n",
    ),
    (
        b"mg foo Nx\r\n",
        b"CLIENT_ERROR bad token in command line format\r\n",
    ),
    (
        b"mg foo Rx\r\n",
        b"CLIENT_ERROR bad token in command line format\r\n",
    ),
    (
        b"mg foo M\r\n",
        b"CLIENT_ERROR incorrect length for M token\r\n",
    ),
    (
        b"mg foo Jx\r\n",
        b"CLIENT_ERROR invalid numeric initial value\r\n",
    ),
    (
        b"mg foo Dx\r\n",
        b"CLIENT_ERROR invalid numeric delta value\r\n",
    ),
    // opaque tokens: 32 bytes with the O, no more
    (
        b"mg foo O1234567890123456789012345678901\r\n",
        b"HD O1234567890123456789012345678901\r\n",
    ),
    (
        b"mg foo O12345678901234567890123456789012\r\n",
        b"CLIENT_ERROR opaque token too long\r\n",
    ),
    // 17 flags are fine, 18 too many (no `c`: each server's unique is its
    // own, see docs/differences.md; `N` does nothing on a hit)
    (
        b"mg foo v N30 f s k t h l O1 q u P L I D1 J1 F1\r\n",
        b"VA 1 f0 s1 kfoo t-1 h1 l0 O1\r\nx\r\n",
    ),
    (
        b"mg foo v c f s k t h l O1 q u P L I D1 J1 F1 C1\r\n",
        b"CLIENT_ERROR options flags are too long\r\n",
    ),
    // q never hides an error
    (b"mg foo q Z\r\n", b"CLIENT_ERROR invalid flag\r\n"),
    (b"mg foo v\r\n", b"VA 1\r\nx\r\n"),
];
table!(mg_errors, &[], MG_ERRORS);

/// Which fault memcached names when a request has several: a repeated or
/// unknown flag (or a byte above 126, which it calls a duplicate) stops its
/// flag pass at once; the other faults are noted and the pass goes on, so
/// the last of them is named. An unreadable `F` names nothing of its own.
const FLAG_FAULT_ORDER: Table = &[
    (
        b"mg Y=== Cabc b\r\n",
        b"CLIENT_ERROR error decoding key\r\n",
    ),
    (
        b"mg YQ== b Cabc\r\n",
        b"CLIENT_ERROR bad token in command line format\r\n",
    ),
    (
        b"mg a Tx Jx\r\n",
        b"CLIENT_ERROR invalid numeric initial value\r\n",
    ),
    (
        b"mg a Jx Tx\r\n",
        b"CLIENT_ERROR bad token in command line format\r\n",
    ),
    (
        b"mg a Dx MEE\r\n",
        b"CLIENT_ERROR incorrect length for M token\r\n",
    ),
    (b"mg a MEE Ms\r\n", b"CLIENT_ERROR duplicate flag\r\n"),
    (b"mg a Tx v v\r\n", b"CLIENT_ERROR duplicate flag\r\n"),
    (b"mg a Tx Z\r\n", b"CLIENT_ERROR invalid flag\r\n"),
    (
        b"mg a Tx F-1\r\n",
        b"CLIENT_ERROR bad token in command line format\r\n",
    ),
    (
        b"mg a F-1 Tx\r\n",
        b"CLIENT_ERROR bad token in command line format\r\n",
    ),
    (b"mg a F-1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"mg a \xff\r\n", b"CLIENT_ERROR duplicate flag\r\n"),
    (b"mg a v \x80\r\n", b"CLIENT_ERROR duplicate flag\r\n"),
    (
        b"ms a 1 Cx Tx MXX\r\nx\r\n",
        b"CLIENT_ERROR incorrect length for M token\r\n",
    ),
    (b"ms a 1 MXX Z\r\nx\r\n", b"CLIENT_ERROR invalid flag\r\n"),
    (
        b"md a MXX Z\r\n",
        b"CLIENT_ERROR invalid or duplicate flag\r\n",
    ),
    (b"mg a v\r\n", b"EN\r\n"),
];
table!(flag_fault_order, &[], FLAG_FAULT_ORDER);

fn mg_key_lengths(server: &Server) {
    let k250 = key_of(250);
    let k251 = key_of(251);
    common::transcript(
        server,
        &[
            (format!("mg {k250} v\r\n"), "EN\r\n".to_string()),
            (format!("ms {k250} 1\r\nx\r\n"), "HD\r\n".to_string()),
            (format!("mg {k250} v\r\n"), "VA 1\r\nx\r\n".to_string()),
            (
                format!("mg {k251} v\r\n"),
                "CLIENT_ERROR bad command line format\r\n".to_string(),
            ),
            // the key is checked before the flag count
            (
                format!("mg {k251} 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18\r\n"),
                "CLIENT_ERROR bad command line format\r\n".to_string(),
            ),
            // an over-long ms key leaves its data to be read as a command
            (
                format!("ms {k251} 1\r\nx\r\n"),
                "CLIENT_ERROR bad command line format\r\nERROR\r\n".to_string(),
            ),
            (
                format!("md {k251}\r\n"),
                "CLIENT_ERROR bad command line format\r\n".to_string(),
            ),
            (
                format!("ma {k251}\r\n"),
                "CLIENT_ERROR bad command line format\r\n".to_string(),
            ),
            (
                format!("me {k251}\r\n"),
                "CLIENT_ERROR bad command line format\r\n".to_string(),
            ),
        ],
    );
}
both!(mg_key_lengths, &[]);

const BASE64_KEYS: Table = &[
    // a key stored plainly, read through its base64 form: k echoes it plain
    (b"set foo 0 0 3\r\nbar\r\n", b"STORED\r\n"),
    (b"mg Zm9v b k v\r\n", b"VA 3 kfoo\r\nbar\r\n"),
    // a binary key: stored encoded, echoed encoded with a b
    (b"ms AAEC 1 b k\r\nx\r\n", b"HD kAAEC b\r\n"),
    (b"mg AAEC b k v\r\n", b"VA 1 kAAEC b\r\nx\r\n"),
    (b"mg AAEC b v\r\n", b"VA 1\r\nx\r\n"),
    // a miss echoes the key as sent, re-encoded
    (
        b"mg bWlzc2luZw== b k O5 v\r\n",
        b"EN kbWlzc2luZw== b O5\r\n",
    ),
    (b"mg YQ=a b k\r\n", b"EN kYQA= b\r\n"),
    (b"mg Zm8= b k\r\n", b"EN kZm8= b\r\n"),
    // not base64
    (b"mg foo b k\r\n", b"CLIENT_ERROR error decoding key\r\n"),
    (b"mg Zm8 b k\r\n", b"CLIENT_ERROR error decoding key\r\n"),
    (b"mg Y=== b k\r\n", b"CLIENT_ERROR error decoding key\r\n"),
    (b"mg Zm9v= b\r\n", b"CLIENT_ERROR error decoding key\r\n"),
    (
        b"ms k1 2 b\r\nzz\r\n",
        b"CLIENT_ERROR error decoding key\r\n",
    ),
    (
        b"md k2 b\r\n",
        b"CLIENT_ERROR invalid or duplicate flag\r\n",
    ),
    (
        b"ma k2 b\r\n",
        b"CLIENT_ERROR invalid or duplicate flag\r\n",
    ),
    // md and ma echo the key as sent
    (b"md bm9wZQ== b k\r\n", b"NF kbm9wZQ== b\r\n"),
    (b"ma bm9rZXk0 b k N0 J7 v\r\n", b"VA 1 kbm9rZXk0 b\r\n7\r\n"),
    (b"get nokey4\r\n", b"VALUE nokey4 0 1\r\n7\r\nEND\r\n"),
    (b"md AAEC b q\r\n", b""),
    (b"mg AAEC b v\r\n", b"EN\r\n"),
];
table!(base64_keys, &[], BASE64_KEYS);

const WIN_STALE: Table = &[
    // N creates a stub on a miss and hands this client the win
    (b"mg v1 N30 v\r\n", b"VA 0 W\r\n\r\n"),
    (b"mg v1 N30 v\r\n", b"VA 0 Z\r\n\r\n"),
    (b"mg v1 v\r\n", b"VA 0 Z\r\n\r\n"),
    (b"mg v1 q\r\n", b"HD Z\r\n"),
    // the stub's TTL is set where N stands: a t before it shows -1
    (b"mg v2 t N30 s\r\n", b"HD t-1 s0 W\r\n"),
    (b"mg v3 N30 t\r\n", b"HD t30 W\r\n"),
    // the one who recaches replaces the stub: clean again
    (b"ms v1 3 T0\r\nnew\r\n", b"HD\r\n"),
    (b"mg v1 v\r\n", b"VA 3\r\nnew\r\n"),
    // R wins when less TTL remains than asked
    (b"set r 0 1000 1\r\nx\r\n", b"STORED\r\n"),
    (b"mg r R30 v\r\n", b"VA 1\r\nx\r\n"),
    (b"mg r R2000\r\n", b"HD W\r\n"),
    (b"mg r R2000\r\n", b"HD Z\r\n"),
    // never on an item without a TTL
    (b"set forever 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"mg forever R2000\r\n", b"HD\r\n"),
    // md I marks stale: the first reader wins, the next ones see Z and X
    (b"set s 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"md s I\r\n", b"HD\r\n"),
    (b"mg s v\r\n", b"VA 1 X W\r\nx\r\n"),
    (b"mg s v\r\n", b"VA 1 Z X\r\nx\r\n"),
    (b"mg s\r\n", b"HD Z X\r\n"),
    // invalidating again hands the token out again
    (b"md s I q\r\n", b""),
    (b"mg s\r\n", b"HD X W\r\n"),
    // a plain set clears it all
    (b"ms s 1 I\r\nz\r\n", b"HD\r\n"),
    (b"mg s v\r\n", b"VA 1\r\nz\r\n"),
    // ms I with an older cas stores, but stale
    (b"ms s 1 C1 I\r\nw\r\n", b"HD\r\n"),
    (b"mg s v\r\n", b"VA 1 X W\r\nw\r\n"),
    // but not C0
    (b"ms s 1 C0 I\r\nv\r\n", b"EX\r\n"),
    // without I an older cas is refused
    (b"ms s 1 C1\r\nq\r\n", b"EX\r\n"),
    (b"mg s v\r\n", b"VA 1 Z X\r\nw\r\n"),
    // md I on a missing key
    (b"md nothere I\r\n", b"NF\r\n"),
    // an N already past answers with the stub it made, which is then gone
    (b"mg past N-1 v\r\n", b"VA 0 W\r\n\r\n"),
    (b"mg past v\r\n", b"EN\r\n"),
    (b"mg past q N-100\r\n", b"HD W\r\n"),
    (b"mg past q\r\n", b""),
    (b"ma past N-1 J5 v\r\n", b"VA 1\r\n5\r\n"),
    (b"ma past v\r\n", b"NF\r\n"),
];
table!(win_and_stale, &[], WIN_STALE);

const MS: Table = &[
    (b"ms k1 3\r\nabc\r\n", b"HD\r\n"),
    (b"mg k1 v f t\r\n", b"VA 3 f0 t-1\r\nabc\r\n"),
    (b"ms k1 3 F7 k O9\r\nxyz\r\n", b"HD kk1 O9\r\n"),
    (b"mg k1 v f\r\n", b"VA 3 f7\r\nxyz\r\n"),
    (b"ms k1 3 q\r\nabc\r\n", b""),
    (b"mg k1 v f\r\n", b"VA 3 f0\r\nabc\r\n"),
    // modes: E add, R replace, A append, P prepend, S set
    (b"ms k1 3 ME\r\nnew\r\n", b"NS\r\n"),
    (b"ms k1 3 ME q\r\nnew\r\n", b"NS\r\n"),
    (b"ms k9 3 MR\r\nabc\r\n", b"NS\r\n"),
    (b"ms k9 3 MA\r\nabc\r\n", b"NS\r\n"),
    (b"ms k9 3 MP\r\nabc\r\n", b"NS\r\n"),
    (b"ms k9 3 ME\r\nabc\r\n", b"HD\r\n"),
    (b"ms k9 3 MR F3\r\ndef\r\n", b"HD\r\n"),
    (b"ms k9 2 MA F5\r\ngh\r\n", b"HD\r\n"),
    (b"ms k9 2 MP\r\nAB\r\n", b"HD\r\n"),
    (b"ms k9 1 MS\r\nZ\r\n", b"HD\r\n"),
    (b"mg k9 v f\r\n", b"VA 1 f0\r\nZ\r\n"),
    (b"ms k9 2 MA\r\nyz\r\n", b"HD\r\n"),
    (b"get k9\r\n", b"VALUE k9 0 3\r\nZyz\r\nEND\r\n"),
    // c with nothing stored is 0
    (b"ms k1 1 ME c\r\nx\r\n", b"NS c0\r\n"),
    // cas: C on a missing key, and a mismatch
    (b"ms nope 1 C5\r\nz\r\n", b"NF\r\n"),
    (b"ms nope 1 MR C5 c\r\nz\r\n", b"NF c0\r\n"),
    (b"ms nope 1 MA C5\r\nz\r\n", b"NS\r\n"),
    (b"ms k1 1 C99999\r\nz\r\n", b"EX\r\n"),
    (b"ms k1 1 C99999 q k\r\nz\r\n", b"EX kk1\r\n"),
    (b"ms k1 1 MA C99999\r\nz\r\n", b"EX\r\n"),
    // C0 compares nothing in append and prepend modes (set still refuses it)
    (b"ms k1 1 MA C0\r\n!\r\n", b"HD\r\n"),
    (b"ms k1 1 MP C0\r\n<\r\n", b"HD\r\n"),
    (b"mg k1 v\r\n", b"VA 5\r\n<abc!\r\n"),
    (b"ms k1 3 C0\r\nabc\r\n", b"EX\r\n"),
    (b"ms k1 3\r\nabc\r\n", b"HD\r\n"),
    // add ignores C
    (b"ms addme 1 ME C5\r\nz\r\n", b"HD\r\n"),
    (b"mg k1 v\r\n", b"VA 3\r\nabc\r\n"),
    // mg ignores the ms-only flags and ms the mg-only ones
    (b"ms k1 2 v s t h l u N1 R1 D1 J1\r\nok\r\n", b"HD\r\n"),
    (b"mg k1 v\r\n", b"VA 2\r\nok\r\n"),
];
table!(ms_modes_and_cas, &[], MS);

const MS_ERRORS: Table = &[
    (b"set k1 0 0 2\r\nok\r\n", b"STORED\r\n"),
    (b"ms\r\n", b"ERROR\r\n"),
    (b"ms k1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    // a length that does not read leaves the data to be read as a command
    (
        b"ms k1 abc\r\nzz\r\n",
        b"CLIENT_ERROR bad command line format\r\nERROR\r\n",
    ),
    (b"ms k1 -1\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (
        b"ms k1 99999999999999999999\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    // flag faults swallow the data
    (b"ms k1 2 Z\r\nzz\r\n", b"CLIENT_ERROR invalid flag\r\n"),
    (
        b"ms k1 2 T1 T2\r\nzz\r\n",
        b"CLIENT_ERROR duplicate flag\r\n",
    ),
    (
        b"ms k1 1 F-1\r\nx\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (
        b"ms k1 1 Fabc\r\nx\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (
        b"ms k1 1 Tx\r\nx\r\n",
        b"CLIENT_ERROR bad token in command line format\r\n",
    ),
    (
        b"ms k1 1 C-1\r\nx\r\n",
        b"CLIENT_ERROR bad token in command line format\r\n",
    ),
    (
        b"ms k1 3 MX\r\nabc\r\n",
        b"CLIENT_ERROR invalid mode for ms M token\r\n",
    ),
    (
        b"ms k1 3 Ms\r\nabc\r\n",
        b"CLIENT_ERROR invalid mode for ms M token\r\n",
    ),
    (
        b"ms k1 3 MEE\r\nabc\r\n",
        b"CLIENT_ERROR incorrect length for M token\r\n",
    ),
    (
        b"ms k1 1 O123456789012345678901234567890123\r\nx\r\n",
        b"CLIENT_ERROR opaque token too long\r\n",
    ),
    (b"ms k1 1 q Z\r\nx\r\n", b"CLIENT_ERROR invalid flag\r\n"),
    // data longer than declared
    (
        b"ms k1 2\r\nzzz\r\n",
        b"CLIENT_ERROR bad data chunk\r\nERROR\r\n",
    ),
    // 16 flags are fine, 17 too many (and the data is not swallowed)
    (b"ms k1 1 v c f s k t h l O1 q u T0 N1 R1 P\r\nx\r\n", b""),
    (
        b"ms k1 1 v c f s k t h l O1 q u T0 N1 R1 P L I\r\nx\r\n",
        b"CLIENT_ERROR options flags too long\r\nERROR\r\n",
    ),
    // nothing stored by any of the faults
    (b"mg k1 v\r\n", b"VA 1\r\nx\r\n"),
];
table!(ms_errors, &[], MS_ERRORS);

fn ms_too_large(server: &Server) {
    let big = vec![b'v'; 2 * 1024 * 1024];
    let mut request = b"ms big 2097152 T0\r\n".to_vec();
    request.extend_from_slice(&big);
    request.extend_from_slice(b"\r\n");
    common::transcript(
        server,
        &[
            (b"set big 0 0 3\r\nold\r\n".to_vec(), b"STORED\r\n".to_vec()),
            (
                request,
                b"SERVER_ERROR object too large for cache\r\n".to_vec(),
            ),
            // the old value is gone, and the data was not read as commands
            (b"mg big v\r\n".to_vec(), b"EN\r\n".to_vec()),
        ],
    );
}
both!(ms_too_large, &["-I", "1m"]);

const MD: Table = &[
    (b"md missing\r\n", b"NF\r\n"),
    (b"md missing q\r\n", b"NF\r\n"),
    (b"md missing O1 k\r\n", b"NF O1 kmissing\r\n"),
    (b"set a 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"set b 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"md a k O7\r\n", b"HD ka O7\r\n"),
    (b"mg a\r\n", b"EN\r\n"),
    (b"md b q\r\n", b""),
    (b"get b\r\n", b"END\r\n"),
    // C0 never matches
    (b"set c 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"md c C0\r\n", b"EX\r\n"),
    (b"md c C0 q\r\n", b"EX\r\n"),
    // T without I does nothing but delete
    (b"md c T5\r\n", b"HD\r\n"),
    (b"mg c\r\n", b"EN\r\n"),
    // flags that mean nothing to md are accepted
    (b"set d 0 0 1\r\nx\r\n", b"STORED\r\n"),
    (b"md d v c f s t h l u N5 R5 J5 D5 MZ\r\n", b"HD\r\n"),
    // any flag fault reads the same
    (b"md d Z\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n"),
    (
        b"md d q q\r\n",
        b"CLIENT_ERROR invalid or duplicate flag\r\n",
    ),
    (
        b"md d Cabc\r\n",
        b"CLIENT_ERROR invalid or duplicate flag\r\n",
    ),
    (
        b"md d O123456789012345678901234567890123\r\n",
        b"CLIENT_ERROR opaque token too long\r\n",
    ),
    (
        b"md d 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18\r\n",
        b"CLIENT_ERROR options flags too long\r\n",
    ),
    (b"md\r\n", b"ERROR\r\n"),
];
table!(md_deletes, &[], MD);

const MA: Table = &[
    (b"ma n\r\n", b"NF\r\n"),
    (b"ma n q\r\n", b"NF\r\n"),
    (b"ma n t c O1 k v\r\n", b"NF O1 kn\r\n"),
    (b"ma n J5\r\n", b"NF\r\n"),
    // N creates the item holding J; the delta is not applied
    (b"ma n N0 J10 v\r\n", b"VA 2\r\n10\r\n"),
    (b"ma n v t\r\n", b"VA 2 t-1\r\n11\r\n"),
    (b"ma n MD D3 v\r\n", b"VA 1\r\n8\r\n"),
    (b"ma n MD D30 v\r\n", b"VA 1\r\n0\r\n"),
    (b"ma n M- v\r\n", b"VA 1\r\n0\r\n"),
    (
        b"ma n M+ D18446744073709551615 v\r\n",
        b"VA 20\r\n18446744073709551615\r\n",
    ),
    (b"ma n MI D2 v\r\n", b"VA 1\r\n1\r\n"),
    (b"ma n k O5 v\r\n", b"VA 1 kn O5\r\n2\r\n"),
    (b"ma n\r\n", b"HD\r\n"),
    (b"ma n q D2\r\n", b""),
    (b"ma n q v\r\n", b""),
    // the value shrank in place: memcached pads it with spaces
    (b"mg n s\r\n", b"HD s20\r\n"),
    (b"ma n D0 v\r\n", b"VA 1\r\n6\r\n"),
    // classic and meta share the counter
    (b"incr n 4\r\n", b"10\r\n"),
    (b"ma n v\r\n", b"VA 2\r\n11\r\n"),
    // an item created with q still answers
    (b"ma fresh N0 q\r\n", b"HD\r\n"),
    (b"ma fresh N0 q v\r\n", b""),
    (b"get fresh\r\n", b"VALUE fresh 0 1\r\n1\r\nEND\r\n"),
    // errors
    (b"set txt 0 0 3\r\nabc\r\n", b"STORED\r\n"),
    (
        b"ma txt\r\n",
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    ),
    (
        b"ma txt q\r\n",
        b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    ),
    (b"ma n C99999\r\n", b"EX\r\n"),
    (b"ma n C99999 q O1\r\n", b"EX O1\r\n"),
    (
        b"ma n Mx\r\n",
        b"CLIENT_ERROR invalid mode for ma M token\r\n",
    ),
    (
        b"ma n Mi\r\n",
        b"CLIENT_ERROR invalid mode for ma M token\r\n",
    ),
    (
        b"ma n MII\r\n",
        b"CLIENT_ERROR invalid or duplicate flag\r\n",
    ),
    (
        b"ma n Dabc\r\n",
        b"CLIENT_ERROR invalid or duplicate flag\r\n",
    ),
    (
        b"ma n D-1\r\n",
        b"CLIENT_ERROR invalid or duplicate flag\r\n",
    ),
    (
        b"ma n Jabc\r\n",
        b"CLIENT_ERROR invalid or duplicate flag\r\n",
    ),
    (
        b"ma n v v\r\n",
        b"CLIENT_ERROR invalid or duplicate flag\r\n",
    ),
    (b"ma n Z\r\n", b"CLIENT_ERROR invalid or duplicate flag\r\n"),
    // (memcached applies the delta before it finds the opaque too long:
    // ferrocache checks first, so this one uses an item nobody reads)
    (
        b"ma gone O123456789012345678901234567890123\r\n",
        b"CLIENT_ERROR opaque token too long\r\n",
    ),
    (b"ma\r\n", b"ERROR\r\n"),
    (b"ma n D0 v\r\n", b"VA 2\r\n11\r\n"),
];
table!(ma_arithmetic, &[], MA);

const ME: Table = &[
    (b"me\r\n", b"CLIENT_ERROR bad command line format\r\n"),
    (b"me nokey\r\n", b"EN\r\n"),
    (
        b"me Zm9v= b\r\n",
        b"CLIENT_ERROR bad command line format\r\n",
    ),
    (b"me foo b\r\n", b"CLIENT_ERROR bad command line format\r\n"),
];
table!(me_errors, &[], ME);

const INTERLEAVED: Table = &[
    // classic writes, meta reads, and back
    (b"set a 3 0 2\r\nhi\r\n", b"STORED\r\n"),
    (b"mg a v f\r\n", b"VA 2 f3\r\nhi\r\n"),
    (b"ms a 2 F9\r\nho\r\n", b"HD\r\n"),
    (b"get a\r\n", b"VALUE a 9 2\r\nho\r\nEND\r\n"),
    (b"append a 0 0 1\r\n!\r\n", b"STORED\r\n"),
    (b"mg a v\r\n", b"VA 3\r\nho!\r\n"),
    (b"md a\r\n", b"HD\r\n"),
    (b"get a\r\n", b"END\r\n"),
    (b"add a 0 0 1\r\n1\r\n", b"STORED\r\n"),
    (b"ma a D5 v\r\n", b"VA 1\r\n6\r\n"),
    (b"decr a 2\r\n", b"4\r\n"),
    (b"mg a v\r\n", b"VA 1\r\n4\r\n"),
    (b"delete a\r\n", b"DELETED\r\n"),
    (b"mg a\r\n", b"EN\r\n"),
    (b"flush_all\r\n", b"OK\r\n"),
];
table!(classic_and_meta_interleave, &[], INTERLEAVED);

/// Each meta reply's cas is the one `gets` shows, and every write that
/// changes the item takes a new one.
fn cas_agrees_with_gets(server: &Server) {
    let mut c = server.connect();
    c.roundtrip("set k 0 0 1\r\nx\r\n", "STORED\r\n");
    let (_, _, cas) = c.gets("k");
    c.roundtrip("mg k c\r\n", format!("HD c{cas}\r\n"));
    // ms c reports the new unique
    c.send("ms k 1 c\r\ny\r\n");
    let line = c.read_line();
    let ms_cas: u64 = parse_flag(&line, "HD", 'c');
    assert!(ms_cas > cas);
    assert_eq!(c.gets("k").2, ms_cas);
    // a matching C stores, the old one no longer does
    c.roundtrip(format!("ms k 1 C{ms_cas}\r\nz\r\n"), "HD\r\n");
    c.roundtrip(format!("ms k 1 C{ms_cas}\r\nw\r\n"), "EX\r\n");
    let now = c.gets("k").2;
    c.roundtrip(format!("md k C{ms_cas}\r\n"), "EX\r\n");
    // ma c: the new unique, and C gates it
    c.roundtrip("set n 0 0 1\r\n5\r\n", "STORED\r\n");
    let n_cas = c.gets("n").2;
    c.roundtrip(format!("ma n C{} v\r\n", n_cas + 1000), "EX\r\n");
    c.send(format!("ma n C{n_cas} c v\r\n"));
    let line = c.read_line();
    let ma_cas = parse_flag(&line, "VA 1", 'c');
    c.expect("6\r\n");
    assert_eq!(c.gets("n").2, ma_cas);
    assert!(ma_cas > n_cas);
    // md I bumps the unique; the stale item still answers gets
    c.roundtrip("md k I\r\n", "HD\r\n");
    let (_, value, stale_cas) = c.gets("k");
    assert_eq!(value, b"z");
    assert!(stale_cas > now);
    c.roundtrip(format!("md k C{stale_cas}\r\n"), "HD\r\n");
    c.roundtrip("mg k\r\n", "EN\r\n");
}
both!(cas_agrees_with_gets, &[]);

/// Reads `<code> ... <flag><number>` and returns the number.
fn parse_flag(line: &[u8], code: &str, flag: char) -> u64 {
    let line = String::from_utf8_lossy(line);
    let line = line.trim_end();
    assert!(line.starts_with(code), "{line:?} should start with {code}");
    line.split(' ')
        .find_map(|t| t.strip_prefix(flag))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {flag} in {line:?}"))
}

/// TTLs and access times: what `t`, `T`, `l`, `h` and `u` report, with
/// room for a clock tick between two requests.
fn ttl_and_access(server: &Server) {
    let mut c = server.connect();
    c.roundtrip("set k 0 0 1\r\nx\r\n", "STORED\r\n");
    // t before T shows the old TTL, after it the new one
    c.roundtrip("mg k t T100\r\n", "HD t-1\r\n");
    c.send("mg k t\r\n");
    let t = parse_flag(&c.read_line(), "HD", 't');
    assert!((98..=100).contains(&t), "t{t}");
    c.send("ms k 1 T50\r\ny\r\n");
    c.expect("HD\r\n");
    c.send("mg k t\r\n");
    let t = parse_flag(&c.read_line(), "HD", 't');
    assert!((48..=50).contains(&t), "t{t}");
    // ma T sets the TTL on success
    c.roundtrip("set n 0 0 1\r\n1\r\n", "STORED\r\n");
    c.roundtrip("ma n T200 t\r\n", "HD t200\r\n");
    // as in mg, a t before T shows the old TTL
    c.roundtrip("ma n t T100\r\n", "HD t200\r\n");
    c.send("mg n t\r\n");
    let t = parse_flag(&c.read_line(), "HD", 't');
    assert!((98..=100).contains(&t), "t{t}");
    // an item ma creates gets N's TTL and T's where each stands: the later
    // one stays
    c.roundtrip("ma made1 N0 T100 t\r\n", "HD t100\r\n");
    c.send("mg made1 t\r\n");
    let t = parse_flag(&c.read_line(), "HD", 't');
    assert!((98..=100).contains(&t), "t{t}");
    c.roundtrip("ma made2 T100 N0 t\r\n", "HD t-1\r\n");
    c.roundtrip("mg made2 t\r\n", "HD t-1\r\n");
    c.roundtrip("ma made3 N-1 T100 v\r\n", "VA 1\r\n0\r\n");
    c.roundtrip("mg made3 v\r\n", "VA 1\r\n0\r\n");
    c.roundtrip("ma made4 T100 N-1 v\r\n", "VA 1\r\n0\r\n");
    c.roundtrip("mg made4 v\r\n", "EN\r\n");
    // h: read before? (as of before this request); u leaves no trace
    c.roundtrip("set h 0 0 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip("mg h h u\r\n", "HD h0\r\n");
    c.roundtrip("mg h h\r\n", "HD h0\r\n");
    c.roundtrip("mg h h\r\n", "HD h1\r\n");
    // l: seconds since the last access; two seconds idle shows at least 1
    std::thread::sleep(std::time::Duration::from_millis(2100));
    c.send("mg h l u\r\n");
    let l = parse_flag(&c.read_line(), "HD", 'l');
    assert!((1..=4).contains(&l), "l{l}");
    c.send("mg h l\r\n");
    let again = parse_flag(&c.read_line(), "HD", 'l');
    assert!(
        again >= l,
        "u must not record the access: l{l} then l{again}"
    );
    c.roundtrip("mg h l\r\n", "HD l0\r\n");
    // T-1 expires the item at once
    c.roundtrip("mg k T-1\r\n", "HD\r\n");
    c.roundtrip("mg k\r\n", "EN\r\n");
}
both!(ttl_and_access, &[]);

/// `me` prints memcached's fields; their values are ferrocache's own
/// (class and size from its storage), so only the shape is compared.
fn me_shape(server: &Server) {
    let mut c = server.connect();
    c.roundtrip("set plain 0 100 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip("get plain\r\n", "VALUE plain 0 1\r\nx\r\nEND\r\n");
    let cas = c.gets("plain").2;
    for request in ["me plain\r\n", "me cGxhaW4= b\r\n", "me plain x y\r\n"] {
        c.send(request);
        let line = String::from_utf8(c.read_line()).unwrap();
        let fields: Vec<&str> = line.trim_end().split(' ').collect();
        assert_eq!(fields[..2], ["ME", "plain"], "{line}");
        let names: Vec<&str> = fields[2..]
            .iter()
            .map(|f| f.split('=').next().unwrap())
            .collect();
        assert_eq!(
            names,
            ["exp", "la", "cas", "fetch", "cls", "size"],
            "{line}"
        );
        // memcached prints now - deadline: negative while the item lives
        let exp: i64 = fields[2][4..].parse().unwrap();
        assert!((-100..=-98).contains(&exp), "{line}");
        assert_eq!(fields[4], format!("cas={cas}"));
        assert_eq!(fields[5], "fetch=yes");
    }
    c.roundtrip("ms AAEC 1 b\r\nx\r\n", "HD\r\n");
    c.send("me AAEC b\r\n");
    let line = String::from_utf8(c.read_line()).unwrap();
    assert!(line.starts_with("ME AAEC exp=-1 la=0 cas="), "{line}");
    assert!(line.contains(" fetch=no "), "{line}");
}
both!(me_shape, &[]);

/// `E` (explicit cas) and `md x` come from memcached 1.6.21+; 1.6.18, the
/// reference here, answers `CLIENT_ERROR invalid flag` to both, so these
/// run against ferrocache alone, as the newer protocol.txt describes them.
#[test]
fn newer_flags_e_and_x() {
    let server = Server::ferrocache(&[]);
    let mut c = server.connect();
    c.roundtrip("ms k 1 E12345 c\r\nx\r\n", "HD c12345\r\n");
    assert_eq!(c.gets("k").2, 12345);
    c.roundtrip("ms k 1 C12345 E500 c\r\ny\r\n", "HD c500\r\n");
    c.roundtrip("md k I E600\r\n", "HD\r\n");
    c.roundtrip("mg k c v\r\n", "VA 1 c600 X W\r\ny\r\n");
    c.roundtrip("set n 0 0 1\r\n1\r\n", "STORED\r\n");
    c.roundtrip("ma n E777 c v\r\n", "VA 1 c777\r\n2\r\n");
    c.roundtrip("mg vv N30 E888 c\r\n", "HD c888 W\r\n");
    c.roundtrip("ma made N0 J3 E999 c v\r\n", "VA 1 c999\r\n3\r\n");
    // x empties the value and the client flags, keeps the item and TTL
    c.roundtrip("set x 5 100 5\r\nhello\r\n", "STORED\r\n");
    let before = c.gets("x").2;
    c.roundtrip("md x x\r\n", "HD\r\n");
    c.roundtrip("get x\r\n", "VALUE x 0 0\r\n\r\nEND\r\n");
    assert!(c.gets("x").2 > before);
    c.send("mg x t\r\n");
    let t = parse_flag(&c.read_line(), "HD", 't');
    assert!((98..=100).contains(&t), "t{t}");
    c.roundtrip("md x C1 x\r\n", "EX\r\n");
    c.roundtrip("md gone x\r\n", "NF\r\n");
    c.roundtrip(
        "ms k 1 Ex\r\nx\r\n",
        "CLIENT_ERROR bad token in command line format\r\n",
    );
    c.roundtrip("mn\r\n", "MN\r\n");
}

/// Where ferrocache deliberately answers otherwise than memcached 1.6.18
/// (docs/differences.md), so against ferrocache alone: a
/// refused `mg` or `ma` changes nothing, and `ma`'s `T` applies also when
/// the number grows longer.
#[test]
fn refused_requests_change_nothing() {
    let server = Server::ferrocache(&[]);
    let mut c = server.connect();
    let long = "O123456789012345678901234567890123";
    // memcached vivifies, or touches, then refuses the opaque
    c.roundtrip(
        format!("mg stub N100 {long}\r\n"),
        "CLIENT_ERROR opaque token too long\r\n",
    );
    c.roundtrip("mg stub\r\n", "EN\r\n");
    c.roundtrip("set s 0 0 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip(
        format!("mg s T100 {long}\r\n"),
        "CLIENT_ERROR opaque token too long\r\n",
    );
    c.roundtrip("mg s t\r\n", "HD t-1\r\n");
    // memcached adds first and refuses the opaque after: 5 became 6
    c.roundtrip("set n 0 0 1\r\n5\r\n", "STORED\r\n");
    c.roundtrip(
        format!("ma n {long} v\r\n"),
        "CLIENT_ERROR opaque token too long\r\n",
    );
    c.roundtrip("mg n v\r\n", "VA 1\r\n5\r\n");
    // memcached sets the TTL on the item the longer number replaced
    c.roundtrip("set w 0 0 1\r\n9\r\n", "STORED\r\n");
    c.roundtrip("ma w T100 v\r\n", "VA 2\r\n10\r\n");
    c.send("mg w t\r\n");
    let t = parse_flag(&c.read_line(), "HD", 't');
    assert!((98..=100).contains(&t), "t{t}");
    c.roundtrip("ma w T-1\r\n", "HD\r\n");
    c.roundtrip("mg w v\r\n", "EN\r\n");
}

/// Many clients racing `mg N` on one missing key: exactly one wins.
fn one_winner_per_stub(server: &Server) {
    use std::sync::{Arc, Barrier};
    let clients = 8;
    let barrier = Arc::new(Barrier::new(clients));
    let wins: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let barrier = barrier.clone();
                s.spawn(move || {
                    let mut c = server.connect();
                    barrier.wait();
                    c.send("mg race N30 s\r\n");
                    let line = String::from_utf8(c.read_line()).unwrap();
                    assert!(line.starts_with("HD s0 "), "{line}");
                    usize::from(line.trim_end().ends_with(" W"))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(wins, 1);
}
both!(one_winner_per_stub, &[]);
