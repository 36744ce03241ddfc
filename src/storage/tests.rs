//! The cache's behaviour through its public methods: writes and their
//! outcomes, eviction, expiry and flushes, incr/decr (here); workloads,
//! concurrency and the memory ceiling (`memory`); the operator tools
//! (`crawl`). Shard internals are checked after each test by
//! `Cache::check`.

mod crawl;
mod layout;
mod memory;
mod pins;
mod warm;

use super::*;
use std::sync::atomic::AtomicBool;
use std::thread;

const MB: usize = 1024 * 1024;

/// Big fills run one at a time (they measure the heap, and keep the
/// test run's peak memory down).
static HEAVY: Mutex<()> = Mutex::new(());

fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(PoisonError::into_inner)
}

fn cache_with(limit: usize, shards: usize, evict: bool) -> (Cache, Arc<Clock>) {
    let clock = Arc::new(Clock::new());
    let config = CacheConfig {
        memory_limit: limit,
        evict,
        shards,
        item_size_max: MB,
        cas: true,
    };
    (Cache::new(config, clock.clone()), clock)
}

fn cache() -> (Cache, Arc<Clock>) {
    cache_with(64 * MB, 4, true)
}

fn set(c: &Cache, key: &str, value: &[u8]) -> StoreOutcome {
    c.store(StoreOp::Set, key.as_bytes(), 0, 0, value)
}

fn get(c: &Cache, key: &str) -> Option<Vec<u8>> {
    c.get(key.as_bytes(), |it| it.data.to_vec()).1
}

/// (flags, value, cas)
fn gets(c: &Cache, key: &str) -> Option<(u32, Vec<u8>, u64)> {
    c.get(key.as_bytes(), |it| (it.flags, it.data.to_vec(), it.cas))
        .1
}

fn cas_of(c: &Cache, key: &str) -> u64 {
    gets(c, key).expect("present").2
}

fn op(c: &Cache, op: StoreOp, key: &str, value: &str) -> StoreOutcome {
    c.store(op, key.as_bytes(), 0, 0, value.as_bytes())
}

/// A deterministic generator (xorshift) so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// Log-uniform in [lo, hi].
    fn size(&mut self, lo: usize, hi: usize) -> usize {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((lo as f64) * (hi as f64 / lo as f64).powf(u)) as usize
    }
}

/// Runs `n` in release builds, `n / div` in debug builds.
fn scaled(n: usize, div: usize) -> usize {
    if cfg!(debug_assertions) {
        n / div
    } else {
        n
    }
}

#[test]
fn set_get_delete() {
    let (c, _) = cache();
    assert_eq!(c.get(b"a", |_| ()), (Lookup::Miss, None));
    assert_eq!(
        c.store(StoreOp::Set, b"a", 42, 0, b"hello"),
        StoreOutcome::Stored
    );
    let (lookup, got) = c.get(b"a", |it| (it.key.to_vec(), it.flags, it.data.to_vec()));
    assert_eq!(lookup, Lookup::Hit);
    assert_eq!(got, Some((b"a".to_vec(), 42, b"hello".to_vec())));
    assert_eq!(set(&c, "a", b"bye"), StoreOutcome::Stored);
    assert_eq!(get(&c, "a").as_deref(), Some(&b"bye"[..]));
    assert!(c.delete(b"a"));
    assert!(!c.delete(b"a"));
    assert_eq!(get(&c, "a"), None);
    // an empty value is a value
    assert_eq!(set(&c, "e", b""), StoreOutcome::Stored);
    assert_eq!(get(&c, "e").as_deref(), Some(&b""[..]));
    let st = c.stats();
    assert_eq!((st.curr_items, st.total_items), (1, 3));
    c.check();
}

#[test]
fn shard_count_is_a_power_of_two() {
    // 4096 shards: ~15 MB of locks and counters
    let _g = heavy();
    // 1 GiB: at least 32 shards (64 MB each at most), at most 256 (of
    // 64 segments each)
    for (asked, got) in [(0, 32), (3, 32), (64, 64), (100, 128), (1 << 20, 256)] {
        let (c, _) = cache_with(1 << 30, asked, true);
        assert_eq!(c.shards.len(), got, "shards = {asked}");
    }
    // a small ceiling: 64 segments a shard at least
    for (limit, asked, got) in [
        (64 * MB, 64, 16),
        (8 * MB, 64, 2),
        (2 * MB, 64, 1),
        (100_000, 4, 1),
    ] {
        let (c, _) = cache_with(limit, asked, true);
        assert_eq!(c.shards.len(), got, "{limit} bytes, {asked} shards");
    }
    // a large ceiling gets enough shards for their segment numbers
    let (c, _) = cache_with(8 << 30, 4, true);
    assert_eq!(c.shards.len(), 256);
    assert!(c.shards.len() * MAX_SHARD_BYTES >= 8 << 30);
    let (c, _) = cache_with(32 << 30, 1 << 20, true);
    assert_eq!(c.shards.len(), MAX_SHARDS);
}

