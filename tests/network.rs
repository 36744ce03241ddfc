//! How requests arrive and replies leave: pipelining, requests split at
//! every byte, large values to slow readers, concurrent clients, UDP
//! frames, the unix socket, connection limits, idle timeouts and line
//! limits. Each test runs against ferrocache and, as a check on the test,
//! against the reference memcached; `shutdown_handle` is ferrocache's own.

#[macro_use]
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::thread;
use std::time::{Duration, Instant};

use common::{escape, eventually, first_difference, stat_u64, Server, READ_TIMEOUT};

/// Many requests in one write are all answered, in order.
fn pipelining(server: &Server) {
    let mut req = Vec::new();
    let mut reply = Vec::new();
    for i in 0..200 {
        req.extend(format!("set p{i} {i} 0 {}\r\nv{i}\r\n", format!("v{i}").len()).bytes());
        reply.extend(b"STORED\r\n");
        req.extend(format!("get p{i} missing\r\n").bytes());
        reply.extend(
            format!(
                "VALUE p{i} {i} {}\r\nv{i}\r\nEND\r\n",
                format!("v{i}").len()
            )
            .bytes(),
        );
        req.extend(format!("append p{i} 0 0 1 noreply\r\n!\r\n").bytes());
        req.extend(format!("incr p{i} 1\r\n").bytes());
        reply.extend(b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n");
        if i % 2 == 0 {
            req.extend(format!("delete p{i}\r\n").bytes());
            reply.extend(b"DELETED\r\n");
        }
        req.extend(b"bogus\r\n");
        reply.extend(b"ERROR\r\n");
    }
    req.extend(b"get p0 p1 p198 p199\r\n");
    reply.extend(b"VALUE p1 1 3\r\nv1!\r\nVALUE p199 199 5\r\nv199!\r\nEND\r\n");
    let mut c = server.connect();
    c.send(&req);
    c.expect(&reply);
    // and once more, with the whole batch ending the connection
    let mut c = server.connect();
    let mut tail = b"get p1\r\n".repeat(100);
    tail.extend(b"quit\r\n");
    c.send(&tail);
    c.expect(b"VALUE p1 1 3\r\nv1!\r\nEND\r\n".repeat(100));
    c.expect_closed();
}
both!(pipelining, &[]);

const SPLIT_REQUEST: &[u8] =
    b"set key 5 0 9\r\nhello\r\nxx\r\nget key other\r\nincr n 1\r\ndelete key noreply\r\ngets key\r\n";
const SPLIT_REPLY: &[u8] = b"STORED\r\nVALUE key 5 9\r\nhello\r\nxx\r\nEND\r\nNOT_FOUND\r\nEND\r\n";

/// A conversation split in two at every byte boundary, and sent one byte
/// at a time, is answered exactly as if sent whole.
fn split_at_every_byte(server: &Server) {
    let mut c = server.connect();
    for at in 1..SPLIT_REQUEST.len() {
        c.send(&SPLIT_REQUEST[..at]);
        // give the server the chance to read the first part on its own
        thread::sleep(Duration::from_millis(1));
        c.send(&SPLIT_REQUEST[at..]);
        let step = std::panic::AssertUnwindSafe(|| c.expect(SPLIT_REPLY));
        if let Err(e) = std::panic::catch_unwind(step) {
            eprintln!(
                "split after byte {at}: {} | {}",
                escape(&SPLIT_REQUEST[..at]),
                escape(&SPLIT_REQUEST[at..])
            );
            std::panic::resume_unwind(e);
        }
    }
    for &b in SPLIT_REQUEST {
        c.send([b]);
        thread::sleep(Duration::from_micros(500));
    }
    c.expect(SPLIT_REPLY);
    c.roundtrip("get key\r\n", "END\r\n");
}
both!(split_at_every_byte, &[]);

/// A value that is not one repeated byte, so misordered chunks show.
fn patterned(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251 % 7) as u8)
        .collect()
}

/// Reads `reply.len()` bytes in `chunk`-sized reads with a pause between,
/// and compares.
fn slow_read(stream: &mut TcpStream, expected: &[u8], chunk: usize, pause: Duration) {
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut got = Vec::with_capacity(expected.len());
    let mut buf = vec![0u8; chunk];
    while got.len() < expected.len() {
        let want = chunk.min(expected.len() - got.len());
        match stream.read(&mut buf[..want]) {
            Ok(0) => panic!("closed after {} of {} bytes", got.len(), expected.len()),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => panic!("read after {} of {} bytes: {e}", got.len(), expected.len()),
        }
        thread::sleep(pause);
    }
    if got != expected {
        let at = first_difference(&got, expected);
        panic!(
            "large reply differs at byte {at}: got {} expected {}",
            escape(&got[at.saturating_sub(20)..(at + 40).min(got.len())]),
            escape(&expected[at.saturating_sub(20)..(at + 40).min(expected.len())])
        );
    }
}

