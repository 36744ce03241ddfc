//! The binary protocol under bad and awkward input, against ferrocache and
//! memcached 1.6.18 with the same bytes: malformed frames (bad magic,
//! lying lengths, over-long keys, wrong extras, headers memcached cannot
//! buffer, oversized values), pipelines of many frames in one write,
//! frames split at every byte, the protocol choice (`-B`), the items the
//! text protocol sees, and binary over UDP. Stored items are checked
//! after the bad input: nothing is corrupted.

#[macro_use]
mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::binary::*;
use common::Server;

fn err(op: u8, status: u16) -> Resp {
    Resp::error(op, status)
}

/// `-I 1m` with cas: the largest key + value memcached stores.
const MAX_KEY_PLUS_VALUE: usize = 1024 * 1024 - 59;

binary!(
    bad_magic_closes,
    &[],
    vec![
        step(vec![store(SET, "keep", 1, "safe")], vec![resp(SET).cas(1)]),
        // replies memcached has not sent yet are lost with the close; a
        // noop's (and an error's) were sent
        closes(
            vec![
                store(SET, "lost", 0, "x"),
                req(NOOP),
                store(SET, "k2", 0, "x"),
                req(GET).key("none"),
                store(SET, "k3", 0, "x"),
                req(NOOP).magic(0x81),
            ],
            vec![
                resp(SET).cas(2),
                resp(NOOP),
                resp(SET).cas(3),
                err(GET, NOT_FOUND),
            ],
        ),
    ]
);

binary!(
    text_on_a_binary_connection_closes,
    &[],
    vec![
        step(vec![req(NOOP)], vec![resp(NOOP)]),
        closes(vec![req(NOOP).magic(b'g').trailer("et a\r\n")], vec![]),
    ]
);

binary!(
    key_over_250_is_invalid_and_closes,
    &[],
    vec![
        step(
            vec![req(GET).key("k".repeat(250))],
            vec![err(GET, NOT_FOUND)]
        ),
        closes(vec![req(GET).key("k".repeat(251))], vec![err(GET, EINVAL)]),
    ]
);

binary!(
    key_and_extras_longer_than_the_body,
    &[],
    vec![closes(
        vec![req(GET).key("abc").bodylen(2).trailer("x")],
        vec![err(GET, UNKNOWN)]
    )]
);

// A header, extras and key past memcached's 16 KiB read buffer: closed
// without an answer.
binary!(
    header_past_the_read_buffer,
    &[],
    vec![
        // 24 + 16360 fits: an answer (the key is too long)
        closes(
            vec![req(GET).key("k".repeat(16_360))],
            vec![err(GET, EINVAL)]
        ),
    ]
);

fn header_one_past_the_read_buffer(server: &Server) {
    let mut c = BinConn::connect(server.tcp_addr());
    c.send(&req(GET).key("k".repeat(16_361)));
    c.expect_closed();
}
both!(header_one_past_the_read_buffer, &[]);

/// Each opcode with extras, key or body of the wrong size: invalid
/// arguments, then memcached closes.
fn wrong_shapes(server: &Server) {
    let four = 7u32.to_be_bytes();
    let cases = vec![
        req(GET),
        req(GET).key("a").extras(four),
        req(GETQ).key("a").value("x"),
        req(SET).key("a").extras([0; 4]).value("v"),
        req(SET).extras(store_extras(0, 0)).value("v"),
        req(ADDQ).key("a"),
        req(REPLACE).key("a").extras([0; 12]),
        req(DELETE).key("a").extras(four),
        req(DELETE).key("a").value("x"),
        req(DELETEQ),
        req(INCR).key("a").extras([0; 16]),
        req(DECRQ).key("a").extras(arith_extras(1, 1, 0)).value("x"),
        req(INCR).extras(arith_extras(1, 1, 0)),
        req(APPEND).key("a").extras(four).value("x"),
        req(PREPEND).value("x"),
        req(TOUCH).key("a"),
        req(GAT).key("a").extras([0; 8]),
        req(GATKQ).extras(four),
        req(FLUSH).key("a"),
        req(FLUSH).extras([0; 8]),
        req(FLUSHQ).value("x"),
        req(NOOP).key("a"),
        req(VERSION).value("x"),
        req(QUIT).extras(four),
        req(STAT).extras(four),
        req(SASL_LIST).key("a"),
        req(SASL_AUTH).value("x"),
    ];
    for r in cases {
        let mut c = BinConn::connect(server.tcp_addr());
        c.send(&r);
        let want = err(r.opcode, EINVAL);
        let run = std::panic::AssertUnwindSafe(|| {
            c.expect(&[want]);
            c.expect_closed();
        });
        if let Err(e) = std::panic::catch_unwind(run) {
            eprintln!("{:?}: {:?}", server.target(), r);
            std::panic::resume_unwind(e);
        }
    }
}
both!(wrong_shapes, &[]);

