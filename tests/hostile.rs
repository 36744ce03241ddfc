//! Hostile clients, concurrency, faults and security defaults (issue 6).
//!
//! Every hostile test first stores a known set of items ([`stock`]), does
//! its damage, then checks that the server still answers and that every
//! stored item is intact ([`verify`]). Most run twice through `both!`:
//! against an in-process ferrocache and against the reference memcached,
//! which proves the expectations are memcached's. Tests that need a real
//! process (resident memory, file descriptor limits, signals, sockets,
//! user ids) spawn the built ferrocache binary.
//!
//! Outside tools: /usr/bin/memcached (reference half; skipped loudly
//! without it, a failure under `CI`) and `prlimit` (util-linux) for the
//! descriptor exhaustion test.

#[macro_use]
mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::random::Rng;
use common::tools::{free_port, require, Process};
use common::{escape, eventually, is_root, Conn, Server, Target, READ_TIMEOUT};

// ------------------------------------------------------------ helpers

/// The items stored before a hostile test.
struct Stock {
    items: Vec<(String, u32, Vec<u8>)>,
}

/// A value whose bytes depend on its key: a mix-up shows.
fn stock_value(i: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| b"0123456789abcdefghijklmnopqrstuvwxyz"[(i * 7 + j) % 36])
        .collect()
}

/// Stores 120 items (0 bytes to 200 KB, various flags) and checks each was
/// stored.
fn stock(server: &Server) -> Stock {
    let mut c = server.connect();
    let mut items = Vec::new();
    for i in 0..120usize {
        let len = match i % 6 {
            0 => 0,
            1 => 1,
            2 => 100,
            3 => 1000 + i,
            4 => 20_000,
            _ => 3,
        };
        let len = if i == 7 { 200_000 } else { len };
        let key = format!("stock:{i}");
        let value = stock_value(i, len);
        let flags = (i as u32).wrapping_mul(2_654_435_761);
        let mut req = format!("set {key} {flags} 0 {len}\r\n").into_bytes();
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n");
        c.roundtrip(req, "STORED\r\n");
        items.push((key, flags, value));
    }
    Stock { items }
}

/// The server answers on a fresh connection, and every stocked item is
/// there, byte for byte, with its flags.
fn verify(server: &Server, stock: &Stock) {
    let mut c = server.connect();
    c.send("version\r\n");
    let _ = c.expect_line_prefix("VERSION ");
    for chunk in stock.items.chunks(10) {
        let keys: Vec<&str> = chunk.iter().map(|(k, _, _)| k.as_str()).collect();
        c.send(format!("get {}\r\n", keys.join(" ")));
        let mut expected = Vec::new();
        for (key, flags, value) in chunk {
            expected
                .extend_from_slice(format!("VALUE {key} {flags} {}\r\n", value.len()).as_bytes());
            expected.extend_from_slice(value);
            expected.extend_from_slice(b"\r\n");
        }
        expected.extend_from_slice(b"END\r\n");
        c.expect(expected);
    }
}

/// Like [`verify`], for tests where eviction may legitimately remove
/// items: every item still present is intact.
fn verify_present_intact(server: &Server, stock: &Stock) {
    let mut c = server.connect();
    c.send("version\r\n");
    let _ = c.expect_line_prefix("VERSION ");
    let by_key: HashMap<&str, (u32, &Vec<u8>)> = stock
        .items
        .iter()
        .map(|(k, f, v)| (k.as_str(), (*f, v)))
        .collect();
    for (key, flags, value) in &stock.items {
        c.send(format!("get {key}\r\n"));
        let line = c.read_line();
        if line == b"END\r\n" {
            continue;
        }
        let want = format!("VALUE {key} {flags} {}\r\n", value.len());
        assert_eq!(escape(&line), escape(want.as_bytes()), "item {key}");
        let data = c.read_exact_n(value.len() + 2);
        assert!(
            data[..value.len()] == by_key[key.as_str()].1[..],
            "item {key} corrupted"
        );
        c.expect("END\r\n");
    }
}

/// A raw TCP client with no expectations: for clients that misbehave.
fn raw(server: &Server) -> TcpStream {
    let s = TcpStream::connect(server.tcp_addr()).expect("connect");
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
    s
}