/// Stores `len` bytes under `key`, then has a slow reader fetch it twice
/// (pipelined) while another client is served without waiting for it.
fn large_value_slow_reader(server: &Server, len: usize) {
    let value = patterned(len);
    let mut c = server.connect();
    let mut req = format!("set big 7 0 {len}\r\n").into_bytes();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n");
    c.roundtrip(&req, "STORED\r\n");

    let mut one = format!("VALUE big 7 {len}\r\n").into_bytes();
    one.extend_from_slice(&value);
    one.extend_from_slice(b"\r\nEND\r\n");
    let mut reader = TcpStream::connect(server.tcp_addr()).unwrap();
    reader.write_all(b"get big\r\nget big\r\n").unwrap();
    // the slow reader holds the server's write side back; others go on
    thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    c.roundtrip("set other 0 0 1\r\nx\r\n", "STORED\r\n");
    c.roundtrip("get other\r\n", "VALUE other 0 1\r\nx\r\nEND\r\n");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a slow reader held up another client for {:?}",
        started.elapsed()
    );
    let both = [one.as_slice(), one.as_slice()].concat();
    let chunk = 16 * 1024;
    let pause = Duration::from_millis(if len > 2 << 20 { 1 } else { 2 });
    slow_read(&mut reader, &both, chunk, pause);
    // the connection is still in step
    reader.write_all(b"get other\r\n").unwrap();
    slow_read(
        &mut reader,
        b"VALUE other 0 1\r\nx\r\nEND\r\n",
        4,
        Duration::ZERO,
    );
}

/// The largest values the default -I 1m allows (1 MiB less some overhead);
/// exactly 1 MiB of data does not fit an item of at most 1 MiB.
fn large_value_default_limit(server: &Server) {
    large_value_slow_reader(server, 1024 * 1024 - 1024);
    let mut c = server.connect();
    let mut req = format!("set big 0 0 {}\r\n", 1024 * 1024).into_bytes();
    req.extend(patterned(1024 * 1024));
    req.extend_from_slice(b"\r\n");
    c.roundtrip(&req, "SERVER_ERROR object too large for cache\r\n");
}
both!(large_value_default_limit, &[]);

/// A 5 MiB value with -I 8m.
fn large_value_5mib(server: &Server) {
    large_value_slow_reader(server, 5 * 1024 * 1024);
}
both!(large_value_5mib, &["-I", "8m"]);

/// -I raises the limit: 1.5 MiB fits under -I 2m, 2 MiB of data does not.
fn item_size_flag(server: &Server) {
    let mut c = server.connect();
    for (len, reply) in [
        (1536 * 1024, "STORED\r\n"),
        (2048 * 1024, "SERVER_ERROR object too large for cache\r\n"),
    ] {
        let value = patterned(len);
        let mut req = format!("set big 1 0 {len}\r\n").into_bytes();
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n");
        c.roundtrip(&req, reply);
    }
    // the refused set dropped the 1.5 MiB value
    c.roundtrip("get big\r\n", "END\r\n");
}
both!(item_size_flag, &["-I", "2m"]);