/// A value over `-I` is refused before it is read, thrown away as it
/// arrives, and the connection goes on; a refused `set` drops the old
/// value, the other modes keep it.
fn oversized_values(server: &Server) {
    let max = MAX_KEY_PLUS_VALUE;
    let fits = "v".repeat(max - 1);
    let over = "v".repeat(max);
    let steps = vec![
        step(
            vec![store(SET, "a", 0, &fits), store(SET, "b", 0, "old")],
            vec![resp(SET).cas(1), resp(SET).cas(2)],
        ),
        step(
            vec![
                store(ADD, "b", 0, &over),
                store(REPLACEQ, "b", 0, &over),
                req(APPEND).key("b").value(&over),
                req(GET).key("b"),
            ],
            vec![
                err(ADD, TOO_LARGE),
                err(REPLACEQ, TOO_LARGE),
                err(APPEND, TOO_LARGE),
                Resp::hit(GET, 0, "old", 2),
            ],
        ),
        // non-zero flags cost 4 bytes more
        step(
            vec![
                store(SET, "a", 1, &fits[4..]),
                store(SET, "a", 1, &fits[3..]),
            ],
            vec![resp(SET).cas(3), err(SET, TOO_LARGE)],
        ),
        step(
            vec![
                store(SETQ, "b", 0, &over),
                req(GET).key("b"),
                req(GET).key("a"),
            ],
            vec![
                err(SETQ, TOO_LARGE),
                err(GET, NOT_FOUND),
                err(GET, NOT_FOUND),
            ],
        ),
        // a body length memcached reads as negative: refused, nothing
        // thrown away
        step(
            vec![
                req(SET)
                    .key("c")
                    .extras(store_extras(0, 0))
                    .bodylen(u32::MAX),
                req(NOOP),
            ],
            vec![err(SET, TOO_LARGE), resp(NOOP)],
        ),
    ];
    transcript(server, steps);
}
both!(oversized_values, &[]);

/// Many frames in one write, answered in order; then the same frames one
/// byte per write, and in pieces of every size: the same bytes back.
fn pipelines_and_split_frames(server: &Server) {
    let mut frames = Vec::new();
    for i in 0..200u32 {
        let key = format!("p{}", i % 7);
        match i % 5 {
            0 => {
                frames.push(store(SET, &key, i, format!("v{i}")).opaque(i));
            }
            1 => {
                frames.push(req(GETK).key(&key).opaque(i));
            }
            2 => {
                frames.push(store(SETQ, &key, i, "q").opaque(i));
            }
            3 => {
                frames.push(req(DELETEQ).key("nope").opaque(i));
            }
            _ => {
                frames.push(req(NOOP).opaque(i));
            }
        }
    }
    let uniques = Uniques::default();
    let bytes: Vec<u8> = frames.iter().flat_map(|f| f.bytes(&uniques)).collect();
    let reference = answers(server, &[&bytes]);
    assert_eq!(
        reference.iter().filter(|r| r.opcode == NOOP).count(),
        40,
        "every noop answered"
    );
    assert!(reference.iter().all(|r| r.magic == 0x81));
    // opaques come back in request order
    let opaques: Vec<u32> = reference.iter().map(|r| r.opaque).collect();
    assert!(opaques.windows(2).all(|w| w[0] < w[1]), "{opaques:?}");
    let first_40: usize = frames[..40].iter().map(|f| f.bytes(&uniques).len()).sum();
    let small = &bytes[..first_40];
    let one_by_one: Vec<&[u8]> = small.chunks(1).collect();
    let whole = answers(server, &[small]);
    assert_eq!(answers(server, &one_by_one), whole);
    for size in [2, 3, 5, 7, 23, 24, 25, 31, 1000] {
        let pieces: Vec<&[u8]> = bytes.chunks(size).collect();
        assert_eq!(answers(server, &pieces), reference, "pieces of {size}");
    }
}
both!(pipelines_and_split_frames, &[]);

