//! One stored item, what its bytes cost, and the size class it counts in.
//!
//! Owns the item's heap block (key then value, one allocation) and the rule
//! for what that block really costs under glibc malloc. Must not know about
//! shards, the index or the LRU beyond carrying the LRU link fields.

use std::mem::size_of;
use std::ptr::NonNull;

use crate::clock::Secs;

/// "No item": the end of an LRU list. Never a valid id.
pub(super) const NIL: u32 = u32::MAX;

/// Set once the item has been read (`evicted_unfetched`, `expired_unfetched`).
const FETCHED: u32 = 1 << 31;
/// Set when the item is read again after its first read (`evicted_active`).
const ACTIVE: u32 = 1 << 30;
const LEN_MASK: u32 = ACTIVE - 1;

/// Largest key + value an item can hold (the length shares a u32 with two
/// flag bits). memcached's own ceiling for `-I` is 1 GiB, below this.
pub(super) const MAX_TOTAL_LEN: usize = LEN_MASK as usize;
/// Keys are at most 250 bytes in memcached; the length lives in 8 bits.
pub(super) const MAX_KEY_LEN: usize = u8::MAX as usize;

/// The key length takes the low 8 bits of the cas word and the meta
/// command bits the next 3; 53 bits of unique last 2^53 writes (over 28
/// years at 10 million writes a second).
const CAS_SHIFT: u32 = 11;
/// Largest cas unique an item holds; an explicit one (meta `E`) is masked.
pub(super) const CAS_MASK: u64 = (1 << (64 - CAS_SHIFT)) - 1;
/// Marked stale by a meta invalidation (`md I`, `ms I`): readers see `X`.
const STALE: u64 = 1 << 8;
/// A meta reader has been handed the recache token (`W`); others see `Z`.
const WIN_SENT: u64 = 1 << 9;
/// Stored with a base64 (binary) key: meta replies echo the key encoded.
const BINARY_KEY: u64 = 1 << 10;
const META_BITS: u64 = STALE | WIN_SENT | BINARY_KEY;

/// The size of one slab slot holding an item: the item header as far as
/// memory is concerned. `slab`'s entry type is private; this mirror has the
/// same shape (`Vacant(usize)` / `Occupied(T)`) and so the same layout.
pub(super) const ENTRY_SIZE: usize = size_of::<SlabEntryMirror>();

#[allow(dead_code)]
enum SlabEntryMirror {
    Vacant(usize),
    Occupied(Item),
}

/// A stored item: 40 bytes here plus one heap block holding key and value.
///
/// The block is allocated as a `Box<[u8]>` of `len` bytes and owned by the
/// item; it is kept as a thin pointer (the length lives in `len`) so that
/// the header stays at 40 bytes.
pub(super) struct Item {
    ptr: NonNull<u8>,
    /// cas unique << 11 | meta bits << 8 | key length.
    cas_klen: u64,
    /// Key + value length, with the FETCHED and ACTIVE bits on top.
    len: u32,
    pub(super) flags: u32,
    /// Clock seconds; 0 = never.
    pub(super) deadline: Secs,
    /// Clock second of the last write or read (LRU age, delayed flush).
    pub(super) atime: Secs,
    pub(super) prev: u32,
    pub(super) next: u32,
}

// SAFETY: an `Item` is the only owner of its heap block (like a `Box<[u8]>`),
// so moving it to another thread moves the block with it.
unsafe impl Send for Item {}

impl Drop for Item {
    fn drop(&mut self) {
        let len = self.total_len();
        // SAFETY: `ptr` and `len` came from `Box::leak` of a `Box<[u8]>`
        // of exactly `len` bytes (see `Item::from_block`), and are dropped once.
        unsafe {
            drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr(),
                len,
            )));
        }
    }
}

