//! A shard's key → item id table: open addressing with linear probing,
//! Robin Hood ordered.
//!
//! Owns only slots of (32 hash bits, item id). Must not own keys: callers
//! pass a closure that compares the key of a candidate id, so a lookup
//! touches one item only when all 32 hash bits already match.
//!
//! A slot is a u64: the high half is the key's 32-bit hash (which also fixes
//! the home slot, so growing and deleting never rehash keys), the low half
//! is id + 1, with 0 meaning empty. The home slot is the hash scaled to the
//! table (`hash * slots >> 32`), so the table can have any size: it grows
//! by an eighth when it would pass a load of 15/16, and so stays between
//! 83% and 94% full. The high load is deliberate: the table is a twelfth
//! of what an item of ~100 bytes costs and a quarter of one of ~10 bytes,
//! and the memory ceiling counts it; doubling would leave it half empty
//! just after each growth, and in all the shards at once.
//!
//! Linear probing alone would make a miss at such a load walk ~130 slots.
//! Robin Hood order fixes that: an insert passes an entry only while the
//! entry is at least as far from its home as the new one would be, so each
//! run is sorted by home slot, and a lookup stops at the first entry closer
//! to its home than the key would be (expected probes at the peak: ~8.5
//! for a hit and about as many for a miss, two cache lines). Deletion
//! shifts the rest of the run back by one, so there are no tombstones and
//! lookups never degrade.

use super::item::malloc_charge;

const EMPTY: u64 = 0;
/// First table size (slots), allocated on the first insert.
const MIN_SLOTS: usize = 16;
/// Bytes per slot.
pub(super) const SLOT_SIZE: usize = std::mem::size_of::<u64>();

#[inline]
fn pack(hash: u32, id: u32) -> u64 {
    (u64::from(hash) << 32) | (u64::from(id) + 1)
}

#[inline]
fn hash_of(slot: u64) -> u32 {
    (slot >> 32) as u32
}

/// The home slot of `hash` in a table of `n` slots.
#[inline]
fn home(hash: u32, n: usize) -> usize {
    ((u64::from(hash) * n as u64) >> 32) as usize
}

/// The slot after `pos` in a table of `n` slots.
#[inline]
fn next(pos: usize, n: usize) -> usize {
    if pos + 1 == n {
        0
    } else {
        pos + 1
    }
}

/// How many steps forward `to` is from `from`, cyclically.
#[inline]
fn distance(from: usize, to: usize, n: usize) -> usize {
    if to >= from {
        to - from
    } else {
        to + n - from
    }
}

pub(super) struct Index {
    slots: Box<[u64]>,
    len: usize,
}

