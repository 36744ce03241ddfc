//! The transport seam: the byte stream under a connection.
//!
//! Owns [`Stream`], a connected client's stream (plain TCP, a unix socket,
//! or TLS over TCP), and [`Transport`], the contract every kind of stream
//! keeps, so that the worker registers and the connection reads, writes and
//! flushes any of them the same way. Must not know what the bytes mean, nor
//! hold the connection's buffers or limits (those are `buf`'s).
//!
//! # What a transport that holds bytes of its own must do
//!
//! TLS (`server/tls.rs`) is the one that does: a rustls `ServerConnection`
//! over a `mio::net::TcpStream`, wrapped by the accept thread for a `-Z`
//! listener. Nothing in `worker` or `conn` knows it: they drive every
//! stream the way a non-blocking TLS stream needs.
//!
//! - **Interest.** The worker registers a stream once, readable and
//!   writable, edge-triggered, and never changes it, so a transport never
//!   asks for interest: an event of either kind runs the connection's turn
//!   (`conn::drive`), which first writes (its replies, then
//!   [`Transport::write_pending`]) and then reads while the socket may hold
//!   bytes.
//! - **Want read.** The handshake runs inside `read`: it feeds the handshake
//!   what the socket holds, writes the handshake's answers, and returns
//!   `WouldBlock` until application bytes are there; the next readable
//!   event calls it again. A handshake never blocks a worker.
//! - **Want write.** Bytes the socket would not take (handshake answers,
//!   sealed records, a close_notify) stay in the transport, bounded by its
//!   own buffers, and [`Transport::wants_write`] says so. The connection
//!   then calls `write_pending` at each turn (a writable event is one), and
//!   neither closes after `quit` nor counts itself drained at shutdown
//!   (`Conn::all_sent`) while `wants_write` holds.
//! - **Reads.** `read` returns plaintext. It returns fewer bytes than asked
//!   only once the socket said `WouldBlock` (or end of stream) and nothing
//!   decrypted is left: the connection takes a short read to mean the
//!   socket is drained and waits for the next readable event (see
//!   `conn::read_more`).
//! - **Writes.** `write` takes plaintext: `Ok(n)` once the `n` bytes are the
//!   transport's to deliver; `WouldBlock` when its own buffer is full.
//! - **fd** is the socket's: `stats conns`, logs and the watch stream name
//!   the connection by it.
//!
//! The accept thread's one-line refusal over `-c` is written on the plain
//! socket, before any TLS stream is made (memcached writes it the same
//! way: a TLS client sees a failed handshake).

use std::io::{self, IoSlice, Read, Write};
use std::os::unix::io::{AsRawFd, RawFd};

use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};

use super::tls::TlsStream;

/// What every kind of client stream does (see the module header for the
/// contract a TLS stream keeps). The poller registers it through `Source`.
pub(super) trait Transport: Source {
    /// Bytes from the client; `Ok(0)` at its end, `WouldBlock` when there
    /// are none yet.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;

    /// Bytes for the client; `WouldBlock` when none can be taken now.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;

    /// The slices' bytes in order, as far as they are taken (one `writev`
    /// on a socket: a reply's head, a value sent from the cache and the
    /// rest go in one call). By default the first non-empty slice only.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match bufs.iter().find(|b| !b.is_empty()) {
            Some(b) => self.write(b),
            None => Ok(0),
        }
    }

    /// The transport holds bytes of its own that are not on the wire yet
    /// (a plain socket never does).
    fn wants_write(&self) -> bool {
        false
    }

    /// Writes what [`Self::wants_write`] reports, as far as the socket
    /// takes it: `Ok` when done or when the socket is full, `Err` only for
    /// a dead socket.
    fn write_pending(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// The server is closing the connection: say so within the transport
    /// if it has a way (TLS: a close_notify), best effort, never blocking.
    fn close_notify(&mut self) {}

    /// The socket's descriptor.
    fn fd(&self) -> RawFd;
}

impl Transport for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Read::read(self, buf)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Write::write(self, buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        Write::write_vectored(self, bufs)
    }

    fn fd(&self) -> RawFd {
        self.as_raw_fd()
    }
}

impl Transport for UnixStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Read::read(self, buf)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Write::write(self, buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        Write::write_vectored(self, bufs)
    }

    fn fd(&self) -> RawFd {
        self.as_raw_fd()
    }
}

impl Transport for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        TlsStream::read(self, buf)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        TlsStream::write(self, buf)
    }

    fn wants_write(&self) -> bool {
        TlsStream::wants_write(self)
    }

    fn write_pending(&mut self) -> io::Result<()> {
        TlsStream::write_pending(self)
    }

    fn close_notify(&mut self) {
        TlsStream::close_notify(self)
    }

    fn fd(&self) -> RawFd {
        TlsStream::fd(self)
    }
}

/// A connected client stream.
///
/// An enum over the transports rather than a `Box<dyn Transport>`: no
/// allocation per connection, and the unit tests can look inside their
/// scripted stream. Only `transport` and `transport_ref` list the kinds.
pub(super) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// Boxed: a TLS session is some kilobytes, the others a descriptor.
    Tls(Box<TlsStream>),
    /// Unit tests: reads and writes scripted in memory.
    #[cfg(test)]
    Script(Script),
}

impl Stream {
    fn transport(&mut self) -> &mut dyn Transport {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
            Stream::Tls(s) => s.as_mut(),
            #[cfg(test)]
            Stream::Script(s) => s,
        }
    }

    fn transport_ref(&self) -> &dyn Transport {
        match self {
            Stream::Tcp(s) => s,
            Stream::Unix(s) => s,
            Stream::Tls(s) => s.as_ref(),
            #[cfg(test)]
            Stream::Script(s) => s,
        }
    }

    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.transport().read(buf)
    }

    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.transport().write(buf)
    }

    pub(super) fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.transport().write_vectored(bufs)
    }

    pub(super) fn wants_write(&self) -> bool {
        self.transport_ref().wants_write()
    }

    pub(super) fn write_pending(&mut self) -> io::Result<()> {
        self.transport().write_pending()
    }

    pub(super) fn close_notify(&mut self) {
        self.transport().close_notify()
    }

    pub(super) fn fd(&self) -> i32 {
        self.transport_ref().fd()
    }
}

impl Source for Stream {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.transport().register(r, t, i)
    }

    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        self.transport().reregister(r, t, i)
    }

    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        self.transport().deregister(r)
    }
}

/// A connection's input as the kernel would hand it over: each read
/// returns what had arrived by then (one chunk, or the part of it that
/// fits), then WouldBlock, or end of stream once `eof` is set.
#[cfg(test)]
pub(super) struct Script {
    pub chunks: std::collections::VecDeque<Vec<u8>>,
    pub eof: bool,
    pub written: Vec<u8>,
    /// Bytes the peer takes before writes would block.
    pub room: usize,
}

#[cfg(test)]
impl Transport for Script {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
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

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = buf.len().min(self.room);
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.room -= n;
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn fd(&self) -> RawFd {
        -1
    }
}

/// Never registered with a real poller.
#[cfg(test)]
impl Source for Script {
    fn register(&mut self, _: &Registry, _: Token, _: Interest) -> io::Result<()> {
        Ok(())
    }

    fn reregister(&mut self, _: &Registry, _: Token, _: Interest) -> io::Result<()> {
        Ok(())
    }

    fn deregister(&mut self, _: &Registry) -> io::Result<()> {
        Ok(())
    }
}