/// Eight clients at once, each checking its own keys, and all sharing one
/// counter that must count every increment.
fn concurrent_clients(server: &Server) {
    const THREADS: usize = 8;
    const OPS: usize = 150;
    let mut c = server.connect();
    c.roundtrip("set shared 0 0 1\r\n0\r\n", "STORED\r\n");
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let mut c = server.connect();
            thread::spawn(move || {
                for i in 0..OPS {
                    let key = format!("t{t}:k{i}");
                    let val = format!("{t}-{i}-{}", "x".repeat(i % 50));
                    c.roundtrip(
                        format!("set {key} {t} 0 {}\r\n{val}\r\n", val.len()),
                        "STORED\r\n",
                    );
                    c.roundtrip(
                        format!("get {key}\r\n"),
                        format!("VALUE {key} {t} {}\r\n{val}\r\nEND\r\n", val.len()),
                    );
                    c.send("incr shared 1\r\n");
                    let n = c.read_line();
                    assert!(
                        n.ends_with(b"\r\n") && n[..n.len() - 2].iter().all(u8::is_ascii_digit)
                    );
                    if i % 3 == 0 {
                        c.roundtrip(format!("delete {key}\r\n"), "DELETED\r\n");
                    }
                }
                // a final check of everything this client kept
                for i in 0..OPS {
                    let key = format!("t{t}:k{i}");
                    if i % 3 == 0 {
                        c.roundtrip(format!("get {key}\r\n"), "END\r\n");
                    } else {
                        let val = format!("{t}-{i}-{}", "x".repeat(i % 50));
                        c.roundtrip(
                            format!("get {key}\r\n"),
                            format!("VALUE {key} {t} {}\r\n{val}\r\nEND\r\n", val.len()),
                        );
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().expect("a client thread failed");
    }
    let total = THREADS * OPS;
    c.roundtrip(
        "get shared\r\n",
        format!(
            "VALUE shared 0 {}\r\n{total}\r\nEND\r\n",
            total.to_string().len()
        ),
    );
}
both!(concurrent_clients, &[]);

/// Clients that vanish mid-request do not disturb the server.
fn abrupt_disconnects(server: &Server) {
    for partial in [
        &b"set k 0 0 100\r\nabc"[..],
        b"get k",
        b"set k 0 0 5\r\n",
        b"get k\r\nget k\r\nget k\r\n",
    ] {
        let mut c = server.connect();
        c.send(partial);
        drop(c);
    }
    let mut c = server.connect();
    c.roundtrip("get k\r\n", "END\r\n");
    c.roundtrip("set k 0 0 1\r\nx\r\n", "STORED\r\n");
}
both!(abrupt_disconnects, &[]);

/// memcached's UDP frame: request id, sequence number, datagram count,
/// reserved (all big-endian u16) before the ASCII payload.
fn frame(id: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    for field in [id, 0, 1, 0] {
        v.extend_from_slice(&field.to_be_bytes());
    }
    v.extend_from_slice(payload);
    v
}

/// Receives the datagrams of one reply; returns (headers, payload).
fn recv_reply(sock: &UdpSocket) -> Option<(Vec<[u16; 4]>, Vec<u8>)> {
    let mut buf = vec![0u8; 65536];
    let mut parts: Vec<([u16; 4], Vec<u8>)> = Vec::new();
    loop {
        let n = match sock.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None;
            }
            Err(e) => panic!("udp recv: {e}"),
        };
        assert!(n >= 8, "datagram of {n} bytes has no frame header");
        let h = |i: usize| u16::from_be_bytes([buf[i], buf[i + 1]]);
        let header = [h(0), h(2), h(4), h(6)];
        parts.push((header, buf[8..n].to_vec()));
        if parts.len() == usize::from(header[2]) {
            break;
        }
    }
    parts.sort_by_key(|(h, _)| h[1]);
    let headers = parts.iter().map(|(h, _)| *h).collect();
    let payload = parts.into_iter().flat_map(|(_, p)| p).collect();
    Some((headers, payload))
}

/// UDP: each reply carries the request id, sequence numbers and the count;
/// large replies span datagrams that reassemble to the TCP bytes.
fn udp(server: &Server) {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.connect(server.udp_addr()).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    // UDP may drop: retry the first exchange while the socket comes up
    let mut first = None;
    for attempt in 0..10u16 {
        sock.send(&frame(0x1200 + attempt, b"set u 5 0 2\r\nhi\r\n"))
            .unwrap();
        if let Some(r) = recv_reply(&sock) {
            first = Some((attempt, r));
            break;
        }
    }
    let (attempt, (headers, payload)) = first.expect("no UDP reply in 10 tries");
    assert_eq!(headers, vec![[0x1200 + attempt, 0, 1, 0]]);
    assert_eq!(escape(&payload), escape(b"STORED\r\n"));

    sock.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    // a datagram too short to hold a frame header is dropped unanswered
    sock.send(b"get u\r\n").unwrap();
    sock.send(&frame(0xBEEF, b"get u\r\n")).unwrap();
    let (headers, payload) = recv_reply(&sock).expect("reply to get");
    assert_eq!(
        headers,
        vec![[0xBEEF, 0, 1, 0]],
        "request id echoed, one datagram"
    );
    assert_eq!(escape(&payload), escape(b"VALUE u 5 2\r\nhi\r\nEND\r\n"));

    // a 5000-byte value: several datagrams, numbered 0..n, each with n
    let value = patterned(5000);
    let mut c = server.connect();
    let mut req = b"set big 0 0 5000\r\n".to_vec();
    req.extend_from_slice(&value);
    req.extend_from_slice(b"\r\n");
    c.roundtrip(&req, "STORED\r\n");
    sock.send(&frame(7, b"get big\r\n")).unwrap();
    let (headers, payload) = recv_reply(&sock).expect("reply to get big");
    let n = headers.len();
    assert!(n >= 2, "5000 bytes in {n} datagram(s)");
    for (seq, h) in headers.iter().enumerate() {
        assert_eq!(
            *h,
            [7, seq as u16, n as u16, 0],
            "frame header of datagram {seq}"
        );
    }
    let mut expected = b"VALUE big 0 5000\r\n".to_vec();
    expected.extend_from_slice(&value);
    expected.extend_from_slice(b"\r\nEND\r\n");
    assert!(
        payload == expected,
        "reassembled UDP reply differs from the value"
    );

    // writes over UDP are seen over TCP
    sock.send(&frame(8, b"delete u\r\n")).unwrap();
    let (_, payload) = recv_reply(&sock).expect("reply to delete");
    assert_eq!(escape(&payload), escape(b"DELETED\r\n"));
    c.roundtrip("get u\r\n", "END\r\n");
}
both!(udp, &["-U", &crate::common::free_udp_port().to_string()]);

/// -s PATH serves on a unix socket with the -a permissions, and no TCP.
fn unix_socket(server: &Server) {
    let path = server.unix_path();
    let mode = std::fs::metadata(path)
        .expect("socket file")
        .permissions()
        .mode();
    assert_eq!(
        mode & 0o777,
        0o640,
        "socket mode {:o} with -a 640",
        mode & 0o777
    );
    let mut c = server.connect();
    c.roundtrip("set s 0 0 2\r\nok\r\n", "STORED\r\n");
    c.roundtrip("get s\r\n", "VALUE s 0 2\r\nok\r\nEND\r\n");
    let mut c2 = server.connect();
    c2.roundtrip("delete s\r\n", "DELETED\r\n");
    c2.roundtrip("quit\r\n", "");
    c2.expect_closed();
}
fn unix_socket_args() -> Vec<String> {
    let path = common::temp_path("unix.sock");
    vec![
        "-s".into(),
        path.to_str().unwrap().into(),
        "-a".into(),
        "640".into(),
    ]
}
mod unix_socket {
    fn args() -> Vec<String> {
        super::unix_socket_args()
    }

    #[test]
    fn ferrocache() {
        let args = args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let server = crate::common::Server::ferrocache(&args);
        super::unix_socket(&server);
    }

    #[test]
    fn memcached() {
        let args = args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if let Some(server) = crate::common::memcached_or_skip(&args) {
            super::unix_socket(&server);
        }
    }
}

/// Over the -c limit a client is accepted, told
/// `ERROR Too many open connections`, and closed; closing clients makes
/// room again. (memcached counts file descriptors, so it serves fewer than
/// -c clients; either way the limit is never exceeded.)
fn connection_limit(server: &Server) {
    let limit = 24;
    let mut served = Vec::new();
    let mut rejected = 0;
    for i in 0..=limit {
        let mut c = server.connect();
        c.send("version\r\n");
        let line = c.read_line();
        if line.starts_with(b"VERSION ") {
            assert_eq!(
                rejected, 0,
                "client {i} served after an earlier one was refused"
            );
            served.push(c);
        } else {
            assert_eq!(
                escape(&line),
                escape(b"ERROR Too many open connections\r\n"),
                "client {i} over the limit"
            );
            c.expect_closed();
            rejected += 1;
        }
    }
    assert!(!served.is_empty(), "no client served under -c {limit}");
    assert!(
        served.len() <= limit,
        "{} clients served under -c {limit}",
        served.len()
    );
    assert!(rejected >= 1);
    // the served clients still work
    for c in &mut served {
        c.roundtrip("get x\r\n", "END\r\n");
    }
    served.truncate(0);
    let room = eventually(Duration::from_secs(5), || {
        let mut c = server.connect();
        c.send("version\r\n");
        c.read_line().starts_with(b"VERSION ")
    });
    assert!(room, "closing clients did not make room for a new one");
}
both!(connection_limit, &["-c", "24", "-t", "1"]);

/// -o idle_timeout=1 closes a client idle for about a second, and only an
/// idle one.
fn idle_timeout(server: &Server) {
    let mut idle = TcpStream::connect(server.tcp_addr()).unwrap();
    idle.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    idle.write_all(b"version\r\n").unwrap();
    let mut busy = server.connect();
    let start = Instant::now();
    let mut buf = [0u8; 256];
    let mut closed_after = None;
    let mut got = Vec::new();
    // memcached closes after 2–4 s: its clock is coarse and its idle sweep
    // sleeps between passes
    while start.elapsed() < Duration::from_secs(8) {
        match idle.read(&mut buf) {
            Ok(0) => {
                closed_after = Some(start.elapsed());
                break;
            }
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                closed_after = Some(start.elapsed());
                break;
            }
            Err(e) => panic!("idle client read: {e}"),
        }
        busy.roundtrip("get x\r\n", "END\r\n");
    }
    assert!(
        got.starts_with(b"VERSION "),
        "idle client got {}",
        escape(&got)
    );
    let after =
        closed_after.expect("an idle client was not closed within 8 s under idle_timeout=1");
    assert!(
        after >= Duration::from_millis(500),
        "idle client closed after only {after:?}"
    );
    // the busy client, never idle for a second, is still served
    for _ in 0..4 {
        thread::sleep(Duration::from_millis(250));
        busy.roundtrip("get x\r\n", "END\r\n");
    }
}
both!(idle_timeout, &["-o", "idle_timeout=1"]);

