//! Shared by the `load` and `memory` benchmarks: spawning the two servers as
//! separate processes on free ports, reading their CPU time and resident
//! memory from /proc, a streaming reply parser, a pipelined bulk client and
//! the machine description printed beside every figure.
//!
//! Nothing here is timed; the benchmarks decide what to measure.

#![allow(dead_code)] // each bench target uses its own subset

pub mod binary;
pub mod pair;
pub mod readthrough;
pub mod tls;

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The two servers compared, in the order rounds alternate them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Memcached,
    Ferrocache,
}

impl Kind {
    pub const BOTH: [Kind; 2] = [Kind::Memcached, Kind::Ferrocache];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Memcached => "memcached",
            Kind::Ferrocache => "ferrocache",
        }
    }

    /// The binary: Debian's memcached, and ferrocache as cargo built it for
    /// this bench (the `bench` profile inherits `release`). Either can be
    /// overridden with `FC_MEMCACHED` / `FC_FERROCACHE`.
    pub fn binary(self) -> PathBuf {
        match self {
            Kind::Memcached => std::env::var_os("FC_MEMCACHED")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/usr/bin/memcached")),
            Kind::Ferrocache => std::env::var_os("FC_FERROCACHE")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ferrocache"))),
        }
    }

    /// Which servers to run: `FC_BENCH_SERVERS=memcached` limits the run to one.
    pub fn selected() -> Vec<Kind> {
        match std::env::var("FC_BENCH_SERVERS") {
            Ok(list) => Kind::BOTH
                .into_iter()
                .filter(|k| list.split(',').any(|s| s.trim() == k.name()))
                .collect(),
            Err(_) => Kind::BOTH.to_vec(),
        }
    }
}

/// A port nobody listens on right now: bind port 0, read it, let it go.
pub fn free_port() -> io::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// A server process started by a benchmark; killed when dropped.
pub struct Server {
    pub kind: Kind,
    pub addr: SocketAddr,
    /// Where it speaks plain text: `addr`, or with TLS the `notls:` port
    /// beside it (pre-loads and the readiness probe use it).
    pub plain: SocketAddr,
    child: Child,
}

impl Server {
    /// Starts `kind` with `-u root -l 127.0.0.1 -p PORT -U 0` plus `args`
    /// and waits until it answers `version`.
    pub fn start(kind: Kind, args: &[&str]) -> io::Result<Server> {
        Server::start_with_plain(kind, args, None)
    }

