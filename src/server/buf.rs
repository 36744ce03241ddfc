//! A connection's read and write buffers.
//!
//! Owns how they grow, move their bytes and are given back (`READ_CHUNK`,
//! `KEEP_BUF`), the output limit (`OUT_LIMIT`), and moving bytes between
//! them and the connection's [`Stream`]. Must not parse or decide what to
//! send: which bytes form a request, and what answers it, is the request
//! loop's (`pipeline`).

use std::io::{self, IoSlice};

use super::transport::Stream;
use crate::protocol::Splices;
use crate::stats::{bump, WorkerStats};

/// A reply buffer past this many bytes stops the connection from executing
/// more requests (and a multi-get pauses) until the client reads.
pub(super) const OUT_LIMIT: usize = 256 * 1024;
/// Each read asks the kernel for at least this much.
pub(super) const READ_CHUNK: usize = 16 * 1024;
/// Buffers that grew past this (a large value) are given back once empty.
const KEEP_BUF: usize = 64 * 1024;

/// Bytes received; `buf[pos..end]` is not yet parsed. The parser borrows
/// them in place, so a request stays where it arrived until it is done.
#[derive(Default)]
pub(super) struct ReadBuf {
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// `buf[pos..pos + scanned]` holds no `\n`: the start of a line still
    /// arriving, not searched again when more of it comes.
    scanned: usize,
}

impl ReadBuf {
    /// The bytes received and not yet parsed.
    pub(super) fn unread(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    /// Bytes not yet parsed (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.end - self.pos
    }

    pub(super) fn is_empty(&self) -> bool {
        self.pos == self.end
    }

    /// Bytes allocated.
    pub(super) fn capacity(&self) -> usize {
        self.buf.len()
    }

    /// Drops up to `n` bytes from the front (a request done, or part of a
    /// value being thrown away); returns how many of the `n` have not
    /// arrived yet, to be thrown away as they come.
    pub(super) fn skip(&mut self, n: usize) -> usize {
        let avail = self.end - self.pos;
        self.scanned = 0;
        if n > avail {
            self.pos = self.end;
            n - avail
        } else {
            self.pos += n;
            0
        }
    }

    /// Drops everything received (nothing after `watch` is executed).
    pub(super) fn discard(&mut self) {
        self.pos = self.end;
        self.scanned = 0;
    }

    /// The line at the front is still arriving, known without searching
    /// again the bytes an earlier search went through: a 2 MiB `get` line
    /// sent 20 bytes at a time is searched once, not 100,000 times.
    pub(super) fn line_unfinished(&self) -> bool {
        let input = self.unread();
        self.scanned > 0 && self.scanned <= input.len() && !input[self.scanned..].contains(&b'\n')
    }

    /// After a parse found the front request incomplete: if no line end
    /// has arrived, remembers that none of these bytes holds one.
    pub(super) fn note_incomplete(&mut self) {
        let input = &self.buf[self.pos..self.end];
        if !input[self.scanned.min(input.len())..].contains(&b'\n') {
            self.scanned = input.len();
        }
    }

    /// Reads what `stream` holds into the free space, after moving the
    /// unread bytes to the front and making room for at least
    /// `READ_CHUNK` more (doubling the buffer when it must grow). Returns
    /// the bytes read and whether the read left room: a read that does not
    /// fill the free space has emptied the socket's receive queue.
    ///
    /// `room`: the bytes `-o read_buf_mem_limit` leaves. A connection with
    /// no buffer needs `READ_CHUNK` of it, or the read fails with
    /// `OutOfMemory` and reads nothing (memcached's fixed-size read
    /// buffer). Growing past that for a long line or a value is not
    /// refused: memcached reads those into memory of their own (a value
    /// into its item), bounded by `-I` and the line limits.
    pub(super) fn read_from(
        &mut self,
        stream: &mut Stream,
        room: u64,
    ) -> io::Result<(usize, bool)> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if self.buf.len() - self.end < READ_CHUNK {
            let want = (self.end + READ_CHUNK).max(self.buf.len() * 2);
            if self.buf.is_empty() && READ_CHUNK as u64 > room {
                return Err(io::ErrorKind::OutOfMemory.into());
            }
            self.buf.resize(want, 0);
        }
        let room = self.buf.len() - self.end;
        let n = stream.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok((n, n < room))
    }

    /// Gives back a buffer that grew past `KEEP_BUF` once all of it is
    /// parsed.
    pub(super) fn release_if_idle(&mut self) {
        if self.pos == self.end && self.buf.len() > KEEP_BUF {
            self.buf = Vec::new();
            self.pos = 0;
            self.end = 0;
        }
    }

    /// Gives the buffer back for good: a watching connection reads only to
    /// notice a close.
    pub(super) fn release(&mut self) {
        *self = ReadBuf::default();
    }

    /// Bytes the buffer holds room for (tests).
    #[cfg(test)]
    pub(super) fn allocated(&self) -> usize {
        self.buf.len()
    }

    /// Bytes known to hold no `\n` (tests).
    #[cfg(test)]
    pub(super) fn scanned(&self) -> usize {
        self.scanned
    }

    /// The unread bytes, to spoil in place (tests).
    #[cfg(test)]
    pub(super) fn unread_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.pos..self.end]
    }
}

