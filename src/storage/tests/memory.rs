//! Workloads against the memory ceiling: random and concurrent writes stay
//! under it, what is charged is what becomes resident, and what an item
//! costs.

use super::*;
use std::sync::atomic::Ordering;

#[test]
fn random_workload_stays_within_the_limit_and_consistent() {
    let _g = heavy();
    let limit = 16 * MB;
    let (c, clock) = cache_with(limit, 4, true);
    let mut rng = Rng(0x2545F4914F6CDD1D);
    let data = vec![b'd'; 600 * 1024];
    let ops = scaled(200_000, 10);
    for i in 0..ops {
        let key = format!("key{}", rng.below(3000));
        let k = key.as_bytes();
        match rng.below(100) {
            0..=49 => {
                let len = rng.size(10, 512 * 1024);
                let deadline = if rng.below(4) == 0 {
                    clock.now() + 1 + rng.below(5) as u32
                } else {
                    0
                };
                let out = c.store(StoreOp::Set, k, 0, deadline, &data[..len]);
                assert_eq!(out, StoreOutcome::Stored, "{len} bytes");
            }
            50..=59 => {
                let len = rng.size(1, 4096);
                let op = if rng.below(2) == 0 {
                    StoreOp::Append
                } else {
                    StoreOp::Prepend
                };
                c.store(op, k, 0, 0, &data[..len]);
            }
            60..=69 => {
                c.delete(k);
            }
            70..=84 => {
                c.get(k, |it| it.data.len());
            }
            85..=94 => {
                if rng.below(2) == 0 {
                    c.store(StoreOp::Set, k, 0, 0, b"9");
                }
                c.incr_decr(k, rng.next() % 1000, rng.below(2) == 0);
            }
            _ => {
                clock.advance(1);
                c.tick();
            }
        }
        assert!(
            c.budget.used() <= limit,
            "op {i}: {} > {limit}",
            c.budget.used()
        );
        if i % 1000 == 0 {
            c.check();
        }
    }
    let st = c.stats();
    assert!(st.evictions > 0, "the workload overflows the cache");
    assert!(st.bytes <= st.limit_maxbytes);
    c.check();
    // after deleting everything, the segments (dead bytes until they
    // are recycled) and the index remain, and are what is charged
    for i in 0..3000 {
        c.delete(format!("key{i}").as_bytes());
    }
    let charged = c.check();
    assert_eq!(c.stats().curr_items, 0);
    let (mapped, index_slots): (usize, usize) = (0..4)
        .map(|s| {
            let sh = c.lock(s);
            (sh.mapped_bytes(), sh.index_slots())
        })
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    assert!(charged >= mapped + index_slots * 8);
    assert!(charged <= mapped + index_slots * 8 + 4 * 4096);
}