/// Builds a heap block of exactly the parts' total length (no zeroing, no
/// spare capacity, so the allocation is `malloc(len)`).
pub(super) fn block(parts: &[&[u8]]) -> Box<[u8]> {
    let len = parts.iter().map(|p| p.len()).sum();
    let mut v = Vec::with_capacity(len);
    for p in parts {
        v.extend_from_slice(p);
    }
    v.into_boxed_slice()
}

impl Item {
    /// Wraps a block holding `klen` key bytes followed by the value.
    /// The caller checks `block.len() <= MAX_TOTAL_LEN`, `klen <= MAX_KEY_LEN`
    /// and `cas` below 2^56.
    pub(super) fn from_block(
        block: Box<[u8]>,
        klen: usize,
        flags: u32,
        deadline: Secs,
        now: Secs,
        cas: u64,
    ) -> Item {
        debug_assert!(block.len() <= MAX_TOTAL_LEN && klen <= MAX_KEY_LEN && klen <= block.len());
        let len = block.len() as u32;
        let ptr = NonNull::from(Box::leak(block)).cast::<u8>();
        Item {
            ptr,
            cas_klen: ((cas & CAS_MASK) << CAS_SHIFT) | klen as u64,
            len,
            flags,
            deadline,
            atime: now,
            prev: NIL,
            next: NIL,
        }
    }

    #[inline]
    pub(super) fn total_len(&self) -> usize {
        (self.len & LEN_MASK) as usize
    }

    #[inline]
    fn klen(&self) -> usize {
        (self.cas_klen & 0xff) as usize
    }

    #[inline]
    pub(super) fn bytes(&self) -> &[u8] {
        // SAFETY: the block is `total_len()` initialised bytes owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.total_len()) }
    }

    #[inline]
    pub(super) fn key(&self) -> &[u8] {
        &self.bytes()[..self.klen()]
    }

    #[inline]
    pub(super) fn value(&self) -> &[u8] {
        &self.bytes()[self.klen()..]
    }

    /// The value, for writing an incr/decr result in place.
    pub(super) fn value_mut(&mut self) -> &mut [u8] {
        let (klen, len) = (self.klen(), self.total_len());
        // SAFETY: as `bytes`, and `&mut self` makes the access unique.
        let all = unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), len) };
        &mut all[klen..]
    }

    #[inline]
    pub(super) fn cas(&self) -> u64 {
        self.cas_klen >> CAS_SHIFT
    }

    /// Sets the unique (masked to 53 bits), keeping the key length and the
    /// meta bits.
    pub(super) fn set_cas(&mut self, cas: u64) {
        self.cas_klen = ((cas & CAS_MASK) << CAS_SHIFT) | (self.cas_klen & (META_BITS | 0xff));
    }

    #[inline]
    pub(super) fn stale(&self) -> bool {
        self.cas_klen & STALE != 0
    }

    #[inline]
    pub(super) fn win_sent(&self) -> bool {
        self.cas_klen & WIN_SENT != 0
    }

    #[inline]
    pub(super) fn binary_key(&self) -> bool {
        self.cas_klen & BINARY_KEY != 0
    }

    pub(super) fn set_stale(&mut self, on: bool) {
        self.set_bit(STALE, on);
    }

    pub(super) fn set_win_sent(&mut self, on: bool) {
        self.set_bit(WIN_SENT, on);
    }

    pub(super) fn set_binary_key(&mut self, on: bool) {
        self.set_bit(BINARY_KEY, on);
    }

    fn set_bit(&mut self, bit: u64, on: bool) {
        if on {
            self.cas_klen |= bit;
        } else {
            self.cas_klen &= !bit;
        }
    }

    #[inline]
    pub(super) fn fetched(&self) -> bool {
        self.len & FETCHED != 0
    }

    #[inline]
    pub(super) fn active(&self) -> bool {
        self.len & ACTIVE != 0
    }

    /// Records a read: the first sets FETCHED, a later one ACTIVE.
    #[inline]
    pub(super) fn mark_fetched(&mut self) {
        if self.len & FETCHED != 0 {
            self.len |= ACTIVE;
        } else {
            self.len |= FETCHED;
        }
    }

    /// Bytes this item's block costs (see [`malloc_charge`]).
    #[inline]
    pub(super) fn charge(&self) -> usize {
        malloc_charge(self.total_len())
    }

    /// The size the item counts as for size classes: block cost + slab slot.
    #[inline]
    pub(super) fn class_size(&self) -> usize {
        self.charge() + ENTRY_SIZE
    }

    /// key + value + header, memcached's `mem_requested`.
    #[inline]
    pub(super) fn requested(&self) -> usize {
        self.total_len() + ENTRY_SIZE
    }
}