#[test]
fn a_panic_under_the_lock_does_not_wedge_the_shard() {
    let (c, _) = cache_with(MB, 1, true);
    set(&c, "k", b"v");
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        c.get(b"k", |_| panic!("a reader's closure failed"))
    }));
    assert!(r.is_err());
    assert_eq!(get(&c, "k").as_deref(), Some(&b"v"[..]));
    assert_eq!(set(&c, "k2", b"w"), StoreOutcome::Stored);
    c.check();
}

#[test]
fn every_store_outcome() {
    let (c, clock) = cache();
    use StoreOp::*;
    use StoreOutcome::*;
    // add
    assert_eq!(op(&c, Add, "k", "1"), Stored);
    assert_eq!(op(&c, Add, "k", "2"), NotStored);
    assert_eq!(get(&c, "k").as_deref(), Some(&b"1"[..]));
    // replace
    assert_eq!(op(&c, Replace, "nokey", "x"), NotStored);
    assert_eq!(get(&c, "nokey"), None);
    assert_eq!(c.store(Replace, b"k", 5, 0, b"3"), Stored);
    assert_eq!(gets(&c, "k").map(|g| (g.0, g.1)), Some((5, b"3".to_vec())));
    // append / prepend keep flags and deadline
    assert_eq!(op(&c, Append, "nokey", "x"), NotStored);
    assert_eq!(op(&c, Prepend, "nokey", "x"), NotStored);
    let deadline = clock.now() + 100;
    assert_eq!(c.store(Set, b"ap", 9, deadline, b"mid"), Stored);
    assert_eq!(c.store(Append, b"ap", 1, 0, b">>"), Stored);
    assert_eq!(c.store(Prepend, b"ap", 2, 0, b"<<"), Stored);
    assert_eq!(
        gets(&c, "ap").map(|g| (g.0, g.1)),
        Some((9, b"<<mid>>".to_vec()))
    );
    clock.advance(100);
    assert_eq!(
        c.get(b"ap", |_| ()).0,
        Lookup::Expired,
        "append kept the deadline"
    );
    // cas
    assert_eq!(op(&c, Cas(1), "nokey", "x"), NotFound);
    let u = cas_of(&c, "k");
    assert_eq!(op(&c, Cas(u + 1000), "k", "x"), Exists);
    assert_eq!(get(&c, "k").as_deref(), Some(&b"3"[..]));
    assert_eq!(c.store(Cas(u), b"k", 7, 0, b"4"), Stored);
    assert_eq!(gets(&c, "k").map(|g| (g.0, g.1)), Some((7, b"4".to_vec())));
    assert_eq!(op(&c, Cas(u), "k", "5"), Exists, "the unique moved");
    c.check();
}

#[test]
fn too_large_follows_memcacheds_rule() {
    let _g = heavy();
    let (c, _) = cache(); // -I 1m
    let max = MB - ITEM_SIZE_OVERHEAD;
    let fits = vec![b'v'; max - 1];
    let over = vec![b'v'; max];
    assert_eq!(
        c.store(StoreOp::Set, b"k", 0, 0, &fits),
        StoreOutcome::Stored
    );
    assert_eq!(
        c.store(StoreOp::Add, b"j", 0, 0, &over),
        StoreOutcome::TooLarge
    );
    assert_eq!(
        c.store(StoreOp::Add, b"j", 0, 0, &over[1..]),
        StoreOutcome::Stored
    );
    // other ops leave the old value
    assert_eq!(
        c.store(StoreOp::Replace, b"k", 0, 0, &over),
        StoreOutcome::TooLarge
    );
    assert_eq!(get(&c, "k").map(|v| v.len()), Some(max - 1));
    // append that would pass the limit: NOT_STORED, old value intact
    assert_eq!(
        c.store(StoreOp::Append, b"k", 0, 0, b"xy"),
        StoreOutcome::NotStored
    );
    assert_eq!(get(&c, "k").map(|v| v.len()), Some(max - 1));
    // client flags other than 0 take 4 bytes of the limit, also when an
    // append or prepend joins onto an item that has them
    assert_eq!(
        c.store(StoreOp::Set, b"f", 1, 0, &fits[..max - 4]),
        StoreOutcome::TooLarge
    );
    assert_eq!(
        c.store(StoreOp::Set, b"f", 1, 0, &fits[..max - 6]),
        StoreOutcome::Stored
    );
    assert_eq!(
        c.store(StoreOp::Prepend, b"f", 0, 0, b"xy"),
        StoreOutcome::NotStored
    );
    assert_eq!(
        c.store(StoreOp::Append, b"f", 0, 0, b"x"),
        StoreOutcome::Stored
    );
    assert_eq!(get(&c, "f").map(|v| v.len()), Some(max - 5));
    // a failed set drops the old value, as memcached does
    assert_eq!(
        c.store(StoreOp::Set, b"k", 0, 0, &over),
        StoreOutcome::TooLarge
    );
    assert_eq!(get(&c, "k"), None);
    // keys beyond what an item can hold
    let long = vec![b'k'; 256];
    assert_eq!(
        c.store(StoreOp::Set, &long, 0, 0, b"v"),
        StoreOutcome::TooLarge
    );
    assert_eq!(c.get(&long, |_| ()).0, Lookup::Miss);
    c.check();
}