/// Sends `pieces` (one write each) on a new connection to a flushed
/// cache, then a noop, and returns every response before the noop's.
fn answers(server: &Server, pieces: &[&[u8]]) -> Vec<Resp> {
    let mut c = BinConn::connect(server.tcp_addr());
    c.send(&req(FLUSH).opaque(u32::MAX - 1));
    c.expect(&[resp(FLUSH).opaque(u32::MAX - 1)]);
    for p in pieces {
        c.send_raw(p);
    }
    c.send(&req(NOOP).opaque(u32::MAX));
    let mut out = Vec::new();
    loop {
        match c.read() {
            Read1::Frame(f) if f.opaque == u32::MAX && f.opcode == NOOP => return out,
            Read1::Frame(f) => out.push(f),
            end => panic!(
                "{:?}: {end:?} after {} responses",
                server.target(),
                out.len()
            ),
        }
    }
}

/// The text and binary protocols see the same items, flags and uniques.
fn text_and_binary_share_items(server: &Server) {
    let mut b = BinConn::connect(server.tcp_addr());
    b.send(&store(SET, "shared", 42, "from binary"));
    let Read1::Frame(stored) = b.read() else {
        panic!("no reply")
    };
    assert_eq!(stored.status, OK);
    let mut t = server.connect();
    let (flags, value, cas) = t.gets("shared");
    assert_eq!((flags, &value[..]), (42, &b"from binary"[..]));
    t.roundtrip(
        format!("cas shared 7 0 9 {cas}\r\nfrom text\r\n"),
        "STORED\r\n",
    );
    let (_, _, text_cas) = t.gets("shared");
    b.send(&req(GET).key("shared"));
    let Read1::Frame(hit) = b.read() else {
        panic!("no reply")
    };
    assert_eq!(
        (hit.extras, hit.value),
        (7u32.to_be_bytes().to_vec(), b"from text".to_vec())
    );
    assert_eq!(b.uniques.real(hit.cas), text_cas, "the unique text showed");
    // the binary reply's unique is the one text showed
    b.send(&store(SET, "shared", 0, "x").cas(text_cas));
    b.expect(&[resp(SET).cas(hit.cas + 1)]);
}
both!(text_and_binary_share_items, &[]);

/// `-B`: what each binding answers to each protocol, and what `stats
/// settings` calls it.
fn binding_auto(server: &Server) {
    assert_eq!(setting(server), "auto-negotiate");
    let mut c = server.connect();
    c.roundtrip("version\r\n", version_line(server));
    let mut b = BinConn::connect(server.tcp_addr());
    b.send(&req(NOOP));
    b.expect(&[resp(NOOP)]);
}
both!(binding_auto, &[]);

