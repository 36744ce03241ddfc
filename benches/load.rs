//! Side-by-side load benchmark: memcached and ferrocache, same flags, same
//! workloads, rounds alternated (memcached, ferrocache, memcached, …) so that
//! drift of this shared machine hits both alike.
//!
//! `cargo bench --bench load [-- WORKLOAD…]` builds ferrocache in release,
//! starts both servers (`-m 1024 -t 2 -U 0`) on free ports, pre-loads each
//! workload's keys and drives them from this process: a closed-loop load
//! generator over mio, several connections per thread, optional pipelining.
//! It prints each round as it ends, then per workload the medians of ops/s,
//! p50/p99/p999 latency and CPU time per request of each server and of the
//! generator, with the ratios ferrocache/memcached; it writes the tables to
//! `target/bench-report/load.md` and a chart to `target/bench-report/load.svg`.
//!
//! Environment: `FC_BENCH_ROUNDS` (rounds per server, default 5),
//! `FC_BENCH_SECS` (measured seconds per round, default 4),
//! `FC_BENCH_WARMUP` (unmeasured seconds before each, default 1),
//! `FC_BENCH_THREADS` (generator threads, default 2), `FC_BENCH_VERBOSE`
//! (print more latency quantiles per round), `FC_BENCH_SERVERS`
//! (`memcached`, `ferrocache` or both), `FC_MEMCACHED` / `FC_FERROCACHE`
//! (binaries), `FC_BENCH_SCRAPE=1` (ferrocache serves `-o metrics_listen`
//! and a thread of this process fetches `GET /metrics` every second all
//! run long: run with and without it to see what scraping costs).

mod common;

use std::io::{self, ErrorKind};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::tls::{BenchTls, Link};
use common::{env_num, grouped, median, push_key, Kind, Rng, Server};
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use rustls::ClientConfig;
use std::sync::Arc;

/// One workload of the issue.
#[derive(Debug, Clone)]
struct Workload {
    name: &'static str,
    /// Key prefix, distinct per workload so pre-loads don't mix.
    prefix: &'static str,
    keys: u64,
    value_size: usize,
    /// Relative weights of a set and a get.
    sets: u64,
    gets: u64,
    keys_per_get: u64,
    conns: usize,
    /// Requests written together per connection (1 = no pipelining).
    depth: usize,
    /// Speak the meta protocol (`ms`, `mg <key> v`) instead of set/get.
    meta: bool,
    /// Speak the binary protocol (set and get frames) instead of text.
    binary: bool,
    /// Over TLS (`-Z`; servers of their own, the generator's rustls client).
    tls: bool,
    describe: &'static str,
}

