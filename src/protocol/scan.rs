//! Byte searches over a command line, a word (8 bytes) at a time.
//!
//! Every request starts with a line search, so this is the parser's inner
//! loop. memcached ends the command at the first NUL inside the line (it
//! hands the line to `strlen`-based code), so the same pass also notes where
//! the first NUL is. A multi-get line is also measured here, key by key.
//! Must not interpret the line.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;
const NEWLINES: u64 = LO * b'\n' as u64;
const SPACES: u64 = LO * b' ' as u64;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// High bit set in each byte of `x` that is zero. Bytes above the first zero
/// byte may be flagged wrongly (borrow), but the lowest flag is always exact,
/// which is the only one read.
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(LO) & !x & HI
}

#[inline(always)]
fn word(chunk: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(chunk);
    u64::from_le_bytes(w)
}

/// Index of the first byte at or after `from` that `hit` (a per-word mask
/// function) flags, or that `is_hit` accepts in the tail.
#[inline(always)]
fn find(
    buf: &[u8],
    from: usize,
    hit: impl Fn(u64) -> u64,
    is_hit: impl Fn(u8) -> bool,
) -> Option<usize> {
    let rest = buf.get(from..)?;
    let mut base = from;
    // Two words per step while the line is long: one branch per 16 bytes.
    let mut pairs = rest.chunks_exact(16);
    for pair in &mut pairs {
        let (a, b) = (hit(word(&pair[..8])), hit(word(&pair[8..])));
        if a | b != 0 {
            let m = if a != 0 { a } else { b };
            let off = if a != 0 { 0 } else { 8 };
            return Some(base + off + (m.trailing_zeros() / 8) as usize);
        }
        base += 16;
    }
    let mut chunks = pairs.remainder().chunks_exact(8);
    for chunk in &mut chunks {
        let m = hit(word(chunk));
        if m != 0 {
            return Some(base + (m.trailing_zeros() / 8) as usize);
        }
        base += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| is_hit(b))
        .map(|i| base + i)
}

/// Where the first command line of `buf` ends: `(newline, nul)` where
/// `newline` is the index of the first `\n` and `nul` the index of the first
/// NUL before it (equal to `newline` when there is none). `None` when there is
/// no `\n` yet.
#[inline]
pub(crate) fn find_line(buf: &[u8]) -> Option<(usize, usize)> {
    let first = find(
        buf,
        0,
        |w| zero_bytes(w ^ NEWLINES) | zero_bytes(w),
        |b| b == b'\n' || b == 0,
    )?;
    if buf[first] == b'\n' {
        return Some((first, first));
    }
    let newline = find(buf, first + 1, |w| zero_bytes(w ^ NEWLINES), |b| b == b'\n')?;
    Some((newline, first))
}

/// High bit set in exactly the bytes of `x` that are zero (no borrow, so
/// every flag is right, not only the lowest).
#[inline(always)]
fn zero_bytes_exact(x: u64) -> u64 {
    !(((x & LOW7).wrapping_add(LOW7)) | x) & HI
}

/// Whether some run of non-space bytes in `raw` is longer than `limit`: a
/// multi-get key over memcached's limit.
///
/// A run longer than `limit` covers at least `(limit + 1 - 7) / 8` whole
/// aligned words, so the fast pass only counts consecutive words without a
/// space; the exact measure runs only when such a stretch exists, which
/// valid multi-gets (keys well under the limit) never trigger.
pub(crate) fn has_run_longer_than(raw: &[u8], limit: usize) -> bool {
    let words_needed = (limit + 1).saturating_sub(7) / 8;
    if words_needed == 0 {
        return exact_run_longer_than(raw, limit);
    }
    let mut clean = 0usize;
    for chunk in raw.chunks_exact(8) {
        if zero_bytes(word(chunk) ^ SPACES) == 0 {
            clean += 1;
            if clean >= words_needed {
                return exact_run_longer_than(raw, limit);
            }
        } else {
            clean = 0;
        }
    }
    false
}