/// Sets SO_LINGER 0 so that closing sends a reset instead of a FIN.
fn reset_on_close(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket and a correctly sized option value.
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0, "SO_LINGER");
}

/// Reads whatever arrives until the server closes, resets, or is silent
/// for `quiet`.
fn drain(s: &mut TcpStream, quiet: Duration) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(quiet)).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (out, false)
            }
            Err(_) => return (out, true),
        }
    }
}

/// Sends `request` followed by `version`, returns everything before the
/// VERSION line (for requests whose reply shape is unknown).
fn reply_before_version(c: &mut Conn, request: &[u8]) -> Vec<u8> {
    let mut req = request.to_vec();
    req.extend_from_slice(b"version\r\n");
    c.send(req);
    let mut out = Vec::new();
    loop {
        let line = c.read_line();
        if line.starts_with(b"VERSION ") {
            return out;
        }
        out.extend_from_slice(&line);
    }
}

/// ferrocache counts panics caught while serving; there must be none.
fn no_panics(server: &Server) {
    if !server.is_memcached() {
        let mut c = server.connect();
        assert_eq!(c.stat("", "worker_panics"), 0, "worker_panics");
    }
}

// ---------------------------------------------------- hostile input

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
    let Some(mc) = common::memcached_or_skip(&[]) else {
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

// -------------------------------------------------------- concurrency

const THREADS: usize = 8;

/// Every acknowledged `incr` is counted exactly once: the replies are
/// exactly 1..=N, each once, and the final value is N.
fn incr_counted_once(server: &Server) {
    let stock = stock(server);
    let per = 300;
    server
        .connect()
        .roundtrip("set ctr 0 0 1\r\n0\r\n", "STORED\r\n");
    let replies = race(server, move |_, c| {
        (0..per)
            .map(|_| {
                c.send("incr ctr 1\r\n");
                let line = c.read_line();
                std::str::from_utf8(&line)
                    .ok()
                    .and_then(|l| l.trim_end().parse::<u64>().ok())
                    .unwrap_or_else(|| panic!("incr reply {}", escape(&line)))
            })
            .collect::<Vec<u64>>()
    });
    let mut all: Vec<u64> = replies.into_iter().flatten().collect();
    all.sort_unstable();
    let n = (THREADS * per) as u64;
    assert_eq!(all.len() as u64, n);
    assert!(
        all.iter().copied().eq(1..=n),
        "incr replies are not exactly 1..={n} once each"
    );
    let mut c = server.connect();
    let v = n.to_string();
    c.roundtrip(
        "get ctr\r\n",
        format!("VALUE ctr 0 {}\r\n{v}\r\nEND\r\n", v.len()),
    );
    verify(server, &stock);
}
both!(incr_counted_once, &[]);

fn connect(addr: SocketAddr) -> Conn {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    Conn::new(common::Stream::Tcp(s))
}

/// Runs `body(t, conn)` for t in 0..THREADS, each on its own connection
/// to `server`, all released at once by a barrier; returns what each
/// returned, in thread order.
fn race<T: Send + 'static>(
    server: &Server,
    body: impl Fn(usize, &mut Conn) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let addr = server.tcp_addr();
    let start = Arc::new(Barrier::new(THREADS));
    let body = Arc::new(body);
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (start, body) = (start.clone(), body.clone());
            thread::spawn(move || {
                let mut c = connect(addr);
                start.wait();
                body(t, &mut c)
            })
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// `cas` never lets two writers win with the same unique; the value ends
/// as the number of wins.
fn cas_single_winner(server: &Server) {
    let stock = stock(server);
    server
        .connect()
        .roundtrip("set casv 0 0 1\r\n0\r\n", "STORED\r\n");
    let wins = race(server, |_, c| {
        let mut wins = Vec::new();
        for _ in 0..150 {
            let (_, data, unique) = c.gets("casv");
            let n: u64 = std::str::from_utf8(&data).unwrap().parse().unwrap();
            let next = (n + 1).to_string();
            c.send(format!(
                "cas casv 0 0 {} {unique}\r\n{next}\r\n",
                next.len()
            ));
            let line = c.read_line();
            match &line[..] {
                b"STORED\r\n" => wins.push((unique, n + 1)),
                b"EXISTS\r\n" => {}
                other => panic!("cas reply {}", escape(other)),
            }
        }
        wins
    });
    let wins: Vec<(u64, u64)> = wins.into_iter().flatten().collect();
    let mut by_unique: BTreeMap<u64, usize> = BTreeMap::new();
    for (u, _) in &wins {
        *by_unique.entry(*u).or_default() += 1;
    }
    let doubles: Vec<_> = by_unique.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        doubles.is_empty(),
        "two cas winners for uniques {doubles:?}"
    );
    // Each win wrote the value it read + 1: the wins are 1..=W.
    let mut written: Vec<u64> = wins.iter().map(|(_, v)| *v).collect();
    written.sort_unstable();
    assert!(
        written.iter().copied().eq(1..=wins.len() as u64),
        "cas wins did not write 1..={} once each",
        wins.len()
    );
    assert!(!wins.is_empty());
    let (_, data, _) = server.connect().gets("casv");
    assert_eq!(data, wins.len().to_string().into_bytes());
    verify(server, &stock);
}
both!(cas_single_winner, &[]);

