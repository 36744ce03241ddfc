//! A TLS connection's stream (`-Z`): one more `Transport`.
//!
//! Owns the rustls server side of one TCP connection: feeding it what the
//! socket holds, running the handshake as bytes arrive (inside the worker's
//! event loop, never blocking it), handing plaintext to the connection and
//! sealing its replies, keeping what the socket would not take within
//! `ssl_wbuf_size`. Must not know what the plaintext means nor hold the
//! connection's buffers (those are `buf`'s), nor build the TLS context
//! (`crate::tls`).
//!
//! The contract it keeps (`transport` implements its `Transport` trait
//! with these methods, so that neither file imports the other) is the one
//! `transport` describes: a short read
//! means the socket is drained; `wants_write` while sealed bytes wait.
//! What a stalled or hostile handshake can make it hold is bounded by
//! rustls: one record being assembled (16 KiB and a little) and the
//! handshake messages it has not answered yet.

use std::io::{self, Read, Write};
use std::os::unix::io::{AsRawFd, RawFd};
use std::sync::Arc;

use log::debug;
use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::ServerConnection;

use crate::tls::TlsContext;

pub(super) struct TlsStream {
    sock: TcpStream,
    tls: ServerConnection,
    ctx: Arc<TlsContext>,
    /// The handshake has failed and was counted; nothing more is read.
    failed: bool,
}

impl TlsStream {
    /// The server side of a TLS connection on `sock`, handshake not begun.
    pub(super) fn new(sock: TcpStream, ctx: Arc<TlsContext>) -> io::Result<TlsStream> {
        let tls = ctx.accept().map_err(io::Error::other)?;
        Ok(TlsStream {
            sock,
            tls,
            ctx,
            failed: false,
        })
    }

    /// Plaintext already decrypted: `Some(Ok(0))` at the peer's clean
    /// close, `None` when there is none yet.
    fn take_plaintext(&mut self, buf: &mut [u8]) -> Option<io::Result<usize>> {
        match self.tls.reader().read(buf) {
            Ok(n) => Some(Ok(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            // the peer closed the socket without a close_notify: an end
            // of stream all the same, as memcached treats it
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Some(Ok(0)),
            Err(e) => Some(Err(e)),
        }
    }

    /// Reads one batch of records from the socket and opens them (running
    /// the handshake if it is not done). `Ok(false)` once the socket is
    /// drained.
    fn pull_records(&mut self) -> io::Result<bool> {
        match self.tls.read_tls(&mut self.sock) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(e),
        }
        if let Err(e) = self.tls.process_new_packets() {
            let handshaking = self.tls.is_handshaking();
            if handshaking && !self.failed {
                self.ctx.count_handshake_error();
                debug!("{}: TLS handshake failed: {}", self.fd(), e);
            }
            self.failed = true;
            // the alert rustls queued for the peer, if the socket takes it
            let _ = self.write_pending();
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        // handshake answers, session tickets
        self.write_pending()?;
        Ok(true)
    }
}

/// The `Transport` contract (see `transport`, which implements the trait
/// with these).
impl TlsStream {
    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Err(io::ErrorKind::InvalidData.into());
        }
        let mut filled = 0;
        loop {
            match self.take_plaintext(&mut buf[filled..]) {
                Some(Ok(0)) => return Ok(filled),
                Some(Ok(n)) => {
                    filled += n;
                    if filled == buf.len() {
                        return Ok(filled);
                    }
                    continue;
                }
                Some(Err(e)) => return if filled > 0 { Ok(filled) } else { Err(e) },
                None => {}
            }
            match self.pull_records() {
                Ok(true) => {}
                Ok(false) if filled > 0 => return Ok(filled),
                Ok(false) => return Err(io::ErrorKind::WouldBlock.into()),
                Err(_) if filled > 0 => return Ok(filled),
                Err(e) => return Err(e),
            }
        }
    }

    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Make room first: when this leaves sealed bytes behind, the socket
        // is full and a writable event will come.
        self.write_pending()?;
        let n = self.tls.writer().write(buf)?;
        self.write_pending()?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    pub(super) fn wants_write(&self) -> bool {
        self.tls.wants_write()
    }

    pub(super) fn write_pending(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// memcached ends its TLS connections with a close_notify too (an
    /// idle timeout, `quit`, shutdown), so clients that insist on one (as
    /// rustls does) see a clean end of stream.
    pub(super) fn close_notify(&mut self) {
        if !self.failed && !self.tls.is_handshaking() {
            self.tls.send_close_notify();
            let _ = self.write_pending();
        }
    }

    pub(super) fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl Source for TlsStream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.sock.register(r, t, i)
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.sock.reregister(r, t, i)
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        self.sock.deregister(r)
    }
}