/// glibc's default `M_MMAP_THRESHOLD`: chunks this large are mmapped.
const MMAP_THRESHOLD: usize = 128 * 1024;
const PAGE: usize = 4096;

/// What `malloc(n)` really costs under glibc on 64-bit: the chunk, i.e. the
/// usable size rounded to 16 with the 8-byte size header (the next chunk's
/// prev-size word is usable space), at least 32 bytes. Chunks at or over
/// the mmap threshold get a page-rounded mapping (usable + 16); when glibc's
/// dynamic threshold serves them from the heap instead they cost less, so
/// the page-rounded figure is an upper bound either way.
pub(super) const fn malloc_charge(n: usize) -> usize {
    if n == 0 {
        return 0;
    }
    let chunk = (n + 8 + 15) & !15;
    let chunk = if chunk < 32 { 32 } else { chunk };
    if chunk >= MMAP_THRESHOLD {
        (chunk + 8 + PAGE - 1) & !(PAGE - 1)
    } else {
        chunk
    }
}

/// memcached's slab classes: 96 bytes (48-byte header + 48 `-n`), growing
/// by 1.25 rounded up to 8, while below 512 KiB / 1.25; then 512 KiB.
/// ferrocache adds one more class for anything larger.
const FIRST_CLASS: usize = 96;
const LARGEST_CHUNK: usize = 512 * 1024;

const fn class_count() -> usize {
    let mut size = FIRST_CLASS;
    let mut n = 0;
    while size * 5 < LARGEST_CHUNK * 4 {
        n += 1;
        size = (size * 5 / 4 + 7) & !7;
    }
    n + 2 // the 512 KiB class and the "larger" class
}

/// Number of size classes, including the last one for items over 512 KiB.
pub(super) const CLASSES: usize = class_count();

const fn class_table() -> [usize; CLASSES] {
    let mut t = [0; CLASSES];
    let mut size = FIRST_CLASS;
    let mut i = 0;
    while size * 5 < LARGEST_CHUNK * 4 {
        t[i] = size;
        i += 1;
        size = (size * 5 / 4 + 7) & !7;
    }
    t[i] = LARGEST_CHUNK;
    t[i + 1] = usize::MAX;
    t
}

/// Upper bound (inclusive) of each class; the last is unbounded.
pub(super) const CLASS_SIZES: [usize; CLASSES] = class_table();