fn workloads() -> Vec<Workload> {
    let small = Workload {
        name: "small",
        prefix: "small:",
        keys: 100_000,
        value_size: 32,
        sets: 1,
        gets: 10,
        keys_per_get: 1,
        conns: 50,
        depth: 16,
        meta: false,
        binary: false,
            tls: false,
        describe: "100,000 keys, 32 B values, 1 set : 10 gets, 50 connections, 16 requests pipelined per connection (latency per batch of 16)",
    };
    // small, request for request, in the meta protocol
    let meta = Workload {
        name: "meta",
        prefix: "meta:",
        meta: true,
        describe:
            "small, in the meta protocol: ms : mg <key> v, 1 : 10, 50 connections, 16 pipelined",
        ..small.clone()
    };
    let seed = Workload {
        name: "seed",
        prefix: "seed:",
        keys: 100_000,
        value_size: 1024,
        sets: 1,
        gets: 5,
        keys_per_get: 1,
        conns: 50,
        depth: 1,
        meta: false,
        binary: false,
        tls: false,
        describe: "100,000 keys, 1 KiB values, 1 set : 5 gets, 50 connections, no pipelining",
    };
    // seed, request for request, in the binary protocol
    let binary = Workload {
        name: "binary",
        prefix: "bin:",
        binary: true,
        describe:
            "seed in the binary protocol: set and get frames, 1 : 5, 50 connections, no pipelining",
        ..seed.clone()
    };
    // seed over TLS: both servers with -Z, the generator's client on rustls
    let seed_tls = Workload {
        name: "seed-tls",
        prefix: "seedtls:",
        tls: true,
        describe: "seed over TLS (-Z; TLS 1.3 as negotiated by the generator's rustls client)",
        ..seed.clone()
    };
    vec![
        seed,
        binary,
        seed_tls,
        small,
        meta,
        Workload {
            name: "multiget",
            prefix: "mget:",
            keys: 100_000,
            value_size: 100,
            sets: 0,
            gets: 1,
            keys_per_get: 10,
            conns: 20,
            depth: 1,
            meta: false,
            binary: false,
            tls: false,
            describe: "100,000 keys, 100 B values, gets of 10 keys at a time (ops = requests), 20 connections, no pipelining",
        },
        // large values: sent from the cache itself by ferrocache (pinned,
        // vectored writes), from the item by memcached
        Workload {
            name: "large-mget",
            prefix: "lmget:",
            keys: 1000,
            value_size: 100 * 1024,
            sets: 0,
            gets: 1,
            keys_per_get: 10,
            conns: 10,
            depth: 1,
            meta: false,
            binary: false,
            tls: false,
            describe: "1,000 keys, 100 KiB values, gets of 10 keys at a time (ops = requests), 10 connections, no pipelining",
        },
        Workload {
            name: "large-get",
            prefix: "lget:",
            keys: 100,
            // a MiB less memcached's item overhead and the key: the largest
            // value -I 1m takes
            value_size: 1024 * 1024 - 80,
            sets: 0,
            gets: 1,
            keys_per_get: 1,
            conns: 10,
            depth: 1,
            meta: false,
            binary: false,
            tls: false,
            describe: "100 keys, 1 MiB values (less the item overhead), single-key gets, 10 connections, no pipelining",
        },
    ]
}

/// What one generator thread counted in the measured window.
struct ThreadTotals {
    hist: Histogram<u64>,
    requests: u64,
    hits: u64,
    misses: u64,
    errors: u64,
    closed: u64,
    /// Batches completed per connection.
    per_conn: Vec<u64>,
}

/// One round against one server.
#[derive(Debug, Clone, Copy)]
struct Round {
    ops: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    server_cpu_us: f64,
    gen_cpu_us: f64,
    server_util: f64,
    gen_util: f64,
    /// CPU used by everything else on the machine, in cores.
    other_util: f64,
    hit_ratio: f64,
    errors: u64,
}

struct Conn {
    stream: Link,
    tls: bool,
    rng: Rng,
    wbuf: Vec<u8>,
    wpos: usize,
    rbuf: Vec<u8>,
    rstart: usize,
    /// Replies still expected for the batch in flight.
    left: usize,
    batch_start: Instant,
    keys_asked: u64,
    values: u64,
    dead: bool,
    /// Batches completed in the measured window (fairness across connections).
    done: u64,
}

impl Conn {
    /// A connection to `addr`, over TLS with `tls`'s client (its
    /// handshake runs with the first batch).
    fn new(addr: SocketAddr, seed: u64, tls: Option<&Arc<ClientConfig>>) -> io::Result<Conn> {
        let std = std::net::TcpStream::connect(addr)?;
        std.set_nodelay(true)?;
        std.set_nonblocking(true)?;
        let sock = TcpStream::from_std(std);
        let stream = match tls {
            Some(config) => Link::tls(sock, config)?,
            None => Link::Plain(sock),
        };
        Ok(Conn {
            stream,
            tls: tls.is_some(),
            rng: Rng::new(seed),
            wbuf: Vec::with_capacity(32 * 1024),
            wpos: 0,
            rbuf: Vec::with_capacity(64 * 1024),
            rstart: 0,
            left: 0,
            batch_start: Instant::now(),
            keys_asked: 0,
            values: 0,
            dead: false,
            done: 0,
        })
    }

