//! Listeners, workers, per-connection buffers and state, backpressure and
//! limits (-c, -R, idle timeout).
//!
//! One accept thread owns the listeners and hands each accepted socket to a
//! worker over a channel, waking it with a `mio::Waker`. Each worker owns its
//! connections and its own `mio::Poll`: it reads, calls `protocol::parse` and
//! `command::execute`, and writes, so a request never crosses a thread. UDP
//! sockets are read by every worker directly. A clock thread ticks the coarse
//! clock and the cache's expirer.
//!
//! Owns the state shared by every thread of one server (`Shared`), start-up
//! (`start`) and the handle that stops the server (`ServerHandle`).
//!
//! Must not interpret bytes beyond calling `protocol::parse` and
//! `command::execute`.

mod buf;
mod conn;
mod listen;
mod pipeline;
mod transport;
mod udp;
mod verbose;
mod worker;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use log::{error, info, trace};
use mio::net::{TcpListener, UnixListener};
use mio::{Interest, Poll, Token, Waker};
use slab::Slab;

use crate::clock::Clock;
use crate::command::{Context, ServerControl};
use crate::config::Config;
use crate::protocol::Limits;
use crate::stats::{Stats, WorkerStats};
use crate::storage::{Cache, CacheConfig};
use listen::{bind_tcp, resolve_listen, Acceptor, Listener};
use udp::Udp;
use worker::{Worker, UDP_BASE};

const WAKER: Token = Token(usize::MAX);

/// Shards per worker thread: enough that two workers rarely meet on a lock.
const SHARDS_PER_THREAD: usize = 16;

/// State shared by every thread of one server.
struct Shared {
    config: Config,
    cache: Cache,
    clock: Arc<Clock>,
    stats: Stats,
    limits: Limits,
    stopping: AtomicBool,
    /// `-v` levels, moved by the `verbosity` command (memcached caps it at 2).
    verbosity: AtomicU32,
    curr_conns: AtomicUsize,
    /// fd → (peer, listener) for `stats conns`.
    conns: Mutex<BTreeMap<i32, (String, String)>>,
    wakers: Mutex<Vec<Arc<Waker>>>,
    stopped: (Mutex<bool>, Condvar),
}

impl Shared {
    /// The cache, clock, statistics and limits `config` asks for; no thread
    /// or socket yet.
    fn new(config: Config) -> Shared {
        let threads = config.threads.max(1);
        let clock = Arc::new(Clock::new());
        let shards = (threads * SHARDS_PER_THREAD).next_power_of_two();
        let cache = Cache::new(
            CacheConfig {
                memory_limit: config.memory_limit,
                evict: !config.no_evict,
                shards,
                item_size_max: config.item_size_max,
            },
            Arc::clone(&clock),
        );
        let overhead = if config.use_cas { 59 } else { 51 };
        let limits = Limits {
            max_key_plus_value: config.item_size_max.saturating_sub(overhead),
        };
        Shared {
            stats: Stats::new(threads),
            verbosity: AtomicU32::new(u32::from(config.verbosity)),
            config,
            cache,
            clock,
            limits,
            stopping: AtomicBool::new(false),
            curr_conns: AtomicUsize::new(0),
            conns: Mutex::new(BTreeMap::new()),
            wakers: Mutex::new(Vec::new()),
            stopped: (Mutex::new(false), Condvar::new()),
        }
    }

    /// What a command executed by the worker owning `worker` may touch.
    fn context<'a>(&'a self, worker: &'a WorkerStats) -> Context<'a> {
        Context {
            config: &self.config,
            cache: &self.cache,
            clock: &self.clock,
            stats: &self.stats,
            worker,
            server: self,
        }
    }

    fn request_stop(&self) {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return;
        }
        info!("shutting down");
        for w in self.wakers.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let _ = w.wake();
        }
        let (lock, cvar) = &self.stopped;
        *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
        cvar.notify_all();
    }
}

impl ServerControl for Shared {
    fn curr_connections(&self) -> u64 {
        self.curr_conns.load(Ordering::Relaxed) as u64
    }

    fn write_conns(&self, out: &mut Vec<u8>) {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        for (fd, (peer, listen)) in conns.iter() {
            out.extend_from_slice(format!("STAT {}:addr {}\r\n", fd, peer).as_bytes());
            out.extend_from_slice(format!("STAT {}:listen_addr {}\r\n", fd, listen).as_bytes());
            out.extend_from_slice(format!("STAT {}:state conn_parse_cmd\r\n", fd).as_bytes());
        }
    }

    fn shutdown(&self) {
        self.request_stop();
    }

