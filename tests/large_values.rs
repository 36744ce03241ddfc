//! Large values in flight, against ferrocache and memcached 1.6.18 with the
//! same flags: a reply already under way sends the value as it was when
//! the request ran, whatever happens to the key meanwhile (rewrite, delete,
//! expiry, flush, eviction); readers that stop reading cost neither server
//! more than a bounded amount of memory, and other clients are still
//! served (memcached sends values from its items, holding a reference;
//! ferrocache sends a large item's value from its own mapping, pinned,
//! see `storage::pin`).
//!
//! A stuck reader here is a client whose receive buffer is small and who
//! does not read: the server's write blocks partway through the reply.
//! The kernel takes up to 4 MiB of a socket's unsent bytes here
//! (`net.ipv4.tcp_wmem`), so the replies below are larger than that: the
//! rest stays with the server.

#[macro_use]
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::io::AsRawFd;
use std::time::Duration;

use common::tools::{Process, Target};
use common::{eventually, stat_u64, Server};

/// A value of `len` bytes, distinct per `seed`.
fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i % 251) as u8))
        .collect()
}

/// A connection whose receive buffer is as small as the kernel allows, so
/// that a large reply stays mostly unsent until it reads.
fn stuck_reader(addr: std::net::SocketAddr) -> TcpStream {
    let s = socket_with_small_rcvbuf();
    let s = connect_socket(s, addr);
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    s
}

fn socket_with_small_rcvbuf() -> i32 {
    // SAFETY: plain socket calls on a descriptor this function owns.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket");
        let size: libc::c_int = 4096;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        fd
    }
}

fn connect_socket(fd: i32, addr: std::net::SocketAddr) -> TcpStream {
    use std::os::unix::io::FromRawFd;
    let std::net::SocketAddr::V4(v4) = addr else {
        panic!("IPv4 only")
    };
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: v4.port().to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(*v4.ip()).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: `fd` is a fresh socket, `sin` a valid address of its size;
    // the stream takes the descriptor over.
    unsafe {
        let r = libc::connect(
            fd,
            (&sin as *const libc::sockaddr_in).cast(),
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "connect {addr}");
        TcpStream::from_raw_fd(fd)
    }
}

/// Reads a reply of `want_len` bytes.
fn read_reply(s: &mut TcpStream, want_len: usize) -> Vec<u8> {
    let mut got = vec![0; want_len];
    s.read_exact(&mut got).expect("the whole reply");
    got
}

fn value_reply(key: &str, value: &[u8]) -> Vec<u8> {
    let mut r = format!("VALUE {key} 0 {}\r\n", value.len()).into_bytes();
    r.extend_from_slice(value);
    r.extend_from_slice(b"\r\nEND\r\n");
    r
}

/// Something done to the key `k` over a connection.
type Event<'a> = &'a dyn Fn(&mut common::Conn);

/// What happens to the key while its value is on the way: the reply is
/// the value as it was, byte for byte, on both servers.
fn value_in_flight_survives_its_key(server: &Server) {
    let mut admin = server.connect();
    let old = pattern(1, VALUE);
    let events: [(&str, Event); 5] = [
        ("rewrite", &|c| {
            c.send(format!("set k 0 0 {VALUE}\r\n"));
            c.send(pattern(2, VALUE));
            c.roundtrip("\r\n", "STORED\r\n");
        }),
        ("delete", &|c| c.roundtrip("delete k\r\n", "DELETED\r\n")),
        ("expiry", &|c| {
            c.roundtrip("touch k 1\r\n", "TOUCHED\r\n");
            std::thread::sleep(Duration::from_millis(2100));
        }),
        ("flush", &|c| c.roundtrip("flush_all\r\n", "OK\r\n")),
        ("eviction", &|c| {
            for i in 0..40 {
                c.send(format!("set filler{i} 0 0 {VALUE}\r\n"));
                c.send(pattern(3, VALUE));
                c.roundtrip("\r\n", "STORED\r\n");
            }
        }),
    ];
    for (what, event) in events {
        admin.send(format!("set k 0 0 {VALUE}\r\n"));
        admin.send(&old);
        admin.roundtrip("\r\n", "STORED\r\n");
        let mut reader = stuck_reader(server.tcp_addr());
        reader.write_all(b"get k\r\n").expect("send");
        // the server has written what the socket takes, and waits
        std::thread::sleep(Duration::from_millis(100));
        event(&mut admin);
        let want = value_reply("k", &old);
        let got = read_reply(&mut reader, want.len());
        assert!(got == want, "{what}: the bytes received");
        // (an eviction may pass by an item a reply holds: memcached's
        // does; the bytes sent are what matters)
        admin.send("get k\r\n");
        match what {
            "rewrite" => admin.expect(value_reply("k", &pattern(2, VALUE))),
            "eviction" => {
                let line = admin.read_line();
                if line.starts_with(b"VALUE") {
                    admin.expect(&old);
                    admin.expect("\r\nEND\r\n");
                } else {
                    assert_eq!(line, b"END\r\n");
                }
            }
            _ => admin.expect("END\r\n"),
        }
    }
}
both!(value_in_flight_survives_its_key, super::LARGE);