/// Concurrent appends: every acknowledged piece is in the value exactly
/// once, each writer's pieces in its order.
fn append_no_loss(server: &Server) {
    let stock = stock(server);
    server
        .connect()
        .roundtrip("set app 0 0 0\r\n\r\n", "STORED\r\n");
    let per = 200;
    race(server, move |t, c| {
        for i in 0..per {
            let piece = format!("{t}.{i},");
            c.roundtrip(
                format!("append app 0 0 {}\r\n{piece}\r\n", piece.len()),
                "STORED\r\n",
            );
        }
    });
    let (_, data, _) = server.connect().gets("app");
    let text = String::from_utf8(data).unwrap();
    let mut next = [0usize; THREADS];
    let mut count = 0;
    for piece in text.split(',').filter(|p| !p.is_empty()) {
        let (t, i) = piece
            .split_once('.')
            .unwrap_or_else(|| panic!("torn piece {piece:?}"));
        let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
        assert_eq!(i, next[t], "writer {t}: piece {i} out of order or repeated");
        next[t] += 1;
        count += 1;
    }
    assert_eq!(count, THREADS * per, "pieces lost");
    verify(server, &stock);
}
both!(append_no_loss, &[]);

/// A value that says what it must contain: `<key>|<writer>|<seq>|<len>|`
/// then a byte pattern fixed by those numbers.
fn checked_value(key: &str, writer: usize, seq: usize, len: usize) -> Vec<u8> {
    let mut v = format!("{key}|{writer}|{seq}|{len}|").into_bytes();
    let fill = b'a' + ((writer * 31 + seq) % 26) as u8;
    v.resize(v.len() + len, fill);
    v
}

fn check_value(key: &str, v: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(&v[..v.len().min(80)]).into_owned();
    let mut parts = text.splitn(5, '|');
    let k = parts.next().unwrap_or("");
    let w = parts.next().and_then(|s| s.parse::<usize>().ok());
    let s = parts.next().and_then(|s| s.parse::<usize>().ok());
    let l = parts.next().and_then(|s| s.parse::<usize>().ok());
    let (Some(w), Some(s), Some(l)) = (w, s, l) else {
        return Err(format!("bad header in {}", escape(&v[..v.len().min(80)])));
    };
    if k != key {
        return Err(format!("value of {k} under key {key}"));
    }
    let want = checked_value(key, w, s, l);
    if v != &want[..] {
        return Err(format!("torn value under {key}: header w{w} s{s} len{l}"));
    }
    Ok(())
}

