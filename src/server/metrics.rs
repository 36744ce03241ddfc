//! The Prometheus endpoint (`-o metrics_listen=IP:PORT`): its listener and
//! its own thread, which answers `GET /metrics` with the exposition of the
//! `stats` reports (`protocol::metrics`).
//!
//! Owns the endpoint's socket and thread, and its bounds: one connection
//! at a time, a request head of at most `MAX_REQUEST` bytes, and a few
//! seconds to send it and read the reply, after which the connection is
//! closed. Must not run on a worker: a scrape reads the counters the
//! workers publish and locks each shard briefly, as `stats` does, and a
//! slow or hostile client holds only this thread.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use log::{debug, warn};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use super::{Shared, WAKER};
use crate::command;
use crate::protocol::metrics::{self as wire, HttpRequest, MAX_REQUEST};

const LISTENER: Token = Token(0);

/// How long a client may take to send its request, and to take the reply.
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// After the reply: how long, and how many bytes, the client's leftover
/// input is read and dropped before the close.
const LINGER: Duration = Duration::from_millis(200);
const LINGER_BYTES: usize = 64 * 1024;

/// The bound endpoint, ready to be run on its own thread.
pub(super) struct Endpoint {
    poll: Poll,
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Endpoint {
    /// Binds `addr` (start-up fails if it cannot: the operator asked for it).
    pub(super) fn bind(
        addr: SocketAddr,
        shared: &Arc<Shared>,
    ) -> io::Result<(Endpoint, SocketAddr)> {
        let std = std::net::TcpListener::bind(addr)?;
        std.set_nonblocking(true)?;
        let bound = std.local_addr()?;
        let mut listener = TcpListener::from_std(std);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        shared.add_waker(Arc::new(Waker::new(poll.registry(), WAKER)?));
        let endpoint = Endpoint {
            poll,
            listener,
            shared: Arc::clone(shared),
        };
        Ok((endpoint, bound))
    }

    /// Serves scrapes, one connection at a time, until the server stops.
    pub(super) fn run(mut self) {
        let mut events = Events::with_capacity(8);
        while !self.shared.stopping.load(Ordering::Relaxed) {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() != io::ErrorKind::Interrupted {
                    warn!("metrics endpoint: poll failed: {}", e);
                    return;
                }
            }
            loop {
                match self.listener.accept() {
                    Ok((stream, peer)) => {
                        if let Err(e) = self.serve(stream.into()) {
                            debug!("metrics endpoint: {}: {}", peer, e);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // e.g. out of descriptors: try again at the next event
                        warn!("metrics endpoint: accept failed: {}", e);
                        break;
                    }
                }
            }
        }
    }

    /// Reads one request head and answers it; the connection is closed
    /// after the reply.
    fn serve(&self, mut stream: TcpStream) -> io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(IO_TIMEOUT))?;
        stream.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut head = Vec::with_capacity(512);
        let mut buf = [0u8; 1024];
        let request = loop {
            if wire::head_complete(&head) {
                break wire::parse_request(&head);
            }
            if head.len() >= MAX_REQUEST {
                break HttpRequest::Bad;
            }
            let room = (MAX_REQUEST - head.len()).min(buf.len());
            let n = stream.read(&mut buf[..room])?;
            if n == 0 {
                return Ok(());
            }
            head.extend_from_slice(&buf[..n]);
        };
        let reply = match request {
            HttpRequest::Metrics => {
                let ctx = self.shared.context(&self.shared.stats.acceptor, -1);
                wire::response(200, &wire::render(&command::stats::snapshot(&ctx)))
            }
            HttpRequest::NotFound => wire::response(404, "try /metrics\n"),
            HttpRequest::NotAllowed => wire::response(405, "GET only\n"),
            HttpRequest::Bad => wire::response(400, "bad request\n"),
        };
        stream.write_all(&reply)?;
        // what the client still sends is read and dropped for a moment (at
        // most LINGER_BYTES), so that closing with unread input does not
        // reset the connection before the client has read the reply
        stream.shutdown(std::net::Shutdown::Write)?;
        stream.set_read_timeout(Some(LINGER))?;
        let mut dropped = 0;
        while dropped < LINGER_BYTES {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => dropped += n,
            }
        }
        Ok(())
    }
}
