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
//!
//! By topic: `input.rs` (hostile input), `concurrency.rs` (racing
//! clients), `process.rs` (the spawned binary under memory, descriptor and
//! signal pressure), `defaults.rs` (security defaults). This file holds
//! what they share: the stock of items and its checks, raw connections,
//! and the spawned binary ([`Spawned`]).

#[macro_use]
#[path = "../common/mod.rs"]
mod common;

mod concurrency;
mod defaults;
mod input;
mod process;

use std::collections::{HashMap, HashSet};
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use common::tools::Process;
use common::{escape, Conn, Server, Target, READ_TIMEOUT};

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

fn connect(addr: SocketAddr) -> Conn {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).unwrap();
    Conn::new(common::Stream::Tcp(s))
}

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
