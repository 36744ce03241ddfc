//! The byte streams a connection reads and writes.
//!
//! Owns `Stream`: plain TCP or a unix socket, read, written and registered
//! with a worker's poller. Must not know what the bytes mean.

use std::io::{self, Read, Write};
use std::os::unix::io::AsRawFd;

use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};

/// A connected client socket.
pub(super) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    /// Unit tests: reads and writes scripted in memory.
    #[cfg(test)]
    Script(Script),
}

impl Stream {
    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            #[cfg(test)]
            Stream::Script(s) => s.read(buf),
        }
    }

    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            #[cfg(test)]
            Stream::Script(s) => s.write(buf),
        }
    }

    pub(super) fn fd(&self) -> i32 {
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

#[cfg(test)]
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

#[cfg(test)]
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
