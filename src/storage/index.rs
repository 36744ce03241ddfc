//! A shard's key → item id table: open addressing with linear probing.
//!
//! Owns only slots of (32 hash bits, item id). Must not own keys: callers
//! pass a closure that compares the key of a candidate id, so a lookup
//! touches one item only when all 32 hash bits already match.
//!
//! A slot is a u64: the high half is the key's 32-bit hash (which also fixes
//! the home slot, so growing and deleting never rehash keys), the low half
//! is id + 1, with 0 meaning empty. The home slot is the hash scaled to the
//! table (`hash * slots >> 32`), so the table can have any size: it grows
//! by an eighth when it would pass a load of 7/8, and so stays between 78%
//! and 87.5% full while a shard grows; it shrinks by a ninth when it falls
//! under 70% (a shard's share of a full cache drifts, and a table kept at
//! its peak held a fifth of the index in slack at `-m 64`). (Expected
//! probes at the peak: 4.5 for a hit, 32 for a
//! miss, four cache lines of 8-byte slots compared by hash only). Doubling
//! would leave it half empty just after each growth, and in all the shards
//! at once. The high load is deliberate: the table is a fourteenth of what
//! an item of ~100 bytes costs and a fifth at ~10 bytes, and the memory
//! ceiling counts it. (A higher peak, 15/16 in Robin Hood order, saved
//! another byte per item but cost a quarter more time per write that
//! evicts, in the micro benchmark: not kept.) Deletion
//! shifts later entries back, so there are no tombstones and lookups never
//! degrade.

use super::mapping::malloc_charge;

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
        (self.len + 1) * 8 > self.slots.len() * 7
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
        self.resize(self.grown_slots());
    }

    /// The table's size once shrunk, if it has fallen under a load of 70%
    /// (shrinking by a ninth, the inverse of a growth, leaves it under
    /// 79%, well short of the next growth). A shard's share of the cache
    /// drifts (the budget is shared: what one shard's eviction frees
    /// another's writes may take), and a table kept at its peak would hold
    /// a shard's former share in slack: a fifth of the index at `-m 64`.
    fn shrunk_slots(&self) -> Option<usize> {
        let n = self.slots.len();
        let to = n - n / 9;
        (self.len * 10 < n * 7 && to >= MIN_SLOTS && (self.len + 1) * 8 <= to * 7).then_some(to)
    }

    /// Shrinks the table if it is mostly empty (see `shrunk_slots`);
    /// returns the bytes it gave back.
    pub(super) fn shrink_if_sparse(&mut self) -> usize {
        let Some(to) = self.shrunk_slots() else {
            return 0;
        };
        let before = self.bytes();
        self.resize(to);
        before - self.bytes()
    }

    /// Moves every entry to a table of `new_len` slots.
    fn resize(&mut self, new_len: usize) {
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; new_len].into_boxed_slice());
        for &s in old.iter().filter(|&&s| s != EMPTY) {
            let mut pos = home(hash_of(s), new_len);
            while self.slots[pos] != EMPTY {
                pos = next(pos, new_len);
            }
            self.slots[pos] = s;
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
        loop {
            let s = self.slots[pos];
            if s == EMPTY {
                return None;
            }
            if hash_of(s) == hash {
                let id = (s as u32).wrapping_sub(1);
                if is_key(id) {
                    return Some((pos, id));
                }
            }
            pos = next(pos, n);
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
        let n = self.slots.len();
        let mut pos = home(hash, n);
        while self.slots[pos] != EMPTY {
            pos = next(pos, n);
        }
        self.slots[pos] = pack(hash, id);
        self.len += 1;
    }

    /// [`Index::insert`] unless an entry with `hash` whose id satisfies
    /// `is_key` is there already (then false, nothing changed): one probe
    /// for both, as a restart adopting records needs.
    pub(super) fn insert_new(
        &mut self,
        hash: u32,
        id: u32,
        mut is_key: impl FnMut(u32) -> bool,
    ) -> bool {
        debug_assert!(!self.needs_grow(), "insert without room");
        let n = self.slots.len();
        let mut pos = home(hash, n);
        loop {
            let s = self.slots[pos];
            if s == EMPTY {
                break;
            }
            if hash_of(s) == hash && is_key((s as u32).wrapping_sub(1)) {
                return false;
            }
            pos = next(pos, n);
        }
        self.slots[pos] = pack(hash, id);
        self.len += 1;
        true
    }

    /// Grows the table until `n` entries fit without growing again (a
    /// restart knows how many it will insert); returns the bytes added.
    pub(super) fn reserve(&mut self, n: usize) -> usize {
        let before = self.bytes();
        // the sizes growing one step at a time would reach, in one move
        let mut slots = self.slots.len();
        while (n + 1) * 8 > slots * 7 {
            slots = (slots + slots / 4).max(MIN_SLOTS);
        }
        if slots != self.slots.len() {
            self.resize(slots);
        }
        self.bytes() - before
    }

    /// Removes the entry at `pos`, shifting back the entries after it that
    /// may move closer to their home slot.
    pub(super) fn remove_at(&mut self, pos: usize) {
        let n = self.slots.len();
        let mut hole = pos;
        let mut i = next(pos, n);
        loop {
            let s = self.slots[i];
            if s == EMPTY {
                break;
            }
            let h = home(hash_of(s), n);
            // `s` may fill the hole unless its home lies cyclically in (hole, i].
            if distance(h, i, n) >= distance(hole, i, n) {
                self.slots[hole] = s;
                hole = i;
            }
            i = next(i, n);
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
            assert!(ix.len() * 8 <= ix.slots.len() * 7, "load factor bound");
            if round % 10_000 == 0 {
                for (&id, &hash) in &model {
                    assert_eq!(ix.find(hash, |c| c == id).map(|(_, i)| i), Some(id));
                }
                assert_eq!(ix.entries().count(), model.len());
            }
        }
    }
}
