//! Warm restart (`-e FILE`): what a graceful stop writes beside the memory
//! file (`FILE.meta`), how it is read back and checked, and the cache's
//! `open` (restore or start clean) and `save`.
//!
//! Owns the metadata format and the rules for adopting a memory file.
//! Must not walk records itself (a shard adopts its own segments, see
//! `shard/restore.rs`) or know wire formats. Every refusal is a
//! [`Refusal`] whose text is memcached's kind of `[restart] …` line, and a
//! refusal always means a clean, empty cache: never part of a file.
//!
//! The metadata (little-endian) is: magic, format version, layout version
//! ([`super::item::LAYOUT_VERSION`]), the ferrocache version, the settings
//! that shape the file (see [`Geometry`]), the hash keys, the cas counter,
//! the flush state, the clock (unix time of its second 0, and of the
//! stop), then one entry per segment (owning shard, offset and length in
//! the file, bytes used, sequence, large or not, checksum of its used
//! bytes), and last a checksum of everything before it. It is removed as
//! soon as a start has read it, and written (to a temporary name, synced,
//! then renamed) only by a graceful stop, after the file's pages are
//! synced: so a stop that was not graceful (SIGKILL, a crash, power loss)
//! leaves no metadata, and the next start is clean.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::arena::{Arena, MemoryFileError};
use super::hash::{checksum_of, Keyed};
use super::item::{CAS_OFFSET_BITS, LAYOUT_VERSION};
use super::mapping::PAGE;
use super::shard::{Adjust, Adopted};
use super::{shard_count, Cache, CacheConfig, MAX_SHARDS, SEGMENT};
use crate::clock::{Clock, Secs};

const MAGIC: &[u8; 8] = b"FCWARM\r\n";
/// The metadata format itself (this file's encoding). 2: segments carry
/// their cas base.
const FORMAT: u32 = 2;

/// The memory file a cache keeps its items in (`-e`), opened and sized
/// at start-up (before anything listens: a file that cannot be used is a
/// start-up error, not a cold cache).
pub struct MemoryFile {
    arena: Arc<Arena>,
}

impl fmt::Debug for MemoryFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryFile")
            .field("path", &self.arena.path())
            .field("size", &self.arena.size())
            .finish()
    }
}

impl MemoryFile {
    /// Opens or creates `path`, sized to `memory_limit` (`-m`) and its
    /// space reserved.
    pub fn open(path: &Path, memory_limit: usize) -> Result<MemoryFile, MemoryFileError> {
        Arena::open(path, memory_limit).map(|a| MemoryFile { arena: Arc::new(a) })
    }

    /// False when the file is not on tmpfs: it works, but every page the
    /// cache writes is also written to disk (worth a warning).
    pub fn on_tmpfs(&self) -> bool {
        self.arena.on_tmpfs()
    }

    pub fn path(&self) -> &Path {
        self.arena.path()
    }
}

/// `FILE.meta`, memcached's name for it.
pub fn meta_path(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".meta");
    PathBuf::from(name)
}

/// Why a restart starts with a clean cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No metadata: a new file, or the last stop was not graceful.
    NoMetadata,
    Unreadable(String),
    /// The metadata is truncated or garbled (its checksum, magic or
    /// lengths are wrong).
    Damaged(String),
    /// Written by a build with another record layout.
    Layout {
        saved: u32,
        version: String,
    },
    /// A setting that shapes the memory differs.
    Setting {
        name: &'static str,
        saved: u64,
        now: u64,
    },
    /// A segment is out of bounds, overlaps another, fails its checksum
    /// or holds records that do not tile it.
    Segment(String),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clean = "starting with a clean cache";
        match self {
            Refusal::NoMetadata => write!(f, "[restart] no metadata save file, {clean}"),
            Refusal::Unreadable(why) => {
                write!(f, "[restart] cannot read the metadata ({why}), {clean}")
            }
            Refusal::Damaged(why) => write!(f, "[restart] metadata damaged ({why}), {clean}"),
            Refusal::Layout { saved, version } => write!(
                f,
                "[restart] memory file has layout version {saved} (ferrocache {version}), \
                 this build reads {LAYOUT_VERSION}, {clean}"
            ),
            Refusal::Setting { name, saved, now } => write!(
                f,
                "[restart] restart incompatible due to setting for [{name}] [old value: {saved}] \
                 [new value: {now}], {clean}"
            ),
            Refusal::Segment(why) => write!(
                f,
                "[restart] memory file does not match its metadata ({why}), {clean}"
            ),
        }
    }
}

