//! Counters (per worker, summed on read) and the `stats` replies.
//!
//! Each worker owns one [`WorkerStats`] and is its only writer, so bumping a
//! counter is a plain load and store, no locked instruction. Readers sum all
//! workers. `stats reset` never writes a worker's counters: it records the
//! current sums as a baseline that later reports subtract. Must not do I/O
//! or import `command`, `server` or `watch` (what they know that a report
//! needs is passed in as numbers).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::storage::CacheStats;

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// One worker's counters. Only its worker writes them.
        #[derive(Debug, Default)]
        pub struct WorkerStats {
            $(pub $name: AtomicU64,)*
        }

        /// A summed, plain snapshot of every worker's counters.
        #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
        pub struct Totals {
            $(pub $name: u64,)*
        }

        impl Totals {
            fn add(&mut self, w: &WorkerStats) {
                $(self.$name = self.$name.wrapping_add(w.$name.load(Ordering::Relaxed));)*
            }

            fn minus(&self, base: &Totals) -> Totals {
                Totals { $($name: self.$name.wrapping_sub(base.$name),)* }
            }
        }
    };
}

counters!(
    cmd_get,
    cmd_set,
    cmd_flush,
    cmd_touch,
    get_hits,
    get_misses,
    get_expired,
    get_flushed,
    delete_misses,
    delete_hits,
    incr_misses,
    incr_hits,
    decr_misses,
    decr_hits,
    cas_misses,
    cas_hits,
    cas_badval,
    touch_hits,
    touch_misses,
    store_too_large,
    store_no_memory,
    auth_cmds,
    auth_errors,
    bytes_read,
    bytes_written,
    conn_yields,
    total_connections,
    rejected_connections,
    worker_panics,
);

/// Adds `n` to a counter that only the calling thread writes.
#[inline]
pub fn bump(counter: &AtomicU64, n: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// All workers' counters plus the `stats reset` baseline.
#[derive(Debug)]
pub struct Stats {
    workers: Box<[WorkerStats]>,
    /// One more set of counters for threads that are not workers (the
    /// accept thread); written by that one thread only.
    pub acceptor: WorkerStats,
    baseline: Mutex<(Totals, CacheStats)>,
}

impl Stats {
    pub fn new(workers: usize) -> Stats {
        Stats {
            workers: (0..workers).map(|_| WorkerStats::default()).collect(),
            acceptor: WorkerStats::default(),
            baseline: Mutex::new((Totals::default(), CacheStats::default())),
        }
    }

    /// The counters of worker `i`: only that worker may write them.
    pub fn worker(&self, i: usize) -> &WorkerStats {
        &self.workers[i]
    }

    fn raw(&self) -> Totals {
        let mut t = Totals::default();
        for w in self.workers.iter() {
            t.add(w);
        }
        t.add(&self.acceptor);
        t
    }

    /// Sums since start-up or the last reset.
    pub fn totals(&self) -> Totals {
        let base = self.baseline.lock().unwrap_or_else(|e| e.into_inner()).0;
        self.raw().minus(&base)
    }

    /// The cache's counters since the last reset (gauges such as
    /// `curr_items` and `bytes` are passed through unchanged).
    pub fn cache_since_reset(&self, now: &CacheStats) -> CacheStats {
        let guard = self.baseline.lock().unwrap_or_else(|e| e.into_inner());
        let base = &guard.1;
        CacheStats {
            total_items: now.total_items.wrapping_sub(base.total_items),
            evictions: now.evictions.wrapping_sub(base.evictions),
            reclaimed: now.reclaimed.wrapping_sub(base.reclaimed),
            expired_unfetched: now.expired_unfetched.wrapping_sub(base.expired_unfetched),
            evicted_unfetched: now.evicted_unfetched.wrapping_sub(base.evicted_unfetched),
            evicted_active: now.evicted_active.wrapping_sub(base.evicted_active),
            crawler_reclaimed: now.crawler_reclaimed.wrapping_sub(base.crawler_reclaimed),
            outofmemory: now.outofmemory.wrapping_sub(base.outofmemory),
            ..now.clone()
        }
    }

    /// `stats reset`: later reports count from here.
    pub fn reset(&self, cache_now: &CacheStats) {
        let now = self.raw();
        *self.baseline.lock().unwrap_or_else(|e| e.into_inner()) = (now, cache_now.clone());
    }
}

/// Formats seconds.microseconds as memcached prints rusage.
pub fn format_timeval(secs: i64, micros: i64) -> String {
    format!("{}.{:06}", secs, micros)
}

/// Process CPU time (user, system) as (secs, micros) pairs.
pub fn rusage() -> ((i64, i64), (i64, i64)) {
    // SAFETY: getrusage writes into the zeroed struct we pass and reads nothing else.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    if rc != 0 {
        return ((0, 0), (0, 0));
    }
    (
        (ru.ru_utime.tv_sec, ru.ru_utime.tv_usec),
        (ru.ru_stime.tv_sec, ru.ru_stime.tv_usec),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_workers_and_resets_to_baseline() {
        let s = Stats::new(3);
        bump(&s.worker(0).get_hits, 2);
        bump(&s.worker(2).get_hits, 3);
        bump(&s.acceptor.total_connections, 1);
        assert_eq!(s.totals().get_hits, 5);
        assert_eq!(s.totals().total_connections, 1);
        let mut c = CacheStats {
            total_items: 7,
            curr_items: 2,
            ..CacheStats::default()
        };
        s.reset(&c);
        assert_eq!(s.totals().get_hits, 0);
        c.total_items = 9;
        let since = s.cache_since_reset(&c);
        assert_eq!((since.total_items, since.curr_items), (2, 2));
        bump(&s.worker(1).get_hits, 4);
        assert_eq!(s.totals().get_hits, 4);
    }

    #[test]
    fn timeval_has_six_digit_micros() {
        assert_eq!(format_timeval(3, 42), "3.000042");
    }
}
