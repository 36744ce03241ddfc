//! The memory ceiling and what is charged against it, shared by all shards
//! and by the values replies still send from the cache (see `pin`).
//!
//! Owns the one counter every allocation for items is charged to before it
//! is made. Must not allocate, hold items or know shards.

use std::sync::atomic::{AtomicUsize, Ordering};

/// The memory ceiling and what is charged against it, shared by all shards.
#[derive(Debug)]
pub(super) struct Budget {
    used: AtomicUsize,
    limit: AtomicUsize,
}

impl Budget {
    pub(super) fn new(limit: usize) -> Budget {
        Budget {
            used: AtomicUsize::new(0),
            limit: AtomicUsize::new(limit),
        }
    }

    pub(super) fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub(super) fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    pub(super) fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    pub(super) fn over_limit(&self) -> bool {
        self.used() > self.limit()
    }

    /// Adds `n` bytes if the total stays within the limit.
    pub(super) fn try_charge(&self, n: usize) -> bool {
        if n == 0 {
            return true;
        }
        let limit = self.limit();
        let mut cur = self.used();
        loop {
            match cur.checked_add(n) {
                Some(new) if new <= limit => {
                    match self.used.compare_exchange_weak(
                        cur,
                        new,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => return true,
                        Err(now) => cur = now,
                    }
                }
                _ => return false,
            }
        }
    }

    /// Adds `n` bytes whatever the limit (start-up's fixed structures).
    pub(super) fn charge(&self, n: usize) {
        self.used.fetch_add(n, Ordering::Relaxed);
    }

    pub(super) fn uncharge(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_never_passes_the_limit() {
        let b = Budget::new(100);
        assert!(b.try_charge(60));
        assert!(!b.try_charge(41));
        assert!(b.try_charge(40));
        assert_eq!(b.used(), 100);
        assert!(b.try_charge(0));
        b.uncharge(55);
        assert_eq!(b.used(), 45);
        b.set_limit(10);
        assert!(b.over_limit());
    }
}
