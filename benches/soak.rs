//! Soak benchmark: ferrocache under a mixed workload with churn, expiry and
//! eviction for a set time, watching for leaks, inconsistencies and errors.
//!
//! `cargo bench --bench soak` runs 10 minutes; `FERROCACHE_SOAK_SECS=120`
//! (or `cargo bench --bench soak -- 120`) shortens it. Not part of CI.
//!
//! The server is the built binary with `-m 32 -t 4` (override the flags
//! with `FERROCACHE_SOAK_ARGS="-m 64 -t 2"`, the binary with
//! `FC_FERROCACHE`). Six client threads, one connection each, one request
//! at a time (so each latency is one round trip), over 100,000 keys:
//! 45% multi-gets of 1 to 10 keys, 28% sets (values of 50 B to 512 KiB, a
//! third with a TTL of 1 to 4 s), 8% deletes, 7% incr of counters, 6%
//! appends, 6% touches. Every value names its key and is checked when read.
//!
//! Every report interval (60 s, or a tenth of a shorter run, at least 5 s;
//! `FERROCACHE_SOAK_EVERY` sets it) it prints throughput, p50/p99/max
//! latency and the server's resident memory.
//!
//! At the end it checks, and exits 1 if any check fails:
//! - resident memory stayed flat after warm-up (a quarter of the run, at
//!   least 60 s): the least-squares trend of the per-second RSS samples
//!   over the rest projects less than max(4 MiB, 3% of the mean) growth
//!   over that span (runs shorter than 120 s only print the trend);
//! - no unexpected reply and no corrupt value was seen, the server is
//!   alive, `worker_panics` is 0 and the server logged nothing (its stderr
//!   goes to a temporary file; at the default level only warnings and
//!   errors are logged);
//! - the stats agree with what is retrievable: once every TTL has run
//!   out, a full scan of all keys the workload uses finds exactly
//!   `curr_items` items (the scan itself reaps expired ones).

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::exit;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::{env_num, Kind, Rng, Server};
use hdrhistogram::Histogram;

const KEYS: u64 = 100_000;
const COUNTERS: u64 = 100;
const APPENDS: u64 = 100;
const THREADS: usize = 6;
/// Longest TTL the workload sets.
const MAX_TTL: u64 = 4;
const MIB: f64 = 1024.0 * 1024.0;

/// What every worker shares with the reporter.
struct Shared {
    stop: AtomicBool,
    ops: AtomicU64,
    unexpected: AtomicU64,
    corrupt: AtomicU64,
    samples: Mutex<Vec<String>>,
    hist: Vec<Mutex<Histogram<u64>>>,
}

impl Shared {
    fn problem(&self, counter: &AtomicU64, what: String) {
        counter.fetch_add(1, Ordering::Relaxed);
        let mut s = self.samples.lock().unwrap();
        if s.len() < 20 {
            s.push(what);
        }
    }
}

/// One blocking connection with a read buffer.
struct Client {
    s: TcpStream,
    buf: Vec<u8>,
    start: usize,
}

impl Client {
    fn connect(addr: SocketAddr) -> io::Result<Client> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Client {
            s,
            buf: Vec::with_capacity(1 << 16),
            start: 0,
        })
    }

    fn send(&mut self, req: &[u8]) -> io::Result<()> {
        self.s.write_all(req)
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        let mut chunk = [0u8; 65536];
        let n = self.s.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "server closed",
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(i) = self.buf[self.start..].iter().position(|&b| b == b'\n') {
                let l = self.buf[self.start..self.start + i + 1].to_vec();
                self.start += i + 1;
                return Ok(l);
            }
            self.fill()?;
        }
    }

    fn exact(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() - self.start < n {
            self.fill()?;
        }
        let v = self.buf[self.start..self.start + n].to_vec();
        self.start += n;
        Ok(v)
    }

    /// Reads a retrieval reply: (key, data) pairs until END; `Err` text
    /// for anything else.
    fn values(&mut self) -> io::Result<Result<Values, String>> {
        let mut out = Vec::new();
        loop {
            let line = self.line()?;
            if line == b"END\r\n" {
                return Ok(Ok(out));
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            let f: Vec<&str> = text.trim_end().split(' ').collect();
            let len = (f.len() == 4 && f[0] == "VALUE")
                .then(|| f[3].parse::<usize>().ok())
                .flatten();
            let Some(len) = len else {
                return Ok(Err(format!("unexpected line {text:?}")));
            };
            let mut data = self.exact(len + 2)?;
            if !data.ends_with(b"\r\n") {
                return Ok(Err(format!("value of {} not ended by CRLF", f[1])));
            }
            data.truncate(len);
            out.push((f[1].to_string(), data));
        }
    }
}

