//! Listeners and the accept thread.
//!
//! Owns resolving and binding `-l`/`-p`/`-s` addresses and the accept
//! thread (`Acceptor`): it applies `-c` and hands each accepted stream to a
//! worker, in turn. Must not read or write a connection beyond the one line
//! that refuses it over `-c`.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::unix::io::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::Sender;
use log::{debug, error, trace, warn};
use mio::net::{TcpListener, UnixListener};
use mio::{Events, Poll, Waker};

use super::transport::Stream;
use super::Shared;
use crate::stats::bump;

/// How long the accept thread pauses when out of file descriptors.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Resolves one `-l` entry (already split by `config`) with its port. `*`
/// binds the IPv6 wildcard, which on Linux also takes IPv4.
pub(super) fn resolve_listen(host: Option<&str>, port: u16) -> io::Result<Vec<SocketAddr>> {
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

pub(super) fn bind_tcp(addr: SocketAddr, backlog: i32) -> io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    // std listens with its own backlog; listen() again sets memcached's -b.
    // SAFETY: plain syscall on a socket we own.
    unsafe {
        libc::listen(l.as_raw_fd(), backlog);
    }
    l.set_nonblocking(true)?;
    Ok(l)
}

pub(super) enum Listener {
    Tcp(TcpListener, String),
    Unix(UnixListener, String),
}

pub(super) struct Acceptor {
    pub(super) poll: Poll,
    pub(super) listeners: Vec<Listener>,
    pub(super) workers: Vec<(Sender<Stream>, Arc<Waker>)>,
    pub(super) next: usize,
    pub(super) shared: Arc<Shared>,
}

impl Acceptor {
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
