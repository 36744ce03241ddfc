//! The memory benchmark's eviction-quality workload: a seeded Zipf
//! generator of our own, and a read-through client (get; on a miss, set)
//! that counts the hit ratio as an application would see it.
//!
//! Nothing here is timed: the figure is the share of gets that hit once the
//! cache has warmed up, the same key sequence sent to every server.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::{push_key, Rng};

/// Ranks drawn from a Zipf distribution over `0..n` (rank r has weight
/// 1 / (r + 1)^s), by inverting a table of the cumulative weights: exact,
/// and fast enough for the few million draws a run makes (a binary search
/// over n f64s). Ranks map to key ids through a fixed permutation, so hot
/// keys are spread over the key space rather than being `key:0000000000`,
/// `key:0000000001`, …
pub struct Zipf {
    cdf: Vec<f64>,
    n: u64,
}

/// Odd, and not a multiple of 5: a unit modulo any n = 2^a 5^b (4,000,000),
/// so `rank * PERMUTE % n` is a permutation of `0..n`.
const PERMUTE: u64 = 2_654_435_761;

impl Zipf {
    pub fn new(n: u64, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut sum = 0.0;
        for r in 0..n {
            sum += 1.0 / ((r + 1) as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf, n }
    }

    /// A key id in `0..n`, Zipf-distributed by rank.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let rank = self
            .cdf
            .partition_point(|&c| c < u)
            .min(self.n as usize - 1) as u64;
        rank.wrapping_mul(PERMUTE) % self.n
    }
}

/// Gets and hits of a read-through run's measured part.
#[derive(Debug, Clone, Copy, Default)]
pub struct HitCount {
    pub gets: u64,
    pub hits: u64,
}

impl HitCount {
    pub fn ratio(&self) -> f64 {
        self.hits as f64 / self.gets.max(1) as f64
    }
}

/// Runs `warmup + measured` read-through requests (keys `key:` + a Zipf
/// id, `value` on a miss) over one connection, `batch` keys per multi-get,
/// then the sets for that batch's misses pipelined; counts only the
/// measured ones.
pub fn read_through(
    addr: SocketAddr,
    zipf: &Zipf,
    seed: u64,
    value: &[u8],
    warmup: u64,
    measured: u64,
    batch: usize,
) -> io::Result<HitCount> {
    let mut c = Conn::connect(addr)?;
    let mut rng = Rng::new(seed);
    let mut count = HitCount::default();
    let mut done = 0;
    let mut ids = Vec::with_capacity(batch);
    while done < warmup + measured {
        let n = (batch as u64).min(warmup + measured - done);
        ids.clear();
        ids.extend((0..n).map(|_| zipf.sample(&mut rng)));
        let found = c.multi_get(&ids)?;
        let missed: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|id| !found.contains(id))
            .collect();
        c.set_all(&missed, value)?;
        if done >= warmup {
            count.gets += n;
            count.hits += n - missed.len() as u64;
        }
        done += n;
    }
    Ok(count)
}

/// One blocking connection speaking just `get` and `set`.
struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
}

impl Conn {
    fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Conn {
            stream,
            rbuf: Vec::with_capacity(1 << 16),
            wbuf: Vec::with_capacity(1 << 16),
        })
    }

    /// Reads more bytes into `rbuf`.
    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 1 << 16];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::other("server closed the connection"));
        }
        self.rbuf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    /// The next `\r\n`-terminated line of `rbuf` from `at`, reading more
    /// as needed: (line without its end, offset after it).
    fn line(&mut self, at: usize) -> io::Result<(Vec<u8>, usize)> {
        loop {
            if let Some(nl) = self.rbuf[at..].iter().position(|&b| b == b'\n') {
                let line = &self.rbuf[at..at + nl];
                let line = line.strip_suffix(b"\r").unwrap_or(line).to_vec();
                return Ok((line, at + nl + 1));
            }
            self.fill()?;
        }
    }

    /// `get` of every id in `ids`: the ids that hit.
    fn multi_get(&mut self, ids: &[u64]) -> io::Result<HashSet<u64>> {
        self.wbuf.clear();
        self.wbuf.extend_from_slice(b"get");
        for &id in ids {
            self.wbuf.push(b' ');
            push_key(&mut self.wbuf, "key:", id);
        }
        self.wbuf.extend_from_slice(b"\r\n");
        self.stream.write_all(&self.wbuf)?;
        let mut found = HashSet::new();
        let mut at = 0;
        loop {
            let (line, next) = self.line(at)?;
            if line == b"END" {
                self.rbuf.drain(..next);
                return Ok(found);
            }
            // VALUE key:0000000042 <flags> <bytes>
            let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
            let (Some(key), Some(len)) = (fields.get(1), fields.get(3)) else {
                return Err(io::Error::other(format!(
                    "unexpected reply: {}",
                    String::from_utf8_lossy(&line)
                )));
            };
            let parse = |b: &[u8]| std::str::from_utf8(b).ok()?.parse::<u64>().ok();
            let id = key.strip_prefix(b"key:").and_then(parse);
            let len = parse(len).ok_or_else(|| io::Error::other("bad VALUE length"))?;
            if let Some(id) = id {
                found.insert(id);
            }
            at = next + len as usize + 2;
            while self.rbuf.len() < at {
                self.fill()?;
            }
        }
    }

    /// `set` of every id in `ids` to `value`, pipelined; reads the replies.
    fn set_all(&mut self, ids: &[u64], value: &[u8]) -> io::Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.wbuf.clear();
        for &id in ids {
            self.wbuf.extend_from_slice(b"set ");
            push_key(&mut self.wbuf, "key:", id);
            self.wbuf
                .extend_from_slice(format!(" 0 0 {}\r\n", value.len()).as_bytes());
            self.wbuf.extend_from_slice(value);
            self.wbuf.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&self.wbuf)?;
        let mut at = 0;
        for _ in ids {
            let (_, next) = self.line(at)?;
            at = next;
        }
        self.rbuf.drain(..at);
        Ok(())
    }
}