#[test]
fn cas_uniques_are_unique_and_increase() {
    let (c, clock) = cache();
    let mut last = std::collections::HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for i in 0..2000 {
        let key = format!("k{}", i % 37); // spread over shards, rewrites too
        assert_eq!(set(&c, &key, b"1"), StoreOutcome::Stored);
        let u = cas_of(&c, &key);
        let before = last.insert(key, u).unwrap_or(0);
        assert!(u > before, "{u} after {before}");
        assert!(seen.insert(u), "{u} twice");
        assert_ne!(u, 0);
    }
    // reads and touches keep it; every kind of write moves it
    let u = cas_of(&c, "k1");
    get(&c, "k1");
    assert!(c.touch(b"k1", clock.now() + 10));
    c.get_and_touch(b"k1", 0, |_| ());
    assert_eq!(cas_of(&c, "k1"), u);
    let mut prev = u;
    let mut moved = |what: &str| {
        let now = cas_of(&c, "k1");
        assert!(now > prev, "{what} must take a new unique");
        prev = now;
    };
    assert_eq!(op(&c, StoreOp::Append, "k1", "2"), StoreOutcome::Stored);
    moved("append");
    assert_eq!(op(&c, StoreOp::Prepend, "k1", "3"), StoreOutcome::Stored);
    moved("prepend");
    assert_eq!(c.incr_decr(b"k1", 1, true), ArithOutcome::Value(313));
    moved("incr");
    assert_eq!(c.incr_decr(b"k1", 0, false), ArithOutcome::Value(313));
    moved("decr by 0");
    assert_eq!(c.incr_decr(b"k1", 1000, true), ArithOutcome::Value(1313));
    moved("incr that rewrites the item");
    assert_eq!(op(&c, StoreOp::Replace, "k1", "9"), StoreOutcome::Stored);
    moved("replace");
}

/// Present, without touching it.
fn holds(c: &Cache, key: &str) -> bool {
    (0..c.shards.len()).any(|s| c.lock(s).lru_keys().iter().any(|k| k == key.as_bytes()))
}

/// Writes `prefix{n}` keys of `v` until `done` says stop; returns them.
fn fill_until(c: &Cache, prefix: &str, v: &[u8], done: impl Fn(&Cache) -> bool) -> Vec<String> {
    let mut keys = Vec::new();
    while !done(c) {
        let k = format!("{prefix}{}", keys.len());
        assert_eq!(set(c, &k, v), StoreOutcome::Stored);
        keys.push(k);
        assert!(keys.len() < 100_000, "runaway fill");
    }
    keys
}

#[test]
fn eviction_gives_used_items_a_second_chance() {
    // one shard of 16 KiB segments: ~1 KB items, 15 to a segment
    let (c, _) = cache_with(256 * 1024, 1, true);
    let v = vec![b'x'; 1000];
    for k in ["a", "b", "c"] {
        assert_eq!(set(&c, k, &v), StoreOutcome::Stored);
    }
    assert!(get(&c, "a").is_some());
    // reading does not move an item: the order is the writing order
    assert_eq!(
        c.lock(0).lru_keys()[..3],
        [b"a".to_vec(), b"b".to_vec(), b"c".to_vec()]
    );
    let first = fill_until(&c, "fill", &v, |c| !holds(c, "b"));
    assert!(
        holds(&c, "a"),
        "the read item survives the turn that evicts b"
    );
    assert!(!holds(&c, "c"), "c was unread and older than the fill");
    assert!(holds(&c, first.last().unwrap()), "the newest write stays");
    // a's second chance is spent: unread, it goes within one more turn,
    // and not before the items written before its second chance
    let more = fill_until(&c, "more", &v, |c| !holds(c, "a"));
    assert!(
        first.iter().all(|k| !holds(&c, k)),
        "a outlived every item written before its second chance"
    );
    assert!(holds(&c, more.last().unwrap()));
    let st = c.stats();
    assert_eq!(st.evictions + st.curr_items, st.total_items);
    assert_eq!(st.evicted_unfetched, st.evictions - 1, "only a was read");
    assert_eq!(st.evicted_active, 0);
    c.check();
}