    /// Builds the next batch of `w.depth` requests and starts writing it.
    fn start_batch(&mut self, w: &Workload, value: &[u8]) {
        self.wbuf.clear();
        self.wpos = 0;
        self.keys_asked = 0;
        self.values = 0;
        for _ in 0..w.depth {
            let is_set = self.rng.below(w.sets + w.gets) < w.sets;
            if w.binary {
                let k = self.rng.below(w.keys);
                common::binary::push(&mut self.wbuf, is_set, w.prefix, k, value);
                self.keys_asked += u64::from(!is_set);
            } else if is_set {
                let k = self.rng.below(w.keys);
                if w.meta {
                    common::push_meta_set(&mut self.wbuf, w.prefix, k, value);
                } else {
                    common::push_set(&mut self.wbuf, w.prefix, k, value);
                }
            } else if w.meta {
                let k = self.rng.below(w.keys);
                self.wbuf.extend_from_slice(b"mg ");
                push_key(&mut self.wbuf, w.prefix, k);
                self.wbuf.extend_from_slice(b" v\r\n");
                self.keys_asked += 1;
            } else {
                self.wbuf.extend_from_slice(b"get");
                for _ in 0..w.keys_per_get {
                    let k = self.rng.below(w.keys);
                    self.wbuf.push(b' ');
                    push_key(&mut self.wbuf, w.prefix, k);
                }
                self.wbuf.extend_from_slice(b"\r\n");
                self.keys_asked += w.keys_per_get;
            }
        }
        self.left = w.depth;
        self.batch_start = Instant::now();
        self.write_some();
    }

    fn write_some(&mut self) {
        if self.stream.flush().is_err() {
            self.dead = true;
            return;
        }
        while self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => {
                    self.dead = true;
                    return;
                }
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
    }

    /// Reads what is there and consumes complete replies; true when the
    /// batch in flight is complete.
    fn read_some(&mut self, w: &Workload, errors: &mut u64) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.dead = true;
                    break;
                }
                Ok(n) => {
                    self.rbuf.extend_from_slice(&chunk[..n]);
                    // A short read drained the socket; with edge-triggered
                    // readiness, later data raises a new event, so skip the
                    // read that would only say WouldBlock (a syscall per
                    // request that would count as generator CPU). Not so
                    // with TLS: a record's worth is no sign of a drained
                    // socket.
                    if n < chunk.len() && !self.tls {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    self.dead = true;
                    break;
                }
            }
        }
        while self.left > 0 && w.binary {
            let Some((hit, ok, used)) = common::binary::parse(&self.rbuf[self.rstart..]) else {
                break;
            };
            self.rstart += used;
            self.values += u64::from(hit);
            *errors += u64::from(!ok);
            self.left -= 1;
        }
        while self.left > 0 {
            let Some((reply, used)) = common::parse_reply(&self.rbuf[self.rstart..]) else {
                break;
            };
            self.rstart += used;
            match reply {
                common::Reply::Value => self.values += 1,
                common::Reply::MetaValue => {
                    self.values += 1;
                    self.left -= 1
                }
                common::Reply::Error => {
                    *errors += 1;
                    self.left -= 1
                }
                _ => self.left -= 1,
            }
        }
        if self.rstart == self.rbuf.len() {
            self.rbuf.clear();
            self.rstart = 0;
        } else if self.rstart > 32 * 1024 {
            self.rbuf.drain(..self.rstart);
            self.rstart = 0;
        }
        self.left == 0
    }
}

/// Drives `conns` from one thread from `start` to `end`, counting what
/// completes after `measure_from`.
fn drive(
    mut conns: Vec<Conn>,
    w: &Workload,
    start: Instant,
    measure_from: Instant,
    end: Instant,
) -> io::Result<ThreadTotals> {
    let value = common::make_value(w.value_size);
    let mut poll = Poll::new()?;
    for (i, c) in conns.iter_mut().enumerate() {
        poll.registry().register(
            c.stream.socket(),
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
    }
    let mut t = ThreadTotals {
        hist: Histogram::new_with_bounds(1, 60_000_000_000, 3)
            .map_err(|e| io::Error::other(e.to_string()))?,
        requests: 0,
        hits: 0,
        misses: 0,
        errors: 0,
        closed: 0,
        per_conn: Vec::new(),
    };
    if let Some(wait) = start.checked_duration_since(Instant::now()) {
        std::thread::sleep(wait);
    }
    for c in conns.iter_mut() {
        c.start_batch(w, &value);
    }
    let mut events = Events::with_capacity(256);
    let mut errors_in_warmup = 0;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        match poll.poll(&mut events, Some(end - now)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if c.dead {
                continue;
            }
            if ev.is_writable() {
                c.write_some();
            }
            if ev.is_readable() || ev.is_read_closed() {
                let measuring = Instant::now() >= measure_from;
                let errs = if measuring {
                    &mut t.errors
                } else {
                    &mut errors_in_warmup
                };
                if c.read_some(w, errs) {
                    let done = Instant::now();
                    if done >= measure_from && done < end {
                        let ns = done.duration_since(c.batch_start).as_nanos() as u64;
                        t.hist.saturating_record(ns.max(1));
                        t.requests += w.depth as u64;
                        c.done += 1;
                        t.hits += c.values;
                        t.misses += c.keys_asked.saturating_sub(c.values);
                    }
                    if done < end {
                        c.start_batch(w, &value);
                    }
                }
            }
            if c.dead {
                t.closed += 1;
            }
        }
    }
    t.per_conn = conns.iter().map(|c| c.done).collect();
    Ok(t)
}

