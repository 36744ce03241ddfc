//! Finding the end of a command line, a word (8 bytes) at a time.
//!
//! Every request starts with a line search, so this is the parser's inner
//! loop. memcached ends the command at the first NUL inside the line (it
//! hands the line to `strlen`-based code), so the same pass also notes where
//! the first NUL is. Must not interpret the line.

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;
const NEWLINES: u64 = LO * b'\n' as u64;

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
    let mut chunks = rest.chunks_exact(8);
    let mut base = from;
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

    #[test]
    fn a_nul_without_newline_is_not_a_line() {
        assert_eq!(find_line(b"get a\0b"), None);
        assert_eq!(find_line(b"get a\0b\r\n"), Some((8, 5)));
    }
}
