//! Shared harness for the integration tests: a server that is either an
//! in-process ferrocache or a spawned reference memcached, a byte-level
//! connection with exact expectations, and the transcript runner.
//!
//! Every protocol table runs against both servers: the memcached half keeps
//! the tables honest (they must describe what memcached 1.6 really answers),
//! the ferrocache half checks that we answer the same bytes.

// Each test file uses a different subset of this module.
#![allow(dead_code)]

pub mod binary;
pub mod differential;
pub mod random;
pub mod sasl;
pub mod tls;
pub mod tools;

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

pub use tools::Target;
use tools::{flag_value, Process};

/// How long any single expectation may wait for bytes.
pub const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// In a transcript, the expected "reply" that means: the server closes the
/// connection (and sends nothing more).
pub const CLOSED: &[u8] = b"\0<connection closed>\0";

/// A request whose reply every server gives the same way whatever the test
/// did before: appended to every transcript to prove nothing extra was sent.
const SENTINEL: (&[u8], &[u8]) = (b"get transcript:sentinel\r\n", b"END\r\n");

/// Runs one test function against an in-process ferrocache and against the
/// reference memcached, both started with the same memcached-style flags:
/// `both!(name, &["-m", "8"]);` expects `fn name(server: &Server)` and makes
/// `name::ferrocache` and `name::memcached` tests.
#[allow(unused_macros)]
macro_rules! both {
    ($test:ident, $args:expr) => {
        mod $test {
            #[test]
            fn ferrocache() {
                let server = $crate::common::Server::ferrocache($args);
                super::$test(&server);
            }

            #[test]
            fn memcached() {
                if let Some(server) = $crate::common::memcached_or_skip($args) {
                    super::$test(&server);
                }
            }
        }
    };
}

/// A binary transcript (`common::binary::transcript`) against both servers
/// started with `args`: `binary!(name, &["-B", "binary"], STEPS);`.
#[allow(unused_macros)]
macro_rules! binary {
    ($name:ident, $args:expr, $steps:expr) => {
        fn $name(server: &$crate::common::Server) {
            $crate::common::binary::transcript(server, $steps);
        }
        both!($name, $args);
    };
}

/// Like [`both!`] for a transcript table: `table!(name, &["-F"], TABLE)`.
#[allow(unused_macros)]
macro_rules! table {
    ($test:ident, $args:expr, $table:expr) => {
        fn $test(server: &$crate::common::Server) {
            $crate::common::transcript(server, $table);
        }
        both!($test, $args);
    };
}

/// The reference memcached started with `args`, or `None` when it is not
/// installed (a loud note, or a panic under CI: see
/// [`Target::available`]).
pub fn memcached_or_skip(args: &[&str]) -> Option<Server> {
    Target::Memcached
        .available()
        .then(|| Server::memcached(args))
}

/// Whether the tests run as root (the uid from /proc).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// A running server under test, stopped on drop.
pub struct Server {
    target: Target,
    tcp: Option<SocketAddr>,
    udp: Option<SocketAddr>,
    unix: Option<PathBuf>,
    handle: Option<ferrocache::ServerHandle>,
    process: Option<Process>,
    /// Started with `-Z`: how [`Server::connect`] speaks to it.
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// The client a `-Z` server is spoken to with by default: it trusts the
/// test CA and presents the client certificate the CA signed.
fn default_tls(args: &[&str]) -> Option<std::sync::Arc<rustls::ClientConfig>> {
    if !args.contains(&"-Z") {
        return None;
    }
    let certs = tls::certs().expect("TLS tests check for openssl first");
    Some(tls::client_config(certs, tls::ClientCert::Signed, None))
}

impl Server {
    /// An in-process ferrocache configured by memcached-style flags, on an
    /// ephemeral port of 127.0.0.1 (unless the flags ask for a unix socket).
    pub fn ferrocache(args: &[&str]) -> Server {
        let argv = std::iter::once("ferrocache").chain(args.iter().copied());
        let mut config = ferrocache::Config::from_args(argv)
            .unwrap_or_else(|e| panic!("ferrocache refused the flags {args:?}: {e}"));
        if config.unix_socket.is_none() {
            config.port = 0;
            config.listen = vec!["127.0.0.1".into()];
        }
        let unix = config.unix_socket.clone();
        let handle = ferrocache::server::start(config)
            .unwrap_or_else(|e| panic!("ferrocache did not start with {args:?}: {e}"));
        let tcp = if unix.is_some() {
            None
        } else {
            Some(
                *handle
                    .tcp_addrs()
                    .first()
                    .expect("ferrocache bound no TCP address"),
            )
        };
        let udp = handle.udp_addrs().first().copied();
        Server {
            target: Target::Ferrocache,
            tcp,
            udp,
            unix,
            handle: Some(handle),
            process: None,
            tls: default_tls(args),
        }
    }