/// A line of more than 2048 bytes without a newline closes the connection,
/// unless it is a get, which may be long: 1000 keys are served.
fn long_lines(server: &Server) {
    let mut c = server.connect();
    c.send(vec![b'x'; 2049]);
    c.expect_closed();

    let mut c = server.connect();
    c.send(vec![b'x'; 2048]);
    thread::sleep(Duration::from_millis(20));
    c.roundtrip("\r\n", "ERROR\r\n");

    // a complete long line that is no command is an ordinary error
    c.roundtrip([vec![b'x'; 3000], b"\r\n".to_vec()].concat(), "ERROR\r\n");

    let keys: Vec<String> = (0..1000).map(|i| format!("key{i:04}")).collect();
    let mut expected = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if i % 10 == 0 {
            c.roundtrip(
                format!("set {k} {i} 0 {}\r\n{k}\r\n", k.len()),
                "STORED\r\n",
            );
            expected.extend(format!("VALUE {k} {i} {}\r\n{k}\r\n", k.len()).bytes());
        }
    }
    expected.extend(b"END\r\n");
    for verb in ["get", "gets"] {
        let line = format!("{verb} {}\r\n", keys.join(" "));
        assert!(line.len() > 8000);
        // in pieces, so the server sees a long line without its newline
        c.send(&line.as_bytes()[..4000]);
        thread::sleep(Duration::from_millis(20));
        c.send(&line.as_bytes()[4000..]);
        if verb == "get" {
            c.expect(&expected);
        } else {
            // gets carries cas uniques: check the shape and the count
            let mut values = 0;
            loop {
                let l = c.read_line();
                if l == b"END\r\n" {
                    break;
                }
                assert!(l.starts_with(b"VALUE key"), "{}", escape(&l));
                c.read_line();
                values += 1;
            }
            assert_eq!(values, 100);
        }
    }
    c.roundtrip("get key0000\r\n", "VALUE key0000 0 7\r\nkey0000\r\nEND\r\n");
}
both!(long_lines, &[]);