/// One measured round of `w` against `server`.
fn round(server: &Server, w: &Workload, round_no: u64, cfg: &RunCfg) -> io::Result<Round> {
    let threads = cfg.threads.clamp(1, w.conns);
    let mut per_thread: Vec<Vec<Conn>> = (0..threads).map(|_| Vec::new()).collect();
    for i in 0..w.conns {
        // The same seeds for both servers in the same round number.
        let seed = (round_no << 32) ^ (i as u64).wrapping_mul(0x5851_F42D_4C95_7F2D) ^ 0xFC;
        let tls = w.tls.then_some(cfg.tls.as_ref()).flatten();
        per_thread[i % threads].push(Conn::new(server.addr, seed, tls)?);
    }
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + cfg.warmup;
    let end = measure_from + cfg.measure;
    let (results, (server_cpu, gen_cpu, busy, wall)) = std::thread::scope(|s| {
        let handles: Vec<_> = per_thread
            .into_iter()
            .map(|conns| s.spawn(move || drive(conns, w, start, measure_from, end)))
            .collect();
        sleep_until(measure_from);
        let s0 = server.cpu_secs().unwrap_or(f64::NAN);
        let g0 = common::self_cpu_secs();
        let b0 = common::machine_busy_secs();
        let t0 = Instant::now();
        sleep_until(end);
        let s1 = server.cpu_secs().unwrap_or(f64::NAN);
        let g1 = common::self_cpu_secs();
        let b1 = common::machine_busy_secs();
        let wall = t0.elapsed().as_secs_f64();
        let out: Vec<io::Result<ThreadTotals>> = handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(io::Error::other("generator thread panicked")))
            })
            .collect();
        (out, (s1 - s0, g1 - g0, b1 - b0, wall))
    });
    let mut hist: Histogram<u64> = Histogram::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let (mut requests, mut hits, mut misses, mut errors, mut closed) = (0, 0, 0, 0, 0);
    let mut per_conn: Vec<f64> = Vec::new();
    for r in results {
        let t = r?;
        per_conn.extend(t.per_conn.iter().map(|&n| n as f64));
        hist.add(&t.hist)
            .map_err(|e| io::Error::other(e.to_string()))?;
        requests += t.requests;
        hits += t.hits;
        misses += t.misses;
        errors += t.errors;
        closed += t.closed;
    }
    if requests == 0 {
        return Err(io::Error::other(format!(
            "no request completed ({closed} connections closed, {errors} errors)"
        )));
    }
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    if std::env::var_os("FC_BENCH_VERBOSE").is_some() {
        let qs = [0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.999];
        let line: Vec<String> = qs
            .iter()
            .map(|&q| format!("p{}={:.0}µs", q * 100.0, us(q)))
            .collect();
        println!(
            "      latency quantiles: {}  mean={:.0}µs max={:.0}µs",
            line.join(" "),
            hist.mean() / 1000.0,
            hist.max() as f64 / 1000.0
        );
        println!(
            "      batches per connection: min {:.0}, median {:.0}, max {:.0}",
            per_conn.iter().copied().fold(f64::INFINITY, f64::min),
            median(&per_conn),
            per_conn.iter().copied().fold(0.0, f64::max)
        );
    }
    Ok(Round {
        ops: requests as f64 / cfg.measure.as_secs_f64(),
        p50_us: us(0.50),
        p99_us: us(0.99),
        p999_us: us(0.999),
        server_cpu_us: server_cpu * 1e6 / requests as f64,
        gen_cpu_us: gen_cpu * 1e6 / requests as f64,
        server_util: server_cpu / wall,
        gen_util: gen_cpu / wall,
        other_util: ((busy - server_cpu - gen_cpu) / wall).max(0.0),
        hit_ratio: if hits + misses > 0 {
            hits as f64 / (hits + misses) as f64
        } else {
            f64::NAN
        },
        errors: errors + closed,
    })
}

