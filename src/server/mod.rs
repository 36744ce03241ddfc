//! The server: listeners, workers, connections and their buffers, the
//! transport seam, UDP, limits (-c, -R, idle timeout) and drain on stop.
//!
//! One accept thread owns the listeners and hands each accepted socket to a
//! worker over a channel, waking it with a `mio::Waker`. Each worker owns its
//! connections and its own `mio::Poll`: it reads, calls `protocol::parse` and
//! `command::execute`, and writes, so a request never crosses a thread. UDP
//! sockets are read by every worker directly. A clock thread ticks the coarse
//! clock and the cache's expirer.
//!
//! ```text
//! mod.rs        Shared (what every thread shares), start, ServerHandle, clock thread
//! listen.rs     binding -l/-p/-U/-s; the accept thread, -c
//! worker.rs     a worker's event loop: its connections, UDP, watchers, idle, drain
//! conn.rs       a connection and its turn: write, run its requests, read; backpressure
//! pipeline.rs   the request loop: parse, execute, paused multi-gets, refusals, -R
//! buf.rs        the read and write buffers and their limits
//! transport.rs  Stream (TCP, unix socket, TLS) and the Transport contract
//! tls.rs        a TLS connection's stream: rustls over TCP, handshake in the loop
//! udp.rs        UDP frames and datagram replies
//! verbose.rs    the -vv request and reply log
//! metrics.rs    the Prometheus endpoint (-o metrics_listen): its socket and thread
//! ```
//!
//! Files import down the list (worker → conn → pipeline → buf → transport
//! → tls; listen → worker for its `Inbox`), never one another both ways.
//! The codec (text, or the binary protocol: `-B`) is picked per connection
//! in `pipeline` by the first byte; a binary connection's requests run in
//! `binary` (binary.rs: its request loop, and UDP's binary datagrams).
//!
//! Owns the state shared by every thread of one server (`Shared`: the cache,
//! the counters, the `watch` hub), start-up (`start`) and the handle that
//! stops the server (`ServerHandle`).
//!
//! Must not interpret bytes beyond calling `protocol::parse` and
//! `command::execute`.

mod binary;
mod buf;
mod conn;
mod listen;
mod metrics;
mod pipeline;
mod tls;
mod transport;
mod udp;
mod verbose;
mod worker;

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use log::{error, info, trace, warn};
use mio::{Token, Waker};

use crate::auth::Authenticator;
use crate::clock::Clock;
use crate::command::{self, ConnInfo, Context, ServerControl};
use crate::config::Config;
use crate::protocol::Limits;
use crate::stats::{Stats, WorkerStats};
use crate::storage::{Cache, CacheConfig, MemoryFile, Restart};
use crate::tls::TlsContext;
use crate::watch::WatchHub;
use listen::{Acceptor, Bound};
use worker::Worker;

/// The token of a poller's waker, in the workers' pollers and the accept
/// thread's.
const WAKER: Token = Token(usize::MAX);

/// Shards per worker thread: enough that two workers rarely meet on a lock.
const SHARDS_PER_THREAD: usize = 16;

