//! The memory file (`-e`): one shared mapping of a file sized to the
//! memory ceiling, carved into page-granular regions for segments.
//!
//! Owns the file, its mapping and which of its pages are free. Must not
//! know records, shards or the index: a region is bytes at an offset. A
//! region is given back by whoever drops its [`super::mapping::Mapping`],
//! from any thread, under the arena's own lock (never a shard lock), so a
//! large item's mapping may outlive the shard's hold on it.
//!
//! Allocation is best fit over a set of free extents (by length, then
//! offset) with neighbours merged on free: normal segments are all one
//! size, so the only fragmentation comes from large items' regions, which
//! are whole pages. When no extent fits, the caller treats it as no memory
//! (it evicts and retries, as with a full budget).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::{Mutex, PoisonError};

use super::mapping::{pages, PAGE};

/// tmpfs's `f_type` (linux/magic.h): the filesystem a memory file is meant
/// for. Elsewhere it works, with writes going to disk behind the cache.
const TMPFS_MAGIC: i64 = 0x0102_1994;

/// Why the memory file could not be set up: a start-up error (the server
/// does not start), never a silent cold cache.
#[derive(Debug)]
pub enum MemoryFileError {
    /// Opening or creating it failed (missing directory, permissions).
    Open { path: PathBuf, source: io::Error },
    /// Sizing it to the ceiling failed (a filesystem too small: ENOSPC).
    Size {
        path: PathBuf,
        bytes: usize,
        source: io::Error,
    },
    /// Another process has it open as its memory file (two servers on
    /// one file would overwrite each other's items).
    Busy { path: PathBuf },
    /// Mapping it failed.
    Map { path: PathBuf, source: io::Error },
}

impl fmt::Display for MemoryFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemoryFileError::Open { path, source } => write!(
                f,
                "failed to open memory file {} (-e): {}",
                path.display(),
                source
            ),
            MemoryFileError::Size {
                path,
                bytes,
                source,
            } => write!(
                f,
                "failed to size memory file {} (-e) to {} bytes (-m): {}",
                path.display(),
                bytes,
                source
            ),
            MemoryFileError::Busy { path } => write!(
                f,
                "memory file {} (-e) is in use by another process",
                path.display()
            ),
            MemoryFileError::Map { path, source } => write!(
                f,
                "failed to map memory file {} (-e): {}",
                path.display(),
                source
            ),
        }
    }
}

impl std::error::Error for MemoryFileError {}

/// Free extents, by offset and by (length, offset).
#[derive(Default)]
struct Free {
    by_off: BTreeMap<usize, usize>,
    by_len: BTreeSet<(usize, usize)>,
}

impl Free {
    fn add(&mut self, off: usize, len: usize) {
        self.by_off.insert(off, len);
        self.by_len.insert((len, off));
    }

    fn remove(&mut self, off: usize, len: usize) {
        self.by_off.remove(&off);
        self.by_len.remove(&(len, off));
    }

    /// Gives `[off, off + len)` back, merged with free neighbours.
    fn release(&mut self, mut off: usize, mut len: usize) {
        if let Some((&prev, &plen)) = self.by_off.range(..off).next_back() {
            if prev + plen == off {
                self.remove(prev, plen);
                off = prev;
                len += plen;
            }
        }
        if let Some(&nlen) = self.by_off.get(&(off + len)) {
            self.remove(off + len, nlen);
            len += nlen;
        }
        self.add(off, len);
    }

    /// The smallest extent that holds `len` (the lowest such offset).
    fn take(&mut self, len: usize) -> Option<usize> {
        let &(flen, off) = self.by_len.range((len, 0)..).next()?;
        self.remove(off, flen);
        if flen > len {
            self.add(off + len, flen - len);
        }
        Some(off)
    }

    /// Takes exactly `[off, off + len)`, which must lie in one free extent.
    fn claim(&mut self, off: usize, len: usize) -> bool {
        let Some((&start, &flen)) = self.by_off.range(..=off).next_back() else {
            return false;
        };
        if start + flen < off + len {
            return false;
        }
        self.remove(start, flen);
        if start < off {
            self.add(start, off - start);
        }
        if off + len < start + flen {
            self.add(off + len, start + flen - off - len);
        }
        true
    }
}