fn sleep_until(t: Instant) {
    if let Some(d) = t.checked_duration_since(Instant::now()) {
        std::thread::sleep(d);
    }
}

struct RunCfg {
    /// The generator's TLS client, once a TLS workload's servers started.
    tls: Option<Arc<ClientConfig>>,
    rounds: u64,
    warmup: Duration,
    measure: Duration,
    threads: usize,
}

/// Medians over the rounds of one server on one workload.
#[derive(Debug, Clone, Copy)]
struct Summary {
    ops: f64,
    ops_min: f64,
    ops_max: f64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    server_cpu_us: f64,
    gen_cpu_us: f64,
    server_util: f64,
    gen_util: f64,
    /// CPU used by everything else on the machine, in cores.
    other_util: f64,
    hit_ratio: f64,
    errors: u64,
}

fn summarise(rounds: &[Round]) -> Option<Summary> {
    if rounds.is_empty() {
        return None;
    }
    let m = |f: fn(&Round) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
    Some(Summary {
        ops: m(|r| r.ops),
        ops_min: rounds.iter().map(|r| r.ops).fold(f64::INFINITY, f64::min),
        ops_max: rounds.iter().map(|r| r.ops).fold(0.0, f64::max),
        p50_us: m(|r| r.p50_us),
        p99_us: m(|r| r.p99_us),
        p999_us: m(|r| r.p999_us),
        server_cpu_us: m(|r| r.server_cpu_us),
        gen_cpu_us: m(|r| r.gen_cpu_us),
        server_util: m(|r| r.server_util),
        gen_util: m(|r| r.gen_util),
        other_util: m(|r| r.other_util),
        hit_ratio: m(|r| r.hit_ratio),
        errors: rounds.iter().map(|r| r.errors).sum(),
    })
}

struct Outcome {
    workload: Workload,
    per_server: Vec<(Kind, Option<Summary>, Option<String>)>,
}