/// Reads `get <keys>` replies and checks every value.
fn read_checked(c: &mut Conn, keys: &[String]) -> usize {
    let mut seen = 0;
    loop {
        let line = c.read_line();
        if line == b"END\r\n" {
            return seen;
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        let f: Vec<&str> = text.trim_end().split(' ').collect();
        assert!(
            f.len() == 4 && f[0] == "VALUE" && keys.iter().any(|k| k == f[1]),
            "unexpected line {}",
            escape(&line)
        );
        let len: usize = f[3].parse().unwrap();
        let data = c.read_exact_n(len + 2);
        assert_eq!(&data[len..], b"\r\n");
        if let Err(e) = check_value(f[1], &data[..len]) {
            panic!("{e}");
        }
        seen += 1;
    }
}

/// Writers overwrite a few keys with self-checking values of changing
/// sizes while readers read them: no reader ever sees a torn value.
fn no_torn_values(server: &Server) {
    let stock = stock(server);
    let addr = server.tcp_addr();
    let keys: Vec<String> = (0..4).map(|i| format!("torn:{i}")).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let mut handles = Vec::new();
    for w in 0..4 {
        let keys = keys.clone();
        handles.push(thread::spawn(move || {
            let mut c = connect(addr);
            for seq in 0..300 {
                let key = &keys[(w + seq) % keys.len()];
                let len = [10, 5000, 70_000, 300][seq % 4] + w;
                let v = checked_value(key, w, seq, len);
                let mut req = format!("set {key} 0 0 {}\r\n", v.len()).into_bytes();
                req.extend_from_slice(&v);
                req.extend_from_slice(b"\r\n");
                c.roundtrip(req, "STORED\r\n");
            }
            0
        }));
    }
    for _ in 0..4 {
        let (keys, stop) = (keys.clone(), stop.clone());
        handles.push(thread::spawn(move || {
            let mut c = connect(addr);
            let mut seen = 0;
            while !stop.load(Ordering::SeqCst) {
                c.send(format!("get {}\r\n", keys.join(" ")));
                seen += read_checked(&mut c, &keys);
            }
            seen
        }));
    }
    let readers = handles.split_off(4);
    for h in handles {
        h.join().unwrap();
    }
    stop.store(true, Ordering::SeqCst);
    let seen: usize = readers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(seen > 0, "readers saw no values");
    verify(server, &stock);
}
both!(no_torn_values, &[]);

/// On a small cache, writers with short TTLs force eviction and expiry
/// while readers multi-get: every value returned is whole and belongs to
/// its key; the server stays up. (Stocked items may be evicted here; those
/// still present must be intact.)
fn eviction_and_expiry_race(server: &Server) {
    let stock = stock(server);
    let addr = server.tcp_addr();
    // memcached's slab allocator at -m 4 cannot give every size class a
    // page, so it may refuse a set; ferrocache (without -M) always evicts.
    let may_refuse = server.is_memcached();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..3 {
        writers.push(thread::spawn(move || {
            let mut refused = 0;
            let mut c = connect(addr);
            let mut rng = Rng(7 + w as u64);
            for seq in 0..1500 {
                let key = format!("ev:{}", rng.below(3000));
                let len = 500 + rng.below(6000);
                let ttl = ["0", "1", "2", "-1"][rng.below(4)];
                let v = checked_value(&key, w, seq, len);
                let mut req = format!("set {key} 0 {ttl} {}\r\n", v.len()).into_bytes();
                req.extend_from_slice(&v);
                req.extend_from_slice(b"\r\n");
                c.send(req);
                let line = c.read_line();
                if may_refuse && line == b"SERVER_ERROR out of memory storing object\r\n" {
                    refused += 1;
                    continue;
                }
                // -M is not set: a full cache evicts, it never refuses.
                assert_eq!(escape(&line), "STORED\\r\\n", "set {key}");
            }
            refused
        }));
    }
    let mut readers = Vec::new();
    for r in 0..3 {
        let stop = stop.clone();
        readers.push(thread::spawn(move || {
            let mut c = connect(addr);
            let mut rng = Rng(1000 + r as u64);
            let mut seen = 0;
            while !stop.load(Ordering::SeqCst) {
                let keys: Vec<String> =
                    (0..10).map(|_| format!("ev:{}", rng.below(3000))).collect();
                c.send(format!("get {}\r\n", keys.join(" ")));
                seen += read_checked(&mut c, &keys);
            }
            seen
        }));
    }
    let refused: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    stop.store(true, Ordering::SeqCst);
    let seen: usize = readers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(seen > 0, "readers saw no values");
    assert!(refused < 4500, "every set refused");
    let mut c = server.connect();
    let evictions = c.stat("", "evictions");
    assert!(
        evictions > 0,
        "the test did not fill the cache (no evictions)"
    );
    verify_present_intact(server, &stock);
    no_panics(server);
}
both!(eviction_and_expiry_race, &["-m", "4"]);

// ------------------------------------------------- spawned ferrocache

/// The built ferrocache binary as a child process (`common::tools::Process`),
/// with what these tests read from /proc about it.
struct Spawned(Process);

impl Spawned {
    /// `ferrocache -u root -l 127.0.0.1 -p <free> -U 0 <args>`.
    fn start(args: &[&str]) -> Spawned {
        Spawned(Process::start(Target::Ferrocache, args))
    }

    /// Exactly these arguments; `port` is where it is expected to listen.
    fn start_exact(args: &[&str], port: u16) -> Spawned {
        Spawned(Process::start_exact(Target::Ferrocache, args, port))
    }

    fn pid(&self) -> u32 {
        self.0.pid()
    }

    fn addr(&self) -> SocketAddr {
        self.0.addr()
    }

    fn connect(&self) -> Conn {
        connect(self.addr())
    }

    fn status_field(&self, name: &str) -> String {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("{name} missing from /proc/PID/status"))
    }

    /// Resident memory in KiB.
    fn rss_kib(&self) -> u64 {
        let v = self.status_field("VmRSS:");
        v.trim_end_matches(" kB").trim().parse().expect("VmRSS")
    }

    /// User + system CPU time consumed so far.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        // Fields after the parenthesised command name; utime and stime are
        // fields 14 and 15 of the whole line.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = rest.split(' ').collect();
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        Duration::from_millis(ticks * 1000 / hz.max(1))
    }

    /// Socket inodes the process holds.
    fn socket_inodes(&self) -> HashSet<String> {
        let mut out = HashSet::new();
        for e in std::fs::read_dir(format!("/proc/{}/fd", self.pid())).unwrap() {
            let Ok(e) = e else { continue };
            if let Ok(target) = std::fs::read_link(e.path()) {
                let t = target.to_string_lossy().into_owned();
                if let Some(inode) = t.strip_prefix("socket:[").and_then(|s| s.strip_suffix(']')) {
                    out.insert(inode.to_string());
                }
            }
        }
        out
    }

    /// SIGTERM, sent with kill(1) as an operator would.
    fn sigterm(&self) {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM failed");
    }

    /// The exit status, if the process exits within `limit` of `since`.
    fn exit_within(&mut self, since: Instant, limit: Duration) -> Option<ExitStatus> {
        loop {
            if let Some(status) = self.0.child().try_wait().unwrap() {
                return Some(status);
            }
            if since.elapsed() > limit {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .unwrap()
            .count()
    }
}

/// Clients that ask for far more than they read: resident memory grows by
/// at most a few MB per client, not by the 100 MB each asked for.
#[test]
fn unread_multiget_replies_keep_memory_bounded() {
    let server = Spawned::start(&["-m", "64", "-t", "4"]);
    let mut c = server.connect();
    let value = vec![b'B'; 512 * 1024];
    for i in 0..8 {
        let mut req = format!("set big:{i} 0 0 {}\r\n", value.len()).into_bytes();
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n");
        c.roundtrip(req, "STORED\r\n");
    }
    // Warm every worker's buffers once with a reader that does read.
    for _ in 0..8 {
        let mut r = server.connect();
        r.send("get big:0 big:1\r\n");
        let header = format!("VALUE big:0 0 {}\r\n", value.len()).len();
        let _ = r.read_exact_n(2 * (header + value.len() + 2) + 5);
    }
    let before = server.rss_kib();
    const CLIENTS: usize = 8;
    let keys: Vec<String> = (0..200).map(|i| format!("big:{}", i % 8)).collect();
    let line = format!("get {}\r\n", keys.join(" "));
    let mut hogs = Vec::new();
    for _ in 0..CLIENTS {
        let s = TcpStream::connect(server.addr()).unwrap();
        // Two 200-key lines, then never a read.
        (&s).write_all(line.as_bytes()).unwrap();
        (&s).write_all(line.as_bytes()).unwrap();
        hogs.push(s);
    }
    // Let the server produce all it will produce.
    let mut last = 0;
    let settled = eventually(Duration::from_secs(10), || {
        thread::sleep(Duration::from_millis(300));
        let now = server.rss_kib();
        let stable = now.abs_diff(last) < 256;
        last = now;
        stable
    });
    let after = server.rss_kib();
    let growth_mib = after.saturating_sub(before) as f64 / 1024.0;
    eprintln!(
        "RSS {before} KiB -> {after} KiB with {CLIENTS} clients each asking for 200 MiB \
         (settled: {settled})"
    );
    // Still serving others meanwhile.
    let mut other = server.connect();
    other.roundtrip("get nothing\r\n", "END\r\n");
    let limit = 4.0 * CLIENTS as f64 + 8.0;
    assert!(
        growth_mib <= limit,
        "RSS grew by {growth_mib:.1} MiB for {CLIENTS} non-reading clients (limit {limit} MiB)"
    );
    drop(hogs);
}

/// With its descriptors exhausted (RLIMIT_NOFILE lowered on the running
/// process), accept fails with EMFILE: the server must not spin on it, must
/// keep serving its connections, and must accept again once descriptors
/// are free.
#[test]
fn fd_exhaustion_neither_spins_nor_stops() {
    let prlimit = std::path::Path::new("/usr/bin/prlimit").exists();
    if !require("prlimit", prlimit, "util-linux") {
        return;
    }
    let server = Spawned::start(&["-t", "2", "-c", "1000"]);
    let base = server.fd_count();
    let limit = base + 10;
    let ok = Command::new("/usr/bin/prlimit")
        .args([
            "--pid",
            &server.pid().to_string(),
            &format!("--nofile={limit}:{limit}"),
        ])
        .status()
        .expect("run prlimit")
        .success();
    assert!(ok, "prlimit failed");
    // More clients than descriptors: the extra ones wait in the backlog.
    let mut clients = Vec::new();
    for _ in 0..40 {
        clients.push(TcpStream::connect(server.addr()).expect("connect (backlog)"));
    }
    let mut first = connect(server.addr());
    // Ask every client at once, then collect answers for a while: the
    // accepted ones answer, the ones left in the backlog cannot.
    for s in &mut clients {
        s.write_all(b"version\r\n")
            .expect("write to a backlogged client");
        s.set_nonblocking(true).unwrap();
    }
    let mut served: Vec<usize> = Vec::new();
    let mut last_change = Instant::now();
    let t_ask = Instant::now();
    while t_ask.elapsed() < Duration::from_secs(10)
        && (served.is_empty() || last_change.elapsed() < Duration::from_secs(1))
    {
        for (i, s) in clients.iter_mut().enumerate() {
            if served.contains(&i) {
                continue;
            }
            let mut buf = [0u8; 64];
            if matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"VERSION ")) {
                served.push(i);
                last_change = Instant::now();
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
    for s in &mut clients {
        s.set_nonblocking(false).unwrap();
        s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    }
    assert!(
        !served.is_empty() && served.len() < 40,
        "{} of 40 clients served with {limit} descriptors",
        served.len()
    );
    // Accept keeps failing now: watch the CPU for two seconds.
    let cpu0 = server.cpu();
    let t0 = Instant::now();
    thread::sleep(Duration::from_secs(2));
    let used = server.cpu() - cpu0;
    let wall = t0.elapsed();
    eprintln!(
        "EMFILE: {} of 40 clients served; server CPU {:?} in {:?}",
        served.len(),
        used,
        wall
    );
    assert!(
        used < wall / 4,
        "server used {used:?} CPU in {wall:?} while accept failed: spinning"
    );
    // The accepted clients are still served.
    let i = served[0];
    clients[i].write_all(b"version\r\n").unwrap();
    let mut buf = [0u8; 64];
    let n = clients[i].read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"VERSION "));
    // Free the descriptors: the server accepts again.
    drop(clients);
    first.set_read_timeout(Duration::from_secs(10));
    first.send("version\r\n");
    let _ = first.expect_line_prefix("VERSION ");
    let back = eventually(Duration::from_secs(10), || {
        let mut c = connect(server.addr());
        c.send("version\r\n");
        c.read_line().starts_with(b"VERSION ")
    });
    assert!(back, "not serving new clients after descriptors were freed");
}

