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
//! Must not interpret bytes beyond calling `protocol::parse` and
//! `command::execute`.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use log::{debug, error, info, trace, warn};
use mio::event::Source;
use mio::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use mio::{Events, Interest, Poll, Registry, Token, Waker};
use slab::Slab;

use crate::clock::Clock;
use crate::command::ops::{self, Watcher};
use crate::command::{self, ConnInfo, Context, Flow, ServerControl};
use crate::config::Config;
use crate::protocol::admin::{self as admin_proto, LruCrawler};
use crate::protocol::{self, Keys, Limits, ParseError, Request, TextReply};
use crate::stats::{bump, Stats, WorkerStats};
use crate::storage::{Cache, CacheConfig};

/// A reply buffer past this many bytes stops the connection from executing
/// more requests (and a multi-get pauses) until the client reads.
const OUT_LIMIT: usize = 256 * 1024;
/// Each read asks the kernel for at least this much.
const READ_CHUNK: usize = 16 * 1024;
/// Buffers that grew past this (a large value) are given back once empty.
const KEEP_BUF: usize = 64 * 1024;
/// memcached's UDP reply payload per datagram.
const UDP_PAYLOAD: usize = 1400;
/// A datagram's replies stop at this many bytes (plus one value): a
/// multi-get that would go past it answers `SERVER_ERROR out of memory
/// writing get response` instead, so one datagram cannot make the server
/// build hundreds of MB of reply (and send them to a forged source).
const UDP_REPLY_MAX: usize = 8 * 1024 * 1024;
/// How long the accept thread pauses when out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

const WAKER: Token = Token(usize::MAX);
const UDP_BASE: usize = usize::MAX - 1024;

/// On SIGTERM (or `shutdown`), how long workers go on serving connections
/// that still have replies in flight, and how often they look again.
const DRAIN_LIMIT: Duration = Duration::from_millis(800);
const DRAIN_CHECK: Duration = Duration::from_millis(10);

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

    fn conns(&self) -> Vec<ConnInfo> {
        let conns = self.conns.lock().unwrap_or_else(|e| e.into_inner());
        conns
            .iter()
            .map(|(&fd, (peer, listen))| ConnInfo {
                fd,
                peer: peer.clone(),
                listen: listen.clone(),
            })
            .collect()
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

/// Resolves one `-l` entry (already split by `config`) with its port. `*`
/// binds the IPv6 wildcard, which on Linux also takes IPv4.
fn resolve_listen(host: Option<&str>, port: u16) -> io::Result<Vec<SocketAddr>> {
    let Some(host) = host else {
        return Ok(vec![SocketAddr::new(IpAddr::from([0u16; 8]), port)]);
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let mut addrs: Vec<SocketAddr> = (host, port).to_socket_addrs()?.collect();
    addrs.dedup();
    Ok(addrs)
}

fn bind_tcp(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    // std listens with its own backlog; listen() again sets memcached's -b.
    // SAFETY: plain syscall on a socket we own.
    unsafe {
        libc::listen(l.as_raw_fd(), backlog);
    }
    l.set_nonblocking(true)?;
    Ok(l)
}

enum Listener {
    Tcp(TcpListener, String),
    Unix(UnixListener, String),
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
        let mut udp = Vec::new();
        for (i, u) in udp_sockets.iter().enumerate() {
            let mut s = UdpSocket::from_std(u.try_clone()?);
            poll.registry()
                .register(&mut s, Token(UDP_BASE + i), Interest::READABLE)?;
            udp.push(s);
        }
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
            udp_buf: if udp.is_empty() {
                Vec::new()
            } else {
                vec![0u8; 65536]
            },
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

/// A connected client socket.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// Unit tests: reads and writes scripted in memory.
    #[cfg(test)]
    Script(tests::Script),
}

impl Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            #[cfg(test)]
            Stream::Script(s) => s.read(buf),
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            #[cfg(test)]
            Stream::Script(s) => s.write(buf),
        }
    }

    fn fd(&self) -> i32 {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
            #[cfg(test)]
            Stream::Script(_) => -1,
        }
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(r, t, i),
            Stream::Unix(s) => s.register(r, t, i),
            #[cfg(test)]
            Stream::Script(_) => Ok(()),
        }
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(r, t, i),
            Stream::Unix(s) => s.reregister(r, t, i),
            #[cfg(test)]
            Stream::Script(_) => Ok(()),
        }
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(r),
            Stream::Unix(s) => s.deregister(r),
            #[cfg(test)]
            Stream::Script(_) => Ok(()),
        }
    }
}

struct Acceptor {
    poll: Poll,
    listeners: Vec<Listener>,
    workers: Vec<(Sender<Stream>, Arc<Waker>)>,
    next: usize,
    shared: Arc<Shared>,
}

impl Acceptor {
    fn run(mut self) {
        let mut events = Events::with_capacity(64);
        // Listeners to retry after running out of file descriptors: mio is
        // edge-triggered, so a backlog left behind raises no new event.
        let mut retry = false;
        loop {
            let timeout = if retry { Some(ACCEPT_BACKOFF) } else { None };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    error!("accept poll failed: {}", e);
                }
                continue;
            }
            if self.shared.stopping.load(Ordering::SeqCst) {
                return;
            }
            let mut ready: Vec<usize> = events
                .iter()
                .map(|e| e.token().0)
                .filter(|&t| t < self.listeners.len())
                .collect();
            if retry {
                ready = (0..self.listeners.len()).collect();
                retry = false;
            }
            for i in ready {
                if !self.accept_all(i) {
                    retry = true;
                }
            }
        }
    }

    /// Accepts until the backlog is empty; false when it had to stop early
    /// (out of descriptors) and should be retried after a pause.
    fn accept_all(&mut self, i: usize) -> bool {
        loop {
            let accepted = match &self.listeners[i] {
                Listener::Tcp(l, name) => l.accept().map(|(s, peer)| {
                    let _ = s.set_nodelay(true);
                    let peer = if peer.is_ipv4() {
                        format!("tcp:{}", peer)
                    } else {
                        format!("tcp6:{}", peer)
                    };
                    (Stream::Tcp(s), peer, name.clone())
                }),
                Listener::Unix(l, name) => l
                    .accept()
                    .map(|(s, _)| (Stream::Unix(s), name.clone(), name.clone())),
            };
            match accepted {
                Ok((stream, peer, listen)) => self.hand_over(stream, peer, listen),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => match e.raw_os_error() {
                    Some(libc::EMFILE) | Some(libc::ENFILE) | Some(libc::ENOBUFS)
                    | Some(libc::ENOMEM) => {
                        warn!("accept: {}; pausing new connections briefly", e);
                        return false;
                    }
                    _ => {
                        debug!("accept: {}", e);
                        continue;
                    }
                },
            }
        }
    }

    fn hand_over(&mut self, mut stream: Stream, peer: String, listen: String) {
        let stats = &self.shared.stats.acceptor;
        let max = self.shared.config.max_connections;
        if self.shared.curr_conns.load(Ordering::SeqCst) >= max {
            // memcached's answer when over -c: a last word, then close.
            let _ = stream.write(b"ERROR Too many open connections\r\n");
            bump(&stats.rejected_connections, 1);
            debug!("rejected {}: too many open connections", peer);
            return;
        }
        self.shared.curr_conns.fetch_add(1, Ordering::SeqCst);
        bump(&stats.total_connections, 1);
        self.shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(stream.fd(), (peer.clone(), listen));
        trace!("new connection {} from {}", stream.fd(), peer);
        let n = self.workers.len();
        let (tx, waker) = &self.workers[self.next % n];
        self.next = self.next.wrapping_add(1);
        if tx.send(stream).is_ok() {
            let _ = waker.wake();
        }
    }
}