impl Index {
    pub(super) fn new() -> Index {
        Index {
            slots: Box::new([]),
            len: 0,
        }
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn slots(&self) -> usize {
        self.slots.len()
    }

    /// What the table's allocation costs (see [`malloc_charge`]).
    pub(super) fn bytes(&self) -> usize {
        Self::bytes_for(self.slots.len())
    }

    fn bytes_for(slots: usize) -> usize {
        malloc_charge(slots * SLOT_SIZE)
    }

    /// True when one more entry needs a bigger table.
    #[inline]
    pub(super) fn needs_grow(&self) -> bool {
        (self.len + 1) * 16 > self.slots.len() * 15
    }

    /// How many bytes [`Index::grow`] would add.
    pub(super) fn growth_bytes(&self) -> usize {
        Self::bytes_for(self.grown_slots()) - self.bytes()
    }

    fn grown_slots(&self) -> usize {
        (self.slots.len() + self.slots.len() / 8).max(MIN_SLOTS)
    }

    /// Grows the table by an eighth (rehashing by the stored hash bits, not
    /// the keys).
    pub(super) fn grow(&mut self) {
        let new_len = self.grown_slots();
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; new_len].into_boxed_slice());
        for &s in old.iter().filter(|&&s| s != EMPTY) {
            self.place(s);
        }
    }

    /// How far the entry in slot `pos` is from its home.
    #[inline]
    fn displacement(&self, pos: usize) -> usize {
        let n = self.slots.len();
        distance(home(hash_of(self.slots[pos]), n), pos, n)
    }

    /// Puts slot value `s` in the table (which has an empty slot) in Robin
    /// Hood order: it takes the place of the first entry nearer its home
    /// than `s` would be there, which moves on in turn.
    fn place(&mut self, mut s: u64) {
        let n = self.slots.len();
        let mut pos = home(hash_of(s), n);
        let mut dist = 0;
        loop {
            if self.slots[pos] == EMPTY {
                self.slots[pos] = s;
                return;
            }
            let theirs = self.displacement(pos);
            if theirs < dist {
                s = std::mem::replace(&mut self.slots[pos], s);
                dist = theirs;
            }
            pos = next(pos, n);
            dist += 1;
        }
    }

    /// Finds the entry with `hash` whose id satisfies `is_key`; returns its
    /// slot position and id.
    #[inline]
    pub(super) fn find(
        &self,
        hash: u32,
        mut is_key: impl FnMut(u32) -> bool,
    ) -> Option<(usize, u32)> {
        if self.slots.is_empty() {
            return None;
        }
        let n = self.slots.len();
        let mut pos = home(hash, n);
        let mut dist = 0;
        loop {
            let s = self.slots[pos];
            // an entry nearer its home than the key would be: the key
            // would have taken its place (Robin Hood order)
            if s == EMPTY || self.displacement(pos) < dist {
                return None;
            }
            if hash_of(s) == hash {
                let id = (s as u32).wrapping_sub(1);
                if is_key(id) {
                    return Some((pos, id));
                }
            }
            pos = next(pos, n);
            dist += 1;
        }
    }

    /// The slot position of entry (`hash`, `id`).
    pub(super) fn find_id(&self, hash: u32, id: u32) -> Option<usize> {
        self.find(hash, |c| c == id).map(|(pos, _)| pos)
    }

    /// Points the entry at `pos` to `id` (its item moved).
    pub(super) fn set_id(&mut self, pos: usize, id: u32) {
        debug_assert!(self.slots[pos] != EMPTY && id != u32::MAX);
        self.slots[pos] = pack(hash_of(self.slots[pos]), id);
    }

    /// Adds an entry whose key is not in the table. The caller has grown the
    /// table when [`Index::needs_grow`] said so.
    pub(super) fn insert(&mut self, hash: u32, id: u32) {
        debug_assert!(!self.needs_grow(), "insert without room");
        debug_assert!(id != u32::MAX);
        self.place(pack(hash, id));
        self.len += 1;
    }

    /// Removes the entry at `pos`, shifting the rest of its run back by
    /// one slot (up to an empty slot or an entry at its home).
    pub(super) fn remove_at(&mut self, pos: usize) {
        let n = self.slots.len();
        let mut hole = pos;
        loop {
            let i = next(hole, n);
            if self.slots[i] == EMPTY || self.displacement(i) == 0 {
                break;
            }
            self.slots[hole] = self.slots[i];
            hole = i;
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
    }

    /// Every (hash, id) entry, for consistency checks in tests.
    #[cfg(test)]
    pub(super) fn entries(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        self.slots
            .iter()
            .filter(|&&s| s != EMPTY)
            .map(|&s| (hash_of(s), (s as u32) - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// A deterministic generator (xorshift) so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    fn insert(ix: &mut Index, hash: u32, id: u32) {
        if ix.needs_grow() {
            let before = ix.bytes();
            let growth = ix.growth_bytes();
            ix.grow();
            assert_eq!(
                ix.bytes(),
                before + growth,
                "growth_bytes is what grow adds"
            );
        }
        ix.insert(hash, id);
    }

    #[test]
    fn empty_table_finds_nothing_and_costs_nothing() {
        let ix = Index::new();
        assert_eq!(ix.find(7, |_| true), None);
        assert_eq!(ix.find_id(7, 0), None);
        assert_eq!(ix.bytes(), 0);
        assert!(ix.needs_grow());
    }

    #[test]
    fn colliding_hashes_are_told_apart_by_the_key_check() {
        let mut ix = Index::new();
        for id in 0..10 {
            insert(&mut ix, 5, id); // all the same hash: one long run
        }
        for id in 0..10 {
            assert_eq!(ix.find(5, |c| c == id).map(|(_, i)| i), Some(id));
        }
        assert_eq!(ix.find(5, |c| c == 99), None);
        // removing from the middle of the run keeps the rest reachable
        let (pos, _) = ix.find(5, |c| c == 3).unwrap();
        ix.remove_at(pos);
        assert_eq!(ix.find(5, |c| c == 3), None);
        for id in (0..10).filter(|&i| i != 3) {
            assert!(ix.find(5, |c| c == id).is_some(), "lost {id}");
        }
        assert_eq!(ix.len(), 9);
    }

    #[test]
    fn runs_that_wrap_around_the_end() {
        let mut ix = Index::new();
        let last = u32::MAX; // home: the last slot
        for id in 0..6 {
            insert(&mut ix, last, id); // home = last slot, spills to 0, 1, ...
        }
        insert(&mut ix, 0, 100); // home 0, pushed behind the wrapped run
        let (pos, _) = ix.find(last, |c| c == 0).unwrap();
        assert_eq!(pos, MIN_SLOTS - 1);
        ix.remove_at(pos);
        for id in 1..6 {
            assert!(ix.find(last, |c| c == id).is_some());
        }
        assert_eq!(ix.find(0, |c| c == 100).map(|(_, i)| i), Some(100));
        assert_eq!(ix.find_id(0, 100).map(|p| ix.slots[p]), Some(pack(0, 100)));
    }

    #[test]
    fn random_operations_match_a_hashmap() {
        let mut rng = Rng(0x9e3779b97f4a7c15);
        let mut ix = Index::new();
        let mut model: HashMap<u32, u32> = HashMap::new(); // id -> hash
        let mut next_id = 0u32;
        for round in 0..200_000 {
            let r = rng.next();
            if r % 3 != 0 || model.is_empty() {
                // few distinct hashes: lots of collisions and long runs
                let hash = ((rng.next() % 5000) as u32).wrapping_mul(0x9E37_79B9);
                insert(&mut ix, hash, next_id);
                model.insert(next_id, hash);
                next_id += 1;
            } else {
                let id = *model
                    .keys()
                    .nth((r as usize / 3) % model.len().min(64))
                    .unwrap();
                let hash = model.remove(&id).unwrap();
                let pos = ix.find_id(hash, id).expect("present entry found by id");
                ix.remove_at(pos);
            }
            assert_eq!(ix.len(), model.len());
            assert!(ix.len() * 16 <= ix.slots.len() * 15, "load factor bound");
            if round % 10_000 == 0 {
                let n = ix.slots.len();
                for pos in 0..n {
                    let after = next(pos, n);
                    if ix.slots[after] != EMPTY && ix.displacement(after) > 0 {
                        assert!(ix.slots[pos] != EMPTY, "a gap inside a run");
                        assert!(
                            ix.displacement(after) <= ix.displacement(pos) + 1,
                            "Robin Hood order"
                        );
                    }
                }
                for (&id, &hash) in &model {
                    assert_eq!(ix.find(hash, |c| c == id).map(|(_, i)| i), Some(id));
                }
                assert_eq!(ix.entries().count(), model.len());
            }
        }
    }
}