/// State shared by every thread of one server.
struct Shared {
    config: Config,
    cache: Cache,
    clock: Arc<Clock>,
    stats: Stats,
    /// `watch` log streams (evictions come from the cache, the rest from
    /// commands and connections).
    watch: Arc<WatchHub>,
    limits: Limits,
    /// `-Y`'s entries; every new connection must present a token first.
    auth: Option<Arc<Authenticator>>,
    /// `-Z`'s context; TLS listeners wrap what they accept with it.
    tls: Option<Arc<TlsContext>>,
    stopping: AtomicBool,
    /// How the server was asked to stop (see [`Stop`]; the most graceful
    /// request wins): whether a memory file is saved.
    stop_kind: AtomicU8,
    /// `-v` levels, moved by the `verbosity` command (memcached caps it at 2).
    verbosity: AtomicU32,
    /// `-o slab_automove`, moved by `slabs automove`.
    slab_automove: AtomicU32,
    curr_conns: AtomicUsize,
    /// fd → (peer, listener) for `stats conns`.
    conns: Mutex<BTreeMap<i32, (String, String)>>,
    /// fd → the clock second of its last read, which its worker updates
    /// (`stats conns`' `secs_since_last_cmd`).
    seen: Mutex<BTreeMap<i32, Arc<AtomicU32>>>,
    /// The listening sockets (TCP, unix, UDP): fd, name, memcached's state.
    listening: Vec<(i32, String, &'static str)>,
    wakers: Mutex<Vec<Arc<Waker>>>,
    stopped: (Mutex<bool>, Condvar),
}

impl Shared {
    /// The cache, clock, statistics and limits `config` asks for; no thread
    /// or socket yet. With a memory file the cache is restored from it
    /// when a graceful stop saved it (before anything is accepted: a client
    /// connecting meanwhile waits in the listen backlog, never misses).
    fn new(config: Config, memory: Option<MemoryFile>) -> Shared {
        let threads = config.threads.max(1);
        let clock = Arc::new(Clock::new());
        let shards = (threads * SHARDS_PER_THREAD).next_power_of_two();
        let cache_config = CacheConfig {
            memory_limit: config.memory_limit,
            evict: !config.no_evict,
            shards,
            item_size_max: config.item_size_max,
            cas: config.use_cas,
        };
        let cache = match memory {
            None => Cache::new(cache_config, Arc::clone(&clock)),
            Some(file) => {
                let (cache, restart) = Cache::open(cache_config, Arc::clone(&clock), file);
                match &restart {
                    Restart::Restored { .. } => info!("{restart}"),
                    Restart::Clean(_) => warn!("{restart}"),
                }
                cache
            }
        };
        if let Some(limit) = config.pinned_mem_limit {
            cache.set_pinned_limit(usize::try_from(limit).unwrap_or(usize::MAX));
        }
        let limits = command::parse_limits(&config);
        Shared {
            stats: Stats::new(threads),
            watch: Arc::new(WatchHub::new()),
            verbosity: AtomicU32::new(u32::from(config.verbosity)),
            slab_automove: AtomicU32::new(config.slab_automove),
            config,
            cache,
            clock,
            limits,
            auth: None,
            tls: None,
            stopping: AtomicBool::new(false),
            stop_kind: AtomicU8::new(0),
            curr_conns: AtomicUsize::new(0),
            conns: Mutex::new(BTreeMap::new()),
            seen: Mutex::new(BTreeMap::new()),
            listening: Vec::new(),
            wakers: Mutex::new(Vec::new()),
            stopped: (Mutex::new(false), Condvar::new()),
        }
    }

    /// What a command executed by the worker owning `worker` for the
    /// connection (or UDP socket) `conn_fd` may touch.
    fn context<'a>(&'a self, worker: &'a WorkerStats, conn_fd: i32) -> Context<'a> {
        Context {
            config: &self.config,
            cache: &self.cache,
            clock: &self.clock,
            stats: &self.stats,
            worker,
            server: self,
            watch: &self.watch,
            conn_fd,
        }
    }

    /// `waker` is woken when the server is asked to stop.
    fn add_waker(&self, waker: Arc<Waker>) {
        self.wakers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(waker);
    }

    fn request_stop(&self) {
        self.request_stop_as(Stop::Normal);
    }

    fn request_stop_as(&self, kind: Stop) {
        self.stop_kind.fetch_max(kind as u8, Ordering::SeqCst);
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

    fn conns(&self) -> Vec<ConnInfo> {
        let now = self.clock.now();
        let mut list: Vec<ConnInfo> = self
            .listening
            .iter()
            .map(|(fd, name, state)| ConnInfo {
                fd: *fd,
                peer: name.clone(),
                listen: None,
                state,
                idle_secs: u64::from(now.saturating_sub(2)),
            })
            .collect();
        let seen = self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        list.extend(conns.iter().map(|(&fd, (peer, listen))| {
            let last = seen.get(&fd).map_or(now, |s| s.load(Ordering::Relaxed));
            ConnInfo {
                fd,
                peer: peer.clone(),
                listen: Some(listen.clone()),
                state: "conn_parse_cmd",
                idle_secs: u64::from(now.saturating_sub(last)),
            }
        }));
        // listeners (TCP and unix, then UDP) before connections, each by
        // descriptor: memcached's order
        list
    }

    fn reserved_fds(&self) -> u64 {
        // the listeners, and a poller (epoll) and its waker (eventfd) for
        // each worker and the accept thread
        (self.listening.len() + 2 * (self.config.threads.max(1) + 1)) as u64
    }

    fn shutdown(&self, graceful: bool) {
        self.request_stop_as(if graceful {
            Stop::Graceful
        } else {
            Stop::Normal
        });
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

    fn slab_automove(&self) -> u32 {
        self.slab_automove.load(Ordering::Relaxed)
    }

    fn set_slab_automove(&self, level: u32) {
        self.slab_automove.store(level, Ordering::Relaxed);
    }

    fn tls(&self) -> Option<&TlsContext> {
        self.tls.as_deref()
    }
}

/// How a stop was asked for: what happens to a memory file (`-e`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Stop {
    /// SIGTERM, SIGINT, a plain `shutdown`, [`ServerHandle::shutdown`]:
    /// saves unless `-o save_on_term=0`.
    Normal = 1,
    /// SIGUSR1 or `shutdown graceful` (memcached's graceful stop): saves.
    Graceful = 2,
}

/// A running server: its bound addresses and a way to stop it.
pub struct ServerHandle {
    tcp: Vec<SocketAddr>,
    udp: Vec<SocketAddr>,
    metrics: Option<SocketAddr>,
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