#[test]
fn a_cache_of_used_items_still_makes_room() {
    // every item read: recycling keeps at most half a segment of them,
    // so writes go on evicting the oldest
    let (c, _) = cache_with(128 * 1024, 1, true);
    let v = vec![b'x'; 1000];
    let keys = fill_until(&c, "k", &v, |c| c.stats().evictions > 0);
    for _ in 0..3 {
        for k in &keys {
            get(&c, k);
        }
        for i in 0..keys.len() {
            assert_eq!(set(&c, &format!("new{i}"), &v), StoreOutcome::Stored);
            get(&c, &format!("new{i}"));
        }
    }
    let st = c.stats();
    assert!(st.evictions as usize > keys.len(), "{st:?}");
    assert!(st.bytes <= st.limit_maxbytes);
    assert!(st.evicted_active > 0, "items read twice were evicted");
    c.check();
}

#[test]
fn evicted_active_counts_items_read_twice() {
    let (c, _) = cache_with(512 * 1024, 1, true);
    let v = vec![b'x'; 1000];
    set(&c, "twice", &v);
    set(&c, "once", &v);
    get(&c, "once");
    get(&c, "twice");
    get(&c, "twice");
    fill_until(&c, "k", &v, |c| !holds(c, "twice"));
    let st = c.stats();
    assert!(!holds(&c, "once"), "once was no younger");
    assert_eq!(st.evicted_active, 1, "{st:?}");
    assert_eq!(st.evicted_unfetched, st.evictions - 2, "{st:?}");
    c.check();
}

#[test]
fn rewrites_in_a_cache_with_room_never_evict() {
    // a working set of a third of the memory, rewritten many times over
    // in random order: the dead versions are recycled, nothing live is
    // evicted
    let _g = heavy();
    let (c, _) = cache_with(MB, 2, true);
    let v = vec![b'x'; 500];
    let n = 600; // ~330 KB of records
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for i in 0..n {
        assert_eq!(set(&c, &format!("k{i}"), &v), StoreOutcome::Stored);
    }
    for round in 0..20 * n {
        let i = rng.below(n);
        let fill = [b'a' + (round % 26) as u8; 500];
        assert_eq!(set(&c, &format!("k{i}"), &fill), StoreOutcome::Stored);
    }
    let st = c.stats();
    assert_eq!((st.evictions, st.curr_items), (0, n as u64), "{st:?}");
    assert!(st.total_items > 10 * n as u64, "the memory was turned over");
    for i in 0..n {
        assert!(get(&c, &format!("k{i}")).is_some(), "k{i}");
    }
    c.check();
}

#[test]
fn a_dead_large_item_gives_its_memory_back_at_once() {
    let (c, _) = cache_with(4 * MB, 2, true);
    set(&c, "small", b"s");
    let big = vec![b'b'; 300_000];
    // (the first write into a shard makes its index)
    assert_eq!(set(&c, "big", &big), StoreOutcome::Stored);
    assert!(c.delete(b"big"));
    let before = c.stats().bytes;
    assert_eq!(set(&c, "big", &big), StoreOutcome::Stored);
    let with = c.stats().bytes;
    assert!(with >= before + 300_000, "{before} -> {with}");
    assert!(c.delete(b"big"));
    assert_eq!(c.stats().bytes, before, "deleted");
    assert_eq!(set(&c, "big", &big), StoreOutcome::Stored);
    assert_eq!(set(&c, "big", &big[..200_000]), StoreOutcome::Stored);
    assert_eq!(
        c.stats().bytes,
        before + pages(200_000 + 23) as u64,
        "replaced"
    );
    c.check();
}

#[test]
fn rewrites_reuse_dead_bytes_before_mapping_more() {
    // 300 KB live in 8 MB, written over 20 times: the memory in use
    // stays a small multiple of what is live, not the ceiling
    let _g = heavy();
    let (c, _) = cache_with(8 * MB, 2, true);
    let v = vec![b'x'; 500];
    let n = 600;
    let mut rng = Rng(0x0bad_cafe_dead_beef);
    for round in 0..20 * n {
        let i = if round < n { round } else { rng.below(n) };
        assert_eq!(set(&c, &format!("k{i}"), &v), StoreOutcome::Stored);
    }
    let st = c.stats();
    assert_eq!((st.evictions, st.curr_items), (0, n as u64), "{st:?}");
    assert!(
        st.bytes < 2 * MB as u64,
        "{} bytes for ~320 KB live",
        st.bytes
    );
    c.check();
}

