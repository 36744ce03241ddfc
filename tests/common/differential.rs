//! The differential runner both differential testers share
//! (`differential.rs` for the classic commands, `meta_differential.rs` for
//! the meta commands): steps of bytes with cas placeholders, a fresh pair of
//! servers (memcached and ferrocache, the same [`FLAGS`]), one step played on
//! one server's connection with a sentinel behind it, cas uniques named by
//! order of first appearance, a run replayed to its first mismatch, shrunk
//! and reported, and the seeded case loop.
//!
//! Owns: how a step reaches a server and how two servers' replies are
//! compared. Must not: know a tester's commands. Generating steps and
//! normalising replies are the tester's ([`Differential`], [`Normaliser`]).

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::random::{case_seed, env_u64};
use super::{escape, Server, Target};

/// Flags both servers run with. memcached's LRU threads briefly hold items,
/// and a held number is rewritten as a new unpadded item instead of in
/// place: without them, whether memcached pads depends only on the requests.
pub const FLAGS: &[&str] = &[
    "-m",
    "64",
    "-I",
    "1m",
    "-o",
    "no_lru_maintainer,no_lru_crawler",
];
/// How long one step may take before its reply counts as missing.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// The unique sent for a placeholder this server has shown nothing for: one
/// no server reaches in a run.
const NEVER_SHOWN: u64 = 1 << 62;

// -------------------------------------------------------------- steps

/// Which cas unique a step sends, resolved per server at run time from
/// that server's own earlier replies.
#[derive(Clone, Copy, Debug)]
pub enum CasRef {
    /// The unique this server last showed for item `i` (real, unless the
    /// item changed since: then stale).
    Latest(usize),
    /// The n-th distinct unique this server has shown (usually stale).
    Seen(usize),
}

#[derive(Clone, Debug)]
pub enum Part {
    Bytes(Vec<u8>),
    Cas(CasRef),
}

/// One step: bytes (with cas placeholders) sent in one write.
#[derive(Clone, Debug, Default)]
pub struct Step {
    pub parts: Vec<Part>,
    /// The item the replies' cas uniques belong to, when the step is one
    /// request about one item (the meta tester's `c` flags).
    pub item: Option<usize>,
    /// It may make the server close the connection (quit, an HTTP request
    /// line): sent without the sentinel first, see [`Runner::step`].
    pub may_close: bool,
}

impl Step {
    pub fn push(&mut self, bytes: impl AsRef<[u8]>) {
        if let Some(Part::Bytes(b)) = self.parts.last_mut() {
            b.extend_from_slice(bytes.as_ref());
        } else {
            self.parts.push(Part::Bytes(bytes.as_ref().to_vec()));
        }
    }

    pub fn push_cas(&mut self, r: CasRef) {
        self.parts.push(Part::Cas(r));
    }

    /// Whether the step's first bytes are one of `verbs`.
    pub fn starts_with_any(&self, verbs: &[&[u8]]) -> bool {
        matches!(self.parts.first(), Some(Part::Bytes(b)) if verbs.iter().any(|v| b.starts_with(v)))
    }

    /// `other`'s requests after this step's, in the same write.
    pub fn append(&mut self, other: Step) {
        self.may_close |= other.may_close;
        for p in other.parts {
            match p {
                Part::Bytes(b) => self.push(b),
                Part::Cas(r) => self.push_cas(r),
            }
        }
    }
}

// ------------------------------------------------------------ uniques

/// The cas uniques one server has shown, each named by the order in which
/// the server first showed it: equal names on both servers mean their
/// uniques correspond one to one, consistently over the whole run (a unique
/// that changed on one server only, or two items sharing one, shows up as a
/// mismatch).
#[derive(Default)]
pub struct Uniques {
    /// The last unique shown per item.
    pub latest: HashMap<usize, u64>,
    /// Distinct uniques in the order first shown.
    pub seen: Vec<u64>,
    order: HashMap<u64, usize>,
}