fn main() {
    let mut cfg = RunCfg {
        tls: None,
        rounds: env_num("FC_BENCH_ROUNDS", 5u64).max(1),
        warmup: Duration::from_secs_f64(env_num("FC_BENCH_WARMUP", 1.0f64).max(0.0)),
        measure: Duration::from_secs_f64(env_num("FC_BENCH_SECS", 4.0f64).max(0.1)),
        threads: env_num("FC_BENCH_THREADS", 2usize).max(1),
    };
    // `cargo bench` passes `--bench`; other arguments name workloads.
    let wanted: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let chosen: Vec<Workload> = workloads()
        .into_iter()
        .filter(|w| wanted.is_empty() || wanted.iter().any(|n| n == w.name))
        .collect();
    let machine = common::machine_info();
    println!("load benchmark — {machine}");
    println!(
        "{} rounds per server, {:.1} s warm-up + {:.1} s measured each, {} generator threads, alternating servers",
        cfg.rounds,
        cfg.warmup.as_secs_f64(),
        cfg.measure.as_secs_f64(),
        cfg.threads
    );

    let mut servers = if chosen.iter().any(|w| !w.tls) {
        common::pair::start_servers(None)
    } else {
        Vec::new()
    };
    let mut tls_servers = Vec::new();
    if chosen.iter().any(|w| w.tls) {
        match BenchTls::new(&common::report_dir().join("tls")) {
            Ok(tls) => {
                tls_servers = common::pair::start_servers(Some(&tls));
                cfg.tls = Some(Arc::clone(&tls.client));
            }
            Err(e) => println!("!! no TLS workloads: cannot make a certificate: {e}"),
        }
    }

    let mut outcomes = Vec::new();
    for w in &chosen {
        println!("\n== {} — {}", w.name, w.describe);
        let servers = if w.tls {
            &mut tls_servers
        } else {
            &mut servers
        };
        if servers.is_empty() {
            continue;
        }
        for (kind, server, failure) in servers.iter_mut() {
            let Some(s) = server.as_ref() else { continue };
            let t = Instant::now();
            let value = common::make_value(w.value_size);
            match common::bulk_set(s.plain, w.prefix, 0..w.keys, &value, 2, 200) {
                Ok(c) if c.stored == w.keys => println!(
                    "   pre-loaded {} keys into {} in {:.1} s",
                    grouped(w.keys),
                    kind.name(),
                    t.elapsed().as_secs_f64()
                ),
                Ok(c) => println!(
                    "!! pre-load of {}: {} stored, {} errors, {} other replies",
                    kind.name(),
                    c.stored,
                    c.errors,
                    c.other
                ),
                Err(e) => {
                    println!("!! pre-load of {} failed: {e}", kind.name());
                    *failure = Some(format!("pre-load failed: {e}"));
                    *server = None;
                }
            }
        }
        let mut rounds: Vec<Vec<Round>> = vec![Vec::new(); servers.len()];
        for r in 0..cfg.rounds {
            for (i, (kind, server, failure)) in servers.iter_mut().enumerate() {
                let Some(s) = server.as_mut() else { continue };
                match round(s, w, r, &cfg) {
                    Ok(res) => {
                        println!(
                            "   {:<8} round {}/{} {:<10} {:>10} ops/s  p50 {:>7.1} µs  p99 {:>7.1} µs  p999 {:>7.1} µs  server {:>5.2} µs/req ({:>3.0}% CPU)  generator {:>5.2} µs/req ({:>3.0}% CPU)  other {:>3.0}% CPU{}",
                            w.name,
                            r + 1,
                            cfg.rounds,
                            kind.name(),
                            grouped(res.ops as u64),
                            res.p50_us,
                            res.p99_us,
                            res.p999_us,
                            res.server_cpu_us,
                            res.server_util * 100.0,
                            res.gen_cpu_us,
                            res.gen_util * 100.0,
                            res.other_util * 100.0,
                            if res.errors > 0 {
                                format!("  {} errors", res.errors)
                            } else {
                                String::new()
                            }
                        );
                        rounds[i].push(res);
                    }
                    Err(e) => println!("!! {} round {} on {}: {e}", w.name, r + 1, kind.name()),
                }
                if !s.alive() {
                    println!("!! {} exited during {}", kind.name(), w.name);
                    *failure = Some(format!("exited during {}", w.name));
                    *server = None;
                }
            }
        }
        outcomes.push(Outcome {
            workload: w.clone(),
            per_server: servers
                .iter()
                .zip(&rounds)
                .map(|((k, _, f), r)| (*k, summarise(r), f.clone()))
                .collect(),
        });
    }
    drop(servers);
    drop(tls_servers);

    let report = render_markdown(&machine, &cfg, &outcomes);
    println!("\n{report}");
    let dir = common::report_dir();
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("load.md"), &report))
        .and_then(|()| std::fs::write(dir.join("load.svg"), render_svg(&machine, &outcomes)));
    match written {
        Ok(()) => println!(
            "wrote {} and {}",
            dir.join("load.md").display(),
            dir.join("load.svg").display()
        ),
        Err(e) => println!("!! could not write the report to {}: {e}", dir.display()),
    }
}

fn find(o: &Outcome, k: Kind) -> Option<Summary> {
    o.per_server
        .iter()
        .find(|(kk, _, _)| *kk == k)
        .and_then(|(_, s, _)| *s)
}