#[test]
fn evicts_from_other_shards_when_its_own_is_empty() {
    let _g = heavy();
    let (c, _) = cache_with(16 * MB, 4, true);
    assert_eq!(c.shards.len(), 4);
    let fill = c.keys_in_shard(0, "fill", 24_000);
    let v = vec![b'x'; 1000];
    let mut stored = 0;
    for k in &fill {
        assert_eq!(c.store(StoreOp::Set, k, 0, 0, &v), StoreOutcome::Stored);
        stored += 1;
        if c.stats().evictions > 0 {
            break;
        }
    }
    let before = c.stats();
    assert!(before.curr_items > 100, "shard 0 holds the cache");
    // shard 1 is empty: a 100 KB item must take memory from shard 0
    let other = &c.keys_in_shard(1, "big", 1)[0];
    assert_eq!(
        c.store(StoreOp::Set, other, 0, 0, &vec![b'b'; 100_000]),
        StoreOutcome::Stored
    );
    assert!(c.get(other, |_| ()).0 == Lookup::Hit);
    let after = c.stats();
    assert!(
        after.evictions > before.evictions && after.curr_items < before.curr_items,
        "{before:?} -> {after:?}"
    );
    assert!(after.bytes <= after.limit_maxbytes);
    assert_eq!(c.stats().evictions + c.stats().curr_items, stored + 1);
    c.check();
}

#[test]
fn item_larger_than_the_limit_is_refused_without_evicting() {
    let (c, _) = cache_with(100_000, 2, true);
    set(&c, "small", b"v");
    let huge = vec![b'h'; 200_000];
    assert_eq!(set(&c, "huge", &huge), StoreOutcome::NoMemory);
    assert_eq!(get(&c, "small").as_deref(), Some(&b"v"[..]));
    let st = c.stats();
    assert_eq!((st.evictions, st.outofmemory), (0, 1));
    c.check();
}

#[test]
fn without_eviction_a_full_cache_refuses_writes() {
    let _g = heavy();
    let (c, _) = cache_with(16 * MB, 4, false);
    assert_eq!(c.shards.len(), 4);
    let v = vec![b'x'; 1000];
    let mut n = 0;
    loop {
        match set(&c, &format!("k{n}"), &v) {
            StoreOutcome::Stored => n += 1,
            StoreOutcome::NoMemory => break,
            other => panic!("{other:?}"),
        }
    }
    assert!(n > 14_000, "only {n} KB fitted in 16 MiB");
    let st = c.stats();
    assert_eq!(
        (st.curr_items, st.evictions, st.outofmemory),
        (n as u64, 0, 1)
    );
    assert!(st.bytes <= st.limit_maxbytes);
    for i in 0..n {
        assert!(
            get(&c, &format!("k{i}")).is_some(),
            "k{i} was evicted under -M"
        );
    }
    // what memcached does with a full -M cache: replace/cas refused with
    // the old value kept, append/prepend NOT_STORED, set drops the old
    // (larger than what the budget has left: under a segment)
    let big = vec![b'y'; 70_000];
    assert_eq!(
        c.store(StoreOp::Replace, b"k1", 0, 0, &big),
        StoreOutcome::NoMemory
    );
    assert_eq!(get(&c, "k1").map(|v| v.len()), Some(1000));
    let u = cas_of(&c, "k2");
    assert_eq!(
        c.store(StoreOp::Cas(u), b"k2", 0, 0, &big),
        StoreOutcome::NoMemory
    );
    assert_eq!(get(&c, "k2").map(|v| v.len()), Some(1000));
    assert_eq!(
        c.store(StoreOp::Append, b"k3", 0, 0, &big),
        StoreOutcome::NotStored
    );
    assert_eq!(get(&c, "k3").map(|v| v.len()), Some(1000));
    assert_eq!(
        c.store(StoreOp::Set, b"k4", 0, 0, &big),
        StoreOutcome::NoMemory
    );
    assert_eq!(get(&c, "k4"), None, "a failed set drops the old value");
    assert_eq!(c.stats().outofmemory, 5);
    // deleting makes room for as much again (dead bytes are compacted
    // away in the shards they were deleted from)
    for i in 10..40 {
        assert!(c.delete(format!("k{i}").as_bytes()));
    }
    for i in 10..40 {
        assert_eq!(set(&c, &format!("k{i}"), &v), StoreOutcome::Stored, "k{i}");
    }
    assert_eq!(c.stats().evictions, 0);
    c.check();
}