    /// [`Server::start`] for a server whose `-p` port speaks TLS: `args`
    /// open a plain listener on `plain_port` too.
    pub fn start_with_plain(
        kind: Kind,
        args: &[&str],
        plain_port: Option<u16>,
    ) -> io::Result<Server> {
        let bin = kind.binary();
        let port = free_port()?;
        let port_s = port.to_string();
        let mut cmd = Command::new(&bin);
        cmd.args(["-u", "root", "-l", "127.0.0.1", "-p", &port_s, "-U", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        let child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", bin.display())))?;
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let plain = plain_port.map_or(addr, |p| ([127, 0, 0, 1], p).into());
        let mut server = Server {
            kind,
            addr,
            plain,
            child,
        };
        server.wait_ready(Duration::from_secs(10))?;
        Ok(server)
    }

    fn wait_ready(&mut self, limit: Duration) -> io::Result<()> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Err(io::Error::other(format!(
                    "{} exited at start-up: {status}",
                    self.kind.name()
                )));
            }
            if let Ok(mut s) = TcpStream::connect(self.plain) {
                s.set_read_timeout(Some(Duration::from_secs(2)))?;
                s.write_all(b"version\r\n")?;
                let mut buf = [0u8; 64];
                let n = s.read(&mut buf).unwrap_or(0);
                if buf[..n].starts_with(b"VERSION ") {
                    return Ok(());
                }
            }
            if start.elapsed() > limit {
                return Err(io::Error::other(format!(
                    "{} did not answer `version` within {limit:?}",
                    self.kind.name()
                )));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The process's user + system CPU time so far, all threads, in seconds
    /// (fields 14 and 15 of /proc/PID/stat, in clock ticks).
    pub fn cpu_secs(&self) -> io::Result<f64> {
        proc_cpu_secs(&format!("/proc/{}/stat", self.pid()))
    }

    /// A `kB` field of /proc/PID/status (`VmHWM`, `VmRSS`), in bytes.
    pub fn status_bytes(&self, field: &str) -> io::Result<u64> {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))?;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix(field).and_then(|r| r.strip_prefix(':')) {
                let kb: u64 = rest
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .map_err(|_| io::Error::other(format!("bad {field} line: {line}")))?;
                return Ok(kb * 1024);
            }
        }
        Err(io::Error::other(format!("no {field} in /proc/PID/status")))
    }

    /// `stats` as (name, value) pairs.
    pub fn stats(&self) -> io::Result<Vec<(String, String)>> {
        let mut s = TcpStream::connect(self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        s.write_all(b"stats\r\n")?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.ends_with(b"END\r\n") {
            let n = s.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::other("closed during stats"));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let text = String::from_utf8_lossy(&buf);
        Ok(text
            .lines()
            .filter_map(|l| {
                let mut it = l.strip_prefix("STAT ")?.splitn(2, ' ');
                Some((it.next()?.to_string(), it.next()?.to_string()))
            })
            .collect())
    }

    /// One numeric `stats` value, if the server reports it.
    pub fn stat_u64(&self, name: &str) -> Option<u64> {
        self.stats()
            .ok()?
            .into_iter()
            .find(|(k, _)| k == name)
            .and_then(|(_, v)| v.parse().ok())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

fn proc_cpu_secs(path: &str) -> io::Result<f64> {
    let text = std::fs::read_to_string(path)?;
    // The command name (field 2) is in parentheses and may hold spaces: count
    // fields after the last ')'. There, utime and stime are the 12th and 13th.
    let after = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or_else(|| io::Error::other("bad /proc stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let num = |i: usize| -> io::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| io::Error::other("bad /proc stat field"))
    };
    Ok((num(11)? + num(12)?) as f64 / clock_ticks_per_sec())
}

/// CPU time the whole machine spent busy so far (user, nice, system, irq,
/// softirq and steal of the `cpu` line of /proc/stat), in seconds: minus the
/// servers' and the generator's own, it tells how much else ran meanwhile.
pub fn machine_busy_secs() -> f64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().find(|l| l.starts_with("cpu ")) else {
        return f64::NAN;
    };
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() < 8 {
        return f64::NAN;
    }
    // user nice system idle iowait irq softirq steal
    let busy = f[0] + f[1] + f[2] + f[5] + f[6] + f[7];
    busy as f64 / clock_ticks_per_sec()
}

/// CPU time of this process (the load generator), all threads, in seconds.
pub fn self_cpu_secs() -> f64 {
    proc_cpu_secs("/proc/self/stat").unwrap_or(f64::NAN)
}

/// Where reports go: `<target dir>/bench-report`, found from the ferrocache
/// binary cargo built (`<target>/release/ferrocache`).
pub fn report_dir() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_ferrocache"));
    let target = bin
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("bench-report")
}

/// Date, cores, CPU model, kernel and the two servers' versions: what a
/// reader needs to weigh the figures.
pub fn machine_info() -> String {
    let mut out = String::new();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let version = |k: Kind| {
        Command::new(k.binary())
            .arg("-V")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|_| "?".into())
    };
    let _ = write!(
        out,
        "{date}; {cores} cores ({model}); Linux {kernel}; {} vs {}",
        version(Kind::Memcached),
        version(Kind::Ferrocache)
    );
    out
}

/// A tiny deterministic generator (splitmix64): the same seed gives both
/// servers the same sequence of keys and operations.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n small enough that the modulo bias is negligible).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() >> 32) * n) >> 32
    }
}

/// Appends `<prefix><n>` with `n` zero-padded to 10 digits (`key:0000000042`,
/// 14 bytes with a 4-byte prefix).
pub fn push_key(out: &mut Vec<u8>, prefix: &str, n: u64) {
    out.extend_from_slice(prefix.as_bytes());
    let mut digits = [b'0'; 10];
    let mut v = n;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&digits);
}

/// Appends `set <key> 0 0 <len>\r\n<value>\r\n`.
pub fn push_set(out: &mut Vec<u8>, prefix: &str, n: u64, value: &[u8]) {
    push_storage(out, b"set ", prefix, n, b" 0 0 ", b"\r\n", value);
}

