//! Warm restart (`-e`) through `Cache::open` and `Cache::save`: what a
//! saved cache brings back, and every damage that must start clean.

use super::*;
use crate::storage::persist::meta_path;
use std::path::{Path, PathBuf};

/// A memory file path of its own per test (tmpfs when there is one).
fn file(name: &str) -> PathBuf {
    let dir = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let p = dir.join(format!("fc-warm-{}-{name}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    let _ = std::fs::remove_file(meta_path(&p));
    p
}

fn config(limit: usize) -> CacheConfig {
    CacheConfig {
        memory_limit: limit,
        evict: true,
        shards: 8,
        item_size_max: MB,
        cas: true,
    }
}

fn open(path: &Path, config: CacheConfig) -> (Cache, Restart, Arc<Clock>) {
    open_at(path, config, Arc::new(Clock::new()))
}

fn open_at(path: &Path, config: CacheConfig, clock: Arc<Clock>) -> (Cache, Restart, Arc<Clock>) {
    let f = MemoryFile::open(path, config.memory_limit).expect("memory file");
    let (c, r) = Cache::open(config, clock.clone(), f);
    (c, r, clock)
}

fn clean(r: &Restart) -> &Refusal {
    match r {
        Restart::Clean(why) => why,
        other => panic!("expected a clean start, got {other}"),
    }
}

fn restored(r: &Restart) -> u64 {
    match r {
        Restart::Restored { items, .. } => *items,
        Restart::Clean(why) => panic!("expected a restore: {why}"),
    }
}

fn done(path: &Path) {
    let _ = std::fs::remove_file(path);
    let _ = std::fs::remove_file(meta_path(path));
}

#[test]
fn items_come_back_with_flags_cas_deadlines_and_marks() {
    let path = file("items");
    let (c, r, clock) = open(&path, config(16 * MB));
    assert_eq!(clean(&r), &Refusal::NoMetadata);
    let big = vec![7u8; 300 * 1024];
    let mut want = Vec::new();
    for i in 0..2000 {
        let key = format!("key{i}");
        let value = format!("value-{i}").repeat(i % 7 + 1);
        c.store(StoreOp::Set, key.as_bytes(), i as u32, 0, value.as_bytes());
        want.push(key);
    }
    set(&c, "big", &big);
    c.store(StoreOp::Set, b"ttl", 0, clock.now() + 1000, b"lives");
    c.store(StoreOp::Set, b"short", 0, clock.now() + 1, b"dies");
    let opts = WriteOpts {
        binary_key: true,
        ..WriteOpts::default()
    };
    c.store_with(StoreOp::Set, b"\x01bin", 0, 0, b"b64", &opts);
    c.delete(b"key5");
    let before: Vec<_> = want.iter().map(|k| gets(&c, k)).collect();
    let bases = c.cas_bases.load(Ordering::Relaxed);
    let live = c.stats().curr_items;
    c.check();
    assert_eq!(c.save().unwrap().unwrap().items, live);
    drop(c);
    assert!(meta_path(&path).exists());

    let clock2 = Arc::new(Clock::new());
    clock2.advance(5);
    let (c, r, _) = open_at(&path, config(16 * MB), clock2.clone());
    assert_eq!(restored(&r), live - 1, "all but the one that expired: {r}");
    assert!(!meta_path(&path).exists(), "a start removes the metadata");
    c.check();
    for (k, b) in want.iter().zip(&before) {
        assert_eq!(&gets(&c, k), b, "{k}");
    }
    assert_eq!(get(&c, "big").as_deref(), Some(&big[..]));
    assert_eq!(get(&c, "short"), None, "expired while down");
    let meta = c.item_meta(b"ttl").unwrap();
    let left = meta.exp.expect("a deadline stays a deadline") as i64 - clock2.unix_now() as i64;
    assert!((990..=1000).contains(&left), "{left} s left");
    let mut binary = false;
    c.meta_read(b"\x01bin", false, |v| binary = v.binary_key());
    assert!(binary, "the base64 mark survives");
    assert_eq!(c.stats().curr_items, live - 1);
    // the cas base counter goes on above the saved one, and new uniques
    // are none of the restored ones
    assert!(c.cas_bases.load(Ordering::Relaxed) >= bases);
    let old: std::collections::HashSet<u64> = before.iter().flatten().map(|g| g.2).collect();
    for _ in 0..3 {
        c.store(StoreOp::Set, b"new", 0, 0, b"x");
        let cas = gets(&c, "new").unwrap().2;
        assert!(!old.contains(&cas), "{cas} repeats a restored unique");
    }
    set(&c, "big3", &big);
    assert!(!old.contains(&gets(&c, "big3").unwrap().2));
    // a restored large item's region goes back when it is deleted
    assert!(c.delete(b"big"));
    set(&c, "big2", &big);
    c.check();
    drop(c);
    done(&path);
}

#[test]
fn a_start_without_a_save_is_clean_and_a_flush_carries_over() {
    let path = file("flush");
    let (c, _, _) = open(&path, config(8 * MB));
    set(&c, "old", b"1");
    c.flush_all(None);
    set(&c, "new", b"2");
    c.save().unwrap();
    drop(c);
    let (c, r, _) = open(&path, config(8 * MB));
    assert_eq!(restored(&r), 1);
    assert_eq!(
        (get(&c, "old"), get(&c, "new")),
        (None, Some(b"2".to_vec()))
    );
    drop(c); // not saved: a crash as far as the file knows
    let (c, r, _) = open(&path, config(8 * MB));
    assert_eq!(clean(&r), &Refusal::NoMetadata);
    assert_eq!(get(&c, "new"), None);
    c.check();
    drop(c);
    done(&path);
}

#[test]
fn other_settings_and_damaged_files_start_clean() {
    let path = file("damage");
    let fill = |c: &Cache| {
        for i in 0..500 {
            set(c, &format!("k{i}"), format!("v{i}").as_bytes());
        }
        c.save().unwrap();
    };
    let (c, _, _) = open(&path, config(8 * MB));
    fill(&c);
    drop(c);
    let mut other = config(8 * MB);
    other.item_size_max = 2 * MB;
    let (c, r, _) = open(&path, other);
    assert!(matches!(
        clean(&r),
        Refusal::Setting {
            name: "item_size_max",
            ..
        }
    ));
    assert_eq!(c.stats().curr_items, 0);
    drop(c);
    let (c, _, _) = open(&path, config(8 * MB));
    fill(&c);
    drop(c);
    // a byte of an item changed behind the cache's back
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(2).position(|w| w == b"v7").unwrap();
    bytes[at] = b'w';
    std::fs::write(&path, &bytes).unwrap();
    let (c, r, _) = open(&path, config(8 * MB));
    assert!(matches!(clean(&r), Refusal::Segment(_)), "{r}");
    assert_eq!((c.stats().curr_items, get(&c, "k7")), (0, None));
    c.check();
    fill(&c);
    drop(c);
    // zeroed metadata
    let len = std::fs::metadata(meta_path(&path)).unwrap().len();
    std::fs::write(meta_path(&path), vec![0; len as usize]).unwrap();
    let (c, r, _) = open(&path, config(8 * MB));
    assert!(matches!(clean(&r), Refusal::Damaged(_)), "{r}");
    fill(&c);
    drop(c);
    // a zeroed file under whole metadata
    std::fs::write(&path, vec![0; 8 * MB]).unwrap();
    let (c, r, _) = open(&path, config(8 * MB));
    assert!(matches!(clean(&r), Refusal::Segment(_)), "{r}");
    c.check();
    drop(c);
    done(&path);
}

#[test]
fn a_full_file_evicts_and_restores_consistently() {
    let path = file("full");
    let (c, _, _) = open(&path, config(8 * MB));
    for i in 0..20_000 {
        let size = [50, 900, 5000, 40_000][i % 4];
        set(&c, &format!("k{i}"), &vec![i as u8; size]);
        if i % 3 == 0 {
            c.delete(format!("k{}", i / 2).as_bytes());
        }
    }
    let live = c.stats().curr_items;
    assert!(live > 100 && c.stats().evictions > 0);
    c.check();
    c.save().unwrap();
    drop(c);
    let (c, r, _) = open(&path, config(8 * MB));
    assert_eq!(restored(&r), live);
    c.check();
    for i in 0..20_000 {
        set(&c, &format!("n{i}"), &vec![1; [50, 40_000][i % 2]]);
    }
    c.check();
    drop(c);
    done(&path);
}

/// Metadata that passes its checksum but lies (a crafted or buggy file):
/// every lie is refused, none panics or serves.
#[test]
fn lying_metadata_is_refused_without_a_panic() {
    use crate::storage::persist::Meta;
    let path = file("lies");
    let (c, _, _) = open(&path, config(8 * MB));
    for i in 0..300 {
        set(&c, &format!("k{i}"), &[b'v'; 100]);
    }
    set(&c, "big", &vec![b'b'; 100_000]);
    c.save().unwrap();
    drop(c);
    let good = std::fs::read(meta_path(&path)).unwrap();
    type Lie = fn(&mut Meta);
    let lies: &[(&str, Lie)] = &[
        ("used past everything", |m| m.segs[0].used = u64::MAX),
        ("length past everything", |m| m.segs[0].len = u64::MAX),
        ("offset past the file", |m| {
            m.segs[0].offset = u64::MAX - 4095
        }),
        ("the last sequence", |m| m.segs[0].seq = u64::MAX),
        ("a shard that is not there", |m| m.segs[0].shard = 9999),
        ("two segments in one place", |m| {
            m.segs[1].offset = m.segs[0].offset
        }),
        ("a large segment called normal", |m| {
            let s = m.segs.iter_mut().find(|s| s.large).unwrap();
            s.large = false;
        }),
        ("a normal segment called large", |m| {
            let s = m.segs.iter_mut().find(|s| !s.large).unwrap();
            s.large = true;
        }),
        ("another shard's segment", |m| {
            let other = (m.segs[0].shard + 1) % m.shards;
            m.segs[0].shard = other;
        }),
        ("half the shards", |m| m.shards /= 2),
    ];
    for (what, lie) in lies {
        let mut meta = Meta::decode(&good).unwrap();
        lie(&mut meta);
        std::fs::write(meta_path(&path), meta.encode()).unwrap();
        let (c, r, _) = open(&path, config(8 * MB));
        assert!(matches!(r, Restart::Clean(_)), "{what}: {r}");
        assert_eq!(c.stats().curr_items, 0, "{what}");
        c.check();
        drop(c);
    }
    // times from the far future or past: no panic, and what comes back is
    // consistent
    for epoch in [0, u64::MAX] {
        let mut meta = Meta::decode(&good).unwrap();
        meta.epoch_unix = epoch;
        std::fs::write(meta_path(&path), meta.encode()).unwrap();
        let (c, _, _) = open(&path, config(8 * MB));
        c.check();
        drop(c);
    }
    done(&path);
}

/// A delayed `flush_all` still ahead at the stop stays ahead (in the new
/// clock's seconds); one that came due while the server was down has
/// taken effect when it is back.
#[test]
fn a_delayed_flush_keeps_its_time_across_a_restart() {
    let path = file("delayed");
    for (down, flushed) in [(10, false), (200, true)] {
        let (c, _, clock) = open(&path, config(8 * MB));
        set(&c, "k", b"v");
        c.flush_all(Some(clock.now() + 100));
        c.save().unwrap();
        drop(c);
        let clock2 = Arc::new(Clock::new());
        clock2.advance(down);
        let (c, r, clock2) = open_at(&path, config(8 * MB), clock2);
        assert_eq!(restored(&r), u64::from(!flushed), "down {down} s: {r}");
        assert_eq!(get(&c, "k").is_none(), flushed, "down {down} s");
        if !flushed {
            clock2.advance(100);
            assert_eq!(get(&c, "k"), None, "the flush comes due on time");
        }
        c.check();
        drop(c);
        done(&path);
    }
}