/// SIGTERM while a large reply is being sent: the client still receives
/// all of it, and the process exits 0 soon after.
#[test]
fn sigterm_finishes_replies_in_flight() {
    let mut server = Spawned::start(&["-t", "2"]);
    let mut c = server.connect();
    let value = vec![b'T'; 1024 * 1024 - 100];
    for i in 0..4 {
        let mut req = format!("set term:{i} 0 0 {}\r\n", value.len()).into_bytes();
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n");
        c.roundtrip(req, "STORED\r\n");
    }
    // 16 MiB of reply: far more than socket buffers hold.
    c.send("get term:0 term:1 term:2 term:3 term:0 term:1 term:2 term:3 term:0 term:1 term:2 term:3 term:0 term:1 term:2 term:3\r\n");
    // The reply has started: its first header is here.
    let first = c.read_line();
    assert_eq!(
        escape(&first),
        escape(format!("VALUE term:0 0 {}\r\n", value.len()).as_bytes())
    );
    let signalled = Instant::now();
    server.sigterm();
    // It stops accepting while the reply (which we have not read yet) is
    // still owed.
    let addr = server.addr();
    let refused = eventually(Duration::from_secs(3), || TcpStream::connect(addr).is_err());
    assert!(refused, "still accepting connections 3 s after SIGTERM");
    let mut rest = Vec::new();
    let mut expected = Vec::new();
    expected.extend_from_slice(&value);
    expected.extend_from_slice(b"\r\n");
    for i in 1..16 {
        let i = i % 4;
        expected.extend_from_slice(format!("VALUE term:{i} 0 {}\r\n", value.len()).as_bytes());
        expected.extend_from_slice(&value);
        expected.extend_from_slice(b"\r\n");
    }
    expected.extend_from_slice(b"END\r\n");
    let mut buf = vec![0u8; 256 * 1024];
    let mut stream = c.tcp().try_clone().unwrap();
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    while rest.len() < expected.len() {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => rest.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    let status = server.exit_within(signalled, Duration::from_secs(5));
    let took = signalled.elapsed();
    eprintln!(
        "SIGTERM: {} of {} reply bytes received after the signal; exit {status:?} after {took:?}",
        rest.len(),
        expected.len()
    );
    assert!(
        rest == expected,
        "reply in flight cut short by SIGTERM: {} of {} bytes arrived",
        rest.len(),
        expected.len()
    );
    let status = status.expect("still running 5 s after SIGTERM");
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(
        took < Duration::from_secs(2),
        "exit took {took:?} after SIGTERM (issue 6: within a second)"
    );
}

// -------------------------------------------------- security defaults

/// Without `-U` the process holds no UDP socket, and a datagram to its
/// port gets no answer.
#[test]
fn udp_off_without_flag() {
    let port = free_port();
    let p = port.to_string();
    let server = Spawned::start_exact(&["-u", "root", "-p", &p], port);
    let inodes = server.socket_inodes();
    for table in ["/proc/net/udp", "/proc/net/udp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            assert!(
                f.len() < 10 || !inodes.contains(f[9]),
                "ferrocache holds a UDP socket without -U: {line}"
            );
        }
    }
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let frame = [0u8, 1, 0, 0, 0, 1, 0, 0];
    let mut req = frame.to_vec();
    req.extend_from_slice(b"version\r\n");
    let _ = sock.send_to(&req, ("127.0.0.1", port));
    let mut buf = [0u8; 1500];
    assert!(
        sock.recv_from(&mut buf).is_err(),
        "a UDP reply came without -U"
    );
}