/// `ms <key> <len> T0` and the value: the meta form of [`push_set`].
pub fn push_meta_set(out: &mut Vec<u8>, prefix: &str, n: u64, value: &[u8]) {
    push_storage(out, b"ms ", prefix, n, b" ", b" T0\r\n", value);
}

/// `<verb><key><before_len><len><after_len><value>\r\n`.
fn push_storage(
    out: &mut Vec<u8>,
    verb: &[u8],
    prefix: &str,
    n: u64,
    before_len: &[u8],
    after_len: &[u8],
    value: &[u8],
) {
    out.extend_from_slice(verb);
    push_key(out, prefix, n);
    out.extend_from_slice(before_len);
    out.extend_from_slice(value.len().to_string().as_bytes());
    out.extend_from_slice(after_len);
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A value of `len` printable bytes (varying, so nothing compresses it away).
pub fn make_value(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

/// One reply element, as the streaming parser sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// A `VALUE` block of a retrieval (more follow until `End`).
    Value,
    /// `END`: a retrieval is complete.
    End,
    /// `STORED`.
    Stored,
    /// `VA <bytes> …` and its data: a meta get hit, a whole reply.
    MetaValue,
    /// `ERROR`, `CLIENT_ERROR …`, `SERVER_ERROR …`.
    Error,
    /// Any other one-line reply (`NOT_STORED`, `DELETED`, …).
    Other,
}

/// Parses the first reply element in `buf`: `Some((element, bytes))`, or
/// `None` when it is not complete yet.
pub fn parse_reply(buf: &[u8]) -> Option<(Reply, usize)> {
    let nl = buf.iter().position(|&b| b == b'\n')?;
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let after_line = nl + 1;
    if let Some(rest) = line.strip_prefix(b"VALUE ") {
        // VALUE <key> <flags> <bytes> [<cas>]
        let len = rest
            .split(|&b| b == b' ')
            .nth(2)
            .and_then(|f| std::str::from_utf8(f).ok())
            .and_then(|f| f.parse::<usize>().ok())?;
        let end = after_line + len + 2;
        return (buf.len() >= end).then_some((Reply::Value, end));
    }
    if let Some(rest) = line.strip_prefix(b"VA ") {
        // VA <bytes> <flags>*
        let len = rest
            .split(|&b| b == b' ')
            .next()
            .and_then(|f| std::str::from_utf8(f).ok())
            .and_then(|f| f.parse::<usize>().ok())?;
        let end = after_line + len + 2;
        return (buf.len() >= end).then_some((Reply::MetaValue, end));
    }
    let kind = match line {
        b"END" => Reply::End,
        b"STORED" => Reply::Stored,
        _ if line.starts_with(b"ERROR")
            || line.starts_with(b"CLIENT_ERROR")
            || line.starts_with(b"SERVER_ERROR") =>
        {
            Reply::Error
        }
        _ => Reply::Other,
    };
    Some((kind, after_line))
}

/// Counts of a bulk run.
#[derive(Debug, Default, Clone, Copy)]
pub struct BulkCounts {
    pub stored: u64,
    pub errors: u64,
    pub other: u64,
    pub hits: u64,
    pub misses: u64,
}

impl BulkCounts {
    fn add(&mut self, o: BulkCounts) {
        self.stored += o.stored;
        self.errors += o.errors;
        self.other += o.other;
        self.hits += o.hits;
        self.misses += o.misses;
    }
}

/// A blocking connection that sends a batch of requests and then reads the
/// replies to all of them: pipelined, and bounded (replies of a set batch are
/// small, so neither side's buffers fill up while the other writes).
struct BulkConn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
}