impl Uniques {
    /// The name (`#n`) of `cas`, learning it: as `item`'s latest when the
    /// reply says which item it belongs to.
    pub fn name(&mut self, cas: u64, item: Option<usize>) -> String {
        if let Some(i) = item {
            self.latest.insert(i, cas);
        }
        let next = self.order.len();
        let ord = *self.order.entry(cas).or_insert(next);
        if ord == self.seen.len() {
            self.seen.push(cas);
        }
        format!("#{ord}")
    }

    /// The unique this server sends for `r`.
    fn resolve(&self, r: CasRef) -> u64 {
        let shown = match r {
            CasRef::Latest(i) => self.latest.get(&i).copied(),
            CasRef::Seen(n) if !self.seen.is_empty() => Some(self.seen[n % self.seen.len()]),
            CasRef::Seen(_) => None,
        };
        shown.unwrap_or(NEVER_SHOWN)
    }
}

/// How a tester reads one server's replies.
pub trait Normaliser {
    fn new() -> Self;
    /// What this server has shown, to fill a step's cas placeholders.
    fn uniques(&self) -> &Uniques;
    /// `raw` (the replies to `step`) with what may legitimately differ
    /// between the servers replaced, learning the uniques it shows; and the
    /// TTLs taken out of it (compared with [`Differential::TTL_SLACK`]).
    fn normalise(&mut self, raw: &[u8], step: &Step) -> (Vec<u8>, Vec<i64>);
}

// -------------------------------------------------------------- runner

/// What one server answered to one step.
#[derive(Clone, Debug)]
pub struct Reply {
    /// The bytes before the sentinel's reply.
    pub raw: Vec<u8>,
    /// The server closed the connection (the sentinel got no reply).
    pub closed: bool,
    /// Neither the sentinel's reply nor a close came in time.
    pub timed_out: bool,
    /// `raw` normalised.
    pub normal: Vec<u8>,
    /// TTLs taken out of `normal` (compared with slack).
    pub ttls: Vec<i64>,
    /// The exact bytes sent.
    pub sent: Vec<u8>,
}

impl Reply {
    /// Whether two servers' replies count as the same: the normalised
    /// bytes, what became of the connection, and TTLs at most `slack` apart.
    pub fn agrees(&self, other: &Reply, slack: i64) -> bool {
        self.normal == other.normal
            && self.closed == other.closed
            && self.timed_out == other.timed_out
            && self.ttls.len() == other.ttls.len()
            && self
                .ttls
                .iter()
                .zip(&other.ttls)
                .all(|(a, b)| (a - b).abs() <= slack)
    }
}

/// One server's side of a run: its connection and what it showed so far.
pub struct Runner<N> {
    addr: SocketAddr,
    conn: Option<TcpStream>,
    counter: u64,
    pub normaliser: N,
}

impl<N: Normaliser> Runner<N> {
    pub fn new(addr: SocketAddr) -> Runner<N> {
        Runner {
            addr,
            conn: None,
            counter: 0,
            normaliser: N::new(),
        }
    }

