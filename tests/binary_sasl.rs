//! SASL authentication (`-S`) over the binary protocol, against ferrocache
//! and memcached 1.6.18 with the same frames and the same Cyrus SASL set-up
//! (a sasldb made with `saslpasswd2`, found through `SASL_CONF_PATH` as
//! an operator's would be): the mechanisms listed, PLAIN and CRAM-MD5
//! (the client side computed here), wrong passwords, steps out of order,
//! over-long mechanism names, every command refused and the connection
//! closed before authentication, a second exchange dropping the first,
//! the `auth_*` counters and settings, and text refused.
//!
//! Needs `saslpasswd2` (Debian: sasl2-bin) and libsasl2 with its PLAIN,
//! CRAM-MD5 and sasldb plugins (libsasl2-modules, libsasl2-modules-db):
//! skipped loudly without them, a failure when `CI` is set.

#[macro_use]
mod common;

use common::binary::*;
use common::Server;

use common::sasl::{sasl_setup, PASSWORD, USER};

/// Runs `test` against both servers started with `-S`.
macro_rules! sasl {
    ($name:ident) => {
        mod $name {
            #[test]
            fn ferrocache() {
                if super::sasl_setup().is_some() {
                    super::$name(&$crate::common::Server::ferrocache(&["-S"]));
                }
            }

            #[test]
            fn memcached() {
                if super::sasl_setup().is_some() {
                    if let Some(server) = $crate::common::memcached_or_skip(&["-S"]) {
                        super::$name(&server);
                    }
                }
            }
        }
    };
}

fn plain(user: &str, password: &str) -> Req {
    req(SASL_AUTH)
        .key("PLAIN")
        .value(format!("\0{user}\0{password}"))
}

fn authenticated() -> Resp {
    resp(SASL_AUTH).value("Authenticated")
}

fn auth_error(op: u8) -> Resp {
    Resp::error(op, AUTH_ERROR)
}

fn mechanisms_and_plain(server: &Server) {
    let steps = vec![
        step(
            vec![req(SASL_LIST), req(VERSION)],
            vec![
                resp(SASL_LIST).value("PLAIN CRAM-MD5"),
                resp(VERSION).value("VERSION"),
            ],
        ),
        step(vec![plain(USER, PASSWORD)], vec![authenticated()]),
        step(
            vec![store(SET, "k", 3, "v"), req(GETK).key("k")],
            vec![resp(SET).cas(1), Resp::hit(GETK, 3, "v", 1).key("k")],
        ),
    ];
    transcript(server, steps);
}
sasl!(mechanisms_and_plain);

fn refused_before_authentication(server: &Server) {
    for r in [
        req(GET).key("k"),
        req(NOOP),
        req(STAT),
        store(SETQ, "k", 0, "v"),
        req(QUIT),
    ] {
        let op = r.opcode;
        transcript(server, vec![closes(vec![r], vec![auth_error(op)])]);
    }
    // a wrong password, an unknown mechanism, a step before a start: each
    // an error, and the connection stays unauthenticated
    transcript(
        server,
        vec![
            step(vec![plain(USER, "wrong")], vec![auth_error(SASL_AUTH)]),
            step(vec![plain("bob", PASSWORD)], vec![auth_error(SASL_AUTH)]),
            step(
                vec![req(SASL_AUTH).key("NOPE").value("x")],
                vec![auth_error(SASL_AUTH)],
            ),
            closes(vec![req(GET).key("k")], vec![auth_error(GET)]),
        ],
    );
    transcript(
        server,
        vec![
            step(
                vec![req(SASL_STEP)
                    .key("PLAIN")
                    .value(format!("\0{USER}\0{PASSWORD}"))],
                vec![auth_error(SASL_STEP)],
            ),
            // a mechanism name over 32 bytes: invalid, its data thrown away
            step(
                vec![
                    req(SASL_AUTH).key("M".repeat(33)).value("data"),
                    req(VERSION),
                ],
                vec![
                    Resp::error(SASL_AUTH, EINVAL),
                    resp(VERSION).value("VERSION"),
                ],
            ),
            closes(
                vec![req(SASL_AUTH).value("no key")],
                vec![Resp::error(SASL_AUTH, EINVAL)],
            ),
        ],
    );
}
sasl!(refused_before_authentication);

