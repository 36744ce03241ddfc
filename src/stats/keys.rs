//! The most read keys over a recent window, from sampled requests: each
//! worker keeps a small Space-Saving sketch (a bounded table of keys and
//! counts; a new key takes the place of the least counted one) per minute,
//! and the metrics endpoint merges the workers' current and previous
//! minutes (so it shows the last one to two minutes).
//!
//! Owns the sketch, its window and its bounds (`CAPACITY` keys of at most
//! 250 bytes per worker). Must not decide how a key is shown (the
//! exposition hashes it or not) nor be on the path of a request that is
//! not sampled.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Keys with their (sampled) read counts.
pub type KeyCounts = Vec<(Box<[u8]>, u64)>;

/// Keys a worker's sketch holds.
pub const CAPACITY: usize = 64;

/// Seconds a window lasts; the endpoint shows the current and the
/// previous one.
pub const WINDOW_SECS: u32 = 60;

/// Keys one sampled request may add (a long multi-get counts its first
/// ones only, so that a sample costs a bounded time).
pub const KEYS_PER_REQUEST: usize = 16;

/// One worker's sampled reads per key.
#[derive(Debug, Default)]
pub struct KeySampler(Mutex<Windows>);

#[derive(Debug, Default)]
struct Windows {
    /// The clock second the current window began.
    start: u32,
    current: KeyCounts,
    last: KeyCounts,
}

impl Windows {
    /// Moves on to the window `now` falls in.
    fn roll(&mut self, now: u32) {
        let age = now.saturating_sub(self.start);
        if age >= 2 * WINDOW_SECS {
            // nothing was sampled in the window before this one
            self.last = Vec::new();
            self.current.clear();
            self.start = now;
        } else if age >= WINDOW_SECS {
            self.last = std::mem::take(&mut self.current);
            self.start += WINDOW_SECS;
        }
    }
}

impl KeySampler {
    fn lock(&self) -> MutexGuard<'_, Windows> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a sampled read of `key` at clock second `now`.
    pub fn record(&self, now: u32, key: &[u8]) {
        let mut w = self.lock();
        w.roll(now);
        let table = &mut w.current;
        if let Some(entry) = table.iter_mut().find(|(k, _)| &**k == key) {
            entry.1 += 1;
        } else if table.len() < CAPACITY {
            table.push((key.into(), 1));
        } else if let Some(min) = table.iter_mut().min_by_key(|(_, n)| *n) {
            // Space-Saving: the newcomer inherits the least count, so a
            // key's count is never under its true one
            *min = (key.into(), min.1 + 1);
        }
    }

    /// The current and the previous window's keys and counts (as of
    /// `now`), summed.
    pub fn recent(&self, now: u32) -> KeyCounts {
        let mut w = self.lock();
        w.roll(now);
        top(&[w.last.clone(), w.current.clone()], 2 * CAPACITY)
    }
}

/// The `n` most counted keys of several sketches' windows, counts summed,
/// most counted first (ties by key).
pub fn top(windows: &[KeyCounts], n: usize) -> KeyCounts {
    let mut all = KeyCounts::new();
    for (key, count) in windows.iter().flatten() {
        match all.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 += count,
            None => all.push((key.clone(), *count)),
        }
    }
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(n);
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_keys_over_the_current_and_previous_window() {
        let s = KeySampler::default();
        for _ in 0..5 {
            s.record(10, b"hot");
        }
        s.record(20, b"cold");
        assert_eq!(s.recent(30).len(), 2);
        // the next window: the previous one still counts
        s.record(WINDOW_SECS + 1, b"hot");
        let recent = s.recent(WINDOW_SECS + 2);
        assert_eq!(recent[0], ((*b"hot").into(), 6));
        // two windows on, only what was read since
        s.record(2 * WINDOW_SECS + 1, b"new");
        assert_eq!(
            s.recent(2 * WINDOW_SECS + 2),
            vec![((*b"hot").into(), 1), ((*b"new").into(), 1)]
        );
        // long idle: nothing
        assert!(s.recent(10 * WINDOW_SECS).is_empty());
    }

    #[test]
    fn a_full_table_keeps_the_most_counted_and_stays_bounded() {
        let s = KeySampler::default();
        for _ in 0..100 {
            s.record(0, b"hot");
        }
        for i in 0..1000u32 {
            s.record(0, &i.to_be_bytes());
        }
        let last = s.recent(1);
        assert_eq!(last.len(), CAPACITY);
        let best = top(&[last], 1);
        assert_eq!(best, vec![((*b"hot").into(), 100)]);
    }

    #[test]
    fn top_sums_over_workers() {
        let a = vec![((*b"x").into(), 3), ((*b"y").into(), 5)];
        let b = vec![((*b"x").into(), 4)];
        let t = top(&[a, b], 2);
        assert_eq!(t, vec![((*b"x").into(), 7), ((*b"y").into(), 5)]);
    }
}