    fn verbosity(&self) -> u32 {
        self.verbosity.load(Ordering::Relaxed)
    }

    fn set_verbosity(&self, level: u32) {
        let level = level.min(2);
        self.verbosity.store(level, Ordering::Relaxed);
        let filter = match level {
            0 => log::LevelFilter::Warn,
            1 => log::LevelFilter::Info,
            2 => log::LevelFilter::Debug,
            _ => log::LevelFilter::Trace,
        };
        log::set_max_level(filter);
    }
}

/// A running server: its bound addresses and a way to stop it.
pub struct ServerHandle {
    tcp: Vec<SocketAddr>,
    udp: Vec<SocketAddr>,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    unix_path: Option<PathBuf>,
}

impl std::fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerHandle")
            .field("tcp", &self.tcp)
            .field("udp", &self.udp)
            .finish()
    }
}

impl ServerHandle {
    /// Bound TCP addresses (the real port when `-p 0` was asked).
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp
    }

    /// Bound UDP addresses (empty unless `-U`).
    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp
    }

    /// Asks every thread to stop, finishing replies in flight; returns once
    /// they have.
    pub fn shutdown(self) {
        self.shared.request_stop();
        self.wait();
    }

    /// A closure that stops the server from another thread (signal handling).
    pub fn stopper(&self) -> impl Fn() + Send + Sync + 'static {
        let shared = Arc::clone(&self.shared);
        move || shared.request_stop()
    }

    /// Blocks until the server stops (a `shutdown` command, [`Self::stopper`]
    /// or [`Self::shutdown`]), then joins its threads.
    pub fn wait(mut self) {
        {
            let (lock, cvar) = &self.shared.stopped;
            let mut stopped = lock.lock().unwrap_or_else(|e| e.into_inner());
            while !*stopped {
                stopped = cvar.wait(stopped).unwrap_or_else(|e| e.into_inner());
            }
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(p) = self.unix_path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Binds every listener in `config` and starts the threads.
pub fn start(config: Config) -> io::Result<ServerHandle> {
    let threads = config.threads.max(1);
    let mut listeners = Vec::new();
    let mut tcp_addrs = Vec::new();
    let mut udp_sockets = Vec::new();
    let mut udp_addrs = Vec::new();
    let mut unix_path = None;
    if let Some(path) = &config.unix_socket {
        if path.exists() {
            // A stale socket from an earlier run; memcached removes it too.
            let _ = std::fs::remove_file(path);
        }
        let l = std::os::unix::net::UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(config.unix_mask))?;
        l.set_nonblocking(true)?;
        let name = format!("unix:{}", path.display());
        listeners.push(Listener::Unix(UnixListener::from_std(l), name));
        unix_path = Some(path.clone());
    } else {
        let entries = config
            .listen_addrs()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        for entry in entries {
            for addr in resolve_listen(entry.host.as_deref(), entry.port.unwrap_or(config.port))? {
                if config.udp_port != 0 {
                    let udp_port = entry.port.unwrap_or(config.udp_port);
                    let u = std::net::UdpSocket::bind(SocketAddr::new(addr.ip(), udp_port))?;
                    u.set_nonblocking(true)?;
                    udp_addrs.push(u.local_addr()?);
                    udp_sockets.push(u);
                }
                if !config.tcp_enabled {
                    continue;
                }
                let l = bind_tcp(addr, config.backlog)?;
                let bound = l.local_addr()?;
                tcp_addrs.push(bound);
                let name = if bound.is_ipv4() {
                    format!("tcp:{}", bound)
                } else {
                    format!("tcp6:{}", bound)
                };
                listeners.push(Listener::Tcp(TcpListener::from_std(l), name));
            }
        }
    }
    if listeners.is_empty() && udp_sockets.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "no address to listen on",
        ));
    }

    let shared = Arc::new(Shared::new(config));

    apply_crawler_options(&shared);
    shared
        .cache
        .set_eviction_sink(Arc::clone(&shared.stats.watch) as _);

    let mut handles = Vec::new();
    let mut worker_txs = Vec::new();
    for id in 0..threads {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = crossbeam_channel::unbounded();
        let udp = Udp::register(&udp_sockets, poll.registry(), UDP_BASE)?;
        shared
            .wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::clone(&waker));
        worker_txs.push((tx, Arc::clone(&waker)));
        let worker = Worker {
            id,
            waker: Arc::clone(&waker),
            poll,
            rx,
            shared: Arc::clone(&shared),
            conns: Slab::new(),
            ready: Vec::new(),
            drain_until: None,
            udp,
            watchers: Vec::new(),
        };
        handles.push(
            thread::Builder::new()
                .name(format!("worker-{}", id))
                .spawn(move || worker.run())?,
        );
    }

    let accept_poll = Poll::new()?;
    let accept_waker = Arc::new(Waker::new(accept_poll.registry(), WAKER)?);
    shared
        .wakers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(accept_waker);
    for (i, l) in listeners.iter_mut().enumerate() {
        match l {
            Listener::Tcp(l, _) => {
                accept_poll
                    .registry()
                    .register(l, Token(i), Interest::READABLE)?
            }
            Listener::Unix(l, _) => {
                accept_poll
                    .registry()
                    .register(l, Token(i), Interest::READABLE)?
            }
        }
    }
    let acceptor = Acceptor {
        poll: accept_poll,
        listeners,
        workers: worker_txs,
        next: 0,
        shared: Arc::clone(&shared),
    };
    handles.push(
        thread::Builder::new()
            .name("accept".into())
            .spawn(move || acceptor.run())?,
    );

    let clock_shared = Arc::clone(&shared);
    handles.push(
        thread::Builder::new()
            .name("clock".into())
            .spawn(move || clock_loop(clock_shared))?,
    );

    info!(
        "listening on {:?}{}",
        tcp_addrs,
        unix_path
            .as_ref()
            .map(|p| format!(" unix:{}", p.display()))
            .unwrap_or_default()
    );
    Ok(ServerHandle {
        tcp: tcp_addrs,
        udp: udp_addrs,
        shared,
        threads: handles,
        unix_path,
    })
}

