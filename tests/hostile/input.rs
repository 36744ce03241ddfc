//! Hostile input: random garbage, random binary frames, megabyte lines,
//! absurd numbers, bad data chunks, clients that vanish mid-request,
//! connection floods and half commands. After each, every stored item is
//! intact.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use crate::common::random::Rng;
use crate::common::{escape, eventually, Server, READ_TIMEOUT};

use super::{drain, no_panics, raw, reply_before_version, reset_on_close, stock, verify};

/// Random bytes from many connections, some with newlines, some in one
/// large write, some dribbled.
fn random_garbage(server: &Server) {
    let stock = stock(server);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..40 {
        let mut s = raw(server);
        for _ in 0..1 + rng.below(8) {
            let n = 1 + rng.below(if round % 5 == 0 { 60_000 } else { 400 });
            let mut chunk = rng.bytes(n);
            // Newlines make many short (unknown) commands.
            if rng.below(2) == 0 {
                for _ in 0..n / 20 {
                    let at = rng.below(n);
                    chunk[at] = b'\n';
                }
            }
            if s.write_all(&chunk).is_err() {
                break; // the server closed on an over-long line
            }
        }
        let _ = drain(&mut s, Duration::from_millis(30));
    }
    verify(server, &stock);
    no_panics(server);
}
both!(random_garbage, &[]);

/// A command line of more than 1 MB without a newline: memcached closes
/// the connection (with a reset, as input is left unread); a `get` line
/// of that size is still read and answered.
fn megabyte_line(server: &Server) {
    let stock = stock(server);
    let mut s = raw(server);
    let line = vec![b'x'; 1100 * 1024];
    let _ = s.write_all(&line); // may fail once the server has closed
    let (got, closed) = drain(&mut s, READ_TIMEOUT);
    assert!(closed, "connection still open after a 1.1 MB line");
    assert!(got.is_empty(), "reply before the close: {}", escape(&got));

    // A `get` line of 1.1 MB (missing keys of 9 bytes each) is one request.
    let mut c = server.connect();
    let mut get = b"get".to_vec();
    let mut i = 0;
    while get.len() < 1100 * 1024 {
        get.extend_from_slice(format!(" m:{i:06}").as_bytes());
        i += 1;
    }
    get.extend_from_slice(b"\r\n");
    c.roundtrip(&get, "END\r\n");
    verify(server, &stock);
}
both!(megabyte_line, &[]);

/// Absurd numbers in every numeric field: each answer matches memcached's,
/// and nothing stocked changes. (A run of one server records; the
/// comparison runs in `absurd_numbers_match_memcached`.)
const ABSURD: &[&[u8]] = &[
    b"set absurd:k 4294967296 0 1\r\nx\r\n",
    b"set absurd:k 18446744073709551616 0 1\r\nx\r\n",
    b"set absurd:k -1 0 1\r\nx\r\n",
    b"set absurd:k 99999999999999999999999 0 1\r\nx\r\n",
    b"set absurd:k 0 99999999999999999999 1\r\nx\r\n",
    b"set absurd:k 0 -99999999999999999999 1\r\nx\r\n",
    b"set absurd:k 0 2147483648 1\r\nx\r\n",
    b"set absurd:k 0 -2147483649 1\r\nx\r\n",
    b"get absurd:k\r\n",
    b"set absurd:k 0 0 4294967297\r\nx\r\n",
    b"set absurd:k 0 0 18446744073709551615\r\nx\r\n",
    b"set absurd:k 0 0 -2147483648\r\nx\r\n",
    b"set absurd:k 0 0 2147483647\r\nx\r\n",
    b"set absurd:k 0 0 99999999999999999999\r\nx\r\n",
    b"set absurd:k 0 0 -0\r\n\r\n",
    b"cas absurd:k 0 0 1 18446744073709551615\r\nx\r\n",
    b"cas absurd:k 0 0 1 18446744073709551616\r\nx\r\n",
    b"cas absurd:k 0 0 1 -1\r\nx\r\n",
    b"set absurd:n 0 0 20\r\n18446744073709551615\r\n",
    b"incr absurd:n 18446744073709551615\r\n",
    b"incr absurd:n 18446744073709551616\r\n",
    b"incr absurd:n -1\r\n",
    b"decr absurd:n 99999999999999999999999\r\n",
    b"decr absurd:n 18446744073709551615\r\n",
    b"touch absurd:k 99999999999999999999\r\n",
    b"touch absurd:k -99999999999999999999\r\n",
    b"gat 99999999999999999999 absurd:k\r\n",
    b"gats -99999999999999999999 absurd:k\r\n",
    b"flush_all 99999999999999999999\r\n",
    b"flush_all -99999999999999999999\r\n",
    b"verbosity 4294967296\r\n",
    b"verbosity 99999999999999999999\r\n",
    b"verbosity 0\r\n",
    b"delete absurd:k 99999999999999999999\r\n",
    b"cache_memlimit 99999999999999999999999\r\n",
    b"get absurd:k absurd:n\r\n",
];

