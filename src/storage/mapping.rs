//! The memory records live in: page mappings straight from the kernel
//! (anonymous), or regions of the memory file's arena with `-e`; and what
//! an allocation costs (`pages` for mappings, `malloc_charge` for the
//! index tables), so that the budget charges what can become resident.
//!
//! Owns mapping, unmapping and handing regions back to the arena. Must not
//! know what is written in them (records are `item`'s).

use std::ptr::NonNull;
use std::sync::Arc;

use super::arena::Arena;

/// glibc's default `M_MMAP_THRESHOLD`: chunks this large are mmapped.
const MMAP_THRESHOLD: usize = 128 * 1024;
pub(super) const PAGE: usize = 4096;

/// What `malloc(n)` really costs under glibc on 64-bit: the chunk, i.e. the
/// usable size rounded to 16 with the 8-byte size header (the next chunk's
/// prev-size word is usable space), at least 32 bytes. Chunks at or over
/// the mmap threshold get a page-rounded mapping (usable + 16); when glibc's
/// dynamic threshold serves them from the heap instead they cost less, so
/// the page-rounded figure is an upper bound either way. (Only the index
/// tables are malloc'd now; records live in [`Mapping`]s.)
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

/// Page-rounded size of a mapping of `n` bytes: what it costs.
pub(super) const fn pages(n: usize) -> usize {
    (n + PAGE - 1) & !(PAGE - 1)
}

/// Anonymous memory straight from the kernel (mmap), page-rounded, so
/// that what is charged is exactly what can become resident, and freeing
/// it gives it back at once (no allocator keeps or fragments it). Or, with
/// a memory file (`-e`), a region of the file's shared mapping, given back
/// to its arena on drop (from any thread: the arena has its own lock).
pub(super) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    /// The memory file the region belongs to; `None`: anonymous.
    arena: Option<Arc<Arena>>,
}

// SAFETY: a `Mapping` is the only owner of its pages (like a `Box<[u8]>`);
// an arena region is handed out to one `Mapping` at a time.
unsafe impl Send for Mapping {}

impl Mapping {
    /// `None` when the kernel refuses (the caller treats it as no memory).
    pub(super) fn new(n: usize) -> Option<Mapping> {
        let len = pages(n.max(1));
        // SAFETY: an anonymous private mapping with no address hint; the
        // result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return None;
        }
        NonNull::new(p.cast::<u8>()).map(|ptr| Mapping {
            ptr,
            len,
            arena: None,
        })
    }

    /// A region of `n` bytes (page-rounded) of the memory file; `None`
    /// when no free extent holds it (the caller treats it as no memory).
    /// Its bytes are whatever the file held: callers write before reading.
    pub(super) fn in_arena(arena: &Arc<Arena>, n: usize) -> Option<Mapping> {
        let len = pages(n.max(1));
        arena.alloc(len).map(|ptr| Mapping {
            ptr,
            len,
            arena: Some(Arc::clone(arena)),
        })
    }

    /// The region `[off, off + len)` of the memory file as a restart found
    /// it; `None` when it is out of bounds or overlaps one already taken.
    pub(super) fn adopt(arena: &Arc<Arena>, off: usize, len: usize) -> Option<Mapping> {
        arena.claim(off, len).map(|ptr| Mapping {
            ptr,
            len,
            arena: Some(Arc::clone(arena)),
        })
    }

    /// Where the region is in the memory file (`None`: anonymous).
    pub(super) fn file_offset(&self) -> Option<usize> {
        self.arena.as_ref().map(|a| a.offset(self.ptr))
    }

    /// Bytes mapped (what the mapping is charged).
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(super) fn bytes(&self) -> &[u8] {
        // SAFETY: `len` bytes mapped readable (zero-filled at first, or
        // the memory file's bytes) and owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// Writable bytes (tests; segments write through `pin::SegMap`).
    #[cfg(test)]
    pub(super) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as `bytes`, and `&mut self` makes the access unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// `len` bytes from `start`, without a reference to the rest: a reply
    /// reads a shared mapping's value while its shard writes the record's
    /// header (see `pin`).
    #[inline]
    pub(super) fn range(&self, start: usize, len: usize) -> &[u8] {
        assert!(start <= self.len && len <= self.len - start);
        // SAFETY: within the mapping (checked above), readable, owned by
        // self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(start), len) }
    }

    /// Where the mapping starts (for a segment's memory that reads it
    /// without going through its owner: `pin::SegMap`).
    #[inline]
    pub(super) fn as_ptr(&self) -> NonNull<u8> {
        self.ptr
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        match &self.arena {
            Some(arena) => arena.release(self.ptr, self.len),
            // SAFETY: unmaps exactly what `new` mapped, once.
            None => unsafe {
                libc::munmap(self.ptr.as_ptr().cast(), self.len);
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_are_page_rounded_and_writable() {
        let mut m = Mapping::new(5000).expect("mmap");
        assert_eq!(m.len(), 8192);
        assert!(m.bytes().iter().all(|&b| b == 0));
        m.bytes_mut()[8191] = 1;
        assert_eq!(m.bytes()[8191], 1);
        assert_eq!(pages(1), PAGE);
        assert_eq!(pages(PAGE + 1), 2 * PAGE);
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn malloc_charge_matches_glibc() {
        let sizes = (1..=4096)
            .chain((4096..MMAP_THRESHOLD + 70_000).step_by(997))
            .chain([100 * 1024, 512 * 1024, 1024 * 1024, 3 * 1024 * 1024 + 5]);
        for n in sizes {
            let b = vec![1u8; n].into_boxed_slice();
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
}