/// What a start with a memory file did, for the log.
#[derive(Debug, Clone, PartialEq)]
pub enum Restart {
    /// Items adopted from the file; `dropped`: records that had expired
    /// or been flushed meanwhile.
    Restored {
        items: u64,
        dropped: u64,
        segments: usize,
        down_secs: i64,
        secs: f64,
    },
    Clean(Refusal),
}

impl fmt::Display for Restart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Restart::Restored {
                items,
                dropped,
                segments,
                down_secs,
                secs,
            } => write!(
                f,
                "[restart] recovered {items} items from {segments} segments in {secs:.3} s \
                 (down {down_secs} s; {dropped} expired or flushed meanwhile)"
            ),
            Restart::Clean(why) => why.fmt(f),
        }
    }
}

/// The settings a memory file's contents depend on: a start whose own
/// differ cannot adopt it. The shard count is not among them: it is taken
/// from the file (it depends on `-t`, which may change).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Geometry {
    /// `-m`: the file's size and the budget the segments were charged to.
    pub(super) memory_limit: u64,
    /// `-I`: the largest item; a smaller one could not hold what is there.
    pub(super) item_size_max: u64,
    /// `-C`: the size rule's limit (cas bytes counted or not).
    pub(super) cas: bool,
    /// The file's length.
    pub(super) file_size: u64,
    /// A normal segment's bytes and the page size (build constants).
    pub(super) segment: u32,
    pub(super) page: u32,
}

impl Geometry {
    pub(super) fn of(config: &CacheConfig, file_size: usize) -> Geometry {
        Geometry {
            memory_limit: config.memory_limit as u64,
            item_size_max: config.item_size_max as u64,
            cas: config.cas,
            file_size: file_size as u64,
            segment: SEGMENT as u32,
            page: PAGE as u32,
        }
    }

    /// The first setting that differs, memcached's way round (old value).
    fn differs(&self, now: &Geometry) -> Option<Refusal> {
        let pairs = [
            ("maxbytes", self.memory_limit, now.memory_limit),
            ("item_size_max", self.item_size_max, now.item_size_max),
            ("use_cas", u64::from(self.cas), u64::from(now.cas)),
            ("file_size", self.file_size, now.file_size),
            (
                "segment_size",
                u64::from(self.segment),
                u64::from(now.segment),
            ),
            ("page_size", u64::from(self.page), u64::from(now.page)),
        ];
        pairs
            .into_iter()
            .find(|(_, saved, now)| saved != now)
            .map(|(name, saved, now)| Refusal::Setting { name, saved, now })
    }
}

/// One segment as saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct SegMeta {
    pub(super) shard: u32,
    pub(super) offset: u64,
    pub(super) len: u64,
    pub(super) used: u64,
    pub(super) seq: u64,
    /// The high bits of its records' derived cas uniques.
    pub(super) cas_base: u64,
    pub(super) large: bool,
    pub(super) sum: u64,
}

const SEG_BYTES: usize = 4 + 8 * 6 + 1;

/// Everything a restart needs besides the file's bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Meta {
    pub(super) layout: u32,
    pub(super) version: String,
    pub(super) geometry: Geometry,
    pub(super) shards: u32,
    pub(super) keys: Keyed,
    /// The last cas base handed out (the counter goes on above it).
    pub(super) cas_bases: u64,
    /// The flush state: cas threshold, "before" second, pending second.
    pub(super) flush: (u64, Secs, Secs),
    /// Unix time of the saving clock's second 0, and of the stop.
    pub(super) epoch_unix: u64,
    pub(super) stop_unix: u64,
    pub(super) segs: Vec<SegMeta>,
    /// Live items per shard at the stop: a restart sizes each index for
    /// them at once instead of growing it step by step.
    pub(super) shard_items: Vec<u64>,
}

