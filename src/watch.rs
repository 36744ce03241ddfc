//! The `watch` log streams (memcached's `logger.c`): who watches what, and
//! the lines they are sent.
//!
//! Owns watcher registration, each watcher's bounded buffer of waiting
//! lines, the union mask of the streams somebody watches, and the text of
//! the log lines (memcached's `ts=… gid=… type=…` lines are the bytes of the
//! watch stream, so they are formatted here rather than in `protocol`).
//! Must not import `command` or `server`, touch a socket, or block a worker:
//! locks are held only to copy a line, a full buffer drops lines instead of
//! waiting, and the owning worker is woken through a non-blocking waker to
//! write them out itself.
//!
//! Everything the hot path pays for `watch` is [`WatchHub::wants`]: one
//! relaxed atomic load. Lines are formatted only when somebody watches the
//! stream, into per-watcher buffers of bounded size; when a watcher's
//! buffer is full its lines are dropped and counted, and the count is sent
//! as a `skipped=N` line (memcached's) once there is room again.

use std::io::Write;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::clock::Secs;
use crate::protocol::admin::watch as stream;
use crate::protocol::text::{write_uriencoded, yes_no};
use crate::storage::crawl::{class_for_len, EvictionSink, ItemMeta};
use crate::storage::{Lookup, StoreOp, StoreOutcome};

/// Bytes of lines one watcher may have waiting (memcached's default
/// `watcher_logbuf_size`). Past it, lines for that watcher are dropped.
pub const WATCH_BUF: usize = 256 * 1024;

/// The watchers of one server, and the union of what they watch.
pub struct WatchHub {
    mask: AtomicU32,
    gid: AtomicU64,
    watchers: Mutex<Vec<Arc<Watcher>>>,
    /// Lines copied to a watcher's buffer, and lines a full buffer dropped
    /// (`stats`' `log_watcher_sent`, `log_watcher_skipped`).
    sent: AtomicU64,
    skipped: AtomicU64,
}

/// What `stats` reports of the watch log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchStats {
    /// Connections watching now.
    pub watchers: u64,
    /// Log lines written: `gid` numbers them, one per line whatever the
    /// number of watchers.
    pub written: u64,
    pub sent: u64,
    pub skipped: u64,
}

/// One watching connection's stream.
pub struct Watcher {
    mask: u32,
    buf: Mutex<WatchBuf>,
    /// Makes the owning worker drain the buffer.
    wake: Box<dyn Fn() + Send + Sync>,
}

#[derive(Default)]
struct WatchBuf {
    lines: Vec<u8>,
    /// Lines dropped since the buffer was last full.
    skipped: u64,
    /// The worker was woken and has not drained the buffer since.
    woken: bool,
}

/// A storage command's outcome, as a `type=item_store` line reports it.
/// The caller reads the item back where the line shows it as stored (an
/// append's joined size), so that this module needs no cache.
#[derive(Debug, Clone, Copy)]
pub struct Mutation<'k> {
    pub key: &'k [u8],
    pub op: StoreOp,
    pub outcome: StoreOutcome,
    pub class: u32,
    /// Bytes of the value.
    pub size: usize,
    /// The item's deadline (0: never) and the clock's now, for `ttl=`.
    pub deadline: Secs,
    pub now: Secs,
}

impl std::fmt::Debug for WatchHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchHub")
            .field("mask", &self.mask.load(Ordering::Relaxed))
            .field("watchers", &self.list().len())
            .finish()
    }
}

impl Default for WatchHub {
    fn default() -> Self {
        Self::new()
    }
}

impl WatchHub {
    pub fn new() -> WatchHub {
        WatchHub {
            mask: AtomicU32::new(0),
            gid: AtomicU64::new(0),
            watchers: Mutex::new(Vec::new()),
            sent: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
        }
    }