/// The (key, data) pairs of a retrieval reply.
type Values = Vec<(String, Vec<u8>)>;

fn key(n: u64) -> String {
    format!("soak:{n}")
}

/// `<key>|<seq>|<len>|` then `len` bytes fixed by `seq`.
fn value(key: &str, seq: u64, len: usize) -> Vec<u8> {
    let mut v = format!("{key}|{seq}|{len}|").into_bytes();
    v.resize(v.len() + len, b'a' + (seq % 26) as u8);
    v
}

fn check(key: &str, data: &[u8]) -> Result<(), String> {
    if key.starts_with("ctr:") {
        let t = std::str::from_utf8(data).map_err(|_| "counter not text".to_string())?;
        return t
            .trim_end()
            .parse::<u64>()
            .map(|_| ())
            .map_err(|_| format!("counter {key} = {t:?}"));
    }
    if key.starts_with("app:") {
        return if data.iter().all(|&b| b.is_ascii_digit() || b == b',') {
            Ok(())
        } else {
            Err(format!("append value of {key} has foreign bytes"))
        };
    }
    let head: String = String::from_utf8_lossy(&data[..data.len().min(60)]).into_owned();
    let mut p = head.splitn(4, '|');
    let (k, seq, len) = (p.next(), p.next(), p.next());
    let (Some(k), Some(Ok(seq)), Some(Ok(len))) =
        (k, seq.map(str::parse::<u64>), len.map(str::parse::<usize>))
    else {
        return Err(format!("{key}: bad header {head:?}"));
    };
    if k != key {
        return Err(format!("{key} holds a value of {k}"));
    }
    if data != value(key, seq, len).as_slice() {
        return Err(format!("{key}: torn value (seq {seq}, len {len})"));
    }
    Ok(())
}

fn value_len(rng: &mut Rng) -> usize {
    match rng.below(1000) {
        0..=599 => 50 + rng.below(450) as usize,
        600..=949 => 500 + rng.below(4500) as usize,
        950..=997 => 5_000 + rng.below(60_000) as usize,
        _ => 512 * 1024,
    }
}

fn worker(id: usize, addr: SocketAddr, shared: Arc<Shared>) {
    let mut rng = Rng::new(0x50a1 + id as u64);
    let mut c = match Client::connect(addr) {
        Ok(c) => c,
        Err(e) => {
            shared.problem(&shared.unexpected, format!("worker {id}: connect: {e}"));
            return;
        }
    };
    let mut seq = (id as u64) << 40;
    while !shared.stop.load(Ordering::Relaxed) {
        seq += 1;
        let t0 = Instant::now();
        let r = one_op(&mut c, &mut rng, seq, &shared);
        let us = t0.elapsed().as_micros().max(1) as u64;
        if let Err(e) = r {
            shared.problem(&shared.unexpected, format!("worker {id}: i/o: {e}"));
            // Reconnect and go on: the check at the end reports it.
            thread::sleep(Duration::from_millis(100));
            match Client::connect(addr) {
                Ok(n) => c = n,
                Err(_) => return,
            }
            continue;
        }
        let _ = shared.hist[id].lock().unwrap().record(us);
        shared.ops.fetch_add(1, Ordering::Relaxed);
    }
}

fn expect_line(c: &mut Client, shared: &Shared, what: &str, ok: &[&[u8]]) -> io::Result<Vec<u8>> {
    let line = c.line()?;
    if !ok.contains(&line.as_slice()) {
        shared.problem(
            &shared.unexpected,
            format!("{what}: {:?}", String::from_utf8_lossy(&line)),
        );
    }
    Ok(line)
}

