//! What the record layout (`item`) means for the cache: the deadline field
//! a record may lack (a touch then writes the item anew, keeping its
//! value, cas unique and marks), and cas uniques that survive every move.

use super::*;
use crate::storage::types::{ArithOpts, DeleteAction, DeleteOutcome, MetaArithOutcome};

/// Whether `key`'s record has room for a deadline in place.
fn has_deadline_field(c: &Cache, key: &str) -> bool {
    let (s, hash) = c.locate(key.as_bytes());
    let shard = c.lock(s);
    let (it, _) = shard.peek(hash, key.as_bytes()).expect("present");
    it.can_hold_deadline(1)
}

#[test]
fn small_items_without_a_ttl_have_no_deadline_field() {
    let (c, clock) = cache();
    set(&c, "plain", b"v");
    c.store(StoreOp::Set, b"ttl", 0, clock.now() + 9, b"v");
    set(&c, "big", &[b'b'; item::DEADLINE_FIELD_FROM]);
    assert!(!has_deadline_field(&c, "plain"));
    assert!(has_deadline_field(&c, "ttl"));
    assert!(
        has_deadline_field(&c, "big"),
        "large records always have one"
    );
    let (m, _) = cache_with(64 * MB, 4, false);
    set(&m, "plain", b"v");
    assert!(
        has_deadline_field(&m, "plain"),
        "under -M every record has one"
    );
    c.check();
}

#[test]
fn touch_gives_a_deadline_to_an_item_written_without_one() {
    let (c, clock) = cache();
    c.store(StoreOp::Set, b"t", 7, 0, b"value");
    assert!(get(&c, "t").is_some(), "fetched before the touch");
    let cas = cas_of(&c, "t");
    let now = clock.now();
    assert!(c.touch(b"t", now + 10));
    assert!(has_deadline_field(&c, "t"));
    let meta = c.item_meta(b"t").expect("live");
    assert_eq!(meta.exp, Some(clock.epoch_unix() + u64::from(now + 10)));
    assert!(meta.fetched, "marks carried over");
    assert_eq!(
        gets(&c, "t"),
        Some((7, b"value".to_vec(), cas)),
        "same item"
    );
    // gat on another item without the field, and a TTL back to never
    set(&c, "g", b"gv");
    let got = c.get_and_touch(b"g", now + 3, |it| (it.data.to_vec(), it.cas));
    assert_eq!(got.1.map(|(v, _)| v), Some(b"gv".to_vec()));
    assert!(c.touch(b"t", 0));
    clock.advance(5);
    assert_eq!(c.get(b"g", |_| ()).0, Lookup::Expired);
    clock.advance(10);
    assert!(get(&c, "t").is_some(), "touched back to never");
    let st = c.stats();
    assert_eq!(st.curr_items, 1);
    assert_eq!(st.total_items, 2, "a rewrite is not a new item");
    c.check();
}

#[test]
fn meta_touch_sees_the_new_deadline_at_once() {
    let (c, clock) = cache();
    set(&c, "m", b"v");
    let now = clock.now();
    let seen = c.meta_read(b"m", true, |view| {
        let before = view.deadline();
        view.set_deadline(now + 30);
        (before, view.deadline())
    });
    assert_eq!(seen, (Lookup::Hit, Some((0, now + 30))));
    let seen = c.meta_read(b"m", false, |view| (view.deadline(), view.fetched()));
    assert_eq!(seen.1, Some((now + 30, true)));
    // setting and taking back within one command leaves it as it was
    set(&c, "n", b"v");
    c.meta_read(b"n", false, |view| {
        view.set_deadline(now + 30);
        view.set_deadline(0);
    });
    assert!(!has_deadline_field(&c, "n"));
    c.check();
}

