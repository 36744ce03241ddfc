//! Counters (per worker, summed on read) and the `stats` replies.
//!
//! Each worker owns one [`WorkerStats`] and is its only writer, so bumping a
//! counter is a plain load and store, no locked instruction. Readers sum all
//! workers. `stats reset` never writes a worker's counters: it records the
//! current sums as a baseline that later reports subtract. Must not do I/O
//! or import `command`, `server` or `watch` (what they know that a report
//! needs is passed in as numbers).
//!
//! Beside the counters each worker publishes gauges of its connections'
//! buffers ([`BufGauges`]) and its share of `-o read_buf_mem_limit`, per
//! size class the command counters of `stats slabs` ([`ClassCmds`]), and,
//! from sampled requests, service times ([`ServiceTimes`]) and the most
//! read keys ([`keys`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::storage::{CacheStats, CLASS_COUNT};

pub mod keys;

macro_rules! counters {
    ($($name:ident),* $(,)?) => {
        /// One worker's counters. Only its worker writes them.
        #[derive(Debug)]
        pub struct WorkerStats {
            $(pub $name: AtomicU64,)*
            /// Its connections' buffers (gauges: `stats reset` keeps them).
            pub bufs: BufGauges,
            /// Per size class (index: class id - 1), `stats slabs`' counters
            /// (64: a class index masked with 63 needs no bounds check).
            pub classes: Box<[ClassCmds; 64]>,
            /// Sampled service times per command family (metrics only:
            /// `stats reset` keeps them).
            pub service: Box<ServiceTimes>,
            /// Sampled reads per key (metrics only).
            pub keys: keys::KeySampler,
        }

        impl Default for WorkerStats {
            fn default() -> Self {
                WorkerStats {
                    $($name: AtomicU64::new(0),)*
                    bufs: BufGauges::default(),
                    classes: Box::new(std::array::from_fn(|_| ClassCmds::default())),
                    service: Box::default(),
                    keys: keys::KeySampler::default(),
                }
            }
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
    cmd_meta,
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
    idle_kicks,
    read_buf_oom,
    response_obj_oom,
);

/// One size class's command counters, as `stats slabs` shows them: hits
/// are counted in the class of the item's size, stores in the class of the
/// size asked for. Only the owning worker writes them. (`delete_hits` per
/// class is the cache's own count.)
#[derive(Debug, Default)]
pub struct ClassCmds {
    pub get_hits: AtomicU64,
    pub cmd_set: AtomicU64,
    pub touch_hits: AtomicU64,
    pub cas_hits: AtomicU64,
    pub cas_badval: AtomicU64,
    pub incr_hits: AtomicU64,
    pub decr_hits: AtomicU64,
}

/// [`ClassCmds`] summed over the workers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ClassTotals {
    pub get_hits: u64,
    pub cmd_set: u64,
    pub touch_hits: u64,
    pub cas_hits: u64,
    pub cas_badval: u64,
    pub incr_hits: u64,
    pub decr_hits: u64,
}

impl ClassTotals {
    fn add(&mut self, c: &ClassCmds) {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        self.get_hits = self.get_hits.wrapping_add(r(&c.get_hits));
        self.cmd_set = self.cmd_set.wrapping_add(r(&c.cmd_set));
        self.touch_hits = self.touch_hits.wrapping_add(r(&c.touch_hits));
        self.cas_hits = self.cas_hits.wrapping_add(r(&c.cas_hits));
        self.cas_badval = self.cas_badval.wrapping_add(r(&c.cas_badval));
        self.incr_hits = self.incr_hits.wrapping_add(r(&c.incr_hits));
        self.decr_hits = self.decr_hits.wrapping_add(r(&c.decr_hits));
    }

    fn minus(&self, b: &ClassTotals) -> ClassTotals {
        ClassTotals {
            get_hits: self.get_hits.wrapping_sub(b.get_hits),
            cmd_set: self.cmd_set.wrapping_sub(b.cmd_set),
            touch_hits: self.touch_hits.wrapping_sub(b.touch_hits),
            cas_hits: self.cas_hits.wrapping_sub(b.cas_hits),
            cas_badval: self.cas_badval.wrapping_sub(b.cas_badval),
            incr_hits: self.incr_hits.wrapping_sub(b.incr_hits),
            decr_hits: self.decr_hits.wrapping_sub(b.decr_hits),
        }
    }
}

/// A worker's connection buffers, published for `stats` (`read_buf_*`,
/// `response_obj_*`) and checked against its share of `-o
/// read_buf_mem_limit`. Only the owning worker writes them.
#[derive(Debug, Default)]
pub struct BufGauges {
    /// Read buffers allocated and their bytes.
    pub read_count: AtomicU64,
    pub read_bytes: AtomicU64,
    /// Reply (write) buffers allocated and their bytes.
    pub write_count: AtomicU64,
    pub write_bytes: AtomicU64,
    /// While a connection's requests run under `-o read_buf_mem_limit`:
    /// the bytes its reply buffer may hold before the worker's buffers
    /// pass its share of the limit (what the others hold subtracted; at
    /// least 1). 0: no limit.
    pub reply_room: AtomicU64,
}

impl BufGauges {
    /// Bytes of buffers held by the worker's connections.
    pub fn held(&self) -> u64 {
        self.read_bytes.load(Ordering::Relaxed) + self.write_bytes.load(Ordering::Relaxed)
    }
}

/// The command families whose service time is sampled.
pub const FAMILIES: [&str; 7] = [
    "get",
    "set",
    "delete",
    "arithmetic",
    "touch",
    "meta",
    "other",
];

/// Upper bounds of the service-time buckets, in microseconds (powers of
/// two from 1 µs to 16 ms); one more bucket holds the rest.
pub const BUCKETS_US: [u64; 15] = [
    1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384,
];

/// One request in this many is timed: reading the clock twice for every
/// request would cost more than the rest of a small get's bookkeeping.
pub const SAMPLE_EVERY: u64 = 64;

/// A worker's sampled service times: how long `command::execute` took,
/// per family, in [`BUCKETS_US`]. Only the owning worker writes them.
#[derive(Debug, Default)]
pub struct ServiceTimes {
    countdown: AtomicU64,
    counts: [[AtomicU64; 16]; 7],
    sum_ns: [AtomicU64; 7],
}

impl ServiceTimes {
    /// Whether to time this request (one in [`SAMPLE_EVERY`]).
    #[inline]
    pub fn sample(&self) -> bool {
        let n = self.countdown.load(Ordering::Relaxed);
        if n == 0 {
            set(&self.countdown, SAMPLE_EVERY - 1);
            true
        } else {
            set(&self.countdown, n - 1);
            false
        }
    }

    /// A timed request of `family` (an index into [`FAMILIES`]).
    pub fn record(&self, family: usize, ns: u64) {
        let family = family.min(FAMILIES.len() - 1);
        let us = ns.div_ceil(1000);
        let bucket = BUCKETS_US.partition_point(|&b| b < us);
        bump(&self.counts[family][bucket], 1);
        bump(&self.sum_ns[family], ns);
    }
}

/// One family's sampled service times, summed over the workers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FamilyTimes {
    pub family: &'static str,
    /// Per bucket of [`BUCKETS_US`] (not cumulative), then the rest.
    pub counts: [u64; 16],
    pub sum_ns: u64,
}