fn one_op(c: &mut Client, rng: &mut Rng, seq: u64, shared: &Shared) -> io::Result<()> {
    let op = rng.below(100);
    match op {
        0..=44 => {
            let n = 1 + rng.below(10);
            let keys: Vec<String> = (0..n).map(|_| pick_key(rng)).collect();
            c.send(format!("get {}\r\n", keys.join(" ")).as_bytes())?;
            match c.values()? {
                Ok(vals) => {
                    for (k, data) in vals {
                        if !keys.contains(&k) {
                            shared.problem(&shared.corrupt, format!("value for unasked key {k}"));
                        } else if let Err(e) = check(&k, &data) {
                            shared.problem(&shared.corrupt, e);
                        }
                    }
                }
                Err(e) => shared.problem(&shared.unexpected, format!("get: {e}")),
            }
        }
        45..=72 => {
            let k = key(rng.below(KEYS));
            let len = value_len(rng);
            let ttl = if rng.below(3) == 0 {
                1 + rng.below(MAX_TTL)
            } else {
                0
            };
            let v = value(&k, seq, len);
            let mut req = format!("set {k} 0 {ttl} {}\r\n", v.len()).into_bytes();
            req.extend_from_slice(&v);
            req.extend_from_slice(b"\r\n");
            c.send(&req)?;
            expect_line(c, shared, "set", &[b"STORED\r\n"])?;
        }
        73..=80 => {
            let k = key(rng.below(KEYS));
            c.send(format!("delete {k}\r\n").as_bytes())?;
            expect_line(c, shared, "delete", &[b"DELETED\r\n", b"NOT_FOUND\r\n"])?;
        }
        81..=87 => {
            let k = format!("ctr:{}", rng.below(COUNTERS));
            c.send(format!("incr {k} 1\r\n").as_bytes())?;
            let line = c.line()?;
            if line == b"NOT_FOUND\r\n" {
                c.send(format!("add {k} 0 0 1\r\n0\r\n").as_bytes())?;
                expect_line(c, shared, "add", &[b"STORED\r\n", b"NOT_STORED\r\n"])?;
            } else if std::str::from_utf8(&line)
                .ok()
                .and_then(|l| l.trim_end().parse::<u64>().ok())
                .is_none()
            {
                shared.problem(
                    &shared.unexpected,
                    format!("incr: {:?}", String::from_utf8_lossy(&line)),
                );
            }
        }
        88..=93 => {
            let k = format!("app:{}", rng.below(APPENDS));
            if rng.below(50) == 0 {
                c.send(format!("set {k} 0 0 0\r\n\r\n").as_bytes())?;
                expect_line(c, shared, "set app", &[b"STORED\r\n"])?;
            } else {
                let piece = format!("{},", seq % 100_000);
                c.send(format!("append {k} 0 0 {}\r\n{piece}\r\n", piece.len()).as_bytes())?;
                expect_line(c, shared, "append", &[b"STORED\r\n", b"NOT_STORED\r\n"])?;
            }
        }
        _ => {
            let k = key(rng.below(KEYS));
            let ttl = if rng.below(2) == 0 {
                1 + rng.below(MAX_TTL)
            } else {
                0
            };
            c.send(format!("touch {k} {ttl}\r\n").as_bytes())?;
            expect_line(c, shared, "touch", &[b"TOUCHED\r\n", b"NOT_FOUND\r\n"])?;
        }
    }
    Ok(())
}

fn pick_key(rng: &mut Rng) -> String {
    match rng.below(20) {
        0 => format!("ctr:{}", rng.below(COUNTERS)),
        1 => format!("app:{}", rng.below(APPENDS)),
        _ => key(rng.below(KEYS)),
    }
}

/// Every key the workload uses, scanned with 100-key gets: how many hit.
fn full_scan(addr: SocketAddr, corrupt: &mut Vec<String>) -> io::Result<u64> {
    let mut all: Vec<String> = (0..KEYS).map(key).collect();
    all.extend((0..COUNTERS).map(|n| format!("ctr:{n}")));
    all.extend((0..APPENDS).map(|n| format!("app:{n}")));
    let mut c = Client::connect(addr)?;
    let mut found = 0;
    for chunk in all.chunks(100) {
        c.send(format!("get {}\r\n", chunk.join(" ")).as_bytes())?;
        match c.values()? {
            Ok(vals) => {
                for (k, data) in vals {
                    if let Err(e) = check(&k, &data) {
                        corrupt.push(e);
                    }
                    found += 1;
                }
            }
            Err(e) => corrupt.push(format!("scan: {e}")),
        }
    }
    Ok(found)
}