#[test]
fn expiry_is_lazy_on_access() {
    let (c, clock) = cache();
    let now = clock.now();
    c.store(StoreOp::Set, b"short", 0, now + 10, b"s");
    c.store(StoreOp::Set, b"read", 0, now + 10, b"r");
    c.store(StoreOp::Set, b"long", 0, now + 100, b"l");
    c.store(StoreOp::Set, b"never", 0, 0, b"n");
    c.store(StoreOp::Set, b"past", 0, crate::clock::EXPIRED, b"p");
    assert_eq!(c.get(b"past", |_| ()).0, Lookup::Expired);
    get(&c, "read");
    clock.advance(9);
    assert!(
        get(&c, "short").is_some(),
        "alive one second before its deadline"
    );
    clock.advance(1);
    assert_eq!(c.get(b"short", |_| ()).0, Lookup::Expired);
    assert_eq!(c.get(b"short", |_| ()).0, Lookup::Miss, "removed on access");
    // every command sees an expired item as absent
    assert!(!c.touch(b"read", 0));
    assert_eq!(c.incr_decr(b"long", 1, true), ArithOutcome::NonNumeric);
    clock.advance(100);
    assert_eq!(c.incr_decr(b"long", 1, true), ArithOutcome::NotFound);
    assert!(!c.delete(b"never") || get(&c, "never").is_none());
    assert_eq!(
        c.store(StoreOp::Set, b"gone", 0, clock.now() + 1, b"g"),
        StoreOutcome::Stored
    );
    clock.advance(1);
    assert_eq!(
        op(&c, StoreOp::Add, "gone", "again"),
        StoreOutcome::Stored,
        "add on an expired key"
    );
    assert_eq!(get(&c, "gone").as_deref(), Some(&b"again"[..]));
    let st = c.stats();
    // past, short, read, long, gone: reclaimed; never read: past, long, gone
    assert_eq!(st.reclaimed, 5, "{st:?}");
    assert_eq!(st.expired_unfetched, 3, "{st:?}");
    assert_eq!(st.crawler_reclaimed, 0);
    c.check();
}

#[test]
fn touch_and_gat_set_the_deadline() {
    let (c, clock) = cache();
    let now = clock.now();
    c.store(StoreOp::Set, b"t", 3, now + 1, b"v");
    assert!(c.touch(b"t", now + 10));
    clock.advance(5);
    assert_eq!(
        c.get_and_touch(b"t", now + 20, |it| it.flags),
        (Lookup::Hit, Some(3))
    );
    clock.advance(10);
    assert!(get(&c, "t").is_some());
    assert_eq!(
        c.get_and_touch(b"t", crate::clock::EXPIRED, |_| ()).0,
        Lookup::Hit
    );
    assert_eq!(c.get(b"t", |_| ()).0, Lookup::Expired);
    assert!(!c.touch(b"nokey", 0));
    assert_eq!(c.get_and_touch(b"nokey", 0, |_| ()), (Lookup::Miss, None));
}

#[test]
fn tick_passes_by_only_what_cannot_be_dead() {
    // items stored without a deadline, in segments the sweep may pass
    // by: a deadline given in place (touch, gat, mg T), an immediate
    // flush and a delayed one must still be swept
    let (c, clock) = cache_with(64 * MB, 2, true);
    let n = 2000;
    for i in 0..n {
        c.store(StoreOp::Set, format!("k{i}").as_bytes(), 0, 0, b"v");
    }
    let sweep = |c: &Cache| {
        for _ in 0..10 {
            c.tick();
        }
        c.stats()
    };
    assert_eq!(sweep(&c).crawler_reclaimed, 0);
    assert!(c.touch(b"k7", clock.now() + 1));
    let (hit, _) = c.get_and_touch(b"k8", clock.now() + 1, |_| ());
    assert_eq!(hit, Lookup::Hit);
    clock.advance(2);
    let st = sweep(&c);
    assert_eq!((st.crawler_reclaimed, st.curr_items), (2, n - 2), "{st:?}");
    c.flush_all(None);
    c.store(StoreOp::Set, b"after", 0, 0, b"v");
    let st = sweep(&c);
    // (the write after the flush reclaims some at the old end itself)
    assert_eq!((st.reclaimed, st.curr_items), (n, 1), "{st:?}");
    c.check();
    // a delayed flush, in a cache that never had an immediate one
    let (c, clock) = cache_with(64 * MB, 2, true);
    for i in 0..n {
        c.store(StoreOp::Set, format!("k{i}").as_bytes(), 0, 0, b"v");
    }
    clock.advance(1);
    c.flush_all(Some(clock.now() + 2));
    clock.advance(3);
    let st = sweep(&c);
    assert_eq!((st.crawler_reclaimed, st.curr_items), (n, 0), "{st:?}");
    c.check();
}