#[test]
fn concurrent_writes_stay_within_the_limit() {
    let _g = heavy();
    let limit = 4 * MB;
    let (c, clock) = cache_with(limit, 8, true);
    let c = Arc::new(c);
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (c, stop) = (c.clone(), stop.clone());
        thread::spawn(move || {
            let mut max = 0;
            while !stop.load(Ordering::Relaxed) {
                max = max.max(c.budget.used());
                thread::yield_now();
            }
            max
        })
    };
    let workers: Vec<_> = (0..4u64)
        .map(|t| {
            let (c, clock) = (c.clone(), clock.clone());
            thread::spawn(move || {
                let mut rng = Rng(0x9E3779B97F4A7C15 ^ ((t + 1) * 0x1234567));
                let data = vec![b'd'; 300 * 1024];
                for _ in 0..scaled(50_000, 10) {
                    let key = format!("key{}", rng.below(5000));
                    match rng.below(10) {
                        0..=5 => {
                            let len = rng.size(10, 256 * 1024);
                            let out = c.store(StoreOp::Set, key.as_bytes(), 0, 0, &data[..len]);
                            assert_eq!(out, StoreOutcome::Stored);
                        }
                        6 => {
                            c.store(StoreOp::Append, key.as_bytes(), 0, 0, &data[..100]);
                        }
                        7 => {
                            c.delete(key.as_bytes());
                        }
                        8 => {
                            c.get(key.as_bytes(), |it| it.data.len());
                        }
                        _ => {
                            if t == 0 {
                                clock.advance(1);
                            }
                            c.tick();
                        }
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let max = watcher.join().unwrap();
    assert!(max <= limit, "{max} > {limit}");
    let st = c.stats();
    assert!(st.evictions > 0);
    c.check();
}

#[test]
fn concurrent_increments_count_exactly_once() {
    let (c, _) = cache_with(64 * MB, 4, true);
    let c = Arc::new(c);
    let keys: Vec<String> = (0..8).map(|i| format!("counter{i}")).collect();
    for k in &keys {
        set(&c, k, b"0");
    }
    let threads = 4;
    let per_thread = scaled(20_000, 10);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (c, keys) = (c.clone(), keys.clone());
            thread::spawn(move || {
                let mut seen: Vec<Vec<u64>> = vec![Vec::new(); keys.len()];
                for i in 0..per_thread {
                    let k = (i + t) % keys.len();
                    match c.incr_decr(keys[k].as_bytes(), 1, true) {
                        ArithOutcome::Value(v) => seen[k].push(v),
                        other => panic!("{other:?}"),
                    }
                    // readers and writers of other keys in the same shards
                    c.get(keys[(i * 7) % keys.len()].as_bytes(), |it| it.data.len());
                    c.store(
                        StoreOp::Set,
                        format!("other{}", i % 100).as_bytes(),
                        0,
                        0,
                        b"xyz",
                    );
                }
                seen
            })
        })
        .collect();
    let mut all: Vec<Vec<u64>> = vec![Vec::new(); keys.len()];
    for h in handles {
        for (k, vs) in h.join().unwrap().into_iter().enumerate() {
            all[k].extend(vs);
        }
    }
    for (k, key) in keys.iter().enumerate() {
        let n = all[k].len() as u64;
        let v = get(&c, key).unwrap();
        let v: u64 = String::from_utf8(v).unwrap().trim_end().parse().unwrap();
        assert_eq!(v, n, "{key}: every increment counted once");
        all[k].sort_unstable();
        assert_eq!(
            all[k],
            (1..=n).collect::<Vec<_>>(),
            "each increment saw its own value"
        );
    }
    c.check();
}

#[test]
fn set_memory_limit_shrinks_and_grows() {
    let _g = heavy();
    let (c, _) = cache_with(4 * MB, 4, false);
    let v = vec![b'x'; 1000];
    for i in 0..3000 {
        assert_eq!(set(&c, &format!("k{i}"), &v), StoreOutcome::Stored);
    }
    let full = c.stats();
    assert_eq!(full.evictions, 0);
    c.set_memory_limit(MB);
    let st = c.stats();
    assert_eq!(st.limit_maxbytes, MB as u64);
    assert!(st.bytes <= MB as u64, "{st:?}");
    assert!(st.evictions > 0 && st.curr_items + st.evictions == 3000);
    assert!(
        st.curr_items > 500,
        "evicted down to the limit, not below it: {st:?}"
    );
    // newest survive
    assert!(get(&c, "k2999").is_some());
    assert_eq!(
        set(&c, "after", &vec![b'y'; 400 * 1024]),
        StoreOutcome::NoMemory,
        "-M: full"
    );
    c.set_memory_limit(8 * MB);
    assert_eq!(
        set(&c, "after", &vec![b'y'; 400 * 1024]),
        StoreOutcome::Stored
    );
    c.check();
    // a limit below the arena and index: everything goes, no hang
    c.set_memory_limit(1000);
    assert_eq!(c.stats().curr_items, 0);
    c.check();
}

/// Resident bytes of this process (/proc/self/statm): heap and mappings.
#[cfg(target_os = "linux")]
fn resident() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = statm.split(' ').nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// Fills a cache with `n` items of 10 B to `max` bytes and returns
/// (resident growth, accounted bytes, the cache's slack: one open
/// segment per shard whose pages may not have been touched yet).
#[cfg(target_os = "linux")]
fn resident_vs_accounting(n: usize, max: usize, seed: u64) -> (usize, usize, usize) {
    let before = resident();
    let (c, _) = cache_with(256 * MB, 8, true);
    let mut rng = Rng(seed);
    let data = vec![b'x'; max];
    let mut key = String::new();
    for i in 0..n {
        use std::fmt::Write;
        key.clear();
        let _ = write!(key, "key:{i}");
        let len = rng.size(10, max);
        c.store(StoreOp::Set, key.as_bytes(), 0, 0, &data[..len]);
    }
    let accounted = c.check();
    let real = resident().saturating_sub(before);
    let slack = 8 * SEGMENT;
    eprintln!("{n} items up to {max} B: resident grew {real}, accounted {accounted}");
    (real, accounted, slack)
}

#[cfg(target_os = "linux")]
#[test]
#[ignore = "run alone in a child process by accounted_bytes_match_the_heap"]
fn heap_vs_accounting_alone() {
    // what becomes resident is what was charged: never more (plus the
    // uncharged rest: shard locks and counters, the data buffer, < 2 MB),
    // and less only by the open segments' untouched pages
    for (n, max, seed) in [
        (scaled(200_000, 10), 64 * 1024, 77),
        (scaled(20_000, 10), 512 * 1024, 78),
    ] {
        let (real, accounted, slack) = resident_vs_accounting(n, max, seed);
        assert!(
            real <= accounted + 2 * MB,
            "undercharged: resident {real}, accounted {accounted}"
        );
        assert!(
            accounted <= real + slack + MB,
            "overcharged: resident {real}, accounted {accounted}"
        );
    }
}

/// Resident memory is the whole process's, so the measurement runs in
/// a process of its own (this test binary, filtered to that one test).
#[cfg(target_os = "linux")]
#[test]
fn accounted_bytes_match_the_heap() {
    let name = "storage::tests::memory::heap_vs_accounting_alone";
    let exe = std::env::current_exe().expect("test binary path");
    let out = std::process::Command::new(exe)
        .args([
            name,
            "--exact",
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .output()
        .expect("run the test binary");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "did not run: {stdout}");
    eprintln!("{stderr}");
}

#[test]
fn million_items_fill_stays_under_the_limit() {
    let _g = heavy();
    let n = scaled(1_000_000, 20);
    let value = [b'v'; 100];
    // room for all: what one item really costs
    let (c, _) = cache_with(n * 256, 16, true);
    for i in 0..n {
        let key = format!("key:{i:010}"); // 14 bytes
        assert_eq!(
            c.store(StoreOp::Set, key.as_bytes(), 0, 0, &value),
            StoreOutcome::Stored
        );
    }
    let st = c.stats();
    assert_eq!((st.curr_items, st.evictions), (n as u64, 0));
    let per_item = st.bytes as f64 / n as f64;
    eprintln!("{n} items of 14 + 100 bytes: {per_item:.1} bytes each");
    // release, 1M items: ~186 (memcached: ~192); debug's 50k items
    // land at a less favourable index load
    assert!(per_item < 200.0, "{per_item} bytes per item");
    drop(c);
    // 64 MB (scaled): evicts and keeps the total under the limit
    let limit = 64 * MB * n / 1_000_000;
    let (c, _) = cache_with(limit, 16, true);
    for i in 0..n {
        let key = format!("key:{i:010}");
        assert_eq!(
            c.store(StoreOp::Set, key.as_bytes(), 0, 0, &value),
            StoreOutcome::Stored
        );
    }
    let st = c.stats();
    assert!(st.bytes <= limit as u64);
    assert_eq!(st.evictions + st.curr_items, n as u64);
    eprintln!("-m {} MB keeps {} items", limit / MB, st.curr_items);
    assert!(st.curr_items as usize > limit / 192, "{st:?}");
    c.check();
}

/// Issue 15's example: ten 65 KB items expire and ten new ones of the same
/// size are set, with no sweep in between: the memory in use stays what it
/// was, as memcached's does. In one shard, a write reuses what expired
/// items at the old end hold before mapping new memory; over many shards,
/// a shard's first key costs no index table (they exist from the start).
#[test]
fn expired_items_memory_is_reused_before_new_memory_is_charged() {
    let value = vec![b'v'; 65_000];
    for shards in [1, 64] {
        let (c, clock) = cache_with(64 * MB, shards, true);
        let empty = c.stats().bytes;
        for i in 0..10 {
            let key = format!("old{i}");
            let out = c.store(StoreOp::Set, key.as_bytes(), 0, clock.now() + 1, &value);
            assert_eq!(out, StoreOutcome::Stored);
        }
        let full = c.stats().bytes;
        assert!(full > empty + 10 * 65_000, "{empty} {full}");
        clock.advance(2);
        if shards > 1 {
            // other shards' expired items are the sweep's (`tick`)
            c.tick();
        }
        for i in 0..10 {
            let key = format!("new{i}");
            assert_eq!(
                c.store(StoreOp::Set, key.as_bytes(), 0, 0, &value),
                StoreOutcome::Stored
            );
        }
        assert_eq!(c.stats().bytes, full, "{shards} shards");
        assert_eq!(c.stats().curr_items, 10);
        c.check();
    }
}

/// Small items too: segments of expired items are recycled before new ones
/// are mapped, without waiting for the sweep. (One segment more at most:
/// the one open when the old items expired holds new ones too. Without
/// the reclaim the new items took 8 more. The index may grow a step
/// meanwhile: expired keys leave it as they are met.)
#[test]
fn expired_small_items_make_room_in_their_segment() {
    let (c, clock) = cache_with(64 * MB, 1, true);
    let value = vec![b'v'; 500];
    let mut i = 0;
    let full = loop {
        let key = format!("old{i}");
        c.store(StoreOp::Set, key.as_bytes(), 0, clock.now() + 1, &value);
        i += 1;
        if i == 1000 {
            let st = c.stats();
            break st.bytes - st.hash_bytes;
        }
    };
    clock.advance(2);
    for j in 0..1000 {
        let key = format!("new{j}");
        assert_eq!(
            c.store(StoreOp::Set, key.as_bytes(), 0, 0, &value),
            StoreOutcome::Stored
        );
    }
    let st = c.stats();
    let grown = (st.bytes - st.hash_bytes).saturating_sub(full);
    assert!(grown <= 64 * 1024, "{grown} bytes more");
    c.check();
}