impl Meta {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(128 + self.segs.len() * SEG_BYTES);
        b.extend_from_slice(MAGIC);
        let g = &self.geometry;
        for v in [FORMAT, self.layout, self.version.len() as u32] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        b.extend_from_slice(self.version.as_bytes());
        for v in [
            g.memory_limit,
            g.item_size_max,
            u64::from(g.cas),
            g.file_size,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in [g.segment, g.page, self.shards] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let (fcas, before, pending) = self.flush;
        for v in [self.keys.k0, self.keys.k1, self.cas_bases, fcas] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in [before, pending] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for v in [self.epoch_unix, self.stop_unix, self.segs.len() as u64] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for s in &self.segs {
            b.extend_from_slice(&s.shard.to_le_bytes());
            for v in [s.offset, s.len, s.used, s.seq, s.cas_base] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.push(u8::from(s.large));
            b.extend_from_slice(&s.sum.to_le_bytes());
        }
        for n in &self.shard_items {
            b.extend_from_slice(&n.to_le_bytes());
        }
        let sum = checksum_of(&[&b]);
        b.extend_from_slice(&sum.to_le_bytes());
        b
    }

    /// Reads what [`Meta::encode`] wrote; any truncation, garbling or
    /// trailing byte is [`Refusal::Damaged`].
    pub(super) fn decode(bytes: &[u8]) -> Result<Meta, Refusal> {
        let damaged = |why: &str| Refusal::Damaged(why.to_string());
        if bytes.len() < MAGIC.len() + 8 || &bytes[..MAGIC.len()] != MAGIC {
            return Err(damaged("not a ferrocache metadata file"));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 8);
        let mut want = [0u8; 8];
        want.copy_from_slice(tail);
        if checksum_of(&[body]) != u64::from_le_bytes(want) {
            return Err(damaged("checksum mismatch"));
        }
        let mut r = Reader {
            b: &body[MAGIC.len()..],
        };
        if r.u32()? != FORMAT {
            return Err(damaged("unknown format version"));
        }
        let layout = r.u32()?;
        let vlen = r.u32()? as usize;
        let version = String::from_utf8_lossy(r.take(vlen)?).into_owned();
        let geometry = Geometry {
            memory_limit: r.u64()?,
            item_size_max: r.u64()?,
            cas: r.u64()? != 0,
            file_size: r.u64()?,
            segment: r.u32()?,
            page: r.u32()?,
        };
        let shards = r.u32()?;
        let keys = Keyed {
            k0: r.u64()?,
            k1: r.u64()?,
        };
        let cas_bases = r.u64()?;
        let flush = (r.u64()?, r.u32()?, r.u32()?);
        let (epoch_unix, stop_unix) = (r.u64()?, r.u64()?);
        let count = r.u64()?;
        if count > (r.b.len() / SEG_BYTES) as u64 || shards as usize > MAX_SHARDS {
            return Err(damaged("segment count past the end"));
        }
        let mut segs = Vec::with_capacity(count as usize);
        for _ in 0..count {
            segs.push(SegMeta {
                shard: r.u32()?,
                offset: r.u64()?,
                len: r.u64()?,
                used: r.u64()?,
                seq: r.u64()?,
                cas_base: r.u64()?,
                large: r.take(1)?[0] != 0,
                sum: r.u64()?,
            });
        }
        let shard_items = (0..shards).map(|_| r.u64()).collect::<Result<_, _>>()?;
        if !r.b.is_empty() {
            return Err(damaged("trailing bytes"));
        }
        Ok(Meta {
            layout,
            version,
            geometry,
            shards,
            keys,
            cas_bases,
            flush,
            epoch_unix,
            stop_unix,
            segs,
            shard_items,
        })
    }
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Refusal> {
        if self.b.len() < n {
            return Err(Refusal::Damaged("truncated".into()));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, Refusal> {
        let mut w = [0u8; 4];
        w.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(w))
    }

    fn u64(&mut self) -> Result<u64, Refusal> {
        let mut w = [0u8; 8];
        w.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(w))
    }
}

/// Reads `FILE.meta` and removes it (whatever it holds: from here on a
/// stop that is not graceful must find none).
fn take_meta(path: &Path) -> Result<Vec<u8>, Refusal> {
    let read = fs::read(path);
    let _ = fs::remove_file(path);
    match read {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Refusal::NoMetadata),
        Err(e) => Err(Refusal::Unreadable(format!("{}: {e}", path.display()))),
    }
}

