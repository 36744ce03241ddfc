//! The spawned ferrocache binary under pressure: memory stays bounded
//! against clients that never read, descriptor exhaustion neither spins
//! nor stops it, and SIGTERM finishes replies in flight without waiting
//! for clients that never read them.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::tools::require;
use crate::common::{escape, eventually, READ_TIMEOUT};

use super::{connect, Spawned};

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
