//! Listeners and the accept thread.
//!
//! Owns resolving and binding `-l`/`-p`/`-U`/`-s` addresses and the accept
//! thread (`Acceptor`): it applies `-c` and hands each accepted stream to a
//! worker, in turn. Must not read or write a connection beyond the one line
//! that refuses it over `-c`.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use log::{debug, error, trace, warn};
use mio::net::{TcpListener, UnixListener};
use mio::{Events, Interest, Poll, Registry, Token, Waker};

use super::tls::TlsStream;
use super::transport::Stream;
use super::worker::Inbox;
use super::{Shared, WAKER};
use crate::config::Config;
use crate::protocol::{Failure, Reply, Response, TextReply};
use crate::stats::bump;

/// How long the accept thread pauses when out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

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

/// A bound unix socket, named `unix:path`.
fn bind_unix(path: &Path, mask: u32) -> io::Result<Listener> {
    if path.exists() {
        // A stale socket from an earlier run; memcached removes it too.
        let _ = std::fs::remove_file(path);
    }
    let l = std::os::unix::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mask))?;
    l.set_nonblocking(true)?;
    let name = format!("unix:{}", path.display());
    Ok(Listener::Unix(UnixListener::from_std(l), name))
}

/// A listening socket with the name `stats conns` gives it
/// (`tcp:addr`, `tcp6:addr`, `unix:path`).
pub(super) enum Listener {
    /// `tls`: its connections speak TLS (`-Z`, unless given as `notls:`).
    Tcp {
        l: TcpListener,
        name: String,
        tls: bool,
    },
    Unix(UnixListener, String),
}

impl Listener {
    /// Its descriptor and name, for `stats conns`.
    pub(super) fn describe(&self) -> (i32, String) {
        match self {
            Listener::Tcp { l, name, .. } => (l.as_raw_fd(), name.clone()),
            Listener::Unix(l, name) => (l.as_raw_fd(), name.clone()),
        }
    }

    fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        match self {
            Listener::Tcp { l, .. } => registry.register(l, token, Interest::READABLE),
            Listener::Unix(l, _) => registry.register(l, token, Interest::READABLE),
        }
    }
}

/// Everything start-up binds: the listeners the accept thread serves, the
/// UDP sockets every worker reads, and what the server's handle reports.
#[derive(Default)]
pub(super) struct Bound {
    pub(super) listeners: Vec<Listener>,
    pub(super) tcp_addrs: Vec<SocketAddr>,
    pub(super) udp_sockets: Vec<std::net::UdpSocket>,
    pub(super) udp_addrs: Vec<SocketAddr>,
    /// The unix socket's path, removed once the server has stopped.
    pub(super) unix_path: Option<PathBuf>,
}

impl Bound {
    /// Binds what `config` asks for: the unix socket (`-s`), or for each
    /// `-l` address its UDP socket (with `-U`) and its TCP listener (unless
    /// the command line said `-p 0`).
    pub(super) fn bind(config: &Config) -> io::Result<Bound> {
        let mut bound = Bound::default();
        if let Some(path) = &config.unix_socket {
            bound.listeners.push(bind_unix(path, config.unix_mask)?);
            bound.unix_path = Some(path.clone());
        } else {
            let entries = config
                .listen_addrs()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            for entry in entries {
                let port = entry.port.unwrap_or(config.port);
                for addr in resolve_listen(entry.host.as_deref(), port)? {
                    if config.udp_port != 0 {
                        let udp_port = entry.port.unwrap_or(config.udp_port);
                        bound.add_udp(SocketAddr::new(addr.ip(), udp_port))?;
                    }
                    if config.tcp_enabled {
                        let tls = config.tls.enabled && !entry.notls;
                        bound.add_tcp(addr, config.backlog, tls)?;
                    }
                }
            }
        }
        if bound.listeners.is_empty() && bound.udp_sockets.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "no address to listen on",
            ));
        }
        Ok(bound)
    }

    fn add_udp(&mut self, addr: SocketAddr) -> io::Result<()> {
        let u = std::net::UdpSocket::bind(addr)?;
        u.set_nonblocking(true)?;
        self.udp_addrs.push(u.local_addr()?);
        self.udp_sockets.push(u);
        Ok(())
    }

    fn add_tcp(&mut self, addr: SocketAddr, backlog: i32, tls: bool) -> io::Result<()> {
        let l = bind_tcp(addr, backlog)?;
        let bound = l.local_addr()?;
        self.tcp_addrs.push(bound);
        let name = if bound.is_ipv4() {
            format!("tcp:{}", bound)
        } else {
            format!("tcp6:{}", bound)
        };
        self.listeners.push(Listener::Tcp {
            l: TcpListener::from_std(l),
            name,
            tls,
        });
        Ok(())
    }
}