    /// The bytes of `step` for this server, its placeholders filled.
    fn resolve(&self, step: &Step) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &step.parts {
            match p {
                Part::Bytes(b) => out.extend_from_slice(b),
                Part::Cas(r) => {
                    let v = self.normaliser.uniques().resolve(*r);
                    out.extend_from_slice(v.to_string().as_bytes());
                }
            }
        }
        out
    }

    /// Sends `step` in one write followed by a sentinel (`set __sentinel__`
    /// with a per-step number, then `get __sentinel__`), and reads until the
    /// sentinel's unique reply arrives, the server closes, or
    /// [`STEP_TIMEOUT`] passes. A closed or timed-out connection is opened
    /// anew for the next step.
    pub fn step(&mut self, step: &Step) -> Reply {
        let sent = self.resolve(step);
        self.counter += 1;
        let mark = format!("{:08}", self.counter);
        let sentinel = format!("set __sentinel__ 0 0 8\r\n{mark}\r\nget __sentinel__\r\n");
        let tail = format!("STORED\r\nVALUE __sentinel__ 0 8\r\n{mark}\r\nEND\r\n");
        if self.conn.is_none() {
            let c = TcpStream::connect(self.addr).expect("connect");
            c.set_nodelay(true).unwrap();
            self.conn = Some(c);
        }
        let conn = self.conn.as_mut().unwrap();
        conn.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut raw = Vec::new();
        let mut written = 0;
        let mut closed = false;
        let mut timed_out = false;
        let mut buf = vec![0u8; 256 * 1024];
        let mut bytes = sent.clone();
        if step.may_close {
            // A server that closes with unread input resets the connection,
            // and a reset discards replies the client has not read yet: send
            // the sentinel only once the server has shown it stays open.
            let _ = conn.write_all(&sent);
            written = sent.len();
            conn.set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            loop {
                match conn.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => raw.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        break
                    }
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        bytes.extend_from_slice(sentinel.as_bytes());
        // Write and read at once: a large value may be answered (or the
        // connection closed) before all of it is written.
        let deadline = Instant::now() + STEP_TIMEOUT;
        conn.set_nonblocking(true).unwrap();
        while !closed {
            if written < bytes.len() {
                match conn.write(&bytes[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    // The server closed; what it sent is still readable.
                    Err(_) => written = bytes.len(),
                }
            }
            match conn.read(&mut buf) {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(n) => {
                    raw.extend_from_slice(&buf[..n]);
                    if raw.ends_with(tail.as_bytes()) {
                        raw.truncate(raw.len() - tail.len());
                        break;
                    }
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => {
                    closed = true;
                    break;
                }
            }
            if Instant::now() > deadline {
                timed_out = true;
                break;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
        if closed || timed_out {
            self.conn = None;
        }
        let (normal, ttls) = self.normaliser.normalise(&raw, step);
        Reply {
            raw,
            closed,
            timed_out,
            normal,
            ttls,
            sent,
        }
    }
}

// ------------------------------------------------------------ testers

/// A differential tester: random steps played against memcached and
/// ferrocache, compared reply by reply.
pub trait Differential {
    /// How this tester reads one server's replies.
    type Normaliser: Normaliser;
    /// Names the tester in its output ("differential").
    const LABEL: &'static str;
    /// Its test target, for the line that reruns a case.
    const TEST: &'static str;
    /// Prefix of its environment knobs: `<ENV>_SEED` (a number or
    /// `random`), `<ENV>_CASES`, `<ENV>_STEPS`, and `<ENV>_SHOW=1` (print
    /// every step and memcached's reply).
    const ENV: &'static str;
    const DEFAULT_SEED: u64;
    const DEFAULT_CASES: u64;
    const DEFAULT_STEPS: usize;
    /// How far apart two TTLs may be and still count as the same.
    const TTL_SLACK: i64 = 0;

    fn generate(seed: u64, steps: usize) -> Vec<Step>;
}

/// Where two servers first answered a step differently.
pub struct Mismatch {
    pub index: usize,
    pub memcached: Reply,
    pub ferrocache: Reply,
}

/// Runs the cases the environment asks for (the defaults otherwise), shrinks
/// and reports the first three failing ones, and fails if there was any.
/// Without memcached: skipped loudly, or a failure under CI.
pub fn run<D: Differential>() {
    if !Target::Memcached.available() {
        return;
    }
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
        if let Some(m) = replay::<D>(&plan) {
            let (reduced, m) = shrink::<D>(&plan, m);
            let text = report::<D>(seed, &reduced, &m);
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
fn shrink<D: Differential>(steps: &[Step], first: Mismatch) -> (Vec<Step>, Mismatch) {
    let mut cur: Vec<Step> = steps[..=first.index].to_vec();
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
            match replay::<D>(&cand) {
                Some(m) => {
                    cand.truncate(m.index + 1);
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

/// A fresh memcached and a fresh ferrocache, both with [`FLAGS`]: kept
/// while their runners play.
fn fresh_pair() -> (Server, Server) {
    (Server::memcached(FLAGS), Server::ferrocache(FLAGS))
}

/// Plays `steps` against a fresh pair of servers: the first step whose
/// replies differ, if any.
pub fn replay<D: Differential>(steps: &[Step]) -> Option<Mismatch> {
    let (memcached, ferro) = fresh_pair();
    let mut m = Runner::<D::Normaliser>::new(memcached.tcp_addr());
    let mut f = Runner::<D::Normaliser>::new(ferro.tcp_addr());
    let show = std::env::var_os(format!("{}_SHOW", D::ENV)).is_some();
    for (index, step) in steps.iter().enumerate() {
        let rm = m.step(step);
        let rf = f.step(step);
        if show {
            eprintln!("{index}: {}\n  -> {}", escape(&rm.sent), escape(&rm.raw));
        }
        assert!(
            !rm.timed_out,
            "memcached did not finish step {index} within {STEP_TIMEOUT:?}: the generator \
             made an incomplete request (a bug in this test)\n  sent: {}\n  got: {}",
            escape(&rm.sent),
            escape(&rm.raw)
        );
        if !rm.agrees(&rf, D::TTL_SLACK) {
            return Some(Mismatch {
                index,
                memcached: rm,
                ferrocache: rf,
            });
        }
    }
    None
}

fn describe(reply: &Reply) -> String {
    let mut s = escape(&reply.raw);
    if reply.closed {
        s.push_str(" <connection closed>");
    }
    if reply.timed_out {
        s.push_str(" <no complete reply within the step timeout>");
    }
    s
}

/// A failing run for a human: every step with both servers' replies (from
/// one more replay), the first difference, and how to rerun the case.
pub fn report<D: Differential>(seed: u64, steps: &[Step], m: &Mismatch) -> String {
    let (env, test) = (D::ENV, D::TEST);
    let mut out = format!(
        "{} mismatch, case seed {seed} (rerun: {env}_SEED={seed} {env}_CASES=1 cargo test \
         --release --test {test} -- --nocapture)\nreduced to {} step(s); each step is sent \
         in one write, followed by a sentinel (set/get __sentinel__) not shown:\n",
        D::LABEL,
        steps.len()
    );
    let (memcached, ferro) = fresh_pair();
    let mut rm = Runner::<D::Normaliser>::new(memcached.tcp_addr());
    let mut rf = Runner::<D::Normaliser>::new(ferro.tcp_addr());
    for (i, step) in steps.iter().enumerate() {
        let a = rm.step(step);
        let b = rf.step(step);
        out.push_str(&format!("  step {i}: {}\n", escape(&a.sent)));
        if b.sent != a.sent {
            out.push_str(&format!("    (to ferrocache: {})\n", escape(&b.sent)));
        }
        out.push_str(&format!("    memcached:  {}\n", describe(&a)));
        out.push_str(&format!("    ferrocache: {}\n", describe(&b)));
    }
    out.push_str(&format!(
        "first difference at step {}:\n  memcached:  {}\n  ferrocache: {}\n",
        m.index,
        describe(&m.memcached),
        describe(&m.ferrocache)
    ));
    out
}

/// Plays fixed requests, one a step, through the same machinery: the
/// regression tests for what the random runs found.
pub fn fixed<D: Differential>(steps: &[&[u8]]) {
    if !Target::Memcached.available() {
        return;
    }
    let plan: Vec<Step> = steps
        .iter()
        .map(|b| {
            let mut s = Step::default();
            s.push(b);
            s
        })
        .collect();
    if let Some(m) = replay::<D>(&plan) {
        panic!("{}", report::<D>(0, &plan[..=m.index], &m));
    }
}
