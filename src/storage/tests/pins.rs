//! Values held for replies (pins): what a reply holds never changes,
//! whatever happens to its item, its memory stays inside the ceiling until
//! the reply lets go, and the limit on pinned bytes is kept.

use super::*;
use crate::storage::mapping::PAGE;

/// A value of a large item (its own mapping), distinct per `seed`.
fn big(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i % 251) as u8))
        .collect()
}

/// `key`'s value held as a reply would hold it.
fn pin(c: &Cache, key: &str) -> Result<Pinned, Unpinned> {
    c.get(key.as_bytes(), |it| it.share.pin())
        .1
        .expect("the key is there")
}

#[test]
fn only_large_values_are_pinned() {
    let (c, _) = cache();
    set(&c, "small", &[b's'; 1000]);
    set(&c, "large", &big(1, 100_000));
    assert_eq!(pin(&c, "small").unwrap_err(), Unpinned::Small);
    let p = pin(&c, "large").expect("pinned");
    assert_eq!(p.as_ref(), &big(1, 100_000)[..]);
    assert_eq!(c.stats().pinned_bytes, pages(100_000 + 64) as u64);
    drop(p);
    assert_eq!(c.stats().pinned_bytes, 0);
    c.check();
}

/// Something that happens to the key `k`.
type Event<'a> = &'a dyn Fn(&Cache);

/// Rewrite, delete, expiry, flush and eviction of the key: the held bytes
/// stay what they were, and stay charged until let go.
#[test]
fn a_held_value_outlives_whatever_happens_to_its_item() {
    let _g = heavy();
    let (c, clock) = cache_with(8 * MB, 1, true);
    let value = big(7, 300_000);
    let cases: [(&str, Event); 5] = [
        ("rewrite", &|c| {
            assert_eq!(set(c, "k", &big(9, 300_000)), StoreOutcome::Stored)
        }),
        ("delete", &|c| assert!(c.delete(b"k"))),
        ("expiry", &|c| {
            assert!(c.touch(b"k", clock.now() + 1));
            clock.advance(2);
            c.tick();
        }),
        ("flush", &|c| c.flush_all(None)),
        ("eviction", &|c| {
            for i in 0..100 {
                set(c, &format!("filler{i}"), &big(3, 200_000));
            }
        }),
    ];
    for (what, happen) in cases {
        assert_eq!(set(&c, "k", &value), StoreOutcome::Stored, "{what}");
        let before = c.stats().bytes;
        let held = pin(&c, "k").expect("pinned");
        happen(&c);
        assert_eq!(held.as_ref(), &value[..], "{what}: the held bytes");
        assert!(
            c.stats().bytes <= 8 * MB as u64,
            "{what}: within the ceiling"
        );
        if what != "eviction" {
            // the dead item's mapping is still charged while held
            assert!(c.stats().bytes >= before, "{what}: still charged");
        }
        drop(held);
        assert_eq!(c.stats().pinned_bytes, 0, "{what}");
        c.check();
    }
}

#[test]
fn incr_does_not_write_a_held_value_in_place() {
    let (c, _) = cache();
    let mut digits = b"41".to_vec();
    digits.resize(50_000, b' ');
    set(&c, "n", &digits);
    let held = pin(&c, "n").expect("pinned");
    assert_eq!(c.incr_decr(b"n", 1, true), ArithOutcome::Value(42));
    assert_eq!(&held.as_ref()[..2], b"41", "the reply's bytes");
    assert_eq!(get(&c, "n").as_deref(), Some(&b"42"[..]), "a new record");
    drop(held);
    c.check();
}

#[test]
fn the_limit_on_pinned_bytes_is_kept() {
    let (c, _) = cache_with(16 * MB, 1, true);
    for i in 0..6 {
        set(&c, &format!("v{i}"), &big(i as u8, MB - 100));
    }
    // half the ceiling by default: 8 MiB, so 7 values of a MiB and a page
    assert_eq!(c.stats().pinned_limit, 8 * MB as u64);
    c.set_pinned_limit(3 * MB + 3 * PAGE);
    let held: Vec<Pinned> = (0..3)
        .map(|i| pin(&c, &format!("v{i}")).expect("within the limit"))
        .collect();
    assert_eq!(pin(&c, "v3").unwrap_err(), Unpinned::OverLimit);
    assert_eq!(c.stats().pinned_refused, 1);
    // a value already held costs nothing more to hold again
    let again = pin(&c, "v0").expect("held already");
    drop(again);
    drop(held);
    assert!(pin(&c, "v3").is_ok(), "room again once let go");
    c.set_pinned_limit(0);
    assert_eq!(pin(&c, "v3").unwrap_err(), Unpinned::Off);
    c.check();
}

/// Every large item held and the limit as high as the ceiling: writes
/// that need memory end (stored or refused), never spin or wait.
#[test]
fn eviction_under_pins_ends() {
    let (c, _) = cache_with(8 * MB, 1, true);
    c.set_pinned_limit(64 * MB);
    let mut held = Vec::new();
    for i in 0..7 {
        set(&c, &format!("v{i}"), &big(i as u8, MB - 100));
        held.push(pin(&c, &format!("v{i}")).expect("pinned"));
    }
    let mut stored = 0;
    for i in 0..20 {
        match set(&c, &format!("w{i}"), &big(1, MB - 100)) {
            StoreOutcome::Stored => stored += 1,
            StoreOutcome::NoMemory => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(c.stats().bytes <= 8 * MB as u64);
    for (i, p) in held.iter().enumerate() {
        assert_eq!(p.as_ref(), &big(i as u8, MB - 100)[..]);
    }
    drop(held);
    // with nothing held, writes find memory again
    assert_eq!(set(&c, "after", &big(2, MB - 100)), StoreOutcome::Stored);
    assert!(stored < 20 || c.stats().evictions > 0);
    c.check();
}