    /// The Prometheus endpoint's address (`-o metrics_listen`; the real
    /// port when 0 was asked).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics
    }

    /// Asks every thread to stop, finishing replies in flight; returns once
    /// they have.
    pub fn shutdown(self) {
        self.shared.request_stop();
        self.wait();
    }

    /// A closure that reads the `-Y` file again (SIGHUP): new connections
    /// and those not yet authenticated check tokens against the new
    /// entries; a file that cannot be read or is malformed leaves the old
    /// entries in force and is logged. Nothing to do without `-Y`.
    pub fn auth_reloader(&self) -> impl Fn() + Send + Sync + 'static {
        let shared = Arc::clone(&self.shared);
        move || {
            if let Some(auth) = &shared.auth {
                match auth.reload() {
                    Ok(n) => info!("-Y {}: reloaded, {} entries", auth.path().display(), n),
                    Err(e) => warn!("-Y reload failed, keeping the previous entries: {}", e),
                }
            }
        }
    }

    /// A closure that stops the server from another thread (signal handling).
    pub fn stopper(&self) -> impl Fn() + Send + Sync + 'static {
        let shared = Arc::clone(&self.shared);
        move || shared.request_stop()
    }

    /// [`Self::stopper`] saying how: SIGUSR1 is [`Stop::Graceful`].
    pub fn stopper_as(&self) -> impl Fn(Stop) + Send + Sync + 'static {
        let shared = Arc::clone(&self.shared);
        move |kind| shared.request_stop_as(kind)
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
        save_memory_file(&self.shared);
    }
}

/// With a memory file, after every thread has stopped (nothing changes
/// the cache any more): writes what a warm restart needs, when the stop
/// asked for it. A failure is logged; the next start is then clean.
fn save_memory_file(shared: &Shared) {
    let Some(path) = shared.cache.memory_file() else {
        return;
    };
    let graceful = shared.stop_kind.load(Ordering::SeqCst) == Stop::Graceful as u8;
    if !graceful && !shared.config.save_on_term {
        info!(
            "[restart] not saving {} (-o save_on_term=0): the next start is clean",
            path.display()
        );
        return;
    }
    match shared.cache.save() {
        Ok(Some(saved)) => info!(
            "[restart] saved {} items in {} segments to {}",
            saved.items,
            saved.segments,
            crate::storage::meta_path(path).display()
        ),
        Ok(None) => {}
        Err(e) => error!(
            "[restart] failed to save {}: {e}; the next start is clean",
            crate::storage::meta_path(path).display()
        ),
    }
}

