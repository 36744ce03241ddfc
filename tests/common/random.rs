//! Seeded randomness for the tests that generate their input, and the
//! driver the two differential testers (`differential.rs` for the classic
//! commands, `meta_differential.rs` for the meta commands) share: seeds from
//! the environment, the case loop, and shrinking a failing run.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// A differential tester: random steps played against memcached and
/// ferrocache, compared reply by reply.
pub trait Differential {
    type Step: Clone;
    type Mismatch;
    /// Names the tester in its output ("differential").
    const LABEL: &'static str;
    /// Prefix of its environment knobs: `<ENV>_SEED` (a number or
    /// `random`), `<ENV>_CASES`, `<ENV>_STEPS`.
    const ENV: &'static str;
    const DEFAULT_SEED: u64;
    const DEFAULT_CASES: u64;
    const DEFAULT_STEPS: usize;

    fn generate(seed: u64, steps: usize) -> Vec<Self::Step>;
    /// Plays `steps` against a fresh pair of servers: the first mismatch.
    fn replay(steps: &[Self::Step]) -> Option<Self::Mismatch>;
    /// The step a mismatch happened at.
    fn index(m: &Self::Mismatch) -> usize;
    /// The failing run, shown for a human, with how to rerun it.
    fn report(seed: u64, steps: &[Self::Step], m: &Self::Mismatch) -> String;
}

/// Runs the cases the environment asks for (the defaults otherwise), shrinks
/// and reports the first three failing ones, and fails if there was any.
pub fn run<D: Differential>() {
    let seed_var = format!("{}_SEED", D::ENV);
    let base = match std::env::var(&seed_var).ok().as_deref() {
        None | Some("") => D::DEFAULT_SEED,
        Some("random") => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
        Some(_) => env_u64(&seed_var).unwrap(),
    };
    let cases = env_u64(&format!("{}_CASES", D::ENV)).unwrap_or(D::DEFAULT_CASES);
    let steps = env_u64(&format!("{}_STEPS", D::ENV)).map_or(D::DEFAULT_STEPS, |n| n as usize);
    let label = D::LABEL;
    eprintln!("{label}: seed {base}, {cases} case(s) of {steps} steps");
    let started = Instant::now();
    let mut failures = Vec::new();
    for case in 0..cases {
        let seed = case_seed(base, case);
        let plan = D::generate(seed, steps);
        if let Some(m) = D::replay(&plan) {
            let (reduced, m) = shrink::<D>(&plan, m);
            let text = D::report(seed, &reduced, &m);
            eprintln!("{text}");
            failures.push(text);
            if failures.len() >= 3 {
                break;
            }
        }
    }
    eprintln!(
        "{label}: {cases} case(s) in {:.1} s, {} failing",
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} case(s) differ from memcached; first:\n{}",
        failures.len(),
        failures[0]
    );
}

/// Drops steps from a failing run while it still fails (the shortest
/// failing prefix first, then chunks of decreasing size), within a budget
/// of 400 replays and two minutes.
fn shrink<D: Differential>(steps: &[D::Step], first: D::Mismatch) -> (Vec<D::Step>, D::Mismatch) {
    let mut cur: Vec<D::Step> = steps[..=D::index(&first)].to_vec();
    let mut best = first;
    let started = Instant::now();
    let mut tries = 0;
    let mut chunk = cur.len().div_ceil(2);
    loop {
        let mut start = 0;
        while start < cur.len() {
            if tries >= 400 || started.elapsed() > Duration::from_secs(120) {
                return (cur, best);
            }
            tries += 1;
            let end = (start + chunk).min(cur.len());
            let mut cand = cur[..start].to_vec();
            cand.extend_from_slice(&cur[end..]);
            match D::replay(&cand) {
                Some(m) => {
                    cand.truncate(D::index(&m) + 1);
                    cur = cand;
                    best = m;
                }
                None => start += chunk,
            }
        }
        if chunk == 1 {
            return (cur, best);
        }
        chunk = chunk.div_ceil(2);
    }
}
