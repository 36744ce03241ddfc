//! A worker thread: its event loop and the connections it owns.
//!
//! Owns one `mio::Poll`, the connections handed to this worker (taking them
//! in, running their turns, closing them, idle timeout, drain on stop), its
//! watchers and its share of the UDP sockets. Must not interpret bytes:
//! each connection's turn is `conn::drive`.

use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use log::{debug, error, warn};
use mio::event::Source;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use super::conn::{self, drive, flush, Conn};
use super::pipeline::Step;
use super::transport::Stream;
use super::udp::Udp;
use super::{Shared, WAKER};
use crate::protocol::admin as admin_proto;
use crate::stats::bump;

/// Tokens of a worker's poller: its waker is `WAKER`, its UDP sockets count
/// up from here, its connections are their slab keys.
const UDP_BASE: usize = usize::MAX - 1024;

/// On SIGTERM (or `shutdown`), how long workers go on serving connections
/// that still have replies in flight, and how often they look again.
const DRAIN_LIMIT: Duration = Duration::from_millis(800);
const DRAIN_CHECK: Duration = Duration::from_millis(10);

/// How the accept thread reaches a worker: the channel its new streams go
/// over, and the waker that tells it to look.
pub(super) struct Inbox {
    tx: Sender<Stream>,
    waker: Arc<Waker>,
}

impl Inbox {
    pub(super) fn send(&self, stream: Stream) {
        if self.tx.send(stream).is_ok() {
            let _ = self.waker.wake();
        }
    }
}

/// One worker thread's event loop and everything it owns.
pub(super) struct Worker {
    id: usize,
    /// This worker's own waker (watchers wake it when lines arrive).
    waker: Arc<Waker>,
    poll: Poll,
    rx: Receiver<Stream>,
    shared: Arc<Shared>,
    conns: Slab<Conn>,
    ready: Vec<usize>,
    udp: Udp,
    /// Keys of this worker's watching connections.
    watchers: Vec<usize>,
    /// Set once the server is stopping: connections with replies still in
    /// flight are served until then, the rest are closed.
    drain_until: Option<Instant>,
}

impl Worker {
    /// Worker `id`: its poller with its waker and a handle on each UDP
    /// socket registered, and the inbox the accept thread hands it
    /// connections through.
    pub(super) fn new(
        id: usize,
        shared: &Arc<Shared>,
        udp_sockets: &[std::net::UdpSocket],
    ) -> io::Result<(Worker, Inbox)> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (tx, rx) = crossbeam_channel::unbounded();
        let udp = Udp::register(udp_sockets, poll.registry(), UDP_BASE)?;
        shared.add_waker(Arc::clone(&waker));
        let inbox = Inbox {
            tx,
            waker: Arc::clone(&waker),
        };
        let worker = Worker {
            id,
            waker,
            poll,
            rx,
            shared: Arc::clone(shared),
            conns: Slab::new(),
            ready: Vec::new(),
            drain_until: None,
            udp,
            watchers: Vec::new(),
        };
        Ok((worker, inbox))
    }

    pub(super) fn run(mut self) {
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
            conn.requests.locked = self.shared.auth.clone();
            if let Err(e) = self.poll.registry().register(
                &mut conn.stream,
                Token(key),
                Interest::READABLE | Interest::WRITABLE,
            ) {
                warn!("cannot register connection: {}", e);
                self.forget(fd);
                continue;
            }
            self.shared
                .seen
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(fd, Arc::clone(&conn.seen));
            entry.insert(conn);
            debug!("<{} new auto-negotiating client connection", fd);
            if self.shared.watch.wants(admin_proto::watch::CONNEVENTS) {
                let peer = self.peer_of(fd);
                self.shared.watch.log_conn(fd, &peer, None);
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
        self.shared
            .seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&fd);
        self.shared.curr_conns.fetch_sub(1, Ordering::SeqCst);
    }

    fn close(&mut self, key: usize) {
        if self.conns.contains(key) {
            let mut c = self.conns.remove(key);
            c.stream.close_notify();
            let _ = c.stream.deregister(self.poll.registry());
            conn::unmeter(&mut c, &self.shared.stats.worker(self.id).bufs);
            if let Some(w) = c.watcher.take() {
                self.shared.watch.unregister(&w);
                self.watchers.retain(|&k| k != key);
            }
            debug!("<{} connection closed.", c.fd);
            if self.shared.watch.wants(admin_proto::watch::CONNEVENTS) {
                let peer = self.peer_of(c.fd);
                let reason = if c.closing { "normal" } else { "error" };
                self.shared.watch.log_conn(c.fd, &peer, Some(reason));
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
            .filter(|(_, c)| c.watcher.is_some() || c.all_sent())
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
        let shared = Arc::clone(&self.shared);
        let worker = shared.stats.worker(self.id);
        for k in idle {
            debug!("closing idle connection");
            bump(&worker.idle_kicks, 1);
            self.close(k);
        }
    }

    fn run_conn(&mut self, key: usize) {
        let shared = &*self.shared;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let worker = shared.stats.worker(self.id);
        let ctx = shared.context(worker, conn.fd);
        let step = match catch_unwind(AssertUnwindSafe(|| drive(conn, &ctx, &shared.limits))) {
            Ok(s) => s,
            Err(_) => {
                error!("panic while serving connection {}; closing it", conn.fd);
                bump(&worker.worker_panics, 1);
                Step::Close
            }
        };
        match step {
            // (`drive` ends a turn with Wait, Yield, Close or Watch)
            Step::Wait | Step::Executed | Step::NeedInput => {}
            Step::Yield => {
                bump(&worker.conn_yields, 1);
                if !conn.queued {
                    conn.queued = true;
                    self.ready.push(key);
                }
            }
            Step::Close => self.close(key),
            Step::Watch(mask) => {
                let waker = Arc::clone(&self.waker);
                let w = shared.watch.register(
                    mask,
                    Box::new(move || {
                        let _ = waker.wake();
                    }),
                );
                debug!("<{} watching (mask {:#x})", conn.fd, mask);
                conn.watcher = Some(w);
                // input is only read to notice a close from now on
                conn.input.release();
                self.watchers.push(key);
                // lines may already be waiting
                self.run_conn(key);
            }
        }
    }

    fn serve_udp(&mut self, i: usize) {
        let shared = &*self.shared;
        // memcached's watch lines show a UDP request's socket as its `cfd`
        let ctx = shared.context(shared.stats.worker(self.id), self.udp.fd(i));
        self.udp.serve(i, &ctx, &shared.limits);
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

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
}