/// The sockets `stats conns` lists as listening.
fn listening(bound: &Bound) -> Vec<(i32, String, &'static str)> {
    use std::os::unix::io::AsRawFd;
    let mut list: Vec<(i32, String, &'static str)> = bound
        .listeners
        .iter()
        .map(|l| {
            let (fd, name) = l.describe();
            (fd, name, "conn_listening")
        })
        .collect();
    for (sock, addr) in bound.udp_sockets.iter().zip(&bound.udp_addrs) {
        let family = if addr.is_ipv6() { "udp6" } else { "udp" };
        list.push((sock.as_raw_fd(), format!("{family}:{addr}"), "conn_read"));
    }
    list
}

/// What is read before the server starts: the `-Y` entries and the TLS
/// context (`main` reads them as root, before `-u`, as memcached does, so
/// that files only root may read work, and stops with memcached's message
/// and exit status when one is bad).
#[derive(Default)]
pub struct Preloaded {
    pub auth: Option<Authenticator>,
    pub tls: Option<TlsContext>,
    /// `-e`'s file, opened and sized (a start-up error when it cannot be).
    pub memory: Option<MemoryFile>,
}

impl Preloaded {
    /// Reads what `config` names: the `-Y` file, with `-Z` the
    /// certificate, key and CA files, and opens `-e`'s memory file.
    pub fn load(config: &Config) -> io::Result<Preloaded> {
        let auth = match &config.auth_file {
            Some(path) => Some(Authenticator::open(path).map_err(io::Error::other)?),
            None => None,
        };
        let tls = match config.tls.enabled {
            true => Some(TlsContext::open(&config.tls).map_err(io::Error::other)?),
            false => None,
        };
        let memory = match &config.memory_file {
            Some(path) => {
                Some(MemoryFile::open(path, config.memory_limit).map_err(io::Error::other)?)
            }
            None => None,
        };
        Ok(Preloaded { auth, tls, memory })
    }
}

/// Binds every listener in `config` and starts the threads, reading the
/// files it names first (see [`Preloaded`]).
pub fn start(config: Config) -> io::Result<ServerHandle> {
    let pre = Preloaded::load(&config)?;
    start_with(config, pre)
}

/// [`start`] with the files already read.
pub fn start_with(config: Config, pre: Preloaded) -> io::Result<ServerHandle> {
    let threads = config.threads.max(1);
    // -S is a promise: without the library it is refused, never ignored
    if config.sasl {
        crate::sasl::init().map_err(|e| io::Error::new(io::ErrorKind::Unsupported, e))?;
    }
    let bound = Bound::bind(&config)?;

    let mut shared = Shared::new(config, pre.memory);
    shared.auth = pre.auth.map(Arc::new);
    shared.tls = pre.tls.map(Arc::new);
    shared.listening = listening(&bound);
    let shared = Arc::new(shared);

    apply_crawler_options(&shared);
    shared
        .cache
        .set_eviction_sink(Arc::clone(&shared.watch) as _);

    let mut handles = Vec::new();
    let mut inboxes = Vec::new();
    for id in 0..threads {
        let (worker, inbox) = Worker::new(id, &shared, &bound.udp_sockets)?;
        inboxes.push(inbox);
        handles.push(spawn(format!("worker-{}", id), move || worker.run())?);
    }

    let acceptor = Acceptor::new(bound.listeners, inboxes, &shared)?;
    handles.push(spawn("accept".into(), move || acceptor.run())?);

    let clock_shared = Arc::clone(&shared);
    handles.push(spawn("clock".into(), move || clock_loop(clock_shared))?);

    let mut metrics_addr = None;
    if let Some(addr) = shared.config.metrics_listen {
        let (endpoint, bound) = metrics::Endpoint::bind(addr, &shared)?;
        info!("metrics on http://{}/metrics", bound);
        metrics_addr = Some(bound);
        handles.push(spawn("metrics".into(), move || endpoint.run())?);
    }

    info!(
        "listening on {:?}{}",
        bound.tcp_addrs,
        bound
            .unix_path
            .as_ref()
            .map(|p| format!(" unix:{}", p.display()))
            .unwrap_or_default()
    );
    Ok(ServerHandle {
        tcp: bound.tcp_addrs,
        udp: bound.udp_addrs,
        metrics: metrics_addr,
        shared,
        threads: handles,
        unix_path: bound.unix_path,
    })
}

fn spawn(name: String, f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    thread::Builder::new().name(name).spawn(f)
}

/// memcached's `-o no_lru_crawler`, `lru_crawler_sleep=N` and
/// `lru_crawler_tocrawl=N`, as `config` typed them.
fn apply_crawler_options(shared: &Shared) {
    let config = &shared.config;
    shared.cache.set_crawler_enabled(config.lru_crawler);
    if let Some(n) = config.lru_crawler_sleep {
        shared.cache.set_crawler_sleep(n);
    }
    if let Some(n) = config.lru_crawler_tocrawl {
        shared.cache.set_crawler_tocrawl(n);
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
        Shared::new(Config::from_args(["ferrocache", "-t", "1"]).unwrap(), None)
    }
}