/// One client connection, owned by one worker.
struct Conn {
    stream: Stream,
    fd: i32,
    /// Bytes received; `rbuf[rpos..rend]` is not yet parsed.
    rbuf: Vec<u8>,
    rpos: usize,
    rend: usize,
    /// Replies; `wbuf[wpos..]` is not yet written.
    wbuf: Vec<u8>,
    wpos: usize,
    /// Bytes of a too-large value still to throw away.
    swallow: usize,
    /// Where the multi-get at `rbuf[rpos..]` goes on (see
    /// [`Flow::Paused`]); 0 when no request is paused.
    resume: usize,
    /// The paused multi-get itself, so that resuming it does not parse its
    /// line again (up to 2 MiB, thousands of times for a large reply).
    paused: Option<Resumable>,
    /// `rbuf[rpos..rpos + scanned]` holds no `\n`: the start of a line
    /// still arriving, not searched again when more of it comes.
    scanned: usize,
    /// The socket may have unread bytes (edge-triggered readiness). A read
    /// that leaves room in the buffer took everything there was, so it
    /// clears this: bytes arriving later raise a new event (see
    /// [`read_more`]).
    readable: bool,
    /// The poller reported the peer's end closed (or an error): the next
    /// read would say so, so reads go on to it however short they are.
    peer_closed: bool,
    /// Close once the replies are written.
    closing: bool,
    /// In the worker's ready list (yielded with work left).
    queued: bool,
    last_active: u32,
    /// Set once the connection sent `watch`: it receives log lines and
    /// executes nothing more.
    watcher: Option<Arc<Watcher>>,
    /// Replies of earlier pipelined requests are still stacked, in
    /// memcached's terms: it sends a connection's replies when its input
    /// runs out and after a get (`get`, `gets`, `gat`, `gats`), `mn` or a
    /// dump, and refuses a `watch` or `lru_crawler metadump` that comes
    /// while others wait.
    stacked: bool,
    /// `-vv` has logged the connection's protocol (memcached's `fd: Client
    /// using the ascii protocol`, at its first command).
    announced: bool,
}

impl Conn {
    fn new(stream: Stream, now: u32) -> Conn {
        Conn {
            fd: stream.fd(),
            stream,
            rbuf: Vec::new(),
            rpos: 0,
            rend: 0,
            wbuf: Vec::new(),
            wpos: 0,
            swallow: 0,
            resume: 0,
            paused: None,
            scanned: 0,
            // data may have arrived before the registration
            readable: true,
            peer_closed: false,
            closing: false,
            queued: false,
            last_active: now,
            watcher: None,
            stacked: false,
            announced: false,
        }
    }
}

/// A multi-get paused at its output limit, as offsets into the input at
/// `rbuf[rpos..]`, which stays in place until the request is done.
#[derive(Debug, Clone, Copy)]
struct Resumable {
    /// The request's bytes (its whole line).
    consumed: usize,
    keys_at: usize,
    keys_len: usize,
    /// `gat`/`gats`: the exptime.
    exptime: Option<i64>,
    with_cas: bool,
}

impl Resumable {
    fn of(req: &Request<'_>, input: &[u8], consumed: usize) -> Option<Resumable> {
        let (keys, exptime, with_cas) = match *req {
            Request::Get { keys, with_cas } => (keys, None, with_cas),
            Request::Gat {
                exptime,
                keys,
                with_cas,
            } => (keys, Some(exptime), with_cas),
            _ => return None,
        };
        let raw = keys.raw();
        let keys_at = (raw.as_ptr() as usize).wrapping_sub(input.as_ptr() as usize);
        if keys_at.checked_add(raw.len())? > consumed.min(input.len()) {
            return None;
        }
        Some(Resumable {
            consumed,
            keys_at,
            keys_len: raw.len(),
            exptime,
            with_cas,
        })
    }

    fn request<'a>(&self, input: &'a [u8]) -> Request<'a> {
        let keys = Keys::new(&input[self.keys_at..self.keys_at + self.keys_len]);
        match self.exptime {
            None => Request::Get {
                keys,
                with_cas: self.with_cas,
            },
            Some(exptime) => Request::Gat {
                exptime,
                keys,
                with_cas: self.with_cas,
            },
        }
    }
}

enum Status {
    Keep,
    Yield,
    Close,
    /// The connection sent `watch`: register it as a watcher of this mask.
    Watch(u32),
}

enum Progress {
    /// Requests were executed; replies may be waiting.
    Some,
    NeedInput,
    Budget,
    Close,
    Watch(u32),
}

struct Worker {
    id: usize,
    /// This worker's own waker (watchers wake it when lines arrive).
    waker: Arc<Waker>,
    poll: Poll,
    rx: Receiver<Stream>,
    shared: Arc<Shared>,
    conns: Slab<Conn>,
    ready: Vec<usize>,
    udp: Vec<UdpSocket>,
    /// One datagram's worth of receive space, kept for the worker's life
    /// (empty when UDP is off).
    udp_buf: Vec<u8>,
    /// Keys of this worker's watching connections.
    watchers: Vec<usize>,
    /// Set once the server is stopping: connections with replies still in
    /// flight are served until then, the rest are closed.
    drain_until: Option<Instant>,
}