/// The accept thread: its poller over the listeners, and the workers it
/// hands connections to, in turn.
pub(super) struct Acceptor {
    poll: Poll,
    listeners: Vec<Listener>,
    workers: Vec<Inbox>,
    next: usize,
    shared: Arc<Shared>,
}

impl Acceptor {
    /// The accept thread's poller, with its waker (for stopping) and the
    /// listeners registered.
    pub(super) fn new(
        mut listeners: Vec<Listener>,
        workers: Vec<Inbox>,
        shared: &Arc<Shared>,
    ) -> io::Result<Acceptor> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        shared.add_waker(waker);
        for (i, l) in listeners.iter_mut().enumerate() {
            l.register(poll.registry(), Token(i))?;
        }
        Ok(Acceptor {
            poll,
            listeners,
            workers,
            next: 0,
            shared: Arc::clone(shared),
        })
    }

    pub(super) fn run(mut self) {
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
                Listener::Tcp { l, name, tls } => l.accept().map(|(s, peer)| {
                    let _ = s.set_nodelay(true);
                    let peer = if peer.is_ipv4() {
                        format!("tcp:{}", peer)
                    } else {
                        format!("tcp6:{}", peer)
                    };
                    (Stream::Tcp(s), peer, name.clone(), *tls)
                }),
                Listener::Unix(l, name) => l
                    .accept()
                    .map(|(s, _)| (Stream::Unix(s), name.clone(), name.clone(), false)),
            };
            match accepted {
                Ok((stream, peer, listen, tls)) => self.hand_over(stream, peer, listen, tls),
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

    /// Refuses `stream` over `-c`, or wraps it in TLS (`tls`) and passes it
    /// to the next worker.
    fn hand_over(&mut self, mut stream: Stream, peer: String, listen: String, tls: bool) {
        let stats = &self.shared.stats.acceptor;
        let max = self.shared.config.max_connections;
        if self.shared.curr_conns.load(Ordering::SeqCst) >= max {
            // memcached's answer when over -c: a last word, then close.
            let mut refusal = Vec::new();
            TextReply::new(&mut refusal).respond(&Response::Failure(Failure::TooManyConnections));
            let _ = stream.write(&refusal);
            bump(&stats.rejected_connections, 1);
            debug!("rejected {}: too many open connections", peer);
            return;
        }
        if tls {
            stream = match self.wrap_tls(stream) {
                Ok(s) => s,
                Err(e) => {
                    warn!("{}: cannot start TLS: {}", peer, e);
                    return;
                }
            };
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
        let inbox = &self.workers[self.next % n];
        self.next = self.next.wrapping_add(1);
        inbox.send(stream);
    }
    /// The server side of a TLS session over the accepted TCP stream; its
    /// handshake runs in the worker, as bytes arrive.
    fn wrap_tls(&self, stream: Stream) -> io::Result<Stream> {
        let (Stream::Tcp(sock), Some(ctx)) = (stream, &self.shared.tls) else {
            return Err(io::Error::other("TLS asked for without a TLS context"));
        };
        Ok(Stream::Tls(Box::new(TlsStream::new(
            sock,
            Arc::clone(ctx),
        )?)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