    /// A spawned `/usr/bin/memcached -u root -l 127.0.0.1 -p <free> -U 0
    /// <args>` (see [`Process::start`]), returned once it answers.
    pub fn memcached(args: &[&str]) -> Server {
        let process = Process::start(Target::Memcached, args);
        let unix = flag_value(args, "-s").map(PathBuf::from);
        let udp_port: Option<u16> = flag_value(args, "-U")
            .map(|p| p.parse().expect("-U takes a port"))
            .filter(|&p| p != 0);
        Server {
            target: Target::Memcached,
            tcp: unix.is_none().then(|| process.addr()),
            udp: udp_port.map(|p| SocketAddr::from(([127, 0, 0, 1], p))),
            unix,
            handle: None,
            process: Some(process),
            tls: default_tls(args),
        }
    }

    pub fn target(&self) -> Target {
        self.target
    }

    /// An in-process ferrocache's Prometheus endpoint (`-o metrics_listen`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.handle.as_ref()?.metrics_addr()
    }

    pub fn is_memcached(&self) -> bool {
        self.target == Target::Memcached
    }

    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp.expect("this server has no TCP listener")
    }

    pub fn udp_addr(&self) -> SocketAddr {
        self.udp
            .expect("this server has no UDP listener (start it with -U PORT)")
    }

    pub fn unix_path(&self) -> &Path {
        self.unix
            .as_deref()
            .expect("this server has no unix socket")
    }

    /// A new client connection (TCP, or the unix socket when there is one).
    pub fn connect(&self) -> Conn {
        let stream = match (&self.unix, self.tcp) {
            (Some(path), _) => Stream::Unix(
                UnixStream::connect(path).unwrap_or_else(|e| panic!("connect {path:?}: {e}")),
            ),
            (None, Some(addr)) if self.tls.is_some() => {
                let config = self.tls.as_ref().expect("checked");
                let s = tls::connect(addr, config).unwrap_or_else(|e| panic!("TLS {addr}: {e}"));
                Stream::Tls(Box::new(s))
            }
            (None, Some(addr)) => {
                let s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
                s.set_nodelay(true).expect("nodelay");
                Stream::Tcp(s)
            }
            (None, None) => panic!("server has no listener"),
        };
        Conn::new(stream)
    }

    /// The process id of a spawned memcached.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // A spawned memcached stops as its `Process` drops.
        self.process = None;
        if let Some(handle) = self.handle.take() {
            // Bounded: a shutdown that hangs must fail the test, not the suite.
            let (tx, rx) = mpsc::channel();
            thread::spawn(move || {
                handle.shutdown();
                let _ = tx.send(());
            });
            let stopped = rx.recv_timeout(Duration::from_secs(5)).is_ok();
            if !stopped && !thread::panicking() {
                panic!("ferrocache: ServerHandle::shutdown did not return within 5 s");
            }
        }
        if let Some(path) = &self.unix {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A UDP port that was free a moment ago on 127.0.0.1.
pub fn free_udp_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind udp :0");
    s.local_addr().unwrap().port()
}