/// [`has_run_longer_than`], measured space by space.
fn exact_run_longer_than(raw: &[u8], limit: usize) -> bool {
    // `run_start` is where the current run of non-spaces began.
    let mut run_start = 0usize;
    let mut chunks = raw.chunks_exact(8);
    let mut base = 0usize;
    for chunk in &mut chunks {
        let mut m = zero_bytes_exact(word(chunk) ^ SPACES);
        while m != 0 {
            let space = base + (m.trailing_zeros() / 8) as usize;
            if space - run_start > limit {
                return true;
            }
            run_start = space + 1;
            m &= m - 1;
        }
        base += 8;
    }
    for (i, &b) in chunks.remainder().iter().enumerate() {
        if b == b' ' {
            let space = base + i;
            if space - run_start > limit {
                return true;
            }
            run_start = space + 1;
        }
    }
    raw.len() - run_start > limit
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(buf: &[u8]) -> Option<(usize, usize)> {
        let nl = buf.iter().position(|&b| b == b'\n')?;
        let nul = buf[..nl].iter().position(|&b| b == 0).unwrap_or(nl);
        Some((nl, nul))
    }

    #[test]
    fn agrees_with_a_naive_search_at_every_position() {
        // Every placement of a newline and a NUL (and of neither) in buffers
        // of several lengths, over bytes that trip the word trick's borrows.
        for len in 0..40 {
            for fill in [b'x', 0x01, 0x80, 0xff, 0x0b, 0x09] {
                let base = vec![fill; len];
                assert_eq!(find_line(&base), naive(&base), "len {len} fill {fill}");
                for nl in 0..len {
                    let mut b = base.clone();
                    b[nl] = b'\n';
                    assert_eq!(find_line(&b), naive(&b), "len {len} nl {nl}");
                    for nul in 0..len {
                        if nul == nl {
                            continue;
                        }
                        let mut c = b.clone();
                        c[nul] = 0;
                        assert_eq!(find_line(&c), naive(&c), "len {len} nl {nl} nul {nul}");
                    }
                }
            }
        }
    }

    #[test]
    fn finds_the_first_of_several_newlines() {
        let b = b"get a\r\nget b\r\n\n\n";
        assert_eq!(find_line(b), Some((6, 6)));
        let b = b"0123456789abcdef\x0a\x0a";
        assert_eq!(find_line(b), Some((16, 16)));
        // A newline byte right after a 0x0b (newline + 1) and a 0x09 (newline - 1).
        let b = b"\x0b\x09\x0b\x09\x0b\x09\x0b\x09\x0b\n";
        assert_eq!(find_line(b), Some((9, 9)));
    }

    fn naive_longest_run(raw: &[u8]) -> usize {
        raw.split(|&b| b == b' ')
            .map(<[u8]>::len)
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn run_lengths_agree_with_a_naive_split() {
        // Runs of every length around the limit, at every alignment, between
        // single and multiple spaces, over bytes next to a space in value.
        for lead in 0..10 {
            for run in 0..24 {
                for fill in [b'k', b'!', 0x1f, 0xa0, 0x20 + 0x80] {
                    let mut raw = vec![b' '; lead];
                    raw.extend(std::iter::repeat_n(fill, run));
                    raw.extend_from_slice(b"  ab c ");
                    raw.extend(std::iter::repeat_n(fill, run / 2));
                    let longest = naive_longest_run(&raw);
                    for limit in 0..26 {
                        assert_eq!(
                            has_run_longer_than(&raw, limit),
                            longest > limit,
                            "lead {lead} run {run} limit {limit} fill {fill}"
                        );
                    }
                }
            }
        }
        assert!(!has_run_longer_than(b"", 0));
        assert!(!exact_run_longer_than(b"", 0));
        // Keys of 249..=252 bytes at every alignment, among short keys.
        for lead in 0..16 {
            for len in 240..=260 {
                let mut raw = b" ab".repeat(lead);
                raw.push(b' ');
                raw.extend(std::iter::repeat_n(b'k', len));
                raw.extend_from_slice(b" cd ef");
                assert_eq!(
                    has_run_longer_than(&raw, 250),
                    len > 250,
                    "lead {lead} len {len}"
                );
                assert_eq!(
                    exact_run_longer_than(&raw, 250),
                    len > 250,
                    "lead {lead} len {len}"
                );
            }
        }
    }

    #[test]
    fn a_nul_without_newline_is_not_a_line() {
        assert_eq!(find_line(b"get a\0b"), None);
        assert_eq!(find_line(b"get a\0b\r\n"), Some((8, 5)));
    }
}