fn binding_binary(server: &Server) {
    let mut b = BinConn::connect(server.tcp_addr());
    let settings = b.stats("settings");
    let proto = settings.iter().find(|(n, _)| n == "binding_protocol");
    assert_eq!(proto.map(|(_, v)| v.as_str()), Some("binary"));
    // text is read as a frame with a bad magic byte
    let mut c = server.connect();
    c.send("version\r\n".repeat(3));
    c.expect_closed();
}
both!(binding_binary, &["-B", "binary"]);

fn binding_ascii(server: &Server) {
    assert_eq!(setting(server), "ascii");
    // a binary frame is read as text: a noop is no command line
    let mut c = server.connect();
    c.send(req(VERSION).opaque(0x0102_0304).bytes(&Uniques::default()));
    c.roundtrip("\r\n", "ERROR\r\n");
}
both!(binding_ascii, &["-B", "ascii"]);

fn setting(server: &Server) -> String {
    let mut c = server.connect();
    let all = c.stats("settings");
    common::stat_str(&all, "binding_protocol").to_string()
}

fn version_line(server: &Server) -> String {
    let mut c = server.connect();
    c.send("version\r\n");
    String::from_utf8(c.read_line()).expect("utf-8")
}

/// Binary over UDP: each frame's reply in datagrams of its own, behind
/// the request's id, whatever `-B` says; a value over one datagram is
/// cut into several.
fn binary_over_udp(server: &Server) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let u = Uniques::default();
    let mut payload = store(SET, "u", 3, "x".repeat(3000)).bytes(&u);
    payload.extend(req(GETK).key("u").opaque(9).bytes(&u));
    payload.extend(req(GET).key("none").bytes(&u));
    let mut dgram = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0];
    dgram.extend_from_slice(&payload);
    sock.send_to(&dgram, server.udp_addr()).expect("send");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    // set: 1 datagram; getk: 24 + 4 + 1 + 3000 bytes in 3; get: 1
    for _ in 0..5 {
        let (n, _) = sock.recv_from(&mut buf).expect("a datagram");
        got.push(buf[..n].to_vec());
    }
    let headers: Vec<[u8; 8]> = got.iter().map(|d| d[..8].try_into().unwrap()).collect();
    assert_eq!(
        headers,
        vec![
            [0x12, 0x34, 0, 0, 0, 1, 0, 0],
            [0x12, 0x34, 0, 0, 0, 3, 0, 0],
            [0x12, 0x34, 0, 1, 0, 3, 0, 0],
            [0x12, 0x34, 0, 2, 0, 3, 0, 0],
            [0x12, 0x34, 0, 0, 0, 1, 0, 0],
        ]
    );
    let hit: Vec<u8> = got[1..4].iter().flat_map(|d| d[8..].to_vec()).collect();
    assert_eq!(hit.len(), 24 + 4 + 1 + 3000);
    assert_eq!(&hit[..2], &[0x81, GETK]);
    assert_eq!(&hit[24..29], &[0, 0, 0, 3, b'u']);
    assert_eq!(&got[4][8..10], &[0x81, GET]);
    assert_eq!(&got[4][8 + 24..], b"Not found");
}

#[test]
fn binary_over_udp_ferrocache() {
    let port = common::free_udp_port().to_string();
    binary_over_udp(&Server::ferrocache(&["-U", &port, "-B", "ascii"]));
}

#[test]
fn binary_over_udp_memcached() {
    let port = common::free_udp_port().to_string();
    if let Some(server) = common::memcached_or_skip(&["-U", &port, "-B", "ascii"]) {
        binary_over_udp(&server);
    }
}

// Under `-C` there are no uniques: every reply's cas is 0.
binary!(
    no_cas_under_dash_c,
    &["-C"],
    vec![
        step(
            vec![store(SET, "c", 0, "1"), req(GET).key("c")],
            vec![resp(SET), Resp::hit(GET, 0, "1", 0)],
        ),
        step(
            vec![arith(INCR, "c", 1, 0, 0), arith(INCR, "new", 1, 5, 0)],
            vec![Resp::number(INCR, 2, 0), Resp::number(INCR, 5, 0)],
        ),
    ]
);