/// Values of 6 MB (more than the kernel takes of a reply), and room for
/// ten of them.
const VALUE: usize = 6_000_000;
const LARGE: &[&str] = &["-m", "64", "-I", "8m", "-t", "2"];

/// A value held by a reply is let go however the connection ends: read
/// to the end, reset, half-closed.
#[test]
fn held_values_are_let_go_when_connections_end() {
    let server = Server::ferrocache(&["-m", "64", "-t", "2"]);
    let mut admin = server.connect();
    admin.send("set big 0 0 500000\r\n");
    admin.send(pattern(5, 500_000));
    admin.roundtrip("\r\n", "STORED\r\n");
    let pinned = |c: &mut common::Conn| c.stat("", "pinned_bytes");
    let ends: [(&str, &dyn Fn(TcpStream)); 3] = [
        ("read to the end", &|mut s| {
            let one = value_reply("big", &pattern(5, 500_000));
            let one = one.strip_suffix(b"END\r\n").expect("a value");
            let want = [one.repeat(10), b"END\r\n".to_vec()].concat();
            assert!(read_reply(&mut s, want.len()) == want);
        }),
        ("reset", &|s| {
            // SO_LINGER 0: close sends a reset
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: setsockopt on the stream's open descriptor.
            unsafe {
                libc::setsockopt(
                    s.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
            drop(s);
        }),
        ("half-closed, then closed", &|s| {
            s.shutdown(std::net::Shutdown::Write).expect("shutdown");
            std::thread::sleep(Duration::from_millis(200));
            drop(s);
        }),
    ];
    for (how, end) in ends {
        let mut readers: Vec<TcpStream> = (0..5)
            .map(|_| {
                let mut s = stuck_reader(server.tcp_addr());
                s.write_all(format!("get {}\r\n", ["big"; 10].join(" ")).as_bytes())
                    .expect("send");
                s
            })
            .collect();
        assert!(
            eventually(Duration::from_secs(5), || pinned(&mut admin) > 0),
            "{how}: held while unread"
        );
        for s in readers.drain(..) {
            end(s);
        }
        assert!(
            eventually(Duration::from_secs(5), || pinned(&mut admin) == 0),
            "{how}: let go"
        );
    }
}

/// Past `-o pinned_mem_limit` a new reply that would hold one more value is
/// refused as memcached refuses a reply it has no memory for; other
/// clients' writes still find memory (eviction is not stuck behind the
/// held values); once the readers go, values are served again.
#[test]
fn the_pinned_limit_refuses_replies_not_writes() {
    let args = [LARGE, &["-o", "pinned_mem_limit=18"]].concat();
    let server = Server::ferrocache(&args);
    let mut admin = server.connect();
    for i in 0..6 {
        admin.send(format!("set v{i} 0 0 {VALUE}\r\n"));
        admin.send(pattern(i as u8, VALUE));
        admin.roundtrip("\r\n", "STORED\r\n");
    }
    // three values of 6 MB (with their pages) fit in 18 MiB, a fourth not
    let readers: Vec<TcpStream> = (0..3)
        .map(|i| {
            let mut s = stuck_reader(server.tcp_addr());
            s.write_all(format!("get v{i}\r\n").as_bytes())
                .expect("send");
            s
        })
        .collect();
    let mut held = 0;
    assert!(
        eventually(Duration::from_secs(5), || {
            held = admin.stat("", "pinned_bytes");
            held >= 3 * VALUE as u64
        }),
        "held {held}"
    );
    admin.send("get v3\r\n");
    admin.expect("SERVER_ERROR out of memory writing get response\r\n");
    assert_eq!(admin.stat("", "pinned_refused"), 1);
    assert!(admin.stat("", "response_obj_oom") >= 1);
    // small values are copied, never refused
    admin.roundtrip("set small 0 0 1\r\nx\r\n", "STORED\r\n");
    admin.roundtrip("get small\r\n", "VALUE small 0 1\r\nx\r\nEND\r\n");
    // writes evict around the held values
    for i in 0..30 {
        admin.send(format!("set w{i} 0 0 {VALUE}\r\n"));
        admin.send(pattern(9, VALUE));
        admin.roundtrip("\r\n", "STORED\r\n");
    }
    drop(readers);
    assert!(eventually(Duration::from_secs(5), || {
        admin.stat("", "pinned_bytes") == 0
    }));
    admin.send("get w29\r\n");
    admin.expect(value_reply("w29", &pattern(9, VALUE)));
}

/// Resident memory of a spawned server, from /proc.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

/// 200 readers each asking for 20 values of 1 MB and reading none: the
/// server's resident memory stays within its ceiling plus a small bound
/// per connection (copying each value into each connection's buffer, as
/// before, took ~1.9 MB per reader).
#[test]
fn stuck_readers_do_not_take_memory_past_the_ceiling() {
    let p = Process::start(Target::Ferrocache, &["-m", "16", "-t", "2", "-c", "1024"]);
    let addr = p.addr();
    let mut admin = common::Conn::new(common::Stream::Tcp(
        TcpStream::connect(addr).expect("connect"),
    ));
    for i in 0..10 {
        admin.send(format!("set v{i} 0 0 1000000\r\n"));
        admin.send(pattern(i as u8, 1_000_000));
        admin.roundtrip("\r\n", "STORED\r\n");
    }
    let before = rss(p.pid());
    let keys: Vec<String> = (0..20).map(|i| format!("v{}", i % 10)).collect();
    let line = format!("get {}\r\n", keys.join(" "));
    let readers: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut s = stuck_reader(addr);
            s.write_all(line.as_bytes()).expect("send");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let grown = rss(p.pid()).saturating_sub(before);
    // every connection's buffers: a read buffer, the reply lines; the
    // values themselves are the cache's, inside -m
    assert!(
        grown < 24 << 20,
        "resident memory grew by {} MiB with 200 stuck readers",
        grown >> 20
    );
    // and the server serves others meanwhile
    admin.roundtrip("set x 0 0 1\r\ny\r\n", "STORED\r\n");
    admin.roundtrip("get x\r\n", "VALUE x 0 1\r\ny\r\nEND\r\n");
    let stats = admin.stats("");
    assert!(stat_u64(&stats, "pinned_bytes") > 0);
    drop(readers);
}

/// SIGTERM while a reply is still sending a large value from the cache:
/// the worker drains it (as any reply in flight) and the client gets every
/// byte before the server exits cleanly.
#[test]
fn sigterm_drains_a_value_in_flight() {
    let mut p = Process::start(Target::Ferrocache, LARGE);
    let mut admin = common::Conn::new(common::Stream::Tcp(
        TcpStream::connect(p.addr()).expect("connect"),
    ));
    admin.send(format!("set k 0 0 {VALUE}\r\n"));
    admin.send(pattern(4, VALUE));
    admin.roundtrip("\r\n", "STORED\r\n");
    let mut reader = stuck_reader(p.addr());
    reader.write_all(b"get k\r\n").expect("send");
    assert!(eventually(Duration::from_secs(5), || {
        admin.stat("", "pinned_bytes") > 0
    }));
    drop(admin);
    // SAFETY: a signal to the child this test started.
    unsafe {
        libc::kill(p.pid() as libc::pid_t, libc::SIGTERM);
    }
    std::thread::sleep(Duration::from_millis(100));
    let want = value_reply("k", &pattern(4, VALUE));
    assert!(read_reply(&mut reader, want.len()) == want, "every byte");
    let status = p.child().wait().expect("wait");
    assert!(status.success(), "exit status after SIGTERM: {status}");
}
