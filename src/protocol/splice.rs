//! Values a reply sends from the cache itself instead of copying them: a
//! codec writes the reply's bytes around a hole, and the connection's
//! writer sends the value from where it lies (vectored writes).
//!
//! Owns [`Shared`] (a value held for a reply) and [`Splices`] (where in a
//! reply's bytes each one goes, and the arithmetic of lengths with them).
//! Must not know what holds the bytes (the cache's pins) nor how they are
//! written (the server's).

use std::collections::VecDeque;

/// A value held for a reply: its bytes stay as they are while it lives.
pub type Shared = Box<dyn AsRef<[u8]> + Send>;

/// One value to send between a reply's bytes: before byte `at`.
pub struct Splice {
    pub at: usize,
    pub value: Shared,
}

impl Splice {
    pub fn len(&self) -> usize {
        self.value.as_ref().as_ref().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The values spliced into one output buffer, in order.
///
/// Lengths are counted as the buffer's are (see the server's `WriteBuf`):
/// [`Splices::total`] keeps the values already sent until the buffer is
/// emptied, so that a reply's length, bytes plus values, only grows while
/// it is being written.
#[derive(Default)]
pub struct Splices {
    list: VecDeque<Splice>,
    total: usize,
    /// Bytes of the values not yet written.
    unsent: usize,
    /// Bytes of the front value already written.
    front_sent: usize,
}

impl Splices {
    /// Adds `value` at byte offset `at` of the buffer (its end, when the
    /// codec writes it).
    pub fn push(&mut self, at: usize, value: Shared) {
        debug_assert!(self.list.back().is_none_or(|s| s.at <= at));
        let n = value.as_ref().as_ref().len();
        self.total += n;
        self.unsent += n;
        self.list.push_back(Splice { at, value });
    }

    /// Bytes of the values not yet written.
    #[inline]
    pub fn unsent(&self) -> usize {
        self.unsent
    }

    /// The values' unwritten bytes in order, each with the buffer offset
    /// it goes before.
    pub fn pending(&self) -> impl Iterator<Item = (usize, &[u8])> {
        let skip = self.front_sent;
        self.list.iter().enumerate().map(move |(i, sp)| {
            let bytes = sp.value.as_ref().as_ref();
            (sp.at, if i == 0 { &bytes[skip..] } else { bytes })
        })
    }

    /// Counts up to `n` bytes of the front value as written, letting go of
    /// it once all of it is; returns how many of the `n` it took.
    pub fn written(&mut self, n: usize) -> usize {
        let Some(front) = self.list.front() else {
            return 0;
        };
        let left = front.len() - self.front_sent;
        let took = n.min(left);
        self.unsent -= took;
        if took == left {
            self.front_sent = 0;
            self.list.pop_front();
        } else {
            self.front_sent += took;
        }
        took
    }

    /// Bytes of every value spliced since the buffer was last emptied,
    /// sent or not.
    pub fn total(&self) -> usize {
        self.total
    }

    /// No value is left to send.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Where the next value goes in the buffer, if one is left.
    pub fn next_at(&self) -> Option<usize> {
        self.list.front().map(|s| s.at)
    }

    /// Cuts the output back to `len`, counted as bytes plus values (a
    /// reply dropped after it was written, never into a value): drops the
    /// values from there on and returns the buffer length to cut to.
    pub fn truncate(&mut self, len: usize) -> usize {
        while let Some(last) = self.list.back() {
            let n = last.len();
            if last.at + self.total - n < len {
                break;
            }
            self.total -= n;
            self.unsent -= n;
            self.list.pop_back();
        }
        len.saturating_sub(self.total)
    }

    /// The buffer was emptied.
    pub fn clear(&mut self) {
        *self = Splices::default();
    }
}

/// The length of a sink's output: `out`'s bytes, and the values of
/// `splices` when it splices (see [`Splices::total`]).
#[inline]
pub fn output_len(out: &[u8], splices: Option<&Splices>) -> usize {
    out.len() + splices.map_or(0, Splices::total)
}

/// Cuts a sink's output back to `len`, as [`output_len`] counts it.
pub fn truncate_output(out: &mut Vec<u8>, splices: Option<&mut Splices>, len: usize) {
    let len = match splices {
        Some(s) => s.truncate(len),
        None => len,
    };
    out.truncate(len);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(n: usize) -> Shared {
        Box::new(vec![b'v'; n])
    }

    #[test]
    fn lengths_count_bytes_and_values() {
        let mut s = Splices::default();
        // bytes 0..10, a value of 100, bytes 10..12, a value of 50, bytes 12..20
        s.push(10, shared(100));
        s.push(12, shared(50));
        assert_eq!(s.total(), 150);
        // cutting at the second value's start (12 + 100) keeps the first
        assert_eq!(s.truncate(112), 12);
        assert_eq!(s.total(), 100);
        assert_eq!(s.unsent(), 100);
        assert_eq!(s.pending().count(), 1);
        // cutting at the first value's start drops it
        assert_eq!(s.truncate(10), 10);
        assert!(s.is_empty());
        assert_eq!(s.total(), 0);
    }

    #[test]
    fn a_sent_value_still_counts_until_cleared() {
        let mut s = Splices::default();
        s.push(5, shared(20));
        s.push(7, shared(10));
        assert_eq!(s.written(15), 15);
        assert_eq!(
            s.pending().map(|(at, b)| (at, b.len())).collect::<Vec<_>>(),
            [(5, 5), (7, 10)]
        );
        assert_eq!(s.written(15), 5, "the rest of the front value only");
        assert_eq!(s.unsent(), 10);
        assert_eq!(s.next_at(), Some(7));
        assert_eq!(s.written(10), 10);
        assert!(s.is_empty());
        assert_eq!(s.total(), 30);
        // a cut after them leaves them be
        assert_eq!(s.truncate(40), 10);
        s.clear();
        assert_eq!(s.total(), 0);
    }
}