    /// The counters `stats` shows (`log_watchers`, `log_worker_written`,
    /// `log_watcher_sent`, `log_watcher_skipped`).
    pub fn stats(&self) -> WatchStats {
        WatchStats {
            watchers: self.list().len() as u64,
            written: self.gid.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
        }
    }

    /// Whether anybody watches any of the `streams` bits
    /// (`protocol::admin::watch`): the one check on the hot path.
    #[inline]
    pub fn wants(&self, streams: u32) -> bool {
        self.mask.load(Ordering::Relaxed) & streams != 0
    }

    fn list(&self) -> MutexGuard<'_, Vec<Arc<Watcher>>> {
        self.watchers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn update_mask(&self, list: &[Arc<Watcher>]) {
        let mask = list.iter().fold(0, |m, w| m | w.mask);
        self.mask.store(mask, Ordering::Relaxed);
    }

    /// A new watcher of `mask`; `wake` is called (from any thread) when its
    /// buffer gets lines after having been drained.
    pub fn register(&self, mask: u32, wake: Box<dyn Fn() + Send + Sync>) -> Arc<Watcher> {
        let w = Arc::new(Watcher {
            mask,
            buf: Mutex::new(WatchBuf::default()),
            wake,
        });
        let mut list = self.list();
        list.push(Arc::clone(&w));
        self.update_mask(&list);
        w
    }

    pub fn unregister(&self, w: &Arc<Watcher>) {
        let mut list = self.list();
        list.retain(|x| !Arc::ptr_eq(x, w));
        self.update_mask(&list);
    }