/// Writes `bytes` to `path` so that it exists whole or not at all.
fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// What a graceful stop saved, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Saved {
    pub items: u64,
    pub segments: usize,
}

impl Cache {
    /// A cache whose items live in `file`: the items a graceful stop saved
    /// there when the metadata is whole and matches (see [`Refusal`] for
    /// when it does not), else a clean one over the same file.
    pub fn open(config: CacheConfig, clock: Arc<Clock>, file: MemoryFile) -> (Cache, Restart) {
        let started = Instant::now();
        let arena = file.arena;
        let geometry = Geometry::of(&config, arena.size());
        let attempt = take_meta(&meta_path(arena.path()))
            .and_then(|bytes| Meta::decode(&bytes))
            .and_then(|meta| Cache::restore(&config, &clock, &arena, geometry, meta));
        match attempt {
            Ok((cache, mut report)) => {
                if let Restart::Restored { secs, .. } = &mut report {
                    *secs = started.elapsed().as_secs_f64();
                }
                (cache, report)
            }
            Err(why) => {
                // whatever a failed attempt adopted went back with its
                // cache; the file's old bytes are garbage from here on
                arena.reset();
                let n = shard_count(config.shards, config.memory_limit);
                let cache = Cache::build(config, clock, n, Keyed::random(), Some(arena));
                (cache, Restart::Clean(why))
            }
        }
    }

    fn restore(
        config: &CacheConfig,
        clock: &Arc<Clock>,
        arena: &Arc<Arena>,
        geometry: Geometry,
        meta: Meta,
    ) -> Result<(Cache, Restart), Refusal> {
        if meta.layout != LAYOUT_VERSION {
            return Err(Refusal::Layout {
                saved: meta.layout,
                version: meta.version,
            });
        }
        if let Some(why) = meta.geometry.differs(&geometry) {
            return Err(why);
        }
        let n = meta.shards as usize;
        if !n.is_power_of_two() || n > MAX_SHARDS {
            return Err(Refusal::Damaged(format!("{n} shards")));
        }
        let cache = Cache::build(
            config.clone(),
            Arc::clone(clock),
            n,
            meta.keys,
            Some(Arc::clone(arena)),
        );
        let adjust = Adjust::new(&meta, clock);
        let mut segs = meta.segs.clone();
        segs.sort_unstable_by_key(|s| (s.shard, s.seq));
        if let Some(s) = segs.last().filter(|s| s.shard as usize >= n) {
            return Err(Refusal::Segment(format!(
                "a segment of shard {} of {n}",
                s.shard
            )));
        }
        let groups: Vec<&[SegMeta]> = segs.chunk_by(|a, b| a.shard == b.shard).collect();
        let got = cache.adopt_all(arena, &groups, &meta.shard_items, &adjust)?;
        let (items, dropped) = (got.items, got.dropped);
        let bases = (got.max_cas_base >> CAS_OFFSET_BITS).max(meta.cas_bases);
        cache.cas_bases.store(bases, Ordering::Relaxed);
        let (fcas, _, _) = meta.flush;
        cache.flush.restore(fcas, adjust.pending_flush());
        let report = Restart::Restored {
            items,
            dropped,
            segments: segs.len(),
            down_secs: (clock.unix_now() as i64).saturating_sub(meta.stop_unix as i64),
            secs: 0.0,
        };
        Ok((cache, report))
    }

