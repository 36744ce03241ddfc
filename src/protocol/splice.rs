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
}

impl Splices {
    /// Adds `value` at byte offset `at` of the buffer (its end, when the
    /// codec writes it).
    pub fn push(&mut self, at: usize, value: Shared) {
        debug_assert!(self.list.back().is_none_or(|s| s.at <= at));
        self.total += value.as_ref().as_ref().len();
        self.list.push_back(Splice { at, value });
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

    pub fn iter(&self) -> impl Iterator<Item = &Splice> {
        self.list.iter()
    }

    pub fn front(&self) -> Option<&Splice> {
        self.list.front()
    }

    /// The front value is sent: it is let go (its bytes still count in
    /// [`Self::total`]).
    pub fn pop_front(&mut self) -> Option<Splice> {
        self.list.pop_front()
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
            self.list.pop_back();
        }
        len.saturating_sub(self.total)
    }

    /// The buffer was emptied.
    pub fn clear(&mut self) {
        self.list.clear();
        self.total = 0;
    }
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
        assert_eq!(s.iter().count(), 1);
        // cutting at the first value's start drops it
        assert_eq!(s.truncate(10), 10);
        assert!(s.is_empty());
        assert_eq!(s.total(), 0);
    }

    #[test]
    fn a_sent_value_still_counts_until_cleared() {
        let mut s = Splices::default();
        s.push(5, shared(20));
        assert_eq!(s.pop_front().map(|v| v.len()), Some(20));
        assert_eq!(s.total(), 20);
        // a cut after it leaves it be
        assert_eq!(s.truncate(30), 10);
        s.clear();
        assert_eq!(s.total(), 0);
    }
}