fn render_markdown(machine: &str, cfg: &RunCfg, outcomes: &[Outcome]) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "### Load (`cargo bench --bench load`)\n\n{machine}.\n\nBoth servers `-m 1024 -t 2 -U 0`, \
         {} alternating rounds each of {} s warm-up + {} s measured, generator in the same \
         machine ({} threads, mio, closed loop). Figures are medians over the rounds; ops/s also \
         shows the lowest and highest round. CPU µs/req is the process's user+system time \
         (/proc/PID/stat) over the measured window divided by the requests completed in it; CPU % is that time over the wall time (100% = one \
         core of the 2), and other CPU % is what the rest of the machine used meanwhile (/proc/stat), \
         which should be near 0 for a clean run.\n",
        cfg.rounds,
        cfg.warmup.as_secs_f64(),
        cfg.measure.as_secs_f64(),
        cfg.threads
    ));
    for o in outcomes {
        let w = &o.workload;
        s.push_str(&format!("\n**{}** — {}\n\n", w.name, w.describe));
        s.push_str("| server | ops/s (min–max) | p50 µs | p99 µs | p999 µs | server CPU µs/req | server CPU % | generator CPU µs/req | generator CPU % | other CPU % | hit ratio |\n");
        s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (k, sum, fail) in &o.per_server {
            match sum {
                Some(x) => s.push_str(&format!(
                    "| {} | {} ({}–{}) | {:.0} | {:.0} | {:.0} | {:.2} | {:.0} | {:.2} | {:.0} | {:.0} | {:.3}{} |\n",
                    k.name(),
                    grouped(x.ops as u64),
                    grouped(x.ops_min as u64),
                    grouped(x.ops_max as u64),
                    x.p50_us,
                    x.p99_us,
                    x.p999_us,
                    x.server_cpu_us,
                    x.server_util * 100.0,
                    x.gen_cpu_us,
                    x.gen_util * 100.0,
                    x.other_util * 100.0,
                    x.hit_ratio,
                    if x.errors > 0 {
                        format!(" ({} errors)", x.errors)
                    } else {
                        String::new()
                    }
                )),
                None => s.push_str(&format!(
                    "| {} | not measured: {} | | | | | | | | | |\n",
                    k.name(),
                    fail.as_deref().unwrap_or("no completed round")
                )),
            }
        }
        if let (Some(m), Some(f)) = (find(o, Kind::Memcached), find(o, Kind::Ferrocache)) {
            s.push_str(&format!(
                "| **ferrocache / memcached** | **{:.2}** | {:.2} | **{:.2}** | {:.2} | **{:.2}** | | | | | |\n",
                f.ops / m.ops,
                f.p50_us / m.p50_us,
                f.p99_us / m.p99_us,
                f.p999_us / m.p999_us,
                f.server_cpu_us / m.server_cpu_us
            ));
        }
    }
    s
}

/// Which figure of a [`Summary`] a chart cell shows.
type Metric = fn(&Summary) -> f64;