impl Worker {
    fn run(mut self) {
        let mut events = Events::with_capacity(256);
        let mut last_idle_check = Instant::now();
        loop {
            let timeout = if !self.ready.is_empty() {
                Duration::ZERO
            } else if self.drain_until.is_some() {
                DRAIN_CHECK
            } else {
                Duration::from_secs(1)
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    error!("worker {} poll failed: {}", self.id, e);
                }
                continue;
            }
            if self.shared.stopping.load(Ordering::SeqCst) {
                let until = *self
                    .drain_until
                    .get_or_insert_with(|| Instant::now() + DRAIN_LIMIT);
                if self.close_drained() || Instant::now() >= until {
                    self.close_all();
                    return;
                }
            }
            for ev in events.iter() {
                match ev.token() {
                    WAKER => {
                        self.take_new_conns();
                        self.serve_watchers();
                    }
                    Token(t) if t >= UDP_BASE => self.serve_udp(t - UDP_BASE),
                    Token(k) => {
                        if let Some(c) = self.conns.get_mut(k) {
                            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                                c.readable = true;
                            }
                            if ev.is_read_closed() || ev.is_error() {
                                c.peer_closed = true;
                            }
                        }
                        self.run_conn(k);
                    }
                }
            }
            let ready = std::mem::take(&mut self.ready);
            for k in ready {
                if let Some(c) = self.conns.get_mut(k) {
                    c.queued = false;
                    self.run_conn(k);
                }
            }
            if self.shared.config.idle_timeout > 0
                && last_idle_check.elapsed() >= Duration::from_secs(1)
            {
                last_idle_check = Instant::now();
                self.close_idle();
            }
        }
    }

    fn take_new_conns(&mut self) {
        while let Ok(stream) = self.rx.try_recv() {
            let fd = stream.fd();
            let entry = self.conns.vacant_entry();
            let key = entry.key();
            let mut conn = Conn::new(stream, self.shared.clock.now());
            if let Err(e) = self.poll.registry().register(
                &mut conn.stream,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                warn!("cannot register connection: {}", e);
                self.forget(fd);
                continue;
            }
            entry.insert(conn);
            debug!("<{} new auto-negotiating client connection", fd);
            if self
                .shared
                .stats
                .watch
                .wants(admin_proto::watch::CONNEVENTS)
            {
                let peer = self.peer_of(fd);
                ops::log_conn(&self.shared.stats.watch, fd, &peer, None);
            }
            // Data may have arrived before registration.
            self.run_conn(key);
        }
    }

    fn peer_of(&self, fd: i32) -> String {
        self.shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&fd)
            .map(|(peer, _)| peer.clone())
            .unwrap_or_default()
    }

    /// Lets every watching connection of this worker take its new lines.
    fn serve_watchers(&mut self) {
        for i in 0..self.watchers.len() {
            let k = self.watchers[i];
            self.run_conn(k);
        }
    }

    fn forget(&self, fd: i32) {
        self.shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fd);
        self.shared.curr_conns.fetch_sub(1, Ordering::SeqCst);
    }

    fn close(&mut self, key: usize) {
        if self.conns.contains(key) {
            let mut c = self.conns.remove(key);
            let _ = c.stream.deregister(self.poll.registry());
            if let Some(w) = c.watcher.take() {
                self.shared.stats.watch.unregister(&w);
                self.watchers.retain(|&k| k != key);
            }
            debug!("<{} connection closed.", c.fd);
            if self
                .shared
                .stats
                .watch
                .wants(admin_proto::watch::CONNEVENTS)
            {
                let peer = self.peer_of(c.fd);
                let reason = if c.closing { "normal" } else { "error" };
                ops::log_conn(&self.shared.stats.watch, c.fd, &peer, Some(reason));
            }
            self.forget(c.fd);
        }
    }

    fn close_all(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            if let Some(c) = self.conns.get_mut(k) {
                // Finish replies in flight, best effort, without blocking.
                let _ = flush(c, self.shared.stats.worker(self.id));
            }
            self.close(k);
        }
    }

    /// While stopping: closes every connection with nothing left to send
    /// and no multi-get half answered (watchers too); true when none is left.
    fn close_drained(&mut self) -> bool {
        let done: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.watcher.is_some() || (c.wpos == c.wbuf.len() && c.resume == 0))
            .map(|(k, _)| k)
            .collect();
        for k in done {
            self.close(k);
        }
        self.conns.is_empty()
    }

    fn close_idle(&mut self) {
        let now = self.shared.clock.now();
        let limit = self.shared.config.idle_timeout;
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.watcher.is_none())
            .filter(|(_, c)| u64::from(now.saturating_sub(c.last_active)) > limit)
            .map(|(k, _)| k)
            .collect();
        for k in idle {
            debug!("closing idle connection");
            self.close(k);
        }
    }

    fn run_conn(&mut self, key: usize) {
        let shared = &*self.shared;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let worker = shared.stats.worker(self.id);
        let ctx = shared.context(worker);
        ops::set_client_fd(conn.fd);
        let status = match catch_unwind(AssertUnwindSafe(|| drive(conn, &ctx, &shared.limits))) {
            Ok(s) => s,
            Err(_) => {
                error!("panic while serving connection {}; closing it", conn.fd);
                bump(&worker.worker_panics, 1);
                Status::Close
            }
        };
        match status {
            Status::Keep => {}
            Status::Yield => {
                bump(&worker.conn_yields, 1);
                if !conn.queued {
                    conn.queued = true;
                    self.ready.push(key);
                }
            }
            Status::Close => self.close(key),
            Status::Watch(mask) => {
                let waker = Arc::clone(&self.waker);
                let w = shared.stats.watch.register(
                    mask,
                    Box::new(move || {
                        let _ = waker.wake();
                    }),
                );
                debug!("<{} watching (mask {:#x})", conn.fd, mask);
                conn.watcher = Some(w);
                // input is only read to notice a close from now on
                conn.rbuf = Vec::new();
                conn.rpos = 0;
                conn.rend = 0;
                self.watchers.push(key);
                // lines may already be waiting
                self.run_conn(key);
            }
        }
    }

    fn serve_udp(&mut self, i: usize) {
        let shared = &*self.shared;
        let worker = shared.stats.worker(self.id);
        let ctx = shared.context(worker);
        let mut out = Vec::new();
        loop {
            let (n, peer) = match self.udp[i].recv_from(&mut self.udp_buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!("udp recv: {}", e);
                    return;
                }
            };
            if n < 8 {
                continue;
            }
            bump(&worker.bytes_read, n as u64);
            let (hdr, payload) = self.udp_buf[..n].split_at(8);
            let req_id = [hdr[0], hdr[1]];
            out.clear();
            if hdr[4] != 0 || hdr[5] != 1 {
                out.extend_from_slice(b"SERVER_ERROR multi-packet request not supported\r\n");
            } else {
                let r = catch_unwind(AssertUnwindSafe(|| {
                    udp_execute(&ctx, payload, &shared.limits, &mut out)
                }));
                if r.is_err() {
                    error!("panic while serving a UDP request");
                    bump(&worker.worker_panics, 1);
                    continue;
                }
            }
            if out.is_empty() {
                continue;
            }
            let total = out.len().div_ceil(UDP_PAYLOAD);
            if total > u16::MAX as usize {
                continue;
            }
            let mut dgram = Vec::with_capacity(UDP_PAYLOAD + 8);
            for (seq, chunk) in out.chunks(UDP_PAYLOAD).enumerate() {
                dgram.clear();
                dgram.extend_from_slice(&req_id);
                dgram.extend_from_slice(&(seq as u16).to_be_bytes());
                dgram.extend_from_slice(&(total as u16).to_be_bytes());
                dgram.extend_from_slice(&[0, 0]);
                dgram.extend_from_slice(chunk);
                match self.udp[i].send_to(&dgram, peer) {
                    Ok(w) => bump(&worker.bytes_written, w as u64),
                    Err(e) => {
                        debug!("udp send: {}", e);
                        break;
                    }
                }
            }
        }
    }
}