/// The memory file's mapping and its free pages.
pub(super) struct Arena {
    base: NonNull<u8>,
    size: usize,
    path: PathBuf,
    on_tmpfs: bool,
    free: Mutex<Free>,
    /// Kept open for `msync` and as the mapping's backing.
    _file: File,
}

// SAFETY: the mapping is shared memory owned by the arena for its whole
// life; regions handed out are disjoint (the free set, under its lock,
// says who owns which page), so threads never share a byte through it
// without the owner's own synchronisation.
unsafe impl Send for Arena {}
// SAFETY: as above; the only shared mutable state is behind `free`'s lock.
unsafe impl Sync for Arena {}

impl Arena {
    /// Opens (creating, mode 0600) `path`, sizes it to `bytes` rounded up
    /// to pages, reserving the space so that a filesystem too small fails
    /// here rather than with SIGBUS later, and maps it shared. The contents
    /// of an existing file stay: a restart may adopt them.
    pub(super) fn open(path: &Path, bytes: usize) -> Result<Arena, MemoryFileError> {
        let size = pages(bytes.max(PAGE));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(|source| MemoryFileError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        // SAFETY: a plain call on an open descriptor; the lock lives as
        // long as the descriptor, which the arena keeps.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return Err(MemoryFileError::Busy {
                path: path.to_path_buf(),
            });
        }
        let sized = |source| MemoryFileError::Size {
            path: path.to_path_buf(),
            bytes: size,
            source,
        };
        file.set_len(size as u64).map_err(sized)?;
        // a file a previous run reserved needs no second pass over its
        // pages (on tmpfs that pass costs a restart ~10 ms per GiB)
        let reserved = file
            .metadata()
            .is_ok_and(|m| std::os::unix::fs::MetadataExt::blocks(&m) * 512 >= size as u64);
        if !reserved {
            // SAFETY: a plain call on an open descriptor.
            let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, size as libc::off_t) };
            if rc != 0 {
                return Err(sized(io::Error::from_raw_os_error(rc)));
            }
        }
        // SAFETY: a shared mapping of `size` bytes of an open file sized to
        // them, no address hint; the result is checked before use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        let mapped = (p != libc::MAP_FAILED)
            .then(|| NonNull::new(p.cast::<u8>()))
            .flatten();
        let Some(base) = mapped else {
            return Err(MemoryFileError::Map {
                path: path.to_path_buf(),
                source: io::Error::last_os_error(),
            });
        };
        let mut free = Free::default();
        free.add(0, size);
        Ok(Arena {
            base,
            size,
            path: path.to_path_buf(),
            on_tmpfs: on_tmpfs(&file),
            free: Mutex::new(free),
            _file: file,
        })
    }

    pub(super) fn size(&self) -> usize {
        self.size
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file is on tmpfs (elsewhere the kernel writes the
    /// cache's pages to disk behind it: slower, and worth a warning).
    pub(super) fn on_tmpfs(&self) -> bool {
        self.on_tmpfs
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Free> {
        self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A free region of `len` bytes (a multiple of pages): its address.
    pub(super) fn alloc(&self, len: usize) -> Option<NonNull<u8>> {
        debug_assert_eq!(len % PAGE, 0);
        let off = self.lock().take(len)?;
        // SAFETY: `off + len <= size`: inside the mapping.
        Some(unsafe { self.base.add(off) })
    }

    /// Takes the region `[off, off + len)` as it is in the file (a restart
    /// adopting a saved segment). False when it is out of bounds, not
    /// page-aligned, or overlaps a region already taken.
    pub(super) fn claim(&self, off: usize, len: usize) -> Option<NonNull<u8>> {
        let fits = len > 0 && off % PAGE == 0 && len % PAGE == 0;
        if !fits || off.checked_add(len).is_none_or(|end| end > self.size) {
            return None;
        }
        // SAFETY: checked above to lie inside the mapping.
        self.lock()
            .claim(off, len)
            .then(|| unsafe { self.base.add(off) })
    }

    /// Gives a region back (a `Mapping` of this arena dropped).
    pub(super) fn release(&self, ptr: NonNull<u8>, len: usize) {
        let off = self.offset(ptr);
        debug_assert!(off + len <= self.size);
        self.lock().release(off, len);
    }

    /// Marks every page free (a cold start over whatever the file held).
    pub(super) fn reset(&self) {
        let mut free = self.lock();
        *free = Free::default();
        free.add(0, self.size);
    }

    /// Where `ptr` (inside the mapping) is in the file.
    pub(super) fn offset(&self, ptr: NonNull<u8>) -> usize {
        ptr.as_ptr() as usize - self.base.as_ptr() as usize
    }

    /// Bytes free (tests and the restore's checks).
    #[cfg(test)]
    pub(super) fn free_bytes(&self) -> usize {
        self.lock().by_off.values().sum()
    }

    /// Writes the mapping's dirty pages to the file (a disk-backed file
    /// must hold what the metadata describes before the metadata exists).
    pub(super) fn sync(&self) -> io::Result<()> {
        // SAFETY: the whole mapping, which is live.
        let rc = unsafe { libc::msync(self.base.as_ptr().cast(), self.size, libc::MS_SYNC) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `open` mapped, once; every `Mapping`
        // into it holds an `Arc<Arena>`, so none is left.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.size);
        }
    }
}

fn on_tmpfs(file: &File) -> bool {
    // SAFETY: all-zero is a valid statfs; the call fills it.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a plain call on an open descriptor and a live struct.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), &mut st) };
    rc == 0 && st.f_type as i64 == TMPFS_MAGIC
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_extents_merge_and_fit_best() {
        let mut f = Free::default();
        f.add(0, 100 * PAGE);
        let a = f.take(16 * PAGE).unwrap();
        let b = f.take(3 * PAGE).unwrap();
        let c = f.take(16 * PAGE).unwrap();
        assert_eq!((a, b, c), (0, 16 * PAGE, 19 * PAGE));
        f.release(b, 3 * PAGE);
        // best fit: the 3-page hole, not the tail
        assert_eq!(f.take(2 * PAGE), Some(16 * PAGE));
        f.release(16 * PAGE, 2 * PAGE);
        f.release(a, 16 * PAGE);
        f.release(c, 16 * PAGE);
        assert_eq!(f.by_off.len(), 1, "everything merged back: {:?}", f.by_off);
        assert!(f.claim(5 * PAGE, 16 * PAGE));
        assert!(!f.claim(8 * PAGE, PAGE), "overlaps a claimed region");
        assert!(f.claim(0, 5 * PAGE));
        assert_eq!(f.take(80 * PAGE), None);
        assert_eq!(f.take(79 * PAGE), Some(21 * PAGE));
    }

    #[test]
    fn a_file_is_sized_mapped_and_reopened_with_its_bytes() {
        let path = std::env::temp_dir().join(format!("fc-arena-{}", std::process::id()));
        let a = Arena::open(&path, 10 * PAGE + 1).expect("open");
        assert_eq!(a.size(), 11 * PAGE);
        let p = a.alloc(2 * PAGE).unwrap();
        // SAFETY: the region is ours, inside the mapping.
        unsafe { p.as_ptr().add(5).write(42) };
        assert_eq!(a.offset(p), 0);
        assert!(a.claim(0, PAGE).is_none(), "taken");
        assert!(a.claim(10 * PAGE, 2 * PAGE).is_none(), "past the end");
        a.sync().unwrap();
        drop(a);
        let b = Arena::open(&path, 11 * PAGE).expect("reopen");
        assert!(matches!(
            Arena::open(&path, 11 * PAGE),
            Err(MemoryFileError::Busy { .. })
        ));
        let p = b.claim(0, 2 * PAGE).expect("claim");
        // SAFETY: as above.
        assert_eq!(unsafe { p.as_ptr().add(5).read() }, 42);
        b.release(p, 2 * PAGE);
        assert_eq!(b.free_bytes(), 11 * PAGE);
        drop(b);
        let _ = std::fs::remove_file(&path);
        let err = Arena::open(Path::new("/nonexistent-dir/x"), PAGE)
            .err()
            .unwrap();
        assert!(err.to_string().contains("No such file"), "{err}");
    }
}