    /// Sends one line to every watcher of `stream`: `ts=… gid=… ` then what
    /// `body` writes (which must end in `\n`).
    pub fn emit(&self, stream: u32, body: impl FnOnce(&mut Vec<u8>)) {
        let list = self.list();
        if !list.iter().any(|w| w.mask & stream != 0) {
            return;
        }
        let gid = self.gid.fetch_add(1, Ordering::Relaxed) + 1;
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut line = Vec::with_capacity(160);
        // memcached prints the microseconds without leading zeros
        let _ = write!(
            line,
            "ts={}.{} gid={} ",
            t.as_secs(),
            t.subsec_micros(),
            gid
        );
        body(&mut line);
        for w in list.iter().filter(|w| w.mask & stream != 0) {
            let counter = if w.push(&line) {
                &self.sent
            } else {
                &self.skipped
            };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A read of `key` by connection `cfd` (get, gets, gat, gats, touch,
    /// and the lookup a write makes first): `len` is the value's length on
    /// a hit.
    #[inline]
    pub fn log_fetch(&self, cfd: i32, key: &[u8], lookup: Lookup, len: usize) {
        if !self.wants(stream::FETCHERS) {
            return;
        }
        let (status, class, size) = match lookup {
            Lookup::Hit => ("found", class_for_len(key.len() + len), len),
            Lookup::Miss => ("not_found", 0, 0),
            Lookup::Expired => ("expired", 0, 0),
            Lookup::Flushed => ("flushed", 0, 0),
        };
        self.emit(stream::FETCHERS, |l| {
            l.extend_from_slice(b"type=item_get key=");
            write_uriencoded(key, l);
            let _ = writeln!(
                l,
                " status={} clsid={} cfd={} size={}",
                status, class, cfd, size
            );
        });
    }

    /// A storage command's outcome, by connection `cfd`.
    #[inline]
    pub fn log_store(&self, cfd: i32, m: &Mutation<'_>) {
        if !self.wants(stream::MUTATIONS) {
            return;
        }
        let status = match m.outcome {
            StoreOutcome::Stored => "stored",
            StoreOutcome::NotStored => "not_stored",
            StoreOutcome::Exists => "exists",
            StoreOutcome::NotFound => "not_found",
            StoreOutcome::TooLarge => "too_large",
            StoreOutcome::NoMemory => "no_memory",
        };
        let cmd = match m.op {
            StoreOp::Set => "set",
            StoreOp::Add => "add",
            StoreOp::Replace => "replace",
            StoreOp::Append => "append",
            StoreOp::Prepend => "prepend",
            StoreOp::Cas(_) => "cas",
        };
        let ttl = ttl_of(m.deadline, m.now);
        self.emit(stream::MUTATIONS, |l| {
            l.extend_from_slice(b"type=item_store key=");
            write_uriencoded(m.key, l);
            let _ = writeln!(
                l,
                " status={} cmd={} ttl={} clsid={} cfd={} size={}",
                status, cmd, ttl, m.class, cfd, m.size
            );
        });
    }

    /// A connection opened or closed (`watch connevents`). `peer` is
    /// `tcp:1.2.3.4:5678`, `tcp6:[::1]:5678` or a unix socket's name.
    pub fn log_conn(&self, fd: i32, peer: &str, closed: Option<&str>) {
        if !self.wants(stream::CONNEVENTS) {
            return;
        }
        let (transport, addr) = peer.split_once(':').unwrap_or(("unix", peer));
        let transport = if transport == "tcp6" {
            "tcp"
        } else {
            transport
        };
        let (rip, rport) = match addr.rsplit_once(':') {
            Some((ip, port)) if transport == "tcp" => {
                (ip.trim_matches(|c| c == '[' || c == ']'), port)
            }
            _ => (addr, "0"),
        };
        self.emit(stream::CONNEVENTS, |l| {
            let _ = match closed {
                None => writeln!(
                    l,
                    "type=conn_new rip={rip} rport={rport} transport={transport} cfd={fd}"
                ),
                Some(reason) => writeln!(
                    l,
                    "type=conn_close rip={rip} rport={rport} transport={transport} reason={reason} cfd={fd}"
                ),
            };
        });
    }
}

impl Watcher {
    fn lock(&self) -> MutexGuard<'_, WatchBuf> {
        self.buf.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds `line`; false when the buffer is full and it was dropped.
    fn push(&self, line: &[u8]) -> bool {
        let mut b = self.lock();
        let note = if b.skipped > 0 {
            format!("skipped={}\n", b.skipped)
        } else {
            String::new()
        };
        if b.lines.len() + note.len() + line.len() > WATCH_BUF {
            b.skipped += 1;
            return false;
        }
        b.lines.extend_from_slice(note.as_bytes());
        b.lines.extend_from_slice(line);
        b.skipped = 0;
        if !b.woken {
            b.woken = true;
            drop(b);
            (self.wake)();
        }
        true
    }

    /// Moves the waiting lines to `out`. Returns false when there were none.
    pub fn drain_into(&self, out: &mut Vec<u8>) -> bool {
        let mut b = self.lock();
        b.woken = false;
        if b.lines.is_empty() {
            return false;
        }
        if out.is_empty() {
            std::mem::swap(out, &mut b.lines);
        } else {
            out.extend_from_slice(&b.lines);
            b.lines.clear();
        }
        if b.lines.capacity() > WATCH_BUF * 2 {
            b.lines = Vec::new();
        }
        true
    }
}

impl EvictionSink for WatchHub {
    fn wants(&self) -> bool {
        WatchHub::wants(self, stream::EVICTIONS)
    }

    /// `type=eviction key=… fetch=… ttl=<seconds left, -1 never> la=<seconds
    /// since last access> clsid=… size=<value bytes>`.
    fn evicted(&self, key: &[u8], meta: &ItemMeta) {
        let ttl = meta.exp.map_or(-1, |e| e as i64 - meta.now as i64);
        let la = meta.now.saturating_sub(meta.last_access);
        let fetch = yes_no(meta.fetched);
        self.emit(stream::EVICTIONS, |l| {
            l.extend_from_slice(b"type=eviction key=");
            write_uriencoded(key, l);
            let _ = writeln!(
                l,
                " fetch={} ttl={} la={} clsid={} size={}",
                fetch, ttl, la, meta.class, meta.value_len
            );
        });
    }
}

/// `ttl=` of memcached's mutation lines: seconds left (as an unsigned
/// 32-bit number, so an already expired deadline wraps), 0 for never.
fn ttl_of(deadline: Secs, now: Secs) -> u32 {
    if deadline == 0 {
        0
    } else {
        deadline.wrapping_sub(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn a_full_watcher_drops_lines_and_says_how_many() {
        let hub = WatchHub::new();
        assert!(!hub.wants(stream::FETCHERS));
        let wakes = Arc::new(AtomicUsize::new(0));
        let w2 = Arc::clone(&wakes);
        let w = hub.register(
            stream::FETCHERS,
            Box::new(move || {
                w2.fetch_add(1, Ordering::Relaxed);
            }),
        );
        assert!(hub.wants(stream::FETCHERS) && !hub.wants(stream::MUTATIONS));
        let body = vec![b'x'; 1000];
        let mut sent = 0;
        for _ in 0..1000 {
            hub.emit(stream::FETCHERS, |l| {
                l.extend_from_slice(&body);
                l.push(b'\n');
            });
            sent += 1;
        }
        hub.emit(stream::MUTATIONS, |_| panic!("nobody watches mutations"));
        assert_eq!(wakes.load(Ordering::Relaxed), 1, "one wake until drained");
        let mut out = Vec::new();
        assert!(w.drain_into(&mut out));
        assert!(out.len() <= WATCH_BUF);
        let kept = out.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count();
        assert!(kept < sent);
        // the next line that fits carries the count first
        hub.emit(stream::FETCHERS, |l| l.extend_from_slice(b"type=last\n"));
        out.clear();
        assert!(w.drain_into(&mut out));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.lines().next(),
            Some(&*format!("skipped={}", sent - kept))
        );
        assert!(text.lines().nth(1).unwrap().ends_with("type=last"));
        assert_eq!(wakes.load(Ordering::Relaxed), 2);
        hub.unregister(&w);
        assert!(!hub.wants(stream::FETCHERS));
    }

    /// The line bodies after `ts=… gid=… `, for one watcher of `mask`.
    fn lines_of(mask: u32, emit: impl FnOnce(&WatchHub)) -> Vec<String> {
        let hub = WatchHub::new();
        let w = hub.register(mask, Box::new(|| {}));
        emit(&hub);
        let mut out = Vec::new();
        w.drain_into(&mut out);
        String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| l.splitn(3, ' ').nth(2).unwrap().to_string())
            .collect()
    }

    #[test]
    fn lines_carry_the_connection_they_are_given() {
        let got = lines_of(stream::FETCHERS | stream::MUTATIONS, |hub| {
            hub.log_fetch(17, b"a b", Lookup::Miss, 0);
            hub.log_store(
                17,
                &Mutation {
                    key: b"k",
                    op: StoreOp::Cas(3),
                    outcome: StoreOutcome::Exists,
                    class: 1,
                    size: 1,
                    deadline: 5,
                    now: 10,
                },
            );
        });
        assert_eq!(
            got,
            [
                "type=item_get key=a%20b status=not_found clsid=0 cfd=17 size=0",
                "type=item_store key=k status=exists cmd=cas ttl=4294967291 clsid=1 cfd=17 size=1",
            ]
        );
        let got = lines_of(stream::CONNEVENTS, |hub| {
            hub.log_conn(9, "tcp6:[::1]:5678", None);
            hub.log_conn(9, "/tmp/fc.sock", Some("normal"));
        });
        assert_eq!(
            got,
            [
                "type=conn_new rip=::1 rport=5678 transport=tcp cfd=9",
                "type=conn_close rip=/tmp/fc.sock rport=0 transport=unix reason=normal cfd=9",
            ]
        );
    }
}