#[test]
fn tick_sweeps_expired_items() {
    let (c, clock) = cache_with(64 * MB, 4, true);
    let n = 3000;
    let now = clock.now();
    for i in 0..n {
        let deadline = if i % 3 == 0 { 0 } else { now + 5 };
        c.store(StoreOp::Set, format!("k{i}").as_bytes(), 0, deadline, b"v");
    }
    c.tick();
    assert_eq!(c.stats().curr_items, n as u64, "nothing due yet");
    clock.advance(5);
    c.tick();
    let after_one = c.stats();
    assert!(after_one.crawler_reclaimed > 0);
    assert!(
        after_one.crawler_reclaimed <= (SWEEP_REMOVALS * 4) as u64,
        "one tick is bounded: {after_one:?}"
    );
    for _ in 0..20 {
        c.tick();
    }
    let st = c.stats();
    assert_eq!(st.curr_items, n as u64 / 3);
    assert_eq!(st.crawler_reclaimed, 2 * n as u64 / 3);
    assert_eq!(st.reclaimed, st.crawler_reclaimed);
    assert_eq!(st.expired_unfetched, st.crawler_reclaimed);
    for i in (0..n).step_by(3) {
        assert!(get(&c, &format!("k{i}")).is_some());
    }
    c.check();
}

#[test]
fn flush_all_now() {
    let (c, clock) = cache();
    for i in 0..100 {
        set(&c, &format!("k{i}"), b"v");
    }
    c.flush_all(None);
    assert_eq!(c.get(b"k0", |_| ()).0, Lookup::Flushed);
    assert_eq!(c.get(b"k0", |_| ()).0, Lookup::Miss);
    assert!(!c.delete(b"k1"));
    assert_eq!(op(&c, StoreOp::Replace, "k2", "x"), StoreOutcome::NotStored);
    assert_eq!(op(&c, StoreOp::Add, "k3", "x"), StoreOutcome::Stored);
    // items stored after the flush live
    set(&c, "after", b"a");
    assert!(get(&c, "after").is_some());
    assert!(get(&c, "k3").is_some());
    // a past deadline flushes now too
    clock.advance(1);
    c.flush_all(Some(clock.now()));
    assert_eq!(c.get(b"after", |_| ()).0, Lookup::Flushed);
    // the sweep clears the rest
    for _ in 0..5 {
        c.tick();
    }
    let st = c.stats();
    assert_eq!(st.curr_items, 0);
    // k4..k99 and the k3 added after the first flush, by the sweep or by
    // a write that reclaimed them before growing the index; k0..k3 and
    // `after` when a request met them
    assert_eq!(st.reclaimed, 102);
    assert!(st.crawler_reclaimed <= 97, "{}", st.crawler_reclaimed);
    assert_eq!(st.expired_unfetched, 0, "flushed is not expired");
    c.check();
}

#[test]
fn flush_all_delayed() {
    let (c, clock) = cache();
    set(&c, "old", b"o");
    set(&c, "read", b"r");
    let now = clock.now();
    c.flush_all(Some(now + 3));
    clock.advance(1);
    assert!(get(&c, "read").is_some(), "not due yet (and read now)");
    set(&c, "before", b"b");
    clock.advance(2);
    // due: everything written or read before it is gone
    assert_eq!(c.get(b"old", |_| ()).0, Lookup::Flushed);
    assert_eq!(c.get(b"read", |_| ()).0, Lookup::Flushed);
    assert_eq!(c.get(b"before", |_| ()).0, Lookup::Flushed);
    set(&c, "after", b"a");
    clock.advance(10);
    assert!(get(&c, "after").is_some(), "stored after the flush");
    // a due flush stays in force when the next one is scheduled
    set(&c, "x", b"x");
    c.flush_all(Some(clock.now() + 100));
    assert!(get(&c, "x").is_some());
    assert!(get(&c, "after").is_some());
    // and a new flush_all replaces a pending one
    c.flush_all(Some(clock.now() + 5));
    c.flush_all(Some(clock.now() + 50));
    clock.advance(5);
    assert!(get(&c, "x").is_some(), "the replaced flush did not fire");
    c.flush_all(None);
    assert_eq!(c.get(b"x", |_| ()).0, Lookup::Flushed);
    set(&c, "y", b"y");
    clock.advance(60);
    assert!(
        get(&c, "y").is_some(),
        "flush_all now cancels the pending one"
    );
    c.check();
}