/// A fresh path under the temp dir, unique to this process and call.
pub fn temp_path(name: &str) -> PathBuf {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let path =
        std::env::temp_dir().join(format!("ferrocache-test-{}-{n}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

/// Bytes shown for humans: printable ASCII as is, the rest escaped, long
/// runs shortened.
pub fn escape(bytes: &[u8]) -> String {
    const MAX: usize = 600;
    let mut out = String::new();
    let shown = &bytes[..bytes.len().min(MAX)];
    for &b in shown {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    if bytes.len() > MAX {
        out.push_str(&format!("… ({} bytes in all)", bytes.len()));
    }
    out
}

/// Where two byte strings first differ (0 when one is a prefix of the
/// other), for failure messages.
pub fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).position(|(x, y)| x != y).unwrap_or(0)
}

pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<tls::TlsStream>),
}

impl Stream {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.set_read_timeout(t),
            Stream::Unix(s) => s.set_read_timeout(t),
            Stream::Tls(s) => s.sock.set_read_timeout(t),
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Write),
            Stream::Unix(s) => s.shutdown(Shutdown::Write),
            Stream::Tls(s) => s.sock.shutdown(Shutdown::Write),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// One client connection with byte-exact expectations. Reads are buffered
/// only by what an expectation asked for; nothing is read ahead except in
/// [`Conn::read_line`]-style helpers, which keep the surplus.
pub struct Conn {
    stream: Stream,
    /// Bytes received but not yet consumed by an expectation.
    pending: Vec<u8>,
}

impl Conn {
    pub fn new(stream: Stream) -> Conn {
        stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("read timeout");
        Conn {
            stream,
            pending: Vec::new(),
        }
    }

    pub fn tcp(&self) -> &TcpStream {
        match &self.stream {
            Stream::Tcp(s) => s,
            Stream::Tls(s) => &s.sock,
            Stream::Unix(_) => panic!("not a TCP connection"),
        }
    }

