//! Coarse seconds clock and exptime → deadline conversion.
//!
//! Owns the server's notion of "now" in whole seconds since start-up (as
//! memcached's `current_time`), so that items carry 4-byte times. Must not do
//! I/O: the clock thread in `server` calls [`Clock::tick`].

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Relative exptimes up to this many seconds (30 days) count from now; larger
/// ones are absolute unix times, as in memcached.
pub const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;

/// Seconds since start-up, as stored in items. 0 in a deadline means "never".
pub type Secs = u32;

/// A deadline that has always passed: what negative exptimes map to.
pub const EXPIRED: Secs = 1;

/// The coarse clock. Reading it is one relaxed atomic load.
#[derive(Debug)]
pub struct Clock {
    /// Unix time of clock second 0.
    epoch_unix: u64,
    started: Instant,
    /// Starts at 2 so that [`EXPIRED`] (1) is always in the past.
    now: AtomicU32,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    pub fn new() -> Clock {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Clock {
            epoch_unix: unix.saturating_sub(2),
            started: Instant::now(),
            now: AtomicU32::new(2),
        }
    }

    /// Current coarse time in seconds since start-up.
    #[inline]
    pub fn now(&self) -> Secs {
        self.now.load(Ordering::Relaxed)
    }

    /// Re-reads the monotonic clock; called by the clock thread (and tests).
    pub fn tick(&self) -> Secs {
        let secs = self.started.elapsed().as_secs().min(u32::MAX as u64 - 3) as u32 + 2;
        self.now.store(secs, Ordering::Relaxed);
        secs
    }

    /// Moves the clock forward by `secs` (tests of expiry without sleeping).
    pub fn advance(&self, secs: u32) -> Secs {
        self.now.fetch_add(secs, Ordering::Relaxed) + secs
    }

    /// Unix time now, as reported by `stats time`.
    pub fn unix_now(&self) -> u64 {
        self.epoch_unix + self.now() as u64
    }

    /// Unix time of second 0 (for turning item times into unix times).
    pub fn epoch_unix(&self) -> u64 {
        self.epoch_unix
    }

    /// Turns a client exptime into a deadline: 0 never expires (returns 0);
    /// negative has already expired; up to 30 days is relative to now; larger
    /// is an absolute unix time.
    pub fn deadline(&self, exptime: i64) -> Secs {
        if exptime == 0 {
            return 0;
        }
        if exptime < 0 {
            return EXPIRED;
        }
        if exptime > REALTIME_MAXDELTA {
            let exptime = exptime as u64;
            if exptime <= self.epoch_unix {
                return EXPIRED;
            }
            return (exptime - self.epoch_unix).min(u32::MAX as u64) as Secs;
        }
        (self.now() as u64 + exptime as u64).min(u32::MAX as u64) as Secs
    }
}

/// True when an item with this deadline is dead at `now`.
#[inline]
pub fn is_expired(deadline: Secs, now: Secs) -> bool {
    deadline != 0 && deadline <= now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_never_expires() {
        let c = Clock::new();
        assert_eq!(c.deadline(0), 0);
        assert!(!is_expired(0, u32::MAX));
    }

    #[test]
    fn negative_is_already_expired() {
        let c = Clock::new();
        assert!(is_expired(c.deadline(-1), c.now()));
    }

    #[test]
    fn relative_and_absolute() {
        let c = Clock::new();
        let now = c.now();
        assert_eq!(c.deadline(10), now + 10);
        assert_eq!(
            c.deadline(REALTIME_MAXDELTA),
            now + REALTIME_MAXDELTA as u32
        );
        let abs = c.unix_now() as i64 + 100;
        assert_eq!(c.deadline(abs), now + 100);
        // an absolute time in the past is expired
        assert!(is_expired(c.deadline(REALTIME_MAXDELTA + 1), c.now()));
        c.advance(10);
        assert!(is_expired(now + 10, c.now()));
    }
}