/// Least-squares slope of (t, y).
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    if sxx == 0.0 {
        0.0
    } else {
        sxy / sxx
    }
}

/// Starts the server with its stderr (its log) going to `path`: the child
/// inherits this process's descriptor 2, so it points at the file while the
/// server is spawned.
fn start_logging_to(path: &std::path::Path, args: &[&str]) -> io::Result<Server> {
    use std::os::unix::io::AsRawFd;
    let file = std::fs::File::create(path)?;
    // SAFETY: plain descriptor calls; 2 is restored before returning and
    // `saved` is closed.
    let saved = unsafe { libc::dup(2) };
    if saved < 0 {
        return Err(io::Error::last_os_error());
    }
    unsafe { libc::dup2(file.as_raw_fd(), 2) };
    let server = Server::start(Kind::Ferrocache, args);
    unsafe {
        libc::dup2(saved, 2);
        libc::close(saved);
    }
    server
}

fn main() {
    let arg_secs = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .find_map(|a| a.parse::<u64>().ok());
    let secs = arg_secs.unwrap_or_else(|| env_num("FERROCACHE_SOAK_SECS", 600u64));
    let every = env_num("FERROCACHE_SOAK_EVERY", (secs / 10).clamp(5, 60));
    let args_text =
        std::env::var("FERROCACHE_SOAK_ARGS").unwrap_or_else(|_| "-m 32 -t 4".to_string());
    let args: Vec<&str> = args_text.split_whitespace().collect();

    let log_path = std::env::temp_dir().join(format!("ferrocache-soak-{}.log", std::process::id()));
    let mut server = match start_logging_to(&log_path, &args) {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&log_path);
            eprintln!("soak: cannot start ferrocache: {e}");
            exit(2);
        }
    };
    let addr = server.addr;
    println!(
        "soak: ferrocache {args_text} at {addr}, {THREADS} clients, {secs} s, report every {every} s"
    );
    println!("{}", common::machine_info());

    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        ops: AtomicU64::new(0),
        unexpected: AtomicU64::new(0),
        corrupt: AtomicU64::new(0),
        samples: Mutex::new(Vec::new()),
        hist: (0..THREADS)
            .map(|_| Mutex::new(Histogram::new_with_bounds(1, 60_000_000, 3).unwrap()))
            .collect(),
    });
    let workers: Vec<_> = (0..THREADS)
        .map(|id| {
            let shared = shared.clone();
            thread::spawn(move || worker(id, addr, shared))
        })
        .collect();

    let start = Instant::now();
    let mut rss: Vec<(f64, f64)> = Vec::new();
    let mut last_ops = 0;
    // the last line may cover less than `every` seconds
    let mut last_t = 0.0;
    let mut next = Duration::from_secs(every);
    println!(
        "{:>7} {:>10} {:>9} {:>9} {:>9} {:>10} {:>10}",
        "t (s)", "ops/s", "p50 µs", "p99 µs", "max µs", "RSS MiB", "items"
    );
    let mut next_sample = Duration::ZERO;
    while start.elapsed() < Duration::from_secs(secs) {
        // RSS once a second (the trend needs many points: single samples
        // swing by a few MiB as large values come and go); a report line
        // every `every` seconds.
        next_sample += Duration::from_secs(1);
        thread::sleep(next_sample.saturating_sub(start.elapsed()));
        let t = start.elapsed().as_secs_f64();
        let r = server.status_bytes("VmRSS").unwrap_or(0) as f64;
        rss.push((t, r));
        if start.elapsed() < next && start.elapsed() < Duration::from_secs(secs) {
            continue;
        }
        next += Duration::from_secs(every);
        let ops = shared.ops.load(Ordering::Relaxed);
        let mut merged = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for h in &shared.hist {
            let mut h = h.lock().unwrap();
            let _ = merged.add(&*h);
            h.reset();
        }
        let items = server
            .stat_u64("curr_items")
            .map_or("?".to_string(), |v| v.to_string());
        println!(
            "{:>7.0} {:>10.0} {:>9} {:>9} {:>9} {:>10.1} {:>10}",
            t,
            (ops - last_ops) as f64 / (t - last_t).max(1.0),
            merged.value_at_quantile(0.5),
            merged.value_at_quantile(0.99),
            merged.max(),
            r / MIB,
            items
        );
        last_ops = ops;
        last_t = t;
        if !server.alive() {
            break;
        }
    }
    shared.stop.store(true, Ordering::SeqCst);
    for w in workers {
        let _ = w.join();
    }

    let mut failures = Vec::new();
    if !server.alive() {
        failures.push("the server died".to_string());
    }

    // Memory: flat after warm-up (a quarter of the run, at least a minute:
    // the cache fills and the allocator settles in the first tens of
    // seconds). Runs shorter than two minutes only print the trend.
    let warm_secs = (secs as f64 / 4.0).max(60.0).min(secs as f64 / 2.0);
    let judge = secs >= 120;
    let tail: Vec<(f64, f64)> = rss.iter().copied().filter(|p| p.0 >= warm_secs).collect();
    let tail = &tail[..];
    if tail.len() >= 3 {
        let span = tail.last().unwrap().0 - tail[0].0;
        let growth = slope(tail) * span;
        let mean = tail.iter().map(|p| p.1).sum::<f64>() / tail.len() as f64;
        let tolerance = (4.0 * MIB).max(0.03 * mean);
        println!(
            "RSS after warm-up: mean {:.1} MiB, trend {:+.2} MiB over {:.0} s (tolerance {:.1} MiB)",
            mean / MIB,
            growth / MIB,
            span,
            tolerance / MIB
        );
        if !judge {
            println!("RSS trend not judged: runs shorter than 120 s are still warming up");
        } else if growth > tolerance {
            failures.push(format!(
                "RSS grows: {:+.2} MiB over {span:.0} s after warm-up",
                growth / MIB
            ));
        }
    } else {
        println!("RSS trend: too few samples for a trend (run longer)");
    }

    // Errors.
    let unexpected = shared.unexpected.load(Ordering::Relaxed);
    let corrupt = shared.corrupt.load(Ordering::Relaxed);
    for s in shared.samples.lock().unwrap().iter() {
        println!("  problem: {s}");
    }
    if unexpected > 0 {
        failures.push(format!("{unexpected} unexpected replies or i/o errors"));
    }
    if corrupt > 0 {
        failures.push(format!("{corrupt} corrupt values read"));
    }
    match server.stat_u64("worker_panics") {
        Some(0) => {}
        Some(n) => failures.push(format!("worker_panics = {n}")),
        None => failures.push("no worker_panics stat (server down?)".to_string()),
    }

    // Stats agree with a full scan, once every TTL has run out.
    thread::sleep(Duration::from_secs(MAX_TTL + 2));
    let mut scan_problems = Vec::new();
    let mut agreed = false;
    for attempt in 0..3 {
        let found = match full_scan(addr, &mut scan_problems) {
            Ok(n) => n,
            Err(e) => {
                failures.push(format!("full scan failed: {e}"));
                break;
            }
        };
        let items = server.stat_u64("curr_items").unwrap_or(u64::MAX);
        println!("scan {attempt}: {found} items retrievable, curr_items {items}");
        if items == found {
            agreed = true;
            break;
        }
        thread::sleep(Duration::from_secs(2));
    }
    if !agreed {
        failures.push("curr_items disagrees with a full scan of every key".to_string());
    }
    if !scan_problems.is_empty() {
        failures.push(format!(
            "{} corrupt values in the final scan, e.g. {}",
            scan_problems.len(),
            scan_problems[0]
        ));
    }
    let stats = server.stats().unwrap_or_default();
    for name in [
        "total_items",
        "evictions",
        "expired_unfetched",
        "reclaimed",
        "get_hits",
        "get_misses",
    ] {
        if let Some((_, v)) = stats.iter().find(|(k, _)| k == name) {
            println!("  {name} {v}");
        }
    }
    println!(
        "soak: {} operations in {:.0} s",
        shared.ops.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64()
    );
    // `exit` skips destructors: stop the server first.
    drop(server);
    // Nothing logged: at the default level the server logs only warnings
    // and errors (a panic in a connection, a failed accept, ...).
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    let logged: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    for line in logged.iter().take(20) {
        println!("  server log: {line}");
    }
    if !logged.is_empty() {
        failures.push(format!(
            "the server logged {} line(s) of warnings or errors",
            logged.len()
        ));
    }
    if failures.is_empty() {
        println!("soak: PASS");
    } else {
        for f in &failures {
            println!("soak: FAIL: {f}");
        }
        exit(1);
    }
}