/// A hand-written SVG of small multiples: one column per workload, a row for
/// ops/s and a row for p99 latency, each cell with its own scale (the
/// workloads differ by an order of magnitude), both servers' bars side by
/// side and the ratio ferrocache / memcached under them.
fn render_svg(machine: &str, outcomes: &[Outcome]) -> String {
    const CELL_W: f64 = 250.0;
    const CELL_H: f64 = 190.0;
    const LEFT: f64 = 10.0;
    const TOP: f64 = 90.0;
    const PLOT_H: f64 = 120.0;
    const BAR_W: f64 = 56.0;
    let colour = |k: Kind| match k {
        Kind::Memcached => "#8c8c8c",
        Kind::Ferrocache => "#d9622b",
    };
    let cols = outcomes.len().max(1) as f64;
    let w = LEFT + cols * CELL_W + 10.0;
    let h = TOP + 2.0 * CELL_H + 30.0;
    let mut s = String::new();
    s.push_str(&format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{0}\" y=\"22\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">ferrocache vs memcached: load benchmark (medians of alternating rounds)</text>\n\
         <text x=\"{0}\" y=\"40\" text-anchor=\"middle\" fill=\"#555\" font-size=\"11\">{1}</text>\n",
        w / 2.0,
        xml_escape(machine)
    ));
    for (i, k) in Kind::BOTH.iter().enumerate() {
        let x = w / 2.0 - 100.0 + i as f64 * 110.0;
        s.push_str(&format!(
            "<rect x=\"{x}\" y=\"50\" width=\"12\" height=\"12\" fill=\"{}\"/><text x=\"{}\" y=\"60\">{}</text>\n",
            colour(*k),
            x + 16.0,
            k.name()
        ));
    }
    let rows: [(&str, Metric, bool); 2] = [
        ("Throughput, ops/s", |x| x.ops, true),
        ("p99 latency, µs", |x| x.p99_us, false),
    ];
    for (ri, (label, metric, higher_better)) in rows.iter().enumerate() {
        let y0 = TOP + ri as f64 * CELL_H;
        s.push_str(&format!(
            "<text x=\"10\" y=\"{:.1}\" font-weight=\"bold\">{label} ({})</text>\n",
            y0 - 8.0,
            if *higher_better {
                "higher is better"
            } else {
                "lower is better"
            }
        ));
        for (ci, o) in outcomes.iter().enumerate() {
            let x0 = LEFT + ci as f64 * CELL_W;
            let plot_top = y0 + 20.0;
            let base = plot_top + PLOT_H;
            let values: Vec<Option<f64>> = Kind::BOTH
                .iter()
                .map(|k| find(o, *k).map(|x| metric(&x)).filter(|v| v.is_finite()))
                .collect();
            let max = nice_ceiling(values.iter().flatten().fold(0.0, |a, &b| f64::max(a, b)));
            s.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-weight=\"bold\">{}</text>\n",
                x0 + CELL_W / 2.0,
                y0 + 10.0,
                o.workload.name
            ));
            for g in 0..=4 {
                let v = max * g as f64 / 4.0;
                let y = base - PLOT_H * g as f64 / 4.0;
                s.push_str(&format!(
                    "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\"/>\
                     <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" fill=\"#555\" font-size=\"10\">{}</text>\n",
                    x0 + 40.0,
                    x0 + CELL_W - 20.0,
                    if g == 0 { "#333" } else { "#e3e3e3" },
                    x0 + 37.0,
                    y + 3.0,
                    short(v)
                ));
            }
            let mid = x0 + 40.0 + (CELL_W - 60.0) / 2.0;
            for (bi, (k, v)) in Kind::BOTH.iter().zip(&values).enumerate() {
                let bx = mid - BAR_W - 4.0 + bi as f64 * (BAR_W + 8.0);
                match v {
                    Some(v) => {
                        let bh = PLOT_H * v / max;
                        s.push_str(&format!(
                            "<rect x=\"{bx:.1}\" y=\"{:.1}\" width=\"{BAR_W}\" height=\"{bh:.1}\" fill=\"{}\"><title>{} {}: {}</title></rect>\
                             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\">{}</text>\n",
                            base - bh,
                            colour(*k),
                            k.name(),
                            o.workload.name,
                            short(*v),
                            bx + BAR_W / 2.0,
                            base - bh - 4.0,
                            short(*v)
                        ));
                    }
                    None => s.push_str(&format!(
                        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"11\" fill=\"#b00\">not measured</text>\n",
                        bx + BAR_W / 2.0,
                        base - 6.0
                    )),
                }
            }
            if let (Some(m), Some(f)) = (values[0], values[1]) {
                s.push_str(&format!(
                    "<text x=\"{mid:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#333\">ferrocache / memcached = {:.2}</text>\n",
                    base + 18.0,
                    f / m
                ));
            }
        }
    }
    s.push_str(&format!(
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555\" font-size=\"11\">small: 16 requests pipelined per connection, latency per batch of 16. multiget: an op is a 10-key get.</text>\n",
        w / 2.0,
        h - 12.0
    ));
    s.push_str("</svg>\n");
    s
}

/// 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 or 10 times a power of ten, at least `v`
/// (so that quarters of it are round-ish).
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 1.2, 1.6, 2.0, 2.4, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0] {
        if m * p >= v * 1.08 {
            return m * p;
        }
    }
    12.0 * p
}

/// Three significant digits: 37_500 → "37.5k", 595_549 → "596k",
/// 1_234_567 → "1.23M", 830 → "830", 3.25 → "3.25".
fn short(v: f64) -> String {
    let (x, suffix) = if v >= 1e6 {
        (v / 1e6, "M")
    } else if v >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let digits = if x >= 100.0 {
        0
    } else if x >= 10.0 {
        1
    } else {
        2
    };
    let t = format!("{x:.digits$}");
    let t = if t.contains('.') {
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        t
    };
    format!("{t}{suffix}")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