    /// Each shard adopts its segments (`groups`, one slice per shard that
    /// has any), on a few threads at once: shards are independent, and a
    /// restart is time the cache is away.
    fn adopt_all(
        &self,
        arena: &Arc<Arena>,
        groups: &[&[SegMeta]],
        shard_items: &[u64],
        adjust: &Adjust,
    ) -> Result<Adopted, Refusal> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
        let n = self.shards.len();
        let one = |t: usize| -> Result<Adopted, Refusal> {
            let mut total = Adopted::default();
            for group in groups.iter().skip(t).step_by(threads) {
                let s = group[0].shard as usize;
                let expect = shard_items.get(s).copied().unwrap_or(0) as usize;
                let got = self.lock(s).adopt(arena, group, adjust, (s, n), expect)?;
                total.add(&got);
            }
            Ok(total)
        };
        let results: Vec<Result<Adopted, Refusal>> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = (1..threads).map(|t| scope.spawn(move || one(t))).collect();
                let mut results = vec![one(0)];
                for h in handles {
                    results.push(h.join().unwrap_or_else(|_| {
                        Err(Refusal::Segment("a restore thread panicked".into()))
                    }));
                }
                results
            });
        let mut total = Adopted::default();
        for r in results {
            total.add(&r?);
        }
        Ok(total)
    }

    /// Writes what a restart needs (a graceful stop, after every worker
    /// has stopped: nothing may change the cache meanwhile). `Ok(None)`
    /// without a memory file.
    pub fn save(&self) -> io::Result<Option<Saved>> {
        let Some(arena) = &self.arena else {
            return Ok(None);
        };
        let mut segs = Vec::new();
        let mut shard_items = Vec::with_capacity(self.shards.len());
        for s in 0..self.shards.len() {
            let shard = self.lock(s);
            shard.saved_segments(s as u32, &mut segs);
            shard_items.push(shard.len() as u64);
        }
        let items = shard_items.iter().sum();
        arena.sync()?;
        let meta = Meta {
            layout: LAYOUT_VERSION,
            version: env!("CARGO_PKG_VERSION").to_string(),
            geometry: Geometry::of(&self.config, arena.size()),
            shards: self.shards.len() as u32,
            keys: self.hasher,
            cas_bases: self.cas_bases.load(Ordering::Relaxed),
            flush: self.flush.saved(),
            epoch_unix: self.clock.epoch_unix(),
            stop_unix: self.clock.unix_now(),
            segs,
            shard_items,
        };
        write_atomically(&meta_path(arena.path()), &meta.encode())?;
        Ok(Some(Saved {
            items,
            segments: meta.segs.len(),
        }))
    }

    /// The memory file's path, when there is one.
    pub fn memory_file(&self) -> Option<&Path> {
        self.arena.as_deref().map(Arena::path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Meta {
        Meta {
            layout: LAYOUT_VERSION,
            version: "0.1.0".into(),
            geometry: Geometry {
                memory_limit: 64 << 20,
                item_size_max: 1 << 20,
                cas: true,
                file_size: 64 << 20,
                segment: SEGMENT as u32,
                page: PAGE as u32,
            },
            shards: 64,
            keys: Keyed { k0: 7, k1: 9 },
            cas_bases: 1234,
            flush: (5, 6, 0),
            epoch_unix: 1_700_000_000,
            stop_unix: 1_700_000_100,
            segs: vec![SegMeta {
                shard: 3,
                offset: 65536,
                len: 65536,
                used: 100,
                seq: 2,
                cas_base: 5 << 20,
                large: false,
                sum: 99,
            }],
            shard_items: vec![1; 64],
        }
    }

    #[test]
    fn metadata_round_trips_and_every_damage_is_seen() {
        let m = sample();
        let bytes = m.encode();
        assert_eq!(Meta::decode(&bytes), Ok(m));
        for cut in [0, 5, 20, bytes.len() - 9, bytes.len() - 1] {
            assert!(
                matches!(Meta::decode(&bytes[..cut]), Err(Refusal::Damaged(_))),
                "truncated at {cut}"
            );
        }
        for at in [0, 9, 40, bytes.len() / 2, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[at] ^= 0x40;
            assert!(
                matches!(Meta::decode(&b), Err(Refusal::Damaged(_))),
                "flip at {at}"
            );
        }
        assert!(matches!(
            Meta::decode(&vec![0; bytes.len()]),
            Err(Refusal::Damaged(_))
        ));
    }

    #[test]
    fn settings_that_differ_are_named() {
        let g = sample().geometry;
        let mut now = g;
        assert_eq!(g.differs(&now), None);
        now.item_size_max = 2 << 20;
        let why = g.differs(&now).unwrap();
        assert_eq!(
            why.to_string(),
            "[restart] restart incompatible due to setting for [item_size_max] \
             [old value: 1048576] [new value: 2097152], starting with a clean cache"
        );
    }

    #[test]
    fn the_meta_path_is_memcacheds() {
        assert_eq!(
            meta_path(Path::new("/dev/shm/fc")),
            PathBuf::from("/dev/shm/fc.meta")
        );
    }
}