/// Buffer gauges summed over the workers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct BufTotals {
    pub read_count: u64,
    pub read_bytes: u64,
    pub write_count: u64,
    pub write_bytes: u64,
}

/// Sets a gauge only the calling thread writes.
#[inline]
pub fn set(gauge: &AtomicU64, v: u64) {
    gauge.store(v, Ordering::Relaxed);
}

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
    baseline: Mutex<Baseline>,
}

/// What `stats reset` recorded: later reports subtract it.
#[derive(Debug, Default)]
struct Baseline {
    totals: Totals,
    cache: CacheStats,
    classes: Vec<ClassTotals>,
}

impl Stats {
    pub fn new(workers: usize) -> Stats {
        Stats {
            workers: (0..workers).map(|_| WorkerStats::default()).collect(),
            acceptor: WorkerStats::default(),
            baseline: Mutex::new(Baseline::default()),
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

    fn base(&self) -> std::sync::MutexGuard<'_, Baseline> {
        self.baseline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sums since start-up or the last reset.
    pub fn totals(&self) -> Totals {
        let base = self.base().totals;
        self.raw().minus(&base)
    }

    fn raw_classes(&self) -> Vec<ClassTotals> {
        let mut t = vec![ClassTotals::default(); CLASS_COUNT];
        for w in self.workers.iter() {
            for (sum, c) in t.iter_mut().zip(w.classes.iter()) {
                sum.add(c);
            }
        }
        t
    }

    /// Per size class (index: class id - 1), since start-up or the last
    /// reset.
    pub fn class_totals(&self) -> Vec<ClassTotals> {
        let base = self.base();
        let mut t = self.raw_classes();
        for (now, b) in t.iter_mut().zip(base.classes.iter()) {
            *now = now.minus(b);
        }
        t
    }

    /// The workers' sampled service times, per family.
    pub fn service_times(&self) -> Vec<FamilyTimes> {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        FAMILIES
            .iter()
            .enumerate()
            .map(|(i, &family)| {
                let mut t = FamilyTimes {
                    family,
                    ..FamilyTimes::default()
                };
                for w in self.workers.iter() {
                    for (sum, c) in t.counts.iter_mut().zip(&w.service.counts[i]) {
                        *sum += r(c);
                    }
                    t.sum_ns += r(&w.service.sum_ns[i]);
                }
                t
            })
            .collect()
    }

    /// The `n` keys read most in the workers' recent windows of sampled
    /// requests (as of clock second `now`), with their sampled counts.
    pub fn top_keys(&self, now: u32, n: usize) -> keys::KeyCounts {
        let windows: Vec<_> = self.workers.iter().map(|w| w.keys.recent(now)).collect();
        keys::top(&windows, n)
    }

    /// The workers' buffer gauges, summed.
    pub fn buffers(&self) -> BufTotals {
        let mut t = BufTotals::default();
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        for w in self.workers.iter() {
            t.read_count += r(&w.bufs.read_count);
            t.read_bytes += r(&w.bufs.read_bytes);
            t.write_count += r(&w.bufs.write_count);
            t.write_bytes += r(&w.bufs.write_bytes);
        }
        t
    }

    /// The cache's counters since the last reset (gauges such as
    /// `curr_items` and `bytes` are passed through unchanged).
    pub fn cache_since_reset(&self, now: &CacheStats) -> CacheStats {
        let guard = self.base();
        let base = &guard.cache;
        CacheStats {
            total_items: now.total_items.wrapping_sub(base.total_items),
            evictions: now.evictions.wrapping_sub(base.evictions),
            reclaimed: now.reclaimed.wrapping_sub(base.reclaimed),
            expired_unfetched: now.expired_unfetched.wrapping_sub(base.expired_unfetched),
            evicted_unfetched: now.evicted_unfetched.wrapping_sub(base.evicted_unfetched),
            evicted_active: now.evicted_active.wrapping_sub(base.evicted_active),
            crawler_reclaimed: now.crawler_reclaimed.wrapping_sub(base.crawler_reclaimed),
            outofmemory: now.outofmemory.wrapping_sub(base.outofmemory),
            crawler_items_checked: now
                .crawler_items_checked
                .wrapping_sub(base.crawler_items_checked),
            ..now.clone()
        }
    }

    /// `stats reset`: later reports count from here.
    pub fn reset(&self, cache_now: &CacheStats) {
        let totals = self.raw();
        let classes = self.raw_classes();
        *self.base() = Baseline {
            totals,
            cache: cache_now.clone(),
            classes,
        };
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
    fn one_request_in_sample_every_is_timed_and_bucketed() {
        let s = Stats::new(2);
        let t = &s.worker(1).service;
        let sampled = (0..SAMPLE_EVERY * 3).filter(|_| t.sample()).count();
        assert_eq!(sampled, 3);
        t.record(0, 900); // 1 µs
        t.record(0, 1_001); // 2 µs
        t.record(3, 40_000_000); // past 16 ms
        t.record(99, 5_000); // unknown family: "other"
        let all = s.service_times();
        assert_eq!(all[0].family, "get");
        assert_eq!(&all[0].counts[..2], &[1, 1]);
        assert_eq!(all[0].sum_ns, 1_901);
        assert_eq!(all[3].counts[15], 1);
        assert_eq!(all[6].counts[3], 1);
    }

    #[test]
    fn timeval_has_six_digit_micros() {
        assert_eq!(format_timeval(3, 42), "3.000042");
    }
}