/// The class (0-based) an item of `size` bytes (see [`Item::class_size`])
/// counts in.
#[inline]
pub(super) fn class_of(size: usize) -> usize {
    CLASS_SIZES.partition_point(|&c| c < size)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(key: &[u8], value: &[u8], cas: u64) -> Item {
        Item::from_block(block(&[key, value]), key.len(), 7, 0, 2, cas)
    }

    #[test]
    fn header_is_40_bytes_and_so_is_its_slab_slot() {
        assert_eq!(size_of::<Item>(), 40);
        assert_eq!(ENTRY_SIZE, 40);
    }

    #[test]
    fn fields_round_trip() {
        let mut it = item(b"key", b"value", CAS_MASK);
        assert_eq!(it.key(), b"key");
        assert_eq!(it.value(), b"value");
        assert_eq!(it.cas(), CAS_MASK);
        assert!(!it.stale() && !it.win_sent() && !it.binary_key());
        it.set_stale(true);
        it.set_binary_key(true);
        it.set_cas(42);
        assert_eq!((it.cas(), it.key()), (42, &b"key"[..]));
        assert!(it.stale() && !it.win_sent() && it.binary_key());
        it.set_win_sent(true);
        it.set_stale(false);
        assert!(!it.stale() && it.win_sent() && it.binary_key());
        assert_eq!((it.cas(), it.key()), (42, &b"key"[..]));
        it.set_cas(u64::MAX);
        assert_eq!(
            it.cas(),
            CAS_MASK,
            "an explicit unique is masked to 53 bits"
        );
        assert!(!it.fetched() && !it.active());
        it.mark_fetched();
        assert!(it.fetched() && !it.active());
        it.mark_fetched();
        assert!(it.fetched() && it.active());
        assert_eq!(it.total_len(), 8, "flag bits do not leak into the length");
        it.value_mut().copy_from_slice(b"VALUE");
        assert_eq!(it.bytes(), b"keyVALUE");
        let empty = item(b"", b"", 1);
        assert_eq!(
            (empty.key(), empty.value(), empty.charge()),
            (&[][..], &[][..], 0)
        );
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn malloc_charge_matches_glibc() {
        let sizes = (1..=4096)
            .chain((4096..MMAP_THRESHOLD + 70_000).step_by(997))
            .chain([100 * 1024, 512 * 1024, 1024 * 1024, 3 * 1024 * 1024 + 5]);
        for n in sizes {
            // The same allocation path as an item block.
            let b = block(&[&vec![1u8; n]]);
            // SAFETY: the pointer is a live malloc'd block (System allocator).
            let usable = unsafe { libc::malloc_usable_size(b.as_ptr() as *mut libc::c_void) };
            let charge = malloc_charge(n);
            if (n + 8 + 15) & !15 < MMAP_THRESHOLD {
                // glibc hands out a free chunk up to 16 bytes larger than
                // asked rather than split off a remainder smaller than its
                // 32-byte minimum, so with a used heap the chunk may exceed
                // the formula by one such sliver (seen under parallel tests).
                let chunk = usable + 8;
                assert!(
                    charge <= chunk && chunk <= charge + 16,
                    "heap chunk for malloc({n}): charge {charge}, chunk {chunk}"
                );
            } else {
                // mmapped (usable + 16, page-rounded) or, after the dynamic
                // threshold moved, a heap chunk (usable + 8): never under.
                assert!(charge >= usable + 8, "malloc({n}): {charge} < {usable} + 8");
                assert!(
                    charge <= usable + 16 + PAGE,
                    "malloc({n}) overcharged: {charge}"
                );
            }
        }
    }

    #[test]
    fn classes_are_memcacheds() {
        // memcached 1.6.18 -vv: "slab class N: chunk size S"
        let memcached = [
            96, 120, 152, 192, 240, 304, 384, 480, 600, 752, 944, 1184, 1480, 1856, 2320, 2904,
            3632, 4544, 5680, 7104, 8880, 11104, 13880, 17352, 21696, 27120, 33904, 42384, 52984,
            66232, 82792, 103496, 129376, 161720, 202152, 252696, 315872, 394840, 524288,
        ];
        assert_eq!(CLASSES, memcached.len() + 1);
        assert_eq!(&CLASS_SIZES[..memcached.len()], &memcached[..]);
        assert_eq!(class_of(1), 0);
        assert_eq!(class_of(96), 0);
        assert_eq!(class_of(97), 1);
        assert_eq!(class_of(524288), CLASSES - 2);
        assert_eq!(class_of(524289), CLASSES - 1);
        assert_eq!(class_of(usize::MAX), CLASSES - 1);
    }
}