/// Replies; `buf[pos..]` is not yet written, with the values sent from
/// the cache itself spliced between its bytes (see
/// [`crate::protocol::splice`]): each is written from where it lies, in
/// one vectored write with the bytes around it, and let go (its pin
/// released) once written.
#[derive(Default)]
pub(super) struct WriteBuf {
    buf: Vec<u8>,
    pos: usize,
    splices: Splices,
}

/// Slices one vectored write takes at most: a value and the bytes before
/// it are two, so 16 values of a multi-get go in one call.
const MAX_IOV: usize = 32;

impl WriteBuf {
    /// Bytes not yet written, values included.
    #[inline]
    pub(super) fn pending(&self) -> usize {
        self.buf.len() - self.pos + self.splices.unsent()
    }

    /// The buffer replies are appended to. Its length counts the bytes
    /// already written too, until all of it is written and it is emptied:
    /// a multi-get measures its pause point (`OUT_LIMIT`) against that.
    /// Bytes appended here go after every value already spliced in.
    pub(super) fn replies(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// The buffer and its splices, for a codec's sink that sends values
    /// from the cache (`TextReply::spliced`, `BinaryReply::spliced`).
    pub(super) fn parts(&mut self) -> (&mut Vec<u8>, &mut Splices) {
        (&mut self.buf, &mut self.splices)
    }

    /// Bytes and values appended since the buffer was last emptied (see
    /// [`Self::replies`]).
    pub(super) fn len(&self) -> usize {
        self.buf.len() + self.splices.total()
    }

    /// Drops the replies after `len` (as [`Self::len`] counts), not yet
    /// written: a binary connection closed by a bad frame loses the replies
    /// memcached would not have sent.
    pub(super) fn truncate(&mut self, len: usize) {
        let cut = self.splices.truncate(len).max(self.pos);
        self.buf.truncate(cut);
    }

    /// Bytes allocated.
    pub(super) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Gives everything back, written or not (the connection is closing,
    /// or idle under a memory limit): values held are let go.
    pub(super) fn release(&mut self) {
        *self = WriteBuf::default();
    }

    /// Writes pending replies until done or the stream is full. Err on a
    /// dead socket. Once all is written the buffer is emptied, and given
    /// back if it grew past `KEEP_BUF`, unless `keep` (a paused multi-get
    /// fills it again at once: freeing and growing a 256 KiB+ buffer for
    /// every pause cost page faults).
    pub(super) fn write_to(
        &mut self,
        stream: &mut Stream,
        stats: &WorkerStats,
        keep: bool,
    ) -> io::Result<()> {
        while self.pending() > 0 {
            let written = if self.splices.is_empty() {
                stream.write(&self.buf[self.pos..])
            } else {
                let mut iov = [IoSlice::new(&[]); MAX_IOV];
                let n = self.gather(&mut iov);
                stream.write_vectored(&iov[..n])
            };
            match written {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.advance(n);
                    bump(&stats.bytes_written, n as u64);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.buf.clear();
        self.pos = 0;
        if self.splices.total() != 0 {
            self.splices.clear();
        }
        if self.buf.capacity() > KEEP_BUF && !keep {
            self.buf = Vec::new();
        }
        Ok(())
    }

    /// The pending bytes in order, as slices (up to `iov`'s length): the
    /// buffer's bytes up to each value, then the value's unwritten part,
    /// then the bytes after the last. Returns how many slices it filled.
    fn gather<'a>(&'a self, iov: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        let mut at = self.pos;
        for (next, value) in self.splices.pending() {
            if n + 2 > iov.len() {
                return n;
            }
            if at < next {
                iov[n] = IoSlice::new(&self.buf[at..next]);
                n += 1;
            }
            iov[n] = IoSlice::new(value);
            n += 1;
            at = next;
        }
        if n < iov.len() && at < self.buf.len() {
            iov[n] = IoSlice::new(&self.buf[at..]);
            n += 1;
        }
        n
    }

    /// Counts `n` bytes as written, in the order `gather` lists them.
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let next = self.splices.next_at().unwrap_or(self.buf.len());
            let before = next - self.pos;
            if n <= before {
                self.pos += n;
                return;
            }
            self.pos = next;
            n -= before;
            let took = self.splices.written(n);
            if took == 0 {
                return;
            }
            n -= took;
        }
    }
}