fn absurd_replies(server: &Server) -> Vec<Vec<u8>> {
    let mut c = server.connect();
    ABSURD
        .iter()
        .map(|req| reply_before_version(&mut c, req))
        .collect()
}

#[test]
fn absurd_numbers_match_memcached() {
    let ferro = Server::ferrocache(&[]);
    let stock_f = stock(&ferro);
    let ours = absurd_replies(&ferro);
    verify(&ferro, &stock_f);
    no_panics(&ferro);
    let Some(mc) = crate::common::memcached_or_skip(&[]) else {
        return;
    };
    let stock_m = stock(&mc);
    let theirs = absurd_replies(&mc);
    verify(&mc, &stock_m);
    let mut diffs = Vec::new();
    for ((req, a), b) in ABSURD.iter().zip(&ours).zip(&theirs) {
        if a != b {
            diffs.push(format!(
                "  request:    {}\n  memcached:  {}\n  ferrocache: {}",
                escape(req),
                escape(b),
                escape(a)
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "replies differ (each request sent in order on one connection):\n{}",
        diffs.join("\n")
    );
}

/// Data blocks shorter and longer than declared: `CLIENT_ERROR bad data
/// chunk`, the key is not stored, nothing else changes.
fn bad_chunks(server: &Server) {
    let stock = stock(server);
    let mut c = server.connect();
    // Longer: 5 bytes read where 3 + CRLF belong; "f" is then a command.
    c.roundtrip(
        "set stock:1 0 0 3\r\nabcdef\r\n",
        "CLIENT_ERROR bad data chunk\r\nERROR\r\n",
    );
    // Shorter, completed by the next request's bytes.
    c.roundtrip(
        "set stock:2 0 0 10\r\nabc\r\nget stock:2\r\n",
        "CLIENT_ERROR bad data chunk\r\nERROR\r\n",
    );
    // Shorter, then the client gives up.
    let mut s = raw(server);
    s.write_all(b"set stock:3 0 0 100000\r\nabc\r\n").unwrap();
    drop(s);
    // noreply: the bad chunk is silent; the CRLF left over is an empty
    // command line.
    c.roundtrip(
        "set stock:4 0 0 2 noreply\r\nabcd\r\nget absent\r\n",
        "ERROR\r\nEND\r\n",
    );
    verify(server, &stock);
}
both!(bad_chunks, &[]);

/// Clients that vanish mid-command and mid-value, with FIN or with a
/// reset: nothing half-sent is stored, nothing stored is harmed, and the
/// connections are released.
fn disconnect_mid_request(server: &Server) {
    let stock = stock(server);
    let baseline = server.connect().stat("", "curr_connections");
    let value = vec![b'v'; 300_000];
    let mut full = b"set cut:KEY 0 0 300000\r\n".to_vec();
    full.extend_from_slice(&value);
    full.extend_from_slice(b"\r\nget stock:1 stock:7 stock:9\r\n");
    let mut rng = Rng(42);
    for i in 0..60 {
        let mut s = raw(server);
        // Cut anywhere before the value's CRLF: in the line, in the value.
        let cut = 1 + rng.below(24 + 300_000);
        let req = String::from_utf8_lossy(&full[..cut.min(24)])
            .replace("KEY", &format!("{i:03}"))
            .into_bytes();
        let _ = s.write_all(&req);
        if cut > 24 {
            let _ = s.write_all(&full[24..cut]);
        }
        if i % 2 == 0 {
            reset_on_close(&s);
        }
        drop(s);
    }
    // A client that disconnects while its multi-get reply is being sent.
    for _ in 0..10 {
        let mut s = raw(server);
        let keys: Vec<String> = (0..40).map(|_| "stock:7".to_string()).collect();
        s.write_all(format!("get {}\r\n", keys.join(" ")).as_bytes())
            .unwrap();
        let mut buf = [0u8; 1000];
        let _ = s.read(&mut buf);
        reset_on_close(&s);
    }
    let mut c = server.connect();
    for i in 0..60 {
        c.roundtrip(format!("get cut:{i:03}\r\n"), "END\r\n");
    }
    drop(c);
    let released = eventually(Duration::from_secs(10), || {
        server.connect().stat("", "curr_connections") <= baseline
    });
    assert!(released, "connections not released after the clients left");
    verify(server, &stock);
    no_panics(server);
}
both!(disconnect_mid_request, &[]);

/// Three times `-c` connections at once: each is served or told
/// `ERROR Too many open connections` and closed; afterwards the server
/// serves again and nothing stocked changed.
fn connection_flood(server: &Server) {
    let stock = stock(server);
    let addr = server.tcp_addr();
    let start = Arc::new(Barrier::new(8));
    let served = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (start, served, refused) = (start.clone(), served.clone(), refused.clone());
            thread::spawn(move || {
                start.wait();
                let mut held = Vec::new();
                for _ in 0..15 {
                    let Ok(mut s) = TcpStream::connect(addr) else {
                        continue;
                    };
                    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
                    if s.write_all(b"version\r\n").is_err() {
                        refused.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    let (got, closed) = drain(&mut s, Duration::from_millis(300));
                    if got.starts_with(b"VERSION ") && !closed {
                        served.fetch_add(1, Ordering::SeqCst);
                        held.push(s);
                    } else {
                        assert!(
                            got.is_empty() || got == b"ERROR Too many open connections\r\n",
                            "flood client got {}",
                            escape(&got)
                        );
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                }
                held
            })
        })
        .collect();
    let held: Vec<Vec<TcpStream>> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let served = served.load(Ordering::SeqCst);
    let refused = refused.load(Ordering::SeqCst);
    assert!(served >= 1, "no flood client was served");
    assert!(
        refused >= 1,
        "all {served} flood clients served under -c 40"
    );
    assert!(served <= 40, "{served} clients served under -c 40");
    drop(held);
    let back = eventually(Duration::from_secs(10), || {
        let Ok(mut s) = TcpStream::connect(addr) else {
            return false;
        };
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        let _ = s.write_all(b"version\r\n");
        drain(&mut s, Duration::from_millis(300))
            .0
            .starts_with(b"VERSION ")
    });
    assert!(back, "no client served after the flood ended");
    verify(server, &stock);
}
both!(connection_flood, &["-c", "40"]);

/// 200 clients each send half a `set` and stall: other clients are served
/// meanwhile; stallers that finish are stored, the others are not.
fn half_commands_stall(server: &Server) {
    let stock = stock(server);
    let mut stalled = Vec::new();
    for i in 0..200 {
        let mut s = raw(server);
        s.write_all(format!("set stall:{i} 0 0 100\r\n").as_bytes())
            .unwrap();
        s.write_all(&[b's'; 50]).unwrap();
        stalled.push(s);
    }
    // Also half lines with no newline yet.
    for i in 0..50 {
        let mut s = raw(server);
        s.write_all(format!("get stock:{i} stock:").as_bytes())
            .unwrap();
        stalled.push(s);
    }
    let mut c = server.connect();
    for i in 0..50 {
        c.roundtrip(format!("set live:{i} 0 0 2\r\nok\r\n"), "STORED\r\n");
    }
    c.roundtrip("get live:49\r\n", "VALUE live:49 0 2\r\nok\r\nEND\r\n");
    verify(server, &stock);
    // Half of the value stallers finish, the rest leave.
    for (i, s) in stalled.iter_mut().take(200).enumerate() {
        if i % 2 == 0 {
            s.write_all(&[b's'; 50]).unwrap();
            s.write_all(b"\r\n").unwrap();
            let mut line = [0u8; 8];
            s.read_exact(&mut line).unwrap();
            assert_eq!(&line, b"STORED\r\n", "staller {i}");
        }
    }
    drop(stalled);
    for i in 0..200 {
        if i % 2 == 0 {
            let mut want = format!("VALUE stall:{i} 0 100\r\n").into_bytes();
            want.extend_from_slice(&[b's'; 100]);
            want.extend_from_slice(b"\r\nEND\r\n");
            c.roundtrip(format!("get stall:{i}\r\n"), want);
        } else {
            c.roundtrip(format!("get stall:{i}\r\n"), "END\r\n");
        }
    }
    verify(server, &stock);
}
both!(half_commands_stall, &[]);

/// Random binary frames (random opcodes but flush, lying key, extras and
/// body lengths, huge announced values, bad magic bytes), whole, dribbled
/// or cut off by a vanishing client, on connections made binary by a first
/// `noop`: no panic, no hang, every stored item intact.
fn binary_garbage(server: &Server) {
    let stock = stock(server);
    let mut rng = Rng(0x0b1a_4e17_6a4b_a6e0);
    for round in 0..60 {
        let mut s = raw(server);
        let mut stream = vec![0x80, 0x0a];
        stream.extend_from_slice(&[0; 22]);
        for _ in 0..1 + rng.below(6) {
            let op = loop {
                let op = rng.below(0x30) as u8;
                if op != 0x08 && op != 0x18 {
                    break op;
                }
            };
            let (klen, elen) = (rng.below(300), rng.pick(&[0usize, 4, 8, 20, 255]));
            let vlen = rng.below(if round % 7 == 0 { 70_000 } else { 50 });
            let body = (klen + elen + vlen) as u32;
            let bodylen = match rng.below(6) {
                0 => body.wrapping_sub(rng.below(8) as u32),
                1 => body + rng.below(8) as u32,
                2 => u32::MAX - rng.below(4) as u32,
                3 => 100 << 20,
                _ => body,
            };
            let magic = if rng.chance(5) { 0x81 } else { 0x80 };
            stream.extend_from_slice(&[magic, op]);
            stream.extend_from_slice(&(klen as u16).to_be_bytes());
            stream.extend_from_slice(&[elen as u8, 0, 0, 0]);
            stream.extend_from_slice(&bodylen.to_be_bytes());
            stream.extend_from_slice(&rng.bytes(12));
            stream.extend(rng.bytes(klen + elen + vlen));
        }
        let cut = if rng.chance(30) {
            rng.below(stream.len())
        } else {
            stream.len()
        };
        let dribble = rng.chance(20);
        for piece in stream[..cut].chunks(if dribble { 7 } else { 1 << 20 }) {
            if s.write_all(piece).is_err() {
                break; // the server closed on a bad frame
            }
        }
        if rng.chance(30) {
            reset_on_close(&s);
        } else {
            let _ = drain(&mut s, Duration::from_millis(20));
        }
    }
    verify(server, &stock);
    no_panics(server);
}
both!(binary_garbage, &[]);