    pub fn set_read_timeout(&mut self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).expect("read timeout");
    }

    /// Writes all of `bytes` (one write call where the kernel allows).
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let bytes = bytes.as_ref();
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("send {}: {e}", escape(bytes)));
        self.stream.flush().expect("flush");
    }

    /// Writes all of `bytes`; false when the server has closed or reset
    /// the connection.
    pub fn try_send(&mut self, bytes: impl AsRef<[u8]>) -> bool {
        self.stream.write_all(bytes.as_ref()).is_ok() && self.stream.flush().is_ok()
    }

    /// Reads exactly `n` bytes, or says why it could not.
    pub fn try_read_n(&mut self, n: usize) -> Result<Vec<u8>, String> {
        self.fill(n)?;
        Ok(self.pending.drain(..n).collect())
    }

    /// Half-closes: the server sees end of input.
    pub fn shutdown_write(&mut self) {
        self.stream.shutdown_write().expect("shutdown write");
    }

    /// Fills `pending` to at least `n` bytes; returns how many it has (fewer
    /// on EOF, timeout or error, with a description of why).
    fn fill(&mut self, n: usize) -> Result<(), String> {
        let mut buf = vec![0u8; 64 * 1024];
        while self.pending.len() < n {
            let want = (n - self.pending.len()).min(buf.len());
            match self.stream.read(&mut buf[..want]) {
                Ok(0) => return Err("connection closed by the server".into()),
                Ok(k) => self.pending.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(format!("no more bytes within {READ_TIMEOUT:?}"))
                }
                Err(e) => return Err(format!("read error: {e}")),
            }
        }
        Ok(())
    }

    /// Reads exactly `n` bytes.
    pub fn read_exact_n(&mut self, n: usize) -> Vec<u8> {
        if let Err(why) = self.fill(n) {
            panic!(
                "wanted {n} bytes, got {} ({why}): {}",
                self.pending.len(),
                escape(&self.pending)
            );
        }
        self.pending.drain(..n).collect()
    }

    /// Reads exactly `expected.len()` bytes and asserts they are `expected`.
    pub fn expect(&mut self, expected: impl AsRef<[u8]>) {
        let expected = expected.as_ref();
        if let Err(why) = self.fill(expected.len()) {
            panic!(
                "reply mismatch ({why})\n  expected: {}\n  received: {}",
                escape(expected),
                escape(&self.pending)
            );
        }
        let got: Vec<u8> = self.pending.drain(..expected.len()).collect();
        if got != expected {
            let at = first_difference(&got, expected);
            panic!(
                "reply mismatch at byte {at}\n  expected: {}\n  received: {}",
                escape(expected),
                escape(&got)
            );
        }
    }

    /// Sends `request`, then expects exactly `reply`.
    pub fn roundtrip(&mut self, request: impl AsRef<[u8]>, reply: impl AsRef<[u8]>) {
        self.send(request);
        self.expect(reply);
    }

    /// Reads one line (through `\n`) and returns it with its `\r\n`.
    pub fn read_line(&mut self) -> Vec<u8> {
        loop {
            if let Some(i) = self.pending.iter().position(|&b| b == b'\n') {
                return self.pending.drain(..=i).collect();
            }
            let have = self.pending.len();
            if let Err(why) = self.fill(have + 1) {
                panic!(
                    "no complete line ({why}); received: {}",
                    escape(&self.pending)
                );
            }
        }
    }

    /// For replies whose content legitimately differs between servers
    /// (version strings, stat values): expects one line starting with
    /// `prefix` and ending in `\r\n`, and returns what lies between.
    pub fn expect_line_prefix(&mut self, prefix: &str) -> String {
        let line = self.read_line();
        assert!(
            line.starts_with(prefix.as_bytes()) && line.ends_with(b"\r\n"),
            "expected a line `{}…\\r\\n`, received: {}",
            escape(prefix.as_bytes()),
            escape(&line)
        );
        let rest = &line[prefix.len()..line.len() - 2];
        assert!(
            !rest.contains(&b'\r') && !rest.contains(&b'\n'),
            "stray CR/LF inside the line: {}",
            escape(&line)
        );
        String::from_utf8(rest.to_vec()).expect("line is UTF-8")
    }

    /// Expects the server to close the connection without sending anything
    /// more (EOF, or a reset, within the read timeout).
    pub fn expect_closed(&mut self) {
        let mut buf = [0u8; 4096];
        let deadline = Instant::now() + READ_TIMEOUT;
        loop {
            if !self.pending.is_empty() {
                panic!(
                    "expected the connection to close, received: {}",
                    escape(&self.pending)
                );
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return,
                Ok(k) => self.pending.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) =>
                {
                    return
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    panic!("expected the connection to close; still open after {READ_TIMEOUT:?}")
                }
                Err(e) => panic!("expected the connection to close; read error: {e}"),
            }
            if Instant::now() > deadline {
                panic!("expected the connection to close; still open after {READ_TIMEOUT:?}");
            }
        }
    }

    /// Asserts nothing arrives for `quiet`: the connection is open and idle.
    pub fn expect_silence(&mut self, quiet: Duration) {
        assert!(
            self.pending.is_empty(),
            "unexpected bytes: {}",
            escape(&self.pending)
        );
        self.stream.set_read_timeout(Some(quiet)).expect("timeout");
        let mut buf = [0u8; 4096];
        let r = self.stream.read(&mut buf);
        self.stream
            .set_read_timeout(Some(READ_TIMEOUT))
            .expect("timeout");
        match r {
            Ok(0) => panic!("connection closed; expected it to stay open"),
            Ok(k) => panic!("unexpected bytes: {}", escape(&buf[..k])),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read error while expecting silence: {e}"),
        }
    }

    /// Sends `stats[ sub]` and returns the `(name, value)` pairs in order,
    /// asserting the structure: each line `STAT <name> <value>\r\n`, then
    /// `END\r\n`.
    pub fn stats(&mut self, sub: &str) -> Vec<(String, String)> {
        if sub.is_empty() {
            self.send("stats\r\n");
        } else {
            self.send(format!("stats {sub}\r\n"));
        }
        let mut out = Vec::new();
        loop {
            let line = self.read_line();
            if line == b"END\r\n" {
                return out;
            }
            let text = String::from_utf8(line.clone())
                .unwrap_or_else(|_| panic!("stats line not UTF-8: {}", escape(&line)));
            let body = text
                .strip_prefix("STAT ")
                .and_then(|t| t.strip_suffix("\r\n"))
                .unwrap_or_else(|| panic!("not a `STAT name value` line: {}", escape(&line)));
            let (name, value) = body
                .split_once(' ')
                .unwrap_or_else(|| panic!("stat without a value: {}", escape(&line)));
            assert!(
                !name.is_empty() && !value.is_empty() && !value.contains('\r'),
                "malformed stat line: {}",
                escape(&line)
            );
            out.push((name.to_string(), value.to_string()));
        }
    }

    /// One stat from `stats[ sub]`, parsed as an integer.
    pub fn stat(&mut self, sub: &str, name: &str) -> u64 {
        let all = self.stats(sub);
        stat_u64(&all, name)
    }

    /// `gets key` for a stored key: returns (flags, value, cas unique).
    pub fn gets(&mut self, key: &str) -> (u32, Vec<u8>, u64) {
        self.send(format!("gets {key}\r\n"));
        let header = self.expect_line_prefix(&format!("VALUE {key} "));
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts.len(),
            3,
            "gets header `VALUE {key} {header}`: want flags bytes cas"
        );
        let flags = parts[0].parse().expect("flags");
        let len: usize = parts[1].parse().expect("bytes");
        let cas = parts[2].parse().expect("cas");
        let mut data = self.read_exact_n(len + 2);
        assert_eq!(&data[len..], b"\r\n", "data block must end in CRLF");
        data.truncate(len);
        self.expect("END\r\n");
        (flags, data, cas)
    }
}