/// Runs every whole request of one datagram.
fn udp_execute(ctx: &Context<'_>, mut payload: &[u8], limits: &Limits, out: &mut Vec<u8>) {
    while !payload.is_empty() {
        match protocol::parse(payload, limits) {
            Ok((req, consumed)) => {
                if matches!(
                    req,
                    Request::Watch { .. } | Request::LruCrawler(LruCrawler::Metadump(_))
                ) {
                    // memcached sends no usable answer to these over UDP
                    payload = &payload[consumed.min(payload.len())..];
                    continue;
                }
                let start = out.len();
                // A multi-get pauses once the output holds UDP_REPLY_MAX: a
                // 1.4 KB datagram naming one 1 MB value 700 times asked for
                // 700 MB of reply.
                if let Flow::Paused(_) =
                    command::execute(ctx, &req, 0, &mut TextReply::new(out), UDP_REPLY_MAX)
                {
                    out.truncate(start);
                    out.extend_from_slice(b"SERVER_ERROR out of memory writing get response\r\n");
                }
                payload = &payload[consumed.min(payload.len())..];
            }
            Err(_) => return,
        }
    }
}

/// Writes pending replies until done or the socket is full. Err on a dead
/// socket.
fn flush(c: &mut Conn, stats: &WorkerStats) -> io::Result<()> {
    while c.wpos < c.wbuf.len() {
        match c.stream.write(&c.wbuf[c.wpos..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                c.wpos += n;
                bump(&stats.bytes_written, n as u64);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    c.wbuf.clear();
    c.wpos = 0;
    // A paused multi-get fills it again at once: keep it (freeing and
    // growing a 256 KiB+ buffer for every pause cost page faults).
    if c.wbuf.capacity() > KEEP_BUF && c.resume == 0 {
        c.wbuf = Vec::new();
    }
    Ok(())
}

/// Serves one connection as far as it can go without blocking: write what is
/// pending, execute what is buffered (up to -R requests), read more.
fn drive(c: &mut Conn, ctx: &Context<'_>, limits: &Limits) -> Status {
    if c.watcher.is_some() {
        return drive_watcher(c, ctx);
    }
    let mut budget = ctx.config.reqs_per_event.max(1);
    loop {
        if flush(c, ctx.worker).is_err() {
            return Status::Close;
        }
        let pending = c.wbuf.len() - c.wpos;
        if c.closing {
            return if pending == 0 {
                Status::Close
            } else {
                Status::Keep
            };
        }
        if pending >= OUT_LIMIT {
            // Backpressure: nothing more is executed (or read) until the
            // client takes its replies; a writable event resumes us.
            trace!(
                "{}: output full ({} bytes), waiting for the client",
                c.fd,
                pending
            );
            return Status::Keep;
        }
        match process(c, ctx, limits, &mut budget) {
            Progress::Some => continue,
            Progress::Watch(mask) => return Status::Watch(mask),
            Progress::Budget => {
                trace!("{}: request budget (-R) used up, yielding", c.fd);
                return Status::Yield;
            }
            Progress::Close => {
                c.closing = true;
                continue;
            }
            Progress::NeedInput => {}
        }
        if !c.readable {
            release_idle_buffer(c);
            return Status::Keep;
        }
        if budget == 0 {
            // Requests to the -R limit were executed and the buffer is used
            // up: the rest waits in the socket until the other connections
            // had their turn.
            return Status::Yield;
        }
        match read_more(c, ctx) {
            Ok(0) => return Status::Close,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                c.readable = false;
                release_idle_buffer(c);
                return Status::Keep;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Status::Close,
        }
    }
}

/// A watching connection: write what is pending, take the watcher's new
/// lines while the output is under its limit, and read (and drop) whatever
/// the client sends, to notice when it goes away.
fn drive_watcher(c: &mut Conn, ctx: &Context<'_>) -> Status {
    let Some(w) = c.watcher.clone() else {
        return Status::Keep;
    };
    loop {
        if flush(c, ctx.worker).is_err() {
            return Status::Close;
        }
        let pending = c.wbuf.len() - c.wpos;
        if pending >= OUT_LIMIT || !w.drain_into(&mut c.wbuf) {
            break;
        }
    }
    let mut scratch = [0u8; 4096];
    while c.readable {
        match c.stream.read(&mut scratch) {
            Ok(0) => return Status::Close,
            Ok(n) => bump(&ctx.worker.bytes_read, n as u64),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.readable = false,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Status::Close,
        }
    }
    Status::Keep
}

fn release_idle_buffer(c: &mut Conn) {
    if c.rpos == c.rend && c.rbuf.len() > KEEP_BUF {
        c.rbuf = Vec::new();
        c.rpos = 0;
        c.rend = 0;
    }
}

/// Reads what the socket holds into `rbuf`.
///
/// A read that does not fill the free space has emptied the socket's receive
/// queue, so it clears `c.readable`: the epoll registration is edge-triggered
/// and every later arrival raises a new event. Without this, `drive` would
/// read again after answering, and a client that sends its next request as
/// soon as it has a reply (the worker is preempted by the client inside the
/// write that wakes it) is served again and again in one turn, up to -R
/// requests, while every other connection of that worker waits; a
/// connection that had yielded then waits for all of them (about 9 x 20
/// requests, 4 ms, in the multiget load benchmark: its p99). memcached goes
/// back to its event loop as soon as its read buffer is empty, too. It also
/// saves the read that would only say WouldBlock.
fn read_more(c: &mut Conn, ctx: &Context<'_>) -> io::Result<usize> {
    if c.rpos > 0 {
        c.rbuf.copy_within(c.rpos..c.rend, 0);
        c.rend -= c.rpos;
        c.rpos = 0;
    }
    if c.rbuf.len() - c.rend < READ_CHUNK {
        let want = (c.rend + READ_CHUNK).max(c.rbuf.len() * 2);
        c.rbuf.resize(want, 0);
    }
    let room = c.rbuf.len() - c.rend;
    let n = c.stream.read(&mut c.rbuf[c.rend..])?;
    if n < room && !c.peer_closed {
        c.readable = false;
    }
    c.rend += n;
    if n > 0 {
        bump(&ctx.worker.bytes_read, n as u64);
        c.last_active = ctx.clock.now();
    }
    Ok(n)
}

/// Parses and executes buffered requests.
fn process(c: &mut Conn, ctx: &Context<'_>, limits: &Limits, budget: &mut usize) -> Progress {
    let mut did = false;
    loop {
        if c.swallow > 0 {
            let n = c.swallow.min(c.rend - c.rpos);
            c.rpos += n;
            c.swallow -= n;
            c.scanned = 0;
            if c.swallow > 0 {
                return if did {
                    Progress::Some
                } else {
                    Progress::NeedInput
                };
            }
        }
        if c.rpos == c.rend {
            c.stacked = false;
            return if did {
                Progress::Some
            } else {
                Progress::NeedInput
            };
        }
        if c.wbuf.len() - c.wpos >= OUT_LIMIT {
            return Progress::Some;
        }
        if *budget == 0 {
            return Progress::Budget;
        }
        let input = &c.rbuf[c.rpos..c.rend];
        let parsed = match c.paused {
            Some(p) if c.resume != 0 && p.consumed <= input.len() => {
                Ok((p.request(input), p.consumed))
            }
            _ if c.scanned > 0
                && c.scanned <= input.len()
                && !input[c.scanned..].contains(&b'\n') =>
            {
                Err(protocol::unfinished_line(input))
            }
            _ => protocol::parse(input, limits),
        };
        let (req, consumed) = match parsed {
            Ok(r) => r,
            Err(ParseError::Incomplete) => {
                c.stacked = false;
                if !input[c.scanned.min(input.len())..].contains(&b'\n') {
                    c.scanned = input.len();
                }
                return if did {
                    Progress::Some
                } else {
                    Progress::NeedInput
                };
            }
            Err(ParseError::LineTooLong) => {
                debug!("connection {}: command line too long, closing", c.fd);
                return Progress::Close;
            }
        };
        *budget -= 1;
        did = true;
        let debug = log::log_enabled!(log::Level::Debug);
        if debug && c.resume == 0 {
            if !c.announced {
                c.announced = true;
                debug!("{}: Client using the ascii protocol", c.fd);
            }
            let line_end = input
                .iter()
                .position(|&b| b == b'\n')
                .unwrap_or(input.len());
            debug!(
                "<{} {}",
                c.fd,
                String::from_utf8_lossy(&input[..line_end]).trim_end()
            );
        }
        let before = c.wbuf.len();
        // -vv: a `noreply` request runs with its reply on, into a scratch
        // buffer, so that its outcome is logged as memcached logs it
        // (`>fd NOREPLY STORED`); the client still gets nothing.
        let loud = if debug { with_reply(&req) } else { None };
        // memcached refuses these behind replies it has not sent yet
        // (after its own checks of -W, or of the crawler's state and -X)
        let refused: Option<&[u8]> = match req {
            Request::Watch { .. } if c.stacked && !ctx.config.disable_watch => {
                Some(b"ERROR cannot pipeline other commands before watch\r\n")
            }
            Request::LruCrawler(LruCrawler::Metadump(_))
                if c.stacked
                    && c.resume == 0
                    && ctx.cache.crawler_enabled()
                    && !ctx.config.disable_dumping =>
            {
                Some(b"ERROR cannot pipeline other commands before metadump\r\n")
            }
            _ => None,
        };
        let flow = if let Some(refusal) = refused {
            c.wbuf.extend_from_slice(refusal);
            if debug {
                log_reply(c.fd, ctx, &req, &c.wbuf[before..], "");
            }
            Flow::Done
        } else if let Some(loud) = &loud {
            let mut scratch = Vec::new();
            let flow = command::execute(
                ctx,
                loud,
                c.resume,
                &mut TextReply::new(&mut scratch),
                OUT_LIMIT,
            );
            log_reply(c.fd, ctx, loud, &scratch, "NOREPLY ");
            flow
        } else {
            let flow = command::execute(
                ctx,
                &req,
                c.resume,
                &mut TextReply::new(&mut c.wbuf),
                OUT_LIMIT,
            );
            if debug {
                log_reply(c.fd, ctx, &req, &c.wbuf[before..], "");
            }
            flow
        };
        c.stacked = refused.is_some()
            || !matches!(
                req,
                Request::Get { .. }
                    | Request::Gat { .. }
                    | Request::MetaNoop
                    | Request::LruCrawler(LruCrawler::Metadump(_))
            );
        match flow {
            Flow::Paused(i) => {
                trace!(
                    "{}: reply paused at {} bytes, resuming at {}",
                    c.fd,
                    c.wbuf.len(),
                    i
                );
                c.resume = i;
                if c.paused.is_none() {
                    c.paused = Resumable::of(&req, input, consumed);
                }
                return Progress::Some;
            }
            Flow::Watch(mask) => {
                // nothing after `watch` is executed: drop the rest of the input
                c.resume = 0;
                c.paused = None;
                c.rpos = c.rend;
                c.scanned = 0;
                return Progress::Watch(mask);
            }
            Flow::Done | Flow::Close => {
                c.resume = 0;
                c.paused = None;
                c.scanned = 0;
                let avail = c.rend - c.rpos;
                if consumed > avail {
                    c.swallow = consumed - avail;
                    c.rpos = c.rend;
                } else {
                    c.rpos += consumed;
                }
                if flow == Flow::Close {
                    return Progress::Close;
                }
            }
        }
    }
}

/// `-vv`: the reply summary memcached logs after a request (`>fd END`,
/// `>fd sending key k`, `>fd NOREPLY STORED` with `prefix` "NOREPLY "); none
/// for `stats` or a metadump, and for the meta commands only what memcached
/// logs of theirs: `MN`, `me`'s `EN` and errors (their other replies are
/// not logged, nor, ever, a value's bytes). A cas refused because the item
/// changed is preceded by memcached's `CAS:  failure: expected <unique>,
/// got <unique>`.
fn log_reply(fd: i32, ctx: &Context<'_>, req: &Request<'_>, reply: &[u8], prefix: &str) {
    let is_error = |r: &[u8]| {
        r.starts_with(b"ERROR") || r.starts_with(b"CLIENT_ERROR") || r.starts_with(b"SERVER_ERROR")
    };
    match req {
        Request::Stats { .. } | Request::LruCrawler(LruCrawler::Metadump(_)) => return,
        Request::MetaGet(_)
        | Request::MetaSet(_)
        | Request::MetaDelete(_)
        | Request::MetaArith(_)
            if !is_error(reply) =>
        {
            return
        }
        Request::MetaDebug { .. } if reply.starts_with(b"ME ") => return,
        Request::Store {
            mode: protocol::StoreMode::Cas,
            key,
            cas,
            ..
        } if reply == b"EXISTS\r\n" => {
            if let Some(meta) = ctx.cache.item_meta(key) {
                debug!("CAS:  failure: expected {}, got {}", meta.cas, cas);
            }
        }
        _ => {}
    }
    admin_proto::reply_summary(reply, |what, line| {
        debug!(
            ">{} {}{}{}",
            fd,
            prefix,
            String::from_utf8_lossy(what),
            String::from_utf8_lossy(line)
        );
    });
}

/// `req` with its reply turned on, if it had `noreply`; `None` otherwise.
fn with_reply<'a>(req: &Request<'a>) -> Option<Request<'a>> {
    let mut loud = req.clone();
    match &mut loud {
        Request::Store { noreply, .. }
        | Request::TooLarge { noreply, .. }
        | Request::Delete { noreply, .. }
        | Request::Arith { noreply, .. }
        | Request::Touch { noreply, .. }
        | Request::FlushAll { noreply, .. }
        | Request::Verbosity { noreply, .. }
        | Request::CacheMemlimit { noreply, .. }
        | Request::Invalid { noreply, .. }
            if *noreply =>
        {
            *noreply = false;
            Some(loud)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// A server with one worker on an ephemeral loopback port.
    fn one_worker_on_loopback() -> (ServerHandle, SocketAddr) {
        let mut config = Config::from_args(["ferrocache", "-t", "1"]).unwrap();
        config.port = 0;
        config.listen = vec!["127.0.0.1".into()];
        let handle = start(config).unwrap();
        let addr = handle.tcp_addrs()[0];
        (handle, addr)
    }

    fn roundtrip(s: &mut TcpStream, req: &[u8], want: &[u8]) {
        s.write_all(req).unwrap();
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).unwrap();
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
    }

    /// A panic while one connection's request runs (injected by
    /// `command::execute` in test builds) closes that connection only: it
    /// is counted, the other clients and the stored data are untouched.
    #[test]
    fn a_panic_closes_one_connection_and_is_counted() {
        let (handle, addr) = one_worker_on_loopback();
        let connect = || {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        };
        let (mut bystander, mut victim) = (connect(), connect());
        roundtrip(&mut bystander, b"set kept 0 0 2\r\nok\r\n", b"STORED\r\n");
        victim.write_all(b"get test:panic\r\n").unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(victim.read(&mut buf).unwrap(), 0, "the victim is closed");
        roundtrip(
            &mut bystander,
            b"get kept\r\n",
            b"VALUE kept 0 2\r\nok\r\nEND\r\n",
        );
        let mut fresh = connect();
        roundtrip(
            &mut fresh,
            b"get kept\r\n",
            b"VALUE kept 0 2\r\nok\r\nEND\r\n",
        );
        fresh.write_all(b"stats\r\n").unwrap();
        let mut stats = Vec::new();
        while !stats.ends_with(b"END\r\n") {
            let n = fresh.read(&mut buf).unwrap();
            assert!(n > 0);
            stats.extend_from_slice(&buf[..n]);
        }
        let stats = String::from_utf8_lossy(&stats);
        assert!(stats.contains("STAT worker_panics 1\r\n"), "{stats}");
        handle.shutdown();
    }

    /// A connection's input as the kernel would hand it over: each read
    /// returns what had arrived by then (one chunk, or the part of it that
    /// fits), then WouldBlock, or end of stream once `eof` is set.
    pub(super) struct Script {
        pub chunks: std::collections::VecDeque<Vec<u8>>,
        pub eof: bool,
        pub written: Vec<u8>,
        /// Bytes the peer takes before writes would block.
        pub room: usize,
    }

    impl Script {
        pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let Some(mut chunk) = self.chunks.pop_front() else {
                return if self.eof {
                    Ok(0)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            };
            let n = chunk.len().min(buf.len());
            buf[..n].copy_from_slice(&chunk[..n]);
            if n < chunk.len() {
                self.chunks.push_front(chunk.split_off(n));
            }
            Ok(n)
        }

        pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(self.room);
            if n == 0 && !buf.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.room -= n;
            self.written.extend_from_slice(&buf[..n]);
            Ok(n)
        }
    }

    fn scripted(chunks: &[&[u8]], eof: bool) -> Conn {
        let script = Script {
            chunks: chunks.iter().map(|c| c.to_vec()).collect(),
            eof,
            written: Vec::new(),
            room: usize::MAX,
        };
        Conn::new(Stream::Script(script), 0)
    }

    fn script_mut(c: &mut Conn) -> &mut Script {
        match &mut c.stream {
            Stream::Script(s) => s,
            _ => unreachable!(),
        }
    }

    /// A long line arriving in small pieces is searched for its end only in
    /// the new bytes: a 2 MiB `get` line sent 20 bytes at a time cost 10.8 s
    /// of server CPU when each piece restarted the search from the line's
    /// start (memcached: 2.9 s).
    #[test]
    fn a_line_arriving_in_pieces_is_searched_once() {
        let shared = one_worker();
        let ctx = shared.context(shared.stats.worker(0));
        let mut line = b"get".to_vec();
        for i in 0..20_000 {
            line.extend_from_slice(format!(" key:{i}").as_bytes());
        }
        let pieces: Vec<&[u8]> = line.chunks(1000).collect();
        let mut c = scripted(&[], false);
        let mut got = 0;
        for piece in &pieces {
            script_mut(&mut c).chunks.push_back(piece.to_vec());
            c.readable = true;
            assert!(matches!(drive(&mut c, &ctx, &shared.limits), Status::Keep));
            got += piece.len();
            assert_eq!(c.rend - c.rpos, got, "the line is kept whole");
            assert_eq!(c.scanned, got, "bytes known to hold no newline");
        }
        assert!(script(&c).written.is_empty());
        // the bytes already searched are not looked at again: a newline
        // planted among them goes unseen
        let planted = c.rpos + 100;
        let was = std::mem::replace(&mut c.rbuf[planted], b'\n');
        script_mut(&mut c).chunks.push_back(b" more".to_vec());
        c.readable = true;
        assert!(matches!(drive(&mut c, &ctx, &shared.limits), Status::Keep));
        assert!(script(&c).written.is_empty(), "searched from the start");
        c.rbuf[planted] = was;
        script_mut(&mut c)
            .chunks
            .push_back(b"\r\nget x\r\n".to_vec());
        c.readable = true;
        assert!(matches!(drive(&mut c, &ctx, &shared.limits), Status::Keep));
        assert_eq!(script(&c).written, b"END\r\nEND\r\n");
        assert_eq!((c.rpos, c.scanned), (c.rend, 0));
        // still closed past the 2 MiB a multi-get line may have
        let mut c = scripted(&[], false);
        let piece = vec![b'k'; 64 * 1024];
        let mut status = Status::Keep;
        for _ in 0..40 {
            let chunk = if c.rend == 0 {
                b"get ".to_vec()
            } else {
                piece.clone()
            };
            script_mut(&mut c).chunks.push_back(chunk);
            c.readable = true;
            status = drive(&mut c, &ctx, &shared.limits);
            if matches!(status, Status::Close) {
                break;
            }
        }
        assert!(matches!(status, Status::Close), "an endless line is closed");
        assert!(c.rend > protocol::MAX_GET_LINE_LEN - 64 * 1024);
    }

    /// A multi-get paused at the output limit goes on from where it
    /// stopped without parsing its line again or walking the keys already
    /// answered (8,000 250-byte keys of 100 KB values cost 18 x memcached's
    /// CPU that way), and its reply is the same.
    #[test]
    fn a_paused_multiget_resumes_without_parsing_again() {
        let shared = one_worker();
        let ctx = shared.context(shared.stats.worker(0));
        let value = vec![b'v'; 100_000];
        let mut setup = Vec::new();
        for k in ["a", "bb", "ccc"] {
            setup.extend_from_slice(format!("set {k} 7 0 {}\r\n", value.len()).as_bytes());
            setup.extend_from_slice(&value);
            setup.extend_from_slice(b"\r\n");
        }
        let mut c = scripted(&[&setup], false);
        drive(&mut c, &ctx, &shared.limits);
        assert_eq!(script(&c).written, b"STORED\r\n".repeat(3));
        // irregular spaces, misses, repeats
        let keys = "  a bb   ccc nope a  ccc bb a   ccc bb bb a ";
        for gat in [false, true] {
            let line = if gat {
                format!("gats 0 {keys}\r\n")
            } else {
                format!("get {keys}\r\n")
            };
            let mut c = scripted(&[line.as_bytes()], false);
            script_mut(&mut c).room = 0;
            drive(&mut c, &ctx, &shared.limits);
            assert!(c.resume > 0, "paused at the output limit");
            let p = c.paused.expect("the paused request is kept");
            assert_eq!(p.consumed, line.len());
            // the line is not read again: spoil the command word
            c.rbuf[c.rpos..c.rpos + 3].copy_from_slice(b"xxx");
            let mut pauses = 1;
            while c.resume != 0 || !c.wbuf.is_empty() {
                script_mut(&mut c).room = 150_000;
                drive(&mut c, &ctx, &shared.limits);
                pauses += 1;
            }
            assert!(pauses > 3, "{pauses}");
            let mut want = Vec::new();
            for k in keys.split_whitespace().filter(|k| *k != "nope") {
                let cas = if gat {
                    let Some(at) = find(&script(&c).written[want.len()..], b"\r\n") else {
                        panic!("short reply")
                    };
                    let header = &script(&c).written[want.len()..want.len() + at];
                    let text = String::from_utf8_lossy(header);
                    format!(" {}", text.rsplit(' ').next().unwrap())
                } else {
                    String::new()
                };
                want.extend_from_slice(format!("VALUE {k} 7 {}{cas}\r\n", value.len()).as_bytes());
                want.extend_from_slice(&value);
                want.extend_from_slice(b"\r\n");
            }
            want.extend_from_slice(b"END\r\n");
            assert!(script(&c).written == want, "reply differs (gat: {gat})");
            assert!(c.paused.is_none());
            assert_eq!((c.rpos, c.rend), (c.rend, c.rend));
        }
    }

    /// A datagram's replies are bounded: a multi-get whose reply would pass
    /// UDP_REPLY_MAX answers an error instead (before, one 1.4 KB datagram
    /// took the server to 662 MiB resident at -m 64), and the requests
    /// around it are answered.
    #[test]
    fn a_udp_reply_is_bounded() {
        let shared = one_worker();
        let ctx = shared.context(shared.stats.worker(0));
        let value = vec![b'u'; 1_000_000];
        let mut set = format!("set b 0 0 {}\r\n", value.len()).into_bytes();
        set.extend_from_slice(&value);
        set.extend_from_slice(b"\r\n");
        let mut out = Vec::new();
        udp_execute(&ctx, &set, &shared.limits, &mut out);
        assert_eq!(out, b"STORED\r\n");
        let one = format!("VALUE b 0 {}\r\n", value.len());
        // a reply under the limit is whole
        out.clear();
        udp_execute(&ctx, b"get b b b\r\n", &shared.limits, &mut out);
        assert_eq!(out.len(), 3 * (one.len() + value.len() + 2) + 5);
        assert!(out.ends_with(b"\r\nEND\r\n"));
        // one past it is refused, and the requests around it answered
        let many = format!("get{}\r\n", " b".repeat(690));
        let payload = format!("get nope\r\n{many}version\r\n");
        out.clear();
        udp_execute(&ctx, payload.as_bytes(), &shared.limits, &mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("END\r\nSERVER_ERROR out of memory writing get response\r\nVERSION "),
            "{:?}",
            &text[..text.len().min(200)]
        );
        assert!(
            out.capacity() < 2 * (UDP_REPLY_MAX + value.len()),
            "{}",
            out.capacity()
        );
    }

    fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        hay.windows(needle.len()).position(|w| w == needle)
    }

    fn script(c: &Conn) -> &Script {
        match &c.stream {
            Stream::Script(s) => s,
            _ => unreachable!(),
        }
    }

    fn one_worker() -> Shared {
        Shared::new(Config::from_args(["ferrocache", "-t", "1"]).unwrap())
    }

    /// A request that arrives after the read that emptied the socket waits
    /// for its own readiness event: the turn ends once what was read is
    /// answered, so a client that sends its next request the moment it has
    /// a reply cannot keep the worker to itself while the worker's other
    /// connections wait (the multiget p99 of 4 ms: 20 requests in a row for
    /// each of 9 connections before a yielded one was answered).
    #[test]
    fn a_turn_ends_with_the_read_that_emptied_the_socket() {
        let shared = one_worker();
        let ctx = shared.context(shared.stats.worker(0));
        let mut c = scripted(&[b"get a\r\n", b"get b\r\n"], false);
        assert!(matches!(drive(&mut c, &ctx, &shared.limits), Status::Keep));
        assert_eq!(
            script(&c).written,
            b"END\r\n",
            "only the first get answered"
        );
        assert_eq!(script(&c).chunks.len(), 1, "the second get is left unread");
        assert!(!c.readable);
        // its readiness event
        c.readable = true;
        assert!(matches!(drive(&mut c, &ctx, &shared.limits), Status::Keep));
        assert_eq!(script(&c).written, b"END\r\nEND\r\n");
        assert!(script(&c).chunks.is_empty());
    }

    /// A read that fills the buffer may have left more behind: it is
    /// followed by another in the same turn.
    #[test]
    fn a_full_read_is_followed_by_another() {
        let shared = one_worker();
        let ctx = shared.context(shared.stats.worker(0));
        // 16 KiB of one get (a long multi-get line, all misses), then
        // a second get that arrived with it
        let mut big = b"get".to_vec();
        while big.len() < READ_CHUNK - 2 - 2 {
            big.extend_from_slice(b" k");
        }
        big.resize(READ_CHUNK - 2, b'k');
        big.extend_from_slice(b"\r\n");
        assert_eq!(big.len(), READ_CHUNK);
        let mut c = scripted(&[&big, b"get b\r\n"], false);
        assert!(matches!(drive(&mut c, &ctx, &shared.limits), Status::Keep));
        assert_eq!(script(&c).written, b"END\r\nEND\r\n");
        assert!(script(&c).chunks.is_empty());
        assert!(!c.readable);
    }

    /// Once the poller has reported the peer's end closed, a short read does
    /// not end the turn: the end of stream is read and the connection closed
    /// after its reply (no new event would come for it).
    #[test]
    fn a_closed_peer_is_read_to_the_end() {
        let shared = one_worker();
        let ctx = shared.context(shared.stats.worker(0));
        let mut c = scripted(&[b"get a\r\n"], true);
        c.peer_closed = true;
        assert!(matches!(drive(&mut c, &ctx, &shared.limits), Status::Close));
        assert_eq!(script(&c).written, b"END\r\n");
    }

    /// Over real sockets: a client that sends a request and shuts its side
    /// at once gets the reply and then the end of stream, whether the server
    /// saw the data and the FIN in one event or two, on a new connection or
    /// on one the server had already emptied.
    #[test]
    fn request_then_half_close_is_answered_and_closed() {
        let (handle, addr) = one_worker_on_loopback();
        for i in 0..100 {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut want = String::new();
            if i % 2 == 1 {
                roundtrip(&mut s, b"set k 0 0 1\r\nv\r\n", b"STORED\r\n");
            } else {
                s.write_all(b"set k 0 0 1\r\nv\r\n").unwrap();
                want.push_str("STORED\r\n");
            }
            s.write_all(b"get k\r\n").unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            want.push_str("VALUE k 0 1\r\nv\r\nEND\r\n");
            let mut got = Vec::new();
            let r = s.read_to_end(&mut got);
            assert!(r.is_ok(), "connection {i}: no end of stream: {r:?}");
            assert_eq!(String::from_utf8_lossy(&got), want, "connection {i}");
        }
        handle.shutdown();
    }

    #[test]
    fn listen_specs_resolve() {
        let v4 = resolve_listen(Some("127.0.0.1"), 11211).unwrap();
        assert_eq!(v4, vec!["127.0.0.1:11211".parse().unwrap()]);
        let v6 = resolve_listen(Some("::1"), 11211).unwrap();
        assert_eq!(v6, vec!["[::1]:11211".parse().unwrap()]);
        let any = resolve_listen(None, 6000).unwrap();
        assert_eq!(any, vec!["[::]:6000".parse().unwrap()]);
        let host = resolve_listen(Some("localhost"), 7000).unwrap();
        assert!(host.iter().all(|a| a.port() == 7000) && !host.is_empty());
    }
}
