//! Seeded randomness for the tests that generate their input: a small
//! generator, numbers from the environment, and the seed of each case of a
//! run (the differential testers' case loop is `common::differential`).

/// splitmix64: small, seedable, good enough to drive a generator.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// A number from `lo` to `hi`, both included.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `pct` percent.
    pub fn chance(&mut self, pct: usize) -> bool {
        self.below(100) < pct
    }

    pub fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len())]
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A number from the environment; unset or empty is `None`, anything else
/// that is not a number a panic naming the variable.
pub fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok().filter(|v| !v.is_empty())?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

/// Case `i` of a run from `base` (case 0 is `base` itself, so a failing
/// case reruns alone with its own seed). Mixed rather than stepped by
/// splitmix's own increment: that would make case i+1's stream case i's
/// shifted by one draw.
pub fn case_seed(base: u64, i: u64) -> u64 {
    if i == 0 {
        return base;
    }
    Rng(base ^ i.wrapping_mul(0xd1b5_4a32_d192_ed03)).next()
}