/// Without `-l`, every listening socket is on 127.0.0.1.
#[test]
fn default_listen_is_loopback() {
    let port = free_port();
    let p = port.to_string();
    let server = Spawned::start_exact(&["-u", "root", "-p", &p, "-U", "0"], port);
    let inodes = server.socket_inodes();
    let mut listening = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // st 0A = LISTEN
            if f.len() >= 10 && f[3] == "0A" && inodes.contains(f[9]) {
                listening.push((table, f[1].to_string()));
            }
        }
    }
    assert!(!listening.is_empty(), "no listening socket found");
    for (table, local) in &listening {
        assert_eq!(
            (*table, local.as_str()),
            ("/proc/net/tcp", format!("0100007F:{port:04X}").as_str()),
            "listening beyond loopback by default"
        );
    }
}

/// Started as root with `-u nobody`, the process runs as nobody (user,
/// group, no supplementary groups).
#[test]
fn user_flag_drops_root() {
    if !is_root() {
        eprintln!("SKIPPED: not running as root; -u is only used by root");
        return;
    }
    let port = free_port();
    let p = port.to_string();
    let server = Spawned::start_exact(
        &["-u", "nobody", "-l", "127.0.0.1", "-p", &p, "-U", "0"],
        port,
    );
    let uid = server.status_field("Uid:");
    let gid = server.status_field("Gid:");
    let groups = server.status_field("Groups:");
    assert!(
        uid.split_whitespace().all(|u| u == "65534"),
        "Uid: {uid} (want nobody's 65534 everywhere)"
    );
    assert!(
        gid.split_whitespace().all(|g| g != "0"),
        "Gid: {gid} (still root's group)"
    );
    assert!(
        groups.split_whitespace().all(|g| g != "0"),
        "Groups: {groups}"
    );
    // And it serves.
    let mut c = server.connect();
    c.roundtrip("set u 0 0 1\r\n1\r\n", "STORED\r\n");
}