#[test]
fn incr_with_a_touch_pads_and_keeps_the_item() {
    let (c, clock) = cache();
    set(&c, "n", b"100");
    let before = cas_of(&c, "n");
    let now = clock.now();
    let opts = ArithOpts {
        touch: Some(now + 5),
        ..ArithOpts::default()
    };
    let out = c.meta_incr_decr(b"n", 1, false, &opts);
    let MetaArithOutcome::Done {
        value,
        cas,
        deadline,
    } = out
    else {
        panic!("{out:?}");
    };
    assert_eq!((value, deadline), (99, now + 5));
    assert!(cas > before, "a change takes a new unique");
    assert_eq!(get(&c, "n"), Some(b"99 ".to_vec()), "padded as in place");
    assert_eq!(cas_of(&c, "n"), cas);
    clock.advance(6);
    assert_eq!(c.get(b"n", |_| ()).0, Lookup::Expired);
    c.check();
}

#[test]
fn invalidate_with_a_ttl_on_an_item_without_a_deadline_field() {
    let (c, clock) = cache();
    set(&c, "i", b"v");
    let now = clock.now();
    let action = DeleteAction::Invalidate {
        deadline: Some(now + 4),
        cas: Some(777),
    };
    assert_eq!(c.meta_delete(b"i", None, action), DeleteOutcome::Done);
    let seen = c.meta_read(b"i", false, |v| {
        (v.stale(), v.win_sent(), v.cas(), v.deadline())
    });
    assert_eq!(seen.1, Some((true, false, 777, now + 4)));
    c.check();
}

#[test]
fn touches_under_memory_pressure_keep_the_cache_consistent() {
    let (c, clock) = cache_with(2 * MB, 1, true);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for i in 0..scaled(60_000, 4) {
        let key = format!("k{}", rng.below(20_000));
        if rng.below(3) == 0 {
            c.touch(key.as_bytes(), clock.now() + 100);
        } else {
            set(&c, &key, &[b'v'; 90]);
        }
        if i % 5000 == 0 {
            c.check();
        }
    }
    assert!(c.stats().evictions > 0, "the cache was full");
    c.check();
}

#[test]
fn uniques_survive_compaction_and_second_chances() {
    // one shard of 64 KiB segments, filled and turned over several times:
    // the items kept (read, so referenced) keep their uniques
    let (c, _) = cache_with(512 * 1024, 1, true);
    let keys: Vec<String> = (0..200).map(|i| format!("keep{i}")).collect();
    for k in &keys {
        set(&c, k, &[b'k'; 100]);
    }
    let uniques: Vec<u64> = keys.iter().map(|k| cas_of(&c, k)).collect();
    let explicit = WriteOpts {
        cas: Some(1 << 40),
        ..WriteOpts::default()
    };
    let (out, _) = c.store_with(StoreOp::Set, b"explicit", 0, 0, b"e", &explicit);
    assert_eq!(out, StoreOutcome::Stored);
    for round in 0..6 {
        for i in 0..3000 {
            set(&c, &format!("fill{round}-{i}"), &[b'f'; 100]);
            if i % 100 == 0 {
                // keep them referenced
                for k in &keys {
                    assert!(get(&c, k).is_some(), "{k} evicted in round {round}");
                }
                assert!(get(&c, "explicit").is_some());
            }
        }
    }
    assert!(c.stats().clock_second_chance > 0, "segments were recycled");
    for (k, u) in keys.iter().zip(&uniques) {
        assert_eq!(cas_of(&c, k), *u, "{k} moved and kept its unique");
        assert_eq!(
            c.store(StoreOp::Cas(*u), k.as_bytes(), 0, 0, b"new"),
            StoreOutcome::Stored
        );
    }
    assert_eq!(cas_of(&c, "explicit"), 1 << 40);
    c.check();
}

#[test]
fn under_no_evict_a_touch_in_a_full_cache_needs_no_memory() {
    let (c, clock) = cache_with(MB, 1, false);
    let mut n = 0;
    while set(&c, &format!("k{n}"), &[b'v'; 100]) == StoreOutcome::Stored {
        n += 1;
    }
    assert!(n > 1000, "filled with {n} items");
    let now = clock.now();
    for i in 0..n {
        assert!(c.touch(format!("k{i}").as_bytes(), now + 5), "k{i}");
    }
    assert_eq!(c.stats().curr_items, n as u64, "nothing lost or evicted");
    clock.advance(6);
    assert_eq!(c.get(b"k0", |_| ()).0, Lookup::Expired);
    c.check();
}