/// A second exchange on a connection drops the first's authentication
/// (memcached's rule), and the library refuses to start again.
fn a_second_exchange_drops_the_first(server: &Server) {
    transcript(
        server,
        vec![
            step(vec![plain(USER, PASSWORD)], vec![authenticated()]),
            step(vec![plain(USER, PASSWORD)], vec![auth_error(SASL_AUTH)]),
            closes(vec![req(NOOP)], vec![auth_error(NOOP)]),
        ],
    );
}
sasl!(a_second_exchange_drops_the_first);

/// CRAM-MD5: the server's challenge, answered with the HMAC-MD5 of it.
fn cram_md5(server: &Server) {
    let mut c = BinConn::connect(server.tcp_addr());
    c.send(&req(SASL_AUTH).key("CRAM-MD5"));
    let Read1::Frame(challenge) = c.read() else {
        panic!("no challenge")
    };
    assert_eq!((challenge.opcode, challenge.status), (SASL_AUTH, 0x21));
    assert!(
        challenge.value.starts_with(b"<") && challenge.value.ends_with(b">"),
        "{}",
        show(&challenge)
    );
    // a wrong digest first, on another connection
    let mut bad = BinConn::connect(server.tcp_addr());
    bad.send(&req(SASL_AUTH).key("CRAM-MD5"));
    let Read1::Frame(other) = bad.read() else {
        panic!("no challenge")
    };
    let wrong = hex(&hmac_md5(b"not it", &other.value));
    bad.send(
        &req(SASL_STEP)
            .key("CRAM-MD5")
            .value(format!("{USER} {wrong}")),
    );
    bad.expect(&[auth_error(SASL_STEP)]);
    let digest = hex(&hmac_md5(PASSWORD.as_bytes(), &challenge.value));
    c.send(
        &req(SASL_STEP)
            .key("CRAM-MD5")
            .value(format!("{USER} {digest}")),
    );
    c.expect(&[resp(SASL_STEP).value("Authenticated")]);
    c.send(&store(SET, "c", 0, "ok"));
    c.expect(&[resp(SET).cas(1)]);
}
sasl!(cram_md5);

fn counters_and_settings(server: &Server) {
    // a refused attempt leaves the exchange open to another
    let mut c = BinConn::connect(server.tcp_addr());
    c.send(&plain(USER, "wrong"));
    c.expect(&[auth_error(SASL_AUTH)]);
    c.send(&plain(USER, PASSWORD));
    c.expect(&[authenticated()]);
    let mut c = BinConn::connect(server.tcp_addr());
    c.send(&plain(USER, PASSWORD));
    c.expect(&[authenticated()]);
    let stats = c.stats("");
    let get = |n: &str| {
        stats
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {n}"))
    };
    assert_eq!(
        (get("auth_cmds"), get("auth_errors")),
        ("3".into(), "1".into())
    );
    let settings = c.stats("settings");
    let set = |n: &str| {
        settings
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {n}"))
    };
    assert_eq!(set("auth_enabled_sasl"), "yes");
    assert_eq!(set("binding_protocol"), "binary");
    // text is not served
    let mut t = server.connect();
    t.send("version\r\nversion\r\nversion\r\n");
    t.expect_closed();
}
sasl!(counters_and_settings);

// ------------------------------------------------------------- HMAC-MD5

/// RFC 2104 HMAC over MD5, for the client side of CRAM-MD5.
fn hmac_md5(key: &[u8], msg: &[u8]) -> [u8; 16] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..16].copy_from_slice(&md5(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    inner.extend_from_slice(msg);
    let mut outer: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    outer.extend_from_slice(&md5(&inner));
    md5(&outer)
}

/// RFC 1321 MD5.
fn md5(data: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32)
        .collect();
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_le_bytes());
    let mut h = [0x6745_2301u32, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    for chunk in msg.chunks(64) {
        let m: Vec<u32> = chunk
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let (mut a, mut b, mut c, mut d) = (h[0], h[1], h[2], h[3]);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (i, v) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    out
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn md5_and_hmac_match_their_rfcs() {
    assert_eq!(hex(&md5(b"")), "d41d8cd98f00b204e9800998ecf8427e");
    assert_eq!(
        hex(&md5(b"The quick brown fox jumps over the lazy dog")),
        "9e107d9d372bb6826bd81d3542a419d6"
    );
    // RFC 2202 test case 2
    assert_eq!(
        hex(&hmac_md5(b"Jefe", b"what do ya want for nothing?")),
        "750c783e6ab0b503eaa86e310a5db738"
    );
}