/// Keys in the order `lru_crawler metadump all` lists them (shard by
/// shard, so by hash).
fn dump_order(server: &Spawned, keys: &[String]) -> Vec<String> {
    let mut c = server.connect();
    for k in keys {
        c.roundtrip(format!("set {k} 0 0 1\r\nx\r\n"), "STORED\r\n");
    }
    c.send("lru_crawler metadump all\r\n");
    let mut order = Vec::new();
    loop {
        let line = c.read_line();
        if line == b"END\r\n" {
            break;
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        let key = text
            .strip_prefix("key=")
            .and_then(|r| r.split(' ').next())
            .unwrap_or_else(|| panic!("metadump line {text:?}"));
        order.push(key.to_string());
    }
    order
}

/// The hash that places keys is seeded per process: the same keys written
/// in the same order to two processes land in a different order of shards
/// (with a fixed seed, someone who knows it could choose keys that all
/// collide). 64 keys over 32 shards: the same order by chance is out of
/// the question.
#[test]
fn hash_seed_differs_per_process() {
    let keys: Vec<String> = (0..64).map(|i| format!("seed-{i}")).collect();
    let orders: Vec<Vec<String>> = (0..2)
        .map(|_| {
            let server = Spawned::start(&["-m", "64", "-t", "4"]);
            dump_order(&server, &keys)
        })
        .collect();
    for order in &orders {
        let mut sorted = order.clone();
        sorted.sort();
        let mut want = keys.clone();
        want.sort();
        assert_eq!(sorted, want, "metadump lists every key once");
    }
    assert_ne!(
        orders[0], orders[1],
        "two processes placed 64 keys identically: the hash is not seeded per process"
    );
}

/// SIGTERM while clients hold replies they never read: the server gives
/// replies in flight a grace period (0.8 s), not forever, and exits 0.
#[test]
fn sigterm_does_not_wait_for_clients_that_never_read() {
    let mut server = Spawned::start(&["-t", "2"]);
    let mut c = server.connect();
    let value = vec![b'N'; 1_000_000];
    let mut req = format!("set hold 0 0 {}\r\n", value.len()).into_bytes();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n");
    c.roundtrip(req, "STORED\r\n");
    // 50 MB of reply each, never read
    let line = format!("get{}\r\n", " hold".repeat(50));
    let hogs: Vec<TcpStream> = (0..4)
        .map(|_| {
            let s = TcpStream::connect(server.addr()).unwrap();
            (&s).write_all(line.as_bytes()).unwrap();
            s
        })
        .collect();
    // the replies are under way: the server's output is stuck on them
    let started = eventually(Duration::from_secs(10), || {
        let mut probe = server.connect();
        probe.send("stats\r\n");
        let mut written = 0u64;
        loop {
            let l = probe.read_line();
            if l == b"END\r\n" {
                break;
            }
            if let Some(v) = l.strip_prefix(b"STAT bytes_written ") {
                written = String::from_utf8_lossy(v).trim().parse().unwrap_or(0);
            }
        }
        written > 4 * 1_000_000
    });
    assert!(started, "the replies did not start");
    let signalled = Instant::now();
    server.sigterm();
    let status = server.exit_within(signalled, Duration::from_secs(10));
    let took = signalled.elapsed();
    eprintln!("SIGTERM with 4 non-reading clients: exit {status:?} after {took:?}");
    let status =
        status.expect("still running 10 s after SIGTERM: waiting on clients that never read");
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(
        took < Duration::from_secs(2),
        "exit took {took:?} after SIGTERM (grace for replies in flight is 0.8 s)"
    );
    drop(hogs);
}