/// `name` from a stats list, as an integer (panics if absent or not one).
pub fn stat_u64(stats: &[(String, String)], name: &str) -> u64 {
    let v = stat_str(stats, name);
    v.parse()
        .unwrap_or_else(|_| panic!("stat {name} = {v:?} is not an unsigned integer"))
}

/// `name` from a stats list (panics if absent).
pub fn stat_str<'a>(stats: &'a [(String, String)], name: &str) -> &'a str {
    stats
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("stat {name} missing; have: {:?}", names(stats)))
}

fn names(stats: &[(String, String)]) -> Vec<&str> {
    stats.iter().map(|(n, _)| n.as_str()).collect()
}

/// Plays a conversation on one connection: each request is sent in one
/// write and its reply must be exactly the expected bytes (empty = no
/// reply, [`CLOSED`] = the server closes). Unless the conversation ends
/// with a close, a final `get` of a missing key proves nothing extra was
/// sent.
pub fn transcript<R: AsRef<[u8]>, E: AsRef<[u8]>>(server: &Server, steps: &[(R, E)]) {
    let mut conn = server.connect();
    let target = server.target();
    for (i, (request, reply)) in steps.iter().enumerate() {
        let (request, reply) = (request.as_ref(), reply.as_ref());
        let step = std::panic::AssertUnwindSafe(|| {
            conn.send(request);
            if reply == CLOSED {
                conn.expect_closed();
            } else {
                conn.expect(reply);
            }
        });
        if let Err(e) = std::panic::catch_unwind(step) {
            eprintln!(
                "{target:?}: transcript step {} failed\n  request: {}",
                i + 1,
                escape(request)
            );
            std::panic::resume_unwind(e);
        }
        if reply == CLOSED {
            assert_eq!(i + 1, steps.len(), "steps after a close cannot run");
            return;
        }
    }
    conn.send(SENTINEL.0);
    conn.expect(SENTINEL.1);
}

/// A key of exactly `n` bytes.
pub fn key_of(n: usize) -> String {
    "k".repeat(n)
}

/// Waits (polling, bounded by `limit`) until `cond` holds; returns whether
/// it did.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}