#[test]
fn incr_decr_as_memcached() {
    let (c, clock) = cache();
    let num = |v: &str| {
        set(&c, "n", v.as_bytes());
    };
    let val = || get(&c, "n").map(|v| String::from_utf8(v).unwrap());
    num("100");
    assert_eq!(c.incr_decr(b"n", 1, false), ArithOutcome::Value(99));
    assert_eq!(val().as_deref(), Some("99 "), "padded in place");
    assert_eq!(c.incr_decr(b"n", 1, true), ArithOutcome::Value(100));
    assert_eq!(val().as_deref(), Some("100"));
    assert_eq!(c.incr_decr(b"n", 900, true), ArithOutcome::Value(1000));
    assert_eq!(val().as_deref(), Some("1000"), "rewritten longer");
    // decr floors at 0
    num("5");
    assert_eq!(c.incr_decr(b"n", 10, false), ArithOutcome::Value(0));
    assert_eq!(val().as_deref(), Some("0"));
    // incr wraps at 2^64
    num("18446744073709551615");
    assert_eq!(c.incr_decr(b"n", 1, true), ArithOutcome::Value(0));
    assert_eq!(val().as_deref(), Some("0                   "));
    num("18446744073709551610");
    assert_eq!(
        c.incr_decr(b"n", u64::MAX, true),
        ArithOutcome::Value(u64::MAX - 6)
    );
    // what memcached's strtoull check takes
    num(" 12");
    assert_eq!(c.incr_decr(b"n", 1, true), ArithOutcome::Value(13));
    assert_eq!(val().as_deref(), Some("13 "));
    num("12 abc");
    assert_eq!(c.incr_decr(b"n", 1, true), ArithOutcome::Value(13));
    assert_eq!(val().as_deref(), Some("13    "));
    num("000000000000000000000007"); // 24 digits
    assert_eq!(c.incr_decr(b"n", 1, true), ArithOutcome::Value(8));
    // and what it refuses
    for bad in ["", " ", "12abc", "18446744073709551616", "-1", "abc"] {
        num(bad);
        assert_eq!(
            c.incr_decr(b"n", 1, true),
            ArithOutcome::NonNumeric,
            "{bad:?}"
        );
        assert_eq!(val().as_deref(), Some(bad), "left alone");
    }
    assert_eq!(c.incr_decr(b"nokey", 1, true), ArithOutcome::NotFound);
    // a rewrite keeps flags and deadline
    let deadline = clock.now() + 10;
    c.store(StoreOp::Set, b"f", 77, deadline, b"9");
    assert_eq!(c.incr_decr(b"f", 1, true), ArithOutcome::Value(10));
    assert_eq!(
        gets(&c, "f").map(|g| (g.0, g.1)),
        Some((77, b"10".to_vec()))
    );
    clock.advance(10);
    assert_eq!(c.get(b"f", |_| ()).0, Lookup::Expired);
    c.check();
}

#[test]
fn class_stats_follow_the_items() {
    let _g = heavy();
    let (c, clock) = cache_with(MB, 2, true);
    assert!(c.class_stats().is_empty());
    // 14-byte key + 100-byte value + 7-byte header = 121 -> class 3 (152)
    for i in 0..10 {
        let key = format!("key-{i:010}");
        assert_eq!(key.len(), 14);
        c.store(StoreOp::Set, key.as_bytes(), 0, 0, &[b'v'; 100]);
    }
    clock.advance(7);
    c.store(StoreOp::Set, b"big", 0, 0, &vec![b'b'; 3000]);
    let cs = c.class_stats();
    assert_eq!(cs.len(), 2, "{cs:?}");
    let small = &cs[0];
    assert_eq!((small.id, small.chunk_size, small.number), (3, 152, 10));
    assert_eq!(small.mem_requested, 10 * (114 + item::MIN_HEADER) as u64);
    assert_eq!(small.age, 7, "age of the class's least recently used item");
    let big = &cs[1];
    assert_eq!(
        (big.id, big.chunk_size, big.number, big.age),
        (17, 3632, 1, 0)
    );
    let total: u64 = cs.iter().map(|c| c.number).sum();
    assert_eq!(total, c.stats().curr_items);
    // classes that had items stay listed
    c.delete(b"big");
    let cs = c.class_stats();
    assert_eq!(cs.len(), 2);
    assert_eq!((cs[1].number, cs[1].age), (0, 0));
    // evictions are counted per class
    for i in 0..2000 {
        c.store(
            StoreOp::Set,
            format!("fill{i}").as_bytes(),
            0,
            clock.now() + 100,
            &[b'v'; 1000],
        );
    }
    let cs = c.class_stats();
    let evicted: u64 = cs.iter().map(|c| c.evicted).sum();
    assert_eq!(evicted, c.stats().evictions);
    let nonzero: u64 = cs.iter().map(|c| c.evicted_nonzero).sum();
    assert!(nonzero > 0 && nonzero < evicted, "only fills had deadlines");
}

/// A shard lock found held is counted for that shard only.
#[test]
fn lock_contention_is_counted_per_shard() {
    let (c, _clock) = cache_with(64 * MB, 4, true);
    assert_eq!(c.lock_contention(), vec![0; 4]);
    let key = b"contended";
    let (s, _) = c.locate(key);
    let held = c.lock(s);
    std::thread::scope(|scope| {
        let t = scope.spawn(|| c.get(key, |_| ()).0);
        // the reader waits for the lock (counted) until it is released
        while c.lock_contention()[s] == 0 {
            std::thread::yield_now();
        }
        drop(held);
        assert_eq!(t.join().unwrap(), Lookup::Miss);
    });
    let mut want = vec![0; 4];
    want[s] = 1;
    assert_eq!(c.lock_contention(), want);
}