/// ServerHandle::shutdown stops listening and closes clients.
#[test]
fn shutdown_handle() {
    let mut config = ferrocache::Config::from_args(["ferrocache", "-t", "2"]).expect("config");
    config.port = 0;
    config.listen = vec!["127.0.0.1".into()];
    let handle = ferrocache::server::start(config).expect("start");
    let addr = handle.tcp_addrs()[0];
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    c.write_all(b"set a 0 0 1\r\nx\r\n").unwrap();
    let mut buf = [0u8; 8];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"STORED\r\n");

    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        handle.shutdown();
        let _ = tx.send(());
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("ServerHandle::shutdown did not return within 5 s");
    assert!(
        TcpStream::connect(addr).is_err(),
        "{addr} still accepts after shutdown"
    );
    match c.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        other => panic!("a client of a stopped server reads {other:?}, expected EOF"),
    }
}

/// Stats reflect connection counts over the wire.
fn stats_over_connections(server: &Server) {
    let mut c = server.connect();
    let before = c.stats("");
    let clients: Vec<_> = (0..5)
        .map(|_| {
            let mut c = server.connect();
            c.roundtrip("get x\r\n", "END\r\n");
            c
        })
        .collect();
    let during = c.stats("");
    assert_eq!(
        stat_u64(&during, "total_connections"),
        stat_u64(&before, "total_connections") + 5
    );
    assert!(stat_u64(&during, "curr_connections") >= 6);
    drop(clients);
}
both!(stats_over_connections, &[]);