/// memcached's `-o no_lru_crawler`, `lru_crawler_sleep=N`,
/// `lru_crawler_tocrawl=N` and `slab_automove[=N]` (which `config` checks
/// and passes through).
fn apply_crawler_options(shared: &Shared) {
    for opt in &shared.config.ignored_options {
        let (name, value) = opt.split_once('=').unwrap_or((opt, ""));
        let number = || value.trim().parse::<u64>().ok().map(|n| n as u32);
        match name {
            "no_lru_crawler" => {
                shared.cache.set_crawler_enabled(false);
            }
            "lru_crawler" => {
                shared.cache.set_crawler_enabled(true);
            }
            "lru_crawler_sleep" => {
                if let Some(n) = number() {
                    shared.cache.set_crawler_sleep(n);
                }
            }
            "lru_crawler_tocrawl" => {
                if let Some(n) = number() {
                    shared.cache.set_crawler_tocrawl(n);
                }
            }
            // (memcached reads a bare `slab_automove` as level 1)
            "slab_automove" => shared.cache.set_slab_automove(number().unwrap_or(1)),
            _ => {}
        }
    }
}

/// Ticks the coarse clock and, while the crawler is enabled, lets the
/// expirer sweep a slice of the cache and runs a slice of a requested crawl
/// (`lru_crawler crawl`), ten times a second.
fn clock_loop(shared: Arc<Shared>) {
    while !shared.stopping.load(Ordering::Relaxed) {
        {
            let (lock, cvar) = &shared.stopped;
            let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            if *guard {
                break;
            }
            let _ = cvar.wait_timeout(guard, Duration::from_millis(100));
        }
        shared.clock.tick();
        if !shared.cache.crawler_enabled() {
            continue;
        }
        let crawling = shared.cache.crawl_pending();
        let swept = catch_unwind(AssertUnwindSafe(|| {
            shared.cache.tick();
            shared.cache.crawl_tick()
        }));
        match swept {
            Ok(n) => {
                if n > 0 {
                    trace!("lru crawler: {} expired items removed", n);
                }
                if crawling && !shared.cache.crawl_pending() {
                    trace!("lru crawler: requested crawl finished");
                }
            }
            Err(_) => error!("expirer panicked; it will retry on the next tick"),
        }
    }
}

/// Helpers the unit tests of several files share.
#[cfg(test)]
mod testing {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// A server with one worker on an ephemeral loopback port.
    pub(super) fn one_worker_on_loopback() -> (ServerHandle, SocketAddr) {
        let mut config = Config::from_args(["ferrocache", "-t", "1"]).unwrap();
        config.port = 0;
        config.listen = vec!["127.0.0.1".into()];
        let handle = start(config).unwrap();
        let addr = handle.tcp_addrs()[0];
        (handle, addr)
    }

    pub(super) fn roundtrip(s: &mut TcpStream, req: &[u8], want: &[u8]) {
        s.write_all(req).unwrap();
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    }

    pub(super) fn one_worker() -> Shared {
        Shared::new(Config::from_args(["ferrocache", "-t", "1"]).unwrap())
    }
}