impl BulkConn {
    fn connect(addr: SocketAddr) -> io::Result<BulkConn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(BulkConn {
            stream,
            rbuf: Vec::with_capacity(1 << 16),
            wbuf: Vec::with_capacity(1 << 16),
        })
    }

    /// Sends `wbuf` and reads until `requests` replies are complete (a
    /// retrieval counts once, at its `END`).
    fn flush(
        &mut self,
        requests: usize,
        keys_asked: u64,
        counts: &mut BulkCounts,
    ) -> io::Result<()> {
        self.stream.write_all(&self.wbuf)?;
        self.wbuf.clear();
        let mut done = 0;
        let mut values = 0u64;
        let mut start = 0;
        let mut chunk = vec![0u8; 1 << 16];
        while done < requests {
            while let Some((reply, used)) = parse_reply(&self.rbuf[start..]) {
                start += used;
                match reply {
                    Reply::Value => values += 1,
                    Reply::MetaValue => {
                        values += 1;
                        done += 1
                    }
                    Reply::End => done += 1,
                    Reply::Stored => {
                        counts.stored += 1;
                        done += 1
                    }
                    Reply::Error => {
                        counts.errors += 1;
                        done += 1
                    }
                    Reply::Other => {
                        counts.other += 1;
                        done += 1
                    }
                }
                if done == requests {
                    break;
                }
            }
            if done == requests {
                break;
            }
            self.rbuf.drain(..start);
            start = 0;
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::Error::other("server closed the connection"));
            }
            self.rbuf.extend_from_slice(&chunk[..n]);
        }
        self.rbuf.drain(..start);
        counts.hits += values;
        counts.misses += keys_asked.saturating_sub(values);
        Ok(())
    }
}

/// Sets keys `<prefix><n>` for `n` in `range` to `value`, `batch` requests
/// per write, spread over `conns` connections (each its own thread).
pub fn bulk_set(
    addr: SocketAddr,
    prefix: &str,
    range: std::ops::Range<u64>,
    value: &[u8],
    conns: u64,
    batch: usize,
) -> io::Result<BulkCounts> {
    split_range(range, conns, |sub| {
        let mut c = BulkConn::connect(addr)?;
        let mut counts = BulkCounts::default();
        let mut pending = 0;
        for n in sub {
            push_set(&mut c.wbuf, prefix, n, value);
            pending += 1;
            if pending == batch {
                c.flush(pending, 0, &mut counts)?;
                pending = 0;
            }
        }
        if pending > 0 {
            c.flush(pending, 0, &mut counts)?;
        }
        Ok(counts)
    })
}

/// Reads keys `<prefix><n>` for `n` in `range` back with multi-gets of
/// `keys_per_get` keys, `gets_per_batch` of them pipelined.
pub fn bulk_get(
    addr: SocketAddr,
    prefix: &str,
    range: std::ops::Range<u64>,
    keys_per_get: u64,
    gets_per_batch: usize,
    conns: u64,
) -> io::Result<BulkCounts> {
    split_range(range, conns, |sub| {
        let mut c = BulkConn::connect(addr)?;
        let mut counts = BulkCounts::default();
        let mut n = sub.start;
        while n < sub.end {
            let mut gets = 0;
            let mut asked = 0;
            while gets < gets_per_batch && n < sub.end {
                c.wbuf.extend_from_slice(b"get");
                let end = (n + keys_per_get).min(sub.end);
                for k in n..end {
                    c.wbuf.push(b' ');
                    push_key(&mut c.wbuf, prefix, k);
                }
                c.wbuf.extend_from_slice(b"\r\n");
                asked += end - n;
                n = end;
                gets += 1;
            }
            c.flush(gets, asked, &mut counts)?;
        }
        Ok(counts)
    })
}

fn split_range(
    range: std::ops::Range<u64>,
    parts: u64,
    work: impl Fn(std::ops::Range<u64>) -> io::Result<BulkCounts> + Sync,
) -> io::Result<BulkCounts> {
    let parts = parts.max(1);
    let len = range.end - range.start;
    let results: Vec<io::Result<BulkCounts>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..parts)
            .map(|i| {
                let lo = range.start + len * i / parts;
                let hi = range.start + len * (i + 1) / parts;
                let work = &work;
                s.spawn(move || work(lo..hi))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("bulk thread panicked")))
            })
            .collect()
    });
    let mut total = BulkCounts::default();
    for r in results {
        total.add(r?);
    }
    Ok(total)
}

/// A number with thousands separators: 1234567 → "1,234,567".
pub fn grouped(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Median of `v` (mean of the middle two for an even count); NaN when empty.
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// Reads an environment variable as a number, with a default.
pub fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}
